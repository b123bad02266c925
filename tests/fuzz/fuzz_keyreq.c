// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* fuzz_keyreq — the key server's request codec and rules: arbitrary
 * payloads through ks_request as alice/phone, against a key store on a temp
 * dir where bob's two devices have uploaded keys (so bundles pop real
 * one-time keys, run out, and hit the rate limit). The clock moves a minute
 * per request. Every response must be one well-formed CBOR map and every
 * status update must name a valid device; the store is recreated every
 * REOPEN_INPUTS inputs (rate records are never deleted, so it grows).
 */
#include "cbor_io.h"
#include "err.h"
#include "keystore.h"

#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REOPEN_INPUTS 20000

static struct {
	ks *k;
	char base[1024], dir[1100];
	unsigned generation;
	uint64_t inputs, now;
	ks_reply reply;
} S;

static void die(const char *why, const char *detail)
{
	fprintf(stderr, "fuzz_keyreq: %s: %s\n", why, detail ? detail : "");
	abort();
}

static uint64_t clock_ms(void *ctx)
{
	(void)ctx;
	return S.now += 60000;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void close_ks(void)
{
	if (!S.k)
		return;
	ks_close(S.k);
	S.k = NULL;
	nftw(S.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void at_exit(void)
{
	close_ks();
	ks_reply_free(&S.reply);
	rmdir(S.base);
}

/* bob/<dev> uploads a signed pre-key and 20 one-time keys. */
static void upload(const char *dev, uint8_t seed_byte)
{
	uint8_t seed[crypto_sign_SEEDBYTES], sk[crypto_sign_SECRETKEYBYTES], ik[KS_KEY_LEN];
	memset(seed, seed_byte, sizeof(seed));
	crypto_sign_seed_keypair(ik, sk, seed);
	ks_spk spk = { .id = 1 };
	memset(spk.key, seed_byte ^ 0x55, KS_KEY_LEN);
	crypto_sign_detached(spk.sig, NULL, spk.key, KS_KEY_LEN, sk);
	ks_opk opks[20];
	for (size_t i = 0; i < 20; i++) {
		opks[i].id = i + 1;
		memset(opks[i].key, (int)i, KS_KEY_LEN);
	}
	uint32_t count;
	if (ks_upload(S.k, "bob", 3, dev, strlen(dev), ik, &spk, opks, 20, &count) != CHAT_OK)
		die("the setup upload failed", ks_errmsg(S.k));
}

static void open_ks(void)
{
	if (!S.base[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(S.base, sizeof(S.base), "%s/fuzz-keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(S.base))
			die("mkdtemp failed", S.base);
		ks_reply_init(&S.reply);
		S.now = 1700000000000ULL;
	}
	snprintf(S.dir, sizeof(S.dir), "%s/%u", S.base, S.generation++);
	ks_opts o;
	ks_opts_default(&o);
	o.dir = S.dir;
	o.now_ms = clock_ms;
	char err[512] = "";
	if (ks_open(&S.k, &o, err, sizeof(err)) != CHAT_OK)
		die("ks_open failed", err);
	/* Registered after RocksDB's own exit-time destructors, so it runs
	 * before them: closing a store after them crashes. */
	static bool registered;
	if (!registered && (registered = true))
		atexit(at_exit);
	upload("phone", 1);
	upload("tablet", 2);
	S.inputs = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!S.k)
		open_ks();
	int rc = ks_request(S.k, "alice", 5, "phone", 5, data, size, &S.reply);
	if (rc != CHAT_OK && rc != CHAT_ENOMEM)
		die("ks_request failed", chat_strerror(rc));
	if (rc == CHAT_OK) {
		cbr r;
		cbr_item map;
		cbr_init(&r, S.reply.resp.buf, S.reply.resp.len);
		if (cbr_next(&r, &map) || map.type != CBR_MAP || cbr_skip(&r, &map) || !cbr_done(&r))
			die("the response is not one CBOR map", r.err_msg);
	}
	for (size_t i = 0; i < S.reply.nstatus; i++) {
		const ks_status *st = &S.reply.status[i];
		if (!chat_valid_user(st->user, strlen(st->user)) ||
		    !chat_valid_device(st->device, strlen(st->device)))
			die("a status update for an invalid device", st->user);
	}
	if (++S.inputs >= REOPEN_INPUTS) {
		close_ks();
		open_ks();
	}
	return 0;
}
