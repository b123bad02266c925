// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* typing.c — typing indicators (chat/typing/{conv}).
 *
 * {on: bool} from a device becomes {k:"typing", conv, from, on} at QoS 0
 * to the online devices of the conversation's other members (the peer of a
 * dm, or every other member of a group). Typing is ephemeral: never stored,
 * never queued, so it costs no disk write, and a device that was offline
 * or replays later never sees a stale indicator. Non-members are refused
 * with an `error` event, like sends.
 */
#include "core_internal.h"
#include "err.h"

#include <string.h>

static void relay_to(core *c, const user *u, const cbw *w)
{
	for (size_t i = 0; i < u->ndev; i++) {
		if (u->dev[i]->conn) {
			ev_publish_qos0(c, u->dev[i], w);
			c->n.typing_out++;
		}
	}
}

enum core_verdict typing_handle(core *c, device *from, const topic *t, const uint8_t *payload,
                                size_t len)
{
	cbr_fields f;
	int on = -1;
	cbr_fields_open(&f, payload, len, NULL);
	while (cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "on")) {
			if (f.val.type != CBR_BOOL)
				return ev_refuse(c, from, REFUSE_FIELD, "on must be a boolean");
			on = f.val.b;
		} else {
			cbr_fields_skip(&f);
		}
	}
	const char *bad_cbor = cbr_fields_close(&f, NULL);
	if (bad_cbor)
		return ev_refuse(c, from, REFUSE_CBOR, "%s", bad_cbor);
	if (on < 0)
		return ev_refuse(c, from, REFUSE_FIELD, "on (a boolean) is required");

	const char *p1, *p2;
	size_t l1, l2;
	const user *me = from->user;
	size_t ml = strlen(me->name);
	enum chat_conv_kind kind = t->alen <= CHAT_CONV_MAX
	                           ? chat_parse_conv(t->a, t->alen, &p1, &l1, &p2, &l2)
	                           : CHAT_CONV_INVALID;
	const user *peer = NULL;
	const group *g = NULL;
	if (kind == CHAT_CONV_DM) {
		bool first = l1 == ml && memcmp(p1, me->name, ml) == 0;
		bool second = l2 == ml && memcmp(p2, me->name, ml) == 0;
		if (first || second)
			peer = first ? dir_user(&c->dir, p2, l2) : dir_user(&c->dir, p1, l1);
		if (!peer)
			return ev_refuse(c, from, REFUSE_CONV, "not a conversation of this device's user");
	} else if (kind == CHAT_CONV_GROUP) {
		g = group_find(c, p1, l1);
		if (!g || !group_has(g, me->name, ml))
			return ev_refuse(c, from, REFUSE_CONV, "not a conversation of this device's user");
	} else {
		return ev_refuse(c, from, REFUSE_CONV, "not a conversation id");
	}

	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 4);
	cbw_text(w, "k"); cbw_text(w, "typing");
	cbw_text(w, "conv"); cbw_textn(w, t->a, t->alen);
	cbw_text(w, "from"); cbw_text(w, from->addr);
	cbw_text(w, "on"); cbw_bool(w, on);
	if (peer) {
		relay_to(c, peer, w);
		return CORE_ALLOW;
	}
	for (size_t k = 0; k < g->n; k++) {
		const user *u = dir_user(&c->dir, g->m[k]->user, strlen(g->m[k]->user));
		if (u && u != me)
			relay_to(c, u, w);
	}
	return CORE_ALLOW;
}
