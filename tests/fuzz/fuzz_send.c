// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_send — a device's send: arbitrary payloads on chat/dm/bob from
 * alice/phone (bob has a device online and one offline, alice another one
 * online), through core_message, the store and the events it publishes. */
#include "fuzz_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_core();
	fz_publish_as(FZ_ALICE_PHONE, "chat/dm/bob", data, size);
	fz_done();
	return 0;
}
