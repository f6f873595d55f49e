/* SPDX-License-Identifier: MIT */
/*
 * exec.c - the `exec` stage (spargiod.yaml(5)): one child process per connection, in
 * the manner of inetd's nowait services. This file holds the stage vtable and the
 * session's two ends: its start (a max_instances slot, then the spawn) and its finish
 * (access-log fields, fds). The pieces are described in exec.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine/log.h"
#include "handlers/exec.h"

bool exec_engine_stopping(void)
{
	return sp_engine_stopping(sp_shard_engine(sp_shard_current()));
}

static void close_if_idle(int *fd, bool busy)
{
	if (*fd >= 0 && !busy) {
		close(*fd);
		*fd = -1;
	}
}

/* An fd is closed only once no op of ours uses it: an SQE prepared in this pass may not
 * be submitted yet, and the number could name another connection's file by then. */
void exec_close_idle_fds(struct exec_session *e)
{
	close_if_idle(&e->in_fd, sp_op_busy(&e->up.wr));
	close_if_idle(&e->out_fd, sp_op_busy(&e->down.rd));
	close_if_idle(&e->err_fd, sp_op_busy(&e->err_op));
	close_if_idle(&e->pidfd, sp_op_busy(&e->exit_op) || sp_op_busy(&e->reap_job.op));
}

/* TCP states (the kernel's include/net/tcp_states.h, a stable ABI of tcpi_state; glibc
 * has them only in netinet/tcp.h, whose struct tcp_info lacks the byte counts). */
enum { ST_FIN_WAIT2 = 5, ST_TIME_WAIT = 6, ST_CLOSE_WAIT = 8, ST_LAST_ACK = 9, ST_CLOSING = 11 };

static bool tcp_info_of(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) == 0 &&
	       len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti->tcpi_bytes_received);
}

/* `stdio: socket`: the child moved the bytes; the kernel counted them. Sent = acked +
 * still queued, two reads between which an ACK may land (moving bytes from the second
 * to the first): read the acked count again after the queue, until it did not move. */
static void socket_bytes(struct exec_session *e)
{
	struct tcp_info ti, again;
	int family = e->s.peer.ss_family;
	if ((family != AF_INET && family != AF_INET6) || !tcp_info_of(e->s.fd, &ti))
		return;
	int queued = 0; /* written by the child, not acknowledged yet */
	for (int tries = 0; tries < 8; tries++) {
		if (ioctl(e->s.fd, SIOCOUTQ, &queued) < 0 || queued < 0)
			queued = 0;
		if (!tcp_info_of(e->s.fd, &again) || again.tcpi_bytes_acked == ti.tcpi_bytes_acked)
			break;
		ti = again;
	}
	/* the kernel counts a FIN as a byte: once received (CLOSE_WAIT and after) and once
	 * ours was acknowledged (FIN_WAIT2, TIME_WAIT) */
	bool fin_in = ti.tcpi_state == ST_CLOSE_WAIT || ti.tcpi_state == ST_LAST_ACK ||
		      ti.tcpi_state == ST_CLOSING || ti.tcpi_state == ST_TIME_WAIT;
	bool fin_out = ti.tcpi_state == ST_FIN_WAIT2 || ti.tcpi_state == ST_TIME_WAIT;
	e->s.bytes_in = ti.tcpi_bytes_received - (fin_in && ti.tcpi_bytes_received);
	e->s.bytes_out = ti.tcpi_bytes_acked - (fin_out && ti.tcpi_bytes_acked) + (unsigned)queued;
}

static void log_fields(struct exec_session *e)
{
	char status[32];
	size_t n = sizeof(e->s.log_extra), at = 0;
	char *p = e->s.log_extra;

	if (e->pid > 0) {
		uint64_t end = e->exited_ns ? e->exited_ns : sp_now_ns();
		at += (size_t)snprintf(p + at, n - at, "pid=%d %s run_ms=%.3f", (int)e->pid,
				       exec_status_str(e, status, sizeof(status)),
				       (double)(end - e->spawned_ns) / 1e6);
	}
	if (at < n && e->queued)
		at += (size_t)snprintf(p + at, n - at, "%squeued_ms=%.3f", at ? " " : "",
				       (double)((e->spawned_ns ? e->spawned_ns : sp_now_ns()) -
						e->q_since_ns) / 1e6);
	if (at < n && e->kill_stage) /* we signalled it: timeout, stop, client gone */
		at += (size_t)snprintf(p + at, n - at, "%skilled=%s", at ? " " : "",
				       e->kill_stage == 2 ? "KILL" : "TERM");
	if (at < n && e->group_stage) /* it left processes in its group: we ended them */
		at += (size_t)snprintf(p + at, n - at, "%sleft=%s", at ? " " : "",
				       e->group_stage == 2 ? "KILL" : "TERM");
	if (at < n && e->spawn_step)
		snprintf(p + at, n - at, "%sspawn_error=%s:%s", at ? " " : "", e->spawn_step,
			 strerrorname_np(e->spawn_err) ? strerrorname_np(e->spawn_err) : "?");
}

void exec_finish(struct exec_session *e, const char *reason)
{
	if (e->closed)
		return;
	e->closed = true;
	exec_stderr_flush(e);
	if (e->r->conf->stdio == SP_EXEC_SOCKET && e->pid > 0) {
		socket_bytes(e);
		/* a process that escaped the group may hold the connection: it ends anyway */
		shutdown(e->s.fd, SHUT_RDWR);
	}
	log_fields(e);
	exec_close_idle_fds(e);
	sp_session_close(&e->s, reason);
}

void exec_maybe_finish(struct exec_session *e)
{
	if (e->closed || e->stopping || !e->exited || !e->group_gone)
		return;
	if (!e->err_done || !e->down.done) { /* they end with the group: give them a moment */
		if (!sp_timer_armed(&e->linger)) {
			e->linger_out = e->s.bytes_out;
			sp_timer_after(&e->linger, EXEC_LINGER_MS * 1000000ull);
		}
		return;
	}
	const char *reason = NULL;
	if (e->spawn_step)
		reason = "spawn failed";
	else if (e->retired)
		reason = "route removed";
	else if (e->timed_out)
		reason = "timeout";
	else if (e->client_gone)
		reason = "client gone";
	exec_finish(e, reason);
}

/* Logged at most once a second per route: a broken command under load must not flood
 * the log (the access log has every one). */
static void spawn_failed(struct exec_session *e, const char *why, int err)
{
	struct exec_route *r = e->r;
	uint64_t n = atomic_fetch_add(&r->spawn_failures, 1) + 1;
	uint64_t now = sp_now_ns(), last = atomic_load(&r->fail_note_ns);
	if (last && now - last < 1000000000ull)
		return;
	if (!atomic_compare_exchange_strong(&r->fail_note_ns, &last, now))
		return;
	sp_log(SP_LOG_ERR, "exec route %s: cannot start %s: %s: %s (%llu failed so far)",
	       e->s.route->conf->name, r->conf->argv[0], why, strerror(err),
	       (unsigned long long)n);
}

void exec_launch(struct exec_session *e)
{
	const bool pipes = e->r->conf->stdio == SP_EXEC_PIPE;
	int errp[2] = { -1, -1 }, inp[2] = { -1, -1 }, outp[2] = { -1, -1 };
	const char *why = "pipe2";
	int ret = 0;

	if (pipe2(errp, O_CLOEXEC) < 0 ||
	    (pipes && (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0)))
		ret = -errno;
	else if (pipes)
		ret = exec_spawn(e, inp[0], outp[1], errp[1], &why);
	else /* the accepted socket is blocking (accept without SOCK_NONBLOCK): fine as stdio */
		ret = exec_spawn(e, e->s.fd, e->s.fd, errp[1], &why);
	int child_ends[3] = { errp[1], inp[0], outp[1] };
	for (int i = 0; i < 3; i++)
		if (child_ends[i] >= 0)
			close(child_ends[i]);
	e->err_fd = errp[0];
	e->in_fd = inp[1];
	e->out_fd = outp[0];

	if (ret < 0) {
		spawn_failed(e, why, -ret);
		if (e->pid <= 0) { /* no child at all */
			exec_queue_release(e);
			e->err_done = true;
			exec_finish(e, "spawn failed");
			return;
		}
		e->spawn_step = why; /* it exits 127 and is reaped like any other */
		e->spawn_err = -ret;
	}
	e->up.done = e->down.done = !pipes;
	exec_life_start(e);
	exec_stderr_start(e);
	if (pipes)
		exec_relay_start(e);
}

/* A waiting session's verdict came (exec_queue.c). */
static void on_verdict(struct sp_session *s)
{
	struct exec_session *e = (struct exec_session *)s;
	int v = atomic_load_explicit(&e->verdict, memory_order_acquire);

	if (v == EXEC_WAITING || e->closed)
		return;
	s->on_wake = NULL;
	if (v == EXEC_GRANTED) {
		e->counted = true;
		bool stopping = exec_engine_stopping(); /* granted just before the stop */
		if (stopping || atomic_load_explicit(&s->route->retired, memory_order_relaxed)) {
			exec_queue_release(e); /* the next in line ends the same way */
			exec_finish(e, stopping ? "stopped" : "route removed");
			return;
		}
		exec_launch(e);
	} else {
		exec_finish(e, v == EXEC_TIMED_OUT ? "queue timeout" : "stopped");
	}
}

static void exec_start(struct sp_session *s)
{
	struct exec_session *e = (struct exec_session *)s;

	e->r = s->handler->state;
	e->pid = -1;
	e->pidfd = e->err_fd = e->in_fd = e->out_fd = -1;
	s->on_wake = on_verdict; /* before the queue can wake us */
	switch (exec_queue_admit(e)) {
	case EXEC_RUN:
		s->on_wake = NULL;
		exec_launch(e);
		break;
	case EXEC_QUEUED:
		break; /* nothing in flight until the verdict */
	case EXEC_REFUSED:
		s->on_wake = NULL;
		exec_finish(e, "max_instances");
		break;
	}
}

static int exec_init(struct sp_stage *st, unsigned nshards, char *err, size_t errlen)
{
	struct exec_route *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int ret = exec_route_init(r, &st->conf->exec, nshards, err, errlen);
	if (ret < 0) {
		exec_route_fini(r);
		free(r);
		return ret;
	}
	st->state = r;
	return 0;
}

static void exec_destroy(struct sp_stage *st)
{
	struct exec_route *r = st->state;
	if (!r)
		return;
	exec_route_fini(r);
	free(r);
	st->state = NULL;
}

const struct sp_stage_ops sp_exec_ops = {
	.kind = SP_STAGE_EXEC,
	.init = exec_init,
	.destroy = exec_destroy,
	.session_size = sizeof(struct exec_session),
	.start = exec_start,
};
