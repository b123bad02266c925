// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* acl.c — who may publish, subscribe and read what (contract §3).
 *
 * Runs on the broker's hot path: mosquitto asks for every delivery of a
 * routed message, so every decision here is a few string compares and at
 * most one hash lookup. Clients are told apart by username, which the auth
 * step has already vouched for: "U/D" is a chat device (only the plugin can
 * authenticate such a name), "$admin" the admin, a known service name a
 * service account — which a provisioner is only on $CONTROL/chat/v1, like
 * the admin — anything else a foreign (IoT) client.
 *
 * The chat namespace and $CONTROL/chat are ours: there we answer ALLOW or
 * DENY. Outside them we never claim a topic: plugin_opt_foreign_acl decides
 * between deferring to mosquitto's other ACL mechanisms and allowing.
 *
 * Chat accounts may not subscribe to a wildcard filter that could reach the
 * namespace. Foreign clients may (contract §3: "#" on a shared broker is
 * standard MQTT): mosquitto asks READ for every routed message and every
 * retained one it is about to send, and for a foreign client every chat
 * topic is DENY there, so nothing of the namespace reaches it.
 */
#include "core_internal.h"

#include <string.h>

enum client_kind { C_FOREIGN, C_DEVICE, C_SERVICE, C_PROVISIONER, C_ADMIN };

static enum client_kind classify(core *c, const char *username)
{
	if (!username)
		return C_FOREIGN;
	if (strchr(username, '/'))
		return C_DEVICE;
	if (strcmp(username, CORE_ADMIN_USERNAME) == 0)
		return C_ADMIN;
	const service *s = dir_service(&c->dir, username, strlen(username));
	if (s)
		return s->role == STORE_ROLE_PROVISIONER ? C_PROVISIONER : C_SERVICE;
	return C_FOREIGN;
}

static enum core_verdict outside(const core *c)
{
	return c->cfg.foreign_acl == CORE_FOREIGN_ALLOW ? CORE_ALLOW : CORE_DEFER;
}

/* Is topic t's U/D (a, b) the client's own address? */
static bool own(const topic *t, const char *username)
{
	size_t n = strlen(username);
	return t->alen + 1 + t->blen == n && memcmp(username, t->a, t->alen) == 0 &&
	       username[t->alen] == '/' && memcmp(username + t->alen + 1, t->b, t->blen) == 0;
}

static bool has_wildcard(const char *s)
{
	return strpbrk(s, "+#") != NULL;
}

/* Strips "$share/<group>/" so the filter is judged by what it can reach. */
static const char *strip_share(const char *filter)
{
	if (strncmp(filter, "$share/", 7) != 0)
		return filter;
	const char *slash = strchr(filter + 7, '/');
	return slash ? slash + 1 : filter;
}

static enum core_verdict device_acl(core *c, const char *username, const topic *t, int access)
{
	if (access == CORE_ACC_WRITE) {
		switch (t->kind) {
		case T_DM: case T_GROUP: case T_RECEIPT: case T_SYNC: case T_CTL: case T_TYPING:
			return CORE_ALLOW;
		case T_PRESENCE_DEV: /* its own will; plain publishes are refused by the send path */
		case T_KEYS_REQ: case T_MEDIA_REQ:
			return own(t, username) ? CORE_ALLOW : CORE_DENY;
		default:
			return CORE_DENY;
		}
	}
	/* READ and SUBSCRIBE: only its own private topics, named exactly. */
	switch (t->kind) {
	case T_INBOX: case T_KEYS_RESP: case T_KEYS_STATUS: case T_MEDIA_RESP:
		return own(t, username) ? CORE_ALLOW : CORE_DENY;
	case T_PRESENCE_USER: /* checked again at every delivery: privacy applies at once */
		return presence_may_read(c, username, t) ? CORE_ALLOW : CORE_DENY;
	default:
		return CORE_DENY;
	}
}

static enum core_verdict service_acl(core *c, const char *topic_or_filter, const topic *t,
                                     int access)
{
	/* The key server's topics and the push gateway's: wake-ups in, their
	 * acknowledgements out; device removals in (and cleared once acted on);
	 * the key server's and the push gateways' counters out; chat-media's
	 * requests in and its answers out. */
	if (access == CORE_ACC_WRITE)
		return t->kind == T_KEYS_RESP || t->kind == T_KEYS_STATUS || t->kind == T_PUSH_ACK ||
		       t->kind == T_KEYS_REMOVED || t->kind == T_KEYS_STATS || t->kind == T_PUSH_STATS ||
		       t->kind == T_MEDIA_RESP
		       ? CORE_ALLOW : CORE_DENY;
	if (access == CORE_ACC_READ)
		return t->kind == T_KEYS_REQ || t->kind == T_PUSH_WAKE || t->kind == T_KEYS_REMOVED ||
		       t->kind == T_MEDIA_REQ
		       ? CORE_ALLOW : CORE_DENY;
	/* SUBSCRIBE: exactly P/keys/req/+/+, P/keys/removed/+/+, P/media/req/+/+
	 * or P/push/wake (alone or under $share). */
	size_t n = c->prefix_len;
	if (strncmp(topic_or_filter, c->prefix, n) == 0 &&
	    (strcmp(topic_or_filter + n, "/keys/req/+/+") == 0 ||
	     strcmp(topic_or_filter + n, "/keys/removed/+/+") == 0 ||
	     strcmp(topic_or_filter + n, "/media/req/+/+") == 0 ||
	     strcmp(topic_or_filter + n, "/push/wake") == 0))
		return CORE_ALLOW;
	return CORE_DENY;
}

/* A refused publish from a live device: MQTT 3.1.1 acknowledges it as if
 * nothing happened, so say it in the inbox. A will fires after its device's
 * connection is gone (conn no longer recorded), and is refused silently. */
static void tell_device(core *c, void *conn, const char *username)
{
	device *dev = dir_device(&c->dir, username, strlen(username));
	if (!dev || dev->conn != conn)
		return;
	ev_refuse(c, dev, REFUSE_TOPIC, "this topic takes no publishes from devices");
}

enum core_verdict core_acl(core *c, void *conn, const char *clientid, const char *username,
                           const char *name, int access, bool retain)
{
	(void)clientid;
	if (access == CORE_ACC_UNSUBSCRIBE)
		return CORE_ALLOW; /* dropping a subscription never leaks anything */

	bool is_sub = access == CORE_ACC_SUBSCRIBE;
	const char *judged = is_sub ? strip_share(name) : name;
	/* Every routed delivery asks with READ: outside the namespace that is
	 * these two prefix compares and nothing else. */
	bool inside = topic_in_chat(c, judged);
	bool wild = is_sub && has_wildcard(judged);
	if (!inside && !(wild && filter_reaches_chat(c, judged)))
		return outside(c);

	enum client_kind kind = classify(c, username);
	if (kind == C_FOREIGN) {
		/* Standard MQTT for the IoT side: a filter that reaches the chat
		 * namespace only through a wildcard ("#", "+/+", "$share/g/#") is
		 * also meant for other topics and is judged like them; the chat
		 * topics it could match are refused at each delivery (READ, just
		 * below), retained ones included. A name or filter rooted in the
		 * namespace can carry nothing for this client: refused. */
		if (!inside)
			return outside(c);
		if (is_sub)
			c->n.subs_refused++;
		return CORE_DENY;
	}

	topic t;
	if (wild) {
		memset(&t, 0, sizeof(t));
		t.kind = T_FILTER;
	} else {
		topic_parse(c, judged, &t);
	}

	enum core_verdict v;
	switch (kind) {
	case C_DEVICE:
		v = device_acl(c, username, &t, access);
		if (access == CORE_ACC_WRITE && v == CORE_ALLOW && t.kind == T_PRESENCE_DEV)
			presence_will(c, username);
		/* A retained will would outlive the connection it reports on. Other
		 * retained publishes reach the send path, which tells the device. */
		if (access == CORE_ACC_WRITE && retain && t.kind == T_PRESENCE_DEV)
			v = CORE_DENY;
		if (v == CORE_DENY && access == CORE_ACC_WRITE)
			tell_device(c, conn, username);
		/* Stock mosquitto's only sign of a SUBSCRIBE (broker_events.c). */
		if (is_sub && v == CORE_ALLOW && (t.kind == T_INBOX || t.kind == T_PRESENCE_USER) &&
		    !(c->bev.have & CORE_BEV_SUBSCRIBE))
			core_subscribed(c, conn, username, name); /* exactly the topic, not $share/… */
		break;
	case C_SERVICE:
		v = service_acl(c, judged, &t, access);
		break;
	default: /* C_ADMIN, and C_PROVISIONER (admin.c limits its commands) */
		v = (access == CORE_ACC_WRITE && t.kind == T_CONTROL) ||
		    (access != CORE_ACC_WRITE && t.kind == T_CONTROL_RESP) ? CORE_ALLOW : CORE_DENY;
	}
	if (v == CORE_DENY && is_sub)
		c->n.subs_refused++;
	return v;
}
