// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* http.c — chat-media's HTTP(S) side on libmicrohttpd (see http.h).
 *
 * Two routes, both under /v1/blob/{id}: PUT (an upload, streamed to a temp
 * file in 64 KiB writes as libmicrohttpd hands the body over, never held in
 * memory) and GET (a download from the file's fd, one byte range or all).
 * Everything else is 404, or 405 for another method on a blob path; there
 * is no listing. The checks themselves are store.c's (media_put_check,
 * media_get_open); here is only HTTP.
 *
 * A download counts as done when libmicrohttpd reports the response sent
 * completely (MHD_REQUEST_TERMINATED_COMPLETED_OK) and it ended with the
 * blob's last byte: a full GET, or the tail range of a resumed one.
 */
#include "http.h"

#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct media_http {
	struct MHD_Daemon *d;
	media *m;
	const char *cors;
	char *cert, *key;
};

typedef struct req_ctx {
	bool is_put, is_get;
	char id[MEDIA_ID_LEN + 1];
	/* PUT */
	int fd;
	char tmp[PATH_MAX];
	uint64_t size, written;
	bool failed, write_error;
	/* GET */
	char dev[CHAT_ADDR_MAX + 1];
	bool to_last_byte;
} req_ctx;

/* A web page on another origin (the web client, served by the broker's
 * WebSockets listener) may use the URLs it was handed: they are
 * capabilities, no cookie or credential is involved. */
static void cors(const media_http *h, struct MHD_Response *r)
{
	if (!h->cors)
		return;
	MHD_add_response_header(r, "Access-Control-Allow-Origin", h->cors);
	MHD_add_response_header(r, "Access-Control-Expose-Headers",
	                        "Content-Range, Content-Length, Accept-Ranges");
}

static enum MHD_Result reply(const media_http *h, struct MHD_Connection *c, unsigned status,
                             const char *why)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "%s\n", why);
	struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body,
	                                                         MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	cors(h, r);
	if (status == 405)
		MHD_add_response_header(r, "Allow", "GET, PUT");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* "bytes=a-b", "bytes=a-", "bytes=-n" against size: 1 with [*a, *b], 0 to
 * serve it all (no Range, or one we ignore as RFC 9110 §14.2 allows: another
 * unit, several ranges, bad syntax), -1 unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *a, uint64_t *b)
{
	if (!h || strncmp(h, "bytes=", 6) != 0)
		return 0;
	const char *p = h + 6;
	if (strchr(p, ','))
		return 0;
	char *end;
	errno = 0;
	if (*p == '-') {
		if (p[1] < '0' || p[1] > '9')
			return 0;
		unsigned long long n = strtoull(p + 1, &end, 10);
		if (errno || *end)
			return 0;
		if (n == 0)
			return -1;
		*a = n >= size ? 0 : size - n;
		*b = size - 1;
		return 1;
	}
	if (*p < '0' || *p > '9')
		return 0;
	unsigned long long x = strtoull(p, &end, 10);
	if (errno || *end != '-')
		return 0;
	p = end + 1;
	unsigned long long y = size - 1;
	if (*p) {
		if (*p < '0' || *p > '9')
			return 0;
		y = strtoull(p, &end, 10);
		if (errno || *end || y < x)
			return 0;
	}
	if (x >= size)
		return -1;
	*a = x;
	*b = y >= size ? size - 1 : y;
	return 1;
}

static enum MHD_Result do_get(media_http *h, struct MHD_Connection *c, req_ctx *x)
{
	const char *dev = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "dev");
	const char *exp = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "exp");
	const char *sig = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sig");
	int fd = -1;
	uint64_t size = 0;
	media_http_err e;
	if (!media_get_open(h->m, x->id, dev, exp, sig, &fd, &size, &e)) {
		daemon_log(LOG_DEBUG, "GET %s refused: %u %s", x->id, e.status, e.why);
		return reply(h, c, e.status, e.why);
	}
	snprintf(x->dev, sizeof(x->dev), "%s", dev);
	uint64_t a = 0, b = size - 1;
	int rg = parse_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range"), size, &a, &b);
	if (rg < 0) {
		close(fd);
		char cr[64];
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
		struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, "Content-Range", cr);
		cors(h, r);
		enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
		MHD_destroy_response(r);
		return ret;
	}
	struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(b - a + 1, fd, a);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/octet-stream");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "Accept-Ranges", "bytes");
	cors(h, r);
	unsigned status = MHD_HTTP_OK;
	if (rg > 0) {
		char cr[96];
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, b, size);
		MHD_add_response_header(r, "Content-Range", cr);
		status = MHD_HTTP_PARTIAL_CONTENT;
	}
	x->is_get = true;
	x->to_last_byte = b == size - 1;
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Content-Length as a decimal, or absent (chunked uploads are refused). */
static bool content_length(struct MHD_Connection *c, uint64_t *out)
{
	const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (te || !cl || !*cl || strlen(cl) > 19)
		return false;
	uint64_t v = 0;
	for (const char *p = cl; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return true;
}

static enum MHD_Result put_first(media_http *h, struct MHD_Connection *c, req_ctx *x)
{
	const char *exp = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "exp");
	const char *sig = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sig");
	uint64_t clen = 0;
	bool have = content_length(c, &clen);
	media_http_err e;
	if (!media_put_check(h->m, x->id, exp, sig, have, clen, &x->size, &e)) {
		daemon_log(LOG_DEBUG, "PUT %s refused: %u %s", x->id, e.status, e.why);
		x->failed = true;
		return reply(h, c, e.status, e.why);
	}
	x->fd = media_put_tmp(h->m, x->id, x->tmp);
	if (x->fd < 0) {
		x->failed = true;
		return reply(h, c, 500, "the upload cannot be stored");
	}
	x->is_put = true;
	return MHD_YES; /* libmicrohttpd now sends 100 Continue and the body */
}

static enum MHD_Result put_data(media_http *h, struct MHD_Connection *c, req_ctx *x,
                                const char *data, size_t *len)
{
	if (*len) {
		size_t n = *len;
		*len = 0;
		if (x->failed)
			return MHD_YES;
		if (x->written + n > x->size) {
			x->failed = true;
			return MHD_YES;
		}
		while (n) {
			ssize_t w = write(x->fd, data, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				daemon_log(LOG_ERR, "writing %s failed: %s", x->tmp, strerror(errno));
				x->failed = x->write_error = true;
				return MHD_YES;
			}
			data += w, n -= (size_t)w;
			x->written += (uint64_t)w;
		}
		return MHD_YES;
	}
	/* the body is complete */
	bool synced = !x->failed && fsync(x->fd) == 0;
	close(x->fd);
	x->fd = -1;
	x->is_put = false;
	if (!synced || x->written != x->size) {
		unlink(x->tmp);
		if (x->write_error || (!synced && !x->failed))
			return reply(h, c, 500, "the upload could not be written (is the disk full?)");
		return reply(h, c, 400, "the body's length differs from the size declared for the slot");
	}
	media_http_err e;
	if (!media_put_commit(h->m, x->id, x->tmp, &e))
		return reply(h, c, e.status, e.why);
	daemon_log(LOG_DEBUG, "PUT %s: %" PRIu64 " bytes stored", x->id, x->size);
	return reply(h, c, MHD_HTTP_CREATED, "stored");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	(void)version;
	media_http *h = cls;
	req_ctx *x = *con_cls;
	if (x) {
		if (x->is_put)
			return put_data(h, c, x, upload_data, upload_data_size);
		*upload_data_size = 0; /* a body we refused or do not want */
		return MHD_YES;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return MHD_NO;
	x->fd = -1;
	*con_cls = x;
	static const char base[] = "/v1/blob/";
	size_t bl = sizeof(base) - 1;
	if (strncmp(url, base, bl) != 0 || !media_id_valid(url + bl, strlen(url + bl)))
		return reply(h, c, MHD_HTTP_NOT_FOUND, "not found");
	memcpy(x->id, url + bl, MEDIA_ID_LEN);
	if (strcmp(method, "PUT") == 0)
		return put_first(h, c, x);
	if (strcmp(method, "GET") == 0)
		return do_get(h, c, x);
	if (h->cors && strcmp(method, "OPTIONS") == 0) {
		/* a CORS preflight (a PUT, or a GET with Range) */
		struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		cors(h, r);
		MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, PUT");
		MHD_add_response_header(r, "Access-Control-Allow-Headers", "Range, Content-Type");
		MHD_add_response_header(r, "Access-Control-Max-Age", "600");
		enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, r);
		MHD_destroy_response(r);
		return ret;
	}
	return reply(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)c;
	media_http *h = cls;
	req_ctx *x = *con_cls;
	if (!x)
		return;
	if (x->fd >= 0) { /* an upload cut short */
		close(x->fd);
		unlink(x->tmp);
		daemon_log(LOG_DEBUG, "PUT %s: interrupted after %" PRIu64 " bytes", x->id, x->written);
	}
	if (x->is_get && x->to_last_byte && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		media_get_done(h->m, x->id, x->dev);
	free(x);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	daemon_log(LOG_DEBUG, "http: %s", buf);
}

static char *slurp(const char *path, char *err, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, cap, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	size_t len = 0, sz = 4096;
	char *buf = malloc(sz);
	size_t n;
	while (buf && (n = fread(buf + len, 1, sz - len - 1, f)) > 0) {
		len += n;
		if (sz - len - 1 == 0) {
			char *nb = len < (1 << 20) ? realloc(buf, sz * 2) : NULL;
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			sz *= 2;
		}
	}
	fclose(f);
	if (!buf) {
		snprintf(err, cap, "%s is too large", path);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

media_http *media_http_start(media *m, const media_http_opts *o, char *err, size_t cap)
{
	media_http *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	h->m = m;
	h->cors = o->cors_origin;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(o->port) };
	const struct sockaddr *addr = (const struct sockaddr *)&sa;
	/* epoll where there is one (MHD_USE_AUTO): select() would cap the
	 * connections at FD_SETSIZE */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	if (inet_pton(AF_INET, o->addr, &sa.sin_addr) != 1) {
		if (inet_pton(AF_INET6, o->addr, &sa6.sin6_addr) != 1) {
			snprintf(err, cap, "--http-addr %s is not an IPv4 or IPv6 address", o->addr);
			free(h);
			return NULL;
		}
		addr = (const struct sockaddr *)&sa6;
		flags |= MHD_USE_IPv6;
	}
	if (o->cert) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			snprintf(err, cap, "this libmicrohttpd has no TLS support");
			free(h);
			return NULL;
		}
		h->cert = slurp(o->cert, err, cap);
		h->key = h->cert ? slurp(o->key, err, cap) : NULL;
		if (!h->key) {
			media_http_stop(h);
			return NULL;
		}
		flags |= MHD_USE_TLS;
	}
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, h->key },
		{ MHD_OPTION_END, 0, NULL },
	};
	h->d = MHD_start_daemon(flags, o->port, NULL, NULL, on_request, h,
	                        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
	                        MHD_OPTION_SOCK_ADDR, addr,
	                        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	                        MHD_OPTION_ARRAY, o->cert ? tls_opts : tls_opts + 2,
	                        MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, cap, "cannot listen on %s port %u (in use, or a bad certificate/key)",
		         o->addr, o->port);
		media_http_stop(h);
		return NULL;
	}
	return h;
}

unsigned media_http_port(media_http *h)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : 0;
}

void media_http_stop(media_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	if (h->key) {
		memset(h->key, 0, strlen(h->key));
		free(h->key);
	}
	free(h->cert);
	free(h);
}
