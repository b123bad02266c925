/* sync.c — replaying a device's offline queue (chat/sync).
 *
 * The store queue is the source of truth; the broker's own per-client queue
 * is small (max_queued_messages, default 1000, plus max_inflight_messages)
 * and drops silently when full. So a replay never dumps the backlog: it
 * keeps at most plugin_opt_replay_window messages in flight, refills as the
 * device's delivered receipts come in, and reads the queue in slices of
 * plugin_opt_replay_slice entries per callback or tick, so one device with
 * 100k queued messages never stalls the broker for everyone else.
 *
 * While a device replays, everything new for it is queued behind its
 * backlog (dev_live() is false), so it sees seq 3 before seq 105; the
 * replay switches the device to live delivery when it reaches the end and
 * sends {"k":"sync","done":true}. Queued events (receipts) leave the queue
 * once replayed; messages and group events stay until the device's
 * delivered receipt.
 */
#include "core_internal.h"
#include "err.h"

#include <string.h>

#define SLICE_MAX 4096

typedef struct pump_ctx {
	core *c;
	device *dev;
	uint64_t now;
	uint64_t msgs;               /* messages published */
	size_t nev;
	uint64_t events[SLICE_MAX];  /* qseqs of events published */
} pump_ctx;

static bool own_copy(const device *dev, const char *from)
{
	size_t ul = chat_addr_user_len(from);
	return ul == strlen(dev->user->name) && memcmp(from, dev->user->name, ul) == 0;
}

static int on_entry(void *arg, const store_qentry *e, const store_msg *m)
{
	pump_ctx *p = arg;
	core *c = p->c;
	if (e->kind == STORE_Q_EVENT) {
		ev_publish_raw(c, p->dev, e->event, e->event_len);
		p->events[p->nev++] = e->qseq;
		return 0;
	}
	if (!m || m->expires <= p->now)
		return 0; /* expired: never delivered late; the sweep removes it */
	if (m->kind == STORE_KIND_GROUP) {
		ev_group(&c->w, m, e->seq);
		ev_publish(c, p->dev, &c->w);
		p->msgs++; /* acknowledged by a delivered receipt, like a message */
		return 0;
	}
	const uint8_t *body;
	size_t blen;
	if (!ev_body_for(m, p->dev->addr, &body, &blen)) {
		core_log(c, CORE_LOG_WARNING, "queued message %s #%llu has no body for %s", e->conv,
		         (unsigned long long)e->seq, p->dev->addr);
		return 0;
	}
	ev_msg(&c->w, m, e->seq, body, blen, own_copy(p->dev, m->from));
	ev_publish(c, p->dev, &c->w);
	p->msgs++;
	return 0;
}

static void send_done(core *c, device *dev)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "k"); cbw_text(w, "sync");
	cbw_text(w, "done"); cbw_bool(w, true);
	ev_publish(c, dev, w);
}

static int stop_at_first(void *arg, const store_qentry *e, const store_msg *m)
{
	(void)arg; (void)e; (void)m;
	return 1;
}

/* Whether anything is queued after the replay's cursor. */
static bool more_queued(core *c, device *dev)
{
	size_t visited = 0;
	uint64_t last = 0;
	return store_queue_read(c->st, dev->addr, dev->rp.cursor, 1, stop_at_first, NULL, &visited,
	                        &last) != CHAT_OK;
}

/* Sends up to `budget` queue entries; returns how many it read. */
static size_t pump(core *c, device *dev, size_t budget)
{
	static pump_ctx p; /* 32 KiB of qseqs: kept off the broker's stack */
	size_t done = 0;
	while (dev->rp.active && done < budget) {
		if (dev->rp.outstanding >= c->cfg.replay_window) {
			/* A full window waits for delivered receipts — unless the queue
			 * has already ended, and then the device hears it now. */
			if (!more_queued(c, dev)) {
				send_done(c, dev);
				sync_stop(c, dev);
			}
			break;
		}
		uint64_t room = c->cfg.replay_window - dev->rp.outstanding;
		size_t max = budget - done;
		if (max > room)
			max = (size_t)room;
		if (max > c->cfg.replay_slice)
			max = c->cfg.replay_slice;
		if (max > SLICE_MAX)
			max = SLICE_MAX;
		p.c = c;
		p.dev = dev;
		p.now = c->io.now_ms(c->io.ctx);
		p.msgs = 0;
		p.nev = 0;
		size_t visited = 0;
		uint64_t last = dev->rp.cursor;
		int rc = store_queue_read(c->st, dev->addr, dev->rp.cursor, max, on_entry, &p, &visited,
		                          &last);
		if (rc == CHAT_OK && p.nev)
			rc = store_queue_remove(c->st, dev->addr, p.events, p.nev);
		if (rc) {
			core_log(c, CORE_LOG_ERR, "replay for %s failed: %s", dev->addr, store_errmsg(c->st));
			ev_error(c, dev, "store", "the queue could not be read; sync again", NULL, 0);
			sync_stop(c, dev);
			break;
		}
		dev->rp.cursor = last;
		dev->rp.outstanding += p.msgs;
		c->n.replayed += visited;
		done += visited;
		if (visited < max) { /* the end of the queue */
			send_done(c, dev);
			sync_stop(c, dev);
		}
	}
	return done;
}

void sync_start(core *c, device *dev)
{
	c->n.syncs++;
	if (!dev->rp.active) {
		dev->rp.active = true;
		dev->rp.prev = NULL;
		dev->rp.next = c->replays;
		if (c->replays)
			c->replays->rp.prev = dev;
		c->replays = dev;
	}
	/* A new sync starts over: the device asks for everything still queued. */
	dev->rp.cursor = 0;
	dev->rp.outstanding = 0;
	pump(c, dev, c->cfg.replay_slice);
}

void sync_stop(core *c, device *dev)
{
	if (!dev->rp.active)
		return;
	if (dev->rp.prev)
		dev->rp.prev->rp.next = dev->rp.next;
	else
		c->replays = dev->rp.next;
	if (dev->rp.next)
		dev->rp.next->rp.prev = dev->rp.prev;
	memset(&dev->rp, 0, sizeof(dev->rp));
}

void sync_acked(core *c, device *dev, uint64_t n)
{
	if (!dev->rp.active)
		return;
	dev->rp.outstanding -= n < dev->rp.outstanding ? n : dev->rp.outstanding;
	pump(c, dev, c->cfg.replay_slice);
}

struct count_ctx {
	uint64_t cursor, n;
};

static int count_sent(void *arg, const store_qentry *e, const store_msg *m)
{
	(void)m;
	struct count_ctx *k = arg;
	if (e->qseq > k->cursor)
		return 1;
	k->n++;
	return 0;
}

void sync_recount(core *c)
{
	/* Expired messages leave the queue without a receipt: count what each
	 * replay still has in flight, or its window would never refill. */
	for (device *d = c->replays, *next; d; d = next) {
		next = d->rp.next;
		if (d->rp.outstanding == 0)
			continue;
		struct count_ctx k = { .cursor = d->rp.cursor };
		size_t visited = 0;
		uint64_t last = 0;
		int rc = store_queue_read(c->st, d->addr, 0, (size_t)d->rp.outstanding + 1, count_sent, &k,
		                          &visited, &last);
		if (rc != CHAT_OK && rc != 1)
			continue;
		if (k.n < d->rp.outstanding) {
			d->rp.outstanding = k.n;
			pump(c, d, c->cfg.replay_slice);
		}
	}
}

void sync_tick(core *c)
{
	/* One slice per replaying device per tick, so many replays share the
	 * broker fairly; pump() may unlink the device it works on. */
	for (device *d = c->replays, *next; d; d = next) {
		next = d->rp.next;
		pump(c, d, c->cfg.replay_slice);
	}
}
