// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* store.h — mosquitto-chat's durable state, in chat terms.
 *
 * The plugin core sees persistence only through this API: devices and their
 * token hashes, service accounts, the admin credential, per-conversation
 * sequence numbers, messages, the client-id dedup index, and (for offline
 * delivery) per-device queues with expiry. The embedded engine is RocksDB;
 * no RocksDB type or key layout leaks out of store/, so a distributed engine
 * can replace it behind the same calls.
 *
 * Conventions: every function returns CHAT_OK or a chat_err code (err.h); on
 * CHAT_EIO/CHAT_ECORRUPT, store_errmsg() says what happened. Strings are
 * NUL-terminated and already validated by the caller (ids.h). Every
 * mutation is one atomic WriteBatch. Not thread-safe: one thread (the
 * broker's) uses a handle.
 */
#ifndef CHAT_STORE_H
#define CHAT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"

#define STORE_HASH_LEN 32   /* keyed BLAKE2b-256 of a token */
#define STORE_KEY_LEN 32    /* the token-hashing key */
#define STORE_CID_MAX 16    /* a client message id: up to 16 bytes */
#define STORE_SCHEMA_VERSION 3  /* 2: the contacts index; 3: rcpts entries marked sole */

typedef struct store store;

typedef struct store_opts {
	const char *dir;      /* RocksDB directory; created if missing */
	bool sync_writes;     /* fsync every batch (survives power loss) */
	uint64_t min_free;    /* bytes the disk must keep free: a write that would
	                       * leave less is refused (CHAT_EIO); 0 = no check */
} store_opts;

/* Opens (creating if needed) the store. On failure returns an error and, if
 * errbuf is given, a one-line reason. A store whose schema version is not
 * STORE_SCHEMA_VERSION (newer, or older than any migration this build has)
 * is refused with a reason naming both versions. */
int store_open(store **out, const store_opts *opts, char *errbuf, size_t errlen);
void store_close(store *st);
const char *store_errmsg(const store *st);
/* The schema version store_open migrated from, or 0 when it did not. */
uint32_t store_migrated_from(const store *st);
/* Whether RocksDB took the memtable insert hints (common/rocks_hints.cc); false
 * only on a RocksDB build whose C API is laid out differently. */
bool store_insert_hints(const store *st);

/* The secret key for hashing tokens: created randomly on the first open and
 * kept in the store. */
int store_token_key(store *st, uint8_t key[STORE_KEY_LEN]);

/* ---- accounts ---- */

int store_device_add(store *st, const char *user, const char *device,
                     const uint8_t hash[STORE_HASH_LEN]);          /* CHAT_EEXIST */
int store_device_get(store *st, const char *user, const char *device,
                     uint8_t hash[STORE_HASH_LEN]);                 /* CHAT_ENOTFOUND */
/* Replaces the device's token hash (a rotated token); its queue, push
 * target and everything else stay. CHAT_ENOTFOUND if there is no device. */
int store_device_rehash(store *st, const char *user, const char *device,
                        const uint8_t hash[STORE_HASH_LEN]);
/* Removes the device and everything queued for it. */
int store_device_remove(store *st, const char *user, const char *device);
/* Calls cb for every device (ordered by user, then device); a walk as
 * err.h describes (CHAT_STOP ends it early). */
typedef int (*store_device_cb)(void *arg, const char *user, const char *device,
                               const uint8_t hash[STORE_HASH_LEN]);
int store_devices_each(store *st, store_device_cb cb, void *arg);
/* The same walk from a point, for listings a page at a time: the devices
 * after (user, device); device NULL: after all of user's devices; user
 * NULL: from the first. */
int store_devices_after(store *st, const char *user, const char *device, store_device_cb cb,
                        void *arg);

/* What a service account may do (docs/PROTOCOL.md §1): STORE_ROLE_SERVICE
 * serves the key server's and the push gateway's topics (every account
 * made before roles existed has it); STORE_ROLE_PROVISIONER may only add
 * and remove devices and read the counters, over $CONTROL/chat/v1. */
enum store_role { STORE_ROLE_SERVICE = 0, STORE_ROLE_PROVISIONER = 1 };
#define STORE_ROLE_MAX STORE_ROLE_PROVISIONER

int store_service_add(store *st, const char *name, const uint8_t hash[STORE_HASH_LEN],
                      enum store_role role);
/* hash and role may be NULL. */
int store_service_get(store *st, const char *name, uint8_t hash[STORE_HASH_LEN],
                      enum store_role *role);
/* A rotated token: replaces the hash, keeps the role. CHAT_ENOTFOUND. */
int store_service_rehash(store *st, const char *name, const uint8_t hash[STORE_HASH_LEN]);
int store_service_remove(store *st, const char *name);
typedef int (*store_service_cb)(void *arg, const char *name, const uint8_t hash[STORE_HASH_LEN],
                                enum store_role role);
int store_services_each(store *st, store_service_cb cb, void *arg);
/* The services after name (NULL: from the first), in name order. */
int store_services_after(store *st, const char *name, store_service_cb cb, void *arg);

/* The admin credential's hash; CHAT_ENOTFOUND before the first start. */
int store_admin_get(store *st, uint8_t hash[STORE_HASH_LEN]);
int store_admin_set(store *st, const uint8_t hash[STORE_HASH_LEN]);

/* ---- messages ---- */

/* A client message id: the CBOR cid, either a byte string or an unsigned
 * integer, kept with its kind so 5 and h'05' stay distinct. */
typedef struct store_cid {
	bool is_uint;
	uint64_t u;
	uint8_t bytes[STORE_CID_MAX];
	size_t len;
} store_cid;

/* What a conversation entry is: a message, or a group event (membership
 * change) stored in the group's order. A group event has no cid (no dedup
 * entry), carries no receipt state, and its body is the encoded event. */
enum store_msg_kind { STORE_KIND_MSG = 0, STORE_KIND_GROUP = 1 };

typedef struct store_msg {
	enum store_msg_kind kind;
	const char *conv;        /* "dm:A:B" or "g:G" */
	const char *from;        /* sender address "U/D" */
	store_cid cid;
	uint64_t ts;             /* server time, ms */
	uint64_t expires;        /* ms; the message leaves every queue then */
	bool has_type;
	uint64_t type;
	/* Exactly one of: one body for every device, or the encoded CBOR map
	 * {"U/D": bstr, …} as received (stored verbatim). */
	const uint8_t *body;
	size_t body_len;
	const uint8_t *bodies;
	size_t bodies_len;
} store_msg;

/* Looks up (from, cid) in the dedup index: CHAT_OK with the conversation
 * (into conv, CHAT_CONV_MAX + 1 bytes) and seq of the first send, or
 * CHAT_ENOTFOUND. */
int store_dedup_get(store *st, const char *from, const store_cid *cid, char *conv,
                    uint64_t *seq);

/* Stores a message in one WriteBatch: assigns the conversation's next seq,
 * writes the message, the dedup entry (messages only) and one queue entry
 * per distinct recipient device address in `to` (n of them; duplicates are
 * queued once, in O(n log n)). Fails with CHAT_EQUOTA (nothing written) if
 * a recipient's queue already holds max_queue entries (0 = unlimited). */
int store_send(store *st, const store_msg *msg, const char *const *to, size_t n,
               uint64_t max_queue, uint64_t *seq);

/* The asynchronous form of store_send (docs/CLUSTER.md, "Plan" step 1): the
 * backend calls done(arg, rc, seq) exactly once, on the broker thread, with
 * what store_send would have returned (seq is meaningful for CHAT_OK only).
 * msg, its pointers and `to` are read only until store_send_begin returns.
 * The RocksDB backend completes inline, before store_send_begin returns; a
 * network backend completes later (from the core's tick or wake-up), so the
 * caller must keep what its continuation needs. */
typedef void (*store_send_done)(void *arg, int rc, uint64_t seq);
void store_send_begin(store *st, const store_msg *msg, const char *const *to, size_t n,
                      uint64_t max_queue, store_send_done done, void *arg);

/* A stored message, as read back. Pointers stay valid until the next call
 * on the same store_msg_buf or store_msg_buf_free. Start it zeroed
 * (store_msg_buf buf = {0}). Once no device has the message queued, only
 * its metadata remains: body and bodies are then NULL. */
typedef struct store_msg_buf {
	void *priv;
} store_msg_buf;

int store_msg_get(store *st, const char *conv, uint64_t seq, store_msg *out, store_msg_buf *buf);
void store_msg_buf_free(store_msg_buf *buf);

/* The last seq given out in conv (0 if none). */
int store_conv_last_seq(store *st, const char *conv, uint64_t *seq);

/* ---- offline queues ----
 *
 * Every message is queued for each recipient device when it is stored
 * (store_send) and stays queued until that device's delivered receipt
 * (store_ack) or the message's expiry (store_expire). Receipt events for
 * devices that could not take them live are queued as encoded events. */

enum store_qkind { STORE_Q_MSG = 1, STORE_Q_EVENT = 2 };

typedef struct store_qentry {
	uint64_t qseq;             /* position in the device's queue, from 1 */
	enum store_qkind kind;
	const char *conv;          /* STORE_Q_MSG: the message's id */
	uint64_t seq;
	const uint8_t *event;      /* STORE_Q_EVENT: an encoded inbox event */
	size_t event_len;
} store_qentry;

/* Appends an encoded inbox event to each device's queue (one batch). Events
 * are not held to max_queue: a receipt is never refused. */
int store_queue_event(store *st, const char *const *to, size_t n, const uint8_t *event,
                      size_t len);

/* Visits addr's queue in order from the first entry with qseq > w->after,
 * at most w->max entries. For a message entry, m is the stored message
 * (NULL if it is gone); pointers are valid during the call only. A walk as
 * err.h describes: w->cb's CHAT_STOP or error ends it and is returned (the
 * entry it was given counts as visited). *visited counts the entries
 * visited, *last is the last visited qseq (unchanged when none). */
typedef int (*store_queue_cb)(void *arg, const store_qentry *e, const store_msg *m);
typedef struct store_queue_walk {
	uint64_t after;
	size_t max;
	store_queue_cb cb;
	void *arg;
} store_queue_walk;
int store_queue_read(store *st, const char *addr, const store_queue_walk *w, size_t *visited,
                     uint64_t *last);

/* Removes entries by position (events once they were sent), one batch. */
int store_queue_remove(store *st, const char *addr, const uint64_t *qseqs, size_t n);

/* The same for event entries the caller has just read (store_queue_read
 * said they are events, and nothing wrote the queue since): deleted without
 * reading them back. Never pass a message entry: its rcpts entry and
 * reference would stay behind. */
int store_queue_drop_events(store *st, const char *addr, const uint64_t *qseqs, size_t n);

/* A device's delivered receipt: removes (conv, seqs[i]) from addr's queue in
 * one batch. qseqs_out[i] is the removed entry's qseq, or 0 if it was not
 * queued. A message that no device still has queued keeps only its
 * metadata (sender, times, recipients) until it expires; its body is
 * deleted. */
int store_ack(store *st, const char *addr, const char *conv, const uint64_t *seqs, size_t n,
              uint64_t *qseqs_out);

/* Entries queued for addr (messages and events). */
int store_queue_count(store *st, const char *addr, uint64_t *count);

/* The qseq of the last entry ever queued for addr (0 if none): entries
 * queued later get larger qseqs. */
int store_queue_last(store *st, const char *addr, uint64_t *qseq);

/* ---- receipts ---- */

enum store_rstate { STORE_R_NONE = 0, STORE_R_DELIVERED = 1, STORE_R_READ = 2 };

/* A receipt for the messages (conv, seqs[i]), i < n: what it asks and, in
 * arrays of n, what it finds. */
typedef struct store_receipt {
	const char *conv;
	const uint64_t *seqs;
	size_t n;
	enum store_rstate state;
	char (*from_out)[CHAT_ADDR_MAX + 1];
	bool *changed;
	enum store_rstate *prev_out;  /* may be NULL */
	const bool *received;         /* store_receipts only; may be NULL */
	uint64_t *qseqs_out;          /* store_deliver only */
} store_receipt;

/* Moves the state of each (conv, seqs[i]) for recipient user `by` forward
 * to r->state, in one batch. For each i: from_out[i] is the message's
 * sender address ("" if the message is unknown, expired or a group event),
 * changed[i] whether the state moved and, if prev_out is not NULL,
 * prev_out[i] the state before. Repeats, backward moves and a user's own messages change
 * nothing. If received is not NULL, received[i] false says the reading
 * device never had the message queued: then its state moves only if `by`
 * already has one (another of its devices got it) — a receipt for a message
 * one never received changes nothing. r->qseqs_out is not used. */
int store_receipts(store *st, const char *by, const store_receipt *r);

/* A device's delivered (or read) receipt in one batch: store_ack for addr
 * (qseqs_out), then store_receipts for addr's user with received[i] =
 * (qseqs_out[i] != 0), each message read at most once. Same results as the
 * two calls; r->received is not used. */
int store_deliver(store *st, const char *addr, const store_receipt *r);

/* ---- user settings ---- */

enum store_presence { STORE_PRESENCE_EVERYONE = 0, STORE_PRESENCE_CONTACTS, STORE_PRESENCE_NOBODY };

typedef struct store_prefs {
	bool read_receipts;              /* default true */
	enum store_presence presence;    /* default everyone */
} store_prefs;

/* The defaults when the user never set any. */
int store_prefs_get(store *st, const char *user, store_prefs *out);
int store_prefs_set(store *st, const char *user, const store_prefs *prefs);

/* ---- groups ----
 *
 * A group's record: its display name and its members, each with an admin
 * flag, in the order they joined. Membership changes are written together
 * with the group event that announces them (store_group_event), so the
 * record and the group conversation never disagree. */

#define STORE_GROUP_NAME_MAX 128   /* bytes of a display name */
#define STORE_GROUP_MEMBERS_MAX 65535

typedef struct store_group_member {
	const char *user;
	bool admin;
} store_group_member;

typedef struct store_group {
	const char *gid;
	const char *name;                 /* "" when none */
	const store_group_member *members;
	size_t n;                         /* 0: the group is deleted */
} store_group;

/* Writes the group's record (or deletes it when g->n is 0) and stores ev
 * (kind STORE_KIND_GROUP, conv "g:G") like store_send, without a queue
 * quota, all in one WriteBatch; *seq is the event's seq. */
int store_group_event(store *st, const store_group *g, const store_msg *ev,
                      const char *const *to, size_t n, uint64_t *seq);
/* Calls cb for every group (by gid); pointers are valid during the call
 * only. A walk as err.h describes. */
typedef int (*store_group_cb)(void *arg, const store_group *g);
int store_groups_each(store *st, store_group_cb cb, void *arg);
/* The groups after gid (NULL: from the first), in gid order. */
int store_groups_after(store *st, const char *gid, store_group_cb cb, void *arg);

/* ---- push targets ----
 *
 * A device's push target: the platform and the provider's token for it
 * (an FCM registration token, an APNs device token, a Web Push
 * subscription). The token is kept in clear: it is an address the push
 * gateway must send to, not a credential for this server. Removed with the
 * device (store_device_remove). */

#define STORE_PUSH_TOKEN_MAX 4096

enum store_push_platform { STORE_PUSH_FCM = 1, STORE_PUSH_APNS = 2, STORE_PUSH_WEBPUSH = 3 };

typedef struct store_push {
	enum store_push_platform platform;
	const char *token;        /* not NUL-terminated */
	size_t token_len;         /* 1..STORE_PUSH_TOKEN_MAX */
	bool alert;               /* apns: a visible notification, not a background push */
} store_push;

/* Sets (replacing) the device's push target. */
int store_push_set(store *st, const char *user, const char *device, const store_push *p);
/* Removes it; CHAT_OK whether or not there was one. */
int store_push_clear(store *st, const char *user, const char *device);
/* Calls cb for every device with a push target (pointers valid during the
 * call); a walk as err.h describes. */
typedef int (*store_push_cb)(void *arg, const char *user, const char *device, const store_push *p);
int store_push_each(store *st, store_push_cb cb, void *arg);

/* ---- device capabilities ----
 *
 * What a device declared it understands (docs/PROTOCOL.md, "Capabilities"),
 * as the plugin's bit mask: bit i is the i-th name of the plugin's
 * DEVICE_CAPS list, which only ever grows at its end. Kept apart from the
 * device's credential record, so a build without capabilities still reads
 * that record; removed with the device (store_device_remove), and a device
 * added again under the same address starts without any. */

/* Sets the device's capabilities (0: none, and the record goes). */
int store_caps_set(store *st, const char *user, const char *device, uint32_t caps);
/* Calls cb for every device with capabilities; a walk as err.h describes. */
typedef int (*store_caps_cb)(void *arg, const char *user, const char *device, uint32_t caps);
int store_caps_each(store *st, store_caps_cb cb, void *arg);

/* ---- expiry ---- */

/* Deletes up to max messages whose expiry is <= now, oldest first: the
 * message, its queue entries, dedup entry and receipt states, one batch per
 * message. cb (may be NULL) sees each message (body not loaded) and the
 * devices that still had it queued and whose user never got it on any
 * device (no delivered or read receipt). */
typedef void (*store_expire_cb)(void *arg, const store_msg *m, uint64_t seq,
                                const char *const *undelivered, size_t n);
int store_expire(store *st, uint64_t now, size_t max, store_expire_cb cb, void *arg,
                 size_t *expired);

/* ---- contacts ---- */

/* Calls cb with every user that has a 1:1 conversation with user (a
 * conversation exists once a message was sent in it), in byte order. A walk
 * as err.h describes. */
typedef int (*store_contact_cb)(void *arg, const char *contact);
int store_contacts_each(store *st, const char *user, store_contact_cb cb, void *arg);

/* ---- operations (ops.c) ---- */

/* The engine's figures (all column families together). */
typedef struct store_engine {
	uint64_t sst_bytes;                 /* on disk */
	uint64_t memtable_bytes;            /* in memory, not flushed yet */
	uint64_t pending_compaction_bytes;  /* estimate */
	uint64_t write_stopped;             /* 1 while RocksDB stops writes (stall) */
	uint64_t delayed_write_rate;        /* bytes/s while writes are slowed, else 0 */
	uint64_t queue_entries_estimate;    /* offline queue entries (RocksDB estimate) */
} store_engine;
void store_engine_stats(store *st, store_engine *out);

/* Writes a consistent checkpoint of the whole store into dir (which must not
 * exist; SST files are hard-linked when dir is on the same file system,
 * memtables are flushed first). Safe to call from another thread while the
 * owning thread keeps using the handle; the reason of a failure goes to
 * errbuf, not to store_errmsg(). */
int store_checkpoint(store *st, const char *dir, char *errbuf, size_t errlen);

/* ---- durability: group commit (commit.c) ---- */

/* Every successful write (one WriteBatch) has a generation, 1, 2, … since
 * open: the latest is store_written(). */
uint64_t store_written(const store *st);

/* Starts group commit: from now on writes are not synced one by one (even
 * with sync_writes); a thread of the store's makes them durable in groups,
 * one fsync for every write made before it began. After each group (or its
 * failure) it calls notify(arg) on that thread: notify must be thread-safe
 * and quick (wake the owner thread). Stopped by store_close, after a last
 * fsync of what was written. */
int store_group_commit_start(store *st, uint32_t window_us, void (*notify)(void *arg), void *arg);
/* Asks for every write made so far to be made durable (cheap when already
 * asked). Without group commit: nothing. */
void store_group_commit_ask(store *st);
/* The writes up to the returned generation are durable (without group
 * commit: store_written(), as durable as sync_writes makes them). *failed:
 * an fsync failed; nothing after the returned generation will ever be
 * durable, store_errmsg() says why and every later write is refused. */
uint64_t store_durable(store *st, bool *failed);
/* The fsyncs group commit has done. */
uint64_t store_group_commit_batches(store *st);
/* Stops group commit after a last fsync (store_close does it). */
void store_group_commit_stop(store *st);

#endif
