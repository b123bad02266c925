// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* device_notices.c — telling the world that an admin removed a device
 * (docs/PROTOCOL.md, the `devices` event).
 *
 * Who learns of it: the user's own devices, the members of every group the
 * user is in, and the user's 1:1 contacts (the store's contacts index), each
 * once, live or through their queues; so senders fix their device lists
 * (and their `bodies`) before their next send is refused with `devices`.
 * The key server learns of a removal through the retained service message
 * P/keys/removed/U/D (it drops the device's keys, then clears the message;
 * retained, so a key server that was away acts on it when it reconnects);
 * adding the same U/D again clears a removal it has not acted on yet. An
 * added device is learnt by senders from the `devices` refusal of their
 * next send, as before.
 *
 * This runs for admin commands only, never on the message path: its cost
 * is one prefix scan of the user's contacts and one event per contact.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct names {
	char (*v)[CHAT_USER_MAX + 1];
	size_t n, cap;
	bool oom;
} names;

static int add_name(void *arg, const char *name)
{
	names *l = arg;
	if (chat_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v), 64)) {
		l->oom = true;
		return CHAT_ENOMEM;
	}
	snprintf(l->v[l->n++], sizeof(*l->v), "%s", name);
	return CHAT_OK;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void keys_notice(core *c, const char *user, const char *dev, bool removed)
{
	char topic[CORE_PREFIX_MAX + 16 + CHAT_ADDR_MAX];
	snprintf(topic, sizeof(topic), "%s/keys/removed/%s/%s", c->prefix, user, dev);
	cbw w;
	cbw_init(&w);
	if (removed) {
		cbw_map(&w, 1);
		cbw_text(&w, "ts");
		cbw_uint(&w, c->io.now_ms(c->io.ctx));
	}
	/* retained, to every subscriber (the key server); empty clears it */
	if (cbw_status(&w) == 0)
		c->io.publish(c->io.ctx, NULL, topic, w.buf, w.len, 1, true);
	cbw_free(&w);
}

void notice_device_added(core *c, const char *user, const char *dev)
{
	keys_notice(c, user, dev, false);
}

void notice_device_removed(core *c, const char *uname, const char *removed)
{
	keys_notice(c, uname, removed, true);

	user *u = dir_user(&c->dir, uname, strlen(uname));
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 5);
	cbw_text(&w, "k"); cbw_text(&w, "devices");
	cbw_text(&w, "user"); cbw_text(&w, uname);
	cbw_text(&w, "devices");
	cbw_array(&w, u ? u->ndev : 0);
	for (size_t i = 0; u && i < u->ndev; i++)
		cbw_text(&w, u->dev[i]->id);
	cbw_text(&w, "removed"); cbw_text(&w, removed);
	cbw_text(&w, "ts"); cbw_uint(&w, c->io.now_ms(c->io.ctx));

	names l = { 0 };
	int rc = store_contacts_each(c->st, uname, add_name, &l);
	if (rc == CHAT_OK)
		rc = groups_each_comember(c, uname, add_name, &l);
	if (rc != CHAT_OK)
		core_log(c, CORE_LOG_ERR, "device removal of %s reaches only some contacts: %s", uname,
		         l.oom ? "out of memory" : store_errmsg(c->st));
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_name);
	if (u)
		ev_deliver_user(c, u, &w);
	size_t told = 0;
	for (size_t i = 0; i < l.n; i++) {
		if ((i > 0 && !strcmp(l.v[i], l.v[i - 1])) || !strcmp(l.v[i], uname))
			continue;
		user *v = dir_user(&c->dir, l.v[i], strlen(l.v[i]));
		if (v) {
			ev_deliver_user(c, v, &w);
			told++;
		}
	}
	core_log(c, CORE_LOG_INFO, "device %s/%s removed: told its user's devices and %zu other users",
	         uname, removed, told);
	free(l.v);
	cbw_free(&w);
}
