// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_sync — offline delivery as a whole: an input is a script of
 * operations by the cast's devices (sends, receipts, syncs, reconnects,
 * clock jumps and ticks, privacy changes), some with raw fuzzed payloads,
 * some built well-formed from a few bytes so that scripts reach the replay,
 * acknowledgement, receipt and expiry paths in every order.
 *
 * Script: a sequence of ops, each one byte (op % OP_COUNT) and its operands:
 *   SEND_RAW   dev peer len payload[len]   payload on chat/dm/{peer}
 *   SEND       dev peer cid ttl blen       {cid, body: blen bytes, ?ttl}
 *   RCPT_RAW   dev len payload[len]        payload on chat/receipt
 *   RCPT       dev flags first count       {s, conv, seqs: first..first+count-1}
 *   SYNC       dev                         {} on chat/sync
 *   TICK       k                           clock += k * 1000 ms, core_tick
 *   DISCONNECT dev / CONNECT dev
 *   CTL_RAW    dev len payload[len]        payload on chat/ctl
 *   PRIVACY    dev flags                   {op: privacy, rid, read_receipts}
 *   CAPS       dev flags                   {op: caps, rid, caps}: flags' bits pick
 *                                          sents, rcpts, batch, an unknown name
 *   SYNC_RAW   dev len payload[len]        payload on chat/sync ({caps} among them)
 * Missing operand bytes read as 0.
 */
#include "fuzz_core_harness.h"

#include <stdio.h>
#include <string.h>

enum { SEND_RAW, SEND, RCPT_RAW, RCPT, SYNC, TICK, DISCONNECT, CONNECT, CTL_RAW, PRIVACY, CAPS,
       SYNC_RAW, OP_COUNT };
#define MAX_OPS 64

typedef struct script {
	const uint8_t *p, *end;
} script;

static uint8_t next(script *s)
{
	return s->p < s->end ? *s->p++ : 0;
}

/* Up to n bytes of the script itself, as a payload. */
static const uint8_t *take(script *s, size_t n, size_t *got)
{
	const uint8_t *at = s->p;
	*got = (size_t)(s->end - s->p) < n ? (size_t)(s->end - s->p) : n;
	s->p += *got;
	return at;
}

static enum fz_dev dev(script *s) { return (enum fz_dev)(next(s) % FZ_NDEV); }

static const char *const PEERS[] = { "alice", "bob", "carol", "nobody", "" };
static const char *const CONVS[] = { "dm:alice:bob", "dm:alice:carol", "dm:bob:carol", "g:team" };

static void publish_raw(script *s, enum fz_dev d, const char *topic)
{
	size_t n;
	const uint8_t *p = take(s, next(s), &n);
	fz_publish_as(d, topic, p, n);
}

static void op_send(script *s, bool raw)
{
	enum fz_dev d = dev(s);
	char topic[64];
	snprintf(topic, sizeof(topic), "chat/dm/%s", PEERS[next(s) % 5]);
	if (raw) {
		publish_raw(s, d, topic);
		return;
	}
	uint8_t cid = next(s), ttl = next(s);
	size_t blen;
	const uint8_t *body = take(s, next(s) % 32, &blen);
	cbw w;
	cbw_init(&w);
	cbw_map(&w, ttl ? 3 : 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, body, blen);
	if (ttl) {
		cbw_text(&w, "ttl");
		cbw_uint(&w, ttl);
	}
	fz_publish_as(d, topic, w.buf, w.len);
	cbw_free(&w);
}

static void op_receipt(script *s)
{
	enum fz_dev d = dev(s);
	uint8_t flags = next(s), first = next(s), count = next(s) % 16 + 1;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "s"); cbw_text(&w, flags & 1 ? "read" : "delivered");
	cbw_text(&w, "conv"); cbw_text(&w, CONVS[(flags >> 1) % 4]);
	cbw_text(&w, "seqs");
	cbw_array(&w, count);
	for (unsigned i = 0; i < count; i++)
		cbw_uint(&w, (uint64_t)first + i);
	fz_publish_as(d, "chat/receipt", w.buf, w.len);
	cbw_free(&w);
}

static void op_privacy(script *s)
{
	enum fz_dev d = dev(s);
	uint8_t flags = next(s);
	static const char *const pres[] = { "everyone", "contacts", "nobody" };
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 4);
	cbw_text(&w, "op"); cbw_text(&w, "privacy");
	cbw_text(&w, "rid"); cbw_uint(&w, flags);
	cbw_text(&w, "read_receipts"); cbw_bool(&w, flags & 1);
	cbw_text(&w, "presence"); cbw_text(&w, pres[(flags >> 1) % 3]);
	fz_publish_as(d, "chat/ctl", w.buf, w.len);
	cbw_free(&w);
}

/* Protocol v2: the gathered confirmations and receipts (gather.c) in
 * every order with the rest. */
static void op_caps(script *s)
{
	enum fz_dev d = dev(s);
	uint8_t flags = next(s);
	static const char *const names[] = { "sents", "rcpts", "batch", "later" };
	size_t n = 0;
	for (int i = 0; i < 4; i++)
		n += (flags >> i) & 1;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "op"); cbw_text(&w, "caps");
	cbw_text(&w, "rid"); cbw_uint(&w, flags);
	cbw_text(&w, "caps");
	cbw_array(&w, n);
	for (int i = 0; i < 4; i++)
		if ((flags >> i) & 1)
			cbw_text(&w, names[i]);
	fz_publish_as(d, "chat/ctl", w.buf, w.len);
	cbw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	core *c = fz_core();
	script s = { data, data + size };
	static const uint8_t empty_map = 0xa0;
	for (int n = 0; n < MAX_OPS && s.p < s.end; n++) {
		switch (next(&s) % OP_COUNT) {
		case SEND_RAW: op_send(&s, true); break;
		case SEND: op_send(&s, false); break;
		case RCPT_RAW: publish_raw(&s, dev(&s), "chat/receipt"); break;
		case RCPT: op_receipt(&s); break;
		case SYNC: fz_publish_as(dev(&s), "chat/sync", &empty_map, 1); break;
		case TICK:
			fz_advance((uint64_t)next(&s) * 1000);
			core_tick(c);
			break;
		case DISCONNECT: fz_disconnect(dev(&s)); break;
		case CONNECT: fz_connect(dev(&s)); break;
		case CTL_RAW: publish_raw(&s, dev(&s), "chat/ctl"); break;
		case PRIVACY: op_privacy(&s); break;
		case CAPS: op_caps(&s); break;
		case SYNC_RAW: publish_raw(&s, dev(&s), "chat/sync"); break;
		}
	}
	fz_done();
	return 0;
}
