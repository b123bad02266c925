// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* admin.c — the $CONTROL/chat/v1 admin commands (docs/PROTOCOL.md §5).
 *
 * In the manner of mosquitto's dynamic-security plugin: one CBOR request
 * per message, a command table, and one reply per request on
 * $CONTROL/chat/v1/response addressed to the requesting client only, with
 * ok:true and the result fields or ok:false with a code and a reason.
 * Changes go to the store first and to the in-memory directory second, so a
 * failed write leaves both as they were.
 *
 * Listings (device.list, user.list, service.list, group.list) are paged
 * like a cursor: at most `limit` items (LIST_MAX) after the key `after`,
 * walked in the store's key order from there, so a page costs O(limit)
 * on the broker's thread however many there are; `next` (the last item's
 * key) is there when more follow, and the client asks again with it.
 *
 * A provisioner service account (STORE_ROLE_PROVISIONER) reaches this
 * table too, for the rows marked so: an app backend adds and removes
 * devices without holding the admin token.
 */
#include "core_internal.h"
#include "err.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define LIST_DEFAULT 100 /* items a page when the request names no limit */
#define LIST_MAX 1000    /* the most it may name: a reply of ~120 kB at most */

/* The roles' wire names, by enum store_role. */
static const char *const role_names[] = {
	[STORE_ROLE_SERVICE] = "service", [STORE_ROLE_PROVISIONER] = "provisioner",
};

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
	char after[CHAT_ADDR_MAX + 2]; /* a listing's cursor */
	bool has_after;
	uint64_t limit;
	bool has_limit;
	char role[16];
	bool has_role;
	enum store_role srole; /* role, checked (cmd_service_add) */
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

/* The request's role into q->srole (none: service); false: not a role. */
static bool role_of(admin_req *q)
{
	q->srole = STORE_ROLE_SERVICE;
	for (size_t i = 0; q->has_role && i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (strcmp(q->role, role_names[i]) == 0)
			q->srole = (enum store_role)i;
	return !q->has_role || strcmp(q->role, role_names[q->srole]) == 0;
}

static int add_service(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN])
{
	int rc = store_service_add(c->st, q->name, hash, q->srole);
	return rc == CHAT_OK ? dir_add_service(&c->dir, q->name, hash, q->srole) : rc;
}

/* A device's or service's new token in place of its old one. */
static int rotate_device(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN])
{
	int rc = store_device_rehash(c->st, q->user, q->device, hash);
	if (rc == CHAT_OK) {
		char addr[sizeof(q->user) + sizeof(q->device)];
		snprintf(addr, sizeof(addr), "%s/%s", q->user, q->device);
		device *dev = dir_device(&c->dir, addr, strlen(addr));
		memcpy(dev->hash, hash, STORE_HASH_LEN);
		if (dev->conn) /* at the tick; a connection with the new token cancels it */
			kick_schedule(c, dev->addr);
	}
	return rc;
}

static int rotate_service(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN])
{
	int rc = store_service_rehash(c->st, q->name, hash);
	if (rc == CHAT_OK) {
		memcpy(dir_service(&c->dir, q->name, strlen(q->name))->hash, hash, STORE_HASH_LEN);
		/* a leaked token's connections end too, at the tick */
		kick_schedule_user(c, q->name);
	}
	return rc;
}

/* An account with a fresh token (`set`: a new account, or a new token for
 * one the caller found): stored first, then in the directory; the reply
 * carries the token, which is then wiped. kind names it in the refusal
 * ("device", "service"), logged in the log ("service account") after
 * `did` ("added", "rotated the token of"). */
static bool issue_token(core *c, admin_reply *r,
                        int (*set)(core *c, const admin_req *q, const uint8_t hash[STORE_HASH_LEN]),
                        const admin_req *q, const char *kind, const char *did, const char *logged,
                        const char *name)
{
	char token[CORE_TOKEN_LEN + 1];
	uint8_t hash[STORE_HASH_LEN];
	token_new(c, token, hash);
	int rc = set(c, q, hash);
	if (rc == CHAT_EEXIST) {
		refusal_set(&r->why, REFUSE_EXISTS, "%s %s already exists", kind, name);
	} else if (rc) {
		store_failed(c, r);
	} else {
		cbw_text(r->res, "token");
		cbw_text(r->res, token);
		r->npairs++;
		core_log(c, CORE_LOG_NOTICE, "%s %s %s", did, logged, name);
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
	if (!issue_token(c, r, add_device, q, "device", "added", "device", addr))
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
	gather_forget(c, dev);
	caps_forget(c, dev);
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

static bool need_name(admin_req *q, admin_reply *r)
{
	if (!q->has_name || !chat_valid_user(q->name, strlen(q->name)))
		return refusal_set(&r->why, REFUSE_FIELD,
		                   "name must be 1-64 characters of [A-Za-z0-9._-]");
	return true;
}

static bool cmd_device_rotate(core *c, admin_req *q, admin_reply *r)
{
	if (!need_device(q, r))
		return false;
	char addr[sizeof(q->user) + sizeof(q->device)];
	snprintf(addr, sizeof(addr), "%s/%s", q->user, q->device);
	if (!dir_device(&c->dir, addr, strlen(addr)))
		return refusal_set(&r->why, REFUSE_NOTFOUND, "no device %s", addr);
	return issue_token(c, r, rotate_device, q, "device", "rotated the token of", "device", addr);
}

static bool cmd_service_rotate(core *c, admin_req *q, admin_reply *r)
{
	if (!need_name(q, r))
		return false;
	if (!dir_service(&c->dir, q->name, strlen(q->name)))
		return refusal_set(&r->why, REFUSE_NOTFOUND, "no service %s", q->name);
	return issue_token(c, r, rotate_service, q, "service", "rotated the token of",
	                   "service account", q->name);
}

/* Its connections lose every chat right at once (the ACL no longer knows
 * the name) and are closed at the next tick. */
static bool cmd_service_remove(core *c, admin_req *q, admin_reply *r)
{
	if (!need_name(q, r))
		return false;
	service *s = dir_service(&c->dir, q->name, strlen(q->name));
	if (!s)
		return refusal_set(&r->why, REFUSE_NOTFOUND, "no service %s", q->name);
	if (store_service_remove(c->st, q->name))
		return store_failed(c, r);
	dir_remove_service(&c->dir, s);
	kick_schedule_user(c, q->name);
	core_log(c, CORE_LOG_NOTICE, "removed service account %s", q->name);
	return true;
}

static bool cmd_service_add(core *c, admin_req *q, admin_reply *r)
{
	if (!need_name(q, r))
		return false;
	if (!role_of(q))
		return refusal_set(&r->why, REFUSE_FIELD, "role must be \"service\" or \"provisioner\"");
	if (dir_service(&c->dir, q->name, strlen(q->name)))
		return refusal_set(&r->why, REFUSE_EXISTS, "service %s already exists", q->name);
	return issue_token(c, r, add_service, q, "service", "added", "service account", q->name);
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

/* chatctl group show|add|remove|promote|delete: an operator's group
 * request (groups.c), on any group, members or not. */
static bool group_operator(core *c, admin_req *q, admin_reply *r, const char *op)
{
	group_req gq = {
		.gid = q->gid, .gidlen = strlen(q->gid), .has_gid = q->has_gid,
		.user = q->user, .userlen = strlen(q->user), .has_user = q->has_user,
		.members = q->members, .members_len = q->members_len,
	};
	group_res res = { .out = r->res, .why = &r->why };
	if (!group_request(c, op, strlen(op), NULL, CORE_ADMIN_USERNAME, &gq, &res))
		return false;
	r->npairs = res.npairs;
	return true;
}

static bool cmd_group_show(core *c, admin_req *q, admin_reply *r)
{
	return group_operator(c, q, r, "group.info");
}

static bool cmd_group_add(core *c, admin_req *q, admin_reply *r)
{
	return group_operator(c, q, r, "group.add");
}

static bool cmd_group_remove(core *c, admin_req *q, admin_reply *r)
{
	return group_operator(c, q, r, "group.remove");
}

static bool cmd_group_promote(core *c, admin_req *q, admin_reply *r)
{
	return group_operator(c, q, r, "group.admin");
}

static bool cmd_group_delete(core *c, admin_req *q, admin_reply *r)
{
	return group_operator(c, q, r, "group.delete");
}

/* ---- listings ---- */

/* A page being built: its items apart (the array's length comes first),
 * and the last one's key, the cursor `next` when more follow. */
typedef struct page {
	core *c;
	cbw items;
	size_t n, limit;
	bool more;
	char last[CHAT_ADDR_MAX + 1];
} page;

static bool page_open(page *pg, core *c, const admin_req *q, admin_reply *r)
{
	if (q->has_limit && (q->limit < 1 || q->limit > LIST_MAX))
		return refusal_set(&r->why, REFUSE_FIELD, "limit must be 1-%d", LIST_MAX);
	memset(pg, 0, sizeof(*pg));
	pg->c = c;
	pg->limit = q->has_limit ? (size_t)q->limit : LIST_DEFAULT;
	cbw_init(&pg->items);
	return true;
}

/* Room for one more item (keyed `key`)? Else the page is full: more. */
static bool page_take(page *pg, const char *key)
{
	if (pg->n == pg->limit) {
		pg->more = true;
		return false;
	}
	pg->n++;
	snprintf(pg->last, sizeof(pg->last), "%s", key);
	return true;
}

/* The page into the reply as `field`: [items…], and `next` if more. */
static bool page_close(page *pg, admin_reply *r, const char *field, int rc)
{
	bool ok = rc == CHAT_OK || rc == CHAT_STOP;
	if (!ok)
		store_failed(pg->c, r);
	else if (cbw_status(&pg->items))
		ok = refusal_set(&r->why, REFUSE_STORE, "out of memory");
	if (ok) {
		cbw_text(r->res, field);
		cbw_array(r->res, pg->n);
		cbw_raw(r->res, pg->items.buf, pg->items.len);
		r->npairs++;
		if (pg->more) {
			cbw_text(r->res, "next");
			cbw_text(r->res, pg->last);
			r->npairs++;
		}
	}
	cbw_free(&pg->items);
	return ok;
}

static void put_device(page *pg, const device *dev)
{
	cbw *w = &pg->items;
	cbw_map(w, 3);
	cbw_text(w, "user");
	cbw_text(w, dev->user->name);
	cbw_text(w, "device");
	cbw_text(w, dev->id);
	cbw_text(w, "online");
	cbw_bool(w, dev->conn != NULL);
}

static int list_device(void *arg, const char *u, const char *d, const uint8_t hash[STORE_HASH_LEN])
{
	(void)hash;
	page *pg = arg;
	char addr[CHAT_ADDR_MAX + 1];
	snprintf(addr, sizeof(addr), "%s/%s", u, d);
	device *dev = dir_device(&pg->c->dir, addr, strlen(addr));
	if (!dev) /* the store and the directory agree but for a failed start */
		return CHAT_OK;
	if (!page_take(pg, addr))
		return CHAT_STOP;
	put_device(pg, dev);
	return CHAT_OK;
}

/* device.list {?user, ?after: "U/D", ?limit}: one user's devices from the
 * directory (at most 64, in device-id order), or every device from the
 * store's walk. */
static bool cmd_device_list(core *c, admin_req *q, admin_reply *r)
{
	const char *au = NULL, *ad = NULL;
	size_t aul = 0, adl = 0;
	if (q->has_user && !need_user(q, r))
		return false;
	if (q->has_after && !chat_parse_addr(q->after, strlen(q->after), &au, &aul, &ad, &adl))
		return refusal_set(&r->why, REFUSE_FIELD, "after must be a device address U/D");
	page pg;
	if (!page_open(&pg, c, q, r))
		return false;
	int rc = CHAT_OK;
	if (q->has_user) {
		user *u = dir_user(&c->dir, q->user, strlen(q->user));
		int cmp = 0;
		if (q->has_after) {
			size_t ul = strlen(q->user), n = aul < ul ? aul : ul;
			cmp = memcmp(au, q->user, n);
			cmp = cmp ? cmp : (aul > ul) - (aul < ul);
		}
		for (size_t i = 0; u && cmp <= 0 && i < u->ndev; i++) {
			const device *dev = u->dev[i];
			if (cmp == 0 && q->has_after) {
				size_t dl = strlen(dev->id), n = adl < dl ? adl : dl;
				int dc = memcmp(dev->id, ad, n);
				if ((dc ? dc : (dl > adl) - (dl < adl)) <= 0)
					continue;
			}
			if (!page_take(&pg, dev->addr))
				break;
			put_device(&pg, dev);
		}
	} else if (q->has_after) {
		char user[CHAT_USER_MAX + 1], dev[CHAT_DEVICE_MAX + 1];
		snprintf(user, sizeof(user), "%.*s", (int)aul, au);
		snprintf(dev, sizeof(dev), "%.*s", (int)adl, ad);
		rc = store_devices_after(c->st, user, dev, list_device, &pg);
	} else {
		rc = store_devices_after(c->st, NULL, NULL, list_device, &pg);
	}
	return page_close(&pg, r, "devices", rc);
}

static int list_user(void *arg, const char *u, const char *d, const uint8_t hash[STORE_HASH_LEN])
{
	(void)d;
	(void)hash;
	page *pg = arg;
	if (pg->n && strcmp(pg->last, u) == 0)
		return CHAT_OK; /* its other devices */
	const user *usr = dir_user(&pg->c->dir, u, strlen(u));
	if (!usr)
		return CHAT_OK;
	if (!page_take(pg, u))
		return CHAT_STOP;
	cbw *w = &pg->items;
	cbw_map(w, 3);
	cbw_text(w, "user");
	cbw_text(w, u);
	cbw_text(w, "devices");
	cbw_uint(w, usr->ndev);
	cbw_text(w, "online");
	cbw_uint(w, usr->nonline);
	return CHAT_OK;
}

/* user.list {?after: U, ?limit}: users are those with a device; walked
 * through the devices, skipping the rest of a user's (at most 64). */
static bool cmd_user_list(core *c, admin_req *q, admin_reply *r)
{
	if (q->has_after && !chat_valid_user(q->after, strlen(q->after)))
		return refusal_set(&r->why, REFUSE_FIELD, "after must be a user id");
	page pg;
	if (!page_open(&pg, c, q, r))
		return false;
	int rc = store_devices_after(c->st, q->has_after ? q->after : NULL, NULL, list_user, &pg);
	return page_close(&pg, r, "users", rc);
}

static int list_service(void *arg, const char *name, const uint8_t hash[STORE_HASH_LEN],
                        enum store_role role)
{
	(void)hash;
	page *pg = arg;
	if (!page_take(pg, name))
		return CHAT_STOP;
	cbw *w = &pg->items;
	cbw_map(w, 2);
	cbw_text(w, "name");
	cbw_text(w, name);
	cbw_text(w, "role");
	cbw_text(w, role_names[role]);
	return CHAT_OK;
}

static bool cmd_service_list(core *c, admin_req *q, admin_reply *r)
{
	if (q->has_after && !chat_valid_user(q->after, strlen(q->after)))
		return refusal_set(&r->why, REFUSE_FIELD, "after must be a service name");
	page pg;
	if (!page_open(&pg, c, q, r))
		return false;
	int rc = store_services_after(c->st, q->has_after ? q->after : NULL, list_service, &pg);
	return page_close(&pg, r, "services", rc);
}

static int list_group(void *arg, const store_group *g)
{
	page *pg = arg;
	if (!page_take(pg, g->gid))
		return CHAT_STOP;
	cbw *w = &pg->items;
	cbw_map(w, 3);
	cbw_text(w, "gid");
	cbw_text(w, g->gid);
	cbw_text(w, "name");
	cbw_text(w, g->name);
	cbw_text(w, "members");
	cbw_uint(w, g->n);
	return CHAT_OK;
}

static bool cmd_group_list(core *c, admin_req *q, admin_reply *r)
{
	if (q->has_after && !chat_valid_group(q->after, strlen(q->after)))
		return refusal_set(&r->why, REFUSE_FIELD, "after must be a group id");
	page pg;
	if (!page_open(&pg, c, q, r))
		return false;
	int rc = store_groups_after(c->st, q->has_after ? q->after : NULL, list_group, &pg);
	return page_close(&pg, r, "groups", rc);
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
	bool provisioner; /* a provisioner service may run it too */
} commands[] = {
	{ "backup", cmd_backup, false },
	{ "device.add", cmd_device_add, true },
	{ "device.remove", cmd_device_remove, true },
	{ "device.list", cmd_device_list, false },
	{ "device.rotate", cmd_device_rotate, false },
	{ "user.list", cmd_user_list, false },
	{ "user.remove", cmd_user_remove, false },
	{ "service.add", cmd_service_add, false },
	{ "service.list", cmd_service_list, false },
	{ "service.remove", cmd_service_remove, false },
	{ "service.rotate", cmd_service_rotate, false },
	{ "stats", cmd_stats, true },
	{ "group.create", cmd_group_create, false },
	{ "group.list", cmd_group_list, false },
	{ "group.show", cmd_group_show, false },
	{ "group.add", cmd_group_add, false },
	{ "group.remove", cmd_group_remove, false },
	{ "group.promote", cmd_group_promote, false },
	{ "group.delete", cmd_group_delete, false },
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
		} else if (cbr_eq(key, "after")) {
			ok = q->has_after = copy_text(val, q->after, sizeof(q->after));
		} else if (cbr_eq(key, "limit")) {
			ok = q->has_limit = val->type == CBR_UINT;
			q->limit = val->u;
		} else if (cbr_eq(key, "role")) {
			ok = q->has_role = copy_text(val, q->role, sizeof(q->role));
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

void admin_handle(core *c, const char *clientid, enum admin_role role, const uint8_t *payload,
                  size_t len)
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
		if (k == n)
			ok = refusal_set(&r.why, REFUSE_UNKNOWN, "unknown command");
		else if (role == ADMIN_PROVISIONER && !commands[k].provisioner)
			ok = refusal_set(&r.why, REFUSE_DENIED, "a provisioner may only add and remove "
			                 "devices and read the counters");
		else
			ok = commands[k].fn(c, &q, &r);
	}
	if (!r.deferred)
		admin_send(c, &who, ok ? NULL : &r.why, &c->wreply, r.npairs);
	sodium_memzero(c->wreply.buf, c->wreply.len);
}
