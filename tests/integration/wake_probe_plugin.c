// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/*
 * A test plugin for the stock broker's wake-up (store/js_wake.c, the
 * fallback of docs/CLUSTER.md "Threads"), loaded into Debian's mosquitto
 * by test_js_wake.py. Not the chat plugin: it does what the JetStream
 * backend will do, with a worker thread in place of libnats.
 *
 * A publish on probe/go makes the worker thread (after 2 ms, so that the
 * broker is back in epoll_wait) append a completion to a js_fifo; with
 * plugin_opt_wake loopback the FIFO's notify writes a PINGREQ on the
 * plugin's connection to its own listener (plugin_opt_port). TICK, on the
 * broker thread, drains the FIFO and publishes on probe/done the time from
 * the append to the drain, in microseconds. With plugin_opt_wake none
 * nothing wakes the loop: the completion waits for the next pass.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "js_fifo.h"
#include "js_wake.h"

static mosquitto_plugin_id_t *pid;
static js_fifo fifo;
static js_batch batch;
static js_wake *waker;
static pthread_t worker;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int requests;
static bool stopping;

static uint64_t now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void *work(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!requests && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (stopping)
			break;
		requests--;
		pthread_mutex_unlock(&mu);
		struct timespec d = { 0, 2000000 };
		nanosleep(&d, NULL);
		js_fifo_push(&fifo, now_us(), 0, NULL);
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

static int on_message(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_message *ed = event_data;
	if (!strcmp(ed->topic, "probe/go")) {
		pthread_mutex_lock(&mu);
		requests++;
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
	}
	return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	if (waker)
		js_wake_drained(waker);
	size_t n = js_fifo_take(&fifo, &batch);
	for (size_t i = 0; i < n; i++) {
		char v[32];
		int len = snprintf(v, sizeof(v), "%llu", (unsigned long long)(now_us() - batch.v[i].op));
		mosquitto_broker_publish_copy(NULL, "probe/done", len, v, 0, false, NULL);
	}
	batch.n = 0;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts,
                          int opt_count)
{
	const char *mode = "none";
	int port = 0;
	(void)userdata;
	pid = identifier;
	for (int i = 0; i < opt_count; i++) {
		if (!strcmp(opts[i].key, "wake"))
			mode = opts[i].value;
		else if (!strcmp(opts[i].key, "port"))
			port = atoi(opts[i].value);
	}
	if (!strcmp(mode, "loopback")) {
		char err[256];
		if (js_wake_open(&waker, "127.0.0.1", port, "wake-probe", NULL, NULL, err, sizeof(err)) != 0) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "wake-probe: %s", err);
			return MOSQ_ERR_UNKNOWN;
		}
	}
	js_fifo_init(&fifo, waker ? js_wake_notify : NULL, waker);
	pthread_create(&worker, NULL, work, NULL);
	mosquitto_callback_register(pid, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
	mosquitto_callback_register(pid, MOSQ_EVT_TICK, on_tick, NULL, NULL);
	mosquitto_log_printf(MOSQ_LOG_INFO, "wake-probe: wake-up %s", waker ? "loopback" : "none");
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	mosquitto_callback_unregister(pid, MOSQ_EVT_MESSAGE, on_message, NULL);
	mosquitto_callback_unregister(pid, MOSQ_EVT_TICK, on_tick, NULL);
	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(worker, NULL);
	js_wake_close(waker);
	js_fifo_destroy(&fifo, NULL);
	js_batch_free(&batch);
	return MOSQ_ERR_SUCCESS;
}
