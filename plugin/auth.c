// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* auth.c — CONNECT decisions (contract §1).
 *
 * Three kinds of account are ours to check: chat devices ("U/D", client id
 * must equal the username), service accounts (by name) and the admin. Every
 * other username is deferred to mosquitto's other mechanisms — except that
 * the client id of a registered device is that device's alone: anyone else
 * taking it (an anonymous IoT client, say) would end the device's session. Tokens are
 * compared as keyed hashes in constant time; every refusal is logged with
 * its reason, never with the token.
 */
#include "core_internal.h"

#include <string.h>

static enum core_verdict refuse(core *c, const char *who, const char *why)
{
	c->n.auth_refused++;
	core_log(c, CORE_LOG_NOTICE, "refused connection as %s: %s", who, why);
	return CORE_DENY;
}

enum core_verdict core_auth(core *c, void *conn, const char *clientid, const char *username,
                            const char *password, size_t password_len)
{
	if (clientid && (!username || strcmp(clientid, username) != 0) &&
	    dir_device(&c->dir, clientid, strlen(clientid)))
		return refuse(c, clientid, "the client id of a chat device needs that device's username");
	if (!username)
		return CORE_DEFER;
	size_t ulen = strlen(username);
	const char *u, *d;
	size_t ul, dl;

	if (strchr(username, '/')) {
		if (!chat_parse_addr(username, ulen, &u, &ul, &d, &dl))
			return refuse(c, username, "not a valid device address U/D");
		if (!clientid || strcmp(clientid, username) != 0)
			return refuse(c, username, "client id differs from the username");
		device *dev = dir_device(&c->dir, username, ulen);
		if (!dev)
			return refuse(c, username, "unknown device");
		if (!password || !token_matches(c, password, password_len, dev->hash))
			return refuse(c, username, password ? "wrong token" : "no token");
		kick_cancel(c, username);
		gather_flush_dev(c, dev); /* gathered for its connection so far */
		dir_set_online(&c->dir, dev, conn);
		flow_connect(c, dev); /* a new connection: mosquitto's queue for it starts afresh */
		push_online(c, dev);
		presence_up(c, dev->user);
		c->n.auth_ok++;
		return CORE_ALLOW;
	}
	if (strcmp(username, CORE_ADMIN_USERNAME) == 0) {
		if (!password || !token_matches(c, password, password_len, c->admin_hash))
			return refuse(c, username, password ? "wrong admin token" : "no token");
		c->n.auth_ok++;
		return CORE_ALLOW;
	}
	service *s = dir_service(&c->dir, username, ulen);
	if (s) {
		if (!password || !token_matches(c, password, password_len, s->hash))
			return refuse(c, username, password ? "wrong service token" : "no token");
		c->n.auth_ok++;
		return CORE_ALLOW;
	}
	return CORE_DEFER;
}
