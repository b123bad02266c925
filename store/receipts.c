/* receipts.c — how far each recipient user got with each message: delivered,
 * then read.
 *
 * One small record per (message, user) in rstate, keyed conv \0 seq \0 user
 * so the expiry sweep deletes a message's states with one prefix walk.
 * States only move forward; the sender's own user has none, and group
 * events (which take a seq in a group's order) have none at all. The message
 * record (kept as metadata after its body is gone) supplies the sender to
 * notify.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

/* Whether v[i] came earlier in v. v[0..asc) is strictly ascending, as a
 * receipt's seqs usually are, so no seq there repeats: only the rest needs
 * the scan (up to 1000 seqs, on the broker's thread). */
static bool seen_before(const uint64_t *v, size_t i, size_t asc)
{
	if (i < asc)
		return false;
	for (size_t j = 0; j < i; j++)
		if (v[j] == v[i])
			return true;
	return false;
}

static bool sent_by(const char *from, const char *user, size_t ul)
{
	return strncmp(from, user, ul) == 0 && from[ul] == '/';
}

/* Moves one message's state for `by` forward; from_out gets its sender.
 * The message is read unless the caller already has it (pre). rs is the
 * read of the state record (key sk; NULL: none). */
static int receipt_one(store *st, const uint8_t *mk, size_t mklen, const char *by, size_t ul,
                       const uint8_t *sk, size_t sklen, const rocksdb_pinnableslice_t *rs,
                       enum store_rstate state,
                       bool received, char *from_out, bool *changed, enum store_rstate *prev,
                       const store_msg *pre)
{
	rocksdb_pinnableslice_t *val = NULL;
	store_msg m;
	char conv[CHAT_CONV_MAX + 1];
	int rc = CHAT_OK;
	uint8_t hdr[STORE_MSG_HDR_MAX];
	if (pre)
		m = *pre;
	else
		rc = store_msg_meta(st, mk, mklen, &m, &val, conv, hdr);
	if (rc == CHAT_ENOTFOUND || rc == CHAT_ECORRUPT)
		return CHAT_OK; /* unknown or expired */
	if (rc != CHAT_OK)
		return rc;
	bool event = m.kind != STORE_KIND_MSG;
	if (!event)
		snprintf(from_out, CHAT_ADDR_MAX + 1, "%s", m.from);
	rocksdb_pinnableslice_destroy(val);
	if (event)
		return CHAT_OK; /* a group event: acknowledged, but it has no state */
	if (sent_by(from_out, by, ul))
		return CHAT_OK;

	uint8_t cur = STORE_R_NONE;
	rc = store_fixed_value(st, STORE_CF_RSTATE, rs, &cur, 1);
	if (rc != CHAT_OK && rc != CHAT_ENOTFOUND && rc != CHAT_ECORRUPT)
		return rc;
	if (rc == CHAT_OK && cur <= STORE_R_READ)
		*prev = (enum store_rstate)cur;
	if (rc == CHAT_OK && cur >= state)
		return CHAT_OK;
	if (rc != CHAT_OK && !received)
		return CHAT_OK; /* never received by this user: nothing to move */
	uint8_t v = (uint8_t)state;
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_RSTATE], (const char *)sk, sklen,
	                          (const char *)&v, 1);
	*changed = true;
	return CHAT_OK;
}

/* What one chunk of a receipt reads, read together (store_many_get) before
 * the chunk is applied: per seq its message key, addr's rcpts entry and the
 * message's refcount (when addr is given and the entry is not sole), by's
 * state record (when a state moves). Allocated once per store. */
struct store_reads {
	uint8_t mk[STORE_MANY][STORE_MSGKEY_MAX];
	uint8_t rk[STORE_MANY][STORE_RCPTKEY_MAX];
	uint8_t sk[STORE_MANY][STORE_RCPTKEY_MAX];
	size_t mklen[STORE_MANY], rklen[STORE_MANY], sklen[STORE_MANY];
	bool again[STORE_MANY]; /* the seq came earlier in the receipt */
	rocksdb_pinnableslice_t *rcpt[STORE_MANY], *refs[STORE_MANY], *rstate[STORE_MANY];
	store_many many;
};

void store_reads_free(store *st)
{
	free(st->reads);
	st->reads = NULL;
}

static void chunk_free(struct store_reads *r, size_t m)
{
	store_many_free(r->rcpt, m);
	store_many_free(r->refs, m);
	store_many_free(r->rstate, m);
}

/* Whether an rcpts value ends in STORE_RCPT_SOLE: no refcount to read. */
static bool rcpt_sole(const rocksdb_pinnableslice_t *v)
{
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	return store_rcpt_len(p, vlen) == 9;
}

static int chunk_read(store *st, struct store_reads *r, const char *addr, size_t alen,
                      const char *by, size_t ul, const char *conv, const uint64_t *seqs,
                      size_t base, size_t m, size_t asc, enum store_rstate state)
{
	store_many *mg = &r->many;
	for (size_t i = 0; i < m; i++) {
		r->mklen[i] = store_msgkey(r->mk[i], conv, seqs[base + i]);
		r->again[i] = seen_before(seqs, base + i, asc);
		r->rcpt[i] = r->refs[i] = r->rstate[i] = NULL;
	}
	int rc = CHAT_OK;
	if (addr) {
		for (size_t i = 0; i < m; i++)
			if (r->mklen[i] && !r->again[i]) {
				r->rklen[i] = store_rcptkey(r->rk[i], r->mk[i], r->mklen[i], addr, alen);
				store_many_want(mg, i, r->rk[i], r->rklen[i]);
			}
		rc = store_many_get(st, mg, STORE_CF_RCPTS, r->rcpt);
		for (size_t i = 0; rc == CHAT_OK && i < m; i++)
			if (r->rcpt[i] && !rcpt_sole(r->rcpt[i]))
				store_many_want(mg, i, r->mk[i], r->mklen[i]);
		if (rc == CHAT_OK)
			rc = store_many_get(st, mg, STORE_CF_REFS, r->refs);
	}
	if (rc == CHAT_OK && state != STORE_R_NONE) {
		for (size_t i = 0; i < m; i++)
			if (r->mklen[i]) {
				r->sklen[i] = store_rcptkey(r->sk[i], r->mk[i], r->mklen[i], by, ul);
				store_many_want(mg, i, r->sk[i], r->sklen[i]);
			}
		rc = store_many_get(st, mg, STORE_CF_RSTATE, r->rstate);
	}
	if (rc != CHAT_OK)
		chunk_free(r, m);
	return rc;
}

/* Applies seq base + i of the chunk r read. */
static int apply_one(store *st, struct store_reads *r, size_t i, const char *addr, size_t alen,
                     const char *by, size_t ul, size_t base, enum store_rstate state,
                     const bool *received, uint64_t *qseqs_out,
                     char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed,
                     enum store_rstate *prev_out, int64_t *gone)
{
	size_t at = base + i;
	enum store_rstate prev = STORE_R_NONE;
	if (qseqs_out)
		qseqs_out[at] = 0;
	if (state != STORE_R_NONE) {
		from_out[at][0] = '\0';
		changed[at] = false;
	}
	if (prev_out)
		prev_out[at] = STORE_R_NONE;
	if (!r->mklen[i])
		return CHAT_OK;
	const uint8_t *mk = r->mk[i];
	size_t mklen = r->mklen[i];
	bool again = r->again[i], got = !received || received[at];
	store_msg m;
	rocksdb_pinnableslice_t *val = NULL;
	char cv[CHAT_CONV_MAX + 1];
	bool have = false;
	int rc = CHAT_OK;
	if (addr) {
		uint8_t q[8], cnt[8];
		bool sole;
		rc = store_rcpt_value(st, r->rcpt[i], q, &sole);
		if (rc == CHAT_OK) {
			int refs_rc = sole ? CHAT_OK
			                   : store_fixed_value(st, STORE_CF_REFS, r->refs[i], cnt,
			                                       sizeof cnt);
			rc = store_ack_one(st, addr, alen, mk, mklen, r->rk[i], r->rklen[i], q, sole,
			                   refs_rc, cnt, &m, &val, cv, &have);
			if (rc == CHAT_OK)
				qseqs_out[at] = store_be64_get(q);
		} else if (rc == CHAT_ENOTFOUND) {
			rc = CHAT_OK; /* not queued for addr (or a repeat) */
		}
		got = qseqs_out[at] != 0;
		*gone += got;
	}
	if (rc == CHAT_OK && state != STORE_R_NONE)
		rc = receipt_one(st, mk, mklen, by, ul, r->sk[i], r->sklen[i], r->rstate[i], state, got,
		                 from_out[at], again ? &(bool){ false } : &changed[at], &prev,
		                 have ? &m : NULL);
	rocksdb_pinnableslice_destroy(val);
	if (prev_out)
		prev_out[at] = prev;
	return rc;
}

int store_receipt_batch(store *st, const char *addr, const char *by, size_t ul, const char *conv,
                        const uint64_t *seqs, size_t n, enum store_rstate state,
                        const bool *received, uint64_t *qseqs_out,
                        char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed,
                        enum store_rstate *prev_out)
{
	size_t alen = addr ? strlen(addr) : 0;
	if (!st->reads && !(st->reads = calloc(1, sizeof *st->reads)))
		return store_fail(st, CHAT_ENOMEM, "out of memory");
	struct store_reads *r = st->reads;
	store_batch(st);
	int64_t gone = 0;
	int rc = CHAT_OK;
	size_t asc = n ? 1 : 0;
	while (asc < n && seqs[asc] > seqs[asc - 1])
		asc++;
	/* Every read sees the store as it was before this batch, as it did
	 * when each was its own get: reading a chunk ahead changes nothing. */
	for (size_t base = 0; base < n && rc == CHAT_OK; base += STORE_MANY) {
		size_t m = n - base < STORE_MANY ? n - base : STORE_MANY;
		rc = chunk_read(st, r, addr, alen, by, ul, conv, seqs, base, m, asc, state);
		if (rc != CHAT_OK)
			break; /* chunk_read freed what it read */
		for (size_t i = 0; i < m && rc == CHAT_OK; i++)
			rc = apply_one(st, r, i, addr, alen, by, ul, base, state, received, qseqs_out,
			               from_out, changed, prev_out, &gone);
		chunk_free(r, m);
	}
	if (rc == CHAT_OK && gone)
		rc = store_queue_count_add(st, addr, alen, -gone);
	if (rc != CHAT_OK) {
		store_rollback(st);
		return rc;
	}
	return rocksdb_writebatch_count(st->wb) ? store_commit(st) : CHAT_OK;
}

static int state_check(store *st, enum store_rstate state)
{
	return state == STORE_R_DELIVERED || state == STORE_R_READ
	       ? CHAT_OK : store_fail(st, CHAT_EINVAL, "bad receipt state %d", (int)state);
}

int store_receipts(store *st, const char *conv, const uint64_t *seqs, size_t n, const char *by,
                   enum store_rstate state, char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed,
                   enum store_rstate *prev_out, const bool *received)
{
	size_t ul = strnlen(by, CHAT_USER_MAX + 1);
	if (!ul || ul > CHAT_USER_MAX)
		return store_fail(st, CHAT_EINVAL, "bad user id");
	int rc = state_check(st, state);
	return rc ? rc : store_receipt_batch(st, NULL, by, ul, conv, seqs, n, state, received, NULL,
	                                     from_out, changed, prev_out);
}

int store_deliver(store *st, const char *addr, const char *conv, const uint64_t *seqs, size_t n,
                  enum store_rstate state, uint64_t *qseqs_out,
                  char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed, enum store_rstate *prev_out)
{
	size_t ul = chat_addr_user_len(addr);
	if (!store_addrlen(addr) || !ul || ul > CHAT_USER_MAX)
		return store_fail(st, CHAT_EINVAL, "bad device address");
	int rc = state_check(st, state);
	return rc ? rc : store_receipt_batch(st, addr, addr, ul, conv, seqs, n, state, NULL,
	                                     qseqs_out, from_out, changed, prev_out);
}
