/* receipts.c — how far each recipient user got with each message: delivered,
 * then read.
 *
 * One small record per (message, user) in rstate, keyed conv \0 seq \0 user
 * so the expiry sweep deletes a message's states with one prefix walk.
 * States only move forward; the sender's own user has none, and group
 * events (which take a seq in a group's order) have none at all. The message
 * record (kept as metadata after its body is gone) supplies the sender to
 * notify.
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "store_internal.h"

static bool seen_before(const uint64_t *v, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (v[j] == v[i])
			return true;
	return false;
}

static bool sent_by(const char *from, const char *user, size_t ul)
{
	return strncmp(from, user, ul) == 0 && from[ul] == '/';
}

/* Moves one message's state for `by` forward; from_out gets its sender.
 * The message is read unless the caller already has it (pre). */
static int receipt_one(store *st, const uint8_t *mk, size_t mklen, const char *by, size_t ul,
                       enum store_rstate state, bool received, char *from_out, bool *changed,
                       enum store_rstate *prev, const store_msg *pre)
{
	rocksdb_pinnableslice_t *val = NULL;
	store_msg m;
	char conv[CHAT_CONV_MAX + 1];
	int rc = CHAT_OK;
	if (pre)
		m = *pre;
	else
		rc = store_msg_load(st, mk, mklen, &m, &val, conv);
	if (rc == CHAT_ENOTFOUND || rc == CHAT_ECORRUPT)
		return CHAT_OK; /* unknown or expired */
	if (rc != CHAT_OK)
		return rc;
	bool event = m.kind != STORE_KIND_MSG;
	if (!event)
		snprintf(from_out, CHAT_ADDR_MAX + 1, "%s", m.from);
	rocksdb_pinnableslice_destroy(val);
	if (event)
		return CHAT_OK; /* a group event: acknowledged, but it has no state */
	if (sent_by(from_out, by, ul))
		return CHAT_OK;

	uint8_t key[STORE_RCPTKEY_MAX], cur = STORE_R_NONE;
	size_t klen = store_rcptkey(key, mk, mklen, by, ul);
	rc = store_get_fixed(st, STORE_CF_RSTATE, key, klen, &cur, 1);
	if (rc != CHAT_OK && rc != CHAT_ENOTFOUND && rc != CHAT_ECORRUPT)
		return rc;
	if (rc == CHAT_OK && cur <= STORE_R_READ)
		*prev = (enum store_rstate)cur;
	if (rc == CHAT_OK && cur >= state)
		return CHAT_OK;
	if (rc != CHAT_OK && !received)
		return CHAT_OK; /* never received by this user: nothing to move */
	uint8_t v = (uint8_t)state;
	rocksdb_writebatch_put_cf(st->wb, st->cf[STORE_CF_RSTATE], (const char *)key, klen,
	                          (const char *)&v, 1);
	*changed = true;
	return CHAT_OK;
}

int store_receipt_batch(store *st, const char *addr, const char *by, size_t ul, const char *conv,
                        const uint64_t *seqs, size_t n, enum store_rstate state,
                        const bool *received, uint64_t *qseqs_out,
                        char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed,
                        enum store_rstate *prev_out)
{
	size_t alen = addr ? strlen(addr) : 0;
	store_batch(st);
	int64_t gone = 0;
	int rc = CHAT_OK;
	for (size_t i = 0; i < n && rc == CHAT_OK; i++) {
		uint8_t mk[STORE_MSGKEY_MAX];
		size_t mklen = store_msgkey(mk, conv, seqs[i]);
		enum store_rstate prev = STORE_R_NONE;
		if (qseqs_out)
			qseqs_out[i] = 0;
		if (state != STORE_R_NONE) {
			from_out[i][0] = '\0';
			changed[i] = false;
		}
		if (prev_out)
			prev_out[i] = STORE_R_NONE;
		if (!mklen)
			continue;
		bool again = seen_before(seqs, i), got = !received || received[i];
		store_msg m;
		rocksdb_pinnableslice_t *val = NULL;
		char cv[CHAT_CONV_MAX + 1];
		bool have = false;
		if (addr) {
			if (!again)
				rc = store_ack_one(st, addr, alen, mk, mklen, &qseqs_out[i], &m, &val, cv,
				                   &have);
			got = qseqs_out[i] != 0;
			gone += got;
		}
		if (rc == CHAT_OK && state != STORE_R_NONE)
			rc = receipt_one(st, mk, mklen, by, ul, state, got, from_out[i],
			                 again ? &(bool){ false } : &changed[i], &prev, have ? &m : NULL);
		rocksdb_pinnableslice_destroy(val);
		if (prev_out)
			prev_out[i] = prev;
	}
	if (rc == CHAT_OK && gone)
		rc = store_queue_count_add(st, addr, alen, -gone);
	if (rc != CHAT_OK) {
		store_rollback(st);
		return rc;
	}
	return rocksdb_writebatch_count(st->wb) ? store_commit(st) : CHAT_OK;
}

static int state_check(store *st, enum store_rstate state)
{
	return state == STORE_R_DELIVERED || state == STORE_R_READ
	       ? CHAT_OK : store_fail(st, CHAT_EINVAL, "bad receipt state %d", (int)state);
}

int store_receipts(store *st, const char *conv, const uint64_t *seqs, size_t n, const char *by,
                   enum store_rstate state, char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed,
                   enum store_rstate *prev_out, const bool *received)
{
	size_t ul = strnlen(by, CHAT_USER_MAX + 1);
	if (!ul || ul > CHAT_USER_MAX)
		return store_fail(st, CHAT_EINVAL, "bad user id");
	int rc = state_check(st, state);
	return rc ? rc : store_receipt_batch(st, NULL, by, ul, conv, seqs, n, state, received, NULL,
	                                     from_out, changed, prev_out);
}

int store_deliver(store *st, const char *addr, const char *conv, const uint64_t *seqs, size_t n,
                  enum store_rstate state, uint64_t *qseqs_out,
                  char (*from_out)[CHAT_ADDR_MAX + 1], bool *changed, enum store_rstate *prev_out)
{
	size_t ul = chat_addr_user_len(addr);
	if (!store_addrlen(addr) || !ul || ul > CHAT_USER_MAX)
		return store_fail(st, CHAT_EINVAL, "bad device address");
	int rc = state_check(st, state);
	return rc ? rc : store_receipt_batch(st, addr, addr, ul, conv, seqs, n, state, NULL,
	                                     qseqs_out, from_out, changed, prev_out);
}
