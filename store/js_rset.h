// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_rset.h — the pure parts of the JetStream backend's queue side
 * (store/js_queue.c): sets of seq ranges and the receipt append's payload
 * on CHAT_RCPT rc.<conv>.<user> (docs/CLUSTER.md, "Queues, sync and
 * receipts"). No NATS type, no I/O: unit-tested and fuzzed (fuzz_js). */
#ifndef CHAT_JS_RSET_H
#define CHAT_JS_RSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seqs lo..hi, both included, 1 <= lo <= hi. */
typedef struct jstore_range {
	uint64_t lo, hi;
} jstore_range;

/* A set of seqs: sorted ranges, disjoint and not adjacent (canonical). */
typedef struct js_rset {
	jstore_range *v;
	size_t n, cap;
} js_rset;

/* Sorts and merges r[0..n) in place (overlapping or adjacent ranges become
 * one); the new count. Ranges with lo == 0 or lo > hi are dropped. */
size_t js_rset_norm(jstore_range *r, size_t n);
/* s ∪= r[0..n) (any order). CHAT_OK or CHAT_ENOMEM. */
int js_rset_add(js_rset *s, const jstore_range *r, size_t n);
/* out = r[0..n) minus s (r canonical); out is reset first. */
int js_rset_minus(js_rset *out, const jstore_range *r, size_t n, const js_rset *s);
bool js_rset_has(const js_rset *s, uint64_t seq);
/* How many seqs the set holds (saturating). */
uint64_t js_rset_count(const jstore_range *r, size_t n);
void js_rset_free(js_rset *s);

/* The receipt append: u8 version 1, u8 state (1 delivered, 2 read), u16
 * count (big-endian), then count × (u64 lo, u64 hi) big-endian, canonical
 * (sorted, disjoint, not adjacent, 1 <= lo <= hi). */
#define JS_RCPT_RANGES_MAX 4096
/* The length written, 0 if it does not fit or the ranges are not canonical. */
size_t js_rcpt_encode(uint8_t *out, size_t cap, int state, const jstore_range *r, size_t n);
/* CHAT_OK: *state and r[0..*n) (r has room for JS_RCPT_RANGES_MAX);
 * CHAT_ECORRUPT for anything else. */
int js_rcpt_decode(const uint8_t *v, size_t len, int *state, jstore_range *r, size_t *n);

/* A queue position (docs/CLUSTER.md, "Every store.h function"): the last
 * stream seq walked in q.<addr> and in e.<addr>, and the reservations held
 * back (pending, or behind a pending one of their conversation) that the
 * next page reads again first. */
#define JSTORE_QHELD_MAX 32
typedef struct jstore_qpos {
	uint64_t q, e;
	uint32_t nheld;
	uint64_t held[JSTORE_QHELD_MAX]; /* ascending, each <= q */
} jstore_qpos;
/* As text, for the plugin's logs and a position kept outside the process:
 * "q.e" then ".h" for each held seq, decimal; the length (0: no room). */
size_t js_qpos_encode(char *out, size_t cap, const jstore_qpos *p);
/* CHAT_OK, or CHAT_EINVAL for anything js_qpos_encode does not make
 * (held not ascending, a held seq above q, too many). */
int js_qpos_decode(const char *s, size_t len, jstore_qpos *p);

#endif
