// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_daemon.c — common/daemon: the sidecars' shared plumbing. The option
 * values and token files the key server and push gateway accept or refuse,
 * the log line's shape and level filter, SIGUSR1 and stop signals, the nap
 * a stop cuts short, and the bounds of the reconnect backoff.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

/* A file under $TMPDIR holding content; its path in path. */
static void write_file(char *path, size_t cap, const char *content)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path, cap, "%s/daemon-XXXXXX", tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	size_t n = strlen(content);
	ck_assert_int_eq(write(fd, content, n), (ssize_t)n);
	close(fd);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

START_TEST(parse_u32_bounds)
{
	uint32_t v = 7;
	ck_assert(daemon_parse_u32("0", 0, 10, &v) && v == 0);
	ck_assert(daemon_parse_u32("10", 0, 10, &v) && v == 10);
	ck_assert(daemon_parse_u32("65535", 1, 65535, &v) && v == 65535);
	ck_assert(daemon_parse_u32("4294967295", 0, UINT32_MAX, &v) && v == UINT32_MAX);
	v = 7;
	ck_assert(!daemon_parse_u32("11", 0, 10, &v));
	ck_assert(!daemon_parse_u32("0", 1, 10, &v));
	ck_assert(!daemon_parse_u32("4294967296", 0, UINT32_MAX, &v));
	ck_assert(!daemon_parse_u32("99999999999999999999999", 0, UINT32_MAX, &v));
	ck_assert(!daemon_parse_u32("-1", 0, 10, &v));
	ck_assert(!daemon_parse_u32("", 0, 10, &v));
	ck_assert(!daemon_parse_u32("5x", 0, 10, &v));
	ck_assert(!daemon_parse_u32("x5", 0, 10, &v));
	ck_assert_uint_eq(v, 7); /* untouched on refusal */
}
END_TEST

START_TEST(name_rule)
{
	char long_name[66];
	memset(long_name, 'a', 64);
	long_name[64] = 0;
	ck_assert(daemon_name_valid("keyserver"));
	ck_assert(daemon_name_valid("chat_2-x"));
	ck_assert(daemon_name_valid(long_name));
	long_name[64] = 'a', long_name[65] = 0;
	ck_assert(!daemon_name_valid(long_name));
	ck_assert(!daemon_name_valid(""));
	ck_assert(!daemon_name_valid("a/b"));
	ck_assert(!daemon_name_valid("a+"));
	ck_assert(!daemon_name_valid("#"));
	ck_assert(!daemon_name_valid("with space"));
}
END_TEST

START_TEST(log_levels)
{
	int l = -1;
	ck_assert(daemon_log_level_parse("error", &l) && l == LOG_ERR);
	ck_assert(daemon_log_level_parse("warning", &l) && l == LOG_WARN);
	ck_assert(daemon_log_level_parse("info", &l) && l == LOG_INFO);
	ck_assert(daemon_log_level_parse("debug", &l) && l == LOG_DEBUG);
	l = -1;
	ck_assert(!daemon_log_level_parse("warn", &l));
	ck_assert(!daemon_log_level_parse("", &l));
	ck_assert(!daemon_log_level_parse("INFO", &l));
	ck_assert_int_eq(l, -1);
}
END_TEST

/* The line's shape, and that a level above the set one writes nothing. */
START_TEST(log_line)
{
	char path[512];
	write_file(path, sizeof(path), "");
	fflush(stderr);
	int saved = dup(2);
	FILE *f = freopen(path, "w", stderr);
	ck_assert_ptr_nonnull(f);
	daemon_log_init("chat-test", LOG_WARN);
	daemon_log(LOG_WARN, "value %d of %s", 42, "x");
	daemon_log(LOG_INFO, "not written");
	daemon_log(LOG_ERR, "second");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	FILE *in = fopen(path, "r");
	ck_assert_ptr_nonnull(in);
	char a[256] = "", b[256] = "", c[256] = "";
	ck_assert_ptr_nonnull(fgets(a, sizeof(a), in));
	ck_assert_ptr_nonnull(fgets(b, sizeof(b), in));
	ck_assert_ptr_null(fgets(c, sizeof(c), in));
	fclose(in);
	unlink(path);
	/* 2026-01-02T03:04:05.678Z chat-test warning: value 42 of x */
	ck_assert_uint_eq(strlen(a), 25 + strlen("chat-test warning: value 42 of x\n"));
	ck_assert_int_eq(a[4], '-');
	ck_assert_int_eq(a[10], 'T');
	ck_assert_int_eq(a[19], '.');
	ck_assert_int_eq(a[23], 'Z');
	ck_assert_str_eq(a + 25, "chat-test warning: value 42 of x\n");
	ck_assert_str_eq(b + 25, "chat-test error: second\n");
}
END_TEST

START_TEST(token_file)
{
	char path[512], buf[64];
	write_file(path, sizeof(path), "s3cret \t\r\nsecond line\n");
	ck_assert(daemon_token_read(path, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "s3cret");
	unlink(path);

	write_file(path, sizeof(path), "no-newline");
	ck_assert(daemon_token_read(path, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "no-newline");
	unlink(path);

	/* Longer than the buffer: cut at cap - 1, still terminated. */
	write_file(path, sizeof(path), "0123456789");
	ck_assert(daemon_token_read(path, buf, 5));
	ck_assert_str_eq(buf, "0123");
	unlink(path);

	/* Blank first line: no token, and nothing of the file is left in buf. */
	write_file(path, sizeof(path), "  \t\nsecret-on-line-two\n");
	memset(buf, 'x', sizeof(buf));
	ck_assert(!daemon_token_read(path, buf, sizeof(buf)));
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_int_eq(buf[i], 0);
	unlink(path);

	write_file(path, sizeof(path), "");
	ck_assert(!daemon_token_read(path, buf, sizeof(buf)));
	unlink(path);
	ck_assert(!daemon_token_read(path, buf, sizeof(buf))); /* gone */
}
END_TEST

START_TEST(backoff_bounds)
{
	unsigned delay = 500;
	unsigned want[] = { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_uint_eq(delay, want[i]);
		unsigned before = delay;
		unsigned wait = daemon_backoff_next(&delay, 30000);
		ck_assert_uint_ge(wait, before / 2);
		ck_assert_uint_le(wait, before);
	}
	/* Near the top of unsigned: capped, no wrap-around. */
	delay = 3000000000u;
	daemon_backoff_next(&delay, 3600000);
	ck_assert_uint_eq(delay, 3600000);
	delay = 1;
	ck_assert_uint_le(daemon_backoff_next(&delay, 1), 1);
	ck_assert_uint_eq(delay, 1);
}
END_TEST

START_TEST(mono_clock)
{
	time_t a = daemon_mono_s();
	daemon_nap(20);
	time_t b = daemon_mono_s();
	ck_assert(b >= a);
}
END_TEST

/* SIGUSR1 is a flag read once; SIGTERM stops, and a nap then returns at
 * once. Forked by Check (CK_FORK), so the stop stays in this test. */
START_TEST(signals)
{
	daemon_signals_init(true);
	ck_assert(!daemon_usr1_take());
	raise(SIGUSR1);
	ck_assert(daemon_usr1_take());
	ck_assert(!daemon_usr1_take());
	ck_assert(!daemon_stopping());
	raise(SIGPIPE); /* ignored */

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	daemon_nap(150);
	ck_assert_int_ge(ms_since(&t0), 150);

	raise(SIGTERM);
	ck_assert(daemon_stopping());
	clock_gettime(CLOCK_MONOTONIC, &t0);
	daemon_nap(60000);
	ck_assert_int_lt(ms_since(&t0), 1000);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *t = tcase_create("options");
	tcase_add_test(t, parse_u32_bounds);
	tcase_add_test(t, name_rule);
	tcase_add_test(t, log_levels);
	tcase_add_test(t, token_file);
	suite_add_tcase(s, t);

	t = tcase_create("process");
	tcase_add_test(t, log_line);
	tcase_add_test(t, backoff_bounds);
	tcase_add_test(t, mono_clock);
	tcase_add_test(t, signals);
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
