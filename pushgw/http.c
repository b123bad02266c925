// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* http.c — POSTs on a curl multi handle, HTTP/2-multiplexed (see http.h). */
#include "http.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_client {
	CURLM *multi;
	http_opts o;
	size_t inflight;
	uint64_t connections;
	struct req *head;          /* in flight */
};

typedef struct req {
	struct req *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	http_done_fn done;
	void *arg;
	size_t len;
	char errbuf[CURL_ERROR_SIZE];
	char body[HTTP_BODY_MAX + 1];
} req;

http_client *http_client_new(const http_opts *o, char *err, size_t errlen)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl failed to initialise");
		return NULL;
	}
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	if (!(v->features & CURL_VERSION_HTTP2) || !(v->features & CURL_VERSION_SSL)) {
		snprintf(err, errlen, "libcurl %s lacks HTTP/2 or TLS support", v->version);
		curl_global_cleanup();
		return NULL;
	}
	http_client *h = calloc(1, sizeof(*h));
	if (!h || !(h->multi = curl_multi_init())) {
		free(h);
		curl_global_cleanup();
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->o = *o;
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)(o->max_streams ? o->max_streams : 100));
	/* One connection per provider: when the server's stream limit
	 * (SETTINGS_MAX_CONCURRENT_STREAMS, e.g. 100) is reached, further
	 * requests wait for a free stream instead of opening more connections. */
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	return h;
}

static void req_free(req *r)
{
	curl_slist_free_all(r->headers);
	curl_easy_cleanup(r->easy);
	free(r);
}

void http_client_free(http_client *h)
{
	if (!h)
		return;
	while (h->head) {
		req *r = h->head;
		h->head = r->next;
		curl_multi_remove_handle(h->multi, r->easy);
		http_result res = { .err = "aborted", .body = "" };
		r->done(r->arg, &res); /* so the caller can free what arg holds */
		req_free(r);
	}
	curl_multi_cleanup(h->multi);
	curl_global_cleanup();
	free(h);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	req *r = arg;
	size_t n = size * nmemb, room = HTTP_BODY_MAX - r->len;
	size_t take = n < room ? n : room;
	memcpy(r->body + r->len, p, take);
	r->len += take;
	r->body[r->len] = 0;
	return n; /* the rest is dropped, not an error */
}

bool http_post(http_client *h, const char *url, const char *const *headers, const char *body,
               size_t len, http_done_fn done, void *arg)
{
	req *r = calloc(1, sizeof(*r));
	if (!r || !(r->easy = curl_easy_init())) {
		free(r);
		return false;
	}
	bool ok = true;
	for (size_t i = 0; headers && headers[i] && ok; i++) {
		struct curl_slist *l = curl_slist_append(r->headers, headers[i]);
		ok = l != NULL;
		if (l)
			r->headers = l;
	}
	/* curl adds "Expect: 100-continue" to large HTTP/1.1 POSTs: no. */
	struct curl_slist *l = ok ? curl_slist_append(r->headers, "Expect:") : NULL;
	if (!l) {
		req_free(r);
		return false;
	}
	r->headers = l;
	r->done = done;
	r->arg = arg;
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "chat-pushgw");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(h->o.connect_timeout_ms ? h->o.connect_timeout_ms : h->o.timeout_ms));
	if (h->o.cafile)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->o.cafile);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		req_free(r);
		return false;
	}
	h->inflight++;
	r->next = h->head;
	if (h->head)
		h->head->prev = r;
	h->head = r;
	return true;
}

static void finish(http_client *h, CURL *e, CURLcode rc)
{
	req *r = NULL;
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
	curl_multi_remove_handle(h->multi, e);
	h->inflight--;
	if (r->prev)
		r->prev->next = r->next;
	else
		h->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	http_result res = { .body = r->body, .body_len = r->len };
	long conns = 0, ver = 0;
	curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
	res.new_connection = conns > 0;
	h->connections += (uint64_t)(conns > 0 ? conns : 0);
	res.http2 = ver == CURL_HTTP_VERSION_2_0;
	char err[CURL_ERROR_SIZE + 128];
	if (rc == CURLE_OK) {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res.status);
	} else {
		char *u = NULL;
		curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &u);
		const char *host = u ? strstr(u, "://") : NULL;
		host = host ? host + 3 : "?";
		size_t hl = strcspn(host, "/");
		if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(err, sizeof(err), "no answer from %.*s within %u ms", (int)hl, host,
			         h->o.timeout_ms);
		else
			snprintf(err, sizeof(err), "%.*s: %s", (int)hl, host,
			         r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
		res.err = err;
	}
	r->done(r->arg, &res);
	req_free(r);
}

void http_poll(http_client *h, int extra_fd, short extra_events, int timeout_ms)
{
	struct curl_waitfd extra = { .fd = extra_fd, .events = (short)extra_events };
	int still, numfds = 0;
	curl_multi_poll(h->multi, extra_fd >= 0 ? &extra : NULL, extra_fd >= 0 ? 1 : 0, timeout_ms,
	                &numfds);
	curl_multi_perform(h->multi, &still);
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left)))
		if (m->msg == CURLMSG_DONE)
			finish(h, m->easy_handle, m->data.result);
}

size_t http_inflight(const http_client *h)
{
	return h->inflight;
}

uint64_t http_connections(const http_client *h)
{
	return h->connections;
}
