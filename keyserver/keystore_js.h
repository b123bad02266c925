// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keystore_js.h — the key store on NATS JetStream (cluster mode), behind
 * keystore.h: keystore.c hands every call to these when ks_opts.cluster_urls
 * is set. No NATS type in here: keystore_js.c is the only file of the key
 * server that includes nats/nats.h (docs/CLUSTER.md, "The key server").
 *
 * The pure parts (subject tokens, the record codecs of what is read back
 * from JetStream) are exported for the unit tests and the fuzz target. */
#ifndef CHAT_KEYSTORE_JS_H
#define CHAT_KEYSTORE_JS_H

#include "keystore.h"

typedef struct ksjs ksjs;

int ksjs_open(ksjs **out, const ks_opts *o, char *errbuf, size_t errlen);
void ksjs_close(ksjs *j);
const char *ksjs_errmsg(const ksjs *j);
uint64_t ksjs_keys_estimate(ksjs *j);
int ksjs_sync(ksjs *j);
/* ks_upload has checked the request (n, the spk's signature) before this. */
int ksjs_upload(ksjs *j, const char *u, size_t ul, const char *d, size_t dl,
                const uint8_t ik[KS_KEY_LEN], const ks_spk *spk, const ks_opk *opks, size_t n,
                uint32_t *count);
int ksjs_bundle_get(ksjs *j, const char *ru, size_t rul, const char *rd, size_t rdl,
                    const char *u, size_t ul, ks_bundle *b, uint64_t *retry_after_s);
int ksjs_count(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, uint32_t *count);
int ksjs_check(ksjs *j, const char *u, size_t ul, const char *d, size_t dl,
               const uint8_t digest[KS_DIGEST_LEN], bool *match);
int ksjs_drop_device(ksjs *j, const char *u, size_t ul, const char *d, size_t dl);
const kl_head *ksjs_log_head(const ksjs *j);
const uint8_t *ksjs_log_pub(const ksjs *j);
int ksjs_log_head_at(ksjs *j, uint64_t size, kl_head *h);
int ksjs_log_get(ksjs *j, uint64_t index, ks_log_entry *e);
int ksjs_log_inclusion(ksjs *j, uint64_t index, uint64_t size, kl_hash *proof, size_t *n);
int ksjs_log_consistency(ksjs *j, uint64_t from, uint64_t to, kl_hash *proof, size_t *n);
int ksjs_log_history(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, uint64_t *idx,
                     size_t cap, size_t *n);

/* ---- pure parts ---- */

/* Shared by both backends (here: chat_keystore links this library, not
 * the other way). */
/* Big-endian u64, the byte order of both backends' records. */
static inline void ks_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t ks_be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* A zeroed entry at the end of b (NULL: out of memory). */
ks_entry *ks_bundle_add(ks_bundle *b);
/* digest == SHA-256(ik || spk), in constant time: ks_check's test. */
bool ks_keys_match(const uint8_t ik[KS_KEY_LEN], const uint8_t spk[KS_KEY_LEN],
                   const uint8_t digest[KS_DIGEST_LEN]);

/* An id as one subject token: bytes outside [A-Za-z0-9_-] become =XX (two
 * upper-case hex digits), so '.', '*', '>' and '=' never reach a subject
 * and the encoding is injective. Returns the length written (NUL added),
 * 0 when cap is too small or len is 0. */
size_t ksjs_token(char *out, size_t cap, const char *id, size_t len);

/* Record bodies (version byte 1 first). Decoders return false for anything
 * malformed: a wrong length, version or id. */
#define KSJS_DEV_LEN (1 + KS_KEY_LEN + 8 + KS_KEY_LEN + KS_SIG_LEN + 8 + 8 + 8 + 8)
#define KSJS_OPK_LEN (1 + 8 + KS_KEY_LEN + KS_KEY_LEN)
typedef struct ksjs_dev {
	uint8_t ik[KS_KEY_LEN];
	ks_spk spk;
	uint64_t id_lo, id_hi;     /* one-time key ids uploaded under this ik (lo > hi: none) */
	uint64_t log_index, log_ts;
} ksjs_dev;
void ksjs_dev_encode(uint8_t out[KSJS_DEV_LEN], const ksjs_dev *r);
bool ksjs_dev_decode(const void *p, size_t n, ksjs_dev *r);
void ksjs_opk_encode(uint8_t out[KSJS_OPK_LEN], const ks_opk *o, const uint8_t ik[KS_KEY_LEN]);
bool ksjs_opk_decode(const void *p, size_t n, ks_opk *o, uint8_t ik[KS_KEY_LEN]);
/* A log leaf: ver | ts(8) | ik(32) | user length(1) | user | device. */
size_t ksjs_leaf_encode(uint8_t *out, size_t cap, const ks_log_entry *e);
bool ksjs_leaf_decode(const void *p, size_t n, ks_log_entry *e);
/* A device-list change: ver | '+' or '-' | device. */
bool ksjs_ulist_decode(const void *p, size_t n, bool *added, char dev[CHAT_DEVICE_MAX + 1]);
/* Parses a JetStream header value holding a decimal u64 (Nats-Sequence). */
bool ksjs_parse_u64(const char *s, uint64_t *v);

#endif
