/* SPDX-License-Identifier: MIT */
/*
 * exec_relay.c - the bytes between a connection and its child.
 *
 * `stdio: pipe`: two directions, each one read and one write, never both in flight (a
 * write is finished, short writes resumed, before the next read): a slow reader on
 * either side stops the other through the pipe or the socket buffer (back-pressure), and
 * bytes never reorder. The session's own buffers, not the shard's provided buffers: a
 * stealable session may move between shards while it holds data. Half-close both ways:
 * the client's FIN closes the child's stdin; the end of the child's stdout becomes our
 * FIN (shutdown SHUT_WR); a client that is gone closes our end of stdout (the child's
 * next write gets EPIPE).
 *
 * stderr, in both stdio modes: read through the engine, cut into lines, each logged with
 * the route and the pid, control characters replaced (a child cannot forge log lines).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "handlers/exec.h"

/* Common head of every relay callback. True: the callback has nothing more to do. */
static bool settled(struct exec_session *e, int res)
{
	if (e->closed) {
		exec_close_idle_fds(e);
		return true;
	}
	if (e->stopping)
		return true;
	if (res == -ECANCELED && exec_engine_stopping()) {
		exec_stop(e);
		return true;
	}
	return false;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ------------------------------------------------------------------------------------ */
/* stderr                                                                                */

static void log_line(struct exec_session *e, const char *p, size_t n)
{
	char line[EXEC_ERR_LINE + 1], fields[160];
	if (n && p[n - 1] == '\r')
		n--;
	if (e->err_lines >= EXEC_ERR_MAX_LINES) {
		e->err_dropped++;
		return;
	}
	e->err_lines++;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		line[i] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	line[n] = '\0';
	const char *route = e->s.route->conf->name;
	snprintf(fields, sizeof(fields), "SPARGIOD_EVENT=exec_stderr\nROUTE=%s\nCHILD_PID=%d",
		 route, (int)e->pid);
	sp_log_fields(SP_LOG_INFO, fields, "exec route=%s pid=%d stderr: %s", route, (int)e->pid,
		      line);
}

static void err_read(struct exec_session *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_read(sqe, e->err_fd, e->err_buf + e->err_len, EXEC_ERR_LINE - e->err_len,
			   (uint64_t)-1);
	sp_op_submit(&e->err_op, sqe);
}

static void on_err(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, err_op);

	if (settled(e, res))
		return;
	if (res <= 0) {
		e->err_done = true;
		close_fd(&e->err_fd);
		exec_maybe_finish(e);
		return;
	}
	e->err_len += (unsigned)res;
	char *start = e->err_buf, *end = e->err_buf + e->err_len, *nl;
	while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
		log_line(e, start, (size_t)(nl - start));
		start = nl + 1;
	}
	e->err_len = (unsigned)(end - start);
	if (e->err_len == EXEC_ERR_LINE) { /* a line longer than the buffer: in pieces */
		log_line(e, e->err_buf, e->err_len);
		e->err_len = 0;
	}
	memmove(e->err_buf, start, e->err_len);
	err_read(e);
}

void exec_stderr_start(struct exec_session *e)
{
	sp_op_init(&e->err_op, &e->s.task, on_err);
	err_read(e);
}

void exec_stderr_flush(struct exec_session *e)
{
	if (e->err_len && !sp_op_busy(&e->err_op))
		log_line(e, e->err_buf, e->err_len);
	e->err_len = 0;
	if (e->err_dropped)
		sp_log(SP_LOG_WARN, "exec route=%s pid=%d: %u more stderr lines not logged",
		       e->s.route->conf->name, (int)e->pid, e->err_dropped);
	e->err_dropped = 0;
}

/* ------------------------------------------------------------------------------------ */
/* client -> child's stdin                                                               */

static void up_recv(struct exec_session *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, e->s.fd, e->up.buf, sizeof(e->up.buf), 0);
	sp_op_submit(&e->up.rd, sqe);
}

static void up_write(struct exec_session *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_write(sqe, e->in_fd, e->up.buf + e->up.off, e->up.len - e->up.off,
			    (uint64_t)-1);
	sp_op_submit(&e->up.wr, sqe);
}

/* The client said all it had to say (or cannot be read), or the child stopped
 * reading: the child's stdin ends. */
static void up_end(struct exec_session *e)
{
	e->up.done = true;
	close_fd(&e->in_fd);
}

static void on_up_rd(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, up.rd);

	if (settled(e, res))
		return;
	if (res <= 0) {
		if (res < 0 && res != -ECANCELED) /* a reset: gone, not just done sending */
			exec_client_gone(e);
		up_end(e);
		return;
	}
	e->up.len = (unsigned)res;
	e->up.off = 0;
	e->s.bytes_in += (unsigned)res;
	up_write(e);
}

static void on_up_wr(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, up.wr);

	if (settled(e, res))
		return;
	if (res <= 0) { /* EPIPE: the child closed its stdin or exited */
		up_end(e);
		return;
	}
	e->up.off += (unsigned)res;
	if (e->up.off < e->up.len)
		up_write(e);
	else
		up_recv(e);
}

/* ------------------------------------------------------------------------------------ */
/* child's stdout -> client                                                              */

static void down_read(struct exec_session *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_read(sqe, e->out_fd, e->down.buf, sizeof(e->down.buf), (uint64_t)-1);
	sp_op_submit(&e->down.rd, sqe);
}

static void down_send(struct exec_session *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, e->s.fd, e->down.buf + e->down.off, e->down.len - e->down.off,
			   MSG_NOSIGNAL);
	sp_op_submit(&e->down.wr, sqe);
}

static void on_down_rd(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, down.rd);

	if (settled(e, res))
		return;
	if (res <= 0) { /* the child's stdout ended: so does what the client receives */
		shutdown(e->s.fd, SHUT_WR);
		e->down.done = true;
		close_fd(&e->out_fd);
		exec_maybe_finish(e);
		return;
	}
	e->down.len = (unsigned)res;
	e->down.off = 0;
	down_send(e);
}

static void on_down_wr(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_session *e = sp_container_of(op, struct exec_session, down.wr);

	if (settled(e, res))
		return;
	if (res <= 0) { /* the client is gone: the child's next write gets EPIPE */
		e->down.done = true;
		close_fd(&e->out_fd);
		exec_client_gone(e); /* and its group SIGTERM, for one that does not write */
		exec_maybe_finish(e);
		return;
	}
	e->down.off += (unsigned)res;
	e->s.bytes_out += (unsigned)res;
	if (e->down.off < e->down.len)
		down_send(e);
	else
		down_read(e);
}

void exec_relay_start(struct exec_session *e)
{
	sp_op_init(&e->up.rd, &e->s.task, on_up_rd);
	sp_op_init(&e->up.wr, &e->s.task, on_up_wr);
	sp_op_init(&e->down.rd, &e->s.task, on_down_rd);
	sp_op_init(&e->down.wr, &e->s.task, on_down_wr);
	up_recv(e);
	down_read(e);
}
