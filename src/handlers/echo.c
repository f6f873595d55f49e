/* SPDX-License-Identifier: MIT */
/*
 * echo.c - the `echo` handler: every byte received is sent back. Tests and demos use it.
 * One buffer per session, not the shard's provided buffers: a stealable session may
 * move between shards while it holds data, and a provided buffer must go back to the
 * ring of the shard that lent it. One send is in flight at a time (a short write is
 * resumed before the next receive), so bytes never reorder.
 */
#include <errno.h>
#include <sys/socket.h>

#include "pipeline/pipeline.h"

struct echo {
	struct sp_session s;
	struct sp_op recv_op, send_op;
	unsigned len, off;
	char buf[16384];
};

static void echo_recv(struct echo *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, e->s.fd, e->buf, sizeof(e->buf), 0);
	sp_op_submit(&e->recv_op, sqe);
}

static void echo_send_rest(struct echo *e)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, e->s.fd, e->buf + e->off,
			   e->len - e->off, MSG_NOSIGNAL);
	sp_op_submit(&e->send_op, sqe);
}

static void on_send(struct sp_op *op, int res, uint32_t flags)
{
	struct echo *e = sp_container_of(op, struct echo, send_op);

	if (res <= 0) {
		sp_session_close(&e->s, res == -ECANCELED ? "stopped" : "send error");
		return;
	}
	e->off += (unsigned)res;
	e->s.bytes_out += (unsigned)res;
	if (e->off < e->len) {
		echo_send_rest(e);
		return;
	}
	echo_recv(e);
}

static void on_recv(struct sp_op *op, int res, uint32_t flags)
{
	struct echo *e = sp_container_of(op, struct echo, recv_op);

	if (res <= 0) {
		sp_session_close(&e->s, res == 0 ? NULL : res == -ECANCELED ? "stopped" : "recv error");
		return;
	}
	e->len = (unsigned)res;
	e->off = 0;
	e->s.bytes_in += (unsigned)res;
	echo_send_rest(e);
}

static void echo_start(struct sp_session *s)
{
	struct echo *e = (struct echo *)s;
	sp_op_init(&e->recv_op, &s->task, on_recv);
	sp_op_init(&e->send_op, &s->task, on_send);
	echo_recv(e);
}

const struct sp_stage_ops sp_echo_ops = {
	.kind = SP_STAGE_ECHO,
	.session_size = sizeof(struct echo),
	.start = echo_start,
};
