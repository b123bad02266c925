// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* tokens.c — the credentials devices, services and the admin present as
 * their MQTT password.
 *
 * A token is CORE_TOKEN_BYTES random bytes in base64url; the store keeps
 * only its keyed BLAKE2b hash (the key, c->token_key, lives in the store
 * too), and a presented token is compared by hash in constant time. Clear
 * tokens exist only on the way out to the admin who asked for them.
 */
#include "core_internal.h"

#include <sodium.h>

void token_hash(const core *c, const char *token, size_t len, uint8_t out[STORE_HASH_LEN])
{
	crypto_generichash(out, STORE_HASH_LEN, (const unsigned char *)token, len, c->token_key,
	                   STORE_KEY_LEN);
}

bool token_matches(const core *c, const char *token, size_t len, const uint8_t hash[STORE_HASH_LEN])
{
	uint8_t h[STORE_HASH_LEN];
	token_hash(c, token, len, h);
	bool ok = sodium_memcmp(h, hash, STORE_HASH_LEN) == 0;
	sodium_memzero(h, sizeof(h));
	return ok;
}

void token_new(const core *c, char out[CORE_TOKEN_LEN + 1], uint8_t hash[STORE_HASH_LEN])
{
	uint8_t raw[CORE_TOKEN_BYTES];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, CORE_TOKEN_LEN + 1, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	token_hash(c, out, CORE_TOKEN_LEN, hash);
}
