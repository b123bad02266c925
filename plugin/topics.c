// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* topics.c — reading topic names and subscription filters.
 *
 * One place knows the topic tree of the contract (§3): the ACL, the
 * message dispatcher and the send path all classify through topic_parse,
 * so a topic cannot mean one thing to the ACL and another to the sender.
 * The prefix ("chat" by default) may have several levels.
 */
#include "core_internal.h"

#include <string.h>

/* Next level of a topic: returns its length, advances *p past it and its
 * '/', sets *more when a '/' followed. */
static size_t level(const char **p, bool *more)
{
	const char *s = *p;
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	*more = slash != NULL;
	*p = slash ? slash + 1 : s + n;
	return n;
}

static bool lvl_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

static void addr_levels(const char *rest, topic *out, enum topic_kind kind)
{
	const char *p = rest;
	bool more;
	const char *u = p;
	size_t ul = level(&p, &more);
	if (!more)
		return;
	const char *d = p;
	size_t dl = level(&p, &more);
	if (more || !chat_valid_user(u, ul) || !chat_valid_device(d, dl))
		return;
	out->kind = kind;
	out->a = u; out->alen = ul;
	out->b = d; out->blen = dl;
}

static const char CONTROL_ROOT[] = "$CONTROL/chat";

/* Is t the levels of base (n bytes), whole or followed by more levels? */
static bool rooted_at(const char *t, const char *base, size_t n)
{
	return strncmp(t, base, n) == 0 && (t[n] == '/' || t[n] == '\0');
}

bool topic_in_chat(const core *c, const char *t)
{
	/* Asked for every message mosquitto routes (its READ check): most
	 * topics differ in their first byte, without a call. */
	if (t[0] != c->prefix[0] && t[0] != '$')
		return false;
	return rooted_at(t, c->prefix, c->prefix_len) ||
	       rooted_at(t, CONTROL_ROOT, sizeof(CONTROL_ROOT) - 1);
}

void topic_parse(const core *c, const char *t, topic *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = T_OUTSIDE;

	if (rooted_at(t, CONTROL_ROOT, sizeof(CONTROL_ROOT) - 1)) {
		if (strcmp(t, CORE_CONTROL_TOPIC) == 0)
			out->kind = T_CONTROL;
		else if (strcmp(t, CORE_CONTROL_RESPONSE) == 0)
			out->kind = T_CONTROL_RESP;
		else
			out->kind = T_CONTROL_OTHER;
		return;
	}
	if (!rooted_at(t, c->prefix, c->prefix_len))
		return;
	out->kind = T_CHAT_OTHER;
	if (t[c->prefix_len] == '\0')
		return;

	const char *p = t + c->prefix_len + 1;
	bool more;
	const char *l1 = p;
	size_t n1 = level(&p, &more);

	if (lvl_is(l1, n1, "dm") && more) {
		out->kind = T_DM; /* the peer (p, to the end) is judged by the send */
		out->a = p; out->alen = strlen(p);
	} else if (lvl_is(l1, n1, "group") && more) {
		out->kind = T_GROUP;
		out->a = p; out->alen = strlen(p);
	} else if (lvl_is(l1, n1, "typing") && more) {
		out->kind = T_TYPING;
		out->a = p; out->alen = strlen(p);
	} else if (!more && lvl_is(l1, n1, "receipt")) {
		out->kind = T_RECEIPT;
	} else if (!more && lvl_is(l1, n1, "sync")) {
		out->kind = T_SYNC;
	} else if (!more && lvl_is(l1, n1, "ctl")) {
		out->kind = T_CTL;
	} else if (lvl_is(l1, n1, "inbox") && more) {
		addr_levels(p, out, T_INBOX);
	} else if (lvl_is(l1, n1, "presence") && more) {
		const char *u = p;
		size_t ul = level(&p, &more);
		if (!more) {
			if (chat_valid_user(u, ul)) {
				out->kind = T_PRESENCE_USER;
				out->a = u; out->alen = ul;
			}
		} else {
			addr_levels(u, out, T_PRESENCE_DEV);
		}
	} else if (lvl_is(l1, n1, "push") && more) {
		if (strcmp(p, "wake") == 0)
			out->kind = T_PUSH_WAKE;
		else if (strcmp(p, "ack") == 0)
			out->kind = T_PUSH_ACK;
		else if (strcmp(p, "stats") == 0)
			out->kind = T_PUSH_STATS;
	} else if (lvl_is(l1, n1, "keys") && more) {
		const char *l2 = p;
		size_t n2 = level(&p, &more);
		if (!more) {
			if (lvl_is(l2, n2, "stats"))
				out->kind = T_KEYS_STATS;
			return;
		}
		if (lvl_is(l2, n2, "req"))
			addr_levels(p, out, T_KEYS_REQ);
		else if (lvl_is(l2, n2, "resp"))
			addr_levels(p, out, T_KEYS_RESP);
		else if (lvl_is(l2, n2, "status"))
			addr_levels(p, out, T_KEYS_STATUS);
		else if (lvl_is(l2, n2, "removed"))
			addr_levels(p, out, T_KEYS_REMOVED);
	} else if (lvl_is(l1, n1, "media") && more) {
		const char *l2 = p;
		size_t n2 = level(&p, &more);
		if (!more)
			return;
		if (lvl_is(l2, n2, "req"))
			addr_levels(p, out, T_MEDIA_REQ);
		else if (lvl_is(l2, n2, "resp"))
			addr_levels(p, out, T_MEDIA_RESP);
	}
}

/* Could a filter whose levels start at f match a topic whose leading levels
 * are `lead` ("a/b")? True when every lead level is met by the same word or
 * '+', or a '#' comes first; a filter shorter than lead cannot reach below. */
static bool reaches(const char *f, const char *lead)
{
	while (*lead) {
		bool fmore, lmore;
		const char *fl = f;
		size_t fn = level(&f, &fmore);
		const char *ll = lead;
		size_t ln = level(&lead, &lmore);
		if (lvl_is(fl, fn, "#"))
			return true;
		if (!lvl_is(fl, fn, "+") && !(fn == ln && memcmp(fl, ll, ln) == 0))
			return false;
		if (!fmore)
			return !lmore; /* the filter ends here: it matches the lead itself */
	}
	return true;
}

bool filter_reaches_chat(const core *c, const char *filter)
{
	/* '#' and '+' in the first level never match topics starting with '$'. */
	if (strncmp(filter, "$CONTROL/", 9) == 0)
		return reaches(filter + 9, "chat");
	if (filter[0] == '$')
		return false;
	return reaches(filter, c->prefix);
}
