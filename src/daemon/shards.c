/* SPDX-License-Identifier: MIT */
/*
 * shards.c - the daemon's side of each shard: adopting a new generation, the accept
 * handler with the max_connections pause, the watchdog ping and the graceful stop.
 * Everything reaches a shard as an engine message and runs on that shard, so the state
 * in sp_shard_ctx needs no lock.
 */
#include <stdlib.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "engine/log.h"
#include "upstream/upstream.h"

static struct sp_daemon *daemon_of; /* the one daemon of this process */

static struct sp_shard_ctx *my_ctx(void)
{
	return &daemon_of->ctx[sp_shard_index(sp_shard_current())];
}

/* ------------------------------------------------------------------------------------ */
/* Connection count and the max_connections pause                                        */

/* Post ctx's sync message unless one is queued already: it applies the state current
 * when it runs, so one in the queue covers every change made before it runs. */
static void post_sync(struct sp_shard_ctx *ctx);

void sp_daemon_sync_accepting(struct sp_daemon *d)
{
	for (unsigned i = 0; i < d->nshards; i++)
		post_sync(&d->ctx[i]);
}

static void apply_pause_state(struct sp_shard_ctx *ctx)
{
	unsigned me = sp_shard_index(sp_shard_current());
	bool paused = atomic_load(&ctx->d->paused);
	for (size_t i = 0; ctx->gen && i < ctx->gen->n_listeners; i++) {
		struct sp_listener *l = ctx->gen->listeners[i].sock;
		l->acc[me].paused = paused;
		if (paused)
			sp_acceptor_stop(l);
		else
			sp_acceptor_start(l);
	}
}

static void on_sync(struct sp_msg *m)
{
	struct sp_shard_ctx *ctx = sp_container_of(m, struct sp_shard_ctx, sync_msg);
	atomic_store(&ctx->sync_pending, false); /* before reading the state it applies */
	apply_pause_state(ctx);
}

static void post_sync(struct sp_shard_ctx *ctx)
{
	bool expect = false;
	if (atomic_compare_exchange_strong(&ctx->sync_pending, &expect, true))
		sp_msg_post(sp_engine_shard(ctx->d->eng, (unsigned)(ctx - ctx->d->ctx)),
			    &ctx->sync_msg, on_sync);
}

static void resume_accepting(struct sp_daemon *d)
{
	bool expect = true;
	if (atomic_compare_exchange_strong(&d->paused, &expect, false)) {
		sp_log(SP_LOG_INFO, "connections below max_connections: accepting resumed");
		sp_daemon_sync_accepting(d);
	}
}

/* Pause accepting on every shard (any shard; the first caller logs it). */
static void pause_accepting(struct sp_daemon *d)
{
	bool expect = false;
	if (atomic_compare_exchange_strong(&d->paused, &expect, true)) {
		sp_log(SP_LOG_WARN, "max_connections (%u) reached: accepting paused",
		       atomic_load(&d->max_connections));
		sp_daemon_sync_accepting(d);
	}
	/* A session that ended between our caller's check and the pause saw nothing to
	 * resume. Both sides are seq_cst (its decrement then its load of `paused`, our
	 * store then our load of `active`), so one of us sees the other: resume here. */
	if (atomic_load(&d->active) < atomic_load(&d->max_connections))
		resume_accepting(d);
}

static void session_opened(struct sp_session *s)
{
	struct sp_daemon *d = daemon_of;
	uint64_t n = atomic_fetch_add(&d->active, 1) + 1;
	if (n >= atomic_load(&d->max_connections))
		pause_accepting(d);
}

static void session_closed(struct sp_session *s)
{
	struct sp_daemon *d = daemon_of;
	if (atomic_load_explicit(&d->access_log, memory_order_relaxed))
		sp_access_log(s);
	uint64_t n = atomic_fetch_sub(&d->active, 1) - 1;
	if (n < atomic_load(&d->max_connections) && atomic_load(&d->paused))
		resume_accepting(d);
}

static void session_denied(const struct sp_gen_listener *l, const struct sockaddr *peer,
			   const char *stage)
{
	if (atomic_load_explicit(&daemon_of->access_log, memory_order_relaxed))
		sp_access_log_denied(l, peer, stage);
}

/* A new connection on the current shard. False pauses this acceptor (limit reached). */
static bool on_connection(struct sp_listener *l, int fd)
{
	struct sp_shard_ctx *ctx = my_ctx();
	unsigned me = sp_shard_index(sp_shard_current());
	const struct sp_gen_listener *e = atomic_load_explicit(&l->cur[me], memory_order_relaxed);

	if (!e || !ctx->gen) {
		close(fd); /* accepted in the instant its listener was removed */
		return true;
	}
	if (atomic_load(&ctx->d->active) >= atomic_load(&ctx->d->max_connections)) {
		/* At the limit already: the kernel handed us this one before our pause took
		 * effect here (a multishot accept in flight), or a reload lowered the limit.
		 * Refuse it rather than exceed max_connections; later clients wait. */
		_Atomic uint64_t *c = &l->counters[me].refused_limit;
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		close(fd);
		pause_accepting(ctx->d);
		l->acc[me].paused = true;
		return false;
	}
	sp_session_accept(ctx->d->eng, ctx->gen, e, fd);
	if (atomic_load(&ctx->d->paused)) {
		l->acc[me].paused = true;
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------------------ */
/* Generations                                                                           */

struct adopt_msg {
	struct sp_msg m;
	struct sp_gen *gen; /* a reference for the shard */
};

static void on_adopt(struct sp_msg *m)
{
	struct adopt_msg *am = sp_container_of(m, struct adopt_msg, m);
	struct sp_shard_ctx *ctx = my_ctx();
	unsigned me = sp_shard_index(sp_shard_current());
	struct sp_gen *old = ctx->gen, *gen = am->gen;
	free(am);

	/* Sockets the new generation dropped were retired before this message was sent. */
	for (size_t i = 0; old && i < old->n_listeners; i++) {
		struct sp_listener *l = old->listeners[i].sock;
		if (atomic_load(&l->closing)) {
			atomic_store_explicit(&l->cur[me], NULL, memory_order_relaxed);
			sp_acceptor_stop(l);
		}
	}
	ctx->gen = gen;
	if (gen != old) { /* health checks follow the shard's current generation */
		sp_upstreams_start_checks(gen->upstreams);
		if (old)
			sp_upstreams_stop_checks(old->upstreams);
	}
	for (size_t i = 0; i < gen->n_listeners; i++) {
		struct sp_listener *l = gen->listeners[i].sock;
		atomic_store_explicit(&l->cur[me], &gen->listeners[i], memory_order_relaxed);
		l->acc[me].paused = atomic_load(&ctx->d->paused);
		sp_acceptor_start(l);
	}
	sp_gen_unref(old);
}

void sp_daemon_publish(struct sp_daemon *d, struct sp_gen *gen)
{
	for (unsigned i = 0; i < d->nshards; i++) {
		struct adopt_msg *am = malloc(sizeof(*am));
		if (!am)
			abort(); /* a few bytes per shard per reload */
		am->gen = sp_gen_ref(gen);
		sp_msg_post(sp_engine_shard(d->eng, i), &am->m, on_adopt);
	}
}

static void on_stop_accepting(struct sp_msg *m)
{
	struct sp_shard_ctx *ctx = sp_container_of(m, struct sp_shard_ctx, stop_msg);
	unsigned me = sp_shard_index(sp_shard_current());
	for (size_t i = 0; ctx->gen && i < ctx->gen->n_listeners; i++) {
		struct sp_listener *l = ctx->gen->listeners[i].sock;
		atomic_store_explicit(&l->cur[me], NULL, memory_order_relaxed);
		sp_acceptor_stop(l);
	}
}

void sp_daemon_stop_accepting(struct sp_daemon *d)
{
	for (size_t i = 0; i < d->n_socks; i++) {
		sp_listener_retire(d->socks[i]);
		sp_listener_unref(d->socks[i]);
	}
	free(d->socks);
	d->socks = NULL;
	d->n_socks = 0;
	for (unsigned i = 0; i < d->nshards; i++)
		sp_msg_post(sp_engine_shard(d->eng, i), &d->ctx[i].stop_msg, on_stop_accepting);
}

bool sp_daemon_drain_listener(struct sp_daemon *d, struct sp_listener *l)
{
	for (size_t i = 0; i < d->n_socks; i++) {
		if (d->socks[i] != l)
			continue;
		d->socks[i] = d->socks[--d->n_socks];
		sp_log(SP_LOG_INFO, "listener %s: draining (stops accepting until the next reload)",
		       l->name);
		sp_listener_retire(l);
		sp_listener_unref(l);
		sp_daemon_publish(d, d->gen); /* every shard cancels its acceptor on it */
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------------------------ */
/* Watchdog                                                                              */

static void on_ping(struct sp_msg *m)
{
	struct sp_shard_ctx *ctx = sp_container_of(m, struct sp_shard_ctx, ping_msg);
	atomic_store(&ctx->ping_pending, false);
	atomic_store(&ctx->ping_ack, atomic_load(&ctx->d->ping_seq));
}

void sp_daemon_ping(struct sp_daemon *d)
{
	atomic_fetch_add(&d->ping_seq, 1);
	for (unsigned i = 0; i < d->nshards; i++) {
		bool expect = false;
		if (atomic_compare_exchange_strong(&d->ctx[i].ping_pending, &expect, true))
			sp_msg_post(sp_engine_shard(d->eng, i), &d->ctx[i].ping_msg, on_ping);
	}
}

bool sp_daemon_pinged(struct sp_daemon *d)
{
	uint64_t seq = atomic_load(&d->ping_seq);
	for (unsigned i = 0; i < d->nshards; i++)
		if (atomic_load(&d->ctx[i].ping_ack) != seq)
			return false;
	return true;
}

/* ------------------------------------------------------------------------------------ */

void sp_daemon_shards_init(struct sp_daemon *d)
{
	static const struct sp_session_hooks hooks = {
		.opened = session_opened,
		.closed = session_closed,
		.denied = session_denied,
	};
	daemon_of = d;
	d->ctx = aligned_alloc(64, sizeof(*d->ctx) * d->nshards);
	if (!d->ctx)
		abort();
	for (unsigned i = 0; i < d->nshards; i++) {
		struct sp_shard_ctx *ctx = &d->ctx[i];
		*ctx = (struct sp_shard_ctx){ .d = d };
	}
	sp_session_set_hooks(&hooks);
	sp_listener_set_accept_fn(on_connection);
}

void sp_daemon_shards_fini(struct sp_daemon *d)
{
	for (unsigned i = 0; d->ctx && i < d->nshards; i++)
		sp_gen_unref(d->ctx[i].gen);
	free(d->ctx);
	d->ctx = NULL;
}
