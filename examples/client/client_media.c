// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_media.c — chat-client's attachments (docs/E2EE.md §4.5, §5;
 * docs/PROTOCOL.md "Attachments").
 *
 * Sending: the file is encrypted (attach.c) into an unlinked temporary file
 * next to the state, a `slot` is asked of chat-media for its ciphertext size
 * and the recipient devices, the ciphertext is PUT to the signed URL
 * (libcurl, streamed from the file), then the pointer goes out as a normal
 * E2EE message. Receiving: a `get` grant, then a GET into DIR/.part-ID that
 * resumes with a Range request after an interruption, the SHA-256 of what
 * arrived against the pointer's digest, decryption into a temporary file,
 * and only then the file under its (sanitised) name in --files DIR. A digest
 * mismatch, a failed decryption or a blob chat-media no longer has
 * (not_found) is reported and nothing is saved. A download that fails for
 * now (network or HTTP errors, chat-media unreachable, not_ready, rate,
 * internal) keeps its pointer in the state as a pending download, retried
 * at each later connection (media_retry_pending) until saved or failed for
 * good; the message itself is acknowledged at once.
 *
 * While a transfer runs, the MQTT connection is kept alive from libcurl's
 * progress callback (what arrives is queued, as always).
 *
 * Test hook: CHAT_CLIENT_TEST_CUT_GET=N makes the first download of the
 * process stop after N bytes (the connection is dropped), so the next
 * attempt must resume with Range; tests/integration/test_attachments.py.
 */
#include "attach.h"
#include "client.h"
#include "err.h"
#include "mqtt_tls.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEDIA_REQ_MS 10000
#define AGAIN (-100)            /* a transfer to try again (resume) */
#define DOWN (-101)             /* chat-media did not answer: later */
#define TRANSIENT (-102)        /* a local failure: later, not in this loop */
#define GET_ATTEMPTS 4
#define PUMP_EVERY_MS 200

/* ---- libcurl ---- */

typedef struct xfer {
	client *c;
	uint64_t last_pump;
	/* downloads */
	FILE *out;
	uint64_t have;          /* bytes in the part file before this request */
	uint64_t written;       /* bytes written by this request */
	int64_t cut_after;      /* test hook: stop after this many bytes (-1: never) */
	bool started, wrote_error;
	char err[512];          /* a non-2xx answer's body (start of) */
	size_t nerr;
} xfer;

static int on_progress(void *p, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
	(void)dlt, (void)dln, (void)ult, (void)uln;
	xfer *x = p;
	uint64_t now = now_ms();
	if (now - x->last_pump >= PUMP_EVERY_MS) {   /* keep MQTT alive meanwhile */
		x->last_pump = now;
		net_pump(&x->c->net, 0);
	}
	return 0;
}

static CURL *media_curl(client *c, const char *url, xfer *x)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);    /* stalled for 30 s: give up */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	/* HTTPS to chat-media trusts what the broker's TLS trusts (--cafile,
	 * --capath), else the system's CAs */
	if (c->tls && c->tls->cafile)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->tls->cafile);
	if (c->tls && c->tls->capath)
		curl_easy_setopt(h, CURLOPT_CAPATH, c->tls->capath);
	if (c->tls && c->tls->insecure)
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	return h;
}

/* ---- chat-media requests ---- */

/* Sends the request built in c->net.w and decodes the answer into r (its
 * strings point into *keep, which the caller frees). CHAT_OK when ok. */
static int media_request(client *c, uint64_t rid, att_resp *r, qmsg **keep)
{
	*keep = net_media(&c->net, rid, MEDIA_REQ_MS);
	if (!*keep) {
		fprintf(stderr, "chat-client: no answer from chat-media (is it running?)\n");
		return CHAT_EIO;
	}
	const char *bad = att_resp_decode(r, (*keep)->payload, (*keep)->len);
	if (bad) {
		fprintf(stderr, "chat-client: a malformed answer from chat-media: %s\n", bad);
		return CHAT_EINVAL;
	}
	if (!r->ok) {
		fprintf(stderr, "chat-client: chat-media refused: %.*s (%.*s)\n", (int)r->msg_len,
		        r->msg ? r->msg : "", (int)r->code_len, r->code ? r->code : "");
		return CHAT_EDENIED;
	}
	return CHAT_OK;
}

/* ---- sending ---- */

static const char *content_type(const char *path)
{
	static const struct { const char *ext, *type; } t[] = {
		{ ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" }, { ".png", "image/png" },
		{ ".gif", "image/gif" }, { ".webp", "image/webp" }, { ".ogg", "audio/ogg" },
		{ ".oga", "audio/ogg" }, { ".opus", "audio/ogg" }, { ".wav", "audio/wav" },
		{ ".mp3", "audio/mpeg" }, { ".m4a", "audio/mp4" }, { ".mp4", "video/mp4" },
		{ ".webm", "video/webm" }, { ".pdf", "application/pdf" }, { ".txt", "text/plain" },
	};
	const char *dot = strrchr(path, '.');
	for (size_t i = 0; dot && i < sizeof t / sizeof t[0]; i++)
		if (strcasecmp(dot, t[i].ext) == 0)
			return t[i].type;
	return "application/octet-stream";
}

/* Whether s is UTF-8 a peer's CBOR reader accepts (the same reader's check). */
static bool utf8_ok(const char *s, size_t n)
{
	cbw w;
	cbr r;
	cbr_item it;
	cbw_init(&w);
	cbw_textn(&w, s, n);
	cbr_init(&r, w.buf, w.len);
	bool ok = cbw_status(&w) == CHAT_OK && cbr_next(&r, &it) == CHAT_OK;
	cbw_free(&w);
	return ok;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A WAV file's duration from its header (fmt byte rate, data size). */
static bool wav_duration(FILE *f, uint64_t *ms)
{
	uint8_t h[12], ch[8], fmt[16];
	uint32_t rate = 0;
	if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0)
		return false;
	while (fread(ch, 1, 8, f) == 8) {
		uint32_t len = le32(ch + 4);
		if (memcmp(ch, "fmt ", 4) == 0 && len >= 16) {
			if (fread(fmt, 1, 16, f) != 16)
				return false;
			rate = le32(fmt + 8);
			len -= 16;
		} else if (memcmp(ch, "data", 4) == 0) {
			if (!rate)
				return false;
			*ms = (uint64_t)len * 1000 / rate;
			return true;
		}
		if (fseek(f, (long)(len + (len & 1)), SEEK_CUR) != 0)
			return false;
	}
	return false;
}

static int upload(client *c, const char *url, FILE *ct, uint64_t size)
{
	xfer x = { .c = c };
	CURL *h = media_curl(c, url, &x);
	if (!h)
		return CHAT_ENOMEM;
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	hdr = curl_slist_append(hdr, "Expect:");
	rewind(ct);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READDATA, ct);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	CURLcode cr = curl_easy_perform(h);
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (cr != CURLE_OK) {
		fprintf(stderr, "chat-client: upload failed: %s\n", curl_easy_strerror(cr));
		return CHAT_EIO;
	}
	if (code != 201) {
		fprintf(stderr, "chat-client: chat-media answered the upload with HTTP %ld\n", code);
		return CHAT_EDENIED;
	}
	return CHAT_OK;
}

int media_send_file(client *c, const char *peer_user, const char *gid, const char *path,
                    const char *caption, char *conv, size_t conv_cap, uint64_t *seq)
{
	int rc = CHAT_EIO;
	FILE *in = fopen(path, "rb"), *ct = NULL;
	char (*to)[ADDR_MAX] = NULL;
	size_t nto = 0;
	qmsg *keep = NULL;
	cbw w;
	uint8_t key[ATT_KEY], digest[ATT_DIGEST];
	uint64_t size = 0, duration = 0;
	bool has_duration = false;

	cbw_init(&w);
	if (!in) {
		fprintf(stderr, "chat-client: cannot read %s: %s\n", path, strerror(errno));
		return CHAT_EIO;
	}
	if (caption && (strlen(caption) > ATT_CAPTION_MAX || !utf8_ok(caption, strlen(caption)))) {
		fprintf(stderr, "chat-client: the caption is not UTF-8 of at most %d bytes\n",
		        ATT_CAPTION_MAX);
		rc = CHAT_ETOOBIG;
		goto out;
	}
	const char *type = content_type(path);
	if (strcmp(type, "audio/wav") == 0) {
		has_duration = wav_duration(in, &duration);
		rewind(in);
	}
	/* the ciphertext goes to a temporary file next to the state, unlinked at
	 * once: a crash leaves nothing behind */
	char tmp[sizeof c->st.path + 32];
	snprintf(tmp, sizeof tmp, "%s.upload-XXXXXX", c->st.path);
	int fd = mkstemp(tmp);
	if (fd < 0 || !(ct = fdopen(fd, "w+b"))) {
		fprintf(stderr, "chat-client: cannot make a temporary file %s: %s\n", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	unlink(tmp);
	randombytes_buf(key, sizeof key);
	if (att_encrypt_file(in, ct, key, digest, &size) != 0) {
		fprintf(stderr, "chat-client: encrypting %s: %s\n", path, strerror(errno));
		goto out;
	}

	/* a slot for the devices the pointer goes to */
	if ((rc = chat_recipients(c, peer_user, gid, &to, &nto)) != CHAT_OK)
		goto out;
	if (nto == 0) {
		fprintf(stderr, "chat-client: nobody to send the file to\n");
		rc = CHAT_ENOTFOUND;
		goto out;
	}
	uint64_t rid = net_req_begin(&c->net, 3, "slot");
	cbw *q = &c->net.w;
	cbw_text(q, "size");
	cbw_uint(q, size);
	cbw_text(q, "type");
	cbw_text(q, type);
	cbw_text(q, "to");
	cbw_array(q, nto);
	for (size_t i = 0; i < nto; i++)
		cbw_text(q, to[i]);
	att_resp r;
	if ((rc = media_request(c, rid, &r, &keep)) != CHAT_OK)
		goto out;
	if (!r.id || !r.url) {
		fprintf(stderr, "chat-client: chat-media's slot has no id or put URL\n");
		rc = CHAT_EINVAL;
		goto out;
	}
	char url[ATT_URL_MAX + 1], id[ATT_ID_MAX + 1];
	snprintf(url, sizeof url, "%.*s", (int)r.url_len, r.url);
	snprintf(id, sizeof id, "%.*s", (int)r.id_len, r.id);
	if ((rc = upload(c, url, ct, size)) != CHAT_OK)
		goto out;
	fprintf(stderr, "chat-client: uploaded %s (%llu bytes encrypted) as %s\n", path,
	        (unsigned long long)size, id);

	/* the pointer, as an E2EE message */
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	att_ptr p = {
		.id = id, .id_len = strlen(id), .size = size, .type = type, .type_len = strlen(type),
		.name = base[0] ? base : NULL, .name_len = strlen(base), .has_duration = has_duration,
		.duration_ms = duration, .caption = caption, .caption_len = caption ? strlen(caption) : 0,
	};
	if (p.name_len > ATT_NAME_MAX)
		p.name_len = ATT_NAME_MAX;   /* the name is a hint; a long one is cut */
	while (p.name && p.name_len > 0 && ((unsigned char)p.name[p.name_len] & 0xC0) == 0x80 &&
	       p.name_len < strlen(base))
		p.name_len--;
	if (p.name && !utf8_ok(p.name, p.name_len))
		p.name = NULL;   /* a name that is not UTF-8 is left out (the receiver uses the id) */
	memcpy(p.key, key, ATT_KEY);
	memcpy(p.digest, digest, ATT_DIGEST);
	att_ptr_encode(&p, &w);
	if (cbw_status(&w) != CHAT_OK) {
		rc = CHAT_ENOMEM;
		goto out;
	}
	char hist[300];
	snprintf(hist, sizeof hist, "[file] %.*s", (int)p.name_len, base);
	rc = chat_send_plain(c, peer_user, gid, w.buf, w.len, hist, conv, conv_cap, seq);
out:
	if (w.buf)
		sodium_memzero(w.buf, w.cap);
	cbw_free(&w);
	sodium_memzero(key, sizeof key);
	qmsg_free(keep);
	free(to);
	if (ct)
		fclose(ct);
	fclose(in);
	return rc;
}

/* ---- receiving ---- */

typedef struct dl { xfer x; CURL *h; long code; char range[128]; uint64_t size; bool too_long; } dl;

/* Keeps the answer's Content-Range (a resumed download reports it). */
static size_t on_header(char *buf, size_t sz, size_t n, void *p)
{
	dl *d = p;
	size_t len = sz * n;
	static const char name[] = "content-range:";
	if (len > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
		const char *v = buf + sizeof name - 1;
		size_t vl = len - (sizeof name - 1);
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		snprintf(d->range, sizeof d->range, "%.*s", (int)vl, v);
	}
	return len;
}

static size_t on_body(char *buf, size_t sz, size_t n, void *p)
{
	dl *d = p;
	size_t len = sz * n;
	if (!d->x.started) {
		d->x.started = true;
		curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &d->code);
		if (d->code == 200 && d->x.have > 0) {   /* the range was ignored: from the start */
			if (ftruncate(fileno(d->x.out), 0) != 0 || fseek(d->x.out, 0, SEEK_SET) != 0)
				return 0;
			d->x.have = 0;
		}
	}
	if (d->code != 200 && d->code != 206) {   /* keep the start of an error's body */
		size_t k = len < sizeof d->x.err - 1 - d->x.nerr ? len : sizeof d->x.err - 1 - d->x.nerr;
		memcpy(d->x.err + d->x.nerr, buf, k);
		d->x.nerr += k;
		d->x.err[d->x.nerr] = 0;
		return len;
	}
	if (d->x.have + d->x.written + len > d->size) {   /* more than the pointer says: stop */
		d->too_long = true;
		return 0;
	}
	if (d->x.cut_after >= 0 && d->x.written + len > (uint64_t)d->x.cut_after) {
		size_t k = (size_t)((uint64_t)d->x.cut_after - d->x.written);
		if (k && fwrite(buf, 1, k, d->x.out) != k)
			d->x.wrote_error = true;
		d->x.written += k;
		return 0;   /* drops the connection midway: CURLE_WRITE_ERROR */
	}
	if (fwrite(buf, 1, len, d->x.out) != len) {
		d->x.wrote_error = true;
		return 0;
	}
	d->x.written += len;
	return len;
}

static bool cut_used;   /* the test hook fires once per process */

/* One GET of url into the part file, from what it already holds. CHAT_OK
 * when the part is complete (its size is the pointer's). */
static int fetch(client *c, const char *url, const char *part, uint64_t size)
{
	struct stat sb;
	uint64_t have = stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	if (have > size) {   /* not ours to trust: start over */
		unlink(part);
		have = 0;
	}
	if (have == size)
		return CHAT_OK;
	dl d = { .x = { .c = c, .have = have, .cut_after = -1 }, .size = size };
	const char *cut = getenv("CHAT_CLIENT_TEST_CUT_GET");
	if (cut && !cut_used) {
		cut_used = true;
		d.x.cut_after = strtoll(cut, NULL, 10);
	}
	d.x.out = fopen(part, have ? "r+b" : "wb");
	if (!d.x.out || fseek(d.x.out, 0, SEEK_END) != 0) {
		fprintf(stderr, "chat-client: cannot write %s: %s\n", part, strerror(errno));
		if (d.x.out)
			fclose(d.x.out);
		return CHAT_EIO;
	}
	d.h = media_curl(c, url, &d.x);
	if (!d.h) {
		fclose(d.x.out);
		return CHAT_ENOMEM;
	}
	char range[64];
	if (have) {
		snprintf(range, sizeof range, "%llu-", (unsigned long long)have);
		curl_easy_setopt(d.h, CURLOPT_RANGE, range);
		fprintf(stderr, "chat-client: resuming the download at byte %llu of %llu\n",
		        (unsigned long long)have, (unsigned long long)size);
	}
	curl_easy_setopt(d.h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(d.h, CURLOPT_HEADERDATA, &d);
	curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
	CURLcode cr = curl_easy_perform(d.h);
	if (!d.code)
		curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, &d.code);
	curl_easy_cleanup(d.h);
	bool closed_ok = fclose(d.x.out) == 0;
	if (d.too_long) {
		fprintf(stderr, "chat-client: chat-media sent more than the attachment's %llu bytes\n",
		        (unsigned long long)size);
		unlink(part);
		return CHAT_EINVAL;
	}
	if (d.x.wrote_error || !closed_ok) {
		fprintf(stderr, "chat-client: writing %s failed\n", part);
		return CHAT_EIO;
	}
	if (d.x.cut_after >= 0 && cr == CURLE_WRITE_ERROR) {
		fprintf(stderr, "chat-client: download interrupted after %llu bytes (test hook)\n",
		        (unsigned long long)d.x.written);
		return AGAIN;
	}
	if (cr != CURLE_OK) {
		fprintf(stderr, "chat-client: download failed: %s\n", curl_easy_strerror(cr));
		return AGAIN;
	}
	if (d.code != 200 && d.code != 206) {
		fprintf(stderr, "chat-client: chat-media answered the download with HTTP %ld %s\n", d.code,
		        d.x.err);
		/* 404, 410: the blob is gone; 403 (an expired or stale URL): a new grant */
		return d.code == 410 || d.code == 404 ? CHAT_ENOTFOUND : AGAIN;
	}
	if (have && d.code == 206)
		fprintf(stderr, "chat-client: resumed download: HTTP 206, Content-Range %s\n", d.range);
	have = stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	return have == size ? CHAT_OK : AGAIN;
}

/* A new file under dir named name, or "N-name" when taken: link(2) never
 * replaces a file. The final path goes to out. */
static int place(const char *tmp, const char *dir, const char *name, char *out, size_t cap)
{
	for (int i = 0; i < 1000; i++) {
		if (i == 0)
			snprintf(out, cap, "%s/%s", dir, name);
		else
			snprintf(out, cap, "%s/%d-%s", dir, i, name);
		if (link(tmp, out) == 0)
			return CHAT_OK;
		if (errno != EEXIST)
			break;
	}
	fprintf(stderr, "chat-client: cannot save %s in %s: %s\n", name, dir, strerror(errno));
	return CHAT_EIO;
}

/* Whether an answer's error code is c. */
static bool code_is(const att_resp *r, const char *c)
{
	return r->code && r->code_len == strlen(c) && memcmp(r->code, c, r->code_len) == 0;
}

/* Downloads, checks, decrypts and saves one attachment. CHAT_OK when saved;
 * AGAIN or DOWN when it failed for now (kept pending by the caller: network
 * and HTTP errors, chat-media unreachable, not_ready, rate, internal, a
 * local file that could not be written); any other error is for good (a
 * digest mismatch, a failed decryption, not_found, a malformed pointer or
 * answer). Every failure is reported on stderr. */
static int download(client *c, const char *conv, uint64_t seq, const char *from,
                    const uint8_t *pt, size_t len)
{
	att_ptr p;
	const char *bad = att_ptr_decode(&p, pt, len);
	if (bad) {
		fprintf(stderr, "chat-client: %s #%llu from %s: a bad attachment pointer: %s\n", conv,
		        (unsigned long long)seq, from, bad);
		return CHAT_EINVAL;
	}
	char id[ATT_ID_MAX + 1], part[sizeof c->files + ATT_ID_MAX + 16];
	snprintf(id, sizeof id, "%.*s", (int)p.id_len, p.id);
	if (mkdir(c->files, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "chat-client: cannot make %s: %s\n", c->files, strerror(errno));
		return AGAIN;
	}
	if (c->media_down) {   /* no answer earlier in this run: not again */
		fprintf(stderr, "chat-client: %s #%llu from %s: chat-media did not answer earlier; the "
		        "attachment %.*s waits for the next run\n", conv, (unsigned long long)seq, from,
		        (int)p.id_len, p.id);
		return DOWN;
	}
	snprintf(part, sizeof part, "%s/.part-%s", c->files, id);

	/* download, resuming after an interruption (a fresh grant each time) */
	int rc = AGAIN;
	for (int attempt = 0; attempt < GET_ATTEMPTS && rc == AGAIN; attempt++) {
		uint64_t rid = net_req_begin(&c->net, 1, "get");
		cbw_text(&c->net.w, "id");
		cbw_text(&c->net.w, id);
		att_resp r;
		qmsg *keep = NULL;
		memset(&r, 0, sizeof r);
		rc = media_request(c, rid, &r, &keep);
		if (rc == CHAT_EIO) {   /* no answer: chat-media is not there, no use retrying now */
			c->media_down = true;
			rc = DOWN;
		}
		if (rc == CHAT_OK && (!r.url || r.size != p.size)) {
			fprintf(stderr, "chat-client: chat-media's grant for %s %s\n", id,
			        r.url ? "has another size than the pointer" : "has no url");
			rc = CHAT_EINVAL;
		}
		if (rc == CHAT_EDENIED && (code_is(&r, "not_ready") || code_is(&r, "rate") ||
		                           code_is(&r, "internal")))
			rc = AGAIN;   /* still uploading, too many requests, a server fault: later */
		else if (rc == CHAT_EDENIED && code_is(&r, "not_found"))
			rc = CHAT_ENOTFOUND;
		if (rc == CHAT_OK) {
			char url[ATT_URL_MAX + 1];
			snprintf(url, sizeof url, "%.*s", (int)r.url_len, r.url);
			rc = fetch(c, url, part, p.size);
			if (rc == CHAT_EIO)
				rc = TRANSIENT;   /* the part file could not be written: not now */
		} else if (rc == AGAIN && attempt + 1 < GET_ATTEMPTS) {
			net_pump(&c->net, 1000);
		}
		qmsg_free(keep);
	}
	if (rc == TRANSIENT)
		rc = AGAIN;
	if (rc != CHAT_OK) {
		fprintf(stderr, "chat-client: %s #%llu from %s: the attachment %s could not be downloaded%s\n",
		        conv, (unsigned long long)seq, from, id,
		        rc == AGAIN || rc == DOWN ? " now" :
		        rc == CHAT_ENOTFOUND ? ": chat-media no longer has it (expired or gone)" : "");
		if (rc != AGAIN && rc != DOWN)
			unlink(part);
		return rc;
	}

	/* the digest of what arrived, then the decryption, then the file */
	uint8_t digest[ATT_DIGEST];
	FILE *in = fopen(part, "rb");
	if (!in || att_digest_file(in, digest, NULL) != 0) {
		fprintf(stderr, "chat-client: cannot read %s\n", part);
		if (in)
			fclose(in);
		return AGAIN;
	}
	if (sodium_memcmp(digest, p.digest, ATT_DIGEST) != 0) {
		fclose(in);
		unlink(part);
		fprintf(stderr, "chat-client: %s #%llu from %s: the attachment %s does not match its digest;"
		        " not saved\n", conv, (unsigned long long)seq, from, id);
		return CHAT_EINVAL;
	}
	rewind(in);
	char tmp[sizeof c->files + 32], path[sizeof c->files + 2 * ATT_NAME_MAX];
	snprintf(tmp, sizeof tmp, "%s/.dec-XXXXXX", c->files);
	int fd = mkstemp(tmp);
	FILE *out = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (!out) {
		fprintf(stderr, "chat-client: cannot make a file in %s: %s\n", c->files, strerror(errno));
		if (fd >= 0)
			close(fd);
		fclose(in);
		return AGAIN;
	}
	int drc = att_decrypt_file(in, out, p.key);
	fclose(in);
	if (drc == ATT_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0))
		drc = ATT_EIO;
	fclose(out);
	if (drc != ATT_OK) {
		unlink(tmp);
		if (drc == ATT_EBAD)
			unlink(part);
		fprintf(stderr, "chat-client: %s #%llu from %s: the attachment %s %s; not saved\n", conv,
		        (unsigned long long)seq, from, id,
		        drc == ATT_EBAD ? "does not decrypt" : "could not be written");
		return drc == ATT_EBAD ? CHAT_EINVAL : AGAIN;
	}
	char name[ATT_NAME_MAX + 1];
	if (p.name)
		att_safe_name(name, sizeof name, p.name, p.name_len);
	else
		att_safe_name(name, sizeof name, id, strlen(id));
	rc = place(tmp, c->files, name, path, sizeof path);
	unlink(tmp);
	if (rc != CHAT_OK)
		return AGAIN;
	unlink(part);

	char hist[sizeof path + 8];
	snprintf(hist, sizeof hist, "[file] %s", path);
	state_history(&c->st, conv, seq, from, false, hist, strlen(hist));
	state_save(&c->st);
	/* conv TAB seq TAB from TAB file:PATH [TAB caption]; control characters
	 * of the path and the caption become spaces */
	char cap[ATT_CAPTION_MAX + 1];
	snprintf(cap, sizeof cap, "%.*s", p.caption ? (int)p.caption_len : 0, p.caption ? p.caption : "");
	for (char *q = path; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = ' ';
	for (char *q = cap; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = ' ';
	if (c->interactive)
		printf("[%s #%llu] %s: [file] %s%s%s\n", conv, (unsigned long long)seq, from, path,
		       cap[0] ? " — " : "", cap);
	else
		printf("%s\t%llu\t%s\tfile:%s%s%s\n", conv, (unsigned long long)seq, from, path,
		       p.caption ? "\t" : "", cap);
	fflush(stdout);
	return CHAT_OK;
}

static void say_pending(client *c)
{
	if (c->st.npdl)
		fprintf(stderr, "chat-client: %zu attachment download(s) pending (retried at the next "
		        "connection)\n", c->st.npdl);
}

int media_receive(client *c, const char *conv, uint64_t seq, const char *from, const uint8_t *pt,
                  size_t len)
{
	int rc = download(c, conv, seq, from, pt, len);
	if (rc != AGAIN && rc != DOWN)
		return rc;
	/* failed for now: the pointer is kept (the message is acknowledged all
	 * the same, the queue must not wait for chat-media) */
	if (!state_pending_add(&c->st, conv, seq, from, pt, len)) {
		fprintf(stderr, "chat-client: %s #%llu from %s: %d attachment downloads are already "
		        "pending; this one is not kept and is lost to this device\n", conv,
		        (unsigned long long)seq, from, PENDING_DL_MAX);
		return CHAT_EIO;
	}
	state_save(&c->st);
	say_pending(c);
	return CHAT_EIO;
}

void media_retry_pending(client *c)
{
	if (!c->st.npdl)
		return;
	fprintf(stderr, "chat-client: retrying %zu pending attachment download(s)\n", c->st.npdl);
	size_t i = 0;
	while (i < c->st.npdl) {
		pending_dl *p = &c->st.pdl[i];
		int rc = download(c, p->conv, p->seq, p->from, p->pt, p->len);
		if (rc == AGAIN || rc == DOWN) {
			i++;
			continue;
		}
		if (rc != CHAT_OK)
			fprintf(stderr, "chat-client: %s #%llu from %s: dropped from the pending downloads\n",
			        p->conv, (unsigned long long)p->seq, p->from);
		state_pending_drop(&c->st, i);
		state_save(&c->st);
	}
	if (c->st.npdl)
		say_pending(c);
	else
		fprintf(stderr, "chat-client: no attachment download pending\n");
}
