/* SPDX-License-Identifier: MIT */
/*
 * session.c - from an accepted fd to a running handler: filters, then a task placed per
 * the route, then the handler's start. The session keeps its generation until it ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/log.h"
#include "net/listener.h"
#include "pipeline/pipeline.h"

static struct sp_session_hooks hooks;

void sp_session_set_hooks(const struct sp_session_hooks *h)
{
	hooks = *h;
}

const char *sp_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, n, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, n, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, n, "unix");
	}
	return buf;
}

/* FNV-1a over the address bytes (not the port): the sticky placement key. */
static uint64_t peer_key(const struct sockaddr *sa)
{
	const uint8_t *p = NULL;
	size_t len = 0;
	if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else if (sa->sa_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		len = 16;
	}
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void pp_done(struct sp_session *s, const char *err);

static void session_run(struct sp_task *t)
{
	struct sp_session *s = sp_container_of(t, struct sp_session, task);
	if (!s->started) {
		s->started = true;
		if (s->pp)
			sp_pp_read_start(s, pp_done); /* filters and handler once it is in */
		else
			s->handler->ops->start(s);
	} else if (s->on_wake) {
		s->on_wake(s);
	}
}

/* Counters are written by one shard only: a plain load + store is enough (no RMW). */
static inline void count_n(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void count(_Atomic uint64_t *c)
{
	count_n(c, 1);
}

static void session_release(struct sp_task *t)
{
	struct sp_session *s = sp_container_of(t, struct sp_session, task);
	struct sp_shard *sh = sp_shard_current();
	unsigned me = sh ? sp_shard_index(sh) : 0;
	struct sp_route_counters *rc = &s->route->counters[me];

	if (s->end_reason)
		count(&rc->errors);
	count_n(&rc->bytes_in, s->bytes_in);
	count_n(&rc->bytes_out, s->bytes_out);
	sp_hist_record(&s->route->durations[me], (sp_now_ns() - s->started_ns) / 1000);
	/* `closed` last, with release: a reader that loads it first (acquire) and sees the
	 * session ended sees its bytes, error and duration too (free on x86) */
	atomic_store_explicit(&rc->closed, atomic_load_explicit(&rc->closed, memory_order_relaxed) + 1,
			      memory_order_release);
	_Atomic uint64_t *lclosed = &s->lst->sock->counters[me].closed;
	atomic_store_explicit(lclosed, atomic_load_explicit(lclosed, memory_order_relaxed) + 1,
			      memory_order_release);
	if (s->started && (!s->pp || s->pp_passed) && s->handler->ops->release)
		s->handler->ops->release(s);
	if (s->fd >= 0)
		close(s->fd);
	if (hooks.closed)
		hooks.closed(s);
	sp_gen_unref(s->gen);
	free(s);
}

bool sp_session_accept(struct sp_engine *eng, struct sp_gen *gen,
		       const struct sp_gen_listener *l, int fd,
		       const struct sockaddr_storage *from, socklen_t peerlen, uint32_t src_slot)
{
	struct sockaddr_storage peer = *from;
	unsigned shard = sp_shard_index(sp_shard_current());
	struct sp_route *r = l->route;

	uint64_t now = sp_now_ns();
	bool pp = l->conf->proxy_protocol; /* filters judge the address the header gives */
	for (size_t i = 0; !pp && i + 1 < r->n_stages; i++) {
		struct sp_stage *st = &r->stages[i];
		if (st->ops->filter(st, (struct sockaddr *)&peer, shard, now) == SP_VERDICT_DENY) {
			struct sp_listener_counters *lc = &l->sock->counters[shard];
			count(&st->counters[shard].denied);
			count(&r->counters[shard].denied);
			count(st->conf->kind == SP_STAGE_ACL ? &lc->refused_acl : &lc->refused_rate_limit);
			if (hooks.denied)
				hooks.denied(l, (struct sockaddr *)&peer, sp_stage_name(st->conf->kind));
			close(fd);
			return false;
		}
		count(&st->counters[shard].passed);
	}

	struct sp_stage *h = &r->stages[r->n_stages - 1];
	size_t size = (h->ops->session_size + 15) & ~(size_t)15;
	struct sp_session *s = calloc(1, size + (pp ? sp_pp_reader_size() : 0));
	if (!s) {
		sp_log(SP_LOG_ERR, "listener %s: out of memory for a session", l->conf->name);
		close(fd);
		return false;
	}
	s->fd = fd;
	if (pp)
		s->pp = (struct sp_pp_reader *)((char *)s + size);
	s->peer = peer;
	s->peerlen = peerlen;
	s->gen = sp_gen_ref(gen);
	s->lst = l;
	s->route = r;
	s->handler = h;
	s->started_ns = now;
	s->src_slot = src_slot;
	count(&r->counters[shard].opened);
	count(&l->sock->counters[shard].opened);
	if (hooks.opened)
		hooks.opened(s);
	sp_task_init(&s->task, r->placement, session_run, session_release);
	sp_task_spawn(eng, &s->task, peer_key((struct sockaddr *)&peer));
	return true;
}

/* The PROXY header is in (or failed): the filters judge its address, then the handler
 * starts. A denial ends the session with reason "denied" and the stage in the log. */
static void pp_done(struct sp_session *s, const char *err)
{
	if (err) {
		sp_session_close(s, err);
		return;
	}
	struct sp_route *r = s->route;
	unsigned shard = sp_shard_index(sp_shard_current());
	uint64_t now = sp_now_ns();
	for (size_t i = 0; i + 1 < r->n_stages; i++) {
		struct sp_stage *st = &r->stages[i];
		if (st->ops->filter(st, (struct sockaddr *)&s->peer, shard, now) == SP_VERDICT_DENY) {
			count(&st->counters[shard].denied);
			count(&r->counters[shard].denied);
			count(st->conf->kind == SP_STAGE_ACL ? &s->lst->sock->counters[shard].refused_acl
							     : &s->lst->sock->counters[shard].refused_rate_limit);
			snprintf(s->log_extra, sizeof(s->log_extra), "stage=%s",
				 sp_stage_name(st->conf->kind));
			sp_session_close(s, "denied");
			return;
		}
		count(&st->counters[shard].passed);
	}
	s->pp_passed = true;
	s->handler->ops->start(s);
}

void sp_session_close(struct sp_session *s, const char *reason)
{
	if (!s->end_reason)
		s->end_reason = reason;
	sp_task_close(&s->task);
}
