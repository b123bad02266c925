// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* prefs.c — a user's settings: whether others see their read receipts, and
 * who sees their presence. One 3-byte record per user who changed anything;
 * everyone else has the defaults.
 */
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define PREFS_VERSION 1
#define PREFS_LEN 3

static size_t userlen(const char *user)
{
	size_t n = strnlen(user, CHAT_USER_MAX + 1);
	return n > CHAT_USER_MAX ? 0 : n;
}

int store_prefs_get(store *st, const char *user, store_prefs *out)
{
	*out = (store_prefs){ .read_receipts = true, .presence = STORE_PRESENCE_EVERYONE };
	size_t ul = userlen(user);
	if (!ul)
		return CHAT_OK;
	uint8_t v[PREFS_LEN];
	int rc = store__get_fixed(st, STORE_CF_PREFS, user, ul, v, sizeof v);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc != CHAT_OK)
		return rc;
	if (v[0] != PREFS_VERSION || v[1] > 1 || v[2] > STORE_PRESENCE_NOBODY)
		return store__fail(st, CHAT_ECORRUPT, "prefs of %s: bad record", user);
	out->read_receipts = v[1];
	out->presence = (enum store_presence)v[2];
	return CHAT_OK;
}

int store_prefs_set(store *st, const char *user, const store_prefs *prefs)
{
	size_t ul = userlen(user);
	if (!ul)
		return store__fail(st, CHAT_EINVAL, "bad user id");
	if ((unsigned)prefs->presence > STORE_PRESENCE_NOBODY)
		return store__fail(st, CHAT_EINVAL, "bad presence setting %d", (int)prefs->presence);
	uint8_t v[PREFS_LEN] = { PREFS_VERSION, prefs->read_receipts, (uint8_t)prefs->presence };
	rocksdb_writebatch_put_cf(store__batch(st), st->cf[STORE_CF_PREFS], user, ul,
	                          (const char *)v, sizeof v);
	return store__commit(st);
}
