// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* events.c — decoding and checking the publishes the fake core_io
 * recorded; see events.h.
 */
#include "events.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

void well_formed(const pubrec *p)
{
	cbr r;
	cbr_item m, k;
	uint64_t i = 0;
	cbr_init(&r, p->p, p->len);
	ck_assert_int_eq(cbr_next(&r, &m), CHAT_OK);
	ck_assert_int_eq(m.type, CBR_MAP);
	while (cbr_map_next(&r, &m, &i, &k))
		ck_assert_msg(cbr_skip_next(&r) == CHAT_OK, "event to %s: bad CBOR value: %s",
		              p->clientid, r.err_msg ? r.err_msg : "?");
	ck_assert_msg(!r.err_msg, "event to %s is bad CBOR: %s", p->clientid, r.err_msg);
	ck_assert_msg(cbr_done(&r), "event to %s has trailing bytes (malformed map)", p->clientid);
}

bool fget(const pubrec *p, const char *key, cbr_item *val, const uint8_t **raw, size_t *rawlen)
{
	well_formed(p);
	cbr r;
	cbr_item m, k, v;
	uint64_t i = 0;
	cbr_init(&r, p->p, p->len);
	cbr_next(&r, &m);
	while (cbr_map_next(&r, &m, &i, &k)) {
		const uint8_t *at = r.p;
		ck_assert_int_eq(cbr_next(&r, &v), CHAT_OK);
		ck_assert_int_eq(cbr_skip(&r, &v), CHAT_OK);
		if (cbr_eq(&k, key)) {
			if (val)
				*val = v;
			if (raw) {
				*raw = at;
				*rawlen = (size_t)(r.p - at);
			}
			return true;
		}
	}
	return false;
}

bool fhas(const pubrec *p, const char *key) { return fget(p, key, NULL, NULL, NULL); }

size_t fnkeys(const pubrec *p)
{
	cbr r;
	cbr_item m, k;
	uint64_t i = 0;
	size_t n = 0;
	well_formed(p);
	cbr_init(&r, p->p, p->len);
	cbr_next(&r, &m);
	while (cbr_map_next(&r, &m, &i, &k)) {
		cbr_skip_next(&r);
		n++;
	}
	return n;
}

/* The value of key, asserted to be there and of type t. */
static cbr_item fvalue(const pubrec *p, const char *key, enum cbr_type t, const char *what)
{
	cbr_item v;
	ck_assert_msg(fget(p, key, &v, NULL, NULL), "no key '%s'", key);
	ck_assert_msg(v.type == t, "'%s' is not %s", key, what);
	return v;
}

const char *ftext(const pubrec *p, const char *key)
{
	static char ring[8][512];
	static int next;
	cbr_item v = fvalue(p, key, CBR_TEXT, "text");
	ck_assert_uint_lt(v.len, sizeof(ring[0]));
	char *s = ring[next++ % 8];
	memcpy(s, v.ptr, v.len);
	s[v.len] = '\0';
	return s;
}

uint64_t fuint(const pubrec *p, const char *key) { return fvalue(p, key, CBR_UINT, "a uint").u; }

bool fbool(const pubrec *p, const char *key) { return fvalue(p, key, CBR_BOOL, "a bool").b; }

void fbytes_eq(const pubrec *p, const char *key, const void *exp, size_t n)
{
	cbr_item v = fvalue(p, key, CBR_BYTES, "bytes");
	ck_assert_uint_eq(v.len, n);
	ck_assert_mem_eq(v.ptr, exp, n);
}

static const char *list(const pubrec *p, const char *key, bool texts_only)
{
	static char ring[4][8192];
	static int next;
	char *out = ring[next++ % 4];
	const uint8_t *raw;
	size_t rawlen;
	cbr_item v;
	ck_assert_msg(fget(p, key, &v, &raw, &rawlen), "no key '%s'", key);
	ck_assert_int_eq(v.type, CBR_ARRAY);
	cbr r;
	cbr_item a, e;
	uint64_t i = 0;
	size_t n = 0;
	out[0] = '\0';
	cbr_init(&r, raw, rawlen);
	cbr_next(&r, &a);
	while (cbr_array_next(&r, &a, &i)) {
		ck_assert_int_eq(cbr_next(&r, &e), CHAT_OK);
		if (texts_only)
			ck_assert_int_eq(e.type, CBR_TEXT);
		size_t l = strlen(out);
		if (e.type == CBR_UINT)
			snprintf(out + l, 8192 - l, "%s%llu", n ? "+" : "", (unsigned long long)e.u);
		else if (e.type == CBR_TEXT)
			snprintf(out + l, 8192 - l, "%s%.*s", n ? "," : "", (int)e.len, (const char *)e.ptr);
		else
			ck_abort_msg("'%s' holds an item of type %d", key, (int)e.type);
		n++;
	}
	ck_assert_ptr_null(r.err_msg);
	ck_assert_uint_eq(n, a.u);
	return out;
}

const char *flist(const pubrec *p, const char *key) { return list(p, key, false); }

const char *ftext_list(const pubrec *p, const char *key) { return list(p, key, true); }

void inbox_topic(char *out, size_t n, const char *addr) { snprintf(out, n, "chat/inbox/%s", addr); }

const pubrec *inbox_next(size_t *i, const char *addr)
{
	char t[256];
	inbox_topic(t, sizeof(t), addr);
	for (; *i < F.npubs; (*i)++) {
		const pubrec *p = &F.pubs[*i];
		if (strcmp(p->clientid, addr) != 0)
			continue;
		ck_assert_str_eq(p->topic, t);
		ck_assert_int_eq(p->qos, 1);
		(*i)++;
		return p;
	}
	return NULL;
}

const pubrec *event_to(size_t m, const char *addr, const char *k)
{
	const pubrec *p = pub_to(m, addr);
	char t[256];
	inbox_topic(t, sizeof(t), addr);
	ck_assert_str_eq(p->topic, t);
	ck_assert_int_eq(p->qos, 1);
	ck_assert(!p->retain);
	ck_assert_str_eq(ftext(p, "k"), k);
	return p;
}

const pubrec *refused(size_t m, const char *addr, const char *code)
{
	ck_assert_msg(F.npubs - m == 1, "%zu publishes after a refusal", F.npubs - m);
	const pubrec *p = event_to(m, addr, "error");
	ck_assert_str_eq(ftext(p, "code"), code);
	ck_assert_uint_gt(strlen(ftext(p, "msg")), 0);
	return p;
}
