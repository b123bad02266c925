// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* backup.c — the admin `backup` command: a consistent copy of the running
 * server's data dir (docs/OPERATIONS.md, "Backup and restore").
 *
 * RocksDB's checkpoint hard-links the SST files and copies the WAL after a
 * memtable flush; that is fast but it is disk I/O of unbounded length, so it
 * runs on its own thread, never on the broker's. The broker thread only
 * checks the target, starts the thread, and on a later tick joins it and
 * answers the admin. One backup at a time. The result is a complete data
 * dir: DIR/store (the checkpoint) and DIR/admin.token, which a broker with
 * plugin_opt_data_dir DIR serves as is.
 */
#include "core_internal.h"
#include "err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct backup_job {
	pthread_t thread;
	atomic_bool done;
	int rc;
	refusal why;              /* when rc is not CHAT_OK */
	store *st;
	char dir[PATH_MAX];
	char token_src[PATH_MAX];
	admin_ticket who;         /* where the answer goes */
	uint64_t started_ms;
};

/* Copies the admin token file (small) with mode 0600, synced. */
static int copy_token(backup_job *j)
{
	char dst[PATH_MAX + 16], buf[1024];
	snprintf(dst, sizeof(dst), "%s/admin.token", j->dir);
	int in = open(j->token_src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		refusal_set(&j->why, REFUSE_BACKUP, "cannot read %s: %s", j->token_src, strerror(errno));
		return CHAT_EIO;
	}
	ssize_t n = read(in, buf, sizeof(buf));
	close(in);
	int out = n < 0 ? -1 : open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = out >= 0 && write(out, buf, (size_t)n) == n && fsync(out) == 0;
	if (!ok)
		refusal_set(&j->why, REFUSE_BACKUP, "cannot write %s: %s", dst, strerror(errno));
	if (out >= 0)
		close(out);
	memset(buf, 0, sizeof(buf));
	return ok ? CHAT_OK : CHAT_EIO;
}

static void *backup_main(void *arg)
{
	backup_job *j = arg;
	char sdir[PATH_MAX + 8];
	snprintf(sdir, sizeof(sdir), "%s/store", j->dir);
	if (mkdir(j->dir, 0700) != 0 && errno != EEXIST) {
		refusal_set(&j->why, REFUSE_BACKUP, "cannot create %s: %s", j->dir, strerror(errno));
		j->rc = CHAT_EIO;
	} else {
		j->rc = store_checkpoint(j->st, sdir, j->why.msg, sizeof(j->why.msg));
		if (j->rc == CHAT_OK)
			j->rc = copy_token(j);
	}
	atomic_store(&j->done, true);
	return NULL;
}

/* DIR must be absolute (the broker's working directory is not the
 * operator's) and either missing or an empty directory. */
static const char *check_target(const char *dir)
{
	if (dir[0] != '/')
		return "dir must be an absolute path";
	struct stat sb;
	if (stat(dir, &sb) != 0)
		return errno == ENOENT ? NULL : "dir cannot be examined";
	if (!S_ISDIR(sb.st_mode))
		return "dir exists and is not a directory";
	DIR *d = opendir(dir);
	if (!d)
		return "dir cannot be read";
	const struct dirent *e;
	bool empty = true;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty ? NULL : "dir exists and is not empty";
}

bool backup_start(core *c, const char *dir, const admin_ticket *who, refusal *why)
{
	if (c->backup)
		return refusal_set(why, REFUSE_BACKUP, "a backup is already running");
	const char *bad = check_target(dir);
	if (bad)
		return refusal_set(why, REFUSE_BACKUP, "%s", bad);
	backup_job *j = calloc(1, sizeof(*j));
	if (!j)
		return refusal_set(why, REFUSE_BACKUP, "out of memory");
	j->st = c->st;
	j->who = *who;
	j->why.code = REFUSE_BACKUP; /* whatever fails; the thread writes the reason */
	j->started_ms = c->io.now_ms(c->io.ctx);
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	snprintf(j->token_src, sizeof(j->token_src), "%s/admin.token", c->data_dir);
	atomic_init(&j->done, false);
	if (pthread_create(&j->thread, NULL, backup_main, j) != 0) {
		free(j);
		return refusal_set(why, REFUSE_BACKUP, "cannot start the backup thread");
	}
	c->backup = j;
	core_log(c, CORE_LOG_NOTICE, "backup into %s started", dir);
	return true;
}

void backup_tick(core *c)
{
	backup_job *j = c->backup;
	if (!j || !atomic_load(&j->done))
		return;
	pthread_join(j->thread, NULL);
	c->backup = NULL;
	uint64_t ms = c->io.now_ms(c->io.ctx) - j->started_ms;
	if (j->rc == CHAT_OK) {
		c->n.backups++;
		core_log(c, CORE_LOG_NOTICE, "backup into %s done in %llu ms", j->dir,
		         (unsigned long long)ms);
		cbw res; /* its own: admin.c's reply buffer belongs to the command running now */
		cbw_init(&res);
		cbw_text(&res, "dir");
		cbw_text(&res, j->dir);
		cbw_text(&res, "ms");
		cbw_uint(&res, ms);
		admin_send(c, &j->who, NULL, &res, 2);
		cbw_free(&res);
	} else {
		core_log(c, CORE_LOG_ERR, "backup into %s failed: %s", j->dir, j->why.msg);
		admin_send(c, &j->who, &j->why, NULL, 0);
	}
	free(j);
}

void backup_wait(core *c)
{
	if (!c->backup)
		return;
	pthread_join(c->backup->thread, NULL);
	free(c->backup);
	c->backup = NULL;
}
