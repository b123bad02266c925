// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* main.c — chat-media: the attachment service (docs/PROTOCOL.md,
 * "Attachments"; docs/OPERATIONS.md, "chat-media").
 *
 * Two fronts on one store (media.h): the MQTT side, a service account
 * subscribed to $share/<group>/<prefix>/media/req/+/+ that answers slot and
 * grant requests on <prefix>/media/resp/U/D (the topic's U/D is the
 * requester: the broker's ACL lets only U/D publish there) and runs the
 * expiry sweep, all on this thread inside mosquitto_loop(); and the HTTP
 * side (http.h) on libmicrohttpd's threads, for the signed PUT and GET URLs
 * the MQTT side hands out.
 *
 * One process owns a data directory (an flock on DIR/media.lock, taken
 * before RocksDB is opened); a second one on the same directory stands by
 * until it is free, as the key server does.
 */
#include "chat_version.h"
#include "daemon.h"
#include "err.h"
#include "http.h"
#include "ids.h"
#include "media.h"
#include "mqtt_service.h"
#include "mqtt_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <mosquitto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOPIC_MAX 256

typedef struct server {
	const char *host, *user, *token_file, *data_dir, *group, *prefix, *secret_file;
	const char *public_url;
	int port;
	mqtt_tls tls;
	int log_level;
	media_opts mopts;
	media_http_opts hopts;
	uint32_t sweep_s;
	media *m;
	media_http *http;
	struct mosquitto *mosq;
	cbw resp;
	bool connected;
	char req_prefix[TOPIC_MAX];
	size_t req_prefix_len;
	char removed_prefix[TOPIC_MAX];
	size_t removed_prefix_len;
	time_t next_sweep;
} server;

/* ---- MQTT ---- */

/* The broker's retained notice that an admin removed U/D (docs/PROTOCOL.md
 * §7): that device will never download, so it stops holding blobs back.
 * The key server clears the notice; an empty message is a clear. A notice
 * we missed (chat-media was down until the key server cleared it) leaves
 * the blobs to their TTL. */
static void device_removed(server *s, const struct mosquitto_message *msg)
{
	const char *u, *d;
	size_t ul, dl;
	size_t tl = strlen(msg->topic);
	if (msg->payloadlen == 0 ||
	    !chat_parse_addr(msg->topic + s->removed_prefix_len, tl - s->removed_prefix_len, &u,
	                     &ul, &d, &dl))
		return;
	char addr[CHAT_ADDR_MAX + 1];
	snprintf(addr, sizeof(addr), "%.*s/%.*s", (int)ul, u, (int)dl, d);
	unsigned n = media_device_removed(s->m, addr);
	daemon_log(LOG_INFO, "device %s was removed: it no longer holds blobs back (%u deleted)",
	           addr, n);
}

static void on_message(struct mosquitto *mq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	(void)mq, (void)props;
	server *s = obj;
	const char *u, *d;
	size_t ul, dl;
	size_t tl = strlen(msg->topic);
	if (tl > s->removed_prefix_len &&
	    memcmp(msg->topic, s->removed_prefix, s->removed_prefix_len) == 0) {
		device_removed(s, msg);
		return;
	}
	if (msg->retain || tl <= s->req_prefix_len ||
	    memcmp(msg->topic, s->req_prefix, s->req_prefix_len) != 0 ||
	    !chat_parse_addr(msg->topic + s->req_prefix_len, tl - s->req_prefix_len, &u, &ul, &d,
	                     &dl)) {
		daemon_log(LOG_DEBUG, "ignoring a message on %s", msg->topic);
		return;
	}
	char user[CHAT_USER_MAX + 1], dev[CHAT_DEVICE_MAX + 1];
	memcpy(user, u, ul), user[ul] = 0;
	memcpy(dev, d, dl), dev[dl] = 0;
	const char *code = NULL;
	if (media_request(s->m, user, dev, msg->payload, (size_t)msg->payloadlen, &s->resp, &code)) {
		daemon_log(LOG_ERR, "out of memory answering %s/%s", user, dev);
		return;
	}
	if (code)
		daemon_log(LOG_DEBUG, "request from %s/%s refused: %s", user, dev, code);
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/media/resp/%s/%s", s->prefix, user, dev);
	int rc = mosquitto_publish_v5(s->mosq, NULL, topic, (int)s->resp.len, s->resp.buf, 1, false,
	                              NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		daemon_log(LOG_WARN, "publish to %s failed: %s", topic, mosquitto_strerror(rc));
}

static void on_connect(struct mosquitto *mq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	(void)flags, (void)props;
	server *s = obj;
	/* QoS 0 for the same reasons as the key server's (keyserver/main.c):
	 * a clean session redelivers nothing after a loss anyway. */
	char filter[TOPIC_MAX], removed[TOPIC_MAX];
	snprintf(filter, sizeof(filter), "$share/%s/%s/media/req/+/+", s->group, s->prefix);
	/* removal notices directly: a shared subscription gets no retained ones */
	snprintf(removed, sizeof(removed), "%s/keys/removed/+/+", s->prefix);
	char *const subs[] = { filter, removed };
	mqtt_service_subscribe(mq, s->host, s->port, rc, subs, 2, 0);
}

static void on_subscribe(struct mosquitto *mq, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
	(void)mid, (void)props;
	server *s = obj;
	if (mqtt_service_granted(mq, s->user, 2, n, granted, "serving media requests"))
		s->connected = true;
}

static void on_disconnect(struct mosquitto *mq, void *obj, int rc, const mosquitto_property *props)
{
	(void)mq, (void)props;
	server *s = obj;
	s->connected = false;
	mqtt_service_lost(rc);
}

/* The sweep runs on this thread between requests, every --sweep-interval
 * seconds, also while the broker is away. */
static void sweep(void *obj)
{
	server *s = obj;
	time_t now = daemon_mono_s();
	if (now < s->next_sweep)
		return;
	s->next_sweep = now + s->sweep_s;
	unsigned n = media_sweep(s->m, (uint64_t)time(NULL));
	if (n)
		daemon_log(LOG_INFO, "expiry sweep: %u blob(s) or slot(s) deleted", n);
}

/* ---- start-up ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: chat-media -h HOST -p PORT -u NAME --token-file FILE --data-dir DIR\n"
	        "                  [--secret-file FILE] [--http-addr ADDR] [--http-port N]\n"
	        "                  [--public-url URL] [--https-cert FILE --https-key FILE]\n"
	        "                  [--max-size BYTES] [--quota BYTES] [--ttl S] [--url-ttl S]\n"
	        "                  [--sweep-interval S] [--http-threads N] [--http-timeout S]\n"
	        "                  [--rate-burst N] [--rate-per-minute N] [--cors-origin ORIGIN]\n"
	        "                  [--share-group NAME] [--topic-prefix PREFIX]\n"
	        "                  [--log-level error|warning|info|debug]\n"
	        "                  [--cafile FILE] [--capath DIR] [--cert FILE --key FILE]\n"
	        "                  [--insecure] [--tls-version V]\n"
	        "       chat-media --help | --version\n"
	        "Stores mosquitto-chat's encrypted attachments: upload slots and download grants\n"
	        "over MQTT, signed PUT/GET URLs over HTTP(S). See docs/OPERATIONS.md, \"chat-media\".\n"
	        "BYTES take a K, M or G suffix (KiB, MiB, GiB).\n"
	        "TLS to the broker (as mosquitto_sub; docs/OPERATIONS.md, \"TLS\"):\n"
	        MQTT_TLS_USAGE);
}

static bool parse_bytes(const char *s, uint64_t min, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return false;
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M')
		shift = 20, end++;
	else if (*end == 'G')
		shift = 30, end++;
	if (*end || v > (UINT64_MAX >> 1) >> shift)
		return false;
	*out = (uint64_t)v << shift;
	return *out >= min;
}

static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX];
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		daemon_log(LOG_ERR, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/media.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		daemon_log(LOG_ERR, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	bool said = false;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			daemon_log(LOG_ERR, "cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (!said)
			daemon_log(LOG_INFO, "%s is in use by another chat-media: standing by", dir);
		said = true;
		daemon_nap(500 + randombytes_uniform(500));
		if (daemon_stopping()) {
			close(fd);
			return -1;
		}
	}
	if (said)
		daemon_log(LOG_INFO, "took over %s", dir);
	return fd;
}

enum { OPT_TOKEN = 256, OPT_DATA, OPT_SECRET, OPT_HADDR, OPT_HPORT, OPT_PUBLIC, OPT_HCERT,
       OPT_HKEY, OPT_MAX, OPT_QUOTA, OPT_TTL, OPT_URLTTL, OPT_SWEEP, OPT_THREADS, OPT_HTIMEOUT,
       OPT_BURST, OPT_RATE, OPT_CORS, OPT_GROUP, OPT_PREFIX, OPT_LOG, OPT_HELP, OPT_VERSION };

static int parse_args(server *s, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "username", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "data-dir", required_argument, NULL, OPT_DATA },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "http-addr", required_argument, NULL, OPT_HADDR },
		{ "http-port", required_argument, NULL, OPT_HPORT },
		{ "public-url", required_argument, NULL, OPT_PUBLIC },
		{ "https-cert", required_argument, NULL, OPT_HCERT },
		{ "https-key", required_argument, NULL, OPT_HKEY },
		{ "max-size", required_argument, NULL, OPT_MAX },
		{ "quota", required_argument, NULL, OPT_QUOTA },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "url-ttl", required_argument, NULL, OPT_URLTTL },
		{ "sweep-interval", required_argument, NULL, OPT_SWEEP },
		{ "http-threads", required_argument, NULL, OPT_THREADS },
		{ "http-timeout", required_argument, NULL, OPT_HTIMEOUT },
		{ "rate-burst", required_argument, NULL, OPT_BURST },
		{ "rate-per-minute", required_argument, NULL, OPT_RATE },
		{ "cors-origin", required_argument, NULL, OPT_CORS },
		{ "share-group", required_argument, NULL, OPT_GROUP },
		{ "topic-prefix", required_argument, NULL, OPT_PREFIX },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		MQTT_TLS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	uint32_t port = 0, v;
	const char *bad = NULL;
	int c;
	while (!bad && (c = getopt_long(argc, argv, "h:p:u:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': s->host = optarg; break;
		case 'p': if (!daemon_parse_u32(optarg, 1, 65535, &port)) bad = "-p"; break;
		case 'u': s->user = optarg; break;
		case OPT_TOKEN: s->token_file = optarg; break;
		case OPT_DATA: s->data_dir = optarg; break;
		case OPT_SECRET: s->secret_file = optarg; if (!*optarg) bad = "--secret-file"; break;
		case OPT_HADDR: s->hopts.addr = optarg; break;
		case OPT_HPORT:
			if (!daemon_parse_u32(optarg, 0, 65535, &v)) bad = "--http-port";
			s->hopts.port = v;
			break;
		case OPT_PUBLIC:
			s->public_url = optarg;
			if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
				bad = "--public-url";
			if (strlen(optarg) > 400)
				bad = "--public-url";
			break;
		case OPT_HCERT: s->hopts.cert = optarg; break;
		case OPT_HKEY: s->hopts.key = optarg; break;
		case OPT_MAX: if (!parse_bytes(optarg, 1, &s->mopts.max_size)) bad = "--max-size"; break;
		case OPT_QUOTA: if (!parse_bytes(optarg, 1, &s->mopts.quota)) bad = "--quota"; break;
		case OPT_TTL:
			if (!daemon_parse_u32(optarg, 1, 10 * 366 * 24 * 3600, &s->mopts.ttl_s)) bad = "--ttl";
			break;
		case OPT_URLTTL:
			if (!daemon_parse_u32(optarg, 1, 7 * 24 * 3600, &s->mopts.url_ttl_s)) bad = "--url-ttl";
			break;
		case OPT_SWEEP:
			if (!daemon_parse_u32(optarg, 1, 24 * 3600, &s->sweep_s)) bad = "--sweep-interval";
			break;
		case OPT_THREADS:
			if (!daemon_parse_u32(optarg, 1, 256, &v)) bad = "--http-threads";
			s->hopts.threads = v;
			break;
		case OPT_HTIMEOUT:
			if (!daemon_parse_u32(optarg, 1, 3600, &v)) bad = "--http-timeout";
			s->hopts.timeout_s = v;
			break;
		case OPT_BURST:
			if (!daemon_parse_u32(optarg, 1, 1000000, &s->mopts.rate_burst)) bad = "--rate-burst";
			break;
		case OPT_RATE:
			if (!daemon_parse_u32(optarg, 0, 1000000, &s->mopts.rate_per_min))
				bad = "--rate-per-minute";
			break;
		case OPT_CORS:
			s->hopts.cors_origin = optarg;
			for (const char *p = optarg; *p; p++)
				if (*p <= ' ' || *p > '~')
					bad = "--cors-origin";
			if (!*optarg)
				bad = "--cors-origin";
			break;
		case OPT_GROUP: s->group = optarg; if (!daemon_name_valid(optarg)) bad = "--share-group"; break;
		case OPT_PREFIX: s->prefix = optarg; if (!daemon_name_valid(optarg)) bad = "--topic-prefix"; break;
		case OPT_LOG:
			if (!daemon_log_level_parse(optarg, &s->log_level)) bad = "--log-level";
			break;
		case OPT_HELP: usage(stdout); exit(0);
		case OPT_VERSION: fputs(CHAT_VERSION_LINE("chat-media"), stdout); exit(0);
		default:
			if (mqtt_tls_getopt(&s->tls, c, optarg))
				break;
			usage(stderr);
			return 2;
		}
	}
	if (bad) {
		fprintf(stderr, "%schat-media: invalid value '%s' for %s (see --help and "
		        "docs/OPERATIONS.md)\n", daemon_err_prefix(), optarg ? optarg : "", bad);
		return 2;
	}
	if (optind != argc || !s->host || !port || !s->user || !s->token_file || !s->data_dir) {
		usage(stderr);
		return 2;
	}
	if (!s->hopts.cert != !s->hopts.key) {
		fprintf(stderr, "%schat-media: --https-cert and --https-key go together\n",
		        daemon_err_prefix());
		return 2;
	}
	s->port = (int)port;
	char err[512];
	if (!mqtt_tls_check(&s->tls, err, sizeof(err))) {
		fprintf(stderr, "%schat-media: %s\n", daemon_err_prefix(), err);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	server s = { .group = "media", .prefix = "chat", .log_level = LOG_INFO, .sweep_s = 60,
	             .hopts = { .addr = "127.0.0.1", .port = 8090, .threads = 4, .timeout_s = 60 } };
	media_opts_default(&s.mopts);
	int rc = parse_args(&s, argc, argv);
	if (rc)
		return rc;
	daemon_log_init("chat-media", s.log_level);
	if (sodium_init() < 0) {
		daemon_log(LOG_ERR, "libsodium failed to initialise");
		return 1;
	}
	daemon_signals_init(false);

	char token[512];
	if (!daemon_token_read(s.token_file, token, sizeof(token))) {
		daemon_log(LOG_ERR, "cannot read a token from %s", s.token_file);
		sodium_memzero(token, sizeof(token));
		return 1;
	}
	int lock_fd = lock_data_dir(s.data_dir);
	if (lock_fd < 0) {
		sodium_memzero(token, sizeof(token));
		return daemon_stopping() ? 0 : 1;
	}
	rc = 1;
	char err[PATH_MAX + 512], secret_path[PATH_MAX];
	uint8_t secret[MEDIA_SECRET_LEN];
	snprintf(secret_path, sizeof(secret_path), "%s", s.secret_file ? s.secret_file : "");
	if (!s.secret_file)
		snprintf(secret_path, sizeof(secret_path), "%s/media.secret", s.data_dir);
	cbw_init(&s.resp);
	mosquitto_lib_init();
	if (!media_secret_load(secret_path, secret, err, sizeof(err))) {
		daemon_log(LOG_ERR, "%s", err);
		goto out;
	}
	char public_url[512];
	s.mopts.dir = s.data_dir;
	s.mopts.public_url = "";
	if (media_open(&s.m, &s.mopts, secret, err, sizeof(err)) != CHAT_OK) {
		sodium_memzero(secret, sizeof(secret));
		daemon_log(LOG_ERR, "%s", err);
		goto out;
	}
	sodium_memzero(secret, sizeof(secret));
	s.http = media_http_start(s.m, &s.hopts, err, sizeof(err));
	if (!s.http) {
		daemon_log(LOG_ERR, "%s", err);
		goto out;
	}
	/* The URLs' base: the listener's own address (its port resolved when
	 * --http-port 0 asked for any) unless --public-url says (a proxy or a
	 * host name in front). Set before the MQTT side, its only reader,
	 * starts. */
	unsigned hport = media_http_port(s.http);
	if (s.public_url)
		snprintf(public_url, sizeof(public_url), "%s", s.public_url);
	else if (strchr(s.hopts.addr, ':'))
		snprintf(public_url, sizeof(public_url), "%s://[%s]:%u", s.hopts.cert ? "https" : "http",
		         s.hopts.addr, hport);
	else
		snprintf(public_url, sizeof(public_url), "%s://%s:%u", s.hopts.cert ? "https" : "http",
		         s.hopts.addr, hport);
	media_set_public_url(s.m, public_url);
	if (!s.public_url && (strcmp(s.hopts.addr, "0.0.0.0") == 0 || strcmp(s.hopts.addr, "::") == 0))
		daemon_log(LOG_WARN, "listening on every address without --public-url: the URLs "
		           "handed out name %s, which clients cannot reach", s.hopts.addr);
	daemon_log(LOG_INFO, "media store %s open (max %" PRIu64 " bytes, quota %" PRIu64
	           " bytes per user, TTL %u s, URLs valid %u s)", s.data_dir, s.mopts.max_size,
	           s.mopts.quota, s.mopts.ttl_s, s.mopts.url_ttl_s);
	daemon_log(LOG_INFO, "HTTP%s on %s port %u, URLs start %s", s.hopts.cert ? "S" : "",
	           s.hopts.addr, hport, public_url);
	s.req_prefix_len = (size_t)snprintf(s.req_prefix, sizeof(s.req_prefix), "%s/media/req/",
	                                    s.prefix);
	s.removed_prefix_len = (size_t)snprintf(s.removed_prefix, sizeof(s.removed_prefix),
	                                        "%s/keys/removed/", s.prefix);

	s.mosq = mqtt_service_client_new("chat-media", s.user, token, sizeof(token), &s.tls, &s);
	if (!s.mosq)
		goto out;
	mosquitto_connect_v5_callback_set(s.mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(s.mosq, on_subscribe);
	mosquitto_message_v5_callback_set(s.mosq, on_message);
	mosquitto_disconnect_v5_callback_set(s.mosq, on_disconnect);
	mqtt_service m = { .mosq = s.mosq, .host = s.host, .port = s.port, .loop_ms = 500,
	                   .connected = &s.connected, .tick = sweep, .idle = sweep, .obj = &s };
	if (!mqtt_service_serve(&m))
		goto out;
	mqtt_service_close(s.mosq);
	daemon_log(LOG_INFO, "stopping");
	rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	if (s.mosq)
		mosquitto_destroy(s.mosq);
	mosquitto_lib_cleanup();
	media_http_stop(s.http);
	if (s.m) {
		media_counts n;
		media_counts_get(s.m, &n);
		daemon_log(LOG_INFO, "served %" PRIu64 " slots, %" PRIu64 " grants, %" PRIu64
		           " uploads, %" PRIu64 " downloads; %" PRIu64 " refused; deleted %" PRIu64
		           " after the last download, %" PRIu64 " expired", n.slots, n.grants,
		           n.refused, n.uploads, n.downloads, n.deleted_done, n.deleted_expired);
	}
	media_close(s.m);
	cbw_free(&s.resp);
	close(lock_fd);
	return rc;
}
