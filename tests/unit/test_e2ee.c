// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_e2ee.c — chat-client's crypto core (examples/client/e2ee.c) against
 * the shared vectors tests/vectors/e2ee.json (RFC 5869 HKDF, RFC 7748
 * X25519, and our own X3DH / Double Ratchet / sender-key bytes, made by an
 * independent Python implementation), plus the ratchet's behaviour with
 * out-of-order, skipped, replayed and tampered messages. */
#include "e2ee.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors.h"

static cJSON *vec;

static void setup(void)
{
	ck_assert_int_eq(e2e_init(), 0);
	vec = vectors_load("e2ee.json");
}

static void teardown(void)
{
	cJSON_Delete(vec);
	vec = NULL;
}

static const cJSON *get(const cJSON *o, const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path);
	ck_assert_msg(v != NULL, "vector field %s missing", path);
	return v;
}

/* Decodes hex field `name` of o into a fresh buffer; *len gets its size. */
static uint8_t *hex(const cJSON *o, const char *name, size_t *len)
{
	const char *s = get(o, name)->valuestring;
	ck_assert_ptr_nonnull(s);
	size_t n = strlen(s) / 2;
	uint8_t *b = malloc(n + 1);
	size_t got = 0;
	ck_assert_int_eq(sodium_hex2bin(b, n + 1, s, strlen(s), NULL, &got, NULL), 0);
	ck_assert_uint_eq(got, n);
	if (len)
		*len = n;
	return b;
}

/* Copies a 32-byte (or n-byte) hex field into dst. */
static void hexn(const cJSON *o, const char *name, uint8_t *dst, size_t n)
{
	size_t len;
	uint8_t *b = hex(o, name, &len);
	ck_assert_uint_eq(len, n);
	memcpy(dst, b, n);
	free(b);
}

static void assert_bytes(const uint8_t *got, size_t got_len, const cJSON *o, const char *name)
{
	size_t len;
	uint8_t *want = hex(o, name, &len);
	ck_assert_uint_eq(got_len, len);
	ck_assert_msg(memcmp(got, want, len) == 0, "%s differs from the vector", name);
	free(want);
}

START_TEST(hkdf_rfc5869)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, get(vec, "hkdf_rfc5869")) {
		size_t ikm_len, salt_len, info_len;
		uint8_t *ikm = hex(v, "ikm", &ikm_len), *salt = hex(v, "salt", &salt_len);
		uint8_t *info = hex(v, "info", &info_len);
		char info_s[64] = { 0 };
		memcpy(info_s, info, info_len);
		int L = get(v, "length")->valueint;
		uint8_t out[255];
		e2e_hkdf(out, (size_t)L, salt_len ? salt : NULL, salt_len, ikm, ikm_len, info_s);
		assert_bytes(out, (size_t)L, v, "okm");
		free(ikm); free(salt); free(info);
	}
}
END_TEST

START_TEST(x25519_rfc7748)
{
	const cJSON *v = cJSON_GetArrayItem(get(vec, "x25519_rfc7748"), 0);
	uint8_t k[32], u[32], out[32];
	hexn(v, "scalar", k, 32);
	hexn(v, "u", u, 32);
	ck_assert_int_eq(crypto_scalarmult(out, k, u), 0);
	assert_bytes(out, 32, v, "out");
}
END_TEST

START_TEST(ratchet_kdfs)
{
	const cJSON *v = get(vec, "kdf_rk");
	uint8_t rk[32], dh[32], rk2[32], ck2[32], mk[32], key[32], nonce[24];
	hexn(v, "rk", rk, 32);
	hexn(v, "dh_out", dh, 32);
	e2e_kdf_rk(rk, dh, rk2, ck2);
	assert_bytes(rk2, 32, v, "rk_out");
	assert_bytes(ck2, 32, v, "ck_out");

	v = get(vec, "kdf_ck");
	uint8_t ck[32];
	hexn(v, "ck", ck, 32);
	e2e_kdf_ck(ck, ck, mk);         /* in place, as the ratchet uses it */
	assert_bytes(ck, 32, v, "ck_out");
	assert_bytes(mk, 32, v, "mk");

	v = get(vec, "message_keys");
	hexn(v, "mk", mk, 32);
	e2e_message_keys(mk, key, nonce);
	assert_bytes(key, 32, v, "key");
	assert_bytes(nonce, 24, v, "nonce");
}
END_TEST

/* The two parties of the "session" vectors. */
typedef struct party {
	uint8_t ik_pk[32], ik_sk[64];
	e2e_session s;
	bool has;
} party;

static void bundle_of(const cJSON *v, e2e_bundle *b, uint8_t spk_sk[32], uint8_t opk_sk[32])
{
	uint8_t sk64[64], seed[32];
	hexn(v, "bob_ik_seed", seed, 32);
	e2e_ed25519_keypair(b->ik, sk64, seed);
	assert_bytes(b->ik, 32, v, "bob_ik_pk");
	b->spk_id = (uint32_t)get(v, "bob_spk_id")->valueint;
	hexn(v, "bob_spk_sk", spk_sk, 32);
	e2e_x25519_keypair(b->spk, spk_sk, spk_sk);
	assert_bytes(b->spk, 32, v, "bob_spk_pk");
	e2e_sign(b->spk_sig, b->spk, 32, sk64);
	assert_bytes(b->spk_sig, 64, v, "bob_spk_sig");
	b->opk_id = (uint32_t)get(v, "bob_opk_id")->valueint;
	hexn(v, "bob_opk_sk", opk_sk, 32);
	e2e_x25519_keypair(b->opk, opk_sk, opk_sk);
	assert_bytes(b->opk, 32, v, "bob_opk_pk");
}

/* Runs the vector steps: each sender encrypts (bytes must match), each
 * receiver decrypts (plaintext must match). Bob answers X3DH on the first. */
START_TEST(x3dh_and_ratchet_vectors)
{
	const cJSON *v = get(vec, "session");
	static party alice, bob;
	e2e_bundle b;
	uint8_t spk_sk[32], opk_sk[32], seed[32], ek[32], r1[32], sk[32];

	memset(&alice, 0, sizeof alice);
	memset(&bob, 0, sizeof bob);
	bundle_of(v, &b, spk_sk, opk_sk);
	hexn(v, "bob_ik_seed", seed, 32);
	e2e_ed25519_keypair(bob.ik_pk, bob.ik_sk, seed);
	hexn(v, "alice_ik_seed", seed, 32);
	e2e_ed25519_keypair(alice.ik_pk, alice.ik_sk, seed);
	assert_bytes(alice.ik_pk, 32, v, "alice_ik_pk");
	hexn(v, "alice_ek_sk", ek, 32);
	hexn(v, "alice_first_ratchet_sk", r1, 32);
	ck_assert_int_eq(e2e_x3dh_initiate(&alice.s, alice.ik_pk, alice.ik_sk, &b, ek, r1, sk), 0);
	assert_bytes(sk, 32, v, "x3dh_sk");
	assert_bytes(alice.s.ad, 64, v, "ad");
	assert_bytes(alice.s.ek_pk, 32, v, "alice_ek_pk");
	alice.has = true;

	const cJSON *st;
	uint8_t out[4096], pt[4096];
	cJSON_ArrayForEach(st, get(v, "steps")) {
		bool from_alice = strcmp(get(st, "sender")->valuestring, "alice") == 0;
		party *s = from_alice ? &alice : &bob, *r = from_alice ? &bob : &alice;
		size_t plen, blen;
		uint8_t *p = hex(st, "plaintext", &plen);
		uint8_t *want = hex(st, "body", &blen);
		e2e_body body;
		ck_assert_int_eq(e2e_body_parse(want, blen, &body), 0);
		size_t hl = e2e_body_header(out, body.kind, body.pairwise_len);
		size_t n = e2e_pairwise_encrypt(&s->s, out + hl, p, plen);
		ck_assert_uint_gt(n, 0);
		if (body.kind == E2E_KIND_GROUP) {   /* the sender-key part is checked below */
			memcpy(out + hl + n, body.sender, body.sender_len);
			n += body.sender_len;
		}
		assert_bytes(out, hl + n, st, "body");

		if (!r->has) {   /* bob: X3DH from the prekey part */
			e2e_prekey pre;
			ck_assert_int_eq(e2e_pairwise_prekey(body.pairwise, body.pairwise_len, &pre), 1);
			ck_assert_uint_eq(pre.opk_id, b.opk_id);
			ck_assert_int_eq(e2e_x3dh_respond(&r->s, r->ik_pk, r->ik_sk, b.spk, spk_sk, opk_sk,
			                                  &pre, sk), 0);
			assert_bytes(sk, 32, v, "x3dh_sk");
			r->has = true;
		}
		uint8_t inj[32], *injp = NULL;
		if (!cJSON_IsNull(get(st, "receiver_ratchet_sk"))) {
			hexn(st, "receiver_ratchet_sk", inj, 32);
			injp = inj;
		}
		size_t got;
		ck_assert_int_eq(e2e_pairwise_decrypt(&r->s, pt, &got, body.pairwise, body.pairwise_len,
		                                      injp), 0);
		ck_assert_uint_eq(got, plen);
		ck_assert_mem_eq(pt, p, plen);
		free(p);
		free(want);
	}
	e2e_wipe(&alice, sizeof alice);
	e2e_wipe(&bob, sizeof bob);
}
END_TEST

START_TEST(sender_key_vectors)
{
	const cJSON *v = get(vec, "sender_key");
	const cJSON *sess = get(vec, "session");
	const char *conv = get(v, "conv")->valuestring;
	uint8_t seed[32], pk[32], sk[64], ck[32], out[1024], pt[1024];
	static e2e_chain mine, theirs;

	hexn(sess, "alice_ik_seed", seed, 32);
	e2e_ed25519_keypair(pk, sk, seed);
	hexn(v, "chain_key", ck, 32);
	uint32_t key_id = (uint32_t)get(v, "key_id")->valueint;
	e2e_chain_new(&mine, key_id, ck);
	e2e_chain_new(&theirs, key_id, ck);
	memcpy(theirs.sig_pk, pk, 32);

	/* the distribution plaintext carries key id, n and the chain key */
	size_t dl;
	uint8_t *dist = hex(v, "distribution_plaintext", &dl);
	ck_assert_int_eq(dist[0], E2E_PT_SENDER_KEY);
	ck_assert_uint_eq(e2e_get32(dist + 1), key_id);
	ck_assert_mem_eq(dist + 9, ck, 32);
	free(dist);

	size_t gl;
	uint8_t *gbody = hex(v, "group_body", &gl);
	e2e_body body;
	ck_assert_int_eq(e2e_body_parse(gbody, gl, &body), 0);
	ck_assert_int_eq(body.kind, E2E_KIND_GROUP);

	const cJSON *m;
	int i = 0;
	cJSON_ArrayForEach(m, get(v, "messages")) {
		size_t plen, mlen, got;
		uint8_t *p = hex(m, "plaintext", &plen), *want = hex(m, "message", &mlen);
		size_t n = e2e_sender_encrypt(&mine, out, p, plen, conv, sk);
		assert_bytes(out, n, m, "message");
		if (i++ == 0)   /* the first one travels in the group body */
			ck_assert_mem_eq(body.sender, want, mlen);
		ck_assert_int_eq(e2e_sender_key_id(want, mlen), key_id);
		ck_assert_int_eq(e2e_sender_decrypt(&theirs, pt, &got, want, mlen, conv), 0);
		ck_assert_mem_eq(pt, p, plen);
		/* a replay, another group's conv and a forged byte are refused */
		ck_assert_int_ne(e2e_sender_decrypt(&theirs, pt, &got, want, mlen, conv), 0);
		free(p);
		free(want);
	}
	free(gbody);
	e2e_wipe(&mine, sizeof mine);
	e2e_wipe(&theirs, sizeof theirs);
}
END_TEST

/* ---- behaviour beyond the vectors: random keys ---- */

static party A, B;
static uint8_t b_spk_sk[32];
static e2e_bundle bb;

static void pair_up(bool with_opk)
{
	uint8_t opk_sk[32];
	memset(&A, 0, sizeof A);
	memset(&B, 0, sizeof B);
	e2e_ed25519_keypair(A.ik_pk, A.ik_sk, NULL);
	e2e_ed25519_keypair(B.ik_pk, B.ik_sk, NULL);
	memcpy(bb.ik, B.ik_pk, 32);
	bb.spk_id = 3;
	e2e_x25519_keypair(bb.spk, b_spk_sk, NULL);
	e2e_sign(bb.spk_sig, bb.spk, 32, B.ik_sk);
	bb.opk_id = with_opk ? 9 : 0;
	e2e_x25519_keypair(bb.opk, opk_sk, NULL);
	ck_assert_int_eq(e2e_x3dh_initiate(&A.s, A.ik_pk, A.ik_sk, &bb, NULL, NULL, NULL), 0);

	uint8_t msg[256], pt[256];
	size_t n = e2e_pairwise_encrypt(&A.s, msg, (const uint8_t *)"init", 4), got;
	e2e_prekey pre;
	ck_assert_int_eq(e2e_pairwise_prekey(msg, n, &pre), 1);
	ck_assert_int_eq(e2e_x3dh_respond(&B.s, B.ik_pk, B.ik_sk, bb.spk, b_spk_sk,
	                                  with_opk ? opk_sk : NULL, &pre, NULL), 0);
	ck_assert_int_eq(e2e_pairwise_decrypt(&B.s, pt, &got, msg, n, NULL), 0);
	ck_assert_mem_eq(pt, "init", 4);
}

typedef struct wire { uint8_t b[256]; size_t n; } wire;

static void send(party *s, wire *w, const char *text)
{
	w->n = e2e_pairwise_encrypt(&s->s, w->b, (const uint8_t *)text, strlen(text));
	ck_assert_uint_gt(w->n, 0);
}

static void recv_ok(party *r, const wire *w, const char *text)
{
	uint8_t pt[256];
	size_t got;
	ck_assert_int_eq(e2e_pairwise_decrypt(&r->s, pt, &got, w->b, w->n, NULL), 0);
	ck_assert_uint_eq(got, strlen(text));
	ck_assert_mem_eq(pt, text, got);
}

static void recv_fails(party *r, const wire *w)
{
	uint8_t pt[256];
	size_t got;
	e2e_session before = r->s;
	ck_assert_int_ne(e2e_pairwise_decrypt(&r->s, pt, &got, w->b, w->n, NULL), 0);
	ck_assert_msg(memcmp(&before, &r->s, sizeof before) == 0, "a failed decrypt changed the session");
}

START_TEST(out_of_order_and_skipped)
{
	wire w[6];
	pair_up(_i == 0);
	send(&A, &w[0], "a0");
	send(&A, &w[1], "a1");
	send(&A, &w[2], "a2");
	recv_ok(&B, &w[2], "a2");    /* skips a0, a1 */
	recv_ok(&B, &w[0], "a0");
	recv_fails(&B, &w[0]);       /* a replay */
	send(&B, &w[3], "b0");       /* a new ratchet step while a1 is still in flight */
	recv_ok(&A, &w[3], "b0");
	send(&A, &w[4], "a3");
	recv_ok(&B, &w[4], "a3");
	recv_ok(&B, &w[1], "a1");    /* from the previous chain, via its skipped key */
	ck_assert(!A.s.prekey_pending);
	send(&A, &w[5], "a4");
	ck_assert_int_eq(w[5].b[0], 0);  /* no X3DH part once bob answered */
	recv_ok(&B, &w[5], "a4");
}
END_TEST

START_TEST(tampering_and_limits)
{
	wire w, big;
	pair_up(true);
	send(&A, &w, "secret");
	for (size_t i = 0; i < w.n; i++) {   /* every flipped byte is refused */
		wire t = w;
		t.b[i] ^= 0x40;
		recv_fails(&B, &t);
	}
	wire shorter = w;
	shorter.n = 10;
	recv_fails(&B, &shorter);
	recv_ok(&B, &w, "secret");
	/* a jump of more than E2E_MAX_SKIP keys is refused */
	for (int i = 0; i <= E2E_MAX_SKIP + 1; i++)
		send(&A, &big, "x");
	recv_fails(&B, &big);

	/* a bundle whose signed pre-key is not signed by its identity key */
	e2e_bundle bad = bb;
	bad.spk[0] ^= 1;
	e2e_session s;
	ck_assert_int_ne(e2e_x3dh_initiate(&s, A.ik_pk, A.ik_sk, &bad, NULL, NULL, NULL), 0);
}
END_TEST

START_TEST(sender_keys_out_of_order_and_forgery)
{
	uint8_t pk[32], sk[64], opk[32], osk[64], m[5][256], pt[256];
	size_t n[5], got;
	static e2e_chain mine, theirs;
	e2e_ed25519_keypair(pk, sk, NULL);
	e2e_ed25519_keypair(opk, osk, NULL);
	e2e_chain_new(&mine, 4, NULL);
	theirs = mine;
	memcpy(theirs.sig_pk, pk, 32);
	for (int i = 0; i < 5; i++)
		n[i] = e2e_sender_encrypt(&mine, m[i], (const uint8_t *)"hi", 2, "g:x", sk);
	ck_assert_int_eq(e2e_sender_decrypt(&theirs, pt, &got, m[3], n[3], "g:x"), 0);
	ck_assert_int_eq(e2e_sender_decrypt(&theirs, pt, &got, m[1], n[1], "g:x"), 0);
	ck_assert_int_ne(e2e_sender_decrypt(&theirs, pt, &got, m[1], n[1], "g:x"), 0);
	ck_assert_int_ne(e2e_sender_decrypt(&theirs, pt, &got, m[0], n[0], "g:y"), 0);
	/* another member holding the chain key cannot forge: the signature is the sender's */
	static e2e_chain forger;
	forger = mine;
	size_t fn = e2e_sender_encrypt(&forger, m[4], (const uint8_t *)"no", 2, "g:x", osk);
	ck_assert_int_ne(e2e_sender_decrypt(&theirs, pt, &got, m[4], fn, "g:x"), 0);
	ck_assert_int_eq(e2e_sender_decrypt(&theirs, pt, &got, m[0], n[0], "g:x"), 0);
	ck_assert_int_eq(e2e_sender_decrypt(&theirs, pt, &got, m[2], n[2], "g:x"), 0);
}
END_TEST

START_TEST(body_envelope)
{
	uint8_t b[16] = { 1, 2, 0, 3, 9, 9, 9, 7 };
	e2e_body body;
	ck_assert_int_eq(e2e_body_parse(b, 8, &body), 0);
	ck_assert_uint_eq(body.pairwise_len, 3);
	ck_assert_uint_eq(body.sender_len, 1);
	b[3] = 5;   /* distribution longer than the body */
	ck_assert_int_ne(e2e_body_parse(b, 8, &body), 0);
	b[0] = 2;   /* unknown version */
	ck_assert_int_ne(e2e_body_parse(b, 8, &body), 0);
	uint8_t c[2] = { 1, 9 };
	ck_assert_int_ne(e2e_body_parse(c, 2, &body), 0);
	ck_assert_int_ne(e2e_body_parse(c, 1, &body), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("e2ee");
	TCase *tc = tcase_create("vectors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, hkdf_rfc5869);
	tcase_add_test(tc, x25519_rfc7748);
	tcase_add_test(tc, ratchet_kdfs);
	tcase_add_test(tc, x3dh_and_ratchet_vectors);
	tcase_add_test(tc, sender_key_vectors);
	suite_add_tcase(s, tc);
	tc = tcase_create("ratchet");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, out_of_order_and_skipped, 0, 2);
	tcase_add_test(tc, tampering_and_limits);
	tcase_add_test(tc, sender_keys_out_of_order_and_forgery);
	tcase_add_test(tc, body_envelope);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
