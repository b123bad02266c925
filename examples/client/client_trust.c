// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_trust.c — whose identity keys chat-client has seen, and what it
 * tells the user when they change (docs/E2EE.md §8).
 *
 * For every user it talks to (and for its own user) the state keeps the key
 * set: (device id, identity key) of each device, learnt from key-server
 * bundles, from incoming X3DH messages and from device lists (ctl `devices`
 * before each send, the `devices` event when an admin removes a device).
 * The first set seen for a user is trusted silently (a set learnt from one
 * X3DH message is partial until a device list completes it); every later
 * change — a device added, removed, or a new key — prints a notice, stores it in the
 * history of the conversation with that user and clears the user's verified
 * mark (all marks for a change of our own set: every safety number changed).
 * The safety number is computed from these sets (safety.c).
 */
#include "client.h"
#include "err.h"
#include "ids.h"
#include "safety.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool split_addr(const char *addr, char *user, char *dev)
{
	const char *u, *d;
	size_t ul, dl;
	if (!chat_parse_addr(addr, strlen(addr), &u, &ul, &d, &dl) || ul >= NAME_MAX_ ||
	    dl >= NAME_MAX_)
		return false;
	memcpy(user, u, ul);
	user[ul] = 0;
	memcpy(dev, d, dl);
	dev[dl] = 0;
	return true;
}

/* "⚠ <conv>: bob's safety number changed: <what>", in the conversation with
 * user (none for our own user), in the history; verified marks cleared. */
static void notice(client *c, const char *user, const char *what)
{
	cstate *st = &c->st;
	bool own = strcmp(user, c->net.user) == 0;
	char conv[2 * NAME_MAX_ + 4] = "", text[512];
	bool was = false;
	if (own) {
		for (size_t i = 0; i < st->ncontacts; i++) {
			was |= st->contacts[i].verified;
			st->contacts[i].verified = false;
		}
		snprintf(text, sizeof text, "your safety number changed (with everyone): %s%s", what,
		         was ? "; verified contacts are unverified now" : "");
	} else {
		contact *k = state_contact(st, user, false);
		was = k && k->verified;
		if (k)
			k->verified = false;
		const char *me = c->net.user;
		bool first = strcmp(me, user) < 0;
		snprintf(conv, sizeof conv, "dm:%s:%s", first ? me : user, first ? user : me);
		snprintf(text, sizeof text, "%s's safety number changed: %s%s", user, what,
		         was ? "; no longer verified" : "");
	}
	state_history(st, conv, 0, "", false, text, strlen(text));
	FILE *f = c->interactive ? stdout : stderr;
	fprintf(f, "⚠ %s%s%s\n", conv, conv[0] ? ": " : "", text);
	fflush(f);
	state_save(st);
}

void trust_seen_key(client *c, const char *addr, const uint8_t ik[E2E_KEY], bool quiet)
{
	char user[NAME_MAX_], dev[NAME_MAX_], what[256];
	if (!split_addr(addr, user, dev))
		return;
	contact *k = state_contact(&c->st, user, true);
	ckey *e = contact_key(k, dev);
	if (e && sodium_memcmp(e->ik, ik, E2E_KEY) == 0)
		return;
	bool note = e || (k->complete && !quiet);
	snprintf(what, sizeof what, e ? "key of %s changed" : "device %s added", addr);
	contact_set_key(k, dev, ik);
	if (note)
		notice(c, user, what);
}

void trust_device_list(client *c, const char *user, const char (*devs)[NAME_MAX_], size_t n)
{
	cstate *st = &c->st;
	contact *k = state_contact(st, user, true);
	for (size_t i = k->nkeys; i-- > 0;) {
		bool listed = false;
		for (size_t j = 0; j < n && !listed; j++)
			listed = strcmp(k->keys[i].dev, devs[j]) == 0;
		if (!listed) {
			char what[256];
			snprintf(what, sizeof what, "device %s/%s removed", user, k->keys[i].dev);
			contact_drop_key(k, k->keys[i].dev);
			notice(c, user, what);
			k = state_contact(st, user, false);
		}
	}
	/* devices we talk to whose key is not recorded yet (a state from before
	 * key sets were kept): the session's key, silently */
	for (size_t j = 0; j < n; j++) {
		if (contact_key(k, devs[j]))
			continue;
		char addr[2 * NAME_MAX_];
		snprintf(addr, sizeof addr, "%s/%s", user, devs[j]);
		peer *p = state_peer(st, addr, false);
		if (strcmp(addr, c->net.addr) == 0)
			contact_set_key(k, devs[j], st->ik_pk);
		else if (p && p->nsess > 0)
			contact_set_key(k, devs[j], p->sess[0]->remote_ik);
	}
	k->complete = true;
}

static safety_key *keys_of(contact *k, const char *own_dev, const uint8_t *own_ik, size_t *n)
{
	safety_key *s = calloc(k->nkeys + 1, sizeof *s);
	*n = 0;
	if (!s)
		return NULL;
	bool have_own = false;
	for (size_t i = 0; i < k->nkeys; i++) {
		s[*n].dev = k->keys[i].dev;
		s[(*n)++].ik = k->keys[i].ik;
		if (own_dev && strcmp(k->keys[i].dev, own_dev) == 0) {
			s[*n - 1].ik = own_ik;   /* always our own current key */
			have_own = true;
		}
	}
	if (own_dev && !have_own) {
		s[*n].dev = own_dev;
		s[(*n)++].ik = own_ik;
	}
	return s;
}

int trust_safety(client *c, const char *peer, char *number, uint8_t *qr)
{
	cstate *st = &c->st;
	contact *me = state_contact(st, c->net.user, true);
	contact *p = state_contact(st, peer, false);
	if (!p || p->nkeys == 0) {
		fprintf(stderr, "chat-client: no identity keys of %s known\n", peer);
		return CHAT_ENOTFOUND;
	}
	size_t na, nb;
	safety_key *ka = keys_of(me, c->net.dev, st->ik_pk, &na);
	safety_key *kb = keys_of(p, NULL, NULL, &nb);
	int rc = ka && kb && safety_number(c->net.user, ka, na, peer, kb, nb, number, qr) == 0
	         ? CHAT_OK : CHAT_EINVAL;
	if (rc != CHAT_OK)
		fprintf(stderr, "chat-client: cannot compute the safety number with %s\n", peer);
	free(ka);
	free(kb);
	return rc;
}
