// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* ctl.c — a device's own requests on chat/ctl.
 *
 * Each request is {op, rid, …} and gets exactly one {k:"ctl", rid, ok, …}
 * event in the requesting device's inbox; refusals carry a code and a
 * reason. An undecodable request without a rid gets an `error` event.
 * group.* requests are decoded here and decided in groups.c, push.* in
 * push.c.
 */
#include "core_internal.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

typedef struct ctl_req {
	const uint8_t *op;
	size_t oplen;
	bool has_rid;
	uint64_t rid;
	/* privacy */
	bool has_rr, rr;
	bool has_presence;
	enum store_presence presence;
	/* devices, group.* */
	group_req g;
	/* push.register */
	const char *platform, *token, *mode;
	size_t platformlen, tokenlen, modelen;
	/* caps: the raw CBOR array */
	const uint8_t *caps;
	size_t capslen;
	const char *bad; /* a field's wrong type, refused with the rid */
} ctl_req;

static void reply_error(core *c, device *dev, const ctl_req *q, const refusal *why)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 5);
	cbw_text(w, "k"); cbw_text(w, "ctl");
	cbw_text(w, "rid"); cbw_uint(w, q->rid);
	cbw_text(w, "ok"); cbw_bool(w, false);
	cbw_text(w, "code"); cbw_text(w, refusal_code_name(why->code));
	cbw_text(w, "msg"); cbw_text(w, why->msg);
	ev_publish(c, dev, w);
}

/* A request there is no reply for (undecodable, or without a rid): an
 * `error` event instead. */
static enum core_verdict error_event(core *c, device *dev, enum refusal_code code, const char *msg)
{
	refusal why;
	refusal_set(&why, code, "%s", msg);
	ev_error(c, dev, &why, NULL, 0);
	return CORE_DENY;
}

static void reply_start(core *c, const ctl_req *q, size_t extra)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 3 + extra);
	cbw_text(w, "k"); cbw_text(w, "ctl");
	cbw_text(w, "rid"); cbw_uint(w, q->rid);
	cbw_text(w, "ok"); cbw_bool(w, true);
}

static bool op_privacy(core *c, device *dev, const ctl_req *q, refusal *why)
{
	store_prefs p;
	if (store_prefs_get(c->st, dev->user->name, &p) != CHAT_OK)
		return refusal_set(why, REFUSE_STORE, "settings could not be read");
	if (q->has_rr)
		p.read_receipts = q->rr;
	if (q->has_presence)
		p.presence = q->presence;
	if (store_prefs_set(c->st, dev->user->name, &p) != CHAT_OK)
		return refusal_set(why, REFUSE_STORE, "settings could not be stored");
	presence_pref_set(c, dev->user->name, p.presence);
	static const char *const pres[] = { "everyone", "contacts", "nobody" };
	reply_start(c, q, 2);
	cbw_text(&c->w, "read_receipts"); cbw_bool(&c->w, p.read_receipts);
	cbw_text(&c->w, "presence"); cbw_text(&c->w, pres[p.presence]);
	ev_publish(c, dev, &c->w);
	return true;
}

static bool op_devices(core *c, device *dev, const ctl_req *q, refusal *why)
{
	if (!q->g.has_user || !chat_valid_user(q->g.user, q->g.userlen))
		return refusal_set(why, REFUSE_FIELD, "user must be a user id");
	user *u = dir_user(&c->dir, q->g.user, q->g.userlen);
	reply_start(c, q, 1);
	cbw_text(&c->w, "devices");
	cbw_array(&c->w, u ? u->ndev : 0);
	for (size_t i = 0; u && i < u->ndev; i++)
		cbw_text(&c->w, u->dev[i]->id);
	ev_publish(c, dev, &c->w);
	return true;
}

/* The ok reply of a request with no result pairs. */
static bool reply_done(core *c, device *dev, const ctl_req *q)
{
	reply_start(c, q, 0);
	ev_publish(c, dev, &c->w);
	return true;
}

static bool op_push_register(core *c, device *dev, const ctl_req *q, refusal *why)
{
	return push_register(c, dev, q->platform, q->platformlen, q->mode, q->modelen, q->token,
	                     q->tokenlen, why) &&
	       reply_done(c, dev, q);
}

static bool op_push_unregister(core *c, device *dev, const ctl_req *q, refusal *why)
{
	return push_unregister(c, dev, why) && reply_done(c, dev, q);
}

static bool op_group(core *c, device *dev, const ctl_req *q, refusal *why)
{
	/* The result pairs in a buffer of their own: the request publishes
	 * group events through c->w meanwhile. */
	cbw out;
	cbw_init(&out);
	group_res res = { .out = &out, .why = why };
	bool ok = group_request(c, (const char *)q->op, q->oplen, dev->user->name, dev->addr, &q->g,
	                        &res);
	if (ok) {
		reply_start(c, q, res.npairs);
		cbw_raw(&c->w, out.buf, out.len);
		ev_publish(c, dev, &c->w);
	}
	cbw_free(&out);
	return ok;
}

static bool op_caps(core *c, device *dev, const ctl_req *q, refusal *why)
{
	uint32_t caps;
	if (!q->caps)
		return refusal_set(why, REFUSE_FIELD, "caps is required (an array of capability names)");
	if (!caps_parse(q->caps, q->capslen, &caps, why) || !caps_set(c, dev, caps, why))
		return false;
	reply_start(c, q, 2);
	caps_reply_pairs(c, &c->w, dev);
	ev_publish(c, dev, &c->w);
	return true;
}

/* Each handler publishes its own ok reply; false: refused (*why). */
static const struct {
	const char *name;
	bool (*fn)(core *c, device *dev, const ctl_req *q, refusal *why);
} ops[] = {
	{ "privacy", op_privacy },
	{ "devices", op_devices },
	{ "push.register", op_push_register },
	{ "push.unregister", op_push_unregister },
	{ "caps", op_caps },
	{ "group.create", op_group },
	{ "group.add", op_group },
	{ "group.remove", op_group },
	{ "group.leave", op_group },
	{ "group.admin", op_group },
	{ "group.info", op_group },
};

/* Decodes a request into *q; NULL, or why it is not a CBOR map. A
 * field of the wrong type is noted in q->bad for a refusal with the rid. */
static const char *parse(const uint8_t *payload, size_t len, ctl_req *q)
{
	memset(q, 0, sizeof(*q));
	cbr_fields f;
	cbr_fields_open(&f, payload, len, NULL);
	while (cbr_fields_next(&f)) {
		const cbr_item *key = &f.key, *val = &f.val;
		if (cbr_eq(key, "op") && val->type == CBR_TEXT) {
			q->op = val->ptr;
			q->oplen = val->len;
		} else if (cbr_eq(key, "rid") && val->type == CBR_UINT) {
			q->has_rid = true;
			q->rid = val->u;
		} else if (cbr_eq(key, "read_receipts")) {
			if (val->type != CBR_BOOL)
				q->bad = "read_receipts must be a boolean";
			q->has_rr = true;
			q->rr = val->b;
		} else if (cbr_eq(key, "presence")) {
			q->has_presence = true;
			if (val->type == CBR_TEXT && cbr_eq(val, "everyone"))
				q->presence = STORE_PRESENCE_EVERYONE;
			else if (val->type == CBR_TEXT && cbr_eq(val, "contacts"))
				q->presence = STORE_PRESENCE_CONTACTS;
			else if (val->type == CBR_TEXT && cbr_eq(val, "nobody"))
				q->presence = STORE_PRESENCE_NOBODY;
			else
				q->bad = "presence must be \"everyone\", \"contacts\" or \"nobody\"";
		} else if (cbr_eq(key, "user") && val->type == CBR_TEXT) {
			q->g.has_user = true;
			q->g.user = (const char *)val->ptr;
			q->g.userlen = val->len;
		} else if (cbr_eq(key, "gid") && val->type == CBR_TEXT) {
			q->g.has_gid = true;
			q->g.gid = (const char *)val->ptr;
			q->g.gidlen = val->len;
		} else if (cbr_eq(key, "name") && val->type == CBR_TEXT) {
			q->g.has_name = true;
			q->g.name = (const char *)val->ptr;
			q->g.namelen = val->len;
		} else if (cbr_eq(key, "members") && val->type == CBR_ARRAY) {
			if (cbr_skip(&f.r, val))
				break;
			q->g.members = f.at;
			q->g.members_len = (size_t)(f.r.p - f.at);
		} else if (cbr_eq(key, "platform") && val->type == CBR_TEXT) {
			q->platform = (const char *)val->ptr;
			q->platformlen = val->len;
		} else if (cbr_eq(key, "token") && val->type == CBR_TEXT) {
			q->token = (const char *)val->ptr;
			q->tokenlen = val->len;
		} else if (cbr_eq(key, "mode") && val->type == CBR_TEXT) {
			q->mode = (const char *)val->ptr;
			q->modelen = val->len;
		} else if (cbr_eq(key, "caps")) {
			/* checked by op_caps: a non-array is its refusal */
			if (cbr_skip(&f.r, val))
				break;
			q->caps = f.at;
			q->capslen = (size_t)(f.r.p - f.at);
		} else if (cbr_eq(key, "op") || cbr_eq(key, "rid") || cbr_eq(key, "user") ||
		           cbr_eq(key, "gid") || cbr_eq(key, "name") || cbr_eq(key, "members") ||
		           cbr_eq(key, "platform") || cbr_eq(key, "token") || cbr_eq(key, "mode")) {
			q->bad = "op must be text, rid an unsigned integer, user, gid, name, platform, token and mode text, members an array";
		} else {
			cbr_fields_skip(&f);
		}
	}
	return cbr_fields_close(&f, NULL);
}

enum core_verdict ctl_handle(core *c, device *dev, const uint8_t *payload, size_t len)
{
	ctl_req q;
	const char *cbor_err = parse(payload, len, &q);
	if (cbor_err)
		return error_event(c, dev, REFUSE_CBOR, cbor_err);
	if (!q.has_rid)
		return error_event(c, dev, REFUSE_FIELD, "a ctl request needs a rid (unsigned integer)");
	refusal why;
	bool ok;
	if (q.bad) {
		ok = refusal_set(&why, REFUSE_FIELD, "%s", q.bad);
	} else if (!q.op) {
		ok = refusal_set(&why, REFUSE_FIELD, "op is required");
	} else {
		size_t k = 0, n = sizeof(ops) / sizeof(ops[0]);
		while (k < n && !(strlen(ops[k].name) == q.oplen && memcmp(ops[k].name, q.op, q.oplen) == 0))
			k++;
		ok = k < n ? ops[k].fn(c, dev, &q, &why) : refusal_set(&why, REFUSE_OP, "unknown op");
	}
	if (ok)
		return CORE_ALLOW;
	reply_error(c, dev, &q, &why);
	return CORE_DENY;
}
