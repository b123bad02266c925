// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* e2ee.h — the crypto core of chat-client: X3DH, the Double Ratchet and
 * sender keys, after Signal's published specifications, on libsodium.
 *
 * No I/O, no MQTT, no clock: every function takes its inputs and writes its
 * outputs, so the unit test can drive it from the language-neutral vectors
 * (tests/vectors/e2ee.json) and a client in another language can check
 * itself against the same bytes. Where a fresh key pair is needed the caller
 * may inject the private key (tests) or pass NULL (random). The wire format
 * and every KDF label are specified in docs/E2EE.md.
 *
 * Sessions and chains are plain structs (no pointers) so the client can
 * copy one, try a decryption on the copy, and keep it only on success.
 * Every secret held here is wiped with e2e_wipe() by its owner.
 */
#ifndef CHAT_E2EE_H
#define CHAT_E2EE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define E2E_KEY 32          /* X25519 / Ed25519 public keys, chain and root keys */
#define E2E_EDSK 64         /* Ed25519 secret key (seed || public key) */
#define E2E_SIG 64
#define E2E_TAG 16          /* Poly1305 tag */
#define E2E_NONCE 24        /* XChaCha20 nonce */
#define E2E_AD (2 * E2E_KEY) /* associated data: IK_initiator || IK_responder */
#define E2E_VERSION 1

#define E2E_MAX_SKIP 200    /* message keys one received message may skip */
#define E2E_SKIPPED_CAP 64  /* skipped keys a session or chain keeps (oldest go) */

/* Body kinds (second byte of every body) and plaintext types. */
enum { E2E_KIND_PAIRWISE = 1, E2E_KIND_GROUP = 2 };
enum { E2E_PT_TEXT = 1, E2E_PT_SENDER_KEY = 2 };

/* Sizes of the fixed parts of the wire format (docs/E2EE.md). */
#define E2E_PREKEY_PART (2 * E2E_KEY + 8)   /* ik, ek, spk_id, opk_id */
#define E2E_RHEADER (E2E_KEY + 8)           /* dh, pn, n */
#define E2E_SKHEADER 8                      /* key_id, n */
/* Largest overhead a pairwise message adds to its plaintext. */
#define E2E_PAIRWISE_OVERHEAD (1 + E2E_PREKEY_PART + E2E_RHEADER + E2E_TAG)
#define E2E_SENDER_OVERHEAD (E2E_SKHEADER + E2E_TAG + E2E_SIG)

/* KDF labels (HKDF info strings). */
#define E2E_INFO_X3DH "mosquitto-chat X3DH v1"
#define E2E_INFO_RATCHET "mosquitto-chat ratchet v1"
#define E2E_INFO_MESSAGE "mosquitto-chat message keys v1"

typedef struct e2e_skipped {
	uint8_t dh[E2E_KEY]; /* ratchet key of the chain (sender keys: key id in the first 4 bytes) */
	uint32_t n;
	uint8_t mk[E2E_KEY];
} e2e_skipped;

/* One Double Ratchet session with one remote device. */
typedef struct e2e_session {
	uint8_t ad[E2E_AD];             /* IK_A || IK_B (Ed25519 public keys) */
	uint8_t remote_ik[E2E_KEY];
	uint8_t rk[E2E_KEY], cks[E2E_KEY], ckr[E2E_KEY];
	bool has_cks, has_ckr;
	uint8_t dhs_sk[E2E_KEY], dhs_pk[E2E_KEY], dhr[E2E_KEY];
	uint32_t ns, nr, pn;
	/* The X3DH part the initiator repeats on every message until the first
	 * reply; the responder keeps the initiator's ek to recognise repeats. */
	bool prekey_pending;
	uint8_t ek_pk[E2E_KEY];
	uint32_t spk_id, opk_id;        /* opk_id 0: no one-time key was used */
	uint32_t nskipped;
	e2e_skipped skipped[E2E_SKIPPED_CAP];
} e2e_session;

/* A sender-key chain: ours (next n to send) or a peer's (next n expected). */
typedef struct e2e_chain {
	uint32_t key_id, n;
	uint8_t ck[E2E_KEY];
	uint8_t sig_pk[E2E_KEY];        /* received chains: the sender's identity key */
	uint32_t nskipped;
	e2e_skipped skipped[E2E_SKIPPED_CAP];
} e2e_chain;

/* What a device publishes (one bundle entry of the key server). */
typedef struct e2e_bundle {
	uint8_t ik[E2E_KEY];            /* Ed25519 */
	uint32_t spk_id;
	uint8_t spk[E2E_KEY], spk_sig[E2E_SIG];
	uint32_t opk_id;                /* 0: none */
	uint8_t opk[E2E_KEY];
} e2e_bundle;

/* The parsed X3DH part of a prekey message. */
typedef struct e2e_prekey {
	uint8_t ik[E2E_KEY], ek[E2E_KEY];
	uint32_t spk_id, opk_id;
} e2e_prekey;

int e2e_init(void);                  /* sodium_init; 0 ok, -1 failure */
void e2e_wipe(void *p, size_t n);

/* ---- primitives (exposed for the vectors) ---- */

/* RFC 5869 HKDF-SHA256; salt NULL means 32 zero bytes. out_len <= 255*32. */
void e2e_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
              const uint8_t *ikm, size_t ikm_len, const char *info);
/* Double Ratchet KDF_RK and KDF_CK. */
void e2e_kdf_rk(const uint8_t rk[E2E_KEY], const uint8_t dh_out[E2E_KEY],
                uint8_t rk_out[E2E_KEY], uint8_t ck_out[E2E_KEY]);
void e2e_kdf_ck(const uint8_t ck[E2E_KEY], uint8_t ck_out[E2E_KEY], uint8_t mk_out[E2E_KEY]);
/* AEAD key and nonce of a message key: HKDF(mk, info MESSAGE), 32 + 24 bytes. */
void e2e_message_keys(const uint8_t mk[E2E_KEY], uint8_t key[E2E_KEY], uint8_t nonce[E2E_NONCE]);
/* XChaCha20-Poly1305 under a message key; out has pt_len + E2E_TAG bytes. */
void e2e_seal(uint8_t *out, const uint8_t *pt, size_t pt_len, const uint8_t *ad, size_t ad_len,
              const uint8_t mk[E2E_KEY]);
int e2e_open(uint8_t *out, const uint8_t *ct, size_t ct_len, const uint8_t *ad, size_t ad_len,
             const uint8_t mk[E2E_KEY]);

/* Key pairs: X25519 from a private key (NULL: random), Ed25519 from a seed
 * (NULL: random), and an Ed25519 signature over a signed pre-key. */
void e2e_x25519_keypair(uint8_t pk[E2E_KEY], uint8_t sk[E2E_KEY], const uint8_t *inject_sk);
void e2e_ed25519_keypair(uint8_t pk[E2E_KEY], uint8_t sk[E2E_EDSK], const uint8_t *seed);
void e2e_sign(uint8_t sig[E2E_SIG], const uint8_t *m, size_t len, const uint8_t sk[E2E_EDSK]);

/* ---- X3DH ---- */

/* Initiator: verifies the bundle's signed pre-key, derives SK and starts the
 * session (ek and the first ratchet key may be injected). -1 if the
 * signature or a key is bad. sk_out (optional) receives SK. */
int e2e_x3dh_initiate(e2e_session *s, const uint8_t my_ik_pk[E2E_KEY],
                      const uint8_t my_ik_sk[E2E_EDSK], const e2e_bundle *b,
                      const uint8_t *inject_ek, const uint8_t *inject_ratchet,
                      uint8_t *sk_out);
/* Responder: from the prekey part and our keys (opk_sk NULL when opk_id is 0). */
int e2e_x3dh_respond(e2e_session *s, const uint8_t my_ik_pk[E2E_KEY],
                     const uint8_t my_ik_sk[E2E_EDSK], const uint8_t spk_pk[E2E_KEY],
                     const uint8_t spk_sk[E2E_KEY], const uint8_t *opk_sk,
                     const e2e_prekey *pre, uint8_t *sk_out);

/* ---- pairwise messages (body kind 1, or the distribution inside kind 2) ---- */

/* Encrypts pt into a pairwise message (without the version/kind prefix);
 * out must hold pt_len + E2E_PAIRWISE_OVERHEAD. Returns its length, or 0 if
 * the session cannot send yet. */
size_t e2e_pairwise_encrypt(e2e_session *s, uint8_t *out, const uint8_t *pt, size_t pt_len);
/* Parses the prekey part of a pairwise message, if it has one: 1 yes, 0 no, -1 malformed. */
int e2e_pairwise_prekey(const uint8_t *msg, size_t len, e2e_prekey *pre);
/* Decrypts into out (len bytes suffice); *out_len gets the plaintext length.
 * s changes only on success. inject_ratchet: the next ratchet key (NULL: random). */
int e2e_pairwise_decrypt(e2e_session *s, uint8_t *out, size_t *out_len,
                         const uint8_t *msg, size_t len, const uint8_t *inject_ratchet);

/* ---- sender keys (groups) ---- */

/* A fresh chain (ck may be injected). */
void e2e_chain_new(e2e_chain *c, uint32_t key_id, const uint8_t *inject_ck);
/* Sender-key message for conversation conv ("g:G"); out must hold
 * pt_len + E2E_SENDER_OVERHEAD. Returns the length. */
size_t e2e_sender_encrypt(e2e_chain *c, uint8_t *out, const uint8_t *pt, size_t pt_len,
                          const char *conv, const uint8_t sig_sk[E2E_EDSK]);
/* Verifies and decrypts with a received chain (changes only on success). */
int e2e_sender_decrypt(e2e_chain *c, uint8_t *out, size_t *out_len, const uint8_t *msg,
                       size_t len, const char *conv);
/* The key id of a sender-key message, or -1 if it is too short. */
int64_t e2e_sender_key_id(const uint8_t *msg, size_t len);

/* ---- the body envelope: version, kind, then the kind's parts ---- */

typedef struct e2e_body {
	int kind;                       /* E2E_KIND_* */
	const uint8_t *pairwise;        /* kind 1: the message; kind 2: the distribution (or NULL) */
	size_t pairwise_len;
	const uint8_t *sender;          /* kind 2: the sender-key message */
	size_t sender_len;
} e2e_body;

/* Writes the envelope's header (2 bytes for kind 1; 4 for kind 2, with the
 * length of the distribution that follows) and returns its length. */
size_t e2e_body_header(uint8_t *out, int kind, size_t dist_len);
/* Splits a body into its parts (pointers into b): 0, or -1 if malformed. */
int e2e_body_parse(const uint8_t *b, size_t len, e2e_body *out);

/* ---- big-endian helpers shared with the client's body codec ---- */
void e2e_put32(uint8_t *p, uint32_t v);
uint32_t e2e_get32(const uint8_t *p);

#endif
