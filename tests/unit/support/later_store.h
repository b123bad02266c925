// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* later_store.h — a send backend that answers on the next tick, for the
 * unit tests of the send's begin/complete form (docs/CLUSTER.md, "Plan"
 * step 1): it writes at once with the real store_send (seqs, queues and
 * dedup entries are real) but calls the continuation only from its poll,
 * which core_tick runs, as a network backend's completion FIFO would.
 */
#ifndef TEST_SUPPORT_LATER_STORE_H
#define TEST_SUPPORT_LATER_STORE_H

#include <stddef.h>

#include "core.h"

/* Puts the backend in place of store_send_begin in core c (the send path's
 * hook, c->send.be), with no answers waiting. */
void later_store_install(core *c);
/* How many sends wait for their answer. */
size_t later_store_waiting(void);

#endif
