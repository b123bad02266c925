// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* powercut.c — an LD_PRELOAD shim that records what a process has made
 * durable under one directory, so that after the process is killed
 * (SIGKILL) tests/integration/powercut.py can turn that directory into what
 * a disk would hold after a power cut at the same instant.
 *
 * Environment: POWERCUT_DIR (the directory, absolute, e.g. the broker's
 * data dir) and POWERCUT_LOG (the record; POWERCUT_LOG.graves/ beside it,
 * same filesystem). Without both the shim passes every call through.
 *
 * The model: POSIX's minimum, the page cache lost whole.
 *  - A regular file's bytes are durable up to its size at the start of the
 *    last fsync() or fdatasync() that returned 0 (fdatasync flushes the
 *    size, the metadata needed to read the data back). Everything written
 *    after that, or never synced, is gone: the file keeps exactly its
 *    synced prefix. write(), pwrite(), writev() and friends are not logged
 *    one by one: what matters is the size fstat reports just before the
 *    sync (taken before the call, so a write racing the sync counts as not
 *    durable). O_SYNC/O_DSYNC descriptors sync at every write.
 *  - sync_file_range() makes nothing durable (passed through untouched):
 *    it writes data pages but never the size or other metadata and never
 *    flushes the device cache; its man page says as much. RocksDB 7.8
 *    calls it with flags 0 (a probe, a no-op) on every file it creates,
 *    and would use it for write-behind with (wal_)bytes_per_sync set.
 *  - A directory entry (a created file, a mkdir, a rename, an unlink, a
 *    link) is durable once fsync() of that directory returned 0 after it.
 *    Until then the cut undoes it: a created file vanishes, a rename is
 *    reverted (the replaced target comes back: the shim hard-links every
 *    inode it is about to unlink or replace into POWERCUT_LOG.graves/),
 *    an unlinked file returns with its durable bytes. A file whose entry
 *    is durable but whose data never was comes back empty (the classic
 *    zero-length file after a crash).
 *  - sync() and syncfs() make the whole directory durable.
 *  - Everything present when the process starts is durable (the test runs
 *    sync first): the shim lists the tree at start-up as the baseline.
 *
 * Why this is lost page cache: after SIGKILL the kernel still holds every
 * write() in the page cache, so the files on disk are "everything"; a
 * power cut loses exactly what the kernel had not been told to persist
 * and had not yet written back. The worst case the kernel may give you is
 * that none of it was written back, and POSIX promises only what
 * fsync/fdatasync and a directory fsync made durable. The shim keeps that
 * promise's boundary (per file: synced length; per directory: the
 * namespace at its last fsync) and the cut drops everything beyond it.
 * The record itself is written with write(2) to an O_APPEND file, one
 * line per event, before the intercepted call returns to its caller: a
 * SIGKILL cannot lose it (the page cache survives the process), and an
 * acknowledgement the caller sends after a sync returned is always
 * preceded by the sync's line.
 *
 * What it does not model (each errs, if at all, towards reporting loss):
 *  - Write-back that did happen: a real cut usually keeps more (ext4
 *    commits its journal every 5 s, dirty pages go out after 30 s; an ext4
 *    fsync of one file commits the whole running transaction, so earlier
 *    renames elsewhere become durable too). This is the worst case POSIX
 *    allows, the one an application must survive.
 *  - Torn or reordered writes inside an unsynced range (a real cut can
 *    keep page 3 of an append and lose page 2, or keep a half-written
 *    sector): the cut keeps a clean prefix only. For RocksDB's WAL and
 *    MANIFEST that is the gentler case; their records carry CRCs and
 *    recovery treats a torn tail like a truncated one.
 *  - Device caches that lie about flushes, and media errors.
 *  - In-place overwrites of durable bytes (pwrite below the synced length,
 *    hole punching) and shared writable mmaps of files under the
 *    directory: the shim logs them ("O", "X") and the cut refuses to run,
 *    since it cannot restore the old bytes. RocksDB's defaults
 *    (allow_mmap_writes false, no WAL recycling, which the store keeps)
 *    never do either.
 *  - O_TRUNC or ftruncate of an existing file: the durable length drops
 *    at once (the cut cannot bring truncated bytes back).
 *  - Descriptors made by dup()/fcntl(F_DUPFD), and those numbered 65536
 *    or more, are not followed: a sync through one would be missed (loss
 *    reported, never hidden). RocksDB does not dup its files.
 *  - Paths are taken as given (no symlinks or ".." inside the directory).
 *
 * The record: one line per event, tab-separated, paths relative to
 * POWERCUT_DIR ("." is the directory itself), inode numbers in decimal:
 *   B ino size path   baseline regular file     BD ino path  baseline dir
 *   C ino path        created (not yet durable) M path       mkdir
 *   S ino size        fsync/fdatasync: durable up to size
 *   T ino size        truncated to size
 *   D path            fsync of a directory: its entries now durable
 *   R old new         rename (logged before the call; "F" after it if it failed)
 *   U path            unlink or rmdir (likewise)
 *   L old new         link (likewise)
 *   A                 sync/syncfs: followed by S and D lines for all of it
 *   O ino off len     overwrite of durable bytes     X ino  writable shared mmap
 *
 * A failing disk, too: with POWERCUT_FAIL_FLAG=<path>, while a file exists
 * at that path every fsync/fdatasync of a regular file under the directory
 * fails with EIO and makes nothing durable (the test creates the file at
 * the instant the disk goes bad: test_group_commit's fsync-failure case).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define PC_FD_MAX 65536
#define PC_INO_SLOTS 8192 /* open addressing; RocksDB keeps far fewer files */

enum { FD_NONE, FD_FILE, FD_DIR };

static int pc_on;
static char pc_dir[PATH_MAX];
static size_t pc_dirlen;
static char pc_graves[PATH_MAX];
static const char *pc_fail_flag; /* POWERCUT_FAIL_FLAG */
static int pc_log = -1;
static pthread_mutex_t pc_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned char fd_kind[PC_FD_MAX];
static unsigned char fd_sync[PC_FD_MAX]; /* opened O_SYNC/O_DSYNC */
static uint64_t fd_ino[PC_FD_MAX];

/* inode -> durable length, for spotting overwrites below it */
static struct { uint64_t ino, len; } ino_tab[PC_INO_SLOTS];

#define REAL(ret, name, ...)                                                \
	typedef ret (*name##_fn)(__VA_ARGS__);                              \
	static name##_fn real_##name;                                       \
	static name##_fn get_##name(void)                                   \
	{                                                                   \
		if (!real_##name)                                           \
			*(void **)&real_##name = dlsym(RTLD_NEXT, #name);   \
		return real_##name;                                         \
	}

REAL(int, openat, int, const char *, int, ...)
REAL(int, close, int)
REAL(ssize_t, write, int, const void *, size_t)
REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
REAL(ssize_t, pwrite64, int, const void *, size_t, off64_t)
REAL(ssize_t, writev, int, const struct iovec *, int)
REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t)
REAL(ssize_t, pwritev64, int, const struct iovec *, int, off64_t)
REAL(ssize_t, pwritev2, int, const struct iovec *, int, off_t, int)
REAL(ssize_t, pwritev64v2, int, const struct iovec *, int, off64_t, int)
REAL(int, fsync, int)
REAL(int, fdatasync, int)
REAL(void, sync, void)
REAL(int, syncfs, int)
REAL(int, ftruncate, int, off_t)
REAL(int, ftruncate64, int, off64_t)
REAL(int, truncate, const char *, off_t)
REAL(int, truncate64, const char *, off64_t)
REAL(int, fallocate, int, int, off_t, off_t)
REAL(int, fallocate64, int, int, off64_t, off64_t)
REAL(int, renameat, int, const char *, int, const char *)
REAL(int, renameat2, int, const char *, int, const char *, unsigned)
REAL(int, unlinkat, int, const char *, int)
REAL(int, link, const char *, const char *)
REAL(int, linkat, int, const char *, int, const char *, int)
REAL(int, mkdir, const char *, mode_t)
REAL(int, mkdirat, int, const char *, mode_t)
REAL(void *, mmap, void *, size_t, int, int, int, off_t)
REAL(void *, mmap64, void *, size_t, int, int, int, off64_t)

/* ---- the record ---- */

static void pc_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void pc_logf(const char *fmt, ...)
{
	char line[2 * PATH_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		n = snprintf(line, sizeof(line), "!\tline too long");
	line[n++] = '\n';
	/* one write per line to an O_APPEND file: atomic, and in the page
	 * cache (so SIGKILL-proof) before the caller goes on */
	syscall(SYS_write, pc_log, line, (size_t)n);
}

static uint64_t *ino_slot(uint64_t ino, bool add)
{
	size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) % PC_INO_SLOTS;
	for (size_t k = 0; k < PC_INO_SLOTS; k++, i = (i + 1) % PC_INO_SLOTS) {
		if (ino_tab[i].ino == ino)
			return &ino_tab[i].len;
		if (ino_tab[i].ino == 0) {
			if (!add)
				return NULL;
			ino_tab[i].ino = ino;
			ino_tab[i].len = 0;
			return &ino_tab[i].len;
		}
	}
	return NULL;
}

static void ino_set(uint64_t ino, uint64_t len)
{
	uint64_t *l = ino_slot(ino, true);
	if (l)
		*l = len;
	else
		pc_logf("!\tinode table full: overwrites of %llu not checked", (unsigned long long)ino);
}

/* ---- paths ---- */

/* The absolute form of (dirfd, path) in out; false if it cannot be told. */
static bool pc_abs(int dirfd, const char *path, char *out, size_t outlen)
{
	if (!path)
		return false;
	char base[PATH_MAX];
	if (path[0] == '/') {
		base[0] = 0;
	} else if (dirfd == AT_FDCWD) {
		if (!getcwd(base, sizeof(base)))
			return false;
	} else {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
		ssize_t n = readlink(proc, base, sizeof(base) - 1);
		if (n < 0)
			return false;
		base[n] = 0;
	}
	int n = base[0] ? snprintf(out, outlen, "%s/%s", base, path) : snprintf(out, outlen, "%s", path);
	if (n < 0 || (size_t)n >= outlen)
		return false;
	/* drop "//", "/./" and a trailing "/" or "/." */
	char *w = out;
	for (const char *r = out; *r;) {
		if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || r[2] == 0)))) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	if (w > out + 1 && w[-1] == '/')
		w--;
	*w = 0;
	return true;
}

/* The path relative to POWERCUT_DIR ("." for the dir itself), or NULL if
 * it lies outside. */
static const char *pc_rel(const char *abs)
{
	if (strncmp(abs, pc_dir, pc_dirlen) != 0)
		return NULL;
	if (abs[pc_dirlen] == 0)
		return ".";
	if (abs[pc_dirlen] != '/')
		return NULL;
	return abs + pc_dirlen + 1;
}

static const char *pc_rel_at(int dirfd, const char *path, char *buf, size_t len)
{
	return pc_on && pc_abs(dirfd, path, buf, len) ? pc_rel(buf) : NULL;
}

/* Keeps the inode at abs reachable (POWERCUT_LOG.graves/<ino>) before it is
 * unlinked or replaced, so that the cut can bring it back. */
static void pc_keep(const char *abs)
{
	struct stat st;
	if (lstat(abs, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	char grave[PATH_MAX + 32];
	snprintf(grave, sizeof(grave), "%s/%llu", pc_graves, (unsigned long long)st.st_ino);
	if (get_link()(abs, grave) != 0 && errno != EEXIST)
		pc_logf("!\tcannot keep %s: %s", abs, strerror(errno));
}

/* ---- start-up: the baseline ---- */

static void pc_walk(const char *abs)
{
	DIR *d = opendir(abs);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[PATH_MAX];
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", abs, e->d_name) >= sizeof(p))
			continue;
		struct stat st;
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			pc_logf("BD\t%llu\t%s", (unsigned long long)st.st_ino, pc_rel(p));
			pc_walk(p);
		} else if (S_ISREG(st.st_mode)) {
			pc_logf("B\t%llu\t%lld\t%s", (unsigned long long)st.st_ino, (long long)st.st_size,
			        pc_rel(p));
			ino_set(st.st_ino, (uint64_t)st.st_size);
		}
	}
	closedir(d);
}

/* Everything under the dir durable now (sync, syncfs, and the baseline). */
static void pc_all_durable(const char *abs)
{
	DIR *d = opendir(abs);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[PATH_MAX];
		struct stat st;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", abs, e->d_name) >= sizeof(p) ||
		    lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			pc_all_durable(p);
		} else if (S_ISREG(st.st_mode)) {
			pc_logf("S\t%llu\t%lld", (unsigned long long)st.st_ino, (long long)st.st_size);
			ino_set(st.st_ino, (uint64_t)st.st_size);
		}
	}
	closedir(d);
	pc_logf("D\t%s", pc_rel(abs));
}

__attribute__((constructor)) static void pc_init(void)
{
	const char *dir = getenv("POWERCUT_DIR"), *log = getenv("POWERCUT_LOG");
	if (!dir || !log || dir[0] != '/' || !realpath(dir, pc_dir))
		return;
	pc_dirlen = strlen(pc_dir);
	pc_fail_flag = getenv("POWERCUT_FAIL_FLAG");
	if ((size_t)snprintf(pc_graves, sizeof(pc_graves), "%s.graves", log) >= sizeof(pc_graves))
		return;
	pc_log = (int)syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
	                      0644);
	if (pc_log < 0)
		return;
	get_mkdir()(pc_graves, 0755);
	struct stat st;
	if (stat(pc_dir, &st) == 0)
		pc_logf("BD\t%llu\t.", (unsigned long long)st.st_ino);
	pc_walk(pc_dir);
	pc_logf("#\tbaseline done, pid %d", (int)getpid());
	pc_on = 1;
}

/* ---- opening and closing ---- */

static void pc_track(int fd, int flags)
{
	struct stat st;
	if (fd < 0 || fd >= PC_FD_MAX || fstat(fd, &st) != 0)
		return;
	fd_ino[fd] = st.st_ino;
	fd_kind[fd] = S_ISDIR(st.st_mode) ? FD_DIR : S_ISREG(st.st_mode) ? FD_FILE : FD_NONE;
	fd_sync[fd] = (flags & (O_SYNC | O_DSYNC)) != 0;
}

static int pc_open(int dirfd, const char *path, int flags, mode_t mode)
{
	char abs[PATH_MAX];
	const char *rel = pc_rel_at(dirfd, path, abs, sizeof(abs));
	if (!rel)
		return get_openat()(dirfd, path, flags, mode);
	pthread_mutex_lock(&pc_mu);
	struct stat before;
	bool existed = lstat(abs, &before) == 0;
	int fd = get_openat()(dirfd, path, flags, mode);
	int saved = errno;
	if (fd >= 0) {
		pc_track(fd, flags);
		if (!existed && (flags & O_CREAT) && fd < PC_FD_MAX) {
			pc_logf("C\t%llu\t%s", (unsigned long long)fd_ino[fd], rel);
			ino_set(fd_ino[fd], 0);
		} else if (existed && (flags & O_TRUNC) && S_ISREG(before.st_mode) && before.st_size > 0) {
			pc_logf("T\t%llu\t0", (unsigned long long)before.st_ino);
			ino_set(before.st_ino, 0);
		}
	}
	pthread_mutex_unlock(&pc_mu);
	errno = saved;
	return fd;
}

static mode_t va_mode(int flags, va_list ap)
{
	bool takes_mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
	return takes_mode ? (mode_t)va_arg(ap, int) : 0;
}

/* open(2)'s four variadic names, one body: the mode argument is there only
 * with O_CREAT or O_TMPFILE. */
#define PC_OPEN_FN(name, params, at)                      \
	int name params                                   \
	{                                                 \
		va_list ap;                               \
		va_start(ap, flags);                      \
		mode_t mode = va_mode(flags, ap);         \
		va_end(ap);                               \
		return pc_open(at, path, flags, mode);    \
	}
PC_OPEN_FN(open, (const char *path, int flags, ...), AT_FDCWD)
PC_OPEN_FN(open64, (const char *path, int flags, ...), AT_FDCWD)
PC_OPEN_FN(openat, (int dirfd, const char *path, int flags, ...), dirfd)
PC_OPEN_FN(openat64, (int dirfd, const char *path, int flags, ...), dirfd)

/* the _FORTIFY_SOURCE entry points (no mode: O_CREAT is refused there) */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
int __open_2(const char *path, int flags) { return pc_open(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return pc_open(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return pc_open(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return pc_open(dirfd, path, flags, 0); }

int creat(const char *path, mode_t mode) { return pc_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return pc_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

int close(int fd)
{
	if (fd >= 0 && fd < PC_FD_MAX && fd != pc_log)
		fd_kind[fd] = FD_NONE;
	if (fd == pc_log && pc_on)
		return 0; /* a process closing all its fds keeps the record open */
	return get_close()(fd);
}

/* ---- writing ---- */

static bool tracked_file(int fd)
{
	return pc_on && fd >= 0 && fd < PC_FD_MAX && fd_kind[fd] == FD_FILE;
}

static void pc_sync_file(int fd, off_t size);

/* Before a write at off (-1: the current offset) of len bytes: logs an
 * overwrite of durable bytes, which the cut cannot undo. */
static void pc_before_write(int fd, off_t off, size_t len)
{
	if (!tracked_file(fd))
		return;
	if (off < 0) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_APPEND))
			return;
		off = lseek(fd, 0, SEEK_CUR);
		if (off < 0)
			return;
	}
	pthread_mutex_lock(&pc_mu);
	uint64_t *durable = ino_slot(fd_ino[fd], false);
	if (durable && (uint64_t)off < *durable && len > 0)
		pc_logf("O\t%llu\t%lld\t%zu", (unsigned long long)fd_ino[fd], (long long)off, len);
	pthread_mutex_unlock(&pc_mu);
}

static void pc_after_write(int fd, ssize_t n)
{
	if (n > 0 && tracked_file(fd) && fd_sync[fd]) {
		struct stat st;
		if (fstat(fd, &st) == 0)
			pc_sync_file(fd, st.st_size);
	}
}

static size_t iov_len(const struct iovec *iov, int cnt)
{
	size_t n = 0;
	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	pc_before_write(fd, -1, len);
	ssize_t n = get_write()(fd, buf, len);
	pc_after_write(fd, n);
	return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	pc_before_write(fd, off, len);
	ssize_t n = get_pwrite()(fd, buf, len, off);
	pc_after_write(fd, n);
	return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	pc_before_write(fd, off, len);
	ssize_t n = get_pwrite64()(fd, buf, len, off);
	pc_after_write(fd, n);
	return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	pc_before_write(fd, -1, iov_len(iov, cnt));
	ssize_t n = get_writev()(fd, iov, cnt);
	pc_after_write(fd, n);
	return n;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	pc_before_write(fd, off, iov_len(iov, cnt));
	ssize_t n = get_pwritev()(fd, iov, cnt, off);
	pc_after_write(fd, n);
	return n;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	pc_before_write(fd, off, iov_len(iov, cnt));
	ssize_t n = get_pwritev64()(fd, iov, cnt, off);
	pc_after_write(fd, n);
	return n;
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int fl)
{
	pc_before_write(fd, off, iov_len(iov, cnt));
	ssize_t n = get_pwritev2()(fd, iov, cnt, off, fl);
	if (n > 0 && tracked_file(fd) && (fl & (RWF_SYNC | RWF_DSYNC)))
		pc_sync_file(fd, off < 0 ? lseek(fd, 0, SEEK_CUR) : off + n);
	pc_after_write(fd, n);
	return n;
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int fl)
{
	pc_before_write(fd, off, iov_len(iov, cnt));
	ssize_t n = get_pwritev64v2()(fd, iov, cnt, off, fl);
	if (n > 0 && tracked_file(fd) && (fl & (RWF_SYNC | RWF_DSYNC)))
		pc_sync_file(fd, off < 0 ? lseek(fd, 0, SEEK_CUR) : off + n);
	pc_after_write(fd, n);
	return n;
}

/* ---- making durable ---- */

static void pc_sync_file(int fd, off_t size)
{
	pthread_mutex_lock(&pc_mu);
	uint64_t *durable = ino_slot(fd_ino[fd], false);
	/* an RWF_SYNC write in the middle does not shorten what was durable */
	if (!durable || (uint64_t)size > *durable) {
		pc_logf("S\t%llu\t%lld", (unsigned long long)fd_ino[fd], (long long)size);
		ino_set(fd_ino[fd], (uint64_t)size);
	}
	pthread_mutex_unlock(&pc_mu);
}

static int pc_sync(int fd, int (*real)(int))
{
	if (!pc_on || fd < 0 || fd >= PC_FD_MAX || fd_kind[fd] == FD_NONE)
		return real(fd);
	if (fd_kind[fd] == FD_DIR) {
		/* held across the call: no rename may slip between the flush
		 * and its line */
		pthread_mutex_lock(&pc_mu);
		int rc = real(fd);
		int saved = errno;
		char proc[64], abs[PATH_MAX];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(proc, abs, sizeof(abs) - 1);
		if (rc == 0 && n > 0) {
			abs[n] = 0;
			const char *rel = pc_rel(abs);
			if (rel)
				pc_logf("D\t%s", rel);
		}
		pthread_mutex_unlock(&pc_mu);
		errno = saved;
		return rc;
	}
	if (pc_fail_flag && access(pc_fail_flag, F_OK) == 0) {
		errno = EIO;          /* the disk went bad: nothing became durable */
		return -1;
	}
	/* the size before the call: a write racing the sync is not durable */
	struct stat st;
	bool sized = fstat(fd, &st) == 0;
	int rc = real(fd);
	int saved = errno;
	if (rc == 0 && sized)
		pc_sync_file(fd, st.st_size);
	errno = saved;
	return rc;
}

int fsync(int fd) { return pc_sync(fd, get_fsync()); }
int fdatasync(int fd) { return pc_sync(fd, get_fdatasync()); }

void sync(void)
{
	if (pc_on)
		pthread_mutex_lock(&pc_mu);
	get_sync()();
	if (pc_on) {
		pc_logf("A");
		pc_all_durable(pc_dir);
		pthread_mutex_unlock(&pc_mu);
	}
}

int syncfs(int fd)
{
	if (pc_on)
		pthread_mutex_lock(&pc_mu);
	int rc = get_syncfs()(fd);
	int saved = errno;
	struct stat a, b;
	if (pc_on && rc == 0 && fstat(fd, &a) == 0 && stat(pc_dir, &b) == 0 && a.st_dev == b.st_dev) {
		pc_logf("A");
		pc_all_durable(pc_dir);
	}
	if (pc_on)
		pthread_mutex_unlock(&pc_mu);
	errno = saved;
	return rc;
}

/* ---- sizes ---- */

static void pc_truncated(uint64_t ino, off_t size)
{
	pthread_mutex_lock(&pc_mu);
	uint64_t *durable = ino_slot(ino, false);
	if (!durable || (uint64_t)size < *durable) {
		pc_logf("T\t%llu\t%lld", (unsigned long long)ino, (long long)size);
		ino_set(ino, (uint64_t)size);
	}
	pthread_mutex_unlock(&pc_mu);
}

int ftruncate(int fd, off_t size)
{
	int rc = get_ftruncate()(fd, size);
	if (rc == 0 && tracked_file(fd))
		pc_truncated(fd_ino[fd], size);
	return rc;
}

int ftruncate64(int fd, off64_t size)
{
	int rc = get_ftruncate64()(fd, size);
	if (rc == 0 && tracked_file(fd))
		pc_truncated(fd_ino[fd], size);
	return rc;
}

static void pc_path_truncated(const char *path, int rc, off_t size)
{
	char abs[PATH_MAX];
	struct stat st;
	if (rc == 0 && pc_rel_at(AT_FDCWD, path, abs, sizeof(abs)) && stat(abs, &st) == 0)
		pc_truncated(st.st_ino, size);
}

int truncate(const char *path, off_t size)
{
	int rc = get_truncate()(path, size);
	pc_path_truncated(path, rc, size);
	return rc;
}

int truncate64(const char *path, off64_t size)
{
	int rc = get_truncate64()(path, size);
	pc_path_truncated(path, rc, size);
	return rc;
}

/* Preallocation (RocksDB: FALLOC_FL_KEEP_SIZE) changes no byte the cut
 * keeps; punching or zeroing a range rewrites bytes, maybe durable ones. */
static void pc_fallocate(int fd, int mode, off_t off, off_t len)
{
	if (tracked_file(fd) && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE |
	                                 FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)))
		pc_before_write(fd, off, (size_t)len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	pc_fallocate(fd, mode, off, len);
	return get_fallocate()(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	pc_fallocate(fd, mode, off, len);
	return get_fallocate64()(fd, mode, off, len);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (tracked_file(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
		pc_logf("X\t%llu", (unsigned long long)fd_ino[fd]);
	return get_mmap()(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	if (tracked_file(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
		pc_logf("X\t%llu", (unsigned long long)fd_ino[fd]);
	return get_mmap64()(addr, len, prot, flags, fd, off);
}

/* ---- the namespace: logged before the call, "F" if it failed ---- */

static int pc_done(int rc)
{
	if (rc != 0) {
		int saved = errno;
		pc_logf("F");
		errno = saved;
	}
	pthread_mutex_unlock(&pc_mu);
	return rc;
}

static int pc_rename(int ofd, const char *old, int nfd, const char *new, unsigned flags)
{
	char oabs[PATH_MAX], nabs[PATH_MAX];
	const char *orel = pc_rel_at(ofd, old, oabs, sizeof(oabs));
	const char *nrel = pc_rel_at(nfd, new, nabs, sizeof(nabs));
	if (!orel && !nrel)
		return flags ? get_renameat2()(ofd, old, nfd, new, flags) : get_renameat()(ofd, old, nfd, new);
	pthread_mutex_lock(&pc_mu);
	if (!orel || !nrel || (flags & RENAME_EXCHANGE))
		pc_logf("!\trename not modelled: %s -> %s", oabs, nabs);
	else {
		pc_keep(nabs); /* the target it replaces */
		pc_logf("R\t%s\t%s", orel, nrel);
	}
	return pc_done(flags ? get_renameat2()(ofd, old, nfd, new, flags) : get_renameat()(ofd, old, nfd, new));
}

int rename(const char *old, const char *new) { return pc_rename(AT_FDCWD, old, AT_FDCWD, new, 0); }
int renameat(int ofd, const char *old, int nfd, const char *new) { return pc_rename(ofd, old, nfd, new, 0); }
int renameat2(int ofd, const char *old, int nfd, const char *new, unsigned flags)
{
	return pc_rename(ofd, old, nfd, new, flags);
}

static int pc_unlink(int dirfd, const char *path, int flags)
{
	char abs[PATH_MAX];
	const char *rel = pc_rel_at(dirfd, path, abs, sizeof(abs));
	if (!rel)
		return get_unlinkat()(dirfd, path, flags);
	pthread_mutex_lock(&pc_mu);
	pc_keep(abs);
	pc_logf("U\t%s", rel);
	return pc_done(get_unlinkat()(dirfd, path, flags));
}

int unlink(const char *path) { return pc_unlink(AT_FDCWD, path, 0); }
int unlinkat(int dirfd, const char *path, int flags) { return pc_unlink(dirfd, path, flags); }
int rmdir(const char *path) { return pc_unlink(AT_FDCWD, path, AT_REMOVEDIR); }

int remove(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return rmdir(path);
	return unlink(path);
}

static int pc_link(int ofd, const char *old, int nfd, const char *new, int flags)
{
	char oabs[PATH_MAX], nabs[PATH_MAX];
	const char *orel = pc_rel_at(ofd, old, oabs, sizeof(oabs));
	const char *nrel = pc_rel_at(nfd, new, nabs, sizeof(nabs));
	if (!nrel)
		return get_linkat()(ofd, old, nfd, new, flags);
	pthread_mutex_lock(&pc_mu);
	if (!orel)
		pc_logf("!\tlink from outside not modelled: %s -> %s", oabs, nabs);
	else
		pc_logf("L\t%s\t%s", orel, nrel);
	return pc_done(get_linkat()(ofd, old, nfd, new, flags));
}

int link(const char *old, const char *new) { return pc_link(AT_FDCWD, old, AT_FDCWD, new, 0); }
int linkat(int ofd, const char *old, int nfd, const char *new, int flags)
{
	return pc_link(ofd, old, nfd, new, flags);
}

static int pc_mkdir(int dirfd, const char *path, mode_t mode)
{
	char abs[PATH_MAX];
	const char *rel = pc_rel_at(dirfd, path, abs, sizeof(abs));
	if (!rel)
		return get_mkdirat()(dirfd, path, mode);
	pthread_mutex_lock(&pc_mu);
	pc_logf("M\t%s", rel);
	return pc_done(get_mkdirat()(dirfd, path, mode));
}

int mkdir(const char *path, mode_t mode) { return pc_mkdir(AT_FDCWD, path, mode); }
int mkdirat(int dirfd, const char *path, mode_t mode) { return pc_mkdir(dirfd, path, mode); }
