// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* receipts.c — delivered and read receipts (chat/receipt).
 *
 * A receipt {s, conv, seqs} from a device does two things. For the device,
 * it acknowledges delivery: the messages leave its offline queue (read
 * implies delivered) and its flow window refills (flow.c). For the conversation,
 * it moves each message's state for the reader's user forward only (sent →
 * delivered → read; the store ignores repeats and backward moves), and
 * every change reaches all devices of the message's sender: live, or
 * queued for those offline or replaying. A user with read receipts off
 * sends none (their reads count as deliveries) and receives none (a read
 * reaches them as a delivery, so they still get their second tick).
 *
 * On a broker with broker-patches/ a device's PUBACK of a msg or group event
 * in its inbox counts as its delivered receipt for that seq (broker_events.c), so a
 * client with nothing but an MQTT library gets ✓✓; app receipts still work,
 * and a second receipt for the same seq changes nothing. Those PUBACKs are
 * gathered per device and conversation into one receipt (below).
 */
#include "core_internal.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

typedef struct receipt_scratch {
	uint64_t seqs[RECEIPT_MAX_SEQS];
	uint64_t qseqs[RECEIPT_MAX_SEQS];
	char from[RECEIPT_MAX_SEQS][CHAT_ADDR_MAX + 1];
	bool changed[RECEIPT_MAX_SEQS];
	enum store_rstate prev[RECEIPT_MAX_SEQS];
	bool done[RECEIPT_MAX_SEQS];
	uint64_t out[RECEIPT_MAX_SEQS]; /* one sender's seqs, for its event */
} receipt_scratch;

/* Is the device's user one of the conversation's members (of a group:
 * now)? *is_group tells a group conversation. */
static bool member(core *c, const device *dev, const char *conv, size_t len, bool *is_group)
{
	const char *a, *b;
	size_t al, bl;
	size_t ul = strlen(dev->user->name);
	enum chat_conv_kind k = chat_parse_conv(conv, len, &a, &al, &b, &bl);
	*is_group = k == CHAT_CONV_GROUP;
	if (k == CHAT_CONV_GROUP) {
		group *g = group_find(c, a, al);
		return g && group_has(g, dev->user->name, ul);
	}
	if (k != CHAT_CONV_DM)
		return false;
	return (al == ul && memcmp(a, dev->user->name, ul) == 0) ||
	       (bl == ul && memcmp(b, dev->user->name, ul) == 0);
}

static bool read_receipts_on(core *c, const char *user)
{
	store_prefs p;
	return store_prefs_get(c->st, user, &p) != CHAT_OK || p.read_receipts;
}

static bool same_sender(const receipt_scratch *rs, size_t i, size_t j, size_t ul)
{
	return chat_addr_user_len(rs->from[j]) == ul && memcmp(rs->from[j], rs->from[i], ul) == 0;
}

/* One receipt event per sender user, with the seqs whose state moved. */
static void notify_senders(core *c, const device *reader, const char *conv, size_t n,
                           const char *state, receipt_scratch *rs)
{
	uint64_t now = c->io.now_ms(c->io.ctx);
	memset(rs->done, 0, n * sizeof(rs->done[0]));
	for (size_t i = 0; i < n; i++) {
		if (!rs->changed[i] || rs->done[i] || !rs->from[i][0])
			continue;
		size_t ul = chat_addr_user_len(rs->from[i]);
		user *sender = dir_user(&c->dir, rs->from[i], ul);
		/* A sender with read receipts off still learns of the delivery, once:
		 * seqs it already knew as delivered are left out. */
		const char *s_out = state;
		if (sender && strcmp(state, "read") == 0 && !read_receipts_on(c, sender->name)) {
			s_out = "delivered";
			for (size_t j = i; j < n; j++)
				if (same_sender(rs, i, j, ul) && rs->prev[j] >= STORE_R_DELIVERED)
					rs->changed[j] = false;
		}
		size_t count = 0;
		for (size_t j = i; j < n; j++) {
			if (rs->changed[j] && !rs->done[j] && same_sender(rs, i, j, ul)) {
				rs->out[count++] = rs->seqs[j];
				rs->done[j] = true;
			}
		}
		if (!sender || count == 0)
			continue;
		/* To every device of the sender: the v1 receipt event, or merged
		 * into a v2 device's confirmations, or gathered for it (gather.c). */
		gather_receipt(c, sender, conv, s_out, rs->out, count, reader->user->name, now);
	}
}

/* A refusal: told to the device as an `error` event, unless quiet (the
 * device asked nothing: its PUBACK acknowledged an event). */
static enum core_verdict refuse(core *c, device *from, bool quiet, enum refusal_code code,
                                const char *msg)
{
	if (quiet) {
		core_log(c, CORE_LOG_DEBUG, "acknowledgement by %s ignored: %s", from->addr, msg);
		return CORE_DENY;
	}
	return ev_refuse(c, from, code, "%s", msg);
}

/* Applies `from`'s receipt (state "delivered" or "read") for rs->seqs[0..n)
 * of conversation cv: its queue, its flow window, the messages' states and
 * their senders' receipt events. */
static enum core_verdict apply(core *c, device *from, const char *cv, size_t convlen,
                               const char *state, size_t n, receipt_scratch *rs, bool quiet)
{
	bool is_group;
	bool is_member = member(c, from, cv, convlen, &is_group);
	if (!is_member && !is_group)
		return refuse(c, from, quiet, REFUSE_CONV, "not a conversation of this device's user");

	/* The state a member's receipt moves the messages to. */
	enum store_rstate st = STORE_R_DELIVERED;
	if (is_member && strcmp(state, "read") == 0) {
		if (read_receipts_on(c, from->user->name))
			st = STORE_R_READ;
		else
			state = "delivered"; /* reads stay private; they still deliver */
	}
	/* Delivery for this device (its queue), and for a member the messages'
	 * states too, in one batch. */
	store_receipt r = { .conv = cv, .seqs = rs->seqs, .n = n, .state = st,
	                    .qseqs_out = rs->qseqs, .from_out = rs->from, .changed = rs->changed,
	                    .prev_out = rs->prev };
	int rc = is_member ? store_deliver(c->st, from->addr, &r)
	                   : store_ack(c->st, from->addr, cv, rs->seqs, n, rs->qseqs);
	if (rc) {
		core_log(c, CORE_LOG_ERR, "receipt from %s failed: %s", from->addr, store_errmsg(c->st));
		return refuse(c, from, quiet, REFUSE_STORE, "the receipt could not be stored");
	}
	uint64_t in_window = 0, acked = 0;
	for (size_t k = 0; k < n; k++) {
		in_window += flow_counted(from, rs->qseqs[k]);
		acked += rs->qseqs[k] != 0;
	}
	/* A former member still clears what is queued for it (its removal
	 * event at least) but moves no state; anyone else is refused. */
	if (!is_member) {
		if (!acked)
			return refuse(c, from, quiet, REFUSE_CONV,
			              "not a conversation of this device's user");
		flow_acked(c, from, in_window);
		return CORE_ALLOW;
	}
	notify_senders(c, from, cv, n, state, rs);
	flow_acked(c, from, in_window);
	return CORE_ALLOW;
}

static receipt_scratch rs; /* ~130 KiB: kept off the broker's stack */

/* Delivered on PUBACK (broker_events.c). mosquitto handles one packet per client
 * and loop pass, so a device's PUBACKs come one per pass; applied one by
 * one, each would be a WriteBatch of its own and a `receipt` event to the
 * sender, costing more than the PUBACK itself. So a device's consecutive
 * PUBACKs of one conversation gather into a run, applied as one receipt
 * (one batch, one event per sender, as an app batches its receipts) when:
 * the device acknowledges another conversation, or its run is full; the
 * device publishes, replays, disconnects or is removed; all runs once the
 * oldest is plugin_opt_delivered_gather_ms old (the tick), or when every
 * run is taken; the core closes. With gather 0 every PUBACK is applied
 * at once. */

static void apply_run(core *c, ack_run *r)
{
	memcpy(rs.seqs, r->seqs, r->n * sizeof(rs.seqs[0]));
	if (apply(c, r->dev, r->conv, r->convlen, "delivered", r->n, &rs, true) == CORE_ALLOW)
		c->n.acks_delivered += r->n;
}

void receipts_flush_dev_run(core *c, device *dev)
{
	ack_runs *a = &c->acks;
	uint32_t i = dev->ackrun - 1u;
	apply_run(c, &a->run[i]); /* nothing it does comes back to the runs */
	dev->ackrun = 0;
	if (i != --a->used) {
		a->run[i] = a->run[a->used];
		a->run[i].dev->ackrun = (uint8_t)(i + 1);
	}
}

void receipts_flush_all(core *c)
{
	ack_runs *a = &c->acks;
	for (uint32_t i = 0; i < a->used; i++) {
		apply_run(c, &a->run[i]);
		a->run[i].dev->ackrun = 0;
	}
	a->used = 0;
}

/* The gather window's end, for the PUBACK runs here and for the v2
 * devices' events (gather.c), in that order: the runs' deliveries merge
 * into the confirmations still gathered. */
void receipts_tick(core *c, uint64_t now_ms)
{
	if (c->acks.used && now_ms - c->acks.since_ms >= c->cfg.delivered_gather_ms)
		receipts_flush_all(c);
	gather_tick(c, now_ms);
}

void receipts_acked(core *c, device *from, const char *conv, size_t convlen, uint64_t seq)
{
	if (convlen > CHAT_CONV_MAX || seq == 0)
		return;
	ack_runs *a = &c->acks;
	if (from->ackrun) {
		ack_run *r = &a->run[from->ackrun - 1];
		if (r->convlen != convlen || memcmp(r->conv, conv, convlen) != 0 || r->n == ACK_RUN_SEQS)
			receipts_flush_dev_run(c, from);
	}
	if (!from->ackrun) {
		if (a->used == ACK_RUNS)
			receipts_flush_all(c);
		if (!a->used)
			a->since_ms = c->io.now_ms(c->io.ctx);
		ack_run *r = &a->run[a->used++];
		from->ackrun = (uint8_t)a->used;
		r->dev = from;
		r->convlen = convlen;
		memcpy(r->conv, conv, convlen);
		r->conv[convlen] = '\0';
		r->n = 0;
	}
	ack_run *r = &a->run[from->ackrun - 1];
	r->seqs[r->n++] = seq;
	if (c->cfg.delivered_gather_ms == 0)
		receipts_flush_dev_run(c, from);
}

enum core_verdict receipts_handle(core *c, device *from, const uint8_t *payload, size_t len)
{
	cbr_fields f;
	const char *state = NULL, *conv = NULL;
	size_t convlen = 0, n = 0;
	bool have_seqs = false;

	cbr_fields_open(&f, payload, len, NULL);
	while (cbr_fields_next(&f)) {
		const cbr_item *val = &f.val;
		if (cbr_eq(&f.key, "s")) {
			if (cbr_eq(val, "delivered") && val->type == CBR_TEXT)
				state = "delivered";
			else if (cbr_eq(val, "read") && val->type == CBR_TEXT)
				state = "read";
			else
				return ev_refuse(c, from, REFUSE_FIELD,
				                 "s must be \"delivered\" or \"read\"");
		} else if (cbr_eq(&f.key, "conv")) {
			if (val->type != CBR_TEXT || val->len > CHAT_CONV_MAX)
				return ev_refuse(c, from, REFUSE_FIELD, "conv must be a conversation id");
			conv = (const char *)val->ptr;
			convlen = val->len;
		} else if (cbr_eq(&f.key, "seqs")) {
			if (val->type != CBR_ARRAY)
				return ev_refuse(c, from, REFUSE_FIELD,
				                 "seqs must be an array of 1 to 1000 seqs");
			uint64_t k = 0;
			n = 0;
			while (cbr_array_next(&f.r, val, &k)) {
				cbr_item s;
				if (cbr_next(&f.r, &s))
					break;
				if (s.type != CBR_UINT || s.u == 0 || n == RECEIPT_MAX_SEQS)
					return ev_refuse(c, from, REFUSE_FIELD,
					                 "seqs must be an array of 1 to 1000 seqs");
				rs.seqs[n++] = s.u;
			}
			have_seqs = true;
		} else {
			cbr_fields_skip(&f);
		}
	}
	const char *bad_cbor = cbr_fields_close(&f, NULL);
	if (bad_cbor)
		return ev_refuse(c, from, REFUSE_CBOR, "%s", bad_cbor);
	if (!state || !conv || !have_seqs || n == 0)
		return ev_refuse(c, from, REFUSE_FIELD, "a receipt needs s, conv and 1 to 1000 seqs");

	char cv[CHAT_CONV_MAX + 1];
	memcpy(cv, conv, convlen);
	cv[convlen] = '\0';
	enum core_verdict v = apply(c, from, cv, convlen, state, n, &rs, false);
	if (v == CORE_ALLOW)
		c->n.receipts_in++;
	return v;
}
