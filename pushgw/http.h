// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* http.h — the push gateway's HTTP client: libcurl's multi interface on
 * the gateway's one thread. HTTPS (OpenSSL), HTTP/2 where the server offers
 * it (ALPN), and then one long-lived connection per provider that carries
 * every request as a stream of its own (CURLPIPE_MULTIPLEX, PIPEWAIT: a
 * request waits for the connection being set up rather than opening a
 * second one), and at most one connection per host: past the server's
 * stream limit requests queue for a free stream. APNs requires HTTP/2 and treats connection churn as abuse;
 * FCM answers faster over it too. Plain http:// URLs (a local relay) work
 * as well, over HTTP/1.1 with keep-alive.
 *
 * Nothing here blocks except http_poll, which waits (at most the time it is
 * given) for any of the transfers' sockets or the caller's one extra socket
 * — the MQTT connection — and then moves every transfer on; finished
 * requests call their callback from inside http_poll.
 */
#ifndef CHAT_PUSHGW_HTTP_H
#define CHAT_PUSHGW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_BODY_MAX 8192 /* bytes of a response body kept */

typedef struct http_client http_client;

typedef struct http_opts {
	const char *cafile;       /* CA bundle for the providers' certificates; NULL: the system's */
	unsigned timeout_ms;      /* a whole request, from queueing to the last byte */
	unsigned connect_timeout_ms;
	unsigned max_streams;     /* concurrent streams per HTTP/2 connection */
} http_opts;

typedef struct http_result {
	long status;              /* 0 if no answer came (err says why) */
	const char *err;          /* NULL when the server answered */
	const char *body;         /* NUL-terminated, at most HTTP_BODY_MAX bytes */
	size_t body_len;
	bool new_connection;      /* this request opened a connection */
	bool http2;
} http_result;

typedef void (*http_done_fn)(void *arg, const http_result *r);

/* NULL with a reason in err if libcurl cannot be set up (or lacks HTTP/2). */
http_client *http_client_new(const http_opts *o, char *err, size_t errlen);
/* Aborts what is in flight (each callback is called once more, with err
 * "aborted") and closes the connections. */
void http_client_free(http_client *h);

/* Starts a POST of body (copied) to url with the header lines in headers
 * ("Name: value", NULL-terminated array). done(arg, result) is called from
 * a later http_poll exactly once — also on failure. False (nothing started,
 * no callback) if the request cannot even be set up (out of memory). */
bool http_post(http_client *h, const char *url, const char *const *headers, const char *body,
               size_t len, http_done_fn done, void *arg);

/* Waits up to timeout_ms for the transfers or for extra_fd (if >= 0) to be
 * ready for extra_events (POLLIN/POLLOUT), then moves the transfers on and
 * calls the callbacks of those that finished. */
void http_poll(http_client *h, int extra_fd, short extra_events, int timeout_ms);

/* Requests in flight. */
size_t http_inflight(const http_client *h);
/* Connections opened so far (every one counted once). */
uint64_t http_connections(const http_client *h);

#endif
