// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_caps.c — protocol v2 in the plugin core: capabilities (ctl caps,
 * chat/sync caps, kept in the store), gathered confirmations (`sents`)
 * and coalesced receipts (`rcpts`), and that devices without them see the
 * v1 forms.
 *
 * Same approach as test_offline.c, sharing its test support (support/):
 * the core driven through core.h with the recording fake of core_io and
 * a real store per test; the events a device got are rendered compactly
 * (trace()) and compared.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor_io.h"
#include "core.h"
#include "core_internal.h" /* struct device: its caps bits */
#include "err.h"
#include "events.h"
#include "fake_io.h"
#include "harness.h"
#include "ids.h"

#define CONV "dm:alice:bob"
#define ALL_EVENTS (CORE_BEV_CONNECT | CORE_BEV_SUBSCRIBE | CORE_BEV_ACKED)

static void setup(void)
{
	env_setup(FAKE_BROADCASTS_COUNTED);
}

static void teardown(void) { env_teardown(); }

/* ================= rendering what a device got ================= */

/* An array of uints or texts at the reader's position, joined: uints with
 * '+', texts with ','; into out. */
static void join_array(cbr *r, char *out, size_t room)
{
	cbr_item a, x;
	uint64_t i = 0;
	ck_assert_int_eq(cbr_next(r, &a), CHAT_OK);
	ck_assert_int_eq(a.type, CBR_ARRAY);
	out[0] = '\0';
	while (cbr_array_next(r, &a, &i)) {
		ck_assert_int_eq(cbr_next(r, &x), CHAT_OK);
		size_t l = strlen(out);
		if (x.type == CBR_UINT)
			snprintf(out + l, room - l, "%s%llu", l ? "+" : "", (unsigned long long)x.u);
		else {
			ck_assert_int_eq(x.type, CBR_TEXT);
			snprintf(out + l, room - l, "%s%.*s", l ? "," : "", (int)x.len, (const char *)x.ptr);
		}
	}
}

/* sents: "sents[<seq>(<cid>)/dl=<users>,…]" */
static void render_sents(const pubrec *p, char *o, size_t room)
{
	const uint8_t *raw;
	size_t rawlen;
	cbr_item v;
	ck_assert_uint_eq(fnkeys(p), 2);
	ck_assert(fget(p, "items", &v, &raw, &rawlen));
	cbr r, ir;
	cbr_item arr, m, k, x;
	uint64_t i = 0;
	cbr_init(&r, raw, rawlen);
	ck_assert_int_eq(cbr_next(&r, &arr), CHAT_OK);
	ck_assert_int_eq(arr.type, CBR_ARRAY);
	ck_assert_uint_gt(arr.u, 0);
	snprintf(o, room, "sents[");
	while (cbr_array_next(&r, &arr, &i)) {
		ck_assert_int_eq(cbr_next(&r, &m), CHAT_OK);
		ck_assert_int_eq(m.type, CBR_MAP);
		uint64_t j = 0, seq = 0, cid = 0;
		bool has_conv = false, has_ts = false, has_cid = false;
		char dl[1024] = "";
		while (cbr_map_next(&r, &m, &j, &k)) {
			if (cbr_eq(&k, "dl")) {
				join_array(&r, dl, sizeof dl);
				ck_assert_uint_gt(strlen(dl), 0);
				continue;
			}
			ck_assert_int_eq(cbr_next(&r, &x), CHAT_OK);
			if (cbr_eq(&k, "seq"))
				seq = x.u;
			else if (cbr_eq(&k, "cid")) {
				ck_assert_int_eq(x.type, CBR_UINT);
				cid = x.u;
				has_cid = true;
			} else if (cbr_eq(&k, "conv"))
				has_conv = x.type == CBR_TEXT;
			else if (cbr_eq(&k, "ts"))
				has_ts = x.type == CBR_UINT && x.u >= FAKE_T0 && x.u <= F.now;
			else
				ck_abort_msg("unexpected key in a sents item");
		}
		ck_assert(has_conv && has_ts && has_cid && seq);
		size_t l = strlen(o);
		snprintf(o + l, room - l, "%s%llu(%llu)%s%s", i > 1 ? "," : "", (unsigned long long)seq,
		         (unsigned long long)cid, dl[0] ? "/dl=" : "", dl);
	}
	(void)ir;
	size_t l = strlen(o);
	snprintf(o + l, room - l, "]");
}

/* rcpts: "rcpts:<s>[<seqs>(<by>);…]" */
static void render_rcpts(const pubrec *p, char *o, size_t room)
{
	const uint8_t *raw;
	size_t rawlen;
	cbr_item v;
	ck_assert_uint_eq(fnkeys(p), 5);
	ck_assert(fhas(p, "conv"));
	uint64_t ts = fuint(p, "ts");
	ck_assert(ts >= FAKE_T0 && ts <= F.now);
	ck_assert(fget(p, "sets", &v, &raw, &rawlen));
	snprintf(o, room, "rcpts:%s[", ftext(p, "s"));
	cbr r;
	cbr_item arr, m, k;
	uint64_t i = 0;
	cbr_init(&r, raw, rawlen);
	ck_assert_int_eq(cbr_next(&r, &arr), CHAT_OK);
	ck_assert_uint_gt(arr.u, 0);
	while (cbr_array_next(&r, &arr, &i)) {
		ck_assert_int_eq(cbr_next(&r, &m), CHAT_OK);
		ck_assert_int_eq(m.type, CBR_MAP);
		ck_assert_uint_eq(m.u, 2);
		char seqs[4096] = "", by[8192] = "";
		uint64_t j = 0;
		while (cbr_map_next(&r, &m, &j, &k)) {
			if (cbr_eq(&k, "seqs"))
				join_array(&r, seqs, sizeof seqs);
			else if (cbr_eq(&k, "by"))
				join_array(&r, by, sizeof by);
			else
				ck_abort_msg("unexpected key in a rcpts set");
		}
		ck_assert(seqs[0] && by[0]);
		size_t l = strlen(o);
		snprintf(o + l, room - l, "%s%s(%s)", i > 1 ? ";" : "", seqs, by);
	}
	size_t l = strlen(o);
	snprintf(o + l, room - l, "]");
}

/* One event in trace()'s words (below), after sp, into o. */
static void render_ev(const pubrec *p, char *o, size_t room, const char *sp, const char *addr)
{
	const char *k = ftext(p, "k");
	char buf[16384];
	if (strcmp(k, "msg") == 0)
		snprintf(o, room, "%sm%llu", sp, (unsigned long long)fuint(p, "seq"));
	else if (strcmp(k, "receipt") == 0)
		snprintf(o, room, "%s%s(%s):%s", sp, ftext(p, "s"), ftext(p, "by"), flist(p, "seqs"));
	else if (strcmp(k, "sync") == 0)
		snprintf(o, room, "%sdone", sp);
	else if (strcmp(k, "sent") == 0)
		snprintf(o, room, "%ssent%llu", sp, (unsigned long long)fuint(p, "seq"));
	else if (strcmp(k, "sents") == 0) {
		render_sents(p, buf, sizeof buf);
		snprintf(o, room, "%s%s", sp, buf);
	} else if (strcmp(k, "rcpts") == 0) {
		render_rcpts(p, buf, sizeof buf);
		snprintf(o, room, "%s%s", sp, buf);
	} else if (strcmp(k, "error") == 0)
		snprintf(o, room, "%serror:%s", sp, ftext(p, "code"));
	else if (strcmp(k, "ctl") == 0)
		snprintf(o, room, "%sctl:%s", sp, fbool(p, "ok") ? "ok" : ftext(p, "code"));
	else if (strcmp(k, "group") == 0)
		snprintf(o, room, "%sg%llu", sp, (unsigned long long)fuint(p, "seq"));
	else
		ck_abort_msg("unexpected event kind %s to %s", k, addr);
}

/* The events addr got since m, one word each, space-separated:
 *   msg m<seq>, receipt <s>(<by>):<seqs>, sync done, sent sent<seq>,
 *   sents sents[…], rcpts rcpts:<s>[…], error error:<code>,
 *   ctl ctl:ok / ctl:<code>; a replay batch (docs/PROTOCOL.md §5) as
 *   [<its events>]. */
static const char *trace(size_t m, const char *addr)
{
	static char ring[4][32768];
	static int next;
	char *out = ring[next++ % 4];
	out[0] = '\0';
	const pubrec *p;
	for (size_t i = m; (p = inbox_next(&i, addr));) {
		well_formed(p);
		size_t l = strlen(out);
		const char *sp = l ? " " : "";
		if (strcmp(ftext(p, "k"), "batch") != 0) {
			render_ev(p, out + l, sizeof(ring[0]) - l, sp, addr);
			continue;
		}
		cbr_item evs;
		const uint8_t *raw;
		size_t rawlen;
		ck_assert(fget(p, "evs", &evs, &raw, &rawlen));
		cbr r;
		cbr_item arr;
		cbr_init(&r, raw, rawlen);
		ck_assert_int_eq(cbr_next(&r, &arr), CHAT_OK);
		snprintf(out + l, sizeof(ring[0]) - l, "%s[", sp);
		for (uint64_t j = 0; j < arr.u; j++) {
			const uint8_t *at = r.p;
			cbr_item el;
			ck_assert_int_eq(cbr_next(&r, &el), CHAT_OK);
			ck_assert_int_eq(cbr_skip(&r, &el), CHAT_OK);
			pubrec e = *p;
			e.p = (uint8_t *)at;
			e.len = (size_t)(r.p - at);
			well_formed(&e);
			l = strlen(out);
			render_ev(&e, out + l, sizeof(ring[0]) - l, j ? " " : "", addr);
		}
		l = strlen(out);
		snprintf(out + l, sizeof(ring[0]) - l, "]");
	}
	return out;
}

/* ================= driving helpers ================= */

/* The caps array of names (NULL-terminated) into w. */
static void names(cbw *w, const char *const *caps)
{
	size_t n = 0;
	while (caps[n])
		n++;
	cbw_array(w, n);
	for (size_t i = 0; i < n; i++)
		cbw_text(w, caps[i]);
}

/* ctl {op: "caps", rid: 7, caps}; its one reply. */
static const pubrec *ctl_caps(const char *addr, const char *const *caps)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "op"); cbw_text(&w, "caps");
	cbw_text(&w, "rid"); cbw_uint(&w, 7);
	cbw_text(&w, "caps"); names(&w, caps);
	size_t m = mark();
	dev_pubw(addr, "chat/ctl", &w);
	cbw_free(&w);
	/* the reply is the last publish (what was gathered may go before it) */
	ck_assert_uint_gt(F.npubs, m);
	const pubrec *p = &F.pubs[F.npubs - 1];
	ck_assert_str_eq(p->clientid, addr);
	ck_assert_str_eq(ftext(p, "k"), "ctl");
	ck_assert_uint_eq(fuint(p, "rid"), 7);
	return p;
}

/* Declares caps (by ctl), checked. */
static void declare(const char *addr, const char *const *caps)
{
	ck_assert(fbool(ctl_caps(addr, caps), "ok"));
}

static uint32_t caps_of(const char *addr)
{
	device *d = dir_device(&C->dir, addr, strlen(addr));
	ck_assert_ptr_nonnull(d);
	return d->caps;
}

/* The value of key in the map `server` of a caps reply. */
static cbr_item server_field(const pubrec *p, const char *key)
{
	const uint8_t *raw;
	size_t rawlen;
	cbr_item v, k, x;
	ck_assert(fget(p, "server", &v, &raw, &rawlen));
	ck_assert_int_eq(v.type, CBR_MAP);
	ck_assert_uint_eq(v.u, 4);
	cbr r;
	uint64_t i = 0;
	cbr_init(&r, raw, rawlen);
	cbr_next(&r, &v);
	while (cbr_map_next(&r, &v, &i, &k)) {
		ck_assert_int_eq(cbr_next(&r, &x), CHAT_OK);
		if (cbr_eq(&k, key))
			return x;
	}
	ck_abort_msg("no %s in server", key);
	return x;
}

/* ================= capabilities ================= */

static const char *const V2[] = { "sents", "rcpts", "batch", NULL };

START_TEST(caps_declared_by_ctl)
{
	register_device("alice", "phone");
	connect_new("alice/phone");
	/* Unknown names are ignored; the reply lists what is in effect. */
	static const char *const some[] = { "rcpts", "teleport", "sents", "rcpts", NULL };
	const pubrec *p = ctl_caps("alice/phone", some);
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fnkeys(p), 5); /* k, rid, ok, caps, server */
	ck_assert_str_eq(ftext_list(p, "caps"), "sents,rcpts");
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_SENTS | CAP_RCPTS);
	cbr_item x = server_field(p, "v");
	ck_assert(x.type == CBR_UINT && x.u == 2);
	x = server_field(p, "puback_delivered");
	ck_assert(x.type == CBR_BOOL && !x.b); /* no broker events here */
	x = server_field(p, "gather_ms");
	ck_assert(x.type == CBR_UINT && x.u == CFG.delivered_gather_ms);
	x = server_field(p, "replay_batch");
	ck_assert(x.type == CBR_UINT && x.u >= 1);
	/* Replaced, not added to; an empty list is v1 again. */
	static const char *const batch[] = { "batch", NULL };
	ck_assert_str_eq(ftext_list(ctl_caps("alice/phone", batch), "caps"), "batch");
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_BATCH);
	static const char *const none[] = { NULL };
	ck_assert_str_eq(ftext_list(ctl_caps("alice/phone", none), "caps"), "");
	ck_assert_uint_eq(caps_of("alice/phone"), 0);
}
END_TEST

START_TEST(caps_puback_delivered_on_patched_broker)
{
	register_device("alice", "phone");
	connect_new("alice/phone");
	ck_assert(core_broker_events(C, ALL_EVENTS));
	cbr_item x = server_field(ctl_caps("alice/phone", V2), "puback_delivered");
	ck_assert(x.type == CBR_BOOL && x.b);
}
END_TEST

/* ctl caps with the raw CBOR value `val` for caps (NULL: none); the code
 * of its refusal. */
static const char *caps_refusal(const uint8_t *val, size_t len)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, val ? 3 : 2);
	cbw_text(&w, "op"); cbw_text(&w, "caps");
	cbw_text(&w, "rid"); cbw_uint(&w, 9);
	if (val) {
		cbw_text(&w, "caps");
		cbw_raw(&w, val, len);
	}
	size_t m = mark();
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/ctl", &w), CORE_DENY);
	cbw_free(&w);
	const pubrec *p = event_to(m, "alice/phone", "ctl");
	ck_assert(!fbool(p, "ok"));
	ck_assert_uint_eq(fuint(p, "rid"), 9);
	ck_assert_uint_gt(strlen(ftext(p, "msg")), 0);
	static char code[32];
	snprintf(code, sizeof code, "%s", ftext(p, "code"));
	return code;
}

START_TEST(caps_malformed_refused)
{
	register_device("alice", "phone");
	connect_new("alice/phone");
	declare("alice/phone", V2);
	static const uint8_t text[] = { 0x65, 's', 'e', 'n', 't', 's' };      /* "sents" */
	static const uint8_t map[] = { 0xa0 };                                /* {} */
	static const uint8_t nums[] = { 0x82, 0x01, 0x02 };                   /* [1, 2] */
	static const uint8_t nested[] = { 0x81, 0x81, 0x61, 'x' };            /* [["x"]] */
	static const uint8_t indef[] = { 0x9f, 0x65, 'r', 'c', 'p', 't', 's', 0xff }; /* [_ "rcpts"] */
	ck_assert_str_eq(caps_refusal(NULL, 0), "field");
	ck_assert_str_eq(caps_refusal(text, sizeof text), "field");
	ck_assert_str_eq(caps_refusal(map, sizeof map), "field");
	ck_assert_str_eq(caps_refusal(nums, sizeof nums), "field");
	ck_assert_str_eq(caps_refusal(nested, sizeof nested), "field");
	/* 65 names is over the limit */
	uint8_t many[1 + 2 + 65 * 2];
	size_t n = 0;
	many[n++] = 0x98;
	many[n++] = 65;
	for (int i = 0; i < 65; i++) {
		many[n++] = 0x61;
		many[n++] = 'a';
	}
	ck_assert_str_eq(caps_refusal(many, n), "field");
	/* A refusal changes nothing. */
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_SENTS | CAP_RCPTS | CAP_BATCH);
	/* An indefinite-length array is still an array. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "op"); cbw_text(&w, "caps");
	cbw_text(&w, "rid"); cbw_uint(&w, 1);
	cbw_text(&w, "caps"); cbw_raw(&w, indef, sizeof indef);
	size_t m = mark();
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/ctl", &w), CORE_ALLOW);
	cbw_free(&w);
	ck_assert_str_eq(ftext_list(event_to(m, "alice/phone", "ctl"), "caps"), "rcpts");
}
END_TEST

START_TEST(caps_survive_reconnect_and_restart)
{
	register_device("alice", "phone");
	register_device("alice", "tablet");
	register_device("bob", "phone");
	connect_new("alice/phone");
	connect_new("bob/phone");
	static const char *const sents[] = { "sents", NULL };
	declare("alice/phone", V2);
	declare("bob/phone", sents);
	disconnect_dev("alice/phone");
	connect_new("alice/phone");
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_SENTS | CAP_RCPTS | CAP_BATCH);
	reopen_core();
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_SENTS | CAP_RCPTS | CAP_BATCH);
	ck_assert_uint_eq(caps_of("bob/phone"), CAP_SENTS);
	ck_assert_uint_eq(caps_of("alice/tablet"), 0);
}
END_TEST

START_TEST(caps_dropped_with_the_device)
{
	register_device("alice", "phone");
	register_device("bob", "phone");
	connect_new("alice/phone");
	declare("alice/phone", V2);
	const pubrec *r = admin("device.remove", "user", "alice", "device", "phone");
	ck_assert(fbool(r, "ok"));
	/* What a build that knew no capabilities leaves when it removes a
	 * device: its record. */
	ck_assert_int_eq(store_caps_set(C->st, "alice", "phone", CAP_SENTS), CHAT_OK);
	/* Added again: a new device, without the old one's capabilities, now
	 * and after a restart. */
	NDEV = 0;
	register_device("alice", "phone");
	ck_assert_uint_eq(caps_of("alice/phone"), 0);
	reopen_core();
	ck_assert_uint_eq(caps_of("alice/phone"), 0);
	ck_assert_uint_eq(caps_of("bob/phone"), 0);
}
END_TEST

START_TEST(caps_declared_by_sync)
{
	register_device("alice", "phone");
	register_device("bob", "phone");
	connect_new("alice/phone");
	/* {caps} on chat/sync: set before the replay, which still ends with done */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "caps");
	static const char *const rcpts[] = { "rcpts", NULL };
	names(&w, rcpts);
	size_t m = mark();
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/sync", &w), CORE_ALLOW);
	ck_assert_str_eq(trace(m, "alice/phone"), "done");
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_RCPTS);
	/* {} and an empty payload leave them. */
	m = mark();
	ck_assert_int_eq(dev_sync("alice/phone"), CORE_ALLOW);
	ck_assert_int_eq(dev_pub("alice/phone", "chat/sync", "", 0), CORE_ALLOW);
	ck_assert_str_eq(trace(m, "alice/phone"), "done done");
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_RCPTS);
	/* A malformed caps: an error, the replay runs, the caps stay. */
	cbw_reset(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "caps"); cbw_text(&w, "sents");
	m = mark();
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/sync", &w), CORE_ALLOW);
	ck_assert_str_eq(trace(m, "alice/phone"), "error:field done");
	ck_assert_uint_eq(caps_of("alice/phone"), CAP_RCPTS);
	/* An empty list: v1. */
	cbw_reset(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "caps"); cbw_array(&w, 0);
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/sync", &w), CORE_ALLOW);
	ck_assert_uint_eq(caps_of("alice/phone"), 0);
	cbw_free(&w);
}
END_TEST

/* The value of a counter in the stats reply. */
static uint64_t stat(const char *name)
{
	stat_value v[CORE_STATS_MAX];
	size_t n = stats_collect(C, v);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return v[i].v;
	ck_abort_msg("no counter %s", name);
	return 0;
}

START_TEST(caps_counted)
{
	register_device("alice", "phone");
	register_device("bob", "phone");
	connect_new("alice/phone");
	connect_new("bob/phone");
	static const char *const sents[] = { "sents", NULL };
	declare("alice/phone", V2);
	declare("bob/phone", sents);
	ck_assert_uint_eq(stat("devices_caps_sents"), 2);
	ck_assert_uint_eq(stat("devices_caps_rcpts"), 1);
	ck_assert_uint_eq(stat("devices_caps_batch"), 1);
	declare("alice/phone", sents);
	ck_assert_uint_eq(stat("devices_caps_rcpts"), 0);
	ck_assert(fbool(admin("device.remove", "user", "bob", "device", "phone"), "ok"));
	ck_assert_uint_eq(stat("devices_caps_sents"), 1);
	reopen_core();
	ck_assert_uint_eq(stat("devices_caps_sents"), 1);
	ck_assert_uint_eq(stat("devices_caps_batch"), 0);
}
END_TEST


/* ================= sents and rcpts ================= */

/* {cid, body} on chat/dm/<peer> or chat/group/<gid> (to: "dm/bob", "group/g"). */
static enum core_verdict send_to(const char *from, const char *to, uint64_t cid)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, "hi", 2);
	char topic[128];
	snprintf(topic, sizeof(topic), "chat/%s", to);
	enum core_verdict v = dev_pubw(from, topic, &w);
	cbw_free(&w);
	return v;
}

/* Accepted sends from `from` to `to` with cids first .. first + n - 1;
 * what `watch` got from them. */
static const char *sends_trace(const char *from, const char *to, uint64_t first, size_t n,
                               const char *watch)
{
	size_t m = mark();
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(send_to(from, to, first + i), CORE_ALLOW);
	return trace(m, watch);
}

/* The end of the gather window: what addr got from the tick. */
static const char *gather_trace(const char *addr)
{
	size_t m = mark();
	F.now += CFG.delivered_gather_ms;
	core_tick(C);
	return trace(m, addr);
}

static enum core_verdict receipt_of(const char *addr, const char *s, const char *conv,
                                    uint64_t a, uint64_t b)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "s"); cbw_text(&w, s);
	cbw_text(&w, "conv"); cbw_text(&w, conv);
	cbw_text(&w, "seqs");
	cbw_array(&w, b - a + 1);
	for (uint64_t q = a; q <= b; q++)
		cbw_uint(&w, q);
	enum core_verdict v = dev_pubw(addr, "chat/receipt", &w);
	cbw_free(&w);
	return v;
}

/* A receipt for seqs a..b of conv; what `watch` got from it at once. */
static const char *receipt_trace(const char *addr, const char *s, const char *conv, uint64_t a,
                                 uint64_t b, const char *watch)
{
	size_t m = mark();
	ck_assert_int_eq(receipt_of(addr, s, conv, a, b), CORE_ALLOW);
	return trace(m, watch);
}

/* The device PUBACKs its inbox event p (patched broker). */
/* alice/phone (v2: sents, rcpts) and alice/tablet (v1), bob/phone (v1),
 * carol/phone (v1): all online. */
static void cast(void)
{
	register_device("alice", "phone");
	register_device("alice", "tablet");
	register_device("bob", "phone");
	register_device("carol", "phone");
	connect_new("alice/phone");
	connect_new("alice/tablet");
	connect_new("bob/phone");
	connect_new("carol/phone");
	declare("alice/phone", V2);
}

START_TEST(sents_gathered_per_window)
{
	cast();
	/* Nothing for the v2 device until the window ends; the peer and the
	 * sender's v1 device get their messages at once. */
	size_t m = mark();
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 1, 3, "alice/phone"), "");
	ck_assert_str_eq(trace(m, "bob/phone"), "m1 m2 m3");
	ck_assert_str_eq(trace(m, "alice/tablet"), "m1 m2 m3");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[1(1),2(2),3(3)]");
	ck_assert_str_eq(gather_trace("alice/phone"), "");
	/* A v1 device: a sent per send, at once. */
	ck_assert_str_eq(sends_trace("alice/tablet", "dm/bob", 1, 2, "alice/tablet"), "sent4 sent5");
	/* GATHER_SENTS_MAX: a full event goes out without waiting. */
	const char *t = sends_trace("alice/phone", "dm/carol", 100, GATHER_SENTS_MAX + 1, "alice/phone");
	ck_assert_uint_eq(strncmp(t, "sents[1(100),2(101),", 20), 0);
	ck_assert_ptr_null(strchr(t, ' '));
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[65(164)]");
	/* Counted. */
	ck_assert_uint_eq(stat("sents_out"), 3);
	ck_assert_uint_eq(stat("sents_items"), 3 + GATHER_SENTS_MAX + 1);
}
END_TEST

START_TEST(sents_retry_gathered)
{
	cast();
	sends_trace("alice/phone", "dm/bob", 7, 1, "alice/phone");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[1(7)]");
	/* The retry is not stored again; its confirmation is gathered too. */
	size_t m = mark();
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 7, 1, "alice/phone"), "");
	ck_assert_str_eq(trace(m, "bob/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[1(7)]");
}
END_TEST

START_TEST(sents_before_any_later_event)
{
	size_t m0;
	cast();
	/* A message to the device, an error, a ctl reply, a receipt, a replay:
	 * each comes after the confirmations gathered before it. */
	sends_trace("alice/phone", "dm/bob", 1, 2, "alice/phone");
	ck_assert_str_eq(sends_trace("bob/phone", "dm/alice", 50, 1, "alice/phone"),
	                 "sents[1(1),2(2)] m3");
	sends_trace("alice/phone", "dm/bob", 3, 1, "alice/phone");
	m0 = mark();
	ck_assert_int_eq(send_to("alice/phone", "dm/nobody", 4), CORE_DENY);
	ck_assert_str_eq(trace(m0, "alice/phone"), "sents[4(3)] error:peer");
	sends_trace("alice/phone", "dm/bob", 5, 1, "alice/phone");
	size_t m = mark();
	declare("alice/phone", V2); /* the same set: a reply, nothing else changes */
	ck_assert_str_eq(trace(m, "alice/phone"), "sents[5(5)] ctl:ok");
	sends_trace("alice/phone", "dm/bob", 6, 1, "alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "read", CONV, 1, 1, "alice/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[6(6)] rcpts:read[1(bob)]");
	sends_trace("alice/phone", "dm/bob", 7, 1, "alice/phone");
	m = mark();
	dev_sync("alice/phone");
	ck_assert_str_eq(trace(m, "alice/phone"), "sents[7(7)] m3 done");
	/* A message from its own other device: after the confirmations too
	 * (a new queue entry; it is a recipient). */
	declare("alice/tablet", V2);
	sends_trace("alice/tablet", "dm/bob", 1, 1, "alice/tablet");
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 8, 1, "alice/tablet"),
	                 "sents[8(1)] m9");
	/* The end of the connection: what was gathered for it goes to it. */
	sends_trace("alice/phone", "dm/bob", 9, 1, "alice/phone");
	m = mark();
	disconnect_dev("alice/phone");
	ck_assert_str_eq(trace(m, "alice/phone"), "sents[9(8),10(9)]");
	ck_assert_str_eq(gather_trace("alice/phone"), "");
	/* Connected again: still v2. */
	connect_new("alice/phone");
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 20, 1, "alice/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[11(20)]");
}
END_TEST

START_TEST(sents_not_gathered_behind_a_backlog)
{
	/* A replay the window holds up: the confirmation is the v1 event,
	 * queued behind what the replay has yet to bring. */
	CFG.inflight_window = 4;
	reopen_core();
	cast();
	disconnect_dev("alice/phone");
	sends_trace("bob/phone", "dm/alice", 1, 6, "bob/phone");
	connect_new("alice/phone");
	size_t m = mark();
	dev_sync("alice/phone");
	/* (alice/phone declared batch too: the replay comes in batches) */
	ck_assert_str_eq(trace(m, "alice/phone"), "[m1 m2 m3 m4]");
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 1, 1, "alice/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "");
	ck_assert_str_eq(receipt_trace("alice/phone", "delivered", CONV, 1, 4, "alice/phone"),
	                 "[m5 m6 sent7] done");
	/* Live again: gathered. */
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 2, 1, "alice/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[8(2)]");
}
END_TEST

START_TEST(sents_delivery_merged)
{
	cast();
	ck_assert(core_broker_events(C, ALL_EVENTS));
	/* The peer's PUBACK is its delivered receipt: it joins the gathered
	 * confirmation; the sender's other device gets the receipt as before. */
	size_t m = mark();
	sends_trace("alice/phone", "dm/bob", 1, 1, "alice/phone");
	dev_ack("bob/phone", pub_to(m, "bob/phone"));
	m = mark();
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[1(1)/dl=bob]");
	ck_assert_str_eq(trace(m, "alice/tablet"), "delivered(bob):1");
	/* An app receipt merges the same way. */
	sends_trace("alice/phone", "dm/bob", 2, 1, "alice/phone");
	m = mark();
	ck_assert_str_eq(receipt_trace("bob/phone", "delivered", CONV, 2, 2, "alice/phone"), "");
	ck_assert_str_eq(trace(m, "alice/tablet"), "delivered(bob):2");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[2(2)/dl=bob]");
	/* Only what is still gathered merges; the rest is a receipt, after. */
	sends_trace("alice/phone", "dm/bob", 3, 2, "alice/phone");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[3(3),4(4)]");
	sends_trace("alice/phone", "dm/bob", 5, 1, "alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "delivered", CONV, 3, 5, "alice/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[5(5)/dl=bob] rcpts:delivered[3+4(bob)]");
	/* A read never merges. */
	sends_trace("alice/phone", "dm/bob", 6, 1, "alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "read", CONV, 6, 6, "alice/phone"), "");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[6(6)] rcpts:read[6(bob)]");
	/* Without rcpts, what did not merge is a v1 receipt, after the
	 * confirmations (with what merged). */
	static const char *const sents[] = { "sents", NULL };
	declare("alice/phone", sents);
	sends_trace("alice/phone", "dm/bob", 7, 2, "alice/phone");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[7(7),8(8)]");
	sends_trace("alice/phone", "dm/bob", 9, 1, "alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "delivered", CONV, 7, 9, "alice/phone"),
	                 "sents[9(9)/dl=bob] delivered(bob):7+8");
	sends_trace("alice/phone", "dm/bob", 10, 1, "alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "read", CONV, 10, 10, "alice/phone"),
	                 "sents[10(10)] read(bob):10");
	ck_assert_uint_eq(stat("sents_delivered"), 4);
}
END_TEST

/* Users u00 .. u<n-1>, one online device each ("d"), and group g of
 * alice and them, created by alice/phone (the group event is seq 1). */
static void group_of(size_t n)
{
	char u[24], addr[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(u, sizeof u, "u%02zu", i);
		register_device(u, "d");
		snprintf(addr, sizeof addr, "%s/d", u);
		connect_new(addr);
	}
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 4);
	cbw_text(&w, "op"); cbw_text(&w, "group.create");
	cbw_text(&w, "rid"); cbw_uint(&w, 1);
	cbw_text(&w, "gid"); cbw_text(&w, "g");
	cbw_text(&w, "members");
	cbw_array(&w, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(u, sizeof u, "u%02zu", i);
		cbw_text(&w, u);
	}
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/ctl", &w), CORE_ALLOW);
	cbw_free(&w);
	gather_trace("alice/phone");
}

/* Members a .. b send receipt s for seqs x .. y of g; what `watch` got at once. */
static const char *members_receipt(size_t a, size_t b, const char *s, uint64_t x, uint64_t y,
                                   const char *watch)
{
	size_t m = mark();
	char addr[32];
	for (size_t i = a; i <= b; i++) {
		snprintf(addr, sizeof addr, "u%02zu/d", i);
		ck_assert_int_eq(receipt_of(addr, s, "g:g", x, y), CORE_ALLOW);
	}
	return trace(m, watch);
}

/* "u<a>,…,u<b>" */
static const char *users(size_t a, size_t b)
{
	static char ring[4][512];
	static int next;
	char *out = ring[next++ % 4];
	out[0] = '\0';
	for (size_t i = a; i <= b; i++) {
		size_t l = strlen(out);
		snprintf(out + l, 512 - l, "%su%02zu", i > a ? "," : "", i);
	}
	return out;
}

START_TEST(rcpts_group_one_event_per_window)
{
	cast();
	group_of(30);
	/* The confirmation went out; the members' deliveries and reads come
	 * as one rcpts event per window; the v1 device gets one per member. */
	sends_trace("alice/phone", "group/g", 1, 1, "alice/phone");
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[2(1)]");
	size_t m = mark();
	ck_assert_str_eq(members_receipt(0, 29, "delivered", 2, 2, "alice/phone"), "");
	char want[1024];
	snprintf(want, sizeof want, "rcpts:delivered[2(%s)]", users(0, 29));
	ck_assert_str_eq(gather_trace("alice/phone"), want);
	const char *v1 = trace(m, "alice/tablet");
	ck_assert_str_eq(v1 + strlen(v1) - strlen("delivered(u29):2"), "delivered(u29):2");
	ck_assert_uint_eq(count_to(m, "alice/tablet"), 30);
	ck_assert_str_eq(members_receipt(0, 14, "read", 2, 2, "alice/phone"), "");
	snprintf(want, sizeof want, "rcpts:read[2(%s)]", users(0, 14));
	ck_assert_str_eq(gather_trace("alice/phone"), want);
	/* Delivered to all before the confirmation went out: in its dl. */
	sends_trace("alice/phone", "group/g", 2, 1, "alice/phone");
	ck_assert_str_eq(members_receipt(0, 29, "delivered", 3, 3, "alice/phone"), "");
	snprintf(want, sizeof want, "sents[3(2)/dl=%s]", users(0, 29));
	ck_assert_str_eq(gather_trace("alice/phone"), want);
	ck_assert_uint_eq(stat("rcpts_out"), 2);
	ck_assert_uint_eq(stat("rcpts_items"), 45);
}
END_TEST

START_TEST(rcpts_sets_and_states)
{
	cast();
	group_of(3);
	sends_trace("alice/phone", "group/g", 1, 2, "alice/phone");
	gather_trace("alice/phone");
	/* Users with the same seqs share a set; a state after another in
	 * the window comes after it. */
	members_receipt(0, 1, "delivered", 2, 3, "alice/phone");
	members_receipt(2, 2, "delivered", 2, 2, "alice/phone");
	members_receipt(0, 0, "read", 2, 2, "alice/phone");
	ck_assert_str_eq(gather_trace("alice/phone"),
	                 "rcpts:delivered[2(u02);2+3(u00,u01)] rcpts:read[2(u00)]");
	/* Per conversation: the dm's and the group's apart. */
	sends_trace("alice/phone", "dm/bob", 10, 1, "alice/phone");
	gather_trace("alice/phone");
	members_receipt(2, 2, "delivered", 3, 3, "alice/phone");
	receipt_trace("bob/phone", "delivered", CONV, 1, 1, "alice/phone");
	ck_assert_str_eq(gather_trace("alice/phone"),
	                 "rcpts:delivered[3(u02)] rcpts:delivered[1(bob)]");
}
END_TEST

START_TEST(rcpts_before_any_later_event)
{
	cast();
	sends_trace("alice/phone", "dm/bob", 1, 1, "alice/phone");
	gather_trace("alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "read", CONV, 1, 1, "alice/phone"), "");
	ck_assert_str_eq(sends_trace("bob/phone", "dm/alice", 1, 1, "alice/phone"),
	                 "rcpts:read[1(bob)] m2");
	/* Offline, the receipt waits in the v1 form, in order. */
	disconnect_dev("alice/phone");
	receipt_trace("bob/phone", "delivered", CONV, 1, 1, "alice/phone");
	ck_assert_str_eq(receipt_trace("bob/phone", "read", CONV, 1, 1, "alice/phone"), "");
	sends_trace("alice/tablet", "dm/bob", 5, 1, "alice/tablet");
	receipt_trace("bob/phone", "read", CONV, 3, 3, "alice/phone");
	connect_new("alice/phone");
	size_t m = mark();
	dev_sync("alice/phone");
	/* (alice/phone declared batch too: the replay is one batch) */
	ck_assert_str_eq(trace(m, "alice/phone"), "[m2 m3 read(bob):3] done");
}
END_TEST

START_TEST(rcpts_expired)
{
	cast();
	register_device("dave", "phone"); /* never online */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "cid"); cbw_uint(&w, 1);
	cbw_text(&w, "body"); cbw_bytes(&w, "x", 1);
	cbw_text(&w, "ttl"); cbw_uint(&w, 1);
	ck_assert_int_eq(dev_pubw("alice/phone", "chat/dm/dave", &w), CORE_ALLOW);
	cbw_free(&w);
	ck_assert_str_eq(gather_trace("alice/phone"), "sents[1(1)]");
	size_t m = mark();
	F.now += 2000;
	core_tick(C); /* the sweep: its receipt is gathered */
	ck_assert_str_eq(trace(m, "alice/phone"), "");
	ck_assert_str_eq(trace(m, "alice/tablet"), "expired(dave):1");
	ck_assert_str_eq(gather_trace("alice/phone"), "rcpts:expired[1(dave)]");
}
END_TEST

START_TEST(v2_forms_only_for_devices_that_asked)
{
	cast();
	/* bob/phone is v1: a sent per send, a receipt per reader, whatever
	 * alice/phone declared. */
	sends_trace("alice/phone", "dm/bob", 1, 1, "alice/phone");
	ck_assert_str_eq(sends_trace("bob/phone", "dm/alice", 1, 2, "bob/phone"), "sent2 sent3");
	ck_assert_str_eq(receipt_trace("alice/phone", "delivered", CONV, 2, 3, "bob/phone"),
	                 "sents[1(1)] delivered(alice):2+3"
	                 + strlen("sents[1(1)] "));
	/* Declared away: v1 again, at once. */
	static const char *const none[] = { NULL };
	declare("alice/phone", none);
	ck_assert_str_eq(sends_trace("alice/phone", "dm/bob", 9, 1, "alice/phone"), "sent4");
	ck_assert_str_eq(receipt_trace("bob/phone", "delivered", CONV, 4, 4, "alice/phone"),
	                 "delivered(bob):4");
}
END_TEST

START_TEST(sents_each_device_its_own_window)
{
	cast();
	declare("bob/phone", V2);
	ck_assert(core_broker_events(C, ALL_EVENTS));
	uint64_t g = CFG.delivered_gather_ms;
	ck_assert_uint_ge(g, 4);
	/* alice/phone's window starts at its send, bob/phone's later. */
	size_t m = mark();
	sends_trace("alice/phone", "dm/bob", 1, 1, "alice/phone");
	const pubrec *msg = pub_to(m, "bob/phone");
	F.now += g / 2;
	sends_trace("bob/phone", "dm/carol", 1, 1, "bob/phone");
	/* bob/phone's PUBACK of alice's message, younger than the window: it
	 * still delivers before alice/phone's confirmation leaves. */
	dev_ack("bob/phone", msg);
	F.now += g - g / 2;
	m = mark();
	core_tick(C);
	ck_assert_str_eq(trace(m, "alice/phone"), "sents[1(1)/dl=bob]");
	ck_assert_str_eq(trace(m, "bob/phone"), "");
	F.now += g / 2;
	m = mark();
	core_tick(C);
	ck_assert_str_eq(trace(m, "bob/phone"), "sents[1(1)]");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("caps");
	struct {
		const char *name;
		const TTest *tests[16];
	} cases[] = {
		{ "caps", { caps_declared_by_ctl, caps_puback_delivered_on_patched_broker,
		            caps_malformed_refused, caps_survive_reconnect_and_restart,
		            caps_dropped_with_the_device, caps_declared_by_sync, caps_counted } },
		{ "sents", { sents_gathered_per_window, sents_retry_gathered, sents_before_any_later_event,
		             sents_delivery_merged, sents_not_gathered_behind_a_backlog,
		             sents_each_device_its_own_window } },
		{ "rcpts", { rcpts_group_one_event_per_window, rcpts_sets_and_states,
		             rcpts_before_any_later_event, rcpts_expired,
		             v2_forms_only_for_devices_that_asked } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *t = env_tcase(cases[i].name, setup, teardown);
		for (size_t j = 0; j < 16 && cases[i].tests[j]; j++)
			tcase_add_test(t, cases[i].tests[j]);
		suite_add_tcase(s, t);
	}
	return s;
}

int main(void) { return run_suite(suite()); }
