/* send.c — the send path: a device's message on chat/dm/{peer}.
 *
 * Runs inside the broker's MESSAGE callback, before the broker stores,
 * routes or acknowledges the PUBLISH: whatever this returns decides the
 * PUBACK/PUBREC. So the order is fixed — validate, deduplicate, store in one
 * WriteBatch, and only then let the acknowledgement go; deliveries to online
 * devices are queued behind it by the broker. Every refusal reaches the
 * sender as an inbox `error` event (MQTT 3.1.1 cannot see a refused PUBACK).
 * The payload is decoded in place: bodies are never copied before the store.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

#define MAX_RECIPIENTS (2 * CORE_MAX_DEVICES)

typedef struct body_entry {
	const char *addr;
	size_t alen;
	const uint8_t *body;
	size_t blen;
	bool matched;
} body_entry;

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
	body_entry ent[MAX_RECIPIENTS];
	size_t nent;
	bool has_type;
	uint64_t type;
	bool has_ttl;
	uint64_t ttl;
} send_req;

static enum core_verdict refuse(core *c, device *from, const send_req *req, const char *code,
                                const char *msg)
{
	c->n.msgs_refused++;
	core_log(c, CORE_LOG_INFO, "refused a send from %s: %s (%s)", from->addr, code, msg);
	ev_error(c, from, code, msg, req && req->has_cid ? req->cid_raw : NULL,
	         req && req->has_cid ? req->cid_raw_len : 0);
	return CORE_DENY;
}

/* Decodes the bodies map in place; an error message or NULL. */
static const char *parse_bodies(cbr *r, const cbr_item *map, send_req *req)
{
	uint64_t i = 0;
	cbr_item key, val;
	while (cbr_map_next(r, map, &i, &key)) {
		if (cbr_next(r, &val))
			return NULL;
		if (val.type != CBR_BYTES)
			return "every value of bodies must be a byte string";
		if (req->nent == MAX_RECIPIENTS)
			return "bodies has more entries than any send can have recipients";
		req->ent[req->nent++] = (body_entry){ (const char *)key.ptr, key.len, val.ptr, val.len, false };
	}
	return NULL;
}

/* Fills req from the payload; on failure returns the error code and sets *msg. */
static const char *parse_send(const uint8_t *p, size_t len, send_req *req, const char **msg)
{
	cbr r;
	cbr_item map, key, val;
	cbr_init(&r, p, len);
	if (cbr_next(&r, &map) || map.type != CBR_MAP) {
		*msg = r.err_msg ? r.err_msg : "the payload must be a CBOR map";
		return "cbor";
	}
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		const uint8_t *at = r.p;
		if (cbr_next(&r, &val))
			break;
		if (cbr_eq(&key, "cid")) {
			if (val.type == CBR_UINT) {
				req->cid = (store_cid){ .is_uint = true, .u = val.u };
			} else if (val.type == CBR_BYTES && val.len >= 1 && val.len <= STORE_CID_MAX) {
				req->cid = (store_cid){ .is_uint = false, .len = val.len };
				memcpy(req->cid.bytes, val.ptr, val.len);
			} else {
				*msg = "cid must be a byte string of 1 to 16 bytes or an unsigned integer";
				return "field";
			}
			req->has_cid = true;
			req->cid_raw = at;
			req->cid_raw_len = (size_t)(r.p - at);
		} else if (cbr_eq(&key, "body")) {
			if (val.type != CBR_BYTES) {
				*msg = "body must be a byte string";
				return "field";
			}
			req->has_body = true;
			req->body = val.ptr;
			req->body_len = val.len;
		} else if (cbr_eq(&key, "bodies")) {
			if (val.type != CBR_MAP) {
				*msg = "bodies must be a map of device address to byte string";
				return "field";
			}
			req->nent = 0;
			const char *e = parse_bodies(&r, &val, req);
			if (e) {
				*msg = e;
				return "field";
			}
			req->bodies = at;
			req->bodies_len = (size_t)(r.p - at);
		} else if (cbr_eq(&key, "type") || cbr_eq(&key, "ttl")) {
			if (val.type != CBR_UINT) {
				*msg = cbr_eq(&key, "type") ? "type must be an unsigned integer"
				                            : "ttl must be an unsigned integer";
				return "field";
			}
			if (cbr_eq(&key, "type")) {
				req->has_type = true;
				req->type = val.u;
			} else {
				req->has_ttl = true;
				req->ttl = val.u;
			}
		} else if (cbr_skip(&r, &val)) {
			break;
		}
	}
	if (r.err_msg || !cbr_done(&r)) {
		*msg = r.err_msg ? r.err_msg : "trailing bytes after the CBOR map";
		return "cbor";
	}
	if (!req->has_cid) {
		*msg = "cid is required";
		return "field";
	}
	if (req->has_body == (req->bodies != NULL)) {
		*msg = "exactly one of body and bodies is required";
		return "field";
	}
	return NULL;
}

/* Recipients: the peer's devices, then the sender's other devices. */
static size_t recipients(const user *peer, const device *from, device **to)
{
	size_t n = 0;
	for (size_t i = 0; i < peer->ndev; i++)
		to[n++] = peer->dev[i];
	for (size_t i = 0; i < from->user->ndev; i++)
		if (from->user->dev[i] != from)
			to[n++] = from->user->dev[i];
	return n;
}

/* Matches bodies against the recipients; on a mismatch sends the `devices`
 * error (listing missing and extra addresses) and returns false. */
static bool match_bodies(core *c, device *from, send_req *req, device **to, size_t n,
                         const uint8_t **body, size_t *blen)
{
	size_t missing = 0, extra = 0;
	for (size_t i = 0; i < n; i++) {
		size_t al = strlen(to[i]->addr);
		body[i] = NULL;
		for (size_t j = 0; j < req->nent; j++) {
			body_entry *e = &req->ent[j];
			if (!e->matched && e->alen == al && memcmp(e->addr, to[i]->addr, al) == 0) {
				e->matched = true;
				body[i] = e->body;
				blen[i] = e->blen;
				break;
			}
		}
		missing += body[i] == NULL;
	}
	for (size_t j = 0; j < req->nent; j++)
		extra += !req->ent[j].matched;
	if (!missing && !extra)
		return true;

	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 6);
	cbw_text(w, "k"); cbw_text(w, "error");
	cbw_text(w, "code"); cbw_text(w, "devices");
	cbw_text(w, "msg"); cbw_text(w, "bodies does not name exactly the current devices");
	cbw_text(w, "cid"); cbw_raw(w, req->cid_raw, req->cid_raw_len);
	cbw_text(w, "missing");
	cbw_array(w, missing);
	for (size_t i = 0; i < n; i++)
		if (!body[i])
			cbw_text(w, to[i]->addr);
	cbw_text(w, "extra");
	cbw_array(w, extra);
	for (size_t j = 0; j < req->nent; j++)
		if (!req->ent[j].matched)
			cbw_textn(w, req->ent[j].addr, req->ent[j].alen);
	c->n.msgs_refused++;
	c->n.errors_out++;
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
	ev_sent(&c->w, &req->cid, conv, seq, ts);
	ev_publish(c, from, &c->w);
	return CORE_ALLOW;
}

enum core_verdict send_dm(core *c, device *from, const topic *t, const uint8_t *payload, size_t len,
                          int qos, bool retain)
{
	(void)retain;
	if (qos == 0)
		return refuse(c, from, NULL, "qos", "sends need QoS 1 or 2");
	if (len > c->cfg.max_body) {
		char msg[128];
		snprintf(msg, sizeof(msg), "the payload of %zu bytes is over the limit of %u bytes", len,
		         c->cfg.max_body);
		return refuse(c, from, NULL, "size", msg);
	}
	send_req req;
	memset(&req, 0, sizeof(req));
	const char *emsg = NULL;
	const char *code = parse_send(payload, len, &req, &emsg);
	if (code)
		return refuse(c, from, &req, code, emsg);

	if (!chat_valid_user(t->a, t->alen))
		return refuse(c, from, &req, "peer", "the peer is not a valid user id");
	const user *me = from->user;
	if (t->alen == strlen(me->name) && memcmp(t->a, me->name, t->alen) == 0)
		return refuse(c, from, &req, "peer", "a conversation needs two different users");
	user *peer = dir_user(&c->dir, t->a, t->alen);
	if (!peer)
		return refuse(c, from, &req, "peer", "no such user");

	char conv[CHAT_CONV_MAX + 1];
	chat_dm_conv(conv, me->name, strlen(me->name), peer->name, strlen(peer->name));

	uint64_t seq;
	char first_conv[CHAT_CONV_MAX + 1];
	int rc = store_dedup_get(c->st, from->addr, &req.cid, first_conv, &seq);
	if (rc == CHAT_OK)
		return answer_duplicate(c, from, &req, first_conv, seq);
	if (rc != CHAT_ENOTFOUND) {
		core_log(c, CORE_LOG_ERR, "dedup lookup failed for %s: %s", from->addr, store_errmsg(c->st));
		return refuse(c, from, &req, "store", "the message could not be stored");
	}

	device *to[MAX_RECIPIENTS];
	const uint8_t *bodies[MAX_RECIPIENTS];
	size_t blens[MAX_RECIPIENTS];
	size_t n = recipients(peer, from, to);
	if (req.bodies && !match_bodies(c, from, &req, to, n, bodies, blens))
		return CORE_DENY;

	uint64_t now = c->io.now_ms(c->io.ctx);
	uint64_t ttl = req.has_ttl && req.ttl > 0 && req.ttl < c->cfg.offline_ttl_s ? req.ttl
	                                                                           : c->cfg.offline_ttl_s;
	store_msg m = {
		.conv = conv, .from = from->addr, .cid = req.cid, .ts = now, .expires = now + ttl * 1000,
		.has_type = req.has_type, .type = req.type,
		.body = req.has_body ? req.body : NULL, .body_len = req.body_len,
		.bodies = req.bodies, .bodies_len = req.bodies_len,
	};
	const char *addrs[MAX_RECIPIENTS];
	for (size_t i = 0; i < n; i++)
		addrs[i] = to[i]->addr;
	rc = store_send(c->st, &m, addrs, n, c->cfg.max_queue, &seq);
	if (rc == CHAT_EQUOTA)
		return refuse(c, from, &req, "quota", "a recipient's offline queue is full");
	if (rc) {
		core_log(c, CORE_LOG_ERR, "storing a message from %s failed: %s", from->addr,
		         store_errmsg(c->st));
		return refuse(c, from, &req, "store", "the message could not be stored");
	}
	c->n.msgs_stored++;

	ev_sent(&c->w, &req.cid, conv, seq, now);
	ev_publish(c, from, &c->w);
	if (req.has_body) {
		ev_msg(&c->w, &m, seq, req.body, req.body_len, false);
		ev_msg(&c->w2, &m, seq, req.body, req.body_len, true);
		for (size_t i = 0; i < n; i++)
			if (dev_live(to[i]))
				ev_publish(c, to[i], to[i]->user == me ? &c->w2 : &c->w);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!dev_live(to[i]))
				continue; /* queued: a replaying device gets it in order */
			ev_msg(&c->w, &m, seq, bodies[i], blens[i], to[i]->user == me);
			ev_publish(c, to[i], &c->w);
		}
	}
	return CORE_ALLOW;
}
