// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* send.c — the send path: a device's message on chat/dm/{peer} or
 * chat/group/{G}.
 *
 * Runs inside the broker's MESSAGE callback, before the broker stores,
 * routes or acknowledges the PUBLISH: whatever this returns decides the
 * PUBACK/PUBREC. So the order is fixed — validate, deduplicate, store in one
 * WriteBatch, and only then let the acknowledgement go; deliveries to online
 * devices are queued behind it by the broker. Every refusal reaches the
 * sender as an inbox `error` event (MQTT 3.1.1 cannot see a refused PUBACK).
 * The payload is decoded in place: bodies are never copied before the store.
 *
 * Each device's sends pass a token bucket first (plugin_opt_send_rate per
 * second, plugin_opt_send_burst at once), kept as one timestamp in the
 * device (GCRA: the bucket's "theoretical arrival time"), so a flooding
 * client costs the server an error event per send and nothing else.
 *
 * A dm and a group send differ only in their conversation and recipients
 * (the peer's devices, or every device of every member, plus the sender's
 * other devices). A group fan-out can reach tens of thousands of devices,
 * so the recipient lists live in the core's growable scratch (fanout.c) and
 * `bodies` is matched against them by sorting both: O(n log n), never
 * O(n * m).
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct send_req {
	bool has_cid;
	store_cid cid;
	const uint8_t *cid_raw; /* the cid's own CBOR bytes, echoed in errors */
	size_t cid_raw_len;
	const uint8_t *body;
	size_t body_len;
	bool has_body;
	const uint8_t *bodies; /* the raw CBOR map */
	size_t bodies_len;
	size_t nent;           /* its entries, in c->send.ent */
	bool has_type;
	uint64_t type;
	bool has_ttl;
	uint64_t ttl;
} send_req;

void send_free(core *c)
{
	free(c->send.ent);
}

/* Tells the sender why, with the send's cid when it had one. */
static enum core_verdict refuse(core *c, device *from, const send_req *req, const refusal *why)
{
	c->n.msgs_refused++;
	core_log(c, CORE_LOG_INFO, "refused a send from %s: %s (%s)", from->addr,
	         refusal_code_name(why->code), why->msg);
	ev_error(c, from, why, req->has_cid ? req->cid_raw : NULL, req->has_cid ? req->cid_raw_len : 0);
	return CORE_DENY;
}

/* Decodes the bodies map in place; an error message or NULL. The map's
 * size is bounded by the payload (plugin_opt_max_body). */
static const char *parse_bodies(core *c, cbr *r, const cbr_item *map, send_req *req)
{
	uint64_t i = 0;
	cbr_item key, val;
	while (cbr_map_next(r, map, &i, &key)) {
		if (cbr_next(r, &val))
			return NULL;
		if (val.type != CBR_BYTES)
			return "every value of bodies must be a byte string";
		if (chat_grow(&c->send.ent, &c->send.entcap, req->nent + 1, sizeof(body_entry), 64))
			return "out of memory";
		c->send.ent[req->nent++] = (body_entry){ (const char *)key.ptr, key.len, val.ptr, val.len, false };
	}
	return NULL;
}

/* Fills req from the payload; false: refused (why). */
static bool parse_send(core *c, const uint8_t *p, size_t len, send_req *req, refusal *why)
{
	cbr_fields f;
	cbr_fields_open(&f, p, len, NULL);
	while (cbr_fields_next(&f)) {
		const cbr_item *key = &f.key, *val = &f.val;
		if (cbr_eq(key, "cid")) {
			if (val->type == CBR_UINT) {
				req->cid = (store_cid){ .is_uint = true, .u = val->u };
			} else if (val->type == CBR_BYTES && val->len >= 1 && val->len <= STORE_CID_MAX) {
				req->cid = (store_cid){ .is_uint = false, .len = val->len };
				memcpy(req->cid.bytes, val->ptr, val->len);
			} else {
				return refusal_set(why, REFUSE_FIELD, "cid must be a byte string of 1 to 16 "
				                   "bytes or an unsigned integer");
			}
			req->has_cid = true;
			req->cid_raw = f.at;
			req->cid_raw_len = (size_t)(f.r.p - f.at);
		} else if (cbr_eq(key, "body")) {
			if (val->type != CBR_BYTES)
				return refusal_set(why, REFUSE_FIELD, "body must be a byte string");
			req->has_body = true;
			req->body = val->ptr;
			req->body_len = val->len;
		} else if (cbr_eq(key, "bodies")) {
			if (val->type != CBR_MAP)
				return refusal_set(why, REFUSE_FIELD,
				                   "bodies must be a map of device address to byte string");
			req->nent = 0;
			const char *e = parse_bodies(c, &f.r, val, req);
			if (e)
				return refusal_set(why, REFUSE_FIELD, "%s", e);
			req->bodies = f.at;
			req->bodies_len = (size_t)(f.r.p - f.at);
		} else if (cbr_eq(key, "type") || cbr_eq(key, "ttl")) {
			if (val->type != CBR_UINT)
				return refusal_set(why, REFUSE_FIELD, "%s must be an unsigned integer",
				                   cbr_eq(key, "type") ? "type" : "ttl");
			if (cbr_eq(key, "type")) {
				req->has_type = true;
				req->type = val->u;
			} else {
				req->has_ttl = true;
				req->ttl = val->u;
			}
		} else {
			cbr_fields_skip(&f);
		}
	}
	const char *bad_cbor = cbr_fields_close(&f, NULL);
	if (bad_cbor)
		return refusal_set(why, REFUSE_CBOR, "%s", bad_cbor);
	if (!req->has_cid)
		return refusal_set(why, REFUSE_FIELD, "cid is required");
	if (req->has_body == (req->bodies != NULL))
		return refusal_set(why, REFUSE_FIELD, "exactly one of body and bodies is required");
	return true;
}

static int cmp_dev(const void *a, const void *b)
{
	return strcmp((*(device *const *)a)->addr, (*(device *const *)b)->addr);
}

static int cmp_ent(const void *a, const void *b)
{
	const body_entry *x = a, *y = b;
	int d = memcmp(x->addr, y->addr, x->alen < y->alen ? x->alen : y->alen);
	return d ? d : (x->alen > y->alen) - (x->alen < y->alen);
}

/* Matches bodies against the n recipients in c->fan.to (both sorted by
 * address, then merged), filling c->fan.bodies/blens; on a mismatch sends
 * the `devices` error (listing missing and extra addresses) and returns
 * false. */
static bool match_bodies(core *c, device *from, send_req *req, size_t n)
{
	device **to = c->fan.to;
	body_entry *ent = c->send.ent;
	const uint8_t **body = c->fan.bodies;
	size_t *blen = c->fan.blens;
	qsort(to, n, sizeof(*to), cmp_dev);
	qsort(ent, req->nent, sizeof(*ent), cmp_ent);
	size_t missing = 0, extra = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		body_entry key = { to[i]->addr, strlen(to[i]->addr), NULL, 0, false };
		while (j < req->nent && cmp_ent(&ent[j], &key) < 0)
			j++;
		body[i] = NULL;
		if (j < req->nent && cmp_ent(&ent[j], &key) == 0) {
			ent[j].matched = true;
			body[i] = ent[j].body;
			blen[i] = ent[j].blen;
			j++; /* a repeated address stays unmatched: extra */
		}
		missing += body[i] == NULL;
	}
	for (size_t k = 0; k < req->nent; k++)
		extra += !ent[k].matched;
	if (!missing && !extra)
		return true;

	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 6);
	cbw_text(w, "k"); cbw_text(w, "error");
	cbw_text(w, "code"); cbw_text(w, refusal_code_name(REFUSE_DEVICES));
	cbw_text(w, "msg"); cbw_text(w, "bodies does not name exactly the current devices");
	cbw_text(w, "cid"); cbw_raw(w, req->cid_raw, req->cid_raw_len);
	cbw_text(w, "missing");
	cbw_array(w, missing);
	for (size_t i = 0; i < n; i++)
		if (!body[i])
			cbw_text(w, to[i]->addr);
	cbw_text(w, "extra");
	cbw_array(w, extra);
	for (size_t k = 0; k < req->nent; k++)
		if (!ent[k].matched)
			cbw_textn(w, ent[k].addr, ent[k].alen);
	c->n.msgs_refused++;
	c->n.errors_out++;
	stats_refused(c, REFUSE_DEVICES);
	core_log(c, CORE_LOG_INFO, "refused a send from %s: devices (%zu missing, %zu extra)",
	         from->addr, missing, extra);
	ev_publish(c, from, w);
	return false;
}

/* A retry of a stored send: answer as the first time, deliver nothing. */
static enum core_verdict answer_duplicate(core *c, device *from, const send_req *req,
                                          const char *conv, uint64_t seq)
{
	store_msg m;
	store_msg_buf buf = { 0 };
	uint64_t ts = c->io.now_ms(c->io.ctx);
	if (store_msg_get(c->st, conv, seq, &m, &buf) == CHAT_OK)
		ts = m.ts;
	store_msg_buf_free(&buf);
	c->n.msgs_dup++;
	gather_sent(c, from, &req->cid, conv, seq, ts);
	return CORE_ALLOW;
}

/* Takes one token from the device's bucket: 0, or the milliseconds until
 * one is there. A bucket of `burst` tokens refilled at `rate` per second is
 * one timestamp tat: a send at `now` is allowed when max(tat, now) + T - now
 * stays within burst·T (T = 1 s / rate), and moves tat on by T. */
static uint64_t rate_take(core *c, device *from)
{
	if (!c->cfg.send_rate)
		return 0;
	uint64_t t = 1000000 / c->cfg.send_rate;
	t = t ? t : 1;
	uint64_t now = c->io.now_ms(c->io.ctx) * 1000;
	uint64_t tat = from->send_tat > now ? from->send_tat : now;
	uint64_t window = (uint64_t)c->cfg.send_burst * t;
	if (tat + t - now > window)
		return (tat + t - now - window + 999) / 1000;
	from->send_tat = tat + t;
	return 0;
}

/* The checks every send passes before its target is looked at. */
static bool send_begin(core *c, device *from, const uint8_t *payload, size_t len, int qos,
                       send_req *req, refusal *why)
{
	memset(req, 0, sizeof(*req));
	if (qos == 0)
		return refusal_set(why, REFUSE_QOS, "sends need QoS 1 or 2");
	if (len > c->cfg.max_body)
		return refusal_set(why, REFUSE_SIZE, "the payload of %zu bytes is over the limit of %u bytes",
		                   len, c->cfg.max_body);
	if (!parse_send(c, payload, len, req, why))
		return false;
	/* after parsing, so the refusal names the cid the client may retry */
	uint64_t wait_ms = rate_take(c, from);
	if (wait_ms)
		return refusal_set(why, REFUSE_RATE,
		                   "over the send limit of %u a second (burst %u); retry in %llu ms",
		                   c->cfg.send_rate, c->cfg.send_burst, (unsigned long long)wait_ms);
	return true;
}

/* Stores and delivers a checked send to conv; its n recipients are in
 * c->fan.to. */
static enum core_verdict send_conv(core *c, device *from, send_req *req, const char *conv, size_t n)
{
	uint64_t seq;
	char first_conv[CHAT_CONV_MAX + 1];
	refusal why;
	int rc = store_dedup_get(c->st, from->addr, &req->cid, first_conv, &seq);
	if (rc == CHAT_OK)
		return answer_duplicate(c, from, req, first_conv, seq);
	if (rc != CHAT_ENOTFOUND) {
		core_log(c, CORE_LOG_ERR, "dedup lookup failed for %s: %s", from->addr, store_errmsg(c->st));
		refusal_set(&why, REFUSE_STORE, "the message could not be stored");
		return refuse(c, from, req, &why);
	}
	if (req->bodies && !match_bodies(c, from, req, n))
		return CORE_DENY;

	device **to = c->fan.to;
	uint64_t now = c->io.now_ms(c->io.ctx);
	uint64_t ttl = req->has_ttl && req->ttl > 0 && req->ttl < c->cfg.offline_ttl_s
	               ? req->ttl : c->cfg.offline_ttl_s;
	store_msg m = {
		.conv = conv, .from = from->addr, .cid = req->cid, .ts = now, .expires = now + ttl * 1000,
		.has_type = req->has_type, .type = req->type,
		.body = req->has_body ? req->body : NULL, .body_len = req->body_len,
		.bodies = req->bodies, .bodies_len = req->bodies_len,
	};
	fanout_addrs(c, n);
	/* What a recipient has gathered goes out before its new queue entry
	 * (gather.c: nothing due earlier may follow it). */
	for (size_t i = 0; i < n; i++)
		gather_flush_dev(c, to[i]);
	rc = store_send(c->st, &m, c->fan.addrs, n, c->cfg.max_queue, &seq);
	if (rc) {
		if (rc == CHAT_EQUOTA) {
			refusal_set(&why, REFUSE_QUOTA, "a recipient's offline queue is full");
		} else {
			core_log(c, CORE_LOG_ERR, "storing a message from %s failed: %s", from->addr,
			         store_errmsg(c->st));
			refusal_set(&why, REFUSE_STORE, "the message could not be stored");
		}
		return refuse(c, from, req, &why);
	}
	c->n.msgs_stored++;
	for (size_t i = 0; i < n; i++)
		push_queued(c, to[i]);

	const user *me = from->user;
	gather_sent(c, from, &req->cid, conv, seq, now);
	if (req->has_body) {
		ev_msg(&c->w, &m, seq, req->body, req->body_len, false);
		ev_msg(&c->w2, &m, seq, req->body, req->body_len, true);
		for (size_t i = 0; i < n; i++)
			ev_publish_entry(c, to[i], to[i]->user == me ? &c->w2 : &c->w);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!dev_live(to[i]))
				continue; /* queued: a device with a backlog gets it in order */
			ev_msg(&c->w, &m, seq, c->fan.bodies[i], c->fan.blens[i], to[i]->user == me);
			ev_publish_entry(c, to[i], &c->w);
		}
	}
	return CORE_ALLOW;
}

/* A dm's conversation and recipients: the peer's devices and the
 * sender's others (c->fan.to, *n of them). */
static bool dm_target(core *c, device *from, const topic *t, char conv[CHAT_CONV_MAX + 1],
                      size_t *n, refusal *why)
{
	if (!chat_valid_user(t->a, t->alen))
		return refusal_set(why, REFUSE_PEER, "the peer is not a valid user id");
	const user *me = from->user;
	if (t->alen == strlen(me->name) && memcmp(t->a, me->name, t->alen) == 0)
		return refusal_set(why, REFUSE_PEER, "a conversation needs two different users");
	user *peer = dir_user(&c->dir, t->a, t->alen);
	if (!peer)
		return refusal_set(why, REFUSE_PEER, "no such user");
	chat_dm_conv(conv, me->name, strlen(me->name), peer->name, strlen(peer->name));
	*n = 0;
	if (!fanout_add_user(c, peer, NULL, n) || !fanout_add_user(c, me, from, n))
		return refusal_set(why, REFUSE_STORE, "out of memory");
	return true;
}

/* A group send's group and recipients: every member's devices but the
 * sender's own (c->fan.to, *n of them). */
static bool group_target(core *c, device *from, const topic *t, group **g, size_t *n, refusal *why)
{
	/* An unknown group and a group one is not in look the same. */
	*g = chat_valid_group(t->a, t->alen) ? group_find(c, t->a, t->alen) : NULL;
	const user *me = from->user;
	if (!*g || !group_has(*g, me->name, strlen(me->name)))
		return refusal_set(why, REFUSE_MEMBER, "not a member of this group");
	*n = 0;
	for (size_t i = 0; i < (*g)->n; i++) {
		const user *u = dir_user(&c->dir, (*g)->m[i]->user, strlen((*g)->m[i]->user));
		if (u && !fanout_add_user(c, u, from, n))
			return refusal_set(why, REFUSE_STORE, "out of memory");
	}
	return true;
}

enum core_verdict send_dm(core *c, device *from, const topic *t, const uint8_t *payload, size_t len,
                          int qos, bool retain)
{
	(void)retain;
	send_req req;
	refusal why;
	char conv[CHAT_CONV_MAX + 1];
	size_t n;
	if (!send_begin(c, from, payload, len, qos, &req, &why) ||
	    !dm_target(c, from, t, conv, &n, &why))
		return refuse(c, from, &req, &why);
	return send_conv(c, from, &req, conv, n);
}

enum core_verdict send_group(core *c, device *from, const topic *t, const uint8_t *payload,
                             size_t len, int qos)
{
	send_req req;
	refusal why;
	group *g;
	size_t n;
	if (!send_begin(c, from, payload, len, qos, &req, &why) ||
	    !group_target(c, from, t, &g, &n, &why))
		return refuse(c, from, &req, &why);
	return send_conv(c, from, &req, g->conv, n);
}
