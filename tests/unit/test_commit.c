// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_commit.c — group commit (plugin/commit.c over store/commit.c): the
 * held acknowledgements and the publish barrier, driven through core.h with
 * the recording fake core_io and a real store whose commit thread really
 * fsyncs. The fake's wakeup only counts (it runs on the commit thread); a
 * test waits for it and then calls core_wakeup, as the glue's LOOP_WAKEUP
 * callback does, so what is durable from the core's point of view changes
 * only when the test says.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cbor_io.h"
#include "core.h"
#include "events.h"
#include "fake_io.h"
#include "harness.h"
#include "later_store.h"

/* alice/phone and bob/phone, online, on a core with sync writes and group
 * commit (devices added first: the admin's replies are not the subject). */
static void setup(void)
{
	env_setup(FAKE_BROADCASTS_COUNTED);
	register_device("alice", "phone")->conn = CONN(0);
	register_device("bob", "phone")->conn = CONN(1);
	close_core();
	CFG.sync_writes = true;
	open_core();
	ck_assert(core_group_commit(C, true));
	connect_dev("alice/phone");
	connect_dev("bob/phone");
}

static void teardown(void) { env_teardown(); }

static enum core_verdict dm(const char *from, const char *peer, uint64_t cid)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, (const uint8_t *)"hi", 2);
	char topic[128];
	snprintf(topic, sizeof(topic), "chat/dm/%s", peer);
	devrec *r = find_dev(from);
	enum core_verdict v = core_message(C, r->conn, from, from, topic, w.buf, w.len, 1, false, 4);
	cbw_free(&w);
	return v;
}

/* Hands the commit thread's reports to the core (as LOOP_WAKEUP does) until
 * n acks went out. Not "wait for the next wakeup": the thread may have
 * reported before the test looks (it did under valgrind), and core_wakeup
 * is what a spurious or late wakeup calls anyway. 30 s for valgrind. */
static void until_acks(size_t n)
{
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < 30000 && F.nacks < n; i++) {
		core_wakeup(C);
		if (F.nacks < n)
			nanosleep(&ms, NULL);
	}
	ck_assert_msg(F.nacks == n, "%zu of %zu acks after 30 s (wakeups %u)", F.nacks, n,
	              atomic_load(&F.wakeups));
	/* the commit thread did wake the broker loop for them */
	ck_assert_uint_gt(atomic_load(&F.wakeups), 0);
}

START_TEST(ack_held_until_durable_then_events)
{
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", 1), CORE_ALLOW);
	ck_assert(core_ack_later(C, 7, 42));
	/* nothing anyone can see yet: no ack, no sent, no msg */
	ck_assert_uint_eq(F.nacks, 0);
	ck_assert_uint_eq(count_to(m, "alice/phone"), 0);
	ck_assert_uint_eq(count_to(m, "bob/phone"), 0);
	until_acks(1);
	ck_assert_uint_eq(F.acks[0].conn_id, 7);
	ck_assert_uint_eq(F.acks[0].mid, 42);
	ck_assert_uint_eq(F.acks[0].reason, 0);
	ck_assert_uint_eq(F.acks[0].npubs, m); /* the ack before any event */
	ck_assert_str_eq(ftext(pub_to(m, "alice/phone"), "k"), "sent");
	ck_assert_str_eq(ftext(pub_to(m, "bob/phone"), "k"), "msg");
}
END_TEST

/* A send whose store answer comes later: its acknowledgement waits for the
 * answer first (held in its op), then for the fsync of what was written by
 * then; still before its events. */
START_TEST(ack_waits_for_answer_then_fsync)
{
	later_store_install(C);
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", 1), CORE_PENDING);
	ck_assert(core_ack_later(C, 7, 42));
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < 20; i++) {
		core_wakeup(C); /* fsyncs come and go: no answer yet */
		nanosleep(&ms, NULL);
	}
	ck_assert_uint_eq(F.nacks, 0);
	ck_assert_uint_eq(F.npubs, m);
	core_tick(C); /* the answer */
	until_acks(1);
	ck_assert_uint_eq(F.acks[0].conn_id, 7);
	ck_assert_uint_eq(F.acks[0].mid, 42);
	ck_assert_uint_eq(F.acks[0].reason, 0);
	ck_assert_uint_eq(F.acks[0].npubs, m); /* the ack before any event */
	core_wakeup(C);
	ck_assert_str_eq(ftext(pub_to(m, "alice/phone"), "k"), "sent");
	ck_assert_str_eq(ftext(pub_to(m, "bob/phone"), "k"), "msg");
}
END_TEST

START_TEST(nothing_pending_nothing_held)
{
	ck_assert_int_eq(dm("alice/phone", "bob", 1), CORE_ALLOW);
	ck_assert(core_ack_later(C, 1, 1));
	until_acks(1);
	/* everything durable: an ack is not held, a publish goes out at once */
	ck_assert(!core_ack_later(C, 1, 2));
	size_t m = mark();
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 1);
	cbw_text(&w, "on"); cbw_bool(&w, true);
	devrec *a = find_dev("alice/phone");
	core_message(C, a->conn, a->addr, a->addr, "chat/typing/dm:alice:bob", w.buf, w.len, 0, false, 4);
	cbw_free(&w);
	ck_assert_uint_eq(count_to(m, "bob/phone"), 1);
	ck_assert_int_eq(pub_to(m, "bob/phone")->qos, 0);
}
END_TEST

START_TEST(acks_and_events_in_order)
{
	size_t m = mark();
	for (uint16_t i = 1; i <= 5; i++) {
		ck_assert_int_eq(dm("alice/phone", "bob", i), CORE_ALLOW);
		ck_assert(core_ack_later(C, 3, i));
	}
	until_acks(5);
	for (size_t i = 0; i < 5; i++) {
		ck_assert_uint_eq(F.acks[i].mid, i + 1);
		/* each ack before its send's sent event */
		size_t sent_at = 0, seen = 0;
		for (size_t j = m; j < F.npubs; j++)
			if (!strcmp(F.pubs[j].clientid, "alice/phone") && seen++ == i)
				sent_at = j;
		ck_assert_uint_lt(F.acks[i].npubs, sent_at + 1);
		ck_assert_uint_eq(fuint(nth_to(m, "alice/phone", i), "seq"), i + 1);
		ck_assert_uint_eq(fuint(nth_to(m, "bob/phone", i), "seq"), i + 1);
	}
}
END_TEST

START_TEST(held_events_of_a_gone_connection_dropped)
{
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", 1), CORE_ALLOW);
	ck_assert(core_ack_later(C, 1, 1));
	disconnect_dev("bob/phone"); /* its msg is in its queue: the replay has it */
	until_acks(1);
	ck_assert_uint_eq(count_to(m, "bob/phone"), 0);
	ck_assert_str_eq(ftext(pub_to(m, "alice/phone"), "k"), "sent");
}
END_TEST

START_TEST(held_events_count_in_the_window)
{
	close_core();
	CFG.inflight_window = 3;
	open_core();
	ck_assert(core_group_commit(C, true));
	connect_dev("alice/phone");
	connect_dev("bob/phone");
	size_t m = mark();
	for (uint16_t i = 1; i <= 6; i++) {
		ck_assert_int_eq(dm("alice/phone", "bob", i), CORE_ALLOW);
		ck_assert(core_ack_later(C, 1, i));
	}
	until_acks(6);
	/* three held msgs filled bob's window; the rest wait in his queue */
	ck_assert_uint_eq(count_to(m, "bob/phone"), 3);
}
END_TEST

START_TEST(stock_broker_one_fsync_per_write)
{
	close_core();
	open_core();
	size_t l = F.nlogs;
	ck_assert(core_group_commit(C, false));
	ck_assert(logged(l, "one fsync per write", NULL));
	connect_dev("alice/phone");
	connect_dev("bob/phone");
	size_t m = mark();
	ck_assert_int_eq(dm("alice/phone", "bob", 1), CORE_ALLOW);
	ck_assert(!core_ack_later(C, 1, 1));
	ck_assert_uint_eq(count_to(m, "alice/phone"), 1); /* sent at once */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("commit");
	TCase *t = env_tcase("commit", setup, teardown);
	tcase_add_test(t, ack_held_until_durable_then_events);
	tcase_add_test(t, ack_waits_for_answer_then_fsync);
	tcase_add_test(t, nothing_pending_nothing_held);
	tcase_add_test(t, acks_and_events_in_order);
	tcase_add_test(t, held_events_of_a_gone_connection_dropped);
	tcase_add_test(t, held_events_count_in_the_window);
	tcase_add_test(t, stock_broker_one_fsync_per_write);
	suite_add_tcase(s, t);
	return s;
}

int main(void) { return run_suite(suite()); }
