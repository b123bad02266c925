// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* harness.c — temp dirs, the core's lifecycle, admin commands and test
 * devices for the core unit tests; see harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "events.h"

char testdir[4096];
char datadir[4200];
char ADMIN_TOKEN[64];
core *C;
core_config CFG;
int conns[NCONNS];
devrec DEV[MAX_DEVS];
size_t NDEV;

static char rundir[2048];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

void env_run_setup(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(rundir, sizeof(rundir), "%s/%s-XXXXXX", base && *base ? base : "/tmp",
	         program_invocation_short_name);
	if (!mkdtemp(rundir)) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
}

void env_run_teardown(void)
{
	nftw(rundir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void read_admin_token(void)
{
	char path[4300];
	snprintf(path, sizeof(path), "%s/admin.token", datadir);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(ADMIN_TOKEN, sizeof(ADMIN_TOKEN), f));
	fclose(f);
	ADMIN_TOKEN[strcspn(ADMIN_TOKEN, "\n")] = '\0';
}

void open_core(void)
{
	char err[512] = "";
	C = core_open(&CFG, &IO, err, sizeof(err));
	ck_assert_msg(C != NULL, "core_open: %s", err);
	read_admin_token();
}

void close_core(void)
{
	core_close(C);
	C = NULL;
}

void env_setup(enum fake_broadcasts broadcasts)
{
	fake_reset(broadcasts);
	NDEV = 0;
	next_conn = 0;
	memset(DEV, 0, sizeof(DEV));
	snprintf(testdir, sizeof(testdir), "%s/core-XXXXXX", rundir);
	ck_assert_ptr_nonnull(mkdtemp(testdir));
	snprintf(datadir, sizeof(datadir), "%s/data", testdir); /* created by core_open */
	core_config_defaults(&CFG);
	CFG.data_dir = datadir;
	CFG.stats_interval_s = 0; /* no $SYS counters here: test_operations.py has them */
	open_core();
}

int next_conn;

void connect_new(const char *addr)
{
	devrec *r = find_dev(addr);
	ck_assert_int_lt(next_conn, NCONNS);
	r->conn = CONN(next_conn++);
	connect_dev(addr);
}

enum core_verdict dev_pub(const char *from, const char *topic, const void *p, size_t len)
{
	devrec *r = find_dev(from);
	return core_message(C, r->conn, from, from, topic, p, len, 1, false, 5);
}

enum core_verdict dev_pubw(const char *from, const char *topic, const cbw *w)
{
	return dev_pub(from, topic, w->buf, w->len);
}

enum core_verdict dev_sync(const char *addr)
{
	static const uint8_t empty_map[] = { 0xa0 };
	return dev_pub(addr, "chat/sync", empty_map, sizeof(empty_map));
}

void dev_ack(const char *addr, const pubrec *p)
{
	core_acked(C, find_dev(addr)->conn, addr, p->topic, p->p, p->len);
}

void reopen_core(void)
{
	close_core();
	open_core();
}

void env_teardown(void)
{
	close_core();
	fake_free();
	nftw(testdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const pubrec *admin_reply(size_t m, const char *cmd, uint64_t rid)
{
	/* exactly one reply; a removal also sends `devices` events to devices */
	const pubrec *p = NULL;
	size_t n = 0;
	for (size_t i = m; i < F.npubs; i++)
		if (!strcmp(F.pubs[i].topic, "$CONTROL/chat/v1/response")) {
			p = &F.pubs[i];
			n++;
		}
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(p->clientid, "chatctl-1");
	ck_assert_str_eq(p->topic, "$CONTROL/chat/v1/response");
	ck_assert_int_eq(p->qos, 1);
	ck_assert(!p->retain);
	if (cmd)
		ck_assert_str_eq(ftext(p, "cmd"), cmd);
	ck_assert_uint_eq(fuint(p, "rid"), rid);
	return p;
}

const pubrec *admin(const char *cmd, const char *k1, const char *v1, const char *k2,
                    const char *v2)
{
	static uint64_t rid = 100;
	cbw w;
	cbw_init(&w);
	cbw_map(&w, 2 + (k1 != NULL) + (k2 != NULL));
	cbw_text(&w, "cmd");
	cbw_text(&w, cmd);
	cbw_text(&w, "rid");
	cbw_uint(&w, ++rid);
	if (k1) {
		cbw_text(&w, k1);
		cbw_text(&w, v1);
	}
	if (k2) {
		cbw_text(&w, k2);
		cbw_text(&w, v2);
	}
	size_t m = mark();
	core_control(C, "chatctl-1", "$admin", w.buf, w.len);
	cbw_free(&w);
	return admin_reply(m, cmd, rid);
}

bool valid_token(const char *t)
{
	if (strlen(t) != 43)
		return false;
	for (const char *p = t; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_'))
			return false;
	return true;
}

devrec *register_device(const char *user, const char *device)
{
	const pubrec *p = admin("device.add", "user", user, "device", device);
	ck_assert_msg(fbool(p, "ok"), "device.add %s/%s failed: %s", user, device,
	              fhas(p, "msg") ? ftext(p, "msg") : "");
	ck_assert_uint_lt(NDEV, MAX_DEVS);
	devrec *r = &DEV[NDEV++];
	snprintf(r->addr, sizeof(r->addr), "%s/%s", user, device);
	snprintf(r->token, sizeof(r->token), "%s", ftext(p, "token"));
	ck_assert(valid_token(r->token));
	return r;
}

devrec *add_device(const char *user, const char *device)
{
	devrec *r = register_device(user, device);
	r->conn = CONN(r - DEV);
	return r;
}

void connect_dev(const char *addr)
{
	devrec *r = find_dev(addr);
	ck_assert_int_eq(core_auth(C, r->conn, addr, addr, r->token, strlen(r->token)), CORE_ALLOW);
}

devrec *find_dev(const char *addr)
{
	for (size_t i = 0; i < NDEV; i++)
		if (strcmp(DEV[i].addr, addr) == 0)
			return &DEV[i];
	ck_abort_msg("unknown test device %s", addr);
	return NULL;
}

void disconnect_dev(const char *addr)
{
	devrec *r = find_dev(addr);
	core_disconnect(C, r->conn, addr, addr);
}

TCase *env_tcase(const char *name, SFun setup, SFun teardown)
{
	TCase *t = tcase_create(name);
	tcase_add_unchecked_fixture(t, env_run_setup, env_run_teardown);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	return t;
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
