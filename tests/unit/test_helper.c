/* SPDX-License-Identifier: MIT */
/* test_helper.c - the helper pool: every job's result comes back once, on the shard that
 * submitted it, as the completion of its op; a blocking job does not block the shard. */
#include <errno.h>

#include "harness.h"

struct tjob {
	struct sp_job job;
	long input;
	unsigned shard;
	_Atomic int done;
};

static struct sp_engine *eng;
static struct tjob *jobs;
static long njobs;
static _Atomic long completed, wrong;

static int square(struct sp_job *job)
{
	struct tjob *j = (struct tjob *)job;
	return (int)((j->input * j->input) % 100003);
}

static void on_job(struct sp_op *op, int res, uint32_t flags)
{
	struct tjob *j = sp_container_of(op, struct tjob, job.op);
	if (res != (int)((j->input * j->input) % 100003) ||
	    sp_shard_index(sp_shard_current()) != j->shard)
		atomic_fetch_add(&wrong, 1);
	if (atomic_fetch_add(&j->done, 1))
		atomic_fetch_add(&wrong, 1);
	atomic_fetch_add(&completed, 1);
}

static void submit_half(void *arg)
{
	long from = (long)(uintptr_t)arg;
	unsigned me = sp_shard_index(sp_shard_current());
	for (long i = from; i < njobs; i += 2) {
		jobs[i].input = i;
		jobs[i].shard = me;
		sp_op_init(&jobs[i].job.op, NULL, on_job);
		jobs[i].job.work = square;
		sp_job_submit(&jobs[i].job);
	}
}

START_TEST(test_results_once_on_origin)
{
	eng = start_engine(2, true);
	njobs = scaled(20000);
	jobs = calloc((size_t)njobs, sizeof(*jobs));
	run_on_shard(eng, 0, submit_half, (void *)0);
	run_on_shard(eng, 1, submit_half, (void *)1);
	ck_assert(wait_atomic(&completed, njobs, 60000));
	ck_assert_int_eq(atomic_load(&wrong), 0);
	struct sp_shard_stats a, b;
	sp_shard_stats_read(sp_engine_shard(eng, 0), &a);
	sp_shard_stats_read(sp_engine_shard(eng, 1), &b);
	ck_assert_uint_eq(a.jobs + b.jobs, (uint64_t)njobs);
	stop_engine(eng);
	free(jobs);
}
END_TEST

/* A job sleeps 300 ms; a 20 ms timer on the same shard still fires on time. */
static struct sp_job slow;
static struct sp_timer quick;
static _Atomic long slow_done, quick_done;
static uint64_t t0;
static _Atomic uint64_t quick_at;

static int sleepy(struct sp_job *job)
{
	sleep_us(300000);
	return 7;
}

static void on_slow(struct sp_op *op, int res, uint32_t flags)
{
	ck_assert_int_eq(res, 7);
	atomic_store(&slow_done, 1);
}

static void on_quick(struct sp_op *op, int res, uint32_t flags)
{
	atomic_store(&quick_at, sp_now_ns());
	atomic_store(&quick_done, 1);
}

static void start_slow(void *arg)
{
	(void)arg;
	sp_op_init(&slow.op, NULL, on_slow);
	slow.work = sleepy;
	sp_job_submit(&slow);
	sp_timer_init(&quick, NULL, on_quick);
	t0 = sp_now_ns();
	sp_timer_after(&quick, 20 * 1000000ull);
}

START_TEST(test_blocking_job_does_not_block_shard)
{
	eng = start_engine(1, true);
	run_on_shard(eng, 0, start_slow, NULL);
	ck_assert(wait_atomic(&quick_done, 1, 5000));
	ck_assert_int_eq(atomic_load(&slow_done), 0);
	ck_assert_uint_lt(atomic_load(&quick_at) - t0, 200 * 1000000ull);
	ck_assert(wait_atomic(&slow_done, 1, 5000));
	stop_engine(eng);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("helper");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_results_once_on_origin);
	tcase_add_test(tc, test_blocking_job_does_not_block_shard);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
