// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_push.c — push wake-ups (plugin/push.c) driven through core.h with
 * the recording fake core_io and a real store: registration and its
 * errors, coalescing to one wake-up per device per push_interval, nothing
 * for connected devices or typing, resends until a gateway acknowledges,
 * invalid tokens unregistered, and pending wake-ups owed after a restart.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "cbor_io.h"
#include "core.h"
#include "events.h"
#include "fake_io.h"
#include "harness.h"

#define FCM_TOKEN "fcm-token:APA91b_x.y-z"
#define WAKE_TOPIC "chat/push/wake"

static void setup(void) { env_setup(FAKE_BROADCASTS_COUNTED); }
static void teardown(void) { env_teardown(); }

static enum core_verdict pub(const char *from, const char *topic, const cbw *w, int qos)
{
	devrec *r = find_dev(from);
	return core_message(C, r->conn, from, from, topic, w->buf, w->len, qos, false, 4);
}

/* A ctl push.register (platform, token may be NULL: left out); the reply. */
static const pubrec *reg(const char *from, const char *platform, const char *token)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2 + (platform != NULL) + (token != NULL));
	cbw_text(&w, "op"); cbw_text(&w, platform || token ? "push.register" : "push.unregister");
	cbw_text(&w, "rid"); cbw_uint(&w, 7);
	if (platform) {
		cbw_text(&w, "platform"); cbw_text(&w, platform);
	}
	if (token) {
		cbw_text(&w, "token"); cbw_text(&w, token);
	}
	size_t m = mark();
	pub(from, "chat/ctl", &w, 1);
	cbw_free(&w);
	const pubrec *p = event_to(m, from, "ctl");
	ck_assert_uint_eq(fuint(p, "rid"), 7);
	return p;
}

/* A push.register with a mode. */
static const pubrec *reg_mode(const char *from, const char *platform, const char *token,
                              const char *mode)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 5);
	cbw_text(&w, "op"); cbw_text(&w, "push.register");
	cbw_text(&w, "rid"); cbw_uint(&w, 8);
	cbw_text(&w, "platform"); cbw_text(&w, platform);
	cbw_text(&w, "token"); cbw_text(&w, token);
	cbw_text(&w, "mode"); cbw_text(&w, mode);
	size_t m = mark();
	pub(from, "chat/ctl", &w, 1);
	cbw_free(&w);
	const pubrec *p = event_to(m, from, "ctl");
	ck_assert_uint_eq(fuint(p, "rid"), 8);
	return p;
}

static void dm(const char *from, const char *peer, uint64_t cid)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, "secret words", 12);
	char topic[128];
	snprintf(topic, sizeof(topic), "chat/dm/%s", peer);
	ck_assert_int_eq(pub(from, topic, &w, 1), CORE_ALLOW);
	cbw_free(&w);
}

/* The wake-ups published since m. */
static size_t wakes(size_t m)
{
	size_t n = 0;
	for (size_t i = m; i < F.npubs; i++)
		n += strcmp(F.pubs[i].topic, WAKE_TOPIC) == 0;
	return n;
}

static const pubrec *last_wake(size_t m)
{
	const pubrec *w = NULL;
	for (size_t i = m; i < F.npubs; i++)
		if (strcmp(F.pubs[i].topic, WAKE_TOPIC) == 0)
			w = &F.pubs[i];
	ck_assert_ptr_nonnull(w);
	ck_assert_str_eq(w->clientid, ALL_SUBSCRIBERS);
	ck_assert_int_eq(w->qos, 1);
	ck_assert(!w->retain);
	return w;
}

/* Advances the clock by ms and ticks. */
static void later(uint64_t ms)
{
	F.now += ms;
	core_tick(C);
}

/* alice/phone online; bob/phone registered for fcm, then offline. */
static void cast(void)
{
	add_device("alice", "phone");
	add_device("bob", "phone");
	connect_dev("alice/phone");
	connect_dev("bob/phone");
	ck_assert(fbool(reg("bob/phone", "fcm", FCM_TOKEN), "ok"));
	disconnect_dev("bob/phone");
}

static void ack(const char *svc, uint64_t id, const char *to, const char *r)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "id"); cbw_uint(&w, id);
	cbw_text(&w, "to"); cbw_text(&w, to);
	cbw_text(&w, "r"); cbw_text(&w, r);
	ck_assert_int_eq(core_message(C, CONN(60), "gw-1", svc, "chat/push/ack", w.buf, w.len, 1,
	                              false, 5), CORE_ALLOW);
	cbw_free(&w);
}

START_TEST(register_checks)
{
	add_device("bob", "phone");
	connect_dev("bob/phone");
	const pubrec *p = reg("bob/phone", "gcm", "x");
	ck_assert(!fbool(p, "ok"));
	ck_assert_str_eq(ftext(p, "code"), "field");
	p = reg("bob/phone", "fcm", NULL);
	ck_assert_str_eq(ftext(p, "code"), "field");
	p = reg("bob/phone", "apns", "not-hex-at-all-0123");
	ck_assert_str_eq(ftext(p, "code"), "field");
	ck_assert_ptr_nonnull(strstr(ftext(p, "msg"), "hex"));
	p = reg("bob/phone", "fcm", "has space");
	ck_assert_str_eq(ftext(p, "code"), "field");
	char big[4098];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ck_assert(!fbool(reg("bob/phone", "webpush", big), "ok"));
	big[4096] = 0;
	ck_assert(fbool(reg("bob/phone", "webpush", big), "ok"));
	ck_assert(fbool(reg("bob/phone", "apns", "00fF112233445566aabbccddeeff0011"), "ok"));
	ck_assert(fbool(reg("bob/phone", NULL, NULL), "ok")); /* unregister */
	ck_assert(fbool(reg("bob/phone", NULL, NULL), "ok")); /* again: fine */
	/* Unregistered: nothing for an offline device. */
	add_device("alice", "phone");
	connect_dev("alice/phone");
	disconnect_dev("bob/phone");
	size_t m = mark();
	dm("alice/phone", "bob", 1);
	later(1000);
	ck_assert_uint_eq(wakes(m), 0);
}
END_TEST

START_TEST(coalesced_per_interval)
{
	cast();
	size_t m = mark();
	for (uint64_t i = 1; i <= 100; i++)
		dm("alice/phone", "bob", i);
	ck_assert_uint_eq(wakes(m), 0); /* decided on the tick, not on the send path */
	later(0);
	ck_assert_uint_eq(wakes(m), 1);
	const pubrec *w = last_wake(m);
	ck_assert_uint_eq(fnkeys(w), 6); /* k, id, to, platform, token, pending: nothing else */
	ck_assert_str_eq(ftext(w, "k"), "wake");
	ck_assert_str_eq(ftext(w, "to"), "bob/phone");
	ck_assert_str_eq(ftext(w, "platform"), "fcm");
	ck_assert_str_eq(ftext(w, "token"), FCM_TOKEN);
	ck_assert_uint_eq(fuint(w, "pending"), 100);
	ck_assert_ptr_null(memmem(w->p, w->len, "alice", 5));
	ck_assert_ptr_null(memmem(w->p, w->len, "secret", 6));
	/* More within the interval: held back, then one wake-up with the sum. */
	m = mark();
	later(1000);
	dm("alice/phone", "bob", 101);
	dm("alice/phone", "bob", 102);
	later(CFG.push_interval_s * 1000 - 2000);
	ck_assert_uint_eq(wakes(m), 0);
	later(1000);
	ck_assert_uint_eq(wakes(m), 1);
	ck_assert_uint_eq(fuint(last_wake(m), "pending"), 102);
}
END_TEST

START_TEST(online_typing_and_reconnect)
{
	cast();
	/* Typing never wakes anyone. */
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "on"); cbw_bool(&w, true);
	size_t m = mark();
	ck_assert_int_eq(pub("alice/phone", "chat/typing/dm:alice:bob", &w, 0), CORE_ALLOW);
	cbw_free(&w);
	later(1000);
	ck_assert_uint_eq(wakes(m), 0);
	/* Online: delivered live, no wake-up. */
	connect_dev("bob/phone");
	dm("alice/phone", "bob", 1);
	later(1000);
	ck_assert_uint_eq(wakes(m), 0);
	/* Offline again: the count starts over. */
	disconnect_dev("bob/phone");
	dm("alice/phone", "bob", 2);
	later(0);
	ck_assert_uint_eq(wakes(m), 1);
	ck_assert_uint_eq(fuint(last_wake(m), "pending"), 1);
	/* Connecting cancels what was scheduled. */
	dm("alice/phone", "bob", 3);
	connect_dev("bob/phone");
	m = mark();
	later(CFG.push_retry_s * 1000 * 2);
	ck_assert_uint_eq(wakes(m), 0);
}
END_TEST

START_TEST(receipts_wake_the_sender)
{
	cast();
	/* alice/phone registers and goes offline; bob's receipt wakes it. */
	ck_assert(fbool(reg("alice/phone", "apns", "0011223344556677"), "ok"));
	connect_dev("bob/phone");
	dm("alice/phone", "bob", 1);
	disconnect_dev("alice/phone");
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "conv"); cbw_text(&w, "dm:alice:bob");
	cbw_text(&w, "seqs"); cbw_array(&w, 1); cbw_uint(&w, 1);
	cbw_text(&w, "s"); cbw_text(&w, "read");
	size_t m = mark();
	ck_assert_int_eq(pub("bob/phone", "chat/receipt", &w, 1), CORE_ALLOW);
	cbw_free(&w);
	later(0);
	ck_assert_uint_eq(wakes(m), 1);
	ck_assert_str_eq(ftext(last_wake(m), "to"), "alice/phone");
	ck_assert_str_eq(ftext(last_wake(m), "platform"), "apns");
}
END_TEST

START_TEST(resent_until_acknowledged)
{
	cast();
	const pubrec *p = admin("service.add", "name", "pushgw", NULL, NULL);
	ck_assert(fbool(p, "ok"));
	size_t m = mark();
	dm("alice/phone", "bob", 1);
	later(0);
	uint64_t id1 = fuint(last_wake(m), "id");
	/* No acknowledgement: sent again after push_retry, with a new id. */
	m = mark();
	later(CFG.push_retry_s * 1000 - 100);
	ck_assert_uint_eq(wakes(m), 0);
	later(100);
	ck_assert_uint_eq(wakes(m), 1);
	uint64_t id2 = fuint(last_wake(m), "id");
	ck_assert_uint_ne(id1, id2);
	/* A superseded id, or a device the id is not for: ignored. */
	ack("pushgw", id1, "bob/phone", "ok");
	ack("pushgw", id2, "alice/phone", "ok");
	m = mark();
	later(CFG.push_retry_s * 1000);
	ck_assert_uint_eq(wakes(m), 1);
	uint64_t id3 = fuint(last_wake(m), "id");
	ack("pushgw", id3, "bob/phone", "ok");
	m = mark();
	later(CFG.push_retry_s * 1000 * 3);
	ck_assert_uint_eq(wakes(m), 0);
	/* Malformed acknowledgements are logged, not fatal. */
	size_t l = F.nlogs;
	ack("pushgw", id3, "bob/phone", "maybe");
	ck_assert(logged(l, "malformed push acknowledgement", NULL));
	/* "invalid": the token is dropped, for good (also in the store). */
	dm("alice/phone", "bob", 2);
	m = mark();
	later(0);
	ck_assert_uint_eq(wakes(m), 1);
	l = F.nlogs;
	ack("pushgw", fuint(last_wake(m), "id"), "bob/phone", "invalid");
	ck_assert(logged(l, "rejected the token of bob/phone", NULL));
	close_core();
	open_core();
	m = mark();
	dm("alice/phone", "bob", 3);
	later(CFG.push_retry_s * 1000);
	ck_assert_uint_eq(wakes(m), 0);
}
END_TEST

START_TEST(owed_after_restart_and_removal)
{
	cast();
	add_device("carol", "tab");
	connect_dev("carol/tab");
	ck_assert(fbool(reg("carol/tab", "webpush", "https://push.example/sub/1"), "ok"));
	disconnect_dev("carol/tab");
	size_t m = mark();
	dm("alice/phone", "bob", 1);
	dm("alice/phone", "bob", 2);
	dm("alice/phone", "carol", 3);
	/* The broker stops before any tick: the queues still say who is owed. */
	close_core();
	open_core();
	connect_dev("alice/phone");
	later(0);
	ck_assert_uint_eq(wakes(m), 2);
	ck_assert_uint_eq(fuint(last_wake(m), "pending") + fuint(&F.pubs[F.npubs - 2], "pending"), 3);
	/* A device removed while its wake-up is scheduled leaves the heap. */
	dm("alice/phone", "carol", 4);
	ck_assert(fbool(admin("device.remove", "user", "carol", "device", "tab"), "ok"));
	m = mark();
	later(CFG.push_retry_s * 1000 * 2);
	ck_assert_uint_eq(wakes(m), 1); /* bob's resend only */
	ck_assert_str_eq(ftext(last_wake(m), "to"), "bob/phone");
}
END_TEST

/* An apns device registered with mode "alert" gets wake-ups that say so
 * (the gateway sends a visible notification), also after a restart; the
 * default and "background" say nothing (old gateways, old clients). */
START_TEST(alert_mode)
{
	add_device("alice", "phone");
	connect_dev("alice/phone");
	add_device("bob", "phone");
	connect_dev("bob/phone");
	ck_assert_str_eq(ftext(reg_mode("bob/phone", "apns", "00aa11bb22cc33dd", "loud"), "code"), "field");
	ck_assert_str_eq(ftext(reg_mode("bob/phone", "fcm", "tok", "alert"), "code"), "field");
	ck_assert(fbool(reg_mode("bob/phone", "apns", "00aa11bb22cc33dd", "alert"), "ok"));
	disconnect_dev("bob/phone");
	size_t m = mark();
	dm("alice/phone", "bob", 1);
	later(1000);
	ck_assert_uint_eq(wakes(m), 1);
	ck_assert_str_eq(ftext(last_wake(m), "mode"), "alert");
	ck_assert_str_eq(ftext(last_wake(m), "platform"), "apns");
	/* stored: a restart keeps the mode */
	close_core();
	open_core();
	connect_dev("alice/phone");
	m = mark();
	dm("alice/phone", "bob", 2);
	later(CFG.push_interval_s * 1000 + 1000);
	ck_assert_uint_ge(wakes(m), 1);
	ck_assert_str_eq(ftext(last_wake(m), "mode"), "alert");
	/* back to the default */
	connect_dev("bob/phone");
	ck_assert(fbool(reg_mode("bob/phone", "apns", "00aa11bb22cc33dd", "background"), "ok"));
	disconnect_dev("bob/phone");
	m = mark();
	dm("alice/phone", "bob", 3);
	later(CFG.push_interval_s * 1000 + 1000);
	ck_assert_uint_ge(wakes(m), 1);
	ck_assert(!fhas(last_wake(m), "mode"));
}
END_TEST

START_TEST(many_devices)
{
	add_device("alice", "phone");
	connect_dev("alice/phone");
	char addr[8][32], tok[8][32];
	for (int i = 0; i < 8; i++) {
		char u[16];
		snprintf(u, sizeof(u), "u%d", i);
		snprintf(addr[i], sizeof(addr[i]), "u%d/phone", i);
		snprintf(tok[i], sizeof(tok[i]), "tok-%d", i);
		add_device(u, "phone");
		connect_dev(addr[i]);
		ck_assert(fbool(reg(addr[i], "fcm", tok[i]), "ok"));
		disconnect_dev(addr[i]);
	}
	size_t m = mark();
	for (int i = 0; i < 8; i++) {
		char u[16];
		snprintf(u, sizeof(u), "u%d", i);
		dm("alice/phone", u, (uint64_t)i + 1);
		later(10);
	}
	ck_assert_uint_eq(wakes(m), 8);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("push");
	TCase *t = env_tcase("push", setup, teardown);
	tcase_add_test(t, register_checks);
	tcase_add_test(t, coalesced_per_interval);
	tcase_add_test(t, online_typing_and_reconnect);
	tcase_add_test(t, receipts_wake_the_sender);
	tcase_add_test(t, resent_until_acknowledged);
	tcase_add_test(t, owed_after_restart_and_removal);
	tcase_add_test(t, alert_mode);
	tcase_add_test(t, many_devices);
	suite_add_tcase(s, t);
	return s;
}

int main(void) { return run_suite(suite()); }
