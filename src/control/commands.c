/* SPDX-License-Identifier: MIT */
/*
 * commands.c - the control commands (spargioctl(8)): status, stats, shards, listeners,
 * routes, upstreams, reload, server, drain, run on lines that parse.c checked. Figures
 * are sums of the per-shard counters, read with relaxed loads (no lock, the shards never
 * wait for us), through stats/figures.h like the metrics handler. JSON is built with
 * jansson: no hand-written escaping.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control.h"
#include "daemon/daemon.h"
#include "upstream/upstream.h"
#include "stats/figures.h"

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
			"{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			" s:I, s:I, s:I}",
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
			"runq_depth", (json_int_t)s.runq_depth, "localq_depth", (json_int_t)s.localq_depth,
			"cq_overflows", (json_int_t)s.cq_overflows, "cq_dropped", (json_int_t)s.cq_dropped,
			"msgs_bounced", (json_int_t)s.msgs_bounced));
	}
	return arr;
}

static json_t *listeners_json(struct sp_daemon *d)
{
	json_t *arr = json_array();
	for (size_t i = 0; d->gen && i < d->gen->n_listeners; i++) {
		const struct sp_gen_listener *e = &d->gen->listeners[i];
		struct sp_listener_figures f;
		sp_figures_listener(e->sock, &f);
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
			"name", e->conf->name, "bind", e->conf->bind.text,
			"protocol", e->conf->protocol == SP_PROTO_UDP ? "udp" : "tcp",
			"route", e->conf->route->name, "tls", e->conf->tls != NULL,
			"accepted", (json_int_t)f.accepted, "accept_errors", (json_int_t)f.accept_errors,
			"active", (json_int_t)f.active, "refused_limit", (json_int_t)f.refused_limit,
			"refused_acl", (json_int_t)f.refused_acl,
			"refused_rate_limit", (json_int_t)f.refused_rate_limit,
			"refused_per_source", (json_int_t)f.refused_per_source,
			"accepting", !LOAD(e->sock->closing) && !LOAD(d->paused)));
	}
	return arr;
}

/* A percentile in us, or null before the first session ended. */
static json_t *percentile(const struct sp_latency_figures *l, uint64_t v)
{
	return l->count ? json_integer((json_int_t)v) : json_null();
}

static json_t *routes_json(struct sp_daemon *d)
{
	json_t *arr = json_array();
	for (size_t i = 0; d->gen && i < d->gen->n_routes; i++) {
		const struct sp_route *r = &d->gen->routes[i];
		struct sp_route_figures f;
		struct sp_latency_figures lat;
		sp_figures_route(r, d->gen->nshards, &f);
		sp_figures_latency(r->durations, d->gen->nshards, &lat);
		json_t *stages = json_array();
		for (size_t k = 0; k < r->n_stages; k++)
			json_array_append_new(stages, json_string(sp_stage_name(r->stages[k].conf->kind)));
		json_t *o = json_pack(
			"{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}",
			"name", r->conf->name, "placement", placement_name(r->conf->placement),
			"pipeline", stages, "sessions", (json_int_t)f.sessions,
			"active", (json_int_t)f.active, "denied", (json_int_t)f.denied,
			"errors", (json_int_t)f.errors, "bytes_in", (json_int_t)f.bytes_in,
			"bytes_out", (json_int_t)f.bytes_out, "p50_us", percentile(&lat, lat.p50_us),
			"p90_us", percentile(&lat, lat.p90_us), "p99_us", percentile(&lat, lat.p99_us),
			"p999_us", percentile(&lat, lat.p999_us));
		struct sp_file_cache_figures fc;
		if (sp_figures_file_cache(r, d->gen->nshards, &fc))
			json_object_set_new(o, "file_cache", json_pack(
				"{s:I, s:I, s:I, s:I}", "capacity", (json_int_t)fc.capacity,
				"entries", (json_int_t)fc.entries, "fds", (json_int_t)fc.fds,
				"superseded", (json_int_t)fc.superseded));
		json_array_append_new(arr, o);
	}
	return arr;
}

/* The current generation's pools: configuration and live state of every server. */
static json_t *upstreams_json(struct sp_daemon *d)
{
	static const char *balance[] = { "round_robin", "least_conn", "source_hash", "random_two" };
	json_t *arr = json_array();
	struct sp_upstreams *set = d->gen ? d->gen->upstreams : NULL;
	for (size_t i = 0; set && i < set->n; i++) {
		const struct sp_upstream *u = &set->v[i];
		json_t *servers = json_array();
		for (size_t k = 0; k < u->n_servers; k++) {
			const struct sp_server *s = &u->servers[k];
			struct sp_server_figures f;
			sp_figures_server(s, &f);
			json_array_append_new(servers, json_pack(
				"{s:s, s:i, s:b, s:s, s:I, s:I, s:I, s:I, s:I}",
				"address", s->conf->address.text, "weight", (int)s->conf->weight,
				"backup", s->conf->backup, "state", f.state,
				"active", (json_int_t)f.active, "total", (json_int_t)f.total,
				"connect_failures", (json_int_t)f.connect_failures,
				"checks_ok", (json_int_t)f.checks_ok,
				"checks_failed", (json_int_t)f.checks_failed));
		}
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:o}", "name", u->conf->name,
			"balance", balance[u->conf->balance], "health_checks",
			u->conf->health_check != NULL, "servers", servers));
	}
	return arr;
}

static json_t *server_enable(struct sp_daemon *d, const char *upstream, const char *address,
			     bool enable)
{
	int ret = sp_upstream_set_enabled(d->gen ? d->gen->upstreams : NULL, upstream, address,
					  enable);
	if (ret == -ENOENT)
		return error_answer("no upstream named '%s'", upstream);
	if (ret == -ESRCH)
		return error_answer("upstream '%s' has no server '%s'", upstream, address);
	struct sp_server *s = sp_upstream_server(sp_upstream_find(d->gen->upstreams, upstream),
						 address);
	return json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "upstream", upstream, "server",
			 s->conf->address.text, "state", sp_server_state(s));
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

static json_t *answer(struct sp_daemon *d, const struct sp_ctl_command *c)
{
	switch (c->cmd) {
	case SP_CTL_STATUS:
		return status_json(d);
	case SP_CTL_SHARDS:
		return json_pack("{s:b, s:o}", "ok", 1, "shards", shards_json(d));
	case SP_CTL_LISTENERS:
		return json_pack("{s:b, s:o}", "ok", 1, "listeners", listeners_json(d));
	case SP_CTL_ROUTES:
		return json_pack("{s:b, s:o}", "ok", 1, "routes", routes_json(d));
	case SP_CTL_UPSTREAMS:
		return json_pack("{s:b, s:o}", "ok", 1, "upstreams", upstreams_json(d));
	case SP_CTL_STATS:
		return json_pack("{s:b, s:i, s:I, s:o, s:o, s:o, s:o}", "ok", 1,
			"generation", (int)d->generation, "connections", (json_int_t)LOAD(d->active),
			"listeners", listeners_json(d), "routes", routes_json(d),
			"upstreams", upstreams_json(d), "shards", shards_json(d));
	case SP_CTL_RELOAD: {
		char err[1024];
		if (sp_daemon_reload(d, err, sizeof(err)) < 0)
			return json_pack("{s:b, s:s, s:i}", "ok", 0, "error", err,
					 "generation", (int)d->generation);
		return json_pack("{s:b, s:i}", "ok", 1, "generation", (int)d->generation);
	}
	case SP_CTL_DRAIN:
		return drain_listener(d, c->args[0]);
	case SP_CTL_SERVER_ENABLE:
	case SP_CTL_SERVER_DISABLE:
		return server_enable(d, c->args[0], c->args[1], c->cmd == SP_CTL_SERVER_ENABLE);
	}
	return error_answer("unknown command '%s'", c->name);
}

char *sp_control_answer(struct sp_daemon *d, const char *line, size_t len)
{
	struct sp_ctl_command c;
	char err[160];
	json_t *j;

	if (sp_control_parse(line, len, &c, err, sizeof(err)) < 0)
		j = error_answer("%s", err);
	else
		j = answer(d, &c);
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	return text;
}
