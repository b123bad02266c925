// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_media — chat-media's request decoder (media_req_parse): arbitrary
 * payloads as they arrive on chat/media/req/U/D. A refusal must be a
 * sentence; an accepted request must hold what the store relies on: an op,
 * a rid, for a slot a size >= 1, a content type of 1..127 printable ASCII
 * bytes and 1..1024 distinct valid "U/D" addresses, for a grant a valid
 * blob id, every string inside the input.
 */
#include "ids.h"
#include "media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static media_req R;

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_media: %s\n", what);
		abort();
	}
}

static bool inside(const uint8_t *in, size_t len, const char *p, size_t n)
{
	return (const uint8_t *)p >= in && (const uint8_t *)p + n <= in + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *bad = media_req_parse(data, size, &R);
	if (bad) {
		check(strlen(bad) > 0, "an empty refusal");
		return 0;
	}
	check(R.has_rid, "accepted without a rid");
	if (R.op == MEDIA_OP_SLOT) {
		check(R.size >= 1, "size 0 accepted");
		check(R.type && R.type_len >= 1 && R.type_len <= MEDIA_TYPE_MAX, "bad type length");
		check(inside(data, size, R.type, R.type_len), "type outside the input");
		for (size_t i = 0; i < R.type_len; i++)
			check(R.type[i] >= 0x20 && R.type[i] <= 0x7e, "type not printable ASCII");
		check(R.nto >= 1 && R.nto <= MEDIA_TO_MAX, "bad to count");
		for (uint32_t i = 0; i < R.nto; i++) {
			const char *u, *d;
			size_t ul, dl;
			check(inside(data, size, R.to[i].p, R.to[i].len), "to outside the input");
			check(chat_parse_addr(R.to[i].p, R.to[i].len, &u, &ul, &d, &dl), "bad address");
			for (uint32_t j = 0; j < i; j++)
				check(R.to[j].len != R.to[i].len ||
				      memcmp(R.to[j].p, R.to[i].p, R.to[i].len) != 0, "duplicate address");
		}
	} else {
		check(R.op == MEDIA_OP_GET, "accepted without an op");
		check(R.id && media_id_valid(R.id, R.id_len), "bad id");
		check(inside(data, size, R.id, R.id_len), "id outside the input");
	}
	return 0;
}
