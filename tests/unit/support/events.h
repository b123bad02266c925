// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* events.h — decoding the payloads the fake core_io recorded (fake_io.h)
 * with the project's CBOR reader, for assertions in Check tests. Every
 * payload must be one well-formed CBOR map with text keys; the f*()
 * getters look a key up in that top-level map and ck_assert its type.
 * Text results live in small rings of static buffers: copy one to keep
 * it past a few more calls.
 */
#ifndef TEST_SUPPORT_EVENTS_H
#define TEST_SUPPORT_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbor_io.h"
#include "fake_io.h"

/* Asserts the payload is one CBOR map with text keys and nothing after. */
void well_formed(const pubrec *p);
/* Finds key in the top-level map: the value's head in *val and its raw
 * encoding in *raw, *rawlen (each optional). */
bool fget(const pubrec *p, const char *key, cbr_item *val, const uint8_t **raw, size_t *rawlen);
bool fhas(const pubrec *p, const char *key);
/* How many keys the top-level map has. */
size_t fnkeys(const pubrec *p);
/* The value of key, which must be there and of that type. */
const char *ftext(const pubrec *p, const char *key);
uint64_t fuint(const pubrec *p, const char *key);
bool fbool(const pubrec *p, const char *key);
/* Asserts key holds exactly the n bytes exp. */
void fbytes_eq(const pubrec *p, const char *key, const void *exp, size_t n);
/* An array, joined in its order: uints with '+', texts with ','. */
const char *flist(const pubrec *p, const char *key);
/* The same for an array that must hold only texts. */
const char *ftext_list(const pubrec *p, const char *key);

/* "chat/inbox/<addr>" into out. */
void inbox_topic(char *out, size_t n, const char *addr);
/* The next publish to addr from F.pubs[*i] on, checked to be on its own
 * inbox at QoS 1 (*i moves past it); NULL when there is none. */
const pubrec *inbox_next(size_t *i, const char *addr);
/* The one publish to addr since mark m: on its inbox, QoS 1, not retained,
 * of kind ("k") k. */
const pubrec *event_to(size_t m, const char *addr, const char *k);
/* A refusal: exactly one publish since m, an error event to addr with
 * that code and a message. */
const pubrec *refused(size_t m, const char *addr, const char *code);

#endif
