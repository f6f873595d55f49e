/* SPDX-License-Identifier: MIT */
/*
 * upstream.h - the running upstream pools of one generation: which server a new proxied
 * connection goes to, and what every server's state is.
 *
 * A generation builds its pools on the main thread (sp_upstreams_create) from its config;
 * every shard then picks servers from them at the same time without a lock. What shards
 * share lives in atomics on the server (state, connection counts); what a balancing
 * algorithm keeps between picks (smooth round robin weights, the random generator) is
 * one row per shard, touched by that shard only. Proxy sessions are pinned, so the row
 * of the shard running the session is the caller's own.
 *
 * Server state: `disabled` (by the operator, `server disable`), `down` (health checks or
 * consecutive connect failures), else `up`. Backup servers take connections only while
 * no primary is usable. Active TCP health checks run on the shards (health.c) while the
 * generation is the current one of their shard.
 */
#ifndef SP_UPSTREAM_H
#define SP_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "engine/engine.h"

struct sp_health;

/* Without health checks, a server marked down by connect failures is tried again after
 * this long (one connection goes to it; success brings it back up). */
#define SP_PASSIVE_RETRY_NS (10ull * 1000000000ull)
/* Consecutive connect failures that mark a server down when no health check says how
 * many (health_check.fall otherwise). */
#define SP_PASSIVE_FALL 3

struct sp_server {
	const struct sp_conf_server *conf;
	struct sp_upstream *up;
	unsigned idx;
	/* Shared by the shards: relaxed unless a comment says otherwise. */
	_Atomic bool disabled;          /* the operator's `server disable` */
	_Atomic bool down;              /* health checks or passive failures */
	_Atomic uint32_t fails;         /* consecutive connect failures (passive) */
	_Atomic uint64_t retry_at_ns;   /* down by failures without checks: try again then */
	_Atomic uint32_t active;        /* connections open or being connected */
	_Atomic uint64_t total;         /* connections established */
	_Atomic uint64_t connect_failures;
	_Atomic uint64_t checks_ok, checks_failed;
	struct sp_health *hc;           /* NULL without health checks */
	unsigned ok_run, fail_run;      /* checks in a row (the checking shard only) */
} __attribute__((aligned(64)));

/* One shard's balancing state for one upstream (that shard only). */
struct sp_pick_row {
	int64_t *cur;   /* smooth weighted round robin: current weight per server */
	uint64_t rng;   /* xorshift state (random_two) */
	unsigned next;  /* rotating start for ties (least_conn) */
} __attribute__((aligned(64)));

struct sp_upstream {
	const struct sp_conf_upstream *conf;
	struct sp_upstreams *set;
	struct sp_server *servers; /* conf->n_servers */
	size_t n_servers;
	struct sp_pick_row *rows;  /* [nshards] */
	uint64_t *hkeys;           /* per server: its hash for source_hash */
};

struct sp_upstreams {
	_Atomic unsigned refs;  /* the generation's, plus one per running health check */
	struct sp_config *cfg;  /* held: servers point into it */
	unsigned nshards;
	struct sp_upstream *v;  /* cfg->n_upstreams, same order */
	size_t n;
};

/* Build the pools of cfg (main thread). NULL with a reason in err on failure. */
struct sp_upstreams *sp_upstreams_create(struct sp_config *cfg, unsigned nshards, char *err,
					 size_t errlen);
struct sp_upstreams *sp_upstreams_ref(struct sp_upstreams *set);
void sp_upstreams_unref(struct sp_upstreams *set); /* any thread */

/* Carry the servers' state (disabled, down, failure counts) and counters from the
 * running set to a new one, matching upstream names and server addresses (main thread,
 * before the new generation is published). old may be NULL. */
void sp_upstreams_inherit(struct sp_upstreams *set, const struct sp_upstreams *old);

/* The pool of a config upstream of the same config. */
static inline struct sp_upstream *sp_upstreams_get(struct sp_upstreams *set,
						   const struct sp_conf_upstream *conf)
{
	return &set->v[conf - set->cfg->upstreams];
}

/* By name and address (as written in the config, or as printed: "[::1]:9002"). */
struct sp_upstream *sp_upstream_find(struct sp_upstreams *set, const char *name);
struct sp_server *sp_upstream_server(struct sp_upstream *u, const char *address);

/*
 * Control `server enable|disable UPSTREAM ADDRESS` (any thread): 0, -ENOENT when there
 * is no such upstream, -ESRCH when it has no such server. Logs the change.
 */
int sp_upstream_set_enabled(struct sp_upstreams *set, const char *upstream,
			    const char *address, bool enabled);

/* "up", "down" or "disabled". */
const char *sp_server_state(const struct sp_server *s);

/*
 * Pick a server for a new connection on shard `shard`: a usable primary not in tried[],
 * else a usable backup not in tried[]; NULL when none is left. key is the client's
 * address hash (source_hash). The pick counts the server active: the caller ends it
 * with sp_server_failed or, once connected, sp_server_connected then sp_server_release.
 */
struct sp_server *sp_upstream_pick(struct sp_upstream *u, unsigned shard, uint64_t key,
				   const uint16_t *tried, unsigned ntried, uint64_t now_ns);
void sp_server_connected(struct sp_server *s);
void sp_server_failed(struct sp_server *s, const char *why, uint64_t now_ns);
void sp_server_release(struct sp_server *s);

/* Health checks (health.c): start the checks of set that belong to the current shard
 * (server i of upstream j runs on shard (i + j) mod nshards), or stop them. Called by
 * the daemon when the shard adopts a generation; stop waits for nothing, the checks
 * wind down on their own and drop their reference. */
void sp_upstreams_start_checks(struct sp_upstreams *set);
void sp_upstreams_stop_checks(struct sp_upstreams *set);
int sp_health_alloc(struct sp_upstreams *set); /* create(): -ENOMEM */
void sp_health_free(struct sp_upstreams *set);

/* The check's verdict (health.c calls it; tests too). */
void sp_server_check_result(struct sp_server *s, bool ok, const char *why);

/* 64-bit hash of a client address without its port (source_hash, sticky). */
uint64_t sp_addr_hash(const struct sockaddr *sa);

#endif
