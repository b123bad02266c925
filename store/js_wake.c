// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_wake.c — see js_wake.h. MQTT 3.1.1 (OASIS), only what this needs:
 * CONNECT (clean session, keep alive 0: the broker never times it out),
 * PINGREQ, and reading CONNACK / PINGRESP back. */
#include "js_wake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"

struct js_wake {
	int fd;                     /* -1 when not connected */
	int old_fd;                 /* closed one drain later: a notify may still hold it */
	int outstanding;            /* __atomic: a PINGREQ went out since the last drain */
	struct sockaddr_in addr;
	uint8_t connect[600];       /* the CONNECT packet, kept for reconnects */
	size_t connect_len;
	uint64_t pings, pongs;      /* pings: __atomic */
	uint8_t in[4];              /* a packet cut between two reads */
	size_t in_len;
};

static size_t put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return 2 + n;
}

static int dial(js_wake *w)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&w->addr, sizeof(w->addr)) != 0 ||
	    send(fd, w->connect, w->connect_len, MSG_NOSIGNAL) != (ssize_t)w->connect_len) {
		close(fd);
		return -1;
	}
	/* non-blocking from now on: notify never waits on the broker */
	struct timeval tv = { 0, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

int js_wake_open(js_wake **out, const char *host, int port, const char *clientid, const char *username,
                 const char *password, char *err, size_t errlen)
{
	js_wake *w = calloc(1, sizeof(*w));
	if (!w)
		return CHAT_ENOMEM;
	w->fd = -1;
	w->old_fd = -1;
	w->addr.sin_family = AF_INET;
	w->addr.sin_port = htons((uint16_t)port);
	if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &w->addr.sin_addr) != 1 || !clientid ||
	    strlen(clientid) > 128 || (username && strlen(username) > 128) || (password && strlen(password) > 128) ||
	    (password && !username)) {
		snprintf(err, errlen, "wake-up connection: bad address or credentials");
		free(w);
		return CHAT_EINVAL;
	}
	uint8_t body[560];
	size_t n = 0;
	n += put_str(body + n, "MQTT");
	body[n++] = 4; /* 3.1.1 */
	body[n++] = (uint8_t)(0x02 | (username ? 0x80 : 0) | (password ? 0x40 : 0));
	body[n++] = 0; /* keep alive 0: no timeout */
	body[n++] = 0;
	n += put_str(body + n, clientid);
	if (username)
		n += put_str(body + n, username);
	if (password)
		n += put_str(body + n, password);
	w->connect[0] = 0x10;
	/* remaining length (< 16384: two bytes at most) */
	size_t h = 1;
	if (n < 128) {
		w->connect[h++] = (uint8_t)n;
	} else {
		w->connect[h++] = (uint8_t)(0x80 | (n & 0x7f));
		w->connect[h++] = (uint8_t)(n >> 7);
	}
	memcpy(w->connect + h, body, n);
	w->connect_len = h + n;
	/* mosquitto 2.0.11 initialises plugins before it opens its listeners:
	 * the connection is made by the first drain (TICK) when it cannot be
	 * made now */
	w->fd = dial(w);
	*out = w;
	return CHAT_OK;
}

void js_wake_notify(void *arg)
{
	js_wake *w = arg;
	if (__atomic_exchange_n(&w->outstanding, 1, __ATOMIC_ACQ_REL))
		return; /* one is on its way: the pass it wakes drains everything */
	int fd = __atomic_load_n(&w->fd, __ATOMIC_ACQUIRE);
	static const uint8_t pingreq[2] = { 0xc0, 0x00 };
	if (fd >= 0 && send(fd, pingreq, 2, MSG_NOSIGNAL | MSG_DONTWAIT) == 2)
		__atomic_add_fetch(&w->pings, 1, __ATOMIC_RELAXED);
	/* a failed write: the next drain (TICK, ≤ 100 ms) reconnects and the
	 * completion is drained there anyway */
}

void js_wake_drained(js_wake *w)
{
	/* re-arm first: a completion queued after this point wakes again */
	__atomic_store_n(&w->outstanding, 0, __ATOMIC_RELEASE);
	if (w->old_fd >= 0) {
		close(w->old_fd);
		w->old_fd = -1;
	}
	if (w->fd >= 0) {
		uint8_t buf[512];
		for (;;) {
			ssize_t r = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0) {
				/* PINGRESP d0 00 and CONNACK 20 02 xx xx: count the pongs */
				for (ssize_t i = 0; i < r; i++) {
					w->in[w->in_len++] = buf[i];
					size_t need = w->in[0] == 0x20 ? 4 : 2;
					if (w->in_len == need) {
						if (w->in[0] == 0xd0)
							w->pongs++;
						else if (w->in[0] == 0x20 && w->in[3] != 0)
							r = 0; /* refused: drop the connection below */
						w->in_len = 0;
					}
				}
				if (r != 0)
					continue;
			}
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			/* closed or refused by the broker: connect again */
			int fd = w->fd;
			__atomic_store_n(&w->fd, -1, __ATOMIC_RELEASE);
			shutdown(fd, SHUT_RDWR); /* closed at the next drain, not reused under a notify */
			w->old_fd = fd;
			w->in_len = 0;
			break;
		}
	}
	if (w->fd < 0) {
		int fd = dial(w);
		__atomic_store_n(&w->fd, fd, __ATOMIC_RELEASE);
	}
}

void js_wake_counts(const js_wake *w, uint64_t *pings, uint64_t *pongs)
{
	*pings = __atomic_load_n(&w->pings, __ATOMIC_RELAXED);
	*pongs = w->pongs;
}

void js_wake_close(js_wake *w)
{
	if (!w)
		return;
	if (w->old_fd >= 0)
		close(w->old_fd);
	if (w->fd >= 0) {
		static const uint8_t disconnect[2] = { 0xe0, 0x00 };
		(void)!send(w->fd, disconnect, 2, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(w->fd);
	}
	free(w);
}
