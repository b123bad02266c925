// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* main.c — chat-pushgw: hands the plugin's wake-ups to push providers.
 *
 * It connects to the broker as a service account (MQTT 5), subscribes to
 * $share/<group>/<prefix>/push/wake — several gateways share the load —
 * and for each wake-up {id, to, platform, token, pending, ?mode} sends a
 * content-free notification to the platform's provider:
 *
 *   fcm   FCM HTTP v1 messages:send, with an OAuth2 access token that the
 *         gateway obtains itself from a service-account file (an RS256 JWT
 *         exchanged at the file's token_uri), renews before it expires and
 *         after a 401;
 *   apns  APNs /3/device/<token> over HTTP/2, with an ES256 provider token
 *         signed with the team's .p8 key and renewed every --apns-renew
 *         seconds; a background push, or a visible alert (a generic
 *         localizable text, mutable-content) for devices registered so;
 *   any   or, as before, a relay URL with header lines read from a file.
 *
 * The provider's answer decides the acknowledgement it publishes on
 * <prefix>/push/ack: "ok" (2xx), "invalid" (the provider disowns the
 * token — the plugin then unregisters it) or "failed" (credentials refused
 * twice, another 4xx, or retries exhausted). 429, 5xx, timeouts and
 * connection errors are retried with exponential backoff and jitter; a 401
 * or 403 renews the credential and retries once.
 *
 * One thread. HTTP is libcurl's multi interface (http.h): every request is
 * a stream on one long-lived HTTP/2 connection per provider, and the
 * gateway's loop waits in one poll for the MQTT socket and the transfers'
 * sockets alike, so no wake-up blocks another. A wake-up that is never
 * acknowledged (the gateway died, the queue was full, SIGTERM cut a retry
 * short) is sent again by the plugin after plugin_opt_push_retry: delivery
 * to the provider is at least once.
 *
 * SIGHUP re-reads the credential files (a failure keeps the old ones).
 * Counters are logged every --stats-interval and published on
 * <prefix>/push/stats ({gw: this gateway's random id, <counter>: n, …}),
 * which the plugin sums over the gateways into its own counters
 * ($SYS/broker/chat/pushgw_<counter>, chatctl stats).
 */
#include "cbor_io.h"
#include "chat_version.h"
#include "creds.h"
#include "daemon.h"
#include "err.h"
#include "http.h"
#include "ids.h"
#include "mqtt_service.h"
#include "mqtt_tls.h"
#include "webpush.h"

#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOPIC_MAX 256
#define TOKEN_MAX 4096
#define HEADERS_MAX 8192
#define HEADER_LINES_MAX 32
#define QUEUE_MAX 10000
#define URL_MAX (TOKEN_MAX + 1024)

enum platform { P_FCM, P_APNS, P_WEBPUSH, P_COUNT };
static const char *const platform_names[P_COUNT] = { "fcm", "apns", "webpush" };

/* A relay's (or legacy) static header lines, from an --*-auth file. */
typedef struct endpoint {
	const char *url_arg, *auth_file;
	bool on;
	char hbuf[HEADERS_MAX];      /* lines, NUL-separated */
	const char *lines[HEADER_LINES_MAX + 1];
} endpoint;

typedef struct job {
	struct job *next;
	struct gw *gw;
	enum platform platform;
	bool alert;                  /* apns: a visible notification */
	bool auth_retried;           /* a 401/403 renewed the credential once */
	unsigned attempt, delay;
	uint64_t id, pending, cred_gen;
	long long due_ms;            /* when a retry may go */
	const char *result;          /* "ok", "invalid", "failed" once done */
	char to[CHAT_ADDR_MAX + 1];
	char token[];
} job;

typedef struct queue {
	job *head, *tail;
	size_t n;
} queue;

/* What happened to the wake-ups, by outcome and failure class
 * (docs/OPERATIONS.md, "Push"). */
#define COUNTERS(X)                                                                            \
	X(received) X(delivered) X(invalid) X(failed) X(retries) X(dropped) X(malformed)          \
	X(failed_auth) X(failed_rejected) X(failed_exhausted) X(failed_unconfigured)              \
	X(http_errors) X(throttled) X(server_errors) X(auth_renewals) X(token_fetches)            \
	X(token_failures) X(connections) X(reloads) X(reload_failures)
typedef struct counts {
#define X(n) uint64_t n;
	COUNTERS(X)
#undef X
} counts;

typedef struct fcm_state {
	const char *file;            /* --fcm-credentials */
	bool on;
	fcm_account acct;
	char url[URL_MAX];           /* messages:send */
	char *auth;                  /* "Authorization: Bearer …" */
	long long expires_ms, renew_ms;
	bool fetching;
	unsigned fetch_delay;
	long long fetch_due_ms;
	uint64_t gen;                /* bumped with every new access token */
	queue waiting;               /* jobs waiting for an access token */
} fcm_state;

typedef struct apns_state {
	const char *key_file, *key_id, *team_id, *topic;
	bool on;
	EVP_PKEY *key;
	char *auth;                  /* "authorization: bearer <jwt>" */
	long long issued_ms;
	uint32_t renew_s;
	uint64_t gen;
} apns_state;

typedef struct webpush_state {
	const char *key_file, *subject;
	bool on;
	EVP_PKEY *key;               /* the VAPID key */
} webpush_state;

typedef struct gw {
	const char *host, *user, *token_file, *group, *prefix, *provider_cafile;
	int port;
	mqtt_tls tls;
	int log_level;
	uint32_t timeout_ms, max_attempts, retry_min_ms, retry_max_ms, stats_s, max_inflight;
	endpoint ep[P_COUNT];
	fcm_state fcm;
	apns_state apns;
	webpush_state wp;
	struct mosquitto *mosq;
	http_client *http;
	bool connected, closing;
	char gw_id[33];              /* names this gateway in its stats */
	time_t next_stats;
	queue ready, later, done;
	size_t held;                 /* jobs anywhere, in flight included */
	counts n;
	bool stats_due;              /* publish the counters on the next tick */
} gw;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- queues ---- */

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

static void q_append(queue *to, queue *from)
{
	for (job *j; (j = q_pop(from));)
		q_push(to, j);
}

static void q_free(gw *g, queue *q)
{
	for (job *j; (j = q_pop(q));) {
		g->held--;
		free(j);
	}
}

/* ---- outcomes ---- */

enum verdict { V_OK, V_INVALID, V_REJECTED, V_RETRY, V_AUTH };

static void finish(gw *g, job *j, const char *result, const char *why)
{
	j->result = result;
	if (!strcmp(result, "ok"))
		g->n.delivered++;
	else if (!strcmp(result, "invalid"))
		g->n.invalid++;
	else
		g->n.failed++;
	if (strcmp(result, "ok"))
		daemon_log(!strcmp(result, "invalid") ? LOG_INFO : LOG_WARN,
		           "wake-up for %s: %s after %u attempt(s) (%s)", j->to, result, j->attempt, why);
	q_push(&g->done, j);
}

/* Back to the queue after a jittered, growing delay — or given up. */
static void retry_later(gw *g, job *j, const char *why)
{
	if (j->attempt >= g->max_attempts) {
		g->n.failed_exhausted++;
		finish(g, j, "failed", why);
		return;
	}
	if (!j->delay)
		j->delay = g->retry_min_ms;
	unsigned wait = daemon_backoff_next(&j->delay, g->retry_max_ms);
	j->due_ms = now_ms() + wait;
	g->n.retries++;
	daemon_log(LOG_INFO, "wake-up for %s: %s; retrying in %u ms", j->to, why, wait);
	q_push(&g->later, j);
}

static bool eq(const char *a, const char *b)
{
	return !strcmp(a, b);
}

/* What the answer means for the token, per provider; why gets the detail. */
static enum verdict classify(const gw *g, const job *j, const http_result *r, char *why, size_t cap)
{
	char code[128] = "";
	if (r->err) {
		snprintf(why, cap, "%s", r->err);
		return V_RETRY;
	}
	bool fcm = j->platform == P_FCM, apns = j->platform == P_APNS;
	if (fcm)
		fcm_error_code(r->body, r->body_len, code, sizeof(code));
	else if (apns)
		apns_reason(r->body, r->body_len, code, sizeof(code));
	else if (!fcm_error_code(r->body, r->body_len, code, sizeof(code)))
		apns_reason(r->body, r->body_len, code, sizeof(code));
	snprintf(why, cap, "HTTP %ld%s%s", r->status, code[0] ? " " : "", code);
	long s = r->status;
	if (s >= 200 && s < 300)
		return V_OK;
	if (s == 410 || (s == 404 && !(apns && eq(code, "BadPath"))))
		return V_INVALID;
	if ((s == 400 || s == 403) && (eq(code, "UNREGISTERED") || eq(code, "BadDeviceToken") ||
	                               eq(code, "Unregistered") || eq(code, "SENDER_ID_MISMATCH")))
		return V_INVALID;
	if (s == 401 || s == 403)
		return V_AUTH;
	if (s == 429 || s >= 500)
		return V_RETRY;
	(void)g;
	return V_REJECTED;
}

static void pump(gw *g);

static void on_done(void *arg, const http_result *r);

/* ---- credentials ---- */

static void fcm_drop_token(gw *g)
{
	if (g->fcm.auth)
		sodium_memzero(g->fcm.auth, strlen(g->fcm.auth));
	free(g->fcm.auth);
	g->fcm.auth = NULL;
}

static bool fcm_token_usable(const gw *g)
{
	return g->fcm.auth && now_ms() < g->fcm.expires_ms;
}

static void fail_waiting(gw *g, const char *why)
{
	for (job *j; (j = q_pop(&g->fcm.waiting));) {
		g->n.failed_auth++;
		finish(g, j, "failed", why);
	}
}

static void on_token(void *arg, const http_result *r)
{
	gw *g = arg;
	g->fcm.fetching = false;
	if (g->closing)
		return;
	char *tok = NULL;
	long exp = 0;
	if (r->status == 200 && oauth_grant_parse(r->body, r->body_len, &tok, &exp)) {
		fcm_drop_token(g);
		size_t n = strlen(tok) + sizeof("Authorization: Bearer ");
		g->fcm.auth = malloc(n);
		if (g->fcm.auth) {
			snprintf(g->fcm.auth, n, "Authorization: Bearer %s", tok);
			long long now = now_ms();
			long margin = exp / 4 < 30 ? exp / 4 : 30;
			g->fcm.expires_ms = now + (exp - margin) * 1000LL;
			g->fcm.renew_ms = now + (exp - exp / 4) * 1000LL;
			g->fcm.gen++;
			g->fcm.fetch_delay = 0;
			daemon_log(LOG_INFO, "FCM access token obtained for %s (valid %ld s)",
			           g->fcm.acct.client_email, exp);
			q_append(&g->ready, &g->fcm.waiting);
		}
		sodium_memzero(tok, strlen(tok));
		free(tok);
		return;
	}
	g->n.token_failures++;
	char oauth_err[200] = "";
	if (!r->err) /* an OAuth error body: {"error": "invalid_grant", ...} */
		oauth_error(r->body, r->body_len, oauth_err, sizeof(oauth_err));
	char why[300];
	if (r->err)
		snprintf(why, sizeof(why), "%s", r->err);
	else
		snprintf(why, sizeof(why), "HTTP %ld%s%s", r->status, oauth_err[0] ? " " : "", oauth_err);
	daemon_log(LOG_ERR, "FCM access token request to %s failed: %s", g->fcm.acct.token_uri, why);
	if (!g->fcm.fetch_delay)
		g->fcm.fetch_delay = g->retry_min_ms;
	g->fcm.fetch_due_ms = now_ms() + daemon_backoff_next(&g->fcm.fetch_delay, g->retry_max_ms);
	if (!r->err && r->status >= 400 && r->status < 500 && r->status != 429) {
		/* the credential itself is refused: no waiting helps */
		fail_waiting(g, "the service account's credential was refused");
		return;
	}
	queue keep = { 0 };
	for (job *j; (j = q_pop(&g->fcm.waiting));) {
		if (++j->attempt >= g->max_attempts) {
			g->n.failed_exhausted++;
			finish(g, j, "failed", "no FCM access token");
		} else {
			q_push(&keep, j);
		}
	}
	g->fcm.waiting = keep;
}

static void fcm_fetch(gw *g)
{
	char *a = fcm_assertion(&g->fcm.acct, time(NULL));
	char *body = a ? fcm_token_request_body(a) : NULL;
	static const char *const hdr[] = { "Content-Type: application/x-www-form-urlencoded",
		                           "Accept: application/json", NULL };
	if (body && http_post(g->http, g->fcm.acct.token_uri, hdr, body, strlen(body), on_token, g)) {
		g->fcm.fetching = true;
		g->n.token_fetches++;
		daemon_log(LOG_DEBUG, "requesting an FCM access token from %s", g->fcm.acct.token_uri);
	} else {
		daemon_log(LOG_ERR, "cannot sign or send the FCM token request");
		g->fcm.fetch_due_ms = now_ms() + g->retry_max_ms;
	}
	if (body)
		sodium_memzero(body, strlen(body));
	free(body);
	free(a);
}

/* A token is fetched when jobs wait for one, or ahead of expiry. */
static void fcm_maintain(gw *g)
{
	if (!g->fcm.on || g->fcm.fetching || now_ms() < g->fcm.fetch_due_ms)
		return;
	bool need = g->fcm.waiting.n > 0 && !fcm_token_usable(g);
	bool soon = g->fcm.auth && now_ms() >= g->fcm.renew_ms;
	if (need || soon)
		fcm_fetch(g);
}

static const char *apns_auth(gw *g)
{
	apns_state *a = &g->apns;
	long long now = now_ms();
	if (!a->auth || now - a->issued_ms >= (long long)a->renew_s * 1000) {
		char *jwt = apns_provider_token(a->key, a->key_id, a->team_id, time(NULL));
		if (!jwt)
			return NULL;
		free(a->auth);
		size_t n = strlen(jwt) + sizeof("authorization: bearer ");
		a->auth = malloc(n);
		if (a->auth)
			snprintf(a->auth, n, "authorization: bearer %s", jwt);
		free(jwt);
		a->issued_ms = now;
		a->gen++;
		daemon_log(LOG_DEBUG, "signed a new APNs provider token (key %s)", a->key_id);
	}
	return a->auth;
}

/* ---- requests ---- */

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

/* Web Push (RFC 8030/8291/8292): the token is the browser's subscription;
 * the wake-up {"pending":N} is encrypted for its key and POSTed to its
 * endpoint with a VAPID signature. hdr holds nh lines already. */
static bool send_webpush(gw *g, job *j, const char **hdr, size_t nh)
{
	webpush_sub sub;
	if (!webpush_sub_parse(j->token, strlen(j->token), &sub)) {
		/* it can never be delivered: the plugin unregisters it */
		finish(g, j, "invalid", "the token is not a Web Push subscription");
		return true;
	}
	char pt[64], ttl[] = "TTL: 86400", urg[] = "Urgency: high", enc[] = "Content-Encoding: aes128gcm",
	     typ[] = "Content-Type: application/octet-stream";
	int ptl = snprintf(pt, sizeof(pt), "{\"pending\":%llu}", (unsigned long long)j->pending);
	size_t blen = 0;
	uint8_t *body = webpush_encrypt(sub.p256dh, sub.auth, pt, (size_t)ptl, NULL, NULL, &blen);
	char *vapid = vapid_authorization(g->wp.key, sub.endpoint, g->wp.subject, time(NULL));
	char *auth = NULL;
	if (vapid && (auth = malloc(strlen(vapid) + sizeof("Authorization: "))))
		sprintf(auth, "Authorization: %s", vapid);
	bool ok = false;
	if (body && auth) {
		hdr[nh - 1] = typ; /* instead of application/json */
		hdr[nh++] = auth;
		hdr[nh++] = ttl;
		hdr[nh++] = urg;
		hdr[nh++] = enc;
		hdr[nh] = NULL;
		j->attempt++;
		ok = http_post(g->http, sub.endpoint, hdr, (const char *)body, blen, on_done, j);
		if (!ok)
			j->attempt--;
	}
	free(body);
	free(vapid);
	free(auth);
	return ok;
}

/* Sends one job; false if it could not be started. */
static bool send_job(gw *g, job *j)
{
	static char body[TOKEN_MAX * 2 + 512];
	char url[URL_MAX], ctype[] = "Content-Type: application/json";
	char h_type[64], h_prio[32], h_topic[300], h_collapse[] = "apns-collapse-id: chat-wake";
	const char *hdr[HEADER_LINES_MAX + 8];
	size_t nh = 0, n = 0;
	const endpoint *e = &g->ep[j->platform];
	for (size_t i = 0; e->lines[i]; i++)
		hdr[nh++] = e->lines[i];
	hdr[nh++] = ctype;
	switch (j->platform) {
	case P_FCM:
		if (g->fcm.on) {
			hdr[nh++] = g->fcm.auth;
			j->cred_gen = g->fcm.gen;
		}
		snprintf(url, sizeof(url), "%s", g->fcm.on ? g->fcm.url : e->url_arg);
		n = (size_t)snprintf(body, sizeof(body), "{\"message\":{\"token\":\"");
		n = json_str(body, sizeof(body), n, j->token);
		n += (size_t)snprintf(body + n, sizeof(body) - n,
		                      "\",\"data\":{\"pending\":\"%llu\"},\"android\":{\"priority\":\"high\"}}}",
		                      (unsigned long long)j->pending);
		break;
	case P_APNS: {
		const char *base = e->url_arg ? e->url_arg : "https://api.push.apple.com";
		const char *at = strstr(base, "{token}");
		if (at)
			snprintf(url, sizeof(url), "%.*s%s%s", (int)(at - base), base, j->token, at + 7);
		else
			snprintf(url, sizeof(url), "%s/3/device/%s", base, j->token);
		if (g->apns.on) {
			const char *auth = apns_auth(g);
			if (!auth)
				return false;
			hdr[nh++] = auth;
			j->cred_gen = g->apns.gen;
			snprintf(h_type, sizeof(h_type), "apns-push-type: %s", j->alert ? "alert" : "background");
			snprintf(h_prio, sizeof(h_prio), "apns-priority: %d", j->alert ? 10 : 5);
			snprintf(h_topic, sizeof(h_topic), "apns-topic: %s", g->apns.topic);
			hdr[nh++] = h_type;
			hdr[nh++] = h_prio;
			hdr[nh++] = h_topic;
			hdr[nh++] = h_collapse;
		}
		if (j->alert)
			/* Visible, but generic: the app's notification service
			 * extension may fetch and decrypt; the text is a key of the
			 * app's Localizable.strings, never message content. */
			n = (size_t)snprintf(body, sizeof(body),
			                     "{\"aps\":{\"alert\":{\"loc-key\":\"CHAT_NEW_MESSAGES\"},"
			                     "\"mutable-content\":1,\"sound\":\"default\"},\"pending\":%llu}",
			                     (unsigned long long)j->pending);
		else
			n = (size_t)snprintf(body, sizeof(body), "{\"aps\":{\"content-available\":1},\"pending\":%llu}",
			                     (unsigned long long)j->pending);
		break;
	}
	case P_WEBPUSH:
		if (g->wp.on)
			return send_webpush(g, j, hdr, nh);
		__attribute__((fallthrough)); /* a relay */
	default:
		snprintf(url, sizeof(url), "%s", e->url_arg);
		n = (size_t)snprintf(body, sizeof(body), "{\"token\":\"");
		n = json_str(body, sizeof(body), n, j->token);
		n += (size_t)snprintf(body + n, sizeof(body) - n, "\",\"pending\":%llu}",
		                      (unsigned long long)j->pending);
	}
	hdr[nh] = NULL;
	if (n >= sizeof(body))
		n = sizeof(body) - 1;
	j->attempt++;
	if (!http_post(g->http, url, hdr, body, n, on_done, j)) {
		j->attempt--;
		return false;
	}
	return true;
}

/* Moves ready jobs into flight, up to --max-inflight. */
static void pump(gw *g)
{
	while (g->ready.head && http_inflight(g->http) < g->max_inflight) {
		job *j = q_pop(&g->ready);
		if (j->platform == P_FCM && g->fcm.on && !fcm_token_usable(g)) {
			q_push(&g->fcm.waiting, j);
			continue;
		}
		if (!send_job(g, j))
			retry_later(g, j, "the request could not be set up");
	}
	fcm_maintain(g);
}

static void on_done(void *arg, const http_result *r)
{
	job *j = arg;
	gw *g = j->gw;
	if (g->closing) {
		g->held--;
		free(j);
		return;
	}
	if (r->new_connection)
		daemon_log(LOG_INFO, "opened a %s connection for %s", r->http2 ? "HTTP/2" : "HTTP/1.x",
		           platform_names[j->platform]);
	char why[300];
	enum verdict v = classify(g, j, r, why, sizeof(why));
	daemon_log(LOG_DEBUG, "wake-up %llu for %s (%s): %s", (unsigned long long)j->id, j->to,
	           platform_names[j->platform], why);
	if (r->err)
		g->n.http_errors++;
	else if (r->status == 429)
		g->n.throttled++;
	else if (r->status >= 500)
		g->n.server_errors++;
	switch (v) {
	case V_OK:
		finish(g, j, "ok", why);
		break;
	case V_INVALID:
		finish(g, j, "invalid", why);
		break;
	case V_REJECTED:
		g->n.failed_rejected++;
		finish(g, j, "failed", why);
		break;
	case V_RETRY:
		retry_later(g, j, why);
		break;
	case V_AUTH: {
		bool renewable = (j->platform == P_FCM && g->fcm.on) || (j->platform == P_APNS && g->apns.on);
		if (!renewable || j->auth_retried) {
			g->n.failed_auth++;
			finish(g, j, "failed", why);
			break;
		}
		/* Renew the credential (unless a newer one is out already) and
		 * try once more with it. */
		j->auth_retried = true;
		g->n.auth_renewals++;
		daemon_log(LOG_WARN, "%s refused the credential (%s): renewing it",
		           platform_names[j->platform], why);
		if (j->platform == P_FCM && j->cred_gen == g->fcm.gen) {
			fcm_drop_token(g);
			g->fcm.fetch_due_ms = 0;
		} else if (j->platform == P_APNS && j->cred_gen == g->apns.gen) {
			free(g->apns.auth);
			g->apns.auth = NULL;
		}
		q_push(&g->ready, j);
		break;
	}
	}
}

/* ---- credentials: load and reload ---- */

/* Reads header lines ("Name: value") into e->hbuf / e->lines; blank lines
 * skipped. Returns a reason on failure (e unchanged then). */
static const char *read_headers(endpoint *e)
{
	FILE *f = fopen(e->auth_file, "r");
	if (!f)
		return strerror(errno);
	char line[HEADERS_MAX], buf[HEADERS_MAX];
	size_t n = 0, count = 0;
	size_t starts[HEADER_LINES_MAX];
	const char *why = NULL;
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
		else if (n + l + 1 > sizeof(buf) || count == HEADER_LINES_MAX)
			why = "too long";
		else {
			starts[count++] = n;
			memcpy(buf + n, line, l + 1);
			n += l + 1;
		}
	}
	fclose(f);
	sodium_memzero(line, sizeof(line));
	if (!why) {
		sodium_memzero(e->hbuf, sizeof(e->hbuf));
		memcpy(e->hbuf, buf, n);
		for (size_t i = 0; i < count; i++)
			e->lines[i] = e->hbuf + starts[i];
		e->lines[count] = NULL;
	}
	sodium_memzero(buf, sizeof(buf));
	return why;
}

/* Loads (or on SIGHUP re-loads) every credential; on failure nothing
 * changes and err says why. */
static bool load_credentials(gw *g, char *err, size_t errlen)
{
	fcm_account acct = { 0 };
	EVP_PKEY *key = NULL, *vapid = NULL;
	if (g->fcm.on && !fcm_account_load(g->fcm.file, &acct, err, errlen))
		return false;
	if (g->apns.on && !(key = apns_key_load(g->apns.key_file, err, errlen))) {
		fcm_account_free(&acct);
		return false;
	}
	if (g->wp.on && !(vapid = apns_key_load(g->wp.key_file, err, errlen))) {
		fcm_account_free(&acct);
		EVP_PKEY_free(key);
		return false;
	}
	for (int k = 0; k < P_COUNT; k++) {
		endpoint *e = &g->ep[k];
		const char *why;
		if (e->auth_file && (why = read_headers(e))) {
			snprintf(err, errlen, "--%s-auth %s: %s", platform_names[k], e->auth_file, why);
			fcm_account_free(&acct);
			EVP_PKEY_free(key);
			EVP_PKEY_free(vapid);
			return false;
		}
	}
	if (g->wp.on) {
		EVP_PKEY_free(g->wp.key);
		g->wp.key = vapid;
	}
	if (g->fcm.on) {
		fcm_account_free(&g->fcm.acct);
		g->fcm.acct = acct;
		if (g->ep[P_FCM].url_arg)
			snprintf(g->fcm.url, sizeof(g->fcm.url), "%s", g->ep[P_FCM].url_arg);
		else
			snprintf(g->fcm.url, sizeof(g->fcm.url),
			         "https://fcm.googleapis.com/v1/projects/%s/messages:send", acct.project_id);
		fcm_drop_token(g); /* a token of the new account, please */
		g->fcm.fetch_due_ms = 0;
		g->fcm.fetch_delay = 0;
	}
	if (g->apns.on) {
		EVP_PKEY_free(g->apns.key);
		g->apns.key = key;
		free(g->apns.auth);
		g->apns.auth = NULL;
	}
	return true;
}

static void reload(gw *g)
{
	char err[512];
	if (load_credentials(g, err, sizeof(err))) {
		g->n.reloads++;
		daemon_log(LOG_INFO, "SIGHUP: credentials re-read");
	} else {
		g->n.reload_failures++;
		daemon_log(LOG_ERR, "SIGHUP: keeping the old credentials: %s", err);
	}
}

/* ---- MQTT ---- */

static bool parse_wake(const struct mosquitto_message *msg, enum platform *p, uint64_t *id,
                       uint64_t *pending, bool *alert, const char **to, size_t *tolen,
                       const char **tok, size_t *toklen)
{
	cbr r;
	cbr_item map, key, val;
	bool has_id = false, has_p = false;
	*to = *tok = NULL;
	*pending = 0;
	*alert = false;
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
		} else if (cbr_eq(&key, "mode") && val.type == CBR_TEXT) {
			*alert = cbr_eq(&val, "alert");
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
	bool alert;
	const char *to, *tok;
	size_t tolen = 0, toklen = 0;
	if (!parse_wake(msg, &p, &id, &pending, &alert, &to, &tolen, &tok, &toklen)) {
		daemon_log(LOG_WARN, "ignoring a malformed wake-up on %s (%d bytes)", msg->topic, msg->payloadlen);
		g->n.malformed++;
		return;
	}
	g->n.received++;
	job *j = g->held < QUEUE_MAX ? calloc(1, sizeof(*j) + toklen + 1) : NULL;
	if (!j) {
		g->n.dropped++; /* unacknowledged: the plugin resends it */
		return;
	}
	g->held++;
	j->gw = g;
	j->platform = p;
	j->alert = alert;
	j->id = id;
	j->pending = pending;
	memcpy(j->to, to, tolen);
	memcpy(j->token, tok, toklen);
	if (!g->ep[p].on) {
		g->n.failed_unconfigured++;
		finish(g, j, "failed", "no endpoint configured for this platform");
		return;
	}
	q_push(&g->ready, j);
	pump(g);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	(void)flags, (void)props;
	gw *g = obj;
	char filter[TOPIC_MAX];
	snprintf(filter, sizeof(filter), "$share/%s/%s/push/wake", g->group, g->prefix);
	char *const subs[] = { filter };
	mqtt_service_subscribe(m, g->host, g->port, rc, subs, 1, 1);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
	(void)mid, (void)props;
	gw *g = obj;
	if (!mqtt_service_granted(m, g->user, 1, n, granted, "forwarding wake-ups"))
		return;
	g->connected = true;
	g->stats_due = g->stats_s > 0; /* the plugin hears of us at once */
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	(void)m, (void)props;
	gw *g = obj;
	g->connected = false;
	mqtt_service_lost(rc);
}

static void log_counts(gw *g, const char *when)
{
	counts c = g->n;
	daemon_log(LOG_INFO, "%s: received %llu, delivered %llu, invalid %llu, failed %llu, retries %llu, "
	           "dropped %llu, malformed %llu, queued %zu; failed for credentials %llu, rejected %llu, "
	           "retries exhausted %llu; HTTP errors %llu, 429s %llu, 5xxs %llu; credential renewals "
	           "%llu, token requests %llu (failed %llu); connections %llu", when,
	           (unsigned long long)c.received, (unsigned long long)c.delivered,
	           (unsigned long long)c.invalid, (unsigned long long)c.failed,
	           (unsigned long long)c.retries, (unsigned long long)c.dropped,
	           (unsigned long long)c.malformed, g->held,
	           (unsigned long long)c.failed_auth, (unsigned long long)c.failed_rejected,
	           (unsigned long long)c.failed_exhausted, (unsigned long long)c.http_errors,
	           (unsigned long long)c.throttled, (unsigned long long)c.server_errors,
	           (unsigned long long)c.auth_renewals, (unsigned long long)c.token_fetches,
	           (unsigned long long)c.token_failures, (unsigned long long)c.connections);
}

/* {gw, <counter>: n, …} on <prefix>/push/stats (QoS 0: the next one
 * replaces a lost one). */
static void publish_stats(gw *g)
{
	static const char *const names[] = {
#define X(n) #n,
		COUNTERS(X)
#undef X
	};
	const uint64_t *v = (const uint64_t *)(const void *)&g->n;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 1 + sizeof(names) / sizeof(names[0]));
	cbw_text(&w, "gw"); cbw_text(&w, g->gw_id);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cbw_text(&w, names[i]);
		cbw_uint(&w, v[i]);
	}
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/push/stats", g->prefix);
	if (!cbw_status(&w))
		mosquitto_publish_v5(g->mosq, NULL, topic, (int)w.len, w.buf, 0, false, NULL);
	cbw_free(&w);
}

/* Acknowledges what finished (only while connected: an ack lost with the
 * connection means a resend, never a loss). */
static void drain_done(gw *g)
{
	if (!g->connected)
		return;
	for (job *j; (j = q_pop(&g->done));) {
		publish_ack(g, j);
		g->held--;
		free(j);
	}
}

/* Retries whose time has come go back to the ready queue; returns the
 * milliseconds until the next one (or max). */
static int release_due(gw *g, int max)
{
	long long now = now_ms(), next = now + max;
	queue keep = { 0 };
	for (job *j; (j = q_pop(&g->later));) {
		if (j->due_ms <= now) {
			q_push(&g->ready, j);
		} else {
			if (j->due_ms < next)
				next = j->due_ms;
			q_push(&keep, j);
		}
	}
	g->later = keep;
	if (g->fcm.on && g->fcm.fetch_due_ms > now && g->fcm.fetch_due_ms < next &&
	    (g->fcm.waiting.n || g->fcm.auth))
		next = g->fcm.fetch_due_ms;
	return (int)(next - now);
}

/* One turn of the gateway's loop (mqtt_service runs mosquitto_loop without
 * waiting): retries that fell due, new requests, one poll over the MQTT
 * socket and the HTTP transfers together, acknowledgements. */
static void tick(void *obj)
{
	gw *g = obj;
	if (daemon_hup_take())
		reload(g);
	int wait = release_due(g, 50);
	pump(g);
	drain_done(g);
	int fd = g->connected ? mosquitto_socket(g->mosq) : -1;
	short ev = (short)(POLLIN | (fd >= 0 && mosquitto_want_write(g->mosq) ? POLLOUT : 0));
	http_poll(g->http, fd, ev, g->ready.head && http_inflight(g->http) < g->max_inflight ? 0
	                                : wait < 0 ? 0 : wait);
	g->n.connections = http_connections(g->http);
	pump(g);
	drain_done(g);
	if (g->stats_s && daemon_mono_s() >= g->next_stats) {
		log_counts(g, "counts");
		g->next_stats = daemon_mono_s() + g->stats_s;
		g->stats_due = true;
	}
	if (g->stats_due && g->connected) {
		publish_stats(g);
		g->stats_due = false;
	}
}

/* Between reconnects: keep the transfers moving (their acks wait). */
static void idle(void *obj)
{
	tick(obj);
}

static bool serve(gw *g)
{
	g->next_stats = daemon_mono_s() + g->stats_s;
	mqtt_service m = { .mosq = g->mosq, .host = g->host, .port = g->port, .loop_ms = 0,
	                   .connected = &g->connected, .tick = tick, .idle = idle, .obj = g };
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
	        "                   [--fcm-credentials FILE [--fcm-url URL]]\n"
	        "                   [--apns-key FILE --apns-key-id ID --apns-team-id ID --apns-topic TOPIC\n"
	        "                    [--apns-url URL] [--apns-renew S]]\n"
	        "                   [--fcm-url URL --fcm-auth FILE] [--apns-url URL --apns-auth FILE]\n"
	        "                   [--webpush-vapid-key FILE --webpush-subject mailto:ADDR]\n"
	        "                   [--webpush-url URL [--webpush-auth FILE]]\n"
	        "                   [--provider-cafile FILE] [--max-inflight N]\n"
	        "                   [--share-group NAME] [--topic-prefix PREFIX]\n"
	        "                   [--timeout-ms MS] [--max-attempts N] [--retry-min-ms MS]\n"
	        "                   [--retry-max-ms MS] [--stats-interval S]\n"
	        "                   [--log-level error|warning|info|debug]\n"
	        "                   [--cafile FILE] [--capath DIR] [--cert FILE --key FILE]\n"
	        "                   [--insecure] [--tls-version V]\n"
	        "       chat-pushgw --help | --version\n"
	        "Forwards mosquitto-chat wake-ups to FCM (HTTP v1, a service-account file),\n"
	        "APNs (token-based: the .p8 key) or a relay, over HTTPS and HTTP/2. A relay's\n"
	        "auth file holds header lines (\"Authorization: Bearer ...\"). SIGHUP re-reads\n"
	        "the credential files. See docs/OPERATIONS.md, \"Push\".\n"
	        "TLS to the broker (as mosquitto_sub; docs/OPERATIONS.md, \"TLS\"):\n"
	        MQTT_TLS_USAGE);
}

enum { OPT_TOKEN = 256, OPT_GROUP, OPT_PREFIX, OPT_FCM, OPT_FCM_AUTH, OPT_FCM_CREDS, OPT_APNS,
       OPT_APNS_AUTH, OPT_APNS_KEY, OPT_APNS_KID, OPT_APNS_TEAM, OPT_APNS_TOPIC, OPT_APNS_RENEW,
       OPT_WEB, OPT_WEB_AUTH, OPT_WEB_KEY, OPT_WEB_SUB, OPT_WORKERS, OPT_INFLIGHT, OPT_PCAFILE, OPT_TIMEOUT, OPT_ATTEMPTS,
       OPT_RMIN, OPT_RMAX, OPT_STATS, OPT_LOG, OPT_HELP, OPT_VERSION };

static bool printable_id(const char *s, size_t max)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
			return false;
	return n > 0 && n <= max;
}

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
		{ "fcm-credentials", required_argument, NULL, OPT_FCM_CREDS },
		{ "apns-url", required_argument, NULL, OPT_APNS },
		{ "apns-auth", required_argument, NULL, OPT_APNS_AUTH },
		{ "apns-key", required_argument, NULL, OPT_APNS_KEY },
		{ "apns-key-id", required_argument, NULL, OPT_APNS_KID },
		{ "apns-team-id", required_argument, NULL, OPT_APNS_TEAM },
		{ "apns-topic", required_argument, NULL, OPT_APNS_TOPIC },
		{ "apns-renew", required_argument, NULL, OPT_APNS_RENEW },
		{ "webpush-url", required_argument, NULL, OPT_WEB },
		{ "webpush-auth", required_argument, NULL, OPT_WEB_AUTH },
		{ "webpush-vapid-key", required_argument, NULL, OPT_WEB_KEY },
		{ "webpush-subject", required_argument, NULL, OPT_WEB_SUB },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "max-inflight", required_argument, NULL, OPT_INFLIGHT },
		{ "provider-cafile", required_argument, NULL, OPT_PCAFILE },
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
	uint32_t port = 0, workers = 0;
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
		case OPT_FCM_CREDS: g->fcm.file = optarg; break;
		case OPT_APNS: g->ep[P_APNS].url_arg = optarg; break;
		case OPT_APNS_AUTH: g->ep[P_APNS].auth_file = optarg; break;
		case OPT_APNS_KEY: g->apns.key_file = optarg; break;
		case OPT_APNS_KID: g->apns.key_id = optarg; if (!printable_id(optarg, 64)) bad = "--apns-key-id"; break;
		case OPT_APNS_TEAM: g->apns.team_id = optarg; if (!printable_id(optarg, 64)) bad = "--apns-team-id"; break;
		case OPT_APNS_TOPIC: g->apns.topic = optarg; if (!printable_id(optarg, 255)) bad = "--apns-topic"; break;
		case OPT_APNS_RENEW: if (!daemon_parse_u32(optarg, 1, 3300, &g->apns.renew_s)) bad = "--apns-renew"; break;
		case OPT_WEB: g->ep[P_WEBPUSH].url_arg = optarg; break;
		case OPT_WEB_AUTH: g->ep[P_WEBPUSH].auth_file = optarg; break;
		case OPT_WEB_KEY: g->wp.key_file = optarg; break;
		case OPT_WEB_SUB:
			g->wp.subject = optarg;
			if ((strncmp(optarg, "mailto:", 7) && strncmp(optarg, "https://", 8)) ||
			    !printable_id(optarg, 255))
				bad = "--webpush-subject";
			break;
		case OPT_WORKERS: if (!daemon_parse_u32(optarg, 1, 256, &workers)) bad = "--workers"; break;
		case OPT_INFLIGHT: if (!daemon_parse_u32(optarg, 1, 100000, &g->max_inflight)) bad = "--max-inflight"; break;
		case OPT_PCAFILE: g->provider_cafile = optarg; break;
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
	const char *pfx = daemon_err_prefix();
	if (bad) {
		fprintf(stderr, "%schat-pushgw: invalid value for %s\n", pfx, bad);
		return 2;
	}
	if (optind != argc || !g->host || !port || !g->user || !g->token_file) {
		usage(stderr);
		return 2;
	}
	if (g->retry_max_ms < g->retry_min_ms) {
		fprintf(stderr, "%schat-pushgw: --retry-max-ms must be at least --retry-min-ms\n", pfx);
		return 2;
	}
	g->port = (int)port;
	char err[512];
	if (!mqtt_tls_check(&g->tls, err, sizeof(err))) {
		fprintf(stderr, "%schat-pushgw: %s\n", pfx, err);
		return 2;
	}
	g->fcm.on = g->fcm.file != NULL;
	g->apns.on = g->apns.key_file != NULL;
	if (g->fcm.on && g->ep[P_FCM].auth_file) {
		fprintf(stderr, "%schat-pushgw: --fcm-credentials and --fcm-auth exclude each other\n", pfx);
		return 2;
	}
	if (g->apns.on && g->ep[P_APNS].auth_file) {
		fprintf(stderr, "%schat-pushgw: --apns-key and --apns-auth exclude each other\n", pfx);
		return 2;
	}
	if (g->apns.on && (!g->apns.key_id || !g->apns.team_id || !g->apns.topic)) {
		fprintf(stderr, "%schat-pushgw: --apns-key needs --apns-key-id, --apns-team-id and --apns-topic\n", pfx);
		return 2;
	}
	g->wp.on = g->wp.key_file != NULL;
	if (g->wp.on != (g->wp.subject != NULL) || (g->wp.on && (g->ep[P_WEBPUSH].url_arg ||
	                                                         g->ep[P_WEBPUSH].auth_file))) {
		fprintf(stderr, "%schat-pushgw: --webpush-vapid-key and --webpush-subject go together, "
		        "and exclude --webpush-url/--webpush-auth (a relay)\n", pfx);
		return 2;
	}
	if (!g->apns.on && (g->apns.key_id || g->apns.team_id || g->apns.topic)) {
		fprintf(stderr, "%schat-pushgw: --apns-key-id, --apns-team-id and --apns-topic need --apns-key\n", pfx);
		return 2;
	}
	bool any = false;
	for (int k = 0; k < P_COUNT; k++) {
		endpoint *e = &g->ep[k];
		bool keyed = (k == P_FCM && g->fcm.on) || (k == P_APNS && g->apns.on) ||
		             (k == P_WEBPUSH && g->wp.on);
		if (!e->url_arg && !keyed) {
			if (e->auth_file) {
				fprintf(stderr, "%schat-pushgw: --%s-auth without --%s-url\n", pfx, platform_names[k],
				        platform_names[k]);
				return 2;
			}
			continue;
		}
		if (e->url_arg && strncmp(e->url_arg, "https://", 8) && strncmp(e->url_arg, "http://", 7)) {
			fprintf(stderr, "%schat-pushgw: --%s-url %s: the URL must start with https:// or http://\n",
			        pfx, platform_names[k], e->url_arg);
			return 2;
		}
		if (e->url_arg && (strlen(e->url_arg) > 1024 || strpbrk(e->url_arg, " \r\n"))) {
			fprintf(stderr, "%schat-pushgw: --%s-url: too long, or spaces or line breaks\n", pfx,
			        platform_names[k]);
			return 2;
		}
		e->on = any = true;
	}
	if (!any) {
		fprintf(stderr, "%schat-pushgw: configure at least one of --fcm-credentials, --apns-key, "
		        "--webpush-vapid-key, --fcm-url, --apns-url, --webpush-url\n", pfx);
		return 2;
	}
	if (!load_credentials(g, err, sizeof(err))) {
		fprintf(stderr, "%schat-pushgw: %s\n", pfx, err);
		return 2;
	}
	if (workers)
		fprintf(stderr, "chat-pushgw: --workers is no longer used (one thread multiplexes every "
		        "request; see --max-inflight)\n");
	return 0;
}

static void cleanup(gw *g)
{
	g->closing = true;
	http_client_free(g->http); /* in-flight jobs are freed by their callbacks */
	g->http = NULL;
	q_free(g, &g->ready);
	q_free(g, &g->later);
	q_free(g, &g->done);
	q_free(g, &g->fcm.waiting);
	fcm_drop_token(g);
	fcm_account_free(&g->fcm.acct);
	EVP_PKEY_free(g->apns.key);
	EVP_PKEY_free(g->wp.key);
	free(g->apns.auth);
	for (int k = 0; k < P_COUNT; k++)
		sodium_memzero(g->ep[k].hbuf, sizeof(g->ep[k].hbuf));
}

int main(int argc, char **argv)
{
	static gw g = { .group = "pushgw", .prefix = "chat", .timeout_ms = 10000, .max_inflight = 1000,
	                .max_attempts = 6, .retry_min_ms = 500, .retry_max_ms = 30000, .stats_s = 60,
	                .log_level = LOG_INFO, .apns = { .renew_s = 2400 } };
	if (sodium_init() < 0) {
		fprintf(stderr, "chat-pushgw: libsodium failed to initialise\n");
		return 1;
	}
	int rc = parse_args(&g, argc, argv);
	if (rc) {
		cleanup(&g);
		return rc;
	}
	daemon_log_init("chat-pushgw", g.log_level);
	{
		unsigned char r[8];
		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(g.gw_id, sizeof(g.gw_id), r, sizeof(r));
	}
	daemon_signals_init(false);
	daemon_hup_init();

	char token[512];
	if (!daemon_token_read(g.token_file, token, sizeof(token))) {
		daemon_log(LOG_ERR, "cannot read a token from %s", g.token_file);
		sodium_memzero(token, sizeof(token));
		cleanup(&g);
		return 1;
	}
	rc = 1;
	char err[256];
	http_opts ho = { .cafile = g.provider_cafile, .timeout_ms = g.timeout_ms,
	                 .connect_timeout_ms = g.timeout_ms, .max_streams = 1000 };
	mosquitto_lib_init();
	if (!(g.http = http_client_new(&ho, err, sizeof(err)))) {
		daemon_log(LOG_ERR, "%s", err);
		goto out;
	}
	g.mosq = mqtt_service_client_new("chat-pushgw", g.user, token, sizeof(token), &g.tls, &g);
	if (!g.mosq)
		goto out;
	mosquitto_connect_v5_callback_set(g.mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(g.mosq, on_subscribe);
	mosquitto_message_v5_callback_set(g.mosq, on_message);
	mosquitto_disconnect_v5_callback_set(g.mosq, on_disconnect);
	if (g.fcm.on)
		daemon_log(LOG_INFO, "fcm wake-ups go to %s as %s (token from %s)", g.fcm.url,
		           g.fcm.acct.client_email, g.fcm.acct.token_uri);
	else if (g.ep[P_FCM].on)
		daemon_log(LOG_INFO, "fcm wake-ups go to %s", g.ep[P_FCM].url_arg);
	if (g.ep[P_APNS].on)
		daemon_log(LOG_INFO, "apns wake-ups go to %s%s%s", g.ep[P_APNS].url_arg ? g.ep[P_APNS].url_arg
		           : "https://api.push.apple.com", g.apns.on ? " for topic " : "",
		           g.apns.on ? g.apns.topic : "");
	if (g.wp.on)
		daemon_log(LOG_INFO, "webpush wake-ups go to each subscription's endpoint (VAPID %s)",
		           g.wp.subject);
	else if (g.ep[P_WEBPUSH].on)
		daemon_log(LOG_INFO, "webpush wake-ups go to %s", g.ep[P_WEBPUSH].url_arg);
	if (serve(&g))
		rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	log_counts(&g, "stopping");
	if (g.mosq)
		mosquitto_destroy(g.mosq);
	mosquitto_lib_cleanup();
	cleanup(&g);
	return rc;
}
