/* SPDX-License-Identifier: MIT */
/*
 * metrics_text.c - the Prometheus text exposition (format 0.0.4) of a generation and
 * the engine's shards (and the upstream servers). Names follow the Prometheus conventions: a `spargiod_` prefix,
 * `_total` on counters, base units (seconds, bytes), one family's samples together
 * under its HELP and TYPE lines. Every figure comes from stats/figures.h, like the
 * control socket's `stats`, so both always agree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "handlers/metrics.h"
#include "net/listener.h"
#include "pipeline/pipeline.h"
#include "stats/figures.h"
#include "upstream/upstream.h"

/* ------------------------------------------------------------------------------------ */
/* Text buffer                                                                           */

static bool reserve(struct sp_text *t, size_t more)
{
	if (t->failed)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap : 16384;
	while (cap < t->len + more + 1)
		cap *= 2;
	char *p = realloc(t->buf, cap);
	if (!p) {
		t->failed = true;
		return false;
	}
	t->buf = p;
	t->cap = cap;
	return true;
}

void sp_text_printf(struct sp_text *t, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(t, (size_t)n))
		return;
	if ((size_t)n < sizeof(small)) {
		memcpy(t->buf + t->len, small, (size_t)n + 1);
	} else {
		va_start(ap, fmt);
		vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	t->len += (size_t)n;
}

void sp_text_label(struct sp_text *t, const char *value)
{
	if (!reserve(t, 2 * strlen(value)))
		return;
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			t->buf[t->len++] = '\\';
		if (*p == '\n') {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = 'n';
			continue;
		}
		t->buf[t->len++] = *p;
	}
	t->buf[t->len] = 0;
}

void sp_text_free(struct sp_text *t)
{
	free(t->buf);
	*t = (struct sp_text){ 0 };
}

/* ------------------------------------------------------------------------------------ */
/* Families                                                                              */

static void family(struct sp_text *t, const char *name, const char *type, const char *help)
{
	sp_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{key="value"[,extra]} number */
static void sample(struct sp_text *t, const char *name, const char *key, const char *value,
		   const char *extra, uint64_t v)
{
	sp_text_printf(t, "%s{%s=\"", name, key);
	sp_text_label(t, value);
	sp_text_printf(t, "\"%s%s} %llu\n", extra ? "," : "", extra ? extra : "",
		       (unsigned long long)v);
}

static const struct {
	const char *name, *type, *help;
	size_t off;
} listener_families[] = {
#define L(n, ty, h, f) { "spargiod_listener_" n, ty, h, offsetof(struct sp_listener_figures, f) }
	L("accepted_total", "counter", "Connections accepted.", accepted),
	L("accept_errors_total", "counter", "Failed accepts (out of descriptors, memory...).",
	  accept_errors),
	L("active_connections", "gauge", "Sessions open now.", active),
#undef L
};

static void listeners(struct sp_text *t, const struct sp_gen *gen)
{
	struct sp_listener_figures f;
	for (size_t k = 0; k < sizeof(listener_families) / sizeof(listener_families[0]); k++) {
		family(t, listener_families[k].name, listener_families[k].type,
		       listener_families[k].help);
		for (size_t i = 0; i < gen->n_listeners; i++) {
			sp_figures_listener(gen->listeners[i].sock, &f);
			sample(t, listener_families[k].name, "listener", gen->listeners[i].conf->name,
			       NULL, *(const uint64_t *)((const char *)&f + listener_families[k].off));
		}
	}
	family(t, "spargiod_listener_refused_total", "counter",
	       "Connections closed unserved: over a per_source cap, or denied by a filter.");
	for (size_t i = 0; i < gen->n_listeners; i++) {
		const char *name = gen->listeners[i].conf->name;
		sp_figures_listener(gen->listeners[i].sock, &f);
		sample(t, "spargiod_listener_refused_total", "listener", name, "reason=\"limit\"",
		       f.refused_limit);
		sample(t, "spargiod_listener_refused_total", "listener", name, "reason=\"acl\"",
		       f.refused_acl);
		sample(t, "spargiod_listener_refused_total", "listener", name,
		       "reason=\"rate_limit\"", f.refused_rate_limit);
		sample(t, "spargiod_listener_refused_total", "listener", name,
		       "reason=\"per_source\"", f.refused_per_source);
	}
}

static const struct {
	const char *name, *type, *help;
	size_t off;
} route_families[] = {
#define R(n, ty, h, f) { "spargiod_route_" n, ty, h, offsetof(struct sp_route_figures, f) }
	R("sessions_total", "counter", "Sessions started.", sessions),
	R("active_sessions", "gauge", "Sessions open now.", active),
	R("denied_total", "counter", "Connections a filter of the route denied.", denied),
	R("errors_total", "counter", "Sessions that ended with an error, not a clean close.",
	  errors),
#undef R
};

static void route_durations(struct sp_text *t, const struct sp_gen *gen)
{
	static const char name[] = "spargiod_route_session_duration_seconds";
	struct sp_latency_figures lat;
	family(t, name, "histogram", "How long the route's sessions lasted, accept to close.");
	for (size_t i = 0; i < gen->n_routes; i++) {
		const struct sp_route *r = &gen->routes[i];
		char le[40];
		sp_figures_latency(r->durations, gen->nshards, &lat);
		for (unsigned b = 0; b < SP_FIG_BOUNDS; b++) {
			snprintf(le, sizeof(le), "le=\"%g\"", (double)sp_fig_bounds_us[b] / 1e6);
			sample(t, "spargiod_route_session_duration_seconds_bucket", "route",
			       r->conf->name, le, lat.below[b]);
		}
		sample(t, "spargiod_route_session_duration_seconds_bucket", "route", r->conf->name,
		       "le=\"+Inf\"", lat.count);
		sp_text_printf(t, "%s_sum{route=\"", name);
		sp_text_label(t, r->conf->name);
		sp_text_printf(t, "\"} %llu.%06llu\n", (unsigned long long)(lat.sum_us / 1000000),
			       (unsigned long long)(lat.sum_us % 1000000));
		sample(t, "spargiod_route_session_duration_seconds_count", "route", r->conf->name,
		       NULL, lat.count);
	}
}

/* The open-file caches of the files routes (gauges; a route without one has no sample). */
static void file_caches(struct sp_text *t, const struct sp_gen *gen)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fams[] = {
#define C(n, h, f) { "spargiod_files_cache_" n, h, offsetof(struct sp_file_cache_figures, f) }
		C("capacity", "Entries the route's open-file caches may hold, all shards.", capacity),
		C("entries", "Files in the route's open-file caches.", entries),
		C("fds", "Descriptors the route's open-file caches hold (at most the capacity).", fds),
		C("superseded", "Cached files replaced or changed on disk, still being sent.",
		  superseded),
#undef C
	};
	struct sp_file_cache_figures f;
	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		family(t, fams[k].name, "gauge", fams[k].help);
		for (size_t i = 0; i < gen->n_routes; i++)
			if (sp_figures_file_cache(&gen->routes[i], gen->nshards, &f))
				sample(t, fams[k].name, "route", gen->routes[i].conf->name, NULL,
				       *(const uint64_t *)((const char *)&f + fams[k].off));
	}
}

static void routes(struct sp_text *t, const struct sp_gen *gen)
{
	struct sp_route_figures f;
	for (size_t k = 0; k < sizeof(route_families) / sizeof(route_families[0]); k++) {
		family(t, route_families[k].name, route_families[k].type, route_families[k].help);
		for (size_t i = 0; i < gen->n_routes; i++) {
			sp_figures_route(&gen->routes[i], gen->nshards, &f);
			sample(t, route_families[k].name, "route", gen->routes[i].conf->name, NULL,
			       *(const uint64_t *)((const char *)&f + route_families[k].off));
		}
	}
	family(t, "spargiod_route_bytes_total", "counter",
	       "Bytes received from (in) and sent to (out) clients, counted when sessions end.");
	for (size_t i = 0; i < gen->n_routes; i++) {
		sp_figures_route(&gen->routes[i], gen->nshards, &f);
		sample(t, "spargiod_route_bytes_total", "route", gen->routes[i].conf->name,
		       "dir=\"in\"", f.bytes_in);
		sample(t, "spargiod_route_bytes_total", "route", gen->routes[i].conf->name,
		       "dir=\"out\"", f.bytes_out);
	}
	route_durations(t, gen);
	file_caches(t, gen);
}

/* name{upstream="..",server=".."[,extra]} number */
static void server_sample(struct sp_text *t, const char *name, const struct sp_server *s,
			  const char *extra, uint64_t v)
{
	sp_text_printf(t, "%s{upstream=\"", name);
	sp_text_label(t, s->up->conf->name);
	sp_text_printf(t, "\",server=\"");
	sp_text_label(t, s->conf->address.text);
	sp_text_printf(t, "\"%s%s} %llu\n", extra ? "," : "", extra ? extra : "",
		       (unsigned long long)v);
}

static const struct {
	const char *name, *type, *help;
	size_t off;
} server_families[] = {
#define S(n, ty, h, f) { "spargiod_upstream_server_" n, ty, h, offsetof(struct sp_server_figures, f) }
	S("active_connections", "gauge", "Connections to the server open or being made.", active),
	S("connections_total", "counter", "Connections to the server established.", total),
	S("connect_failures_total", "counter", "Connections to the server that failed.",
	  connect_failures),
#undef S
};

/* Every server of every pool of a generation. */
#define EACH_SERVER(set, s)                                                                    \
	for (size_t u_ = 0; (set) && u_ < (set)->n; u_++)                                      \
		for (const struct sp_server *s = (set)->v[u_].servers;                         \
		     s < (set)->v[u_].servers + (set)->v[u_].n_servers; s++)

static void upstreams(struct sp_text *t, const struct sp_gen *gen)
{
	static const char *const states[] = { "up", "down", "disabled" };
	struct sp_server_figures f;
	family(t, "spargiod_upstream_server_state", "gauge",
	       "1 for the server's state (up, down: failed checks or connects, disabled).");
	EACH_SERVER(gen->upstreams, s) {
		sp_figures_server(s, &f);
		for (unsigned k = 0; k < 3; k++) {
			char extra[32];
			snprintf(extra, sizeof(extra), "state=\"%s\"", states[k]);
			server_sample(t, "spargiod_upstream_server_state", s, extra,
				      strcmp(f.state, states[k]) == 0);
		}
	}
	for (size_t k = 0; k < sizeof(server_families) / sizeof(server_families[0]); k++) {
		family(t, server_families[k].name, server_families[k].type, server_families[k].help);
		EACH_SERVER(gen->upstreams, s) {
			sp_figures_server(s, &f);
			server_sample(t, server_families[k].name, s, NULL,
				      *(const uint64_t *)((const char *)&f + server_families[k].off));
		}
	}
	family(t, "spargiod_upstream_server_checks_total", "counter",
	       "Health checks of the server, by result.");
	EACH_SERVER(gen->upstreams, s) {
		sp_figures_server(s, &f);
		server_sample(t, "spargiod_upstream_server_checks_total", s, "result=\"ok\"",
			      f.checks_ok);
		server_sample(t, "spargiod_upstream_server_checks_total", s, "result=\"failed\"",
			      f.checks_failed);
	}
}

static const struct {
	const char *name, *type, *help;
	size_t off;
} shard_families[] = {
#define C(n, h) { "spargiod_shard_" #n "_total", "counter", h, offsetof(struct sp_shard_stats, n) }
#define G(n, h) { "spargiod_shard_" #n, "gauge", h, offsetof(struct sp_shard_stats, n) }
	C(tasks_run, "Task runs."),
	C(tasks_spawned, "Tasks (sessions) started."),
	C(steal_tries, "Other shards' run queues probed for work."),
	C(steals, "Tasks this shard stole."),
	C(stolen, "Tasks other shards stole from this one."),
	C(msgs_sent, "Cross-shard messages sent."),
	C(msgs_received, "Cross-shard messages received."),
	C(wakes_sent, "Doorbells sent to sleeping shards."),
	C(wakes_coalesced, "Wake-ups saved: the target was awake or searching."),
	C(cqes, "Completions handled."),
	C(sleeps, "Waits in io_uring_enter."),
	C(submits, "io_uring_enter calls that submitted."),
	C(timers_fired, "Timers fired."),
	C(jobs, "Jobs given to the helper threads."),
	C(enobufs, "Receives that found the provided-buffer ring empty."),
	C(cq_overflows, "Times the completion queue filled up (the kernel backlogs the rest)."),
	C(cq_dropped, "Completions the kernel dropped (its own counter)."),
	C(msgs_bounced, "Cross-shard messages a full completion queue refused, re-posted."),
	G(ops_inflight, "Operations in flight."),
	G(timers_armed, "Timers armed."),
	G(runq_depth, "Tasks in the stealable run queue."),
	G(localq_depth, "Tasks in the pinned queue."),
	G(bufs_free, "Provided buffers free."),
#undef C
#undef G
};

static void shards(struct sp_text *t, struct sp_engine *eng)
{
	unsigned n = sp_engine_nshards(eng);
	for (size_t k = 0; k < sizeof(shard_families) / sizeof(shard_families[0]); k++) {
		family(t, shard_families[k].name, shard_families[k].type, shard_families[k].help);
		for (unsigned i = 0; i < n; i++) {
			struct sp_shard_stats st;
			char id[16];
			sp_shard_stats_read(sp_engine_shard(eng, i), &st);
			snprintf(id, sizeof(id), "%u", i);
			sample(t, shard_families[k].name, "shard", id, NULL,
			       *(const uint64_t *)((const char *)&st + shard_families[k].off));
		}
	}
}

void sp_metrics_text(struct sp_text *t, const struct sp_gen *gen, struct sp_engine *eng)
{
	family(t, "spargiod_info", "gauge", "The version of this spargiod (value 1).");
	sp_text_printf(t, "spargiod_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	family(t, "spargiod_generation", "gauge", "The configuration generation shown.");
	sp_text_printf(t, "spargiod_generation %u\n", gen->number);
	listeners(t, gen);
	routes(t, gen);
	upstreams(t, gen);
	if (eng)
		shards(t, eng);
}
