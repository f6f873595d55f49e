/* SPDX-License-Identifier: MIT */
/*
 * commands.c - the control commands (spargioctl(8)): status, stats, shards, listeners,
 * routes, upstreams, reload, server, drain. Figures are sums of the
 * per-shard counters, read with relaxed loads (no lock, the shards never wait for us).
 * JSON is built with jansson: no hand-written escaping.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control.h"
#include "daemon/daemon.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static json_t *error_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_answer(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	/* jansson refuses invalid UTF-8: junk in a command gets a plain answer */
	return j ? j : json_pack("{s:b, s:s}", "ok", 0, "error", "command is not valid UTF-8");
}

static const char *placement_name(enum sp_conf_placement p)
{
	static const char *names[] = { "pinned", "round_robin", "sticky", "stealable" };
	return names[p];
}

static json_t *shards_json(struct sp_daemon *d)
{
	json_t *arr = json_array();
	for (unsigned i = 0; i < d->nshards; i++) {
		struct sp_shard_stats s;
		sp_shard_stats_read(sp_engine_shard(d->eng, i), &s);
		json_array_append_new(arr, json_pack(
			"{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"shard", i, "tasks_run", (json_int_t)s.tasks_run,
			"tasks_spawned", (json_int_t)s.tasks_spawned,
			"steal_tries", (json_int_t)s.steal_tries, "steals", (json_int_t)s.steals,
			"stolen", (json_int_t)s.stolen, "msgs_sent", (json_int_t)s.msgs_sent,
			"msgs_received", (json_int_t)s.msgs_received,
			"wakes_sent", (json_int_t)s.wakes_sent,
			"wakes_coalesced", (json_int_t)s.wakes_coalesced, "cqes", (json_int_t)s.cqes,
			"sleeps", (json_int_t)s.sleeps, "timers_fired", (json_int_t)s.timers_fired,
			"ops_inflight", (json_int_t)s.ops_inflight,
			"timers_armed", (json_int_t)s.timers_armed,
			"runq_depth", (json_int_t)s.runq_depth, "localq_depth", (json_int_t)s.localq_depth));
	}
	return arr;
}

static json_t *listeners_json(struct sp_daemon *d)
{
	json_t *arr = json_array();
	for (size_t i = 0; d->gen && i < d->gen->n_listeners; i++) {
		const struct sp_gen_listener *e = &d->gen->listeners[i];
		uint64_t accepted = 0, errors = 0;
		for (unsigned s = 0; s < e->sock->nshards; s++) {
			accepted += LOAD(e->sock->acc[s].accepted);
			errors += LOAD(e->sock->acc[s].errors);
		}
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:b}",
			"name", e->conf->name, "bind", e->conf->bind.text,
			"protocol", e->conf->protocol == SP_PROTO_UDP ? "udp" : "tcp",
			"route", e->conf->route->name, "tls", e->conf->tls != NULL,
			"accepted", (json_int_t)accepted, "accept_errors", (json_int_t)errors,
			"accepting", !LOAD(e->sock->closing) && !LOAD(d->paused)));
	}
	return arr;
}

static json_t *routes_json(struct sp_daemon *d)
{
	json_t *arr = json_array();
	for (size_t i = 0; d->gen && i < d->gen->n_routes; i++) {
		const struct sp_route *r = &d->gen->routes[i];
		uint64_t opened = 0, closed = 0, denied = 0, in = 0, out = 0;
		for (unsigned s = 0; s < d->gen->nshards; s++) {
			opened += LOAD(r->counters[s].opened);
			closed += LOAD(r->counters[s].closed);
			denied += LOAD(r->counters[s].denied);
			in += LOAD(r->counters[s].bytes_in);
			out += LOAD(r->counters[s].bytes_out);
		}
		json_t *stages = json_array();
		for (size_t k = 0; k < r->n_stages; k++)
			json_array_append_new(stages, json_string(sp_stage_name(r->stages[k].conf->kind)));
		/* a session may be counted closed before its opening is visible: clamp */
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I}",
			"name", r->conf->name, "placement", placement_name(r->conf->placement),
			"pipeline", stages, "sessions", (json_int_t)opened,
			"active", (json_int_t)(opened > closed ? opened - closed : 0),
			"denied", (json_int_t)denied, "bytes_in", (json_int_t)in,
			"bytes_out", (json_int_t)out));
	}
	return arr;
}

static json_t *upstreams_json(struct sp_daemon *d)
{
	static const char *balance[] = { "round_robin", "least_conn", "source_hash", "random_two" };
	json_t *arr = json_array();
	for (size_t i = 0; d->cfg && i < d->cfg->n_upstreams; i++) {
		const struct sp_conf_upstream *u = &d->cfg->upstreams[i];
		json_t *servers = json_array();
		for (size_t k = 0; k < u->n_servers; k++)
			json_array_append_new(servers, json_pack("{s:s, s:i, s:b}",
				"address", u->servers[k].address.text, "weight", (int)u->servers[k].weight,
				"backup", u->servers[k].backup));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", u->name,
			"balance", balance[u->balance], "servers", servers));
	}
	return arr;
}

static json_t *status_json(struct sp_daemon *d)
{
	return json_pack("{s:b, s:s, s:i, s:f, s:s, s:i, s:i, s:I, s:b, s:I}", "ok", 1,
		"version", PACKAGE_VERSION, "pid", (int)getpid(),
		"uptime_s", (double)(sp_now_ns() - d->start_ns) / 1e9,
		"config", d->config_path, "generation", (int)d->generation,
		"shards", (int)d->nshards, "connections", (json_int_t)LOAD(d->active),
		"accepting_paused", LOAD(d->paused),
		"reloads_failed", (json_int_t)LOAD(d->reloads_failed));
}

static json_t *drain_listener(struct sp_daemon *d, const char *name)
{
	for (size_t i = 0; d->gen && i < d->gen->n_listeners; i++) {
		const struct sp_gen_listener *e = &d->gen->listeners[i];
		if (strcmp(e->conf->name, name) != 0)
			continue;
		if (!sp_daemon_drain_listener(d, e->sock))
			return error_answer("listener '%s' is already draining", name);
		return json_pack("{s:b, s:s, s:s}", "ok", 1, "listener", name, "state", "draining");
	}
	return error_answer("no listener named '%s'", name);
}

static json_t *answer(struct sp_daemon *d, char **argv, int argc)
{
	const char *cmd = argv[0];
	if (!strcmp(cmd, "status") && argc == 1)
		return status_json(d);
	if (!strcmp(cmd, "shards") && argc == 1)
		return json_pack("{s:b, s:o}", "ok", 1, "shards", shards_json(d));
	if (!strcmp(cmd, "listeners") && argc == 1)
		return json_pack("{s:b, s:o}", "ok", 1, "listeners", listeners_json(d));
	if (!strcmp(cmd, "routes") && argc == 1)
		return json_pack("{s:b, s:o}", "ok", 1, "routes", routes_json(d));
	if (!strcmp(cmd, "upstreams") && argc == 1)
		return json_pack("{s:b, s:o}", "ok", 1, "upstreams", upstreams_json(d));
	if (!strcmp(cmd, "stats") && argc == 1)
		return json_pack("{s:b, s:i, s:I, s:o, s:o, s:o, s:o}", "ok", 1,
			"generation", (int)d->generation, "connections", (json_int_t)LOAD(d->active),
			"listeners", listeners_json(d), "routes", routes_json(d),
			"upstreams", upstreams_json(d), "shards", shards_json(d));
	if (!strcmp(cmd, "reload") && argc == 1) {
		char err[1024];
		if (sp_daemon_reload(d, err, sizeof(err)) < 0)
			return json_pack("{s:b, s:s, s:i}", "ok", 0, "error", err,
					 "generation", (int)d->generation);
		return json_pack("{s:b, s:i}", "ok", 1, "generation", (int)d->generation);
	}
	if (!strcmp(cmd, "drain") && argc == 2)
		return drain_listener(d, argv[1]);
	if (!strcmp(cmd, "server") && argc == 4 &&
	    (!strcmp(argv[1], "enable") || !strcmp(argv[1], "disable"))) {
		if (!sp_config_upstream(d->cfg, argv[2]))
			return error_answer("no upstream named '%s'", argv[2]);
		return error_answer("server %s: this build has no proxy handler yet", argv[1]);
	}
	static const char *known[] = { "status", "stats", "shards", "listeners", "routes",
				       "upstreams", "reload", "drain", "server" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(cmd, known[i]))
			return error_answer("wrong arguments for '%s' (see spargioctl(8))", cmd);
	return error_answer("unknown command '%s'", cmd);
}

char *sp_control_answer(struct sp_daemon *d, const char *line, size_t len)
{
	char buf[4097];
	char *argv[8];
	int argc = 0;
	json_t *j;

	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, line, len);
	buf[len] = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch < 0x20 && ch != '\t') {
			j = error_answer("%s", "command contains control characters");
			goto out;
		}
	}
	for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (argc == 8) {
			j = error_answer("%s", "too many arguments");
			goto out;
		}
		argv[argc++] = tok;
	}
	j = argc ? answer(d, argv, argc) : error_answer("%s", "empty command");
out:;
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	return text;
}
