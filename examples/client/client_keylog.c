// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_keylog.c — chat-client's checks of the key server's key directory
 * log (keylog.h, docs/KEYSERVER.md "Key directory log", docs/SECURITY.md).
 *
 * Every bundle comes with the log's signed head and, per device, an
 * inclusion proof of the identity key it serves. The client
 *   - verifies the head's signature under the log key: pinned with --log-key
 *     (given out of band by the operator), else trusted on first use (the
 *     key server's `head` answer) and remembered in the state file;
 *   - checks that the head extends the last head it saw (a consistency
 *     proof it asked for with `since`), and remembers the new one;
 *   - checks each entry's inclusion proof for its (user, device, ik, ts);
 * and at every start it reads its own device's key history (`history`):
 * every identity key logged for this device since its own first one must be
 * its own. Any failure is printed loudly and the bundle is not used. */
#include "client.h"
#include "err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define REQ_MS 10000

static void loud(const char *what, const char *detail)
{
	fprintf(stderr, "chat-client: KEY DIRECTORY CHECK FAILED: %s%s%s\n", what,
	        detail ? ": " : "", detail ? detail : "");
}

/* Pins the log key: --log-key, else the key server's (first use). */
static int pin_key(client *c)
{
	cstate *st = &c->st;
	if (c->log_key_set) {
		if (st->has_log_pub && memcmp(st->log_pub, c->log_key, KL_PUB) != 0) {
			/* A head checked under another key is no evidence for this one. */
			st->log_size = 0;
		}
		memcpy(st->log_pub, c->log_key, KL_PUB);
		st->has_log_pub = true;
		return CHAT_OK;
	}
	if (st->has_log_pub)
		return CHAT_OK;
	uint64_t rid = net_req_begin(&c->net, 0, "head");
	qmsg *m = net_keys(&c->net, rid, REQ_MS);
	if (!m)
		return CHAT_EIO;
	cbr r;
	cbr_item map, key, v;
	uint64_t i = 0;
	bool got = false;
	cbr_init(&r, m->payload, m->len);
	if (cbr_next(&r, &map) == CHAT_OK && map.type == CBR_MAP) {
		while (cbr_map_next(&r, &map, &i, &key)) {
			if (cbr_next(&r, &v) != CHAT_OK)
				break;
			if (cbr_eq(&key, "pub") && v.type == CBR_BYTES && v.len == KL_PUB) {
				memcpy(st->log_pub, v.ptr, KL_PUB);
				got = true;
			} else if (cbr_skip(&r, &v) != CHAT_OK) {
				break;
			}
		}
	}
	qmsg_free(m);
	if (!got) {
		loud("the key server did not say its log key", NULL);
		return CHAT_EDENIED;
	}
	char hex[2 * KL_PUB + 1];
	sodium_bin2hex(hex, sizeof hex, st->log_pub, KL_PUB);
	fprintf(stderr, "chat-client: trusting the key server's log key %s on first use "
	        "(pin it with --log-key)\n", hex);
	st->has_log_pub = true;
	return CHAT_OK;
}

uint64_t keylog_since(client *c)
{
	return c->st.log_size;
}

int keylog_accept_head(client *c, const kl_head *h, const kl_hash *cons, size_t ncons,
                       bool has_cons)
{
	cstate *st = &c->st;
	int rc = pin_key(c);
	if (rc)
		return rc;
	if (!kl_head_verify(h, st->log_pub)) {
		loud("the log head is not signed by the log key", NULL);
		return CHAT_EDENIED;
	}
	if (st->log_size) {
		char d[160];
		if (h->size < st->log_size) {
			snprintf(d, sizeof d, "size %llu, but this device saw size %llu before",
			         (unsigned long long)h->size, (unsigned long long)st->log_size);
			loud("the key server's log shrank (a fork or a rollback)", d);
			return CHAT_EDENIED;
		}
		if (!has_cons || !kl_verify_consistency(st->log_size, h->size, st->log_root, h->root,
		                                        cons, ncons)) {
			snprintf(d, sizeof d, "the head of size %llu does not extend the head of size "
			         "%llu this device saw before", (unsigned long long)h->size,
			         (unsigned long long)st->log_size);
			loud("the key server's log forked", d);
			return CHAT_EDENIED;
		}
	}
	if (h->size != st->log_size || memcmp(h->root, st->log_root, KL_HASH) != 0) {
		st->log_size = h->size;
		memcpy(st->log_root, h->root, KL_HASH);
		return state_save(st);
	}
	return CHAT_OK;
}

bool keylog_check_entry(const kl_head *h, const char *user, const char *dev,
                        const uint8_t ik[KL_PUB], const kl_ref *ref)
{
	uint8_t leaf[KL_HASH];
	if (!kl_entry_hash(leaf, ik, ref->ts, user, strlen(user), dev, strlen(dev)) ||
	    !kl_verify_inclusion(ref->index, h->size, leaf, ref->proof, ref->n, h->root)) {
		char d[200];
		snprintf(d, sizeof d, "the identity key served for %s/%s is not the one in the log "
		         "(index %llu); not using it", user, dev, (unsigned long long)ref->index);
		loud("a key is not in the key directory", d);
		return false;
	}
	return true;
}

/* Reads the head and consistency proof of a response map (whole payload). */
int keylog_read_head(const qmsg *m, kl_head *h, bool *has_head, kl_hash *cons, size_t *ncons,
                     bool *has_cons)
{
	cbr r;
	cbr_item map, key;
	uint64_t i = 0;
	*has_head = *has_cons = false;
	*ncons = 0;
	cbr_init(&r, m->payload, m->len);
	if (cbr_next(&r, &map) != CHAT_OK || map.type != CBR_MAP)
		return CHAT_EINVAL;
	while (cbr_map_next(&r, &map, &i, &key)) {
		const char *why = NULL;
		if (cbr_eq(&key, "head")) {
			why = kl_head_read(&r, h);
			*has_head = !why;
		} else if (cbr_eq(&key, "consistency")) {
			why = kl_proof_read(&r, cons, KL_PROOF_MAX, ncons);
			*has_cons = !why;
		} else if (cbr_skip_next(&r) != CHAT_OK) {
			break;
		}
		if (why) {
			loud("malformed log data from the key server", why);
			return CHAT_EINVAL;
		}
	}
	return r.err_msg ? CHAT_EINVAL : CHAT_OK;
}

int keylog_check_self(client *c)
{
	uint64_t rid = net_req_begin(&c->net, c->st.log_size ? 3 : 2, "history");
	cbw_text(&c->net.w, "user");
	cbw_text(&c->net.w, c->net.user);
	cbw_text(&c->net.w, "device");
	cbw_text(&c->net.w, c->net.dev);
	if (c->st.log_size) {
		cbw_text(&c->net.w, "since");
		cbw_uint(&c->net.w, c->st.log_size);
	}
	qmsg *m = net_keys(&c->net, rid, REQ_MS);
	if (!m)
		return CHAT_EIO;
	static kl_hash cons[KL_PROOF_MAX];
	kl_head h;
	size_t ncons;
	bool has_head, has_cons;
	int rc = keylog_read_head(m, &h, &has_head, cons, &ncons, &has_cons);
	if (rc == CHAT_OK && !has_head) {
		loud("the key server's history answer has no log head", NULL);
		rc = CHAT_EDENIED;
	}
	if (rc == CHAT_OK)
		rc = keylog_accept_head(c, &h, cons, ncons, has_cons);
	/* the entries, oldest first */
	cbr r;
	cbr_item map, key, arr;
	uint64_t i = 0, j = 0;
	bool mine_seen = false;
	cbr_init(&r, m->payload, m->len);
	if (rc == CHAT_OK && cbr_next(&r, &map) == CHAT_OK && map.type == CBR_MAP) {
		while (rc == CHAT_OK && cbr_map_next(&r, &map, &i, &key)) {
			if (!cbr_eq(&key, "entries")) {
				if (cbr_skip_next(&r) != CHAT_OK)
					break;
				continue;
			}
			if (cbr_next(&r, &arr) != CHAT_OK || arr.type != CBR_ARRAY)
				break;
			while (rc == CHAT_OK && cbr_array_next(&r, &arr, &j)) {
				static kl_ref ref;
				const char *why = kl_ref_read(&r, &ref);
				if (why || !ref.has_ik) {
					loud("malformed history from the key server", why ? why : "no ik");
					rc = CHAT_EINVAL;
				} else if (!keylog_check_entry(&h, c->net.user, c->net.dev, ref.ik, &ref)) {
					rc = CHAT_EDENIED;
				} else if (sodium_memcmp(ref.ik, c->st.ik_pk, KL_PUB) == 0) {
					mine_seen = true;
				} else if (mine_seen) {
					char hex[2 * 12 + 1], d[200];
					sodium_bin2hex(hex, sizeof hex, ref.ik, 12);
					snprintf(d, sizeof d, "index %llu holds key %s… for %s, which this device "
					         "never published", (unsigned long long)ref.index, hex,
					         c->net.addr);
					loud("the key server logged a key in this device's name", d);
					rc = CHAT_EDENIED;
				}
				/* keys before our own first one belong to an earlier
				 * installation at this address (a re-registration) */
			}
		}
	}
	if (rc == CHAT_OK && r.err_msg)
		rc = CHAT_EINVAL;
	if (rc == CHAT_OK && !mine_seen && c->st.registered) {
		loud("this device's identity key is not in the key directory", c->net.addr);
		rc = CHAT_EDENIED;
	}
	qmsg_free(m);
	return rc;
}
