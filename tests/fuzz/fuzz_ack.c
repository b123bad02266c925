// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_ack — what a patched broker reports back: the payload of an inbox
 * publish that bob/phone acknowledged (PUBACK), read by core_acked (a msg
 * or group event, or a replay batch of them, is bob's delivered receipt
 * for each) and by the flow window (a batch frees one place per event).
 * The broker hands back what the plugin published, so this is the
 * plugin's own encoding — a batch's nested events included — read back
 * with no trust in it. Then a tick, which applies the gathered PUBACKs.
 */
#include "fuzz_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	core *c = fz_core();
	if (!c->bev.ack_delivers) /* a fresh core: the patched broker's events */
		core_broker_events(c, CORE_BEV_CONNECT | CORE_BEV_SUBSCRIBE | CORE_BEV_ACKED);
	const char *addr = fz_addr(FZ_BOB_PHONE);
	core_acked(c, fz_conn(FZ_BOB_PHONE), addr, "chat/inbox/bob/phone", data, size);
	core_on_delivered_ack_payload(c, addr, "chat/inbox/bob/phone", data, size);
	fz_advance(c->cfg.delivered_gather_ms);
	fz_done();
	return 0;
}
