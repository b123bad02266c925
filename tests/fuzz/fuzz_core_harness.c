// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_core_harness.c — the core, its cast and a checking core_io for the
 * fuzz targets (see fuzz_core_harness.h). */
#include "fuzz_core_harness.h"
#include "fuzz_utf8.h"

#include "cbor_io.h"
#include "err.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const ADDR[FZ_NDEV] = {
	"alice/phone", "alice/laptop", "bob/phone", "bob/tablet", "carol/phone",
};

static struct {
	core *c;
	char base[1024];            /* $TMPDIR/fuzz-chat-XXXXXX, made once */
	char dir[1100];             /* base/N: the current core's data dir */
	unsigned generation;
	uint64_t now;
	uint64_t inputs;            /* since the last open */
	uint64_t published;
	char token[FZ_NDEV][64];
	int conn[FZ_NDEV];          /* their addresses are the connections */
	bool online[FZ_NDEV];
	uint8_t reply[4096];        /* the last $CONTROL response (setup reads it) */
	core *extra[4];             /* fz_core_extra's, closed at exit */
	size_t nextra;
	size_t reply_len;
} H;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz harness: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

/* ---- the checking core_io ---- */

bool fz_text_utf8(const void *cbor, size_t len)
{
	cbr r;
	cbr_item it;
	cbr_init(&r, cbor, len);
	while (!cbr_done(&r) && cbr_next(&r, &it) == CHAT_OK)
		if (it.type == CBR_TEXT && !fz_utf8_ok(it.ptr, it.len))
			return false;
	return true;
}

static int io_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
                      size_t len, int qos, bool retain)
{
	(void)ctx;
	/* Presence: a document (or an empty one, clearing it) to every
	 * subscriber of chat/presence/U with no client id, retained or not
	 * (plugin_opt_presence_retained); or the current one, not retained, to
	 * the one device that subscribed (presence.c). */
	if (topic && strncmp(topic, "chat/presence/", 14) == 0 && !strchr(topic + 14, '/') &&
	    (payload || !len) && (!clientid || (!retain && len && qos == 1))) {
		cbr r;
		cbr_init(&r, payload, len);
		if (len && (cbr_skip_next(&r) || !cbr_done(&r)))
			die("the core published a malformed presence document", topic);
		H.published++;
		return 0;
	}
	if (!topic || (!payload && len))
		die("publish with a NULL topic or payload", NULL);
	/* Counters: a retained decimal number on $SYS/broker/chat/<name>. */
	if (!clientid && strncmp(topic, "$SYS/broker/chat/", 17) == 0) {
		bool digits = retain && len > 0;
		for (size_t i = 0; digits && i < len; i++)
			digits = ((const char *)payload)[i] >= '0' && ((const char *)payload)[i] <= '9';
		if (!digits)
			die("a counter that is not a retained decimal number", topic);
		H.published++;
		return 0;
	}
	if (qos < 0 || qos > 2)
		die("publish with a bad qos", topic);
	/* A device's removal for the key servers: retained on
	 * <prefix>/keys/removed/U/D, {ts} or empty (cleared when re-added). */
	const char *kr = strstr(topic, "/keys/removed/");
	if (!clientid && kr) {
		const char *addr = kr + 14, *u, *d;
		size_t ul, dl;
		if (!retain || !chat_parse_addr(addr, strlen(addr), &u, &ul, &d, &dl))
			die("a key-removal notice that is not retained on a device address", topic);
		cbr kr_r;
		if (len) {
			cbr_init(&kr_r, payload, len);
			if (cbr_skip_next(&kr_r) || !cbr_done(&kr_r))
				die("the core published a malformed key-removal notice", topic);
		}
		H.published++;
		return 0;
	}
	bool ctl = false;
	if (!clientid) {
		/* to subscribers at large: a user's retained presence, or a
		 * wake-up (never retained) for the push gateways */
		const char *u = strstr(topic, "/presence/");
		u = u ? u + 10 : NULL;
		bool wake = strlen(topic) > 10 && !strcmp(topic + strlen(topic) - 10, "/push/wake");
		if (wake ? retain : !u || !chat_valid_user(u, strlen(u)))
			die("a publish to all subscribers that is not a presence document or a wake-up", topic);
	} else {
		/* <prefix>/inbox/<clientid> */
		char inbox[256];
		snprintf(inbox, sizeof(inbox), "/inbox/%s", clientid);
		size_t tl = strlen(topic), il = strlen(inbox);
		ctl = strcmp(topic, CORE_CONTROL_RESPONSE) == 0;
		if (!ctl && (tl <= il || strcmp(topic + tl - il, inbox) != 0))
			die("publish to a topic that is not the client's own inbox", topic);
		if (retain)
			die("retained publish to a client", topic);
	}
	/* Every event must be exactly one well-formed CBOR item. */
	cbr r;
	cbr_init(&r, payload, len);
	if (cbr_skip_next(&r) || !cbr_done(&r))
		die("the core published malformed CBOR", r.err_msg ? r.err_msg : "trailing bytes");
	if (getenv("FUZZ_STRICT_UTF8") && !fz_text_utf8(payload, len))
		die("the core published a text string that is not UTF-8", topic);
	if (ctl && len <= sizeof(H.reply)) {
		memcpy(H.reply, payload, len);
		H.reply_len = len;
	}
	H.published++;
	return 0;
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return H.now;
}

static void io_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	if (!msg)
		die("log with a NULL message", NULL);
	if (getenv("FUZZ_CORE_LOG"))
		fprintf(stderr, "core: %s\n", msg);
}

static int dev_index(const char *addr)
{
	for (int i = 0; i < FZ_NDEV; i++)
		if (strcmp(ADDR[i], addr) == 0)
			return i;
	return -1;
}

/* The broker fires DISCONNECT for a kicked client (the harness connects
 * devices only, whose username is their client id). */
static void io_kick(void *ctx, const char *clientid, bool username)
{
	(void)ctx;
	(void)username;
	int i = dev_index(clientid);
	if (i >= 0)
		fz_disconnect((enum fz_dev)i);
}

/* no group commit here: the harness runs without sync writes */
static const core_io IO = { NULL, io_publish, io_now, io_log, io_kick, NULL, NULL, NULL };

/* ---- setup ---- */

/* The text value of key in the last admin reply, or NULL. */
static const char *reply_text(const char *key, char *out, size_t cap)
{
	cbr r;
	cbr_item map, k, v;
	cbr_init(&r, H.reply, H.reply_len);
	if (cbr_next(&r, &map) || map.type != CBR_MAP)
		return NULL;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &k)) {
		if (cbr_next(&r, &v))
			return NULL;
		if (cbr_eq(&k, key) && v.type == CBR_TEXT && v.len < cap) {
			memcpy(out, v.ptr, v.len);
			out[v.len] = '\0';
			return out;
		}
		if (cbr_skip(&r, &v))
			return NULL;
	}
	return NULL;
}

static void add_device(enum fz_dev d)
{
	char user[CHAT_USER_MAX + 1];
	const char *slash = strchr(ADDR[d], '/');
	snprintf(user, sizeof(user), "%.*s", (int)(slash - ADDR[d]), ADDR[d]);
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "cmd"); cbw_text(&w, "device.add");
	cbw_text(&w, "user"); cbw_text(&w, user);
	cbw_text(&w, "device"); cbw_text(&w, slash + 1);
	H.reply_len = 0;
	core_control(H.c, "fuzz-admin", CORE_ADMIN_USERNAME, w.buf, w.len);
	cbw_free(&w);
	if (!reply_text("token", H.token[d], sizeof(H.token[d])))
		die("device.add failed for", ADDR[d]);
}

static void seed_message(enum fz_dev from, const char *peer, uint64_t cid)
{
	char topic[64], body[32];
	snprintf(topic, sizeof(topic), "chat/dm/%s", peer);
	snprintf(body, sizeof(body), "seed %llu", (unsigned long long)cid);
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, body, strlen(body));
	if (fz_publish_as(from, topic, w.buf, w.len) != CORE_ALLOW)
		die("a seed message was refused", topic);
	cbw_free(&w);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void close_core(void)
{
	if (!H.c)
		return;
	core_close(H.c);
	H.c = NULL;
	nftw(H.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	memset(H.online, 0, sizeof(H.online));
}

static void at_exit(void)
{
	for (size_t i = 0; i < H.nextra; i++)
		core_close(H.extra[i]);
	close_core();
	if (H.base[0])
		rmdir(H.base);
}

static void open_core(void)
{
	if (!H.base[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(H.base, sizeof(H.base), "%s/fuzz-chat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(H.base))
			die("mkdtemp failed in", H.base);
		H.now = 1700000000000ULL;
	}
	snprintf(H.dir, sizeof(H.dir), "%s/%u", H.base, H.generation++);
	core_config cfg;
	core_config_defaults(&cfg);
	cfg.data_dir = H.dir;
	char err[512] = "";
	H.c = core_open(&cfg, &IO, err, sizeof(err));
	if (!H.c)
		die("core_open failed", err);
	/* Registered after RocksDB's own exit-time destructors, so it runs
	 * before them: closing a store after them crashes. */
	static bool registered;
	if (!registered && (registered = true))
		atexit(at_exit);
	H.inputs = 0;
	for (int d = 0; d < FZ_NDEV; d++)
		add_device((enum fz_dev)d);
	for (int d = 0; d < FZ_NDEV; d++)
		if (d != FZ_BOB_TABLET)
			fz_connect((enum fz_dev)d);
	for (uint64_t i = 1; i <= FZ_SEEDED_SEQS / 2; i++) {
		seed_message(FZ_BOB_PHONE, "alice", i);
		seed_message(FZ_ALICE_PHONE, "bob", i);
	}
}

/* ---- the API ---- */

core *fz_core(void)
{
	if (!H.c)
		open_core();
	return H.c;
}

core *fz_core_extra(const char *prefix, enum core_foreign_acl foreign)
{
	fz_core(); /* the base dir, and the exit handler in the right order */
	if (H.nextra == sizeof(H.extra) / sizeof(H.extra[0]))
		die("too many extra cores", prefix);
	char dir[1200];
	snprintf(dir, sizeof(dir), "%s/extra-%zu", H.base, H.nextra);
	core_config cfg;
	core_config_defaults(&cfg);
	cfg.data_dir = dir;
	cfg.topic_prefix = prefix;
	cfg.foreign_acl = foreign;
	char err[512] = "";
	core *c = core_open(&cfg, &IO, err, sizeof(err));
	if (!c)
		die("core_open failed", err);
	return H.extra[H.nextra++] = c;
}

void fz_done(void)
{
	core_tick(H.c);
	H.inputs++;
	/* group events are stored (and queued) like messages; each may also
	 * leave a group in memory */
	if (H.inputs >= FZ_REOPEN_INPUTS ||
	    H.c->n.msgs_stored + H.c->n.group_events >= FZ_REOPEN_STORED) {
		close_core();
		open_core();
	}
}

const char *fz_addr(enum fz_dev d) { return ADDR[d]; }
void *fz_conn(enum fz_dev d) { return &H.conn[d]; }

void fz_connect(enum fz_dev d)
{
	if (core_auth(H.c, fz_conn(d), ADDR[d], ADDR[d], H.token[d], strlen(H.token[d])) == CORE_ALLOW)
		H.online[d] = true;
}

void fz_disconnect(enum fz_dev d)
{
	core_disconnect(H.c, fz_conn(d), ADDR[d], ADDR[d]);
	H.online[d] = false;
}

uint64_t fz_now(void) { return H.now; }
void fz_advance(uint64_t ms) { H.now += ms; }

enum core_verdict fz_publish_as(enum fz_dev d, const char *topic, const void *payload, size_t len)
{
	return core_message(H.c, fz_conn(d), ADDR[d], ADDR[d], topic, payload, len, 1, false, 5);
}

uint64_t fz_published(void) { return H.published; }
