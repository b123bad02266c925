// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* mqtt_service.c — a sidecar's MQTT client life (see mqtt_service.h). */
#include "mqtt_service.h"

#include "daemon.h"
#include "mqtt_tls.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define KEEPALIVE_S 30

struct mosquitto *mqtt_service_client_new(const char *prog, const char *user, char *token,
                                          size_t cap, const mqtt_tls *tls, void *obj)
{
	char client_id[64];
	snprintf(client_id, sizeof(client_id), "%s-%ld-%08x", prog, (long)getpid(),
	         randombytes_random());
	struct mosquitto *mosq = mosquitto_new(client_id, true, obj);
	if (!mosq) {
		daemon_log(LOG_ERR, "cannot create the MQTT client");
		sodium_memzero(token, cap);
		return NULL;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	/* Responses are small packets: without this, Nagle holds each one back
	 * for the broker's delayed ACK (measured on the key server: 3x fewer
	 * bundles per second). */
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	int rc = mosquitto_username_pw_set(mosq, user, token);
	sodium_memzero(token, cap);
	if (rc != MOSQ_ERR_SUCCESS) {
		daemon_log(LOG_ERR, "cannot set credentials");
		mosquitto_destroy(mosq);
		return NULL;
	}
	char err[512];
	if (!mqtt_tls_apply(tls, mosq, err, sizeof(err))) {
		daemon_log(LOG_ERR, "%s", err);
		mosquitto_destroy(mosq);
		return NULL;
	}
	return mosq;
}

/* A TLS failure that is ours to mend (libmosquitto's words for a client
 * certificate or key it cannot use), not the network's or the broker's. */
static bool own_tls_files_bad(const char *why)
{
	return strstr(why, "Unable to load client") || strstr(why, "are inconsistent");
}

bool mqtt_service_serve(const mqtt_service *m)
{
	unsigned delay = BACKOFF_MIN_MS;
	bool first = true;
	char why[512];
	while (!daemon_stopping()) {
		int rc = first ? mosquitto_connect(m->mosq, m->host, m->port, KEEPALIVE_S)
		               : mosquitto_reconnect(m->mosq);
		if (rc == MOSQ_ERR_SUCCESS) {
			first = false;
			while (!daemon_stopping() && rc == MOSQ_ERR_SUCCESS) {
				rc = mosquitto_loop(m->mosq, m->loop_ms, 1);
				if (m->tick)
					m->tick(m->obj);
				if (*m->connected)
					delay = BACKOFF_MIN_MS;
			}
			*m->connected = false;
			if (daemon_stopping())
				break;
		}
		mqtt_tls_why(rc, why, sizeof(why));
		if (first && rc == MOSQ_ERR_TLS && own_tls_files_bad(why)) {
			daemon_log(LOG_ERR, "cannot connect to %s:%d: %s", m->host, m->port, why);
			return false;
		}
		if (rc == MOSQ_ERR_TLS)
			daemon_log(LOG_ERR, "connection to %s:%d failed: %s", m->host, m->port, why);
		else if (rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST)
			daemon_log(LOG_WARN, "connection to %s:%d lost or failed: %s", m->host, m->port, why);
		else
			daemon_log(LOG_WARN, "connection to %s:%d ended: %s", m->host, m->port, why);
		unsigned wait = daemon_backoff_next(&delay, BACKOFF_MAX_MS);
		daemon_log(LOG_INFO, "reconnecting in %u ms", wait);
		daemon_nap(wait);
		if (m->idle)
			m->idle(m->obj);
	}
	return true;
}

void mqtt_service_close(struct mosquitto *mosq)
{
	for (int i = 0; i < 10 && mosquitto_want_write(mosq); i++)
		mosquitto_loop(mosq, 50, 1);
	mosquitto_disconnect(mosq);
	mosquitto_loop(mosq, 50, 1);
}

void mqtt_service_subscribe(struct mosquitto *mosq, const char *host, int port, int rc,
                            char *const *filters, int n, int qos)
{
	if (rc != 0) {
		daemon_log(LOG_ERR, "broker refused the connection: %s", mosquitto_reason_string(rc));
		return;
	}
	rc = mosquitto_subscribe_multiple(mosq, NULL, n, filters, qos, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		daemon_log(LOG_ERR, "subscribe failed: %s", mosquitto_strerror(rc));
	else if (n > 1)
		daemon_log(LOG_INFO, "connected to %s:%d, subscribing to %s and %s", host, port,
		           filters[0], filters[1]);
	else
		daemon_log(LOG_INFO, "connected to %s:%d, subscribing to %s", host, port, filters[0]);
}

bool mqtt_service_granted(struct mosquitto *mosq, const char *user, int want, int n,
                          const int *granted, const char *serving)
{
	bool all = n >= want;
	for (int i = 0; all && i < want; i++)
		all = granted[i] < 0x80;
	if (!all) {
		daemon_log(LOG_ERR, "the broker refused the subscription (is '%s' a service account?)",
		           user);
		mosquitto_disconnect(mosq);
		return false;
	}
	daemon_log(LOG_INFO, "%s", serving);
	return true;
}

void mqtt_service_lost(int rc)
{
	if (!daemon_stopping())
		daemon_log(LOG_WARN, "disconnected from the broker: %s", mosquitto_reason_string(rc));
}
