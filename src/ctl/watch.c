/* SPDX-License-Identifier: MIT */
/*
 * watch.c - `spargioctl watch` (alias `top`): the key figures of a running spargiod,
 * redrawn every second until interrupted.
 *
 * Each frame asks for `status` and `stats` and shows, beside the counters, their rates
 * since the previous frame (the daemon keeps totals only). On a terminal the screen is
 * cleared and redrawn in place; otherwise frames follow each other, separated by a blank
 * line, so that the output can be logged or tested. SIGINT or SIGTERM ends it with exit
 * status 0; -n COUNT ends it after COUNT frames; a daemon that goes away ends it with 2.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

static volatile sig_atomic_t stop;
static FILE *out; /* the frame being drawn (a memory stream) */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* The row of the previous frame's array with the same key value (name, shard, address). */
static json_t *prev_row(json_t *prev, const char *key, json_t *row)
{
	size_t i;
	json_t *p;
	json_array_foreach(prev, i, p) {
		if (json_equal(json_object_get(p, key), json_object_get(row, key)))
			return p;
	}
	return NULL;
}

/* The rate of counter key between the previous frame (dt seconds ago) and this one. */
static double rate(json_t *row, json_t *prev, const char *key, double dt)
{
	if (!prev || dt <= 0)
		return 0;
	long long d = num(row, key) - num(prev, key);
	return d > 0 ? (double)d / dt : 0;
}

/* 12345678 -> "12.3M": rates and byte counts in a column of fixed width. */
static const char *human(double v, char *buf, size_t len)
{
	static const char unit[] = " kMGTP";
	int u = 0;
	while (v >= 1000 && u < 5)
		v /= 1000, u++;
	if (u == 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f%c", v, unit[u]);
	return buf;
}

static void percentile(json_t *row, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(row, key);
	if (!json_is_number(v))
		snprintf(buf, len, "-");
	else if (json_number_value(v) >= 10000)
		snprintf(buf, len, "%.1fms", json_number_value(v) / 1000);
	else
		snprintf(buf, len, "%.0fus", json_number_value(v));
}

static void header(json_t *status, json_t *stats, double every)
{
	double up = json_number_value(json_object_get(status, "uptime_s"));
	long s = (long)up;
	char clock[16];
	time_t now = time(NULL);
	strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&now));
	fprintf(out,
		"spargiod %s  pid %lld  up %ldd%02ldh%02ldm%02lds  generation %lld  shards %lld  "
		"connections %lld%s\n",
		json_string_value(json_object_get(status, "version")) ?: "?", num(status, "pid"),
		s / 86400, s / 3600 % 24, s / 60 % 60, s % 60, num(stats, "generation"),
		num(status, "shards"), num(stats, "connections"),
		json_is_true(json_object_get(status, "accepting_paused")) ? "  ACCEPT PAUSED" : "");
	fprintf(out, "%s  every %g s, Ctrl-C to quit\n\n", clock, every);
}

static void listeners(json_t *rows, json_t *prev, double dt)
{
	size_t i;
	json_t *r;
	char a[16];
	fprintf(out, "%-16s %-24s %8s %10s %8s %8s\n", "LISTENER", "BIND", "ACTIVE", "ACCEPTED",
		"CONN/S", "REFUSED");
	json_array_foreach(rows, i, r) {
		long long refused = num(r, "refused_limit") + num(r, "refused_acl") +
				    num(r, "refused_rate_limit") + num(r, "refused_per_source");
		fprintf(out, "%-16s %-24s %8lld %10lld %8s %8lld%s\n",
			json_string_value(json_object_get(r, "name")) ?: "?",
			json_string_value(json_object_get(r, "bind")) ?: "?", num(r, "active"),
			num(r, "accepted"),
			human(rate(r, prev_row(prev, "name", r), "accepted", dt), a, sizeof(a)),
			refused,
			json_is_false(json_object_get(r, "accepting")) ? "  draining" : "");
	}
}

static void routes(json_t *rows, json_t *prev, double dt)
{
	size_t i;
	json_t *r;
	char s[16], in[16], ob[16], p50[16], p99[16];
	fprintf(out, "\n%-16s %8s %10s %8s %8s %8s %8s %8s %8s\n", "ROUTE", "ACTIVE", "SESSIONS",
		"SESS/S", "IN B/S", "OUT B/S", "ERRORS", "P50", "P99");
	json_array_foreach(rows, i, r) {
		json_t *p = prev_row(prev, "name", r);
		percentile(r, "p50_us", p50, sizeof(p50));
		percentile(r, "p99_us", p99, sizeof(p99));
		fprintf(out, "%-16s %8lld %10lld %8s %8s %8s %8lld %8s %8s\n",
			json_string_value(json_object_get(r, "name")) ?: "?", num(r, "active"),
			num(r, "sessions"), human(rate(r, p, "sessions", dt), s, sizeof(s)),
			human(rate(r, p, "bytes_in", dt), in, sizeof(in)),
			human(rate(r, p, "bytes_out", dt), ob, sizeof(ob)), num(r, "errors"), p50,
			p99);
	}
}

static void upstreams(json_t *rows)
{
	size_t i, j;
	json_t *u, *s;
	if (!json_array_size(rows))
		return;
	fprintf(out, "\n%-16s %-24s %-8s %8s %10s %8s %10s\n", "UPSTREAM", "SERVER", "STATE",
		"ACTIVE", "TOTAL", "FAILS", "CHECKS OK");
	json_array_foreach(rows, i, u) {
		json_array_foreach(json_object_get(u, "servers"), j, s) {
			fprintf(out, "%-16s %-24s %-8s %8lld %10lld %8lld %10lld\n",
			       j ? "" : json_string_value(json_object_get(u, "name")) ?: "?",
			       json_string_value(json_object_get(s, "address")) ?: "?",
			       json_string_value(json_object_get(s, "state")) ?: "?", num(s, "active"),
			       num(s, "total"), num(s, "connect_failures"), num(s, "checks_ok"));
		}
	}
}

static void shards(json_t *rows, json_t *prev, double dt)
{
	size_t i;
	json_t *r;
	char t[16], st[16], c[16], sl[16];
	fprintf(out, "\n%-6s %10s %10s %10s %10s %6s\n", "SHARD", "TASKS/S", "STEALS/S", "CQES/S",
		"SLEEPS/S", "RUNQ");
	json_array_foreach(rows, i, r) {
		json_t *p = prev_row(prev, "shard", r);
		fprintf(out, "%-6lld %10s %10s %10s %10s %6lld\n", num(r, "shard"),
			human(rate(r, p, "tasks_run", dt), t, sizeof(t)),
			human(rate(r, p, "steals", dt), st, sizeof(st)),
			human(rate(r, p, "cqes", dt), c, sizeof(c)),
			human(rate(r, p, "sleeps", dt), sl, sizeof(sl)), num(r, "runq_depth"));
	}
}

/* On a terminal, overwrite the previous frame in place: home, each line cleared to its
 * end, the rest of the screen cleared (no full clear: no flicker, no scrollback). */
static void show(const char *frame, bool tty)
{
	if (!tty) {
		fputs(frame, stdout);
		fflush(stdout);
		return;
	}
	fputs("\033[H", stdout);
	for (const char *p = frame; *p; p++) {
		if (*p == '\n')
			fputs("\033[K", stdout);
		fputc(*p, stdout);
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}

/* Sleep until deadline (ms) or a signal. */
static void pause_until(int64_t deadline)
{
	while (!stop) {
		int64_t left = deadline - sp_ctl_now_ms();
		if (left <= 0)
			return;
		struct timespec ts = {left / 1000, (left % 1000) * 1000000};
		nanosleep(&ts, NULL); /* EINTR on a signal: the loop sees stop */
	}
}

int sp_ctl_watch(const char *path, long timeout_s, int argc, char **argv)
{
	long count = -1;
	double every = 1;
	char *end;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			count = strtol(argv[++i], &end, 10);
			if (*end || count < 1) {
				fprintf(
				    stderr,
				    "spargioctl: watch -n wants a count of frames, 1 or more\n");
				return SP_CTL_EXIT_UNREACHABLE;
			}
		} else if (!strcmp(argv[i], "-i") && i + 1 < argc) {
			every = strtod(argv[++i], &end);
			if (*end || !(every >= 0.1 && every <= 3600)) {
				fprintf(stderr,
					"spargioctl: watch -i wants seconds, 0.1 to 3600\n");
				return SP_CTL_EXIT_UNREACHABLE;
			}
		} else {
			fprintf(stderr, "spargioctl: usage: watch [-n COUNT] [-i SECONDS]\n");
			return SP_CTL_EXIT_UNREACHABLE;
		}
	}
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: wake the sleep */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool tty = isatty(STDOUT_FILENO);
	json_t *prev = NULL;
	int64_t prev_ms = 0, next = sp_ctl_now_ms();
	int rc = SP_CTL_EXIT_OK;
	for (long frame = 0; !stop && (count < 0 || frame < count); frame++) {
		json_t *status, *stats;
		char *t1, *t2;
		if ((rc = sp_ctl_call(path, "status\n", timeout_s, &status, &t1)))
			break;
		free(t1);
		if ((rc = sp_ctl_call(path, "stats\n", timeout_s, &stats, &t2))) {
			json_decref(status);
			break;
		}
		free(t2);
		int64_t now = sp_ctl_now_ms();
		double dt = prev ? (double)(now - prev_ms) / 1000 : 0;
		char *buf = NULL;
		size_t len = 0;
		out = open_memstream(&buf, &len);
		if (!out) {
			json_decref(status);
			json_decref(stats);
			rc = SP_CTL_EXIT_UNREACHABLE;
			break;
		}
		if (!tty && frame)
			fputc('\n', out);
		header(status, stats, every);
		listeners(json_object_get(stats, "listeners"),
			  prev ? json_object_get(prev, "listeners") : NULL, dt);
		routes(json_object_get(stats, "routes"),
		       prev ? json_object_get(prev, "routes") : NULL, dt);
		upstreams(json_object_get(stats, "upstreams"));
		shards(json_object_get(stats, "shards"),
		       prev ? json_object_get(prev, "shards") : NULL, dt);
		fclose(out);
		show(buf, tty);
		free(buf);
		json_decref(status);
		json_decref(prev);
		prev = stats;
		prev_ms = now;
		if (count < 0 || frame + 1 < count) {
			next += (int64_t)(every * 1000);
			pause_until(next);
		}
	}
	json_decref(prev);
	return rc;
}
