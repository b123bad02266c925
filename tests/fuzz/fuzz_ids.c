// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_ids — the identifiers of the wire contract (common/ids.c): user,
 * device and group ids, device addresses "U/D" and conversation ids
 * "dm:A:B" / "g:G", parsed from arbitrary bytes.
 *
 * Properties checked besides "no crash": validity is exactly "1..max of
 * [A-Za-z0-9._-]"; a parsed address or conversation hands out slices of the
 * input that are themselves valid ids and that rebuild the input exactly;
 * chat_dm_conv is symmetric, canonical and parses back to its two users.
 */
#include "ids.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bad(const char *why, const uint8_t *d, size_t n)
{
	fprintf(stderr, "ids property broken: %s on '%.*s'\n", why, (int)n, (const char *)d);
	abort();
}

static bool model_valid(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool inside(const char *p, size_t n, const char *s, size_t len)
{
	return p >= s && n <= len && (size_t)(p - s) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past the end. */
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	memcpy(s, data, size);

	if (chat_valid_user(s, size) != model_valid(s, size, CHAT_USER_MAX))
		bad("chat_valid_user", data, size);
	if (chat_valid_device(s, size) != model_valid(s, size, CHAT_DEVICE_MAX))
		bad("chat_valid_device", data, size);
	if (chat_valid_group(s, size) != model_valid(s, size, CHAT_GROUP_MAX))
		bad("chat_valid_group", data, size);

	const char *u = NULL, *d = NULL;
	size_t ul = 0, dl = 0;
	if (chat_parse_addr(s, size, &u, &ul, &d, &dl)) {
		if (!inside(u, ul, s, size) || !inside(d, dl, s, size) || u != s ||
		    ul + 1 + dl != size || s[ul] != '/' || d != s + ul + 1 ||
		    !model_valid(u, ul, CHAT_USER_MAX) || !model_valid(d, dl, CHAT_DEVICE_MAX))
			bad("chat_parse_addr accepted", data, size);
	} else {
		const char *slash = memchr(s, '/', size);
		if (slash && model_valid(s, (size_t)(slash - s), CHAT_USER_MAX) &&
		    model_valid(slash + 1, size - (size_t)(slash - s) - 1, CHAT_DEVICE_MAX))
			bad("chat_parse_addr refused", data, size);
	}

	const char *p1 = NULL, *p2 = NULL;
	size_t l1 = 0, l2 = 0;
	char conv[CHAT_CONV_MAX + 1];
	switch (chat_parse_conv(s, size, &p1, &l1, &p2, &l2)) {
	case CHAT_CONV_DM:
		if (!inside(p1, l1, s, size) || !inside(p2, l2, s, size) ||
		    !model_valid(p1, l1, CHAT_USER_MAX) || !model_valid(p2, l2, CHAT_USER_MAX))
			bad("chat_parse_conv dm slices", data, size);
		/* canonical: rebuilding it gives the same bytes, either order */
		if (chat_dm_conv(conv, p1, l1, p2, l2) != size || memcmp(conv, s, size) != 0 ||
		    chat_dm_conv(conv, p2, l2, p1, l1) != size || memcmp(conv, s, size) != 0)
			bad("a dm conv that is not canonical", data, size);
		break;
	case CHAT_CONV_GROUP:
		if (p1 != s + 2 || l1 != size - 2 || p2 || !model_valid(p1, l1, CHAT_GROUP_MAX))
			bad("chat_parse_conv group", data, size);
		break;
	case CHAT_CONV_INVALID:
		break;
	default:
		bad("chat_parse_conv kind", data, size);
	}

	/* Two users from the input (split at its first ':' or in the middle):
	 * chat_dm_conv must be symmetric and parse back. */
	const char *colon = memchr(s, ':', size);
	size_t al = colon ? (size_t)(colon - s) : size / 2;
	const char *b = colon ? colon + 1 : s + al;
	size_t bl = size - (size_t)(b - s);
	if (model_valid(s, al, CHAT_USER_MAX) && model_valid(b, bl, CHAT_USER_MAX)) {
		char c1[CHAT_CONV_MAX + 1], c2[CHAT_CONV_MAX + 1];
		size_t n1 = chat_dm_conv(c1, s, al, b, bl), n2 = chat_dm_conv(c2, b, bl, s, al);
		bool same = al == bl && memcmp(s, b, al) == 0;
		if (same ? (n1 || n2) : (!n1 || n1 != n2 || memcmp(c1, c2, n1) != 0 || strlen(c1) != n1))
			bad("chat_dm_conv not symmetric", data, size);
		if (n1 && chat_parse_conv(c1, n1, &p1, &l1, &p2, &l2) != CHAT_CONV_DM)
			bad("chat_dm_conv output does not parse", data, size);
	}
	free(s);
	return 0;
}
