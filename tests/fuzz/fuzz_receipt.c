// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_receipt — arbitrary payloads on chat/receipt from alice/phone, whose
 * conversation dm:alice:bob holds messages both ways (some queued for her,
 * some sent by her, so both the ack and the state paths run). */
#include "fuzz_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_core();
	fz_publish_as(FZ_ALICE_PHONE, "chat/receipt", data, size);
	fz_done();
	return 0;
}
