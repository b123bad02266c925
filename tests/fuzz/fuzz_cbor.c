// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_cbor — the streaming CBOR reader (common/cbor_io.c) over arbitrary
 * bytes, the way the decoders use it.
 *
 * Three readings of the same input must agree: a recursive walk with
 * cbr_next / cbr_map_next / cbr_array_next (the decoders' loops), a
 * cbr_skip_next of each top-level item, and libcbor's own full decoder. On
 * top of "no crash", every string handed out must lie inside the input, the
 * reader must never move backwards or past the end, a failure must leave an
 * error message, and an item the reader accepts must be one that libcbor
 * decodes to the same length. The one known difference: libcbor refuses
 * text strings that are not UTF-8 (overlong forms, surrogates), the reader
 * hands them out (docs/FUZZING.md).
 */
#include "cbor_io.h"
#include "err.h"
#include "fuzz_utf8.h"

#include <cbor.h>
#include <stdio.h>
#include <stdlib.h>

static const uint8_t *BEG, *END;

static void bad(const char *why)
{
	fprintf(stderr, "cbor reader invariant broken: %s\n", why);
	abort();
}

static void check_pos(const cbr *r)
{
	if (r->p < BEG || r->p > END || r->end != END)
		bad("reader position outside the input");
}

static void check_item(const cbr_item *it)
{
	if ((it->type == CBR_BYTES || it->type == CBR_TEXT) &&
	    (it->ptr < BEG || it->len > (size_t)(END - it->ptr)))
		bad("string outside the input");
}

/* Walks one item whose header is `it` as the decoders do. Returns false on a
 * reader error (then the error message must be set). */
static bool walk(cbr *r, const cbr_item *it, int depth)
{
	check_item(it);
	check_pos(r);
	if (depth > CBR_MAX_DEPTH + 2)
		return cbr_skip(r, it) == CHAT_OK;
	uint64_t i = 0;
	if (it->type == CBR_MAP) {
		cbr_item key, v;
		while (cbr_map_next(r, it, &i, &key)) {
			check_item(&key);
			if (key.type != CBR_TEXT)
				bad("cbr_map_next gave a non-text key");
			const uint8_t *before = r->p;
			if (cbr_next(r, &v))
				break;
			if (r->p <= before)
				bad("cbr_next did not advance");
			if (!walk(r, &v, depth + 1))
				break;
		}
	} else if (it->type == CBR_ARRAY) {
		cbr_item v;
		while (cbr_array_next(r, it, &i)) {
			if (cbr_next(r, &v) || !walk(r, &v, depth + 1))
				break;
		}
	} else if (it->type == CBR_TAG) {
		cbr_item v;
		if (!cbr_next(r, &v))
			walk(r, &v, depth + 1);
	} else if (it->type == CBR_BREAK) {
		cbr_skip(r, it); /* must fail */
		if (!r->err_msg)
			bad("a lone BREAK was skipped without an error");
	}
	check_pos(r);
	if (r->err_msg && r->p != r->end)
		bad("an error left the reader mid-input");
	return r->err_msg == NULL;
}

/* Does any text string header in [p, end) carry invalid UTF-8? A flat
 * header walk: strings are skipped whole by cbr_next. */
static bool has_bad_utf8(const uint8_t *p, const uint8_t *end)
{
	cbr r;
	cbr_item it;
	cbr_init(&r, p, (size_t)(end - p));
	while (!cbr_done(&r) && cbr_next(&r, &it) == CHAT_OK) {
		if (it.type == CBR_TEXT && !fz_utf8_ok(it.ptr, it.len))
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BEG = data;
	END = data + size;

	/* 1. the decoders' walk */
	cbr r;
	cbr_item it;
	cbr_init(&r, data, size);
	while (!cbr_done(&r)) {
		if (cbr_next(&r, &it)) {
			if (!r.err_msg)
				bad("cbr_next failed without a message");
			break;
		}
		if (!walk(&r, &it, 0))
			break;
	}
	check_pos(&r);

	/* 2. skipping whole items, each compared with libcbor's full decoder:
	 * what the reader accepts, libcbor must decode to the same length. */
	cbr s;
	cbr_init(&s, data, size);
	while (!cbr_done(&s)) {
		const uint8_t *before = s.p;
		if (cbr_skip_next(&s)) {
			if (!s.err_msg)
				bad("cbr_skip_next failed without a message");
			break;
		}
		if (s.p <= before)
			bad("cbr_skip_next did not advance");
		struct cbor_load_result res;
		cbor_item_t *item = cbor_load(before, (size_t)(END - before), &res);
		if (item)
			cbor_decref(&item);
		if (res.error.code == CBOR_ERR_MEMERROR)
			continue; /* libcbor's tree would not fit: nothing to compare */
		if (res.error.code == CBOR_ERR_SYNTAXERROR && has_bad_utf8(before, s.p))
			continue; /* libcbor checks UTF-8, the reader does not (documented) */
		if (res.error.code != CBOR_ERR_NONE || res.read != (size_t)(s.p - before)) {
			fprintf(stderr, "item at offset %zu: reader took %zu bytes, libcbor error %d after %zu\n",
			        (size_t)(before - data), (size_t)(s.p - before), (int)res.error.code, res.read);
			bad("the reader and libcbor disagree on an item");
		}
	}
	check_pos(&s);
	return 0;
}
