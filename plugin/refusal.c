// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* refusal.c — the one shape of a refused request: a wire code and a reason.
 *
 * Every feature that can refuse (sends, receipts, ctl requests, groups,
 * push targets, admin commands, backups) says why in a `refusal`, and the
 * three ways a refusal leaves the server (an `error` event, a ctl reply, an
 * admin reply) read it from there. The codes are an enum, so a refusal is
 * counted by index (stats.c) and its wire name comes from one table.
 */
#include "core_internal.h"

#include <stdio.h>

#define REFUSAL_NAME(e, name) [REFUSE_##e] = name,
static const char *const code_names[REFUSAL_NCODES] = { REFUSAL_CODES(REFUSAL_NAME) };
#undef REFUSAL_NAME

bool refusal_vset(refusal *r, enum refusal_code code, const char *fmt, va_list ap)
{
	r->code = code;
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	return false;
}

bool refusal_set(refusal *r, enum refusal_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	refusal_vset(r, code, fmt, ap);
	va_end(ap);
	return false;
}

const char *refusal_code_name(enum refusal_code code)
{
	return code_names[code];
}
