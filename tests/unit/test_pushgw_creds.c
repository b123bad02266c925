// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* test_pushgw_creds.c — pushgw/creds.c: service-account files, the RS256
 * assertion of the OAuth2 jwt-bearer grant and the ES256 APNs provider
 * token (verified here with OpenSSL against the public key, the ES256
 * signature rebuilt from its raw r||s form), token grants and the
 * providers' error bodies; Web Push encryption against RFC 8291's published
 * example (Appendix A) and the VAPID header verified with its key.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "webpush.h"

static char *pem_of(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	ck_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

/* The three base64url parts of a JWT, decoded. */
typedef struct jwt {
	cJSON *header, *claims;
	unsigned char sig[1024];
	size_t sig_len;
	char signed_part[4096];
} jwt;

static void b64d(const char *s, size_t n, unsigned char *out, size_t cap, size_t *len)
{
	ck_assert_int_eq(sodium_base642bin(out, cap, s, n, NULL, len, NULL,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
}

static void jwt_split(const char *t, jwt *j)
{
	const char *d1 = strchr(t, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	ck_assert_ptr_nonnull(d2);
	ck_assert_ptr_null(strchr(d2 + 1, '.'));
	unsigned char buf[2048];
	size_t n;
	b64d(t, (size_t)(d1 - t), buf, sizeof(buf) - 1, &n);
	buf[n] = 0;
	j->header = cJSON_Parse((char *)buf);
	b64d(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof(buf) - 1, &n);
	buf[n] = 0;
	j->claims = cJSON_Parse((char *)buf);
	b64d(d2 + 1, strlen(d2 + 1), j->sig, sizeof(j->sig), &j->sig_len);
	snprintf(j->signed_part, sizeof(j->signed_part), "%.*s", (int)(d2 - t), t);
	ck_assert_ptr_nonnull(j->header);
	ck_assert_ptr_nonnull(j->claims);
}

static void jwt_free(jwt *j)
{
	cJSON_Delete(j->header);
	cJSON_Delete(j->claims);
}

static bool verify(EVP_PKEY *k, const jwt *j, const unsigned char *sig, size_t sl)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	          EVP_DigestVerify(md, sig, sl, (const unsigned char *)j->signed_part,
	                           strlen(j->signed_part)) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static char *account_json(const char *pem, const char *type)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "project_id", "chat-test-1");
	cJSON_AddStringToObject(o, "private_key_id", "kid123");
	cJSON_AddStringToObject(o, "private_key", pem);
	cJSON_AddStringToObject(o, "client_email", "pushgw@chat-test-1.iam.gserviceaccount.com");
	cJSON_AddStringToObject(o, "token_uri", "https://oauth2.googleapis.com/token");
	char *s = cJSON_Print(o);
	cJSON_Delete(o);
	return s;
}

START_TEST(fcm_assertion_verifies)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ck_assert_ptr_nonnull(k);
	char *pem = pem_of(k), *js = account_json(pem, "service_account");
	fcm_account a;
	char err[256];
	ck_assert_msg(fcm_account_parse(js, strlen(js), &a, err, sizeof(err)), "%s", err);
	ck_assert_str_eq(a.project_id, "chat-test-1");
	ck_assert_str_eq(a.token_uri, "https://oauth2.googleapis.com/token");
	char *t = fcm_assertion(&a, 1700000000);
	ck_assert_ptr_nonnull(t);
	jwt j;
	jwt_split(t, &j);
	ck_assert_str_eq(str(j.header, "alg"), "RS256");
	ck_assert_str_eq(str(j.header, "kid"), "kid123");
	ck_assert_str_eq(str(j.claims, "iss"), "pushgw@chat-test-1.iam.gserviceaccount.com");
	ck_assert_str_eq(str(j.claims, "aud"), "https://oauth2.googleapis.com/token");
	ck_assert_str_eq(str(j.claims, "scope"), "https://www.googleapis.com/auth/firebase.messaging");
	ck_assert(num(j.claims, "iat") == 1700000000);
	ck_assert(num(j.claims, "exp") == 1700003600);
	ck_assert(verify(k, &j, j.sig, j.sig_len));
	j.sig[10] ^= 1;
	ck_assert(!verify(k, &j, j.sig, j.sig_len));
	char *body = fcm_token_request_body(t);
	ck_assert(strncmp(body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=", 75) == 0);
	ck_assert_str_eq(body + 75, t);
	free(body);
	jwt_free(&j);
	free(t);
	fcm_account_free(&a);
	free(js);
	free(pem);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(fcm_account_refusals)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem = pem_of(ec);
	fcm_account a;
	char err[256];
	char *js = account_json(pem, "authorized_user");
	ck_assert(!fcm_account_parse(js, strlen(js), &a, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "service_account"));
	free(js);
	js = account_json(pem, "service_account"); /* an EC key: not RSA */
	ck_assert(!fcm_account_parse(js, strlen(js), &a, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "RSA"));
	free(js);
	const char *bad[] = { "", "[]", "{", "{\"type\":\"service_account\"}", "{} x", "null" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert(!fcm_account_parse(bad[i], strlen(bad[i]), &a, err, sizeof(err)));
	ck_assert(!fcm_account_load("/nonexistent/sa.json", &a, err, sizeof(err)));
	free(pem);
	EVP_PKEY_free(ec);
}
END_TEST

START_TEST(apns_token_is_es256_raw)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem = pem_of(k), err[256];
	EVP_PKEY *loaded = apns_key_parse(pem, strlen(pem), err, sizeof(err));
	ck_assert_msg(loaded != NULL, "%s", err);
	char *t = apns_provider_token(loaded, "ABC123DEFG", "TEAM123456", 1700000000);
	jwt j;
	jwt_split(t, &j);
	ck_assert_str_eq(str(j.header, "alg"), "ES256");
	ck_assert_str_eq(str(j.header, "kid"), "ABC123DEFG");
	ck_assert_str_eq(str(j.claims, "iss"), "TEAM123456");
	ck_assert(num(j.claims, "iat") == 1700000000);
	/* JWS: 64 bytes r||s, not DER; rebuilt as DER it verifies. */
	ck_assert_uint_eq(j.sig_len, 64);
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(j.sig, 32, NULL), BN_bin2bn(j.sig + 32, 32, NULL));
	unsigned char *der = NULL;
	int dl = i2d_ECDSA_SIG(es, &der);
	ck_assert(verify(k, &j, der, (size_t)dl));
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	jwt_free(&j);
	free(t);
	/* an RSA key is not an APNs key */
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	char *rpem = pem_of(rsa);
	ck_assert_ptr_null(apns_key_parse(rpem, strlen(rpem), err, sizeof(err)));
	ck_assert_ptr_null(apns_key_parse("junk", 4, err, sizeof(err)));
	free(rpem);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(loaded);
	free(pem);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(grants_and_errors)
{
	char *tok;
	long exp;
	const char *g = "{\"access_token\":\"ya29.abc\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";
	ck_assert(oauth_grant_parse(g, strlen(g), &tok, &exp));
	ck_assert_str_eq(tok, "ya29.abc");
	ck_assert_int_eq(exp, 3599);
	free(tok);
	const char *bad[] = { "{\"access_token\":\"a b\"}", "{\"access_token\":1}", "{}",
		              "{\"access_token\":\"x\",\"expires_in\":-5}", "{\"access_token\":\"x\"} {}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!oauth_grant_parse(bad[i], strlen(bad[i]), &tok, &exp), "%s", bad[i]);
	char code[64];
	const char *e = "{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\","
	                "\"status\":\"NOT_FOUND\",\"details\":[{\"@type\":"
	                "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"UNREGISTERED\"}]}}";
	ck_assert(fcm_error_code(e, strlen(e), code, sizeof(code)));
	ck_assert_str_eq(code, "UNREGISTERED");
	e = "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\"}}";
	ck_assert(fcm_error_code(e, strlen(e), code, sizeof(code)));
	ck_assert_str_eq(code, "UNAUTHENTICATED");
	/* found with a parser, not strstr: a message that mentions it is no code */
	e = "{\"error\":{\"message\":\"UNREGISTERED\"}}";
	ck_assert(!fcm_error_code(e, strlen(e), code, sizeof(code)));
	ck_assert(!fcm_error_code("UNREGISTERED", 12, code, sizeof(code)));
	e = "{\"reason\":\"BadDeviceToken\"}";
	ck_assert(apns_reason(e, strlen(e), code, sizeof(code)));
	ck_assert_str_eq(code, "BadDeviceToken");
	ck_assert(!apns_reason("", 0, code, sizeof(code)));
	/* the token endpoint's refusal (RFC 6749 §5.2), as Google words it */
	e = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
	ck_assert(oauth_error(e, strlen(e), code, sizeof(code)));
	ck_assert_str_eq(code, "invalid_grant (Invalid JWT Signature.)");
	e = "{ \"error\" : \"invalid_client\" }";
	ck_assert(oauth_error(e, strlen(e), code, sizeof(code)));
	ck_assert_str_eq(code, "invalid_client");
	/* a parser, not strstr: "error" inside another string or key is no code */
	const char *not_oauth[] = { "{\"message\":\"\\\"error\\\":\\\"x\\\"\"}",
		                    "{\"error_description\":\"x\"}", "{\"error\":{\"code\":401}}",
		                    "\"error\":\"x\"", "" };
	for (size_t i = 0; i < sizeof(not_oauth) / sizeof(not_oauth[0]); i++) {
		ck_assert_msg(!oauth_error(not_oauth[i], strlen(not_oauth[i]), code, sizeof(code)),
		              "%s", not_oauth[i]);
		ck_assert_str_eq(code, "");
	}
}
END_TEST

static size_t b64dec(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	ck_assert_int_eq(sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	return n;
}

/* RFC 8291, Appendix A: fixed keys and salt, so the message is known. */
START_TEST(webpush_rfc8291_vector)
{
	uint8_t as_priv[32], ua_pub[65], auth[16], salt[16], want[512], as_pub[65];
	ck_assert_uint_eq(b64dec("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw", as_priv, 32), 32);
	ck_assert_uint_eq(b64dec("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
	                         ua_pub, 65), 65);
	ck_assert_uint_eq(b64dec("BTBZMqHH6r4Tts7J_aSIgg", auth, 16), 16);
	ck_assert_uint_eq(b64dec("DGv6ra1nlYgDCS1FRnbzlw", salt, 16), 16);
	size_t wl = b64dec("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
	                   want, sizeof(want));
	EVP_PKEY *as = p256_from_private(as_priv);
	ck_assert_ptr_nonnull(as);
	ck_assert(p256_public_raw(as, as_pub));
	char *pub64 = b64url(as_pub, 65);
	ck_assert_str_eq(pub64, "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8");
	free(pub64);
	const char *pt = "When I grow up, I want to be a watermelon";
	size_t n = 0;
	uint8_t *body = webpush_encrypt(ua_pub, auth, pt, strlen(pt), as, salt, &n);
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_eq(n, wl);
	ck_assert(memcmp(body, want, wl) == 0);
	free(body);
	/* fresh key and salt: a different message of the same length */
	body = webpush_encrypt(ua_pub, auth, pt, strlen(pt), NULL, NULL, &n);
	ck_assert_uint_eq(n, wl);
	ck_assert(memcmp(body, want, 16) != 0);
	free(body);
	/* too long for one 4096-byte record */
	char big[4000] = { 0 };
	ck_assert_ptr_null(webpush_encrypt(ua_pub, auth, big, sizeof(big), NULL, NULL, &n));
	EVP_PKEY_free(as);
	/* the subscription's JSON */
	webpush_sub sub;
	const char *js = "{\"endpoint\":\"https://push.example.net/send/abc?x=1\",\"expirationTime\":null,"
	                 "\"keys\":{\"p256dh\":\"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4\","
	                 "\"auth\":\"BTBZMqHH6r4Tts7J_aSIgg\"}}";
	ck_assert(webpush_sub_parse(js, strlen(js), &sub));
	ck_assert_str_eq(sub.endpoint, "https://push.example.net/send/abc?x=1");
	ck_assert(memcmp(sub.p256dh, ua_pub, 65) == 0);
	const char *no = "{\"endpoint\":\"ftp://x\",\"keys\":{\"p256dh\":\"AA\",\"auth\":\"AA\"}}";
	ck_assert(!webpush_sub_parse(no, strlen(no), &sub));
	ck_assert(!webpush_sub_parse("tok-123", 7, &sub));
}
END_TEST

START_TEST(vapid_header_verifies)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *h = vapid_authorization(k, "https://push.example.net:8443/send/abc", "mailto:ops@example.org",
	                              1700000000);
	ck_assert_ptr_nonnull(h);
	ck_assert(strncmp(h, "vapid t=", 8) == 0);
	char *comma = strstr(h, ", k=");
	ck_assert_ptr_nonnull(comma);
	*comma = 0;
	jwt j;
	jwt_split(h + 8, &j);
	ck_assert_str_eq(str(j.header, "alg"), "ES256");
	ck_assert_str_eq(str(j.claims, "aud"), "https://push.example.net:8443");
	ck_assert_str_eq(str(j.claims, "sub"), "mailto:ops@example.org");
	ck_assert(num(j.claims, "exp") == 1700000000 + 12 * 3600);
	/* k is the key that verifies it */
	uint8_t pub[65];
	ck_assert_uint_eq(b64dec(comma + 4, pub, sizeof(pub)), 65);
	uint8_t mine[65];
	ck_assert(p256_public_raw(k, mine));
	ck_assert(memcmp(pub, mine, 65) == 0);
	ck_assert_uint_eq(j.sig_len, 64);
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(j.sig, 32, NULL), BN_bin2bn(j.sig + 32, 32, NULL));
	unsigned char *der = NULL;
	int dl = i2d_ECDSA_SIG(es, &der);
	ck_assert(verify(k, &j, der, (size_t)dl));
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	jwt_free(&j);
	free(h);
	EVP_PKEY_free(k);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	Suite *s = suite_create("pushgw_creds");
	TCase *tc = tcase_create("creds");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, fcm_assertion_verifies);
	tcase_add_test(tc, fcm_account_refusals);
	tcase_add_test(tc, apns_token_is_es256_raw);
	tcase_add_test(tc, grants_and_errors);
	tcase_add_test(tc, webpush_rfc8291_vector);
	tcase_add_test(tc, vapid_header_verifies);
	suite_add_tcase(s, tc);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
