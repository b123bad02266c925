// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_rset.c — seq range sets, the receipt append's payload and the queue
 * position's text form (js_rset.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "js_codec.h"
#include "js_rset.h"

static int cmp_range(const void *a, const void *b)
{
	const jstore_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

size_t js_rset_norm(jstore_range *r, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (r[i].lo >= 1 && r[i].lo <= r[i].hi)
			r[k++] = r[i];
	if (k < 2)
		return k;
	qsort(r, k, sizeof(*r), cmp_range);
	size_t o = 0;
	for (size_t i = 1; i < k; i++) {
		if (r[o].hi == UINT64_MAX || r[i].lo <= r[o].hi + 1) {
			if (r[i].hi > r[o].hi)
				r[o].hi = r[i].hi;
		} else {
			r[++o] = r[i];
		}
	}
	return o + 1;
}

static int reserve(js_rset *s, size_t want)
{
	if (want <= s->cap)
		return CHAT_OK;
	size_t cap = s->cap ? s->cap : 8;
	while (cap < want)
		cap *= 2;
	jstore_range *v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return CHAT_ENOMEM;
	s->v = v;
	s->cap = cap;
	return CHAT_OK;
}

int js_rset_add(js_rset *s, const jstore_range *r, size_t n)
{
	if (reserve(s, s->n + n) != CHAT_OK)
		return CHAT_ENOMEM;
	memcpy(s->v + s->n, r, n * sizeof(*r));
	s->n = js_rset_norm(s->v, s->n + n);
	return CHAT_OK;
}

int js_rset_minus(js_rset *out, const jstore_range *r, size_t n, const js_rset *s)
{
	out->n = 0;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t lo = r[i].lo, hi = r[i].hi;
		while (j < s->n && s->v[j].hi < lo)
			j++;
		for (size_t k = j; k < s->n && s->v[k].lo <= hi && lo <= hi; k++) {
			if (s->v[k].lo > lo) {
				if (reserve(out, out->n + 1) != CHAT_OK)
					return CHAT_ENOMEM;
				out->v[out->n++] = (jstore_range){ lo, s->v[k].lo - 1 };
			}
			if (s->v[k].hi >= hi) {
				lo = 1, hi = 0; /* the rest is covered */
				break;
			}
			lo = s->v[k].hi + 1;
		}
		if (lo <= hi && lo >= 1) {
			if (reserve(out, out->n + 1) != CHAT_OK)
				return CHAT_ENOMEM;
			out->v[out->n++] = (jstore_range){ lo, hi };
		}
	}
	return CHAT_OK;
}

bool js_rset_has(const js_rset *s, uint64_t seq)
{
	size_t a = 0, b = s->n;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (s->v[m].hi < seq)
			a = m + 1;
		else if (s->v[m].lo > seq)
			b = m;
		else
			return true;
	}
	return false;
}

uint64_t js_rset_count(const jstore_range *r, size_t n)
{
	uint64_t c = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t k = r[i].hi - r[i].lo + 1;
		c = (k == 0 || c + k < c) ? UINT64_MAX : c + k;
		if (c == UINT64_MAX)
			break;
	}
	return c;
}

void js_rset_free(js_rset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool canonical(const jstore_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].lo < 1 || r[i].lo > r[i].hi)
			return false;
		if (i && (r[i - 1].hi == UINT64_MAX || r[i].lo <= r[i - 1].hi + 1))
			return false;
	}
	return true;
}

size_t js_rcpt_encode(uint8_t *out, size_t cap, int state, const jstore_range *r, size_t n)
{
	if ((state != 1 && state != 2) || n == 0 || n > JS_RCPT_RANGES_MAX || !canonical(r, n) ||
	    cap < 4 + 16 * n)
		return 0;
	out[0] = 1;
	out[1] = (uint8_t)state;
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		js_be64_put(out + 4 + 16 * i, r[i].lo);
		js_be64_put(out + 12 + 16 * i, r[i].hi);
	}
	return 4 + 16 * n;
}

int js_rcpt_decode(const uint8_t *v, size_t len, int *state, jstore_range *r, size_t *n)
{
	if (len < 4 || v[0] != 1 || (v[1] != 1 && v[1] != 2))
		return CHAT_ECORRUPT;
	size_t k = (size_t)v[2] << 8 | v[3];
	if (k == 0 || k > JS_RCPT_RANGES_MAX || len != 4 + 16 * k)
		return CHAT_ECORRUPT;
	for (size_t i = 0; i < k; i++) {
		r[i].lo = js_be64_get(v + 4 + 16 * i);
		r[i].hi = js_be64_get(v + 12 + 16 * i);
	}
	if (!canonical(r, k))
		return CHAT_ECORRUPT;
	*state = v[1];
	*n = k;
	return CHAT_OK;
}

size_t js_qpos_encode(char *out, size_t cap, const jstore_qpos *p)
{
	if (p->nheld > JSTORE_QHELD_MAX)
		return 0;
	int k = snprintf(out, cap, "%" PRIu64 ".%" PRIu64, p->q, p->e);
	if (k < 0 || (size_t)k >= cap)
		return 0;
	size_t len = (size_t)k;
	for (uint32_t i = 0; i < p->nheld; i++) {
		k = snprintf(out + len, cap - len, ".%" PRIu64, p->held[i]);
		if (k < 0 || (size_t)k >= cap - len)
			return 0;
		len += (size_t)k;
	}
	return len;
}

int js_qpos_decode(const char *s, size_t len, jstore_qpos *p)
{
	uint64_t v[2 + JSTORE_QHELD_MAX];
	size_t nv = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (nv == sizeof(v) / sizeof(v[0]) || !js_parse_u64(s + start, i - start, &v[nv]))
			return CHAT_EINVAL;
		nv++;
		start = i + 1;
	}
	if (nv < 2)
		return CHAT_EINVAL;
	for (size_t i = 2; i < nv; i++)
		if (v[i] == 0 || v[i] > v[0] || (i > 2 && v[i] <= v[i - 1]))
			return CHAT_EINVAL;
	memset(p, 0, sizeof(*p));
	p->q = v[0];
	p->e = v[1];
	p->nheld = (uint32_t)(nv - 2);
	memcpy(p->held, v + 2, (nv - 2) * sizeof(uint64_t));
	return CHAT_OK;
}
