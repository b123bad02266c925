// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_store_record — the store reading back records it did not write
 * (disk corruption, a bug in an older version, a hand-edited database):
 * every decoder of a stored value or key must answer an error, never crash.
 *
 * The store (white-box, through store_internal.h's raw handles) holds a
 * fixture: message dm:alice:bob #1 from alice/phone, queued for bob/tablet,
 * with its refcount, rcpts, dedup, expiry, receipt state, the conversation's
 * last seq, bob/tablet's queue counter, device and service accounts, bob's
 * prefs and the admin hash. An input is
 *   u8 kind, bytes...
 * and replaces one of those values, or adds a key, with the bytes; then
 * every reader runs over it: store_msg_get, store_dedup_get,
 * store_conv_last_seq, store_queue_count, store_queue_read, store_device_get
 * and _each, store_service_get and _each, store_prefs_get, store_admin_get, store_caps_each,
 * store_receipts, store_deliver, store_ack, store_queue_remove and
 * store_expire. The fixture is written again before the next input, so inputs are
 * independent (the store is recreated every REOPEN_INPUTS inputs to keep
 * its files small). What the readers hand out is read byte by byte, so a
 * length that overstates a buffer shows up under ASan.
 */
#include "err.h"
#include "store_internal.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REOPEN_INPUTS 5000
#define CONV "dm:alice:bob"
#define FROM "alice/phone"
#define TO "bob/tablet"
#define EXPIRES 1000ULL

enum kind {
	K_MSG, K_REFS, K_RCPTS, K_QUEUE, K_QMETA, K_DEDUP, K_CONVS, K_DEVICE, K_SERVICE, K_PREFS,
	K_RSTATE, K_ADMIN,
	/* the bytes are (the variable part of) a key */
	K_QUEUE_KEY, K_EXPIRY_KEY, K_RCPTS_KEY, K_RSTATE_KEY, K_DEVICE_KEY, K_SERVICE_KEY,
	K_CAPS,     /* a value, added after the key kinds (its handling is the value kinds') */
	K_CAPS_KEY,
	K_COUNT
};

static struct {
	store *st;
	char base[1024], dir[1100];
	unsigned generation;
	uint64_t inputs;
	volatile uint8_t sink;
} S;

static void die(const char *why, const char *detail)
{
	fprintf(stderr, "fuzz_store_record: %s: %s\n", why, detail ? detail : "");
	abort();
}

/* Reads every byte, so ASan checks the whole range. */
static void touch(const void *p, size_t n)
{
	const volatile uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		S.sink ^= b[i];
}

static void check_str(const char *s, size_t max, const char *what)
{
	if (!s)
		return;
	size_t n = strnlen(s, max + 1);
	if (n > max)
		die("an unterminated or over-long string from", what);
	touch(s, n + 1);
}

static void check_msg(const store_msg *m)
{
	check_str(m->conv, CHAT_CONV_MAX, "a message's conv");
	check_str(m->from, CHAT_ADDR_MAX, "a message's sender");
	if (m->body && m->bodies)
		die("a message with both body and bodies", NULL);
	if (!m->cid.is_uint && m->cid.len > STORE_CID_MAX)
		die("a cid over 16 bytes", NULL);
	touch(m->cid.bytes, m->cid.len);
	if (m->body)
		touch(m->body, m->body_len);
	if (m->bodies)
		touch(m->bodies, m->bodies_len);
}

/* ---- the fixture ---- */

static size_t msgkey(uint8_t *k)
{
	return store__msgkey(k, CONV, 1);
}

static size_t msg_record(uint8_t *out)
{
	uint8_t *p = out;
	*p++ = 1;                         /* version */
	*p++ = 0x02;                      /* MSG_F_CID_UINT */
	store__be64_put(p, 900); p += 8;   /* ts */
	store__be64_put(p, EXPIRES); p += 8;
	store__be64_put(p, 0); p += 8;     /* type */
	*p++ = 8;
	store__be64_put(p, 7); p += 8;     /* cid 7 */
	*p++ = (uint8_t)strlen(FROM);
	memcpy(p, FROM, strlen(FROM) + 1); p += strlen(FROM) + 1;
	*p++ = 0; *p++ = 0; *p++ = 0; *p++ = 2;
	*p++ = 'h'; *p++ = 'i';
	return (size_t)(p - out);
}

static void put(enum store_cf cf, const void *k, size_t kl, const void *v, size_t vl)
{
	rocksdb_writebatch_put_cf(S.st->wb, S.st->cf[cf], k, kl, v, vl);
}

static void put_u64(enum store_cf cf, const void *k, size_t kl, uint64_t v)
{
	uint8_t b[8];
	store__be64_put(b, v);
	put(cf, k, kl, b, 8);
}

static void put_cred(enum store_cf cf, const void *k, size_t kl)
{
	uint8_t rec[1 + STORE_HASH_LEN + 8];
	rec[0] = 1;
	memset(rec + 1, 0xab, STORE_HASH_LEN);
	store__be64_put(rec + 1 + STORE_HASH_LEN, 900);
	put(cf, k, kl, rec, sizeof(rec));
}

/* Writes the fixture, then the input's record, in one batch. */
static void write_input(enum kind kind, const uint8_t *v, size_t vl)
{
	uint8_t mk[STORE_MSGKEY_MAX], rk[STORE_RCPTKEY_MAX], qk[CHAT_ADDR_MAX + 9], buf[512];
	uint8_t dk[STORE_DEDUPKEY_MAX], ek[8 + 1 + STORE_MSGKEY_MAX], key[1024];
	size_t mkl = msgkey(mk), n;
	store__batch(S.st);

	n = msg_record(buf);
	put(STORE_CF_MSGS, mk, mkl, buf, n);
	put_u64(STORE_CF_REFS, mk, mkl, 1);
	n = store__rcptkey(rk, mk, mkl, TO, strlen(TO));
	put_u64(STORE_CF_RCPTS, rk, n, 1);
	n = store__qkey(qk, TO, strlen(TO), 1);
	buf[0] = STORE_QE_MSG;
	memcpy(buf + 1, mk, mkl);
	put(STORE_CF_QUEUES, qk, n, buf, 1 + mkl);
	store__be64_put(buf, 2);
	store__be64_put(buf + 8, 1);
	put(STORE_CF_QMETA, TO, strlen(TO), buf, 16);
	store_cid cid = { .is_uint = true, .u = 7 };
	size_t dkl = store__dedupkey(dk, FROM, &cid);
	memcpy(buf, mk, mkl);
	store__be64_put(buf + mkl, EXPIRES);
	put(STORE_CF_DEDUP, dk, dkl, buf, mkl + 8);
	store__be64_put(ek, EXPIRES);
	ek[8] = 0;
	memcpy(ek + 9, mk, mkl);
	put(STORE_CF_EXPIRY, ek, 9 + mkl, "", 0);
	put_u64(STORE_CF_CONVS, CONV, strlen(CONV), 1);
	put_cred(STORE_CF_DEVICES, "bob\0tablet", 10);
	put_cred(STORE_CF_SERVICES, "keys", 4);
	put(STORE_CF_PREFS, "bob", 3, "\x01\x01\x00", 3);
	put(STORE_CF_CAPS, "bob\0tablet", 10, "\x01\x00\x00\x00\x05", 5);
	size_t rsl = store__rcptkey(key, mk, mkl, "bob", 3);
	put(STORE_CF_RSTATE, key, rsl, "\x01", 1);
	memset(buf, 0xcd, STORE_HASH_LEN);
	put(STORE_CF_META, STORE_META_ADMIN, strlen(STORE_META_ADMIN), buf, STORE_HASH_LEN);

	switch (kind) {
	case K_MSG: put(STORE_CF_MSGS, mk, mkl, v, vl); break;
	case K_REFS: put(STORE_CF_REFS, mk, mkl, v, vl); break;
	case K_RCPTS: put(STORE_CF_RCPTS, rk, store__rcptkey(rk, mk, mkl, TO, strlen(TO)), v, vl); break;
	case K_QUEUE: put(STORE_CF_QUEUES, qk, store__qkey(qk, TO, strlen(TO), 1), v, vl); break;
	case K_QMETA: put(STORE_CF_QMETA, TO, strlen(TO), v, vl); break;
	case K_DEDUP: put(STORE_CF_DEDUP, dk, dkl, v, vl); break;
	case K_CONVS: put(STORE_CF_CONVS, CONV, strlen(CONV), v, vl); break;
	case K_DEVICE: put(STORE_CF_DEVICES, "bob\0tablet", 10, v, vl); break;
	case K_SERVICE: put(STORE_CF_SERVICES, "keys", 4, v, vl); break;
	case K_PREFS: put(STORE_CF_PREFS, "bob", 3, v, vl); break;
	case K_RSTATE: put(STORE_CF_RSTATE, key, rsl, v, vl); break;
	case K_ADMIN: put(STORE_CF_META, STORE_META_ADMIN, strlen(STORE_META_ADMIN), v, vl); break;
	case K_CAPS: put(STORE_CF_CAPS, "bob\0tablet", 10, v, vl); break;
	default: break;
	}
	if (kind >= K_QUEUE_KEY && vl <= 512) {
		/* the key kinds: a variable part after a fixed lead, so the
		 * readers' prefix scans meet it */
		size_t kl = 0;
		buf[0] = STORE_QE_MSG;
		memcpy(buf + 1, mk, mkl);
		switch (kind) {
		case K_QUEUE_KEY:
			memcpy(key, TO "\0", strlen(TO) + 1);
			kl = strlen(TO) + 1;
			memcpy(key + kl, v, vl);
			put(STORE_CF_QUEUES, key, kl + vl, buf, 1 + mkl);
			break;
		case K_EXPIRY_KEY:
			put(STORE_CF_EXPIRY, v, vl, "", 0);
			break;
		case K_RCPTS_KEY:
		case K_RSTATE_KEY:
			memcpy(key, mk, mkl);
			key[mkl] = 0;
			memcpy(key + mkl + 1, v, vl);
			if (kind == K_RCPTS_KEY)
				put_u64(STORE_CF_RCPTS, key, mkl + 1 + vl, 1);
			else
				put(STORE_CF_RSTATE, key, mkl + 1 + vl, "\x01", 1);
			break;
		case K_DEVICE_KEY: put_cred(STORE_CF_DEVICES, v, vl); break;
		case K_SERVICE_KEY: put_cred(STORE_CF_SERVICES, v, vl); break;
		case K_CAPS_KEY: put(STORE_CF_CAPS, v, vl, "\x01\x00\x00\x00\x01", 5); break;
		default: break;
		}
	}
	if (store__commit(S.st) != CHAT_OK)
		die("writing the fixture failed", store_errmsg(S.st));
	store__caches_forget(S.st); /* raw records, behind the counter cache's back */
}

/* Deletes every key a key-kind input may have added, and what the readers
 * derived from it (queue counters of odd addresses), in one batch. */
static void wipe_keys(void)
{
	static const enum store_cf cfs[] = { STORE_CF_QUEUES, STORE_CF_EXPIRY, STORE_CF_RCPTS,
	                                     STORE_CF_RSTATE, STORE_CF_DEVICES, STORE_CF_SERVICES,
	                                     STORE_CF_QMETA, STORE_CF_CAPS };
	rocksdb_writebatch_t *wb = store__batch(S.st);
	for (size_t i = 0; i < sizeof(cfs) / sizeof(cfs[0]); i++) {
		rocksdb_iterator_t *it = rocksdb_create_iterator_cf(S.st->db, S.st->ro, S.st->cf[cfs[i]]);
		for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
			size_t kl;
			const char *k = rocksdb_iter_key(it, &kl);
			rocksdb_writebatch_delete_cf(wb, S.st->cf[cfs[i]], k, kl);
		}
		rocksdb_iter_destroy(it);
	}
	if (store__commit(S.st) != CHAT_OK)
		die("wiping keys failed", store_errmsg(S.st));
	store__caches_forget(S.st);
}

/* ---- the readers ---- */

static int rc_ok(int rc, const char *what)
{
	if (rc == CHAT_ECORRUPT && !store_errmsg(S.st)[0])
		die("CHAT_ECORRUPT without a message from", what);
	if (rc == CHAT_ENOMEM || rc < 0 || rc > CHAT_ECORRUPT)
		die("an unexpected result from", what);
	return rc;
}

static int queue_cb(void *arg, const store_qentry *e, const store_msg *m)
{
	(void)arg;
	if (e->kind == STORE_Q_MSG) {
		check_str(e->conv, CHAT_CONV_MAX, "a queue entry's conv");
		if (m)
			check_msg(m);
	} else if (e->kind == STORE_Q_EVENT) {
		touch(e->event, e->event_len);
	} else {
		die("a queue entry of an unknown kind", NULL);
	}
	return CHAT_OK;
}

static int device_cb(void *arg, const char *u, const char *d, const uint8_t hash[STORE_HASH_LEN])
{
	(void)arg;
	check_str(u, CHAT_USER_MAX, "store_devices_each");
	check_str(d, CHAT_DEVICE_MAX, "store_devices_each");
	touch(hash, STORE_HASH_LEN);
	return CHAT_OK;
}

static int service_cb(void *arg, const char *name, const uint8_t hash[STORE_HASH_LEN],
                      enum store_role role)
{
	(void)arg;
	(void)role;
	check_str(name, STORE_NAME_MAX, "store_services_each");
	touch(hash, STORE_HASH_LEN);
	return CHAT_OK;
}

static int caps_cb(void *arg, const char *u, const char *d, uint32_t caps)
{
	(void)arg;
	(void)caps;
	check_str(u, CHAT_USER_MAX, "store_caps_each");
	check_str(d, CHAT_DEVICE_MAX, "store_caps_each");
	return CHAT_OK;
}

static void expire_cb(void *arg, const store_msg *m, uint64_t seq, const char *const *undelivered,
                      size_t n)
{
	(void)arg;
	(void)seq;
	check_msg(m);
	for (size_t i = 0; i < n; i++)
		check_str(undelivered[i], CHAT_ADDR_MAX, "store_expire's undelivered list");
}

static void read_all(void)
{
	store *st = S.st;
	store_msg m;
	store_msg_buf mb = { 0 };
	if (rc_ok(store_msg_get(st, CONV, 1, &m, &mb), "store_msg_get") == CHAT_OK)
		check_msg(&m);
	store_msg_buf_free(&mb);

	char conv[CHAT_CONV_MAX + 1];
	uint64_t seq, count, last = 0;
	store_cid cid = { .is_uint = true, .u = 7 };
	if (rc_ok(store_dedup_get(st, FROM, &cid, conv, &seq), "store_dedup_get") == CHAT_OK)
		check_str(conv, CHAT_CONV_MAX, "store_dedup_get");
	rc_ok(store_conv_last_seq(st, CONV, &seq), "store_conv_last_seq");
	rc_ok(store_queue_count(st, TO, &count), "store_queue_count");
	size_t visited;
	store_queue_walk qw = { .after = 0, .max = 16, .cb = queue_cb };
	rc_ok(store_queue_read(st, TO, &qw, &visited, &last), "store_queue_read");

	uint8_t hash[STORE_HASH_LEN];
	rc_ok(store_device_get(st, "bob", "tablet", hash), "store_device_get");
	rc_ok(store_devices_each(st, device_cb, NULL), "store_devices_each");
	rc_ok(store_service_get(st, "keys", hash, NULL), "store_service_get");
	rc_ok(store_services_each(st, service_cb, NULL), "store_services_each");
	store_prefs p;
	if (rc_ok(store_prefs_get(st, "bob", &p), "store_prefs_get") == CHAT_OK &&
	    (unsigned)p.presence > STORE_PRESENCE_NOBODY)
		die("store_prefs_get handed out a bad presence", NULL);
	rc_ok(store_admin_get(st, hash), "store_admin_get");
	rc_ok(store_caps_each(st, caps_cb, NULL), "store_caps_each");

	/* the writers that read first */
	uint64_t seqs[2] = { 1, 1 }, qseqs[2];
	char from[2][CHAT_ADDR_MAX + 1];
	bool changed[2];
	enum store_rstate prev[2];
	store_receipt rr = { .conv = CONV, .seqs = seqs, .n = 2, .state = STORE_R_READ,
	                     .from_out = from, .changed = changed, .prev_out = prev };
	if (rc_ok(store_receipts(st, "bob", &rr), "store_receipts") == CHAT_OK)
		for (int i = 0; i < 2; i++)
			check_str(from[i], CHAT_ADDR_MAX, "store_receipts");
	rr = (store_receipt){ .conv = CONV, .seqs = seqs, .n = 2, .state = STORE_R_DELIVERED,
	                      .qseqs_out = qseqs, .from_out = from, .changed = changed,
	                      .prev_out = prev };
	if (rc_ok(store_deliver(st, TO, &rr), "store_deliver") == CHAT_OK)
		for (int i = 0; i < 2; i++)
			check_str(from[i], CHAT_ADDR_MAX, "store_deliver");
	rc_ok(store_ack(st, TO, CONV, seqs, 1, qseqs), "store_ack");
	uint64_t q1 = 1;
	rc_ok(store_queue_remove(st, TO, &q1, 1), "store_queue_remove");
	size_t expired;
	rc_ok(store_expire(st, EXPIRES + 1, 4, expire_cb, NULL, &expired), "store_expire");
}

/* ---- life cycle ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static void close_store(void)
{
	if (!S.st)
		return;
	store_close(S.st);
	S.st = NULL;
	nftw(S.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void at_exit(void)
{
	close_store();
	rmdir(S.base);
}

static void open_store(void)
{
	if (!S.base[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(S.base, sizeof(S.base), "%s/fuzz-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(S.base))
			die("mkdtemp failed", S.base);
	}
	snprintf(S.dir, sizeof(S.dir), "%s/%u", S.base, S.generation++);
	store_opts o = { .dir = S.dir };
	char err[512] = "";
	if (store_open(&S.st, &o, err, sizeof(err)) != CHAT_OK)
		die("store_open failed", err);
	/* Registered after RocksDB's own exit-time destructors, so it runs
	 * before them: closing a store after them crashes. */
	static bool registered;
	if (!registered && (registered = true))
		atexit(at_exit);
	/* Nothing here needs to survive a crash: skip the WAL. */
	rocksdb_writeoptions_disable_WAL(S.st->wo, 1);
	S.inputs = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!S.st)
		open_store();
	enum kind kind = (enum kind)(data[0] % K_COUNT);
	write_input(kind, data + 1, size - 1);
	read_all();
	if (kind >= K_QUEUE_KEY)
		wipe_keys();
	if (++S.inputs >= REOPEN_INPUTS) {
		close_store();
		open_store();
	}
	return 0;
}
