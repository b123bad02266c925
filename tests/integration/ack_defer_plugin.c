// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/*
 * A test plugin for broker-patches/0004 (deferred acknowledgements), loaded by
 * tests/integration/test_ack_defer.py into the patched broker. Not the chat
 * plugin: it does what the publish's topic says, to drive the broker.
 *
 *   defer/<ms>/...     MOSQ_ERR_ACK_DEFERRED; a worker thread makes the
 *                      completion (reason 0) ready after <ms> and calls
 *                      mosquitto_loop_wakeup(); the LOOP_WAKEUP callback, on
 *                      the broker thread, calls mosquitto_ack_complete()
 *   deny/<ms>/...      the same, completed with 0x87 (not authorized)
 *   anything else      MOSQ_ERR_SUCCESS (acknowledged at once, by the broker)
 *
 * It is built against Debian's stock headers, as the chat plugin is, so it
 * declares the patch's API itself: weak symbols (NULL on a stock broker) and
 * the event/return numbers. It finds the patch as the chat plugin would: by
 * registering MOSQ_EVT_LOOP_WAKEUP (a stock broker answers NOT_SUPPORTED, and
 * the plugin then defers nothing). Every completion's answer is logged
 * ("ack-defer: complete c<conn> m<mid> -> <rc>") for the test to read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "mosquitto_patched.h" /* broker-patches/0004, declared for stock headers */

struct pending {
	struct pending *next;
	uint64_t conn;
	uint16_t mid;
	uint8_t reason;
	int64_t due_ms;
};

static mosquitto_plugin_id_t *plugin_id;
static bool have_defer;
static pthread_t worker;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct pending *waiting; /* the worker's: not yet due */
static struct pending *ready, *ready_last; /* due, for the broker thread */
static bool stopping;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The "writer thread": sleeps until the earliest completion is due, moves
 * the due ones to `ready` in due order, wakes the broker. */
static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	while (!stopping) {
		int64_t t = now_ms(), next = -1;
		bool moved = false;
		for (struct pending **pp = &waiting; *pp;) {
			struct pending *p = *pp;
			if (p->due_ms <= t) {
				*pp = p->next;
				p->next = NULL;
				if (ready_last) ready_last->next = p; else ready = p;
				ready_last = p;
				moved = true;
			} else {
				if (next < 0 || p->due_ms < next) next = p->due_ms;
				pp = &p->next;
			}
		}
		if (moved) mosquitto_loop_wakeup(); /* from this thread, not the broker's */
		if (next < 0) {
			pthread_cond_wait(&cv, &mu);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t wait = next - now_ms();
			if (wait < 0) wait = 0;
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
			pthread_cond_timedwait(&cv, &mu, &ts);
		}
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	(void)event;
	(void)userdata;
	if (!have_defer || ed->qos == 0) return MOSQ_ERR_SUCCESS;
	uint8_t reason;
	const char *rest;
	if (!strncmp(ed->topic, "defer/", 6)) {
		reason = 0;
		rest = ed->topic + 6;
	} else if (!strncmp(ed->topic, "deny/", 5)) {
		reason = 0x87;
		rest = ed->topic + 5;
	} else {
		return MOSQ_ERR_SUCCESS;
	}
	struct pending *p = calloc(1, sizeof(*p));
	if (!p) return MOSQ_ERR_NOMEM;
	p->conn = mosquitto_client_connection_id(ed->client);
	p->mid = mosquitto_client_publish_mid(ed->client);
	p->reason = reason;
	p->due_ms = now_ms() + atoi(rest);
	pthread_mutex_lock(&mu);
	p->next = waiting;
	waiting = p;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	mosquitto_log_printf(MOSQ_LOG_INFO, "ack-defer: deferred c%llu m%u",
	                     (unsigned long long)p->conn, p->mid);
	return PATCHED_ERR_ACK_DEFERRED;
}

/* On the broker thread, after mosquitto_loop_wakeup(): the completions. */
static int on_wakeup(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	pthread_mutex_lock(&mu);
	struct pending *list = ready;
	ready = ready_last = NULL;
	pthread_mutex_unlock(&mu);
	while (list) {
		struct pending *p = list;
		list = p->next;
		int rc = mosquitto_ack_complete(p->conn, p->mid, p->reason);
		mosquitto_log_printf(MOSQ_LOG_INFO, "ack-defer: complete c%llu m%u -> %d",
		                     (unsigned long long)p->conn, p->mid, rc);
		free(p);
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5) return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	plugin_id = identifier;
	int rc = mosquitto_callback_register(plugin_id, PATCHED_EVT_LOOP_WAKEUP, on_wakeup, NULL, NULL);
	have_defer = rc == MOSQ_ERR_SUCCESS && mosquitto_ack_complete && mosquitto_loop_wakeup &&
	             mosquitto_client_connection_id && mosquitto_client_publish_mid;
	mosquitto_log_printf(MOSQ_LOG_INFO, "ack-defer: deferred acks %s",
	                     have_defer ? "available" : "not available (stock broker)");
	if (have_defer && pthread_create(&worker, NULL, worker_main, NULL) != 0) return MOSQ_ERR_UNKNOWN;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
	if (have_defer) {
		mosquitto_callback_unregister(plugin_id, PATCHED_EVT_LOOP_WAKEUP, on_wakeup, NULL);
		pthread_mutex_lock(&mu);
		stopping = true;
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
		pthread_join(worker, NULL);
	}
	for (struct pending *lists[2] = { waiting, ready }, **l = lists; l < lists + 2; l++)
		while (*l) {
			struct pending *p = *l;
			*l = p->next;
			free(p);
		}
	waiting = ready = ready_last = NULL;
	return MOSQ_ERR_SUCCESS;
}
