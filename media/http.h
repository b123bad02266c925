// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* http.h — chat-media's HTTP(S) listener: PUT and GET of /v1/blob/{id}
 * on libmicrohttpd's own thread pool (it is not the broker: threads are
 * fine here; the store's mutex keeps the metadata consistent).
 */
#ifndef CHAT_MEDIA_HTTP_H
#define CHAT_MEDIA_HTTP_H

#include "media.h"

typedef struct media_http_opts {
	const char *addr;      /* IPv4 or IPv6 address to listen on */
	unsigned port;         /* 0: any free port (media_http_port tells) */
	unsigned threads;      /* libmicrohttpd's thread pool */
	unsigned timeout_s;    /* an idle connection is closed after this */
	const char *cert, *key; /* PEM files: HTTPS when set */
	const char *cors_origin; /* Access-Control-Allow-Origin for web pages, or NULL */
} media_http_opts;

typedef struct media_http media_http;

/* Listens and serves on background threads; NULL with a sentence in err. */
media_http *media_http_start(media *m, const media_http_opts *o, char *err, size_t cap);
unsigned media_http_port(media_http *h);
/* Stops listening, waits for the threads. */
void media_http_stop(media_http *h);

#endif
