// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* creds.c — service accounts, JWTs and provider answers (see creds.h). */
#include "creds.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CRED_FILE_MAX (64 * 1024)

char *b64url(const void *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = malloc(cap);
	if (out)
		sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

/* A JSON document, whole: trailing bytes other than white space refuse it. */
static cJSON *parse_strict(const char *s, size_t len)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, false);
	if (!j)
		return NULL;
	for (; end && end < s + len; end++)
		if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t' && *end != 0) {
			cJSON_Delete(j);
			return NULL;
		}
	return j;
}

static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Reads a small credential file whole (NUL-terminated); NULL with err. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CRED_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, CRED_FILE_MAX + 1, f) : 0;
	bool bad = ferror(f) || n > CRED_FILE_MAX;
	fclose(f);
	if (!buf || bad) {
		if (buf)
			sodium_memzero(buf, CRED_FILE_MAX + 1);
		free(buf);
		snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : "unreadable or over 64 KiB");
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

static void wipe_free(char *buf, size_t len)
{
	if (buf)
		sodium_memzero(buf, len);
	free(buf);
}

static EVP_PKEY *pem_key(const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return k;
}

void fcm_account_free(fcm_account *a)
{
	free(a->project_id);
	free(a->client_email);
	free(a->token_uri);
	free(a->private_key_id);
	EVP_PKEY_free(a->key);
	memset(a, 0, sizeof(*a));
}

bool fcm_account_parse(const char *json, size_t len, fcm_account *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	cJSON *j = parse_strict(json, len);
	if (!j || !cJSON_IsObject(j)) {
		snprintf(err, errlen, "not a JSON object");
		cJSON_Delete(j);
		return false;
	}
	const char *type = str_of(j, "type"), *pid = str_of(j, "project_id"),
	           *email = str_of(j, "client_email"), *uri = str_of(j, "token_uri"),
	           *pem = str_of(j, "private_key"), *kid = str_of(j, "private_key_id");
	const char *missing = !type || strcmp(type, "service_account") ? "\"type\": \"service_account\""
	                      : !pid ? "project_id" : !email ? "client_email" : !uri ? "token_uri"
	                      : !pem ? "private_key" : NULL;
	bool ok = false;
	if (missing) {
		snprintf(err, errlen, "no %s: is it a service account's key file?", missing);
	} else if (strncmp(uri, "https://", 8) && strncmp(uri, "http://", 7)) {
		snprintf(err, errlen, "token_uri is not an http(s) URL");
	} else if (strspn(pid, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(pid)) {
		snprintf(err, errlen, "project_id has characters a project id cannot have");
	} else if (!(out->key = pem_key(pem, strlen(pem))) || EVP_PKEY_get_base_id(out->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "private_key is not an RSA private key in PEM");
	} else {
		out->project_id = strdup(pid);
		out->client_email = strdup(email);
		out->token_uri = strdup(uri);
		out->private_key_id = kid ? strdup(kid) : NULL;
		ok = out->project_id && out->client_email && out->token_uri && (!kid || out->private_key_id);
		if (!ok)
			snprintf(err, errlen, "out of memory");
	}
	cJSON *pk = cJSON_GetObjectItemCaseSensitive(j, "private_key");
	if (cJSON_IsString(pk))
		sodium_memzero(pk->valuestring, strlen(pk->valuestring));
	cJSON_Delete(j);
	if (!ok)
		fcm_account_free(out);
	return ok;
}

bool fcm_account_load(const char *path, fcm_account *out, char *err, size_t errlen)
{
	size_t len;
	char *buf = slurp(path, &len, err, errlen);
	if (!buf)
		return false;
	char why[256];
	bool ok = fcm_account_parse(buf, len, out, why, sizeof(why));
	if (!ok)
		snprintf(err, errlen, "%s: %s", path, why);
	wipe_free(buf, len);
	return ok;
}

/* Signs "b64(header).b64(claims)"; raw: ECDSA's DER turned into r||s. */
static char *jws(EVP_PKEY *key, const char *header, const char *claims, bool ecdsa)
{
	char *h = b64url(header, strlen(header)), *c = b64url(claims, strlen(claims));
	char *input = NULL, *out = NULL, *sig64 = NULL;
	unsigned char *sig = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	if (!h || !c || !md)
		goto done;
	size_t il = strlen(h) + 1 + strlen(c);
	if (!(input = malloc(il + 1)))
		goto done;
	snprintf(input, il + 1, "%s.%s", h, c);
	size_t sl = 0;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &sl, (const unsigned char *)input, il) != 1 ||
	    !(sig = malloc(sl)) ||
	    EVP_DigestSign(md, sig, &sl, (const unsigned char *)input, il) != 1)
		goto done;
	if (ecdsa) {
		const unsigned char *p = sig;
		unsigned char raw[64];
		const BIGNUM *r, *s;
		if (!(es = d2i_ECDSA_SIG(NULL, &p, (long)sl)))
			goto done;
		ECDSA_SIG_get0(es, &r, &s);
		if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
			goto done;
		sig64 = b64url(raw, 64);
	} else {
		sig64 = b64url(sig, sl);
	}
	if (!sig64)
		goto done;
	size_t ol = il + 1 + strlen(sig64);
	if ((out = malloc(ol + 1)))
		snprintf(out, ol + 1, "%s.%s", input, sig64);
done:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	free(h);
	free(c);
	free(input);
	free(sig);
	free(sig64);
	return out;
}

char *jws_es256(EVP_PKEY *key, const char *header, const char *claims)
{
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return NULL;
	return jws(key, header, claims, true);
}

char *jws_rs256(EVP_PKEY *key, const char *header, const char *claims)
{
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
		return NULL;
	return jws(key, header, claims, false);
}

/* s as a JSON string (quotes included) into a new cJSON-printed buffer. */
static char *print_obj(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

char *fcm_assertion(const fcm_account *a, time_t now)
{
	cJSON *h = cJSON_CreateObject();
	if (h) {
		cJSON_AddStringToObject(h, "alg", "RS256");
		cJSON_AddStringToObject(h, "typ", "JWT");
		if (a->private_key_id)
			cJSON_AddStringToObject(h, "kid", a->private_key_id);
	}
	cJSON *c = cJSON_CreateObject();
	if (c) {
		cJSON_AddStringToObject(c, "iss", a->client_email);
		cJSON_AddStringToObject(c, "scope", "https://www.googleapis.com/auth/firebase.messaging");
		cJSON_AddStringToObject(c, "aud", a->token_uri);
		cJSON_AddNumberToObject(c, "iat", (double)now);
		cJSON_AddNumberToObject(c, "exp", (double)(now + 3600));
	}
	char *hs = print_obj(h), *cs = print_obj(c);
	char *out = hs && cs ? jws_rs256(a->key, hs, cs) : NULL;
	cJSON_free(hs);
	cJSON_free(cs);
	return out;
}

char *fcm_token_request_body(const char *assertion)
{
	static const char pre[] = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
	size_t n = sizeof(pre) + strlen(assertion);
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s", pre, assertion); /* base64url and '.': nothing to escape */
	return out;
}

bool oauth_grant_parse(const char *body, size_t len, char **token, long *expires_in)
{
	*token = NULL;
	cJSON *j = parse_strict(body, len);
	const char *t = j ? str_of(j, "access_token") : NULL;
	const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "expires_in") : NULL;
	bool ok = t && strlen(t) < 4096 && (!e || (cJSON_IsNumber(e) && e->valuedouble >= 1 &&
	                                             e->valuedouble <= 86400 * 7));
	for (const char *p = t; ok && *p; p++)
		ok = *p > 0x20 && *p < 0x7f;  /* it goes into a header line */
	if (ok) {
		*expires_in = e ? (long)e->valuedouble : 3600;
		ok = (*token = strdup(t)) != NULL;
	}
	cJSON_Delete(j);
	return ok;
}

EVP_PKEY *apns_key_parse(const char *pem, size_t len, char *err, size_t errlen)
{
	EVP_PKEY *k = pem_key(pem, len);
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || EVP_PKEY_get_bits(k) != 256) {
		snprintf(err, errlen, "not a P-256 private key in PEM (an APNs .p8 file)");
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

EVP_PKEY *apns_key_load(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = slurp(path, &len, err, errlen);
	if (!buf)
		return NULL;
	char why[256];
	EVP_PKEY *k = apns_key_parse(buf, len, why, sizeof(why));
	if (!k)
		snprintf(err, errlen, "%s: %s", path, why);
	wipe_free(buf, len);
	return k;
}

char *apns_provider_token(EVP_PKEY *key, const char *key_id, const char *team_id, time_t now)
{
	cJSON *h = cJSON_CreateObject();
	if (h) {
		cJSON_AddStringToObject(h, "alg", "ES256");
		cJSON_AddStringToObject(h, "kid", key_id);
	}
	cJSON *c = cJSON_CreateObject();
	if (c) {
		cJSON_AddStringToObject(c, "iss", team_id);
		cJSON_AddNumberToObject(c, "iat", (double)now);
	}
	char *hs = print_obj(h), *cs = print_obj(c);
	char *out = hs && cs ? jws_es256(key, hs, cs) : NULL;
	cJSON_free(hs);
	cJSON_free(cs);
	return out;
}

static bool copy_out(const char *s, char *out, size_t cap)
{
	if (!s)
		return false;
	snprintf(out, cap, "%s", s);
	return true;
}

bool oauth_error(const char *body, size_t len, char *out, size_t cap)
{
	out[0] = 0;
	cJSON *j = parse_strict(body, len);
	const char *e = cJSON_IsObject(j) ? str_of(j, "error") : NULL;
	const char *d = e ? str_of(j, "error_description") : NULL;
	if (e && d)
		snprintf(out, cap, "%s (%s)", e, d);
	bool ok = d || copy_out(e, out, cap);
	cJSON_Delete(j);
	return ok;
}

bool fcm_error_code(const char *body, size_t len, char *out, size_t cap)
{
	out[0] = 0;
	cJSON *j = parse_strict(body, len);
	const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	const char *code = NULL;
	const cJSON *d, *details = cJSON_GetObjectItemCaseSensitive(e, "details");
	if (cJSON_IsArray(details))
		cJSON_ArrayForEach(d, details)
			if (!code && cJSON_IsObject(d))
				code = str_of(d, "errorCode");
	if (!code && cJSON_IsObject(e))
		code = str_of(e, "status");
	bool ok = copy_out(code, out, cap);
	cJSON_Delete(j);
	return ok;
}

bool apns_reason(const char *body, size_t len, char *out, size_t cap)
{
	out[0] = 0;
	cJSON *j = parse_strict(body, len);
	bool ok = cJSON_IsObject(j) && copy_out(str_of(j, "reason"), out, cap);
	cJSON_Delete(j);
	return ok;
}
