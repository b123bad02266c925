// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* daemon.c — the Unix-daemon plumbing of the sidecars (see daemon.h). */
#include "daemon.h"

#include "ids.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_prog = "chat";
static int g_level = LOG_INFO;
static volatile sig_atomic_t g_stopping;
static volatile sig_atomic_t g_usr1;
static volatile sig_atomic_t g_hup;
static int g_journal = -1; /* daemon_stderr_is_journal(), once known */

bool daemon_stderr_is_journal(void)
{
	if (g_journal < 0) {
		const char *e = getenv("JOURNAL_STREAM");
		unsigned long long dev, ino;
		char extra;
		struct stat st;
		g_journal = e && sscanf(e, "%llu:%llu%c", &dev, &ino, &extra) == 2 &&
		            fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
		            (unsigned long long)st.st_ino == ino;
	}
	return g_journal;
}

const char *daemon_err_prefix(void)
{
	return daemon_stderr_is_journal() ? "<3>" : "";
}

void daemon_log_init(const char *prog, int level)
{
	g_prog = prog;
	g_level = level;
	daemon_stderr_is_journal(); /* decided here, before any thread logs */
}

void daemon_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const char *const prios[] = { "<3>", "<4>", "<6>", "<7>" };
	if (level > g_level || level < LOG_ERR)
		return;
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	char line[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line: threads (chat-pushgw's workers) log too. */
	fprintf(stderr, "%s%s.%03ldZ %s %s: %s\n", g_journal > 0 ? prios[level] : "", when,
	        ts.tv_nsec / 1000000, g_prog, names[level], line);
}

bool daemon_log_level_parse(const char *s, int *level)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
		if (!strcmp(s, names[i])) {
			*level = i;
			return true;
		}
	return false;
}

bool daemon_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool daemon_name_valid(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (!chat_id_char(s[i]))
			return false;
	return n > 0 && n <= 64;
}

bool daemon_token_read(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = 0;
	if (n == 0)
		sodium_memzero(buf, cap);
	return n > 0;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		g_usr1 = 1;
	else if (sig == SIGHUP)
		g_hup = 1;
	else
		g_stopping = 1;
}

void daemon_signals_init(bool usr1)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (usr1)
		sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void daemon_hup_init(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
}

bool daemon_hup_take(void)
{
	if (!g_hup)
		return false;
	g_hup = 0;
	return true;
}

bool daemon_stopping(void)
{
	return g_stopping;
}

bool daemon_usr1_take(void)
{
	if (!g_usr1)
		return false;
	g_usr1 = 0;
	return true;
}

time_t daemon_mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void daemon_nap(unsigned ms)
{
	while (ms > 0 && !g_stopping) {
		unsigned slice = ms < 100 ? ms : 100;
		struct timespec ts = { 0, (long)slice * 1000000L };
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

unsigned daemon_backoff_next(unsigned *delay, unsigned max_ms)
{
	unsigned d = *delay;
	unsigned wait = d / 2 + randombytes_uniform(d / 2 + 1);
	*delay = d > max_ms / 2 ? max_ms : d * 2;
	return wait;
}
