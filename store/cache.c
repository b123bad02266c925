/* counters.c — the committed values of the two small counters that every
 * send and receipt reads, kept in memory: qmeta (a device's next qseq and
 * queue length) and convs (a conversation's last seq).
 *
 * Each is a direct-mapped table of CTR_SLOTS slots, allocated once: a key
 * lives in the slot its hash names, a colliding key replaces it, and a
 * miss reads RocksDB and fills the slot. A slot holds only what RocksDB has
 * committed, so a read inside a batch sees what it would without the cache.
 * A write through store_counter_put/delete empties its slot at once and is
 * remembered as pending; store_commit puts the pending values into their
 * slots after RocksDB took the batch, and an emptied batch (store_batch,
 * store_rollback, a failed commit) drops them. Writes that bypass these
 * calls (the white-box tests' raw records) call store_counters_forget.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define CTR_SLOTS 8192 /* per counter: ~1.2 MB each, touched only as used */
#define CTR_KEY_MAX (CHAT_CONV_MAX > CHAT_ADDR_MAX ? CHAT_CONV_MAX : CHAT_ADDR_MAX)
#define CTR_VAL_MAX 16

typedef struct ctr_slot {
	uint8_t state; /* 0: empty, 1: key has no record, 2: key has val */
	uint8_t klen;
	uint8_t key[CTR_KEY_MAX];
	uint8_t val[CTR_VAL_MAX];
} ctr_slot;

struct ctr_pending {
	uint8_t table, present, klen;
	uint32_t slot;
	uint8_t key[CTR_KEY_MAX];
	uint8_t val[CTR_VAL_MAX];
};

struct store_counters {
	ctr_slot *slot[2];
	struct ctr_pending *pending;
	size_t npending, cap;
	bool pending_lost; /* a pending write could not be remembered */
	uint64_t hits, misses;
};

static int table_of(enum store_cf cf, size_t vlen)
{
	if (cf == STORE_CF_QMETA && vlen == 16)
		return 0;
	if (cf == STORE_CF_CONVS && vlen == 8)
		return 1;
	return -1;
}

static uint32_t slot_of(const void *key, size_t klen)
{
	const uint8_t *p = key;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < klen; i++)
		h = (h ^ p[i]) * 16777619u;
	return (h ^ (h >> 15)) & (CTR_SLOTS - 1);
}

int store_counters_open(store *st)
{
	struct store_counters *c = calloc(1, sizeof *c);
	if (!c)
		return CHAT_ENOMEM;
	for (int t = 0; t < 2; t++)
		if (!(c->slot[t] = calloc(CTR_SLOTS, sizeof(ctr_slot)))) {
			free(c->slot[0]);
			free(c);
			return CHAT_ENOMEM;
		}
	st->ctr = c;
	return CHAT_OK;
}

void store_counters_close(store *st)
{
	struct store_counters *c = st->ctr;
	if (!c)
		return;
	free(c->slot[0]);
	free(c->slot[1]);
	free(c->pending);
	free(c);
	st->ctr = NULL;
}

void store_counters_forget(store *st)
{
	struct store_counters *c = st->ctr;
	for (int t = 0; c && t < 2; t++)
		memset(c->slot[t], 0, CTR_SLOTS * sizeof(ctr_slot));
}

void store_counters_stats(const store *st, uint64_t *hits, uint64_t *misses)
{
	*hits = st->ctr ? st->ctr->hits : 0;
	*misses = st->ctr ? st->ctr->misses : 0;
}

int store_counter_get(store *st, enum store_cf cf, const void *key, size_t klen, void *out,
                      size_t vlen, bool fill)
{
	struct store_counters *c = st->ctr;
	int t = table_of(cf, vlen);
	if (!c || t < 0 || klen > CTR_KEY_MAX)
		return store_get_fixed(st, cf, key, klen, out, vlen);
	ctr_slot *s = &c->slot[t][slot_of(key, klen)];
	if (s->state && s->klen == klen && memcmp(s->key, key, klen) == 0) {
		c->hits++;
		if (s->state == 1)
			return CHAT_ENOTFOUND;
		memcpy(out, s->val, vlen);
		return CHAT_OK;
	}
	c->misses++;
	int rc = store_get_fixed(st, cf, key, klen, out, vlen);
	if (fill && (rc == CHAT_OK || rc == CHAT_ENOTFOUND)) {
		s->state = rc == CHAT_OK ? 2 : 1;
		s->klen = (uint8_t)klen;
		memcpy(s->key, key, klen);
		if (rc == CHAT_OK)
			memcpy(s->val, out, vlen);
	}
	return rc;
}

/* Empties the key's slot and remembers the write for store_commit. */
static void stage(store *st, int t, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct store_counters *c = st->ctr;
	uint32_t i = slot_of(key, klen);
	c->slot[t][i].state = 0;
	if (c->npending == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct ctr_pending *p = realloc(c->pending, cap * sizeof *p);
		if (!p) {
			c->pending_lost = true; /* the slot stays empty: only a miss */
			return;
		}
		c->pending = p;
		c->cap = cap;
	}
	struct ctr_pending *p = &c->pending[c->npending++];
	p->table = (uint8_t)t;
	p->slot = i;
	p->klen = (uint8_t)klen;
	memcpy(p->key, key, klen);
	p->present = val != NULL;
	memset(p->val, 0, sizeof p->val);
	if (val)
		memcpy(p->val, val, vlen);
}

void store_counter_put(store *st, enum store_cf cf, const void *key, size_t klen,
                       const void *val, size_t vlen)
{
	rocksdb_writebatch_put_cf(st->wb, st->cf[cf], key, klen, val, vlen);
	int t = table_of(cf, vlen);
	if (st->ctr && t >= 0 && klen <= CTR_KEY_MAX)
		stage(st, t, key, klen, val, vlen);
}

void store_counter_delete(store *st, enum store_cf cf, const void *key, size_t klen)
{
	rocksdb_writebatch_delete_cf(st->wb, st->cf[cf], key, klen);
	int t = table_of(cf, cf == STORE_CF_QMETA ? 16 : 8);
	if (st->ctr && t >= 0 && klen <= CTR_KEY_MAX)
		stage(st, t, key, klen, NULL, 0);
}

void store_counters_settle(store *st, bool committed)
{
	struct store_counters *c = st->ctr;
	if (!c)
		return;
	/* in batch order: a later write of a key wins */
	for (size_t k = 0; committed && !c->pending_lost && k < c->npending; k++) {
		const struct ctr_pending *p = &c->pending[k];
		ctr_slot *s = &c->slot[p->table][p->slot];
		s->state = p->present ? 2 : 1;
		s->klen = p->klen;
		memcpy(s->key, p->key, p->klen);
		memcpy(s->val, p->val, CTR_VAL_MAX);
	}
	c->npending = 0;
	c->pending_lost = false;
}
