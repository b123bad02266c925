// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* kick.c — disconnects deferred to the tick (like dynsec's kicklist.c).
 *
 * mosquitto's kick inside a callback disconnects at once, before the
 * current packet's acknowledgement goes out, and fires DISCONNECT
 * synchronously into the core (shared/MOSQUITTO-2.0-NOTES.md). So a
 * feature that must disconnect a client (an admin removing a connected
 * device, rotating a service's token) only names it here; core_tick runs
 * the list first thing.
 */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

static void schedule(core *c, const char *name, bool username)
{
	kicklist *k = &c->kicks;
	if (chat_grow(&k->e, &k->cap, k->n + 1, sizeof(*k->e), 8))
		return;
	char *copy = strdup(name);
	if (copy)
		k->e[k->n++] = (kick_entry){ copy, username };
}

void kick_schedule(core *c, const char *clientid)
{
	schedule(c, clientid, false);
}

void kick_schedule_user(core *c, const char *username)
{
	schedule(c, username, true);
}

void kick_cancel(core *c, const char *clientid)
{
	kicklist *k = &c->kicks;
	for (size_t i = 0; i < k->n;) {
		if (!k->e[i].username && strcmp(k->e[i].name, clientid) == 0) {
			free(k->e[i].name);
			k->e[i] = k->e[--k->n];
		} else {
			i++;
		}
	}
}

void kick_tick(core *c)
{
	/* Swap the list out first: a kick fires DISCONNECT synchronously. */
	kicklist k = c->kicks;
	memset(&c->kicks, 0, sizeof(c->kicks));
	for (size_t i = 0; i < k.n; i++) {
		c->io.kick(c->io.ctx, k.e[i].name, k.e[i].username);
		free(k.e[i].name);
	}
	free(k.e);
}

void kick_free(core *c)
{
	for (size_t i = 0; i < c->kicks.n; i++)
		free(c->kicks.e[i].name);
	free(c->kicks.e);
	memset(&c->kicks, 0, sizeof(c->kicks));
}
