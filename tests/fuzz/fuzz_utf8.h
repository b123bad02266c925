// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_utf8.h — strict UTF-8 validation (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), the rule libcbor and strict client
 * decoders apply to CBOR text strings. For the fuzz targets' checks. */
#ifndef CHAT_FUZZ_UTF8_H
#define CHAT_FUZZ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool fz_utf8_ok(const uint8_t *s, size_t n)
{
	static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
		         : (c & 0xf8) == 0xf0 ? 3 : 4;
		if (k == 4 || n - i - 1 < k)
			return false;
		uint32_t cp = k == 0 ? c : c & (0x3fu >> k);
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3fu);
		}
		if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

#endif
