// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* later_store.c — see later_store.h. */
#include "later_store.h"

#include <check.h>
#include <string.h>

#include "core_internal.h"

#define LATER_MAX 8

typedef struct later_answer {
	store_send_done done;
	void *arg;
	int rc;
	uint64_t seq;
} later_answer;

static later_answer LATER[LATER_MAX];
static size_t NLATER;

static void later_begin(void *ctx, store *st, const store_msg *msg, const char *const *to, size_t n,
                        uint64_t max_queue, store_send_done done, void *arg)
{
	ck_assert_ptr_eq(ctx, LATER);
	ck_assert_uint_lt(NLATER, LATER_MAX);
	later_answer *a = &LATER[NLATER++];
	a->done = done;
	a->arg = arg;
	a->seq = 0;
	a->rc = store_send(st, msg, to, n, max_queue, &a->seq);
}

static void later_poll(void *ctx)
{
	ck_assert_ptr_eq(ctx, LATER);
	later_answer now[LATER_MAX];
	size_t n = NLATER;
	memcpy(now, LATER, sizeof(now));
	NLATER = 0; /* what completes now may begin the next send */
	for (size_t i = 0; i < n; i++)
		now[i].done(now[i].arg, now[i].rc, now[i].seq);
}

void later_store_install(core *c)
{
	NLATER = 0;
	c->send.be = (send_backend){ later_begin, later_poll, LATER };
}

size_t later_store_waiting(void)
{
	return NLATER;
}
