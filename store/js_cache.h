// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_cache.h — the pure parts of a node's caches of the KV buckets
 * (docs/CLUSTER.md, "What a node caches and how it learns of changes"):
 * one map per watched bucket, key -> (revision, value), fed by the bucket's
 * ordered consumer and by this node's own acknowledged writes, and the
 * chat_groups record's format. No NATS type and no I/O: unit-tested
 * (tests/unit/test_jsstore.c) and the decoder fuzzed (tests/fuzz/fuzz_jswatch.c).
 *
 * Revisions are the bucket stream's sequence numbers. A change is applied
 * only when its revision is above the entry's, so a watcher delivering an
 * older value after this node's own write (acknowledged at a higher
 * revision) changes nothing: read-your-writes on this node. A local delete
 * leaves a tombstone (the revision, no value) until the watcher delivers
 * that delete or anything newer; a watcher's delete simply removes the
 * entry (the consumer delivers in stream order, so nothing older follows),
 * and a change at or below the watcher's position for a key the cache does
 * not hold is overtaken (an acknowledgement that arrives after the
 * watcher's copy of the write and of a later delete: the FIFO carries both
 * from different libnats threads, in either order). */
#ifndef CHAT_JS_CACHE_H
#define CHAT_JS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "js.h"

typedef struct js_kv_entry {
	struct js_kv_entry *next;   /* the key's hash chain */
	struct js_kv_entry *onext;  /* the owner's hash chain (by_owner caches) */
	uint64_t rev;
	bool deleted;               /* a tombstone of a local delete */
	uint8_t *val;
	size_t len;
	size_t klen, olen;          /* the key's length; its first token's */
	char key[];
} js_kv_entry;

typedef struct js_kv_cache {
	js_kv_entry **tab, **otab;
	size_t cap, n;
	bool by_owner;              /* keys "<A>.<B>": listed by A (contacts) */
	bool by_event_seq;          /* values are group records: the highest event seq wins,
	                             * over the revision order (puts land in either order) */
	uint64_t pos;               /* the last revision the watcher delivered */
	uint64_t applied, ignored;  /* changes applied; changes older than the entry */
} js_kv_cache;

int js_kv_init(js_kv_cache *c, bool by_owner, bool by_event_seq);
void js_kv_free(js_kv_cache *c);
/* A change: a put (v, len) or a delete (del) at revision rev, from the
 * watcher or from this node's acknowledged write. 1: applied, 0: older
 * than what the entry holds (ignored), CHAT_ENOMEM. */
int js_kv_apply(js_kv_cache *c, const char *key, size_t klen, uint64_t rev, bool del, const uint8_t *v,
                size_t len, bool from_watcher);
/* The entry of key, NULL if none (or removed). */
const js_kv_entry *js_kv_find(const js_kv_cache *c, const char *key, size_t klen);
/* Every live entry whose key's first token is owner ("<owner>.<rest>"):
 * cb(arg, rest, rest_len); a non-zero return stops and is returned. */
int js_kv_each_owner(const js_kv_cache *c, const char *owner, size_t olen,
                     int (*cb)(void *arg, const char *rest, size_t len), void *arg);
/* Every live entry (order unspecified); a non-zero return of cb stops and
 * is returned. */
int js_kv_each(const js_kv_cache *c, int (*cb)(void *arg, const js_kv_entry *e), void *arg);
/* Live entries (tombstones excluded). */
size_t js_kv_count(const js_kv_cache *c);

#endif
