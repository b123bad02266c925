// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* js_ops.c — the JetStream backend's operations that are KV or log only:
 * accounts, prefs, push targets, contacts, the dedup claim and the
 * conversation log's seq assignment (docs/CLUSTER.md, "A send" and "Every
 * store.h function on JetStream"). Each is a state machine of js_op steps
 * on the owner thread; js_internal.h says how replies find their step. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "js_internal.h"

/* ---- keys ---- */

static bool devkey(char *out, size_t cap, const char *pfx, const char *user, const char *device)
{
	char u[JS_TOKEN_MAX + 1], d[JS_TOKEN_MAX + 1];
	if (!js_enc_id(u, sizeof(u), user, strlen(user)) || !js_enc_id(d, sizeof(d), device, strlen(device)))
		return false;
	int n = snprintf(out, cap, "%s%s%s.%s", pfx ? pfx : "", pfx ? "." : "", u, d);
	return n > 0 && (size_t)n < cap;
}

static bool onekey(char *out, size_t cap, const char *pfx, const char *id)
{
	char t[JS_TOKEN_MAX + 1];
	if (!js_enc_id(t, sizeof(t), id, strlen(id)))
		return false;
	int n = snprintf(out, cap, "%s%s%s", pfx ? pfx : "", pfx ? "." : "", t);
	return n > 0 && (size_t)n < cap;
}

static bool claimkey(char *out, size_t cap, const char *from, const store_cid *cid)
{
	char a[JS_ADDR_ENC_MAX + 1], c[JS_CID_ENC_MAX + 1];
	if (!js_enc_addr(a, sizeof(a), from) || !js_enc_cid(c, sizeof(c), cid))
		return false;
	int n = snprintf(out, cap, "%s.%s", a, c);
	return n > 0 && (size_t)n < cap;
}

static void kv_subject(jstore *js, char *out, size_t cap, const char *bucket, const char *key)
{
	snprintf(out, cap, "$KV.%s_%s.%s", js->prefix, bucket, key);
}

static void kv_stream(jstore *js, char *out, size_t cap, const char *bucket)
{
	snprintf(out, cap, "KV_%s_%s", js->prefix, bucket);
}

static natsMsg *kv_get_leader(jstore *js, const char *bucket, const char *key)
{
	char stream[96], subj[600];
	kv_stream(js, stream, sizeof(stream), bucket);
	kv_subject(js, subj, sizeof(subj), bucket, key);
	return js_req_last_leader(js, stream, subj);
}

/* ---- generic KV operations: put, create, delete, get ---- */

static void fail_done(jstore *js, js_op *op, int rc)
{
	jstore_done_cb cb = op->cb.done;
	void *arg = op->arg;
	js_op_end(js, op);
	if (cb)
		cb(arg, rc);
}

static void finish_done(jstore *js, js_op *op, int rc)
{
	fail_done(js, op, rc);
}

/* A new op: its step, its failure and the caller's arg; the caller sets
 * the callback of its own type in op->cb. */
static js_op *op_new(jstore *js, js_step step, js_fail fail, void *arg)
{
	js_op *op = js_op_new(js);
	if (op) {
		op->step = step;
		op->fail = fail;
		op->arg = arg;
	}
	return op;
}

/* An op that ends in a jstore_done_cb (fail_done). */
static js_op *done_op_new(jstore *js, js_step step, jstore_done_cb cb, void *arg)
{
	js_op *op = op_new(js, step, fail_done, arg);
	if (op)
		op->cb.done = cb;
	return op;
}

/* A publish's answer; JS_RETRY when it asked to be sent again (done: keep the op). */
static enum js_reply api_reply(jstore *js, js_op *op, natsMsg *m, js_api_answer *a)
{
	enum js_reply r = js_api_reply(js, m, a);
	if (r == JS_RETRY)
		js_retry_soon(js, op);
	return r;
}

/* A publish's answer, for a step that wants only "stored" or an error. */
static void step_written(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	switch (api_reply(js, op, m, &a)) {
	case JS_RETRY:
		return;
	case JS_BAD:
		finish_done(js, op, CHAT_EIO);
		return;
	default:
		break;
	}
	if (a.ok)
		finish_done(js, op, CHAT_OK);
	else if (a.err_code == 10071)
		finish_done(js, op, CHAT_EEXIST);
	else
		finish_done(js, op, CHAT_EIO);
}

static int start(jstore *js, js_op *op, natsMsg *m)
{
	if (!m) {
		free(op);
		return CHAT_ENOMEM;
	}
	js_send(js, op, m);
	return CHAT_OK;
}

static int kv_write(jstore *js, const char *bucket, const char *key, const void *v, size_t len,
                    bool create, bool del, js_step step, jstore_done_cb cb, void *arg, js_op **opp)
{
	char subj[600];
	js_op *op = done_op_new(js, step ? step : step_written, cb, arg);
	if (!op)
		return CHAT_ENOMEM;
	snprintf(op->bucket, sizeof(op->bucket), "%s", bucket);
	snprintf(op->key, sizeof(op->key), "%s", key);
	kv_subject(js, subj, sizeof(subj), bucket, key);
	natsMsg *m = js_req_pub(js, subj, v, len, create, NULL);
	if (m && del)
		natsMsgHeader_Set(m, "KV-Operation", "DEL");
	if (opp)
		*opp = op;
	return start(js, op, m);
}

/* A KV get: the step gets the reply; a not-found (or a delete marker) and
 * a found value are told apart by js_get_reply(js, m, true). */
static int kv_get(jstore *js, js_op *op, const char *bucket, const char *key)
{
	snprintf(op->bucket, sizeof(op->bucket), "%s", bucket);
	snprintf(op->key, sizeof(op->key), "%s", key);
	return start(js, op, js_req_kv_get(js, bucket, key));
}

/* A get's answer that asks to be sent again: keep the op. */
static bool get_retry(jstore *js, js_op *op, enum js_reply r)
{
	if (r != JS_RETRY)
		return false;
	js_retry_soon(js, op);
	return true;
}

/* ---- accounts ---- */

static void fail_cred(jstore *js, js_op *op, int rc)
{
	jstore_cred_cb cb = op->cb.cred;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, NULL, STORE_ROLE_SERVICE);
}

static void step_cred_get(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	uint8_t hash[STORE_HASH_LEN];
	enum store_role role = STORE_ROLE_SERVICE;
	if (get_retry(js, op, r))
		return;
	if (r == JS_NOTFOUND)
		return fail_cred(js, op, CHAT_ENOTFOUND);
	if (r != JS_FOUND)
		return fail_cred(js, op, CHAT_EIO);
	if (js_cred_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), hash, &role) !=
	    CHAT_OK)
		return fail_cred(js, op, CHAT_ECORRUPT);
	jstore_cred_cb cb = op->cb.cred;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, CHAT_OK, hash, role);
}

static int cred_get(jstore *js, const char *key, jstore_cred_cb cb, void *arg)
{
	js_op *op = op_new(js, step_cred_get, fail_cred, arg);
	if (!op)
		return CHAT_ENOMEM;
	op->cb.cred = cb;
	return kv_get(js, op, "acct", key);
}

/* A create that found the key taken: it is taken for real, or only by the
 * delete marker of a removed record. The second case is an update on the
 * marker's revision — not atomic under concurrency on 2.9.10, which is
 * acceptable only because it re-adds a removed account (an admin's
 * command, never two at once for one name); see docs/CLUSTER.md. */
static void step_create(jstore *js, js_op *op, natsMsg *m);

static void step_create_recheck(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	if (get_retry(js, op, r))
		return;
	if (r == JS_NOTFOUND) { /* removed since the refusal: create again */
		char subj[600];
		kv_subject(js, subj, sizeof(subj), op->bucket, op->key);
		op->step = step_create;
		js_send(js, op, js_req_pub(js, subj, op->body, op->body_len, true, NULL));
		return;
	}
	if (r != JS_FOUND)
		return finish_done(js, op, CHAT_EIO);
	const char *kvop = NULL, *seq = NULL;
	uint64_t rev;
	natsMsgHeader_Get(m, "KV-Operation", &kvop);
	if (!kvop || (strcmp(kvop, "DEL") && strcmp(kvop, "PURGE")))
		return finish_done(js, op, CHAT_EEXIST);
	if (natsMsgHeader_Get(m, "Nats-Sequence", &seq) != NATS_OK || !seq ||
	    !js_parse_u64(seq, strlen(seq), &rev))
		return finish_done(js, op, CHAT_ECORRUPT);
	char subj[600], rs[24];
	kv_subject(js, subj, sizeof(subj), op->bucket, op->key);
	natsMsg *p = js_req_pub(js, subj, op->body, op->body_len, false, NULL);
	snprintf(rs, sizeof(rs), "%" PRIu64, rev);
	if (p)
		natsMsgHeader_Set(p, "Nats-Expected-Last-Subject-Sequence", rs);
	op->step = step_written;
	js_send(js, op, p);
}

static void step_create(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = js_api_reply(js, m, &a);
	if (r == JS_FOUND && !a.ok && a.err_code == 10071) {
		op->step = step_create_recheck;
		/* at the leader: this read decides (a replica may not have the
		 * record that refused the create yet: seen in the test) */
		js_send(js, op, kv_get_leader(js, op->bucket, op->key));
		return;
	}
	step_written(js, op, m);
}

static int cred_create(jstore *js, const char *key, const uint8_t *v, size_t len, jstore_done_cb cb,
                       void *arg)
{
	js_op *op = NULL;
	uint8_t *copy = malloc(len);
	if (!copy)
		return CHAT_ENOMEM;
	memcpy(copy, v, len);
	int rc = kv_write(js, "acct", key, v, len, true, false, step_create, cb, arg, &op);
	if (rc == CHAT_OK) {
		op->body = copy;
		op->body_len = len;
	} else {
		free(copy);
	}
	return rc;
}

int jstore_device_add(jstore *js, const char *user, const char *device,
                      const uint8_t hash[STORE_HASH_LEN], jstore_done_cb cb, void *arg)
{
	char key[320];
	uint8_t v[64];
	if (!devkey(key, sizeof(key), "dev", user, device))
		return CHAT_EINVAL;
	size_t n = js_cred_encode(v, sizeof(v), hash, 0, STORE_ROLE_SERVICE, false);
	return cred_create(js, key, v, n, cb, arg);
}

int jstore_device_get(jstore *js, const char *user, const char *device, jstore_cred_cb cb, void *arg)
{
	char key[320];
	if (!devkey(key, sizeof(key), "dev", user, device))
		return CHAT_EINVAL;
	return cred_get(js, key, cb, arg);
}

/* rehash: read (CHAT_ENOTFOUND), keep the role, put. */
static void step_rehash_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	enum store_role role = STORE_ROLE_SERVICE;
	if (get_retry(js, op, r))
		return;
	if (r == JS_NOTFOUND)
		return finish_done(js, op, CHAT_ENOTFOUND);
	if (r != JS_FOUND || js_cred_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
	                                    NULL, &role) != CHAT_OK)
		return finish_done(js, op, r == JS_FOUND ? CHAT_ECORRUPT : CHAT_EIO);
	uint8_t v[64];
	char subj[600];
	size_t n = js_cred_encode(v, sizeof(v), op->hash, 0, role, op->role);
	kv_subject(js, subj, sizeof(subj), "acct", op->key);
	op->step = step_written;
	js_send(js, op, js_req_pub(js, subj, v, n, false, NULL));
}

static int cred_rehash(jstore *js, const char *key, const uint8_t hash[STORE_HASH_LEN], bool service,
                       jstore_done_cb cb, void *arg)
{
	js_op *op = done_op_new(js, step_rehash_read, cb, arg);
	if (!op)
		return CHAT_ENOMEM;
	op->role = service;
	memcpy(op->hash, hash, STORE_HASH_LEN);
	return kv_get(js, op, "acct", key);
}

int jstore_device_rehash(jstore *js, const char *user, const char *device,
                         const uint8_t hash[STORE_HASH_LEN], jstore_done_cb cb, void *arg)
{
	char key[320];
	if (!devkey(key, sizeof(key), "dev", user, device))
		return CHAT_EINVAL;
	return cred_rehash(js, key, hash, false, cb, arg);
}

/* remove: the account's delete marker (the commit point every watcher
 * sees), then the push target's. The queue purges come with the queues. */
static void step_remove_push(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = api_reply(js, op, m, &a);
	if (r == JS_RETRY)
		return;
	if (r != JS_FOUND || !a.ok)
		return finish_done(js, op, CHAT_EIO);
	char subj[600];
	kv_subject(js, subj, sizeof(subj), "push", op->key2);
	natsMsg *p = js_req_pub(js, subj, NULL, 0, false, NULL);
	if (p)
		natsMsgHeader_Set(p, "KV-Operation", "DEL");
	op->step = step_written;
	js_send(js, op, p);
}

int jstore_device_remove(jstore *js, const char *user, const char *device, jstore_done_cb cb, void *arg)
{
	char key[320];
	js_op *op = NULL;
	if (!devkey(key, sizeof(key), "dev", user, device))
		return CHAT_EINVAL;
	int rc = kv_write(js, "acct", key, NULL, 0, false, true, step_remove_push, cb, arg, &op);
	if (rc == CHAT_OK)
		devkey(op->key2, sizeof(op->key2), NULL, user, device);
	return rc;
}

int jstore_service_add(jstore *js, const char *name, const uint8_t hash[STORE_HASH_LEN],
                       enum store_role role, jstore_done_cb cb, void *arg)
{
	char key[320];
	uint8_t v[64];
	if (!onekey(key, sizeof(key), "svc", name) || role > STORE_ROLE_MAX)
		return CHAT_EINVAL;
	size_t n = js_cred_encode(v, sizeof(v), hash, 0, role, true);
	return cred_create(js, key, v, n, cb, arg);
}

int jstore_service_get(jstore *js, const char *name, jstore_cred_cb cb, void *arg)
{
	char key[320];
	if (!onekey(key, sizeof(key), "svc", name))
		return CHAT_EINVAL;
	return cred_get(js, key, cb, arg);
}

int jstore_service_rehash(jstore *js, const char *name, const uint8_t hash[STORE_HASH_LEN],
                          jstore_done_cb cb, void *arg)
{
	char key[320];
	if (!onekey(key, sizeof(key), "svc", name))
		return CHAT_EINVAL;
	return cred_rehash(js, key, hash, true, cb, arg);
}

int jstore_service_remove(jstore *js, const char *name, jstore_done_cb cb, void *arg)
{
	char key[320];
	if (!onekey(key, sizeof(key), "svc", name))
		return CHAT_EINVAL;
	return kv_write(js, "acct", key, NULL, 0, false, true, NULL, cb, arg, NULL);
}

int jstore_admin_get(jstore *js, jstore_cred_cb cb, void *arg)
{
	return cred_get(js, "admin", cb, arg);
}

int jstore_admin_set(jstore *js, const uint8_t hash[STORE_HASH_LEN], jstore_done_cb cb, void *arg)
{
	uint8_t v[64];
	size_t n = js_cred_encode(v, sizeof(v), hash, 0, STORE_ROLE_SERVICE, false);
	return kv_write(js, "acct", "admin", v, n, false, false, NULL, cb, arg, NULL);
}

/* token key: create a random one; taken: read the winner's. */
static void fail_key(jstore *js, js_op *op, int rc)
{
	jstore_key_cb cb = op->cb.key;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, NULL);
}

static void step_key_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	if (get_retry(js, op, r))
		return;
	if (r != JS_FOUND)
		return fail_key(js, op, CHAT_EIO);
	if (natsMsg_GetDataLength(m) != STORE_KEY_LEN)
		return fail_key(js, op, CHAT_ECORRUPT);
	uint8_t key[STORE_KEY_LEN];
	memcpy(key, natsMsg_GetData(m), STORE_KEY_LEN);
	jstore_key_cb cb = op->cb.key;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, CHAT_OK, key);
	sodium_memzero(key, sizeof(key));
}

static void step_key_create(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = api_reply(js, op, m, &a);
	if (r == JS_RETRY)
		return;
	if (r != JS_FOUND || (!a.ok && a.err_code != 10071))
		return fail_key(js, op, CHAT_EIO);
	/* ours or the first node's: read what is stored (one answer for all) */
	op->step = step_key_read;
	js_send(js, op, kv_get_leader(js, "acct", "token_key")); /* the winner's, for sure */
}

int jstore_token_key(jstore *js, jstore_key_cb cb, void *arg)
{
	char subj[600];
	uint8_t key[STORE_KEY_LEN];
	js_op *op = op_new(js, step_key_create, fail_key, arg);
	if (!op)
		return CHAT_ENOMEM;
	op->cb.key = cb;
	randombytes_buf(key, sizeof(key));
	kv_subject(js, subj, sizeof(subj), "acct", "token_key");
	int rc = start(js, op, js_req_pub(js, subj, key, sizeof(key), true, NULL));
	sodium_memzero(key, sizeof(key));
	return rc;
}

/* ---- prefs ---- */

static void fail_prefs(jstore *js, js_op *op, int rc)
{
	jstore_prefs_cb cb = op->cb.prefs;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, NULL);
}

static void step_prefs_get(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	store_prefs p = { true, STORE_PRESENCE_EVERYONE }; /* the defaults */
	if (get_retry(js, op, r))
		return;
	if (r == JS_BAD)
		return fail_prefs(js, op, CHAT_EIO);
	if (r == JS_FOUND &&
	    js_prefs_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &p) != CHAT_OK)
		return fail_prefs(js, op, CHAT_ECORRUPT);
	jstore_prefs_cb cb = op->cb.prefs;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, CHAT_OK, &p);
}

int jstore_prefs_get(jstore *js, const char *user, jstore_prefs_cb cb, void *arg)
{
	char key[320];
	if (!onekey(key, sizeof(key), NULL, user))
		return CHAT_EINVAL;
	js_op *op = op_new(js, step_prefs_get, fail_prefs, arg);
	if (!op)
		return CHAT_ENOMEM;
	op->cb.prefs = cb;
	return kv_get(js, op, "prefs", key);
}

int jstore_prefs_set(jstore *js, const char *user, const store_prefs *p, jstore_done_cb cb, void *arg)
{
	char key[320];
	uint8_t v[3];
	if (!onekey(key, sizeof(key), NULL, user) || p->presence > STORE_PRESENCE_NOBODY)
		return CHAT_EINVAL;
	return kv_write(js, "prefs", key, v, js_prefs_encode(v, p), false, false, NULL, cb, arg, NULL);
}

/* ---- push targets ---- */

static void fail_push(jstore *js, js_op *op, int rc)
{
	jstore_push_cb cb = op->cb.push;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, NULL);
}

static void step_push_get(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	store_push p;
	if (get_retry(js, op, r))
		return;
	if (r == JS_NOTFOUND)
		return fail_push(js, op, CHAT_ENOTFOUND);
	if (r != JS_FOUND)
		return fail_push(js, op, CHAT_EIO);
	if (js_push_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &p) != CHAT_OK)
		return fail_push(js, op, CHAT_ECORRUPT);
	jstore_push_cb cb = op->cb.push;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, CHAT_OK, &p); /* p.token points into m, alive until the step returns */
}

int jstore_push_set(jstore *js, const char *user, const char *device, const store_push *p,
                    jstore_done_cb cb, void *arg)
{
	char key[320];
	uint8_t *v = malloc(3 + STORE_PUSH_TOKEN_MAX);
	if (!v)
		return CHAT_ENOMEM;
	size_t n = js_push_encode(v, 3 + STORE_PUSH_TOKEN_MAX, p);
	int rc = CHAT_EINVAL;
	if (n && devkey(key, sizeof(key), NULL, user, device))
		rc = kv_write(js, "push", key, v, n, false, false, NULL, cb, arg, NULL);
	free(v);
	return rc;
}

int jstore_push_get(jstore *js, const char *user, const char *device, jstore_push_cb cb, void *arg)
{
	char key[320];
	if (!devkey(key, sizeof(key), NULL, user, device))
		return CHAT_EINVAL;
	js_op *op = op_new(js, step_push_get, fail_push, arg);
	if (!op)
		return CHAT_ENOMEM;
	op->cb.push = cb;
	return kv_get(js, op, "push", key);
}

int jstore_push_clear(jstore *js, const char *user, const char *device, jstore_done_cb cb, void *arg)
{
	char key[320];
	if (!devkey(key, sizeof(key), NULL, user, device))
		return CHAT_EINVAL;
	return kv_write(js, "push", key, NULL, 0, false, true, NULL, cb, arg, NULL);
}

/* ---- contacts ---- */

static void step_contact_second(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = api_reply(js, op, m, &a);
	if (r == JS_RETRY)
		return;
	if (r != JS_FOUND || !a.ok)
		return finish_done(js, op, CHAT_EIO);
	char subj[600];
	kv_subject(js, subj, sizeof(subj), "contacts", op->key2);
	op->step = step_written;
	js_send(js, op, js_req_pub(js, subj, "", 0, false, NULL));
}

int jstore_contact_add(jstore *js, const char *a, const char *b, jstore_done_cb cb, void *arg)
{
	char k1[320];
	js_op *op = NULL;
	if (!devkey(k1, sizeof(k1), NULL, a, b) || !strcmp(a, b))
		return CHAT_EINVAL;
	int rc = kv_write(js, "contacts", k1, "", 0, false, false, step_contact_second, cb, arg, &op);
	if (rc == CHAT_OK)
		devkey(op->key2, sizeof(op->key2), NULL, b, a);
	return rc;
}

static void step_contact_get(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	if (get_retry(js, op, r))
		return;
	finish_done(js, op, r == JS_FOUND ? CHAT_OK : r == JS_NOTFOUND ? CHAT_ENOTFOUND : CHAT_EIO);
}

int jstore_contact_get(jstore *js, const char *a, const char *b, jstore_done_cb cb, void *arg)
{
	char key[320];
	if (!devkey(key, sizeof(key), NULL, a, b))
		return CHAT_EINVAL;
	js_op *op = done_op_new(js, step_contact_get, cb, arg);
	if (!op)
		return CHAT_ENOMEM;
	return kv_get(js, op, "contacts", key);
}

/* ---- the dedup claim ---- */

static void fail_claim(jstore *js, js_op *op, int rc)
{
	jstore_claim_cb cb = op->cb.claim;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, NULL, 0);
}

static void claim_result(jstore *js, js_op *op, int rc, const char *conv, uint64_t seq0)
{
	jstore_claim_cb cb = op->cb.claim;
	void *arg = op->arg;
	char c[CHAT_CONV_MAX + 1];
	snprintf(c, sizeof(c), "%s", conv);
	js_op_end(js, op);
	cb(arg, rc, c, seq0);
}

static void claim_publish(jstore *js, js_op *op);

/* The claim's key was taken: read it. Ours (our nonce: an earlier attempt
 * of this very call landed, its answer lost) is a win, another's is the
 * earlier send. Not there (removed meanwhile, or a replica behind): try the
 * create again. */
static void step_claim_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	js_claim c;
	if (get_retry(js, op, r))
		return;
	if (r == JS_NOTFOUND && op->stage == 1) /* jstore_dedup_get */
		return fail_claim(js, op, CHAT_ENOTFOUND);
	if (r == JS_NOTFOUND) {
		claim_publish(js, op);
		return;
	}
	if (r != JS_FOUND)
		return fail_claim(js, op, CHAT_EIO);
	if (js_claim_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &c) != CHAT_OK)
		return fail_claim(js, op, CHAT_ECORRUPT);
	if (op->stage == 1) /* jstore_dedup_get */
		return claim_result(js, op, CHAT_OK, c.conv, c.seq0);
	claim_result(js, op, c.nonce == op->nonce ? CHAT_OK : CHAT_EEXIST, c.conv, c.seq0);
}

static void step_claim(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = api_reply(js, op, m, &a);
	if (r == JS_RETRY)
		return;
	if (r != JS_FOUND)
		return fail_claim(js, op, CHAT_EIO);
	if (a.ok) /* created (a duplicate: by an earlier attempt of this call, same nonce) */
		return claim_result(js, op, CHAT_OK, op->conv, op->seq0);
	if (a.err_code != 10071)
		return fail_claim(js, op, CHAT_EIO);
	op->step = step_claim_read;
	js_send(js, op, kv_get_leader(js, "dedup", op->key)); /* decides: at the leader */
}

static void claim_publish(jstore *js, js_op *op)
{
	js_claim c;
	uint8_t v[256];
	char subj[600], msgid[600];
	memset(&c, 0, sizeof(c));
	snprintf(c.conv, sizeof(c.conv), "%s", op->conv);
	snprintf(c.node, sizeof(c.node), "%s", js->node);
	c.seq0 = op->seq0;
	c.ts = op->ts;
	c.nonce = op->nonce;
	size_t n = js_claim_encode(v, sizeof(v), &c);
	kv_subject(js, subj, sizeof(subj), "dedup", op->key);
	snprintf(msgid, sizeof(msgid), "c.%s.%016" PRIx64, op->key, op->nonce);
	op->step = step_claim;
	js_send(js, op, n ? js_req_pub(js, subj, v, n, true, msgid) : NULL);
}

int jstore_dedup_claim(jstore *js, const char *from, const store_cid *cid, const char *conv,
                       uint64_t seq0, jstore_claim_cb cb, void *arg)
{
	char key[320];
	if (!claimkey(key, sizeof(key), from, cid) || !conv || !*conv || strlen(conv) > CHAT_CONV_MAX ||
	    seq0 == 0)
		return CHAT_EINVAL;
	js_op *op = op_new(js, NULL, fail_claim, arg); /* claim_publish sets the step */
	if (!op)
		return CHAT_ENOMEM;
	op->cb.claim = cb;
	snprintf(op->key, sizeof(op->key), "%s", key);
	snprintf(op->conv, sizeof(op->conv), "%s", conv);
	op->seq0 = seq0;
	op->nonce = ((uint64_t)randombytes_random() << 32) | randombytes_random();
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	op->ts = (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
	claim_publish(js, op);
	return CHAT_OK;
}

int jstore_dedup_get(jstore *js, const char *from, const store_cid *cid, jstore_claim_cb cb, void *arg)
{
	char key[320];
	if (!claimkey(key, sizeof(key), from, cid))
		return CHAT_EINVAL;
	js_op *op = op_new(js, step_claim_read, fail_claim, arg);
	if (!op)
		return CHAT_ENOMEM;
	op->cb.claim = cb;
	op->stage = 1;
	return kv_get(js, op, "dedup", key);
}

static void step_release_deleted(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = api_reply(js, op, m, &a);
	if (r == JS_RETRY)
		return;
	/* already gone (another sweeper, or our earlier attempt): 10057, or
	 * 10043 "sequence not found" (seen when the read came just after
	 * another release's delete) */
	finish_done(js, op, r == JS_FOUND && (a.ok || a.err_code == 10057 || a.err_code == 10043) ? CHAT_OK : CHAT_EIO);
}

static void step_release_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	const char *s = NULL;
	uint64_t seq;
	char stream[96];
	if (get_retry(js, op, r))
		return;
	if (r == JS_NOTFOUND)
		return finish_done(js, op, CHAT_OK);
	if (r != JS_FOUND)
		return finish_done(js, op, CHAT_EIO);
	if (natsMsgHeader_Get(m, "Nats-Sequence", &s) != NATS_OK || !s || !js_parse_u64(s, strlen(s), &seq))
		return finish_done(js, op, CHAT_ECORRUPT);
	kv_stream(js, stream, sizeof(stream), "dedup");
	op->step = step_release_deleted;
	js_send(js, op, js_req_delete(js, stream, seq));
}

int jstore_dedup_release(jstore *js, const char *from, const store_cid *cid, jstore_done_cb cb, void *arg)
{
	char key[320];
	if (!claimkey(key, sizeof(key), from, cid))
		return CHAT_EINVAL;
	js_op *op = done_op_new(js, step_release_read, cb, arg);
	if (!op)
		return CHAT_ENOMEM;
	/* at the leader: a replica behind would say "gone" and leave the claim */
	return start(js, op, kv_get_leader(js, "dedup", key));
}

/* ---- the conversation log ---- */

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static js_conv *conv_of(jstore *js, const char *conv, bool create)
{
	uint32_t b = hash_str(conv) % JS_CONV_BUCKETS;
	for (js_conv *c = js->convs[b]; c; c = c->next)
		if (!strcmp(c->conv, conv))
			return c;
	if (!create)
		return NULL;
	js_conv *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->conv, sizeof(c->conv), "%s", conv);
	c->next = js->convs[b];
	js->convs[b] = c;
	return c;
}

js_conv *js_conv_get(jstore *js, const char *conv)
{
	return conv_of(js, conv, true);
}

void js_kv_subject(jstore *js, char *out, size_t cap, const char *bucket, const char *key)
{
	kv_subject(js, out, cap, bucket, key);
}

void jstore_forget_head(jstore *js, const char *conv)
{
	js_conv *c = conv_of(js, conv, false);
	if (c)
		c->head_known = false;
}

static void log_subject(jstore *js, const js_op *op, uint64_t n, char *out, size_t cap)
{
	snprintf(out, cap, "%s.log.%s.%" PRIu64, js->prefix, op->key, n);
}

static void log_stream(jstore *js, char *out, size_t cap)
{
	js_stream_name(js, out, cap, "LOG");
}

/* A read of log.<conv>.<n>: at the leader where the answer must decide. */
natsMsg *js_log_req(jstore *js, const js_op *op, uint64_t n, bool leader)
{
	char stream[96], subj[600];
	log_stream(js, stream, sizeof(stream));
	log_subject(js, op, n, subj, sizeof(subj));
	return leader ? js_req_last_leader(js, stream, subj) : js_req_last(js, stream, subj);
}

static natsMsg *log_req(jstore *js, const js_op *op, uint64_t n, bool leader)
{
	return js_log_req(js, op, n, leader);
}

static void log_next(jstore *js, js_conv *c);

/* The end of a writer (an append, a send): the head cache, its report
 * (op->log_done ends op), then the conversation's next writer. */
void js_log_finish(jstore *js, js_op *op, int rc, uint64_t seq)
{
	js_conv *c = op->cv;
	if (rc == CHAT_OK && (!c->head_known || seq > c->head)) {
		c->head = seq;
		c->head_known = true;
	} else if (rc != CHAT_OK) {
		c->head_known = false; /* probe again next time */
	}
	c->busy = false;
	op->log_done(js, op, rc, seq);
	if (!c->busy)
		log_next(js, c);
}

static void log_finish(jstore *js, js_op *op, int rc, uint64_t seq)
{
	js_log_finish(js, op, rc, seq);
}

/* jstore_log_append's report. */
static void append_done(jstore *js, js_op *op, int rc, uint64_t seq)
{
	jstore_seq_cb cb = op->cb.seq;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, seq);
}

static void fail_log(jstore *js, js_op *op, int rc)
{
	log_finish(js, op, rc, 0);
}

/* The hint of the conversation's head: a plain put with every 8th seq. */
static void put_hint(jstore *js, const js_op *op, uint64_t seq)
{
	char subj[600], v[24];
	int n = snprintf(v, sizeof(v), "%" PRIu64, seq);
	kv_subject(js, subj, sizeof(subj), "heads", op->key);
	natsConnection_Publish(js->nc, subj, v, n); /* a hint: no answer awaited */
}

bool js_entry_is_ours(const js_op *op, natsMsg *m)
{
	const char *from = NULL, *cid = NULL;
	char want[JS_CID_ENC_MAX + 1];
	if (natsMsgHeader_Get(m, "Chat-From", &from) != NATS_OK || natsMsgHeader_Get(m, "Chat-Cid", &cid) != NATS_OK)
		return false;
	return js_enc_cid(want, sizeof(want), &op->cid) && !strcmp(from, op->from) && !strcmp(cid, want);
}

static void step_log_probe(jstore *js, js_op *op, natsMsg *m);

/* log.<conv>.<seq> holds this (from, cid): the writer's success. */
static void log_ours(jstore *js, js_op *op, natsMsg *m, uint64_t seq)
{
	if (op->log_ours)
		return op->log_ours(js, op, m, seq);
	log_finish(js, op, CHAT_OK, seq);
}

/* After a conflict: is log.<conv>.<n> our own entry (an earlier attempt of
 * ours, or another node finishing this send)? */
static void step_log_conflict_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	if (get_retry(js, op, r))
		return;
	if (r == JS_FOUND && js_entry_is_ours(op, m))
		return log_ours(js, op, m, op->n);
	if (r == JS_BAD)
		return log_finish(js, op, CHAT_EIO, 0);
	if (++op->conflicts > JS_CONFLICTS_MAX) {
		js_seterr(js, "%s: %d conflicts in a row", op->conv, op->conflicts);
		return log_finish(js, op, CHAT_EIO, 0);
	}
	if (r != JS_FOUND) /* a leader still catching up: the create is refused again and read again */
		return js_log_publish(js, op);
	/* Another's: probe forward to the first free seq before publishing
	 * again. Publishing at n + 1 straight away, a node behind a busy writer
	 * elsewhere chased it for ever (CI: 17 conflicts in a row, 21 times):
	 * the writer appends once per round trip, the chaser needed two a step
	 * (publish, conflict read). A direct read (0.2–0.4 ms) is quicker than an
	 * append (~0.8 ms), so the probe catches up; a stale miss only costs one
	 * more conflict. (Not the wildcard last_by_subj log.<conv>.*: it scans,
	 * 28–62 ms among 200k subjects.) */
	op->n++;
	op->step = step_log_probe;
	js_send(js, op, log_req(js, op, op->n, false));
}

/* A Duplicate (Nats-Msg-Id m.<from>.<cid> seen within the window): the
 * entry exists at the stream seq the answer gives; its subject says its seq. */
static void step_log_dup_read(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	const char *subj = NULL;
	uint64_t seq;
	if (get_retry(js, op, r))
		return;
	if (r != JS_FOUND || natsMsgHeader_Get(m, "Nats-Subject", &subj) != NATS_OK || !subj ||
	    !js_subject_last_u64(subj, strlen(subj), &seq))
		return log_finish(js, op, r == JS_FOUND ? CHAT_ECORRUPT : CHAT_EIO, 0);
	log_ours(js, op, m, seq);
}

static void step_log_published(jstore *js, js_op *op, natsMsg *m)
{
	js_api_answer a;
	enum js_reply r = api_reply(js, op, m, &a);
	char stream[96];
	if (r == JS_RETRY)
		return;
	if (r != JS_FOUND)
		return log_finish(js, op, CHAT_EIO, 0);
	if (a.ok && a.duplicate) {
		log_stream(js, stream, sizeof(stream));
		op->step = step_log_dup_read;
		js_send(js, op, js_req_by_seq(js, stream, a.seq));
		return;
	}
	if (a.ok) {
		if (op->n % 8 == 0)
			put_hint(js, op, op->n);
		return log_finish(js, op, CHAT_OK, op->n);
	}
	if (a.err_code != 10071)
		return log_finish(js, op, CHAT_EIO, 0);
	js->st.log_conflicts++;
	op->step = step_log_conflict_read;
	/* at the leader: the entry that refused us exists there, while a
	 * direct get may be answered by a replica that has not applied it yet
	 * (seen after a leader kill: one replica catching up answered "no
	 * message" round after round). Conflicts are rare; this read decides. */
	js_send(js, op, log_req(js, op, op->n, true));
}

void js_log_publish(jstore *js, js_op *op)
{
	char subj[600], msgid[600], cid[JS_CID_ENC_MAX + 1], ts[24], from[JS_ADDR_ENC_MAX + 1];
	log_subject(js, op, op->n, subj, sizeof(subj));
	js_enc_cid(cid, sizeof(cid), &op->cid);
	js_enc_addr(from, sizeof(from), op->from);
	snprintf(msgid, sizeof(msgid), "m.%s.%s", from, cid);
	snprintf(ts, sizeof(ts), "%" PRIu64, op->ts);
	natsMsg *m = js_req_pub(js, subj, op->body, op->body_len, true, msgid);
	if (m) {
		natsMsgHeader_Set(m, "Chat-From", op->from);
		natsMsgHeader_Set(m, "Chat-Cid", cid);
		natsMsgHeader_Set(m, "Chat-Ts", ts);
		if (op->log_hdrs)
			op->log_hdrs(js, op, m);
	}
	op->step = step_log_published;
	js_send(js, op, m);
}

/* Probing forward from the hint: log.<conv>.<n> exists → n + 1. */
static void step_log_probe(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	if (get_retry(js, op, r))
		return;
	if (r == JS_BAD)
		return log_finish(js, op, CHAT_EIO, 0);
	if (r == JS_NOTFOUND)
		return op->log_free(js, op);
	op->n++;
	js_send(js, op, log_req(js, op, op->n, false));
}

static void step_log_hint(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, true);
	uint64_t h = 0;
	if (get_retry(js, op, r))
		return;
	if (r == JS_BAD)
		return log_finish(js, op, CHAT_EIO, 0);
	if (r == JS_FOUND && !js_parse_u64(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &h))
		h = 0; /* a bad hint: probe from the start */
	op->n = h + 1;
	op->step = step_log_probe;
	js_send(js, op, log_req(js, op, op->n, false));
}

static void log_begin(jstore *js, js_op *op)
{
	js_conv *c = op->cv;
	c->busy = true;
	op->deadline = js_now_ms() + js->o.timeout_ms; /* from when it starts, not when queued */
	if (c->head_known) {
		op->n = c->head + 1;
		op->log_free(js, op);
		return;
	}
	op->step = step_log_hint;
	js_send(js, op, js_req_kv_get(js, "heads", op->key));
}

static void log_next(jstore *js, js_conv *c)
{
	js_op *op = c->wait_head;
	if (!op)
		return;
	c->wait_head = op->wnext;
	if (!c->wait_head)
		c->wait_tail = NULL;
	op->wnext = NULL;
	if (js->closing) { /* jstore_close: the waiting writers end too */
		c->busy = true;
		log_finish(js, op, CHAT_EIO, 0);
		return;
	}
	log_begin(js, op);
}

void js_log_enqueue(jstore *js, js_op *op)
{
	js_conv *cv = op->cv;
	if (cv->busy || cv->wait_head) { /* one writer per conversation at a time on a node */
		if (cv->wait_tail)
			cv->wait_tail->wnext = op;
		else
			cv->wait_head = op;
		cv->wait_tail = op;
		return;
	}
	log_begin(js, op);
}

int jstore_log_append(jstore *js, const char *conv, const char *from, const store_cid *cid, uint64_t ts,
                      const uint8_t *body, size_t len, jstore_seq_cb cb, void *arg)
{
	char enc[JS_CONV_ENC_MAX + 1], a[JS_ADDR_ENC_MAX + 1], c[JS_CID_ENC_MAX + 1];
	if (!js_enc_conv(enc, sizeof(enc), conv) || !js_enc_addr(a, sizeof(a), from) || !js_enc_cid(c, sizeof(c), cid))
		return CHAT_EINVAL;
	js_conv *cv = conv_of(js, conv, true);
	if (!cv)
		return CHAT_ENOMEM;
	js_op *op = op_new(js, NULL, fail_log, arg); /* log_begin sets the step */
	if (!op)
		return CHAT_ENOMEM;
	if (len) {
		op->body = malloc(len);
		if (!op->body) {
			free(op);
			return CHAT_ENOMEM;
		}
		memcpy(op->body, body, len);
		op->body_len = len;
	}
	op->cb.seq = cb;
	op->cv = cv;
	op->cid = *cid;
	op->ts = ts;
	op->log_free = js_log_publish;
	op->log_done = append_done;
	snprintf(op->key, sizeof(op->key), "%s", enc);
	snprintf(op->conv, sizeof(op->conv), "%s", conv);
	snprintf(op->from, sizeof(op->from), "%s", from);
	js_log_enqueue(js, op);
	return CHAT_OK;
}

static void fail_entry(jstore *js, js_op *op, int rc)
{
	jstore_entry_cb cb = op->cb.entry;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, rc, NULL, NULL, NULL, 0);
}

static void step_log_get(jstore *js, js_op *op, natsMsg *m)
{
	enum js_reply r = js_get_reply(js, m, false);
	const char *from = NULL, *cs = NULL;
	store_cid cid;
	if (get_retry(js, op, r))
		return;
	if (r != JS_FOUND)
		return fail_entry(js, op, r == JS_NOTFOUND ? CHAT_ENOTFOUND : CHAT_EIO);
	if (natsMsgHeader_Get(m, "Chat-From", &from) != NATS_OK || natsMsgHeader_Get(m, "Chat-Cid", &cs) != NATS_OK ||
	    !from || !cs || !js_dec_cid(cs, strlen(cs), &cid))
		return fail_entry(js, op, CHAT_ECORRUPT);
	jstore_entry_cb cb = op->cb.entry;
	void *arg = op->arg;
	js_op_end(js, op);
	cb(arg, CHAT_OK, from, &cid, (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
}

int jstore_log_get(jstore *js, const char *conv, uint64_t seq, jstore_entry_cb cb, void *arg)
{
	js_op *op = op_new(js, step_log_get, fail_entry, arg);
	if (!op)
		return CHAT_ENOMEM;
	if (!js_enc_conv(op->key, sizeof(op->key), conv) || seq == 0) {
		free(op);
		return CHAT_EINVAL;
	}
	op->cb.entry = cb;
	return start(js, op, log_req(js, op, seq, js->o.leader_reads));
}
