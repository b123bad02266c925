// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* attach.h — attachments (docs/E2EE.md §4.3 type 3, §4.5): the file
 * encryption and the pointer plaintext of chat-client.
 *
 * A file is encrypted before it leaves the device with a fresh random
 * 32-byte key, by libsodium's crypto_secretstream_xchacha20poly1305: the
 * 24-byte stream header first, then the plaintext in 64 KiB chunks, each
 * sealed with its 17 bytes of overhead; the chunk that ends the file (only
 * one, empty, for an empty file) carries the FINAL tag, every other one the
 * MESSAGE tag. So a truncated, extended or reordered ciphertext fails to
 * decrypt. `digest` is SHA-256 over the whole ciphertext as uploaded.
 *
 * The pointer (what the E2EE message carries) is the plaintext type 3:
 * 0x03 || CBOR map {id, key, digest, size, type, ?name, ?duration_ms,
 * ?thumb, ?caption}, written with its keys in canonical (length-first)
 * order so both reference clients produce the same bytes.
 *
 * The file functions stream through FILE handles (a file is never held in
 * memory); everything else is pure. No network, no clock.
 */
#ifndef CHAT_ATTACH_H
#define CHAT_ATTACH_H

#include "cbor_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ATT_KEY 32
#define ATT_DIGEST 32
#define ATT_CHUNK 65536                  /* plaintext bytes per chunk */
#define ATT_HEADER 24                    /* secretstream header */
#define ATT_ABYTES 17                    /* per-chunk overhead (tag byte + MAC) */
#define ATT_PT_TYPE 3                    /* plaintext type of a pointer */

/* Limits of the pointer's fields (a pointer outside them is refused). */
#define ATT_ID_MAX 128                   /* blob id: [A-Za-z0-9_-] */
#define ATT_TYPE_MAX 255                 /* content type */
#define ATT_NAME_MAX 255                 /* file name, UTF-8 bytes */
#define ATT_CAPTION_MAX 4096
#define ATT_THUMB_MAX 8192               /* JPEG thumbnail */
#define ATT_SIZE_MAX (UINT64_C(1) << 40) /* ciphertext bytes */

/* The pointer: strings point into the decoded buffer (or the caller's). */
typedef struct att_ptr {
	const char *id; size_t id_len;
	uint8_t key[ATT_KEY];
	uint8_t digest[ATT_DIGEST];
	uint64_t size;                       /* ciphertext bytes */
	const char *type; size_t type_len;
	const char *name; size_t name_len;   /* name NULL: absent */
	bool has_duration;
	uint64_t duration_ms;
	const uint8_t *thumb; size_t thumb_len; /* thumb NULL: absent */
	const char *caption; size_t caption_len; /* caption NULL: absent */
} att_ptr;

/* Ciphertext size of a plaintext of n bytes. */
uint64_t att_cipher_size(uint64_t n);

/* Encrypts in (to its end) into out under key; digest and *ct_size describe
 * what was written. 0, or -1 on a read/write error (errno kept). */
int att_encrypt_file(FILE *in, FILE *out, const uint8_t key[ATT_KEY], uint8_t digest[ATT_DIGEST],
                     uint64_t *ct_size);

/* SHA-256 of in (to its end). 0, or -1 on a read error. */
int att_digest_file(FILE *in, uint8_t digest[ATT_DIGEST], uint64_t *size);

enum { ATT_OK = 0, ATT_EIO = -1, ATT_EBAD = -2 };
/* Decrypts in (a whole ciphertext) into out. ATT_OK; ATT_EIO on a read or
 * write error; ATT_EBAD when the ciphertext does not authenticate, is
 * truncated, reordered, or has bytes after its final chunk. On an error out
 * holds garbage: the caller discards it. */
int att_decrypt_file(FILE *in, FILE *out, const uint8_t key[ATT_KEY]);

/* Is s a valid blob id (1..ATT_ID_MAX of [A-Za-z0-9_-])? */
bool att_valid_id(const char *s, size_t len);

/* Writes the pointer plaintext (0x03 then the CBOR map) into w (reset first). */
void att_ptr_encode(const att_ptr *p, cbw *w);

/* Decodes a pointer plaintext (with its type byte): NULL, or what is wrong
 * with it. Strings in p point into buf. Unknown keys are skipped. */
const char *att_ptr_decode(att_ptr *p, const uint8_t *buf, size_t len);

/* A chat-media answer (docs/PROTOCOL.md "Attachments"): slot-ok (id, put,
 * expires), grant-ok (url, size, expires) or error (code, msg,
 * retry_after). Strings point into the decoded buffer; url is `put` of a
 * slot-ok or `url` of a grant-ok. */
typedef struct att_resp {
	bool has_rid, ok;
	uint64_t rid, size, expires, retry_after;
	const char *id; size_t id_len;
	const char *url; size_t url_len;
	const char *code; size_t code_len;
	const char *msg; size_t msg_len;
} att_resp;

#define ATT_URL_MAX 4096
/* NULL, or what is wrong with the answer (not a map, a field of the wrong
 * type, ok missing). Which fields an ok answer needs is the caller's check. */
const char *att_resp_decode(att_resp *r, const uint8_t *buf, size_t len);

/* A safe local file name from the pointer's name (or the blob id): the last
 * path component, control characters, '/', '\\' and a leading '.' replaced
 * by '_', at most cap - 1 bytes (cap >= 2). */
void att_safe_name(char *out, size_t cap, const char *name, size_t len);

#endif
