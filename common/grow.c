// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
#include "grow.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t chat_grow_cap(size_t cap, size_t need, size_t elem, size_t first)
{
	if (need <= cap)
		return cap;
	size_t nc = cap ? cap : first ? first : 1;
	while (nc < need) {
		if (nc > SIZE_MAX / 2)
			return 0;
		nc *= 2;
	}
	return nc > SIZE_MAX / elem ? 0 : nc;
}

int chat_grow(void *ptrp, size_t *cap, size_t need, size_t elem, size_t first)
{
	size_t nc = chat_grow_cap(*cap, need, elem, first);
	if (nc == *cap)
		return CHAT_OK;
	if (nc == 0)
		return CHAT_ENOMEM;
	/* memcpy, not a cast to void **: the pointer may be of any object type. */
	void *p;
	memcpy(&p, ptrp, sizeof(p));
	p = realloc(p, nc * elem);
	if (!p)
		return CHAT_ENOMEM;
	memcpy(ptrp, &p, sizeof(p));
	*cap = nc;
	return CHAT_OK;
}
