// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_watch.c — the node's KV watchers and caches (docs/CLUSTER.md, "What a
 * node caches and how it learns of changes"), and the chat_groups record's
 * get and put.
 *
 * One ordered consumer per watched bucket: libnats' js_Subscribe with
 * jsSubOptions.Ordered (an ephemeral push consumer, flow control and idle
 * heartbeats on, no acks; libnats recreates it from the last stream seq it
 * delivered when it sees a gap or misses heartbeats) and deliver policy
 * "last per subject": first the bucket's current content, then every
 * change. Chosen over kvStore_WatchAll, whose kvWatcher_Next blocks a
 * thread per bucket, and over a hand-made push consumer (the flow control
 * and the gap handling would be ours). The callback runs on the
 * subscription's libnats thread and only queues the message in the
 * completion FIFO (status JS_WATCH_STATUS, op = the bucket's index); the
 * owner thread applies it in jstore_drain (js_cache.c). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "js_cache.h"
#include "js_internal.h"

enum { W_ACCT, W_PREFS, W_PUSH, W_CONTACTS, W_GROUPS, W_N };
static const char *const wname[W_N] = { "acct", "prefs", "push", "contacts", "groups" };

typedef struct js_watcher {
	jstore *js;
	int idx;
	natsSubscription *sub;
	bool started, ready;
	uint64_t lost;          /* libnats thread: __atomic */
} js_watcher;

struct js_watch {
	js_watcher w[W_N];
	js_kv_cache c[W_N];
	jstore_change_cb cb;
	void *cb_arg;
	uint64_t delivered;
};

static int widx(const char *bucket, size_t len)
{
	for (int i = 0; i < W_N; i++)
		if (strlen(wname[i]) == len && !memcmp(wname[i], bucket, len))
			return i;
	return -1;
}

/* ---- the libnats side ---- */

static void on_watch(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	(void)nc;
	(void)sub;
	js_watcher *w = closure;
	if (js_fifo_push(&w->js->fifo, (uint64_t)w->idx, JS_WATCH_STATUS, m) != CHAT_OK) {
		__atomic_add_fetch(&w->lost, 1, __ATOMIC_RELAXED);
		natsMsg_Destroy(m);
	}
}

typedef struct start_job {
	js_watcher *w;
	pthread_t t;
	bool empty;
	natsStatus st;
	jsErrCode je;
} start_job;

/* One consumer's creation (a meta-group proposal: ~0.5 s): in parallel. */
static void *start_thread(void *arg)
{
	start_job *j = arg;
	jstore *js = j->w->js;
	char stream[96], subj[128];
	snprintf(stream, sizeof(stream), "KV_%s_%s", js->prefix, wname[j->w->idx]);
	snprintf(subj, sizeof(subj), "$KV.%s_%s.>", js->prefix, wname[j->w->idx]);
	/* an empty bucket is loaded at once: no message will say "no more pending" */
	jsStreamInfo *si = NULL;
	j->st = js_GetStreamInfo(&si, js->jsctx, stream, NULL, &j->je);
	if (j->st != NATS_OK)
		return NULL;
	j->empty = si->State.Msgs == 0;
	jsStreamInfo_Destroy(si);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverLastPerSubject;
	j->st = js_Subscribe(&j->w->sub, js->jsctx, subj, on_watch, j->w, NULL, &so, &j->je);
	if (j->st == NATS_OK)
		natsSubscription_SetPendingLimits(j->w->sub, -1, -1); /* the FIFO holds, not libnats */
	return NULL;
}

int jstore_watch(jstore *js, unsigned mask, char *err, size_t errlen)
{
	char dummy[8];
	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (!js->watch) {
		struct js_watch *wt = calloc(1, sizeof(*wt));
		if (!wt)
			return CHAT_ENOMEM;
		for (int i = 0; i < W_N; i++) {
			wt->w[i].js = js;
			wt->w[i].idx = i;
			if (js_kv_init(&wt->c[i], i == W_CONTACTS, i == W_GROUPS) != CHAT_OK) {
				for (int k = 0; k < i; k++)
					js_kv_free(&wt->c[k]);
				free(wt);
				return CHAT_ENOMEM;
			}
		}
		js->watch = wt;
	}
	start_job jobs[W_N];
	int nj = 0;
	for (int i = 0; i < W_N; i++)
		if ((mask & (1u << i)) && !js->watch->w[i].started) {
			memset(&jobs[nj], 0, sizeof(jobs[nj]));
			jobs[nj].w = &js->watch->w[i];
			if (pthread_create(&jobs[nj].t, NULL, start_thread, &jobs[nj]) != 0) {
				start_thread(&jobs[nj]);
				jobs[nj].t = 0;
			}
			nj++;
		}
	int rc = CHAT_OK;
	for (int k = 0; k < nj; k++) {
		if (jobs[k].t)
			pthread_join(jobs[k].t, NULL);
		js_watcher *w = jobs[k].w;
		if (jobs[k].st != NATS_OK) {
			if (rc == CHAT_OK)
				snprintf(err, errlen, "cluster: watching bucket %s: %s (%d)", wname[w->idx],
				         natsStatus_GetText(jobs[k].st), (int)jobs[k].je);
			rc = CHAT_EIO;
			continue;
		}
		w->started = true;
		if (jobs[k].empty)
			w->ready = true;
	}
	return rc;
}

void js_watch_close(jstore *js)
{
	struct js_watch *wt = js->watch;
	if (!wt)
		return;
	/* a drain waits for a callback under way (it holds &wt->w[i]) and
	 * removes the ephemeral consumer; what it still delivers stays in the
	 * FIFO, freed with it. All drains start, then each is waited for. */
	bool drained[W_N] = { false };
	for (int i = 0; i < W_N; i++)
		if (wt->w[i].sub)
			drained[i] = natsSubscription_Drain(wt->w[i].sub) == NATS_OK;
	for (int i = 0; i < W_N; i++) {
		if (wt->w[i].sub) {
			if (!drained[i] || natsSubscription_WaitForDrainCompletion(wt->w[i].sub, 2000) != NATS_OK)
				natsSubscription_Unsubscribe(wt->w[i].sub);
			natsSubscription_Destroy(wt->w[i].sub);
		}
		js_kv_free(&wt->c[i]);
	}
	free(wt);
	js->watch = NULL;
}

/* ---- the owner thread: changes into the caches ---- */

static void apply(jstore *js, int i, const char *key, size_t klen, uint64_t rev, bool del, const uint8_t *v,
                  size_t len, bool from_watcher)
{
	struct js_watch *wt = js->watch;
	if (js_kv_apply(&wt->c[i], key, klen, rev, del, v, len, from_watcher) == 1 && wt->cb) {
		char k[600];
		snprintf(k, sizeof(k), "%.*s", (int)klen, key);
		wt->cb(wt->cb_arg, wname[i], k, del);
	}
}

static bool is_delete(natsMsg *m)
{
	const char *op = NULL;
	return natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op &&
	       (!strcmp(op, "DEL") || !strcmp(op, "PURGE"));
}

/* "$KV.<prefix>_<bucket>.<key>": the bucket's index and the key; -1 if not ours. */
static int split_subject(jstore *js, const char *subj, const char **key)
{
	size_t pl = strlen(js->prefix);
	if (!subj || strncmp(subj, "$KV.", 4) || strncmp(subj + 4, js->prefix, pl) || subj[4 + pl] != '_')
		return -1;
	const char *b = subj + 5 + pl, *dot = strchr(b, '.');
	if (!dot || !dot[1])
		return -1;
	*key = dot + 1;
	return widx(b, (size_t)(dot - b));
}

void js_watch_deliver(jstore *js, uint64_t idx, natsMsg *m)
{
	struct js_watch *wt = js->watch;
	if (!wt || idx >= W_N || !m)
		return;
	wt->delivered++;
	const char *key = NULL;
	jsMsgMetaData *md = NULL;
	if (split_subject(js, natsMsg_GetSubject(m), &key) != (int)idx ||
	    natsMsg_GetMetaData(&md, m) != NATS_OK)
		return; /* not a bucket's message: nothing to apply */
	uint64_t rev = md->Sequence.Stream, pending = md->NumPending;
	jsMsgMetaData_Destroy(md);
	apply(js, (int)idx, key, strlen(key), rev, is_delete(m), (const uint8_t *)natsMsg_GetData(m),
	      (size_t)natsMsg_GetDataLength(m), true);
	if (pending == 0)
		wt->w[idx].ready = true;
}

void js_watch_ack(jstore *js, natsMsg *req, natsMsg *reply)
{
	const char *key = NULL;
	int i = split_subject(js, natsMsg_GetSubject(req), &key);
	if (i < 0 || !js->watch->w[i].started)
		return;
	js_api_answer a;
	if (js_parse_api(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), &a) != CHAT_OK || !a.ok ||
	    !a.seq)
		return;
	apply(js, i, key, strlen(key), a.seq, is_delete(req), (const uint8_t *)natsMsg_GetData(req),
	      (size_t)natsMsg_GetDataLength(req), false);
}

bool jstore_watch_ready(const jstore *js, unsigned mask)
{
	if (!js->watch)
		return false;
	for (int i = 0; i < W_N; i++)
		if ((mask & (1u << i)) && !js->watch->w[i].ready)
			return false;
	return true;
}

void jstore_watch_on_change(jstore *js, jstore_change_cb cb, void *arg)
{
	if (!js->watch && jstore_watch(js, 0, NULL, 0) != CHAT_OK)
		return;
	js->watch->cb = cb;
	js->watch->cb_arg = arg;
}

void jstore_watch_get_stats(const jstore *js, jstore_watch_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!js->watch)
		return;
	out->delivered = js->watch->delivered;
	for (int i = 0; i < W_N; i++) {
		out->applied += js->watch->c[i].applied;
		out->ignored += js->watch->c[i].ignored;
		out->lost += __atomic_load_n(&js->watch->w[i].lost, __ATOMIC_RELAXED);
		out->entries += js_kv_count(&js->watch->c[i]);
	}
}

/* ---- lookups ---- */

static bool key1(char *out, size_t cap, const char *pfx, const char *id)
{
	char t[JS_TOKEN_MAX + 1];
	if (!js_enc_id(t, sizeof(t), id, strlen(id)))
		return false;
	int n = snprintf(out, cap, "%s%s%s", pfx ? pfx : "", pfx ? "." : "", t);
	return n > 0 && (size_t)n < cap;
}

static bool key2(char *out, size_t cap, const char *pfx, const char *a, const char *b)
{
	char t[JS_TOKEN_MAX + 1];
	if (!key1(out, cap, pfx, a) || !js_enc_id(t, sizeof(t), b, strlen(b)))
		return false;
	size_t n = strlen(out);
	int k = snprintf(out + n, cap - n, ".%s", t);
	return k > 0 && (size_t)k < cap - n;
}

/* The cache's entry, or the lookup's answer in *rc. */
static const js_kv_entry *lookup(const jstore *js, int i, const char *key, int *rc)
{
	if (!js->watch || !js->watch->w[i].ready) {
		*rc = CHAT_EIO;
		return NULL;
	}
	const js_kv_entry *e = js_kv_find(&js->watch->c[i], key, strlen(key));
	*rc = e ? CHAT_OK : CHAT_ENOTFOUND;
	return e;
}

static int cached_cred(const jstore *js, const char *key, uint8_t hash[STORE_HASH_LEN], enum store_role *role)
{
	int rc;
	enum store_role r = STORE_ROLE_SERVICE;
	const js_kv_entry *e = lookup(js, W_ACCT, key, &rc);
	if (!e)
		return rc;
	if (js_cred_decode(e->val, e->len, hash, &r) != CHAT_OK)
		return CHAT_ECORRUPT;
	if (role)
		*role = r;
	return CHAT_OK;
}

int jstore_cached_device(const jstore *js, const char *user, const char *device, uint8_t hash[STORE_HASH_LEN])
{
	char key[320];
	if (!key2(key, sizeof(key), "dev", user, device))
		return CHAT_EINVAL;
	return cached_cred(js, key, hash, NULL);
}

int jstore_cached_service(const jstore *js, const char *name, uint8_t hash[STORE_HASH_LEN], enum store_role *role)
{
	char key[320];
	if (!key1(key, sizeof(key), "svc", name))
		return CHAT_EINVAL;
	return cached_cred(js, key, hash, role);
}

int jstore_cached_admin(const jstore *js, uint8_t hash[STORE_HASH_LEN])
{
	return cached_cred(js, "admin", hash, NULL);
}

int jstore_cached_prefs(const jstore *js, const char *user, store_prefs *p)
{
	char key[320];
	int rc;
	if (!key1(key, sizeof(key), NULL, user))
		return CHAT_EINVAL;
	const js_kv_entry *e = lookup(js, W_PREFS, key, &rc);
	if (!e)
		return rc;
	return js_prefs_decode(e->val, e->len, p) == CHAT_OK ? CHAT_OK : CHAT_ECORRUPT;
}

int jstore_cached_push(const jstore *js, const char *user, const char *device, store_push *p)
{
	char key[320];
	int rc;
	if (!key2(key, sizeof(key), NULL, user, device))
		return CHAT_EINVAL;
	const js_kv_entry *e = lookup(js, W_PUSH, key, &rc);
	if (!e)
		return rc;
	return js_push_decode(e->val, e->len, p) == CHAT_OK ? CHAT_OK : CHAT_ECORRUPT;
}

int jstore_cached_contact(const jstore *js, const char *a, const char *b)
{
	char key[320];
	int rc;
	if (!key2(key, sizeof(key), NULL, a, b))
		return CHAT_EINVAL;
	lookup(js, W_CONTACTS, key, &rc);
	return rc;
}

typedef struct each_ctx {
	int (*cb)(void *arg, const char *peer);
	void *arg;
} each_ctx;

static int each_peer(void *arg, const char *rest, size_t len)
{
	each_ctx *x = arg;
	char peer[CHAT_USER_MAX + 1];
	if (!js_dec_id(peer, sizeof(peer), rest, len))
		return CHAT_OK; /* not a key this backend writes: skipped */
	return x->cb(x->arg, peer);
}

int jstore_contacts_each(const jstore *js, const char *user, int (*cb)(void *arg, const char *peer), void *arg)
{
	char owner[JS_TOKEN_MAX + 1];
	size_t ol = js_enc_id(owner, sizeof(owner), user, strlen(user));
	if (!ol)
		return CHAT_EINVAL;
	if (!js->watch || !js->watch->w[W_CONTACTS].ready)
		return CHAT_EIO;
	each_ctx x = { cb, arg };
	return js_kv_each_owner(&js->watch->c[W_CONTACTS], owner, ol, each_peer, &x);
}

int jstore_cached_group(const jstore *js, const char *gid, jstore_group *g)
{
	char key[320];
	int rc;
	if (!chat_valid_group(gid, strlen(gid)) || !key1(key, sizeof(key), NULL, gid))
		return CHAT_EINVAL;
	const js_kv_entry *e = lookup(js, W_GROUPS, key, &rc);
	if (!e)
		return rc;
	return jstore_group_decode(e->val, e->len, g);
}

/* ---- the walks ---- */

typedef struct walk {
	const jstore *js;
	store_device_cb dev;
	store_service_cb svc;
	jstore_group_each_cb grp;
	void *arg;
} walk;

static int walk_acct(void *arg, const js_kv_entry *e)
{
	walk *w = arg;
	uint8_t hash[STORE_HASH_LEN];
	enum store_role role = STORE_ROLE_SERVICE;
	char a[CHAT_USER_MAX + 1], b[CHAT_USER_MAX + 1];
	const char *k = e->key, *dot;
	bool dev = !strncmp(k, "dev.", 4), svc = !strncmp(k, "svc.", 4);
	if ((dev && !w->dev) || (svc && !w->svc) || (!dev && !svc))
		return CHAT_OK; /* admin, token_key, the other walk's */
	if (js_cred_decode(e->val, e->len, hash, &role) != CHAT_OK)
		return CHAT_ECORRUPT;
	if (svc)
		return js_dec_id(a, sizeof(a), k + 4, e->klen - 4) ? w->svc(w->arg, a, hash, role) : CHAT_ECORRUPT;
	dot = memchr(k + 4, '.', e->klen - 4);
	if (!dot || !js_dec_id(a, sizeof(a), k + 4, (size_t)(dot - k - 4)) ||
	    !js_dec_id(b, sizeof(b), dot + 1, e->klen - (size_t)(dot + 1 - k)))
		return CHAT_ECORRUPT;
	return w->dev(w->arg, a, b, hash);
}

static int walk_groups(void *arg, const js_kv_entry *e)
{
	walk *w = arg;
	char gid[CHAT_GROUP_MAX + 1];
	jstore_group g;
	if (!js_dec_id(gid, sizeof(gid), e->key, e->klen) || jstore_group_decode(e->val, e->len, &g) != CHAT_OK)
		return CHAT_ECORRUPT;
	int rc = w->grp(w->arg, gid, &g);
	jstore_group_free(&g);
	return rc;
}

int jstore_devices_each(const jstore *js, store_device_cb cb, void *arg)
{
	walk w = { js, cb, NULL, NULL, arg };
	if (!js->watch || !js->watch->w[W_ACCT].ready)
		return CHAT_EIO;
	return js_kv_each(&js->watch->c[W_ACCT], walk_acct, &w);
}

int jstore_services_each(const jstore *js, store_service_cb cb, void *arg)
{
	walk w = { js, NULL, cb, NULL, arg };
	if (!js->watch || !js->watch->w[W_ACCT].ready)
		return CHAT_EIO;
	return js_kv_each(&js->watch->c[W_ACCT], walk_acct, &w);
}

int jstore_groups_each(const jstore *js, jstore_group_each_cb cb, void *arg)
{
	walk w = { js, NULL, NULL, cb, arg };
	if (!js->watch || !js->watch->w[W_GROUPS].ready)
		return CHAT_EIO;
	return js_kv_each(&js->watch->c[W_GROUPS], walk_groups, &w);
}

/* ---- the group record's get and put ---- */

typedef struct group_call {
	jstore_group_cb cb;
	void *arg;
} group_call;

static void fail_put(jstore *js, js_op *op, int rc)
{
	jstore_done_cb cb = op->cb.done;
	void *arg = op->arg;
	js_op_end(js, op);
	if (cb)
		cb(arg, rc);
}

static void step_put(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	fail_put(js, op, r == JS_FOUND && a.ok ? CHAT_OK : CHAT_EIO);
}

int jstore_group_put(jstore *js, const char *gid, const jstore_group *g, jstore_done_cb cb, void *arg)
{
	char key[320], subj[600];
	if (!chat_valid_group(gid, strlen(gid)) || !key1(key, sizeof(key), NULL, gid))
		return CHAT_EINVAL;
	size_t n = jstore_group_size(g);
	if (!n)
		return CHAT_EINVAL;
	uint8_t *v = malloc(n);
	if (!v)
		return CHAT_ENOMEM;
	jstore_group_encode(v, n, g);
	js_op *op = js_op_new(js);
	if (!op) {
		free(v);
		return CHAT_ENOMEM;
	}
	op->step = step_put;
	op->fail = fail_put;
	op->cb.done = cb;
	op->arg = arg;
	snprintf(subj, sizeof(subj), "$KV.%s_groups.%s", js->prefix, key);
	natsMsg *m = js_req_pub(js, subj, v, n, false, NULL);
	free(v);
	if (!m) {
		free(op);
		return CHAT_ENOMEM;
	}
	js_send(js, op, m);
	return CHAT_OK;
}

static void fail_get(jstore *js, js_op *op, int rc)
{
	group_call *c = op->arg;
	js_op_end(js, op);
	c->cb(c->arg, rc, NULL);
	free(c);
}

static void step_get(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	if (r == JS_RETRY) {
		js_retry_soon(js, op);
		return;
	}
	if (r != JS_FOUND)
		return fail_get(js, op, r == JS_NOTFOUND ? CHAT_ENOTFOUND : CHAT_EIO);
	jstore_group g;
	int rc = jstore_group_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &g);
	if (rc != CHAT_OK)
		return fail_get(js, op, rc);
	group_call *c = op->arg;
	js_op_end(js, op);
	c->cb(c->arg, CHAT_OK, &g);
	free(c);
	jstore_group_free(&g);
}

int jstore_group_get(jstore *js, const char *gid, jstore_group_cb cb, void *arg)
{
	char key[320];
	if (!chat_valid_group(gid, strlen(gid)) || !key1(key, sizeof(key), NULL, gid))
		return CHAT_EINVAL;
	group_call *c = malloc(sizeof(*c));
	js_op *op = c ? js_op_new(js) : NULL;
	natsMsg *m = op ? js_req_kv_get(js, "groups", key) : NULL;
	if (!m) {
		free(op);
		free(c);
		return CHAT_ENOMEM;
	}
	c->cb = cb;
	c->arg = arg;
	op->step = step_get;
	op->fail = fail_get;
	op->arg = c;
	js_send(js, op, m);
	return CHAT_OK;
}
