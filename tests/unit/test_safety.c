// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_safety.c — chat-client's safety numbers (examples/client/safety.c)
 * against the shared vectors tests/vectors/safety.json (made by an
 * independent Python implementation of docs/E2EE.md §8, checked by the web
 * client's node test too), both orders of the two users, and the refusals
 * (empty key set, a device listed twice, an overlong id). */
#include "safety.h"

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
	ck_assert_int_ge(sodium_init(), 0);
	vec = vectors_load("safety.json");
}

static void teardown(void)
{
	cJSON_Delete(vec);
	vec = NULL;
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(cJSON_IsString(v), "vector field %s missing", name);
	return v->valuestring;
}

/* One user of a case: its keys (ik bytes in iks, which must hold 8). */
static size_t user_keys(const cJSON *u, safety_key *keys, uint8_t (*iks)[32])
{
	const cJSON *d, *devs = cJSON_GetObjectItemCaseSensitive(u, "devices");
	size_t n = 0;
	cJSON_ArrayForEach(d, devs) {
		ck_assert_uint_lt(n, 8);
		size_t got = 0;
		const char *h = str(d, "ik");
		ck_assert_int_eq(sodium_hex2bin(iks[n], 32, h, strlen(h), NULL, &got, NULL), 0);
		ck_assert_uint_eq(got, 32);
		keys[n].dev = str(d, "device");
		keys[n].ik = iks[n];
		n++;
	}
	return n;
}

START_TEST(vectors)
{
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(vec, "version")->valueint, SAFETY_VERSION);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(vec, "iterations")->valueint,
	                 SAFETY_ITERATIONS);
	const cJSON *c, *cases = cJSON_GetObjectItemCaseSensitive(vec, "cases");
	int ncases = 0;
	cJSON_ArrayForEach(c, cases) {
		const cJSON *users = cJSON_GetObjectItemCaseSensitive(c, "users");
		const cJSON *ua = cJSON_GetArrayItem(users, 0), *ub = cJSON_GetArrayItem(users, 1);
		safety_key ka[8], kb[8];
		uint8_t ia[8][32], ib[8][32], hash[SAFETY_HASH];
		size_t na = user_keys(ua, ka, ia), nb = user_keys(ub, kb, ib);
		char digits[SAFETY_USER_DIGITS + 1], hx[2 * SAFETY_QR_LEN + 1];
		const cJSON *us[2] = { ua, ub };
		for (int k = 0; k < 2; k++) {
			ck_assert_int_eq(safety_user_hash(str(us[k], "user"), k ? kb : ka, k ? nb : na, hash), 0);
			safety_user_digits(hash, digits);
			ck_assert_str_eq(digits, str(us[k], "digits"));
			sodium_bin2hex(hx, sizeof hx, hash, SAFETY_FP);
			ck_assert_str_eq(hx, str(us[k], "fingerprint"));
		}
		/* both sides compute the same number and payload */
		char num[SAFETY_DIGITS + 1], num2[SAFETY_DIGITS + 1];
		uint8_t qr[SAFETY_QR_LEN], qr2[SAFETY_QR_LEN];
		ck_assert_int_eq(safety_number(str(ua, "user"), ka, na, str(ub, "user"), kb, nb, num, qr), 0);
		ck_assert_int_eq(safety_number(str(ub, "user"), kb, nb, str(ua, "user"), ka, na, num2, qr2), 0);
		ck_assert_str_eq(num, str(c, "number"));
		ck_assert_str_eq(num2, num);
		sodium_bin2hex(hx, sizeof hx, qr, SAFETY_QR_LEN);
		ck_assert_str_eq(hx, str(c, "qr"));
		ck_assert_mem_eq(qr2, qr, SAFETY_QR_LEN);
		ncases++;
	}
	ck_assert_int_ge(ncases, 4);
}
END_TEST

START_TEST(refusals)
{
	uint8_t ik[32] = { 7 }, hash[SAFETY_HASH];
	char longdev[300];
	memset(longdev, 'd', sizeof longdev - 1);
	longdev[sizeof longdev - 1] = 0;
	safety_key twice[2] = { { "phone", ik }, { "phone", ik } };
	safety_key empty_id[1] = { { "", ik } };
	safety_key overlong[1] = { { longdev, ik } };
	ck_assert_int_eq(safety_user_hash("alice", twice, 0, hash), -1);
	ck_assert_int_eq(safety_user_hash("alice", twice, 2, hash), -1);
	ck_assert_int_eq(safety_user_hash("alice", empty_id, 1, hash), -1);
	ck_assert_int_eq(safety_user_hash("alice", overlong, 1, hash), -1);
	ck_assert_int_eq(safety_user_hash(longdev, twice, 1, hash), -1);
	char num[SAFETY_DIGITS + 1];
	uint8_t qr[SAFETY_QR_LEN];
	ck_assert_int_eq(safety_number("alice", twice, 1, "bob", twice, 0, num, qr), -1);
	/* a changed key changes the user's hash */
	uint8_t h2[SAFETY_HASH], ik2[32] = { 8 };
	safety_key one[1] = { { "phone", ik } }, other[1] = { { "phone", ik2 } };
	ck_assert_int_eq(safety_user_hash("alice", one, 1, hash), 0);
	ck_assert_int_eq(safety_user_hash("alice", other, 1, h2), 0);
	ck_assert_int_ne(memcmp(hash, h2, SAFETY_HASH), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("safety");
	TCase *tc = tcase_create("safety");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, vectors);
	tcase_add_test(tc, refusals);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
