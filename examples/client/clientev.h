// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* clientev.h — chat-client's decoders of the protocol v2 inbox events
 * (docs/PROTOCOL.md "Capabilities (v2)"): `sents`, `rcpts`, `batch` and
 * the ctl reply to `caps`. Allocation-free: strings are pointers into the
 * payload. Each decoder checks the whole event first and calls back only
 * for an event that is well-formed throughout, so a malformed one changes
 * nothing (it returns CHAT_EINVAL with *why saying what was wrong).
 * A library of its own so that tests/fuzz/fuzz_clientev.c links it alone.
 */
#ifndef CHAT_CLIENTEV_H
#define CHAT_CLIENTEV_H

#include "cbor_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CEV_LIST_MAX 1024       /* seqs or users in one set / one `dl` */

/* The capabilities a v2 client declares: one line each. */
#define CEV_CAPS(X) \
	X(SENTS, "sents") \
	X(RCPTS, "rcpts") \
	X(BATCH, "batch")
enum {
#define CEV_BIT(id, name) CEV_CAP_##id##_BIT,
	CEV_CAPS(CEV_BIT)
#undef CEV_BIT
	CEV_NCAPS
};
#define CEV_CAP(id) (1u << CEV_CAP_##id##_BIT)
/* The name of capability bit i (i < CEV_NCAPS). */
const char *cev_cap_name(unsigned i);

/* One entry of a `sents` event. cid is BYTES (1..16) or UINT. */
typedef struct cev_sent {
	cbr_item cid, conv;
	uint64_t seq, ts;
	cbr_item dl[CEV_LIST_MAX];  /* TEXT user ids, delivered before the confirmation */
	size_t ndl;
} cev_sent;
typedef void (*cev_sent_fn)(void *ctx, const cev_sent *s);
/* {k: "sents", items: [+ {cid, conv, seq, ? ts, ? dl: [+ uid]}]}: fn once
 * per item, in order (s is scratch, reused). */
int cev_sents(const uint8_t *p, size_t len, cev_sent *s, cev_sent_fn fn, void *ctx,
              const char **why);

/* A `rcpts` event's header and one of its sets. */
typedef struct cev_rcpts {
	cbr_item conv, s;           /* s: "delivered", "read" or "expired" */
	uint64_t ts;
} cev_rcpts;
typedef struct cev_rset {
	uint64_t seqs[CEV_LIST_MAX]; size_t nseqs;
	cbr_item by[CEV_LIST_MAX]; size_t nby;
} cev_rset;
typedef void (*cev_rset_fn)(void *ctx, const cev_rcpts *h, const cev_rset *set);
/* {k: "rcpts", conv, s, ts, sets: [+ {seqs: [+ uint], by: [+ uid]}]}: fn
 * once per set, in order. */
int cev_rcpts_each(const uint8_t *p, size_t len, cev_rcpts *h, cev_rset *set, cev_rset_fn fn,
                   void *ctx, const char **why);

typedef void (*cev_ev_fn)(void *ctx, const uint8_t *ev, size_t len);
/* {k: "batch", evs: [+ map]}: fn with the encoded bytes of each element
 * (one CBOR map, inside p), in order. */
int cev_batch(const uint8_t *p, size_t len, cev_ev_fn fn, void *ctx, const char **why);

/* The ctl reply to `caps`: {k: "ctl", rid, ok, ? caps: [* tstr],
 * ? server: {v, puback_delivered, gather_ms, replay_batch}}. */
typedef struct cev_caps {
	bool ok;
	unsigned caps;              /* the known names in `caps`, as CEV_CAP bits */
	bool has_server, puback_delivered;
	uint64_t v, gather_ms, replay_batch;
	cbr_item code, msg;         /* a refusal's */
} cev_caps;
int cev_caps_reply(const uint8_t *p, size_t len, cev_caps *out, const char **why);

#endif
