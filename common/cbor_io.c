// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
#include "cbor_io.h"
#include "err.h"
#include "grow.h"

#include <cbor.h>
#include <stdlib.h>
#include <string.h>

/* ---- reader: one cbor_stream_decode call per item header ---- */

struct dec_ctx {
	cbr_item *it;
	bool unsupported;
};

#define CTX ((struct dec_ctx *)ctx)

static void on_u8(void *ctx, uint8_t v) { CTX->it->type = CBR_UINT; CTX->it->u = v; }
static void on_u16(void *ctx, uint16_t v) { CTX->it->type = CBR_UINT; CTX->it->u = v; }
static void on_u32(void *ctx, uint32_t v) { CTX->it->type = CBR_UINT; CTX->it->u = v; }
static void on_u64(void *ctx, uint64_t v) { CTX->it->type = CBR_UINT; CTX->it->u = v; }
static void on_n8(void *ctx, uint8_t v) { CTX->it->type = CBR_NEGINT; CTX->it->u = v; }
static void on_n16(void *ctx, uint16_t v) { CTX->it->type = CBR_NEGINT; CTX->it->u = v; }
static void on_n32(void *ctx, uint32_t v) { CTX->it->type = CBR_NEGINT; CTX->it->u = v; }
static void on_n64(void *ctx, uint64_t v) { CTX->it->type = CBR_NEGINT; CTX->it->u = v; }
static void on_bytes(void *ctx, cbor_data d, uint64_t n)
{
	CTX->it->type = CBR_BYTES; CTX->it->ptr = d; CTX->it->len = (size_t)n;
}
static void on_text(void *ctx, cbor_data d, uint64_t n)
{
	CTX->it->type = CBR_TEXT; CTX->it->ptr = d; CTX->it->len = (size_t)n;
}
static void on_indef_string(void *ctx) { CTX->unsupported = true; }
static void on_array(void *ctx, uint64_t n) { CTX->it->type = CBR_ARRAY; CTX->it->u = n; }
static void on_indef_array(void *ctx) { CTX->it->type = CBR_ARRAY; CTX->it->indef = true; }
static void on_map(void *ctx, uint64_t n) { CTX->it->type = CBR_MAP; CTX->it->u = n; }
static void on_indef_map(void *ctx) { CTX->it->type = CBR_MAP; CTX->it->indef = true; }
static void on_tag(void *ctx, uint64_t t) { CTX->it->type = CBR_TAG; CTX->it->u = t; }
static void on_f4(void *ctx, float f) { CTX->it->type = CBR_FLOAT; CTX->it->f = f; }
static void on_f8(void *ctx, double f) { CTX->it->type = CBR_FLOAT; CTX->it->f = f; }
static void on_undef(void *ctx) { CTX->it->type = CBR_UNDEF; }
static void on_null(void *ctx) { CTX->it->type = CBR_NULL; }
static void on_bool(void *ctx, bool b) { CTX->it->type = CBR_BOOL; CTX->it->b = b; }
static void on_break(void *ctx) { CTX->it->type = CBR_BREAK; }

#undef CTX

/* libcbor 0.8's header comments have the definite/indefinite string and
 * collection callbacks swapped; the field names below are what it calls. */
static const struct cbor_callbacks dec_callbacks = {
	.uint8 = on_u8, .uint16 = on_u16, .uint32 = on_u32, .uint64 = on_u64,
	.negint8 = on_n8, .negint16 = on_n16, .negint32 = on_n32, .negint64 = on_n64,
	.byte_string = on_bytes, .byte_string_start = on_indef_string,
	.string = on_text, .string_start = on_indef_string,
	.array_start = on_array, .indef_array_start = on_indef_array,
	.map_start = on_map, .indef_map_start = on_indef_map,
	.tag = on_tag,
	.float2 = on_f4, .float4 = on_f4, .float8 = on_f8,
	.undefined = on_undef, .null = on_null, .boolean = on_bool,
	.indef_break = on_break,
};

void cbr_init(cbr *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p + len;
	r->err_msg = NULL;
}

static int fail(cbr *r, const char *msg)
{
	if (!r->err_msg)
		r->err_msg = msg;
	r->p = r->end; /* nothing more is read after an error */
	return CHAT_EINVAL;
}

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. Text
 * we decode is echoed to other clients (ids, bodies keys, commands), and a
 * strict peer rejects a whole event over one bad string. */
static bool valid_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint8_t lo = 0x80, hi = 0xbf; /* bounds of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

int cbr_next(cbr *r, cbr_item *it)
{
	if (r->err_msg)
		return CHAT_EINVAL;
	if (r->p >= r->end)
		return fail(r, "truncated CBOR");
	memset(it, 0, sizeof(*it));
	struct dec_ctx ctx = { .it = it };
	struct cbor_decoder_result res =
		cbor_stream_decode(r->p, (size_t)(r->end - r->p), &dec_callbacks, &ctx);
	if (res.status == CBOR_DECODER_NEDATA)
		return fail(r, "truncated CBOR");
	if (res.status != CBOR_DECODER_FINISHED || res.read == 0 || (it->type == 0 && !ctx.unsupported))
		return fail(r, "malformed CBOR");
	if (ctx.unsupported)
		return fail(r, "indefinite-length strings are not supported");
	/* A definite string's bytes must lie within the input (libcbor checks,
	 * but the bound is what makes ptr safe to hand out, so check again). */
	if ((it->type == CBR_BYTES || it->type == CBR_TEXT) &&
	    (it->len > (size_t)(r->end - r->p) || res.read > (size_t)(r->end - r->p)))
		return fail(r, "truncated CBOR");
	if (it->type == CBR_TEXT && !valid_utf8(it->ptr, it->len))
		return fail(r, "text string is not valid UTF-8");
	r->p += res.read;
	return CHAT_OK;
}

/* Skips nested content without recursion: a stack of open collections. */
struct level {
	uint64_t left; /* items still to read (definite) */
	uint64_t seen; /* items read (indefinite maps must end on a whole pair) */
	bool indef, map;
};

/* Opens a level for a container header; false on a forged count. */
static bool open_level(cbr *r, struct level *lv, const cbr_item *it)
{
	*lv = (struct level){ .indef = it->indef, .map = it->type == CBR_MAP };
	if (it->type == CBR_TAG) {
		lv->left = 1;
		return true;
	}
	if (it->indef)
		return true;
	if (lv->map && it->u > UINT64_MAX / 2)
		return false;
	lv->left = lv->map ? it->u * 2 : it->u;
	/* every item takes at least one byte: a count beyond the input is forged */
	return lv->left <= (uint64_t)(r->end - r->p);
}

static bool is_container(const cbr_item *it)
{
	return it->type == CBR_TAG || it->type == CBR_ARRAY || it->type == CBR_MAP;
}

int cbr_skip(cbr *r, const cbr_item *it)
{
	struct level st[CBR_MAX_DEPTH];
	int depth = 0;

	if (it->type == CBR_BREAK)
		return fail(r, "unexpected CBOR break");
	if (!is_container(it))
		return CHAT_OK;
	if (!open_level(r, &st[depth++], it))
		return fail(r, "truncated CBOR");
	while (depth > 0) {
		struct level *lv = &st[depth - 1];
		if (!lv->indef && lv->left == 0) {
			depth--;
			continue;
		}
		cbr_item c;
		if (cbr_next(r, &c))
			return CHAT_EINVAL;
		if (c.type == CBR_BREAK) {
			if (!lv->indef)
				return fail(r, "unexpected CBOR break");
			if (lv->map && lv->seen % 2)
				return fail(r, "CBOR map with a key but no value");
			depth--;
			continue;
		}
		lv->seen++;
		if (!lv->indef)
			lv->left--;
		if (is_container(&c)) {
			if (depth == CBR_MAX_DEPTH)
				return fail(r, "CBOR nested too deeply");
			if (!open_level(r, &st[depth++], &c))
				return fail(r, "truncated CBOR");
		}
	}
	return CHAT_OK;
}

int cbr_skip_next(cbr *r)
{
	cbr_item it;
	if (cbr_next(r, &it))
		return CHAT_EINVAL;
	if (it.type == CBR_BREAK)
		return fail(r, "unexpected CBOR break");
	return cbr_skip(r, &it);
}

static bool collection_next(cbr *r, const cbr_item *c, uint64_t *i)
{
	if (r->err_msg)
		return false;
	if (!c->indef)
		return *i < c->u;
	/* Peek for a BREAK: 0xff ends an indefinite collection. */
	if (r->p < r->end && *r->p == 0xff) {
		r->p++;
		return false;
	}
	if (r->p >= r->end) {
		fail(r, "truncated CBOR");
		return false;
	}
	return true;
}

bool cbr_map_next(cbr *r, const cbr_item *map, uint64_t *i, cbr_item *key)
{
	if (!collection_next(r, map, i))
		return false;
	(*i)++;
	if (cbr_next(r, key))
		return false;
	if (key->type != CBR_TEXT) {
		fail(r, "CBOR map key is not a text string");
		return false;
	}
	return true;
}

bool cbr_array_next(cbr *r, const cbr_item *arr, uint64_t *i)
{
	if (!collection_next(r, arr, i))
		return false;
	(*i)++;
	return true;
}

bool cbr_eq(const cbr_item *it, const char *s)
{
	size_t n = strlen(s);
	return (it->type == CBR_TEXT || it->type == CBR_BYTES) && it->len == n &&
	       memcmp(it->ptr, s, n) == 0;
}

/* ---- writer ---- */

void cbw_init(cbw *w)
{
	memset(w, 0, sizeof(*w));
}

void cbw_free(cbw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static bool reserve(cbw *w, size_t n)
{
	if (w->oom)
		return false;
	if (n > SIZE_MAX - w->len || chat_grow(&w->buf, &w->cap, w->len + n, 1, 256)) {
		w->oom = true;
		return false;
	}
	return true;
}

/* Every CBOR head fits in 9 bytes. */
#define HEAD(encode_call)                                   \
	do {                                                \
		if (!reserve(w, 9))                         \
			return;                             \
		w->len += encode_call;                      \
	} while (0)

void cbw_map(cbw *w, size_t pairs) { HEAD(cbor_encode_map_start(pairs, w->buf + w->len, 9)); }
void cbw_array(cbw *w, size_t n) { HEAD(cbor_encode_array_start(n, w->buf + w->len, 9)); }
void cbw_uint(cbw *w, uint64_t v) { HEAD(cbor_encode_uint(v, w->buf + w->len, 9)); }
void cbw_bool(cbw *w, bool v) { HEAD(cbor_encode_bool(v, w->buf + w->len, 9)); }
void cbw_null(cbw *w) { HEAD(cbor_encode_null(w->buf + w->len, 9)); }

void cbw_raw(cbw *w, const void *p, size_t n)
{
	if (!reserve(w, n))
		return;
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void cbw_textn(cbw *w, const char *s, size_t n)
{
	HEAD(cbor_encode_string_start(n, w->buf + w->len, 9));
	cbw_raw(w, s, n);
}

void cbw_text(cbw *w, const char *s) { cbw_textn(w, s, strlen(s)); }

void cbw_bytes(cbw *w, const void *p, size_t n)
{
	HEAD(cbor_encode_bytestring_start(n, w->buf + w->len, 9));
	cbw_raw(w, p, n);
}

int cbw_status(const cbw *w)
{
	return w->oom ? CHAT_ENOMEM : CHAT_OK;
}

const char *cbr_map_open(cbr *r, const void *buf, size_t len, cbr_item *map, const char *not_map)
{
	cbr_init(r, buf, len);
	if (cbr_next(r, map) == CHAT_OK && map->type == CBR_MAP)
		return NULL;
	if (r->err_msg)
		return r->err_msg;
	return not_map ? not_map : "the payload must be a CBOR map";
}

const char *cbr_map_close(const cbr *r, const char *trailing)
{
	if (r->err_msg)
		return r->err_msg;
	if (!cbr_done(r))
		return trailing ? trailing : "trailing bytes after the CBOR map";
	return NULL;
}

void cbr_fields_open(cbr_fields *f, const void *buf, size_t len, const char *not_map)
{
	f->i = 0;
	f->not_map = cbr_map_open(&f->r, buf, len, &f->map, not_map);
}

bool cbr_fields_next(cbr_fields *f)
{
	if (f->not_map || !cbr_map_next(&f->r, &f->map, &f->i, &f->key))
		return false;
	f->at = f->r.p;
	return cbr_next(&f->r, &f->val) == CHAT_OK;
}

void cbr_fields_skip(cbr_fields *f)
{
	cbr_skip(&f->r, &f->val); /* a failure sets r.err_msg: cbr_fields_next stops */
}

const char *cbr_fields_close(const cbr_fields *f, const char *trailing)
{
	return f->not_map ? f->not_map : cbr_map_close(&f->r, trailing);
}
