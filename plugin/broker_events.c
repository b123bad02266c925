// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* broker_events.c — what the core does with the events only a patched broker has.
 *
 * broker-patches/ gives mosquitto 2.0.11 three more plugin events: a
 * connection is complete (CONNECT), a subscription was granted (SUBSCRIBE),
 * a client acknowledged a QoS 1/2 message it was sent (MESSAGE_ACKED). The
 * glue registers for them when the broker has them and tells the core which
 * it got (core_broker_events); on stock mosquitto none arrives and the core
 * works as it always has: replays start on chat/sync, delivery needs app
 * receipts.
 *
 * With them:
 * - a device's PUBACK of a msg or group event in its own inbox is its
 *   delivered receipt for that (conv, seq) (plugin_opt_delivered_on_puback,
 *   default on), so a client with nothing but an MQTT library gets ✓✓;
 * - a device's replay starts by itself when it resumes a session (clean =
 *   false), which keeps its inbox subscription without a new SUBSCRIBE.
 * A replay also starts by itself when a device subscribes to its inbox
 * (plugin_opt_auto_replay, default on; once per connection), on either
 * broker: the patched one reports the granted subscription; on stock
 * mosquitto the ACL check of the SUBSCRIBE is the sign (acl.c), and the
 * subscription is added right after it in the same packet handling — the
 * replay's events reach the client by its id either way.
 * delivered_on_puback set to true on a broker without the events stops the
 * start.
 */
#include "core_internal.h"

#include <string.h>

/* Whether a feature that needs `need` is on: its option, else whether the
 * broker has the events; false (and logged) if it was asked for without. */
static bool feature(core *c, enum core_tristate opt, unsigned need, const char *name, bool *on)
{
	bool have = (c->bev.have & need) == need;
	if (opt == CORE_ON && !have) {
		core_log(c, CORE_LOG_ERR, "plugin_opt_%s true needs a broker built with "
		         "broker-patches/; this one lacks its events (stock mosquitto?)", name);
		return false;
	}
	*on = have && opt != CORE_OFF;
	return true;
}

bool core_broker_events(core *c, unsigned have)
{
	c->bev.have = have;
	if (!feature(c, c->cfg.delivered_on_puback, CORE_BEV_ACKED, "delivered_on_puback",
	             &c->bev.ack_delivers) ||
	    !feature(c, c->cfg.auto_replay, 0, "auto_replay", &c->bev.auto_replay))
		return false;
	if (!have) {
		core_log(c, CORE_LOG_NOTICE, "broker events: none beyond mosquitto 2.0's (stock broker): "
		         "delivery needs receipts; auto replay (on inbox SUBSCRIBE): %s",
		         c->bev.auto_replay ? "on" : "off");
		return true;
	}
	core_log(c, CORE_LOG_NOTICE, "broker events:%s%s%s; delivered on PUBACK: %s; auto replay: %s",
	         have & CORE_BEV_CONNECT ? " connect" : "",
	         have & CORE_BEV_SUBSCRIBE ? " subscribe" : "",
	         have & CORE_BEV_ACKED ? " message_acked" : "",
	         c->bev.ack_delivers ? "on" : "off", c->bev.auto_replay ? "on" : "off");
	return true;
}

/* The device connected as conn, if conn is still its recorded connection. */
static device *live_device(core *c, void *conn, const char *username)
{
	if (!username || !strchr(username, '/'))
		return NULL;
	device *dev = dir_device(&c->dir, username, strlen(username));
	return dev && dev->conn == conn ? dev : NULL;
}

/* The same device, if name (a topic or a filter) is its own inbox. */
static device *inbox_device(core *c, void *conn, const char *username, const char *name)
{
	device *dev = live_device(c, conn, username);
	if (!dev)
		return NULL;
	char inbox[CORE_INBOX_MAX];
	ev_inbox_topic(c, dev, inbox);
	return strcmp(name, inbox) == 0 ? dev : NULL;
}

void core_connected(core *c, void *conn, const char *username, bool clean)
{
	if (!c->bev.auto_replay || clean)
		return;
	device *dev = live_device(c, conn, username);
	if (dev)
		sync_auto(c, dev);
}

/* From the glue's SUBSCRIBE event (patched broker) or acl.c's approval of
 * a device's SUBSCRIBE (stock broker): its inbox starts the replay; exactly
 * P/presence/U (not under $share/, which gets no retained messages either)
 * is answered with U's current presence document (presence.c). */
void core_subscribed(core *c, void *conn, const char *username, const char *filter)
{
	device *dev = live_device(c, conn, username);
	if (!dev)
		return;
	char inbox[CORE_INBOX_MAX];
	ev_inbox_topic(c, dev, inbox);
	if (strcmp(filter, inbox) == 0) {
		if (c->bev.auto_replay)
			sync_auto(c, dev);
		return;
	}
	topic t;
	topic_parse(c, filter, &t);
	if (t.kind == T_PRESENCE_USER)
		presence_subscribed(c, dev, &t);
}

/* One acknowledged event, the map whose header was just read from r: a
 * msg or group event is its device's delivered receipt for (conv, seq),
 * a batch (only at the top: depth 0) each msg or group event in its evs.
 * False: malformed (the rest is not read). *batch: it was a batch. */
static bool acked_event(core *c, device *dev, cbr *r, const cbr_item *map, int depth, bool *batch)
{
	cbr_item key, val;
	const char *conv = NULL;
	size_t convlen = 0;
	uint64_t seq = 0;
	enum { OTHER, COUNTED, BATCH } kind = OTHER;
	uint64_t i = 0;
	while (cbr_map_next(r, map, &i, &key)) {
		if (cbr_next(r, &val))
			return false;
		if (cbr_eq(&key, "k")) {
			if (val.type != CBR_TEXT)
				return true;
			if (cbr_eq(&val, "msg") || cbr_eq(&val, "group"))
				kind = COUNTED;
			else if (depth == 0 && cbr_eq(&val, "batch"))
				kind = BATCH, *batch = true;
			else
				return true; /* nothing else is acknowledged by a receipt */
		} else if (kind == BATCH && cbr_eq(&key, "evs") && val.type == CBR_ARRAY) {
			/* sync.c writes k first: the elements, in order */
			uint64_t j = 0;
			while (cbr_array_next(r, &val, &j)) {
				cbr_item ev;
				if (cbr_next(r, &ev))
					return false;
				if (ev.type != CBR_MAP) {
					if (cbr_skip(r, &ev))
						return false;
				} else if (!acked_event(c, dev, r, &ev, depth + 1, batch)) {
					return false;
				}
			}
			if (r->err_msg)
				return false;
		} else if (cbr_eq(&key, "conv") && val.type == CBR_TEXT) {
			conv = (const char *)val.ptr;
			convlen = val.len;
		} else if (cbr_eq(&key, "seq") && val.type == CBR_UINT) {
			seq = val.u;
		} else if (cbr_skip(r, &val)) {
			return false;
		}
	}
	if (r->err_msg)
		return false;
	if (kind == COUNTED && conv && seq)
		receipts_acked(c, dev, conv, convlen, seq);
	return true;
}

void core_acked(core *c, void *conn, const char *username, const char *topic,
                const void *payload, size_t len)
{
	if (!c->bev.ack_delivers)
		return;
	device *dev = inbox_device(c, conn, username, topic);
	if (!dev)
		return;
	/* Our own event: {k, conv, seq, …}; only msg and group events are
	 * acknowledged by a delivered receipt, and those in a batch. */
	cbr r;
	cbr_item map;
	if (cbr_map_open(&r, payload, len, &map, NULL))
		return;
	bool batch = false;
	acked_event(c, dev, &r, &map, 0, &batch);
	/* A batch's PUBACK: its deliveries are applied now, as one receipt
	 * (the batch was the gathering), rather than in runs that span two
	 * batches: each loop pass of the broker then does one batch's work. */
	if (batch)
		receipts_flush_dev(c, dev);
}
