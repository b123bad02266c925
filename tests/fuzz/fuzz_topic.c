// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_topic — topic names and subscription filters: topic_parse,
 * filter_reaches_chat and core_acl for every kind of client and access, on
 * the harness core (prefix "chat", foreign_acl defer) and on a second core
 * with a two-level prefix "x/chat" and foreign_acl allow.
 *
 * Beyond "no crash", each verdict is checked against an independent model
 * of the contract (docs/PROTOCOL.md §2) written here from MQTT's matching
 * rules: a chat device may read or subscribe to its own inbox, key
 * responses, key status and chat-media answers, and to P/presence/{user} (privacy decides
 * which users; not modelled here) and nothing else,
 * a service to P/keys/req/+/+, P/keys/removed/+/+, P/media/req/+/+ and
 * P/push/wake (and may publish P/keys/stats, P/push/stats, P/push/ack and its
 * answers on P/keys/resp|status/U/D and P/media/resp/U/D), the admin to $CONTROL/chat/v1/response; no
 * topic or filter that reaches the chat namespace is ever deferred (another
 * ACL mechanism could then let it through) or allowed to a foreign client,
 * except a foreign client's filter that reaches it only through a wildcard
 * ("#", "+/inbox/#", not "chat/#"): that one is left to
 * plugin_opt_foreign_acl like any IoT filter, and every chat topic name is
 * refused to it for READ, which mosquitto asks at each delivery.
 * A violation aborts with the topic and the verdict.
 */
#include "fuzz_core_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model {
	core *c;
	const char *prefix;
	bool foreign_allow;
	bool has_service;   /* "keys" is a service account on this core */
} model;

static void violation(const model *m, const char *who, const char *name, int access,
                      enum core_verdict v, const char *why)
{
	fprintf(stderr, "ACL model violation (prefix %s): %s access %d to '%s' -> verdict %d: %s\n",
	        m->prefix, who, access, name, (int)v, why);
	abort();
}

/* ---- MQTT, independently ---- */

static bool valid_topic(const char *t)
{
	return *t && !strpbrk(t, "+#");
}

static bool valid_filter(const char *f)
{
	if (!*f)
		return false;
	for (const char *l = f;;) {
		const char *s = strchr(l, '/');
		size_t n = s ? (size_t)(s - l) : strlen(l);
		for (size_t i = 0; i < n; i++)
			if ((l[i] == '+' || l[i] == '#') && n != 1)
				return false;
		if (n == 1 && l[0] == '#' && s)
			return false; /* '#' only last */
		if (!s)
			return true;
		l = s + 1;
	}
}

/* Strips "$share/<name>/"; NULL when a $share filter is malformed. */
static const char *share_strip(const char *f)
{
	if (strncmp(f, "$share/", 7) != 0)
		return f;
	const char *s = strchr(f + 7, '/');
	if (!s || s == f + 7 || strpbrk(f + 7, "+#") < s)
		return NULL;
	return s + 1;
}

/* Could filter f match some topic equal to, or under, `base` (levels)? A
 * filter that starts with a wildcard never matches a '$' topic. */
static bool reaches(const char *f, const char *base)
{
	bool first = true;
	while (*base) {
		const char *bs = strchr(base, '/');
		size_t bn = bs ? (size_t)(bs - base) : strlen(base);
		const char *fs = strchr(f, '/');
		size_t fn = fs ? (size_t)(fs - f) : strlen(f);
		bool wild = fn == 1 && (*f == '+' || *f == '#');
		if (first && wild && *base == '$')
			return false;
		if (fn == 1 && *f == '#')
			return true;
		if (!wild && !(fn == bn && memcmp(f, base, bn) == 0))
			return false;
		first = false;
		base = bs ? bs + 1 : base + bn;
		if (!bs)
			return true; /* the whole base is matched: f reaches it or below */
		if (!fs)
			return false; /* f ends above base */
		f = fs + 1;
	}
	return true;
}

/* Is a concrete topic the base or under it? */
static bool under(const char *t, const char *base)
{
	size_t n = strlen(base);
	return strncmp(t, base, n) == 0 && (t[n] == '\0' || t[n] == '/');
}

static bool chatish_topic(const model *m, const char *t)
{
	return under(t, m->prefix) || under(t, "$CONTROL/chat");
}

static bool chatish_filter(const model *m, const char *f)
{
	return reaches(f, m->prefix) || reaches(f, "$CONTROL/chat");
}

static bool is(const char *name, const model *m, const char *rest)
{
	size_t n = strlen(m->prefix);
	return strncmp(name, m->prefix, n) == 0 && name[n] == '/' && strcmp(name + n + 1, rest) == 0;
}

/* What alice/phone may read: its own private topics, and a user's
 * presence (whose, the user's privacy decides). */
static bool own_readable(const model *m, const char *name)
{
	if (is(name, m, "inbox/alice/phone") || is(name, m, "keys/resp/alice/phone") ||
	    is(name, m, "keys/status/alice/phone") || is(name, m, "media/resp/alice/phone"))
		return true;
	size_t n = strlen(m->prefix);
	const char *u = name + n + sizeof("/presence/") - 1;
	return strncmp(name, m->prefix, n) == 0 && strncmp(name + n, "/presence/", 10) == 0 &&
	       chat_valid_user(u, strlen(u));
}

static bool device_may_write(const model *m, const char *t)
{
	size_t n = strlen(m->prefix);
	if (strncmp(t, m->prefix, n) != 0 || t[n] != '/')
		return false;
	const char *r = t + n + 1;
	return strncmp(r, "dm/", 3) == 0 || strncmp(r, "group/", 6) == 0 ||
	       strncmp(r, "typing/", 7) == 0 || !strcmp(r, "receipt") || !strcmp(r, "sync") ||
	       !strcmp(r, "ctl") || !strcmp(r, "presence/alice/phone") ||
	       !strcmp(r, "keys/req/alice/phone") || !strcmp(r, "media/req/alice/phone");
}

/* P/AREA/KIND/U/D with a valid address: the key server's (area "keys") and
 * chat-media's (area "media") per-device topics. */
static bool svc_topic(const model *m, const char *t, const char *area, const char *kind)
{
	char lead[256];
	snprintf(lead, sizeof(lead), "%s/%s/%s/", m->prefix, area, kind);
	size_t n = strlen(lead);
	if (strncmp(t, lead, n) != 0)
		return false;
	const char *u, *d;
	size_t ul, dl;
	return chat_parse_addr(t + n, strlen(t + n), &u, &ul, &d, &dl);
}

static bool keys_topic(const model *m, const char *t, const char *kind)
{
	return svc_topic(m, t, "keys", kind);
}

/* ---- the checks ---- */

enum who { W_DEVICE, W_SERVICE, W_ADMIN, W_FOREIGN, W_ANON, W_COUNT };
static const char *const USERNAME[W_COUNT] = { "alice/phone", "keys", "$admin", "sensor-7", NULL };

static void check_one(const model *m, enum who w, const char *name, int access, bool retain)
{
	const char *user = USERNAME[w];
	void *conn = w == W_DEVICE ? fz_conn(FZ_ALICE_PHONE) : NULL;
	const char *clientid = user ? user : "anon";
	enum core_verdict v = core_acl(m->c, conn, clientid, user, name, access, retain);
	const char *who = user ? user : "(no username)";

	if (access == CORE_ACC_UNSUBSCRIBE) {
		if (v != CORE_ALLOW)
			violation(m, who, name, access, v, "unsubscribe refused");
		return;
	}
	bool sub = access == CORE_ACC_SUBSCRIBE;
	const char *judged = name;
	if (sub) {
		if (!valid_filter(name) || !(judged = share_strip(name)) || !valid_filter(judged))
			return; /* the broker refuses these before asking */
	} else if (!valid_topic(name)) {
		return;
	}
	bool chat = sub ? chatish_filter(m, judged) : chatish_topic(m, judged);
	/* "keys" is foreign on a core where it is not a service account */
	bool foreign = w == W_FOREIGN || w == W_ANON || (w == W_SERVICE && !m->has_service);
	if (sub && chat && foreign && !chatish_topic(m, judged)) {
		/* Reaches the namespace only through a wildcard ("#", "+/inbox/#"):
		 * standard MQTT for a foreign client, which READ at every delivery
		 * keeps away from the chat topics (checked below for every name). */
		enum core_verdict outside = m->foreign_allow ? CORE_ALLOW : CORE_DEFER;
		if (v != outside)
			violation(m, who, name, access, v, "a foreign wildcard filter not left to plugin_opt_foreign_acl");
		return;
	}
	if (chat && v == CORE_DEFER)
		violation(m, who, name, access, v, "a chat topic left to other ACL mechanisms");
	if (!chat) {
		enum core_verdict outside = m->foreign_allow ? CORE_ALLOW : CORE_DEFER;
		if (v != outside)
			violation(m, who, name, access, v, "a foreign topic not left to plugin_opt_foreign_acl");
		return;
	}
	if (v != CORE_ALLOW)
		return;
	switch (w) {
	case W_DEVICE:
		if (access == CORE_ACC_WRITE ? !device_may_write(m, judged) : !own_readable(m, judged))
			violation(m, who, name, access, v, "a device reached a topic not its own");
		if (access == CORE_ACC_WRITE && retain && is(judged, m, "presence/alice/phone"))
			violation(m, who, name, access, v, "a retained will was allowed");
		break;
	case W_SERVICE: {
		char req[256], removed[256], mreq[256];
		snprintf(req, sizeof(req), "%s/keys/req/+/+", m->prefix);
		snprintf(removed, sizeof(removed), "%s/keys/removed/+/+", m->prefix);
		snprintf(mreq, sizeof(mreq), "%s/media/req/+/+", m->prefix);
		bool ok = access == CORE_ACC_WRITE ? keys_topic(m, judged, "resp") || keys_topic(m, judged, "status") ||
		                                     keys_topic(m, judged, "removed") || is(judged, m, "push/ack") ||
		                                     is(judged, m, "keys/stats") || is(judged, m, "push/stats") ||
		                                     svc_topic(m, judged, "media", "resp")
		          : access == CORE_ACC_READ ? keys_topic(m, judged, "req") || keys_topic(m, judged, "removed") ||
		                                      is(judged, m, "push/wake") || svc_topic(m, judged, "media", "req")
		          : strcmp(judged, req) == 0 || strcmp(judged, removed) == 0 || strcmp(judged, mreq) == 0 ||
		            is(judged, m, "push/wake");
		if (!m->has_service || !ok)
			violation(m, who, name, access, v, "a service reached a topic not its own");
		break;
	}
	case W_ADMIN:
		if (strcmp(judged, access == CORE_ACC_WRITE ? CORE_CONTROL_TOPIC : CORE_CONTROL_RESPONSE) != 0)
			violation(m, who, name, access, v, "the admin reached a chat topic");
		break;
	default:
		violation(m, who, name, access, v, "a foreign client reached a chat topic");
	}
}

static void check_parse(const model *m, const char *t)
{
	topic tp;
	topic_parse(m->c, t, &tp);
	size_t n = strlen(t);
	const char *end = t + n;
	if ((tp.a && (tp.a < t || tp.a + tp.alen > end)) || (tp.b && (tp.b < t || tp.b + tp.blen > end)))
		violation(m, "topic_parse", t, 0, 0, "a slice outside the topic");
	bool chat = chatish_topic(m, t);
	if (chat != (tp.kind != T_OUTSIDE))
		violation(m, "topic_parse", t, 0, 0, "chat/outside disagrees with the model");
	if (tp.kind == T_INBOX || tp.kind == T_PRESENCE_DEV || tp.kind == T_KEYS_REQ ||
	    tp.kind == T_KEYS_RESP || tp.kind == T_KEYS_STATUS || tp.kind == T_KEYS_REMOVED) {
		if (!chat_valid_user(tp.a, tp.alen) || !chat_valid_device(tp.b, tp.blen) || tp.b + tp.blen != end)
			violation(m, "topic_parse", t, 0, 0, "an address topic with invalid ids");
	}
	if (tp.kind == T_CONTROL && strcmp(t, CORE_CONTROL_TOPIC) != 0)
		violation(m, "topic_parse", t, 0, 0, "T_CONTROL for another topic");
	if (valid_filter(t) && filter_reaches_chat(m->c, t) != chatish_filter(m, t))
		violation(m, "filter_reaches_chat", t, 0, 0, "disagrees with the model");
}

static model M[2];

static void init(void)
{
	core *c = fz_core();
	/* the key server's service account */
	static const uint8_t add_keys[] = { 0xa2, 0x63, 'c', 'm', 'd', 0x6b, 's', 'e', 'r', 'v', 'i', 'c',
		'e', '.', 'a', 'd', 'd', 0x64, 'n', 'a', 'm', 'e', 0x64, 'k', 'e', 'y', 's' };
	core_control(c, "fuzz-admin", CORE_ADMIN_USERNAME, add_keys, sizeof(add_keys));
	if (!dir_service(&c->dir, "keys", 4))
		abort();
	M[0] = (model){ c, "chat", false, true };

	core *b = fz_core_extra("x/chat", CORE_FOREIGN_ALLOW);
	M[1] = (model){ b, "x/chat", true, false };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		ready = true;
	}
	/* MQTT topics cannot hold NUL: the name ends at the first one. */
	char *t = malloc(size + 1);
	if (!t)
		return 0;
	memcpy(t, data, size);
	t[size] = '\0';
	static const int acc[] = { CORE_ACC_READ, CORE_ACC_WRITE, CORE_ACC_SUBSCRIBE, CORE_ACC_UNSUBSCRIBE };
	for (int k = 0; k < 2; k++) {
		check_parse(&M[k], t);
		for (int w = 0; w < W_COUNT; w++)
			for (size_t a = 0; a < sizeof(acc) / sizeof(acc[0]); a++)
				for (int retain = 0; retain < 2; retain++)
					check_one(&M[k], (enum who)w, t, acc[a], retain);
	}
	free(t);
	/* No fz_done(): nothing here writes to the store. */
	return 0;
}
