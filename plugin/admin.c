/* admin.c — the $CONTROL/chat/v1 admin commands (docs/PROTOCOL.md §5).
 *
 * In the manner of mosquitto's dynamic-security plugin: one CBOR request
 * per message, a command table, and one reply per request on
 * $CONTROL/chat/v1/response addressed to the requesting client only, with
 * ok:true and the result fields or ok:false with a code and a reason.
 * Changes go to the store first and to the in-memory directory second, so a
 * failed write leaves both as they were.
 */
#include "core_internal.h"
#include "err.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

typedef struct admin_req {
	const char *cmd;
	size_t cmdlen;
	bool has_rid;
	uint64_t rid;
	/* arguments, NUL-terminated copies (all ids are short) */
	char user[CHAT_USER_MAX + 2];
	char device[CHAT_DEVICE_MAX + 2];
	char name[STORE_GROUP_NAME_MAX + 2]; /* a service's, or a group's */
	char gid[CHAT_GROUP_MAX + 2];
	char owner[CHAT_USER_MAX + 2];
	bool has_user, has_device, has_name, has_gid, has_owner;
	const uint8_t *members; /* raw CBOR array, or NULL */
	size_t members_len;
	char dir[PATH_MAX];
	bool has_dir;
} admin_req;

/* A reply under construction: the handler adds result pairs to `res`,
 * or returns false with why it refused. */
typedef struct admin_reply {
	refusal why;
	cbw *res;
	size_t npairs;
	const admin_ticket *who;
	bool deferred; /* the command answers later (admin_send) */
} admin_reply;

static bool need_user(admin_req *q, admin_reply *r)
{
	if (!q->has_user || !chat_valid_user(q->user, strlen(q->user)))
		return refusal_set(&r->why, REFUSE_FIELD,
		                   "user must be 1-64 characters of [A-Za-z0-9._-]");
	return true;
}

static bool need_device(admin_req *q, admin_reply *r)
{
	if (!need_user(q, r))
		return false;
	if (!q->has_device || !chat_valid_device(q->device, strlen(q->device)))
		return refusal_set(&r->why, REFUSE_FIELD,
		                   "device must be 1-32 characters of [A-Za-z0-9._-]");
	return true;
}

static bool store_failed(core *c, admin_reply *r)
{
	core_log(c, CORE_LOG_ERR, "admin command failed in the store: %s", store_errmsg(c->st));
	return refusal_set(&r->why, REFUSE_STORE, "the store failed; nothing was changed");
}

/* add_account's `add` for each kind of account: the store first, then
 * the directory. */
static int add_device(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN])
{
	int rc = store_device_add(c->st, q->user, q->device, hash);
	return rc == CHAT_OK ? dir_add_device(&c->dir, q->user, q->device, hash, NULL) : rc;
}

static int add_service(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN])
{
	int rc = store_service_add(c->st, q->name, hash);
	return rc == CHAT_OK ? dir_add_service(&c->dir, q->name, hash) : rc;
}

/* An account with a fresh token: stored first, then in the directory;
 * the reply carries the token, which is then wiped. kind names it in the
 * refusal ("device", "service"), logged in the log ("service account"). */
static bool add_account(core *c, admin_reply *r,
                        int (*add)(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN]),
                        const admin_req *q, const char *kind, const char *logged, const char *name)
{
	char token[CORE_TOKEN_LEN + 1];
	uint8_t hash[STORE_HASH_LEN];
	token_new(c, token, hash);
	int rc = add(c, q, hash);
	if (rc == CHAT_EEXIST) {
		refusal_set(&r->why, REFUSE_EXISTS, "%s %s already exists", kind, name);
	} else if (rc) {
		store_failed(c, r);
	} else {
		cbw_text(r->res, "token");
		cbw_text(r->res, token);
		r->npairs++;
		core_log(c, CORE_LOG_NOTICE, "added %s %s", logged, name);
	}
	sodium_memzero(token, sizeof(token));
	return rc == CHAT_OK;
}

static bool cmd_device_add(core *c, admin_req *q, admin_reply *r)
{
	if (!need_device(q, r))
		return false;
	char addr[sizeof(q->user) + sizeof(q->device)];
	snprintf(addr, sizeof(addr), "%s/%s", q->user, q->device);
	if (dir_device(&c->dir, addr, strlen(addr)))
		return refusal_set(&r->why, REFUSE_EXISTS, "device %s already exists", addr);
	user *u = dir_user(&c->dir, q->user, strlen(q->user));
	if (u && u->ndev >= CORE_MAX_DEVICES)
		return refusal_set(&r->why, REFUSE_LIMIT, "user %s has the maximum number of devices",
		                   q->user);
	if (!add_account(c, r, add_device, q, "device", "device", addr))
		return false;
	notice_device_added(c, q->user, q->device);
	return true;
}

static void remove_device(core *c, device *dev)
{
	char uname[CHAT_USER_MAX + 1], did[CHAT_DEVICE_MAX + 1];
	snprintf(uname, sizeof(uname), "%s", dev->user->name);
	snprintf(did, sizeof(did), "%s", dev->id);
	if (dev->conn)
		kick_schedule(c, dev->addr);
	core_log(c, CORE_LOG_NOTICE, "removed device %s", dev->addr);
	sync_stop(c, dev);
	user *u = dev->user;
	bool last = u->ndev == 1;
	if (last)
		presence_forget(c, u); /* the user goes with its last device */
	push_forget(c, dev);
	dir_remove_device(&c->dir, dev);
	if (!last)
		presence_down(c, u);
	notice_device_removed(c, uname, did);
}

static bool cmd_device_remove(core *c, admin_req *q, admin_reply *r)
{
	if (!need_device(q, r))
		return false;
	char addr[sizeof(q->user) + sizeof(q->device)];
	snprintf(addr, sizeof(addr), "%s/%s", q->user, q->device);
	device *dev = dir_device(&c->dir, addr, strlen(addr));
	if (!dev)
		return refusal_set(&r->why, REFUSE_NOTFOUND, "no device %s", addr);
	receipts_flush_dev(c, dev); /* its last PUBACKs still deliver, before its queue goes */
	if (store_device_remove(c->st, q->user, q->device))
		return store_failed(c, r);
	remove_device(c, dev);
	return true;
}

static bool cmd_user_remove(core *c, admin_req *q, admin_reply *r)
{
	if (!need_user(q, r))
		return false;
	user *u = dir_user(&c->dir, q->user, strlen(q->user));
	if (!u)
		return refusal_set(&r->why, REFUSE_NOTFOUND, "no user %s", q->user);
	uint64_t removed = 0;
	while (u->ndev > 0) {
		device *dev = u->dev[u->ndev - 1];
		bool last = u->ndev == 1;
		receipts_flush_dev(c, dev);
		if (store_device_remove(c->st, q->user, dev->id))
			return store_failed(c, r);
		remove_device(c, dev); /* frees u with its last device */
		removed++;
		if (last)
			break;
	}
	cbw_text(r->res, "devices");
	cbw_uint(r->res, removed);
	r->npairs++;
	return true;
}

static bool cmd_service_add(core *c, admin_req *q, admin_reply *r)
{
	if (!q->has_name || !chat_valid_user(q->name, strlen(q->name)))
		return refusal_set(&r->why, REFUSE_FIELD,
		                   "name must be 1-64 characters of [A-Za-z0-9._-]");
	if (dir_service(&c->dir, q->name, strlen(q->name)))
		return refusal_set(&r->why, REFUSE_EXISTS, "service %s already exists", q->name);
	return add_account(c, r, add_service, q, "service", "service account", q->name);
}

static bool cmd_stats(core *c, admin_req *q, admin_reply *r)
{
	(void)q;
	stat_value v[CORE_STATS_MAX];
	size_t n = stats_collect(c, v);
	cbw_text(r->res, "counters");
	cbw_map(r->res, n);
	for (size_t i = 0; i < n; i++) {
		cbw_text(r->res, v[i].name);
		cbw_uint(r->res, v[i].v);
	}
	r->npairs++;
	return true;
}

/* chatctl group create G --owner U [--members …]: as if U had asked. */
static bool cmd_group_create(core *c, admin_req *q, admin_reply *r)
{
	if (!q->has_owner || !chat_valid_user(q->owner, strlen(q->owner)))
		return refusal_set(&r->why, REFUSE_FIELD,
		                   "owner must be 1-64 characters of [A-Za-z0-9._-]");
	group_req gq = {
		.gid = q->gid, .gidlen = strlen(q->gid), .has_gid = q->has_gid,
		.name = q->name, .namelen = strlen(q->name), .has_name = q->has_name,
		.members = q->members, .members_len = q->members_len,
	};
	/* Straight into the reply: group events go through c->w and c->w2. */
	group_res res = { .out = r->res, .why = &r->why };
	static const char op[] = "group.create";
	if (!group_request(c, op, sizeof(op) - 1, q->owner, CORE_ADMIN_USERNAME, &gq, &res))
		return false;
	r->npairs = res.npairs;
	return true;
}

/* chatctl backup DIR: answered by backup_tick when the copy is done. */
static bool cmd_backup(core *c, admin_req *q, admin_reply *r)
{
	if (!q->has_dir)
		return refusal_set(&r->why, REFUSE_FIELD, "dir is required");
	if (!backup_start(c, q->dir, r->who, &r->why))
		return false;
	r->deferred = true;
	return true;
}

static const struct {
	const char *name;
	bool (*fn)(core *c, admin_req *q, admin_reply *r); /* false: refused (r->why) */
} commands[] = {
	{ "backup", cmd_backup },
	{ "device.add", cmd_device_add },
	{ "device.remove", cmd_device_remove },
	{ "user.remove", cmd_user_remove },
	{ "service.add", cmd_service_add },
	{ "stats", cmd_stats },
	{ "group.create", cmd_group_create },
};

static bool copy_text(const cbr_item *v, char *out, size_t cap)
{
	if (v->type != CBR_TEXT || v->len >= cap || memchr(v->ptr, '\0', v->len))
		return false;
	memcpy(out, v->ptr, v->len);
	out[v->len] = '\0';
	return true;
}

static bool parse(const uint8_t *p, size_t len, admin_req *q, refusal *why)
{
	cbr_fields f;
	cbr_fields_open(&f, p, len, "the request must be a CBOR map");
	while (cbr_fields_next(&f)) {
		const cbr_item *key = &f.key, *val = &f.val;
		bool ok = true;
		if (cbr_eq(key, "cmd")) {
			ok = val->type == CBR_TEXT;
			if (ok) {
				q->cmd = (const char *)val->ptr;
				q->cmdlen = val->len;
			}
		} else if (cbr_eq(key, "rid")) {
			ok = val->type == CBR_UINT;
			q->has_rid = ok;
			q->rid = val->u;
		} else if (cbr_eq(key, "user")) {
			ok = q->has_user = copy_text(val, q->user, sizeof(q->user));
		} else if (cbr_eq(key, "device")) {
			ok = q->has_device = copy_text(val, q->device, sizeof(q->device));
		} else if (cbr_eq(key, "name")) {
			ok = q->has_name = copy_text(val, q->name, sizeof(q->name));
		} else if (cbr_eq(key, "gid")) {
			ok = q->has_gid = copy_text(val, q->gid, sizeof(q->gid));
		} else if (cbr_eq(key, "dir")) {
			ok = q->has_dir = copy_text(val, q->dir, sizeof(q->dir));
		} else if (cbr_eq(key, "owner")) {
			ok = q->has_owner = copy_text(val, q->owner, sizeof(q->owner));
		} else if (cbr_eq(key, "members")) {
			ok = val->type == CBR_ARRAY && cbr_skip(&f.r, val) == CHAT_OK;
			q->members = f.at;
			q->members_len = (size_t)(f.r.p - f.at);
		} else {
			cbr_fields_skip(&f);
		}
		if (!ok)
			return refusal_set(why, REFUSE_FIELD, "an argument has the wrong type or size");
	}
	const char *bad_cbor = cbr_fields_close(&f, NULL);
	if (bad_cbor)
		return refusal_set(why, REFUSE_CBOR, "%s", bad_cbor);
	if (!q->cmd)
		return refusal_set(why, REFUSE_FIELD, "cmd is required");
	return true;
}

void admin_handle(core *c, const char *clientid, const uint8_t *payload, size_t len)
{
	admin_req q;
	memset(&q, 0, sizeof(q));
	admin_ticket who;
	memset(&who, 0, sizeof(who));
	admin_reply r = { .res = &c->wreply, .who = &who };
	cbw_reset(&c->wreply);
	c->n.admin_cmds++;

	bool ok = parse(payload, len, &q, &r.why);
	snprintf(who.clientid, sizeof(who.clientid), "%s", clientid);
	who.has_cmd = q.cmd != NULL;
	if (q.cmd) {
		who.cmdlen = q.cmdlen < sizeof(who.cmd) ? q.cmdlen : sizeof(who.cmd);
		memcpy(who.cmd, q.cmd, who.cmdlen);
	}
	who.has_rid = q.has_rid;
	who.rid = q.rid;
	if (ok) {
		size_t k = 0, n = sizeof(commands) / sizeof(commands[0]);
		while (k < n && !(strlen(commands[k].name) == q.cmdlen &&
		                  memcmp(commands[k].name, q.cmd, q.cmdlen) == 0))
			k++;
		ok = k < n ? commands[k].fn(c, &q, &r)
		           : refusal_set(&r.why, REFUSE_UNKNOWN, "unknown command");
	}
	if (!r.deferred)
		admin_send(c, &who, ok ? NULL : &r.why, &c->wreply, r.npairs);
	sodium_memzero(c->wreply.buf, c->wreply.len);
}
