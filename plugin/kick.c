/* kick.c — disconnects deferred to the tick (like dynsec's kicklist.c).
 *
 * mosquitto's kick inside a callback disconnects at once, before the
 * current packet's acknowledgement goes out, and fires DISCONNECT
 * synchronously into the core (shared/MOSQUITTO-2.0-NOTES.md). So a
 * feature that must disconnect a client (an admin removing a connected
 * device) only names it here; core_tick runs the list first thing.
 */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

void kick_schedule(core *c, const char *clientid)
{
	kicklist *k = &c->kicks;
	if (chat_grow(&k->ids, &k->cap, k->n + 1, sizeof(*k->ids), 8))
		return;
	char *id = strdup(clientid);
	if (id)
		k->ids[k->n++] = id;
}

void kick_cancel(core *c, const char *clientid)
{
	kicklist *k = &c->kicks;
	for (size_t i = 0; i < k->n;) {
		if (strcmp(k->ids[i], clientid) == 0) {
			free(k->ids[i]);
			k->ids[i] = k->ids[--k->n];
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
		c->io.kick(c->io.ctx, k.ids[i]);
		free(k.ids[i]);
	}
	free(k.ids);
}

void kick_free(core *c)
{
	for (size_t i = 0; i < c->kicks.n; i++)
		free(c->kicks.ids[i]);
	free(c->kicks.ids);
	memset(&c->kicks, 0, sizeof(c->kicks));
}
