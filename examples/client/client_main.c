// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_main.c — chat-client's command line.
 *
 *   chat-client -h HOST -p PORT -u U/D --token-file FILE --state DIR
 *       [TLS options] [--files DIR]
 *       [--send PEER TEXT | --group G TEXT | --send-file PEER PATH [--caption TEXT]
 *        | --group G --send-file PATH [--caption TEXT] | --recv --timeout SECONDS
 *        | --safety-number PEER | --verify PEER --code CODE]
 *
 * Without a mode it is interactive (/to U, /group G, /file PATH, /quit). --send and
 * --group exit 0 once the server acknowledges the stored message (and print,
 * like --recv, what reached the device meanwhile); --recv
 * syncs, prints every new message as `conv<TAB>seq<TAB>from<TAB>text`,
 * acknowledges it, and exits after SECONDS without a new one. --send-file
 * encrypts a file, uploads it to chat-media and sends its pointer (to a
 * group with --group G); a received attachment is downloaded, checked and
 * saved under --files (default DIR/files of --state) and printed as
 * `conv<TAB>seq<TAB>from<TAB>file:PATH[<TAB>caption]`. The first run
 * with an empty --state registers the device's keys with the key server.
 * --safety-number prints the safety number with PEER (docs/E2EE.md §8) and
 * its QR payload; --verify marks PEER verified when CODE (the 60 digits the
 * peer's device shows, spaces allowed, or the QR payload in hex) matches.
 * --protocol 1 keeps to the v1 forms of docs/PROTOCOL.md (no capabilities
 * declared); the default, 2, declares sents, rcpts and batch.
 */
#include "chat_version.h"
#include "client.h"
#include "err.h"
#include "ids.h"
#include "mqtt_tls.h"
#include "safety.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <getopt.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr,
	        "usage: chat-client -h HOST -p PORT -u U/D --token-file FILE --state DIR\n"
	        "                   [--files DIR]\n"
	        "                   [--send PEER TEXT | --group G TEXT | --recv --timeout SECONDS\n"
	        "                    | --send-file PEER PATH [--caption TEXT]\n"
	        "                    | --group G --send-file PATH [--caption TEXT]\n"
	        "                    | --safety-number PEER | --verify PEER --code CODE]\n"
	        "                   [--log-key HEX] [--protocol 1|2]\n"
	        "       chat-client --help | --version\n"
	        "  no mode: interactive (/to USER, /group G, /file PATH, /safety, /verify DIGITS,\n"
	        "           /sync, /quit; other lines are sent)\n"
	        "  --send-file: encrypts the file, uploads it to chat-media, sends its pointer\n"
	        "  --files DIR: where received attachments are saved (default: DIR/files of --state)\n"
	        "  --protocol 1: the v1 forms only (default 2: declares sents, rcpts, batch)\n"
	        "TLS to the broker (as mosquitto_sub):\n" MQTT_TLS_USAGE);
}

static int read_token(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "chat-client: cannot read %s: %s\n", path, strerror(errno));
		return CHAT_EIO;
	}
	bool ok = fgets(out, (int)cap, f) != NULL;
	fclose(f);
	size_t n = ok ? strlen(out) : 0;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = 0;
	if (!n) {
		fprintf(stderr, "chat-client: %s holds no token\n", path);
		return CHAT_EINVAL;
	}
	return CHAT_OK;
}

static int do_recv(client *c, long timeout_s)
{
	if (net_publish(&c->net, "chat/sync", "\xa0", 1) != CHAT_OK)
		return 1;
	uint64_t limit = (uint64_t)timeout_s * 1000;
	c->last_msg_ms = now_ms();
	for (;;) {
		bool up = net_pump(&c->net, 50);
		chat_process(c);
		if (!up)
			return 1;
		uint64_t idle = now_ms() - c->last_msg_ms;
		if (idle >= limit && (c->sync_done || idle >= limit + 10000))
			break;
	}
	if (!c->sync_done)
		fprintf(stderr, "chat-client: the sync did not finish\n");
	return 0;
}

static int do_safety(client *c, const char *peer);
static int do_verify(client *c, const char *peer, const char *code);

static void interactive_line(client *c, char *line, char *to, char *group, bool *quit)
{
	line[strcspn(line, "\r\n")] = 0;
	if (!line[0])
		return;
	if (strcmp(line, "/quit") == 0) {
		*quit = true;
	} else if (strcmp(line, "/sync") == 0) {   /* replay what the server still holds */
		net_publish(&c->net, "chat/sync", "\xa0", 1);
	} else if (strncmp(line, "/to ", 4) == 0 && chat_valid_user(line + 4, strlen(line + 4))) {
		snprintf(to, NAME_MAX_, "%s", line + 4);
		group[0] = 0;
		printf("talking to %s\n", to);
	} else if (strncmp(line, "/group ", 7) == 0 &&
	           chat_valid_group(line + 7, strlen(line + 7))) {
		snprintf(group, NAME_MAX_, "%s", line + 7);
		to[0] = 0;
		printf("talking to group %s\n", group);
	} else if ((strcmp(line, "/safety") == 0 || strncmp(line, "/verify ", 8) == 0) && !to[0]) {
		printf("first choose a user: /to USER\n");
	} else if (strcmp(line, "/safety") == 0) {
		do_safety(c, to);
	} else if (strncmp(line, "/verify ", 8) == 0) {
		do_verify(c, to, line + 8);
	} else if (strncmp(line, "/file ", 6) == 0 && (to[0] || group[0])) {
		char conv[NAME_MAX_ + 4];
		uint64_t seq;
		media_send_file(c, to[0] ? to : NULL, group[0] ? group : NULL, line + 6, NULL, conv,
		                sizeof conv, &seq);
	} else if (line[0] == '/') {
		printf("commands: /to USER, /group G, /file PATH, /safety, /verify DIGITS, /sync, /quit\n");
	} else if (!to[0] && !group[0]) {
		printf("first choose a peer: /to USER or /group G\n");
	} else {
		char conv[NAME_MAX_ + 4];
		uint64_t seq;
		chat_send(c, to[0] ? to : NULL, group[0] ? group : NULL, line, conv, sizeof conv, &seq);
	}
	fflush(stdout);
}

static int do_interactive(client *c)
{
	/* stdin is read with read(2), not stdio: poll() cannot see lines that
	 * stdio has already buffered */
	char buf[4096], to[NAME_MAX_] = "", group[NAME_MAX_] = "";
	size_t len = 0;
	bool quit = false, eof = false;
	if (net_publish(&c->net, "chat/sync", "\xa0", 1) != CHAT_OK)
		return 1;
	printf("%s: /to USER or /group G, then type; /quit to leave\n", c->net.addr);
	fflush(stdout);
	while (!quit && !eof) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		if (poll(&pfd, 1, 0) > 0) {
			ssize_t n = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
			if (n <= 0)
				eof = true;
			else
				len += (size_t)n;
			char *nl;
			while (!quit && (nl = memchr(buf, '\n', len))) {
				*nl = 0;
				interactive_line(c, buf, to, group, &quit);
				len -= (size_t)(nl + 1 - buf);
				memmove(buf, nl + 1, len);
			}
			if (len == sizeof buf - 1 || (eof && len)) {   /* an overlong or last line */
				buf[len] = 0;
				interactive_line(c, buf, to, group, &quit);
				len = 0;
			}
		}
		if (!net_pump(&c->net, 50))
			return 1;
		chat_process(c);
	}
	return 0;
}

/* The safety number with peer from fresh device lists (and bundles where a
 * device is new). CHAT_OK with number and qr filled. */
static int safety_of(client *c, const char *peer, char *number, uint8_t *qr)
{
	int rc = chat_refresh_keys(c, peer);
	chat_process(c);
	return rc == CHAT_OK ? trust_safety(c, peer, number, qr) : rc;
}

static int do_safety(client *c, const char *peer)
{
	char number[SAFETY_DIGITS + 1], hex[2 * SAFETY_QR_LEN + 1];
	uint8_t qr[SAFETY_QR_LEN];
	if (safety_of(c, peer, number, qr) != CHAT_OK)
		return 1;
	sodium_bin2hex(hex, sizeof hex, qr, sizeof qr);
	for (char *h = hex; *h; h++)
		if (*h >= 'a' && *h <= 'f')
			*h = (char)(*h - 'a' + 'A');
	contact *k = state_contact(&c->st, peer, false);
	printf("safety number of %s and %s:\n", c->net.user, peer);
	for (int row = 0; row < 3; row++) {
		printf(" ");
		for (int g = 0; g < 4; g++)
			printf(" %.5s", number + row * 20 + g * 5);
		printf("\n");
	}
	printf("qr: %s\n%s: %s\n", hex, peer, k && k->verified ? "verified" : "not verified");
	fflush(stdout);
	return 0;
}

static int do_verify(client *c, const char *peer, const char *code)
{
	char number[SAFETY_DIGITS + 1], hex[2 * SAFETY_QR_LEN + 1], want[2 * SAFETY_QR_LEN + 1];
	uint8_t qr[SAFETY_QR_LEN];
	size_t n = 0;
	for (const char *p = code; *p; p++)
		if (*p != ' ' && *p != '-') {
			if (n + 1 == sizeof want) {
				n = 0;
				break;
			}
			want[n++] = *p >= 'A' && *p <= 'F' ? (char)(*p - 'A' + 'a') : *p;
		}
	want[n] = 0;
	if (n != SAFETY_DIGITS && n != 2 * SAFETY_QR_LEN) {
		fprintf(stderr, "chat-client: --code wants the 60 digits of the safety number "
		        "(spaces allowed) or the QR payload in hex\n");
		return 2;
	}
	if (safety_of(c, peer, number, qr) != CHAT_OK)
		return 1;
	sodium_bin2hex(hex, sizeof hex, qr, sizeof qr);
	if (strcmp(want, n == SAFETY_DIGITS ? number : hex) != 0) {
		fprintf(stderr, "chat-client: the code does not match the safety number with %s: "
		        "not verified (compare again; if it still differs, someone may be "
		        "intercepting)\n", peer);
		return 1;
	}
	contact *k = state_contact(&c->st, peer, false);
	k->verified = true;
	if (state_save(&c->st) != CHAT_OK)
		return 1;
	printf("%s: verified\n", peer);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const char *host = NULL, *addr = NULL, *token_file = NULL, *state_dir = NULL;
	const char *send_to = NULL, *group = NULL, *safety_peer = NULL, *verify_peer = NULL;
	const char *code = NULL, *files = NULL, *caption = NULL;
	bool send_file = false;
	long port = 0, timeout_s = -1;
	bool recv = false;
	enum { OPT_TOKEN = 256, OPT_STATE, OPT_SEND, OPT_GROUP, OPT_RECV, OPT_TIMEOUT, OPT_HELP,
	       OPT_VERSION, OPT_SAFETY, OPT_VERIFY, OPT_CODE, OPT_SEND_FILE, OPT_CAPTION, OPT_FILES,
	       OPT_LOG_KEY, OPT_PROTOCOL };
	static client c = { .protocol = 2 };
	static const struct option longopts[] = {
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "send", required_argument, NULL, OPT_SEND },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "recv", no_argument, NULL, OPT_RECV },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "safety-number", required_argument, NULL, OPT_SAFETY },
		{ "verify", required_argument, NULL, OPT_VERIFY },
		{ "code", required_argument, NULL, OPT_CODE },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "send-file", no_argument, NULL, OPT_SEND_FILE },
		{ "caption", required_argument, NULL, OPT_CAPTION },
		{ "files", required_argument, NULL, OPT_FILES },
		{ "log-key", required_argument, NULL, OPT_LOG_KEY },
		{ "protocol", required_argument, NULL, OPT_PROTOCOL },
		MQTT_TLS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	mqtt_tls tls = { 0 };
	int o;
	char *end;
	while ((o = getopt_long(argc, argv, "h:p:u:", longopts, NULL)) != -1) {
		switch (o) {
		case 'h': host = optarg; break;
		case 'p':
			port = strtol(optarg, &end, 10);
			if (*end || port < 1 || port > 65535) {
				fprintf(stderr, "chat-client: bad port %s\n", optarg);
				return 2;
			}
			break;
		case 'u': addr = optarg; break;
		case OPT_TOKEN: token_file = optarg; break;
		case OPT_STATE: state_dir = optarg; break;
		case OPT_SEND: send_to = optarg; break;
		case OPT_GROUP: group = optarg; break;
		case OPT_RECV: recv = true; break;
		case OPT_SAFETY: safety_peer = optarg; break;
		case OPT_VERIFY: verify_peer = optarg; break;
		case OPT_CODE: code = optarg; break;
		case OPT_SEND_FILE: send_file = true; break;
		case OPT_CAPTION: caption = optarg; break;
		case OPT_FILES: files = optarg; break;
		case OPT_TIMEOUT:
			timeout_s = strtol(optarg, &end, 10);
			if (*end || timeout_s < 0 || timeout_s > 86400) {
				fprintf(stderr, "chat-client: bad timeout %s\n", optarg);
				return 2;
			}
			break;
		case OPT_LOG_KEY:
			if (strlen(optarg) != 2 * KL_PUB ||
			    sodium_hex2bin(c.log_key, KL_PUB, optarg, strlen(optarg), NULL, NULL, NULL)) {
				fprintf(stderr, "chat-client: --log-key wants the key server's log key as "
				        "64 hex digits (its keylog.pub)\n");
				return 2;
			}
			c.log_key_set = true;
			break;
		case OPT_PROTOCOL:
			if (strcmp(optarg, "1") != 0 && strcmp(optarg, "2") != 0) {
				fprintf(stderr, "chat-client: --protocol is 1 or 2, not %s\n", optarg);
				return 2;
			}
			c.protocol = optarg[0] - '0';
			break;
		case OPT_HELP: usage(); return 0;
		case OPT_VERSION: fputs(CHAT_VERSION_LINE("chat-client"), stdout); return 0;
		default:
			if (mqtt_tls_getopt(&tls, o, optarg))
				break;
			usage();
			return 2;
		}
	}
	/* --send-file PEER PATH, or --group G --send-file PATH */
	if (send_file && !group && optind < argc)
		send_to = argv[optind++];
	const char *text = optind < argc ? argv[optind] : NULL;
	int modes = (send_to != NULL) + (group != NULL) + recv + (safety_peer != NULL) +
	            (verify_peer != NULL);
	if (send_file && !send_to && !group) {
		usage();
		return 2;
	}
	if (caption && !send_file) {
		fprintf(stderr, "chat-client: --caption goes with --send-file\n");
		return 2;
	}
	const char *u, *d;
	size_t ul, dl;
	if (!host || !port || !addr || !token_file || !state_dir || modes > 1 ||
	    ((send_to || group) && (!text || optind + 1 != argc)) ||
	    (!(send_to || group) && optind != argc) || (recv && timeout_s < 0) ||
	    (!recv && timeout_s >= 0) || (!verify_peer != !code)) {
		usage();
		return 2;
	}
	if (!chat_parse_addr(addr, strlen(addr), &u, &ul, &d, &dl)) {
		fprintf(stderr, "chat-client: -u wants U/D, got %s\n", addr);
		return 2;
	}
	char why[512];
	if (!mqtt_tls_check(&tls, why, sizeof why)) {
		fprintf(stderr, "chat-client: %s\n", why);
		return 2;
	}
	if ((send_to && !chat_valid_user(send_to, strlen(send_to))) ||
	    (group && !chat_valid_group(group, strlen(group)))) {
		fprintf(stderr, "chat-client: invalid %s id\n", send_to ? "user" : "group");
		return 2;
	}
	const char *trust_peer = safety_peer ? safety_peer : verify_peer;
	if (trust_peer && (!chat_valid_user(trust_peer, strlen(trust_peer)) ||
	                   (strlen(trust_peer) == ul && memcmp(trust_peer, u, ul) == 0))) {
		fprintf(stderr, "chat-client: %s is not another user's id\n", trust_peer);
		return 2;
	}

	if (e2e_init() != 0) {
		fprintf(stderr, "chat-client: libsodium failed to start\n");
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "chat-client: libcurl failed to start\n");
		return 1;
	}
	char token[256];
	bool fresh = false;
	if (read_token(token_file, token, sizeof token) != CHAT_OK ||
	    state_load(&c.st, state_dir, &fresh) != CHAT_OK)
		return 1;
	c.interactive = modes == 0;
	c.tls = &tls;
	if (files)
		snprintf(c.files, sizeof c.files, "%s", files);
	else
		snprintf(c.files, sizeof c.files, "%s/files", state_dir);
	int rc = 1;
	if (net_connect(&c.net, host, (int)port, &tls, addr, token, c.protocol >= 2) == CHAT_OK &&
	    (c.protocol < 2 || chat_caps(&c) == CHAT_OK) && chat_register(&c, fresh) == CHAT_OK) {
		/* Monitor our own entry in the key directory before anything else:
		 * a key the server logged in our name means others may be sending
		 * to an impostor (exit 3). No answer is only a warning: the key
		 * server may be down, and chat without new sessions still works. */
		int krc = keylog_check_self(&c);
		if (krc == CHAT_EIO)
			fprintf(stderr, "chat-client: WARNING: could not check this device's key "
			        "history (no answer from the key server)\n");
		else if (krc != CHAT_OK) {
			e2e_wipe(token, sizeof token);
			net_close(&c.net);
			state_free(&c.st);
			return 3;
		}
		/* attachments whose download failed for now in an earlier run */
		media_retry_pending(&c);
		chat_process(&c);
		if (send_to || group) {
			char conv[NAME_MAX_ + 4];
			uint64_t seq;
			if (send_file)
				rc = media_send_file(&c, send_to, group, text, caption, conv, sizeof conv,
				                     &seq) == CHAT_OK ? 0 : 1;
			else
				rc = chat_send(&c, send_to, group, text, conv, sizeof conv, &seq) == CHAT_OK ? 0 : 1;
			chat_process(&c);
		} else if (recv) {
			rc = do_recv(&c, timeout_s);
		} else if (safety_peer) {
			rc = do_safety(&c, safety_peer);
		} else if (verify_peer) {
			rc = do_verify(&c, verify_peer, code);
		} else {
			rc = do_interactive(&c);
		}
		if (!net_flush(&c.net, 5000))
			fprintf(stderr, "chat-client: some receipts were not acknowledged\n");
	}
	e2e_wipe(token, sizeof token);
	net_close(&c.net);
	state_free(&c.st);
	curl_global_cleanup();
	return rc;
}
