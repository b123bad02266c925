// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* commit.c — group commit: sync writes whose acknowledgements wait for a
 * shared fsync, and a barrier that keeps everything the core publishes
 * behind the data it depends on.
 *
 * With plugin_opt_sync_writes on, stock mosquitto acknowledges a publish as
 * soon as its MESSAGE callback returns, so the write must be fsync'd inside
 * the callback, one per send, on the broker's only thread. A broker with
 * broker-patches/0004 can hold the acknowledgement instead: the store writes
 * without a sync and its commit thread fsyncs for every write made before
 * it (store/commit.c); the acknowledgement goes out after that fsync.
 *
 * Writes have generations (store_written). While the newest write is not
 * durable yet (written > durable):
 *  - the acknowledgement of a client's QoS 1/2 publish is held, tagged with
 *    the newest generation (core_ack_later): whatever the publish wrote or
 *    read (a retry answered from the dedup index reads the first send) is
 *    at or below it;
 *  - every publish the core makes goes into a FIFO tagged the same way:
 *    c->io.publish is this file's barrier, so every call site (events,
 *    replies, presence, counters, replays) is behind it by construction.
 *    A device never reads a `sent`, a `msg` or a receipt before the data
 *    behind it would survive a power cut. The barrier answers 0 as a
 *    publish does, so the flow windows count a held event as published.
 * A send whose store answer comes later (core_message: CORE_PENDING) holds
 * its acknowledgement in its own op (send.c) until the answer; then
 * commit_ack tags it with the generation written by then, so it joins the
 * same FIFO: an acknowledgement waits first for its operation, then for
 * the fsync.
 * When the commit thread reports a durable generation (io.wakeup, then
 * core_wakeup on the broker thread), the held acknowledgements up to it go
 * out first, then the held publishes up to it, each in order: the broker
 * queues a PUBACK at once and a plugin's publish at the next loop pass, so
 * a client sees its PUBACK before the `sent` event. While nothing is
 * pending, publishes go out at once and acknowledgements are not held.
 *
 * Bounds: what is held is what the broker did during one fsync (it drains
 * with every batch). Publishes held for a client whose connection ends are
 * dropped: a `msg` is in the device's queue and comes again with the
 * replay, a `sent` again when the client resends (dedup), and released
 * later they could reach its next connection ahead of its replay.
 *
 * A failed fsync ends the broker process (io.fatal, exit status 74), as
 * PostgreSQL panics on one: after it the kernel may have dropped pages it
 * could not write, so what the store holds in memory is no longer what the
 * disk holds, and any read of it (a replay, a dedup answer) could show a
 * device a message that a restart will not have. The held
 * acknowledgements are never sent: the clients resend after reconnecting,
 * and the restarted broker, recovered from what the disk holds, stores or
 * deduplicates them. No held publish goes out. The service manager
 * (systemd's Restart=on-failure) starts it again.
 */
#include "core_internal.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MQTT_RC_UNSPECIFIED 0x80

struct held_pub {
	held_pub *next;
	uint64_t gen;
	char *clientid;          /* NULL: every subscriber */
	char *topic;
	size_t len;
	int qos;
	bool retain;
	uint8_t data[];          /* topic, clientid, payload */
};

/* ---- the barrier: c->io while group commit runs ---- */

static bool pending(const core *c)
{
	return store_written(c->st) > c->commit.durable;
}

static int barrier_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
                           size_t len, int qos, bool retain)
{
	core *c = ctx;
	commit_state *k = &c->commit;
	if (!pending(c) && !k->pub_head)
		return k->io.publish(k->io.ctx, clientid, topic, payload, len, qos, retain);
	size_t tl = strlen(topic) + 1, cl = clientid ? strlen(clientid) + 1 : 0;
	held_pub *h = malloc(sizeof(*h) + tl + cl + len);
	if (!h)
		return CHAT_ENOMEM;
	h->next = NULL;
	h->gen = store_written(c->st);
	h->topic = (char *)h->data;
	memcpy(h->topic, topic, tl);
	h->clientid = clientid ? h->topic + tl : NULL;
	if (clientid)
		memcpy(h->clientid, clientid, cl);
	if (len)
		memcpy(h->data + tl + cl, payload, len);
	h->len = len;
	h->qos = qos;
	h->retain = retain;
	if (k->pub_tail)
		k->pub_tail->next = h;
	else
		k->pub_head = h;
	k->pub_tail = h;
	c->n.publishes_held++;
	store_group_commit_ask(c->st);
	return 0;
}

static uint64_t fwd_now_ms(void *ctx)
{
	core *c = ctx;
	return c->commit.io.now_ms(c->commit.io.ctx);
}

static void fwd_log(void *ctx, int level, const char *msg)
{
	core *c = ctx;
	c->commit.io.log(c->commit.io.ctx, level, msg);
}

static void fwd_kick(void *ctx, const char *name, bool username)
{
	core *c = ctx;
	c->commit.io.kick(c->commit.io.ctx, name, username);
}

/* On the commit thread: k->io was set before the thread started. */
static void on_durable(void *arg)
{
	core *c = arg;
	c->commit.io.wakeup(c->commit.io.ctx);
}

bool core_group_commit(core *c, bool broker_can_defer)
{
	commit_state *k = &c->commit;
	if (!c->cfg.sync_writes)
		return true;
	if (!broker_can_defer || !c->io.ack || !c->io.wakeup) {
		core_log(c, CORE_LOG_NOTICE, "sync writes: one fsync per write (this broker cannot hold "
		         "acknowledgements; broker-patches/ adds group commit)");
		return true;
	}
	k->io = c->io;
	k->durable = store_written(c->st);
	if (store_group_commit_start(c->st, c->cfg.commit_window_us, on_durable, c)) {
		core_log(c, CORE_LOG_ERR, "%s", store_errmsg(c->st));
		return false;
	}
	c->io = (core_io){ c, barrier_publish, fwd_now_ms, fwd_log, fwd_kick, NULL, NULL, NULL };
	k->on = true;
	core_log(c, CORE_LOG_NOTICE, "sync writes: group commit (acknowledgements and events wait "
	         "for a shared fsync; commit window %u µs)", c->cfg.commit_window_us);
	return true;
}

/* ---- held acknowledgements ---- */

bool core_ack_later(core *c, uint64_t conn_id, uint16_t mid)
{
	commit_state *k = &c->commit;
	if (send_ack_later(c, conn_id, mid))
		return true; /* held by its op until it completes, then commit_ack */
	if (!k->on || k->failed || !pending(c))
		return false;
	if (k->head == k->n)
		k->head = k->n = 0;
	if (chat_grow(&k->acks, &k->cap, k->n + 1, sizeof(*k->acks), 64)) {
		/* Nowhere to remember it: acknowledged now, durable within an fsync. */
		core_log(c, CORE_LOG_ERR, "out of memory holding an acknowledgement");
		return false;
	}
	k->acks[k->n++] = (held_ack){ store_written(c->st), conn_id, mid, 0 };
	c->n.acks_deferred++;
	store_group_commit_ask(c->st);
	return true;
}

void commit_ack(core *c, uint64_t conn_id, uint16_t mid, uint8_t reason)
{
	commit_state *k = &c->commit;
	if (k->on && !k->failed && pending(c)) {
		if (k->head == k->n)
			k->head = k->n = 0;
		if (!chat_grow(&k->acks, &k->cap, k->n + 1, sizeof(*k->acks), 64)) {
			k->acks[k->n++] = (held_ack){ store_written(c->st), conn_id, mid, reason };
			store_group_commit_ask(c->st);
			return;
		}
		core_log(c, CORE_LOG_ERR, "out of memory holding an acknowledgement");
	}
	const core_io *io = k->on ? &k->io : &c->io;
	if (io->ack)
		(void)io->ack(io->ctx, conn_id, mid, reason); /* non-zero: the client left */
}

static void send_acks(core *c, uint64_t upto, uint8_t reason)
{
	commit_state *k = &c->commit;
	while (k->head < k->n && k->acks[k->head].gen <= upto) {
		const held_ack *a = &k->acks[k->head++];
		/* non-zero: the client left, its publish comes again */
		uint8_t r = reason ? reason : a->reason;
		(void)k->io.ack(k->io.ctx, a->conn_id, a->mid, r);
		c->n.acks_refused += reason >= 0x80; /* the fsync failed */
	}
	if (k->head == k->n)
		k->head = k->n = 0;
}

static held_pub *pop_pub(commit_state *k)
{
	held_pub *h = k->pub_head;
	k->pub_head = h->next;
	if (!k->pub_head)
		k->pub_tail = NULL;
	return h;
}

static void drop_pubs(commit_state *k)
{
	while (k->pub_head)
		free(pop_pub(k));
}

/* Publishes the held publishes up to generation upto, in order. */
static void release_pubs(core *c, uint64_t upto)
{
	commit_state *k = &c->commit;
	while (k->pub_head && k->pub_head->gen <= upto) {
		held_pub *h = pop_pub(k);
		const uint8_t *payload = (const uint8_t *)h->topic + strlen(h->topic) + 1 +
		                         (h->clientid ? strlen(h->clientid) + 1 : 0);
		k->io.publish(k->io.ctx, h->clientid, h->topic, payload, h->len, h->qos, h->retain);
		free(h);
	}
}

void core_wakeup(core *c)
{
	commit_state *k = &c->commit;
	if (!k->on)
		return;
	bool failed = false;
	uint64_t d = store_durable(c->st, &failed);
	if (d > k->durable)
		k->durable = d;
	send_acks(c, k->durable, 0);
	release_pubs(c, k->durable);
	if (failed && !k->failed) {
		core_log(c, CORE_LOG_ERR, "%s: stopping the broker (exit status %d) so that it restarts "
		         "from what the disk holds; clients resend what was not acknowledged",
		         store_errmsg(c->st), CHAT_EXIT_FSYNC_FAILED);
		k->failed = true;
		drop_pubs(k); /* what they announce may not survive */
		if (k->io.fatal) {
			k->io.fatal(k->io.ctx);
			return;
		}
		/* An io without fatal (unit tests): refuse what was held and
		 * every write from now on; nothing waits any more. */
		send_acks(c, UINT64_MAX, MQTT_RC_UNSPECIFIED);
		k->durable = UINT64_MAX;
		return;
	}
	if (k->head < k->n || k->pub_head)
		store_group_commit_ask(c->st);
}

void commit_tick(core *c)
{
	if (!c->commit.on)
		return;
	core_wakeup(c);
	/* Writes nothing waits for (a sweep, gathered receipts) are made
	 * durable too, within a tick. */
	store_group_commit_ask(c->st);
}

void commit_forget_client(core *c, const char *clientid)
{
	commit_state *k = &c->commit;
	held_pub **p = &k->pub_head, *prev = NULL;
	while (*p) {
		held_pub *h = *p;
		if (h->clientid && strcmp(h->clientid, clientid) == 0) {
			*p = h->next;
			free(h);
		} else {
			prev = h;
			p = &h->next;
		}
	}
	k->pub_tail = prev;
}

void commit_close(core *c)
{
	commit_state *k = &c->commit;
	if (!k->on)
		return;
	/* The broker is stopping: it drops what it holds (clients resend), and
	 * nothing published now would be delivered. A last fsync all the same. */
	store_group_commit_stop(c->st);
	drop_pubs(k);
	free(k->acks);
	k->acks = NULL;
	k->head = k->n = k->cap = 0;
	c->io = k->io;
	k->on = false;
}
