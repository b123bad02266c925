// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* expiry.c — the TTL sweep: deleting messages whose time is up.
 *
 * The expiry index is keyed by expiry time first, so the sweep reads it
 * from the start and stops at the first entry still in the future; it
 * deletes at most `max` messages per call so the broker's tick stays short.
 * Each message goes in its own batch with everything that points at it:
 * its queue entries (the devices that never got it, reported to the
 * caller, less those of users who got it on another device), rcpts,
 * receipt states, refcount (while counted entries hold one) and, if it
 * still names this message, its dedup entry.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define EXP_PREFIX (8 + 1) /* expires \0 */

/* Room for n undelivered addresses in the store's scratch lists. */
static int addrs_reserve(store *st, size_t n)
{
	size_t ca = st->addrs_cap, cp = st->addrs_cap;
	if (chat_grow(&st->addrs, &ca, n, sizeof *st->addrs, 16) ||
	    chat_grow(&st->addr_ptrs, &cp, n, sizeof *st->addr_ptrs, 16))
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	st->addrs_cap = ca;
	return CHAT_OK;
}

struct undelivered {
	size_t mklen;
	size_t n;
	bool counted; /* an entry that holds a reference in the refs record */
};

/* An rcpts entry (msgkey \0 addr -> qseq): addr never got the message. */
static int drop_rcpt(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	struct undelivered *u = ctx;
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_RCPTS], k, klen);
	const char *addr = k + u->mklen + 1;
	size_t alen = klen - u->mklen - 1;
	size_t len = store__rcpt_len(v, vlen);
	u->counted |= len != 9; /* a corrupt entry too: drop the refcount to be sure */
	if (!alen || alen > CHAT_ADDR_MAX || !len)
		return CHAT_OK; /* corrupt: the delete is all we can do */
	int rc = addrs_reserve(st, u->n + 1);
	if (rc != CHAT_OK)
		return rc;
	memcpy(st->addrs[u->n], addr, alen);
	st->addrs[u->n][alen] = '\0';
	uint8_t qk[CHAT_ADDR_MAX + 1 + STORE_SEQ_LEN];
	size_t qklen = store__qkey(qk, addr, alen, store__be64_get((const uint8_t *)v));
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_QUEUES], (const char *)qk, qklen);
	rc = store__queue_count_add(st, st->addrs[u->n], alen, -1);
	u->n++;
	return rc;
}

/* Users who got the message (state delivered or read, msgkey \0 user). */
struct reached {
	size_t mklen;
	char (*users)[CHAT_USER_MAX + 1];
	size_t n, cap;
};

static int drop_rstate(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	struct reached *r = ctx;
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_RSTATE], k, klen);
	size_t ul = klen - r->mklen - 1;
	if (vlen != 1 || (uint8_t)v[0] < STORE_R_DELIVERED || !ul || ul > CHAT_USER_MAX)
		return CHAT_OK;
	if (chat_grow(&r->users, &r->cap, r->n + 1, sizeof *r->users, 8))
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	memcpy(r->users[r->n], k + r->mklen + 1, ul);
	r->users[r->n++][ul] = '\0';
	return CHAT_OK;
}

/* Keeps only the devices whose user never got the message on any device:
 * a message delivered to one of a user's devices was delivered to the user. */
static size_t only_unreached(store *st, size_t n, const struct reached *r)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		const char *slash = strchr(st->addrs[i], '/');
		size_t ul = slash ? (size_t)(slash - st->addrs[i]) : strlen(st->addrs[i]);
		bool got = false;
		for (size_t j = 0; j < r->n && !got; j++)
			got = strlen(r->users[j]) == ul && memcmp(r->users[j], st->addrs[i], ul) == 0;
		if (!got && kept != i)
			memcpy(st->addrs[kept], st->addrs[i], sizeof(st->addrs[0]));
		kept += !got;
	}
	return kept;
}

struct msgkey {
	const uint8_t *mk;
	size_t mklen;
};

static int drop_dedup_kv(store *st, const char *k, size_t klen, const char *v, size_t vlen,
                         void *ctx)
{
	const struct msgkey *m = ctx;
	if (vlen == m->mklen + 8 && memcmp(v, m->mk, m->mklen) == 0)
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_DEDUP], k, klen);
	return CHAT_OK;
}

/* Deletes the dedup entry of m if it still points at this message. */
static int drop_dedup(store *st, const store_msg *m, const uint8_t *mk, size_t mklen)
{
	uint8_t dk[STORE_DEDUPKEY_MAX];
	size_t dklen = store__dedupkey(dk, m->from, &m->cid);
	struct msgkey key = { mk, mklen };
	return dklen ? store__get_each(st, STORE_CF_DEDUP, dk, dklen, drop_dedup_kv, &key) : CHAT_OK;
}

/* One message, whose expiry index key is (k, klen). */
static int expire_one(store *st, const char *k, size_t klen, store_expire_cb cb, void *arg)
{
	const uint8_t *mk = (const uint8_t *)k + EXP_PREFIX;
	size_t mklen = klen - EXP_PREFIX;
	store__batch(st);
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_EXPIRY], k, klen);
	char conv[CHAT_CONV_MAX + 1];
	uint64_t seq;
	if (klen <= EXP_PREFIX || k[8] != 0 || !store__msgkey_parse(mk, mklen, conv, &seq))
		return store__commit(st); /* a corrupt index key: just drop it */

	rocksdb_pinnableslice_t *val = NULL;
	store_msg m;
	int rc = store__msg_load(st, mk, mklen, &m, &val, conv);
	bool have = rc == CHAT_OK;
	if (rc == CHAT_ENOTFOUND || rc == CHAT_ECORRUPT)
		rc = CHAT_OK;
	if (rc == CHAT_OK && have && m.kind == STORE_KIND_MSG)
		rc = drop_dedup(st, &m, mk, mklen);
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_MSGS], (const char *)mk, mklen);
	store__cache_stage_empty(st, STORE_CACHE_MSGHDR, mk, mklen);

	uint8_t prefix[STORE_MSGKEY_MAX + 1];
	memcpy(prefix, mk, mklen);
	prefix[mklen] = 0;
	struct undelivered u = { .mklen = mklen };
	if (rc == CHAT_OK)
		rc = store__prefix_each(st, STORE_CF_RCPTS, prefix, mklen + 1, drop_rcpt, &u);
	/* A refs record exists only while counted rcpts entries do (the last
	 * release deletes it; a message queued for one device never had one):
	 * most expiring messages were delivered long ago, and deleting a key
	 * that is not there still writes a tombstone, one per message. */
	if (u.counted)
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_REFS], (const char *)mk, mklen);
	struct reached r = { .mklen = mklen };
	if (rc == CHAT_OK)
		rc = store__prefix_each(st, STORE_CF_RSTATE, prefix, mklen + 1, drop_rstate, &r);
	if (rc == CHAT_OK)
		rc = store__commit(st);
	else
		store__rollback(st);
	u.n = only_unreached(st, u.n, &r);
	free(r.users);
	if (rc == CHAT_OK && have && cb) {
		for (size_t i = 0; i < u.n; i++)
			st->addr_ptrs[i] = st->addrs[i];
		m.body = m.bodies = NULL;
		m.body_len = m.bodies_len = 0;
		cb(arg, &m, seq, st->addr_ptrs, u.n);
	}
	rocksdb_pinnableslice_destroy(val);
	return rc;
}

struct sweep {
	uint64_t now;
	size_t max, done;
	store_expire_cb cb;
	void *arg;
};

static int expire_kv(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	(void)v; (void)vlen;
	struct sweep *s = ctx;
	if (s->done >= s->max || (klen >= 8 && store__be64_get((const uint8_t *)k) > s->now))
		return CHAT_STOP; /* this sweep's share is done, or nothing more is due */
	int rc = expire_one(st, k, klen, s->cb, s->arg);
	s->done += rc == CHAT_OK;
	return rc;
}

int store_expire(store *st, uint64_t now, size_t max, store_expire_cb cb, void *arg,
                 size_t *expired)
{
	struct sweep s = { .now = now, .max = max, .cb = cb, .arg = arg };
	int rc = store__prefix_each(st, STORE_CF_EXPIRY, "", 0, expire_kv, &s);
	*expired = s.done;
	return rc == CHAT_STOP ? CHAT_OK : rc;
}
