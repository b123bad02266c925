// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* cbor_io.h — allocation-free CBOR reading and writing over libcbor.
 *
 * The plugin decodes every chat payload on the broker's only thread, so the
 * reader never builds a tree: it walks the buffer one item header at a time
 * (libcbor's cbor_stream_decode) and hands out pointers into the input for
 * strings. The writer appends to one growable buffer that the caller keeps
 * and reuses, so steady-state encoding does not allocate either.
 *
 * Limits: nesting depth CBR_MAX_DEPTH; indefinite-length byte and text
 * strings are refused (no client library emits them for our payloads);
 * indefinite-length arrays and maps are accepted; text strings must be
 * valid UTF-8 (RFC 8949 §3.1), so nothing we echo back is malformed.
 */
#ifndef CHAT_CBOR_IO_H
#define CHAT_CBOR_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CBR_MAX_DEPTH 16

enum cbr_type {
	CBR_UINT = 1, CBR_NEGINT, CBR_BYTES, CBR_TEXT, CBR_ARRAY, CBR_MAP, CBR_TAG,
	CBR_BOOL, CBR_NULL, CBR_UNDEF, CBR_FLOAT, CBR_BREAK,
};

typedef struct cbr_item {
	enum cbr_type type;
	uint64_t u;          /* UINT value; NEGINT: -1 - u; ARRAY/MAP: count; TAG: tag */
	const uint8_t *ptr;  /* BYTES/TEXT: the string's bytes, inside the input */
	size_t len;          /* BYTES/TEXT: length */
	bool indef;          /* ARRAY/MAP of indefinite length (ended by a BREAK) */
	bool b;              /* BOOL value */
	double f;            /* FLOAT value */
} cbr_item;

typedef struct cbr {
	const uint8_t *p, *end;
	const char *err_msg; /* set on the first error: what was wrong */
} cbr;

void cbr_init(cbr *r, const void *buf, size_t len);

/* Reads the next item's header (and, for strings, its bytes). Returns
 * CHAT_OK or CHAT_EINVAL (truncated, malformed, unsupported). */
int cbr_next(cbr *r, cbr_item *it);

/* Skips the rest of item `it` whose header was just read: the elements of an
 * array or map (recursively, depth-limited), a tag's content. Scalars: no-op. */
int cbr_skip(cbr *r, const cbr_item *it);

/* Reads and skips one whole item. */
int cbr_skip_next(cbr *r);

/* Iterates a map whose header `map` was just read. Call with *i = 0 first; on
 * each true return `key` points at the key (a text string) and the caller must
 * consume exactly one value (read it, or cbr_skip_next). Returns false at the
 * end or on error (then r->err_msg is set). Non-text keys are an error. */
bool cbr_map_next(cbr *r, const cbr_item *map, uint64_t *i, cbr_item *key);

/* Same for arrays: true while an element remains (not yet read). */
bool cbr_array_next(cbr *r, const cbr_item *arr, uint64_t *i);

/* Compares a TEXT/BYTES item with a C string. */
bool cbr_eq(const cbr_item *it, const char *s);

/* True when the whole input has been consumed. */
static inline bool cbr_done(const cbr *r) { return r->p == r->end; }

/* The envelope of a message that is one CBOR map. cbr_map_open starts
 * reading buf and reads the map's header into *map: NULL, or why buf does not
 * start with a map (the reader's error, else not_map; NULL for "the payload
 * must be a CBOR map"). cbr_map_close, after the map's entries: NULL, or why
 * the input is not exactly that map (the reader's error, else trailing; NULL
 * for "trailing bytes after the CBOR map"). */
const char *cbr_map_open(cbr *r, const void *buf, size_t len, cbr_item *map, const char *not_map);
const char *cbr_map_close(const cbr *r, const char *trailing);

/* A message that is one CBOR map, read a field at a time: the envelope of
 * cbr_map_open/cbr_map_close around cbr_map_next, each value's header read.
 *
 *	cbr_fields f;
 *	cbr_fields_open(&f, buf, len, NULL);
 *	while (cbr_fields_next(&f)) {
 *		if (cbr_eq(&f.key, "on")) … f.val …
 *		else cbr_fields_skip(&f);
 *	}
 *	const char *bad = cbr_fields_close(&f, NULL);
 *
 * On each true return key is the field's key, val its value's header and
 * at where the value starts; the caller reads the rest of a map or array
 * value (its entries, through f.r) or calls cbr_fields_skip. The loop ends
 * at the map's end or on the first error, which cbr_fields_close returns:
 * not a map (not_map, as cbr_map_open), the reader's, or trailing bytes
 * (trailing, as cbr_map_close); NULL when the input was exactly one map. */
typedef struct cbr_fields {
	cbr r;
	cbr_item key, val;
	const uint8_t *at;
	cbr_item map;
	uint64_t i;
	const char *not_map; /* set by cbr_fields_open when buf is no map */
} cbr_fields;

void cbr_fields_open(cbr_fields *f, const void *buf, size_t len, const char *not_map);
bool cbr_fields_next(cbr_fields *f);
/* Skips the current value; an error ends the loop. */
void cbr_fields_skip(cbr_fields *f);
const char *cbr_fields_close(const cbr_fields *f, const char *trailing);

/* ---- writer ---- */

typedef struct cbw {
	uint8_t *buf;
	size_t len, cap;
	bool oom; /* an allocation failed; all later writes are dropped */
} cbw;

void cbw_init(cbw *w);
void cbw_free(cbw *w);
static inline void cbw_reset(cbw *w) { w->len = 0; w->oom = false; }

void cbw_map(cbw *w, size_t pairs);
void cbw_array(cbw *w, size_t n);
void cbw_uint(cbw *w, uint64_t v);
void cbw_bool(cbw *w, bool v);
void cbw_null(cbw *w);
void cbw_text(cbw *w, const char *s);
void cbw_textn(cbw *w, const char *s, size_t n);
void cbw_bytes(cbw *w, const void *p, size_t n);
/* Appends bytes that are already CBOR (one or more encoded items). */
void cbw_raw(cbw *w, const void *p, size_t n);

/* CHAT_OK, or CHAT_ENOMEM when a write failed. */
int cbw_status(const cbw *w);

#endif
