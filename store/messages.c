// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* messages.c — sending: per-conversation seqs, message records, the client-id
 * dedup index, and the one WriteBatch that ties a send together.
 *
 * A send reads the conversation's last seq, then writes in one batch: the new
 * last seq, the message record, the dedup entry, the expiry index entry, the
 * refcount and, per recipient, a queue entry and its rcpts entry. Nothing is written unless all
 * of it is, so a refused send (queue full) does not consume a seq. The body
 * (or the raw per-device "bodies" CBOR map) is stored once, copied straight
 * from the caller's buffer into the batch. When the last recipient has it
 * (refs reaches 0) the body is dropped and the metadata stays, for receipts
 * and dedup, until the message expires.
 *
 * Message record, version 1 (integers big-endian):
 *   u8 version, u8 flags (MSG_F_*), u64 ts, u64 expires, u64 type,
 *   u8 cid_len, cid (a uint cid is 8 bytes), u8 from_len, from, '\0',
 *   u32 body_len, body (the bodies map when MSG_F_BODIES; empty when
 *   MSG_F_NOBODY: delivered everywhere, body deleted)
 * MSG_F_GROUP marks a group event (its body is the encoded event). It is a
 * flag rather than a new record version: records written before groups
 * existed decode unchanged as messages, and an older build refuses a group
 * event as an unknown flag instead of delivering it as a message.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

#define MSG_VERSION 1
#define MSG_F_TYPE 0x01
#define MSG_F_CID_UINT 0x02
#define MSG_F_BODIES 0x04
#define MSG_F_NOBODY 0x08
#define MSG_F_GROUP 0x10
#define MSG_F_ALL (MSG_F_TYPE | MSG_F_CID_UINT | MSG_F_BODIES | MSG_F_NOBODY | MSG_F_GROUP)
#define MSG_FIXED (1 + 1 + 8 + 8 + 8)
#define MSG_HDR_MAX STORE_MSG_HDR_MAX
_Static_assert(MSG_FIXED == 26, "STORE_MSG_HDR_MAX counts 26 fixed bytes");
#define DEDUPVAL_MAX (STORE_MSGKEY_MAX + 8)
#define EXPKEY_MAX (8 + 1 + STORE_MSGKEY_MAX)

struct msg_buf {
	rocksdb_pinnableslice_t *val; /* the record the returned pointers point into */
	char conv[CHAT_CONV_MAX + 1];
};

/* from \0 kind cid */
size_t store__dedupkey(uint8_t *out, const char *from, const store_cid *cid)
{
	size_t fl = store__addrlen(from);
	if (!fl || (!cid->is_uint && cid->len > STORE_CID_MAX))
		return 0;
	memcpy(out, from, fl);
	out[fl] = 0;
	if (cid->is_uint) {
		out[fl + 1] = 'u';
		store__be64_put(out + fl + 2, cid->u);
		return fl + 2 + 8;
	}
	out[fl + 1] = 'b';
	memcpy(out + fl + 2, cid->bytes, cid->len);
	return fl + 2 + cid->len;
}

int store_dedup_get(store *st, const char *from, const store_cid *cid, char *conv,
                    uint64_t *seq)
{
	uint8_t key[STORE_DEDUPKEY_MAX];
	size_t klen = store__dedupkey(key, from, cid);
	if (!klen)
		return CHAT_ENOTFOUND;
	rocksdb_pinnableslice_t *v;
	int rc = store__get(st, STORE_CF_DEDUP, key, klen, &v);
	if (rc != CHAT_OK)
		return rc;
	size_t vlen;
	const uint8_t *p = (const uint8_t *)rocksdb_pinnableslice_value(v, &vlen);
	if (vlen < 8 || !store__msgkey_parse(p, vlen - 8, conv, seq))
		rc = store__fail(st, CHAT_ECORRUPT, "dedup entry of %s: bad value of %zu bytes", from,
		                 vlen);
	rocksdb_pinnableslice_destroy(v);
	return rc;
}

/* fill: as in qmeta_get (queue.c); a send's read fills, a probe does not */
static int conv_last(store *st, const char *conv, uint64_t *seq, bool fill)
{
	size_t n = strnlen(conv, CHAT_CONV_MAX + 1);
	uint8_t v[8];
	store_counter ctr = { STORE_CF_CONVS, conv, n };
	int rc = n && n <= CHAT_CONV_MAX ? store__counter_get(st, &ctr, v, sizeof v, fill)
	                                 : CHAT_ENOTFOUND;
	if (rc == CHAT_ENOTFOUND) {
		*seq = 0;
		return CHAT_OK;
	}
	if (rc == CHAT_OK)
		*seq = store__be64_get(v);
	return rc;
}

int store_conv_last_seq(store *st, const char *conv, uint64_t *seq)
{
	return conv_last(st, conv, seq, false);
}

/* Writes the record's header into hdr (MSG_HDR_MAX bytes); returns its
 * length. The body follows it. */
static size_t msg_encode_header(uint8_t *hdr, const store_msg *m, size_t body_len,
                                bool bodies)
{
	uint8_t *p = hdr;
	*p++ = MSG_VERSION;
	*p++ = (m->has_type ? MSG_F_TYPE : 0) | (m->cid.is_uint ? MSG_F_CID_UINT : 0) |
	       (bodies ? MSG_F_BODIES : 0) | (m->kind == STORE_KIND_GROUP ? MSG_F_GROUP : 0);
	store__be64_put(p, m->ts);
	store__be64_put(p + 8, m->expires);
	store__be64_put(p + 16, m->has_type ? m->type : 0);
	p += 24;
	if (m->cid.is_uint) {
		*p++ = 8;
		store__be64_put(p, m->cid.u);
		p += 8;
	} else {
		*p++ = (uint8_t)m->cid.len;
		memcpy(p, m->cid.bytes, m->cid.len);
		p += m->cid.len;
	}
	size_t fl = strlen(m->from);
	*p++ = (uint8_t)fl;
	memcpy(p, m->from, fl + 1);
	p += fl + 1;
	for (int i = 3; i >= 0; i--)
		p[i] = (uint8_t)(body_len >> (8 * (3 - i)));
	return (size_t)(p + 4 - hdr);
}

/* The record of m once its body is gone (what its last release writes). */
static size_t released_record(uint8_t *hdr, const store_msg *m)
{
	size_t hlen = msg_encode_header(hdr, m, 0, false);
	hdr[1] |= MSG_F_NOBODY;
	return hlen;
}

/* Decodes a record into out (pointers into rec); false on anything that does
 * not match the layout exactly. */
static bool msg_decode(const uint8_t *rec, size_t len, store_msg *out)
{
	const uint8_t *p = rec, *end = rec + len;
	if (len < MSG_FIXED + 1 || p[0] != MSG_VERSION || (p[1] & ~MSG_F_ALL))
		return false;
	uint8_t flags = p[1];
	memset(out, 0, sizeof *out);
	out->kind = flags & MSG_F_GROUP ? STORE_KIND_GROUP : STORE_KIND_MSG;
	out->ts = store__be64_get(p + 2);
	out->expires = store__be64_get(p + 10);
	out->has_type = flags & MSG_F_TYPE;
	out->type = store__be64_get(p + 18);
	p += MSG_FIXED;

	size_t cl = *p++;
	if (cl > STORE_CID_MAX || (flags & MSG_F_CID_UINT && cl != 8) || (size_t)(end - p) < cl + 1)
		return false;
	out->cid.is_uint = flags & MSG_F_CID_UINT;
	if (out->cid.is_uint) {
		out->cid.u = store__be64_get(p);
	} else {
		memcpy(out->cid.bytes, p, cl);
		out->cid.len = cl;
	}
	p += cl;

	size_t fl = *p++;
	if (!fl || fl > CHAT_ADDR_MAX || (size_t)(end - p) < fl + 1 + 4 || p[fl] != 0 ||
	    memchr(p, 0, fl))
		return false;
	out->from = (const char *)p;
	p += fl + 1;

	size_t bl = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	p += 4;
	if ((size_t)(end - p) != bl || (flags & MSG_F_NOBODY && bl))
		return false;
	if (flags & MSG_F_NOBODY)
		return true;
	if (flags & MSG_F_BODIES) {
		out->bodies = p;
		out->bodies_len = bl;
	} else {
		out->body = p;
		out->body_len = bl;
	}
	return true;
}

static int msg_check(store *st, const store_msg *m)
{
	if (!store__addrlen(m->from))
		return store__fail(st, CHAT_EINVAL, "bad sender address");
	if (!m->cid.is_uint && m->cid.len > STORE_CID_MAX)
		return store__fail(st, CHAT_EINVAL, "cid longer than %d bytes", STORE_CID_MAX);
	if (m->bodies ? (m->body || m->body_len) : (!m->body && m->body_len))
		return store__fail(st, CHAT_EINVAL, "a message needs exactly one of body, bodies");
	if ((m->bodies ? m->bodies_len : m->body_len) > UINT32_MAX)
		return store__fail(st, CHAT_ETOOBIG, "message body over 4 GiB");
	if (m->kind != STORE_KIND_MSG && m->kind != STORE_KIND_GROUP)
		return store__fail(st, CHAT_EINVAL, "bad message kind %d", (int)m->kind);
	return CHAT_OK;
}

int store_send(store *st, const store_msg *msg, const char *const *to, size_t n,
               uint64_t max_queue, uint64_t *seq)
{
	store__batch(st);
	int rc = store__send_batch(st, msg, to, n, max_queue, seq);
	if (rc == CHAT_OK)
		rc = store__commit(st);
	else
		store__rollback(st);
	return rc;
}

/* RocksDB answers at once: the continuation runs before this returns, so
 * the send's path and cost are store_send's. */
void store_send_begin(store *st, const store_msg *msg, const char *const *to, size_t n,
                      uint64_t max_queue, store_send_done done, void *arg)
{
	uint64_t seq = 0;
	int rc = store_send(st, msg, to, n, max_queue, &seq);
	done(arg, rc, seq);
}

int store__send_batch(store *st, const store_msg *msg, const char *const *to, size_t n,
                      uint64_t max_queue, uint64_t *seq)
{
	uint8_t mkey[STORE_MSGKEY_MAX], dkey[STORE_DEDUPKEY_MAX], dval[DEDUPVAL_MAX];
	uint8_t ekey[EXPKEY_MAX], hdr[MSG_HDR_MAX], buf[8];
	int rc = msg_check(st, msg);
	if (rc != CHAT_OK)
		return rc;
	uint64_t last;
	if (!store__msgkey(mkey, msg->conv, 0))
		return store__fail(st, CHAT_EINVAL, "bad conversation id");
	if ((rc = conv_last(st, msg->conv, &last, true)) != CHAT_OK)
		return rc;
	uint64_t s = last + 1;
	size_t mklen = store__msgkey(mkey, msg->conv, s);
	size_t cl = mklen - 1 - STORE_SEQ_LEN;
	const char *const *rcpt;
	size_t nr;
	if ((rc = store__distinct(st, to, n, &rcpt, &nr)) != CHAT_OK)
		return rc;

	rocksdb_writebatch_t *wb = st->wb;
	store__be64_put(buf, s);
	store__counter_put(st, &(store_counter){ STORE_CF_CONVS, msg->conv, cl }, buf, 8);
	if (s == 1)
		store__contacts_put(st, msg->conv, cl);

	bool bodies = msg->bodies != NULL;
	const uint8_t *body = bodies ? msg->bodies : msg->body;
	size_t body_len = bodies ? msg->bodies_len : msg->body_len;
	size_t hlen = msg_encode_header(hdr, msg, body_len, bodies);
	const char *kparts[1] = { (const char *)mkey };
	size_t klens[1] = { mklen };
	const char *vparts[2] = { (const char *)hdr, body ? (const char *)body : "" };
	size_t vlens[2] = { hlen, body_len };
	rocksdb_writebatch_putv_cf(wb, st->cf[STORE_CF_MSGS], 1, kparts, klens, 2, vparts, vlens);
	uint8_t rel[MSG_HDR_MAX];
	size_t rlen = released_record(rel, msg);
	store__cache_stage(st, STORE_CACHE_MSGHDR, mkey, mklen, rel, rlen);

	if (msg->kind == STORE_KIND_MSG) {
		size_t dklen = store__dedupkey(dkey, msg->from, &msg->cid);
		memcpy(dval, mkey, mklen);
		store__be64_put(dval + mklen, msg->expires);
		rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_DEDUP], (const char *)dkey, dklen,
		                          (const char *)dval, mklen + 8);
	}

	store__be64_put(ekey, msg->expires);
	ekey[8] = 0;
	memcpy(ekey + 9, mkey, mklen);
	rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_EXPIRY], (const char *)ekey, 9 + mklen, "", 0);

	uint64_t refs = nr;
	/* one recipient: its rcpts entry says so, and there is no refcount */
	uint8_t rv[9] = { [8] = STORE_RCPT_SOLE };
	size_t rvlen = refs == 1 ? 9 : 8;
	for (size_t i = 0; i < nr; i++) {
		uint64_t qseq;
		uint8_t rk[STORE_RCPTKEY_MAX];
		store_qvalue qv = { STORE_QE_MSG, mkey, mklen };
		rc = store__queue_add(st, rcpt[i], &qv, max_queue, &qseq);
		if (rc != CHAT_OK)
			return rc;
		size_t rklen = store__rcptkey(rk, mkey, mklen, rcpt[i], strlen(rcpt[i]));
		store__be64_put(rv, qseq);
		rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_RCPTS], (const char *)rk, rklen,
		                          (const char *)rv, rvlen);
	}
	if (refs > 1) {
		store__be64_put(buf, refs);
		rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_REFS], (const char *)mkey, mklen,
		                          (const char *)buf, 8);
	}
	*seq = s;
	return CHAT_OK;
}

int store__msg_load(store *st, const uint8_t *msgkey, size_t mklen, store_msg *out,
                    rocksdb_pinnableslice_t **val, char *conv)
{
	uint64_t seq;
	*val = NULL;
	if (!store__msgkey_parse(msgkey, mklen, conv, &seq))
		return CHAT_ENOTFOUND;
	int rc = store__get(st, STORE_CF_MSGS, msgkey, mklen, val);
	return rc == CHAT_OK ? store__msg_decode(st, msgkey, mklen, out, val, conv) : rc;
}

int store__msg_decode(store *st, const uint8_t *msgkey, size_t mklen, store_msg *out,
                      rocksdb_pinnableslice_t **val, char *conv)
{
	if (!*val)
		return CHAT_ENOTFOUND;
	size_t vlen;
	const uint8_t *v = (const uint8_t *)rocksdb_pinnableslice_value(*val, &vlen);
	if (!msg_decode(v, vlen, out)) {
		rocksdb_pinnableslice_destroy(*val);
		*val = NULL;
		uint64_t seq = store__be64_get(msgkey + mklen - STORE_SEQ_LEN);
		return store__fail(st, CHAT_ECORRUPT, "message %s/%llu: bad record of %zu bytes",
		                   conv, (unsigned long long)seq, vlen);
	}
	out->conv = conv;
	if (!(v[1] & MSG_F_NOBODY)) { /* its last release will want this */
		uint8_t hdr[MSG_HDR_MAX];
		size_t hlen = released_record(hdr, out);
		store__cache_fill(st, STORE_CACHE_MSGHDR, msgkey, mklen, hdr, hlen);
	}
	return CHAT_OK;
}

int store__msg_meta(store *st, const uint8_t *msgkey, size_t mklen, struct store_msg_read *out)
{
	size_t hlen;
	uint64_t seq;
	out->val = NULL;
	if (store__cache_lookup(st, STORE_CACHE_MSGHDR, msgkey, mklen, out->hdr, &hlen) ==
	        STORE_CACHED_VALUE &&
	    msg_decode(out->hdr, hlen, &out->m) &&
	    store__msgkey_parse(msgkey, mklen, out->conv, &seq)) {
		out->m.conv = out->conv;
		return CHAT_OK;
	}
	return store__msg_load(st, msgkey, mklen, &out->m, &out->val, out->conv);
}

int store_msg_get(store *st, const char *conv, uint64_t seq, store_msg *out, store_msg_buf *buf)
{
	uint8_t key[STORE_MSGKEY_MAX];
	size_t klen = store__msgkey(key, conv, seq);
	if (!klen)
		return CHAT_ENOTFOUND;
	struct msg_buf *mb = buf->priv;
	if (!mb) {
		if (!(mb = calloc(1, sizeof *mb)))
			return store__fail(st, CHAT_ENOMEM, "out of memory");
		buf->priv = mb;
	}
	rocksdb_pinnableslice_destroy(mb->val);
	mb->val = NULL;
	return store__msg_load(st, key, klen, out, &mb->val, mb->conv);
}

int store__msg_release_refs(store *st, struct store_release *rel)
{
	const uint8_t *msgkey = rel->mk;
	size_t mklen = rel->mklen;
	int rc = rel->sole ? CHAT_OK : rel->refs_rc;
	rel->val = NULL;
	rel->have = false;
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK; /* already released */
	if (rc != CHAT_OK)
		return rc;
	uint64_t n = rel->sole ? 1 : store__be64_get(rel->cnt);
	if (n > 1) {
		store__be64_put(rel->cnt, n - 1);
		rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_REFS], (const char *)msgkey, mklen,
		                          (const char *)rel->cnt, 8);
		return CHAT_OK;
	}
	if (!rel->sole)
		rocksdb_writebatch_delete_cf(st->wb, st->cf[STORE_CF_REFS], (const char *)msgkey,
		                             mklen);

	/* the last one: rewrite the record without its body — known already if
	 * this message was sent or read lately (cache.c), else read */
	size_t hlen = 0;
	uint64_t seq;
	if (store__cache_lookup(st, STORE_CACHE_MSGHDR, msgkey, mklen, st->released, &hlen) ==
	        STORE_CACHED_VALUE &&
	    msg_decode(st->released, hlen, &rel->m) &&
	    store__msgkey_parse(msgkey, mklen, rel->conv, &seq)) {
		rel->m.conv = rel->conv;
	} else {
		rc = store__msg_load(st, msgkey, mklen, &rel->m, &rel->val, rel->conv);
		if (rc == CHAT_ENOTFOUND || rc == CHAT_ECORRUPT)
			return CHAT_OK; /* nothing worth keeping */
		if (rc != CHAT_OK)
			return rc;
		hlen = released_record(st->released, &rel->m);
	}
	rel->have = true;
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_MSGS], (const char *)msgkey, mklen,
	                          (const char *)st->released, hlen);
	store__cache_stage_empty(st, STORE_CACHE_MSGHDR, msgkey, mklen);
	return CHAT_OK;
}

int store__msg_release(store *st, const uint8_t *msgkey, size_t mklen, bool sole)
{
	struct store_release rel = { .mk = msgkey, .mklen = mklen, .sole = sole };
	if (!sole)
		rel.refs_rc = store__get_fixed(st, STORE_CF_REFS, msgkey, mklen, rel.cnt,
		                               sizeof rel.cnt);
	int rc = store__msg_release_refs(st, &rel);
	rocksdb_pinnableslice_destroy(rel.val);
	return rc;
}

void store_msg_buf_free(store_msg_buf *buf)
{
	struct msg_buf *mb = buf->priv;
	if (!mb)
		return;
	rocksdb_pinnableslice_destroy(mb->val);
	free(mb);
	buf->priv = NULL;
}
