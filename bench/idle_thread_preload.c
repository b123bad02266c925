// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* idle_thread_preload.so — a diagnostic LD_PRELOAD shim for the benchmarks:
 * starts one thread that only sleeps. Loaded into a stock mosquitto
 * (compare.sh, the IoT rows) it tells whether being multi-threaded, which
 * the plugin makes the broker (RocksDB's background threads), costs the
 * syscall-bound relay anything by itself: with another thread sharing the
 * file table, Linux takes the reference-counted path in every read, write
 * and epoll_ctl on a socket (fdget/fput). docs/BENCHMARKS.md has what it
 * showed. */
#include <pthread.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

__attribute__((constructor)) static void start_sleeper(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, sleeper, NULL) == 0)
		pthread_detach(t);
}
