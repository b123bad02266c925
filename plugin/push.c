// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* push.c — content-free wake-ups for devices that are offline.
 *
 * A phone asleep has no MQTT connection. When a message, group event or
 * receipt is queued for an offline device that registered a push target
 * (ctl push.register), the plugin publishes a wake-up on P/push/wake for
 * the push gateways (service accounts on a shared subscription) to hand to
 * FCM / APNs / Web Push. A wake-up names the device, its platform and
 * token and how many items wait — never a sender, a conversation or a body.
 *
 * Cost on the broker thread: queueing an item for an offline device bumps
 * a counter and, for the first item since the device's last wake-up, puts
 * the device on a timer heap (O(log n)); everything else happens on the
 * tick, at most PUSH_TICK_MAX wake-ups per tick. A device gets at most one
 * wake-up per plugin_opt_push_interval: items queued in between only raise
 * the pending count of the next one.
 *
 * At least once: a wake-up stays unacknowledged until a gateway publishes
 * {id, to, r} on P/push/ack (after the provider answered), and is sent
 * again every plugin_opt_push_retry until then — so a gateway that dies
 * mid-retry, or none being connected, loses nothing. (MQTT alone could
 * not promise this: a plugin publish with no subscriber is dropped, and a
 * gateway's client acknowledges the PUBLISH before its HTTP call.) After a
 * broker restart every device with a non-empty queue is owed a wake-up:
 * the store's queues are the durable record of what is pending.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUSH_TICK_MAX 1000 /* wake-ups published per tick */

static const char *const platform_names[] = {
	[STORE_PUSH_FCM] = "fcm", [STORE_PUSH_APNS] = "apns", [STORE_PUSH_WEBPUSH] = "webpush",
};

/* ---- the timer heap: devices by due time ---- */

static bool earlier(const device *a, const device *b)
{
	return a->push.due < b->push.due;
}

static void heap_set(push_timers *t, size_t i, device *d)
{
	t->heap[i] = d;
	d->push.slot = i + 1;
}

static void heap_up(push_timers *t, size_t i)
{
	device *d = t->heap[i];
	while (i > 0 && earlier(d, t->heap[(i - 1) / 2])) {
		heap_set(t, i, t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(t, i, d);
}

static void heap_down(push_timers *t, size_t i)
{
	device *d = t->heap[i];
	for (;;) {
		size_t k = 2 * i + 1;
		if (k >= t->n)
			break;
		if (k + 1 < t->n && earlier(t->heap[k + 1], t->heap[k]))
			k++;
		if (!earlier(t->heap[k], d))
			break;
		heap_set(t, i, t->heap[k]);
		i = k;
	}
	heap_set(t, i, d);
}

static void unschedule(core *c, device *d)
{
	push_timers *t = &c->pt;
	if (!d->push.slot)
		return;
	size_t i = d->push.slot - 1;
	d->push.slot = 0;
	device *last = t->heap[--t->n];
	if (i == t->n)
		return;
	t->heap[i] = last;
	last->push.slot = i + 1;
	heap_up(t, i);
	heap_down(t, last->push.slot - 1);
}

/* Fires d's timer at `due`, or earlier if it is already set earlier. */
static void schedule(core *c, device *d, uint64_t due)
{
	push_timers *t = &c->pt;
	if (d->push.slot) {
		if (due < d->push.due) {
			d->push.due = due;
			heap_up(t, d->push.slot - 1);
		}
		return;
	}
	if (t->n == t->cap && chat_grow(&t->heap, &t->cap, t->n + 1, sizeof(*t->heap), 64)) {
		core_log(c, CORE_LOG_ERR, "out of memory scheduling a wake-up for %s", d->addr);
		return;
	}
	d->push.due = due;
	t->heap[t->n] = d;
	d->push.slot = ++t->n;
	heap_up(t, t->n - 1);
}

/* ---- state ---- */

static void reset(core *c, device *d)
{
	unschedule(c, d);
	d->push.pending = 0;
	d->push.dirty = false;
	d->push.unacked = false;
}

static void drop_target(core *c, device *d)
{
	reset(c, d);
	free(d->push.token);
	d->push.token = NULL;
	d->push.platform = 0;
	d->push.alert = false;
}

/* The token's memory belongs to the device: the directory frees it. */
static int set_target(device *d, const store_push *p)
{
	char *tok = malloc(p->token_len + 1);
	if (!tok)
		return CHAT_ENOMEM;
	memcpy(tok, p->token, p->token_len);
	tok[p->token_len] = 0;
	free(d->push.token);
	d->push.token = tok;
	d->push.platform = (uint8_t)p->platform;
	d->push.alert = p->alert;
	return CHAT_OK;
}

static uint64_t retry_ms(const core *c)
{
	/* A resend is a wake-up too: never more often than the interval. */
	uint32_t s = c->cfg.push_retry_s > c->cfg.push_interval_s ? c->cfg.push_retry_s
	                                                          : c->cfg.push_interval_s;
	return (uint64_t)s * 1000;
}

void push_queued(core *c, device *d)
{
	if (!d->push.platform || d->conn)
		return;
	d->push.pending++;
	if (d->push.dirty)
		return; /* the wake-up that covers it is already scheduled */
	d->push.dirty = true;
	uint64_t now = c->io.now_ms(c->io.ctx);
	uint64_t next = d->push.last_emit + (uint64_t)c->cfg.push_interval_s * 1000;
	schedule(c, d, next > now ? next : now);
}

void push_online(core *c, device *d)
{
	reset(c, d);
}

void push_forget(core *c, device *d)
{
	unschedule(c, d);
}

/* {k:"wake", id, to, platform, token, pending, ?mode: "alert"} on
 * P/push/wake, to whichever gateway the shared subscription picks. */
static void emit(core *c, device *d, uint64_t now)
{
	bool resend = d->push.unacked && !d->push.dirty;
	d->push.wake_id = ++c->pt.next_id;
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, d->push.alert ? 7 : 6);
	cbw_text(w, "k"); cbw_text(w, "wake");
	cbw_text(w, "id"); cbw_uint(w, d->push.wake_id);
	cbw_text(w, "to"); cbw_text(w, d->addr);
	cbw_text(w, "platform"); cbw_text(w, platform_names[d->push.platform]);
	cbw_text(w, "token"); cbw_text(w, d->push.token);
	cbw_text(w, "pending"); cbw_uint(w, d->push.pending);
	if (d->push.alert) {
		cbw_text(w, "mode"); cbw_text(w, "alert");
	}
	if (cbw_status(w) != 0) {
		schedule(c, d, now + retry_ms(c)); /* out of memory: try again later */
		return;
	}
	char topic[CORE_PREFIX_MAX + sizeof("/push/wake")];
	snprintf(topic, sizeof(topic), "%s/push/wake", c->prefix);
	c->io.publish(c->io.ctx, NULL, topic, w->buf, w->len, 1, false);
	if (resend)
		c->n.wakeups_resent++;
	else
		c->n.wakeups_out++;
	d->push.last_emit = now;
	d->push.dirty = false;
	d->push.unacked = true;
	schedule(c, d, now + retry_ms(c));
}

void push_tick(core *c)
{
	push_timers *t = &c->pt;
	uint64_t now = c->io.now_ms(c->io.ctx);
	for (size_t sent = 0; t->n > 0 && t->heap[0]->push.due <= now && sent < PUSH_TICK_MAX;) {
		device *d = t->heap[0];
		unschedule(c, d);
		if (d->push.platform && !d->conn && (d->push.dirty || d->push.unacked)) {
			emit(c, d, now);
			sent++;
		}
	}
}

/* ---- requests ---- */

static bool token_ok(int platform, const char *tok, size_t n)
{
	if (n == 0 || n > STORE_PUSH_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)tok[i];
		bool hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
		if (platform == STORE_PUSH_APNS ? !hex : (ch < 0x21 || ch > 0x7e))
			return false;
	}
	return platform != STORE_PUSH_APNS || (n % 2 == 0 && n >= 16 && n <= 200);
}

static bool text_is(const char *s, size_t n, const char *lit)
{
	return s && strlen(lit) == n && memcmp(s, lit, n) == 0;
}

bool push_register(core *c, device *dev, const char *platform, size_t plen, const char *mode,
                   size_t mlen, const char *token, size_t tlen, refusal *why)
{
	int p = 0;
	for (int i = STORE_PUSH_FCM; i <= STORE_PUSH_WEBPUSH; i++)
		if (platform && strlen(platform_names[i]) == plen && memcmp(platform, platform_names[i], plen) == 0)
			p = i;
	if (!p)
		return refusal_set(why, REFUSE_FIELD,
		                   "platform must be \"fcm\", \"apns\" or \"webpush\"");
	if (!token)
		return refusal_set(why, REFUSE_FIELD, "token is required (text)");
	if (!token_ok(p, token, tlen))
		return refusal_set(why, REFUSE_FIELD, "%s",
		                   p == STORE_PUSH_APNS
		                   ? "an apns token must be 16-200 hex digits"
		                   : "token must be 1-4096 printable ASCII characters without spaces");
	bool alert = text_is(mode, mlen, "alert");
	if (mode && !alert && !text_is(mode, mlen, "background"))
		return refusal_set(why, REFUSE_FIELD, "mode must be \"alert\" or \"background\"");
	if (alert && p != STORE_PUSH_APNS)
		return refusal_set(why, REFUSE_FIELD, "mode \"alert\" is for apns only");
	store_push sp = { (enum store_push_platform)p, token, tlen, alert };
	if (store_push_set(c->st, dev->user->name, dev->id, &sp) != CHAT_OK) {
		core_log(c, CORE_LOG_ERR, "storing the push target of %s failed: %s", dev->addr,
		         store_errmsg(c->st));
		return refusal_set(why, REFUSE_STORE, "the push target could not be stored");
	}
	if (set_target(dev, &sp) != CHAT_OK)
		return refusal_set(why, REFUSE_STORE, "out of memory");
	/* Acknowledgements of wake-ups to the old target no longer count. */
	dev->push.unacked = false;
	return true;
}

bool push_unregister(core *c, device *dev, refusal *why)
{
	if (store_push_clear(c->st, dev->user->name, dev->id) != CHAT_OK) {
		core_log(c, CORE_LOG_ERR, "removing the push target of %s failed: %s", dev->addr,
		         store_errmsg(c->st));
		return refusal_set(why, REFUSE_STORE, "the push target could not be removed");
	}
	drop_target(c, dev);
	return true;
}

/* {id, to, r: "ok" | "invalid" | "failed"}: "invalid" means the provider
 * disowned the token, which is then unregistered; "failed" that the
 * gateway gave up (the next queued item wakes the device again). Only the
 * last wake-up's id counts: an older one was superseded by a resend. */
void push_ack(core *c, const uint8_t *payload, size_t len)
{
	cbr_fields f;
	const uint8_t *to = NULL, *res = NULL;
	size_t tolen = 0, reslen = 0;
	uint64_t id = 0;
	cbr_fields_open(&f, payload, len, NULL);
	while (cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "id") && f.val.type == CBR_UINT)
			id = f.val.u;
		else if (cbr_eq(&f.key, "to") && f.val.type == CBR_TEXT)
			to = f.val.ptr, tolen = f.val.len;
		else if (cbr_eq(&f.key, "r") && f.val.type == CBR_TEXT)
			res = f.val.ptr, reslen = f.val.len;
		else
			cbr_fields_skip(&f);
	}
	bool invalid = res && reslen == 7 && memcmp(res, "invalid", 7) == 0;
	bool known = invalid || (res && ((reslen == 2 && memcmp(res, "ok", 2) == 0) ||
	                                 (reslen == 6 && memcmp(res, "failed", 6) == 0)));
	if (cbr_fields_close(&f, NULL) || !to || !known || !id)
		goto bad;
	c->n.push_acks++;
	device *d = dir_device(&c->dir, (const char *)to, tolen);
	if (!d || !d->push.unacked || d->push.wake_id != id)
		return; /* removed, reconnected, re-registered or resent since */
	d->push.unacked = false;
	if (invalid) {
		c->n.push_invalid++;
		core_log(c, CORE_LOG_NOTICE, "the push provider rejected the token of %s: unregistered",
		         d->addr);
		refusal unsaid; /* nobody asked: a failure is logged */
		push_unregister(c, d, &unsaid);
	}
	return;
bad:
	core_log(c, CORE_LOG_WARNING, "ignored a malformed push acknowledgement (%zu bytes)", len);
}

/* ---- life cycle ---- */

static int load_one(void *arg, const char *user, const char *dev, const store_push *p)
{
	core *c = arg;
	char addr[CHAT_ADDR_MAX + 1];
	int n = snprintf(addr, sizeof(addr), "%s/%s", user, dev);
	device *d = dir_device(&c->dir, addr, (size_t)n);
	if (!d)
		return CHAT_OK; /* cannot happen: removed with its device */
	if (set_target(d, p) != CHAT_OK)
		return CHAT_ENOMEM;
	uint64_t queued = 0;
	if (store_queue_count(c->st, d->addr, &queued) != CHAT_OK)
		return CHAT_EIO;
	if (queued) {
		d->push.pending = queued - 1;
		push_queued(c, d);
	}
	return CHAT_OK;
}

int push_load(core *c)
{
	c->pt.next_id = c->io.now_ms(c->io.ctx) << 10;
	return store_push_each(c->st, load_one, c);
}

void push_free(core *c)
{
	free(c->pt.heap);
	c->pt.heap = NULL;
	c->pt.n = c->pt.cap = 0;
}
