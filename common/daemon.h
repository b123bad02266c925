// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* daemon.h — what the sidecar processes (chat-keyserver, chat-pushgw) share
 * as Unix daemons: one log line format with a level, a --log-level value,
 * bounded unsigned option values, the service-name rule of --share-group and
 * --topic-prefix, the service token file, SIGTERM/SIGINT (and SIGUSR1)
 * handling, a monotonic clock, a nap a signal cuts short, and the jittered
 * exponential backoff of their reconnects.
 *
 * Why one module: both sidecars had their own copy of each of these, and
 * the copies had begun to drift. Nothing here knows MQTT or libmosquitto.
 * Process-wide state (program name, log level, signal flags) lives here
 * because a signal handler and a log line have no other place to find it.
 */
#ifndef CHAT_DAEMON_H
#define CHAT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum daemon_log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Names this process in log lines ("chat-keyserver"); the level starts at
 * LOG_INFO. */
void daemon_log_init(const char *prog, int level);
/* "2026-01-02T03:04:05.678Z <prog> <level>: <message>\n" on stderr, one
 * write per line (threads may log); nothing above the set level. When
 * stderr is journald's stream, the line starts with the sd-daemon(3)
 * priority prefix, "<3>" (error), "<4>" (warning), "<6>" (info) or "<7>"
 * (debug), which journald takes as the entry's priority and strips. */
void daemon_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether stderr is connected to journald: systemd sets JOURNAL_STREAM to
 * "DEV:INODE" of the stream it gives a service (systemd.exec(5)); it is
 * ours only if stderr is still that file (not redirected by a script). */
bool daemon_stderr_is_journal(void);
/* "<3>" when stderr is journald's, else "": for the one-line errors a
 * program prints on stderr itself before logging starts (bad options). */
const char *daemon_err_prefix(void);
/* "error", "warning", "info" or "debug" into *level; false otherwise. */
bool daemon_log_level_parse(const char *s, int *level);

/* s is a decimal in [min, max] (no sign, no trailing characters). */
bool daemon_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* A share group or topic prefix: 1..64 identifier characters (ids.h). */
bool daemon_name_valid(const char *s);
/* The service token: the file's first line, trailing blanks trimmed, into
 * buf. False (buf wiped) if the file cannot be read or holds no token. */
bool daemon_token_read(const char *path, char *buf, size_t cap);

/* SIGTERM and SIGINT ask to stop; with usr1, SIGUSR1 sets a flag that
 * daemon_usr1_take() reads and clears. SIGPIPE is ignored. */
void daemon_signals_init(bool usr1);
bool daemon_stopping(void);
bool daemon_usr1_take(void);
/* SIGHUP sets a flag (a reload: chat-pushgw re-reads its credentials) that
 * daemon_hup_take() reads and clears; without this call SIGHUP stays fatal. */
void daemon_hup_init(void);
bool daemon_hup_take(void);

/* Seconds on the monotonic clock. */
time_t daemon_mono_s(void);
/* Sleeps ms in short slices, so a stop signal ends it promptly. */
void daemon_nap(unsigned ms);
/* Reconnect backoff: returns a random wait in [*delay/2, *delay] ms (so a
 * fleet does not reconnect in lockstep) and doubles *delay up to max_ms. */
unsigned daemon_backoff_next(unsigned *delay, unsigned max_ms);

#endif
