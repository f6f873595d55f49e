/* SPDX-License-Identifier: MIT */
/*
 * harness.h - shared helpers of the engine's Check suites: scaled iteration counts,
 * starting an engine, running a function on a shard, bounded waits.
 */
#ifndef SP_TEST_HARNESS_H
#define SP_TEST_HARNESS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/log.h"

/* Iteration counts are multiplied by this: SP_TEST_SCALE=tsan (slow, 0.05) or a number. */
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
	long v = (long)(n * sp_test_scale());
	return v < 1 ? 1 : v;
}

static inline struct sp_engine *start_engine(unsigned shards, bool steal)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = shards;
	cfg.steal = steal;
	struct sp_engine *eng = NULL;
	sp_log_set_level(SP_LOG_WARN);
	int ret = sp_engine_create(&cfg, &eng);
	ck_assert_msg(ret == 0, "sp_engine_create: %d", ret);
	return eng;
}

static inline void stop_engine(struct sp_engine *eng)
{
	sp_engine_stop(eng);
	sp_engine_join(eng);
	sp_engine_destroy(eng);
}

static inline void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* Wait until *flag >= want, at most timeout_ms. Returns whether it got there. */
static inline bool wait_atomic(_Atomic long *flag, long want, long timeout_ms)
{
	uint64_t end = sp_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	while (atomic_load(flag) < want) {
		if (sp_now_ns() > end)
			return false;
		sleep_us(200);
	}
	return true;
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

static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
