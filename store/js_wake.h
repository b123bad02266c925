// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_wake.h — the broker-thread wake-up on a stock mosquitto (docs/CLUSTER.md,
 * "Threads"): no mosquitto_loop_wakeup there (patch 0004), and the loop waits
 * in epoll_wait up to 100 ms, calling TICK at the end of every pass. So the
 * plugin keeps one MQTT connection to its own listener and, to wake the
 * loop, writes a PINGREQ on it: the broker's epoll wakes to answer it, and
 * TICK (where the plugin drains the completion FIFO) runs at the end of
 * that pass. One PINGREQ per wake-up, coalesced while one is outstanding.
 *
 * No broker API here (plain sockets; any thread may call js_wake_notify).
 * The owner (broker) thread calls js_wake_drained() before it drains the
 * FIFO: it reads what the broker answered (CONNACK, PINGRESPs), re-arms,
 * and (re)connects: mosquitto 2.0.11 runs plugin_init before it opens its
 * listeners, so the first TICK makes the connection (without waiting for
 * its CONNACK: the broker thread never blocks on it). The broker must let it in: the chat
 * plugin will authenticate it by a random password of the process's life
 * and give it no rights (the wiring is for plan step 4). */
#ifndef CHAT_JS_WAKE_H
#define CHAT_JS_WAKE_H

#include <stddef.h>
#include <stdint.h>

typedef struct js_wake js_wake;

/* host: an IPv4 address; username/password may be NULL (anonymous). */
int js_wake_open(js_wake **out, const char *host, int port, const char *clientid, const char *username,
                 const char *password, char *errbuf, size_t errlen);
/* Any thread: wakes the broker's loop (a PINGREQ unless one is outstanding). */
void js_wake_notify(void *w);
/* The owner thread, before draining: re-arms, reads the answers, reconnects. */
void js_wake_drained(js_wake *w);
void js_wake_close(js_wake *w);
/* PINGREQs written and PINGRESPs read so far. */
void js_wake_counts(const js_wake *w, uint64_t *pings, uint64_t *pongs);

#endif
