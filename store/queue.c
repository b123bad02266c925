// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* queue.c — per-device offline queues.
 *
 * A device's queue is keyed addr \0 qseq, qseq being the device's own
 * enqueue counter, so iteration replays the backlog in the order it was
 * queued. A message entry is only a pointer (conv, seq): a body sent to
 * fifty devices is stored once. An event entry (a receipt the device could
 * not take live) carries its encoded bytes. qmeta keeps, per device, the
 * next qseq and the number of entries, checked against max_queue without a
 * scan. For each message, rcpts maps recipient -> qseq while the entry is
 * there: a delivered receipt finds its entry by (conv, seq) in one read,
 * and the expiry sweep knows who never got the message.
 *
 * The invariants the code keeps (assert()ed where they are cheap, in every
 * build but Release): a queue entry is 'M' + a message key or 'E' + an
 * event; a device is queued a message once (store__distinct); a walk visits
 * qseqs above its start in strictly ascending order and no more than its
 * max; a removal takes at most one entry per distinct qseq it is given.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define QKEY_MAX (CHAT_ADDR_MAX + 1 + STORE_SEQ_LEN)
#define QMETA_LEN 16

/* fill: whether the counter cache keeps what a miss reads — yes for the
 * writers' reads, no for a connect's (a device that connects and then only
 * idles must not take a slot). */
static int qmeta_get(store *st, const char *addr, size_t alen, uint64_t *next, uint64_t *count,
                     bool fill)
{
	uint8_t meta[QMETA_LEN];
	store_counter ctr = { STORE_CF_QMETA, addr, alen };
	int rc = store__counter_get(st, &ctr, meta, sizeof meta, fill);
	*next = 1;
	*count = 0;
	if (rc == CHAT_OK) {
		*next = store__be64_get(meta);
		*count = store__be64_get(meta + 8);
	}
	return rc == CHAT_ENOTFOUND ? CHAT_OK : rc;
}

static void qmeta_put(store *st, const char *addr, size_t alen, uint64_t next, uint64_t count)
{
	uint8_t meta[QMETA_LEN];
	store__be64_put(meta, next);
	store__be64_put(meta + 8, count);
	store__counter_put(st, &(store_counter){ STORE_CF_QMETA, addr, alen }, meta, sizeof meta);
}

int store__queue_add(store *st, const char *addr, const store_qvalue *qv, uint64_t max_queue,
                     uint64_t *qseq)
{
	assert(qv->kind == STORE_QE_EVENT ||
	       (qv->kind == STORE_QE_MSG && qv->len > STORE_SEQ_LEN && qv->len <= STORE_MSGKEY_MAX));
	size_t alen = store__addrlen(addr);
	if (!alen)
		return store__fail(st, CHAT_EINVAL, "bad device address");
	uint64_t next, count;
	int rc = qmeta_get(st, addr, alen, &next, &count, true);
	if (rc != CHAT_OK)
		return rc;
	if (max_queue && count >= max_queue)
		return store__fail(st, CHAT_EQUOTA, "queue of %s is full (%llu entries)", addr,
		                   (unsigned long long)count);
	uint8_t key[QKEY_MAX];
	size_t klen = store__qkey(key, addr, alen, next);
	const char *kparts[1] = { (const char *)key };
	const char *vparts[2] = { &qv->kind, qv->len ? qv->payload : "" };
	size_t vlens[2] = { 1, qv->len };
	rocksdb_writebatch_putv_cf(st->wb, st->cf[STORE_CF_QUEUES], 1, kparts, &klen, 2, vparts,
	                           vlens);
	qmeta_put(st, addr, alen, next + 1, count + 1);
	*qseq = next;
	return CHAT_OK;
}

int store__queue_count_add(store *st, const char *addr, size_t alen, int64_t delta)
{
	uint64_t next, count;
	int rc = qmeta_get(st, addr, alen, &next, &count, true);
	if (rc != CHAT_OK)
		return rc;
	count = delta < 0 && (uint64_t)-delta > count ? 0 : count + (uint64_t)delta;
	qmeta_put(st, addr, alen, next, count);
	return CHAT_OK;
}

/* The queue whose entries entry_drop removes; found: it was given one. */
struct qdrop {
	const char *addr;
	size_t alen;
	bool found;
};

/* Adds to the batch the removal of queue entry (k, v) of the queue ctx (a
 * struct qdrop); for a message entry, its rcpts entry and one reference go
 * too. A store_kv_cb. */
static int entry_drop(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	struct qdrop *d = ctx;
	const char *addr = d->addr;
	size_t alen = d->alen;
	d->found = true;
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_QUEUES], k, klen);
	if (vlen < 2 || v[0] != STORE_QE_MSG || vlen - 1 > STORE_MSGKEY_MAX)
		return CHAT_OK; /* an event, or a corrupt entry: nothing else refers to it */
	const uint8_t *mk = (const uint8_t *)v + 1;
	uint8_t rk[STORE_RCPTKEY_MAX], q[8];
	size_t rklen = store__rcptkey(rk, mk, vlen - 1, addr, alen);
	/* whether this was the message's one reference is in the rcpts entry */
	rocksdb_pinnableslice_t *rv;
	bool sole = false;
	int rc = store__get(st, STORE_CF_RCPTS, rk, rklen, &rv);
	if (rc == CHAT_OK)
		rc = store__rcpt_value(st, rv, q, &sole);
	rocksdb_pinnableslice_destroy(rv);
	if (rc == CHAT_ENOTFOUND || rc == CHAT_ECORRUPT)
		rc = CHAT_OK; /* then the refcount decides, as before rcpts could say */
	if (rc != CHAT_OK)
		return rc;
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_RCPTS], (const char *)rk, rklen);
	return store__msg_release(st, mk, vlen - 1, sole);
}

int store__rcpt_value(store *st, const rocksdb_pinnableslice_t *v, uint8_t q[8], bool *sole)
{
	*sole = false;
	if (!v)
		return CHAT_ENOTFOUND;
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	size_t len = store__rcpt_len(p, vlen);
	if (!len)
		return store__fail(st, CHAT_ECORRUPT, "rcpts record of %zu bytes, expected 8, or 9 "
		                   "ending in '%c'", vlen, STORE_RCPT_SOLE);
	memcpy(q, p, 8);
	*sole = len == 9;
	return CHAT_OK;
}

int store__queue_drop(store *st, const char *addr)
{
	size_t alen = store__addrlen(addr);
	if (!alen)
		return store__fail(st, CHAT_EINVAL, "bad device address");
	store__counter_delete(st, &(store_counter){ STORE_CF_QMETA, addr, alen });
	/* addr \0: the '\0' keeps "bob/p" from matching "bob/p2" */
	struct qdrop d = { .addr = addr, .alen = alen };
	return store__prefix_each(st, STORE_CF_QUEUES, addr, alen + 1, entry_drop, &d);
}

static bool seen_u64(const uint64_t *v, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (v[j] == v[i])
			return true;
	return false;
}

int store_queue_event(store *st, const char *const *to, size_t n, const uint8_t *event,
                      size_t len)
{
	const char *const *rcpt;
	size_t nr;
	int rc = store__distinct(st, to, n, &rcpt, &nr);
	if (rc != CHAT_OK)
		return rc;
	store__batch(st);
	assert(nr <= n);
	for (size_t i = 0; i < nr; i++) {
		uint64_t qseq;
		store_qvalue qv = { STORE_QE_EVENT, event, len };
		rc = store__queue_add(st, rcpt[i], &qv, 0, &qseq);
		if (rc != CHAT_OK) {
			store__rollback(st);
			return rc;
		}
	}
	return store__commit(st);
}

/* One page of a queue walk: up to STORE_MANY entries copied off the
 * iterator (an event's bytes into ev), so that their messages can be read
 * together (store__many_get) before the page is visited. Allocated once per
 * store, ev grown as needed. */
struct store_qpage {
	uint64_t qseq[STORE_MANY];
	char kind[STORE_MANY]; /* STORE_QE_EVENT, STORE_QE_MSG, or 0: unreadable */
	uint8_t mk[STORE_MANY][STORE_MSGKEY_MAX];
	size_t mklen[STORE_MANY], ev_off[STORE_MANY], ev_len[STORE_MANY];
	rocksdb_pinnableslice_t *msg[STORE_MANY];
	store_many many;
	uint8_t *ev;
	size_t ev_cap;
};

void store__qpage_free(store *st)
{
	if (st->qpage)
		free(st->qpage->ev);
	free(st->qpage);
	st->qpage = NULL;
}

static bool ev_room(struct store_qpage *pg, size_t need)
{
	return chat_grow(&pg->ev, &pg->ev_cap, need, 1, 4096) == CHAT_OK;
}

/* A walk of addr's queue (store_queue_read): its iterator, the keys'
 * prefix (addr \0, plen bytes), and what it has visited. */
struct qwalk {
	const char *addr;
	const store_queue_walk *w;
	rocksdb_iterator_t *it;
	const uint8_t *p;
	size_t plen;
	bool end; /* the queue has no more */
	size_t *visited;
	uint64_t *last;
};

/* Copies up to room entries of the queue from the iterator into pg. */
static int page_fill(store *st, struct qwalk *qw, struct store_qpage *pg, size_t room, size_t *n)
{
	rocksdb_iterator_t *it = qw->it;
	const uint8_t *p = qw->p;
	size_t plen = qw->plen;
	bool *end = &qw->end;
	size_t evused = 0;
	assert(room >= 1 && room <= STORE_MANY);
	*n = 0;
	for (; *n < room; rocksdb_iter_next(it)) {
		size_t klen, vlen, i = *n;
		if (!rocksdb_iter_valid(it)) {
			*end = true;
			break;
		}
		const char *k = rocksdb_iter_key(it, &klen);
		if (klen != plen + STORE_SEQ_LEN || memcmp(k, p, plen) != 0) {
			*end = true;
			break;
		}
		const char *v = rocksdb_iter_value(it, &vlen);
		pg->qseq[i] = store__be64_get((const uint8_t *)k + plen);
		pg->kind[i] = 0;
		pg->msg[i] = NULL;
		if (vlen >= 1 && v[0] == STORE_QE_EVENT) {
			if (!ev_room(pg, evused + vlen)) /* at least one byte: ev is never NULL */
				return store__fail(st, CHAT_ENOMEM, "out of memory");
			memcpy(pg->ev + evused, v + 1, vlen - 1);
			pg->ev_off[i] = evused;
			pg->ev_len[i] = vlen - 1;
			evused += vlen - 1;
			pg->kind[i] = STORE_QE_EVENT;
		} else if (vlen >= 2 && v[0] == STORE_QE_MSG && vlen - 1 <= STORE_MSGKEY_MAX) {
			memcpy(pg->mk[i], v + 1, vlen - 1);
			pg->mklen[i] = vlen - 1;
			pg->kind[i] = STORE_QE_MSG;
		}
		++*n;
	}
	/* the page's messages, read together */
	for (size_t i = 0; i < *n; i++)
		if (pg->kind[i] == STORE_QE_MSG)
			store__many_want(&pg->many, i, pg->mk[i], pg->mklen[i]);
	return store__many_get(st, &pg->many, STORE_CF_MSGS, pg->msg);
}

/* Visits entry i of the page: as store_queue_read describes. */
static int page_visit(store *st, const struct qwalk *qw, struct store_qpage *pg, size_t i)
{
	store_qentry e = { .qseq = pg->qseq[i] };
	char conv[CHAT_CONV_MAX + 1];
	store_msg m, *mp = NULL;
	int rc = CHAT_OK;
	if (pg->kind[i] == STORE_QE_EVENT) {
		e.kind = STORE_Q_EVENT;
		e.event = pg->ev + pg->ev_off[i];
		e.event_len = pg->ev_len[i];
	} else if (pg->kind[i] == STORE_QE_MSG &&
	           store__msgkey_parse(pg->mk[i], pg->mklen[i], conv, &e.seq)) {
		e.kind = STORE_Q_MSG;
		e.conv = conv;
		rc = store__msg_decode(st, pg->mk[i], pg->mklen[i], &m, &pg->msg[i], conv);
		if (rc == CHAT_OK && (m.body || m.bodies))
			mp = &m;
		else if (rc != CHAT_EIO && rc != CHAT_ENOMEM)
			rc = CHAT_OK; /* gone, only its metadata left, or unreadable */
	} else { /* unreadable: skipped, so that it cannot block the queue */
		store__fail(st, CHAT_ECORRUPT, "queue entry %s #%llu: bad value", qw->addr,
		            (unsigned long long)e.qseq);
		e.kind = 0;
	}
	if (rc == CHAT_OK) {
		/* the iterator's order: after the start, each above the last */
		assert(e.qseq > qw->w->after && (*qw->visited == 0 || e.qseq > *qw->last));
		++*qw->visited;
		*qw->last = e.qseq;
		if (e.kind)
			rc = qw->w->cb(qw->w->arg, &e, mp);
	}
	return rc;
}

int store_queue_read(store *st, const char *addr, const store_queue_walk *w, size_t *visited,
                     uint64_t *last)
{
	uint64_t after = w->after;
	size_t max = w->max;
	*visited = 0;
	size_t alen = store__addrlen(addr);
	if (!alen)
		return store__fail(st, CHAT_EINVAL, "bad device address");
	if (after == UINT64_MAX || max == 0)
		return CHAT_OK;
	if (!st->qpage && !(st->qpage = calloc(1, sizeof *st->qpage)))
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	struct store_qpage *pg = st->qpage;
	uint8_t start[QKEY_MAX];
	size_t klen0 = store__qkey(start, addr, alen, after + 1);
	struct qwalk qw = {
		.addr = addr, .w = w, .p = start, .plen = alen + 1, .visited = visited, .last = last,
		.it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[STORE_CF_QUEUES]),
	};
	int rc = CHAT_OK;
	rocksdb_iter_seek(qw.it, (const char *)start, klen0);
	/* A page is read ahead of its visits; every read sees the store as the
	 * walk found it, as the iterator does. */
	while (rc == CHAT_OK && !qw.end && *visited < max) {
		size_t room = max - *visited, n;
		rc = page_fill(st, &qw, pg, room < STORE_MANY ? room : STORE_MANY, &n);
		for (size_t i = 0; rc == CHAT_OK && i < n; i++)
			rc = page_visit(st, &qw, pg, i);
		store__many_free(pg->msg, n);
		if (n == 0)
			break;
	}
	assert(*visited <= max);
	return store__iter_end(st, qw.it, rc);
}

/* Removes addr's entry at qseq, if there is one; true if it was. */
static int remove_one(store *st, const char *addr, size_t alen, uint64_t qseq, bool *removed)
{
	uint8_t key[QKEY_MAX];
	size_t klen = store__qkey(key, addr, alen, qseq);
	struct qdrop d = { .addr = addr, .alen = alen };
	int rc = store__get_each(st, STORE_CF_QUEUES, key, klen, entry_drop, &d);
	*removed = d.found && rc == CHAT_OK;
	return rc;
}

/* Removes the entries at qseqs in one batch. events: the caller has just
 * read them and they are events, so none is read back to learn whether a
 * message's rcpts entry and reference go with it. */
static int remove_entries(store *st, const char *addr, const uint64_t *qseqs, size_t n,
                          bool events)
{
	size_t alen = store__addrlen(addr);
	if (!alen)
		return store__fail(st, CHAT_EINVAL, "bad device address");
	store__batch(st);
	int64_t gone = 0;
	int rc = CHAT_OK;
	bool asc = true; /* qseqs[0..i] strictly ascending, as a queue read gives them */
	for (size_t i = 0; i < n && rc == CHAT_OK; i++) {
		asc = asc && (i == 0 || qseqs[i] > qseqs[i - 1]);
		if (!asc && seen_u64(qseqs, i))
			continue;
		bool removed = true;
		if (events) {
			uint8_t key[QKEY_MAX];
			size_t klen = store__qkey(key, addr, alen, qseqs[i]);
			rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_QUEUES], (const char *)key,
			                             klen);
		} else {
			rc = remove_one(st, addr, alen, qseqs[i], &removed);
		}
		gone += rc == CHAT_OK && removed;
	}
	assert(gone >= 0 && (uint64_t)gone <= n);
	if (rc == CHAT_OK && gone)
		rc = store__queue_count_add(st, addr, alen, -gone);
	if (rc != CHAT_OK) {
		store__rollback(st);
		return rc;
	}
	return gone ? store__commit(st) : CHAT_OK;
}

int store_queue_remove(store *st, const char *addr, const uint64_t *qseqs, size_t n)
{
	return remove_entries(st, addr, qseqs, n, false);
}

int store_queue_drop_events(store *st, const char *addr, const uint64_t *qseqs, size_t n)
{
	return remove_entries(st, addr, qseqs, n, true);
}

int store__ack_one(store *st, const struct store_ack_entry *e, struct store_release *rel)
{
	assert(e->alen > 0 && e->alen <= CHAT_ADDR_MAX && e->rklen > rel->mklen);
	uint8_t qk[QKEY_MAX];
	/* A message's rcpts entry and its queue entry are written and removed
	 * together (store__send_batch, entry_drop, the expiry sweep): the queue
	 * entry is there, and its value is 'M' + mk. Deleted without a read. */
	size_t qklen = store__qkey(qk, e->addr, e->alen, store__be64_get(e->q));
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_QUEUES], (const char *)qk, qklen);
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_RCPTS], (const char *)e->rk, e->rklen);
	return store__msg_release_refs(st, rel);
}

int store_ack(store *st, const char *addr, const char *conv, const uint64_t *seqs, size_t n,
              uint64_t *qseqs_out)
{
	if (!store__addrlen(addr))
		return store__fail(st, CHAT_EINVAL, "bad device address");
	store_receipt r = { .conv = conv, .seqs = seqs, .n = n, .qseqs_out = qseqs_out };
	return store__receipt_batch(st, addr, NULL, 0, &r);
}

int store_queue_count(store *st, const char *addr, uint64_t *count)
{
	size_t alen = store__addrlen(addr);
	uint64_t next;
	*count = 0;
	return alen ? qmeta_get(st, addr, alen, &next, count, false) : CHAT_OK;
}

int store_queue_last(store *st, const char *addr, uint64_t *qseq)
{
	size_t alen = store__addrlen(addr);
	uint64_t next, count;
	*qseq = 0;
	if (!alen)
		return store__fail(st, CHAT_EINVAL, "bad device address");
	int rc = qmeta_get(st, addr, alen, &next, &count, false);
	if (rc == CHAT_OK)
		*qseq = next - 1;
	return rc;
}
