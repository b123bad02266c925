// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* webpush.c — RFC 8291 encryption and RFC 8292 VAPID (see webpush.h). */
#include "webpush.h"

#include "creds.h"

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_SIZE 4096
#define HEADER_LEN (16 + 4 + 1 + 65)

static bool b64url_dec(const char *s, uint8_t *out, size_t want)
{
	size_t n = 0;
	return s && sodium_base642bin(out, want, s, strlen(s), NULL, &n, NULL,
	                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 && n == want;
}

bool webpush_sub_parse(const char *json, size_t len, webpush_sub *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *j = cJSON_ParseWithLength(json, len);
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "endpoint");
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(keys, "p256dh");
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(keys, "auth");
	bool ok = cJSON_IsObject(j) && cJSON_IsString(ep) && cJSON_IsString(p) && cJSON_IsString(a) &&
	          strlen(ep->valuestring) <= WEBPUSH_ENDPOINT_MAX &&
	          (!strncmp(ep->valuestring, "https://", 8) || !strncmp(ep->valuestring, "http://", 7)) &&
	          !strpbrk(ep->valuestring, " \r\n") && b64url_dec(p->valuestring, out->p256dh, 65) &&
	          out->p256dh[0] == 4 && b64url_dec(a->valuestring, out->auth, 16);
	if (ok)
		snprintf(out->endpoint, sizeof(out->endpoint), "%s", ep->valuestring);
	cJSON_Delete(j);
	return ok;
}

bool p256_public_raw(EVP_PKEY *k, uint8_t out[65])
{
	size_t n = 0;
	return EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, 65, &n) == 1 &&
	       n == 65 && out[0] == 4;
}

/* A P-256 key from its raw parts (priv may be NULL: a public key). */
static EVP_PKEY *p256_fromdata(const uint8_t pub[65], const BIGNUM *priv)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	if (b && ctx && OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 65) &&
	    (!priv || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, priv)) &&
	    (params = OSSL_PARAM_BLD_to_param(b)) && EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &k, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

EVP_PKEY *p256_from_private(const uint8_t d[32])
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
	BIGNUM *bn = BN_bin2bn(d, 32, NULL);
	uint8_t pub[65];
	EVP_PKEY *k = NULL;
	if (pt && bn && EC_POINT_mul(g, pt, bn, NULL, NULL, NULL) == 1 &&
	    EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL) == 65)
		k = p256_fromdata(pub, bn);
	BN_clear_free(bn);
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return k;
}

static void hmac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[32])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, klen);
	crypto_auth_hmacsha256_update(&st, msg, mlen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

uint8_t *webpush_encrypt(const uint8_t ua_public[65], const uint8_t auth[16], const void *plaintext,
                         size_t len, EVP_PKEY *as_key, const uint8_t *salt_in, size_t *outlen)
{
	if (len > RECORD_SIZE - 16 - 1 - 86)
		return NULL;
	EVP_PKEY *as = as_key ? as_key : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ua = p256_fromdata(ua_public, NULL);
	EVP_PKEY_CTX *dctx = as ? EVP_PKEY_CTX_new(as, NULL) : NULL;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint8_t as_public[65], ecdh[32], prk_key[32], ikm[32], prk[32], cek[32], nonce[32], salt[16];
	uint8_t info[14 + 65 + 65 + 1], *out = NULL, *pt = NULL;
	size_t elen = sizeof(ecdh);
	bool ok = ua && c && dctx && p256_public_raw(as, as_public) && EVP_PKEY_derive_init(dctx) == 1 &&
	          EVP_PKEY_derive_set_peer(dctx, ua) == 1 && EVP_PKEY_derive(dctx, ecdh, &elen) == 1 &&
	          elen == 32;
	if (ok) {
		if (salt_in)
			memcpy(salt, salt_in, 16);
		else
			randombytes_buf(salt, 16);
		/* PRK_key = HMAC(auth, ecdh); IKM = HMAC(PRK_key, "WebPush: info" 0
		 * ua_public as_public 1) — HKDF with one block (RFC 8291 §3.4) */
		hmac(auth, 16, ecdh, 32, prk_key);
		memcpy(info, "WebPush: info", 14); /* with its NUL */
		memcpy(info + 14, ua_public, 65);
		memcpy(info + 79, as_public, 65);
		info[144] = 1;
		hmac(prk_key, 32, info, sizeof(info), ikm);
		hmac(salt, 16, ikm, 32, prk);
		static const uint8_t cek_info[] = "Content-Encoding: aes128gcm\0\1";
		static const uint8_t nonce_info[] = "Content-Encoding: nonce\0\1";
		hmac(prk, 32, cek_info, sizeof(cek_info) - 1, cek);
		hmac(prk, 32, nonce_info, sizeof(nonce_info) - 1, nonce);
		out = malloc(HEADER_LEN + len + 1 + 16);
		pt = malloc(len + 1);
		ok = out && pt;
	}
	int n = 0, fin = 0;
	if (ok) {
		memcpy(pt, plaintext, len);
		pt[len] = 2; /* the last record's padding delimiter, no padding */
		memcpy(out, salt, 16);
		out[16] = 0, out[17] = 0, out[18] = RECORD_SIZE >> 8, out[19] = RECORD_SIZE & 0xff;
		out[20] = 65;
		memcpy(out + 21, as_public, 65);
		ok = EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, NULL, NULL) == 1 &&
		     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
		     EVP_EncryptInit_ex(c, NULL, NULL, cek, nonce) == 1 &&
		     EVP_EncryptUpdate(c, out + HEADER_LEN, &n, pt, (int)len + 1) == 1 &&
		     EVP_EncryptFinal_ex(c, out + HEADER_LEN + n, &fin) == 1 &&
		     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + HEADER_LEN + n + fin) == 1;
	}
	if (ok) {
		*outlen = HEADER_LEN + (size_t)n + (size_t)fin + 16;
	} else {
		free(out);
		out = NULL;
	}
	sodium_memzero(ecdh, sizeof(ecdh));
	sodium_memzero(prk_key, sizeof(prk_key));
	sodium_memzero(ikm, sizeof(ikm));
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(cek, sizeof(cek));
	if (pt)
		sodium_memzero(pt, len + 1);
	free(pt);
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(ua);
	if (!as_key)
		EVP_PKEY_free(as);
	return out;
}

char *vapid_authorization(EVP_PKEY *vapid, const char *endpoint, const char *subject, time_t now)
{
	/* aud: the origin, scheme://host[:port] */
	const char *host = strstr(endpoint, "://");
	if (!host)
		return NULL;
	size_t olen = (size_t)(host + 3 - endpoint) + strcspn(host + 3, "/?#");
	char aud[WEBPUSH_ENDPOINT_MAX + 1];
	snprintf(aud, sizeof(aud), "%.*s", (int)olen, endpoint);
	uint8_t pub[65];
	if (!p256_public_raw(vapid, pub))
		return NULL;
	cJSON *c = cJSON_CreateObject();
	char *cs = NULL;
	if (c) {
		cJSON_AddStringToObject(c, "aud", aud);
		cJSON_AddNumberToObject(c, "exp", (double)(now + 12 * 3600));
		cJSON_AddStringToObject(c, "sub", subject);
		cs = cJSON_PrintUnformatted(c);
		cJSON_Delete(c);
	}
	char *jwt = cs ? jws_es256(vapid, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}", cs) : NULL;
	char *k = b64url(pub, sizeof(pub)), *out = NULL;
	if (jwt && k) {
		size_t n = strlen(jwt) + strlen(k) + sizeof("vapid t=, k=");
		if ((out = malloc(n)))
			snprintf(out, n, "vapid t=%s, k=%s", jwt, k);
	}
	cJSON_free(cs);
	free(jwt);
	free(k);
	return out;
}
