/* SPDX-License-Identifier: MIT */
/*
 * shards.c - the daemon's side of each shard: adopting a new generation, the slots a
 * connection takes (max_connections, listener limits, per-source caps) and the accept
 * handler, the watchdog ping and the graceful stop.
 * Everything reaches a shard as an engine message and runs on that shard, so the state
 * in sp_shard_ctx needs no lock.
 */
#include <stdlib.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "engine/log.h"
#include "net/srclimit.h"
#include "upstream/upstream.h"

static struct sp_daemon *daemon_of; /* the one daemon of this process */

static struct sp_shard_ctx *my_ctx(void)
{
	return &daemon_of->ctx[sp_shard_index(sp_shard_current())];
}

/* ------------------------------------------------------------------------------------ */
/* Connection slots: max_connections, listeners' own limits, per-source caps              */

/*
 * A connection takes its slots before it is accepted (listener.c asks, acquire): one of
 * the listener's (l->active under l->max) and one of the daemon's (d->active under
 * max_connections). An acceptor that finds none marks its shard starved and waits; a
 * slot given back wakes the starved shards, whose waiting acceptors try again: as many
 * get one as there are free, the others wait on, their clients in the backlog.
 *
 * No lost wake-up: a starving shard stores its flags, then tries once more; a releaser
 * gives its slot back, then loads the flag. All seq_cst: either the retry sees the slot
 * or the releaser sees the flag.
 */
static bool take(_Atomic uint64_t *c, uint64_t max)
{
	uint64_t v = atomic_load(c);
	while (v < max)
		if (atomic_compare_exchange_weak(c, &v, v + 1))
			return true;
	return false;
}

static bool take_slots(struct sp_daemon *d, struct sp_listener *l)
{
	unsigned lmax = atomic_load(&l->max);
	if (!lmax) {
		atomic_fetch_add(&l->active, 1);
	} else {
		unsigned v = atomic_load(&l->active);
		do {
			if (v >= lmax)
				return false;
		} while (!atomic_compare_exchange_weak(&l->active, &v, v + 1));
	}
	if (take(&d->active, atomic_load(&d->max_connections)))
		return true;
	atomic_fetch_sub(&l->active, 1);
	return false;
}

static void post_wake(struct sp_shard_ctx *ctx);

static void give_slots(struct sp_daemon *d, struct sp_listener *l)
{
	atomic_fetch_sub(&l->active, 1);
	atomic_fetch_sub(&d->active, 1);
	if (atomic_load(&d->starving) && atomic_exchange(&d->starving, false))
		for (unsigned i = 0; i < d->nshards; i++)
			if (atomic_exchange(&d->ctx[i].starved, false))
				post_wake(&d->ctx[i]);
}

static bool acquire(struct sp_listener *l)
{
	struct sp_daemon *d = daemon_of;
	struct sp_shard_ctx *ctx = my_ctx();
	if (!take_slots(d, l)) {
		atomic_store(&ctx->starved, true);
		atomic_store(&d->starving, true);
		if (!take_slots(d, l)) {
			bool expect = false;
			if (atomic_load(&d->active) >= atomic_load(&d->max_connections) &&
			    atomic_compare_exchange_strong(&d->paused, &expect, true))
				sp_log(SP_LOG_WARN, "max_connections (%u) reached: accepting paused",
				       atomic_load(&d->max_connections));
			return false;
		}
	}
	bool expect = true;
	if (atomic_load_explicit(&d->paused, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&d->paused, &expect, false))
		sp_log(SP_LOG_INFO, "connections below max_connections: accepting resumed");
	return true;
}

static void release(struct sp_listener *l)
{
	give_slots(daemon_of, l);
}

/* A slot may be free: the acceptors of this shard that wait for one try again. */
static void on_wake(struct sp_msg *m)
{
	struct sp_shard_ctx *ctx = sp_container_of(m, struct sp_shard_ctx, wake_msg);
	atomic_store(&ctx->wake_pending, false); /* before the acceptors look */
	for (size_t i = 0; ctx->gen && i < ctx->gen->n_listeners; i++)
		sp_acceptor_resume(ctx->gen->listeners[i].sock);
}

static void post_wake(struct sp_shard_ctx *ctx)
{
	bool expect = false;
	if (atomic_compare_exchange_strong(&ctx->wake_pending, &expect, true))
		sp_msg_post(sp_engine_shard(ctx->d->eng, (unsigned)(ctx - ctx->d->ctx)),
			    &ctx->wake_msg, on_wake);
}

void sp_daemon_wake_acceptors(struct sp_daemon *d)
{
	atomic_store(&d->starving, false);
	for (unsigned i = 0; i < d->nshards; i++) {
		atomic_store(&d->ctx[i].starved, false);
		post_wake(&d->ctx[i]);
	}
}

static void session_opened(struct sp_session *s)
{
	(void)s; /* its slots were taken before the accept */
}

static void session_closed(struct sp_session *s)
{
	struct sp_daemon *d = daemon_of;
	if (atomic_load_explicit(&d->access_log, memory_order_relaxed))
		sp_access_log(s);
	sp_srclimit_put(s->src_slot);
	give_slots(d, s->lst->sock);
}

static void session_denied(const struct sp_gen_listener *l, const struct sockaddr *peer,
			   const char *stage)
{
	if (atomic_load_explicit(&daemon_of->access_log, memory_order_relaxed))
		sp_access_log_denied(l, peer, stage);
}

/* A new connection, with its slots, to be served on the current shard. */
static void on_connection(struct sp_listener *l, int fd, const struct sockaddr_storage *peer,
			  socklen_t peerlen)
{
	struct sp_shard_ctx *ctx = my_ctx();
	unsigned me = sp_shard_index(sp_shard_current());
	const struct sp_gen_listener *e = atomic_load_explicit(&l->cur[me], memory_order_relaxed);
	uint32_t src = 0;
	unsigned cap = atomic_load_explicit(&l->per_source, memory_order_relaxed);

	if (!e || !ctx->gen) {
		close(fd); /* accepted in the instant its listener was removed */
		give_slots(ctx->d, l);
		return;
	}
	/* Over its address's cap: refused, not kept waiting (the backlog is one queue for
	 * everyone: a client waiting there for its own slot would hold up all behind it). */
	if (cap && sp_srclimit_take(l->serial, (const struct sockaddr *)peer, cap, &src) < 0) {
		_Atomic uint64_t *c = &l->counters[me].refused_per_source;
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		if (atomic_load_explicit(&ctx->d->access_log, memory_order_relaxed))
			sp_access_log_denied(e, (const struct sockaddr *)peer, "per_source");
		close(fd);
		give_slots(ctx->d, l);
		return;
	}
	if (!sp_session_accept(ctx->d->eng, ctx->gen, e, fd, peer, peerlen, src)) {
		sp_srclimit_put(src);
		give_slots(ctx->d, l);
	}
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
			sp_acceptor_stop(l); /* serves what waits in its queue: cur still set */
			atomic_store_explicit(&l->cur[me], NULL, memory_order_relaxed);
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
		sp_acceptor_start(l);
		sp_acceptor_resume(l); /* a raised limit frees slots for those waiting */
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
		sp_acceptor_stop(l);
		atomic_store_explicit(&l->cur[me], NULL, memory_order_relaxed);
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
	static const struct sp_accept_ops accept_ops = {
		.acquire = acquire,
		.release = release,
		.accept = on_connection,
	};
	sp_listener_set_accept_ops(&accept_ops);
}

void sp_daemon_shards_fini(struct sp_daemon *d)
{
	for (unsigned i = 0; d->ctx && i < d->nshards; i++)
		sp_gen_unref(d->ctx[i].gen);
	free(d->ctx);
	d->ctx = NULL;
}
