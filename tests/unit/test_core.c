// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_core.c — the plugin core driven through core.h with a recording fake
 * of core_io (every publish, a settable clock, log lines, kicks) and a real
 * store in a fresh temp dir per test. Published payloads are decoded with
 * the project's CBOR reader. The fake, the payload decoding and the per-test
 * state are shared with test_offline.c: see support/.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbor_io.h"
#include "core.h"
#include "core_internal.h" /* refusal_set: a pure helper, tested directly */
#include "err.h"
#include "events.h"
#include "fake_io.h"
#include "harness.h"
#include "later_store.h"
#include "ids.h"

/* ================= stats replies ================= */

/* A counter from a stats reply. */
static uint64_t counter(const pubrec *p, const char *name)
{
	const uint8_t *raw;
	size_t rawlen;
	cbr_item v;
	ck_assert(fget(p, "counters", &v, &raw, &rawlen));
	ck_assert_int_eq(v.type, CBR_MAP);
	cbr r;
	cbr_item m, k, x;
	uint64_t i = 0;
	cbr_init(&r, raw, rawlen);
	cbr_next(&r, &m);
	while (cbr_map_next(&r, &m, &i, &k)) {
		ck_assert_int_eq(cbr_next(&r, &x), CHAT_OK);
		ck_assert_int_eq(x.type, CBR_UINT);
		if (cbr_eq(&k, name))
			return x.u;
	}
	ck_abort_msg("no counter %s", name);
	return 0;
}

/* The refused_<code> counters of a stats reply, in its order: their names
 * into names (up to max), their values into v; returns how many. */
static size_t refused_counters(const pubrec *p, const char **names, uint64_t *v, size_t max)
{
	static char keep[32][32];
	const uint8_t *raw;
	size_t rawlen, n = 0;
	cbr_item m, k, x;
	ck_assert(fget(p, "counters", &m, &raw, &rawlen));
	cbr r;
	uint64_t i = 0;
	cbr_init(&r, raw, rawlen);
	cbr_next(&r, &m);
	while (cbr_map_next(&r, &m, &i, &k)) {
		ck_assert_int_eq(cbr_next(&r, &x), CHAT_OK);
		if (k.len < 8 || memcmp(k.ptr, "refused_", 8) != 0)
			continue;
		ck_assert_uint_lt(n, max);
		ck_assert_uint_lt(k.len, sizeof(keep[n]));
		memcpy(keep[n], k.ptr, k.len);
		keep[n][k.len] = '\0';
		names[n] = keep[n];
		v[n++] = x.u;
	}
	return n;
}

/* ================= per-test state ================= */

/* Presence documents to all subscribers are recorded as publishes to
 * ALL_SUBSCRIBERS. */
static void setup(void) { env_setup(FAKE_BROADCASTS_RECORDED); }

static void teardown(void) { env_teardown(); }

/* ================= driving helpers ================= */

static void admin_fails(const pubrec *p, const char *code)
{
	ck_assert_msg(!fbool(p, "ok"), "expected failure %s", code);
	ck_assert_str_eq(ftext(p, "code"), code);
	ck_assert_uint_gt(strlen(ftext(p, "msg")), 0);
	ck_assert_uint_eq(fnkeys(p), 5); /* cmd, rid, ok, code, msg */
}

/* alice/phone, alice/tablet, bob/laptop online; bob/phone offline. */
static void standard_cast(void)
{
	add_device("alice", "phone");
	add_device("alice", "tablet");
	add_device("bob", "laptop");
	add_device("bob", "phone");
	connect_dev("alice/phone");
	connect_dev("alice/tablet");
	connect_dev("bob/laptop");
}

/* Publishes payload as `from` on topic. */
static enum core_verdict pub_as(const char *from, const char *topic, const cbw *w, int qos,
                                bool retain)
{
	devrec *r = find_dev(from);
	return core_message(C, r->conn, from, from, topic, w->buf, w->len, qos, retain, 4);
}

static enum core_verdict dm(const char *from, const char *peer, const cbw *w)
{
	char topic[256];
	snprintf(topic, sizeof(topic), "chat/dm/%s", peer);
	return pub_as(from, topic, w, 1, false);
}

/* {cid: h'<cid>', body: h'<body>'} */
static void send_bytes_cid(cbw *w, const char *cid, const char *body)
{
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "cid");
	cbw_bytes(w, cid, strlen(cid));
	cbw_text(w, "body");
	cbw_bytes(w, body, strlen(body));
}

/* {cid: <uint>, body: h'<body>'} */
static void send_uint_cid(cbw *w, uint64_t cid, const char *body)
{
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "cid");
	cbw_uint(w, cid);
	cbw_text(w, "body");
	cbw_bytes(w, body, strlen(body));
}

/* An accepted dm of {cid, body} from `from` to peer (w: scratch); the seq
 * of the `sent` event the sender got. */
static uint64_t sent_seq(cbw *w, const char *from, const char *peer, uint64_t cid,
                         const char *body)
{
	send_uint_cid(w, cid, body);
	size_t m = mark();
	ck_assert_int_eq(dm(from, peer, w), CORE_ALLOW);
	return fuint(event_to(m, from, "sent"), "seq");
}

static const pubrec *stats(void)
{
	const pubrec *p = admin("stats", NULL, NULL, NULL, NULL);
	ck_assert(fbool(p, "ok"));
	return p;
}

/* ================= core_open / admin credential ================= */

START_TEST(admin_token_created)
{
	char path[4300];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/admin.token", datadir);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_int_eq(sb.st_size, 44); /* 43 chars and a newline */
	ck_assert_msg(valid_token(ADMIN_TOKEN), "admin token '%s'", ADMIN_TOKEN);
	ck_assert(logged(0, "admin credential", NULL));
	/* The data dir itself is private. */
	ck_assert_int_eq(stat(datadir, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0077, 0);

	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", ADMIN_TOKEN, 43), CORE_ALLOW);
	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", ADMIN_TOKEN, 42), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", "x", 1), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", NULL, 0), CORE_DENY);

	/* A restart keeps the credential. */
	char before[64];
	strcpy(before, ADMIN_TOKEN);
	close_core();
	open_core();
	read_admin_token();
	ck_assert_str_eq(ADMIN_TOKEN, before);
	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", ADMIN_TOKEN, 43), CORE_ALLOW);

	/* Deleting the file rotates it: the old token stops working. */
	ck_assert_int_eq(unlink(path), 0);
	close_core();
	open_core();
	read_admin_token();
	ck_assert(valid_token(ADMIN_TOKEN));
	ck_assert_str_ne(ADMIN_TOKEN, before);
	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", before, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "ctl", "$admin", ADMIN_TOKEN, 43), CORE_ALLOW);
}
END_TEST

START_TEST(open_refuses_bad_config)
{
	char err[512];
	core_config cfg = CFG;
	static const char *bad[] = { "", "chat/", "/chat", "$chat", "a//b", "a/#", "a/+/b", "#" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.topic_prefix = bad[i];
		err[0] = '\0';
		ck_assert_msg(core_open(&cfg, &IO, err, sizeof(err)) == NULL, "prefix '%s' accepted",
		              bad[i]);
		ck_assert_uint_gt(strlen(err), 0);
	}
	cfg = CFG;
	cfg.data_dir = NULL;
	ck_assert_ptr_null(core_open(&cfg, &IO, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "data_dir"));
	/* A data dir that is a file. */
	char file[4300];
	snprintf(file, sizeof(file), "%s/afile", testdir);
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	cfg.data_dir = file;
	ck_assert_ptr_null(core_open(&cfg, &IO, err, sizeof(err)));
	ck_assert_uint_gt(strlen(err), 0);
}
END_TEST

/* ================= admin commands ================= */

/* A stale admin.token.tmp (say, from a crash, or planted) must not decide
 * the mode of the credential file: it is 0600 whatever was there. */
START_TEST(admin_token_mode_despite_stale_tmp)
{
	close_core();
	char path[4300], tmpf[4300];
	snprintf(path, sizeof(path), "%s/admin.token", datadir);
	snprintf(tmpf, sizeof(tmpf), "%s/admin.token.tmp", datadir);
	ck_assert_int_eq(unlink(path), 0); /* forces a new credential */
	FILE *f = fopen(tmpf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("stale\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(tmpf, 0644), 0);
	open_core();
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_msg((sb.st_mode & 0777) == 0600, "admin.token has mode %o", sb.st_mode & 0777);
	read_admin_token();
	ck_assert(valid_token(ADMIN_TOKEN));
}
END_TEST

START_TEST(admin_device_limit)
{
	char d[16];
	for (int i = 0; i < 64; i++) {
		snprintf(d, sizeof(d), "d%02d", i);
		ck_assert(fbool(admin("device.add", "user", "many", "device", d), "ok"));
	}
	admin_fails(admin("device.add", "user", "many", "device", "d64"), "limit");
	ck_assert_uint_eq(counter(stats(), "devices"), 64);
	admin_fails(admin("device.add", "user", "many", "device", "d00"), "exists");
	/* A send from one of them is stored for the other 63 and the peer;
	 * the online ones get it now. */
	add_device("bob", "laptop");
	connect_dev("bob/laptop");
	ck_assert_int_eq(core_acl(C, CONN(0), "many/d00", "many/d00", "chat/dm/bob", CORE_ACC_WRITE, false),
	                 CORE_ALLOW);
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	size_t m = mark();
	ck_assert_int_eq(core_message(C, CONN(10), "many/d00", "many/d00", "chat/dm/bob", w.buf,
	                              w.len, 1, false, 4),
	                 CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 1); /* only bob/laptop is online */
	ck_assert_uint_eq(fuint(event_to(m, "bob/laptop", "msg"), "seq"), 1);
	ck_assert_str_eq(ftext(event_to(m, "bob/laptop", "msg"), "from"), "many/d00");
	cbw_free(&w);
}
END_TEST


START_TEST(admin_device_add)
{
	const pubrec *p = admin("device.add", "user", "alice", "device", "phone");
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fnkeys(p), 4); /* cmd, rid, ok, token */
	const char *tok = ftext(p, "token");
	ck_assert_msg(valid_token(tok), "token '%s'", tok);
	char t1[64];
	strcpy(t1, tok);
	/* The token is never logged. */
	for (size_t i = 0; i < F.nlogs; i++)
		ck_assert_ptr_null(strstr(F.logs[i], t1));
	ck_assert(logged(0, "alice/phone", NULL));

	/* A second device gets a different token. */
	p = admin("device.add", "user", "alice", "device", "tablet");
	ck_assert(fbool(p, "ok"));
	ck_assert_str_ne(ftext(p, "token"), t1);

	/* Duplicates. */
	admin_fails(admin("device.add", "user", "alice", "device", "phone"), "exists");
	/* The duplicate did not replace the token. */
	ck_assert_int_eq(core_auth(C, CONN(1), "alice/phone", "alice/phone", t1, 43), CORE_ALLOW);
}
END_TEST

START_TEST(admin_field_errors)
{
	char u65[66], d33[34];
	memset(u65, 'u', 65);
	u65[65] = '\0';
	memset(d33, 'd', 33);
	d33[33] = '\0';
	admin_fails(admin("device.add", "user", "a b", "device", "phone"), "field");
	admin_fails(admin("device.add", "user", "alice", "device", "a/b"), "field");
	admin_fails(admin("device.add", "user", "alice", "device", "+"), "field");
	admin_fails(admin("device.add", "user", "", "device", "phone"), "field");
	admin_fails(admin("device.add", "user", u65, "device", "phone"), "field");
	admin_fails(admin("device.add", "user", "alice", "device", d33), "field");
	admin_fails(admin("device.add", "user", "alice", NULL, NULL), "field");
	admin_fails(admin("device.add", "device", "phone", NULL, NULL), "field");
	admin_fails(admin("device.remove", "user", "alice", NULL, NULL), "field");
	admin_fails(admin("user.remove", "user", "$admin", NULL, NULL), "field");
	admin_fails(admin("service.add", NULL, NULL, NULL, NULL), "field");
	admin_fails(admin("service.add", "name", "a/b", NULL, NULL), "field");

	/* The longest valid ids are fine. */
	u65[64] = '\0';
	d33[32] = '\0';
	ck_assert(fbool(admin("device.add", "user", u65, "device", d33), "ok"));

	/* An argument of the wrong type. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 4);
	cbw_text(&w, "cmd");
	cbw_text(&w, "device.add");
	cbw_text(&w, "rid");
	cbw_uint(&w, 9);
	cbw_text(&w, "user");
	cbw_uint(&w, 5);
	cbw_text(&w, "device");
	cbw_text(&w, "phone");
	size_t m = mark();
	core_control(C, "chatctl-1", "$admin", w.buf, w.len);
	admin_fails(admin_reply(m, "device.add", 9), "field");
	/* A NUL inside an id. */
	cbw_reset(&w);
	cbw_map(&w, 4);
	cbw_text(&w, "cmd");
	cbw_text(&w, "device.add");
	cbw_text(&w, "rid");
	cbw_uint(&w, 10);
	cbw_text(&w, "user");
	cbw_textn(&w, "al\0ce", 5);
	cbw_text(&w, "device");
	cbw_text(&w, "phone");
	m = mark();
	core_control(C, "chatctl-1", "$admin", w.buf, w.len);
	admin_fails(admin_reply(m, "device.add", 10), "field");
	cbw_free(&w);

	/* Nothing was added by the failures. */
	const pubrec *s = stats();
	ck_assert_uint_eq(counter(s, "devices"), 1);
	ck_assert_uint_eq(counter(s, "users"), 1);
}
END_TEST

START_TEST(admin_unknown_and_bad_requests)
{
	const pubrec *p = admin("frobnicate", NULL, NULL, NULL, NULL);
	admin_fails(p, "unknown");
	admin_fails(admin("device.ad", NULL, NULL, NULL, NULL), "unknown");
	admin_fails(admin("", NULL, NULL, NULL, NULL), "unknown");

	/* Not CBOR / not a map: code cbor, no cmd or rid to echo. */
	static const struct { const uint8_t *b; size_t n; const char *code; } cases[] = {
		{ (const uint8_t *)"\xff", 1, "cbor" },
		{ (const uint8_t *)"\x83\x01\x02\x03", 4, "cbor" },
		{ (const uint8_t *)"\xa1\x63" "cmd", 5, "cbor" },            /* truncated */
		{ (const uint8_t *)"\xa0\x00", 2, "cbor" },                   /* trailing */
		{ (const uint8_t *)"\xa1\x01\x02", 3, "cbor" },               /* int key */
		{ (const uint8_t *)"", 0, "cbor" },
		{ (const uint8_t *)"\xa0", 1, "field" },                      /* no cmd */
		{ (const uint8_t *)"\xa1\x63" "cmd\x05", 6, "field" },       /* cmd not text */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t m = mark();
		core_control(C, "chatctl-1", "$admin", cases[i].b, cases[i].n);
		ck_assert_uint_eq(F.npubs - m, 1);
		p = &F.pubs[m];
		ck_assert_str_eq(p->clientid, "chatctl-1");
		ck_assert_str_eq(p->topic, "$CONTROL/chat/v1/response");
		ck_assert_msg(!fbool(p, "ok"), "case %zu", i);
		ck_assert_str_eq(ftext(p, "code"), cases[i].code);
		ck_assert(!fhas(p, "rid"));
	}
	/* Unknown keys are ignored, whatever their shape. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "x");
	cbw_raw(&w, "\xbf\x61x\x9f\x01\xff\xff", 7);
	cbw_text(&w, "cmd");
	cbw_text(&w, "stats");
	cbw_text(&w, "rid");
	cbw_uint(&w, 77);
	size_t m = mark();
	core_control(C, "chatctl-1", "$admin", w.buf, w.len);
	ck_assert(fbool(admin_reply(m, "stats", 77), "ok"));
	/* No rid: the reply has none either. */
	cbw_reset(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "cmd");
	cbw_text(&w, "stats");
	m = mark();
	core_control(C, "chatctl-1", "$admin", w.buf, w.len);
	ck_assert_uint_eq(F.npubs - m, 1);
	ck_assert(!fhas(&F.pubs[m], "rid"));
	ck_assert(fbool(&F.pubs[m], "ok"));
	cbw_free(&w);
}
END_TEST

START_TEST(admin_only_admin_gets_replies)
{
	add_device("alice", "phone");
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "cmd");
	cbw_text(&w, "device.add");
	cbw_text(&w, "user");
	cbw_text(&w, "mallory");
	cbw_text(&w, "device");
	cbw_text(&w, "x");
	size_t m = mark(), l = F.nlogs;
	core_control(C, "alice/phone", "alice/phone", w.buf, w.len);
	core_control(C, "sensor", "sensor", w.buf, w.len);
	core_control(C, "anon", NULL, w.buf, w.len);
	core_control(C, "x", "$admin2", w.buf, w.len);
	core_control(C, NULL, "$admin", w.buf, w.len);
	ck_assert_uint_eq(F.npubs, m);
	ck_assert(logged(l, "non-admin", NULL));
	cbw_free(&w);
	/* Nothing was done. */
	const pubrec *s = stats();
	ck_assert_uint_eq(counter(s, "devices"), 1);
	ck_assert_uint_eq(counter(s, "admin_commands"), 2); /* device.add + this stats */
}
END_TEST

START_TEST(admin_stats)
{
	const pubrec *s = stats();
	static const char *names[] = {
		"users", "devices", "devices_online", "services", "auth_ok", "auth_refused",
		"messages_in", "messages_stored", "messages_duplicate", "messages_refused",
		"events_out", "errors_out", "subscriptions_refused", "admin_commands",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_uint_eq(counter(s, names[i]), strcmp(names[i], "admin_commands") == 0);

	standard_cast();
	admin("service.add", "name", "ks", NULL, NULL);
	core_auth(C, CONN(20), "bob/phone", "bob/phone", "wrong", 5);
	core_acl(C, CONN(0), "alice/phone", "alice/phone", "chat/#", 4, false);
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "hi");
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW); /* duplicate */
	ck_assert_int_eq(pub_as("alice/phone", "chat/foo", &w, 1, false), CORE_DENY);
	cbw_free(&w);

	s = stats();
	ck_assert_uint_eq(counter(s, "users"), 2);
	ck_assert_uint_eq(counter(s, "devices"), 4);
	ck_assert_uint_eq(counter(s, "devices_online"), 3);
	ck_assert_uint_eq(counter(s, "services"), 1);
	ck_assert_uint_eq(counter(s, "auth_ok"), 3);
	ck_assert_uint_eq(counter(s, "auth_refused"), 1);
	ck_assert_uint_eq(counter(s, "messages_in"), 3);
	ck_assert_uint_eq(counter(s, "messages_stored"), 1);
	ck_assert_uint_eq(counter(s, "messages_duplicate"), 1);
	ck_assert_uint_eq(counter(s, "messages_refused"), 1);
	/* sent + 2 msg (tablet, laptop) + dup sent + error */
	ck_assert_uint_eq(counter(s, "events_out"), 5);
	ck_assert_uint_eq(counter(s, "errors_out"), 1);
	ck_assert_uint_eq(counter(s, "subscriptions_refused"), 1);
	ck_assert_uint_eq(counter(s, "admin_commands"), 7); /* stats, 4 adds, service, stats */
}
END_TEST

START_TEST(admin_device_remove_kicks)
{
	standard_cast();
	size_t m = mark();
	const pubrec *p = admin("device.remove", "user", "alice", "device", "tablet");
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fnkeys(p), 3);
	(void)m;
	/* The kick waits for the tick. */
	ck_assert_uint_eq(F.nkicks, 0);
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 1);
	ck_assert_str_eq(F.kicks[0], "alice/tablet");
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 1);

	/* The old token no longer connects, and the device is gone from sends. */
	devrec *t = find_dev("alice/tablet");
	ck_assert_int_eq(core_auth(C, CONN(21), t->addr, t->addr, t->token, 43), CORE_DENY);
	ck_assert(logged(0, "alice/tablet", "unknown device"));
	/* A publish still in flight from the removed device is refused. */
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	m = mark();
	ck_assert_int_eq(core_message(C, t->conn, t->addr, t->addr, "chat/dm/bob", w.buf, w.len, 1,
	                              false, 4),
	                 CORE_DENY);
	ck_assert_uint_eq(F.npubs, m);
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(count_to(m, "alice/tablet"), 0);
	ck_assert_uint_eq(F.npubs - m, 2); /* sent, msg to bob/laptop */
	cbw_free(&w);

	/* Removing an offline device kicks nobody. */
	ck_assert(fbool(admin("device.remove", "user", "bob", "device", "phone"), "ok"));
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 1);
	/* Unknown now. */
	admin_fails(admin("device.remove", "user", "bob", "device", "phone"), "notfound");
	admin_fails(admin("device.remove", "user", "nobody", "device", "x"), "notfound");
	/* The removal survives a restart. */
	close_core();
	open_core();
	const pubrec *s = stats();
	ck_assert_uint_eq(counter(s, "devices"), 2);
	ck_assert_uint_eq(counter(s, "devices_online"), 0);
	ck_assert_int_eq(core_auth(C, CONN(21), t->addr, t->addr, t->token, 43), CORE_DENY);
	devrec *ph = find_dev("alice/phone");
	ck_assert_int_eq(core_auth(C, CONN(22), ph->addr, ph->addr, ph->token, 43), CORE_ALLOW);
}
END_TEST

/* device.rotate: a new token, the old one refused, the old connection
 * kicked at the tick — unless the device connected again with the new
 * token first (the broker's takeover ends the old one; a kick would end
 * the new). */
START_TEST(admin_device_rotate)
{
	standard_cast();
	devrec *t = find_dev("alice/tablet");
	const pubrec *p = admin("device.rotate", "user", "alice", "device", "tablet");
	ck_assert(fbool(p, "ok"));
	char tok[64];
	snprintf(tok, sizeof(tok), "%s", ftext(p, "token"));
	ck_assert(valid_token(tok));
	ck_assert_str_ne(tok, t->token);
	ck_assert_int_eq(core_auth(C, CONN(21), t->addr, t->addr, t->token, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(21), t->addr, t->addr, tok, 43), CORE_ALLOW);
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 0);
	ck_assert(fbool(admin("device.rotate", "user", "alice", "device", "phone"), "ok"));
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 1);
	ck_assert_str_eq(F.kicks[0], "alice/phone");
	admin_fails(admin("device.rotate", "user", "alice", "device", "nope"), "notfound");
	ck_assert_uint_eq(counter(stats(), "devices"), 4);
}
END_TEST

/* A provisioner service: device.add, device.remove and stats; every other
 * command refused (denied). A plain service gets no answer at all. */
START_TEST(admin_provisioner)
{
	add_device("alice", "phone");
	ck_assert(fbool(admin("service.add", "name", "app", "role", "provisioner"), "ok"));
	admin_fails(admin("service.add", "name", "app2", "role", "root"), "field");
	static const char *const cmds[] = {
		"device.add", "device.remove", "stats", /* allowed */
		"device.list", "device.rotate", "user.list", "user.remove", "service.add",
		"service.list", "service.remove", "service.rotate", "group.create", "group.list",
		"group.show", "group.add", "group.remove", "group.promote", "group.delete", "backup",
	};
	cbw w;
	cbw_init(&w);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cbw_reset(&w);
		cbw_map(&w, 5);
		cbw_text(&w, "cmd");
		cbw_text(&w, cmds[i]);
		cbw_text(&w, "rid");
		cbw_uint(&w, 900 + i);
		cbw_text(&w, "user");
		cbw_text(&w, "bob");
		cbw_text(&w, "device");
		cbw_text(&w, "d");
		cbw_text(&w, "name");
		cbw_text(&w, "app");
		size_t m = mark();
		core_control(C, "chatctl-1", "app", w.buf, w.len);
		const pubrec *p = admin_reply(m, cmds[i], 900 + i);
		if (i < 3)
			ck_assert_msg(fbool(p, "ok"), "%s", cmds[i]);
		else
			admin_fails(p, "denied");
	}
	cbw_free(&w);
	ck_assert(fbool(admin("service.add", "name", "keys", NULL, NULL), "ok"));
	size_t m = mark();
	core_control(C, "chatctl-1", "keys", (const uint8_t *)"\xa0", 1);
	ck_assert_uint_eq(F.npubs, m);
	ck_assert_uint_eq(counter(stats(), "services"), 2);
}
END_TEST

START_TEST(admin_user_remove)
{
	standard_cast();
	const pubrec *p = admin("user.remove", "user", "alice", NULL, NULL);
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fuint(p, "devices"), 2);
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 2);
	bool phone = false, tablet = false;
	for (size_t i = 0; i < F.nkicks; i++) {
		phone |= strcmp(F.kicks[i], "alice/phone") == 0;
		tablet |= strcmp(F.kicks[i], "alice/tablet") == 0;
	}
	ck_assert(phone && tablet);
	for (int i = 0; i < 2; i++) {
		devrec *d = find_dev(i ? "alice/tablet" : "alice/phone");
		ck_assert_int_eq(core_auth(C, CONN(23), d->addr, d->addr, d->token, 43), CORE_DENY);
	}
	const pubrec *s = stats();
	ck_assert_uint_eq(counter(s, "users"), 1);
	ck_assert_uint_eq(counter(s, "devices"), 2);
	ck_assert_uint_eq(counter(s, "devices_online"), 1);
	admin_fails(admin("user.remove", "user", "alice", NULL, NULL), "notfound");

	/* bob can no longer reach alice. */
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	size_t m = mark();
	ck_assert_int_eq(dm("bob/laptop", "alice", &w), CORE_DENY);
	refused(m, "bob/laptop", "peer");
	cbw_free(&w);

	/* The user can be created again, with a fresh token. */
	p = admin("device.add", "user", "alice", "device", "phone");
	ck_assert(fbool(p, "ok"));
	ck_assert_str_ne(ftext(p, "token"), find_dev("alice/phone")->token);
}
END_TEST

START_TEST(admin_service_add)
{
	const pubrec *p = admin("service.add", "name", "keyserver", NULL, NULL);
	ck_assert(fbool(p, "ok"));
	char tok[64];
	snprintf(tok, sizeof(tok), "%s", ftext(p, "token"));
	ck_assert(valid_token(tok));
	ck_assert_int_eq(core_auth(C, CONN(0), "ks-1", "keyserver", tok, 43), CORE_ALLOW);
	ck_assert_int_eq(core_auth(C, CONN(0), "ks-2", "keyserver", tok, 42), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "ks-2", "keyserver", NULL, 0), CORE_DENY);
	admin_fails(admin("service.add", "name", "keyserver", NULL, NULL), "exists");
	/* Services survive a restart. */
	close_core();
	open_core();
	ck_assert_int_eq(core_auth(C, CONN(0), "ks-3", "keyserver", tok, 43), CORE_ALLOW);
	ck_assert_uint_eq(counter(stats(), "services"), 1);
}
END_TEST

/* ================= core_auth ================= */

START_TEST(auth_devices)
{
	devrec *a = add_device("alice", "phone");
	add_device("bob", "laptop");
	size_t l = F.nlogs;
	ck_assert_int_eq(core_auth(C, CONN(0), a->addr, a->addr, a->token, 43), CORE_ALLOW);
	ck_assert_uint_eq(counter(stats(), "devices_online"), 1);

	/* Wrong token: refused, logged with the reason, never the token. */
	char wrong[64];
	strcpy(wrong, a->token);
	wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(core_auth(C, CONN(1), a->addr, a->addr, wrong, 43), CORE_DENY);
	ck_assert(logged(l, "alice/phone", "wrong token"));
	for (size_t i = 0; i < F.nlogs; i++) {
		ck_assert_ptr_null(strstr(F.logs[i], wrong));
		ck_assert_ptr_null(strstr(F.logs[i], a->token));
	}
	/* The right token with a short length, or a longer buffer. */
	ck_assert_int_eq(core_auth(C, CONN(1), a->addr, a->addr, a->token, 42), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(1), a->addr, a->addr, NULL, 0), CORE_DENY);
	ck_assert(logged(l, "alice/phone", "no token"));
	/* bob's token does not open alice. */
	ck_assert_int_eq(core_auth(C, CONN(1), a->addr, a->addr, find_dev("bob/laptop")->token, 43),
	                 CORE_DENY);
	/* Unknown device. */
	ck_assert_int_eq(core_auth(C, CONN(1), "alice/tablet", "alice/tablet", a->token, 43),
	                 CORE_DENY);
	ck_assert(logged(l, "alice/tablet", "unknown device"));
	/* Client id must equal the username. */
	ck_assert_int_eq(core_auth(C, CONN(1), "other", a->addr, a->token, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(1), NULL, a->addr, a->token, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(1), "alice/phone2", a->addr, a->token, 43), CORE_DENY);
	ck_assert(logged(l, "alice/phone", "client id"));
	/* Not a valid address: a username with '/' is always ours. */
	static const char *bad[] = { "alice/", "/phone", "a/b/c", "al ice/phone", "alice/ph#",
	                             "alice/+", "/" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(core_auth(C, CONN(1), bad[i], bad[i], a->token, 43) == CORE_DENY, "%s",
		              bad[i]);
	ck_assert(logged(l, "a/b/c", "valid device address"));

	const pubrec *s = stats();
	ck_assert_uint_eq(counter(s, "auth_ok"), 1);
	ck_assert_uint_eq(counter(s, "auth_refused"), 8 + sizeof(bad) / sizeof(bad[0]));
	ck_assert_uint_eq(counter(s, "devices_online"), 1); /* refusals do not change it */

	/* Tokens survive a restart. */
	close_core();
	open_core();
	ck_assert_int_eq(core_auth(C, CONN(0), a->addr, a->addr, a->token, 43), CORE_ALLOW);
}
END_TEST

START_TEST(auth_defer_and_accounts)
{
	devrec *a = add_device("alice", "phone");
	/* Foreign usernames and no username are left to mosquitto. */
	ck_assert_int_eq(core_auth(C, CONN(0), "sensor-1", "sensor", "pw", 2), CORE_DEFER);
	ck_assert_int_eq(core_auth(C, CONN(0), "sensor-1", "sensor", NULL, 0), CORE_DEFER);
	ck_assert_int_eq(core_auth(C, CONN(0), "anon", NULL, NULL, 0), CORE_DEFER);
	ck_assert_int_eq(core_auth(C, CONN(0), "anon", NULL, "pw", 2), CORE_DEFER);
	ck_assert_int_eq(core_auth(C, CONN(0), "x", "alice", a->token, 43), CORE_DEFER);
	ck_assert_int_eq(core_auth(C, CONN(0), "x", "Admin", ADMIN_TOKEN, 43), CORE_DEFER);
	/* The admin. */
	ck_assert_int_eq(core_auth(C, CONN(0), "anything", "$admin", ADMIN_TOKEN, 43), CORE_ALLOW);
	ck_assert_int_eq(core_auth(C, CONN(0), "anything", "$admin", a->token, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "anything", "$admin", NULL, 0), CORE_DENY);
	/* The admin token does not open a device, nor a device token a service. */
	ck_assert_int_eq(core_auth(C, CONN(0), a->addr, a->addr, ADMIN_TOKEN, 43), CORE_DENY);
	const pubrec *p = admin("service.add", "name", "ks", NULL, NULL);
	char tok[64];
	snprintf(tok, sizeof(tok), "%s", ftext(p, "token"));
	ck_assert_int_eq(core_auth(C, CONN(0), "any-client-id", "ks", tok, 43), CORE_ALLOW);
	ck_assert_int_eq(core_auth(C, CONN(0), "c", "ks", a->token, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "c", "ks", ADMIN_TOKEN, 43), CORE_DENY);
	ck_assert_int_eq(core_auth(C, CONN(0), "c", "$admin", tok, 43), CORE_DENY);
	ck_assert_uint_eq(counter(stats(), "devices_online"), 0);
}
END_TEST

/* ================= core_acl ================= */

enum { R = CORE_ACC_READ, W = CORE_ACC_WRITE, S = CORE_ACC_SUBSCRIBE, U = CORE_ACC_UNSUBSCRIBE };

static enum core_verdict acl(const char *user, const char *topic, int access)
{
	return core_acl(C, CONN(0), user, user, topic, access, false);
}

#define ACL(user, topic, access, expect)                                                        \
	ck_assert_msg(acl(user, topic, access) == (expect), "%s %s access %d: got %d, expected %d", \
	              user ? user : "(null)", topic, access, acl(user, topic, access), expect)

START_TEST(acl_device)
{
	const char *me = "alice/phone";
	/* Its own private topics, named exactly. */
	ACL(me, "chat/inbox/alice/phone", S, CORE_ALLOW);
	ACL(me, "chat/inbox/alice/phone", R, CORE_ALLOW);
	ACL(me, "chat/keys/resp/alice/phone", S, CORE_ALLOW);
	ACL(me, "chat/keys/status/alice/phone", S, CORE_ALLOW);
	ACL(me, "chat/presence/alice", S, CORE_ALLOW);
	ACL(me, "$share/g/chat/inbox/alice/phone", S, CORE_ALLOW);
	/* Nobody else's. */
	ACL(me, "chat/inbox/bob/laptop", S, CORE_DENY);
	ACL(me, "chat/inbox/bob/laptop", R, CORE_DENY);
	ACL(me, "chat/inbox/alice/tablet", S, CORE_DENY);
	ACL(me, "chat/inbox/alice/phone/x", S, CORE_DENY);
	ACL(me, "chat/inbox/alice", S, CORE_DENY);
	ACL(me, "chat/keys/resp/bob/laptop", S, CORE_DENY);
	ACL(me, "chat/keys/status/bob/laptop", S, CORE_DENY);
	ACL(me, "chat/keys/removed/alice/phone", S, CORE_DENY);
	ACL(me, "chat/keys/stats", S, CORE_DENY);
	ACL(me, "chat/keys/stats", W, CORE_DENY);
	ACL(me, "chat/presence/alicex", S, CORE_DENY);
	ACL(me, "$share/g/chat/inbox/bob/laptop", S, CORE_DENY);
	/* Wildcards that could reach any chat topic. */
	static const char *wild[] = {
		"#", "+", "chat/#", "chat/+", "chat/+/+/+", "+/inbox/#", "+/+/+/+",
		"$share/g/chat/inbox/#", "$share/g/#", "chat/inbox/+/+", "chat/inbox/alice/+",
		"chat/inbox/#", "chat/keys/resp/alice/+", "chat/presence/+", "$CONTROL/#",
		"$CONTROL/+/v1", "$share/g/$CONTROL/chat/#",
	};
	for (size_t i = 0; i < sizeof(wild) / sizeof(wild[0]); i++)
		ACL(me, wild[i], S, CORE_DENY);
	/* Outside chat/: foreign_acl decides (defer by default). */
	ACL(me, "sensors/#", S, CORE_DEFER);
	ACL(me, "sensors/temp", W, CORE_DEFER);
	ACL(me, "chatter/x", S, CORE_DEFER);
	ACL(me, "$SYS/#", S, CORE_DEFER);
	ACL(me, "$CONTROL/dynamic-security/v1", W, CORE_DEFER);
	/* Publishing. */
	ACL(me, "chat/dm/bob", W, CORE_ALLOW);
	ACL(me, "chat/dm/x", W, CORE_ALLOW);
	ACL(me, "chat/receipt", W, CORE_ALLOW);
	ACL(me, "chat/sync", W, CORE_ALLOW);
	ACL(me, "chat/ctl", W, CORE_ALLOW);
	ACL(me, "chat/group/team", W, CORE_ALLOW);
	ACL(me, "chat/typing/dm:alice:bob", W, CORE_ALLOW);
	ACL(me, "chat/keys/req/alice/phone", W, CORE_ALLOW);
	ACL(me, "chat/presence/alice/phone", W, CORE_ALLOW);
	ACL(me, "chat/foo", W, CORE_DENY);
	ACL(me, "chat", W, CORE_DENY);
	ACL(me, "chat/keys/req/bob/laptop", W, CORE_DENY);
	ACL(me, "chat/keys/req/alice/tablet", W, CORE_DENY);
	ACL(me, "chat/presence/bob/laptop", W, CORE_DENY);
	ACL(me, "chat/inbox/alice/phone", W, CORE_DENY);
	ACL(me, "chat/inbox/bob/laptop", W, CORE_DENY);
	ACL(me, "chat/keys/resp/alice/phone", W, CORE_DENY);
	ACL(me, "chat/presence/alice", W, CORE_DENY);
	ACL(me, "$CONTROL/chat/v1", W, CORE_DENY);
	ACL(me, "$CONTROL/chat/v1/response", S, CORE_DENY);
	/* Reading a topic it may not subscribe to. */
	ACL(me, "chat/dm/bob", S, CORE_DENY);
	ACL(me, "chat/keys/req/alice/phone", S, CORE_DENY);
	/* A retained will would outlive the connection. */
	ck_assert_int_eq(core_acl(C, CONN(0), me, me, "chat/presence/alice/phone", W, true),
	                 CORE_DENY);
	/* Unsubscribing never leaks. */
	ACL(me, "#", U, CORE_ALLOW);
	ACL(me, "chat/inbox/bob/laptop", U, CORE_ALLOW);
	/* Refused subscriptions are counted. */
	ck_assert_uint_gt(counter(stats(), "subscriptions_refused"), 20);
}
END_TEST

START_TEST(acl_foreign_allow)
{
	close_core();
	CFG.foreign_acl = CORE_FOREIGN_ALLOW;
	open_core();
	ACL("alice/phone", "sensors/#", S, CORE_ALLOW);
	ACL("alice/phone", "sensors/t", W, CORE_ALLOW);
	ACL("sensor", "sensors/#", S, CORE_ALLOW);
	ACL(NULL, "sensors/t", W, CORE_ALLOW);
	/* But never the chat namespace: "#" is granted, its chat topics are
	 * refused at delivery (acl_foreign_wildcards). */
	ACL("sensor", "#", S, CORE_ALLOW);
	ACL("sensor", "chat/inbox/alice/phone", R, CORE_DENY);
	ACL("sensor", "chat/dm/bob", W, CORE_DENY);
	ACL("alice/phone", "chat/#", S, CORE_DENY);
	ACL(NULL, "$CONTROL/chat/v1", W, CORE_DENY);
}
END_TEST

START_TEST(acl_service_admin_foreign)
{
	admin("service.add", "name", "ks", NULL, NULL);
	/* Service. */
	ACL("ks", "chat/keys/req/+/+", S, CORE_ALLOW);
	ACL("ks", "$share/ks/chat/keys/req/+/+", S, CORE_ALLOW);
	ACL("ks", "chat/keys/req/alice/phone", R, CORE_ALLOW);
	ACL("ks", "chat/keys/resp/alice/phone", W, CORE_ALLOW);
	ACL("ks", "chat/keys/status/alice/phone", W, CORE_ALLOW);
	ACL("ks", "chat/keys/stats", W, CORE_ALLOW);
	ACL("ks", "chat/keys/removed/alice/phone", W, CORE_ALLOW);
	ACL("ks", "chat/keys/removed/+/+", S, CORE_ALLOW);
	ACL("ks", "chat/keys/stats", S, CORE_DENY);
	ck_assert_int_eq(core_acl(C, CONN(0), "ks", "ks", "chat/keys/status/alice/phone", W, true),
	                 CORE_ALLOW);
	ACL("ks", "chat/keys/req/#", S, CORE_DENY);
	ACL("ks", "chat/#", S, CORE_DENY);
	ACL("ks", "#", S, CORE_DENY);
	ACL("ks", "chat/inbox/alice/phone", S, CORE_DENY);
	ACL("ks", "chat/inbox/+/+", S, CORE_DENY);
	ACL("ks", "chat/keys/req/alice/phone", W, CORE_DENY);
	ACL("ks", "chat/keys/resp/alice/phone", S, CORE_DENY);
	ACL("ks", "chat/dm/bob", W, CORE_DENY);
	ACL("ks", "$CONTROL/chat/v1", W, CORE_DENY);
	ACL("ks", "sensors/x", W, CORE_DEFER);
	/* An unknown service name is just foreign. */
	ACL("ks2", "chat/keys/req/+/+", S, CORE_DENY);

	/* Admin. */
	ACL("$admin", "$CONTROL/chat/v1", W, CORE_ALLOW);
	ACL("$admin", "$CONTROL/chat/v1/response", S, CORE_ALLOW);
	ACL("$admin", "$CONTROL/chat/v1/response", R, CORE_ALLOW);
	ACL("$admin", "$CONTROL/chat/v1/response", W, CORE_DENY);
	ACL("$admin", "$CONTROL/chat/v1", S, CORE_DENY);
	ACL("$admin", "$CONTROL/chat/v2", W, CORE_DENY);
	ACL("$admin", "$CONTROL/chat/#", S, CORE_DENY);
	ACL("$admin", "chat/dm/bob", W, CORE_DENY);
	ACL("$admin", "chat/inbox/alice/phone", S, CORE_DENY);

	/* Foreign clients: nothing of ours, the rest deferred. */
	static const char *who[] = { "sensor", NULL };
	for (int i = 0; i < 2; i++) {
		const char *u = who[i];
		ACL(u, "chat/dm/bob", W, CORE_DENY);
		ACL(u, "chat/inbox/alice/phone", S, CORE_DENY);
		ACL(u, "chat/inbox/alice/phone", R, CORE_DENY);
		ACL(u, "chat/foo", W, CORE_DENY);
		ACL(u, "chat", S, CORE_DENY);
		ACL(u, "chat/#", S, CORE_DENY);
		ACL(u, "#", S, CORE_DEFER);
		ACL(u, "$CONTROL/chat/v1", W, CORE_DENY);
		ACL(u, "$CONTROL/chat/v1/response", S, CORE_DENY);
		ACL(u, "$CONTROL/chat", W, CORE_DENY);
		ACL(u, "$CONTROL/chat/x/y", W, CORE_DENY);
		ACL(u, "sensors/temp", W, CORE_DEFER);
		ACL(u, "sensors/#", S, CORE_DEFER);
		ACL(u, "$CONTROL/chatter", W, CORE_DEFER);
		ACL(u, "chat/#", U, CORE_ALLOW);
		ACL(u, "$CONTROL/chat/v1/response", U, CORE_ALLOW);
	}
}
END_TEST

/* Contract §3: a client that is not a chat account gets standard MQTT.
 * Wildcard filters that reach the namespace only through a wildcard are
 * judged like any other topic (plugin_opt_foreign_acl); what keeps chat
 * traffic from them is READ, which mosquitto asks at every delivery of a
 * routed or retained message. */
static void foreign_wildcards(enum core_verdict out)
{
	static const char *who[] = { "sensor", "dashboard-1", NULL };
	static const char *granted[] = {
		"#", "+", "+/+", "+/#", "+/C", "/#", "+/inbox/#", "+/+/+/+", "+/dm/+", "$share/g/#",
		"$share/g/+/+", "$share/g/+/inbox/#", "$CONTROL/#", "$CONTROL/+/v1", "$SYS/#",
		"$SYS/broker/chat/#", "sensors/#",
	};
	static const char *rooted[] = {
		"chat", "chat/#", "chat/+", "chat/inbox/+/+", "chat/inbox/alice/phone",
		"chat/presence/+", "chat/keys/#", "$share/g/chat/#", "$share/g/chat/inbox/alice/phone",
		"$CONTROL/chat/#", "$CONTROL/chat/v1/response", "$share/g/$CONTROL/chat/v1/response",
	};
	/* Every kind of chat topic a routed or retained message can have. */
	static const char *chat_topics[] = {
		"chat", "chat/dm/bob", "chat/group/team", "chat/receipt", "chat/sync", "chat/ctl",
		"chat/typing/dm:alice:bob", "chat/inbox/alice/phone", "chat/presence/alice",
		"chat/presence/alice/phone", "chat/keys/req/alice/phone", "chat/keys/resp/alice/phone",
		"chat/keys/status/alice/phone", "chat/keys/removed/alice/phone", "chat/keys/stats",
		"chat/push/wake", "chat/push/ack", "chat/foo/bar", "$CONTROL/chat/v1",
		"$CONTROL/chat/v1/response", "$CONTROL/chat", "$CONTROL/chat/x/y",
	};
	for (size_t w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
		const char *u = who[w];
		uint64_t refused = counter(stats(), "subscriptions_refused");
		for (size_t i = 0; i < sizeof(granted) / sizeof(granted[0]); i++)
			ACL(u, granted[i], S, out);
		/* a granted filter is not a refusal */
		ck_assert_uint_eq(counter(stats(), "subscriptions_refused"), refused);
		for (size_t i = 0; i < sizeof(rooted) / sizeof(rooted[0]); i++)
			ACL(u, rooted[i], S, CORE_DENY);
		ck_assert_uint_eq(counter(stats(), "subscriptions_refused"),
		                  refused + sizeof(rooted) / sizeof(rooted[0]));
		for (size_t i = 0; i < sizeof(chat_topics) / sizeof(chat_topics[0]); i++) {
			ACL(u, chat_topics[i], R, CORE_DENY);
			ck_assert_int_eq(core_acl(C, CONN(0), "c", u, chat_topics[i], R, true), CORE_DENY);
			ACL(u, chat_topics[i], W, CORE_DENY);
		}
		/* Around the namespace, IoT topics are IoT topics. */
		static const char *iot[] = { "sensors/t", "chatter", "chat2/x", "Chat/inbox/a/b",
			                     "x/chat/inbox/a/b", "/chat", "$CONTROL/chatter",
			                     "$CONTROL/dynamic-security/v1", "$SYS/broker/chat/devices_online" };
		for (size_t i = 0; i < sizeof(iot) / sizeof(iot[0]); i++) {
			ACL(u, iot[i], R, out);
			ACL(u, iot[i], W, out);
		}
	}
	/* Chat accounts keep their refusals. */
	ACL("alice/phone", "#", S, CORE_DENY);
	ACL("alice/phone", "+/+", S, CORE_DENY);
	ACL("alice/phone", "$share/g/#", S, CORE_DENY);
	ACL("alice/phone", "$SYS/#", S, out);
	ACL("$admin", "#", S, CORE_DENY);
}

START_TEST(acl_foreign_wildcards)
{
	foreign_wildcards(CORE_DEFER);
	/* A service keeps its refusals too (an unknown name was foreign above). */
	admin("service.add", "name", "ks", NULL, NULL);
	ACL("ks", "#", S, CORE_DENY);
	ACL("ks", "$share/ks/#", S, CORE_DENY);
	ACL("ks", "+/keys/req/+/+", S, CORE_DENY);
}
END_TEST

START_TEST(acl_foreign_wildcards_allow)
{
	close_core();
	CFG.foreign_acl = CORE_FOREIGN_ALLOW;
	open_core();
	foreign_wildcards(CORE_ALLOW);
}
END_TEST

START_TEST(acl_custom_prefix)
{
	close_core();
	CFG.topic_prefix = "app/chat";
	open_core();
	const char *me = "alice/phone";
	ACL(me, "app/chat/inbox/alice/phone", S, CORE_ALLOW);
	ACL(me, "app/chat/inbox/bob/laptop", S, CORE_DENY);
	ACL(me, "app/chat/dm/bob", W, CORE_ALLOW);
	ACL(me, "app/chat/foo", W, CORE_DENY);
	ACL(me, "app/chat/keys/req/alice/phone", W, CORE_ALLOW);
	ACL(me, "app/#", S, CORE_DENY);
	ACL(me, "app/+/inbox/+/+", S, CORE_DENY);
	ACL(me, "+/chat/#", S, CORE_DENY);
	ACL(me, "app/+", S, CORE_DENY);
	ACL(me, "#", S, CORE_DENY);
	/* The default prefix is now just another topic. */
	ACL(me, "chat/inbox/bob/laptop", S, CORE_DEFER);
	ACL(me, "chat/#", S, CORE_DEFER);
	ACL(me, "app/chatty/#", S, CORE_DEFER);
	ACL(me, "app/chatty/x", W, CORE_DEFER);
	ACL(me, "app/other", W, CORE_DEFER);
	ACL(me, "+", S, CORE_DEFER);
	ACL("sensor", "app/chat/dm/bob", W, CORE_DENY);
	ACL("sensor", "chat/dm/bob", W, CORE_DEFER);
	ACL("sensor", "app/#", S, CORE_DEFER);
	ACL("sensor", "+/chat/#", S, CORE_DEFER);
	ACL("sensor", "app/chat/#", S, CORE_DENY);
	ACL("sensor", "app/chat/inbox/alice/phone", R, CORE_DENY);
	ACL("sensor", "app/chatty", R, CORE_DEFER);
	ACL("$admin", "$CONTROL/chat/v1", W, CORE_ALLOW);

	/* Sends and events use the prefix too. */
	standard_cast();
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "hi");
	size_t m = mark();
	devrec *a = find_dev(me);
	ck_assert_int_eq(core_message(C, a->conn, me, me, "app/chat/dm/bob", w.buf, w.len, 1, false, 5),
	                 CORE_ALLOW);
	ck_assert_str_eq(pub_to(m, "bob/laptop")->topic, "app/chat/inbox/bob/laptop");
	ck_assert_str_eq(pub_to(m, me)->topic, "app/chat/inbox/alice/phone");
	/* chat/dm/bob is not ours any more: let through untouched. */
	m = mark();
	ck_assert_int_eq(core_message(C, a->conn, me, me, "chat/dm/bob", w.buf, w.len, 1, false, 5),
	                 CORE_ALLOW);
	ck_assert_uint_eq(F.npubs, m);
	cbw_free(&w);
}
END_TEST

/* ================= sending ================= */

START_TEST(send_delivers)
{
	standard_cast();
	F.now = 1700000001234ULL;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 4);
	cbw_text(&w, "cid");
	cbw_bytes(&w, "\x01\x02", 2);
	cbw_text(&w, "body");
	cbw_bytes(&w, "\xca\xfe\x00", 3);
	cbw_text(&w, "type");
	cbw_uint(&w, 3);
	cbw_text(&w, "zzz"); /* unknown keys are ignored */
	cbw_raw(&w, "\x82\x01\xa0", 3);
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 3);

	const pubrec *s = event_to(m, "alice/phone", "sent");
	ck_assert_uint_eq(fnkeys(s), 5);
	fbytes_eq(s, "cid", "\x01\x02", 2);
	ck_assert_str_eq(ftext(s, "conv"), "dm:alice:bob");
	ck_assert_uint_eq(fuint(s, "seq"), 1);
	ck_assert_uint_eq(fuint(s, "ts"), 1700000001234ULL);

	const pubrec *b = event_to(m, "bob/laptop", "msg");
	ck_assert_str_eq(ftext(b, "conv"), "dm:alice:bob");
	ck_assert_uint_eq(fuint(b, "seq"), 1);
	ck_assert_str_eq(ftext(b, "from"), "alice/phone");
	ck_assert_uint_eq(fuint(b, "ts"), 1700000001234ULL);
	fbytes_eq(b, "body", "\xca\xfe\x00", 3);
	ck_assert_uint_eq(fuint(b, "type"), 3);
	ck_assert(!fhas(b, "cid")); /* only on the sender's own devices */
	ck_assert_uint_eq(fnkeys(b), 7);

	const pubrec *t = event_to(m, "alice/tablet", "msg");
	ck_assert_str_eq(ftext(t, "conv"), "dm:alice:bob");
	ck_assert_uint_eq(fuint(t, "seq"), 1);
	ck_assert_str_eq(ftext(t, "from"), "alice/phone");
	fbytes_eq(t, "body", "\xca\xfe\x00", 3);
	fbytes_eq(t, "cid", "\x01\x02", 2);
	ck_assert_uint_eq(fnkeys(t), 8);

	/* bob/phone is offline: nothing published to it. */
	ck_assert_uint_eq(count_to(m, "bob/phone"), 0);

	/* Without a type there is no type key. */
	send_uint_cid(&w, 9, "x");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	b = event_to(m, "bob/laptop", "msg");
	ck_assert(!fhas(b, "type"));
	ck_assert_uint_eq(fnkeys(b), 6);
	ck_assert_uint_eq(fuint(b, "seq"), 2);
	t = event_to(m, "alice/tablet", "msg");
	ck_assert_uint_eq(fuint(t, "cid"), 9);
	cbw_free(&w);
}
END_TEST

START_TEST(send_seqs_in_order)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	for (uint64_t i = 1; i <= 3; i++) {
		F.now += 1000;
		send_uint_cid(&w, 100 + i, "m");
		size_t m = mark();
		ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
		const pubrec *s = event_to(m, "alice/phone", "sent");
		ck_assert_uint_eq(fuint(s, "seq"), i);
		ck_assert_uint_eq(fuint(s, "cid"), 100 + i);
		ck_assert_uint_eq(fuint(s, "ts"), F.now);
		ck_assert_uint_eq(fuint(event_to(m, "bob/laptop", "msg"), "seq"), i);
	}
	/* bob's answer is the same conversation, next seq; the cid space is
	 * per device, so bob may reuse alice's cid. */
	send_uint_cid(&w, 101, "re");
	size_t m = mark();
	ck_assert_int_eq(dm("bob/laptop", "alice", &w), CORE_ALLOW);
	const pubrec *s = event_to(m, "bob/laptop", "sent");
	ck_assert_str_eq(ftext(s, "conv"), "dm:alice:bob");
	ck_assert_uint_eq(fuint(s, "seq"), 4);
	ck_assert_uint_eq(count_to(m, "alice/phone"), 1);
	ck_assert_uint_eq(count_to(m, "alice/tablet"), 1);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "msg"), "seq"), 4);
	ck_assert_str_eq(ftext(event_to(m, "alice/phone", "msg"), "from"), "bob/laptop");
	ck_assert_uint_eq(count_to(m, "bob/phone"), 0);

	/* Another conversation starts at 1. */
	add_device("carol", "pc");
	connect_dev("carol/pc");
	send_uint_cid(&w, 1, "c");
	m = mark();
	ck_assert_int_eq(dm("carol/pc", "alice", &w), CORE_ALLOW);
	s = event_to(m, "carol/pc", "sent");
	ck_assert_str_eq(ftext(s, "conv"), "dm:alice:carol");
	ck_assert_uint_eq(fuint(s, "seq"), 1);

	/* Sequence numbers survive a restart. */
	close_core();
	open_core();
	for (size_t i = 0; i < NDEV; i++)
		if (strcmp(DEV[i].addr, "bob/phone") != 0)
			connect_dev(DEV[i].addr);
	ck_assert_uint_eq(sent_seq(&w, "alice/tablet", "bob", 200, "after"), 5);
	cbw_free(&w);
}
END_TEST

START_TEST(send_dedup)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	send_bytes_cid(&w, "c-1", "first");
	F.now = 5000;
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 3);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);

	/* A retry, later, even with another body: the same answer, no delivery. */
	F.now = 9000;
	send_bytes_cid(&w, "c-1", "second");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 1);
	const pubrec *s = event_to(m, "alice/phone", "sent");
	ck_assert_uint_eq(fuint(s, "seq"), 1);
	ck_assert_str_eq(ftext(s, "conv"), "dm:alice:bob");
	fbytes_eq(s, "cid", "c-1", 3);
	ck_assert_uint_eq(fuint(s, "ts"), 5000); /* the first send's time */

	/* The same cid from another device of the same user is a new message. */
	m = mark();
	ck_assert_int_eq(dm("alice/tablet", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/tablet", "sent"), "seq"), 2);
	ck_assert_uint_eq(count_to(m, "bob/laptop"), 1);

	/* 5 and h'05' are different cids. */
	ck_assert_uint_eq(sent_seq(&w, "alice/phone", "bob", 5, "u"), 3);
	send_bytes_cid(&w, "\x05", "b");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	s = event_to(m, "alice/phone", "sent");
	ck_assert_uint_eq(fuint(s, "seq"), 4);
	fbytes_eq(s, "cid", "\x05", 1);
	/* No gap after the duplicate. */
	ck_assert_uint_eq(sent_seq(&w, "alice/phone", "bob", 6, "u"), 5);

	/* Dedup survives a restart. */
	close_core();
	open_core();
	connect_dev("alice/phone");
	connect_dev("bob/laptop");
	send_uint_cid(&w, 5, "u");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 1);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 3);

	const pubrec *st = stats();
	ck_assert_uint_eq(counter(st, "messages_duplicate"), 1);
	cbw_free(&w);
}
END_TEST

static void bodies_payload(cbw *w, const char *cid, const char *const *addrs, size_t n)
{
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "bodies");
	cbw_map(w, n);
	for (size_t i = 0; i < n; i++) {
		cbw_text(w, addrs[i]);
		char b[128];
		snprintf(b, sizeof(b), "for %s", addrs[i]);
		cbw_bytes(w, b, strlen(b));
	}
	cbw_text(w, "cid");
	cbw_bytes(w, cid, strlen(cid));
}

START_TEST(send_bodies_right_set)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	const char *set[] = { "alice/tablet", "bob/phone", "bob/laptop" };
	bodies_payload(&w, "b1", set, 3);
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 3);
	const pubrec *s = event_to(m, "alice/phone", "sent");
	ck_assert_uint_eq(fuint(s, "seq"), 1);
	fbytes_eq(s, "cid", "b1", 2);
	const pubrec *b = event_to(m, "bob/laptop", "msg");
	fbytes_eq(b, "body", "for bob/laptop", 14);
	ck_assert(!fhas(b, "cid"));
	ck_assert_uint_eq(fuint(b, "seq"), 1);
	const pubrec *t = event_to(m, "alice/tablet", "msg");
	fbytes_eq(t, "body", "for alice/tablet", 16);
	fbytes_eq(t, "cid", "b1", 2);
	ck_assert_str_eq(ftext(t, "from"), "alice/phone");
	ck_assert_uint_eq(count_to(m, "bob/phone"), 0);

	/* When bob/phone comes online it gets the next one directly. */
	connect_dev("bob/phone");
	bodies_payload(&w, "b2", set, 3);
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 4);
	fbytes_eq(event_to(m, "bob/phone", "msg"), "body", "for bob/phone", 13);
	ck_assert_uint_eq(fuint(event_to(m, "bob/phone", "msg"), "seq"), 2);
	cbw_free(&w);
}
END_TEST

START_TEST(send_bodies_wrong_set)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	/* Each refused set of bodies: the devices missing and extra (NULL: not
	 * checked), both lists in address order. */
	static const struct {
		const char *cid;
		const char *set[4];
		size_t n;
		const char *missing, *extra;
	} wrong[] = {
		/* bob/phone and alice/tablet missing; carol/x and the sender itself
		 * extra. */
		{ "w1", { "bob/laptop", "carol/x", "alice/phone" }, 3, "alice/tablet,bob/phone",
		  "alice/phone,carol/x" },
		/* Only extras. */
		{ "w2", { "bob/laptop", "bob/phone", "alice/tablet", "bob/tablet" }, 4, "",
		  "bob/tablet" },
		/* A duplicated address counts once; the second is extra. */
		{ "w3", { "bob/laptop", "bob/phone", "alice/tablet", "bob/laptop" }, 4, NULL,
		  "bob/laptop" },
		/* Empty bodies: all missing. */
		{ "w4", { NULL }, 0, "alice/tablet,bob/laptop,bob/phone", NULL },
	};
	size_t m;
	for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		bodies_payload(&w, wrong[i].cid, wrong[i].set, wrong[i].n);
		m = mark();
		ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_DENY);
		const pubrec *e = refused(m, "alice/phone", "devices");
		fbytes_eq(e, "cid", wrong[i].cid, 2);
		if (wrong[i].missing)
			ck_assert_str_eq(ftext_list(e, "missing"), wrong[i].missing);
		if (wrong[i].extra)
			ck_assert_str_eq(ftext_list(e, "extra"), wrong[i].extra);
	}

	/* Nothing was stored: the next good send is seq 1, and w1 is not a
	 * duplicate. */
	const char *good[] = { "bob/laptop", "bob/phone", "alice/tablet" };
	bodies_payload(&w, "w1", good, 3);
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);
	ck_assert_uint_eq(F.npubs - m, 3);
	const pubrec *st = stats();
	ck_assert_uint_eq(counter(st, "messages_refused"), 4);
	ck_assert_uint_eq(counter(st, "messages_stored"), 1);
	cbw_free(&w);
}
END_TEST

/* Each refusal: the verdict, one error event with the code, and nothing
 * stored (the conversation's next seq is still 1 afterwards). */
static void expect_refusal(const char *topic, const uint8_t *p, size_t n, int qos, bool retain,
                           const char *code, const uint8_t *cid_raw, size_t cid_len)
{
	devrec *a = find_dev("alice/phone");
	size_t m = mark();
	ck_assert_msg(core_message(C, a->conn, a->addr, a->addr, topic, p, n, qos, retain, 4) ==
	                      CORE_DENY,
	              "expected %s refused (%s)", topic, code);
	const pubrec *e = refused(m, "alice/phone", code);
	if (cid_raw) {
		const uint8_t *raw;
		size_t rawlen;
		ck_assert_msg(fget(e, "cid", NULL, &raw, &rawlen), "error without cid (%s)", code);
		ck_assert_uint_eq(rawlen, cid_len);
		ck_assert_mem_eq(raw, cid_raw, cid_len);
		ck_assert_uint_eq(fnkeys(e), 4);
	} else {
		ck_assert_msg(!fhas(e, "cid"), "unexpected cid in %s error", code);
		ck_assert_uint_eq(fnkeys(e), 3);
	}
}

#define REFUSE(topic, bytes, qos, retain, code, cid)                                           \
	expect_refusal(topic, (const uint8_t *)(bytes), sizeof(bytes) - 1, qos, retain, code,     \
	               (const uint8_t *)(cid), (cid) ? sizeof(cid) - 1 : 0)
#define NOCID ((const char *)NULL)

START_TEST(send_refusals)
{
	standard_cast();
	/* cbor */
	REFUSE("chat/dm/bob", "\xff", 1, false, "cbor", NOCID);
	REFUSE("chat/dm/bob", "\x82\x01\x02", 1, false, "cbor", NOCID);
	REFUSE("chat/dm/bob", "hello", 1, false, "cbor", NOCID);
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x64" "body", 1, false, "cbor", "\x01");
	REFUSE("chat/dm/bob", "\xa1\x63" "cid\x01\x00", 1, false, "cbor", "\x01"); /* trailing */
	REFUSE("chat/dm/bob", "\xa1\x01\x02", 1, false, "cbor", NOCID);             /* int key */
	REFUSE("chat/dm/bob", "\xa1\x64" "body\x5f\x41\x01\xff", 1, false, "cbor", NOCID);
	expect_refusal("chat/dm/bob", (const uint8_t *)"", 0, 1, false, "cbor", NULL, 0);
	/* field */
	REFUSE("chat/dm/bob", "\xa1\x64" "body\x41x", 1, false, "field", NOCID); /* no cid */
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x51" "0123456789abcdefg\x64" "body\x41x", 1, false,
	       "field", NOCID); /* 17-byte cid */
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x40\x64" "body\x41x", 1, false, "field", NOCID);
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x61" "a\x64" "body\x41x", 1, false, "field", NOCID);
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x20\x64" "body\x41x", 1, false, "field", NOCID);
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x64" "body\x61x", 1, false, "field", "\x01");
	REFUSE("chat/dm/bob", "\xa1\x63" "cid\x01", 1, false, "field", "\x01"); /* no body */
	REFUSE("chat/dm/bob",
	       "\xa3\x63" "cid\x01\x64" "body\x41x\x66" "bodies\xa1\x6a" "bob/laptop\x41y", 1, false,
	       "field", "\x01"); /* both */
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x66" "bodies\x41x", 1, false, "field", "\x01");
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x66" "bodies\xa1\x6a" "bob/laptop\x61y", 1, false,
	       "field", "\x01");
	REFUSE("chat/dm/bob", "\xa3\x63" "cid\x01\x64" "body\x41x\x64" "type\x61t", 1, false, "field",
	       "\x01");
	REFUSE("chat/dm/bob", "\xa3\x63" "cid\x01\x64" "body\x41x\x63" "ttl\x20", 1, false, "field",
	       "\x01");
	/* A 16-byte cid is fine (checked below through a successful send). */

	/* qos */
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x64" "body\x41x", 0, false, "qos", NOCID);
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x64" "body\x41x", 1, true, "qos", NOCID);
	REFUSE("chat/dm/bob", "\xa2\x63" "cid\x01\x64" "body\x41x", 2, true, "qos", NOCID);
	/* peer */
	REFUSE("chat/dm/carol", "\xa2\x63" "cid\x01\x64" "body\x41x", 1, false, "peer", "\x01");
	REFUSE("chat/dm/alice", "\xa2\x63" "cid\x01\x64" "body\x41x", 1, false, "peer", "\x01");
	REFUSE("chat/dm/b b", "\xa2\x63" "cid\x01\x64" "body\x41x", 1, false, "peer", "\x01");
	REFUSE("chat/dm/bob/laptop", "\xa2\x63" "cid\x01\x64" "body\x41x", 1, false, "peer", "\x01");
	REFUSE("chat/dm/", "\xa2\x63" "cid\x01\x64" "body\x41x", 1, false, "peer", "\x01");
	/* topic */
	REFUSE("chat/foo", "\xa0", 1, false, "topic", NOCID);
	REFUSE("chat", "\xa0", 1, false, "topic", NOCID);
	REFUSE("chat/inbox/alice/phone", "\xa0", 1, false, "topic", NOCID);
	REFUSE("chat/inbox/bob/laptop", "\xa0", 1, false, "topic", NOCID);
	REFUSE("chat/presence/alice/phone", "\xa0", 1, false, "topic", NOCID);
	REFUSE("chat/keys/resp/alice/phone", "\xa0", 1, false, "topic", NOCID);
	REFUSE("chat/dm", "\xa0", 1, false, "topic", NOCID);

	/* None of it was stored or delivered: the first good send is seq 1. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid");
	cbw_bytes(&w, "0123456789abcdef", 16);
	cbw_text(&w, "body");
	cbw_bytes(&w, "x", 1);
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);
	fbytes_eq(event_to(m, "alice/tablet", "msg"), "cid", "0123456789abcdef", 16);
	cbw_free(&w);

	/* Each refusal counted once, under its own code's counter; the names
	 * and their order are what $SYS and chatctl have always listed. */
	static const char *const want[] = {
		"refused_cbor", "refused_field", "refused_topic", "refused_conv", "refused_qos",
		"refused_size", "refused_quota", "refused_rate", "refused_store", "refused_peer",
		"refused_member", "refused_devices", "refused_type", "refused_ttl", "refused_op",
		"refused_other",
	};
	static const uint64_t counts[] = { 8, 12, 7, 0, 3, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0 };
	const char *names[32];
	uint64_t v[32];
	size_t n = refused_counters(stats(), names, v, 32);
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(names[i], want[i]);
		ck_assert_msg(v[i] == counts[i], "%s: %llu", names[i], (unsigned long long)v[i]);
	}
}
END_TEST

/* One refusal shape: a code from the enum, its wire name from one table,
 * the reason formatted printf-style and cut to fit. */
START_TEST(refusal_helper)
{
	static refusal r; /* REFUSAL_MSG_MAX is large: off the stack */
	ck_assert(!refusal_set(&r, REFUSE_LIMIT, "a group has at most %u members", 7u));
	ck_assert_int_eq(r.code, REFUSE_LIMIT);
	ck_assert_str_eq(r.msg, "a group has at most 7 members");
	ck_assert_str_eq(refusal_code_name(r.code), "limit");

	static char big[REFUSAL_MSG_MAX + 10];
	memset(big, 'x', sizeof(big) - 1);
	ck_assert(!refusal_set(&r, REFUSE_BACKUP, "%s", big));
	ck_assert_uint_eq(strlen(r.msg), REFUSAL_MSG_MAX - 1);

	/* Every code has a distinct lower-case wire name; the counted ones
	 * come first and end with `op`. */
	for (int i = 0; i < REFUSAL_NCODES; i++) {
		const char *a = refusal_code_name((enum refusal_code)i);
		ck_assert_uint_gt(strlen(a), 0);
		for (const char *p = a; *p; p++)
			ck_assert(*p >= 'a' && *p <= 'z');
		for (int k = 0; k < i; k++)
			ck_assert_str_ne(a, refusal_code_name((enum refusal_code)k));
	}
	ck_assert_str_eq(refusal_code_name(REFUSE_CBOR), "cbor");
	ck_assert_str_eq(refusal_code_name(REFUSAL_NCOUNTED - 1), "op");
	ck_assert_str_eq(refusal_code_name(REFUSAL_NCODES - 1), "denied");
}
END_TEST

/* The per-device token bucket: burst sends at once, then one per 1/rate
 * second; a refusal says rate, keeps the cid and names the wait; other
 * devices have buckets of their own. */
/* ---- a store that answers later (CLUSTER.md "Plan" step 1):
 * support/later_store.c answers on the next tick ---- */

static void answer_later(void)
{
	later_store_install(C);
}

/* A QoS 1 dm with packet id mid, its acknowledgement held as the patched
 * glue holds it. */
static enum core_verdict dm_held(const char *from, const char *peer, const cbw *w, uint16_t mid)
{
	enum core_verdict v = dm(from, peer, w);
	if (v == CORE_PENDING)
		ck_assert(core_ack_later(C, 100, mid));
	return v;
}

START_TEST(send_answered_later)
{
	standard_cast();
	answer_later();
	cbw w;
	cbw_init(&w);
	/* Nothing but the verdict until the store answers. */
	send_uint_cid(&w, 1, "one");
	size_t m = mark();
	ck_assert_int_eq(dm_held("alice/phone", "bob", &w, 11), CORE_PENDING);
	ck_assert_uint_eq(F.npubs, m);
	ck_assert_uint_eq(later_store_waiting(), 1);
	/* A second send of the device waits behind the first (not begun yet);
	 * its payload buffer is gone after the callback: scribble on it. */
	send_uint_cid(&w, 2, "two");
	ck_assert_int_eq(dm_held("alice/phone", "bob", &w, 12), CORE_PENDING);
	memset(w.buf, 0xee, w.len);
	ck_assert_uint_eq(later_store_waiting(), 1);
	/* A send that will be refused, behind both: refused in its turn. */
	send_uint_cid(&w, 3, "three");
	ck_assert_int_eq(dm_held("alice/phone", "nobody", &w, 13), CORE_PENDING);
	ck_assert_uint_eq(F.npubs, m);
	ck_assert_uint_eq(F.nacks, 0);

	/* The tick: the first completes — its PUBACK, then `sent` and `msg`;
	 * then the second is run (and waits for the store in its turn). */
	core_tick(C);
	ck_assert_uint_eq(F.nacks, 1);
	ck_assert_uint_eq(F.acks[0].mid, 11);
	ck_assert_uint_eq(F.acks[0].reason, 0);
	ck_assert_uint_eq(F.acks[0].npubs, m); /* before its events */
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "cid"), 1);
	const pubrec *b = event_to(m, "bob/laptop", "msg");
	ck_assert_uint_eq(fuint(b, "seq"), 1);
	fbytes_eq(b, "body", "one", 3);
	fbytes_eq(event_to(m, "alice/tablet", "msg"), "body", "one", 3);
	ck_assert_uint_eq(F.npubs - m, 3);
	ck_assert_uint_eq(later_store_waiting(), 1);

	/* The next tick: the second (from its own copy), then the refusal. */
	m = mark();
	core_tick(C);
	ck_assert_uint_eq(F.nacks, 3);
	ck_assert_uint_eq(F.acks[1].mid, 12);
	ck_assert_uint_eq(F.acks[1].reason, 0);
	ck_assert_uint_eq(F.acks[1].npubs, m);
	const pubrec *s2 = nth_to(m, "alice/phone", 0);
	ck_assert_str_eq(ftext(s2, "k"), "sent");
	ck_assert_uint_eq(fuint(s2, "cid"), 2);
	ck_assert_uint_eq(fuint(s2, "seq"), 2);
	b = event_to(m, "bob/laptop", "msg");
	ck_assert_uint_eq(fuint(b, "seq"), 2);
	fbytes_eq(b, "body", "two", 3);
	ck_assert_uint_eq(F.acks[2].mid, 13);
	ck_assert_uint_eq(F.acks[2].reason, 0x87);
	ck_assert_uint_eq(F.acks[2].npubs, m + 3); /* after the second's events */
	const pubrec *e = nth_to(m, "alice/phone", 1);
	ck_assert_str_eq(ftext(e, "k"), "error");
	ck_assert_str_eq(ftext(e, "code"), "peer");
	ck_assert_uint_eq(fuint(e, "cid"), 3);
	ck_assert_uint_eq(F.npubs - m, 4);
	ck_assert_uint_eq(later_store_waiting(), 0);

	/* A retry of cid 2 is answered from the dedup index, nothing queued:
	 * at once again, and inline while nothing is in flight. */
	send_uint_cid(&w, 2, "two");
	m = mark();
	ck_assert_int_eq(dm_held("alice/phone", "bob", &w, 14), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 2);
	ck_assert_uint_eq(F.npubs - m, 1);
	cbw_free(&w);
}
END_TEST

/* Stock mosquitto (no held acknowledgement), `bodies`, a device that
 * leaves while its send is in flight, and a quota refusal answered later. */
START_TEST(send_answered_later_stock)
{
	standard_cast();
	answer_later();
	cbw w;
	cbw_init(&w);
	connect_dev("bob/phone");
	const char *set[] = { "alice/tablet", "bob/phone", "bob/laptop" };
	bodies_payload(&w, "b1", set, 3);
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_PENDING);
	memset(w.buf, 0xee, w.len);
	disconnect_dev("bob/phone");
	ck_assert_uint_eq(F.npubs, m);
	core_tick(C);
	ck_assert_uint_eq(F.nacks, 0);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);
	fbytes_eq(event_to(m, "bob/laptop", "msg"), "body", "for bob/laptop", 14);
	fbytes_eq(event_to(m, "alice/tablet", "msg"), "body", "for alice/tablet", 16);
	ck_assert_uint_eq(count_to(m, "bob/phone"), 0); /* left: its queue has it */
	ck_assert_uint_eq(F.npubs - m, 3);

	/* The sender leaves before the answer: the others still get theirs. */
	send_uint_cid(&w, 7, "x");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_PENDING);
	disconnect_dev("alice/phone");
	core_tick(C);
	ck_assert_uint_eq(count_to(m, "alice/phone"), 0);
	ck_assert_uint_eq(fuint(event_to(m, "bob/laptop", "msg"), "seq"), 2);
	cbw_free(&w);
}
END_TEST

START_TEST(send_rate_limit)
{
	close_core();
	CFG.send_rate = 10;
	CFG.send_burst = 3;
	open_core();
	standard_cast();
	cbw w;
	cbw_init(&w);
	uint64_t cid = 1;
	for (int i = 0; i < 3; i++) {
		send_uint_cid(&w, cid++, "x");
		ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	}
	send_uint_cid(&w, cid++, "x");
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_DENY);
	const pubrec *e = refused(m, "alice/phone", "rate");
	ck_assert_uint_eq(fuint(e, "cid"), 4);
	ck_assert_ptr_nonnull(strstr(ftext(e, "msg"), "retry in 100 ms"));
	/* another device is not held back */
	send_uint_cid(&w, cid++, "y");
	ck_assert_int_eq(dm("alice/tablet", "bob", &w), CORE_ALLOW);
	/* 100 ms refill one token, and only one */
	F.now += 100;
	send_uint_cid(&w, 4, "x");
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	send_uint_cid(&w, cid++, "x");
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_DENY);
	/* after a quiet second the whole burst is back, not more */
	F.now += 1000;
	for (int i = 0; i < 3; i++) {
		send_uint_cid(&w, cid++, "x");
		ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	}
	send_uint_cid(&w, cid++, "x");
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_DENY);
	/* 0 turns the limit off */
	close_core();
	CFG.send_rate = 0;
	open_core();
	for (int i = 0; i < 50; i++) {
		send_uint_cid(&w, cid++, "z");
		ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	}
	cbw_free(&w);
}
END_TEST

START_TEST(send_size_limit)
{
	close_core();
	CFG.max_body = 64;
	open_core();
	standard_cast();
	cbw w;
	cbw_init(&w);
	char body[100];
	memset(body, 'b', sizeof(body));
	/* Exactly at the limit is fine. */
	cbw_map(&w, 2);
	cbw_text(&w, "cid");
	cbw_uint(&w, 1);
	cbw_text(&w, "body");
	size_t head = w.len;
	cbw_bytes(&w, body, 64 - head - 2);
	ck_assert_uint_eq(w.len, 64);
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);
	/* One byte more is not. */
	cbw_reset(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid");
	cbw_uint(&w, 2);
	cbw_text(&w, "body");
	cbw_bytes(&w, body, 64 - head - 1);
	ck_assert_uint_eq(w.len, 65);
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_DENY);
	const pubrec *e = refused(m, "alice/phone", "size");
	ck_assert_ptr_nonnull(strstr(ftext(e, "msg"), "64"));
	cbw_free(&w);
}
END_TEST

START_TEST(send_other_topics)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 0);
	/* Key requests go on to the key server, untouched. */
	size_t m = mark();
	ck_assert_int_eq(pub_as("alice/phone", "chat/keys/req/alice/phone", &w, 1, false), CORE_ALLOW);
	/* Outside chat/: not ours. */
	ck_assert_int_eq(pub_as("alice/phone", "sensors/t", &w, 0, true), CORE_ALLOW);
	/* Foreign, service and admin publishes are judged by the ACL only. */
	ck_assert_int_eq(core_message(C, CONN(30), "s", "sensor", "chat/foo", w.buf, w.len, 1, false, 4),
	                 CORE_ALLOW);
	ck_assert_int_eq(core_message(C, CONN(30), "s", NULL, "chat/foo", w.buf, w.len, 1, false, 4),
	                 CORE_ALLOW);
	ck_assert_uint_eq(F.npubs, m);
	/* A group one is not in: an explicit error, not silence. */
	ck_assert_int_eq(pub_as("alice/phone", "chat/group/g1", &w, 1, false), CORE_DENY);
	refused(m, "alice/phone", "field"); /* no cid: the payload is judged first */
	/* A receipt without its fields is refused with the reason. */
	m = mark();
	ck_assert_int_eq(pub_as("alice/phone", "chat/receipt", &w, 1, false), CORE_DENY);
	refused(m, "alice/phone", "field");
	/* An unknown U/D (e.g. removed while connected) is refused silently. */
	m = mark();
	ck_assert_int_eq(core_message(C, CONN(31), "zed/x", "zed/x", "chat/dm/bob", w.buf, w.len, 1,
	                              false, 4),
	                 CORE_DENY);
	ck_assert_uint_eq(F.npubs, m);
	cbw_free(&w);
}
END_TEST

START_TEST(send_offline_devices_get_nothing)
{
	add_device("alice", "phone");
	add_device("alice", "tablet");
	add_device("bob", "laptop");
	connect_dev("alice/phone");
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 1);
	event_to(m, "alice/phone", "sent");
	/* A sender that is itself not online (no conn recorded) gets nothing
	 * but the message is still stored. */
	devrec *t = find_dev("alice/tablet");
	send_uint_cid(&w, 2, "y");
	m = mark();
	ck_assert_int_eq(core_message(C, t->conn, t->addr, t->addr, "chat/dm/bob", w.buf, w.len, 1,
	                              false, 4),
	                 CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "msg"), "seq"), 2);
	ck_assert_uint_eq(F.npubs - m, 1);
	cbw_free(&w);
}
END_TEST

/* A publish failure in the broker does not undo the stored send. */
START_TEST(send_publish_failure)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	F.publish_rc = 1;
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs - m, 3);
	F.publish_rc = 0;
	ck_assert_uint_eq(counter(stats(), "events_out"), 0);
	ck_assert_uint_eq(sent_seq(&w, "alice/phone", "bob", 2, "x"), 2);
	cbw_free(&w);
}
END_TEST


/* Indefinite-length maps are valid CBOR and accepted for sends. */
START_TEST(send_indefinite_maps)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	cbw_raw(&w, "\xbf", 1);
	cbw_text(&w, "cid");
	cbw_uint(&w, 1);
	cbw_text(&w, "bodies");
	cbw_raw(&w, "\xbf", 1);
	cbw_text(&w, "bob/laptop");
	cbw_bytes(&w, "L", 1);
	cbw_text(&w, "alice/tablet");
	cbw_bytes(&w, "T", 1);
	cbw_text(&w, "bob/phone");
	cbw_bytes(&w, "P", 1);
	cbw_raw(&w, "\xff\xff", 2);
	size_t m = mark();
	ck_assert_int_eq(pub_as("alice/phone", "chat/dm/bob", &w, 2, false), CORE_ALLOW); /* QoS 2 */
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 1);
	fbytes_eq(event_to(m, "bob/laptop", "msg"), "body", "L", 1);
	fbytes_eq(event_to(m, "alice/tablet", "msg"), "body", "T", 1);
	cbw_free(&w);
}
END_TEST

/* Any prefix core_open accepts must be the one events are published
 * under. events.c formats the inbox topic into a fixed buffer. */
START_TEST(send_long_prefix)
{
	close_core();
	static char prefix[130];
	char err[512] = "";
	/* over the documented 128 characters: refused at start, with a reason */
	memset(prefix, 'p', 129);
	prefix[129] = '\0';
	CFG.topic_prefix = prefix;
	ck_assert_ptr_null(core_open(&CFG, &IO, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "topic_prefix"));
	/* the longest allowed prefix routes events on whole topics */
	prefix[128] = '\0';
	C = core_open(&CFG, &IO, err, sizeof(err));
	ck_assert_msg(C != NULL, "%s", err);
	standard_cast();
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	char topic[1200];
	snprintf(topic, sizeof(topic), "%s/dm/bob", prefix);
	size_t m = mark();
	ck_assert_int_eq(pub_as("alice/phone", topic, &w, 1, false), CORE_ALLOW);
	cbw_free(&w);
	snprintf(topic, sizeof(topic), "%s/inbox/bob/laptop", prefix);
	const char *got = pub_to(m, "bob/laptop")->topic;
	ck_assert_msg(strcmp(got, topic) == 0,
	              "event published on a %zu-char topic ending '%s', expected the %zu-char %s",
	              strlen(got), got + (strlen(got) > 20 ? strlen(got) - 20 : 0), strlen(topic),
	              "<prefix>/inbox/bob/laptop");
}
END_TEST

/* ================= connections ================= */

START_TEST(disconnect_takeover)
{
	standard_cast();
	devrec *b = find_dev("bob/laptop");
	void *old = b->conn;
	/* The same device connects again (session takeover): new conn. */
	ck_assert_int_eq(core_auth(C, CONN(25), b->addr, b->addr, b->token, 43), CORE_ALLOW);
	ck_assert_uint_eq(counter(stats(), "devices_online"), 3);
	/* The broker reports the old connection's end: the device stays online. */
	core_disconnect(C, old, b->addr, b->addr);
	ck_assert_uint_eq(counter(stats(), "devices_online"), 3);
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "x");
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(count_to(m, "bob/laptop"), 1);
	/* Foreign and unknown disconnects are harmless. */
	core_disconnect(C, CONN(25), "s", "sensor");
	core_disconnect(C, CONN(25), "s", NULL);
	core_disconnect(C, CONN(25), "zed/x", "zed/x");
	core_disconnect(C, NULL, "bob/phone", "bob/phone"); /* offline: no change */
	ck_assert_uint_eq(counter(stats(), "devices_online"), 3);
	/* The recorded connection ends: offline. */
	core_disconnect(C, CONN(25), b->addr, b->addr);
	ck_assert_uint_eq(counter(stats(), "devices_online"), 2);
	send_uint_cid(&w, 2, "y");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(count_to(m, "bob/laptop"), 0);
	ck_assert_uint_eq(F.npubs - m, 2); /* sent, msg to alice/tablet */
	/* A second disconnect of the same conn changes nothing. */
	core_disconnect(C, CONN(25), b->addr, b->addr);
	ck_assert_uint_eq(counter(stats(), "devices_online"), 2);
	/* Reconnecting brings it back. */
	ck_assert_int_eq(core_auth(C, CONN(26), b->addr, b->addr, b->token, 43), CORE_ALLOW);
	send_uint_cid(&w, 3, "z");
	m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "bob/laptop", "msg"), "seq"), 3);
	cbw_free(&w);
}
END_TEST

START_TEST(tick_without_kicks)
{
	core_tick(C);
	core_tick(C);
	ck_assert_uint_eq(F.nkicks, 0);
	ck_assert_uint_eq(F.npubs, 0);
}
END_TEST


/* ================= groups ================= */

/* {op, rid, gid?, members?, user?} on chat/ctl from `from`; the ctl reply. */
static const pubrec *gctl(const char *from, const char *op, uint64_t rid, const char *gid,
                          const char *const *members, size_t n, const char *user)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2 + (gid != NULL) + (members != NULL) + (user != NULL));
	cbw_text(&w, "op"); cbw_text(&w, op);
	cbw_text(&w, "rid"); cbw_uint(&w, rid);
	if (gid) {
		cbw_text(&w, "gid"); cbw_text(&w, gid);
	}
	if (members) {
		cbw_text(&w, "members");
		cbw_array(&w, n);
		for (size_t i = 0; i < n; i++)
			cbw_text(&w, members[i]);
	}
	if (user) {
		cbw_text(&w, "user"); cbw_text(&w, user);
	}
	size_t m = mark();
	pub_as(from, "chat/ctl", &w, 1, false);
	cbw_free(&w);
	for (size_t i = m; i < F.npubs; i++) {
		const pubrec *p = &F.pubs[i];
		if (strcmp(p->clientid, from) == 0 && strcmp(ftext(p, "k"), "ctl") == 0) {
			ck_assert_uint_eq(fuint(p, "rid"), rid);
			return p;
		}
	}
	ck_abort_msg("no ctl reply to %s", from);
	return NULL;
}

static void gctl_fails(const pubrec *p, const char *code)
{
	ck_assert_msg(!fbool(p, "ok"), "expected %s", code);
	ck_assert_str_eq(ftext(p, "code"), code);
	ck_assert_uint_gt(strlen(ftext(p, "msg")), 0);
}

/* The one event of kind k to addr since m (others to addr aside). */
static const pubrec *kind_to(size_t m, const char *addr, const char *k)
{
	const pubrec *found = NULL;
	for (size_t i = m; i < F.npubs; i++) {
		const pubrec *p = &F.pubs[i];
		if (strcmp(p->clientid, addr) == 0 && strcmp(ftext(p, "k"), k) == 0) {
			ck_assert_msg(!found, "more than one %s event to %s", k, addr);
			found = p;
		}
	}
	ck_assert_msg(found != NULL, "no %s event to %s", k, addr);
	ck_assert_int_eq(found->qos, 1);
	return found;
}

/* The group event to addr since m, checked against op, by, members, seq. */
static void group_event_is(size_t m, const char *addr, const char *op, const char *by,
                           const char *members, uint64_t seq)
{
	const pubrec *e = kind_to(m, addr, "group");
	ck_assert_str_eq(ftext(e, "gid"), "g1");
	ck_assert_str_eq(ftext(e, "conv"), "g:g1");
	ck_assert_str_eq(ftext(e, "op"), op);
	ck_assert_str_eq(ftext(e, "by"), by);
	ck_assert_str_eq(ftext_list(e, "members"), members);
	ck_assert_uint_eq(fuint(e, "seq"), seq);
	ck_assert_uint_eq(fuint(e, "ts"), F.now);
}

static enum core_verdict gsend(const char *from, const char *gid, const cbw *w)
{
	char topic[256];
	snprintf(topic, sizeof(topic), "chat/group/%s", gid);
	return pub_as(from, topic, w, 1, false);
}

/* standard_cast plus carol/x (online) and dave/x (online, a stranger);
 * alice creates g1 with bob and carol. */
static void group_cast(void)
{
	standard_cast();
	add_device("carol", "x");
	add_device("dave", "x");
	connect_dev("carol/x");
	connect_dev("dave/x");
	const char *mem[] = { "bob", "carol", "bob" };
	size_t m = mark();
	const pubrec *p = gctl("alice/phone", "group.create", 1, "g1", mem, 3, NULL);
	ck_assert(fbool(p, "ok"));
	ck_assert_str_eq(ftext(p, "gid"), "g1");
	ck_assert_uint_eq(fuint(p, "seq"), 1);
	const char *to[] = { "alice/tablet", "bob/laptop", "carol/x" };
	for (size_t i = 0; i < 3; i++)
		group_event_is(m, to[i], "created", "alice", "alice,bob,carol", 1);
	ck_assert_uint_eq(count_to(m, "dave/x"), 0);
	ck_assert_uint_eq(count_to(m, "alice/phone"), 2); /* the event and the reply */
}

START_TEST(group_create_and_rules)
{
	group_cast();
	const char *bob[] = { "bob" }, *dave[] = { "dave" }, *zed[] = { "zed" };
	/* Only admins add, remove and promote; non-members nothing at all. */
	gctl_fails(gctl("bob/laptop", "group.add", 2, "g1", dave, 1, NULL), "admin");
	gctl_fails(gctl("bob/laptop", "group.remove", 3, "g1", bob, 1, NULL), "admin");
	gctl_fails(gctl("bob/laptop", "group.admin", 4, "g1", NULL, 0, "bob"), "admin");
	gctl_fails(gctl("dave/x", "group.add", 5, "g1", dave, 1, NULL), "member");
	gctl_fails(gctl("dave/x", "group.leave", 6, "g1", NULL, 0, NULL), "member");
	gctl_fails(gctl("dave/x", "group.info", 7, "g1", NULL, 0, NULL), "member");
	/* Unknown groups, taken ids, unknown users, malformed arguments. */
	gctl_fails(gctl("alice/phone", "group.add", 8, "nope", dave, 1, NULL), "notfound");
	gctl_fails(gctl("dave/x", "group.create", 9, "g1", NULL, 0, NULL), "exists");
	gctl_fails(gctl("alice/phone", "group.add", 10, "g1", zed, 1, NULL), "user");
	gctl_fails(gctl("dave/x", "group.create", 11, "g2", zed, 1, NULL), "user");
	gctl_fails(gctl("alice/phone", "group.add", 12, "g/1", dave, 1, NULL), "field");
	gctl_fails(gctl("alice/phone", "group.add", 13, "g1", NULL, 0, NULL), "field");
	gctl_fails(gctl("alice/phone", "group.admin", 14, "g1", NULL, 0, "dave"), "user");
	const char *bad[] = { "a b" };
	gctl_fails(gctl("alice/phone", "group.add", 15, "g1", bad, 1, NULL), "field");
	gctl_fails(gctl("alice/phone", "group.create", 16, NULL, NULL, 0, NULL), "field");
	/* Refusals changed nothing: the next event is seq 2. */
	size_t m = mark();
	const pubrec *p = gctl("alice/phone", "group.add", 17, "g1", dave, 1, NULL);
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fuint(p, "seq"), 2);
	group_event_is(m, "dave/x", "added", "alice", "dave", 2);
	group_event_is(m, "bob/laptop", "added", "alice", "dave", 2);
	/* Adding a member again changes nothing: ok, no seq, no event. */
	m = mark();
	p = gctl("alice/phone", "group.add", 18, "g1", dave, 1, NULL);
	ck_assert(fbool(p, "ok"));
	ck_assert(!fhas(p, "seq"));
	ck_assert_uint_eq(F.npubs - m, 1);
	/* info lists members in join order and the admins. */
	p = gctl("carol/x", "group.info", 19, "g1", NULL, 0, NULL);
	ck_assert(fbool(p, "ok"));
	ck_assert_str_eq(ftext_list(p, "members"), "alice,bob,carol,dave");
	ck_assert_str_eq(ftext_list(p, "admins"), "alice");
	/* A non-text members entry, and a bad payload, are refused. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 4);
	cbw_text(&w, "op"); cbw_text(&w, "group.add");
	cbw_text(&w, "rid"); cbw_uint(&w, 20);
	cbw_text(&w, "gid"); cbw_text(&w, "g1");
	cbw_text(&w, "members"); cbw_array(&w, 1); cbw_uint(&w, 7);
	m = mark();
	ck_assert_int_eq(pub_as("alice/phone", "chat/ctl", &w, 1, false), CORE_DENY);
	gctl_fails(event_to(m, "alice/phone", "ctl"), "field");
	cbw_free(&w);
}
END_TEST

START_TEST(group_size_limit)
{
	close_core();
	CFG.max_group_size = 3;
	open_core();
	group_cast(); /* alice, bob, carol: full */
	const char *dave[] = { "dave" };
	gctl_fails(gctl("alice/phone", "group.add", 2, "g1", dave, 1, NULL), "limit");
	const char *three[] = { "bob", "carol", "alice" }; /* with dave: four */
	gctl_fails(gctl("dave/x", "group.create", 3, "g2", three, 3, NULL), "limit");
	/* Configured out of range: refused at start. */
	close_core();
	CFG.max_group_size = 1;
	char err[256] = "";
	ck_assert_ptr_null(core_open(&CFG, &IO, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "max_group_size"));
	CFG.max_group_size = 1024;
	open_core();
}
END_TEST

START_TEST(group_send_fanout)
{
	group_cast();
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 7, "hello");
	size_t m = mark();
	ck_assert_int_eq(gsend("alice/phone", "g1", &w), CORE_ALLOW);
	const pubrec *e = event_to(m, "alice/phone", "sent");
	ck_assert_str_eq(ftext(e, "conv"), "g:g1");
	ck_assert_uint_eq(fuint(e, "seq"), 2);
	const char *to[] = { "alice/tablet", "bob/laptop", "carol/x" };
	for (size_t i = 0; i < 3; i++) {
		e = event_to(m, to[i], "msg");
		ck_assert_str_eq(ftext(e, "conv"), "g:g1");
		ck_assert_str_eq(ftext(e, "from"), "alice/phone");
		ck_assert_uint_eq(fuint(e, "seq"), 2);
		fbytes_eq(e, "body", "hello", 5);
		ck_assert(fhas(e, "cid") == (i == 0)); /* only on the sender's own devices */
	}
	ck_assert_uint_eq(count_to(m, "dave/x"), 0);
	ck_assert_uint_eq(F.npubs - m, 4);
	/* A retry is answered, not stored again. */
	m = mark();
	ck_assert_int_eq(gsend("alice/phone", "g1", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 2);
	ck_assert_uint_eq(F.npubs - m, 1);

	/* bodies must name exactly every member device but the sender. */
	const char *some[] = { "bob/laptop", "carol/x", "dave/x" };
	bodies_payload(&w, "b1", some, 3);
	m = mark();
	ck_assert_int_eq(gsend("bob/laptop", "g1", &w), CORE_DENY);
	e = refused(m, "bob/laptop", "devices");
	ck_assert_str_eq(ftext_list(e, "missing"), "alice/phone,alice/tablet,bob/phone");
	ck_assert_str_eq(ftext_list(e, "extra"), "bob/laptop,dave/x"); /* the sender itself */
	const char *all[] = { "carol/x", "alice/tablet", "bob/phone", "alice/phone" };
	bodies_payload(&w, "b2", all, 4);
	m = mark();
	ck_assert_int_eq(gsend("bob/laptop", "g1", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "carol/x", "msg"), "seq"), 3);
	fbytes_eq(event_to(m, "alice/tablet", "msg"), "body", "for alice/tablet", 16);

	/* Non-members and unknown groups: refused alike, nothing stored. */
	send_uint_cid(&w, 8, "intruder");
	m = mark();
	ck_assert_int_eq(gsend("dave/x", "g1", &w), CORE_DENY);
	refused(m, "dave/x", "member");
	m = mark();
	ck_assert_int_eq(gsend("dave/x", "nosuch", &w), CORE_DENY);
	refused(m, "dave/x", "member");
	m = mark();
	ck_assert_int_eq(gsend("dave/x", "bad%20id", &w), CORE_DENY);
	refused(m, "dave/x", "member");
	send_uint_cid(&w, 9, "next");
	m = mark();
	ck_assert_int_eq(gsend("carol/x", "g1", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "carol/x", "sent"), "seq"), 4);
	cbw_free(&w);
}
END_TEST

/* The events a sync replays to addr, as "k:seq" (group events "op:seq"). */
static const char *replay_trace(const char *addr)
{
	static char out[1024];
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 0);
	size_t m = mark();
	pub_as(addr, "chat/sync", &w, 1, false);
	cbw_free(&w);
	out[0] = '\0';
	for (size_t i = m; i < F.npubs; i++) {
		const pubrec *p = &F.pubs[i];
		if (strcmp(p->clientid, addr) != 0)
			continue;
		const char *k = ftext(p, "k");
		char item[64];
		if (strcmp(k, "sync") == 0)
			snprintf(item, sizeof(item), "done");
		else if (strcmp(k, "group") == 0)
			snprintf(item, sizeof(item), "%s:%llu", ftext(p, "op"), (unsigned long long)fuint(p, "seq"));
		else if (fhas(p, "seq"))
			snprintf(item, sizeof(item), "%s:%llu", k, (unsigned long long)fuint(p, "seq"));
		else
			snprintf(item, sizeof(item), "%s", k);
		if (out[0])
			strcat(out, ",");
		strcat(out, item);
	}
	return out;
}

static void group_receipt(const char *from, const char *s, uint64_t seq)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "s"); cbw_text(&w, s);
	cbw_text(&w, "conv"); cbw_text(&w, "g:g1");
	cbw_text(&w, "seqs"); cbw_array(&w, 1); cbw_uint(&w, seq);
	pub_as(from, "chat/receipt", &w, 1, false);
	cbw_free(&w);
}

START_TEST(group_remove_cuts_off)
{
	group_cast();
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "before");
	ck_assert_int_eq(gsend("carol/x", "g1", &w), CORE_ALLOW); /* seq 2 */
	const char *bob[] = { "bob" };
	size_t m = mark();
	const pubrec *p = gctl("alice/phone", "group.remove", 2, "g1", bob, 1, NULL);
	ck_assert(fbool(p, "ok"));
	ck_assert_uint_eq(fuint(p, "seq"), 3);
	/* The removed member gets its removal; the others too. */
	group_event_is(m, "bob/laptop", "removed", "alice", "bob", 3);
	group_event_is(m, "carol/x", "removed", "alice", "bob", 3);
	/* And nothing after it. */
	send_uint_cid(&w, 2, "after");
	m = mark();
	ck_assert_int_eq(gsend("carol/x", "g1", &w), CORE_ALLOW);
	ck_assert_uint_eq(count_to(m, "bob/laptop"), 0);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "msg"), "seq"), 4);
	m = mark();
	ck_assert_int_eq(gsend("bob/laptop", "g1", &w), CORE_DENY);
	refused(m, "bob/laptop", "member");
	/* bob/phone was offline: its queue ends with the removal. */
	connect_dev("bob/phone");
	ck_assert_str_eq(replay_trace("bob/phone"), "created:1,msg:2,removed:3,done");
	/* A former member may still acknowledge what is queued for it (that
	 * moves no state: carol hears nothing) but nothing else. */
	m = mark();
	group_receipt("bob/phone", "read", 2);
	ck_assert_uint_eq(F.npubs, m);
	group_receipt("bob/phone", "delivered", 2);
	refused(m, "bob/phone", "conv");
	/* Members' receipts reach the sender, and group events have no state. */
	m = mark();
	group_receipt("alice/tablet", "delivered", 4);
	const pubrec *r = event_to(m, "carol/x", "receipt");
	ck_assert_str_eq(ftext(r, "by"), "alice");
	m = mark();
	group_receipt("alice/tablet", "delivered", 3);
	ck_assert_uint_eq(F.npubs, m);
	cbw_free(&w);
}
END_TEST

START_TEST(group_leave_admin_and_restart)
{
	group_cast();
	size_t m = mark();
	const pubrec *p = gctl("alice/phone", "group.admin", 2, "g1", NULL, 0, "carol");
	ck_assert(fbool(p, "ok"));
	group_event_is(m, "bob/laptop", "admin", "alice", "carol", 2);
	/* The new admin may add; promoting again changes nothing. */
	const char *dave[] = { "dave" };
	ck_assert(fbool(gctl("carol/x", "group.add", 3, "g1", dave, 1, NULL), "ok"));
	m = mark();
	ck_assert(!fhas(gctl("carol/x", "group.admin", 4, "g1", NULL, 0, "alice"), "seq"));
	ck_assert_uint_eq(F.npubs - m, 1);
	/* Any member may leave; it hears of its own leaving. */
	m = mark();
	p = gctl("bob/laptop", "group.leave", 5, "g1", NULL, 0, NULL);
	ck_assert(fbool(p, "ok"));
	group_event_is(m, "bob/laptop", "left", "bob", "bob", 4);
	group_event_is(m, "dave/x", "left", "bob", "bob", 4);
	/* The admins leave: the longest-standing member is promoted. */
	ck_assert(fbool(gctl("alice/phone", "group.leave", 6, "g1", NULL, 0, NULL), "ok"));
	m = mark();
	ck_assert(fbool(gctl("carol/x", "group.leave", 7, "g1", NULL, 0, NULL), "ok"));
	ck_assert_uint_eq(count_to(m, "dave/x"), 2); /* left:6, admin:7 */
	const pubrec *e = NULL;
	for (size_t i = m; i < F.npubs; i++)
		if (strcmp(F.pubs[i].clientid, "dave/x") == 0)
			e = &F.pubs[i];
	ck_assert_str_eq(ftext(e, "op"), "admin");
	ck_assert_str_eq(ftext_list(e, "members"), "dave");
	ck_assert_uint_eq(fuint(e, "seq"), 7);

	/* The group and its conversation survive a restart. */
	close_core();
	open_core();
	connect_dev("dave/x");
	p = gctl("dave/x", "group.info", 8, "g1", NULL, 0, NULL);
	ck_assert_str_eq(ftext_list(p, "members"), "dave");
	ck_assert_str_eq(ftext_list(p, "admins"), "dave");
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "alone");
	m = mark();
	ck_assert_int_eq(gsend("dave/x", "g1", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "dave/x", "sent"), "seq"), 8);
	/* The last member leaves: the group is gone, its id free again (and
	 * its conversation goes on, so seqs never repeat). */
	ck_assert(fbool(gctl("dave/x", "group.leave", 9, "g1", NULL, 0, NULL), "ok"));
	gctl_fails(gctl("dave/x", "group.info", 10, "g1", NULL, 0, NULL), "notfound");
	p = gctl("dave/x", "group.create", 11, "g1", NULL, 0, NULL);
	ck_assert_uint_eq(fuint(p, "seq"), 10);
	cbw_free(&w);
}
END_TEST

START_TEST(group_create_by_admin)
{
	standard_cast();
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 5);
	cbw_text(&w, "cmd"); cbw_text(&w, "group.create");
	cbw_text(&w, "rid"); cbw_uint(&w, 5);
	cbw_text(&w, "gid"); cbw_text(&w, "g1");
	cbw_text(&w, "owner"); cbw_text(&w, "bob");
	cbw_text(&w, "members"); cbw_array(&w, 1); cbw_text(&w, "alice");
	size_t m = mark();
	core_control(C, "chatctl-1", "$admin", w.buf, w.len);
	const pubrec *p = NULL;
	for (size_t i = m; i < F.npubs; i++)
		if (strcmp(F.pubs[i].clientid, "chatctl-1") == 0)
			p = &F.pubs[i];
	ck_assert_ptr_nonnull(p);
	ck_assert(fbool(p, "ok"));
	ck_assert_str_eq(ftext(p, "gid"), "g1");
	ck_assert_uint_eq(fuint(p, "seq"), 1);
	group_event_is(m, "alice/phone", "created", "bob", "bob,alice", 1);
	/* The owner is the admin. */
	const char *carol[] = { "carol" };
	add_device("carol", "x");
	gctl_fails(gctl("alice/phone", "group.add", 1, "g1", carol, 1, NULL), "admin");
	ck_assert(fbool(gctl("bob/laptop", "group.add", 2, "g1", carol, 1, NULL), "ok"));
	/* Refusals: an unknown owner, no owner, a taken id. */
	admin_fails(admin("group.create", "gid", "g2", "owner", "zed"), "user");
	admin_fails(admin("group.create", "gid", "g2", NULL, NULL), "field");
	admin_fails(admin("group.create", "gid", "g1", "owner", "alice"), "exists");
	ck_assert_uint_eq(counter(stats(), "groups"), 1);
	cbw_free(&w);
}
END_TEST

static const char *replay_trace(const char *addr);

/* A fan-out to many devices: every body matched, one store batch. */
START_TEST(group_large_fanout)
{
	add_device("alice", "phone");
	connect_dev("alice/phone");
	cbw w;
	cbw_init(&w);
	/* 200 members, two devices each, added straight through the admin. */
	enum { N = 200 };
	for (int i = 0; i < N; i++) {
		char u[16];
		snprintf(u, sizeof(u), "m%03d", i);
		for (int d = 0; d < 2; d++) {
			if (i == N - 1 && d == 1) {
				add_device(u, "b"); /* one the test can connect */
				continue;
			}
			const pubrec *p = admin("device.add", "user", u, "device", d ? "b" : "a");
			ck_assert(fbool(p, "ok"));
		}
	}
	cbw_map(&w, 4);
	cbw_text(&w, "op"); cbw_text(&w, "group.create");
	cbw_text(&w, "rid"); cbw_uint(&w, 1);
	cbw_text(&w, "gid"); cbw_text(&w, "big");
	cbw_text(&w, "members"); cbw_array(&w, N);
	for (int i = 0; i < N; i++) {
		char u[16];
		snprintf(u, sizeof(u), "m%03d", i);
		cbw_text(&w, u);
	}
	size_t m = mark();
	pub_as("alice/phone", "chat/ctl", &w, 1, false);
	ck_assert(fbool(kind_to(m, "alice/phone", "ctl"), "ok"));
	/* bodies in reverse order: matching sorts both sides. */
	cbw_reset(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, 1);
	cbw_text(&w, "bodies"); cbw_map(&w, 2 * N);
	for (int i = 2 * N - 1; i >= 0; i--) {
		char a[16];
		snprintf(a, sizeof(a), "m%03d/%c", i / 2, i % 2 ? 'b' : 'a');
		cbw_text(&w, a);
		cbw_bytes(&w, a, strlen(a));
	}
	m = mark();
	ck_assert_int_eq(gsend("alice/phone", "big", &w), CORE_ALLOW);
	ck_assert_uint_eq(fuint(event_to(m, "alice/phone", "sent"), "seq"), 2);
	ck_assert_uint_eq(counter(stats(), "messages_stored"), 1);
	/* An offline member device has both queued, in order, with its body. */
	connect_dev("m199/b");
	ck_assert_str_eq(replay_trace("m199/b"), "created:1,msg:2,done");
	m = mark();
	replay_trace("m199/b");
	fbytes_eq(kind_to(m, "m199/b", "msg"), "body", "m199/b", 6);
	cbw_free(&w);
}
END_TEST

/* ================= presence ================= */

/* The one presence document since m: retained on chat/presence/<user>. */
/* The one presence document published since m (key-server notices aside). */
static const pubrec *pres_doc(size_t m, const char *user)
{
	const pubrec *p = NULL;
	for (size_t i = m; i < F.npubs; i++)
		if (!strcmp(F.pubs[i].clientid, ALL_SUBSCRIBERS) && strstr(F.pubs[i].topic, "/presence/")) {
			ck_assert_msg(!p, "more than one presence document");
			p = &F.pubs[i];
		}
	ck_assert_ptr_nonnull(p);
	char t[128];
	snprintf(t, sizeof(t), "chat/presence/%s", user);
	ck_assert_str_eq(p->topic, t);
	ck_assert(p->retain == CFG.presence_retained); /* default: not retained */
	ck_assert_int_eq(p->qos, 1);
	return p;
}

/* The one publish since m to the device addr on chat/presence/<user>, not
 * retained: the answer to its SUBSCRIBE (presence.c). */
static const pubrec *pres_answer(size_t m, const char *addr, const char *user)
{
	const pubrec *p = pub_to(m, addr);
	char t[128];
	snprintf(t, sizeof(t), "chat/presence/%s", user);
	ck_assert_str_eq(p->topic, t);
	ck_assert(!p->retain);
	ck_assert_int_eq(p->qos, 1);
	return p;
}

static enum core_verdict pres_sub(const char *addr, const char *filter)
{
	return core_acl(C, find_dev(addr)->conn, addr, addr, filter, CORE_ACC_SUBSCRIBE, false);
}

START_TEST(presence_online_grace_offline)
{
	add_device("alice", "phone");
	add_device("alice", "tablet");
	size_t m = mark();
	connect_dev("alice/phone");
	const pubrec *p = pres_doc(m, "alice");
	ck_assert_str_eq(ftext(p, "s"), "online");
	ck_assert_uint_eq(fnkeys(p), 1);
	/* A second device: still online, nothing new. */
	m = mark();
	connect_dev("alice/tablet");
	disconnect_dev("alice/tablet");
	core_tick(C);
	ck_assert_uint_eq(F.npubs, m);
	/* The last device goes: nothing until the grace period is over. */
	uint64_t left = F.now;
	disconnect_dev("alice/phone");
	F.now += CFG.presence_grace_s * 1000 - 1;
	core_tick(C);
	ck_assert_uint_eq(F.npubs, m);
	F.now += 1;
	core_tick(C);
	p = pres_doc(m, "alice");
	ck_assert_str_eq(ftext(p, "s"), "offline");
	ck_assert_uint_eq(fuint(p, "seen"), left);
	/* Published once. */
	m = mark();
	F.now += 60000;
	core_tick(C);
	ck_assert_uint_eq(F.npubs, m);
	/* Back: online again. */
	connect_dev("alice/tablet");
	ck_assert_str_eq(ftext(pres_doc(m, "alice"), "s"), "online");
}
END_TEST

START_TEST(presence_no_flicker_and_takeover)
{
	add_device("alice", "phone");
	connect_dev("alice/phone");
	size_t m = mark();
	/* Gone and back within the grace: nothing at all is published. */
	disconnect_dev("alice/phone");
	F.now += 3000;
	core_tick(C);
	devrec *r = find_dev("alice/phone");
	ck_assert_int_eq(core_auth(C, CONN(20), r->addr, r->addr, r->token, 43), CORE_ALLOW);
	F.now += 60000;
	core_tick(C);
	ck_assert_uint_eq(F.npubs, m);
	/* Session takeover: the new connection authenticates, then the broker
	 * reports the old one's end and publishes its will. Still online. */
	ck_assert_int_eq(core_auth(C, CONN(21), r->addr, r->addr, r->token, 43), CORE_ALLOW);
	core_disconnect(C, CONN(20), r->addr, r->addr);
	ck_assert_int_eq(core_acl(C, CONN(20), r->addr, r->addr, "chat/presence/alice/phone",
	                          CORE_ACC_WRITE, false), CORE_ALLOW);
	/* A live device publishing on its will topic is no sign of leaving. */
	ck_assert_int_eq(core_acl(C, CONN(21), r->addr, r->addr, "chat/presence/alice/phone",
	                          CORE_ACC_WRITE, false), CORE_ALLOW);
	F.now += 60000;
	core_tick(C);
	ck_assert_uint_eq(count_to(m, ALL_SUBSCRIBERS), 0);
	/* The recorded connection ends: offline after the grace. */
	core_disconnect(C, CONN(21), r->addr, r->addr);
	F.now += CFG.presence_grace_s * 1000;
	core_tick(C);
	ck_assert_str_eq(ftext(pres_doc(m, "alice"), "s"), "offline");
}
END_TEST

START_TEST(presence_will_and_privacy)
{
	close_core();
	CFG.presence_grace_s = 2;
	open_core();
	add_device("alice", "phone");
	add_device("bob", "laptop");
	connect_dev("alice/phone");
	connect_dev("bob/laptop");
	/* alice hides her presence from everyone: seen is left out. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "op"); cbw_text(&w, "privacy");
	cbw_text(&w, "rid"); cbw_uint(&w, 1);
	cbw_text(&w, "presence"); cbw_text(&w, "nobody");
	pub_as("alice/phone", "chat/ctl", &w, 1, false);
	size_t m = mark();
	disconnect_dev("alice/phone");
	/* Its will arrives after the DISCONNECT: no second timer. */
	ck_assert_int_eq(core_acl(C, find_dev("alice/phone")->conn, "alice/phone", "alice/phone",
	                          "chat/presence/alice/phone", CORE_ACC_WRITE, false), CORE_ALLOW);
	F.now += 2000;
	core_tick(C);
	const pubrec *p = pres_doc(m, "alice");
	ck_assert_str_eq(ftext(p, "s"), "offline");
	ck_assert(!fhas(p, "seen"));
	F.now += 5000;
	core_tick(C);
	ck_assert_uint_eq(count_to(m, ALL_SUBSCRIBERS), 1);
	cbw_free(&w);
}
END_TEST

static enum core_verdict pres_acl(const char *viewer, const char *user, int access)
{
	char t[128];
	snprintf(t, sizeof(t), "chat/presence/%s", user);
	return core_acl(C, CONN(30), viewer, viewer, t, access, false);
}

static void set_presence(const char *addr, const char *v)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "op"); cbw_text(&w, "privacy");
	cbw_text(&w, "rid"); cbw_uint(&w, 1);
	cbw_text(&w, "presence"); cbw_text(&w, v);
	size_t m = mark();
	pub_as(addr, "chat/ctl", &w, 1, false);
	ck_assert(fbool(event_to(m, addr, "ctl"), "ok"));
	cbw_free(&w);
}

START_TEST(presence_who_may_see)
{
	group_cast(); /* g1: alice, bob, carol; dave a stranger */
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "hi");
	ck_assert_int_eq(dm("dave/x", "alice", &w), CORE_ALLOW); /* dave and alice: a dm */
	for (int a = 0; a < 2; a++) {
		int acc = a ? CORE_ACC_READ : CORE_ACC_SUBSCRIBE;
		/* everyone (the default): own devices, dm partners, co-members. */
		ck_assert_int_eq(pres_acl("alice/tablet", "alice", acc), CORE_ALLOW);
		ck_assert_int_eq(pres_acl("bob/laptop", "alice", acc), CORE_ALLOW);
		ck_assert_int_eq(pres_acl("dave/x", "alice", acc), CORE_ALLOW);
		ck_assert_int_eq(pres_acl("dave/x", "bob", acc), CORE_DENY);
		ck_assert_int_eq(pres_acl("bob/laptop", "nosuchuser", acc), CORE_DENY);
	}
	/* Wildcards never reach anyone's presence. */
	ck_assert_int_eq(pres_acl("bob/laptop", "+", CORE_ACC_SUBSCRIBE), CORE_DENY);
	/* contacts: only dm partners. */
	set_presence("alice/phone", "contacts");
	ck_assert_int_eq(pres_acl("bob/laptop", "alice", CORE_ACC_SUBSCRIBE), CORE_DENY);
	ck_assert_int_eq(pres_acl("dave/x", "alice", CORE_ACC_READ), CORE_ALLOW);
	/* nobody: only alice herself. */
	set_presence("alice/tablet", "nobody");
	ck_assert_int_eq(pres_acl("dave/x", "alice", CORE_ACC_READ), CORE_DENY);
	ck_assert_int_eq(pres_acl("alice/phone", "alice", CORE_ACC_READ), CORE_ALLOW);
	/* Settings survive a restart (read from the store). */
	close_core();
	open_core();
	ck_assert_int_eq(pres_acl("dave/x", "alice", CORE_ACC_READ), CORE_DENY);
	ck_assert_int_eq(pres_acl("carol/x", "bob", CORE_ACC_READ), CORE_ALLOW);
	cbw_free(&w);
}
END_TEST

START_TEST(presence_user_removed)
{
	add_device("alice", "phone");
	add_device("alice", "tablet");
	connect_dev("alice/phone");
	connect_dev("alice/tablet");
	/* One device removed: the other is still online. */
	size_t m = mark();
	ck_assert(fbool(admin("device.remove", "user", "alice", "device", "tablet"), "ok"));
	F.now += 60000;
	core_tick(C);
	/* no presence document: only the key server's retained removal notice */
	ck_assert_uint_eq(count_to(m, ALL_SUBSCRIBERS), 1);
	const pubrec *k = NULL;
	for (size_t i = m; i < F.npubs; i++)
		if (!strcmp(F.pubs[i].clientid, ALL_SUBSCRIBERS))
			k = &F.pubs[i];
	ck_assert_str_eq(k->topic, "chat/keys/removed/alice/tablet");
	ck_assert(k->retain);
	ck_assert(fuint(k, "ts") > 0);
	/* alice/phone is told its device list changed */
	const pubrec *d = pub_to(m, "alice/phone");
	ck_assert_str_eq(ftext(d, "k"), "devices");
	ck_assert_str_eq(ftext(d, "removed"), "tablet");
	/* The user removed: its retained document is cleared. */
	m = mark();
	ck_assert(fbool(admin("user.remove", "user", "alice", NULL, NULL), "ok"));
	const pubrec *p = pres_doc(m, "alice");
	ck_assert_uint_eq(p->len, 0);
	F.now += 60000;
	core_tick(C);
	ck_assert_uint_eq(count_to(m, ALL_SUBSCRIBERS), 2); /* and the keys notice */
}
END_TEST

/* The default (presence_retained false): a SUBSCRIBE to chat/presence/U is
 * answered from the plugin's state, on stock mosquitto at the approving ACL
 * check, to the subscribing device alone; live documents are not retained. */
START_TEST(presence_answered_on_subscribe)
{
	add_device("alice", "phone");
	add_device("alice", "tablet");
	add_device("carol", "x");
	add_device("dave", "x");
	connect_dev("alice/tablet");
	connect_dev("carol/x");
	size_t m = mark();
	ck_assert_int_eq(pres_sub("alice/tablet", "chat/presence/alice"), CORE_ALLOW);
	const pubrec *p = pres_answer(m, "alice/tablet", "alice");
	ck_assert_str_eq(ftext(p, "s"), "online");
	ck_assert_uint_eq(fnkeys(p), 1);
	ck_assert_uint_eq(count_to(m, ALL_SUBSCRIBERS), 0);
	/* Every SUBSCRIBE is answered (MQTT 3.1.1 resends retained ones too). */
	m = mark();
	ck_assert_int_eq(pres_sub("alice/tablet", "chat/presence/alice"), CORE_ALLOW);
	pres_answer(m, "alice/tablet", "alice");
	/* dave never connected: no document, as the retain tree would have none. */
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "hi");
	ck_assert_int_eq(dm("carol/x", "dave", &w), CORE_ALLOW);
	m = mark();
	ck_assert_int_eq(pres_sub("carol/x", "chat/presence/dave"), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs, m);
	/* Refused filters get nothing; $share/ gets no retained message, so no
	 * answer either; nor a connection that is not the device's recorded one. */
	ck_assert_int_eq(pres_sub("carol/x", "chat/presence/alice"), CORE_DENY);
	ck_assert_int_eq(pres_sub("alice/tablet", "chat/presence/+"), CORE_DENY);
	ck_assert_int_eq(pres_sub("alice/tablet", "$share/g/chat/presence/alice"), CORE_ALLOW);
	ck_assert_int_eq(core_acl(C, CONN(40), "alice/tablet", "alice/tablet", "chat/presence/alice",
	                          CORE_ACC_SUBSCRIBE, false), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs, m);
	cbw_free(&w);
}
END_TEST

/* The answer is the state of the moment: online through the grace, then
 * offline with seen; privacy applies to who is answered. */
START_TEST(presence_answer_states_and_privacy)
{
	add_device("alice", "phone");
	add_device("alice", "tablet");
	add_device("carol", "x");
	connect_dev("alice/phone");
	connect_dev("carol/x");
	cbw w;
	cbw_init(&w);
	send_uint_cid(&w, 1, "hi");
	ck_assert_int_eq(dm("carol/x", "alice", &w), CORE_ALLOW); /* carol may watch alice */
	uint64_t left = F.now;
	disconnect_dev("alice/phone");
	size_t m = mark();
	ck_assert_int_eq(pres_sub("carol/x", "chat/presence/alice"), CORE_ALLOW);
	ck_assert_str_eq(ftext(pres_answer(m, "carol/x", "alice"), "s"), "online");
	F.now += CFG.presence_grace_s * 1000;
	core_tick(C);
	ck_assert_str_eq(ftext(pres_doc(m, "alice"), "s"), "offline"); /* live, not retained */
	m = mark();
	ck_assert_int_eq(pres_sub("carol/x", "chat/presence/alice"), CORE_ALLOW);
	const pubrec *p = pres_answer(m, "carol/x", "alice");
	ck_assert_str_eq(ftext(p, "s"), "offline");
	ck_assert_uint_eq(fuint(p, "seen"), left);
	/* alice hides her presence: carol is refused and answered nothing. */
	connect_dev("alice/tablet");
	set_presence("alice/tablet", "nobody");
	disconnect_dev("alice/tablet");
	F.now += CFG.presence_grace_s * 1000;
	core_tick(C);
	m = mark();
	ck_assert_int_eq(pres_sub("carol/x", "chat/presence/alice"), CORE_DENY);
	ck_assert_uint_eq(F.npubs, m);
	cbw_free(&w);
}
END_TEST

/* Patched broker: the answer comes from the SUBSCRIBE event (the granted
 * subscription), not from the ACL check. */
START_TEST(presence_answer_patched)
{
	add_device("alice", "phone");
	connect_dev("alice/phone");
	ck_assert(core_broker_events(C, CORE_BEV_SUBSCRIBE));
	size_t m = mark();
	ck_assert_int_eq(pres_sub("alice/phone", "chat/presence/alice"), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs, m);
	void *conn = find_dev("alice/phone")->conn;
	core_subscribed(C, conn, "alice/phone", "chat/presence/alice");
	ck_assert_str_eq(ftext(pres_answer(m, "alice/phone", "alice"), "s"), "online");
	m = mark();
	core_subscribed(C, conn, "alice/phone", "$share/x/chat/presence/alice");
	core_subscribed(C, CONN(9), "alice/phone", "chat/presence/alice"); /* not its connection */
	core_subscribed(C, conn, NULL, "chat/presence/alice");
	ck_assert_uint_eq(F.npubs, m);
}
END_TEST

/* plugin_opt_presence_retained true: the documents are retained and the
 * broker answers subscriptions from its retain tree; the plugin does not. */
START_TEST(presence_retained_option)
{
	close_core();
	CFG.presence_retained = true;
	open_core();
	add_device("alice", "phone");
	add_device("alice", "tablet");
	size_t m = mark();
	connect_dev("alice/phone");
	ck_assert_str_eq(ftext(pres_doc(m, "alice"), "s"), "online"); /* retained */
	connect_dev("alice/tablet");
	m = mark();
	ck_assert_int_eq(pres_sub("alice/tablet", "chat/presence/alice"), CORE_ALLOW);
	ck_assert_uint_eq(F.npubs, m);
	ck_assert(core_broker_events(C, CORE_BEV_SUBSCRIBE));
	core_subscribed(C, find_dev("alice/tablet")->conn, "alice/tablet", "chat/presence/alice");
	ck_assert_uint_eq(F.npubs, m);
	disconnect_dev("alice/phone");
	disconnect_dev("alice/tablet");
	F.now += CFG.presence_grace_s * 1000;
	core_tick(C);
	ck_assert_str_eq(ftext(pres_doc(m, "alice"), "s"), "offline");
}
END_TEST

/* ================= typing ================= */

static enum core_verdict typing(const char *from, const char *conv, int on)
{
	cbw w;
	cbw_init(&w);
	if (on >= 0) {
		cbw_map(&w, 1);
		cbw_text(&w, "on");
		cbw_bool(&w, on);
	} else {
		cbw_map(&w, 1);
		cbw_text(&w, "on");
		cbw_uint(&w, 1);
	}
	char t[256];
	snprintf(t, sizeof(t), "chat/typing/%s", conv);
	enum core_verdict v = pub_as(from, t, &w, 0, false);
	cbw_free(&w);
	return v;
}

START_TEST(typing_relayed_never_stored)
{
	group_cast();
	size_t m = mark();
	ck_assert_int_eq(typing("alice/phone", "dm:alice:bob", 1), CORE_ALLOW);
	const pubrec *p = pub_to(m, "bob/laptop");
	ck_assert_str_eq(p->topic, "chat/inbox/bob/laptop");
	ck_assert_int_eq(p->qos, 0);
	ck_assert_str_eq(ftext(p, "k"), "typing");
	ck_assert_str_eq(ftext(p, "conv"), "dm:alice:bob");
	ck_assert_str_eq(ftext(p, "from"), "alice/phone");
	ck_assert(fbool(p, "on"));
	ck_assert_uint_eq(F.npubs - m, 1); /* not to alice's own tablet, not to offline bob/phone */
	/* In a group: every other member's online devices. */
	m = mark();
	ck_assert_int_eq(typing("bob/laptop", "g:g1", 0), CORE_ALLOW);
	ck_assert(!fbool(pub_to(m, "carol/x"), "on"));
	ck_assert_uint_eq(count_to(m, "alice/phone") + count_to(m, "alice/tablet"), 2);
	ck_assert_uint_eq(F.npubs - m, 3);
	/* Strangers, bad ids and bad payloads are refused. */
	m = mark();
	ck_assert_int_eq(typing("dave/x", "g:g1", 1), CORE_DENY);
	refused(m, "dave/x", "conv");
	m = mark();
	ck_assert_int_eq(typing("dave/x", "dm:alice:bob", 1), CORE_DENY);
	refused(m, "dave/x", "conv");
	m = mark();
	ck_assert_int_eq(typing("alice/phone", "dm:bob:alice", 1), CORE_DENY);
	refused(m, "alice/phone", "conv");
	m = mark();
	ck_assert_int_eq(typing("alice/phone", "dm:alice:zed", 1), CORE_DENY);
	refused(m, "alice/phone", "conv");
	m = mark();
	ck_assert_int_eq(typing("alice/phone", "dm:alice:bob", -1), CORE_DENY);
	refused(m, "alice/phone", "field");
	/* Never queued: bob/phone's sync replays only the group's creation. */
	connect_dev("bob/phone");
	ck_assert_str_eq(replay_trace("bob/phone"), "created:1,done");
}
END_TEST

/* plugin_opt_* parsing (options.c): ranges, kinds, messages naming the option. */
START_TEST(options_table)
{
	core_config cfg;
	core_config_defaults(&cfg);
	char err[256];
	ck_assert(core_config_set(&cfg, "max_body", "64", err, sizeof(err)));
	ck_assert_uint_eq(cfg.max_body, 64);
	ck_assert(!core_config_set(&cfg, "max_body", "63", err, sizeof(err)));
	ck_assert_str_eq(err, "invalid value '63' for plugin_opt_max_body: expected an integer from 64 to 16777216");
	ck_assert_uint_eq(cfg.max_body, 64);
	ck_assert(core_config_set(&cfg, "offline_ttl", "60", err, sizeof(err)));
	ck_assert_uint_eq(cfg.offline_ttl_s, 60);
	ck_assert(core_config_set(&cfg, "foreign_acl", "allow", err, sizeof(err)));
	ck_assert_int_eq(cfg.foreign_acl, CORE_FOREIGN_ALLOW);
	ck_assert(core_config_set(&cfg, "log_level", "warning", err, sizeof(err)));
	ck_assert_int_eq(cfg.log_level, CORE_LOG_WARNING);
	ck_assert(!core_config_set(&cfg, "log_level", "WARNING", err, sizeof(err)));
	ck_assert_str_eq(err, "invalid value 'WARNING' for plugin_opt_log_level: expected one of debug, info, notice, warning, error");
	ck_assert(core_config_set(&cfg, "sync_writes", "on", err, sizeof(err)));
	ck_assert(cfg.sync_writes);
	ck_assert(!core_config_set(&cfg, "sync_writes", "", err, sizeof(err)));
	ck_assert(core_config_set(&cfg, "topic_prefix", "apps/chat", err, sizeof(err)));
	ck_assert_str_eq(cfg.topic_prefix, "apps/chat");
	ck_assert(!core_config_set(&cfg, "data_dir", "", err, sizeof(err)));
	ck_assert(!core_config_set(&cfg, "max_bdoy", "1", err, sizeof(err)));
	ck_assert_str_eq(err, "unknown option plugin_opt_max_bdoy");
	ck_assert(!core_config_set(&cfg, "stats_interval", NULL, err, sizeof(err)));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core");
	TCase *o = tcase_create("options");
	tcase_add_test(o, options_table);
	suite_add_tcase(s, o);
	TCase *t = env_tcase("admin", setup, teardown);
	tcase_add_test(t, admin_token_created);
	tcase_add_test(t, open_refuses_bad_config);
	tcase_add_test(t, admin_device_add);
	tcase_add_test(t, admin_field_errors);
	tcase_add_test(t, admin_unknown_and_bad_requests);
	tcase_add_test(t, admin_only_admin_gets_replies);
	tcase_add_test(t, admin_stats);
	tcase_add_test(t, admin_device_remove_kicks);
	tcase_add_test(t, admin_user_remove);
	tcase_add_test(t, admin_device_rotate);
	tcase_add_test(t, admin_provisioner);
	tcase_add_test(t, admin_service_add);
	tcase_add_test(t, tick_without_kicks);
	tcase_add_test(t, admin_token_mode_despite_stale_tmp);
	tcase_add_test(t, admin_device_limit);
	suite_add_tcase(s, t);

	t = env_tcase("auth", setup, teardown);
	tcase_add_test(t, auth_devices);
	tcase_add_test(t, auth_defer_and_accounts);
	suite_add_tcase(s, t);

	t = env_tcase("acl", setup, teardown);
	tcase_add_test(t, acl_device);
	tcase_add_test(t, acl_foreign_allow);
	tcase_add_test(t, acl_service_admin_foreign);
	tcase_add_test(t, acl_custom_prefix);
	tcase_add_test(t, acl_foreign_wildcards);
	tcase_add_test(t, acl_foreign_wildcards_allow);
	suite_add_tcase(s, t);

	t = env_tcase("send", setup, teardown);
	tcase_add_test(t, send_delivers);
	tcase_add_test(t, send_seqs_in_order);
	tcase_add_test(t, send_dedup);
	tcase_add_test(t, send_bodies_right_set);
	tcase_add_test(t, send_bodies_wrong_set);
	tcase_add_test(t, send_refusals);
	tcase_add_test(t, refusal_helper);
	tcase_add_test(t, send_size_limit);
	tcase_add_test(t, send_rate_limit);
	tcase_add_test(t, send_other_topics);
	tcase_add_test(t, send_offline_devices_get_nothing);
	tcase_add_test(t, send_publish_failure);
	tcase_add_test(t, send_indefinite_maps);
	tcase_add_test(t, send_long_prefix);
	tcase_add_test(t, disconnect_takeover);
	tcase_add_test(t, send_answered_later);
	tcase_add_test(t, send_answered_later_stock);
	suite_add_tcase(s, t);

	t = env_tcase("groups", setup, teardown);
	tcase_add_test(t, group_create_and_rules);
	tcase_add_test(t, group_size_limit);
	tcase_add_test(t, group_send_fanout);
	tcase_add_test(t, group_remove_cuts_off);
	tcase_add_test(t, group_leave_admin_and_restart);
	tcase_add_test(t, group_create_by_admin);
	tcase_add_test(t, group_large_fanout);
	suite_add_tcase(s, t);

	t = env_tcase("presence", setup, teardown);
	tcase_add_test(t, presence_online_grace_offline);
	tcase_add_test(t, presence_no_flicker_and_takeover);
	tcase_add_test(t, presence_will_and_privacy);
	tcase_add_test(t, presence_who_may_see);
	tcase_add_test(t, presence_user_removed);
	tcase_add_test(t, presence_answered_on_subscribe);
	tcase_add_test(t, presence_answer_states_and_privacy);
	tcase_add_test(t, presence_answer_patched);
	tcase_add_test(t, presence_retained_option);
	tcase_add_test(t, typing_relayed_never_stored);
	suite_add_tcase(s, t);
	return s;
}

int main(void) { return run_suite(suite()); }
