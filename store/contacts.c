// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* contacts.c — who has a 1:1 conversation with whom: the `contacts` column
 * family holds "U\0V" and "V\0U" (empty values) for every conversation
 * "dm:U:V", written in the batch that stores its first message. It lets
 * the plugin tell a user's contacts about a change of the user's devices
 * with one prefix scan instead of a scan of every conversation.
 *
 * Stores of schema version 1 had no such index: store__contacts_build()
 * makes it from the conversations at open (the v1 -> v2 migration).
 */
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define DM_PREFIX "dm:"

/* Splits "dm:U:V" into U and V; false for group conversations. */
static bool dm_users(const char *conv, size_t len, const char **u, size_t *ul, const char **v,
                     size_t *vl)
{
	size_t pl = strlen(DM_PREFIX);
	if (len <= pl || memcmp(conv, DM_PREFIX, pl) != 0)
		return false;
	const char *colon = memchr(conv + pl, ':', len - pl);
	if (!colon)
		return false;
	*u = conv + pl;
	*ul = (size_t)(colon - *u);
	*v = colon + 1;
	*vl = len - (size_t)(*v - conv);
	return *ul > 0 && *ul <= CHAT_USER_MAX && *vl > 0 && *vl <= CHAT_USER_MAX;
}

static void put_pair(store *st, const char *a, size_t al, const char *b, size_t bl)
{
	char key[2 * CHAT_USER_MAX + 1];
	memcpy(key, a, al);
	key[al] = 0;
	memcpy(key + al + 1, b, bl);
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_CONTACTS], key, al + 1 + bl, "", 0);
}

void store__contacts_put(store *st, const char *conv, size_t convlen)
{
	const char *u, *v;
	size_t ul, vl;
	if (!dm_users(conv, convlen, &u, &ul, &v, &vl))
		return;
	put_pair(st, u, ul, v, vl);
	put_pair(st, v, vl, u, ul);
}

static int index_conv(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
	(void)v, (void)vlen, (void)arg;
	store__contacts_put(st, k, klen);
	return CHAT_OK;
}

int store__contacts_build(store *st)
{
	return store__prefix_each(st, STORE_CF_CONVS, DM_PREFIX, strlen(DM_PREFIX), index_conv, NULL);
}

typedef struct each_ctx {
	size_t plen;
	store_contact_cb cb;
	void *arg;
} each_ctx;

static int visit(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
	(void)st, (void)v, (void)vlen;
	each_ctx *x = arg;
	char name[CHAT_USER_MAX + 1];
	size_t n = klen - x->plen;
	if (n == 0 || n > CHAT_USER_MAX)
		return CHAT_OK;
	memcpy(name, k + x->plen, n);
	name[n] = 0;
	return x->cb(x->arg, name);
}

int store_contacts_each(store *st, const char *user, store_contact_cb cb, void *arg)
{
	char prefix[CHAT_USER_MAX + 1];
	size_t ul = strnlen(user, CHAT_USER_MAX + 1);
	if (ul == 0 || ul > CHAT_USER_MAX)
		return store__fail(st, CHAT_EINVAL, "bad user id");
	memcpy(prefix, user, ul);
	prefix[ul] = 0;
	each_ctx x = { ul + 1, cb, arg };
	return store__prefix_each(st, STORE_CF_CONTACTS, prefix, ul + 1, visit, &x);
}
