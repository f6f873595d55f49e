/* SPDX-License-Identifier: MIT */
/* test_engine.c - lifecycle: create/stop/destroy cycles, shutdown with work still
 * queued (every callback runs, every task released, bounded time), the on_stop hook,
 * feature fallbacks, counters, and that no fd is left behind. */
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "harness.h"

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

START_TEST(test_create_destroy_cycles)
{
	int fds = count_fds();
	for (long i = 0; i < scaled(50) + 1; i++) {
		struct sp_engine *eng = start_engine((unsigned)(i % 4) + 1, i % 2);
		ck_assert_uint_eq(sp_engine_nshards(eng), (unsigned)(i % 4) + 1);
		ck_assert(sp_engine_features(eng) & SP_FEAT_SINGLE_ISSUER ||
			  sp_engine_features(eng) & SP_FEAT_COOP_TASKRUN ||
			  sp_engine_features(eng) == 0);
		ck_assert(sp_engine_op_supported(eng, IORING_OP_MSG_RING));
		stop_engine(eng);
	}
	ck_assert_int_eq(count_fds(), fds); /* every ring and eventfd closed */
}
END_TEST

/* Work in every state when stop comes. */
struct wtask {
	struct sp_task task;
	struct sp_op read_op;
	struct sp_timer timer;
	struct sp_msg msg;
	char buf[8];
	_Atomic long read_cb, timer_cb, released;
	int read_res, timer_res;
};

static struct sp_engine *eng;
static struct wtask *wt;
static long nwt;
static int pipefd[2];
static _Atomic long stop_hooks, msgs_run;

static void on_read(struct sp_op *op, int res, uint32_t flags)
{
	struct wtask *t = sp_container_of(op, struct wtask, read_op);
	t->read_res = res;
	atomic_fetch_add(&t->read_cb, 1);
	sp_task_close(&t->task);
}

static void on_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct wtask *t = sp_container_of(op, struct wtask, timer.op);
	t->timer_res = res;
	atomic_fetch_add(&t->timer_cb, 1);
}

static void on_release(struct sp_task *task)
{
	atomic_fetch_add(&((struct wtask *)task)->released, 1);
}

static void wt_run(struct sp_task *task)
{
	struct wtask *t = (struct wtask *)task;
	if (t->task.closing || sp_op_busy(&t->read_op))
		return;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_read(sqe, pipefd[0], t->buf, sizeof(t->buf), 0);
	sp_op_submit(&t->read_op, sqe);
	sp_timer_after(&t->timer, 3600ull * 1000000000ull); /* an hour away */
}

static void on_msg(struct sp_msg *m)
{
	atomic_fetch_add(&msgs_run, 1);
}

static void spawn_all(void *arg)
{
	(void)arg;
	for (long i = 0; i < nwt; i++) {
		struct wtask *t = &wt[i];
		sp_task_init(&t->task, i % 2 ? SP_STEALABLE : SP_ROUND_ROBIN, wt_run, on_release);
		sp_op_init(&t->read_op, &t->task, on_read);
		sp_timer_init(&t->timer, &t->task, on_timer);
		sp_task_spawn(eng, &t->task, 0);
	}
}

static void on_stop(struct sp_shard *sh, void *arg)
{
	atomic_fetch_add(&stop_hooks, 1);
}

START_TEST(test_shutdown_with_work_queued)
{
	int fds = count_fds();
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = 2;
	cfg.on_stop = on_stop;
	sp_log_set_level(SP_LOG_WARN);
	ck_assert_int_eq(sp_engine_create(&cfg, &eng), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	nwt = scaled(4000);
	wt = calloc((size_t)nwt, sizeof(*wt));
	run_on_shard(eng, 0, spawn_all, NULL);
	/* and messages still queued when stop comes */
	for (long i = 0; i < nwt; i++)
		sp_msg_post(sp_engine_shard(eng, (unsigned)i % 2), &wt[i].msg, on_msg);

	/* wait until most reads are in flight, so stop has to cancel them */
	uint64_t inflight = 0;
	for (int k = 0; k < 5000 && inflight < (uint64_t)nwt / 2; k++) {
		inflight = 0;
		for (unsigned i = 0; i < 2; i++) {
			struct sp_shard_stats st;
			sp_shard_stats_read(sp_engine_shard(eng, i), &st);
			inflight += st.ops_inflight;
		}
		sleep_us(1000);
	}
	ck_assert_uint_ge(inflight, (uint64_t)nwt / 2);

	uint64_t t0 = sp_now_ns();
	sp_engine_stop(eng);
	sp_engine_join(eng);
	ck_assert_uint_lt(sp_now_ns() - t0, 10ull * 1000000000ull);
	ck_assert_int_eq(atomic_load(&stop_hooks), 2);
	ck_assert_int_eq(atomic_load(&msgs_run), nwt);
	long cancelled = 0;
	for (long i = 0; i < nwt; i++) {
		struct wtask *t = &wt[i];
		cancelled += atomic_load(&t->read_cb);
		/* a task that had not run yet when stop came has nothing in flight */
		if (atomic_load(&t->read_cb)) {
			ck_assert_int_eq(atomic_load(&t->read_cb), 1);
			ck_assert_int_eq(t->read_res, -ECANCELED);
			ck_assert_int_eq(atomic_load(&t->timer_cb), 1);
			ck_assert_int_eq(t->timer_res, -ECANCELED);
			ck_assert_int_eq(atomic_load(&t->released), 1);
		}
		ck_assert(!sp_op_busy(&t->read_op));
		ck_assert(!sp_timer_armed(&t->timer));
	}
	ck_assert_int_ge(cancelled, nwt / 2);
	for (unsigned i = 0; i < 2; i++) {
		struct sp_shard_stats st;
		sp_shard_stats_read(sp_engine_shard(eng, i), &st);
		ck_assert_uint_eq(st.ops_inflight, 0);
		ck_assert_uint_eq(st.timers_armed, 0);
		ck_assert_uint_gt(st.cqes, 0);
		ck_assert_uint_gt(st.tasks_run, 0);
	}
	sp_engine_destroy(eng);
	close(pipefd[0]);
	close(pipefd[1]);
	ck_assert_int_eq(count_fds(), fds);
	free(wt);
}
END_TEST

static _Atomic long nop_done;

static void on_nop(struct sp_op *op, int res, uint32_t flags)
{
	ck_assert_int_eq(res, 0);
	atomic_fetch_add(&nop_done, 1);
}

static struct sp_op nop_op;

static void submit_nop(void *arg)
{
	(void)arg;
	sp_op_init(&nop_op, NULL, on_nop);
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_nop(sqe);
	sp_op_submit(&nop_op, sqe);
}

START_TEST(test_fallbacks)
{
	static const unsigned masks[] = {
		SP_FEAT_DEFER_TASKRUN,
		SP_FEAT_DEFER_TASKRUN | SP_FEAT_SINGLE_ISSUER,
		SP_FEAT_DEFER_TASKRUN | SP_FEAT_SINGLE_ISSUER | SP_FEAT_COOP_TASKRUN,
		SP_FEAT_REG_RING_FD | SP_FEAT_CQE_SKIP | SP_FEAT_BUF_RING,
	};
	for (unsigned i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		struct sp_engine_config cfg;
		sp_engine_config_defaults(&cfg);
		cfg.shards = 2;
		cfg.disable = masks[i];
		cfg.buf_count = 16;
		ck_assert_int_eq(sp_engine_create(&cfg, &eng), 0);
		ck_assert_uint_eq(sp_engine_features(eng) & masks[i], 0);
		atomic_store(&nop_done, 0);
		run_on_shard(eng, 1, submit_nop, NULL);
		ck_assert(wait_atomic(&nop_done, 1, 5000));
		stop_engine(eng);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_create_destroy_cycles);
	tcase_add_test(tc, test_shutdown_with_work_queued);
	tcase_add_test(tc, test_fallbacks);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
