// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_jsstore.c — the pure parts of cluster mode's JetStream backend:
 * the completion FIFO (store/js_fifo.c), alone and under producer threads,
 * the codec (store/js_codec.c): ids into subject tokens and back, the
 * API answers and the KV values decoded, and the node's KV caches and the
 * group record (store/js_cache.c). The backend against a real
 * nats-server cluster: tests/integration/test_js_store.py. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "js_cache.h"
#include "js_codec.h"
#include "js_sess.h"
#include "js_fifo.h"
#include "js_rset.h"

/* ---- the FIFO ---- */

static int wakes;
static void count_wake(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&wakes, 1, __ATOMIC_SEQ_CST);
}

START_TEST(fifo_order_and_one_wake_per_take)
{
	js_fifo f;
	js_batch b = { 0 };
	int data[5];
	wakes = 0;
	ck_assert_int_eq(js_fifo_init(&f, count_wake, NULL), CHAT_OK);
	ck_assert_uint_eq(js_fifo_take(&f, &b), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(js_fifo_push(&f, (uint64_t)i + 10, -i, &data[i]), CHAT_OK);
	/* five appends before the owner took: one wake-up */
	ck_assert_int_eq(wakes, 1);
	ck_assert_uint_eq(js_fifo_take(&f, &b), 5);
	for (int i = 0; i < 5; i++) {
		ck_assert_uint_eq(b.v[i].op, (uint64_t)i + 10);
		ck_assert_int_eq(b.v[i].status, -i);
		ck_assert_ptr_eq(b.v[i].data, &data[i]);
	}
	b.n = 0;
	/* taken: the next append wakes again */
	ck_assert_int_eq(js_fifo_push(&f, 99, 0, NULL), CHAT_OK);
	ck_assert_int_eq(wakes, 2);
	ck_assert_uint_eq(js_fifo_take(&f, &b), 1);
	ck_assert_uint_eq(b.v[0].op, 99);
	b.n = 0;
	ck_assert_uint_eq(js_fifo_take(&f, &b), 0);
	js_batch_free(&b);
	js_fifo_destroy(&f, NULL);
}
END_TEST

static void free_it(void *p)
{
	free(p);
}

START_TEST(fifo_destroy_frees_what_is_left)
{
	js_fifo f;
	ck_assert_int_eq(js_fifo_init(&f, NULL, NULL), CHAT_OK);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(js_fifo_push(&f, (uint64_t)i, 0, malloc(16)), CHAT_OK);
	js_fifo_destroy(&f, free_it); /* valgrind: nothing leaks */
}
END_TEST

/* N producer threads, one consumer (this thread) woken by a condition
 * variable as the broker would be by its loop wake-up: nothing lost,
 * nothing twice, each producer's order kept, and no wake-up missed (the
 * consumer sleeps whenever it found nothing, so a lost notify would hang
 * the test, which Check's timeout turns into a failure). */
#define PRODUCERS 4
#define PER_PRODUCER 20000

static pthread_mutex_t wmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcv = PTHREAD_COND_INITIALIZER;
static int signalled;
static js_fifo sf;

static void wake_cond(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wmu);
	signalled = 1;
	pthread_cond_signal(&wcv);
	pthread_mutex_unlock(&wmu);
}

static void *producer(void *arg)
{
	uint64_t p = (uint64_t)(uintptr_t)arg;
	for (uint64_t i = 0; i < PER_PRODUCER; i++)
		while (js_fifo_push(&sf, p << 32 | i, (int)p, NULL) != CHAT_OK)
			;
	return NULL;
}

START_TEST(fifo_stress_producers_one_consumer)
{
	pthread_t th[PRODUCERS];
	uint64_t next[PRODUCERS] = { 0 };
	size_t total = 0, takes = 0;
	js_batch b = { 0 };
	signalled = 0;
	ck_assert_int_eq(js_fifo_init(&sf, wake_cond, NULL), CHAT_OK);
	for (uintptr_t p = 0; p < PRODUCERS; p++)
		ck_assert_int_eq(pthread_create(&th[p], NULL, producer, (void *)p), 0);
	while (total < (size_t)PRODUCERS * PER_PRODUCER) {
		pthread_mutex_lock(&wmu);
		while (!signalled)
			pthread_cond_wait(&wcv, &wmu);
		signalled = 0;
		pthread_mutex_unlock(&wmu);
		size_t n = js_fifo_take(&sf, &b);
		takes += n > 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t p = b.v[i].op >> 32, seq = b.v[i].op & 0xffffffffu;
			ck_assert_uint_lt(p, PRODUCERS);
			ck_assert_int_eq(b.v[i].status, (int)p);
			ck_assert_msg(seq == next[p], "producer %llu: got %llu, expected %llu", (unsigned long long)p,
			              (unsigned long long)seq, (unsigned long long)next[p]);
			next[p]++;
		}
		total += n;
		b.n = 0;
	}
	for (int p = 0; p < PRODUCERS; p++)
		pthread_join(th[p], NULL);
	ck_assert_uint_eq(js_fifo_take(&sf, &b), 0);
	for (int p = 0; p < PRODUCERS; p++)
		ck_assert_uint_eq(next[p], PER_PRODUCER);
	/* the wake-ups were coalesced: far fewer than the appends */
	ck_assert_uint_lt(sf.notified, sf.pushed);
	ck_assert_uint_eq(sf.pushed, (uint64_t)PRODUCERS * PER_PRODUCER);
	ck_assert_uint_gt(takes, 0);
	js_batch_free(&b);
	js_fifo_destroy(&sf, NULL);
}
END_TEST

/* ---- the codec ---- */

START_TEST(codec_ids_subjects)
{
	char out[256], back[256];
	ck_assert_uint_eq(js_enc_id(out, sizeof(out), "al.ice", 6), 8);
	ck_assert_str_eq(out, "al=2Eice");
	ck_assert_uint_eq(js_dec_id(back, sizeof(back), out, 8), 6);
	ck_assert_str_eq(back, "al.ice");
	ck_assert_uint_eq(js_enc_id(out, sizeof(out), "a b", 3), 0);     /* not an id */
	ck_assert_uint_eq(js_enc_id(out, sizeof(out), "", 0), 0);
	ck_assert_uint_eq(js_enc_id(out, 4, "abcd", 4), 0);             /* no room */
	ck_assert_uint_eq(js_dec_id(back, sizeof(back), "a=2", 3), 0);  /* cut escape */
	ck_assert_uint_eq(js_dec_id(back, sizeof(back), "a=41", 4), 0); /* not ours */
	ck_assert_uint_eq(js_dec_id(back, sizeof(back), "a.b", 3), 0);  /* two tokens */
	ck_assert_uint_eq(js_enc_conv(out, sizeof(out), "dm:a.b:c"), 10);
	ck_assert_str_eq(out, "dm.a=2Eb.c");
	ck_assert_uint_eq(js_dec_conv(back, sizeof(back), out, 10), 8);
	ck_assert_str_eq(back, "dm:a.b:c");
	ck_assert_uint_eq(js_enc_conv(out, sizeof(out), "g:team.x"), 10);
	ck_assert_str_eq(out, "g.team=2Ex");
	ck_assert_uint_eq(js_dec_conv(back, sizeof(back), out, 10), 8);
	ck_assert_str_eq(back, "g:team.x");
	ck_assert_uint_eq(js_enc_conv(out, sizeof(out), "x:y"), 0);
	ck_assert_uint_eq(js_enc_conv(out, sizeof(out), "dm:a"), 0);
	ck_assert_uint_eq(js_dec_conv(back, sizeof(back), "dm.a", 4), 0);
	ck_assert_uint_eq(js_enc_addr(out, sizeof(out), "u.1/phone"), 11);
	ck_assert_str_eq(out, "u=2E1.phone");
	ck_assert_uint_eq(js_enc_addr(out, sizeof(out), "nouser"), 0);
	ck_assert(js_valid_prefix("chat"));
	ck_assert(js_valid_prefix("cell_2-b"));
	ck_assert(!js_valid_prefix(""));
	ck_assert(!js_valid_prefix("a.b"));
	ck_assert(!js_valid_prefix("a>"));
}
END_TEST

START_TEST(codec_cids_numbers)
{
	char out[64];
	store_cid c = { true, 18446744073709551615ull, { 0 }, 0 }, d;
	ck_assert_uint_eq(js_enc_cid(out, sizeof(out), &c), 21);
	ck_assert(js_dec_cid(out, 21, &d));
	ck_assert(d.is_uint && d.u == c.u);
	store_cid b = { false, 0, { 0x00, 0xab, 0xff }, 3 };
	ck_assert_uint_eq(js_enc_cid(out, sizeof(out), &b), 7);
	ck_assert_str_eq(out, "b00abff");
	ck_assert(js_dec_cid(out, 7, &d));
	ck_assert(!d.is_uint && d.len == 3 && !memcmp(d.bytes, b.bytes, 3));
	ck_assert(!js_dec_cid("u", 1, &d));
	ck_assert(!js_dec_cid("u01", 3, &d));                     /* not canonical */
	ck_assert(!js_dec_cid("u18446744073709551616", 21, &d));  /* overflow */
	ck_assert(!js_dec_cid("bABCD", 5, &d));                   /* uppercase, odd */
	ck_assert(!js_dec_cid("b0", 2, &d));
	ck_assert(!js_dec_cid("b000102030405060708090a0b0c0d0e0f10", 35, &d)); /* 17 bytes */
	uint64_t v;
	ck_assert(js_parse_u64("0", 1, &v) && v == 0);
	ck_assert(!js_parse_u64("", 0, &v));
	ck_assert(!js_parse_u64("-1", 2, &v));
	ck_assert(!js_parse_u64(" 1", 2, &v));
	ck_assert(js_subject_last_u64("chat.log.dm.a.b.17", 18, &v) && v == 17);
	ck_assert(!js_subject_last_u64("chat.log.dm.a.b.0", 17, &v));
	ck_assert(!js_subject_last_u64("chat.log.dm.a.b.", 16, &v));
	/* a send's Chat-Rcpts: "U/D:<stream seq>" items */
	const char *rc = "a/d2:41,b/d1:42,b/d2:1043";
	ck_assert(js_rcpts_has(rc, strlen(rc), 41) && js_rcpts_has(rc, strlen(rc), 42) &&
	          js_rcpts_has(rc, strlen(rc), 1043));
	ck_assert(!js_rcpts_has(rc, strlen(rc), 43) && !js_rcpts_has(rc, strlen(rc), 4));
	ck_assert(!js_rcpts_has(":7,a/d1:", 8, 7) && !js_rcpts_has("a:7x", 4, 7) && !js_rcpts_has("", 0, 0) &&
	          !js_rcpts_has("a:07", 4, 7) && js_rcpts_has("a:0", 3, 0));
}
END_TEST

#define S(x) x, sizeof(x) - 1

START_TEST(codec_api_answers)
{
	js_api_answer a;
	ck_assert_int_eq(js_parse_api(S("{\"stream\":\"CHAT_LOG\",\"seq\":12}"), &a), CHAT_OK);
	ck_assert(a.ok && a.seq == 12 && !a.duplicate);
	ck_assert_int_eq(js_parse_api(S("{\"stream\":\"CHAT_LOG\",\"seq\":3,\"duplicate\":true}"), &a), CHAT_OK);
	ck_assert(a.ok && a.seq == 3 && a.duplicate);
	ck_assert_int_eq(js_parse_api(S("{\"type\":\"io.nats.jetstream.api.v1.stream_msg_delete_response\","
	                                "\"success\":true}"), &a), CHAT_OK);
	ck_assert(a.ok && a.success);
	ck_assert_int_eq(js_parse_api(S("{\"error\":{\"code\":400,\"err_code\":10071,"
	                                "\"description\":\"wrong last sequence: 1\"}}"), &a), CHAT_OK);
	ck_assert(!a.ok && a.code == 400 && a.err_code == 10071);
	ck_assert_str_eq(a.desc, "wrong last sequence: 1");
	ck_assert_int_eq(js_parse_api(S("{\"error\":{\"code\":503}}"), &a), CHAT_OK);
	ck_assert(!a.ok && a.code == 503 && a.err_code == 0);
	/* not an answer: refused, never half-read */
	ck_assert_int_eq(js_parse_api(S(""), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("[]"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"seq\":-1}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"seq\":1.5}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"seq\":\"7\"}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"seq\":1,\"duplicate\":1}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"error\":\"x\"}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"error\":{\"err_code\":10071}}"), &a), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_api(S("{\"seq\":1"), &a), CHAT_ECORRUPT);
}
END_TEST

static char hdr_seen[512];
static int add_hdr(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	(void)arg;
	size_t o = strlen(hdr_seen);
	snprintf(hdr_seen + o, sizeof(hdr_seen) - o, "[%.*s=%.*s]", (int)kl, k, (int)vl, v);
	return CHAT_OK;
}

START_TEST(codec_leader_reads)
{
	js_api_answer a;
	char subj[64];
	uint64_t seq;
	uint8_t *h, *d;
	size_t hl, dl;
	ck_assert_int_eq(js_parse_msg_get(S("{\"message\":{\"subject\":\"chat.log.g.t.3\",\"seq\":42,"
	                                    "\"hdrs\":\"TkFUUy8xLjANCkNoYXQtRnJvbTogYS9kMQ0KDQo=\","
	                                    "\"data\":\"aGk=\",\"time\":\"x\"}}"),
	                                  &a, subj, sizeof(subj), &seq, &h, &hl, &d, &dl),
	                 CHAT_OK);
	ck_assert(a.ok && seq == 42);
	ck_assert_str_eq(subj, "chat.log.g.t.3");
	ck_assert(dl == 2 && !memcmp(d, "hi", 2));
	hdr_seen[0] = '\0';
	ck_assert_int_eq(js_parse_hdrs(h, hl, add_hdr, NULL), CHAT_OK);
	ck_assert_str_eq(hdr_seen, "[Chat-From=a/d1]");
	free(h);
	free(d);
	/* no message: an answer, not a failure */
	ck_assert_int_eq(js_parse_msg_get(S("{\"error\":{\"code\":404,\"err_code\":10037}}"), &a, subj,
	                                  sizeof(subj), &seq, &h, &hl, &d, &dl),
	                 CHAT_OK);
	ck_assert(!a.ok && a.err_code == 10037 && !h && !d);
	/* refused: bad base64, no seq, a subject too long for the buffer */
	ck_assert_int_eq(js_parse_msg_get(S("{\"message\":{\"subject\":\"s\",\"seq\":1,\"data\":\"!!\"}}"), &a,
	                                  subj, sizeof(subj), &seq, &h, &hl, &d, &dl),
	                 CHAT_ECORRUPT);
	ck_assert(!h && !d);
	ck_assert_int_eq(js_parse_msg_get(S("{\"message\":{\"subject\":\"s\"}}"), &a, subj, sizeof(subj), &seq,
	                                  &h, &hl, &d, &dl),
	                 CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_msg_get(S("{\"message\":{\"subject\":\"0123456789\",\"seq\":1}}"), &a, subj, 8,
	                                  &seq, &h, &hl, &d, &dl),
	                 CHAT_ECORRUPT);
	/* header blocks */
	hdr_seen[0] = '\0';
	ck_assert_int_eq(js_parse_hdrs((const uint8_t *)S("NATS/1.0\r\nA: 1\r\nB:two words\r\n\r\n"), add_hdr, NULL),
	                 CHAT_OK);
	ck_assert_str_eq(hdr_seen, "[A=1][B=two words]");
	ck_assert_int_eq(js_parse_hdrs((const uint8_t *)S("NATS/1.0\r\nA: 1\r\n"), add_hdr, NULL), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_hdrs((const uint8_t *)S("NATS/1.0\r\nA 1\r\n\r\n"), add_hdr, NULL), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_hdrs((const uint8_t *)S("NATS/1.0\r\n: 1\r\n\r\n"), add_hdr, NULL), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_hdrs((const uint8_t *)S("HTTP/1.1\r\n\r\n"), add_hdr, NULL), CHAT_ECORRUPT);
	ck_assert_int_eq(js_parse_hdrs((const uint8_t *)S("NATS/1.0\r\n\r\nX"), add_hdr, NULL), CHAT_ECORRUPT);
}
END_TEST

START_TEST(codec_values)
{
	uint8_t v[64], h[STORE_HASH_LEN], out[STORE_HASH_LEN];
	enum store_role role;
	memset(h, 7, sizeof(h));
	size_t n = js_cred_encode(v, sizeof(v), h, 1234, STORE_ROLE_SERVICE, false);
	ck_assert_uint_eq(n, 41);
	ck_assert_int_eq(js_cred_decode(v, n, out, &role), CHAT_OK);
	ck_assert(!memcmp(out, h, sizeof(h)) && role == STORE_ROLE_SERVICE);
	n = js_cred_encode(v, sizeof(v), h, 1234, STORE_ROLE_PROVISIONER, true);
	ck_assert_uint_eq(n, 42);
	ck_assert_int_eq(js_cred_decode(v, n, out, &role), CHAT_OK);
	ck_assert(role == STORE_ROLE_PROVISIONER);
	v[41] = 9;
	ck_assert_int_eq(js_cred_decode(v, n, out, &role), CHAT_ECORRUPT);
	ck_assert_int_eq(js_cred_decode(v, 40, out, &role), CHAT_ECORRUPT);
	v[0] = 2;
	ck_assert_int_eq(js_cred_decode(v, 41, out, &role), CHAT_ECORRUPT);

	store_prefs p = { false, STORE_PRESENCE_NOBODY }, q;
	ck_assert_uint_eq(js_prefs_encode(v, &p), 3);
	ck_assert_int_eq(js_prefs_decode(v, 3, &q), CHAT_OK);
	ck_assert(!q.read_receipts && q.presence == STORE_PRESENCE_NOBODY);
	v[2] = 3;
	ck_assert_int_eq(js_prefs_decode(v, 3, &q), CHAT_ECORRUPT);

	store_push ps = { STORE_PUSH_WEBPUSH, "abc", 3, false }, pq;
	n = js_push_encode(v, sizeof(v), &ps);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(js_push_decode(v, n, &pq), CHAT_OK);
	ck_assert(pq.platform == STORE_PUSH_WEBPUSH && pq.token_len == 3 && !memcmp(pq.token, "abc", 3));
	ck_assert_int_eq(js_push_decode(v, 3, &pq), CHAT_ECORRUPT); /* no token */
	v[1] = 0;
	ck_assert_int_eq(js_push_decode(v, n, &pq), CHAT_ECORRUPT);

	js_claim c = { "dm:a:b", 17, 99, 0xfeedfacecafebeefull, "n1" }, d;
	n = js_claim_encode(v, sizeof(v), &c);
	ck_assert_uint_gt(n, 0);
	ck_assert_int_eq(js_claim_decode(v, n, &d), CHAT_OK);
	ck_assert_str_eq(d.conv, "dm:a:b");
	ck_assert_str_eq(d.node, "n1");
	ck_assert(d.seq0 == 17 && d.ts == 99 && d.nonce == c.nonce);
	ck_assert_int_eq(js_claim_decode(v, n - 1, &d), CHAT_ECORRUPT);
	v[25] = 200; /* a conversation longer than the value */
	ck_assert_int_eq(js_claim_decode(v, n, &d), CHAT_ECORRUPT);
}
END_TEST

/* ---- the node's KV caches and the group record (store/js_cache.c) ---- */

static const uint8_t *V(const char *s)
{
	return (const uint8_t *)s;
}

START_TEST(cache_revisions_and_own_writes)
{
	js_kv_cache c;
	ck_assert_int_eq(js_kv_init(&c, false, false), CHAT_OK);
	/* the watcher's load, then this node's write acknowledged at rev 9 */
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 3, false, V("old"), 3, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 9, false, V("mine"), 4, false), 1);
	/* the watcher catching up delivers rev 5, then rev 9 itself: neither goes back */
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 5, false, V("mid"), 3, true), 0);
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 9, false, V("mine"), 4, true), 0);
	const js_kv_entry *e = js_kv_find(&c, "dev.a.p", 7);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->len, 4);
	ck_assert_int_eq(memcmp(e->val, "mine", 4), 0);
	ck_assert_uint_eq(c.pos, 9);
	/* a local delete: a tombstone until the watcher delivers it; an older
	 * put delivered meanwhile does not bring the record back */
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 12, true, NULL, 0, false), 1);
	ck_assert_ptr_null(js_kv_find(&c, "dev.a.p", 7));
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 10, false, V("late"), 4, true), 0);
	ck_assert_ptr_null(js_kv_find(&c, "dev.a.p", 7));
	ck_assert_uint_eq(c.n, 1); /* the tombstone */
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 12, true, NULL, 0, true), 1);
	ck_assert_uint_eq(c.n, 0);
	/* a re-add after it: a new value at a higher revision */
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 15, false, V("new"), 3, true), 1);
	ck_assert_int_eq(memcmp(js_kv_find(&c, "dev.a.p", 7)->val, "new", 3), 0);
	/* a watcher's delete of a key never seen: nothing; of a live key: gone */
	ck_assert_int_eq(js_kv_apply(&c, "dev.b.p", 7, 16, true, NULL, 0, true), 1);
	ck_assert_ptr_null(js_kv_find(&c, "dev.b.p", 7));
	ck_assert_int_eq(js_kv_apply(&c, "dev.a.p", 7, 17, true, NULL, 0, true), 1);
	ck_assert_ptr_null(js_kv_find(&c, "dev.a.p", 7));
	ck_assert_uint_eq(c.n, 0);
	/* this node's put acknowledged at rev 20 reaches the owner after the
	 * watcher delivered rev 20 and another node's delete at rev 21: the
	 * acknowledgement is overtaken, the record stays removed */
	ck_assert_int_eq(js_kv_apply(&c, "dev.c.p", 7, 20, false, V("v"), 1, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "dev.c.p", 7, 21, true, NULL, 0, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "dev.c.p", 7, 20, false, V("v"), 1, false), 0);
	ck_assert_ptr_null(js_kv_find(&c, "dev.c.p", 7));
	/* an empty value is a value (the contacts index stores "") */
	ck_assert_int_eq(js_kv_apply(&c, "x", 1, 22, false, V(""), 0, true), 1);
	ck_assert_ptr_nonnull(js_kv_find(&c, "x", 1));
	js_kv_free(&c);
}
END_TEST

static int collect(void *arg, const char *rest, size_t len)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%.*s", n ? "," : "", (int)len, rest);
	return strcmp(out, "stop") ? CHAT_OK : CHAT_STOP;
}

static int count_entry(void *arg, const js_kv_entry *e)
{
	ck_assert(!e->deleted);
	(*(size_t *)arg)++;
	return CHAT_OK;
}

static int stop_at_3(void *arg, const js_kv_entry *e)
{
	(void)e;
	return ++*(size_t *)arg == 3 ? CHAT_STOP : CHAT_OK;
}

START_TEST(cache_owner_index_grows)
{
	js_kv_cache c;
	char key[64], out[256];
	ck_assert_int_eq(js_kv_init(&c, true, false), CHAT_OK);
	/* 5,000 users with one contact each, then "al" with three: the
	 * tables grow many times, the owner index stays exact */
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "u%d.v%d", i, i);
		ck_assert_int_eq(js_kv_apply(&c, key, (size_t)n, (uint64_t)i + 1, false, V(""), 0, true), 1);
	}
	ck_assert_int_eq(js_kv_apply(&c, "al.bo", 5, 6000, false, V(""), 0, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "al.cy", 5, 6001, false, V(""), 0, false), 1);
	ck_assert_int_eq(js_kv_apply(&c, "al.di", 5, 6002, false, V(""), 0, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "ali.x", 5, 6003, false, V(""), 0, true), 1); /* another owner */
	ck_assert_int_eq(js_kv_apply(&c, "al.cy", 5, 6004, true, NULL, 0, false), 1);  /* a tombstone */
	ck_assert_uint_gt(c.cap, 4096);
	out[0] = 0;
	ck_assert_int_eq(js_kv_each_owner(&c, "al", 2, collect, out), CHAT_OK);
	ck_assert(!strcmp(out, "bo,di") || !strcmp(out, "di,bo"));
	out[0] = 0;
	ck_assert_int_eq(js_kv_each_owner(&c, "u4321", 5, collect, out), CHAT_OK);
	ck_assert_str_eq(out, "v4321");
	out[0] = 0;
	ck_assert_int_eq(js_kv_each_owner(&c, "nobody", 6, collect, out), CHAT_OK);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(js_kv_count(&c), 5003);
	size_t walked = 0;
	ck_assert_int_eq(js_kv_each(&c, count_entry, &walked), CHAT_OK);
	ck_assert_uint_eq(walked, 5003); /* the tombstone is not walked */
	walked = 0;
	ck_assert_int_eq(js_kv_each(&c, stop_at_3, &walked), CHAT_STOP);
	ck_assert_uint_eq(walked, 3);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "u%d.v%d", i, i);
		ck_assert_int_eq(js_kv_apply(&c, key, (size_t)n, (uint64_t)7000 + i, true, NULL, 0, true), 1);
	}
	ck_assert_uint_eq(js_kv_count(&c), 3);
	js_kv_free(&c);
}
END_TEST

START_TEST(group_record)
{
	jstore_group_member m[3] = { { "alice", true }, { "bob", false }, { "c.d-e_f", false } };
	jstore_group g = { .seq = 0x0102030405060708ULL, .name = "Team \xc3\xa9", .name_len = 7, .n = 3,
	                   .members = m };
	uint8_t buf[256];
	size_t n = jstore_group_encode(buf, sizeof(buf), &g);
	ck_assert_uint_eq(n, jstore_group_size(&g));
	ck_assert_uint_eq(n, 1 + 8 + 1 + 7 + 4 + (2 + 5) + (2 + 3) + (2 + 7));
	ck_assert_int_eq(buf[0], 1);
	ck_assert_int_eq(buf[1], 1);
	ck_assert_int_eq(buf[8], 8);
	jstore_group d;
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_OK);
	ck_assert_uint_eq(d.seq, g.seq);
	ck_assert_uint_eq(d.name_len, 7);
	ck_assert_str_eq(d.name, "Team \xc3\xa9");
	ck_assert_uint_eq(d.n, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(d.members[i].user, m[i].user); /* join order kept */
		ck_assert_int_eq(d.members[i].admin, m[i].admin);
	}
	jstore_group_free(&d);
	/* every cut, a byte more, a bad version, a flag beyond admin: refused */
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(jstore_group_decode(buf, k, &d), CHAT_ECORRUPT);
	buf[n] = 0;
	ck_assert_int_eq(jstore_group_decode(buf, n + 1, &d), CHAT_ECORRUPT);
	buf[0] = 2;
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_ECORRUPT);
	buf[0] = 1;
	buf[21] = 2; /* the first member's flags */
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_ECORRUPT);
	buf[21] = 1;
	buf[23] = '/'; /* not an id */
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_ECORRUPT);
	buf[23] = 'a';
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_OK);
	jstore_group_free(&d);
	/* a member count beyond what the bytes can hold */
	buf[17] = 0x7f;
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_ECORRUPT);
	/* what encode refuses: a repeated member, a bad id, a NUL in the name */
	snprintf(m[2].user, sizeof(m[2].user), "alice");
	ck_assert_uint_eq(jstore_group_size(&g), 0);
	ck_assert_uint_eq(jstore_group_encode(buf, sizeof(buf), &g), 0);
	snprintf(m[2].user, sizeof(m[2].user), "a b");
	ck_assert_uint_eq(jstore_group_size(&g), 0);
	snprintf(m[2].user, sizeof(m[2].user), "carl");
	g.name[2] = 0;
	ck_assert_uint_eq(jstore_group_size(&g), 0);
	g.name[2] = 'a';
	ck_assert_uint_gt(jstore_group_size(&g), 0);
	ck_assert_uint_eq(jstore_group_encode(buf, 10, &g), 0); /* too small */
	/* an empty group is a record */
	jstore_group e = { .seq = 1 };
	n = jstore_group_encode(buf, sizeof(buf), &e);
	ck_assert_uint_eq(n, 14);
	ck_assert_int_eq(jstore_group_decode(buf, n, &d), CHAT_OK);
	ck_assert_uint_eq(d.n, 0);
	jstore_group_free(&d);
}
END_TEST

START_TEST(cache_groups_keep_highest_event)
{
	js_kv_cache c;
	jstore_group_member m[1] = { { "alice", true } };
	jstore_group g = { .seq = 7, .name = "t", .name_len = 1, .n = 1, .members = m };
	uint8_t r7[64], r6[64], r8[64];
	size_t n7 = jstore_group_encode(r7, sizeof(r7), &g);
	g.seq = 6;
	size_t n6 = jstore_group_encode(r6, sizeof(r6), &g);
	g.seq = 8;
	size_t n8 = jstore_group_encode(r8, sizeof(r8), &g);
	ck_assert_int_eq(js_kv_init(&c, false, true), CHAT_OK);
	/* the puts of events 7 and 6 landed in that order (revs 2, 3): 7 stays */
	ck_assert_int_eq(js_kv_apply(&c, "g", 1, 2, false, r7, n7, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "g", 1, 3, false, r6, n6, true), 0);
	jstore_group d;
	const js_kv_entry *e = js_kv_find(&c, "g", 1);
	ck_assert_int_eq(jstore_group_decode(e->val, e->len, &d), CHAT_OK);
	ck_assert_uint_eq(d.seq, 7);
	jstore_group_free(&d);
	ck_assert_int_eq(js_kv_apply(&c, "g", 1, 4, false, r8, n8, true), 1);
	e = js_kv_find(&c, "g", 1);
	ck_assert_int_eq(jstore_group_decode(e->val, e->len, &d), CHAT_OK);
	ck_assert_uint_eq(d.seq, 8);
	jstore_group_free(&d);
	/* this node's own put of event 9 acknowledged at rev 12 after the
	 * watcher's copy of another node's event 10 at rev 11: 10 stays;
	 * and the other order: event 12 (rev 13) seen before its own 11 (rev 14) */
	g.seq = 10;
	uint8_t r10[64], r9[64], r11[64], r12[64];
	size_t n10 = jstore_group_encode(r10, sizeof(r10), &g);
	g.seq = 9;
	size_t n9 = jstore_group_encode(r9, sizeof(r9), &g);
	g.seq = 11;
	size_t n11 = jstore_group_encode(r11, sizeof(r11), &g);
	g.seq = 12;
	size_t n12 = jstore_group_encode(r12, sizeof(r12), &g);
	ck_assert_int_eq(js_kv_apply(&c, "h", 1, 11, false, r10, n10, true), 1);
	ck_assert_int_eq(js_kv_apply(&c, "h", 1, 12, false, r9, n9, false), 0);
	ck_assert_int_eq(js_kv_apply(&c, "h", 1, 12, false, r9, n9, true), 0);
	/* a higher event at a lower revision (own ack late, the watcher first) wins */
	ck_assert_int_eq(js_kv_apply(&c, "h", 1, 10, false, r12, n12, false), 1);
	ck_assert_int_eq(js_kv_apply(&c, "h", 1, 14, false, r11, n11, true), 0);
	e = js_kv_find(&c, "h", 1);
	ck_assert_int_eq(jstore_group_decode(e->val, e->len, &d), CHAT_OK);
	ck_assert_uint_eq(d.seq, 12);
	jstore_group_free(&d);
	/* a group deleted: gone, whatever its event */
	ck_assert_int_eq(js_kv_apply(&c, "g", 1, 5, true, NULL, 0, true), 1);
	ck_assert_ptr_null(js_kv_find(&c, "g", 1));
	js_kv_free(&c);
}
END_TEST

START_TEST(sess_gap_tracker)
{
	js_gap g = { 0 };
	uint64_t f = 0, l = 0;
	/* the first from a sender: 1 is next, a later first number is a gap */
	ck_assert_int_eq(js_gap_check(&g, 7, 1, &f, &l), JS_GAP_NEXT);
	ck_assert_int_eq(js_gap_check(&g, 7, 2, &f, &l), JS_GAP_NEXT);
	ck_assert_int_eq(js_gap_check(&g, 7, 3, &f, &l), JS_GAP_NEXT);
	ck_assert_int_eq(js_gap_check(&g, 7, 5, &f, &l), JS_GAP_MISSING); /* 4 lost */
	ck_assert(f == 4 && l == 4);
	ck_assert_int_eq(js_gap_check(&g, 7, 4, &f, &l), JS_GAP_OLD);     /* late: dropped */
	ck_assert_int_eq(js_gap_check(&g, 7, 5, &f, &l), JS_GAP_OLD);     /* twice: dropped */
	ck_assert_int_eq(js_gap_check(&g, 7, 0, &f, &l), JS_GAP_OLD);
	ck_assert_int_eq(js_gap_check(&g, 7, 9, &f, &l), JS_GAP_MISSING);
	ck_assert(f == 6 && l == 8);
	/* the sender restarted (a new epoch): its numbers start again */
	ck_assert_int_eq(js_gap_check(&g, 8, 1, &f, &l), JS_GAP_NEXT);
	js_gap h = { 0 };
	ck_assert_int_eq(js_gap_check(&h, 3, 4, &f, &l), JS_GAP_MISSING);
	ck_assert(f == 1 && l == 3);
	ck_assert_int_eq(js_gap_check(&g, 9, UINT64_MAX, &f, &l), JS_GAP_MISSING);
	ck_assert(f == 1 && l == UINT64_MAX - 1);
	ck_assert_int_eq(js_gap_check(&g, 9, UINT64_MAX, &f, &l), JS_GAP_OLD);
}
END_TEST

START_TEST(sess_slots_and_keys)
{
	ck_assert_uint_eq(js_slot_of(0, 10000), 0);
	ck_assert_uint_eq(js_slot_of(9999, 10000), 0);
	ck_assert_uint_eq(js_slot_of(10000, 10000), 1);
	ck_assert_uint_eq(js_slot_of(1765152000123ull, 10000), 176515200ull);
	ck_assert_uint_eq(js_slot_left_ms(1765152000123ull, 10000), 9877);
	ck_assert_uint_eq(js_slot_left_ms(20000, 10000), 10000);
	ck_assert_uint_eq(js_slot_left_ms(20999, 1000), 1);
	char t[128];
	ck_assert_uint_gt(js_conn_token(t, sizeof(t), "node.1", 42), 0);
	ck_assert_str_eq(t, "node=2E1_42");
	ck_assert_uint_eq(js_conn_token(t, sizeof(t), "bad:node", 1), 0);
	ck_assert_uint_eq(js_conn_token(t, 5, "node", 12345), 0);
}
END_TEST

START_TEST(sess_values)
{
	uint8_t v[128];
	char node[JS_NODE_MAX + 1];
	uint64_t since = 0, ts = 0;
	size_t n = js_sess_encode(v, sizeof(v), "n1", 1765152000123ull);
	ck_assert_uint_eq(n, 12);
	ck_assert_int_eq(js_sess_decode(v, n, node, &since), CHAT_OK);
	ck_assert_str_eq(node, "n1");
	ck_assert(since == 1765152000123ull);
	ck_assert_int_eq(js_sess_decode(v, n - 1, node, &since), CHAT_ECORRUPT);
	v[10] = ':';
	ck_assert_int_eq(js_sess_decode(v, n, node, &since), CHAT_ECORRUPT);
	ck_assert_uint_eq(js_sess_encode(v, sizeof(v), "", 1), 0);
	ck_assert_uint_eq(js_sess_encode(v, 5, "n1", 1), 0);
	n = js_hb_encode(v, 99);
	ck_assert_int_eq(js_hb_decode(v, n, &ts), CHAT_OK);
	ck_assert(ts == 99);
	ck_assert_int_eq(js_hb_decode(v, n - 1, &ts), CHAT_ECORRUPT);
	v[0] = 2;
	ck_assert_int_eq(js_hb_decode(v, n, &ts), CHAT_ECORRUPT);
}
END_TEST

START_TEST(sess_live_bodies)
{
	jstore_live_dev d[2] = { { "alice/phone", 7 }, { "bob/d.1", UINT64_MAX } }, *out = NULL;
	uint8_t b[256];
	const uint8_t *bytes = NULL;
	size_t n = 0, bl = 0;
	size_t len = js_live_encode(b, sizeof(b), d, 2, (const uint8_t *)"hello", 5);
	ck_assert_uint_eq(len, js_live_size(d, 2, 5));
	ck_assert_int_eq(js_live_decode(b, len, &out, &n, &bytes, &bl), CHAT_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(out[0].addr, "alice/phone");
	ck_assert_str_eq(out[1].addr, "bob/d.1");
	ck_assert(out[0].qseq == 7 && out[1].qseq == UINT64_MAX);
	ck_assert(bl == 5 && !memcmp(bytes, "hello", 5));
	free(out);
	/* no bytes at all is an event too */
	len = js_live_encode(b, sizeof(b), d, 1, NULL, 0);
	ck_assert_int_eq(js_live_decode(b, len, &out, &n, &bytes, &bl), CHAT_OK);
	ck_assert(n == 1 && bl == 0);
	free(out);
	/* cut inside a device, a count the body cannot hold, none, a bad address */
	ck_assert_int_eq(js_live_decode(b, len - 1, &out, &n, &bytes, &bl), CHAT_ECORRUPT);
	ck_assert_ptr_null(out);
	uint8_t big[2] = { 0xff, 0xff };
	ck_assert_int_eq(js_live_decode(big, 2, &out, &n, &bytes, &bl), CHAT_ECORRUPT);
	b[1] = 0;
	ck_assert_int_eq(js_live_decode(b, len, &out, &n, &bytes, &bl), CHAT_ECORRUPT);
	b[1] = 1;
	b[3] = '/'; /* "a/ice/phone"? no: "//ice/phone"-like, not U/D */
	b[4] = '/';
	ck_assert_int_eq(js_live_decode(b, len, &out, &n, &bytes, &bl), CHAT_ECORRUPT);
	jstore_live_dev bad = { "nodevice", 1 };
	ck_assert_uint_eq(js_live_encode(b, sizeof(b), &bad, 1, NULL, 0), 0);
	ck_assert_uint_eq(js_live_encode(b, sizeof(b), d, 0, NULL, 0), 0);
	ck_assert_uint_eq(js_live_encode(b, 10, d, 1, NULL, 0), 0);
}
END_TEST

/* ---- the queue side's pure parts (store/js_rset.c) ---- */

START_TEST(rset_norm_add_minus)
{
	jstore_range r[] = { { 9, 12 }, { 1, 3 }, { 4, 5 }, { 0, 7 }, { 8, 6 }, { 11, 20 }, { 30, 30 } };
	size_t n = js_rset_norm(r, sizeof(r) / sizeof(r[0]));
	/* 1-3 and 4-5 adjacent: one; 9-12 and 11-20 overlap: one; 0-7 and 8-6 dropped */
	ck_assert_uint_eq(n, 3);
	ck_assert(r[0].lo == 1 && r[0].hi == 5 && r[1].lo == 9 && r[1].hi == 20 && r[2].lo == 30 && r[2].hi == 30);
	ck_assert_uint_eq(js_rset_count(r, n), 5 + 12 + 1);
	js_rset s = { 0 }, d = { 0 };
	jstore_range a[] = { { 3, 10 } }, b[] = { { 50, UINT64_MAX } };
	ck_assert_int_eq(js_rset_add(&s, a, 1), CHAT_OK);
	ck_assert_int_eq(js_rset_add(&s, b, 1), CHAT_OK);
	ck_assert(js_rset_has(&s, 3) && js_rset_has(&s, 10) && !js_rset_has(&s, 11) && !js_rset_has(&s, 2));
	ck_assert(js_rset_has(&s, UINT64_MAX) && js_rset_has(&s, 50) && !js_rset_has(&s, 49));
	/* {1-5, 9-20, 30} minus {3-10, 50-max} = {1-2, 11-20, 30} */
	ck_assert_int_eq(js_rset_minus(&d, r, n, &s), CHAT_OK);
	ck_assert_uint_eq(d.n, 3);
	ck_assert(d.v[0].lo == 1 && d.v[0].hi == 2 && d.v[1].lo == 11 && d.v[1].hi == 20 && d.v[2].lo == 30);
	/* a range split in three by two holes */
	jstore_range wide[] = { { 1, 100 } }, holes[] = { { 10, 19 }, { 50, 59 } };
	js_rset h = { 0 };
	ck_assert_int_eq(js_rset_add(&h, holes, 2), CHAT_OK);
	ck_assert_int_eq(js_rset_minus(&d, wide, 1, &h), CHAT_OK);
	ck_assert_uint_eq(d.n, 3);
	ck_assert(d.v[0].hi == 9 && d.v[1].lo == 20 && d.v[1].hi == 49 && d.v[2].lo == 60 && d.v[2].hi == 100);
	/* covered whole: nothing left */
	ck_assert_int_eq(js_rset_minus(&d, holes, 2, &h), CHAT_OK);
	ck_assert_uint_eq(d.n, 0);
	/* adjacent at the top of the range */
	jstore_range top[] = { { UINT64_MAX - 1, UINT64_MAX }, { 5, UINT64_MAX - 2 } };
	ck_assert_uint_eq(js_rset_norm(top, 2), 1);
	ck_assert(top[0].lo == 5 && top[0].hi == UINT64_MAX);
	ck_assert_uint_eq(js_rset_count(top, 1), UINT64_MAX - 4);
	js_rset_free(&s);
	js_rset_free(&d);
	js_rset_free(&h);
}
END_TEST

START_TEST(rcpt_payload)
{
	jstore_range r[] = { { 1, 4 }, { 9, 9 } }, back[JS_RCPT_RANGES_MAX];
	uint8_t v[64];
	size_t n = js_rcpt_encode(v, sizeof(v), 2, r, 2), k = 0;
	int st = 0;
	ck_assert_uint_eq(n, 4 + 32);
	ck_assert(v[0] == 1 && v[1] == 2 && v[2] == 0 && v[3] == 2);
	ck_assert_int_eq(js_rcpt_decode(v, n, &st, back, &k), CHAT_OK);
	ck_assert(st == 2 && k == 2 && back[0].lo == 1 && back[0].hi == 4 && back[1].lo == 9 && back[1].hi == 9);
	ck_assert_int_eq(js_rcpt_decode(v, n - 1, &st, back, &k), CHAT_ECORRUPT); /* cut */
	v[1] = 3;
	ck_assert_int_eq(js_rcpt_decode(v, n, &st, back, &k), CHAT_ECORRUPT); /* no such state */
	v[1] = 1;
	v[4 + 16 + 7] = 5; /* the second range starts at 5: adjacent to 1-4, not canonical */
	ck_assert_int_eq(js_rcpt_decode(v, n, &st, back, &k), CHAT_ECORRUPT);
	v[0] = 2;
	ck_assert_int_eq(js_rcpt_decode(v, n, &st, back, &k), CHAT_ECORRUPT); /* version */
	/* the encoder refuses what is not canonical, a bad state, no room */
	jstore_range bad[] = { { 4, 2 } }, unsorted[] = { { 9, 9 }, { 1, 4 } };
	ck_assert_uint_eq(js_rcpt_encode(v, sizeof(v), 1, bad, 1), 0);
	ck_assert_uint_eq(js_rcpt_encode(v, sizeof(v), 1, unsorted, 2), 0);
	ck_assert_uint_eq(js_rcpt_encode(v, sizeof(v), 0, r, 2), 0);
	ck_assert_uint_eq(js_rcpt_encode(v, 20, 1, r, 2), 0);
	ck_assert_uint_eq(js_rcpt_encode(v, sizeof(v), 1, r, 0), 0);
}
END_TEST

START_TEST(qpos_text)
{
	jstore_qpos p = { 0 }, q;
	char s[1024];
	p.q = 120;
	p.e = 7;
	size_t n = js_qpos_encode(s, sizeof(s), &p);
	ck_assert_str_eq(s, "120.7");
	ck_assert_int_eq(js_qpos_decode(s, n, &q), CHAT_OK);
	ck_assert(q.q == 120 && q.e == 7 && q.nheld == 0);
	p.nheld = 2;
	p.held[0] = 3;
	p.held[1] = 99;
	n = js_qpos_encode(s, sizeof(s), &p);
	ck_assert_str_eq(s, "120.7.3.99");
	ck_assert_int_eq(js_qpos_decode(s, n, &q), CHAT_OK);
	ck_assert(q.nheld == 2 && q.held[0] == 3 && q.held[1] == 99);
	ck_assert_uint_eq(js_qpos_encode(s, 6, &p), 0); /* no room */
	const char *bad[] = { "", "120", "120.", ".7", "120.7.99.3", "120.7.3.3", "120.7.121", "120.7.0",
	                      "12a.7", "-1.7", "120.7.", "99999999999999999999999.1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(js_qpos_decode(bad[i], strlen(bad[i]), &q) == CHAT_EINVAL, "%s", bad[i]);
	/* JSTORE_QHELD_MAX held is the most */
	char *w = s;
	w += sprintf(w, "1000.0");
	for (int i = 1; i <= JSTORE_QHELD_MAX + 1; i++)
		w += sprintf(w, ".%d", i);
	ck_assert_int_eq(js_qpos_decode(s, strlen(s), &q), CHAT_EINVAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("jsstore");
	TCase *t = tcase_create("fifo");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, fifo_order_and_one_wake_per_take);
	tcase_add_test(t, fifo_destroy_frees_what_is_left);
	tcase_add_test(t, fifo_stress_producers_one_consumer);
	suite_add_tcase(s, t);
	t = tcase_create("codec");
	tcase_add_test(t, codec_ids_subjects);
	tcase_add_test(t, codec_cids_numbers);
	tcase_add_test(t, codec_api_answers);
	tcase_add_test(t, codec_values);
	tcase_add_test(t, codec_leader_reads);
	suite_add_tcase(s, t);
	t = tcase_create("cache");
	tcase_add_test(t, cache_revisions_and_own_writes);
	tcase_add_test(t, cache_owner_index_grows);
	tcase_add_test(t, group_record);
	tcase_add_test(t, cache_groups_keep_highest_event);
	suite_add_tcase(s, t);
	t = tcase_create("sessions");
	tcase_add_test(t, sess_gap_tracker);
	tcase_add_test(t, sess_slots_and_keys);
	tcase_add_test(t, sess_values);
	tcase_add_test(t, sess_live_bodies);
	suite_add_tcase(s, t);
	t = tcase_create("queue");
	tcase_add_test(t, rset_norm_add_minus);
	tcase_add_test(t, rcpt_payload);
	tcase_add_test(t, qpos_text);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
