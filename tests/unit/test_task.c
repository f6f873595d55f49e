/* SPDX-License-Identifier: MIT */
/*
 * test_task.c - tasks.
 *  - stealable: 20k tasks of 20 NOP steps each, spawned on one shard with CPU work in
 *    every step; no task's callbacks run on two shards at once, every step runs once,
 *    release once, and idle shards steal (steals == stolen > 0); steal off: none.
 *  - pinned: spawned on every shard, every run and callback stays on its shard.
 *  - round_robin spreads evenly; sticky with the same key lands on the same shard.
 *  - sp_task_wake from a foreign thread coalesces, runs after the last wake, never
 *    concurrently.
 */
#include "harness.h"

struct ttask {
	struct sp_task task;
	struct sp_op op;
	_Atomic int running;
	long steps, want_steps;
	unsigned home;          /* pinned: the shard it must stay on */
	_Atomic int released;
	_Atomic long runs;
};

static struct sp_engine *eng;
static _Atomic long finished, violations, released_total;

static void enter_task(struct ttask *t)
{
	if (atomic_exchange(&t->running, 1))
		atomic_fetch_add(&violations, 1); /* two shards at once */
	if (sp_task_shard(&t->task) != sp_shard_current())
		atomic_fetch_add(&violations, 1);
	if (t->task.placement != SP_STEALABLE &&
	    sp_shard_index(sp_shard_current()) != t->home)
		atomic_fetch_add(&violations, 1); /* a pinned task moved */
}

static void leave_task(struct ttask *t)
{
	atomic_store(&t->running, 0);
}

static void submit_nop(struct ttask *t)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_nop(sqe);
	sp_op_submit(&t->op, sqe);
}

static void on_step(struct sp_op *op, int res, uint32_t flags)
{
	struct ttask *t = sp_container_of(op, struct ttask, op);
	enter_task(t);
	ck_assert_int_eq(res, 0);
	busy_work(3000);
	if (++t->steps < t->want_steps) {
		submit_nop(t);
	} else {
		atomic_fetch_add(&finished, 1);
		sp_task_close(&t->task);
	}
	leave_task(t);
}

static void on_run(struct sp_task *task)
{
	struct ttask *t = (struct ttask *)task;
	enter_task(t);
	atomic_fetch_add(&t->runs, 1);
	if (!sp_op_busy(&t->op) && !t->task.closing)
		submit_nop(t);
	leave_task(t);
}

static void on_release(struct sp_task *task)
{
	struct ttask *t = (struct ttask *)task;
	if (atomic_fetch_add(&t->released, 1))
		atomic_fetch_add(&violations, 1);
	atomic_fetch_add(&released_total, 1);
}

static struct ttask *tasks;
static long ntasks;
static enum sp_placement placement;

/* Spawn tasks [from, ntasks) in steps of `step` on the calling shard. */
struct range {
	long from, step;
};

static void spawn_batch(void *arg)
{
	struct range all = { 0, 1 }, *r = arg ? arg : &all;
	for (long i = r->from; i < ntasks; i += r->step) {
		struct ttask *t = &tasks[i];
		sp_task_init(&t->task, placement, on_run, on_release);
		sp_op_init(&t->op, &t->task, on_step);
		t->want_steps = 20;
		t->home = sp_shard_index(sp_shard_current());
		sp_task_spawn(eng, &t->task, (uint64_t)i);
	}
}

static void reset(long n, enum sp_placement p)
{
	ntasks = n;
	placement = p;
	tasks = calloc((size_t)n, sizeof(*tasks));
	atomic_store(&finished, 0);
	atomic_store(&violations, 0);
	atomic_store(&released_total, 0);
}

static uint64_t total_steals(void)
{
	uint64_t steals = 0, stolen = 0;
	for (unsigned i = 0; i < sp_engine_nshards(eng); i++) {
		struct sp_shard_stats st;
		sp_shard_stats_read(sp_engine_shard(eng, i), &st);
		steals += st.steals;
		stolen += st.stolen;
	}
	ck_assert_uint_eq(steals, stolen); /* every steal was suffered by someone */
	return steals;
}

static void run_batch(unsigned shards, bool steal, long n, enum sp_placement p)
{
	eng = start_engine(shards, steal);
	reset(n, p);
	run_on_shard(eng, 0, spawn_batch, NULL);
	ck_assert_msg(wait_atomic(&released_total, ntasks, 120000), "released %ld of %ld",
		      atomic_load(&released_total), ntasks);
	ck_assert_int_eq(atomic_load(&finished), ntasks);
	ck_assert_int_eq(atomic_load(&violations), 0);
	for (long i = 0; i < ntasks; i++) {
		ck_assert_int_eq(tasks[i].steps, 20);
		ck_assert_int_eq(atomic_load(&tasks[i].released), 1);
	}
}

START_TEST(test_stealable_stress)
{
	run_batch(2, true, scaled(20000), SP_STEALABLE);
	ck_assert_uint_gt(total_steals(), 0);
	stop_engine(eng);
	free(tasks);
}
END_TEST

START_TEST(test_stealable_four_shards)
{
	run_batch(4, true, scaled(20000), SP_STEALABLE);
	ck_assert_uint_gt(total_steals(), 0);
	stop_engine(eng);
	free(tasks);
}
END_TEST

START_TEST(test_steal_off)
{
	run_batch(2, false, scaled(5000), SP_STEALABLE);
	ck_assert_uint_eq(total_steals(), 0);
	struct sp_shard_stats st;
	sp_shard_stats_read(sp_engine_shard(eng, 1), &st);
	ck_assert_uint_eq(st.tasks_run, 0); /* spawned on shard 0, never left it */
	stop_engine(eng);
	free(tasks);
}
END_TEST

START_TEST(test_pinned_never_leave)
{
	/* the pinned tasks load shard 0 heavily while shard 1 idles and would steal */
	run_batch(2, true, scaled(5000), SP_PINNED);
	ck_assert_uint_eq(total_steals(), 0);
	stop_engine(eng);
	free(tasks);
}
END_TEST

START_TEST(test_pinned_on_every_shard)
{
	/* a third of the tasks spawned on each of 3 shards; each stays where it was born */
	eng = start_engine(3, true);
	reset(scaled(6000), SP_PINNED);
	static struct on_shard_call calls[3];
	static struct range ranges[3];
	for (unsigned i = 0; i < 3; i++) {
		ranges[i] = (struct range){ i, 3 };
		post_on_shard(eng, i, &calls[i], spawn_batch, &ranges[i]);
	}
	ck_assert_msg(wait_atomic(&released_total, ntasks, 120000), "released %ld of %ld",
		      atomic_load(&released_total), ntasks);
	ck_assert_int_eq(atomic_load(&violations), 0);
	for (long i = 0; i < ntasks; i++) {
		ck_assert_uint_eq(tasks[i].home, (unsigned)(i % 3));
		ck_assert_int_eq(tasks[i].steps, 20);
		ck_assert_int_eq(atomic_load(&tasks[i].released), 1);
	}
	for (unsigned i = 0; i < 3; i++) {
		struct sp_shard_stats st;
		sp_shard_stats_read(sp_engine_shard(eng, i), &st);
		ck_assert_uint_ge(st.tasks_run, (uint64_t)ntasks / 3);
	}
	ck_assert_uint_eq(total_steals(), 0);
	stop_engine(eng);
	free(tasks);
}
END_TEST

/* round_robin and sticky: record where run() happens. */
static _Atomic long where[4];
static _Atomic long sticky_bad;

struct ptask {
	struct sp_task task;
	_Atomic int shard;
	_Atomic long runs;
};

static void note_run(struct sp_task *task)
{
	struct ptask *t = (struct ptask *)task;
	int me = (int)sp_shard_index(sp_shard_current());
	int prev = atomic_exchange(&t->shard, me);
	if (prev >= 0 && prev != me)
		atomic_fetch_add(&sticky_bad, 1);
	atomic_fetch_add(&where[me], 1);
	atomic_fetch_add(&t->runs, 1);
}

START_TEST(test_round_robin_and_sticky)
{
	eng = start_engine(4, true);
	enum { N = 400 };
	static struct ptask rr[N], st[N], st2[N];
	for (int i = 0; i < 4; i++)
		atomic_store(&where[i], 0);
	for (int i = 0; i < N; i++) {
		sp_task_init(&rr[i].task, SP_ROUND_ROBIN, note_run, NULL);
		atomic_store(&rr[i].shard, -1);
		sp_task_spawn(eng, &rr[i].task, 0);
	}
	long total = 0;
	for (int k = 0; k < 2000 && total < N; k++) {
		total = 0;
		for (int i = 0; i < N; i++)
			total += atomic_load(&rr[i].runs);
		sleep_us(1000);
	}
	ck_assert_int_eq(total, N);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(atomic_load(&where[i]), N / 4);

	/* sticky: same key, same shard, on every spawn and every wake */
	for (int i = 0; i < N; i++) {
		sp_task_init(&st[i].task, SP_STICKY, note_run, NULL);
		sp_task_init(&st2[i].task, SP_STICKY, note_run, NULL);
		atomic_store(&st[i].shard, -1);
		atomic_store(&st2[i].shard, -1);
		sp_task_spawn(eng, &st[i].task, (uint64_t)i * 7919);
		sp_task_spawn(eng, &st2[i].task, (uint64_t)i * 7919);
	}
	for (int round = 1; round <= 2; round++) {
		/* a wake while the spawn is still queued coalesces with it: wait for each
		 * round of runs before waking again */
		for (int k = 0; k < 2000; k++) {
			total = 0;
			for (int i = 0; i < N; i++)
				total += atomic_load(&st[i].runs) >= round &&
					 atomic_load(&st2[i].runs) >= 1;
			if (total == N)
				break;
			sleep_us(1000);
		}
		ck_assert_int_eq(total, N);
		if (round == 1)
			for (int i = 0; i < N; i++)
				sp_task_wake(&st[i].task);
	}
	int used[4] = { 0 };
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&st[i].shard), atomic_load(&st2[i].shard));
		used[atomic_load(&st[i].shard)] = 1;
	}
	ck_assert_int_eq(used[0] + used[1] + used[2] + used[3], 4); /* keys spread */
	ck_assert_int_eq(atomic_load(&sticky_bad), 0);
	stop_engine(eng);
}
END_TEST

/* Waking a task from a foreign thread, many times, while it runs on shards. Before each
 * wake the waker publishes a generation; the run that follows the last wake must see the
 * last generation. */
static struct ttask waker_task;
static _Atomic long wake_gen, seen_gen;
static _Atomic bool close_asked;

static void wake_run(struct sp_task *task)
{
	struct ttask *t = (struct ttask *)task;
	enter_task(t);
	atomic_store(&seen_gen, atomic_load(&wake_gen));
	atomic_fetch_add(&t->runs, 1);
	busy_work(2000);
	leave_task(t);
	if (atomic_load(&close_asked))
		sp_task_close(task); /* a task ends itself, from its own run */
}

START_TEST(test_wake_coalescing)
{
	eng = start_engine(2, true);
	atomic_store(&violations, 0);
	atomic_store(&released_total, 0);
	atomic_store(&wake_gen, 0);
	atomic_store(&seen_gen, -1);
	atomic_store(&close_asked, false);
	memset(&waker_task, 0, sizeof(waker_task));
	sp_task_init(&waker_task.task, SP_STEALABLE, wake_run, on_release);
	sp_task_spawn(eng, &waker_task.task, 0);
	long n = scaled(100000);
	for (long i = 1; i <= n; i++) {
		atomic_store(&wake_gen, i);
		sp_task_wake(&waker_task.task);
	}
	ck_assert_msg(wait_atomic(&seen_gen, n, 10000), "last run saw generation %ld of %ld",
		      atomic_load(&seen_gen), n);
	long runs = atomic_load(&waker_task.runs);
	ck_assert_int_ge(runs, 1);
	ck_assert_int_le(runs, n + 1); /* one per wake at most, plus the spawn */
	ck_assert_int_eq(atomic_load(&violations), 0);
	/* ask it to end: its next run closes it, released once */
	atomic_store(&close_asked, true);
	sp_task_wake(&waker_task.task);
	ck_assert(wait_atomic(&released_total, 1, 5000));
	stop_engine(eng);
	ck_assert_int_eq(atomic_load(&waker_task.released), 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("task");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_stealable_stress);
	tcase_add_test(tc, test_stealable_four_shards);
	tcase_add_test(tc, test_steal_off);
	tcase_add_test(tc, test_pinned_never_leave);
	tcase_add_test(tc, test_pinned_on_every_shard);
	tcase_add_test(tc, test_round_robin_and_sticky);
	tcase_add_test(tc, test_wake_coalescing);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
