// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* core.c — the core's life cycle and its dispatch of broker events.
 *
 * core_open loads everything the hot paths need into memory (device
 * directory, services, the token key), so that a CONNECT, an ACL check or a
 * send costs hash lookups plus, for a send, one RocksDB WriteBatch. Work
 * that must not run inside a callback (disconnecting a client, kick.c) is
 * queued and done on the next tick, which is the one periodic hub: every
 * feature's tick is called from core_tick, in the order written there.
 */
#include "chat_version.h"
#include "core_internal.h"
#include "durable.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void core_config_defaults(core_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->topic_prefix = "chat";
	cfg->max_body = 65536;
	cfg->foreign_acl = CORE_FOREIGN_DEFER;
	cfg->sync_writes = false;
	cfg->offline_ttl_s = 30 * 24 * 3600;
	cfg->max_queue = 100000;
	cfg->inflight_window = 400;
	cfg->inflight_drain = 1000;
	cfg->delivered_gather_ms = 10;
	cfg->replay_slice = 200;
	cfg->replay_batch = 64;
	cfg->expire_slice = 500;
	cfg->max_group_size = 1024;
	cfg->presence_grace_s = 10;
	cfg->send_rate = 100;
	cfg->send_burst = 1000;
	cfg->min_free_mb = 256;
	cfg->push_interval_s = 30;
	cfg->push_retry_s = 60;
	cfg->stats_interval_s = 10;
	cfg->log_level = CORE_LOG_INFO;
}

/* ---- admin credential ---- */

static int write_token_file(const char *path, const char *token)
{
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return CHAT_EINVAL;
	/* A fresh file, never a leftover or a planted link: its mode is ours. */
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return CHAT_EIO;
	size_t len = strlen(token);
	bool ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return CHAT_EIO;
	}
	/* the new name, too, must survive a power cut (durable.h) */
	return chat_sync_parent(path) ? CHAT_OK : CHAT_EIO;
}

/* The admin token lives in <data_dir>/admin.token; the store keeps its hash.
 * A missing file (first start, or an operator who deleted it to rotate the
 * credential) means a new token. */
static int ensure_admin(core *c, char *err, size_t errlen)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/admin.token", c->data_dir) >= sizeof(path)) {
		snprintf(err, errlen, "data dir path too long");
		return CHAT_EINVAL;
	}
	int rc = store_admin_get(c->st, c->admin_hash);
	if (rc == CHAT_OK && access(path, F_OK) == 0)
		return CHAT_OK;
	if (rc != CHAT_OK && rc != CHAT_ENOTFOUND) {
		snprintf(err, errlen, "reading the admin credential: %s", store_errmsg(c->st));
		return rc;
	}
	char token[CORE_TOKEN_LEN + 1];
	token_new(c, token, c->admin_hash);
	rc = write_token_file(path, token);
	sodium_memzero(token, sizeof(token));
	if (rc) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return rc;
	}
	rc = store_admin_set(c->st, c->admin_hash);
	if (rc) {
		snprintf(err, errlen, "storing the admin credential: %s", store_errmsg(c->st));
		return rc;
	}
	core_log(c, CORE_LOG_NOTICE, "created the admin credential in %s", path);
	return CHAT_OK;
}

static int load_device(void *arg, const char *u, const char *d, const uint8_t hash[STORE_HASH_LEN])
{
	return dir_add_device(&((core *)arg)->dir, u, d, hash, NULL);
}

static int load_service(void *arg, const char *name, const uint8_t hash[STORE_HASH_LEN],
                        enum store_role role)
{
	return dir_add_service(&((core *)arg)->dir, name, hash, role);
}

static bool valid_prefix(const char *p)
{
	if (!*p || strlen(p) > CORE_PREFIX_MAX || *p == '$' || *p == '/' || p[strlen(p) - 1] == '/' ||
	    strstr(p, "//"))
		return false;
	return strpbrk(p, "+#") == NULL;
}

core *core_open(const core_config *cfg, const core_io *io, char *err, size_t errlen)
{
	core *c = NULL;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		goto fail;
	}
	if (!cfg->data_dir || !*cfg->data_dir) {
		snprintf(err, errlen, "plugin_opt_data_dir is required");
		goto fail;
	}
	if (!valid_prefix(cfg->topic_prefix)) {
		snprintf(err, errlen, "plugin_opt_topic_prefix '%s' is not a valid topic prefix (1-128 characters, no wildcards, no leading $ or /)",
		         cfg->topic_prefix);
		goto fail;
	}
	if (cfg->max_group_size < 2 || cfg->max_group_size > CORE_GROUP_SIZE_MAX) {
		snprintf(err, errlen, "plugin_opt_max_group_size must be 2-%d", CORE_GROUP_SIZE_MAX);
		goto fail;
	}
	if (cfg->inflight_window < 1 || cfg->inflight_drain < 1) {
		snprintf(err, errlen, "plugin_opt_inflight_window and plugin_opt_inflight_drain must be at least 1");
		goto fail;
	}
	_Static_assert(CORE_GROUP_SIZE_MAX <= STORE_GROUP_MEMBERS_MAX, "group records hold every member");
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->cfg = *cfg;
	c->io = *io;
	c->data_dir = strdup(cfg->data_dir);
	c->prefix = strdup(cfg->topic_prefix);
	c->cfg.data_dir = c->data_dir;
	c->cfg.topic_prefix = c->prefix;
	cbw_init(&c->w);
	cbw_init(&c->w2);
	cbw_init(&c->wreply);
	cbw_init(&c->deliv.batch);
	cbw_init(&c->gath.w);
	if (!c->data_dir || !c->prefix || dir_init(&c->dir)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->prefix_len = strlen(c->prefix);

	struct stat sb;
	if (stat(c->data_dir, &sb) != 0 &&
	    (mkdir(c->data_dir, 0700) != 0 || !chat_sync_parent(c->data_dir))) {
		snprintf(err, errlen, "cannot create data dir %s: %s", c->data_dir, strerror(errno));
		goto fail;
	}
	if (stat(c->data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "data dir %s is not a directory", c->data_dir);
		goto fail;
	}
	char dbdir[4096];
	snprintf(dbdir, sizeof(dbdir), "%s/store", c->data_dir);
	store_opts so = { .dir = dbdir, .sync_writes = cfg->sync_writes,
	                  .min_free = (uint64_t)cfg->min_free_mb << 20 };
	char serr[512] = "";
	if (store_open(&c->st, &so, serr, sizeof(serr))) {
		snprintf(err, errlen, "cannot open the store in %s: %s", dbdir, serr);
		goto fail;
	}
	if (!store_insert_hints(c->st))
		core_log(c, CORE_LOG_WARNING, "this RocksDB build's C API is laid out differently from "
		         "the one mosquitto-chat was built for: memtable insert hints are off "
		         "(everything works; writes cost more CPU)");
	if (store_migrated_from(c->st))
		core_log(c, CORE_LOG_NOTICE, "migrated the store from schema version %u to %u",
		         store_migrated_from(c->st), STORE_SCHEMA_VERSION);
	if (store_token_key(c->st, c->token_key) || store_devices_each(c->st, load_device, c) ||
	    store_services_each(c->st, load_service, c)) {
		snprintf(err, errlen, "cannot load accounts from the store: %s", store_errmsg(c->st));
		goto fail;
	}
	if (group_table_load(c)) {
		snprintf(err, errlen, "cannot load groups from the store: %s", store_errmsg(c->st));
		goto fail;
	}
	if (caps_load(c)) {
		snprintf(err, errlen, "cannot load device capabilities from the store: %s",
		         store_errmsg(c->st));
		goto fail;
	}
	if (push_load(c)) {
		snprintf(err, errlen, "cannot load push targets from the store: %s", store_errmsg(c->st));
		goto fail;
	}
	if (ensure_admin(c, err, errlen)) {
		goto fail;
	}
	core_log(c, CORE_LOG_NOTICE, "mosquitto-chat " CHAT_VERSION " ready: data dir %s, prefix %s/, %zu users, %zu groups",
	         c->data_dir, c->prefix, c->dir.users.live, c->gtab.by_id.live);
	return c;
fail:
	core_close(c);
	return NULL;
}

void core_close(core *c)
{
	if (!c)
		return;
	receipts_flush_all(c);
	gather_flush_all(c);
	backup_wait(c);
	commit_close(c);
	if (c->st)
		store_close(c->st);
	group_table_free(c);
	groups_free(c);
	push_free(c);
	gather_free(c);
	dir_free(&c->dir);
	cbw_free(&c->w);
	cbw_free(&c->w2);
	cbw_free(&c->wreply);
	cbw_free(&c->deliv.batch);
	fanout_free(c);
	send_free(c);
	kick_free(c);
	free(c->data_dir);
	free(c->prefix);
	sodium_memzero(c->token_key, sizeof(c->token_key));
	free(c);
}

void core_tick(core *c)
{
	kick_tick(c);
	receipts_tick(c, c->io.now_ms(c->io.ctx)); /* before the sweep, which could take their entries */
	expiry_tick(c); /* first: a sweep can free room for the pump */
	sync_tick(c);
	presence_tick(c);
	push_tick(c);
	stats_tick(c, c->io.now_ms(c->io.ctx));
	backup_tick(c);
	send_poll(c); /* sends the store answered since: before their acks are released */
	commit_tick(c);
}

void core_disconnect(core *c, void *conn, const char *clientid, const char *username)
{
	(void)clientid;
	if (!username || !strchr(username, '/'))
		return;
	device *dev = dir_device(&c->dir, username, strlen(username));
	/* Only the connection recorded at auth ends the device's session: the
	 * broker also reports the old connection of a taken-over session. */
	if (dev && dev->conn == conn) {
		receipts_flush_dev(c, dev);
		gather_flush_dev(c, dev); /* to the connection its events were gathered for */
		sync_stop(c, dev);
		commit_forget_client(c, dev->addr);
		dir_set_offline(&c->dir, dev);
		presence_down(c, dev->user);
	}
}

enum core_verdict core_message(core *c, void *conn, const char *clientid, const char *username,
                               const char *name, const void *payload, size_t len, int qos,
                               bool retain, int protocol_version)
{
	(void)conn;
	(void)clientid;
	(void)protocol_version;
	send_publish_start(c);
	topic t;
	topic_parse(c, name, &t);
	if (t.kind == T_OUTSIDE)
		return CORE_ALLOW; /* not ours: the ACL has already judged it */
	if (t.kind == T_KEYS_STATS && username && dir_service(&c->dir, username, strlen(username))) {
		stats_keys(c, payload, len);
		return CORE_ALLOW;
	}
	if (t.kind == T_PUSH_STATS && username && dir_service(&c->dir, username, strlen(username))) {
		stats_pushgw(c, payload, len);
		return CORE_ALLOW;
	}
	if (t.kind == T_PUSH_ACK && username && dir_service(&c->dir, username, strlen(username))) {
		push_ack(c, payload, len); /* a push gateway's acknowledgement */
		return CORE_ALLOW;
	}
	if (!username || !strchr(username, '/'))
		return CORE_ALLOW; /* services and admin: only what their ACL allowed */
	device *dev = dir_device(&c->dir, username, strlen(username));
	if (!dev)
		return CORE_DENY; /* removed while connected; it is being kicked */
	c->n.msgs_in++;
	receipts_flush_dev(c, dev); /* its PUBACKs came before this */
	if (retain) {
		return ev_refuse(c, dev, REFUSE_QOS, "retained publishes are not allowed on chat topics");
	}
	switch (t.kind) {
	case T_DM:
		return send_dm(c, dev, &t, payload, len, qos, retain);
	case T_KEYS_REQ:
		return CORE_ALLOW; /* routed to the key server */
	case T_MEDIA_REQ:
		return CORE_ALLOW; /* routed to chat-media */
	case T_GROUP:
		return send_group(c, dev, &t, payload, len, qos);
	case T_TYPING:
		return typing_handle(c, dev, &t, payload, len);
	case T_RECEIPT:
		return receipts_handle(c, dev, payload, len);
	case T_SYNC: {
		/* {caps} first: the replay uses them; a bad one is told, and the
		 * replay still runs with the device's capabilities as they were */
		refusal why;
		if (!caps_sync(c, dev, payload, len, &why)) {
			c->n.msgs_refused++;
			ev_error(c, dev, &why, NULL, 0);
		}
		sync_start(c, dev);
		return CORE_ALLOW;
	}
	case T_CTL:
		return ctl_handle(c, dev, payload, len);
	default:
		return ev_refuse(c, dev, REFUSE_TOPIC, "this topic takes no publishes");
	}
}

void core_control(core *c, const char *clientid, const char *username, const void *payload,
                  size_t len)
{
	const service *s = username ? dir_service(&c->dir, username, strlen(username)) : NULL;
	bool admin = username && strcmp(username, CORE_ADMIN_USERNAME) == 0;
	if (!clientid || (!admin && !(s && s->role == STORE_ROLE_PROVISIONER))) {
		core_log(c, CORE_LOG_WARNING, "ignored a $CONTROL/chat/v1 request from a non-admin client");
		return;
	}
	admin_handle(c, clientid, admin ? ADMIN_FULL : ADMIN_PROVISIONER, payload, len);
}
