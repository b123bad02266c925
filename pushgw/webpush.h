// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* webpush.h — Web Push for the browser client (RFC 8030 delivery, RFC 8291
 * message encryption, RFC 8292 VAPID), with OpenSSL and libsodium.
 *
 * A browser's push subscription is the device's push token: the JSON of
 * PushSubscription.toJSON(), {"endpoint": URL, "keys": {"p256dh": B64URL,
 * "auth": B64URL}}. The gateway encrypts the wake-up for the subscription's
 * key (aes128gcm, one record), signs a VAPID JWT (ES256) for the endpoint's
 * origin, and POSTs the ciphertext to the endpoint.
 *
 * Pure functions (the keys, salt and time are parameters), so the unit
 * tests run RFC 8291's published example.
 */
#ifndef CHAT_PUSHGW_WEBPUSH_H
#define CHAT_PUSHGW_WEBPUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct evp_pkey_st EVP_PKEY;

#define WEBPUSH_ENDPOINT_MAX 2048

typedef struct webpush_sub {
	char endpoint[WEBPUSH_ENDPOINT_MAX + 1]; /* https:// (or http://) URL */
	uint8_t p256dh[65];                      /* the browser's P-256 key, uncompressed */
	uint8_t auth[16];                        /* the authentication secret */
} webpush_sub;

/* Parses a subscription's JSON; false if it is not one (other members, such
 * as expirationTime, are ignored). */
bool webpush_sub_parse(const char *json, size_t len, webpush_sub *out);

/* The aes128gcm body (RFC 8188 header: salt, record size 4096, the key id =
 * the sender's public key; then one record) for plaintext (at most 3993
 * bytes). as_key: the sender's P-256 key, NULL for a fresh one (always, but
 * in tests); salt: 16 bytes, NULL for random ones. malloc'd, *outlen set;
 * NULL on failure. */
uint8_t *webpush_encrypt(const uint8_t ua_public[65], const uint8_t auth[16], const void *plaintext,
                         size_t len, EVP_PKEY *as_key, const uint8_t *salt, size_t *outlen);

/* The Authorization header's value for the endpoint: "vapid t=JWT, k=KEY"
 * with an ES256 JWT {aud: the endpoint's origin, exp: now + 12 h, sub}
 * and the VAPID public key, base64url. malloc'd, NULL on failure. */
char *vapid_authorization(EVP_PKEY *vapid, const char *endpoint, const char *subject, time_t now);

/* A P-256 key as raw bytes (65, uncompressed), and one built from a raw
 * private scalar (tests: RFC 8291's keys). */
bool p256_public_raw(EVP_PKEY *k, uint8_t out[65]);
EVP_PKEY *p256_from_private(const uint8_t d[32]);

#endif
