// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* e2ee.c — X3DH, Double Ratchet and sender keys on libsodium (see e2ee.h;
 * the wire format and the labels are specified in docs/E2EE.md).
 *
 * Built from libsodium primitives only: HMAC-SHA256 (crypto_auth_hmacsha256)
 * for HKDF and the chain KDF, X25519, Ed25519 (identity keys are Ed25519 and
 * are converted to X25519 for the DH computations, as the key server stores
 * them), and XChaCha20-Poly1305-IETF. Each message key is used once; its
 * AEAD key and nonce are derived from it, so no nonce is ever reused and
 * the output is deterministic given the injected keys. Decryption works on
 * a copy of the state and commits it only when the tag verifies.
 */
#include "e2ee.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int e2e_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void e2e_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

void e2e_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

uint32_t e2e_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- primitives ---- */

void e2e_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
              const uint8_t *ikm, size_t ikm_len, const char *info)
{
	static const uint8_t zero[E2E_KEY];
	uint8_t prk[E2E_KEY], t[E2E_KEY];
	crypto_auth_hmacsha256_state st;

	if (!salt) {
		salt = zero;
		salt_len = sizeof zero;
	}
	crypto_auth_hmacsha256_init(&st, salt, salt_len);
	crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
	crypto_auth_hmacsha256_final(&st, prk);

	size_t done = 0, tlen = 0;
	for (uint8_t i = 1; done < out_len; i++) {
		crypto_auth_hmacsha256_init(&st, prk, sizeof prk);
		crypto_auth_hmacsha256_update(&st, t, tlen);
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)info, strlen(info));
		crypto_auth_hmacsha256_update(&st, &i, 1);
		crypto_auth_hmacsha256_final(&st, t);
		tlen = sizeof t;
		size_t n = out_len - done < tlen ? out_len - done : tlen;
		memcpy(out + done, t, n);
		done += n;
	}
	sodium_memzero(prk, sizeof prk);
	sodium_memzero(t, sizeof t);
	sodium_memzero(&st, sizeof st);
}

void e2e_kdf_rk(const uint8_t rk[E2E_KEY], const uint8_t dh_out[E2E_KEY],
                uint8_t rk_out[E2E_KEY], uint8_t ck_out[E2E_KEY])
{
	uint8_t okm[2 * E2E_KEY];

	e2e_hkdf(okm, sizeof okm, rk, E2E_KEY, dh_out, E2E_KEY, E2E_INFO_RATCHET);
	memcpy(rk_out, okm, E2E_KEY);
	memcpy(ck_out, okm + E2E_KEY, E2E_KEY);
	sodium_memzero(okm, sizeof okm);
}

void e2e_kdf_ck(const uint8_t ck[E2E_KEY], uint8_t ck_out[E2E_KEY], uint8_t mk_out[E2E_KEY])
{
	static const uint8_t one = 0x01, two = 0x02;
	uint8_t next[E2E_KEY];

	crypto_auth_hmacsha256(mk_out, &one, 1, ck);
	crypto_auth_hmacsha256(next, &two, 1, ck);
	memcpy(ck_out, next, E2E_KEY);   /* ck_out may alias ck */
	sodium_memzero(next, sizeof next);
}

void e2e_message_keys(const uint8_t mk[E2E_KEY], uint8_t key[E2E_KEY], uint8_t nonce[E2E_NONCE])
{
	uint8_t okm[E2E_KEY + E2E_NONCE];

	e2e_hkdf(okm, sizeof okm, NULL, 0, mk, E2E_KEY, E2E_INFO_MESSAGE);
	memcpy(key, okm, E2E_KEY);
	memcpy(nonce, okm + E2E_KEY, E2E_NONCE);
	sodium_memzero(okm, sizeof okm);
}

void e2e_seal(uint8_t *out, const uint8_t *pt, size_t pt_len, const uint8_t *ad, size_t ad_len,
              const uint8_t mk[E2E_KEY])
{
	uint8_t key[E2E_KEY], nonce[E2E_NONCE];

	e2e_message_keys(mk, key, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, pt, pt_len, ad, ad_len, NULL,
	                                           nonce, key);
	sodium_memzero(key, sizeof key);
}

int e2e_open(uint8_t *out, const uint8_t *ct, size_t ct_len, const uint8_t *ad, size_t ad_len,
             const uint8_t mk[E2E_KEY])
{
	uint8_t key[E2E_KEY], nonce[E2E_NONCE];

	if (ct_len < E2E_TAG)
		return -1;
	e2e_message_keys(mk, key, nonce);
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, ct_len, ad, ad_len,
	                                                    nonce, key);
	sodium_memzero(key, sizeof key);
	return rc == 0 ? 0 : -1;
}

void e2e_x25519_keypair(uint8_t pk[E2E_KEY], uint8_t sk[E2E_KEY], const uint8_t *inject_sk)
{
	if (inject_sk)
		memcpy(sk, inject_sk, E2E_KEY);
	else
		randombytes_buf(sk, E2E_KEY);
	crypto_scalarmult_base(pk, sk);
}

void e2e_ed25519_keypair(uint8_t pk[E2E_KEY], uint8_t sk[E2E_EDSK], const uint8_t *seed)
{
	if (seed)
		crypto_sign_seed_keypair(pk, sk, seed);
	else
		crypto_sign_keypair(pk, sk);
}

void e2e_sign(uint8_t sig[E2E_SIG], const uint8_t *m, size_t len, const uint8_t sk[E2E_EDSK])
{
	crypto_sign_detached(sig, NULL, m, len, sk);
}

/* ---- X3DH ---- */

/* SK = HKDF(salt 0^32, F || DH1 || DH2 || DH3 [|| DH4], info X3DH), F = 0xFF^32. */
static void x3dh_kdf(uint8_t sk[E2E_KEY], const uint8_t *dhs, size_t n_dh)
{
	uint8_t ikm[5 * E2E_KEY];

	memset(ikm, 0xFF, E2E_KEY);
	memcpy(ikm + E2E_KEY, dhs, n_dh * E2E_KEY);
	e2e_hkdf(sk, E2E_KEY, NULL, 0, ikm, (n_dh + 1) * E2E_KEY, E2E_INFO_X3DH);
	sodium_memzero(ikm, sizeof ikm);
}

static void session_clear(e2e_session *s)
{
	sodium_memzero(s, sizeof *s);
}

int e2e_x3dh_initiate(e2e_session *s, const uint8_t my_ik_pk[E2E_KEY],
                      const uint8_t my_ik_sk[E2E_EDSK], const e2e_bundle *b,
                      const uint8_t *inject_ek, const uint8_t *inject_ratchet,
                      uint8_t *sk_out)
{
	uint8_t my_x[E2E_KEY], their_x[E2E_KEY], ek_sk[E2E_KEY], dh[4 * E2E_KEY], sk[E2E_KEY];
	uint8_t dh_out[E2E_KEY];
	int rc = -1;

	session_clear(s);
	if (crypto_sign_verify_detached(b->spk_sig, b->spk, E2E_KEY, b->ik) != 0 ||
	    crypto_sign_ed25519_pk_to_curve25519(their_x, b->ik) != 0)
		return -1;
	crypto_sign_ed25519_sk_to_curve25519(my_x, my_ik_sk);
	e2e_x25519_keypair(s->ek_pk, ek_sk, inject_ek);
	size_t n_dh = b->opk_id ? 4 : 3;
	if (crypto_scalarmult(dh, my_x, b->spk) != 0 ||
	    crypto_scalarmult(dh + E2E_KEY, ek_sk, their_x) != 0 ||
	    crypto_scalarmult(dh + 2 * E2E_KEY, ek_sk, b->spk) != 0 ||
	    (b->opk_id && crypto_scalarmult(dh + 3 * E2E_KEY, ek_sk, b->opk) != 0))
		goto out;
	x3dh_kdf(sk, dh, n_dh);

	memcpy(s->ad, my_ik_pk, E2E_KEY);
	memcpy(s->ad + E2E_KEY, b->ik, E2E_KEY);
	memcpy(s->remote_ik, b->ik, E2E_KEY);
	memcpy(s->dhr, b->spk, E2E_KEY);
	e2e_x25519_keypair(s->dhs_pk, s->dhs_sk, inject_ratchet);
	if (crypto_scalarmult(dh_out, s->dhs_sk, s->dhr) != 0)
		goto out;
	e2e_kdf_rk(sk, dh_out, s->rk, s->cks);
	s->has_cks = true;
	s->prekey_pending = true;
	s->spk_id = b->spk_id;
	s->opk_id = b->opk_id;
	if (sk_out)
		memcpy(sk_out, sk, E2E_KEY);
	rc = 0;
out:
	if (rc != 0)
		session_clear(s);
	sodium_memzero(my_x, sizeof my_x);
	sodium_memzero(ek_sk, sizeof ek_sk);
	sodium_memzero(dh, sizeof dh);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(dh_out, sizeof dh_out);
	return rc;
}

int e2e_x3dh_respond(e2e_session *s, const uint8_t my_ik_pk[E2E_KEY],
                     const uint8_t my_ik_sk[E2E_EDSK], const uint8_t spk_pk[E2E_KEY],
                     const uint8_t spk_sk[E2E_KEY], const uint8_t *opk_sk,
                     const e2e_prekey *pre, uint8_t *sk_out)
{
	uint8_t my_x[E2E_KEY], their_x[E2E_KEY], dh[4 * E2E_KEY];
	int rc = -1;

	session_clear(s);
	if ((pre->opk_id != 0) != (opk_sk != NULL) ||
	    crypto_sign_ed25519_pk_to_curve25519(their_x, pre->ik) != 0)
		return -1;
	crypto_sign_ed25519_sk_to_curve25519(my_x, my_ik_sk);
	size_t n_dh = opk_sk ? 4 : 3;
	if (crypto_scalarmult(dh, spk_sk, their_x) != 0 ||
	    crypto_scalarmult(dh + E2E_KEY, my_x, pre->ek) != 0 ||
	    crypto_scalarmult(dh + 2 * E2E_KEY, spk_sk, pre->ek) != 0 ||
	    (opk_sk && crypto_scalarmult(dh + 3 * E2E_KEY, opk_sk, pre->ek) != 0))
		goto out;
	x3dh_kdf(s->rk, dh, n_dh);
	if (sk_out)
		memcpy(sk_out, s->rk, E2E_KEY);
	memcpy(s->ad, pre->ik, E2E_KEY);
	memcpy(s->ad + E2E_KEY, my_ik_pk, E2E_KEY);
	memcpy(s->remote_ik, pre->ik, E2E_KEY);
	memcpy(s->dhs_pk, spk_pk, E2E_KEY);
	memcpy(s->dhs_sk, spk_sk, E2E_KEY);
	memcpy(s->ek_pk, pre->ek, E2E_KEY);
	s->spk_id = pre->spk_id;
	s->opk_id = pre->opk_id;
	rc = 0;
out:
	if (rc != 0)
		session_clear(s);
	sodium_memzero(my_x, sizeof my_x);
	sodium_memzero(dh, sizeof dh);
	return rc;
}

/* ---- skipped message keys ---- */

static void skipped_add(e2e_skipped *tab, uint32_t *count, const uint8_t *dh, uint32_t n,
                        const uint8_t mk[E2E_KEY])
{
	if (*count == E2E_SKIPPED_CAP) {   /* forget the oldest */
		sodium_memzero(&tab[0], sizeof tab[0]);
		memmove(tab, tab + 1, (E2E_SKIPPED_CAP - 1) * sizeof tab[0]);
		(*count)--;
	}
	e2e_skipped *e = &tab[(*count)++];
	if (dh)
		memcpy(e->dh, dh, E2E_KEY);
	else
		memset(e->dh, 0, E2E_KEY);
	e->n = n;
	memcpy(e->mk, mk, E2E_KEY);
}

/* Takes the key for (dh, n) out of the table: true if it was there. */
static bool skipped_take(e2e_skipped *tab, uint32_t *count, const uint8_t *dh, uint32_t n,
                         uint8_t mk[E2E_KEY])
{
	for (uint32_t i = 0; i < *count; i++) {
		if (tab[i].n != n || (dh && sodium_memcmp(tab[i].dh, dh, E2E_KEY) != 0))
			continue;
		memcpy(mk, tab[i].mk, E2E_KEY);
		sodium_memzero(&tab[i], sizeof tab[i]);
		memmove(tab + i, tab + i + 1, (*count - i - 1) * sizeof tab[0]);
		(*count)--;
		return true;
	}
	return false;
}

/* ---- Double Ratchet ---- */

size_t e2e_pairwise_encrypt(e2e_session *s, uint8_t *out, const uint8_t *pt, size_t pt_len)
{
	uint8_t ad[E2E_AD + 1 + E2E_PREKEY_PART + E2E_RHEADER], mk[E2E_KEY];
	uint8_t *p = out;

	if (!s->has_cks)
		return 0;
	*p++ = s->prekey_pending ? 1 : 0;
	if (s->prekey_pending) {
		memcpy(p, s->ad, E2E_KEY);           /* our identity key */
		memcpy(p + E2E_KEY, s->ek_pk, E2E_KEY);
		e2e_put32(p + 2 * E2E_KEY, s->spk_id);
		e2e_put32(p + 2 * E2E_KEY + 4, s->opk_id);
		p += E2E_PREKEY_PART;
	}
	memcpy(p, s->dhs_pk, E2E_KEY);
	e2e_put32(p + E2E_KEY, s->pn);
	e2e_put32(p + E2E_KEY + 4, s->ns);
	p += E2E_RHEADER;
	size_t hlen = (size_t)(p - out);

	memcpy(ad, s->ad, E2E_AD);
	memcpy(ad + E2E_AD, out, hlen);
	e2e_kdf_ck(s->cks, s->cks, mk);
	s->ns++;
	e2e_seal(p, pt, pt_len, ad, E2E_AD + hlen, mk);
	sodium_memzero(mk, sizeof mk);
	return hlen + pt_len + E2E_TAG;
}

int e2e_pairwise_prekey(const uint8_t *msg, size_t len, e2e_prekey *pre)
{
	if (len < 1 || (msg[0] & ~1u) != 0)
		return -1;
	if (!(msg[0] & 1))
		return len >= 1 + E2E_RHEADER + E2E_TAG ? 0 : -1;
	if (len < 1 + E2E_PREKEY_PART + E2E_RHEADER + E2E_TAG)
		return -1;
	memcpy(pre->ik, msg + 1, E2E_KEY);
	memcpy(pre->ek, msg + 1 + E2E_KEY, E2E_KEY);
	pre->spk_id = e2e_get32(msg + 1 + 2 * E2E_KEY);
	pre->opk_id = e2e_get32(msg + 1 + 2 * E2E_KEY + 4);
	return 1;
}

/* Derives and keeps the keys of the receiving chain up to message `until`. */
static int skip_keys(e2e_session *s, uint32_t until)
{
	uint8_t mk[E2E_KEY];

	if (!s->has_ckr)
		return 0;
	if (until > s->nr && until - s->nr > E2E_MAX_SKIP)
		return -1;
	while (s->nr < until) {
		e2e_kdf_ck(s->ckr, s->ckr, mk);
		skipped_add(s->skipped, &s->nskipped, s->dhr, s->nr, mk);
		s->nr++;
	}
	sodium_memzero(mk, sizeof mk);
	return 0;
}

static int dh_ratchet(e2e_session *s, const uint8_t dh[E2E_KEY], const uint8_t *inject)
{
	uint8_t out[E2E_KEY];
	int rc = -1;

	s->pn = s->ns;
	s->ns = s->nr = 0;
	memcpy(s->dhr, dh, E2E_KEY);
	if (crypto_scalarmult(out, s->dhs_sk, s->dhr) != 0)
		goto done;
	e2e_kdf_rk(s->rk, out, s->rk, s->ckr);
	s->has_ckr = true;
	e2e_x25519_keypair(s->dhs_pk, s->dhs_sk, inject);
	if (crypto_scalarmult(out, s->dhs_sk, s->dhr) != 0)
		goto done;
	e2e_kdf_rk(s->rk, out, s->rk, s->cks);
	s->has_cks = true;
	rc = 0;
done:
	sodium_memzero(out, sizeof out);
	return rc;
}

int e2e_pairwise_decrypt(e2e_session *s, uint8_t *out, size_t *out_len,
                         const uint8_t *msg, size_t len, const uint8_t *inject_ratchet)
{
	uint8_t ad[E2E_AD + 1 + E2E_PREKEY_PART + E2E_RHEADER], mk[E2E_KEY];
	e2e_prekey pre;
	int has_pre = e2e_pairwise_prekey(msg, len, &pre);
	int rc = -1;

	if (has_pre < 0)
		return -1;
	size_t hlen = 1 + (has_pre ? E2E_PREKEY_PART : 0) + E2E_RHEADER;
	const uint8_t *h = msg + hlen - E2E_RHEADER;
	const uint8_t *dh = h;
	uint32_t pn = e2e_get32(h + E2E_KEY), n = e2e_get32(h + E2E_KEY + 4);
	const uint8_t *ct = msg + hlen;
	size_t ct_len = len - hlen;

	e2e_session *c = malloc(sizeof *c);
	if (!c)
		return -1;
	*c = *s;
	memcpy(ad, c->ad, E2E_AD);
	memcpy(ad + E2E_AD, msg, hlen);

	if (!skipped_take(c->skipped, &c->nskipped, dh, n, mk)) {
		if (!c->has_ckr || sodium_memcmp(dh, c->dhr, E2E_KEY) != 0) {
			if (skip_keys(c, pn) != 0 || dh_ratchet(c, dh, inject_ratchet) != 0)
				goto out;
		}
		if (skip_keys(c, n) != 0)
			goto out;
		e2e_kdf_ck(c->ckr, c->ckr, mk);
		c->nr++;
	}
	if (e2e_open(out, ct, ct_len, ad, E2E_AD + hlen, mk) != 0)
		goto out;
	*out_len = ct_len - E2E_TAG;
	c->prekey_pending = false;   /* the responder has the session: stop repeating X3DH */
	*s = *c;
	rc = 0;
out:
	sodium_memzero(c, sizeof *c);
	free(c);
	sodium_memzero(mk, sizeof mk);
	return rc;
}

/* ---- sender keys ---- */

void e2e_chain_new(e2e_chain *c, uint32_t key_id, const uint8_t *inject_ck)
{
	sodium_memzero(c, sizeof *c);
	c->key_id = key_id;
	if (inject_ck)
		memcpy(c->ck, inject_ck, E2E_KEY);
	else
		randombytes_buf(c->ck, E2E_KEY);
}

/* AD of a sender-key message: its 8-byte header, then the conversation id. */
static size_t sender_ad(uint8_t *ad, size_t cap, const uint8_t *hdr, const char *conv)
{
	size_t cl = strlen(conv);

	if (E2E_SKHEADER + cl > cap)
		return 0;
	memcpy(ad, hdr, E2E_SKHEADER);
	memcpy(ad + E2E_SKHEADER, conv, cl);
	return E2E_SKHEADER + cl;
}

size_t e2e_sender_encrypt(e2e_chain *c, uint8_t *out, const uint8_t *pt, size_t pt_len,
                          const char *conv, const uint8_t sig_sk[E2E_EDSK])
{
	uint8_t ad[E2E_SKHEADER + 128], mk[E2E_KEY];

	e2e_put32(out, c->key_id);
	e2e_put32(out + 4, c->n);
	size_t adl = sender_ad(ad, sizeof ad, out, conv);
	if (!adl)
		return 0;
	e2e_kdf_ck(c->ck, c->ck, mk);
	c->n++;
	e2e_seal(out + E2E_SKHEADER, pt, pt_len, ad, adl, mk);
	size_t body = E2E_SKHEADER + pt_len + E2E_TAG;
	e2e_sign(out + body, out, body, sig_sk);
	sodium_memzero(mk, sizeof mk);
	return body + E2E_SIG;
}

int64_t e2e_sender_key_id(const uint8_t *msg, size_t len)
{
	if (len < E2E_SENDER_OVERHEAD)
		return -1;
	return e2e_get32(msg);
}

int e2e_sender_decrypt(e2e_chain *c, uint8_t *out, size_t *out_len, const uint8_t *msg,
                       size_t len, const char *conv)
{
	uint8_t ad[E2E_SKHEADER + 128], mk[E2E_KEY];
	int rc = -1;

	if (len < E2E_SENDER_OVERHEAD || e2e_get32(msg) != c->key_id)
		return -1;
	size_t body = len - E2E_SIG;
	if (crypto_sign_verify_detached(msg + body, msg, body, c->sig_pk) != 0)
		return -1;
	size_t adl = sender_ad(ad, sizeof ad, msg, conv);
	if (!adl)
		return -1;
	uint32_t n = e2e_get32(msg + 4);

	e2e_chain *k = malloc(sizeof *k);
	if (!k)
		return -1;
	*k = *c;
	if (n < k->n) {
		if (!skipped_take(k->skipped, &k->nskipped, NULL, n, mk))
			goto out;
	} else {
		if (n - k->n > E2E_MAX_SKIP)
			goto out;
		while (k->n < n) {
			e2e_kdf_ck(k->ck, k->ck, mk);
			skipped_add(k->skipped, &k->nskipped, NULL, k->n, mk);
			k->n++;
		}
		e2e_kdf_ck(k->ck, k->ck, mk);
		k->n++;
	}
	if (e2e_open(out, msg + E2E_SKHEADER, body - E2E_SKHEADER, ad, adl, mk) != 0)
		goto out;
	*out_len = body - E2E_SKHEADER - E2E_TAG;
	*c = *k;
	rc = 0;
out:
	sodium_memzero(k, sizeof *k);
	free(k);
	sodium_memzero(mk, sizeof mk);
	return rc;
}

/* ---- the body envelope ---- */

size_t e2e_body_header(uint8_t *out, int kind, size_t dist_len)
{
	out[0] = E2E_VERSION;
	out[1] = (uint8_t)kind;
	if (kind != E2E_KIND_GROUP)
		return 2;
	out[2] = (uint8_t)(dist_len >> 8);
	out[3] = (uint8_t)dist_len;
	return 4;
}

int e2e_body_parse(const uint8_t *b, size_t len, e2e_body *out)
{
	memset(out, 0, sizeof *out);
	if (len < 2 || b[0] != E2E_VERSION)
		return -1;
	out->kind = b[1];
	if (out->kind == E2E_KIND_PAIRWISE) {
		out->pairwise = b + 2;
		out->pairwise_len = len - 2;
		return 0;
	}
	if (out->kind != E2E_KIND_GROUP || len < 4)
		return -1;
	size_t dl = (size_t)b[2] << 8 | b[3];
	if (dl > len - 4)
		return -1;
	if (dl) {
		out->pairwise = b + 4;
		out->pairwise_len = dl;
	}
	out->sender = b + 4 + dl;
	out->sender_len = len - 4 - dl;
	return 0;
}
