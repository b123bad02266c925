// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* creds.h — the push providers' credentials and what is parsed from their
 * answers: a Firebase service-account JSON file and the RS256-signed JWT
 * exchanged for an OAuth2 access token (FCM HTTP v1), an APNs .p8 key and
 * the ES256 provider token signed with it, and the JSON of the providers'
 * replies (token grants, error bodies).
 *
 * Why a module of its own: these are pure functions of their inputs (the
 * time is a parameter), so unit tests check them against OpenSSL and the
 * fuzz target feeds them hostile JSON, without a network. JSON is read with
 * cJSON (libcjson, already a dependency of the project's tests); keys and
 * signatures are OpenSSL's.
 */
#ifndef CHAT_PUSHGW_CREDS_H
#define CHAT_PUSHGW_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct evp_pkey_st EVP_PKEY;

/* What the gateway uses of a service-account file (the rest is ignored). */
typedef struct fcm_account {
	char *project_id, *client_email, *token_uri, *private_key_id;
	EVP_PKEY *key;            /* RSA */
} fcm_account;

/* Parses the JSON of a service-account file ("type": "service_account",
 * project_id, client_email, token_uri, private_key (PEM), private_key_id).
 * False with a reason in err (never a key's bytes). */
bool fcm_account_parse(const char *json, size_t len, fcm_account *out, char *err, size_t errlen);
bool fcm_account_load(const char *path, fcm_account *out, char *err, size_t errlen);
void fcm_account_free(fcm_account *a);

/* The OAuth2 jwt-bearer assertion for the token exchange: RS256, iss =
 * client_email, scope firebase.messaging, aud = token_uri, iat = now, exp =
 * now + 3600. A malloc'd string, NULL on failure. */
char *fcm_assertion(const fcm_account *a, time_t now);
/* The form body of the token request for an assertion (malloc'd). */
char *fcm_token_request_body(const char *assertion);

/* {"access_token": T, "expires_in": N, ...}: T malloc'd into *token, N into
 * *expires_in (3600 when absent). False if the body is not such a grant. */
bool oauth_grant_parse(const char *body, size_t len, char **token, long *expires_in);
/* An OAuth 2 error answer (RFC 6749 §5.2), {"error": E, "error_description":
 * D, ...}: "E" or "E (D)" into out (""), what the log line says of a refused
 * token request. False if the body is not JSON of that shape. */
bool oauth_error(const char *body, size_t len, char *out, size_t cap);

/* An APNs signing key (.p8: PKCS#8 PEM, P-256). */
EVP_PKEY *apns_key_load(const char *path, char *err, size_t errlen);
EVP_PKEY *apns_key_parse(const char *pem, size_t len, char *err, size_t errlen);
/* The provider token: ES256 JWS {alg, kid} . {iss: team, iat: now} with
 * the raw 64-byte r||s signature (JWS, RFC 7518 §3.4), not DER. malloc'd,
 * NULL on failure. */
char *apns_provider_token(EVP_PKEY *key, const char *key_id, const char *team_id, time_t now);

/* An ES256 JWS over header.claims (both JSON text): header and claims
 * base64url-encoded, signed, the signature raw r||s. Exposed for VAPID
 * and the tests. */
char *jws_es256(EVP_PKEY *key, const char *header, const char *claims);
char *jws_rs256(EVP_PKEY *key, const char *header, const char *claims);

/* Base64url without padding of n bytes (malloc'd). */
char *b64url(const void *p, size_t n);

/* Provider error bodies. FCM: {"error": {"status": S, "details": [{
 * "errorCode": E}]}} — the errorCode of the FcmError detail if present,
 * else the status, copied into out (""). APNs: {"reason": R}. False if
 * the body is not JSON of that shape. */
bool fcm_error_code(const char *body, size_t len, char *out, size_t cap);
bool apns_reason(const char *body, size_t len, char *out, size_t cap);

#endif
