// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* mqtt_tls.c — TLS options for the broker's clients (see mqtt_tls.h). */
#include "mqtt_tls.h"

#include <errno.h>
#include <mosquitto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The first error libmosquitto logged on this thread since the last
 * mqtt_tls_why(): its TLS failures are told only there. One MQTT thread per
 * program, so one slot per thread is enough. */
static _Thread_local char last_error[256];
/* Whether this thread's client speaks TLS (a bare EPROTO then means the
 * handshake failed without a word from OpenSSL). */
static _Thread_local bool tls_on;

bool mqtt_tls_getopt(mqtt_tls *t, int c, const char *arg)
{
	switch (c) {
	case MQTT_TLS_CAFILE: t->cafile = arg; return true;
	case MQTT_TLS_CAPATH: t->capath = arg; return true;
	case MQTT_TLS_CERT: t->certfile = arg; return true;
	case MQTT_TLS_KEY: t->keyfile = arg; return true;
	case MQTT_TLS_INSECURE: t->insecure = true; return true;
	case MQTT_TLS_VERSION: t->version = arg; return true;
	default: return false;
	}
}

bool mqtt_tls_enabled(const mqtt_tls *t)
{
	return t->cafile || t->capath;
}

/* A file (or, with dir, a directory) we can read; else a reason in err. */
static bool readable(const char *opt, const char *path, bool dir, char *err, size_t cap)
{
	struct stat st;
	const char *why = NULL;
	if (!*path)
		why = "empty path";
	else if (stat(path, &st) != 0 || access(path, dir ? R_OK | X_OK : R_OK) != 0)
		why = strerror(errno);
	else if (dir && !S_ISDIR(st.st_mode))
		why = "not a directory";
	else if (!dir && S_ISDIR(st.st_mode))
		why = "a directory, not a file";
	if (why)
		snprintf(err, cap, "cannot read %s %s: %s", opt, path, why);
	return !why;
}

bool mqtt_tls_check(const mqtt_tls *t, char *err, size_t cap)
{
	if (!mqtt_tls_enabled(t)) {
		const char *opt = t->certfile ? "--cert" : t->keyfile ? "--key" :
		                  t->insecure ? "--insecure" : t->version ? "--tls-version" : NULL;
		if (opt) {
			snprintf(err, cap, "%s needs --cafile or --capath (the CA that signed the "
			         "broker's certificate)", opt);
			return false;
		}
		return true;
	}
	if (!t->certfile != !t->keyfile) {
		snprintf(err, cap, "%s needs %s too", t->certfile ? "--cert" : "--key",
		         t->certfile ? "--key" : "--cert");
		return false;
	}
	if (t->version && strcasecmp(t->version, "tlsv1.3") && strcasecmp(t->version, "tlsv1.2") &&
	    strcasecmp(t->version, "tlsv1.1")) {
		snprintf(err, cap, "invalid --tls-version '%s' (tlsv1.3, tlsv1.2 or tlsv1.1)",
		         t->version);
		return false;
	}
	return (!t->cafile || readable("--cafile", t->cafile, false, err, cap)) &&
	       (!t->capath || readable("--capath", t->capath, true, err, cap)) &&
	       (!t->certfile || readable("--cert", t->certfile, false, err, cap)) &&
	       (!t->keyfile || readable("--key", t->keyfile, false, err, cap));
}

static void on_log(struct mosquitto *mosq, void *obj, int level, const char *msg)
{
	(void)mosq, (void)obj;
	if (level == MOSQ_LOG_ERR && !last_error[0] && msg && *msg)
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

bool mqtt_tls_apply(const mqtt_tls *t, struct mosquitto *mosq, char *err, size_t cap)
{
	if (!mqtt_tls_check(t, err, cap))
		return false;
	if (!mqtt_tls_enabled(t))
		return true;
	last_error[0] = '\0';
	tls_on = true;
	mosquitto_log_callback_set(mosq, on_log);
	int rc = mosquitto_tls_set(mosq, t->cafile, t->capath, t->certfile, t->keyfile, NULL);
	/* mosquitto_tls_opts_set() without a version would pin TLS 1.2: only
	 * with one. */
	if (rc == MOSQ_ERR_SUCCESS && t->version)
		rc = mosquitto_tls_opts_set(mosq, 1, t->version, NULL);
	if (rc == MOSQ_ERR_SUCCESS && t->insecure)
		rc = mosquitto_tls_insecure_set(mosq, true);
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(err, cap, "cannot set the TLS options: %s", rc == MOSQ_ERR_NOT_SUPPORTED ?
		         "this libmosquitto was built without TLS" : mosquitto_strerror(rc));
		return false;
	}
	return true;
}

const char *mqtt_tls_why(int rc, char *buf, size_t cap)
{
	int e = errno;
	if (last_error[0]) {
		/* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate
		 * verify failed": the part after the last colon says it; and
		 * libmosquitto's own lines start "Error: ". */
		const char *msg = last_error, *colon = strrchr(msg, ':');
		if (strncmp(msg, "OpenSSL Error", 13) == 0 && colon && colon[1])
			msg = colon + 1;
		else if (strncmp(msg, "Error: ", 7) == 0)
			msg += 7;
		const char *hint = "";
		if (strstr(msg, "certificate verify failed"))
			hint = " (is --cafile/--capath the CA that signed the broker's certificate, and "
			       "does that certificate name the host given to -h?)";
		else if (strstr(msg, "wrong version number") || strstr(msg, "packet length too long"))
			hint = " (is this port a TLS listener?)";
		else if (strstr(msg, "certificate required"))
			hint = " (this listener wants a client certificate: --cert and --key)";
		snprintf(buf, cap, "TLS: %s%s", msg, hint);
		last_error[0] = '\0';
	} else if (rc == MOSQ_ERR_SUCCESS) {
		buf[0] = '\0';
	} else if (rc == MOSQ_ERR_ERRNO && e == EPROTO && tls_on) {
		snprintf(buf, cap, "TLS: %s (is this port a TLS listener?)", strerror(e));
	} else if (rc == MOSQ_ERR_ERRNO) {
		snprintf(buf, cap, "%s", strerror(e));
	} else if (rc == MOSQ_ERR_EAI) {
		snprintf(buf, cap, "cannot resolve the host name");
	} else {
		snprintf(buf, cap, "%s", mosquitto_strerror(rc));
	}
	return buf;
}
