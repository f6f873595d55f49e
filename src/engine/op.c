/* SPDX-License-Identifier: MIT */
/*
 * op.c - ops: submission on the current shard's ring, completion dispatch, cancel.
 *
 * An op's user_data is its address (tag SP_TAG_OP). A completion runs the callback at
 * once for shard-owned ops and pinned tasks (their ring is their shard's). For a
 * stealable task it is pushed on the task's inbox and the task is scheduled on the
 * shard that reaped it; the callback runs in the task's next run, wherever that is.
 */
#include <assert.h>
#include <errno.h>

#include "engine/shard.h"

void sp_op_init(struct sp_op *op, struct sp_task *task, sp_op_fn fn)
{
	op->fn = fn;
	op->task = task;
	op->shard = NULL;
	atomic_init(&op->inbox_next, NULL);
	op->live_prev = op->live_next = NULL;
	op->res = 0;
	op->cqe_flags = 0;
	op->state = SP_OP_IDLE;
	op->kind = SP_KIND_IO;
	atomic_init(&op->handoff, 0);
}

void sp_live_add(struct sp_task *t, struct sp_op *op)
{
	struct sp_op *head = &t->live;
	op->live_next = head->live_next;
	op->live_prev = head;
	head->live_next->live_prev = op;
	head->live_next = op;
	t->inflight++;
}

void sp_live_del(struct sp_op *op)
{
	struct sp_task *t = op->task;
	op->live_prev->live_next = op->live_next;
	op->live_next->live_prev = op->live_prev;
	op->live_prev = op->live_next = NULL;
	t->inflight--;
}

struct io_uring_sqe *sp_sqe(void)
{
	struct sp_shard *sh = sp_tls_shard;
	assert(sh && "sp_sqe called off the shards");
	return sp_shard_sqe(sh);
}

struct io_uring_sqe *sp_sqes(unsigned n)
{
	struct sp_shard *sh = sp_tls_shard;
	assert(sh && "sp_sqes called off the shards");
	return sp_shard_sqes(sh, n);
}

void sp_op_submit(struct sp_op *op, struct io_uring_sqe *sqe)
{
	struct sp_shard *sh = sp_tls_shard;

	assert(op->state == SP_OP_IDLE);
	assert(!op->task || !op->task->closing);
	op->shard = sh;
	op->state = SP_OP_INFLIGHT;
	if (op->task)
		sp_live_add(op->task, op);
	io_uring_sqe_set_data64(sqe, sp_ud(op, SP_TAG_OP));
	st_add(sh, ST_OPS_INFLIGHT, 1);
	if (atomic_load_explicit(&sh->eng->stopping, memory_order_relaxed))
		sh->cancel_again = true;
}

void sp_op_poll(struct sp_op *op, int fd, unsigned events)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_poll_add(sqe, fd, events);
	sp_op_submit(op, sqe);
}

void sp_op_submit_timeout(struct sp_op *op, struct io_uring_sqe *sqe, struct sp_op *tmo,
			  struct __kernel_timespec *ts)
{
	/* the head took its slot from sp_sqes(2): the timeout's is free, no submit between */
	assert(io_uring_sq_space_left(&sp_tls_shard->ring) > 0);
	sqe->flags |= IOSQE_IO_LINK;
	sp_op_submit(op, sqe);
	struct io_uring_sqe *tsqe = sp_sqe();
	io_uring_prep_link_timeout(tsqe, ts, 0);
	sp_op_submit(tmo, tsqe);
}

void sp_op_cancel_local(struct sp_shard *sh, struct sp_op *op)
{
	struct io_uring_sqe *sqe = sp_shard_sqe(sh);
	io_uring_prep_cancel64(sqe, sp_ud(op, SP_TAG_OP), 0);
	sqe->user_data = sp_ud(NULL, SP_TAG_IGNORE);
}

int sp_op_cancel(struct sp_op *op)
{
	struct sp_shard *sh = sp_tls_shard;

	if (op->state == SP_OP_IDLE)
		return -ENOENT;
	if (op->kind == SP_KIND_TIMER)
		return sp_timer_cancel((struct sp_timer *)op);
	if (op->kind == SP_KIND_JOB)
		return -EINPROGRESS; /* a helper is running it; the result will come */
	/* The state belongs to whoever completes the op: the task's context for a
	 * stealable task (that is us), else the shard of the ring it is in flight on. */
	if (op->shard == sh || (op->task && op->task->placement == SP_STEALABLE))
		op->state = SP_OP_CANCELLING;
	if (op->shard == sh) {
		sp_op_cancel_local(sh, op);
	} else { /* only that ring can cancel it: ask its shard */
		atomic_store_explicit(&op->handoff, 1, memory_order_release);
		sp_ring_msg(op->shard, sp_ud(op, SP_TAG_CANCEL), 0, sp_ud(NULL, SP_TAG_IGNORE));
	}
	return 0;
}

/* The op's final completion, in its owner's context. */
static void finish(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_task *t = op->task;

	op->state = SP_OP_IDLE;
	if (t)
		sp_live_del(op);
	if (op->fn)
		op->fn(op, res, flags);
	if (t)
		sp_task_op_done(t);
}

static void inbox_push(struct sp_task *t, struct sp_op *op)
{
	struct sp_op *head = atomic_load_explicit(&t->inbox, memory_order_relaxed);
	do
		atomic_store_explicit(&op->inbox_next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&t->inbox, &head, op, memory_order_release,
						      memory_order_relaxed));
}

void sp_op_complete(struct sp_shard *sh, struct sp_op *op, int res, uint32_t flags)
{
	struct sp_task *t = op->task;
	(void)sh;

	if (op->kind == SP_KIND_JOB) {
		struct sp_job *job = (struct sp_job *)op;
		/* acquire: the helper's writes to the job happened before */
		res = atomic_load_explicit(&job->result, memory_order_acquire);
	}
	if (!t || t->placement != SP_STEALABLE) {
		if (flags & IORING_CQE_F_MORE) { /* multishot: stays in flight */
			if (op->fn)
				op->fn(op, res, flags);
			return;
		}
		finish(op, res, flags);
		return;
	}
	op->res = res;
	op->cqe_flags = flags;
	inbox_push(t, op);
	sp_task_schedule(t);
}

void sp_op_deliver(struct sp_op *op, int res)
{
	struct sp_task *t = op->task;

	if (t && t->placement == SP_STEALABLE) {
		op->res = res;
		op->cqe_flags = 0;
		inbox_push(t, op);
		sp_task_schedule(t);
	} else if (op->kind == SP_KIND_TIMER) {
		sp_timer_deliver((struct sp_timer *)op, res);
	} else {
		finish(op, res, 0);
	}
}

/* Run the completions queued for a stealable task, oldest first (task context). */
void sp_task_drain_inbox(struct sp_task *t)
{
	struct sp_op *list = atomic_exchange_explicit(&t->inbox, NULL, memory_order_acquire);
	struct sp_op *rev = NULL;

	while (list) { /* the inbox is a stack: reverse it for FIFO */
		struct sp_op *next = atomic_load_explicit(&list->inbox_next, memory_order_relaxed);
		atomic_store_explicit(&list->inbox_next, rev, memory_order_relaxed);
		rev = list;
		list = next;
	}
	while (rev) {
		struct sp_op *op = rev;
		rev = atomic_load_explicit(&op->inbox_next, memory_order_relaxed);
		if (op->kind == SP_KIND_TIMER)
			sp_timer_deliver((struct sp_timer *)op, op->res);
		else
			finish(op, op->res, op->cqe_flags);
	}
}
