// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_xmpp — chatbench's scanner of an XMPP server's stream
 * (bench/xmpp_scan.h, mode xmpp) on arbitrary bytes, fed as chatbench's
 * read loop feeds it: items split off the front, an incomplete rest kept.
 *
 * Properties checked besides "no crash": an item is never empty and never
 * longer than what is left; the items and the kept rest add up to the
 * input; an element item starts with '<'; an attribute's value and the
 * name checks stay inside their element; a stream header or element is
 * also found whole when the input is cut right after it (a complete item
 * does not depend on what follows).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "xmpp_scan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bad(const char *why, size_t off)
{
	fprintf(stderr, "xmpp_scan property broken: %s at offset %zu\n", why, off);
	abort();
}

static void check_element(const uint8_t *el, size_t len, size_t off)
{
	static const char *const attrs[] = { "h", "type", "id", "from", "to", "xmlns" };
	static const char *const names[] = { "r", "a", "message", "iq", "presence", "stream:features",
		                             "stream:error", "success", "failure", "enabled" };
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		size_t vl = 0;
		const uint8_t *v = x_attr(el, len, attrs[i], &vl);
		if (v && (v < el || v + vl > el + len))
			bad("attribute value outside its element", off);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		(void)x_name_is(el, len, names[i]);
	(void)x_has(el, len, "<received");
	const uint8_t *b = memmem(el, len, "<body>", 6);
	if (b && (size_t)(el + len - b) >= 6 + 32)
		(void)(hex64(b + 6) ^ hex64(b + 22));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		int kind = 0;
		size_t n = xml_item(data + off, size - off, &kind);
		if (n == 0)
			break; /* incomplete: chatbench keeps the rest for the next read */
		if (n > size - off)
			bad("item longer than the input left", off);
		if (kind < 1 || kind > 4)
			bad("unknown kind", off);
		if ((kind == 1 || kind == 2 || kind == 3) && data[off] != '<')
			bad("an element that does not start with '<'", off);
		if (kind == 1 || kind == 2) {
			/* the same item, with nothing after it */
			uint8_t *copy = malloc(n);
			if (!copy)
				abort();
			memcpy(copy, data + off, n);
			int k2 = 0;
			size_t n2 = xml_item(copy, n, &k2);
			free(copy);
			if (n2 != n || k2 != kind)
				bad("a complete item depends on what follows it", off);
			check_element(data + off, n, off);
		}
		off += n;
	}
	if (off > size)
		bad("scanned past the end", off);
	return 0;
}
