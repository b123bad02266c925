// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* log.c — the core's one way to log: through core_io, filtered by
 * plugin_opt_log_level before anything is formatted.
 *
 * A leaf that every file calls: it depends on nothing but core_io, so
 * logging never ties two features together.
 */
#include "core_internal.h"

#include <stdio.h>

void core_log(core *c, int level, const char *fmt, ...)
{
	if (level < c->cfg.log_level)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->io.log(c->io.ctx, level, buf);
}
