// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* expiry.c — the TTL sweep.
 *
 * Every message carries an expiry (its ttl, capped by plugin_opt_offline_ttl).
 * Once a second the tick asks the store to delete up to
 * plugin_opt_expire_slice expired messages, oldest first, and goes on at
 * the next tick while more remain, so a large expiry never stalls the
 * broker. For each recipient user who never got a message, its sender's
 * devices get a receipt with "s": "expired". Receipts are emitted after
 * the store call returns: the store is not re-entered from its callback.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct expired {
	char conv[CHAT_CONV_MAX + 1];
	uint64_t seq;
	char from[CHAT_ADDR_MAX + 1];
	char by[CHAT_USER_MAX + 1]; /* a recipient user who never got it */
} expired;

typedef struct sweep {
	expired *v;
	size_t n, cap;
} sweep;

static void on_expired(void *arg, const store_msg *m, uint64_t seq, const char *const *undelivered,
                       size_t n)
{
	sweep *s = arg;
	if (m->kind != STORE_KIND_MSG)
		return; /* a group event has no sender to tell */
	size_t sl = chat_addr_user_len(m->from);
	for (size_t i = 0; i < n; i++) {
		size_t ul = chat_addr_user_len(undelivered[i]);
		if (ul > CHAT_USER_MAX || (ul == sl && memcmp(undelivered[i], m->from, sl) == 0))
			continue; /* the sender's own devices: no receipt about oneself */
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			seen |= chat_addr_user_len(undelivered[j]) == ul && memcmp(undelivered[j], undelivered[i], ul) == 0;
		if (seen)
			continue;
		if (chat_grow(&s->v, &s->cap, s->n + 1, sizeof(*s->v), 64))
			return;
		expired *e = &s->v[s->n++];
		snprintf(e->conv, sizeof(e->conv), "%s", m->conv);
		e->seq = seq;
		snprintf(e->from, sizeof(e->from), "%s", m->from);
		memcpy(e->by, undelivered[i], ul);
		e->by[ul] = '\0';
	}
}

void expiry_tick(core *c)
{
	uint64_t now = c->io.now_ms(c->io.ctx);
	if (now < c->expiry.next_sweep_ms)
		return;
	sweep s = { 0 };
	size_t count = 0;
	if (store_expire(c->st, now, c->cfg.expire_slice, on_expired, &s, &count)) {
		core_log(c, CORE_LOG_ERR, "expiry sweep failed: %s", store_errmsg(c->st));
		count = 0;
	}
	c->n.expired += count;
	if (count)
		c->expiry.epoch++; /* flow windows refit to their queues (flow.c) */
	/* A full slice means more may be waiting: continue at the next tick. */
	c->expiry.next_sweep_ms = count == c->cfg.expire_slice ? now : now + 1000;

	for (size_t i = 0; i < s.n; i++) {
		expired *e = &s.v[i];
		user *sender = dir_user(&c->dir, e->from, chat_addr_user_len(e->from));
		if (!sender)
			continue;
		/* the v1 receipt event, or gathered for a v2 device (gather.c) */
		gather_receipt(c, sender, e->conv, "expired", &e->seq, 1, e->by, now);
	}
	free(s.v);
}
