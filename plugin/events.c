// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* events.c — publishing inbox events to devices (contract §4).
 *
 * Events go to one client id on its inbox topic at QoS 1, through the
 * broker's plugin publish, which reaches a connected client whether or not
 * it has subscribed. Every QoS 1 event passes the device's flow window
 * (flow.c): live only while the window has room and the device has no
 * backlog; otherwise it goes into the device's store queue behind what is
 * waiting there, and the pump (sync.c) delivers it in order. Offline
 * devices get queued what they must not miss (receipts); replies to a
 * request are for the connection that asked.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

/* P/inbox/U/D; copied, not formatted: every event to every device builds
 * one (a 1000-member group send, a thousand; snprintf cost ~900
 * instructions each, docs/BENCHMARKS.md). The prefix and the address are
 * bounded, so CORE_INBOX_MAX holds both. */
void ev_inbox_topic(const core *c, const device *to, char out[CORE_INBOX_MAX])
{
	static const char mid[] = "/inbox/";
	size_t pl = c->prefix_len, al = strnlen(to->addr, CHAT_ADDR_MAX);
	if (pl + sizeof(mid) - 1 + al >= CORE_INBOX_MAX) { /* cannot happen: as snprintf did */
		snprintf(out, CORE_INBOX_MAX, "%s/inbox/%s", c->prefix, to->addr);
		return;
	}
	memcpy(out, c->prefix, pl);
	memcpy(out + pl, mid, sizeof(mid) - 1);
	memcpy(out + pl + sizeof(mid) - 1, to->addr, al);
	out[pl + sizeof(mid) - 1 + al] = '\0';
}

static void publish_inbox(core *c, const device *to, const uint8_t *ev, size_t len, int qos)
{
	if (!to->conn)
		return;
	char topic[CORE_INBOX_MAX];
	ev_inbox_topic(c, to, topic);
	if (c->io.publish(c->io.ctx, to->addr, topic, ev, len, qos, false) == 0)
		c->n.events_out++;
}

void ev_publish_raw(core *c, const device *to, const uint8_t *ev, size_t len)
{
	publish_inbox(c, to, ev, len, 1);
}

void ev_publish_qos0(core *c, const device *to, const cbw *w)
{
	if (cbw_status(w) == 0)
		publish_inbox(c, to, w->buf, w->len, 0);
}

/* Live now, within the window: publishes and counts. What the device has
 * gathered goes first (gather.c), live or into its queue. */
static bool try_live(core *c, device *to, const uint8_t *ev, size_t len)
{
	gather_flush_dev(c, to);
	if (!dev_live(to) || !flow_room(c, to))
		return false;
	publish_inbox(c, to, ev, len, 1);
	flow_count_event(c, to);
	return true;
}

/* Queues an event for n devices that cannot take it now. A connected
 * device without a backlog starts one first: its backlog begins with this
 * event, everything queued before it was published already. */
static bool queue_for(core *c, device *const *to, size_t n, const uint8_t *ev, size_t len)
{
	const char *addrs[CORE_MAX_DEVICES];
	for (size_t i = 0; i < n; i++) {
		addrs[i] = to[i]->addr;
		c->n.spilled += to[i]->conn != NULL; /* connected, yet not live: spilled */
		if (!dev_live(to[i]))
			continue;
		uint64_t last = to[i]->fc.lo;
		if (store_queue_last(c->st, to[i]->addr, &last) != CHAT_OK)
			core_log(c, CORE_LOG_ERR, "reading the queue of %s failed: %s", to[i]->addr,
			         store_errmsg(c->st));
		backlog_start(c, to[i], last);
	}
	if (store_queue_event(c->st, addrs, n, ev, len) == CHAT_OK)
		return true;
	core_log(c, CORE_LOG_ERR, "queueing an event for %s failed: %s", to[0]->addr, store_errmsg(c->st));
	return false;
}

void ev_publish(core *c, device *to, const cbw *w)
{
	if (cbw_status(w) == 0 && to->conn && !try_live(c, to, w->buf, w->len))
		queue_for(c, &to, 1, w->buf, w->len);
}

void ev_publish_entry(core *c, device *to, const cbw *w)
{
	/* What it gathered went out before the entry was queued (send.c,
	 * groups.c call gather_flush_dev first): entries after it in the queue
	 * are never taken for published by a spill it starts. */
	assert(!to->gslot);
	if (cbw_status(w) != 0 || !dev_live(to))
		return; /* offline or behind a backlog: the queue has it */
	if (flow_room(c, to)) {
		publish_inbox(c, to, w->buf, w->len, 1);
		flow_count_entry(c, to, 0);
		return;
	}
	/* The window is full: the entry just queued (the queue's last) starts
	 * the device's backlog. */
	uint64_t last = 0;
	if (store_queue_last(c->st, to->addr, &last) != CHAT_OK || last == 0) {
		core_log(c, CORE_LOG_ERR, "reading the queue of %s failed: %s", to->addr,
		         store_errmsg(c->st));
		last = to->fc.lo + 1; /* drain all this connection got: duplicates, never a gap */
	}
	backlog_start(c, to, last - 1);
	c->n.spilled++;
}

void ev_deliver_user(core *c, const user *u, const cbw *w)
{
	ev_deliver_devs(c, u->dev, u->ndev, w);
}

void ev_deliver_devs(core *c, device *const *to, size_t nto, const cbw *w)
{
	device *later[CORE_MAX_DEVICES];
	size_t n = 0;
	if (cbw_status(w) != 0)
		return;
	assert(nto <= CORE_MAX_DEVICES);
	for (size_t i = 0; i < nto; i++)
		if (!try_live(c, to[i], w->buf, w->len))
			later[n++] = to[i];
	if (n && queue_for(c, later, n, w->buf, w->len)) {
		c->n.receipts_queued += n;
		for (size_t i = 0; i < n; i++)
			push_queued(c, later[i]); /* wakes only those offline */
	}
}

void ev_cid(cbw *w, const store_cid *cid)
{
	if (cid->is_uint)
		cbw_uint(w, cid->u);
	else
		cbw_bytes(w, cid->bytes, cid->len);
}

void ev_error(core *c, device *to, const refusal *why, const uint8_t *cid_raw, size_t cid_len)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, cid_raw ? 4 : 3);
	cbw_text(w, "k");
	cbw_text(w, "error");
	cbw_text(w, "code");
	cbw_text(w, refusal_code_name(why->code));
	cbw_text(w, "msg");
	cbw_text(w, why->msg);
	if (cid_raw) {
		cbw_text(w, "cid");
		cbw_raw(w, cid_raw, cid_len);
	}
	c->n.errors_out++;
	stats_refused(c, why->code);
	ev_publish(c, to, w);
}

void ev_sent(cbw *w, const store_cid *cid, const char *conv, uint64_t seq, uint64_t ts)
{
	cbw_reset(w);
	cbw_map(w, 5);
	cbw_text(w, "k"); cbw_text(w, "sent");
	cbw_text(w, "cid"); ev_cid(w, cid);
	cbw_text(w, "conv"); cbw_text(w, conv);
	cbw_text(w, "seq"); cbw_uint(w, seq);
	cbw_text(w, "ts"); cbw_uint(w, ts);
}

void ev_msg_put(cbw *w, const store_msg *m, uint64_t seq, const uint8_t *body, size_t blen,
                bool with_cid)
{
	cbw_map(w, 6 + m->has_type + with_cid);
	cbw_text(w, "k"); cbw_text(w, "msg");
	cbw_text(w, "conv"); cbw_text(w, m->conv);
	cbw_text(w, "seq"); cbw_uint(w, seq);
	cbw_text(w, "from"); cbw_text(w, m->from);
	cbw_text(w, "ts"); cbw_uint(w, m->ts);
	cbw_text(w, "body"); cbw_bytes(w, body, blen);
	if (m->has_type) {
		cbw_text(w, "type"); cbw_uint(w, m->type);
	}
	if (with_cid) {
		cbw_text(w, "cid"); ev_cid(w, &m->cid);
	}
}

void ev_msg(cbw *w, const store_msg *m, uint64_t seq, const uint8_t *body, size_t blen,
            bool with_cid)
{
	cbw_reset(w);
	ev_msg_put(w, m, seq, body, blen, with_cid);
}

bool ev_body_for(const store_msg *m, const char *addr, const uint8_t **body, size_t *blen)
{
	if (m->body) {
		*body = m->body;
		*blen = m->body_len;
		return true;
	}
	cbr r;
	cbr_item map, key, val;
	if (cbr_map_open(&r, m->bodies, m->bodies_len, &map, NULL))
		return false;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val))
			return false;
		if (cbr_eq(&key, addr) && val.type == CBR_BYTES) {
			*body = val.ptr;
			*blen = val.len;
			return true;
		}
		if (cbr_skip(&r, &val))
			return false;
	}
	return false;
}

bool ev_group_put(cbw *w, const store_msg *m, uint64_t seq)
{
	/* The stored body is the map {gid, op, by, members, ?name}; the
	 * conversation's coordinates are added around its pairs. */
	cbr r;
	cbr_item map;
	cbr_init(&r, m->body, m->body_len);
	if (!m->body || cbr_next(&r, &map) || map.type != CBR_MAP || map.indef)
		return false; /* nothing is published from a malformed record */
	cbw_map(w, map.u + 4);
	cbw_text(w, "k"); cbw_text(w, "group");
	cbw_text(w, "conv"); cbw_text(w, m->conv);
	cbw_text(w, "seq"); cbw_uint(w, seq);
	cbw_text(w, "ts"); cbw_uint(w, m->ts);
	cbw_raw(w, r.p, (size_t)(r.end - r.p));
	return true;
}

void ev_group(cbw *w, const store_msg *m, uint64_t seq)
{
	cbw_reset(w);
	if (!ev_group_put(w, m, seq))
		w->oom = true; /* nothing is published from a malformed record */
}

enum core_verdict ev_refuse(core *c, device *to, enum refusal_code code, const char *fmt, ...)
{
	refusal why;
	va_list ap;
	va_start(ap, fmt);
	refusal_vset(&why, code, fmt, ap);
	va_end(ap);
	c->n.msgs_refused++;
	ev_error(c, to, &why, NULL, 0);
	return CORE_DENY;
}
