// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* sync.c — draining a device's backlog: chat/sync replays and spills.
 *
 * The store queue is the source of truth; mosquitto's own per-client queue
 * is small and drops silently when full, so nothing is ever dumped into
 * it: the pump publishes only as the device's flow window (flow.c) has
 * room, and reads the queue in slices of plugin_opt_replay_slice entries
 * per callback or tick, so one device with 100k queued messages never
 * stalls the broker for everyone else.
 *
 * A backlog starts two ways. chat/sync asks for everything still queued,
 * from the start, and ends with {"k":"sync","done":true}. A spill starts
 * when a live device's window is full: the event that did not fit goes
 * into the queue, and the pump drains from there, in order, without a
 * `done` (the device did not ask for anything). Either way, while a
 * backlog exists everything new for the device is queued behind it
 * (dev_live() is false), so it sees seq 3 before seq 105; the device goes
 * back to live delivery when the pump reaches the end of its queue.
 * Queued events (receipts, replies) leave the queue once published;
 * messages and group events stay until the device's delivered receipt (or,
 * on a broker with broker-patches/, its PUBACK).
 *
 * On such a broker a replay also starts by itself, once per connection,
 * when the device subscribes to its inbox or resumes a session that has
 * that subscription (broker_events.c); a chat/sync that arrives during it joins it
 * rather than starting over.
 *
 * Batches. A device that declared the `batch` capability gets its replay
 * (and spill drains) as {"k":"batch","evs":[...]} publishes of up to
 * plugin_opt_replay_batch queued events each, every element exactly the
 * event a v1 device would get, in queue order: one PUBLISH and one PUBACK
 * carry what took 64 of each. The window still counts events, not
 * packets (each element counts as it would alone), and on a broker that
 * reports PUBACKs the batch's PUBACK frees all its places and delivers
 * every msg and group event in it (flow.c, broker_events.c). The elements
 * are encoded straight into one reused buffer (c->deliv.batch) after room
 * for the header, which is written in front of them once their count is
 * known: no copy, no allocation per event. A batch is published at the
 * end of every slice (before its events leave the store), when it is
 * full, or before an element would take it past plugin_opt_max_body
 * bytes; a batch of one goes out unwrapped, as the v1 event.
 */
#include "core_internal.h"
#include "err.h"

#include <string.h>

#define SLICE_MAX 4096


/* Room before a batch's elements for its header: {"k":"batch","evs":
 * [n} is at most 16 bytes for n <= 65535. */
#define BATCH_HEAD 16

typedef struct pump_ctx {
	core *c;
	device *dev;
	uint64_t now;
	uint32_t batch;              /* events per publish: 1, or the device batches */
	size_t nbatch;               /* elements in c->deliv.batch */
	size_t max;                  /* entries this slice takes ... */
	size_t taken;                /* ... and has taken so far */
	uint64_t peek;               /* the qseq of the entry after them, 0: none */
	size_t nev;
	uint64_t events[SLICE_MAX];  /* qseqs of events published */
} pump_ctx;

static bool own_copy(const device *dev, const char *from)
{
	size_t ul = chat_addr_user_len(from);
	return ul == strlen(dev->user->name) && memcmp(from, dev->user->name, ul) == 0;
}

/* Whether dev gets its replay in batches: it said it understands them
 * and batches of more than one are configured. */
static uint32_t batch_size(const core *c, const device *dev)
{
	if (c->cfg.replay_batch <= 1 || !device_has_cap(dev, CAP_BATCH))
		return 1;
	return c->cfg.replay_batch < SLICE_MAX ? c->cfg.replay_batch : SLICE_MAX;
}

/* Publishes the batch's elements that end at byte `upto` of the buffer:
 * one alone as itself, more behind their header. */
static void batch_publish(pump_ctx *p, size_t n, size_t upto)
{
	core *c = p->c;
	uint8_t *b = c->deliv.batch.buf;
	if (n == 1) {
		ev_publish_raw(c, p->dev, b + BATCH_HEAD, upto - BATCH_HEAD);
		return;
	}
	uint8_t h[BATCH_HEAD];
	size_t hl = 0;
	static const uint8_t head[] = { 0xa2, 0x61, 'k', 0x65, 'b', 'a', 't', 'c', 'h',
	                                0x63, 'e', 'v', 's' };
	memcpy(h, head, sizeof head);
	hl = sizeof head;
	if (n < 24) {
		h[hl++] = (uint8_t)(0x80 | n);
	} else if (n < 256) {
		h[hl++] = 0x98;
		h[hl++] = (uint8_t)n;
	} else {
		assert(n <= 0xffff);
		h[hl++] = 0x99;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	}
	memcpy(b + BATCH_HEAD - hl, h, hl);
	ev_publish_raw(c, p->dev, b + BATCH_HEAD - hl, upto - (BATCH_HEAD - hl));
	c->n.replay_batches++;
}

static void batch_reset(core *c)
{
	cbw *w = &c->deliv.batch;
	static const uint8_t room[BATCH_HEAD];
	cbw_reset(w);
	cbw_raw(w, room, sizeof room);
}

/* Publishes what the batch holds. */
static void batch_flush(pump_ctx *p)
{
	core *c = p->c;
	if (p->nbatch) {
		if (cbw_status(&c->deliv.batch) == 0)
			batch_publish(p, p->nbatch, c->deliv.batch.len);
		else /* out of memory: they stay queued for the next sync */
			core_log(c, CORE_LOG_ERR, "a replay batch of %zu events for %s was dropped: "
			         "out of memory", p->nbatch, p->dev->addr);
	}
	p->nbatch = 0;
	batch_reset(c);
}

/* The element that starts at byte `start` of the batch was appended:
 * publishes the batch before it if it took the batch past max_body bytes,
 * and the batch with it once it is full. */
static void batch_added(pump_ctx *p, size_t start)
{
	core *c = p->c;
	cbw *w = &c->deliv.batch;
	if (cbw_status(w) != 0) {
		batch_flush(p); /* logs, drops */
		return;
	}
	p->nbatch++;
	if (p->nbatch > 1 && w->len - BATCH_HEAD + 3 + 13 > c->cfg.max_body) {
		batch_publish(p, p->nbatch - 1, start);
		size_t elen = w->len - start;
		memmove(w->buf + BATCH_HEAD, w->buf + start, elen);
		w->len = BATCH_HEAD + elen;
		p->nbatch = 1;
	}
	if (p->nbatch == p->batch)
		batch_flush(p);
}

static int on_entry(void *arg, const store_qentry *e, const store_msg *m)
{
	pump_ctx *p = arg;
	core *c = p->c;
	if (p->taken == p->max) { /* the entry after a full slice: it stays for the next one */
		p->peek = e->qseq;
		return CHAT_STOP;
	}
	p->taken++;
	bool batching = p->batch > 1;
	cbw *bw = &c->deliv.batch;
	size_t start = bw->len;
	if (e->kind == STORE_Q_EVENT) {
		if (batching) {
			cbw_raw(bw, e->event, e->event_len);
			batch_added(p, start);
		} else {
			ev_publish_raw(c, p->dev, e->event, e->event_len);
		}
		flow_count_event(c, p->dev);
		p->events[p->nev++] = e->qseq;
		return CHAT_OK;
	}
	if (!m || m->expires <= p->now)
		return CHAT_OK; /* expired: never delivered late; the sweep removes it */
	if (m->kind == STORE_KIND_GROUP) {
		if (batching) {
			if (ev_group_put(bw, m, e->seq)) {
				batch_added(p, start);
				flow_count_entry(c, p->dev, e->qseq);
			}
			return CHAT_OK;
		}
		ev_group(&c->w, m, e->seq);
		if (cbw_status(&c->w) == 0) {
			ev_publish_raw(c, p->dev, c->w.buf, c->w.len);
			flow_count_entry(c, p->dev, e->qseq); /* acknowledged like a message */
		}
		return CHAT_OK;
	}
	const uint8_t *body;
	size_t blen;
	if (!ev_body_for(m, p->dev->addr, &body, &blen)) {
		core_log(c, CORE_LOG_WARNING, "queued message %s #%llu has no body for %s", e->conv,
		         (unsigned long long)e->seq, p->dev->addr);
		return CHAT_OK;
	}
	if (batching) {
		ev_msg_put(bw, m, e->seq, body, blen, own_copy(p->dev, m->from));
		batch_added(p, start);
		flow_count_entry(c, p->dev, e->qseq);
		return CHAT_OK;
	}
	ev_msg(&c->w, m, e->seq, body, blen, own_copy(p->dev, m->from));
	if (cbw_status(&c->w) == 0) {
		ev_publish_raw(c, p->dev, c->w.buf, c->w.len);
		flow_count_entry(c, p->dev, e->qseq);
	}
	return CHAT_OK;
}

static void send_done(core *c, device *dev)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "k"); cbw_text(w, "sync");
	cbw_text(w, "done"); cbw_bool(w, true);
	ev_publish_raw(c, dev, w->buf, w->len);
	flow_count_event(c, dev);
}

/* The pump reached the end of the queue: a replay says so; live again. */
static void backlog_end(core *c, device *dev)
{
	if (dev->fc.sync)
		send_done(c, dev);
	sync_stop(c, dev);
}

static int stop_at_first(void *arg, const store_qentry *e, const store_msg *m)
{
	(void)arg; (void)e; (void)m;
	return CHAT_STOP;
}

/* Whether anything is queued after the replay's cursor. A queue that
 * cannot be read counts as going on: the backlog stays, and the pump's
 * next read reports the failure. */
static bool more_queued(core *c, device *dev)
{
	size_t visited = 0;
	uint64_t last = 0;
	store_queue_walk w = { .after = dev->fc.cursor, .max = 1, .cb = stop_at_first };
	int rc = store_queue_read(c->st, dev->addr, &w, &visited, &last);
	if (rc == CHAT_STOP)
		return true; /* stop_at_first saw an entry */
	return rc != CHAT_OK;
}

/* Sends up to `budget` queue entries; returns how many it read. Each
 * slice looks one entry past itself, so that a slice that fills the window
 * knows whether the queue goes on (fc.more) and a slice that takes the
 * queue's last entry ends the backlog at once. Without this, every tick of
 * a full window asked the store again (an iterator and a message read). */
static size_t pump(core *c, device *dev, size_t budget)
{
	static pump_ctx p; /* 32 KiB of qseqs: kept off the broker's stack */
	size_t done = 0;
	uint32_t batch = batch_size(c, dev);
	if (batch > 1) {
		/* whole batches: at least one per call, as many as the slice holds */
		if (budget < batch)
			budget = batch;
		budget -= budget % batch;
		batch_reset(c);
	}
	while (dev->fc.backlog && done < budget) {
		if (!flow_room(c, dev)) {
			/* A full window waits for room — unless the queue has already
			 * ended, and then the device hears it now. What the last slice
			 * saw holds until an expiry sweep removes entries (the
			 * device's own receipts only remove entries before the cursor,
			 * or free room). */
			if (dev->fc.more != c->expiry.epoch + 1 && !more_queued(c, dev))
				backlog_end(c, dev);
			break;
		}
		uint64_t used = (uint64_t)dev->fc.msgs + dev->fc.evs;
		uint64_t room = c->cfg.inflight_window - used;
		size_t max = budget - done;
		if (max > room)
			max = (size_t)room;
		if (max > c->cfg.replay_slice)
			max = c->cfg.replay_slice;
		if (max > SLICE_MAX)
			max = SLICE_MAX;
		if (batch > 1 && max < batch && room < batch && done > 0)
			break; /* a part batch now would leave room for less: wait for more */
		if (batch > 1 && max > batch)
			max -= max % batch;
		p.c = c;
		p.dev = dev;
		p.batch = batch;
		p.nbatch = 0;
		p.now = c->io.now_ms(c->io.ctx);
		p.max = max;
		p.taken = 0;
		p.peek = 0;
		p.nev = 0;
		size_t visited = 0;
		uint64_t last = dev->fc.cursor;
		store_queue_walk w = { .after = dev->fc.cursor, .max = max + 1, .cb = on_entry,
		                       .arg = &p };
		int rc = store_queue_read(c->st, dev->addr, &w, &visited, &last);
		if (batch > 1)
			batch_flush(&p); /* published before its events leave the queue */
		if (rc == CHAT_STOP) { /* the peeked entry is the next slice's first */
			rc = CHAT_OK;
			visited--;
			last = p.peek - 1;
		}
		if (rc == CHAT_OK && p.nev)
			rc = store_queue_drop_events(c->st, dev->addr, p.events, p.nev);
		if (rc) {
			core_log(c, CORE_LOG_ERR, "replay for %s failed: %s", dev->addr, store_errmsg(c->st));
			sync_stop(c, dev);
			refusal why;
			refusal_set(&why, REFUSE_STORE, "the queue could not be read; sync again");
			ev_error(c, dev, &why, NULL, 0);
			break;
		}
		dev->fc.cursor = last;
		dev->fc.more = p.peek ? c->expiry.epoch + 1 : 0;
		if (!dev->fc.sync && last > dev->fc.hi)
			dev->fc.hi = last; /* a drain: everything up to here was published */
		c->n.replayed += visited;
		done += visited;
		if (!p.peek && visited <= max) /* the end of the queue */
			backlog_end(c, dev);
	}
	flow_check(c, dev);
	return done;
}

static void link_backlog(core *c, device *dev)
{
	dev->fc.backlog = true;
	dev->fc.prev = NULL;
	dev->fc.next = c->deliv.backlogs;
	if (c->deliv.backlogs)
		c->deliv.backlogs->fc.prev = dev;
	c->deliv.backlogs = dev;
}

void backlog_start(core *c, device *dev, uint64_t after)
{
	if (dev->fc.backlog)
		return;
	link_backlog(c, dev);
	dev->fc.sync = false;
	dev->fc.cursor = after;
	dev->fc.more = 0;
	dev->fc.hi = after > dev->fc.hi ? after : dev->fc.hi;
	flow_check(c, dev);
}

/* A replay of everything still queued, from the start. */
static void replay(core *c, device *dev)
{
	receipts_flush_dev(c, dev); /* entries its PUBACKs delivered are not replayed */
	gather_flush_dev(c, dev);   /* what was due before the replay comes before it */
	if (!dev->fc.backlog) {
		/* Live until now: everything queued so far was published. */
		uint64_t last = dev->fc.hi;
		if (store_queue_last(c->st, dev->addr, &last) != CHAT_OK)
			core_log(c, CORE_LOG_ERR, "reading the queue of %s failed: %s", dev->addr,
			         store_errmsg(c->st));
		dev->fc.hi = last > dev->fc.hi ? last : dev->fc.hi;
		link_backlog(c, dev);
	}
	/* A new sync starts over: the device asks for everything still queued. */
	dev->fc.sync = true;
	dev->fc.cursor = 0;
	dev->fc.more = 0;
	pump(c, dev, c->cfg.replay_slice);
}

void sync_start(core *c, device *dev)
{
	c->n.syncs++;
	if (dev->fc.backlog && dev->fc.sync && dev->fc.automatic) {
		dev->fc.automatic = false; /* joins the replay under way */
		return;
	}
	replay(c, dev);
}

void sync_auto(core *c, device *dev)
{
	if (dev->fc.auto_done || (dev->fc.backlog && dev->fc.sync))
		return;
	dev->fc.auto_done = true;
	c->n.auto_syncs++;
	replay(c, dev);
	dev->fc.automatic = dev->fc.backlog && dev->fc.sync; /* false if it already ended */
}

void sync_stop(core *c, device *dev)
{
	if (!dev->fc.backlog)
		return;
	if (dev->fc.prev)
		dev->fc.prev->fc.next = dev->fc.next;
	else
		c->deliv.backlogs = dev->fc.next;
	if (dev->fc.next)
		dev->fc.next->fc.prev = dev->fc.prev;
	dev->fc.backlog = dev->fc.sync = dev->fc.automatic = false;
	dev->fc.more = 0;
	dev->fc.prev = dev->fc.next = NULL;
	dev->fc.cursor = 0;
	flow_check(c, dev);
}

void sync_pump(core *c, device *dev)
{
	pump(c, dev, c->cfg.replay_slice);
}

void sync_pump_n(core *c, device *dev, size_t n)
{
	pump(c, dev, n);
}

void sync_tick(core *c)
{
	/* One slice per device with a backlog per tick, so many share the
	 * broker fairly; pump() may unlink the device it works on. */
	for (device *d = c->deliv.backlogs, *next; d; d = next) {
		next = d->fc.next;
		pump(c, d, c->cfg.replay_slice);
	}
}
