// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_admin — arbitrary $CONTROL/chat/v1 requests from the admin through
 * core_control (accounts, listings, rotations, groups, stats). A command may remove
 * the cast's own devices: the tick in fz_done() then disconnects them, as
 * the broker would. */
#include "fuzz_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	core *c = fz_core();
	core_control(c, "fuzz-admin", CORE_ADMIN_USERNAME, data, size);
	fz_done();
	return 0;
}
