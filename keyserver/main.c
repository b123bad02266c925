// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* main.c — chat-keyserver: the MQTT front of the pre-key store.
 *
 * A thin shell around keystore.h: it connects to the broker as a service
 * account (MQTT 5), subscribes to $share/<group>/<prefix>/keys/req/+/+ and
 * hands each request, with the requester's address taken from the topic (the
 * broker's ACL lets only U/D publish on .../req/U/D), to ks_request(); it
 * publishes the response on .../resp/U/D and the retained pool status on
 * .../status/U/D. Everything runs on this one thread inside mosquitto_loop(),
 * one request at a time, which is what makes a one-time key pop atomic.
 *
 * One process owns a data directory (an flock on DIR/keyserver.lock, taken
 * before RocksDB is opened). A second key server started on the same
 * directory stands by until the lock is free, then opens the store and joins
 * the same shared subscription: active/standby, never two writers.
 */
#include "chat_version.h"
#include "daemon.h"
#include "err.h"
#include "ids.h"
#include "keystore.h"
#include "mqtt_service.h"
#include "mqtt_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
	const char *host, *user, *token_file, *data_dir, *group, *prefix, *backup_dir;
	int port;
	mqtt_tls tls;
	int log_level;
	ks_opts kopts;
	ks *ks;
	struct mosquitto *mosq;
	ks_reply reply;
	cbw status_buf;
	bool connected;        /* CONNACK accepted and subscribed */
	char req_prefix[TOPIC_MAX];
	size_t req_prefix_len;
	char removed_prefix[TOPIC_MAX];
	size_t removed_prefix_len;
	uint32_t stats_interval_s;
	struct timespec next_stats;
	struct { uint64_t requests, refused_rate, refused, devices_removed; } n;
} server;

#ifdef KS_LYING
/* chat-keyserver-lying, built for the tests only (never installed):
 * CHAT_KS_LIE=logfake:U/D logs and serves an attacker's identity key for
 * U/D (a re-registration U/D never made); CHAT_KS_LIE=fork rewrites the
 * log's history (ks_test_fork). swap:RU/RD is in request.c. */
static int lying_start(server *s)
{
	const char *lie = getenv("CHAT_KS_LIE");
	uint8_t seed[32] = "chat-keyserver-lying attacker", pk[32], sk[64];
	crypto_sign_seed_keypair(pk, sk, seed);
	int rc = CHAT_OK;
	if (lie && strncmp(lie, "logfake:", 8) == 0) {
		const char *u, *d;
		size_t ul, dl;
		if (!chat_parse_addr(lie + 8, strlen(lie + 8), &u, &ul, &d, &dl))
			return -1;
		ks_spk spk = { .id = 1 };
		randombytes_buf(spk.key, sizeof spk.key);
		crypto_sign_detached(spk.sig, NULL, spk.key, KS_KEY_LEN, sk);
		uint32_t count;
		rc = ks_upload(s->ks, u, ul, d, dl, pk, &spk, NULL, 0, &count);
	} else if (lie && strcmp(lie, "fork") == 0) {
		rc = ks_test_fork(s->ks, pk);
	}
	daemon_log(LOG_WARN, "LYING key server (%s): %s", lie ? lie : "honest",
	           rc == CHAT_OK ? "ready" : ks_errmsg(s->ks));
	return rc == CHAT_OK ? 0 : -1;
}
#endif

/* ---- MQTT callbacks ---- */

static void publish(server *s, const char *kind, const char *u, const char *d,
                    const void *payload, size_t len, bool retain)
{
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/keys/%s/%s/%s", s->prefix, kind, u, d);
	int rc = mosquitto_publish_v5(s->mosq, NULL, topic, (int)len, payload, 1, retain, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		daemon_log(LOG_WARN, "publish to %s failed: %s", topic, mosquitto_strerror(rc));
}

/* Counts a request and, by its response's code, a refusal. */
static void count_reply(server *s)
{
	s->n.requests++;
	cbr r;
	cbr_item map, key, val;
	if (cbr_map_open(&r, s->reply.resp.buf, s->reply.resp.len, &map, NULL))
		return;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val))
			return;
		if (cbr_eq(&key, "ok") && val.type == CBR_BOOL && val.b)
			return;
		if (cbr_eq(&key, "code") && val.type == CBR_TEXT) {
			if (cbr_eq(&val, "rate"))
				s->n.refused_rate++;
			else
				s->n.refused++;
			return;
		}
		if (cbr_skip(&r, &val))
			return;
	}
}

/* Every --stats-interval seconds: our counters on P/keys/stats, which the
 * broker's plugin folds into its own ($SYS/broker/chat/keys_*, chatctl
 * stats). */
static void publish_stats(server *s)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!s->stats_interval_s || !s->connected || now.tv_sec < s->next_stats.tv_sec)
		return;
	s->next_stats.tv_sec = now.tv_sec + s->stats_interval_s;
	cbw_reset(&s->status_buf);
	cbw_map(&s->status_buf, 5);
	cbw_text(&s->status_buf, "requests"); cbw_uint(&s->status_buf, s->n.requests);
	cbw_text(&s->status_buf, "refused_rate"); cbw_uint(&s->status_buf, s->n.refused_rate);
	cbw_text(&s->status_buf, "refused"); cbw_uint(&s->status_buf, s->n.refused);
	cbw_text(&s->status_buf, "pool_keys"); cbw_uint(&s->status_buf, ks_keys_estimate(s->ks));
	cbw_text(&s->status_buf, "devices_removed"); cbw_uint(&s->status_buf, s->n.devices_removed);
	if (cbw_status(&s->status_buf) != 0)
		return;
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/keys/stats", s->prefix);
	int rc = mosquitto_publish_v5(s->mosq, NULL, topic, (int)s->status_buf.len,
	                              s->status_buf.buf, 0, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		daemon_log(LOG_WARN, "publish to %s failed: %s", topic, mosquitto_strerror(rc));
}

/* The broker's retained notice that an admin removed U/D: drop its keys,
 * clear its status, then clear the notice (it was acted on). An empty
 * message is a clear (ours, or the broker's when U/D is added again). */
static void device_removed(server *s, const struct mosquitto_message *msg)
{
	const char *u, *d;
	size_t ul, dl;
	size_t tl = strlen(msg->topic);
	if (msg->payloadlen == 0)
		return;
	if (!chat_parse_addr(msg->topic + s->removed_prefix_len, tl - s->removed_prefix_len, &u,
	                     &ul, &d, &dl)) {
		daemon_log(LOG_DEBUG, "ignoring a message on %s", msg->topic);
		return;
	}
	char user[CHAT_USER_MAX + 1], dev[CHAT_DEVICE_MAX + 1];
	memcpy(user, u, ul), user[ul] = 0;
	memcpy(dev, d, dl), dev[dl] = 0;
	if (ks_drop_device(s->ks, user, ul, dev, dl) != CHAT_OK) {
		daemon_log(LOG_ERR, "dropping the keys of removed device %s/%s failed: %s", user, dev,
		           ks_errmsg(s->ks));
		return; /* the notice stays: the next connection retries */
	}
	s->n.devices_removed++;
	daemon_log(LOG_INFO, "device %s/%s was removed: its keys are dropped", user, dev);
	publish(s, "status", user, dev, NULL, 0, true);
	publish(s, "removed", user, dev, NULL, 0, true);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	(void)m, (void)props;
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

	if (ks_request(s->ks, user, ul, dev, dl, msg->payload, (size_t)msg->payloadlen, &s->reply)) {
		daemon_log(LOG_ERR, "out of memory answering %s/%s", user, dev);
		return;
	}
	if (s->reply.errmsg)
		daemon_log(LOG_ERR, "key store: %s", s->reply.errmsg);
	count_reply(s);
	daemon_log(LOG_DEBUG, "request from %s/%s (%d bytes) answered", user, dev, msg->payloadlen);
	publish(s, "resp", user, dev, s->reply.resp.buf, s->reply.resp.len, false);
	for (size_t i = 0; i < s->reply.nstatus; i++) {
		const ks_status *st = &s->reply.status[i];
		if (ks_status_payload(&s->status_buf, st) == CHAT_OK)
			publish(s, "status", st->user, st->device, s->status_buf.buf,
			        s->status_buf.len, true);
	}
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	(void)flags, (void)props;
	server *s = obj;
	/* Requests through the shared group; removal notices directly (a shared
	 * subscription gets no retained messages, and only the active key
	 * server is connected). Both at QoS 0: the session is clean (a random
	 * client id), so a QoS 1 hop to us would redeliver nothing after a loss,
	 * and a notice stays retained until we clear it. QoS 1 would only add a
	 * PUBACK per request and hold us to the broker's in-flight window
	 * (measured: 12 % less broker CPU per bundle at QoS 0,
	 * docs/BENCHMARKS.md). The device's own publish stays QoS 1: its PUBACK
	 * comes from the broker either way. */
	char filter[TOPIC_MAX], removed[TOPIC_MAX];
	snprintf(filter, sizeof(filter), "$share/%s/%s/keys/req/+/+", s->group, s->prefix);
	snprintf(removed, sizeof(removed), "%s/keys/removed/+/+", s->prefix);
	char *const subs[] = { filter, removed };
	mqtt_service_subscribe(m, s->host, s->port, rc, subs, 2, 0);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
	(void)mid, (void)props;
	server *s = obj;
	if (mqtt_service_granted(m, s->user, 2, n, granted, "serving key requests"))
		s->connected = true;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	(void)m, (void)props;
	server *s = obj;
	s->connected = false;
	mqtt_service_lost(rc);
}

/* ---- backup (SIGUSR1) ---- */

/* A checkpoint of the key store into a new <backup-dir>/keys-<UTC time>.
 * Runs on the one thread between requests: requests wait while RocksDB
 * flushes its memtable and hard-links the files (milliseconds for a store
 * of millions of keys; the flush is bounded by the 8 MiB memtable). */
static void backup_if_wanted(server *s)
{
	if (!daemon_usr1_take())
		return;
	if (!s->backup_dir) {
		daemon_log(LOG_WARN, "SIGUSR1 without --backup-dir: no backup taken");
		return;
	}
	if (mkdir(s->backup_dir, 0700) != 0 && errno != EEXIST) {
		daemon_log(LOG_ERR, "backup failed: cannot create %s: %s", s->backup_dir, strerror(errno));
		return;
	}
	char when[32], dir[PATH_MAX];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
	struct stat sb;
	snprintf(dir, sizeof(dir), "%s/keys-%s", s->backup_dir, when);
	for (int n = 2; stat(dir, &sb) == 0 && n < 100; n++)
		snprintf(dir, sizeof(dir), "%s/keys-%s-%d", s->backup_dir, when, n);
	char err[PATH_MAX + 512];
	if (ks_checkpoint(s->ks, dir, err, sizeof(err)) != CHAT_OK) {
		daemon_log(LOG_ERR, "backup failed: %s", err);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	daemon_log(LOG_INFO, "backup written to %s in %ld ms", dir, ms);
}

/* ---- the connection loop ---- */

/* What serve() does on each turn of the MQTT loop, and while it waits to
 * reconnect (a backup may be asked for then too). */
static void tick(void *obj)
{
	backup_if_wanted(obj);
	publish_stats(obj);
}

static void idle(void *obj)
{
	backup_if_wanted(obj);
}

/* Runs until a signal: connect, serve, and after a loss reconnect with
 * backoff and jitter (mqtt_service.h), so a fleet of key servers does not
 * reconnect in lockstep. Then lets queued responses out and says goodbye. */
static bool serve(server *s)
{
	mqtt_service m = { .mosq = s->mosq, .host = s->host, .port = s->port, .loop_ms = 500,
	                   .connected = &s->connected, .tick = tick, .idle = idle, .obj = s };
	if (!mqtt_service_serve(&m))
		return false;
	mqtt_service_close(s->mosq);
	return true;
}

/* ---- start-up ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: chat-keyserver -h HOST -p PORT -u NAME --token-file FILE\n"
	        "                      (--data-dir DIR | --cluster-urls nats://H:P[,...])\n"
	        "                      [--share-group NAME] [--topic-prefix PREFIX]\n"
	        "                      [--rate-burst N] [--rate-refill-seconds S]\n"
	        "                      [--low-threshold N] [--pool-cap N] [--sync]\n"
	        "                      [--log-level error|warning|info|debug] [--backup-dir DIR]\n"
	        "                      [--stats-interval S]\n"
	        "                      [--cluster-urls nats://H:P[,...] [--cluster-prefix P]\n"
	        "                       [--cluster-replicas N] [--cluster-creds FILE]]\n"
	        "                      [--cafile FILE] [--capath DIR] [--cert FILE --key FILE]\n"
	        "                      [--insecure] [--tls-version V]\n"
	        "       chat-keyserver --help | --version\n"
	        "Serves X3DH pre-key requests for mosquitto-chat. See docs/KEYSERVER.md.\n"
	        "TLS to the broker (as mosquitto_sub; docs/OPERATIONS.md, \"TLS\"):\n"
	        MQTT_TLS_USAGE);
}

/* Takes DIR/keyserver.lock, waiting (as a standby) while another key server
 * holds it. Returns the lock's fd, or -1 on error or a signal. */
static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX];
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		daemon_log(LOG_ERR, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/keyserver.lock", dir);
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
			daemon_log(LOG_INFO, "%s is in use by another key server: standing by", dir);
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

enum { OPT_TOKEN = 256, OPT_DATA, OPT_GROUP, OPT_PREFIX, OPT_BURST, OPT_REFILL, OPT_LOW,
       OPT_CAP, OPT_SYNC, OPT_LOG, OPT_BACKUP, OPT_STATS, OPT_HELP, OPT_VERSION,
       OPT_CURLS, OPT_CPREFIX, OPT_CREPL, OPT_CCREDS };

static int parse_args(server *s, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "username", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "data-dir", required_argument, NULL, OPT_DATA },
		{ "share-group", required_argument, NULL, OPT_GROUP },
		{ "topic-prefix", required_argument, NULL, OPT_PREFIX },
		{ "rate-burst", required_argument, NULL, OPT_BURST },
		{ "rate-refill-seconds", required_argument, NULL, OPT_REFILL },
		{ "low-threshold", required_argument, NULL, OPT_LOW },
		{ "pool-cap", required_argument, NULL, OPT_CAP },
		{ "sync", no_argument, NULL, OPT_SYNC },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "backup-dir", required_argument, NULL, OPT_BACKUP },
		{ "stats-interval", required_argument, NULL, OPT_STATS },
		{ "cluster-urls", required_argument, NULL, OPT_CURLS },
		{ "cluster-prefix", required_argument, NULL, OPT_CPREFIX },
		{ "cluster-replicas", required_argument, NULL, OPT_CREPL },
		{ "cluster-creds", required_argument, NULL, OPT_CCREDS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		MQTT_TLS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	uint32_t port = 0;
	const char *bad = NULL;
	int c;
	while (!bad && (c = getopt_long(argc, argv, "h:p:u:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': s->host = optarg; break;
		case 'p': if (!daemon_parse_u32(optarg, 1, 65535, &port)) bad = "-p"; break;
		case 'u': s->user = optarg; break;
		case OPT_TOKEN: s->token_file = optarg; break;
		case OPT_DATA: s->data_dir = optarg; break;
		case OPT_GROUP: s->group = optarg; if (!daemon_name_valid(optarg)) bad = "--share-group"; break;
		case OPT_PREFIX: s->prefix = optarg; if (!daemon_name_valid(optarg)) bad = "--topic-prefix"; break;
		case OPT_BURST:
			if (!daemon_parse_u32(optarg, 1, 1000000, &s->kopts.rate_burst)) bad = "--rate-burst";
			break;
		case OPT_REFILL:
			if (!daemon_parse_u32(optarg, 0, 30 * 24 * 3600, &s->kopts.rate_refill_s))
				bad = "--rate-refill-seconds";
			break;
		case OPT_LOW:
			if (!daemon_parse_u32(optarg, 0, 1000000, &s->kopts.low_threshold)) bad = "--low-threshold";
			break;
		case OPT_CAP:
			if (!daemon_parse_u32(optarg, 1, 1000000, &s->kopts.pool_cap)) bad = "--pool-cap";
			break;
		case OPT_SYNC: s->kopts.sync_writes = true; break;
		case OPT_LOG:
			if (!daemon_log_level_parse(optarg, &s->log_level)) bad = "--log-level";
			break;
		case OPT_BACKUP: s->backup_dir = optarg; if (!*optarg) bad = "--backup-dir"; break;
		case OPT_STATS:
			if (!daemon_parse_u32(optarg, 0, 24 * 3600, &s->stats_interval_s)) bad = "--stats-interval";
			break;
		case OPT_CURLS:
			s->kopts.cluster_urls = optarg;
			if (!*optarg || strncmp(optarg, "nats://", 7) != 0) bad = "--cluster-urls";
			break;
		case OPT_CPREFIX:
			s->kopts.cluster_prefix = optarg;
			if (!daemon_name_valid(optarg) || strlen(optarg) > 32) bad = "--cluster-prefix";
			break;
		case OPT_CREPL: {
			uint32_t r;
			if (!daemon_parse_u32(optarg, 1, 5, &r)) bad = "--cluster-replicas";
			s->kopts.cluster_replicas = (int)r;
			break;
		}
		case OPT_CCREDS: s->kopts.cluster_creds = optarg; if (!*optarg) bad = "--cluster-creds"; break;
		case OPT_HELP: usage(stdout); exit(0);
		case OPT_VERSION: fputs(CHAT_VERSION_LINE("chat-keyserver"), stdout); exit(0);
		default:
			if (mqtt_tls_getopt(&s->tls, c, optarg))
				break;
			usage(stderr);
			return 2;
		}
	}
	if (bad) {
		fprintf(stderr, "%schat-keyserver: invalid value '%s' for %s (see --help and "
		        "docs/OPERATIONS.md)\n", daemon_err_prefix(), optarg ? optarg : "", bad);
		return 2;
	}
	if (optind != argc || !s->host || !port || !s->user || !s->token_file ||
	    (!s->data_dir && !s->kopts.cluster_urls)) {
		usage(stderr);
		return 2;
	}
	s->port = (int)port;
	char err[512];
	if (!mqtt_tls_check(&s->tls, err, sizeof(err))) {
		fprintf(stderr, "%schat-keyserver: %s\n", daemon_err_prefix(), err);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	server s = { .group = "keyserver", .prefix = "chat", .log_level = LOG_INFO,
	             .stats_interval_s = 10 };
	ks_opts_default(&s.kopts);
	int rc = parse_args(&s, argc, argv);
	if (rc)
		return rc;
	daemon_log_init("chat-keyserver", s.log_level);
	if (sodium_init() < 0) {
		daemon_log(LOG_ERR, "libsodium failed to initialise");
		return 1;
	}

	daemon_signals_init(true);

	char token[512];
	if (!daemon_token_read(s.token_file, token, sizeof(token))) {
		daemon_log(LOG_ERR, "cannot read a token from %s", s.token_file);
		sodium_memzero(token, sizeof(token));
		return 1;
	}

	/* Cluster mode: no data directory of its own, and no lock: several key
	 * servers serve at once (a --data-dir given there is not used). */
	if (s.kopts.cluster_urls && (s.data_dir || s.backup_dir)) {
		/* the packaged unit always passes both: cluster mode is then just
		 * KEYSERVER_OPTS=--cluster-urls … */
		daemon_log(LOG_INFO, "cluster mode: --data-dir and --backup-dir are not used (the "
		           "keys live in JetStream; back up its streams)");
		s.backup_dir = NULL;
	}
	int lock_fd = s.kopts.cluster_urls ? open("/dev/null", O_RDONLY | O_CLOEXEC)
	                                   : lock_data_dir(s.data_dir);
	if (lock_fd < 0) {
		sodium_memzero(token, sizeof(token));
		return daemon_stopping() ? 0 : 1;
	}
	char err[512];
	s.kopts.dir = s.data_dir;
	if (ks_open(&s.ks, &s.kopts, err, sizeof(err)) != CHAT_OK) {
		daemon_log(LOG_ERR, "%s", err);
		sodium_memzero(token, sizeof(token));
		close(lock_fd);
		return 1;
	}
	daemon_log(LOG_INFO, "key store %s%s open (pool cap %u, low below %u, rate %u per %u s)",
	           s.kopts.cluster_urls ? "JetStream at " : "",
	           s.kopts.cluster_urls ? s.kopts.cluster_urls : s.data_dir, s.kopts.pool_cap, s.kopts.low_threshold, s.kopts.rate_burst,
	           s.kopts.rate_refill_s);
	char pubhex[2 * KL_PUB + 1];
	sodium_bin2hex(pubhex, sizeof pubhex, ks_log_pub(s.ks), KL_PUB);
	if (s.kopts.cluster_urls)
		daemon_log(LOG_INFO, "key directory log: %llu entries, log key %s (shared by the "
		           "cluster's key servers)", (unsigned long long)ks_log_head(s.ks)->size, pubhex);
	else
		daemon_log(LOG_INFO, "key directory log: %llu entries, log key %s (%s/keylog.pub)",
		           (unsigned long long)ks_log_head(s.ks)->size, pubhex, s.data_dir);
#ifdef KS_LYING
	if (lying_start(&s) != 0) {
		ks_close(s.ks);
		close(lock_fd);
		return 1;
	}
#endif
	if (!ks_insert_hints(s.ks))
		daemon_log(LOG_WARN, "this RocksDB build's C API is laid out differently from the one "
		           "chat-keyserver was built for: memtable insert hints are off (everything "
		           "works; writes cost more CPU)");
	s.req_prefix_len = (size_t)snprintf(s.req_prefix, sizeof(s.req_prefix), "%s/keys/req/",
	                                    s.prefix);
	s.removed_prefix_len = (size_t)snprintf(s.removed_prefix, sizeof(s.removed_prefix),
	                                        "%s/keys/removed/", s.prefix);
	ks_reply_init(&s.reply);
	cbw_init(&s.status_buf);

	mosquitto_lib_init();
	rc = 1;
	s.mosq = mqtt_service_client_new("chat-keyserver", s.user, token, sizeof(token), &s.tls, &s);
	if (!s.mosq)
		goto out;
	mosquitto_connect_v5_callback_set(s.mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(s.mosq, on_subscribe);
	mosquitto_message_v5_callback_set(s.mosq, on_message);
	mosquitto_disconnect_v5_callback_set(s.mosq, on_disconnect);

	if (!serve(&s))
		goto out;
	daemon_log(LOG_INFO, "stopping");
	rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	if (s.mosq)
		mosquitto_destroy(s.mosq);
	mosquitto_lib_cleanup();
	ks_reply_free(&s.reply);
	cbw_free(&s.status_buf);
	ks_close(s.ks);
	close(lock_fd);
	return rc;
}
