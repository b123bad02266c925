// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* options.c — every plugin_opt_* in one table: name, type, range, default
 * and the setter, so the glue reads options with one loop and an invalid
 * value stops start-up with one line naming the option and what it accepts.
 *
 * docs/OPERATIONS.md repeats this table for operators; tests/integration/
 * test_options.py checks that every name here is documented there and is
 * refused with a bad value. A new option is one row here (and one in the
 * doc), nothing else.
 */
#include "core.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OPT_TRISTATE: true or false, stored as CORE_ON / CORE_OFF; left CORE_AUTO
 * when not given (the core then decides from what the broker offers). */
enum opt_kind { OPT_TEXT, OPT_U32, OPT_U64, OPT_BOOL, OPT_TRISTATE, OPT_CHOICE };

typedef struct option {
	const char *name;
	enum opt_kind kind;
	size_t off;                    /* of the field in core_config */
	uint64_t min, max;             /* OPT_U32 / OPT_U64 */
	const char *const *choices;    /* OPT_CHOICE: NULL-terminated; the index is stored (int) */
} option;

static const char *const foreign_acl_choices[] = { "defer", "allow", NULL };
static const char *const log_level_choices[] = { "debug", "info", "notice", "warning", "error", NULL };

#define F(field) offsetof(core_config, field)

static const option options[] = {
	{ "data_dir", OPT_TEXT, F(data_dir), 0, 0, NULL },
	{ "topic_prefix", OPT_TEXT, F(topic_prefix), 0, 0, NULL },
	{ "max_body", OPT_U32, F(max_body), 64, 16u << 20, NULL },
	{ "foreign_acl", OPT_CHOICE, F(foreign_acl), 0, 0, foreign_acl_choices },
	{ "sync_writes", OPT_BOOL, F(sync_writes), 0, 0, NULL },
	{ "commit_window_us", OPT_U32, F(commit_window_us), 0, 100000, NULL },
	{ "offline_ttl", OPT_U64, F(offline_ttl_s), 1, 10ull * 365 * 24 * 3600, NULL },
	{ "max_queue", OPT_U64, F(max_queue), 0, UINT32_MAX, NULL },
	{ "inflight_window", OPT_U32, F(inflight_window), 1, 100000, NULL },
	{ "replay_window", OPT_U32, F(inflight_window), 1, 100000, NULL }, /* its former name */
	{ "inflight_drain", OPT_U32, F(inflight_drain), 1, 10000000, NULL },
	{ "delivered_gather_ms", OPT_U32, F(delivered_gather_ms), 0, 1000, NULL },
	{ "replay_slice", OPT_U32, F(replay_slice), 1, 4096, NULL },
	{ "replay_batch", OPT_U32, F(replay_batch), 1, 1024, NULL },
	{ "expire_slice", OPT_U32, F(expire_slice), 1, 100000, NULL },
	{ "max_group_size", OPT_U32, F(max_group_size), 2, CORE_GROUP_SIZE_MAX, NULL },
	{ "presence_grace", OPT_U32, F(presence_grace_s), 0, 24 * 3600, NULL },
	{ "presence_retained", OPT_BOOL, F(presence_retained), 0, 0, NULL },
	{ "send_rate", OPT_U32, F(send_rate), 0, 1000000, NULL },
	{ "send_burst", OPT_U32, F(send_burst), 1, 1000000, NULL },
	{ "min_free_mb", OPT_U32, F(min_free_mb), 0, 1u << 20, NULL },
	{ "push_interval", OPT_U32, F(push_interval_s), 1, 24 * 3600, NULL },
	{ "push_retry", OPT_U32, F(push_retry_s), 1, 24 * 3600, NULL },
	{ "stats_interval", OPT_U32, F(stats_interval_s), 0, 24 * 3600, NULL },
	{ "log_level", OPT_CHOICE, F(log_level), 0, 0, log_level_choices },
	{ "delivered_on_puback", OPT_TRISTATE, F(delivered_on_puback), 0, 0, NULL },
	{ "auto_replay", OPT_TRISTATE, F(auto_replay), 0, 0, NULL },
};

#undef F

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "on"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") || !strcmp(s, "off"))
		*out = false;
	else
		return false;
	return true;
}

/* What the option accepts, for the error line. */
static void describe(const option *o, char *buf, size_t len)
{
	switch (o->kind) {
	case OPT_TEXT:
		snprintf(buf, len, "a non-empty text");
		break;
	case OPT_U32:
	case OPT_U64:
		snprintf(buf, len, "an integer from %llu to %llu", (unsigned long long)o->min,
		         (unsigned long long)o->max);
		break;
	case OPT_BOOL:
	case OPT_TRISTATE:
		snprintf(buf, len, "true or false");
		break;
	case OPT_CHOICE: {
		size_t n = 0;
		buf[0] = '\0';
		for (size_t i = 0; o->choices[i] && n < len; i++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "one of ", o->choices[i]);
		break;
	}
	}
}

bool core_config_set(core_config *cfg, const char *key, const char *value, char *err,
                     size_t errlen)
{
	const option *o = NULL;
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (!strcmp(options[i].name, key))
			o = &options[i];
	if (!o) {
		snprintf(err, errlen, "unknown option plugin_opt_%s", key);
		return false;
	}
	char *field = (char *)cfg + o->off;
	uint64_t u = 0;
	bool ok = value != NULL;
	if (ok) {
		switch (o->kind) {
		case OPT_TEXT:
			ok = *value != '\0';
			*(const char **)(void *)field = value;
			break;
		case OPT_U32:
			ok = parse_u64(value, o->min, o->max, &u);
			if (ok)
				*(uint32_t *)(void *)field = (uint32_t)u;
			break;
		case OPT_U64:
			ok = parse_u64(value, o->min, o->max, &u);
			if (ok)
				*(uint64_t *)(void *)field = u;
			break;
		case OPT_BOOL:
			ok = parse_bool(value, (bool *)(void *)field);
			break;
		case OPT_TRISTATE: {
			bool on = false;
			ok = parse_bool(value, &on);
			if (ok)
				*(enum core_tristate *)(void *)field = on ? CORE_ON : CORE_OFF;
			break;
		}
		case OPT_CHOICE:
			ok = false;
			for (int i = 0; o->choices[i]; i++)
				if (!strcmp(o->choices[i], value)) {
					*(int *)(void *)field = i;
					ok = true;
				}
			break;
		}
	}
	if (!ok) {
		char what[160];
		describe(o, what, sizeof(what));
		snprintf(err, errlen, "invalid value '%s' for plugin_opt_%s: expected %s",
		         value ? value : "", key, what);
	}
	return ok;
}
