// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js.h — the JetStream backend of cluster mode, in chat terms (issue 27,
 * docs/CLUSTER.md). Foundation only (the plan's step 3 in part): nothing
 * in the plugin calls it yet — it waits for the asynchronous store API and
 * the backend table behind store.h (plan steps 1 and 2).
 *
 * No NATS type leaves store/js_*.c. Every operation is asynchronous: it
 * returns at once (CHAT_OK: started; an error: nothing started, the
 * callback is not called) and later its callback runs on the owner thread,
 * inside jstore_drain(). libnats answers on its own threads; those answers
 * go through the completion FIFO (js_fifo.h), whose notify the owner gives
 * at open (the plugin: io.wakeup; a test: an eventfd). The owner calls
 * jstore_drain() after each notify and at least every 100 ms (the broker's
 * tick), which also times out operations past their deadline (CHAT_EIO).
 *
 * Not thread-safe apart from notify: one thread owns a handle. */
#ifndef CHAT_JS_H
#define CHAT_JS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "js_rset.h"
#include "store.h"

typedef struct jstore jstore;

typedef struct jstore_opts {
	const char *urls;        /* nats://h:p[,nats://h:p…]; required */
	const char *prefix;      /* the cell: subjects, streams, buckets; default "chat" */
	const char *node;        /* this node's id (in claims, sessions); required */
	int replicas;            /* of every stream and bucket; default 3 */
	uint64_t max_queue;      /* a device queue's limit (CHAT_Q's per-subject limit); 0 = none */
	uint64_t max_age_s;      /* every stream's max_age: offline_ttl + 1 day; default 31 days */
	uint32_t timeout_ms;     /* one operation's deadline, retries included; default 5000 */
	uint32_t attempt_ms;     /* one request's wait before it is sent again; default 2000 */
	/* Every KV read and jstore_log_get at the stream's leader (the
	 * non-direct API: read-your-writes) instead of any replica (a direct
	 * get: faster, served during an election too, but a replica may be a
	 * little behind: measured, 1–10 reads in 1,000). The log's probes and
	 * conflict reads stay direct: nothing is decided on them alone
	 * (docs/CLUSTER.md, "Reads may be stale; decisions are not"). */
	bool leader_reads;
	/* The node lease (s): chat_nodes' max_age; a node whose heartbeat is
	 * older is dead (docs/CLUSTER.md, "Device→node routing"); default 10. */
	uint32_t lease_s;
	void (*notify)(void *arg);  /* any thread: call jstore_drain soon */
	void *notify_arg;
} jstore_opts;

/* Connects and creates or checks every stream and bucket of the layout
 * (synchronous, at start). A stream whose configuration differs from the
 * one these options give is refused: errbuf names the stream, the field and
 * both values. */
int jstore_open(jstore **out, const jstore_opts *o, char *errbuf, size_t errlen);
/* Completes every operation still in flight with CHAT_EIO (callbacks run
 * here), then closes. */
void jstore_close(jstore *js);
/* The owner thread: runs the completions that arrived and times out the
 * late operations; returns how many callbacks ran. */
size_t jstore_drain(jstore *js);
/* What the last failed operation met (a JetStream error, a timeout), for logs. */
const char *jstore_errmsg(const jstore *js);
/* Operations in flight. */
size_t jstore_pending(const jstore *js);

typedef struct jstore_stats {
	uint64_t ops, retries, timeouts, log_conflicts, disconnects, reconnects, wakeups;
} jstore_stats;
void jstore_get_stats(const jstore *js, jstore_stats *out);
/* The server leading a stream (its server_name), for tests and stats;
 * synchronous. which: "LOG", "Q", … or a bucket "KV:acct". */
int jstore_stream_leader(jstore *js, const char *which, char *out, size_t cap);

typedef void (*jstore_done_cb)(void *arg, int rc);

/* ---- accounts (bucket <prefix>_acct) ---- */
typedef void (*jstore_cred_cb)(void *arg, int rc, const uint8_t hash[STORE_HASH_LEN],
                               enum store_role role);
/* CHAT_EEXIST if the device exists (a KV create). */
int jstore_device_add(jstore *js, const char *user, const char *device,
                      const uint8_t hash[STORE_HASH_LEN], jstore_done_cb cb, void *arg);
/* CHAT_ENOTFOUND. */
int jstore_device_get(jstore *js, const char *user, const char *device, jstore_cred_cb cb,
                      void *arg);
/* A plain put; CHAT_ENOTFOUND if there is no device (read first). */
int jstore_device_rehash(jstore *js, const char *user, const char *device,
                         const uint8_t hash[STORE_HASH_LEN], jstore_done_cb cb, void *arg);
/* The KV delete (the commit point) and the push target's. */
int jstore_device_remove(jstore *js, const char *user, const char *device, jstore_done_cb cb,
                         void *arg);
int jstore_service_add(jstore *js, const char *name, const uint8_t hash[STORE_HASH_LEN],
                       enum store_role role, jstore_done_cb cb, void *arg);
int jstore_service_get(jstore *js, const char *name, jstore_cred_cb cb, void *arg);
int jstore_service_rehash(jstore *js, const char *name, const uint8_t hash[STORE_HASH_LEN],
                          jstore_done_cb cb, void *arg);
int jstore_service_remove(jstore *js, const char *name, jstore_done_cb cb, void *arg);
int jstore_admin_get(jstore *js, jstore_cred_cb cb, void *arg);
int jstore_admin_set(jstore *js, const uint8_t hash[STORE_HASH_LEN], jstore_done_cb cb, void *arg);
/* The token-hashing key: created randomly by the first node (KV create);
 * every other node reads the winner's. */
typedef void (*jstore_key_cb)(void *arg, int rc, const uint8_t key[STORE_KEY_LEN]);
int jstore_token_key(jstore *js, jstore_key_cb cb, void *arg);

/* ---- prefs, push targets, contacts ---- */
typedef void (*jstore_prefs_cb)(void *arg, int rc, const store_prefs *p);
int jstore_prefs_get(jstore *js, const char *user, jstore_prefs_cb cb, void *arg);
int jstore_prefs_set(jstore *js, const char *user, const store_prefs *p, jstore_done_cb cb,
                     void *arg);
/* p->token valid during the call; CHAT_ENOTFOUND when none. */
typedef void (*jstore_push_cb)(void *arg, int rc, const store_push *p);
int jstore_push_set(jstore *js, const char *user, const char *device, const store_push *p,
                    jstore_done_cb cb, void *arg);
int jstore_push_get(jstore *js, const char *user, const char *device, jstore_push_cb cb, void *arg);
int jstore_push_clear(jstore *js, const char *user, const char *device, jstore_done_cb cb,
                      void *arg);
/* The 1:1 contacts index, both directions (two puts, with a dm's first message). */
int jstore_contact_add(jstore *js, const char *a, const char *b, jstore_done_cb cb, void *arg);
/* CHAT_OK if b is a's contact, CHAT_ENOTFOUND if not. */
int jstore_contact_get(jstore *js, const char *a, const char *b, jstore_done_cb cb, void *arg);

/* ---- the dedup claim (bucket <prefix>_dedup) ----
 * rc CHAT_OK: this call created the claim (won); CHAT_EEXIST: another send
 * (any node, any time within the TTL) holds it: conv and seq0 are its. */
typedef void (*jstore_claim_cb)(void *arg, int rc, const char *conv, uint64_t seq0);
int jstore_dedup_claim(jstore *js, const char *from, const store_cid *cid, const char *conv,
                       uint64_t seq0, jstore_claim_cb cb, void *arg);
/* CHAT_OK with the claim, or CHAT_ENOTFOUND. */
int jstore_dedup_get(jstore *js, const char *from, const store_cid *cid, jstore_claim_cb cb,
                     void *arg);
/* The sweeper's removal: js_DeleteMsg on the claim's stream seq (never a KV
 * delete: its tombstone would make the next create an update on a
 * revision, which 2.9.10 does not make atomic). CHAT_OK also when gone. */
int jstore_dedup_release(jstore *js, const char *from, const store_cid *cid, jstore_done_cb cb,
                         void *arg);

/* ---- the conversation log: gap-free seqs by create-only entries ----
 * Creates the entry log.<conv>.<n> (create-only) with n the conversation's
 * next seq: the head from this node's cache, else the <prefix>_heads hint
 * and probing forward. A conflict (10071: n is taken) reads log.<conv>.<n>:
 * this (from, cid) there is success, else probing forward from n + 1 to
 * the first free seq. No node pipelines two seqs
 * of one conversation: appends of one conversation wait for each other. */
typedef void (*jstore_seq_cb)(void *arg, int rc, uint64_t seq);
int jstore_log_append(jstore *js, const char *conv, const char *from, const store_cid *cid,
                      uint64_t ts, const uint8_t *body, size_t len, jstore_seq_cb cb, void *arg);
/* One entry: CHAT_ENOTFOUND if seq has none. from and cid are the entry's. */
typedef void (*jstore_entry_cb)(void *arg, int rc, const char *from, const store_cid *cid,
                                const uint8_t *body, size_t len);
int jstore_log_get(jstore *js, const char *conv, uint64_t seq, jstore_entry_cb cb, void *arg);
/* Forgets the cached head of conv (tests: a cold node). */
void jstore_forget_head(jstore *js, const char *conv);

/* ---- watchers and caches (store/js_watch.c, store/js_cache.c) ----
 * docs/CLUSTER.md, "What a node caches and how it learns of changes": one
 * ordered consumer per watched bucket (acct, prefs, push, contacts, groups;
 * sessions are watched with the routing) streams the bucket's last value
 * of every key, then every change, to the owner thread through the
 * completion FIFO (inside jstore_drain). The caches answer from memory. A
 * write of this node is in its cache when its callback runs (the
 * acknowledged revision is applied before the callback): a cache never
 * serves a record older than a change this node acknowledged. Another
 * node's change arrives within the watcher's delay (docs/CLUSTER.md, "What
 * landed": measured p50/p99). */
#define JSTORE_W_ACCT 1u
#define JSTORE_W_PREFS 2u
#define JSTORE_W_PUSH 4u
#define JSTORE_W_CONTACTS 8u
#define JSTORE_W_GROUPS 16u
#define JSTORE_W_ALL 31u
/* Starts the watchers of the buckets in mask (synchronous: the consumers
 * are created in parallel; their initial load continues in jstore_drain).
 * A bucket already watched is left as it is. */
int jstore_watch(jstore *js, unsigned mask, char *errbuf, size_t errlen);
/* True when every bucket of mask is watched and its initial load (the
 * bucket's content when the watcher started) is in the cache. Before
 * that, a cache lookup answers CHAT_EIO. */
bool jstore_watch_ready(const jstore *js, unsigned mask);
/* A change applied to a cache (a watcher's or this node's own write):
 * bucket "acct", "prefs", …, the KV key as stored (ids encoded), removed
 * or not. The plugin kicks a removed device's connections here. */
typedef void (*jstore_change_cb)(void *arg, const char *bucket, const char *key, bool removed);
void jstore_watch_on_change(jstore *js, jstore_change_cb cb, void *arg);
typedef struct jstore_watch_stats {
	uint64_t delivered;   /* messages the watchers delivered */
	uint64_t applied;     /* changes applied to a cache (watchers and own writes) */
	uint64_t ignored;     /* older than the cached revision */
	uint64_t lost;        /* not queued (no memory): that cache may be stale */
	size_t entries;       /* live entries in all caches */
} jstore_watch_stats;
void jstore_watch_get_stats(const jstore *js, jstore_watch_stats *out);

/* Lookups, all from memory: CHAT_OK, CHAT_ENOTFOUND, CHAT_EIO (the bucket's
 * watcher has not loaded it yet: read through with the KV get), CHAT_EINVAL (a malformed id),
 * CHAT_ECORRUPT (the stored value is not a record). */
int jstore_cached_device(const jstore *js, const char *user, const char *device,
                         uint8_t hash[STORE_HASH_LEN]);
int jstore_cached_service(const jstore *js, const char *name, uint8_t hash[STORE_HASH_LEN],
                          enum store_role *role);
int jstore_cached_admin(const jstore *js, uint8_t hash[STORE_HASH_LEN]);
int jstore_cached_prefs(const jstore *js, const char *user, store_prefs *p);
/* p->token points into the cache: valid until the next jstore_drain. */
int jstore_cached_push(const jstore *js, const char *user, const char *device, store_push *p);
/* The walks the plugin's start makes (its tables of devices, services and
 * groups), from the caches, order unspecified; the callback returns
 * CHAT_OK to go on, anything else ends the walk and is returned. A record
 * that does not decode ends it with CHAT_ECORRUPT. CHAT_EIO before the load. */
int jstore_devices_each(const jstore *js, store_device_cb cb, void *arg);
int jstore_services_each(const jstore *js, store_service_cb cb, void *arg);
struct jstore_group;
typedef int (*jstore_group_each_cb)(void *arg, const char *gid, const struct jstore_group *g);
int jstore_groups_each(const jstore *js, jstore_group_each_cb cb, void *arg);
/* b is a's contact (the chat_contacts index). */
int jstore_cached_contact(const jstore *js, const char *a, const char *b);
/* Every contact of user, from the cache (order unspecified); a non-zero
 * return of cb (CHAT_STOP) ends the walk and is returned; CHAT_EIO before
 * the load. */
int jstore_contacts_each(const jstore *js, const char *user,
                         int (*cb)(void *arg, const char *peer), void *arg);

/* The group record (bucket <prefix>_groups, key <gid>): a cache of the
 * conversation log's membership (docs/CLUSTER.md, "Group membership").
 * Stored as: u8 version 1, u64 seq (big-endian), u8 name length + name,
 * u32 member count, per member u8 flags (1: admin) + u8 length + user id,
 * in join order; nothing after. */
typedef struct jstore_group_member {
	char user[CHAT_USER_MAX + 1];
	bool admin;
} jstore_group_member;
typedef struct jstore_group {
	uint64_t seq;            /* the log seq of the membership event it reflects */
	char name[STORE_GROUP_NAME_MAX + 1];
	size_t name_len;         /* bytes; no NUL inside */
	uint32_t n;
	jstore_group_member *members;  /* join order; malloc'd by decode */
} jstore_group;
/* The encoded size, 0 if g is not a valid record (a name too long or with
 * a NUL, a malformed or repeated member, too many members). */
size_t jstore_group_size(const jstore_group *g);
size_t jstore_group_encode(uint8_t *out, size_t cap, const jstore_group *g);
/* CHAT_OK (g->members malloc'd: jstore_group_free), CHAT_ECORRUPT, CHAT_ENOMEM. */
int jstore_group_decode(const uint8_t *v, size_t len, jstore_group *g);
void jstore_group_free(jstore_group *g);
/* A plain put (the log decides; the record reflects it). */
int jstore_group_put(jstore *js, const char *gid, const jstore_group *g, jstore_done_cb cb, void *arg);
/* g valid during the call; CHAT_ENOTFOUND. */
typedef void (*jstore_group_cb)(void *arg, int rc, const jstore_group *g);
int jstore_group_get(jstore *js, const char *gid, jstore_group_cb cb, void *arg);
/* From the cache: of the records seen, the one with the highest seq.
 * CHAT_OK fills *g (jstore_group_free). */
int jstore_cached_group(const jstore *js, const char *gid, jstore_group *g);

/* ---- sessions, nodes, live events (store/js_sess.c) ----
 * docs/CLUSTER.md, "Device→node routing, live events, presence". */
typedef struct jstore_live_dev {
	char addr[CHAT_ADDR_MAX + 1]; /* "U/D" */
	uint64_t qseq;                /* the device's reservation seq (CHAT_Q) of the event */
} jstore_live_dev;

typedef struct jstore_node_cbs {
	/* After a dead node's lease: how long its sessions still count
	 * (the plugin's presence_grace); default 10000. */
	uint32_t grace_ms;
	/* The janitor's job slot (chat_jobs janitor.<slot>); default 10000. */
	uint32_t slot_ms;
	/* The janitor deleted a session of a dead node and the device has no
	 * session left on a live node: it went offline; seen_ms is the dead
	 * node's last heartbeat (unix ms). Reported by the one node that
	 * deleted the session. */
	void (*offline)(void *arg, const char *addr, uint64_t seen_ms, const char *dead_node);
	/* A live event for devices of this node, from from_node, in that
	 * sender's order. */
	void (*live)(void *arg, const char *from_node, const jstore_live_dev *devs, size_t n, const uint8_t *bytes,
	             size_t len);
	/* Numbers first..last from from_node were lost (core NATS is at most
	 * once): the owner falls back to the devices' queues. Reported before
	 * the event that revealed the gap is delivered. */
	void (*gap)(void *arg, const char *from_node, uint64_t first, uint64_t last);
	void *arg;
} jstore_node_cbs;

/* Starts this node's part: the heartbeat in chat_nodes (a put every
 * lease/5, 2 s by default, from jstore_drain: no thread), the reading of
 * every node's heartbeat (every lease/10, at most 1 s), the janitor (when
 * this node holds the slot) and the subscription to <P>.node.<id>.ev.
 * Synchronous (the subscription). Once per handle. */
int jstore_node_start(jstore *js, const jstore_node_cbs *cbs);

/* A device connection on this node: KV create chat_sess <U>.<D>.<node>_<conn>
 * = {node, since} (CHAT_EEXIST if that connection already has one). */
int jstore_session_open(jstore *js, const char *addr, uint64_t conn, jstore_done_cb cb, void *arg);
/* Its removal: a message delete (CHAT_OK also when the janitor took it). */
int jstore_session_close(jstore *js, const char *addr, uint64_t conn, jstore_done_cb cb, void *arg);
/* The nodes holding a device's sessions, each once, nodes this node knows
 * to be dead left out (routing's fallback when the watcher has no copy). */
typedef void (*jstore_nodes_cb)(void *arg, int rc, const char *const *nodes, size_t n);
int jstore_session_nodes(jstore *js, const char *addr, jstore_nodes_cb cb, void *arg);

/* One live event for n devices held by node: a core NATS publish on
 * <P>.node.<node>.ev, numbered per target node (at most once: a lost
 * number is the receiver's gap). Synchronous; CHAT_EIO if not sent. */
int jstore_live_publish(jstore *js, const char *node, const jstore_live_dev *devs, size_t n,
                        const uint8_t *bytes, size_t len);
/* Tests: the next k numbers to node are skipped (as if lost). */
void jstore_live_skip(jstore *js, const char *node, uint64_t k);
/* ---- queues, receipts, events ----
 * (docs/CLUSTER.md, "Queues, sync and receipts"; the record formats of
 * "The layout".) A device's queue is two subjects: its reservations on
 * CHAT_Q q.<addr> (written by the send) and its queued inbox events on
 * CHAT_EV e.<addr>. Positions and acknowledgements use stream seqs. */
typedef struct jstore_qitem {
	enum store_qkind kind;       /* STORE_Q_MSG or STORE_Q_EVENT */
	uint64_t sseq;               /* the stream seq: what jstore_queue_ack
	                              * (messages) or jstore_queue_drop_events
	                              * (events) take */
	uint64_t ts;                 /* Chat-Ts, ms */
	/* STORE_Q_MSG: the committed message */
	const char *conv;            /* "dm:A:B", "g:G" */
	uint64_t seq;
	const char *from;            /* "U/D" */
	store_cid cid;
	uint64_t expires;            /* unix ms; 0: the streams' max_age */
	char mkind;                  /* 'm' a message, 'g' a group event */
	const char *type;            /* Chat-Type, "" when none */
	/* the message's body (the reservation's own for a `bodies` send, else
	 * the log entry's), or the event's bytes */
	const uint8_t *body;
	size_t len;
} jstore_qitem;
/* A page: items[0..n) in the order to deliver (a conversation's seqs
 * ascending; events merged by Chat-Ts), valid during the call; *next is
 * where the next page starts; held counts the reservations held back
 * (pending, or behind a pending one of their conversation: read again
 * first by the next page). */
typedef void (*jstore_qpage_cb)(void *arg, int rc, const jstore_qitem *items, size_t n,
                                const jstore_qpos *next, size_t held);
/* A page of at most max (1..256) items of addr's queue after pos (zeroed:
 * from the start). Each reservation is resolved by one read of
 * log.<conv>.<n>: committed (the entry has its Chat-From and Chat-Cid and,
 * when it has Chat-Rcpts, lists its stream seq) → delivered; aborted
 * (another's entry, or this message's not listing it) → deleted,
 * asynchronously; pending
 * (no entry) → held back with every later reservation of its
 * conversation. Reads are direct gets (any replica; at the leaders with
 * leader_reads), pipelined: a stale read can only hold an entry back for
 * one more page or show an entry acknowledged a moment ago (a duplicate
 * delivery). Aborted reservations are deleted whether or not the page
 * reached them. */
int jstore_queue_read(jstore *js, const char *addr, const jstore_qpos *pos, size_t max,
                      jstore_qpage_cb cb, void *arg);
/* existed[i]: sseqs[i]'s entry was there and this call deleted it
 * (false: already gone, 10057/10043; still CHAT_OK). Valid during the call. */
typedef void (*jstore_ack_cb)(void *arg, int rc, const bool *existed, size_t n);
/* The delivered receipt's deletes on CHAT_Q, all in flight at once. The
 * stream seqs must come from addr's own page or live event. */
int jstore_queue_ack(jstore *js, const char *addr, const uint64_t *sseqs, size_t n, jstore_ack_cb cb,
                     void *arg);
/* The same on CHAT_EV: events once sent. n >= 1 (CHAT_EINVAL otherwise). */
int jstore_queue_drop_events(jstore *js, const char *addr, const uint64_t *sseqs, size_t n,
                             jstore_ack_cb cb, void *arg);
/* Queued inbox events: one publish on e.<to[i]> each (never refused: no
 * limit on CHAT_EV), Chat-Ts now; CHAT_OK once every one is stored. */
int jstore_queue_event(jstore *js, const char *const *to, size_t n, const uint8_t *event, size_t len,
                       jstore_done_cb cb, void *arg);
/* What a receipt append changed: the seqs of ranges this append moved to
 * its state (the first append, in stream order, covering a seq with that
 * state or a higher one changed it), and the state before it (every
 * earlier append's union: seqs read, seqs delivered or read). */
typedef struct jstore_rcpt_result {
	const jstore_range *changed;
	size_t nchanged;
	const jstore_range *before_read, *before_delivered;
	size_t nbefore_read, nbefore_delivered;
	uint64_t sseq;               /* this append's stream seq */
	uint32_t appends_read;       /* earlier appends this call read: those
	                              * after the node's cached position */
} jstore_rcpt_result;
typedef void (*jstore_rcpt_cb)(void *arg, int rc, const jstore_rcpt_result *r);
/* Appends {state, ranges} (state STORE_R_DELIVERED or STORE_R_READ; at
 * most JS_RCPT_RANGES_MAX ranges, any order) on rc.<conv>.<user>, then
 * reads, at the stream's leader, the appends before its own from the
 * position this node has cached for the subject (its start on a miss;
 * the cache holds up to 4,096 subjects): two nodes appending the same seqs
 * at once get one change between them. */
int jstore_receipt_append(jstore *js, const char *conv, const char *user, enum store_rstate state,
                          const jstore_range *ranges, size_t n, jstore_rcpt_cb cb, void *arg);

/* ---- the send (js_send.c) ----
 * store_send on JetStream (docs/CLUSTER.md, "A send"): one send per
 * conversation at a time on a node (behind its appends and sends); round 1
 * all at once — the dedup claim (messages only), one reservation per
 * distinct device of to[] on CHAT_Q (q.<addr>), the expiry index entry
 * x.<minute> when msg->expires - msg->ts is below offline_ttl (max_age_s
 * less a day); round 2 the create-only log entry listing each reservation's
 * stream seq (Chat-Rcpts): the commit. A conflict reserves again for the
 * next free seq (stale reservations deleted); refused (CHAT_EIO) after
 * JS_CONFLICTS_MAX in a row. rc:
 *   CHAT_OK      stored at seq; retry: answered from an earlier send of this
 *                (from, cid), found in the log — this call committed nothing
 *                (false when it wrote the entry, also when it finished an
 *                earlier send whose node went quiet);
 *   CHAT_EQUOTA  a recipient's queue holds max_queue: nothing written (the
 *                reservations made and the claim deleted);
 *   CHAT_EEXIST  the cid was sent in another conversation (seq: its first);
 *   CHAT_EIO     timeout or JetStream error (jstore_errmsg).
 * A group event (STORE_KIND_GROUP) gets Chat-Kind g and no claim, but its
 * entry's Nats-Msg-Id is still m.<from>.<cid>: the caller gives each event a
 * cid of its own, or a second event within 2 minutes reads as a Duplicate. */
typedef void (*jstore_send_cb)(void *arg, int rc, uint64_t seq, bool retry);
int jstore_send(jstore *js, const store_msg *msg, const char *const *to, size_t n, jstore_send_cb cb,
                void *arg);

#endif
