/* SPDX-License-Identifier: MIT */
/*
 * pipeline.h - what a connection runs: a route is a list of stages, filters first, one
 * handler last (spargiod.yaml(5)). A generation is one loaded config turned into running
 * routes; every session holds a reference to the generation it started with, so a reload
 * never changes what a running connection does.
 *
 * A stage is a module with one vtable (sp_stage_ops). Filters decide on a new connection
 * on the accepting shard, before any session exists (no allocation for a denied client);
 * the handler then owns the session and its data path.
 */
#ifndef SP_PIPELINE_H
#define SP_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "engine/engine.h"
#include "stats/histogram.h"

struct sp_session;
struct sp_stage;
struct sp_pp_reader;
struct sp_listener;
struct sp_upstreams;

enum sp_verdict { SP_VERDICT_PASS, SP_VERDICT_DENY };

struct sp_stage_ops {
	enum sp_stage_kind kind;
	/* Build the stage's runtime state (main thread, while a reload is prepared). Writes
	 * a reason into err and returns -errno on failure; the reload is then rejected. */
	int (*init)(struct sp_stage *st, unsigned nshards, char *err, size_t errlen);
	void (*destroy)(struct sp_stage *st);
	/* Filters: judge a new connection (accepting shard, must not block). */
	enum sp_verdict (*filter)(struct sp_stage *st, const struct sockaddr *peer,
				  unsigned shard, uint64_t now_ns);
	/* Handlers: bytes to allocate per session (>= sizeof(struct sp_session)), and start,
	 * called in the session's first run. The handler ends it with sp_session_close. */
	size_t session_size;
	void (*start)(struct sp_session *s);
	/* Handlers, optional: the session ended and nothing of it is in flight any more;
	 * free what start took (the fd and the session memory go after it). */
	void (*release)(struct sp_session *s);
	/* Handlers whose sessions must not be stolen (they hold buffers of their shard's
	 * ring across callbacks): a stealable route runs them pinned where accepted. */
	bool pinned;
};

/* Counters of one stage on one shard, written by that shard only. */
struct sp_stage_counters {
	_Atomic uint64_t passed, denied;
} __attribute__((aligned(64)));

struct sp_stage {
	const struct sp_stage_ops *ops;
	const struct sp_conf_stage *conf;
	void *state;                       /* the stage's own */
	struct sp_stage_counters *counters; /* [nshards] */
};

/* Counters of one route on one shard, written by that shard only. `errors`: sessions
 * that ended with a reason (sp_session_close with a non-NULL reason), not a clean close. */
struct sp_route_counters {
	_Atomic uint64_t opened, closed, denied, errors, bytes_in, bytes_out;
} __attribute__((aligned(64)));

struct sp_route {
	const struct sp_conf_route *conf;
	enum sp_placement placement;
	struct sp_stage *stages; /* conf->n_stages; the last one is the handler */
	size_t n_stages;
	struct sp_route_counters *counters; /* [nshards] */
	/* Session durations in us, recorded by the shard that ends the session. Handlers
	 * that serve requests (HTTP) may keep their own request-latency histograms. */
	struct sp_histogram *durations;     /* [nshards] */
	/* A reload removed this route (set by the main thread before the new generation is
	 * published): handlers whose sessions outlive their clients (exec children) end
	 * them. */
	_Atomic bool retired;
};

/* A listener as one generation sees it: the socket (shared across generations while its
 * bind is unchanged) and the route it feeds. */
struct sp_gen_listener {
	struct sp_listener *sock;
	const struct sp_conf_listener *conf;
	struct sp_route *route;
	struct sp_gen *gen; /* the generation holding this entry (no reference of its own) */
};

struct sp_gen {
	_Atomic unsigned refs;
	unsigned number;
	unsigned nshards;
	struct sp_config *cfg;
	struct sp_route *routes;
	size_t n_routes;
	struct sp_gen_listener *listeners;
	size_t n_listeners;
	struct sp_upstreams *upstreams; /* the pools of cfg's upstreams (upstream/upstream.h) */
};

/* What this build cannot serve (a stage without a module, TLS on a listener or an
 * upstream): report(arg, "FILE:LINE:COL: ...") for each; returns how many. `spargiod -t`
 * lists them all, a generation refuses to build with the first. */
unsigned sp_gen_unservable(const struct sp_config *cfg,
			   void (*report)(void *arg, const char *msg), void *arg);

/* Build the routes of cfg (stage init); listeners are filled by the caller. On failure
 * returns NULL with a message in err. Takes its own reference on cfg. */
struct sp_gen *sp_gen_create(struct sp_config *cfg, unsigned number, unsigned nshards,
			     char *err, size_t errlen);
struct sp_gen *sp_gen_ref(struct sp_gen *g);
void sp_gen_unref(struct sp_gen *g); /* any thread; frees with the last reference */
struct sp_route *sp_gen_route(struct sp_gen *g, const struct sp_conf_route *conf);

/* The stage module for a kind, NULL when this build has none. */
const struct sp_stage_ops *sp_stage_ops_for(enum sp_stage_kind kind);

/* ------------------------------------------------------------------------------------ */
/* Sessions                                                                              */

struct sp_session {
	struct sp_task task;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct sp_gen *gen;               /* held for the session's life */
	const struct sp_gen_listener *lst; /* inside gen */
	struct sp_route *route;            /* inside gen */
	struct sp_stage *handler;          /* route->stages[last] */
	uint64_t started_ns;
	uint64_t bytes_in, bytes_out;      /* handlers add what they move */
	/* For the access log; NULL: "closed". Any reason counts as an error of the route. */
	const char *end_reason;
	/* Handler's own access-log fields, "key=value key=value" (e.g. server=..., status=...),
	 * appended to the line (and split into journal fields) when the session ends. */
	char log_extra[192];
	bool started;
	/* Listeners with proxy_protocol: the header reader (pp_read.c), in the session's
	 * memory after the handler's part; NULL otherwise. */
	struct sp_pp_reader *pp;
	bool pp_passed; /* the header was read and the filters passed: the handler runs */
	uint32_t src_slot; /* the daemon's per-source count (srclimit.h); 0: none */
	/* Handlers may set it: called on later runs of the task (sp_task_wake). */
	void (*on_wake)(struct sp_session *s);
};

/* Hooks the daemon gives the session layer (connection accounting, access log). */
struct sp_session_hooks {
	void (*opened)(struct sp_session *s);
	void (*closed)(struct sp_session *s); /* before the session's memory goes */
	void (*denied)(const struct sp_gen_listener *l, const struct sockaddr *peer,
		       const char *stage);
};
void sp_session_set_hooks(const struct sp_session_hooks *hooks);

/*
 * A connection fd accepted for listener l of generation gen, from peer (as accept gave
 * it), served on the current shard: run the route's filters, then spawn the handler's
 * session with the route's placement. Takes ownership of fd (closed on deny or
 * failure). src_slot is the daemon's per-source count, kept in the session for its
 * `closed` hook. Returns true when a session runs.
 */
bool sp_session_accept(struct sp_engine *eng, struct sp_gen *gen,
		       const struct sp_gen_listener *l, int fd,
		       const struct sockaddr_storage *peer, socklen_t peerlen, uint32_t src_slot);

/* End the session (from its own callbacks): ops cancelled, then fd closed and memory
 * freed once nothing is in flight. reason goes to the access log (NULL: "closed"). */
void sp_session_close(struct sp_session *s, const char *reason);

/* PROXY protocol header reading (pp_read.c): the session's peer becomes the header's
 * source; done runs with err NULL, or the reason to end the session. */
#define SP_PP_TIMEOUT_MS 5000
size_t sp_pp_reader_size(void);
void sp_pp_read_start(struct sp_session *s, void (*done)(struct sp_session *s, const char *err));
/* The destination the client's PROXY header named, NULL when it named none. */
const struct sockaddr *sp_session_pp_dst(const struct sp_session *s, socklen_t *len);

/* "1.2.3.4:5678", "[::1]:80" or "unix" into buf. */
const char *sp_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t n);

#endif
