/* SPDX-License-Identifier: MIT */
/*
 * stats_json.c - the JSON of the daemon's figures (stats_json.h), moved here from the
 * control commands so that the status page's /status.json is the same text as
 * `spargioctl --json stats`. Every figure goes through stats/figures.h (relaxed loads,
 * no lock); JSON is built with jansson: no hand-written escaping.
 */
#include "stats/stats_json.h"

#include "engine/engine.h"
#include "net/listener.h"
#include "pipeline/pipeline.h"
#include "stats/figures.h"
#include "upstream/upstream.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

const struct sp_stats_process *sp_stats_process;

static const char *placement_name(enum sp_conf_placement p)
{
	static const char *names[] = { "pinned", "round_robin", "sticky", "stealable" };
	return names[p];
}

json_t *sp_stats_json_shards(struct sp_engine *eng)
{
	json_t *arr = json_array();
	unsigned n = eng ? sp_engine_nshards(eng) : 0;
	for (unsigned i = 0; i < n; i++) {
		struct sp_shard_stats s;
		sp_shard_stats_read(sp_engine_shard(eng, i), &s);
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

json_t *sp_stats_json_listeners(const struct sp_gen *gen)
{
	json_t *arr = json_array();
	bool paused = sp_stats_process && LOAD(*sp_stats_process->paused);
	for (size_t i = 0; gen && i < gen->n_listeners; i++) {
		const struct sp_gen_listener *e = &gen->listeners[i];
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
			"accepting", !LOAD(e->sock->closing) && !paused));
	}
	return arr;
}

/* A percentile in us, or null before the first session ended. */
static json_t *percentile(const struct sp_latency_figures *l, uint64_t v)
{
	return l->count ? json_integer((json_int_t)v) : json_null();
}

json_t *sp_stats_json_routes(const struct sp_gen *gen)
{
	json_t *arr = json_array();
	for (size_t i = 0; gen && i < gen->n_routes; i++) {
		const struct sp_route *r = &gen->routes[i];
		struct sp_route_figures f;
		struct sp_latency_figures lat;
		sp_figures_route(r, gen->nshards, &f);
		sp_figures_latency(r->durations, gen->nshards, &lat);
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
		if (sp_figures_file_cache(r, gen->nshards, &fc))
			json_object_set_new(o, "file_cache", json_pack(
				"{s:I, s:I, s:I, s:I}", "capacity", (json_int_t)fc.capacity,
				"entries", (json_int_t)fc.entries, "fds", (json_int_t)fc.fds,
				"superseded", (json_int_t)fc.superseded));
		json_array_append_new(arr, o);
	}
	return arr;
}

/* The generation's pools: configuration and live state of every server. */
json_t *sp_stats_json_upstreams(const struct sp_gen *gen)
{
	static const char *balance[] = { "round_robin", "least_conn", "source_hash", "random_two" };
	json_t *arr = json_array();
	const struct sp_upstreams *set = gen ? gen->upstreams : NULL;
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

double sp_stats_uptime_s(void)
{
	const struct sp_stats_process *p = sp_stats_process;
	return p ? (double)(sp_now_ns() - p->start_ns) / 1e9 : 0;
}

json_t *sp_stats_json(const struct sp_gen *gen, struct sp_engine *eng)
{
	const struct sp_stats_process *p = sp_stats_process;
	return json_pack("{s:b, s:i, s:I, s:o, s:o, s:o, s:o}", "ok", 1,
		"generation", gen ? (int)gen->number : 0,
		"connections", (json_int_t)(p ? LOAD(*p->active) : 0),
		"listeners", sp_stats_json_listeners(gen), "routes", sp_stats_json_routes(gen),
		"upstreams", sp_stats_json_upstreams(gen), "shards", sp_stats_json_shards(eng));
}
