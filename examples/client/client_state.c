// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client_state.c — everything chat-client remembers between runs.
 *
 * One CBOR file, DIR/state (mode 0600, DIR 0700): the device's private keys,
 * its one-time keys not yet used, the Double Ratchet sessions, sender keys,
 * the (conv, seq) already seen, a short message history and the attachment
 * downloads still pending (their pointers, file keys included). It is small, so
 * every change rewrites it whole: write DIR/state.tmp, fsync, rename — a
 * crash leaves the old or the new file, never half of one. Sessions and
 * chains are packed in a fixed big-endian layout (pack_session below).
 * Secrets are wiped when freed. Not encrypted at rest (docs/E2EE.md §6).
 */
#include "client.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_VERSION 1
#define PACK_MAX (4 * E2E_AD + 8 * E2E_KEY + 64 + E2E_SKIPPED_CAP * (E2E_KEY * 2 + 4))

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "chat-client: out of memory\n");
		exit(1);
	}
	return q;
}

static void *xcalloc(size_t n)
{
	void *p = calloc(1, n);
	if (!p) {
		fprintf(stderr, "chat-client: out of memory\n");
		exit(1);
	}
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = xrealloc(NULL, n + 1);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

/* ---- packing sessions and chains ---- */

typedef struct pk { uint8_t *p; size_t n; } pk;
static void put(pk *b, const void *src, size_t n) { memcpy(b->p + b->n, src, n); b->n += n; }
static void put32(pk *b, uint32_t v) { e2e_put32(b->p + b->n, v); b->n += 4; }

typedef struct upk { const uint8_t *p; size_t n, off; bool bad; } upk;
static void get(upk *b, void *dst, size_t n)
{
	if (b->bad || b->n - b->off < n) {
		b->bad = true;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, b->p + b->off, n);
	b->off += n;
}
static uint32_t get32(upk *b) { uint8_t x[4]; get(b, x, 4); return e2e_get32(x); }

static void put_skipped(pk *b, const e2e_skipped *t, uint32_t n)
{
	put32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		put(b, t[i].dh, E2E_KEY);
		put32(b, t[i].n);
		put(b, t[i].mk, E2E_KEY);
	}
}

static void get_skipped(upk *b, e2e_skipped *t, uint32_t *n)
{
	*n = get32(b);
	if (*n > E2E_SKIPPED_CAP) {
		b->bad = true;
		*n = 0;
		return;
	}
	for (uint32_t i = 0; i < *n; i++) {
		get(b, t[i].dh, E2E_KEY);
		t[i].n = get32(b);
		get(b, t[i].mk, E2E_KEY);
	}
}

static size_t pack_session(uint8_t *out, const e2e_session *s)
{
	pk b = { out, 0 };
	uint8_t flags = (uint8_t)(s->has_cks | s->has_ckr << 1 | s->prekey_pending << 2);
	put(&b, s->ad, E2E_AD); put(&b, s->remote_ik, E2E_KEY);
	put(&b, s->rk, E2E_KEY); put(&b, s->cks, E2E_KEY); put(&b, s->ckr, E2E_KEY);
	put(&b, &flags, 1);
	put(&b, s->dhs_sk, E2E_KEY); put(&b, s->dhs_pk, E2E_KEY); put(&b, s->dhr, E2E_KEY);
	put32(&b, s->ns); put32(&b, s->nr); put32(&b, s->pn);
	put(&b, s->ek_pk, E2E_KEY); put32(&b, s->spk_id); put32(&b, s->opk_id);
	put_skipped(&b, s->skipped, s->nskipped);
	return b.n;
}

static bool unpack_session(e2e_session *s, const uint8_t *p, size_t n)
{
	upk b = { p, n, 0, false };
	uint8_t flags;
	get(&b, s->ad, E2E_AD); get(&b, s->remote_ik, E2E_KEY);
	get(&b, s->rk, E2E_KEY); get(&b, s->cks, E2E_KEY); get(&b, s->ckr, E2E_KEY);
	get(&b, &flags, 1);
	s->has_cks = flags & 1; s->has_ckr = flags & 2; s->prekey_pending = flags & 4;
	get(&b, s->dhs_sk, E2E_KEY); get(&b, s->dhs_pk, E2E_KEY); get(&b, s->dhr, E2E_KEY);
	s->ns = get32(&b); s->nr = get32(&b); s->pn = get32(&b);
	get(&b, s->ek_pk, E2E_KEY); s->spk_id = get32(&b); s->opk_id = get32(&b);
	get_skipped(&b, s->skipped, &s->nskipped);
	return !b.bad && b.off == n;
}

static size_t pack_chain(uint8_t *out, const e2e_chain *c)
{
	pk b = { out, 0 };
	put32(&b, c->key_id); put32(&b, c->n);
	put(&b, c->ck, E2E_KEY); put(&b, c->sig_pk, E2E_KEY);
	put_skipped(&b, c->skipped, c->nskipped);
	return b.n;
}

static bool unpack_chain(e2e_chain *c, const uint8_t *p, size_t n)
{
	upk b = { p, n, 0, false };
	c->key_id = get32(&b); c->n = get32(&b);
	get(&b, c->ck, E2E_KEY); get(&b, c->sig_pk, E2E_KEY);
	get_skipped(&b, c->skipped, &c->nskipped);
	return !b.bad && b.off == n;
}

/* ---- lookups ---- */

void state_new_identity(cstate *st)
{
	e2e_ed25519_keypair(st->ik_pk, st->ik_sk, NULL);
	st->spk_id = 1;
	e2e_x25519_keypair(st->spk_pk, st->spk_sk, NULL);
	e2e_sign(st->spk_sig, st->spk_pk, E2E_KEY, st->ik_sk);
	st->next_opk_id = 1;
}

void state_new_opks(cstate *st, size_t n, cbw *w)
{
	st->opks = xrealloc(st->opks, (st->nopks + n) * sizeof *st->opks);
	cbw_array(w, n);
	for (size_t i = 0; i < n; i++) {
		opk_priv *o = &st->opks[st->nopks++];
		uint8_t pub[E2E_KEY];
		o->id = st->next_opk_id++;
		e2e_x25519_keypair(pub, o->sk, NULL);
		cbw_map(w, 2);
		cbw_text(w, "id");
		cbw_uint(w, o->id);
		cbw_text(w, "key");
		cbw_bytes(w, pub, E2E_KEY);
	}
}

opk_priv *state_opk(cstate *st, uint32_t id)
{
	for (size_t i = 0; i < st->nopks; i++)
		if (st->opks[i].id == id)
			return &st->opks[i];
	return NULL;
}

void state_drop_opk(cstate *st, uint32_t id)
{
	opk_priv *o = state_opk(st, id);
	if (!o)
		return;
	e2e_wipe(o, sizeof *o);
	*o = st->opks[--st->nopks];
}

peer *state_peer(cstate *st, const char *addr, bool create)
{
	for (size_t i = 0; i < st->npeers; i++)
		if (strcmp(st->peers[i].addr, addr) == 0)
			return &st->peers[i];
	if (!create)
		return NULL;
	st->peers = xrealloc(st->peers, (st->npeers + 1) * sizeof *st->peers);
	peer *p = &st->peers[st->npeers++];
	memset(p, 0, sizeof *p);
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	return p;
}

static void session_free(e2e_session *s)
{
	if (s) {
		e2e_wipe(s, sizeof *s);
		free(s);
	}
}

void state_peer_push(peer *p, e2e_session *s)
{
	if (p->nsess == SESSIONS_PER_PEER)
		session_free(p->sess[--p->nsess]);
	memmove(p->sess + 1, p->sess, (size_t)p->nsess * sizeof p->sess[0]);
	p->sess[0] = s;
	p->nsess++;
}

static void peer_clear(peer *p)
{
	for (int i = 0; i < p->nsess; i++)
		session_free(p->sess[i]);
	p->nsess = 0;
}

void state_peer_forget(cstate *st, const char *addr)
{
	peer *p = state_peer(st, addr, false);
	if (!p)
		return;
	peer_clear(p);
	*p = st->peers[--st->npeers];
}

static void chain_free(e2e_chain *c)
{
	if (c) {
		e2e_wipe(c, sizeof *c);
		free(c);
	}
}

own_skey *state_own_skey(cstate *st, const char *gid, bool create)
{
	for (size_t i = 0; i < st->nown; i++)
		if (strcmp(st->own[i].gid, gid) == 0)
			return &st->own[i];
	if (!create)
		return NULL;
	st->own = xrealloc(st->own, (st->nown + 1) * sizeof *st->own);
	own_skey *k = &st->own[st->nown++];
	memset(k, 0, sizeof *k);
	snprintf(k->gid, sizeof k->gid, "%s", gid);
	return k;
}

bool own_skey_has(const own_skey *k, const char *addr)
{
	for (size_t i = 0; i < k->nsent_to; i++)
		if (strcmp(k->sent_to[i], addr) == 0)
			return true;
	return false;
}

void own_skey_add(own_skey *k, const char *addr)
{
	if (own_skey_has(k, addr))
		return;
	k->sent_to = xrealloc(k->sent_to, (k->nsent_to + 1) * sizeof *k->sent_to);
	snprintf(k->sent_to[k->nsent_to++], ADDR_MAX, "%s", addr);
}

/* A new chain (the next key id), known to nobody yet. */
void own_skey_reset(own_skey *k)
{
	uint32_t id = k->chain ? k->chain->key_id + 1 : 1;
	chain_free(k->chain);
	k->chain = xcalloc(sizeof *k->chain);
	e2e_chain_new(k->chain, id, NULL);
	free(k->sent_to);
	k->sent_to = NULL;
	k->nsent_to = 0;
	k->rotate = false;
}

peer_skey *state_peer_skey(cstate *st, const char *gid, const char *addr, bool create)
{
	for (size_t i = 0; i < st->npskeys; i++)
		if (strcmp(st->pskeys[i].gid, gid) == 0 && strcmp(st->pskeys[i].addr, addr) == 0)
			return &st->pskeys[i];
	if (!create)
		return NULL;
	st->pskeys = xrealloc(st->pskeys, (st->npskeys + 1) * sizeof *st->pskeys);
	peer_skey *k = &st->pskeys[st->npskeys++];
	memset(k, 0, sizeof *k);
	snprintf(k->gid, sizeof k->gid, "%s", gid);
	snprintf(k->addr, sizeof k->addr, "%s", addr);
	k->chain = xcalloc(sizeof *k->chain);
	return k;
}

static seen_conv *seen_of(cstate *st, const char *conv, bool create)
{
	for (size_t i = 0; i < st->nseen; i++)
		if (strcmp(st->seen[i].conv, conv) == 0)
			return &st->seen[i];
	if (!create)
		return NULL;
	st->seen = xrealloc(st->seen, (st->nseen + 1) * sizeof *st->seen);
	seen_conv *s = &st->seen[st->nseen++];
	memset(s, 0, sizeof *s);
	snprintf(s->conv, sizeof s->conv, "%s", conv);
	return s;
}

bool state_seen(cstate *st, const char *conv, uint64_t seq)
{
	seen_conv *s = seen_of(st, conv, false);
	if (!s)
		return false;
	if (seq <= s->floor)
		return true;
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->seqs[mid] == seq)
			return true;
		if (s->seqs[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void state_mark_seen(cstate *st, const char *conv, uint64_t seq)
{
	if (state_seen(st, conv, seq))
		return;
	seen_conv *s = seen_of(st, conv, true);
	size_t i = s->n;
	while (i > 0 && s->seqs[i - 1] > seq)
		i--;
	s->seqs = xrealloc(s->seqs, (s->n + 1) * sizeof *s->seqs);
	memmove(s->seqs + i + 1, s->seqs + i, (s->n - i) * sizeof *s->seqs);
	s->seqs[i] = seq;
	s->n++;
	/* fold a contiguous run above the floor, and forget the oldest beyond SEEN_KEEP */
	size_t drop = 0;
	while (drop < s->n && (s->seqs[drop] == s->floor + 1 || s->n - drop > SEEN_KEEP))
		s->floor = s->seqs[drop++];
	memmove(s->seqs, s->seqs + drop, (s->n - drop) * sizeof *s->seqs);
	s->n -= drop;
}

void state_history(cstate *st, const char *conv, uint64_t seq, const char *from, bool out,
                   const char *text, size_t len)
{
	if (st->nhist == HISTORY_KEEP) {
		free(st->hist[0].text);
		free(st->hist[0].users);
		free(st->hist[0].ust);
		memmove(st->hist, st->hist + 1, (HISTORY_KEEP - 1) * sizeof *st->hist);
		st->nhist--;
	}
	st->hist = xrealloc(st->hist, (st->nhist + 1) * sizeof *st->hist);
	hist *h = &st->hist[st->nhist++];
	memset(h, 0, sizeof *h);
	snprintf(h->conv, sizeof h->conv, "%s", conv);
	snprintf(h->from, sizeof h->from, "%s", from);
	h->seq = seq;
	h->out = out;
	h->status = out ? ST_SENT : ST_NONE;
	h->text = xstrndup(text, len);
}

void state_hist_users(cstate *st, const char (*users)[NAME_MAX_], size_t n)
{
	hist *h = st->nhist ? &st->hist[st->nhist - 1] : NULL;
	if (!h || !n)
		return;
	free(h->users);
	free(h->ust);
	h->users = xrealloc(NULL, n * sizeof *h->users);
	h->ust = xrealloc(NULL, n);
	memcpy(h->users, users, n * sizeof *h->users);
	memset(h->ust, ST_NONE, n);
	h->nusers = n;
}

hist *state_find_out(cstate *st, const char *conv, uint64_t seq)
{
	for (size_t i = st->nhist; i-- > 0;)
		if (st->hist[i].out && st->hist[i].seq == seq && strcmp(st->hist[i].conv, conv) == 0)
			return &st->hist[i];
	return NULL;
}

bool state_pending_add(cstate *st, const char *conv, uint64_t seq, const char *from,
                       const uint8_t *pt, size_t len)
{
	for (size_t i = 0; i < st->npdl; i++)
		if (st->pdl[i].seq == seq && strcmp(st->pdl[i].conv, conv) == 0)
			return true;
	if (st->npdl >= PENDING_DL_MAX || len > PENDING_DL_PT_MAX)
		return false;
	st->pdl = xrealloc(st->pdl, (st->npdl + 1) * sizeof *st->pdl);
	pending_dl *p = &st->pdl[st->npdl++];
	memset(p, 0, sizeof *p);
	snprintf(p->conv, sizeof p->conv, "%s", conv);
	snprintf(p->from, sizeof p->from, "%s", from);
	p->seq = seq;
	p->pt = xrealloc(NULL, len);
	memcpy(p->pt, pt, len);
	p->len = len;
	return true;
}

void state_pending_drop(cstate *st, size_t i)
{
	if (i >= st->npdl)
		return;
	e2e_wipe(st->pdl[i].pt, st->pdl[i].len);
	free(st->pdl[i].pt);
	memmove(st->pdl + i, st->pdl + i + 1, (st->npdl - i - 1) * sizeof *st->pdl);
	st->npdl--;
}

contact *state_contact(cstate *st, const char *user, bool create)
{
	for (size_t i = 0; i < st->ncontacts; i++)
		if (strcmp(st->contacts[i].user, user) == 0)
			return &st->contacts[i];
	if (!create)
		return NULL;
	st->contacts = xrealloc(st->contacts, (st->ncontacts + 1) * sizeof *st->contacts);
	contact *k = &st->contacts[st->ncontacts++];
	memset(k, 0, sizeof *k);
	snprintf(k->user, sizeof k->user, "%s", user);
	return k;
}

ckey *contact_key(contact *k, const char *dev)
{
	for (size_t i = 0; i < k->nkeys; i++)
		if (strcmp(k->keys[i].dev, dev) == 0)
			return &k->keys[i];
	return NULL;
}

void contact_set_key(contact *k, const char *dev, const uint8_t ik[E2E_KEY])
{
	ckey *e = contact_key(k, dev);
	if (!e) {
		k->keys = xrealloc(k->keys, (k->nkeys + 1) * sizeof *k->keys);
		e = &k->keys[k->nkeys++];
		memset(e, 0, sizeof *e);
		snprintf(e->dev, sizeof e->dev, "%s", dev);
	}
	memcpy(e->ik, ik, E2E_KEY);
}

void contact_drop_key(contact *k, const char *dev)
{
	ckey *e = contact_key(k, dev);
	if (e)
		*e = k->keys[--k->nkeys];
}

/* ---- the file ---- */

int state_save(const cstate *st)
{
	cbw w;
	uint8_t buf[PACK_MAX];
	char tmp[sizeof st->path + 8];

	cbw_init(&w);
	cbw_map(&w, 16 + (st->has_log_pub ? 1 : 0) + (st->log_size ? 2 : 0) + (st->npdl ? 1 : 0));
	cbw_text(&w, "v"); cbw_uint(&w, STATE_VERSION);
	cbw_text(&w, "registered"); cbw_bool(&w, st->registered);
	cbw_text(&w, "ik_pk"); cbw_bytes(&w, st->ik_pk, E2E_KEY);
	cbw_text(&w, "ik_sk"); cbw_bytes(&w, st->ik_sk, E2E_EDSK);
	cbw_text(&w, "spk_id"); cbw_uint(&w, st->spk_id);
	cbw_text(&w, "spk_pk"); cbw_bytes(&w, st->spk_pk, E2E_KEY);
	cbw_text(&w, "spk_sk"); cbw_bytes(&w, st->spk_sk, E2E_KEY);
	cbw_text(&w, "spk_sig"); cbw_bytes(&w, st->spk_sig, E2E_SIG);
	cbw_text(&w, "next_opk"); cbw_uint(&w, st->next_opk_id);
	if (st->has_log_pub) {
		cbw_text(&w, "log_pub"); cbw_bytes(&w, st->log_pub, KL_PUB);
	}
	if (st->log_size) {
		cbw_text(&w, "log_size"); cbw_uint(&w, st->log_size);
		cbw_text(&w, "log_root"); cbw_bytes(&w, st->log_root, KL_HASH);
	}
	cbw_text(&w, "opks");
	cbw_array(&w, st->nopks);
	for (size_t i = 0; i < st->nopks; i++) {
		cbw_array(&w, 2);
		cbw_uint(&w, st->opks[i].id);
		cbw_bytes(&w, st->opks[i].sk, E2E_KEY);
	}
	cbw_text(&w, "peers");
	cbw_array(&w, st->npeers);
	for (size_t i = 0; i < st->npeers; i++) {
		const peer *p = &st->peers[i];
		cbw_array(&w, 2);
		cbw_text(&w, p->addr);
		cbw_array(&w, (size_t)p->nsess);
		for (int j = 0; j < p->nsess; j++)
			cbw_bytes(&w, buf, pack_session(buf, p->sess[j]));
	}
	cbw_text(&w, "own");
	cbw_array(&w, st->nown);
	for (size_t i = 0; i < st->nown; i++) {
		const own_skey *k = &st->own[i];
		cbw_array(&w, 4);
		cbw_text(&w, k->gid);
		cbw_bool(&w, k->rotate || !k->chain);
		if (k->chain)
			cbw_bytes(&w, buf, pack_chain(buf, k->chain));
		else
			cbw_null(&w);
		cbw_array(&w, k->nsent_to);
		for (size_t j = 0; j < k->nsent_to; j++)
			cbw_text(&w, k->sent_to[j]);
	}
	cbw_text(&w, "pskeys");
	cbw_array(&w, st->npskeys);
	for (size_t i = 0; i < st->npskeys; i++) {
		cbw_array(&w, 3);
		cbw_text(&w, st->pskeys[i].gid);
		cbw_text(&w, st->pskeys[i].addr);
		cbw_bytes(&w, buf, pack_chain(buf, st->pskeys[i].chain));
	}
	cbw_text(&w, "seen");
	cbw_array(&w, st->nseen);
	for (size_t i = 0; i < st->nseen; i++) {
		const seen_conv *s = &st->seen[i];
		cbw_array(&w, 3);
		cbw_text(&w, s->conv);
		cbw_uint(&w, s->floor);
		cbw_array(&w, s->n);
		for (size_t j = 0; j < s->n; j++)
			cbw_uint(&w, s->seqs[j]);
	}
	cbw_text(&w, "hist");
	cbw_array(&w, st->nhist);
	for (size_t i = 0; i < st->nhist; i++) {
		const hist *h = &st->hist[i];
		cbw_array(&w, h->nusers ? 7 : 6);
		cbw_text(&w, h->conv);
		cbw_uint(&w, h->seq);
		cbw_text(&w, h->from);
		cbw_bool(&w, h->out);
		cbw_uint(&w, (uint64_t)h->status);
		cbw_text(&w, h->text);
		if (h->nusers) {   /* a group message of ours: [[user, status] …] */
			cbw_array(&w, h->nusers);
			for (size_t j = 0; j < h->nusers; j++) {
				cbw_array(&w, 2);
				cbw_text(&w, h->users[j]);
				cbw_uint(&w, h->ust[j]);
			}
		}
	}
	cbw_text(&w, "contacts");   /* [user, verified, complete, [[device, ik] …]] */
	cbw_array(&w, st->ncontacts);
	for (size_t i = 0; i < st->ncontacts; i++) {
		const contact *k = &st->contacts[i];
		cbw_array(&w, 4);
		cbw_text(&w, k->user);
		cbw_bool(&w, k->verified);
		cbw_bool(&w, k->complete);
		cbw_array(&w, k->nkeys);
		for (size_t j = 0; j < k->nkeys; j++) {
			cbw_array(&w, 2);
			cbw_text(&w, k->keys[j].dev);
			cbw_bytes(&w, k->keys[j].ik, E2E_KEY);
		}
	}
	if (st->npdl) {   /* [conv, seq, from, pointer plaintext] (absent: none) */
		cbw_text(&w, "downloads");
		cbw_array(&w, st->npdl);
		for (size_t i = 0; i < st->npdl; i++) {
			cbw_array(&w, 4);
			cbw_text(&w, st->pdl[i].conv);
			cbw_uint(&w, st->pdl[i].seq);
			cbw_text(&w, st->pdl[i].from);
			cbw_bytes(&w, st->pdl[i].pt, st->pdl[i].len);
		}
	}
	e2e_wipe(buf, sizeof buf);

	int rc = cbw_status(&w);
	if (rc == CHAT_OK) {
		snprintf(tmp, sizeof tmp, "%s.tmp", st->path);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, w.buf, w.len) != (ssize_t)w.len || fsync(fd) != 0 ||
		    close(fd) != 0 || rename(tmp, st->path) != 0) {
			fprintf(stderr, "chat-client: cannot write %s: %s\n", st->path, strerror(errno));
			rc = CHAT_EIO;
		}
	}
	e2e_wipe(w.buf, w.cap);
	cbw_free(&w);
	return rc;
}

/* ---- reading it back ---- */

typedef struct rd { cbr r; bool bad; } rd;

static cbr_item rd_next(rd *r, enum cbr_type want)
{
	cbr_item it = { 0 };
	if (!r->bad && (cbr_next(&r->r, &it) != CHAT_OK || it.type != want || it.indef))
		r->bad = true;
	if (r->bad)
		memset(&it, 0, sizeof it);
	return it;
}

static uint64_t rd_uint(rd *r) { return rd_next(r, CBR_UINT).u; }
static size_t rd_array(rd *r) { return (size_t)rd_next(r, CBR_ARRAY).u; }

static bool rd_bool(rd *r)
{
	cbr_item it = rd_next(r, CBR_BOOL);
	return it.b;
}

static void rd_bytes(rd *r, void *dst, size_t n)
{
	cbr_item it = rd_next(r, CBR_BYTES);
	if (!r->bad && it.len == n)
		memcpy(dst, it.ptr, n);
	else
		r->bad = true;
}

static void rd_text(rd *r, char *dst, size_t cap)
{
	cbr_item it = rd_next(r, CBR_TEXT);
	if (r->bad || it.len >= cap) {
		r->bad = true;
		dst[0] = 0;
		return;
	}
	memcpy(dst, it.ptr, it.len);
	dst[it.len] = 0;
}

static void read_body(cstate *st, rd *r)
{
	cbr_item map = rd_next(r, CBR_MAP), key;
	uint64_t i = 0;
	while (!r->bad && cbr_map_next(&r->r, &map, &i, &key)) {
		if (cbr_eq(&key, "v")) {
			if (rd_uint(r) != STATE_VERSION)
				r->bad = true;
		} else if (cbr_eq(&key, "registered")) {
			st->registered = rd_bool(r);
		} else if (cbr_eq(&key, "ik_pk")) {
			rd_bytes(r, st->ik_pk, E2E_KEY);
		} else if (cbr_eq(&key, "ik_sk")) {
			rd_bytes(r, st->ik_sk, E2E_EDSK);
		} else if (cbr_eq(&key, "spk_id")) {
			st->spk_id = (uint32_t)rd_uint(r);
		} else if (cbr_eq(&key, "spk_pk")) {
			rd_bytes(r, st->spk_pk, E2E_KEY);
		} else if (cbr_eq(&key, "spk_sk")) {
			rd_bytes(r, st->spk_sk, E2E_KEY);
		} else if (cbr_eq(&key, "spk_sig")) {
			rd_bytes(r, st->spk_sig, E2E_SIG);
		} else if (cbr_eq(&key, "log_pub")) {
			rd_bytes(r, st->log_pub, KL_PUB);
			st->has_log_pub = true;
		} else if (cbr_eq(&key, "log_size")) {
			st->log_size = rd_uint(r);
		} else if (cbr_eq(&key, "log_root")) {
			rd_bytes(r, st->log_root, KL_HASH);
		} else if (cbr_eq(&key, "next_opk")) {
			st->next_opk_id = (uint32_t)rd_uint(r);
		} else if (cbr_eq(&key, "opks")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				st->opks = xrealloc(st->opks, (st->nopks + 1) * sizeof *st->opks);
				opk_priv *o = &st->opks[st->nopks++];
				rd_array(r);
				o->id = (uint32_t)rd_uint(r);
				rd_bytes(r, o->sk, E2E_KEY);
			}
		} else if (cbr_eq(&key, "peers")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char addr[ADDR_MAX];
				rd_array(r);
				rd_text(r, addr, sizeof addr);
				peer *p = state_peer(st, addr, true);
				size_t ns = rd_array(r);
				for (size_t k = 0; k < ns && !r->bad; k++) {
					cbr_item b = rd_next(r, CBR_BYTES);
					e2e_session *s = xcalloc(sizeof *s);
					if (r->bad || !unpack_session(s, b.ptr, b.len) ||
					    p->nsess == SESSIONS_PER_PEER) {
						r->bad = true;
						session_free(s);
						break;
					}
					p->sess[p->nsess++] = s;
				}
			}
		} else if (cbr_eq(&key, "own")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char gid[NAME_MAX_];
				rd_array(r);
				rd_text(r, gid, sizeof gid);
				own_skey *k = state_own_skey(st, gid, true);
				k->rotate = rd_bool(r);
				cbr_item b;
				if (cbr_next(&r->r, &b) != CHAT_OK) {
					r->bad = true;
					break;
				}
				if (b.type == CBR_BYTES) {
					k->chain = xcalloc(sizeof *k->chain);
					if (!unpack_chain(k->chain, b.ptr, b.len))
						r->bad = true;
				} else if (b.type != CBR_NULL) {
					r->bad = true;
				}
				size_t m = rd_array(r);
				for (size_t x = 0; x < m && !r->bad; x++) {
					char a[ADDR_MAX];
					rd_text(r, a, sizeof a);
					own_skey_add(k, a);
				}
			}
		} else if (cbr_eq(&key, "pskeys")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char gid[NAME_MAX_], addr[ADDR_MAX];
				rd_array(r);
				rd_text(r, gid, sizeof gid);
				rd_text(r, addr, sizeof addr);
				peer_skey *k = state_peer_skey(st, gid, addr, true);
				cbr_item b = rd_next(r, CBR_BYTES);
				if (!r->bad && !unpack_chain(k->chain, b.ptr, b.len))
					r->bad = true;
			}
		} else if (cbr_eq(&key, "seen")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char conv[NAME_MAX_ + 4];
				rd_array(r);
				rd_text(r, conv, sizeof conv);
				seen_conv *s = seen_of(st, conv, true);
				s->floor = rd_uint(r);
				size_t m = rd_array(r);
				s->seqs = xrealloc(s->seqs, m * sizeof *s->seqs);
				for (size_t x = 0; x < m && !r->bad; x++)
					s->seqs[s->n++] = rd_uint(r);
			}
		} else if (cbr_eq(&key, "hist")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char conv[NAME_MAX_ + 4], from[ADDR_MAX];
				size_t fields = rd_array(r);
				rd_text(r, conv, sizeof conv);
				uint64_t seq = rd_uint(r);
				rd_text(r, from, sizeof from);
				bool out = rd_bool(r);
				int status = (int)rd_uint(r);
				cbr_item t = rd_next(r, CBR_TEXT);
				if (r->bad)
					break;
				state_history(st, conv, seq, from, out, (const char *)t.ptr, t.len);
				hist *h = &st->hist[st->nhist - 1];
				h->status = status;
				size_t nu = fields == 7 ? rd_array(r) : 0;
				if (nu > 4096)
					r->bad = true;
				if (nu && !r->bad) {
					h->users = xrealloc(NULL, nu * sizeof *h->users);
					h->ust = xrealloc(NULL, nu);
				}
				for (size_t x = 0; x < nu && !r->bad; x++) {
					rd_array(r);
					rd_text(r, h->users[x], NAME_MAX_);
					h->ust[x] = (uint8_t)(rd_uint(r) & 3);
					h->nusers = x + 1;
				}
			}
		} else if (cbr_eq(&key, "contacts")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char user[NAME_MAX_];
				rd_array(r);
				rd_text(r, user, sizeof user);
				if (r->bad || !user[0] || state_contact(st, user, false)) {
					r->bad = true;
					break;
				}
				contact *k = state_contact(st, user, true);
				k->verified = rd_bool(r);
				k->complete = rd_bool(r);
				size_t m = rd_array(r);
				for (size_t x = 0; x < m && !r->bad; x++) {
					char dev[NAME_MAX_];
					uint8_t ik[E2E_KEY];
					rd_array(r);
					rd_text(r, dev, sizeof dev);
					rd_bytes(r, ik, E2E_KEY);
					if (!r->bad && (!dev[0] || contact_key(k, dev)))
						r->bad = true;
					if (!r->bad)
						contact_set_key(k, dev, ik);
				}
			}
		} else if (cbr_eq(&key, "downloads")) {
			size_t n = rd_array(r);
			for (size_t j = 0; j < n && !r->bad; j++) {
				char conv[NAME_MAX_ + 4], from[ADDR_MAX];
				rd_array(r);
				rd_text(r, conv, sizeof conv);
				uint64_t seq = rd_uint(r);
				rd_text(r, from, sizeof from);
				cbr_item b = rd_next(r, CBR_BYTES);
				if (!r->bad && (b.len == 0 || !state_pending_add(st, conv, seq, from, b.ptr, b.len)))
					r->bad = true;
			}
		} else if (cbr_skip_next(&r->r) != CHAT_OK) {
			r->bad = true;
		}
	}
	if (r->r.err_msg)
		r->bad = true;
}

int state_load(cstate *st, const char *dir, bool *fresh)
{
	memset(st, 0, sizeof *st);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "chat-client: cannot create %s: %s\n", dir, strerror(errno));
		return CHAT_EIO;
	}
	snprintf(st->path, sizeof st->path, "%s/state", dir);
	FILE *f = fopen(st->path, "rb");
	if (!f) {
		if (errno != ENOENT) {
			fprintf(stderr, "chat-client: cannot read %s: %s\n", st->path, strerror(errno));
			return CHAT_EIO;
		}
		*fresh = true;
		return CHAT_OK;
	}
	*fresh = false;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, got;
	do {
		if (len == cap)
			buf = xrealloc(buf, cap = cap ? 2 * cap : 65536);
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	fclose(f);
	rd r = { .bad = false };
	cbr_init(&r.r, buf, len);
	read_body(st, &r);
	e2e_wipe(buf, cap);
	free(buf);
	if (r.bad || !cbr_done(&r.r)) {
		fprintf(stderr, "chat-client: %s is damaged (%s); move it away to start over\n",
		        st->path, r.r.err_msg ? r.r.err_msg : "unexpected content");
		return CHAT_ECORRUPT;
	}
	return CHAT_OK;
}

void state_free(cstate *st)
{
	for (size_t i = 0; i < st->npeers; i++)
		peer_clear(&st->peers[i]);
	free(st->peers);
	for (size_t i = 0; i < st->nown; i++) {
		chain_free(st->own[i].chain);
		free(st->own[i].sent_to);
	}
	free(st->own);
	for (size_t i = 0; i < st->npskeys; i++)
		chain_free(st->pskeys[i].chain);
	free(st->pskeys);
	for (size_t i = 0; i < st->nseen; i++)
		free(st->seen[i].seqs);
	free(st->seen);
	for (size_t i = 0; i < st->nhist; i++) {
		free(st->hist[i].text);
		free(st->hist[i].users);
		free(st->hist[i].ust);
	}
	free(st->hist);
	for (size_t i = 0; i < st->ncontacts; i++)
		free(st->contacts[i].keys);
	free(st->contacts);
	while (st->npdl)
		state_pending_drop(st, st->npdl - 1);
	free(st->pdl);
	if (st->opks)
		e2e_wipe(st->opks, st->nopks * sizeof *st->opks);
	free(st->opks);
	e2e_wipe(st, sizeof *st);
}
