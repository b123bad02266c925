// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* request.c — key requests: CBOR bytes in, response CBOR out.
 *
 * A request is read in two passes over the same bytes with the streaming
 * reader (cbor_io.h): the first checks that it is one well-formed CBOR map
 * and finds `rid` and `op` wherever they are, so every later error can still
 * carry the rid; the second reads the op's own fields. Nothing is allocated
 * while decoding; key material is copied into fixed-size structs only after
 * its size is checked. Unknown keys are ignored (wire contract §4).
 *
 * Error codes (docs/KEYSERVER.md): cbor, size, field, op, sig, full, dup,
 * rate (+ retry_after), notfound, store, internal.
 */
#include "keystore.h"

#include "err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct req_head {
	bool has_rid, bad_rid;
	uint64_t rid;
	cbr_item op;      /* type 0 when absent */
} req_head;

void ks_reply_init(ks_reply *r)
{
	memset(r, 0, sizeof(*r));
	cbw_init(&r->resp);
}

void ks_reply_free(ks_reply *r)
{
	cbw_free(&r->resp);
	free(r->status);
	memset(r, 0, sizeof(*r));
}

static int status_add(ks_reply *r, const char *u, size_t ul, const char *d, size_t dl,
                      uint32_t opks, uint32_t low_threshold)
{
	if (r->nstatus == r->capstatus) {
		size_t cap = r->capstatus ? r->capstatus * 2 : 4;
		ks_status *s = realloc(r->status, cap * sizeof(*s));
		if (!s)
			return CHAT_ENOMEM;
		r->status = s;
		r->capstatus = cap;
	}
	ks_status *s = &r->status[r->nstatus++];
	memcpy(s->user, u, ul);
	s->user[ul] = 0;
	memcpy(s->device, d, dl);
	s->device[dl] = 0;
	s->opks = opks;
	s->low = opks < low_threshold;
	return CHAT_OK;
}

int ks_status_payload(cbw *w, const ks_status *s)
{
	cbw_reset(w);
	cbw_map(w, 2);
	cbw_text(w, "opks");
	cbw_uint(w, s->opks);
	cbw_text(w, "low");
	cbw_bool(w, s->low);
	return cbw_status(w);
}

/* ---- responses ---- */

/* Starts {rid?, ok, …} with `extra` more pairs to follow. */
static void resp_start(cbw *w, const req_head *h, bool ok, size_t extra)
{
	cbw_reset(w);
	cbw_map(w, (h->has_rid ? 1 : 0) + 1 + extra);
	if (h->has_rid) {
		cbw_text(w, "rid");
		cbw_uint(w, h->rid);
	}
	cbw_text(w, "ok");
	cbw_bool(w, ok);
}

/* {rid?, ok: false, code, msg, ? <extra_key>: extra} */
static int resp_error_x(ks_reply *r, const req_head *h, const char *code, const char *msg,
                        const char *extra_key, uint64_t extra)
{
	resp_start(&r->resp, h, false, extra_key ? 3 : 2);
	cbw_text(&r->resp, "code");
	cbw_text(&r->resp, code);
	cbw_text(&r->resp, "msg");
	cbw_text(&r->resp, msg);
	if (extra_key) {
		cbw_text(&r->resp, extra_key);
		cbw_uint(&r->resp, extra);
	}
	r->nstatus = 0; /* a refused request changes nothing */
	return cbw_status(&r->resp);
}

static int resp_error(ks_reply *r, const req_head *h, const char *code, const char *msg)
{
	return resp_error_x(r, h, code, msg, NULL, 0);
}

/* The response for a keystore failure that is not the request's fault. */
static int resp_store_error(ks *k, ks_reply *r, const req_head *h, int rc)
{
	if (rc == CHAT_ENOMEM)
		return resp_error(r, h, "internal", "out of memory");
	/* ks_errmsg names files and RocksDB internals: for the log, not the wire. */
	r->errmsg = ks_errmsg(k);
	return resp_error(r, h, "store", "the key store failed; nothing was changed");
}

/* ---- pass 1: well-formedness, rid and op ---- */

static const char *read_head(const void *buf, size_t len, req_head *h)
{
	cbr rd;
	cbr_item map, key;
	const char *bad = cbr_map_open(&rd, buf, len, &map, "request is not a CBOR map");
	if (bad)
		return bad;
	uint64_t i = 0;
	while (cbr_map_next(&rd, &map, &i, &key)) {
		cbr_item v;
		bool rid = cbr_eq(&key, "rid"), op = cbr_eq(&key, "op");
		if (!rid && !op) {
			if (cbr_skip_next(&rd))
				break;
			continue;
		}
		if (cbr_next(&rd, &v) || cbr_skip(&rd, &v))
			break;
		if (rid) {
			h->has_rid = v.type == CBR_UINT;
			h->bad_rid = !h->has_rid;
			h->rid = v.u;
		} else {
			h->op = v;
		}
	}
	return cbr_map_close(&rd, "trailing bytes after the request map");
}

/* ---- pass 2: typed fields ---- */

static bool read_bytes(cbr *rd, uint8_t *out, size_t want)
{
	cbr_item v;
	if (cbr_next(rd, &v) || v.type != CBR_BYTES || v.len != want)
		return false;
	memcpy(out, v.ptr, want);
	return true;
}

static bool read_uint(cbr *rd, uint64_t *out)
{
	cbr_item v;
	if (cbr_next(rd, &v) || v.type != CBR_UINT)
		return false;
	*out = v.u;
	return true;
}

/* Opens the request map again for the op's fields. */
static void body_open(cbr *rd, cbr_item *map, const void *buf, size_t len)
{
	cbr_init(rd, buf, len);
	cbr_next(rd, map); /* pass 1 proved it is a map */
}

static const char *read_spk(cbr *rd, ks_spk *spk)
{
	cbr_item map, key;
	bool id = false, k = false, s = false;
	if (cbr_next(rd, &map) || map.type != CBR_MAP)
		return "spk must be a map";
	uint64_t i = 0;
	while (cbr_map_next(rd, &map, &i, &key)) {
		if (cbr_eq(&key, "id")) {
			if (!(id = read_uint(rd, &spk->id)))
				return "spk.id must be an unsigned integer";
		} else if (cbr_eq(&key, "key")) {
			if (!(k = read_bytes(rd, spk->key, KS_KEY_LEN)))
				return "spk.key must be 32 bytes";
		} else if (cbr_eq(&key, "sig")) {
			if (!(s = read_bytes(rd, spk->sig, KS_SIG_LEN)))
				return "spk.sig must be 64 bytes";
		} else if (cbr_skip_next(rd)) {
			break;
		}
	}
	if (rd->err_msg)
		return rd->err_msg;
	if (!id || !k || !s)
		return "spk needs id, key and sig";
	return NULL;
}

static const char *read_opk(cbr *rd, ks_opk *opk)
{
	cbr_item map, key;
	bool id = false, k = false;
	if (cbr_next(rd, &map) || map.type != CBR_MAP)
		return "each opk must be a map";
	uint64_t i = 0;
	while (cbr_map_next(rd, &map, &i, &key)) {
		if (cbr_eq(&key, "id")) {
			if (!(id = read_uint(rd, &opk->id)))
				return "opk.id must be an unsigned integer";
		} else if (cbr_eq(&key, "key")) {
			if (!(k = read_bytes(rd, opk->key, KS_KEY_LEN)))
				return "opk.key must be 32 bytes";
		} else if (cbr_skip_next(rd)) {
			break;
		}
	}
	if (rd->err_msg)
		return rd->err_msg;
	if (!id || !k)
		return "each opk needs id and key";
	return NULL;
}

static const char *read_opks(cbr *rd, ks_opk *opks, size_t *n)
{
	cbr_item arr;
	if (cbr_next(rd, &arr) || arr.type != CBR_ARRAY)
		return "opks must be an array";
	if (!arr.indef && arr.u > KS_MAX_UPLOAD_OPKS)
		return "more than 100 opks in one upload";
	uint64_t i = 0;
	*n = 0;
	while (cbr_array_next(rd, &arr, &i)) {
		if (*n == KS_MAX_UPLOAD_OPKS)
			return "more than 100 opks in one upload";
		const char *why = read_opk(rd, &opks[*n]);
		if (why)
			return why;
		(*n)++;
	}
	return rd->err_msg;
}

/* ---- ops ---- */

static int op_upload(ks *k, const char *u, size_t ul, const char *d, size_t dl, const void *buf,
                     size_t len, const req_head *h, ks_reply *r)
{
	cbr rd;
	cbr_item map, key;
	uint8_t ik[KS_KEY_LEN];
	ks_spk spk;
	ks_opk opks[KS_MAX_UPLOAD_OPKS];
	size_t n = 0;
	bool has_ik = false, has_spk = false;
	const char *why = NULL;

	body_open(&rd, &map, buf, len);
	uint64_t i = 0;
	while (!why && cbr_map_next(&rd, &map, &i, &key)) {
		if (cbr_eq(&key, "ik")) {
			if (!(has_ik = read_bytes(&rd, ik, KS_KEY_LEN)))
				why = "ik must be 32 bytes";
		} else if (cbr_eq(&key, "spk")) {
			has_spk = !(why = read_spk(&rd, &spk));
		} else if (cbr_eq(&key, "opks")) {
			why = read_opks(&rd, opks, &n);
		} else {
			cbr_skip_next(&rd);
		}
	}
	if (!why && rd.err_msg)
		why = rd.err_msg;
	if (!why && (!has_ik || !has_spk))
		why = "upload needs ik and spk";
	if (why)
		return resp_error(r, h, "field", why);

	uint32_t count = 0;
	int rc = ks_upload(k, u, ul, d, dl, ik, &spk, opks, n, &count);
	switch (rc) {
	case CHAT_OK:
		break;
	case CHAT_EDENIED:
		return resp_error(r, h, "sig", "spk.sig is not a signature by ik over spk.key");
	case CHAT_EEXIST:
		return resp_error(r, h, "dup", "an opk id repeats or is already in the pool");
	case CHAT_EQUOTA: {
		uint32_t have = 0;
		ks_count(k, u, ul, d, dl, &have);
		return resp_error_x(r, h, "full", "the one-time key pool would exceed its cap",
		                    "opks", have);
	}
	case CHAT_ETOOBIG:
		return resp_error(r, h, "field", "more than 100 opks in one upload");
	default:
		return resp_store_error(k, r, h, rc);
	}
	if (status_add(r, u, ul, d, dl, count, ks_low_threshold(k)))
		return resp_error(r, h, "internal", "out of memory");
	resp_start(&r->resp, h, true, 1);
	cbw_text(&r->resp, "opks");
	cbw_uint(&r->resp, count);
	return cbw_status(&r->resp);
}

/* {index, ts, proof}: where the entry's ik is in the log of the head (the
 * proof was made before the bundle's keys were popped). */
static void write_log_ref(cbw *w, const ks_entry *e)
{
	cbw_map(w, 3);
	cbw_text(w, "index");
	cbw_uint(w, e->log_index);
	cbw_text(w, "ts");
	cbw_uint(w, e->log_ts);
	cbw_text(w, "proof");
	kl_proof_write(w, e->proof, e->nproof);
}

static void write_entry(cbw *w, const ks_entry *e)
{
	cbw_map(w, e->has_opk ? 5 : 4);
	cbw_text(w, "device");
	cbw_text(w, e->device);
	cbw_text(w, "ik");
	cbw_bytes(w, e->ik, KS_KEY_LEN);
	cbw_text(w, "spk");
	cbw_map(w, 3);
	cbw_text(w, "id");
	cbw_uint(w, e->spk.id);
	cbw_text(w, "key");
	cbw_bytes(w, e->spk.key, KS_KEY_LEN);
	cbw_text(w, "sig");
	cbw_bytes(w, e->spk.sig, KS_SIG_LEN);
	if (e->has_opk) {
		cbw_text(w, "opk");
		cbw_map(w, 2);
		cbw_text(w, "id");
		cbw_uint(w, e->opk.id);
		cbw_text(w, "key");
		cbw_bytes(w, e->opk.key, KS_KEY_LEN);
	}
	cbw_text(w, "log");
	write_log_ref(w, e);
}

static int op_bundle(ks *k, const char *u, size_t ul, const char *d, size_t dl, const void *buf,
                     size_t len, const req_head *h, ks_reply *r)
{
	cbr rd;
	cbr_item map, key, user = { 0 }, since = { 0 };
	body_open(&rd, &map, buf, len);
	uint64_t i = 0;
	while (cbr_map_next(&rd, &map, &i, &key)) {
		if (cbr_eq(&key, "user")) {
			if (cbr_next(&rd, &user) || cbr_skip(&rd, &user))
				break;
		} else if (cbr_eq(&key, "since")) {
			if (cbr_next(&rd, &since) || cbr_skip(&rd, &since))
				break;
		} else if (cbr_skip_next(&rd)) {
			break;
		}
	}
	if (user.type != CBR_TEXT || !chat_valid_user((const char *)user.ptr, user.len))
		return resp_error(r, h, "field", "user must be a valid user id");
	if (since.type && since.type != CBR_UINT)
		return resp_error(r, h, "field", "since must be an unsigned integer");

	ks_bundle b;
	uint64_t retry = 0;
	ks_bundle_init(&b);
	int rc = ks_bundle_get(k, u, ul, d, dl, (const char *)user.ptr, user.len, &b, &retry);
#ifdef KS_LYING
	/* chat-keyserver-lying (tests only): CHAT_KS_LIE=swap:RU/RD serves the
	 * requester RU/RD the attacker's keys for every device, with the proofs
	 * of the real, logged keys — a key that is not in the log. */
	const char *lie = getenv("CHAT_KS_LIE");
	char me[CHAT_ADDR_MAX + 8];
	snprintf(me, sizeof me, "swap:%.*s/%.*s", (int)ul, u, (int)dl, d);
	if (rc == CHAT_OK && lie && strcmp(lie, me) == 0) {
		uint8_t seed[32] = "chat-keyserver-lying attacker", sk[64];
		crypto_sign_seed_keypair(b.v[0].ik, sk, seed);
		for (size_t j = 0; j < b.n; j++) {
			crypto_sign_ed25519_sk_to_pk(b.v[j].ik, sk);
			crypto_sign_detached(b.v[j].spk.sig, NULL, b.v[j].spk.key, KS_KEY_LEN, sk);
		}
		sodium_memzero(sk, sizeof sk);
	}
#endif
	if (rc == CHAT_EDENIED)
		rc = resp_error_x(r, h, "rate", "too many bundle requests for this user",
		                  "retry_after", retry);
	else if (rc == CHAT_ENOTFOUND)
		rc = resp_error(r, h, "notfound", "no device of this user has uploaded keys");
	else if (rc)
		rc = resp_store_error(k, r, h, rc);
	else {
		for (size_t j = 0; j < b.n && rc == CHAT_OK; j++)
			if (b.v[j].has_opk && b.v[j].left < ks_low_threshold(k))
				rc = status_add(r, (const char *)user.ptr, user.len, b.v[j].device,
				                strlen(b.v[j].device), b.v[j].left, ks_low_threshold(k));
		/* The keys are popped whatever happens now: answer even if a status
		 * update could not be queued. Every device is in the log (an upload
		 * logs it), so the head has size ≥ 1. */
		const kl_head *head = ks_log_head(k);
		kl_hash cons[KL_PROOF_MAX];
		size_t ncons = 0;
		bool with_cons = since.type == CBR_UINT && since.u <= head->size;
		rc = with_cons ? ks_log_consistency(k, since.u, head->size, cons, &ncons) : CHAT_OK;
		resp_start(&r->resp, h, true, with_cons ? 3 : 2);
		cbw_text(&r->resp, "devices");
		cbw_array(&r->resp, b.n);
		for (size_t j = 0; j < b.n; j++)
			write_entry(&r->resp, &b.v[j]);
		cbw_text(&r->resp, "head");
		kl_head_write(&r->resp, head);
		if (with_cons) {
			cbw_text(&r->resp, "consistency");
			kl_proof_write(&r->resp, cons, ncons);
		}
		if (rc)
			rc = resp_store_error(k, r, h, rc);
		else
			rc = cbw_status(&r->resp);
	}
	ks_bundle_free(&b);
	return rc;
}

static int op_count(ks *k, const char *u, size_t ul, const char *d, size_t dl,
                    const req_head *h, ks_reply *r)
{
	uint32_t count;
	int rc = ks_count(k, u, ul, d, dl, &count);
	if (rc)
		return resp_store_error(k, r, h, rc);
	resp_start(&r->resp, h, true, 1);
	cbw_text(&r->resp, "opks");
	cbw_uint(&r->resp, count);
	return cbw_status(&r->resp);
}

static int op_check(ks *k, const char *u, size_t ul, const char *d, size_t dl, const void *buf,
                    size_t len, const req_head *h, ks_reply *r)
{
	cbr rd;
	cbr_item map, key;
	uint8_t digest[KS_DIGEST_LEN];
	bool has = false, bad = false;
	body_open(&rd, &map, buf, len);
	uint64_t i = 0;
	while (cbr_map_next(&rd, &map, &i, &key)) {
		if (cbr_eq(&key, "digest")) {
			has = read_bytes(&rd, digest, KS_DIGEST_LEN);
			bad = !has;
			if (bad)
				break;
		} else {
			cbr_skip_next(&rd);
		}
	}
	if (!has || bad)
		return resp_error(r, h, "field", "digest must be 32 bytes");
	bool match;
	int rc = ks_check(k, u, ul, d, dl, digest, &match);
	if (rc)
		return resp_store_error(k, r, h, rc);
	resp_start(&r->resp, h, true, 1);
	cbw_text(&r->resp, "match");
	cbw_bool(&r->resp, match);
	return cbw_status(&r->resp);
}

/* ---- the key directory log's ops ---- */

/* Reads the uint fields named a and b (either may be NULL) of the request. */
static const char *read_uints(const void *buf, size_t len, const char *a, uint64_t *av,
                              bool *ah, const char *b, uint64_t *bv, bool *bh)
{
	cbr rd;
	cbr_item map, key;
	body_open(&rd, &map, buf, len);
	uint64_t i = 0;
	*ah = false;
	if (bh)
		*bh = false;
	while (cbr_map_next(&rd, &map, &i, &key)) {
		if (cbr_eq(&key, a)) {
			if (!(*ah = read_uint(&rd, av)))
				return "must be an unsigned integer";
		} else if (b && cbr_eq(&key, b)) {
			if (!(*bh = read_uint(&rd, bv)))
				return "must be an unsigned integer";
		} else if (cbr_skip_next(&rd)) {
			break;
		}
	}
	return rd.err_msg;
}

/* head {} → {size, ?head, pub} */
static int op_head(ks *k, const req_head *h, ks_reply *r)
{
	const kl_head *head = ks_log_head(k);
	resp_start(&r->resp, h, true, head->size ? 3 : 2);
	cbw_text(&r->resp, "size");
	cbw_uint(&r->resp, head->size);
	if (head->size) {
		cbw_text(&r->resp, "head");
		kl_head_write(&r->resp, head);
	}
	cbw_text(&r->resp, "pub");
	cbw_bytes(&r->resp, ks_log_pub(k), KL_PUB);
	return cbw_status(&r->resp);
}

/* consistency {from, ?to} → {from, to, proof} */
static int op_consistency(ks *k, const void *buf, size_t len, const req_head *h, ks_reply *r)
{
	uint64_t from = 0, to = 0;
	bool hf, ht;
	if (read_uints(buf, len, "from", &from, &hf, "to", &to, &ht) || !hf)
		return resp_error(r, h, "field", "consistency needs from (and optionally to) as uints");
	if (!ht)
		to = ks_log_head(k)->size;
	if (from > to || to > ks_log_head(k)->size)
		return resp_error(r, h, "range", "need from <= to <= the log's size");
	kl_hash proof[KL_PROOF_MAX];
	size_t n;
	int rc = ks_log_consistency(k, from, to, proof, &n);
	if (rc)
		return resp_store_error(k, r, h, rc);
	resp_start(&r->resp, h, true, 3);
	cbw_text(&r->resp, "from");
	cbw_uint(&r->resp, from);
	cbw_text(&r->resp, "to");
	cbw_uint(&r->resp, to);
	cbw_text(&r->resp, "proof");
	kl_proof_write(&r->resp, proof, n);
	return cbw_status(&r->resp);
}

#define HISTORY_MAX 32  /* identity keys of one device in one answer */
#define LOG_PAGE_MAX 100 /* entries (and heads) in one `log` answer */

/* history {user, device, ?since} → {head, ?consistency, entries: [{index, ik, ts, proof}]} */
static int op_history(ks *k, const void *buf, size_t len, const req_head *h, ks_reply *r)
{
	cbr rd;
	cbr_item map, key, user = { 0 }, dev = { 0 }, since = { 0 };
	body_open(&rd, &map, buf, len);
	uint64_t i = 0;
	while (cbr_map_next(&rd, &map, &i, &key)) {
		cbr_item *dst = cbr_eq(&key, "user")     ? &user
		                : cbr_eq(&key, "device") ? &dev
		                : cbr_eq(&key, "since")  ? &since
		                                         : NULL;
		if (dst ? (cbr_next(&rd, dst) || cbr_skip(&rd, dst)) : cbr_skip_next(&rd) != 0)
			break;
	}
	if (user.type != CBR_TEXT || !chat_valid_user((const char *)user.ptr, user.len) ||
	    dev.type != CBR_TEXT || !chat_valid_device((const char *)dev.ptr, dev.len))
		return resp_error(r, h, "field", "history needs a valid user and device");
	if (since.type && since.type != CBR_UINT)
		return resp_error(r, h, "field", "since must be an unsigned integer");
	uint64_t idx[HISTORY_MAX];
	size_t n;
	int rc = ks_log_history(k, (const char *)user.ptr, user.len, (const char *)dev.ptr, dev.len,
	                        idx, HISTORY_MAX, &n);
	if (rc)
		return resp_store_error(k, r, h, rc);
	const kl_head *head = ks_log_head(k);
	kl_hash cons[KL_PROOF_MAX];
	size_t ncons = 0;
	bool with_cons = head->size && since.type == CBR_UINT && since.u <= head->size;
	if (with_cons && (rc = ks_log_consistency(k, since.u, head->size, cons, &ncons)) != CHAT_OK)
		return resp_store_error(k, r, h, rc);
	resp_start(&r->resp, h, true, (head->size ? 2 : 1) + with_cons);
	if (head->size) {
		cbw_text(&r->resp, "head");
		kl_head_write(&r->resp, head);
	}
	if (with_cons) {
		cbw_text(&r->resp, "consistency");
		kl_proof_write(&r->resp, cons, ncons);
	}
	cbw_text(&r->resp, "entries");
	cbw_array(&r->resp, n);
	for (size_t j = 0; j < n && rc == CHAT_OK; j++) {
		ks_log_entry e;
		kl_hash proof[KL_PROOF_MAX];
		size_t np;
		if ((rc = ks_log_get(k, idx[j], &e)) != CHAT_OK ||
		    (rc = ks_log_inclusion(k, idx[j], head->size, proof, &np)) != CHAT_OK)
			break;
		cbw_map(&r->resp, 4);
		cbw_text(&r->resp, "index");
		cbw_uint(&r->resp, e.index);
		cbw_text(&r->resp, "ik");
		cbw_bytes(&r->resp, e.ik, KS_KEY_LEN);
		cbw_text(&r->resp, "ts");
		cbw_uint(&r->resp, e.ts);
		cbw_text(&r->resp, "proof");
		kl_proof_write(&r->resp, proof, np);
	}
	if (rc)
		return resp_store_error(k, r, h, rc);
	return cbw_status(&r->resp);
}

/* log {from, ?count} → {size, entries: [{user, device, ik, ts}], heads: [head]}:
 * the leaves from..from+count-1 and the heads of sizes from+1..from+count. */
static int op_log(ks *k, const void *buf, size_t len, const req_head *h, ks_reply *r)
{
	uint64_t from = 0, count = LOG_PAGE_MAX;
	bool hf, hc;
	if (read_uints(buf, len, "from", &from, &hf, "count", &count, &hc) || !hf)
		return resp_error(r, h, "field", "log needs from (and optionally count) as uints");
	uint64_t size = ks_log_head(k)->size;
	if (count > LOG_PAGE_MAX)
		count = LOG_PAGE_MAX;
	if (from > size)
		return resp_error(r, h, "range", "from is beyond the log's size");
	if (count > size - from)
		count = size - from;
	resp_start(&r->resp, h, true, 3);
	cbw_text(&r->resp, "size");
	cbw_uint(&r->resp, size);
	cbw_text(&r->resp, "entries");
	cbw_array(&r->resp, count);
	int rc = CHAT_OK;
	for (uint64_t j = 0; j < count && rc == CHAT_OK; j++) {
		ks_log_entry e;
		if ((rc = ks_log_get(k, from + j, &e)) != CHAT_OK)
			break;
		cbw_map(&r->resp, 4);
		cbw_text(&r->resp, "user");
		cbw_text(&r->resp, e.user);
		cbw_text(&r->resp, "device");
		cbw_text(&r->resp, e.device);
		cbw_text(&r->resp, "ik");
		cbw_bytes(&r->resp, e.ik, KS_KEY_LEN);
		cbw_text(&r->resp, "ts");
		cbw_uint(&r->resp, e.ts);
	}
	cbw_text(&r->resp, "heads");
	cbw_array(&r->resp, count);
	for (uint64_t j = 0; j < count && rc == CHAT_OK; j++) {
		kl_head hd;
		if ((rc = ks_log_head_at(k, from + j + 1, &hd)) == CHAT_OK)
			kl_head_write(&r->resp, &hd);
	}
	if (rc)
		return resp_store_error(k, r, h, rc);
	return cbw_status(&r->resp);
}

int ks_request(ks *k, const char *u, size_t ul, const char *d, size_t dl, const void *req,
               size_t len, ks_reply *r)
{
	req_head h = { 0 };
	r->nstatus = 0;
	r->errmsg = NULL;
	cbw_reset(&r->resp);
	if (!chat_valid_user(u, ul) || !chat_valid_device(d, dl))
		return resp_error(r, &h, "field", "invalid requester address");
	if (len > KS_REQ_MAX)
		return resp_error(r, &h, "size", "request over 16384 bytes");
	const char *why = read_head(req, len, &h);
	if (why) /* a rid read before the damage is still echoed */
		return resp_error(r, &h, "cbor", why);
	if (!h.has_rid)
		return resp_error(r, &h, "field",
		                  h.bad_rid ? "rid must be an unsigned integer" : "rid is missing");
	if (h.op.type != CBR_TEXT)
		return resp_error(r, &h, "field", "op must be a text string");
	if (cbr_eq(&h.op, "upload"))
		return op_upload(k, u, ul, d, dl, req, len, &h, r);
	if (cbr_eq(&h.op, "bundle"))
		return op_bundle(k, u, ul, d, dl, req, len, &h, r);
	if (cbr_eq(&h.op, "count"))
		return op_count(k, u, ul, d, dl, &h, r);
	if (cbr_eq(&h.op, "check"))
		return op_check(k, u, ul, d, dl, req, len, &h, r);
	/* Cluster mode: the log ops answer from a tree that has read every leaf
	 * other key servers appended so far (a failed read: the last known tree,
	 * still a valid, older head). */
	if (cbr_eq(&h.op, "head") || cbr_eq(&h.op, "consistency") || cbr_eq(&h.op, "history") ||
	    cbr_eq(&h.op, "log"))
		ks_sync(k);
	if (cbr_eq(&h.op, "head"))
		return op_head(k, &h, r);
	if (cbr_eq(&h.op, "consistency"))
		return op_consistency(k, req, len, &h, r);
	if (cbr_eq(&h.op, "history"))
		return op_history(k, req, len, &h, r);
	if (cbr_eq(&h.op, "log"))
		return op_log(k, req, len, &h, r);
	return resp_error(r, &h, "op", "unknown op");
}
