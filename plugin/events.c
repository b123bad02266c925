/* events.c — publishing inbox events to devices (contract §4).
 *
 * Events go to one client id on its inbox topic at QoS 1, through the
 * broker's plugin publish, which reaches a connected client whether or not
 * it has subscribed. Offline devices are skipped here: what they must not
 * miss is in their store queue, the source of truth for offline delivery.
 */
#include "core_internal.h"

#include <stdio.h>
#include <string.h>

void ev_publish(core *c, const device *to, const cbw *w)
{
	if (!to->conn || cbw_status(w) != 0)
		return;
	char topic[CORE_PREFIX_MAX + sizeof("/inbox/") + CHAT_ADDR_MAX];
	snprintf(topic, sizeof(topic), "%s/inbox/%s", c->prefix, to->addr);
	if (c->io.publish(c->io.ctx, to->addr, topic, w->buf, w->len, 1, false) == 0)
		c->n.events_out++;
}

void ev_cid(cbw *w, const store_cid *cid)
{
	if (cid->is_uint)
		cbw_uint(w, cid->u);
	else
		cbw_bytes(w, cid->bytes, cid->len);
}

void ev_error(core *c, const device *to, const char *code, const char *msg, const uint8_t *cid_raw,
              size_t cid_len)
{
	cbw *w = &c->w;
	cbw_reset(w);
	cbw_map(w, cid_raw ? 4 : 3);
	cbw_text(w, "k");
	cbw_text(w, "error");
	cbw_text(w, "code");
	cbw_text(w, code);
	cbw_text(w, "msg");
	cbw_text(w, msg);
	if (cid_raw) {
		cbw_text(w, "cid");
		cbw_raw(w, cid_raw, cid_len);
	}
	c->n.errors_out++;
	ev_publish(c, to, w);
}
