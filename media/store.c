// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* store.c — chat-media's metadata (RocksDB), blob files, signed URLs,
 * quotas, the expiry sweep and the MQTT requests (see media.h).
 *
 * RocksDB keys (DIR/meta):
 *   "b\0" id                  -> the blob's record (CBOR map, below)
 *   "x\0" be64(deadline) id   -> "" (the sweep's index)
 *   "q\0" user                -> be64 bytes stored + reserved by user
 * Record: { owner: "U/D", size, type, state: 0 reserved | 1 stored,
 *           deadline: unix s, to: [+ "U/D"], done: bstr (one bit per `to`) }
 *
 * URL signatures: HMAC-SHA256 (libsodium) with the 32-byte secret over
 *   "put\n" id "\n" size "\n" U/D "\n" exp        (PUT; size, U/D: the slot's)
 *   "get\n" id "\n" U/D "\n" exp                  (GET; U/D: dev=)
 * numbers in decimal, base64url without padding. Every write is synced: a
 * blob that answered 201 is on disk with its record.
 */
#include "media.h"

#include "daemon.h"
#include "err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RATE_SLOTS 4096 /* devices tracked by the request rate limit */

typedef struct rate_slot {
	char addr[CHAT_ADDR_MAX + 1];
	double tokens;
	time_t last;
} rate_slot;

struct media {
	media_opts o;
	char dir[PATH_MAX - 64], public_url[512];
	uint8_t secret[MEDIA_SECRET_LEN];
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wopts;
	pthread_mutex_t lock;
	media_counts n;
	rate_slot *rate; /* MQTT thread only */
};

typedef struct rec {
	char owner[CHAT_ADDR_MAX + 1];
	uint64_t size, deadline;
	char type[MEDIA_TYPE_MAX + 1];
	unsigned state;
	uint32_t nto;
	char (*to)[CHAT_ADDR_MAX + 1];
	uint8_t *done;
} rec;

enum { ST_RESERVED = 0, ST_STORED = 1 };

void media_opts_default(media_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_size = 100ull << 20;
	o->quota = 1ull << 30;
	o->ttl_s = 30 * 24 * 3600;
	o->url_ttl_s = 600;
	o->rate_burst = 60;
	o->rate_per_min = 60;
}

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

/* ---- secret and signatures ---- */

bool media_secret_load(const char *path, uint8_t secret[MEDIA_SECRET_LEN], char *err, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		randombytes_buf(secret, MEDIA_SECRET_LEN);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(err, cap, "cannot create the secret file %s: %s", path, strerror(errno));
			return false;
		}
		bool ok = write(fd, secret, MEDIA_SECRET_LEN) == MEDIA_SECRET_LEN && fsync(fd) == 0;
		int e = errno;
		close(fd);
		if (!ok) {
			unlink(path);
			snprintf(err, cap, "cannot write the secret file %s: %s", path, strerror(e));
			return false;
		}
		daemon_log(LOG_INFO, "made a new URL signing secret in %s", path);
		return true;
	}
	if (fd < 0) {
		snprintf(err, cap, "cannot open the secret file %s: %s", path, strerror(errno));
		return false;
	}
	uint8_t buf[MEDIA_SECRET_LEN + 1];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != MEDIA_SECRET_LEN) {
		sodium_memzero(buf, sizeof(buf));
		snprintf(err, cap, "the secret file %s must hold exactly %d bytes (delete it to make "
		         "a new one; URLs already handed out then stop working)", path, MEDIA_SECRET_LEN);
		return false;
	}
	memcpy(secret, buf, MEDIA_SECRET_LEN);
	sodium_memzero(buf, sizeof(buf));
	return true;
}

static void sign(const media *m, const char *msg, char out[MEDIA_SIG_LEN + 1])
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256(mac, (const uint8_t *)msg, strlen(msg), m->secret);
	sodium_bin2base64(out, MEDIA_SIG_LEN + 1, mac, sizeof(mac),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void sign_put(const media *m, const char *id, uint64_t size, const char *owner,
                     uint64_t exp, char out[MEDIA_SIG_LEN + 1])
{
	char msg[256];
	snprintf(msg, sizeof(msg), "put\n%s\n%" PRIu64 "\n%s\n%" PRIu64, id, size, owner, exp);
	sign(m, msg, out);
}

static void sign_get(const media *m, const char *id, const char *dev, uint64_t exp,
                     char out[MEDIA_SIG_LEN + 1])
{
	char msg[256];
	snprintf(msg, sizeof(msg), "get\n%s\n%s\n%" PRIu64, id, dev, exp);
	sign(m, msg, out);
}

static bool sig_ok(const char *want, const char *got)
{
	return got && strlen(got) == MEDIA_SIG_LEN && sodium_memcmp(want, got, MEDIA_SIG_LEN) == 0;
}

/* exp= : a decimal of at most 19 digits. */
static bool parse_exp(const char *s, uint64_t *out)
{
	if (!s || !*s || strlen(s) > 19)
		return false;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return true;
}

/* ---- open / close ---- */

static bool mkdir_in(const char *dir, const char *sub, char *err, size_t cap)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	if (mkdir(p, 0700) != 0 && errno != EEXIST) {
		snprintf(err, cap, "cannot create %s: %s", p, strerror(errno));
		return false;
	}
	return true;
}

/* Temp files of uploads cut short by a stop or a crash. */
static void clean_tmp(const char *dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *e;
	unsigned n = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	closedir(d);
	if (n)
		daemon_log(LOG_INFO, "removed %u unfinished upload(s) from %s", n, p);
}

int media_open(media **out, const media_opts *o, const uint8_t secret[MEDIA_SECRET_LEN],
               char *err, size_t cap)
{
	*out = NULL;
	media *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, cap, "out of memory");
		return CHAT_ENOMEM;
	}
	m->o = *o;
	snprintf(m->dir, sizeof(m->dir), "%s", o->dir);
	media_set_public_url(m, o->public_url ? o->public_url : "");
	m->o.dir = m->dir;
	m->o.public_url = m->public_url;
	memcpy(m->secret, secret, MEDIA_SECRET_LEN);
	pthread_mutex_init(&m->lock, NULL);
	m->rate = calloc(RATE_SLOTS, sizeof(rate_slot));
	if (!m->rate) {
		snprintf(err, cap, "out of memory");
		media_close(m);
		return CHAT_ENOMEM;
	}
	if ((mkdir(m->dir, 0700) != 0 && errno != EEXIST)) {
		snprintf(err, cap, "cannot create %s: %s", m->dir, strerror(errno));
		media_close(m);
		return CHAT_EIO;
	}
	if (!mkdir_in(m->dir, "blobs", err, cap) || !mkdir_in(m->dir, "tmp", err, cap)) {
		media_close(m);
		return CHAT_EIO;
	}
	clean_tmp(m->dir);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/meta", m->dir);
	m->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(m->opts, 1);
	rocksdb_options_set_max_open_files(m->opts, 256);
	rocksdb_options_set_write_buffer_size(m->opts, 8 << 20);
	rocksdb_options_set_keep_log_file_num(m->opts, 3);
	char *rerr = NULL;
	m->db = rocksdb_open(m->opts, path, &rerr);
	if (!m->db) {
		snprintf(err, cap, "cannot open the metadata store %s: %s", path, rerr ? rerr : "?");
		rocksdb_free(rerr);
		media_close(m);
		return CHAT_EIO;
	}
	m->ropts = rocksdb_readoptions_create();
	m->wopts = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(m->wopts, 1);
	*out = m;
	return CHAT_OK;
}

void media_set_public_url(media *m, const char *url)
{
	snprintf(m->public_url, sizeof(m->public_url), "%s", url);
	size_t ul = strlen(m->public_url);
	while (ul && m->public_url[ul - 1] == '/')
		m->public_url[--ul] = 0;
}

void media_close(media *m)
{
	if (!m)
		return;
	if (m->db)
		rocksdb_close(m->db);
	if (m->opts)
		rocksdb_options_destroy(m->opts);
	if (m->ropts)
		rocksdb_readoptions_destroy(m->ropts);
	if (m->wopts)
		rocksdb_writeoptions_destroy(m->wopts);
	pthread_mutex_destroy(&m->lock);
	sodium_memzero(m->secret, sizeof(m->secret));
	free(m->rate);
	free(m);
}

void media_counts_get(media *m, media_counts *c)
{
	pthread_mutex_lock(&m->lock);
	*c = m->n;
	pthread_mutex_unlock(&m->lock);
}

/* ---- records ---- */

static size_t key_blob(char *k, const char *id)
{
	k[0] = 'b', k[1] = 0;
	memcpy(k + 2, id, MEDIA_ID_LEN);
	return 2 + MEDIA_ID_LEN;
}

static size_t key_index(char *k, uint64_t deadline, const char *id)
{
	k[0] = 'x', k[1] = 0;
	for (int i = 0; i < 8; i++)
		k[2 + i] = (char)(deadline >> (56 - 8 * i));
	memcpy(k + 10, id, MEDIA_ID_LEN);
	return 10 + MEDIA_ID_LEN;
}

static size_t key_quota(char *k, const char *user, size_t ul)
{
	k[0] = 'q', k[1] = 0;
	memcpy(k + 2, user, ul);
	return 2 + ul;
}

static void rec_free(rec *r)
{
	free(r->to);
	free(r->done);
	r->to = NULL;
	r->done = NULL;
}

static bool rec_alloc(rec *r, uint32_t nto)
{
	r->nto = nto;
	r->to = calloc(nto ? nto : 1, sizeof(*r->to));
	r->done = calloc((nto + 7) / 8 + 1, 1);
	return r->to && r->done;
}

static bool is_done(const rec *r, uint32_t i)
{
	return r->done[i / 8] & (1u << (i % 8));
}

static int rec_encode(const rec *r, cbw *w)
{
	cbw_reset(w);
	cbw_map(w, 7);
	cbw_text(w, "owner"); cbw_text(w, r->owner);
	cbw_text(w, "size"); cbw_uint(w, r->size);
	cbw_text(w, "type"); cbw_text(w, r->type);
	cbw_text(w, "state"); cbw_uint(w, r->state);
	cbw_text(w, "deadline"); cbw_uint(w, r->deadline);
	cbw_text(w, "to"); cbw_array(w, r->nto);
	for (uint32_t i = 0; i < r->nto; i++)
		cbw_text(w, r->to[i]);
	cbw_text(w, "done"); cbw_bytes(w, r->done, (r->nto + 7) / 8);
	return cbw_status(w);
}

static void copy_text(char *dst, size_t cap, const cbr_item *v)
{
	size_t n = v->len < cap - 1 ? v->len : cap - 1;
	memcpy(dst, v->ptr, n);
	dst[n] = 0;
}

/* CHAT_OK, CHAT_ENOTFOUND, CHAT_EIO or CHAT_ECORRUPT (logged). */
static int rec_load(media *m, const char *id, rec *r)
{
	memset(r, 0, sizeof(*r));
	char k[64];
	size_t kl = key_blob(k, id), vl = 0;
	char *rerr = NULL;
	char *v = rocksdb_get(m->db, m->ropts, k, kl, &vl, &rerr);
	if (rerr) {
		daemon_log(LOG_ERR, "metadata read failed: %s", rerr);
		rocksdb_free(rerr);
		return CHAT_EIO;
	}
	if (!v)
		return CHAT_ENOTFOUND;
	cbr_fields f;
	bool ok = true;
	cbr_fields_open(&f, v, vl, NULL);
	while (ok && cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "owner") && f.val.type == CBR_TEXT) {
			copy_text(r->owner, sizeof(r->owner), &f.val);
		} else if (cbr_eq(&f.key, "type") && f.val.type == CBR_TEXT) {
			copy_text(r->type, sizeof(r->type), &f.val);
		} else if (cbr_eq(&f.key, "size") && f.val.type == CBR_UINT) {
			r->size = f.val.u;
		} else if (cbr_eq(&f.key, "state") && f.val.type == CBR_UINT) {
			r->state = (unsigned)f.val.u;
		} else if (cbr_eq(&f.key, "deadline") && f.val.type == CBR_UINT) {
			r->deadline = f.val.u;
		} else if (cbr_eq(&f.key, "to") && f.val.type == CBR_ARRAY && !f.val.indef &&
		           f.val.u <= MEDIA_TO_MAX && !r->to) {
			ok = rec_alloc(r, (uint32_t)f.val.u);
			for (uint32_t i = 0; ok && i < r->nto; i++) {
				cbr_item e;
				ok = cbr_next(&f.r, &e) == CHAT_OK && e.type == CBR_TEXT;
				if (ok)
					copy_text(r->to[i], sizeof(r->to[i]), &e);
			}
		} else if (cbr_eq(&f.key, "done") && f.val.type == CBR_BYTES && r->to &&
		           f.val.len == (r->nto + 7) / 8) {
			memcpy(r->done, f.val.ptr, f.val.len);
		} else {
			ok = false;
		}
	}
	ok = ok && !cbr_fields_close(&f, NULL) && r->to && r->owner[0];
	rocksdb_free(v);
	if (!ok) {
		daemon_log(LOG_ERR, "the metadata record of blob %.*s does not decode", MEDIA_ID_LEN, id);
		rec_free(r);
		return CHAT_ECORRUPT;
	}
	return CHAT_OK;
}

static uint64_t quota_get(media *m, const char *user, size_t ul)
{
	char k[80];
	size_t kl = key_quota(k, user, ul), vl = 0;
	char *rerr = NULL;
	char *v = rocksdb_get(m->db, m->ropts, k, kl, &vl, &rerr);
	uint64_t q = 0;
	if (v && vl == 8)
		for (int i = 0; i < 8; i++)
			q = q << 8 | (uint8_t)v[i];
	rocksdb_free(v);
	rocksdb_free(rerr);
	return q;
}

static void quota_put(rocksdb_writebatch_t *b, const char *user, size_t ul, uint64_t q)
{
	char k[80], v[8];
	size_t kl = key_quota(k, user, ul);
	for (int i = 0; i < 8; i++)
		v[i] = (char)(q >> (56 - 8 * i));
	if (q)
		rocksdb_writebatch_put(b, k, kl, v, 8);
	else
		rocksdb_writebatch_delete(b, k, kl);
}

static int batch_write(media *m, rocksdb_writebatch_t *b)
{
	char *rerr = NULL;
	rocksdb_write(m->db, m->wopts, b, &rerr);
	rocksdb_writebatch_destroy(b);
	if (rerr) {
		daemon_log(LOG_ERR, "metadata write failed: %s", rerr);
		rocksdb_free(rerr);
		return CHAT_EIO;
	}
	return CHAT_OK;
}

static void blob_path(const media *m, const char *id, char *p)
{
	snprintf(p, PATH_MAX, "%s/blobs/%.*s", m->dir, MEDIA_ID_LEN, id);
}

/* Deletes blob id (record r, loaded): its file, record, index entry, and
 * its bytes from the owner's quota. Lock held. */
static int blob_delete(media *m, const char *id, const rec *r)
{
	char p[PATH_MAX];
	blob_path(m, id, p);
	if (unlink(p) != 0 && errno != ENOENT)
		daemon_log(LOG_WARN, "cannot delete %s: %s", p, strerror(errno));
	rocksdb_writebatch_t *b = rocksdb_writebatch_create();
	char k[64];
	size_t kl = key_blob(k, id);
	rocksdb_writebatch_delete(b, k, kl);
	kl = key_index(k, r->deadline, id);
	rocksdb_writebatch_delete(b, k, kl);
	size_t ul = chat_addr_user_len(r->owner);
	uint64_t q = quota_get(m, r->owner, ul);
	quota_put(b, r->owner, ul, q > r->size ? q - r->size : 0);
	return batch_write(m, b);
}

/* ---- MQTT requests ---- */

static void resp_start(cbw *w, const media_req *q, bool ok, size_t extra)
{
	cbw_reset(w);
	cbw_map(w, (q->has_rid ? 1 : 0) + 1 + extra);
	if (q->has_rid) {
		cbw_text(w, "rid");
		cbw_uint(w, q->rid);
	}
	cbw_text(w, "ok");
	cbw_bool(w, ok);
}

static int resp_error(cbw *w, const media_req *q, const char *code, const char *msg,
                      uint64_t retry_after, const char **out_code)
{
	*out_code = code;
	resp_start(w, q, false, retry_after ? 3 : 2);
	cbw_text(w, "code"); cbw_text(w, code);
	cbw_text(w, "msg"); cbw_text(w, msg);
	if (retry_after) {
		cbw_text(w, "retry_after");
		cbw_uint(w, retry_after);
	}
	return cbw_status(w);
}

/* A token bucket per device (a small table; a device that loses its slot
 * to another starts with a full bucket). 0, or seconds to wait. */
static uint64_t rate_take(media *m, const char *addr)
{
	if (!m->o.rate_per_min)
		return 0;
	uint32_t h = 2166136261u;
	for (const char *p = addr; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	rate_slot *s = &m->rate[h % RATE_SLOTS];
	time_t now = daemon_mono_s();
	if (strcmp(s->addr, addr) != 0) {
		snprintf(s->addr, sizeof(s->addr), "%s", addr);
		s->tokens = m->o.rate_burst;
		s->last = now;
	}
	s->tokens += (double)(now - s->last) * m->o.rate_per_min / 60.0;
	if (s->tokens > m->o.rate_burst)
		s->tokens = m->o.rate_burst;
	s->last = now;
	if (s->tokens < 1) {
		uint64_t wait = (uint64_t)((1 - s->tokens) * 60.0 / m->o.rate_per_min) + 1;
		return wait;
	}
	s->tokens -= 1;
	return 0;
}

static void make_id(char id[MEDIA_ID_LEN + 1])
{
	uint8_t raw[16];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(id, MEDIA_ID_LEN + 1, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int do_slot(media *m, const char *owner, const media_req *q, cbw *w, const char **code)
{
	if (q->size > m->o.max_size) {
		char msg[128];
		snprintf(msg, sizeof(msg), "size %" PRIu64 " is over this server's limit of %" PRIu64
		         " bytes", q->size, m->o.max_size);
		return resp_error(w, q, "too_large", msg, 0, code);
	}
	size_t ul = chat_addr_user_len(owner);
	rec r;
	memset(&r, 0, sizeof(r));
	if (!rec_alloc(&r, q->nto)) {
		rec_free(&r);
		return resp_error(w, q, "internal", "out of memory", 0, code);
	}
	snprintf(r.owner, sizeof(r.owner), "%s", owner);
	r.size = q->size;
	memcpy(r.type, q->type, q->type_len);
	r.type[q->type_len] = 0;
	r.state = ST_RESERVED;
	uint64_t now = now_s(), exp = now + m->o.url_ttl_s;
	r.deadline = exp + MEDIA_UPLOAD_GRACE_S;
	for (uint32_t i = 0; i < q->nto; i++) {
		memcpy(r.to[i], q->to[i].p, q->to[i].len);
		r.to[i][q->to[i].len] = 0;
	}
	char id[MEDIA_ID_LEN + 1];
	make_id(id);
	cbw rb;
	cbw_init(&rb);
	int rc = rec_encode(&r, &rb);

	pthread_mutex_lock(&m->lock);
	uint64_t used = quota_get(m, owner, ul);
	bool over = rc == CHAT_OK && (used > m->o.quota || q->size > m->o.quota - used);
	if (rc == CHAT_OK && !over) {
		rocksdb_writebatch_t *b = rocksdb_writebatch_create();
		char k[64];
		size_t kl = key_blob(k, id);
		rocksdb_writebatch_put(b, k, kl, (const char *)rb.buf, rb.len);
		kl = key_index(k, r.deadline, id);
		rocksdb_writebatch_put(b, k, kl, "", 0);
		quota_put(b, owner, ul, used + q->size);
		rc = batch_write(m, b);
		if (rc == CHAT_OK)
			m->n.slots++;
	}
	pthread_mutex_unlock(&m->lock);
	cbw_free(&rb);
	rec_free(&r);
	if (rc != CHAT_OK)
		return resp_error(w, q, "internal", "the metadata store failed; nothing was reserved",
		                  0, code);
	if (over) {
		char msg[192];
		snprintf(msg, sizeof(msg), "%.*s has %" PRIu64 " of %" PRIu64 " bytes stored or "
		         "reserved: %" PRIu64 " more would pass the quota", (int)ul, owner, used,
		         m->o.quota, q->size);
		return resp_error(w, q, "quota", msg, 0, code);
	}
	char sig[MEDIA_SIG_LEN + 1], url[1024];
	sign_put(m, id, q->size, owner, exp, sig);
	snprintf(url, sizeof(url), "%s/v1/blob/%s?exp=%" PRIu64 "&sig=%s", m->public_url, id, exp,
	         sig);
	daemon_log(LOG_DEBUG, "slot %s for %s: %" PRIu64 " bytes to %u device(s)", id, owner,
	           q->size, q->nto);
	*code = NULL;
	resp_start(w, q, true, 3);
	cbw_text(w, "id"); cbw_text(w, id);
	cbw_text(w, "put"); cbw_text(w, url);
	cbw_text(w, "expires"); cbw_uint(w, exp);
	return cbw_status(w);
}

static int do_get(media *m, const char *dev, const media_req *q, cbw *w, const char **code)
{
	char id[MEDIA_ID_LEN + 1];
	memcpy(id, q->id, MEDIA_ID_LEN);
	id[MEDIA_ID_LEN] = 0;
	rec r;
	pthread_mutex_lock(&m->lock);
	int rc = rec_load(m, id, &r);
	pthread_mutex_unlock(&m->lock);
	if (rc == CHAT_ENOTFOUND)
		return resp_error(w, q, "not_found", "no such blob (never made, expired, or "
		                  "downloaded by every recipient)", 0, code);
	if (rc != CHAT_OK)
		return resp_error(w, q, "internal", "the metadata store failed", 0, code);
	int32_t at = -1;
	for (uint32_t i = 0; i < r.nto; i++)
		if (strcmp(r.to[i], dev) == 0)
			at = (int32_t)i;
	uint64_t size = r.size, state = r.state;
	bool done = at >= 0 && is_done(&r, (uint32_t)at);
	rec_free(&r);
	/* Not a recipient, or done with it: the same answer as no blob, so a
	 * device learns nothing about blobs that are not for it. */
	if (at < 0 || done)
		return resp_error(w, q, "not_found", "no such blob (never made, expired, or "
		                  "downloaded by every recipient)", 0, code);
	if (state != ST_STORED)
		return resp_error(w, q, "not_ready", "the blob has not been uploaded yet", 0, code);
	uint64_t exp = now_s() + m->o.url_ttl_s;
	char sig[MEDIA_SIG_LEN + 1], url[1024], esc[CHAT_ADDR_MAX + 8];
	sign_get(m, id, dev, exp, sig);
	/* dev's '/' percent-encoded: a query value may hold it, but some
	 * clients are stricter than RFC 3986 */
	const char *slash = strchr(dev, '/');
	snprintf(esc, sizeof(esc), "%.*s%%2F%s", (int)(slash - dev), dev, slash + 1);
	snprintf(url, sizeof(url), "%s/v1/blob/%s?dev=%s&exp=%" PRIu64 "&sig=%s", m->public_url, id,
	         esc, exp, sig);
	pthread_mutex_lock(&m->lock);
	m->n.grants++;
	pthread_mutex_unlock(&m->lock);
	*code = NULL;
	resp_start(w, q, true, 3);
	cbw_text(w, "url"); cbw_text(w, url);
	cbw_text(w, "size"); cbw_uint(w, size);
	cbw_text(w, "expires"); cbw_uint(w, exp);
	return cbw_status(w);
}

int media_request(media *m, const char *user, const char *dev, const void *buf, size_t len,
                  cbw *out, const char **code)
{
	media_req *q = malloc(sizeof(*q));
	if (!q) {
		media_req none = { 0 };
		return resp_error(out, &none, "internal", "out of memory", 0, code);
	}
	char addr[CHAT_ADDR_MAX + 1];
	snprintf(addr, sizeof(addr), "%s/%s", user, dev);
	int rc;
	const char *bad = media_req_parse(buf, len, q);
	uint64_t wait;
	if (bad)
		rc = resp_error(out, q, "bad_request", bad, 0, code);
	else if ((wait = rate_take(m, addr)))
		rc = resp_error(out, q, "rate", "too many requests from this device; retry later",
		                wait, code);
	else if (q->op == MEDIA_OP_SLOT)
		rc = do_slot(m, addr, q, out, code);
	else
		rc = do_get(m, addr, q, out, code);
	if (*code) {
		pthread_mutex_lock(&m->lock);
		m->n.refused++;
		pthread_mutex_unlock(&m->lock);
	}
	free(q);
	return rc;
}

/* ---- HTTP: uploads ---- */

static bool refuse(media_http_err *e, unsigned status, const char *why)
{
	e->status = status;
	e->why = why;
	return false;
}

bool media_put_check(media *m, const char *id, const char *exp_s, const char *sig,
                     bool have_clen, uint64_t clen, uint64_t *size, media_http_err *e)
{
	uint64_t exp;
	if (!parse_exp(exp_s, &exp) || !sig)
		return refuse(e, 403, "the URL lacks a valid exp and sig");
	rec r;
	pthread_mutex_lock(&m->lock);
	int rc = rec_load(m, id, &r);
	pthread_mutex_unlock(&m->lock);
	if (rc == CHAT_ENOTFOUND)
		return refuse(e, 404, "no such upload slot");
	if (rc != CHAT_OK)
		return refuse(e, 500, "the metadata store failed");
	char want[MEDIA_SIG_LEN + 1];
	sign_put(m, id, r.size, r.owner, exp, want);
	unsigned state = r.state;
	*size = r.size;
	rec_free(&r);
	if (!sig_ok(want, sig))
		return refuse(e, 403, "bad signature");
	if (exp < now_s())
		return refuse(e, 403, "the upload URL has expired; ask for a new slot");
	if (state != ST_RESERVED)
		return refuse(e, 409, "this blob was already uploaded");
	if (!have_clen)
		return refuse(e, 400, "Content-Length is required (no chunked uploads)");
	if (clen > *size)
		return refuse(e, 413, "Content-Length is larger than the size declared for the slot");
	if (clen != *size)
		return refuse(e, 400, "Content-Length differs from the size declared for the slot");
	return true;
}

int media_put_tmp(media *m, const char *id, char *path)
{
	uint32_t r = randombytes_random();
	snprintf(path, PATH_MAX, "%s/tmp/%.*s.%08x", m->dir, MEDIA_ID_LEN, id, r);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		daemon_log(LOG_ERR, "cannot create %s: %s", path, strerror(errno));
	return fd;
}

bool media_put_commit(media *m, const char *id, const char *tmp, media_http_err *e)
{
	rec r;
	bool ok = false;
	pthread_mutex_lock(&m->lock);
	int rc = rec_load(m, id, &r);
	if (rc == CHAT_ENOTFOUND) {
		refuse(e, 410, "the upload slot expired during the upload");
	} else if (rc != CHAT_OK) {
		refuse(e, 500, "the metadata store failed");
	} else if (r.state != ST_RESERVED) {
		refuse(e, 409, "this blob was already uploaded");
	} else {
		char p[PATH_MAX];
		blob_path(m, id, p);
		if (rename(tmp, p) != 0) {
			daemon_log(LOG_ERR, "cannot move %s to %s: %s", tmp, p, strerror(errno));
			refuse(e, 500, "the upload could not be stored");
		} else {
			/* the rename itself, durable before we say 201 */
			char d[PATH_MAX];
			snprintf(d, sizeof(d), "%s/blobs", m->dir);
			int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
			rocksdb_writebatch_t *b = rocksdb_writebatch_create();
			char k[64];
			size_t kl = key_index(k, r.deadline, id);
			rocksdb_writebatch_delete(b, k, kl);
			r.state = ST_STORED;
			r.deadline = now_s() + m->o.ttl_s;
			kl = key_index(k, r.deadline, id);
			rocksdb_writebatch_put(b, k, kl, "", 0);
			cbw w;
			cbw_init(&w);
			if (rec_encode(&r, &w) == CHAT_OK) {
				kl = key_blob(k, id);
				rocksdb_writebatch_put(b, k, kl, (const char *)w.buf, w.len);
				ok = batch_write(m, b) == CHAT_OK;
			} else {
				rocksdb_writebatch_destroy(b);
			}
			cbw_free(&w);
			if (ok) {
				m->n.uploads++;
			} else {
				unlink(p);
				refuse(e, 500, "the metadata store failed");
			}
		}
	}
	if (rc == CHAT_OK)
		rec_free(&r);
	pthread_mutex_unlock(&m->lock);
	unlink(tmp); /* gone after a rename; a refused upload's bytes go */
	return ok;
}

/* ---- HTTP: downloads ---- */

bool media_get_open(media *m, const char *id, const char *dev, const char *exp_s,
                    const char *sig, int *fd, uint64_t *size, media_http_err *e)
{
	uint64_t exp;
	const char *u, *d;
	size_t ul, dl;
	if (!dev || !chat_parse_addr(dev, strlen(dev), &u, &ul, &d, &dl))
		return refuse(e, 403, "the URL lacks a valid dev");
	if (!parse_exp(exp_s, &exp) || !sig)
		return refuse(e, 403, "the URL lacks a valid exp and sig");
	char want[MEDIA_SIG_LEN + 1];
	sign_get(m, id, dev, exp, want);
	if (!sig_ok(want, sig))
		return refuse(e, 403, "bad signature");
	if (exp < now_s())
		return refuse(e, 403, "the download URL has expired; ask for a new grant");
	rec r;
	bool ok = false;
	pthread_mutex_lock(&m->lock);
	int rc = rec_load(m, id, &r);
	if (rc == CHAT_ENOTFOUND) {
		refuse(e, 404, "no such blob");
	} else if (rc != CHAT_OK) {
		refuse(e, 500, "the metadata store failed");
	} else {
		int32_t at = -1;
		for (uint32_t i = 0; i < r.nto; i++)
			if (strcmp(r.to[i], dev) == 0)
				at = (int32_t)i;
		if (at < 0) {
			refuse(e, 404, "no such blob");
		} else if (is_done(&r, (uint32_t)at)) {
			refuse(e, 410, "this device has already downloaded the blob");
		} else if (r.state != ST_STORED) {
			refuse(e, 404, "the blob has not been uploaded yet");
		} else {
			char p[PATH_MAX];
			blob_path(m, id, p);
			*fd = open(p, O_RDONLY | O_CLOEXEC);
			if (*fd < 0) {
				daemon_log(LOG_ERR, "cannot open %s: %s", p, strerror(errno));
				refuse(e, 500, "the blob cannot be read");
			} else {
				*size = r.size;
				ok = true;
			}
		}
		rec_free(&r);
	}
	pthread_mutex_unlock(&m->lock);
	return ok;
}

/* Marks dev done in blob id; deletes the blob when every device is. Lock
 * held. true when it deleted it. */
static bool mark_done(media *m, const char *id, const char *dev)
{
	rec r;
	if (rec_load(m, id, &r) != CHAT_OK)
		return false; /* deleted meanwhile (expired, or the last device was faster) */
	bool all = true, changed = false, deleted = false;
	for (uint32_t i = 0; i < r.nto; i++) {
		if (strcmp(r.to[i], dev) == 0 && !is_done(&r, i)) {
			r.done[i / 8] |= (uint8_t)(1u << (i % 8));
			changed = true;
		}
		all = all && is_done(&r, i);
	}
	if (all && changed) {
		if (blob_delete(m, id, &r) == CHAT_OK) {
			m->n.deleted_done++;
			deleted = true;
			daemon_log(LOG_INFO, "blob %.*s: every recipient device has it; deleted",
			           MEDIA_ID_LEN, id);
		}
	} else if (changed) {
		cbw w;
		cbw_init(&w);
		if (rec_encode(&r, &w) == CHAT_OK) {
			rocksdb_writebatch_t *b = rocksdb_writebatch_create();
			char k[64];
			size_t kl = key_blob(k, id);
			rocksdb_writebatch_put(b, k, kl, (const char *)w.buf, w.len);
			batch_write(m, b);
		}
		cbw_free(&w);
	}
	rec_free(&r);
	return deleted;
}

void media_get_done(media *m, const char *id, const char *dev)
{
	pthread_mutex_lock(&m->lock);
	m->n.downloads++;
	mark_done(m, id, dev);
	pthread_mutex_unlock(&m->lock);
}

unsigned media_device_removed(media *m, const char *addr)
{
	/* the ids of the blobs that name addr, from a snapshot iterator; each
	 * is then changed under the lock on its own */
	size_t n = 0, cap = 0;
	char (*ids)[MEDIA_ID_LEN + 1] = NULL;
	size_t alen = strlen(addr);
	rocksdb_iterator_t *it = rocksdb_create_iterator(m->db, m->ropts);
	for (rocksdb_iter_seek(it, "b\0", 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		if (kl != 2 + MEDIA_ID_LEN || k[0] != 'b' || k[1] != 0)
			break;
		const char *v = rocksdb_iter_value(it, &vl);
		/* a cheap filter: the address's text is in the record */
		if (!memmem(v, vl, addr, alen))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			void *p = realloc(ids, nc * sizeof(*ids));
			if (!p)
				break;
			ids = p;
			cap = nc;
		}
		memcpy(ids[n], k + 2, MEDIA_ID_LEN);
		ids[n][MEDIA_ID_LEN] = 0;
		n++;
	}
	rocksdb_iter_destroy(it);
	unsigned deleted = 0;
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&m->lock);
		deleted += mark_done(m, ids[i], addr);
		pthread_mutex_unlock(&m->lock);
	}
	free(ids);
	return deleted;
}

/* ---- the sweep ---- */

unsigned media_sweep(media *m, uint64_t now)
{
	unsigned n = 0;
	for (;;) {
		/* one at a time under the lock, so uploads and downloads interleave */
		char id[MEDIA_ID_LEN + 1];
		bool found = false;
		pthread_mutex_lock(&m->lock);
		rocksdb_iterator_t *it = rocksdb_create_iterator(m->db, m->ropts);
		rocksdb_iter_seek(it, "x\0", 2);
		if (rocksdb_iter_valid(it)) {
			size_t kl;
			const char *k = rocksdb_iter_key(it, &kl);
			if (kl == 10 + MEDIA_ID_LEN && k[0] == 'x' && k[1] == 0) {
				uint64_t dl = 0;
				for (int i = 0; i < 8; i++)
					dl = dl << 8 | (uint8_t)k[2 + i];
				if (dl <= now) {
					memcpy(id, k + 10, MEDIA_ID_LEN);
					id[MEDIA_ID_LEN] = 0;
					found = true;
					rec r;
					int rc = rec_load(m, id, &r);
					if (rc == CHAT_OK) {
						bool stored = r.state == ST_STORED;
						if (blob_delete(m, id, &r) == CHAT_OK) {
							m->n.deleted_expired++;
							n++;
							daemon_log(LOG_INFO, "blob %s: %s; deleted", id, stored ?
							           "its TTL passed" : "never uploaded");
						} else {
							found = false; /* the store fails: try at the next sweep */
						}
						rec_free(&r);
					} else {
						/* an index entry without its record: drop it */
						rocksdb_writebatch_t *b = rocksdb_writebatch_create();
						rocksdb_writebatch_delete(b, k, kl);
						if (batch_write(m, b) != CHAT_OK)
							found = false;
					}
				}
			}
		}
		rocksdb_iter_destroy(it);
		pthread_mutex_unlock(&m->lock);
		if (!found)
			return n;
	}
}
