/* keystore.c — pre-keys in RocksDB, and the rules of upload and bundle.
 *
 * Keyspace (one column family; ids never contain 0x00, so it separates):
 *   'D' U 0 D           → device record: ver(1)=1 | ik(32) | spk id(8, BE) |
 *                         spk key(32) | spk sig(64) | pool size(4, BE)
 *   'O' U 0 D 0 id(8)   → one-time pre-key (32 bytes); big-endian ids iterate
 *                         in order, so a bundle hands out the lowest id first
 *   'R' RU 0 RD 0 U     → rate state of (requesting device RU/RD, target U):
 *                         ver(1)=1 | tat(8, BE)
 * The pool size lives in the device record so count is one read and a pop
 * updates it in the same batch as the delete.
 *
 * The rate limiter is a token bucket written as GCRA: one timestamp per
 * bucket, the "theoretical arrival time" tat. A request is allowed when, after
 * charging one refill interval T, tat - now ≤ burst·T — exactly a bucket of
 * `burst` tokens refilled one per T, in 9 bytes of state.
 */
#include "keystore.h"

#include "err.h"

#include <rocksdb/c.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REC_VERSION 1
#define DEV_REC_LEN (1 + KS_KEY_LEN + 8 + KS_KEY_LEN + KS_SIG_LEN + 4)
#define RATE_REC_LEN (1 + 8)
#define KEY_MAX (1 + CHAT_USER_MAX + 1 + CHAT_USER_MAX + 1 + CHAT_DEVICE_MAX + 8)

struct ks {
	rocksdb_t *db;
	rocksdb_options_t *opts;
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
	*p++ = REC_VERSION;
	memcpy(p, r->ik, KS_KEY_LEN), p += KS_KEY_LEN;
	put_be64(p, r->spk.id), p += 8;
	memcpy(p, r->spk.key, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(p, r->spk.sig, KS_SIG_LEN), p += KS_SIG_LEN;
	put_be32(p, r->count);
}

static int dev_decode(ks *k, const char *v, size_t vlen, dev_rec *r)
{
	const uint8_t *p = (const uint8_t *)v;
	if (vlen != DEV_REC_LEN || p[0] != REC_VERSION)
		return set_err(k, CHAT_ECORRUPT, "corrupt device record", NULL);
	p++;
	memcpy(r->ik, p, KS_KEY_LEN), p += KS_KEY_LEN;
	r->spk.id = get_be64(p), p += 8;
	memcpy(r->spk.key, p, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(r->spk.sig, p, KS_SIG_LEN), p += KS_SIG_LEN;
	r->count = get_be32(p);
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

/* Adds deletes of every key under prefix to the batch. */
static int batch_delete_prefix(ks *k, const uint8_t *prefix, size_t plen)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, k->ropts);
	for (rocksdb_iter_seek(it, (const char *)prefix, plen); has_prefix(it, prefix, plen);
	     rocksdb_iter_next(it)) {
		size_t klen;
		const char *key = rocksdb_iter_key(it, &klen);
		rocksdb_writebatch_delete(k->batch, key, klen);
	}
	int rc = iter_status(k, it);
	rocksdb_iter_destroy(it);
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
	k->ropts = rocksdb_readoptions_create();
	k->wopts = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(k->wopts, o->sync_writes);
	k->batch = rocksdb_writebatch_create();
	char *err = NULL;
	k->db = rocksdb_open(k->opts, o->dir, &err);
	if (err) {
		if (errbuf)
			snprintf(errbuf, errlen, "cannot open %s: %s", o->dir, err);
		rocksdb_free(err);
		ks_close(k);
		return CHAT_EIO;
	}
	*out = k;
	return CHAT_OK;
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
	bool rereg = false;
	if (rc == CHAT_ENOTFOUND) {
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
	if (rereg && (rc = batch_delete_prefix(k, key, plen)) != CHAT_OK) {
		rocksdb_writebatch_clear(k->batch);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		put_be64(key + plen, opks[i].id);
		rocksdb_writebatch_put(k->batch, (const char *)key, plen + 8,
		                       (const char *)opks[i].key, KS_KEY_LEN);
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
		if (vlen != RATE_REC_LEN || (uint8_t)v[0] != REC_VERSION) {
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
	val[0] = REC_VERSION;
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

/* Pops the device's lowest-id one-time key into e (batching the delete). */
static int opk_pop(ks *k, const char *u, size_t ul, const char *d, size_t dl, ks_entry *e)
{
	uint8_t prefix[KEY_MAX];
	size_t plen = key_opk_prefix(prefix, u, ul, d, dl);
	rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, k->ropts);
	rocksdb_iter_seek(it, (const char *)prefix, plen);
	int rc = CHAT_OK;
	if (has_prefix(it, prefix, plen)) {
		size_t klen, vlen;
		const char *key = rocksdb_iter_key(it, &klen);
		const char *val = rocksdb_iter_value(it, &vlen);
		if (klen != plen + 8 || vlen != KS_KEY_LEN) {
			rc = set_err(k, CHAT_ECORRUPT, "corrupt one-time key record", NULL);
		} else {
			e->has_opk = true;
			e->opk.id = get_be64((const uint8_t *)key + plen);
			memcpy(e->opk.key, val, KS_KEY_LEN);
			rocksdb_writebatch_delete(k->batch, key, klen);
		}
	}
	if (rc == CHAT_OK)
		rc = iter_status(k, it);
	rocksdb_iter_destroy(it);
	return rc;
}

/* Adds one entry per device of u to b, popping their one-time keys. */
static int bundle_collect(ks *k, const char *u, size_t ul, ks_bundle *b)
{
	uint8_t prefix[KEY_MAX];
	size_t plen = key_user_devs(prefix, u, ul);
	rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, k->ropts);
	int rc = CHAT_OK;
	for (rocksdb_iter_seek(it, (const char *)prefix, plen);
	     rc == CHAT_OK && has_prefix(it, prefix, plen); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *key = rocksdb_iter_key(it, &klen);
		const char *val = rocksdb_iter_value(it, &vlen);
		const char *d = key + plen;
		size_t dl = klen - plen;
		dev_rec rec;
		if (!chat_valid_device(d, dl)) {
			rc = set_err(k, CHAT_ECORRUPT, "corrupt device key", NULL);
			break;
		}
		if ((rc = dev_decode(k, val, vlen, &rec)) != CHAT_OK)
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
			if ((rc = opk_pop(k, u, ul, d, dl, e)) != CHAT_OK)
				break;
			/* A count without keys behind it heals to zero. */
			rec.count = e->has_opk ? rec.count - 1 : 0;
			batch_put_dev(k, u, ul, d, dl, &rec);
		}
		e->left = rec.count;
	}
	if (rc == CHAT_OK)
		rc = iter_status(k, it);
	rocksdb_iter_destroy(it);
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
	int rc = batch_delete_prefix(k, key, plen);
	if (rc) {
		rocksdb_writebatch_clear(k->batch);
		return rc;
	}
	size_t klen = key_dev(key, u, ul, d, dl);
	rocksdb_writebatch_delete(k->batch, (const char *)key, klen);
	return db_write(k);
}
