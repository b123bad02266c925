// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_queue.c — the JetStream backend's queue side (docs/CLUSTER.md,
 * "Queues, sync and receipts" and "All or nothing, made whole after a
 * crash"): a device's queue read page by page from its two subjects
 * (reservations on CHAT_Q q.<addr>, events on CHAT_EV e.<addr>), each
 * reservation resolved by one read of its log entry; the delivered
 * receipt's deletes; receipt appends on CHAT_RCPT rc.<conv>.<user>; queued
 * inbox events.
 *
 * A page runs its requests in parallel: one operation (js_op) per request,
 * all pointing at the page (struct qread), which moves to its next phase
 * when the last of them answered. A subject cannot be walked faster than
 * one next_by_subj a round trip, so a subject is walked a window of stream
 * seqs at a time, each window split into up to 16 segments walked at once:
 * the first window is max seqs after the first entry, the next ones sized
 * by the density seen so far, until the page has max entries or the walk
 * reached the subject's last entry. A page of 64 costs ~2 + 64/16 round
 * trips of walk where the device's entries are dense, a few more where
 * they are sparse, and one round of log reads — not 2 × 64 sequential
 * round trips. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "js_internal.h"

#define QREAD_MAX 256
#define QCHAINS 16

static uint64_t wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static natsMsg *req_json(const char *subj, const char *json)
{
	natsMsg *m = NULL;
	if (natsMsg_Create(&m, subj, NULL, json, (int)strlen(json)) != NATS_OK)
		return NULL;
	return m;
}

/* next_by_subj from seq: a direct get (any replica), or at the leader. */
static natsMsg *req_next(jstore *js, const char *which, const char *subject, uint64_t from, bool leader)
{
	char stream[96], s[200], j[700];
	js_stream_name(js, stream, sizeof(stream), which);
	snprintf(s, sizeof(s), "$JS.API.%s.%s", leader ? "STREAM.MSG.GET" : "DIRECT.GET", stream);
	snprintf(j, sizeof(j), "{\"seq\":%" PRIu64 ",\"next_by_subj\":\"%s\"}", from ? from : 1, subject);
	return req_json(s, j);
}

/* A read by stream seq: direct, or at the leader (leader_reads). */
static natsMsg *req_seq(jstore *js, const char *which, uint64_t seq)
{
	char stream[96], s[200], j[64];
	js_stream_name(js, stream, sizeof(stream), which);
	if (!js->o.leader_reads)
		return js_req_by_seq(js, stream, seq);
	snprintf(s, sizeof(s), "$JS.API.STREAM.MSG.GET.%s", stream);
	snprintf(j, sizeof(j), "{\"seq\":%" PRIu64 "}", seq);
	return req_json(s, j);
}

static natsMsg *req_last(jstore *js, const char *which, const char *subject)
{
	char stream[96];
	js_stream_name(js, stream, sizeof(stream), which);
	return js->o.leader_reads ? js_req_last_leader(js, stream, subject) : js_req_last(js, stream, subject);
}

static const char *hdr(natsMsg *m, const char *k)
{
	const char *v = NULL;
	if (natsMsgHeader_Get(m, k, &v) != NATS_OK || !v)
		return NULL;
	return v;
}

static bool hdr_u64(natsMsg *m, const char *k, uint64_t *out)
{
	const char *v = hdr(m, k);
	return v && js_parse_u64(v, strlen(v), out);
}

/* ---- a page ---- */

enum qsub { SUB_HELD, SUB_FIRST, SUB_LAST, SUB_CHAIN, SUB_LOG };
enum qres { RES_UNKNOWN, RES_COMMITTED, RES_ABORTED, RES_PENDING, RES_GONE, RES_BAD };

typedef struct qent {
	int sub;                /* 0: q, 1: e */
	uint64_t sseq, ts, seq, expires;
	char conv[CHAT_CONV_MAX + 1];
	char from[CHAT_ADDR_MAX + 1];
	char cidenc[JS_CID_ENC_MAX + 1];
	store_cid cid;
	char mkind;
	char type[64];
	uint8_t *data;          /* the reservation's data, or the event */
	size_t len;
	uint8_t *logdata;       /* the log entry's body */
	size_t loglen;
	enum qres res;
	bool held_before;       /* came from pos->held */
} qent;

typedef struct qchain {
	uint64_t end;           /* exclusive */
	bool capped;
	uint64_t last;          /* the last entry taken */
	size_t got;
} qchain;

typedef struct qread {
	jstore_qpage_cb cb;
	void *arg;
	jstore_qpos pos;
	size_t max;
	int rc;
	int phase;
	size_t inflight;
	char subj[2][600];      /* q.<addr>, e.<addr> */
	uint64_t first[2], last[2];
	qchain chains[2][QCHAINS];
	int nchains[2];
	uint64_t bound[2];      /* entries above are not read this page */
	bool walking;           /* the first window started */
	uint64_t wnext[2];      /* the next window's first seq; 0: walked */
	uint64_t wspan[2];      /* its size in stream seqs */
	size_t have[2];         /* entries read so far */
	qent *ents;
	size_t nents, cap;
} qread;

static void qread_phase(jstore *js, qread *r);

static void qread_free(qread *r)
{
	for (size_t i = 0; i < r->nents; i++) {
		free(r->ents[i].data);
		free(r->ents[i].logdata);
	}
	free(r->ents);
	free(r);
}

static void sub_fail(jstore *js, js_op *op, int rc)
{
	qread *r = op->arg;
	js_op_end(js, op);
	if (r->rc == CHAT_OK)
		r->rc = rc;
	if (--r->inflight == 0)
		qread_phase(js, r);
}

static void sub_done(jstore *js, js_op *op)
{
	qread *r = op->arg;
	js_op_end(js, op);
	if (--r->inflight == 0)
		qread_phase(js, r);
}

static void step_sub(jstore *js, js_op *op, natsMsg *m);

static void sub_send(jstore *js, qread *r, int kind, int which, uint64_t n, natsMsg *m)
{
	js_op *op = js_op_new(js);
	if (!op) {
		if (m)
			natsMsg_Destroy(m);
		if (r->rc == CHAT_OK)
			r->rc = CHAT_ENOMEM;
		return;
	}
	op->step = step_sub;
	op->fail = sub_fail;
	op->arg = r;
	op->stage = kind;
	op->role = which;
	op->n = n;
	r->inflight++;
	js_send(js, op, m);
}

static qent *ent_add(qread *r)
{
	if (r->nents == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		qent *v = realloc(r->ents, cap * sizeof(*v));
		if (!v)
			return NULL;
		r->ents = v;
		r->cap = cap;
	}
	qent *e = &r->ents[r->nents++];
	memset(e, 0, sizeof(*e));
	return e;
}

static uint8_t *dup_data(natsMsg *m, size_t *len)
{
	*len = (size_t)natsMsg_GetDataLength(m);
	if (!*len)
		return NULL;
	uint8_t *d = malloc(*len);
	if (d)
		memcpy(d, natsMsg_GetData(m), *len);
	return d;
}

/* A reservation's or an event's headers into e; false when malformed. */
static bool ent_parse(qent *e, int sub, natsMsg *m)
{
	const char *v;
	e->sub = sub;
	if (!hdr_u64(m, "Nats-Sequence", &e->sseq))
		return false;
	if (!hdr_u64(m, "Chat-Ts", &e->ts))
		e->ts = 0;
	e->data = dup_data(m, &e->len);
	if (e->len && !e->data)
		return false;
	if (sub == 1)
		return true;
	if (!(v = hdr(m, "Chat-Conv")) || strlen(v) > CHAT_CONV_MAX)
		return false;
	snprintf(e->conv, sizeof(e->conv), "%s", v);
	if (!(v = hdr(m, "Chat-From")) || strlen(v) > CHAT_ADDR_MAX)
		return false;
	snprintf(e->from, sizeof(e->from), "%s", v);
	if (!(v = hdr(m, "Chat-Cid")) || strlen(v) > JS_CID_ENC_MAX || !js_dec_cid(v, strlen(v), &e->cid))
		return false;
	snprintf(e->cidenc, sizeof(e->cidenc), "%s", v);
	if (!hdr_u64(m, "Chat-Seq", &e->seq) || e->seq == 0)
		return false;
	if (!hdr_u64(m, "Chat-Expires", &e->expires))
		e->expires = 0;
	v = hdr(m, "Chat-Kind");
	e->mkind = v && !strcmp(v, "g") ? 'g' : 'm';
	char enc[JS_CONV_ENC_MAX + 1];
	return js_enc_conv(enc, sizeof(enc), e->conv) > 0;
}

static void chain_next(jstore *js, qread *r, int which, int c, uint64_t from)
{
	sub_send(js, r, SUB_CHAIN, which, (uint64_t)c, req_next(js, which ? "EV" : "Q", r->subj[which], from, js->o.leader_reads));
	r->chains[which][c].last = from; /* where this request reads from (for its answer) */
}

static void on_chain(jstore *js, qread *r, int which, int c, natsMsg *m, enum js_reply rep)
{
	qchain *ch = &r->chains[which][c];
	uint64_t s = 0;
	if (rep == JS_NOTFOUND || !hdr_u64(m, "Nats-Sequence", &s) || s >= ch->end)
		return; /* this segment is walked */
	qent *e = ent_add(r);
	if (!e) {
		r->rc = CHAT_ENOMEM;
		return;
	}
	if (!ent_parse(e, which, m)) {
		e->res = RES_BAD;
		e->sseq = s;
	}
	ch->got++;
	r->have[which]++;
	if (ch->got >= r->max) {
		ch->capped = true;
		ch->last = s;
		return;
	}
	chain_next(js, r, which, c, s + 1);
}

static void step_sub(jstore *js, js_op *op, natsMsg *m)
{
	qread *r = op->arg;
	enum js_reply rep = js_get_reply(js, m, false);
	if (rep == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (rep == JS_BAD) {
		sub_fail(js, op, CHAT_EIO);
		return;
	}
	int which = op->role;
	uint64_t n = op->n;
	switch (op->stage) {
	case SUB_FIRST:
	case SUB_LAST: {
		uint64_t s = 0;
		if (rep == JS_FOUND && hdr_u64(m, "Nats-Sequence", &s)) {
			if (op->stage == SUB_FIRST) {
				r->first[which] = s;
				qent *e = ent_add(r);
				if (!e)
					r->rc = CHAT_ENOMEM;
				else if (!ent_parse(e, which, m)) {
					e->res = RES_BAD;
					e->sseq = s;
				}
			} else {
				r->last[which] = s;
			}
		}
		break;
	}
	case SUB_HELD: {
		qent *e;
		if (rep == JS_NOTFOUND)
			break; /* acknowledged or deleted since: gone */
		const char *subj = hdr(m, "Nats-Subject");
		if (!subj || strcmp(subj, r->subj[0]))
			break; /* the seq holds another subject's entry: not ours (any more) */
		if (!(e = ent_add(r))) {
			r->rc = CHAT_ENOMEM;
			break;
		}
		if (!ent_parse(e, 0, m)) {
			e->res = RES_BAD;
			e->sseq = n;
		}
		e->held_before = true;
		break;
	}
	case SUB_CHAIN:
		on_chain(js, r, which, (int)n, m, rep);
		break;
	case SUB_LOG: {
		qent *e = &r->ents[n];
		if (rep == JS_NOTFOUND) {
			e->res = RES_PENDING;
			break;
		}
		const char *from = hdr(m, "Chat-From"), *cid = hdr(m, "Chat-Cid"), *rc = hdr(m, "Chat-Rcpts");
		/* another's entry: aborted; this message's entry that does not
		 * list this reservation (a retry's or the original's extra one,
		 * made for the same message but not the one committed): aborted
		 * too, or the device would get the message twice. An entry with
		 * no Chat-Rcpts (jstore_log_append's) decides by sender and cid. */
		if (!from || !cid || strcmp(from, e->from) || strcmp(cid, e->cidenc) ||
		    (rc && !js_rcpts_has(rc, strlen(rc), e->sseq))) {
			e->res = RES_ABORTED;
			break;
		}
		e->res = RES_COMMITTED;
		e->logdata = dup_data(m, &e->loglen);
		const char *t = hdr(m, "Chat-Type");
		snprintf(e->type, sizeof(e->type), "%s", t ? t : "");
		if (e->loglen && !e->logdata)
			r->rc = CHAT_ENOMEM;
		break;
	}
	}
	sub_done(js, op);
}

static int cmp_ent(const void *a, const void *b)
{
	const qent *x = a, *y = b;
	if (x->sub != y->sub)
		return x->sub - y->sub;
	return x->sseq < y->sseq ? -1 : x->sseq > y->sseq;
}

/* An aborted reservation's delete: nobody waits for it (a failure leaves
 * it to the next reader, who finds it aborted again). */
static void step_forget(jstore *js, js_op *op, natsMsg *m)
{
	(void)m;
	js_op_end(js, op);
}

static void fail_forget(jstore *js, js_op *op, int rc)
{
	(void)rc;
	js_op_end(js, op);
}

static void delete_later(jstore *js, const char *which, uint64_t sseq)
{
	char stream[96];
	js_op *op = js_op_new(js);
	if (!op)
		return;
	op->step = step_forget;
	op->fail = fail_forget;
	js_stream_name(js, stream, sizeof(stream), which);
	js_send(js, op, js_req_delete(js, stream, sseq));
}

static bool conv_in(char (*set)[CHAT_CONV_MAX + 1], size_t n, const char *conv)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(set[i], conv))
			return true;
	return false;
}

/* The last phase: the resolutions into a page. */
static void qread_deliver(jstore *js, qread *r)
{
	if (r->nents)
		qsort(r->ents, r->nents, sizeof(*r->ents), cmp_ent);
	size_t nq = 0;
	while (nq < r->nents && r->ents[nq].sub == 0)
		nq++;
	/* drop duplicates (a held seq read again by the walk) and entries past a bound */
	jstore_qitem *items = calloc(r->max ? r->max : 1, sizeof(*items));
	char(*blocked)[CHAT_CONV_MAX + 1] = calloc(JSTORE_QHELD_MAX + 1, sizeof(*blocked));
	jstore_qpos next = r->pos;
	size_t nblocked = 0, ni = 0, i = 0, j = nq, held = 0;
	next.nheld = 0;
	if (!items || !blocked) {
		free(items);
		free(blocked);
		r->rc = CHAT_ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < r->nents; k++)
		if (r->ents[k].res == RES_ABORTED)
			delete_later(js, "Q", r->ents[k].sseq);
	while (ni < r->max) {
		qent *q = NULL, *e = NULL;
		while (i < nq && ((r->ents[i].sseq > r->bound[0] && !r->ents[i].held_before) || (i && r->ents[i].sseq == r->ents[i - 1].sseq)))
			i++;
		while (j < r->nents && (r->ents[j].sseq > r->bound[1] || (j > nq && r->ents[j].sseq == r->ents[j - 1].sseq)))
			j++;
		if (i < nq)
			q = &r->ents[i];
		if (j < r->nents)
			e = &r->ents[j];
		if (!q && !e)
			break;
		if (q && q->res != RES_COMMITTED) {
			/* consumed without output: aborted (deleted), gone, or held */
			if (q->res == RES_PENDING) {
				if (next.nheld == JSTORE_QHELD_MAX)
					break; /* no room to hold it: the page ends before it */
				next.held[next.nheld++] = q->sseq;
				if (!conv_in(blocked, nblocked, q->conv) && nblocked < JSTORE_QHELD_MAX)
					snprintf(blocked[nblocked++], CHAT_CONV_MAX + 1, "%s", q->conv);
				held++;
			}
			if (!q->held_before && q->sseq > next.q)
				next.q = q->sseq;
			i++;
			continue;
		}
		if (q && conv_in(blocked, nblocked, q->conv)) { /* behind a pending one */
			if (next.nheld == JSTORE_QHELD_MAX)
				break;
			next.held[next.nheld++] = q->sseq;
			held++;
			if (!q->held_before && q->sseq > next.q)
				next.q = q->sseq;
			i++;
			continue;
		}
		bool take_q = q && (!e || q->ts <= e->ts);
		jstore_qitem *it = &items[ni++];
		if (take_q) {
			it->kind = STORE_Q_MSG;
			it->sseq = q->sseq;
			it->ts = q->ts;
			it->conv = q->conv;
			it->seq = q->seq;
			it->from = q->from;
			it->cid = q->cid;
			it->expires = q->expires;
			it->mkind = q->mkind;
			it->type = q->type;
			it->body = q->len ? q->data : q->logdata;
			it->len = q->len ? q->len : q->loglen;
			if (!q->held_before && q->sseq > next.q)
				next.q = q->sseq;
			i++;
		} else {
			it->kind = STORE_Q_EVENT;
			it->sseq = e->sseq;
			it->ts = e->ts;
			it->body = e->data;
			it->len = e->len;
			if (e->sseq > next.e)
				next.e = e->sseq;
			j++;
		}
	}
	/* held seqs ascending (the ones held before are below every new one) */
	for (uint32_t a = 1; a < next.nheld; a++)
		for (uint32_t b = a; b > 0 && next.held[b - 1] > next.held[b]; b--) {
			uint64_t t = next.held[b];
			next.held[b] = next.held[b - 1];
			next.held[b - 1] = t;
		}
	if (r->rc == CHAT_OK)
		r->cb(r->arg, CHAT_OK, items, ni, &next, held);
	free(items);
	free(blocked);
out:
	if (r->rc != CHAT_OK)
		r->cb(r->arg, r->rc, NULL, 0, &r->pos, 0);
	qread_free(r);
}

static void qread_phase(jstore *js, qread *r)
{
	if (js->closing && r->rc == CHAT_OK)
		r->rc = CHAT_EIO;
	if (r->rc != CHAT_OK) {
		r->cb(r->arg, r->rc, NULL, 0, &r->pos, 0);
		qread_free(r);
		return;
	}
	r->phase++;
	if (r->phase == 1) { /* the held seqs, both subjects' first and last */
		for (uint32_t k = 0; k < r->pos.nheld; k++)
			sub_send(js, r, SUB_HELD, 0, r->pos.held[k], req_seq(js, "Q", r->pos.held[k]));
		for (int w = 0; w < 2; w++) {
			const char *which = w ? "EV" : "Q";
			sub_send(js, r, SUB_FIRST, w, 0,
			         req_next(js, which, r->subj[w], (w ? r->pos.e : r->pos.q) + 1, js->o.leader_reads));
			sub_send(js, r, SUB_LAST, w, 0, req_last(js, which, r->subj[w]));
		}
	} else if (r->phase == 2) { /* the walks, a window of stream seqs at a time */
		bool launched = false;
		for (int w = 0; w < 2; w++) {
			uint64_t f = r->first[w], l = r->last[w];
			if (!r->walking) { /* the first window: max seqs after the first entry */
				r->have[w] = f ? 1 : 0;
				r->bound[w] = l > f ? l : f;
				r->wnext[w] = f && l > f && r->max >= 2 ? f + 1 : 0;
				r->wspan[w] = r->max;
			} else if (r->wnext[w]) { /* a window walked: done, or the next one */
				bool capped = false;
				size_t got = 0;
				for (int c = 0; c < r->nchains[w]; c++) {
					got += r->chains[w][c].got;
					if (r->chains[w][c].capped) {
						capped = true;
						if (r->chains[w][c].last < r->bound[w])
							r->bound[w] = r->chains[w][c].last;
					}
				}
				r->nchains[w] = 0;
				if (capped || r->have[w] >= r->max || r->wnext[w] > l) {
					r->wnext[w] = 0;
				} else { /* the next window sized by the density seen so far */
					uint64_t need = r->max - r->have[w], span = r->wspan[w];
					uint64_t next = got ? span * need / got + span / 4 + 1 : span * 8;
					if (next > span * 8)
						next = span * 8;
					if (next > l) /* never wider than the subject's seqs: no overflow */
						next = l;
					r->wspan[w] = next ? next : 1;
				}
			}
			if (!r->wnext[w])
				continue;
			uint64_t a0 = r->wnext[w], end = a0 + r->wspan[w] - 1;
			if (end > l || end < a0)
				end = l;
			uint64_t span = end - a0 + 1;
			int n = (int)(span < QCHAINS ? span : QCHAINS);
			r->nchains[w] = n;
			r->bound[w] = end;
			r->wnext[w] = end + 1;
			for (int c = 0; c < n; c++) {
				qchain *ch = &r->chains[w][c];
				memset(ch, 0, sizeof(*ch));
				ch->end = c + 1 < n ? a0 + span * (uint64_t)(c + 1) / (uint64_t)n : end + 1;
				chain_next(js, r, w, c, a0 + span * (uint64_t)c / (uint64_t)n);
			}
			launched = true;
		}
		r->walking = true;
		if (launched)
			r->phase = 1; /* phase 2 again when this window is walked */
	} else if (r->phase == 3) { /* one log read per reservation */
		char subj[700], enc[JS_CONV_ENC_MAX + 1];
		for (size_t k = 0; k < r->nents; k++) {
			qent *e = &r->ents[k];
			if (e->sub != 0 || e->res == RES_BAD || (e->sseq > r->bound[0] && !e->held_before))
				continue;
			js_enc_conv(enc, sizeof(enc), e->conv);
			snprintf(subj, sizeof(subj), "%s.log.%s.%" PRIu64, js->prefix, enc, e->seq);
			sub_send(js, r, SUB_LOG, 0, k, req_last(js, "LOG", subj));
		}
	}
	if (r->phase == 4 || (r->inflight == 0 && r->rc == CHAT_OK)) {
		if (r->phase >= 4) {
			qread_deliver(js, r);
			return;
		}
		qread_phase(js, r); /* nothing was sent in this phase */
		return;
	}
	if (r->inflight == 0) /* every send failed at once */
		qread_phase(js, r);
}

int jstore_queue_read(jstore *js, const char *addr, const jstore_qpos *pos, size_t max, jstore_qpage_cb cb,
                      void *arg)
{
	char a[JS_ADDR_ENC_MAX + 1];
	if (!addr || !js_enc_addr(a, sizeof(a), addr) || max == 0 || max > QREAD_MAX || !cb ||
	    (pos && pos->nheld > JSTORE_QHELD_MAX))
		return CHAT_EINVAL;
	qread *r = calloc(1, sizeof(*r));
	if (!r)
		return CHAT_ENOMEM;
	r->cb = cb;
	r->arg = arg;
	r->max = max;
	if (pos)
		r->pos = *pos;
	snprintf(r->subj[0], sizeof(r->subj[0]), "%s.q.%s", js->prefix, a);
	snprintf(r->subj[1], sizeof(r->subj[1]), "%s.e.%s", js->prefix, a);
	qread_phase(js, r); /* phase 1: its requests go out */
	return CHAT_OK;
}

/* ---- deletes: acknowledgements, events once sent ---- */

typedef struct qdel {
	jstore_ack_cb cb;
	void *arg;
	size_t n, inflight;
	int rc;
	bool existed[];
} qdel;

static void del_end(jstore *js, js_op *op, int rc, bool existed)
{
	qdel *d = op->arg;
	d->existed[op->n] = existed;
	if (rc != CHAT_OK && d->rc == CHAT_OK)
		d->rc = rc;
	js_op_end(js, op);
	if (--d->inflight == 0) {
		d->cb(d->arg, d->rc, d->rc == CHAT_OK ? d->existed : NULL, d->rc == CHAT_OK ? d->n : 0);
		free(d);
	}
}

static void fail_del(jstore *js, js_op *op, int rc)
{
	del_end(js, op, rc, false);
}

static void step_del(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r == JS_FOUND && a.ok)
		return del_end(js, op, CHAT_OK, true);
	/* already gone: 10057, or 10043 "sequence not found" */
	if (r == JS_FOUND && (a.err_code == 10057 || a.err_code == 10043))
		return del_end(js, op, CHAT_OK, false);
	del_end(js, op, CHAT_EIO, false);
}

/* n operations, all or none (the caller owns the array and the ops). */
static js_op **ops_new(jstore *js, size_t n)
{
	js_op **ops = calloc(n, sizeof(*ops));
	for (size_t i = 0; ops && i < n; i++)
		if (!(ops[i] = js_op_new(js))) {
			while (i--)
				free(ops[i]);
			free(ops);
			ops = NULL;
		}
	return ops;
}

static int deletes(jstore *js, const char *which, const char *addr, const uint64_t *sseqs, size_t n,
                   jstore_ack_cb cb, void *arg)
{
	char a[JS_ADDR_ENC_MAX + 1], stream[96];
	if (!addr || !js_enc_addr(a, sizeof(a), addr) || !cb || n == 0 || !sseqs)
		return CHAT_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!sseqs[i])
			return CHAT_EINVAL;
	qdel *d = calloc(1, sizeof(*d) + n * sizeof(bool));
	if (!d)
		return CHAT_ENOMEM;
	d->cb = cb;
	d->arg = arg;
	d->n = n;
	js_stream_name(js, stream, sizeof(stream), which);
	js_op **ops = ops_new(js, n);
	if (!ops) {
		free(d);
		return CHAT_ENOMEM;
	}
	d->inflight = n;
	for (size_t i = 0; i < n; i++) {
		ops[i]->arg = d;
		ops[i]->n = i;
		ops[i]->step = step_del;
		ops[i]->fail = fail_del;
		js_send(js, ops[i], js_req_delete(js, stream, sseqs[i]));
	}
	free(ops);
	return CHAT_OK;
}

int jstore_queue_ack(jstore *js, const char *addr, const uint64_t *sseqs, size_t n, jstore_ack_cb cb, void *arg)
{
	return deletes(js, "Q", addr, sseqs, n, cb, arg);
}

int jstore_queue_drop_events(jstore *js, const char *addr, const uint64_t *sseqs, size_t n, jstore_ack_cb cb,
                             void *arg)
{
	return deletes(js, "EV", addr, sseqs, n, cb, arg);
}

/* ---- queued inbox events ---- */

typedef struct qev {
	jstore_done_cb cb;
	void *arg;
	size_t inflight;
	int rc;
} qev;

static void ev_end(jstore *js, js_op *op, int rc)
{
	qev *q = op->arg;
	if (rc != CHAT_OK && q->rc == CHAT_OK)
		q->rc = rc;
	js_op_end(js, op);
	if (--q->inflight == 0) {
		if (q->cb)
			q->cb(q->arg, q->rc);
		free(q);
	}
}

static void step_ev(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	ev_end(js, op, r == JS_FOUND && a.ok ? CHAT_OK : CHAT_EIO);
}

int jstore_queue_event(jstore *js, const char *const *to, size_t n, const uint8_t *event, size_t len,
                       jstore_done_cb cb, void *arg)
{
	char a[JS_ADDR_ENC_MAX + 1];
	if (n == 0 || !to || (len && !event))
		return CHAT_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!to[i] || !js_enc_addr(a, sizeof(a), to[i]))
			return CHAT_EINVAL;
	qev *q = calloc(1, sizeof(*q));
	js_op **ops = q ? ops_new(js, n) : NULL;
	if (!ops) {
		free(q);
		return CHAT_ENOMEM;
	}
	q->cb = cb;
	q->arg = arg;
	q->inflight = n;
	char ts[24];
	snprintf(ts, sizeof(ts), "%" PRIu64, wall_ms());
	uint64_t nonce = ((uint64_t)randombytes_random() << 32) | randombytes_random();
	for (size_t i = 0; i < n; i++) {
		char subj[700], msgid[700];
		js_enc_addr(a, sizeof(a), to[i]);
		snprintf(subj, sizeof(subj), "%s.e.%s", js->prefix, a);
		/* a resend after a lost answer is stored once */
		snprintf(msgid, sizeof(msgid), "e.%s.%016" PRIx64 ".%zu", a, nonce, i);
		natsMsg *m = js_req_pub(js, subj, event, len, false, msgid);
		if (m)
			natsMsgHeader_Set(m, "Chat-Ts", ts);
		ops[i]->arg = q;
		ops[i]->step = step_ev;
		ops[i]->fail = ev_end;
		js_send(js, ops[i], m);
	}
	free(ops);
	return CHAT_OK;
}

/* ---- receipt appends ---- */

/* The node's cache of each subject's union (read, delivered-or-read) up
 * to the stream seq it has read: an append reads only the appends between
 * that position and its own (usually none). Bounded: when it holds
 * JS_RCACHE_MAX subjects it starts again empty (a miss reads the subject
 * from its start). */
#define JS_RCACHE_MAX 4096
#define JS_RCACHE_BUCKETS 1024

typedef struct js_rc_entry {
	struct js_rc_entry *next;
	uint64_t pos;           /* the union covers the appends up to this stream seq */
	js_rset read, delivered;
	char subj[];
} js_rc_entry;

struct js_rcache {
	js_rc_entry *b[JS_RCACHE_BUCKETS];
	size_t n;
};

static uint32_t subj_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % JS_RCACHE_BUCKETS;
}

static void rc_entry_free(js_rc_entry *e)
{
	js_rset_free(&e->read);
	js_rset_free(&e->delivered);
	free(e);
}

void js_queue_free(jstore *js)
{
	struct js_rcache *c = js->rcache;
	if (!c)
		return;
	for (int i = 0; i < JS_RCACHE_BUCKETS; i++)
		while (c->b[i]) {
			js_rc_entry *e = c->b[i];
			c->b[i] = e->next;
			rc_entry_free(e);
		}
	free(c);
	js->rcache = NULL;
}

static js_rc_entry *rc_find(jstore *js, const char *subj)
{
	struct js_rcache *c = js->rcache;
	if (!c)
		return NULL;
	for (js_rc_entry *e = c->b[subj_hash(subj)]; e; e = e->next)
		if (!strcmp(e->subj, subj))
			return e;
	return NULL;
}

static int rset_copy(js_rset *dst, const js_rset *src)
{
	dst->n = 0;
	return src->n ? js_rset_add(dst, src->v, src->n) : CHAT_OK;
}

/* The union up to pos (newer than what is cached) into the cache. */
static void rc_store(jstore *js, const char *subj, uint64_t pos, const js_rset *read, const js_rset *delivered)
{
	js_rc_entry *e = rc_find(js, subj);
	if (e && e->pos >= pos)
		return; /* a later append of this node got there first */
	if (!e) {
		if (!js->rcache && !(js->rcache = calloc(1, sizeof(struct js_rcache))))
			return;
		if (js->rcache->n >= JS_RCACHE_MAX)
			js_queue_free(js), js->rcache = calloc(1, sizeof(struct js_rcache));
		if (!js->rcache || !(e = calloc(1, sizeof(*e) + strlen(subj) + 1)))
			return;
		strcpy(e->subj, subj);
		uint32_t h = subj_hash(subj);
		e->next = js->rcache->b[h];
		js->rcache->b[h] = e;
		js->rcache->n++;
	}
	if (rset_copy(&e->read, read) != CHAT_OK || rset_copy(&e->delivered, delivered) != CHAT_OK) {
		e->pos = 0; /* a partial union: read from the start next time */
		e->read.n = e->delivered.n = 0;
		return;
	}
	e->pos = pos;
}

typedef struct qrc {
	jstore_rcpt_cb cb;
	void *arg;
	int state;
	uint64_t mine;          /* this append's stream seq */
	char subj[700];
	jstore_range *ranges;
	size_t n;
	js_rset read, delivered, changed;
	uint32_t nread;         /* earlier appends read */
	jstore_range *buf;      /* an earlier append's ranges, decoded */
} qrc;

static void rc_end(jstore *js, js_op *op, int rc)
{
	qrc *q = op->arg;
	js_op_end(js, op);
	jstore_rcpt_result res = { 0 };
	if (rc == CHAT_OK) {
		rc = js_rset_minus(&q->changed, q->ranges, q->n, q->state == STORE_R_READ ? &q->read : &q->delivered);
		/* the cache: the union with this append, up to it */
		js_rset rd = { 0 }, dl = { 0 };
		if (rc == CHAT_OK && rset_copy(&rd, &q->read) == CHAT_OK && rset_copy(&dl, &q->delivered) == CHAT_OK &&
		    js_rset_add(&dl, q->ranges, q->n) == CHAT_OK &&
		    (q->state != STORE_R_READ || js_rset_add(&rd, q->ranges, q->n) == CHAT_OK))
			rc_store(js, q->subj, q->mine, &rd, &dl);
		js_rset_free(&rd);
		js_rset_free(&dl);
		res.changed = q->changed.v;
		res.nchanged = q->changed.n;
		res.before_read = q->read.v;
		res.nbefore_read = q->read.n;
		res.before_delivered = q->delivered.v;
		res.nbefore_delivered = q->delivered.n;
		res.sseq = q->mine;
		res.appends_read = q->nread;
	}
	q->cb(q->arg, rc, rc == CHAT_OK ? &res : NULL);
	js_rset_free(&q->read);
	js_rset_free(&q->delivered);
	js_rset_free(&q->changed);
	free(q->ranges);
	free(q->buf);
	free(q);
}

/* The appends before ours, in stream order, at the leader (a replica a
 * write behind would miss another node's earlier append: two changes). */
static void step_rc_walk(jstore *js, js_op *op, natsMsg *m)
{
	qrc *q = op->arg;
	enum js_reply r = js_get_reply(js, m, false);
	uint64_t s = 0;
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r == JS_BAD)
		return rc_end(js, op, CHAT_EIO);
	if (r == JS_NOTFOUND || !hdr_u64(m, "Nats-Sequence", &s) || s >= q->mine)
		return rc_end(js, op, CHAT_OK);
	size_t n = 0;
	int st = 0;
	if (!q->buf && !(q->buf = malloc(JS_RCPT_RANGES_MAX * sizeof(*q->buf))))
		return rc_end(js, op, CHAT_ENOMEM);
	jstore_range *buf = q->buf;
	if (js_rcpt_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &st, buf, &n) !=
	    CHAT_OK) {
		js_seterr(js, "%s: a receipt append at %" PRIu64 " does not decode", q->subj, s);
		return rc_end(js, op, CHAT_ECORRUPT);
	}
	q->nread++;
	if (js_rset_add(&q->delivered, buf, n) != CHAT_OK ||
	    (st == STORE_R_READ && js_rset_add(&q->read, buf, n) != CHAT_OK))
		return rc_end(js, op, CHAT_ENOMEM);
	js_send(js, op, req_next(js, "RCPT", q->subj, s + 1, true));
}

static void step_rc_appended(jstore *js, js_op *op, natsMsg *m)
{
	qrc *q = op->arg;
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r != JS_FOUND || !a.ok || !a.seq)
		return rc_end(js, op, CHAT_EIO);
	q->mine = a.seq; /* a Duplicate (our resend) names the first one's seq */
	uint64_t from = 1;
	js_rc_entry *e = rc_find(js, q->subj);
	if (e && e->pos && e->pos < q->mine && rset_copy(&q->read, &e->read) == CHAT_OK &&
	    rset_copy(&q->delivered, &e->delivered) == CHAT_OK) {
		from = e->pos + 1; /* the cached union covers the appends up to e->pos */
	} else {
		q->read.n = q->delivered.n = 0;
	}
	op->step = step_rc_walk;
	js_send(js, op, req_next(js, "RCPT", q->subj, from, true));
}

int jstore_receipt_append(jstore *js, const char *conv, const char *user, enum store_rstate state,
                          const jstore_range *ranges, size_t n, jstore_rcpt_cb cb, void *arg)
{
	char c[JS_CONV_ENC_MAX + 1], u[JS_TOKEN_MAX + 1];
	if (!conv || !user || !js_enc_conv(c, sizeof(c), conv) || !js_enc_id(u, sizeof(u), user, strlen(user)) ||
	    (state != STORE_R_DELIVERED && state != STORE_R_READ) || !cb || n == 0 || n > JS_RCPT_RANGES_MAX ||
	    !ranges)
		return CHAT_EINVAL;
	qrc *q = calloc(1, sizeof(*q));
	if (!q || !(q->ranges = malloc(n * sizeof(*ranges)))) {
		free(q);
		return CHAT_ENOMEM;
	}
	memcpy(q->ranges, ranges, n * sizeof(*ranges));
	q->n = js_rset_norm(q->ranges, n);
	size_t cap = 4 + 16 * q->n;
	uint8_t *v = malloc(cap);
	js_op *op = js_op_new(js);
	size_t len = v && q->n ? js_rcpt_encode(v, cap, state, q->ranges, q->n) : 0;
	if (!len || !op) {
		free(v);
		free(op);
		free(q->ranges);
		free(q);
		return !v || !op ? CHAT_ENOMEM : CHAT_EINVAL;
	}
	q->cb = cb;
	q->arg = arg;
	q->state = (int)state;
	snprintf(q->subj, sizeof(q->subj), "%s.rc.%s.%s", js->prefix, c, u);
	char msgid[64];
	snprintf(msgid, sizeof(msgid), "rc.%08x%08x", randombytes_random(), randombytes_random());
	op->arg = q;
	op->step = step_rc_appended;
	op->fail = rc_end;
	js_send(js, op, js_req_pub(js, q->subj, v, len, false, msgid));
	free(v);
	return CHAT_OK;
}
