/* main.c — chat-pushgw: hands the plugin's wake-ups to push providers.
 *
 * It connects to the broker as a service account (MQTT 5), subscribes to
 * $share/<group>/<prefix>/push/wake — several gateways share the load —
 * and for each wake-up {id, to, platform, token, pending} POSTs a
 * content-free notification to the platform's configured endpoint
 * (FCM-, APNs- or Web-Push-shaped; URL plus header lines read from a
 * file). The provider's answer decides the acknowledgement it publishes
 * on <prefix>/push/ack: "ok" (2xx), "invalid" (the provider disowns the
 * token: 404/410, or 400 naming an unregistered token — the plugin then
 * unregisters it) or "failed" (another 4xx, or retries exhausted). 429, 5xx,
 * timeouts and connection errors are retried with exponential backoff and
 * jitter.
 *
 * Threads: this one runs the MQTT loop and is the only one that touches
 * libmosquitto; --workers threads do the blocking HTTP. A wake-up goes
 * from on_message to the job queue, a result back through the done queue,
 * which the MQTT thread drains into acknowledgements. A wake-up that is
 * never acknowledged (the gateway died, the queue was full, SIGTERM cut a
 * retry short) is sent again by the plugin after plugin_opt_push_retry:
 * delivery to the provider is at least once.
 */
#include "cbor_io.h"
#include "chat_version.h"
#include "daemon.h"
#include "err.h"
#include "http.h"
#include "ids.h"
#include "mqtt_service.h"
#include "mqtt_tls.h"

#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOPIC_MAX 256
#define TOKEN_MAX 4096
#define HEADERS_MAX 8192
#define QUEUE_MAX 10000

enum platform { P_FCM, P_APNS, P_WEBPUSH, P_COUNT };
static const char *const platform_names[P_COUNT] = { "fcm", "apns", "webpush" };

typedef struct endpoint {
	const char *url_arg, *auth_file;
	bool on;
	http_url url;
	char headers[HEADERS_MAX];   /* from auth_file, "Name: value\r\n" each */
} endpoint;

typedef struct job {
	struct job *next;
	enum platform platform;
	uint64_t id, pending;
	char to[CHAT_ADDR_MAX + 1];
	const char *result;          /* "ok", "invalid", "failed" once done */
	char token[];
} job;

typedef struct queue {
	job *head, *tail;
	size_t n;
} queue;

typedef struct counts {
	uint64_t received, delivered, invalid, failed, retries, dropped, malformed;
} counts;

typedef struct gw {
	const char *host, *user, *token_file, *group, *prefix;
	int port;
	mqtt_tls tls;
	int log_level;
	uint32_t workers, timeout_ms, max_attempts, retry_min_ms, retry_max_ms, stats_s;
	endpoint ep[P_COUNT];
	struct mosquitto *mosq;
	bool connected;
	time_t next_stats;           /* when tick() next logs the counts */
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* jobs queued, or stopping */
	queue jobs, done;
	bool stop;                   /* workers: leave now */
	counts n;
} gw;

/* ---- queues (caller holds g->mu) ---- */

static void q_push(queue *q, job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->n++;
}

static job *q_pop(queue *q)
{
	job *j = q->head;
	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
	}
	return j;
}

static void q_free(queue *q)
{
	for (job *j; (j = q_pop(q));)
		free(j);
}

/* ---- the provider request ---- */

/* Appends s JSON-escaped (tokens are printable ASCII: only " and \). */
static size_t json_str(char *out, size_t cap, size_t at, const char *s)
{
	for (; *s && at + 2 < cap; s++) {
		if (*s == '"' || *s == '\\')
			out[at++] = '\\';
		out[at++] = *s;
	}
	out[at < cap ? at : cap - 1] = 0;
	return at;
}

/* The body, and for APNs the path (…/{token} filled in), for one job. */
static size_t build_request(const gw *g, const job *j, char *body, size_t cap, http_url *url)
{
	*url = g->ep[j->platform].url;
	size_t n = 0;
	switch (j->platform) {
	case P_FCM:
		n = (size_t)snprintf(body, cap, "{\"message\":{\"token\":\"");
		n = json_str(body, cap, n, j->token);
		n += (size_t)snprintf(body + n, cap - n,
		                      "\",\"data\":{\"pending\":\"%llu\"},\"android\":{\"priority\":\"high\"}}}",
		                      (unsigned long long)j->pending);
		break;
	case P_APNS: {
		char *at = strstr(url->path, "{token}");
		if (at) {
			char rest[HTTP_PATH_MAX + 1];
			snprintf(rest, sizeof(rest), "%s", at + 7);
			snprintf(at, sizeof(url->path) - (size_t)(at - url->path), "%s%s", j->token, rest);
		}
		n = (size_t)snprintf(body, cap, "{\"aps\":{\"content-available\":1},\"pending\":%llu}",
		                     (unsigned long long)j->pending);
		break;
	}
	default:
		n = (size_t)snprintf(body, cap, "{\"token\":\"");
		n = json_str(body, cap, n, j->token);
		n += (size_t)snprintf(body + n, cap - n, "\",\"pending\":%llu}",
		                      (unsigned long long)j->pending);
	}
	return n < cap ? n : cap - 1;
}

enum verdict { V_OK, V_INVALID, V_FAILED, V_RETRY };

static enum verdict classify(const http_resp *r)
{
	if (r->status >= 200 && r->status < 300)
		return V_OK;
	if (r->status == 404 || r->status == 410)
		return V_INVALID;
	if (r->status == 400 && (strstr(r->body, "UNREGISTERED") || strstr(r->body, "BadDeviceToken") ||
	                         strstr(r->body, "Unregistered")))
		return V_INVALID;
	if (r->status == 429 || r->status >= 500)
		return V_RETRY;
	return V_FAILED;
}

/* Sleeps ms unless the gateway stops first; false if it did. */
static bool backoff(gw *g, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&g->mu);
	while (!g->stop && pthread_cond_timedwait(&g->cv, &g->mu, &ts) != ETIMEDOUT)
		;
	bool go = !g->stop;
	pthread_mutex_unlock(&g->mu);
	return go;
}

/* Forwards one wake-up; false when cut short by a stop (no result). */
static bool forward(gw *g, job *j)
{
	static __thread char body[TOKEN_MAX * 2 + 256];
	static __thread http_resp resp;
	http_url url;
	size_t len = build_request(g, j, body, sizeof(body), &url);
	unsigned delay = g->retry_min_ms;
	for (unsigned attempt = 1;; attempt++) {
		char err[256] = "";
		enum verdict v = V_RETRY;
		if (http_post(&url, g->ep[j->platform].headers, body, len, (int)g->timeout_ms, &resp, err,
		              sizeof(err)) == 0) {
			v = classify(&resp);
			snprintf(err, sizeof(err), "HTTP %d", resp.status);
		}
		daemon_log(LOG_DEBUG, "wake-up %llu for %s (%s): %s", (unsigned long long)j->id, j->to,
		           platform_names[j->platform], err);
		if (v != V_RETRY || attempt >= g->max_attempts) {
			j->result = v == V_OK ? "ok" : v == V_INVALID ? "invalid" : "failed";
			if (v != V_OK)
				daemon_log(v == V_INVALID ? LOG_INFO : LOG_WARN, "wake-up for %s: %s after %u attempt(s) (%s)",
				           j->to, j->result, attempt, err);
			return true;
		}
		/* Jitter in [delay/2, delay], so gateways do not retry in step. */
		unsigned wait = daemon_backoff_next(&delay, g->retry_max_ms);
		pthread_mutex_lock(&g->mu);
		g->n.retries++;
		pthread_mutex_unlock(&g->mu);
		daemon_log(LOG_INFO, "wake-up for %s: %s; retrying in %u ms", j->to, err, wait);
		if (!backoff(g, wait))
			return false;
	}
}

static void *worker(void *arg)
{
	gw *g = arg;
	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		job *j = q_pop(&g->jobs);
		if (!j) {
			pthread_cond_wait(&g->cv, &g->mu);
			continue;
		}
		pthread_mutex_unlock(&g->mu);
		bool done = forward(g, j);
		pthread_mutex_lock(&g->mu);
		if (!done) {
			free(j); /* unacknowledged: the plugin sends it again */
			continue;
		}
		if (!strcmp(j->result, "ok"))
			g->n.delivered++;
		else if (!strcmp(j->result, "invalid"))
			g->n.invalid++;
		else
			g->n.failed++;
		q_push(&g->done, j);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ---- MQTT (this thread only) ---- */

static bool parse_wake(const struct mosquitto_message *msg, enum platform *p, uint64_t *id,
                       uint64_t *pending, const char **to, size_t *tolen, const char **tok,
                       size_t *toklen)
{
	cbr r;
	cbr_item map, key, val;
	bool has_id = false, has_p = false;
	*to = *tok = NULL;
	*pending = 0;
	cbr_init(&r, msg->payload, (size_t)msg->payloadlen);
	if (cbr_next(&r, &map) || map.type != CBR_MAP)
		return false;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val))
			return false;
		if (cbr_eq(&key, "id") && val.type == CBR_UINT) {
			*id = val.u;
			has_id = true;
		} else if (cbr_eq(&key, "pending") && val.type == CBR_UINT) {
			*pending = val.u;
		} else if (cbr_eq(&key, "to") && val.type == CBR_TEXT) {
			*to = (const char *)val.ptr, *tolen = val.len;
		} else if (cbr_eq(&key, "token") && val.type == CBR_TEXT) {
			*tok = (const char *)val.ptr, *toklen = val.len;
		} else if (cbr_eq(&key, "platform") && val.type == CBR_TEXT) {
			for (int k = 0; k < P_COUNT; k++)
				if (cbr_eq(&val, platform_names[k])) {
					*p = (enum platform)k;
					has_p = true;
				}
		} else if (cbr_skip(&r, &val)) {
			return false;
		}
	}
	const char *u, *d;
	size_t ul, dl;
	return !r.err_msg && cbr_done(&r) && has_id && has_p && *to && *tok && *toklen > 0 &&
	       *toklen <= TOKEN_MAX && !memchr(*tok, 0, *toklen) &&
	       chat_parse_addr(*to, *tolen, &u, &ul, &d, &dl);
}

static void publish_ack(gw *g, const job *j)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "id"); cbw_uint(&w, j->id);
	cbw_text(&w, "to"); cbw_text(&w, j->to);
	cbw_text(&w, "r"); cbw_text(&w, j->result);
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/push/ack", g->prefix);
	int rc = cbw_status(&w) ? MOSQ_ERR_NOMEM
	                        : mosquitto_publish_v5(g->mosq, NULL, topic, (int)w.len, w.buf, 1, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		daemon_log(LOG_WARN, "acknowledging wake-up %llu failed: %s", (unsigned long long)j->id,
		           mosquitto_strerror(rc));
	cbw_free(&w);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	(void)m, (void)props;
	gw *g = obj;
	enum platform p = P_FCM;
	uint64_t id = 0, pending;
	const char *to, *tok;
	size_t tolen = 0, toklen = 0;
	if (!parse_wake(msg, &p, &id, &pending, &to, &tolen, &tok, &toklen)) {
		daemon_log(LOG_WARN, "ignoring a malformed wake-up on %s (%d bytes)", msg->topic, msg->payloadlen);
		pthread_mutex_lock(&g->mu);
		g->n.malformed++;
		pthread_mutex_unlock(&g->mu);
		return;
	}
	job *j = calloc(1, sizeof(*j) + toklen + 1);
	if (j) {
		j->platform = p;
		j->id = id;
		j->pending = pending;
		memcpy(j->to, to, tolen);
		memcpy(j->token, tok, toklen);
	}
	pthread_mutex_lock(&g->mu);
	g->n.received++;
	if (!j || g->jobs.n >= QUEUE_MAX) {
		g->n.dropped++; /* unacknowledged: the plugin resends it */
		free(j);
		j = NULL;
	} else if (!g->ep[p].on) {
		j->result = "failed";
		g->n.failed++;
		q_push(&g->done, j);
		j = NULL;
		daemon_log(LOG_WARN, "wake-up for %s: no endpoint configured for %s", to, platform_names[p]);
	} else {
		q_push(&g->jobs, j);
		pthread_cond_signal(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	(void)flags, (void)props;
	gw *g = obj;
	if (rc != 0) {
		daemon_log(LOG_ERR, "broker refused the connection: %s", mosquitto_reason_string(rc));
		return;
	}
	char filter[TOPIC_MAX];
	snprintf(filter, sizeof(filter), "$share/%s/%s/push/wake", g->group, g->prefix);
	rc = mosquitto_subscribe_v5(m, NULL, filter, 1, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		daemon_log(LOG_ERR, "subscribe failed: %s", mosquitto_strerror(rc));
	else
		daemon_log(LOG_INFO, "connected to %s:%d, subscribing to %s", g->host, g->port, filter);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
	(void)mid, (void)props;
	gw *g = obj;
	if (n < 1 || granted[0] >= 0x80) {
		daemon_log(LOG_ERR, "the broker refused the subscription (is '%s' a service account?)", g->user);
		mosquitto_disconnect(m);
		return;
	}
	g->connected = true;
	daemon_log(LOG_INFO, "forwarding wake-ups");
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	(void)m, (void)props;
	gw *g = obj;
	g->connected = false;
	if (!daemon_stopping())
		daemon_log(LOG_WARN, "disconnected from the broker: %s", mosquitto_reason_string(rc));
}

static void log_counts(gw *g, const char *when)
{
	pthread_mutex_lock(&g->mu);
	counts c = g->n;
	size_t queued = g->jobs.n;
	pthread_mutex_unlock(&g->mu);
	daemon_log(LOG_INFO, "%s: received %llu, delivered %llu, invalid %llu, failed %llu, retries %llu, "
	           "dropped %llu, malformed %llu, queued %zu", when, (unsigned long long)c.received,
	           (unsigned long long)c.delivered, (unsigned long long)c.invalid,
	           (unsigned long long)c.failed, (unsigned long long)c.retries,
	           (unsigned long long)c.dropped, (unsigned long long)c.malformed, queued);
}

/* Acknowledges what the workers finished (only while connected: an ack
 * lost with the connection means a resend, never a loss). */
static void drain_done(gw *g)
{
	if (!g->connected)
		return;
	pthread_mutex_lock(&g->mu);
	job *list = g->done.head;
	g->done.head = g->done.tail = NULL;
	g->done.n = 0;
	pthread_mutex_unlock(&g->mu);
	while (list) {
		job *next = list->next;
		publish_ack(g, list);
		free(list);
		list = next;
	}
}

/* On each turn of the MQTT loop: acknowledge what the workers finished, and
 * every --stats-interval log the counts. */
static void tick(void *obj)
{
	gw *g = obj;
	drain_done(g);
	if (g->stats_s && daemon_mono_s() >= g->next_stats) {
		log_counts(g, "counts");
		g->next_stats = daemon_mono_s() + g->stats_s;
	}
}

/* Like the key server: connect, serve, and after a loss reconnect with
 * backoff and jitter (mqtt_service.h); then say goodbye. */
static bool serve(gw *g)
{
	g->next_stats = daemon_mono_s() + g->stats_s;
	mqtt_service m = { .mosq = g->mosq, .host = g->host, .port = g->port, .loop_ms = 50,
	                   .connected = &g->connected, .tick = tick, .obj = g };
	if (!mqtt_service_serve(&m))
		return false;
	mqtt_service_close(g->mosq);
	return true;
}

/* ---- start-up ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: chat-pushgw -h HOST -p PORT -u NAME --token-file FILE\n"
	        "                   [--fcm-url URL [--fcm-auth FILE]] [--apns-url URL [--apns-auth FILE]]\n"
	        "                   [--webpush-url URL [--webpush-auth FILE]]\n"
	        "                   [--share-group NAME] [--topic-prefix PREFIX] [--workers N]\n"
	        "                   [--timeout-ms MS] [--max-attempts N] [--retry-min-ms MS]\n"
	        "                   [--retry-max-ms MS] [--stats-interval S]\n"
	        "                   [--log-level error|warning|info|debug]\n"
	        "                   [--cafile FILE] [--capath DIR] [--cert FILE --key FILE]\n"
	        "                   [--insecure] [--tls-version V]\n"
	        "       chat-pushgw --help | --version\n"
	        "Forwards mosquitto-chat wake-ups to push providers over HTTP (http:// URLs;\n"
	        "terminate TLS in a local proxy). An APNs URL may contain {token}. An auth\n"
	        "file holds header lines (\"Authorization: Bearer ...\"). See README.md.\n"
	        "TLS to the broker (as mosquitto_sub; docs/OPERATIONS.md, \"TLS\"):\n"
	        MQTT_TLS_USAGE);
}

/* Reads header lines ("Name: value") into out as "Name: value\r\n" each;
 * blank lines skipped. Returns a reason on failure. */
static const char *read_headers(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strerror(errno);
	char line[HEADERS_MAX];
	size_t n = 0;
	const char *why = NULL;
	out[0] = 0;
	while (!why && fgets(line, sizeof(line), f)) {
		size_t l = strcspn(line, "\r\n");
		line[l] = 0;
		if (l == 0)
			continue;
		char *colon = strchr(line, ':');
		bool ok = colon && colon > line;
		for (char *p = line; ok && *p; p++)
			ok = (unsigned char)*p >= 0x20 && *p != 0x7f && (p >= colon || *p != ' ');
		if (!ok)
			why = "each line must be \"Name: value\" (printable characters)";
		else if (n + l + 3 > cap)
			why = "too long";
		else
			n += (size_t)snprintf(out + n, cap - n, "%s\r\n", line);
	}
	fclose(f);
	sodium_memzero(line, sizeof(line));
	return why;
}

enum { OPT_TOKEN = 256, OPT_GROUP, OPT_PREFIX, OPT_FCM, OPT_FCM_AUTH, OPT_APNS, OPT_APNS_AUTH,
       OPT_WEB, OPT_WEB_AUTH, OPT_WORKERS, OPT_TIMEOUT, OPT_ATTEMPTS, OPT_RMIN, OPT_RMAX,
       OPT_STATS, OPT_LOG, OPT_HELP, OPT_VERSION };

static int parse_args(gw *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "username", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "share-group", required_argument, NULL, OPT_GROUP },
		{ "topic-prefix", required_argument, NULL, OPT_PREFIX },
		{ "fcm-url", required_argument, NULL, OPT_FCM },
		{ "fcm-auth", required_argument, NULL, OPT_FCM_AUTH },
		{ "apns-url", required_argument, NULL, OPT_APNS },
		{ "apns-auth", required_argument, NULL, OPT_APNS_AUTH },
		{ "webpush-url", required_argument, NULL, OPT_WEB },
		{ "webpush-auth", required_argument, NULL, OPT_WEB_AUTH },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "max-attempts", required_argument, NULL, OPT_ATTEMPTS },
		{ "retry-min-ms", required_argument, NULL, OPT_RMIN },
		{ "retry-max-ms", required_argument, NULL, OPT_RMAX },
		{ "stats-interval", required_argument, NULL, OPT_STATS },
		{ "log-level", required_argument, NULL, OPT_LOG },
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
		case 'h': g->host = optarg; break;
		case 'p': if (!daemon_parse_u32(optarg, 1, 65535, &port)) bad = "-p"; break;
		case 'u': g->user = optarg; break;
		case OPT_TOKEN: g->token_file = optarg; break;
		case OPT_GROUP: g->group = optarg; if (!daemon_name_valid(optarg)) bad = "--share-group"; break;
		case OPT_PREFIX: g->prefix = optarg; if (!daemon_name_valid(optarg)) bad = "--topic-prefix"; break;
		case OPT_FCM: g->ep[P_FCM].url_arg = optarg; break;
		case OPT_FCM_AUTH: g->ep[P_FCM].auth_file = optarg; break;
		case OPT_APNS: g->ep[P_APNS].url_arg = optarg; break;
		case OPT_APNS_AUTH: g->ep[P_APNS].auth_file = optarg; break;
		case OPT_WEB: g->ep[P_WEBPUSH].url_arg = optarg; break;
		case OPT_WEB_AUTH: g->ep[P_WEBPUSH].auth_file = optarg; break;
		case OPT_WORKERS: if (!daemon_parse_u32(optarg, 1, 256, &g->workers)) bad = "--workers"; break;
		case OPT_TIMEOUT: if (!daemon_parse_u32(optarg, 100, 600000, &g->timeout_ms)) bad = "--timeout-ms"; break;
		case OPT_ATTEMPTS: if (!daemon_parse_u32(optarg, 1, 100, &g->max_attempts)) bad = "--max-attempts"; break;
		case OPT_RMIN: if (!daemon_parse_u32(optarg, 1, 600000, &g->retry_min_ms)) bad = "--retry-min-ms"; break;
		case OPT_RMAX: if (!daemon_parse_u32(optarg, 1, 3600000, &g->retry_max_ms)) bad = "--retry-max-ms"; break;
		case OPT_STATS: if (!daemon_parse_u32(optarg, 0, 86400, &g->stats_s)) bad = "--stats-interval"; break;
		case OPT_LOG:
			if (!daemon_log_level_parse(optarg, &g->log_level)) bad = "--log-level";
			break;
		case OPT_HELP: usage(stdout); exit(0);
		case OPT_VERSION: fputs(CHAT_VERSION_LINE("chat-pushgw"), stdout); exit(0);
		default:
			if (mqtt_tls_getopt(&g->tls, c, optarg))
				break;
			usage(stderr);
			return 2;
		}
	}
	if (bad) {
		fprintf(stderr, "%schat-pushgw: invalid value for %s\n", daemon_err_prefix(), bad);
		return 2;
	}
	if (optind != argc || !g->host || !port || !g->user || !g->token_file) {
		usage(stderr);
		return 2;
	}
	if (g->retry_max_ms < g->retry_min_ms) {
		fprintf(stderr, "%schat-pushgw: --retry-max-ms must be at least --retry-min-ms\n",
		        daemon_err_prefix());
		return 2;
	}
	g->port = (int)port;
	char err[512];
	if (!mqtt_tls_check(&g->tls, err, sizeof(err))) {
		fprintf(stderr, "%schat-pushgw: %s\n", daemon_err_prefix(), err);
		return 2;
	}
	bool any = false;
	for (int k = 0; k < P_COUNT; k++) {
		endpoint *e = &g->ep[k];
		const char *why;
		if (!e->url_arg) {
			if (e->auth_file) {
				fprintf(stderr, "%schat-pushgw: --%s-auth without --%s-url\n", daemon_err_prefix(),
				        platform_names[k],
				        platform_names[k]);
				return 2;
			}
			continue;
		}
		if (!http_url_parse(e->url_arg, &e->url, &why)) {
			fprintf(stderr, "%schat-pushgw: --%s-url %s: %s\n", daemon_err_prefix(),
			        platform_names[k], e->url_arg, why);
			return 2;
		}
		if (e->auth_file && (why = read_headers(e->auth_file, e->headers, sizeof(e->headers)))) {
			fprintf(stderr, "%schat-pushgw: --%s-auth %s: %s\n", daemon_err_prefix(),
			        platform_names[k], e->auth_file, why);
			return 2;
		}
		e->on = any = true;
	}
	if (!any) {
		fprintf(stderr, "%schat-pushgw: configure at least one of --fcm-url, --apns-url, --webpush-url\n",
		        daemon_err_prefix());
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	gw g = { .group = "pushgw", .prefix = "chat", .workers = 4, .timeout_ms = 10000,
	         .max_attempts = 6, .retry_min_ms = 500, .retry_max_ms = 30000, .stats_s = 60,
	         .log_level = LOG_INFO };
	int rc = parse_args(&g, argc, argv);
	if (rc)
		return rc;
	daemon_log_init("chat-pushgw", g.log_level);
	if (sodium_init() < 0) {
		daemon_log(LOG_ERR, "libsodium failed to initialise");
		return 1;
	}
	daemon_signals_init(false);

	char token[512];
	if (!daemon_token_read(g.token_file, token, sizeof(token))) {
		daemon_log(LOG_ERR, "cannot read a token from %s", g.token_file);
		sodium_memzero(token, sizeof(token));
		return 1;
	}
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	pthread_t *threads = calloc(g.workers, sizeof(*threads));
	unsigned started = 0;
	rc = 1;
	mosquitto_lib_init();
	if (!threads)
		goto out;
	for (; started < g.workers; started++)
		if (pthread_create(&threads[started], NULL, worker, &g) != 0) {
			daemon_log(LOG_ERR, "cannot start worker threads");
			goto out;
		}
	g.mosq = mqtt_service_client_new("chat-pushgw", g.user, token, sizeof(token), &g.tls, &g);
	if (!g.mosq)
		goto out;
	mosquitto_connect_v5_callback_set(g.mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(g.mosq, on_subscribe);
	mosquitto_message_v5_callback_set(g.mosq, on_message);
	mosquitto_disconnect_v5_callback_set(g.mosq, on_disconnect);
	for (int k = 0; k < P_COUNT; k++)
		if (g.ep[k].on)
			daemon_log(LOG_INFO, "%s wake-ups go to %s", platform_names[k], g.ep[k].url_arg);
	if (serve(&g))
		rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	pthread_mutex_lock(&g.mu);
	g.stop = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	log_counts(&g, "stopping");
	if (g.mosq)
		mosquitto_destroy(g.mosq);
	mosquitto_lib_cleanup();
	q_free(&g.jobs);
	q_free(&g.done);
	for (int k = 0; k < P_COUNT; k++)
		sodium_memzero(g.ep[k].headers, sizeof(g.ep[k].headers));
	pthread_mutex_destroy(&g.mu);
	pthread_cond_destroy(&g.cv);
	return rc;
}
