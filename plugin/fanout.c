// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fanout.c — the recipient list of the send or group change in progress.
 *
 * A group fan-out can reach tens of thousands of devices, so the list lives
 * in growable arrays kept in the core (c->fan), grown to the largest
 * fan-out seen: a send to a 1000-member group allocates nothing in the
 * steady state. Its users, send.c and groups.c, fill it from zero and are
 * done with it before they return; nothing else keeps a pointer into it.
 */
#include "core_internal.h"
#include "err.h"

#include <stdlib.h>

int fanout_reserve(core *c, size_t n)
{
	fanout *f = &c->fan;
	/* Four arrays, one capacity: each grows from f->cap; the ones that grew
	 * are kept on failure, and f->cap is raised only when all did. */
	size_t c1 = f->cap, c2 = f->cap, c3 = f->cap, c4 = f->cap;
	if (chat_grow(&f->to, &c1, n, sizeof(*f->to), 64) ||
	    chat_grow(&f->addrs, &c2, n, sizeof(*f->addrs), 64) ||
	    chat_grow(&f->bodies, &c3, n, sizeof(*f->bodies), 64) ||
	    chat_grow(&f->blens, &c4, n, sizeof(*f->blens), 64))
		return CHAT_ENOMEM;
	f->cap = c1;
	return CHAT_OK;
}

bool fanout_add_user(core *c, const user *u, const device *except, size_t *n)
{
	if (fanout_reserve(c, *n + u->ndev))
		return false;
	for (size_t i = 0; i < u->ndev; i++)
		if (u->dev[i] != except)
			c->fan.to[(*n)++] = u->dev[i];
	return true;
}

void fanout_addrs(core *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		c->fan.addrs[i] = c->fan.to[i]->addr;
}

void fanout_free(core *c)
{
	free(c->fan.to);
	free(c->fan.addrs);
	free(c->fan.bodies);
	free(c->fan.blens);
}
