// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keylog.c — RFC 9162 Merkle tree hashing, proofs and signed tree heads
 * (keylog.h). The proof generators follow RFC 9162's recursive definitions
 * PATH and SUBPROOF over a callback that yields subtree hashes; the
 * verifiers are the RFC's iterative algorithms, written from its text. */
#include "keylog.h"

#include "err.h"

#include <sodium.h>
#include <string.h>

static const char head_ctx[] = "mosquitto-chat keylog v1"; /* with its NUL */

/* ---- hashing ---- */

static size_t put_head(uint8_t *p, unsigned major, uint64_t v)
{
	major <<= 5;
	if (v < 24) {
		p[0] = (uint8_t)(major | v);
		return 1;
	}
	if (v <= 0xff) {
		p[0] = (uint8_t)(major | 24), p[1] = (uint8_t)v;
		return 2;
	}
	if (v <= 0xffff) {
		p[0] = (uint8_t)(major | 25), p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)v;
		return 3;
	}
	if (v <= 0xffffffffu) {
		p[0] = (uint8_t)(major | 26);
		for (int i = 0; i < 4; i++)
			p[1 + i] = (uint8_t)(v >> (24 - 8 * i));
		return 5;
	}
	p[0] = (uint8_t)(major | 27);
	for (int i = 0; i < 8; i++)
		p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
	return 9;
}

static size_t put_str(uint8_t *p, unsigned major, const void *s, size_t n)
{
	size_t h = put_head(p, major, n);
	memcpy(p + h, s, n);
	return h + n;
}

size_t kl_leaf_encode(uint8_t *out, const uint8_t ik[KL_PUB], uint64_t ts, const char *u,
                      size_t ul, const char *d, size_t dl)
{
	if (ul > 64 || dl > 64)
		return 0;
	size_t n = put_head(out, 5, 4);
	n += put_str(out + n, 3, "ik", 2);
	n += put_str(out + n, 2, ik, KL_PUB);
	n += put_str(out + n, 3, "ts", 2);
	n += put_head(out + n, 0, ts);
	n += put_str(out + n, 3, "user", 4);
	n += put_str(out + n, 3, u, ul);
	n += put_str(out + n, 3, "device", 6);
	n += put_str(out + n, 3, d, dl);
	return n;
}

void kl_leaf_hash(uint8_t out[KL_HASH], const void *leaf, size_t len)
{
	crypto_hash_sha256_state st;
	const uint8_t zero = 0;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &zero, 1);
	crypto_hash_sha256_update(&st, leaf, len);
	crypto_hash_sha256_final(&st, out);
}

bool kl_entry_hash(uint8_t out[KL_HASH], const uint8_t ik[KL_PUB], uint64_t ts, const char *u,
                   size_t ul, const char *d, size_t dl)
{
	uint8_t leaf[KL_LEAF_MAX];
	size_t n = kl_leaf_encode(leaf, ik, ts, u, ul, d, dl);
	if (!n)
		return false;
	kl_leaf_hash(out, leaf, n);
	return true;
}

void kl_node_hash(uint8_t out[KL_HASH], const uint8_t l[KL_HASH], const uint8_t r[KL_HASH])
{
	crypto_hash_sha256_state st;
	const uint8_t one = 1;
	uint8_t tmp[KL_HASH];
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &one, 1);
	crypto_hash_sha256_update(&st, l, KL_HASH);
	crypto_hash_sha256_update(&st, r, KL_HASH);
	crypto_hash_sha256_final(&st, tmp); /* out may alias l or r */
	memcpy(out, tmp, KL_HASH);
}

uint64_t kl_split(uint64_t n)
{
	uint64_t k = 1;
	while (k << 1 < n)
		k <<= 1;
	return k;
}

static void mth(uint8_t out[KL_HASH], const kl_hash *leaves, uint64_t n)
{
	if (n == 1) {
		memcpy(out, leaves[0], KL_HASH);
		return;
	}
	uint64_t k = kl_split(n);
	uint8_t l[KL_HASH], r[KL_HASH];
	mth(l, leaves, k);
	mth(r, leaves + k, n - k);
	kl_node_hash(out, l, r);
}

void kl_root(uint8_t out[KL_HASH], const kl_hash *leaves, uint64_t n)
{
	if (n == 0)
		crypto_hash_sha256(out, (const uint8_t *)"", 0);
	else
		mth(out, leaves, n);
}

/* ---- verification (RFC 9162 §2.1.3.2, §2.1.4.2) ---- */

bool kl_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[KL_HASH],
                         const kl_hash *proof, size_t n, const uint8_t root[KL_HASH])
{
	if (index >= size)
		return false;
	uint64_t fn = index, sn = size - 1;
	uint8_t r[KL_HASH];
	memcpy(r, leaf, KL_HASH);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			kl_node_hash(r, proof[i], r);
			while (!(fn & 1) && fn != 0)
				fn >>= 1, sn >>= 1;
		} else {
			kl_node_hash(r, r, proof[i]);
		}
		fn >>= 1, sn >>= 1;
	}
	return sn == 0 && sodium_memcmp(r, root, KL_HASH) == 0;
}

bool kl_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[KL_HASH],
                           const uint8_t root2[KL_HASH], const kl_hash *proof, size_t n)
{
	if (size1 > size2)
		return false;
	if (size1 == size2)
		return n == 0 && sodium_memcmp(root1, root2, KL_HASH) == 0;
	if (size1 == 0)
		return n == 0;
	if (n == 0)
		return false;
	/* A first tree of a power-of-two size is a subtree of the second: its
	 * root is the proof's implicit first element. */
	bool pow2 = (size1 & (size1 - 1)) == 0;
	const uint8_t *first = pow2 ? root1 : proof[0];
	size_t i = pow2 ? 0 : 1;
	uint64_t fn = size1 - 1, sn = size2 - 1;
	while (fn & 1)
		fn >>= 1, sn >>= 1;
	uint8_t fr[KL_HASH], sr[KL_HASH];
	memcpy(fr, first, KL_HASH);
	memcpy(sr, first, KL_HASH);
	for (; i < n; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			kl_node_hash(fr, proof[i], fr);
			kl_node_hash(sr, proof[i], sr);
			while (!(fn & 1) && fn != 0)
				fn >>= 1, sn >>= 1;
		} else {
			kl_node_hash(sr, sr, proof[i]);
		}
		fn >>= 1, sn >>= 1;
	}
	return sn == 0 && sodium_memcmp(fr, root1, KL_HASH) == 0 &&
	       sodium_memcmp(sr, root2, KL_HASH) == 0;
}

/* ---- proof generation (RFC 9162 §2.1.3.1, §2.1.4.1) ---- */

/* PATH(m, D[lo:hi]) appended deepest first. */
static int path(kl_mth_fn get, void *ctx, uint64_t m, uint64_t lo, uint64_t hi, kl_hash *proof,
                size_t *n)
{
	if (hi - lo <= 1)
		return 0;
	uint64_t k = kl_split(hi - lo);
	int rc;
	if (m < k) {
		if ((rc = path(get, ctx, m, lo, lo + k, proof, n)) != 0)
			return rc;
		rc = get(ctx, lo + k, hi, proof[*n]);
	} else {
		if ((rc = path(get, ctx, m - k, lo + k, hi, proof, n)) != 0)
			return rc;
		rc = get(ctx, lo, lo + k, proof[*n]);
	}
	if (rc == 0)
		(*n)++;
	return rc;
}

int kl_inclusion_proof(kl_mth_fn get, void *ctx, uint64_t index, uint64_t size, kl_hash *proof,
                       size_t *n)
{
	*n = 0;
	if (index >= size || size > KL_SIZE_MAX)
		return CHAT_EINVAL;
	return path(get, ctx, index, 0, size, proof, n);
}

/* SUBPROOF(m, D[lo:hi], b) appended deepest first. */
static int subproof(kl_mth_fn get, void *ctx, uint64_t m, uint64_t lo, uint64_t hi, bool b,
                    kl_hash *proof, size_t *n)
{
	int rc;
	if (m == hi - lo) {
		if (b)
			return 0;
		if ((rc = get(ctx, lo, hi, proof[*n])) == 0)
			(*n)++;
		return rc;
	}
	uint64_t k = kl_split(hi - lo);
	if (m <= k) {
		if ((rc = subproof(get, ctx, m, lo, lo + k, b, proof, n)) != 0)
			return rc;
		rc = get(ctx, lo + k, hi, proof[*n]);
	} else {
		if ((rc = subproof(get, ctx, m - k, lo + k, hi, false, proof, n)) != 0)
			return rc;
		rc = get(ctx, lo, lo + k, proof[*n]);
	}
	if (rc == 0)
		(*n)++;
	return rc;
}

int kl_consistency_proof(kl_mth_fn get, void *ctx, uint64_t size1, uint64_t size2,
                         kl_hash *proof, size_t *n)
{
	*n = 0;
	if (size1 > size2 || size2 > KL_SIZE_MAX)
		return CHAT_EINVAL;
	if (size1 == 0 || size1 == size2)
		return 0;
	return subproof(get, ctx, size1, 0, size2, true, proof, n);
}

/* ---- signed tree heads ---- */

static void head_msg(uint8_t out[sizeof head_ctx + 48], const kl_head *h)
{
	memcpy(out, head_ctx, sizeof head_ctx);
	uint8_t *p = out + sizeof head_ctx;
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(h->size >> (56 - 8 * i));
		p[8 + i] = (uint8_t)(h->ts >> (56 - 8 * i));
	}
	memcpy(p + 16, h->root, KL_HASH);
}

void kl_head_sign(kl_head *h, const uint8_t sk[KL_SEC])
{
	uint8_t msg[sizeof head_ctx + 48];
	head_msg(msg, h);
	crypto_sign_detached(h->sig, NULL, msg, sizeof msg, sk);
}

bool kl_head_verify(const kl_head *h, const uint8_t pk[KL_PUB])
{
	uint8_t msg[sizeof head_ctx + 48];
	head_msg(msg, h);
	return crypto_sign_verify_detached(h->sig, msg, sizeof msg, pk) == 0;
}

void kl_head_write(cbw *w, const kl_head *h)
{
	cbw_map(w, 4);
	cbw_text(w, "size");
	cbw_uint(w, h->size);
	cbw_text(w, "root");
	cbw_bytes(w, h->root, KL_HASH);
	cbw_text(w, "ts");
	cbw_uint(w, h->ts);
	cbw_text(w, "sig");
	cbw_bytes(w, h->sig, KL_SIG);
}

static bool read_fixed(cbr *r, uint8_t *out, size_t want)
{
	cbr_item v;
	if (cbr_next(r, &v) != CHAT_OK || v.type != CBR_BYTES || v.len != want)
		return false;
	memcpy(out, v.ptr, want);
	return true;
}

const char *kl_head_read(cbr *r, kl_head *h)
{
	cbr_item map, key, v;
	bool size = false, root = false, ts = false, sig = false;
	memset(h, 0, sizeof *h);
	if (cbr_next(r, &map) != CHAT_OK || map.type != CBR_MAP)
		return "head must be a map";
	uint64_t i = 0;
	while (cbr_map_next(r, &map, &i, &key)) {
		if (cbr_eq(&key, "size") || cbr_eq(&key, "ts")) {
			bool is_size = cbr_eq(&key, "size");
			if (cbr_next(r, &v) != CHAT_OK || v.type != CBR_UINT)
				return "head.size and head.ts must be unsigned integers";
			if (is_size) {
				if (v.u > KL_SIZE_MAX)
					return "head.size is too large";
				h->size = v.u, size = true;
			} else {
				h->ts = v.u, ts = true;
			}
		} else if (cbr_eq(&key, "root")) {
			if (!(root = read_fixed(r, h->root, KL_HASH)))
				return "head.root must be 32 bytes";
		} else if (cbr_eq(&key, "sig")) {
			if (!(sig = read_fixed(r, h->sig, KL_SIG)))
				return "head.sig must be 64 bytes";
		} else if (cbr_skip_next(r) != CHAT_OK) {
			break;
		}
	}
	if (r->err_msg)
		return r->err_msg;
	if (!size || !root || !ts || !sig)
		return "head needs size, root, ts and sig";
	return NULL;
}

const char *kl_proof_read(cbr *r, kl_hash *out, size_t cap, size_t *n)
{
	cbr_item arr;
	*n = 0;
	if (cbr_next(r, &arr) != CHAT_OK || arr.type != CBR_ARRAY)
		return "proof must be an array";
	uint64_t i = 0;
	while (cbr_array_next(r, &arr, &i)) {
		if (*n == cap)
			return "proof is too long";
		if (!read_fixed(r, out[*n], KL_HASH))
			return "proof hashes must be 32 bytes";
		(*n)++;
	}
	return r->err_msg;
}

void kl_proof_write(cbw *w, const kl_hash *proof, size_t n)
{
	cbw_array(w, n);
	for (size_t i = 0; i < n; i++)
		cbw_bytes(w, proof[i], KL_HASH);
}

const char *kl_ref_read(cbr *r, kl_ref *ref)
{
	cbr_item map, key, v;
	bool index = false, ts = false, proof = false;
	memset(ref, 0, sizeof *ref);
	if (cbr_next(r, &map) != CHAT_OK || map.type != CBR_MAP)
		return "log reference must be a map";
	uint64_t i = 0;
	while (cbr_map_next(r, &map, &i, &key)) {
		if (cbr_eq(&key, "index") || cbr_eq(&key, "ts")) {
			bool is_index = cbr_eq(&key, "index");
			if (cbr_next(r, &v) != CHAT_OK || v.type != CBR_UINT)
				return "index and ts must be unsigned integers";
			if (is_index) {
				if (v.u >= KL_SIZE_MAX)
					return "index is too large";
				ref->index = v.u, index = true;
			} else {
				ref->ts = v.u, ts = true;
			}
		} else if (cbr_eq(&key, "ik")) {
			if (!(ref->has_ik = read_fixed(r, ref->ik, KL_PUB)))
				return "ik must be 32 bytes";
		} else if (cbr_eq(&key, "proof")) {
			const char *why = kl_proof_read(r, ref->proof, KL_PROOF_MAX, &ref->n);
			if (why)
				return why;
			proof = true;
		} else if (cbr_skip_next(r) != CHAT_OK) {
			break;
		}
	}
	if (r->err_msg)
		return r->err_msg;
	if (!index || !ts || !proof)
		return "log reference needs index, ts and proof";
	return NULL;
}
