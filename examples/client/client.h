// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* client.h — chat-client's modules and the state they share.
 *
 *   client_state.c  the device's keys, sessions, sender keys, seen (conv, seq)
 *                   and message history; one file under --state, rewritten
 *                   atomically after every change
 *   client_net.c    libmosquitto: connect, the queue of received payloads,
 *                   bounded waits for one reply, ctl and key-server requests
 *   client_chat.c   registration and top-up, encrypting a send (1:1 and
 *                   group), decrypting inbox events, receipts
 *   client_trust.c  the identity keys seen for each user's devices, the
 *                   notices when they change, safety numbers and the
 *                   verified mark (docs/E2EE.md §8)
 *   client_keylog.c the key directory log: heads, inclusion and consistency
 *                   proofs with every bundle, this device's own key history
 *   client_main.c   the command line: --send, --group, --recv, interactive,
 *                   --safety-number, --verify, --send-file
 *
 * The crypto itself is e2ee.c; the format is docs/E2EE.md.
 */
#ifndef CHAT_CLIENT_H
#define CHAT_CLIENT_H

#include "cbor_io.h"
#include "e2ee.h"
#include "keylog.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_MAX 100            /* "U/D" plus the terminator */
#define NAME_MAX_ 72            /* user or group id plus the terminator */
#define OPK_BATCH 100           /* one-time keys per upload */
#define SEEN_KEEP 4096          /* seqs remembered per conversation */
#define HISTORY_KEEP 500        /* messages kept in the state file */
#define SESSIONS_PER_PEER 2

/* ---- state ---- */

typedef struct opk_priv { uint32_t id; uint8_t sk[E2E_KEY]; } opk_priv;

typedef struct peer {           /* a remote device (another user's, or our own other one) */
	char addr[ADDR_MAX];
	int nsess;
	e2e_session *sess[SESSIONS_PER_PEER];   /* newest first; we send on [0] */
} peer;

typedef struct own_skey {       /* our sender key in one group */
	char gid[NAME_MAX_];
	bool rotate;                /* make a new one before the next send */
	e2e_chain *chain;
	char (*sent_to)[ADDR_MAX];  /* devices that have it */
	size_t nsent_to;
} own_skey;

typedef struct peer_skey {      /* another device's sender key in one group */
	char gid[NAME_MAX_], addr[ADDR_MAX];
	e2e_chain *chain;
} peer_skey;

typedef struct seen_conv {
	char conv[NAME_MAX_ + 4];
	uint64_t floor;             /* every seq <= floor counts as seen */
	uint64_t *seqs;             /* sorted, > floor */
	size_t n;
} seen_conv;

enum msg_status { ST_NONE, ST_SENT, ST_DELIVERED, ST_READ };

typedef struct hist {           /* one message in the history */
	char conv[NAME_MAX_ + 4], from[ADDR_MAX];
	uint64_t seq;
	bool out;                   /* ours: status is meaningful */
	int status;
	char *text;
	/* ours in a group: the users it went to and how far each got
	 * (ST_NONE, ST_DELIVERED, ST_READ); status says "all of them" */
	char (*users)[NAME_MAX_];
	uint8_t *ust;
	size_t nusers;
} hist;

typedef struct ckey {           /* one device's identity key as we last saw it */
	char dev[NAME_MAX_];
	uint8_t ik[E2E_KEY];
} ckey;

typedef struct contact {        /* a user's key set (ours too): docs/E2EE.md §8 */
	char user[NAME_MAX_];
	bool verified;              /* the user compared the safety number; cleared on a change */
	bool complete;              /* keys has had every listed device once (else partial) */
	ckey *keys; size_t nkeys;
} contact;

typedef struct pending_dl {     /* an attachment whose download failed for now */
	char conv[NAME_MAX_ + 4], from[ADDR_MAX];
	uint64_t seq;
	uint8_t *pt;                /* the pointer plaintext (holds the file key) */
	size_t len;
} pending_dl;
#define PENDING_DL_MAX 256      /* pending downloads kept; more are refused */
#define PENDING_DL_PT_MAX 65536 /* a pointer plaintext's size, at most */

typedef struct cstate {
	char path[4096];
	bool registered;
	uint8_t ik_pk[E2E_KEY], ik_sk[E2E_EDSK];
	uint32_t spk_id;
	uint8_t spk_pk[E2E_KEY], spk_sk[E2E_KEY], spk_sig[E2E_SIG];
	uint32_t next_opk_id;
	opk_priv *opks; size_t nopks;
	peer *peers; size_t npeers;
	own_skey *own; size_t nown;
	peer_skey *pskeys; size_t npskeys;
	seen_conv *seen; size_t nseen;
	hist *hist; size_t nhist;
	contact *contacts; size_t ncontacts;
	pending_dl *pdl; size_t npdl;   /* oldest first */
	/* the key directory log (client_keylog.c): its key and the last head seen */
	bool has_log_pub;
	uint8_t log_pub[KL_PUB];
	uint64_t log_size;          /* 0: no head seen yet */
	uint8_t log_root[KL_HASH];
} cstate;

/* Loads DIR/state (or starts empty: *fresh = true). CHAT_OK or an error
 * with a message on stderr. */
int state_load(cstate *st, const char *dir, bool *fresh);
int state_save(const cstate *st);
void state_free(cstate *st);

void state_new_identity(cstate *st);
/* Appends n fresh one-time keys; their public halves go to cbw w as the
 * upload's opks array. */
void state_new_opks(cstate *st, size_t n, cbw *w);
opk_priv *state_opk(cstate *st, uint32_t id);
void state_drop_opk(cstate *st, uint32_t id);

peer *state_peer(cstate *st, const char *addr, bool create);
void state_peer_push(peer *p, e2e_session *s);   /* new session in front */
void state_peer_forget(cstate *st, const char *addr);

own_skey *state_own_skey(cstate *st, const char *gid, bool create);
bool own_skey_has(const own_skey *k, const char *addr);
void own_skey_add(own_skey *k, const char *addr);
void own_skey_reset(own_skey *k);
peer_skey *state_peer_skey(cstate *st, const char *gid, const char *addr, bool create);

bool state_seen(cstate *st, const char *conv, uint64_t seq);
void state_mark_seen(cstate *st, const char *conv, uint64_t seq);

void state_history(cstate *st, const char *conv, uint64_t seq, const char *from, bool out,
                   const char *text, size_t len);
hist *state_find_out(cstate *st, const char *conv, uint64_t seq);
/* Sets the recipient users of the newest history entry (a group send). */
void state_hist_users(cstate *st, const char (*users)[NAME_MAX_], size_t n);
/* Keeps a pending download (a copy of pt); false when PENDING_DL_MAX are
 * already kept. One already kept for (conv, seq) counts as kept. */
bool state_pending_add(cstate *st, const char *conv, uint64_t seq, const char *from,
                       const uint8_t *pt, size_t len);
void state_pending_drop(cstate *st, size_t i);   /* wipes it; the order is kept */
contact *state_contact(cstate *st, const char *user, bool create);
ckey *contact_key(contact *k, const char *dev);
void contact_set_key(contact *k, const char *dev, const uint8_t ik[E2E_KEY]);
void contact_drop_key(contact *k, const char *dev);

/* ---- net ---- */

typedef struct qmsg { char *topic; uint8_t *payload; size_t len; } qmsg;

typedef struct net {
	struct mosquitto *mosq;
	char addr[ADDR_MAX], user[NAME_MAX_], dev[NAME_MAX_];
	char t_inbox[160], t_resp[160], t_status[160], t_media_resp[160];
	bool connected, failed;
	int subacks, nsubs;         /* SUBACKs of the subscriptions made on connecting */
	int sub_mid, sub_state;     /* net_subscribe: its mid; 0 waiting, 1 granted, -1 refused */
	bool media_sub;             /* subscribed to chat/media/resp/U/D */
	qmsg *q; size_t nq, capq;
	int inflight;               /* our QoS 1 publishes not yet acknowledged */
	uint64_t next_rid;
	cbw w;
} net;

struct mqtt_tls;
/* Connects as addr with token, over TLS as tls says (mqtt_tls.h), and
 * subscribes to the key server's topics, and to the inbox too unless
 * inbox_later (a v2 client declares its capabilities first: chat_caps). */
int net_connect(net *n, const char *host, int port, const struct mqtt_tls *tls, const char *addr,
                const char *token, bool inbox_later);
void net_close(net *n);
/* Runs the network for up to ms milliseconds. false if the connection failed. */
bool net_pump(net *n, int ms);
int net_publish(net *n, const char *topic, const void *p, size_t len);
/* Waits (pumping) until no publish is in flight, up to ms. */
bool net_flush(net *n, int ms);
typedef bool (*qmatch)(const qmsg *m, void *ctx);
/* Takes the first queued payload that matches, waiting up to ms. NULL on timeout. */
qmsg *net_take(net *n, qmatch match, void *ctx, int ms);
/* Takes the oldest queued payload (or NULL). */
qmsg *net_pop(net *n);
void qmsg_free(qmsg *m);
/* Sends a ctl or key request built in n->w (a map whose first pair must be
 * written by the caller after net_req_begin) and waits for its reply. */
uint64_t net_req_begin(net *n, size_t extra_pairs, const char *op);
qmsg *net_ctl(net *n, uint64_t rid, int ms);
qmsg *net_keys(net *n, uint64_t rid, int ms);
/* A chat-media request (chat/media/req/U/D; subscribes to its answers on
 * first use). */
qmsg *net_media(net *n, uint64_t rid, int ms);
/* Subscribes to one more topic and waits for the broker's answer:
 * CHAT_OK, or CHAT_EDENIED when refused or unanswered. */
int net_subscribe(net *n, const char *topic, int ms);
uint64_t now_ms(void);

/* A decoded inbox event (pointers into the payload). */
#define EV_LIST_MAX 1024
typedef struct ev {
	cbr_item k, conv, from, body, cid, s, code, msg, gid, op, by, user, removed;
	uint64_t seq, rid;
	bool has_seq, has_rid, ok, done;
	uint64_t seqs[EV_LIST_MAX]; size_t nseqs;
	cbr_item list[EV_LIST_MAX]; size_t nlist;          /* devices / members / missing+extra */
} ev;
int ev_decode(ev *e, const uint8_t *p, size_t len);
/* Copies a text item into a C string (truncating to cap - 1). */
void item_str(char *dst, size_t cap, const cbr_item *it);

/* ---- chat ---- */

typedef struct client {
	cstate st;
	net net;
	const struct mqtt_tls *tls; /* its CA also checks the media service's HTTPS */
	char files[4096];           /* where received attachments are saved */
	bool interactive;
	bool sync_done;
	bool media_down;            /* chat-media did not answer: downloads wait for the next run */
	uint64_t last_msg_ms;
	/* pending delivered (and read) receipts, flushed after each batch */
	struct pending { char conv[NAME_MAX_ + 4]; uint64_t seqs[1000]; size_t n; bool read; } *pend;
	size_t npend;
	bool log_key_set;           /* --log-key: the key server's log key, out of band */
	uint8_t log_key[KL_PUB];
	/* protocol v2 (docs/PROTOCOL.md "Capabilities (v2)"); 1: the v1 forms only */
	int protocol;
	uint64_t caps_rid;          /* the `caps` request whose reply is awaited (0: none) */
	bool puback_delivered;      /* the server counts our PUBACK of a msg as delivered */
	/* while a send waits for its confirmation: the users a group send goes
	 * to, and who had it delivered before the confirmation (`dl`) */
	char (*rcpt)[NAME_MAX_]; size_t nrcpt;
	char (*dl)[NAME_MAX_]; size_t ndl;
} client;

/* Declares our capabilities (ctl `caps`), waits for its PUBACK, then
 * subscribes to the inbox (the order docs/PROTOCOL.md asks of a v2 client:
 * the replay the subscription starts uses them). The reply, which says
 * whether the server takes our PUBACK as the delivered receipt, is handled
 * by chat_process whenever it comes. */
int chat_caps(client *c);

int chat_register(client *c, bool fresh);
void chat_status(client *c, const qmsg *m);     /* a retained key status: top up when low */
/* Encrypts and sends text to a user (gid NULL) or a group; waits for `sent`.
 * CHAT_OK with conv and seq filled, or an error (message on stderr). */
int chat_send(client *c, const char *peer_user, const char *gid, const char *text,
              char *conv, size_t conv_cap, uint64_t *seq);
/* Handles every queued inbox event and key status, in every mode: with
 * --send/--group too, since the replay the inbox subscription starts comes
 * then, and on the patched broker its PUBACK already counts as delivered
 * (a message or a group change left unhandled would be lost to the user). */
void chat_process(client *c);
/* Sends a plaintext (type byte first) like chat_send; hist is what the
 * history keeps of it. */
int chat_send_plain(client *c, const char *peer_user, const char *gid, const uint8_t *pt,
                    size_t len, const char *hist, char *conv, size_t conv_cap, uint64_t *seq);
/* The devices a send to peer_user or gid goes to (as chat_send picks
 * them): *out (malloc'd, ADDR_MAX each) and *n. */
int chat_recipients(client *c, const char *peer_user, const char *gid, char (**out)[ADDR_MAX],
                    size_t *n);
/* Prints a received message line (conv TAB seq TAB from TAB text; control
 * characters of the text become spaces). */
void chat_print(client *c, const char *conv, uint64_t seq, const char *from, uint8_t *t, size_t n);

/* ---- attachments (client_media.c) ---- */

/* Encrypts the file at path, uploads it to chat-media and sends its
 * pointer (with caption, if any) to peer_user or gid. */
int media_send_file(client *c, const char *peer_user, const char *gid, const char *path,
                    const char *caption, char *conv, size_t conv_cap, uint64_t *seq);
/* A received pointer plaintext: downloads (resuming), checks the digest,
 * decrypts, saves under c->files and prints the saved path. CHAT_OK, or an
 * error reported on stderr (nothing saved); a failure for now keeps it as a
 * pending download in the state (media_retry_pending). */
int media_receive(client *c, const char *conv, uint64_t seq, const char *from, const uint8_t *pt,
                  size_t len);
/* Retries every pending download (after registration, in every mode): a
 * saved file or a permanent failure drops it; how many remain is said on
 * stderr. */
void media_retry_pending(client *c);
void chat_flush_receipts(client *c);

/* Sessions with every current device of `user` and of our own user (bundles
 * only where a session is missing), then the key sets checked against the
 * device lists: what --safety-number and --verify compute from. */
int chat_refresh_keys(client *c, const char *user);

/* ---- trust (client_trust.c) ---- */

/* A device's identity key, seen in a bundle or in an incoming X3DH message.
 * Another key than the one we had is a notice; so is a new device once the
 * user's set is complete (the first set seen for a user is trusted: trust on
 * first use). quiet: record a new device without a notice (a bundle that
 * completes a partial set). */
void trust_seen_key(client *c, const char *addr, const uint8_t ik[E2E_KEY], bool quiet);
/* `user`'s complete device list (ids, without "U/"): keys of devices not in
 * it are dropped (a notice each); listed devices we have a session with but
 * no key for get the session's key. */
void trust_device_list(client *c, const char *user, const char (*devs)[NAME_MAX_], size_t n);
/* The safety number of us and peer from the key sets we hold: CHAT_OK, or
 * an error (message on stderr) when a set is empty. */
int trust_safety(client *c, const char *peer, char *number, uint8_t *qr);

/* ---- key directory log (client_keylog.c) ---- */

/* The size of the last head seen (the `since` of a request), 0 if none. */
uint64_t keylog_since(client *c);
/* Reads a response's head and consistency proof (CHAT_EINVAL if malformed). */
int keylog_read_head(const qmsg *m, kl_head *h, bool *has_head, kl_hash *cons, size_t *ncons,
                     bool *has_cons);
/* Verifies a head (signature, consistency with the last one seen) and
 * remembers it. CHAT_OK, or an error after a loud message. */
int keylog_accept_head(client *c, const kl_head *h, const kl_hash *cons, size_t ncons,
                       bool has_cons);
/* Whether (user, dev, ik) is in the log of h where ref says (loud if not). */
bool keylog_check_entry(const kl_head *h, const char *user, const char *dev,
                        const uint8_t ik[KL_PUB], const kl_ref *ref);
/* Checks this device's own key history: no key in its name but its own. */
int keylog_check_self(client *c);

#endif
