/* accounts.c — devices and service accounts: who may connect, as their token
 * hashes.
 *
 * A device is keyed user \0 device so that RocksDB's key order is the order
 * the API promises (by user, then device; '\0' sorts "bob" before "bob2").
 * Devices and services share one record layout, the "cred" record: a
 * version byte, the token hash and the creation time.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "store_internal.h"

#define CRED_VERSION 1
#define CRED_LEN (1 + STORE_HASH_LEN + 8)

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the cred record, shared by devices and services ---- */

static void cred_encode(uint8_t out[CRED_LEN], const uint8_t hash[STORE_HASH_LEN])
{
	out[0] = CRED_VERSION;
	memcpy(out + 1, hash, STORE_HASH_LEN);
	store__be64_put(out + 1 + STORE_HASH_LEN, now_ms());
}

static int cred_decode(store *st, enum store_cf cf, const char *v, size_t vlen,
                       uint8_t hash[STORE_HASH_LEN])
{
	if (vlen != CRED_LEN || v[0] != CRED_VERSION)
		return store__fail(st, CHAT_ECORRUPT, "%s record of %zu bytes, version %d",
		                   store_cf_names[cf], vlen, vlen ? v[0] : -1);
	memcpy(hash, v + 1, STORE_HASH_LEN);
	return CHAT_OK;
}

static int cred_get(store *st, enum store_cf cf, const void *key, size_t klen,
                    uint8_t hash[STORE_HASH_LEN])
{
	rocksdb_pinnableslice_t *v;
	int rc = store__get(st, cf, key, klen, &v);
	if (rc != CHAT_OK)
		return rc;
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	uint8_t tmp[STORE_HASH_LEN];
	rc = cred_decode(st, cf, p, vlen, tmp);
	rocksdb_pinnableslice_destroy(v);
	if (rc == CHAT_OK && hash)
		memcpy(hash, tmp, STORE_HASH_LEN);
	return rc;
}

static int cred_add(store *st, enum store_cf cf, const void *key, size_t klen,
                    const uint8_t hash[STORE_HASH_LEN])
{
	int rc = cred_get(st, cf, key, klen, NULL);
	if (rc == CHAT_OK)
		return CHAT_EEXIST;
	if (rc != CHAT_ENOTFOUND)
		return rc;
	uint8_t rec[CRED_LEN];
	cred_encode(rec, hash);
	rocksdb_writebatch_put_cf(store__batch(st), st->cf[cf], key, klen, (const char *)rec,
	                          sizeof rec);
	return store__commit(st);
}

/* A walk of a column family of cred records (devices or services): each
 * key, parsed by `each`, and its hash go on to the caller's callback. */
struct cred_walk;
typedef int (*cred_key_cb)(store *st, const char *key, size_t klen,
                           const uint8_t hash[STORE_HASH_LEN], const struct cred_walk *w);

struct cred_walk {
	enum store_cf cf;
	cred_key_cb each;
	union {
		store_device_cb device;
		store_service_cb service;
	} cb;
	void *arg;
};

static int cred_each_kv(store *st, const char *k, size_t klen, const char *v, size_t vlen,
                        void *ctx)
{
	const struct cred_walk *w = ctx;
	uint8_t hash[STORE_HASH_LEN];
	int rc = cred_decode(st, w->cf, v, vlen, hash);
	return rc == CHAT_OK ? w->each(st, k, klen, hash, w) : rc;
}

static int cred_each(store *st, const struct cred_walk *w)
{
	return store__prefix_each(st, w->cf, "", 0, cred_each_kv, (void *)w);
}

/* ---- devices ---- */

size_t store__devkey(char *out, const char *user, const char *device)
{
	size_t ul = strnlen(user, CHAT_USER_MAX + 1), dl = strnlen(device, CHAT_DEVICE_MAX + 1);
	if (!ul || ul > CHAT_USER_MAX || !dl || dl > CHAT_DEVICE_MAX)
		return 0;
	memcpy(out, user, ul);
	out[ul] = 0;
	memcpy(out + ul + 1, device, dl);
	return ul + 1 + dl;
}

int store_device_add(store *st, const char *user, const char *device,
                     const uint8_t hash[STORE_HASH_LEN])
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return store__fail(st, CHAT_EINVAL, "bad device id");
	return cred_add(st, STORE_CF_DEVICES, key, klen, hash);
}

int store_device_get(store *st, const char *user, const char *device,
                     uint8_t hash[STORE_HASH_LEN])
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return CHAT_ENOTFOUND;
	return cred_get(st, STORE_CF_DEVICES, key, klen, hash);
}

int store_device_remove(store *st, const char *user, const char *device)
{
	char key[STORE_DEVKEY_MAX], addr[CHAT_ADDR_MAX + 1];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return CHAT_ENOTFOUND;
	int rc = cred_get(st, STORE_CF_DEVICES, key, klen, NULL);
	if (rc != CHAT_OK && rc != CHAT_ECORRUPT)
		return rc;
	snprintf(addr, sizeof addr, "%s/%s", user, device);
	rocksdb_writebatch_delete_cf(store__batch(st), st->cf[STORE_CF_DEVICES], key, klen);
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_PUSH], key, klen); /* its push target */
	rc = store__queue_drop(st, addr);
	return rc == CHAT_OK ? store__commit(st) : rc;
}

bool store__devkey_parse(const char *k, size_t klen, char *user, char *device)
{
	const char *sep = memchr(k, 0, klen);
	size_t ul = sep ? (size_t)(sep - k) : 0, dl = sep ? klen - ul - 1 : 0;
	if (!ul || ul > CHAT_USER_MAX || !dl || dl > CHAT_DEVICE_MAX || memchr(sep + 1, 0, dl))
		return false;
	memcpy(user, k, ul);
	user[ul] = 0;
	memcpy(device, sep + 1, dl);
	device[dl] = 0;
	return true;
}

static int device_each_key(store *st, const char *k, size_t klen,
                           const uint8_t hash[STORE_HASH_LEN], const struct cred_walk *w)
{
	char user[CHAT_USER_MAX + 1], device[CHAT_DEVICE_MAX + 1];
	if (!store__devkey_parse(k, klen, user, device))
		return store__fail(st, CHAT_ECORRUPT, "bad device key of %zu bytes", klen);
	return w->cb.device(w->arg, user, device, hash);
}

int store_devices_each(store *st, store_device_cb cb, void *arg)
{
	struct cred_walk w = { STORE_CF_DEVICES, device_each_key, { .device = cb }, arg };
	return cred_each(st, &w);
}

/* ---- services ---- */

static size_t svclen(const char *name)
{
	size_t n = strnlen(name, STORE_NAME_MAX + 1);
	return n > STORE_NAME_MAX ? 0 : n;
}

int store_service_add(store *st, const char *name, const uint8_t hash[STORE_HASH_LEN])
{
	size_t n = svclen(name);
	if (!n)
		return store__fail(st, CHAT_EINVAL, "bad service name");
	return cred_add(st, STORE_CF_SERVICES, name, n, hash);
}

int store_service_get(store *st, const char *name, uint8_t hash[STORE_HASH_LEN])
{
	size_t n = svclen(name);
	return n ? cred_get(st, STORE_CF_SERVICES, name, n, hash) : CHAT_ENOTFOUND;
}

int store_service_remove(store *st, const char *name)
{
	size_t n = svclen(name);
	if (!n)
		return CHAT_ENOTFOUND;
	int rc = cred_get(st, STORE_CF_SERVICES, name, n, NULL);
	if (rc != CHAT_OK && rc != CHAT_ECORRUPT)
		return rc;
	rocksdb_writebatch_delete_cf(store__batch(st), st->cf[STORE_CF_SERVICES], name, n);
	return store__commit(st);
}

static int service_each_key(store *st, const char *k, size_t klen,
                            const uint8_t hash[STORE_HASH_LEN], const struct cred_walk *w)
{
	char name[STORE_NAME_MAX + 1];
	if (!klen || klen > STORE_NAME_MAX || memchr(k, 0, klen))
		return store__fail(st, CHAT_ECORRUPT, "bad service key of %zu bytes", klen);
	memcpy(name, k, klen);
	name[klen] = 0;
	return w->cb.service(w->arg, name, hash);
}

int store_services_each(store *st, store_service_cb cb, void *arg)
{
	struct cred_walk w = { STORE_CF_SERVICES, service_each_key, { .service = cb }, arg };
	return cred_each(st, &w);
}
