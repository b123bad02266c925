// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_fifo.h — the completion FIFO of the JetStream backend (docs/CLUSTER.md,
 * "Threads: libnats callbacks and the broker loop").
 *
 * libnats answers on its own threads; mosquitto's API may be used only on
 * the broker thread. So every network result becomes a completion (an
 * operation id, a status, an opaque pointer) that a producer thread appends
 * here; the first append after the owner last took the FIFO calls
 * notify(arg) (outside the lock), which must be quick and thread-safe: on
 * the patched broker the plugin passes its io.wakeup (mosquitto_loop_wakeup,
 * patch 0004), which has core_wakeup() run on the broker thread in the same
 * loop pass. The owner thread takes everything queued in one swap and runs
 * the continuations without holding the lock.
 *
 * One mutex, held for an append or a swap, never across a call out. Order
 * is kept per producer (and globally: the order of the appends). No NATS
 * type here: the FIFO is unit-tested on its own (tests/unit/test_jsfifo.c).
 */
#ifndef CHAT_JS_FIFO_H
#define CHAT_JS_FIFO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct js_completion {
	uint64_t op;    /* the operation it completes */
	int status;     /* the producer's outcome code */
	void *data;     /* owned by the completion (e.g. a reply message) */
} js_completion;

typedef struct js_batch {
	js_completion *v;
	size_t n, cap;
} js_batch;

typedef struct js_fifo {
	pthread_mutex_t mu;
	js_batch in;               /* appended by producers */
	int armed;                 /* a notify is owed to the owner (it has not taken since) */
	void (*notify)(void *arg); /* may be NULL: the owner polls */
	void *notify_arg;
	uint64_t pushed, notified; /* counters, under mu */
} js_fifo;

int js_fifo_init(js_fifo *f, void (*notify)(void *), void *arg);
/* Any thread. CHAT_OK, or CHAT_ENOMEM (nothing queued: the caller keeps data). */
int js_fifo_push(js_fifo *f, uint64_t op, int status, void *data);
/* The owner thread: swaps everything queued into *b, which must be empty
 * (n == 0; its storage is reused). Returns b->n. The caller runs the
 * completions and sets b->n = 0 before the next take. */
size_t js_fifo_take(js_fifo *f, js_batch *b);
/* Frees what is still queued (free_data on each data, if given) and the batch. */
void js_fifo_destroy(js_fifo *f, void (*free_data)(void *));
void js_batch_free(js_batch *b);

#endif
