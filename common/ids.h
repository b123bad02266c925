// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* ids.h — validation of the identifiers of the wire contract.
 *
 * user id U: 1–64 of [A-Za-z0-9._-]; device id D: 1–32 of the same;
 * group id G: 1–64. A device address is "U/D". A 1:1 conversation is
 * "dm:A:B" with A < B bytewise, a group conversation "g:G".
 * Functions take (pointer, length) so they work on topic slices without
 * copying; none of them allocates.
 */
#ifndef CHAT_IDS_H
#define CHAT_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_USER_MAX 64
#define CHAT_DEVICE_MAX 32
#define CHAT_GROUP_MAX 64
#define CHAT_ADDR_MAX (CHAT_USER_MAX + 1 + CHAT_DEVICE_MAX)   /* "U/D" */
#define CHAT_CONV_MAX (3 + CHAT_USER_MAX + 1 + CHAT_USER_MAX) /* "dm:A:B" */

bool chat_id_char(char c);
bool chat_valid_user(const char *s, size_t len);
bool chat_valid_device(const char *s, size_t len);
bool chat_valid_group(const char *s, size_t len);

/* Splits "U/D" into its parts; false unless both are valid ids. */
bool chat_parse_addr(const char *s, size_t len, const char **user, size_t *ulen,
                     const char **dev, size_t *dlen);

/* The length of the user part of "U/D" (the whole string if it has no '/'). */
size_t chat_addr_user_len(const char *addr);

/* Writes "dm:A:B" (ordered) into out (CHAT_CONV_MAX + 1 bytes); returns its
 * length, or 0 when a == b. */
size_t chat_dm_conv(char *out, const char *a, size_t alen, const char *b, size_t blen);

enum chat_conv_kind { CHAT_CONV_INVALID = 0, CHAT_CONV_DM, CHAT_CONV_GROUP };

/* Parses a conversation id. For a dm, p1/p2 are the two users; for a group,
 * p1 is the group id and p2 is NULL. */
enum chat_conv_kind chat_parse_conv(const char *s, size_t len, const char **p1, size_t *l1,
                                    const char **p2, size_t *l2);

#endif
