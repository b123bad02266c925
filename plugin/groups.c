// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* groups.c — group requests (ctl group.*, and chatctl's group.create) and
 * their membership rules. The groups themselves, in memory, are in
 * group_table.c; a request changes them only after its record is stored.
 *
 * Rules: the creator is the first admin; only admins add, remove and
 * promote; any member may leave; members must be existing users; a group
 * has at most plugin_opt_max_group_size members. When the last admin goes
 * and members remain, the longest-standing member is promoted (announced
 * by an "admin" event). A group whose last member goes is deleted.
 *
 * Every change is a `group` event stored in the group conversation's order
 * (it takes a seq like a message, in the same WriteBatch as the new
 * record), queued for every device of every member — and of the members
 * it removes, who get the removal and nothing after it — and delivered
 * live to those online. Events are acknowledged by delivered receipts and
 * replayed by sync like messages.
 */
#include "core_internal.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void groups_free(core *c)
{
	free(c->groups.gm);
	free(c->groups.ids);
}

enum group_op { OP_CREATE, OP_ADD, OP_REMOVE, OP_LEAVE, OP_ADMIN, OP_INFO, OP_DELETE, OP_NONE };

static const char *const op_names[] = {
	[OP_CREATE] = "group.create", [OP_ADD] = "group.add", [OP_REMOVE] = "group.remove",
	[OP_LEAVE] = "group.leave", [OP_ADMIN] = "group.admin", [OP_INFO] = "group.info",
	[OP_DELETE] = "group.delete", /* an operator's only */
};

static enum group_op op_of(const char *op, size_t len)
{
	for (int i = 0; i < OP_NONE; i++)
		if (strlen(op_names[i]) == len && memcmp(op_names[i], op, len) == 0)
			return (enum group_op)i;
	return OP_NONE;
}

/* The users named by a request's `members`: valid ids, each once, in the
 * order given, at most max_group_size of them; slices into the payload, in
 * c->groups.ids. */
static bool parse_members(core *c, const group_req *q, refusal *why, idslice **out, size_t *n)
{
	*n = 0;
	*out = c->groups.ids;
	if (!q->members)
		return true;
	cbr rd;
	cbr_item arr, e;
	cbr_init(&rd, q->members, q->members_len);
	if (cbr_next(&rd, &arr) || arr.type != CBR_ARRAY)
		return refusal_set(why, REFUSE_FIELD, "members must be an array of user ids");
	hmap seen;
	if (hmap_init(&seen))
		return refusal_set(why, REFUSE_STORE, "out of memory");
	bool ok = true;
	uint64_t i = 0;
	while (ok && cbr_array_next(&rd, &arr, &i)) {
		if (cbr_next(&rd, &e) || e.type != CBR_TEXT || !chat_valid_user((const char *)e.ptr, e.len)) {
			refusal_set(why, REFUSE_FIELD, "members must be an array of user ids");
			ok = false;
		} else if (hmap_get(&seen, (const char *)e.ptr, e.len)) {
			continue;
		} else if (*n >= c->cfg.max_group_size) {
			refusal_set(why, REFUSE_LIMIT, "a group has at most %u members",
			            c->cfg.max_group_size);
			ok = false;
		} else if (chat_grow(&c->groups.ids, &c->groups.idcap, *n + 1, sizeof(idslice), 64) ||
		           hmap_put(&seen, (const char *)e.ptr, e.len, (void *)e.ptr)) {
			refusal_set(why, REFUSE_STORE, "out of memory");
			ok = false;
		} else {
			c->groups.ids[(*n)++] = (idslice){ (const char *)e.ptr, e.len };
		}
	}
	if (ok && rd.err_msg) {
		refusal_set(why, REFUSE_FIELD, "members: %s", rd.err_msg);
		ok = false;
	}
	hmap_free(&seen);
	*out = c->groups.ids;
	return ok;
}

/* Room for n entries of the record being built (c->groups.gm). */
static bool gm_reserve(core *c, size_t n, refusal *why)
{
	if (chat_grow(&c->groups.gm, &c->groups.gmcap, n ? n : 1, sizeof(*c->groups.gm), 64) == CHAT_OK)
		return true;
	return refusal_set(why, REFUSE_STORE, "out of memory");
}

/* The event's own fields, as the body stored for it. */
static void encode_body(cbw *w, const char *gid, const char *op, const char *by,
                        const char *const *names, size_t n, const char *name)
{
	bool with_name = name && *name;
	cbw_reset(w);
	cbw_map(w, 4 + with_name);
	cbw_text(w, "gid"); cbw_text(w, gid);
	cbw_text(w, "op"); cbw_text(w, op);
	cbw_text(w, "by"); cbw_text(w, by);
	cbw_text(w, "members");
	cbw_array(w, n);
	for (size_t i = 0; i < n; i++)
		cbw_text(w, names[i]);
	if (with_name) {
		cbw_text(w, "name");
		cbw_text(w, name);
	}
}

static bool add_user_devices(core *c, const char *name, size_t *n)
{
	const user *u = dir_user(&c->dir, name, strlen(name));
	return !u || fanout_add_user(c, u, NULL, n);
}

/* Writes the new record (c->groups.gm, nrec entries) with the event
 * {op, by, members: names} and delivers the event live. Recipients: every
 * device of the record's members and, when `gone`, of the named users. */
static bool group_commit(core *c, const char *gid, const char *gname, size_t nrec, const char *op,
                         const char *by, const char *from, const char *const *names, size_t nnames,
                         bool gone, uint64_t *seq, refusal *why)
{
	size_t n = 0;
	bool ok = true;
	for (size_t i = 0; ok && i < nrec; i++)
		ok = add_user_devices(c, c->groups.gm[i].user, &n);
	for (size_t i = 0; ok && gone && i < nnames; i++)
		ok = add_user_devices(c, names[i], &n);
	if (!ok)
		return refusal_set(why, REFUSE_STORE, "out of memory");
	fanout_addrs(c, n);
	/* What a member has gathered goes out before its new queue entry (gather.c). */
	for (size_t i = 0; i < n; i++)
		gather_flush_dev(c, c->fan.to[i]);

	char conv[CHAT_CONV_MAX + 1];
	snprintf(conv, sizeof(conv), "g:%s", gid);
	encode_body(&c->w2, gid, op, by, names, nnames, strcmp(op, "created") == 0 ? gname : NULL);
	if (cbw_status(&c->w2))
		return refusal_set(why, REFUSE_STORE, "out of memory");
	uint64_t now = c->io.now_ms(c->io.ctx);
	store_msg ev = {
		.kind = STORE_KIND_GROUP, .conv = conv, .from = from, .ts = now,
		.expires = now + c->cfg.offline_ttl_s * 1000, .body = c->w2.buf, .body_len = c->w2.len,
	};
	store_group sg = { gid, gname, c->groups.gm, nrec };
	if (store_group_event(c->st, &sg, &ev, c->fan.addrs, n, seq)) {
		core_log(c, CORE_LOG_ERR, "storing group %s (%s) failed: %s", gid, op, store_errmsg(c->st));
		return refusal_set(why, REFUSE_STORE,
		                   "the change could not be stored; nothing was changed");
	}
	c->n.group_events++;
	for (size_t i = 0; i < n; i++)
		push_queued(c, c->fan.to[i]);
	ev_group(&c->w, &ev, *seq);
	for (size_t i = 0; i < n; i++)
		ev_publish_entry(c, c->fan.to[i], &c->w);
	return true;
}

static void result(group_res *r, const char *gid, uint64_t seq)
{
	cbw_text(r->out, "gid");
	cbw_text(r->out, gid);
	r->npairs++;
	if (seq) {
		cbw_text(r->out, "seq");
		cbw_uint(r->out, seq);
		r->npairs++;
	}
}

/* Applies a committed record to the in-memory group (creating or deleting
 * it). Memory failures here leave the store right and the table behind
 * until the next start: logged. */
static void apply(core *c, group *g, const char *gid, const char *gname, size_t nrec)
{
	if (!g && nrec)
		g = group_new(c, gid, gname);
	if (g && nrec == 0) {
		group_delete(c, g);
		return;
	}
	if (!g || group_set_members(c, g, c->groups.gm, nrec))
		core_log(c, CORE_LOG_ERR, "out of memory updating group %s; restart to reload it", gid);
}

static bool op_create(core *c, const char *gid, const char *by, const char *from, const group_req *q,
                      group_res *r)
{
	char name[STORE_GROUP_NAME_MAX + 1] = "";
	if (q->has_name) {
		if (q->namelen > STORE_GROUP_NAME_MAX || memchr(q->name, '\0', q->namelen))
			return refusal_set(r->why, REFUSE_FIELD, "name must be text of at most %d bytes",
			                   STORE_GROUP_NAME_MAX);
		memcpy(name, q->name, q->namelen);
		name[q->namelen] = '\0';
	}
	if (group_find(c, gid, strlen(gid)))
		return refusal_set(r->why, REFUSE_EXISTS, "group %s already exists", gid);
	user *creator = dir_user(&c->dir, by, strlen(by));
	if (!creator)
		return refusal_set(r->why, REFUSE_USER, "no such user %s", by);
	idslice *sl;
	size_t ns;
	if (!parse_members(c, q, r->why, &sl, &ns) || !gm_reserve(c, ns + 1, r->why))
		return false;
	size_t n = 0;
	c->groups.gm[n++] = (store_group_member){ creator->name, true };
	for (size_t i = 0; i < ns; i++) {
		user *u = dir_user(&c->dir, sl[i].p, sl[i].n);
		if (!u)
			return refusal_set(r->why, REFUSE_USER, "no such user %.*s", (int)sl[i].n, sl[i].p);
		if (u != creator)
			c->groups.gm[n++] = (store_group_member){ u->name, false };
	}
	if (n > c->cfg.max_group_size)
		return refusal_set(r->why, REFUSE_LIMIT, "a group has at most %u members",
		                   c->cfg.max_group_size);
	/* The event names every member. */
	const char **copy = malloc(n * sizeof(*copy));
	if (!copy)
		return refusal_set(r->why, REFUSE_STORE, "out of memory");
	for (size_t i = 0; i < n; i++)
		copy[i] = c->groups.gm[i].user;
	uint64_t seq;
	bool ok = group_commit(c, gid, name, n, "created", by, from, copy, n, false, &seq, r->why);
	free(copy);
	if (!ok)
		return false;
	apply(c, NULL, gid, name, n);
	core_log(c, CORE_LOG_INFO, "group %s created by %s with %zu members", gid, by, n);
	result(r, gid, seq);
	return true;
}

/* The group, for a request by `by`; refuses unknown groups, non-members
 * and, when need_admin, non-admins. */
static group *member_group(core *c, const char *gid, const char *by, bool need_admin, refusal *why)
{
	group *g = group_find(c, gid, strlen(gid));
	gmember *m = g ? hmap_get(&g->idx, by, strlen(by)) : NULL;
	if (!g)
		refusal_set(why, REFUSE_NOTFOUND, "no group %s", gid);
	else if (!m)
		refusal_set(why, REFUSE_MEMBER, "%s is not a member of group %s", by, gid);
	else if (need_admin && !m->admin)
		refusal_set(why, REFUSE_ADMIN, "only admins of group %s may do this", gid);
	else
		return g;
	return NULL;
}

static bool op_add(core *c, group *g, const char *by, const char *from, const group_req *q,
                   group_res *r)
{
	if (!q->members)
		return refusal_set(r->why, REFUSE_FIELD, "members is required");
	idslice *sl;
	size_t ns;
	if (!parse_members(c, q, r->why, &sl, &ns) || !gm_reserve(c, g->n + ns, r->why))
		return false;
	const char **added = malloc((ns ? ns : 1) * sizeof(*added));
	if (!added)
		return refusal_set(r->why, REFUSE_STORE, "out of memory");
	size_t na = 0;
	for (size_t i = 0; i < ns; i++) {
		user *u = dir_user(&c->dir, sl[i].p, sl[i].n);
		if (!u) {
			free(added);
			return refusal_set(r->why, REFUSE_USER, "no such user %.*s", (int)sl[i].n, sl[i].p);
		}
		if (!group_has(g, u->name, strlen(u->name)))
			added[na++] = u->name;
	}
	uint64_t seq = 0;
	bool ok = true;
	if (na > 0 && g->n + na > c->cfg.max_group_size) {
		ok = refusal_set(r->why, REFUSE_LIMIT, "a group has at most %u members",
		                 c->cfg.max_group_size);
	} else if (na > 0) {
		size_t n = 0;
		for (size_t i = 0; i < g->n; i++)
			c->groups.gm[n++] = (store_group_member){ g->m[i]->user, g->m[i]->admin };
		for (size_t i = 0; i < na; i++)
			c->groups.gm[n++] = (store_group_member){ added[i], false };
		ok = group_commit(c, g->id, g->name, n, "added", by, from, added, na, false, &seq, r->why);
		if (ok)
			apply(c, g, g->id, g->name, n);
	}
	free(added);
	if (ok)
		result(r, g->id, seq);
	return ok;
}

/* Removes the named members (op "removed" or "left"). */
static bool remove_members(core *c, group *g, const char *by, const char *from, const char *op,
                           const idslice *sl, size_t ns, group_res *r)
{
	if (!gm_reserve(c, g->n, r->why))
		return false;
	const char **gone = malloc((ns ? ns : 1) * sizeof(*gone));
	if (!gone)
		return refusal_set(r->why, REFUSE_STORE, "out of memory");
	size_t ng = 0;
	for (size_t i = 0; i < ns; i++) {
		gmember *m = hmap_get(&g->idx, sl[i].p, sl[i].n);
		if (m)
			gone[ng++] = m->user;
	}
	uint64_t seq = 0;
	if (ng > 0) {
		size_t n = 0;
		bool admins = false;
		for (size_t i = 0; i < g->n; i++) {
			bool drop = false;
			for (size_t k = 0; k < ng && !drop; k++)
				drop = gone[k] == g->m[i]->user;
			if (!drop) {
				c->groups.gm[n++] = (store_group_member){ g->m[i]->user, g->m[i]->admin };
				admins |= g->m[i]->admin;
			}
		}
		/* No admin left: the longest-standing member becomes one. */
		const char *promoted = !admins && n > 0 ? c->groups.gm[0].user : NULL;
		if (promoted)
			c->groups.gm[0].admin = true;
		char gid[CHAT_GROUP_MAX + 1], gname[STORE_GROUP_NAME_MAX + 1];
		snprintf(gid, sizeof(gid), "%s", g->id);
		snprintf(gname, sizeof(gname), "%s", g->name);
		bool ok = group_commit(c, gid, gname, n, op, by, from, gone, ng, true, &seq, r->why);
		if (ok) {
			uint64_t seq2;
			refusal unsaid; /* nobody asked for the promotion: logged */
			if (promoted && !group_commit(c, gid, gname, n, "admin", by, from, &promoted, 1,
			                              false, &seq2, &unsaid))
				core_log(c, CORE_LOG_ERR, "group %s: announcing %s as admin failed", gid, promoted);
			apply(c, g, gid, gname, n);
			g = NULL; /* may be gone */
			result(r, gid, seq);
		}
		free(gone);
		return ok;
	}
	free(gone);
	result(r, g->id, 0);
	return true;
}

static bool op_remove(core *c, group *g, const char *by, const char *from, const group_req *q,
                      group_res *r)
{
	if (!q->members)
		return refusal_set(r->why, REFUSE_FIELD, "members is required");
	idslice *sl;
	size_t ns;
	return parse_members(c, q, r->why, &sl, &ns) &&
	       remove_members(c, g, by, from, "removed", sl, ns, r);
}

static bool op_leave(core *c, group *g, const char *by, const char *from, group_res *r)
{
	idslice me = { by, strlen(by) };
	return remove_members(c, g, by, from, "left", &me, 1, r);
}

static bool op_admin(core *c, group *g, const char *by, const char *from, const group_req *q,
                     group_res *r)
{
	if (!q->has_user || !chat_valid_user(q->user, q->userlen))
		return refusal_set(r->why, REFUSE_FIELD, "user must be a user id");
	gmember *t = hmap_get(&g->idx, q->user, q->userlen);
	if (!t)
		return refusal_set(r->why, REFUSE_USER, "%.*s is not a member of group %s", (int)q->userlen,
		                   q->user, g->id);
	uint64_t seq = 0;
	if (!t->admin) {
		if (!gm_reserve(c, g->n, r->why))
			return false;
		for (size_t i = 0; i < g->n; i++)
			c->groups.gm[i] = (store_group_member){ g->m[i]->user, g->m[i]->admin || g->m[i] == t };
		const char *name = t->user;
		if (!group_commit(c, g->id, g->name, g->n, "admin", by, from, &name, 1, false, &seq,
		                  r->why))
			return false;
		t->admin = true; /* the only change: no rebuild */
	}
	result(r, g->id, seq);
	return true;
}

/* An operator's group.delete: every member removed at once, which deletes
 * the group (its conversation's seqs continue if the id is taken again). */
static bool op_delete(core *c, group *g, const char *by, const char *from, group_res *r)
{
	if (chat_grow(&c->groups.ids, &c->groups.idcap, g->n, sizeof(*c->groups.ids), 64))
		return refusal_set(r->why, REFUSE_STORE, "out of memory");
	for (size_t i = 0; i < g->n; i++)
		c->groups.ids[i] = (idslice){ g->m[i]->user, strlen(g->m[i]->user) };
	return remove_members(c, g, by, from, "removed", c->groups.ids, g->n, r);
}

static bool op_info(group *g, group_res *r)
{
	size_t nadm = 0;
	for (size_t i = 0; i < g->n; i++)
		nadm += g->m[i]->admin;
	result(r, g->id, 0);
	cbw_text(r->out, "name");
	cbw_text(r->out, g->name);
	cbw_text(r->out, "members");
	cbw_array(r->out, g->n);
	for (size_t i = 0; i < g->n; i++)
		cbw_text(r->out, g->m[i]->user);
	cbw_text(r->out, "admins");
	cbw_array(r->out, nadm);
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i]->admin)
			cbw_text(r->out, g->m[i]->user);
	r->npairs += 3;
	return true;
}

bool group_request(core *c, const char *op, size_t oplen, const char *by, const char *from,
                   const group_req *q, group_res *r)
{
	r->npairs = 0;
	cbw_reset(r->out);
	enum group_op o = op_of(op, oplen);
	if (o == OP_NONE)
		return refusal_set(r->why, REFUSE_OP, "unknown op");
	if (!q->has_gid || !chat_valid_group(q->gid, q->gidlen))
		return refusal_set(r->why, REFUSE_FIELD, "gid must be 1-64 characters of [A-Za-z0-9._-]");
	char gid[CHAT_GROUP_MAX + 1];
	memcpy(gid, q->gid, q->gidlen);
	gid[q->gidlen] = '\0';
	/* An operator (by NULL) needs no membership, may not create (chatctl
	 * names an owner) or leave, and alone may delete; its events say
	 * "by": "$admin". */
	if (by ? o == OP_DELETE : o == OP_CREATE || o == OP_LEAVE)
		return refusal_set(r->why, REFUSE_OP, "unknown op");
	if (o == OP_CREATE)
		return op_create(c, gid, by, from, q, r);
	group *g;
	if (by) {
		g = member_group(c, gid, by, o == OP_ADD || o == OP_REMOVE || o == OP_ADMIN, r->why);
	} else {
		g = group_find(c, gid, strlen(gid));
		if (!g)
			refusal_set(r->why, REFUSE_NOTFOUND, "no group %s", gid);
		by = CORE_ADMIN_USERNAME;
	}
	if (!g)
		return false;
	switch (o) {
	case OP_ADD: return op_add(c, g, by, from, q, r);
	case OP_REMOVE: return op_remove(c, g, by, from, q, r);
	case OP_LEAVE: return op_leave(c, g, by, from, r);
	case OP_ADMIN: return op_admin(c, g, by, from, q, r);
	case OP_DELETE: return op_delete(c, g, by, from, r);
	default: return op_info(g, r);
	}
}
