// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* ops.c — what operators need from the engine: its figures for monitoring
 * (sizes, write stalls, an estimate of queued entries) and a consistent
 * on-disk checkpoint for backups.
 *
 * Both read only RocksDB's own thread-safe state: store_checkpoint may run
 * on another thread while the broker's thread keeps writing, and it never
 * touches the handle's error buffer.
 */
#include <stdio.h>

#include "err.h"

#include "rocks_util.h"
#include "store_internal.h"

static uint64_t prop_cf(store *st, int cf, const char *name)
{
	uint64_t v = 0;
	return rocksdb_property_int_cf(st->db, st->cf[cf], name, &v) == 0 ? v : 0;
}

static uint64_t prop_all(store *st, const char *name)
{
	uint64_t sum = 0;
	for (int i = 0; i < STORE_CF_COUNT; i++)
		sum += prop_cf(st, i, name);
	return sum;
}

void store_engine_stats(store *st, store_engine *out)
{
	out->sst_bytes = prop_all(st, "rocksdb.total-sst-files-size");
	out->memtable_bytes = prop_all(st, "rocksdb.cur-size-all-mem-tables");
	out->pending_compaction_bytes = prop_all(st, "rocksdb.estimate-pending-compaction-bytes");
	out->write_stopped = 0;
	uint64_t v = 0;
	if (rocksdb_property_int(st->db, "rocksdb.is-write-stopped", &v) == 0)
		out->write_stopped = v;
	out->delayed_write_rate = 0;
	if (rocksdb_property_int(st->db, "rocksdb.actual-delayed-write-rate", &v) == 0)
		out->delayed_write_rate = v;
	out->queue_entries_estimate = prop_cf(st, STORE_CF_QUEUES, "rocksdb.estimate-num-keys");
}

int store_checkpoint(store *st, const char *dir, char *errbuf, size_t errlen)
{
	return chat_rocks_checkpoint(st->db, dir, errbuf, errlen);
}
