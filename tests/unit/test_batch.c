// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_batch.c — batched replay (docs/PROTOCOL.md §5, the `batch`
 * capability): a device that declared it gets its replay as
 * {"k":"batch","evs":[...]} publishes of up to plugin_opt_replay_batch
 * queued events, in queue order, each element exactly its v1 event; the
 * flow window counts events, not packets; a receipt for part of a batch
 * frees that part; on a broker that reports PUBACKs one PUBACK frees a
 * whole batch and is the delivered receipt of every message in it; live
 * events during a replay wait behind it and keep their order; devices
 * without the capability see exactly what they saw before.
 *
 * Same approach as test_offline.c: the core driven through core.h with
 * the recording fake core_io and a real store (support/).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_io.h"
#include "core.h"
#include "err.h"
#include "events.h"
#include "fake_io.h"
#include "harness.h"

#define CONV "dm:alice:bob"
#define BATCHER "bob/batch"
#define ALL_EVENTS (CORE_BEV_CONNECT | CORE_BEV_SUBSCRIBE | CORE_BEV_ACKED)

static void setup(void)
{
	env_setup(FAKE_BROADCASTS_COUNTED);
}

static void teardown(void) { env_teardown(); }

/* ================= rendering what a device got ================= */

/* One element (or plain event) in the compact form of test_offline.c:
 * m<seq>, <s>(<by>):<seqs>, done, sent<seq>, ctl:ok, g<seq>. */
static void render_one(const pubrec *p, char *o, size_t room, const char *sp)
{
	const char *k = ftext(p, "k");
	if (strcmp(k, "msg") == 0) {
		ck_assert(fhas(p, "conv") && fhas(p, "from") && fhas(p, "ts") && fhas(p, "body"));
		snprintf(o, room, "%sm%llu", sp, (unsigned long long)fuint(p, "seq"));
	} else if (strcmp(k, "receipt") == 0) {
		ck_assert_uint_eq(fnkeys(p), 6);
		snprintf(o, room, "%s%s(%s):%s", sp, ftext(p, "s"), ftext(p, "by"), flist(p, "seqs"));
	} else if (strcmp(k, "sync") == 0) {
		ck_assert(fbool(p, "done"));
		snprintf(o, room, "%sdone", sp);
	} else if (strcmp(k, "sent") == 0) {
		snprintf(o, room, "%ssent%llu", sp, (unsigned long long)fuint(p, "seq"));
	} else if (strcmp(k, "ctl") == 0) {
		snprintf(o, room, "%sctl:%s", sp, fbool(p, "ok") ? "ok" : ftext(p, "code"));
	} else if (strcmp(k, "group") == 0) {
		snprintf(o, room, "%sg%llu", sp, (unsigned long long)fuint(p, "seq"));
	} else {
		ck_abort_msg("unexpected event kind %s", k);
	}
}

/* The events addr got since m, space-separated; a batch as [e1 e2 …]
 * (its elements checked: each a well-formed v1 event map). */
static const char *trace(size_t m, const char *addr)
{
	static char ring[4][65536];
	static int next;
	char *out = ring[next++ % 4];
	out[0] = '\0';
	const pubrec *p;
	for (size_t i = m; (p = inbox_next(&i, addr));) {
		size_t l = strlen(out);
		const char *sp = l ? " " : "";
		if (strcmp(ftext(p, "k"), "batch") != 0) {
			render_one(p, out + l, sizeof(ring[0]) - l, sp);
			continue;
		}
		/* {k: "batch", evs: [2+ events]}: nothing else */
		ck_assert_uint_eq(fnkeys(p), 2);
		cbr_item evs;
		const uint8_t *raw;
		size_t rawlen;
		ck_assert(fget(p, "evs", &evs, &raw, &rawlen));
		ck_assert_int_eq(evs.type, CBR_ARRAY);
		ck_assert(!evs.indef);
		ck_assert_uint_ge(evs.u, 2); /* one alone goes unwrapped */
		snprintf(out + l, sizeof(ring[0]) - l, "%s[", sp);
		cbr r;
		cbr_init(&r, raw, rawlen);
		cbr_item arr;
		ck_assert_int_eq(cbr_next(&r, &arr), CHAT_OK);
		for (uint64_t j = 0; j < arr.u; j++) {
			const uint8_t *at = r.p;
			cbr_item el;
			ck_assert_int_eq(cbr_next(&r, &el), CHAT_OK);
			ck_assert_int_eq(el.type, CBR_MAP);
			ck_assert_int_eq(cbr_skip(&r, &el), CHAT_OK);
			pubrec e = *p;
			e.p = (uint8_t *)at;
			e.len = (size_t)(r.p - at);
			well_formed(&e);
			ck_assert_str_ne(ftext(&e, "k"), "batch"); /* never nested */
			size_t l2 = strlen(out);
			render_one(&e, out + l2, sizeof(ring[0]) - l2, j ? " " : "");
		}
		ck_assert(cbr_done(&r));
		l = strlen(out);
		snprintf(out + l, sizeof(ring[0]) - l, "]");
	}
	return out;
}

/* "m<a> … m<b>" */
static const char *mrange(uint64_t a, uint64_t b)
{
	static char ring[8][16384];
	static int next;
	char *out = ring[next++ % 8];
	out[0] = '\0';
	for (uint64_t s = a; s <= b; s++) {
		size_t l = strlen(out);
		snprintf(out + l, 16384 - l, "%sm%llu", l ? " " : "", (unsigned long long)s);
	}
	return out;
}

/* "[m<a> … m<b>]" */
static const char *brange(uint64_t a, uint64_t b)
{
	static char ring[8][16384];
	static int next;
	char *out = ring[next++ % 8];
	snprintf(out, 16384, "[%s]", mrange(a, b));
	return out;
}

/* Joins up to 8 parts with spaces (NULL ends). */
static const char *cat(const char *a, const char *b, const char *c2, const char *d, const char *e)
{
	static char ring[4][65536];
	static int next;
	char *out = ring[next++ % 4];
	const char *parts[] = { a, b, c2, d, e };
	out[0] = '\0';
	for (size_t i = 0; i < 5 && parts[i]; i++) {
		size_t l = strlen(out);
		snprintf(out + l, 65536 - l, "%s%s", l ? " " : "", parts[i]);
	}
	return out;
}

/* ================= driving ================= */

/* The device declares caps (NULL-terminated names) with ctl caps; the
 * reply says what the replay will do. */
static void declare_caps(const char *addr, const char *const *caps)
{
	size_t n = 0;
	while (caps[n])
		n++;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "op"); cbw_text(&w, "caps");
	cbw_text(&w, "rid"); cbw_uint(&w, 7);
	cbw_text(&w, "caps");
	cbw_array(&w, n);
	for (size_t i = 0; i < n; i++)
		cbw_text(&w, caps[i]);
	size_t m = mark();
	ck_assert_int_eq(dev_pub(addr, "chat/ctl", w.buf, w.len), CORE_ALLOW);
	cbw_free(&w);
	const pubrec *p = event_to(m, addr, "ctl");
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fuint(p, "rid"), 7);
	cbr_item srv;
	const uint8_t *raw;
	size_t rawlen;
	ck_assert(fget(p, "server", &srv, &raw, &rawlen));
	pubrec s = *p;
	s.p = (uint8_t *)raw;
	s.len = rawlen;
	ck_assert_uint_eq(fuint(&s, "replay_batch"), CFG.replay_batch);
}

static const char *const BATCH_CAPS[] = { "batch", NULL };

/* alice/phone online, bob/phone (v1) and bob/batch (declares `batch`)
 * offline. */
static void cast(void)
{
	register_device("alice", "phone");
	register_device("bob", "phone");
	register_device("bob", "batch");
	connect_new("alice/phone");
	connect_new(BATCHER);
	declare_caps(BATCHER, BATCH_CAPS);
	core_disconnect(C, find_dev(BATCHER)->conn, BATCHER, BATCHER);
}

static enum core_verdict try_send(const char *from, const char *peer, uint64_t cid,
                                  const char *body)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, body, strlen(body));
	char topic[128];
	snprintf(topic, sizeof(topic), "chat/dm/%s", peer);
	enum core_verdict v = dev_pub(from, topic, w.buf, w.len);
	cbw_free(&w);
	return v;
}

/* n messages alice/phone -> bob, cids from `first`; their seqs follow. */
static void send_n(uint64_t first, size_t n)
{
	char body[64];
	for (size_t i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "hello %llu", (unsigned long long)(first + i));
		ck_assert_int_eq(try_send("alice/phone", "bob", first + i, body), CORE_ALLOW);
		F.now += 5; /* alice's `sent` events drain by the estimate */
	}
}

static const char *sync_trace(const char *addr)
{
	size_t m = mark();
	ck_assert_int_eq(dev_sync(addr), CORE_ALLOW);
	return trace(m, addr);
}

static const char *tick_trace(const char *addr)
{
	size_t m = mark();
	core_tick(C);
	return trace(m, addr);
}

/* A delivered receipt for seqs a..b of CONV; what `to` got from it. */
static const char *receipt_trace(const char *addr, uint64_t a, uint64_t b, const char *to)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "s"); cbw_text(&w, "delivered");
	cbw_text(&w, "conv"); cbw_text(&w, CONV);
	cbw_text(&w, "seqs");
	cbw_array(&w, b - a + 1);
	for (uint64_t q = a; q <= b; q++)
		cbw_uint(&w, q);
	size_t m = mark();
	ck_assert_int_eq(dev_pub(addr, "chat/receipt", w.buf, w.len), CORE_ALLOW);
	cbw_free(&w);
	return trace(m, to);
}

/* The broker acknowledges publish p from addr, as the patched broker's
 * MESSAGE_ACKED event makes the glue call both. */
static void puback(const char *addr, const pubrec *p)
{
	dev_ack(addr, p);
	core_on_delivered_ack_payload(C, addr, p->topic, p->p, p->len);
}

/* How many events publish p carried (a batch's elements, else 1). */
static size_t events_of(const pubrec *p)
{
	if (strcmp(ftext(p, "k"), "batch") != 0)
		return 1;
	cbr_item evs;
	ck_assert(fget(p, "evs", &evs, NULL, NULL));
	return (size_t)evs.u;
}

/* ================= tests ================= */

/* Batches of replay_batch in queue order, the rest in a smaller one, then
 * `done` alone; the v1 device the same events one by one. */
START_TEST(batch_sizes)
{
	CFG.inflight_window = 1000;
	reopen_core();
	cast();
	send_n(1, 150);
	connect_new(BATCHER);
	ck_assert_str_eq(sync_trace(BATCHER),
	                 cat(brange(1, 64), brange(65, 128), brange(129, 150), "done", NULL));
	connect_new("bob/phone");
	ck_assert_str_eq(sync_trace("bob/phone"), cat(mrange(1, 150), "done", NULL, NULL, NULL));
	/* A batch of one goes out as the event itself. */
	ck_assert_str_eq(receipt_trace(BATCHER, 1, 128, BATCHER), "");
	ck_assert_str_eq(sync_trace(BATCHER), cat(brange(129, 150), "done", NULL, NULL, NULL));
	ck_assert_str_eq(receipt_trace(BATCHER, 129, 149, BATCHER), "");
	ck_assert_str_eq(sync_trace(BATCHER), "m150 done");
}
END_TEST

/* plugin_opt_replay_batch 1: the v1 replay for everybody; another size:
 * batches of it. */
START_TEST(batch_option)
{
	CFG.inflight_window = 1000;
	CFG.replay_batch = 1;
	reopen_core();
	cast();
	send_n(1, 20);
	connect_new(BATCHER);
	ck_assert_str_eq(sync_trace(BATCHER), cat(mrange(1, 20), "done", NULL, NULL, NULL));
	CFG.replay_batch = 8;
	reopen_core();
	next_conn = 0;
	connect_new("alice/phone");
	connect_new(BATCHER);
	ck_assert_str_eq(sync_trace(BATCHER),
	                 cat(brange(1, 8), brange(9, 16), brange(17, 20), "done", NULL));
}
END_TEST

/* A batch stays under plugin_opt_max_body bytes: it closes before an
 * element that would take it past. */
START_TEST(batch_bytes_bound)
{
	CFG.inflight_window = 1000;
	CFG.max_body = 400;
	reopen_core();
	cast();
	send_n(1, 30);
	connect_new(BATCHER);
	size_t m = mark();
	ck_assert_int_eq(dev_sync(BATCHER), CORE_ALLOW);
	size_t total = 0, batches = 0;
	for (size_t i = m; i < F.npubs; i++) {
		const pubrec *p = &F.pubs[i];
		if (strcmp(p->clientid, BATCHER) != 0)
			continue;
		if (strcmp(ftext(p, "k"), "batch") == 0) {
			ck_assert_uint_le(p->len, 400);
			batches++;
		}
		if (strcmp(ftext(p, "k"), "sync") != 0)
			total += events_of(p);
	}
	ck_assert_uint_eq(total, 30);
	ck_assert_uint_ge(batches, 3); /* ~60 bytes a msg event: ~6 to a batch */
	/* still every seq once, in order */
	const char *t = trace(m, BATCHER);
	char flat[8192];
	size_t o = 0;
	for (const char *s = t; *s; s++)
		if (*s != '[' && *s != ']')
			flat[o++] = *s;
	flat[o] = '\0';
	ck_assert_str_eq(flat, cat(mrange(1, 30), "done", NULL, NULL, NULL));
}
END_TEST

/* Stock broker: the window counts events, not packets; a receipt for
 * part of a batch frees that part, and the pump fills it again. */
START_TEST(batch_window_counts_events)
{
	CFG.inflight_window = 100;
	reopen_core();
	cast();
	send_n(1, 300);
	connect_new(BATCHER);
	/* 100 places: one batch of 64, not a second that would not fit */
	ck_assert_str_eq(sync_trace(BATCHER), brange(1, 64));
	ck_assert_str_eq(tick_trace(BATCHER), brange(65, 100)); /* the tick: what fits */
	ck_assert_str_eq(tick_trace(BATCHER), "");
	/* A receipt for 10 of the first batch: 10 places */
	ck_assert_str_eq(receipt_trace(BATCHER, 1, 10, BATCHER), brange(101, 110));
	/* the rest of the first batch and the second: 90 places, one whole
	 * batch at once; the tick sends the part that is left */
	ck_assert_str_eq(receipt_trace(BATCHER, 11, 100, BATCHER), brange(111, 174));
	ck_assert_str_eq(tick_trace(BATCHER), brange(175, 200));
	ck_assert_str_eq(receipt_trace(BATCHER, 101, 200, BATCHER), brange(201, 264));
	ck_assert_str_eq(tick_trace(BATCHER), cat(brange(265, 300), "done", NULL, NULL, NULL));
}
END_TEST

/* New messages during a replay wait behind it, go out in its batches, in
 * order; after `done` the device is live again: plain msg events. */
START_TEST(batch_live_during_replay)
{
	CFG.inflight_window = 64;
	reopen_core();
	cast();
	send_n(1, 100);
	connect_new(BATCHER);
	ck_assert_str_eq(sync_trace(BATCHER), brange(1, 64));
	size_t m = mark();
	send_n(101, 30); /* live for alice, queued behind the backlog for bob/batch */
	ck_assert_str_eq(trace(m, BATCHER), "");
	ck_assert_str_eq(receipt_trace(BATCHER, 1, 64, BATCHER), brange(65, 128));
	ck_assert_str_eq(receipt_trace(BATCHER, 65, 128, BATCHER),
	                 cat(brange(129, 130), "done", NULL, NULL, NULL));
	m = mark();
	send_n(131, 2);
	ck_assert_str_eq(trace(m, BATCHER), "m131 m132");
}
END_TEST

/* Queued events (a receipt for bob's own message) ride in the batches
 * among the messages, in queue order, and leave the queue once replayed. */
START_TEST(batch_carries_queued_events)
{
	CFG.inflight_window = 1000;
	reopen_core();
	cast();
	connect_new("bob/phone");
	ck_assert_int_eq(try_send("bob/phone", "alice", 900, "hi alice"), CORE_ALLOW); /* seq 1 */
	send_n(1, 3);                                                                  /* 2..4 */
	/* alice reads bob's message: a receipt event queued for bob/batch */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "s"); cbw_text(&w, "delivered");
	cbw_text(&w, "conv"); cbw_text(&w, CONV);
	cbw_text(&w, "seqs"); cbw_array(&w, 1); cbw_uint(&w, 1);
	ck_assert_int_eq(dev_pub("alice/phone", "chat/receipt", w.buf, w.len), CORE_ALLOW);
	cbw_free(&w);
	send_n(4, 2); /* 5, 6 */
	connect_new(BATCHER);
	ck_assert_str_eq(sync_trace(BATCHER), "[m1 m2 m3 m4 delivered(alice):1 m5 m6] done");
	/* the receipt event left the queue; the messages wait for receipts */
	ck_assert_str_eq(sync_trace(BATCHER), "[m1 m2 m3 m4 m5 m6] done");
}
END_TEST

/* A broker that reports PUBACKs: a batch takes a place per event; its
 * PUBACK frees them all and is the delivered receipt of each message in
 * it (the sender's ✓✓); the auto replay batches too. */
START_TEST(batch_puback_frees_and_delivers)
{
	CFG.inflight_window = 200;
	reopen_core();
	ck_assert(core_broker_events(C, ALL_EVENTS));
	cast();
	send_n(1, 300);
	/* alice's PUBACK of her first `sent`: the broker reports acks, the
	 * windows count exactly from now on */
	char ainbox[] = "chat/inbox/alice/phone";
	core_on_delivered_ack(C, "alice/phone", ainbox);
	connect_new(BATCHER);
	size_t m = mark();
	void *conn = find_dev(BATCHER)->conn;
	ck_assert_int_eq(core_acl(C, conn, BATCHER, BATCHER, "chat/inbox/" BATCHER,
	                          CORE_ACC_SUBSCRIBE, false), CORE_ALLOW);
	core_subscribed(C, conn, BATCHER, "chat/inbox/" BATCHER);
	ck_assert_str_eq(trace(m, BATCHER), cat(brange(1, 64), brange(65, 128), brange(129, 192),
	                                       NULL, NULL));
	/* 192 in flight: each batch's PUBACK frees its 64 places, and the
	 * next batch goes out at once, one per PUBACK */
	size_t m2 = mark();
	puback(BATCHER, nth_to(m, BATCHER, 0));
	ck_assert_str_eq(trace(m2, BATCHER), brange(193, 256));
	m2 = mark();
	puback(BATCHER, nth_to(m, BATCHER, 1));
	ck_assert_str_eq(trace(m2, BATCHER), cat(brange(257, 300), "done", NULL, NULL, NULL));
	/* Each batch's PUBACK reached the sender as delivered receipts, at
	 * once (no gathering across batches). */
	const char *t = trace(m, "alice/phone");
	char want[8192] = "";
	for (uint64_t s = 1; s <= 128; s++) {
		size_t l = strlen(want);
		snprintf(want + l, sizeof(want) - l, "%s%llu", s == 1 ? "" : "+", (unsigned long long)s);
	}
	ck_assert_ptr_nonnull(strstr(t, "delivered(bob):"));
	char got[8192] = "";
	/* one or more receipt events, together seqs 1..128 in order */
	for (const char *s = t; (s = strstr(s, "delivered(bob):")); ) {
		s += strlen("delivered(bob):");
		size_t l = strlen(got), n = strcspn(s, " ");
		snprintf(got + l, sizeof(got) - l, "%s%.*s", l ? "+" : "", (int)n, s);
		s += n;
	}
	ck_assert_str_eq(got, want);
	/* delivered: the next connection's replay has only what was not
	 * acknowledged */
	core_disconnect(C, find_dev(BATCHER)->conn, BATCHER, BATCHER);
	connect_new(BATCHER);
	ck_assert_str_eq(sync_trace(BATCHER),
	                 cat(brange(129, 192), brange(193, 256), brange(257, 300), "done", NULL));
}
END_TEST

/* The v1 device is untouched by the option and by the other device's
 * capability; a batch's PUBACK on a v1 device cannot happen, a msg's
 * frees one place as before. */
START_TEST(batch_v1_device_unchanged)
{
	CFG.inflight_window = 4;
	reopen_core();
	ck_assert(core_broker_events(C, ALL_EVENTS));
	cast();
	send_n(1, 6);
	connect_new("bob/phone");
	size_t m = mark();
	ck_assert_int_eq(dev_sync("bob/phone"), CORE_ALLOW);
	ck_assert_str_eq(trace(m, "bob/phone"), "m1 m2 m3 m4");
	size_t m2 = mark();
	puback("bob/phone", nth_to(m, "bob/phone", 0));
	ck_assert_str_eq(trace(m2, "bob/phone"), "");
	puback("bob/phone", nth_to(m, "bob/phone", 1));
	ck_assert_str_eq(trace(m2, "bob/phone"), "m5 m6 done");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("batch");
	TCase *t = env_tcase("batch", setup, teardown);
	tcase_add_test(t, batch_sizes);
	tcase_add_test(t, batch_option);
	tcase_add_test(t, batch_bytes_bound);
	tcase_add_test(t, batch_window_counts_events);
	tcase_add_test(t, batch_live_during_replay);
	tcase_add_test(t, batch_carries_queued_events);
	tcase_add_test(t, batch_puback_frees_and_delivers);
	tcase_add_test(t, batch_v1_device_unchanged);
	suite_add_tcase(s, t);
	return s;
}

int main(void) { return run_suite(suite()); }
