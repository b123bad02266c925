// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keyaudit.c — chat-keyaudit: replays the key server's key directory log
 * and checks every epoch (docs/KEYSERVER.md "Key directory log",
 * docs/SECURITY.md).
 *
 *   chat-keyaudit -h HOST -p PORT -u U/D --token-file FILE --state FILE
 *                 [--log-key HEX] [TLS options]
 *
 * It connects as a device (its own account: it speaks the key server's
 * request topics, chat/keys/req/U/D, like chat-client), fetches every entry
 * and every signed head with `log`, and
 *   - verifies each head's signature under the log key (--log-key, else the
 *     one remembered in --state, else the key server's on first use);
 *   - recomputes the root of every size from the entries and compares it
 *     with that size's head: a head whose root is not the tree of the
 *     entries before it is a fork (all heads are prefixes of one sequence,
 *     so consecutive heads are consistent exactly when all roots match);
 *   - checks the head it remembered from its last run (--state): same size,
 *     same root, or the log forked; a smaller log is a rollback; and the
 *     key server's own consistency proof from that head must verify;
 *   - remembers the newest head in --state (written atomically).
 * Exit 0: consistent; 1: the log is inconsistent (what is printed); 2:
 * usage; 3: the audit could not be completed (network, state file).
 * Auditors compare their remembered heads with each other's (same size,
 * same root) to find a split view; docs/SECURITY.md. */
#include "chat_version.h"
#include "client.h"
#include "err.h"
#include "ids.h"
#include "mqtt_tls.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQ_MS 10000
#define PAGE 100

typedef struct audit_state {
	bool has_pub;
	uint8_t pub[KL_PUB];
	uint64_t size;
	uint8_t root[KL_HASH];
} audit_state;

static int fail(const char *what, uint64_t at)
{
	printf("FORK or tampering: %s (size %llu)\n", what, (unsigned long long)at);
	return 1;
}

/* Reads the state file: "pub HEX", "size N", "root HEX" lines. Absent: empty. */
static int state_read(const char *path, audit_state *s)
{
	memset(s, 0, sizeof *s);
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? CHAT_OK : CHAT_EIO;
	char line[256], hex[160];
	unsigned long long n;
	int rc = CHAT_OK;
	while (rc == CHAT_OK && fgets(line, sizeof line, f)) {
		if (sscanf(line, "pub %150s", hex) == 1) {
			rc = strlen(hex) == 2 * KL_PUB &&
			     sodium_hex2bin(s->pub, KL_PUB, hex, strlen(hex), NULL, NULL, NULL) == 0
			         ? CHAT_OK : CHAT_EINVAL;
			s->has_pub = true;
		} else if (sscanf(line, "size %llu", &n) == 1) {
			s->size = n;
		} else if (sscanf(line, "root %150s", hex) == 1) {
			rc = strlen(hex) == 2 * KL_HASH &&
			     sodium_hex2bin(s->root, KL_HASH, hex, strlen(hex), NULL, NULL, NULL) == 0
			         ? CHAT_OK : CHAT_EINVAL;
		} else if (line[0] != '#' && line[0] != '\n') {
			rc = CHAT_EINVAL;
		}
	}
	fclose(f);
	return rc;
}

static int state_write(const char *path, const audit_state *s)
{
	char tmp[4200], pub[2 * KL_PUB + 1], root[2 * KL_HASH + 1];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	sodium_bin2hex(pub, sizeof pub, s->pub, KL_PUB);
	sodium_bin2hex(root, sizeof root, s->root, KL_HASH);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return CHAT_EIO;
	bool ok = fprintf(f, "# chat-keyaudit: the last head this auditor checked\n"
	                     "pub %s\nsize %llu\nroot %s\n", pub, (unsigned long long)s->size,
	                  root) > 0;
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	return ok && rename(tmp, path) == 0 ? CHAT_OK : CHAT_EIO;
}

/* Sends the request built in n->w and returns the ok:true answer, else NULL. */
static qmsg *ask(net *n, uint64_t rid)
{
	qmsg *m = net_keys(n, rid, REQ_MS);
	if (!m)
		return NULL;
	cbr r;
	cbr_item map, key, v;
	uint64_t i = 0;
	bool ok = false;
	cbr_init(&r, m->payload, m->len);
	if (cbr_next(&r, &map) == CHAT_OK && map.type == CBR_MAP)
		while (cbr_map_next(&r, &map, &i, &key)) {
			if (cbr_next(&r, &v) != CHAT_OK)
				break;
			if (cbr_eq(&key, "ok") && v.type == CBR_BOOL)
				ok = v.b;
			else if (cbr_skip(&r, &v) != CHAT_OK)
				break;
		}
	if (!ok) {
		fprintf(stderr, "chat-keyaudit: the key server refused a request\n");
		qmsg_free(m);
		return NULL;
	}
	return m;
}

typedef struct audit {
	net *n;
	audit_state st;
	kl_hash *leaves;            /* every leaf hash so far */
	uint64_t nleaves;
	kl_hash peaks[64];          /* the complete subtrees of the tree so far */
	unsigned npeaks;
	uint64_t heads;
} audit;

static void add_leaf(audit *a, const uint8_t leaf[KL_HASH])
{
	memcpy(a->leaves[a->nleaves], leaf, KL_HASH);
	uint64_t i = a->nleaves++;
	memcpy(a->peaks[a->npeaks++], leaf, KL_HASH);
	for (; i & 1; i >>= 1, a->npeaks--)
		kl_node_hash(a->peaks[a->npeaks - 2], a->peaks[a->npeaks - 2], a->peaks[a->npeaks - 1]);
}

static void cur_root(const audit *a, uint8_t out[KL_HASH])
{
	memcpy(out, a->peaks[a->npeaks - 1], KL_HASH);
	for (unsigned i = a->npeaks - 1; i-- > 0;)
		kl_node_hash(out, a->peaks[i], out);
}

/* One `log` page: its entries, then its heads, checked in order. */
static int audit_page(audit *a, const qmsg *m, uint64_t from, uint64_t *got)
{
	static kl_hash leaf_buf[PAGE];
	kl_head heads[PAGE];
	size_t nleaf = 0, nhead = 0;
	cbr r;
	cbr_item map, key, arr;
	uint64_t i = 0;
	cbr_init(&r, m->payload, m->len);
	if (cbr_next(&r, &map) != CHAT_OK || map.type != CBR_MAP)
		return 3;
	while (cbr_map_next(&r, &map, &i, &key)) {
		bool ents = cbr_eq(&key, "entries"), hds = cbr_eq(&key, "heads");
		if (!ents && !hds) {
			if (cbr_skip_next(&r) != CHAT_OK)
				break;
			continue;
		}
		if (cbr_next(&r, &arr) != CHAT_OK || arr.type != CBR_ARRAY)
			return 3;
		uint64_t j = 0;
		while (cbr_array_next(&r, &arr, &j)) {
			if (hds) {
				if (nhead == PAGE || kl_head_read(&r, &heads[nhead]) != NULL)
					return 3;
				nhead++;
				continue;
			}
			cbr_item em, ek, ev;
			uint64_t k = 0, ts = 0;
			char u[CHAT_USER_MAX + 1] = "", d[CHAT_DEVICE_MAX + 1] = "";
			uint8_t ik[KL_PUB];
			int have = 0;
			if (nleaf == PAGE || cbr_next(&r, &em) != CHAT_OK || em.type != CBR_MAP)
				return 3;
			while (cbr_map_next(&r, &em, &k, &ek)) {
				if (cbr_next(&r, &ev) != CHAT_OK)
					return 3;
				if (cbr_eq(&ek, "user") && ev.type == CBR_TEXT &&
				    chat_valid_user((const char *)ev.ptr, ev.len)) {
					item_str(u, sizeof u, &ev), have |= 1;
				} else if (cbr_eq(&ek, "device") && ev.type == CBR_TEXT &&
				           chat_valid_device((const char *)ev.ptr, ev.len)) {
					item_str(d, sizeof d, &ev), have |= 2;
				} else if (cbr_eq(&ek, "ik") && ev.type == CBR_BYTES && ev.len == KL_PUB) {
					memcpy(ik, ev.ptr, KL_PUB), have |= 4;
				} else if (cbr_eq(&ek, "ts") && ev.type == CBR_UINT) {
					ts = ev.u, have |= 8;
				} else if (cbr_skip(&r, &ev) != CHAT_OK) {
					return 3;
				}
			}
			if (have != 15) {
				fprintf(stderr, "chat-keyaudit: malformed entry %llu\n",
				        (unsigned long long)(from + nleaf));
				return 3;
			}
			kl_entry_hash(leaf_buf[nleaf++], ik, ts, u, strlen(u), d, strlen(d));
		}
	}
	if (r.err_msg || nleaf != nhead)
		return 3;
	for (size_t j = 0; j < nleaf; j++) {
		add_leaf(a, leaf_buf[j]);
		const kl_head *h = &heads[j];
		uint8_t root[KL_HASH];
		cur_root(a, root);
		if (h->size != a->nleaves)
			return fail("the heads are not one per size", h->size);
		if (!kl_head_verify(h, a->st.pub))
			return fail("a head is not signed by the log key", h->size);
		if (sodium_memcmp(root, h->root, KL_HASH) != 0)
			return fail("a head's root is not the tree of the entries before it", h->size);
		if (h->size == a->st.size && sodium_memcmp(root, a->st.root, KL_HASH) != 0)
			return fail("the log's history changed since the last audit: the head of this "
			            "size had another root then", h->size);
		a->heads++;
	}
	*got = nleaf;
	return 0;
}

static int run(net *n, const char *state_path, const uint8_t *log_key)
{
	audit a = { .n = n };
	if (state_read(state_path, &a.st) != CHAT_OK) {
		fprintf(stderr, "chat-keyaudit: cannot read %s\n", state_path);
		return 3;
	}
	uint64_t rid = net_req_begin(n, 0, "head");
	qmsg *m = ask(n, rid);
	if (!m)
		return 3;
	cbr r;
	cbr_item map, key, v;
	uint64_t i = 0, size = UINT64_MAX;
	uint8_t pub[KL_PUB];
	bool has_pub = false;
	cbr_init(&r, m->payload, m->len);
	if (cbr_next(&r, &map) == CHAT_OK && map.type == CBR_MAP)
		while (cbr_map_next(&r, &map, &i, &key)) {
			if (cbr_next(&r, &v) != CHAT_OK)
				break;
			if (cbr_eq(&key, "size") && v.type == CBR_UINT)
				size = v.u;
			else if (cbr_eq(&key, "pub") && v.type == CBR_BYTES && v.len == KL_PUB)
				memcpy(pub, v.ptr, KL_PUB), has_pub = true;
			else if (cbr_skip(&r, &v) != CHAT_OK)
				break;
		}
	qmsg_free(m);
	if (size > KL_SIZE_MAX || !has_pub) {
		fprintf(stderr, "chat-keyaudit: a malformed head answer\n");
		return 3;
	}
	if (log_key) {
		if (a.st.has_pub && memcmp(a.st.pub, log_key, KL_PUB) != 0)
			a.st.size = 0; /* heads under another key are no evidence */
		memcpy(a.st.pub, log_key, KL_PUB);
	} else if (!a.st.has_pub) {
		memcpy(a.st.pub, pub, KL_PUB); /* first use */
	}
	a.st.has_pub = true;
	if (sodium_memcmp(pub, a.st.pub, KL_PUB) != 0)
		return fail("the key server signs with another log key than the pinned one", size);
	if (size < a.st.size)
		return fail("the log is smaller than at the last audit (a rollback)", size);

	a.leaves = malloc((size ? size : 1) * sizeof *a.leaves);
	if (!a.leaves)
		return 3;
	int rc = 0;
	for (uint64_t from = 0; from < size && rc == 0;) {
		rid = net_req_begin(n, 2, "log");
		cbw_text(&n->w, "from");
		cbw_uint(&n->w, from);
		cbw_text(&n->w, "count");
		cbw_uint(&n->w, PAGE);
		if (!(m = ask(n, rid))) {
			rc = 3;
			break;
		}
		uint64_t got = 0;
		rc = audit_page(&a, m, from, &got);
		qmsg_free(m);
		if (rc == 3)
			fprintf(stderr, "chat-keyaudit: a malformed log page at %llu\n",
			        (unsigned long long)from);
		if (rc == 0 && got == 0) {
			fprintf(stderr, "chat-keyaudit: the log ended early at %llu of %llu\n",
			        (unsigned long long)from, (unsigned long long)size);
			rc = 3;
		}
		from += got;
	}
	/* The proof clients get must agree with what we replayed. */
	if (rc == 0 && a.st.size && a.st.size < size) {
		rid = net_req_begin(n, 2, "consistency");
		cbw_text(&n->w, "from");
		cbw_uint(&n->w, a.st.size);
		cbw_text(&n->w, "to");
		cbw_uint(&n->w, size);
		static kl_hash proof[KL_PROOF_MAX];
		size_t np = 0;
		const char *why = "no proof";
		if (!(m = ask(n, rid))) {
			rc = 3;
		} else {
			cbr_init(&r, m->payload, m->len);
			i = 0;
			if (cbr_next(&r, &map) == CHAT_OK && map.type == CBR_MAP)
				while (cbr_map_next(&r, &map, &i, &key)) {
					if (cbr_eq(&key, "proof")) {
						why = kl_proof_read(&r, proof, KL_PROOF_MAX, &np);
						break;
					}
					if (cbr_skip_next(&r) != CHAT_OK)
						break;
				}
			qmsg_free(m);
			uint8_t root[KL_HASH];
			cur_root(&a, root);
			if (why || !kl_verify_consistency(a.st.size, size, a.st.root, root, proof, np))
				rc = fail("the key server's consistency proof from the last audited head "
				          "does not verify", size);
		}
	}
	if (rc == 0) {
		char hex[2 * KL_HASH + 1] = "(empty)";
		if (size) {
			cur_root(&a, a.st.root);
			sodium_bin2hex(hex, sizeof hex, a.st.root, KL_HASH);
		}
		a.st.size = size;
		if (state_write(state_path, &a.st) != CHAT_OK) {
			fprintf(stderr, "chat-keyaudit: cannot write %s: %s\n", state_path,
			        strerror(errno));
			rc = 3;
		} else {
			printf("consistent: %llu entries, %llu signed heads; head size %llu root %s\n",
			       (unsigned long long)a.nleaves, (unsigned long long)a.heads,
			       (unsigned long long)size, hex);
		}
	}
	free(a.leaves);
	return rc;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: chat-keyaudit -h HOST -p PORT -u U/D --token-file FILE --state FILE\n"
	        "                     [--log-key HEX] [TLS options]\n"
	        "       chat-keyaudit --help | --version\n"
	        "exit 0 consistent, 1 inconsistent (fork, bad signature), 2 usage, 3 incomplete\n"
	        "TLS to the broker (as mosquitto_sub):\n" MQTT_TLS_USAGE);
}

int main(int argc, char **argv)
{
	const char *host = NULL, *addr = NULL, *token_file = NULL, *state = NULL;
	long port = 0;
	uint8_t key[KL_PUB];
	bool key_set = false;
	enum { OPT_TOKEN = 256, OPT_STATE, OPT_LOG_KEY, OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "log-key", required_argument, NULL, OPT_LOG_KEY },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
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
				fprintf(stderr, "chat-keyaudit: bad port %s\n", optarg);
				return 2;
			}
			break;
		case 'u': addr = optarg; break;
		case OPT_TOKEN: token_file = optarg; break;
		case OPT_STATE: state = optarg; break;
		case OPT_LOG_KEY:
			if (strlen(optarg) != 2 * KL_PUB ||
			    sodium_hex2bin(key, KL_PUB, optarg, strlen(optarg), NULL, NULL, NULL)) {
				fprintf(stderr, "chat-keyaudit: --log-key wants 64 hex digits\n");
				return 2;
			}
			key_set = true;
			break;
		case OPT_HELP: usage(); return 0;
		case OPT_VERSION: fputs(CHAT_VERSION_LINE("chat-keyaudit"), stdout); return 0;
		default:
			if (mqtt_tls_getopt(&tls, o, optarg))
				break;
			usage();
			return 2;
		}
	}
	const char *u, *d;
	size_t ul, dl;
	char why[512];
	if (!host || !port || !addr || !token_file || !state || optind != argc) {
		usage();
		return 2;
	}
	if (!chat_parse_addr(addr, strlen(addr), &u, &ul, &d, &dl)) {
		fprintf(stderr, "chat-keyaudit: -u wants U/D, got %s\n", addr);
		return 2;
	}
	if (!mqtt_tls_check(&tls, why, sizeof why)) {
		fprintf(stderr, "chat-keyaudit: %s\n", why);
		return 2;
	}
	if (sodium_init() < 0)
		return 3;
	char token[256] = "";
	FILE *f = fopen(token_file, "r");
	if (!f || !fgets(token, sizeof token, f)) {
		fprintf(stderr, "chat-keyaudit: cannot read a token from %s\n", token_file);
		if (f)
			fclose(f);
		return 3;
	}
	fclose(f);
	token[strcspn(token, "\r\n ")] = 0;
	static net n;
	int rc = 3;
	if (net_connect(&n, host, (int)port, &tls, addr, token, false) == CHAT_OK)
		rc = run(&n, state, key_set ? key : NULL);
	sodium_memzero(token, sizeof token);
	net_close(&n);
	return rc;
}
