// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_clientev — chat-client's decoders of the protocol v2 inbox events
 * (examples/client/clientev.c). The first byte picks one:
 *
 *   0  cev_sents: gathered confirmations. What it hands out is inside the
 *      input, within its limits, and an accepted event written again
 *      (canonically) decodes to the same items.
 *   1  cev_rcpts_each: coalesced receipts. Strings inside the input, seqs
 *      positive, every set non-empty; the header is the same for each set.
 *   2  cev_batch: a replay batch. Its elements are maps, inside the input,
 *      in order and not overlapping.
 *   3  cev_caps_reply: the ctl reply to `caps`. Only known capability bits.
 *
 * A refusal always has a reason, and the callback is never called for an
 * event that is refused.
 */
#include "clientev.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *why)
{
	fprintf(stderr, "fuzz_clientev: %s\n", why);
	abort();
}

static const uint8_t *in_p;
static size_t in_n;

static void inside(const cbr_item *it)
{
	if (it->type != CBR_TEXT && it->type != CBR_BYTES)
		return;
	if (it->len && (it->ptr < in_p || it->ptr + it->len > in_p + in_n))
		die("a string outside the input");
}

/* ---- sents ---- */

typedef struct sent_copy {
	cbr_item cid, conv;
	uint64_t seq, ts;
	size_t ndl;
	cbr_item dl[4];             /* the first few, compared after the round trip */
} sent_copy;
static sent_copy got[2][64];
static size_t ngot[2], calls;
static int round;

static void on_sent(void *ctx, const cev_sent *s)
{
	(void)ctx;
	calls++;
	inside(&s->cid);
	inside(&s->conv);
	if (s->conv.type != CBR_TEXT || !s->conv.len || s->seq == 0 || s->ndl > CEV_LIST_MAX)
		die("accepted an item outside its limits");
	if (!(s->cid.type == CBR_UINT || (s->cid.type == CBR_BYTES && s->cid.len >= 1 &&
	                                   s->cid.len <= 16)))
		die("accepted a bad cid");
	for (size_t i = 0; i < s->ndl; i++) {
		if (round == 0)
			inside(&s->dl[i]);
		if (s->dl[i].type != CBR_TEXT || !s->dl[i].len)
			die("accepted a bad dl entry");
	}
	if (ngot[round] < 64) {
		sent_copy *c = &got[round][ngot[round]++];
		c->cid = s->cid;
		c->conv = s->conv;
		c->seq = s->seq;
		c->ts = s->ts;
		c->ndl = s->ndl;
		for (size_t i = 0; i < s->ndl && i < 4; i++)
			c->dl[i] = s->dl[i];
	}
}

static bool same_item(const cbr_item *a, const cbr_item *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == CBR_UINT)
		return a->u == b->u;
	return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

static void sents(const uint8_t *d, size_t n)
{
	static cev_sent s;
	const char *why = NULL;
	ngot[0] = ngot[1] = 0;
	calls = 0;
	round = 0;
	if (cev_sents(d, n, &s, on_sent, NULL, &why) != CHAT_OK) {
		if (!why)
			die("a refusal without a reason");
		if (calls)
			die("called back for a refused event");
		return;
	}
	if (calls > 64)   /* only the first 64 were kept */
		return;
	/* written again canonically: the same items */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "k");
	cbw_text(&w, "sents");
	cbw_text(&w, "items");
	cbw_array(&w, ngot[0]);
	for (size_t i = 0; i < ngot[0]; i++) {
		const sent_copy *c = &got[0][i];
		bool dl = c->ndl > 0 && c->ndl <= 4;
		cbw_map(&w, 4 + dl);
		cbw_text(&w, "cid");
		if (c->cid.type == CBR_UINT)
			cbw_uint(&w, c->cid.u);
		else
			cbw_bytes(&w, c->cid.ptr, c->cid.len);
		cbw_text(&w, "conv");
		cbw_textn(&w, (const char *)c->conv.ptr, c->conv.len);
		cbw_text(&w, "seq");
		cbw_uint(&w, c->seq);
		cbw_text(&w, "ts");
		cbw_uint(&w, c->ts);
		if (dl) {
			cbw_text(&w, "dl");
			cbw_array(&w, c->ndl);
			for (size_t j = 0; j < c->ndl; j++)
				cbw_textn(&w, (const char *)c->dl[j].ptr, c->dl[j].len);
		}
	}
	if (cbw_status(&w) != CHAT_OK)
		die("encode failed");
	round = 1;
	in_p = w.buf;
	in_n = w.len;
	if (cev_sents(w.buf, w.len, &s, on_sent, NULL, &why) != CHAT_OK)
		die("a re-encoded sents does not decode");
	if (ngot[1] != ngot[0])
		die("the round trip changed the number of items");
	for (size_t i = 0; i < ngot[0]; i++) {
		const sent_copy *a = &got[0][i], *b = &got[1][i];
		if (!same_item(&a->cid, &b->cid) || !same_item(&a->conv, &b->conv) ||
		    a->seq != b->seq || a->ts != b->ts ||
		    (a->ndl <= 4 && a->ndl != b->ndl))
			die("the round trip changed an item");
		for (size_t j = 0; j < a->ndl && a->ndl <= 4; j++)
			if (!same_item(&a->dl[j], &b->dl[j]))
				die("the round trip changed dl");
	}
	cbw_free(&w);
}

/* ---- rcpts ---- */

static cev_rcpts first_h;

static void on_set(void *ctx, const cev_rcpts *h, const cev_rset *set)
{
	(void)ctx;
	if (calls++ == 0)
		first_h = *h;
	else if (memcmp(&first_h, h, sizeof *h) != 0)
		die("the header changed between sets");
	inside(&h->conv);
	inside(&h->s);
	if (h->conv.type != CBR_TEXT || !(cbr_eq(&h->s, "delivered") || cbr_eq(&h->s, "read") ||
	                                  cbr_eq(&h->s, "expired")))
		die("accepted a bad header");
	if (!set->nseqs || !set->nby || set->nseqs > CEV_LIST_MAX || set->nby > CEV_LIST_MAX)
		die("accepted a set outside its limits");
	for (size_t i = 0; i < set->nseqs; i++)
		if (set->seqs[i] == 0)
			die("accepted seq 0");
	for (size_t i = 0; i < set->nby; i++) {
		inside(&set->by[i]);
		if (set->by[i].type != CBR_TEXT || !set->by[i].len)
			die("accepted a bad user");
	}
}

static void rcpts(const uint8_t *d, size_t n)
{
	static cev_rset set;
	cev_rcpts h;
	const char *why = NULL;
	calls = 0;
	if (cev_rcpts_each(d, n, &h, &set, on_set, NULL, &why) != CHAT_OK) {
		if (!why)
			die("a refusal without a reason");
		if (calls)
			die("called back for a refused event");
	} else if (!calls) {
		die("an accepted rcpts without a set");
	}
}

/* ---- batch ---- */

static const uint8_t *last_end;

static void on_ev(void *ctx, const uint8_t *ev, size_t len)
{
	(void)ctx;
	calls++;
	if (ev < in_p || ev + len > in_p + in_n || len == 0)
		die("an element outside the input");
	if (last_end && ev < last_end)
		die("elements overlap or go backwards");
	last_end = ev + len;
	if ((ev[0] >> 5) != 5)
		die("an element that is not a map");
	cbr r;
	cbr_init(&r, ev, len);
	if (cbr_skip_next(&r) != CHAT_OK || !cbr_done(&r))
		die("an element is not exactly one item");
}

static void batch(const uint8_t *d, size_t n)
{
	const char *why = NULL;
	calls = 0;
	last_end = NULL;
	if (cev_batch(d, n, on_ev, NULL, &why) != CHAT_OK) {
		if (!why)
			die("a refusal without a reason");
		if (calls)
			die("called back for a refused event");
	} else if (!calls) {
		die("an accepted batch without events");
	}
}

static void caps(const uint8_t *d, size_t n)
{
	cev_caps c;
	const char *why = NULL;
	if (cev_caps_reply(d, n, &c, &why) != CHAT_OK) {
		if (!why)
			die("a refusal without a reason");
		return;
	}
	if (c.caps & ~((1u << CEV_NCAPS) - 1))
		die("an unknown capability bit");
	inside(&c.code);
	inside(&c.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	in_p = data + 1;
	in_n = size - 1;
	switch (data[0] % 4) {
	case 0: sents(data + 1, size - 1); break;
	case 1: rcpts(data + 1, size - 1); break;
	case 2: batch(data + 1, size - 1); break;
	default: caps(data + 1, size - 1); break;
	}
	return 0;
}
