/* SPDX-License-Identifier: MIT */
/*
 * exec_life.c - a child's life as the session sees it: its exit through the pidfd on
 * the engine, the route's `timeout` (SIGTERM to the process group, SIGKILL after
 * kill_grace), and the engine stopping (the same two signals, waited out on a helper
 * thread since no timer runs any more then). No SIGCHLD handler: SIGCHLD keeps its
 * default action, and every child is reaped here, by its pidfd.
 *
 * The exit is seen with IORING_OP_WAITID (Linux 6.7) when the kernel has it, else with
 * a poll on the pidfd and waitid(P_PIDFD, WNOHANG). WAITID is asked with WNOWAIT, and
 * both paths reap with waitid afterwards: until then the child is a zombie that keeps
 * its pid, so the process group we signal on a timeout can never be somebody else's.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "engine/compat.h"
#include "engine/log.h"
#include "handlers/exec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void on_exit_op(struct sp_op *op, int res, uint32_t flags);

/* liburing 2.3 has no io_uring_prep_waitid: the SQE is filled by hand, as the kernel
 * reads it (io_uring/waitid.c): fd = id, len = idtype, file_index = options,
 * addr2 = the siginfo. */
static void prep_waitid(struct io_uring_sqe *sqe, int pidfd, siginfo_t *si, int options)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = SP_IORING_OP_WAITID;
	sqe->fd = pidfd;
	sqe->len = P_PIDFD;
	sqe->file_index = (unsigned)options;
	sqe->addr2 = (uint64_t)(uintptr_t)si;
}

static bool use_waitid(const struct exec_session *e)
{
	return !atomic_load_explicit(&e->r->no_waitid, memory_order_relaxed) &&
	       sp_engine_op_supported(sp_shard_engine(sp_shard_current()), SP_IORING_OP_WAITID);
}

static void watch_exit(struct exec_session *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	if (use_waitid(e)) {
		prep_waitid(sqe, e->pidfd, &e->si, WEXITED | WNOWAIT);
	} else {
		io_uring_prep_poll_add(sqe, e->pidfd, POLLIN);
	}
	sp_op_submit(&e->exit_op, sqe);
}

/* Signal the child's process group. Only while the child is not reaped: a zombie still
 * holds its pid, so the group id names our group and no other. */
static void signal_group(struct exec_session *e, int sig)
{
	if (e->exited || e->pid <= 0)
		return;
	if (kill(-e->pid, sig) < 0 && errno != ESRCH)
		sp_log(SP_LOG_WARN, "exec route %s: kill(-%d, %s): %s", e->s.route->conf->name,
		       (int)e->pid, sigabbrev_np(sig), strerror(errno));
}

/* Reap the child (the pidfd said it exited) and free its slot. */
static void reap(struct exec_session *e)
{
	siginfo_t si = { 0 };
	int ret = waitid((idtype_t)P_PIDFD, (id_t)e->pidfd, &si, WEXITED | WNOHANG);
	if (ret == 0 && !si.si_pid) {
		watch_exit(e); /* not exited after all: watch again */
		return;
	}
	if (ret < 0) /* nobody else reaps our children: a bug somewhere if this happens */
		sp_log(SP_LOG_ERR, "exec route %s: pid %d: waitid: %s", e->s.route->conf->name,
		       (int)e->pid, strerror(errno));
	e->si = si; /* si_pid 0: status unknown */
	e->exited = true;
	e->exited_ns = sp_now_ns();
	exec_queue_release(e);
	exec_maybe_finish(e);
}

static void on_exit_op(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, exit_op);

	if (e->closed) {
		exec_close_idle_fds(e);
		return;
	}
	if (e->stopping)
		return; /* the stop's helper job reaps it */
	if (res == -ECANCELED && exec_engine_stopping()) {
		exec_stop(e);
		return;
	}
	if (res == -EINVAL || res == -EOPNOTSUPP) { /* WAITID probed but refused: poll */
		if (!atomic_exchange(&e->r->no_waitid, true))
			sp_log(SP_LOG_WARN, "exec: IORING_OP_WAITID failed (%s): polling pidfds",
			       strerror(-res));
		watch_exit(e);
		return;
	}
	if (res < 0 && res != -ECANCELED) {
		sp_log(SP_LOG_ERR, "exec route %s: pid %d: exit watch: %s",
		       e->s.route->conf->name, (int)e->pid, strerror(-res));
	}
	reap(e);
}

/* A timer of e completed: true when it went off and e is still open. Cancelled by the
 * engine stopping: the child gets what a stop gives it. */
static bool timer_went_off(struct exec_session *e, int res)
{
	if (e->closed)
		return false;
	if (res == -ECANCELED) {
		if (exec_engine_stopping())
			exec_stop(e);
		return false;
	}
	return true;
}

/* timeout, then kill_grace: SIGTERM to the group, then SIGKILL. After the exit, what is
 * left (a descendant holding stdout) is cut off by ending the session. */
static void on_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, timer.op);

	if (!timer_went_off(e, res))
		return;
	if (e->exited) { /* what it left behind (a descendant holding stdout) is cut off */
		e->timed_out = !e->retired;
		exec_finish(e, e->retired ? "route removed" : "timeout");
		return;
	}
	if (e->kill_stage == 0) {
		e->timed_out = true;
		e->kill_stage = 1;
		signal_group(e, SIGTERM);
		sp_timer_after(&e->timer, e->r->conf->kill_grace_ms * 1000000ull);
	} else if (e->kill_stage == 1) {
		e->kill_stage = 2;
		signal_group(e, SIGKILL);
	}
}

/* A reload removed the route: the child gets what a stop gives it, SIGTERM to the group
 * then SIGKILL after kill_grace (the timer's second stage), but on the engine. A route
 * that is only changed keeps its children running to their end. */
static void on_retire_tick(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, retire_tick.op);

	if (!timer_went_off(e, res))
		return;
	if (e->exited || e->kill_stage) /* nothing left to end, or ending already */
		return;
	if (!atomic_load_explicit(&e->s.route->retired, memory_order_relaxed)) {
		/* one-shot, re-armed here: a periodic timer cannot be stopped from its callback;
		 * on the shared grid, so many children cost one wake-up per check */
		sp_timer_next_tick(&e->retire_tick, EXEC_RETIRE_CHECK_MS * 1000000ull);
		return;
	}
	e->retired = true;
	e->kill_stage = 1;
	signal_group(e, SIGTERM);
	sp_timer_after(&e->timer, e->r->conf->kill_grace_ms * 1000000ull);
}

static void on_linger(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, linger.op);

	if (e->closed)
		return;
	if (res == -ECANCELED && exec_engine_stopping()) {
		exec_stop(e);
		return;
	}
	e->err_done = true; /* a descendant still holds stderr: stop listening */
	exec_maybe_finish(e);
}

void exec_life_start(struct exec_session *e)
{
	sp_op_init(&e->exit_op, &e->s.task, on_exit_op);
	sp_timer_init(&e->timer, &e->s.task, on_timer);
	sp_timer_init(&e->linger, &e->s.task, on_linger);
	sp_timer_init(&e->retire_tick, &e->s.task, on_retire_tick);
	watch_exit(e);
	sp_timer_next_tick(&e->retire_tick, EXEC_RETIRE_CHECK_MS * 1000000ull);
	if (e->r->conf->timeout_ms)
		sp_timer_after(&e->timer, e->r->conf->timeout_ms * 1000000ull);
}

/* ------------------------------------------------------------------------------------ */
/* Engine stop                                                                           */

/* Helper thread: wait for the exit until the deadline, then SIGKILL and wait again (a
 * killed process goes in microseconds; the bound only covers an unkillable one), reap.
 * Returns 1 when SIGKILL was needed, 0 when SIGTERM was enough, or -errno. */
static int reap_work(struct sp_job *job)
{
	struct exec_session *e = sp_container_of(job, struct exec_session, reap_job);
	struct pollfd p = { .fd = e->pidfd, .events = POLLIN };
	uint64_t now = sp_now_ns();
	int wait_ms = 0;
	if (now < e->stop_deadline_ns)
		wait_ms = (int)((e->stop_deadline_ns - now) / 1000000) + 1;
	int killed = 0;

	if (poll(&p, 1, wait_ms) == 0) {
		kill(-e->pid, SIGKILL); /* not reaped yet: the group id is still ours */
		killed = 1;
		poll(&p, 1, 5000);
	}
	/* e->si only: the session reads it once this job's completion came back */
	if (waitid((idtype_t)P_PIDFD, (id_t)e->pidfd, &e->si, WEXITED | WNOHANG) < 0)
		return -errno;
	return e->si.si_pid ? killed : -ETIMEDOUT;
}

static void on_reaped_at_stop(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, reap_job.op);

	if (res < 0) {
		sp_log(SP_LOG_ERR, "exec route %s: pid %d still running at stop: %s",
		       e->s.route->conf->name, (int)e->pid, strerror(-res));
		e->si.si_pid = 0; /* status unknown */
	} else if (res == 1) {
		e->kill_stage = 2;
	}
	e->exited = true;
	e->exited_ns = sp_now_ns();
	exec_queue_release(e);
	exec_finish(e, "stopped");
}

void exec_stop(struct exec_session *e)
{
	if (e->stopping || e->closed)
		return;
	e->stopping = true;
	if (e->exited || e->pid <= 0) {
		exec_finish(e, "stopped");
		return;
	}
	/* Timers no longer run: a helper thread waits out kill_grace. The deadline is taken
	 * now, so children stopped together get their SIGKILL together, however few
	 * helpers there are. */
	signal_group(e, SIGTERM);
	e->kill_stage = 1;
	e->stop_deadline_ns = sp_now_ns() + e->r->conf->kill_grace_ms * 1000000ull;
	sp_op_init(&e->reap_job.op, &e->s.task, on_reaped_at_stop);
	e->reap_job.work = reap_work;
	sp_job_submit(&e->reap_job);
}

const char *exec_status_str(const struct exec_session *e, char *buf, size_t n)
{
	if (!e->exited || !e->si.si_pid)
		snprintf(buf, n, "exit=unknown");
	else if (e->si.si_code == CLD_EXITED)
		snprintf(buf, n, "exit=%d", e->si.si_status);
	else
		snprintf(buf, n, "signal=%s", sigabbrev_np(e->si.si_status) ?: "?");
	return buf;
}
