// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* gather.c — fewer events for v2 devices: gathered confirmations
 * (`sents`) and coalesced receipts (`rcpts`) (docs/PROTOCOL.md,
 * "Capabilities").
 *
 * A device that declared `sents` gets its `sent` confirmations not one by
 * one but gathered: {k:"sents", items:[{cid, conv, seq, ts, ?dl}]}. The
 * PUBACK of the send already said "stored" (✓), so holding the
 * confirmation for a few milliseconds delays nothing the user sees, and a
 * delivery that arrives meanwhile (on the patched broker: the peer's
 * PUBACK) joins the item as `dl` instead of becoming a `receipt` event of
 * its own — one event tells the sender "stored as seq, and delivered".
 * A device that declared `rcpts` gets the receipts for its messages
 * gathered per conversation and state: {k:"rcpts", conv, s, ts,
 * sets:[{seqs, by}]}, users with the same seqs sharing a set, so a group
 * message delivered to 200 members in one window is one event.
 *
 * The window is plugin_opt_delivered_gather_ms, as for receipts.c's runs
 * of PUBACKs, on the same tick (receipts_tick): a device's events go out
 * once the first of them is that old — each device by its own age, so
 * that a confirmation waits the whole window for its delivery (a PUBACK
 * comes about a millisecond after the message; the runs are applied
 * first in the tick, so their deliveries merge). A device's events also go out at once
 * when it has GATHER_SENTS_MAX confirmations or GATHER_RCPTS_MAX receipt
 * seqs, and before anything else reaches it: a live event (events.c's
 * try_live), an entry in its queue (send.c and groups.c flush the
 * recipients before they store), a replay, a change of its capabilities,
 * the end of its connection. So a device never sees an event before a
 * confirmation or receipt that was due earlier. Only a live device (one
 * with a connection and no backlog) gathers; for the others the v1 events
 * are queued as always (a replay brings receipts in their v1 form).
 *
 * Each device with something gathered has a slot (device.gslot), its
 * buffers kept for the next device when it empties.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The device's slot, taken if it had none; NULL: out of memory. */
static gslot *slot_of(core *c, device *dev)
{
	gather_state *g = &c->gath;
	if (dev->gslot)
		return &g->slot[dev->gslot - 1];
	if (g->used == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		gslot *s = realloc(g->slot, cap * sizeof(*s));
		if (!s)
			return NULL;
		memset(s + g->cap, 0, (cap - g->cap) * sizeof(*s));
		g->slot = s;
		g->cap = cap;
	}
	gslot *s = &g->slot[g->used++];
	s->dev = dev;
	s->since_ms = c->io.now_ms(c->io.ctx); /* its window starts */
	s->ns = s->ndl = s->nk = s->nr = 0;
	dev->gslot = (uint32_t)g->used;
	return s;
}

/* Gives the device's slot back (its contents are dropped). */
static void release(core *c, device *dev)
{
	gather_state *g = &c->gath;
	size_t i = dev->gslot - 1u, last = --g->used;
	dev->gslot = 0;
	if (i != last) {
		gslot tmp = g->slot[i];
		g->slot[i] = g->slot[last];
		g->slot[last] = tmp; /* its buffers, for reuse */
		g->slot[i].dev->gslot = (uint32_t)(i + 1);
	}
}

/* ---- sents ---- */

static void encode_sents(cbw *w, const gslot *s)
{
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "k"); cbw_text(w, "sents");
	cbw_text(w, "items");
	cbw_array(w, s->ns);
	for (size_t i = 0; i < s->ns; i++) {
		const gsent *e = &s->s[i];
		size_t ndl = 0;
		for (size_t j = 0; j < s->ndl; j++)
			ndl += s->dl[j].item == i;
		cbw_map(w, ndl ? 5 : 4);
		cbw_text(w, "cid"); ev_cid(w, &e->cid);
		cbw_text(w, "conv"); cbw_text(w, e->conv);
		cbw_text(w, "seq"); cbw_uint(w, e->seq);
		cbw_text(w, "ts"); cbw_uint(w, e->ts);
		if (ndl) {
			cbw_text(w, "dl");
			cbw_array(w, ndl);
			for (size_t j = 0; j < s->ndl; j++)
				if (s->dl[j].item == i)
					cbw_text(w, s->dl[j].user);
		}
	}
}

void gather_sent(core *c, device *to, const store_cid *cid, const char *conv, uint64_t seq,
                 uint64_t ts)
{
	gslot *s = NULL;
	if (device_has_cap(to, CAP_SENTS) && dev_live(to))
		s = slot_of(c, to);
	if (s && chat_grow(&s->s, &s->caps_, s->ns + 1, sizeof(*s->s), GATHER_SENTS_MAX))
		s = NULL;
	if (!s) { /* v1, or no memory to gather in: published as it is */
		ev_sent(&c->w, cid, conv, seq, ts);
		ev_publish(c, to, &c->w);
		return;
	}
	gsent *e = &s->s[s->ns++];
	e->cid = *cid;
	e->seq = seq;
	e->ts = ts;
	snprintf(e->conv, sizeof(e->conv), "%s", conv);
	if (s->ns >= GATHER_SENTS_MAX || c->cfg.delivered_gather_ms == 0)
		gather_flush_dev_slot(c, to);
}

/* ---- rcpts ---- */

static int cmp_rcpt(const void *a, const void *b)
{
	const grcpt *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	int d = strcmp(x->by, y->by);
	if (d)
		return d;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static const grcpt *sorted_r; /* cmp_run's records (qsort has no context) */

static int cmp_run(const void *a, const void *b)
{
	const urun *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	for (size_t i = 0; i < x->n && i < y->n; i++) {
		uint64_t p = sorted_r[x->at + i].seq, q = sorted_r[y->at + i].seq;
		if (p != q)
			return p < q ? -1 : 1;
	}
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return strcmp(sorted_r[x->at].by, sorted_r[y->at].by);
}

static bool same_seqs(const grcpt *r, const urun *x, const urun *y)
{
	if (x->key != y->key || x->n != y->n)
		return false;
	for (size_t i = 0; i < x->n; i++)
		if (r[x->at + i].seq != r[y->at + i].seq)
			return false;
	return true;
}

/* Publishes the device's gathered receipts: one rcpts event per key, in
 * the order the keys were first gathered. */
static void flush_rcpts(core *c, device *dev, gslot *s)
{
	cbw *w = &c->gath.w;
	urun *runs = c->gath.runs;
	qsort(s->r, s->nr, sizeof(*s->r), cmp_rcpt);
	/* Runs of (key, user), repeated seqs dropped. */
	size_t nrun = 0, out = 0;
	for (size_t i = 0; i < s->nr; i++) {
		if (out && s->r[out - 1].key == s->r[i].key && s->r[out - 1].seq == s->r[i].seq &&
		    strcmp(s->r[out - 1].by, s->r[i].by) == 0)
			continue;
		s->r[out] = s->r[i];
		bool same_user = out && s->r[out - 1].key == s->r[out].key &&
		                 strcmp(s->r[out - 1].by, s->r[out].by) == 0;
		if (!same_user) {
			if (chat_grow(&c->gath.runs, &c->gath.runcap, nrun + 1, sizeof(*c->gath.runs), 64)) {
				core_log(c, CORE_LOG_ERR, "out of memory: receipts for %s dropped", dev->addr);
				return;
			}
			runs = c->gath.runs;
			runs[nrun++] = (urun){ s->r[out].key, out, 0 };
		}
		runs[nrun - 1].n++;
		out++;
	}
	s->nr = out;
	sorted_r = s->r;
	qsort(runs, nrun, sizeof(*runs), cmp_run);
	/* Per key (first gathered first): its sets, users with the same seqs in one. */
	for (uint32_t k = 0; k < s->nk; k++) {
		size_t a = 0;
		while (a < nrun && runs[a].key != k)
			a++;
		size_t b = a, nsets = 0;
		while (b < nrun && runs[b].key == k) {
			nsets += b == a || !same_seqs(s->r, &runs[b - 1], &runs[b]);
			b++;
		}
		if (a == b)
			continue;
		const gkey *key = &s->k[k];
		cbw_reset(w);
		cbw_map(w, 5);
		cbw_text(w, "k"); cbw_text(w, "rcpts");
		cbw_text(w, "conv"); cbw_text(w, key->conv);
		cbw_text(w, "s"); cbw_text(w, key->state);
		cbw_text(w, "ts"); cbw_uint(w, key->ts);
		cbw_text(w, "sets");
		cbw_array(w, nsets);
		for (size_t i = a; i < b;) {
			size_t j = i + 1;
			while (j < b && same_seqs(s->r, &runs[i], &runs[j]))
				j++;
			cbw_map(w, 2);
			cbw_text(w, "seqs");
			cbw_array(w, runs[i].n);
			for (size_t q = 0; q < runs[i].n; q++)
				cbw_uint(w, s->r[runs[i].at + q].seq);
			cbw_text(w, "by");
			cbw_array(w, j - i);
			for (size_t u = i; u < j; u++)
				cbw_text(w, s->r[runs[u].at].by);
			i = j;
		}
		c->n.rcpts_out++;
		ev_publish(c, dev, w);
	}
}

/* Gathers seqs[i] (for which use[i]) of user `by`'s receipt into dev's
 * slot; false: no memory (the caller sends the v1 event). */
static bool gather_rcpts(core *c, device *dev, const char *conv, const char *state,
                         const uint64_t *seqs, const bool *use, size_t n, const char *by,
                         uint64_t ts)
{
	gslot *s = slot_of(c, dev);
	if (!s)
		return false;
	uint32_t k = 0;
	while (k < s->nk && !(strcmp(s->k[k].state, state) == 0 && strcmp(s->k[k].conv, conv) == 0))
		k++;
	if (k == s->nk) {
		if (chat_grow(&s->k, &s->capk, s->nk + 1, sizeof(*s->k), 8))
			goto nomem;
		snprintf(s->k[k].conv, sizeof(s->k[k].conv), "%s", conv);
		s->k[k].state = state; /* a static string (gather_receipt) */
		s->k[k].ts = ts;
		s->nk++;
	}
	s->k[k].ts = ts > s->k[k].ts ? ts : s->k[k].ts;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += use[i];
	if (chat_grow(&s->r, &s->capr, s->nr + m, sizeof(*s->r), 64))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		if (!use[i])
			continue;
		grcpt *r = &s->r[s->nr++];
		r->key = k;
		r->seq = seqs[i];
		snprintf(r->by, sizeof(r->by), "%s", by);
	}
	c->n.rcpts_items += m;
	if (s->nr >= GATHER_RCPTS_MAX || c->cfg.delivered_gather_ms == 0)
		gather_flush_dev_slot(c, dev);
	return true;
nomem:
	if (!s->ns && !s->nr)
		release(c, dev);
	return false;
}

/* ---- receipts to a sender's devices ---- */

static void v1_receipt(cbw *w, const char *conv, const char *state, const uint64_t *seqs,
                       const bool *use, size_t n, size_t count, const char *by, uint64_t ts)
{
	cbw_reset(w);
	cbw_map(w, 6);
	cbw_text(w, "k"); cbw_text(w, "receipt");
	cbw_text(w, "conv"); cbw_text(w, conv);
	cbw_text(w, "seqs");
	cbw_array(w, count);
	for (size_t i = 0; i < n; i++)
		if (!use || use[i])
			cbw_uint(w, seqs[i]);
	cbw_text(w, "s"); cbw_text(w, state);
	cbw_text(w, "by"); cbw_text(w, by);
	cbw_text(w, "ts"); cbw_uint(w, ts);
}

/* Merges by's delivery of seqs into dev's pending confirmations of them:
 * use[i] is cleared for each seq merged; returns how many stay. */
static size_t merge_dl(core *c, device *dev, const char *conv, const uint64_t *seqs, bool *use,
                       size_t n, const char *by)
{
	gslot *s = &c->gath.slot[dev->gslot - 1];
	size_t left = n;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < s->ns; j++) {
			if (s->s[j].seq != seqs[i] || strcmp(s->s[j].conv, conv) != 0)
				continue;
			if (chat_grow(&s->dl, &s->capdl, s->ndl + 1, sizeof(*s->dl), 16))
				break; /* no memory: a receipt event tells it */
			s->dl[s->ndl].item = (uint32_t)j;
			snprintf(s->dl[s->ndl].user, sizeof(s->dl[0].user), "%s", by);
			s->ndl++;
			c->n.sents_dl++;
			use[i] = false;
			left--;
			break;
		}
	}
	return left;
}

void gather_receipt(core *c, const user *to, const char *conv, const char *state,
                    const uint64_t *seqs, size_t n, const char *by, uint64_t ts)
{
	static bool use[RECEIPT_MAX_SEQS];
	device *v1[CORE_MAX_DEVICES];
	size_t nv1 = 0;
	bool delivered = strcmp(state, "delivered") == 0;
	assert(n <= RECEIPT_MAX_SEQS);
	for (size_t d = 0; d < to->ndev; d++) {
		device *dev = to->dev[d];
		bool merge = delivered && dev->gslot && c->gath.slot[dev->gslot - 1].ns;
		bool coalesce = device_has_cap(dev, CAP_RCPTS) && dev_live(dev);
		if (!merge && !coalesce) {
			v1[nv1++] = dev;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			use[i] = true;
		size_t left = merge ? merge_dl(c, dev, conv, seqs, use, n, by) : n;
		if (left == 0)
			continue;
		if (coalesce && gather_rcpts(c, dev, conv, state, seqs, use, n, by, ts))
			continue;
		if (left == n) {
			v1[nv1++] = dev;
			continue;
		}
		/* Some seqs merged into its confirmations: the rest, to it alone. */
		v1_receipt(&c->w2, conv, state, seqs, use, n, left, by, ts);
		c->n.receipts_out++;
		ev_publish(c, dev, &c->w2);
	}
	if (!nv1)
		return;
	v1_receipt(&c->w2, conv, state, seqs, NULL, n, n, by, ts);
	c->n.receipts_out++;
	ev_deliver_devs(c, v1, nv1, &c->w2);
}

/* ---- flushing ---- */

void gather_flush_dev_slot(core *c, device *dev)
{
	gslot *s = &c->gath.slot[dev->gslot - 1];
	/* The slot stays the device's while its events go out (nothing
	 * publishing to dev gathers: dev->gslot is 0 meanwhile, so the
	 * publishes do not come back here), then is given back. */
	uint32_t at = dev->gslot;
	dev->gslot = 0;
	if (s->ns) {
		encode_sents(&c->gath.w, s);
		c->n.sents_out++;
		c->n.sents_items += s->ns;
		ev_publish(c, dev, &c->gath.w);
	}
	if (s->nr)
		flush_rcpts(c, dev, &c->gath.slot[at - 1]);
	assert(!dev->gslot);
	dev->gslot = at;
	release(c, dev);
}

void gather_tick(core *c, uint64_t now_ms)
{
	/* Downwards: a flush moves the last slot (already seen) into its place. */
	for (size_t i = c->gath.used; i-- > 0;) {
		gslot *s = &c->gath.slot[i];
		if (now_ms - s->since_ms < c->cfg.delivered_gather_ms)
			continue;
		/* The PUBACKs gathered so far deliver first, whatever their own
		 * age, so that a confirmation leaves with every delivery the
		 * broker has seen for it (receipts.c; no slot moves meanwhile:
		 * the deliveries merge or gather into existing slots, or add
		 * new ones at the end). */
		if (s->ns && c->acks.used) {
			device *dev = s->dev;
			receipts_flush_all(c);
			if (i >= c->gath.used || c->gath.slot[i].dev != dev)
				continue; /* (it went out meanwhile) */
		}
		gather_flush_dev_slot(c, c->gath.slot[i].dev);
	}
}

void gather_flush_all(core *c)
{
	/* Each flush gives its slot back (the last moves into its place). */
	while (c->gath.used)
		gather_flush_dev_slot(c, c->gath.slot[c->gath.used - 1].dev);
}

void gather_forget(core *c, device *dev)
{
	if (dev->gslot)
		release(c, dev);
}

void gather_free(core *c)
{
	gather_state *g = &c->gath;
	for (size_t i = 0; i < g->cap; i++) {
		free(g->slot[i].s);
		free(g->slot[i].dl);
		free(g->slot[i].k);
		free(g->slot[i].r);
	}
	free(g->slot);
	free(g->runs);
	cbw_free(&g->w);
	memset(g, 0, sizeof(*g));
}
