// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* stats.c — the server's counters in one table, for `chatctl stats` (the
 * admin `stats` command) and for the periodic $SYS/broker/chat/<name>
 * messages, published in mosquitto's manner: retained, the value as decimal
 * text, every plugin_opt_stats_interval seconds and only when it changed.
 *
 * Gauges (devices online, active replays, engine figures) are read when
 * asked; the rest are counters since start. The key server's figures
 * (keys_*) are what it last published on P/keys/stats; the push gateways'
 * (pushgw_*) the sums of what each last published on P/push/stats. A refusal is counted
 * by its code's index (refusal.c): no string compares.
 */
#include "core_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define SYS_PREFIX "$SYS/broker/chat/"

/* The refused_<code> counters, in the order of REFUSAL_CODES. */
#define REFUSAL_COUNTER(e, name) "refused_" name,
static const char *const refused_names[REFUSAL_NCODES] = { REFUSAL_CODES(REFUSAL_COUNTER) };
#undef REFUSAL_COUNTER

/* The push gateway's counters (chat-pushgw's COUNTERS, docs/OPERATIONS.md),
 * each published as pushgw_<name>. */
static const char *const pushgw_names[PUSHGW_NCOUNTERS] = {
	"received", "delivered", "invalid", "failed", "retries", "dropped", "malformed",
	"failed_auth", "failed_rejected", "failed_exhausted", "failed_unconfigured",
	"http_errors", "throttled", "server_errors", "auth_renewals", "token_fetches",
	"token_failures", "connections", "reloads", "reload_failures",
};
static const char *const pushgw_stat_names[PUSHGW_NCOUNTERS] = {
	"pushgw_received", "pushgw_delivered", "pushgw_invalid", "pushgw_failed",
	"pushgw_retries", "pushgw_dropped", "pushgw_malformed", "pushgw_failed_auth",
	"pushgw_failed_rejected", "pushgw_failed_exhausted", "pushgw_failed_unconfigured",
	"pushgw_http_errors", "pushgw_throttled", "pushgw_server_errors", "pushgw_auth_renewals",
	"pushgw_token_fetches", "pushgw_token_failures", "pushgw_connections", "pushgw_reloads",
	"pushgw_reload_failures",
};

static uint64_t pushgw_sum(const pushgw_stats *p, size_t k)
{
	uint64_t v = p->retired[k];
	for (size_t i = 0; i < PUSHGW_TABLE; i++)
		v += p->gw[i].v[k];
	return v;
}

void stats_pushgw(core *c, const uint8_t *payload, size_t len)
{
	pushgw_stats *p = &c->stats.pushgw;
	uint64_t v[PUSHGW_NCOUNTERS] = { 0 };
	char id[sizeof(p->gw[0].id)] = "";
	cbr r;
	cbr_item map, key, val;
	if (len == 0 || cbr_map_open(&r, payload, len, &map, NULL))
		return;
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val))
			return;
		if (cbr_eq(&key, "gw") && val.type == CBR_TEXT && val.len > 0 && val.len < sizeof(id) &&
		    !memchr(val.ptr, 0, val.len)) {
			memcpy(id, val.ptr, val.len);
			id[val.len] = 0;
		} else if (val.type == CBR_UINT) {
			for (size_t k = 0; k < PUSHGW_NCOUNTERS; k++)
				if (cbr_eq(&key, pushgw_names[k]))
					v[k] = val.u;
		} else if (cbr_skip(&r, &val)) {
			return;
		}
	}
	if (cbr_map_close(&r, NULL) || !id[0])
		return;
	size_t at = PUSHGW_TABLE, oldest = 0;
	for (size_t g = 0; g < PUSHGW_TABLE; g++) {
		if (!strcmp(p->gw[g].id, id))
			at = g;
		if (p->gw[g].seen < p->gw[oldest].seen)
			oldest = g;
	}
	if (at == PUSHGW_TABLE) {
		/* a new gateway: its slot is the one heard from least recently
		 * (an empty slot has seen 0), whose figures are kept as retired */
		at = oldest;
		for (size_t k = 0; k < PUSHGW_NCOUNTERS; k++)
			p->retired[k] += p->gw[at].v[k];
		memset(&p->gw[at], 0, sizeof(p->gw[at]));
		memcpy(p->gw[at].id, id, sizeof(id));
	}
	p->gw[at].seen = ++p->seq;
	memcpy(p->gw[at].v, v, sizeof(v));
}

void stats_refused(core *c, enum refusal_code code)
{
	c->n.refused[code < REFUSAL_NCOUNTED ? code : REFUSAL_NCOUNTED]++;
}

/* Devices whose backlog the pump drains: replays (chat/sync) only, or all. */
static uint64_t count_backlogs(const core *c, bool replays)
{
	uint64_t n = 0;
	for (const device *d = c->deliv.backlogs; d; d = d->fc.next)
		n += !replays || d->fc.sync;
	return n;
}

size_t stats_collect(core *c, stat_value *out)
{
	store_engine e;
	store_engine_stats(c->st, &e);
	const stat_value fixed[] = {
		{ "users", c->dir.users.live },
		{ "devices", c->dir.devices.live },
		{ "devices_online", c->dir.online },
		{ "services", c->dir.services.live },
		{ "auth_ok", c->n.auth_ok },
		{ "auth_refused", c->n.auth_refused },
		{ "messages_in", c->n.msgs_in },
		{ "messages_stored", c->n.msgs_stored },
		{ "messages_duplicate", c->n.msgs_dup },
		{ "messages_refused", c->n.msgs_refused },
		{ "events_out", c->n.events_out },
		{ "errors_out", c->n.errors_out },
		{ "subscriptions_refused", c->n.subs_refused },
		{ "admin_commands", c->n.admin_cmds },
		{ "syncs", c->n.syncs },
		{ "auto_syncs", c->n.auto_syncs },
		{ "replays_active", count_backlogs(c, true) },
		{ "backlogs_active", count_backlogs(c, false) },
		{ "events_spilled", c->n.spilled },
		{ "queue_entries_replayed", c->n.replayed },
		{ "replay_batches", c->n.replay_batches },
		{ "queue_entries", e.queue_entries_estimate },
		{ "receipts_in", c->n.receipts_in },
		{ "acks_delivered", c->n.acks_delivered },
		{ "receipts_out", c->n.receipts_out },
		{ "events_queued", c->n.receipts_queued },
		{ "messages_expired", c->n.expired },
		{ "groups", c->gtab.by_id.live },
		{ "group_events", c->n.group_events },
		{ "typing_out", c->n.typing_out },
		{ "presence_out", c->n.presence_out },
		{ "presence_answers", c->n.presence_answers },
		{ "wakeups_out", c->n.wakeups_out },
		{ "wakeups_resent", c->n.wakeups_resent },
		{ "push_acks", c->n.push_acks },
		{ "push_tokens_invalid", c->n.push_invalid },
		{ "backups", c->n.backups },
		{ "commit_batches", store_group_commit_batches(c->st) },
		{ "commit_acks_deferred", c->n.acks_deferred },
		{ "commit_acks_refused", c->n.acks_refused },
		{ "commit_publishes_held", c->n.publishes_held },
		{ "keys_requests", c->stats.keys.requests },
		{ "keys_refused_rate", c->stats.keys.refused_rate },
		{ "keys_refused", c->stats.keys.refused },
		{ "keys_pool_keys", c->stats.keys.pool_keys },
		{ "keys_devices_removed", c->stats.keys.devices_removed },
		{ "store_sst_bytes", e.sst_bytes },
		{ "store_memtable_bytes", e.memtable_bytes },
		{ "store_pending_compaction_bytes", e.pending_compaction_bytes },
		{ "store_write_stopped", e.write_stopped },
		{ "store_delayed_write_rate", e.delayed_write_rate },
		{ "devices_caps_sents", c->caps.devices[CAP_BIT_SENTS] },
		{ "devices_caps_batch", c->caps.devices[CAP_BIT_BATCH] },
		{ "devices_caps_rcpts", c->caps.devices[CAP_BIT_RCPTS] },
		{ "sents_out", c->n.sents_out },
		{ "sents_items", c->n.sents_items },
		{ "sents_delivered", c->n.sents_dl },
		{ "rcpts_out", c->n.rcpts_out },
		{ "rcpts_items", c->n.rcpts_items },
	};
	_Static_assert(sizeof(fixed) / sizeof(fixed[0]) + REFUSAL_NCOUNTED + 1 + PUSHGW_NCOUNTERS <=
	               CORE_STATS_MAX, "CORE_STATS_MAX holds every counter");
	size_t n = sizeof(fixed) / sizeof(fixed[0]);
	memcpy(out, fixed, sizeof(fixed));
	for (size_t i = 0; i <= REFUSAL_NCOUNTED; i++) {
		out[n].name = i < REFUSAL_NCOUNTED ? refused_names[i] : "refused_other";
		out[n++].v = c->n.refused[i];
	}
	for (size_t k = 0; k < PUSHGW_NCOUNTERS; k++) {
		out[n].name = pushgw_stat_names[k];
		out[n++].v = pushgw_sum(&c->stats.pushgw, k);
	}
	return n;
}

void stats_keys(core *c, const uint8_t *payload, size_t len)
{
	static const struct { const char *name; size_t off; } fields[] = {
		{ "requests", offsetof(keys_stats, requests) },
		{ "refused_rate", offsetof(keys_stats, refused_rate) },
		{ "refused", offsetof(keys_stats, refused) },
		{ "pool_keys", offsetof(keys_stats, pool_keys) },
		{ "devices_removed", offsetof(keys_stats, devices_removed) },
	};
	keys_stats ks = c->stats.keys;
	cbr r;
	cbr_item map, key, val;
	if (len == 0 || cbr_map_open(&r, payload, len, &map, NULL))
		return; /* an empty retained clear, or not ours to read */
	uint64_t i = 0;
	while (cbr_map_next(&r, &map, &i, &key)) {
		if (cbr_next(&r, &val) || (val.type != CBR_UINT && cbr_skip(&r, &val)))
			return;
		for (size_t f = 0; val.type == CBR_UINT && f < sizeof(fields) / sizeof(fields[0]); f++)
			if (cbr_eq(&key, fields[f].name))
				*(uint64_t *)(void *)((char *)&ks + fields[f].off) = val.u;
	}
	if (!cbr_map_close(&r, NULL))
		c->stats.keys = ks;
}

void stats_tick(core *c, uint64_t now)
{
	if (!c->cfg.stats_interval_s || now < c->stats.next_ms)
		return;
	c->stats.next_ms = now + (uint64_t)c->cfg.stats_interval_s * 1000u;
	stat_value v[CORE_STATS_MAX];
	size_t n = stats_collect(c, v);
	for (size_t i = 0; i < n; i++) {
		if (c->stats.sent && c->stats.last[i] == v[i].v)
			continue;
		char topic[96], text[24];
		snprintf(topic, sizeof(topic), SYS_PREFIX "%s", v[i].name);
		int len = snprintf(text, sizeof(text), "%llu", (unsigned long long)v[i].v);
		c->io.publish(c->io.ctx, NULL, topic, text, (size_t)len, 0, true);
		c->stats.last[i] = v[i].v;
	}
	c->stats.sent = true;
}
