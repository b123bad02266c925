// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* request.c — the decoder of chat-media's MQTT requests (media_req_parse).
 *
 * One pass over the bytes with the streaming reader (cbor_io.h): nothing is
 * allocated, strings stay pointers into the input. Unknown keys are ignored
 * (wire contract §4); a known key with the wrong type, a missing field, an
 * invalid address, a duplicate `to` entry or more than MEDIA_TO_MAX of them
 * is an error whose sentence becomes the bad_request's msg. Kept apart from
 * the store so the fuzz target (tests/fuzz/fuzz_media.c) links only this.
 */
#include "media.h"

#include <string.h>

bool media_id_valid(const char *s, size_t len)
{
	if (len != MEDIA_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* A content type: 1..MEDIA_TYPE_MAX printable ASCII characters. */
static bool type_valid(const uint8_t *p, size_t len)
{
	if (len == 0 || len > MEDIA_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

static const char *read_to(cbr *rd, media_req *r)
{
	cbr_item arr;
	if (cbr_next(rd, &arr) || arr.type != CBR_ARRAY)
		return rd->err_msg ? rd->err_msg : "to must be an array of \"U/D\" addresses";
	uint64_t i = 0;
	r->nto = 0;
	while (cbr_array_next(rd, &arr, &i)) {
		cbr_item v;
		if (cbr_next(rd, &v))
			return rd->err_msg;
		const char *u, *d;
		size_t ul, dl;
		if (v.type != CBR_TEXT || !chat_parse_addr((const char *)v.ptr, v.len, &u, &ul, &d, &dl))
			return "every entry of to must be a device address \"U/D\"";
		if (r->nto == MEDIA_TO_MAX)
			return "to lists more than 1024 devices";
		for (uint32_t j = 0; j < r->nto; j++)
			if (r->to[j].len == v.len && memcmp(r->to[j].p, v.ptr, v.len) == 0)
				return "to lists a device twice";
		r->to[r->nto].p = (const char *)v.ptr;
		r->to[r->nto].len = v.len;
		r->nto++;
	}
	if (rd->err_msg)
		return rd->err_msg;
	if (r->nto == 0)
		return "to must list at least one device";
	return NULL;
}

const char *media_req_parse(const void *buf, size_t len, media_req *r)
{
	r->has_rid = false;
	r->op = MEDIA_OP_NONE;
	r->type = r->id = NULL;
	r->type_len = r->id_len = 0;
	r->size = 0;
	r->nto = 0;
	bool have_size = false, have_to = false, bad_op = false;
	const char *bad = NULL;

	cbr_fields f;
	cbr_fields_open(&f, buf, len, "the request must be a CBOR map");
	while (cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "rid")) {
			if (f.val.type != CBR_UINT) {
				bad = bad ? bad : "rid must be an unsigned integer";
				cbr_fields_skip(&f);
				continue;
			}
			r->has_rid = true;
			r->rid = f.val.u;
		} else if (cbr_eq(&f.key, "op")) {
			if (f.val.type == CBR_TEXT && cbr_eq(&f.val, "slot"))
				r->op = MEDIA_OP_SLOT;
			else if (f.val.type == CBR_TEXT && cbr_eq(&f.val, "get"))
				r->op = MEDIA_OP_GET;
			else
				bad_op = true;
			cbr_fields_skip(&f);
		} else if (cbr_eq(&f.key, "size")) {
			if (f.val.type != CBR_UINT)
				bad = bad ? bad : "size must be an unsigned integer";
			have_size = f.val.type == CBR_UINT;
			r->size = f.val.u;
			cbr_fields_skip(&f);
		} else if (cbr_eq(&f.key, "type")) {
			if (f.val.type != CBR_TEXT || !type_valid(f.val.ptr, f.val.len))
				bad = bad ? bad : "type must be a content type of 1 to 127 printable "
				                  "ASCII characters";
			else
				r->type = (const char *)f.val.ptr, r->type_len = f.val.len;
			cbr_fields_skip(&f);
		} else if (cbr_eq(&f.key, "id")) {
			if (f.val.type != CBR_TEXT || !media_id_valid((const char *)f.val.ptr, f.val.len))
				bad = bad ? bad : "id must be a blob id (22 base64url characters)";
			else
				r->id = (const char *)f.val.ptr, r->id_len = f.val.len;
			cbr_fields_skip(&f);
		} else if (cbr_eq(&f.key, "to")) {
			/* read_to reads the array from its header: step back to it */
			f.r.p = f.at;
			const char *why = read_to(&f.r, r);
			if (why) {
				bad = bad ? bad : why;
				if (!f.r.err_msg) {
					/* skip what read_to left of the array */
					f.r.p = f.at;
					cbr_skip_next(&f.r);
				}
			}
			have_to = !why;
		} else {
			cbr_fields_skip(&f);
		}
	}
	const char *env = cbr_fields_close(&f, "trailing bytes after the request map");
	if (env)
		return env;
	if (bad)
		return bad;
	if (bad_op || r->op == MEDIA_OP_NONE)
		return "op must be \"slot\" or \"get\"";
	if (!r->has_rid)
		return "rid (an unsigned integer) is missing";
	if (r->op == MEDIA_OP_SLOT) {
		if (!have_size)
			return "size is missing";
		if (r->size == 0)
			return "size must be at least 1";
		if (!r->type)
			return "type is missing";
		if (!have_to)
			return "to is missing";
	} else if (!r->id) {
		return "id is missing";
	}
	return NULL;
}
