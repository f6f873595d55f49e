/* SPDX-License-Identifier: MIT */
/*
 * spargioctl - talk to spargiod's control socket (spargioctl(8)).
 *
 *   spargioctl [-s SOCKET] [--json] COMMAND [ARG...]
 *
 * Sends one command line, reads the one-line JSON answer, prints it as a table (arrays
 * of objects) or as "key: value" lines, or raw with --json. Exit status: 0 when the
 * answer says ok, 1 when it does not (its error on stderr), 2 when the daemon cannot be
 * reached, answers nonsense or not in time; each such error says what to do.
 * `watch` (watch.c) redraws the figures every second; --names prints the names that the
 * bash completion (completion/spargioctl) offers.
 *
 * It gives up rather than hang: connecting (a full backlog) within CONNECT_S, the answer
 * within -T seconds (5 by default, 60 for reload, whose verdict waits for the new config
 * to be parsed and bound). It talks only to a socket served by root, by its own user, or
 * by the owner of the socket's directory when only that owner can write there: a socket
 * put in a shared directory by somebody else is refused before anything is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

#define DEFAULT_SOCKET "/run/spargiod/control.sock"
#define ANSWER_MAX (16u << 20)
#define CONNECT_S 5
#define DEFAULT_TIMEOUT_S 5
#define RELOAD_TIMEOUT_S 60

static void scalar(FILE *out, json_t *v)
{
	if (json_is_string(v))
		fputs(json_string_value(v), out);
	else if (json_is_integer(v))
		fprintf(out, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		fprintf(out, "%.3f", json_real_value(v));
	else if (json_is_boolean(v))
		fputs(json_is_true(v) ? "yes" : "no", out);
	else if (json_is_array(v)) { /* short lists of scalars: a,b,c */
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (i)
				fputc(',', out);
			if (json_is_object(x) || json_is_array(x))
				fputs("...", out);
			else
				scalar(out, x);
		}
	} else if (json_is_null(v))
		fputs("-", out);
	else
		fputs("...", out);
}

static int cell_width(json_t *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	scalar(f, v);
	fclose(f);
	free(buf);
	return (int)len;
}

/* An array of objects as an aligned table, columns from the first object's keys. */
static void table(const char *title, json_t *rows)
{
	json_t *first = json_array_get(rows, 0), *row;
	const char *key;
	json_t *v;
	size_t i;
	if (!first || !json_is_object(first)) {
		printf("%s: (none)\n", title);
		return;
	}
	size_t ncol = json_object_size(first);
	int *w = calloc(ncol, sizeof(int));
	size_t c = 0;
	json_object_foreach(first, key, v) w[c++] = (int)strlen(key);
	json_array_foreach(rows, i, row) {
		c = 0;
		json_object_foreach(first, key, v) {
			int cw = cell_width(json_object_get(row, key));
			if (cw > w[c])
				w[c] = cw;
			c++;
		}
	}
	printf("%s:\n", title);
	c = 0;
	json_object_foreach(first, key, v) printf("%s%-*s", c ? "  " : "  ", w[c], key), c++;
	printf("\n");
	json_array_foreach(rows, i, row) {
		c = 0;
		json_object_foreach(first, key, v) {
			json_t *cell = json_object_get(row, key);
			printf("  ");
			int cw = cell_width(cell);
			bool num = json_is_number(cell);
			if (num)
				printf("%*s", w[c] - cw, "");
			scalar(stdout, cell);
			if (!num)
				printf("%*s", w[c] - cw, "");
			c++;
		}
		printf("\n");
	}
	free(w);
}

static void pretty(json_t *answer)
{
	const char *key;
	json_t *v;
	json_object_foreach(answer, key, v) {
		if (!strcmp(key, "ok"))
			continue;
		if (json_is_array(v) && json_is_object(json_array_get(v, 0)))
			continue; /* tables after the scalars */
		printf("%s: ", key);
		scalar(stdout, v);
		printf("\n");
	}
	json_object_foreach(answer, key, v)
		if (json_is_array(v) && json_is_object(json_array_get(v, 0)))
			table(key, v);
}

int64_t sp_ctl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (ms); -ETIMEDOUT when it passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - sp_ctl_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* The daemon behind fd runs as root, as us, or as the owner of the socket's directory
 * where only that owner (and root) can write it. Else the socket may be a trap. */
static bool peer_trusted(int fd, const char *path, uid_t *peer)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct stat st;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	*peer = cr.uid;
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	char *copy = strdup(path);
	bool ok = copy && stat(dirname(copy), &st) == 0 && st.st_uid == cr.uid &&
		  !(st.st_mode & 0022);
	free(copy);
	return ok;
}

/* Connect (retrying while the backlog is full), check the peer, send line, read one
 * answer line, all within deadline. *what says which step gave up. */
static int request(const char *path, const char *line, int64_t deadline, char **answer,
		   const char **what, uid_t *peer)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	*what = "connect";
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int64_t connect_by = sp_ctl_now_ms() + CONNECT_S * 1000;
	if (connect_by > deadline)
		connect_by = deadline;
	/* a unix socket whose backlog is full answers EAGAIN at once: try again a while */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		if ((e != EAGAIN && e != EINTR) || sp_ctl_now_ms() >= connect_by) {
			close(fd);
			return e == EAGAIN ? -ETIMEDOUT : -e;
		}
		poll(NULL, 0, 50);
	}
	*what = "trust";
	if (!peer_trusted(fd, path, peer)) {
		close(fd);
		return -EPERM;
	}
	*what = "send";
	size_t n = strlen(line), off = 0;
	int ret = 0;
	while (off < n && ret == 0) {
		ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
		if (w > 0)
			off += (size_t)w;
		else if (errno == EAGAIN)
			ret = wait_fd(fd, POLLOUT, deadline);
		else if (errno != EINTR)
			ret = -errno;
	}
	/* on a send error read anyway: a refusal is written before the daemon hangs up */
	int send_err = ret;
	*what = "answer";
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ret = buf ? 0 : -ENOMEM;
	while (ret == 0) {
		if (len + 1 >= cap) {
			char *p = cap < ANSWER_MAX ? realloc(buf, cap * 2) : NULL;
			if (!p)
				break;
			buf = p;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
		if (r < 0 && errno == EAGAIN) {
			ret = wait_fd(fd, POLLIN, deadline);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(buf + len - (size_t)r, '\n', (size_t)r))
			break;
	}
	close(fd);
	if (buf)
		buf[len] = 0;
	*answer = buf;
	if (ret == -ETIMEDOUT && !len)
		return ret;
	return len ? 0 : send_err ? send_err : ret ? ret : -ECONNRESET;
}

/* What to do, said for the error a request ended in. */
static void explain(const char *path, int ret, const char *what, uid_t peer, long timeout_s,
		    bool reload)
{
	if (ret == -EPERM && !strcmp(what, "trust")) {
		struct passwd *pw = getpwuid(peer);
		fprintf(stderr, "spargioctl: %s is served by uid %u (%s), not by root, by you or by "
			"the owner of its directory: not talking to it (a socket put there by "
			"another user?)\n", path, (unsigned)peer, pw ? pw->pw_name : "no such user");
	} else if (ret == -ETIMEDOUT && !strcmp(what, "connect")) {
		fprintf(stderr, "spargioctl: spargiod at %s accepts no connection (its backlog is "
			"full); gave up after %ld s\n", path, timeout_s < CONNECT_S ? timeout_s : CONNECT_S);
	} else if (ret == -ETIMEDOUT) {
		fprintf(stderr, "spargioctl: no answer from spargiod at %s within %ld s%s\n", path,
			timeout_s, reload ? "; the reload may still finish: its verdict is in the "
					    "daemon's log" : " (-T to wait longer)");
	} else if (!strcmp(what, "connect") && (ret == -ENOENT || ret == -ECONNREFUSED ||
						 ret == -ENOTDIR)) {
		fprintf(stderr, "spargioctl: no daemon at %s: is spargiod running? (-s to give "
			"another socket)\n", path);
	} else if (!strcmp(what, "connect") && (ret == -EACCES || ret == -EPERM)) {
		fprintf(stderr, "spargioctl: %s: permission denied: run as root or as the daemon's "
			"user or group (control.mode and process.user in spargiod.yaml)\n", path);
	} else if (!strcmp(what, "connect") && ret == -ENOTSOCK) {
		fprintf(stderr, "spargioctl: %s is not a socket: give the control socket of "
			"spargiod (control.socket in spargiod.yaml) with -s\n", path);
	} else if (ret == -ECONNRESET || ret == -EPIPE) {
		fprintf(stderr, "spargioctl: spargiod at %s hung up without answering: is it "
			"stopping or restarting? (its log says)\n", path);
	} else if (!strcmp(what, "connect") && ret == -ENAMETOOLONG) {
		fprintf(stderr, "spargioctl: socket path too long (at most 107 bytes): %s\n", path);
	} else {
		fprintf(stderr, "spargioctl: cannot reach spargiod at %s: %s\n", path, strerror(-ret));
	}
}

int sp_ctl_call(const char *path, const char *line, long timeout_s, json_t **answer,
		char **textp)
{
	bool reload = !strncmp(line, "reload", 6) && (line[6] == '\n' || line[6] == ' ');
	char *text = NULL;
	const char *what = "";
	uid_t peer = (uid_t)-1;
	int ret = request(path, line, sp_ctl_now_ms() + timeout_s * 1000, &text, &what, &peer);
	if (ret < 0) {
		explain(path, ret, what, peer, timeout_s, reload);
		free(text);
		return SP_CTL_EXIT_UNREACHABLE;
	}
	json_error_t jerr;
	json_t *a = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!a || !json_is_object(a)) {
		fprintf(stderr, "spargioctl: %s answered something that is not JSON: %.200s\n",
			path, text);
		json_decref(a);
		free(text);
		return SP_CTL_EXIT_UNREACHABLE;
	}
	*answer = a;
	*textp = text;
	return SP_CTL_EXIT_OK;
}

/* --names KIND [UPSTREAM]: the names a command line can take, one per line, for shell
 * completion and scripts. KIND: listeners, routes, upstreams, or servers (of UPSTREAM,
 * or of every upstream). */
static int names(const char *path, long timeout_s, int argc, char **argv)
{
	const char *kind = argc > 0 ? argv[0] : "";
	bool servers = !strcmp(kind, "servers");
	if (!servers && strcmp(kind, "listeners") && strcmp(kind, "routes") &&
	    strcmp(kind, "upstreams")) {
		fprintf(stderr, "spargioctl: --names wants listeners, routes, upstreams or "
			"servers [UPSTREAM]\n");
		return SP_CTL_EXIT_UNREACHABLE;
	}
	const char *cmd = servers ? "upstreams" : kind;
	char line[32];
	snprintf(line, sizeof(line), "%s\n", cmd);
	json_t *a;
	char *text;
	int rc = sp_ctl_call(path, line, timeout_s, &a, &text);
	if (rc)
		return rc;
	free(text);
	size_t i, j;
	json_t *row, *srv;
	json_array_foreach(json_object_get(a, cmd), i, row) {
		const char *name = json_string_value(json_object_get(row, "name"));
		if (!name)
			continue;
		if (!servers) {
			printf("%s\n", name);
			continue;
		}
		if (argc > 1 && strcmp(argv[1], name))
			continue;
		json_array_foreach(json_object_get(row, "servers"), j, srv) {
			const char *addr = json_string_value(json_object_get(srv, "address"));
			if (addr)
				printf("%s\n", addr);
		}
	}
	rc = json_is_true(json_object_get(a, "ok")) ? SP_CTL_EXIT_OK : SP_CTL_EXIT_REFUSED;
	json_decref(a);
	return rc;
}

/* `listeners|routes|upstreams NAME...`: only those rows, filtered here (the daemon
 * answers the whole list). 0, or 1 after saying which name matched nothing. */
static int only_named(json_t *answer, const char *kind, int argc, char **argv)
{
	json_t *rows = json_object_get(answer, kind), *keep = json_array();
	size_t i;
	json_t *row;
	int rc = SP_CTL_EXIT_OK;
	for (int a = 0; a < argc; a++) {
		bool found = false;
		json_array_foreach(rows, i, row) {
			if (!strcmp(json_string_value(json_object_get(row, "name")) ?: "", argv[a])) {
				json_array_append(keep, row);
				found = true;
			}
		}
		if (!found) {
			fprintf(stderr, "spargioctl: no %.*s named %s (`spargioctl %s` lists them)\n",
				(int)strlen(kind) - 1, kind, argv[a], kind);
			rc = SP_CTL_EXIT_REFUSED;
		}
	}
	json_object_set_new(answer, kind, keep);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "names", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = getenv("SPARGIOD_CONTROL") ? getenv("SPARGIOD_CONTROL") : DEFAULT_SOCKET;
	bool raw = false, list = false;
	long timeout_s = -1;
	char *end;
	int c;
	while ((c = getopt_long(argc, argv, "+s:jT:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'j': raw = true; break;
		case 'N': list = true; break;
		case 'T':
			timeout_s = strtol(optarg, &end, 10);
			if (*end || end == optarg || timeout_s < 1 || timeout_s > 86400) {
				fprintf(stderr, "spargioctl: -T wants seconds, 1 to 86400\n");
				return SP_CTL_EXIT_UNREACHABLE;
			}
			break;
		case 'h':
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: spargioctl [-s SOCKET] [--json] [-T SECONDS] COMMAND [ARG...]\n"
				"commands: status stats shards listeners routes upstreams reload\n"
				"          drain LISTENER  server enable|disable UPSTREAM ADDRESS\n"
				"          watch [-n COUNT] [-i SECONDS] (alias top)\n"
				"names:    spargioctl --names listeners|routes|upstreams|servers [UPSTREAM]\n");
			return c == 'h' ? SP_CTL_EXIT_OK : SP_CTL_EXIT_UNREACHABLE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "spargioctl: no command (try --help)\n");
		return SP_CTL_EXIT_UNREACHABLE;
	}
	bool reload = !strcmp(argv[optind], "reload");
	if (timeout_s < 0)
		timeout_s = reload ? RELOAD_TIMEOUT_S : DEFAULT_TIMEOUT_S;
	if (list)
		return names(path, timeout_s, argc - optind, argv + optind);
	if (!strcmp(argv[optind], "watch") || !strcmp(argv[optind], "top"))
		return sp_ctl_watch(path, timeout_s, argc - optind - 1, argv + optind + 1);
	const char *cmd = argv[optind];
	int nfilter = 0;
	if (!strcmp(cmd, "listeners") || !strcmp(cmd, "routes") || !strcmp(cmd, "upstreams")) {
		nfilter = argc - optind - 1;
		argc = optind + 1;
	}
	char line[4096];
	size_t len = 0;
	for (int i = optind; i < argc; i++) {
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", i > optind ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(line) - len - 1) {
			fprintf(stderr, "spargioctl: command too long\n");
			return SP_CTL_EXIT_UNREACHABLE;
		}
		len += (size_t)n;
	}
	line[len++] = '\n';
	line[len] = 0;

	json_t *answer;
	char *text;
	int rc = sp_ctl_call(path, line, timeout_s, &answer, &text);
	if (rc)
		return rc;
	bool ok = json_is_true(json_object_get(answer, "ok"));
	int frc = SP_CTL_EXIT_OK;
	if (ok && nfilter) {
		frc = only_named(answer, cmd, nfilter, argv + optind + 1);
		free(text);
		char *dump = json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER);
		text = dump ? malloc(strlen(dump) + 2) : NULL;
		if (text)
			sprintf(text, "%s\n", dump);
		free(dump);
		if (!text) {
			json_decref(answer);
			return SP_CTL_EXIT_UNREACHABLE;
		}
	}
	if (raw)
		fputs(text, stdout);
	else if (ok)
		pretty(answer);
	if (!ok)
		fprintf(stderr, "spargioctl: %s\n",
			json_string_value(json_object_get(answer, "error")) ?: "failed");
	json_decref(answer);
	free(text);
	return !ok ? SP_CTL_EXIT_REFUSED : frc;
}
