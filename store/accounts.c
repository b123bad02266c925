// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* accounts.c — devices and service accounts: who may connect, as their token
 * hashes.
 *
 * A device is keyed user \0 device so that RocksDB's key order is the order
 * the API promises (by user, then device; '\0' sorts "bob" before "bob2").
 * Devices and services share one record layout, the "cred" record: a
 * version byte, the token hash and the creation time — and for a service
 * of any role but the original one, a role byte after them. A record
 * without it is a service as every service was before roles existed, and
 * such services are still written without it, so a downgrade reads them.
 * A rotated token replaces the hash and keeps the rest (the creation time,
 * the role).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "store_internal.h"

#define CRED_VERSION 1
#define CRED_LEN (1 + STORE_HASH_LEN + 8)
#define CRED_ROLE_LEN (CRED_LEN + 1) /* with a service's role byte */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the cred record, shared by devices and services ---- */

/* A cred record, decoded. */
typedef struct cred {
	uint8_t hash[STORE_HASH_LEN];
	uint64_t created;
	enum store_role role;
	bool fresh; /* cred_put: a new account, not a rotated token */
} cred;

/* Encodes c into out; returns its length (the role byte only when needed). */
static size_t cred_encode(uint8_t out[CRED_ROLE_LEN], const cred *c)
{
	out[0] = CRED_VERSION;
	memcpy(out + 1, c->hash, STORE_HASH_LEN);
	store__be64_put(out + 1 + STORE_HASH_LEN, c->created);
	if (c->role == STORE_ROLE_SERVICE)
		return CRED_LEN;
	out[CRED_LEN] = (uint8_t)c->role;
	return CRED_ROLE_LEN;
}

static int cred_decode(store *st, enum store_cf cf, const char *v, size_t vlen, cred *out)
{
	bool role = cf == STORE_CF_SERVICES && vlen == CRED_ROLE_LEN;
	if ((vlen != CRED_LEN && !role) || v[0] != CRED_VERSION ||
	    (role && (uint8_t)v[CRED_LEN] > STORE_ROLE_MAX))
		return store__fail(st, CHAT_ECORRUPT, "%s record of %zu bytes, version %d",
		                   store_cf_names[cf], vlen, vlen ? v[0] : -1);
	memcpy(out->hash, v + 1, STORE_HASH_LEN);
	out->created = store__be64_get((const uint8_t *)v + 1 + STORE_HASH_LEN);
	out->role = role ? (enum store_role)(uint8_t)v[CRED_LEN] : STORE_ROLE_SERVICE;
	out->fresh = false;
	return CHAT_OK;
}

static int cred_get(store *st, enum store_cf cf, const void *key, size_t klen, cred *out)
{
	rocksdb_pinnableslice_t *v;
	int rc = store__get(st, cf, key, klen, &v);
	if (rc != CHAT_OK)
		return rc;
	size_t vlen;
	const char *p = rocksdb_pinnableslice_value(v, &vlen);
	cred tmp;
	rc = cred_decode(st, cf, p, vlen, &tmp);
	rocksdb_pinnableslice_destroy(v);
	if (rc == CHAT_OK && out)
		*out = tmp;
	return rc;
}

static int cred_put(store *st, enum store_cf cf, const void *key, size_t klen, const cred *c)
{
	uint8_t rec[CRED_ROLE_LEN];
	size_t n = cred_encode(rec, c);
	rocksdb_writebatch_put_cf(store__batch(st), st->cf[cf], key, klen, (const char *)rec, n);
	/* A new device starts without capabilities, even where an older build
	 * removed one of that address and left its record (that build knew no
	 * caps column family). */
	if (cf == STORE_CF_DEVICES && c->fresh)
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_CAPS], key, klen);
	return store__commit(st);
}

static int cred_add(store *st, enum store_cf cf, const void *key, size_t klen,
                    const uint8_t hash[STORE_HASH_LEN], enum store_role role)
{
	int rc = cred_get(st, cf, key, klen, NULL);
	if (rc == CHAT_OK)
		return CHAT_EEXIST;
	if (rc != CHAT_ENOTFOUND)
		return rc;
	cred c = { .created = now_ms(), .role = role, .fresh = true };
	memcpy(c.hash, hash, STORE_HASH_LEN);
	return cred_put(st, cf, key, klen, &c);
}

/* A new token for an existing account: everything else stays. */
static int cred_rehash(store *st, enum store_cf cf, const void *key, size_t klen,
                       const uint8_t hash[STORE_HASH_LEN])
{
	cred c;
	int rc = cred_get(st, cf, key, klen, &c);
	if (rc != CHAT_OK)
		return rc;
	memcpy(c.hash, hash, STORE_HASH_LEN);
	return cred_put(st, cf, key, klen, &c);
}

/* A walk of a column family of cred records (devices or services): each
 * key, parsed by `each`, and its hash go on to the caller's callback. */
struct cred_walk;
typedef int (*cred_key_cb)(store *st, const char *key, size_t klen, const cred *c,
                           const struct cred_walk *w);

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
	cred c;
	int rc = cred_decode(st, w->cf, v, vlen, &c);
	return rc == CHAT_OK ? w->each(st, k, klen, &c, w) : rc;
}

/* From the first key >= from (flen 0: every record). */
static int cred_each(store *st, const struct cred_walk *w, const void *from, size_t flen)
{
	return store__range_each(st, w->cf, from, flen, "", 0, cred_each_kv, (void *)w);
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
	return cred_add(st, STORE_CF_DEVICES, key, klen, hash, STORE_ROLE_SERVICE);
}

int store_device_rehash(store *st, const char *user, const char *device,
                        const uint8_t hash[STORE_HASH_LEN])
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	return klen ? cred_rehash(st, STORE_CF_DEVICES, key, klen, hash) : CHAT_ENOTFOUND;
}

int store_device_get(store *st, const char *user, const char *device,
                     uint8_t hash[STORE_HASH_LEN])
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return CHAT_ENOTFOUND;
	cred c;
	int rc = cred_get(st, STORE_CF_DEVICES, key, klen, &c);
	if (rc == CHAT_OK && hash)
		memcpy(hash, c.hash, STORE_HASH_LEN);
	return rc;
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
	rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_CAPS], key, klen); /* its capabilities */
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

static int device_each_key(store *st, const char *k, size_t klen, const cred *c,
                           const struct cred_walk *w)
{
	char user[CHAT_USER_MAX + 1], device[CHAT_DEVICE_MAX + 1];
	if (!store__devkey_parse(k, klen, user, device))
		return store__fail(st, CHAT_ECORRUPT, "bad device key of %zu bytes", klen);
	return w->cb.device(w->arg, user, device, c->hash);
}

int store_devices_each(store *st, store_device_cb cb, void *arg)
{
	return store_devices_after(st, NULL, NULL, cb, arg);
}

int store_devices_after(store *st, const char *user, const char *device, store_device_cb cb,
                        void *arg)
{
	struct cred_walk w = { STORE_CF_DEVICES, device_each_key, { .device = cb }, arg };
	/* The least key after user \0 device is that key with a \0 after it;
	 * the least after all of user's devices is user \1 (ids hold no \1). */
	char from[STORE_DEVKEY_MAX + 1];
	size_t n = 0;
	if (user && device) {
		n = store__devkey(from, user, device);
		if (!n)
			return store__fail(st, CHAT_EINVAL, "bad device id");
		from[n++] = 0;
	} else if (user) {
		n = strnlen(user, CHAT_USER_MAX + 1);
		if (!n || n > CHAT_USER_MAX)
			return store__fail(st, CHAT_EINVAL, "bad user id");
		memcpy(from, user, n);
		from[n++] = 1;
	}
	return cred_each(st, &w, from, n);
}

/* ---- services ---- */

static size_t svclen(const char *name)
{
	size_t n = strnlen(name, STORE_NAME_MAX + 1);
	return n > STORE_NAME_MAX ? 0 : n;
}

int store_service_add(store *st, const char *name, const uint8_t hash[STORE_HASH_LEN],
                      enum store_role role)
{
	size_t n = svclen(name);
	if (!n)
		return store__fail(st, CHAT_EINVAL, "bad service name");
	if ((unsigned)role > STORE_ROLE_MAX)
		return store__fail(st, CHAT_EINVAL, "bad service role");
	return cred_add(st, STORE_CF_SERVICES, name, n, hash, role);
}

int store_service_get(store *st, const char *name, uint8_t hash[STORE_HASH_LEN],
                      enum store_role *role)
{
	size_t n = svclen(name);
	if (!n)
		return CHAT_ENOTFOUND;
	cred c;
	int rc = cred_get(st, STORE_CF_SERVICES, name, n, &c);
	if (rc == CHAT_OK && hash)
		memcpy(hash, c.hash, STORE_HASH_LEN);
	if (rc == CHAT_OK && role)
		*role = c.role;
	return rc;
}

int store_service_rehash(store *st, const char *name, const uint8_t hash[STORE_HASH_LEN])
{
	size_t n = svclen(name);
	return n ? cred_rehash(st, STORE_CF_SERVICES, name, n, hash) : CHAT_ENOTFOUND;
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

static int service_each_key(store *st, const char *k, size_t klen, const cred *c,
                            const struct cred_walk *w)
{
	char name[STORE_NAME_MAX + 1];
	if (!klen || klen > STORE_NAME_MAX || memchr(k, 0, klen))
		return store__fail(st, CHAT_ECORRUPT, "bad service key of %zu bytes", klen);
	memcpy(name, k, klen);
	name[klen] = 0;
	return w->cb.service(w->arg, name, c->hash, c->role);
}

int store_services_each(store *st, store_service_cb cb, void *arg)
{
	return store_services_after(st, NULL, cb, arg);
}

int store_services_after(store *st, const char *name, store_service_cb cb, void *arg)
{
	struct cred_walk w = { STORE_CF_SERVICES, service_each_key, { .service = cb }, arg };
	char from[STORE_NAME_MAX + 1];
	size_t n = 0;
	if (name) {
		n = svclen(name);
		if (!n)
			return store__fail(st, CHAT_EINVAL, "bad service name");
		memcpy(from, name, n);
		from[n++] = 0; /* the least key after name */
	}
	return cred_each(st, &w, from, n);
}
