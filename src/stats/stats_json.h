/* SPDX-License-Identifier: MIT */
/*
 * stats_json.h - the JSON of `spargioctl --json stats`, built in one place for the
 * control socket (main thread) and the `status` handler's /status.json (a shard): both
 * show the same figures because both call sp_stats_json.
 */
#ifndef SP_STATS_JSON_H
#define SP_STATS_JSON_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sp_engine;
struct sp_gen;

/* The process-wide figures that live in the daemon, not in a generation: pointers to
 * its atomics, valid for the life of the process once set. */
struct sp_stats_process {
	_Atomic uint64_t *active; /* connections open (sp_daemon.active) */
	_Atomic bool *paused;     /* accepting paused at max_connections */
	uint64_t start_ns;        /* when the daemon started (sp_now_ns) */
};

/* Set once by the daemon before the shards run (thread creation orders it before any
 * read on a shard); NULL in programs without a daemon (unit tests): those figures are 0. */
extern const struct sp_stats_process *sp_stats_process;

/*
 * {"ok": true, "generation", "connections", "listeners": [...], "routes":
 * [...], "upstreams": [...], "shards": [...]} for generation gen (may be NULL: empty
 * lists) and the shards of eng (may be NULL: no shard rows). NULL when out of memory.
 *
 * Safe on any thread that holds a reference on gen (or runs while gen cannot be freed):
 * every figure is a relaxed load of a counter written by one shard, or of an atomic
 * flag; nothing here takes a lock, so it never waits for the main thread nor a shard.
 * It allocates (jansson): fine for the control socket and a status page polled every
 * second or two, not for the data path.
 */
json_t *sp_stats_json(const struct sp_gen *gen, struct sp_engine *eng);

/* Seconds since the daemon started (0 without a daemon). */
double sp_stats_uptime_s(void);

/* Its parts, for the control commands that show one of them (same rules). */
json_t *sp_stats_json_listeners(const struct sp_gen *gen);
json_t *sp_stats_json_routes(const struct sp_gen *gen);
json_t *sp_stats_json_upstreams(const struct sp_gen *gen);
json_t *sp_stats_json_shards(struct sp_engine *eng);

#endif
