// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* hmap.h — an open-addressing hash table from strings to pointers.
 *
 * The plugin answers ACL checks and routes messages on the broker's only
 * thread, so lookups by user, device address or service name must be O(1)
 * and allocation-free. Keys are not copied: each value owns its key string
 * and the table stores a pointer to it. Hashing is SipHash (libsodium's
 * crypto_shorthash) with a random key per table, so crafted ids cannot
 * degrade it.
 */
#ifndef CHAT_HMAP_H
#define CHAT_HMAP_H

#include <stddef.h>

typedef struct hmap_slot {
	const char *key; /* NULL: empty; HMAP_TOMBSTONE: deleted */
	size_t klen;
	void *val;
} hmap_slot;

typedef struct hmap {
	hmap_slot *slots;
	size_t cap, used, live; /* used counts tombstones too */
	unsigned char seed[16];
} hmap;

int hmap_init(hmap *m);
void hmap_free(hmap *m);
void *hmap_get(const hmap *m, const char *key, size_t klen);
/* Inserts or replaces; key must stay valid while in the table. */
int hmap_put(hmap *m, const char *key, size_t klen, void *val);
/* Removes and returns the value, or NULL. */
void *hmap_del(hmap *m, const char *key, size_t klen);
/* Iteration: for (size_t i = 0; hmap_iter(m, &i, &val);) */
int hmap_iter(const hmap *m, size_t *i, void **val);

#endif
