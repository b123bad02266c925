// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_keystore_js — what the key server's JetStream store decodes from
 * messages it reads back (keyserver/keystore_js.c): a device record, a
 * one-time key, a key-log leaf, a device-list change, a Nats-Sequence
 * header value, and ids as subject tokens. The first byte picks the
 * decoder; the rest is the message body. A decoded record must re-encode
 * to the same bytes (the formats have one encoding each), and a token must
 * hold only subject-safe bytes.
 */
#include "keystore_js.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 6) {
	case 0: {
		ksjs_dev r;
		if (ksjs_dev_decode(p, n, &r)) {
			uint8_t v[KSJS_DEV_LEN];
			ksjs_dev_encode(v, &r);
			if (n != sizeof v || memcmp(v, p, n) != 0)
				abort();
		}
		break;
	}
	case 1: {
		ks_opk o;
		uint8_t ik[KS_KEY_LEN], v[KSJS_OPK_LEN];
		if (ksjs_opk_decode(p, n, &o, ik)) {
			ksjs_opk_encode(v, &o, ik);
			if (n != sizeof v || memcmp(v, p, n) != 0)
				abort();
		}
		break;
	}
	case 2: {
		ks_log_entry e;
		if (ksjs_leaf_decode(p, n, &e)) {
			uint8_t v[512];
			size_t m = ksjs_leaf_encode(v, sizeof v, &e);
			if (m != n || memcmp(v, p, n) != 0)
				abort();
		}
		break;
	}
	case 3: {
		bool add;
		char dev[CHAT_DEVICE_MAX + 1];
		if (ksjs_ulist_decode(p, n, &add, dev) && strlen(dev) != n - 2)
			abort();
		break;
	}
	case 4: {
		char s[32];
		uint64_t v;
		if (n < sizeof s) {
			memcpy(s, p, n);
			s[n] = 0;
			if (ksjs_parse_u64(s, &v)) {
				char back[32];
				snprintf(back, sizeof back, "%llu", (unsigned long long)v);
				if (strlen(back) > strlen(s))
					abort();
			}
		}
		break;
	}
	default: {
		char out[1024];
		size_t m = ksjs_token(out, sizeof out, (const char *)p, n);
		for (size_t i = 0; i < m; i++)
			if (out[i] == '.' || out[i] == '*' || out[i] == '>' || out[i] <= ' ')
				abort();
		if (m && strlen(out) != m)
			abort();
		break;
	}
	}
	return 0;
}
