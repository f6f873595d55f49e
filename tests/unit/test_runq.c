/* SPDX-License-Identifier: MIT */
/* test_runq.c - the stealable run queue: the owner pushes and pops while thieves steal
 * about half; every task comes out exactly once, none is lost when the queue is full. */
#include <pthread.h>

#include "engine/runq.h"
#include "harness.h"

#define THIEVES 3

static struct sp_runq q;
static struct sp_task *tasks;
static _Atomic int *seen;
static _Atomic long taken, thieves_stop;
static long ntasks;

static void take(struct sp_task *t)
{
	long i = t - tasks;
	ck_assert(i >= 0 && i < ntasks);
	ck_assert_int_eq(atomic_fetch_add(&seen[i], 1), 0);
	atomic_fetch_add(&taken, 1);
}

static void *thief(void *arg)
{
	struct sp_task *got[SP_STEAL_MAX];
	(void)arg;
	while (!atomic_load(&thieves_stop)) {
		unsigned n = sp_runq_steal(&q, got, SP_STEAL_MAX, 1);
		for (unsigned i = 0; i < n; i++)
			take(got[i]);
	}
	return NULL;
}

START_TEST(test_runq_exactly_once_under_steal)
{
	ntasks = scaled(2000000);
	tasks = calloc((size_t)ntasks, sizeof(*tasks));
	seen = calloc((size_t)ntasks, sizeof(*seen));
	sp_runq_init(&q);
	atomic_store(&taken, 0);
	atomic_store(&thieves_stop, 0);
	pthread_t th[THIEVES];
	for (int i = 0; i < THIEVES; i++)
		pthread_create(&th[i], NULL, thief, NULL);

	long pushed = 0;
	while (pushed < ntasks) {
		/* push a burst, pop a few ourselves: the shape of a busy shard */
		for (int k = 0; k < 40 && pushed < ntasks; k++) {
			if (!sp_runq_push(&q, &tasks[pushed]))
				break; /* full: the owner keeps it elsewhere; here, pop first */
			pushed++;
		}
		for (int k = 0; k < 8; k++) {
			struct sp_task *t = sp_runq_pop(&q);
			if (!t)
				break;
			take(t);
		}
	}
	struct sp_task *t;
	while ((t = sp_runq_pop(&q)))
		take(t);
	uint64_t end = sp_now_ns() + 10ull * 1000000000ull;
	while (atomic_load(&taken) < ntasks && sp_now_ns() < end)
		sleep_us(100);
	atomic_store(&thieves_stop, 1);
	for (int i = 0; i < THIEVES; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&taken), ntasks);
	for (long i = 0; i < ntasks; i++)
		ck_assert_int_eq(atomic_load(&seen[i]), 1);
	free(tasks);
	free((void *)seen);
}
END_TEST

START_TEST(test_runq_steal_half_and_full)
{
	static struct sp_task local[SP_RUNQ_CAP + 1];
	struct sp_task *got[SP_STEAL_MAX];
	sp_runq_init(&q);
	for (unsigned i = 0; i < 10; i++)
		ck_assert(sp_runq_push(&q, &local[i]));
	/* below the threshold nothing moves */
	ck_assert_uint_eq(sp_runq_steal(&q, got, SP_STEAL_MAX, 11), 0);
	unsigned n = sp_runq_steal(&q, got, SP_STEAL_MAX, 1);
	ck_assert_uint_eq(n, 5);
	for (unsigned i = 0; i < n; i++) /* thieves take the oldest */
		ck_assert_ptr_eq(got[i], &local[i]);
	ck_assert_uint_eq(sp_runq_len(&q), 5);
	ck_assert_ptr_eq(sp_runq_pop(&q), &local[5]);
	while (sp_runq_pop(&q))
		;
	for (unsigned i = 0; i < SP_RUNQ_CAP; i++)
		ck_assert(sp_runq_push(&q, &local[i]));
	ck_assert(!sp_runq_push(&q, &local[SP_RUNQ_CAP]));
	ck_assert_uint_eq(sp_runq_len(&q), SP_RUNQ_CAP);
	/* one steal takes at most max */
	ck_assert_uint_eq(sp_runq_steal(&q, got, 16, 1), 16);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("runq");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_runq_steal_half_and_full);
	tcase_add_test(tc, test_runq_exactly_once_under_steal);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
