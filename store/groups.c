// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* groups.c — group records: a display name and the members, each with an
 * admin flag, in the order they joined.
 *
 * A record changes only together with the group event that announces the
 * change: store_group_event puts (or deletes) the record and stores the
 * event in the group conversation in one WriteBatch, so after a crash the
 * membership and the conversation's history still agree. The core keeps
 * every group in memory (loaded at start with store_groups_each), so the
 * send path checks membership without touching RocksDB.
 *
 * Group record, version 1 (integers big-endian):
 *   u8 version, u8 name_len, name, u16 n, n × (u8 flags (GROUP_F_ADMIN),
 *   u8 user_len, user)
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define GROUP_VERSION 1
#define GROUP_F_ADMIN 0x01
#define GROUP_MEMBER_MAX (2 + CHAT_USER_MAX)

static size_t gidlen(const char *gid)
{
	size_t n = strnlen(gid, CHAT_GROUP_MAX + 1);
	return chat_valid_group(gid, n) ? n : 0;
}

/* Adds the record's put (or delete) to the shared batch. */
static int group_put(store *st, const store_group *g)
{
	size_t gl = gidlen(g->gid);
	if (!gl)
		return store__fail(st, CHAT_EINVAL, "bad group id");
	if (g->n == 0) {
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_GROUPS], g->gid, gl);
		return CHAT_OK;
	}
	size_t nl = g->name ? strnlen(g->name, STORE_GROUP_NAME_MAX + 1) : 0;
	if (nl > STORE_GROUP_NAME_MAX || g->n > STORE_GROUP_MEMBERS_MAX)
		return store__fail(st, CHAT_EINVAL, "group %s: name or member list too long", g->gid);
	size_t len = 1 + 1 + nl + 2 + g->n * GROUP_MEMBER_MAX;
	uint8_t *rec = malloc(len), *p = rec;
	if (!rec)
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	*p++ = GROUP_VERSION;
	*p++ = (uint8_t)nl;
	memcpy(p, g->name, nl);
	p += nl;
	*p++ = (uint8_t)(g->n >> 8);
	*p++ = (uint8_t)g->n;
	for (size_t i = 0; i < g->n; i++) {
		size_t ul = strnlen(g->members[i].user, CHAT_USER_MAX + 1);
		if (!chat_valid_user(g->members[i].user, ul)) {
			free(rec);
			return store__fail(st, CHAT_EINVAL, "group %s: bad member user id", g->gid);
		}
		*p++ = g->members[i].admin ? GROUP_F_ADMIN : 0;
		*p++ = (uint8_t)ul;
		memcpy(p, g->members[i].user, ul);
		p += ul;
	}
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_GROUPS], g->gid, gl, (const char *)rec,
	                          (size_t)(p - rec));
	free(rec);
	return CHAT_OK;
}

int store_group_event(store *st, const store_group *g, const store_msg *ev,
                      const char *const *to, size_t n, uint64_t *seq)
{
	if (ev->kind != STORE_KIND_GROUP)
		return store__fail(st, CHAT_EINVAL, "a group event must be of kind STORE_KIND_GROUP");
	store__batch(st);
	int rc = group_put(st, g);
	if (rc == CHAT_OK)
		rc = store__send_batch(st, ev, to, n, 0, seq);
	if (rc == CHAT_OK)
		return store__commit(st);
	store__rollback(st);
	return rc;
}

/* store_groups_each's scratch: the record being visited, its members as
 * NUL-terminated copies. */
struct each_ctx {
	store_group_cb cb;
	void *arg;
	store_group_member *m;
	char (*users)[CHAT_USER_MAX + 1];
	size_t cap;
};

static int reserve(store *st, struct each_ctx *c, size_t n)
{
	size_t cm = c->cap, cu = c->cap;
	if (chat_grow(&c->m, &cm, n, sizeof *c->m, 64) ||
	    chat_grow(&c->users, &cu, n, sizeof *c->users, 64))
		return store__fail(st, CHAT_ENOMEM, "out of memory");
	c->cap = cm;
	return CHAT_OK;
}

static int group_kv(store *st, const char *k, size_t klen, const char *v, size_t vlen, void *ctx)
{
	struct each_ctx *c = ctx;
	char gid[CHAT_GROUP_MAX + 1], name[STORE_GROUP_NAME_MAX + 1];
	const uint8_t *p = (const uint8_t *)v, *end = p + vlen;
	if (!chat_valid_group(k, klen))
		return store__fail(st, CHAT_ECORRUPT, "group record with a bad key");
	memcpy(gid, k, klen);
	gid[klen] = '\0';
	if (vlen < 4 || p[0] != GROUP_VERSION || (size_t)(end - p) < 2u + p[1] + 2u)
		return store__fail(st, CHAT_ECORRUPT, "group %s: bad record", gid);
	size_t nl = p[1];
	memcpy(name, p + 2, nl);
	name[nl] = '\0';
	if (memchr(name, '\0', nl))
		return store__fail(st, CHAT_ECORRUPT, "group %s: bad name", gid);
	p += 2 + nl;
	size_t n = (size_t)p[0] << 8 | p[1];
	p += 2;
	int rc = reserve(st, c, n);
	if (rc != CHAT_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (end - p < 2 || (p[0] & ~GROUP_F_ADMIN) || end - p - 2 < p[1] ||
		    !chat_valid_user((const char *)p + 2, p[1]))
			return store__fail(st, CHAT_ECORRUPT, "group %s: bad member %zu", gid, i);
		memcpy(c->users[i], p + 2, p[1]);
		c->users[i][p[1]] = '\0';
		c->m[i] = (store_group_member){ c->users[i], p[0] & GROUP_F_ADMIN };
		p += 2 + p[1];
	}
	if (p != end || n == 0)
		return store__fail(st, CHAT_ECORRUPT, "group %s: bad record length", gid);
	store_group g = { gid, name, c->m, n };
	return c->cb(c->arg, &g);
}

int store_groups_each(store *st, store_group_cb cb, void *arg)
{
	return store_groups_after(st, NULL, cb, arg);
}

int store_groups_after(store *st, const char *gid, store_group_cb cb, void *arg)
{
	char from[CHAT_GROUP_MAX + 1];
	size_t n = 0;
	if (gid) {
		n = gidlen(gid);
		if (!n)
			return store__fail(st, CHAT_EINVAL, "bad group id");
		memcpy(from, gid, n);
		from[n++] = 0; /* the least key after gid */
	}
	struct each_ctx c = { .cb = cb, .arg = arg };
	int rc = store__range_each(st, STORE_CF_GROUPS, from, n, "", 0, group_kv, &c);
	free(c.m);
	free(c.users);
	return rc;
}
