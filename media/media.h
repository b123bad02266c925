// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* media.h — chat-media's core: the attachment store and its rules, no MQTT
 * and no HTTP (the unit-free parts main.c and http.c call, and the fuzz
 * target links).
 *
 * What it keeps (docs/PROTOCOL.md § "Attachments"): per blob a metadata
 * record in its own RocksDB (owner U/D, declared size, content type, the
 * `to` devices and which of them are done, a deadline) and, once uploaded,
 * the ciphertext as one file DIR/blobs/<id>. Per user the bytes it has
 * stored or reserved (the quota). An index by deadline lets the sweep find
 * what expired without reading every record.
 *
 * Threads: the MQTT side (slot, grant, the sweep) runs on the main thread,
 * the HTTP side on libmicrohttpd's threads. Every read-modify-write of the
 * metadata takes the one mutex inside `media`, so a record, its index entry
 * and its owner's quota always change together (one RocksDB write batch).
 * Signing and checking URLs needs no lock (the secret never changes).
 */
#ifndef CHAT_MEDIA_H
#define CHAT_MEDIA_H

#include "cbor_io.h"
#include "ids.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEDIA_ID_LEN 22          /* 16 random bytes, base64url without padding */
#define MEDIA_SIG_LEN 43         /* HMAC-SHA256, base64url without padding */
#define MEDIA_SECRET_LEN 32
#define MEDIA_TO_MAX 1024        /* recipient devices of one blob */
#define MEDIA_TYPE_MAX 127       /* bytes of a content type */
#define MEDIA_UPLOAD_GRACE_S 3600 /* a reserved slot outlives its PUT URL by this */

typedef struct media_opts {
	const char *dir;          /* data directory: meta/ (RocksDB), blobs/, tmp/ */
	const char *public_url;   /* base of the URLs handed out, no trailing '/' */
	uint64_t max_size;        /* largest blob (bytes) */
	uint64_t quota;           /* per user, stored + reserved bytes */
	uint32_t ttl_s;           /* a stored blob lives at most this long */
	uint32_t url_ttl_s;       /* PUT and GET URLs are valid this long */
	uint32_t rate_burst;      /* requests a device may make at once ... */
	uint32_t rate_per_min;    /* ... and then per minute (0: no limit) */
} media_opts;

void media_opts_default(media_opts *o);

typedef struct media media;

/* Opens (creating) the store under o->dir with the given secret. CHAT_OK,
 * or an error with a sentence in err. */
int media_open(media **out, const media_opts *o, const uint8_t secret[MEDIA_SECRET_LEN],
               char *err, size_t cap);
void media_close(media *m);
/* Sets the base of the URLs handed out (no trailing '/'); only before the
 * MQTT side (its one reader) starts. */
void media_set_public_url(media *m, const char *url);

/* ---- requests over MQTT ---- */

enum media_op { MEDIA_OP_NONE = 0, MEDIA_OP_SLOT, MEDIA_OP_GET };

typedef struct media_req {
	bool has_rid;
	uint64_t rid;
	enum media_op op;
	uint64_t size;
	const char *type;  /* into the input */
	size_t type_len;
	const char *id;    /* into the input */
	size_t id_len;
	uint32_t nto;
	struct { const char *p; size_t len; } to[MEDIA_TO_MAX]; /* into the input */
} media_req;

/* Decodes one request (a CBOR map). NULL, or why it is malformed (a
 * sentence for the `msg` of a bad_request error). r->has_rid/rid are set
 * whenever the map carried a valid rid, even on error. Never allocates. */
const char *media_req_parse(const void *buf, size_t len, media_req *r);

/* Answers a request from device user/dev (the topic's U/D): the response
 * CBOR in *out. *code is NULL on success, else the error code sent. */
int media_request(media *m, const char *user, const char *dev, const void *buf, size_t len,
                  cbw *out, const char **code);

/* ---- the HTTP side ---- */

/* An id as we make them: MEDIA_ID_LEN base64url characters. */
bool media_id_valid(const char *s, size_t len);

/* The HTTP status of a refusal and a one-line reason. */
typedef struct media_http_err {
	unsigned status;
	const char *why;
} media_http_err;

/* PUT /v1/blob/{id}?exp&sig with Content-Length clen (have_clen false when
 * absent): checks signature, expiry, state and length. true with the
 * declared size; false with the refusal. */
bool media_put_check(media *m, const char *id, const char *exp, const char *sig,
                     bool have_clen, uint64_t clen, uint64_t *size, media_http_err *e);
/* Opens a new temp file for an upload of id: its fd, or -1 (logged). Its
 * path goes in path (PATH_MAX). */
int media_put_tmp(media *m, const char *id, char *path);
/* The upload of id is in tmp (written, fsync'ed, closed): moves it into
 * place and marks the blob stored, its TTL starting now. false with 409
 * when it was already uploaded, 410 when the slot expired meanwhile. The
 * temp file is gone either way. */
bool media_put_commit(media *m, const char *id, const char *tmp, media_http_err *e);

/* GET /v1/blob/{id}?dev&exp&sig: checks, then opens the blob: true with
 * its fd (the caller closes it) and size. */
bool media_get_open(media *m, const char *id, const char *dev, const char *exp,
                    const char *sig, int *fd, uint64_t *size, media_http_err *e);
/* dev was served the blob's last byte: it is done; when every `to` device
 * is, the blob is deleted (file, record, quota). */
void media_get_done(media *m, const char *id, const char *dev);

/* An admin removed device addr ("U/D"): it will never download, so it
 * counts as done in every blob it is a recipient of (a blob whose other
 * devices are all done goes). A scan of every record, one at a time under
 * the lock: removals are rare. Returns how many blobs were deleted. */
unsigned media_device_removed(media *m, const char *addr);

/* Deletes what passed its deadline: slots never uploaded (their PUT URL's
 * expiry + MEDIA_UPLOAD_GRACE_S) and blobs past their TTL. Returns how many
 * were deleted. */
unsigned media_sweep(media *m, uint64_t now);

/* Counters for the log (whole life). */
typedef struct media_counts {
	uint64_t slots, grants, refused, uploads, downloads, deleted_done, deleted_expired;
} media_counts;
void media_counts_get(media *m, media_counts *c);

/* The secret: read from path (exactly MEDIA_SECRET_LEN bytes), or, when
 * the file does not exist, made at random and written with mode 0600.
 * false with a sentence in err. */
bool media_secret_load(const char *path, uint8_t secret[MEDIA_SECRET_LEN], char *err, size_t cap);

#endif
