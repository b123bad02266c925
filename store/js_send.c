// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_send.c — the whole send on JetStream (docs/CLUSTER.md, "A send: seq,
 * dedup, quota, all or nothing"): the conversation's writer queue and head
 * (shared with jstore_log_append in js_ops.c), round 1 (the dedup claim,
 * one reservation per distinct recipient device on CHAT_Q, the expiry index
 * entry of a short ttl: all at once, every answer awaited), round 2 (the
 * create-only log entry listing the reservations' stream seqs: the commit),
 * conflicts (reserve again for the new seq, the stale reservations deleted),
 * the quota (a reservation refused by CHAT_Q's per-subject limit: the send
 * refused whole) and retries (the claim exists: the original is found in
 * the log, waited for, or finished here).
 *
 * The send is one js_op (the "hold": it sits in the conversation's queue,
 * does the head probes, the log publish and the retry's reads); round 1's
 * requests are child ops that report to it. The hold sends nothing while
 * children are in flight and ends only when none is, so a child never
 * outlives it; the stale reservations' deletes are children of nobody. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbor_io.h"
#include "err.h"
#include "js_internal.h"

enum { CH_RES = 1, CH_EXP };

typedef struct js_rcpt {
	char addr[CHAT_ADDR_MAX + 1];
	char enc[JS_ADDR_ENC_MAX + 1];
	const uint8_t *body;    /* a `bodies` send: this device's, inside x->bodies */
	size_t blen;
	uint64_t sseq;          /* the current reservation's CHAT_Q stream seq (0: none) */
	int rc;                 /* this round's answer */
} js_rcpt;

typedef struct js_sendx {
	jstore_send_cb cb;
	void *arg;
	enum store_msg_kind kind;
	uint64_t expires;
	bool has_type;
	uint64_t type;
	uint8_t *bodies;        /* owned copy of the bodies map */
	size_t nr;
	js_rcpt *r;
	jstore *js;
	char *rcpts;            /* the entry's Chat-Rcpts, built before its publish */
	int inflight;           /* round 1's children */
	bool claim_sent;        /* the claim goes with the first round only */
	int claim_rc;           /* CHAT_OK: ours; CHAT_EEXIST: an earlier send's */
	js_claim claim;         /* that earlier send's claim */
	int exp_rc;
	uint64_t rn;            /* the seq the current reservations name */
	bool finishing;         /* a retry finishing the original at op->n */
	bool retry;
} js_sendx;

static void send_reserve(jstore *js, js_op *op);

static int64_t wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- fire and forget: deletes of stale reservations ---- */

static void del_end(jstore *js, js_op *op, int rc)
{
	(void)rc;
	js_op_end(js, op);
}

static void step_del(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	if (js_api_reply(js, m, &a) == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	js_op_end(js, op); /* deleted, or already gone (10057/10043): either is done */
}

static void del_reservation(jstore *js, uint64_t sseq)
{
	char stream[96];
	if (!sseq || js->closing)
		return;
	js_op *d = js_op_new(js);
	if (!d)
		return; /* it resolves as aborted by itself (CLUSTER.md, "All or nothing") */
	d->step = step_del;
	d->fail = del_end;
	js_stream_name(js, stream, sizeof(stream), "Q");
	js_send(js, d, js_req_delete(js, stream, sseq));
}

static bool listed(const char *rcpts, uint64_t s)
{
	return rcpts && js_rcpts_has(rcpts, strlen(rcpts), s);
}

/* Deletes this round's reservations whose stream seq is not in keep (a
 * committed entry's Chat-Rcpts; NULL: delete them all). */
static void drop_reservations(jstore *js, js_sendx *x, const char *keep)
{
	for (size_t i = 0; i < x->nr; i++) {
		uint64_t s = x->r[i].sseq;
		x->r[i].sseq = 0;
		if (s && !listed(keep, s))
			del_reservation(js, s);
	}
}

/* ---- the end ---- */

/* op->log_done: the report, then the op ends. */
static void send_done(jstore *js, js_op *op, int rc, uint64_t seq)
{
	js_sendx *x = op->ext;
	jstore_send_cb cb = x->cb;
	void *arg = x->arg;
	bool retry = x->retry;
	free(x->r);
	free(x->bodies);
	free(x->rcpts);
	free(x);
	op->ext = NULL;
	js_op_end(js, op);
	cb(arg, rc, rc == CHAT_OK || rc == CHAT_EEXIST ? seq : 0, retry);
}

/* A failure before any log publish of this round: nothing was committed,
 * so the tentative records go (the claim only if this send made it). */
static void refuse(jstore *js, js_op *op, int rc)
{
	js_sendx *x = op->ext;
	if (!js->closing) {
		drop_reservations(js, x, NULL);
		if (x->claim_sent && x->claim_rc == CHAT_OK && x->kind == STORE_KIND_MSG)
			jstore_dedup_release(js, op->from, &op->cid, NULL, NULL);
	}
	js_log_finish(js, op, rc, 0);
}

static void hold_fail(jstore *js, js_op *op, int rc)
{
	js_log_finish(js, op, rc, 0);
}

/* op->log_ours: log.<conv>.<seq> carries this (from, cid) — our own earlier
 * publish (a Duplicate), or the original of a retry, or a retry elsewhere
 * that finished this send. The entry's reservations are its Chat-Rcpts;
 * ours that it does not list are extra and go. */
static void send_ours(jstore *js, js_op *op, natsMsg *m, uint64_t seq)
{
	js_sendx *x = op->ext;
	const char *rc = NULL;
	natsMsgHeader_Get(m, "Chat-Rcpts", &rc);
	bool all = true;
	for (size_t i = 0; i < x->nr && rc; i++)
		if (!listed(rc, x->r[i].sseq))
			all = false;
	if (x->claim_rc == CHAT_EEXIST || !rc || !all)
		x->retry = true;
	drop_reservations(js, x, rc ? rc : "");
	js_log_finish(js, op, CHAT_OK, seq);
}

/* op->log_hdrs: the entry's own headers besides Chat-From/Cid/Ts. */
static void send_hdrs(jstore *js, js_op *op, natsMsg *m)
{
	js_sendx *x = op->ext;
	char v[32];
	(void)js;
	snprintf(v, sizeof(v), "%" PRIu64, x->expires);
	natsMsgHeader_Set(m, "Chat-Expires", v);
	natsMsgHeader_Set(m, "Chat-Kind", x->kind == STORE_KIND_GROUP ? "g" : "m");
	if (x->has_type) {
		snprintf(v, sizeof(v), "%" PRIu64, x->type);
		natsMsgHeader_Set(m, "Chat-Type", v);
	}
	if (x->rcpts)
		natsMsgHeader_Set(m, "Chat-Rcpts", x->rcpts);
}

/* Round 2: the log entry, listing the current reservations. */
static void commit(jstore *js, js_op *op)
{
	js_sendx *x = op->ext;
	size_t cap = x->nr * (CHAT_ADDR_MAX + 24) + 1, len = 0;
	free(x->rcpts);
	x->rcpts = malloc(cap);
	if (!x->rcpts)
		return refuse(js, op, CHAT_ENOMEM);
	x->rcpts[0] = '\0';
	for (size_t i = 0; i < x->nr; i++)
		len += (size_t)snprintf(x->rcpts + len, cap - len, "%s%s:%" PRIu64, i ? "," : "", x->r[i].addr,
		                        x->r[i].sseq);
	js_log_publish(js, op);
}

/* ---- a retry: the claim was another send's ---- */

static void step_walk(jstore *js, js_op *op, natsMsg *m)
{
	js_sendx *x = op->ext;
	enum js_reply r = js_get_reply(js, m, false);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r == JS_BAD) {
		drop_reservations(js, x, NULL);
		return js_log_finish(js, op, CHAT_EIO, 0);
	}
	if (r == JS_FOUND) {
		if (js_entry_is_ours(op, m))
			return send_ours(js, op, m, op->n);
		op->n++; /* the original only moves on after losing a seq: look further */
		js_send(js, op, js_log_req(js, op, op->n, js->o.leader_reads));
		return;
	}
	/* op->n is free: the original is in flight, or its node gave up or died.
	 * While it may still land (its node is another, not known dead — the
	 * heartbeats of js_sess.c, when jstore_node_start runs — and the claim
	 * is younger than an operation's deadline), read again in ~250 ms. */
	if (strcmp(x->claim.node, js->node) && !js_node_known_dead(js, x->claim.node) &&
	    wall_ms() < (int64_t)x->claim.ts + (int64_t)js->o.timeout_ms) {
		js_retry_soon(js, op);
		return;
	}
	/* Finish the send here at op->n: if the original lands first, the
	 * create is refused and the conflict read finds it (send_ours). */
	x->finishing = true;
	op->deadline = js_now_ms() + js->o.timeout_ms; /* the wait is over: a send's own budget */
	if (op->n == x->rn)
		return commit(js, op);
	send_reserve(js, op);
}

/* The claim itself (its node and age decide the wait; jstore_dedup_claim's
 * answer gives its conv and first seq only), at the leader. */
static void step_walk_claim(jstore *js, js_op *op, natsMsg *m)
{
	js_sendx *x = op->ext;
	enum js_reply r = js_get_reply(js, m, true);
	js_claim c;
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r == JS_BAD) {
		drop_reservations(js, x, NULL);
		return js_log_finish(js, op, CHAT_EIO, 0);
	}
	if (r == JS_FOUND &&
	    js_claim_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &c) == CHAT_OK)
		x->claim = c;
	/* else removed since (expired and swept): the walk from seq0 without waiting */
	op->n = x->claim.seq0;
	op->step = step_walk;
	js_send(js, op, js_log_req(js, op, op->n, js->o.leader_reads));
}

static void start_walk(jstore *js, js_op *op)
{
	char stream[96], subj[700], a[JS_ADDR_ENC_MAX + 1], c[JS_CID_ENC_MAX + 1];
	op->deadline = js_now_ms() + js->o.timeout_ms; /* a fresh budget: the wait below */
	js_enc_addr(a, sizeof(a), op->from);
	js_enc_cid(c, sizeof(c), &op->cid);
	snprintf(stream, sizeof(stream), "KV_%s_dedup", js->prefix);
	snprintf(subj, sizeof(subj), "$KV.%s_dedup.%s.%s", js->prefix, a, c);
	op->step = step_walk_claim;
	js_send(js, op, js_req_last_leader(js, stream, subj));
}

/* ---- round 1 ---- */

static void round_done(jstore *js, js_op *op)
{
	js_sendx *x = op->ext;
	if (js->closing)
		return js_log_finish(js, op, CHAT_EIO, 0);
	bool quota = false, eio = x->exp_rc != CHAT_OK;
	for (size_t i = 0; i < x->nr; i++) {
		if (x->r[i].rc == CHAT_EQUOTA)
			quota = true;
		else if (x->r[i].rc != CHAT_OK)
			eio = true;
	}
	if (x->claim_rc != CHAT_OK && x->claim_rc != CHAT_EEXIST)
		eio = true;
	if (eio)
		return refuse(js, op, CHAT_EIO);
	if (x->claim_rc == CHAT_EEXIST && strcmp(x->claim.conv, op->conv)) {
		/* the cid was used in another conversation: that send's answer */
		js_seterr(js, "%s: the cid was sent in %s", op->conv, x->claim.conv);
		x->retry = true;
		drop_reservations(js, x, NULL);
		return js_log_finish(js, op, CHAT_EEXIST, x->claim.seq0);
	}
	if (quota && x->claim_rc == CHAT_EEXIST && !x->finishing) {
		/* a retry whose original may be stored (and fill the queue): find it */
		drop_reservations(js, x, NULL);
		return start_walk(js, op);
	}
	if (quota) {
		js_seterr(js, "%s: a recipient's queue is full", op->conv);
		return refuse(js, op, CHAT_EQUOTA);
	}
	if (x->claim_rc == CHAT_EEXIST && !x->finishing)
		return start_walk(js, op);
	commit(js, op);
}

static void child_report(jstore *js, js_op *hold)
{
	js_sendx *x = hold->ext;
	if (--x->inflight == 0)
		round_done(js, hold);
}

static void child_result(jstore *js, js_op *c, int rc, uint64_t sseq)
{
	js_op *hold = c->arg;
	js_sendx *x = hold->ext;
	if (c->stage == CH_RES) {
		x->r[c->n].rc = rc;
		if (rc == CHAT_OK)
			x->r[c->n].sseq = sseq;
	} else {
		x->exp_rc = rc;
	}
	js_op_end(js, c);
	child_report(js, hold);
}

static void child_fail(jstore *js, js_op *c, int rc)
{
	child_result(js, c, rc, 0);
}

static void step_child(jstore *js, js_op *c, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	/* the per-subject limit with discard new (the queue is full): 10077,
	 * answered with code 503, which js_api_reply counts as "not now" */
	if (a.err_code == 10077)
		return child_result(js, c, CHAT_EQUOTA, 0);
	if (r == JS_RETRY) {
		js_retry_soon(js, c);
		return;
	}
	if (r != JS_FOUND)
		return child_result(js, c, CHAT_EIO, 0);
	if (a.ok) /* stored, or a Duplicate of our earlier attempt: its seq either way */
		return child_result(js, c, CHAT_OK, a.seq);
	child_result(js, c, CHAT_EIO, 0);
}

static void claim_done(void *arg, int rc, const char *conv, uint64_t seq0)
{
	js_op *hold = arg;
	js_sendx *x = hold->ext;
	x->claim_rc = rc;
	if (rc == CHAT_EEXIST) {
		snprintf(x->claim.conv, sizeof(x->claim.conv), "%s", conv ? conv : "");
		x->claim.seq0 = seq0;
	}
	child_report(x->js, hold);
}

static void child_send(jstore *js, js_op *hold, int stage, size_t i, natsMsg *m)
{
	js_sendx *x = hold->ext;
	js_op *c = js_op_new(js);
	if (!c) {
		if (m)
			natsMsg_Destroy(m);
		if (stage == CH_RES)
			x->r[i].rc = CHAT_ENOMEM;
		else
			x->exp_rc = CHAT_ENOMEM;
		return;
	}
	c->deadline = hold->deadline;
	c->step = step_child;
	c->fail = child_fail;
	c->arg = hold;
	c->stage = stage;
	c->n = i;
	x->inflight++;
	js_send(js, c, m);
}

static bool short_ttl(jstore *js, const js_op *op, const js_sendx *x)
{
	/* offline_ttl is max_age_s less the day of slack (jstore_opts) */
	uint64_t off = js->o.max_age_s > 86400 ? (js->o.max_age_s - 86400) * 1000 : 0;
	return x->expires && x->expires > op->ts && x->expires - op->ts < off;
}

/* op->log_free: op->n is free. Round 1 for n: the reservations (again after
 * a conflict: the stale ones are deleted), the expiry entry, and with the
 * first round the claim. */
static void send_reserve(jstore *js, js_op *op)
{
	js_sendx *x = op->ext;
	char stream_hdr[24], ts[24], exp[24], cid[JS_CID_ENC_MAX + 1], from[JS_ADDR_ENC_MAX + 1];
	char subj[600], msgid[900];
	drop_reservations(js, x, NULL); /* stale: their seq went to another entry */
	x->rn = op->n;
	x->exp_rc = CHAT_OK;
	x->inflight = 1; /* held until every child is sent */
	js_enc_cid(cid, sizeof(cid), &op->cid);
	js_enc_addr(from, sizeof(from), op->from);
	snprintf(stream_hdr, sizeof(stream_hdr), "%" PRIu64, op->n);
	snprintf(ts, sizeof(ts), "%" PRIu64, op->ts);
	snprintf(exp, sizeof(exp), "%" PRIu64, x->expires);
	if (!x->claim_sent) {
		x->claim_sent = true;
		if (x->kind == STORE_KIND_MSG) {
			x->inflight++;
			if (jstore_dedup_claim(js, op->from, &op->cid, op->conv, op->n, claim_done, op) != CHAT_OK) {
				x->inflight--;
				x->claim_rc = CHAT_ENOMEM;
			}
		} else {
			x->claim_rc = CHAT_OK; /* a group event: no dedup */
		}
	}
	for (size_t i = 0; i < x->nr; i++) {
		js_rcpt *r = &x->r[i];
		r->rc = CHAT_OK;
		snprintf(subj, sizeof(subj), "%s.q.%s", js->prefix, r->enc);
		snprintf(msgid, sizeof(msgid), "r.%s.%s.%" PRIu64 ".%s", from, cid, op->n, r->enc);
		natsMsg *m = js_req_pub(js, subj, r->body, r->blen, false, msgid);
		if (m) {
			natsMsgHeader_Set(m, "Chat-Conv", op->conv);
			natsMsgHeader_Set(m, "Chat-Seq", stream_hdr);
			natsMsgHeader_Set(m, "Chat-From", op->from);
			natsMsgHeader_Set(m, "Chat-Cid", cid);
			natsMsgHeader_Set(m, "Chat-Ts", ts);
			natsMsgHeader_Set(m, "Chat-Expires", exp);
			natsMsgHeader_Set(m, "Chat-Kind", x->kind == STORE_KIND_GROUP ? "g" : "m");
		}
		child_send(js, op, CH_RES, i, m);
	}
	if (short_ttl(js, op, x)) {
		snprintf(subj, sizeof(subj), "%s.x.%" PRIu64, js->prefix, x->expires / 60000);
		snprintf(msgid, sizeof(msgid), "x.%s.%s.%" PRIu64, from, cid, op->n);
		natsMsg *m = js_req_pub(js, subj, NULL, 0, false, msgid);
		if (m) {
			natsMsgHeader_Set(m, "Chat-Conv", op->conv);
			natsMsgHeader_Set(m, "Chat-Seq", stream_hdr);
			natsMsgHeader_Set(m, "Chat-From", op->from);
			natsMsgHeader_Set(m, "Chat-Cid", cid);
			natsMsgHeader_Set(m, "Chat-Expires", exp);
		}
		child_send(js, op, CH_EXP, 0, m);
	}
	child_report(js, op);
}

/* ---- the call ---- */

static int cmp_rcpt(const void *a, const void *b)
{
	return strcmp(((const js_rcpt *)a)->addr, ((const js_rcpt *)b)->addr);
}

/* Each recipient's own body from the bodies map {"U/D": bstr, …}. */
static int find_bodies(js_sendx *x, size_t len)
{
	cbr_fields f;
	cbr_fields_open(&f, x->bodies, len, NULL);
	while (cbr_fields_next(&f)) {
		if (f.val.type != CBR_BYTES) {
			cbr_fields_skip(&f);
			return CHAT_EINVAL;
		}
		for (size_t i = 0; i < x->nr; i++)
			if (strlen(x->r[i].addr) == f.key.len && !memcmp(x->r[i].addr, f.key.ptr, f.key.len)) {
				x->r[i].body = f.val.ptr;
				x->r[i].blen = f.val.len;
			}
	}
	return cbr_fields_close(&f, NULL) ? CHAT_EINVAL : CHAT_OK;
}

int jstore_send(jstore *js, const store_msg *msg, const char *const *to, size_t n, jstore_send_cb cb,
                void *arg)
{
	char enc[JS_CONV_ENC_MAX + 1], a[JS_ADDR_ENC_MAX + 1], c[JS_CID_ENC_MAX + 1];
	if (!msg || !cb || !n || !msg->conv || !msg->from || !js_enc_conv(enc, sizeof(enc), msg->conv) ||
	    !js_enc_addr(a, sizeof(a), msg->from) || !js_enc_cid(c, sizeof(c), &msg->cid) ||
	    (msg->body && msg->bodies) || js->closing)
		return CHAT_EINVAL;
	js_sendx *x = calloc(1, sizeof(*x));
	js_op *op = x ? js_op_new(js) : NULL;
	if (x)
		x->r = calloc(n, sizeof(*x->r));
	if (!op || !x->r)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		if (!to[i] || strlen(to[i]) > CHAT_ADDR_MAX || !js_enc_addr(x->r[x->nr].enc, sizeof(x->r[0].enc), to[i])) {
			free(x->r);
			free(x);
			free(op);
			return CHAT_EINVAL;
		}
		snprintf(x->r[x->nr].addr, sizeof(x->r[0].addr), "%s", to[i]);
		x->nr++;
	}
	qsort(x->r, x->nr, sizeof(*x->r), cmp_rcpt);
	size_t u = 0; /* distinct devices: a device listed twice is reserved once */
	for (size_t i = 0; i < x->nr; i++)
		if (!u || strcmp(x->r[u - 1].addr, x->r[i].addr))
			x->r[u++] = x->r[i];
	x->nr = u;
	if (msg->bodies) {
		x->bodies = malloc(msg->bodies_len ? msg->bodies_len : 1);
		if (!x->bodies)
			goto nomem;
		memcpy(x->bodies, msg->bodies, msg->bodies_len);
		if (find_bodies(x, msg->bodies_len) != CHAT_OK) {
			free(x->bodies);
			free(x->r);
			free(x);
			free(op);
			return CHAT_EINVAL;
		}
	} else if (msg->body_len) {
		op->body = malloc(msg->body_len);
		if (!op->body)
			goto nomem;
		memcpy(op->body, msg->body, msg->body_len);
		op->body_len = msg->body_len;
	}
	op->cv = js_conv_get(js, msg->conv);
	if (!op->cv)
		goto nomem;
	x->js = js;
	x->cb = cb;
	x->arg = arg;
	x->kind = msg->kind;
	x->expires = msg->expires;
	x->has_type = msg->has_type;
	x->type = msg->type;
	op->ext = x;
	op->fail = hold_fail;
	op->cid = msg->cid;
	op->ts = msg->ts;
	op->log_free = send_reserve;
	op->log_hdrs = send_hdrs;
	op->log_ours = send_ours;
	op->log_done = send_done;
	snprintf(op->key, sizeof(op->key), "%s", enc);
	snprintf(op->conv, sizeof(op->conv), "%s", msg->conv);
	snprintf(op->from, sizeof(op->from), "%s", msg->from);
	js_log_enqueue(js, op);
	return CHAT_OK;
nomem:
	if (x) {
		free(x->bodies);
		free(x->r);
	}
	if (op)
		free(op->body);
	free(x);
	free(op);
	return CHAT_ENOMEM;
}
