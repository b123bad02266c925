/* SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
 * SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause */
#include "vectors.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

cJSON *vectors_load(const char *file)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/vectors/%s", CHAT_SOURCE_DIR, file);
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	ck_assert_int_ge(n, 0);
	ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
	char *buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	cJSON *v = cJSON_Parse(buf);
	free(buf);
	ck_assert_msg(v != NULL, "%s is not JSON", path);
	return v;
}
