// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* clientev.c — decoders of the protocol v2 inbox events (clientev.h).
 *
 * Each decoder walks the event twice: once to check all of it (no
 * callback), once to hand out its parts. An event that is malformed
 * anywhere is refused whole before anything is applied, so a client never
 * shows half of a `sents` or of a `batch`.
 */
#include "clientev.h"
#include "err.h"
#include "ids.h"

#include <string.h>

#define CONV_MAX 80             /* "dm:A:B" of two 64-byte ids, with room */

static const char *const cap_names[] = {
#define CEV_NAME(id, name) name,
	CEV_CAPS(CEV_NAME)
#undef CEV_NAME
};

const char *cev_cap_name(unsigned i)
{
	return i < CEV_NCAPS ? cap_names[i] : NULL;
}

static const char *rd_err(const cbr *r, const char *fallback)
{
	return r->err_msg ? r->err_msg : fallback;
}

/* Reads the elements of array header arr as user ids. */
static const char *read_uids(cbr *r, const cbr_item *arr, cbr_item *out, size_t *n,
                             const char *what)
{
	uint64_t i = 0;
	*n = 0;
	if (arr->type != CBR_ARRAY)
		return what;
	while (cbr_array_next(r, arr, &i)) {
		cbr_item it;
		if (cbr_next(r, &it) != CHAT_OK)
			return rd_err(r, what);
		if (it.type != CBR_TEXT || !chat_valid_user((const char *)it.ptr, it.len))
			return what;
		if (*n == CEV_LIST_MAX)
			return "a list has more than 1024 entries";
		out[(*n)++] = it;
	}
	return r->err_msg;
}

static const char *read_seqs(cbr *r, const cbr_item *arr, uint64_t *out, size_t *n)
{
	uint64_t i = 0;
	*n = 0;
	if (arr->type != CBR_ARRAY)
		return "seqs is not an array";
	while (cbr_array_next(r, arr, &i)) {
		cbr_item it;
		if (cbr_next(r, &it) != CHAT_OK)
			return rd_err(r, "seqs is malformed");
		if (it.type != CBR_UINT || it.u == 0)
			return "a seq is not a positive integer";
		if (*n == CEV_LIST_MAX)
			return "a list has more than 1024 entries";
		out[(*n)++] = it.u;
	}
	return r->err_msg;
}

static bool good_conv(const cbr_item *v)
{
	return v->type == CBR_TEXT && v->len > 0 && v->len <= CONV_MAX;
}

/* Checks the `k` of a top-level field. */
static const char *want_k(const cbr_item *v, const char *k)
{
	return v->type == CBR_TEXT && cbr_eq(v, k) ? NULL : "the event is of another kind";
}

/* ---- sents ---- */

static const char *read_sent(cbr *r, cev_sent *s)
{
	cbr_item map, key, v;
	uint64_t i = 0;
	bool has_cid = false, has_seq = false;
	memset(&s->cid, 0, sizeof s->cid);
	memset(&s->conv, 0, sizeof s->conv);
	s->seq = s->ts = 0;
	s->ndl = 0;
	if (cbr_next(r, &map) != CHAT_OK)
		return rd_err(r, "an item is malformed");
	if (map.type != CBR_MAP)
		return "an item is not a map";
	while (cbr_map_next(r, &map, &i, &key)) {
		if (cbr_next(r, &v) != CHAT_OK)
			return rd_err(r, "an item is malformed");
		const char *bad = NULL;
		if (cbr_eq(&key, "cid")) {
			if (!(v.type == CBR_UINT || (v.type == CBR_BYTES && v.len >= 1 && v.len <= 16)))
				bad = "cid is neither 1..16 bytes nor an integer";
			s->cid = v;
			has_cid = true;
		} else if (cbr_eq(&key, "conv")) {
			if (!good_conv(&v))
				bad = "conv is not a conversation id";
			s->conv = v;
		} else if (cbr_eq(&key, "seq")) {
			if (v.type != CBR_UINT || v.u == 0)
				bad = "seq is not a positive integer";
			s->seq = v.u;
			has_seq = true;
		} else if (cbr_eq(&key, "ts")) {
			if (v.type != CBR_UINT)
				bad = "ts is not an integer";
			s->ts = v.u;
		} else if (cbr_eq(&key, "dl")) {
			bad = read_uids(r, &v, s->dl, &s->ndl, "dl is not a list of user ids");
		} else if (cbr_skip(r, &v) != CHAT_OK) {
			bad = rd_err(r, "an item is malformed");
		}
		if (bad)
			return bad;
	}
	if (r->err_msg)
		return r->err_msg;
	if (!has_cid || !has_seq || s->conv.type != CBR_TEXT)
		return "an item lacks cid, conv or seq";
	return NULL;
}

/* A decoder's answer: CHAT_EINVAL with *why (when asked) the first thing wrong. */
static int verdict(const char *bad, const char **why)
{
	if (why)
		*why = bad;
	return bad ? CHAT_EINVAL : CHAT_OK;
}

/* An event of k and one list (sents: items, batch: evs), other fields
 * skipped: elem reads each element (its first error is the answer). */
typedef const char *(*list_elem_fn)(cbr *r, void *ud);

struct list_kind {
	const char *k, *list, *not_array, *empty;
};

static const char *list_pass(const uint8_t *p, size_t len, const struct list_kind *lk, list_elem_fn elem,
                             void *ud)
{
	cbr_fields f;
	bool has_k = false;
	size_t n = 0;
	cbr_fields_open(&f, p, len, "the event is not a CBOR map");
	while (cbr_fields_next(&f)) {
		const char *bad = NULL;
		if (cbr_eq(&f.key, "k")) {
			bad = want_k(&f.val, lk->k);
			has_k = true;
		} else if (cbr_eq(&f.key, lk->list)) {
			if (f.val.type != CBR_ARRAY)
				return lk->not_array;
			uint64_t i = 0;
			while (!bad && cbr_array_next(&f.r, &f.val, &i)) {
				bad = elem(&f.r, ud);
				n++;
			}
			if (!bad)
				bad = f.r.err_msg;
		} else {
			cbr_fields_skip(&f);
		}
		if (bad)
			return bad;
	}
	const char *bad = cbr_fields_close(&f, NULL);
	if (bad)
		return bad;
	if (!has_k)
		return "the event has no k";
	return n ? NULL : lk->empty;
}

static const struct list_kind SENTS = { "sents", "items", "items is not an array", "a sents event without items" };

struct sents_ud {
	cev_sent *s;
	cev_sent_fn fn;
	void *ctx;
};

static const char *sent_elem(cbr *r, void *ud)
{
	struct sents_ud *u = ud;
	const char *bad = read_sent(r, u->s);
	if (!bad && u->fn)
		u->fn(u->ctx, u->s);
	return bad;
}

int cev_sents(const uint8_t *p, size_t len, cev_sent *s, cev_sent_fn fn, void *ctx,
              const char **why)
{
	struct sents_ud check = { s, NULL, NULL }, each = { s, fn, ctx };
	const char *bad = list_pass(p, len, &SENTS, sent_elem, &check);
	if (!bad && fn)
		bad = list_pass(p, len, &SENTS, sent_elem, &each);
	return verdict(bad, why);
}

/* ---- rcpts ---- */

static const char *read_set(cbr *r, cev_rset *set)
{
	cbr_item map, key, v;
	uint64_t i = 0;
	bool has_seqs = false, has_by = false;
	set->nseqs = set->nby = 0;
	if (cbr_next(r, &map) != CHAT_OK)
		return rd_err(r, "a set is malformed");
	if (map.type != CBR_MAP)
		return "a set is not a map";
	while (cbr_map_next(r, &map, &i, &key)) {
		if (cbr_next(r, &v) != CHAT_OK)
			return rd_err(r, "a set is malformed");
		const char *bad = NULL;
		if (cbr_eq(&key, "seqs")) {
			bad = read_seqs(r, &v, set->seqs, &set->nseqs);
			has_seqs = true;
		} else if (cbr_eq(&key, "by")) {
			bad = read_uids(r, &v, set->by, &set->nby, "by is not a list of user ids");
			has_by = true;
		} else if (cbr_skip(r, &v) != CHAT_OK) {
			bad = rd_err(r, "a set is malformed");
		}
		if (bad)
			return bad;
	}
	if (r->err_msg)
		return r->err_msg;
	if (!has_seqs || !has_by || !set->nseqs || !set->nby)
		return "a set lacks seqs or by";
	return NULL;
}

static const char *rcpts_pass(const uint8_t *p, size_t len, cev_rcpts *h, cev_rset *set,
                              cev_rset_fn fn, void *ctx)
{
	cbr_fields f;
	bool has_k = false;
	size_t sets = 0;
	if (!fn)
		memset(h, 0, sizeof *h);
	cbr_fields_open(&f, p, len, "the event is not a CBOR map");
	while (cbr_fields_next(&f)) {
		const char *bad = NULL;
		if (cbr_eq(&f.key, "k")) {
			bad = want_k(&f.val, "rcpts");
			has_k = true;
		} else if (cbr_eq(&f.key, "conv")) {
			if (!good_conv(&f.val))
				bad = "conv is not a conversation id";
			if (!fn)
				h->conv = f.val;
		} else if (cbr_eq(&f.key, "s")) {
			if (f.val.type != CBR_TEXT || !(cbr_eq(&f.val, "delivered") ||
			                                 cbr_eq(&f.val, "read") ||
			                                 cbr_eq(&f.val, "expired")))
				bad = "s is not delivered, read or expired";
			if (!fn)
				h->s = f.val;
		} else if (cbr_eq(&f.key, "ts")) {
			if (f.val.type != CBR_UINT)
				bad = "ts is not an integer";
			if (!fn)
				h->ts = f.val.u;
		} else if (cbr_eq(&f.key, "sets")) {
			if (f.val.type != CBR_ARRAY)
				return "sets is not an array";
			uint64_t i = 0;
			while (!bad && cbr_array_next(&f.r, &f.val, &i)) {
				bad = read_set(&f.r, set);
				if (!bad && fn)
					fn(ctx, h, set);
				sets++;
			}
			if (!bad)
				bad = f.r.err_msg;
		} else {
			cbr_fields_skip(&f);
		}
		if (bad)
			return bad;
	}
	const char *bad = cbr_fields_close(&f, NULL);
	if (bad)
		return bad;
	if (!has_k || h->conv.type != CBR_TEXT || h->s.type != CBR_TEXT)
		return "the event lacks k, conv or s";
	return sets ? NULL : "a rcpts event without sets";
}

int cev_rcpts_each(const uint8_t *p, size_t len, cev_rcpts *h, cev_rset *set, cev_rset_fn fn,
                   void *ctx, const char **why)
{
	const char *bad = rcpts_pass(p, len, h, set, NULL, NULL);
	if (!bad && fn)
		bad = rcpts_pass(p, len, h, set, fn, ctx);
	return verdict(bad, why);
}

/* ---- batch ---- */

static const struct list_kind BATCH = { "batch", "evs", "evs is not an array", "a batch without events" };

struct batch_ud {
	cev_ev_fn fn;
	void *ctx;
};

static const char *ev_elem(cbr *r, void *ud)
{
	struct batch_ud *u = ud;
	const uint8_t *start = r->p;
	cbr_item ev;
	if (cbr_next(r, &ev) != CHAT_OK || cbr_skip(r, &ev) != CHAT_OK)
		return rd_err(r, "an element is malformed");
	if (ev.type != CBR_MAP)
		return "an element is not a map";
	if (u->fn)
		u->fn(u->ctx, start, (size_t)(r->p - start));
	return NULL;
}

int cev_batch(const uint8_t *p, size_t len, cev_ev_fn fn, void *ctx, const char **why)
{
	struct batch_ud check = { NULL, NULL }, each = { fn, ctx };
	const char *bad = list_pass(p, len, &BATCH, ev_elem, &check);
	if (!bad && fn)
		bad = list_pass(p, len, &BATCH, ev_elem, &each);
	return verdict(bad, why);
}

/* ---- the caps reply ---- */

static const char *read_server(cbr *r, const cbr_item *map, cev_caps *out)
{
	cbr_item key, v;
	uint64_t i = 0;
	if (map->type != CBR_MAP)
		return "server is not a map";
	out->has_server = true;
	while (cbr_map_next(r, map, &i, &key)) {
		if (cbr_next(r, &v) != CHAT_OK)
			return rd_err(r, "server is malformed");
		const char *bad = NULL;
		bool is_v = cbr_eq(&key, "v"), is_g = cbr_eq(&key, "gather_ms"),
		     is_b = cbr_eq(&key, "replay_batch");
		if (cbr_eq(&key, "puback_delivered")) {
			if (v.type != CBR_BOOL)
				bad = "puback_delivered is not a bool";
			out->puback_delivered = v.b;
		} else if (is_v || is_g || is_b) {
			if (v.type != CBR_UINT)
				bad = "a number in server is not an integer";
			*(is_v ? &out->v : is_g ? &out->gather_ms : &out->replay_batch) = v.u;
		} else if (cbr_skip(r, &v) != CHAT_OK) {
			bad = rd_err(r, "server is malformed");
		}
		if (bad)
			return bad;
	}
	return r->err_msg;
}

int cev_caps_reply(const uint8_t *p, size_t len, cev_caps *out, const char **why)
{
	cbr_fields f;
	const char *bad = NULL;
	bool has_ok = false;
	memset(out, 0, sizeof *out);
	cbr_fields_open(&f, p, len, "the reply is not a CBOR map");
	while (!bad && cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "ok")) {
			if (f.val.type != CBR_BOOL)
				bad = "ok is not a bool";
			out->ok = f.val.b;
			has_ok = true;
		} else if (cbr_eq(&f.key, "caps")) {
			if (f.val.type != CBR_ARRAY) {
				bad = "caps is not an array";
				break;
			}
			uint64_t i = 0;
			while (!bad && cbr_array_next(&f.r, &f.val, &i)) {
				cbr_item it;
				if (cbr_next(&f.r, &it) != CHAT_OK)
					bad = rd_err(&f.r, "caps is malformed");
				else if (it.type != CBR_TEXT)
					bad = "a capability is not a text";
				for (unsigned b = 0; !bad && b < CEV_NCAPS; b++)
					if (cbr_eq(&it, cap_names[b]))
						out->caps |= 1u << b;
			}
			if (!bad)
				bad = f.r.err_msg;
		} else if (cbr_eq(&f.key, "server")) {
			bad = read_server(&f.r, &f.val, out);
		} else if (cbr_eq(&f.key, "code") && f.val.type == CBR_TEXT) {
			out->code = f.val;
		} else if (cbr_eq(&f.key, "msg") && f.val.type == CBR_TEXT) {
			out->msg = f.val;
		} else {
			cbr_fields_skip(&f);
		}
	}
	if (!bad)
		bad = cbr_fields_close(&f, NULL);
	if (!bad && !has_ok)
		bad = "the reply has no ok";
	return verdict(bad, why);
}
