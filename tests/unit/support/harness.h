// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* harness.h — per-test state for the unit tests that drive the plugin core
 * (test_core.c, test_offline.c): a fresh temp data dir and a core opened
 * on it with the fake core_io (fake_io.h), the admin credential, test
 * devices added through the admin command, and Check suite plumbing.
 *
 * Each test case gets one directory below $TMPDIR, made and removed in the
 * parent process (unchecked fixtures env_run_setup/env_run_teardown), so a
 * test that fails in its forked child — which then skips the checked
 * teardown — leaves nothing behind. Each test gets its own dir (testdir)
 * in it from env_setup(), with the store in datadir.
 */
#ifndef TEST_SUPPORT_HARNESS_H
#define TEST_SUPPORT_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbor_io.h"
#include "core.h"
#include "fake_io.h"
#include "ids.h"

extern char testdir[4096];  /* this test's own dir */
extern char datadir[4200];  /* testdir/data, created by core_open */
extern char ADMIN_TOKEN[64]; /* the admin credential, as admin.token holds it */
extern core *C;              /* the core under test */
extern core_config CFG;      /* its config: defaults, data_dir datadir */

/* Fake connections: any distinct addresses do. */
#define NCONNS 96
extern int conns[NCONNS];
#define CONN(i) ((void *)&conns[i])

/* A test device: its address, token and connection (NULL until the test
 * gives it one). */
typedef struct devrec {
	char addr[CHAT_ADDR_MAX + 1];
	char token[64];
	void *conn;
} devrec;
#define MAX_DEVS 80
extern devrec DEV[MAX_DEVS];
extern size_t NDEV;

/* Unchecked fixtures: the test case's dir, named after the program. */
void env_run_setup(void);
void env_run_teardown(void);
/* Checked fixture parts: a fresh fake, no devices, a new testdir, CFG at
 * its defaults and the core opened; and all of it undone. */
void env_setup(enum fake_broadcasts broadcasts);
void env_teardown(void);

/* Opens C with CFG and &IO, and reads ADMIN_TOKEN. */
void open_core(void);
void close_core(void);
/* Reads datadir/admin.token into ADMIN_TOKEN. */
void read_admin_token(void);

/* The single admin reply since mark m, checked for addressing (to
 * chatctl-1 on $CONTROL/chat/v1/response, QoS 1, not retained), cmd
 * (unless NULL) and rid; publishes to all subscribers aside. */
const pubrec *admin_reply(size_t m, const char *cmd, uint64_t rid);
/* Sends {cmd, rid, k1: v1, k2: v2} (pairs with a NULL key left out) as the
 * admin; returns the checked reply. */
const pubrec *admin(const char *cmd, const char *k1, const char *v1, const char *k2,
                    const char *v2);
/* Whether t looks like a token: 43 base64url characters. */
bool valid_token(const char *t);
/* Adds user/device through device.add, asserts it worked and remembers
 * the device in DEV with its token and no connection. */
devrec *register_device(const char *user, const char *device);
/* register_device, and the device gets its own connection,
 * CONN(<its index in DEV>), connected or not. */
devrec *add_device(const char *user, const char *device);
/* CONNECT of the device on its connection, which must be allowed. */
void connect_dev(const char *addr);
/* The test device with that address (asserts there is one). */
devrec *find_dev(const char *addr);
/* core_disconnect of the device's connection. */
void disconnect_dev(const char *addr);
/* The next fresh connection, CONN(next_conn): 0 after env_setup. */
extern int next_conn;
/* CONNECT of the device on a fresh connection, as a reconnecting client has. */
void connect_new(const char *addr);
/* A QoS 1 publish of p from the device on its connection; the verdict. */
enum core_verdict dev_pub(const char *from, const char *topic, const void *p, size_t len);
enum core_verdict dev_pubw(const char *from, const char *topic, const cbw *w);
/* A chat/sync ({}) from the device; the verdict. */
enum core_verdict dev_sync(const char *addr);
/* The broker's PUBACK of publish p to the device (core_acked). */
void dev_ack(const char *addr, const pubrec *p);
/* Reopens the core with CFG as the test changed it; call before adding
 * devices (connections do not survive it). */
void reopen_core(void);

/* A test case with the fixtures above around each test (setup and
 * teardown are the test file's, calling env_setup/env_teardown) and a
 * 60 s timeout. */
TCase *env_tcase(const char *name, SFun setup, SFun teardown);
/* Runs s; the exit status for main(). */
int run_suite(Suite *s);

#endif
