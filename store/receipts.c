// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
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

/* A receipt being applied (store__receipt_batch): the call's receipt and
 * who it is for, and how many of addr's queue entries went. */
struct batch {
	const store_receipt *r;
	const char *addr;  /* NULL: no queue entries go */
	size_t alen;
	const char *by;    /* the user whose states move (ul bytes) */
	size_t ul;
	size_t asc;        /* seqs[0..asc) ascend */
	int64_t gone;
};

/* One seq's state move: what is known of it, and what it found. */
struct move {
	bool received;
	const store_msg *pre; /* the message, when the caller has it already */
	char *from;           /* out: its sender */
	bool *changed;
	enum store_rstate prev;
};

/* What one chunk of a receipt reads, read together (store__many_get) before
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

void store__reads_free(store *st)
{
	free(st->reads);
	st->reads = NULL;
}

static void chunk_free(struct store_reads *r, size_t m)
{
	store__many_free(r->rcpt, m);
	store__many_free(r->refs, m);
	store__many_free(r->rstate, m);
}

/* Whether an rcpts value ends in STORE_RCPT_SOLE: no refcount to read. */
static bool rcpt_sole(const rocksdb_pinnableslice_t *v)
{
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	return store__rcpt_len(p, vlen) == 9;
}

/* Moves the state of chunk entry i for b->by forward (rd: the chunk's
 * reads; rd->rstate[i] the state record, NULL: none); o->from gets its
 * sender. The message is read unless the caller already has it. */
static int receipt_one(store *st, const struct batch *b, const struct store_reads *rd, size_t i,
                       struct move *o)
{
	struct store_msg_read rm = { .val = NULL };
	store_msg m;
	int rc = CHAT_OK;
	if (o->pre)
		m = *o->pre;
	else if ((rc = store__msg_meta(st, rd->mk[i], rd->mklen[i], &rm)) == CHAT_OK)
		m = rm.m;
	if (rc == CHAT_ENOTFOUND || rc == CHAT_ECORRUPT)
		return CHAT_OK; /* unknown or expired */
	if (rc != CHAT_OK)
		return rc;
	bool event = m.kind != STORE_KIND_MSG;
	if (!event)
		snprintf(o->from, CHAT_ADDR_MAX + 1, "%s", m.from);
	rocksdb_pinnableslice_destroy(rm.val);
	if (event)
		return CHAT_OK; /* a group event: acknowledged, but it has no state */
	if (sent_by(o->from, b->by, b->ul))
		return CHAT_OK;

	enum store_rstate state = b->r->state;
	uint8_t cur = STORE_R_NONE;
	rc = store__fixed_value(st, STORE_CF_RSTATE, rd->rstate[i], &cur, 1);
	if (rc != CHAT_OK && rc != CHAT_ENOTFOUND && rc != CHAT_ECORRUPT)
		return rc;
	if (rc == CHAT_OK && cur <= STORE_R_READ)
		o->prev = (enum store_rstate)cur;
	if (rc == CHAT_OK && cur >= state)
		return CHAT_OK;
	if (rc != CHAT_OK && !o->received)
		return CHAT_OK; /* never received by this user: nothing to move */
	uint8_t v = (uint8_t)state;
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_RSTATE], (const char *)rd->sk[i],
	                          rd->sklen[i], (const char *)&v, 1);
	*o->changed = true;
	return CHAT_OK;
}

/* Reads chunk [base, base + m) of b's seqs into r. */
static int chunk_read(store *st, struct store_reads *r, const struct batch *b, size_t base,
                      size_t m)
{
	store_many *mg = &r->many;
	const uint64_t *seqs = b->r->seqs;
	for (size_t i = 0; i < m; i++) {
		r->mklen[i] = store__msgkey(r->mk[i], b->r->conv, seqs[base + i]);
		r->again[i] = seen_before(seqs, base + i, b->asc);
		r->rcpt[i] = r->refs[i] = r->rstate[i] = NULL;
	}
	int rc = CHAT_OK;
	if (b->addr) {
		for (size_t i = 0; i < m; i++)
			if (r->mklen[i] && !r->again[i]) {
				r->rklen[i] = store__rcptkey(r->rk[i], r->mk[i], r->mklen[i], b->addr,
				                             b->alen);
				store__many_want(mg, i, r->rk[i], r->rklen[i]);
			}
		rc = store__many_get(st, mg, STORE_CF_RCPTS, r->rcpt);
		for (size_t i = 0; rc == CHAT_OK && i < m; i++)
			if (r->rcpt[i] && !rcpt_sole(r->rcpt[i]))
				store__many_want(mg, i, r->mk[i], r->mklen[i]);
		if (rc == CHAT_OK)
			rc = store__many_get(st, mg, STORE_CF_REFS, r->refs);
	}
	if (rc == CHAT_OK && b->r->state != STORE_R_NONE) {
		for (size_t i = 0; i < m; i++)
			if (r->mklen[i]) {
				r->sklen[i] = store__rcptkey(r->sk[i], r->mk[i], r->mklen[i], b->by,
				                             b->ul);
				store__many_want(mg, i, r->sk[i], r->sklen[i]);
			}
		rc = store__many_get(st, mg, STORE_CF_RSTATE, r->rstate);
	}
	if (rc != CHAT_OK)
		chunk_free(r, m);
	return rc;
}

/* Applies seq base + i of the chunk r read. */
static int apply_one(store *st, struct store_reads *r, struct batch *b, size_t base, size_t i)
{
	const store_receipt *rq = b->r;
	size_t at = base + i;
	if (rq->qseqs_out)
		rq->qseqs_out[at] = 0;
	if (rq->state != STORE_R_NONE) {
		rq->from_out[at][0] = '\0';
		rq->changed[at] = false;
	}
	if (rq->prev_out)
		rq->prev_out[at] = STORE_R_NONE;
	if (!r->mklen[i])
		return CHAT_OK;
	struct store_release rel = { .mk = r->mk[i], .mklen = r->mklen[i] };
	bool again = r->again[i];
	struct move o = {
		.received = !rq->received || rq->received[at],
		.from = rq->state != STORE_R_NONE ? rq->from_out[at] : NULL,
		.changed = again || rq->state == STORE_R_NONE ? &(bool){ false } : &rq->changed[at],
		.prev = STORE_R_NONE,
	};
	int rc = CHAT_OK;
	if (b->addr) {
		uint8_t q[8];
		rc = store__rcpt_value(st, r->rcpt[i], q, &rel.sole);
		if (rc == CHAT_OK) {
			if (!rel.sole)
				rel.refs_rc = store__fixed_value(st, STORE_CF_REFS, r->refs[i],
				                                 rel.cnt, sizeof rel.cnt);
			struct store_ack_entry e = { .addr = b->addr, .alen = b->alen, .rk = r->rk[i],
			                             .rklen = r->rklen[i], .q = q };
			rc = store__ack_one(st, &e, &rel);
			if (rc == CHAT_OK)
				rq->qseqs_out[at] = store__be64_get(q);
		} else if (rc == CHAT_ENOTFOUND) {
			rc = CHAT_OK; /* not queued for addr (or a repeat) */
		}
		o.received = rq->qseqs_out[at] != 0;
		b->gone += o.received;
	}
	if (rc == CHAT_OK && rq->state != STORE_R_NONE) {
		o.pre = rel.have ? &rel.m : NULL;
		rc = receipt_one(st, b, r, i, &o);
	}
	rocksdb_pinnableslice_destroy(rel.val);
	if (rq->prev_out)
		rq->prev_out[at] = o.prev;
	return rc;
}

int store__receipt_batch(store *st, const char *addr, const char *by, size_t ul,
                         const store_receipt *r)
{
	struct batch b = { .r = r, .addr = addr, .alen = addr ? strlen(addr) : 0, .by = by,
	                   .ul = ul };
	size_t n = r->n;
	if (!st->reads && !(st->reads = calloc(1, sizeof *st->reads)))
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	struct store_reads *rd = st->reads;
	store__batch(st);
	int rc = CHAT_OK;
	b.asc = n ? 1 : 0;
	while (b.asc < n && r->seqs[b.asc] > r->seqs[b.asc - 1])
		b.asc++;
	/* Every read sees the store as it was before this batch, as it did
	 * when each was its own get: reading a chunk ahead changes nothing. */
	for (size_t base = 0; base < n && rc == CHAT_OK; base += STORE_MANY) {
		size_t m = n - base < STORE_MANY ? n - base : STORE_MANY;
		rc = chunk_read(st, rd, &b, base, m);
		if (rc != CHAT_OK)
			break; /* chunk_read freed what it read */
		for (size_t i = 0; i < m && rc == CHAT_OK; i++)
			rc = apply_one(st, rd, &b, base, i);
		chunk_free(rd, m);
	}
	if (rc == CHAT_OK && b.gone)
		rc = store__queue_count_add(st, addr, b.alen, -b.gone);
	if (rc != CHAT_OK) {
		store__rollback(st);
		return rc;
	}
	return rocksdb_writebatch_count(st->wb) ? store__commit(st) : CHAT_OK;
}

static int state_check(store *st, enum store_rstate state)
{
	return state == STORE_R_DELIVERED || state == STORE_R_READ
	       ? CHAT_OK : store__fail(st, CHAT_EINVAL, "bad receipt state %d", (int)state);
}

int store_receipts(store *st, const char *by, const store_receipt *r)
{
	size_t ul = strnlen(by, CHAT_USER_MAX + 1);
	if (!ul || ul > CHAT_USER_MAX)
		return store__fail(st, CHAT_EINVAL, "bad user id");
	int rc = state_check(st, r->state);
	store_receipt only = *r;
	only.qseqs_out = NULL;
	return rc ? rc : store__receipt_batch(st, NULL, by, ul, &only);
}

int store_deliver(store *st, const char *addr, const store_receipt *r)
{
	size_t ul = chat_addr_user_len(addr);
	if (!store__addrlen(addr) || !ul || ul > CHAT_USER_MAX)
		return store__fail(st, CHAT_EINVAL, "bad device address");
	int rc = state_check(st, r->state);
	store_receipt only = *r;
	only.received = NULL;
	return rc ? rc : store__receipt_batch(st, addr, addr, ul, &only);
}
