/* SPDX-License-Identifier: MIT */
/*
 * op.c - ops: submission on the current shard's ring, completion dispatch, cancel.
 *
 * An op's user_data is its address (tag SP_TAG_OP) and the generation of the submission
 * (so a cancel names one submission, never a later one). A completion runs the callback at
 * once for shard-owned ops and pinned tasks (their ring is their shard's). For a
 * stealable task it is pushed on the task's inbox and the task is scheduled on the
 * shard that reaped it; the callback runs in the task's next run, wherever that is.
 */
#include <errno.h>
#include <string.h>

#include "engine/log.h"
#include "engine/shard.h"

void sp_op_init(struct sp_op *op, struct sp_task *task, sp_op_fn fn)
{
	op->fn = fn;
	/* atomic: a ring answering a late cancel request reads `task` (a re-init of an
	 * idle op writes the same value) */
	__atomic_store_n(&op->task, task, __ATOMIC_RELAXED);
	op->shard = NULL;
	atomic_store_explicit(&op->inbox_next, NULL, memory_order_relaxed);
	op->live_prev = op->live_next = NULL;
	op->res = 0;
	op->cqe_flags = 0;
	op->state = SP_OP_IDLE;
	op->kind = SP_KIND_IO;
	atomic_store_explicit(&op->handoff, 0, memory_order_relaxed);
	op->gen = 0;
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
	SP_BUG_ON(!op->live_next || !t->inflight);
	op->live_prev->live_next = op->live_next;
	op->live_next->live_prev = op->live_prev;
	op->live_prev = op->live_next = NULL;
	t->inflight--;
}

struct io_uring_sqe *sp_sqe(void)
{
	struct sp_shard *sh = sp_tls_shard;
	SP_BUG_ON(!sh); /* sp_sqe called off the shards */
	return sp_shard_sqe(sh);
}

struct io_uring_sqe *sp_sqes(unsigned n)
{
	struct sp_shard *sh = sp_tls_shard;
	SP_BUG_ON(!sh); /* sp_sqes called off the shards */
	return sp_shard_sqes(sh, n);
}

void sp_op_submit(struct sp_op *op, struct io_uring_sqe *sqe)
{
	struct sp_shard *sh = sp_tls_shard;
	struct sp_task *t = op->task;

	SP_BUG_ON(!sh);
	SP_BUG_ON(op->state != SP_OP_IDLE);
	SP_BUG_ON(t && t->closing);
	SP_BUG_ON((uintptr_t)op & ~SP_UD_PTR_MASK); /* 8-aligned, below 2^48: see sp_op_ud */
	/* A generation per task (per shard for shard-owned ops), not per op: re-binding an
	 * op with sp_op_init cannot bring an old generation back. */
	op->gen = t ? ++t->gen : ++sh->gen;
	op->shard = sh;
	op->state = SP_OP_INFLIGHT;
	if (t)
		sp_live_add(t, op);
	io_uring_sqe_set_data64(sqe, sp_op_ud(op, SP_TAG_OP));
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
	SP_BUG_ON(io_uring_sq_space_left(&sp_tls_shard->ring) == 0);
	sqe->flags |= IOSQE_IO_LINK;
	sp_op_submit(op, sqe);
	struct io_uring_sqe *tsqe = sp_sqe();
	io_uring_prep_link_timeout(tsqe, ts, 0);
	sp_op_submit(tmo, tsqe);
}

void sp_op_cancel_ud(struct sp_shard *sh, uint64_t ud, struct sp_task *t)
{
	struct io_uring_sqe *sqe = sp_shard_sqe(sh);
	io_uring_prep_cancel64(sqe, ud, 0);
	if (t) {
		sqe->user_data = sp_ud(t, SP_TAG_CANCEL_ACK);
		sh->cancels_inflight++;
	} else {
		sqe->user_data = sp_ud(NULL, SP_TAG_IGNORE);
	}
}

/*
 * Why a stale cancel cannot hit a later submission: the ASYNC_CANCEL matches the
 * user_data of one submission (address + generation), and generations only grow
 * within a task (16 bits: they wrap after 65536 submissions, far more than a task
 * makes in the pass or two a cancel request is on its way). Why no ring touches freed memory: the task counts the cancel in its
 * state word before the request leaves, and is not released until the ring that ran
 * the ASYNC_CANCEL saw its CQE and acknowledged (sp_task_cancel_done); the op belongs
 * to the task (sp_op_init). A request that could not be sent comes back to the sender
 * (SP_TAG_CANCEL_LOST): acknowledged as lost, the task asks again in its next run.
 */
int sp_op_cancel(struct sp_op *op)
{
	struct sp_shard *sh = sp_tls_shard;
	struct sp_task *t = op->task;

	SP_BUG_ON(!sh);
	if (op->state == SP_OP_IDLE)
		return -ENOENT;
	if (op->kind == SP_KIND_TIMER)
		return sp_timer_cancel((struct sp_timer *)op);
	if (op->kind == SP_KIND_JOB)
		return -EINPROGRESS; /* a helper is running it; the result will come */
	/* Owner context: a pinned task's or shard-owned op is in flight on our ring; only
	 * a stealable task's may be on another. */
	SP_BUG_ON(op->shard != sh && (!t || t->placement != SP_STEALABLE));
	op->state = SP_OP_CANCELLING;
	if (t) {
		uint32_t old = atomic_fetch_add_explicit(&t->state, SP_TS_CANCEL_ONE,
							 memory_order_relaxed);
		SP_BUG_ON((old & SP_TS_CANCEL_MASK) == SP_TS_CANCEL_MASK);
	}
	if (op->shard == sh) {
		sp_op_cancel_ud(sh, sp_op_ud(op, SP_TAG_OP), t);
		return 0;
	}
	/* Only that ring can cancel it. release: with the acquire on the other side, the
	 * count above and op->task happen before the ring reads them (the kernel orders
	 * it too, invisibly to TSan). Counted as a message for the shutdown census. */
	atomic_store_explicit(&op->handoff, 1, memory_order_release);
	st_add(sh, ST_MSGS_SENT, 1);
	sp_ring_msg(op->shard, sp_op_ud(op, SP_TAG_CANCEL), 0, sp_ud(t, SP_TAG_CANCEL_LOST));
	/* Out now, while the task still runs here: it cannot run on the target ring before
	 * the request is there, so that ring runs at most a pass or two of the task's
	 * submissions before it reads the request (generations are 16 bits). */
	int ret = io_uring_submit(&sh->ring);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		sp_log(SP_LOG_ERR, "shard %u: submit: %s", sh->idx, strerror(-ret));
	st_add(sh, ST_SUBMITS, 1);
	sh->pending_sqes = 0;
	return 0;
}

/* The op's final completion, in its owner's context. */
static void finish(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_task *t = op->task;

	SP_BUG_ON(op->state == SP_OP_IDLE);
	op->state = SP_OP_IDLE;
	if (t)
		sp_live_del(op);
	if (op->fn)
		op->fn(op, res, flags);
	if (t)
		sp_task_op_done(t);
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
	sp_task_deliver(t, op);
}

void sp_op_deliver(struct sp_op *op, int res)
{
	struct sp_task *t = op->task;

	if (t && t->placement == SP_STEALABLE) {
		op->res = res;
		op->cqe_flags = 0;
		sp_task_deliver(t, op);
	} else if (op->kind == SP_KIND_TIMER) {
		sp_timer_deliver((struct sp_timer *)op, res);
	} else {
		finish(op, res, 0);
	}
}

/* Run the completions queued for a stealable task, oldest first (task context). */
void sp_task_drain_inbox(struct sp_task *t)
{
	/* acquire: pairs with the release push in sp_task_deliver (op->res and flags) */
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
