// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_attach — chat-client's attachment decoders (examples/client/
 * attach.c). The first byte picks one:
 *
 *   0  att_ptr_decode: a pointer plaintext from a peer. An accepted pointer
 *      has every field within its limits and its strings inside the input;
 *      written again (att_ptr_encode) it decodes to the same fields.
 *   1  att_resp_decode: an answer from chat-media. Strings inside the input.
 *   2  att_decrypt_file: a downloaded ciphertext, under the key of the
 *      "attachment small" vector (tests/vectors/attachment.json), so the
 *      seed ciphertexts decrypt. What it accepts is exactly
 *      att_cipher_size(plaintext) long.
 */
#include "attach.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *why)
{
	fprintf(stderr, "fuzz_attach: %s\n", why);
	abort();
}

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
	const uint8_t *q = p;
	return !p || (q >= buf && q + n <= buf + len);
}

static void pointer(const uint8_t *d, size_t n)
{
	att_ptr p, q;
	if (att_ptr_decode(&p, d, n))
		return;
	if (!inside(p.id, p.id_len, d, n) || !inside(p.type, p.type_len, d, n) ||
	    !inside(p.name, p.name_len, d, n) || !inside(p.caption, p.caption_len, d, n) ||
	    !inside(p.thumb, p.thumb_len, d, n))
		die("a string outside the input");
	if (!att_valid_id(p.id, p.id_len) || p.type_len < 1 || p.type_len > ATT_TYPE_MAX ||
	    p.name_len > ATT_NAME_MAX || p.caption_len > ATT_CAPTION_MAX ||
	    p.thumb_len > ATT_THUMB_MAX || p.size > ATT_SIZE_MAX)
		die("accepted a field outside its limits");
	cbw w;
	cbw_init(&w);
	att_ptr_encode(&p, &w);
	if (cbw_status(&w) != 0)
		die("encode failed");
	if (att_ptr_decode(&q, w.buf, w.len))
		die("a re-encoded pointer does not decode");
	if (q.id_len != p.id_len || memcmp(q.id, p.id, p.id_len) != 0 ||
	    memcmp(q.key, p.key, ATT_KEY) != 0 || memcmp(q.digest, p.digest, ATT_DIGEST) != 0 ||
	    q.size != p.size || q.type_len != p.type_len || (q.name == NULL) != (p.name == NULL) ||
	    q.name_len != p.name_len || q.caption_len != p.caption_len ||
	    q.thumb_len != p.thumb_len || q.has_duration != p.has_duration ||
	    q.duration_ms != p.duration_ms)
		die("the round trip changed the pointer");
	char name[ATT_NAME_MAX + 1];
	att_safe_name(name, sizeof name, p.name ? p.name : p.id, p.name ? p.name_len : p.id_len);
	if (!name[0] || strchr(name, '/') || name[0] == '.')
		die("an unsafe file name");
	cbw_free(&w);
}

static void answer(const uint8_t *d, size_t n)
{
	att_resp r;
	if (att_resp_decode(&r, d, n))
		return;
	if (!inside(r.id, r.id_len, d, n) || !inside(r.url, r.url_len, d, n) ||
	    !inside(r.code, r.code_len, d, n) || !inside(r.msg, r.msg_len, d, n))
		die("a string outside the input");
	if (r.url && (r.url_len == 0 || r.url_len > ATT_URL_MAX || memchr(r.url, 0, r.url_len)))
		die("accepted a bad url");
}

static void ciphertext(const uint8_t *d, size_t n)
{
	static const uint8_t key[ATT_KEY] = {   /* SHA-256("mosquitto-chat test vector: attachment small") */
		0xcc, 0xfa, 0xd4, 0xae, 0xc3, 0x1c, 0x5e, 0xe4, 0xcf, 0x77, 0x0d, 0x18, 0x30, 0x40, 0xfc, 0x38,
		0x24, 0x16, 0x0e, 0xb7, 0x5f, 0x25, 0xcf, 0x92, 0x82, 0x6c, 0x2d, 0xc3, 0xff, 0x7a, 0x6e, 0xc7,
	};
	if (n == 0)
		return;   /* fmemopen wants a size above 0 */
	FILE *in = fmemopen((void *)d, n, "rb");
	char *pt = NULL;
	size_t pt_len = 0;
	FILE *out = open_memstream(&pt, &pt_len);
	if (!in || !out)
		die("fmemopen/open_memstream");
	int rc = att_decrypt_file(in, out, key);
	fclose(in);
	fclose(out);
	if (rc == ATT_OK && att_cipher_size(pt_len) != n)
		die("accepted a ciphertext of the wrong length");
	if (rc != ATT_OK && rc != ATT_EBAD)
		die("an I/O error from memory streams");
	free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			die("sodium_init");
		ready = true;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: pointer(data + 1, size - 1); break;
	case 1: answer(data + 1, size - 1); break;
	default: ciphertext(data + 1, size - 1); break;
	}
	return 0;
}
