// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_sess.h — the pure parts of sessions, node leases and live events
 * (store/js_sess.c; docs/CLUSTER.md "Device→node routing, live events,
 * presence"): the record formats of chat_sess and chat_nodes, the live
 * event's body, the per-sender numbering/gap tracker and the job slots.
 * No NATS type and no I/O: unit-tested (tests/unit/test_jsstore.c) and
 * fuzzed (tests/fuzz/fuzz_js.c). */
#ifndef CHAT_JS_SESS_H
#define CHAT_JS_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "js.h"
#include "js_codec.h"

/* chat_sess <U>.<D>.<conn>: u8 version 1, u64 since (unix ms, big-endian),
 * u8 len + node. */
size_t js_sess_encode(uint8_t *out, size_t cap, const char *node, uint64_t since);
int js_sess_decode(const uint8_t *v, size_t len, char node[JS_NODE_MAX + 1], uint64_t *since);
/* chat_nodes <node>: u8 version 1, u64 ts (the node's unix ms, big-endian). */
size_t js_hb_encode(uint8_t out[9], uint64_t ts);
int js_hb_decode(const uint8_t *v, size_t len, uint64_t *ts);

/* A live event's body on <P>.node.<id>.ev: u16 n (big-endian, 1..JS_LIVE_DEVS_MAX),
 * n × (u8 len + address "U/D" + u64 queue seq), then the event's bytes
 * (opaque). The headers carry Chat-Node (the sender), Chat-Epoch (the
 * sender's numbering run) and Chat-N (the number, from 1, per target). */
#define JS_LIVE_DEVS_MAX 4096
size_t js_live_encode(uint8_t *out, size_t cap, const jstore_live_dev *devs, size_t n, const uint8_t *bytes,
                      size_t len);
/* The size js_live_encode needs. */
size_t js_live_size(const jstore_live_dev *devs, size_t n, size_t len);
/* devs: malloc'd (the caller frees), each address valid ("U/D" of ids);
 * *bytes points into b. CHAT_ECORRUPT if malformed, CHAT_ENOMEM. */
int js_live_decode(const uint8_t *b, size_t len, jstore_live_dev **devs, size_t *n, const uint8_t **bytes,
                   size_t *blen);

/* The numbering of live events from one sender: numbers of one epoch
 * count 1, 2, 3…; a new epoch (the sender restarted) starts again. */
typedef struct js_gap {
	bool known;
	uint64_t epoch, last;
} js_gap;
enum js_gap_res {
	JS_GAP_NEXT,     /* the next number: deliver */
	JS_GAP_MISSING,  /* numbers *first..*last were lost: report, then deliver this one */
	JS_GAP_OLD,      /* a number already seen (or 0): drop */
};
enum js_gap_res js_gap_check(js_gap *g, uint64_t epoch, uint64_t n, uint64_t *first, uint64_t *last);

/* Time-slotted job leases (chat_jobs janitor.<slot>, sweeper.<slot>):
 * the slot of a unix time and the ms left in it. slot_ms > 0. */
uint64_t js_slot_of(uint64_t unix_ms, uint32_t slot_ms);
uint64_t js_slot_left_ms(uint64_t unix_ms, uint32_t slot_ms);

/* A session key's connection token: "<node-enc>_<conn>" (unique: the
 * last '_' splits, conn is decimal). 0 if it does not fit. */
size_t js_conn_token(char *out, size_t cap, const char *node, uint64_t conn);

#endif
