// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keystore.h — the key server's pre-key store and the rules it enforces.
 *
 * chat-keyserver hands out X3DH pre-key bundles. This library is everything
 * it decides, with no MQTT in sight: a RocksDB of its own (the broker never
 * holds key material), the upload/bundle/count/check rules, the per
 * (requesting device, target user) rate limit, and the request codec
 * (ks_request: raw CBOR in, response CBOR out) so the whole request path is
 * unit-testable and fuzzable.
 *
 * Concurrency: a handle is used by one thread, one request at a time. Every
 * request's writes are one WriteBatch, so a one-time pre-key popped by a
 * bundle is gone for good the moment the response exists ("at most once,
 * ever", also across restarts). Writes are not fsync'd unless sync_writes is
 * set: a killed process loses nothing, a power cut may lose the last batches.
 *
 * Device list: the key store keeps its own list, the devices that uploaded
 * keys. A bundle for user U has one entry per such device. A device removed
 * from the broker keeps its keys here until ks_drop_device() is called (the
 * broker announces removals on P/keys/removed/U/D; a re-registration also
 * drops them).
 *
 * Conventions: functions return CHAT_OK or a chat_err code (err.h); on
 * CHAT_EIO/CHAT_ECORRUPT ks_errmsg() says what happened. Ids are (pointer,
 * length) and must already be valid (ids.h); ks_request validates its input.
 */
#ifndef CHAT_KEYSTORE_H
#define CHAT_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbor_io.h"
#include "ids.h"
#include "keylog.h"

#define KS_KEY_LEN 32          /* Ed25519 / X25519 public key */
#define KS_SIG_LEN 64          /* Ed25519 signature */
#define KS_DIGEST_LEN 32       /* SHA-256 */
#define KS_MAX_UPLOAD_OPKS 100 /* one-time pre-keys per upload (wire contract) */
#define KS_REQ_MAX 16384       /* bytes of one request; a full upload is ~5 KB */

#define KS_DEFAULT_POOL_CAP 1000
#define KS_DEFAULT_LOW_THRESHOLD 10
#define KS_DEFAULT_RATE_BURST 6
#define KS_DEFAULT_RATE_REFILL_S 600

typedef struct ks ks;

typedef struct ks_opts {
	const char *dir;            /* RocksDB directory; created if missing */
	bool sync_writes;           /* fsync every batch */
	uint32_t pool_cap;          /* one-time keys a device may hold; an upload that
	                               would exceed it is refused whole */
	uint32_t low_threshold;     /* a pool below this is "low" */
	uint32_t rate_burst;        /* bundle requests a (device, user) pair may make at once */
	uint32_t rate_refill_s;     /* seconds to earn one more */
	/* Wall clock in ms since the epoch (persisted rate state must survive a
	 * restart, so not a monotonic clock). NULL: the system clock. */
	uint64_t (*now_ms)(void *ctx);
	void *clock_ctx;
	/* Cluster mode (keystore_js.c, docs/KEYSERVER.md "Cluster mode"): set,
	 * the store is NATS JetStream at these comma-separated URLs and dir is
	 * not used; several key servers then serve the same pools at once. */
	const char *cluster_urls;
	const char *cluster_prefix; /* subject/stream prefix; NULL: "chat" */
	int cluster_replicas;       /* stream replicas; 0: 3 */
	const char *cluster_creds;  /* a NATS credentials file, or NULL */
} ks_opts;

void ks_opts_default(ks_opts *o);

/* Opens (creating if needed) the store. On failure *out is NULL and, if
 * errbuf is given, it holds a one-line reason. */
int ks_open(ks **out, const ks_opts *o, char *errbuf, size_t errlen);
void ks_close(ks *k);
/* Writes a consistent checkpoint of the key store into dir (which must not
 * exist): a directory `--data-dir` can open as is. Blocks while RocksDB
 * flushes and links the files. On failure a reason in errbuf. */
int ks_checkpoint(ks *k, const char *dir, char *errbuf, size_t errlen);
/* RocksDB's estimate of the keys in the store: about the one-time keys in
 * every pool plus a few records per device. O(1). */
uint64_t ks_keys_estimate(ks *k);
const char *ks_errmsg(const ks *k);
/* The log node cache's hits and misses (reads of RocksDB) since ks_open. */
void ks_log_cache_stats(const ks *k, uint64_t *hits, uint64_t *misses);
/* Whether RocksDB took the memtable insert hints (common/rocks_util.h);
 * false only on a RocksDB build whose C API is laid out differently. */
bool ks_insert_hints(const ks *k);

typedef struct ks_spk {
	uint64_t id;
	uint8_t key[KS_KEY_LEN];
	uint8_t sig[KS_SIG_LEN];
} ks_spk;

typedef struct ks_opk {
	uint64_t id;
	uint8_t key[KS_KEY_LEN];
} ks_opk;

/* Stores device (u, d)'s identity key and signed pre-key and adds n one-time
 * keys. Returns CHAT_EDENIED when spk->sig is not ik's signature over
 * spk->key, CHAT_ETOOBIG for n > KS_MAX_UPLOAD_OPKS, CHAT_EEXIST when an opk id
 * repeats (in the upload or in the pool), CHAT_EQUOTA when the pool would
 * exceed pool_cap; nothing is changed then. A different ik than the stored one
 * is a re-registration: the old one-time keys are dropped first. *count is the
 * pool size afterwards. */
int ks_upload(ks *k, const char *u, size_t ul, const char *d, size_t dl,
              const uint8_t ik[KS_KEY_LEN], const ks_spk *spk, const ks_opk *opks, size_t n,
              uint32_t *count);

typedef struct ks_entry {
	char device[CHAT_DEVICE_MAX + 1];
	uint8_t ik[KS_KEY_LEN];
	ks_spk spk;
	bool has_opk;
	ks_opk opk;
	uint32_t left;              /* the device's pool after this bundle */
	uint64_t log_index, log_ts; /* the leaf that logged ik */
	kl_hash proof[KL_PROOF_MAX]; /* its inclusion proof in the current head */
	size_t nproof;
} ks_entry;

typedef struct ks_bundle {
	ks_entry *v;
	size_t n, cap;
} ks_bundle;

void ks_bundle_init(ks_bundle *b);
void ks_bundle_free(ks_bundle *b);

/* Charges one token from the (requester, target user) bucket, then fills b
 * with one entry per device of the target that uploaded keys, popping one
 * one-time key from each. CHAT_EDENIED: rate-limited, *retry_after_s says
 * when to retry (nothing popped). CHAT_ENOTFOUND: the user has no keys (the
 * token is still spent). CHAT_EIO/CHAT_ECORRUPT: nothing popped, including
 * when the limiter's own state cannot be read or written (fail closed). */
int ks_bundle_get(ks *k, const char *ru, size_t rul, const char *rd, size_t rdl,
                  const char *u, size_t ul, ks_bundle *b, uint64_t *retry_after_s);

/* The device's pool size; 0 for an unknown device. */
int ks_count(ks *k, const char *u, size_t ul, const char *d, size_t dl, uint32_t *count);

/* *match: digest == SHA-256(ik || spk.key) of the stored keys; false for an
 * unknown device. Compared in constant time. */
int ks_check(ks *k, const char *u, size_t ul, const char *d, size_t dl,
             const uint8_t digest[KS_DIGEST_LEN], bool *match);

/* Forgets a device: its keys and its one-time pool (CHAT_OK if unknown). */
int ks_drop_device(ks *k, const char *u, size_t ul, const char *d, size_t dl);

uint32_t ks_low_threshold(const ks *k);
/* Cluster mode: reads the key directory log's leaves appended by other key
 * servers since the last call (ks_request calls it first). RocksDB: no-op. */
int ks_sync(ks *k);
bool ks_clustered(const ks *k);

/* ---- the key directory log (keylog.h; docs/KEYSERVER.md) ----
 *
 * Every new identity key of a device (its first upload, a re-registration)
 * is appended, in the upload's batch, as a leaf {ik, ts, user, device} of an
 * RFC 9162 Merkle tree, and a new tree head is signed with the key server's
 * Ed25519 key (DIR/keylog.key, made at the first open, 0600). Each append
 * is one epoch: the head of every size 1..n is kept. A store from before
 * the log gets every device's current key logged at open. */

typedef struct ks_log_entry {
	uint64_t index, ts;
	uint8_t ik[KS_KEY_LEN];
	char user[CHAT_USER_MAX + 1];
	char device[CHAT_DEVICE_MAX + 1];
} ks_log_entry;

/* The current head (size 0: the log is empty) and the signing public key. */
const kl_head *ks_log_head(const ks *k);
const uint8_t *ks_log_pub(const ks *k);
/* The signed head of the tree of `size` leaves (1 ≤ size ≤ current). */
int ks_log_head_at(ks *k, uint64_t size, kl_head *h);
int ks_log_get(ks *k, uint64_t index, ks_log_entry *e);
/* Proofs from stored subtree hashes, O(log² n) point reads at most. */
int ks_log_inclusion(ks *k, uint64_t index, uint64_t size, kl_hash *proof, size_t *n);
int ks_log_consistency(ks *k, uint64_t from, uint64_t to, kl_hash *proof, size_t *n);
/* The newest (at most cap) leaf indices of the device's keys, oldest first. */
int ks_log_history(ks *k, const char *u, size_t ul, const char *d, size_t dl, uint64_t *idx,
                   size_t cap, size_t *n);

#ifdef KS_LYING
/* Test builds only (chat-keyserver-lying): rewrites the log with leaf 0's key
 * replaced, re-signing every head — a forked history. */
int ks_test_fork(ks *k, const uint8_t fake_ik[KS_KEY_LEN]);
#endif

/* ---- the request codec (request.c) ---- */

/* A retained status update the front should publish on
 * <prefix>/keys/status/user/device. */
typedef struct ks_status {
	char user[CHAT_USER_MAX + 1];
	char device[CHAT_DEVICE_MAX + 1];
	uint32_t opks;
	bool low;
} ks_status;

typedef struct ks_reply {
	cbw resp;                /* the response payload */
	ks_status *status;       /* status updates to publish, in order */
	size_t nstatus, capstatus;
	const char *errmsg;      /* set when the key store failed: for the log only */
} ks_reply;

void ks_reply_init(ks_reply *r);
void ks_reply_free(ks_reply *r);

/* Handles one request from device (u, d) (taken from the request topic).
 * Always leaves a response in r->resp (ok:true with the op's results, or
 * ok:false with code and msg, see docs/KEYSERVER.md) and the status updates
 * it causes in r->status. Returns CHAT_OK, or CHAT_ENOMEM when no response
 * could be built. */
int ks_request(ks *k, const char *u, size_t ul, const char *d, size_t dl, const void *req,
               size_t len, ks_reply *r);

/* Encodes a status payload {"opks": n, "low": bool} into w (reset first). */
int ks_status_payload(cbw *w, const ks_status *s);

#endif
