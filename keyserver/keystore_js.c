// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* keystore_js.c — the key store on NATS JetStream, so that several key
 * servers serve one set of pools at once (active/active). docs/CLUSTER.md,
 * "The key server", is the design; docs/KEYSERVER.md, "Cluster mode", what
 * an operator sees. The only key-server file that includes nats/nats.h.
 *
 * Streams (P = --cluster-prefix; every one R = --cluster-replicas, file
 * storage, allow_direct, created at start if missing, and a start refused
 * if one exists with another configuration):
 *   P_KS_DEV   P.ksd.<U>.<D>  one message per subject (max_msgs_per_subject
 *                             1): the device record (ksjs_dev)
 *   P_KS_USER  P.ksu.<U>      the user's device list as appends (+D, -D)
 *   P_KS_OPK   P.kso.<U>.<D>  one message per one-time key; max_msgs_per_
 *                             subject = pool cap, discard new per subject
 *   P_KS_RATE  P.ksr.<RU>.<RD>.<U>  one message per bundle; max_msgs_per_
 *                             subject = burst, max_age = burst · refill
 *   P_KS_LOG   P.ksl          the key directory log: stream seq s is leaf s-1
 *   P_KS_META  P.ksm.logkey   the shared log signing key, created once
 *
 * What decides (all atomic on nats-server 2.9.10, measured; nothing uses a
 * non-zero expected sequence, which is not): a pop is a read of the pool's
 * first key then js_DeleteMsg of its stream seq — exactly one deleter
 * succeeds, the others try the next key; the pool cap and the rate budget
 * are per-subject limits the server enforces; the log key is a create-only
 * publish. Every call is synchronous with a timeout and fails closed: a key
 * is in a bundle only after its delete was acknowledged.
 */
#include "keystore_js.h"

#include "err.h"

#include <nats/nats.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC_VERSION 1
#define SUBJ_MAX 512
#define WAIT_MS 5000
#define POP_TRIES 64          /* keys found already popped before giving up */
#define ULIST_MAX 4096        /* device-list changes read for one bundle */

enum { ST_DEV, ST_USER, ST_OPK, ST_RATE, ST_LOG, ST_META, ST_N };
static const char *const st_suffix[ST_N] = { "KS_DEV", "KS_USER", "KS_OPK", "KS_RATE", "KS_LOG",
	                                     "KS_META" };
static const char *const st_subj[ST_N] = { "ksd.>", "ksu.>", "kso.>", "ksr.>", "ksl", "ksm.>" };

/* The in-memory Merkle tree of the log: level l holds the hashes of the
 * complete subtrees of 2^l leaves. */
typedef struct level {
	kl_hash *h;
	uint64_t n, cap;
} level;

struct ksjs {
	natsConnection *nc;
	jsCtx *js;
	ks_opts cfg;
	char prefix[64];
	char stream[ST_N][96];
	char errmsg[256];
	uint8_t log_sk[KL_SEC], log_pk[KL_PUB];
	ks_log_entry *leaves;
	uint64_t nleaves, capleaves;
	level lv[64];
	kl_head head;
};

/* ---- pure parts ---- */

size_t ksjs_token(char *out, size_t cap, const char *id, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || c == '_' || c == '-';
		if (o + (plain ? 1 : 3) >= cap)
			return 0;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '=';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
	return o;
}

void ksjs_dev_encode(uint8_t out[KSJS_DEV_LEN], const ksjs_dev *r)
{
	uint8_t *p = out;
	*p++ = REC_VERSION;
	memcpy(p, r->ik, KS_KEY_LEN), p += KS_KEY_LEN;
	ks_be64_put(p, r->spk.id), p += 8;
	memcpy(p, r->spk.key, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(p, r->spk.sig, KS_SIG_LEN), p += KS_SIG_LEN;
	ks_be64_put(p, r->id_lo), p += 8;
	ks_be64_put(p, r->id_hi), p += 8;
	ks_be64_put(p, r->log_index), p += 8;
	ks_be64_put(p, r->log_ts);
}

bool ksjs_dev_decode(const void *v, size_t n, ksjs_dev *r)
{
	const uint8_t *p = v;
	if (!p || n != KSJS_DEV_LEN || p[0] != REC_VERSION)
		return false;
	p++;
	memcpy(r->ik, p, KS_KEY_LEN), p += KS_KEY_LEN;
	r->spk.id = ks_be64_get(p), p += 8;
	memcpy(r->spk.key, p, KS_KEY_LEN), p += KS_KEY_LEN;
	memcpy(r->spk.sig, p, KS_SIG_LEN), p += KS_SIG_LEN;
	r->id_lo = ks_be64_get(p), p += 8;
	r->id_hi = ks_be64_get(p), p += 8;
	r->log_index = ks_be64_get(p), p += 8;
	r->log_ts = ks_be64_get(p);
	return true;
}

void ksjs_opk_encode(uint8_t out[KSJS_OPK_LEN], const ks_opk *o, const uint8_t ik[KS_KEY_LEN])
{
	out[0] = REC_VERSION;
	ks_be64_put(out + 1, o->id);
	memcpy(out + 9, o->key, KS_KEY_LEN);
	memcpy(out + 9 + KS_KEY_LEN, ik, KS_KEY_LEN);
}

bool ksjs_opk_decode(const void *v, size_t n, ks_opk *o, uint8_t ik[KS_KEY_LEN])
{
	const uint8_t *p = v;
	if (!p || n != KSJS_OPK_LEN || p[0] != REC_VERSION)
		return false;
	o->id = ks_be64_get(p + 1);
	memcpy(o->key, p + 9, KS_KEY_LEN);
	memcpy(ik, p + 9 + KS_KEY_LEN, KS_KEY_LEN);
	return true;
}

#define LEAF_FIXED (1 + 8 + KS_KEY_LEN + 1)

size_t ksjs_leaf_encode(uint8_t *out, size_t cap, const ks_log_entry *e)
{
	size_t ul = strlen(e->user), dl = strlen(e->device);
	if (ul > 255 || LEAF_FIXED + ul + dl > cap)
		return 0;
	out[0] = REC_VERSION;
	ks_be64_put(out + 1, e->ts);
	memcpy(out + 9, e->ik, KS_KEY_LEN);
	out[9 + KS_KEY_LEN] = (uint8_t)ul;
	memcpy(out + LEAF_FIXED, e->user, ul);
	memcpy(out + LEAF_FIXED + ul, e->device, dl);
	return LEAF_FIXED + ul + dl;
}

bool ksjs_leaf_decode(const void *v, size_t n, ks_log_entry *e)
{
	const uint8_t *p = v;
	if (!p || n < LEAF_FIXED || p[0] != REC_VERSION)
		return false;
	size_t ul = p[9 + KS_KEY_LEN];
	if (n < LEAF_FIXED + ul)
		return false;
	size_t dl = n - LEAF_FIXED - ul;
	const char *u = (const char *)p + LEAF_FIXED, *d = u + ul;
	if (!chat_valid_user(u, ul) || !chat_valid_device(d, dl))
		return false;
	e->ts = ks_be64_get(p + 1);
	memcpy(e->ik, p + 9, KS_KEY_LEN);
	memcpy(e->user, u, ul);
	e->user[ul] = 0;
	memcpy(e->device, d, dl);
	e->device[dl] = 0;
	return true;
}

bool ksjs_ulist_decode(const void *v, size_t n, bool *added, char dev[CHAT_DEVICE_MAX + 1])
{
	const uint8_t *p = v;
	if (!p || n < 3 || p[0] != REC_VERSION || (p[1] != '+' && p[1] != '-'))
		return false;
	if (!chat_valid_device((const char *)p + 2, n - 2))
		return false;
	*added = p[1] == '+';
	memcpy(dev, p + 2, n - 2);
	dev[n - 2] = 0;
	return true;
}

bool ksjs_parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	if (!s || !*s || strlen(s) > 20)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned dgt = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - dgt) / 10)
			return false;
		x = x * 10 + dgt;
	}
	*v = x;
	return true;
}

/* ---- errors, subjects, calls ---- */

static int fail(ksjs *j, int code, const char *what, natsStatus s, jsErrCode jerr)
{
	if (s == NATS_OK)
		snprintf(j->errmsg, sizeof j->errmsg, "%s", what);
	else
		snprintf(j->errmsg, sizeof j->errmsg, "%s: %s (%s, JetStream error %d)", what,
		         natsStatus_GetText(s), nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "",
		         (int)jerr);
	return code;
}

static uint64_t now_ms(const ksjs *j)
{
	if (j->cfg.now_ms)
		return j->cfg.now_ms(j->cfg.clock_ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* P.<kind>.<tok>[.<tok>…]; false if too long. */
static bool subj(const ksjs *j, char out[SUBJ_MAX], const char *kind, const char *a, size_t al,
                 const char *b, size_t bl, const char *c, size_t cl)
{
	int o = snprintf(out, SUBJ_MAX, "%s.%s", j->prefix, kind);
	const char *ids[3] = { a, b, c };
	size_t lens[3] = { al, bl, cl };
	for (int i = 0; i < 3 && ids[i]; i++) {
		if ((size_t)o + 2 >= SUBJ_MAX)
			return false;
		out[o++] = '.';
		size_t w = ksjs_token(out + o, SUBJ_MAX - (size_t)o, ids[i], lens[i]);
		if (!w)
			return false;
		o += (int)w;
	}
	return true;
}

static void jopts(jsOptions *o)
{
	jsOptions_Init(o);
	o->Wait = WAIT_MS;
}

/* The message with seq (by_seq) or the first at or after from on subject.
 * CHAT_ENOTFOUND when there is none. */
static int dget(ksjs *j, int st, uint64_t seq, const char *next_subj, const char *last_subj,
                natsMsg **m)
{
	jsOptions o;
	jopts(&o);
	jsDirectGetMsgOptions dg;
	jsDirectGetMsgOptions_Init(&dg);
	dg.Sequence = seq;
	dg.NextBySubject = next_subj;
	dg.LastBySubject = last_subj;
	natsStatus s = js_DirectGetMsg(m, j->js, j->stream[st], &o, &dg);
	if (s == NATS_NOT_FOUND)
		return CHAT_ENOTFOUND;
	if (s != NATS_OK)
		return fail(j, CHAT_EIO, "JetStream read", s, 0);
	return CHAT_OK;
}

static uint64_t msg_seq(natsMsg *m)
{
	uint64_t v = natsMsg_GetSequence(m);
	const char *h = NULL;
	if (v == 0 && natsMsgHeader_Get(m, "Nats-Sequence", &h) == NATS_OK)
		ksjs_parse_u64(h, &v);
	return v;
}

/* Publishes; *seq the stream seq. *jerr the JetStream error code. */
static natsStatus pub(ksjs *j, const char *s, const void *data, size_t len, const char *msg_id,
                      bool create_only, uint64_t *seq, jsErrCode *jerr)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = WAIT_MS;
	po.MsgId = msg_id;
	po.ExpectNoMessage = create_only;
	jsPubAck *pa = NULL;
	*jerr = 0;
	natsStatus st = js_Publish(&pa, j->js, s, data, (int)len, &po, jerr);
	if (st == NATS_OK && seq)
		*seq = pa->Sequence;
	jsPubAck_Destroy(pa);
	return st;
}

static natsStatus del(ksjs *j, int st, uint64_t seq, jsErrCode *jerr)
{
	jsOptions o;
	jopts(&o);
	*jerr = 0;
	return js_DeleteMsg(j->js, j->stream[st], seq, &o, jerr);
}

static int purge(ksjs *j, int st, const char *s)
{
	jsOptions o;
	jopts(&o);
	o.Stream.Purge.Subject = s;
	jsErrCode jerr = 0;
	natsStatus ns = js_PurgeStream(j->js, j->stream[st], &o, &jerr);
	return ns == NATS_OK ? CHAT_OK : fail(j, CHAT_EIO, "JetStream purge", ns, jerr);
}

/* Messages on one subject of a stream (the leader's count). */
static int subj_count(ksjs *j, int st, const char *s, uint64_t *n)
{
	jsOptions o;
	jopts(&o);
	o.Stream.Info.SubjectsFilter = s;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus ns = js_GetStreamInfo(&si, j->js, j->stream[st], &o, &jerr);
	if (ns != NATS_OK)
		return fail(j, CHAT_EIO, "JetStream stream info", ns, jerr);
	*n = 0;
	jsStreamStateSubjects *ss = si->State.Subjects;
	for (int i = 0; ss && i < ss->Count; i++)
		if (strcmp(ss->List[i].Subject, s) == 0)
			*n = ss->List[i].Msgs;
	jsStreamInfo_Destroy(si);
	return CHAT_OK;
}

/* ---- the device record ---- */

/* The device record. from_leader: read through the stream leader (an
 * upload decides from it whether the device is new, so a replica that is
 * behind must not answer); else a direct get from any replica. */
static int dev_load_x(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, ksjs_dev *r,
                      bool from_leader)
{
	char s[SUBJ_MAX];
	if (!subj(j, s, "ksd", u, ul, d, dl, NULL, 0))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	natsMsg *m = NULL;
	int rc;
	if (from_leader) {
		jsOptions o;
		jopts(&o);
		jsErrCode jerr = 0;
		natsStatus ns = js_GetLastMsg(&m, j->js, j->stream[ST_DEV], s, &o, &jerr);
		rc = ns == NATS_OK ? CHAT_OK
		     : ns == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr
		             ? CHAT_ENOTFOUND
		             : fail(j, CHAT_EIO, "JetStream device record read", ns, jerr);
	} else {
		rc = dget(j, ST_DEV, 0, NULL, s, &m);
	}
	if (rc)
		return rc;
	bool ok = ksjs_dev_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), r);
	natsMsg_Destroy(m);
	return ok ? CHAT_OK : fail(j, CHAT_ECORRUPT, "corrupt device record in JetStream", NATS_OK, 0);
}

static int dev_load(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, ksjs_dev *r)
{
	return dev_load_x(j, u, ul, d, dl, r, false);
}

static int dev_store(ksjs *j, const char *u, size_t ul, const char *d, size_t dl,
                     const ksjs_dev *r)
{
	char s[SUBJ_MAX];
	uint8_t v[KSJS_DEV_LEN];
	if (!subj(j, s, "ksd", u, ul, d, dl, NULL, 0))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	ksjs_dev_encode(v, r);
	jsErrCode jerr;
	natsStatus ns = pub(j, s, v, sizeof v, NULL, false, NULL, &jerr);
	return ns == NATS_OK ? CHAT_OK : fail(j, CHAT_EIO, "JetStream device record write", ns, jerr);
}

static int ulist_append(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, bool add)
{
	char s[SUBJ_MAX];
	uint8_t v[2 + CHAT_DEVICE_MAX];
	if (!subj(j, s, "ksu", u, ul, NULL, 0, NULL, 0) || dl > CHAT_DEVICE_MAX)
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	v[0] = REC_VERSION;
	v[1] = add ? '+' : '-';
	memcpy(v + 2, d, dl);
	jsErrCode jerr;
	natsStatus ns = pub(j, s, v, 2 + dl, NULL, false, NULL, &jerr);
	return ns == NATS_OK ? CHAT_OK : fail(j, CHAT_EIO, "JetStream device list write", ns, jerr);
}

typedef struct devname {
	char d[CHAT_DEVICE_MAX + 1];
} devname;

static int devname_cmp(const void *a, const void *b)
{
	return strcmp(((const devname *)a)->d, ((const devname *)b)->d);
}

/* The user's current devices, in byte order. */
static int ulist_load(ksjs *j, const char *u, size_t ul, devname **out, size_t *n)
{
	char s[SUBJ_MAX];
	*out = NULL, *n = 0;
	if (!subj(j, s, "ksu", u, ul, NULL, 0, NULL, 0))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	devname *v = NULL;
	size_t cnt = 0, cap = 0;
	uint64_t from = 1;
	int rc = CHAT_OK;
	for (int reads = 0;; reads++) {
		if (reads == ULIST_MAX) {
			rc = fail(j, CHAT_EIO, "device list too long", NATS_OK, 0);
			break;
		}
		natsMsg *m = NULL;
		rc = dget(j, ST_USER, from, s, NULL, &m);
		if (rc == CHAT_ENOTFOUND) {
			rc = CHAT_OK;
			break;
		}
		if (rc)
			break;
		bool add;
		char dev[CHAT_DEVICE_MAX + 1];
		uint64_t seq = msg_seq(m);
		bool ok = ksjs_ulist_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &add,
		                            dev);
		natsMsg_Destroy(m);
		if (!ok || seq < from) {
			rc = fail(j, CHAT_ECORRUPT, "corrupt device list entry in JetStream", NATS_OK, 0);
			break;
		}
		from = seq + 1;
		size_t i;
		for (i = 0; i < cnt && strcmp(v[i].d, dev) != 0; i++)
			;
		if (add && i == cnt) {
			if (cnt == cap) {
				cap = cap ? cap * 2 : 8;
				devname *nv = realloc(v, cap * sizeof *nv);
				if (!nv) {
					rc = CHAT_ENOMEM;
					break;
				}
				v = nv;
			}
			memcpy(v[cnt++].d, dev, sizeof dev);
		} else if (!add && i < cnt) {
			v[i] = v[--cnt];
		}
	}
	if (rc) {
		free(v);
		return rc;
	}
	qsort(v, cnt, sizeof *v, devname_cmp);
	*out = v, *n = cnt;
	return CHAT_OK;
}

/* ---- the key directory log ---- */

static int mth(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[KL_HASH])
{
	ksjs *j = ctx;
	uint64_t n = hi - lo;
	if (hi > j->nleaves || lo >= hi)
		return CHAT_EINVAL;
	if ((n & (n - 1)) == 0 && lo % n == 0) {
		unsigned l = 0;
		while ((UINT64_C(1) << l) < n)
			l++;
		memcpy(out, j->lv[l].h[lo >> l], KL_HASH);
		return 0;
	}
	uint64_t k = kl_split(n);
	uint8_t a[KL_HASH], b[KL_HASH];
	int rc = mth(ctx, lo, lo + k, a);
	if (!rc)
		rc = mth(ctx, lo + k, hi, b);
	if (!rc)
		kl_node_hash(out, a, b);
	return rc;
}

static int lv_push(level *l, const uint8_t h[KL_HASH])
{
	if (l->n == l->cap) {
		uint64_t cap = l->cap ? l->cap * 2 : 64;
		kl_hash *nh = realloc(l->h, cap * sizeof *nh);
		if (!nh)
			return CHAT_ENOMEM;
		l->h = nh, l->cap = cap;
	}
	memcpy(l->h[l->n++], h, KL_HASH);
	return CHAT_OK;
}

/* The signed head of the first size leaves: ts is the last leaf's, so
 * every key server signs the same bytes (Ed25519 is deterministic) and
 * their heads of one size are identical. */
static int head_make(ksjs *j, uint64_t size, kl_head *h)
{
	memset(h, 0, sizeof *h);
	h->size = size;
	if (size == 0)
		return CHAT_OK;
	h->ts = j->leaves[size - 1].ts;
	int rc = mth(j, 0, size, h->root);
	if (rc)
		return rc;
	kl_head_sign(h, j->log_sk);
	return CHAT_OK;
}

static int leaf_add(ksjs *j, const ks_log_entry *e)
{
	if (j->nleaves == j->capleaves) {
		uint64_t cap = j->capleaves ? j->capleaves * 2 : 64;
		ks_log_entry *nl = realloc(j->leaves, cap * sizeof *nl);
		if (!nl)
			return CHAT_ENOMEM;
		j->leaves = nl, j->capleaves = cap;
	}
	uint64_t i = j->nleaves;
	uint8_t cur[KL_HASH];
	if (!kl_entry_hash(cur, e->ik, e->ts, e->user, strlen(e->user), e->device,
	                   strlen(e->device)))
		return CHAT_ECORRUPT;
	for (unsigned l = 0;; l++) {
		int rc = lv_push(&j->lv[l], cur);
		if (rc)
			return rc;
		if (!(i & 1))
			break;
		kl_node_hash(cur, j->lv[l].h[i - 1], cur);
		i >>= 1;
	}
	j->leaves[j->nleaves] = *e;
	j->leaves[j->nleaves].index = j->nleaves;
	j->nleaves++;
	return CHAT_OK;
}

/* Reads the leaves appended since the last call (by any key server), up
 * to at least target; a replica that has not applied target yet is asked
 * again for a while. */
static int log_catch_up(ksjs *j, uint64_t target)
{
	int rc = CHAT_OK;
	bool grew = false;
	for (int waits = 0;;) {
		natsMsg *m = NULL;
		rc = dget(j, ST_LOG, j->nleaves + 1, NULL, NULL, &m);
		if (rc == CHAT_ENOTFOUND) {
			rc = CHAT_OK;
			if (j->nleaves >= target)
				break;
			if (++waits > 100) {
				rc = fail(j, CHAT_EIO, "the key log stream is behind", NATS_OK, 0);
				break;
			}
			usleep(20000);
			continue;
		}
		if (rc)
			break;
		ks_log_entry e;
		uint64_t seq = msg_seq(m);
		bool ok = ksjs_leaf_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &e);
		natsMsg_Destroy(m);
		if (!ok || seq != j->nleaves + 1) {
			rc = fail(j, CHAT_ECORRUPT, "corrupt or missing key log leaf in JetStream",
			          NATS_OK, 0);
			break;
		}
		if ((rc = leaf_add(j, &e)) != CHAT_OK)
			break;
		grew = true;
	}
	if (grew) {
		int hr = head_make(j, j->nleaves, &j->head);
		if (!rc)
			rc = hr;
	}
	return rc;
}

int ksjs_sync(ksjs *j)
{
	return log_catch_up(j, 0);
}

/* Appends the leaf (u, d, ik); *idx its index once this server has read
 * the log up to it. */
static int log_append(ksjs *j, const char *u, size_t ul, const char *d, size_t dl,
                      const uint8_t ik[KS_KEY_LEN], uint64_t *idx, uint64_t *ts)
{
	ks_log_entry e = { .ts = now_ms(j) };
	memcpy(e.ik, ik, KS_KEY_LEN);
	memcpy(e.user, u, ul);
	e.user[ul] = 0;
	memcpy(e.device, d, dl);
	e.device[dl] = 0;
	uint8_t v[LEAF_FIXED + CHAT_USER_MAX + CHAT_DEVICE_MAX];
	size_t n = ksjs_leaf_encode(v, sizeof v, &e);
	if (!n)
		return fail(j, CHAT_EINVAL, "ids too long for a log leaf", NATS_OK, 0);
	/* A retry of this append within the duplicate window is not a second leaf. */
	uint8_t hsh[32];
	char mid[65];
	crypto_hash_sha256(hsh, v, n);
	sodium_bin2hex(mid, sizeof mid, hsh, sizeof hsh);
	char s[SUBJ_MAX];
	snprintf(s, sizeof s, "%s.ksl", j->prefix);
	uint64_t seq = 0;
	jsErrCode jerr;
	natsStatus ns = pub(j, s, v, n, mid, false, &seq, &jerr);
	if (ns != NATS_OK)
		return fail(j, CHAT_EIO, "JetStream key log append", ns, jerr);
	if (seq == 0 || seq > KL_SIZE_MAX)
		return fail(j, CHAT_EIO, "the key directory log is full", NATS_OK, 0);
	int rc = log_catch_up(j, seq);
	if (rc)
		return rc;
	*idx = seq - 1;
	*ts = j->leaves[seq - 1].ts;
	return CHAT_OK;
}

const kl_head *ksjs_log_head(const ksjs *j)
{
	return &j->head;
}

const uint8_t *ksjs_log_pub(const ksjs *j)
{
	return j->log_pk;
}

int ksjs_log_head_at(ksjs *j, uint64_t size, kl_head *h)
{
	if (size > j->nleaves)
		log_catch_up(j, 0);
	if (size == 0 || size > j->nleaves)
		return CHAT_ENOTFOUND;
	if (size == j->nleaves) {
		*h = j->head;
		return CHAT_OK;
	}
	return head_make(j, size, h);
}

int ksjs_log_get(ksjs *j, uint64_t index, ks_log_entry *e)
{
	if (index >= j->nleaves)
		log_catch_up(j, 0);
	if (index >= j->nleaves)
		return CHAT_ENOTFOUND;
	*e = j->leaves[index];
	return CHAT_OK;
}

int ksjs_log_inclusion(ksjs *j, uint64_t index, uint64_t size, kl_hash *proof, size_t *n)
{
	if (size > j->nleaves)
		log_catch_up(j, size);
	if (size > j->nleaves)
		return CHAT_EINVAL;
	return kl_inclusion_proof(mth, j, index, size, proof, n);
}

int ksjs_log_consistency(ksjs *j, uint64_t from, uint64_t to, kl_hash *proof, size_t *n)
{
	if (to > j->nleaves)
		log_catch_up(j, to);
	if (to > j->nleaves)
		return CHAT_EINVAL;
	return kl_consistency_proof(mth, j, from, to, proof, n);
}

int ksjs_log_history(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, uint64_t *idx,
                     size_t cap, size_t *n)
{
	/* newest first, then reversed: the newest cap, oldest first */
	*n = 0;
	for (uint64_t i = j->nleaves; i-- > 0 && *n < cap;) {
		const ks_log_entry *e = &j->leaves[i];
		if (strlen(e->user) == ul && memcmp(e->user, u, ul) == 0 && strlen(e->device) == dl &&
		    memcmp(e->device, d, dl) == 0)
			idx[(*n)++] = i;
	}
	for (size_t i = 0; i < *n / 2; i++) {
		uint64_t t = idx[i];
		idx[i] = idx[*n - 1 - i];
		idx[*n - 1 - i] = t;
	}
	return CHAT_OK;
}

/* ---- open: connect, streams, the log key ---- */

static int stream_ensure(ksjs *j, int st, char *errbuf, size_t errlen)
{
	char subject[128];
	snprintf(subject, sizeof subject, "%s.%s", j->prefix, st_subj[st]);
	const char *subjects[1] = { subject };
	jsStreamConfig c;
	jsStreamConfig_Init(&c);
	c.Name = j->stream[st];
	c.Subjects = subjects;
	c.SubjectsLen = 1;
	c.Storage = js_FileStorage;
	c.Replicas = j->cfg.cluster_replicas;
	c.AllowDirect = true;
	c.Duplicates = (int64_t)120 * 1000000000;
	c.MaxMsgsPerSubject = -1;
	switch (st) {
	case ST_DEV:
	case ST_META:
		c.MaxMsgsPerSubject = 1;
		break;
	case ST_OPK:
		c.MaxMsgsPerSubject = j->cfg.pool_cap;
		c.Discard = js_DiscardNew;
		c.DiscardNewPerSubject = true;
		break;
	case ST_RATE:
		c.MaxMsgsPerSubject = j->cfg.rate_burst;
		c.Discard = js_DiscardNew;
		c.DiscardNewPerSubject = true;
		c.MaxAge = (int64_t)j->cfg.rate_burst * j->cfg.rate_refill_s * 1000000000;
		break;
	default:
		break;
	}
	jsOptions o;
	jopts(&o);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	/* a create is a meta-group proposal: on a loaded cluster it may time
	 * out and still happen, so ask again (a few times) */
	for (int tries = 0;; tries++) {
		jsStreamInfo_Destroy(si);
		si = NULL;
		s = js_GetStreamInfo(&si, j->js, c.Name, &o, &jerr);
		if (s == NATS_NOT_FOUND) {
			s = js_AddStream(&si, j->js, &c, &o, &jerr);
			if (s != NATS_OK && jerr == JSStreamNameExistErr) /* another key server won */
				s = js_GetStreamInfo(&si, j->js, c.Name, &o, &jerr);
		}
		if ((s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS) || tries == 5)
			break;
	}
	if (s != NATS_OK) {
		snprintf(errbuf, errlen, "stream %s: %s (%s)", c.Name, natsStatus_GetText(s),
		         nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
		jsStreamInfo_Destroy(si);
		return CHAT_EIO;
	}
	const jsStreamConfig *h = si->Config;
	const char *diff = NULL;
	if (h->SubjectsLen != 1 || strcmp(h->Subjects[0], subject) != 0)
		diff = "subjects";
	else if (h->Storage != c.Storage)
		diff = "storage";
	else if (h->Replicas != c.Replicas)
		diff = "replicas (--cluster-replicas)";
	else if (h->MaxMsgsPerSubject != c.MaxMsgsPerSubject &&
	         !(c.MaxMsgsPerSubject <= 0 && h->MaxMsgsPerSubject <= 0))
		diff = st == ST_OPK ? "max_msgs_per_subject (--pool-cap)"
		                    : st == ST_RATE ? "max_msgs_per_subject (--rate-burst)"
		                                    : "max_msgs_per_subject";
	else if (h->Discard != c.Discard)
		diff = "discard";
	else if (h->DiscardNewPerSubject != c.DiscardNewPerSubject)
		diff = "discard_new_per_subject";
	else if (h->MaxAge != c.MaxAge)
		diff = st == ST_RATE ? "max_age (--rate-burst × --rate-refill-seconds)" : "max_age";
	else if (!h->AllowDirect)
		diff = "allow_direct";
	else if (h->MaxMsgs > 0 || h->MaxBytes > 0)
		diff = "max_msgs/max_bytes (must be unlimited)";
	if (diff)
		snprintf(errbuf, errlen, "stream %s exists with another %s than this key server's; "
		         "refusing to start (docs/KEYSERVER.md, \"Cluster mode\")", c.Name, diff);
	jsStreamInfo_Destroy(si);
	return diff ? CHAT_EINVAL : CHAT_OK;
}

/* The shared log key: the first key server to start creates it
 * (create-only), every other reads it. */
static int log_key_load(ksjs *j, char *errbuf, size_t errlen)
{
	char s[SUBJ_MAX];
	snprintf(s, sizeof s, "%s.ksm.logkey", j->prefix);
	uint8_t v[1 + KL_SEC];
	v[0] = REC_VERSION;
	uint8_t pk[KL_PUB];
	crypto_sign_keypair(pk, v + 1);
	jsErrCode jerr;
	natsStatus ns;
	/* A stream just created has no leader for a moment: "no responders"
	 * until it has one (up to ~10 s on a loaded machine) */
	for (int tries = 0;; tries++) {
		ns = pub(j, s, v, sizeof v, NULL, true, NULL, &jerr);
		if ((ns != NATS_NO_RESPONDERS && ns != NATS_TIMEOUT) || tries == 100)
			break;
		usleep(100000);
	}
	sodium_memzero(v, sizeof v);
	if (ns != NATS_OK && jerr != JSStreamWrongLastSequenceErr) {
		snprintf(errbuf, errlen, "cannot store the key log's signing key: %s (%s)",
		         natsStatus_GetText(ns), nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
		return CHAT_EIO;
	}
	natsMsg *m = NULL;
	int rc = dget(j, ST_META, 0, NULL, s, &m);
	if (rc) {
		snprintf(errbuf, errlen, "cannot read the key log's signing key: %s", j->errmsg);
		return rc == CHAT_ENOTFOUND ? CHAT_EIO : rc;
	}
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	bool ok = natsMsg_GetDataLength(m) == 1 + KL_SEC && p[0] == REC_VERSION;
	if (ok) {
		memcpy(j->log_sk, p + 1, KL_SEC);
		crypto_sign_ed25519_sk_to_pk(j->log_pk, j->log_sk);
	}
	natsMsg_Destroy(m);
	if (!ok) {
		snprintf(errbuf, errlen, "the key log's signing key in %s is malformed", s);
		return CHAT_ECORRUPT;
	}
	return CHAT_OK;
}

int ksjs_open(ksjs **out, const ks_opts *o, char *errbuf, size_t errlen)
{
	*out = NULL;
	ksjs *j = calloc(1, sizeof *j);
	if (!j)
		return CHAT_ENOMEM;
	j->cfg = *o;
	snprintf(j->prefix, sizeof j->prefix, "%s", o->cluster_prefix ? o->cluster_prefix : "chat");
	for (int i = 0; i < ST_N; i++)
		snprintf(j->stream[i], sizeof j->stream[i], "%s_%s", j->prefix, st_suffix[i]);
	if (j->cfg.cluster_replicas <= 0)
		j->cfg.cluster_replicas = 3;

	/* the URL list, comma-separated */
	char *urls = strdup(o->cluster_urls);
	const char *srv[16];
	int nsrv = 0;
	for (char *sp = NULL, *t = urls ? strtok_r(urls, ",", &sp) : NULL; t && nsrv < 16;
	     t = strtok_r(NULL, ",", &sp))
		if (*t)
			srv[nsrv++] = t;
	natsOptions *no = NULL;
	natsStatus s = urls && nsrv ? natsOptions_Create(&no) : NATS_INVALID_ARG;
	if (s == NATS_OK)
		s = natsOptions_SetServers(no, srv, nsrv);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, "chat-keyserver");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no, 250);
	if (s == NATS_OK && o->cluster_creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->cluster_creds, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(&j->nc, no);
	if (s == NATS_OK) {
		jsOptions jo;
		jopts(&jo);
		s = natsConnection_JetStream(&j->js, j->nc, &jo);
	}
	natsOptions_Destroy(no);
	free(urls);
	if (s != NATS_OK) {
		snprintf(errbuf, errlen, "cannot connect to NATS at %s: %s (%s)", o->cluster_urls,
		         natsStatus_GetText(s), nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
		ksjs_close(j);
		return CHAT_EIO;
	}
	int rc = CHAT_OK;
	for (int i = 0; i < ST_N && rc == CHAT_OK; i++)
		rc = stream_ensure(j, i, errbuf, errlen);
	if (rc == CHAT_OK)
		rc = log_key_load(j, errbuf, errlen);
	if (rc == CHAT_OK && (rc = log_catch_up(j, 0)) != CHAT_OK)
		snprintf(errbuf, errlen, "reading the key log: %s", j->errmsg);
	if (rc) {
		ksjs_close(j);
		return rc;
	}
	*out = j;
	return CHAT_OK;
}

void ksjs_close(ksjs *j)
{
	if (!j)
		return;
	jsCtx_Destroy(j->js);
	if (j->nc)
		natsConnection_Close(j->nc);
	natsConnection_Destroy(j->nc);
	/* libnats' own threads and globals: one store per process, so the
	 * library goes with it (no leak reports at exit) */
	nats_Close();
	sodium_memzero(j->log_sk, sizeof j->log_sk);
	free(j->leaves);
	for (int i = 0; i < 64; i++)
		free(j->lv[i].h);
	free(j);
}

const char *ksjs_errmsg(const ksjs *j)
{
	return j->errmsg;
}

uint64_t ksjs_keys_estimate(ksjs *j)
{
	jsOptions o;
	jopts(&o);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	uint64_t n = 0;
	if (js_GetStreamInfo(&si, j->js, j->stream[ST_OPK], &o, &jerr) == NATS_OK)
		n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	return n;
}

/* ---- upload ---- */

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int ksjs_upload(ksjs *j, const char *u, size_t ul, const char *d, size_t dl,
                const uint8_t ik[KS_KEY_LEN], const ks_spk *spk, const ks_opk *opks, size_t n,
                uint32_t *count)
{
	/* ks_upload has checked the request (the pool's size, the spk's signature) */
	char os[SUBJ_MAX];
	if (!subj(j, os, "kso", u, ul, d, dl, NULL, 0))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	ksjs_dev rec;
	int rc = dev_load_x(j, u, ul, d, dl, &rec, true);
	bool fresh = false, rereg = false;
	if (rc == CHAT_ENOTFOUND)
		fresh = true, rc = CHAT_OK;
	else if (rc)
		return rc;
	else if (sodium_memcmp(rec.ik, ik, KS_KEY_LEN) != 0)
		rereg = true;
	/* dup: an id twice in the upload, or one uploaded before under this ik */
	uint64_t ids[KS_MAX_UPLOAD_OPKS];
	for (size_t i = 0; i < n; i++)
		ids[i] = opks[i].id;
	qsort(ids, n, sizeof ids[0], u64_cmp);
	for (size_t i = 1; i < n; i++)
		if (ids[i] == ids[i - 1])
			return CHAT_EEXIST;
	bool had = !fresh && !rereg && rec.id_lo <= rec.id_hi;
	for (size_t i = 0; had && i < n; i++)
		if (ids[i] >= rec.id_lo && ids[i] <= rec.id_hi)
			return CHAT_EEXIST;
	uint64_t have = 0;
	if (!fresh && !rereg && (rc = subj_count(j, ST_OPK, os, &have)) != CHAT_OK)
		return rc;
	if (have + n > j->cfg.pool_cap)
		return CHAT_EQUOTA;

	ksjs_dev nrec = rec;
	if (fresh || rereg) {
		memset(&nrec, 0, sizeof nrec);
		nrec.id_lo = 1, nrec.id_hi = 0;
	}
	memcpy(nrec.ik, ik, KS_KEY_LEN);
	nrec.spk = *spk;
	if (n) {
		if (nrec.id_lo > nrec.id_hi)
			nrec.id_lo = ids[0], nrec.id_hi = ids[n - 1];
		if (ids[0] < nrec.id_lo)
			nrec.id_lo = ids[0];
		if (ids[n - 1] > nrec.id_hi)
			nrec.id_hi = ids[n - 1];
	}
	/* A new identity key is logged before anything serves it; the record
	 * names its leaf. A key whose leaf is missing or holds another key (a
	 * record from a crashed upload) is logged again. */
	bool logged = fresh || rereg;
	if (!logged) {
		if (rec.log_index >= j->nleaves && (rc = log_catch_up(j, rec.log_index + 1)) != CHAT_OK)
			return rc;
		logged = rec.log_index >= j->nleaves ||
		         sodium_memcmp(j->leaves[rec.log_index].ik, ik, KS_KEY_LEN) != 0;
	}
	if (logged && (rc = log_append(j, u, ul, d, dl, ik, &nrec.log_index, &nrec.log_ts)) != CHAT_OK)
		return rc;
	/* A new device is listed before its record exists: a crash between the
	 * two leaves a listed device without a record, which bundles skip and
	 * the next upload (fresh again) completes; the other order would leave
	 * a record no bundle ever lists. A new ik's record goes before the
	 * keys, so a concurrent bundle treats the old ik's keys as stale
	 * (deletes and skips them) rather than the new ones. */
	if (fresh && (rc = ulist_append(j, u, ul, d, dl, true)) != CHAT_OK)
		return rc;
	if ((fresh || rereg) && (rc = dev_store(j, u, ul, d, dl, &nrec)) != CHAT_OK)
		return rc;
	/* fresh: keys a crashed drop may have left under the subject go too */
	if ((fresh || rereg) && (rc = purge(j, ST_OPK, os)) != CHAT_OK)
		return rc;

	/* The keys, one publish each; the server's per-subject limit refuses
	 * the one past the cap (another key server's upload may have raced
	 * this one), and the keys this upload added are deleted again. */
	uint64_t seqs[KS_MAX_UPLOAD_OPKS];
	size_t done = 0;
	for (; done < n; done++) {
		uint8_t v[KSJS_OPK_LEN];
		ksjs_opk_encode(v, &opks[done], ik);
		jsErrCode jerr;
		natsStatus ns = pub(j, os, v, sizeof v, NULL, false, &seqs[done], &jerr);
		if (ns != NATS_OK) {
			rc = jerr == JSStreamStoreFailedErr
			             ? CHAT_EQUOTA
			             : fail(j, CHAT_EIO, "JetStream one-time key write", ns, jerr);
			break;
		}
	}
	if (rc) {
		for (size_t i = 0; i < done; i++) {
			jsErrCode jerr;
			del(j, ST_OPK, seqs[i], &jerr); /* popped meanwhile: fine */
		}
		return rc;
	}
	if (!(fresh || rereg) && (rc = dev_store(j, u, ul, d, dl, &nrec)) != CHAT_OK)
		return rc;
	if (count) {
		uint64_t c = have + n;
		if (subj_count(j, ST_OPK, os, &c) != CHAT_OK)
			c = have + n;
		*count = (uint32_t)c;
	}
	return CHAT_OK;
}

/* ---- bundle ---- */

static int rate_charge(ksjs *j, const char *ru, size_t rul, const char *rd, size_t rdl,
                       const char *u, size_t ul, uint64_t *retry_after_s)
{
	if (j->cfg.rate_refill_s == 0)
		return CHAT_OK; /* no refill time: no limit, as in the RocksDB store */
	char s[SUBJ_MAX];
	if (!subj(j, s, "ksr", ru, rul, rd, rdl, u, ul))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	uint8_t v[9];
	uint64_t now = now_ms(j);
	v[0] = REC_VERSION;
	ks_be64_put(v + 1, now);
	jsErrCode jerr;
	natsStatus ns = pub(j, s, v, sizeof v, NULL, false, NULL, &jerr);
	if (ns == NATS_OK)
		return CHAT_OK;
	if (jerr != JSStreamStoreFailedErr)
		return fail(j, CHAT_EIO, "JetStream rate-limit write", ns, jerr);
	/* refused: the window frees when its oldest bundle ages out */
	uint64_t window = (uint64_t)j->cfg.rate_burst * j->cfg.rate_refill_s * 1000, oldest = now;
	natsMsg *m = NULL;
	if (dget(j, ST_RATE, 1, s, NULL, &m) == CHAT_OK) {
		if (natsMsg_GetDataLength(m) == 9)
			oldest = ks_be64_get((const uint8_t *)natsMsg_GetData(m) + 1);
		natsMsg_Destroy(m);
	}
	uint64_t free_at = oldest + window;
	*retry_after_s = free_at > now ? (free_at - now + 999) / 1000 : 1;
	return CHAT_EDENIED;
}

/* Pops the first live key of the device's pool into e: read the first key
 * on the subject, delete its stream seq; the one deleter that succeeds
 * owns it, a loser (10057: already gone) tries the next. Keys of another
 * ik (left by a re-registration) are deleted and skipped. */
static int opk_pop(ksjs *j, const char *os, const uint8_t ik[KS_KEY_LEN], ks_entry *e)
{
	uint64_t from = 1;
	for (int tries = 0; tries < POP_TRIES; tries++) {
		natsMsg *m = NULL;
		int rc = dget(j, ST_OPK, from, os, NULL, &m);
		if (rc == CHAT_ENOTFOUND)
			return CHAT_OK;
		if (rc)
			return rc;
		uint64_t seq = msg_seq(m);
		ks_opk o;
		uint8_t kik[KS_KEY_LEN];
		bool ok = ksjs_opk_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &o, kik);
		natsMsg_Destroy(m);
		if (seq < from)
			return fail(j, CHAT_ECORRUPT, "JetStream returned a key out of order", NATS_OK, 0);
		jsErrCode jerr;
		natsStatus ns = del(j, ST_OPK, seq, &jerr);
		from = seq + 1;
		if (ns != NATS_OK) {
			/* "sequence not found" (10043 on 2.9.10; 10057 in earlier
			 * measurements): another key server popped it */
			if (jerr == JSSequenceNotFoundErr || jerr == JSStreamMsgDeleteFailed ||
			    ns == NATS_NOT_FOUND)
				continue;
			return fail(j, CHAT_EIO, "JetStream one-time key delete", ns, jerr);
		}
		if (!ok || sodium_memcmp(kik, ik, KS_KEY_LEN) != 0)
			continue; /* malformed or stale: gone now, never handed out */
		e->has_opk = true;
		e->opk = o;
		return CHAT_OK;
	}
	return fail(j, CHAT_EIO, "too many one-time keys popped by others meanwhile", NATS_OK, 0);
}

ks_entry *ks_bundle_add(ks_bundle *b)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4;
		ks_entry *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		b->v = v;
		b->cap = cap;
	}
	ks_entry *e = &b->v[b->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

int ksjs_bundle_get(ksjs *j, const char *ru, size_t rul, const char *rd, size_t rdl,
                    const char *u, size_t ul, ks_bundle *b, uint64_t *retry_after_s)
{
	b->n = 0;
	int rc = rate_charge(j, ru, rul, rd, rdl, u, ul, retry_after_s);
	if (rc)
		return rc;
	devname *devs = NULL;
	size_t nd = 0;
	if ((rc = ulist_load(j, u, ul, &devs, &nd)) != CHAT_OK)
		return rc;
	for (size_t i = 0; i < nd && rc == CHAT_OK; i++) {
		const char *d = devs[i].d;
		size_t dl = strlen(d);
		ksjs_dev rec;
		rc = dev_load(j, u, ul, d, dl, &rec);
		if (rc == CHAT_ENOTFOUND) { /* dropped meanwhile */
			rc = CHAT_OK;
			continue;
		}
		if (rc)
			break;
		if (rec.log_index >= j->nleaves && (rc = log_catch_up(j, rec.log_index + 1)) != CHAT_OK)
			break;
		ks_entry *e = ks_bundle_add(b);
		if (!e) {
			rc = CHAT_ENOMEM;
			break;
		}
		memcpy(e->device, d, dl + 1);
		memcpy(e->ik, rec.ik, KS_KEY_LEN);
		e->spk = rec.spk;
		e->log_index = rec.log_index;
		e->log_ts = rec.log_ts;
		/* The proof before anything is popped: a log that cannot prove the
		 * key fails the bundle closed. */
		if (sodium_memcmp(j->leaves[rec.log_index].ik, rec.ik, KS_KEY_LEN) != 0) {
			rc = fail(j, CHAT_ECORRUPT, "a device's identity key is not in the log", NATS_OK, 0);
			break;
		}
		if ((rc = ksjs_log_inclusion(j, e->log_index, j->nleaves, e->proof, &e->nproof)) != 0)
			break;
		char os[SUBJ_MAX];
		if (!subj(j, os, "kso", u, ul, d, dl, NULL, 0)) {
			rc = fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
			break;
		}
		if ((rc = opk_pop(j, os, rec.ik, e)) != CHAT_OK)
			break;
		/* what is left, for the low-pool status: best effort (the key is
		 * popped; a leader election must not lose it), unknown → the cap */
		uint64_t left;
		e->left = subj_count(j, ST_OPK, os, &left) == CHAT_OK ? (uint32_t)left : j->cfg.pool_cap;
	}
	free(devs);
	/* A later device's leaf may have made this server read more of the log:
	 * every proof must be in the one head the response carries (the
	 * current one). */
	for (size_t i = 0; rc == CHAT_OK && i < b->n; i++)
		rc = ksjs_log_inclusion(j, b->v[i].log_index, j->nleaves, b->v[i].proof,
		                        &b->v[i].nproof);
	if (rc) {
		/* Keys popped before the failure are gone and not handed out. */
		b->n = 0;
		return rc;
	}
	return b->n ? CHAT_OK : CHAT_ENOTFOUND;
}

/* ---- count, check, drop ---- */

int ksjs_count(ksjs *j, const char *u, size_t ul, const char *d, size_t dl, uint32_t *count)
{
	char os[SUBJ_MAX];
	*count = 0;
	if (!subj(j, os, "kso", u, ul, d, dl, NULL, 0))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	uint64_t c;
	int rc = subj_count(j, ST_OPK, os, &c);
	if (rc == CHAT_OK)
		*count = (uint32_t)c;
	return rc;
}

bool ks_keys_match(const uint8_t ik[KS_KEY_LEN], const uint8_t spk[KS_KEY_LEN],
                   const uint8_t digest[KS_DIGEST_LEN])
{
	uint8_t mine[KS_DIGEST_LEN];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, ik, KS_KEY_LEN);
	crypto_hash_sha256_update(&st, spk, KS_KEY_LEN);
	crypto_hash_sha256_final(&st, mine);
	return sodium_memcmp(mine, digest, KS_DIGEST_LEN) == 0;
}

int ksjs_check(ksjs *j, const char *u, size_t ul, const char *d, size_t dl,
               const uint8_t digest[KS_DIGEST_LEN], bool *match)
{
	ksjs_dev rec;
	*match = false;
	int rc = dev_load(j, u, ul, d, dl, &rec);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK;
	if (rc)
		return rc;
	*match = ks_keys_match(rec.ik, rec.spk.key, digest);
	return CHAT_OK;
}

int ksjs_drop_device(ksjs *j, const char *u, size_t ul, const char *d, size_t dl)
{
	char os[SUBJ_MAX], ds[SUBJ_MAX];
	if (!subj(j, os, "kso", u, ul, d, dl, NULL, 0) || !subj(j, ds, "ksd", u, ul, d, dl, NULL, 0))
		return fail(j, CHAT_EINVAL, "ids too long for a subject", NATS_OK, 0);
	ksjs_dev rec;
	int rc = dev_load_x(j, u, ul, d, dl, &rec, true);
	if (rc == CHAT_ENOTFOUND)
		return CHAT_OK; /* unknown, or dropped already (every key server sees the removal) */
	if (rc)
		return rc;
	/* The record first: from then on bundles skip the device and its next
	 * upload is a fresh one (listed again, pool purged), whatever step a
	 * crash interrupts after it. */
	if ((rc = purge(j, ST_DEV, ds)) != CHAT_OK)
		return rc;
	if ((rc = ulist_append(j, u, ul, d, dl, false)) != CHAT_OK)
		return rc;
	return purge(j, ST_OPK, os);
}
