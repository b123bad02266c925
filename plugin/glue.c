// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* glue.c — the only file that knows mosquitto.
 *
 * Reads plugin_opt_* into a core_config, registers the broker callbacks and
 * turns each event into one call on the core (core.h). Everything here runs
 * on the broker's single thread. See shared/MOSQUITTO-2.0-NOTES.md for the
 * broker behaviour this relies on (callback timing, return-code meanings).
 *
 * A broker built with broker-patches/ has three more events. The installed
 * (stock) headers do not declare them, so their numbers and data layouts
 * are mirrored from the patches in broker-patches/include/mosquitto_patched.h
 * (which the patches' own test plugin includes too); the glue asks for each at start and
 * the broker answers MOSQ_ERR_NOT_SUPPORTED where it lacks one. The core is
 * told which it got and decides what changes (broker_events.c).
 *
 * The fourth patch (0004, deferred acknowledgements) adds an event,
 * LOOP_WAKEUP, and four functions, declared there as weak symbols: on a
 * stock broker they resolve to NULL and the plugin still loads. Group
 * commit (commit.c) runs when the event registers and all four resolve.
 */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "core.h"
#include "mosquitto_patched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static mosquitto_plugin_id_t *plugin_id;
static bool acks_deferrable; /* LOOP_WAKEUP registered and the four functions resolved */
static core *the_core;

/* ---- core_io over the broker API ---- */

static int io_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
                      size_t len, int qos, bool retain)
{
	(void)ctx;
	/* clientid NULL: to every subscriber, through their read ACL checks */
	return mosquitto_broker_publish_copy(clientid, topic, (int)len, payload, qos, retain, NULL);
}

static uint64_t io_now_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void io_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	static const int map[] = { MOSQ_LOG_DEBUG, MOSQ_LOG_INFO, MOSQ_LOG_NOTICE, MOSQ_LOG_WARNING,
		                   MOSQ_LOG_ERR };
	mosquitto_log_printf(map[level], "chat: %s", msg);
}

static void io_kick(void *ctx, const char *name, bool username)
{
	(void)ctx;
	if (username)
		mosquitto_kick_client_by_username(name, false);
	else
		mosquitto_kick_client_by_clientid(name, false);
}

static int io_ack(void *ctx, uint64_t conn_id, uint16_t mid, uint8_t reason)
{
	(void)ctx;
	return mosquitto_ack_complete(conn_id, mid, reason);
}

/* Any thread: the commit thread, after an fsync. */
static void io_wakeup(void *ctx)
{
	(void)ctx;
	mosquitto_loop_wakeup();
}

/* A failed fsync (plugin/commit.c): the process ends as a crash would, so
 * that its service manager restarts it and RocksDB recovers from what the
 * disk really holds. Neither mosquitto's shutdown nor the plugin's cleanup
 * runs: both would write to the disk that just failed. */
static void io_fatal(void *ctx)
{
	(void)ctx;
	_exit(CHAT_EXIT_FSYNC_FAILED);
}

/* ---- callbacks ---- */

static int verdict(enum core_verdict v)
{
	switch (v) {
	case CORE_ALLOW: return MOSQ_ERR_SUCCESS;
	case CORE_DEFER: return MOSQ_ERR_PLUGIN_DEFER;
	default: return MOSQ_ERR_ACL_DENIED;
	}
}

static int on_basic_auth(void *event_data)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *pw = ed->password;
	enum core_verdict v = core_auth(the_core, ed->client, mosquitto_client_id(ed->client),
	                                ed->username, pw, pw ? strlen(pw) : 0);
	if (v == CORE_DENY)
		return MOSQ_ERR_AUTH;
	return v == CORE_ALLOW ? MOSQ_ERR_SUCCESS : MOSQ_ERR_PLUGIN_DEFER;
}

static int on_acl_check(void *event_data)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	return verdict(core_acl(the_core, ed->client, mosquitto_client_id(ed->client),
	                        mosquitto_client_username(ed->client), ed->topic, ed->access,
	                        ed->retain));
}

static int on_message(void *event_data)
{
	struct mosquitto_evt_message *ed = event_data;
	enum core_verdict v = core_message(the_core, ed->client, mosquitto_client_id(ed->client),
	                                   mosquitto_client_username(ed->client), ed->topic,
	                                   ed->payload, ed->payloadlen, ed->qos, ed->retain,
	                                   mosquitto_client_protocol_version(ed->client));
	if ((v == CORE_ALLOW || v == CORE_PENDING) && ed->qos > 0 && acks_deferrable &&
	    core_ack_later(the_core, mosquitto_client_connection_id(ed->client),
	                   mosquitto_client_publish_mid(ed->client)))
		return PATCHED_ERR_ACK_DEFERRED;
	/* Only ACL_DENIED keeps the connection (and gives MQTT 5 reason 0x87).
	 * A pending send on stock mosquitto: the PUBACK means "received", its
	 * `sent` or `error` event tells the outcome. */
	return v == CORE_ALLOW || v == CORE_PENDING ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

static int on_control(void *event_data)
{
	struct mosquitto_evt_control *ed = event_data;
	core_control(the_core, mosquitto_client_id(ed->client), mosquitto_client_username(ed->client),
	             ed->payload, ed->payloadlen);
	return MOSQ_ERR_SUCCESS;
}

static int on_tick(void *event_data)
{
	(void)event_data;
	core_tick(the_core);
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(void *event_data)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	core_disconnect(the_core, ed->client, mosquitto_client_id(ed->client),
	                mosquitto_client_username(ed->client));
	return MOSQ_ERR_SUCCESS;
}

static int on_connect(void *event_data)
{
	struct patched_evt_connect *ed = event_data;
	core_connected(the_core, ed->client, mosquitto_client_username(ed->client),
	               mosquitto_client_clean_session(ed->client));
	return MOSQ_ERR_SUCCESS;
}

static int on_subscribe(void *event_data)
{
	struct patched_evt_subscribe *ed = event_data;
	if (ed->data.topic_filter)
		core_subscribed(the_core, ed->client, mosquitto_client_username(ed->client),
		                ed->data.topic_filter);
	return MOSQ_ERR_SUCCESS;
}

static int on_message_acked(void *event_data)
{
	struct patched_evt_message_acked *ed = event_data;
	if (!ed->topic)
		return MOSQ_ERR_SUCCESS;
	/* First what the acknowledgement means (delivered), then the room it
	 * frees in the device's flow window, which may publish more. */
	core_acked(the_core, ed->client, mosquitto_client_username(ed->client), ed->topic,
	           ed->payload, ed->payloadlen);
	core_on_delivered_ack_payload(the_core, mosquitto_client_id(ed->client), ed->topic,
	                              ed->payload, ed->payloadlen);
	return MOSQ_ERR_SUCCESS;
}

static int on_loop_wakeup(void *event_data)
{
	(void)event_data;
	core_wakeup(the_core);
	return MOSQ_ERR_SUCCESS;
}

/* One entry point for every event: mosquitto passes the event's number, so
 * the handlers above take only the event's data. */
static int dispatch(int event, void *event_data, void *userdata)
{
	(void)userdata;
	switch (event) {
	case MOSQ_EVT_BASIC_AUTH: return on_basic_auth(event_data);
	case MOSQ_EVT_ACL_CHECK: return on_acl_check(event_data);
	case MOSQ_EVT_MESSAGE: return on_message(event_data);
	case MOSQ_EVT_CONTROL: return on_control(event_data);
	case MOSQ_EVT_TICK: return on_tick(event_data);
	case MOSQ_EVT_DISCONNECT: return on_disconnect(event_data);
	case PATCHED_EVT_CONNECT: return on_connect(event_data);
	case PATCHED_EVT_SUBSCRIBE: return on_subscribe(event_data);
	case PATCHED_EVT_MESSAGE_ACKED: return on_message_acked(event_data);
	case PATCHED_EVT_LOOP_WAKEUP: return on_loop_wakeup(event_data);
	default: return MOSQ_ERR_SUCCESS;
	}
}

/* ---- options ---- */

static bool read_options(core_config *cfg, struct mosquitto_opt *opts, int n)
{
	char err[256];
	for (int i = 0; i < n; i++)
		if (!core_config_set(cfg, opts[i].key, opts[i].value, err, sizeof(err))) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "chat: %s", err);
			return false;
		}
	return true;
}

/* ---- plugin entry points ---- */

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

static const struct {
	int event;
	const char *data;
} callbacks[] = {
	{ MOSQ_EVT_BASIC_AUTH, NULL },
	{ MOSQ_EVT_ACL_CHECK, NULL },
	{ MOSQ_EVT_MESSAGE, NULL },
	{ MOSQ_EVT_CONTROL, "$CONTROL/chat/v1" },
	{ MOSQ_EVT_TICK, NULL },
	{ MOSQ_EVT_DISCONNECT, NULL },
};
#define NCALLBACKS (sizeof(callbacks) / sizeof(callbacks[0]))

/* Registered when the broker has them (broker-patches/). */
static const struct {
	int event;
	unsigned core_event;
} extras[] = {
	{ PATCHED_EVT_CONNECT, CORE_BEV_CONNECT },
	{ PATCHED_EVT_SUBSCRIBE, CORE_BEV_SUBSCRIBE },
	{ PATCHED_EVT_MESSAGE_ACKED, CORE_BEV_ACKED },
};
#define NEXTRAS (sizeof(extras) / sizeof(extras[0]))
static unsigned extras_registered; /* core_broker_event mask */

static void unregister_all(void)
{
	for (size_t i = 0; i < NCALLBACKS; i++)
		mosquitto_callback_unregister(plugin_id, callbacks[i].event, dispatch,
		                              callbacks[i].data);
	for (size_t i = 0; i < NEXTRAS; i++)
		if (extras_registered & extras[i].core_event)
			mosquitto_callback_unregister(plugin_id, extras[i].event, dispatch, NULL);
	extras_registered = 0;
	if (acks_deferrable)
		mosquitto_callback_unregister(plugin_id, PATCHED_EVT_LOOP_WAKEUP, dispatch, NULL);
	acks_deferrable = false;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	if (the_core) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "chat: the plugin can be loaded only once");
		return MOSQ_ERR_INVAL;
	}
	core_config cfg;
	core_config_defaults(&cfg);
	if (!read_options(&cfg, opts, opt_count))
		return MOSQ_ERR_INVAL;
	core_io io = { NULL, io_publish, io_now_ms, io_log, io_kick, io_ack, io_wakeup, io_fatal };
	char err[512] = "";
	the_core = core_open(&cfg, &io, err, sizeof(err));
	if (!the_core) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "chat: cannot start: %s", err);
		return MOSQ_ERR_INVAL;
	}
	plugin_id = identifier;
	for (size_t i = 0; i < NCALLBACKS; i++) {
		int rc = mosquitto_callback_register(plugin_id, callbacks[i].event, dispatch,
		                                     callbacks[i].data, NULL);
		if (rc) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "chat: cannot register callback %d: %s",
			                     callbacks[i].event, mosquitto_strerror(rc));
			return rc;
		}
	}
	for (size_t i = 0; i < NEXTRAS; i++) {
		int rc = mosquitto_callback_register(plugin_id, extras[i].event, dispatch, NULL, NULL);
		if (rc == MOSQ_ERR_SUCCESS) {
			extras_registered |= extras[i].core_event;
		} else if (rc != MOSQ_ERR_NOT_SUPPORTED) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "chat: cannot register callback %d: %s",
			                     extras[i].event, mosquitto_strerror(rc));
			return rc;
		}
	}
	if (!core_broker_events(the_core, extras_registered))
		return MOSQ_ERR_INVAL;
	int rc = mosquitto_callback_register(plugin_id, PATCHED_EVT_LOOP_WAKEUP, dispatch, NULL,
	                                     NULL);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NOT_SUPPORTED) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "chat: cannot register callback %d: %s",
		                     PATCHED_EVT_LOOP_WAKEUP, mosquitto_strerror(rc));
		return rc;
	}
	acks_deferrable = rc == MOSQ_ERR_SUCCESS;
	if (acks_deferrable && !(mosquitto_client_connection_id && mosquitto_client_publish_mid &&
	                         mosquitto_ack_complete && mosquitto_loop_wakeup)) {
		mosquitto_callback_unregister(plugin_id, PATCHED_EVT_LOOP_WAKEUP, dispatch, NULL);
		acks_deferrable = false;
	}
	if (!core_group_commit(the_core, acks_deferrable))
		return MOSQ_ERR_INVAL;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	unregister_all();
	core_close(the_core);
	the_core = NULL;
	return MOSQ_ERR_SUCCESS;
}
