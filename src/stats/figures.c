/* SPDX-License-Identifier: MIT */
/* figures.c - summing the per-shard counters of listeners and routes (see figures.h). */
#include <string.h>

#include "net/listener.h"
#include "pipeline/pipeline.h"
#include "stats/figures.h"
#include "upstream/upstream.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

const uint64_t sp_fig_bounds_us[SP_FIG_BOUNDS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 300000000, 900000000,
	3600000000,
};

/* A session may be counted closed on one shard before its opening on another is
 * visible here: never report a negative number of open sessions. */
static uint64_t open_now(uint64_t opened, uint64_t closed)
{
	return opened > closed ? opened - closed : 0;
}

void sp_figures_listener(const struct sp_listener *l, struct sp_listener_figures *f)
{
	uint64_t opened = 0, closed = 0;
	memset(f, 0, sizeof(*f));
	for (unsigned s = 0; s < l->nshards; s++) {
		const struct sp_listener_counters *c = &l->counters[s];
		/* `closed` first, acquire: pairs with the release in session.c */
		closed += atomic_load_explicit(&c->closed, memory_order_acquire);
		opened += LOAD(c->opened);
		f->accepted += LOAD(l->acc[s].accepted);
		f->accept_errors += LOAD(l->acc[s].errors);
		f->refused_limit += LOAD(c->refused_limit);
		f->refused_acl += LOAD(c->refused_acl);
		f->refused_rate_limit += LOAD(c->refused_rate_limit);
		f->refused_per_source += LOAD(c->refused_per_source);
	}
	f->active = open_now(opened, closed);
}

void sp_figures_route(const struct sp_route *r, unsigned nshards, struct sp_route_figures *f)
{
	uint64_t closed = 0;
	memset(f, 0, sizeof(*f));
	for (unsigned s = 0; s < nshards; s++) {
		const struct sp_route_counters *c = &r->counters[s];
		closed += atomic_load_explicit(&c->closed, memory_order_acquire);
		f->sessions += LOAD(c->opened);
		f->denied += LOAD(c->denied);
		f->errors += LOAD(c->errors);
		f->bytes_in += LOAD(c->bytes_in);
		f->bytes_out += LOAD(c->bytes_out);
	}
	f->active = open_now(f->sessions, closed);
}

void sp_figures_server(const struct sp_server *s, struct sp_server_figures *f)
{
	f->state = sp_server_state(s);
	f->active = LOAD(s->active);
	f->total = LOAD(s->total);
	f->connect_failures = LOAD(s->connect_failures);
	f->checks_ok = LOAD(s->checks_ok);
	f->checks_failed = LOAD(s->checks_failed);
}

void sp_figures_latency(const struct sp_histogram *h, unsigned n, struct sp_latency_figures *f)
{
	struct sp_hist_snapshot snap;
	memset(&snap, 0, sizeof(snap));
	sp_hist_merge(&snap, h, n);
	f->count = snap.count;
	f->sum_us = snap.sum_us;
	/* the bounds' cumulative counts in one pass (they are edges, in increasing order) */
	uint64_t below = 0;
	unsigned b = 0, next = sp_hist_index(sp_fig_bounds_us[0]);
	for (unsigned i = 0; i < SP_HIST_BUCKETS && b < SP_FIG_BOUNDS; i++) {
		while (b < SP_FIG_BOUNDS && next == i) {
			f->below[b++] = below;
			next = b < SP_FIG_BOUNDS ? sp_hist_index(sp_fig_bounds_us[b]) : 0;
		}
		below += snap.bucket[i];
	}
	while (b < SP_FIG_BOUNDS)
		f->below[b++] = below;
	f->p50_us = sp_hist_quantile(&snap, 0.5);
	f->p90_us = sp_hist_quantile(&snap, 0.9);
	f->p99_us = sp_hist_quantile(&snap, 0.99);
	f->p999_us = sp_hist_quantile(&snap, 0.999);
}
