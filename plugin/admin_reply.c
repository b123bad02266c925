// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* admin_reply.c — the one reply of an admin command on
 * $CONTROL/chat/v1/response (docs/PROTOCOL.md §5), like dynsec's
 * control reply: ok:true with the command's result pairs, or ok:false with
 * a code and a reason, echoing the request's cmd and rid.
 *
 * Its own file because two features answer admins: admin.c at once, and
 * backup.c on a later tick (a ticket says where the answer goes); both
 * depend on this leaf, not on each other.
 */
#include "core_internal.h"

#include <sodium.h>

void admin_send(core *c, const admin_ticket *who, const refusal *why, const cbw *res,
                size_t npairs)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, 1 + who->has_cmd + who->has_rid + (why ? 2 : npairs));
	if (who->has_cmd) {
		cbw_text(w, "cmd");
		cbw_textn(w, who->cmd, who->cmdlen);
	}
	if (who->has_rid) {
		cbw_text(w, "rid");
		cbw_uint(w, who->rid);
	}
	cbw_text(w, "ok");
	cbw_bool(w, why == NULL);
	if (why) {
		cbw_text(w, "code");
		cbw_text(w, refusal_code_name(why->code));
		cbw_text(w, "msg");
		cbw_text(w, why->msg);
	} else if (npairs) {
		cbw_raw(w, res->buf, res->len);
	}
	if (cbw_status(w) == 0)
		c->io.publish(c->io.ctx, who->clientid, CORE_CONTROL_RESPONSE, w->buf, w->len, 1, false);
	sodium_memzero(w->buf, w->len);
}
