// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keylog.h — the key directory's append-only Merkle log: hashing, proofs
 * and signed tree heads, shared by the key server (which builds the tree),
 * chat-client (which checks a proof with every bundle) and chat-keyaudit
 * (which replays the whole log). No I/O here.
 *
 * The tree is RFC 9162's (Certificate Transparency 2.0, §2.1):
 *   leaf hash  = SHA-256(0x00 ‖ leaf)          leaf = the entry's CBOR
 *   node hash  = SHA-256(0x01 ‖ left ‖ right)
 *   MTH({})    = SHA-256("")
 * and so are its inclusion and consistency proofs (§2.1.3, §2.1.4) and
 * their verification algorithms. A leaf is one identity-key publication,
 * the deterministic CBOR map {"ik": bytes(32), "ts": uint ms, "user": text,
 * "device": text} (keys in RFC 8949 §4.2.1 order, shortest lengths).
 *
 * A signed tree head {size, root, ts, sig}: sig is the key server's Ed25519
 * signature over "mosquitto-chat keylog v1\0" ‖ size(8, BE) ‖ ts(8, BE) ‖
 * root(32). docs/KEYSERVER.md ("Key directory log") has the wire format,
 * docs/SECURITY.md the threat model.
 */
#ifndef CHAT_KEYLOG_H
#define CHAT_KEYLOG_H

#include "cbor_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_HASH 32
#define KL_PUB 32
#define KL_SEC 64              /* libsodium's Ed25519 secret key (seed ‖ public) */
#define KL_SIG 64
#define KL_PROOF_MAX 64        /* hashes in one proof; a tree of 2^63 leaves needs 126
                                  for consistency in theory, but sizes here stay < 2^32 */
#define KL_LEAF_MAX 200        /* bytes of one encoded leaf */
#define KL_SIZE_MAX (UINT64_C(1) << 32) /* the log's size bound (proof lengths) */

typedef uint8_t kl_hash[KL_HASH];

typedef struct kl_head {
	uint64_t size;              /* leaves in the tree */
	uint64_t ts;                /* ms since the epoch, when it was signed */
	uint8_t root[KL_HASH];
	uint8_t sig[KL_SIG];
} kl_head;

/* The leaf's CBOR into out (KL_LEAF_MAX bytes); returns its length, 0 when
 * the ids are too long. */
size_t kl_leaf_encode(uint8_t *out, const uint8_t ik[KL_PUB], uint64_t ts, const char *u,
                      size_t ul, const char *d, size_t dl);
void kl_leaf_hash(uint8_t out[KL_HASH], const void *leaf, size_t len);
/* The leaf hash of the entry (user, device, ik, ts); false if the ids are too long. */
bool kl_entry_hash(uint8_t out[KL_HASH], const uint8_t ik[KL_PUB], uint64_t ts, const char *u,
                   size_t ul, const char *d, size_t dl);
void kl_node_hash(uint8_t out[KL_HASH], const uint8_t l[KL_HASH], const uint8_t r[KL_HASH]);

/* MTH of n leaf hashes (the whole tree, O(n) time, O(log n) stack). */
void kl_root(uint8_t out[KL_HASH], const kl_hash *leaves, uint64_t n);

/* RFC 9162 §2.1.3.2: leaf (hash) is number index of a tree of size with root. */
bool kl_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[KL_HASH],
                         const kl_hash *proof, size_t n, const uint8_t root[KL_HASH]);
/* RFC 9162 §2.1.4.2: the tree (size1, root1) is a prefix of (size2, root2).
 * size1 == size2 needs an empty proof and equal roots; size1 == 0 is a
 * prefix of anything (empty proof). */
bool kl_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[KL_HASH],
                           const uint8_t root2[KL_HASH], const kl_hash *proof, size_t n);

/* Proofs computed from a source of subtree hashes: get(ctx, lo, hi, out)
 * must give MTH(D[lo:hi]) and return 0, or nonzero on failure (which is
 * passed back). The key server reads stored nodes, tests use leaf arrays. */
typedef int (*kl_mth_fn)(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[KL_HASH]);
int kl_inclusion_proof(kl_mth_fn get, void *ctx, uint64_t index, uint64_t size, kl_hash *proof,
                       size_t *n);
int kl_consistency_proof(kl_mth_fn get, void *ctx, uint64_t size1, uint64_t size2,
                         kl_hash *proof, size_t *n);
/* The largest power of two below n (n >= 2). */
uint64_t kl_split(uint64_t n);

/* Signed tree heads. */
void kl_head_sign(kl_head *h, const uint8_t sk[KL_SEC]);
bool kl_head_verify(const kl_head *h, const uint8_t pk[KL_PUB]);
/* {size, root, ts, sig} */
void kl_head_write(cbw *w, const kl_head *h);
/* Reads a head map (its header not yet read) from r: NULL, or why not. */
const char *kl_head_read(cbr *r, kl_head *h);
/* Reads a proof, an array of 32-byte strings, at most cap (header not yet
 * read): NULL, or why not. */
const char *kl_proof_read(cbr *r, kl_hash *out, size_t cap, size_t *n);
void kl_proof_write(cbw *w, const kl_hash *proof, size_t n);

/* Where a key is in the log: a bundle entry's `log` {index, ts, proof} or a
 * history entry {index, ik, ts, proof}. */
typedef struct kl_ref {
	uint64_t index, ts;
	bool has_ik;
	uint8_t ik[KL_PUB];
	kl_hash proof[KL_PROOF_MAX];
	size_t n;
} kl_ref;
/* Reads one such map (header not yet read): NULL, or why not. */
const char *kl_ref_read(cbr *r, kl_ref *ref);

#endif
