// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_sess.c — sessions, node leases, the janitor and live events between
 * nodes (docs/CLUSTER.md, "Device→node routing, live events, presence").
 *
 * Everything runs on the owner thread: the heartbeat, the reading of the
 * heartbeats and the janitor are started from jstore_drain's tick (no
 * thread of ours); the live-event subscription's messages come through the
 * completion FIFO (status JS_COMP_LIVE) like the request answers.
 *
 * - chat_sess <U>.<D>.<node>_<conn> = {node, since}: a KV create by the
 *   node that accepted the connection; removed by a message delete (by
 *   stream seq), by that node at DISCONNECT or by the janitor. A message
 *   delete succeeds once: the one janitor whose delete succeeded reports.
 * - chat_nodes <node> = {ts}: a put every lease/5; every node reads all
 *   heartbeats every min(1 s, lease/10) and remembers, by its own clock,
 *   when each node's value last changed (no clock comparison between
 *   nodes); a node whose value has not changed for the lease is dead.
 * - chat_jobs janitor.<slot>: created (create-only) by every node at the
 *   start of a slot; the one whose create succeeded runs the janitor in
 *   that slot: sessions of nodes dead for lease + grace are deleted, and
 *   each device left with no session on a live node is reported offline.
 * - <P>.node.<id>.ev: core NATS, numbered per target node within the
 *   sender's epoch (a random number of its run); the receiver reports a
 *   gap before the event that revealed it. No ctl re-ask: a gap means
 *   the owner reads the devices' queues (the entries are there). */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "js_internal.h"
#include "js_sess.h"

typedef struct js_peer {
	char node[JS_NODE_MAX + 1];
	uint64_t next_out;      /* the number of the next live event sent to it */
	js_gap in;              /* the numbers received from it */
} js_peer;

typedef struct js_mem {
	char node[JS_NODE_MAX + 1];
	uint64_t hb_ts;         /* its last heartbeat's value (its unix ms) */
	int64_t changed_at;     /* our monotonic ms when that value last changed */
} js_mem;

struct js_sess {
	jstore_node_cbs cbs;
	natsSubscription *sub;
	uint64_t epoch;
	js_peer *peers;
	size_t npeers, cpeers;
	js_mem *mem;
	size_t nmem, cmem;
	uint32_t lease_ms, hb_every, poll_every;
	int64_t next_hb, next_poll, next_jan;
	bool hb_busy, poll_busy, jan_busy, polled;
	uint64_t slot_tried, slot_held;
	bool holding;
};

static uint64_t unix_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void kv_subj(jstore *js, char *out, size_t cap, const char *bucket, const char *key)
{
	snprintf(out, cap, "$KV.%s_%s.%s", js->prefix, bucket, key);
}

static void kv_strm(jstore *js, char *out, size_t cap, const char *bucket)
{
	snprintf(out, cap, "KV_%s_%s", js->prefix, bucket);
}

static bool sess_key(char *out, size_t cap, const char *addr, const char *node, uint64_t conn)
{
	char a[JS_ADDR_ENC_MAX + 1], t[JS_TOKEN_MAX + 32];
	if (!js_enc_addr(a, sizeof(a), addr) || !js_conn_token(t, sizeof(t), node, conn))
		return false;
	int n = snprintf(out, cap, "%s.%s", a, t);
	return n > 0 && (size_t)n < cap;
}

/* ---- what this node knows of the others ---- */

static js_peer *peer_of(struct js_sess *s, const char *node)
{
	for (size_t i = 0; i < s->npeers; i++)
		if (!strcmp(s->peers[i].node, node))
			return &s->peers[i];
	if (s->npeers == s->cpeers) {
		size_t c = s->cpeers ? 2 * s->cpeers : 8;
		js_peer *p = realloc(s->peers, c * sizeof(*p));
		if (!p)
			return NULL;
		s->peers = p;
		s->cpeers = c;
	}
	js_peer *p = &s->peers[s->npeers++];
	memset(p, 0, sizeof(*p));
	snprintf(p->node, sizeof(p->node), "%s", node);
	p->next_out = 1;
	return p;
}

/* A node's memory; create: a node first met now (its heartbeat never
 * read: counted from now, its last heartbeat estimated one lease ago). */
static js_mem *mem_of(struct js_sess *s, const char *node, bool create, int64_t now)
{
	for (size_t i = 0; i < s->nmem; i++)
		if (!strcmp(s->mem[i].node, node))
			return &s->mem[i];
	if (!create)
		return NULL;
	if (s->nmem == s->cmem) {
		size_t c = s->cmem ? 2 * s->cmem : 8;
		js_mem *m = realloc(s->mem, c * sizeof(*m));
		if (!m)
			return NULL;
		s->mem = m;
		s->cmem = c;
	}
	js_mem *m = &s->mem[s->nmem++];
	memset(m, 0, sizeof(*m));
	snprintf(m->node, sizeof(m->node), "%s", node);
	m->changed_at = now;
	uint64_t u = unix_ms();
	m->hb_ts = u > s->lease_ms ? u - s->lease_ms : 0;
	return m;
}

static bool node_dead(jstore *js, const char *node, int64_t now, uint32_t extra)
{
	struct js_sess *s = js->sess;
	if (!s || !strcmp(node, js->node))
		return false;
	js_mem *m = mem_of(s, node, false, now);
	return m && now - m->changed_at > (int64_t)s->lease_ms + extra;
}

bool js_node_known_dead(jstore *js, const char *node)
{
	return node_dead(js, node, js_now_ms(), 0);
}

/* ---- a walk over a bucket's keys (next_by_subj from seq 1) ---- */

typedef struct walk walk;
struct walk {
	/* each found message (delete markers included), then the end */
	void (*each)(jstore *js, walk *w, natsMsg *m, uint64_t seq, const char *subj);
	void (*end)(jstore *js, walk *w, int rc);
	char stream[96];
	char filter[600];
	bool leader;
	/* jstore_session_nodes */
	jstore_nodes_cb ncb;
	void *narg;
	char (*nodes)[JS_NODE_MAX + 1];
	size_t nn, cn;
	/* the janitor */
	struct cand {
		uint64_t seq;
		char addr[CHAT_ADDR_MAX + 1];
		char node[JS_NODE_MAX + 1];
		uint64_t seen;
	} *cands;
	size_t nc, cc, ic;
	size_t live;            /* the device's sessions on live nodes */
};

static natsMsg *walk_req(jstore *js, walk *w, uint64_t from)
{
	char s[160], j[800];
	natsMsg *m = NULL;
	(void)js;
	snprintf(s, sizeof(s), "$JS.API.%s.%s", w->leader ? "STREAM.MSG.GET" : "DIRECT.GET", w->stream);
	snprintf(j, sizeof(j), "{\"seq\":%" PRIu64 ",\"next_by_subj\":\"%s\"}", from, w->filter);
	if (natsMsg_Create(&m, s, NULL, j, (int)strlen(j)) != NATS_OK)
		return NULL;
	return m;
}

static void walk_fail(jstore *js, js_op *op, int rc)
{
	walk *w = op->arg;
	js_op_end(js, op);
	w->end(js, w, rc);
}

static void step_walk(jstore *js, js_op *op, natsMsg *m)
{
	walk *w = op->arg;
	enum js_reply r = js_get_reply(js, m, false);
	const char *sq = NULL, *subj = NULL;
	uint64_t seq;
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r == JS_NOTFOUND)
		return walk_fail(js, op, CHAT_OK);
	if (r != JS_FOUND)
		return walk_fail(js, op, CHAT_EIO);
	if (natsMsgHeader_Get(m, "Nats-Sequence", &sq) != NATS_OK || !sq || !js_parse_u64(sq, strlen(sq), &seq) ||
	    natsMsgHeader_Get(m, "Nats-Subject", &subj) != NATS_OK || !subj)
		return walk_fail(js, op, CHAT_ECORRUPT);
	w->each(js, w, m, seq, subj);
	js_send(js, op, walk_req(js, w, seq + 1));
}

static int walk_start(jstore *js, walk *w)
{
	js_op *op = js_op_new(js);
	if (!op)
		return CHAT_ENOMEM;
	op->step = step_walk;
	op->fail = walk_fail;
	op->arg = w;
	natsMsg *m = walk_req(js, w, 1);
	if (!m) {
		free(op);
		return CHAT_ENOMEM;
	}
	js_send(js, op, m);
	return CHAT_OK;
}

static bool is_marker(natsMsg *m)
{
	const char *op = NULL;
	return natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op;
}

/* "$KV.<P>_sess.<U>.<D>.<conn>" → "U/D". */
static bool addr_of_subject(jstore *js, const char *subj, char *addr, size_t cap)
{
	char pfx[96];
	int pl = snprintf(pfx, sizeof(pfx), "$KV.%s_sess.", js->prefix);
	if (strncmp(subj, pfx, (size_t)pl))
		return false;
	const char *u = subj + pl, *d = strchr(u, '.');
	if (!d)
		return false;
	const char *c = strchr(d + 1, '.');
	if (!c)
		return false;
	char us[CHAT_USER_MAX + 1], ds[CHAT_USER_MAX + 1];
	if (!js_dec_id(us, sizeof(us), u, (size_t)(d - u)) || !js_dec_id(ds, sizeof(ds), d + 1, (size_t)(c - d - 1)))
		return false;
	int n = snprintf(addr, cap, "%s/%s", us, ds);
	return n > 0 && (size_t)n < cap;
}

/* ---- a single request whose answer ends in a jstore_done_cb ---- */

static void done_fail(jstore *js, js_op *op, int rc)
{
	jstore_done_cb cb = op->cb.done;
	void *arg = op->arg;
	js_op_end(js, op);
	if (cb)
		cb(arg, rc);
}

static int send_new(jstore *js, js_step step, js_fail fail, jstore_done_cb cb, void *arg, natsMsg *m)
{
	if (!m)
		return CHAT_ENOMEM;
	js_op *op = js_op_new(js);
	if (!op) {
		natsMsg_Destroy(m);
		return CHAT_ENOMEM;
	}
	op->step = step;
	op->fail = fail;
	op->cb.done = cb;
	op->arg = arg;
	js_send(js, op, m);
	return CHAT_OK;
}

/* ---- sessions ---- */

static void step_sess_created(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	done_fail(js, op, r != JS_FOUND ? CHAT_EIO : a.ok ? CHAT_OK : a.err_code == 10071 ? CHAT_EEXIST : CHAT_EIO);
}

int jstore_session_open(jstore *js, const char *addr, uint64_t conn, jstore_done_cb cb, void *arg)
{
	char key[400], subj[600], msgid[700];
	uint8_t v[16 + JS_NODE_MAX];
	if (!addr || !sess_key(key, sizeof(key), addr, js->node, conn))
		return CHAT_EINVAL;
	size_t n = js_sess_encode(v, sizeof(v), js->node, unix_ms());
	if (!n)
		return CHAT_EINVAL;
	kv_subj(js, subj, sizeof(subj), "sess", key);
	/* a resent create (its answer lost) is a duplicate, not a refusal; the
	 * nonce keeps a later open of the same key (after its close, within the
	 * duplicate window) from being taken for one */
	snprintf(msgid, sizeof(msgid), "s.%s.%08" PRIx32 "%08" PRIx32, key, randombytes_random(), randombytes_random());
	return send_new(js, step_sess_created, done_fail, cb, arg, js_req_pub(js, subj, v, n, true, msgid));
}

static void step_sess_deleted(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	/* 10057 / 10043: already gone (the janitor, or our earlier attempt) */
	done_fail(js, op, r == JS_FOUND && (a.ok || a.err_code == 10057 || a.err_code == 10043) ? CHAT_OK : CHAT_EIO);
}

static void step_sess_close_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	const char *sq = NULL;
	uint64_t seq;
	char stream[96];
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r == JS_NOTFOUND)
		return done_fail(js, op, CHAT_OK);
	if (r != JS_FOUND)
		return done_fail(js, op, CHAT_EIO);
	if (natsMsgHeader_Get(m, "Nats-Sequence", &sq) != NATS_OK || !sq || !js_parse_u64(sq, strlen(sq), &seq))
		return done_fail(js, op, CHAT_ECORRUPT);
	kv_strm(js, stream, sizeof(stream), "sess");
	op->step = step_sess_deleted;
	js_send(js, op, js_req_delete(js, stream, seq));
}

int jstore_session_close(jstore *js, const char *addr, uint64_t conn, jstore_done_cb cb, void *arg)
{
	char key[400], subj[600], stream[96];
	if (!addr || !sess_key(key, sizeof(key), addr, js->node, conn))
		return CHAT_EINVAL;
	kv_subj(js, subj, sizeof(subj), "sess", key);
	kv_strm(js, stream, sizeof(stream), "sess");
	/* at the leader: a replica behind would say "gone" and leave the key */
	return send_new(js, step_sess_close_read, done_fail, cb, arg, js_req_last_leader(js, stream, subj));
}

static void nodes_each(jstore *js, walk *w, natsMsg *m, uint64_t seq, const char *subj)
{
	char node[JS_NODE_MAX + 1];
	uint64_t since;
	(void)seq;
	(void)subj;
	if (is_marker(m) || js_sess_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
	                                   node, &since) != CHAT_OK)
		return;
	if (node_dead(js, node, js_now_ms(), 0))
		return; /* a key whose node is dead is treated as absent */
	for (size_t i = 0; i < w->nn; i++)
		if (!strcmp(w->nodes[i], node))
			return;
	if (w->nn == w->cn) {
		size_t c = w->cn ? 2 * w->cn : 4;
		char(*p)[JS_NODE_MAX + 1] = realloc(w->nodes, c * sizeof(*p));
		if (!p)
			return;
		w->nodes = p;
		w->cn = c;
	}
	snprintf(w->nodes[w->nn++], JS_NODE_MAX + 1, "%s", node);
}

static void nodes_end(jstore *js, walk *w, int rc)
{
	const char *list[64];
	size_t n = 0;
	(void)js;
	for (size_t i = 0; i < w->nn && n < 64; i++)
		list[n++] = w->nodes[i];
	w->ncb(w->narg, rc, rc == CHAT_OK ? list : NULL, rc == CHAT_OK ? n : 0);
	free(w->nodes);
	free(w);
}

int jstore_session_nodes(jstore *js, const char *addr, jstore_nodes_cb cb, void *arg)
{
	char a[JS_ADDR_ENC_MAX + 1];
	if (!addr || !cb || !js_enc_addr(a, sizeof(a), addr))
		return CHAT_EINVAL;
	walk *w = calloc(1, sizeof(*w));
	if (!w)
		return CHAT_ENOMEM;
	w->each = nodes_each;
	w->end = nodes_end;
	w->ncb = cb;
	w->narg = arg;
	w->leader = js->o.leader_reads;
	kv_strm(js, w->stream, sizeof(w->stream), "sess");
	snprintf(w->filter, sizeof(w->filter), "$KV.%s_sess.%s.*", js->prefix, a);
	int rc = walk_start(js, w);
	if (rc != CHAT_OK)
		free(w);
	return rc;
}

/* ---- the heartbeat and the reading of every heartbeat ---- */

static void hb_fail(jstore *js, js_op *op, int rc)
{
	(void)rc;
	js_op_end(js, op);
	if (js->sess)
		js->sess->hb_busy = false;
}

static void step_hb(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	if (js_api_reply(js, m, &a) == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	hb_fail(js, op, CHAT_OK);
}

static void heartbeat(jstore *js)
{
	char subj[600], tok[JS_TOKEN_MAX + 1];
	uint8_t v[9];
	js_enc_id(tok, sizeof(tok), js->node, strlen(js->node));
	kv_subj(js, subj, sizeof(subj), "nodes", tok);
	js_hb_encode(v, unix_ms());
	natsMsg *m = js_req_pub(js, subj, v, sizeof(v), false, NULL);
	js_op *op = m ? js_op_new(js) : NULL;
	if (!op) {
		if (m)
			natsMsg_Destroy(m);
		return;
	}
	/* a heartbeat late by more than a period is worth nothing: the next one */
	op->deadline = js_now_ms() + js->sess->hb_every;
	op->step = step_hb;
	op->fail = hb_fail;
	js->sess->hb_busy = true;
	js_send(js, op, m);
}

static void poll_each(jstore *js, walk *w, natsMsg *m, uint64_t seq, const char *subj)
{
	struct js_sess *s = js->sess;
	char pfx[96], node[JS_NODE_MAX + 1];
	uint64_t ts;
	int64_t now = js_now_ms();
	(void)w;
	(void)seq;
	int pl = snprintf(pfx, sizeof(pfx), "$KV.%s_nodes.", js->prefix);
	if (is_marker(m) || strncmp(subj, pfx, (size_t)pl) ||
	    !js_dec_id(node, sizeof(node), subj + pl, strlen(subj + pl)) ||
	    js_hb_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &ts) != CHAT_OK)
		return;
	bool fresh = !mem_of(s, node, false, now);
	js_mem *k = mem_of(s, node, true, now);
	if (k && (fresh || k->hb_ts != ts)) {
		k->hb_ts = ts;
		k->changed_at = now;
	}
}

static void janitor_start(jstore *js);

static void poll_end(jstore *js, walk *w, int rc)
{
	free(w);
	if (!js->sess)
		return;
	js->sess->poll_busy = false;
	if (rc == CHAT_OK) {
		js->sess->polled = true;
		janitor_start(js); /* on a fresh memory */
	}
}

static void poll_nodes(jstore *js)
{
	walk *w = calloc(1, sizeof(*w));
	if (!w)
		return;
	w->each = poll_each;
	w->end = poll_end;
	kv_strm(js, w->stream, sizeof(w->stream), "nodes");
	snprintf(w->filter, sizeof(w->filter), "$KV.%s_nodes.*", js->prefix);
	js->sess->poll_busy = true;
	if (walk_start(js, w) != CHAT_OK) {
		js->sess->poll_busy = false;
		free(w);
	}
}

/* ---- the janitor's slot ---- */

static void slot_fail(jstore *js, js_op *op, int rc)
{
	(void)rc;
	js_op_end(js, op);
}

static void step_slot(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	uint64_t slot = op->n;
	js_op_end(js, op);
	/* created (or a duplicate of our own create): ours; 10071: another's */
	if (r == JS_FOUND && a.ok && js->sess && slot == js_slot_of(unix_ms(), js->sess->cbs.slot_ms)) {
		js->sess->slot_held = slot;
		js->sess->holding = true;
	}
}

static void try_slot(jstore *js, uint64_t slot)
{
	char key[64], subj[600], msgid[300], tok[JS_TOKEN_MAX + 1];
	struct js_sess *s = js->sess;
	s->slot_tried = slot;
	snprintf(key, sizeof(key), "janitor.%" PRIu64, slot);
	kv_subj(js, subj, sizeof(subj), "jobs", key);
	js_enc_id(tok, sizeof(tok), js->node, strlen(js->node));
	snprintf(msgid, sizeof(msgid), "j.%" PRIu64 ".%s", slot, tok);
	natsMsg *m = js_req_pub(js, subj, js->node, strlen(js->node), true, msgid);
	js_op *op = m ? js_op_new(js) : NULL;
	if (!op) {
		if (m)
			natsMsg_Destroy(m);
		return;
	}
	op->deadline = js_now_ms() + (int64_t)js_slot_left_ms(unix_ms(), s->cbs.slot_ms);
	op->step = step_slot;
	op->fail = slot_fail;
	op->n = slot;
	js_send(js, op, m);
}

/* ---- the janitor: sessions of dead nodes ---- */

static void jan_next(jstore *js, walk *w);

static void jan_each(jstore *js, walk *w, natsMsg *m, uint64_t seq, const char *subj)
{
	struct js_sess *s = js->sess;
	char node[JS_NODE_MAX + 1], addr[CHAT_ADDR_MAX + 1];
	uint64_t since;
	int64_t now = js_now_ms();
	if (is_marker(m) || js_sess_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
	                                   node, &since) != CHAT_OK ||
	    !strcmp(node, js->node) || !addr_of_subject(js, subj, addr, sizeof(addr)))
		return;
	js_mem *k = mem_of(s, node, true, now); /* never heard of: counted from now */
	if (!k || now - k->changed_at < (int64_t)s->lease_ms + s->cbs.grace_ms)
		return;
	if (w->nc == w->cc) {
		size_t c = w->cc ? 2 * w->cc : 8;
		struct cand *p = realloc(w->cands, c * sizeof(*p));
		if (!p)
			return;
		w->cands = p;
		w->cc = c;
	}
	struct cand *c = &w->cands[w->nc++];
	c->seq = seq;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	snprintf(c->node, sizeof(c->node), "%s", node);
	c->seen = k->hb_ts;
}

static void jan_done(jstore *js, walk *w)
{
	free(w->cands);
	free(w);
	if (js->sess) {
		js->sess->jan_busy = false;
		js->sess->next_jan = js_now_ms() + js->sess->poll_every;
	}
}

/* After our delete: does the device keep a session on a live node? */
static void left_each(jstore *js, walk *w, natsMsg *m, uint64_t seq, const char *subj)
{
	char node[JS_NODE_MAX + 1];
	uint64_t since;
	(void)seq;
	(void)subj;
	if (!is_marker(m) && js_sess_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
	                                    node, &since) == CHAT_OK &&
	    !node_dead(js, node, js_now_ms(), 0))
		w->live++;
}

static void left_end(jstore *js, walk *w, int rc)
{
	walk *jw = (walk *)w->narg; /* the janitor's walk */
	size_t live = w->live;
	free(w);
	struct cand *c = &jw->cands[jw->ic];
	if (rc == CHAT_OK && live == 0 && js->sess && js->sess->cbs.offline)
		js->sess->cbs.offline(js->sess->cbs.arg, c->addr, c->seen, c->node);
	jw->ic++;
	jan_next(js, jw);
}

static void step_jan_deleted(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	walk *jw = op->arg;
	js_op_end(js, op);
	if (r != JS_FOUND || !a.ok) { /* gone already (another janitor, its node) or an error: not ours */
		jw->ic++;
		return jan_next(js, jw);
	}
	/* ours: the one deletion that reports, if nothing of the device is left */
	char enc[JS_ADDR_ENC_MAX + 1];
	walk *w = calloc(1, sizeof(*w));
	if (!w || !js_enc_addr(enc, sizeof(enc), jw->cands[jw->ic].addr)) {
		free(w);
		jw->ic++;
		return jan_next(js, jw);
	}
	w->each = left_each;
	w->end = left_end;
	w->narg = jw;
	w->leader = true; /* decides: a replica behind may still show what was deleted */
	kv_strm(js, w->stream, sizeof(w->stream), "sess");
	snprintf(w->filter, sizeof(w->filter), "$KV.%s_sess.%s.*", js->prefix, enc);
	if (walk_start(js, w) != CHAT_OK) {
		free(w);
		jw->ic++;
		jan_next(js, jw);
	}
}

static void jan_op_fail(jstore *js, js_op *op, int rc)
{
	walk *jw = op->arg;
	(void)rc;
	js_op_end(js, op);
	jw->ic++;
	jan_next(js, jw);
}

static void jan_next(jstore *js, walk *w)
{
	if (w->ic >= w->nc || js->closing || !js->sess)
		return jan_done(js, w);
	char stream[96];
	kv_strm(js, stream, sizeof(stream), "sess");
	natsMsg *m = js_req_delete(js, stream, w->cands[w->ic].seq);
	js_op *op = m ? js_op_new(js) : NULL;
	if (!op) {
		if (m)
			natsMsg_Destroy(m);
		return jan_done(js, w);
	}
	op->step = step_jan_deleted;
	op->fail = jan_op_fail;
	op->arg = w;
	js_send(js, op, m);
}

static void jan_end(jstore *js, walk *w, int rc)
{
	if (rc != CHAT_OK)
		w->nc = 0;
	w->ic = 0;
	jan_next(js, w);
}

static void janitor_start(jstore *js)
{
	struct js_sess *s = js->sess;
	int64_t now = js_now_ms();
	uint64_t slot = js_slot_of(unix_ms(), s->cbs.slot_ms);
	if (!s->holding || s->slot_held != slot || s->jan_busy || !s->polled || now < s->next_jan)
		return;
	walk *w = calloc(1, sizeof(*w));
	if (!w)
		return;
	w->each = jan_each;
	w->end = jan_end;
	kv_strm(js, w->stream, sizeof(w->stream), "sess");
	snprintf(w->filter, sizeof(w->filter), "$KV.%s_sess.>", js->prefix);
	s->jan_busy = true;
	if (walk_start(js, w) != CHAT_OK) {
		s->jan_busy = false;
		free(w);
	}
}

/* ---- the tick ---- */

void js_sess_tick(jstore *js, int64_t now)
{
	struct js_sess *s = js->sess;
	if (js->closing)
		return;
	if (!s->hb_busy && now >= s->next_hb) {
		s->next_hb = now + s->hb_every;
		heartbeat(js);
	}
	if (!s->poll_busy && now >= s->next_poll) {
		s->next_poll = now + s->poll_every;
		poll_nodes(js);
	}
	uint64_t slot = js_slot_of(unix_ms(), s->cbs.slot_ms);
	if (s->slot_tried != slot) {
		s->holding = false;
		try_slot(js, slot);
	}
}

/* ---- live events ---- */

static void on_live(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	(void)nc;
	(void)sub;
	jstore *js = closure;
	if (js_fifo_push(&js->fifo, 0, JS_COMP_LIVE, m) != CHAT_OK)
		natsMsg_Destroy(m); /* lost: the next number shows the gap */
}

static bool hdr_u64(natsMsg *m, const char *k, uint64_t *out)
{
	const char *v = NULL;
	return natsMsgHeader_Get(m, k, &v) == NATS_OK && v && js_parse_u64(v, strlen(v), out);
}

void js_sess_on_live(jstore *js, natsMsg *m)
{
	struct js_sess *s = js->sess;
	const char *from = NULL;
	uint64_t epoch, n, first = 0, last = 0;
	jstore_live_dev *devs = NULL;
	size_t nd = 0, blen = 0;
	const uint8_t *bytes = NULL;
	char tok[JS_TOKEN_MAX + 1];
	if (!s || !m)
		return;
	if (natsMsgHeader_Get(m, "Chat-Node", &from) != NATS_OK || !from || strlen(from) > JS_NODE_MAX ||
	    !js_enc_id(tok, sizeof(tok), from, strlen(from)) || !hdr_u64(m, "Chat-Epoch", &epoch) ||
	    !hdr_u64(m, "Chat-N", &n)) {
		js_seterr(js, "a live event without its sender's headers: dropped");
		return;
	}
	js_peer *p = peer_of(s, from);
	if (!p)
		return;
	enum js_gap_res g = js_gap_check(&p->in, epoch, n, &first, &last);
	if (g == JS_GAP_OLD)
		return;
	if (g == JS_GAP_MISSING && s->cbs.gap)
		s->cbs.gap(s->cbs.arg, from, first, last);
	if (js_live_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &devs, &nd, &bytes,
	                   &blen) != CHAT_OK) {
		/* its number is counted: a malformed event is a lost one */
		js_seterr(js, "a live event from %s that does not decode: reported as a gap", from);
		if (s->cbs.gap)
			s->cbs.gap(s->cbs.arg, from, n, n);
		return;
	}
	if (s->cbs.live)
		s->cbs.live(s->cbs.arg, from, devs, nd, bytes, blen);
	free(devs);
}

int jstore_live_publish(jstore *js, const char *node, const jstore_live_dev *devs, size_t n,
                        const uint8_t *bytes, size_t len)
{
	char tok[JS_TOKEN_MAX + 1], subj[400], num[24], ep[24];
	struct js_sess *s = js->sess;
	if (!s || !node || strlen(node) > JS_NODE_MAX || !js_enc_id(tok, sizeof(tok), node, strlen(node)) || n == 0 ||
	    n > JS_LIVE_DEVS_MAX || (len && !bytes))
		return CHAT_EINVAL;
	size_t need = js_live_size(devs, n, len);
	uint8_t *body = malloc(need);
	if (!body)
		return CHAT_ENOMEM;
	size_t bl = js_live_encode(body, need, devs, n, bytes, len);
	if (!bl) {
		free(body);
		return CHAT_EINVAL;
	}
	js_peer *p = peer_of(s, node);
	natsMsg *m = NULL;
	snprintf(subj, sizeof(subj), "%s.node.%s.ev", js->prefix, tok);
	natsStatus st = p ? natsMsg_Create(&m, subj, NULL, (const char *)body, (int)bl) : NATS_NO_MEMORY;
	free(body);
	if (st != NATS_OK)
		return CHAT_ENOMEM;
	snprintf(num, sizeof(num), "%" PRIu64, p->next_out);
	snprintf(ep, sizeof(ep), "%" PRIu64, s->epoch);
	natsMsgHeader_Set(m, "Chat-Node", js->node);
	natsMsgHeader_Set(m, "Chat-Epoch", ep);
	natsMsgHeader_Set(m, "Chat-N", num);
	p->next_out++; /* numbered even if not sent: the receiver sees the gap */
	st = natsConnection_PublishMsg(js->nc, m);
	natsMsg_Destroy(m);
	if (st != NATS_OK) {
		js_seterr(js, "live event to %s: %s", node, natsStatus_GetText(st));
		return CHAT_EIO;
	}
	return CHAT_OK;
}

void jstore_live_skip(jstore *js, const char *node, uint64_t k)
{
	js_peer *p = js->sess ? peer_of(js->sess, node) : NULL;
	if (p)
		p->next_out += k;
}

/* ---- start, free ---- */

int jstore_node_start(jstore *js, const jstore_node_cbs *cbs)
{
	char tok[JS_TOKEN_MAX + 1], subj[400];
	if (js->sess)
		return CHAT_EEXIST;
	struct js_sess *s = calloc(1, sizeof(*s));
	if (!s)
		return CHAT_ENOMEM;
	s->cbs = *cbs;
	if (!s->cbs.grace_ms)
		s->cbs.grace_ms = 10000;
	if (!s->cbs.slot_ms)
		s->cbs.slot_ms = 10000;
	s->lease_ms = js->o.lease_s * 1000;
	s->hb_every = s->lease_ms / 5;
	s->poll_every = s->lease_ms / 10 < 1000 ? s->lease_ms / 10 : 1000;
	/* an epoch never 0, different at every start: the receivers' numbering restarts */
	s->epoch = (((uint64_t)randombytes_random() << 32) | randombytes_random()) | 1;
	js_enc_id(tok, sizeof(tok), js->node, strlen(js->node));
	snprintf(subj, sizeof(subj), "%s.node.%s.ev", js->prefix, tok);
	natsStatus st = natsConnection_Subscribe(&s->sub, js->nc, subj, on_live, js);
	if (st == NATS_OK)
		natsSubscription_SetPendingLimits(s->sub, -1, -1); /* the FIFO holds what waits */
	if (st == NATS_OK)
		st = natsConnection_Flush(js->nc);
	if (st != NATS_OK) {
		js_seterr(js, "subscribe %s: %s", subj, natsStatus_GetText(st));
		if (s->sub)
			natsSubscription_Destroy(s->sub);
		free(s);
		return CHAT_EIO;
	}
	js->sess = s; /* the first tick beats, reads the heartbeats and tries the slot */
	return CHAT_OK;
}

void js_sess_free(jstore *js)
{
	struct js_sess *s = js->sess;
	if (!s)
		return;
	js->sess = NULL;
	if (s->sub) {
		natsSubscription_Unsubscribe(s->sub);
		natsSubscription_Destroy(s->sub);
	}
	free(s->peers);
	free(s->mem);
	free(s);
}
