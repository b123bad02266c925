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

#include "err.h"
#include "rocks_util.h"

#include <rocksdb/c.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_FORMAT 2
#define DEV_VERSION 2
#define USERDEVS_VERSION 2
#define RATE_VERSION 1
#define DEV_REC_LEN (1 + KS_KEY_LEN + 8 + KS_KEY_LEN + KS_SIG_LEN + 4 + 8)
#define RATE_REC_LEN (1 + 8)
#define KEY_MAX (1 + CHAT_USER_MAX + 1 + CHAT_USER_MAX + 1 + CHAT_DEVICE_MAX + 8)
static const char format_key[1] = { 'F' };

struct ks {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	bool hints; /* RocksDB took the memtable insert hints */
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wopts;
	rocksdb_writebatch_t *batch;   /* reused by every request */
	ks_opts cfg;
	char errmsg[256];
};

typedef struct dev_rec {
	uint8_t ik[KS_KEY_LEN];
	ks_spk spk;
	uint32_t count;
	uint64_t next;              /* no one-time key with a lower id exists */
} dev_rec;

/* ---- small helpers ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

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
	put_be64(p, r->spk.id), p += 8;
	memcpy(p, r->spk.key, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(p, r->spk.sig, KS_SIG_LEN), p += KS_SIG_LEN;
	put_be32(p, r->count), p += 4;
	put_be64(p, r->next);
}

static int dev_decode(ks *k, const char *v, size_t vlen, dev_rec *r)
{
	const uint8_t *p = (const uint8_t *)v;
	if (vlen != DEV_REC_LEN || p[0] != DEV_VERSION)
		return set_err(k, CHAT_ECORRUPT, "corrupt device record", NULL);
	p++;
	memcpy(r->ik, p, KS_KEY_LEN), p += KS_KEY_LEN;
	r->spk.id = get_be64(p), p += 8;
	memcpy(r->spk.key, p, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(r->spk.sig, p, KS_SIG_LEN), p += KS_SIG_LEN;
	r->count = get_be32(p), p += 4;
	r->next = get_be64(p);
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
	if (!o->dir || !*o->dir)
		why = "no data directory";
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
	if (rc) {
		ks_close(k);
		return rc;
	}
	*out = k;
	return CHAT_OK;
}

uint64_t ks_keys_estimate(ks *k)
{
	uint64_t v = 0;
	return rocksdb_property_int(k->db, "rocksdb.estimate-num-keys", &v) == 0 ? v : 0;
}

int ks_checkpoint(ks *k, const char *dir, char *errbuf, size_t errlen)
{
	return chat_rocks_checkpoint(k->db, dir, errbuf, errlen);
}

void ks_close(ks *k)
{
	if (!k)
		return;
	if (k->db)
		rocksdb_close(k->db);
	rocksdb_writebatch_destroy(k->batch);
	rocksdb_writeoptions_destroy(k->wopts);
	rocksdb_readoptions_destroy(k->ropts);
	rocksdb_options_destroy(k->opts);
	free(k);
}

bool ks_insert_hints(const ks *k)
{
	return k->hints;
}

const char *ks_errmsg(const ks *k)
{
	return k->errmsg;
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
		put_be64(key + plen, opks[i].id);
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
	if (n > KS_MAX_UPLOAD_OPKS)
		return CHAT_ETOOBIG;
	if (!spk_verify(ik, spk))
		return CHAT_EDENIED;

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
		put_be64(key + plen, opks[i].id);
		rocksdb_writebatch_put(k->batch, (const char *)key, plen + 8,
		                       (const char *)opks[i].key, KS_KEY_LEN);
		if (opks[i].id < rec.next)
			rec.next = opks[i].id;
	}
	memcpy(rec.ik, ik, KS_KEY_LEN);
	rec.spk = *spk;
	rec.count += (uint32_t)n;
	batch_put_dev(k, u, ul, d, dl, &rec);
	rc = db_write(k);
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
		tat = get_be64((const uint8_t *)v + 1);
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
	put_be64(val + 1, next);
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

static ks_entry *bundle_add(ks_bundle *b)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4;
		ks_entry *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		b->v = v;
		b->cap = cap;
	}
	ks_entry *e = &b->v[b->n++];
	memset(e, 0, sizeof(*e));
	return e;
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
	put_be64(lo + plen, from);
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
			opk_take(k, e, get_be64((const uint8_t *)key + plen), val, key, klen);
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
	put_be64(key + plen, rec->next);
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
		ks_entry *e = bundle_add(b);
		if (!e) {
			rc = CHAT_ENOMEM;
			break;
		}
		memcpy(e->device, d, dl);
		e->device[dl] = 0;
		memcpy(e->ik, rec.ik, KS_KEY_LEN);
		e->spk = rec.spk;
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
	dev_rec rec;
	*match = false;
	int rc = dev_load(k, u, ul, d, dl, &rec);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc)
		return rc;
	uint8_t mine[KS_DIGEST_LEN];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, rec.ik, KS_KEY_LEN);
	crypto_hash_sha256_update(&st, rec.spk.key, KS_KEY_LEN);
	crypto_hash_sha256_final(&st, mine);
	*match = sodium_memcmp(mine, digest, KS_DIGEST_LEN) == 0;
	return CHAT_OK;
}

int ks_drop_device(ks *k, const char *u, size_t ul, const char *d, size_t dl)
{
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
	return db_write(k);
}
