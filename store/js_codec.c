// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_codec.c — see js_codec.h. */
#include "js_codec.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "ids.h"

size_t js_enc_id(char *out, size_t cap, const char *id, size_t len)
{
	size_t o = 0;
	if (len == 0 || len > CHAT_USER_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!chat_id_char(id[i]))
			return 0;
		if (id[i] == '.') {
			if (o + 3 >= cap)
				return 0;
			memcpy(out + o, "=2E", 3);
			o += 3;
		} else {
			if (o + 1 >= cap)
				return 0;
			out[o++] = id[i];
		}
	}
	out[o] = '\0';
	return o;
}

size_t js_dec_id(char *out, size_t cap, const char *tok, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = tok[i];
		if (c == '=') {
			if (len - i < 3 || tok[i + 1] != '2' || tok[i + 2] != 'E')
				return 0;
			c = '.';
			i += 2;
		} else if (c == '.' || !chat_id_char(c)) {
			return 0;
		}
		if (o + 1 >= cap || o >= CHAT_USER_MAX)
			return 0;
		out[o++] = c;
	}
	if (o == 0)
		return 0;
	out[o] = '\0';
	return o;
}

size_t js_enc_conv(char *out, size_t cap, const char *conv)
{
	size_t n;
	if (!strncmp(conv, "g:", 2)) {
		if (cap < 3)
			return 0;
		memcpy(out, "g.", 2);
		n = js_enc_id(out + 2, cap - 2, conv + 2, strlen(conv + 2));
		return n ? n + 2 : 0;
	}
	if (strncmp(conv, "dm:", 3) != 0 || cap < 4)
		return 0;
	const char *a = conv + 3, *colon = strchr(a, ':');
	if (!colon)
		return 0;
	memcpy(out, "dm.", 3);
	size_t na = js_enc_id(out + 3, cap - 3, a, (size_t)(colon - a));
	if (!na || 3 + na + 1 >= cap)
		return 0;
	out[3 + na] = '.';
	size_t nb = js_enc_id(out + 4 + na, cap - 4 - na, colon + 1, strlen(colon + 1));
	return nb ? 4 + na + nb : 0;
}

size_t js_dec_conv(char *out, size_t cap, const char *enc, size_t len)
{
	const char *dot;
	size_t n;
	if (len > 2 && !memcmp(enc, "g.", 2)) {
		if (cap < 3)
			return 0;
		memcpy(out, "g:", 2);
		n = js_dec_id(out + 2, cap - 2, enc + 2, len - 2);
		return n ? n + 2 : 0;
	}
	if (len < 4 || memcmp(enc, "dm.", 3) != 0 || cap < 4)
		return 0;
	dot = memchr(enc + 3, '.', len - 3);
	if (!dot)
		return 0;
	memcpy(out, "dm:", 3);
	size_t na = js_dec_id(out + 3, cap - 3, enc + 3, (size_t)(dot - enc - 3));
	if (!na || 3 + na + 1 >= cap)
		return 0;
	out[3 + na] = ':';
	size_t nb = js_dec_id(out + 4 + na, cap - 4 - na, dot + 1, len - (size_t)(dot + 1 - enc));
	return nb ? 4 + na + nb : 0;
}

size_t js_enc_addr(char *out, size_t cap, const char *addr)
{
	const char *slash = strchr(addr, '/');
	if (!slash)
		return 0;
	size_t nu = js_enc_id(out, cap, addr, (size_t)(slash - addr));
	if (!nu || nu + 1 >= cap)
		return 0;
	out[nu] = '.';
	size_t nd = js_enc_id(out + nu + 1, cap - nu - 1, slash + 1, strlen(slash + 1));
	return nd ? nu + 1 + nd : 0;
}

size_t js_enc_cid(char *out, size_t cap, const store_cid *cid)
{
	int n;
	if (cid->is_uint) {
		n = snprintf(out, cap, "u%llu", (unsigned long long)cid->u);
		return n > 0 && (size_t)n < cap ? (size_t)n : 0;
	}
	if (cid->len == 0 || cid->len > STORE_CID_MAX || cap < 2 + 2 * cid->len)
		return 0;
	out[0] = 'b';
	for (size_t i = 0; i < cid->len; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", cid->bytes[i]);
	return 1 + 2 * cid->len;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool js_dec_cid(const char *s, size_t len, store_cid *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 2)
		return false;
	if (s[0] == 'u') {
		out->is_uint = true;
		/* canonical: no leading zero except "u0" */
		if (len > 2 && s[1] == '0')
			return false;
		return js_parse_u64(s + 1, len - 1, &out->u);
	}
	if (s[0] != 'b' || (len - 1) % 2 || (len - 1) / 2 > STORE_CID_MAX)
		return false;
	for (size_t i = 0; i < (len - 1) / 2; i++) {
		int h = hexval(s[1 + 2 * i]), l = hexval(s[2 + 2 * i]);
		if (h < 0 || l < 0)
			return false;
		out->bytes[i] = (uint8_t)(h << 4 | l);
	}
	out->len = (len - 1) / 2;
	return true;
}

bool js_valid_prefix(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > JS_PREFIX_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-'))
			return false;
	return true;
}

bool js_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* A JSON number that is a non-negative integer below 2^53 (JetStream's
 * sequences are u64, but cJSON reads doubles: 2^53 is far beyond any
 * stream this design runs). */
static bool json_u64(const cJSON *n, uint64_t *out)
{
	if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > 9007199254740992.0 ||
	    n->valuedouble != (double)(uint64_t)n->valuedouble)
		return false;
	*out = (uint64_t)n->valuedouble;
	return true;
}

int js_parse_api(const char *buf, size_t len, js_api_answer *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *j = cJSON_ParseWithLength(buf, len);
	int rc = CHAT_ECORRUPT;
	uint64_t v;
	if (!j || !cJSON_IsObject(j))
		goto done;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (err) {
		if (!cJSON_IsObject(err))
			goto done;
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(err, "err_code");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(err, "description");
		if (!json_u64(c, &v) || v > 999)
			goto done;
		out->code = (int)v;
		if (e) {
			if (!json_u64(e, &v) || v > 99999)
				goto done;
			out->err_code = (int)v;
		}
		if (cJSON_IsString(d))
			snprintf(out->desc, sizeof(out->desc), "%s", d->valuestring);
		rc = CHAT_OK;
		goto done;
	}
	out->ok = true;
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
	const cJSON *dup = cJSON_GetObjectItemCaseSensitive(j, "duplicate");
	const cJSON *succ = cJSON_GetObjectItemCaseSensitive(j, "success");
	if (seq && !json_u64(seq, &out->seq))
		goto done;
	if (dup && !cJSON_IsBool(dup))
		goto done;
	if (succ && !cJSON_IsBool(succ))
		goto done;
	out->duplicate = cJSON_IsTrue(dup);
	out->success = cJSON_IsTrue(succ);
	if (!seq && !succ)
		goto done; /* neither a publish's nor a delete's answer */
	rc = CHAT_OK;
done:
	cJSON_Delete(j);
	return rc;
}

static int b64(const cJSON *s, uint8_t **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (!s)
		return CHAT_OK;
	if (!cJSON_IsString(s))
		return CHAT_ECORRUPT;
	size_t n = strlen(s->valuestring);
	if (n == 0)
		return CHAT_OK;
	uint8_t *b = malloc(n / 4 * 3 + 3);
	if (!b)
		return CHAT_ENOMEM;
	if (sodium_base642bin(b, n / 4 * 3 + 3, s->valuestring, n, NULL, outlen, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(b);
		return CHAT_ECORRUPT;
	}
	*out = b;
	return CHAT_OK;
}

int js_parse_msg_get(const char *buf, size_t len, js_api_answer *a, char *subject, size_t cap,
                     uint64_t *seq, uint8_t **hdrs, size_t *hlen, uint8_t **data, size_t *dlen)
{
	*hdrs = *data = NULL;
	*hlen = *dlen = 0;
	memset(a, 0, sizeof(*a));
	cJSON *j = cJSON_ParseWithLength(buf, len);
	int rc = CHAT_ECORRUPT;
	uint64_t v;
	if (!j || !cJSON_IsObject(j))
		goto done;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (err) {
		cJSON_Delete(j);
		return js_parse_api(buf, len, a);
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (!cJSON_IsObject(m))
		goto done;
	const cJSON *sj = cJSON_GetObjectItemCaseSensitive(m, "subject");
	if (!cJSON_IsString(sj) || !*sj->valuestring || strlen(sj->valuestring) >= cap)
		goto done;
	if (!json_u64(cJSON_GetObjectItemCaseSensitive(m, "seq"), &v) || v == 0)
		goto done;
	if ((rc = b64(cJSON_GetObjectItemCaseSensitive(m, "hdrs"), hdrs, hlen)) != CHAT_OK ||
	    (rc = b64(cJSON_GetObjectItemCaseSensitive(m, "data"), data, dlen)) != CHAT_OK) {
		free(*hdrs);
		*hdrs = NULL;
		*hlen = 0;
		goto done;
	}
	snprintf(subject, cap, "%s", sj->valuestring);
	*seq = v;
	a->ok = true;
	a->seq = v;
	rc = CHAT_OK;
done:
	cJSON_Delete(j);
	return rc;
}

int js_parse_hdrs(const uint8_t *b, size_t n, js_hdr_cb cb, void *arg)
{
	const char *s = (const char *)b, *end = s + n;
	if (n < 10 || memcmp(s, "NATS/1.0", 8) != 0)
		return CHAT_ECORRUPT;
	const char *eol = memmem(s, n, "\r\n", 2);
	if (!eol)
		return CHAT_ECORRUPT;
	for (const char *p = eol + 2;;) {
		if (end - p < 2)
			return CHAT_ECORRUPT;
		if (p[0] == '\r' && p[1] == '\n')
			return p + 2 == end ? CHAT_OK : CHAT_ECORRUPT;
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			return CHAT_ECORRUPT;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return CHAT_ECORRUPT;
		for (const char *k = p; k < colon; k++)
			if ((unsigned char)*k <= ' ' || (unsigned char)*k >= 127)
				return CHAT_ECORRUPT;
		const char *v = colon + 1;
		while (v < eol && *v == ' ')
			v++;
		for (const char *q = v; q < eol; q++)
			if (*q == '\0' || *q == '\r' || *q == '\n')
				return CHAT_ECORRUPT;
		int rc = cb(arg, p, (size_t)(colon - p), v, (size_t)(eol - v));
		if (rc != CHAT_OK)
			return rc;
		p = eol + 2;
	}
}

size_t js_cred_encode(uint8_t *out, size_t cap, const uint8_t hash[STORE_HASH_LEN], uint64_t created,
                      enum store_role role, bool service)
{
	size_t n = 1 + STORE_HASH_LEN + 8 + (service && role != STORE_ROLE_SERVICE);
	if (cap < n)
		return 0;
	out[0] = 1;
	memcpy(out + 1, hash, STORE_HASH_LEN);
	js_be64_put(out + 1 + STORE_HASH_LEN, created);
	if (n > 1 + STORE_HASH_LEN + 8)
		out[n - 1] = (uint8_t)role;
	return n;
}

int js_cred_decode(const uint8_t *v, size_t len, uint8_t hash[STORE_HASH_LEN], enum store_role *role)
{
	if ((len != 1 + STORE_HASH_LEN + 8 && len != 2 + STORE_HASH_LEN + 8) || v[0] != 1)
		return CHAT_ECORRUPT;
	if (len == 2 + STORE_HASH_LEN + 8 && v[len - 1] > STORE_ROLE_MAX)
		return CHAT_ECORRUPT;
	if (hash)
		memcpy(hash, v + 1, STORE_HASH_LEN);
	if (role)
		*role = len == 2 + STORE_HASH_LEN + 8 ? (enum store_role)v[len - 1] : STORE_ROLE_SERVICE;
	return CHAT_OK;
}

size_t js_prefs_encode(uint8_t out[3], const store_prefs *p)
{
	out[0] = 1;
	out[1] = p->read_receipts ? 1 : 0;
	out[2] = (uint8_t)p->presence;
	return 3;
}

int js_prefs_decode(const uint8_t *v, size_t len, store_prefs *p)
{
	if (len != 3 || v[0] != 1 || v[1] > 1 || v[2] > STORE_PRESENCE_NOBODY)
		return CHAT_ECORRUPT;
	p->read_receipts = v[1] == 1;
	p->presence = (enum store_presence)v[2];
	return CHAT_OK;
}

size_t js_push_encode(uint8_t *out, size_t cap, const store_push *p)
{
	if (p->token_len == 0 || p->token_len > STORE_PUSH_TOKEN_MAX || cap < 3 + p->token_len ||
	    p->platform < STORE_PUSH_FCM || p->platform > STORE_PUSH_WEBPUSH)
		return 0;
	out[0] = 1;
	out[1] = (uint8_t)p->platform;
	out[2] = p->alert ? 1 : 0;
	memcpy(out + 3, p->token, p->token_len);
	return 3 + p->token_len;
}

int js_push_decode(const uint8_t *v, size_t len, store_push *p)
{
	if (len < 4 || len > 3 + STORE_PUSH_TOKEN_MAX || v[0] != 1 || v[1] < STORE_PUSH_FCM ||
	    v[1] > STORE_PUSH_WEBPUSH || v[2] > 1)
		return CHAT_ECORRUPT;
	p->platform = (enum store_push_platform)v[1];
	p->alert = v[2] == 1;
	p->token = (const char *)v + 3;
	p->token_len = len - 3;
	return CHAT_OK;
}

size_t js_claim_encode(uint8_t *out, size_t cap, const js_claim *c)
{
	size_t cl = strlen(c->conv), nl = strlen(c->node), n = 1 + 24 + 1 + cl + 1 + nl;
	if (cl == 0 || cl > CHAT_CONV_MAX || nl > JS_NODE_MAX || cap < n)
		return 0;
	out[0] = 1;
	js_be64_put(out + 1, c->seq0);
	js_be64_put(out + 9, c->ts);
	js_be64_put(out + 17, c->nonce);
	out[25] = (uint8_t)cl;
	memcpy(out + 26, c->conv, cl);
	out[26 + cl] = (uint8_t)nl;
	memcpy(out + 27 + cl, c->node, nl);
	return n;
}

int js_claim_decode(const uint8_t *v, size_t len, js_claim *c)
{
	memset(c, 0, sizeof(*c));
	if (len < 27 || v[0] != 1)
		return CHAT_ECORRUPT;
	size_t cl = v[25];
	if (cl == 0 || cl > CHAT_CONV_MAX || len < 27 + cl)
		return CHAT_ECORRUPT;
	size_t nl = v[26 + cl];
	if (nl > JS_NODE_MAX || len != 27 + cl + nl)
		return CHAT_ECORRUPT;
	c->seq0 = js_be64_get(v + 1);
	c->ts = js_be64_get(v + 9);
	c->nonce = js_be64_get(v + 17);
	memcpy(c->conv, v + 26, cl);
	memcpy(c->node, v + 27 + cl, nl);
	/* a conversation id is text without NULs, as the rest of the store keeps it */
	if (memchr(c->conv, '\0', cl) || memchr(c->node, '\0', nl) || c->seq0 == 0)
		return CHAT_ECORRUPT;
	return CHAT_OK;
}

bool js_subject_last_u64(const char *subj, size_t len, uint64_t *out)
{
	size_t i = len;
	while (i > 0 && subj[i - 1] != '.')
		i--;
	return js_parse_u64(subj + i, len - i, out) && *out > 0;
}

bool js_rcpts_has(const char *s, size_t len, uint64_t sseq)
{
	size_t i = 0;
	while (i < len) {
		size_t e = i, colon = len;
		while (e < len && s[e] != ',') {
			if (s[e] == ':')
				colon = e;
			e++;
		}
		uint64_t v;
		size_t dl = e - colon - 1; /* canonical decimals only: no leading zero */
		if (colon < e && colon > i && dl && (dl == 1 || s[colon + 1] != '0') &&
		    js_parse_u64(s + colon + 1, dl, &v) && v == sseq)
			return true;
		i = e + 1;
	}
	return false;
}
