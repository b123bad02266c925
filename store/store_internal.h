// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* store_internal.h — what the files of store/ share, and nothing else.
 *
 * The keyspace (one RocksDB column family per record kind; integers are
 * big-endian so that iteration follows numeric order; '\0' separates
 * variable-length parts, which ids never contain):
 *
 *   meta      "schema_version" -> u32            "token_key" -> 32 bytes
 *             "admin_hash"     -> 32 bytes
 *   devices   user \0 device   -> cred record (below)
 *   services  name             -> cred record
 *   convs     conv             -> u64 last seq
 *   msgs      conv \0 seq      -> message record (messages.c)
 *   refs      conv \0 seq      -> u64 devices that still have it queued (none for one: rcpts)
 *   rcpts     conv \0 seq \0 addr -> u64 qseq [u8 'S']   (present while addr has it queued;
 *             'S': addr is the message's only recipient and refs has no record of it)
 *   rstate    conv \0 seq \0 user -> u8 store_rstate
 *   dedup     from \0 kind cid -> conv \0 seq expires   (kind 'u' + u64 | 'b' + bytes)
 *   queues    addr \0 qseq     -> 'M' conv \0 seq | 'E' encoded event
 *   qmeta     addr             -> u64 next qseq, u64 entries queued
 *   expiry    expires \0 conv \0 seq -> ""   (walked by store_expire)
 *   prefs     user             -> u8 version (1), u8 read_receipts, u8 presence
 *   groups    gid              -> group record (groups.c)
 *   push      user \0 device   -> u8 version (1), u8 platform, token (push.c)
 *   contacts  U \0 V          -> ""   (contacts.c)
 *   caps      user \0 device   -> u8 version (1), u32 capability bits (caps.c)
 *
 * A cred record is: u8 version (1), 32-byte token hash, u64 created (ms),
 * and for a service whose role is not STORE_ROLE_SERVICE a u8 role after
 * them (records without it, all written before roles existed, are
 * services; builds before roles read those still).
 * Tests include this header to reach the raw handles (white-box checks).
 *
 * The functions declared here are named store__ (two underscores): they
 * serve the files of store/ and are not part of store.h's API.
 */
#ifndef CHAT_STORE_INTERNAL_H
#define CHAT_STORE_INTERNAL_H

#include <rocksdb/c.h>

#include "grow.h"
#include "ids.h"
#include "store.h"

enum store_cf {
	STORE_CF_DEFAULT, /* RocksDB requires it; unused */
	STORE_CF_META,
	STORE_CF_DEVICES,
	STORE_CF_SERVICES,
	STORE_CF_CONVS,
	STORE_CF_MSGS,
	STORE_CF_REFS,
	STORE_CF_RCPTS,
	STORE_CF_RSTATE,
	STORE_CF_DEDUP,
	STORE_CF_QUEUES,
	STORE_CF_QMETA,
	STORE_CF_EXPIRY,
	STORE_CF_PREFS,
	STORE_CF_GROUPS,
	STORE_CF_PUSH,
	STORE_CF_CONTACTS, /* U \0 V for every 1:1 conversation, both ways (contacts.c) */
	STORE_CF_CAPS,     /* a device's declared capabilities (caps.c) */
	STORE_CF_COUNT
};

extern const char *const store_cf_names[STORE_CF_COUNT];

#define STORE_META_SCHEMA "schema_version"

/* contacts.c: index the partners of a new 1:1 conversation (into st->wb);
 * and build the index from the conversations (the v1 -> v2 migration). */
void store__contacts_put(store *st, const char *conv, size_t convlen);
int store__contacts_build(store *st);
#define STORE_META_TOKEN_KEY "token_key"
#define STORE_META_ADMIN "admin_hash"

#define STORE_NAME_MAX 64 /* service names */
#define STORE_SEQ_LEN 8
/* conv \0 seq: the key of a message, its refcount, a queue entry's value */
#define STORE_MSGKEY_MAX (CHAT_CONV_MAX + 1 + STORE_SEQ_LEN)
/* conv \0 seq \0 addr: a recipient of a message */
#define STORE_RCPTKEY_MAX (STORE_MSGKEY_MAX + 1 + CHAT_ADDR_MAX)
/* a message record's header (messages.c): 26 fixed bytes, cid, from, body length */
#define STORE_MSG_HDR_MAX (26 + 1 + STORE_CID_MAX + 1 + CHAT_ADDR_MAX + 1 + 4)
#define STORE_ERR_MAX 512

#define STORE_QE_MSG 'M'
#define STORE_QE_EVENT 'E'
/* The byte after an rcpts entry's qseq when its device is the message's
 * one recipient: the send writes no refs record (it would hold 1) and the
 * release deletes none — two memtable writes and a read fewer per 1:1
 * message between single-device users (schema 3). */
#define STORE_RCPT_SOLE 'S'
/* An rcpts value's length: 8 (qseq), 9 (qseq STORE_RCPT_SOLE), or 0 when
 * the vlen bytes at v are neither (corrupt). */
static inline size_t store__rcpt_len(const char *v, size_t vlen)
{
	return vlen == 8 || (vlen == 9 && v[8] == STORE_RCPT_SOLE) ? vlen : 0;
}

struct store {
	rocksdb_t *db;
	rocksdb_options_t *opts;         /* the DB's, and most column families' */
	rocksdb_options_t *counter_opts; /* convs, qmeta: updated in place */
	rocksdb_options_t *probe_opts;   /* dedup, rstate: memtable bloom filter */
	bool hints;                      /* memtable insert hints are on */
	rocksdb_cache_t *cache;
	rocksdb_column_family_handle_t *cf[STORE_CF_COUNT];
	/* column families this version does not know (a newer schema's) but
	 * which RocksDB requires us to open */
	rocksdb_column_family_handle_t **extra_cf;
	size_t n_extra_cf;
	rocksdb_readoptions_t *ro;
	rocksdb_writeoptions_t *wo;
	rocksdb_writebatch_t *wb; /* reused by every mutation */
	uint32_t migrated_from;   /* the schema version open migrated, or 0 */
	/* A write failed (a full disk, an I/O error): no write reaches RocksDB
	 * again until the store is reopened — RocksDB 7.8 asserts on a WAL
	 * write after a failed one. */
	bool write_failed;
	uint64_t written;         /* successful writes since open: their generations (commit.c) */
	struct store_committer *committer; /* group commit's thread, or NULL (commit.c) */
	/* the store's directory, for the free-space check before each write */
	int dir_fd;
	uint64_t min_free;
	uint8_t token_key[STORE_KEY_LEN];
	char err[STORE_ERR_MAX];
	/* store__distinct's sorted copy of the recipients, grown as needed */
	const char **to_sorted;
	size_t to_cap;
	/* store_expire's list of undelivered devices, grown as needed */
	char (*addrs)[CHAT_ADDR_MAX + 1];
	const char **addr_ptrs;
	size_t addrs_cap;
	struct store_caches *caches; /* cache.c */
	struct store_reads *reads;   /* receipts.c: a receipt's reads, one chunk at a time */
	struct store_qpage *qpage;   /* queue.c: a queue walk's page */
	uint8_t released[STORE_MSG_HDR_MAX]; /* the record store__msg_release_refs left in m */
};

static inline void store__be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t store__be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Records err (RocksDB's malloc'd message) as the store's last error, frees
 * it and returns CHAT_EIO. */
int store__rocks_err(store *st, char *err);
/* Sets the last error message; returns code. */
int store__fail(store *st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The shared write batch, emptied. */
rocksdb_writebatch_t *store__batch(store *st);
/* Writes the shared batch (sync per opts) and empties it. */
int store__commit(store *st);
/* Empties the shared batch without writing it (an operation failed). */
void store__rollback(store *st);

/* cache.c: committed values kept in memory (see there). lookup: what the
 * cache knows of a key: its value (*vlen its length), that it has no
 * record, or nothing (read RocksDB). fill: what a read of committed data
 * found (val NULL: no record). stage: a write into st->wb; the slot empties
 * now, and after the commit holds val (NULL: no record); stage_empty: the
 * same, but the slot stays empty. settle applies (committed) or drops the staged writes; forget
 * empties every table (after writes that bypassed these calls). */
enum store_cache { STORE_CACHE_QMETA, STORE_CACHE_CONVS, STORE_CACHE_MSGHDR, STORE_CACHE_COUNT };
enum store_cached { STORE_UNCACHED, STORE_CACHED_ABSENT, STORE_CACHED_VALUE };
int store__caches_open(store *st);
void store__caches_close(store *st);
enum store_cached store__cache_lookup(store *st, enum store_cache t, const void *key, size_t klen,
                                      void *out, size_t *vlen);
void store__cache_fill(store *st, enum store_cache t, const void *key, size_t klen,
                       const void *val, size_t vlen);
void store__cache_stage(store *st, enum store_cache t, const void *key, size_t klen,
                        const void *val, size_t vlen);
void store__cache_stage_empty(store *st, enum store_cache t, const void *key, size_t klen);
void store__caches_settle(store *st, bool committed);
void store__caches_forget(store *st);
void store__caches_stats(const store *st, uint64_t *hits, uint64_t *misses);
/* The counters (qmeta, convs) through the cache: a counter is the key of
 * one in its column family. get is store__get_fixed (fill: keep what a miss
 * read); put and delete add to st->wb like their rocksdb_writebatch
 * counterparts. */
typedef struct store_counter {
	enum store_cf cf;
	const void *key;
	size_t klen;
} store_counter;
int store__counter_get(store *st, const store_counter *ctr, void *out, size_t vlen, bool fill);
void store__counter_put(store *st, const store_counter *ctr, const void *val, size_t vlen);
void store__counter_delete(store *st, const store_counter *ctr);

/* The distinct device addresses of to[0..n), in byte order, into *out (the
 * store's scratch, valid until the next call) and their number into *m:
 * one sort, so that a fan-out to thousands of devices stays O(n log n).
 * CHAT_OK or CHAT_ENOMEM. */
int store__distinct(store *st, const char *const *to, size_t n, const char *const **out,
                    size_t *m);

/* user \0 device into out (STORE_DEVKEY_MAX bytes); 0 if either is empty
 * or too long. */
#define STORE_DEVKEY_MAX (CHAT_USER_MAX + 1 + CHAT_DEVICE_MAX)
size_t store__devkey(char *out, const char *user, const char *device);
/* Splits a devkey into user (CHAT_USER_MAX + 1 bytes) and device
 * (CHAT_DEVICE_MAX + 1); false unless it is well formed. */
bool store__devkey_parse(const char *k, size_t klen, char *user, char *device);

/* Reads a value: CHAT_OK with *val set (caller destroys it),
 * CHAT_ENOTFOUND, or CHAT_EIO. */
int store__get(store *st, enum store_cf cf, const void *key, size_t klen,
               rocksdb_pinnableslice_t **val);
/* Reads a value that must be exactly len bytes into out: CHAT_OK,
 * CHAT_ENOTFOUND, CHAT_EIO, or CHAT_ECORRUPT on a wrong length. */
int store__get_fixed(store *st, enum store_cf cf, const void *key, size_t klen,
                     void *out, size_t len);

/* Batched point reads of one column family, for up to STORE_MANY slots of
 * which some want a value: RocksDB's MultiGet shares the filter, index and
 * block lookups of keys that sit together, which separate reads each
 * repeat. store__many_want names a slot's key (valid until the read);
 * store__many_get reads them all at once and sets out[slot] of each wanted
 * slot to its value (destroy with store__many_free) or NULL if the key is
 * not there, leaves the other slots alone, and forgets the wants. CHAT_OK,
 * or the first read error (the wanted slots then NULL). */
#define STORE_MANY 64
typedef struct store_many {
	const char *keys[STORE_MANY];
	size_t klens[STORE_MANY], slot[STORE_MANY], n;
	bool over; /* more than STORE_MANY were wanted: the read fails */
	rocksdb_pinnableslice_t *got[STORE_MANY];
} store_many;
void store__many_want(store_many *m, size_t slot, const void *key, size_t klen);
int store__many_get(store *st, store_many *m, enum store_cf cf, rocksdb_pinnableslice_t **out);
void store__many_free(rocksdb_pinnableslice_t **vals, size_t n);
/* A value store__many_get read that must be exactly len bytes, into out: as
 * store__get_fixed (v NULL: CHAT_ENOTFOUND). */
int store__fixed_value(store *st, enum store_cf cf, const rocksdb_pinnableslice_t *v, void *out,
                       size_t len);

/* Calls cb for every key starting with prefix (plen 0: every key), in
 * order; a walk as err.h describes (cb's CHAT_STOP or error ends it). */
typedef int (*store_kv_cb)(store *st, const char *k, size_t klen, const char *v, size_t vlen,
                           void *ctx);
int store__prefix_each(store *st, enum store_cf cf, const void *prefix, size_t plen,
                       store_kv_cb cb, void *ctx);
/* The same walk from the first key >= from (within prefix): the listings'
 * pages (store_devices_after, …). */
int store__range_each(store *st, enum store_cf cf, const void *from, size_t flen,
                      const void *prefix, size_t plen, store_kv_cb cb, void *ctx);
/* Ends a walk with iterator it: destroys it and returns rc, or the
 * iterator's error when rc is CHAT_OK. */
int store__iter_end(store *st, rocksdb_iterator_t *it, int rc);
/* Calls cb with key's value if it has one (CHAT_OK if not), as
 * store__prefix_each would for a one-key walk. */
int store__get_each(store *st, enum store_cf cf, const void *key, size_t klen, store_kv_cb cb,
                    void *ctx);

/* Builds conv \0 seq into out (STORE_MSGKEY_MAX bytes); returns its length,
 * 0 if conv is empty or too long. */
size_t store__msgkey(uint8_t *out, const char *conv, uint64_t seq);
/* Splits a msgkey; false unless it is well formed. conv gets
 * CHAT_CONV_MAX + 1 bytes. */
bool store__msgkey_parse(const uint8_t *k, size_t klen, char *conv, uint64_t *seq);

/* Length of a device address, 0 if empty or too long. */
size_t store__addrlen(const char *addr);
/* Builds msgkey \0 addr into out (STORE_RCPTKEY_MAX bytes); returns its length. */
size_t store__rcptkey(uint8_t *out, const uint8_t *msgkey, size_t mklen, const char *addr,
                      size_t alen);
/* Builds addr \0 qseq into out (CHAT_ADDR_MAX + 9 bytes); returns its length. */
size_t store__qkey(uint8_t *out, const char *addr, size_t alen, uint64_t qseq);

/* A queue entry's value: its kind (STORE_QE_*), then the payload. */
typedef struct store_qvalue {
	char kind;
	const void *payload;
	size_t len;
} store_qvalue;
/* Adds to the shared batch one queue entry for addr and the updated queue
 * counter; sets *qseq. CHAT_EQUOTA if addr already holds max_queue entries
 * (0 = no limit). */
int store__queue_add(store *st, const char *addr, const store_qvalue *v, uint64_t max_queue,
                     uint64_t *qseq);
/* Adds to the shared batch: count = count + delta for addr's queue. */
int store__queue_count_add(store *st, const char *addr, size_t alen, int64_t delta);
/* Adds to the shared batch the deletion of addr's whole queue, and releases
 * the messages it referenced. */
int store__queue_drop(store *st, const char *addr);

/* Reads the message at msgkey: CHAT_OK with out filled (pointers into *val,
 * conv into conv; CHAT_CONV_MAX + 1 bytes) and *val to destroy,
 * CHAT_ENOTFOUND, CHAT_ECORRUPT or CHAT_EIO. */
int store__msg_load(store *st, const uint8_t *msgkey, size_t mklen, store_msg *out,
                    rocksdb_pinnableslice_t **val, char *conv);
/* store__msg_load after its read: *val is the record read at msgkey (NULL:
 * CHAT_ENOTFOUND), conv what store__msgkey_parse made of msgkey. */
int store__msg_decode(store *st, const uint8_t *msgkey, size_t mklen, store_msg *out,
                      rocksdb_pinnableslice_t **val, char *conv);
/* A message's metadata as store__msg_meta read it: m's pointers point into
 * hdr, conv or val (which the caller destroys). */
struct store_msg_read {
	store_msg m;
	rocksdb_pinnableslice_t *val;
	char conv[CHAT_CONV_MAX + 1];
	uint8_t hdr[STORE_MSG_HDR_MAX];
};
/* The message's metadata (kind, sender, ts …; no body): from the header
 * cache when it is there, else as store__msg_load. */
int store__msg_meta(store *st, const uint8_t *msgkey, size_t mklen, struct store_msg_read *out);
/* Adds to the shared batch: one device no longer has the message queued;
 * when none has, its body is deleted and its metadata kept until expiry.
 * sole: that device's rcpts entry said it was the only one (no refcount). */
int store__msg_release(store *st, const uint8_t *msgkey, size_t mklen, bool sole);
void store__reads_free(store *st);
void store__qpage_free(store *st);
/* One reference to a message going (store__msg_release_refs): what the
 * caller read of it, and what the last reference leaves. */
struct store_release {
	const uint8_t *mk; /* the message's key */
	size_t mklen;
	/* the rcpts entry said this was the only reference: no refcount to
	 * read, refs_rc and cnt are not used */
	bool sole;
	int refs_rc;       /* the result of the caller's read of the refcount */
	uint8_t cnt[8];    /* its 8 bytes when CHAT_OK (changed) */
	/* At the last reference, have is set and m holds the message's
	 * metadata, without the body: pointers into val (which the caller
	 * destroys) or into the store, valid until the next release. */
	bool have;
	store_msg m;
	rocksdb_pinnableslice_t *val;
	char conv[CHAT_CONV_MAX + 1];
};
/* store__msg_release after the caller's read of the message's refcount. */
int store__msg_release_refs(store *st, struct store_release *rel);
/* queue.c: decodes an rcpts value v (NULL: none, CHAT_ENOTFOUND) into its
 * qseq and whether it is the message's sole reference (STORE_RCPT_SOLE). */
int store__rcpt_value(store *st, const rocksdb_pinnableslice_t *v, uint8_t q[8], bool *sole);
/* queue.c: adds to the shared batch the removal of addr's queue entry for
 * a message (alen: addr's length), at position q (the value of its rcpts
 * entry rk, which goes too), and one reference to the message (rel, as
 * store__msg_release_refs takes it). */
struct store_ack_entry {
	const char *addr;
	size_t alen;
	const uint8_t *rk;
	size_t rklen;
	const uint8_t *q;
};
int store__ack_one(store *st, const struct store_ack_entry *e, struct store_release *rel);
/* receipts.c: the one loop of store_ack, store_receipts and store_deliver,
 * in one batch. Per seq: when addr is given, addr's queue entry goes
 * (store__ack_one; r->qseqs_out) and "received" is whether it had one; when
 * r->state is not STORE_R_NONE, the state of user `by` (ul bytes) moves,
 * with "received" from r->received when there is no addr (NULL: all).
 * Outputs as the public calls; those a call does not produce may be NULL. */
int store__receipt_batch(store *st, const char *addr, const char *by, size_t ul,
                         const store_receipt *r);
/* Adds a message (or group event) to the shared batch without clearing or
 * committing it: the conversation's next seq, record, dedup entry, expiry
 * entry, refcount and one queue entry per distinct recipient. */
int store__send_batch(store *st, const store_msg *msg, const char *const *to, size_t n,
                      uint64_t max_queue, uint64_t *seq);
/* The dedup key of (from, cid) into out (STORE_DEDUPKEY_MAX bytes); 0 if
 * malformed. */
#define STORE_DEDUPKEY_MAX (CHAT_ADDR_MAX + 1 + 1 + STORE_CID_MAX)
size_t store__dedupkey(uint8_t *out, const char *from, const store_cid *cid);

#endif
