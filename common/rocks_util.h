// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* rocks_util.h — what the two RocksDB users (store/ in the broker,
 * keyserver/ in its own process) share: the memtable insert hints their
 * keys are laid out for, and the checkpoint that backs either up. Its own
 * library (chat_rocks), so that only they link RocksDB.
 */
#ifndef CHAT_ROCKS_UTIL_H
#define CHAT_ROCKS_UTIL_H

#include <stddef.h>

#include <rocksdb/c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Turns on memtable insert hints keyed by the part of a key up to and
 * including its first '\0' (rocks_hints.cc), and turns concurrent memtable
 * writes off, which hints need: both users have one writing thread.
 * 0, or -1 with nothing changed but that if this RocksDB build's C API is
 * laid out differently from the one it was written against. */
int chat_rocks_insert_hints(rocksdb_options_t *opts);

/* Stops RocksDB counting each read's and write's steps into its
 * thread-local perf contexts on the calling thread (its default is
 * kEnableCount). Neither user reads them, and in a shared librocksdb each
 * count is a TLS lookup: 12 % of store_send's instructions
 * (docs/BENCHMARKS.md, dm). Call it on the thread that will use the db. */
void chat_rocks_perf_off(void);

/* A consistent copy of db in dir (which must not exist), memtables flushed
 * first; safe on another thread while db is written. CHAT_OK, or CHAT_EIO
 * with a one-line reason in errbuf. */
int chat_rocks_checkpoint(rocksdb_t *db, const char *dir, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
