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
 *
 * After the exit, what the child left in its group (a `sleep &`, a double fork) gets
 * SIGTERM, and SIGKILL after kill_grace; its slot and its session last until the group is
 * empty. The group id stays ours meanwhile: the kernel keeps a pid allocated while it
 * names a process group or session, and we look every EXEC_GROUP_POLL_MS, so the number
 * could name another group only if the pid counter wrapped within that time. A member
 * that died under an init that does not reap orphans stays in the group as a zombie:
 * kill(2) still finds it, so a helper thread looks in /proc for a live member.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Signal the child's process group: before the reap its zombie holds the id, after it
 * the group's members do (see the top), until we saw it empty. */
static void signal_group(struct exec_session *e, int sig)
{
	if (e->group_gone || e->pid <= 0)
		return;
	if (kill(-e->pid, sig) < 0 && errno != ESRCH)
		sp_log(SP_LOG_WARN, "exec route %s: kill(-%d, %s): %s", e->s.route->conf->name,
		       (int)e->pid, sigabbrev_np(sig), strerror(errno));
}

/* Nobody left in group pgid (kill(2) finds no member, zombies included). */
static bool group_empty(pid_t pgid)
{
	return kill(-pgid, 0) < 0 && errno == ESRCH;
}

/* Helper threads only (it reads /proc): a member of group pgid that is not a zombie. */
static bool group_has_live(pid_t pgid)
{
	DIR *d = opendir("/proc");
	if (!d)
		return true;
	bool live = false;
	struct dirent *de;
	while (!live && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%.20s/stat", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		char *p = strrchr(buf, ')'); /* after the command name, which may hold anything */
		char state;
		int ppid, pgrp;
		if (p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
		    state != 'Z' && state != 'X')
			live = true;
	}
	closedir(d);
	return live;
}

/* The group is empty (or we gave up on it): free the slot, the session may end. */
static void group_done(struct exec_session *e)
{
	if (e->group_gone)
		return;
	e->group_gone = true;
	sp_timer_cancel(&e->group_tick); /* a callback still on its way sees group_gone */
	exec_queue_release(e);
	exec_maybe_finish(e);
}

static int scan_work(struct sp_job *job)
{
	struct exec_session *e = sp_container_of(job, struct exec_session, scan_job);
	return group_has_live(e->pid) ? 1 : 0;
}

static void on_scanned(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, scan_job.op);

	if (e->closed) {
		exec_close_idle_fds(e);
		return;
	}
	if (e->stopping || e->group_gone)
		return;
	if (res == 0)
		group_done(e); /* zombies only: their parent's business, not ours */
}

static void on_group_tick(struct sp_op *op, int res, uint32_t flags);

/* The child was reaped: end what it left in its group, or free its slot right away. */
static void group_after_exit(struct exec_session *e)
{
	if (group_empty(e->pid)) {
		group_done(e);
		return;
	}
	uint64_t now = sp_now_ns();
	/* a timeout's or a stop's SIGKILL went to the group already: straight to it */
	e->group_stage = e->kill_stage == 2 ? 2 : 1;
	signal_group(e, e->group_stage == 2 ? SIGKILL : SIGTERM);
	e->group_deadline_ns = now + (e->group_stage == 2 ? EXEC_UNKILLABLE_MS
							 : e->r->conf->kill_grace_ms) * 1000000ull;
	e->group_scan_ns = now + EXEC_GROUP_POLL_MS * 1000000ull;
	sp_timer_after(&e->group_tick, EXEC_GROUP_POLL_MS * 1000000ull);
}

/* Reap the child (the pidfd said it exited), then see to its group. */
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
	group_after_exit(e);
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

/* Every EXEC_GROUP_POLL_MS after the exit until the group is empty: SIGKILL once the
 * grace is over; given up EXEC_UNKILLABLE_MS after that (a process stuck in the kernel,
 * or one that changed its user and that we may not signal). */
static void on_group_tick(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, group_tick.op);

	if (!timer_went_off(e, res) || e->group_gone || e->stopping)
		return;
	if (group_empty(e->pid)) {
		group_done(e);
		return;
	}
	uint64_t now = sp_now_ns();
	if (now >= e->group_deadline_ns) {
		if (e->group_stage == 2) {
			sp_log(SP_LOG_ERR, "exec route %s: process group %d: processes left that "
			       "SIGKILL did not end: no longer waited for", e->s.route->conf->name,
			       (int)e->pid);
			group_done(e);
			return;
		}
		e->group_stage = 2;
		signal_group(e, SIGKILL);
		e->group_deadline_ns = now + EXEC_UNKILLABLE_MS * 1000000ull;
	}
	if (now >= e->group_scan_ns && !sp_op_busy(&e->scan_job.op)) {
		e->group_scan_ns = now + EXEC_GROUP_SCAN_MS * 1000000ull;
		sp_job_submit(&e->scan_job);
	}
	sp_timer_after(&e->group_tick, EXEC_GROUP_POLL_MS * 1000000ull);
}

/* timeout, then kill_grace: SIGTERM to the group, then SIGKILL. After the exit the group
 * tick sees to what is left, and the session's end to what it wrote. */
static void on_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, timer.op);

	if (!timer_went_off(e, res) || e->exited)
		return;
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

void exec_client_gone(struct exec_session *e)
{
	if (e->client_gone || e->closed || e->stopping)
		return;
	e->client_gone = true;
	if (e->exited || e->kill_stage)
		return; /* the group is seen to after the exit, or being ended already */
	e->kill_stage = 1;
	signal_group(e, SIGTERM);
	sp_timer_after(&e->timer, e->r->conf->kill_grace_ms * 1000000ull);
}

/* stdio: socket: the client's connection, watched for a reset or a close both ways (the
 * child has the connection itself; we only poll it). A lone POLLRDHUP is the client's end
 * of input, the child's to read: watching stops (it would fire again at once), and a
 * reset that follows can only answer a write, which the child sees itself. */
static void on_hup(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, hup_op);

	if (e->closed) {
		exec_close_idle_fds(e);
		return;
	}
	if (e->stopping)
		return;
	if (res == -ECANCELED && exec_engine_stopping()) {
		exec_stop(e);
		return;
	}
	if (res > 0 && (res & (POLLHUP | POLLERR)))
		exec_client_gone(e);
}

/* After the exit, with the group empty: the last of stderr and stdout. What holds them
 * still is no process of the group (one that escaped it): cut off once what is in the
 * pipe and in our buffer is out. */
static void on_linger(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, linger.op);

	if (e->closed)
		return;
	if (res == -ECANCELED && exec_engine_stopping()) {
		exec_stop(e);
		return;
	}
	e->err_done = true;
	if (!e->down.done) {
		/* still moving: a send in flight, bytes in the pipe, or bytes sent since the
		 * last look (a read that just completed may not have been handled yet) */
		int queued = 0;
		if (sp_op_busy(&e->down.wr) || e->s.bytes_out != e->linger_out ||
		    (e->out_fd >= 0 && ioctl(e->out_fd, FIONREAD, &queued) == 0 && queued > 0)) {
			e->linger_out = e->s.bytes_out;
			sp_timer_after(&e->linger, EXEC_LINGER_MS * 1000000ull);
			return;
		}
		e->down.done = true;
	}
	exec_maybe_finish(e);
}

void exec_life_start(struct exec_session *e)
{
	sp_op_init(&e->exit_op, &e->s.task, on_exit_op);
	sp_timer_init(&e->timer, &e->s.task, on_timer);
	sp_timer_init(&e->linger, &e->s.task, on_linger);
	sp_timer_init(&e->retire_tick, &e->s.task, on_retire_tick);
	sp_timer_init(&e->group_tick, &e->s.task, on_group_tick);
	sp_op_init(&e->scan_job.op, &e->s.task, on_scanned);
	e->scan_job.work = scan_work;
	watch_exit(e);
	if (e->r->conf->stdio == SP_EXEC_SOCKET) {
		sp_op_init(&e->hup_op, &e->s.task, on_hup);
		sp_op_poll(&e->hup_op, e->s.fd, POLLRDHUP);
	}
	sp_timer_next_tick(&e->retire_tick, EXEC_RETIRE_CHECK_MS * 1000000ull);
	if (e->r->conf->timeout_ms)
		sp_timer_after(&e->timer, e->r->conf->timeout_ms * 1000000ull);
}

/* ------------------------------------------------------------------------------------ */
/* Engine stop                                                                           */

/* What the stop's helper job saw, in its result. */
enum { STOP_KILLED = 1, STOP_LEFT = 2, STOP_LEFT_KILLED = 4, STOP_LEFT_STUCK = 8 };

/* Helper thread: wait for the group to empty (its zombies aside) until the deadline, then
 * SIGKILL it and wait again, up to EXEC_UNKILLABLE_MS. The child is reaped already, so
 * the group id is held by its members; we look every 10 ms (see the top). */
static int end_group_blocking(pid_t pgid, uint64_t deadline_ns, bool killed)
{
	int ret = 0;
	for (unsigned i = 0; !group_empty(pgid); i++) {
		if (i % (EXEC_GROUP_SCAN_MS / 10) == 0 && !group_has_live(pgid))
			break;
		ret |= STOP_LEFT;
		uint64_t now = sp_now_ns();
		if (now >= deadline_ns) {
			if (killed)
				return ret | STOP_LEFT_STUCK;
			kill(-pgid, SIGKILL);
			killed = true;
			ret |= STOP_LEFT_KILLED;
			deadline_ns = now + EXEC_UNKILLABLE_MS * 1000000ull;
		}
		poll(NULL, 0, 10);
	}
	return ret;
}

/* Helper thread: wait for the exit until the deadline, then SIGKILL and wait again (a
 * killed process goes in microseconds; the bound only covers an unkillable one), reap;
 * then what is left in the group. Returns STOP_* bits, or -errno when the child could
 * not be reaped. Reads what the session does not write while it stops. */
static int reap_work(struct sp_job *job)
{
	struct exec_session *e = sp_container_of(job, struct exec_session, reap_job);
	int killed = 0;

	if (!e->exited) {
		struct pollfd p = { .fd = e->pidfd, .events = POLLIN };
		uint64_t now = sp_now_ns();
		int wait_ms = 0;
		if (now < e->stop_deadline_ns)
			wait_ms = (int)((e->stop_deadline_ns - now) / 1000000) + 1;
		if (poll(&p, 1, wait_ms) == 0) {
			kill(-e->pid, SIGKILL); /* not reaped yet: the group id is still ours */
			killed = STOP_KILLED;
			poll(&p, 1, 5000);
		}
		/* e->si only: the session reads it once this job's completion came back */
		if (waitid((idtype_t)P_PIDFD, (id_t)e->pidfd, &e->si, WEXITED | WNOHANG) < 0)
			return -errno;
		if (!e->si.si_pid)
			return -ETIMEDOUT;
	}
	return killed | end_group_blocking(e->pid, e->stop_deadline_ns,
					   killed || e->group_stage == 2);
}

static void on_reaped_at_stop(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, reap_job.op);

	if (res < 0) {
		sp_log(SP_LOG_ERR, "exec route %s: pid %d still running at stop: %s",
		       e->s.route->conf->name, (int)e->pid, strerror(-res));
		e->si.si_pid = 0; /* status unknown */
	} else {
		if (res & STOP_KILLED)
			e->kill_stage = 2;
		if (res & STOP_LEFT_KILLED)
			e->group_stage = 2;
		else if ((res & STOP_LEFT) && !e->group_stage)
			e->group_stage = 1;
		if (res & STOP_LEFT_STUCK)
			sp_log(SP_LOG_ERR, "exec route %s: process group %d: processes left that "
			       "SIGKILL did not end", e->s.route->conf->name, (int)e->pid);
	}
	if (!e->exited)
		e->exited_ns = sp_now_ns();
	e->exited = true;
	e->group_gone = true;
	exec_queue_release(e);
	exec_finish(e, "stopped");
}

void exec_stop(struct exec_session *e)
{
	if (e->stopping || e->closed)
		return;
	e->stopping = true;
	if (e->pid <= 0 || e->group_gone) {
		exec_finish(e, "stopped");
		return;
	}
	/* Timers no longer run: a helper thread waits out kill_grace. The deadline is taken
	 * now, so children stopped together get their SIGKILL together, however few
	 * helpers there are. A group that is being ended after its child's exit keeps its
	 * own deadline. */
	if (e->exited) {
		e->stop_deadline_ns = e->group_deadline_ns;
	} else {
		signal_group(e, SIGTERM);
		if (!e->kill_stage)
			e->kill_stage = 1;
		e->stop_deadline_ns = sp_now_ns() + e->r->conf->kill_grace_ms * 1000000ull;
	}
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
