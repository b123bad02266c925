// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keystore.c — pre-keys in RocksDB, and the rules of upload and bundle.
 *
 * Keyspace, format 2 (one column family; ids never contain 0x00 or 0x01, so
 * 0x00 separates and 0x01 bounds a range):
 *   'F'                 → store format: ver(1)=2. Written into an empty
 *                         directory; a directory without it that holds data
 *                         is format 1 and is refused at open.
 *   'U' U               → device list of user U: ver(1)=2, then per device in
 *                         byte order len(1) | device id
 *   'D' U 0 D           → device record: ver(1)=2 | ik(32) | spk id(8, BE) |
 *                         spk key(32) | spk sig(64) | pool size(4, BE) |
 *                         next(8, BE)
 *   'O' U 0 D 0 id(8)   → one-time pre-key (32 bytes); big-endian ids sort
 *                         in order, a bundle hands out the lowest id first
 *   'R' RU 0 RD 0 U     → rate state of (requesting device RU/RD, target U):
 *                         ver(1)=1 | tat(8, BE)
 * The pool size lives in the device record so count is one read and a pop
 * updates it in the same batch as the delete.
 *
 * Why the device list and `next` (docs/BENCHMARKS.md, keys): a pop deletes
 * the lowest key of a device's range and a bundle rewrites the device
 * record, so iterator seeks over those ranges walked over every tombstone
 * and old version left by earlier bundles, and got slower with every key
 * handed out. Now a bundle does point reads only: the user's device list,
 * each device record, and the key at `next`. `next` is a lower bound of the
 * pool's ids (no key below it exists); after popping id i it becomes i + 1.
 * For clients that number their keys consecutively, which is the usual
 * case, that key exists and one Get pops it. After a gap, a seek bounded to
 * [next, end of the device's range) finds the lowest key; the tombstones of
 * popped keys all lie below next, so it does not walk them.
 *
 * The rate limiter is a token bucket written as GCRA: one timestamp per
 * bucket, the "theoretical arrival time" tat. A request is allowed when, after
 * charging one refill interval T, tat - now ≤ burst·T — exactly a bucket of
 * `burst` tokens refilled one per T, in 9 bytes of state.
 */
#include "keystore.h"
#include "keystore_js.h"

#include "err.h"
#include "keylog.h"
#include "rocks_util.h"

#include <errno.h>
#include <fcntl.h>
#include <rocksdb/c.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_FORMAT 2
#define DEV_VERSION 2
#define USERDEVS_VERSION 2
#define RATE_VERSION 1
#define DEV_REC_LEN (1 + KS_KEY_LEN + 8 + KS_KEY_LEN + KS_SIG_LEN + 4 + 8)
#define RATE_REC_LEN (1 + 8)
#define KEY_MAX (1 + CHAT_USER_MAX + 1 + CHAT_USER_MAX + 1 + CHAT_DEVICE_MAX + 8)
static const char format_key[1] = { 'F' };

struct ks {
	ksjs *js;                   /* cluster mode: every call goes there */
	rocksdb_t *db;
	rocksdb_options_t *opts;
	bool hints; /* RocksDB took the memtable insert hints */
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wopts;
	rocksdb_writebatch_t *batch;   /* reused by every request */
	ks_opts cfg;
	char errmsg[256];
	/* the key directory log (keylog.h): its signing key and current head */
	uint8_t log_sk[KL_SEC], log_pk[KL_PUB];
	kl_head head;               /* size 0: the log is empty */
	char *key_path;             /* DIR/keylog.key */
	struct node_cache *nodes;   /* committed log nodes read lately (node_get) */
};

/* The log's nodes as read from the store: the tree is append-only, so a
 * node (level, idx), once committed, never changes, and a cached copy never
 * goes stale. Direct-mapped, filled only by reads of committed records (an
 * append's own nodes are in its batch until written). A bundle's proof is
 * log2(n) nodes, the same upper ones for every device: reads of RocksDB
 * (a get and a malloc each) become memcpy's. */
#define NODE_SLOTS 8192 /* 2^13 (node_slot takes 13 bits); 48 bytes each */
struct node_cache {
	struct node_slot {
		uint64_t idx;
		uint8_t level, valid;
		uint8_t hash[KL_HASH];
	} slot[NODE_SLOTS];
	uint64_t hits, misses;
};

static struct node_slot *node_slot(struct node_cache *nc, unsigned level, uint64_t idx)
{
	/* Fibonacci hashing of (level, idx): the top bits of the product */
	uint64_t h = (idx ^ ((uint64_t)level << 57)) * UINT64_C(0x9E3779B97F4A7C15);
	return &nc->slot[(h >> 51) & (NODE_SLOTS - 1)]; /* 13 bits: NODE_SLOTS */
}

typedef struct dev_rec {
	uint8_t ik[KS_KEY_LEN];
	ks_spk spk;
	uint32_t count;
	uint64_t next;              /* no one-time key with a lower id exists */
} dev_rec;

/* ---- small helpers ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t key_append(uint8_t *k, size_t n, const char *s, size_t len)
{
	memcpy(k + n, s, len);
	return n + len;
}

/* 'D' U 0 — the prefix of all of U's device records. */
static size_t key_user_devs(uint8_t *k, const char *u, size_t ul)
{
	k[0] = 'D';
	size_t n = key_append(k, 1, u, ul);
	k[n++] = 0;
	return n;
}

static size_t key_dev(uint8_t *k, const char *u, size_t ul, const char *d, size_t dl)
{
	return key_append(k, key_user_devs(k, u, ul), d, dl);
}

/* 'U' U — the user's device list. */
static size_t key_user_list(uint8_t *k, const char *u, size_t ul)
{
	k[0] = 'U';
	return key_append(k, 1, u, ul);
}

/* 'O' U 0 D 0 — the prefix of a device's one-time keys. */
static size_t key_opk_prefix(uint8_t *k, const char *u, size_t ul, const char *d, size_t dl)
{
	k[0] = 'O';
	size_t n = key_append(k, 1, u, ul);
	k[n++] = 0;
	n = key_append(k, n, d, dl);
	k[n++] = 0;
	return n;
}

static size_t key_rate(uint8_t *k, const char *ru, size_t rul, const char *rd, size_t rdl,
                       const char *u, size_t ul)
{
	k[0] = 'R';
	size_t n = key_append(k, 1, ru, rul);
	k[n++] = 0;
	n = key_append(k, n, rd, rdl);
	k[n++] = 0;
	return key_append(k, n, u, ul);
}

static int set_err(ks *k, int code, const char *what, char *rocks_err)
{
	snprintf(k->errmsg, sizeof(k->errmsg), "%s%s%s", what, rocks_err ? ": " : "",
	         rocks_err ? rocks_err : "");
	rocksdb_free(rocks_err);
	return code;
}

static uint64_t now_ms(const ks *k)
{
	if (k->cfg.now_ms)
		return k->cfg.now_ms(k->cfg.clock_ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* CHAT_OK with *val (free with rocksdb_free), CHAT_ENOTFOUND, or CHAT_EIO. */
static int db_get(ks *k, const uint8_t *key, size_t klen, char **val, size_t *vlen)
{
	char *err = NULL;
	*val = rocksdb_get(k->db, k->ropts, (const char *)key, klen, vlen, &err);
	if (err)
		return set_err(k, CHAT_EIO, "read failed", err);
	return *val ? CHAT_OK : CHAT_ENOTFOUND;
}

static int db_write(ks *k)
{
	char *err = NULL;
	rocksdb_write(k->db, k->wopts, k->batch, &err);
	rocksdb_writebatch_clear(k->batch);
	return err ? set_err(k, CHAT_EIO, "write failed", err) : CHAT_OK;
}

static void dev_encode(uint8_t out[DEV_REC_LEN], const dev_rec *r)
{
	uint8_t *p = out;
	*p++ = DEV_VERSION;
	memcpy(p, r->ik, KS_KEY_LEN), p += KS_KEY_LEN;
	ks_be64_put(p, r->spk.id), p += 8;
	memcpy(p, r->spk.key, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(p, r->spk.sig, KS_SIG_LEN), p += KS_SIG_LEN;
	put_be32(p, r->count), p += 4;
	ks_be64_put(p, r->next);
}

static int dev_decode(ks *k, const char *v, size_t vlen, dev_rec *r)
{
	const uint8_t *p = (const uint8_t *)v;
	if (vlen != DEV_REC_LEN || p[0] != DEV_VERSION)
		return set_err(k, CHAT_ECORRUPT, "corrupt device record", NULL);
	p++;
	memcpy(r->ik, p, KS_KEY_LEN), p += KS_KEY_LEN;
	r->spk.id = ks_be64_get(p), p += 8;
	memcpy(r->spk.key, p, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(r->spk.sig, p, KS_SIG_LEN), p += KS_SIG_LEN;
	r->count = get_be32(p), p += 4;
	r->next = ks_be64_get(p);
	return CHAT_OK;
}

static int dev_load(ks *k, const char *u, size_t ul, const char *d, size_t dl, dev_rec *r)
{
	uint8_t key[KEY_MAX];
	size_t klen = key_dev(key, u, ul, d, dl), vlen;
	char *v;
	int rc = db_get(k, key, klen, &v, &vlen);
	if (rc)
		return rc;
	rc = dev_decode(k, v, vlen, r);
	rocksdb_free(v);
	return rc;
}

static void batch_put_dev(ks *k, const char *u, size_t ul, const char *d, size_t dl,
                          const dev_rec *r)
{
	uint8_t key[KEY_MAX], val[DEV_REC_LEN];
	size_t klen = key_dev(key, u, ul, d, dl);
	dev_encode(val, r);
	rocksdb_writebatch_put(k->batch, (const char *)key, klen, (const char *)val, sizeof(val));
}

static bool has_prefix(rocksdb_iterator_t *it, const uint8_t *prefix, size_t plen)
{
	if (!rocksdb_iter_valid(it))
		return false;
	size_t klen;
	const char *key = rocksdb_iter_key(it, &klen);
	return klen >= plen && memcmp(key, prefix, plen) == 0;
}

static int iter_status(ks *k, rocksdb_iterator_t *it)
{
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	return err ? set_err(k, CHAT_EIO, "iteration failed", err) : CHAT_OK;
}

/* An iterator over a device's one-time keys, 'O' U 0 D 0 … (prefix, plen),
 * bounded above by 'O' U 0 D 1 so that it stops at the end of the range
 * instead of walking on into the next device's. Free with opk_iter_done. */
typedef struct opk_iter {
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	uint8_t hi[KEY_MAX];
} opk_iter;

static void opk_iter_start(ks *k, opk_iter *oi, const uint8_t *prefix, size_t plen)
{
	memcpy(oi->hi, prefix, plen);
	oi->hi[plen - 1] = 1;
	oi->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(oi->ro, (const char *)oi->hi, plen);
	oi->it = rocksdb_create_iterator(k->db, oi->ro);
}

static void opk_iter_done(opk_iter *oi)
{
	rocksdb_iter_destroy(oi->it);
	rocksdb_readoptions_destroy(oi->ro);
}

/* Adds deletes of every one-time key of the device (prefix, plen) to the
 * batch. Only re-registration and drop use it. */
static int batch_delete_opks(ks *k, const uint8_t *prefix, size_t plen)
{
	opk_iter oi;
	opk_iter_start(k, &oi, prefix, plen);
	for (rocksdb_iter_seek(oi.it, (const char *)prefix, plen); has_prefix(oi.it, prefix, plen);
	     rocksdb_iter_next(oi.it)) {
		size_t klen;
		const char *key = rocksdb_iter_key(oi.it, &klen);
		rocksdb_writebatch_delete(k->batch, key, klen);
	}
	int rc = iter_status(k, oi.it);
	opk_iter_done(&oi);
	return rc;
}

/* ---- the device list of a user ----
 *
 * 'U' U → ver(1) then, in byte order of the ids (the order a scan of the
 * 'D' U 0 range would give), len(1) | device id per device. It is written in
 * the same batch as the device records it lists: an upload that creates a
 * device adds it, a drop removes it, and the record is deleted with its last
 * device. */

/* Orders device ids like RocksDB orders 'D' U 0 D keys. */
static int dev_id_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* CHAT_OK when v is a well-formed device list, else CHAT_ECORRUPT. */
static int dev_list_check(ks *k, const char *v, size_t vlen)
{
	if (vlen < 1 || (uint8_t)v[0] != USERDEVS_VERSION)
		return set_err(k, CHAT_ECORRUPT, "corrupt device list record", NULL);
	const char *prev = NULL;
	size_t prevl = 0;
	for (size_t off = 1; off < vlen;) {
		size_t dl = (uint8_t)v[off];
		const char *d = v + off + 1;
		if (dl > vlen - off - 1 || !chat_valid_device(d, dl) ||
		    (prev && dev_id_cmp(prev, prevl, d, dl) >= 0))
			return set_err(k, CHAT_ECORRUPT, "corrupt device list record", NULL);
		prev = d, prevl = dl;
		off += 1 + dl;
	}
	return CHAT_OK;
}

/* Loads U's device list (free with rocksdb_free). An absent list is
 * CHAT_ENOTFOUND; a malformed one CHAT_ECORRUPT. */
static int dev_list_load(ks *k, const char *u, size_t ul, char **v, size_t *vlen)
{
	uint8_t key[KEY_MAX];
	size_t klen = key_user_list(key, u, ul);
	int rc = db_get(k, key, klen, v, vlen);
	if (rc)
		return rc;
	if ((rc = dev_list_check(k, *v, *vlen)) != CHAT_OK) {
		rocksdb_free(*v);
		*v = NULL;
	}
	return rc;
}

/* Batches U's device list with d added (add) or removed (!add). A list that
 * already says so is left alone. */
static int batch_dev_list_update(ks *k, const char *u, size_t ul, const char *d, size_t dl,
                                 bool add)
{
	char *v = NULL;
	size_t vlen = 0;
	int rc = dev_list_load(k, u, ul, &v, &vlen);
	if (rc && rc != CHAT_ENOTFOUND)
		return rc;
	/* Where d is (found) or would go. */
	size_t at = 1, end = v ? vlen : 1;
	bool found = false;
	while (at < end) {
		size_t el = (uint8_t)v[at];
		int c = dev_id_cmp(v + at + 1, el, d, dl);
		if (c >= 0) {
			found = c == 0;
			break;
		}
		at += 1 + el;
	}
	if (found == add) {
		rocksdb_free(v);
		return CHAT_OK;
	}
	uint8_t key[KEY_MAX];
	size_t klen = key_user_list(key, u, ul);
	size_t nlen = add ? end + 1 + dl : end - 1 - dl;
	if (nlen <= 1) { /* the last device went */
		rocksdb_writebatch_delete(k->batch, (const char *)key, klen);
		rocksdb_free(v);
		return CHAT_OK;
	}
	char *nv = malloc(nlen);
	if (!nv) {
		rocksdb_free(v);
		return CHAT_ENOMEM;
	}
	nv[0] = USERDEVS_VERSION;
	if (at > 1)
		memcpy(nv + 1, v + 1, at - 1);
	if (add) {
		nv[at] = (char)dl;
		memcpy(nv + at + 1, d, dl);
		if (end > at)
			memcpy(nv + at + 1 + dl, v + at, end - at);
	} else if (end > at + 1 + dl) {
		memcpy(nv + at, v + at + 1 + dl, end - at - 1 - dl);
	}
	rocksdb_writebatch_put(k->batch, (const char *)key, klen, nv, nlen);
	free(nv);
	rocksdb_free(v);
	return CHAT_OK;
}

/* ---- store format ---- */

/* Accepts a format-2 store, stamps an empty one, refuses anything else. */
static int format_check(ks *k, const char *dir, char *errbuf, size_t errlen)
{
	char *v;
	size_t vlen;
	int rc = db_get(k, (const uint8_t *)format_key, sizeof(format_key), &v, &vlen);
	if (rc == CHAT_OK) {
		unsigned fmt = vlen == 1 ? (uint8_t)v[0] : 0;
		rocksdb_free(v);
		if (fmt == STORE_FORMAT)
			return CHAT_OK;
		if (errbuf)
			snprintf(errbuf, errlen,
			         "%s holds key store format %u; this chat-keyserver reads format %u only",
			         dir, fmt, STORE_FORMAT);
		return CHAT_ECORRUPT;
	}
	if (rc != CHAT_ENOTFOUND) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot read %s: %s", dir, k->errmsg);
		return rc;
	}
	rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, k->ropts);
	rocksdb_iter_seek_to_first(it);
	bool empty = !rocksdb_iter_valid(it);
	rc = iter_status(k, it);
	rocksdb_iter_destroy(it);
	if (rc) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot read %s: %s", dir, k->errmsg);
		return rc;
	}
	if (!empty) {
		if (errbuf)
			snprintf(errbuf, errlen,
			         "%s was written by an older chat-keyserver (key store format 1) and is "
			         "not converted: move it away and start with an empty directory; "
			         "clients then upload their keys again (docs/KEYSERVER.md)",
			         dir);
		return CHAT_ECORRUPT;
	}
	const char fmt = STORE_FORMAT;
	char *err = NULL;
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	rocksdb_put(k->db, wo, format_key, sizeof(format_key), &fmt, 1, &err);
	rocksdb_writeoptions_destroy(wo);
	if (err) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot write %s: %s", dir, err);
		rocksdb_free(err);
		return CHAT_EIO;
	}
	return CHAT_OK;
}

/* ---- the key directory log (keylog.h, docs/KEYSERVER.md) ----
 *
 *   'L' idx(8)          → leaf idx: ts(8, BE) | ik(32) | ul(1) | U | D
 *   'N' level(1) idx(8) → the hash of the complete subtree of 2^level leaves
 *                         starting at leaf idx·2^level (level 0: leaf hashes)
 *   'H' size(8)         → signed head of the tree of size leaves: ts(8, BE) |
 *                         root(32) | sig(64)
 *   'M'                 → the log's size (8, BE)
 *   'X' U 0 D           → the device's current leaf: idx(8, BE) | ts(8, BE)
 *   'I' U 0 D 0 idx(8)  → (empty) the device's leaves, for its history
 * An append writes the leaf, the complete subtrees it closes (one read of a
 * left sibling per level), a new signed head and the rest in the same batch
 * as the device record it logs. Any subtree hash is then at most
 * 2·log2(n) point reads of 'N' records, so proofs never rehash the tree. */

#define LOG_LEAF_FIXED (8 + KS_KEY_LEN + 1)
#define HEAD_REC_LEN (8 + KL_HASH + KL_SIG)
static const char meta_key[1] = { 'M' };

static size_t key_node(uint8_t *k, unsigned level, uint64_t idx)
{
	k[0] = 'N';
	k[1] = (uint8_t)level;
	ks_be64_put(k + 2, idx);
	return 10;
}

static size_t key_idx(uint8_t *k, char tag, uint64_t idx)
{
	k[0] = (uint8_t)tag;
	ks_be64_put(k + 1, idx);
	return 9;
}

static size_t key_devlog(uint8_t *k, const char *u, size_t ul, const char *d, size_t dl)
{
	k[0] = 'X';
	size_t n = key_append(k, 1, u, ul);
	k[n++] = 0;
	return key_append(k, n, d, dl);
}

static size_t key_devhist(uint8_t *k, const char *u, size_t ul, const char *d, size_t dl)
{
	size_t n = key_devlog(k, u, ul, d, dl);
	k[0] = 'I';
	k[n++] = 0;
	return n;
}

/* A node written by the append being staged (not yet in the store). */
typedef struct mth_ctx {
	ks *k;
	bool has_pending;
	unsigned plevel;
	uint64_t pidx;
	uint8_t phash[KL_HASH];
} mth_ctx;

static int node_get(mth_ctx *c, unsigned level, uint64_t idx, uint8_t out[KL_HASH])
{
	if (c->has_pending && level == c->plevel && idx == c->pidx) {
		memcpy(out, c->phash, KL_HASH);
		return CHAT_OK;
	}
	struct node_cache *nc = c->k->nodes;
	struct node_slot *s = nc ? node_slot(nc, level, idx) : NULL;
	if (s && s->valid && s->level == level && s->idx == idx) {
		nc->hits++;
		memcpy(out, s->hash, KL_HASH);
		return CHAT_OK;
	}
	uint8_t key[10];
	char *v;
	size_t vlen;
	int rc = db_get(c->k, key, key_node(key, level, idx), &v, &vlen);
	if (rc == CHAT_ENOTFOUND)
		return set_err(c->k, CHAT_ECORRUPT, "a log node is missing", NULL);
	if (rc)
		return rc;
	if (vlen != KL_HASH) {
		rc = set_err(c->k, CHAT_ECORRUPT, "corrupt log node", NULL);
	} else {
		memcpy(out, v, KL_HASH);
		if (s) {
			nc->misses++;
			s->idx = idx, s->level = (uint8_t)level, s->valid = 1;
			memcpy(s->hash, v, KL_HASH);
		}
	}
	rocksdb_free(v);
	return rc;
}

void ks_log_cache_stats(const ks *k, uint64_t *hits, uint64_t *misses)
{
	*hits = k->nodes ? k->nodes->hits : 0;
	*misses = k->nodes ? k->nodes->misses : 0;
}

/* MTH(D[lo:hi]) from stored complete subtrees (kl_mth_fn). */
static int store_mth(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[KL_HASH])
{
	uint64_t n = hi - lo;
	if (n == 0)
		return CHAT_EINVAL;
	if ((n & (n - 1)) == 0 && lo % n == 0) {
		unsigned level = 0;
		while ((UINT64_C(1) << level) < n)
			level++;
		return node_get(ctx, level, lo >> level, out);
	}
	uint64_t k = kl_split(n);
	uint8_t l[KL_HASH], r[KL_HASH];
	int rc = store_mth(ctx, lo, lo + k, l);
	if (rc == CHAT_OK)
		rc = store_mth(ctx, lo + k, hi, r);
	if (rc == CHAT_OK)
		kl_node_hash(out, l, r);
	return rc;
}

static void head_encode(uint8_t out[HEAD_REC_LEN], const kl_head *h)
{
	ks_be64_put(out, h->ts);
	memcpy(out + 8, h->root, KL_HASH);
	memcpy(out + 8 + KL_HASH, h->sig, KL_SIG);
}

/* The stored head of the tree of size leaves. */
static int head_load(ks *k, uint64_t size, kl_head *h)
{
	uint8_t key[9];
	char *v;
	size_t vlen;
	int rc = db_get(k, key, key_idx(key, 'H', size), &v, &vlen);
	if (rc == CHAT_ENOTFOUND)
		return set_err(k, CHAT_ECORRUPT, "a signed log head is missing", NULL);
	if (rc)
		return rc;
	if (vlen != HEAD_REC_LEN) {
		rocksdb_free(v);
		return set_err(k, CHAT_ECORRUPT, "corrupt log head record", NULL);
	}
	h->size = size;
	h->ts = ks_be64_get((const uint8_t *)v);
	memcpy(h->root, v + 8, KL_HASH);
	memcpy(h->sig, v + 8 + KL_HASH, KL_SIG);
	rocksdb_free(v);
	return CHAT_OK;
}

int ks_log_head_at(ks *k, uint64_t size, kl_head *h)
{
	if (k->js)
		return ksjs_log_head_at(k->js, size, h);
	if (size == 0 || size > k->head.size)
		return CHAT_ENOTFOUND;
	if (size == k->head.size) {
		*h = k->head;
		return CHAT_OK;
	}
	return head_load(k, size, h);
}

/* Stages the append of (u, d, ik) into k->batch; *h is the head to adopt
 * once the batch is written. */
static int log_stage(ks *k, const char *u, size_t ul, const char *d, size_t dl,
                     const uint8_t ik[KS_KEY_LEN], kl_head *h)
{
	uint64_t idx = k->head.size, ts = now_ms(k);
	if (idx >= KL_SIZE_MAX)
		return set_err(k, CHAT_EIO, "the key directory log is full", NULL);
	uint8_t leaf[LOG_LEAF_FIXED + CHAT_USER_MAX + CHAT_DEVICE_MAX], key[KEY_MAX];
	ks_be64_put(leaf, ts);
	memcpy(leaf + 8, ik, KS_KEY_LEN);
	leaf[8 + KS_KEY_LEN] = (uint8_t)ul;
	memcpy(leaf + LOG_LEAF_FIXED, u, ul);
	memcpy(leaf + LOG_LEAF_FIXED + ul, d, dl);
	rocksdb_writebatch_put(k->batch, (const char *)key, key_idx(key, 'L', idx),
	                       (const char *)leaf, LOG_LEAF_FIXED + ul + dl);

	mth_ctx c = { .k = k };
	uint8_t cur[KL_HASH];
	kl_entry_hash(cur, ik, ts, u, ul, d, dl);
	unsigned level = 0;
	uint64_t i = idx;
	for (;;) {
		rocksdb_writebatch_put(k->batch, (const char *)key, key_node(key, level, i),
		                       (const char *)cur, KL_HASH);
		if (!(i & 1))
			break;
		uint8_t left[KL_HASH];
		int rc = node_get(&c, level, i - 1, left);
		if (rc)
			return rc;
		kl_node_hash(cur, left, cur);
		i >>= 1, level++;
	}
	c.has_pending = true, c.plevel = level, c.pidx = i;
	memcpy(c.phash, cur, KL_HASH);
	h->size = idx + 1;
	h->ts = ts;
	int rc = store_mth(&c, 0, h->size, h->root);
	if (rc)
		return rc;
	kl_head_sign(h, k->log_sk);
	uint8_t hv[HEAD_REC_LEN], sz[16];
	head_encode(hv, h);
	rocksdb_writebatch_put(k->batch, (const char *)key, key_idx(key, 'H', h->size),
	                       (const char *)hv, sizeof hv);
	ks_be64_put(sz, h->size);
	rocksdb_writebatch_put(k->batch, meta_key, sizeof meta_key, (const char *)sz, 8);
	ks_be64_put(sz, idx);
	ks_be64_put(sz + 8, ts);
	rocksdb_writebatch_put(k->batch, (const char *)key, key_devlog(key, u, ul, d, dl),
	                       (const char *)sz, 16);
	size_t hl = key_devhist(key, u, ul, d, dl);
	ks_be64_put(key + hl, idx);
	rocksdb_writebatch_put(k->batch, (const char *)key, hl + 8, "", 0);
	return CHAT_OK;
}

int ks_log_get(ks *k, uint64_t index, ks_log_entry *e)
{
	if (k->js)
		return ksjs_log_get(k->js, index, e);
	uint8_t key[9];
	char *v;
	size_t vlen;
	if (index >= k->head.size)
		return CHAT_ENOTFOUND;
	int rc = db_get(k, key, key_idx(key, 'L', index), &v, &vlen);
	if (rc == CHAT_ENOTFOUND)
		return set_err(k, CHAT_ECORRUPT, "a log leaf is missing", NULL);
	if (rc)
		return rc;
	const uint8_t *p = (const uint8_t *)v;
	size_t ul = vlen >= LOG_LEAF_FIXED ? p[8 + KS_KEY_LEN] : 0;
	size_t dl = vlen >= LOG_LEAF_FIXED + ul ? vlen - LOG_LEAF_FIXED - ul : 0;
	if (vlen < LOG_LEAF_FIXED || !chat_valid_user(v + LOG_LEAF_FIXED, ul) ||
	    !chat_valid_device(v + LOG_LEAF_FIXED + ul, dl)) {
		rocksdb_free(v);
		return set_err(k, CHAT_ECORRUPT, "corrupt log leaf", NULL);
	}
	e->index = index;
	e->ts = ks_be64_get(p);
	memcpy(e->ik, p + 8, KS_KEY_LEN);
	memcpy(e->user, v + LOG_LEAF_FIXED, ul);
	e->user[ul] = 0;
	memcpy(e->device, v + LOG_LEAF_FIXED + ul, dl);
	e->device[dl] = 0;
	rocksdb_free(v);
	return CHAT_OK;
}

int ks_log_inclusion(ks *k, uint64_t index, uint64_t size, kl_hash *proof, size_t *n)
{
	if (k->js)
		return ksjs_log_inclusion(k->js, index, size, proof, n);
	mth_ctx c = { .k = k };
	if (size > k->head.size)
		return CHAT_EINVAL;
	return kl_inclusion_proof(store_mth, &c, index, size, proof, n);
}

int ks_log_consistency(ks *k, uint64_t from, uint64_t to, kl_hash *proof, size_t *n)
{
	if (k->js)
		return ksjs_log_consistency(k->js, from, to, proof, n);
	mth_ctx c = { .k = k };
	if (to > k->head.size)
		return CHAT_EINVAL;
	return kl_consistency_proof(store_mth, &c, from, to, proof, n);
}

const kl_head *ks_log_head(const ks *k)
{
	if (k->js)
		return ksjs_log_head(k->js);
	return &k->head;
}

const uint8_t *ks_log_pub(const ks *k)
{
	if (k->js)
		return ksjs_log_pub(k->js);
	return k->log_pk;
}

int ks_log_history(ks *k, const char *u, size_t ul, const char *d, size_t dl, uint64_t *idx,
                   size_t cap, size_t *n)
{
	if (k->js)
		return ksjs_log_history(k->js, u, ul, d, dl, idx, cap, n);
	uint8_t lo[KEY_MAX], hi[KEY_MAX];
	size_t plen = key_devhist(lo, u, ul, d, dl);
	memcpy(hi, lo, plen);
	hi[plen - 1] = 1;
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, plen);
	rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, ro);
	*n = 0;
	/* the newest cap entries, oldest first */
	for (rocksdb_iter_seek_for_prev(it, (const char *)hi, plen);
	     has_prefix(it, lo, plen) && *n < cap; rocksdb_iter_prev(it)) {
		size_t klen;
		const char *key = rocksdb_iter_key(it, &klen);
		if (klen == plen + 8)
			idx[(*n)++] = ks_be64_get((const uint8_t *)key + plen);
	}
	int rc = iter_status(k, it);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	for (size_t i = 0; i < *n / 2; i++) {
		uint64_t t = idx[i];
		idx[i] = idx[*n - 1 - i];
		idx[*n - 1 - i] = t;
	}
	return rc;
}

/* The device's current leaf (index, ts); CHAT_ENOTFOUND if never logged. */
static int devlog_get(ks *k, const char *u, size_t ul, const char *d, size_t dl, uint64_t *idx,
                      uint64_t *ts)
{
	uint8_t key[KEY_MAX];
	char *v;
	size_t vlen;
	int rc = db_get(k, key, key_devlog(key, u, ul, d, dl), &v, &vlen);
	if (rc)
		return rc;
	if (vlen != 16) {
		rocksdb_free(v);
		return set_err(k, CHAT_ECORRUPT, "corrupt device log record", NULL);
	}
	*idx = ks_be64_get((const uint8_t *)v);
	*ts = ks_be64_get((const uint8_t *)v + 8);
	rocksdb_free(v);
	return *idx < k->head.size ? CHAT_OK
	                           : set_err(k, CHAT_ECORRUPT, "device log record beyond the log", NULL);
}

/* Loads the signing key DIR/keylog.key, or makes one (0600). */
static int log_key_load(ks *k, const char *dir, char *errbuf, size_t errlen)
{
	size_t plen = strlen(dir) + sizeof "/keylog.key";
	k->key_path = malloc(plen);
	if (!k->key_path)
		return CHAT_ENOMEM;
	snprintf(k->key_path, plen, "%s/keylog.key", dir);
	int fd = open(k->key_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		crypto_sign_keypair(k->log_pk, k->log_sk);
		fd = open(k->key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		bool ok = fd >= 0 && write(fd, k->log_sk, KL_SEC) == KL_SEC && fsync(fd) == 0;
		if (fd >= 0)
			close(fd);
		if (!ok) {
			if (errbuf)
				snprintf(errbuf, errlen, "cannot write %s: %s", k->key_path, strerror(errno));
			return CHAT_EIO;
		}
		return CHAT_OK;
	}
	if (fd < 0) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot read %s: %s", k->key_path, strerror(errno));
		return CHAT_EIO;
	}
	ssize_t got = read(fd, k->log_sk, KL_SEC);
	uint8_t extra;
	bool more = read(fd, &extra, 1) > 0;
	close(fd);
	if (got != KL_SEC || more) {
		if (errbuf)
			snprintf(errbuf, errlen, "%s is not a %d-byte Ed25519 secret key", k->key_path,
			         KL_SEC);
		return CHAT_ECORRUPT;
	}
	crypto_sign_ed25519_sk_to_pk(k->log_pk, k->log_sk);
	return CHAT_OK;
}

/* DIR/keylog.pub: the public key as hex, for the operator to publish. */
static int log_pub_write(ks *k, const char *dir, char *errbuf, size_t errlen)
{
	char path[4096], hex[2 * KL_PUB + 2];
	snprintf(path, sizeof path, "%s/keylog.pub", dir);
	sodium_bin2hex(hex, sizeof hex, k->log_pk, KL_PUB);
	strcat(hex, "\n");
	FILE *f = fopen(path, "w");
	bool ok = f && fputs(hex, f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok && errbuf)
		snprintf(errbuf, errlen, "cannot write %s: %s", path, strerror(errno));
	return ok ? CHAT_OK : CHAT_EIO;
}

#ifdef KS_LYING
/* The lying key server of the tests only (tests/integration/CMakeLists.txt
 * builds it as chat-keyserver-lying; chat-keyserver has no such code):
 * rewrites history. Leaf 0 gets the attacker's identity key and every node
 * and head from there on is recomputed and signed again, so the new log is
 * internally consistent but forks from every head published before. */
int ks_test_fork(ks *k, const uint8_t fake_ik[KS_KEY_LEN])
{
	if (k->js)
		return CHAT_EINVAL;
	uint64_t n = k->head.size;
	ks_log_entry *all = calloc(n ? n : 1, sizeof *all);
	if (!all)
		return CHAT_ENOMEM;
	int rc = CHAT_OK;
	for (uint64_t i = 0; i < n && rc == CHAT_OK; i++)
		rc = ks_log_get(k, i, &all[i]);
	if (rc == CHAT_OK && n)
		memcpy(all[0].ik, fake_ik, KS_KEY_LEN);
	k->head.size = 0;
	for (uint64_t i = 0; i < n && rc == CHAT_OK; i++) {
		kl_head h;
		rocksdb_writebatch_clear(k->batch);
		rc = log_stage(k, all[i].user, strlen(all[i].user), all[i].device,
		               strlen(all[i].device), all[i].ik, &h);
		if (rc == CHAT_OK && (rc = db_write(k)) == CHAT_OK)
			k->head = h;
	}
	free(all);
	return rc;
}
#endif

/* Reads the log's size and head; a store without one (it predates the log)
 * logs every device's current identity key now, one append per device. */
static int log_open(ks *k, const char *dir, char *errbuf, size_t errlen)
{
	int rc = log_key_load(k, dir, errbuf, errlen);
	if (rc == CHAT_OK)
		rc = log_pub_write(k, dir, errbuf, errlen);
	if (rc)
		return rc;
	char *v;
	size_t vlen;
	rc = db_get(k, (const uint8_t *)meta_key, sizeof meta_key, &v, &vlen);
	if (rc == CHAT_OK) {
		uint64_t size = vlen == 8 ? ks_be64_get((const uint8_t *)v) : UINT64_MAX;
		rocksdb_free(v);
		if (size > KL_SIZE_MAX) {
			rc = set_err(k, CHAT_ECORRUPT, "corrupt log size record", NULL);
		} else if (size > 0) {
			rc = head_load(k, size, &k->head);
			if (rc)
				k->head.size = 0;
			else if (!kl_head_verify(&k->head, k->log_pk))
				rc = set_err(k, CHAT_ECORRUPT,
				             "the log's head is not signed by keylog.key (was the key "
				             "replaced?)", NULL);
		}
	} else if (rc == CHAT_ENOTFOUND) {
		/* Backfill: every device record, in key order. */
		rc = CHAT_OK;
		uint8_t pre[1] = { 'D' }, hi[1] = { 'D' + 1 };
		rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
		rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 1);
		rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, ro);
		for (rocksdb_iter_seek(it, (const char *)pre, 1); rc == CHAT_OK && has_prefix(it, pre, 1);
		     rocksdb_iter_next(it)) {
			size_t klen, vl;
			const char *key = rocksdb_iter_key(it, &klen);
			const char *val = rocksdb_iter_value(it, &vl);
			const char *z = memchr(key + 1, 0, klen - 1);
			dev_rec rec;
			if (!z || (rc = dev_decode(k, val, vl, &rec)) != CHAT_OK) {
				rc = rc ? rc : set_err(k, CHAT_ECORRUPT, "corrupt device record key", NULL);
				break;
			}
			kl_head h;
			rocksdb_writebatch_clear(k->batch);
			rc = log_stage(k, key + 1, (size_t)(z - key - 1), z + 1, klen - (size_t)(z - key) - 1,
			               rec.ik, &h);
			if (rc == CHAT_OK && (rc = db_write(k)) == CHAT_OK)
				k->head = h;
		}
		if (rc == CHAT_OK)
			rc = iter_status(k, it);
		rocksdb_iter_destroy(it);
		rocksdb_readoptions_destroy(ro);
		if (rc == CHAT_OK && k->head.size == 0) {
			uint8_t sz[8] = { 0 };
			char *err = NULL;
			rocksdb_put(k->db, k->wopts, meta_key, sizeof meta_key, (const char *)sz, 8, &err);
			if (err)
				rc = set_err(k, CHAT_EIO, "write failed", err);
		}
	}
	if (rc && errbuf)
		snprintf(errbuf, errlen, "cannot open the key directory log in %s: %s", dir,
		         k->errmsg[0] ? k->errmsg : "out of memory");
	return rc;
}

/* ---- open / close ---- */

void ks_opts_default(ks_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->pool_cap = KS_DEFAULT_POOL_CAP;
	o->low_threshold = KS_DEFAULT_LOW_THRESHOLD;
	o->rate_burst = KS_DEFAULT_RATE_BURST;
	o->rate_refill_s = KS_DEFAULT_RATE_REFILL_S;
}

/* Bounds that keep burst · refill in milliseconds far from overflow. */
#define KS_RATE_BURST_MAX 1000000u
#define KS_RATE_REFILL_MAX (30u * 24 * 3600)

int ks_open(ks **out, const ks_opts *o, char *errbuf, size_t errlen)
{
	*out = NULL;
	const char *why = NULL;
	if ((!o->dir || !*o->dir) && !o->cluster_urls)
		why = "no data directory";
	else if (o->cluster_urls && !*o->cluster_urls)
		why = "no NATS URL";
	else if (o->pool_cap == 0)
		why = "pool cap must be at least 1";
	else if (o->rate_burst == 0 || o->rate_burst > KS_RATE_BURST_MAX)
		why = "rate burst must be 1..1000000";
	else if (o->rate_refill_s > KS_RATE_REFILL_MAX)
		why = "rate refill must be at most 30 days";
	if (why) {
		if (errbuf)
			snprintf(errbuf, errlen, "%s", why);
		return CHAT_EINVAL;
	}
	if (sodium_init() < 0) {
		if (errbuf)
			snprintf(errbuf, errlen, "libsodium failed to initialise");
		return CHAT_EIO;
	}
	ks *k = calloc(1, sizeof(*k));
	if (!k)
		return CHAT_ENOMEM;
	if (o->cluster_urls) {
		int rc = ksjs_open(&k->js, o, errbuf, errlen);
		if (rc) {
			free(k);
			return rc;
		}
		k->cfg = *o;
		*out = k;
		return CHAT_OK;
	}
	k->nodes = calloc(1, sizeof(*k->nodes)); /* without it (no memory): every node is read */
	k->cfg = *o;
	k->cfg.dir = NULL; /* not kept: the caller owns the string */
	k->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(k->opts, 1);
	/* Requests run one at a time, so one thread writes and RocksDB takes
	 * insert hints: uploads append to a pool and bundles pop from its front
	 * ('O' U \0 D \0 id). In-place updates of the device and rate records
	 * measured worse: every new one-time key then pays a lookup first
	 * (docs/BENCHMARKS.md, keys). */
	k->hints = chat_rocks_insert_hints(k->opts) == 0;
	k->ropts = rocksdb_readoptions_create();
	k->wopts = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(k->wopts, o->sync_writes);
	k->batch = rocksdb_writebatch_create();
	chat_rocks_perf_off(); /* this thread serves the requests */
	char *err = NULL;
	k->db = rocksdb_open(k->opts, o->dir, &err);
	if (err) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot open %s: %s", o->dir, err);
		rocksdb_free(err);
		ks_close(k);
		return CHAT_EIO;
	}
	int rc = format_check(k, o->dir, errbuf, errlen);
	if (rc == CHAT_OK)
		rc = log_open(k, o->dir, errbuf, errlen);
	if (rc) {
		ks_close(k);
		return rc;
	}
	*out = k;
	return CHAT_OK;
}

uint64_t ks_keys_estimate(ks *k)
{
	if (k->js)
		return ksjs_keys_estimate(k->js);
	uint64_t v = 0;
	return rocksdb_property_int(k->db, "rocksdb.estimate-num-keys", &v) == 0 ? v : 0;
}

int ks_checkpoint(ks *k, const char *dir, char *errbuf, size_t errlen)
{
	if (k->js)
		{
		if (errbuf)
			snprintf(errbuf, errlen, "cluster mode: the keys live in JetStream, back up its streams (docs/KEYSERVER.md)");
		return CHAT_EINVAL;
	}
	int rc = chat_rocks_checkpoint(k->db, dir, errbuf, errlen);
	if (rc)
		return rc;
	/* The log's signing key goes with it: a restored key server must go on
	 * signing heads that verify under the published key. */
	char path[4096];
	snprintf(path, sizeof path, "%s/keylog.key", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, k->log_sk, KL_SEC) == KL_SEC && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot write %s: %s", path, strerror(errno));
		return CHAT_EIO;
	}
	return CHAT_OK;
}

void ks_close(ks *k)
{
	if (!k)
		return;
	if (k->js) {
		ksjs_close(k->js);
		free(k);
		return;
	}
	if (k->db)
		rocksdb_close(k->db);
	rocksdb_writebatch_destroy(k->batch);
	rocksdb_writeoptions_destroy(k->wopts);
	rocksdb_readoptions_destroy(k->ropts);
	rocksdb_options_destroy(k->opts);
	sodium_memzero(k->log_sk, sizeof k->log_sk);
	free(k->key_path);
	free(k->nodes);
	free(k);
}

bool ks_insert_hints(const ks *k)
{
	if (k->js)
		return true;
	return k->hints;
}

const char *ks_errmsg(const ks *k)
{
	if (k->js)
		return ksjs_errmsg(k->js);
	return k->errmsg;
}

int ks_sync(ks *k)
{
	return k->js ? ksjs_sync(k->js) : CHAT_OK;
}

bool ks_clustered(const ks *k)
{
	return k->js != NULL;
}

uint32_t ks_low_threshold(const ks *k)
{
	return k->cfg.low_threshold;
}

/* ---- upload ---- */

static bool spk_verify(const uint8_t ik[KS_KEY_LEN], const ks_spk *spk)
{
	return crypto_sign_verify_detached(spk->sig, spk->key, KS_KEY_LEN, ik) == 0;
}

/* CHAT_EEXIST when an id repeats within the upload or (unless the pool is
 * being dropped) is already in the pool. */
static int opks_check_new(ks *k, const char *u, size_t ul, const char *d, size_t dl,
                          const ks_opk *opks, size_t n, bool pool_dropped)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (opks[i].id == opks[j].id)
				return CHAT_EEXIST;
	if (pool_dropped)
		return CHAT_OK;
	uint8_t key[KEY_MAX];
	size_t plen = key_opk_prefix(key, u, ul, d, dl);
	for (size_t i = 0; i < n; i++) {
		ks_be64_put(key + plen, opks[i].id);
		char *v;
		size_t vlen;
		int rc = db_get(k, key, plen + 8, &v, &vlen);
		if (rc == CHAT_OK) {
			rocksdb_free(v);
			return CHAT_EEXIST;
		}
		if (rc != CHAT_ENOTFOUND)
			return rc;
	}
	return CHAT_OK;
}

int ks_upload(ks *k, const char *u, size_t ul, const char *d, size_t dl,
              const uint8_t ik[KS_KEY_LEN], const ks_spk *spk, const ks_opk *opks, size_t n,
              uint32_t *count)
{
	/* the request's checks, for both backends */
	if (n > KS_MAX_UPLOAD_OPKS)
		return CHAT_ETOOBIG;
	if (!spk_verify(ik, spk))
		return CHAT_EDENIED;
	if (k->js)
		return ksjs_upload(k->js, u, ul, d, dl, ik, spk, opks, n, count);

	dev_rec rec;
	int rc = dev_load(k, u, ul, d, dl, &rec);
	bool rereg = false, fresh = false;
	if (rc == CHAT_ENOTFOUND) {
		fresh = true;
		rec.count = 0;
	} else if (rc) {
		return rc;
	} else if (sodium_memcmp(rec.ik, ik, KS_KEY_LEN) != 0) {
		rereg = true;
		rec.count = 0;
	}
	rc = opks_check_new(k, u, ul, d, dl, opks, n, rereg);
	if (rc)
		return rc;
	if ((uint64_t)rec.count + n > k->cfg.pool_cap)
		return CHAT_EQUOTA;

	uint8_t key[KEY_MAX];
	size_t plen = key_opk_prefix(key, u, ul, d, dl);
	rocksdb_writebatch_clear(k->batch);
	if (rereg)
		rc = batch_delete_opks(k, key, plen);
	else if (fresh)
		rc = batch_dev_list_update(k, u, ul, d, dl, true);
	if (rc) {
		rocksdb_writebatch_clear(k->batch);
		return rc;
	}
	/* next stays a lower bound of the pool's ids: the lowest new id, or
	 * lower if the pool already held lower ones. */
	if (fresh || rereg)
		rec.next = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		ks_be64_put(key + plen, opks[i].id);
		rocksdb_writebatch_put(k->batch, (const char *)key, plen + 8,
		                       (const char *)opks[i].key, KS_KEY_LEN);
		if (opks[i].id < rec.next)
			rec.next = opks[i].id;
	}
	memcpy(rec.ik, ik, KS_KEY_LEN);
	rec.spk = *spk;
	rec.count += (uint32_t)n;
	batch_put_dev(k, u, ul, d, dl, &rec);
	/* A new identity key (first upload or re-registration) is a publication:
	 * logged in the same batch, so no key is served that is not logged. So
	 * is a key whose device has no current leaf, or another key in it (a
	 * store written meanwhile by a key server without the log). */
	kl_head h;
	bool logged = fresh || rereg;
	if (!logged) {
		uint64_t li, lts;
		ks_log_entry le;
		rc = devlog_get(k, u, ul, d, dl, &li, &lts);
		if (rc == CHAT_ENOTFOUND)
			logged = true, rc = CHAT_OK;
		else if (rc == CHAT_OK && (rc = ks_log_get(k, li, &le)) == CHAT_OK)
			logged = sodium_memcmp(le.ik, ik, KS_KEY_LEN) != 0;
		if (rc) {
			rocksdb_writebatch_clear(k->batch);
			return rc;
		}
	}
	if (logged && (rc = log_stage(k, u, ul, d, dl, ik, &h)) != CHAT_OK) {
		rocksdb_writebatch_clear(k->batch);
		return rc;
	}
	rc = db_write(k);
	if (rc == CHAT_OK && logged)
		k->head = h;
	if (rc == CHAT_OK && count)
		*count = rec.count;
	return rc;
}

/* ---- rate limit ---- */

/* Charges one token to the bucket under key into the batch, or returns
 * CHAT_EDENIED with *retry_after_s. Any failure to read the state refuses. */
static int rate_charge(ks *k, const uint8_t *key, size_t klen, uint64_t *retry_after_s)
{
	uint64_t t = (uint64_t)k->cfg.rate_refill_s * 1000;
	uint64_t window = (uint64_t)k->cfg.rate_burst * t;
	uint64_t now = now_ms(k), tat = now;
	char *v;
	size_t vlen;
	int rc = db_get(k, key, klen, &v, &vlen);
	if (rc == CHAT_OK) {
		if (vlen != RATE_REC_LEN || (uint8_t)v[0] != RATE_VERSION) {
			rocksdb_free(v);
			return set_err(k, CHAT_ECORRUPT, "corrupt rate-limit record", NULL);
		}
		tat = ks_be64_get((const uint8_t *)v + 1);
		rocksdb_free(v);
	} else if (rc != CHAT_ENOTFOUND) {
		return rc;
	}
	if (tat < now)
		tat = now;
	if (tat - now > window) /* the clock went back: an empty bucket, not a ban */
		tat = now + window;
	uint64_t next = tat + t;
	if (next - now > window) {
		uint64_t wait_ms = next - now - window;
		*retry_after_s = (wait_ms + 999) / 1000;
		return CHAT_EDENIED;
	}
	uint8_t val[RATE_REC_LEN];
	val[0] = RATE_VERSION;
	ks_be64_put(val + 1, next);
	rocksdb_writebatch_put(k->batch, (const char *)key, klen, (const char *)val, sizeof(val));
	return CHAT_OK;
}

/* ---- bundle ---- */

void ks_bundle_init(ks_bundle *b)
{
	memset(b, 0, sizeof(*b));
}

void ks_bundle_free(ks_bundle *b)
{
	free(b->v);
	ks_bundle_init(b);
}

static void opk_take(ks *k, ks_entry *e, uint64_t id, const char *val, const char *key,
                     size_t klen)
{
	e->has_opk = true;
	e->opk.id = id;
	memcpy(e->opk.key, val, KS_KEY_LEN);
	rocksdb_writebatch_delete(k->batch, key, klen);
}

/* Finds the device's lowest one-time key with id ≥ from (prefix, plen: the
 * device's range) and takes it into e. Nothing found leaves e alone. */
static int opk_seek(ks *k, const uint8_t *prefix, size_t plen, uint64_t from, ks_entry *e)
{
	uint8_t lo[KEY_MAX];
	memcpy(lo, prefix, plen);
	ks_be64_put(lo + plen, from);
	opk_iter oi;
	opk_iter_start(k, &oi, prefix, plen);
	rocksdb_iter_seek(oi.it, (const char *)lo, plen + 8);
	int rc = CHAT_OK;
	if (has_prefix(oi.it, prefix, plen)) {
		size_t klen, vlen;
		const char *key = rocksdb_iter_key(oi.it, &klen);
		const char *val = rocksdb_iter_value(oi.it, &vlen);
		if (klen != plen + 8 || vlen != KS_KEY_LEN)
			rc = set_err(k, CHAT_ECORRUPT, "corrupt one-time key record", NULL);
		else
			opk_take(k, e, ks_be64_get((const uint8_t *)key + plen), val, key, klen);
	}
	if (rc == CHAT_OK)
		rc = iter_status(k, oi.it);
	opk_iter_done(&oi);
	return rc;
}

/* Pops the device's lowest-id one-time key into e, batching its delete and
 * updating rec (count, next). The key at rec->next is the lowest whenever it
 * exists, so usually this is one point read; otherwise a seek from next,
 * which starts above every key popped so far. */
static int opk_pop(ks *k, const char *u, size_t ul, const char *d, size_t dl, dev_rec *rec,
                   ks_entry *e)
{
	uint8_t key[KEY_MAX];
	size_t plen = key_opk_prefix(key, u, ul, d, dl);
	ks_be64_put(key + plen, rec->next);
	char *v;
	size_t vlen;
	int rc = db_get(k, key, plen + 8, &v, &vlen);
	if (rc == CHAT_OK) {
		if (vlen == KS_KEY_LEN)
			opk_take(k, e, rec->next, v, (const char *)key, plen + 8);
		else
			rc = set_err(k, CHAT_ECORRUPT, "corrupt one-time key record", NULL);
		rocksdb_free(v);
	} else if (rc == CHAT_ENOTFOUND) {
		rc = opk_seek(k, key, plen, rec->next, e);
		/* count says there are keys but none is at or above next: next is
		 * wrong, so look at the whole range (never taken by a sound store). */
		if (rc == CHAT_OK && !e->has_opk && rec->next > 0)
			rc = opk_seek(k, key, plen, 0, e);
	}
	if (rc)
		return rc;
	if (e->has_opk) {
		rec->count--;
		rec->next = e->opk.id == UINT64_MAX ? UINT64_MAX : e->opk.id + 1;
	} else {
		rec->count = 0; /* a count without keys behind it heals to zero */
	}
	return CHAT_OK;
}

/* Adds one entry per device of u to b, popping their one-time keys. Point
 * reads only: the device list, then each device's record and key. */
static int bundle_collect(ks *k, const char *u, size_t ul, ks_bundle *b)
{
	char *v;
	size_t vlen;
	int rc = dev_list_load(k, u, ul, &v, &vlen);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc)
		return rc;
	for (size_t off = 1; off < vlen;) {
		size_t dl = (uint8_t)v[off];
		const char *d = v + off + 1;
		off += 1 + dl;
		dev_rec rec;
		rc = dev_load(k, u, ul, d, dl, &rec);
		if (rc == CHAT_ENOTFOUND)
			rc = set_err(k, CHAT_ECORRUPT, "device list names a device without a record",
			             NULL);
		if (rc)
			break;
		ks_entry *e = ks_bundle_add(b);
		if (!e) {
			rc = CHAT_ENOMEM;
			break;
		}
		memcpy(e->device, d, dl);
		e->device[dl] = 0;
		memcpy(e->ik, rec.ik, KS_KEY_LEN);
		e->spk = rec.spk;
		/* The proof before anything is popped: a log that cannot prove the
		 * key fails the bundle closed. */
		rc = devlog_get(k, u, ul, d, dl, &e->log_index, &e->log_ts);
		if (rc == CHAT_ENOTFOUND)
			rc = set_err(k, CHAT_ECORRUPT, "a device's identity key is not in the log", NULL);
		if (rc == CHAT_OK)
			rc = ks_log_inclusion(k, e->log_index, k->head.size, e->proof, &e->nproof);
		if (rc)
			break;
		if (rec.count > 0) {
			if ((rc = opk_pop(k, u, ul, d, dl, &rec, e)) != CHAT_OK)
				break;
			batch_put_dev(k, u, ul, d, dl, &rec);
		}
		e->left = rec.count;
	}
	rocksdb_free(v);
	return rc;
}

int ks_bundle_get(ks *k, const char *ru, size_t rul, const char *rd, size_t rdl,
                  const char *u, size_t ul, ks_bundle *b, uint64_t *retry_after_s)
{
	if (k->js)
		return ksjs_bundle_get(k->js, ru, rul, rd, rdl, u, ul, b, retry_after_s);
	uint8_t key[KEY_MAX];
	size_t klen = key_rate(key, ru, rul, rd, rdl, u, ul);
	b->n = 0;
	rocksdb_writebatch_clear(k->batch);
	int rc = rate_charge(k, key, klen, retry_after_s);
	if (rc == CHAT_OK)
		rc = bundle_collect(k, u, ul, b);
	if (rc == CHAT_OK)
		rc = db_write(k);
	if (rc) {
		/* Nothing was written, so nothing may be handed out. */
		rocksdb_writebatch_clear(k->batch);
		b->n = 0;
		return rc;
	}
	return b->n ? CHAT_OK : CHAT_ENOTFOUND;
}

/* ---- count, check, drop ---- */

int ks_count(ks *k, const char *u, size_t ul, const char *d, size_t dl, uint32_t *count)
{
	if (k->js)
		return ksjs_count(k->js, u, ul, d, dl, count);
	dev_rec rec;
	int rc = dev_load(k, u, ul, d, dl, &rec);
	*count = 0;
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc == CHAT_OK)
		*count = rec.count;
	return rc;
}

int ks_check(ks *k, const char *u, size_t ul, const char *d, size_t dl,
             const uint8_t digest[KS_DIGEST_LEN], bool *match)
{
	if (k->js)
		return ksjs_check(k->js, u, ul, d, dl, digest, match);
	dev_rec rec;
	*match = false;
	int rc = dev_load(k, u, ul, d, dl, &rec);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc)
		return rc;
	*match = ks_keys_match(rec.ik, rec.spk.key, digest);
	return CHAT_OK;
}

int ks_drop_device(ks *k, const char *u, size_t ul, const char *d, size_t dl)
{
	if (k->js)
		return ksjs_drop_device(k->js, u, ul, d, dl);
	uint8_t key[KEY_MAX];
	rocksdb_writebatch_clear(k->batch);
	size_t plen = key_opk_prefix(key, u, ul, d, dl);
	int rc = batch_delete_opks(k, key, plen);
	if (rc == CHAT_OK)
		rc = batch_dev_list_update(k, u, ul, d, dl, false);
	if (rc) {
		rocksdb_writebatch_clear(k->batch);
		return rc;
	}
	size_t klen = key_dev(key, u, ul, d, dl);
	rocksdb_writebatch_delete(k->batch, (const char *)key, klen);
	/* The log keeps its leaves (it is append-only); the device just has no
	 * current one until it uploads again. */
	klen = key_devlog(key, u, ul, d, dl);
	rocksdb_writebatch_delete(k->batch, (const char *)key, klen);
	return db_write(k);
}
