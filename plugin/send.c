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
 *
 * The store's answer is a continuation (store_send_begin; docs/CLUSTER.md,
 * "Plan" step 1): everything after it — the PUBACK, `sent`, the live `msg`
 * events — is send_finish, run with the request's state in a send_op from
 * a free list. RocksDB answers inline, before store_send_begin returns:
 * then the op never leaves this file's stack discipline (nothing is copied)
 * and the verdict is returned as before. A backend that answers later
 * makes the publish CORE_PENDING: the op keeps copies of what send_finish
 * needs (the payload, the recipients' addresses), holds the publish's
 * acknowledgement (core_ack_later) and waits in c->send.head..tail. While
 * one waits, every new send waits behind it, copied, and is run when it
 * reaches the front: sends complete in the order they arrived, so a
 * device's PUBACKs (MQTT wants them in order), `sent`s and `msg`s keep its
 * order. An acknowledgement always goes before the events of its send.
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

#define MQTT_RC_NOT_AUTHORIZED 0x87 /* what a denied publish gets from stock mosquitto */

enum op_state {
	OP_STORING, /* the store has not answered */
	OP_DONE,    /* answered: send_finish is next */
	OP_WAITING, /* not started: arrived while another send was in flight */
};

struct send_op {
	send_op *next;
	core *c;
	uint64_t id;
	enum op_state state;
	bool in_begin;          /* inside store_send_begin: an answer now is inline */
	bool kept;              /* answered later: the copies below are what it uses */
	int rc;                 /* the store's answer */
	uint64_t seq;
	bool has_ack;           /* holds the publish's acknowledgement */
	uint64_t conn_id;
	uint16_t mid;
	char from[CHAT_ADDR_MAX + 1];
	device *dev;            /* the sender, while not kept */
	/* OP_WAITING: the topic's kind, its target (buf[plen ..)) and qos */
	enum topic_kind kind;
	size_t plen, tlen;
	int qos;
	/* OP_STORING / OP_DONE: the request */
	send_req req;           /* pointers into the payload, or into buf once kept */
	char conv[CHAT_CONV_MAX + 1];
	uint64_t now, expires;
	size_t n;               /* recipients */
	/* copies, kept across uses of the op (the free list): the payload; the
	 * recipients' addresses, NUL-separated; their bodies in buf */
	uint8_t *buf;
	size_t bufcap;
	char *addrs;
	size_t addrcap;
	size_t *boff, *blen;
	size_t bcap, blcap;
};

static void op_release(send_op *op)
{
	free(op->buf);
	free(op->addrs);
	free(op->boff);
	free(op->blen);
	free(op);
}

void send_free(core *c)
{
	free(c->send.ent);
	send_state *s = &c->send;
	for (send_op *op = s->head, *next; op; op = next) {
		next = op->next;
		op_release(op); /* the broker is stopping: their clients resend */
	}
	for (send_op *op = s->free, *next; op; op = next) {
		next = op->next;
		op_release(op);
	}
	s->head = s->tail = s->free = s->begun = s->running = NULL;
}

/* An op from the free list (its buffers kept), or a new one; NULL: out of
 * memory. */
static send_op *op_get(core *c, device *from)
{
	send_op *op = c->send.free;
	if (op) {
		c->send.free = op->next;
	} else if (!(op = calloc(1, sizeof(*op)))) {
		return NULL;
	}
	op->next = NULL;
	op->c = c;
	op->id = ++c->send.next_id;
	op->in_begin = op->kept = op->has_ack = false;
	op->rc = 0;
	op->seq = 0;
	op->dev = from;
	memcpy(op->from, from->addr, strlen(from->addr) + 1);
	return op;
}

static void op_put(core *c, send_op *op)
{
	op->next = c->send.free;
	c->send.free = op;
}

static void op_push(core *c, send_op *op, bool front)
{
	send_state *s = &c->send;
	if (front) {
		op->next = s->head;
		s->head = op;
		if (!s->tail)
			s->tail = op;
	} else {
		op->next = NULL;
		if (s->tail)
			s->tail->next = op;
		else
			s->head = op;
		s->tail = op;
	}
}

/* Copies len bytes of p to op->buf at off (grown to hold them). */
static bool op_copy(send_op *op, size_t off, const void *p, size_t len)
{
	if (chat_grow(&op->buf, &op->bufcap, off + len + 1, 1, 256))
		return false;
	if (len)
		memcpy(op->buf + off, p, len);
	return true;
}

void send_publish_start(core *c)
{
	c->send.begun = NULL;
}

bool send_ack_later(core *c, uint64_t conn_id, uint16_t mid)
{
	send_op *op = c->send.begun;
	if (!op)
		return false;
	c->send.begun = NULL;
	op->has_ack = true;
	op->conn_id = conn_id;
	op->mid = mid;
	c->n.acks_deferred++;
	return true;
}

static void op_ack(core *c, send_op *op, bool ok)
{
	if (op && op->has_ack) {
		op->has_ack = false;
		commit_ack(c, op->conn_id, op->mid, ok ? 0 : MQTT_RC_NOT_AUTHORIZED);
	}
}

/* A waiting send that is run now answers its held acknowledgement before
 * it publishes anything. */
static void ack_running(core *c, bool ok)
{
	op_ack(c, c->send.running, ok);
}

/* Tells the sender why, with the send's cid when it had one. */
static enum core_verdict refuse(core *c, device *from, const send_req *req, const refusal *why)
{
	ack_running(c, false);
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
	ack_running(c, false);
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
	ack_running(c, true);
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

/* The continuation: what follows the store's answer. With op->kept the
 * recipients come from the op's copies (a device removed meanwhile is
 * left out), else they are still in c->fan. */
static enum core_verdict send_finish(core *c, send_op *op)
{
	device *from = op->kept ? dir_device(&c->dir, op->from, strlen(op->from)) : op->dev;
	send_req *req = &op->req;
	if (op->rc) {
		refusal why;
		if (op->rc == CHAT_EQUOTA) {
			refusal_set(&why, REFUSE_QUOTA, "a recipient's offline queue is full");
		} else {
			core_log(c, CORE_LOG_ERR, "storing a message from %s failed: %s", op->from,
			         store_errmsg(c->st));
			refusal_set(&why, REFUSE_STORE, "the message could not be stored");
		}
		op_ack(c, op, false);
		if (!from) {
			ack_running(c, false);
			c->n.msgs_refused++;
			return CORE_DENY;
		}
		return refuse(c, from, req, &why);
	}
	op_ack(c, op, true);
	ack_running(c, true);
	c->n.msgs_stored++;

	size_t n = op->n;
	if (op->kept) {
		if (fanout_reserve(c, n)) {
			core_log(c, CORE_LOG_ERR, "out of memory: the live events of %s's message %s/%llu "
			         "are left to the queues", op->from, op->conv, (unsigned long long)op->seq);
			return CORE_ALLOW;
		}
		const char *a = op->addrs;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			size_t al = strlen(a);
			device *d = dir_device(&c->dir, a, al);
			if (d) {
				c->fan.to[k] = d;
				if (req->bodies) {
					c->fan.bodies[k] = op->buf + op->boff[i];
					c->fan.blens[k] = op->blen[i];
				}
				/* gathered while the store worked: before the new entry */
				gather_flush_dev(c, d);
				k++;
			}
			a += al + 1;
		}
		n = k;
		if (from && !from->conn)
			from = NULL; /* its connection ended: it resends, deduplicated */
	}
	device **to = c->fan.to;
	for (size_t i = 0; i < n; i++)
		push_queued(c, to[i]);
	store_msg m = {
		.conv = op->conv, .from = op->from, .cid = req->cid, .ts = op->now, .expires = op->expires,
		.has_type = req->has_type, .type = req->type,
		.body = req->has_body ? req->body : NULL, .body_len = req->body_len,
		.bodies = req->bodies, .bodies_len = req->bodies_len,
	};
	size_t ulen = (size_t)(strchr(op->from, '/') - op->from);
	if (from)
		gather_sent(c, from, &req->cid, op->conv, op->seq, op->now);
	if (req->has_body) {
		ev_msg(&c->w, &m, op->seq, req->body, req->body_len, false);
		ev_msg(&c->w2, &m, op->seq, req->body, req->body_len, true);
		for (size_t i = 0; i < n; i++) {
			bool self = strlen(to[i]->user->name) == ulen &&
			            memcmp(to[i]->user->name, op->from, ulen) == 0;
			ev_publish_entry(c, to[i], self ? &c->w2 : &c->w);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!dev_live(to[i]))
				continue; /* queued: a device with a backlog gets it in order */
			bool self = strlen(to[i]->user->name) == ulen &&
			            memcmp(to[i]->user->name, op->from, ulen) == 0;
			ev_msg(&c->w, &m, op->seq, c->fan.bodies[i], c->fan.blens[i], self);
			ev_publish_entry(c, to[i], &c->w);
		}
	}
	return CORE_ALLOW;
}

static void send_drain(core *c);

/* The store's answer (store_send_done), on the broker thread. */
static void send_stored(void *arg, int rc, uint64_t seq)
{
	send_op *op = arg;
	op->rc = rc;
	op->seq = seq;
	op->state = OP_DONE;
	if (!op->in_begin)
		send_drain(op->c);
}

/* Keeps what send_finish needs past the publish callback: the payload
 * (the request's pointers move into the copy) and the recipients. */
static bool op_keep(core *c, send_op *op, const uint8_t *payload, size_t len)
{
	send_req *req = &op->req;
	if (!op_copy(op, 0, payload, len))
		return false;
#define REBASE(p) ((p) ? op->buf + ((const uint8_t *)(p) - payload) : NULL)
	req->cid_raw = REBASE(req->cid_raw);
	req->body = REBASE(req->body);
	req->bodies = REBASE(req->bodies);
	size_t need = 0;
	for (size_t i = 0; i < op->n; i++)
		need += strlen(c->fan.addrs[i]) + 1;
	if (chat_grow(&op->addrs, &op->addrcap, need + 1, 1, 256))
		return false;
	if (req->bodies && (chat_grow(&op->boff, &op->bcap, op->n + 1, sizeof(size_t), 16) ||
	                    chat_grow(&op->blen, &op->blcap, op->n + 1, sizeof(size_t), 16)))
		return false;
	char *a = op->addrs;
	for (size_t i = 0; i < op->n; i++) {
		size_t al = strlen(c->fan.addrs[i]) + 1;
		memcpy(a, c->fan.addrs[i], al);
		a += al;
		if (req->bodies) {
			op->boff[i] = (size_t)(c->fan.bodies[i] - payload);
			op->blen[i] = c->fan.blens[i];
		}
	}
#undef REBASE
	op->dev = NULL;
	op->kept = true;
	return true;
}

/* Stores and delivers a checked send to conv; its n recipients are in
 * c->fan.to. */
static enum core_verdict send_conv(core *c, device *from, send_req *req, const char *conv, size_t n,
                                   const uint8_t *payload, size_t len)
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
	send_op *op = op_get(c, from);
	if (!op) {
		refusal_set(&why, REFUSE_STORE, "out of memory");
		return refuse(c, from, req, &why);
	}
	op->state = OP_STORING;
	op->req = *req;
	memcpy(op->conv, conv, strlen(conv) + 1);
	op->n = n;
	op->now = c->io.now_ms(c->io.ctx);
	uint64_t ttl = req->has_ttl && req->ttl > 0 && req->ttl < c->cfg.offline_ttl_s
	               ? req->ttl : c->cfg.offline_ttl_s;
	op->expires = op->now + ttl * 1000;
	store_msg m = {
		.conv = conv, .from = from->addr, .cid = req->cid, .ts = op->now, .expires = op->expires,
		.has_type = req->has_type, .type = req->type,
		.body = req->has_body ? req->body : NULL, .body_len = req->body_len,
		.bodies = req->bodies, .bodies_len = req->bodies_len,
	};
	fanout_addrs(c, n);
	/* What a recipient has gathered goes out before its new queue entry
	 * (gather.c: nothing due earlier may follow it). */
	for (size_t i = 0; i < n; i++)
		gather_flush_dev(c, c->fan.to[i]);
	op->in_begin = true;
	if (c->send.be.begin)
		c->send.be.begin(c->send.be.ctx, c->st, &m, c->fan.addrs, n, c->cfg.max_queue,
		                 send_stored, op);
	else
		store_send_begin(c->st, &m, c->fan.addrs, n, c->cfg.max_queue, send_stored, op);
	op->in_begin = false;
	if (op->state == OP_DONE) {
		enum core_verdict v = send_finish(c, op);
		op_put(c, op);
		return v;
	}
	/* The answer comes later. A copy that fails cannot be undone (the
	 * store has the send): the events are then left to the queues. */
	if (!op_keep(c, op, payload, len)) {
		core_log(c, CORE_LOG_ERR, "out of memory keeping a send of %s in flight", from->addr);
		op->n = 0;
		op->req.cid_raw = NULL;
		op->req.cid_raw_len = 0;
		op->req.body = op->req.bodies = NULL;
		op->req.has_body = false;
		op->dev = NULL;
		op->kept = true;
	}
	send_state *s = &c->send;
	if (s->running) {
		/* a waiting send run at the front: it stays there, with its ack */
		op->has_ack = s->running->has_ack;
		op->conn_id = s->running->conn_id;
		op->mid = s->running->mid;
		s->running->has_ack = false;
		op_push(c, op, true);
	} else {
		op_push(c, op, false);
		s->begun = op;
	}
	return CORE_PENDING;
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

/* A send that arrives while another is in flight waits behind it: its
 * payload and target are copied into an op, run by send_drain. */
static enum core_verdict send_wait(core *c, device *from, const topic *t, const uint8_t *payload,
                                   size_t len, int qos)
{
	send_op *op = op_get(c, from);
	if (!op || !op_copy(op, 0, payload, len) || !op_copy(op, len, t->a, t->alen)) {
		if (op)
			op_put(c, op);
		core_log(c, CORE_LOG_ERR, "out of memory queueing a send of %s", from->addr);
		return ev_refuse(c, from, REFUSE_STORE, "the message could not be stored");
	}
	op->state = OP_WAITING;
	op->kind = t->kind;
	op->plen = len;
	op->tlen = t->alen;
	op->qos = qos;
	op_push(c, op, false);
	c->send.begun = op;
	return CORE_PENDING;
}

static enum core_verdict send_run(core *c, device *from, const topic *t, const uint8_t *payload,
                                  size_t len, int qos)
{
	send_req req;
	refusal why;
	char dmconv[CHAT_CONV_MAX + 1];
	const char *conv = dmconv;
	group *g;
	size_t n;
	if (!send_begin(c, from, payload, len, qos, &req, &why))
		return refuse(c, from, &req, &why);
	if (t->kind == T_DM) {
		if (!dm_target(c, from, t, dmconv, &n, &why))
			return refuse(c, from, &req, &why);
	} else {
		if (!group_target(c, from, t, &g, &n, &why))
			return refuse(c, from, &req, &why);
		conv = g->conv;
	}
	return send_conv(c, from, &req, conv, n, payload, len);
}

/* Runs what reached the front of the sends in flight, in order, until one
 * is still waiting for the store. */
static void send_drain(core *c)
{
	send_state *s = &c->send;
	if (s->draining)
		return;
	s->draining = true;
	send_op *op;
	while ((op = s->head) && op->state != OP_STORING) {
		s->head = op->next;
		if (!s->head)
			s->tail = NULL;
		if (op->state == OP_DONE) {
			(void)send_finish(c, op);
		} else {
			device *from = dir_device(&c->dir, op->from, strlen(op->from));
			topic t = { .kind = op->kind, .a = (const char *)op->buf + op->plen, .alen = op->tlen };
			enum core_verdict v = CORE_DENY;
			s->running = op;
			if (from)
				v = send_run(c, from, &t, op->buf, op->plen, op->qos);
			s->running = NULL;
			op_ack(c, op, v == CORE_ALLOW || v == CORE_PENDING); /* if still held */
		}
		op_put(c, op);
	}
	s->draining = false;
}

void send_poll(core *c)
{
	if (c->send.be.poll)
		c->send.be.poll(c->send.be.ctx);
}

enum core_verdict send_dm(core *c, device *from, const topic *t, const uint8_t *payload, size_t len,
                          int qos, bool retain)
{
	(void)retain;
	if (c->send.head && !c->send.running)
		return send_wait(c, from, t, payload, len, qos);
	return send_run(c, from, t, payload, len, qos);
}

enum core_verdict send_group(core *c, device *from, const topic *t, const uint8_t *payload,
                             size_t len, int qos)
{
	if (c->send.head && !c->send.running)
		return send_wait(c, from, t, payload, len, qos);
	return send_run(c, from, t, payload, len, qos);
}
