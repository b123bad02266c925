// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_codec.h — the pure parts of the JetStream backend: how ids become
 * subject tokens and KV keys, and the decoders of everything that comes
 * back from JetStream (API answers, headers, KV values, log entries).
 * No NATS type and no I/O: unit-tested and fuzzed (tests/fuzz/fuzz_js.c).
 *
 * Ids are [A-Za-z0-9._-]; subjects split on '.', so every id token is
 * encoded with '.' as "=2E" ('=' never occurs in an id: the encoding is
 * injective and readable). A conversation "dm:A:B" becomes "dm.A.B", "g:G"
 * becomes "g.G", a device address "U/D" becomes "U.D" (docs/CLUSTER.md,
 * "The layout"). */
#ifndef CHAT_JS_CODEC_H
#define CHAT_JS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define JS_TOKEN_MAX (3 * CHAT_USER_MAX)             /* an encoded id: every byte may be '.' */
#define JS_CONV_ENC_MAX (3 + 2 * JS_TOKEN_MAX)       /* dm.A.B */
#define JS_ADDR_ENC_MAX (2 * JS_TOKEN_MAX + 1)       /* U.D */
#define JS_CID_ENC_MAX (1 + 2 * STORE_CID_MAX)       /* u<decimal> or b<hex> */
#define JS_PREFIX_MAX 32

/* Big-endian u64, the byte order of every binary record of the backend. */
static inline void js_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t js_be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* An id into a subject token; the length, 0 if it is not a valid id token
 * ([A-Za-z0-9._-], 1..CHAT_USER_MAX bytes) or does not fit. */
size_t js_enc_id(char *out, size_t cap, const char *id, size_t len);
/* A token back into an id; the length, 0 if the token is not one
 * js_enc_id makes. out gets a NUL. */
size_t js_dec_id(char *out, size_t cap, const char *tok, size_t len);
/* "dm:A:B" / "g:G" -> "dm.A.B" / "g.G"; 0 if malformed. */
size_t js_enc_conv(char *out, size_t cap, const char *conv);
/* and back; 0 if malformed. */
size_t js_dec_conv(char *out, size_t cap, const char *enc, size_t len);
/* "U/D" -> "U.D"; 0 if malformed. */
size_t js_enc_addr(char *out, size_t cap, const char *addr);
/* A cid as a key token: "u" + decimal, or "b" + lowercase hex. */
size_t js_enc_cid(char *out, size_t cap, const store_cid *cid);
bool js_dec_cid(const char *s, size_t len, store_cid *out);
/* A cluster prefix: [A-Za-z0-9_-], 1..JS_PREFIX_MAX bytes. */
bool js_valid_prefix(const char *p);

/* A decimal u64 header value, strictly (no sign, no spaces, no overflow). */
bool js_parse_u64(const char *s, size_t len, uint64_t *out);

/* A JetStream API or publish answer (JSON): {"stream":…,"seq":N,
 * "duplicate":true} for a publish, {"success":true} for a delete,
 * {"error":{"code":C,"err_code":E,"description":…}} for a refusal. */
typedef struct js_api_answer {
	bool ok;              /* no "error" */
	uint64_t seq;         /* a publish's stream sequence */
	bool duplicate;       /* a publish deduplicated by Nats-Msg-Id */
	bool success;         /* "success": true (deletes, purges) */
	int code;             /* the error's HTTP-like code */
	int err_code;         /* JetStream's error code: 10071 wrong last sequence, … */
	char desc[128];       /* the error's description, cut */
} js_api_answer;
/* CHAT_OK, or CHAT_ECORRUPT when the answer is not one of those shapes. */
int js_parse_api(const char *buf, size_t len, js_api_answer *out);

/* A message read at the stream's leader (the non-direct API,
 * $JS.API.STREAM.MSG.GET: read-your-writes, unlike a direct get that any
 * replica may answer): {"message":{"subject":…,"seq":N,"hdrs":base64,
 * "data":base64,"time":…}} or an error (a->ok false; 10037: no message).
 * On CHAT_OK with a->ok: subject (NUL-terminated, cut to cap is refused),
 * *seq, and *hdrs / *data malloc'd (NULL when absent; the caller frees). */
int js_parse_msg_get(const char *buf, size_t len, js_api_answer *a, char *subject, size_t cap,
                     uint64_t *seq, uint8_t **hdrs, size_t *hlen, uint8_t **data, size_t *dlen);
/* A NATS header block ("NATS/1.0[ status]\r\nKey: Value\r\n…\r\n"): cb for
 * each header (not NUL-terminated), in order; CHAT_ECORRUPT if malformed. */
typedef int (*js_hdr_cb)(void *arg, const char *k, size_t kl, const char *v, size_t vl);
int js_parse_hdrs(const uint8_t *b, size_t n, js_hdr_cb cb, void *arg);

/* KV values (the record formats of the buckets). */
/* A cred record (chat_acct dev.U.D / svc.NAME): u8 version 1, 32-byte hash,
 * u64 created (ms, big-endian), [u8 role] — store_internal.h's format. */
size_t js_cred_encode(uint8_t *out, size_t cap, const uint8_t hash[STORE_HASH_LEN], uint64_t created,
                      enum store_role role, bool service);
int js_cred_decode(const uint8_t *v, size_t len, uint8_t hash[STORE_HASH_LEN], enum store_role *role);
/* prefs: u8 version 1, u8 read_receipts, u8 presence. */
size_t js_prefs_encode(uint8_t out[3], const store_prefs *p);
int js_prefs_decode(const uint8_t *v, size_t len, store_prefs *p);
/* push target: u8 version 1, u8 platform, u8 flags (1: alert), token. */
size_t js_push_encode(uint8_t *out, size_t cap, const store_push *p);
/* p->token points into v. */
int js_push_decode(const uint8_t *v, size_t len, store_push *p);
/* the dedup claim: u8 version 1, u64 first seq tried, u64 ts, u64 nonce,
 * u8 len + conv, u8 len + node (big-endian). */
#define JS_NODE_MAX 64
typedef struct js_claim {
	char conv[CHAT_CONV_MAX + 1];
	uint64_t seq0, ts, nonce;
	char node[JS_NODE_MAX + 1];
} js_claim;
size_t js_claim_encode(uint8_t *out, size_t cap, const js_claim *c);
int js_claim_decode(const uint8_t *v, size_t len, js_claim *c);

/* A send's log entry header Chat-Rcpts: items "U/D:<stream seq>" joined by
 * ','. True if an item (with a well-formed decimal after its last ':')
 * names stream seq sseq; a malformed item names nothing. */
bool js_rcpts_has(const char *s, size_t len, uint64_t sseq);
/* The seq of a log subject "<prefix>.log.<conv tokens>.<seq>": its last token. */
bool js_subject_last_u64(const char *subj, size_t len, uint64_t *out);

#endif
