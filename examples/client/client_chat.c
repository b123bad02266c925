// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_chat.c — what chat-client does with keys, sends and inbox events.
 *
 * Registration uploads the identity key, the signed pre-key and 100
 * one-time keys (and 100 more whenever the key server's retained status
 * says low). A send asks the server for the current devices, makes
 * sessions from key-server bundles where it has none, encrypts one body per
 * device (docs/E2EE.md §4) and retries when the server answers `devices`.
 * The state is saved before anything leaves the device, so a crash can
 * never make it reuse a message key. Inbox events are handled in queue
 * order: duplicates by (conv, seq) are dropped (and acknowledged again),
 * messages decrypted and printed, receipts sent in batches.
 *
 * Protocol v2 (the default; --protocol 1 keeps the v1 forms): the client
 * declares the capabilities sents, rcpts and batch before it subscribes to
 * its inbox, takes its send's confirmation from a gathered `sents` (with
 * the users it was delivered to already, `dl`), applies coalesced receipts
 * (`rcpts`: a group message's "delivered to all" / "read by all" from the
 * users it went to) and the events of a replay `batch` one by one, in
 * order; and it sends no `delivered` receipts when the server says it
 * counts the PUBACK of a message as one (only `read`).
 */
#include "attach.h"
#include "client.h"
#include "clientev.h"
#include "err.h"
#include "ids.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQ_MS 10000
#define SEND_ATTEMPTS 3
#define PT_MAX 65536

static void *scratch(void **p, size_t size)
{
	if (!*p && !(*p = malloc(size))) {
		fprintf(stderr, "chat-client: out of memory\n");
		exit(1);
	}
	return *p;
}

static ev *scratch_ev(void)
{
	static void *e;
	return scratch(&e, sizeof(ev));
}

static cev_sent *scratch_sent(void)
{
	static void *s;
	return scratch(&s, sizeof(cev_sent));
}

/* Status lines (✓, ✓✓, read, group changes): on stdout in the interactive
 * mode, on stderr otherwise (stdout carries only messages there). */
static void say(client *c, const char *fmt, ...)
{
	FILE *f = c->interactive ? stdout : stderr;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fflush(f);
}

static bool apply_state(client *c, const char *conv, uint64_t seq, const char *by, int st);

/* ---- registration ---- */

static void upload_begin(client *c)
{
	cstate *st = &c->st;
	cbw *w = &c->net.w;
	cbw_text(w, "ik");
	cbw_bytes(w, st->ik_pk, E2E_KEY);
	cbw_text(w, "spk");
	cbw_map(w, 3);
	cbw_text(w, "id");
	cbw_uint(w, st->spk_id);
	cbw_text(w, "key");
	cbw_bytes(w, st->spk_pk, E2E_KEY);
	cbw_text(w, "sig");
	cbw_bytes(w, st->spk_sig, E2E_SIG);
	cbw_text(w, "opks");
	state_new_opks(st, OPK_BATCH, w);
}

/* Uploads our keys with 100 new one-time keys (saved first). */
static int upload(client *c)
{
	uint64_t rid = net_req_begin(&c->net, 3, "upload");
	upload_begin(c);
	if (state_save(&c->st) != CHAT_OK)
		return CHAT_EIO;
	qmsg *m = net_keys(&c->net, rid, REQ_MS);
	if (!m)
		return CHAT_EIO;
	ev *e = scratch_ev();
	int rc = ev_decode(e, m->payload, m->len) == CHAT_OK && e->ok ? CHAT_OK : CHAT_EDENIED;
	if (rc != CHAT_OK) {
		char code[64], msg[200];
		item_str(code, sizeof code, &e->code);
		item_str(msg, sizeof msg, &e->msg);
		fprintf(stderr, "chat-client: the key server refused our keys: %s (%s)\n", msg, code);
	}
	qmsg_free(m);
	return rc;
}

int chat_register(client *c, bool fresh)
{
	cstate *st = &c->st;
	if (fresh) {
		state_new_identity(st);
		char hex[2 * 12 + 1];
		sodium_bin2hex(hex, sizeof hex, st->ik_pk, 12);
		fprintf(stderr, "chat-client: new identity for %s, key %s…\n", c->net.addr, hex);
	}
	if (st->registered)
		return CHAT_OK;
	int rc = upload(c);
	if (rc != CHAT_OK)
		return rc;
	st->registered = true;
	fprintf(stderr, "chat-client: registered %s with the key server (%zu one-time keys)\n",
	        c->net.addr, st->nopks);
	return state_save(st);
}

void chat_status(client *c, const qmsg *m)
{
	cbr r;
	cbr_item map, key, v;
	uint64_t i = 0;
	bool low = false;
	cbr_init(&r, m->payload, m->len);
	if (cbr_next(&r, &map) != CHAT_OK || map.type != CBR_MAP)
		return;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &v) != CHAT_OK)
			return;
		if (cbr_eq(&key, "low") && v.type == CBR_BOOL)
			low = v.b;
		else if (cbr_skip(&r, &v) != CHAT_OK)
			return;
	}
	if (!low || !c->st.registered)
		return;
	if (upload(c) == CHAT_OK)
		fprintf(stderr, "chat-client: one-time keys ran low; uploaded %d more\n", OPK_BATCH);
}

/* ---- devices and sessions ---- */

typedef struct addrs { char (*a)[ADDR_MAX]; size_t n; } addrs;

static void addrs_add(addrs *l, const char *user, const char *dev)
{
	char (*a)[ADDR_MAX] = realloc(l->a, (l->n + 1) * sizeof *l->a);
	if (!a) {
		fprintf(stderr, "chat-client: out of memory\n");
		exit(1);
	}
	l->a = a;
	snprintf(l->a[l->n++], ADDR_MAX, "%s/%s", user, dev);
}

static bool addrs_has(const addrs *l, const char *addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->a[i], addr) == 0)
			return true;
	return false;
}

/* Appends user's devices (from the server) to l, without our own device. */
static int list_devices(client *c, const char *user, addrs *l)
{
	uint64_t rid = net_req_begin(&c->net, 1, "devices");
	cbw_text(&c->net.w, "user");
	cbw_text(&c->net.w, user);
	qmsg *m = net_ctl(&c->net, rid, REQ_MS);
	if (!m)
		return CHAT_EIO;
	ev *e = scratch_ev();
	int rc = ev_decode(e, m->payload, m->len) == CHAT_OK && e->ok ? CHAT_OK : CHAT_EINVAL;
	for (size_t i = 0; rc == CHAT_OK && i < e->nlist; i++) {
		char dev[NAME_MAX_], addr[ADDR_MAX];
		item_str(dev, sizeof dev, &e->list[i]);
		snprintf(addr, sizeof addr, "%s/%s", user, dev);
		if (strcmp(addr, c->net.addr) != 0 && !addrs_has(l, addr))
			addrs_add(l, user, dev);
	}
	qmsg_free(m);
	return rc;
}

/* Reads one bundle entry into b, its device name and its place in the key
 * directory log (*has_ref false if it has none). */
static bool read_entry(cbr *r, e2e_bundle *b, char *dev, size_t cap, kl_ref *ref, bool *has_ref)
{
	cbr_item map, key, v;
	uint64_t i = 0;
	bool ik = false, spk = false;
	memset(b, 0, sizeof *b);
	dev[0] = 0;
	*has_ref = false;
	if (cbr_next(r, &map) != CHAT_OK || map.type != CBR_MAP)
		return false;
	while (cbr_map_next(r, &map, &i, &key)) {
		if (cbr_eq(&key, "log")) {
			if (kl_ref_read(r, ref) != NULL)
				return false;
			*has_ref = true;
			continue;
		}
		if (cbr_next(r, &v) != CHAT_OK)
			return false;
		bool is_spk = cbr_eq(&key, "spk"), is_opk = cbr_eq(&key, "opk");
		if (cbr_eq(&key, "device") && v.type == CBR_TEXT) {
			item_str(dev, cap, &v);
		} else if (cbr_eq(&key, "ik") && v.type == CBR_BYTES && v.len == E2E_KEY) {
			memcpy(b->ik, v.ptr, E2E_KEY);
			ik = true;
		} else if ((is_spk || is_opk) && v.type == CBR_MAP) {
			uint64_t j = 0;
			cbr_item k2, v2;
			uint64_t id = 0;
			while (cbr_map_next(r, &v, &j, &k2)) {
				if (cbr_next(r, &v2) != CHAT_OK)
					return false;
				if (cbr_eq(&k2, "id") && v2.type == CBR_UINT && v2.u <= UINT32_MAX)
					id = v2.u;
				else if (cbr_eq(&k2, "key") && v2.type == CBR_BYTES && v2.len == E2E_KEY)
					memcpy(is_spk ? b->spk : b->opk, v2.ptr, E2E_KEY);
				else if (is_spk && cbr_eq(&k2, "sig") && v2.type == CBR_BYTES &&
				         v2.len == E2E_SIG)
					memcpy(b->spk_sig, v2.ptr, E2E_SIG);
				else if (cbr_skip(r, &v2) != CHAT_OK)
					return false;
			}
			if (is_spk) {
				b->spk_id = (uint32_t)id;
				spk = true;
			} else {
				b->opk_id = (uint32_t)id;
			}
		} else if (cbr_skip(r, &v) != CHAT_OK) {
			return false;
		}
	}
	return ik && spk && dev[0] && !r->err_msg;
}

/* Makes sure we have a session with every device of `user` in l (one
 * bundle request for all that lack one). */
static int ensure_sessions(client *c, const char *user, const addrs *l)
{
	size_t ulen = strlen(user), missing = 0;
	for (size_t i = 0; i < l->n; i++) {
		peer *p = state_peer(&c->st, l->a[i], false);
		if (chat_addr_user_len(l->a[i]) == ulen && memcmp(l->a[i], user, ulen) == 0 &&
		    (!p || p->nsess == 0))
			missing++;
	}
	if (!missing)
		return CHAT_OK;

	const contact *known = state_contact(&c->st, user, false);
	bool complete = known && known->complete;
	uint64_t since = keylog_since(c);
	uint64_t rid = net_req_begin(&c->net, since ? 2 : 1, "bundle");
	cbw_text(&c->net.w, "user");
	cbw_text(&c->net.w, user);
	if (since) {
		cbw_text(&c->net.w, "since");
		cbw_uint(&c->net.w, since);
	}
	qmsg *m = net_keys(&c->net, rid, REQ_MS);
	if (!m)
		return CHAT_EIO;
	/* The key directory first: a bundle whose head does not verify, or
	 * does not extend the last head seen, is not used at all. */
	static kl_hash cons[KL_PROOF_MAX];
	static kl_ref ref;
	kl_head head;
	size_t ncons;
	bool has_head, has_cons, has_ref, refused = false;
	int hrc = keylog_read_head(m, &head, &has_head, cons, &ncons, &has_cons);
	cbr r;
	cbr_item map, key, v;
	uint64_t i = 0;
	bool ok = false;
	char code[64] = "", msg[200] = "";
	cbr_init(&r, m->payload, m->len);
	if (hrc == CHAT_OK && has_head)
		hrc = keylog_accept_head(c, &head, cons, ncons, has_cons);
	if (hrc != CHAT_OK) {
		qmsg_free(m);
		fprintf(stderr, "chat-client: not using the bundle of %s\n", user);
		return CHAT_EDENIED;
	}
	if (cbr_next(&r, &map) == CHAT_OK && map.type == CBR_MAP) {
		while (cbr_map_next(&r, &map, &i, &key)) {
			if (cbr_next(&r, &v) != CHAT_OK)
				break;
			if (cbr_eq(&key, "ok") && v.type == CBR_BOOL) {
				ok = v.b;
			} else if (cbr_eq(&key, "code")) {
				item_str(code, sizeof code, &v);
			} else if (cbr_eq(&key, "msg")) {
				item_str(msg, sizeof msg, &v);
			} else if (cbr_eq(&key, "devices") && v.type == CBR_ARRAY) {
				uint64_t j = 0;
				while (cbr_array_next(&r, &v, &j)) {
					e2e_bundle b;
					char dev[NAME_MAX_], addr[ADDR_MAX];
					if (!read_entry(&r, &b, dev, sizeof dev, &ref, &has_ref))
						break;
					snprintf(addr, sizeof addr, "%s/%s", user, dev);
					if (!addrs_has(l, addr))
						continue;
					/* A device the broker lists: its key is proven against the
					 * log before it counts for the key set (safety numbers,
					 * notices) or starts a session. */
					if (!has_head || !has_ref) {
						fprintf(stderr, "chat-client: KEY DIRECTORY CHECK FAILED: the "
						        "bundle of %s comes without a log proof; not using it\n",
						        addr);
						refused = true;
						continue;
					}
					if (!keylog_check_entry(&head, user, dev, b.ik, &ref)) {
						refused = true;
						continue;
					}
					trust_seen_key(c, addr, b.ik, !complete);
					peer *p = state_peer(&c->st, addr, false);
					if (p && p->nsess > 0)
						continue;
					e2e_session *s = calloc(1, sizeof *s);
					if (!s)
						break;
					if (e2e_x3dh_initiate(s, c->st.ik_pk, c->st.ik_sk, &b, NULL, NULL,
					                      NULL) != 0) {
						fprintf(stderr, "chat-client: the bundle of %s does not verify; "
						        "not talking to it\n", addr);
						free(s);
						continue;
					}
					state_peer_push(state_peer(&c->st, addr, true), s);
				}
			} else if (cbr_skip(&r, &v) != CHAT_OK) {
				break;
			}
		}
	}
	qmsg_free(m);
	if (!ok) {
		fprintf(stderr, "chat-client: no keys for %s: %s (%s)\n", user, msg, code);
		return CHAT_EDENIED;
	}
	if (refused) {
		fprintf(stderr, "chat-client: not sending to %s: the key directory check failed\n",
		        user);
		return CHAT_EDENIED;
	}
	for (size_t k = 0; k < l->n; k++) {
		peer *p = state_peer(&c->st, l->a[k], false);
		if (chat_addr_user_len(l->a[k]) == ulen && memcmp(l->a[k], user, ulen) == 0 &&
		    (!p || p->nsess == 0)) {
			fprintf(stderr, "chat-client: %s has no keys on the key server "
			        "(it never ran chat-client)\n", l->a[k]);
			return CHAT_ENOTFOUND;
		}
	}
	return CHAT_OK;
}

/* Sessions for every device in l, one user at a time. */
static int ensure_all(client *c, const addrs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		char user[NAME_MAX_];
		size_t ul = chat_addr_user_len(l->a[i]);
		snprintf(user, sizeof user, "%.*s", (int)ul, l->a[i]);
		bool first = true;
		for (size_t j = 0; j < i && first; j++)
			if (chat_addr_user_len(l->a[j]) == ul && memcmp(l->a[j], user, ul) == 0)
				first = false;
		if (first) {
			int rc = ensure_sessions(c, user, l);
			if (rc != CHAT_OK)
				return rc;
		}
	}
	return CHAT_OK;
}

/* The device list of user in l (with our own device for our own user)
 * checked against the user's key set (client_trust.c). */
static void check_user(client *c, const addrs *l, const char *user)
{
	size_t ul = strlen(user), n = 0;
	char (*devs)[NAME_MAX_] = calloc(l->n + 1, sizeof *devs);
	if (!devs)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (chat_addr_user_len(l->a[i]) == ul && memcmp(l->a[i], user, ul) == 0)
			snprintf(devs[n++], NAME_MAX_, "%s", l->a[i] + ul + 1);
	if (strcmp(user, c->net.user) == 0)
		snprintf(devs[n++], NAME_MAX_, "%s", c->net.dev);
	trust_device_list(c, user, (const char (*)[NAME_MAX_])devs, n);
	free(devs);
}

int chat_refresh_keys(client *c, const char *user)
{
	addrs l = { 0 };
	int rc = list_devices(c, user, &l);
	if (rc == CHAT_OK && l.n == 0 && strcmp(user, c->net.user) != 0) {
		fprintf(stderr, "chat-client: %s has no devices\n", user);
		rc = CHAT_ENOTFOUND;
	}
	if (rc == CHAT_OK && strcmp(user, c->net.user) != 0)
		rc = list_devices(c, c->net.user, &l);
	if (rc == CHAT_OK)
		rc = ensure_all(c, &l);
	if (rc == CHAT_OK) {
		check_user(c, &l, user);
		check_user(c, &l, c->net.user);
		rc = state_save(&c->st);
	}
	free(l.a);
	return rc;
}

/* ---- sending ---- */

typedef struct cid_match { uint8_t cid[12]; } cid_match;

static bool same_cid(const cbr_item *it, const cid_match *w)
{
	return it->type == CBR_BYTES && it->len == sizeof w->cid &&
	       memcmp(it->ptr, w->cid, sizeof w->cid) == 0;
}

/* A `sents` item for the cid, or another one (ctx: sents_ctx). */
typedef struct sents_ctx {
	client *c;
	const cid_match *w;
	bool found, apply;
	char *conv;
	size_t conv_cap;
	uint64_t *seq;
} sents_ctx;

static void on_sent_item(void *ctx, const cev_sent *s);

static bool match_cid(const qmsg *m, void *ctx)
{
	const cid_match *w = ctx;
	ev *e = scratch_ev();
	if (ev_decode(e, m->payload, m->len) != CHAT_OK)
		return false;
	if (cbr_eq(&e->k, "sents")) {   /* v2: gathered confirmations */
		sents_ctx sc = { .w = w };
		return cev_sents(m->payload, m->len, scratch_sent(), on_sent_item, &sc, NULL) ==
		               CHAT_OK && sc.found;
	}
	return (cbr_eq(&e->k, "sent") || cbr_eq(&e->k, "error")) && same_cid(&e->cid, w);
}

/* The pairwise encryption of pt for addr after the version/kind header. */
static size_t encrypt_for(client *c, const char *addr, uint8_t *out, const uint8_t *pt,
                          size_t len)
{
	peer *p = state_peer(&c->st, addr, false);
	return p && p->nsess ? e2e_pairwise_encrypt(p->sess[0], out, pt, len) : 0;
}

/* Saves the state, publishes the send built in c->net.w and waits for its
 * `sent` or `error`. CHAT_OK (conv and seq filled); CHAT_EEXIST when the
 * server refused with `devices` (the caller refetches and retries); another
 * error otherwise. */
static int publish_send(client *c, const char *topic, const cid_match *cm, char *conv,
                        size_t conv_cap, uint64_t *seq)
{
	if (cbw_status(&c->net.w) != CHAT_OK || state_save(&c->st) != CHAT_OK)
		return CHAT_ENOMEM;
	if (net_publish(&c->net, topic, c->net.w.buf, c->net.w.len) != CHAT_OK)
		return CHAT_EIO;
	qmsg *m = net_take(&c->net, match_cid, (void *)cm, REQ_MS);
	if (!m) {
		fprintf(stderr, "chat-client: the server did not acknowledge the send\n");
		return CHAT_EIO;
	}
	ev *e = scratch_ev();
	int rc = CHAT_OK;
	ev_decode(e, m->payload, m->len);
	if (cbr_eq(&e->k, "sents")) {
		/* ours, with who had it delivered already; any other item in it
		 * is applied as chat_process would */
		sents_ctx sc = { .c = c, .w = cm, .apply = true, .conv = conv, .conv_cap = conv_cap,
		                 .seq = seq };
		cev_sents(m->payload, m->len, scratch_sent(), on_sent_item, &sc, NULL);
	} else if (cbr_eq(&e->k, "sent")) {
		item_str(conv, conv_cap, &e->conv);
		*seq = e->seq;
	} else {
		char code[64], msg[200];
		item_str(code, sizeof code, &e->code);
		item_str(msg, sizeof msg, &e->msg);
		if (strcmp(code, "devices") == 0) {
			fprintf(stderr, "chat-client: the device list changed (%s); retrying\n", msg);
			rc = CHAT_EEXIST;
		} else {
			fprintf(stderr, "chat-client: send refused: %s (%s)\n", msg, code);
			rc = CHAT_EDENIED;
		}
	}
	qmsg_free(m);
	return rc;
}

static int send_dm(client *c, const char *peer_user, const uint8_t *pt, size_t len,
                   const cid_match *cm, char *conv, size_t cap, uint64_t *seq)
{
	uint8_t *buf = malloc(2 + len + E2E_PAIRWISE_OVERHEAD);
	int rc = CHAT_EIO;
	if (!buf)
		return CHAT_ENOMEM;
	for (int attempt = 0; attempt < SEND_ATTEMPTS; attempt++) {
		addrs l = { 0 };
		rc = list_devices(c, peer_user, &l);
		if (rc == CHAT_OK && l.n == 0) {
			fprintf(stderr, "chat-client: %s has no devices\n", peer_user);
			rc = CHAT_ENOTFOUND;
		}
		if (rc == CHAT_OK)
			rc = list_devices(c, c->net.user, &l);
		if (rc == CHAT_OK)
			rc = ensure_all(c, &l);
		if (rc != CHAT_OK) {
			free(l.a);
			break;
		}
		check_user(c, &l, peer_user);
		check_user(c, &l, c->net.user);
		cbw *w = &c->net.w;
		cbw_reset(w);
		cbw_map(w, 2);
		cbw_text(w, "cid");
		cbw_bytes(w, cm->cid, sizeof cm->cid);
		cbw_text(w, "bodies");
		cbw_map(w, l.n);
		for (size_t i = 0; i < l.n; i++) {
			size_t h = e2e_body_header(buf, E2E_KIND_PAIRWISE, 0);
			size_t n = encrypt_for(c, l.a[i], buf + h, pt, len);
			cbw_text(w, l.a[i]);
			cbw_bytes(w, buf, h + n);
		}
		free(l.a);
		char topic[128];
		snprintf(topic, sizeof topic, "chat/dm/%s", peer_user);
		rc = publish_send(c, topic, cm, conv, cap, seq);
		if (rc != CHAT_EEXIST)
			break;
	}
	free(buf);
	return rc;
}

static int group_members(client *c, const char *gid, addrs *l)
{
	uint64_t rid = net_req_begin(&c->net, 1, "group.info");
	cbw_text(&c->net.w, "gid");
	cbw_text(&c->net.w, gid);
	qmsg *m = net_ctl(&c->net, rid, REQ_MS);
	if (!m)
		return CHAT_EIO;
	ev *e = scratch_ev();
	int rc = CHAT_OK;
	if (ev_decode(e, m->payload, m->len) != CHAT_OK || !e->ok) {
		char msg[200];
		item_str(msg, sizeof msg, &e->msg);
		fprintf(stderr, "chat-client: group %s: %s\n", gid, msg);
		rc = CHAT_EDENIED;
	}
	/* copy the member names: list_devices reuses the scratch event */
	size_t n = rc == CHAT_OK ? e->nlist : 0;
	char (*users)[NAME_MAX_] = calloc(n ? n : 1, sizeof *users);
	for (size_t i = 0; i < n && users; i++)
		item_str(users[i], sizeof users[i], &e->list[i]);
	qmsg_free(m);
	for (size_t i = 0; i < n && users && rc == CHAT_OK; i++)
		rc = list_devices(c, users[i], l);
	free(users);
	return rc;
}

static int send_group(client *c, const char *gid, const uint8_t *pt, size_t len,
                      const cid_match *cm, char *conv, size_t cap, uint64_t *seq)
{
	char gconv[NAME_MAX_ + 4];
	uint8_t dist[1 + 8 + E2E_KEY + NAME_MAX_];
	size_t glen = strlen(gid);
	uint8_t *smsg = malloc(len + E2E_SENDER_OVERHEAD);
	uint8_t *buf = malloc(4 + sizeof dist + E2E_PAIRWISE_OVERHEAD + len + E2E_SENDER_OVERHEAD);
	int rc = CHAT_EIO;

	snprintf(gconv, sizeof gconv, "g:%s", gid);
	if (!smsg || !buf)
		goto out;
	for (int attempt = 0; attempt < SEND_ATTEMPTS; attempt++) {
		addrs l = { 0 };
		rc = group_members(c, gid, &l);
		if (rc == CHAT_OK)
			rc = ensure_all(c, &l);
		if (rc != CHAT_OK) {
			free(l.a);
			break;
		}
		for (size_t i = 0; i < l.n; i++) {   /* each member once, not us */
			char u[NAME_MAX_];
			size_t ul = chat_addr_user_len(l.a[i]);
			bool seen = false;
			for (size_t j = 0; j < i && !seen; j++)
				seen = chat_addr_user_len(l.a[j]) == ul && memcmp(l.a[j], l.a[i], ul) == 0;
			snprintf(u, sizeof u, "%.*s", (int)ul, l.a[i]);
			if (!seen && strcmp(u, c->net.user) != 0)
				check_user(c, &l, u);
		}
		/* a new sender key when asked to, or when a device that had it is gone */
		own_skey *k = state_own_skey(&c->st, gid, true);
		bool gone = false;
		for (size_t i = 0; i < k->nsent_to && !gone; i++)
			gone = !addrs_has(&l, k->sent_to[i]);
		if (!k->chain || k->rotate || gone)
			own_skey_reset(k);
		dist[0] = E2E_PT_SENDER_KEY;
		e2e_put32(dist + 1, k->chain->key_id);
		e2e_put32(dist + 5, k->chain->n);
		memcpy(dist + 9, k->chain->ck, E2E_KEY);
		memcpy(dist + 9 + E2E_KEY, gid, glen);
		size_t dlen = 9 + E2E_KEY + glen;
		size_t slen = e2e_sender_encrypt(k->chain, smsg, pt, len, gconv, c->st.ik_sk);

		cbw *w = &c->net.w;
		cbw_reset(w);
		cbw_map(w, 2);
		cbw_text(w, "cid");
		cbw_bytes(w, cm->cid, sizeof cm->cid);
		cbw_text(w, "bodies");
		cbw_map(w, l.n);
		for (size_t i = 0; i < l.n; i++) {
			size_t pw = 0;
			if (!own_skey_has(k, l.a[i]))
				pw = encrypt_for(c, l.a[i], buf + 4, dist, dlen);
			size_t h = e2e_body_header(buf, E2E_KIND_GROUP, pw);
			memcpy(buf + h + pw, smsg, slen);
			cbw_text(w, l.a[i]);
			cbw_bytes(w, buf, h + pw + slen);
		}
		e2e_wipe(dist, sizeof dist);
		/* the users it goes to: "delivered to all" counts them */
		free(c->rcpt);
		c->rcpt = calloc(l.n ? l.n : 1, sizeof *c->rcpt);
		c->nrcpt = 0;
		for (size_t i = 0; i < l.n && c->rcpt; i++) {
			char u[NAME_MAX_];
			snprintf(u, sizeof u, "%.*s", (int)chat_addr_user_len(l.a[i]), l.a[i]);
			bool dup = strcmp(u, c->net.user) == 0;
			for (size_t j = 0; j < c->nrcpt && !dup; j++)
				dup = strcmp(c->rcpt[j], u) == 0;
			if (!dup)
				snprintf(c->rcpt[c->nrcpt++], NAME_MAX_, "%s", u);
		}
		char topic[128];
		snprintf(topic, sizeof topic, "chat/group/%s", gid);
		rc = publish_send(c, topic, cm, conv, cap, seq);
		if (rc == CHAT_OK) {
			k = state_own_skey(&c->st, gid, false);
			for (size_t i = 0; i < l.n; i++)
				own_skey_add(k, l.a[i]);
		}
		free(l.a);
		if (rc != CHAT_EEXIST)
			break;
	}
out:
	free(smsg);
	free(buf);
	return rc;
}

int chat_send_plain(client *c, const char *peer_user, const char *gid, const uint8_t *pt,
                    size_t len, const char *hist, char *conv, size_t conv_cap, uint64_t *seq)
{
	if (len > PT_MAX) {
		fprintf(stderr, "chat-client: message too long\n");
		return CHAT_ETOOBIG;
	}
	cid_match cm;
	randombytes_buf(cm.cid, sizeof cm.cid);
	c->ndl = c->nrcpt = 0;
	int rc = gid ? send_group(c, gid, pt, len, &cm, conv, conv_cap, seq)
	             : send_dm(c, peer_user, pt, len, &cm, conv, conv_cap, seq);
	if (rc == CHAT_OK) {
		state_history(&c->st, conv, *seq, c->net.addr, true, hist, strlen(hist));
		if (gid)
			state_hist_users(&c->st, (const char (*)[NAME_MAX_])c->rcpt, c->nrcpt);
		say(c, "✓ %s #%llu sent\n", conv, (unsigned long long)*seq);
		/* v2: delivered before the confirmation went out (`dl`) */
		for (size_t i = 0; i < c->ndl; i++)
			apply_state(c, conv, *seq, c->dl[i], ST_DELIVERED);
		rc = state_save(&c->st);
	}
	free(c->rcpt);
	free(c->dl);
	c->rcpt = NULL;
	c->dl = NULL;
	c->nrcpt = c->ndl = 0;
	return rc;
}

int chat_send(client *c, const char *peer_user, const char *gid, const char *text,
              char *conv, size_t conv_cap, uint64_t *seq)
{
	size_t tl = strlen(text);
	if (tl + 1 > PT_MAX) {
		fprintf(stderr, "chat-client: message too long\n");
		return CHAT_ETOOBIG;
	}
	uint8_t *pt = malloc(tl + 1);
	if (!pt)
		return CHAT_ENOMEM;
	pt[0] = E2E_PT_TEXT;
	memcpy(pt + 1, text, tl);
	int rc = chat_send_plain(c, peer_user, gid, pt, tl + 1, text, conv, conv_cap, seq);
	e2e_wipe(pt, tl + 1);
	free(pt);
	return rc;
}

int chat_recipients(client *c, const char *peer_user, const char *gid, char (**out)[ADDR_MAX],
                    size_t *n)
{
	addrs l = { 0 };
	int rc;
	if (gid) {
		rc = group_members(c, gid, &l);
	} else {
		rc = list_devices(c, peer_user, &l);
		if (rc == CHAT_OK && l.n == 0) {
			fprintf(stderr, "chat-client: %s has no devices\n", peer_user);
			rc = CHAT_ENOTFOUND;
		}
		if (rc == CHAT_OK)
			rc = list_devices(c, c->net.user, &l);
	}
	if (rc != CHAT_OK) {
		free(l.a);
		return rc;
	}
	*out = l.a;
	*n = l.n;
	return CHAT_OK;
}

/* ---- receiving ---- */

/* Decrypts a pairwise message from addr: an existing session, or a new one
 * from its X3DH part. CHAT_OK with the plaintext in out. */
static int decrypt_pairwise(client *c, const char *addr, const uint8_t *msg, size_t len,
                            uint8_t *out, size_t *out_len, uint8_t remote_ik[E2E_KEY])
{
	cstate *st = &c->st;
	peer *p = state_peer(st, addr, false);
	e2e_prekey pre;
	int has_pre = e2e_pairwise_prekey(msg, len, &pre);
	if (has_pre < 0)
		return CHAT_EINVAL;
	bool known_ek = false;
	for (int i = 0; p && i < p->nsess; i++) {
		if (has_pre == 1 && sodium_memcmp(p->sess[i]->ek_pk, pre.ek, E2E_KEY) == 0)
			known_ek = true;
		if (e2e_pairwise_decrypt(p->sess[i], out, out_len, msg, len, NULL) == 0) {
			memcpy(remote_ik, p->sess[i]->remote_ik, E2E_KEY);
			if (i > 0) {   /* the session the peer uses becomes ours too */
				e2e_session *s = p->sess[i];
				p->sess[i] = p->sess[0];
				p->sess[0] = s;
			}
			return CHAT_OK;
		}
	}
	if (has_pre != 1 || known_ek || pre.spk_id != st->spk_id)
		return CHAT_EINVAL;
	opk_priv *o = pre.opk_id ? state_opk(st, pre.opk_id) : NULL;
	if (pre.opk_id && !o)
		return CHAT_EINVAL;   /* used already: a replayed first message */
	e2e_session *s = calloc(1, sizeof *s);
	if (!s)
		return CHAT_ENOMEM;
	if (e2e_x3dh_respond(s, st->ik_pk, st->ik_sk, st->spk_pk, st->spk_sk, o ? o->sk : NULL,
	                     &pre, NULL) != 0 ||
	    e2e_pairwise_decrypt(s, out, out_len, msg, len, NULL) != 0) {
		e2e_wipe(s, sizeof *s);
		free(s);
		return CHAT_EINVAL;
	}
	memcpy(remote_ik, s->remote_ik, E2E_KEY);
	trust_seen_key(c, addr, s->remote_ik, false);   /* a new device or key: a notice */
	state_peer_push(state_peer(st, addr, true), s);
	if (o)
		state_drop_opk(st, pre.opk_id);
	return CHAT_OK;
}

/* Decrypts a message body into its plaintext (type byte first). */
static int decrypt_body(client *c, const char *conv, const char *from, const uint8_t *b,
                        size_t len, uint8_t *out, size_t *out_len)
{
	e2e_body body;
	uint8_t ik[E2E_KEY];
	if (e2e_body_parse(b, len, &body) != 0)
		return CHAT_EINVAL;
	if (body.kind == E2E_KIND_PAIRWISE) {
		if (body.pairwise_len > PT_MAX ||
		    decrypt_pairwise(c, from, body.pairwise, body.pairwise_len, out, out_len, ik) != CHAT_OK)
			return CHAT_EINVAL;
	} else {
		const char *gid = conv + 2;
		if (strncmp(conv, "g:", 2) != 0)
			return CHAT_EINVAL;
		if (body.pairwise) {   /* the sender's new sender key */
			uint8_t d[512];
			size_t dl;
			if (body.pairwise_len > sizeof d ||
			    decrypt_pairwise(c, from, body.pairwise, body.pairwise_len, d, &dl, ik) != CHAT_OK)
				return CHAT_EINVAL;
			bool ok = dl == 9 + E2E_KEY + strlen(gid) && d[0] == E2E_PT_SENDER_KEY &&
			          memcmp(d + 9 + E2E_KEY, gid, dl - 9 - E2E_KEY) == 0;
			if (ok) {
				peer_skey *k = state_peer_skey(&c->st, gid, from, true);
				e2e_chain_new(k->chain, e2e_get32(d + 1), d + 9);
				k->chain->n = e2e_get32(d + 5);
				memcpy(k->chain->sig_pk, ik, E2E_KEY);
			}
			e2e_wipe(d, sizeof d);
			if (!ok)
				return CHAT_EINVAL;
		}
		peer_skey *k = state_peer_skey(&c->st, gid, from, false);
		if (!k || body.sender_len > PT_MAX ||
		    e2e_sender_decrypt(k->chain, out, out_len, body.sender, body.sender_len, conv) != 0)
			return CHAT_EINVAL;
	}
	return *out_len >= 1 ? CHAT_OK : CHAT_EINVAL;
}

static void pend(client *c, const char *conv, uint64_t seq, bool read)
{
	if (!read && c->puback_delivered)   /* our PUBACK was the delivered receipt */
		return;
	struct pending *p = NULL;
	for (size_t i = 0; i < c->npend && !p; i++)
		if (strcmp(c->pend[i].conv, conv) == 0 && c->pend[i].read == read &&
		    c->pend[i].n < 1000)
			p = &c->pend[i];
	if (!p) {
		struct pending *np = realloc(c->pend, (c->npend + 1) * sizeof *np);
		if (!np)
			return;
		c->pend = np;
		p = &c->pend[c->npend++];
		snprintf(p->conv, sizeof p->conv, "%s", conv);
		p->n = 0;
		p->read = read;
	}
	p->seqs[p->n++] = seq;
}

void chat_flush_receipts(client *c)
{
	cbw *w = &c->net.w;
	for (size_t i = 0; i < c->npend; i++) {
		struct pending *p = &c->pend[i];
		cbw_reset(w);
		cbw_map(w, 3);
		cbw_text(w, "s");
		cbw_text(w, p->read ? "read" : "delivered");
		cbw_text(w, "conv");
		cbw_text(w, p->conv);
		cbw_text(w, "seqs");
		cbw_array(w, p->n);
		for (size_t j = 0; j < p->n; j++)
			cbw_uint(w, p->seqs[j]);
		if (cbw_status(w) == CHAT_OK)
			net_publish(&c->net, "chat/receipt", w->buf, w->len);
	}
	free(c->pend);
	c->pend = NULL;
	c->npend = 0;
}

/* Text as one output line: control characters become spaces. */
void chat_print(client *c, const char *conv, uint64_t seq, const char *from,
                       uint8_t *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (t[i] < 0x20 || t[i] == 0x7f)
			t[i] = ' ';
	if (c->interactive)
		printf("[%s #%llu] %s: %.*s\n", conv, (unsigned long long)seq, from, (int)n, t);
	else
		printf("%s\t%llu\t%s\t%.*s\n", conv, (unsigned long long)seq, from, (int)n, t);
	fflush(stdout);
}

static void on_msg(client *c, ev *e)
{
	char conv[NAME_MAX_ + 4], from[ADDR_MAX];
	item_str(conv, sizeof conv, &e->conv);
	item_str(from, sizeof from, &e->from);
	if (!e->has_seq || e->body.type != CBR_BYTES || !conv[0] || !from[0])
		return;
	if (state_seen(&c->st, conv, e->seq)) {   /* a duplicate: acknowledge again */
		fprintf(stderr, "chat-client: duplicate %s #%llu dropped\n", conv,
		        (unsigned long long)e->seq);
		pend(c, conv, e->seq, false);
		return;
	}
	c->last_msg_ms = now_ms();
	uint8_t *pt = malloc(e->body.len + 1);
	size_t n = 0;
	if (!pt)
		return;
	int rc = decrypt_body(c, conv, from, e->body.ptr, e->body.len, pt, &n);
	if (rc == CHAT_OK && pt[0] == E2E_PT_TEXT) {
		state_history(&c->st, conv, e->seq, from, false, (const char *)pt + 1, n - 1);
		chat_print(c, conv, e->seq, from, pt + 1, n - 1);
	} else if (rc == CHAT_OK && pt[0] == ATT_PT_TYPE) {
		/* the state (keys used up) is saved before the download */
		state_mark_seen(&c->st, conv, e->seq);
		state_save(&c->st);
		media_receive(c, conv, e->seq, from, pt, n);
	} else if (rc == CHAT_OK) {
		fprintf(stderr, "chat-client: %s #%llu from %s has a plaintext of unknown type %u; skipped\n",
		        conv, (unsigned long long)e->seq, from, pt[0]);
	} else {
		fprintf(stderr, "chat-client: %s #%llu from %s does not decrypt; skipped\n", conv,
		        (unsigned long long)e->seq, from);
	}
	e2e_wipe(pt, e->body.len + 1);
	free(pt);
	state_mark_seen(&c->st, conv, e->seq);
	state_save(&c->st);
	pend(c, conv, e->seq, c->interactive && rc == CHAT_OK);
}

static void on_group(client *c, ev *e)
{
	char gid[NAME_MAX_], conv[NAME_MAX_ + 4], op[32], by[NAME_MAX_];
	item_str(gid, sizeof gid, &e->gid);
	item_str(conv, sizeof conv, &e->conv);
	item_str(op, sizeof op, &e->op);
	item_str(by, sizeof by, &e->by);
	if (!e->has_seq || !conv[0])
		return;
	if (!state_seen(&c->st, conv, e->seq)) {
		own_skey *k = state_own_skey(&c->st, gid, false);
		if (k)   /* membership changed: the next send uses a new sender key */
			k->rotate = true;
		char who[512] = "";
		for (size_t i = 0; i < e->nlist; i++) {
			char u[NAME_MAX_];
			item_str(u, sizeof u, &e->list[i]);
			snprintf(who + strlen(who), sizeof who - strlen(who), "%s%s", i ? "," : "", u);
		}
		say(c, "group %s: %s %s (by %s)\n", gid, op, who, by);
		state_mark_seen(&c->st, conv, e->seq);
		state_save(&c->st);
	}
	pend(c, conv, e->seq, false);
}

/* An admin removed a device of a user we talk to (docs/PROTOCOL.md §3): its
 * sessions go, and the key set loses it (a notice). */
static void on_devices(client *c, ev *e)
{
	char user[NAME_MAX_], removed[NAME_MAX_], addr[2 * NAME_MAX_];
	item_str(user, sizeof user, &e->user);
	item_str(removed, sizeof removed, &e->removed);
	if (!chat_valid_user(user, strlen(user)) || !chat_valid_device(removed, strlen(removed)))
		return;
	char (*devs)[NAME_MAX_] = calloc(e->nlist + 1, sizeof *devs);
	if (!devs)
		return;
	size_t n = 0;
	for (size_t i = 0; i < e->nlist; i++)
		if (e->list[i].type == CBR_TEXT && e->list[i].len < NAME_MAX_ &&
		    chat_valid_device((const char *)e->list[i].ptr, e->list[i].len))
			item_str(devs[n++], NAME_MAX_, &e->list[i]);
	snprintf(addr, sizeof addr, "%s/%s", user, removed);
	if (strcmp(addr, c->net.addr) != 0) {
		state_peer_forget(&c->st, addr);
		if (state_contact(&c->st, user, false))
			trust_device_list(c, user, (const char (*)[NAME_MAX_])devs, n);
		state_save(&c->st);
	}
	free(devs);
}

/* User `by` has message (conv, seq) in state st (ST_DELIVERED or
 * ST_READ): the ✓✓ or read line, and the message's status in the history.
 * A group message of ours is delivered (read) when every user it went to
 * has it (read it): one more line then, "delivered to all" ("read by
 * all"). true when the history changed. */
static bool apply_state(client *c, const char *conv, uint64_t seq, const char *by, int st)
{
	say(c, "%s %s #%llu (%s)\n", st == ST_READ ? "read" : "✓✓", conv, (unsigned long long)seq, by);
	hist *h = state_find_out(&c->st, conv, seq);
	if (!h)
		return false;
	if (!h->nusers) {   /* a dm: the peer is everyone */
		if (st <= h->status)
			return false;
		h->status = st;
		return true;
	}
	bool changed = false;
	int least = ST_READ;
	for (size_t i = 0; i < h->nusers; i++) {
		if (strcmp(h->users[i], by) == 0 && st > h->ust[i]) {
			h->ust[i] = (uint8_t)st;
			changed = true;
		}
		if (h->ust[i] < least)
			least = h->ust[i];
	}
	if (changed && least >= ST_DELIVERED && least > h->status) {
		h->status = least;
		say(c, least == ST_READ ? "read %s #%llu read by all\n" : "✓✓ %s #%llu delivered to all\n",
		    conv, (unsigned long long)seq);
	}
	return changed;
}

static bool apply_receipt(client *c, const char *conv, uint64_t seq, const char *by,
                          const char *s)
{
	if (strcmp(s, "read") == 0 || strcmp(s, "delivered") == 0)
		return apply_state(c, conv, seq, by, s[0] == 'r' ? ST_READ : ST_DELIVERED);
	say(c, "%s %s #%llu (%s)\n", s, conv, (unsigned long long)seq, by);   /* expired */
	return false;
}

static void on_receipt(client *c, ev *e)
{
	char conv[NAME_MAX_ + 4], s[16], by[NAME_MAX_];
	item_str(conv, sizeof conv, &e->conv);
	item_str(s, sizeof s, &e->s);
	item_str(by, sizeof by, &e->by);
	bool changed = false;
	for (size_t i = 0; i < e->nseqs; i++)
		changed |= apply_receipt(c, conv, e->seqs[i], by, s);
	if (changed)
		state_save(&c->st);
}

/* ---- protocol v2 events ---- */

/* One `sents` item: our awaited send's (publish_send), or another one. */
static void on_sent_item(void *ctx, const cev_sent *s)
{
	sents_ctx *sc = ctx;
	if (sc->w && same_cid(&s->cid, sc->w)) {
		sc->found = true;
		if (!sc->apply)
			return;
		item_str(sc->conv, sc->conv_cap, &s->conv);
		*sc->seq = s->seq;
		client *c = sc->c;
		free(c->dl);   /* the same cid twice in one event: the last counts */
		c->ndl = 0;
		c->dl = calloc(s->ndl ? s->ndl : 1, sizeof *c->dl);
		for (size_t i = 0; i < s->ndl && c->dl; i++)
			item_str(c->dl[c->ndl++], NAME_MAX_, &s->dl[i]);
		return;
	}
	if (!sc->apply)
		return;
	/* the confirmation of a send we no longer wait for */
	char conv[NAME_MAX_ + 4];
	item_str(conv, sizeof conv, &s->conv);
	say(sc->c, "✓ %s #%llu sent\n", conv, (unsigned long long)s->seq);
	for (size_t i = 0; i < s->ndl; i++) {
		char by[NAME_MAX_];
		item_str(by, sizeof by, &s->dl[i]);
		apply_state(sc->c, conv, s->seq, by, ST_DELIVERED);
	}
}

static void on_sents(client *c, const qmsg *m)
{
	sents_ctx sc = { .c = c, .apply = true };
	const char *why;
	if (cev_sents(m->payload, m->len, scratch_sent(), on_sent_item, &sc, &why) != CHAT_OK)
		fprintf(stderr, "chat-client: a malformed sents event ignored: %s\n", why);
	else
		state_save(&c->st);
}

static void on_rset(void *ctx, const cev_rcpts *h, const cev_rset *set)
{
	client *c = ctx;
	char conv[NAME_MAX_ + 4], s[16];
	item_str(conv, sizeof conv, &h->conv);
	item_str(s, sizeof s, &h->s);
	for (size_t i = 0; i < set->nby; i++) {
		char by[NAME_MAX_];
		item_str(by, sizeof by, &set->by[i]);
		for (size_t j = 0; j < set->nseqs; j++)
			apply_receipt(c, conv, set->seqs[j], by, s);
	}
}

static void on_rcpts(client *c, const qmsg *m)
{
	static void *set;
	cev_rcpts h;
	const char *why;
	if (cev_rcpts_each(m->payload, m->len, &h, scratch(&set, sizeof(cev_rset)), on_rset, c,
	                   &why) != CHAT_OK)
		fprintf(stderr, "chat-client: a malformed rcpts event ignored: %s\n", why);
	else
		state_save(&c->st);
}

static void on_caps(client *c, const qmsg *m)
{
	cev_caps r;
	const char *why;
	c->caps_rid = 0;
	if (cev_caps_reply(m->payload, m->len, &r, &why) != CHAT_OK) {
		fprintf(stderr, "chat-client: a malformed reply to caps ignored: %s\n", why);
		return;
	}
	if (!r.ok) {
		char code[64], msg[200];
		item_str(code, sizeof code, &r.code);
		item_str(msg, sizeof msg, &r.msg);
		fprintf(stderr, "chat-client: the server does not take capabilities (%s: %s); "
		        "it sends the v1 forms\n", code, msg);
		return;
	}
	c->puback_delivered = r.has_server && r.puback_delivered;
	if (c->interactive) {   /* the other modes keep stderr for what happened */
		char names[64] = "";
		for (unsigned i = 0; i < CEV_NCAPS; i++)
			if (r.caps & (1u << i))
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
				         names[0] ? "," : "", cev_cap_name(i));
		say(c, "protocol v2: %s; delivered receipts %s\n", names[0] ? names : "no capabilities",
		    c->puback_delivered ? "by PUBACK" : "sent");
	}
}

int chat_caps(client *c)
{
	uint64_t rid = net_req_begin(&c->net, 1, "caps");
	cbw *w = &c->net.w;
	cbw_text(w, "caps");
	cbw_array(w, CEV_NCAPS);
	for (unsigned i = 0; i < CEV_NCAPS; i++)
		cbw_text(w, cev_cap_name(i));
	if (cbw_status(w) != CHAT_OK || net_publish(&c->net, "chat/ctl", w->buf, w->len) != CHAT_OK)
		return CHAT_EIO;
	c->caps_rid = rid;
	if (!net_flush(&c->net, REQ_MS)) {
		fprintf(stderr, "chat-client: the broker did not acknowledge our capabilities\n");
		return CHAT_EIO;
	}
	return net_subscribe(&c->net, c->net.t_inbox, REQ_MS);
}

static void dispatch(client *c, const qmsg *m, bool in_batch);

static void on_batch_ev(void *ctx, const uint8_t *p, size_t len)
{
	client *c = ctx;
	qmsg one = { c->net.t_inbox, (uint8_t *)p, len };
	dispatch(c, &one, true);
}

/* One inbox event (or one element of a batch). */
static void dispatch(client *c, const qmsg *m, bool in_batch)
{
	ev *e = scratch_ev();
	if (ev_decode(e, m->payload, m->len) != CHAT_OK)
		return;
	if (cbr_eq(&e->k, "batch")) {
		const char *why;
		if (in_batch)
			fprintf(stderr, "chat-client: a batch inside a batch ignored\n");
		else if (cev_batch(m->payload, m->len, on_batch_ev, c, &why) != CHAT_OK)
			fprintf(stderr, "chat-client: a malformed batch ignored: %s\n", why);
	} else if (cbr_eq(&e->k, "sents")) {
		on_sents(c, m);
	} else if (cbr_eq(&e->k, "rcpts")) {
		on_rcpts(c, m);
	} else if (cbr_eq(&e->k, "ctl") && e->has_rid && c->caps_rid && e->rid == c->caps_rid) {
		on_caps(c, m);
	} else if (cbr_eq(&e->k, "error") && e->has_rid && c->caps_rid && e->rid == c->caps_rid) {
		char msg[200];
		item_str(msg, sizeof msg, &e->msg);
		fprintf(stderr, "chat-client: the server refused our capabilities: %s\n", msg);
		c->caps_rid = 0;
	} else if (cbr_eq(&e->k, "msg")) {
		on_msg(c, e);
	} else if (cbr_eq(&e->k, "group")) {
		on_group(c, e);
	} else if (cbr_eq(&e->k, "receipt")) {
		on_receipt(c, e);
	} else if (cbr_eq(&e->k, "devices")) {
		on_devices(c, e);
	} else if (cbr_eq(&e->k, "sync") && e->done) {
		c->sync_done = true;
	} else if (cbr_eq(&e->k, "error")) {
		char code[64], msg[200];
		item_str(code, sizeof code, &e->code);
		item_str(msg, sizeof msg, &e->msg);
		fprintf(stderr, "chat-client: server error %s: %s\n", code, msg);
	}
}

void chat_process(client *c)
{
	qmsg *m;
	while ((m = net_pop(&c->net))) {
		if (strcmp(m->topic, c->net.t_status) == 0)
			chat_status(c, m);
		else if (strcmp(m->topic, c->net.t_inbox) == 0)
			dispatch(c, m, false);
		qmsg_free(m);
		if (c->npend && c->net.nq == 0)
			chat_flush_receipts(c);
	}
	if (c->npend)
		chat_flush_receipts(c);
}
