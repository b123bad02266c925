// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* grow.h — the one way a growable array grows.
 *
 * Scratch arrays (fan-out lists, walk results, pending work) live as long as
 * their owner and only grow: capacity doubles, from `first` when it is still
 * zero, until it holds `need` elements, so n appends cost O(n) in all.
 */
#ifndef CHAT_GROW_H
#define CHAT_GROW_H

#include <stddef.h>

/* The capacity an array of capacity cap grows to so that it holds need
 * elements: cap itself when it already does; 0 if that would overflow
 * elem-byte elements. For several arrays that share one capacity. */
size_t chat_grow_cap(size_t cap, size_t need, size_t elem, size_t first);

/* Grows the array whose pointer is at ptrp (the address of any object
 * pointer, e.g. &s->v) to hold at least need elements of elem bytes.
 * CHAT_OK, or CHAT_ENOMEM with the array and *cap unchanged. */
int chat_grow(void *ptrp, size_t *cap, size_t need, size_t elem, size_t first);

#endif
