// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* cache.c — committed values the hot paths read again and again, kept in
 * memory: qmeta (a device's next qseq and queue length) and convs (a
 * conversation's last seq), read by every send; and a message's record as
 * its last release will rewrite it (the header, without the body), which
 * saves that release reading the record again right after the send or
 * the replay that had it in hand.
 *
 * Each table is direct-mapped, allocated once and touched only as used: a
 * key lives in the slot its hash names, a colliding key replaces it, a
 * miss reads RocksDB. A slot holds only what RocksDB has committed, so a
 * read inside a batch sees what it would without the cache. A write into
 * the shared batch empties its slot at once and is remembered as pending;
 * store__commit applies the pending entries after RocksDB took the batch
 * (a new value, "no record", or just empty again), and an emptied batch
 * (store__batch, store__rollback, a failed commit) drops them. Writes that
 * bypass these calls (the white-box tests' raw records) call
 * store__caches_forget.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define SLOTS 8192 /* per table; a power of two */

enum { EMPTY, ABSENT, VALUE };

static const struct {
	enum store_cf cf;
	size_t key_max, val_max;
} tables[STORE_CACHE_COUNT] = {
	[STORE_CACHE_QMETA] = { STORE_CF_QMETA, CHAT_ADDR_MAX, 16 },
	[STORE_CACHE_CONVS] = { STORE_CF_CONVS, CHAT_CONV_MAX, 8 },
	[STORE_CACHE_MSGHDR] = { STORE_CF_MSGS, STORE_MSGKEY_MAX, STORE_MSG_HDR_MAX },
};

#define KEY_MAX STORE_MSGKEY_MAX /* the longest of the tables' keys */
#define VAL_MAX STORE_MSG_HDR_MAX

typedef struct slot {
	uint8_t state, klen;
	uint16_t vlen;
	uint8_t bytes[]; /* key[key_max], then val[val_max] */
} slot;

struct pending {
	uint8_t table, state, klen;
	uint16_t vlen;
	uint32_t slot;
	uint8_t key[KEY_MAX];
	uint8_t val[VAL_MAX];
};

struct store_caches {
	uint8_t *table[STORE_CACHE_COUNT];
	struct pending *pending;
	size_t npending, cap;
	bool pending_lost; /* a pending write could not be remembered */
	uint64_t hits, misses;
};

static size_t stride(int t)
{
	return (sizeof(slot) + tables[t].key_max + tables[t].val_max + 7) & ~(size_t)7;
}

static slot *slot_at(struct store_caches *c, int t, uint32_t i)
{
	return (slot *)(c->table[t] + (size_t)i * stride(t));
}

static uint32_t slot_of(const void *key, size_t klen)
{
	const uint8_t *p = key;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < klen; i++)
		h = (h ^ p[i]) * 16777619u;
	return (h ^ (h >> 15)) & (SLOTS - 1);
}

static bool fits(int t, size_t klen, size_t vlen)
{
	return klen <= tables[t].key_max && vlen <= tables[t].val_max;
}

int store__caches_open(store *st)
{
	struct store_caches *c = calloc(1, sizeof *c);
	if (!c)
		return CHAT_ENOMEM;
	for (int t = 0; t < STORE_CACHE_COUNT; t++)
		if (!(c->table[t] = calloc(SLOTS, stride(t)))) {
			for (int u = 0; u < t; u++)
				free(c->table[u]);
			free(c);
			return CHAT_ENOMEM;
		}
	st->caches = c;
	return CHAT_OK;
}

void store__caches_close(store *st)
{
	struct store_caches *c = st->caches;
	if (!c)
		return;
	for (int t = 0; t < STORE_CACHE_COUNT; t++)
		free(c->table[t]);
	free(c->pending);
	free(c);
	st->caches = NULL;
}

void store__caches_forget(store *st)
{
	struct store_caches *c = st->caches;
	for (int t = 0; c && t < STORE_CACHE_COUNT; t++)
		memset(c->table[t], 0, SLOTS * stride(t));
}

void store__caches_stats(const store *st, uint64_t *hits, uint64_t *misses)
{
	*hits = st->caches ? st->caches->hits : 0;
	*misses = st->caches ? st->caches->misses : 0;
}

enum store_cached store__cache_lookup(store *st, enum store_cache t, const void *key, size_t klen,
                                      void *out, size_t *vlen)
{
	struct store_caches *c = st->caches;
	if (!c || !fits(t, klen, 0))
		return STORE_UNCACHED;
	slot *s = slot_at(c, t, slot_of(key, klen));
	if (s->state == EMPTY || s->klen != klen || memcmp(s->bytes, key, klen) != 0) {
		c->misses++;
		return STORE_UNCACHED;
	}
	c->hits++;
	if (s->state == ABSENT)
		return STORE_CACHED_ABSENT;
	memcpy(out, s->bytes + tables[t].key_max, s->vlen);
	*vlen = s->vlen;
	return STORE_CACHED_VALUE;
}

static void set_slot(slot *s, int t, const void *key, size_t klen, const void *val, size_t vlen)
{
	s->state = val ? VALUE : ABSENT;
	s->klen = (uint8_t)klen;
	s->vlen = (uint16_t)vlen;
	memcpy(s->bytes, key, klen);
	if (val)
		memcpy(s->bytes + tables[t].key_max, val, vlen);
}

void store__cache_fill(store *st, enum store_cache t, const void *key, size_t klen,
                       const void *val, size_t vlen)
{
	struct store_caches *c = st->caches;
	if (c && fits(t, klen, vlen))
		set_slot(slot_at(c, t, slot_of(key, klen)), t, key, klen, val, vlen);
}

/* Empties key's slot now and returns the write that settles it after the
 * commit (to leave empty unless the caller says otherwise), or NULL: never
 * cached, or lost (the slot stays empty). */
static struct pending *stage(store *st, enum store_cache t, const void *key, size_t klen)
{
	struct store_caches *c = st->caches;
	if (!c)
		return NULL;
	if (!fits(t, klen, 0))
		return NULL; /* never cached */
	uint32_t i = slot_of(key, klen);
	slot_at(c, t, i)->state = EMPTY;
	if (chat_grow(&c->pending, &c->cap, c->npending + 1, sizeof *c->pending, 64)) {
		c->pending_lost = true; /* the slot stays empty: only misses */
		return NULL;
	}
	struct pending *p = &c->pending[c->npending++];
	p->table = (uint8_t)t;
	p->slot = i;
	p->klen = (uint8_t)klen;
	memcpy(p->key, key, klen);
	p->state = EMPTY;
	p->vlen = 0;
	return p;
}

void store__cache_stage(store *st, enum store_cache t, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
	struct pending *p = stage(st, t, key, klen);
	if (!p)
		return;
	p->state = val && !fits(t, klen, vlen) ? EMPTY : val ? VALUE : ABSENT;
	p->vlen = p->state == VALUE ? (uint16_t)vlen : 0;
	if (p->state == VALUE)
		memcpy(p->val, val, vlen);
}

void store__cache_stage_empty(store *st, enum store_cache t, const void *key, size_t klen)
{
	stage(st, t, key, klen);
}

void store__caches_settle(store *st, bool committed)
{
	struct store_caches *c = st->caches;
	if (!c)
		return;
	/* in batch order: a later write of a key wins */
	for (size_t k = 0; committed && !c->pending_lost && k < c->npending; k++) {
		const struct pending *p = &c->pending[k];
		slot *s = slot_at(c, p->table, p->slot);
		if (p->state == EMPTY) {
			/* written without a value to keep; whatever was read into
			 * the slot during the batch is now stale */
			s->state = EMPTY;
			continue;
		}
		set_slot(s, p->table, p->key, p->klen, p->state == VALUE ? p->val : NULL, p->vlen);
	}
	/* without the full list, a slot a read refilled during the batch may
	 * hold what the batch overwrote: start over */
	if (committed && c->pending_lost)
		store__caches_forget(st);
	c->npending = 0;
	c->pending_lost = false;
}

/* ---- the counters, through the cache ---- */

/* Whether a column family's counters are cached, and in which table. */
static bool counter_table(enum store_cf cf, enum store_cache *t)
{
	switch (cf) {
	case STORE_CF_QMETA: *t = STORE_CACHE_QMETA; return true;
	case STORE_CF_CONVS: *t = STORE_CACHE_CONVS; return true;
	default: return false;
	}
}

int store__counter_get(store *st, const store_counter *ctr, void *out, size_t vlen, bool fill)
{
	enum store_cache t;
	bool cached = counter_table(ctr->cf, &t);
	size_t got = 0;
	enum store_cached c = cached ? store__cache_lookup(st, t, ctr->key, ctr->klen, out, &got)
	                             : STORE_UNCACHED;
	switch (c) {
	case STORE_CACHED_ABSENT:
		return CHAT_ENOTFOUND;
	case STORE_CACHED_VALUE:
		if (got == vlen)
			return CHAT_OK;
		break; /* not a counter of this size: RocksDB says what it is */
	case STORE_UNCACHED:
		break;
	}
	int rc = store__get_fixed(st, ctr->cf, ctr->key, ctr->klen, out, vlen);
	if (cached && fill && (rc == CHAT_OK || rc == CHAT_ENOTFOUND))
		store__cache_fill(st, t, ctr->key, ctr->klen, rc == CHAT_OK ? out : NULL, vlen);
	return rc;
}

void store__counter_put(store *st, const store_counter *ctr, const void *val, size_t vlen)
{
	rocksdb_writebatch_put_cf(st->wb, st->cf[ctr->cf], ctr->key, ctr->klen, val, vlen);
	enum store_cache t;
	if (counter_table(ctr->cf, &t))
		store__cache_stage(st, t, ctr->key, ctr->klen, val, vlen);
}

void store__counter_delete(store *st, const store_counter *ctr)
{
	rocksdb_writebatch_delete_cf(st->wb, st->cf[ctr->cf], ctr->key, ctr->klen);
	enum store_cache t;
	if (counter_table(ctr->cf, &t))
		store__cache_stage(st, t, ctr->key, ctr->klen, NULL, 0);
}
