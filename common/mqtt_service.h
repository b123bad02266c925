// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* mqtt_service.h — the MQTT client life of a sidecar (chat-keyserver,
 * chat-pushgw): a service-account client (MQTT 5, TCP_NODELAY, a random
 * client id), the connect / serve / reconnect-with-backoff loop that runs
 * until a stop signal, and the goodbye that lets queued packets out.
 *
 * Why its own file: both sidecars ran the same loop in their own copy; it
 * includes libmosquitto (the plugin, which links common/ too, must not), so
 * it is a library of its own, as is mqtt_tls.h, the TLS options it applies.
 */
#ifndef CHAT_MQTT_SERVICE_H
#define CHAT_MQTT_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

struct mosquitto;
struct mqtt_tls;

/* A client named "<prog>-<pid>-<random>" with obj as its callbacks' obj,
 * speaking MQTT 5 without Nagle, over TLS as tls says (mqtt_tls.h), logged
 * in as user with token; the token is wiped (all cap bytes) whatever
 * happens. NULL (logged) on failure. */
struct mosquitto *mqtt_service_client_new(const char *prog, const char *user, char *token,
                                          size_t cap, const struct mqtt_tls *tls, void *obj);

typedef struct mqtt_service {
	struct mosquitto *mosq;
	const char *host;
	int port;
	int loop_ms;              /* each mosquitto_loop() waits at most this */
	bool *connected;          /* the caller's: true once its subscription is granted */
	void (*tick)(void *obj);  /* after each loop turn (may be NULL) */
	void (*idle)(void *obj);  /* after each wait before a reconnect (may be NULL) */
	void *obj;
} mqtt_service;

/* Connects, serves, and after a loss waits an exponential backoff with
 * jitter (daemon_backoff_next) before reconnecting; a granted subscription
 * (*connected) resets the delay; a loss clears it. Returns true on a stop
 * signal; false (logged) if the first connection fails because our own TLS
 * certificate or key cannot be loaded: no retry mends that. */
bool mqtt_service_serve(const mqtt_service *m);
/* Lets what is queued out (a few short loop turns), then disconnects. */
void mqtt_service_close(struct mosquitto *mosq);

/* The bodies of a sidecar's connect, subscribe and disconnect callbacks,
 * the same in every sidecar but for their filters and words. */

/* After a CONNACK: rc 0 subscribes to the n (1 or 2) filters at qos and logs
 * "connected to HOST:PORT, subscribing to A [and B]"; otherwise logs the
 * broker's refusal. */
void mqtt_service_subscribe(struct mosquitto *mosq, const char *host, int port, int rc,
                            char *const *filters, int n, int qos);
/* After the SUBACK of those n filters: true (and "<serving>" logged) when the
 * broker granted every one; false when it refused one — logged with the
 * likely cause (user is not a service account) and the client disconnects,
 * so the serve loop reconnects with its backoff. */
bool mqtt_service_granted(struct mosquitto *mosq, const char *user, int want, int n,
                          const int *granted, const char *serving);
/* After a loss: logged, unless a stop signal made it. */
void mqtt_service_lost(int rc);

#endif
