/* SPDX-License-Identifier: MIT */
/* test_op.c - ops: completions with their result, reuse, cancellation (idle, local,
 * from another shard, every op of a task), linked timeouts, release after the last
 * completion. Reads wait on pipes that never get data. */
#include <errno.h>
#include <unistd.h>

#include "harness.h"

struct otask {
	struct sp_task task;
	struct sp_op ops[4];
	struct sp_op tmo;
	struct __kernel_timespec ts;
	char buf[4][16];
	int pipefd[2];
	_Atomic int res[4];
	_Atomic int tmo_res;
	_Atomic long completions, released;
};

static struct sp_engine *eng;

static void on_done(struct sp_op *op, int res, uint32_t flags)
{
	struct otask *t = (struct otask *)op->task;
	atomic_store(&t->res[op - t->ops], res);
	atomic_fetch_add(&t->completions, 1);
}

static void on_tmo(struct sp_op *op, int res, uint32_t flags)
{
	struct otask *t = (struct otask *)op->task;
	atomic_store(&t->tmo_res, res);
	atomic_fetch_add(&t->completions, 1);
}

static void on_release(struct sp_task *task)
{
	atomic_fetch_add(&((struct otask *)task)->released, 1);
}

static void otask_init(struct otask *t, enum sp_placement p)
{
	memset(t, 0, sizeof(*t));
	sp_task_init(&t->task, p, NULL, on_release);
	for (int i = 0; i < 4; i++) {
		sp_op_init(&t->ops[i], &t->task, on_done);
		atomic_store(&t->res[i], 1);
	}
	sp_op_init(&t->tmo, &t->task, on_tmo);
	ck_assert_int_eq(pipe(t->pipefd), 0);
	t->task.engine = eng;
}

static void submit_read(struct otask *t, int i)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_read(sqe, t->pipefd[0], t->buf[i], sizeof(t->buf[i]), 0);
	sp_op_submit(&t->ops[i], sqe);
}

static struct otask T;

static void start_reads(void *arg)
{
	(void)arg;
	sp_task_spawn(eng, &T.task, 0); /* pinned to this shard; run is NULL */
	for (int i = 0; i < 3; i++)
		submit_read(&T, i);
}

static void nop_and_idle_cancel(void *arg)
{
	(void)arg;
	ck_assert_int_eq(sp_op_cancel(&T.ops[3]), -ENOENT);
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_nop(sqe);
	sp_op_submit(&T.ops[3], sqe);
	ck_assert(sp_op_busy(&T.ops[3]));
}

static void cancel_first(void *arg)
{
	(void)arg;
	ck_assert_int_eq(sp_op_cancel(&T.ops[0]), 0);
}

static void close_task(void *arg)
{
	sp_task_close(arg);
}

static void cancel_op(void *arg)
{
	ck_assert_int_eq(sp_op_cancel(arg), 0);
}

START_TEST(test_cancel_local_remote_and_close)
{
	eng = start_engine(2, true);
	otask_init(&T, SP_PINNED);
	run_on_shard(eng, 0, start_reads, NULL);
	/* a NOP completes with 0; cancel of an idle op says -ENOENT */
	run_on_shard(eng, 0, nop_and_idle_cancel, NULL);
	ck_assert(wait_atomic(&T.completions, 1, 5000));
	ck_assert_int_eq(atomic_load(&T.res[3]), 0);
	ck_assert(!sp_op_busy(&T.ops[3]));

	/* local cancel: the callback runs once with -ECANCELED */
	run_on_shard(eng, 0, cancel_first, NULL);
	ck_assert(wait_atomic(&T.completions, 2, 5000));
	ck_assert_int_eq(atomic_load(&T.res[0]), -ECANCELED);
	ck_assert_int_eq(atomic_load(&T.res[1]), 1); /* the others still wait */

	/* remote cancel: asked from shard 1, the op lives in shard 0's ring */
	run_on_shard(eng, 1, cancel_op, &T.ops[1]);
	ck_assert(wait_atomic(&T.completions, 3, 5000));
	ck_assert_int_eq(atomic_load(&T.res[1]), -ECANCELED);

	/* close with one read still in flight: release only after its callback */
	ck_assert_int_eq(atomic_load(&T.released), 0);
	run_on_shard(eng, 0, close_task, &T.task);
	ck_assert(wait_atomic(&T.released, 1, 5000));
	ck_assert_int_eq(atomic_load(&T.res[2]), -ECANCELED);
	ck_assert_int_eq(atomic_load(&T.completions), 4);
	sleep_us(20000);
	ck_assert_int_eq(atomic_load(&T.released), 1);
	stop_engine(eng);
	close(T.pipefd[0]);
	close(T.pipefd[1]);
}
END_TEST

static void linked_timeout(void *arg)
{
	(void)arg;
	sp_task_spawn(eng, &T.task, 0);
	T.ts.tv_sec = 0;
	T.ts.tv_nsec = 20 * 1000000; /* 20 ms */
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_read(sqe, T.pipefd[0], T.buf[0], sizeof(T.buf[0]), 0);
	sp_op_submit_timeout(&T.ops[0], sqe, &T.tmo, &T.ts);
}

START_TEST(test_linked_timeout)
{
	eng = start_engine(1, true);
	otask_init(&T, SP_PINNED);
	uint64_t t0 = sp_now_ns();
	run_on_shard(eng, 0, linked_timeout, NULL);
	ck_assert(wait_atomic(&T.completions, 2, 5000));
	ck_assert_uint_ge(sp_now_ns() - t0, 15 * 1000000ull);
	ck_assert_int_eq(atomic_load(&T.res[0]), -ECANCELED);
	ck_assert_int_eq(atomic_load(&T.tmo_res), -ETIME);
	stop_engine(eng);
	close(T.pipefd[0]);
	close(T.pipefd[1]);
}
END_TEST

/* A stealable task cancels all its ops, some of which sit in another shard's ring. */
static struct otask S;

static void s_spawn(void *arg)
{
	(void)arg;
	sp_task_spawn(eng, &S.task, 0);
	submit_read(&S, 0);
	submit_read(&S, 1);
}

static void s_submit_more(void *arg)
{
	(void)arg;
	/* this shard's ring gets ops 2 and 3 of the same task (submission-time steering) */
	submit_read(&S, 2);
	submit_read(&S, 3);
}

static void s_cancel_all(void *arg)
{
	(void)arg;
	sp_task_cancel_all(&S.task);
}

START_TEST(test_cancel_all_across_rings)
{
	eng = start_engine(2, true);
	otask_init(&S, SP_STEALABLE);
	run_on_shard(eng, 0, s_spawn, NULL);
	run_on_shard(eng, 1, s_submit_more, NULL);
	run_on_shard(eng, 1, s_cancel_all, NULL);
	ck_assert(wait_atomic(&S.completions, 4, 5000));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(atomic_load(&S.res[i]), -ECANCELED);
	run_on_shard(eng, 0, close_task, &S.task);
	ck_assert(wait_atomic(&S.released, 1, 5000));
	stop_engine(eng);
	close(S.pipefd[0]);
	close(S.pipefd[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("op");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cancel_local_remote_and_close);
	tcase_add_test(tc, test_linked_timeout);
	tcase_add_test(tc, test_cancel_all_across_rings);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
