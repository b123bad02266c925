// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_e2ee — chat-client's decoders of encrypted bodies (examples/client/
 * e2ee.c): arbitrary bytes as a message body received by bob, who holds a
 * session with alice (made from the fixed keys of tests/vectors/e2ee.json,
 * so the vector bodies in the seed corpus decrypt) and alice's sender key
 * for g:team. Each input goes through the envelope parser, the X3DH part,
 * the Double Ratchet (on a copy of the session, and a fresh X3DH when the
 * input carries a prekey part) and the sender-key decryption. A failed
 * decryption must leave the session or chain exactly as it was.
 */
#include "e2ee.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	uint8_t bob_ik_pk[32], bob_ik_sk[64], spk_pk[32], spk_sk[32], opk_sk[32];
	uint32_t spk_id, opk_id;
	e2e_session bob;     /* after alice's first message */
	e2e_chain team;      /* alice's sender key, as bob holds it */
	e2e_session work;
	e2e_chain cwork;
	uint8_t out[1 << 16];
} S;

/* The fixed private keys of the vectors: SHA-256("mosquitto-chat test vector: " label). */
static void fixed(uint8_t out[32], const char *label)
{
	char buf[128];
	snprintf(buf, sizeof buf, "mosquitto-chat test vector: %s", label);
	crypto_hash_sha256(out, (const uint8_t *)buf, strlen(buf));
}

static void die(const char *why)
{
	fprintf(stderr, "fuzz_e2ee: %s\n", why);
	abort();
}

static void init(void)
{
	uint8_t seed[32], a_pk[32], a_sk[64], ek[32], r1[32], pk[32], msg[256];
	e2e_bundle b;
	e2e_session alice;

	if (e2e_init() != 0)
		die("sodium_init");
	fixed(seed, "bob identity seed");
	e2e_ed25519_keypair(S.bob_ik_pk, S.bob_ik_sk, seed);
	fixed(S.spk_sk, "bob spk");
	e2e_x25519_keypair(S.spk_pk, S.spk_sk, S.spk_sk);
	fixed(S.opk_sk, "bob opk 7");
	S.spk_id = 1;
	S.opk_id = 7;
	memset(&b, 0, sizeof b);
	memcpy(b.ik, S.bob_ik_pk, 32);
	b.spk_id = S.spk_id;
	memcpy(b.spk, S.spk_pk, 32);
	e2e_sign(b.spk_sig, b.spk, 32, S.bob_ik_sk);
	b.opk_id = S.opk_id;
	e2e_x25519_keypair(b.opk, pk, S.opk_sk);

	fixed(seed, "alice identity seed");
	e2e_ed25519_keypair(a_pk, a_sk, seed);
	fixed(ek, "alice ek");
	fixed(r1, "alice ratchet 1");
	if (e2e_x3dh_initiate(&alice, a_pk, a_sk, &b, ek, r1, NULL) != 0)
		die("x3dh");
	uint8_t pt[] = { E2E_PT_TEXT, 'h', 'e', 'l', 'l', 'o', ' ', 'b', 'o', 'b' };
	size_t n = e2e_pairwise_encrypt(&alice, msg, pt, sizeof pt), got;
	e2e_prekey pre;
	uint8_t r[32];
	fixed(r, "bob ratchet 1");
	if (e2e_pairwise_prekey(msg, n, &pre) != 1 ||
	    e2e_x3dh_respond(&S.bob, S.bob_ik_pk, S.bob_ik_sk, S.spk_pk, S.spk_sk, S.opk_sk, &pre,
	                     NULL) != 0 ||
	    e2e_pairwise_decrypt(&S.bob, S.out, &got, msg, n, r) != 0)
		die("the first message does not decrypt");

	fixed(seed, "alice sender key team");
	e2e_chain_new(&S.team, 1, seed);
	memcpy(S.team.sig_pk, a_pk, 32);
}

/* Decrypts on S.work; a failure must not change it. */
static void try_pairwise(const uint8_t *m, size_t len)
{
	static e2e_session before;
	size_t got;
	before = S.work;
	if (e2e_pairwise_decrypt(&S.work, S.out, &got, m, len, NULL) != 0) {
		if (memcmp(&before, &S.work, sizeof before) != 0)
			die("a failed decryption changed the session");
	} else if (got > len) {
		die("plaintext longer than the message");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	e2e_body body;
	e2e_prekey pre;

	if (!ready) {
		init();
		ready = 1;
	}
	if (size > sizeof S.out || e2e_body_parse(data, size, &body) != 0)
		return 0;
	if (body.pairwise) {
		S.work = S.bob;
		try_pairwise(body.pairwise, body.pairwise_len);
		if (e2e_pairwise_prekey(body.pairwise, body.pairwise_len, &pre) == 1 &&
		    e2e_x3dh_respond(&S.work, S.bob_ik_pk, S.bob_ik_sk, S.spk_pk, S.spk_sk,
		                     pre.opk_id ? S.opk_sk : NULL, &pre, NULL) == 0)
			try_pairwise(body.pairwise, body.pairwise_len);
	}
	if (body.sender) {
		static e2e_chain before;
		size_t got;
		S.cwork = S.team;
		before = S.cwork;
		(void)e2e_sender_key_id(body.sender, body.sender_len);
		if (e2e_sender_decrypt(&S.cwork, S.out, &got, body.sender, body.sender_len, "g:team") != 0 &&
		    memcmp(&before, &S.cwork, sizeof before) != 0)
			die("a failed decryption changed the chain");
	}
	return 0;
}
