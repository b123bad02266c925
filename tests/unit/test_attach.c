// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_attach.c — chat-client's attachments (examples/client/attach.c)
 * against the shared vectors tests/vectors/attachment.json (made by an
 * independent Python implementation, tests/vectors/make_attachment.py):
 * the vector files decrypt to their plaintexts with their digests, each
 * tampered ciphertext fails, the pointers encode to the exact bytes and
 * decode back, malformed pointers are refused; then round trips of sizes
 * around the chunk boundary. */
#include "attach.h"
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
	vec = vectors_load("attachment.json");
}

static void teardown(void)
{
	cJSON_Delete(vec);
	vec = NULL;
}

static const cJSON *get(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(v != NULL, "vector field %s missing", name);
	return v;
}

/* A hex or base64 field as bytes (malloc'd, never NULL); *len its size. */
static uint8_t *bytes_of(const cJSON *o, const char *name, size_t *len)
{
	const char *s = get(o, name)->valuestring;
	ck_assert_ptr_nonnull(s);
	size_t cap = strlen(s) + 1, got = 0;
	uint8_t *b = malloc(cap);
	ck_assert_ptr_nonnull(b);
	bool b64 = strlen(name) > 4 && strcmp(name + strlen(name) - 4, "_b64") == 0;
	int rc = b64 ? sodium_base642bin(b, cap, s, strlen(s), NULL, &got, NULL,
	                                 sodium_base64_VARIANT_ORIGINAL)
	             : sodium_hex2bin(b, cap, s, strlen(s), NULL, &got, NULL);
	ck_assert_int_eq(rc, 0);
	*len = got;
	return b;
}

static void hex32(const cJSON *o, const char *name, uint8_t out[32])
{
	size_t n;
	uint8_t *b = bytes_of(o, name, &n);
	ck_assert_uint_eq(n, 32);
	memcpy(out, b, 32);
	free(b);
}

static uint8_t *pattern(size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 7 + 3) % 251);
	return b;
}

/* The ciphertext of file vector v (hex or base64). */
static uint8_t *cipher_of(const cJSON *v, size_t *len)
{
	return cJSON_GetObjectItemCaseSensitive(v, "ciphertext") ? bytes_of(v, "ciphertext", len)
	                                                          : bytes_of(v, "ciphertext_b64", len);
}

/* Decrypts ct under key into a fresh buffer: the att_decrypt_file result. */
static int decrypt_mem(const uint8_t *ct, size_t len, const uint8_t key[32], char **pt,
                       size_t *pt_len)
{
	FILE *in = fmemopen((void *)ct, len ? len : 1, "rb");
	ck_assert_ptr_nonnull(in);
	if (!len)
		fgetc(in);   /* fmemopen wants size > 0: an empty input is one byte consumed */
	FILE *out = open_memstream(pt, pt_len);
	ck_assert_ptr_nonnull(out);
	int rc = att_decrypt_file(in, out, key);
	fclose(in);
	fclose(out);
	return rc;
}

START_TEST(vector_files_decrypt)
{
	const cJSON *files = get(vec, "files"), *v;
	ck_assert_int_eq(get(vec, "chunk")->valueint, ATT_CHUNK);
	ck_assert_int_eq(get(vec, "header")->valueint, ATT_HEADER);
	ck_assert_int_eq(get(vec, "abytes")->valueint, ATT_ABYTES);
	int count = 0;
	cJSON_ArrayForEach(v, files) {
		uint8_t key[32], digest[32], got[32];
		size_t ct_len, pt_len;
		hex32(v, "key", key);
		hex32(v, "digest", digest);
		uint8_t *ct = cipher_of(v, &ct_len);
		ck_assert_uint_eq(ct_len, (size_t)get(v, "size")->valuedouble);
		size_t plain = (size_t)get(v, "plain_size")->valuedouble;
		ck_assert_uint_eq(att_cipher_size(plain), ct_len);
		/* the digest: SHA-256 of the ciphertext as uploaded */
		FILE *in = fmemopen(ct, ct_len, "rb");
		uint64_t sz;
		ck_assert_int_eq(att_digest_file(in, got, &sz), 0);
		fclose(in);
		ck_assert_uint_eq(sz, ct_len);
		ck_assert_mem_eq(got, digest, 32);
		char *pt = NULL;
		ck_assert_int_eq(decrypt_mem(ct, ct_len, key, &pt, &pt_len), ATT_OK);
		ck_assert_uint_eq(pt_len, plain);
		if (cJSON_GetObjectItemCaseSensitive(v, "pattern")) {
			uint8_t h[32], want[32];
			crypto_hash_sha256(h, (uint8_t *)pt, pt_len);
			hex32(v, "plain_sha256", want);
			ck_assert_mem_eq(h, want, 32);
			uint8_t *p = pattern(plain);
			ck_assert_mem_eq(pt, p, plain);
			free(p);
		} else {
			size_t n;
			uint8_t *want = bytes_of(v, "plaintext", &n);
			ck_assert_uint_eq(n, pt_len);
			if (n)
				ck_assert_mem_eq(pt, want, n);
			free(want);
		}
		free(pt);
		free(ct);
		count++;
	}
	ck_assert_int_eq(count, 3);
}
END_TEST

START_TEST(tampered_files_fail)
{
	const cJSON *files = get(vec, "files"), *t;
	int count = 0;
	cJSON_ArrayForEach(t, get(vec, "tampered")) {
		const cJSON *v = cJSON_GetArrayItem(files, get(t, "file")->valueint);
		ck_assert_ptr_nonnull(v);
		uint8_t key[32];
		size_t ct_len, len = 0;
		hex32(v, "key", key);
		uint8_t *ct = cipher_of(v, &ct_len);
		uint8_t *buf = malloc(ct_len + 64);
		const cJSON *r;
		cJSON_ArrayForEach(r, get(t, "ranges")) {
			size_t off = (size_t)cJSON_GetArrayItem(r, 0)->valuedouble;
			size_t n = (size_t)cJSON_GetArrayItem(r, 1)->valuedouble;
			ck_assert_uint_le(off + n, ct_len);
			memcpy(buf + len, ct + off, n);
			len += n;
		}
		const cJSON *flip = cJSON_GetObjectItemCaseSensitive(t, "flip");
		if (flip)
			buf[(size_t)flip->valuedouble] ^= 1;
		if (cJSON_GetObjectItemCaseSensitive(t, "append")) {
			size_t n;
			uint8_t *a = bytes_of(t, "append", &n);
			memcpy(buf + len, a, n);
			len += n;
			free(a);
		}
		char *pt = NULL;
		size_t pt_len;
		ck_assert_msg(decrypt_mem(buf, len, key, &pt, &pt_len) == ATT_EBAD, "%s: decrypted",
		              get(t, "what")->valuestring);
		free(pt);
		free(buf);
		free(ct);
		count++;
	}
	ck_assert_int_ge(count, 5);
}
END_TEST

/* The pointer of a vector's fields, strings pointing into the JSON. */
static void fields_ptr(const cJSON *f, att_ptr *p, uint8_t **thumb)
{
	memset(p, 0, sizeof *p);
	*thumb = NULL;
	p->id = get(f, "id")->valuestring;
	p->id_len = strlen(p->id);
	hex32(f, "key", p->key);
	hex32(f, "digest", p->digest);
	p->size = (uint64_t)get(f, "size")->valuedouble;
	p->type = get(f, "type")->valuestring;
	p->type_len = strlen(p->type);
	const cJSON *x;
	if ((x = cJSON_GetObjectItemCaseSensitive(f, "name"))) {
		p->name = x->valuestring;
		p->name_len = strlen(p->name);
	}
	if ((x = cJSON_GetObjectItemCaseSensitive(f, "caption"))) {
		p->caption = x->valuestring;
		p->caption_len = strlen(p->caption);
	}
	if ((x = cJSON_GetObjectItemCaseSensitive(f, "duration_ms"))) {
		p->has_duration = true;
		p->duration_ms = (uint64_t)x->valuedouble;
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "thumb")) {
		*thumb = bytes_of(f, "thumb", &p->thumb_len);
		p->thumb = *thumb;
	}
}

START_TEST(vector_pointers)
{
	const cJSON *v;
	int count = 0;
	cJSON_ArrayForEach(v, get(vec, "pointers")) {
		att_ptr p, q;
		uint8_t *thumb;
		fields_ptr(get(v, "fields"), &p, &thumb);
		size_t n;
		uint8_t *want = bytes_of(v, "plaintext", &n);
		cbw w;
		cbw_init(&w);
		att_ptr_encode(&p, &w);
		ck_assert_int_eq(cbw_status(&w), 0);
		ck_assert_uint_eq(w.len, n);
		ck_assert_mem_eq(w.buf, want, n);
		const char *bad = att_ptr_decode(&q, want, n);
		ck_assert_msg(bad == NULL, "decode: %s", bad);
		ck_assert_mem_eq(q.id, p.id, p.id_len);
		ck_assert_uint_eq(q.id_len, p.id_len);
		ck_assert_mem_eq(q.key, p.key, 32);
		ck_assert_mem_eq(q.digest, p.digest, 32);
		ck_assert_uint_eq(q.size, p.size);
		ck_assert_uint_eq(q.type_len, p.type_len);
		ck_assert_uint_eq(q.name_len, p.name_len);
		ck_assert_uint_eq(q.caption_len, p.caption_len);
		ck_assert_uint_eq(q.thumb_len, p.thumb_len);
		ck_assert_int_eq(q.has_duration, p.has_duration);
		ck_assert_uint_eq(q.duration_ms, p.duration_ms);
		ck_assert_int_eq(q.name != NULL, p.name != NULL);
		if (p.name)
			ck_assert_mem_eq(q.name, p.name, p.name_len);
		if (p.thumb)
			ck_assert_mem_eq(q.thumb, p.thumb, p.thumb_len);
		cbw_free(&w);
		free(want);
		free(thumb);
		count++;
	}
	ck_assert_int_eq(count, 2);
}
END_TEST

START_TEST(bad_pointers_refused)
{
	const cJSON *v;
	int count = 0;
	cJSON_ArrayForEach(v, get(vec, "bad_pointers")) {
		size_t n;
		uint8_t *b = bytes_of(v, "plaintext", &n);
		att_ptr p;
		ck_assert_msg(att_ptr_decode(&p, b, n) != NULL, "%s: accepted", get(v, "what")->valuestring);
		/* no prefix crashes (the one without trailing bytes is valid) */
		for (size_t i = 0; i < n; i++)
			(void)att_ptr_decode(&p, b, i);
		free(b);
		count++;
	}
	ck_assert_int_ge(count, 8);
}
END_TEST

/* Encrypts n pattern bytes and decrypts them again, checking every size. */
static void round_trip(size_t n)
{
	uint8_t key[32], digest[32], again[32];
	randombytes_buf(key, sizeof key);
	uint8_t *pt = pattern(n);
	char *ct = NULL, *back = NULL;
	size_t ct_len = 0, back_len = 0;
	FILE *in = fmemopen(pt, n ? n : 1, "rb");
	if (!n)
		fgetc(in);
	FILE *out = open_memstream(&ct, &ct_len);
	uint64_t size;
	ck_assert_int_eq(att_encrypt_file(in, out, key, digest, &size), 0);
	fclose(in);
	fclose(out);
	ck_assert_uint_eq(size, ct_len);
	ck_assert_uint_eq(att_cipher_size(n), ct_len);
	crypto_hash_sha256(again, (uint8_t *)ct, ct_len);
	ck_assert_mem_eq(again, digest, 32);
	ck_assert_int_eq(decrypt_mem((uint8_t *)ct, ct_len, key, &back, &back_len), ATT_OK);
	ck_assert_uint_eq(back_len, n);
	if (n)
		ck_assert_mem_eq(back, pt, n);
	free(back);
	back = NULL;
	/* the wrong key, and a ciphertext cut at a chunk boundary, fail */
	key[0] ^= 1;
	ck_assert_int_eq(decrypt_mem((uint8_t *)ct, ct_len, key, &back, &back_len), ATT_EBAD);
	free(back);
	back = NULL;
	key[0] ^= 1;
	if (n > ATT_CHUNK) {
		ck_assert_int_eq(decrypt_mem((uint8_t *)ct, ATT_HEADER + ATT_CHUNK + ATT_ABYTES, key,
		                             &back, &back_len), ATT_EBAD);
		free(back);
	}
	free(ct);
	free(pt);
}

START_TEST(round_trips)
{
	size_t sizes[] = { 0, 1, ATT_CHUNK - 1, ATT_CHUNK, ATT_CHUNK + 1, 3 * ATT_CHUNK, 300000 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		round_trip(sizes[i]);
}
END_TEST

START_TEST(safe_names)
{
	char out[16];
	att_safe_name(out, sizeof out, "../../etc/passwd", 16);
	ck_assert_str_eq(out, "passwd");
	att_safe_name(out, sizeof out, ".hidden", 7);
	ck_assert_str_eq(out, "_hidden");
	att_safe_name(out, sizeof out, "a\nb\x7f", 4);
	ck_assert_str_eq(out, "a_b_");
	att_safe_name(out, sizeof out, "dir/", 4);
	ck_assert_str_eq(out, "_");
	att_safe_name(out, sizeof out, "C:\\x\\y.txt", 10);
	ck_assert_str_eq(out, "y.txt");
	/* 14 ASCII bytes then a 2-byte character: cut before it, not inside */
	att_safe_name(out, sizeof out, "abcdefghijklmn\xc3\xa9", 16);
	ck_assert_str_eq(out, "abcdefghijklmn");
	ck_assert(att_valid_id("b7Qx-3_kz0Jm9aVbN2rT1w", 22));
	ck_assert(!att_valid_id("a/b", 3));
	ck_assert(!att_valid_id("", 0));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("attach");
	TCase *t = tcase_create("attach");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, vector_files_decrypt);
	tcase_add_test(t, tampered_files_fail);
	tcase_add_test(t, vector_pointers);
	tcase_add_test(t, bad_pointers_refused);
	tcase_add_test(t, round_trips);
	tcase_add_test(t, safe_names);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
