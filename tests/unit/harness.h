/* SPDX-License-Identifier: MIT */
/*
 * harness.h - shared helpers of the engine's Check suites: scaled iteration counts,
 * starting and stopping an engine (stop is bounded), running a function on a shard,
 * bounded waits on conditions, summed counters.
 *
 * Waits poll a condition with short nanosleeps up to a deadline; no test sleeps in the
 * hope that something has happened. Check runs each test in a forked child, so a
 * ck_assert that fails on a shard thread ends that child with the failure reported.
 */
#ifndef SP_TEST_HARNESS_H
#define SP_TEST_HARNESS_H

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/log.h"

/* Iteration counts are multiplied by this: SP_TEST_SCALE unset (1.0), "tsan" (0.05, so a
 * ThreadSanitizer run stays under a minute per program) or a number. */
static inline double sp_test_scale(void)
{
	const char *s = getenv("SP_TEST_SCALE");
	if (!s || !*s)
		return 1.0;
	if (!strcmp(s, "tsan"))
		return 0.05;
	double v = atof(s);
	return v > 0 ? v : 1.0;
}

static inline long scaled(long n)
{
	long v = (long)((double)n * sp_test_scale());
	return v < 1 ? 1 : v;
}

static inline struct sp_engine *start_engine_cfg(const struct sp_engine_config *cfg)
{
	struct sp_engine *eng = NULL;
	sp_log_set_level(SP_LOG_WARN);
	int ret = sp_engine_create(cfg, &eng);
	ck_assert_msg(ret == 0, "sp_engine_create: %d", ret);
	return eng;
}

static inline struct sp_engine *start_engine(unsigned shards, bool steal)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = shards;
	cfg.steal = steal;
	return start_engine_cfg(&cfg);
}

static inline void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* Poll cond(arg) until it holds, at most timeout_ms. Returns whether it held. */
static inline bool wait_until(bool (*cond)(void *), void *arg, long timeout_ms)
{
	uint64_t end = sp_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		if (cond(arg))
			return true;
		if (sp_now_ns() > end)
			return false;
		sleep_us(100);
	}
}

struct atomic_goal {
	_Atomic long *flag;
	long want;
};

static inline bool atomic_reached(void *arg)
{
	struct atomic_goal *g = arg;
	return atomic_load(g->flag) >= g->want;
}

/* Wait until *flag >= want, at most timeout_ms. Returns whether it got there. */
static inline bool wait_atomic(_Atomic long *flag, long want, long timeout_ms)
{
	struct atomic_goal g = { flag, want };
	return wait_until(atomic_reached, &g, timeout_ms);
}

/* Stop, join (bounded: a shutdown that hangs fails the test with a message rather than
 * the Check timeout) and destroy. */
static inline void *join_thread(void *arg)
{
	void **a = arg;
	sp_engine_join(a[0]);
	atomic_store((_Atomic long *)a[1], 1);
	return NULL;
}

static inline void stop_engine_within(struct sp_engine *eng, long timeout_ms)
{
	static _Atomic long joined;
	void *args[2] = { eng, (void *)&joined };
	pthread_t th;
	atomic_store(&joined, 0);
	sp_engine_stop(eng);
	ck_assert_int_eq(pthread_create(&th, NULL, join_thread, args), 0);
	ck_assert_msg(wait_atomic(&joined, 1, timeout_ms), "engine did not stop within %ld ms",
		      timeout_ms);
	pthread_join(th, NULL);
	sp_engine_destroy(eng);
}

static inline void stop_engine(struct sp_engine *eng)
{
	stop_engine_within(eng, 30000);
}

/* Run fn(arg) on shard i and wait for it to return (from the test thread). */
struct on_shard_call {
	struct sp_msg msg;
	void (*fn)(void *arg);
	void *arg;
	_Atomic long done;
};

static inline void on_shard_trampoline(struct sp_msg *m)
{
	struct on_shard_call *c = sp_container_of(m, struct on_shard_call, msg);
	c->fn(c->arg);
	atomic_store(&c->done, 1);
}

static inline void run_on_shard(struct sp_engine *eng, unsigned i, void (*fn)(void *), void *arg)
{
	struct on_shard_call c = { .fn = fn, .arg = arg };
	atomic_init(&c.done, 0);
	sp_msg_post(sp_engine_shard(eng, i), &c.msg, on_shard_trampoline);
	ck_assert_msg(wait_atomic(&c.done, 1, 10000), "shard %u did not run the call", i);
}

/* Start fn(arg) on shard i without waiting; c must outlive the call (c->done says). */
static inline void post_on_shard(struct sp_engine *eng, unsigned i, struct on_shard_call *c,
				 void (*fn)(void *), void *arg)
{
	c->fn = fn;
	c->arg = arg;
	atomic_store(&c->done, 0);
	sp_msg_post(sp_engine_shard(eng, i), &c->msg, on_shard_trampoline);
}

/* The counters of every shard, summed field by field (all fields are uint64_t). */
static inline void stats_sum(struct sp_engine *eng, struct sp_shard_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < sp_engine_nshards(eng); i++) {
		struct sp_shard_stats st;
		sp_shard_stats_read(sp_engine_shard(eng, i), &st);
		uint64_t *d = (uint64_t *)sum, *s = (uint64_t *)&st;
		for (size_t k = 0; k < sizeof(st) / sizeof(uint64_t); k++)
			d[k] += s[k];
	}
}

static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Burn a little CPU so that run queues build up and idle shards find work to steal. */
static inline void busy_work(int n)
{
	volatile unsigned x = 0;
	for (int i = 0; i < n; i++)
		x += (unsigned)i;
}

#endif
