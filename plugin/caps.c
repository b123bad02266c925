// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* caps.c — what a device declared it understands (protocol v2,
 * docs/PROTOCOL.md "Capabilities").
 *
 * A device lists capability names, on chat/ctl {op: "caps", caps: [...]}
 * or in its chat/sync {caps: [...]}; the server then uses the
 * packet-saving forms (gather.c: `sents`, `rcpts`; the replay: `batch`)
 * for it, and the v1 forms for every device that did not ask. Unknown
 * names are ignored (a newer client on an older server). A declaration
 * replaces the set; an empty list returns to v1.
 *
 * The set is a bit mask in struct device, one bit per name of DEVICE_CAPS
 * (core_internal.h), and is kept in the store per device (store_caps_set),
 * so it survives reconnects and restarts: the replay that starts by itself
 * when the device subscribes uses what the device declared before. It goes
 * with the device.
 */
#include "core_internal.h"
#include "err.h"

#include <string.h>

#define CAP_NAME(e, name) name,
static const char *const cap_names[CAP_NBITS] = { DEVICE_CAPS(CAP_NAME) };
#undef CAP_NAME

const char *caps_name(enum cap_bit bit)
{
	return bit < CAP_NBITS ? cap_names[bit] : "?";
}

bool caps_parse(const uint8_t *raw, size_t len, uint32_t *out, refusal *why)
{
	static const char *const bad = "caps must be an array of at most 64 capability names (text)";
	cbr r;
	cbr_item arr, it;
	uint64_t i = 0, n = 0;
	uint32_t caps = 0;
	cbr_init(&r, raw, len);
	if (cbr_next(&r, &arr) || arr.type != CBR_ARRAY)
		return refusal_set(why, REFUSE_FIELD, "%s", bad);
	while (cbr_array_next(&r, &arr, &i)) {
		if (cbr_next(&r, &it) || it.type != CBR_TEXT || ++n > CAPS_MAX_NAMES)
			return refusal_set(why, REFUSE_FIELD, "%s", bad);
		for (unsigned b = 0; b < CAP_NBITS; b++)
			if (cbr_eq(&it, cap_names[b]))
				caps |= 1u << b;
	}
	if (r.err_msg)
		return refusal_set(why, REFUSE_FIELD, "%s", bad);
	*out = caps;
	return true;
}

static void count(core *c, uint32_t caps, int delta)
{
	for (unsigned b = 0; b < CAP_NBITS; b++)
		if (caps & (1u << b))
			c->caps.devices[b] += (uint64_t)(int64_t)delta;
}

bool caps_set(core *c, device *dev, uint32_t caps, refusal *why)
{
	caps &= CAP_ALL;
	if (caps == dev->caps)
		return true;
	gather_flush_dev(c, dev); /* what it gathered goes out in the form it was gathered in */
	char user[CHAT_USER_MAX + 1];
	size_t ul = strlen(dev->user->name);
	memcpy(user, dev->user->name, ul + 1);
	if (store_caps_set(c->st, user, dev->id, caps) != CHAT_OK) {
		core_log(c, CORE_LOG_ERR, "storing the capabilities of %s failed: %s", dev->addr,
		         store_errmsg(c->st));
		return refusal_set(why, REFUSE_STORE, "the capabilities could not be stored");
	}
	count(c, dev->caps, -1);
	count(c, caps, +1);
	dev->caps = caps;
	return true;
}

void caps_reply_pairs(core *c, cbw *w, const device *dev)
{
	size_t n = 0;
	for (unsigned b = 0; b < CAP_NBITS; b++)
		n += (dev->caps >> b) & 1u;
	cbw_text(w, "caps");
	cbw_array(w, n);
	for (unsigned b = 0; b < CAP_NBITS; b++)
		if (dev->caps & (1u << b))
			cbw_text(w, cap_names[b]);
	cbw_text(w, "server");
	cbw_map(w, 4);
	cbw_text(w, "v"); cbw_uint(w, 2);
	/* A v2 client sends no delivered receipts when its PUBACK is one. */
	cbw_text(w, "puback_delivered"); cbw_bool(w, c->bev.ack_delivers);
	cbw_text(w, "gather_ms"); cbw_uint(w, c->cfg.delivered_gather_ms);
	/* Inbox events per replayed publish to a `batch` device (sync.c). */
	cbw_text(w, "replay_batch"); cbw_uint(w, c->cfg.replay_batch);
}

bool caps_sync(core *c, device *dev, const uint8_t *payload, size_t len, refusal *why)
{
	cbr_fields f;
	const uint8_t *raw = NULL;
	size_t rawlen = 0;
	if (len == 0)
		return true;
	cbr_fields_open(&f, payload, len, NULL);
	while (cbr_fields_next(&f)) {
		if (cbr_eq(&f.key, "caps")) {
			if (cbr_skip(&f.r, &f.val))
				break;
			raw = f.at;
			rawlen = (size_t)(f.r.p - f.at);
		} else {
			cbr_fields_skip(&f);
		}
	}
	/* A payload that is no map was never looked at (v1: the request is
	 * the topic); a broken caps field is the only refusal. */
	if (!raw)
		return true;
	if (cbr_fields_close(&f, NULL))
		return refusal_set(why, REFUSE_CBOR, "%s", cbr_fields_close(&f, NULL));
	uint32_t caps;
	return caps_parse(raw, rawlen, &caps, why) && caps_set(c, dev, caps, why);
}

static int load_one(void *arg, const char *user, const char *dev, uint32_t caps)
{
	core *c = arg;
	char addr[CHAT_ADDR_MAX + 1];
	size_t ul = strlen(user), dl = strlen(dev);
	if (ul + 1 + dl > CHAT_ADDR_MAX)
		return CHAT_OK;
	memcpy(addr, user, ul);
	addr[ul] = '/';
	memcpy(addr + ul + 1, dev, dl + 1);
	device *d = dir_device(&c->dir, addr, ul + 1 + dl);
	if (!d)
		return CHAT_OK; /* a record without its device: never used */
	d->caps = caps & CAP_ALL;
	count(c, d->caps, +1);
	return CHAT_OK;
}

int caps_load(core *c)
{
	return store_caps_each(c->st, load_one, c);
}

void caps_forget(core *c, device *dev)
{
	count(c, dev->caps, -1);
	dev->caps = 0;
}
