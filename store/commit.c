// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* commit.c — group commit: many writes, one fsync, on a thread of the store's
 * own.
 *
 * With sync writes, a write that returns is on disk: RocksDB fsyncs the WAL
 * inside rocksdb_write, on the broker's only thread, once per write. Group
 * commit separates the two: writes go to the WAL without a sync (they return
 * as soon as the record is in the page cache), and a committer thread calls
 * rocksdb_flush_wal(db, sync=1), which fsyncs the WAL files and covers every
 * write that returned before it began. Writes made while it runs are covered
 * by the next one, so however fast sends come, there is at most one fsync in
 * flight and one waiting: the batch grows with the load (what PostgreSQL's
 * commit_delay and RocksDB's own write groups do).
 *
 * Every successful write has a generation (store_written: 1, 2, … since
 * open). The owner thread asks for "everything written so far" with
 * store_group_commit_ask; the committer makes it durable and calls the
 * owner's notify function on its own thread, and the owner reads how far it
 * got with store_durable. The owner decides what waits for which generation
 * (the plugin holds acknowledgements and events: plugin/commit.c); the store
 * only counts. A replicated engine would answer the same three calls with
 * its replicas' acknowledgements.
 *
 * An fsync that fails is final: after it the kernel may have dropped the
 * dirty pages it could not write, so a second fsync that succeeds proves
 * nothing ("fsyncgate"). The committer stops, store_durable reports the
 * failure, and the store refuses every later write, as after a failed write.
 *
 * Thread use: the committer touches only st->db (RocksDB is thread-safe) and
 * the committer struct under its mutex; everything else of the handle stays
 * the owner thread's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "store_internal.h"

typedef struct store_committer store_committer;

struct store_committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	uint64_t asked;        /* make the writes up to this generation durable */
	uint64_t durable;      /* the writes up to this generation are durable */
	uint64_t batches;      /* fsyncs done */
	bool stop;
	bool failed;           /* an fsync failed: durable stays where it was */
	char why[STORE_ERR_MAX];
	/* set before the thread starts */
	store *st;
	uint32_t window_us;
	void (*notify)(void *arg);
	void *arg;
	/* the owner thread's */
	uint64_t asked_local;  /* the last generation asked for: no lock to ask again */
};

static void pause_us(uint32_t us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void *committer_main(void *arg)
{
	store_committer *k = arg;
	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->stop && k->asked <= k->durable)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->asked <= k->durable)
			break; /* stopping, with nothing left to make durable */
		if (k->window_us && !k->stop) {
			/* plugin_opt_commit_window_us: let more writes join this fsync */
			pthread_mutex_unlock(&k->mu);
			pause_us(k->window_us);
			pthread_mutex_lock(&k->mu);
		}
		uint64_t target = k->asked;
		pthread_mutex_unlock(&k->mu);

		char *err = NULL;
		rocksdb_flush_wal(k->st->db, 1, &err);

		pthread_mutex_lock(&k->mu);
		if (err) {
			k->failed = true;
			snprintf(k->why, sizeof(k->why), "syncing the store's log failed: %s", err);
			free(err);
		} else {
			k->durable = target;
			k->batches++;
		}
		pthread_mutex_unlock(&k->mu);
		k->notify(k->arg);
		pthread_mutex_lock(&k->mu);
		if (k->failed)
			break;
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

uint64_t store_written(const store *st)
{
	return st->written;
}

int store_group_commit_start(store *st, uint32_t window_us, void (*notify)(void *arg), void *arg)
{
	if (st->committer)
		return store__fail(st, CHAT_EINVAL, "group commit is already running");
	store_committer *k = calloc(1, sizeof(*k));
	if (!k)
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	k->st = st;
	k->window_us = window_us;
	k->notify = notify;
	k->arg = arg;
	/* Everything written so far was written with the store's own sync
	 * setting; from now on the committer syncs. */
	k->asked = k->durable = k->asked_local = st->written;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	int rc = pthread_create(&k->thread, NULL, committer_main, k);
	if (rc) {
		pthread_cond_destroy(&k->cv);
		pthread_mutex_destroy(&k->mu);
		free(k);
		return store__fail(st, CHAT_EIO, "cannot start the commit thread: %s", strerror(rc));
	}
	rocksdb_writeoptions_set_sync(st->wo, 0);
	st->committer = k;
	return CHAT_OK;
}

void store_group_commit_ask(store *st)
{
	store_committer *k = st->committer;
	if (!k || k->asked_local >= st->written)
		return;
	k->asked_local = st->written;
	pthread_mutex_lock(&k->mu);
	k->asked = st->written;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

uint64_t store_durable(store *st, bool *failed)
{
	store_committer *k = st->committer;
	*failed = false;
	if (!k)
		return st->written;
	pthread_mutex_lock(&k->mu);
	uint64_t d = k->durable;
	bool f = k->failed;
	if (f && !st->write_failed)
		store__fail(st, CHAT_EIO, "%s", k->why);
	pthread_mutex_unlock(&k->mu);
	if (f)
		st->write_failed = true; /* no write is durable any more: refuse them all */
	*failed = f;
	return d;
}

uint64_t store_group_commit_batches(store *st)
{
	store_committer *k = st->committer;
	if (!k)
		return 0;
	pthread_mutex_lock(&k->mu);
	uint64_t n = k->batches;
	pthread_mutex_unlock(&k->mu);
	return n;
}

void store_group_commit_stop(store *st)
{
	store_committer *k = st->committer;
	if (!k)
		return;
	/* A last fsync for whatever was written and not asked for yet: a clean
	 * shutdown leaves nothing unsynced. */
	pthread_mutex_lock(&k->mu);
	k->asked = st->written;
	k->stop = true;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	free(k);
	st->committer = NULL;
}
