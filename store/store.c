// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* store.c — opening and closing the RocksDB store, and what every other file
 * of store/ leans on: the column families, the schema version, the token
 * key, the admin credential, reads, the shared write batch and the one error
 * message a handle keeps.
 *
 * Open checks the directory itself first so that the common mistakes (a
 * file, no permission, a second broker on the same store) come back as one
 * readable line instead of a RocksDB status string. Memory is bounded: one
 * 32 MiB LRU block cache shared by every column family (index and filter
 * blocks included) and a 64 MiB cap on all memtables together.
 *
 * The memtable settings follow the keys' shapes (docs/BENCHMARKS.md, "dm"):
 * appends per queue and per conversation take insert hints
 * (common/rocks_hints.cc), the per-key counters are updated in place, and
 * the column families read mostly for keys that are not there (dedup,
 * rstate) or not in the memtable (msgs, rcpts, refs: a replay's backlog has
 * long been flushed) get a memtable bloom filter, so that such a read skips
 * the skiplist walk.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sodium.h>

#include "durable.h"
#include "err.h"
#include "rocks_util.h"
#include "store_internal.h"

#define STORE_CACHE_BYTES (32u << 20)
#define STORE_MEMTABLE_BYTES (8u << 20)
#define STORE_MEMTABLES_TOTAL (64u << 20)

const char *const store_cf_names[STORE_CF_COUNT] = {
	[STORE_CF_DEFAULT] = "default",
	[STORE_CF_META] = "meta",
	[STORE_CF_DEVICES] = "devices",
	[STORE_CF_SERVICES] = "services",
	[STORE_CF_CONVS] = "convs",
	[STORE_CF_MSGS] = "msgs",
	[STORE_CF_REFS] = "refs",
	[STORE_CF_RCPTS] = "rcpts",
	[STORE_CF_RSTATE] = "rstate",
	[STORE_CF_DEDUP] = "dedup",
	[STORE_CF_QUEUES] = "queues",
	[STORE_CF_QMETA] = "qmeta",
	[STORE_CF_EXPIRY] = "expiry",
	[STORE_CF_PREFS] = "prefs",
	[STORE_CF_GROUPS] = "groups",
	[STORE_CF_PUSH] = "push",
	[STORE_CF_CONTACTS] = "contacts",
	[STORE_CF_CAPS] = "caps",
};

/* ---- errors, reads, the batch ---- */

int store__fail(store *st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof st->err, fmt, ap);
	va_end(ap);
	return code;
}

int store__rocks_err(store *st, char *err)
{
	store__fail(st, CHAT_EIO, "%s", err);
	rocksdb_free(err);
	return CHAT_EIO;
}

uint32_t store_migrated_from(const store *st)
{
	return st->migrated_from;
}

bool store_insert_hints(const store *st)
{
	return st->hints;
}

const char *store_errmsg(const store *st)
{
	return st->err;
}

rocksdb_writebatch_t *store__batch(store *st)
{
	store__rollback(st);
	return st->wb;
}

void store__rollback(store *st)
{
	rocksdb_writebatch_clear(st->wb);
	store__caches_settle(st, false);
}

/* Whether the disk keeps min_free bytes after this batch. RocksDB must
 * never meet a full disk itself: 7.8 asserts (and so ends the broker) on a
 * write after a failed WAL write. One fstatvfs per batch. */
static bool room_for(store *st)
{
	struct statvfs sv;
	if (!st->min_free || st->dir_fd < 0 || fstatvfs(st->dir_fd, &sv) != 0)
		return true;
	size_t len = 0;
	rocksdb_writebatch_data(st->wb, &len);
	return (uint64_t)sv.f_bavail * sv.f_frsize >= st->min_free + 2 * (uint64_t)len;
}

int store__commit(store *st)
{
	char *err = NULL;
	if (!room_for(st)) {
		store__rollback(st);
		return store__fail(st, CHAT_EIO, "the disk of the store is nearly full (under %llu MB "
		                   "free): write refused", (unsigned long long)(st->min_free >> 20));
	}
	if (st->write_failed) {
		store__rollback(st);
		return store__fail(st, CHAT_EIO, "writes stopped after an earlier write error; "
		                   "restart once the disk has room");
	}
	rocksdb_write(st->db, st->wo, st->wb, &err);
	rocksdb_writebatch_clear(st->wb);
	store__caches_settle(st, err == NULL);
	if (err)
		st->write_failed = true;
	else
		st->written++;
	return err ? store__rocks_err(st, err) : CHAT_OK;
}

int store__get(store *st, enum store_cf cf, const void *key, size_t klen,
               rocksdb_pinnableslice_t **val)
{
	char *err = NULL;
	*val = rocksdb_get_pinned_cf(st->db, st->ro, st->cf[cf], key, klen, &err);
	if (err) {
		rocksdb_pinnableslice_destroy(*val);
		*val = NULL;
		return store__rocks_err(st, err);
	}
	return *val ? CHAT_OK : CHAT_ENOTFOUND;
}

void store__many_want(store_many *m, size_t slot, const void *key, size_t klen)
{
	if (m->n == STORE_MANY) {
		m->over = true;
		return;
	}
	m->keys[m->n] = key;
	m->klens[m->n] = klen;
	m->slot[m->n++] = slot;
}

int store__many_get(store *st, store_many *m, enum store_cf cf, rocksdb_pinnableslice_t **out)
{
	char *errs[STORE_MANY];
	size_t n = m->n;
	m->n = 0;
	if (m->over) {
		m->over = false;
		for (size_t i = 0; i < n; i++)
			out[m->slot[i]] = NULL;
		return store__fail(st, CHAT_EINVAL, "more than %d keys in one batched read",
		                   STORE_MANY);
	}
	for (size_t i = 0; i < n; i++) {
		m->got[i] = NULL;
		errs[i] = NULL;
	}
	if (n)
		rocksdb_batched_multi_get_cf(st->db, st->ro, st->cf[cf], n, m->keys, m->klens, m->got,
		                             errs, false);
	int rc = CHAT_OK;
	for (size_t i = 0; i < n; i++) {
		if (errs[i] && rc == CHAT_OK)
			rc = store__rocks_err(st, errs[i]); /* frees it */
		else if (errs[i])
			rocksdb_free(errs[i]);
	}
	if (rc != CHAT_OK)
		store__many_free(m->got, n);
	for (size_t i = 0; i < n; i++)
		out[m->slot[i]] = m->got[i];
	return rc;
}

void store__many_free(rocksdb_pinnableslice_t **vals, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rocksdb_pinnableslice_destroy(vals[i]);
		vals[i] = NULL;
	}
}

int store__fixed_value(store *st, enum store_cf cf, const rocksdb_pinnableslice_t *v, void *out,
                       size_t len)
{
	if (!v)
		return CHAT_ENOTFOUND;
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	if (vlen != len)
		return store__fail(st, CHAT_ECORRUPT, "%s record of %zu bytes, expected %zu",
		                   store_cf_names[cf], vlen, len);
	memcpy(out, p, len);
	return CHAT_OK;
}

int store__get_fixed(store *st, enum store_cf cf, const void *key, size_t klen,
                     void *out, size_t len)
{
	rocksdb_pinnableslice_t *v;
	int rc = store__get(st, cf, key, klen, &v);
	if (rc != CHAT_OK)
		return rc;
	rc = store__fixed_value(st, cf, v, out, len);
	rocksdb_pinnableslice_destroy(v);
	return rc;
}

int store__get_each(store *st, enum store_cf cf, const void *key, size_t klen, store_kv_cb cb,
                    void *ctx)
{
	rocksdb_pinnableslice_t *v;
	int rc = store__get(st, cf, key, klen, &v);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc != CHAT_OK)
		return rc;
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	rc = cb(st, key, klen, p, vlen, ctx);
	rocksdb_pinnableslice_destroy(v);
	return rc;
}

int store__prefix_each(store *st, enum store_cf cf, const void *prefix, size_t plen,
                       store_kv_cb cb, void *ctx)
{
	return store__range_each(st, cf, prefix, plen, prefix, plen, cb, ctx);
}

int store__range_each(store *st, enum store_cf cf, const void *from, size_t flen,
                      const void *prefix, size_t plen, store_kv_cb cb, void *ctx)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[cf]);
	int rc = CHAT_OK;
	for (rocksdb_iter_seek(it, from, flen); rc == CHAT_OK && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		const char *v = rocksdb_iter_value(it, &vlen);
		rc = cb(st, k, klen, v, vlen, ctx);
	}
	return store__iter_end(st, it, rc);
}

int store__iter_end(store *st, rocksdb_iterator_t *it, int rc)
{
	if (rc == CHAT_OK) {
		char *err = NULL;
		rocksdb_iter_get_error(it, &err);
		if (err)
			rc = store__rocks_err(st, err);
	}
	rocksdb_iter_destroy(it);
	return rc;
}

size_t store__msgkey(uint8_t *out, const char *conv, uint64_t seq)
{
	size_t n = strnlen(conv, CHAT_CONV_MAX + 1);
	if (n == 0 || n > CHAT_CONV_MAX)
		return 0;
	memcpy(out, conv, n);
	out[n] = 0;
	store__be64_put(out + n + 1, seq);
	return n + 1 + STORE_SEQ_LEN;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int store__distinct(store *st, const char *const *to, size_t n, const char *const **out,
                    size_t *m)
{
	*out = to;
	*m = 0;
	if (!n)
		return CHAT_OK;
	if (chat_grow(&st->to_sorted, &st->to_cap, n, sizeof *st->to_sorted, 64))
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	memcpy(st->to_sorted, to, n * sizeof *to);
	qsort(st->to_sorted, n, sizeof *to, cmp_str);
	size_t k = 1;
	for (size_t i = 1; i < n; i++)
		if (strcmp(st->to_sorted[k - 1], st->to_sorted[i]) != 0)
			st->to_sorted[k++] = st->to_sorted[i];
	/* each device once, in order: what a send queues and counts (refs) */
	for (size_t i = 1; i < k; i++)
		assert(strcmp(st->to_sorted[i - 1], st->to_sorted[i]) < 0);
	*out = st->to_sorted;
	*m = k;
	return CHAT_OK;
}

bool store__msgkey_parse(const uint8_t *k, size_t klen, char *conv, uint64_t *seq)
{
	if (klen < 2 + STORE_SEQ_LEN || klen > STORE_MSGKEY_MAX)
		return false;
	size_t n = klen - 1 - STORE_SEQ_LEN;
	if (k[n] != 0 || memchr(k, 0, n))
		return false;
	memcpy(conv, k, n);
	conv[n] = 0;
	*seq = store__be64_get(k + n + 1);
	return true;
}

size_t store__addrlen(const char *addr)
{
	size_t n = strnlen(addr, CHAT_ADDR_MAX + 1);
	return n > CHAT_ADDR_MAX ? 0 : n;
}

size_t store__rcptkey(uint8_t *out, const uint8_t *msgkey, size_t mklen, const char *addr,
                      size_t alen)
{
	memcpy(out, msgkey, mklen);
	out[mklen] = 0;
	memcpy(out + mklen + 1, addr, alen);
	return mklen + 1 + alen;
}

size_t store__qkey(uint8_t *out, const char *addr, size_t alen, uint64_t qseq)
{
	memcpy(out, addr, alen);
	out[alen] = 0;
	store__be64_put(out + alen + 1, qseq);
	return alen + 1 + STORE_SEQ_LEN;
}

/* ---- meta ---- */

int store_token_key(store *st, uint8_t key[STORE_KEY_LEN])
{
	memcpy(key, st->token_key, STORE_KEY_LEN);
	return CHAT_OK;
}

int store_admin_get(store *st, uint8_t hash[STORE_HASH_LEN])
{
	return store__get_fixed(st, STORE_CF_META, STORE_META_ADMIN, strlen(STORE_META_ADMIN),
	                        hash, STORE_HASH_LEN);
}

int store_admin_set(store *st, const uint8_t hash[STORE_HASH_LEN])
{
	rocksdb_writebatch_put_cf(store__batch(st), st->cf[STORE_CF_META], STORE_META_ADMIN,
	                          strlen(STORE_META_ADMIN), (const char *)hash, STORE_HASH_LEN);
	return store__commit(st);
}

/* Checks the schema version and loads the token key; on a fresh store writes
 * both (one batch). */
static void put_schema_version(store *st)
{
	uint8_t ver[4];
	uint32_t v = STORE_SCHEMA_VERSION;
	for (int i = 3; i >= 0; i--, v >>= 8)
		ver[i] = (uint8_t)v;
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_META], STORE_META_SCHEMA,
	                          strlen(STORE_META_SCHEMA), (const char *)ver, sizeof ver);
}

/* Checks the schema version, migrating an older store, and loads the token
 * key; on a fresh store writes both. One batch: a migration and the version
 * that says it was done land together or not at all. */
static int store_meta_init(store *st)
{
	rocksdb_writebatch_t *wb = store__batch(st);
	uint8_t ver[4];
	int rc = store__get_fixed(st, STORE_CF_META, STORE_META_SCHEMA, strlen(STORE_META_SCHEMA),
	                          ver, sizeof ver);
	if (rc == CHAT_ENOTFOUND) {
		put_schema_version(st);
	} else if (rc != CHAT_OK) {
		return rc;
	} else {
		uint32_t v = (uint32_t)ver[0] << 24 | (uint32_t)ver[1] << 16 |
		             (uint32_t)ver[2] << 8 | ver[3];
		if (v > STORE_SCHEMA_VERSION)
			return store__fail(st, CHAT_EINVAL,
			                   "store schema version %u is newer than this build's %u; "
			                   "upgrade mosquitto-chat", v, STORE_SCHEMA_VERSION);
		if (v < 1)
			return store__fail(st, CHAT_EINVAL,
			                   "store schema version %u is unknown to this build "
			                   "(it reads %u and migrates from 1); refusing to read it",
			                   v, STORE_SCHEMA_VERSION);
		/* 1 -> 2: the contacts index. 2 -> 3: nothing to rewrite, records
		 * of 2 (8-byte rcpts values, a refs record for every message) read
		 * as they are; the version keeps a build of 2, which would take a
		 * sole rcpts entry for corruption, from opening the store. */
		if (v == 1 && (rc = store__contacts_build(st)) != CHAT_OK)
			return rc;
		if (v < STORE_SCHEMA_VERSION) {
			put_schema_version(st);
			st->migrated_from = v;
		}
	}

	rc = store__get_fixed(st, STORE_CF_META, STORE_META_TOKEN_KEY,
	                      strlen(STORE_META_TOKEN_KEY), st->token_key, STORE_KEY_LEN);
	if (rc == CHAT_ENOTFOUND) {
		randombytes_buf(st->token_key, STORE_KEY_LEN);
		rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_META], STORE_META_TOKEN_KEY,
		                          strlen(STORE_META_TOKEN_KEY),
		                          (const char *)st->token_key, STORE_KEY_LEN);
	} else if (rc != CHAT_OK) {
		return rc;
	}
	return rocksdb_writebatch_count(wb) ? store__commit(st) : CHAT_OK;
}

/* ---- open / close ---- */

/* Makes sure dir is a directory we can use, creating it if missing. */
static int store_dir_check(store *st, const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) != 0) {
		if (errno != ENOENT)
			return store__fail(st, CHAT_EIO, "store directory %s: %s", dir, strerror(errno));
		/* its name in the parent survives a power cut only once the parent
		 * is fsync'd (durable.h); RocksDB syncs what it creates inside */
		if (mkdir(dir, 0700) != 0 || !chat_sync_parent(dir))
			return store__fail(st, CHAT_EIO, "cannot create store directory %s: %s", dir,
			                   strerror(errno));
		return CHAT_OK;
	}
	if (!S_ISDIR(sb.st_mode))
		return store__fail(st, CHAT_EINVAL, "store path %s is not a directory", dir);
	if (access(dir, R_OK | W_OK | X_OK) != 0)
		return store__fail(st, CHAT_EIO, "store directory %s: %s", dir, strerror(errno));
	return CHAT_OK;
}

static void store_options_init(store *st, const store_opts *opts)
{
	st->cache = rocksdb_cache_create_lru(STORE_CACHE_BYTES);
	rocksdb_block_based_table_options_t *bbto = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(bbto, st->cache);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(bbto, 1);
	rocksdb_block_based_options_set_filter_policy(bbto, rocksdb_filterpolicy_create_bloom(10));

	st->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(st->opts, 1);
	rocksdb_options_set_create_missing_column_families(st->opts, 1);
	rocksdb_options_set_block_based_table_factory(st->opts, bbto);
	rocksdb_block_based_options_destroy(bbto); /* the factory keeps a copy */
	/* Debian's librocksdb links lz4 and zstd */
	rocksdb_options_set_compression(st->opts, rocksdb_lz4_compression);
	rocksdb_options_set_bottommost_compression(st->opts, rocksdb_zstd_compression);
	rocksdb_options_set_write_buffer_size(st->opts, STORE_MEMTABLE_BYTES);
	rocksdb_options_set_max_write_buffer_number(st->opts, 2);
	rocksdb_options_set_db_write_buffer_size(st->opts, STORE_MEMTABLES_TOTAL);
	rocksdb_options_set_max_background_jobs(st->opts, 2);
	rocksdb_options_set_max_open_files(st->opts, 512);
	rocksdb_options_set_keep_log_file_num(st->opts, 4);
	rocksdb_options_set_max_log_file_size(st->opts, 4u << 20);
	/* The broker's one thread is the only writer. Off, RocksDB takes the
	 * memtable insert hints and the in-place updates below. */
	rocksdb_options_set_allow_concurrent_memtable_write(st->opts, 0);
	st->hints = chat_rocks_insert_hints(st->opts) == 0;

	/* convs and qmeta hold one small counter per conversation or device,
	 * rewritten with every send and ack: updated in place, the memtable
	 * keeps one entry per key instead of one per write. */
	st->counter_opts = rocksdb_options_create_copy(st->opts);
	rocksdb_options_set_inplace_update_support(st->counter_opts, 1);
	/* dedup and rstate are read before most writes and usually miss (a new
	 * cid, a first receipt): a memtable bloom filter answers those misses
	 * without a skiplist search. So are msgs, rcpts and refs once their
	 * records are flushed (a replay's backlog): drain instructions per
	 * message 150k -> 126k (docs/BENCHMARKS.md, replay). */
	st->probe_opts = rocksdb_options_create_copy(st->opts);
	rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->probe_opts, 0.1);
	rocksdb_options_set_memtable_whole_key_filtering(st->probe_opts, 1);

	st->ro = rocksdb_readoptions_create();
	st->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wo, opts->sync_writes);
	st->wb = rocksdb_writebatch_create();
}

static int store_cf_index(const char *name)
{
	for (int i = 0; i < STORE_CF_COUNT; i++)
		if (strcmp(name, store_cf_names[i]) == 0)
			return i;
	return -1;
}

/* Turns RocksDB's open failure into one line: a held LOCK is the usual one. */
static int store_open_err(store *st, const char *dir, char *err)
{
	if (strstr(err, "LOCK") || strstr(err, "lock hold"))
		store__fail(st, CHAT_EIO, "store %s is in use by another process (RocksDB LOCK held): %s",
		            dir, err);
	else
		store__fail(st, CHAT_EIO, "cannot open store %s: %s", dir, err);
	rocksdb_free(err);
	return CHAT_EIO;
}

/* Opens every column family we know plus any the store already has. */
static int store_db_open(store *st, const char *dir)
{
	char *err = NULL;
	size_t n_existing = 0;
	char **existing = rocksdb_list_column_families(st->opts, dir, &n_existing, &err);
	if (err) { /* a new store: there is nothing to list */
		rocksdb_free(err);
		err = NULL;
		n_existing = 0;
	}

	size_t n_extra = 0;
	for (size_t i = 0; i < n_existing; i++)
		if (store_cf_index(existing[i]) < 0)
			n_extra++;
	size_t total = STORE_CF_COUNT + n_extra;
	const char **names = calloc(total, sizeof *names);
	const rocksdb_options_t **cfopts = calloc(total, sizeof *cfopts);
	rocksdb_column_family_handle_t **handles = calloc(total, sizeof *handles);
	st->extra_cf = n_extra ? calloc(n_extra, sizeof *st->extra_cf) : NULL;
	int rc = CHAT_OK;
	if (!names || !cfopts || !handles || (n_extra && !st->extra_cf)) {
		rc = store__fail(st, CHAT_ENOMEM, "out of memory opening %s", dir);
		goto out;
	}
	size_t k = 0;
	for (int i = 0; i < STORE_CF_COUNT; i++)
		names[k++] = store_cf_names[i];
	for (size_t i = 0; i < n_existing; i++)
		if (store_cf_index(existing[i]) < 0)
			names[k++] = existing[i];
	for (size_t i = 0; i < total; i++)
		cfopts[i] = st->opts;
	cfopts[STORE_CF_CONVS] = cfopts[STORE_CF_QMETA] = st->counter_opts;
	cfopts[STORE_CF_DEDUP] = cfopts[STORE_CF_RSTATE] = st->probe_opts;
	cfopts[STORE_CF_RCPTS] = cfopts[STORE_CF_REFS] = cfopts[STORE_CF_MSGS] = st->probe_opts;

	st->db = rocksdb_open_column_families(st->opts, dir, (int)total, names, cfopts, handles,
	                                      &err);
	if (err) {
		rc = store_open_err(st, dir, err);
		goto out;
	}
	for (int i = 0; i < STORE_CF_COUNT; i++)
		st->cf[i] = handles[i];
	for (size_t i = 0; i < n_extra; i++)
		st->extra_cf[i] = handles[STORE_CF_COUNT + i];
	st->n_extra_cf = n_extra;
out:
	free(names);
	free(cfopts);
	free(handles);
	if (existing)
		rocksdb_list_column_families_destroy(existing, n_existing);
	return rc;
}

int store_open(store **out, const store_opts *opts, char *errbuf, size_t errlen)
{
	*out = NULL;
	store *st = calloc(1, sizeof *st);
	if (!st) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "out of memory");
		return CHAT_ENOMEM;
	}
	st->dir_fd = -1;
	int rc;
	if (!opts || !opts->dir || !*opts->dir)
		rc = store__fail(st, CHAT_EINVAL, "no store directory given");
	else if (sodium_init() < 0)
		rc = store__fail(st, CHAT_EIO, "libsodium failed to initialise");
	else
		rc = store_dir_check(st, opts->dir);
	if (rc == CHAT_OK) {
		chat_rocks_perf_off(); /* this thread, the broker's, uses the store */
		store_options_init(st, opts);
		rc = store_db_open(st, opts->dir);
	}
	if (rc == CHAT_OK)
		rc = store_meta_init(st);
	if (rc == CHAT_OK && store__caches_open(st) != CHAT_OK)
		rc = store__fail(st, CHAT_ENOMEM, "out of memory");
	if (rc == CHAT_OK && opts->min_free) {
		st->min_free = opts->min_free;
		st->dir_fd = open(opts->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (st->dir_fd < 0)
			rc = store__fail(st, CHAT_EIO, "cannot open %s: %s", opts->dir, strerror(errno));
	}
	if (rc != CHAT_OK) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s", st->err);
		store_close(st);
		return rc;
	}
	*out = st;
	return CHAT_OK;
}

void store_close(store *st)
{
	if (!st)
		return;
	store_group_commit_stop(st);
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	for (int i = 0; i < STORE_CF_COUNT; i++)
		if (st->cf[i])
			rocksdb_column_family_handle_destroy(st->cf[i]);
	for (size_t i = 0; i < st->n_extra_cf; i++)
		rocksdb_column_family_handle_destroy(st->extra_cf[i]);
	free(st->extra_cf);
	if (st->db)
		rocksdb_close(st->db);
	if (st->wb)
		rocksdb_writebatch_destroy(st->wb);
	if (st->ro)
		rocksdb_readoptions_destroy(st->ro);
	if (st->wo)
		rocksdb_writeoptions_destroy(st->wo);
	rocksdb_options_t *opts[] = { st->opts, st->counter_opts, st->probe_opts };
	for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
		if (opts[i])
			rocksdb_options_destroy(opts[i]);
	if (st->cache)
		rocksdb_cache_destroy(st->cache);
	sodium_memzero(st->token_key, sizeof st->token_key);
	free(st->addrs);
	free(st->addr_ptrs);
	free(st->to_sorted);
	store__caches_close(st);
	store__reads_free(st);
	store__qpage_free(st);
	free(st);
}
