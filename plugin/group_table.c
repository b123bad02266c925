// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* group_table.c — the groups in memory: who is in which group.
 *
 * The store holds each group's record; the core keeps every group in
 * memory (loaded at start, like the device directory) with a hash of its
 * members, so the send path's membership check and fan-out never touch
 * RocksDB, and a per-user list of groups answers "do these two users
 * share a group?" for presence without a scan.
 *
 * Only data: lookups for the send path, typing, receipts and presence,
 * and the inserts and removals groups.c makes once a change is stored. It
 * publishes nothing, so the readers of the table stay clear of the
 * requests that change it (which publish group events).
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ugroups *ug_get(core *c, const char *user, size_t len)
{
	return hmap_get(&c->gtab.by_user, user, len);
}

static int ug_add(core *c, const char *user, group *g)
{
	size_t len = strlen(user);
	ugroups *ug = ug_get(c, user, len);
	if (!ug) {
		ug = calloc(1, sizeof(*ug));
		if (!ug)
			return CHAT_ENOMEM;
		memcpy(ug->user, user, len);
		if (hmap_put(&c->gtab.by_user, ug->user, len, ug)) {
			free(ug);
			return CHAT_ENOMEM;
		}
	}
	if (chat_grow(&ug->g, &ug->cap, ug->n + 1, sizeof(*ug->g), 64))
		return CHAT_ENOMEM;
	ug->g[ug->n++] = g;
	return CHAT_OK;
}

static void ug_del(core *c, const char *user, const group *g)
{
	ugroups *ug = ug_get(c, user, strlen(user));
	if (!ug)
		return;
	for (size_t i = 0; i < ug->n; i++) {
		if (ug->g[i] == g) {
			ug->g[i] = ug->g[--ug->n];
			break;
		}
	}
	if (ug->n == 0) {
		hmap_del(&c->gtab.by_user, ug->user, strlen(ug->user));
		free(ug->g);
		free(ug);
	}
}

int group_set_members(core *c, group *g, const store_group_member *m, size_t n)
{
	gmember **nm = calloc(n ? n : 1, sizeof(*nm));
	if (!nm)
		return CHAT_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		nm[i] = calloc(1, sizeof(**nm));
		if (!nm[i]) {
			while (i > 0)
				free(nm[--i]);
			free(nm);
			return CHAT_ENOMEM;
		}
		snprintf(nm[i]->user, sizeof(nm[i]->user), "%s", m[i].user);
		nm[i]->admin = m[i].admin;
	}
	/* m may point into the old members: they go only now. */
	for (size_t i = 0; i < g->n; i++) {
		ug_del(c, g->m[i]->user, g);
		free(g->m[i]);
	}
	free(g->m);
	hmap_free(&g->idx);
	g->m = nm;
	g->n = g->cap = n;
	int rc = hmap_init(&g->idx);
	for (size_t i = 0; i < n && rc == CHAT_OK; i++) {
		rc = hmap_put(&g->idx, nm[i]->user, strlen(nm[i]->user), nm[i]);
		if (rc == CHAT_OK)
			rc = ug_add(c, nm[i]->user, g);
	}
	return rc;
}

static void group_destroy(core *c, group *g)
{
	for (size_t i = 0; i < g->n; i++) {
		ug_del(c, g->m[i]->user, g);
		free(g->m[i]);
	}
	free(g->m);
	hmap_free(&g->idx);
	free(g);
}

group *group_new(core *c, const char *gid, const char *name)
{
	group *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	snprintf(g->id, sizeof(g->id), "%s", gid);
	snprintf(g->conv, sizeof(g->conv), "g:%s", gid);
	snprintf(g->name, sizeof(g->name), "%s", name ? name : "");
	if (hmap_init(&g->idx)) {
		free(g);
		return NULL;
	}
	if (hmap_put(&c->gtab.by_id, g->id, strlen(g->id), g)) {
		hmap_free(&g->idx);
		free(g);
		return NULL;
	}
	return g;
}

void group_delete(core *c, group *g)
{
	hmap_del(&c->gtab.by_id, g->id, strlen(g->id));
	group_destroy(c, g);
}

static int load_group(void *arg, const store_group *sg)
{
	core *c = arg;
	group *g = group_new(c, sg->gid, sg->name);
	if (!g)
		return CHAT_ENOMEM;
	return group_set_members(c, g, sg->members, sg->n);
}

int group_table_load(core *c)
{
	if (hmap_init(&c->gtab.by_id) || hmap_init(&c->gtab.by_user))
		return CHAT_ENOMEM;
	return store_groups_each(c->st, load_group, c);
}

void group_table_free(core *c)
{
	void *v;
	for (size_t i = 0; hmap_iter(&c->gtab.by_id, &i, &v);)
		group_destroy(c, v); /* empties ugroups as it goes */
	hmap_free(&c->gtab.by_id);
	hmap_free(&c->gtab.by_user);
}

group *group_find(core *c, const char *gid, size_t len)
{
	return c->gtab.by_id.slots ? hmap_get(&c->gtab.by_id, gid, len) : NULL;
}

bool group_has(const group *g, const char *user, size_t len)
{
	return hmap_get(&g->idx, user, len) != NULL;
}

bool groups_shared(core *c, const char *a, size_t al, const char *b, size_t bl)
{
	ugroups *ua = ug_get(c, a, al), *ub = ug_get(c, b, bl);
	if (!ua || !ub)
		return false;
	if (ua->n > ub->n) {
		ugroups *t = ua;
		ua = ub;
		ub = t;
		const char *ts = a;
		a = b;
		b = ts;
		size_t tl = al;
		al = bl;
		bl = tl;
	}
	for (size_t i = 0; i < ua->n; i++)
		if (group_has(ua->g[i], b, bl))
			return true;
	return false;
}

int groups_each_comember(core *c, const char *user, int (*fn)(void *arg, const char *member),
                         void *arg)
{
	const ugroups *ug = ug_get(c, user, strlen(user));
	int rc = CHAT_OK;
	for (size_t i = 0; rc == CHAT_OK && ug && i < ug->n; i++)
		for (size_t k = 0; rc == CHAT_OK && k < ug->g[i]->n; k++)
			rc = fn(arg, ug->g[i]->m[k]->user);
	return rc;
}
