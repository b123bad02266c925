// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fake_io.c — the recording fake of core_io and lookups over what it
 * recorded; see fake_io.h.
 */
#include "fake_io.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fake_io F;

static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 64;
	void *a = realloc(arr, *cap * elem);
	ck_assert_ptr_nonnull(a);
	return a;
}

static char *xstrdup(const char *s)
{
	ck_assert_ptr_nonnull(s);
	char *d = strdup(s);
	ck_assert_ptr_nonnull(d);
	return d;
}

static int fake_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
                        size_t len, int qos, bool retain)
{
	ck_assert_ptr_eq(ctx, &F);
	ck_assert_ptr_nonnull(topic);
	/* To all subscribers: the presence documents (retained with
	 * plugin_opt_presence_retained; tests check it), wake-ups (never
	 * retained) for the push gateways and the retained device-removal
	 * notices for the key server; the last two always recorded. To one
	 * client: never retained. */
	if (clientid) {
		ck_assert(!retain);
	} else if (strstr(topic, "/push/wake")) {
		ck_assert(!retain);
	} else if (strstr(topic, "/keys/removed/")) {
		ck_assert(retain);
	} else {
		ck_assert_ptr_nonnull(strstr(topic, "/presence/"));
		F.nbroadcasts++;
		if (F.broadcasts == FAKE_BROADCASTS_COUNTED)
			return F.publish_rc;
	}
	F.pubs = grow(F.pubs, &F.cappubs, F.npubs, sizeof(pubrec));
	pubrec *r = &F.pubs[F.npubs++];
	r->clientid = xstrdup(clientid ? clientid : ALL_SUBSCRIBERS);
	r->topic = xstrdup(topic);
	r->p = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(r->p);
	if (len)
		memcpy(r->p, payload, len); /* the payload is only lent */
	r->len = len;
	r->qos = qos;
	r->retain = retain;
	return F.publish_rc;
}

static uint64_t fake_now(void *ctx)
{
	ck_assert_ptr_eq(ctx, &F);
	return F.now;
}

static void fake_log(void *ctx, int level, const char *msg)
{
	(void)level;
	ck_assert_ptr_eq(ctx, &F);
	F.logs = grow(F.logs, &F.caplogs, F.nlogs, sizeof(char *));
	F.logs[F.nlogs++] = xstrdup(msg);
}

static void fake_kick(void *ctx, const char *name, bool username)
{
	ck_assert_ptr_eq(ctx, &F);
	F.kicks = grow(F.kicks, &F.capkicks, F.nkicks, sizeof(char *));
	char rec[512];
	snprintf(rec, sizeof(rec), "%s%s", username ? "user:" : "", name);
	F.kicks[F.nkicks++] = xstrdup(rec);
}

static int fake_ack(void *ctx, uint64_t conn_id, uint16_t mid, uint8_t reason)
{
	ck_assert_ptr_eq(ctx, &F);
	F.acks = grow(F.acks, &F.capacks, F.nacks, sizeof(ackrec));
	F.acks[F.nacks++] = (ackrec){ conn_id, mid, reason, F.npubs };
	return F.ack_rc;
}

/* The commit thread's: no Check calls here. */
static void fake_wakeup(void *ctx)
{
	atomic_fetch_add(&((fake_io *)ctx)->wakeups, 1);
}

/* no fatal: a failed fsync refuses instead of ending the test process */
const core_io IO = { &F, fake_publish, fake_now, fake_log, fake_kick, fake_ack, fake_wakeup, NULL };

void fake_reset(enum fake_broadcasts broadcasts)
{
	memset(&F, 0, sizeof(F));
	F.now = FAKE_T0;
	F.broadcasts = broadcasts;
}

void fake_free(void)
{
	for (size_t i = 0; i < F.npubs; i++) {
		free(F.pubs[i].clientid);
		free(F.pubs[i].topic);
		free(F.pubs[i].p);
	}
	for (size_t i = 0; i < F.nlogs; i++)
		free(F.logs[i]);
	for (size_t i = 0; i < F.nkicks; i++)
		free(F.kicks[i]);
	free(F.pubs);
	free(F.acks);
	free(F.logs);
	free(F.kicks);
	memset(&F, 0, sizeof(F));
}

bool logged(size_t since, const char *a, const char *b)
{
	for (size_t i = since; i < F.nlogs; i++)
		if (strstr(F.logs[i], a) && (!b || strstr(F.logs[i], b)))
			return true;
	return false;
}

size_t mark(void) { return F.npubs; }

size_t count_to(size_t m, const char *clientid)
{
	size_t n = 0;
	for (size_t i = m; i < F.npubs; i++)
		n += strcmp(F.pubs[i].clientid, clientid) == 0;
	return n;
}

const pubrec *pub_to(size_t m, const char *clientid)
{
	const pubrec *found = NULL;
	for (size_t i = m; i < F.npubs; i++) {
		if (strcmp(F.pubs[i].clientid, clientid) == 0) {
			ck_assert_msg(!found, "more than one publish to %s", clientid);
			found = &F.pubs[i];
		}
	}
	ck_assert_msg(found != NULL, "no publish to %s", clientid);
	return found;
}

const pubrec *nth_to(size_t m, const char *clientid, size_t nth)
{
	for (size_t i = m; i < F.npubs; i++)
		if (strcmp(F.pubs[i].clientid, clientid) == 0 && nth-- == 0)
			return &F.pubs[i];
	ck_abort_msg("too few publishes to %s", clientid);
	return NULL;
}
