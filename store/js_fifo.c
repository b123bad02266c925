// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_fifo.c — see js_fifo.h. */
#include "js_fifo.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int js_fifo_init(js_fifo *f, void (*notify)(void *), void *arg)
{
	memset(f, 0, sizeof(*f));
	if (pthread_mutex_init(&f->mu, NULL) != 0)
		return CHAT_ENOMEM;
	f->notify = notify;
	f->notify_arg = arg;
	return CHAT_OK;
}

int js_fifo_push(js_fifo *f, uint64_t op, int status, void *data)
{
	int wake = 0;
	pthread_mutex_lock(&f->mu);
	if (f->in.n == f->in.cap) {
		size_t cap = f->in.cap ? f->in.cap * 2 : 64;
		js_completion *v = realloc(f->in.v, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&f->mu);
			return CHAT_ENOMEM;
		}
		f->in.v = v;
		f->in.cap = cap;
	}
	f->in.v[f->in.n++] = (js_completion){ op, status, data };
	f->pushed++;
	if (!f->armed) {
		f->armed = 1;
		f->notified++;
		wake = 1;
	}
	pthread_mutex_unlock(&f->mu);
	/* Outside the lock: the wake-up may take its own (mosquitto's eventfd
	 * write does not, a loopback socket write may block briefly). */
	if (wake && f->notify)
		f->notify(f->notify_arg);
	return CHAT_OK;
}

size_t js_fifo_take(js_fifo *f, js_batch *b)
{
	pthread_mutex_lock(&f->mu);
	js_batch t = f->in;
	f->in = *b;
	f->in.n = 0;
	*b = t;
	f->armed = 0;
	pthread_mutex_unlock(&f->mu);
	return b->n;
}

void js_batch_free(js_batch *b)
{
	free(b->v);
	memset(b, 0, sizeof(*b));
}

void js_fifo_destroy(js_fifo *f, void (*free_data)(void *))
{
	if (free_data)
		for (size_t i = 0; i < f->in.n; i++)
			if (f->in.v[i].data)
				free_data(f->in.v[i].data);
	js_batch_free(&f->in);
	pthread_mutex_destroy(&f->mu);
}
