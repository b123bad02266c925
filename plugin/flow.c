// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* flow.c — per-device flow control of everything the plugin publishes.
 *
 * mosquitto holds at most max_inflight_messages (20) + max_queued_messages
 * (1000) messages per client and silently drops what the plugin publishes
 * beyond that (shared/MOSQUITTO-2.0-NOTES.md). A device that sends to a
 * large group gets one receipt event per member and message, far more
 * than fits. So every QoS 1 inbox event counts against one window per
 * device (plugin_opt_inflight_window): the plugin publishes live only while
 * the window has room; beyond it, the event waits in the device's store
 * queue, and the pump (sync.c) drains that backlog in order as room comes
 * back — the same machinery a chat/sync replay uses, so live delivery,
 * spill drains and replays share one window and one ordering rule.
 *
 * How the window empties. Stock mosquitto tells a plugin nothing about its
 * clients' PUBACKs, so:
 * - Messages and group events are acknowledged by the device's delivered
 *   (or read) receipts. They count as queue entries: `msgs` is the number
 *   of entries published on this connection that are still queued, and a
 *   receipt (store_ack) frees those it removes. The entries published on
 *   this connection are two ranges of the device's queue: up to `r` (what a
 *   chat/sync replay reached) and after `lo` (the queue's end when the
 *   device connected: live deliveries and drains; only up to `hi` while a
 *   backlog exists). A re-sync re-publishes entries already counted and
 *   does not count them twice.
 * - Other events (sent, receipt, group replies, ctl, error, sync done) are
 *   never acknowledged in the contract: `evs` drains by an estimate,
 *   plugin_opt_inflight_drain events per second per device, applied lazily
 *   whenever room is asked for (and by the tick for devices with a
 *   backlog).
 * - The expiry sweep removes entries without saying whose windows they
 *   were in: after a sweep that removed any, a device with messages in
 *   flight recounts them from its queue (one bounded read) the next time it
 *   asks for room.
 * With a broker that reports its clients' PUBACKs (broker-patches/, glue.c
 * calling core_on_delivered_ack), the window simply counts publishes and
 * each reported acknowledgement frees one: exact, no estimate. The first
 * report switches the core to that mode for good.
 *
 * The estimate is the weak part: a device slower than the drain rate can
 * fill mosquitto's queue past the window. Deployments on stock mosquitto
 * keep max_queued_messages well above the window (README, docs/PROTOCOL.md
 * "Flow control"); chat/sync recovers any message lost that way.
 */
#include "core_internal.h"
#include "err.h"

#include <string.h>

static uint64_t in_flight(const device *dev)
{
	return (uint64_t)dev->fc.msgs + dev->fc.evs;
}

/* The estimate: evs fall by inflight_drain per second since drain_ms. */
static void drain(core *c, device *dev, uint64_t now)
{
	flow *f = &dev->fc;
	if (f->evs == 0 || now <= f->drain_ms) {
		f->drain_ms = f->evs ? f->drain_ms : now;
		return;
	}
	uint64_t rate = c->cfg.inflight_drain;
	uint64_t n = (now - f->drain_ms) * rate / 1000;
	if (n == 0)
		return;
	if (n >= f->evs) {
		f->evs = 0;
		f->drain_ms = now;
	} else {
		f->evs -= (uint32_t)n;
		f->drain_ms += n * 1000 / rate;
	}
}

struct recount {
	const device *dev;
	uint64_t upto; /* the range's last qseq */
	uint64_t n;
};

static int count_entry(void *arg, const store_qentry *e, const store_msg *m)
{
	(void)m;
	struct recount *k = arg;
	if (e->qseq > k->upto)
		return CHAT_STOP;
	k->n += e->kind == STORE_Q_MSG;
	return CHAT_OK;
}

/* Message entries still queued in (after, upto] into *n; reads at most
 * `max`. False: the queue could not be read. */
static bool count_range(core *c, const device *dev, uint64_t after, uint64_t upto, size_t max,
                        uint64_t *n)
{
	struct recount k = { dev, upto, 0 };
	size_t visited = 0;
	uint64_t last = 0;
	*n = 0;
	if (after >= upto)
		return true;
	store_queue_walk w = { .after = after, .max = max, .cb = count_entry, .arg = &k };
	int rc = store_queue_read(c->st, dev->addr, &w, &visited, &last);
	*n = k.n;
	return rc == CHAT_OK || rc == CHAT_STOP; /* STOP: the range ended before the queue */
}

/* After an expiry sweep: msgs becomes what is really still queued. */
static void refit(core *c, device *dev)
{
	flow *f = &dev->fc;
	f->epoch = c->expiry.epoch;
	if (f->msgs == 0)
		return;
	size_t max = (size_t)f->msgs + 64; /* the counted entries, and a few events among them */
	uint64_t from = f->lo > f->r ? f->lo : f->r, n, m;
	if (!count_range(c, dev, 0, f->r, max, &n) ||
	    !count_range(c, dev, from, f->backlog ? f->hi : UINT64_MAX, max, &m))
		return; /* unreadable: keep the count (the safe side) */
	if (n + m < f->msgs)
		f->msgs = (uint32_t)(n + m);
}

bool flow_room(core *c, device *dev)
{
	if (!c->deliv.acks_exact) {
		drain(c, dev, c->io.now_ms(c->io.ctx));
		if (dev->fc.epoch != c->expiry.epoch)
			refit(c, dev);
	}
	flow_check(c, dev);
	return in_flight(dev) < c->cfg.inflight_window;
}

void flow_count_event(core *c, device *dev)
{
	if (dev->fc.evs == 0)
		dev->fc.drain_ms = c->io.now_ms(c->io.ctx);
	dev->fc.evs++;
}

bool flow_counted(const device *dev, uint64_t qseq)
{
	const flow *f = &dev->fc;
	if (qseq == 0)
		return false;
	if (qseq <= f->r)
		return true;
	if (qseq <= f->lo)
		return false;
	return !f->backlog || qseq <= f->hi;
}

void flow_count_entry(core *c, device *dev, uint64_t qseq)
{
	flow *f = &dev->fc;
	if (c->deliv.acks_exact) {
		flow_count_event(c, dev); /* every publish waits for its PUBACK */
		return;
	}
	if (qseq == 0) { /* live: the newest entry, after lo */
		f->msgs++;
		return;
	}
	if (flow_counted(dev, qseq))
		return;
	f->msgs++;
	if (f->sync)
		f->r = qseq > f->r ? qseq : f->r;
	else
		f->hi = qseq > f->hi ? qseq : f->hi;
	flow_check(c, dev);
}

void flow_acked(core *c, device *dev, uint64_t n)
{
	if (c->deliv.acks_exact || n == 0)
		return;
	dev->fc.msgs -= n < dev->fc.msgs ? (uint32_t)n : dev->fc.msgs;
	if (dev->fc.backlog)
		sync_pump(c, dev);
	flow_check(c, dev);
}

void flow_connect(core *c, device *dev)
{
	uint64_t last = 0;
	if (store_queue_last(c->st, dev->addr, &last) != CHAT_OK)
		core_log(c, CORE_LOG_ERR, "reading the queue of %s failed: %s", dev->addr,
		         store_errmsg(c->st));
	sync_stop(c, dev);
	memset(&dev->fc, 0, sizeof(dev->fc));
	dev->fc.lo = dev->fc.hi = last;
	dev->fc.epoch = c->expiry.epoch;
	flow_check(c, dev);
}

/* The first PUBACK report: what the estimates counted now waits for acks. */
static void switch_to_exact(core *c)
{
	size_t i = 0;
	void *v;
	while (hmap_iter(&c->dir.devices, &i, &v)) {
		device *d = v;
		d->fc.evs += d->fc.msgs;
		d->fc.msgs = 0;
	}
	c->deliv.acks_exact = true;
	core_log(c, CORE_LOG_NOTICE, "the broker reports PUBACKs: flow windows are exact");
}

/* How many events the acknowledged publish carried: the length of a
 * batch's evs (sync.c writes {"k":"batch","evs":[...]}), else one. */
static uint32_t events_in(const void *payload, size_t len)
{
	cbr r;
	cbr_item map, key, val;
	if (!payload || cbr_map_open(&r, payload, len, &map, NULL) || map.indef || map.u != 2)
		return 1;
	bool batch = false;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val))
			return 1;
		if (cbr_eq(&key, "k")) {
			batch = val.type == CBR_TEXT && cbr_eq(&val, "batch");
			if (!batch)
				return 1;
		} else if (batch && cbr_eq(&key, "evs")) {
			return val.type == CBR_ARRAY && !val.indef && val.u > 0 && val.u <= UINT32_MAX
			       ? (uint32_t)val.u : 1;
		} else if (cbr_skip(&r, &val)) {
			return 1;
		}
	}
	return 1;
}

void core_on_delivered_ack(core *c, const char *clientid, const char *name)
{
	core_on_delivered_ack_payload(c, clientid, name, NULL, 0);
}

void core_on_delivered_ack_payload(core *c, const char *clientid, const char *name,
                                   const void *payload, size_t len)
{
	if (!clientid || !name || !strchr(clientid, '/'))
		return;
	device *dev = dir_device(&c->dir, clientid, strlen(clientid));
	topic t;
	topic_parse(c, name, &t);
	/* Only the plugin's inbox publishes are counted (not presence or keys). */
	if (!dev || !dev->conn || t.kind != T_INBOX || t.alen + 1 + t.blen != strlen(clientid) ||
	    memcmp(t.a, clientid, t.alen) != 0 || memcmp(t.b, clientid + t.alen + 1, t.blen) != 0)
		return;
	if (!c->deliv.acks_exact)
		switch_to_exact(c);
	/* A batch took one place per event: its PUBACK frees them all. */
	uint32_t n = events_in(payload, len);
	dev->fc.evs -= n < dev->fc.evs ? n : dev->fc.evs;
	/* Refill in batches, not one pump per acknowledgement. A batch's
	 * PUBACK is such a batch: the next batch goes out at once, one per
	 * PUBACK, so that no loop pass of the broker takes more than one
	 * batch's work and other clients' packets wait less behind it. */
	if (!dev->fc.backlog)
		return;
	if (n > 1)
		sync_pump_n(c, dev, n);
	else if (in_flight(dev) <= c->cfg.inflight_window / 2)
		sync_pump(c, dev);
}
