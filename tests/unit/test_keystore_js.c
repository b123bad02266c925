// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_keystore_js — the pure parts of the key server's JetStream store
 * (keyserver/keystore_js.c; docs/CLUSTER.md "The key server"): ids as
 * subject tokens, the record bodies it writes and reads back (device
 * record, one-time key, log leaf, device-list change) round-tripped and
 * refused when malformed, and the Nats-Sequence header parser. The store
 * itself runs against real nats-server nodes in
 * tests/integration/test_keyserver_cluster.py. */
#include "err.h"
#include "keystore_js.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(tokens)
{
	char out[64];
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "alice", 5), 5);
	ck_assert_str_eq(out, "alice");
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "a.b", 3), 5);
	ck_assert_str_eq(out, "a=2Eb");
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "x_y-Z9", 6), 6);
	ck_assert_str_eq(out, "x_y-Z9");
	/* every byte a subject treats specially is encoded, '=' too: injective */
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "*>= .", 5), 15);
	ck_assert_str_eq(out, "=2A=3E=3D=20=2E");
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "=2E", 3), 5);
	ck_assert_str_eq(out, "=3D2E"); /* not the same as "." */
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "", 0), 0);
	ck_assert_uint_eq(ksjs_token(out, 4, "abcd", 4), 0);   /* no room for the NUL */
	ck_assert_uint_eq(ksjs_token(out, 4, "ab.", 3), 0);    /* =2E does not fit */
	ck_assert_uint_eq(ksjs_token(out, 5, "abcd", 4), 4);
	/* a high byte */
	ck_assert_uint_eq(ksjs_token(out, sizeof out, "\xff", 1), 3);
	ck_assert_str_eq(out, "=FF");
}
END_TEST

START_TEST(device_record)
{
	ksjs_dev r, back;
	memset(&r, 0, sizeof r);
	for (int i = 0; i < KS_KEY_LEN; i++)
		r.ik[i] = (uint8_t)i, r.spk.key[i] = (uint8_t)(100 + i);
	for (int i = 0; i < KS_SIG_LEN; i++)
		r.spk.sig[i] = (uint8_t)(200 - i);
	r.spk.id = 0x0102030405060708ULL;
	r.id_lo = 1, r.id_hi = UINT64_MAX, r.log_index = 77, r.log_ts = 1700000000123ULL;
	uint8_t v[KSJS_DEV_LEN];
	ksjs_dev_encode(v, &r);
	ck_assert(ksjs_dev_decode(v, sizeof v, &back));
	ck_assert_mem_eq(&back.ik, r.ik, KS_KEY_LEN);
	ck_assert_mem_eq(&back.spk.key, r.spk.key, KS_KEY_LEN);
	ck_assert_mem_eq(&back.spk.sig, r.spk.sig, KS_SIG_LEN);
	ck_assert(back.spk.id == r.spk.id && back.id_lo == 1 && back.id_hi == UINT64_MAX);
	ck_assert(back.log_index == 77 && back.log_ts == r.log_ts);
	ck_assert(!ksjs_dev_decode(v, sizeof v - 1, &back));
	ck_assert(!ksjs_dev_decode(NULL, 0, &back));
	v[0] = 2; /* a version this code does not know */
	ck_assert(!ksjs_dev_decode(v, sizeof v, &back));
}
END_TEST

START_TEST(opk_record)
{
	ks_opk o = { .id = 42 }, back;
	uint8_t ik[KS_KEY_LEN], ik2[KS_KEY_LEN], v[KSJS_OPK_LEN + 1];
	memset(o.key, 7, sizeof o.key);
	memset(ik, 9, sizeof ik);
	ksjs_opk_encode(v, &o, ik);
	ck_assert(ksjs_opk_decode(v, KSJS_OPK_LEN, &back, ik2));
	ck_assert(back.id == 42);
	ck_assert_mem_eq(back.key, o.key, KS_KEY_LEN);
	ck_assert_mem_eq(ik2, ik, KS_KEY_LEN);
	ck_assert(!ksjs_opk_decode(v, KSJS_OPK_LEN + 1, &back, ik2));
	ck_assert(!ksjs_opk_decode(v, KSJS_OPK_LEN - 1, &back, ik2));
	v[0] = 0;
	ck_assert(!ksjs_opk_decode(v, KSJS_OPK_LEN, &back, ik2));
}
END_TEST

START_TEST(log_leaf)
{
	ks_log_entry e = { .ts = 1234567890123ULL }, back;
	memset(e.ik, 3, sizeof e.ik);
	strcpy(e.user, "alice");
	strcpy(e.device, "phone.1");
	uint8_t v[400];
	size_t n = ksjs_leaf_encode(v, sizeof v, &e);
	ck_assert_uint_eq(n, 1 + 8 + 32 + 1 + 5 + 7);
	ck_assert(ksjs_leaf_decode(v, n, &back));
	ck_assert_str_eq(back.user, "alice");
	ck_assert_str_eq(back.device, "phone.1");
	ck_assert(back.ts == e.ts);
	ck_assert_mem_eq(back.ik, e.ik, KS_KEY_LEN);
	ck_assert_uint_eq(ksjs_leaf_encode(v, 20, &e), 0);  /* no room */
	ck_assert(!ksjs_leaf_decode(v, 41, &back));          /* shorter than the fixed part */
	v[41] = 200;                                         /* user length beyond the end */
	ck_assert(!ksjs_leaf_decode(v, n, &back));
	v[41] = 5;
	ck_assert(!ksjs_leaf_decode(v, 1 + 8 + 32 + 1 + 5, &back)); /* no device */
	v[42] = '/';                                         /* not a user id */
	ck_assert(!ksjs_leaf_decode(v, n, &back));
}
END_TEST

START_TEST(device_list_change)
{
	bool add;
	char dev[CHAT_DEVICE_MAX + 1];
	ck_assert(ksjs_ulist_decode("\x01+phone", 7, &add, dev));
	ck_assert(add);
	ck_assert_str_eq(dev, "phone");
	ck_assert(ksjs_ulist_decode("\x01-laptop", 8, &add, dev));
	ck_assert(!add);
	ck_assert_str_eq(dev, "laptop");
	ck_assert(!ksjs_ulist_decode("\x01+", 2, &add, dev));
	ck_assert(!ksjs_ulist_decode("\x01*phone", 7, &add, dev));
	ck_assert(!ksjs_ulist_decode("\x02+phone", 7, &add, dev));
	ck_assert(!ksjs_ulist_decode("\x01+ph/ne", 7, &add, dev));
	char big[CHAT_DEVICE_MAX + 10];
	big[0] = 1, big[1] = '+';
	memset(big + 2, 'a', sizeof big - 2);
	ck_assert(!ksjs_ulist_decode(big, sizeof big, &add, dev));
}
END_TEST

START_TEST(sequence_header)
{
	uint64_t v;
	ck_assert(ksjs_parse_u64("0", &v) && v == 0);
	ck_assert(ksjs_parse_u64("18446744073709551615", &v) && v == UINT64_MAX);
	ck_assert(!ksjs_parse_u64("18446744073709551616", &v));
	ck_assert(!ksjs_parse_u64("", &v));
	ck_assert(!ksjs_parse_u64(NULL, &v));
	ck_assert(!ksjs_parse_u64("12a", &v));
	ck_assert(!ksjs_parse_u64("-1", &v));
	ck_assert(!ksjs_parse_u64(" 1", &v));
	ck_assert(!ksjs_parse_u64("000000000000000000001", &v)); /* 21 digits */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keystore_js");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, tokens);
	tcase_add_test(tc, device_record);
	tcase_add_test(tc, opk_record);
	tcase_add_test(tc, log_leaf);
	tcase_add_test(tc, device_list_change);
	tcase_add_test(tc, sequence_header);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
