// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* rocks_util.c — the checkpoint both RocksDB users back up with
 * (rocks_util.h); the insert hints are in rocks_hints.cc. */
#include "rocks_util.h"

#include <stdio.h>

#include "err.h"

void chat_rocks_perf_off(void)
{
	rocksdb_set_perf_level(rocksdb_disable);
}

int chat_rocks_checkpoint(rocksdb_t *db, const char *dir, char *errbuf, size_t errlen)
{
	char *err = NULL;
	rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(db, &err);
	if (!err)
		rocksdb_checkpoint_create(cp, dir, 0, &err); /* 0: flush the memtables first */
	if (cp)
		rocksdb_checkpoint_object_destroy(cp);
	if (err) {
		snprintf(errbuf, errlen, "checkpoint into %s failed: %s", dir, err);
		rocksdb_free(err);
		return CHAT_EIO;
	}
	return CHAT_OK;
}
