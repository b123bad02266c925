// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_jswatch — what cluster mode's KV caches take from JetStream
 * (store/js_cache.c), by the first byte:
 *   0 a chat_groups record                   jstore_group_decode
 *   1 a script of changes to a cache          js_kv_apply, js_kv_find, js_kv_each_owner
 * Checks: a decoded record encodes back to exactly the input (the format is
 * canonical) and holds valid, distinct members; a cache never serves a
 * value other than that of the newest change it applied to the key, never
 * applies a change older than one it applied, never ignores a put newer
 * than both the key's and the watcher's position, and its count and owner
 * listing match a model of the 8 keys kept beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ids.h"
#include "js_cache.h"

static void fail(const char *why)
{
	fprintf(stderr, "fuzz_jswatch: %s\n", why);
	abort();
}

static int count_each(void *arg, const char *rest, size_t len)
{
	(void)rest;
	(void)len;
	(*(size_t *)arg)++;
	return CHAT_OK;
}

/* Each step: 1 byte op (bit 0 delete, bit 1 from the watcher, bits 2-4 the
 * key), 1 byte revision, 1 byte value length (up to 3 bytes follow). */
static void script(const uint8_t *in, size_t n)
{
	static const char *keys[8] = { "a.b", "a.c", "b.a", "a", "c.a.b", "ab.c", "a.bb", "x" };
	struct {
		uint64_t rev;   /* the highest revision of a change applied to the key */
		bool live;
		uint8_t v[3];
		size_t len;
	} model[8];
	memset(model, 0, sizeof(model));
	js_kv_cache c;
	if (js_kv_init(&c, true, false) != CHAT_OK)
		return;
	for (size_t o = 0; o + 3 <= n;) {
		uint8_t op = in[o], rev = in[o + 1], vl = in[o + 2] % 4;
		o += 3;
		if (o + vl > n)
			break;
		int k = (op >> 2) & 7;
		bool del = op & 1, watcher = op & 2;
		uint64_t pos_before = c.pos;
		int r = js_kv_apply(&c, keys[k], strlen(keys[k]), rev, del, in + o, vl, watcher);
		if (r < 0)
			break;
		if (r == 1 && rev <= model[k].rev && !(watcher && del && rev == model[k].rev))
			fail("an older change applied");
		if (r == 0 && rev > model[k].rev && rev > pos_before && !del)
			fail("a newer put ignored");
		if (r == 1) {
			model[k].rev = rev > model[k].rev ? rev : model[k].rev;
			model[k].live = !del;
			memcpy(model[k].v, in + o, vl);
			model[k].len = del ? 0 : vl;
		}
		o += vl;
		const js_kv_entry *e = js_kv_find(&c, keys[k], strlen(keys[k]));
		if (!!e != model[k].live)
			fail("presence differs from the newest change");
		if (e && (e->len != model[k].len || memcmp(e->val, model[k].v, e->len)))
			fail("a value other than the newest");
	}
	size_t live = 0, own = 0, want = 0;
	for (int k = 0; k < 8; k++)
		live += model[k].live;
	if (js_kv_count(&c) != live)
		fail("count");
	js_kv_each_owner(&c, "a", 1, count_each, &own);
	want = model[0].live + model[1].live + model[6].live; /* a.b a.c a.bb; not "a", "ab.c" */
	if (own != want)
		fail("owner listing");
	js_kv_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	if (data[0] == 0) {
		jstore_group g;
		if (jstore_group_decode(in, n, &g) != CHAT_OK)
			return 0;
		if (g.name_len > STORE_GROUP_NAME_MAX || strlen(g.name) != g.name_len)
			fail("name");
		for (uint32_t i = 0; i < g.n; i++)
			if (!chat_valid_user(g.members[i].user, strlen(g.members[i].user)))
				fail("member id");
		uint8_t *out = malloc(n ? n : 1);
		if (!out || jstore_group_size(&g) != n || jstore_group_encode(out, n, &g) != n ||
		    memcmp(out, in, n))
			fail("not canonical");
		free(out);
		jstore_group_free(&g);
	} else if (data[0] == 1) {
		script(in, n);
	}
	return 0;
}
