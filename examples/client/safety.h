// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* safety.h — safety numbers (docs/E2EE.md §8): a fingerprint of two users'
 * identity keys that both users compute alike and compare, as digits or as
 * a QR code.
 *
 * A user's fingerprint covers the sorted set of (device id, Ed25519 identity
 * key) of all the user's devices, so a new device, a removed one or a
 * changed key changes the number. No I/O: the unit test drives it from
 * tests/vectors/safety.json, which the web client checks too.
 */
#ifndef CHAT_SAFETY_H
#define CHAT_SAFETY_H

#include <stddef.h>
#include <stdint.h>

#define SAFETY_VERSION 1
#define SAFETY_ITERATIONS 5200
#define SAFETY_HASH 64               /* SHA-512 */
#define SAFETY_USER_DIGITS 30
#define SAFETY_DIGITS (2 * SAFETY_USER_DIGITS)
#define SAFETY_FP 32                 /* per-user fingerprint bytes in the QR payload */
#define SAFETY_QR_LEN (1 + 2 * SAFETY_FP)
#define SAFETY_DEV_MAX 255           /* a device id is written with a one-byte length */

typedef struct safety_key {
	const char *dev;                 /* device id (not "U/D") */
	const uint8_t *ik;               /* 32-byte Ed25519 public key */
} safety_key;

/* The iterated hash of one user's key set (§8). keys need not be sorted.
 * 0, or -1 for an empty set, a device id that is empty, too long or listed
 * twice, or a user id longer than 255 bytes. */
int safety_user_hash(const char *user, const safety_key *keys, size_t n,
                     uint8_t out[SAFETY_HASH]);

/* The 30 digits of one user's hash (plus the terminator). */
void safety_user_digits(const uint8_t hash[SAFETY_HASH], char out[SAFETY_USER_DIGITS + 1]);

/* The safety number of users a and b (60 digits plus the terminator), the
 * same whichever side computes it, and the QR payload (65 bytes). 0 or -1
 * as safety_user_hash. */
int safety_number(const char *a, const safety_key *ka, size_t na, const char *b,
                  const safety_key *kb, size_t nb, char number[SAFETY_DIGITS + 1],
                  uint8_t qr[SAFETY_QR_LEN]);

#endif
