// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
#include "hmap.h"
#include "err.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char tombstone;
#define HMAP_TOMBSTONE (&tombstone)

static size_t hash(const hmap *m, const char *key, size_t klen)
{
	uint64_t h;
	crypto_shorthash((unsigned char *)&h, (const unsigned char *)key, klen, m->seed);
	return (size_t)h;
}

int hmap_init(hmap *m)
{
	memset(m, 0, sizeof(*m));
	randombytes_buf(m->seed, sizeof(m->seed));
	m->cap = 16;
	m->slots = calloc(m->cap, sizeof(hmap_slot));
	return m->slots ? CHAT_OK : CHAT_ENOMEM;
}

void hmap_free(hmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->used = m->live = 0;
}

static hmap_slot *find(const hmap *m, const char *key, size_t klen)
{
	size_t mask = m->cap - 1;
	for (size_t i = hash(m, key, klen) & mask;; i = (i + 1) & mask) {
		hmap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != HMAP_TOMBSTONE && s->klen == klen && memcmp(s->key, key, klen) == 0)
			return s;
	}
}

void *hmap_get(const hmap *m, const char *key, size_t klen)
{
	hmap_slot *s = find(m, key, klen);
	return s ? s->val : NULL;
}

static void insert_fresh(hmap *m, const char *key, size_t klen, void *val)
{
	size_t mask = m->cap - 1;
	size_t i = hash(m, key, klen) & mask;
	while (m->slots[i].key && m->slots[i].key != HMAP_TOMBSTONE)
		i = (i + 1) & mask;
	if (!m->slots[i].key)
		m->used++;
	m->slots[i] = (hmap_slot){ key, klen, val };
	m->live++;
}

static int grow(hmap *m)
{
	size_t cap = m->live * 4 > m->cap ? m->cap * 2 : m->cap; /* else: just drop tombstones */
	hmap_slot *old = m->slots;
	size_t oldcap = m->cap;
	hmap_slot *slots = calloc(cap, sizeof(hmap_slot));
	if (!slots)
		return CHAT_ENOMEM;
	m->slots = slots;
	m->cap = cap;
	m->used = m->live = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key && old[i].key != HMAP_TOMBSTONE)
			insert_fresh(m, old[i].key, old[i].klen, old[i].val);
	free(old);
	return CHAT_OK;
}

int hmap_put(hmap *m, const char *key, size_t klen, void *val)
{
	hmap_slot *s = find(m, key, klen);
	if (s) {
		s->key = key;
		s->val = val;
		return CHAT_OK;
	}
	if ((m->used + 1) * 4 > m->cap * 3) { /* load factor 3/4, tombstones included */
		int rc = grow(m);
		if (rc)
			return rc;
	}
	insert_fresh(m, key, klen, val);
	return CHAT_OK;
}

void *hmap_del(hmap *m, const char *key, size_t klen)
{
	hmap_slot *s = find(m, key, klen);
	if (!s)
		return NULL;
	void *val = s->val;
	s->key = HMAP_TOMBSTONE;
	s->val = NULL;
	m->live--;
	return val;
}

int hmap_iter(const hmap *m, size_t *i, void **val)
{
	while (*i < m->cap) {
		hmap_slot *s = &m->slots[(*i)++];
		if (s->key && s->key != HMAP_TOMBSTONE) {
			*val = s->val;
			return 1;
		}
	}
	return 0;
}
