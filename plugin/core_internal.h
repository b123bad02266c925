// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* core_internal.h — what the core's files share; not seen by the glue. */
#ifndef CHAT_CORE_INTERNAL_H
#define CHAT_CORE_INTERNAL_H

#include "cbor_io.h"
#include "core.h"
#include "grow.h"
#include "hmap.h"
#include "ids.h"
#include "store.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>

#define CORE_MAX_DEVICES 64         /* per user */
#define CORE_PREFIX_MAX 128         /* plugin_opt_topic_prefix */
#define CORE_ADMIN_USERNAME "$admin"
#define CORE_CONTROL_TOPIC "$CONTROL/chat/v1"
#define CORE_CONTROL_RESPONSE "$CONTROL/chat/v1/response"
#define CORE_TOKEN_BYTES 32
#define CORE_TOKEN_LEN 43           /* base64url, no padding */

/* Sections below name the file that defines what they declare, in the
 * order a message meets them; each feature's private state is a struct in
 * its section, embedded in struct core (at the end) under its owner's
 * name. Leaves that any file may call: log.c, tokens.c, kick.c, fanout.c,
 * refusal.c, admin_reply.c. */

/* ---- refusals (refusal.c) ---- */

/* The codes a refusal carries on the wire (docs/PROTOCOL.md: error events,
 * ctl and admin replies), with their wire names: the one list of them.
 * Error events are counted by code (stats.c): each code up to `op` has its
 * own refused_<code> counter, in this order, and any later one counts as
 * refused_other. No refusal says `type` or `ttl` (a bad type or ttl is a
 * `field`): they keep their counters, at 0, under the names operators
 * know. */
#define REFUSAL_CODES(X) \
	X(CBOR, "cbor") X(FIELD, "field") X(TOPIC, "topic") X(CONV, "conv") X(QOS, "qos") \
	X(SIZE, "size") X(QUOTA, "quota") X(RATE, "rate") X(STORE, "store") X(PEER, "peer") \
	X(MEMBER, "member") X(DEVICES, "devices") X(TYPE, "type") X(TTL, "ttl") X(OP, "op") \
	X(EXISTS, "exists") X(NOTFOUND, "notfound") X(LIMIT, "limit") X(USER, "user") \
	X(ADMIN, "admin") X(UNKNOWN, "unknown") X(BACKUP, "backup") X(DENIED, "denied")

#define REFUSAL_ENUM(e, name) REFUSE_##e,
enum refusal_code { REFUSAL_CODES(REFUSAL_ENUM) REFUSAL_NCODES };
#undef REFUSAL_ENUM
/* The codes with a counter of their own: REFUSE_CBOR .. REFUSE_OP. */
#define REFUSAL_NCOUNTED (REFUSE_OP + 1)

/* The longest reason: a failed backup names two paths and RocksDB's words. */
#define REFUSAL_MSG_MAX (2 * PATH_MAX + 256)

/* Why a request was refused: what an error event, a ctl reply or an admin
 * reply tells. A function that can refuse returns false and fills one. */
typedef struct refusal {
	enum refusal_code code;
	char msg[REFUSAL_MSG_MAX];
} refusal;

/* Fills r (msg printf-style, truncated to fit); returns false, so that a
 * refusing check can end with `return refusal_set(…)`. */
bool refusal_set(refusal *r, enum refusal_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool refusal_vset(refusal *r, enum refusal_code code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* The code's wire name ("field"). */
const char *refusal_code_name(enum refusal_code code);


/* ---- logging (log.c) ---- */
void core_log(core *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- credentials (tokens.c) ---- */
void token_hash(const core *c, const char *token, size_t len, uint8_t out[STORE_HASH_LEN]);
bool token_matches(const core *c, const char *token, size_t len, const uint8_t hash[STORE_HASH_LEN]);
/* A fresh random token (CORE_TOKEN_LEN chars + NUL) and its hash. */
void token_new(const core *c, char out[CORE_TOKEN_LEN + 1], uint8_t hash[STORE_HASH_LEN]);

/* ---- deferred disconnects (kick.c) ---- */
typedef struct kick_entry {
	char *name;     /* a client id, or with username a username */
	bool username;  /* every connection of a service account */
} kick_entry;
typedef struct kicklist {
	kick_entry *e; /* to disconnect at the next tick */
	size_t n, cap;
} kicklist;
void kick_schedule(core *c, const char *clientid);
/* Every connection that logged in as username (a removed or rotated
 * service account: its client ids are its own). Never cancelled: one made
 * with the new token before the tick is closed too, and reconnects. */
void kick_schedule_user(core *c, const char *username);
/* clientid connected again (a device with its rotated token): mosquitto's
 * session takeover ends the old connection, and a kick still scheduled
 * would end the new one. */
void kick_cancel(core *c, const char *clientid);
/* Disconnects everything scheduled (core_tick, first). */
void kick_tick(core *c);
void kick_free(core *c);

/* ---- device capabilities (caps.c) ---- */

/* The capabilities a device may declare (docs/PROTOCOL.md, "Capabilities"):
 * X(NAME, "wire name"). A new one is one line, added at the end: its place
 * is its bit, which the store keeps (store_caps_set). */
#define DEVICE_CAPS(X) \
	X(SENTS, "sents") /* gathered confirmations (gather.c) */ \
	X(BATCH, "batch") /* batched replay */ \
	X(RCPTS, "rcpts") /* coalesced receipts (gather.c) */

#define CAP_BIT_ENUM(e, name) CAP_BIT_##e,
enum cap_bit { DEVICE_CAPS(CAP_BIT_ENUM) CAP_NBITS };
#undef CAP_BIT_ENUM
#define CAP_MASK_ENUM(e, name) CAP_##e = 1u << CAP_BIT_##e,
enum { DEVICE_CAPS(CAP_MASK_ENUM) };
#undef CAP_MASK_ENUM
#define CAP_ALL ((uint32_t)((1u << CAP_NBITS) - 1u))
_Static_assert(CAP_NBITS <= 32, "capabilities fit in struct device's uint32_t");

/* The most names one declaration lists (unknown ones included). */
#define CAPS_MAX_NAMES 64

/* ---- directory: users, their devices, who is online (directory.c) ---- */

/* A device's flow window and backlog (flow.c, sync.c). Everything QoS 1
 * the plugin publishes to a device is counted against one window, so that
 * mosquitto's small per-client queue never overflows; beyond it, events
 * wait in the device's store queue (its backlog), which the pump drains in
 * order. While a backlog exists, new events for the device go through the
 * queue behind it, never live. Reset with every new connection. */
typedef struct flow {
	uint32_t msgs;      /* message entries published on this connection, still queued */
	uint32_t evs;       /* other events published, not yet acknowledged or estimated drained */
	uint64_t drain_ms;  /* when evs were last drained by the estimate */
	uint64_t epoch;     /* the expiry sweeps msgs is fitted to (c->expiry.epoch) */
	uint64_t lo;        /* entries after lo were published live or drained ... */
	uint64_t hi;        /* ... up to hi, while a backlog exists (else: all of them) */
	uint64_t r;         /* entries up to r were published by a chat/sync replay */
	uint64_t cursor;    /* the pump's position in the queue */
	uint64_t more;      /* 1 + the expiry sweep count when the pump saw an entry after cursor; 0: not seen */
	bool backlog;       /* the pump is draining the queue from cursor */
	bool sync;          /* a chat/sync replay: ends with {"k":"sync","done":true} */
	bool automatic;     /* that replay was started by the broker's events (broker_events.c) */
	bool auto_done;     /* this connection has had its automatic replay */
	struct device *prev, *next; /* the core's list of devices with a backlog */
} flow;

/* A device's push target and its wake-up state (push.c). */
typedef struct push_state {
	uint8_t platform;               /* enum store_push_platform; 0: no target */
	bool alert;                     /* apns: wake with a visible notification */
	char *token;                    /* NUL-terminated copy of the stored token */
	uint64_t pending;               /* items queued since it was last connected */
	uint64_t last_emit;             /* ms: the last wake-up */
	uint64_t wake_id;               /* the last wake-up's id; 0: none yet */
	uint64_t due;                   /* ms: when its timer fires */
	size_t slot;                    /* 1 + its index in the timer heap; 0: none */
	bool dirty;                     /* something was queued since the last wake-up */
	bool unacked;                   /* no gateway has acknowledged the last one */
} push_state;

typedef struct device {
	char addr[CHAT_ADDR_MAX + 1];   /* "U/D": the client id and username */
	const char *id;                 /* points into addr, after the '/' */
	struct user *user;
	uint8_t hash[STORE_HASH_LEN];
	void *conn;                     /* the live connection, or NULL */
	flow fc;
	push_state push;
	uint64_t send_tat;              /* send rate limit (send.c): its bucket, in µs */
	uint8_t ackrun;                 /* its gathered PUBACKs: c->acks.run[ackrun - 1]; 0: none */
	uint32_t caps;                  /* what it declared it understands: CAP_* bits (caps.c) */
	uint32_t gslot;                 /* its gathered events: c->gath.slot[gslot - 1]; 0: none */
} device;

/* Whether the device declared capability cap (CAP_SENTS, ...). */
static inline bool device_has_cap(const device *d, uint32_t cap) { return (d->caps & cap) != 0; }

/* What chat/presence/U retains, as far as this server published it. */
enum pres_state { PRES_NONE = 0, PRES_ONLINE, PRES_OFFLINE };

typedef struct user {
	char name[CHAT_USER_MAX + 1];
	size_t ndev;
	device *dev[CORE_MAX_DEVICES];  /* in device-id order */
	size_t nonline;                 /* devices with a recorded connection */
	/* presence (presence.c) */
	enum pres_state pres;
	bool pref_read;                 /* pref holds its store_presence setting */
	enum store_presence pref;
	uint64_t seen;                  /* ms: when the last device left */
	uint64_t grace_until;           /* ms; 0: no grace timer running */
	struct user *gprev, *gnext;     /* the core's grace timers, by expiry */
} user;

typedef struct service {
	char name[CHAT_USER_MAX + 1];
	uint8_t hash[STORE_HASH_LEN];
	enum store_role role;
} service;

typedef struct directory {
	hmap users;    /* name -> user */
	hmap devices;  /* "U/D" -> device */
	hmap services; /* name -> service */
	uint64_t online;
} directory;

int dir_init(directory *d);
void dir_free(directory *d);
user *dir_user(directory *d, const char *name, size_t len);
device *dir_device(directory *d, const char *addr, size_t len);
service *dir_service(directory *d, const char *name, size_t len);
int dir_add_device(directory *d, const char *user, const char *dev, const uint8_t hash[STORE_HASH_LEN],
                   device **out);
void dir_remove_device(directory *d, device *dev);
int dir_add_service(directory *d, const char *name, const uint8_t hash[STORE_HASH_LEN],
                    enum store_role role);
void dir_remove_service(directory *d, service *s);
void dir_set_online(directory *d, device *dev, void *conn);
void dir_set_offline(directory *d, device *dev);

/* ---- topics (topics.c) ---- */

enum topic_kind {
	T_OUTSIDE = 0,   /* not under the chat prefix nor $CONTROL/chat */
	T_CHAT_OTHER,    /* under the prefix, but nothing of the contract */
	T_DM,            /* P/dm/{peer}: a = peer */
	T_GROUP,         /* P/group/{G}: a = G */
	T_RECEIPT, T_SYNC, T_CTL,
	T_TYPING,        /* P/typing/{conv}: a = conv */
	T_INBOX,         /* P/inbox/U/D: a = U, b = D */
	T_PRESENCE_USER, /* P/presence/U: a = U */
	T_PRESENCE_DEV,  /* P/presence/U/D */
	T_KEYS_REQ, T_KEYS_RESP, T_KEYS_STATUS, T_KEYS_REMOVED, /* P/keys/x/U/D */
	T_KEYS_STATS,    /* P/keys/stats: the key server's counters */
	T_MEDIA_REQ, T_MEDIA_RESP, /* P/media/req/U/D, P/media/resp/U/D (chat-media) */
	T_PUSH_WAKE, T_PUSH_ACK, /* P/push/wake, P/push/ack */
	T_PUSH_STATS,    /* P/push/stats: a push gateway's counters */
	T_CONTROL,       /* $CONTROL/chat/v1 */
	T_CONTROL_RESP,  /* $CONTROL/chat/v1/response */
	T_CONTROL_OTHER, /* anything else under $CONTROL/chat */
	T_FILTER,        /* (ACL only) a wildcard filter that reaches the above */
};

typedef struct topic {
	enum topic_kind kind;
	const char *a, *b; /* slices into the topic (not NUL-terminated) */
	size_t alen, blen;
} topic;

/* Classifies a concrete topic name. Ids are validated: a malformed id makes
 * the topic T_CHAT_OTHER (except T_DM, whose peer is checked by the send so
 * the sender gets a precise error). */
void topic_parse(const core *c, const char *t, topic *out);

/* Whether a topic name, or a filter read as a name, is the chat prefix or
 * $CONTROL/chat or lies under one of them: two prefix compares. */
bool topic_in_chat(const core *c, const char *t);

/* Whether a subscription filter could match any topic under the chat
 * prefix or $CONTROL/chat. */
bool filter_reaches_chat(const core *c, const char *filter);

/* ---- the group table (group_table.c) ---- */

typedef struct gmember {
	char user[CHAT_USER_MAX + 1];
	bool admin;
} gmember;

typedef struct group {
	char id[CHAT_GROUP_MAX + 1];
	char conv[CHAT_CONV_MAX + 1];   /* "g:G" */
	char name[STORE_GROUP_NAME_MAX + 1];
	gmember **m;                    /* in the order they joined */
	size_t n, cap;
	hmap idx;                       /* user -> gmember */
} group;

/* The groups one user belongs to. */
typedef struct ugroups {
	char user[CHAT_USER_MAX + 1];
	group **g;
	size_t n, cap;
} ugroups;

/* group_table.c's state. core.c and stats.c read by_id.live (a count). */
typedef struct group_table {
	hmap by_id;                     /* gid -> group */
	hmap by_user;                   /* user -> ugroups */
} group_table;

int group_table_load(core *c);
void group_table_free(core *c);
group *group_find(core *c, const char *gid, size_t len);
bool group_has(const group *g, const char *user, size_t len);
/* Whether two users are members of one group. */
bool groups_shared(core *c, const char *a, size_t al, const char *b, size_t bl);
/* Calls fn for every member of every group `user` is in (user included;
 * a user in two groups with the same member: that member twice) until fn
 * returns non-zero, which it returns. */
int groups_each_comember(core *c, const char *user, int (*fn)(void *arg, const char *member),
                         void *arg);
/* Changes, made by groups.c once the record is stored. group_new: an empty
 * group in the table (NULL: out of memory); group_set_members: g's members
 * become the record's m[0 .. n); group_delete: g leaves the table, freed. */
group *group_new(core *c, const char *gid, const char *name);
int group_set_members(core *c, group *g, const store_group_member *m, size_t n);
void group_delete(core *c, group *g);

/* ---- group requests (groups.c) ---- */

/* A group request's arguments, slices into the request payload. */
typedef struct group_req {
	const char *gid, *name, *user;
	size_t gidlen, namelen, userlen;
	bool has_gid, has_name, has_user;
	const uint8_t *members;         /* the raw CBOR array, or NULL */
	size_t members_len;
} group_req;

/* Its outcome: result pairs (gid, seq, …) encoded into out and counted
 * in npairs, or why it was refused (into *why). */
typedef struct group_res {
	cbw *out;
	size_t npairs;
	refusal *why;
} group_res;

/* Runs a group request by user `by` (an existing user), sent from the
 * device address `from` ("$admin" for chatctl); false: refused (*res->why).
 * by NULL: an operator's request through $CONTROL (group.add, .remove,
 * .admin, .info, .delete on any group; events say "by": "$admin"). */
bool group_request(core *c, const char *op, size_t oplen, const char *by, const char *from,
                   const group_req *q, group_res *res);

/* An id inside a payload (not NUL-terminated). */
typedef struct idslice {
	const char *p;
	size_t n;
} idslice;

/* groups.c's state: scratch of the request in progress. */
typedef struct groups_state {
	store_group_member *gm;         /* the group record being built */
	size_t gmcap;
	idslice *ids;                   /* a request's members */
	size_t idcap;
} groups_state;

void groups_free(core *c);

/* ---- presence (presence.c) ---- */

/* presence.c's state: the grace timers, oldest first (linked through
 * user.gprev/gnext). */
typedef struct presence_state {
	user *grace_head, *grace_tail;
} presence_state;


/* A device of u got a connection (after dir_set_online). */
void presence_up(core *c, user *u);
/* A device of u lost its connection (after dir_set_offline). */
void presence_down(core *c, user *u);
/* u is about to be freed (its last device removed): retire its presence. */
void presence_forget(core *c, user *u);
/* A WRITE check on P/presence/U/D by its own device: its Last Will when
 * the connection is no longer the recorded one. */
void presence_will(core *c, const char *username);
/* May the device `username` read chat/presence/{t->a}? */
bool presence_may_read(core *c, const char *username, const topic *t);
/* dev was granted a subscription to exactly *t: unless the documents are
 * retained, publish U's current one to it (if it has one). */
void presence_subscribed(core *c, device *dev, const topic *t);
/* U's presence setting changed. */
void presence_pref_set(core *c, const char *user, enum store_presence p);
void presence_tick(core *c);


/* ---- typing (typing.c) ---- */
enum core_verdict typing_handle(core *c, device *from, const topic *t, const uint8_t *payload,
                                size_t len);


/* ---- the recipient list (fanout.c) ---- */

/* The recipients of the send or group change in progress, grown to the
 * largest fan-out seen. Filled from zero by send.c or groups.c and done
 * with before they return. */
typedef struct fanout {
	device **to;
	const char **addrs;             /* to[i]->addr, for the store */
	const uint8_t **bodies;         /* send.c: to[i]'s body, from `bodies` */
	size_t *blens;
	size_t cap;
} fanout;

/* Room for n recipients in c->fan. */
int fanout_reserve(core *c, size_t n);
/* Appends u's devices but `except` (may be NULL) at c->fan.to[*n]; false:
 * out of memory. */
bool fanout_add_user(core *c, const user *u, const device *except, size_t *n);
/* c->fan.addrs[0 .. n) from c->fan.to. */
void fanout_addrs(core *c, size_t n);
void fanout_free(core *c);

/* ---- the send path (send.c) ---- */

/* A send's body for one device, as named in its `bodies` map. */
typedef struct body_entry {
	const char *addr;
	size_t alen;
	const uint8_t *body;
	size_t blen;
	bool matched;
} body_entry;


/* How the send path reaches the store: store_send_begin, unless a unit
 * test puts a backend that answers later in its place (begin records, poll
 * — called from core_tick — completes). */
typedef struct send_backend {
	void (*begin)(void *ctx, store *st, const store_msg *msg, const char *const *to, size_t n,
	              uint64_t max_queue, store_send_done done, void *arg);
	void (*poll)(void *ctx);
	void *ctx;
} send_backend;

/* One send whose store answer has not been acted on yet (send.c). */
typedef struct send_op send_op;

/* send.c's state: `bodies` entries of the send in progress (scratch), and
 * the sends in flight. A send whose store answer comes later waits in
 * head..tail, oldest first, in a send_op from the free list; while any
 * does, a new send waits behind it (copied), so sends complete — PUBACK,
 * `sent`, `msg` — in the order they arrived. */
typedef struct send_state {
	body_entry *ent;
	size_t entcap;
	send_backend be;
	send_op *head, *tail;   /* in flight, oldest first */
	send_op *free;          /* the pool */
	send_op *begun;         /* the op the current publish left in flight (core_ack_later) */
	send_op *running;       /* the waiting send being run now (its ack goes first) */
	uint64_t next_id;       /* operation ids */
	bool draining;          /* send_drain runs */
} send_state;

enum core_verdict send_dm(core *c, device *from, const topic *t, const uint8_t *payload, size_t len,
                          int qos, bool retain);
enum core_verdict send_group(core *c, device *from, const topic *t, const uint8_t *payload,
                             size_t len, int qos);

void send_free(core *c);
/* Called by core_tick: lets a backend that answers later complete. */
void send_poll(core *c);
/* core_ack_later for a send left in flight by the current publish: its
 * acknowledgement waits for the op's completion. */
bool send_ack_later(core *c, uint64_t conn_id, uint16_t mid);
/* Forgets which op the previous publish left in flight (core_message). */
void send_publish_start(core *c);

/* ---- acknowledgements (commit.c) ---- */

/* Sends an acknowledgement held by the core (a send that completed later)
 * with its MQTT reason code: at once, or behind the fsync of what was
 * written so far when group commit runs. */
void commit_ack(core *c, uint64_t conn_id, uint16_t mid, uint8_t reason);

/* ---- the delivery machine: events.c, flow.c, sync.c (and receipts.c's
 * acknowledgements) ----
 *
 * One unit, split in files by job but not separable: every QoS 1 event
 * the plugin publishes goes through events.c, which asks flow.c for room
 * in the device's window; without room (or behind a backlog) the event
 * waits in the store queue and sync.c's pump publishes it later, in
 * order, counting against the same window; a receipt or a reported
 * PUBACK (receipts.c) frees room, and flow.c calls the pump to refill it.
 * So live delivery, spill drains and chat/sync replays share one window
 * and one ordering rule, and the calls go round: events -> flow -> sync
 * -> events, and receipts -> flow -> sync -> receipts (a replay first
 * applies the device's gathered PUBACKs). gather.c (protocol v2) holds a
 * device's confirmations and receipts for a moment and publishes them
 * through events.c, which flushes them before any other event to that
 * device (events -> gather -> events). A change to one of them is a
 * change to the unit: read the top comments of all five.
 *
 * Its state: device.fc (struct flow, in the directory section) and
 * struct delivery below. The scratch encoders c->w and c->w2 belong to
 * it as well (see struct core). */

/* flow.c's and sync.c's state. stats.c reads backlogs (counts). */
typedef struct delivery {
	device *backlogs; /* sync.c: devices whose backlog the pump drains (linked through fc) */
	bool acks_exact;  /* flow.c: the broker reports PUBACKs: no estimates */
	cbw batch;        /* sync.c: the replay batch being built (reused, never shrinks) */
} delivery;

/* ---- events (events.c): everything the server publishes to a device ---- */

/* The device's inbox topic, P/inbox/U/D. */
#define CORE_INBOX_MAX (CORE_PREFIX_MAX + sizeof("/inbox/") + CHAT_ADDR_MAX)
void ev_inbox_topic(const core *c, const device *to, char out[CORE_INBOX_MAX]);
/* A QoS 1 event (not a queued message) for a connected device, e.g. the
 * reply to its request: published now if its window has room and it has
 * no backlog, else queued behind its backlog. Nothing for a device that
 * is offline. */
void ev_publish(core *c, device *to, const cbw *w);
/* {k:"error", code, msg, ?cid}: cid_raw is the cid's CBOR encoding or NULL. */
void ev_error(core *c, device *to, const refusal *why, const uint8_t *cid_raw, size_t cid_len);
void ev_cid(cbw *w, const store_cid *cid);
/* A refused request from a device: counted, and told to it as an `error`
 * event (MQTT 3.1.1 cannot see a refusal otherwise). Returns CORE_DENY. */
enum core_verdict ev_refuse(core *c, device *to, enum refusal_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void ev_sent(cbw *w, const store_cid *cid, const char *conv, uint64_t seq, uint64_t ts);
/* {k:"msg", …}: with_cid on copies to the sender's own devices. */
void ev_msg(cbw *w, const store_msg *m, uint64_t seq, const uint8_t *body, size_t blen,
            bool with_cid);
/* The same, appended to w (an element of a batch, sync.c). */
void ev_msg_put(cbw *w, const store_msg *m, uint64_t seq, const uint8_t *body, size_t blen,
                bool with_cid);
/* This device's body of a stored message (its entry of `bodies`, or `body`). */
bool ev_body_for(const store_msg *m, const char *addr, const uint8_t **body, size_t *blen);

/* Sends an event to each device of a user: now to those online with room
 * in their window and no backlog, through the store queue (behind what
 * they have not received yet) to the others. */
void ev_deliver_user(core *c, const user *u, const cbw *w);
/* The same for n devices (of one user or not). */
void ev_deliver_devs(core *c, device *const *to, size_t n, const cbw *w);
/* The same at QoS 0 (typing): best effort, outside the window. */
void ev_publish_qos0(core *c, const device *to, const cbw *w);
/* A message or group event to a recipient device, already in its queue
 * (store_send): published now if the device is live with room; else the
 * device's backlog takes it, in order. */
void ev_publish_entry(core *c, device *to, const cbw *w);
/* Publishes to a device's inbox at QoS 1, whatever its window (the pump,
 * which counts for itself). */
void ev_publish_raw(core *c, const device *to, const uint8_t *ev, size_t len);
/* {k:"group", gid, op, by, members, conv, seq, ts, ?name} from a stored
 * group event. */
void ev_group(cbw *w, const store_msg *m, uint64_t seq);
/* The same, appended to w; false (nothing appended): a malformed record. */
bool ev_group_put(cbw *w, const store_msg *m, uint64_t seq);
/* Whether a device takes live events now (it may still lack room). */
static inline bool dev_live(const device *d) { return d->conn && !d->fc.backlog; }


/* ---- flow window (flow.c) ---- */
/* Whether the device's window has room for one more event (applies the
 * drain estimate and refits after an expiry sweep first). */
bool flow_room(core *c, device *dev);
/* Counts a publish: an event, or a message entry at qseq (q 0: published
 * live, the newest entry). */
void flow_count_event(core *c, device *dev);
void flow_count_entry(core *c, device *dev, uint64_t qseq);
/* Whether the entry at qseq was published (and counted) on this connection. */
bool flow_counted(const device *dev, uint64_t qseq);
/* The device acknowledged (receipt) n counted entries: refill, drain. */
void flow_acked(core *c, device *dev, uint64_t n);
/* A new connection: an empty window, nothing published yet. */
void flow_connect(core *c, device *dev);


/* ---- the backlog pump and chat/sync replay (sync.c) ---- */
/* Starts a backlog for a live device: everything queued after `after`
 * (already published up to there) is drained by the pump, in order. */
void backlog_start(core *c, device *dev, uint64_t after);
void sync_start(core *c, device *dev);
/* Starts a replay by itself (the device subscribed to its inbox, or resumed
 * a session that has that subscription), once per connection. A chat/sync
 * during such a replay joins it instead of starting over. */
void sync_auto(core *c, device *dev);
void sync_stop(core *c, device *dev);
/* Drains up to one slice of the device's backlog, as its window allows. */
void sync_pump(core *c, device *dev);
/* The same for about n entries (a batch device: whole batches). */
void sync_pump_n(core *c, device *dev, size_t n);
void sync_tick(core *c);


/* ---- receipts (receipts.c) ---- */

/* The most seqs one receipt applies (an app's receipt, a run of PUBACKs). */
#define RECEIPT_MAX_SEQS 1000

/* Delivered-on-PUBACK receipts not applied yet (receipts.c): per device,
 * a run of its PUBACKs of one conversation, applied as one receipt. */
#define ACK_RUNS 64      /* devices with a run at once */
#define ACK_RUN_SEQS 128 /* seqs per run */
typedef struct ack_run {
	device *dev;
	size_t convlen, n;
	char conv[CHAT_CONV_MAX + 1];
	uint64_t seqs[ACK_RUN_SEQS];
} ack_run;

typedef struct ack_runs {
	ack_run run[ACK_RUNS]; /* run[0 .. used): a device's is run[dev->ackrun - 1] */
	uint32_t used;
	uint64_t since_ms;     /* when the first began since none was left: no run waits
	                        * longer than gather_ms past it (one alone may wait less) */
} ack_runs;

enum core_verdict receipts_handle(core *c, device *from, const uint8_t *payload, size_t len);
/* from acknowledged (PUBACK) its inbox event for seq of conv: a delivered
 * receipt for it, of which nobody is told if it is refused. */
void receipts_acked(core *c, device *from, const char *conv, size_t convlen, uint64_t seq);
/* Applies what receipts_acked gathered: one device's run, before anything
 * that could see its queue entries (a replay, the device's own receipts)
 * or free the device; all of them (the tick, once the oldest is
 * plugin_opt_delivered_gather_ms old; the close). */
void receipts_flush_dev_run(core *c, device *dev);
static inline void receipts_flush_dev(core *c, device *dev)
{
	if (dev->ackrun)
		receipts_flush_dev_run(c, dev);
}
void receipts_flush_all(core *c);
void receipts_tick(core *c, uint64_t now_ms);

/* ---- gathered events to v2 devices (gather.c) ---- */

/* What a device with `sents` or `rcpts` has not been told yet: its
 * confirmations (each with the users whose delivery merged into it) and
 * the receipts for it, held until the gather window ends or another event
 * goes to it (gather.c's top comment). A device has something gathered
 * only while it is live (dev_live). */
#define GATHER_SENTS_MAX 64     /* confirmations in one sents event */
#define GATHER_RCPTS_MAX 1024   /* receipt seqs a device gathers before they go out */

typedef struct gsent {
	store_cid cid;
	uint64_t seq, ts;
	char conv[CHAT_CONV_MAX + 1];
} gsent;

typedef struct gdl {            /* a user whose delivery merged into confirmation `item` */
	uint32_t item;
	char user[CHAT_USER_MAX + 1];
} gdl;

typedef struct gkey {           /* a conversation and state the receipts are for */
	char conv[CHAT_CONV_MAX + 1];
	const char *state;          /* "delivered", "read", "expired" (static strings) */
	uint64_t ts;                /* the latest receipt's */
} gkey;

typedef struct grcpt {          /* one seq of one user's receipt */
	uint32_t key;               /* in the slot's k */
	uint64_t seq;
	char by[CHAT_USER_MAX + 1];
} grcpt;

typedef struct gslot {
	device *dev;
	uint64_t since_ms;          /* when its first event was gathered */
	gsent *s;
	size_t ns, caps_;
	gdl *dl;
	size_t ndl, capdl;
	gkey *k;
	size_t nk, capk;
	grcpt *r;
	size_t nr, capr;
} gslot;

/* One user's seqs of one key: a slot's r[at .. at + n), sorted (gather.c). */
typedef struct urun {
	uint32_t key;
	size_t at, n;
} urun;

/* gather.c's state: slot[0 .. used) hold the devices with something
 * gathered (the slots past used keep their buffers for reuse). */
typedef struct gather_state {
	gslot *slot;
	size_t used, cap;
	urun *runs;                 /* a flush's scratch */
	size_t runcap;
	cbw w;                      /* the event being flushed: callers may hold c->w, c->w2 */
} gather_state;

/* The sending device's `sent`: gathered for a live device with `sents`,
 * else published at once (v1). */
void gather_sent(core *c, device *to, const store_cid *cid, const char *conv, uint64_t seq,
                 uint64_t ts);
/* A receipt event {k:"receipt", conv, seqs, s: state, by, ts} for every
 * device of user `to` (the messages' sender): for a live `sents` device a
 * delivery of a seq it has not been told of yet merges into that
 * confirmation's dl; a live `rcpts` device gathers the rest; the others
 * get the v1 event (live or queued), built in c->w2. state: a static
 * string. */
void gather_receipt(core *c, const user *to, const char *conv, const char *state,
                    const uint64_t *seqs, size_t n, const char *by, uint64_t ts);
/* Publishes what dev gathered: before anything else goes to it or into
 * its queue, before it replays, goes offline or changes its capabilities;
 * all devices' (the tick, with receipts_tick's window; the close). */
void gather_flush_dev_slot(core *c, device *dev);
static inline void gather_flush_dev(core *c, device *dev)
{
	if (dev->gslot)
		gather_flush_dev_slot(c, dev);
}
void gather_flush_all(core *c);
/* The window's end for each device whose first gathered event is
 * plugin_opt_delivered_gather_ms old (receipts_tick, after the runs). */
void gather_tick(core *c, uint64_t now_ms);
/* dev is about to be freed: what it gathered is dropped. */
void gather_forget(core *c, device *dev);
void gather_free(core *c);

/* ---- expiry (expiry.c) ---- */

/* expiry.c's state; flow.c reads epoch. */
typedef struct expiry_state {
	uint64_t next_sweep_ms;
	uint64_t epoch;  /* sweeps that removed messages (flow.c refits windows) */
} expiry_state;

void expiry_tick(core *c);

/* ---- push wake-ups (push.c) ---- */

/* Devices waiting for a wake-up or its acknowledgement, by due time. */
typedef struct push_timers {
	device **heap;
	size_t n, cap;
	uint64_t next_id;             /* wake-up ids, seeded from the clock at open */
} push_timers;

/* Loads the stored push targets and arms a wake-up for every device that
 * has something queued (they are all offline at start). */
int push_load(core *c);
void push_free(core *c);
/* Something was queued for dev, which is offline: O(1) (one heap insert
 * when it is the first item since the device's last wake-up). */
void push_queued(core *c, device *dev);
/* dev connected: no wake-ups until it is offline again. */
void push_online(core *c, device *dev);
/* dev is about to be freed. */
void push_forget(core *c, device *dev);
/* ctl push.register / push.unregister; false: refused (why). */
/* mode (may be NULL): "background" (the default) or, for apns, "alert". */
bool push_register(core *c, device *dev, const char *platform, size_t plen, const char *mode,
                   size_t mlen, const char *token, size_t tlen, refusal *why);
bool push_unregister(core *c, device *dev, refusal *why);
/* A gateway's acknowledgement on P/push/ack. */
void push_ack(core *c, const uint8_t *payload, size_t len);
void push_tick(core *c);


/* ---- ctl requests (ctl.c) ---- */
enum core_verdict ctl_handle(core *c, device *from, const uint8_t *payload, size_t len);

/* ---- capabilities (caps.c) ---- */

/* caps.c's state: how many devices declared each capability (gauges for
 * stats.c). */
typedef struct caps_state {
	uint64_t devices[CAP_NBITS];
} caps_state;

/* The capability's wire name ("sents"). */
const char *caps_name(enum cap_bit bit);
/* Reads a CBOR array of capability names (its whole encoding, raw): the
 * known ones as bits into *out, unknown names ignored. False: not an
 * array of at most CAPS_MAX_NAMES text strings (why set). */
bool caps_parse(const uint8_t *raw, size_t len, uint32_t *out, refusal *why);
/* Makes caps the device's capabilities: what it has gathered goes out
 * first, the store keeps the new set when it changed. False: the store
 * failed (why set; nothing changed). */
bool caps_set(core *c, device *dev, uint32_t caps, refusal *why);
/* The reply pairs of a caps declaration: caps (the names in effect) and
 * server {v, puback_delivered, gather_ms, replay_batch}; 2 pairs. */
void caps_reply_pairs(core *c, cbw *w, const device *dev);
/* chat/sync's payload: {caps} sets them before the replay; anything else
 * (an empty payload, {}) changes nothing. False: caps was malformed or
 * could not be stored (why set). */
bool caps_sync(core *c, device *dev, const uint8_t *payload, size_t len, refusal *why);
/* Loads the stored capabilities (core_open, after the devices). */
int caps_load(core *c);
/* dev is about to be freed: its capabilities leave the gauges. */
void caps_forget(core *c, device *dev);


/* ---- counters (stats.c) ---- */

#define CORE_STATS_MAX 128

typedef struct counters {
	uint64_t auth_ok, auth_refused, msgs_in, msgs_stored, msgs_dup, msgs_refused,
		events_out, errors_out, admin_cmds, subs_refused, replayed, receipts_in,
		receipts_out, receipts_queued, expired, syncs, group_events, typing_out,
		presence_out, presence_answers, wakeups_out, wakeups_resent, push_acks, push_invalid, backups,
		spilled, acks_delivered, auto_syncs, acks_deferred, acks_refused, publishes_held,
		replay_batches, sents_out, sents_items, sents_dl, rcpts_out, rcpts_items;
	uint64_t refused[REFUSAL_NCOUNTED + 1]; /* error events by code, the last: other (stats.c) */
} counters;

/* The key server's figures, as it last published them on P/keys/stats. */
typedef struct keys_stats {
	uint64_t requests, refused_rate, refused, pool_keys, devices_removed;
} keys_stats;

/* The push gateways' counters (pushgw_<name>), summed over the gateways:
 * each publishes its own since its start on P/push/stats with its id; a
 * gateway not heard from for longest is folded into `retired` when the
 * table is full, so the sums never go down. */
#define PUSHGW_NCOUNTERS 20
#define PUSHGW_TABLE 16
typedef struct pushgw_stats {
	struct {
		char id[33];
		uint64_t seen;              /* a sequence number: the least is the oldest */
		uint64_t v[PUSHGW_NCOUNTERS];
	} gw[PUSHGW_TABLE];
	uint64_t retired[PUSHGW_NCOUNTERS];
	uint64_t seq;
} pushgw_stats;

typedef struct stat_value {
	const char *name;
	uint64_t v;
} stat_value;

/* stats.c's state: what $SYS last showed, and the key server's figures. */
typedef struct stats_state {
	uint64_t next_ms;               /* the next $SYS publication */
	uint64_t last[CORE_STATS_MAX];  /* values last published there */
	bool sent;
	keys_stats keys;
	pushgw_stats pushgw;
} stats_state;

/* Counts an error event sent for a refusal, by its code. */
void stats_refused(core *c, enum refusal_code code);
/* Every counter, in a fixed order; returns how many (<= CORE_STATS_MAX). */
size_t stats_collect(core *c, stat_value *out);
/* A key server's P/keys/stats message: its figures join ours. */
void stats_keys(core *c, const uint8_t *payload, size_t len);
/* A push gateway's P/push/stats message {gw: id, <name>: uint, …}. */
void stats_pushgw(core *c, const uint8_t *payload, size_t len);
/* Publishes changed counters on $SYS/broker/chat/ when the interval is due. */
void stats_tick(core *c, uint64_t now);


/* ---- admin commands (admin.c) ---- */
/* Who asks: the admin may run every command, a provisioner service
 * (STORE_ROLE_PROVISIONER) device.add, device.remove and stats. */
enum admin_role { ADMIN_FULL, ADMIN_PROVISIONER };
void admin_handle(core *c, const char *clientid, enum admin_role role, const uint8_t *payload,
                  size_t len);

/* ---- an admin command's reply (admin_reply.c) ---- */

/* Where an admin command's answer goes (kept by a command that answers
 * later). */
typedef struct admin_ticket {
	char clientid[256];
	bool has_cmd;
	char cmd[64];           /* echoed (truncated to 64 bytes) */
	size_t cmdlen;
	bool has_rid;
	uint64_t rid;
} admin_ticket;
/* One response on $CONTROL/chat/v1/response: ok with res's npairs result
 * pairs, or (why set) a refusal. */
void admin_send(core *c, const admin_ticket *who, const refusal *why, const cbw *res,
                size_t npairs);


/* ---- device removal notices (device_notices.c) ---- */
/* After an admin removed device `removed` of user U: the `devices` event to
 * U's devices, group co-members and contacts, and the key server's retained
 * notice. */
void notice_device_removed(core *c, const char *user, const char *removed);
/* After an admin added U/dev: clears a removal notice left for that address. */
void notice_device_added(core *c, const char *user, const char *dev);

/* ---- backup (backup.c) ---- */
typedef struct backup_job backup_job;
/* Starts a backup into dir, answered later to who; false: refused (why). */
bool backup_start(core *c, const char *dir, const admin_ticket *who, refusal *why);
/* Answers a finished backup. */
void backup_tick(core *c);
/* Waits for a running backup (at close). */
void backup_wait(core *c);


/* ---- the broker-patches events (broker_events.c) ---- */

/* broker_events.c's state, set once by core_broker_events; acl.c reads
 * have (on stock mosquitto it reports SUBSCRIBEs itself). */
typedef struct broker_events {
	unsigned have;      /* the events this broker reports (CORE_BEV_*) */
	bool ack_delivers;  /* a PUBACK of an inbox message counts as delivered */
	bool auto_replay;   /* a replay starts when a device subscribes to its inbox */
} broker_events;

/* ---- group commit (commit.c) ---- */

/* What waits for durability, in order (see commit.c's top comment). */
typedef struct held_ack {
	uint64_t gen;           /* waits until the writes up to gen are durable */
	uint64_t conn_id;
	uint16_t mid;
	uint8_t reason;         /* the MQTT reason code it goes out with */
} held_ack;

typedef struct held_pub held_pub;

typedef struct commit_state {
	bool on;                /* group commit runs: c->io.publish is the barrier */
	bool failed;            /* an fsync failed: nothing waits any more */
	core_io io;             /* the glue's core_io (c->io wraps it) */
	uint64_t durable;       /* the store's durable generation, as last read */
	held_ack *acks;         /* acks[head .. n), oldest first */
	size_t head, n, cap;
	held_pub *pub_head, *pub_tail; /* publishes held, oldest first */
} commit_state;

/* Drops the held publishes to clientid (its connection ended: what was
 * meant for it would reach its next one out of order). */
void commit_forget_client(core *c, const char *clientid);
/* Sends what became durable, asks for the rest (the tick). */
void commit_tick(core *c);
/* Stops group commit (its last fsync) and frees what is held. */
void commit_close(core *c);

/* ---- the core (core.c): life cycle, dispatch, the tick ---- */

struct core {
	/* Set at open, read by every file. */
	core_config cfg;
	char *data_dir;
	char *prefix;
	size_t prefix_len;
	core_io io;
	store *st;
	uint8_t token_key[STORE_KEY_LEN];   /* tokens.c's key, loaded by core.c */
	uint8_t admin_hash[STORE_HASH_LEN]; /* core.c writes it at open; auth.c reads */
	directory dir;  /* directory.c; every feature reads it, admin.c changes it */
	counters n;     /* every feature counts here; stats.c publishes */

	/* The event scratch, owned by the delivery machine. The rule: build an
	 * event in w and hand it to an ev_* publish before calling anything
	 * that may publish another event (ev_*, flow_acked, sync_*,
	 * group_request, receipts_*, admin_send), which may rebuild w. w2 is
	 * for a second event built beside w under the same rule (send.c: the
	 * sender's own copy; groups.c: a group event's stored body) or for an
	 * event built while w may be in use by a caller (receipts.c, expiry.c:
	 * receipt events). What must survive such calls is in a buffer of its
	 * own feature (admin.c's wreply) or a local cbw. */
	cbw w;
	cbw w2;

	/* Each owned by one file, named in its section above. */
	kicklist kicks;         /* kick.c */
	fanout fan;             /* fanout.c (filled by send.c, groups.c) */
	send_state send;        /* send.c */
	delivery deliv;         /* flow.c, sync.c */
	expiry_state expiry;    /* expiry.c */
	group_table gtab;       /* group_table.c */
	groups_state groups;    /* groups.c */
	presence_state presence; /* presence.c */
	push_timers pt;         /* push.c */
	ack_runs acks;          /* receipts.c: PUBACKs gathered into receipts */
	broker_events bev;      /* broker_events.c */
	stats_state stats;      /* stats.c */
	commit_state commit;    /* commit.c */
	caps_state caps;        /* caps.c */
	gather_state gath;      /* gather.c: sents and rcpts not published yet */
	backup_job *backup;     /* backup.c: a running `backup`, or NULL */
	cbw wreply;             /* admin.c: the reply's result pairs, apart from w and w2,
	                         * which the events a command sends meanwhile use */
};

/* ---- flow window (flow.c): its invariants, which need struct core ---- */

/* The window's invariants, from struct flow's comments; O(1), checked
 * where flow.c and sync.c change it (plugin/CMakeLists.txt keeps assert()
 * on in every build type the project uses). */
static inline void flow_check(const core *c, const device *d)
{
	const flow *f = &d->fc;
	(void)c; (void)f; /* unused when NDEBUG drops the asserts */
	assert(f->lo <= f->hi);                  /* hi starts at lo and only grows */
	assert(!f->sync || f->backlog);          /* a replay is a backlog ... */
	assert(!f->automatic || f->sync);        /* ... and an automatic one a replay */
	assert(f->backlog || (!f->prev && !f->next && f->cursor == 0)); /* only backlogs are linked */
	assert(!f->backlog || f->sync || f->cursor <= f->hi); /* a drain: hi follows the cursor */
	assert(!c->deliv.acks_exact || f->msgs == 0); /* exact: every publish counts in evs */
}

#endif
