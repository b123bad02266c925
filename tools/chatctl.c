// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* chatctl.c — the admin command line of mosquitto-chat.
 *
 *   chatctl [-o FILE] [-h HOST] [-p PORT] [--token-file FILE] [TLS options] COMMAND …
 *
 * It connects to the broker as `$admin` (password: the plugin's
 * <data_dir>/admin.token), subscribes to $CONTROL/chat/v1/response, publishes
 * one CBOR request {cmd, rid, …args} on $CONTROL/chat/v1 and waits (5 s at
 * most) for the response carrying the same rid. See docs/PROTOCOL.md §8.
 *
 * Output contract: `device add`, `device rotate`, `service add` and `service
 * rotate` print only the new token on stdout; `stats` prints `name value`
 * lines sorted by name (`--prometheus`: Prometheus' text exposition
 * format); the listings print one item a line, `group show` one field a
 * line; everything else prints nothing on success. With --json every
 * command prints instead one JSON object, the reply's result fields (as
 * mosquitto_ctrl prints JSON), a listing's pages joined into one array.
 * Any failure is one line on stderr starting with "chatctl: " and exit
 * status 1; bad usage exits 2. The admin token is never printed, and our
 * copy of it is wiped as soon as libmosquitto has taken it.
 *
 * Listings are paged by the server (docs/PROTOCOL.md §8): chatctl asks
 * for --page-size items at a time on one connection, following `next`
 * until the last page.
 *
 * -u NAME connects as the service account NAME instead of `$admin` (with
 * that account's token in --token-file): a provisioner may run `device
 * add`, `device remove` and `stats`.
 *
 * Options may also come from a file, as mosquitto_ctrl's do: -o FILE, else
 * $XDG_CONFIG_HOME/chatctl or ~/.config/chatctl if it exists; one option a
 * line ("--cafile /etc/ssl/chat-ca.crt"), '#' lines ignored; the command
 * line wins over the file.
 */
#include "cbor_io.h"
#include "chat_version.h"
#include "err.h"
#include "ids.h"
#include "mqtt_tls.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 1883
#define DEFAULT_TLS_PORT 8883
#define DEFAULT_TOKEN_FILE "/var/lib/mosquitto-chat/admin.token"
#define ADMIN_USERNAME "$admin"
#define REQ_TOPIC "$CONTROL/chat/v1"
#define RESP_TOPIC "$CONTROL/chat/v1/response"
#define TIMEOUT_MS 5000
#define BACKUP_TIMEOUT_MS 600000 /* a checkpoint flushes and links every file */
#define KEEPALIVE_S 10
#define TOKEN_MAX 1024 /* bytes of token file we accept */
#define PAGE_MAX 1000  /* the most items a page may ask for (the server's LIST_MAX) */

static const char usage_line[] =
	"usage: chatctl [-o FILE] [-h HOST] [-p PORT] [--token-file FILE] [TLS options] COMMAND …\n"
	"       (chatctl --help)\n";

static const char help_text[] =
	"usage: chatctl [-o FILE] [-h HOST] [-p PORT] [--token-file FILE] [TLS options] COMMAND …\n"
	"\n"
	"Commands:\n"
	"  device add U D            add device D of user U; prints its token\n"
	"  device remove U D         revoke the device's token, disconnect it, drop its\n"
	"                            queue and keys, tell its user's devices and contacts\n"
	"  device rotate U D         give the device a new token (printed), keeping its\n"
	"                            queue and keys; its connection is closed\n"
	"  device list [U]           list every device (or U's): `U/D online|offline`\n"
	"  user list                 list the users: `U devices online`\n"
	"  user remove U             remove user U, its devices and queues\n"
	"  service add NAME [--role service|provisioner]\n"
	"                            create a service account; prints its token\n"
	"  service list              list the service accounts: `NAME role`\n"
	"  service remove NAME       remove a service account\n"
	"  service rotate NAME       give a service account a new token (printed)\n"
	"  group create G --owner U [--members U1,U2,…]\n"
	"                            create group G\n"
	"  group list                list the groups: `G members name`\n"
	"  group show G              print a group's name, members and admins\n"
	"  group add G U1[,U2,…]     add members to group G (as an operator)\n"
	"  group remove G U1[,U2,…]  remove members from group G\n"
	"  group promote G U         make member U an admin of group G\n"
	"  group delete G            remove every member, deleting group G\n"
	"  stats [--prometheus]      print the server's counters, one `name value` a line\n"
	"                            (or in Prometheus' text format)\n"
	"  backup DIR                write a consistent copy of the running server's data\n"
	"                            dir into DIR (new or empty, on the broker's host)\n"
	"\n"
	"Options:\n"
	"  -o FILE                   read options from FILE, one a line (default:\n"
	"                            $XDG_CONFIG_HOME/chatctl or ~/.config/chatctl if it\n"
	"                            exists); the command line wins\n"
	"  -h HOST                   broker host (default " DEFAULT_HOST ")\n"
	"  -p PORT                   broker port (default 1883, with TLS 8883)\n"
	"  --token-file FILE         admin token (default $CHATCTL_TOKEN_FILE, else\n"
	"                            " DEFAULT_TOKEN_FILE ")\n"
	"  -u NAME                   connect as service account NAME (a provisioner)\n"
	"                            instead of $admin; --token-file holds its token\n"
	"  --json                    print the result as one JSON object\n"
	"  --page-size N             listings: items per request, 1-1000 (default 1000)\n"
	"  --help                    show this help\n"
	"  --version                 print chatctl's version\n"
	"\n"
	"TLS (as mosquitto_sub; docs/OPERATIONS.md, \"TLS\"):\n"
	MQTT_TLS_USAGE
	"\n"
	"Exit status: 0 on success, 1 on failure (reason on stderr), 2 on bad usage.\n";

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static void die_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* "FILE:LINE" while the options file is read, for messages. */
static char opt_where[4200];

static void die_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("chatctl: ", stderr);
	if (opt_where[0])
		fprintf(stderr, "%s: ", opt_where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_line, stderr);
	exit(2);
}

/* Writes a server-supplied string, replacing control characters (and, when
 * `no_space`, spaces) so it cannot break our one-line output. */
static void put_clean(FILE *f, const uint8_t *p, size_t n, bool no_space)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c < 0x20 || c == 0x7f || (no_space && c == ' '))
			c = '?';
		fputc(c, f);
	}
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */

struct args {
	const char *host;
	int port;
	bool port_given;
	const char *token_file;
	mqtt_tls tls;
	char **file_lines;     /* the options file's lines, which options point into */
	size_t nfile_lines;
	const char *username;  /* "$admin", or a provisioner's name (-u) */
	bool json;             /* --json */
	unsigned page_size;    /* --page-size */
	const char *cmd;       /* wire command name: "device.add", … */
	const char *list;      /* a listing's result field ("devices", …), or NULL */
	const char *user, *device, *name, *group, *owner, *role;
	bool group_owner;      /* group create: gid, owner and members go together */
	char **members;        /* NULL-terminated list of member ids */
	size_t nmembers;
	bool prometheus;       /* stats --prometheus */
	char *dir;             /* backup: absolute path */
};

static void check_user(const char *what, const char *s)
{
	if (!chat_valid_user(s, strlen(s)))
		die_usage("invalid %s '%s' (1-%d of [A-Za-z0-9._-])", what, s, CHAT_USER_MAX);
}

static void check_device(const char *s)
{
	if (!chat_valid_device(s, strlen(s)))
		die_usage("invalid device id '%s' (1-%d of [A-Za-z0-9._-])", s, CHAT_DEVICE_MAX);
}

static void check_group(const char *s)
{
	if (!chat_valid_group(s, strlen(s)))
		die_usage("invalid group id '%s' (1-%d of [A-Za-z0-9._-])", s, CHAT_GROUP_MAX);
}

static void want_args(int have, int want, const char *cmd)
{
	if (have < want)
		die_usage("'%s' needs more arguments", cmd);
	if (have > want)
		die_usage("too many arguments for '%s'", cmd);
}

/* "--opt VALUE" or "--opt=VALUE" at argv[*i]; returns VALUE or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt)
{
	size_t n = strlen(opt);
	const char *a = argv[*i];
	if (strcmp(a, opt) == 0) {
		if (*i + 1 >= argc)
			die_usage("option %s needs a value", opt);
		return argv[++*i];
	}
	if (strncmp(a, opt, n) == 0 && a[n] == '=')
		return a + n + 1;
	return NULL;
}

static void parse_members(struct args *a, const char *list)
{
	char *copy = strdup(list);
	size_t cap = 1;
	for (const char *p = list; *p; p++)
		cap += *p == ',';
	a->members = calloc(cap + 1, sizeof(*a->members));
	if (!copy || !a->members) {
		fputs("chatctl: out of memory\n", stderr);
		exit(1);
	}
	a->nmembers = 0;
	char *s = copy;
	for (;;) {
		char *comma = strchr(s, ',');
		if (comma)
			*comma = '\0';
		if (*s == '\0')
			die_usage("empty entry in --members list '%s'", list);
		check_user("member user id", s);
		a->members[a->nmembers++] = s;
		if (!comma)
			break;
		s = comma + 1;
	}
}

static void parse_group_create(struct args *a, int argc, char **argv, int i)
{
	const char *v;
	for (; i < argc; i++) {
		if ((v = opt_value(argc, argv, &i, "--owner"))) {
			if (a->owner)
				die_usage("--owner given twice");
			a->owner = v;
		} else if ((v = opt_value(argc, argv, &i, "--members"))) {
			if (a->members)
				die_usage("--members given twice");
			parse_members(a, v);
		} else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
			die_usage("unknown option '%s' for 'group create'", argv[i]);
		} else if (!a->group) {
			a->group = argv[i];
		} else {
			die_usage("too many arguments for 'group create'");
		}
	}
	if (!a->group)
		die_usage("'group create' needs a group id");
	check_group(a->group);
	if (!a->owner)
		die_usage("'group create' needs --owner U");
	check_user("owner user id", a->owner);
}

/* The broker resolves the path, not us: make it absolute here. */
static char *absolute(const char *path)
{
	if (!*path)
		die_usage("empty backup directory");
	char cwd[4096];
	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		die_usage("cannot resolve '%s': %s", path, strerror(errno));
	size_t n = strlen(path) + (path[0] == '/' ? 1 : strlen(cwd) + 2);
	char *out = malloc(n);
	if (!out) {
		fputs("chatctl: out of memory\n", stderr);
		exit(1);
	}
	if (path[0] == '/')
		snprintf(out, n, "%s", path);
	else
		snprintf(out, n, "%s/%s", cwd, path);
	return out;
}

/* TLS options as chatctl spells them: mqtt_tls.h's getopt rows. */
static const struct option tls_options[] = { MQTT_TLS_LONGOPTS, { NULL, 0, NULL, 0 } };

/* Takes the global option at argv[*i] (moving *i past its value); false if
 * argv[*i] is none (the caller decides). -o and --help are the caller's. */
static bool global_option(struct args *a, int argc, char **argv, int *i)
{
	const char *v;
	if (strcmp(argv[*i], "-h") == 0) {
		if (++*i >= argc)
			die_usage("option -h needs a host");
		a->host = argv[*i];
		if (!*a->host)
			die_usage("empty host");
	} else if (strcmp(argv[*i], "-p") == 0) {
		if (++*i >= argc)
			die_usage("option -p needs a port");
		char *end;
		errno = 0;
		long p = strtol(argv[*i], &end, 10);
		if (errno || end == argv[*i] || *end || p < 1 || p > 65535)
			die_usage("invalid port '%s'", argv[*i]);
		a->port = (int)p;
		a->port_given = true;
	} else if ((v = opt_value(argc, argv, i, "--token-file"))) {
		if (!*v)
			die_usage("empty --token-file");
		a->token_file = v;
	} else if (strcmp(argv[*i], "-u") == 0) {
		if (++*i >= argc)
			die_usage("option -u needs a service name");
		a->username = argv[*i];
		check_user("service name", a->username);
	} else if (strcmp(argv[*i], "--json") == 0) {
		a->json = true;
	} else if ((v = opt_value(argc, argv, i, "--page-size"))) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(v, &end, 10);
		if (errno || end == v || *end || n < 1 || n > PAGE_MAX)
			die_usage("invalid --page-size '%s' (1-%d)", v, PAGE_MAX);
		a->page_size = (unsigned)n;
	} else {
		char name[32];
		for (const struct option *o = tls_options; o->name; o++) {
			snprintf(name, sizeof(name), "--%s", o->name);
			if (o->has_arg == no_argument && strcmp(argv[*i], name) == 0)
				return mqtt_tls_getopt(&a->tls, o->val, NULL);
			if (o->has_arg != no_argument && (v = opt_value(argc, argv, i, name)))
				return mqtt_tls_getopt(&a->tls, o->val, v);
		}
		return false;
	}
	return true;
}

/* The command line's global options; returns the index of the command.
 * *options_file: the -o FILE (NULL if none). */
static int parse_globals(struct args *a, int argc, char **argv, const char **options_file)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--help") == 0) {
			fputs(help_text, stdout);
			exit(ferror(stdout) || fflush(stdout) ? 1 : 0);
		} else if (strcmp(argv[i], "--version") == 0) {
			fputs(CHAT_VERSION_LINE("chatctl"), stdout);
			exit(ferror(stdout) || fflush(stdout) ? 1 : 0);
		} else if (strcmp(argv[i], "-o") == 0) {
			if (++i >= argc)
				die_usage("option -o needs a file");
			*options_file = argv[i];
		} else if (!global_option(a, argc, argv, &i)) {
			die_usage("unknown option '%s'", argv[i]);
		}
	}
	return i;
}

/* mosquitto_ctrl's default options file: $XDG_CONFIG_HOME/chatctl, else
 * ~/.config/chatctl (NULL if neither variable is set). */
static char *default_options_file(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *path = NULL;
	int n = -1;
	if (xdg && *xdg)
		n = asprintf(&path, "%s/chatctl", xdg);
	else if (home && *home)
		n = asprintf(&path, "%s/.config/chatctl", home);
	return n < 0 ? NULL : path;
}

static void oom(void) __attribute__((noreturn));
static void oom(void)
{
	fputs("chatctl: out of memory\n", stderr);
	exit(1);
}

/* Reads the options file: each line one global option, "NAME" or
 * "NAME VALUE" (the value is the rest of the line, so it may hold spaces);
 * blank lines and lines starting with '#' are skipped. A missing default
 * file is no error. The lines are kept: the options point into them. */
static void load_options_file(struct args *a, const char *path, bool is_default)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (is_default && errno == ENOENT)
			return;
		fprintf(stderr, "chatctl: cannot read options file %s: %s\n", path, strerror(errno));
		exit(1);
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *p = line + strspn(line, " \t");
		size_t n = strcspn(p, "\r\n");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		p[n] = '\0';
		if (!*p || *p == '#')
			continue;
		char *copy = strdup(p);
		char **lines = realloc(a->file_lines, (a->nfile_lines + 1) * sizeof(*lines));
		if (!copy || !lines)
			oom();
		a->file_lines = lines;
		a->file_lines[a->nfile_lines++] = copy;
		char *argv2[3] = { copy, NULL, NULL };
		int argc2 = 1;
		size_t name_len = strcspn(copy, " \t");
		if (copy[name_len]) {
			copy[name_len] = '\0';
			argv2[argc2++] = copy + name_len + 1 + strspn(copy + name_len + 1, " \t");
		}
		snprintf(opt_where, sizeof(opt_where), "%s:%u", path, lineno);
		int i = 0;
		if (!global_option(a, argc2, argv2, &i))
			die_usage("unknown option '%s'", argv2[0]);
		if (i + 1 != argc2)
			die_usage("option %s takes no value", argv2[0]);
		opt_where[0] = '\0';
	}
	free(line);
	fclose(f);
}

static void parse_args(struct args *a, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->host = DEFAULT_HOST;
	a->port = DEFAULT_PORT;
	a->username = ADMIN_USERNAME;
	a->page_size = PAGE_MAX;
	a->token_file = getenv("CHATCTL_TOKEN_FILE");
	if (!a->token_file || !*a->token_file)
		a->token_file = DEFAULT_TOKEN_FILE;

	/* The file first, then the command line again over it. */
	const char *options_file = NULL;
	parse_globals(a, argc, argv, &options_file);
	if (options_file) {
		load_options_file(a, options_file, false);
	} else {
		char *path = default_options_file();
		if (path)
			load_options_file(a, path, true);
		free(path);
	}
	int i = parse_globals(a, argc, argv, &options_file);
	char err[512];
	if (!mqtt_tls_check(&a->tls, err, sizeof(err))) {
		fprintf(stderr, "chatctl: %s\n", err);
		exit(1);
	}
	if (mqtt_tls_enabled(&a->tls) && !a->port_given)
		a->port = DEFAULT_TLS_PORT;
	if (i >= argc)
		die_usage("no command given");
	/* --json and --page-size may also follow the command. */
	int kept = i;
	for (int j = i; j < argc; j++) {
		int k = j;
		if (strcmp(argv[j], "--json") == 0 || strcmp(argv[j], "--page-size") == 0 ||
		    strncmp(argv[j], "--page-size=", 12) == 0)
			global_option(a, argc, argv, &k);
		else
			argv[kept++] = argv[j];
		j = k;
	}
	argc = kept;

	const char *c0 = argv[i];
	const char *c1 = i + 1 < argc ? argv[i + 1] : NULL;
	int rest = argc - i - 2; /* arguments after a two-word command */

	if (strcmp(c0, "help") == 0) {
		fputs(help_text, stdout);
		exit(ferror(stdout) || fflush(stdout) ? 1 : 0);
	} else if (strcmp(c0, "stats") == 0) {
		a->prometheus = argc - i - 1 == 1 && strcmp(argv[i + 1], "--prometheus") == 0;
		if (!a->prometheus)
			want_args(argc - i - 1, 0, "stats");
		a->cmd = "stats";
	} else if (strcmp(c0, "backup") == 0) {
		want_args(argc - i - 1, 1, "backup");
		a->cmd = "backup";
		a->dir = absolute(argv[i + 1]);
	} else if (strcmp(c0, "device") == 0 && c1 && strcmp(c1, "add") == 0) {
		want_args(rest, 2, "device add");
		a->cmd = "device.add";
	} else if (strcmp(c0, "device") == 0 && c1 && strcmp(c1, "remove") == 0) {
		want_args(rest, 2, "device remove");
		a->cmd = "device.remove";
	} else if (strcmp(c0, "device") == 0 && c1 && strcmp(c1, "rotate") == 0) {
		want_args(rest, 2, "device rotate");
		a->cmd = "device.rotate";
	} else if (strcmp(c0, "device") == 0 && c1 && strcmp(c1, "list") == 0) {
		if (rest > 1)
			die_usage("too many arguments for 'device list'");
		a->cmd = "device.list";
		a->list = "devices";
		if (rest == 1) {
			a->user = argv[i + 2];
			check_user("user id", a->user);
		}
		return;
	} else if (strcmp(c0, "user") == 0 && c1 && strcmp(c1, "list") == 0) {
		want_args(rest, 0, "user list");
		a->cmd = "user.list";
		a->list = "users";
		return;
	} else if (strcmp(c0, "user") == 0 && c1 && strcmp(c1, "remove") == 0) {
		want_args(rest, 1, "user remove");
		a->cmd = "user.remove";
	} else if (strcmp(c0, "service") == 0 && c1 && strcmp(c1, "add") == 0) {
		const char *v;
		for (int j = i + 2; j < argc; j++) {
			if ((v = opt_value(argc, argv, &j, "--role"))) {
				if (strcmp(v, "service") != 0 && strcmp(v, "provisioner") != 0)
					die_usage("invalid role '%s' (service or provisioner)", v);
				a->role = v;
			} else if (strncmp(argv[j], "--", 2) == 0) {
				die_usage("unknown option '%s' for 'service add'", argv[j]);
			} else if (a->name) {
				die_usage("too many arguments for 'service add'");
			} else {
				a->name = argv[j];
			}
		}
		if (!a->name)
			die_usage("'service add' needs more arguments");
		check_user("service name", a->name);
		a->cmd = "service.add";
		return;
	} else if (strcmp(c0, "service") == 0 && c1 && strcmp(c1, "list") == 0) {
		want_args(rest, 0, "service list");
		a->cmd = "service.list";
		a->list = "services";
		return;
	} else if (strcmp(c0, "service") == 0 && c1 &&
	           (strcmp(c1, "remove") == 0 || strcmp(c1, "rotate") == 0)) {
		a->cmd = strcmp(c1, "remove") == 0 ? "service.remove" : "service.rotate";
		want_args(rest, 1, a->cmd);
		a->name = argv[i + 2];
		check_user("service name", a->name);
		return;
	} else if (strcmp(c0, "group") == 0 && c1 && strcmp(c1, "create") == 0) {
		a->cmd = "group.create";
		a->group_owner = true;
		parse_group_create(a, argc, argv, i + 2);
		return;
	} else if (strcmp(c0, "group") == 0 && c1 && strcmp(c1, "list") == 0) {
		want_args(rest, 0, "group list");
		a->cmd = "group.list";
		a->list = "groups";
		return;
	} else if (strcmp(c0, "group") == 0 && c1 &&
	           (strcmp(c1, "show") == 0 || strcmp(c1, "delete") == 0)) {
		a->cmd = strcmp(c1, "show") == 0 ? "group.show" : "group.delete";
		want_args(rest, 1, strcmp(c1, "show") == 0 ? "group show" : "group delete");
		a->group = argv[i + 2];
		check_group(a->group);
		return;
	} else if (strcmp(c0, "group") == 0 && c1 &&
	           (strcmp(c1, "add") == 0 || strcmp(c1, "remove") == 0)) {
		a->cmd = strcmp(c1, "add") == 0 ? "group.add" : "group.remove";
		want_args(rest, 2, strcmp(c1, "add") == 0 ? "group add" : "group remove");
		a->group = argv[i + 2];
		check_group(a->group);
		parse_members(a, argv[i + 3]);
		return;
	} else if (strcmp(c0, "group") == 0 && c1 && strcmp(c1, "promote") == 0) {
		want_args(rest, 2, "group promote");
		a->cmd = "group.promote";
		a->group = argv[i + 2];
		check_group(a->group);
		a->user = argv[i + 3];
		check_user("user id", a->user);
		return;
	} else {
		die_usage("unknown command '%s%s%s'", c0, c1 ? " " : "", c1 ? c1 : "");
	}

	if (strcmp(a->cmd, "device.add") == 0 || strcmp(a->cmd, "device.remove") == 0 ||
	    strcmp(a->cmd, "device.rotate") == 0) {
		a->user = argv[i + 2];
		a->device = argv[i + 3];
		check_user("user id", a->user);
		check_device(a->device);
	} else if (strcmp(a->cmd, "user.remove") == 0) {
		a->user = argv[i + 2];
		check_user("user id", a->user);
	}
}

/* ------------------------------------------------------------------------ */
/* Request                                                                  */

/* after: a listing's cursor, the last page's `next` (NULL: the first page). */
static int build_request(cbw *w, const struct args *a, uint32_t rid, const char *after)
{
	size_t pairs = 2;
	pairs += !!a->user + !!a->device + !!a->name + !!a->dir + !!a->role + !!a->group;
	pairs += a->group_owner ? 2 : !!a->members; /* owner, members */
	pairs += a->list ? 1 + !!after : 0;         /* limit, after */

	cbw_map(w, pairs);
	cbw_text(w, "cmd");
	cbw_text(w, a->cmd);
	cbw_text(w, "rid");
	cbw_uint(w, rid);
	if (a->user) {
		cbw_text(w, "user");
		cbw_text(w, a->user);
	}
	if (a->device) {
		cbw_text(w, "device");
		cbw_text(w, a->device);
	}
	if (a->name) {
		cbw_text(w, "name");
		cbw_text(w, a->name);
	}
	if (a->dir) {
		cbw_text(w, "dir");
		cbw_text(w, a->dir);
	}
	if (a->role) {
		cbw_text(w, "role");
		cbw_text(w, a->role);
	}
	if (a->group) {
		cbw_text(w, "gid");
		cbw_text(w, a->group);
	}
	if (a->group_owner) {
		cbw_text(w, "owner");
		cbw_text(w, a->owner);
	}
	if (a->group_owner || a->members) {
		cbw_text(w, "members");
		cbw_array(w, a->nmembers);
		for (size_t k = 0; k < a->nmembers; k++)
			cbw_text(w, a->members[k]);
	}
	if (a->list) {
		cbw_text(w, "limit");
		cbw_uint(w, a->page_size);
	}
	if (a->list && after) {
		cbw_text(w, "after");
		cbw_text(w, after);
	}
	return cbw_status(w);
}

/* ------------------------------------------------------------------------ */
/* Response                                                                 */

struct resp {
	bool has_rid, has_ok, ok;
	uint64_t rid;
	cbr_item cmd, code, msg, token, next; /* type 0 when absent */
	const uint8_t *counters;        /* the encoded counters map, or NULL */
	size_t counters_len;
};

/* Checks that `m` (a map header just read) is { text => uint }. */
static bool check_counters(cbr *r, const cbr_item *m, const char **why)
{
	uint64_t i = 0;
	cbr_item k, v;
	while (cbr_map_next(r, m, &i, &k)) {
		if (cbr_next(r, &v))
			break;
		if (v.type != CBR_UINT) {
			*why = "a counter value is not an unsigned integer";
			return false;
		}
	}
	if (r->err_msg) {
		*why = r->err_msg;
		return false;
	}
	return true;
}

/* Decodes a response; pointers in *o point into buf. On failure returns
 * false with a reason in *why. Only the header of each field is trusted after
 * its type has been checked. */
static bool parse_resp(const uint8_t *buf, size_t len, struct resp *o, const char **why)
{
	cbr r;
	cbr_item m, k, v;
	memset(o, 0, sizeof(*o));
	if ((*why = cbr_map_open(&r, buf, len, &m, "not a CBOR map")))
		return false;
	uint64_t i = 0;
	while (cbr_map_next(&r, &m, &i, &k)) {
		const uint8_t *start = r.p;
		if (cbr_next(&r, &v))
			break;
		if (v.type == CBR_BREAK) {
			*why = "unexpected CBOR break";
			return false;
		}
		cbr_item *text_field = NULL;
		if (cbr_eq(&k, "rid")) {
			if (v.type != CBR_UINT) {
				*why = "rid is not an unsigned integer";
				return false;
			}
			o->has_rid = true;
			o->rid = v.u;
		} else if (cbr_eq(&k, "ok")) {
			if (v.type != CBR_BOOL) {
				*why = "ok is not a boolean";
				return false;
			}
			o->has_ok = true;
			o->ok = v.b;
		} else if (cbr_eq(&k, "cmd")) {
			text_field = &o->cmd;
		} else if (cbr_eq(&k, "code")) {
			text_field = &o->code;
		} else if (cbr_eq(&k, "msg")) {
			text_field = &o->msg;
		} else if (cbr_eq(&k, "token")) {
			text_field = &o->token;
		} else if (cbr_eq(&k, "next")) {
			text_field = &o->next;
		} else if (cbr_eq(&k, "counters")) {
			if (v.type != CBR_MAP) {
				*why = "counters is not a map";
				return false;
			}
			if (!check_counters(&r, &v, why))
				return false;
			o->counters = start;
			o->counters_len = (size_t)(r.p - start);
		} else if (cbr_skip(&r, &v)) {
			break;
		}
		if (text_field) {
			if (v.type != CBR_TEXT) {
				*why = "a text field (cmd, code, msg, token or next) is not a text string";
				return false;
			}
			*text_field = v;
		}
	}
	if ((*why = cbr_map_close(&r, NULL)))
		return false;
	if (!o->has_ok) {
		*why = "no 'ok' field";
		return false;
	}
	return true;
}

struct counter {
	const uint8_t *name;
	size_t len;
	uint64_t value;
};

static int counter_cmp(const void *x, const void *y)
{
	const struct counter *a = x, *b = y;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->name, b->name, n);
	if (c)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

/* What Prometheus is told about each counter: its HELP text and whether it
 * can go down (a gauge) or only grows (a counter, exported with "_total").
 * A name the server sends that is not here (a newer plugin) is exported as
 * a counter with a generic HELP line. The refused_<code> counters are one
 * family, mosquitto_chat_refused_total{code="…"}. docs/OPERATIONS.md lists
 * them all; tests/integration/test_prometheus.py parses the output. */
struct metric_info {
	const char *name;
	bool gauge;
	const char *help;
};

static const struct metric_info metric_infos[] = {
	{ "users", true, "Chat users that exist." },
	{ "devices", true, "Chat devices that exist." },
	{ "devices_online", true, "Chat devices connected now." },
	{ "services", true, "Service accounts that exist." },
	{ "groups", true, "Groups that exist." },
	{ "auth_ok", false, "CONNECTs of chat accounts accepted." },
	{ "auth_refused", false, "CONNECTs of chat accounts refused." },
	{ "messages_in", false, "Sends received (1:1 and group)." },
	{ "messages_stored", false, "Sends stored and acknowledged." },
	{ "messages_duplicate", false, "Retried sends answered from the dedup index." },
	{ "messages_refused", false, "Refused publishes of devices, all reasons." },
	{ "events_out", false, "Inbox events published (all kinds)." },
	{ "errors_out", false, "Error events published." },
	{ "subscriptions_refused", false, "Subscriptions refused." },
	{ "admin_commands", false, "Admin commands handled." },
	{ "syncs", false, "chat/sync requests." },
	{ "auto_syncs", false, "Replays started by an inbox subscription or a resumed session." },
	{ "replays_active", true, "Replays in progress." },
	{ "backlogs_active", true, "Devices whose backlog is being drained." },
	{ "events_spilled", false, "Events that waited in a connected device's queue." },
	{ "queue_entries_replayed", false, "Queue entries replayed." },
	{ "queue_entries", true, "Offline queue entries (RocksDB's estimate)." },
	{ "receipts_in", false, "Receipt requests received." },
	{ "acks_delivered", false, "PUBACKs of inbox messages counted as delivered receipts." },
	{ "receipts_out", false, "Receipt events sent." },
	{ "events_queued", false, "Events stored for devices that could not take them live." },
	{ "messages_expired", false, "Messages removed by their expiry." },
	{ "group_events", false, "Group changes published." },
	{ "typing_out", false, "Typing documents published." },
	{ "presence_out", false, "Presence documents published." },
	{ "wakeups_out", false, "Push wake-ups published." },
	{ "wakeups_resent", false, "Push wake-ups published again for want of an ack." },
	{ "push_acks", false, "Acks from push gateways." },
	{ "push_tokens_invalid", false, "Push tokens gateways reported invalid." },
	{ "backups", false, "Backups taken." },
	{ "keys_requests", false, "The key server's requests (as it last reported them)." },
	{ "keys_refused_rate", false, "The key server's refusals for the bundle rate limit." },
	{ "keys_refused", false, "The key server's other refusals." },
	{ "keys_pool_keys", true, "Keys in the key store (RocksDB's estimate)." },
	{ "keys_devices_removed", false, "Removed devices whose keys the key server dropped." },
	{ "store_sst_bytes", true, "The store's size on disk in bytes." },
	{ "store_memtable_bytes", true, "The store's memtables in bytes." },
	{ "store_pending_compaction_bytes", true, "RocksDB's estimate of compaction debt in bytes." },
	{ "store_write_stopped", true, "1 while RocksDB stops writes (a stall)." },
	{ "store_delayed_write_rate", true, "The slowed write rate in bytes/s while RocksDB throttles." },
	{ "devices_caps_sents", true, "Devices that declared the capability sents." },
	{ "devices_caps_batch", true, "Devices that declared the capability batch." },
	{ "devices_caps_rcpts", true, "Devices that declared the capability rcpts." },
	{ "sents_out", false, "Gathered confirmation events (sents) published." },
	{ "sents_items", false, "Confirmations published in sents events." },
	{ "sents_delivered", false, "Deliveries merged into a sents item (dl) instead of a receipt event." },
	{ "rcpts_out", false, "Coalesced receipt events (rcpts) published." },
	{ "rcpts_items", false, "Receipt seqs gathered into rcpts events (per user and seq)." },
};

#define REFUSED_PREFIX "refused_"

static const struct metric_info *metric_info(const struct counter *c)
{
	for (size_t i = 0; i < sizeof(metric_infos) / sizeof(metric_infos[0]); i++)
		if (strlen(metric_infos[i].name) == c->len &&
		    memcmp(metric_infos[i].name, c->name, c->len) == 0)
			return &metric_infos[i];
	return NULL;
}

static bool is_refused(const struct counter *c)
{
	size_t n = strlen(REFUSED_PREFIX);
	return c->len > n && memcmp(c->name, REFUSED_PREFIX, n) == 0;
}

/* A server-supplied name as a metric name or label value: anything but
 * [A-Za-z0-9_] becomes '_'. */
static void put_metric_name(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		fputc(ok ? c : '_', stdout);
	}
}

/* Prometheus' text format (version 0.0.4): a HELP and a TYPE line per family,
 * every sample of a family together. */
static void print_prometheus(const struct counter *cs, size_t n)
{
	printf("# HELP mosquitto_chat_build_info The version of chatctl that wrote this.\n"
	       "# TYPE mosquitto_chat_build_info gauge\n"
	       "mosquitto_chat_build_info{version=\"%s\"} 1\n", CHAT_VERSION);
	bool refused_done = false;
	for (size_t j = 0; j < n; j++) {
		const struct counter *c = &cs[j];
		if (is_refused(c)) {
			if (refused_done)
				continue;
			refused_done = true;
			printf("# HELP mosquitto_chat_refused_total Error events sent, by code "
			       "(docs/PROTOCOL.md).\n"
			       "# TYPE mosquitto_chat_refused_total counter\n");
			size_t skip = strlen(REFUSED_PREFIX);
			for (size_t k = j; k < n; k++) {
				if (!is_refused(&cs[k]))
					continue;
				fputs("mosquitto_chat_refused_total{code=\"", stdout);
				put_metric_name(cs[k].name + skip, cs[k].len - skip);
				printf("\"} %" PRIu64 "\n", cs[k].value);
			}
			continue;
		}
		const struct metric_info *mi = metric_info(c);
		bool gauge = mi && mi->gauge;
		const char *suffix = gauge ? "" : "_total";
		fputs("# HELP mosquitto_chat_", stdout);
		put_metric_name(c->name, c->len);
		if (mi) {
			printf("%s %s\n", suffix, mi->help);
		} else {
			printf("%s The server's counter ", suffix);
			put_metric_name(c->name, c->len);
			fputs(".\n", stdout);
		}
		fputs("# TYPE mosquitto_chat_", stdout);
		put_metric_name(c->name, c->len);
		printf("%s %s\nmosquitto_chat_", suffix, gauge ? "gauge" : "counter");
		put_metric_name(c->name, c->len);
		printf("%s %" PRIu64 "\n", suffix, c->value);
	}
}

/* Prints the (already validated) counters map sorted by name. */
static bool print_counters(const uint8_t *p, size_t len, bool prometheus)
{
	cbr r;
	cbr_item m, k, v;
	cbr_init(&r, p, len);
	if (cbr_next(&r, &m))
		return false;
	/* Each entry takes at least two bytes, so len/2 bounds the count. */
	size_t cap = len / 2 + 1, n = 0;
	struct counter *cs = calloc(cap, sizeof(*cs));
	if (!cs)
		return false;
	uint64_t i = 0;
	while (n < cap && cbr_map_next(&r, &m, &i, &k) && !cbr_next(&r, &v))
		cs[n++] = (struct counter){ k.ptr, k.len, v.u };
	qsort(cs, n, sizeof(*cs), counter_cmp);
	if (prometheus) {
		print_prometheus(cs, n);
	} else {
		for (size_t j = 0; j < n; j++) {
			put_clean(stdout, cs[j].name, cs[j].len, true);
			printf(" %" PRIu64 "\n", cs[j].value);
		}
	}
	free(cs);
	return true;
}

/* ------------------------------------------------------------------------ */
/* JSON and the listings' text                                              */

static void json_text(const uint8_t *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* One item whose header `it` was just read, as JSON (byte strings as
 * lowercase hex, which no reply has today). */
static bool json_item(cbr *r, const cbr_item *it)
{
	uint64_t i = 0;
	cbr_item k, v;
	switch (it->type) {
	case CBR_UINT: printf("%" PRIu64, it->u); return true;
	case CBR_NEGINT: printf("-%" PRIu64, it->u + 1); return it->u < UINT64_MAX;
	case CBR_TEXT: json_text(it->ptr, it->len); return true;
	case CBR_BYTES:
		putchar('"');
		for (size_t j = 0; j < it->len; j++)
			printf("%02x", it->ptr[j]);
		putchar('"');
		return true;
	case CBR_BOOL: fputs(it->b ? "true" : "false", stdout); return true;
	case CBR_NULL: case CBR_UNDEF: fputs("null", stdout); return true;
	case CBR_FLOAT: printf("%.17g", it->f); return true;
	case CBR_ARRAY:
		putchar('[');
		while (cbr_array_next(r, it, &i)) {
			if (i > 1)
				putchar(',');
			if (cbr_next(r, &v) || !json_item(r, &v))
				return false;
		}
		putchar(']');
		return !r->err_msg;
	case CBR_MAP:
		putchar('{');
		while (cbr_map_next(r, it, &i, &k)) {
			if (i > 1)
				putchar(',');
			json_text(k.ptr, k.len);
			putchar(':');
			if (cbr_next(r, &v) || !json_item(r, &v))
				return false;
		}
		putchar('}');
		return !r->err_msg;
	default:
		return false;
	}
}

/* Calls fn with each item (its encoding) of the array `field` in the
 * response p; false if the response does not hold one. */
static bool each_item(const uint8_t *p, size_t len, const char *field,
                      bool (*fn)(const uint8_t *item, size_t n, void *arg), void *arg)
{
	cbr r;
	cbr_item m, k, v;
	if (cbr_map_open(&r, p, len, &m, "not a map"))
		return false;
	uint64_t i = 0;
	bool found = false;
	while (cbr_map_next(&r, &m, &i, &k)) {
		if (cbr_next(&r, &v))
			return false;
		if (!cbr_eq(&k, field) || v.type != CBR_ARRAY) {
			if (cbr_skip(&r, &v))
				return false;
			continue;
		}
		found = true;
		uint64_t j = 0;
		while (cbr_array_next(&r, &v, &j)) {
			const uint8_t *start = r.p;
			cbr_item e;
			if (cbr_next(&r, &e) || cbr_skip(&r, &e) || !fn(start, (size_t)(r.p - start), arg))
				return false;
		}
		if (r.err_msg)
			return false;
	}
	return found && !r.err_msg;
}

/* The scalar (or the header of the array) at key in the map p. */
static bool field_of(const uint8_t *p, size_t len, const char *key, cbr_item *out, cbr *at)
{
	cbr r;
	cbr_item m, k;
	if (cbr_map_open(&r, p, len, &m, "not a map"))
		return false;
	uint64_t i = 0;
	while (cbr_map_next(&r, &m, &i, &k)) {
		if (cbr_next(&r, out))
			return false;
		if (cbr_eq(&k, key)) {
			if (at)
				*at = r;
			return true;
		}
		if (cbr_skip(&r, out))
			return false;
	}
	return false;
}

static void put_field(const uint8_t *p, size_t len, const char *key)
{
	cbr_item v;
	if (!field_of(p, len, key, &v, NULL))
		fputs("?", stdout);
	else if (v.type == CBR_TEXT)
		put_clean(stdout, v.ptr, v.len, true);
	else if (v.type == CBR_UINT)
		printf("%" PRIu64, v.u);
	else if (v.type == CBR_BOOL)
		fputs(v.b ? "online" : "offline", stdout);
	else
		fputs("?", stdout);
}

/* A listing's item as one text line; arg: the command. */
static bool print_item(const uint8_t *p, size_t n, void *arg)
{
	const char *cmd = arg;
	if (strcmp(cmd, "device.list") == 0) {
		put_field(p, n, "user");
		putchar('/');
		put_field(p, n, "device");
		putchar(' ');
		put_field(p, n, "online");
	} else if (strcmp(cmd, "user.list") == 0) {
		put_field(p, n, "user");
		putchar(' ');
		put_field(p, n, "devices");
		putchar(' ');
		put_field(p, n, "online");
	} else if (strcmp(cmd, "service.list") == 0) {
		put_field(p, n, "name");
		putchar(' ');
		put_field(p, n, "role");
	} else { /* group.list */
		cbr_item v;
		put_field(p, n, "gid");
		putchar(' ');
		put_field(p, n, "members");
		if (field_of(p, n, "name", &v, NULL) && v.type == CBR_TEXT && v.len) {
			putchar(' ');
			put_clean(stdout, v.ptr, v.len, false);
		}
	}
	putchar('\n');
	return true;
}

static bool json_item_cb(const uint8_t *p, size_t n, void *arg)
{
	bool *first = arg;
	cbr r;
	cbr_item v;
	cbr_init(&r, p, n);
	if (!*first)
		putchar(',');
	*first = false;
	return !cbr_next(&r, &v) && json_item(&r, &v);
}

/* The reply's result fields (all but cmd, rid, ok) as one JSON object. */
static bool print_json(const uint8_t *p, size_t len)
{
	cbr r;
	cbr_item m, k, v;
	if (cbr_map_open(&r, p, len, &m, "not a map"))
		return false;
	uint64_t i = 0;
	bool first = true;
	putchar('{');
	while (cbr_map_next(&r, &m, &i, &k)) {
		if (cbr_next(&r, &v))
			return false;
		if (cbr_eq(&k, "cmd") || cbr_eq(&k, "rid") || cbr_eq(&k, "ok")) {
			if (cbr_skip(&r, &v))
				return false;
			continue;
		}
		if (!first)
			putchar(',');
		first = false;
		json_text(k.ptr, k.len);
		putchar(':');
		if (!json_item(&r, &v))
			return false;
	}
	puts("}");
	return !r.err_msg;
}

/* group show: `gid G`, `name N`, `members U…`, `admins U…`. */
static bool print_group(const uint8_t *p, size_t len)
{
	fputs("gid ", stdout);
	put_field(p, len, "gid");
	fputs("\nname ", stdout);
	cbr_item v;
	if (field_of(p, len, "name", &v, NULL) && v.type == CBR_TEXT)
		put_clean(stdout, v.ptr, v.len, false);
	static const char *const lists[] = { "members", "admins" };
	for (size_t l = 0; l < 2; l++) {
		cbr r;
		printf("\n%s", lists[l]);
		if (!field_of(p, len, lists[l], &v, &r) || v.type != CBR_ARRAY)
			return false;
		uint64_t i = 0;
		cbr_item e;
		while (cbr_array_next(&r, &v, &i)) {
			if (cbr_next(&r, &e) || e.type != CBR_TEXT)
				return false;
			putchar(' ');
			put_clean(stdout, e.ptr, e.len, true);
		}
	}
	putchar('\n');
	return true;
}

/* ------------------------------------------------------------------------ */
/* MQTT exchange                                                            */

enum stage { ST_CONNECTING, ST_SUBSCRIBING, ST_WAITING, ST_DONE, ST_FAILED };

struct session;
static void fail(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A response kept: one, or a listing's pages in order. */
struct page {
	uint8_t *buf;
	size_t len;
};

struct session {
	const struct args *a;
	uint32_t rid;
	cbw req;
	enum stage stage;
	int sub_mid, pub_mid;
	char err[512];
	struct page *pages; /* our copies of the matching responses */
	size_t npages;
};

/* Builds and publishes the request (a listing's next page: after its
 * cursor), under a new rid. */
static void request(struct mosquitto *mosq, struct session *s, const char *after)
{
	s->rid = randombytes_uniform(UINT32_MAX - 1) + 1;
	cbw_reset(&s->req);
	if (build_request(&s->req, s->a, s->rid, after) != CHAT_OK) {
		fail(s, "out of memory");
		mosquitto_disconnect(mosq);
		return;
	}
	int r = mosquitto_publish_v5(mosq, &s->pub_mid, REQ_TOPIC, (int)s->req.len, s->req.buf, 1,
	                             false, NULL);
	if (r != MOSQ_ERR_SUCCESS) {
		fail(s, "cannot publish the request: %s", mosquitto_strerror(r));
		mosquitto_disconnect(mosq);
	}
}

static void fail(struct session *s, const char *fmt, ...)
{
	if (s->stage == ST_FAILED || s->stage == ST_DONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	s->stage = ST_FAILED;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	struct session *s = obj;
	(void)flags;
	(void)props;
	if (rc != 0) {
		if (rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD)
			fail(s, "broker refused the login as %s (%s): wrong token, or the chat "
			        "plugin is not loaded", s->a->username, mosquitto_reason_string(rc));
		else
			fail(s, "broker refused the connection: %s", mosquitto_reason_string(rc));
		mosquitto_disconnect(mosq);
		return;
	}
	s->stage = ST_SUBSCRIBING;
	int r = mosquitto_subscribe_v5(mosq, &s->sub_mid, RESP_TOPIC, 1, 0, NULL);
	if (r != MOSQ_ERR_SUCCESS) {
		fail(s, "cannot subscribe to %s: %s", RESP_TOPIC, mosquitto_strerror(r));
		mosquitto_disconnect(mosq);
	}
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                         const int *granted_qos, const mosquitto_property *props)
{
	struct session *s = obj;
	(void)props;
	if (s->stage != ST_SUBSCRIBING || mid != s->sub_mid)
		return;
	if (qos_count < 1 || granted_qos[0] < 0 || granted_qos[0] >= 0x80) {
		fail(s, "broker refused the subscription to %s (%s)", RESP_TOPIC,
		     qos_count < 1 ? "no reason code" : mosquitto_reason_string(granted_qos[0]));
		mosquitto_disconnect(mosq);
		return;
	}
	s->stage = ST_WAITING;
	request(mosq, s, NULL);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason_code,
                       const mosquitto_property *props)
{
	struct session *s = obj;
	(void)props;
	if (s->stage == ST_WAITING && mid == s->pub_mid && reason_code >= 0x80) {
		fail(s, "broker refused the request on %s: %s", REQ_TOPIC,
		     mosquitto_reason_string(reason_code));
		mosquitto_disconnect(mosq);
	}
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct session *s = obj;
	(void)props;
	if (s->stage != ST_WAITING || !msg->topic || strcmp(msg->topic, RESP_TOPIC) != 0)
		return;
	struct resp r;
	const char *why = "empty payload";
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	if (len == 0 || !parse_resp(msg->payload, len, &r, &why)) {
		/* The broker addresses responses to us alone, so a response we
		 * cannot read is almost surely the answer to our request. */
		fail(s, "malformed response from the server: %s", why);
		mosquitto_disconnect(mosq);
		return;
	}
	if (r.has_rid) {
		if (r.rid != s->rid)
			return; /* someone else's answer */
	} else {
		/* The server echoes rid whenever it could read the request; a
		 * rid-less failure for our command means it could not. */
		if (r.ok || (r.cmd.type == CBR_TEXT && !cbr_eq(&r.cmd, s->a->cmd)))
			return;
	}
	struct page *pages = realloc(s->pages, (s->npages + 1) * sizeof(*pages));
	uint8_t *copy = malloc(len);
	if (pages)
		s->pages = pages;
	if (!pages || !copy) {
		free(copy);
		fail(s, "out of memory");
		mosquitto_disconnect(mosq);
		return;
	}
	memcpy(copy, msg->payload, len);
	s->pages[s->npages++] = (struct page){ copy, len };
	/* A listing with more after this page: the next one on this connection. */
	if (s->a->list && r.ok && r.next.type == CBR_TEXT) {
		char *after = strndup((const char *)r.next.ptr, r.next.len);
		if (!after) {
			fail(s, "out of memory");
			mosquitto_disconnect(mosq);
			return;
		}
		request(mosq, s, after);
		free(after);
		return;
	}
	s->stage = ST_DONE;
	mosquitto_disconnect(mosq);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
	struct session *s = obj;
	(void)mosq;
	(void)props;
	char tls[400];
	if (rc >= 0x80)
		fail(s, "broker closed the connection: %s", mosquitto_reason_string(rc));
	else if (*mqtt_tls_why(MOSQ_ERR_SUCCESS, tls, sizeof(tls)))
		fail(s, "%s %s:%d: %s", s->stage == ST_CONNECTING ? "cannot connect to" :
		     "lost the connection to", s->a->host, s->a->port, tls);
	else
		fail(s, "lost the connection to %s:%d", s->a->host, s->a->port);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the token file into buf (NUL-terminated, trailing whitespace
 * stripped). On failure returns false with a reason in err. */
static bool read_token(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
		return false;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
			close(fd);
			return false;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			snprintf(err, errlen, "token file %s is too large to be a token", path);
			close(fd);
			return false;
		}
	}
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "token file %s is empty", path);
		return false;
	}
	if (memchr(buf, '\0', n)) {
		snprintf(err, errlen, "token file %s contains a NUL byte", path);
		return false;
	}
	return true;
}

/* Runs the whole exchange; on success s->resp holds the response. */
static bool exchange(struct session *s)
{
	const struct args *a = s->a;
	char clientid[64];
	snprintf(clientid, sizeof(clientid), "chatctl-%ld-%08" PRIx32, (long)getpid(),
	         randombytes_random());

	/* +1 so a full buffer is detected as "too large" and the NUL fits. */
	char token[TOKEN_MAX + 1];
	if (!read_token(a->token_file, token, TOKEN_MAX, s->err, sizeof(s->err))) {
		sodium_memzero(token, sizeof(token));
		return false;
	}

	struct mosquitto *mosq = mosquitto_new(clientid, true, s);
	if (!mosq) {
		sodium_memzero(token, sizeof(token));
		snprintf(s->err, sizeof(s->err), "cannot create the MQTT client: %s",
		         strerror(errno));
		return false;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	int rc = mosquitto_username_pw_set(mosq, a->username, token);
	sodium_memzero(token, sizeof(token));
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(s->err, sizeof(s->err), "cannot set the credentials: %s",
		         mosquitto_strerror(rc));
		mosquitto_destroy(mosq);
		return false;
	}
	if (!mqtt_tls_apply(&a->tls, mosq, s->err, sizeof(s->err))) {
		mosquitto_destroy(mosq);
		return false;
	}
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(mosq, on_subscribe);
	mosquitto_publish_v5_callback_set(mosq, on_publish);
	mosquitto_message_v5_callback_set(mosq, on_message);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);

	s->stage = ST_CONNECTING;
	errno = 0;
	rc = mosquitto_connect(mosq, a->host, a->port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		char why[400];
		snprintf(s->err, sizeof(s->err), "cannot connect to %s:%d: %s", a->host, a->port,
		         mqtt_tls_why(rc, why, sizeof(why)));
		mosquitto_destroy(mosq);
		return false;
	}

	int timeout = strcmp(a->cmd, "backup") == 0 ? BACKUP_TIMEOUT_MS : TIMEOUT_MS;
	int64_t deadline = now_ms() + timeout;
	size_t seen = 0;
	while (s->stage != ST_DONE && s->stage != ST_FAILED) {
		if (s->npages != seen) { /* each page has its own time */
			seen = s->npages;
			deadline = now_ms() + timeout;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			if (s->stage == ST_CONNECTING)
				fail(s, "timed out waiting for the broker to accept the connection");
			else if (s->stage == ST_SUBSCRIBING)
				fail(s, "timed out waiting for the subscription to %s", RESP_TOPIC);
			else
				fail(s, "no response to %s within %d s (is the chat plugin loaded?)",
				     a->cmd, timeout / 1000);
			break;
		}
		errno = 0;
		rc = mosquitto_loop(mosq, left < 100 ? (int)left : 100, 1);
		if (rc != MOSQ_ERR_SUCCESS && s->stage != ST_DONE && s->stage != ST_FAILED) {
			char why[400];
			mqtt_tls_why(rc, why, sizeof(why));
			if (s->stage == ST_CONNECTING) /* a TLS handshake ends here */
				fail(s, "cannot connect to %s:%d: %s", a->host, a->port, why);
			else
				fail(s, "connection to %s:%d %s: %s", a->host, a->port,
				     rc == MOSQ_ERR_ERRNO ? "failed" : "lost", why);
		}
	}
	mosquitto_disconnect(mosq);
	mosquitto_destroy(mosq);
	return s->stage == ST_DONE;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct args a;
	parse_args(&a, argc, argv);

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		fputs("chatctl: cannot initialise libsodium\n", stderr);
		return 1;
	}

	struct session s = { .a = &a };
	cbw_init(&s.req);

	mosquitto_lib_init();
	bool ok = exchange(&s);
	mosquitto_lib_cleanup();
	cbw_free(&s.req);

	struct resp r = { 0 };
	const char *why = NULL;
	int status = 0;
	const struct page *last = s.npages ? &s.pages[s.npages - 1] : NULL;
	if (!ok) {
		fprintf(stderr, "chatctl: %s\n", s.err);
		status = 1;
	} else if (!parse_resp(last->buf, last->len, &r, &why)) { /* checked already */
		fprintf(stderr, "chatctl: malformed response from the server: %s\n", why);
		status = 1;
	} else if (!r.ok) {
		fprintf(stderr, "chatctl: %s failed: ", a.cmd);
		if (r.code.type)
			put_clean(stderr, r.code.ptr, r.code.len, false);
		else
			fputs("(no code)", stderr);
		fputs(": ", stderr);
		if (r.msg.type)
			put_clean(stderr, r.msg.ptr, r.msg.len, false);
		else
			fputs("(no message)", stderr);
		fputc('\n', stderr);
		status = 1;
	} else if (a.list) {
		bool first = true, good = true;
		if (a.json)
			printf("{\"%s\":[", a.list);
		for (size_t i = 0; good && i < s.npages; i++)
			good = a.json ? each_item(s.pages[i].buf, s.pages[i].len, a.list, json_item_cb, &first)
			              : each_item(s.pages[i].buf, s.pages[i].len, a.list, print_item,
			                          (void *)a.cmd);
		if (a.json)
			puts("]}");
		if (!good) {
			fprintf(stderr, "chatctl: malformed response from the server: no list of %s\n",
			        a.list);
			status = 1;
		}
	} else if (strcmp(a.cmd, "device.add") == 0 || strcmp(a.cmd, "service.add") == 0 ||
	           strcmp(a.cmd, "device.rotate") == 0 || strcmp(a.cmd, "service.rotate") == 0) {
		bool good = r.token.type == CBR_TEXT && r.token.len > 0;
		for (size_t i = 0; good && i < r.token.len; i++)
			good = r.token.ptr[i] > 0x20 && r.token.ptr[i] < 0x7f;
		if (!good) {
			fprintf(stderr, "chatctl: malformed response from the server: %s\n",
			        r.token.type ? "token is not printable" : "no token");
			status = 1;
		} else if (a.json) {
			print_json(last->buf, last->len);
		} else {
			fwrite(r.token.ptr, 1, r.token.len, stdout);
			fputc('\n', stdout);
		}
	} else if (strcmp(a.cmd, "stats") == 0 && !(a.json && !a.prometheus)) {
		if (!r.counters) {
			fputs("chatctl: malformed response from the server: no counters\n", stderr);
			status = 1;
		} else if (!print_counters(r.counters, r.counters_len, a.prometheus)) {
			fputs("chatctl: out of memory\n", stderr);
			status = 1;
		}
	} else if (a.json) {
		if (!print_json(last->buf, last->len)) {
			fputs("chatctl: malformed response from the server\n", stderr);
			status = 1;
		}
	} else if (strcmp(a.cmd, "group.show") == 0 && !print_group(last->buf, last->len)) {
		fputs("\nchatctl: malformed response from the server\n", stderr);
		status = 1;
	}
	for (size_t i = 0; i < s.npages; i++) {
		sodium_memzero(s.pages[i].buf, s.pages[i].len); /* may hold a fresh credential */
		free(s.pages[i].buf);
	}
	free(s.pages);
	free(a.members ? a.members[0] : NULL); /* the strdup'd --members list */
	free(a.members);
	free(a.dir);
	for (size_t i = 0; i < a.nfile_lines; i++)
		free(a.file_lines[i]);
	free(a.file_lines);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "chatctl: cannot write to stdout: %s\n", strerror(errno));
		return 1;
	}
	return status;
}
