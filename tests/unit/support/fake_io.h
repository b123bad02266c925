// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fake_io.h — a recording fake of core_io for the unit tests that drive the
 * plugin core (test_core.c, test_offline.c): every publish is copied into
 * F.pubs, the clock is F.now (settable), log lines are kept in F.logs and
 * kicked client ids in F.kicks. Plus lookups over the recorded publishes.
 *
 * Use: fake_reset() before a test, pass &IO to core_open(), fake_free()
 * after it. The fake checks its ctx and arguments with ck_assert, so it
 * must run inside a Check test.
 */
#ifndef TEST_SUPPORT_FAKE_IO_H
#define TEST_SUPPORT_FAKE_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* The clock after fake_reset(): 2023-11-14T22:13:20Z, in ms. */
#define FAKE_T0 1700000000000ULL

/* The client id recorded for a publish to every subscriber (clientid NULL:
 * the retained presence documents and the wake-ups for push gateways). */
#define ALL_SUBSCRIBERS "*"

/* One publish, copied (the core only lends its arguments). */
typedef struct pubrec {
	char *clientid, *topic; /* clientid ALL_SUBSCRIBERS for a NULL one */
	uint8_t *p;
	size_t len;
	int qos;
	bool retain;
} pubrec;

/* What to do with a publish to every subscriber (clientid NULL) other than
 * a wake-up (P/push/wake, not retained, always recorded). Either way it
 * must be on a presence topic, and is counted in
 * F.nbroadcasts. */
enum fake_broadcasts {
	FAKE_BROADCASTS_RECORDED, /* also in F.pubs, with clientid ALL_SUBSCRIBERS */
	FAKE_BROADCASTS_COUNTED,  /* only counted: F.pubs holds per-client publishes */
};

/* One acknowledgement sent through io.ack (group commit, commit.c). */
typedef struct ackrec {
	uint64_t conn_id;
	uint16_t mid;
	uint8_t reason;
	size_t npubs;   /* the publishes recorded before it */
} ackrec;

typedef struct fake_io {
	pubrec *pubs; /* every publish, in order */
	size_t npubs, cappubs;
	uint64_t now; /* what core_io.now returns */
	char **logs;  /* every log line, in order */
	size_t nlogs, caplogs;
	char **kicks; /* every kicked client id, in order ("user:NAME": by username) */
	size_t nkicks, capkicks;
	size_t nbroadcasts;             /* publishes with clientid NULL */
	int publish_rc;                 /* what core_io.publish returns */
	enum fake_broadcasts broadcasts;
	ackrec *acks;                   /* every io.ack, in order */
	size_t nacks, capacks;
	int ack_rc;                     /* what core_io.ack returns */
	atomic_uint wakeups;            /* io.wakeup calls (from the commit thread) */
} fake_io;

extern fake_io F;
/* The core_io whose ctx is &F. */
extern const core_io IO;

/* Clears F (no publishes, logs or kicks; now FAKE_T0; publish_rc 0). */
void fake_reset(enum fake_broadcasts broadcasts);
/* Frees what F holds and clears it. */
void fake_free(void);

/* Whether a log line since index `since` contains a (and b, unless NULL). */
bool logged(size_t since, const char *a, const char *b);

/* The current number of publishes: a mark to look from. */
size_t mark(void);
/* How many publishes to clientid since mark m. */
size_t count_to(size_t m, const char *clientid);
/* The one publish to clientid since m (asserts there is exactly one). */
const pubrec *pub_to(size_t m, const char *clientid);
/* The nth (from 0) publish to clientid since m (asserts there is one). */
const pubrec *nth_to(size_t m, const char *clientid, size_t nth);

#endif
