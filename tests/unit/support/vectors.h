/* SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
 * SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause */
/* The shared test vectors (the JSON files of tests/vectors/) as cJSON trees, for the
 * unit tests that check a client's crypto against them. */
#ifndef CHAT_TEST_VECTORS_H
#define CHAT_TEST_VECTORS_H

#include <cjson/cJSON.h>

/* tests/vectors/<file> parsed; fails the running Check test if it cannot be
 * read or parsed. The caller frees it with cJSON_Delete. */
cJSON *vectors_load(const char *file);

#endif
