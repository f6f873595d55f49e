/* SPDX-License-Identifier: MIT */
/*
 * spargioctl - talk to spargiod's control socket (spargioctl(8)).
 *
 *   spargioctl [-s SOCKET] [--json] COMMAND [ARG...]
 *
 * Sends one command line, reads the one-line JSON answer, prints it as a table (arrays
 * of objects) or as "key: value" lines, or raw with --json. Exit status: 0 when the
 * answer says ok, 1 when it does not (its error on stderr), 2 when the daemon cannot be
 * reached or answers nonsense.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/spargiod/control.sock"
#define ANSWER_MAX (16u << 20)

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

static int request(const char *path, const char *line, char **answer)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return -e;
	}
	/* a reload may take a while (parsing, binding): wait up to two minutes */
	struct timeval tv = { .tv_sec = 120 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	size_t n = strlen(line);
	int send_err = send(fd, line, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : errno;
	/* on a send error read anyway: a refusal is written before the daemon hangs up */
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= ANSWER_MAX)
				break;
			cap *= 2;
			buf = realloc(buf, cap);
		}
		ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(buf + len - (size_t)r, '\n', (size_t)r))
			break;
	}
	close(fd);
	buf[len] = 0;
	*answer = buf;
	return len ? 0 : send_err ? -send_err : -ECONNRESET;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = getenv("SPARGIOD_CONTROL") ? getenv("SPARGIOD_CONTROL") : DEFAULT_SOCKET;
	bool raw = false;
	int c;
	while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'j': raw = true; break;
		case 'h':
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: spargioctl [-s SOCKET] [--json] COMMAND [ARG...]\n"
				"commands: status stats shards listeners routes upstreams reload\n"
				"          drain LISTENER  server enable|disable UPSTREAM ADDRESS\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "spargioctl: no command (try --help)\n");
		return 2;
	}
	char line[4096];
	size_t len = 0;
	for (int i = optind; i < argc; i++) {
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", i > optind ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(line) - len - 1) {
			fprintf(stderr, "spargioctl: command too long\n");
			return 2;
		}
		len += (size_t)n;
	}
	line[len++] = '\n';
	line[len] = 0;

	char *text = NULL;
	int ret = request(path, line, &text);
	if (ret < 0) {
		fprintf(stderr, "spargioctl: cannot reach spargiod at %s: %s\n", path, strerror(-ret));
		free(text);
		return 2;
	}
	json_error_t jerr;
	json_t *answer = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!answer || !json_is_object(answer)) {
		fprintf(stderr, "spargioctl: %s answered something that is not JSON: %.200s\n",
			path, text);
		free(text);
		return 2;
	}
	bool ok = json_is_true(json_object_get(answer, "ok"));
	if (raw)
		fputs(text, stdout);
	else if (ok)
		pretty(answer);
	if (!ok)
		fprintf(stderr, "spargioctl: %s\n",
			json_string_value(json_object_get(answer, "error")) ?: "failed");
	json_decref(answer);
	free(text);
	return ok ? 0 : 1;
}
