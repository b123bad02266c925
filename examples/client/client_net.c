// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_net.c — chat-client's MQTT side (libmosquitto, MQTT 3.1.1).
 *
 * The client is single-threaded: mosquitto_loop() runs only inside
 * net_pump(), and the message callback just queues a copy of each payload.
 * Callers take from the queue what they are waiting for (a ctl reply by
 * rid, a key-server response, the `sent` of a cid) and leave everything
 * else for chat_process(), so an inbox event that arrives during a request
 * is handled in order, never from inside a callback. Every wait is bounded.
 */
#include "client.h"
#include "err.h"
#include "mqtt_tls.h"

#include <mosquitto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
	net *n = obj;
	if (rc != 0) {
		fprintf(stderr, "chat-client: the broker refused the connection: %s\n",
		        mosquitto_connack_string(rc));
		n->failed = true;
		return;
	}
	n->connected = true;
	/* the inbox last, and only here for a v1 client (a v2 client declares
	 * its capabilities first, then subscribes: chat_caps) */
	const char *topics[] = { n->t_resp, n->t_status, n->t_inbox };
	for (int i = 0; i < n->nsubs; i++)
		if (mosquitto_subscribe(m, NULL, topics[i], 1) != MOSQ_ERR_SUCCESS)
			n->failed = true;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted)
{
	(void)m;
	net *n = obj;
	if (n->sub_mid && mid == n->sub_mid) {   /* a later subscription (net_subscribe) */
		n->sub_state = count >= 1 && granted[0] < 0x80 ? 1 : -1;
		return;
	}
	if (count < 1 || granted[0] >= 0x80) {
		fprintf(stderr, "chat-client: a subscription was refused\n");
		n->failed = true;
		return;
	}
	n->subacks++;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
	(void)m, (void)mid;
	net *n = obj;
	if (n->inflight > 0)
		n->inflight--;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
	(void)m;
	net *n = obj;
	n->connected = false;
	if (rc != 0) {
		char why[512];
		fprintf(stderr, "chat-client: connection lost: %s\n", mqtt_tls_why(rc, why, sizeof why));
		n->failed = true;
	}
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
	(void)m;
	net *n = obj;
	if (n->nq == n->capq) {
		size_t cap = n->capq ? 2 * n->capq : 64;
		qmsg *q = realloc(n->q, cap * sizeof *q);
		if (!q)
			return;
		n->q = q;
		n->capq = cap;
	}
	qmsg *e = &n->q[n->nq];
	e->topic = strdup(msg->topic);
	e->len = (size_t)msg->payloadlen;
	e->payload = malloc(e->len ? e->len : 1);
	if (!e->topic || !e->payload) {
		free(e->topic);
		free(e->payload);
		return;
	}
	memcpy(e->payload, msg->payload, e->len);
	n->nq++;
}

int net_connect(net *n, const char *host, int port, const mqtt_tls *tls, const char *addr,
                const char *token, bool inbox_later)
{
	memset(n, 0, sizeof *n);
	n->nsubs = inbox_later ? 2 : 3;
	cbw_init(&n->w);
	snprintf(n->addr, sizeof n->addr, "%s", addr);
	const char *slash = strchr(addr, '/');
	snprintf(n->user, sizeof n->user, "%.*s", (int)(slash - addr), addr);
	snprintf(n->dev, sizeof n->dev, "%s", slash + 1);
	snprintf(n->t_inbox, sizeof n->t_inbox, "chat/inbox/%s", addr);
	snprintf(n->t_resp, sizeof n->t_resp, "chat/keys/resp/%s", addr);
	snprintf(n->t_status, sizeof n->t_status, "chat/keys/status/%s", addr);
	snprintf(n->t_media_resp, sizeof n->t_media_resp, "chat/media/resp/%s", addr);
	n->next_rid = randombytes_uniform(1u << 30) + 1;

	mosquitto_lib_init();
	n->mosq = mosquitto_new(addr, true, n);
	if (!n->mosq)
		return CHAT_ENOMEM;
	char will[160];
	snprintf(will, sizeof will, "chat/presence/%s", addr);
	mosquitto_will_set(n->mosq, will, 0, NULL, 1, false);
	mosquitto_username_pw_set(n->mosq, addr, token);
	mosquitto_connect_callback_set(n->mosq, on_connect);
	mosquitto_subscribe_callback_set(n->mosq, on_subscribe);
	mosquitto_publish_callback_set(n->mosq, on_publish);
	mosquitto_disconnect_callback_set(n->mosq, on_disconnect);
	mosquitto_message_callback_set(n->mosq, on_message);
	char why[512];
	if (!mqtt_tls_apply(tls, n->mosq, why, sizeof why)) {
		fprintf(stderr, "chat-client: %s\n", why);
		return CHAT_EINVAL;
	}
	int rc = mosquitto_connect(n->mosq, host, port, 30);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "chat-client: cannot connect to %s:%d: %s\n", host, port,
		        mqtt_tls_why(rc, why, sizeof why));
		return CHAT_EIO;
	}
	uint64_t deadline = now_ms() + 10000;
	while (n->subacks < n->nsubs && !n->failed && now_ms() < deadline)
		net_pump(n, 50);
	if (n->subacks < n->nsubs) {
		if (!n->failed)
			fprintf(stderr, "chat-client: no answer from the broker\n");
		return CHAT_EIO;
	}
	return CHAT_OK;
}

void qmsg_free(qmsg *m)
{
	if (!m)
		return;
	free(m->topic);
	free(m->payload);
	free(m);
}

void net_close(net *n)
{
	if (n->mosq) {
		if (n->connected) {
			mosquitto_disconnect(n->mosq);
			mosquitto_loop(n->mosq, 100, 1);
		}
		mosquitto_destroy(n->mosq);
	}
	mosquitto_lib_cleanup();
	for (size_t i = 0; i < n->nq; i++) {
		free(n->q[i].topic);
		free(n->q[i].payload);
	}
	free(n->q);
	cbw_free(&n->w);
}

bool net_pump(net *n, int ms)
{
	if (n->failed)
		return false;
	int rc = mosquitto_loop(n->mosq, ms, 1);
	if (rc != MOSQ_ERR_SUCCESS && !n->failed) {
		char why[512];
		fprintf(stderr, "chat-client: network: %s\n", mqtt_tls_why(rc, why, sizeof why));
		n->failed = true;
	}
	return !n->failed;
}

int net_publish(net *n, const char *topic, const void *p, size_t len)
{
	int rc = mosquitto_publish(n->mosq, NULL, topic, (int)len, p, 1, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "chat-client: publish to %s: %s\n", topic, mosquitto_strerror(rc));
		return CHAT_EIO;
	}
	n->inflight++;
	return CHAT_OK;
}

bool net_flush(net *n, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	while (n->inflight > 0 && now_ms() < deadline && net_pump(n, 20))
		;
	return n->inflight == 0;
}

static qmsg *take_at(net *n, size_t i)
{
	qmsg *m = malloc(sizeof *m);
	if (!m)
		return NULL;
	*m = n->q[i];
	memmove(n->q + i, n->q + i + 1, (n->nq - i - 1) * sizeof *n->q);
	n->nq--;
	return m;
}

qmsg *net_take(net *n, qmatch match, void *ctx, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	size_t checked = 0;
	for (;;) {
		for (; checked < n->nq; checked++)
			if (match(&n->q[checked], ctx))
				return take_at(n, checked);
		if (now_ms() >= deadline || !net_pump(n, 20))
			return NULL;
	}
}

qmsg *net_pop(net *n)
{
	return n->nq ? take_at(n, 0) : NULL;
}

uint64_t net_req_begin(net *n, size_t extra_pairs, const char *op)
{
	uint64_t rid = n->next_rid++;
	cbw_reset(&n->w);
	cbw_map(&n->w, 2 + extra_pairs);
	cbw_text(&n->w, "op");
	cbw_text(&n->w, op);
	cbw_text(&n->w, "rid");
	cbw_uint(&n->w, rid);
	return rid;
}

/* Finds a uint under key `name` at the top level of a CBOR map. */
static bool top_uint(const uint8_t *p, size_t len, const char *name, uint64_t *v)
{
	cbr r;
	cbr_item map, key, val;
	uint64_t i = 0;
	cbr_init(&r, p, len);
	if (cbr_next(&r, &map) != CHAT_OK || map.type != CBR_MAP)
		return false;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val) != CHAT_OK)
			return false;
		if (cbr_eq(&key, name) && val.type == CBR_UINT) {
			*v = val.u;
			return true;
		}
		if (cbr_skip(&r, &val) != CHAT_OK)
			return false;
	}
	return false;
}

typedef struct rid_match { const char *topic; uint64_t rid; } rid_match;

static bool match_rid(const qmsg *m, void *ctx)
{
	rid_match *w = ctx;
	uint64_t rid;
	return strcmp(m->topic, w->topic) == 0 && top_uint(m->payload, m->len, "rid", &rid) &&
	       rid == w->rid;
}

static qmsg *request(net *n, const char *topic, const char *reply_topic, uint64_t rid, int ms)
{
	if (cbw_status(&n->w) != CHAT_OK || net_publish(n, topic, n->w.buf, n->w.len) != CHAT_OK)
		return NULL;
	rid_match w = { reply_topic, rid };
	qmsg *m = net_take(n, match_rid, &w, ms);
	if (!m)
		fprintf(stderr, "chat-client: no reply on %s within %d ms\n", reply_topic, ms);
	return m;
}

qmsg *net_ctl(net *n, uint64_t rid, int ms)
{
	return request(n, "chat/ctl", n->t_inbox, rid, ms);
}

int net_subscribe(net *n, const char *topic, int ms)
{
	int mid = 0;
	if (mosquitto_subscribe(n->mosq, &mid, topic, 1) != MOSQ_ERR_SUCCESS)
		return CHAT_EIO;
	n->sub_mid = mid;
	n->sub_state = 0;
	uint64_t deadline = now_ms() + (uint64_t)ms;
	while (n->sub_state == 0 && now_ms() < deadline && net_pump(n, 20))
		;
	int st = n->sub_state;
	n->sub_mid = 0;
	if (st != 1)
		fprintf(stderr, "chat-client: the broker %s the subscription to %s\n",
		        st < 0 ? "refused" : "did not answer", topic);
	return st == 1 ? CHAT_OK : CHAT_EDENIED;
}

qmsg *net_media(net *n, uint64_t rid, int ms)
{
	if (!n->media_sub) {   /* subscribed on first use: most runs never need it */
		if (net_subscribe(n, n->t_media_resp, ms) != CHAT_OK)
			return NULL;
		n->media_sub = true;
	}
	char topic[160];
	snprintf(topic, sizeof topic, "chat/media/req/%s", n->addr);
	return request(n, topic, n->t_media_resp, rid, ms);
}

qmsg *net_keys(net *n, uint64_t rid, int ms)
{
	char topic[160];
	snprintf(topic, sizeof topic, "chat/keys/req/%s", n->addr);
	return request(n, topic, n->t_resp, rid, ms);
}

/* ---- inbox events ---- */

void item_str(char *dst, size_t cap, const cbr_item *it)
{
	size_t n = (it->type == CBR_TEXT || it->type == CBR_BYTES) ? it->len : 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, it->ptr, n);
	dst[n] = 0;
}

/* Reads an array of uints (seqs) or of text items (lists) into e. */
static int read_list(cbr *r, const cbr_item *arr, ev *e, bool uints)
{
	uint64_t i = 0;
	cbr_item it;
	while (cbr_array_next(r, arr, &i)) {
		if (cbr_next(r, &it) != CHAT_OK)
			return CHAT_EINVAL;
		if (uints && it.type == CBR_UINT && e->nseqs < EV_LIST_MAX)
			e->seqs[e->nseqs++] = it.u;
		else if (!uints && it.type == CBR_TEXT && e->nlist < EV_LIST_MAX)
			e->list[e->nlist++] = it;
		else if (cbr_skip(r, &it) != CHAT_OK)
			return CHAT_EINVAL;
	}
	return r->err_msg ? CHAT_EINVAL : CHAT_OK;
}

int ev_decode(ev *e, const uint8_t *p, size_t len)
{
	cbr r;
	cbr_item map, key, v;
	uint64_t i = 0;

	memset(e, 0, offsetof(ev, seqs));
	e->nseqs = e->nlist = 0;
	cbr_init(&r, p, len);
	if (cbr_next(&r, &map) != CHAT_OK || map.type != CBR_MAP)
		return CHAT_EINVAL;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &v) != CHAT_OK)
			return CHAT_EINVAL;
		struct { const char *name; cbr_item *dst; } items[] = {
			{ "k", &e->k }, { "conv", &e->conv }, { "from", &e->from }, { "body", &e->body },
			{ "cid", &e->cid }, { "s", &e->s }, { "code", &e->code }, { "msg", &e->msg },
			{ "gid", &e->gid }, { "op", &e->op }, { "by", &e->by },
			{ "user", &e->user }, { "removed", &e->removed },
		};
		bool done = false;
		for (size_t j = 0; j < sizeof items / sizeof items[0] && !done; j++)
			if (cbr_eq(&key, items[j].name) && v.type != CBR_ARRAY && v.type != CBR_MAP) {
				*items[j].dst = v;
				done = true;
			}
		if (done)
			continue;
		if (cbr_eq(&key, "seq") && v.type == CBR_UINT) {
			e->seq = v.u;
			e->has_seq = true;
		} else if (cbr_eq(&key, "rid") && v.type == CBR_UINT) {
			e->rid = v.u;
			e->has_rid = true;
		} else if (cbr_eq(&key, "ok") && v.type == CBR_BOOL) {
			e->ok = v.b;
		} else if (cbr_eq(&key, "done") && v.type == CBR_BOOL) {
			e->done = v.b;
		} else if (v.type == CBR_ARRAY && cbr_eq(&key, "seqs")) {
			if (read_list(&r, &v, e, true) != CHAT_OK)
				return CHAT_EINVAL;
		} else if (v.type == CBR_ARRAY && (cbr_eq(&key, "members") || cbr_eq(&key, "devices") ||
		                                   cbr_eq(&key, "missing") || cbr_eq(&key, "extra"))) {
			if (read_list(&r, &v, e, false) != CHAT_OK)
				return CHAT_EINVAL;
		} else if (cbr_skip(&r, &v) != CHAT_OK) {
			return CHAT_EINVAL;
		}
	}
	return r.err_msg ? CHAT_EINVAL : CHAT_OK;
}
