// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_cache.c — a node's KV caches (pure: no NATS) and the chat_groups
 * record's format; js_cache.h and js.h ("watchers and caches") say what
 * they promise. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ids.h"
#include "js_cache.h"

/* ---- the group record ---- */

size_t jstore_group_encode(uint8_t *out, size_t cap, const jstore_group *g)
{
	size_t need = jstore_group_size(g);
	if (!need || need > cap)
		return 0;
	size_t o = 0;
	out[o++] = 1;
	for (int i = 7; i >= 0; i--)
		out[o++] = (uint8_t)(g->seq >> (8 * i));
	out[o++] = (uint8_t)g->name_len;
	memcpy(out + o, g->name, g->name_len);
	o += g->name_len;
	for (int i = 3; i >= 0; i--)
		out[o++] = (uint8_t)(g->n >> (8 * i));
	for (uint32_t i = 0; i < g->n; i++) {
		size_t ul = strlen(g->members[i].user);
		out[o++] = g->members[i].admin ? 1 : 0;
		out[o++] = (uint8_t)ul;
		memcpy(out + o, g->members[i].user, ul);
		o += ul;
	}
	return o;
}

static int cmp_user(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses a member named twice (O(n log n): a record may hold 65,535). */
static bool members_unique(const jstore_group *g)
{
	if (g->n < 2)
		return true;
	const char **v = malloc(g->n * sizeof(*v));
	if (!v)
		return false;
	for (uint32_t i = 0; i < g->n; i++)
		v[i] = g->members[i].user;
	qsort(v, g->n, sizeof(*v), cmp_user);
	bool ok = true;
	for (uint32_t i = 1; i < g->n && ok; i++)
		ok = strcmp(v[i - 1], v[i]) != 0;
	free(v);
	return ok;
}

size_t jstore_group_size(const jstore_group *g)
{
	if (g->name_len > STORE_GROUP_NAME_MAX || memchr(g->name, 0, g->name_len) ||
	    g->n > STORE_GROUP_MEMBERS_MAX || (g->n && !g->members))
		return 0;
	size_t need = 1 + 8 + 1 + g->name_len + 4;
	for (uint32_t i = 0; i < g->n; i++) {
		size_t ul = strnlen(g->members[i].user, sizeof(g->members[i].user));
		if (!chat_valid_user(g->members[i].user, ul))
			return 0;
		need += 2 + ul;
	}
	return members_unique(g) ? need : 0;
}

int jstore_group_decode(const uint8_t *v, size_t len, jstore_group *g)
{
	memset(g, 0, sizeof(*g));
	if (len < 14 || v[0] != 1)
		return CHAT_ECORRUPT;
	size_t o = 1;
	for (int i = 0; i < 8; i++)
		g->seq = g->seq << 8 | v[o++];
	size_t nl = v[o++];
	if (nl > STORE_GROUP_NAME_MAX || len - o < nl + 4 || memchr(v + o, 0, nl))
		return CHAT_ECORRUPT;
	memcpy(g->name, v + o, nl);
	g->name[nl] = 0;
	g->name_len = nl;
	o += nl;
	uint32_t n = 0;
	for (int i = 0; i < 4; i++)
		n = n << 8 | v[o++];
	/* every member takes at least 3 bytes: a count beyond what is left is a lie */
	if (n > STORE_GROUP_MEMBERS_MAX || (len - o) / 3 < n)
		return CHAT_ECORRUPT;
	if (n && !(g->members = calloc(n, sizeof(*g->members))))
		return CHAT_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		if (len - o < 2 || v[o] > 1)
			goto bad;
		size_t ul = v[o + 1];
		if (len - o - 2 < ul || !chat_valid_user((const char *)v + o + 2, ul))
			goto bad;
		g->members[i].admin = v[o] == 1;
		memcpy(g->members[i].user, v + o + 2, ul);
		o += 2 + ul;
	}
	g->n = n;
	if (o != len || !members_unique(g))
		goto bad;
	return CHAT_OK;
bad:
	jstore_group_free(g);
	return CHAT_ECORRUPT;
}

void jstore_group_free(jstore_group *g)
{
	free(g->members);
	g->members = NULL;
	g->n = 0;
}

/* ---- the KV cache ---- */

static uint64_t hash_of(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
	return h;
}

static size_t owner_len(const char *key, size_t klen)
{
	const char *dot = memchr(key, '.', klen);
	return dot ? (size_t)(dot - key) : klen;
}

int js_kv_init(js_kv_cache *c, bool by_owner, bool by_event_seq)
{
	memset(c, 0, sizeof(*c));
	c->by_owner = by_owner;
	c->by_event_seq = by_event_seq;
	c->cap = 64;
	c->tab = calloc(c->cap, sizeof(*c->tab));
	c->otab = by_owner ? calloc(c->cap, sizeof(*c->otab)) : NULL;
	if (!c->tab || (by_owner && !c->otab)) {
		js_kv_free(c);
		return CHAT_ENOMEM;
	}
	return CHAT_OK;
}

void js_kv_free(js_kv_cache *c)
{
	if (c->tab)
		for (size_t b = 0; b < c->cap; b++)
			while (c->tab[b]) {
				js_kv_entry *e = c->tab[b];
				c->tab[b] = e->next;
				free(e->val);
				free(e);
			}
	free(c->tab);
	free(c->otab);
	c->tab = c->otab = NULL;
	c->n = 0;
}

static js_kv_entry **slot(const js_kv_cache *c, const char *key, size_t klen)
{
	js_kv_entry **p = &c->tab[hash_of(key, klen) & (c->cap - 1)];
	while (*p && ((*p)->klen != klen || memcmp((*p)->key, key, klen)))
		p = &(*p)->next;
	return p;
}

static void link_owner(js_kv_cache *c, js_kv_entry *e)
{
	js_kv_entry **h = &c->otab[hash_of(e->key, e->olen) & (c->cap - 1)];
	e->onext = *h;
	*h = e;
}

static void grow(js_kv_cache *c)
{
	size_t ncap = c->cap * 2;
	js_kv_entry **nt = calloc(ncap, sizeof(*nt)), **no = c->by_owner ? calloc(ncap, sizeof(*no)) : NULL;
	if (!nt || (c->by_owner && !no)) { /* stays at this size: longer chains, still correct */
		free(nt);
		free(no);
		return;
	}
	for (size_t b = 0; b < c->cap; b++)
		while (c->tab[b]) {
			js_kv_entry *e = c->tab[b];
			c->tab[b] = e->next;
			js_kv_entry **h = &nt[hash_of(e->key, e->klen) & (ncap - 1)];
			e->next = *h;
			*h = e;
		}
	free(c->tab);
	free(c->otab);
	c->tab = nt;
	c->otab = no;
	c->cap = ncap;
	if (c->by_owner)
		for (size_t b = 0; b < c->cap; b++)
			for (js_kv_entry *e = c->tab[b]; e; e = e->next)
				link_owner(c, e);
}

static void unlink_entry(js_kv_cache *c, js_kv_entry **p)
{
	js_kv_entry *e = *p;
	*p = e->next;
	if (c->by_owner) {
		js_kv_entry **o = &c->otab[hash_of(e->key, e->olen) & (c->cap - 1)];
		while (*o != e)
			o = &(*o)->onext;
		*o = e->onext;
	}
	free(e->val);
	free(e);
	c->n--;
}

/* The group record's event seq (bytes 1..8 of a version-1 record); 0 if none. */
static uint64_t event_seq(const uint8_t *v, size_t len)
{
	uint64_t s = 0;
	if (!v || len < 9 || v[0] != 1)
		return 0;
	for (int i = 1; i <= 8; i++)
		s = s << 8 | v[i];
	return s;
}

int js_kv_apply(js_kv_cache *c, const char *key, size_t klen, uint64_t rev, bool del, const uint8_t *v,
                size_t len, bool from_watcher)
{
	uint64_t pos = c->pos;
	if (from_watcher && rev > c->pos)
		c->pos = rev;
	js_kv_entry **p = slot(c, key, klen), *e = *p;
	if (!e && rev <= pos) {
		/* the watcher has delivered this revision and everything after it
		 * up to pos: had the key been put and kept, it would be here. So
		 * this change (this node's acknowledgement, arriving after the
		 * watcher's copy and a later delete) is already overtaken. */
		c->ignored++;
		return 0;
	}
	if (c->by_event_seq && e && !e->deleted && !del) {
		/* group records: the one reflecting the later membership event
		 * stays, whatever order the puts landed in and whatever order
		 * this node learnt of them (its own acknowledgement of event 6
		 * may come after the watcher's copy of another node's event 7,
		 * or before it) */
		uint64_t ns = event_seq(v, len), os = event_seq(e->val, e->len);
		if (ns != os) {
			if (rev > e->rev)
				e->rev = rev;
			if (ns < os) {
				c->ignored++;
				return 0;
			}
			uint8_t *copy = malloc(len ? len : 1);
			if (!copy)
				return CHAT_ENOMEM;
			memcpy(copy, v, len);
			free(e->val);
			e->val = copy;
			e->len = len;
			c->applied++;
			return 1;
		}
	}
	if (e && rev <= e->rev) {
		/* the watcher's own copy of this node's delete: the tombstone goes */
		if (from_watcher && del && e->deleted && rev == e->rev) {
			unlink_entry(c, p);
			return 1;
		}
		c->ignored++;
		return 0;
	}
	if (del) {
		if (from_watcher) {
			if (e)
				unlink_entry(c, p);
			c->applied++;
			return 1;
		}
		if (e) {
			free(e->val);
			e->val = NULL;
			e->len = 0;
			e->deleted = true;
			e->rev = rev;
			c->applied++;
			return 1;
		}
	}
	uint8_t *copy = NULL;
	if (!del) {
		copy = malloc(len ? len : 1);
		if (!copy)
			return CHAT_ENOMEM;
		if (len)
			memcpy(copy, v, len);
	}
	if (!e) {
		e = malloc(sizeof(*e) + klen + 1);
		if (!e) {
			free(copy);
			return CHAT_ENOMEM;
		}
		memset(e, 0, sizeof(*e));
		memcpy(e->key, key, klen);
		e->key[klen] = 0;
		e->klen = klen;
		e->olen = owner_len(key, klen);
		e->next = c->tab[hash_of(key, klen) & (c->cap - 1)];
		c->tab[hash_of(key, klen) & (c->cap - 1)] = e;
		if (c->by_owner)
			link_owner(c, e);
		c->n++;
	} else {
		free(e->val);
	}
	e->val = copy;
	e->len = del ? 0 : len;
	e->deleted = del;
	e->rev = rev;
	c->applied++;
	if (c->n > c->cap)
		grow(c);
	return 1;
}

const js_kv_entry *js_kv_find(const js_kv_cache *c, const char *key, size_t klen)
{
	js_kv_entry *e = *slot(c, key, klen);
	return e && !e->deleted ? e : NULL;
}

int js_kv_each_owner(const js_kv_cache *c, const char *owner, size_t olen,
                     int (*cb)(void *arg, const char *rest, size_t len), void *arg)
{
	if (!c->by_owner)
		return CHAT_EINVAL;
	for (js_kv_entry *e = c->otab[hash_of(owner, olen) & (c->cap - 1)]; e; e = e->onext) {
		if (e->deleted || e->olen != olen || e->olen >= e->klen || memcmp(e->key, owner, olen))
			continue;
		int r = cb(arg, e->key + olen + 1, e->klen - olen - 1);
		if (r)
			return r;
	}
	return 0;
}

int js_kv_each(const js_kv_cache *c, int (*cb)(void *arg, const js_kv_entry *e), void *arg)
{
	for (size_t b = 0; b < c->cap; b++)
		for (js_kv_entry *e = c->tab[b]; e; e = e->next) {
			if (e->deleted)
				continue;
			int r = cb(arg, e);
			if (r)
				return r;
		}
	return 0;
}

size_t js_kv_count(const js_kv_cache *c)
{
	size_t n = 0;
	for (size_t b = 0; b < c->cap; b++)
		for (js_kv_entry *e = c->tab[b]; e; e = e->next)
			n += !e->deleted;
	return n;
}
