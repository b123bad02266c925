// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* xmpp_scan.h — chatbench's scanner of an XMPP server's stream (mode xmpp):
 * splits it into top-level items and reads an element's name, attributes
 * and a hex counter. Header-only, so tests/fuzz/fuzz_xmpp.c drives exactly
 * this code. It trusts the server's XML no further than "never reads past
 * what it is given": quotes in tags are honoured, CDATA and comments are
 * not XML it expects (an ejabberd stream has none), and whatever it makes
 * of them stays inside the buffer.
 */
/* memmem: compile with _GNU_SOURCE (the project does) */
#ifndef CHATBENCH_XMPP_SCAN_H
#define CHATBENCH_XMPP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The length of the complete item at p[0..n), 0 if it is incomplete.
 * kind: 1 the stream header, 2 an element, 3 the stream's end, 4 other. */
static inline size_t xml_item(const uint8_t *p, size_t n, int *kind)
{
	size_t i = 0;
	if (p[0] != '<') { /* whitespace keepalives, stray text */
		while (i < n && p[i] != '<')
			i++;
		*kind = 4;
		return i;
	}
	if (n >= 2 && p[1] == '?') {
		const uint8_t *e = memmem(p, n, "?>", 2);
		*kind = 4;
		return e ? (size_t)(e - p) + 2 : 0;
	}
	bool header = n >= 14 && memcmp(p, "<stream:stream", 14) == 0;
	int depth = 0;
	while (i < n) {
		if (p[i] != '<') {
			i++;
			continue;
		}
		bool closing = i + 1 < n && p[i + 1] == '/';
		char q = 0;
		size_t j = i + 1;
		for (; j < n; j++) {
			if (q) {
				if (p[j] == q)
					q = 0;
			} else if (p[j] == '\'' || p[j] == '"') {
				q = (char)p[j];
			} else if (p[j] == '>') {
				break;
			}
		}
		if (j >= n)
			return 0;
		if (closing) {
			if (depth == 0) { /* </stream:stream> */
				*kind = 3;
				return j + 1;
			}
			depth--;
		} else if (p[j - 1] != '/') {
			if (header) {
				*kind = 1;
				return j + 1;
			}
			depth++;
		}
		i = j + 1;
		if (depth == 0) {
			*kind = 2;
			return i;
		}
	}
	return 0;
}

static inline bool x_name_is(const uint8_t *el, size_t len, const char *name)
{
	size_t l = strlen(name);
	return len > l + 1 && memcmp(el + 1, name, l) == 0 &&
	       (el[l + 1] == ' ' || el[l + 1] == '>' || el[l + 1] == '/');
}

/* The value of attribute a in the element's start tag, or NULL. */
static inline const uint8_t *x_attr(const uint8_t *el, size_t len, const char *a, size_t *vl)
{
	const uint8_t *end = memchr(el, '>', len);
	size_t tl = end ? (size_t)(end - el) : len, al = strlen(a);
	for (size_t i = 1; i + al + 2 < tl; i++) {
		if (el[i] == ' ' && memcmp(el + i + 1, a, al) == 0 && el[i + 1 + al] == '=' &&
		    (el[i + 2 + al] == '\'' || el[i + 2 + al] == '"')) {
			const uint8_t *v = el + i + 3 + al;
			const uint8_t *e = memchr(v, el[i + 2 + al], (size_t)(el + tl - v));
			if (!e)
				return NULL;
			*vl = (size_t)(e - v);
			return v;
		}
	}
	return NULL;
}

static inline bool x_has(const uint8_t *el, size_t len, const char *s)
{
	return memmem(el, len, s, strlen(s)) != NULL;
}

/* 16 hex digits (any other byte gives some value, never a read past p + 16) */
static inline uint64_t hex64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		uint8_t ch = p[i];
		v = v << 4 | (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
	}
	return v;
}

#endif
