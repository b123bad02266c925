// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* err.h — the one error convention of mosquitto-chat.
 *
 * Every fallible function returns an int: CHAT_OK (0) on success, or one of
 * the positive codes below. Where a caller needs more words than the code
 * (a RocksDB message, a decoder position), the module keeps them on its own
 * handle (store_errmsg(), cbr.err_msg) rather than inventing a second channel.
 *
 * A walk (store_*_each, store_queue_read) calls back once per record; the
 * callback returns CHAT_OK to go on, CHAT_STOP to end the walk early, or an
 * error, which ends it too. The walk returns what ended it: CHAT_OK when it
 * ran out of records, else the callback's value (or its own error). CHAT_STOP
 * is negative, outside the codes' range, so "stopped" is never read as a
 * failure nor a failure as "stopped".
 */
#ifndef CHAT_ERR_H
#define CHAT_ERR_H

enum chat_err {
	CHAT_OK = 0,
	CHAT_ENOMEM,     /* allocation failed */
	CHAT_EINVAL,     /* malformed input: bad CBOR, wrong type, bad id */
	CHAT_ENOTFOUND,  /* no such record */
	CHAT_EEXIST,     /* record already exists */
	CHAT_EIO,        /* storage or system I/O failed */
	CHAT_ETOOBIG,    /* input over a configured size limit */
	CHAT_EDENIED,    /* not allowed */
	CHAT_EQUOTA,     /* a queue or pool is full */
	CHAT_ECORRUPT,   /* a stored record does not decode */
};

enum { CHAT_STOP = -1 }; /* not an error: a walk's callback ended it (above) */

/* A short, stable, lower-case description of a code ("not found"). */
const char *chat_strerror(int err);

#endif
