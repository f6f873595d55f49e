/* SPDX-License-Identifier: MIT */
/*
 * figures.h - the daemon's figures, summed from the per-shard counters: the one place
 * that knows how, used by the control socket (`stats`, `listeners`, `routes`: JSON on
 * the main thread) and by the metrics handler (Prometheus text on a shard). Both show
 * the same numbers because both call these.
 *
 * Reading never blocks and takes no lock: relaxed loads of counters each written by one
 * shard. A figure is a sum of values read at slightly different instants, never torn.
 */
#ifndef SP_FIGURES_H
#define SP_FIGURES_H

#include <stdbool.h>
#include <stdint.h>

#include "stats/histogram.h"

struct sp_listener;
struct sp_route;
struct sp_server;

struct sp_listener_figures {
	uint64_t accepted, accept_errors;
	uint64_t active;             /* sessions open now */
	uint64_t refused_limit;      /* closed at limits.max_connections */
	uint64_t refused_acl, refused_rate_limit;
	uint64_t refused_per_source; /* the address held per_source connections already */
};

/* The socket's figures (they survive reloads that keep the socket). */
void sp_figures_listener(const struct sp_listener *l, struct sp_listener_figures *f);

struct sp_route_figures {
	uint64_t sessions, active, denied, errors, bytes_in, bytes_out;
};

/* A route's counters (one generation's route; a reload starts new ones). */
void sp_figures_route(const struct sp_route *r, unsigned nshards, struct sp_route_figures *f);

struct sp_server_figures {
	const char *state; /* "up", "down" or "disabled" */
	uint64_t active;   /* connections open or being connected */
	uint64_t total, connect_failures, checks_ok, checks_failed;
};

/* An upstream server's live state (a generation's pools; reloads carry the state). */
void sp_figures_server(const struct sp_server *s, struct sp_server_figures *f);

/* A files route's open-file caches, all shards: slots, entries in the index, fds held
 * (at most capacity), entries superseded but still sent from (their fds included). */
struct sp_file_cache_figures {
	uint64_t capacity, entries, fds, superseded;
};

/* False (and zeroes) when the route's handler is not `files`. In files_cache.c. */
bool sp_figures_file_cache(const struct sp_route *r, unsigned nshards,
			   struct sp_file_cache_figures *f);

/* Bounds (us) of the cumulative buckets the metrics handler exports (`le`), all exact
 * edges of the histograms: 100us .. 1h, the usual Prometheus latency scale. */
#define SP_FIG_BOUNDS 21
extern const uint64_t sp_fig_bounds_us[SP_FIG_BOUNDS];

struct sp_latency_figures {
	uint64_t count, sum_us;
	uint64_t p50_us, p90_us, p99_us, p999_us;  /* 0 when count is 0 */
	uint64_t below[SP_FIG_BOUNDS];             /* values under sp_fig_bounds_us[i] */
};

/* Merge the n per-shard histograms at h and take the figures. Uses a snapshot on the
 * stack (about 7 KiB). */
void sp_figures_latency(const struct sp_histogram *h, unsigned n, struct sp_latency_figures *f);

#endif
