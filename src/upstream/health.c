/* SPDX-License-Identifier: MIT */
/*
 * health.c - active TCP health checks: every `interval`, a connect to the server under a
 * linked timeout of `timeout`; `rise` successes in a row bring a down server up, `fall`
 * failures take it down (pool.c keeps the counts and logs the change).
 *
 * A check is owned by one shard (its ops and timer have no task) and runs there while
 * the generation holding it is that shard's current one. Each running check holds a
 * reference on its upstream set, dropped once it has stopped and no op of it is in
 * flight, so an old generation's checks may end after the generation was replaced.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream/upstream.h"

struct sp_health {
	struct sp_server *srv;
	struct sp_upstreams *set;
	struct sp_timer timer;         /* next check */
	struct sp_op conn, tmo;        /* the connect and its linked timeout */
	struct __kernel_timespec ts;
	int fd;
	int res;                       /* the connect's result, until both ops are back */
	bool running;                  /* holds a reference on set */
	bool stopping;
};

static void on_conn(struct sp_op *op, int res, uint32_t flags);
static void on_tmo(struct sp_op *op, int res, uint32_t flags);
static void on_timer(struct sp_op *op, int res, uint32_t flags);

int sp_health_alloc(struct sp_upstreams *set)
{
	for (size_t j = 0; j < set->n; j++) {
		struct sp_upstream *u = &set->v[j];
		if (!u->conf->health_check)
			continue;
		for (size_t i = 0; i < u->n_servers; i++) {
			struct sp_health *hc = calloc(1, sizeof(*hc));
			if (!hc)
				return -ENOMEM;
			hc->srv = &u->servers[i];
			hc->set = set;
			hc->fd = -1;
			u->servers[i].hc = hc;
		}
	}
	return 0;
}

void sp_health_free(struct sp_upstreams *set)
{
	for (size_t j = 0; set->v && j < set->n; j++)
		for (size_t i = 0; set->v[j].servers && i < set->v[j].n_servers; i++)
			free(set->v[j].servers[i].hc);
}

/* The last thing a check does: may free the set, hc included. */
static void finish(struct sp_health *hc)
{
	hc->running = false;
	sp_upstreams_unref(hc->set);
}

static bool ending(struct sp_health *hc)
{
	return hc->stopping || sp_engine_stopping(sp_shard_engine(sp_shard_current()));
}

static void next_check(struct sp_health *hc)
{
	if (ending(hc)) {
		finish(hc);
		return;
	}
	sp_timer_after(&hc->timer, hc->srv->up->conf->health_check->interval_ms * 1000000ull);
}

static void run_check(struct sp_health *hc)
{
	const struct sp_conf_addr *a = &hc->srv->conf->address;
	hc->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (hc->fd < 0) {
		sp_server_check_result(hc->srv, false, strerror(errno));
		next_check(hc);
		return;
	}
	uint64_t ms = hc->srv->up->conf->health_check->timeout_ms;
	hc->ts.tv_sec = (long long)(ms / 1000);
	hc->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	struct io_uring_sqe *sqe = sp_sqes(2);
	io_uring_prep_connect(sqe, hc->fd, (const struct sockaddr *)&a->sa, a->salen);
	sp_op_submit_timeout(&hc->conn, sqe, &hc->tmo, &hc->ts);
}

/* Both halves of the linked pair are back: judge the connect. */
static void settle(struct sp_health *hc)
{
	if (sp_op_busy(&hc->conn) || sp_op_busy(&hc->tmo))
		return;
	close(hc->fd);
	hc->fd = -1;
	if (ending(hc)) {
		finish(hc);
		return;
	}
	int res = hc->res;
	sp_server_check_result(hc->srv, res == 0,
			       res == -ECANCELED ? "timed out" : strerror(-res));
	next_check(hc);
}

static void on_conn(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_health *hc = sp_container_of(op, struct sp_health, conn);
	hc->res = res;
	settle(hc);
}

static void on_tmo(struct sp_op *op, int res, uint32_t flags)
{
	settle(sp_container_of(op, struct sp_health, tmo));
}

static void on_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_health *hc = sp_container_of(op, struct sp_health, timer.op);
	if (res < 0 || ending(hc)) {
		finish(hc);
		return;
	}
	run_check(hc);
}

/* Check i of upstream j runs on shard (i + j) mod nshards: spread, and stable. */
static bool mine(struct sp_upstreams *set, size_t j, size_t i)
{
	return (i + j) % set->nshards == sp_shard_index(sp_shard_current());
}

void sp_upstreams_start_checks(struct sp_upstreams *set)
{
	for (size_t j = 0; set && j < set->n; j++) {
		struct sp_upstream *u = &set->v[j];
		for (size_t i = 0; u->conf->health_check && i < u->n_servers; i++) {
			struct sp_health *hc = u->servers[i].hc;
			if (!mine(set, j, i) || hc->running)
				continue;
			sp_op_init(&hc->conn, NULL, on_conn);
			sp_op_init(&hc->tmo, NULL, on_tmo);
			sp_timer_init(&hc->timer, NULL, on_timer);
			hc->running = true;
			hc->stopping = false;
			sp_upstreams_ref(set);
			run_check(hc); /* the first verdict comes within one timeout */
		}
	}
}

/* The caller holds a reference on set (its generation's), so finish() never frees it here. */
void sp_upstreams_stop_checks(struct sp_upstreams *set)
{
	for (size_t j = 0; set && j < set->n; j++) {
		struct sp_upstream *u = &set->v[j];
		for (size_t i = 0; u->conf->health_check && i < u->n_servers; i++) {
			struct sp_health *hc = u->servers[i].hc;
			if (!mine(set, j, i) || !hc->running || hc->stopping)
				continue;
			hc->stopping = true;
			if (sp_op_busy(&hc->conn))
				sp_op_cancel(&hc->conn); /* settle() finishes */
			else if (sp_timer_armed(&hc->timer) && sp_timer_cancel(&hc->timer) == 0)
				finish(hc); /* no callback will come; the caller's ref keeps set */
		}
	}
}
