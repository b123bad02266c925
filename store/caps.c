// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* caps.c — devices' declared capabilities (protocol v2), one small record
 * per device that declared any, keyed like the device (user \0 device) so
 * that removing the device removes it in the same batch (accounts.c).
 *
 * The record is a version byte and the bits as a big-endian u32. Bits a
 * build does not know (a newer build's) are kept as stored; the plugin
 * masks them when it loads them.
 */
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define CAPS_VERSION 1
#define CAPS_LEN 5 /* version, u32 bits */

int store_caps_set(store *st, const char *user, const char *device, uint32_t caps)
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return store__fail(st, CHAT_EINVAL, "bad device id");
	if (!caps) {
		rocksdb_writebatch_delete_cf(store__batch(st), st->cf[STORE_CF_CAPS], key, klen);
		return store__commit(st);
	}
	uint8_t rec[CAPS_LEN] = { CAPS_VERSION, (uint8_t)(caps >> 24), (uint8_t)(caps >> 16),
	                          (uint8_t)(caps >> 8), (uint8_t)caps };
	rocksdb_writebatch_put_cf(store__batch(st), st->cf[STORE_CF_CAPS], key, klen,
	                          (const char *)rec, sizeof rec);
	return store__commit(st);
}

struct each_ctx {
	store_caps_cb cb;
	void *arg;
};

static int each_kv(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	struct each_ctx *c = ctx;
	char user[CHAT_USER_MAX + 1], device[CHAT_DEVICE_MAX + 1];
	if (!store__devkey_parse(k, klen, user, device))
		return store__fail(st, CHAT_ECORRUPT, "bad caps key of %zu bytes", klen);
	if (vlen != CAPS_LEN || v[0] != CAPS_VERSION)
		return store__fail(st, CHAT_ECORRUPT, "caps record of %zu bytes, version %d", vlen,
		                   vlen ? v[0] : -1);
	const uint8_t *b = (const uint8_t *)v + 1;
	uint32_t caps = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return c->cb(c->arg, user, device, caps);
}

int store_caps_each(store *st, store_caps_cb cb, void *arg)
{
	struct each_ctx c = { cb, arg };
	return store__prefix_each(st, STORE_CF_CAPS, "", 0, each_kv, &c);
}
