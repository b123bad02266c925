// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* core.h — the chat server's decisions, free of mosquitto.
 *
 * The glue (glue.c, the only file that includes mosquitto_broker.h) turns
 * broker events into the calls below; the core decides who may connect,
 * subscribe and publish, what to store, whom to deliver to. It reaches the
 * outside only through core_io, so unit tests drive it with a recording
 * fake and the integration tests drive the real thing through a broker.
 *
 * Connections are identified by an opaque `conn` pointer (the broker's
 * struct mosquitto *): pointers recorded at auth time are the only trusted
 * link between a DISCONNECT and the connection it ends (the broker fires
 * DISCONNECT twice on session takeover).
 */
#ifndef CHAT_CORE_H
#define CHAT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct core core;

enum core_log_level { CORE_LOG_DEBUG, CORE_LOG_INFO, CORE_LOG_NOTICE, CORE_LOG_WARNING, CORE_LOG_ERR };

/* The broker's exit status after a failed fsync (io.fatal): EX_IOERR. */
#define CHAT_EXIT_FSYNC_FAILED 74

typedef struct core_io {
	void *ctx;
	/* Sends a message to one client id, or with clientid NULL to every
	 * subscriber of the topic (retained presence), read ACL applying.
	 * The payload is copied. */
	int (*publish)(void *ctx, const char *clientid, const char *topic, const void *payload,
	               size_t len, int qos, bool retain);
	/* Wall-clock time in milliseconds since the Unix epoch. */
	uint64_t (*now_ms)(void *ctx);
	void (*log)(void *ctx, int level, const char *msg);
	/* Disconnects the client with client id `name`, or with `username`
	 * true every client that logged in as `name`; the core calls it only
	 * from core_tick(). */
	void (*kick)(void *ctx, const char *name, bool username);
	/* Group commit, on a broker that can acknowledge a publish later
	 * (broker-patches/0004); used only after core_group_commit(c, true).
	 * ack: sends the held acknowledgement of publish `mid` of connection
	 * `conn_id` (core_ack_later) with an MQTT reason code (< 0x80:
	 * accepted); 0, or non-zero when the broker no longer holds it (the
	 * client left: it sends the publish again). wakeup: callable from any
	 * thread; has core_wakeup() called on the broker thread soon. */
	int (*ack)(void *ctx, uint64_t conn_id, uint16_t mid, uint8_t reason);
	void (*wakeup)(void *ctx);
	/* Stops the broker process at once with a failure status, without a
	 * clean shutdown (as a crash would): a failed fsync under group commit
	 * (plugin/commit.c). Does not return in the broker. */
	void (*fatal)(void *ctx);
} core_io;

enum core_foreign_acl { CORE_FOREIGN_DEFER, CORE_FOREIGN_ALLOW };
/* An option left to its default, or set either way. */
enum core_tristate { CORE_AUTO = 0, CORE_OFF, CORE_ON };

#define CORE_GROUP_SIZE_MAX 65535   /* the largest plugin_opt_max_group_size */

typedef struct core_config {
	const char *data_dir;       /* required */
	const char *topic_prefix;   /* "chat" */
	uint32_t max_body;          /* bytes of one send payload; default 65536 */
	int foreign_acl;            /* enum core_foreign_acl */
	bool sync_writes;
	uint64_t offline_ttl_s;     /* 30 days */
	uint64_t max_queue;         /* per device; 0 = unlimited */
	uint32_t inflight_window;   /* QoS 1 events in mosquitto's queue per device; 400 */
	uint32_t delivered_gather_ms; /* PUBACKs gathered into one receipt this long at most; 10 */
	uint32_t inflight_drain;    /* events/s a device is assumed to take (stock broker); 1000 */
	uint32_t replay_slice;      /* queue entries read per callback or tick; 200 */
	uint32_t replay_batch;      /* events per replay publish to a `batch` device; 1 = v1; 64 */
	uint32_t expire_slice;      /* expired messages removed per sweep; 500 */
	uint32_t max_group_size;    /* members of one group; 1024 */
	uint32_t presence_grace_s;  /* offline after the last device is gone this long; 10 */
	bool presence_retained;     /* presence documents kept in the broker's retain tree; false:
	                             * a SUBSCRIBE is answered from the plugin's state */
	uint32_t push_interval_s;   /* at most one wake-up per device this often; 30 */
	uint32_t push_retry_s;      /* an unacknowledged wake-up is sent again after; 60 */
	uint32_t stats_interval_s;  /* counters on $SYS/broker/chat/ this often; 0 = never; 10 */
	int log_level;              /* enum core_log_level: the least one logged; info */
	uint32_t send_rate;         /* sends per second one device keeps up; 0 = no limit; 100 */
	uint32_t send_burst;        /* sends one device may make at once; 1000 */
	uint32_t min_free_mb;       /* store writes stop when the disk has less free; 256 */
	uint32_t commit_window_us;  /* group commit: wait this long for more writes per fsync; 0 */
	enum core_tristate delivered_on_puback; /* default: on when the broker reports acks */
	enum core_tristate auto_replay; /* default on: patched SUBSCRIBE event, or stock ACL check */
} core_config;

void core_config_defaults(core_config *cfg);

/* Sets option `key` (plugin_opt_<key>) from its text value (options.c). On
 * an unknown key or an invalid value returns false with one line naming the
 * option and what it accepts in err. Text values are kept by pointer. */
bool core_config_set(core_config *cfg, const char *key, const char *value, char *err,
                     size_t errlen);

/* Opens the store, loads the device directory, creates the admin
 * credential (<data_dir>/admin.token, 0600) on the first start.
 * On failure NULL and a one-line reason in err. */
core *core_open(const core_config *cfg, const core_io *io, char *err, size_t errlen);
void core_close(core *c);

/* ---- broker events ---- */

enum core_verdict { CORE_ALLOW = 0, CORE_DENY, CORE_DEFER, CORE_PENDING };

/* CONNECT with username/password (either may be NULL). */
enum core_verdict core_auth(core *c, void *conn, const char *clientid, const char *username,
                            const char *password, size_t password_len);

enum core_access { CORE_ACC_READ = 1, CORE_ACC_WRITE = 2, CORE_ACC_SUBSCRIBE = 4, CORE_ACC_UNSUBSCRIBE = 8 };
enum core_verdict core_acl(core *c, void *conn, const char *clientid, const char *username,
                           const char *topic, int access, bool retain);

/* A PUBLISH from a client, before the broker stores, routes or acks it.
 * CORE_ALLOW: let it through (stored where the core stores it);
 * CORE_DENY: refused (the core has already told the sender why);
 * CORE_PENDING: a send whose store answer comes later (a backend that does
 * not answer inline): the core completes it on a later tick or wake-up.
 * Its acknowledgement can wait for that (core_ack_later); if it does not,
 * the PUBACK means "received" and the `sent` event or the `error` event
 * tells the outcome. */
enum core_verdict core_message(core *c, void *conn, const char *clientid, const char *username,
                               const char *topic, const void *payload, size_t len, int qos,
                               bool retain, int protocol_version);

/* A request on $CONTROL/chat/v1. */
void core_control(core *c, const char *clientid, const char *username, const void *payload,
                  size_t len);

void core_disconnect(core *c, void *conn, const char *clientid, const char *username);

/* Called on every broker tick (about every 100 ms or sooner). */
void core_tick(core *c);

/* A broker that reports acknowledgements (broker-patches/) calls this for
 * every PUBACK (or PUBCOMP) of an outgoing message: client `clientid`
 * acknowledged a message on `topic`. Acknowledgements of the plugin's
 * inbox events free room in that device's flow window (plugin/flow.c);
 * anything else is ignored. The first call switches the core from its
 * estimates (receipts, plugin_opt_inflight_drain) to these exact counts
 * for good, so call it only on a broker that reports every one. */
void core_on_delivered_ack(core *c, const char *clientid, const char *topic_name);
/* The same with the acknowledged publish's payload: a replay batch
 * (docs/PROTOCOL.md §5) frees one place per event it carried. */
void core_on_delivered_ack_payload(core *c, const char *clientid, const char *topic_name,
                                   const void *payload, size_t len);
/* ---- events only a broker with broker-patches/ has (broker_events.c) ---- */

enum core_broker_event {
	CORE_BEV_CONNECT = 1,       /* a connection is complete */
	CORE_BEV_SUBSCRIBE = 2,     /* a subscription was granted */
	CORE_BEV_ACKED = 4,         /* a client acknowledged a QoS 1/2 message */
};

/* Which of them this broker reports (a mask of core_broker_event), told
 * once after core_open; logged, and the core adapts. Without it: none.
 * Returns false when the configuration asks for what is missing. */
bool core_broker_events(core *c, unsigned have);

/* The connection conn is complete; clean: it started a new session. */
void core_connected(core *c, void *conn, const char *username, bool clean);

/* conn was granted a subscription to filter (as sent, $share/ included). */
void core_subscribed(core *c, void *conn, const char *username, const char *filter);

/* conn acknowledged (PUBACK/PUBCOMP) a message it was sent on topic. */
void core_acked(core *c, void *conn, const char *username, const char *topic,
                const void *payload, size_t len);

/* ---- group commit (commit.c): sync writes at speed on a broker that
 * can acknowledge later (broker-patches/0004) ----
 *
 * With plugin_opt_sync_writes on, such a broker lets the core write
 * without an fsync per write and have a thread make many writes durable
 * with one fsync. Nothing anyone can see depends on a write before it is
 * durable: the acknowledgement of a publish (PUBACK/PUBREC) is held until
 * everything written before it is durable, and so is everything the core
 * publishes (events, replies, presence, counters), in order. On a broker
 * without it every write is fsync'd as it is made and nothing waits. */

/* Told once after core_broker_events: whether the broker can hold
 * acknowledgements and io.ack / io.wakeup work. Starts group commit when
 * it can and sync_writes is on; logs which durability the server gives.
 * Returns false when the commit thread cannot start. */
bool core_group_commit(core *c, bool broker_can_defer);

/* After core_message answered CORE_ALLOW or CORE_PENDING for a QoS 1/2
 * publish of connection conn_id (its packet id mid): true when its
 * acknowledgement must wait (the glue tells the broker "later"; the core
 * sends it through io.ack once the send completed and what it depends on
 * is durable, with reason 0x87 if the send was refused after all), false:
 * acknowledge now. */
bool core_ack_later(core *c, uint64_t conn_id, uint16_t mid);

/* On the broker thread after io.wakeup (and on every tick): sends the
 * acknowledgements, then the publishes, whose writes are now durable. */
void core_wakeup(core *c);

#endif
