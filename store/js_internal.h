// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_internal.h — shared by store/js_*.c only; the one header besides
 * them that includes nats/nats.h. The backend's operations are state
 * machines on the owner thread: each network request carries the id of
 * the operation step it answers in its reply subject (<inbox>.<id>); the
 * reply arrives on a libnats thread, which only queues (id, message) in the
 * completion FIFO and wakes the owner; jstore_drain() finds the operation
 * by id and runs its next step. A step that sends again takes a new id, so
 * a late answer to an earlier request finds nothing and is dropped. */
#ifndef CHAT_JS_INTERNAL_H
#define CHAT_JS_INTERNAL_H

#include <nats/nats.h>

#include "js.h"
#include "js_codec.h"
#include "js_fifo.h"

#define JS_OP_BUCKETS 4096
#define JS_CONV_BUCKETS 1024
#define JS_CONFLICTS_MAX 16   /* log conflicts in a row before a send is refused */

typedef struct js_op js_op;
/* m: the reply (owned by the caller of the step, destroyed after it). */
typedef void (*js_step)(jstore *js, js_op *op, natsMsg *m);
typedef void (*js_fail)(jstore *js, js_op *op, int rc);

typedef struct js_conv js_conv;

struct js_op {
	uint64_t id;            /* of the request in flight (0: none) */
	js_op *hnext;
	int64_t deadline;       /* ms, monotonic: the whole operation */
	int64_t sent_at;        /* ms: the request in flight, for its resend */
	natsMsg *req;           /* the request in flight, resent after attempt_ms */
	js_step step;
	js_fail fail;
	union {
		jstore_done_cb done;
		jstore_cred_cb cred;
		jstore_key_cb key;
		jstore_prefs_cb prefs;
		jstore_push_cb push;
		jstore_claim_cb claim;
		jstore_seq_cb seq;
		jstore_entry_cb entry;
	} cb;
	void *arg;
	int stage;
	char bucket[16];        /* KV ops: the bucket's short name */
	char key[400];          /* KV key, or the log subject's conv tokens */
	char key2[400];
	char conv[CHAT_CONV_MAX + 1];
	char from[CHAT_ADDR_MAX + 1];
	store_cid cid;
	uint8_t hash[STORE_HASH_LEN];
	int role;
	uint64_t n, seq0, ts, nonce;
	int conflicts;
	uint8_t *body;          /* owned copy */
	size_t body_len;
	js_conv *cv;            /* log appends: the conversation */
	js_op *wnext;           /* log appends waiting for the conversation */
	/* A writer of the conversation's log (jstore_log_append, jstore_send):
	 * what it does at each point of the shared seq assignment (js_ops.c). */
	void (*log_free)(jstore *js, js_op *op);          /* op->n is free: write it */
	void (*log_hdrs)(jstore *js, js_op *op, natsMsg *m); /* more headers on the entry */
	/* log.<conv>.<seq> is this (from, cid) (m: that entry): another's
	 * publish or an earlier attempt; NULL: success at seq */
	void (*log_ours)(jstore *js, js_op *op, natsMsg *m, uint64_t seq);
	void (*log_done)(jstore *js, js_op *op, int rc, uint64_t seq); /* reports, ends op */
	void *ext;              /* the send's own state (js_send.c) */
};

struct js_conv {
	js_conv *next;
	uint64_t head;          /* last seq known to exist */
	bool head_known;
	bool busy;              /* an append in flight */
	js_op *wait_head, *wait_tail;
	char conv[CHAT_CONV_MAX + 1];
};

struct jstore {
	jstore_opts o;
	char prefix[JS_PREFIX_MAX + 1];
	char node[JS_NODE_MAX + 1];
	char urls[1024];
	natsConnection *nc;
	jsCtx *jsctx;
	natsSubscription *replies;
	char inbox[64];         /* replies come to <inbox>.<op id> */
	js_fifo fifo;
	js_batch batch;
	js_op *ops[JS_OP_BUCKETS];
	size_t nops;
	uint64_t next_id;
	int64_t last_scan;
	js_conv *convs[JS_CONV_BUCKETS];
	jstore_stats st;        /* owner thread, except the atomics below */
	uint64_t disconnects, reconnects;  /* libnats threads: __atomic */
	bool closing;
	struct js_rcache *rcache;  /* js_queue.c: receipt unions per rc.<conv>.<user> */
	char lasterr[256];
	struct js_watch *watch; /* js_watch.c: the KV watchers and caches (NULL: none) */
	struct js_sess *sess;   /* js_sess.c: sessions, nodes, live events */
	bool nc_closed;         /* libnats' closed callback ran: __atomic */
};

/* js_sess.c's hooks in js_conn.c: a message of its subscription (FIFO
 * status JS_COMP_LIVE), the drain's tick, the close. */
#define JS_COMP_LIVE 1
void js_sess_on_live(jstore *js, natsMsg *m);
void js_sess_tick(jstore *js, int64_t now);
void js_sess_free(jstore *js);

int64_t js_now_ms(void);
/* Sends op's request m (takes it) with a fresh id; on failure op->fail runs
 * later (the attempt's resend) — never from inside this call. */
void js_send(jstore *js, js_op *op, natsMsg *m);
/* A new operation, deadline set; NULL on ENOMEM. */
js_op *js_op_new(jstore *js);
/* Ends an operation: forgets it, frees it. */
void js_op_end(jstore *js, js_op *op);

/* Requests. */
natsMsg *js_req_kv_get(jstore *js, const char *bucket, const char *key);
natsMsg *js_req_last(jstore *js, const char *stream, const char *subject);
/* The same read at the stream's leader; its answer reaches the step in the
 * shape of a direct get's (headers, Nats-Sequence, Nats-Subject, Status 404). */
natsMsg *js_req_last_leader(jstore *js, const char *stream, const char *subject);
natsMsg *js_req_by_seq(jstore *js, const char *stream, uint64_t seq);
natsMsg *js_req_delete(jstore *js, const char *stream, uint64_t seq);
/* A publish on subject; expect_none: create-only. msgid may be NULL. */
natsMsg *js_req_pub(jstore *js, const char *subject, const void *data, size_t len, bool expect_none,
                    const char *msgid);
void js_stream_name(jstore *js, char *out, size_t cap, const char *which);

/* Reply classification. */
enum js_reply { JS_FOUND, JS_NOTFOUND, JS_RETRY, JS_BAD };
/* A direct get's answer: found (a KV delete marker counts as not found when kv). */
enum js_reply js_get_reply(jstore *js, natsMsg *m, bool kv);
/* A publish's or an API's answer. */
enum js_reply js_api_reply(jstore *js, natsMsg *m, js_api_answer *a);
/* js_queue.c's state, freed by jstore_close. */
void js_queue_free(jstore *js);
/* What the last failure was (jstore_errmsg). */
void js_seterr(jstore *js, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JS_RETRY answer: the op waits again and its request goes out again in
 * ~250 ms (by the scan in jstore_drain), not at once. */
void js_retry_soon(jstore *js, js_op *op);

/* ---- watchers (js_watch.c) ----
 * A watcher's message comes through the FIFO with status JS_WATCH_STATUS
 * and the bucket's index as its op; jstore_drain hands it to
 * js_watch_deliver (m stays the caller's). js_watch_ack sees every answer
 * to a request on $KV.…, before its step: an acknowledged write goes into
 * this node's cache before the operation's callback runs. */
#define JS_WATCH_STATUS 0x5741
void js_watch_deliver(jstore *js, uint64_t idx, natsMsg *m);
void js_watch_ack(jstore *js, natsMsg *req, natsMsg *reply);
void js_watch_close(jstore *js);

/* js_sess.c: node's heartbeat has not changed for a lease, as this node
 * has seen it (false without jstore_node_start, and for this node). */
bool js_node_known_dead(jstore *js, const char *node);

/* ---- the conversation's writers (js_ops.c; used by js_send.c) ----
 * One writer per conversation at a time on a node: js_log_enqueue starts op
 * (op->cv, op->key = the conv's tokens, the log_* hooks set) or queues it
 * behind the conversation's writer. It finds the head (cache, hint,
 * probing), sets op->n and calls op->log_free. js_log_publish creates
 * log.<conv>.<n> (create-only; op->log_hdrs adds headers); its answer is
 * handled here: success, Duplicate, a conflict (read at the leader, probe
 * forward, op->log_free again; refused after JS_CONFLICTS_MAX). Every end
 * goes through js_log_finish (the head cache, op->log_done, the next writer). */
js_conv *js_conv_get(jstore *js, const char *conv);
void js_log_enqueue(jstore *js, js_op *op);
void js_log_publish(jstore *js, js_op *op);
void js_log_finish(jstore *js, js_op *op, int rc, uint64_t seq);
/* A read of log.<conv>.<n> (op->key: the conv's tokens). */
natsMsg *js_log_req(jstore *js, const js_op *op, uint64_t n, bool leader);
/* The entry m carries op's (from, cid). */
bool js_entry_is_ours(const js_op *op, natsMsg *m);
void js_kv_subject(jstore *js, char *out, size_t cap, const char *bucket, const char *key);

#endif
