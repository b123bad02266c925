/* queue.c — per-device offline queues.
 *
 * A queue entry is only a pointer (conv, seq) to the message, so a body sent
 * to fifty devices is stored once. Entries are keyed addr \0 qseq, where
 * qseq is the device's own enqueue counter: iteration replays a device's
 * backlog in the order it was queued. qmeta keeps, per device, the next
 * qseq and the number of entries (checked against max_queue without a
 * scan). refs counts, per message, the queue entries still pointing at it;
 * when the last one goes, the message record goes too (its dedup and expiry
 * index entries stay until the TTL sweep).
 */
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define QKEY_MAX (CHAT_ADDR_MAX + 1 + STORE_SEQ_LEN)
#define QMETA_LEN 16

static size_t addrlen(const char *addr)
{
	size_t n = strnlen(addr, CHAT_ADDR_MAX + 1);
	return n > CHAT_ADDR_MAX ? 0 : n;
}

int store_queue_add(store *st, const char *addr, const uint8_t *msgkey, size_t mklen,
                    uint64_t max_queue)
{
	size_t alen = addrlen(addr);
	if (!alen)
		return store_fail(st, CHAT_EINVAL, "bad device address");
	uint8_t meta[QMETA_LEN];
	uint64_t next = 1, count = 0;
	int rc = store_get_fixed(st, STORE_CF_QMETA, addr, alen, meta, sizeof meta);
	if (rc == CHAT_OK) {
		next = store_be64_get(meta);
		count = store_be64_get(meta + 8);
	} else if (rc != CHAT_ENOTFOUND) {
		return rc;
	}
	if (max_queue && count >= max_queue)
		return store_fail(st, CHAT_EQUOTA, "queue of %s is full (%llu entries)", addr,
		                  (unsigned long long)count);

	uint8_t key[QKEY_MAX];
	memcpy(key, addr, alen);
	key[alen] = 0;
	store_be64_put(key + alen + 1, next);
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_QUEUES], (const char *)key,
	                          alen + 1 + STORE_SEQ_LEN, (const char *)msgkey, mklen);
	store_be64_put(meta, next + 1);
	store_be64_put(meta + 8, count + 1);
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_QMETA], addr, alen, (const char *)meta,
	                          sizeof meta);
	return CHAT_OK;
}

/* One queue entry pointing at msgkey is going away. */
static int queue_release(store *st, const char *msgkey, size_t mklen)
{
	uint8_t cnt[8];
	int rc = store_get_fixed(st, STORE_CF_REFS, msgkey, mklen, cnt, sizeof cnt);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK; /* already released */
	if (rc != CHAT_OK)
		return rc;
	uint64_t n = store_be64_get(cnt);
	if (n <= 1) {
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_REFS], msgkey, mklen);
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_MSGS], msgkey, mklen);
	} else {
		store_be64_put(cnt, n - 1);
		rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_REFS], msgkey, mklen,
		                          (const char *)cnt, sizeof cnt);
	}
	return CHAT_OK;
}

int store_queue_drop(store *st, const char *addr)
{
	size_t alen = addrlen(addr);
	if (!alen)
		return store_fail(st, CHAT_EINVAL, "bad device address");
	char prefix[CHAT_ADDR_MAX + 1];
	memcpy(prefix, addr, alen);
	prefix[alen] = 0;
	size_t plen = alen + 1;

	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[STORE_CF_QUEUES]);
	int rc = CHAT_OK;
	for (rocksdb_iter_seek(it, prefix, plen); rc == CHAT_OK && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		const char *v = rocksdb_iter_value(it, &vlen);
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_QUEUES], k, klen);
		if (vlen && vlen <= STORE_MSGKEY_MAX) /* else a corrupt entry: just drop it */
			rc = queue_release(st, v, vlen);
	}
	if (rc == CHAT_OK) {
		char *err = NULL;
		rocksdb_iter_get_error(it, &err);
		if (err)
			rc = store_rocks_err(st, err);
	}
	rocksdb_iter_destroy(it);
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_QMETA], addr, alen);
	return rc;
}
