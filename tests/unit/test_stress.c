/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - a randomized run of the engine's cross-shard paths, bounded in time.
 *
 * 4 shards (on however many cores), stealing on. A population of tasks, most of them
 * stealable, each with four ops (two reads of its own pipe, an IORING_OP_TIMEOUT, a
 * NOP) and two timers. Every step burns some CPU (so run queues fill and shards steal)
 * and then, at random: writes a byte into its pipe (a read in flight on some ring
 * completes), submits its idle ops on the ring of the shard it runs on, cancels an op
 * (on another ring when the task was stolen since), arms, moves or cancels a timer
 * (in another shard's wheel when stolen), and after its last step closes itself; its
 * release frees it (heap: a late touch is an ASan report) and spawns a replacement
 * until the deadline.
 *
 * Checked on every completion: an op ends -ECANCELED only when a cancel was asked for
 * that very submission (a stale cancel hitting a resubmission is an error), a timer
 * fires (res 0) never before its latest deadline and ends -ECANCELED only when a
 * cancel was asked after its latest arm. At release: each timer got exactly the
 * callbacks its arms promised, every byte written to the pipe was read exactly once.
 * At the end: steals, cross-shard cancels and cross-shard timer moves all happened.
 *
 * SP_STRESS_SECONDS sets the run (default 3; scripts/stress runs it for minutes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "harness.h"

#define MS 1000000ull
#define NOPS 4
#define NTIM 2
enum { OP_READ0, OP_READ1, OP_TIMEOUT, OP_NOP };

struct stask {
	struct sp_task task;
	struct sp_op op[NOPS];
	struct sp_timer tm[NTIM];
	struct __kernel_timespec ts;
	char buf[2][8];
	int pipefd[2];
	uint64_t rng;
	/* task context only */
	uint32_t sub[NOPS];        /* submissions of each op so far */
	uint32_t cancel_sub[NOPS]; /* the submission a cancel was last asked for */
	uint64_t tm_deadline[NTIM];
	bool tm_cancel_asked[NTIM];
	long tm_expect[NTIM], tm_got[NTIM];
	long written, nread;
	int steps, max_steps;
	bool closing;
	_Atomic int running; /* callbacks of one task never run on two shards at once */
};

static struct sp_engine *eng;
static _Atomic uint64_t stop_at;
static _Atomic long live, spawned, freed, errors;
static _Atomic long n_ops, n_cancels, n_remote_cancels, n_timer_ops, n_remote_timer_ops;
static _Atomic long n_reads, n_bytes;

#define FAIL(...)                                                                       \
	do {                                                                            \
		if (atomic_fetch_add(&errors, 1) < 20)                                  \
			fprintf(stderr, "stress: " __VA_ARGS__);                        \
	} while (0)

static uint64_t rnd(struct stask *s, uint64_t n)
{
	uint64_t x = s->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x % n;
}

static void step(struct stask *s);
static void spawn_one(uint64_t seed);

static void enter(struct stask *s)
{
	if (atomic_exchange(&s->running, 1))
		FAIL("task %p runs on two shards at once\n", (void *)s);
}

static void leave(struct stask *s)
{
	atomic_store(&s->running, 0);
}

static void on_op(struct sp_op *op, int res, uint32_t flags)
{
	struct stask *s = (struct stask *)op->task;
	int i = (int)(op - s->op);
	(void)flags;

	enter(s);
	atomic_fetch_add_explicit(&n_ops, 1, memory_order_relaxed);
	if (res == -ECANCELED) {
		if (!s->closing && s->cancel_sub[i] != s->sub[i])
			FAIL("op %d of %p: -ECANCELED for submission %u, cancel asked for %u\n",
			     i, (void *)s, s->sub[i], s->cancel_sub[i]);
	} else {
		switch (i) {
		case OP_READ0:
		case OP_READ1:
			if (res <= 0)
				FAIL("read: %d\n", res);
			else
				s->nread += res;
			atomic_fetch_add_explicit(&n_reads, 1, memory_order_relaxed);
			break;
		case OP_TIMEOUT:
			if (res != -ETIME)
				FAIL("timeout op: %d\n", res);
			break;
		default:
			if (res != 0)
				FAIL("nop: %d\n", res);
			break;
		}
	}
	if (!s->closing)
		step(s);
	leave(s);
}

static void on_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_timer *t = (struct sp_timer *)op;
	struct stask *s = (struct stask *)op->task;
	int j = (int)(t - s->tm);
	(void)flags;

	enter(s);
	s->tm_got[j]++;
	if (res == 0) {
		/* a cancel asked while the firing was on its way: it fired for an earlier
		 * deadline than the latest asked, which is allowed */
		if (!s->tm_cancel_asked[j] && sp_now_ns() < s->tm_deadline[j])
			FAIL("timer fired %llu ns early\n",
			     (unsigned long long)(s->tm_deadline[j] - sp_now_ns()));
	} else if (res == -ECANCELED) {
		if (!s->closing && !s->tm_cancel_asked[j])
			FAIL("timer -ECANCELED with no cancel asked\n");
	} else {
		FAIL("timer res %d\n", res);
	}
	if (!s->closing)
		step(s);
	leave(s);
}

static void submit(struct stask *s, int i)
{
	struct io_uring_sqe *sqe = sp_sqe();
	switch (i) {
	case OP_READ0:
	case OP_READ1:
		io_uring_prep_read(sqe, s->pipefd[0], s->buf[i], 1 + (unsigned)rnd(s, 4), 0);
		break;
	case OP_TIMEOUT:
		s->ts.tv_sec = 0;
		s->ts.tv_nsec = (long long)(50000 + rnd(s, 2000000));
		io_uring_prep_timeout(sqe, &s->ts, 0, 0);
		break;
	default:
		io_uring_prep_nop(sqe);
		break;
	}
	s->sub[i]++;
	sp_op_submit(&s->op[i], sqe);
}

static void cancel(struct stask *s, int i)
{
	if (!sp_op_busy(&s->op[i]))
		return;
	atomic_fetch_add_explicit(&n_cancels, 1, memory_order_relaxed);
	if (s->op[i].shard != sp_shard_current())
		atomic_fetch_add_explicit(&n_remote_cancels, 1, memory_order_relaxed);
	s->cancel_sub[i] = s->sub[i];
	int ret = sp_op_cancel(&s->op[i]);
	if (ret != 0)
		FAIL("cancel of a busy op: %d\n", ret);
}

static void timer_count_remote(struct sp_timer *t)
{
	atomic_fetch_add_explicit(&n_timer_ops, 1, memory_order_relaxed);
	if (sp_timer_armed(t) && atomic_load_explicit(&t->wheel, memory_order_relaxed) !=
					 sp_shard_current())
		atomic_fetch_add_explicit(&n_remote_timer_ops, 1, memory_order_relaxed);
}

static void timer_action(struct stask *s, int j)
{
	struct sp_timer *t = &s->tm[j];
	uint64_t r = rnd(s, 8);

	if (r < 3) { /* arm or move: 0..3 ms */
		timer_count_remote(t);
		if (!sp_timer_armed(t))
			s->tm_expect[j]++;
		s->tm_cancel_asked[j] = false;
		s->tm_deadline[j] = sp_now_ns() + rnd(s, 3 * MS);
		sp_timer_arm(t, s->tm_deadline[j]);
	} else if (r == 3 && sp_timer_armed(t)) {
		timer_count_remote(t);
		int ret = sp_timer_cancel(t);
		if (ret == 0)
			s->tm_expect[j]--;
		else if (ret == -EINPROGRESS)
			s->tm_cancel_asked[j] = true;
		else
			FAIL("cancel of an armed timer: %d\n", ret);
	}
}

static void step(struct stask *s)
{
	busy_work((int)rnd(s, 4000));
	if (++s->steps >= s->max_steps) {
		/* sometimes a cancel right before the end: its request may still be on its
		 * way when the task is done */
		if (rnd(s, 2))
			cancel(s, (int)rnd(s, NOPS));
		for (int j = 0; j < NTIM; j++) {
			if (!sp_timer_armed(&s->tm[j]))
				continue;
			int ret = sp_timer_cancel(&s->tm[j]);
			if (ret == 0)
				s->tm_expect[j]--;
			else if (ret == -EINPROGRESS)
				s->tm_cancel_asked[j] = true;
			else
				FAIL("cancel of an armed timer: %d\n", ret);
		}
		s->closing = true;
		sp_task_close(&s->task);
		return;
	}
	if (rnd(s, 3) == 0 && s->written - s->nread < 6) {
		if (write(s->pipefd[1], "x", 1) == 1)
			s->written++;
	}
	for (int i = 0; i < NOPS; i++)
		if (!sp_op_busy(&s->op[i]) && (i == OP_TIMEOUT || rnd(s, 2)))
			submit(s, i);
	if (rnd(s, 3) == 0)
		cancel(s, (int)rnd(s, NOPS));
	for (int j = 0; j < NTIM; j++)
		timer_action(s, j);
}

static void on_run(struct sp_task *task)
{
	struct stask *s = (struct stask *)task;
	enter(s);
	if (!s->closing)
		step(s);
	leave(s);
}

static void on_release(struct sp_task *task)
{
	struct stask *s = (struct stask *)task;

	enter(s);
	for (int i = 0; i < NOPS; i++)
		if (sp_op_busy(&s->op[i]))
			FAIL("released with op %d busy\n", i);
	for (int j = 0; j < NTIM; j++) {
		if (sp_timer_armed(&s->tm[j]))
			FAIL("released with timer %d armed\n", j);
		if (s->tm_got[j] != s->tm_expect[j])
			FAIL("timer %d: %ld callbacks, %ld expected\n", j, s->tm_got[j],
			     s->tm_expect[j]);
	}
	/* what no read took is still in the pipe */
	char rest[16];
	ssize_t n;
	while ((n = read(s->pipefd[0], rest, sizeof(rest))) > 0)
		s->nread += n;
	if (s->nread != s->written)
		FAIL("pipe: %ld bytes written, %ld read\n", s->written, s->nread);
	atomic_fetch_add_explicit(&n_bytes, s->written, memory_order_relaxed);
	close(s->pipefd[0]);
	close(s->pipefd[1]);
	uint64_t seed = s->rng;
	leave(s);
	memset(s, 0x5a, sizeof(*s));
	free(s);
	atomic_fetch_add(&freed, 1);
	if (sp_now_ns() < atomic_load(&stop_at))
		spawn_one(seed);
	atomic_fetch_sub(&live, 1);
}

static void spawn_one(uint64_t seed)
{
	struct stask *s = calloc(1, sizeof(*s));
	ck_assert_ptr_nonnull(s);
	s->rng = seed | 1;
	rnd(s, 2);
	ck_assert_int_eq(pipe2(s->pipefd, O_NONBLOCK | O_CLOEXEC), 0);
	/* one in eight pinned: their cancels and timers stay local */
	enum sp_placement p = rnd(s, 8) ? SP_STEALABLE : SP_PINNED;
	sp_task_init(&s->task, p, on_run, on_release);
	for (int i = 0; i < NOPS; i++)
		sp_op_init(&s->op[i], &s->task, on_op);
	for (int j = 0; j < NTIM; j++)
		sp_timer_init(&s->tm[j], &s->task, on_timer);
	s->max_steps = 10 + (int)rnd(s, 200);
	atomic_fetch_add(&live, 1);
	atomic_fetch_add(&spawned, 1);
	sp_task_spawn(eng, &s->task, 0);
}

struct spawn_arg {
	long n;
	uint64_t seed;
};

static void spawn_many(void *arg)
{
	struct spawn_arg *a = arg;
	for (long i = 0; i < a->n; i++)
		spawn_one(a->seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
}

static long stress_seconds(void)
{
	const char *s = getenv("SP_STRESS_SECONDS");
	long v = s ? atol(s) : 0;
	return v > 0 ? v : 3;
}

START_TEST(test_stress)
{
	long secs = stress_seconds();
	unsigned shards = 4;
	eng = start_engine(shards, true);
	long ntasks = scaled(256);
	if (ntasks < 16)
		ntasks = 16;
	atomic_store(&stop_at, sp_now_ns() + (uint64_t)secs * 1000000000ull);
	/* spread the first tasks over the shards; the rest is stealing */
	for (unsigned i = 0; i < shards; i++) {
		struct spawn_arg a = { ntasks / shards, 0x1234567ull * (i + 1) + (uint64_t)time(NULL) };
		run_on_shard(eng, i, spawn_many, &a);
	}
	while (sp_now_ns() < atomic_load(&stop_at) && atomic_load(&errors) == 0)
		sleep_us(50000);
	/* the deadline passed: every task ends within its steps, none replaces it */
	atomic_store(&stop_at, 0);
	uint64_t end = sp_now_ns() + 60000 * MS;
	while (atomic_load(&live) > 0 && sp_now_ns() < end)
		sleep_us(10000);
	struct sp_shard_stats st;
	stats_sum(eng, &st);
	printf("stress: %lds, %ld tasks (%ld freed), %ld completions, %ld reads, %ld bytes, "
	       "%ld cancels (%ld cross-shard), %ld timer ops (%ld cross-shard), %llu steals, "
	       "%ld errors\n",
	       secs, atomic_load(&spawned), atomic_load(&freed), atomic_load(&n_ops),
	       atomic_load(&n_reads), atomic_load(&n_bytes), atomic_load(&n_cancels),
	       atomic_load(&n_remote_cancels), atomic_load(&n_timer_ops),
	       atomic_load(&n_remote_timer_ops), (unsigned long long)st.steals,
	       atomic_load(&errors));
	fflush(stdout);
	ck_assert_int_eq(atomic_load(&errors), 0);
	ck_assert_msg(atomic_load(&live) == 0, "%ld tasks never ended", atomic_load(&live));
	ck_assert_int_eq(atomic_load(&freed), atomic_load(&spawned));
	ck_assert_uint_gt(st.steals, 0);
	ck_assert_int_gt(atomic_load(&n_remote_cancels), 0);
	ck_assert_int_gt(atomic_load(&n_remote_timer_ops), 0);
	stop_engine(eng);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stress");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, (double)stress_seconds() + 120);
	tcase_add_test(tc, test_stress);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
