/* SPDX-License-Identifier: MIT */
/* test_op.c - ops: completions with their result, reuse, cancellation (idle, local,
 * every op of a task, and from a task really stolen to another shard: plain, raced by
 * the op's completion and resubmission, raced by the task's release), linked
 * timeouts, release after the last completion. Reads wait on pipes. */
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

	/* a second local cancel (cancels from another ring: test_cancel_stolen_*) */
	run_on_shard(eng, 0, cancel_op, &T.ops[1]);
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


/*
 * Cancels from a task that was really stolen. T (stealable) submits a read of its pipe
 * on ring R; a pinned burner H on R holds R busy while T waits in R's run queue, so the
 * other shard O steals T (counted in the stats). On O, T cancels the read, which only
 * R's ring can do. Three endings:
 *  - plain: the read ends -ECANCELED;
 *  - stale: T also writes a byte first; a pinned task P on O holds O's pass (and so the
 *    cancel request) until T, back on R, got the byte and read again: the request that
 *    arrives at R afterwards must not cancel the new read (it gets the next byte);
 *  - freed: T writes, cancels and closes; its release frees it. P holds the request
 *    back until T is released or 300 ms passed: the release must wait for the cancel
 *    to be done with T (ASan: no use after free).
 * T is on the heap and freed by its release: what the test checks is kept in globals.
 */
enum { M_PLAIN, M_STALE, M_FREED };

struct stolen {
	struct sp_task task;
	struct sp_op rd;
	char buf[4];
	int pipefd[2];
	int runs, nres;
	unsigned ring; /* where the first read went */
};

struct holder {
	struct sp_task task;
	bool armed;
};

static struct stolen *ST;
static int st_mode;
static struct holder H, P;
static _Atomic int st_ring, st_res[4];
static _Atomic long st_first_run, st_ran_on_other, st_reads, st_resubmitted, st_released;
static _Atomic long p_started;

static void st_submit(struct stolen *t)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_read(sqe, t->pipefd[0], t->buf, 1, 0);
	sp_op_submit(&t->rd, sqe);
}

static void st_on_read(struct sp_op *op, int res, uint32_t flags)
{
	struct stolen *t = sp_container_of(op, struct stolen, rd);
	(void)flags;
	atomic_store(&st_res[t->nres++], res);
	atomic_fetch_add(&st_reads, 1);
	if (st_mode == M_STALE && t->nres == 1 && res == 1) {
		st_submit(t); /* again, on this ring: the cancel asked for the last one */
		atomic_store(&st_resubmitted, 1);
	} else if (st_mode != M_FREED) {
		sp_task_close(&t->task);
	}
}

static void st_release(struct sp_task *task)
{
	struct stolen *t = (struct stolen *)task;
	close(t->pipefd[0]);
	memset(t, 0x5a, sizeof(*t));
	free(t);
	atomic_store(&st_released, 1);
}

static void st_run(struct sp_task *task)
{
	struct stolen *t = (struct stolen *)task;
	unsigned here = sp_shard_index(sp_shard_current());

	if (t->runs++ == 0) {
		t->ring = here;
		atomic_store(&st_ring, (int)here);
		st_submit(t);
		atomic_store(&st_first_run, 1);
		return;
	}
	if (here == t->ring)
		return; /* not stolen: the test fails on st_ran_on_other */
	atomic_store(&st_ran_on_other, 1);
	ck_assert_ptr_eq(t->rd.shard, sp_engine_shard(eng, t->ring));
	if (st_mode != M_PLAIN)
		ck_assert_int_eq(write(t->pipefd[1], "x", 1), 1);
	ck_assert_int_eq(sp_op_cancel(&t->rd), 0);
	if (st_mode == M_FREED)
		sp_task_close(&t->task);
	if (st_mode != M_PLAIN) {
		P.armed = true;
		sp_task_wake(&P.task); /* runs next in this pass, before our SQEs go out */
	}
}

/* H: on R, keeps R's pass busy until T was stolen and (with P) T's run on O ended. */
static void h_run(struct sp_task *task)
{
	(void)task;
	if (!H.armed)
		return;
	H.armed = false;
	uint64_t end = sp_now_ns() + 3000 * 1000000ull;
	while (sp_now_ns() < end) {
		if (st_mode == M_PLAIN ? atomic_load(&st_ran_on_other) != 0
				       : atomic_load(&p_started) != 0)
			break;
		sleep_us(50);
	}
}

/* P: on O, holds O's pass (the cancel request is in O's SQ) until T is done on R. */
static void p_run(struct sp_task *task)
{
	(void)task;
	if (!P.armed)
		return;
	P.armed = false;
	atomic_store(&p_started, 1);
	uint64_t end = sp_now_ns() + (st_mode == M_STALE ? 3000 : 300) * 1000000ull;
	while (sp_now_ns() < end) {
		if (st_mode == M_STALE ? atomic_load(&st_resubmitted) != 0
				       : atomic_load(&st_released) != 0)
			break;
		sleep_us(50);
	}
	if (st_mode == M_STALE)
		sleep_us(2000); /* R's pass submits the new read before it reaps again */
}

static void spawn_st(void *arg)
{
	(void)arg;
	sp_task_spawn(eng, &ST->task, 0);
}

static void spawn_holder(void *arg)
{
	struct holder *h = arg;
	sp_task_init(&h->task, SP_PINNED, h == &H ? h_run : p_run, NULL);
	h->armed = false;
	sp_task_spawn(eng, &h->task, 0);
}

static void kick(void *arg)
{
	(void)arg;
	/* both land in this shard's queues: T in the stealable run queue, H in the local
	 * one; H runs first and a thief is woken for T */
	H.armed = true;
	sp_task_wake(&ST->task);
	sp_task_wake(&H.task);
}

static void run_stolen_cancel(int mode)
{
	int wfd;
	eng = start_engine(2, true);
	st_mode = mode;
	atomic_store(&p_started, 0);
	atomic_store(&st_first_run, 0);
	atomic_store(&st_ran_on_other, 0);
	atomic_store(&st_reads, 0);
	atomic_store(&st_resubmitted, 0);
	atomic_store(&st_released, 0);
	for (int i = 0; i < 4; i++)
		atomic_store(&st_res[i], 1000);
	ST = calloc(1, sizeof(*ST));
	ck_assert_int_eq(pipe(ST->pipefd), 0);
	wfd = ST->pipefd[1]; /* the release closes only the read end */
	sp_task_init(&ST->task, SP_STEALABLE, st_run, st_release);
	sp_op_init(&ST->rd, &ST->task, st_on_read);
	run_on_shard(eng, 0, spawn_st, NULL);
	ck_assert(wait_atomic(&st_first_run, 1, 5000));
	sleep_us(20000); /* T's first run is over */
	unsigned r = (unsigned)atomic_load(&st_ring), o = 1 - r;
	run_on_shard(eng, r, spawn_holder, &H);
	run_on_shard(eng, o, spawn_holder, &P);
	sleep_us(20000); /* the holders' first runs are over */
	run_on_shard(eng, r, kick, NULL);

	ck_assert_msg(wait_atomic(&st_ran_on_other, 1, 5000), "T was not stolen");
	switch (mode) {
	case M_PLAIN:
		ck_assert(wait_atomic(&st_released, 1, 5000));
		ck_assert_int_eq(atomic_load(&st_res[0]), -ECANCELED);
		break;
	case M_STALE:
		ck_assert(wait_atomic(&st_reads, 1, 5000));
		ck_assert_int_eq(atomic_load(&st_res[0]), 1); /* the byte came first */
		ck_assert(wait_atomic(&st_resubmitted, 1, 5000));
		sleep_us(50000); /* the late cancel request has been through R by now */
		ck_assert_int_eq(atomic_load(&st_reads), 1);
		ck_assert_int_eq(write(wfd, "y", 1), 1);
		ck_assert(wait_atomic(&st_released, 1, 5000));
		/* the new read got the second byte: the late request was not for it */
		ck_assert_int_eq(atomic_load(&st_res[1]), 1);
		break;
	default:
		ck_assert_msg(wait_atomic(&st_released, 1, 5000), "T not released");
		ck_assert_int_eq(atomic_load(&st_res[0]), 1);
		break;
	}
	struct sp_shard_stats st;
	stats_sum(eng, &st);
	ck_assert_uint_gt(st.steals, 0);
	stop_engine(eng);
	close(wfd);
}

START_TEST(test_cancel_stolen_plain)
{
	run_stolen_cancel(M_PLAIN);
}
END_TEST

START_TEST(test_cancel_stolen_stale)
{
	run_stolen_cancel(M_STALE);
}
END_TEST

START_TEST(test_cancel_stolen_freed)
{
	run_stolen_cancel(M_FREED);
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
	tcase_add_test(tc, test_cancel_stolen_plain);
	tcase_add_test(tc, test_cancel_stolen_stale);
	tcase_add_test(tc, test_cancel_stolen_freed);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
