// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* safety.c — safety numbers; the construction is docs/E2EE.md §8:
 *
 *   keyset  = for each device, sorted by id (bytewise):
 *             u8 len(id) || id || ik (32 bytes)
 *   X_0     = u16be(1) || keyset || u8 len(user) || user
 *   X_i+1   = SHA-512(X_i || keyset), i = 0 … 5199;  H = X_5200
 *   digits  = H[0..30) as six 5-byte big-endian numbers, each mod 100000,
 *             written as 5 digits
 *   number  = the two users' 30 digits, the smaller first
 *   qr      = 0x01 || H_first[0..32) || H_second[0..32)
 */
#include "safety.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int by_dev(const void *a, const void *b)
{
	return strcmp(((const safety_key *)a)->dev, ((const safety_key *)b)->dev);
}

int safety_user_hash(const char *user, const safety_key *keys, size_t n, uint8_t out[SAFETY_HASH])
{
	size_t ul = strlen(user);
	if (n == 0 || ul > 255)
		return -1;
	safety_key *s = malloc(n * sizeof *s);
	if (!s)
		return -1;
	memcpy(s, keys, n * sizeof *s);
	qsort(s, n, sizeof *s, by_dev);
	size_t klen = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t dl = strlen(s[i].dev);
		if (dl == 0 || dl > SAFETY_DEV_MAX || (i > 0 && strcmp(s[i - 1].dev, s[i].dev) == 0))
			rc = -1;
		klen += 1 + dl + 32;
	}
	uint8_t *ks = rc == 0 ? malloc(klen) : NULL;
	if (!ks) {
		free(s);
		return -1;
	}
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		size_t dl = strlen(s[i].dev);
		ks[off++] = (uint8_t)dl;
		memcpy(ks + off, s[i].dev, dl);
		off += dl;
		memcpy(ks + off, s[i].ik, 32);
		off += 32;
	}
	free(s);

	crypto_hash_sha512_state h;
	uint8_t head[2] = { 0, SAFETY_VERSION }, ulb = (uint8_t)ul;
	crypto_hash_sha512_init(&h);
	crypto_hash_sha512_update(&h, head, 2);
	crypto_hash_sha512_update(&h, ks, klen);
	crypto_hash_sha512_update(&h, &ulb, 1);
	crypto_hash_sha512_update(&h, (const uint8_t *)user, ul);
	crypto_hash_sha512_update(&h, ks, klen);
	crypto_hash_sha512_final(&h, out);
	for (int i = 1; i < SAFETY_ITERATIONS; i++) {
		crypto_hash_sha512_init(&h);
		crypto_hash_sha512_update(&h, out, SAFETY_HASH);
		crypto_hash_sha512_update(&h, ks, klen);
		crypto_hash_sha512_final(&h, out);
	}
	free(ks);
	return 0;
}

void safety_user_digits(const uint8_t hash[SAFETY_HASH], char out[SAFETY_USER_DIGITS + 1])
{
	for (int c = 0; c < 6; c++) {
		uint64_t v = 0;
		for (int j = 0; j < 5; j++)
			v = v << 8 | hash[c * 5 + j];
		v %= 100000;
		for (int j = 4; j >= 0; j--) {
			out[c * 5 + j] = (char)('0' + v % 10);
			v /= 10;
		}
	}
	out[SAFETY_USER_DIGITS] = 0;
}

int safety_number(const char *a, const safety_key *ka, size_t na, const char *b,
                  const safety_key *kb, size_t nb, char number[SAFETY_DIGITS + 1],
                  uint8_t qr[SAFETY_QR_LEN])
{
	uint8_t ha[SAFETY_HASH], hb[SAFETY_HASH];
	char da[SAFETY_USER_DIGITS + 1], db[SAFETY_USER_DIGITS + 1];
	if (safety_user_hash(a, ka, na, ha) != 0 || safety_user_hash(b, kb, nb, hb) != 0)
		return -1;
	safety_user_digits(ha, da);
	safety_user_digits(hb, db);
	int cmp = strcmp(da, db);
	if (cmp == 0)
		cmp = memcmp(ha, hb, SAFETY_FP);
	const char *d1 = cmp <= 0 ? da : db, *d2 = cmp <= 0 ? db : da;
	const uint8_t *h1 = cmp <= 0 ? ha : hb, *h2 = cmp <= 0 ? hb : ha;
	memcpy(number, d1, SAFETY_USER_DIGITS);
	memcpy(number + SAFETY_USER_DIGITS, d2, SAFETY_USER_DIGITS + 1);
	qr[0] = SAFETY_VERSION;
	memcpy(qr + 1, h1, SAFETY_FP);
	memcpy(qr + 1 + SAFETY_FP, h2, SAFETY_FP);
	return 0;
}
