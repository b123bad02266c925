// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_keystore.c — the key server's rules, through keystore.h and the
 * request codec, with real keys made by libsodium. The clock is a variable so
 * rate-limit refill is tested without sleeping. */
#include "err.h"
#include "keystore.h"

#include <check.h>
#include <rocksdb/c.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fake_now = 1700000000000ull;
static uint64_t clock_fn(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static char dir[512];
static ks *k;
static ks_opts opts;

#define S(x) x, strlen(x)

static void setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ks-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ks_opts_default(&opts);
	opts.dir = dir;
	opts.now_ms = clock_fn;
	fake_now = 1700000000000ull;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
}

static void teardown(void)
{
	ks_close(k);
	k = NULL;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void reopen(void)
{
	ks_close(k);
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
}

/* ---- keys ---- */

typedef struct dev_keys {
	uint8_t ik_pk[crypto_sign_PUBLICKEYBYTES], ik_sk[crypto_sign_SECRETKEYBYTES];
	ks_spk spk;
	uint8_t spk_sk[32];
} dev_keys;

static void make_keys(dev_keys *dk, uint64_t spk_id)
{
	crypto_sign_keypair(dk->ik_pk, dk->ik_sk);
	dk->spk.id = spk_id;
	crypto_box_keypair(dk->spk.key, dk->spk_sk);
	crypto_sign_detached(dk->spk.sig, NULL, dk->spk.key, KS_KEY_LEN, dk->ik_sk);
}

static void make_opks(ks_opk *o, size_t n, uint64_t first_id)
{
	for (size_t i = 0; i < n; i++) {
		o[i].id = first_id + i;
		randombytes_buf(o[i].key, KS_KEY_LEN);
	}
}

static int upload(const char *u, const char *d, const dev_keys *dk, size_t n, uint64_t first_id,
                  uint32_t *count)
{
	ks_opk o[200];
	make_opks(o, n, first_id);
	return ks_upload(k, S(u), S(d), dk->ik_pk, &dk->spk, o, n, count);
}

static int bundle(const char *ru, const char *rd, const char *u, ks_bundle *b, uint64_t *retry)
{
	return ks_bundle_get(k, S(ru), S(rd), S(u), b, retry);
}

/* An upload that must succeed; the keys u/d then has. */
static uint32_t upload_ok(const char *u, const char *d, const dev_keys *dk, size_t n,
                          uint64_t first_id)
{
	uint32_t count = UINT32_MAX; /* not a count: the call must set it */
	ck_assert_int_eq(upload(u, d, dk, n, first_id, &count), CHAT_OK);
	return count;
}

/* The keys left for u/d (the count must read). */
static uint32_t key_count(const char *u, const char *d)
{
	uint32_t n = UINT32_MAX; /* not a count: the call must set it */
	ck_assert_int_eq(ks_count(k, S(u), S(d), &n), CHAT_OK);
	return n;
}

/* What a bundle request of ru/rd for u's keys returns (the bundle itself
 * is dropped). */
static int bundle_rc(const char *ru, const char *rd, const char *u)
{
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	int rc = bundle(ru, rd, u, &b, &retry);
	ks_bundle_free(&b);
	return rc;
}

/* ---- direct rules ---- */

START_TEST(upload_and_count)
{
	dev_keys dk;
	make_keys(&dk, 1);
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk, 5, 1), 5);
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk, 7, 100), 12);
	ck_assert_uint_eq(key_count("bob", "phone"), 12);
	ck_assert_uint_eq(key_count("bob", "laptop"), 0);
	ck_assert_uint_eq(key_count("nobody", "phone"), 0);
	/* Keys only, no one-time keys, is a valid upload. */
	ck_assert_uint_eq(upload_ok("carol", "phone", &dk, 0, 1), 0);
}
END_TEST

START_TEST(bad_signature_refused)
{
	dev_keys dk, other;
	uint32_t n;
	make_keys(&dk, 1);
	make_keys(&other, 1);
	dk.spk.sig[10] ^= 1;
	ck_assert_int_eq(upload("bob", "phone", &dk, 5, 1, &n), CHAT_EDENIED);
	dk.spk.sig[10] ^= 1;
	/* a signature by another identity key */
	memcpy(dk.spk.sig, other.spk.sig, KS_SIG_LEN);
	ck_assert_int_eq(upload("bob", "phone", &dk, 5, 1, &n), CHAT_EDENIED);
	/* a valid signature over another spk */
	make_keys(&dk, 1);
	memcpy(dk.spk.key, other.spk.key, KS_KEY_LEN);
	ck_assert_int_eq(upload("bob", "phone", &dk, 5, 1, &n), CHAT_EDENIED);
	ck_assert_uint_eq(key_count("bob", "phone"), 0);
	ck_assert_int_eq(bundle_rc("al", "d", "bob"), CHAT_ENOTFOUND);
}
END_TEST

START_TEST(upload_over_100_refused)
{
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	ck_assert_int_eq(upload("bob", "phone", &dk, 101, 1, &n), CHAT_ETOOBIG);
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk, 100, 1), 100);
}
END_TEST

START_TEST(pool_cap_refuses_whole_upload)
{
	ks_close(k);
	opts.pool_cap = 150;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	upload_ok("bob", "phone", &dk, 100, 1);
	ck_assert_int_eq(upload("bob", "phone", &dk, 51, 1000, &n), CHAT_EQUOTA);
	ck_assert_uint_eq(key_count("bob", "phone"), 100);
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk, 50, 1000), 150);
	ck_assert_int_eq(upload("bob", "phone", &dk, 1, 5000, &n), CHAT_EQUOTA);
	/* The refused upload did not replace the signed pre-key either. */
	dev_keys dk2 = dk;
	dk2.spk.id = 2;
	ck_assert_int_eq(ks_upload(k, S("bob"), S("phone"), dk2.ik_pk, &dk2.spk,
	                           &(ks_opk){ .id = 9999 }, 1, &n), CHAT_EQUOTA);
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("al", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_uint_eq(b.v[0].spk.id, 1);
	ks_bundle_free(&b);
	/* One popped: room for one. */
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk, 1, 5000), 150);
}
END_TEST

START_TEST(duplicate_opk_ids_refused)
{
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	ks_opk o[3];
	make_opks(o, 3, 7);
	o[2].id = 7;
	ck_assert_int_eq(ks_upload(k, S("bob"), S("phone"), dk.ik_pk, &dk.spk, o, 3, &n),
	                 CHAT_EEXIST);
	upload_ok("bob", "phone", &dk, 3, 7);
	ck_assert_int_eq(upload("bob", "phone", &dk, 3, 9, &n), CHAT_EEXIST);
	ck_assert_uint_eq(key_count("bob", "phone"), 3);
}
END_TEST

START_TEST(reregistration_drops_opks)
{
	dev_keys dk1, dk2;
	uint32_t n;
	make_keys(&dk1, 1);
	make_keys(&dk2, 1);
	upload_ok("bob", "phone", &dk1, 10, 1);
	/* Same ik: a refresh, the pool grows. */
	dk1.spk.id = 2;
	crypto_box_keypair(dk1.spk.key, dk1.spk_sk);
	crypto_sign_detached(dk1.spk.sig, NULL, dk1.spk.key, KS_KEY_LEN, dk1.ik_sk);
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk1, 2, 11), 12);
	/* Other device of the same user is not affected by bob/phone's reset. */
	upload_ok("bob", "tablet", &dk1, 4, 1);
	/* New ik: re-registration; old ids may be reused. */
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk2, 3, 1), 3);
	ck_assert_int_eq(ks_count(k, S("bob"), S("tablet"), &n), CHAT_OK);
	ck_assert_uint_eq(n, 4);

	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(ks_bundle_get(k, S("al"), S("d"), S("bob"), &b, &retry), CHAT_OK);
		ck_assert_uint_eq(b.n, 2);
		ck_assert_str_eq(b.v[0].device, "phone");
		ck_assert_int_eq(memcmp(b.v[0].ik, dk2.ik_pk, KS_KEY_LEN), 0);
		ck_assert(b.v[0].has_opk);
		ck_assert_uint_eq(b.v[0].opk.id, (uint64_t)i + 1);
	}
	ck_assert_int_eq(ks_bundle_get(k, S("al"), S("d2"), S("bob"), &b, &retry), CHAT_OK);
	ck_assert(!b.v[0].has_opk); /* the 12 old keys are gone */
	ks_bundle_free(&b);
}
END_TEST

START_TEST(bundle_contents_verify)
{
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 42);
	ks_opk o[2];
	make_opks(o, 2, 5);
	ck_assert_int_eq(ks_upload(k, S("bob"), S("phone"), dk.ik_pk, &dk.spk, o, 2, &n), CHAT_OK);
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_uint_eq(b.n, 1);
	ks_entry *e = &b.v[0];
	ck_assert_str_eq(e->device, "phone");
	ck_assert_int_eq(memcmp(e->ik, dk.ik_pk, 32), 0);
	ck_assert_uint_eq(e->spk.id, 42);
	ck_assert_int_eq(memcmp(e->spk.key, dk.spk.key, 32), 0);
	ck_assert_int_eq(crypto_sign_verify_detached(e->spk.sig, e->spk.key, 32, e->ik), 0);
	ck_assert(e->has_opk);
	ck_assert_uint_eq(e->opk.id, 5);
	ck_assert_int_eq(memcmp(e->opk.key, o[0].key, 32), 0);
	ck_assert_uint_eq(e->left, 1);
	ks_bundle_free(&b);
}
END_TEST

/* The core property: across many bundles, a close/reopen, and two devices,
 * every one-time key is handed out exactly once, then bundles go without. */
START_TEST(opk_handed_out_once_ever)
{
	ks_close(k);
	opts.rate_burst = 1000;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
	dev_keys d1, d2;
	uint32_t n;
	make_keys(&d1, 1);
	make_keys(&d2, 1);
	upload_ok("bob", "d1", &d1, 20, 1);
	ck_assert_int_eq(upload("bob", "d2", &d2, 15, 1, &n), CHAT_OK);

	bool seen1[21] = { 0 }, seen2[16] = { 0 };
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	for (int i = 0; i < 25; i++) {
		if (i == 7 || i == 16)
			reopen();
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
		ck_assert_uint_eq(b.n, 2);
		for (size_t j = 0; j < b.n; j++) {
			bool *seen = strcmp(b.v[j].device, "d1") == 0 ? seen1 : seen2;
			size_t max = seen == seen1 ? 20 : 15;
			if ((size_t)i < max) {
				ck_assert(b.v[j].has_opk);
				ck_assert_uint_le(b.v[j].opk.id, max);
				ck_assert_msg(!seen[b.v[j].opk.id], "opk %s/%llu handed out twice",
				              b.v[j].device, (unsigned long long)b.v[j].opk.id);
				seen[b.v[j].opk.id] = true;
				ck_assert_uint_eq(b.v[j].left, max - (size_t)i - 1);
			} else {
				ck_assert(!b.v[j].has_opk); /* exhausted: X3DH without the opk */
				ck_assert_uint_eq(b.v[j].left, 0);
			}
		}
	}
	for (int i = 1; i <= 20; i++)
		ck_assert(seen1[i]);
	for (int i = 1; i <= 15; i++)
		ck_assert(seen2[i]);
	reopen();
	ck_assert_uint_eq(key_count("bob", "d1"), 0);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert(!b.v[0].has_opk && !b.v[1].has_opk);
	ks_bundle_free(&b);
}
END_TEST

START_TEST(bundle_unknown_user)
{
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("alice", "d", "ghost", &b, &retry), CHAT_ENOTFOUND);
	/* "bo" must not see "bob"'s devices (prefix separation) */
	dev_keys dk;
	make_keys(&dk, 1);
	upload_ok("bob", "phone", &dk, 1, 1);
	ck_assert_int_eq(bundle("alice", "d", "bo", &b, &retry), CHAT_ENOTFOUND);
	ks_bundle_free(&b);
}
END_TEST

START_TEST(rate_limit_burst_refill_persist)
{
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	ck_assert_int_eq(upload("bob", "phone", &dk, 50, 1, &n), CHAT_OK);
	ks_bundle b;
	uint64_t retry = 0;
	ks_bundle_init(&b);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	ck_assert_uint_eq(retry, 600);
	ck_assert_uint_eq(b.n, 0);
	ck_assert_int_eq(ks_count(k, S("bob"), S("phone"), &n), CHAT_OK);
	ck_assert_uint_eq(n, 44); /* the refusal popped nothing */

	/* other buckets are separate: another device of alice, another target */
	ck_assert_int_eq(bundle("alice", "d2", "bob", &b, &retry), CHAT_OK);
	ck_assert_int_eq(bundle("alice", "d", "carol", &b, &retry), CHAT_ENOTFOUND);

	/* a restart does not reset the budget */
	reopen();
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	fake_now += 599 * 1000;
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	ck_assert_uint_eq(retry, 1);
	fake_now += 1000;
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK); /* one token earned */
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	ck_assert_uint_eq(retry, 600);
	/* a long quiet period refills to the burst, not beyond */
	fake_now += 100ull * 600 * 1000;
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	/* a clock that jumps back is an empty bucket, not a long ban */
	fake_now -= 24ull * 3600 * 1000;
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	ck_assert_uint_le(retry, 600);
	ks_bundle_free(&b);
}
END_TEST

START_TEST(rate_limit_configurable)
{
	ks_close(k);
	opts.rate_burst = 2;
	opts.rate_refill_s = 5;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
	dev_keys dk;
	make_keys(&dk, 1);
	upload_ok("bob", "phone", &dk, 0, 1);
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	ck_assert_uint_eq(retry, 5);
	fake_now += 2500;
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_EDENIED);
	ck_assert_uint_eq(retry, 3); /* 2.5 s rounds up */
	ks_bundle_free(&b);

	ks_close(k);
	opts.rate_burst = 0;
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_EINVAL);
	ck_assert_ptr_null(k);
	opts.rate_burst = 6;
	opts.pool_cap = 0;
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_EINVAL);
	opts.pool_cap = 1000;
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
}
END_TEST

/* Fail closed: a rate record that cannot be read refuses, and pops nothing. */
START_TEST(rate_limit_fails_closed)
{
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	ck_assert_int_eq(upload("bob", "phone", &dk, 5, 1, &n), CHAT_OK);
	ks_close(k);
	k = NULL;

	rocksdb_options_t *o = rocksdb_options_create();
	char *err = NULL;
	rocksdb_t *db = rocksdb_open(o, dir, &err);
	ck_assert_ptr_null(err);
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	const char key[] = "Ralice\0d\0bob"; /* 'R' RU 0 RD 0 U (keystore.c) */
	rocksdb_put(db, wo, key, sizeof(key) - 1, "\x01garbage!!!", 11, &err);
	ck_assert_ptr_null(err);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_close(db);
	rocksdb_options_destroy(o);

	char e[256];
	ck_assert_int_eq(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_ECORRUPT);
	ck_assert_uint_eq(b.n, 0);
	ck_assert_ptr_nonnull(strstr(ks_errmsg(k), "rate"));
	ck_assert_uint_eq(key_count("bob", "phone"), 5);
	/* other pairs still work */
	ck_assert_int_eq(bundle("alice", "d2", "bob", &b, &retry), CHAT_OK);
	ks_bundle_free(&b);
}
END_TEST

START_TEST(check_digest)
{
	dev_keys dk;
	bool match = true;
	make_keys(&dk, 1);
	uint8_t digest[32], cat[64];
	memcpy(cat, dk.ik_pk, 32);
	memcpy(cat + 32, dk.spk.key, 32);
	crypto_hash_sha256(digest, cat, 64);
	ck_assert_int_eq(ks_check(k, S("bob"), S("phone"), digest, &match), CHAT_OK);
	ck_assert(!match); /* unknown device */
	upload_ok("bob", "phone", &dk, 0, 1);
	ck_assert_int_eq(ks_check(k, S("bob"), S("phone"), digest, &match), CHAT_OK);
	ck_assert(match);
	digest[31] ^= 0x80;
	ck_assert_int_eq(ks_check(k, S("bob"), S("phone"), digest, &match), CHAT_OK);
	ck_assert(!match);
	/* spk || ik (wrong order) does not match */
	memcpy(cat, dk.spk.key, 32);
	memcpy(cat + 32, dk.ik_pk, 32);
	crypto_hash_sha256(digest, cat, 64);
	ck_assert_int_eq(ks_check(k, S("bob"), S("phone"), digest, &match), CHAT_OK);
	ck_assert(!match);
}
END_TEST

START_TEST(drop_device)
{
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	upload_ok("bob", "phone", &dk, 5, 1);
	upload_ok("bob", "laptop", &dk, 5, 1);
	ck_assert_int_eq(ks_drop_device(k, S("bob"), S("phone")), CHAT_OK);
	ck_assert_int_eq(ks_drop_device(k, S("bob"), S("nothere")), CHAT_OK);
	ck_assert_int_eq(ks_count(k, S("bob"), S("phone"), &n), CHAT_OK);
	ck_assert_uint_eq(n, 0);
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_uint_eq(b.n, 1);
	ck_assert_str_eq(b.v[0].device, "laptop");
	/* re-uploading after a drop starts a fresh pool, even with the old ids */
	ck_assert_uint_eq(upload_ok("bob", "phone", &dk, 5, 1), 5);
	ck_assert_int_eq(ks_drop_device(k, S("bob"), S("laptop")), CHAT_OK);
	ck_assert_int_eq(ks_drop_device(k, S("bob"), S("phone")), CHAT_OK);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_ENOTFOUND);
	ks_bundle_free(&b);
}
END_TEST

/* Opens the store's directory with RocksDB directly (the key server is
 * closed), for tests that plant records; write/delete then close. */
static rocksdb_t *raw_open(void)
{
	ks_close(k);
	k = NULL;
	rocksdb_options_t *o = rocksdb_options_create();
	char *err = NULL;
	rocksdb_t *db = rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	ck_assert_ptr_null(err);
	return db;
}

static void raw_put(rocksdb_t *db, const char *key, size_t klen, const char *val, size_t vlen)
{
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *err = NULL;
	if (val)
		rocksdb_put(db, wo, key, klen, val, vlen, &err);
	else
		rocksdb_delete(db, wo, key, klen, &err);
	rocksdb_writeoptions_destroy(wo);
	ck_assert_ptr_null(err);
}

/* Finds key in the response map of r. */
static bool resp_find_in(const ks_reply *r, cbr *rd, const char *key, cbr_item *val)
{
	cbr_item map, kk;
	cbr_init(rd, r->resp.buf, r->resp.len);
	ck_assert_int_eq(cbr_next(rd, &map), CHAT_OK);
	uint64_t i = 0;
	while (cbr_map_next(rd, &map, &i, &kk)) {
		if (cbr_eq(&kk, key))
			return cbr_next(rd, val) == CHAT_OK;
		ck_assert_int_eq(cbr_skip_next(rd), CHAT_OK);
	}
	return false;
}

/* A format-2 store from before the key directory log gets every device's
 * current key logged at open; a bundle then carries their places, and a
 * missing log node fails closed (store error, nothing handed out). */
START_TEST(log_backfilled_then_fails_closed)
{
	dev_keys a, b2, c;
	make_keys(&a, 1), make_keys(&b2, 1), make_keys(&c, 1);
	upload_ok("bob", "phone", &a, 2, 1);
	upload_ok("bob", "tablet", &b2, 2, 1);
	upload_ok("carol", "x", &c, 2, 1);
	ck_assert_uint_eq(ks_log_head(k)->size, 3);
	/* forget the log: every 'L' 'N' 'H' 'M' 'X' 'I' record */
	rocksdb_t *db = raw_open();
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
	int dropped = 0;
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl;
		const char *key = rocksdb_iter_key(it, &kl);
		if (strchr("LNHMXI", key[0])) {
			raw_put(db, key, kl, NULL, 0);
			dropped++;
		}
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	rocksdb_close(db);
	ck_assert_int_gt(dropped, 10);
	reopen();
	ck_assert_uint_eq(ks_log_head(k)->size, 3);
	ck_assert(kl_head_verify(ks_log_head(k), ks_log_pub(k)));
	ks_log_entry e;
	ck_assert_int_eq(ks_log_get(k, 0, &e), CHAT_OK); /* key order: bob/phone first */
	ck_assert(strcmp(e.user, "bob") == 0 && strcmp(e.device, "phone") == 0);
	ck_assert_int_eq(memcmp(e.ik, a.ik_pk, 32), 0);
	ks_bundle bb;
	uint64_t retry;
	ks_bundle_init(&bb);
	ck_assert_int_eq(bundle("alice", "d", "bob", &bb, &retry), CHAT_OK);
	ck_assert_uint_eq(bb.n, 2);
	ck_assert(bb.v[0].log_index == 0 && bb.v[1].log_index == 1);
	ks_bundle_free(&bb);

	/* a device without a current leaf (written by a key server without the
	 * log) is logged again by its next upload, even with the same key */
	db = raw_open();
	char xk[32] = "Xcarol";
	xk[6] = 0, xk[7] = 'x';
	raw_put(db, xk, 8, NULL, 0);
	rocksdb_close(db);
	reopen();
	ck_assert_int_eq(bundle_rc("alice", "d", "carol"), CHAT_ECORRUPT);
	upload_ok("carol", "x", &c, 1, 10);
	ck_assert_uint_eq(ks_log_head(k)->size, 4);
	ck_assert_int_eq(bundle_rc("alice", "d", "carol"), CHAT_OK);

	/* a lost node: the proof cannot be made, so nothing is popped */
	db = raw_open();
	uint8_t nk[10] = { 'N', 1 }; /* level 1, index 0: bob's two leaves, carol/x's sibling */
	raw_put(db, (const char *)nk, sizeof nk, NULL, 0);
	rocksdb_close(db);
	reopen();
	uint32_t before;
	ck_assert_int_eq(ks_count(k, S("carol"), S("x"), &before), CHAT_OK);
	ks_reply r;
	ks_reply_init(&r);
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "rid"), cbw_uint(&w, 1);
	cbw_text(&w, "op"), cbw_text(&w, "bundle");
	cbw_text(&w, "user"), cbw_text(&w, "carol");
	ck_assert_int_eq(ks_request(k, S("alice"), S("d"), w.buf, w.len, &r), CHAT_OK);
	cbr rd;
	cbr_item v;
	ck_assert(resp_find_in(&r, &rd, "code", &v));
	ck_assert(cbr_eq(&v, "store"));
	ck_assert_ptr_nonnull(strstr(r.errmsg, "log node"));
	uint32_t after;
	ck_assert_int_eq(ks_count(k, S("carol"), S("x"), &after), CHAT_OK);
	ck_assert_uint_eq(after, before);
	cbw_free(&w);
	ks_reply_free(&r);
}
END_TEST

/* Pops stay point reads however many keys were handed out before: 1000+
 * bundles, a restart in the middle and one at the end, two devices (one with
 * consecutive ids uploaded highest batch first, one with gaps uploaded in a
 * shuffled order). Every id comes out exactly once, lowest first, and no
 * bundle makes RocksDB skip a deleted entry (the tombstones of popped keys
 * are never walked again). */
START_TEST(pops_stay_cheap_after_many)
{
	ks_close(k);
	opts.rate_burst = 1000000;
	opts.pool_cap = 2000;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
	ck_assert(ks_insert_hints(k));

	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	enum { NSEQ = 1200, NGAP = 300 };
	for (int batch = NSEQ / 100 - 1; batch >= 0; batch--)
		ck_assert_int_eq(upload("bob", "phone", &dk, 100, (uint64_t)batch * 100 + 1, &n),
		                 CHAT_OK);
	ck_assert_uint_eq(n, NSEQ);
	/* tablet: ids 10·i + 5, shuffled, in three uploads */
	static ks_opk gap[NGAP];
	for (size_t i = 0; i < NGAP; i++) {
		gap[i].id = 10 * i + 5;
		randombytes_buf(gap[i].key, KS_KEY_LEN);
	}
	for (size_t i = NGAP - 1; i > 0; i--) {
		size_t j = randombytes_uniform((uint32_t)i + 1);
		ks_opk t = gap[i];
		gap[i] = gap[j];
		gap[j] = t;
	}
	for (size_t i = 0; i < NGAP; i += 100)
		ck_assert_int_eq(ks_upload(k, S("bob"), S("tablet"), dk.ik_pk, &dk.spk, gap + i, 100,
		                           &n), CHAT_OK);

	static bool seen_seq[NSEQ + 1], seen_gap[NGAP];
	memset(seen_seq, 0, sizeof(seen_seq));
	memset(seen_gap, 0, sizeof(seen_gap));
	rocksdb_set_perf_level(rocksdb_enable_count);
	rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	uint64_t last_seq = 0, last_gap = 0;
	for (int i = 0; i < NSEQ; i++) {
		if (i == 600)
			reopen();
		rocksdb_perfcontext_reset(pc);
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
		ck_assert_uint_eq(rocksdb_perfcontext_metric(pc, rocksdb_internal_delete_skipped_count),
		                  0);
		ck_assert_uint_le(rocksdb_perfcontext_metric(pc, rocksdb_internal_key_skipped_count), 1);
		ck_assert_uint_eq(b.n, 2);
		ck_assert_str_eq(b.v[0].device, "phone");
		ck_assert_str_eq(b.v[1].device, "tablet");
		/* phone: consecutive ids, so point reads only */
		ck_assert(b.v[0].has_opk);
		ck_assert_uint_eq(b.v[0].opk.id, last_seq + 1);
		ck_assert(!seen_seq[b.v[0].opk.id]);
		seen_seq[b.v[0].opk.id] = true;
		last_seq = b.v[0].opk.id;
		ck_assert_uint_eq(b.v[0].left, NSEQ - i - 1);
		if (i < NGAP) {
			ck_assert(b.v[1].has_opk);
			ck_assert_uint_eq(b.v[1].opk.id, 10 * (uint64_t)i + 5);
			ck_assert(i == 0 || b.v[1].opk.id > last_gap);
			ck_assert(!seen_gap[i]);
			seen_gap[i] = true;
			last_gap = b.v[1].opk.id;
			for (size_t j = 0; j < NGAP; j++) /* the key is the one uploaded */
				if (gap[j].id == b.v[1].opk.id)
					ck_assert_int_eq(memcmp(gap[j].key, b.v[1].opk.key, KS_KEY_LEN), 0);
		} else {
			ck_assert(!b.v[1].has_opk);
		}
		if (i == NSEQ - 200) { /* a restart, then the last 200 */
			reopen();
		}
	}
	rocksdb_perfcontext_destroy(pc);
	rocksdb_set_perf_level(1); /* rocksdb_disable */
	for (int i = 1; i <= NSEQ; i++)
		ck_assert(seen_seq[i]);
	for (int i = 0; i < NGAP; i++)
		ck_assert(seen_gap[i]);
	reopen();
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert(!b.v[0].has_opk && !b.v[1].has_opk);
	ck_assert_uint_eq(key_count("bob", "phone"), 0);

	/* ids handed out may be uploaded again, and lower ids than any popped
	 * one still come out first */
	upload_ok("bob", "phone", &dk, 3, 2000);
	upload_ok("bob", "phone", &dk, 3, 7);
	uint64_t want[] = { 7, 8, 9, 2000, 2001, 2002 };
	for (size_t i = 0; i < 6; i++) {
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
		ck_assert(b.v[0].has_opk);
		ck_assert_uint_eq(b.v[0].opk.id, want[i]);
		if (i == 2)
			reopen();
	}
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert(!b.v[0].has_opk);
	ks_bundle_free(&b);
}
END_TEST

/* The device list is a record of its own: it follows uploads and drops,
 * keeps byte order, and a corrupt one is a store error, not a crash. */
START_TEST(device_list_record)
{
	opts.rate_burst = 1000;
	reopen();
	dev_keys dk;
	uint32_t n;
	make_keys(&dk, 1);
	const char *devs[] = { "m", "b", "zz", "a", "ab", "z" };
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(upload("bob", devs[i], &dk, 2, 1, &n), CHAT_OK);
	ck_assert_int_eq(upload("bob", "b", &dk, 2, 10, &n), CHAT_OK); /* not listed twice */
	ck_assert_int_eq(upload("bobby", "x", &dk, 2, 1, &n), CHAT_OK);
	ck_assert_int_eq(ks_drop_device(k, S("bob"), S("m")), CHAT_OK);
	ks_bundle b;
	uint64_t retry;
	ks_bundle_init(&b);
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	const char *want[] = { "a", "ab", "b", "z", "zz" };
	ck_assert_uint_eq(b.n, 5);
	for (size_t i = 0; i < 5; i++)
		ck_assert_str_eq(b.v[i].device, want[i]);
	reopen();
	ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_OK);
	ck_assert_uint_eq(b.n, 5);
	ck_assert_uint_eq(b.v[2].left, 2); /* b: 4 keys, one popped each bundle */

	static const struct {
		const char *val;
		size_t len;
	} bad[] = {
		{ "", 0 },                    /* empty */
		{ "\x01\x01" "a", 3 },        /* an unknown version */
		{ "\x02\x05" "ab", 4 },       /* a length past the end */
		{ "\x02\x01" "b\x01" "a", 5 },/* out of order */
		{ "\x02\x01" "a\x01" "a", 5 },/* twice */
		{ "\x02\x00", 2 },            /* an empty id */
		{ "\x02\x03" "a/b", 5 },      /* not a device id */
		{ "\x02\x01" "q", 3 },        /* a device without a record */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rocksdb_t *db = raw_open();
		raw_put(db, "Ubob", 4, bad[i].val, bad[i].len);
		rocksdb_close(db);
		char e[256];
		ck_assert_int_eq(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
		ck_assert_int_eq(ks_count(k, S("bob"), S("a"), &n), CHAT_OK);
		uint32_t before = n;
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_ECORRUPT);
		ck_assert_uint_eq(b.n, 0);
		ck_assert_int_eq(ks_count(k, S("bob"), S("a"), &n), CHAT_OK);
		ck_assert_uint_eq(n, before); /* nothing popped */
		/* a new device of bob cannot be added to a malformed list either */
		if (bad[i].val[0] != 0x02 || bad[i].val[2] != 'q')
			ck_assert_int_eq(upload("bob", "new", &dk, 1, 1, &n), CHAT_ECORRUPT);
		/* other users are unaffected */
		ck_assert_int_eq(bundle("alice", "d", "bobby", &b, &retry), CHAT_OK);
	}
	/* through the codec: a store error */
	{
		cbw w;
		cbw_init(&w);
		cbw_map(&w, 3);
		cbw_text(&w, "rid"); cbw_uint(&w, 1);
		cbw_text(&w, "op"); cbw_text(&w, "bundle");
		cbw_text(&w, "user"); cbw_text(&w, "bob");
		ks_reply r;
		ks_reply_init(&r);
		ck_assert_int_eq(ks_request(k, S("alice"), S("d"), w.buf, w.len, &r), CHAT_OK);
		ck_assert_ptr_nonnull(memmem(r.resp.buf, r.resp.len, "store", 5));
		ck_assert_uint_eq(r.nstatus, 0);
		ks_reply_free(&r);
		cbw_free(&w);
	}
	/* a corrupt device record and a corrupt one-time key are store errors too */
	{
		rocksdb_t *db = raw_open();
		raw_put(db, "Ubob", 4, "\x02\x01" "a", 3);
		raw_put(db, "Dbob\0a", 6, "\x02short", 6);
		rocksdb_close(db);
		char e[256];
		ck_assert_int_eq(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
		ck_assert_int_eq(bundle("alice", "d", "bob", &b, &retry), CHAT_ECORRUPT);
		ck_assert_ptr_nonnull(strstr(ks_errmsg(k), "device record"));
	}
	{
		upload_ok("carol", "p", &dk, 3, 1);
		rocksdb_t *db = raw_open();
		raw_put(db, "Ocarol\0p\0\0\0\0\0\0\0\0\x01", 17, "short", 5);
		rocksdb_close(db);
		char e[256];
		ck_assert_int_eq(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
		ck_assert_int_eq(bundle("alice", "d", "carol", &b, &retry), CHAT_ECORRUPT);
		ck_assert_ptr_nonnull(strstr(ks_errmsg(k), "one-time key"));
		ck_assert_uint_eq(key_count("carol", "p"), 3);
	}
	ks_bundle_free(&b);
}
END_TEST

/* A directory written by format 1 (data but no format record) or by an
 * unknown format is refused at open with a message that says so. */
START_TEST(old_format_refused)
{
	dev_keys dk;
	make_keys(&dk, 1);
	upload_ok("bob", "phone", &dk, 2, 1);
	rocksdb_t *db = raw_open();
	raw_put(db, "F", 1, NULL, 0);
	rocksdb_close(db);
	char e[512] = "";
	ck_assert_int_ne(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
	ck_assert_ptr_null(k);
	ck_assert_ptr_nonnull(strstr(e, "older chat-keyserver"));
	ck_assert_ptr_nonnull(strstr(e, "format 1"));
	ck_assert_ptr_nonnull(strstr(e, dir));

	db = raw_open();
	raw_put(db, "F", 1, "\x03", 1);
	rocksdb_close(db);
	ck_assert_int_ne(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
	ck_assert_ptr_null(k);
	ck_assert_ptr_nonnull(strstr(e, "format 3"));

	db = raw_open();
	raw_put(db, "F", 1, "\x02", 1);
	rocksdb_close(db);
	ck_assert_int_eq(ks_open(&k, &opts, e, sizeof(e)), CHAT_OK);
	ck_assert_uint_eq(key_count("bob", "phone"), 2);
}
END_TEST

/* ---- the request codec ---- */

static ks_reply rep;

static void codec_setup(void)
{
	setup();
	ks_reply_init(&rep);
}

static void codec_teardown(void)
{
	ks_reply_free(&rep);
	teardown();
}

static void request(const char *u, const char *d, const void *buf, size_t len)
{
	ck_assert_int_eq(ks_request(k, S(u), S(d), buf, len, &rep), CHAT_OK);
	ck_assert_uint_gt(rep.resp.len, 0);
}

/* Finds key in the top-level response map; leaves the reader on its value. */
static bool resp_find(cbr *rd, const char *key, cbr_item *val)
{
	cbr_item map, kk;
	cbr_init(rd, rep.resp.buf, rep.resp.len);
	ck_assert_int_eq(cbr_next(rd, &map), CHAT_OK);
	ck_assert_int_eq(map.type, CBR_MAP);
	uint64_t i = 0;
	while (cbr_map_next(rd, &map, &i, &kk)) {
		if (cbr_eq(&kk, key)) {
			ck_assert_int_eq(cbr_next(rd, val), CHAT_OK);
			return true;
		}
		ck_assert_int_eq(cbr_skip_next(rd), CHAT_OK);
	}
	ck_assert_ptr_null(rd->err_msg);
	return false;
}

/* Reads the response's signed head (keylog.h). */
static void resp_head(kl_head *h)
{
	cbr rd;
	cbr_item map, kk;
	cbr_init(&rd, rep.resp.buf, rep.resp.len);
	ck_assert_int_eq(cbr_next(&rd, &map), CHAT_OK);
	uint64_t i = 0;
	while (cbr_map_next(&rd, &map, &i, &kk)) {
		if (cbr_eq(&kk, "head")) {
			ck_assert_ptr_null(kl_head_read(&rd, h));
			return;
		}
		ck_assert_int_eq(cbr_skip_next(&rd), CHAT_OK);
	}
	ck_abort_msg("no head in the response");
}

static bool resp_ok(void)
{
	cbr rd;
	cbr_item v;
	ck_assert(resp_find(&rd, "ok", &v));
	ck_assert_int_eq(v.type, CBR_BOOL);
	return v.b;
}

static uint64_t resp_uint(const char *key)
{
	cbr rd;
	cbr_item v;
	ck_assert_msg(resp_find(&rd, key, &v), "no %s in response", key);
	ck_assert_int_eq(v.type, CBR_UINT);
	return v.u;
}

/* Asserts an error response with this code, and a msg. */
static void assert_error(const char *code)
{
	cbr rd;
	cbr_item v;
	ck_assert(!resp_ok());
	ck_assert(resp_find(&rd, "code", &v));
	ck_assert_msg(cbr_eq(&v, code), "code %.*s, expected %s", (int)v.len, v.ptr, code);
	ck_assert(resp_find(&rd, "msg", &v));
	ck_assert_int_eq(v.type, CBR_TEXT);
	ck_assert_uint_gt(v.len, 0);
	ck_assert_uint_eq(rep.nstatus, 0);
}

static bool resp_has(const char *key)
{
	cbr rd;
	cbr_item v;
	return resp_find(&rd, key, &v);
}

/* Knobs for building upload requests with one thing wrong. */
typedef struct upload_req {
	const dev_keys *dk;
	size_t n_opks, ik_len, spk_key_len, sig_len, opk_key_len;
	uint64_t first_id;
	bool indef_opks, no_rid, no_spk;
} upload_req;

static void build_upload(cbw *w, const upload_req *q)
{
	cbw_reset(w);
	cbw_map(w, (q->no_rid ? 0 : 1) + 3 + (q->no_spk ? 0 : 1) + 1);
	cbw_text(w, "op");
	cbw_text(w, "upload");
	if (!q->no_rid) {
		cbw_text(w, "rid");
		cbw_uint(w, 77);
	}
	cbw_text(w, "future");  /* unknown keys are ignored */
	cbw_array(w, 1);
	cbw_null(w);
	cbw_text(w, "ik");
	cbw_bytes(w, q->dk->ik_pk, q->ik_len ? q->ik_len : 32);
	if (!q->no_spk) {
		uint8_t pad[80] = { 0 };
		cbw_text(w, "spk");
		cbw_map(w, 3);
		cbw_text(w, "sig");
		memcpy(pad, q->dk->spk.sig, 64);
		cbw_bytes(w, pad, q->sig_len ? q->sig_len : 64);
		cbw_text(w, "id");
		cbw_uint(w, q->dk->spk.id);
		cbw_text(w, "key");
		memcpy(pad, q->dk->spk.key, 32);
		cbw_bytes(w, pad, q->spk_key_len ? q->spk_key_len : 32);
	}
	cbw_text(w, "opks");
	if (q->indef_opks)
		cbw_raw(w, "\x9f", 1);
	else
		cbw_array(w, q->n_opks);
	for (size_t i = 0; i < q->n_opks; i++) {
		uint8_t key[40];
		randombytes_buf(key, sizeof(key));
		cbw_map(w, 2);
		cbw_text(w, "id");
		cbw_uint(w, q->first_id + i);
		cbw_text(w, "key");
		cbw_bytes(w, key, q->opk_key_len ? q->opk_key_len : 32);
	}
	if (q->indef_opks)
		cbw_raw(w, "\xff", 1);
	ck_assert_int_eq(cbw_status(w), CHAT_OK);
}

static void build_simple(cbw *w, const char *op, uint64_t rid, const char *key,
                         const void *val, size_t len, bool text)
{
	cbw_reset(w);
	cbw_map(w, key ? 3 : 2);
	cbw_text(w, "rid");
	cbw_uint(w, rid);
	cbw_text(w, "op");
	cbw_text(w, op);
	if (key) {
		cbw_text(w, key);
		if (text)
			cbw_textn(w, val, len);
		else
			cbw_bytes(w, val, len);
	}
}

START_TEST(codec_upload_bundle_count_check)
{
	dev_keys dk;
	cbw w;
	cbw_init(&w);
	make_keys(&dk, 3);
	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 12, .first_id = 1 });
	request("bob", "phone", w.buf, w.len);
	ck_assert(resp_ok());
	ck_assert_uint_eq(resp_uint("rid"), 77);
	ck_assert_uint_eq(resp_uint("opks"), 12);
	/* an upload always refreshes the retained status */
	ck_assert_uint_eq(rep.nstatus, 1);
	ck_assert_str_eq(rep.status[0].user, "bob");
	ck_assert_str_eq(rep.status[0].device, "phone");
	ck_assert_uint_eq(rep.status[0].opks, 12);
	ck_assert(!rep.status[0].low);

	build_simple(&w, "count", 5, NULL, NULL, 0, false);
	request("bob", "phone", w.buf, w.len);
	ck_assert(resp_ok());
	ck_assert_uint_eq(resp_uint("rid"), 5);
	ck_assert_uint_eq(resp_uint("opks"), 12);

	/* bundles: 12 → 11 → 10 say nothing; 9 is below the threshold of 10 */
	build_simple(&w, "bundle", 6, "user", "bob", 3, true);
	for (int i = 0; i < 3; i++) {
		request("alice", "laptop", w.buf, w.len);
		ck_assert(resp_ok());
		ck_assert_uint_eq(rep.nstatus, i == 2 ? 1 : 0);
	}
	ck_assert_str_eq(rep.status[0].user, "bob");
	ck_assert_str_eq(rep.status[0].device, "phone");
	ck_assert_uint_eq(rep.status[0].opks, 9);
	ck_assert(rep.status[0].low);
	cbw st;
	cbw_init(&st);
	ck_assert_int_eq(ks_status_payload(&st, &rep.status[0]), CHAT_OK);
	/* {"opks": 9, "low": true} */
	ck_assert_uint_eq(st.len, 12);
	ck_assert_int_eq(memcmp(st.buf, "\xa2\x64opks\x09\x63low\xf5", 12), 0);
	cbw_free(&st);

	/* the bundle's shape: devices: [{device, ik, spk: {id, key, sig}, opk: {id, key},
	 * log: {index, ts, proof}}], head */
	cbr rd;
	cbr_item v, arr, ent, key;
	kl_head head;
	resp_head(&head);
	ck_assert(kl_head_verify(&head, ks_log_pub(k)));
	ck_assert_uint_eq(head.size, 1);
	ck_assert(resp_find(&rd, "devices", &arr));
	ck_assert_int_eq(arr.type, CBR_ARRAY);
	ck_assert_uint_eq(arr.u, 1);
	ck_assert_int_eq(cbr_next(&rd, &ent), CHAT_OK);
	ck_assert_int_eq(ent.type, CBR_MAP);
	ck_assert_uint_eq(ent.u, 5);
	uint64_t i = 0;
	int seen = 0;
	while (cbr_map_next(&rd, &ent, &i, &key)) {
		if (cbr_eq(&key, "device")) {
			ck_assert_int_eq(cbr_next(&rd, &v), CHAT_OK);
			ck_assert(cbr_eq(&v, "phone"));
			seen |= 1;
		} else if (cbr_eq(&key, "ik")) {
			ck_assert_int_eq(cbr_next(&rd, &v), CHAT_OK);
			ck_assert_int_eq(v.type, CBR_BYTES);
			ck_assert_int_eq(memcmp(v.ptr, dk.ik_pk, 32), 0);
			seen |= 2;
		} else if (cbr_eq(&key, "opk")) {
			ck_assert_int_eq(cbr_next(&rd, &v), CHAT_OK);
			ck_assert_int_eq(v.type, CBR_MAP);
			ck_assert_int_eq(cbr_skip(&rd, &v), CHAT_OK);
			seen |= 4;
		} else if (cbr_eq(&key, "log")) {
			/* {index, ts, proof}: the ik's leaf, included in the head */
			cbr_item lm, lk, lv;
			uint64_t j = 0, index = 99, ts = 0;
			kl_hash proof[KL_PROOF_MAX];
			size_t np = 99;
			ck_assert_int_eq(cbr_next(&rd, &lm), CHAT_OK);
			ck_assert_int_eq(lm.type, CBR_MAP);
			while (cbr_map_next(&rd, &lm, &j, &lk)) {
				if (cbr_eq(&lk, "proof")) {
					ck_assert_ptr_null(kl_proof_read(&rd, proof, KL_PROOF_MAX, &np));
				} else {
					ck_assert_int_eq(cbr_next(&rd, &lv), CHAT_OK);
					ck_assert_int_eq(lv.type, CBR_UINT);
					*(cbr_eq(&lk, "index") ? &index : &ts) = lv.u;
				}
			}
			uint8_t leaf[32];
			ck_assert(kl_entry_hash(leaf, dk.ik_pk, ts, "bob", 3, "phone", 5));
			ck_assert_uint_eq(index, 0);
			ck_assert_uint_eq(np, 0);
			ck_assert(kl_verify_inclusion(index, head.size, leaf, proof, np, head.root));
			seen |= 16;
		} else {
			ck_assert(cbr_eq(&key, "spk"));
			ck_assert_int_eq(cbr_next(&rd, &v), CHAT_OK);
			ck_assert_int_eq(v.type, CBR_MAP);
			ck_assert_uint_eq(v.u, 3);
			ck_assert_int_eq(cbr_skip(&rd, &v), CHAT_OK);
			seen |= 8;
		}
	}
	ck_assert_int_eq(seen, 31);

	uint8_t digest[32], cat[64];
	memcpy(cat, dk.ik_pk, 32);
	memcpy(cat + 32, dk.spk.key, 32);
	crypto_hash_sha256(digest, cat, 64);
	build_simple(&w, "check", 8, "digest", digest, 32, false);
	request("bob", "phone", w.buf, w.len);
	ck_assert(resp_ok());
	ck_assert(resp_find(&rd, "match", &v));
	ck_assert(v.type == CBR_BOOL && v.b);
	request("bob", "tablet", w.buf, w.len);
	ck_assert(resp_find(&rd, "match", &v));
	ck_assert(v.type == CBR_BOOL && !v.b);

	/* a small upload reports a low pool */
	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 2, .first_id = 500 });
	request("bob", "tablet", w.buf, w.len);
	ck_assert(resp_ok());
	ck_assert_uint_eq(rep.nstatus, 1);
	ck_assert(rep.status[0].low);
	cbw_free(&w);
}
END_TEST

START_TEST(codec_rule_errors)
{
	dev_keys dk;
	cbw w;
	cbw_init(&w);
	make_keys(&dk, 3);
	dk.spk.sig[0] ^= 1;
	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 1, .first_id = 1 });
	request("bob", "phone", w.buf, w.len);
	assert_error("sig");
	ck_assert_uint_eq(resp_uint("rid"), 77);
	dk.spk.sig[0] ^= 1;

	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 100, .first_id = 1 });
	request("bob", "phone", w.buf, w.len);
	ck_assert(resp_ok());
	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 1, .first_id = 1 });
	request("bob", "phone", w.buf, w.len);
	assert_error("dup");

	ks_close(k);
	opts.pool_cap = 120;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &opts, err, sizeof(err)), CHAT_OK);
	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 21, .first_id = 1000 });
	request("bob", "phone", w.buf, w.len);
	assert_error("full");
	ck_assert_uint_eq(resp_uint("opks"), 100);

	build_simple(&w, "bundle", 9, "user", "nobody", 6, true);
	request("alice", "laptop", w.buf, w.len);
	assert_error("notfound");
	ck_assert_uint_eq(resp_uint("rid"), 9);

	build_simple(&w, "bundle", 10, "user", "bob", 3, true);
	for (int i = 0; i < 6; i++) {
		request("alice", "laptop", w.buf, w.len);
		ck_assert(resp_ok());
	}
	request("alice", "laptop", w.buf, w.len);
	assert_error("rate");
	ck_assert_uint_eq(resp_uint("retry_after"), 600);
	ck_assert_uint_eq(resp_uint("rid"), 10);
	cbw_free(&w);
}
END_TEST

START_TEST(codec_malformed)
{
	dev_keys dk;
	cbw w;
	cbw_init(&w);
	make_keys(&dk, 3);

	request("bob", "phone", "", 0);
	assert_error("cbor");
	ck_assert(!resp_has("rid"));
	request("bob", "phone", "\x83\x01\x02\x03", 4); /* an array */
	assert_error("cbor");
	request("bob", "phone", "\x18\x2a", 2); /* an integer */
	assert_error("cbor");
	request("bob", "phone", "\xa1\x01\x02", 3); /* non-text key */
	assert_error("cbor");
	request("bob", "phone", "\xa0\xa0", 2); /* trailing bytes */
	assert_error("cbor");
	request("bob", "phone", "\xbb\xff\xff\xff\xff\xff\xff\xff\xff", 9); /* 2^64-1 pairs */
	assert_error("cbor");
	request("bob", "phone", "\xa1\x61x\x5f\x41\x00\xff", 7); /* indefinite bytes */
	assert_error("cbor");
	{
		uint8_t deep[64];
		memcpy(deep, "\xa1\x61x", 3);
		memset(deep + 3, 0x81, 40); /* 40 nested arrays */
		deep[43] = 0x00;
		request("bob", "phone", deep, 44);
		assert_error("cbor");
	}

	/* every truncation of a valid upload is a clean error */
	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 3, .first_id = 1 });
	for (size_t cut = 0; cut < w.len; cut++) {
		request("bob", "phone", w.buf, cut);
		assert_error("cbor");
	}

	build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = 1, .no_rid = true });
	request("bob", "phone", w.buf, w.len);
	assert_error("field");
	ck_assert(!resp_has("rid"));

	cbw_reset(&w); /* rid not an unsigned integer */
	cbw_map(&w, 2);
	cbw_text(&w, "rid");
	cbw_text(&w, "seven");
	cbw_text(&w, "op");
	cbw_text(&w, "count");
	request("bob", "phone", w.buf, w.len);
	assert_error("field");

	build_simple(&w, "frobnicate", 3, NULL, NULL, 0, false);
	request("bob", "phone", w.buf, w.len);
	assert_error("op");
	ck_assert_uint_eq(resp_uint("rid"), 3);

	cbw_reset(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "rid");
	cbw_uint(&w, 4);
	cbw_text(&w, "op");
	cbw_uint(&w, 1);
	request("bob", "phone", w.buf, w.len);
	assert_error("field");
	cbw_reset(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "rid");
	cbw_uint(&w, 4);
	request("bob", "phone", w.buf, w.len);
	assert_error("field");
	ck_assert_uint_eq(resp_uint("rid"), 4);

	static const upload_req bad[] = {
		{ .ik_len = 31 }, { .ik_len = 33 }, { .spk_key_len = 31 }, { .sig_len = 63 },
		{ .sig_len = 65 }, { .opk_key_len = 33, .n_opks = 2 }, { .opk_key_len = 16, .n_opks = 1 },
		{ .no_spk = true }, { .n_opks = 101 }, { .n_opks = 101, .indef_opks = true },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		upload_req q = bad[i];
		q.dk = &dk;
		q.first_id = 1;
		build_upload(&w, &q);
		request("bob", "phone", w.buf, w.len);
		assert_error("field");
		ck_assert_uint_eq(resp_uint("rid"), 77);
	}
	/* spk not a map, opks not an array, opk entry not a map */
	{
		static const char *const bodies[][2] = {
			{ "spk", "\x01" }, { "opks", "\xa0" }, { "opks", "\x81\x01" },
		};
		for (size_t i = 0; i < 3; i++) {
			cbw_reset(&w);
			cbw_map(&w, 5);
			cbw_text(&w, "rid"); cbw_uint(&w, 1);
			cbw_text(&w, "op"); cbw_text(&w, "upload");
			cbw_text(&w, "ik"); cbw_bytes(&w, dk.ik_pk, 32);
			if (strcmp(bodies[i][0], "spk") == 0) {
				cbw_text(&w, "spk"); cbw_raw(&w, bodies[i][1], strlen(bodies[i][1]));
				cbw_text(&w, "x"); cbw_null(&w);
			} else {
				cbw_text(&w, "spk"); cbw_map(&w, 3);
				cbw_text(&w, "id"); cbw_uint(&w, 1);
				cbw_text(&w, "key"); cbw_bytes(&w, dk.spk.key, 32);
				cbw_text(&w, "sig"); cbw_bytes(&w, dk.spk.sig, 64);
				cbw_text(&w, "opks"); cbw_raw(&w, bodies[i][1], strlen(bodies[i][1]));
			}
			request("bob", "phone", w.buf, w.len);
			assert_error("field");
		}
	}
	uint32_t n;
	ck_assert_int_eq(ks_count(k, S("bob"), S("phone"), &n), CHAT_OK);
	ck_assert_uint_eq(n, 0); /* nothing of the above was stored */

	build_simple(&w, "bundle", 1, NULL, NULL, 0, false);
	request("alice", "laptop", w.buf, w.len);
	assert_error("field");
	build_simple(&w, "bundle", 1, "user", "a/b", 3, true);
	request("alice", "laptop", w.buf, w.len);
	assert_error("field");
	build_simple(&w, "bundle", 1, "user", "bob", 3, false); /* bytes, not text */
	request("alice", "laptop", w.buf, w.len);
	assert_error("field");
	cbw_reset(&w); /* user: a map, then more keys */
	cbw_map(&w, 4);
	cbw_text(&w, "rid"); cbw_uint(&w, 1);
	cbw_text(&w, "op"); cbw_text(&w, "bundle");
	cbw_text(&w, "user"); cbw_map(&w, 1); cbw_text(&w, "user"); cbw_text(&w, "bob");
	cbw_text(&w, "z"); cbw_null(&w);
	request("alice", "laptop", w.buf, w.len);
	assert_error("field");
	build_simple(&w, "check", 1, "digest", "0123456789012345678901234567890", 31, false);
	request("bob", "phone", w.buf, w.len);
	assert_error("field");
	build_simple(&w, "check", 1, NULL, NULL, 0, false);
	request("bob", "phone", w.buf, w.len);
	assert_error("field");

	/* oversized request */
	{
		uint8_t *big = calloc(1, KS_REQ_MAX + 10);
		cbw_reset(&w);
		cbw_map(&w, 3);
		cbw_text(&w, "rid"); cbw_uint(&w, 1);
		cbw_text(&w, "op"); cbw_text(&w, "count");
		cbw_text(&w, "pad"); cbw_bytes(&w, big, KS_REQ_MAX);
		request("bob", "phone", w.buf, w.len);
		assert_error("size");
		free(big);
	}
	/* an invalid requester address (the front only passes valid ones) */
	build_simple(&w, "count", 1, NULL, NULL, 0, false);
	ck_assert_int_eq(ks_request(k, S("bad/user"), S("d"), w.buf, w.len, &rep), CHAT_OK);
	assert_error("field");
	cbw_free(&w);
}
END_TEST

/* Random mutations of valid requests: never a crash, always a response map. */
START_TEST(codec_fuzz_mutations)
{
	dev_keys dk;
	cbw w;
	cbw_init(&w);
	make_keys(&dk, 3);
	uint8_t buf[8192];
	for (int round = 0; round < 600; round++) {
		if (round % 3 == 0)
			build_upload(&w, &(upload_req){ .dk = &dk, .n_opks = round % 7,
			                                .first_id = (uint64_t)round * 10 });
		else
			build_simple(&w, round % 3 == 1 ? "bundle" : "check", 1,
			             round % 3 == 1 ? "user" : "digest", "bobbobbobbobbobbobbobbobbobbobbo",
			             round % 3 == 1 ? 3 : 32, round % 3 == 1);
		ck_assert_uint_le(w.len, sizeof(buf));
		memcpy(buf, w.buf, w.len);
		size_t len = w.len;
		int muts = 1 + (int)randombytes_uniform(4);
		for (int m = 0; m < muts; m++) {
			size_t at = randombytes_uniform((uint32_t)len);
			switch (randombytes_uniform(3)) {
			case 0: buf[at] = (uint8_t)randombytes_uniform(256); break;
			case 1: buf[at] ^= (uint8_t)(1u << randombytes_uniform(8)); break;
			default: len = at + 1; break;
			}
		}
		request("bob", "phone", buf, len);
		(void)resp_ok();
	}
	cbw_free(&w);
}
END_TEST

static Suite *keystore_suite(void)
{
	Suite *s = suite_create("keystore");
	TCase *tc = tcase_create("rules");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, upload_and_count);
	tcase_add_test(tc, bad_signature_refused);
	tcase_add_test(tc, upload_over_100_refused);
	tcase_add_test(tc, pool_cap_refuses_whole_upload);
	tcase_add_test(tc, duplicate_opk_ids_refused);
	tcase_add_test(tc, reregistration_drops_opks);
	tcase_add_test(tc, bundle_contents_verify);
	tcase_add_test(tc, opk_handed_out_once_ever);
	tcase_add_test(tc, bundle_unknown_user);
	tcase_add_test(tc, rate_limit_burst_refill_persist);
	tcase_add_test(tc, rate_limit_configurable);
	tcase_add_test(tc, rate_limit_fails_closed);
	tcase_add_test(tc, check_digest);
	tcase_add_test(tc, drop_device);
	tcase_add_test(tc, pops_stay_cheap_after_many);
	tcase_add_test(tc, device_list_record);
	tcase_add_test(tc, old_format_refused);
	tcase_add_test(tc, log_backfilled_then_fails_closed);
	suite_add_tcase(s, tc);

	TCase *codec = tcase_create("codec");
	tcase_add_checked_fixture(codec, codec_setup, codec_teardown);
	tcase_add_test(codec, codec_upload_bundle_count_check);
	tcase_add_test(codec, codec_rule_errors);
	tcase_add_test(codec, codec_malformed);
	tcase_add_test(codec, codec_fuzz_mutations);
	suite_add_tcase(s, codec);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(keystore_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
