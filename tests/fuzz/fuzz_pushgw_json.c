// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_pushgw_json — what chat-pushgw reads from outside as JSON
 * (pushgw/creds.c): a service-account file, an OAuth2 token grant and error,
 * FCM's and APNs' error bodies, from arbitrary bytes (cJSON underneath).
 *
 * Properties checked besides "no crash": a token grant that parses has a
 * non-empty token of printable ASCII without spaces (it goes into a header
 * line) and a lifetime of 1 s to a week; an error code fits the buffer; a
 * service account that parses has every field the gateway uses and an RSA
 * key.
 */
#include "creds.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bad(const char *why)
{
	fprintf(stderr, "pushgw json property broken: %s\n", why);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char *tok = NULL;
	long exp = 0;
	if (oauth_grant_parse(s, size, &tok, &exp)) {
		if (!tok[0] || exp < 1 || exp > 7 * 86400)
			bad("grant");
		for (const char *p = tok; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				bad("token character");
		free(tok);
	}
	char code[32];
	if (fcm_error_code(s, size, code, sizeof(code)) && strlen(code) >= sizeof(code))
		bad("fcm code length");
	if (apns_reason(s, size, code, sizeof(code)) && strlen(code) >= sizeof(code))
		bad("apns reason length");
	if (oauth_error(s, size, code, sizeof(code)) && strlen(code) >= sizeof(code))
		bad("oauth error length");
	fcm_account a;
	char err[256];
	if (fcm_account_parse(s, size, &a, err, sizeof(err))) {
		if (!a.project_id || !a.client_email || !a.token_uri || !a.key ||
		    EVP_PKEY_get_base_id(a.key) != EVP_PKEY_RSA)
			bad("account");
		fcm_account_free(&a);
	}
	return 0;
}
