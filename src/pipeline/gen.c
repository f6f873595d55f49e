/* SPDX-License-Identifier: MIT */
/*
 * gen.c - generations: a config compiled into running routes, refcounted. Built on the
 * main thread during a reload; freed by whichever thread drops the last reference (the
 * last session of an old generation ends on some shard).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/listener.h"
#include "pipeline/pipeline.h"
#include "upstream/upstream.h"

static enum sp_placement placement_of(enum sp_conf_placement p)
{
	switch (p) {
	case SP_CONF_PINNED: return SP_PINNED;
	case SP_CONF_ROUND_ROBIN: return SP_ROUND_ROBIN;
	case SP_CONF_STICKY: return SP_STICKY;
	default: return SP_STEALABLE;
	}
}

static void route_destroy(struct sp_route *r)
{
	for (size_t i = 0; i < r->n_stages; i++) {
		struct sp_stage *st = &r->stages[i];
		if (st->ops && st->ops->destroy)
			st->ops->destroy(st);
		free(st->counters);
	}
	free(r->stages);
	free(r->counters);
	free(r->durations);
}

static int route_init(struct sp_route *r, const struct sp_conf_route *conf, unsigned nshards,
		      char *err, size_t errlen)
{
	r->conf = conf;
	r->placement = placement_of(conf->placement);
	r->counters = aligned_alloc(64, sizeof(*r->counters) * nshards);
	r->durations = aligned_alloc(64, sizeof(*r->durations) * nshards);
	r->stages = calloc(conf->n_stages, sizeof(*r->stages));
	if (!r->counters || !r->durations || !r->stages)
		return -ENOMEM;
	memset(r->counters, 0, sizeof(*r->counters) * nshards);
	memset(r->durations, 0, sizeof(*r->durations) * nshards);
	r->n_stages = conf->n_stages;
	for (size_t i = 0; i < conf->n_stages; i++) {
		struct sp_stage *st = &r->stages[i];
		const struct sp_conf_stage *sc = &conf->stages[i];
		st->conf = sc;
		st->ops = sp_stage_ops_for(sc->kind);
		if (!st->ops) {
			snprintf(err, errlen, "%s:%u:%u: route '%s': stage '%s' is not supported in this build",
				 "", sc->pos.line, sc->pos.col, conf->name, sp_stage_name(sc->kind));
			return -ENOTSUP;
		}
		st->counters = aligned_alloc(64, sizeof(*st->counters) * nshards);
		if (!st->counters)
			return -ENOMEM;
		memset(st->counters, 0, sizeof(*st->counters) * nshards);
		if (st->ops->init) {
			char why[256] = "";
			int ret = st->ops->init(st, nshards, why, sizeof(why));
			if (ret < 0) {
				snprintf(err, errlen, "%s:%u:%u: route '%s': %s: %s", "", sc->pos.line,
					 sc->pos.col, conf->name, sp_stage_name(sc->kind),
					 why[0] ? why : strerror(-ret));
				return ret;
			}
		}
	}
	const struct sp_stage_ops *h = r->n_stages ? r->stages[r->n_stages - 1].ops : NULL;
	if (h && h->pinned && r->placement == SP_STEALABLE)
		r->placement = SP_PINNED;
	return 0;
}

/* Errors from route_init name their place without the file; put the file in front. */
static void prefix_path(char *err, size_t errlen, const char *path)
{
	if (err[0] != ':')
		return;
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s%s", path, err);
	snprintf(err, errlen, "%s", tmp);
}

/* report(arg, "FILE:LINE:COL: " + the formatted message) */
static void __attribute__((format(printf, 5, 6)))
report_at(void (*report)(void *, const char *), void *arg, const struct sp_config *cfg,
	  struct sp_conf_pos pos, const char *fmt, ...)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "%s:%u:%u: ", cfg->path, pos.line, pos.col);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	report(arg, msg);
}

unsigned sp_gen_unservable(const struct sp_config *cfg,
			   void (*report)(void *arg, const char *msg), void *arg)
{
	unsigned n = 0;

	for (size_t i = 0; i < cfg->n_routes; i++) {
		const struct sp_conf_route *r = &cfg->routes[i];
		for (size_t k = 0; k < r->n_stages; k++)
			if (!sp_stage_ops_for(r->stages[k].kind)) {
				report_at(report, arg, cfg, r->stages[k].pos,
					  "route '%s': stage '%s' is not supported in this build",
					  r->name, sp_stage_name(r->stages[k].kind));
				n++;
			}
	}
	/* serving a `tls:` listener in clear text would betray the operator: refuse it */
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].tls) {
			report_at(report, arg, cfg, cfg->listeners[i].tls->pos,
				  "listener '%s': tls: TLS termination is not in this build yet",
				  cfg->listeners[i].name);
			n++;
		}
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (cfg->upstreams[i].tls) {
			report_at(report, arg, cfg, cfg->upstreams[i].tls->pos,
				  "upstream '%s': tls: TLS origination is not in this build yet",
				  cfg->upstreams[i].name);
			n++;
		}
	return n;
}

struct first_error {
	char *buf;
	size_t len;
	bool set;
};

static void keep_first(void *arg, const char *msg)
{
	struct first_error *fe = arg;
	if (!fe->set)
		snprintf(fe->buf, fe->len, "%s", msg);
	fe->set = true;
}

struct sp_gen *sp_gen_create(struct sp_config *cfg, unsigned number, unsigned nshards,
			     char *err, size_t errlen)
{
	struct sp_gen *g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->number = number;
	g->nshards = nshards;
	g->cfg = sp_config_ref(cfg);
	g->routes = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(*g->routes));
	g->listeners = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*g->listeners));
	if (!g->routes || !g->listeners) {
		snprintf(err, errlen, "out of memory");
		sp_gen_unref(g);
		return NULL;
	}
	struct first_error fe = { err, errlen };
	if (sp_gen_unservable(cfg, keep_first, &fe)) {
		sp_gen_unref(g);
		return NULL;
	}
	g->upstreams = sp_upstreams_create(cfg, nshards, err, errlen);
	if (!g->upstreams) {
		sp_gen_unref(g);
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		g->n_routes = i + 1;
		int ret = route_init(&g->routes[i], &cfg->routes[i], nshards, err, errlen);
		if (ret < 0) {
			if (ret == -ENOMEM)
				snprintf(err, errlen, "out of memory");
			prefix_path(err, errlen, cfg->path);
			sp_gen_unref(g);
			return NULL;
		}
	}
	return g;
}

struct sp_gen *sp_gen_ref(struct sp_gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void sp_gen_unref(struct sp_gen *g)
{
	if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < g->n_routes; i++)
		route_destroy(&g->routes[i]);
	for (size_t i = 0; i < g->n_listeners; i++)
		sp_listener_unref(g->listeners[i].sock);
	free(g->routes);
	free(g->listeners);
	sp_upstreams_unref(g->upstreams);
	sp_config_unref(g->cfg);
	free(g);
}

struct sp_route *sp_gen_route(struct sp_gen *g, const struct sp_conf_route *conf)
{
	for (size_t i = 0; i < g->n_routes; i++)
		if (g->routes[i].conf == conf)
			return &g->routes[i];
	return NULL;
}
