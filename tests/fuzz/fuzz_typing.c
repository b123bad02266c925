// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_typing — arbitrary payloads on chat/typing/dm:alice:bob from
 * alice/phone (relayed at QoS 0 to bob's online devices). */
#include "fuzz_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_core();
	fz_publish_as(FZ_ALICE_PHONE, "chat/typing/dm:alice:bob", data, size);
	fz_done();
	return 0;
}
