// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* attach.c — file encryption and the attachment pointer (attach.h,
 * docs/E2EE.md §4.3 and §4.5). */
#include "attach.h"

#include "err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SS_TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define SS_TAG_FINAL crypto_secretstream_xchacha20poly1305_TAG_FINAL

_Static_assert(ATT_HEADER == crypto_secretstream_xchacha20poly1305_HEADERBYTES, "header size");
_Static_assert(ATT_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES, "chunk overhead");
_Static_assert(ATT_KEY == crypto_secretstream_xchacha20poly1305_KEYBYTES, "key size");

uint64_t att_cipher_size(uint64_t n)
{
	uint64_t chunks = n ? (n + ATT_CHUNK - 1) / ATT_CHUNK : 1;
	return ATT_HEADER + chunks * ATT_ABYTES + n;
}

/* Reads up to n bytes (less only at the end of the file or on an error). */
static size_t read_full(FILE *f, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		size_t r = fread(buf + got, 1, n - got, f);
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

int att_encrypt_file(FILE *in, FILE *out, const uint8_t key[ATT_KEY], uint8_t digest[ATT_DIGEST],
                     uint64_t *ct_size)
{
	crypto_secretstream_xchacha20poly1305_state st;
	crypto_hash_sha256_state h;
	uint8_t header[ATT_HEADER];
	uint8_t *pt = malloc(2 * ATT_CHUNK), *ct = malloc(ATT_CHUNK + ATT_ABYTES);
	int rc = -1;
	uint64_t total = 0;
	if (!pt || !ct)
		goto out;
	crypto_hash_sha256_init(&h);
	crypto_secretstream_xchacha20poly1305_init_push(&st, header, key);
	if (fwrite(header, 1, sizeof header, out) != sizeof header)
		goto out;
	crypto_hash_sha256_update(&h, header, sizeof header);
	total = sizeof header;
	/* one chunk of look-ahead: a chunk is final when nothing follows it */
	size_t have = read_full(in, pt, ATT_CHUNK);
	for (;;) {
		if (ferror(in))
			goto out;
		size_t next = have == ATT_CHUNK ? read_full(in, pt + ATT_CHUNK, ATT_CHUNK) : 0;
		if (ferror(in))
			goto out;
		bool final = next == 0;
		unsigned long long clen;
		crypto_secretstream_xchacha20poly1305_push(&st, ct, &clen, pt, have, NULL, 0,
		                                           final ? SS_TAG_FINAL : SS_TAG_MESSAGE);
		if (fwrite(ct, 1, (size_t)clen, out) != (size_t)clen)
			goto out;
		crypto_hash_sha256_update(&h, ct, (size_t)clen);
		total += clen;
		if (final)
			break;
		memcpy(pt, pt + ATT_CHUNK, next);
		have = next;
	}
	if (fflush(out) != 0)
		goto out;
	crypto_hash_sha256_final(&h, digest);
	*ct_size = total;
	rc = 0;
out:
	if (pt)
		sodium_memzero(pt, 2 * ATT_CHUNK);
	sodium_memzero(&st, sizeof st);
	free(pt);
	free(ct);
	return rc;
}

int att_digest_file(FILE *in, uint8_t digest[ATT_DIGEST], uint64_t *size)
{
	crypto_hash_sha256_state h;
	uint8_t *buf = malloc(ATT_CHUNK);
	uint64_t total = 0;
	size_t n;
	if (!buf)
		return -1;
	crypto_hash_sha256_init(&h);
	while ((n = fread(buf, 1, ATT_CHUNK, in)) > 0) {
		crypto_hash_sha256_update(&h, buf, n);
		total += n;
	}
	free(buf);
	if (ferror(in))
		return -1;
	crypto_hash_sha256_final(&h, digest);
	if (size)
		*size = total;
	return 0;
}

int att_decrypt_file(FILE *in, FILE *out, const uint8_t key[ATT_KEY])
{
	crypto_secretstream_xchacha20poly1305_state st;
	uint8_t header[ATT_HEADER];
	uint8_t *ct = malloc(ATT_CHUNK + ATT_ABYTES), *pt = malloc(ATT_CHUNK);
	int rc = ATT_EIO;
	if (!ct || !pt)
		goto out;
	size_t n = read_full(in, header, sizeof header);
	if (ferror(in))
		goto out;
	rc = ATT_EBAD;
	if (n != sizeof header || crypto_secretstream_xchacha20poly1305_init_pull(&st, header, key) != 0)
		goto out;
	for (;;) {
		n = read_full(in, ct, ATT_CHUNK + ATT_ABYTES);
		if (ferror(in)) {
			rc = ATT_EIO;
			goto out;
		}
		unsigned long long plen;
		unsigned char tag;
		if (n < ATT_ABYTES ||
		    crypto_secretstream_xchacha20poly1305_pull(&st, pt, &plen, &tag, ct, n, NULL, 0) != 0)
			goto out;   /* truncated, tampered or reordered */
		if (tag != SS_TAG_FINAL && tag != SS_TAG_MESSAGE)
			goto out;
		/* only the final chunk may be short */
		if (tag == SS_TAG_MESSAGE && n != ATT_CHUNK + ATT_ABYTES)
			goto out;
		if (plen && fwrite(pt, 1, (size_t)plen, out) != (size_t)plen) {
			rc = ATT_EIO;
			goto out;
		}
		if (tag == SS_TAG_FINAL) {
			if (fgetc(in) != EOF || ferror(in))
				goto out;   /* bytes after the final chunk */
			break;
		}
		if (feof(in))
			goto out;   /* ends without its final chunk: truncated */
	}
	rc = fflush(out) == 0 ? ATT_OK : ATT_EIO;
out:
	if (pt)
		sodium_memzero(pt, ATT_CHUNK);
	sodium_memzero(&st, sizeof st);
	free(ct);
	free(pt);
	return rc;
}

bool att_valid_id(const char *s, size_t len)
{
	if (len < 1 || len > ATT_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

void att_ptr_encode(const att_ptr *p, cbw *w)
{
	uint8_t t = ATT_PT_TYPE;
	size_t pairs = 5 + (p->name != NULL) + p->has_duration + (p->thumb != NULL) +
	               (p->caption != NULL);
	cbw_reset(w);
	cbw_raw(w, &t, 1);
	cbw_map(w, pairs);
	/* canonical order: shorter keys first, then bytewise */
	cbw_text(w, "id");
	cbw_textn(w, p->id, p->id_len);
	cbw_text(w, "key");
	cbw_bytes(w, p->key, ATT_KEY);
	if (p->name) {
		cbw_text(w, "name");
		cbw_textn(w, p->name, p->name_len);
	}
	cbw_text(w, "size");
	cbw_uint(w, p->size);
	cbw_text(w, "type");
	cbw_textn(w, p->type, p->type_len);
	if (p->thumb) {
		cbw_text(w, "thumb");
		cbw_bytes(w, p->thumb, p->thumb_len);
	}
	cbw_text(w, "digest");
	cbw_bytes(w, p->digest, ATT_DIGEST);
	if (p->caption) {
		cbw_text(w, "caption");
		cbw_textn(w, p->caption, p->caption_len);
	}
	if (p->has_duration) {
		cbw_text(w, "duration_ms");
		cbw_uint(w, p->duration_ms);
	}
}

const char *att_ptr_decode(att_ptr *p, const uint8_t *buf, size_t len)
{
	memset(p, 0, sizeof *p);
	if (len < 1 || buf[0] != ATT_PT_TYPE)
		return "not an attachment pointer";
	cbr_fields f;
	bool key = false, digest = false, size = false;
	cbr_fields_open(&f, buf + 1, len - 1, "the pointer is not a CBOR map");
	while (cbr_fields_next(&f)) {
		const cbr_item *v = &f.val;
		if (cbr_eq(&f.key, "id")) {
			if (v->type != CBR_TEXT || !att_valid_id((const char *)v->ptr, v->len))
				return "id: not a blob id";
			p->id = (const char *)v->ptr;
			p->id_len = v->len;
		} else if (cbr_eq(&f.key, "key") || cbr_eq(&f.key, "digest")) {
			bool is_key = cbr_eq(&f.key, "key");
			if (v->type != CBR_BYTES || v->len != 32)
				return is_key ? "key: not 32 bytes" : "digest: not 32 bytes";
			memcpy(is_key ? p->key : p->digest, v->ptr, 32);
			*(is_key ? &key : &digest) = true;
		} else if (cbr_eq(&f.key, "size")) {
			if (v->type != CBR_UINT || v->u < ATT_HEADER + ATT_ABYTES || v->u > ATT_SIZE_MAX)
				return "size: out of range";
			p->size = v->u;
			size = true;
		} else if (cbr_eq(&f.key, "duration_ms")) {
			if (v->type != CBR_UINT)
				return "duration_ms: not an unsigned integer";
			p->duration_ms = v->u;
			p->has_duration = true;
		} else if (cbr_eq(&f.key, "thumb")) {
			if (v->type != CBR_BYTES || v->len > ATT_THUMB_MAX)
				return "thumb: not bytes of at most 8 KB";
			p->thumb = v->ptr;
			p->thumb_len = v->len;
		} else if (cbr_eq(&f.key, "type") || cbr_eq(&f.key, "name") || cbr_eq(&f.key, "caption")) {
			struct { const char *k; const char **s; size_t *l; size_t max; const char *bad; } t[] = {
				{ "type", &p->type, &p->type_len, ATT_TYPE_MAX, "type: not text of 1-255 bytes" },
				{ "name", &p->name, &p->name_len, ATT_NAME_MAX, "name: not text of 1-255 bytes" },
				{ "caption", &p->caption, &p->caption_len, ATT_CAPTION_MAX,
				  "caption: not text of at most 4096 bytes" },
			};
			for (size_t i = 0; i < 3; i++) {
				if (!cbr_eq(&f.key, t[i].k))
					continue;
				bool caption = i == 2;
				if (v->type != CBR_TEXT || v->len > t[i].max || (!caption && v->len == 0))
					return t[i].bad;
				*t[i].s = (const char *)v->ptr;
				*t[i].l = v->len;
			}
		} else {
			cbr_fields_skip(&f);
		}
	}
	const char *bad = cbr_fields_close(&f, NULL);
	if (bad)
		return bad;
	if (!p->id || !key || !digest || !size || !p->type)
		return "a required field (id, key, digest, size, type) is missing";
	return NULL;
}

const char *att_resp_decode(att_resp *r, const uint8_t *buf, size_t len)
{
	memset(r, 0, sizeof *r);
	cbr_fields f;
	bool has_ok = false;
	cbr_fields_open(&f, buf, len, "the answer is not a CBOR map");
	while (cbr_fields_next(&f)) {
		const cbr_item *v = &f.val;
		if (cbr_eq(&f.key, "ok")) {
			if (v->type != CBR_BOOL)
				return "ok: not a boolean";
			r->ok = v->b;
			has_ok = true;
		} else if (cbr_eq(&f.key, "rid") || cbr_eq(&f.key, "size") ||
		           cbr_eq(&f.key, "expires") || cbr_eq(&f.key, "retry_after")) {
			if (v->type != CBR_UINT)
				return "an unsigned integer field is not one";
			if (cbr_eq(&f.key, "rid")) {
				r->rid = v->u;
				r->has_rid = true;
			} else {
				*(cbr_eq(&f.key, "size") ? &r->size
				  : cbr_eq(&f.key, "expires") ? &r->expires : &r->retry_after) = v->u;
			}
		} else if (cbr_eq(&f.key, "id") || cbr_eq(&f.key, "put") || cbr_eq(&f.key, "url") ||
		           cbr_eq(&f.key, "code") || cbr_eq(&f.key, "msg")) {
			if (v->type != CBR_TEXT)
				return "a text field is not text";
			const char *s = (const char *)v->ptr;
			if (cbr_eq(&f.key, "id")) {
				if (!att_valid_id(s, v->len))
					return "id: not a blob id";
				r->id = s;
				r->id_len = v->len;
			} else if (cbr_eq(&f.key, "put") || cbr_eq(&f.key, "url")) {
				if (v->len == 0 || v->len > ATT_URL_MAX || memchr(s, 0, v->len))
					return "url: empty, too long or with a NUL";
				r->url = s;
				r->url_len = v->len;
			} else if (cbr_eq(&f.key, "code")) {
				r->code = s;
				r->code_len = v->len;
			} else {
				r->msg = s;
				r->msg_len = v->len;
			}
		} else {
			cbr_fields_skip(&f);
		}
	}
	const char *bad = cbr_fields_close(&f, NULL);
	if (bad)
		return bad;
	return has_ok ? NULL : "ok is missing";
}

void att_safe_name(char *out, size_t cap, const char *name, size_t len)
{
	/* the last path component only */
	for (size_t i = len; i > 0; i--)
		if (name[i - 1] == '/' || name[i - 1] == '\\') {
			name += i;
			len -= i;
			break;
		}
	if (len > cap - 1) {   /* do not cut a UTF-8 sequence */
		len = cap - 1;
		while (len > 0 && ((unsigned char)name[len] & 0xC0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		out[i] = (c < 0x20 || c == 0x7f || (i == 0 && c == '.')) ? '_' : (char)c;
	}
	if (len == 0)
		out[len++] = '_';
	out[len] = 0;
}
