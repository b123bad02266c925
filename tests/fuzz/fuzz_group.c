// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_group — groups as a whole: an input is a script of group requests
 * (chat/ctl group.*, and $CONTROL group.create as the admin) and group
 * sends on chat/group/{G} by the cast's devices, so that membership changes
 * (creation, adds, removals, leaves, promotions, the last admin's automatic
 * successor, deletion) interleave with sends (body and bodies), receipts,
 * syncs, reconnects and the removal and return of a member's user.
 *
 * Groups: the script names one of NGIDS groups by index; its id is
 * "<name>.<n>", n counting the inputs this process ran, so every input
 * starts with none of its groups in existence and the same script does the
 * same against a fresh core (a crash file replays as it ran). Groups left
 * behind are bounded by the harness's reopen (group events count as stored).
 * A sixth user, dave (one device, never online), exists at the start of
 * every input; the cast's devices are online as after open at its end.
 *
 * Script: a sequence of ops, each one byte (op % OP_COUNT) and its operands:
 *   CREATE     dev g mask nlen name[nlen]   group.create {gid, members, ?name}
 *   ADD        dev g mask                   group.add {gid, members}
 *   REMOVE     dev g mask                   group.remove {gid, members}
 *   LEAVE      dev g                        group.leave {gid}
 *   ADMIN      dev g u                      group.admin {gid, user: USERS[u]}
 *   INFO       dev g                        group.info {gid}
 *   CTL_RAW    dev g op n len raw[len]      a map of 3 + n%4 pairs: op
 *                                           (group.* by op), rid, gid, then
 *                                           raw as the rest (members, name, …)
 *   SEND       dev g cid flags blen body    {cid, body, ?type, ?ttl}
 *   BODIES     dev g cid tweak              {cid, bodies}: one body for each
 *                                           recipient device the group has
 *                                           now, then bent by tweak
 *   SEND_RAW   dev g len raw[len]           raw on chat/group/{G}
 *   RCPT       dev g flags first count      receipt {s, conv: g:G, seqs}
 *   SYNC dev / CONNECT dev / DISCONNECT dev
 *   TICK       k                            clock += k s, core_tick
 *   DAVE       flags                        as the admin: user.remove dave,
 *                                           or device.add dave/phone|pad,
 *                                           or group.create {gid, owner,
 *                                           members} (flags selects)
 * mask: bit i (0-5) names USERS[i]; bit 6 repeats the first named; bit 7
 * sends `members` as a text string instead of an array. Missing operand
 * bytes read as 0.
 */
#include "fuzz_core_harness.h"

#include <stdio.h>
#include <string.h>

enum {
	CREATE, ADD, REMOVE, LEAVE, ADMIN, INFO, CTL_RAW, SEND, BODIES, SEND_RAW, RCPT, SYNC,
	CONNECT, DISCONNECT, TICK, DAVE, OP_COUNT
};
#define MAX_OPS 64
#define NGIDS 3

static const char *const GNAMES[NGIDS] = { "team", "ops", "g-x" };
/* members: the cast's users, dave, a user with no devices, an invalid id */
static const char *const USERS[] = { "alice", "bob", "carol", "dave", "nobody", "no body" };
#define NUSERS (sizeof(USERS) / sizeof(USERS[0]))
static const char *const OPS[] = {
	"group.create", "group.add", "group.remove", "group.leave", "group.admin", "group.info",
	"group.nope", "devices",
};

typedef struct script {
	const uint8_t *p, *end;
	uint64_t run;  /* this input's number: the gid suffix */
	uint64_t rid;
} script;

static uint8_t next(script *s)
{
	return s->p < s->end ? *s->p++ : 0;
}

static const uint8_t *take(script *s, size_t n, size_t *got)
{
	const uint8_t *at = s->p;
	*got = (size_t)(s->end - s->p) < n ? (size_t)(s->end - s->p) : n;
	s->p += *got;
	return at;
}

static enum fz_dev dev(script *s) { return (enum fz_dev)(next(s) % FZ_NDEV); }

static void gid_of(script *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s.%llu", GNAMES[next(s) % NGIDS], (unsigned long long)s->run);
}

/* ---- what the target tracks of the cast ---- */

static bool online[FZ_NDEV];
static bool tracked;

static void set_online(enum fz_dev d, bool on)
{
	if (on)
		fz_connect(d);
	else
		fz_disconnect(d);
	online[d] = on;
}

static void admin_cmd(cbw *w)
{
	core_control(fz_core(), "fuzz-admin", CORE_ADMIN_USERNAME, w->buf, w->len);
}

static void dave_add(const char *device)
{
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "cmd"); cbw_text(&w, "device.add");
	cbw_text(&w, "user"); cbw_text(&w, "dave");
	cbw_text(&w, "device"); cbw_text(&w, device);
	admin_cmd(&w);
	cbw_free(&w);
}

/* The state every input starts from. */
static void setup(core *c)
{
	if (!tracked) { /* as the harness leaves a freshly opened core */
		for (int d = 0; d < FZ_NDEV; d++)
			online[d] = d != FZ_BOB_TABLET;
		tracked = true;
	}
	if (!dir_user(&c->dir, "dave", 4))
		dave_add("phone");
}

/* Back to the cast's state after open (which a reopen also gives). */
static void restore(void)
{
	for (int d = 0; d < FZ_NDEV; d++)
		if (online[d] != (d != FZ_BOB_TABLET))
			set_online((enum fz_dev)d, d != FZ_BOB_TABLET);
}

/* ---- requests ---- */

static void members(cbw *w, uint8_t mask)
{
	cbw_text(w, "members");
	if (mask & 0x80) {
		cbw_text(w, USERS[mask % NUSERS]);
		return;
	}
	size_t n = 0, first = NUSERS;
	for (size_t i = 0; i < NUSERS; i++)
		if (mask & (1u << i)) {
			n++;
			if (first == NUSERS)
				first = i;
		}
	bool dup = (mask & 0x40) && first < NUSERS;
	cbw_array(w, n + dup);
	for (size_t i = 0; i < NUSERS; i++)
		if (mask & (1u << i))
			cbw_text(w, USERS[i]);
	if (dup)
		cbw_text(w, USERS[first]);
}

/* {op, rid, gid, …extra pairs}: the caller writes the extra ones. */
static void ctl_start(cbw *w, script *s, const char *op, const char *gid, size_t extra)
{
	cbw_init(w);
	cbw_map(w, 3 + extra);
	cbw_text(w, "op"); cbw_text(w, op);
	cbw_text(w, "rid"); cbw_uint(w, ++s->rid);
	cbw_text(w, "gid"); cbw_text(w, gid);
}

static void ctl_send(enum fz_dev d, cbw *w)
{
	fz_publish_as(d, "chat/ctl", w->buf, w->len);
	cbw_free(w);
}

static void op_request(script *s, int op)
{
	enum fz_dev d = dev(s);
	char gid[64];
	gid_of(s, gid, sizeof(gid));
	cbw w;
	switch (op) {
	case CREATE: {
		uint8_t mask = next(s);
		size_t nlen;
		const uint8_t *name = take(s, next(s) % 160, &nlen);
		ctl_start(&w, s, "group.create", gid, 1 + (nlen > 0));
		members(&w, mask);
		if (nlen) {
			cbw_text(&w, "name");
			cbw_textn(&w, (const char *)name, nlen);
		}
		break;
	}
	case ADD:
	case REMOVE:
		ctl_start(&w, s, op == ADD ? "group.add" : "group.remove", gid, 1);
		members(&w, next(s));
		break;
	case LEAVE:
		ctl_start(&w, s, "group.leave", gid, 0);
		break;
	case ADMIN:
		ctl_start(&w, s, "group.admin", gid, 1);
		cbw_text(&w, "user"); cbw_text(&w, USERS[next(s) % NUSERS]);
		break;
	default:
		ctl_start(&w, s, "group.info", gid, 0);
		break;
	}
	ctl_send(d, &w);
}

/* A map whose first pairs are well-formed and whose rest is the fuzzer's. */
static void op_ctl_raw(script *s)
{
	enum fz_dev d = dev(s);
	char gid[64];
	gid_of(s, gid, sizeof(gid));
	const char *op = OPS[next(s) % (sizeof(OPS) / sizeof(OPS[0]))];
	uint8_t extra = next(s) % 4;
	size_t n;
	const uint8_t *raw = take(s, next(s), &n);
	cbw w;
	ctl_start(&w, s, op, gid, extra);
	cbw_raw(&w, raw, n);
	ctl_send(d, &w);
}

/* ---- sends ---- */

static void group_topic(script *s, char *out, size_t cap)
{
	char gid[64];
	gid_of(s, gid, sizeof(gid));
	snprintf(out, cap, "chat/group/%s", gid);
}

static void op_send(script *s)
{
	enum fz_dev d = dev(s);
	char topic[96];
	group_topic(s, topic, sizeof(topic));
	uint8_t cid = next(s), flags = next(s);
	size_t blen;
	const uint8_t *body = take(s, next(s) % 32, &blen);
	bool type = flags & 1, ttl = flags & 2;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2 + type + ttl);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "body"); cbw_bytes(&w, body, blen);
	if (type) {
		cbw_text(&w, "type");
		cbw_uint(&w, flags >> 4);
	}
	if (ttl) {
		cbw_text(&w, "ttl");
		cbw_uint(&w, flags >> 2);
	}
	fz_publish_as(d, topic, w.buf, w.len);
	cbw_free(&w);
}

/* The recipient devices of a send by d to gid as the group is now: every
 * device of every member but d. */
static size_t recipients(core *c, enum fz_dev d, const char *gid, const char **out, size_t cap)
{
	group *g = group_find(c, gid, strlen(gid));
	size_t n = 0;
	for (size_t i = 0; g && i < g->n; i++) {
		user *u = dir_user(&c->dir, g->m[i]->user, strlen(g->m[i]->user));
		for (size_t k = 0; u && k < u->ndev; k++)
			if (strcmp(u->dev[k]->addr, fz_addr(d)) != 0 && n < cap)
				out[n++] = u->dev[k]->addr;
	}
	return n;
}

/* tweak: 0-3 exact; 4 drops the last; 5 adds a stranger; 6 repeats the
 * first; 7 adds the sender itself; bit 3 swaps the first two. */
static void op_bodies(script *s, core *c)
{
	enum fz_dev d = dev(s);
	char gid[64], topic[96];
	gid_of(s, gid, sizeof(gid));
	snprintf(topic, sizeof(topic), "chat/group/%s", gid);
	uint8_t cid = next(s), tweak = next(s);
	const char *to[16];
	size_t n = recipients(c, d, gid, to, 15);
	switch (tweak % 8) {
	case 4: if (n) n--; break;
	case 5: to[n++] = "mallory/x"; break;
	case 6: if (n) { to[n] = to[0]; n++; } break;
	case 7: to[n++] = fz_addr(d); break;
	default: break;
	}
	if ((tweak & 8) && n >= 2) {
		const char *t = to[0];
		to[0] = to[1];
		to[1] = t;
	}
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2);
	cbw_text(&w, "cid"); cbw_uint(&w, cid);
	cbw_text(&w, "bodies");
	cbw_map(&w, n);
	for (size_t i = 0; i < n; i++) {
		cbw_text(&w, to[i]);
		cbw_bytes(&w, to[i], strlen(to[i]));
	}
	fz_publish_as(d, topic, w.buf, w.len);
	cbw_free(&w);
}

static void op_send_raw(script *s)
{
	enum fz_dev d = dev(s);
	char topic[96];
	group_topic(s, topic, sizeof(topic));
	size_t n;
	const uint8_t *raw = take(s, next(s), &n);
	fz_publish_as(d, topic, raw, n);
}

static void op_receipt(script *s)
{
	enum fz_dev d = dev(s);
	char gid[64], conv[80];
	gid_of(s, gid, sizeof(gid));
	snprintf(conv, sizeof(conv), "g:%s", gid);
	uint8_t flags = next(s), first = next(s), count = next(s) % 16 + 1;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 3);
	cbw_text(&w, "s"); cbw_text(&w, flags & 1 ? "read" : "delivered");
	cbw_text(&w, "conv"); cbw_text(&w, conv);
	cbw_text(&w, "seqs");
	cbw_array(&w, count);
	for (unsigned i = 0; i < count; i++)
		cbw_uint(&w, (uint64_t)first + i);
	fz_publish_as(d, "chat/receipt", w.buf, w.len);
	cbw_free(&w);
}

/* ---- the admin ---- */

static void op_dave(script *s)
{
	uint8_t flags = next(s);
	cbw w;
	switch (flags % 4) {
	case 0:
		cbw_init(&w);
		cbw_map(&w, 2);
		cbw_text(&w, "cmd"); cbw_text(&w, "user.remove");
		cbw_text(&w, "user"); cbw_text(&w, "dave");
		admin_cmd(&w);
		cbw_free(&w);
		break;
	case 1:
		dave_add("phone");
		break;
	case 2:
		dave_add("pad");
		break;
	default: {
		char gid[64];
		gid_of(s, gid, sizeof(gid));
		cbw_init(&w);
		cbw_map(&w, 5);
		cbw_text(&w, "cmd"); cbw_text(&w, "group.create");
		cbw_text(&w, "rid"); cbw_uint(&w, ++s->rid);
		cbw_text(&w, "gid"); cbw_text(&w, gid);
		cbw_text(&w, "owner"); cbw_text(&w, USERS[(flags >> 2) % NUSERS]);
		members(&w, next(s));
		admin_cmd(&w);
		cbw_free(&w);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t runs;
	core *c = fz_core();
	setup(c);
	script s = { data, data + size, runs++, 0 };
	static const uint8_t empty_map = 0xa0;
	for (int n = 0; n < MAX_OPS && s.p < s.end; n++) {
		int op = next(&s) % OP_COUNT;
		switch (op) {
		case CREATE: case ADD: case REMOVE: case LEAVE: case ADMIN: case INFO:
			op_request(&s, op);
			break;
		case CTL_RAW: op_ctl_raw(&s); break;
		case SEND: op_send(&s); break;
		case BODIES: op_bodies(&s, c); break;
		case SEND_RAW: op_send_raw(&s); break;
		case RCPT: op_receipt(&s); break;
		case SYNC: fz_publish_as(dev(&s), "chat/sync", &empty_map, 1); break;
		case CONNECT: set_online(dev(&s), true); break;
		case DISCONNECT: set_online(dev(&s), false); break;
		case TICK:
			fz_advance((uint64_t)next(&s) * 1000);
			core_tick(c);
			break;
		case DAVE: op_dave(&s); break;
		}
	}
	restore();
	fz_done();
	return 0;
}
