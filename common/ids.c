// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
#include "ids.h"

#include <string.h>

bool chat_id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static bool valid_id(const char *s, size_t len, size_t max)
{
	if (!s || len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!chat_id_char(s[i]))
			return false;
	return true;
}

bool chat_valid_user(const char *s, size_t len) { return valid_id(s, len, CHAT_USER_MAX); }
bool chat_valid_device(const char *s, size_t len) { return valid_id(s, len, CHAT_DEVICE_MAX); }
bool chat_valid_group(const char *s, size_t len) { return valid_id(s, len, CHAT_GROUP_MAX); }

bool chat_parse_addr(const char *s, size_t len, const char **user, size_t *ulen,
                     const char **dev, size_t *dlen)
{
	if (!s)
		return false;
	const char *slash = memchr(s, '/', len);
	if (!slash)
		return false;
	size_t ul = (size_t)(slash - s);
	size_t dl = len - ul - 1;
	if (!chat_valid_user(s, ul) || !chat_valid_device(slash + 1, dl))
		return false;
	*user = s;
	*ulen = ul;
	*dev = slash + 1;
	*dlen = dl;
	return true;
}

static int bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

size_t chat_dm_conv(char *out, const char *a, size_t alen, const char *b, size_t blen)
{
	int c = bytecmp(a, alen, b, blen);
	if (c == 0)
		return 0;
	if (c > 0) {
		const char *t = a; a = b; b = t;
		size_t tl = alen; alen = blen; blen = tl;
	}
	memcpy(out, "dm:", 3);
	memcpy(out + 3, a, alen);
	out[3 + alen] = ':';
	memcpy(out + 4 + alen, b, blen);
	out[4 + alen + blen] = '\0';
	return 4 + alen + blen;
}

enum chat_conv_kind chat_parse_conv(const char *s, size_t len, const char **p1, size_t *l1,
                                    const char **p2, size_t *l2)
{
	if (!s)
		return CHAT_CONV_INVALID;
	if (len > 2 && memcmp(s, "g:", 2) == 0) {
		if (!chat_valid_group(s + 2, len - 2))
			return CHAT_CONV_INVALID;
		*p1 = s + 2; *l1 = len - 2; *p2 = NULL; *l2 = 0;
		return CHAT_CONV_GROUP;
	}
	if (len > 3 && memcmp(s, "dm:", 3) == 0) {
		const char *a = s + 3;
		const char *colon = memchr(a, ':', len - 3);
		if (!colon)
			return CHAT_CONV_INVALID;
		size_t al = (size_t)(colon - a), bl = len - 4 - al;
		if (!chat_valid_user(a, al) || !chat_valid_user(colon + 1, bl) ||
		    bytecmp(a, al, colon + 1, bl) >= 0)
			return CHAT_CONV_INVALID;
		*p1 = a; *l1 = al; *p2 = colon + 1; *l2 = bl;
		return CHAT_CONV_DM;
	}
	return CHAT_CONV_INVALID;
}

size_t chat_addr_user_len(const char *addr)
{
	const char *slash = strchr(addr, '/');
	return slash ? (size_t)(slash - addr) : strlen(addr);
}
