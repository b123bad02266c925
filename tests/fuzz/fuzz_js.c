// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_js — what cluster mode's JetStream backend decodes from JetStream
 * (store/js_codec.c): the first byte picks the decoder, the rest is its
 * input.
 *   0 an API or publish answer (JSON)       js_parse_api
 *   1 a subject token back into an id        js_dec_id
 *   2 a conversation's tokens                js_dec_conv
 *   3 a cid header / key token               js_dec_cid
 *   4 a cred record (chat_acct)              js_cred_decode
 *   5 prefs (chat_prefs)                     js_prefs_decode
 *   6 a push target (chat_push)              js_push_decode
 *   7 a dedup claim (chat_dedup)             js_claim_decode
 *   8 a header number and a subject's seq    js_parse_u64, js_subject_last_u64
 *   9 a message read at the leader (JSON)    js_parse_msg_get, then its headers
 *  10 a NATS header block                    js_parse_hdrs
 *  11 a live event's body (<P>.node.<id>.ev) js_live_decode (store/js_sess.h)
 *  12 a session (chat_sess), a heartbeat     js_sess_decode, js_hb_decode
 *  13 a send's Chat-Rcpts header             js_rcpts_has
 * Checks: every decoder either refuses or yields a value that encodes back
 * to exactly the input (the encodings are canonical), and an answer's
 * fields stay within their ranges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "js_codec.h"
#include "js_sess.h"

static void fail(const char *why)
{
	fprintf(stderr, "fuzz_js: %s\n", why);
	abort();
}

static void same(const void *a, size_t an, const void *b, size_t bn, const char *what)
{
	if (an != bn || memcmp(a, b, an) != 0)
		fail(what);
}

/* Each header's key is printable without ':' and both lie inside the block. */
static const uint8_t *hb_start, *hb_end;
static int count_hdr(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	(void)arg;
	if (kl == 0 || memchr(k, ':', kl) || memchr(v, '\r', vl) || memchr(v, '\n', vl))
		fail("header split");
	if (hb_start && ((const uint8_t *)k < hb_start || (const uint8_t *)v + vl > hb_end))
		fail("header outside the block");
	return CHAT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	const char *s = (const char *)in;
	char out[1024];
	uint8_t v[8192];
	switch (data[0] % 14) {
	case 0: {
		js_api_answer a;
		if (js_parse_api(s, n, &a) == CHAT_OK) {
			if (strnlen(a.desc, sizeof(a.desc)) == sizeof(a.desc))
				fail("description not terminated");
			if (a.ok && (a.code || a.err_code))
				fail("an answer both ok and an error");
			if (!a.ok && (a.code < 0 || a.code > 999 || a.err_code < 0 || a.err_code > 99999))
				fail("error code out of range");
			if (a.seq > 9007199254740992ull)
				fail("seq beyond 2^53");
		}
		break;
	}
	case 1: {
		char id[256];
		size_t k = js_dec_id(id, sizeof(id), s, n);
		if (k) {
			if (strlen(id) != k || k > CHAT_USER_MAX)
				fail("id length");
			size_t e = js_enc_id(out, sizeof(out), id, k);
			same(out, e, s, n, "id token does not encode back");
		}
		break;
	}
	case 2: {
		char conv[CHAT_CONV_MAX + 64];
		size_t k = js_dec_conv(conv, sizeof(conv), s, n);
		if (k) {
			size_t e = js_enc_conv(out, sizeof(out), conv);
			same(out, e, s, n, "conversation does not encode back");
		}
		break;
	}
	case 3: {
		store_cid c;
		if (js_dec_cid(s, n, &c)) {
			if (!c.is_uint && (c.len == 0 || c.len > STORE_CID_MAX))
				fail("cid length");
			size_t e = js_enc_cid(out, sizeof(out), &c);
			same(out, e, s, n, "cid does not encode back");
		}
		break;
	}
	case 4: {
		uint8_t h[STORE_HASH_LEN];
		enum store_role role;
		if (js_cred_decode(in, n, h, &role) == CHAT_OK) {
			if (role > STORE_ROLE_MAX)
				fail("role");
			uint64_t created = 0;
			for (int i = 0; i < 8; i++)
				created = created << 8 | in[1 + STORE_HASH_LEN + i];
			/* a record with the role byte of a plain service is not what the
			 * encoder writes, but older writers may have: accepted, not round-tripped */
			size_t e = js_cred_encode(v, sizeof(v), h, created, role, n == 42);
			if (!(n == 42 && role == STORE_ROLE_SERVICE))
				same(v, e, in, n, "cred record does not encode back");
		}
		break;
	}
	case 5: {
		store_prefs p;
		if (js_prefs_decode(in, n, &p) == CHAT_OK)
			same(v, js_prefs_encode(v, &p), in, n, "prefs do not encode back");
		break;
	}
	case 6: {
		store_push p;
		if (js_push_decode(in, n, &p) == CHAT_OK) {
			if (p.token < s || p.token + p.token_len != s + n)
				fail("token outside the value");
			same(v, js_push_encode(v, sizeof(v), &p), in, n, "push target does not encode back");
		}
		break;
	}
	case 7: {
		js_claim c;
		if (js_claim_decode(in, n, &c) == CHAT_OK)
			same(v, js_claim_encode(v, sizeof(v), &c), in, n, "claim does not encode back");
		break;
	}
	case 8: {
		uint64_t x;
		if (js_parse_u64(s, n, &x)) {
			int k = snprintf(out, sizeof(out), "%llu", (unsigned long long)x);
			/* leading zeros are accepted; the value is the digits' */
			size_t z = 0;
			while (z + 1 < n && s[z] == '0')
				z++;
			same(out, (size_t)k, s + z, n - z, "number");
		}
		if (js_subject_last_u64(s, n, &x) && x == 0)
			fail("seq 0 accepted");
		break;
	}
	case 9: {
		js_api_answer a;
		char subj[256];
		uint64_t seq = 0;
		uint8_t *h, *d;
		size_t hl, dl;
		if (js_parse_msg_get(s, n, &a, subj, sizeof(subj), &seq, &h, &hl, &d, &dl) == CHAT_OK && a.ok) {
			if (seq == 0 || !subj[0] || strnlen(subj, sizeof(subj)) == sizeof(subj))
				fail("message fields");
			if ((hl && !h) || (dl && !d))
				fail("lengths without bytes");
			if (h)
				js_parse_hdrs(h, hl, count_hdr, NULL);
		} else if (h || d) {
			fail("bytes handed out with a refusal");
		}
		free(h);
		free(d);
		break;
	}
	case 10:
		hb_start = in;
		hb_end = in + n;
		js_parse_hdrs(in, n, count_hdr, NULL);
		hb_start = hb_end = NULL;
		break;
	case 11: {
		jstore_live_dev *d = NULL;
		const uint8_t *b = NULL;
		size_t k = 0, bl = 0;
		if (js_live_decode(in, n, &d, &k, &b, &bl) == CHAT_OK) {
			if (!k || k > JS_LIVE_DEVS_MAX || b < in || b + bl != in + n)
				fail("live event fields");
			size_t e = js_live_encode(v, sizeof(v), d, k, b, bl);
			if (n <= sizeof(v))
				same(v, e, in, n, "live event round trip");
		} else if (d) {
			fail("devices handed out with a refusal");
		}
		free(d);
		break;
	}
	case 12: {
		char node[JS_NODE_MAX + 1];
		uint64_t x;
		if (js_sess_decode(in, n, node, &x) == CHAT_OK) {
			size_t e = js_sess_encode(v, sizeof(v), node, x);
			same(v, e, in, n, "session round trip");
		}
		if (js_hb_decode(in, n, &x) == CHAT_OK)
			same(v, js_hb_encode(v, x), in, n, "heartbeat round trip");
		break;
	}
	case 13: {
		/* the stream seq asked about: the input's first 8 bytes */
		uint64_t q = 0;
		for (size_t i = 0; i < 8 && i < n; i++)
			q = q << 8 | in[i];
		const char *r = n > 8 ? s + 8 : "";
		size_t rl = n > 8 ? n - 8 : 0;
		char num[24];
		int k = snprintf(num, sizeof(num), ":%llu", (unsigned long long)q);
		/* listed: its decimal follows a ':' somewhere in the value */
		if (js_rcpts_has(r, rl, q) && !memmem(r, rl, num, (size_t)k))
			fail("a stream seq listed that the value does not name");
		break;
	}
	}
	return 0;
}
