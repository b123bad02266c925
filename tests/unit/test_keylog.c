// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_keylog — the key directory log's tree (common/keylog.c) against the
 * shared vectors tests/vectors/keylog.json (RFC 6962's reference roots and
 * an independent Python implementation, tests/vectors/make_keylog.py), its
 * decoders on malformed input, and the key server's stored tree
 * (keyserver/keystore.c): proofs from stored nodes agree with a tree
 * recomputed from the entries, across a reopen. */
#include "err.h"
#include "keylog.h"
#include "keystore.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vectors.h"

static cJSON *vec;

static void setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	vec = vectors_load("keylog.json");
}

static void teardown(void)
{
	cJSON_Delete(vec);
}

static size_t unhex(uint8_t *out, size_t cap, const cJSON *s)
{
	ck_assert(cJSON_IsString(s));
	size_t n;
	ck_assert_int_eq(sodium_hex2bin(out, cap, s->valuestring, strlen(s->valuestring), NULL, &n,
	                                NULL), 0);
	return n;
}

static cJSON *at(const char *a, const char *b)
{
	cJSON *x = cJSON_GetObjectItem(cJSON_GetObjectItem(vec, a), b);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* ---- the vectors ---- */

#define NLEAF 13
static kl_hash L[NLEAF]; /* the "log" vectors' leaf hashes */

static void log_leaves(void)
{
	cJSON *ents = at("log", "entries"), *cb = at("log", "leaf_cbor");
	ck_assert_int_eq(cJSON_GetArraySize(ents), NLEAF);
	for (int i = 0; i < NLEAF; i++) {
		cJSON *e = cJSON_GetArrayItem(ents, i);
		uint8_t ik[32], want[KL_LEAF_MAX], got[KL_LEAF_MAX];
		unhex(ik, 32, cJSON_GetObjectItem(e, "ik"));
		const char *u = cJSON_GetObjectItem(e, "user")->valuestring;
		const char *d = cJSON_GetObjectItem(e, "device")->valuestring;
		uint64_t ts = (uint64_t)cJSON_GetObjectItem(e, "ts")->valuedouble;
		size_t wn = unhex(want, sizeof want, cJSON_GetArrayItem(cb, i));
		size_t gn = kl_leaf_encode(got, ik, ts, u, strlen(u), d, strlen(d));
		ck_assert_uint_eq(gn, wn);
		ck_assert_int_eq(memcmp(got, want, wn), 0);
		ck_assert(kl_entry_hash(L[i], ik, ts, u, strlen(u), d, strlen(d)));
	}
}

typedef struct arr_ctx { const kl_hash *leaves; } arr_ctx;

static int arr_mth(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[KL_HASH])
{
	kl_root(out, ((arr_ctx *)ctx)->leaves + lo, hi - lo);
	return 0;
}

START_TEST(rfc6962_known_roots)
{
	cJSON *leaves = at("ct", "leaves"), *roots = at("ct", "known_roots");
	kl_hash lh[8];
	for (int i = 0; i < 8; i++) {
		uint8_t b[64];
		size_t n = unhex(b, sizeof b, cJSON_GetArrayItem(leaves, i));
		kl_leaf_hash(lh[i], b, n);
		uint8_t want[32], got[32];
		unhex(want, 32, cJSON_GetArrayItem(roots, i));
		kl_root(got, lh, (uint64_t)i + 1);
		ck_assert_msg(memcmp(got, want, 32) == 0, "root of size %d", i + 1);
	}
	/* the empty tree is SHA-256("") */
	uint8_t empty[32], sha_empty[32];
	kl_root(empty, lh, 0);
	crypto_hash_sha256(sha_empty, (const uint8_t *)"", 0);
	ck_assert_int_eq(memcmp(empty, sha_empty, 32), 0);
}
END_TEST

START_TEST(leaves_and_roots)
{
	log_leaves();
	cJSON *roots = at("log", "roots");
	for (int s = 0; s <= NLEAF; s++) {
		uint8_t want[32], got[32];
		unhex(want, 32, cJSON_GetArrayItem(roots, s));
		kl_root(got, L, (uint64_t)s);
		ck_assert_msg(memcmp(got, want, 32) == 0, "root of size %d", s);
	}
}
END_TEST

START_TEST(inclusion_vectors)
{
	log_leaves();
	arr_ctx c = { L };
	cJSON *v;
	int count = 0;
	cJSON_ArrayForEach(v, at("log", "inclusion")) {
		uint64_t idx = (uint64_t)cJSON_GetObjectItem(v, "index")->valuedouble;
		uint64_t size = (uint64_t)cJSON_GetObjectItem(v, "size")->valuedouble;
		cJSON *pv = cJSON_GetObjectItem(v, "proof");
		kl_hash want[KL_PROOF_MAX], got[KL_PROOF_MAX];
		size_t nw = (size_t)cJSON_GetArraySize(pv), ng;
		for (size_t i = 0; i < nw; i++)
			unhex(want[i], 32, cJSON_GetArrayItem(pv, (int)i));
		ck_assert_int_eq(kl_inclusion_proof(arr_mth, &c, idx, size, got, &ng), 0);
		ck_assert_uint_eq(ng, nw);
		ck_assert_int_eq(memcmp(got, want, nw * 32), 0);
		uint8_t root[32];
		kl_root(root, L, size);
		ck_assert(kl_verify_inclusion(idx, size, L[idx], want, nw, root));
		/* a wrong leaf, index, size, proof or root fails */
		ck_assert(!kl_verify_inclusion(idx, size, L[(idx + 1) % NLEAF], want, nw, root) ||
		          size == 1);
		if (size > 1)
			ck_assert(!kl_verify_inclusion((idx + 1) % size, size, L[idx], want, nw, root));
		/* (no check with size + 1: a proof's shape can be the same for two
		 * sizes, e.g. (0, 3) and (0, 4); the signed head binds root and size) */
		ck_assert(!kl_verify_inclusion(size, size, L[idx], want, nw, root));
		if (nw) {
			want[nw - 1][5] ^= 1;
			ck_assert(!kl_verify_inclusion(idx, size, L[idx], want, nw, root));
			ck_assert(!kl_verify_inclusion(idx, size, L[idx], want, nw - 1, root));
		}
		root[0] ^= 1;
		ck_assert(!kl_verify_inclusion(idx, size, L[idx], want, nw, root));
		count++;
	}
	ck_assert_int_eq(count, NLEAF * (NLEAF + 1) / 2);
}
END_TEST

START_TEST(consistency_vectors)
{
	log_leaves();
	arr_ctx c = { L };
	cJSON *v;
	int count = 0;
	cJSON_ArrayForEach(v, at("log", "consistency")) {
		uint64_t m = (uint64_t)cJSON_GetObjectItem(v, "from")->valuedouble;
		uint64_t n = (uint64_t)cJSON_GetObjectItem(v, "to")->valuedouble;
		cJSON *pv = cJSON_GetObjectItem(v, "proof");
		kl_hash want[KL_PROOF_MAX], got[KL_PROOF_MAX];
		size_t nw = (size_t)cJSON_GetArraySize(pv), ng;
		for (size_t i = 0; i < nw; i++)
			unhex(want[i], 32, cJSON_GetArrayItem(pv, (int)i));
		ck_assert_int_eq(kl_consistency_proof(arr_mth, &c, m, n, got, &ng), 0);
		ck_assert_uint_eq(ng, nw);
		ck_assert_int_eq(memcmp(got, want, nw * 32), 0);
		uint8_t r1[32], r2[32];
		kl_root(r1, L, m);
		kl_root(r2, L, n);
		ck_assert_msg(kl_verify_consistency(m, n, r1, r2, want, nw), "%d..%d", (int)m, (int)n);
		if (m > 0 && m < n) {
			/* a forked first tree (another leaf m-1) is not a prefix */
			kl_hash forked[NLEAF];
			memcpy(forked, L, sizeof forked);
			forked[m - 1][0] ^= 1;
			uint8_t f1[32];
			kl_root(f1, forked, m);
			ck_assert(!kl_verify_consistency(m, n, f1, r2, want, nw));
			want[0][3] ^= 1;
			ck_assert(!kl_verify_consistency(m, n, r1, r2, want, nw));
			ck_assert(!kl_verify_consistency(m, n, r1, r2, want, nw - 1));
			ck_assert(!kl_verify_consistency(n, m, r2, r1, want, nw));
		}
		count++;
	}
	ck_assert_int_eq(count, (NLEAF + 1) * (NLEAF + 2) / 2);
}
END_TEST

START_TEST(signed_head_vector)
{
	uint8_t seed[32], pk[32], sk[64], want_pk[32];
	unhex(seed, 32, cJSON_GetObjectItem(at("log", "head"), "seed"));
	unhex(want_pk, 32, cJSON_GetObjectItem(at("log", "head"), "pub"));
	crypto_sign_seed_keypair(pk, sk, seed);
	ck_assert_int_eq(memcmp(pk, want_pk, 32), 0);
	kl_head h = { 0 };
	cJSON *hv = at("log", "head");
	h.size = (uint64_t)cJSON_GetObjectItem(hv, "size")->valuedouble;
	h.ts = (uint64_t)cJSON_GetObjectItem(hv, "ts")->valuedouble;
	unhex(h.root, 32, cJSON_GetObjectItem(hv, "root"));
	uint8_t want_sig[64];
	unhex(want_sig, 64, cJSON_GetObjectItem(hv, "sig"));
	kl_head_sign(&h, sk);
	ck_assert_int_eq(memcmp(h.sig, want_sig, 64), 0);
	ck_assert(kl_head_verify(&h, pk));
	h.size++;
	ck_assert(!kl_head_verify(&h, pk));
	h.size--, h.ts++;
	ck_assert(!kl_head_verify(&h, pk));
	h.ts--, h.root[31] ^= 1;
	ck_assert(!kl_head_verify(&h, pk));
	/* round trip through CBOR */
	h.root[31] ^= 1;
	cbw w;
	cbw_init(&w);
	kl_head_write(&w, &h);
	cbr r;
	kl_head back;
	cbr_init(&r, w.buf, w.len);
	ck_assert_ptr_null(kl_head_read(&r, &back));
	ck_assert(cbr_done(&r));
	ck_assert_int_eq(memcmp(&back, &h, sizeof h), 0);
	cbw_free(&w);
}
END_TEST

/* ---- decoders ---- */

static const char *head_of(const char *hex)
{
	static uint8_t b[512];
	size_t n;
	ck_assert_int_eq(sodium_hex2bin(b, sizeof b, hex, strlen(hex), NULL, &n, NULL), 0);
	cbr r;
	kl_head h;
	cbr_init(&r, b, n);
	return kl_head_read(&r, &h);
}

START_TEST(decoders_refuse_malformed)
{
	ck_assert_str_eq(head_of("a0"), "head needs size, root, ts and sig");
	ck_assert_str_eq(head_of("80"), "head must be a map");
	ck_assert_str_eq(head_of(""), "head must be a map");
	ck_assert_str_eq(head_of("a164726f6f744101"), "head.root must be 32 bytes");
	ck_assert_str_eq(head_of("a16473697a6561ff"), "head.size and head.ts must be unsigned integers");
	ck_assert_str_eq(head_of("a16473697a651b0000000100000001"), "head.size is too large");
	ck_assert_ptr_nonnull(head_of("a26473697a6501")); /* truncated */

	kl_hash p[KL_PROOF_MAX];
	size_t n;
	uint8_t b[4 + 35 * (KL_PROOF_MAX + 1)];
	cbr r;
	cbr_init(&r, (const uint8_t *)"\x81\x41\x00", 3);
	ck_assert_str_eq(kl_proof_read(&r, p, KL_PROOF_MAX, &n), "proof hashes must be 32 bytes");
	cbr_init(&r, (const uint8_t *)"\xa0", 1);
	ck_assert_str_eq(kl_proof_read(&r, p, KL_PROOF_MAX, &n), "proof must be an array");
	/* one hash too many */
	size_t len = 0;
	b[len++] = 0x98, b[len++] = KL_PROOF_MAX + 1;
	for (int i = 0; i <= KL_PROOF_MAX; i++) {
		b[len++] = 0x58, b[len++] = 32;
		memset(b + len, i, 32);
		len += 32;
	}
	cbr_init(&r, b, len);
	ck_assert_str_eq(kl_proof_read(&r, p, KL_PROOF_MAX, &n), "proof is too long");
	/* the longest allowed one is read */
	b[1] = KL_PROOF_MAX;
	cbr_init(&r, b, len - 34);
	ck_assert_ptr_null(kl_proof_read(&r, p, KL_PROOF_MAX, &n));
	ck_assert_uint_eq(n, KL_PROOF_MAX);
	ck_assert(cbr_done(&r));

	kl_ref ref;
	cbr_init(&r, (const uint8_t *)"\xa1\x65index\x01", 8);
	ck_assert_str_eq(kl_ref_read(&r, &ref), "log reference needs index, ts and proof");
	cbr_init(&r, (const uint8_t *)"\xa1\x62ik\x41\x01", 6);
	ck_assert_str_eq(kl_ref_read(&r, &ref), "ik must be 32 bytes");
	cbr_init(&r, (const uint8_t *)"\xa3\x65index\x01\x62ts\x02\x65proof\x80", 20);
	ck_assert_ptr_null(kl_ref_read(&r, &ref));
	ck_assert(ref.index == 1 && ref.ts == 2 && ref.n == 0 && !ref.has_ik);
}
END_TEST

/* ---- the key server's stored tree ---- */

static char dir[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static uint64_t fake_now;
static uint64_t clock_ms(void *ctx)
{
	(void)ctx;
	return fake_now += 7;
}

static void upload(ks *k, const char *u, const char *d, uint8_t ik_pk[32])
{
	uint8_t sk[64];
	ks_spk spk = { .id = 1 };
	crypto_sign_keypair(ik_pk, sk);
	randombytes_buf(spk.key, 32);
	crypto_sign_detached(spk.sig, NULL, spk.key, 32, sk);
	uint32_t count;
	ck_assert_int_eq(ks_upload(k, u, strlen(u), d, strlen(d), ik_pk, &spk, NULL, 0, &count),
	                 CHAT_OK);
}

/* Every proof of the store against the tree of its own entries. */
static void check_store(ks *k, uint64_t n)
{
	const kl_head *head = ks_log_head(k);
	ck_assert_uint_eq(head->size, n);
	ck_assert(kl_head_verify(head, ks_log_pub(k)));
	kl_hash *lv = malloc(n * sizeof *lv);
	for (uint64_t i = 0; i < n; i++) {
		ks_log_entry e;
		ck_assert_int_eq(ks_log_get(k, i, &e), CHAT_OK);
		ck_assert(kl_entry_hash(lv[i], e.ik, e.ts, e.user, strlen(e.user), e.device,
		                        strlen(e.device)));
	}
	uint8_t root[32];
	for (uint64_t s = 1; s <= n; s++) {
		kl_head hs;
		ck_assert_int_eq(ks_log_head_at(k, s, &hs), CHAT_OK);
		kl_root(root, lv, s);
		ck_assert_int_eq(memcmp(hs.root, root, 32), 0);
		ck_assert(kl_head_verify(&hs, ks_log_pub(k)));
		for (uint64_t i = 0; i < s; i++) {
			kl_hash p[KL_PROOF_MAX];
			size_t np;
			ck_assert_int_eq(ks_log_inclusion(k, i, s, p, &np), CHAT_OK);
			ck_assert(kl_verify_inclusion(i, s, lv[i], p, np, root));
		}
		for (uint64_t m = 0; m <= s; m++) {
			kl_hash p[KL_PROOF_MAX];
			size_t np;
			uint8_t r1[32];
			kl_root(r1, lv, m);
			ck_assert_int_eq(ks_log_consistency(k, m, s, p, &np), CHAT_OK);
			ck_assert(kl_verify_consistency(m, s, r1, root, p, np));
		}
	}
	free(lv);
}

START_TEST(store_proofs_and_reopen)
{
	snprintf(dir, sizeof dir, "%s/test_keylog.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ks_opts o;
	ks_opts_default(&o);
	o.dir = dir;
	o.now_ms = clock_ms;
	ks *k;
	char err[256];
	ck_assert_int_eq(ks_open(&k, &o, err, sizeof err), CHAT_OK);
	ck_assert_uint_eq(ks_log_head(k)->size, 0);
	uint8_t ik[32], first[32];
	char dev[8];
	/* 21 devices, then two re-registrations and one same-key upload */
	for (int i = 0; i < 21; i++) {
		snprintf(dev, sizeof dev, "d%d", i);
		upload(k, i % 2 ? "bob" : "alice", dev, i == 0 ? first : ik);
	}
	upload(k, "alice", "d0", ik);
	upload(k, "alice", "d0", ik);
	check_store(k, 23);
	/* check_store's proofs (at every size, as the log grew) came through
	 * the node cache and all verified; asked again, a proof reads nothing */
	{
		uint64_t h0, m0, h1, m1;
		kl_hash pr[KL_PROOF_MAX];
		size_t np;
		ks_log_cache_stats(k, &h0, &m0);
		ck_assert_uint_gt(h0, 0);
		ck_assert_uint_gt(m0, 0);
		ck_assert_uint_lt(m0, 2 * 23); /* each of the < 2n stored nodes read once */
		ck_assert_int_eq(ks_log_inclusion(k, 3, 23, pr, &np), CHAT_OK);
		ck_assert_int_eq(ks_log_consistency(k, 7, 23, pr, &np), CHAT_OK);
		ks_log_cache_stats(k, &h1, &m1);
		ck_assert_uint_eq(m1, m0);
		ck_assert_uint_gt(h1, h0);
	}
	/* the same key again (a top-up with one-time keys) logs nothing */
	{
		uint8_t pk[32], sk[64];
		ks_spk spk = { .id = 1 };
		ks_opk opk = { .id = 7 };
		uint32_t count;
		crypto_sign_keypair(pk, sk);
		randombytes_buf(spk.key, 32);
		crypto_sign_detached(spk.sig, NULL, spk.key, 32, sk);
		ck_assert_int_eq(ks_upload(k, "dora", 4, "p", 1, pk, &spk, NULL, 0, &count), CHAT_OK);
		ck_assert_int_eq(ks_upload(k, "dora", 4, "p", 1, pk, &spk, &opk, 1, &count), CHAT_OK);
		ck_assert_uint_eq(count, 1);
	}
	check_store(k, 24);
	uint64_t idx[8];
	size_t n;
	ck_assert_int_eq(ks_log_history(k, "alice", 5, "d0", 2, idx, 8, &n), CHAT_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert(idx[0] == 0 && idx[1] == 21 && idx[2] == 22);
	ks_log_entry e;
	ck_assert_int_eq(ks_log_get(k, 0, &e), CHAT_OK);
	ck_assert_int_eq(memcmp(e.ik, first, 32), 0);
	ck_assert_int_eq(ks_log_get(k, 24, &e), CHAT_ENOTFOUND);
	kl_hash p[KL_PROOF_MAX];
	ck_assert_int_ne(ks_log_inclusion(k, 24, 24, p, &n), CHAT_OK);
	ck_assert_int_ne(ks_log_consistency(k, 5, 25, p, &n), CHAT_OK);
	kl_head before = *ks_log_head(k);
	uint8_t pub[32];
	memcpy(pub, ks_log_pub(k), 32);
	ks_close(k);

	/* reopened: same key, same head, and it goes on growing */
	ck_assert_int_eq(ks_open(&k, &o, err, sizeof err), CHAT_OK);
	ck_assert_int_eq(memcmp(ks_log_pub(k), pub, 32), 0);
	ck_assert_int_eq(memcmp(ks_log_head(k), &before, sizeof before), 0);
	upload(k, "carol", "x", ik);
	check_store(k, 25);
	/* a checkpoint carries the signing key */
	char cp[300], path[400];
	snprintf(cp, sizeof cp, "%s.cp", dir);
	ck_assert_int_eq(ks_checkpoint(k, cp, err, sizeof err), CHAT_OK);
	snprintf(path, sizeof path, "%s/keylog.key", cp);
	ck_assert_int_eq(access(path, R_OK), 0);
	ks_close(k);
	nftw(cp, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	/* a replaced signing key is refused, not silently re-signed */
	snprintf(path, sizeof path, "%s/keylog.key", dir);
	FILE *f = fopen(path, "wb");
	uint8_t junk_pk[32], junk[64];
	crypto_sign_keypair(junk_pk, junk);
	fwrite(junk, 1, 64, f);
	fclose(f);
	ck_assert_int_ne(ks_open(&k, &o, err, sizeof err), CHAT_OK);
	ck_assert_ptr_nonnull(strstr(err, "not signed by keylog.key"));
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keylog");
	TCase *tc = tcase_create("vectors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, rfc6962_known_roots);
	tcase_add_test(tc, leaves_and_roots);
	tcase_add_test(tc, inclusion_vectors);
	tcase_add_test(tc, consistency_vectors);
	tcase_add_test(tc, signed_head_vector);
	tcase_add_test(tc, decoders_refuse_malformed);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, store_proofs_and_reopen);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
