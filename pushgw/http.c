/* http.c — one HTTP/1.1 POST over a fresh TCP connection, within a
 * deadline (see http.h). Non-blocking socket + poll, so a provider that
 * accepts and never answers costs at most the timeout.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

bool http_url_parse(const char *url, http_url *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(url, "https://", 8) == 0) {
		*why = "https:// is not spoken here: point the URL at a local TLS-terminating proxy (http://)";
		return false;
	}
	if (strncmp(url, "http://", 7) != 0) {
		*why = "the URL must start with http://";
		return false;
	}
	const char *h = url + 7, *slash = strchr(h, '/');
	size_t hl = slash ? (size_t)(slash - h) : strlen(h);
	const char *colon = memchr(h, ':', hl);
	size_t namelen = colon ? (size_t)(colon - h) : hl;
	if (namelen == 0 || namelen > HTTP_HOST_MAX) {
		*why = "the URL needs a host";
		return false;
	}
	memcpy(out->host, h, namelen);
	if (colon) {
		size_t pl = hl - namelen - 1;
		char *end;
		long port = 0;
		if (pl > 0 && pl < sizeof(out->port)) {
			memcpy(out->port, colon + 1, pl);
			port = strtol(out->port, &end, 10);
			if (*end)
				port = 0;
		}
		if (port < 1 || port > 65535) {
			*why = "the URL's port must be 1-65535";
			return false;
		}
	} else {
		strcpy(out->port, "80");
	}
	const char *path = slash ? slash : "/";
	if (strlen(path) > HTTP_PATH_MAX || strpbrk(path, " \r\n")) {
		*why = "the URL's path is too long or has spaces or line breaks";
		return false;
	}
	strcpy(out->path, path);
	return true;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; false on timeout or error. */
static bool wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return true;
		if (n < 0 && errno != EINTR)
			return false;
	}
}

static int dial(const http_url *u, long long deadline, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) &&
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0))
			break;
		snprintf(err, errlen, "cannot connect to %s:%s: %s", u->host, u->port,
		         soerr ? strerror(soerr) : "timed out");
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool send_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			return false;
		} else if (!wait_fd(fd, POLLOUT, deadline)) {
			return false;
		}
	}
	return true;
}

/* Reads until the server closes (Connection: close) or, once the headers
 * are in, Content-Length bytes of body have arrived. */
static bool parse(char *buf, size_t n, http_resp *resp)
{
	buf[n] = 0;
	int major, minor, status;
	if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 999)
		return false;
	resp->status = status;
	char *body = strstr(buf, "\r\n\r\n");
	body = body ? body + 4 : buf + n;
	resp->body_len = (size_t)(buf + n - body);
	if (resp->body_len > HTTP_BODY_MAX)
		resp->body_len = HTTP_BODY_MAX;
	memcpy(resp->body, body, resp->body_len);
	resp->body[resp->body_len] = 0;
	return true;
}

static bool complete(const char *buf, size_t n)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4);
	if (!end)
		return false;
	const char *cl = NULL;
	for (const char *p = buf; p < end; p++)
		if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
			cl = p + 15;
	return cl && (size_t)(buf + n - (end + 4)) >= strtoul(cl, NULL, 10);
}

int http_post(const http_url *u, const char *headers, const char *body, size_t len,
              int timeout_ms, http_resp *resp, char *err, size_t errlen)
{
	long long deadline = now_ms() + timeout_ms;
	memset(resp, 0, sizeof(*resp));
	int fd = dial(u, deadline, err, errlen);
	if (fd < 0)
		return -1;
	char head[HTTP_PATH_MAX + HTTP_HOST_MAX + 8192];
	int hl = snprintf(head, sizeof(head),
	                  "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: chat-pushgw\r\n"
	                  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	                  "Connection: close\r\n%s\r\n",
	                  u->path, u->host, u->port, len, headers);
	int rc = -1;
	enum { RESP_MAX = HTTP_BODY_MAX + 16384 };
	char *buf = NULL;
	if (hl < 0 || (size_t)hl >= sizeof(head)) {
		snprintf(err, errlen, "request headers too long");
		goto out;
	}
	if (!send_all(fd, head, (size_t)hl, deadline) || !send_all(fd, body, len, deadline)) {
		snprintf(err, errlen, "sending to %s:%s failed or timed out", u->host, u->port);
		goto out;
	}
	buf = malloc(RESP_MAX + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = n < RESP_MAX ? recv(fd, buf + n, RESP_MAX - n, 0) : 0;
		if (r > 0) {
			n += (size_t)r;
			if (complete(buf, n))
				break;
		} else if (r == 0) {
			break;
		} else if (errno == EAGAIN || errno == EINTR) {
			if (!wait_fd(fd, POLLIN, deadline)) {
				snprintf(err, errlen, "no answer from %s:%s within %d ms", u->host, u->port,
				         timeout_ms);
				goto out;
			}
		} else {
			snprintf(err, errlen, "reading from %s:%s: %s", u->host, u->port, strerror(errno));
			goto out;
		}
	}
	if (!parse(buf, n, resp)) {
		snprintf(err, errlen, "a malformed HTTP response from %s:%s", u->host, u->port);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}
