// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* chatbench — load generator for mosquitto-chat (docs/BENCHMARKS.md).
 *
 * One thread, raw sockets and epoll, a minimal MQTT 3.1.1 client (CONNECT,
 * SUBSCRIBE, PUBLISH QoS 0/1, PUBACK). Outgoing bytes are appended to a
 * per-connection buffer and written once per loop iteration, so a burst of
 * events costs one write() per connection. The program reports its own CPU
 * time next to the broker's (/proc/PID/stat utime+stime) so a reader can
 * check that the load generator was not the bottleneck.
 *
 * Modes (each prints one `key=value …` result line on stdout):
 *   relay   plain QoS 1 publish -> subscribe, 100-byte payloads between
 *           anonymous clients (stock broker, or one with the plugin that
 *           lets IoT clients in: allow_anonymous, plugin_opt_foreign_acl allow)
 *   dm      device pairs sending chat/dm/{peer} sends, live msg events,
 *           delivered receipts in batches
 *   (relay and dm with --iot-sub F: one more, anonymous, connection
 *   subscribed to F, e.g. "#", as a dashboard on a shared broker would be;
 *   dm with --caps sents,rcpts: the protocol's v2 forms)
 *   xmpp    the dm shape on an XMPP server (ejabberd): chat messages with
 *           XEP-0184 receipts, XEP-0198 acks standing in for PUBACKs
 *   replay  N messages queued for an offline device, drained by the replay
 *           its inbox SUBSCRIBE starts (with --caps batch: in batch events,
 *           protocol v2; with --live-rate R: a second pair's live dm
 *           latency during the drain)
 *   keys    bundle fetches through the broker and chat-keyserver
 *   idle    many idle connections, broker RSS per connection
 *   fanout  one sender, a group of M members (chat/group/{G}): live
 *           deliveries/s, or (--offline) the store/queue rate
 */
#include "cbor_io.h"
#include "chat_version.h"
#include "xmpp_scan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ utilities */

static int verbose;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("chatbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void info(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("chatbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t sz)
{
	p = realloc(p, sz);
	if (!p)
		die("out of memory");
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time (user + system) of process pid in µs, from /proc/PID/stat; -1 if unknown. */
static int64_t proc_cpu_us(int pid)
{
	if (pid <= 0)
		return -1;
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	/* after ')': field 3 (state) is token 0; utime (14) token 11, stime (15) token 12 */
	unsigned long long ut = 0, st = 0;
	int tok = 0;
	char *save = NULL;
	for (char *t = strtok_r(p, " ", &save); t; t = strtok_r(NULL, " ", &save), tok++) {
		if (tok == 11)
			ut = strtoull(t, NULL, 10);
		else if (tok == 12) {
			st = strtoull(t, NULL, 10);
			break;
		}
	}
	long hz = sysconf(_SC_CLK_TCK);
	return (int64_t)((ut + st) * 1000000ull / (unsigned long long)hz);
}

static int64_t self_cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
	       (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

/* VmRSS of pid in kB, -1 if unknown. */
static long proc_rss_kb(int pid)
{
	if (pid <= 0)
		return -1;
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* latency samples in ns */
typedef struct lat {
	uint64_t *v;
	size_t n, cap;
} lat;

static void lat_add(lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 65536;
		l->v = xrealloc(l->v, l->cap * sizeof(uint64_t));
	}
	l->v[l->n++] = ns;
}

static double lat_pct_us(lat *l, double q)
{
	if (!l->n)
		return 0;
	size_t i = (size_t)(q * (double)l->n);
	if (i >= l->n)
		i = l->n - 1;
	return (double)l->v[i] / 1000.0;
}

/* ------------------------------------------------------------ options */

static struct opts {
	const char *mode;
	const char *host;
	int port;
	int broker_pid, ks_pid;
	const char *admin_token_file;
	const char *run_id;
	const char *label;
	int pairs;
	long msgs;
	double rate;    /* msgs/s offered; 0 = as fast as the window allows */
	int window;     /* per pair, end to end (sent, not yet delivered) */
	int ack_batch;  /* seqs per delivered receipt */
	int ack_delay_us;
	int conns;
	bool stock;
	int users, opks, fetchers;
	bool verify;
	int timeout_s;
	int keepalive;
	int body;
	int members;    /* fanout: group members */
	bool offline;   /* fanout: members offline, measure the store/queue rate */
	bool sync;      /* replay: chat/sync after SUBSCRIBE (auto replay off) */
	bool no_receipts; /* dm/replay/fanout: the PUBACK delivers (a patched broker) */
	const char *iot_sub; /* relay/dm: a filter an extra anonymous client subscribes to */
	const char *caps;    /* dm and replay: comma-separated capabilities each device declares (v2) */
	double live_rate;    /* replay: a second pair's live dm msgs/s during the drain */
	const char *xmpp_domain; /* xmpp: the server's domain */
	bool xmpp_register;  /* xmpp: in-band registration (XEP-0077) before logging in */
	bool warmup;         /* relay/dm/xmpp with --rate: one message per pair first, not measured */
	bool msgs_set;
} o = {
	.host = "127.0.0.1", .port = 1883, .pairs = 8, .msgs = 20000, .window = 16,
	.ack_batch = 50, .ack_delay_us = 20000, .conns = 1000, .users = 64, .opks = 200,
	.fetchers = 16, .timeout_s = 120, .keepalive = 600, .body = 100, .members = 1000,
	.xmpp_domain = "localhost",
};

static char run[32];
static char admin_token[256];

/* ------------------------------------------------------------ MQTT over epoll */

typedef struct conn conn;
typedef void (*pub_fn)(conn *c, const char *topic, size_t tlen, const uint8_t *pl, size_t plen);
typedef void (*ack_fn)(conn *c, uint16_t mid);

struct conn {
	int fd;
	int idx;      /* the mode's index for this connection */
	int role;
	bool connecting, connected, connack, suback, closed, dirty, want_out;
	int connack_rc, suback_rc;
	uint8_t *rb;
	size_t rlen, rcap;
	uint8_t *wb;
	size_t wlen, woff, wcap;
	uint16_t mid;
	long unacked; /* our QoS 1 publishes without PUBACK */
};

static int epfd = -1;
static conn **dirty;
static size_t ndirty, dirty_cap;
static pub_fn on_pub;
static ack_fn on_ack;
static void (*stream_parse)(conn *c); /* set: the connections speak XMPP (mode xmpp), not MQTT */
static long n_closed;

static void mark_dirty(conn *c)
{
	if (c->dirty)
		return;
	if (ndirty == dirty_cap) {
		dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
		dirty = xrealloc(dirty, dirty_cap * sizeof(*dirty));
	}
	c->dirty = true;
	dirty[ndirty++] = c;
}

static uint8_t *wreserve(conn *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n > c->wcap) {
		if (c->woff) {
			memmove(c->wb, c->wb + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		size_t cap = c->wcap ? c->wcap : 256;
		while (c->wlen + n > cap)
			cap *= 2;
		if (cap != c->wcap) {
			c->wb = xrealloc(c->wb, cap);
			c->wcap = cap;
		}
	}
	uint8_t *p = c->wb + c->wlen;
	c->wlen += n;
	mark_dirty(c);
	return p;
}

static size_t varint_len(size_t n)
{
	return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

static uint8_t *put_header(uint8_t *p, uint8_t type, size_t rem)
{
	*p++ = type;
	do {
		uint8_t b = rem % 128;
		rem /= 128;
		if (rem)
			b |= 0x80;
		*p++ = b;
	} while (rem);
	return p;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n)
{
	*p++ = (uint8_t)(n >> 8);
	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

static void mq_connect_pkt(conn *c, const char *id, const char *user, const char *pass,
                           const char *will_topic)
{
	size_t rem = 10 + 2 + strlen(id);
	uint8_t flags = 0x02; /* clean session */
	if (will_topic) {
		rem += 2 + strlen(will_topic) + 2;
		flags |= 0x04;
	}
	if (user) {
		rem += 2 + strlen(user);
		flags |= 0x80;
	}
	if (pass) {
		rem += 2 + strlen(pass);
		flags |= 0x40;
	}
	uint8_t *p = wreserve(c, 1 + varint_len(rem) + rem);
	p = put_header(p, 0x10, rem);
	p = put_str(p, "MQTT", 4);
	*p++ = 4;
	*p++ = flags;
	*p++ = (uint8_t)(o.keepalive >> 8);
	*p++ = (uint8_t)o.keepalive;
	p = put_str(p, id, strlen(id));
	if (will_topic) {
		p = put_str(p, will_topic, strlen(will_topic));
		p = put_str(p, "", 0);
	}
	if (user)
		p = put_str(p, user, strlen(user));
	if (pass)
		p = put_str(p, pass, strlen(pass));
}

static uint16_t next_mid(conn *c)
{
	if (++c->mid == 0)
		c->mid = 1;
	return c->mid;
}

static void mq_subscribe(conn *c, const char *topic, int qos)
{
	size_t tl = strlen(topic), rem = 2 + 2 + tl + 1;
	uint8_t *p = wreserve(c, 1 + varint_len(rem) + rem);
	p = put_header(p, 0x82, rem);
	uint16_t mid = next_mid(c);
	*p++ = (uint8_t)(mid >> 8);
	*p++ = (uint8_t)mid;
	p = put_str(p, topic, tl);
	*p = (uint8_t)qos;
	c->suback = false;
}

static uint16_t mq_publish(conn *c, const char *topic, const void *pl, size_t plen, int qos)
{
	size_t tl = strlen(topic), rem = 2 + tl + (qos ? 2 : 0) + plen;
	uint8_t *p = wreserve(c, 1 + varint_len(rem) + rem);
	p = put_header(p, (uint8_t)(0x30 | (qos << 1)), rem);
	p = put_str(p, topic, tl);
	uint16_t mid = 0;
	if (qos) {
		mid = next_mid(c);
		*p++ = (uint8_t)(mid >> 8);
		*p++ = (uint8_t)mid;
		c->unacked++;
	}
	memcpy(p, pl, plen);
	return mid;
}

static void mq_puback(conn *c, uint16_t mid)
{
	uint8_t *p = wreserve(c, 4);
	p[0] = 0x40;
	p[1] = 2;
	p[2] = (uint8_t)(mid >> 8);
	p[3] = (uint8_t)mid;
}

static void conn_close(conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	n_closed++;
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
}

static void set_events(conn *c, bool out)
{
	if (c->want_out == out || c->closed)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = out;
}

static void conn_flush(conn *c)
{
	if (c->closed || c->connecting)
		return;
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wb + c->woff, c->wlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_events(c, true);
			return;
		}
		info("write: %s", strerror(errno));
		conn_close(c);
		return;
	}
	c->woff = c->wlen = 0;
	set_events(c, false);
}

static void flush_dirty(void)
{
	for (size_t i = 0; i < ndirty; i++) {
		dirty[i]->dirty = false;
		conn_flush(dirty[i]);
	}
	ndirty = 0;
}

static struct sockaddr_in broker_addr;

/* Opens a TCP connection and queues CONNECT (sent once the socket connects). */
static void tcp_open(conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (raise ulimit -n?)", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->closed = c->connack = c->connected = false;
	c->connecting = true;
	int rc = connect(c->fd, (struct sockaddr *)&broker_addr, sizeof(broker_addr));
	if (rc < 0 && errno != EINPROGRESS)
		die("connect to %s:%d: %s", o.host, o.port, strerror(errno));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->want_out = true;
}

static void conn_open(conn *c, const char *id, const char *user, const char *pass,
                      const char *will_topic)
{
	tcp_open(c);
	mq_connect_pkt(c, id, user, pass, will_topic);
}

static void handle_packet(conn *c, uint8_t type, const uint8_t *p, size_t len)
{
	switch (type >> 4) {
	case 2: /* CONNACK */
		c->connack = true;
		c->connack_rc = len >= 2 ? p[1] : 255;
		if (c->connack_rc)
			info("CONNACK refused: %d", c->connack_rc);
		break;
	case 3: { /* PUBLISH */
		int qos = (type >> 1) & 3;
		if (len < 2)
			break;
		size_t tl = (size_t)p[0] << 8 | p[1];
		if (2 + tl + (qos ? 2u : 0u) > len)
			break;
		const char *topic = (const char *)p + 2;
		size_t off = 2 + tl;
		if (qos) {
			uint16_t mid = (uint16_t)(p[off] << 8 | p[off + 1]);
			off += 2;
			mq_puback(c, mid);
		}
		if (on_pub)
			on_pub(c, topic, tl, p + off, len - off);
		break;
	}
	case 4: /* PUBACK */
		if (len >= 2) {
			c->unacked--;
			if (on_ack)
				on_ack(c, (uint16_t)(p[0] << 8 | p[1]));
		}
		break;
	case 9: /* SUBACK */
		c->suback = true;
		c->suback_rc = len >= 3 ? p[2] : 255;
		break;
	default:
		break;
	}
}

static void conn_read(conn *c)
{
	for (;;) {
		if (c->rcap - c->rlen < 512) {
			c->rcap = c->rcap ? c->rcap * 2 : 4096;
			c->rb = xrealloc(c->rb, c->rcap);
		}
		ssize_t n = read(c->fd, c->rb + c->rlen, c->rcap - c->rlen);
		if (n == 0) {
			info("connection %d closed by the broker", c->idx);
			conn_close(c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				info("read: %s", strerror(errno));
				conn_close(c);
			}
			break;
		}
		c->rlen += (size_t)n;
		if (stream_parse) { /* xmpp: not MQTT */
			stream_parse(c);
			if (c->closed)
				return;
			continue;
		}
		/* parse complete packets */
		size_t off = 0;
		while (c->rlen - off >= 2) {
			size_t rem = 0, mult = 1, i = 1;
			bool complete = false;
			while (off + i < c->rlen && i <= 4) {
				uint8_t b = c->rb[off + i];
				rem += (size_t)(b & 0x7f) * mult;
				mult *= 128;
				i++;
				if (!(b & 0x80)) {
					complete = true;
					break;
				}
			}
			if (!complete || c->rlen - off < i + rem) {
				if (complete && i + rem > c->rcap) {
					while (i + rem > c->rcap)
						c->rcap *= 2;
					c->rb = xrealloc(c->rb, c->rcap);
				}
				break;
			}
			handle_packet(c, c->rb[off], c->rb + off + i, rem);
			off += i + rem;
			if (c->closed)
				return;
		}
		if (off) {
			memmove(c->rb, c->rb + off, c->rlen - off);
			c->rlen -= off;
		}
	}
}

/* One loop iteration: waits at most timeout_ns, handles I/O, flushes writes. */
static void loop_once(uint64_t timeout_ns)
{
	static struct epoll_event evs[1024];
	flush_dirty();
	struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u),
		               .tv_nsec = (long)(timeout_ns % 1000000000u) };
	int n = epoll_pwait2(epfd, evs, 1024, &ts, NULL);
	if (n < 0) {
		if (errno == EINTR)
			return;
		die("epoll_pwait2: %s", strerror(errno));
	}
	for (int i = 0; i < n; i++) {
		conn *c = evs[i].data.ptr;
		if (c->closed)
			continue;
		if (c->connecting && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
			int err = 0;
			socklen_t l = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (err) {
				info("connect: %s", strerror(err));
				conn_close(c);
				continue;
			}
			c->connecting = false;
			c->connected = true;
			conn_flush(c);
			if (c->closed)
				continue;
		}
		if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_read(c);
		if (!c->closed && (evs[i].events & EPOLLOUT) && !c->connecting)
			conn_flush(c);
	}
	flush_dirty();
}

typedef bool (*cond_fn)(void);

/* Runs the loop until cond() holds or the timeout passes; false on timeout. */
static bool loop_until(cond_fn cond, double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
	while (!cond()) {
		uint64_t t = now_ns();
		if (t >= end)
			return false;
		uint64_t left = end - t;
		loop_once(left < 5000000u ? left : 5000000u);
	}
	flush_dirty();
	return true;
}

/* Connection ramp: opens conns[0..n) with at most `pending` CONNECTs in
 * flight, subscribes each to topic_of(i) (if given) once it is connected. */
typedef void (*open_fn)(conn *c, int i);
typedef const char *(*topic_fn)(int i);

typedef bool (*presub_fn)(conn *c, int i);

static conn *g_conns;
static int g_nconns, g_opened, g_ready, g_failed;
static topic_fn g_topic;
/* Before SUBSCRIBE: publishes what a device says first (dm --caps: chat/ctl
 * caps, docs/PROTOCOL.md); true = wait for that publish's PUBACK, then subscribe. */
static presub_fn g_presub;

static int connect_all(conn *cs, int n, open_fn open, topic_fn topic, double secs)
{
	g_conns = cs;
	g_nconns = n;
	g_opened = g_ready = g_failed = 0;
	g_topic = topic;
	const int pending = 128;
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
	int *state = xcalloc((size_t)n, sizeof(int)); /* 0 new, 1 connecting, 2 subscribing, 3 ready, 4 failed,
	                                               * 5 waiting for the PUBACK of g_presub's publish */
	int inflight = 0, scan = 0;
	while (g_ready + g_failed < n) {
		while (inflight < pending && g_opened < n) {
			cs[g_opened].idx = g_opened;
			open(&cs[g_opened], g_opened);
			state[g_opened] = 1;
			g_opened++;
			inflight++;
		}
		if (now_ns() > end)
			break;
		loop_once(2000000);
		/* advance states of the connections in flight */
		for (int i = scan; i < g_opened; i++) {
			conn *c = &cs[i];
			if (state[i] == 1) {
				if (c->closed || (c->connack && c->connack_rc)) {
					state[i] = 4;
					g_failed++;
					inflight--;
				} else if (c->connack && g_presub && g_presub(c, i)) {
					state[i] = 5;
				} else if (c->connack) {
					const char *t = topic ? topic(i) : NULL;
					if (t) {
						mq_subscribe(c, t, 1);
						state[i] = 2;
					} else {
						state[i] = 3;
						g_ready++;
						inflight--;
					}
				}
			} else if (state[i] == 5) {
				if (c->closed) {
					state[i] = 4;
					g_failed++;
					inflight--;
				} else if (c->unacked == 0) {
					const char *t = topic ? topic(i) : NULL;
					if (t) {
						mq_subscribe(c, t, 1);
						state[i] = 2;
					} else {
						state[i] = 3;
						g_ready++;
						inflight--;
					}
				}
			} else if (state[i] == 2) {
				if (c->closed || (c->suback && c->suback_rc >= 0x80)) {
					state[i] = 4;
					g_failed++;
					inflight--;
				} else if (c->suback) {
					state[i] = 3;
					g_ready++;
					inflight--;
				}
			}
		}
		while (scan < g_opened && (state[scan] == 3 || state[scan] == 4))
			scan++;
	}
	free(state);
	flush_dirty();
	if (g_failed)
		fprintf(stderr, "chatbench: %d of %d connections failed (CONNACK/SUBACK refused or closed)\n",
		        g_failed, n);
	return g_ready;
}

/* ------------------------------------------------------------ CBOR events */

typedef struct ev {
	const uint8_t *k, *conv, *body, *token, *code, *msg;
	size_t klen, convlen, bodylen, tokenlen, codelen, msglen;
	uint64_t seq, rid, nseqs, ndev;
	bool has_seq, has_rid, ok, done;
	/* keys: the first device of a bundle */
	const uint8_t *ik, *spk_key, *spk_sig;
	size_t iklen, spklen, siglen;
	bool has_opk;
	/* v2 (--caps): `sents` items and their `dl` users; `rcpts` seqs x users;
	 * a ctl reply's caps in effect and server map */
	uint64_t nitems, ndl, nrseqs, ncaps;
	bool has_server, puback_delivered;
} ev;

static bool txt_is(const uint8_t *p, size_t n, const char *s)
{
	return p && strlen(s) == n && memcmp(p, s, n) == 0;
}

static int parse_spk(cbr *r, const cbr_item *m, ev *e)
{
	uint64_t i = 0;
	cbr_item k, v;
	while (cbr_map_next(r, m, &i, &k)) {
		if (cbr_next(r, &v))
			return -1;
		if (v.type == CBR_BYTES && cbr_eq(&k, "key")) {
			e->spk_key = v.ptr;
			e->spklen = v.len;
		} else if (v.type == CBR_BYTES && cbr_eq(&k, "sig")) {
			e->spk_sig = v.ptr;
			e->siglen = v.len;
		} else if (cbr_skip(r, &v)) {
			return -1;
		}
	}
	return r->err_msg ? -1 : 0;
}

static int parse_devices(cbr *r, const cbr_item *arr, ev *e)
{
	uint64_t i = 0;
	while (cbr_array_next(r, arr, &i)) {
		cbr_item m, k, v;
		if (cbr_next(r, &m))
			return -1;
		e->ndev++;
		if (m.type != CBR_MAP || e->ndev > 1) {
			if (cbr_skip(r, &m))
				return -1;
			continue;
		}
		uint64_t j = 0;
		while (cbr_map_next(r, &m, &j, &k)) {
			if (cbr_next(r, &v))
				return -1;
			if (v.type == CBR_BYTES && cbr_eq(&k, "ik")) {
				e->ik = v.ptr;
				e->iklen = v.len;
			} else if (v.type == CBR_MAP && cbr_eq(&k, "spk")) {
				if (parse_spk(r, &v, e))
					return -1;
			} else {
				if (cbr_eq(&k, "opk"))
					e->has_opk = true;
				if (cbr_skip(r, &v))
					return -1;
			}
		}
		if (r->err_msg)
			return -1;
	}
	return r->err_msg ? -1 : 0;
}

/* For each map in arr (other elements skipped): field() sees each of its
 * fields (the value read; skipped after), then done() the map's tallies. */
typedef void (*map_field_fn)(ev *e, const cbr_item *k, const cbr_item *v, uint64_t acc[2]);
typedef void (*map_done_fn)(ev *e, const uint64_t acc[2]);

static int each_map(cbr *r, const cbr_item *arr, ev *e, map_field_fn field, map_done_fn done)
{
	uint64_t i = 0;
	while (cbr_array_next(r, arr, &i)) {
		cbr_item m, k, v;
		if (cbr_next(r, &m))
			return -1;
		if (m.type != CBR_MAP) {
			if (cbr_skip(r, &m))
				return -1;
			continue;
		}
		uint64_t j = 0, acc[2] = { 0, 0 };
		while (cbr_map_next(r, &m, &j, &k)) {
			if (cbr_next(r, &v))
				return -1;
			field(e, &k, &v, acc);
			if (cbr_skip(r, &v))
				return -1;
		}
		if (r->err_msg)
			return -1;
		done(e, acc);
	}
	return r->err_msg ? -1 : 0;
}

/* v2 `sents`: items: [+ {cid, conv, seq, ts, ? dl: [+ uid]}] */
static void item_field(ev *e, const cbr_item *k, const cbr_item *v, uint64_t acc[2])
{
	(void)acc;
	if (v->type == CBR_ARRAY && !v->indef && cbr_eq(k, "dl"))
		e->ndl += v->u;
}

static void item_done(ev *e, const uint64_t acc[2])
{
	(void)acc;
	e->nitems++;
}

/* v2 `rcpts`: sets: [+ {seqs: [+ uint], by: [+ uid]}]; counts seqs x users */
static void set_field(ev *e, const cbr_item *k, const cbr_item *v, uint64_t acc[2])
{
	(void)e;
	if (v->type != CBR_ARRAY || v->indef)
		return;
	if (cbr_eq(k, "seqs"))
		acc[0] = v->u;
	else if (cbr_eq(k, "by"))
		acc[1] = v->u;
}

static void set_done(ev *e, const uint64_t acc[2])
{
	e->nrseqs += acc[0] * acc[1];
}

/* a ctl reply's server: {v, puback_delivered, gather_ms, replay_batch} */
static int parse_server(cbr *r, const cbr_item *m, ev *e)
{
	uint64_t i = 0;
	cbr_item k, v;
	e->has_server = true;
	while (cbr_map_next(r, m, &i, &k)) {
		if (cbr_next(r, &v))
			return -1;
		if (v.type == CBR_BOOL && cbr_eq(&k, "puback_delivered"))
			e->puback_delivered = v.b;
		else if (cbr_skip(r, &v))
			return -1;
	}
	return r->err_msg ? -1 : 0;
}

static int parse_ev(const uint8_t *p, size_t n, ev *e)
{
	memset(e, 0, sizeof(*e));
	cbr r;
	cbr_item m, k, v;
	cbr_init(&r, p, n);
	if (cbr_next(&r, &m) || m.type != CBR_MAP)
		return -1;
	uint64_t i = 0;
	while (cbr_map_next(&r, &m, &i, &k)) {
		if (cbr_next(&r, &v))
			return -1;
		if (v.type == CBR_TEXT && cbr_eq(&k, "k")) {
			e->k = v.ptr;
			e->klen = v.len;
		} else if (v.type == CBR_TEXT && cbr_eq(&k, "conv")) {
			e->conv = v.ptr;
			e->convlen = v.len;
		} else if (v.type == CBR_UINT && cbr_eq(&k, "seq")) {
			e->seq = v.u;
			e->has_seq = true;
		} else if (v.type == CBR_UINT && cbr_eq(&k, "rid")) {
			e->rid = v.u;
			e->has_rid = true;
		} else if (v.type == CBR_BYTES && cbr_eq(&k, "body")) {
			e->body = v.ptr;
			e->bodylen = v.len;
		} else if (v.type == CBR_TEXT && cbr_eq(&k, "token")) {
			e->token = v.ptr;
			e->tokenlen = v.len;
		} else if (v.type == CBR_TEXT && cbr_eq(&k, "code")) {
			e->code = v.ptr;
			e->codelen = v.len;
		} else if (v.type == CBR_TEXT && cbr_eq(&k, "msg")) {
			e->msg = v.ptr;
			e->msglen = v.len;
		} else if (v.type == CBR_BOOL && cbr_eq(&k, "ok")) {
			e->ok = v.b;
		} else if (v.type == CBR_BOOL && cbr_eq(&k, "done")) {
			e->done = v.b;
		} else if (v.type == CBR_ARRAY && cbr_eq(&k, "seqs")) {
			e->nseqs = v.u;
			if (cbr_skip(&r, &v))
				return -1;
		} else if (v.type == CBR_ARRAY && cbr_eq(&k, "devices")) {
			if (parse_devices(&r, &v, e))
				return -1;
		} else if (v.type == CBR_ARRAY && cbr_eq(&k, "items")) {
			if (each_map(&r, &v, e, item_field, item_done))
				return -1;
		} else if (v.type == CBR_ARRAY && cbr_eq(&k, "sets")) {
			if (each_map(&r, &v, e, set_field, set_done))
				return -1;
		} else if (v.type == CBR_MAP && cbr_eq(&k, "server")) {
			if (parse_server(&r, &v, e))
				return -1;
		} else if (v.type == CBR_ARRAY && cbr_eq(&k, "caps")) {
			e->ncaps = v.u;
			if (cbr_skip(&r, &v))
				return -1;
		} else if (cbr_skip(&r, &v)) {
			return -1;
		}
	}
	return r.err_msg ? -1 : 0;
}

static void report_error_ev(const char *who, const ev *e)
{
	static int shown;
	if (shown++ < 5)
		fprintf(stderr, "chatbench: %s got error %.*s: %.*s\n", who, (int)e->codelen,
		        e->code ? (const char *)e->code : "", (int)e->msglen,
		        e->msg ? (const char *)e->msg : "");
}

/* ------------------------------------------------------------ provisioning */

/* Adds devices through $CONTROL/chat/v1 (device.add), tokens into toks[i]. */
static conn admin;
static char (*prov_tok)[64];
static long prov_done, prov_fail;

static void admin_pub(conn *c, const char *topic, size_t tlen, const uint8_t *pl, size_t plen)
{
	(void)c;
	if (!txt_is((const uint8_t *)topic, tlen, "$CONTROL/chat/v1/response"))
		return;
	ev e;
	if (parse_ev(pl, plen, &e) || !e.has_rid) {
		prov_fail++;
		return;
	}
	if (!e.ok || !e.token || e.tokenlen >= 64) {
		if (prov_fail++ < 3)
			fprintf(stderr, "chatbench: device.add #%" PRIu64 " refused: %.*s %.*s\n", e.rid,
			        (int)e.codelen, e.code ? (const char *)e.code : "", (int)e.msglen,
			        e.msg ? (const char *)e.msg : "");
		return;
	}
	memcpy(prov_tok[e.rid], e.token, e.tokenlen);
	prov_tok[e.rid][e.tokenlen] = '\0';
	prov_done++;
}

static bool admin_connacked(void)
{
	return admin.closed || admin.connack;
}

static bool admin_up(void)
{
	return admin.closed || (admin.connack && admin.suback);
}

static bool admin_connect(void)
{
	if (!o.admin_token_file)
		die("this mode needs --admin-token-file (the broker's <data_dir>/admin.token)");
	FILE *f = fopen(o.admin_token_file, "r");
	if (!f || !fgets(admin_token, sizeof(admin_token), f))
		die("cannot read %s", o.admin_token_file);
	fclose(f);
	admin_token[strcspn(admin_token, "\r\n \t")] = '\0';
	char id[64];
	snprintf(id, sizeof(id), "bench-admin-%s", run);
	memset(&admin, 0, sizeof(admin));
	admin.idx = -1;
	conn_open(&admin, id, "$admin", admin_token, NULL);
	if (!loop_until(admin_connacked, 10) || admin.closed || admin.connack_rc)
		return false;
	return true;
}

/* names[i] = "U/D"; returns the number provisioned */
static long provision(long n, char (*users)[72], const char *dev, char (*toks)[64])
{
	pub_fn saved = on_pub;
	on_pub = admin_pub;
	prov_tok = toks;
	prov_done = prov_fail = 0;
	if (!admin.connack) {
		if (!admin_connect())
			die("admin connection refused (token file %s)", o.admin_token_file);
		mq_subscribe(&admin, "$CONTROL/chat/v1/response", 1);
		if (!loop_until(admin_up, 10))
			die("no SUBACK for the admin response topic");
	}
	uint64_t t0 = now_ns();
	cbw w;
	cbw_init(&w);
	long sent = 0;
	const long window = 256;
	uint64_t end = now_ns() + 300ull * 1000000000u;
	while (prov_done + prov_fail < n && !admin.closed && now_ns() < end) {
		while (sent < n && sent - (prov_done + prov_fail) < window) {
			cbw_reset(&w);
			cbw_map(&w, 4);
			cbw_text(&w, "cmd");
			cbw_text(&w, "device.add");
			cbw_text(&w, "rid");
			cbw_uint(&w, (uint64_t)sent);
			cbw_text(&w, "user");
			cbw_text(&w, users[sent]);
			cbw_text(&w, "device");
			cbw_text(&w, dev);
			mq_publish(&admin, "$CONTROL/chat/v1", w.buf, w.len, 1);
			sent++;
		}
		loop_once(5000000);
	}
	cbw_free(&w);
	on_pub = saved;
	info("provisioned %ld devices in %.2fs (%ld refused)", prov_done, (double)(now_ns() - t0) / 1e9,
	     prov_fail);
	if (prov_done < n)
		die("provisioning failed: %ld of %ld devices added", prov_done, n);
	return prov_done;
}

/* ------------------------------------------------------------ result line */

typedef struct result {
	long msgs;
	double secs;
	lat l;
	int64_t broker_cpu, bench_cpu, ks_cpu, cpu_wall_us;
	long lost, dup, order_err, errors;
} result;

static void print_result(result *r, const char *extra)
{
	if (r->l.n) /* qsort(NULL, 0, …) is undefined behaviour (UBSan says so) */
		qsort(r->l.v, r->l.n, sizeof(uint64_t), cmp_u64);
	double rate = r->secs > 0 ? (double)r->msgs / r->secs : 0;
	printf("mode=%s run=%s msgs=%ld secs=%.3f rate=%.0f", o.mode, run, r->msgs, r->secs, rate);
	if (r->l.n)
		printf(" p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f", lat_pct_us(&r->l, 0.50),
		       lat_pct_us(&r->l, 0.99), lat_pct_us(&r->l, 0.999), lat_pct_us(&r->l, 1.0));
	double m = r->msgs ? (double)r->msgs : 1;
	if (r->broker_cpu >= 0)
		printf(" broker_cpu_us_per_msg=%.2f broker_util=%.2f", (double)r->broker_cpu / m,
		       r->cpu_wall_us ? (double)r->broker_cpu / (double)r->cpu_wall_us : 0);
	if (r->ks_cpu >= 0)
		printf(" ks_cpu_us_per_msg=%.2f ks_util=%.2f", (double)r->ks_cpu / m,
		       r->cpu_wall_us ? (double)r->ks_cpu / (double)r->cpu_wall_us : 0);
	printf(" bench_cpu_us_per_msg=%.2f bench_util=%.2f", (double)r->bench_cpu / m,
	       r->cpu_wall_us ? (double)r->bench_cpu / (double)r->cpu_wall_us : 0);
	printf(" lost=%ld dup=%ld order_err=%ld errors=%ld", r->lost, r->dup, r->order_err, r->errors);
	if (extra && *extra)
		printf(" %s", extra);
	if (o.label)
		printf(" %s", o.label);
	bool ok = !r->lost && !r->dup && !r->order_err && !r->errors;
	printf(" ok=%d\n", ok);
	fflush(stdout);
}

typedef struct cpu_mark {
	int64_t broker, bench, ks;
	uint64_t t;
} cpu_mark;

static cpu_mark cpu_now(void)
{
	cpu_mark m = { proc_cpu_us(o.broker_pid), self_cpu_us(), proc_cpu_us(o.ks_pid), now_ns() };
	return m;
}

static void cpu_since(result *r, cpu_mark a)
{
	cpu_mark b = cpu_now();
	r->broker_cpu = a.broker >= 0 && b.broker >= 0 ? b.broker - a.broker : -1;
	r->ks_cpu = a.ks >= 0 && b.ks >= 0 ? b.ks - a.ks : -1;
	r->bench_cpu = b.bench - a.bench;
	r->cpu_wall_us = (int64_t)((b.t - a.t) / 1000u);
}

/* ------------------------------------------------------------ relay and dm */

/* One pair: sender pair i -> receiver pair i, one conversation (or topic)
 * each, so the receiver must see seq (or counter) 1, 2, 3, … without gaps. */
typedef struct pair {
	conn *snd, *rcv;
	char send_topic[160];
	char conv[160];
	char rcv_inbox[160], snd_inbox[160];
	long sent, acked, sent_ev, delivered, receipts_seen;
	uint64_t expect;      /* next seq/counter at the receiver */
	uint64_t batch[1000];
	int nbatch;
	uint64_t batch_t0;
} pair;

static pair *pairs;
static int npairs;
/* dm --caps: per connection, whether its caps ctl reply came; what the server said */
static bool *caps_got;
static long caps_replies, caps_refused;
static int srv_puback_delivered = -1; /* -1: no reply carried a server map */
static long n_sent_evs, n_sents_evs, n_receipt_evs, n_rcpts_evs; /* events at the senders */
static long iot_msgs, iot_chat; /* --iot-sub: what it got, and of that under chat/ */
static long total, scheduled, delivered_all, acked_all, sent_ev_all, receipts_all, receipts_sent;
static result res;
static uint64_t t_start, t_last_delivery;
static bool is_dm;
static uint8_t *bodybuf;
static cbw sw; /* send writer */

static bool is_xmpp;
static void xmpp_send(pair *p, uint64_t intended, uint64_t k);

static void send_one(pair *p, uint64_t intended)
{
	p->sent++;
	scheduled++;
	uint64_t k = (uint64_t)p->sent;
	memcpy(bodybuf, &intended, 8);
	memcpy(bodybuf + 8, &k, 8);
	if (is_xmpp) {
		xmpp_send(p, intended, k);
	} else if (is_dm) {
		cbw_reset(&sw);
		cbw_map(&sw, 2);
		cbw_text(&sw, "cid");
		cbw_uint(&sw, k);
		cbw_text(&sw, "body");
		cbw_bytes(&sw, bodybuf, (size_t)o.body);
		mq_publish(p->snd, p->send_topic, sw.buf, sw.len, 1);
	} else {
		mq_publish(p->snd, p->send_topic, bodybuf, (size_t)o.body, 1);
	}
}

static void send_receipt(pair *p)
{
	if (!p->nbatch)
		return;
	if (o.no_receipts) { /* the device's PUBACK was its receipt */
		p->nbatch = 0;
		return;
	}
	cbw_reset(&sw);
	cbw_map(&sw, 3);
	cbw_text(&sw, "s");
	cbw_text(&sw, "delivered");
	cbw_text(&sw, "conv");
	cbw_text(&sw, p->conv);
	cbw_text(&sw, "seqs");
	cbw_array(&sw, (size_t)p->nbatch);
	for (int i = 0; i < p->nbatch; i++)
		cbw_uint(&sw, p->batch[i]);
	mq_publish(p->rcv, "chat/receipt", sw.buf, sw.len, 1);
	p->nbatch = 0;
	receipts_sent++;
}

static long per_pair(int i)
{
	return total / npairs + (i < total % npairs);
}

/* Receipt batches in the order they were started (their batch_t0), so the
 * flush after --ack-delay-us looks only at the due ones, not at every pair
 * (2,500 pairs every 5 ms cost the realistic shape's bench ~60 µs a message).
 * An entry whose batch went out by size meanwhile is skipped. */
typedef struct rq_ent {
	pair *p;
	uint64_t t0;
} rq_ent;
static rq_ent *rq;
static size_t rq_head, rq_len, rq_cap;

static void rq_push(pair *p, uint64_t t0)
{
	if (rq_len == rq_cap) {
		if (rq_head > rq_cap / 2) {
			memmove(rq, rq + rq_head, (rq_len - rq_head) * sizeof(*rq));
			rq_len -= rq_head;
			rq_head = 0;
		} else {
			rq_cap = rq_cap ? rq_cap * 2 : 4096;
			rq = xrealloc(rq, rq_cap * sizeof(*rq));
		}
	}
	rq[rq_len++] = (rq_ent){ p, t0 };
}

static void flush_due_receipts(uint64_t t, uint64_t delay)
{
	while (rq_head < rq_len && t - rq[rq_head].t0 >= delay) {
		pair *p = rq[rq_head].p;
		if (p->nbatch && p->batch_t0 == rq[rq_head].t0)
			send_receipt(p);
		rq_head++;
	}
	if (rq_head == rq_len)
		rq_head = rq_len = 0;
}

static void delivered(pair *p, uint64_t k, const uint8_t *body, size_t blen)
{
	uint64_t t = now_ns();
	if (k < p->expect) {
		res.dup++;
		return;
	}
	if (k != p->expect)
		res.order_err++;
	p->expect = k + 1;
	p->delivered++;
	delivered_all++;
	t_last_delivery = t;
	if (blen >= 16) {
		uint64_t sent_at, kk;
		memcpy(&sent_at, body, 8);
		memcpy(&kk, body + 8, 8);
		if (kk != k)
			res.order_err++;
		lat_add(&res.l, t > sent_at ? t - sent_at : 0);
	}
	if (is_dm) {
		if (!p->nbatch) {
			p->batch_t0 = t;
			rq_push(p, t);
		}
		p->batch[p->nbatch++] = k;
		if (p->nbatch >= o.ack_batch)
			send_receipt(p);
	}
	/* closed loop: the window is end to end */
	if (o.rate <= 0 && p->sent < per_pair((int)(p - pairs)))
		send_one(p, now_ns());
}

static bool under_chat(const char *topic, size_t tlen)
{
	return (tlen >= 5 && memcmp(topic, "chat/", 5) == 0) ||
	       (tlen >= 14 && memcmp(topic, "$CONTROL/chat/", 14) == 0);
}

static void pair_pub(conn *c, const char *topic, size_t tlen, const uint8_t *pl, size_t plen)
{
	if (c->role == 2) { /* the --iot-sub client: it must never see the chat namespace */
		iot_msgs++;
		if (under_chat(topic, tlen)) {
			iot_chat++;
			res.errors++;
		}
		return;
	}
	pair *p = &pairs[c->idx / 2];
	if (!is_dm) {
		if (c->role == 1 && plen >= 16) {
			uint64_t k;
			memcpy(&k, pl + 8, 8);
			delivered(p, k, pl, plen);
		}
		return;
	}
	ev e;
	if (parse_ev(pl, plen, &e)) {
		res.errors++;
		return;
	}
	if (txt_is(e.k, e.klen, "msg") && c->role == 1) {
		if (!txt_is(e.conv, e.convlen, p->conv))
			res.errors++;
		delivered(p, e.seq, e.body, e.bodylen);
	} else if (txt_is(e.k, e.klen, "sent") && c->role == 0) {
		p->sent_ev++;
		sent_ev_all++;
		n_sent_evs++;
	} else if (txt_is(e.k, e.klen, "receipt") && c->role == 0) {
		p->receipts_seen += (long)e.nseqs;
		receipts_all += (long)e.nseqs;
		n_receipt_evs++;
	} else if (txt_is(e.k, e.klen, "sents") && c->role == 0) {
		/* v2: gathered confirmations; a `dl` user is that seq's delivered receipt */
		p->sent_ev += (long)e.nitems;
		sent_ev_all += (long)e.nitems;
		p->receipts_seen += (long)e.ndl;
		receipts_all += (long)e.ndl;
		n_sents_evs++;
	} else if (txt_is(e.k, e.klen, "rcpts") && c->role == 0) {
		p->receipts_seen += (long)e.nrseqs;
		receipts_all += (long)e.nrseqs;
		n_rcpts_evs++;
	} else if (txt_is(e.k, e.klen, "ctl") && e.has_rid) {
		if (!e.ok) {
			caps_refused++;
			report_error_ev("caps", &e);
		} else if (caps_got && !caps_got[c->idx]) {
			caps_got[c->idx] = true;
			caps_replies++;
			if (e.has_server)
				srv_puback_delivered = e.puback_delivered;
		}
	} else if (txt_is(e.k, e.klen, "error")) {
		res.errors++;
		report_error_ev(c->role ? "receiver" : "sender", &e);
	}
}

static void pair_ack(conn *c, uint16_t mid)
{
	(void)mid;
	if (c->role == 0) {
		pairs[c->idx / 2].acked++;
		acked_all++;
	}
}

static char (*names)[72];
static char (*toks)[64];

/* ------------------------------------------------------------ xmpp */

/* The same pairs over XMPP (mode xmpp, a chat server as the peer:
 * docs/BENCHMARKS.md): raw XMPP on this loop. Each device logs in (SASL
 * PLAIN, no TLS on loopback, like the MQTT side), binds resource "d",
 * enables stream management (XEP-0198) and sends its initial presence. A
 * send is a chat message to the receiver's bare JID with a body of --body
 * bytes (the send time and number, hex, then filler) and a XEP-0184
 * receipt request, followed by an <r/>: the server's <a/> stands in for
 * the PUBACK. The receiver answers each message with its XEP-0184
 * <received/> (and an <r/>), and every <r/> of the server with an <a/>.
 * The tiny scanner below splits the stream into top-level elements; it
 * trusts the server's XML (quotes in tags, no CDATA, no comments). */

enum { X_FEATURES1, X_REGISTER, X_AUTH, X_FEATURES2, X_BIND, X_SM, X_READY };

typedef struct xstate {
	int state;
	uint64_t in_h;   /* stanzas received since <enabled/> (XEP-0198's h) */
	uint64_t out_n;  /* stanzas sent since <enable/> */
	uint64_t acked;  /* the server's last h for ours */
} xstate;

static xstate *xs;
static long x_acks_in, x_r_in, x_fail_shown, x_receipts_sent, x_receipts_acked;

static void xsend(conn *c, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		die("xmpp: stanza too long");
	memcpy(wreserve(c, (size_t)n), buf, (size_t)n);
}

static void x_stream_header(conn *c)
{
	xsend(c, "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
	         "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>",
	      o.xmpp_domain);
}

static void x_auth(conn *c)
{
	char plain[200], b64[300];
	size_t ul = strlen(names[c->idx]);
	plain[0] = '\0';
	memcpy(plain + 1, names[c->idx], ul);
	plain[1 + ul] = '\0';
	memcpy(plain + 2 + ul, "bench", 5);
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)plain, ul + 7,
	                  sodium_base64_VARIANT_ORIGINAL);
	xsend(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
}

static void x_fail(conn *c, const char *what, const uint8_t *el, size_t len)
{
	if (x_fail_shown++ < 3)
		fprintf(stderr, "chatbench: xmpp %s: %s: %.*s\n", names[c->idx], what, (int)(len > 300 ? 300 : len),
		        (const char *)el);
	c->connack = true;
	c->connack_rc = 1;
}

/* A send: the body carries the intended send time and the pair's counter k. */
static void xmpp_send(pair *p, uint64_t intended, uint64_t k)
{
	char body[2048];
	int n = snprintf(body, sizeof(body), "%016" PRIx64 "%016" PRIx64, intended, k);
	for (int i = n; i < o.body && i < (int)sizeof(body) - 1; i++)
		body[i] = (char)('a' + i % 26);
	body[o.body < (int)sizeof(body) - 1 ? o.body : (int)sizeof(body) - 1] = '\0';
	xsend(p->snd, "<message to='%s@%s' id='%" PRIu64 "' type='chat'><body>%s</body>"
	              "<request xmlns='urn:xmpp:receipts'/></message><r xmlns='urn:xmpp:sm:3'/>",
	      names[p->rcv->idx], o.xmpp_domain, k, body);
	xs[p->snd->idx].out_n++;
}

static void x_ready_element(conn *c, const uint8_t *el, size_t len)
{
	xstate *x = &xs[c->idx];
	pair *p = &pairs[c->idx / 2];
	size_t vl = 0;
	const uint8_t *v;
	if (x_name_is(el, len, "r")) {
		xsend(c, "<a xmlns='urn:xmpp:sm:3' h='%" PRIu64 "'/>", x->in_h);
		x_r_in++;
		return;
	}
	if (x_name_is(el, len, "a")) {
		v = x_attr(el, len, "h", &vl);
		uint64_t h = v ? strtoull((const char *)v, NULL, 10) : 0;
		x_acks_in++;
		if (h > x->acked) {
			/* h counts the initial presence (stanza 1) too */
			uint64_t before = x->acked > 1 ? x->acked - 1 : 0, now = h > 1 ? h - 1 : 0;
			if (c->role == 0) {
				p->acked += (long)(now - before);
				acked_all += (long)(now - before);
			} else {
				x_receipts_acked += (long)(now - before);
			}
			x->acked = h;
		}
		return;
	}
	if (x_name_is(el, len, "message") || x_name_is(el, len, "presence") || x_name_is(el, len, "iq"))
		x->in_h++;
	if (!x_name_is(el, len, "message"))
		return;
	v = x_attr(el, len, "type", &vl);
	if (v && vl == 5 && memcmp(v, "error", 5) == 0) {
		res.errors++;
		if (x_fail_shown++ < 3)
			fprintf(stderr, "chatbench: xmpp error: %.*s\n", (int)(len > 300 ? 300 : len), (const char *)el);
		return;
	}
	const uint8_t *b = memmem(el, len, "<body>", 6);
	if (c->role == 1 && b && (size_t)(el + len - b) >= 6 + 32) {
		uint8_t raw[16];
		uint64_t sent_at = hex64(b + 6), k = hex64(b + 22);
		memcpy(raw, &sent_at, 8);
		memcpy(raw + 8, &k, 8);
		/* the XEP-0184 receipt to the sender's full JID, with its <r/> */
		xsend(c, "<message to='%s@%s/d' id='r%" PRIu64 "'><received xmlns='urn:xmpp:receipts' id='%" PRIu64
		         "'/></message><r xmlns='urn:xmpp:sm:3'/>",
		      names[p->snd->idx], o.xmpp_domain, k, k);
		x->out_n++;
		x_receipts_sent++;
		delivered(p, k, raw, sizeof(raw));
	} else if (c->role == 0 && x_has(el, len, "<received")) {
		p->receipts_seen++;
		receipts_all++;
	}
}

static void x_element(conn *c, int kind, const uint8_t *el, size_t len)
{
	xstate *x = &xs[c->idx];
	if (kind == 3 || (kind == 2 && x_name_is(el, len, "stream:error"))) {
		x_fail(c, "stream closed", el, len);
		res.errors++;
		conn_close(c);
		return;
	}
	if (kind != 2)
		return;
	switch (x->state) {
	case X_FEATURES1:
		if (!x_name_is(el, len, "stream:features"))
			return;
		if (o.xmpp_register) {
			xsend(c, "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username>"
			         "<password>bench</password></query></iq>", names[c->idx]);
			x->state = X_REGISTER;
		} else {
			x_auth(c);
			x->state = X_AUTH;
		}
		return;
	case X_REGISTER: {
		size_t vl = 0;
		const uint8_t *t = x_attr(el, len, "type", &vl);
		if (!x_name_is(el, len, "iq"))
			return;
		if ((t && vl == 6 && memcmp(t, "result", 6) == 0) || x_has(el, len, "<conflict")) {
			x_auth(c);
			x->state = X_AUTH;
		} else {
			x_fail(c, "registration refused", el, len);
		}
		return;
	}
	case X_AUTH:
		if (x_name_is(el, len, "success")) {
			x_stream_header(c);
			x->state = X_FEATURES2;
		} else if (x_name_is(el, len, "failure")) {
			x_fail(c, "authentication failed", el, len);
		}
		return;
	case X_FEATURES2:
		if (!x_name_is(el, len, "stream:features"))
			return;
		xsend(c, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
		         "<resource>d</resource></bind></iq>");
		x->state = X_BIND;
		return;
	case X_BIND:
		if (!x_name_is(el, len, "iq"))
			return;
		if (!x_has(el, len, "type='result'") && !x_has(el, len, "type=\"result\"")) {
			x_fail(c, "bind refused", el, len);
			return;
		}
		xsend(c, "<enable xmlns='urn:xmpp:sm:3'/>");
		x->state = X_SM;
		return;
	case X_SM:
		if (x_name_is(el, len, "enabled")) {
			xsend(c, "<presence/>");
			x->out_n = 1;
			x->state = X_READY;
			c->connack = true; /* connect_all: up */
			c->connack_rc = 0;
		} else if (x_name_is(el, len, "failed")) {
			x_fail(c, "stream management refused", el, len);
		}
		return;
	default:
		x_ready_element(c, el, len);
	}
}

static void xmpp_parse(conn *c)
{
	size_t off = 0;
	while (off < c->rlen && !c->closed) {
		int kind = 0;
		size_t n = xml_item(c->rb + off, c->rlen - off, &kind);
		if (!n)
			break;
		x_element(c, kind, c->rb + off, n);
		off += n;
	}
	if (c->closed)
		return;
	if (off) {
		memmove(c->rb, c->rb + off, c->rlen - off);
		c->rlen -= off;
	}
	if (c->rlen > 1u << 20) {
		fprintf(stderr, "chatbench: xmpp: an element over 1 MiB, or XML this scanner does not take\n");
		conn_close(c);
	}
}

static bool x_all_acked(void)
{
	for (int i = 0; i < npairs * 2; i++)
		if (xs[i].state == X_READY && xs[i].acked < xs[i].out_n && !pairs[i / 2].snd->closed)
			return false;
	return true;
}

/* chat/ctl {op: "caps", rid, caps: [...]} from o.caps ("sents,rcpts"; "" = v1 forms) */
static void publish_caps(conn *c, uint64_t rid)
{
	size_t n = 0;
	for (const char *q = o.caps; *q; q++)
		n += *q == ',';
	n += *o.caps ? 1 : 0;
	cbw_reset(&sw);
	cbw_map(&sw, 3);
	cbw_text(&sw, "op");
	cbw_text(&sw, "caps");
	cbw_text(&sw, "rid");
	cbw_uint(&sw, rid);
	cbw_text(&sw, "caps");
	cbw_array(&sw, n);
	for (const char *q = o.caps; *q;) {
		size_t l = strcspn(q, ",");
		char name[32];
		snprintf(name, sizeof(name), "%.*s", (int)(l < 31 ? l : 31), q);
		cbw_text(&sw, name);
		q += l;
		if (*q == ',')
			q++;
	}
	mq_publish(c, "chat/ctl", sw.buf, sw.len, 1);
}

/* The documented start-up order: CONNECT, chat/ctl caps (wait for its
 * PUBACK), then SUBSCRIBE to the inbox (so an auto replay uses the caps). */
static bool pair_presub(conn *c, int i)
{
	if (i == npairs * 2)
		return false; /* the --iot-sub client */
	publish_caps(c, 1);
	return true;
}

static bool caps_all_replied(void)
{
	return caps_replies + caps_refused >= (long)npairs * 2 || n_closed;
}

static conn *g_caps_conns;
static int g_caps_n;

static bool caps_acked(void)
{
	for (int i = 0; i < g_caps_n; i++)
		if (!g_caps_conns[i].closed && g_caps_conns[i].unacked)
			return false;
	return true;
}

static void open_pair_conn(conn *c, int i)
{
	if (i == npairs * 2) { /* --iot-sub */
		char id[80];
		snprintf(id, sizeof(id), "%s-iot", run);
		c->role = 2;
		conn_open(c, id, NULL, NULL, NULL);
		return;
	}
	pair *p = &pairs[i / 2];
	c->role = i % 2; /* 0 sender, 1 receiver */
	if (i % 2 == 0)
		p->snd = c;
	else
		p->rcv = c;
	if (is_xmpp) {
		tcp_open(c);
		x_stream_header(c);
	} else if (is_dm) {
		char addr[80], will[120];
		snprintf(addr, sizeof(addr), "%s/d", names[i]);
		snprintf(will, sizeof(will), "chat/presence/%s", addr);
		conn_open(c, addr, addr, toks[i], will);
	} else {
		char id[80];
		snprintf(id, sizeof(id), "%s-%c%d", run, i % 2 ? 's' : 'p', i / 2);
		conn_open(c, id, NULL, NULL, NULL);
	}
}

static const char *pair_topic(int i)
{
	if (i == npairs * 2)
		return o.iot_sub;
	pair *p = &pairs[i / 2];
	if (is_xmpp)
		return NULL; /* ready once logged in (x_element) */
	if (!is_dm)
		return i % 2 ? p->send_topic : NULL;
	return i % 2 ? p->rcv_inbox : p->snd_inbox;
}

static bool all_done(void)
{
	if (delivered_all < total || acked_all < total)
		return false;
	if (is_dm && (sent_ev_all < total || receipts_all < total))
		return false;
	if (is_xmpp && receipts_all < total)
		return false;
	return true;
}

/* --warmup (open loop only): one message per pair, paced at --rate, all of
 * it through (deliveries, acks, confirmations, receipts), before measuring:
 * a conversation's first message does once-only work (the dm's
 * conversation record, caches), which a short run at a low rate per pair
 * would otherwise mostly measure. Then the counters start over; seqs and
 * counters continue (the receivers expect 2 next). */
static void warm_up(void)
{
	long saved = total;
	total = npairs;
	uint64_t t0 = now_ns(), end = t0 + 120ull * 1000000000u;
	double interval = 1e9 / o.rate;
	long next = 0;
	const uint64_t ack_delay = (uint64_t)o.ack_delay_us * 1000u;
	while (!all_done() && !n_closed && now_ns() < end) {
		uint64_t t = now_ns();
		while (next < npairs && t0 + (uint64_t)((double)next * interval) <= t) {
			send_one(&pairs[next], t);
			next++;
		}
		if (is_dm)
			flush_due_receipts(t, ack_delay);
		loop_once(2000000);
	}
	if (!all_done())
		die("warm-up: %ld of %d delivered, %ld acked, %ld confirmed, %ld receipts", delivered_all, npairs,
		    acked_all, sent_ev_all, receipts_all);
	info("warm-up: one message per pair in %.2fs", (double)(now_ns() - t0) / 1e9);
	total = saved;
	scheduled = delivered_all = acked_all = sent_ev_all = receipts_all = receipts_sent = 0;
	n_sent_evs = n_sents_evs = n_receipt_evs = n_rcpts_evs = 0;
	x_receipts_sent = x_receipts_acked = x_acks_in = x_r_in = 0;
	iot_msgs = iot_chat = 0;
	res.l.n = 0;
	for (int i = 0; i < npairs; i++)
		pairs[i].delivered = pairs[i].acked = pairs[i].sent_ev = pairs[i].receipts_seen = 0;
}

static void make_pair_names(const char *a, const char *b)
{
	names = xcalloc((size_t)npairs * 2, sizeof(*names));
	toks = xcalloc((size_t)npairs * 2, sizeof(*toks));
	for (int i = 0; i < npairs; i++) {
		snprintf(names[2 * i], sizeof(names[0]), "%s%s%d", run, a, i);
		snprintf(names[2 * i + 1], sizeof(names[0]), "%s%s%d", run, b, i);
	}
}

static void conv_name(char *out, size_t n, const char *u1, const char *u2)
{
	if (strcmp(u1, u2) < 0)
		snprintf(out, n, "dm:%s:%s", u1, u2);
	else
		snprintf(out, n, "dm:%s:%s", u2, u1);
}

static int mode_pairs(bool dm)
{
	is_dm = dm;
	npairs = o.pairs;
	total = o.msgs;
	if (total < npairs)
		total = npairs;
	pairs = xcalloc((size_t)npairs, sizeof(pair));
	bodybuf = xcalloc(1, (size_t)o.body + 16);
	for (int i = 16; i < o.body; i++)
		bodybuf[i] = (uint8_t)('a' + i % 26);
	cbw_init(&sw);
	int nconns = npairs * 2 + (o.iot_sub ? 1 : 0);
	conn *cs = xcalloc((size_t)nconns, sizeof(conn));
	make_pair_names("s", "r");
	for (int i = 0; i < npairs; i++) {
		pair *p = &pairs[i];
		p->expect = 1;
		if (dm) {
			snprintf(p->send_topic, sizeof(p->send_topic), "chat/dm/%s", names[2 * i + 1]);
			conv_name(p->conv, sizeof(p->conv), names[2 * i], names[2 * i + 1]);
			snprintf(p->snd_inbox, sizeof(p->snd_inbox), "chat/inbox/%s/d", names[2 * i]);
			snprintf(p->rcv_inbox, sizeof(p->rcv_inbox), "chat/inbox/%s/d", names[2 * i + 1]);
		} else {
			snprintf(p->send_topic, sizeof(p->send_topic), "bench/%s/%d", run, i);
		}
	}
	if (dm)
		provision((long)npairs * 2, names, "d", toks);
	if (is_xmpp) {
		if (o.iot_sub || o.caps)
			die("xmpp: --iot-sub and --caps are MQTT options");
		xs = xcalloc((size_t)nconns, sizeof(xstate));
		stream_parse = xmpp_parse;
	}
	on_pub = pair_pub;
	on_ack = pair_ack;
	if (dm && o.caps) {
		caps_got = xcalloc((size_t)nconns, sizeof(bool));
		g_presub = pair_presub;
	}
	int up = connect_all(cs, nconns, open_pair_conn, pair_topic, 60);
	g_presub = NULL;
	if (up < nconns && is_xmpp)
		for (int i = 0, shown = 0; i < nconns && shown < 5; i++)
			if (xs[i].state != X_READY && shown++ < 5)
				fprintf(stderr, "chatbench: xmpp %s stuck in state %d, %zu bytes unparsed: %.*s\n", names[i],
				        xs[i].state, cs[i].rlen, (int)(cs[i].rlen > 200 ? 200 : cs[i].rlen),
				        cs[i].rb ? (const char *)cs[i].rb : "");
	if (up < nconns)
		die("only %d of %d connections came up", up, nconns);
	if (dm && o.caps) {
		/* The reply to a caps request made before the SUBSCRIBE may not
		 * reach the device (nothing was subscribed yet): those that have
		 * none ask again (the same set: nothing changes) now. */
		loop_until(caps_all_replied, 2);
		for (int i = 0; i < npairs * 2; i++)
			if (!caps_got[i])
				publish_caps(&cs[i], 2);
		if (!loop_until(caps_all_replied, 30) || caps_refused)
			die("caps: %ld of %d devices got a ctl reply, %ld refused", caps_replies, npairs * 2,
			    caps_refused);
		/* the caps requests' PUBACKs are not sends: wait for them, then count from 0 */
		g_caps_conns = cs;
		g_caps_n = npairs * 2;
		loop_until(caps_acked, 10);
		acked_all = 0;
		for (int i = 0; i < npairs; i++)
			pairs[i].acked = 0;
		if (srv_puback_delivered == 1 && !o.no_receipts) {
			info("the server counts PUBACKs as delivered receipts: no app receipts");
			o.no_receipts = true;
		}
	}

	if (o.warmup && o.rate > 0)
		warm_up();
	cpu_mark m0 = cpu_now();
	t_start = now_ns();
	uint64_t deadline = t_start + (uint64_t)o.timeout_s * 1000000000u;
	if (o.rate <= 0) {
		for (int i = 0; i < npairs; i++)
			for (int k = 0; k < o.window && pairs[i].sent < per_pair(i); k++)
				send_one(&pairs[i], t_start);
	}
	const uint64_t ack_delay = (uint64_t)o.ack_delay_us * 1000u;
	double interval = o.rate > 0 ? 1e9 / o.rate : 0;
	long next_k = 0;
	uint64_t last_receipt_scan = t_start;
	while (!all_done()) {
		uint64_t t = now_ns();
		if (t > deadline)
			break;
		uint64_t wait = 5000000u;
		if (o.rate > 0 && next_k < total) {
			uint64_t due = t_start + (uint64_t)((double)next_k * interval);
			while (due <= t && next_k < total) {
				pair *p = &pairs[next_k % npairs];
				send_one(p, due);
				next_k++;
				due = t_start + (uint64_t)((double)next_k * interval);
			}
			if (next_k < total && due - t < wait)
				wait = due - t;
		}
		if (dm && t - last_receipt_scan >= ack_delay / 4) {
			last_receipt_scan = t;
			flush_due_receipts(t, ack_delay);
		}
		if (dm && wait > ack_delay / 4)
			wait = ack_delay / 4;
		loop_once(wait);
		if (n_closed)
			break;
	}
	flush_dirty();
	cpu_since(&res, m0);
	res.msgs = delivered_all;
	res.secs = (double)((t_last_delivery > t_start ? t_last_delivery : now_ns()) - t_start) / 1e9;
	for (int i = 0; i < npairs; i++) {
		long want = per_pair(i);
		if (pairs[i].delivered < want)
			res.lost += want - pairs[i].delivered;
	}
	char extra[768];
	int n = snprintf(extra, sizeof(extra), "pairs=%d window=%d offered=%.0f acked=%ld warmup=%d", npairs,
	                 o.rate > 0 ? 0 : o.window, o.rate, acked_all, o.warmup && o.rate > 0);
	if (dm)
		n += snprintf(extra + n, sizeof(extra) - (size_t)n,
		              " sent_events=%ld receipts_seen=%ld ack_batch=%d ack_delay_us=%d receipts_sent=%ld"
		              " caps=%s puback_delivered=%d sender_events=%ld ev_sent=%ld ev_sents=%ld"
		              " ev_receipt=%ld ev_rcpts=%ld",
		              sent_ev_all, receipts_all, o.ack_batch, o.ack_delay_us, receipts_sent,
		              o.caps ? (*o.caps ? o.caps : "none") : "v1", srv_puback_delivered,
		              n_sent_evs + n_sents_evs + n_receipt_evs + n_rcpts_evs, n_sent_evs, n_sents_evs,
		              n_receipt_evs, n_rcpts_evs);
	if (is_xmpp) {
		/* the receivers' receipts are acked too; a moment for the last <a/>s */
		loop_until(x_all_acked, 2);
		n += snprintf(extra + n, sizeof(extra) - (size_t)n,
		              " receipts_seen=%ld receipts_sent=%ld receipts_acked=%ld sm_acks_in=%ld sm_r_in=%ld"
		              " domain=%s",
		              receipts_all, x_receipts_sent, x_receipts_acked, x_acks_in, x_r_in, o.xmpp_domain);
	}
	if (o.iot_sub) /* the filter as a value: no spaces in it, '#' and '+' as they are */
		snprintf(extra + n, sizeof(extra) - (size_t)n, " iot_sub=%s iot_sub_msgs=%ld iot_sub_chat=%ld",
		         o.iot_sub, iot_msgs, iot_chat);
	if (acked_all < total || (dm && (sent_ev_all < total || receipts_all < total)) ||
	    (is_xmpp && receipts_all < total))
		res.errors++;
	if (dm && o.no_receipts && receipts_all == 0 && delivered_all > 0)
		fprintf(stderr, "chatbench: --no-receipts, and no receipt reached the senders: does the "
		        "broker deliver on PUBACK (broker-patches/, plugin_opt_delivered_on_puback)?\n");
	if (n_closed)
		res.errors++;
	print_result(&res, extra);
	return all_done() && !n_closed && !res.lost && !res.dup && !res.order_err && !res.errors ? 0 : 1;
}

/* ------------------------------------------------------------ replay */

static long rp_acked, rp_sent_ev, rp_got, rp_pubs, rp_batches, rp_ctl_ok;
static int rp_open_base;
static bool rp_done;
static uint64_t rp_expect = 1;
static pair rp; /* snd = the sender, rcv = the offline device */
/* --live-rate: lp.snd sends to lp.rcv, both online, during the drain */
static pair lp;
static lat lp_lat;
static long lp_got;

/* One event the replaying device got (alone, or an element of a batch). */
static void replay_ev(conn *c, const ev *e)
{
	if (txt_is(e->k, e->klen, "sent")) {
		rp_sent_ev++;
	} else if (txt_is(e->k, e->klen, "msg") && c == rp.rcv) {
		rp_got++;
		if (e->seq < rp_expect) {
			res.dup++;
		} else {
			if (e->seq != rp_expect)
				res.order_err++;
			rp_expect = e->seq + 1;
		}
		rp.batch[rp.nbatch++] = e->seq;
		if (rp.nbatch >= o.ack_batch)
			send_receipt(&rp);
	} else if (txt_is(e->k, e->klen, "sync") && e->done && c == rp.rcv) {
		rp_done = true;
		send_receipt(&rp);
	} else if (txt_is(e->k, e->klen, "ctl") && c == rp.rcv) {
		if (e->ok)
			rp_ctl_ok++;
		else
			report_error_ev("caps", e);
	} else if (txt_is(e->k, e->klen, "error")) {
		res.errors++;
		report_error_ev("replay", e);
	}
}

/* {k: "batch", evs: [...]} (docs/PROTOCOL.md §5): each element in order.
 * -1: malformed. */
static int replay_batch(conn *c, const uint8_t *pl, size_t plen)
{
	cbr r;
	cbr_item m, k, v;
	cbr_init(&r, pl, plen);
	if (cbr_next(&r, &m) || m.type != CBR_MAP)
		return -1;
	uint64_t i = 0;
	while (cbr_map_next(&r, &m, &i, &k)) {
		if (cbr_next(&r, &v))
			return -1;
		if (v.type != CBR_ARRAY || !cbr_eq(&k, "evs")) {
			if (cbr_skip(&r, &v))
				return -1;
			continue;
		}
		rp_batches++;
		uint64_t j = 0;
		while (cbr_array_next(&r, &v, &j)) {
			const uint8_t *at = r.p;
			cbr_item el;
			ev e;
			if (cbr_next(&r, &el) || cbr_skip(&r, &el) || parse_ev(at, (size_t)(r.p - at), &e))
				return -1;
			replay_ev(c, &e);
		}
	}
	return r.err_msg ? -1 : 0;
}

/* The live pair: a msg at lp.rcv (its body carries when it was sent). */
static void live_ev(conn *c, const ev *e)
{
	if (c != lp.rcv || !txt_is(e->k, e->klen, "msg"))
		return;
	uint64_t t = now_ns(), sent_at = 0, k = 0;
	if (e->bodylen >= 16) {
		memcpy(&sent_at, e->body, 8);
		memcpy(&k, e->body + 8, 8);
	}
	if (!txt_is(e->conv, e->convlen, lp.conv) || k != e->seq)
		res.errors++;
	if (e->seq < lp.expect) {
		res.dup++;
		return;
	}
	if (e->seq != lp.expect)
		res.order_err++;
	lp.expect = e->seq + 1;
	lp_got++;
	lat_add(&lp_lat, t > sent_at ? t - sent_at : 0);
	lp.batch[lp.nbatch++] = e->seq;
	if (lp.nbatch >= o.ack_batch)
		send_receipt(&lp);
}

static void replay_pub(conn *c, const char *topic, size_t tlen, const uint8_t *pl, size_t plen)
{
	(void)topic;
	(void)tlen;
	ev e;
	if (parse_ev(pl, plen, &e)) {
		res.errors++;
		return;
	}
	if (c == lp.snd || c == lp.rcv) {
		if (txt_is(e.k, e.klen, "error")) {
			res.errors++;
			report_error_ev("live", &e);
		}
		live_ev(c, &e);
		return;
	}
	if (c == rp.rcv)
		rp_pubs++;
	if (txt_is(e.k, e.klen, "batch")) {
		if (replay_batch(c, pl, plen))
			res.errors++;
		return;
	}
	replay_ev(c, &e);
}

static void replay_ack(conn *c, uint16_t mid)
{
	(void)mid;
	if (c == rp.snd) {
		rp_acked++;
		if (rp.sent < total)
			send_one(&rp, now_ns());
	}
}

static void open_rp(conn *c, int i)
{
	char addr[80], will[120];
	i += rp_open_base;
	snprintf(addr, sizeof(addr), "%s/d", names[i]);
	snprintf(will, sizeof(will), "chat/presence/%s", addr);
	conn_open(c, addr, addr, toks[i], will);
}

static const char *rp_topic(int i)
{
	switch (i + rp_open_base) {
	case 0: return rp.snd_inbox;
	case 2: return lp.snd_inbox;
	case 3: return lp.rcv_inbox;
	default: return rp.rcv_inbox;
	}
}

static bool rp_rcv_acked(void)
{
	return rp.rcv->closed || (rp.rcv->unacked == 0 && rp_ctl_ok > 0);
}

static bool lp_all_in(void)
{
	return lp.rcv->closed || lp_got >= lp.sent;
}

/* --caps: chat/ctl {op: "caps", rid: 1, caps: [...]} from "a,b" */
static void rp_publish_caps(conn *c)
{
	size_t n = *o.caps ? 1 : 0;
	for (const char *q = o.caps; *q; q++)
		n += *q == ',';
	cbw_reset(&sw);
	cbw_map(&sw, 3);
	cbw_text(&sw, "op"); cbw_text(&sw, "caps");
	cbw_text(&sw, "rid"); cbw_uint(&sw, 1);
	cbw_text(&sw, "caps");
	cbw_array(&sw, n);
	for (const char *q = o.caps; *q;) {
		size_t l = strcspn(q, ",");
		cbw_textn(&sw, q, l);
		q += l + (q[l] == ',');
	}
	mq_publish(c, "chat/ctl", sw.buf, sw.len, 1);
}

static bool rp_fill_done(void)
{
	return rp.snd->closed || (rp_acked >= total && rp_sent_ev >= total);
}

static bool rp_drain_done(void)
{
	return rp.rcv->closed || rp_done;
}

static bool rp_rcv_flushed(void)
{
	return rp.rcv->closed || rp.rcv->unacked == 0;
}

static int mode_replay(void)
{
	is_dm = true;
	total = o.msgs;
	npairs = 1;
	bool live = o.live_rate > 0;
	int ndev = live ? 4 : 2;
	names = xcalloc((size_t)ndev, sizeof(*names));
	toks = xcalloc((size_t)ndev, sizeof(*toks));
	snprintf(names[0], sizeof(names[0]), "%sq", run);
	snprintf(names[1], sizeof(names[0]), "%so", run);
	if (live) { /* the live pair: 2 sends to 3, both online */
		snprintf(names[2], sizeof(names[0]), "%sls", run);
		snprintf(names[3], sizeof(names[0]), "%slr", run);
		snprintf(lp.send_topic, sizeof(lp.send_topic), "chat/dm/%s", names[3]);
		conv_name(lp.conv, sizeof(lp.conv), names[2], names[3]);
		snprintf(lp.snd_inbox, sizeof(lp.snd_inbox), "chat/inbox/%s/d", names[2]);
		snprintf(lp.rcv_inbox, sizeof(lp.rcv_inbox), "chat/inbox/%s/d", names[3]);
		lp.expect = 1;
	}
	bodybuf = xcalloc(1, (size_t)o.body + 16);
	cbw_init(&sw);
	snprintf(rp.send_topic, sizeof(rp.send_topic), "chat/dm/%s", names[1]);
	conv_name(rp.conv, sizeof(rp.conv), names[0], names[1]);
	snprintf(rp.snd_inbox, sizeof(rp.snd_inbox), "chat/inbox/%s/d", names[0]);
	snprintf(rp.rcv_inbox, sizeof(rp.rcv_inbox), "chat/inbox/%s/d", names[1]);
	provision(ndev, names, "d", toks);
	on_pub = replay_pub;
	on_ack = replay_ack;

	/* fill: the sender alone, the receiver has never connected */
	conn *cs = xcalloc((size_t)ndev, sizeof(conn));
	if (connect_all(cs, 1, open_rp, rp_topic, 10) < 1)
		die("sender did not connect");
	rp.snd = &cs[0];
	uint64_t t0 = now_ns();
	/* send_one counts in rp.sent; the window is PUBACK-based here */
	for (int k = 0; k < 64 && rp.sent < total; k++)
		send_one(&rp, t0);
	/* replay_ack sends more as PUBACKs come back */
	while (!rp_fill_done()) {
		if (now_ns() - t0 > (uint64_t)o.timeout_s * 1000000000u)
			die("fill timed out: %ld of %ld acked", rp_acked, total);
		loop_once(5000000);
	}
	double fill_secs = (double)(now_ns() - t0) / 1e9;
	info("queued %ld messages in %.2fs", total, fill_secs);

	/* drain: the offline device connects, then subscribes to its inbox,
	 * which starts its replay on either broker (docs/PROTOCOL.md §5). A
	 * chat/sync as well would be a second replay once the first has ended:
	 * everything not yet acknowledged, again; hence --sync only for a
	 * broker with plugin_opt_auto_replay false. */
	if (live) {
		rp_open_base = 2;
		if (connect_all(cs + 2, 2, open_rp, rp_topic, 10) < 2)
			die("the live pair did not connect");
		lp.snd = &cs[2];
		lp.rcv = &cs[3];
	}
	rp_open_base = 1;
	if (connect_all(cs + 1, 1, open_rp, NULL, 10) < 1)
		die("receiver did not connect");
	rp.rcv = &cs[1];
	if (o.caps) {
		/* the documented order: CONNECT, chat/ctl caps and its PUBACK (and
		 * here its reply), then SUBSCRIBE, which starts the replay */
		rp_publish_caps(rp.rcv);
		if (!loop_until(rp_rcv_acked, 10))
			die("caps: no ctl reply (ok) to the replaying device");
	}
	rp_pubs = 0;
	cpu_mark m0 = cpu_now();
	uint64_t ts = now_ns();
	mq_subscribe(rp.rcv, rp.rcv_inbox, 1);
	if (o.sync)
		mq_publish(rp.rcv, "chat/sync", "\xa0", 1, 1);
	bool ok;
	if (!live) {
		ok = loop_until(rp_drain_done, o.timeout_s);
	} else {
		/* open loop: the live pair sends at --live-rate during the drain;
		 * each latency counts from when its send was due */
		uint64_t interval = (uint64_t)(1e9 / o.live_rate), due = ts;
		uint64_t end = ts + (uint64_t)o.timeout_s * 1000000000u;
		while (!rp_drain_done() && now_ns() < end) {
			uint64_t t = now_ns();
			for (; due <= t; due += interval)
				send_one(&lp, due);
			uint64_t wait = due - t;
			loop_once(wait < 5000000u ? wait : 5000000u);
		}
		ok = rp_drain_done();
	}
	uint64_t te = now_ns();
	cpu_since(&res, m0);
	loop_until(rp_rcv_flushed, 10);
	if (live) {
		if (!loop_until(lp_all_in, 10))
			res.lost += lp.sent - lp_got;
		send_receipt(&lp);
	}
	res.msgs = rp_got;
	res.secs = (double)(te - ts) / 1e9;
	if (rp_got < total)
		res.lost = total - rp_got;
	if (!ok)
		res.errors++;
	char extra[512];
	int n = snprintf(extra, sizeof(extra), "queued=%ld fill_secs=%.3f fill_rate=%.0f ack_batch=%d "
	                 "done=%d caps=%s publishes=%ld batches=%ld", total, fill_secs,
	                 (double)total / fill_secs, o.ack_batch, rp_done, o.caps ? o.caps : "v1",
	                 rp_pubs, rp_batches);
	if (live) {
		if (lp_lat.n)
			qsort(lp_lat.v, lp_lat.n, sizeof(uint64_t), cmp_u64);
		snprintf(extra + n, sizeof(extra) - (size_t)n, " live_rate=%.0f live_msgs=%ld live_p50_us=%.0f "
		         "live_p99_us=%.0f live_max_us=%.0f", o.live_rate, lp_got, lat_pct_us(&lp_lat, 0.5),
		         lat_pct_us(&lp_lat, 0.99), lat_pct_us(&lp_lat, 1.0));
	}
	print_result(&res, extra);
	return ok && !res.lost && !res.dup && !res.order_err && !res.errors ? 0 : 1;
}

/* ------------------------------------------------------------ keys */

typedef struct kdev {
	uint8_t ik_pk[crypto_sign_PUBLICKEYBYTES], ik_sk[crypto_sign_SECRETKEYBYTES];
	uint8_t spk_pk[crypto_box_PUBLICKEYBYTES], spk_sk[crypto_box_SECRETKEYBYTES];
	uint8_t sig[crypto_sign_BYTES];
	int uploads_left, uploads_ok;
	uint64_t next_opk;
	char req_topic[160], resp_topic[160];
	long outstanding;
	uint64_t next_rid;
} kdev;

static kdev *kd;
static int n_up, n_fetch;
static long k_upload_ok, k_upload_fail, k_bundles, k_with_opk, k_bad, k_verified, k_sent;
static uint64_t *k_sent_at; /* per fetcher, per rid % window: send time */

static void k_upload(conn *c)
{
	kdev *d = &kd[c->idx];
	int nopk = o.opks - d->uploads_ok * 100;
	if (nopk > 100)
		nopk = 100;
	if (nopk < 0)
		nopk = 0;
	cbw_reset(&sw);
	cbw_map(&sw, nopk ? 5 : 4);
	cbw_text(&sw, "op");
	cbw_text(&sw, "upload");
	cbw_text(&sw, "rid");
	cbw_uint(&sw, d->next_rid++);
	cbw_text(&sw, "ik");
	cbw_bytes(&sw, d->ik_pk, 32);
	cbw_text(&sw, "spk");
	cbw_map(&sw, 3);
	cbw_text(&sw, "id");
	cbw_uint(&sw, 1);
	cbw_text(&sw, "key");
	cbw_bytes(&sw, d->spk_pk, 32);
	cbw_text(&sw, "sig");
	cbw_bytes(&sw, d->sig, 64);
	if (nopk) {
		cbw_text(&sw, "opks");
		cbw_array(&sw, (size_t)nopk);
		uint8_t key[32];
		for (int i = 0; i < nopk; i++) {
			/* any 32 bytes are a valid X25519 public key; the server does not look */
			randombytes_buf(key, sizeof(key));
			cbw_map(&sw, 2);
			cbw_text(&sw, "id");
			cbw_uint(&sw, d->next_opk++);
			cbw_text(&sw, "key");
			cbw_bytes(&sw, key, 32);
		}
	}
	mq_publish(c, d->req_topic, sw.buf, sw.len, 1);
}

static void k_bundle(conn *c)
{
	kdev *d = &kd[c->idx];
	int target = (int)((d->next_rid * 7 + (uint64_t)c->idx) % (uint64_t)n_up);
	cbw_reset(&sw);
	cbw_map(&sw, 3);
	cbw_text(&sw, "op");
	cbw_text(&sw, "bundle");
	cbw_text(&sw, "rid");
	cbw_uint(&sw, d->next_rid);
	cbw_text(&sw, "user");
	cbw_text(&sw, names[target]);
	k_sent_at[(size_t)(c->idx - n_up) * (size_t)o.window + d->next_rid % (uint64_t)o.window] = now_ns();
	d->next_rid++;
	d->outstanding++;
	k_sent++;
	mq_publish(c, d->req_topic, sw.buf, sw.len, 1);
}

static void keys_pub(conn *c, const char *topic, size_t tlen, const uint8_t *pl, size_t plen)
{
	(void)topic;
	(void)tlen;
	kdev *d = &kd[c->idx];
	ev e;
	if (parse_ev(pl, plen, &e) || !e.has_rid) {
		res.errors++;
		return;
	}
	if (c->idx < n_up) { /* uploader */
		if (!e.ok) {
			k_upload_fail++;
			report_error_ev("upload", &e);
			return;
		}
		d->uploads_ok++;
		if (--d->uploads_left > 0)
			k_upload(c);
		else
			k_upload_ok++;
		return;
	}
	d->outstanding--;
	if (!e.ok) {
		k_bad++;
		report_error_ev("bundle", &e);
	} else {
		int target = (int)((e.rid * 7 + (uint64_t)c->idx) % (uint64_t)n_up);
		kdev *t = &kd[target];
		bool good = e.ndev == 1 && e.ik && e.iklen == 32 && memcmp(e.ik, t->ik_pk, 32) == 0 &&
		            e.spk_key && e.spklen == 32 && memcmp(e.spk_key, t->spk_pk, 32) == 0 &&
		            e.spk_sig && e.siglen == 64;
		/* check the signature on every bundle with --verify, else on 1 in 64 */
		if (good && (o.verify || (k_bundles & 63) == 0)) {
			good = crypto_sign_verify_detached(e.spk_sig, e.spk_key, 32, e.ik) == 0;
			k_verified++;
		}
		if (good) {
			k_bundles++;
			k_with_opk += e.has_opk;
		} else {
			k_bad++;
		}
		uint64_t at = k_sent_at[(size_t)(c->idx - n_up) * (size_t)o.window + e.rid % (uint64_t)o.window];
		uint64_t t0 = now_ns();
		lat_add(&res.l, t0 > at ? t0 - at : 0);
	}
	if (k_sent < total)
		k_bundle(c);
}

static bool k_uploads_done(void)
{
	return k_upload_ok + k_upload_fail >= n_up || n_closed;
}

static bool k_fetch_done(void)
{
	return k_bundles + k_bad >= total || n_closed;
}

static void open_kdev(conn *c, int i)
{
	char addr[80], will[120];
	snprintf(addr, sizeof(addr), "%s/d", names[i]);
	snprintf(will, sizeof(will), "chat/presence/%s", addr);
	conn_open(c, addr, addr, toks[i], will);
}

static const char *kdev_topic(int i)
{
	return kd[i].resp_topic;
}

static int mode_keys(void)
{
	if (sodium_init() < 0)
		die("sodium_init failed");
	n_up = o.users;
	n_fetch = o.fetchers;
	total = o.msgs;
	int n = n_up + n_fetch;
	names = xcalloc((size_t)n, sizeof(*names));
	toks = xcalloc((size_t)n, sizeof(*toks));
	kd = xcalloc((size_t)n, sizeof(kdev));
	k_sent_at = xcalloc((size_t)n_fetch * (size_t)o.window, sizeof(uint64_t));
	cbw_init(&sw);
	for (int i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[0]), "%s%c%d", run, i < n_up ? 'k' : 'f', i);
		snprintf(kd[i].req_topic, sizeof(kd[i].req_topic), "chat/keys/req/%s/d", names[i]);
		snprintf(kd[i].resp_topic, sizeof(kd[i].resp_topic), "chat/keys/resp/%s/d", names[i]);
		kd[i].next_rid = 1;
		kd[i].next_opk = 1;
		if (i < n_up) {
			crypto_sign_keypair(kd[i].ik_pk, kd[i].ik_sk);
			crypto_box_keypair(kd[i].spk_pk, kd[i].spk_sk);
			crypto_sign_detached(kd[i].sig, NULL, kd[i].spk_pk, 32, kd[i].ik_sk);
			kd[i].uploads_left = o.opks > 0 ? (o.opks + 99) / 100 : 1;
		}
	}
	provision(n, names, "d", toks);
	on_pub = keys_pub;
	on_ack = NULL;
	conn *cs = xcalloc((size_t)n, sizeof(conn));
	if (connect_all(cs, n, open_kdev, kdev_topic, 30) < n)
		die("not every key device connected");
	uint64_t t0 = now_ns();
	for (int i = 0; i < n_up; i++)
		k_upload(&cs[i]);
	if (!loop_until(k_uploads_done, o.timeout_s) || k_upload_fail)
		die("uploads failed: %ld ok, %ld refused (is chat-keyserver running?)", k_upload_ok,
		    k_upload_fail);
	double up_secs = (double)(now_ns() - t0) / 1e9;
	info("%d devices uploaded %d one-time keys each in %.2fs", n_up, o.opks, up_secs);

	cpu_mark m0 = cpu_now();
	uint64_t ts = now_ns();
	for (int i = n_up; i < n; i++)
		for (int k = 0; k < o.window && k_sent < total; k++)
			k_bundle(&cs[i]);
	bool ok = loop_until(k_fetch_done, o.timeout_s);
	uint64_t te = now_ns();
	cpu_since(&res, m0);
	res.msgs = k_bundles;
	res.secs = (double)(te - ts) / 1e9;
	res.lost = total - k_bundles - k_bad;
	res.errors += k_bad;
	if (!ok || n_closed)
		res.errors++;
	char extra[320];
	snprintf(extra, sizeof(extra),
	         "users=%d fetchers=%d window=%d opks_per_device=%d bundles_ok=%ld with_opk=%ld "
	         "sig_verified=%ld bad=%ld upload_secs=%.3f",
	         n_up, n_fetch, o.window, o.opks, k_bundles, k_with_opk, k_verified, k_bad, up_secs);
	print_result(&res, extra);
	return ok && !res.lost && !res.errors ? 0 : 1;
}

/* ------------------------------------------------------------ idle */

static void open_idle(conn *c, int i)
{
	if (o.stock) {
		char id[80], will[120];
		snprintf(id, sizeof(id), "%si%d/d", run, i);
		snprintf(will, sizeof(will), "idle/presence/%s", id);
		conn_open(c, id, NULL, NULL, will);
	} else {
		char addr[80], will[120];
		snprintf(addr, sizeof(addr), "%s/d", names[i]);
		snprintf(will, sizeof(will), "chat/presence/%s", addr);
		conn_open(c, addr, addr, toks[i], will);
	}
}

static const char *idle_topic(int i)
{
	static char t[160];
	if (o.stock)
		snprintf(t, sizeof(t), "idle/inbox/%si%d/d", run, i);
	else
		snprintf(t, sizeof(t), "chat/inbox/%s/d", names[i]);
	return t;
}

static int mode_idle(void)
{
	int n = o.conns;
	if (!o.stock) {
		names = xcalloc((size_t)n, sizeof(*names));
		toks = xcalloc((size_t)n, sizeof(*toks));
		for (int i = 0; i < n; i++)
			snprintf(names[i], sizeof(names[0]), "%si%d", run, i);
		provision(n, names, "d", toks);
		/* close the admin connection so it does not count */
		conn_close(&admin);
		n_closed = 0;
	}
	usleep(500000);
	long rss0 = proc_rss_kb(o.broker_pid);
	cpu_mark m0 = cpu_now();
	uint64_t t0 = now_ns();
	conn *cs = xcalloc((size_t)n, sizeof(conn));
	int up = connect_all(cs, n, open_idle, idle_topic, o.timeout_s);
	double secs = (double)(now_ns() - t0) / 1e9;
	cpu_since(&res, m0);
	/* let the broker settle, keep serving the sockets */
	uint64_t settle = now_ns() + 1000000000u;
	while (now_ns() < settle)
		loop_once(50000000);
	long rss1 = proc_rss_kb(o.broker_pid);
	double per = up > 0 && rss0 >= 0 ? (double)(rss1 - rss0) * 1024.0 / up : 0;
	printf("mode=idle run=%s kind=%s conns=%d up=%d connect_secs=%.3f connect_rate=%.0f "
	       "rss_base_kb=%ld rss_kb=%ld rss_per_conn_bytes=%.0f broker_cpu_us_per_conn=%.1f closed=%ld",
	       run, o.stock ? "stock" : "chat", n, up, secs, up / secs, rss0, rss1, per,
	       res.broker_cpu >= 0 && up ? (double)res.broker_cpu / up : -1, n_closed);
	if (o.label)
		printf(" %s", o.label);
	printf(" ok=%d\n", up == n && !n_closed);
	fflush(stdout);
	return up == n && !n_closed ? 0 : 1;
}

/* ------------------------------------------------------------ fanout */

/* One sender and a group of M members, one device each (docs/BENCHMARKS.md).
 * Connections: f_conns[0] is the sender, f_conns[i] (1..M) member i; a
 * connection's idx is that index. The sender's k-th send (k = 1..K) carries
 * its send time and k in the body, so a member checks that the message with
 * seq s is send number s - gseq (gseq = the seq of the group's `created`
 * event that member got), and that seqs come in order without gaps.
 *
 * live (default): every member is online; the sender keeps --window sends
 *   not yet delivered to every member. Deliveries/s = K*M / (first send ->
 *   last delivery); latency = a send -> its delivery to the last member.
 * --offline: only the sender is connected; the sends are stored and queued
 *   for every member. The rate is queue entries (K*M) per second from the
 *   first send to the last PUBACK + `sent`, with --window PUBACKs
 *   outstanding. Then the first and the last member connect and sync, and
 *   must get the `created` event and all K messages in order.
 * --stock: the same shape on a broker without the plugin: anonymous
 *   members subscribed (QoS 1) to one topic, a QoS 1 publisher. */

static int f_m;          /* members */
static long f_k;         /* sends */
static int f_open_base;  /* index of the first connection connect_all opens */
static char f_gid[64], f_conv[80], f_topic[96];
static conn *f_snd;
static pair *f_mem;      /* [0..M]: rcv (the connection), conv, receipt batch, expect */
static uint64_t *f_gseq; /* per member: the seq of its `created` event, 0 before it */
static uint64_t *f_sent_at;
static int *f_got;       /* per send k: members that got it */
static long f_next;      /* sends made */
static long f_complete, f_deliveries, f_acked, f_sent_ev, f_receipt_seqs, f_group_evs;
static bool f_ctl_done, f_ctl_ok, f_measuring, f_sync_done[2];
static uint64_t f_t_fill; /* offline: the last PUBACK or `sent` */
static uint64_t f_ctl_seq;
static long f_synced_got[2];

static void f_send(void)
{
	long k = ++f_next;
	uint64_t t = now_ns();
	f_sent_at[k] = t;
	memcpy(bodybuf, &t, 8);
	uint64_t kk = (uint64_t)k;
	memcpy(bodybuf + 8, &kk, 8);
	if (o.stock) {
		mq_publish(f_snd, f_topic, bodybuf, (size_t)o.body, 1);
		return;
	}
	cbw_reset(&sw);
	cbw_map(&sw, 2);
	cbw_text(&sw, "cid");
	cbw_uint(&sw, kk);
	cbw_text(&sw, "body");
	cbw_bytes(&sw, bodybuf, (size_t)o.body);
	mq_publish(f_snd, f_topic, sw.buf, sw.len, 1);
}

static void f_delivered(long k, uint64_t t)
{
	f_deliveries++;
	t_last_delivery = t;
	if (++f_got[k] < f_m)
		return;
	lat_add(&res.l, t > f_sent_at[k] ? t - f_sent_at[k] : 0);
	f_complete++;
	if (f_next < f_k)
		f_send(); /* closed loop: the window is "not yet at every member" */
}

/* A message with seq (or stock counter) s and body at member p. */
static void f_member_msg(int i, uint64_t s, const uint8_t *body, size_t blen)
{
	pair *p = &f_mem[i];
	uint64_t t = now_ns();
	if (s < p->expect) {
		res.dup++;
		return;
	}
	if (s != p->expect)
		res.order_err++;
	p->expect = s + 1;
	uint64_t k = 0;
	if (blen >= 16)
		memcpy(&k, body + 8, 8);
	uint64_t want = o.stock ? s : s - f_gseq[i];
	if (k != want || k < 1 || k > (uint64_t)f_k) {
		res.order_err++;
		return;
	}
	if (!o.stock) {
		if (!p->nbatch)
			p->batch_t0 = t;
		p->batch[p->nbatch++] = s;
		if (p->nbatch >= o.ack_batch)
			send_receipt(p);
	}
	if (!o.offline)
		f_delivered((long)k, t);
}

static void fan_pub(conn *c, const char *topic, size_t tlen, const uint8_t *pl, size_t plen)
{
	(void)topic;
	(void)tlen;
	int i = c->idx;
	if (o.stock) {
		if (i > 0 && plen >= 16) {
			uint64_t k;
			memcpy(&k, pl + 8, 8);
			f_member_msg(i, k, pl, plen);
		}
		return;
	}
	ev e;
	if (parse_ev(pl, plen, &e)) {
		res.errors++;
		return;
	}
	pair *p = &f_mem[i];
	if (txt_is(e.k, e.klen, "msg") && i > 0) {
		if (!txt_is(e.conv, e.convlen, f_conv) || !f_gseq[i])
			res.errors++;
		f_member_msg(i, e.seq, e.body, e.bodylen);
		if (o.offline)
			f_synced_got[i == f_m]++;
	} else if (txt_is(e.k, e.klen, "group")) {
		/* the `created` event: the first of the conversation for everyone */
		if (!txt_is(e.conv, e.convlen, f_conv) || f_gseq[i])
			res.errors++;
		f_gseq[i] = e.seq;
		p->expect = e.seq + 1;
		f_group_evs++;
		if (!p->nbatch)
			p->batch_t0 = now_ns();
		p->batch[p->nbatch++] = e.seq;
		if (p->nbatch >= o.ack_batch)
			send_receipt(p);
	} else if (txt_is(e.k, e.klen, "sent") && i == 0) {
		f_sent_ev++;
		f_t_fill = now_ns();
	} else if (txt_is(e.k, e.klen, "receipt") && i == 0) {
		f_receipt_seqs += (long)e.nseqs;
	} else if (txt_is(e.k, e.klen, "ctl") && i == 0 && e.has_rid && e.rid == 1) {
		f_ctl_done = true;
		f_ctl_ok = e.ok;
		f_ctl_seq = e.seq;
		if (!e.ok)
			report_error_ev("group.create", &e);
	} else if (txt_is(e.k, e.klen, "sync") && e.done && i > 0) {
		f_sync_done[i == f_m] = true;
		send_receipt(p);
	} else if (txt_is(e.k, e.klen, "error")) {
		res.errors++;
		report_error_ev(i ? "member" : "sender", &e);
	}
}

static void fan_ack(conn *c, uint16_t mid)
{
	(void)mid;
	if (c != f_snd || !f_measuring)
		return; /* the group.create request, receipts */
	f_acked++;
	f_t_fill = now_ns();
	if (o.offline && f_next < f_k)
		f_send(); /* offline: the window is PUBACKs outstanding */
}

static void open_fan(conn *c, int i)
{
	i += f_open_base;
	c->idx = i;
	f_mem[i].rcv = c;
	if (o.stock) {
		char id[80];
		snprintf(id, sizeof(id), "%s-%c%d", run, i ? 'm' : 's', i);
		conn_open(c, id, NULL, NULL, NULL);
	} else {
		char addr[80], will[120];
		snprintf(addr, sizeof(addr), "%s/d", names[i]);
		snprintf(will, sizeof(will), "chat/presence/%s", addr);
		conn_open(c, addr, addr, toks[i], will);
	}
}

static const char *fan_topic(int i)
{
	static char t[160];
	i += f_open_base;
	if (o.stock)
		return i ? f_topic : NULL;
	snprintf(t, sizeof(t), "chat/inbox/%s/d", names[i]);
	return t;
}

static bool f_ctl_replied(void)
{
	return f_ctl_done || n_closed;
}

static bool f_created_seen(void)
{
	return f_group_evs >= (o.offline ? 1 : f_m + 1) || n_closed;
}

static bool f_quiet(void)
{
	for (int i = 0; i <= f_m; i++)
		if (f_mem[i].rcv && !f_mem[i].rcv->closed && f_mem[i].rcv->unacked)
			return false;
	return true;
}

static bool f_delivered_all(void)
{
	return f_deliveries >= f_k * f_m && f_acked >= f_k;
}

static bool f_live_done(void)
{
	if (!f_delivered_all())
		return false;
	return o.stock || (f_sent_ev >= f_k && f_receipt_seqs >= f_k * f_m);
}

static bool f_fill_done(void)
{
	return f_acked >= f_k && f_sent_ev >= f_k;
}

static bool f_synced(void)
{
	return (f_sync_done[0] && f_sync_done[1]) || n_closed;
}

/* Flushes receipt batches older than the delay (every batch when force). */
static void f_flush_receipts(uint64_t t, bool force)
{
	const uint64_t delay = (uint64_t)o.ack_delay_us * 1000u;
	for (int i = 0; i <= f_m; i++)
		if (f_mem[i].nbatch && (force || t - f_mem[i].batch_t0 >= delay))
			send_receipt(&f_mem[i]);
}

/* Runs the loop until done() (or a closed connection, or the deadline),
 * flushing partial receipt batches after --ack-delay-us. */
static bool f_run(cond_fn done, uint64_t deadline)
{
	const uint64_t delay = (uint64_t)o.ack_delay_us * 1000u;
	uint64_t last_scan = now_ns();
	while (!done()) {
		uint64_t t = now_ns();
		if (t > deadline || n_closed)
			break;
		if (!o.stock && t - last_scan >= delay / 4) {
			last_scan = t;
			f_flush_receipts(t, false);
		}
		loop_once(o.stock ? 5000000u : delay / 4);
	}
	flush_dirty();
	return done();
}

static int mode_fanout(void)
{
	f_m = o.members;
	f_k = o.msgs_set ? o.msgs : 200;
	if (o.offline && o.stock)
		die("--offline needs the chat plugin (not --stock)");
	int n = f_m + 1;
	names = xcalloc((size_t)n, sizeof(*names));
	toks = xcalloc((size_t)n, sizeof(*toks));
	f_mem = xcalloc((size_t)n, sizeof(pair));
	f_gseq = xcalloc((size_t)n, sizeof(uint64_t));
	f_sent_at = xcalloc((size_t)f_k + 1, sizeof(uint64_t));
	f_got = xcalloc((size_t)f_k + 1, sizeof(int));
	bodybuf = xcalloc(1, (size_t)o.body + 16);
	for (int i = 16; i < o.body; i++)
		bodybuf[i] = (uint8_t)('a' + i % 26);
	cbw_init(&sw);
	snprintf(f_gid, sizeof(f_gid), "%sg", run);
	snprintf(f_conv, sizeof(f_conv), "g:%s", f_gid);
	if (o.stock)
		snprintf(f_topic, sizeof(f_topic), "bench/%s/fan", run);
	else
		snprintf(f_topic, sizeof(f_topic), "chat/group/%s", f_gid);
	for (int i = 0; i < n; i++) {
		if (i)
			snprintf(names[i], sizeof(names[0]), "%sm%d", run, i);
		else
			snprintf(names[i], sizeof(names[0]), "%ss", run);
		snprintf(f_mem[i].conv, sizeof(f_mem[i].conv), "%s", f_conv);
		f_mem[i].expect = 1;
	}
	uint64_t tp = now_ns();
	if (!o.stock)
		provision(n, names, "d", toks);
	double prov_secs = (double)(now_ns() - tp) / 1e9;
	on_pub = fan_pub;
	on_ack = fan_ack;
	conn *cs = xcalloc((size_t)n, sizeof(conn));
	int want = o.offline ? 1 : n;
	int up = connect_all(cs, want, open_fan, fan_topic, 60);
	if (up < want)
		die("only %d of %d connections came up", up, want);
	f_snd = &cs[0];

	/* the group: the sender creates it with every member */
	double create_secs = 0;
	if (!o.stock) {
		cbw w;
		cbw_init(&w);
		cbw_map(&w, 5);
		cbw_text(&w, "op");
		cbw_text(&w, "group.create");
		cbw_text(&w, "rid");
		cbw_uint(&w, 1);
		cbw_text(&w, "gid");
		cbw_text(&w, f_gid);
		cbw_text(&w, "name");
		cbw_text(&w, "bench fan-out");
		cbw_text(&w, "members");
		cbw_array(&w, (size_t)f_m);
		for (int i = 1; i < n; i++)
			cbw_text(&w, names[i]);
		uint64_t tc = now_ns();
		mq_publish(f_snd, "chat/ctl", w.buf, w.len, 1);
		cbw_free(&w);
		if (!loop_until(f_ctl_replied, 60) || !f_ctl_ok)
			die("group.create of %d members was not accepted (plugin_opt_max_group_size?)", f_m);
		create_secs = (double)(now_ns() - tc) / 1e9;
		/* wait for the `created` event everywhere, acknowledge it, let it settle */
		if (!f_run(f_created_seen, now_ns() + 60ull * 1000000000u))
			die("the group's created event reached %ld of %d devices", f_group_evs, want);
		f_flush_receipts(now_ns(), true);
		loop_until(f_quiet, 30);
		if (f_gseq[0] != f_ctl_seq)
			res.errors++;
		info("group %s of %d members created in %.3fs", f_gid, f_m, create_secs);
	}

	cpu_mark m0 = cpu_now();
	t_start = now_ns();
	t_last_delivery = 0;
	f_measuring = true;
	uint64_t deadline = t_start + (uint64_t)o.timeout_s * 1000000000u;
	for (int k = 0; k < o.window && f_next < f_k; k++)
		f_send();
	char extra[640];
	int ok;
	if (!o.offline) {
		/* every delivery and PUBACK; then the sender's `sent` and receipt
		 * events, for as long as they keep coming (a dropped one never does) */
		bool done = f_run(f_delivered_all, deadline);
		uint64_t grace = 2000000000u + 10u * (uint64_t)o.ack_delay_us * 1000u;
		long seen = -1;
		while (done && !f_live_done() && seen != f_sent_ev + f_receipt_seqs && !n_closed) {
			seen = f_sent_ev + f_receipt_seqs;
			f_run(f_live_done, now_ns() + grace);
		}
		bool sender_ok = f_live_done();
		cpu_since(&res, m0);
		res.msgs = f_deliveries;
		res.secs = (double)((t_last_delivery > t_start ? t_last_delivery : now_ns()) - t_start) / 1e9;
		res.lost = f_k * f_m - f_deliveries;
		if (res.lost < 0)
			res.lost = 0;
		if (!done || n_closed)
			res.errors++;
		/* ok= is the members' side (every seq once, in order) and the PUBACKs;
		 * the sender's events are reported on their own (sender_ok=) */
		snprintf(extra, sizeof(extra),
		         "kind=%s members=%d sends=%ld window=%d sends_per_s=%.0f acked=%ld sent_events=%ld "
		         "receipt_seqs=%ld receipts_sent=%ld ack_batch=%d ack_delay_us=%d complete=%ld "
		         "sender_missing_sent=%ld sender_missing_receipt_seqs=%ld sender_ok=%d "
		         "total_secs=%.3f provision_secs=%.3f create_secs=%.3f",
		         o.stock ? "stock" : "chat", f_m, f_k, o.window,
		         res.secs > 0 ? (double)f_complete / res.secs : 0, f_acked, f_sent_ev, f_receipt_seqs,
		         receipts_sent, o.ack_batch, o.ack_delay_us, f_complete,
		         o.stock ? 0 : f_k - f_sent_ev, o.stock ? 0 : f_k * f_m - f_receipt_seqs, sender_ok,
		         (double)res.cpu_wall_us / 1e6, prov_secs, create_secs);
		print_result(&res, extra);
		ok = done && !n_closed && !res.lost && !res.dup && !res.order_err && !res.errors;
		return ok ? 0 : 1;
	}

	/* offline: store and queue only */
	bool filled = f_run(f_fill_done, deadline);
	uint64_t te = f_t_fill > t_start ? f_t_fill : now_ns();
	cpu_since(&res, m0);
	res.msgs = f_acked * f_m; /* queue entries written */
	res.secs = (double)(te - t_start) / 1e9;
	if (!filled || n_closed)
		res.errors++;
	/* check: the first and the last member sync and get everything in order */
	/* connected first, then subscribed: the SUBSCRIBE starts each replay
	 * (no chat/sync too: see mode_replay) */
	f_open_base = 1;
	if (connect_all(cs + 1, 1, open_fan, NULL, 30) < 1)
		die("member 1 did not connect");
	f_open_base = f_m;
	if (connect_all(cs + f_m, 1, open_fan, NULL, 30) < 1)
		die("member %d did not connect", f_m);
	f_open_base = 0;
	uint64_t ts = now_ns();
	mq_subscribe(&cs[1], fan_topic(1), 1);
	mq_subscribe(&cs[f_m], fan_topic(f_m), 1);
	if (o.sync) {
		mq_publish(&cs[1], "chat/sync", "\xa0", 1, 1);
		mq_publish(&cs[f_m], "chat/sync", "\xa0", 1, 1);
	}
	bool synced = f_run(f_synced, now_ns() + (uint64_t)o.timeout_s * 1000000000u);
	double sync_secs = (double)(now_ns() - ts) / 1e9;
	f_flush_receipts(now_ns(), true);
	loop_until(f_quiet, 10);
	long checked = 2;
	for (int j = 0; j < 2; j++)
		if (f_synced_got[j] < f_k)
			res.lost += f_k - f_synced_got[j];
	if (!synced || f_group_evs < 1 + checked)
		res.errors++;
	snprintf(extra, sizeof(extra),
	         "kind=offline members=%d sends=%ld window=%d sends_per_s=%.0f acked=%ld sent_events=%ld "
	         "queue_entries=%ld checked_members=%ld synced_msgs=%ld sync_secs=%.3f "
	         "provision_secs=%.3f create_secs=%.3f",
	         f_m, f_k, o.window, res.secs > 0 ? (double)f_acked / res.secs : 0, f_acked, f_sent_ev,
	         f_acked * f_m, checked, f_synced_got[0] + f_synced_got[1], sync_secs,
	         prov_secs, create_secs);
	print_result(&res, extra);
	ok = filled && synced && !n_closed && !res.lost && !res.dup && !res.order_err && !res.errors;
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fputs("usage: chatbench MODE [options]\n"
	      "modes: relay dm xmpp replay keys idle fanout\n"
	      "  -h, --host HOST            broker address (127.0.0.1)\n"
	      "  -p, --port PORT            broker port (1883)\n"
	      "  --broker-pid PID           measure this broker's CPU (/proc/PID/stat) and RSS\n"
	      "  --ks-pid PID               measure chat-keyserver's CPU too (keys)\n"
	      "  --admin-token-file FILE    the plugin's admin.token (provisioning devices)\n"
	      "  --pairs N                  relay/dm: sender/receiver pairs (8)\n"
	      "  --msgs N                   messages (relay, dm), queued messages (replay),\n"
	      "                             bundle fetches (keys) (20000); fanout: sends (200)\n"
	      "  --rate R                   relay/dm: offered msgs/s, open loop (0 = max, closed loop)\n"
	      "  --window W                 relay/dm: messages per pair sent but not yet delivered;\n"
	      "                             fanout: sends not yet at every member (--offline: PUBACKs);\n"
	      "                             keys: requests in flight per fetcher (16)\n"
	      "  --ack-batch B              dm/replay/fanout: seqs per delivered receipt (50)\n"
	      "  --ack-delay-us US          dm/fanout: flush a partial receipt batch after this (20000)\n"
	      "  --no-receipts              dm/replay/fanout: send no delivered receipts; a broker built\n"
	      "                             with broker-patches/ delivers on the device's PUBACK\n"
	      "  --caps LIST                dm: every device declares these capabilities (protocol v2,\n"
	      "                             e.g. sents,rcpts) with chat/ctl caps before it subscribes; with\n"
	      "                             the server's puback_delivered it sends no delivered receipts;\n"
	      "                             replay: the replaying device declares them (e.g. batch)\n"
	      "  --xmpp-domain D            xmpp: the server's domain (localhost)\n"
	      "  --xmpp-register            xmpp: register the users in-band (XEP-0077) before logging in\n"
	      "                             (\"already exists\" is fine)\n"
	      "  --warmup                   relay/dm/xmpp with --rate: one message per pair first (paced at\n"
	      "                             the rate, all delivered and acknowledged), not measured\n"
	      "  --iot-sub FILTER           relay/dm: one more, anonymous, client subscribed to FILTER\n"
	      "                             (QoS 1), e.g. '#'; anything of chat/ reaching it is an error\n"
	      "  --conns N                  idle: connections (1000)\n"
	      "  --stock                    idle, fanout: anonymous clients (a broker without the plugin)\n"
	      "  --members M                fanout: group members, one device each (1000)\n"
	      "  --offline                  fanout: members offline; measure stored queue entries/s\n"
	      "  --live-rate R              replay: a second pair sends live dms at R msgs/s during the\n"
	      "                             drain; reports their latency (live_p99_us)\n"
	      "  --sync                     replay, fanout --offline: publish chat/sync after the inbox\n"
	      "                             SUBSCRIBE (a broker with plugin_opt_auto_replay false)\n"
	      "  --users N --opks K         keys: devices that upload, one-time keys each (64, 200)\n"
	      "  --fetchers N               keys: devices that fetch bundles (16)\n"
	      "  --verify                   keys: verify every bundle's signature (else 1 in 64)\n"
	      "  --run-id ID                prefix for user names and topics (random)\n"
	      "  --label K=V                appended to the result line\n"
	      "  --timeout S                give up after S seconds (120)\n"
	      "  -v                         progress on stderr\n"
	      "  --help, --version          this help; the version\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "broker-pid", 1, 0, 1 },
		{ "ks-pid", 1, 0, 2 }, { "admin-token-file", 1, 0, 3 }, { "pairs", 1, 0, 4 },
		{ "msgs", 1, 0, 5 }, { "rate", 1, 0, 6 }, { "window", 1, 0, 7 },
		{ "ack-batch", 1, 0, 8 }, { "ack-delay-us", 1, 0, 9 }, { "conns", 1, 0, 10 },
		{ "stock", 0, 0, 11 }, { "users", 1, 0, 12 }, { "opks", 1, 0, 13 },
		{ "fetchers", 1, 0, 14 }, { "verify", 0, 0, 15 }, { "run-id", 1, 0, 16 },
		{ "label", 1, 0, 17 }, { "timeout", 1, 0, 18 }, { "help", 0, 0, 19 },
		{ "members", 1, 0, 20 }, { "offline", 0, 0, 21 }, { "sync", 0, 0, 22 },
		{ "no-receipts", 0, 0, 23 }, { "iot-sub", 1, 0, 24 }, { "version", 0, 0, 25 },
		{ "caps", 1, 0, 26 }, { "live-rate", 1, 0, 40 }, { "xmpp-domain", 1, 0, 27 },
		{ "xmpp-register", 0, 0, 28 }, { "warmup", 0, 0, 29 },
		{ 0, 0, 0, 0 }
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "h:p:v", lo, NULL)) != -1) {
		switch (ch) {
		case 'h': o.host = optarg; break;
		case 'p': o.port = atoi(optarg); break;
		case 'v': verbose = 1; break;
		case 1: o.broker_pid = atoi(optarg); break;
		case 2: o.ks_pid = atoi(optarg); break;
		case 3: o.admin_token_file = optarg; break;
		case 4: o.pairs = atoi(optarg); break;
		case 5: o.msgs = atol(optarg); o.msgs_set = true; break;
		case 6: o.rate = atof(optarg); break;
		case 7: o.window = atoi(optarg); break;
		case 8: o.ack_batch = atoi(optarg); break;
		case 9: o.ack_delay_us = atoi(optarg); break;
		case 10: o.conns = atoi(optarg); break;
		case 11: o.stock = true; break;
		case 12: o.users = atoi(optarg); break;
		case 13: o.opks = atoi(optarg); break;
		case 14: o.fetchers = atoi(optarg); break;
		case 15: o.verify = true; break;
		case 16: o.run_id = optarg; break;
		case 17: o.label = optarg; break;
		case 18: o.timeout_s = atoi(optarg); break;
		case 19: usage(stdout); return 0;
		case 20: o.members = atoi(optarg); break;
		case 21: o.offline = true; break;
		case 22: o.sync = true; break;
		case 23: o.no_receipts = true; break;
		case 24: o.iot_sub = optarg; break;
		case 25: fputs(CHAT_VERSION_LINE("chatbench"), stdout); return 0;
		case 26: o.caps = optarg; break;
		case 40: o.live_rate = atof(optarg); break;
		case 27: o.xmpp_domain = optarg; break;
		case 28: o.xmpp_register = true; break;
		case 29: o.warmup = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	o.mode = argv[optind];
	if (o.pairs < 1 || o.msgs < 1 || o.window < 1 || o.ack_batch < 1 || o.ack_batch > 1000 ||
	    o.conns < 1 || o.users < 1 || o.fetchers < 1 || o.body < 16 || o.opks < 0 || o.opks > 1000 ||
	    o.members < 2)
		die("an option is out of range (ack-batch 1..1000, opks 0..1000, members >= 2, the rest >= 1)");

	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (o.run_id)
		snprintf(run, sizeof(run), "%s", o.run_id);
	else
		snprintf(run, sizeof(run), "b%x", (unsigned)((uint32_t)getpid() * 2654435761u ^ (uint32_t)now_ns()) & 0xffffff);
	memset(&broker_addr, 0, sizeof(broker_addr));
	broker_addr.sin_family = AF_INET;
	broker_addr.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &broker_addr.sin_addr) != 1)
		die("--host must be an IPv4 address: %s", o.host);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	res.broker_cpu = res.ks_cpu = -1;

	if (strcmp(o.mode, "relay") == 0)
		return mode_pairs(false);
	if (strcmp(o.mode, "dm") == 0)
		return mode_pairs(true);
	if (strcmp(o.mode, "xmpp") == 0) {
		is_xmpp = true;
		return mode_pairs(false);
	}
	if (strcmp(o.mode, "replay") == 0)
		return mode_replay();
	if (strcmp(o.mode, "keys") == 0)
		return mode_keys();
	if (strcmp(o.mode, "idle") == 0)
		return mode_idle();
	if (strcmp(o.mode, "fanout") == 0)
		return mode_fanout();
	usage(stderr);
	return 2;
}
