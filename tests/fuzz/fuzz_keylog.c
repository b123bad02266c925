// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_keylog — the key directory log's decoders (common/keylog.c), as
 * chat-client and chat-keyaudit use them on key server answers: the input
 * is read as one answer map whose `head` goes through kl_head_read, whose
 * `consistency` through kl_proof_read, and whose `devices[].log` and
 * `entries[]` through kl_ref_read. Whatever decodes is then verified the
 * way the client does (signature under the vectors' log key, consistency
 * with a remembered head of size 5, inclusion of the reference), and
 * written back: a decoded head or proof must re-encode and decode to the
 * same value. Seeds: answers built on tests/vectors/keylog.json's tree.
 */
#include "cbor_io.h"
#include "err.h"
#include "keylog.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	bool init;
	uint8_t pk[KL_PUB], root5[KL_HASH];
	cbw w;
	kl_hash proof[KL_PROOF_MAX], back[KL_PROOF_MAX];
	kl_ref ref;
} S;

static void die(const char *why)
{
	fprintf(stderr, "fuzz_keylog: %s\n", why);
	abort();
}

static void setup(void)
{
	if (sodium_init() < 0)
		die("sodium_init");
	uint8_t seed[32], sk[64];
	crypto_hash_sha256(seed, (const uint8_t *)"keylog vector seed", 18);
	crypto_sign_seed_keypair(S.pk, sk, seed);
	memset(S.root5, 0x55, sizeof S.root5);
	cbw_init(&S.w);
	S.init = true;
}

static void head_roundtrip(const kl_head *h)
{
	cbw_reset(&S.w);
	kl_head_write(&S.w, h);
	cbr r;
	kl_head back;
	cbr_init(&r, S.w.buf, S.w.len);
	if (kl_head_read(&r, &back) || !cbr_done(&r) || memcmp(&back, h, sizeof back) != 0)
		die("a decoded head does not round-trip");
}

static void proof_roundtrip(const kl_hash *p, size_t n)
{
	cbw_reset(&S.w);
	kl_proof_write(&S.w, p, n);
	cbr r;
	size_t m;
	cbr_init(&r, S.w.buf, S.w.len);
	if (kl_proof_read(&r, S.back, KL_PROOF_MAX, &m) || m != n ||
	    memcmp(S.back, p, n * KL_HASH) != 0)
		die("a decoded proof does not round-trip");
}

static void check_ref(const kl_head *h, bool has_head)
{
	if (S.ref.n > KL_PROOF_MAX || S.ref.index >= KL_SIZE_MAX)
		die("a reference out of bounds was accepted");
	proof_roundtrip(S.ref.proof, S.ref.n);
	uint8_t leaf[KL_HASH];
	if (!kl_entry_hash(leaf, S.ref.ik, S.ref.ts, "user3", 5, "d0", 2))
		die("kl_entry_hash refused valid ids");
	if (has_head)
		(void)kl_verify_inclusion(S.ref.index, h->size, leaf, S.ref.proof, S.ref.n, h->root);
}

/* Reads an array whose elements are maps: each through kl_ref_read, or
 * (devices) a map whose `log` is. */
static int read_refs(cbr *r, bool devices, const kl_head *h, bool has_head)
{
	cbr_item arr, m, k;
	if (cbr_next(r, &arr) != CHAT_OK || arr.type != CBR_ARRAY)
		return -1;
	uint64_t i = 0;
	while (cbr_array_next(r, &arr, &i)) {
		if (!devices) {
			if (kl_ref_read(r, &S.ref) != NULL)
				return -1;
			check_ref(h, has_head);
			continue;
		}
		if (cbr_next(r, &m) != CHAT_OK || m.type != CBR_MAP)
			return -1;
		uint64_t j = 0;
		while (cbr_map_next(r, &m, &j, &k)) {
			if (cbr_eq(&k, "log")) {
				if (kl_ref_read(r, &S.ref) != NULL)
					return -1;
				check_ref(h, has_head);
			} else if (cbr_skip_next(r) != CHAT_OK) {
				return -1;
			}
		}
		if (r->err_msg)
			return -1;
	}
	return r->err_msg ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!S.init)
		setup();
	cbr r;
	cbr_item map, key;
	kl_head h;
	bool has_head = false;
	size_t ncons = 0;
	bool has_cons = false;
	cbr_init(&r, data, size);
	if (cbr_next(&r, &map) != CHAT_OK || map.type != CBR_MAP)
		return 0;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		int rc = 0;
		if (cbr_eq(&key, "head")) {
			const char *why = kl_head_read(&r, &h);
			if (!why) {
				if (h.size > KL_SIZE_MAX)
					die("a head over the size bound was accepted");
				head_roundtrip(&h);
				has_head = true;
			} else {
				rc = -1;
			}
		} else if (cbr_eq(&key, "consistency")) {
			if (kl_proof_read(&r, S.proof, KL_PROOF_MAX, &ncons) != NULL)
				rc = -1;
			else if (ncons > KL_PROOF_MAX)
				die("a proof over the bound was accepted");
			else
				proof_roundtrip(S.proof, ncons), has_cons = true;
		} else if (cbr_eq(&key, "devices") || cbr_eq(&key, "entries")) {
			rc = read_refs(&r, cbr_eq(&key, "devices"), &h, has_head);
		} else if (cbr_skip_next(&r) != CHAT_OK) {
			rc = -1;
		}
		if (rc)
			return 0;
	}
	if (has_head) {
		bool sig = kl_head_verify(&h, S.pk);
		if (has_cons && kl_verify_consistency(5, h.size, S.root5, h.root, S.proof, ncons) &&
		    h.size < 5)
			die("a consistency proof to a smaller tree verified");
		(void)sig;
	}
	return 0;
}
