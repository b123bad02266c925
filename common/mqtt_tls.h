// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* mqtt_tls.h — TLS to the broker for every program that connects to it
 * (chatctl, chat-keyserver, chat-pushgw, chat-client): mosquitto_sub's
 * options, with its names and meaning, parsed and applied in one place.
 *
 *   --cafile FILE        trust the CAs in FILE (PEM); turns TLS on
 *   --capath DIR         trust the CAs in DIR (c_rehash'ed); turns TLS on
 *   --cert FILE          client certificate (listeners with require_certificate)
 *   --key FILE           its private key (unencrypted PEM)
 *   --insecure           do not check that the certificate names the host
 *   --tls-version V      tlsv1.3, tlsv1.2 or tlsv1.1 (default: 1.2 or later)
 *
 * Errors are sentences for a person, written into the caller's buffer; each
 * program prints them its own way. A file that cannot be read is found before
 * connecting; a bad certificate or key, or a broker that the CA did not sign,
 * when connecting: libmosquitto reports those only through its log callback,
 * which mqtt_tls_apply() installs so that mqtt_tls_why() can tell them.
 */
#ifndef CHAT_MQTT_TLS_H
#define CHAT_MQTT_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct mosquitto;

typedef struct mqtt_tls {
	const char *cafile, *capath, *certfile, *keyfile, *version;
	bool insecure;
} mqtt_tls;

/* getopt_long codes of the options, above any character. */
enum { MQTT_TLS_CAFILE = 0x7100, MQTT_TLS_CAPATH, MQTT_TLS_CERT, MQTT_TLS_KEY,
       MQTT_TLS_INSECURE, MQTT_TLS_VERSION };

/* Rows for a getopt_long table (<getopt.h>). */
#define MQTT_TLS_LONGOPTS                                          \
	{ "cafile", required_argument, NULL, MQTT_TLS_CAFILE },    \
	{ "capath", required_argument, NULL, MQTT_TLS_CAPATH },    \
	{ "cert", required_argument, NULL, MQTT_TLS_CERT },        \
	{ "key", required_argument, NULL, MQTT_TLS_KEY },          \
	{ "insecure", no_argument, NULL, MQTT_TLS_INSECURE },      \
	{ "tls-version", required_argument, NULL, MQTT_TLS_VERSION }

/* The options as usage lines, each starting with two spaces. */
#define MQTT_TLS_USAGE                                                                  \
	"  --cafile FILE        TLS: trust the CA certificates in FILE (turns TLS on)\n"   \
	"  --capath DIR         TLS: trust the CA certificates in DIR (turns TLS on)\n"    \
	"  --cert FILE          TLS: client certificate (with --key)\n"                    \
	"  --key FILE           TLS: the client certificate's private key\n"              \
	"  --insecure           TLS: do not check the broker certificate's host name\n"   \
	"  --tls-version V      TLS: tlsv1.3, tlsv1.2 or tlsv1.1 (default: 1.2 or later)\n"

/* Stores getopt_long's code c with its argument; false if c is not ours. */
bool mqtt_tls_getopt(mqtt_tls *t, int c, const char *arg);
/* Whether any option turns TLS on (--cafile or --capath). */
bool mqtt_tls_enabled(const mqtt_tls *t);
/* Checks the options together (a --cert needs a --key and a CA, and so on)
 * and that every file named can be read. false with a reason in err. */
bool mqtt_tls_check(const mqtt_tls *t, char *err, size_t cap);
/* Checks, then gives the options to mosq (nothing if TLS is off). false with
 * a reason in err. */
bool mqtt_tls_apply(const mqtt_tls *t, struct mosquitto *mosq, char *err, size_t cap);
/* Why a connect or loop on a client given to mqtt_tls_apply failed with rc:
 * for a TLS error, what libmosquitto logged (with a hint for the usual
 * causes), else mosquitto_strerror(rc) or, for MOSQ_ERR_ERRNO, strerror(errno);
 * rc MOSQ_ERR_SUCCESS asks only for the TLS error ("" if none). Returns buf. */
const char *mqtt_tls_why(int rc, char *buf, size_t cap);

#endif
