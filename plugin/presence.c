// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* presence.c — the retained presence document on chat/presence/U.
 *
 * Stock mosquitto 2.0 has no CONNECT event and an ambiguous DISCONNECT, so
 * presence is driven by what the core can trust:
 *   - online: a device's successful BASIC_AUTH (core_auth) records its
 *     connection; the first device of a user publishes {s:"online"}.
 *   - gone: the DISCONNECT of the recorded connection (clean disconnect,
 *     socket closed or reset, keepalive timeout, kick) — never the second
 *     DISCONNECT the broker reports for a taken-over session's old
 *     connection — or, should that be missed, the device's Last Will on
 *     chat/presence/U/D, whose WRITE ACL check fires when the will is sent
 *     after its connection is gone.
 * When the last device of U is gone a grace timer starts
 * (plugin_opt_presence_grace); a device that comes back before it expires
 * cancels it: no offline flicker, no second "online". At expiry (checked
 * on every tick, with the core's own clock, since TICK carries no time) the
 * server publishes {s:"offline", seen: when the last device left}; seen is
 * left out when U's presence setting is "nobody".
 *
 * Changes are published at QoS 1 to every subscriber (publish with no
 * client id), so the broker's READ ACL check at delivery applies U's
 * privacy to each subscriber: presence_may_read. What a new subscriber
 * gets at once, the current document, comes from one of two places:
 *   - default: this plugin's own state (u->pres, u->seen). A granted
 *     SUBSCRIBE to exactly P/presence/U — the patched broker's SUBSCRIBE
 *     event, or on stock mosquitto the approving ACL check, after which the
 *     subscription is added in the same packet handling — is answered with
 *     the document, published to that client id (presence_subscribed). Live
 *     changes are not retained: nothing of presence stays in the broker's
 *     retain tree (~413 bytes per user there, docs/BENCHMARKS.md "idle").
 *   - plugin_opt_presence_retained true: every document is published
 *     retained and the broker answers the SUBSCRIBE from its retain tree.
 * A document published to a client id arrives with the retain flag clear
 * (mosquitto 2.0's plugin publish to a client cannot set it), unlike a
 * retained one; the payload is the same.
 *
 * The timers form one list in expiry order (the grace is the same for
 * everyone), so a tick looks at the head only and does bounded work.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

#define PRESENCE_TICK_MAX 1000 /* offline documents published per tick */

static void timer_unlink(core *c, user *u)
{
	if (!u->grace_until)
		return;
	if (u->gprev)
		u->gprev->gnext = u->gnext;
	else
		c->presence.grace_head = u->gnext;
	if (u->gnext)
		u->gnext->gprev = u->gprev;
	else
		c->presence.grace_tail = u->gprev;
	u->gprev = u->gnext = NULL;
	u->grace_until = 0;
}

static void timer_start(core *c, user *u, uint64_t until)
{
	u->grace_until = until ? until : 1;
	u->gnext = NULL;
	u->gprev = c->presence.grace_tail;
	if (c->presence.grace_tail)
		c->presence.grace_tail->gnext = u;
	else
		c->presence.grace_head = u;
	c->presence.grace_tail = u;
}

static enum store_presence pref_of(core *c, user *u)
{
	if (!u->pref_read) {
		store_prefs p;
		if (store_prefs_get(c->st, u->name, &p) != CHAT_OK)
			return STORE_PRESENCE_NOBODY; /* fail closed; read again next time */
		u->pref = p.presence;
		u->pref_read = true;
	}
	return u->pref;
}

/* To every subscriber (clientid NULL), or to one client. */
static void publish(core *c, const char *clientid, const char *user, const uint8_t *doc, size_t len)
{
	char topic[CORE_PREFIX_MAX + sizeof("/presence/") + CHAT_USER_MAX];
	snprintf(topic, sizeof(topic), "%s/presence/%s", c->prefix, user);
	bool retain = !clientid && c->cfg.presence_retained;
	if (c->io.publish(c->io.ctx, clientid, topic, doc, len, 1, retain) == 0)
		c->n.presence_out++;
}

/* {s, ? seen} for state s of u into c->w; false if it could not be encoded. */
static bool encode(core *c, user *u, enum pres_state s)
{
	cbw *w = &c->w;
	bool seen = s == PRES_OFFLINE && pref_of(c, u) != STORE_PRESENCE_NOBODY;
	cbw_reset(w);
	cbw_map(w, 1 + seen);
	cbw_text(w, "s");
	cbw_text(w, s == PRES_ONLINE ? "online" : "offline");
	if (seen) {
		cbw_text(w, "seen");
		cbw_uint(w, u->seen);
	}
	return cbw_status(w) == 0;
}

static void publish_state(core *c, user *u, enum pres_state s)
{
	if (encode(c, u, s))
		publish(c, NULL, u->name, c->w.buf, c->w.len);
	u->pres = s;
}

void presence_up(core *c, user *u)
{
	timer_unlink(c, u);
	if (u->pres != PRES_ONLINE)
		publish_state(c, u, PRES_ONLINE);
}

void presence_down(core *c, user *u)
{
	if (u->nonline > 0 || u->grace_until || u->pres != PRES_ONLINE)
		return;
	uint64_t now = c->io.now_ms(c->io.ctx);
	u->seen = now;
	timer_start(c, u, now + (uint64_t)c->cfg.presence_grace_s * 1000);
}

void presence_forget(core *c, user *u)
{
	timer_unlink(c, u);
	/* Clears the retained document; either way current subscribers see
	 * an empty payload, as a cleared retained message shows them. */
	if (u->pres != PRES_NONE)
		publish(c, NULL, u->name, (const uint8_t *)"", 0);
	u->pres = PRES_NONE;
}

void presence_will(core *c, const char *username)
{
	device *dev = dir_device(&c->dir, username, strlen(username));
	/* A recorded connection is alive: this is a plain publish (refused by
	 * the send path), or the will of an old connection the device has
	 * already replaced. Only a device without a connection is gone. */
	if (!dev || dev->conn)
		return;
	presence_down(c, dev->user);
}

bool presence_may_read(core *c, const char *username, const topic *t)
{
	const char *slash = strchr(username, '/');
	size_t vl = slash ? (size_t)(slash - username) : strlen(username);
	if (vl == t->alen && memcmp(username, t->a, vl) == 0)
		return true; /* one's own user */
	user *u = dir_user(&c->dir, t->a, t->alen);
	enum store_presence p;
	if (u) {
		p = pref_of(c, u);
	} else {
		char name[CHAT_USER_MAX + 1];
		store_prefs sp;
		memcpy(name, t->a, t->alen);
		name[t->alen] = '\0';
		p = store_prefs_get(c->st, name, &sp) == CHAT_OK ? sp.presence : STORE_PRESENCE_NOBODY;
	}
	if (p == STORE_PRESENCE_NOBODY)
		return false;
	if (p == STORE_PRESENCE_EVERYONE && groups_shared(c, username, vl, t->a, t->alen))
		return true;
	/* A 1:1 conversation exists once a message was sent in it. */
	char conv[CHAT_CONV_MAX + 1];
	uint64_t last = 0;
	if (!chat_dm_conv(conv, username, vl, t->a, t->alen))
		return false;
	return store_conv_last_seq(c->st, conv, &last) == CHAT_OK && last > 0;
}

void presence_subscribed(core *c, device *dev, const topic *t)
{
	if (c->cfg.presence_retained || t->kind != T_PRESENCE_USER)
		return;
	user *u = dir_user(&c->dir, t->a, t->alen);
	/* Nothing published yet (no device of U connected since the broker
	 * started): no document, as the retain tree would have none. */
	if (!u || u->pres == PRES_NONE)
		return;
	if (encode(c, u, u->pres)) {
		publish(c, dev->addr, u->name, c->w.buf, c->w.len);
		c->n.presence_answers++;
	}
}

void presence_pref_set(core *c, const char *name, enum store_presence p)
{
	user *u = dir_user(&c->dir, name, strlen(name));
	if (u) {
		u->pref = p;
		u->pref_read = true;
	}
}

void presence_tick(core *c)
{
	uint64_t now = c->io.now_ms(c->io.ctx);
	for (int i = 0; i < PRESENCE_TICK_MAX && c->presence.grace_head && c->presence.grace_head->grace_until <= now; i++) {
		user *u = c->presence.grace_head;
		timer_unlink(c, u);
		if (u->nonline == 0)
			publish_state(c, u, PRES_OFFLINE);
	}
}
