// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* push.c — devices' push targets (platform + provider token), so the plugin
 * can wake a sleeping phone. One small record per device that registered,
 * keyed like the device itself (user \0 device) so that removing a device
 * removes its target in the same batch (accounts.c).
 */
#include <string.h>

#include "err.h"
#include "store_internal.h"

/* Version 1: version, platform, token (a background push). Version 2 adds
 * a flags byte (PUSH_ALERT) after the platform; a target without flags is
 * still written as version 1, so an older build reads what it can use. */
#define PUSH_VERSION 1
#define PUSH_HDR 2 /* version, platform */
#define PUSH_VERSION_FLAGS 2
#define PUSH_HDR_FLAGS 3 /* version, platform, flags */
#define PUSH_ALERT 0x01

static bool platform_ok(int p)
{
	return p == STORE_PUSH_FCM || p == STORE_PUSH_APNS || p == STORE_PUSH_WEBPUSH;
}

int store_push_set(store *st, const char *user, const char *device, const store_push *p)
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return store__fail(st, CHAT_EINVAL, "bad device id");
	if (!platform_ok((int)p->platform) || p->token_len == 0 || p->token_len > STORE_PUSH_TOKEN_MAX)
		return store__fail(st, CHAT_EINVAL, "bad push target");
	char rec[PUSH_HDR_FLAGS + STORE_PUSH_TOKEN_MAX];
	size_t hdr = p->alert ? PUSH_HDR_FLAGS : PUSH_HDR;
	rec[0] = p->alert ? PUSH_VERSION_FLAGS : PUSH_VERSION;
	rec[1] = (char)p->platform;
	if (p->alert)
		rec[2] = PUSH_ALERT;
	memcpy(rec + hdr, p->token, p->token_len);
	rocksdb_writebatch_put_cf(store__batch(st), st->cf[STORE_CF_PUSH], key, klen, rec,
	                          hdr + p->token_len);
	return store__commit(st);
}

int store_push_clear(store *st, const char *user, const char *device)
{
	char key[STORE_DEVKEY_MAX];
	size_t klen = store__devkey(key, user, device);
	if (!klen)
		return CHAT_OK;
	rocksdb_writebatch_delete_cf(store__batch(st), st->cf[STORE_CF_PUSH], key, klen);
	return store__commit(st);
}

struct each_ctx {
	store_push_cb cb;
	void *arg;
};

static int each_kv(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	struct each_ctx *c = ctx;
	char user[CHAT_USER_MAX + 1], device[CHAT_DEVICE_MAX + 1];
	if (!store__devkey_parse(k, klen, user, device))
		return store__fail(st, CHAT_ECORRUPT, "bad push key of %zu bytes", klen);
	size_t hdr = vlen && v[0] == PUSH_VERSION_FLAGS ? PUSH_HDR_FLAGS : PUSH_HDR;
	if (vlen <= hdr || vlen > hdr + STORE_PUSH_TOKEN_MAX ||
	    (v[0] != PUSH_VERSION && v[0] != PUSH_VERSION_FLAGS) || !platform_ok(v[1]) ||
	    (hdr == PUSH_HDR_FLAGS && (v[2] & ~PUSH_ALERT)))
		return store__fail(st, CHAT_ECORRUPT, "push record of %zu bytes, version %d", vlen,
		                   vlen ? v[0] : -1);
	store_push p = { (enum store_push_platform)v[1], v + hdr, vlen - hdr,
	                 hdr == PUSH_HDR_FLAGS && (v[2] & PUSH_ALERT) };
	return c->cb(c->arg, user, device, &p);
}

int store_push_each(store *st, store_push_cb cb, void *arg)
{
	struct each_ctx c = { cb, arg };
	return store__prefix_each(st, STORE_CF_PUSH, "", 0, each_kv, &c);
}
