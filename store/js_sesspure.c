// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_sesspure.c — the pure parts of sessions, node leases and live events
 * (js_sess.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "js_codec.h"
#include "js_sess.h"

static bool valid_node(const char *s, size_t n)
{
	char tok[JS_TOKEN_MAX + 1];
	return n >= 1 && n <= JS_NODE_MAX && !memchr(s, '\0', n) && js_enc_id(tok, sizeof(tok), s, n) > 0;
}

size_t js_sess_encode(uint8_t *out, size_t cap, const char *node, uint64_t since)
{
	size_t nl = strlen(node);
	if (!valid_node(node, nl) || cap < 10 + nl)
		return 0;
	out[0] = 1;
	js_be64_put(out + 1, since);
	out[9] = (uint8_t)nl;
	memcpy(out + 10, node, nl);
	return 10 + nl;
}

int js_sess_decode(const uint8_t *v, size_t len, char node[JS_NODE_MAX + 1], uint64_t *since)
{
	if (len < 11 || v[0] != 1 || len != 10 + (size_t)v[9] || !valid_node((const char *)v + 10, v[9]))
		return CHAT_ECORRUPT;
	*since = js_be64_get(v + 1);
	memcpy(node, v + 10, v[9]);
	node[v[9]] = '\0';
	return CHAT_OK;
}

size_t js_hb_encode(uint8_t out[9], uint64_t ts)
{
	out[0] = 1;
	js_be64_put(out + 1, ts);
	return 9;
}

int js_hb_decode(const uint8_t *v, size_t len, uint64_t *ts)
{
	if (len != 9 || v[0] != 1)
		return CHAT_ECORRUPT;
	*ts = js_be64_get(v + 1);
	return CHAT_OK;
}

static bool valid_addr(const char *a, size_t n)
{
	char tmp[CHAT_ADDR_MAX + 1], enc[JS_ADDR_ENC_MAX + 1];
	if (n == 0 || n > CHAT_ADDR_MAX || memchr(a, '\0', n))
		return false;
	memcpy(tmp, a, n);
	tmp[n] = '\0';
	return js_enc_addr(enc, sizeof(enc), tmp) > 0;
}

size_t js_live_size(const jstore_live_dev *devs, size_t n, size_t len)
{
	size_t need = 2 + len;
	for (size_t i = 0; i < n; i++)
		need += 1 + strlen(devs[i].addr) + 8;
	return need;
}

size_t js_live_encode(uint8_t *out, size_t cap, const jstore_live_dev *devs, size_t n, const uint8_t *bytes,
                      size_t len)
{
	if (n == 0 || n > JS_LIVE_DEVS_MAX || js_live_size(devs, n, len) > cap)
		return 0;
	size_t o = 2;
	out[0] = (uint8_t)(n >> 8);
	out[1] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		size_t al = strlen(devs[i].addr);
		if (!valid_addr(devs[i].addr, al))
			return 0;
		out[o++] = (uint8_t)al;
		memcpy(out + o, devs[i].addr, al);
		o += al;
		js_be64_put(out + o, devs[i].qseq);
		o += 8;
	}
	if (len)
		memcpy(out + o, bytes, len);
	return o + len;
}

int js_live_decode(const uint8_t *b, size_t len, jstore_live_dev **devs, size_t *n, const uint8_t **bytes,
                   size_t *blen)
{
	*devs = NULL;
	*n = 0;
	if (len < 2)
		return CHAT_ECORRUPT;
	size_t k = (size_t)b[0] << 8 | b[1];
	/* each device takes at least 1 + 3 ("u/d") + 8 bytes: a count the body
	 * cannot hold is refused before anything is allocated */
	if (k == 0 || k > JS_LIVE_DEVS_MAX || k > (len - 2) / 12)
		return CHAT_ECORRUPT;
	jstore_live_dev *d = calloc(k, sizeof(*d));
	if (!d)
		return CHAT_ENOMEM;
	size_t o = 2;
	for (size_t i = 0; i < k; i++) {
		if (o >= len)
			goto bad;
		size_t al = b[o++];
		if (al > len - o || len - o - al < 8 || !valid_addr((const char *)b + o, al))
			goto bad;
		memcpy(d[i].addr, b + o, al);
		d[i].addr[al] = '\0';
		o += al;
		d[i].qseq = js_be64_get(b + o);
		o += 8;
	}
	*devs = d;
	*n = k;
	*bytes = b + o;
	*blen = len - o;
	return CHAT_OK;
bad:
	free(d);
	return CHAT_ECORRUPT;
}

enum js_gap_res js_gap_check(js_gap *g, uint64_t epoch, uint64_t n, uint64_t *first, uint64_t *last)
{
	if (n == 0)
		return JS_GAP_OLD;
	if (!g->known || g->epoch != epoch) { /* the first from this sender, or it restarted */
		g->known = true;
		g->epoch = epoch;
		g->last = 0;
	}
	if (n <= g->last)
		return JS_GAP_OLD;
	uint64_t prev = g->last;
	g->last = n;
	if (n == prev + 1)
		return JS_GAP_NEXT;
	*first = prev + 1;
	*last = n - 1;
	return JS_GAP_MISSING;
}

uint64_t js_slot_of(uint64_t unix_ms, uint32_t slot_ms)
{
	return unix_ms / slot_ms;
}

uint64_t js_slot_left_ms(uint64_t unix_ms, uint32_t slot_ms)
{
	return slot_ms - unix_ms % slot_ms;
}

size_t js_conn_token(char *out, size_t cap, const char *node, uint64_t conn)
{
	char t[JS_TOKEN_MAX + 1];
	if (!js_enc_id(t, sizeof(t), node, strlen(node)))
		return 0;
	int k = snprintf(out, cap, "%s_%" PRIu64, t, conn);
	return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}
