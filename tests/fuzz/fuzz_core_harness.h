// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_core_harness.h — what the plugin-core fuzz targets share.
 *
 * One core per process, opened on the first input in a fresh data dir under
 * $TMPDIR with a fixed cast of devices (registered through the admin
 * command, connected through core_auth) and a few messages already stored
 * in dm:alice:bob, so receipts and syncs have something to work on. The
 * core_io is a checking fake: every payload the core publishes must be one
 * well-formed CBOR item addressed to a known inbox or the admin response
 * topic, or the process aborts (libFuzzer reports it as a crash). A kick
 * disconnects the device, as the broker would.
 *
 * The store is on disk and inputs grow it, so fz_done() (called after every
 * input) reopens the core on a new, empty data dir every FZ_REOPEN_INPUTS
 * inputs or FZ_REOPEN_STORED stored messages and group events (each of
 * which may leave a group in memory): memory and disk stay bounded.
 * Inputs are therefore not fully independent of the ones before them; a
 * crash file is replayed against a fresh core (the state right after open).
 */
#ifndef CHAT_FUZZ_CORE_HARNESS_H
#define CHAT_FUZZ_CORE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_internal.h"

#define FZ_REOPEN_INPUTS 20000
#define FZ_REOPEN_STORED 5000

/* The cast: alice/phone, alice/laptop, bob/phone, carol/phone online;
 * bob/tablet offline. dm:alice:bob holds seqs 1..FZ_SEEDED_SEQS. */
enum fz_dev { FZ_ALICE_PHONE, FZ_ALICE_LAPTOP, FZ_BOB_PHONE, FZ_BOB_TABLET, FZ_CAROL_PHONE, FZ_NDEV };
#define FZ_SEEDED_SEQS 6

/* The core, opened if needed. Aborts when it cannot be opened. */
core *fz_core(void);
/* Another core, on its own data dir, with no devices: for targets that
 * compare configurations. Kept until exit (at most 4). */
core *fz_core_extra(const char *prefix, enum core_foreign_acl foreign);
/* After every input: runs a tick (kicks, replays, expiry) and reopens the
 * core when its store has grown enough. */
void fz_done(void);

const char *fz_addr(enum fz_dev d);
void *fz_conn(enum fz_dev d);
/* Connects (core_auth with its token) or disconnects a cast device. */
void fz_connect(enum fz_dev d);
void fz_disconnect(enum fz_dev d);

/* The fake clock, ms; fz_advance moves it forward. */
uint64_t fz_now(void);
void fz_advance(uint64_t ms);

/* A publish as device d (its own client id and username), QoS 1. */
enum core_verdict fz_publish_as(enum fz_dev d, const char *topic, const void *payload, size_t len);

/* Whether every text string in a CBOR buffer is valid UTF-8. With
 * FUZZ_STRICT_UTF8 set, the fake core_io aborts on an event that has one
 * that is not (strict decoders such as Python's cbor2 reject them). */
bool fz_text_utf8(const void *cbor, size_t len);

/* Publishes the core has made since the process started. */
uint64_t fz_published(void);

#endif
