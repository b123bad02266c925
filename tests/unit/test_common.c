// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_common.c — common/: the allocation-free CBOR reader and writer
 * (cbor_io) and the identifier rules of the wire contract (ids).
 *
 * Known encodings come from RFC 8949 Appendix A, so the writer is checked
 * against the standard and not against the reader.
 */
#include <check.h>
#include <unistd.h>
#include <limits.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_io.h"
#include "durable.h"
#include "err.h"
#include "grow.h"
#include "ids.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ })
#define BL(...) B(__VA_ARGS__), sizeof((const uint8_t[]){ __VA_ARGS__ })

/* ---- helpers ---- */

/* Reads exactly one item from buf (which must be its whole encoding). */
static cbr_item one(const uint8_t *buf, size_t len)
{
	cbr r;
	cbr_item it;
	cbr_init(&r, buf, len);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert_ptr_null(r.err_msg);
	ck_assert_msg(cbr_done(&r), "item did not use the whole input");
	return it;
}

/* Reading buf as one item fails with CHAT_EINVAL and an error message. */
static const char *one_fails(const uint8_t *buf, size_t len)
{
	cbr r;
	cbr_item it;
	cbr_init(&r, buf, len);
	ck_assert_int_eq(cbr_skip_next(&r), CHAT_EINVAL);
	ck_assert_ptr_nonnull(r.err_msg);
	/* Errors are sticky: nothing more is read. */
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_EINVAL);
	ck_assert(cbr_done(&r));
	return r.err_msg;
}

/* Skips one whole item; it must be well-formed and use the whole input. */
static void skips_whole(const uint8_t *buf, size_t len)
{
	cbr r;
	cbr_init(&r, buf, len);
	ck_assert_msg(cbr_skip_next(&r) == CHAT_OK, "skip failed: %s", r.err_msg);
	ck_assert(cbr_done(&r));
}

/* A full walk with the iteration API (what every handler in the plugin
 * does): maps via cbr_map_next, arrays via cbr_array_next, recursing into
 * each value. Returns CHAT_OK or CHAT_EINVAL; counts the scalars seen. */
static int walk_item(cbr *r, const cbr_item *it, int depth, int *scalars)
{
	if (depth > 64)
		return CHAT_EINVAL;
	uint64_t i = 0;
	cbr_item k, v;
	switch (it->type) {
	case CBR_MAP:
		while (cbr_map_next(r, it, &i, &k)) {
			if (cbr_next(r, &v) || v.type == CBR_BREAK)
				return CHAT_EINVAL;
			if (walk_item(r, &v, depth + 1, scalars))
				return CHAT_EINVAL;
		}
		return r->err_msg ? CHAT_EINVAL : CHAT_OK;
	case CBR_ARRAY:
		while (cbr_array_next(r, it, &i)) {
			if (cbr_next(r, &v) || v.type == CBR_BREAK)
				return CHAT_EINVAL;
			if (walk_item(r, &v, depth + 1, scalars))
				return CHAT_EINVAL;
		}
		return r->err_msg ? CHAT_EINVAL : CHAT_OK;
	case CBR_TAG:
		if (cbr_next(r, &v) || v.type == CBR_BREAK)
			return CHAT_EINVAL;
		return walk_item(r, &v, depth + 1, scalars);
	case CBR_BREAK:
		return CHAT_EINVAL;
	default:
		(*scalars)++;
		return CHAT_OK;
	}
}

static int walk(const uint8_t *buf, size_t len, int *scalars)
{
	cbr r;
	cbr_item it;
	int n = 0;
	cbr_init(&r, buf, len);
	if (cbr_next(&r, &it) || it.type == CBR_BREAK)
		return CHAT_EINVAL;
	int rc = walk_item(&r, &it, 0, &n);
	if (scalars)
		*scalars = n;
	if (rc == CHAT_OK && !r.err_msg && cbr_done(&r))
		return CHAT_OK;
	return CHAT_EINVAL;
}

static void bytes_eq(const cbw *w, const uint8_t *exp, size_t n)
{
	ck_assert_int_eq(cbw_status(w), CHAT_OK);
	ck_assert_msg(w->len == n, "encoded %zu bytes, expected %zu", w->len, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(w->buf[i] == exp[i], "byte %zu: 0x%02x, expected 0x%02x", i, w->buf[i],
		              exp[i]);
}

/* ================= reader: every type ================= */

START_TEST(read_uints)
{
	static const struct { uint8_t b[9]; size_t n; uint64_t v; } cases[] = {
		{ { 0x00 }, 1, 0 },
		{ { 0x01 }, 1, 1 },
		{ { 0x0a }, 1, 10 },
		{ { 0x17 }, 1, 23 },
		{ { 0x18, 0x18 }, 2, 24 },
		{ { 0x18, 0x19 }, 2, 25 },
		{ { 0x18, 0x64 }, 2, 100 },
		{ { 0x19, 0x03, 0xe8 }, 3, 1000 },
		{ { 0x1a, 0x00, 0x0f, 0x42, 0x40 }, 5, 1000000 },
		{ { 0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00 }, 9, 1000000000000ULL },
		{ { 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9, UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cbr_item it = one(cases[i].b, cases[i].n);
		ck_assert_int_eq(it.type, CBR_UINT);
		ck_assert_uint_eq(it.u, cases[i].v);
	}
}
END_TEST

START_TEST(read_negints)
{
	cbr_item it = one(BL(0x20)); /* -1 */
	ck_assert_int_eq(it.type, CBR_NEGINT);
	ck_assert_uint_eq(it.u, 0);
	it = one(BL(0x29)); /* -10 */
	ck_assert_int_eq(it.type, CBR_NEGINT);
	ck_assert_uint_eq(it.u, 9);
	it = one(BL(0x38, 0x63)); /* -100 */
	ck_assert_uint_eq(it.u, 99);
	it = one(BL(0x39, 0x03, 0xe7)); /* -1000 */
	ck_assert_int_eq(it.type, CBR_NEGINT);
	ck_assert_uint_eq(it.u, 999);
	it = one(BL(0x3a, 0x00, 0x01, 0x00, 0x00)); /* -65537 */
	ck_assert_uint_eq(it.u, 65536);
	it = one(BL(0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)); /* -2^64 */
	ck_assert_int_eq(it.type, CBR_NEGINT);
	ck_assert_uint_eq(it.u, UINT64_MAX);
}
END_TEST

START_TEST(read_strings)
{
	static const uint8_t ietf[] = { 0x64, 'I', 'E', 'T', 'F' };
	cbr_item it = one(ietf, sizeof(ietf));
	ck_assert_int_eq(it.type, CBR_TEXT);
	ck_assert_uint_eq(it.len, 4);
	ck_assert_ptr_eq(it.ptr, ietf + 1); /* points into the input, no copy */
	ck_assert(cbr_eq(&it, "IETF"));
	ck_assert(!cbr_eq(&it, "IETf"));
	ck_assert(!cbr_eq(&it, "IET"));
	ck_assert(!cbr_eq(&it, "IETFx"));

	it = one(BL(0x60)); /* "" */
	ck_assert_int_eq(it.type, CBR_TEXT);
	ck_assert_uint_eq(it.len, 0);
	ck_assert(cbr_eq(&it, ""));

	it = one(BL(0x62, 0xc3, 0xbc)); /* "ü" */
	ck_assert_int_eq(it.type, CBR_TEXT);
	ck_assert(cbr_eq(&it, "\xc3\xbc"));

	it = one(BL(0x40)); /* h'' */
	ck_assert_int_eq(it.type, CBR_BYTES);
	ck_assert_uint_eq(it.len, 0);

	static const uint8_t b4[] = { 0x44, 0x01, 0x02, 0x03, 0x04 };
	it = one(b4, sizeof(b4));
	ck_assert_int_eq(it.type, CBR_BYTES);
	ck_assert_uint_eq(it.len, 4);
	ck_assert_ptr_eq(it.ptr, b4 + 1);
	ck_assert_mem_eq(it.ptr, B(1, 2, 3, 4), 4);

	/* Longer heads: 1-byte and 2-byte lengths. */
	uint8_t buf[3 + 300];
	buf[0] = 0x58; buf[1] = 30;
	memset(buf + 2, 'x', 30);
	it = one(buf, 32);
	ck_assert_int_eq(it.type, CBR_BYTES);
	ck_assert_uint_eq(it.len, 30);
	buf[0] = 0x79; buf[1] = 0x01; buf[2] = 0x2c; /* text of 300 */
	memset(buf + 3, 'y', 300);
	it = one(buf, sizeof(buf));
	ck_assert_int_eq(it.type, CBR_TEXT);
	ck_assert_uint_eq(it.len, 300);
	ck_assert_ptr_eq(it.ptr, buf + 3);

	/* cbr_eq on a non-string is false. */
	it = one(BL(0x01));
	ck_assert(!cbr_eq(&it, ""));
}
END_TEST

START_TEST(read_simple_and_float)
{
	cbr_item it = one(BL(0xf4));
	ck_assert_int_eq(it.type, CBR_BOOL);
	ck_assert(!it.b);
	it = one(BL(0xf5));
	ck_assert_int_eq(it.type, CBR_BOOL);
	ck_assert(it.b);
	it = one(BL(0xf6));
	ck_assert_int_eq(it.type, CBR_NULL);
	it = one(BL(0xf7));
	ck_assert_int_eq(it.type, CBR_UNDEF);

	it = one(BL(0xf9, 0x3c, 0x00)); /* half 1.0 */
	ck_assert_int_eq(it.type, CBR_FLOAT);
	ck_assert_double_eq(it.f, 1.0);
	it = one(BL(0xf9, 0x00, 0x00)); /* half 0.0 */
	ck_assert_int_eq(it.type, CBR_FLOAT);
	ck_assert_double_eq(it.f, 0.0);
	it = one(BL(0xfa, 0x47, 0xc3, 0x50, 0x00)); /* single 100000.0 */
	ck_assert_int_eq(it.type, CBR_FLOAT);
	ck_assert_double_eq(it.f, 100000.0);
	it = one(BL(0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a)); /* 1.1 */
	ck_assert_int_eq(it.type, CBR_FLOAT);
	ck_assert_double_eq(it.f, 1.1);
	it = one(BL(0xfb, 0xc0, 0x10, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66)); /* -4.1 */
	ck_assert_double_eq(it.f, -4.1);
}
END_TEST

START_TEST(read_tag)
{
	/* 1(1363896240) */
	static const uint8_t t[] = { 0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0 };
	cbr r;
	cbr_item it, v;
	cbr_init(&r, t, sizeof(t));
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert_int_eq(it.type, CBR_TAG);
	ck_assert_uint_eq(it.u, 1);
	ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
	ck_assert_int_eq(v.type, CBR_UINT);
	ck_assert_uint_eq(v.u, 1363896240);
	ck_assert(cbr_done(&r));

	/* cbr_skip on a tag skips its content, even a nested one. */
	static const uint8_t t2[] = { 0xd8, 0x20, 0x82, 0x01, 0xc1, 0x02, 0x07 };
	cbr_init(&r, t2, sizeof(t2));
	ck_assert_int_eq(cbr_skip_next(&r), CHAT_OK);
	ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
	ck_assert_uint_eq(v.u, 7);
	ck_assert(cbr_done(&r));
}
END_TEST

START_TEST(read_break_and_malformed)
{
	cbr_item it = one(BL(0xff));
	ck_assert_int_eq(it.type, CBR_BREAK);
	/* A lone break is not an item. */
	one_fails(BL(0xff));

	/* Reserved additional information 28-30 and unassigned simple values. */
	one_fails(BL(0x1c));
	one_fails(BL(0x3d));
	one_fails(BL(0x5e));
	one_fails(BL(0xfc));
	one_fails(BL(0xf8, 0x20));
	/* Empty input. */
	cbr r;
	cbr_init(&r, "", 0);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_EINVAL);
	ck_assert_ptr_nonnull(r.err_msg);
}
END_TEST

START_TEST(read_arrays_and_maps)
{
	/* [1, [2, 3], [4, 5]] */
	static const uint8_t a[] = { 0x83, 0x01, 0x82, 0x02, 0x03, 0x82, 0x04, 0x05 };
	cbr r;
	cbr_item it, v, k;
	uint64_t i = 0, sum = 0, n = 0;
	cbr_init(&r, a, sizeof(a));
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert_int_eq(it.type, CBR_ARRAY);
	ck_assert_uint_eq(it.u, 3);
	ck_assert(!it.indef);
	while (cbr_array_next(&r, &it, &i)) {
		ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
		if (v.type == CBR_UINT) {
			sum += v.u;
			n++;
			continue;
		}
		ck_assert_int_eq(v.type, CBR_ARRAY);
		uint64_t j = 0;
		cbr_item e;
		while (cbr_array_next(&r, &v, &j)) {
			ck_assert_int_eq(cbr_next(&r, &e), CHAT_OK);
			ck_assert_int_eq(e.type, CBR_UINT);
			sum += e.u;
			n++;
		}
		ck_assert_uint_eq(j, 2);
	}
	ck_assert_ptr_null(r.err_msg);
	ck_assert_uint_eq(i, 3);
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(sum, 15);
	ck_assert(cbr_done(&r));

	/* {"a": 1, "b": [2, 3]} */
	static const uint8_t m[] = { 0xa2, 0x61, 'a', 0x01, 0x61, 'b', 0x82, 0x02, 0x03 };
	cbr_init(&r, m, sizeof(m));
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert_int_eq(it.type, CBR_MAP);
	ck_assert_uint_eq(it.u, 2);
	i = 0;
	bool saw_a = false, saw_b = false;
	while (cbr_map_next(&r, &it, &i, &k)) {
		ck_assert_int_eq(k.type, CBR_TEXT);
		if (cbr_eq(&k, "a")) {
			ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
			ck_assert_uint_eq(v.u, 1);
			saw_a = true;
		} else {
			ck_assert(cbr_eq(&k, "b"));
			ck_assert_int_eq(cbr_skip_next(&r), CHAT_OK); /* skip the array */
			saw_b = true;
		}
	}
	ck_assert(saw_a && saw_b);
	ck_assert_ptr_null(r.err_msg);
	ck_assert(cbr_done(&r));

	/* Empty ones. */
	it = one(BL(0x80));
	ck_assert_int_eq(it.type, CBR_ARRAY);
	ck_assert_uint_eq(it.u, 0);
	it = one(BL(0xa0));
	ck_assert_int_eq(it.type, CBR_MAP);
	ck_assert_uint_eq(it.u, 0);
	cbr_init(&r, B(0xa0), 1);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	i = 0;
	ck_assert(!cbr_map_next(&r, &it, &i, &k));
	ck_assert_ptr_null(r.err_msg);
}
END_TEST

START_TEST(read_nested_skip)
{
	/* {"a": {"b": [1, h'00', {"c": [true, null, 1.5]}], "d": 1(2)}, "e": "x"} then 7 */
	static const uint8_t m[] = {
		0xa2, 0x61, 'a', 0xa2, 0x61, 'b', 0x83, 0x01, 0x41, 0x00, 0xa1, 0x61, 'c',
		0x83, 0xf5, 0xf6, 0xf9, 0x3e, 0x00, 0x61, 'd', 0xc1, 0x02, 0x61, 'e', 0x61, 'x',
		0x07,
	};
	cbr r;
	cbr_item v;
	cbr_init(&r, m, sizeof(m));
	ck_assert_int_eq(cbr_skip_next(&r), CHAT_OK);
	ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
	ck_assert_uint_eq(v.u, 7);
	ck_assert(cbr_done(&r));
	int scalars = 0;
	ck_assert_int_eq(walk(m, sizeof(m) - 1, &scalars), CHAT_OK);
	ck_assert_int_eq(scalars, 7); /* 1, h'00', true, null, 1.5, 2, "x" */
	/* A second item after the map is trailing input for walk(). */
	ck_assert_int_eq(walk(m, sizeof(m), NULL), CHAT_EINVAL);

	/* Skip of a scalar whose header was read is a no-op. */
	cbr_init(&r, B(0x01, 0x02), 2);
	ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
	ck_assert_int_eq(cbr_skip(&r, &v), CHAT_OK);
	ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
	ck_assert_uint_eq(v.u, 2);
}
END_TEST

START_TEST(read_indefinite_collections)
{
	cbr r;
	cbr_item it, v, k;
	uint64_t i = 0;

	/* [_ ] */
	cbr_init(&r, B(0x9f, 0xff), 2);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert_int_eq(it.type, CBR_ARRAY);
	ck_assert(it.indef);
	ck_assert(!cbr_array_next(&r, &it, &i));
	ck_assert_ptr_null(r.err_msg);
	ck_assert(cbr_done(&r));

	/* [_ 1, [2, 3], [_ 4, 5]] */
	static const uint8_t a[] = { 0x9f, 0x01, 0x82, 0x02, 0x03, 0x9f, 0x04, 0x05, 0xff, 0xff };
	skips_whole(a, sizeof(a));
	int scalars = 0;
	ck_assert_int_eq(walk(a, sizeof(a), &scalars), CHAT_OK);
	ck_assert_int_eq(scalars, 5);

	/* {_ "a": 1, "b": [_ 2, 3]} */
	static const uint8_t m[] = { 0xbf, 0x61, 'a', 0x01, 0x61, 'b', 0x9f, 0x02, 0x03, 0xff, 0xff };
	skips_whole(m, sizeof(m));
	cbr_init(&r, m, sizeof(m));
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert_int_eq(it.type, CBR_MAP);
	ck_assert(it.indef);
	i = 0;
	int keys = 0;
	while (cbr_map_next(&r, &it, &i, &k)) {
		keys++;
		if (cbr_eq(&k, "a")) {
			ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
			ck_assert_uint_eq(v.u, 1);
		} else {
			ck_assert(cbr_eq(&k, "b"));
			ck_assert_int_eq(cbr_skip_next(&r), CHAT_OK);
		}
	}
	ck_assert_int_eq(keys, 2);
	ck_assert_ptr_null(r.err_msg);
	ck_assert(cbr_done(&r));

	/* ["a", {_ "b": "c"}] */
	static const uint8_t x[] = { 0x82, 0x61, 'a', 0xbf, 0x61, 'b', 0x61, 'c', 0xff };
	skips_whole(x, sizeof(x));
	ck_assert_int_eq(walk(x, sizeof(x), &scalars), CHAT_OK);
	ck_assert_int_eq(scalars, 2);

	/* An indefinite array whose break never comes. */
	one_fails(BL(0x9f, 0x01, 0x02));
	cbr_init(&r, B(0x9f, 0x01), 2);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	i = 0;
	ck_assert(cbr_array_next(&r, &it, &i));
	ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
	ck_assert(!cbr_array_next(&r, &it, &i));
	ck_assert_ptr_nonnull(r.err_msg);

	/* A break inside a definite array is malformed. */
	one_fails(BL(0x82, 0x01, 0xff));
	ck_assert_int_eq(walk(B(0x82, 0x01, 0xff), 3, NULL), CHAT_EINVAL);
}
END_TEST

/* An indefinite map holds pairs: a BREAK after a key (no value) is
 * malformed, at the top level and nested. */
START_TEST(indef_map_odd_items_refused)
{
	one_fails(BL(0xbf, 0x61, 'a', 0xff));
	one_fails(BL(0xbf, 0x61, 'a', 0x01, 0x61, 'b', 0xff));
	one_fails(BL(0xa1, 0x61, 'a', 0xbf, 0x61, 'a', 0xff));
	ck_assert_int_eq(walk(B(0xbf, 0x61, 'a', 0xff), 4, NULL), CHAT_EINVAL);
}
END_TEST

START_TEST(read_indefinite_strings_refused)
{
	/* (_ h'0102', h'030405') */
	const char *e = one_fails(BL(0x5f, 0x42, 0x01, 0x02, 0x43, 0x03, 0x04, 0x05, 0xff));
	ck_assert_ptr_nonnull(strstr(e, "indefinite"));
	/* (_ "strea", "ming") */
	e = one_fails(BL(0x7f, 0x65, 's', 't', 'r', 'e', 'a', 0x64, 'm', 'i', 'n', 'g', 0xff));
	ck_assert_ptr_nonnull(strstr(e, "indefinite"));
	/* Inside a map value too. */
	one_fails(BL(0xa1, 0x61, 'a', 0x5f, 0xff));
	ck_assert_int_eq(walk(B(0xa1, 0x61, 'a', 0x5f, 0xff), 5, NULL), CHAT_EINVAL);
}
END_TEST

START_TEST(map_next_non_text_keys)
{
	const uint8_t *cases[] = {
		B(0xa1, 0x01, 0x02),             /* {1: 2} */
		B(0xa1, 0x41, 'k', 0x02),        /* {h'6b': 2} */
		B(0xa1, 0x80, 0x02),             /* {[]: 2} */
		B(0xa1, 0xf6, 0x02),             /* {null: 2} */
		B(0xbf, 0x20, 0x02, 0xff),       /* {_ -1: 2} */
		B(0xa2, 0x61, 'a', 0x01, 0x02, 0x03), /* second key is an int */
	};
	static const size_t lens[] = { 3, 4, 3, 3, 4, 6 };
	for (size_t c = 0; c < sizeof(lens) / sizeof(lens[0]); c++) {
		cbr r;
		cbr_item it, k, v;
		uint64_t i = 0;
		int n = 0;
		cbr_init(&r, cases[c], lens[c]);
		ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
		ck_assert_int_eq(it.type, CBR_MAP);
		while (cbr_map_next(&r, &it, &i, &k)) {
			ck_assert_int_eq(k.type, CBR_TEXT);
			ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
			n++;
		}
		ck_assert_msg(r.err_msg != NULL, "case %zu: non-text key accepted", c);
		ck_assert_ptr_nonnull(strstr(r.err_msg, "key"));
		ck_assert_int_eq(n, c == 5 ? 1 : 0);
		ck_assert_int_eq(cbr_next(&r, &v), CHAT_EINVAL);
	}
	/* A key that is itself truncated. */
	cbr r;
	cbr_item it, k;
	uint64_t i = 0;
	cbr_init(&r, B(0xa1, 0x63, 'a'), 3);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert(!cbr_map_next(&r, &it, &i, &k));
	ck_assert_ptr_nonnull(r.err_msg);
}
END_TEST

/* A realistic send payload, mixing definite and indefinite collections,
 * and every prefix of it. */
START_TEST(truncated_every_prefix)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 6);
	cbw_text(&w, "cid");
	cbw_bytes(&w, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	cbw_text(&w, "bodies");
	cbw_map(&w, 2);
	cbw_text(&w, "bob/laptop");
	cbw_bytes(&w, "ciphertext-one", 14);
	cbw_text(&w, "alice/tablet");
	cbw_bytes(&w, "ciphertext-two-longer-than-twenty-three", 39);
	cbw_text(&w, "type");
	cbw_uint(&w, 70000);
	cbw_text(&w, "ttl");
	cbw_uint(&w, 5000000000ULL);
	cbw_text(&w, "x");
	cbw_raw(&w, B(0x9f, 0x20, 0xbf, 0x61, 'k', 0xf5, 0xff, 0xc1, 0xf9, 0x3c, 0x00, 0xff), 12);
	cbw_text(&w, "n");
	cbw_null(&w);
	ck_assert_int_eq(cbw_status(&w), CHAT_OK);

	int scalars = 0;
	ck_assert_int_eq(walk(w.buf, w.len, &scalars), CHAT_OK);
	ck_assert_int_eq(scalars, 9);
	skips_whole(w.buf, w.len);

	for (size_t n = 0; n < w.len; n++) {
		/* Copy to an exact-size heap buffer so ASan/valgrind see any read
		 * past the prefix. */
		uint8_t *p = malloc(n ? n : 1);
		ck_assert_ptr_nonnull(p);
		memcpy(p, w.buf, n);
		cbr r;
		cbr_init(&r, p, n);
		ck_assert_msg(cbr_skip_next(&r) == CHAT_EINVAL, "skip accepted a %zu-byte prefix", n);
		ck_assert_ptr_nonnull(r.err_msg);
		ck_assert_msg(walk(p, n, NULL) == CHAT_EINVAL, "walk accepted a %zu-byte prefix", n);
		free(p);
	}
	cbw_free(&w);
}
END_TEST

static void nest(cbw *w, int depth, uint8_t head)
{
	cbw_reset(w);
	for (int i = 0; i < depth; i++)
		cbw_raw(w, &head, 1);
	cbw_uint(w, 1);
	if (head == 0x9f)
		for (int i = 0; i < depth; i++)
			cbw_raw(w, B(0xff), 1);
}

START_TEST(depth_limit)
{
	cbw w;
	cbw_init(&w);
	/* CBR_MAX_DEPTH nested collections are fine, one more is refused. */
	static const uint8_t heads[] = { 0x81, 0x9f };
	for (size_t h = 0; h < 2; h++) {
		nest(&w, CBR_MAX_DEPTH, heads[h]);
		skips_whole(w.buf, w.len);
		nest(&w, CBR_MAX_DEPTH + 1, heads[h]);
		const char *e = one_fails(w.buf, w.len);
		ck_assert_ptr_nonnull(strstr(e, "deep"));
		nest(&w, 10000, heads[h]); /* no recursion, no crash */
		one_fails(w.buf, w.len);
	}
	/* Maps and tags count too: {"a": {"a": ... 1}} and 1(1(...1)). */
	cbw_reset(&w);
	for (int i = 0; i < CBR_MAX_DEPTH + 1; i++)
		cbw_raw(&w, B(0xa1, 0x61, 'a'), 3);
	cbw_uint(&w, 1);
	one_fails(w.buf, w.len);
	cbw_reset(&w);
	for (int i = 0; i < 5000; i++)
		cbw_raw(&w, B(0xc1), 1);
	cbw_uint(&w, 1);
	one_fails(w.buf, w.len);
	cbw_free(&w);
}
END_TEST

START_TEST(huge_forged_counts)
{
	/* Definite lengths far beyond the input. */
	one_fails(BL(0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
	one_fails(BL(0x9a, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02));
	one_fails(BL(0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x61, 'a', 0x01));
	one_fails(BL(0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x61, 'a', 0x01));
	one_fails(BL(0x81, 0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
	one_fails(BL(0x81, 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
	one_fails(BL(0x81, 0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
	/* Strings whose length overflows any pointer arithmetic. */
	one_fails(BL(0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9));
	one_fails(BL(0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9));
	one_fails(BL(0x5a, 0xff, 0xff, 0xff, 0xff, 0x01));
	one_fails(BL(0x78, 0x05, 'a', 'b'));
	/* The iteration API stops at the end of the input, not after 2^63 rounds. */
	cbr r;
	cbr_item it, v;
	uint64_t i = 0, rounds = 0;
	cbr_init(&r, B(0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02), 11);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	while (cbr_array_next(&r, &it, &i) && rounds < 100) {
		rounds++;
		if (cbr_next(&r, &v))
			break;
	}
	ck_assert_uint_eq(rounds, 3);
	ck_assert_ptr_nonnull(r.err_msg);
}
END_TEST

/* An array head with count 2^64-1 is a definite array; a BREAK may not end
 * it. cbr_skip uses UINT64_MAX as its "indefinite" marker, so such a forged
 * count must not be mistaken for one. */
START_TEST(forged_max_count_is_not_indefinite)
{
	one_fails(BL(0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
	one_fails(BL(0x81, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
	one_fails(BL(0xa1, 0x61, 'a', 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
}
END_TEST

START_TEST(trailing_and_sticky_errors)
{
	cbr r;
	cbr_item it;
	cbr_init(&r, B(0x01, 0x02), 2);
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert(!cbr_done(&r));
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_OK);
	ck_assert(cbr_done(&r));
	ck_assert_int_eq(cbr_next(&r, &it), CHAT_EINVAL);
	const char *first = r.err_msg;
	ck_assert_ptr_nonnull(first);
	/* The first error message is kept. */
	ck_assert_int_eq(cbr_skip_next(&r), CHAT_EINVAL);
	ck_assert_ptr_eq(r.err_msg, first);
	uint64_t i = 0;
	cbr_item m = { .type = CBR_MAP, .u = 1 }, k;
	ck_assert(!cbr_map_next(&r, &m, &i, &k));
	ck_assert(!cbr_array_next(&r, &m, &i));
}
END_TEST

/* The one envelope check (cbr_map_open/cbr_map_close) the plugin's parsers
 * share: a map, then exactly its entries; the caller's words or the default
 * ones for "no map" and "trailing bytes", the reader's own for broken CBOR. */
START_TEST(map_envelope)
{
	/* The inputs outlive the checks' own blocks: r points into them. */
	static const uint8_t one[] = { 0xa1, 0x61, 'a', 0x01 }, extra[] = { 0xa0, 0x00 };
	cbr r;
	cbr_item map, k;
	uint64_t i = 0;
	ck_assert_ptr_null(cbr_map_open(&r, one, sizeof(one), &map, NULL));
	ck_assert_uint_eq(map.u, 1);
	ck_assert(cbr_map_next(&r, &map, &i, &k));
	ck_assert_int_eq(cbr_skip_next(&r), CHAT_OK);
	ck_assert(!cbr_map_next(&r, &map, &i, &k));
	ck_assert_ptr_null(cbr_map_close(&r, NULL));

	ck_assert_str_eq(cbr_map_open(&r, B(0x01), 1, &map, NULL), "the payload must be a CBOR map");
	ck_assert_str_eq(cbr_map_open(&r, B(0x81, 0x01), 2, &map, "want a map"), "want a map");
	const char *why = cbr_map_open(&r, B(0xa1), 0, &map, "want a map"); /* empty input */
	ck_assert_ptr_nonnull(why);

	ck_assert_ptr_null(cbr_map_open(&r, extra, sizeof(extra), &map, NULL)); /* {} then 0 */
	ck_assert_str_eq(cbr_map_close(&r, NULL), "trailing bytes after the CBOR map");
	ck_assert_str_eq(cbr_map_close(&r, "extra"), "extra");
}
END_TEST

/* grow.h, the one grow helper: doubles from `first`, keeps what it holds,
 * leaves array and capacity alone when it refuses an overflowing size. */
START_TEST(grow_doubles_and_refuses_overflow)
{
	ck_assert_uint_eq(chat_grow_cap(0, 1, 4, 8), 8);
	ck_assert_uint_eq(chat_grow_cap(0, 9, 4, 8), 16);
	ck_assert_uint_eq(chat_grow_cap(0, 3, 4, 0), 4);    /* first 0: from 1 */
	ck_assert_uint_eq(chat_grow_cap(16, 16, 4, 8), 16); /* room already */
	ck_assert_uint_eq(chat_grow_cap(0, SIZE_MAX, 1, 8), 0);
	ck_assert_uint_eq(chat_grow_cap(0, SIZE_MAX / 8, 16, 8), 0); /* elems fit, bytes do not */

	int *v = NULL;
	size_t cap = 0;
	for (int n = 0; n < 100; n++) {
		ck_assert_int_eq(chat_grow(&v, &cap, (size_t)n + 1, sizeof(*v), 4), CHAT_OK);
		ck_assert_uint_ge(cap, (size_t)n + 1);
		v[n] = n;
	}
	ck_assert_uint_eq(cap, 128);
	for (int n = 0; n < 100; n++)
		ck_assert_int_eq(v[n], n);
	int *before = v;
	ck_assert_int_eq(chat_grow(&v, &cap, SIZE_MAX / 2, sizeof(*v), 4), CHAT_ENOMEM);
	ck_assert_ptr_eq(v, before);
	ck_assert_uint_eq(cap, 128);
	free(v);
}
END_TEST

/* Reads {"a": 1, "x": {"y": [2]}, "b": [3, 4]}: "x" skipped, "b" read. */
START_TEST(map_fields)
{
	static const uint8_t m[] = { 0xa3, 0x61, 'a', 0x01, 0x61, 'x', 0xa1, 0x61, 'y', 0x81, 0x02,
	                             0x61, 'b', 0x82, 0x03, 0x04 };
	cbr_fields f;
	uint64_t a = 0, sum = 0;
	const uint8_t *b_at = NULL, *b_end = NULL;
	cbr_fields_open(&f, m, sizeof(m), NULL);
	while (cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "a")) {
			ck_assert_int_eq(f.val.type, CBR_UINT);
			a = f.val.u;
		} else if (cbr_eq(&f.key, "b")) {
			ck_assert_int_eq(f.val.type, CBR_ARRAY);
			b_at = f.at;
			uint64_t i = 0;
			cbr_item e;
			while (cbr_array_next(&f.r, &f.val, &i)) {
				ck_assert_int_eq(cbr_next(&f.r, &e), CHAT_OK);
				sum += e.u;
			}
			b_end = f.r.p;
		} else {
			cbr_fields_skip(&f);
		}
	}
	ck_assert_ptr_null(cbr_fields_close(&f, NULL));
	ck_assert_uint_eq(a, 1);
	ck_assert_uint_eq(sum, 7);
	ck_assert_ptr_eq(b_at, m + 13);
	ck_assert_ptr_eq(b_end, m + sizeof(m));

	/* Not a map: no field, and close says why, in the caller's words or
	 * the default; a reader's error comes first. */
	cbr_fields_open(&f, B(0x01), 1, "not ours");
	ck_assert(!cbr_fields_next(&f));
	ck_assert_str_eq(cbr_fields_close(&f, NULL), "not ours");
	cbr_fields_open(&f, B(0x01), 1, NULL);
	ck_assert(!cbr_fields_next(&f));
	ck_assert_str_eq(cbr_fields_close(&f, NULL), "the payload must be a CBOR map");
	cbr_fields_open(&f, "", 0, "not ours");
	ck_assert(!cbr_fields_next(&f));
	ck_assert_str_eq(cbr_fields_close(&f, NULL), "truncated CBOR");

	/* Trailing bytes after the map. */
	cbr_fields_open(&f, B(0xa0, 0x00), 2, NULL);
	ck_assert(!cbr_fields_next(&f));
	ck_assert_str_eq(cbr_fields_close(&f, "extra"), "extra");

	/* A skipped value that is truncated ends the loop with the reader's
	 * error: {"x": [1, 2 (missing)], "a": 1}. */
	cbr_fields_open(&f, B(0xa2, 0x61, 'x', 0x82, 0x01), 5, NULL);
	int n = 0;
	while (cbr_fields_next(&f)) {
		n++;
		cbr_fields_skip(&f);
	}
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(cbr_fields_close(&f, NULL), "truncated CBOR");
}
END_TEST

/* ================= writer ================= */

START_TEST(write_rfc8949_ints)
{
	static const struct { uint64_t v; uint8_t b[9]; size_t n; } cases[] = {
		{ 0, { 0x00 }, 1 },
		{ 1, { 0x01 }, 1 },
		{ 10, { 0x0a }, 1 },
		{ 23, { 0x17 }, 1 },
		{ 24, { 0x18, 0x18 }, 2 },
		{ 25, { 0x18, 0x19 }, 2 },
		{ 100, { 0x18, 0x64 }, 2 },
		{ 255, { 0x18, 0xff }, 2 },
		{ 256, { 0x19, 0x01, 0x00 }, 3 },
		{ 1000, { 0x19, 0x03, 0xe8 }, 3 },
		{ 65535, { 0x19, 0xff, 0xff }, 3 },
		{ 65536, { 0x1a, 0x00, 0x01, 0x00, 0x00 }, 5 },
		{ 1000000, { 0x1a, 0x00, 0x0f, 0x42, 0x40 }, 5 },
		{ 4294967295ULL, { 0x1a, 0xff, 0xff, 0xff, 0xff }, 5 },
		{ 4294967296ULL, { 0x1b, 0, 0, 0, 0x01, 0, 0, 0, 0 }, 9 },
		{ 1000000000000ULL, { 0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00 }, 9 },
		{ UINT64_MAX, { 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9 },
	};
	cbw w;
	cbw_init(&w);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cbw_reset(&w);
		cbw_uint(&w, cases[i].v);
		bytes_eq(&w, cases[i].b, cases[i].n);
		cbr_item it = one(w.buf, w.len);
		ck_assert_int_eq(it.type, CBR_UINT);
		ck_assert_uint_eq(it.u, cases[i].v);
	}
	cbw_reset(&w);
	cbw_bool(&w, false);
	cbw_bool(&w, true);
	cbw_null(&w);
	bytes_eq(&w, BL(0xf4, 0xf5, 0xf6));
	cbw_free(&w);
}
END_TEST

START_TEST(write_rfc8949_strings)
{
	cbw w;
	cbw_init(&w);
	cbw_text(&w, "");
	bytes_eq(&w, BL(0x60));
	cbw_reset(&w);
	cbw_text(&w, "a");
	bytes_eq(&w, BL(0x61, 0x61));
	cbw_reset(&w);
	cbw_text(&w, "IETF");
	bytes_eq(&w, BL(0x64, 0x49, 0x45, 0x54, 0x46));
	cbw_reset(&w);
	cbw_text(&w, "\"\\");
	bytes_eq(&w, BL(0x62, 0x22, 0x5c));
	cbw_reset(&w);
	cbw_text(&w, "\xc3\xbc"); /* ü */
	bytes_eq(&w, BL(0x62, 0xc3, 0xbc));
	cbw_reset(&w);
	cbw_text(&w, "\xe6\xb0\xb4"); /* 水 */
	bytes_eq(&w, BL(0x63, 0xe6, 0xb0, 0xb4));
	cbw_reset(&w);
	cbw_textn(&w, "IETFxyz", 4);
	bytes_eq(&w, BL(0x64, 0x49, 0x45, 0x54, 0x46));
	cbw_reset(&w);
	cbw_bytes(&w, NULL, 0);
	bytes_eq(&w, BL(0x40));
	cbw_reset(&w);
	cbw_bytes(&w, "\x01\x02\x03\x04", 4);
	bytes_eq(&w, BL(0x44, 0x01, 0x02, 0x03, 0x04));

	/* Text with an embedded NUL via textn keeps all bytes. */
	cbw_reset(&w);
	cbw_textn(&w, "a\0b", 3);
	bytes_eq(&w, BL(0x63, 'a', 0x00, 'b'));

	/* 24 bytes take a one-byte length; 256 a two-byte one; the buffer grows
	 * past its first 256 bytes. */
	char big[70000];
	memset(big, 'z', sizeof(big));
	cbw_reset(&w);
	cbw_bytes(&w, big, 24);
	ck_assert_uint_eq(w.len, 26);
	ck_assert_uint_eq(w.buf[0], 0x58);
	ck_assert_uint_eq(w.buf[1], 24);
	cbw_reset(&w);
	cbw_textn(&w, big, 256);
	ck_assert_uint_eq(w.len, 259);
	ck_assert_mem_eq(w.buf, B(0x79, 0x01, 0x00), 3);
	cbw_reset(&w);
	cbw_bytes(&w, big, sizeof(big));
	ck_assert_int_eq(cbw_status(&w), CHAT_OK);
	ck_assert_uint_eq(w.len, 5 + sizeof(big));
	ck_assert_mem_eq(w.buf, B(0x5a, 0x00, 0x01, 0x11, 0x70), 5);
	cbr_item it = one(w.buf, w.len);
	ck_assert_int_eq(it.type, CBR_BYTES);
	ck_assert_uint_eq(it.len, sizeof(big));
	ck_assert_mem_eq(it.ptr, big, sizeof(big));
	cbw_free(&w);
	ck_assert_ptr_null(w.buf);
	ck_assert_uint_eq(w.len, 0);
}
END_TEST

START_TEST(write_rfc8949_collections)
{
	cbw w;
	cbw_init(&w);
	cbw_array(&w, 0);
	bytes_eq(&w, BL(0x80));
	cbw_reset(&w);
	cbw_array(&w, 3);
	cbw_uint(&w, 1);
	cbw_uint(&w, 2);
	cbw_uint(&w, 3);
	bytes_eq(&w, BL(0x83, 0x01, 0x02, 0x03));
	cbw_reset(&w);
	/* [1, [2, 3], [4, 5]] */
	cbw_array(&w, 3);
	cbw_uint(&w, 1);
	cbw_array(&w, 2);
	cbw_uint(&w, 2);
	cbw_uint(&w, 3);
	cbw_array(&w, 2);
	cbw_uint(&w, 4);
	cbw_uint(&w, 5);
	bytes_eq(&w, BL(0x83, 0x01, 0x82, 0x02, 0x03, 0x82, 0x04, 0x05));
	/* [1, 2, ..., 25] */
	cbw_reset(&w);
	cbw_array(&w, 25);
	for (uint64_t i = 1; i <= 25; i++)
		cbw_uint(&w, i);
	bytes_eq(&w, BL(0x98, 0x19, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	                0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	                0x18, 0x18, 0x18, 0x19));
	cbw_reset(&w);
	cbw_map(&w, 0);
	bytes_eq(&w, BL(0xa0));
	/* {"a": 1, "b": [2, 3]} */
	cbw_reset(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "a");
	cbw_uint(&w, 1);
	cbw_text(&w, "b");
	cbw_array(&w, 2);
	cbw_uint(&w, 2);
	cbw_uint(&w, 3);
	bytes_eq(&w, BL(0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x82, 0x02, 0x03));
	/* ["a", {"b": "c"}] */
	cbw_reset(&w);
	cbw_array(&w, 2);
	cbw_text(&w, "a");
	cbw_map(&w, 1);
	cbw_text(&w, "b");
	cbw_text(&w, "c");
	bytes_eq(&w, BL(0x82, 0x61, 0x61, 0xa1, 0x61, 0x62, 0x61, 0x63));
	/* {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"} */
	cbw_reset(&w);
	cbw_map(&w, 5);
	for (char ch = 'a'; ch <= 'e'; ch++) {
		char k[2] = { ch, 0 }, v[2] = { (char)(ch - 'a' + 'A'), 0 };
		cbw_text(&w, k);
		cbw_text(&w, v);
	}
	bytes_eq(&w, BL(0xa5, 0x61, 0x61, 0x61, 0x41, 0x61, 0x62, 0x61, 0x42, 0x61, 0x63, 0x61, 0x43,
	                0x61, 0x64, 0x61, 0x44, 0x61, 0x65, 0x61, 0x45));
	/* cbw_raw splices encoded items. */
	cbw_reset(&w);
	cbw_array(&w, 2);
	cbw_raw(&w, B(0x61, 0x61), 2);
	cbw_raw(&w, NULL, 0);
	cbw_raw(&w, B(0xa1, 0x61, 0x62, 0x61, 0x63), 5);
	bytes_eq(&w, BL(0x82, 0x61, 0x61, 0xa1, 0x61, 0x62, 0x61, 0x63));
	cbw_free(&w);
}
END_TEST

START_TEST(write_read_round_trip)
{
	cbw w;
	cbw_init(&w);
	for (int pass = 0; pass < 2; pass++) { /* the second pass reuses the buffer */
		cbw_reset(&w);
		cbw_map(&w, 6);
		cbw_text(&w, "k");
		cbw_text(&w, "msg");
		cbw_text(&w, "seq");
		cbw_uint(&w, 4294967296ULL);
		cbw_text(&w, "body");
		cbw_bytes(&w, "\x00\xff\x00", 3);
		cbw_text(&w, "ok");
		cbw_bool(&w, true);
		cbw_text(&w, "none");
		cbw_null(&w);
		cbw_text(&w, "list");
		cbw_array(&w, 300);
		for (uint64_t i = 0; i < 300; i++)
			cbw_uint(&w, i * 1000);
		ck_assert_int_eq(cbw_status(&w), CHAT_OK);

		cbr r;
		cbr_item m, k, v;
		uint64_t i = 0;
		int seen = 0;
		cbr_init(&r, w.buf, w.len);
		ck_assert_int_eq(cbr_next(&r, &m), CHAT_OK);
		ck_assert_int_eq(m.type, CBR_MAP);
		ck_assert_uint_eq(m.u, 6);
		while (cbr_map_next(&r, &m, &i, &k)) {
			ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
			seen++;
			if (cbr_eq(&k, "k")) {
				ck_assert(cbr_eq(&v, "msg"));
				ck_assert_int_eq(v.type, CBR_TEXT);
			} else if (cbr_eq(&k, "seq")) {
				ck_assert_int_eq(v.type, CBR_UINT);
				ck_assert_uint_eq(v.u, 4294967296ULL);
			} else if (cbr_eq(&k, "body")) {
				ck_assert_int_eq(v.type, CBR_BYTES);
				ck_assert_uint_eq(v.len, 3);
				ck_assert_mem_eq(v.ptr, "\x00\xff\x00", 3);
			} else if (cbr_eq(&k, "ok")) {
				ck_assert_int_eq(v.type, CBR_BOOL);
				ck_assert(v.b);
			} else if (cbr_eq(&k, "none")) {
				ck_assert_int_eq(v.type, CBR_NULL);
			} else {
				ck_assert(cbr_eq(&k, "list"));
				ck_assert_int_eq(v.type, CBR_ARRAY);
				ck_assert_uint_eq(v.u, 300);
				uint64_t j = 0;
				cbr_item e;
				while (cbr_array_next(&r, &v, &j)) {
					ck_assert_int_eq(cbr_next(&r, &e), CHAT_OK);
					ck_assert_uint_eq(e.u, (j - 1) * 1000);
				}
			}
		}
		ck_assert_int_eq(seen, 6);
		ck_assert_ptr_null(r.err_msg);
		ck_assert(cbr_done(&r));
	}
	cbw_free(&w);
	/* Freed writers can be reused after init. */
	cbw_init(&w);
	cbw_uint(&w, 7);
	bytes_eq(&w, BL(0x07));
	cbw_free(&w);
}
END_TEST

/* ================= ids ================= */

static char *rep(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

START_TEST(ids_chars)
{
	const char *ok = "azAZ09._-";
	for (const char *p = ok; *p; p++)
		ck_assert_msg(chat_id_char(*p), "'%c' refused", *p);
	const char *bad = "+#/ :$\t\n\\@!*,;\"'\x7f\x80\xc3";
	for (const char *p = bad; *p; p++)
		ck_assert_msg(!chat_id_char(*p), "0x%02x accepted", (unsigned char)*p);
	ck_assert(!chat_id_char('\0'));
}
END_TEST

START_TEST(ids_users_devices_groups)
{
	char buf[200];
	ck_assert(chat_valid_user("alice", 5));
	ck_assert(chat_valid_user("A.b_c-9", 7));
	ck_assert(chat_valid_user("x", 1));
	ck_assert(chat_valid_user(rep(buf, 'u', 64), 64));
	ck_assert(!chat_valid_user(rep(buf, 'u', 65), 65));
	ck_assert(!chat_valid_user("", 0));
	ck_assert(!chat_valid_user(NULL, 0));
	ck_assert(!chat_valid_user(NULL, 3));
	ck_assert(chat_valid_device(rep(buf, 'd', 32), 32));
	ck_assert(!chat_valid_device(rep(buf, 'd', 33), 33));
	ck_assert(!chat_valid_device("", 0));
	ck_assert(chat_valid_group(rep(buf, 'g', 64), 64));
	ck_assert(!chat_valid_group(rep(buf, 'g', 65), 65));
	ck_assert(!chat_valid_group("", 0));

	static const char *bad[] = { "a+b", "a#", "a/b", "a b", " a", "a\tb", "$SYS", "ü", "a:b", "*" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);
		ck_assert_msg(!chat_valid_user(bad[i], n), "user '%s' accepted", bad[i]);
		ck_assert_msg(!chat_valid_device(bad[i], n), "device '%s' accepted", bad[i]);
		ck_assert_msg(!chat_valid_group(bad[i], n), "group '%s' accepted", bad[i]);
	}
	/* An embedded NUL is not hidden by the explicit length. */
	ck_assert(!chat_valid_user("ab\0c", 4));
	ck_assert(!chat_valid_device("ab\0", 3));
	/* The length is what counts: a valid prefix of an invalid string. */
	ck_assert(chat_valid_user("ab/c", 2));
	ck_assert(!chat_valid_user("ab/c", 3));
}
END_TEST

START_TEST(ids_parse_addr)
{
	const char *u = NULL, *d = NULL;
	size_t ul = 99, dl = 99;
	const char *a = "alice/phone";
	ck_assert(chat_parse_addr(a, strlen(a), &u, &ul, &d, &dl));
	ck_assert_ptr_eq(u, a);
	ck_assert_uint_eq(ul, 5);
	ck_assert_ptr_eq(d, a + 6);
	ck_assert_uint_eq(dl, 5);

	char buf[200];
	snprintf(buf, sizeof(buf), "%s/%s", rep((char[70]){ 0 }, 'u', 64), rep((char[40]){ 0 }, 'd', 32));
	ck_assert_uint_eq(strlen(buf), CHAT_ADDR_MAX);
	ck_assert(chat_parse_addr(buf, strlen(buf), &u, &ul, &d, &dl));
	ck_assert_uint_eq(ul, 64);
	ck_assert_uint_eq(dl, 32);
	snprintf(buf, sizeof(buf), "%s/d", rep((char[70]){ 0 }, 'u', 65));
	ck_assert(!chat_parse_addr(buf, strlen(buf), &u, &ul, &d, &dl));
	snprintf(buf, sizeof(buf), "u/%s", rep((char[40]){ 0 }, 'd', 33));
	ck_assert(!chat_parse_addr(buf, strlen(buf), &u, &ul, &d, &dl));

	static const char *bad[] = {
		"alice", "alice/", "/phone", "/", "", "a/b/c", "a//b", "a b/c", "a/b c",
		"a+/b", "a/#", "a/+", "+/+", "a/b/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		u = d = NULL;
		ck_assert_msg(!chat_parse_addr(bad[i], strlen(bad[i]), &u, &ul, &d, &dl),
		              "'%s' accepted", bad[i]);
		ck_assert_ptr_null(u);
		ck_assert_ptr_null(d);
	}
	ck_assert(!chat_parse_addr("a/b\0c", 5, &u, &ul, &d, &dl));
	ck_assert(!chat_parse_addr(NULL, 0, &u, &ul, &d, &dl));
	/* A slice of a longer topic. */
	const char *t = "alice/phone/more";
	ck_assert(chat_parse_addr(t, 11, &u, &ul, &d, &dl));
	ck_assert_uint_eq(dl, 5);
}
END_TEST

START_TEST(ids_dm_conv)
{
	char out[CHAT_CONV_MAX + 1];
	memset(out, '#', sizeof(out));
	ck_assert_uint_eq(chat_dm_conv(out, "bob", 3, "alice", 5), 12);
	ck_assert_str_eq(out, "dm:alice:bob");
	ck_assert_uint_eq(chat_dm_conv(out, "alice", 5, "bob", 3), 12);
	ck_assert_str_eq(out, "dm:alice:bob");
	/* Bytewise: uppercase sorts first, a prefix before its extension. */
	ck_assert_uint_eq(chat_dm_conv(out, "a", 1, "B", 1), 6);
	ck_assert_str_eq(out, "dm:B:a");
	ck_assert_uint_eq(chat_dm_conv(out, "ab", 2, "a", 1), 7);
	ck_assert_str_eq(out, "dm:a:ab");
	ck_assert_uint_eq(chat_dm_conv(out, "a-", 2, "a.", 2), 8);
	ck_assert_str_eq(out, "dm:a-:a.");
	/* Lengths, not NUL terminators, bound the ids. */
	ck_assert_uint_eq(chat_dm_conv(out, "bobby", 3, "alice/x", 5), 12);
	ck_assert_str_eq(out, "dm:alice:bob");
	/* The same user twice is no conversation. */
	memset(out, '#', sizeof(out));
	ck_assert_uint_eq(chat_dm_conv(out, "alice", 5, "alice", 5), 0);
	ck_assert_uint_eq(chat_dm_conv(out, "alice", 5, "alicex", 5), 0);
	ck_assert_int_eq(out[0], '#'); /* nothing written */
	/* Longest ids fill exactly CHAT_CONV_MAX. */
	char a[65], b[65];
	rep(a, 'a', 64);
	rep(b, 'b', 64);
	ck_assert_uint_eq(chat_dm_conv(out, b, 64, a, 64), CHAT_CONV_MAX);
	ck_assert_uint_eq(strlen(out), CHAT_CONV_MAX);
	ck_assert_int_eq(strncmp(out, "dm:aaaa", 7), 0);
	ck_assert_int_eq(out[3 + 64], ':');
	/* Round trip through the parser. */
	const char *p1, *p2;
	size_t l1, l2;
	ck_assert_int_eq(chat_parse_conv(out, strlen(out), &p1, &l1, &p2, &l2), CHAT_CONV_DM);
	ck_assert_uint_eq(l1, 64);
	ck_assert_uint_eq(l2, 64);
	ck_assert_int_eq(p1[0], 'a');
	ck_assert_int_eq(p2[0], 'b');
}
END_TEST

START_TEST(ids_parse_conv)
{
	const char *p1 = NULL, *p2 = NULL;
	size_t l1 = 0, l2 = 0;
	const char *s = "dm:alice:bob";
	ck_assert_int_eq(chat_parse_conv(s, strlen(s), &p1, &l1, &p2, &l2), CHAT_CONV_DM);
	ck_assert_ptr_eq(p1, s + 3);
	ck_assert_uint_eq(l1, 5);
	ck_assert_ptr_eq(p2, s + 9);
	ck_assert_uint_eq(l2, 3);

	s = "g:team-1";
	p2 = s;
	l2 = 7;
	ck_assert_int_eq(chat_parse_conv(s, strlen(s), &p1, &l1, &p2, &l2), CHAT_CONV_GROUP);
	ck_assert_ptr_eq(p1, s + 2);
	ck_assert_uint_eq(l1, 6);
	ck_assert_ptr_null(p2);
	ck_assert_uint_eq(l2, 0);

	char buf[100];
	snprintf(buf, sizeof(buf), "g:%s", rep((char[70]){ 0 }, 'g', 64));
	ck_assert_int_eq(chat_parse_conv(buf, strlen(buf), &p1, &l1, &p2, &l2), CHAT_CONV_GROUP);
	snprintf(buf, sizeof(buf), "g:%s", rep((char[70]){ 0 }, 'g', 65));
	ck_assert_int_eq(chat_parse_conv(buf, strlen(buf), &p1, &l1, &p2, &l2), CHAT_CONV_INVALID);

	/* A slice: only len bytes count. */
	ck_assert_int_eq(chat_parse_conv("g:abc/def", 5, &p1, &l1, &p2, &l2), CHAT_CONV_GROUP);
	ck_assert_uint_eq(l1, 3);
	ck_assert_int_eq(chat_parse_conv("dm:a:bc", 6, &p1, &l1, &p2, &l2), CHAT_CONV_DM);
	ck_assert_uint_eq(l2, 1);

	static const char *bad[] = {
		"dm:b:a",   /* out of order */
		"dm:a:a",   /* the same user */
		"dm:a",     /* one user */
		"dm:a:",    "dm::b", "dm:", "dm", "dm::",
		"dm:a:b:c", /* three */
		"dm:a b:c", "dm:a:b/c", "dm:a:+",
		"g:",       "g", "g:a/b", "g:#", "g:a b",
		"x:y",      "", ":", "DM:a:b", "G:x", "gg:x", "d:a:b", " dm:a:b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p1 = p2 = NULL;
		ck_assert_msg(chat_parse_conv(bad[i], strlen(bad[i]), &p1, &l1, &p2, &l2) ==
		                      CHAT_CONV_INVALID,
		              "'%s' accepted", bad[i]);
		ck_assert_ptr_null(p1);
	}
	ck_assert_int_eq(chat_parse_conv(NULL, 0, &p1, &l1, &p2, &l2), CHAT_CONV_INVALID);
	ck_assert_int_eq(chat_parse_conv("dm:a\0:b", 7, &p1, &l1, &p2, &l2), CHAT_CONV_INVALID);
}
END_TEST

START_TEST(err_strings)
{
	ck_assert_str_eq(chat_strerror(CHAT_OK), "ok");
	ck_assert_str_eq(chat_strerror(CHAT_ENOTFOUND), "not found");
	for (int e = CHAT_OK; e <= CHAT_ECORRUPT; e++) {
		ck_assert_ptr_nonnull(chat_strerror(e));
		ck_assert_str_ne(chat_strerror(e), "unknown error");
	}
	ck_assert_str_eq(chat_strerror(CHAT_STOP), "stopped");
	ck_assert_int_lt(CHAT_STOP, CHAT_OK); /* never one of the codes above */
	ck_assert_str_eq(chat_strerror(-2), "unknown error");
	ck_assert_str_eq(chat_strerror(1000), "unknown error");
}
END_TEST

/* Text strings must be UTF-8 (RFC 3629): we echo them to other clients. */
START_TEST(read_text_must_be_utf8)
{
	/* valid: ASCII, 2-, 3- and 4-byte sequences at their bounds */
	static const uint8_t ok1[] = { 0x62, 'h', 'i' };
	static const uint8_t ok2[] = { 0x62, 0xc3, 0xa9 };             /* é */
	static const uint8_t ok3[] = { 0x63, 0xe2, 0x82, 0xac };       /* € */
	static const uint8_t ok4[] = { 0x64, 0xf0, 0x9f, 0x98, 0x80 }; /* U+1F600 */
	static const uint8_t okmax[] = { 0x64, 0xf4, 0x8f, 0xbf, 0xbf }; /* U+10FFFF */
	ck_assert_int_eq(one(ok1, sizeof(ok1)).type, CBR_TEXT);
	ck_assert_int_eq(one(ok2, sizeof(ok2)).len, 2);
	ck_assert_int_eq(one(ok3, sizeof(ok3)).len, 3);
	ck_assert_int_eq(one(ok4, sizeof(ok4)).len, 4);
	ck_assert_int_eq(one(okmax, sizeof(okmax)).len, 4);
	/* invalid: lone continuation, overlongs, surrogate, above U+10FFFF,
	 * truncated sequence, bad continuation, 0xff */
	static const uint8_t bad[][6] = {
		{ 0x61, 0x80 },
		{ 0x62, 0xc0, 0x80 },
		{ 0x62, 0xc1, 0xbf },
		{ 0x63, 0xe0, 0x80, 0x80 },
		{ 0x63, 0xed, 0xa0, 0x80 },
		{ 0x64, 0xf4, 0x90, 0x80, 0x80 },
		{ 0x64, 0xf5, 0x80, 0x80, 0x80 },
		{ 0x62, 0xe2, 0x82 },
		{ 0x63, 0xe2, 0x28, 0xa1 },
		{ 0x61, 0xff },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = 1 + (bad[i][0] & 0x1f);
		ck_assert_str_eq(one_fails(bad[i], len), "text string is not valid UTF-8");
	}
	/* byte strings carry anything */
	static const uint8_t bytes[] = { 0x42, 0xff, 0x80 };
	ck_assert_int_eq(one(bytes, sizeof(bytes)).type, CBR_BYTES);
}
END_TEST

/* durable.h: the directories fsync'd are real ones, whatever form the path
 * takes; a missing one is an error with errno, never a crash. */
START_TEST(durable_sync_dirs)
{
	char dir[] = "/tmp/chat-durable-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[sizeof(dir) + 16];
	snprintf(path, sizeof(path), "%s/name", dir);
	ck_assert(chat_sync_dir(dir));
	ck_assert(chat_sync_parent(path));              /* dir */
	snprintf(path, sizeof(path), "%s/sub//", dir);
	ck_assert(chat_sync_parent(path));              /* "sub/" names sub, in dir */
	ck_assert(chat_sync_parent("bare-name"));       /* "." */
	ck_assert(chat_sync_parent("/top"));            /* "/" */
	snprintf(path, sizeof(path), "%s/missing/name", dir);
	errno = 0;
	ck_assert(!chat_sync_parent(path));
	ck_assert_int_eq(errno, ENOENT);
	char longp[PATH_MAX + 16];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	longp[sizeof(longp) - 3] = '/';
	ck_assert(!chat_sync_parent(longp));
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("common");
	TCase *t = tcase_create("cbor_read");
	tcase_add_test(t, read_uints);
	tcase_add_test(t, read_negints);
	tcase_add_test(t, read_strings);
	tcase_add_test(t, read_simple_and_float);
	tcase_add_test(t, read_tag);
	tcase_add_test(t, read_break_and_malformed);
	tcase_add_test(t, read_arrays_and_maps);
	tcase_add_test(t, read_nested_skip);
	tcase_add_test(t, read_indefinite_collections);
	tcase_add_test(t, indef_map_odd_items_refused);
	tcase_add_test(t, read_indefinite_strings_refused);
	tcase_add_test(t, read_text_must_be_utf8);
	tcase_add_test(t, map_next_non_text_keys);
	tcase_add_test(t, truncated_every_prefix);
	tcase_add_test(t, depth_limit);
	tcase_add_test(t, huge_forged_counts);
	tcase_add_test(t, forged_max_count_is_not_indefinite);
	tcase_add_test(t, trailing_and_sticky_errors);
	tcase_add_test(t, map_fields);
	tcase_add_test(t, map_envelope);
	tcase_add_test(t, grow_doubles_and_refuses_overflow);
	suite_add_tcase(s, t);

	t = tcase_create("cbor_write");
	tcase_add_test(t, write_rfc8949_ints);
	tcase_add_test(t, write_rfc8949_strings);
	tcase_add_test(t, write_rfc8949_collections);
	tcase_add_test(t, write_read_round_trip);
	suite_add_tcase(s, t);

	t = tcase_create("ids");
	tcase_add_test(t, ids_chars);
	tcase_add_test(t, ids_users_devices_groups);
	tcase_add_test(t, ids_parse_addr);
	tcase_add_test(t, ids_dm_conv);
	tcase_add_test(t, ids_parse_conv);
	tcase_add_test(t, err_strings);
	tcase_add_test(t, durable_sync_dirs);
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
