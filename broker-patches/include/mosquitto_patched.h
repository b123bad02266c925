// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* mosquitto_patched.h — what broker-patches/ add to mosquitto 2.0.11's
 * plugin API, for plugins built against Debian's stock headers, which do
 * not declare it (docs/BROKER-PATCHES.md).
 *
 * Include it after mosquitto_broker.h. A plugin asks for each event at
 * start (mosquitto_callback_register answers MOSQ_ERR_NOT_SUPPORTED on a
 * broker without it) and checks the 0004 functions, weak here, for NULL,
 * so that it still loads and runs on stock mosquitto. The numbers and
 * layouts are the patches': keep them in step with the .patch files.
 */
#ifndef CHAT_MOSQUITTO_PATCHED_H
#define CHAT_MOSQUITTO_PATCHED_H

#include <stdbool.h>
#include <stdint.h>

/* ---- 0001-0003: events ---- */

enum {
	PATCHED_EVT_CONNECT = 11,          /* upstream 2.1's number and layout */
	PATCHED_EVT_SUBSCRIBE = 12,        /* likewise */
	PATCHED_EVT_MESSAGE_ACKED = 1000,  /* not upstream */
};

struct patched_evt_connect {
	void *future;
	struct mosquitto *client;
	void *future2[4];
};

struct patched_subscription {
	char *clientid;
	char *topic_filter;
	mosquitto_property *properties;
	uint32_t identifier;
	uint8_t options;
	uint8_t padding[3];
	void *future2[8];
};

struct patched_evt_subscribe {
	void *future;
	struct mosquitto *client;
	struct patched_subscription data;
	void *future2[8];
};

struct patched_evt_message_acked {
	void *future;
	struct mosquitto *client;
	const char *topic;
	const void *payload;
	const mosquitto_property *properties;
	uint32_t payloadlen;
	uint16_t mid;
	uint8_t qos;
	uint8_t reason_code;
	bool retain;
	uint8_t padding[7];
	void *future2[4];
};

/* ---- 0004: deferred acknowledgements and the loop wake-up ---- */
#define PATCHED_EVT_LOOP_WAKEUP 1001
#define PATCHED_ERR_ACK_DEFERRED 1000
extern uint64_t mosquitto_client_connection_id(const struct mosquitto *client) __attribute__((weak));
extern uint16_t mosquitto_client_publish_mid(const struct mosquitto *client) __attribute__((weak));
extern int mosquitto_ack_complete(uint64_t connection_id, uint16_t mid, uint8_t reason_code)
	__attribute__((weak));
extern void mosquitto_loop_wakeup(void) __attribute__((weak));

#endif
