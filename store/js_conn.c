// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_conn.c — the JetStream backend's connection, its layout (every stream
 * and KV bucket of docs/CLUSTER.md "The layout", created or checked), the
 * request machinery (op ids in reply subjects, resends, deadlines) and the
 * drain of the completion FIFO on the owner thread. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "js_internal.h"

int64_t js_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the layout ---- */

#define NS_PER_S 1000000000LL

typedef struct js_stream_spec {
	const char *which;       /* "LOG", or "KV:acct" for a bucket */
	const char *subj[2];     /* after "<prefix>." (streams) */
	int64_t max_per_subject; /* -1: none; 0: max_queue */
	bool discard_new, discard_new_per_subject, rollup, deny_delete;
	int64_t max_age_s;       /* -1: the options' max_age; 0: none */
} js_stream_spec;

/* docs/CLUSTER.md, "The layout". KV buckets are streams KV_<prefix>_<name>
 * on $KV.<prefix>_<name>.>, as libnats' KV API reads them; chat_dedup keeps
 * message deletes allowed (deny_delete off: the sweeper removes a claim
 * with a message delete, not a KV delete — the design's "Open questions"). */
static const js_stream_spec layout[] = {
	{ "LOG", { "log.>" }, 1, false, false, false, false, -1 },
	{ "Q", { "q.>" }, 0, true, true, false, false, -1 },
	{ "EV", { "e.>", "o.>" }, -1, false, false, false, false, -1 },
	{ "EXP", { "x.>" }, -1, false, false, false, false, -1 },
	{ "RCPT", { "rc.>" }, -1, false, false, true, false, -1 },
	{ "KV:acct", { 0 }, 1, true, false, true, true, 0 },
	{ "KV:dedup", { 0 }, 1, true, false, true, false, -1 },
	{ "KV:heads", { 0 }, 1, true, false, true, true, 0 },
	{ "KV:groups", { 0 }, 1, true, false, true, true, 0 },
	{ "KV:prefs", { 0 }, 1, true, false, true, true, 0 },
	{ "KV:push", { 0 }, 1, true, false, true, true, 0 },
	{ "KV:contacts", { 0 }, 1, true, false, true, true, 0 },
	{ "KV:sess", { 0 }, 1, true, false, true, false, 0 }, /* message deletes: js_sess.c */
	{ "KV:nodes", { 0 }, 1, true, false, true, true, -2 }, /* -2: the lease */
	{ "KV:jobs", { 0 }, 1, true, false, true, true, 60 },
	{ "KV:state", { 0 }, 1, true, false, true, true, 0 },
};

void js_stream_name(jstore *js, char *out, size_t cap, const char *which)
{
	if (!strncmp(which, "KV:", 3)) {
		snprintf(out, cap, "KV_%s_%s", js->prefix, which + 3);
		return;
	}
	size_t n = (size_t)snprintf(out, cap, "%s_%s", js->prefix, which);
	for (size_t i = 0; i < n && i < cap; i++)
		if (out[i] >= 'a' && out[i] <= 'z')
			out[i] = (char)(out[i] - 'a' + 'A');
}

typedef struct js_want {
	char name[96];
	char subj[2][96];
	int nsubj;
	int64_t mmps, max_age_ns, dup_ns;
	bool discard_new, dnps, rollup, deny_delete;
} js_want;

static void want_of(jstore *js, const js_stream_spec *s, js_want *w)
{
	memset(w, 0, sizeof(*w));
	js_stream_name(js, w->name, sizeof(w->name), s->which);
	if (!strncmp(s->which, "KV:", 3)) {
		snprintf(w->subj[0], sizeof(w->subj[0]), "$KV.%s_%s.>", js->prefix, s->which + 3);
		w->nsubj = 1;
	} else {
		for (int i = 0; i < 2 && s->subj[i]; i++, w->nsubj++)
			snprintf(w->subj[i], sizeof(w->subj[i]), "%s.%s", js->prefix, s->subj[i]);
	}
	w->mmps = s->max_per_subject;
	if (w->mmps == 0)
		w->mmps = js->o.max_queue ? (int64_t)js->o.max_queue : -1;
	int64_t age = s->max_age_s == -2 ? (int64_t)js->o.lease_s
	              : s->max_age_s < 0 ? (int64_t)js->o.max_age_s : s->max_age_s;
	w->max_age_ns = age * NS_PER_S;
	w->dup_ns = 120 * NS_PER_S;
	if (age > 0 && age < 120)
		w->dup_ns = age * NS_PER_S; /* the server refuses a window beyond max_age */
	w->discard_new = s->discard_new || (s->discard_new_per_subject && w->mmps > 0);
	w->dnps = s->discard_new_per_subject && w->mmps > 0;
	w->rollup = s->rollup;
	w->deny_delete = s->deny_delete;
}

#define DIFF(field, fmt, have, want)                                                           \
	do {                                                                                   \
		if ((have) != (want)) {                                                        \
			snprintf(err, errlen, "stream %s: %s is " fmt " on the server, " fmt " here", \
			         w->name, field, have, want);                                 \
			return CHAT_EINVAL;                                                    \
		}                                                                              \
	} while (0)

/* The fields this design depends on; anything else (placement, limits the
 * operator added) is the operator's. */
static int check_config(jstore *js, const js_want *w, const jsStreamConfig *c, char *err, size_t errlen)
{
	DIFF("replicas", "%" PRId64, (int64_t)c->Replicas, (int64_t)js->o.replicas);
	DIFF("storage (0 file, 1 memory)", "%d", (int)c->Storage, (int)js_FileStorage);
	DIFF("max_msgs_per_subject", "%" PRId64, (int64_t)(c->MaxMsgsPerSubject <= 0 ? -1 : c->MaxMsgsPerSubject),
	     w->mmps);
	DIFF("discard (0 old, 1 new)", "%d", (int)c->Discard, w->discard_new ? (int)js_DiscardNew : (int)js_DiscardOld);
	DIFF("discard_new_per_subject", "%d", (int)c->DiscardNewPerSubject, (int)w->dnps);
	DIFF("max_age (ns)", "%" PRId64, (int64_t)c->MaxAge, w->max_age_ns);
	DIFF("allow_direct", "%d", (int)c->AllowDirect, 1);
	DIFF("allow_rollup_hdrs", "%d", (int)c->AllowRollup, (int)w->rollup);
	DIFF("deny_delete", "%d", (int)c->DenyDelete, (int)w->deny_delete);
	DIFF("duplicate_window (ns)", "%" PRId64, (int64_t)c->Duplicates, w->dup_ns);
	DIFF("number of subjects", "%d", c->SubjectsLen, w->nsubj);
	for (int i = 0; i < w->nsubj; i++)
		if (strcmp(c->Subjects[i], w->subj[i]) != 0) {
			snprintf(err, errlen, "stream %s: subject %d is \"%s\" on the server, \"%s\" here", w->name,
			         i + 1, c->Subjects[i], w->subj[i]);
			return CHAT_EINVAL;
		}
	return CHAT_OK;
}

static int ensure_stream(jstore *js, const js_stream_spec *s, char *err, size_t errlen)
{
	js_want w;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	want_of(js, s, &w);
	for (int attempt = 0; attempt < 2; attempt++) {
		natsStatus st = js_GetStreamInfo(&si, js->jsctx, w.name, NULL, &je);
		if (st == NATS_OK) {
			int rc = check_config(js, &w, si->Config, err, errlen);
			jsStreamInfo_Destroy(si);
			return rc;
		}
		if (st != NATS_NOT_FOUND && je != JSStreamNotFoundErr) {
			snprintf(err, errlen, "stream %s: %s (%d)", w.name, natsStatus_GetText(st), (int)je);
			return CHAT_EIO;
		}
		jsStreamConfig c;
		const char *subj[2] = { w.subj[0], w.subj[1] };
		jsStreamConfig_Init(&c);
		c.Name = w.name;
		c.Subjects = subj;
		c.SubjectsLen = w.nsubj;
		c.Storage = js_FileStorage;
		c.Replicas = js->o.replicas;
		c.AllowDirect = true;
		c.MaxMsgsPerSubject = w.mmps;
		c.Discard = w.discard_new ? js_DiscardNew : js_DiscardOld;
		c.DiscardNewPerSubject = w.dnps;
		c.MaxAge = w.max_age_ns;
		c.Duplicates = w.dup_ns;
		c.AllowRollup = w.rollup;
		c.DenyDelete = w.deny_delete;
		je = 0;
		st = js_AddStream(NULL, js->jsctx, &c, NULL, &je);
		if (st == NATS_OK)
			return CHAT_OK;
		/* another node created it first, maybe differently: check it */
		if (je != JSStreamNameExistErr) {
			snprintf(err, errlen, "stream %s: cannot create: %s (%d)", w.name, natsStatus_GetText(st), (int)je);
			return CHAT_EIO;
		}
	}
	snprintf(err, errlen, "stream %s: cannot create or read it", w.name);
	return CHAT_EIO;
}

/* Every stream at once, one thread each: a creation is a proposal in the
 * meta group (~0.5 s on this machine), 16 of them one after the other made
 * a first start take 8 s. A stream that cannot be read for now (a leader
 * election: 5–18 s on 2.9, measured) is asked again until the start's
 * deadline, 30 s; a differing configuration is refused at once. */
#define LAYOUT_N (sizeof(layout) / sizeof(layout[0]))
typedef struct layout_job {
	jstore *js;
	const js_stream_spec *spec;
	int rc;
	char err[256];
} layout_job;

static void *layout_thread(void *arg)
{
	layout_job *j = arg;
	int64_t end = js_now_ms() + 30000;
	do {
		j->rc = ensure_stream(j->js, j->spec, j->err, sizeof(j->err));
		if (j->rc != CHAT_EIO)
			break;
		struct timespec ts = { 0, 250 * 1000000L };
		nanosleep(&ts, NULL);
	} while (js_now_ms() < end);
	return NULL;
}

static int ensure_layout(jstore *js, char *err, size_t errlen)
{
	layout_job jobs[LAYOUT_N];
	pthread_t th[LAYOUT_N];
	bool started[LAYOUT_N];
	for (size_t i = 0; i < LAYOUT_N; i++) {
		jobs[i] = (layout_job){ js, &layout[i], CHAT_EIO, "" };
		started[i] = pthread_create(&th[i], NULL, layout_thread, &jobs[i]) == 0;
		if (!started[i])
			layout_thread(&jobs[i]);
	}
	for (size_t i = 0; i < LAYOUT_N; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	/* a refusal first (the operator must act), then any other failure */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < LAYOUT_N; i++)
			if (jobs[i].rc != CHAT_OK && (pass == 1 || jobs[i].rc == CHAT_EINVAL)) {
				snprintf(err, errlen, "%s", jobs[i].err);
				return jobs[i].rc;
			}
	return CHAT_OK;
}

/* ---- libnats threads ---- */

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	(void)nc;
	(void)sub;
	jstore *js = closure;
	const char *subj = natsMsg_GetSubject(m);
	uint64_t id;
	if (!subj || !js_subject_last_u64(subj, strlen(subj), &id) ||
	    js_fifo_push(&js->fifo, id, 0, m) != CHAT_OK)
		natsMsg_Destroy(m); /* the op's resend or deadline answers it */
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	__atomic_add_fetch(&((jstore *)closure)->disconnects, 1, __ATOMIC_RELAXED);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	jstore *js = closure;
	__atomic_add_fetch(&js->reconnects, 1, __ATOMIC_RELAXED);
	/* in-flight requests may have been lost with the old connection: their
	 * resend timers send them again (attempt_ms); wake the owner to look */
	js_fifo_push(&js->fifo, 0, 0, NULL);
}

/* The last of the connection's callbacks (libnats posts them in order on
 * one thread, after natsConnection_Close returns): jstore_close waits for
 * it before freeing js, which the disconnected callback still touches
 * (ASan saw that use after free after a server's kill -9). */
static void on_closed(natsConnection *nc, void *closure)
{
	(void)nc;
	__atomic_store_n(&((jstore *)closure)->nc_closed, true, __ATOMIC_RELEASE);
}

static void destroy_msg(void *p)
{
	natsMsg_Destroy(p);
}

/* ---- open, close ---- */

int jstore_open(jstore **out, const jstore_opts *o, char *err, size_t errlen)
{
	char dummy[8];
	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	*out = NULL;
	if (!o->urls || !*o->urls || !o->node || !*o->node || strlen(o->node) > JS_NODE_MAX ||
	    strlen(o->urls) >= 1024) {
		snprintf(err, errlen, "cluster: urls and a node id (at most %d bytes) are required", JS_NODE_MAX);
		return CHAT_EINVAL;
	}
	const char *prefix = o->prefix ? o->prefix : "chat";
	if (!js_valid_prefix(prefix)) {
		snprintf(err, errlen, "cluster: prefix \"%s\" is not [A-Za-z0-9_-]{1,%d}", prefix, JS_PREFIX_MAX);
		return CHAT_EINVAL;
	}
	jstore *js = calloc(1, sizeof(*js));
	if (!js)
		return CHAT_ENOMEM;
	js->o = *o;
	snprintf(js->prefix, sizeof(js->prefix), "%s", prefix);
	snprintf(js->node, sizeof(js->node), "%s", o->node);
	snprintf(js->urls, sizeof(js->urls), "%s", o->urls);
	if (js->o.replicas <= 0)
		js->o.replicas = 3;
	if (!js->o.max_age_s)
		js->o.max_age_s = 31 * 86400;
	if (!js->o.timeout_ms)
		js->o.timeout_ms = 5000;
	if (!js->o.attempt_ms)
		js->o.attempt_ms = 2000;
	if (!js->o.lease_s)
		js->o.lease_s = 10;
	js->next_id = 1;
	if (js_fifo_init(&js->fifo, o->notify, o->notify_arg) != CHAT_OK) {
		free(js);
		return CHAT_ENOMEM;
	}
	natsOptions *no = NULL;
	natsStatus st = natsOptions_Create(&no);
	/* the URL list: natsOptions_SetURL takes one URL in libnats 3.4.1 */
	char list[1024], *save = NULL;
	const char *servers[16];
	int ns = 0;
	snprintf(list, sizeof(list), "%s", js->urls);
	for (char *u = strtok_r(list, ", ", &save); u && ns < 16; u = strtok_r(NULL, ", ", &save))
		servers[ns++] = u;
	if (ns == 0) {
		snprintf(err, errlen, "cluster: no URL in \"%s\"", js->urls);
		natsOptions_Destroy(no);
		jstore_close(js);
		return CHAT_EINVAL;
	}
	if (st == NATS_OK)
		st = natsOptions_SetServers(no, servers, ns);
	/* every node in the same order would pile onto the first server */
	if (st == NATS_OK)
		st = natsOptions_SetNoRandomize(no, false);
	/* a server that stops answering is left within ~3 s (the libnats default
	 * of 2 min would hold every send that long); reconnect for ever */
	if (st == NATS_OK)
		st = natsOptions_SetPingInterval(no, 1000);
	if (st == NATS_OK)
		st = natsOptions_SetMaxPingsOut(no, 2);
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(no, -1);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectWait(no, 250);
	if (st == NATS_OK)
		st = natsOptions_SetTimeout(no, 2000);
	if (st == NATS_OK)
		st = natsOptions_SetSendAsap(no, true); /* measured: 0.34–0.68 ms a hop instead of ~1 ms */
	if (st == NATS_OK)
		st = natsOptions_SetDisconnectedCB(no, on_disconnected, js);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectedCB(no, on_reconnected, js);
	if (st == NATS_OK)
		st = natsOptions_SetClosedCB(no, on_closed, js);
	if (st == NATS_OK)
		st = natsConnection_Connect(&js->nc, no);
	natsOptions_Destroy(no);
	if (st != NATS_OK) {
		snprintf(err, errlen, "cluster: cannot connect to %s: %s", js->urls, natsStatus_GetText(st));
		goto fail;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	if ((st = natsConnection_JetStream(&js->jsctx, js->nc, &jo)) != NATS_OK) {
		snprintf(err, errlen, "cluster: JetStream: %s", natsStatus_GetText(st));
		goto fail;
	}
	int rc = ensure_layout(js, err, errlen);
	if (rc != CHAT_OK) {
		jstore_close(js);
		return rc;
	}
	natsInbox *ib = NULL;
	if ((st = natsInbox_Create(&ib)) != NATS_OK)
		goto fail_st;
	snprintf(js->inbox, sizeof(js->inbox), "%s", (const char *)ib);
	natsInbox_Destroy(ib);
	char wild[80];
	snprintf(wild, sizeof(wild), "%s.*", js->inbox);
	if ((st = natsConnection_Subscribe(&js->replies, js->nc, wild, on_reply, js)) != NATS_OK)
		goto fail_st;
	/* no limit on what waits for the owner: the FIFO holds it, not libnats */
	natsSubscription_SetPendingLimits(js->replies, -1, -1);
	if ((st = natsConnection_Flush(js->nc)) != NATS_OK)
		goto fail_st;
	*out = js;
	return CHAT_OK;
fail_st:
	snprintf(err, errlen, "cluster: %s", natsStatus_GetText(st));
fail:
	jstore_close(js);
	return CHAT_EIO;
}

static js_op **slot_of(jstore *js, uint64_t id)
{
	js_op **p = &js->ops[id % JS_OP_BUCKETS];
	while (*p && (*p)->id != id)
		p = &(*p)->hnext;
	return p;
}

static void unlink_op(jstore *js, js_op *op)
{
	if (!op->id)
		return;
	js_op **p = slot_of(js, op->id);
	if (*p == op) {
		*p = op->hnext;
		js->nops--;
	}
	op->id = 0;
	op->hnext = NULL;
}

void jstore_close(jstore *js)
{
	if (!js)
		return;
	js->closing = true;
	/* every operation in flight ends with CHAT_EIO, its callback here */
	for (int b = 0; b < JS_OP_BUCKETS; b++)
		while (js->ops[b]) {
			js_op *op = js->ops[b];
			unlink_op(js, op);
			op->fail(js, op, CHAT_EIO);
		}
	js_watch_close(js);
	js_sess_free(js);
	js_queue_free(js);
	if (js->replies) {
		natsSubscription_Unsubscribe(js->replies);
		natsSubscription_Destroy(js->replies);
	}
	if (js->jsctx)
		jsCtx_Destroy(js->jsctx);
	if (js->nc) {
		natsConnection_Close(js->nc);
		for (int i = 0; i < 5000 && !__atomic_load_n(&js->nc_closed, __ATOMIC_ACQUIRE); i++) {
			struct timespec ms = { 0, 1000000L };
			nanosleep(&ms, NULL);
		}
		natsConnection_Destroy(js->nc);
	}
	js_fifo_destroy(&js->fifo, destroy_msg);
	for (size_t i = 0; i < js->batch.n; i++)
		if (js->batch.v[i].data)
			natsMsg_Destroy(js->batch.v[i].data);
	js_batch_free(&js->batch);
	for (int b = 0; b < JS_CONV_BUCKETS; b++)
		while (js->convs[b]) {
			js_conv *c = js->convs[b];
			js->convs[b] = c->next;
			free(c);
		}
	free(js);
}

/* ---- ops ---- */

js_op *js_op_new(jstore *js)
{
	js_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->deadline = js_now_ms() + js->o.timeout_ms;
	js->st.ops++;
	return op;
}

void js_op_end(jstore *js, js_op *op)
{
	unlink_op(js, op);
	if (op->req)
		natsMsg_Destroy(op->req);
	free(op->body);
	free(op);
}

static void enlist(jstore *js, js_op *op, natsMsg *m)
{
	unlink_op(js, op);
	if (op->req && op->req != m)
		natsMsg_Destroy(op->req);
	op->req = m;
	op->id = js->next_id++;
	op->hnext = js->ops[op->id % JS_OP_BUCKETS];
	js->ops[op->id % JS_OP_BUCKETS] = op;
	js->nops++;
	op->sent_at = js_now_ms();
}

void js_send(jstore *js, js_op *op, natsMsg *m)
{
	enlist(js, op, m);
	if (!m)
		return; /* could not build it: the resend timer retries, the deadline ends it */
	char reply[96];
	snprintf(reply, sizeof(reply), "%s.%" PRIu64, js->inbox, op->id);
	/* natsMsg has no setter for the reply subject: build the wire message
	 * through PublishRequest when there are no headers, else PublishMsg of a
	 * copy with the reply. */
	natsMsg *w = NULL;
	const char **keys = NULL;
	int nk = 0;
	natsMsgHeader_Keys(m, &keys, &nk);
	if (natsMsg_Create(&w, natsMsg_GetSubject(m), reply, natsMsg_GetData(m), natsMsg_GetDataLength(m)) ==
	    NATS_OK) {
		for (int i = 0; i < nk; i++) {
			const char *v = NULL;
			if (natsMsgHeader_Get(m, keys[i], &v) == NATS_OK)
				natsMsgHeader_Set(w, keys[i], v);
		}
		natsConnection_PublishMsg(js->nc, w); /* a failure: resent after attempt_ms */
		natsMsg_Destroy(w);
	}
	free((void *)keys);
}

void js_retry_soon(jstore *js, js_op *op)
{
	/* waits again, and the scan sends the same request again in ~250 ms
	 * (no responders, or a cluster answering "not now": not at once) */
	enlist(js, op, op->req);
	op->sent_at = js_now_ms() - (int64_t)js->o.attempt_ms + 250;
}

static void scan(jstore *js, int64_t now)
{
	js_op *due[64];
	size_t nd = 0;
	for (int b = 0; b < JS_OP_BUCKETS && nd < 64; b++)
		for (js_op *op = js->ops[b]; op && nd < 64; op = op->hnext)
			if (now >= op->deadline || now - op->sent_at >= (int64_t)js->o.attempt_ms)
				due[nd++] = op;
	for (size_t i = 0; i < nd; i++) {
		js_op *op = due[i];
		if (now >= op->deadline) {
			js->st.timeouts++;
			js_seterr(js, "no answer within %u ms (%s)", js->o.timeout_ms,
			          op->req ? natsMsg_GetSubject(op->req) : "no request");
			unlink_op(js, op);
			op->fail(js, op, CHAT_EIO);
		} else {
			js->st.retries++;
			js_send(js, op, op->req); /* the same request, a fresh id */
		}
	}
}

static natsMsg *from_leader_get(natsMsg *m);

size_t jstore_drain(jstore *js)
{
	size_t ran = 0;
	int64_t now = js_now_ms();
	while (js_fifo_take(&js->fifo, &js->batch) > 0) {
		js->st.wakeups++;
		for (size_t i = 0; i < js->batch.n; i++) {
			js_completion *c = &js->batch.v[i];
			natsMsg *m = c->data;
			c->data = NULL;
			if (c->status == JS_WATCH_STATUS) {
				js_watch_deliver(js, c->op, m);
				if (m)
					natsMsg_Destroy(m);
				continue;
			}
			if (c->status == JS_COMP_LIVE) { /* js_sess.c's subscription */
				js_sess_on_live(js, m);
				ran++;
				if (m)
					natsMsg_Destroy(m);
				continue;
			}
			js_op **p = c->op ? slot_of(js, c->op) : NULL;
			if (p && *p) {
				js_op *op = *p;
				unlink_op(js, op);
				ran++;
				const char *rs = op->req ? natsMsg_GetSubject(op->req) : NULL;
				if (m && rs && !strncmp(rs, "$JS.API.STREAM.MSG.GET.", 23)) {
					natsMsg *t = from_leader_get(m);
					if (t) {
						natsMsg_Destroy(m);
						m = t;
					}
				}
				if (m && rs && js->watch && !strncmp(rs, "$KV.", 4))
					js_watch_ack(js, op->req, m);
				op->step(js, op, m);
			}
			if (m)
				natsMsg_Destroy(m);
		}
		js->batch.n = 0;
	}
	if (js->sess)
		js_sess_tick(js, now);
	if (now - js->last_scan >= 50) {
		js->last_scan = now;
		scan(js, now);
	}
	return ran;
}

size_t jstore_pending(const jstore *js)
{
	return js->nops;
}

void jstore_get_stats(const jstore *js, jstore_stats *out)
{
	*out = js->st;
	out->disconnects = __atomic_load_n(&js->disconnects, __ATOMIC_RELAXED);
	out->reconnects = __atomic_load_n(&js->reconnects, __ATOMIC_RELAXED);
}

int jstore_stream_leader(jstore *js, const char *which, char *out, size_t cap)
{
	char name[96];
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	js_stream_name(js, name, sizeof(name), which);
	if (js_GetStreamInfo(&si, js->jsctx, name, NULL, &je) != NATS_OK)
		return CHAT_EIO;
	int rc = si->Cluster && si->Cluster->Leader ? CHAT_OK : CHAT_ENOTFOUND;
	if (rc == CHAT_OK)
		snprintf(out, cap, "%s", si->Cluster->Leader);
	jsStreamInfo_Destroy(si);
	return rc;
}

/* ---- requests and replies ---- */

static natsMsg *api_req(const char *subj, const char *json)
{
	natsMsg *m = NULL;
	if (natsMsg_Create(&m, subj, NULL, json, (int)strlen(json)) != NATS_OK)
		return NULL;
	return m;
}

natsMsg *js_req_last(jstore *js, const char *stream, const char *subject)
{
	char s[160], j[512];
	(void)js;
	snprintf(s, sizeof(s), "$JS.API.DIRECT.GET.%s", stream);
	snprintf(j, sizeof(j), "{\"last_by_subj\":\"%s\"}", subject);
	return api_req(s, j);
}

natsMsg *js_req_last_leader(jstore *js, const char *stream, const char *subject)
{
	char s[160], j[700];
	(void)js;
	snprintf(s, sizeof(s), "$JS.API.STREAM.MSG.GET.%s", stream);
	snprintf(j, sizeof(j), "{\"last_by_subj\":\"%s\"}", subject);
	return api_req(s, j);
}

natsMsg *js_req_kv_get(jstore *js, const char *bucket, const char *key)
{
	char stream[96], subj[600];
	snprintf(stream, sizeof(stream), "KV_%s_%s", js->prefix, bucket);
	snprintf(subj, sizeof(subj), "$KV.%s_%s.%s", js->prefix, bucket, key);
	return js->o.leader_reads ? js_req_last_leader(js, stream, subj) : js_req_last(js, stream, subj);
}

static int set_hdr(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	/* values may be long: a send's Chat-Rcpts lists every recipient device */
	char key[128], *val;
	if (kl >= sizeof(key) || vl > 1024 * 1024)
		return CHAT_ECORRUPT;
	memcpy(key, k, kl);
	key[kl] = '\0';
	if (!(val = malloc(vl + 1)))
		return CHAT_ENOMEM;
	memcpy(val, v, vl);
	val[vl] = '\0';
	int rc = natsMsgHeader_Add(arg, key, val) == NATS_OK ? CHAT_OK : CHAT_ENOMEM;
	free(val);
	return rc;
}

/* A leader read's JSON answer in the shape of a direct get's reply, so
 * that every step reads one shape. NULL: keep the reply as it is (a status
 * message: no responders). */
static natsMsg *from_leader_get(natsMsg *m)
{
	js_api_answer a;
	char subject[600], num[24];
	uint64_t seq = 0;
	uint8_t *hdrs = NULL, *data = NULL;
	size_t hl = 0, dl = 0;
	natsMsg *r = NULL;
	const char *st = NULL;
	if (natsMsgHeader_Get(m, "Status", &st) == NATS_OK && st)
		return NULL;
	int rc = js_parse_msg_get(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &a, subject,
	                          sizeof(subject), &seq, &hdrs, &hl, &data, &dl);
	if (rc != CHAT_OK || !a.ok) {
		const char *status = rc != CHAT_OK ? "500" : a.err_code == 10037 ? "404" : a.code == 503 ? "503" : "500";
		if (natsMsg_Create(&r, natsMsg_GetSubject(m), NULL, NULL, 0) == NATS_OK) {
			natsMsgHeader_Set(r, "Status", status);
			natsMsgHeader_Set(r, "Description", rc != CHAT_OK ? "an answer that does not decode" : a.desc);
		}
		return r;
	}
	if (natsMsg_Create(&r, natsMsg_GetSubject(m), NULL, (const char *)data, (int)dl) == NATS_OK) {
		snprintf(num, sizeof(num), "%" PRIu64, seq);
		if ((hdrs && js_parse_hdrs(hdrs, hl, set_hdr, r) != CHAT_OK) ||
		    natsMsgHeader_Set(r, "Nats-Sequence", num) != NATS_OK ||
		    natsMsgHeader_Set(r, "Nats-Subject", subject) != NATS_OK) {
			natsMsg_Destroy(r);
			r = NULL;
			if (natsMsg_Create(&r, natsMsg_GetSubject(m), NULL, NULL, 0) == NATS_OK)
				natsMsgHeader_Set(r, "Status", "500");
		}
	}
	free(hdrs);
	free(data);
	return r;
}

natsMsg *js_req_by_seq(jstore *js, const char *stream, uint64_t seq)
{
	char s[160], j[64];
	(void)js;
	snprintf(s, sizeof(s), "$JS.API.DIRECT.GET.%s", stream);
	snprintf(j, sizeof(j), "{\"seq\":%" PRIu64 "}", seq);
	return api_req(s, j);
}

natsMsg *js_req_delete(jstore *js, const char *stream, uint64_t seq)
{
	char s[160], j[64];
	(void)js;
	snprintf(s, sizeof(s), "$JS.API.STREAM.MSG.DELETE.%s", stream);
	snprintf(j, sizeof(j), "{\"seq\":%" PRIu64 ",\"no_erase\":true}", seq);
	return api_req(s, j);
}

natsMsg *js_req_pub(jstore *js, const char *subject, const void *data, size_t len, bool expect_none,
                    const char *msgid)
{
	natsMsg *m = NULL;
	(void)js;
	if (natsMsg_Create(&m, subject, NULL, data, (int)len) != NATS_OK)
		return NULL;
	if (expect_none)
		natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", "0");
	if (msgid)
		natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
	return m;
}

/* A status-only message (no responders 503, not found 404, timeouts 408). */
static int status_of(natsMsg *m)
{
	const char *v = NULL;
	uint64_t s;
	if (natsMsgHeader_Get(m, "Status", &v) == NATS_OK && v && js_parse_u64(v, strlen(v), &s) && s < 1000)
		return (int)s;
	return 0;
}

void js_seterr(jstore *js, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(js->lasterr, sizeof(js->lasterr), fmt, ap);
	va_end(ap);
}

const char *jstore_errmsg(const jstore *js)
{
	return js->lasterr;
}

enum js_reply js_get_reply(jstore *js, natsMsg *m, bool kv)
{
	int s = status_of(m);
	if (s == 404)
		return JS_NOTFOUND;
	if (s == 503 || s == 408)
		return JS_RETRY;
	if (s) {
		const char *d = NULL;
		natsMsgHeader_Get(m, "Description", &d);
		js_seterr(js, "a read answered status %d (%s)", s, d ? d : "");
		return JS_BAD;
	}
	if (kv) {
		const char *op = NULL;
		if (natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op &&
		    (!strcmp(op, "DEL") || !strcmp(op, "PURGE")))
			return JS_NOTFOUND;
	}
	return JS_FOUND;
}

enum js_reply js_api_reply(jstore *js, natsMsg *m, js_api_answer *a)
{
	int s = status_of(m);
	memset(a, 0, sizeof(*a));
	if (s == 503 || s == 408)
		return JS_RETRY;
	if (s) {
		js_seterr(js, "a write answered status %d", s);
		return JS_BAD;
	}
	if (js_parse_api(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), a) != CHAT_OK) {
		js_seterr(js, "an answer that does not decode: %.*s", natsMsg_GetDataLength(m) > 120 ? 120 :
		          natsMsg_GetDataLength(m), natsMsg_GetData(m));
		return JS_BAD;
	}
	if (!a->ok && a->err_code != 10071 && a->err_code != 10057 && a->err_code != 10043)
		js_seterr(js, "JetStream error %d/%d: %s", a->code, a->err_code, a->desc);
	/* cluster trouble answered as an error: the request may be sent again */
	if (!a->ok && (a->code == 503 || a->err_code == 10008 /* cluster not avail */ ||
	               a->err_code == 10039 /* JetStream not enabled */))
		return JS_RETRY;
	return JS_FOUND;
}
