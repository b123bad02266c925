// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_ctl — arbitrary payloads on chat/ctl (a device's own requests:
 * privacy settings, device lists) from alice/phone. */
#include "fuzz_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_core();
	fz_publish_as(FZ_ALICE_PHONE, "chat/ctl", data, size);
	fz_done();
	return 0;
}
