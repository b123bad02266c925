// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* durable.h — making a directory entry survive a power cut.
 *
 * fsync() of a file makes its bytes durable, not its name: a file (or
 * directory) that was created or renamed is only there after a power cut
 * once the directory holding its name was fsync'd too. RocksDB does this
 * for the files in its own directory; these are for the names this project
 * creates itself (the data dir, the store's directory, admin.token). The
 * power-cut test (tests/integration/test_powercut.py) checks the first
 * start with them. */
#ifndef CHAT_DURABLE_H
#define CHAT_DURABLE_H

#include <stdbool.h>

/* fsync()s directory dir; false (errno set) when it cannot. */
bool chat_sync_dir(const char *dir);

/* fsync()s the directory that holds path's last component ("." for a bare
 * name); false (errno set) when it cannot. */
bool chat_sync_parent(const char *path);

#endif
