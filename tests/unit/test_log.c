/* SPDX-License-Identifier: MIT */
/*
 * test_log.c - the asynchronous log writer: lines from many threads all arrive, in
 * order per thread, with their fields; a flood beyond the ring is dropped and reported,
 * never blocking the callers; stop flushes what was queued; the level filter holds.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/log.h"

#define THREADS 4

static long next_seq[THREADS];
static _Atomic long received, out_of_order, dropped_reported, with_fields;
static _Atomic bool wedged; /* the writer waits in the sink while this is set */

static void sink(int level, const char *msg, const char *fields)
{
	int t;
	long seq;
	long lost;
	while (atomic_load(&wedged)) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (sscanf(msg, "log: %ld lines dropped", &lost) == 1) {
		atomic_fetch_add(&dropped_reported, lost);
		return;
	}
	if (sscanf(msg, "thread %d line %ld", &t, &seq) != 2 || t < 0 || t >= THREADS)
		return;
	/* only the writer thread calls the sink: no lock needed for next_seq */
	if (seq < next_seq[t])
		atomic_fetch_add(&out_of_order, 1);
	next_seq[t] = seq + 1;
	if (fields && !strcmp(fields, "K=v\nL=w"))
		atomic_fetch_add(&with_fields, 1);
	atomic_fetch_add(&received, 1);
}

struct job {
	int id;
	long lines;
};

static void *producer(void *arg)
{
	struct job *j = arg;
	for (long i = 0; i < j->lines; i++)
		sp_log_fields(SP_LOG_INFO, "K=v\nL=w", "thread %d line %ld", j->id, i);
	return NULL;
}

/* Log lines_per_thread lines from each of THREADS threads, then stop the writer. With
 * wedge, the writer is stuck in the sink from its first line until every producer has
 * returned: producers that waited for room would never return, so they are given 30 s
 * (their 800000 calls take well under a second) before the test fails. */
static void run_wedged(long lines_per_thread, bool wedge)
{
	pthread_t th[THREADS];
	struct job jobs[THREADS];
	memset(next_seq, 0, sizeof(next_seq));
	atomic_store(&received, 0);
	atomic_store(&dropped_reported, 0);
	atomic_store(&out_of_order, 0);
	atomic_store(&with_fields, 0);
	atomic_store(&wedged, wedge);
	sp_log_set_sink(sink);
	ck_assert_int_eq(sp_log_async_start(), 0);
	for (int i = 0; i < THREADS; i++) {
		jobs[i] = (struct job){ i, lines_per_thread };
		pthread_create(&th[i], NULL, producer, &jobs[i]);
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	int blocked = 0;
	for (int i = 0; i < THREADS; i++)
		if (pthread_timedjoin_np(th[i], NULL, &until) != 0)
			blocked++;
	atomic_store(&wedged, false);
	ck_assert_msg(blocked == 0, "%d producers still blocked 30 s after the writer stalled",
		      blocked);
	sp_log_async_stop();
	sp_log_set_sink(NULL);
}

static void run(long lines_per_thread)
{
	run_wedged(lines_per_thread, false);
}

START_TEST(every_line_arrives_in_order)
{
	/* a pace the writer keeps up with: producers yield between bursts */
	run(1000);
	ck_assert_int_eq(atomic_load(&out_of_order), 0);
	ck_assert_int_eq(atomic_load(&received) + atomic_load(&dropped_reported), THREADS * 1000);
	ck_assert_int_eq(atomic_load(&with_fields), atomic_load(&received));
}
END_TEST

START_TEST(flood_drops_and_reports)
{
	/* far beyond the ring, with the writer stalled: the callers return all the same
	 * (checked in run_wedged), lines are dropped, and the drop is reported */
	run_wedged(200000, true);
	ck_assert_int_eq(atomic_load(&out_of_order), 0);
	ck_assert_int_eq(atomic_load(&received) + atomic_load(&dropped_reported), THREADS * 200000);
	ck_assert_int_gt(atomic_load(&received), 0);
	/* the ring held what it could while the writer was stuck: most lines were dropped */
	ck_assert_int_gt(atomic_load(&dropped_reported), THREADS * 200000 / 2);
}
END_TEST

START_TEST(flood_unwedged_drops_are_counted)
{
	/* the writer free to run: whatever it could not keep up with is reported, never
	 * lost silently (received + reported drops is every line) */
	run(200000);
	ck_assert_int_eq(atomic_load(&out_of_order), 0);
	ck_assert_int_eq(atomic_load(&received) + atomic_load(&dropped_reported), THREADS * 200000);
	ck_assert_int_gt(atomic_load(&received), 0);
}
END_TEST

START_TEST(level_filter)
{
	sp_log_set_level(SP_LOG_WARN);
	run(100); /* info lines: filtered out */
	sp_log_set_level(SP_LOG_INFO);
	ck_assert_int_eq(atomic_load(&received), 0);
	ck_assert_int_eq(atomic_load(&dropped_reported), 0);
}
END_TEST

START_TEST(restart_after_stop)
{
	run(10);
	ck_assert_int_eq(atomic_load(&received), THREADS * 10);
	run(10);
	ck_assert_int_eq(atomic_load(&received), THREADS * 10);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("async");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_line_arrives_in_order);
	tcase_add_test(tc, flood_drops_and_reports);
	tcase_add_test(tc, flood_unwedged_drops_are_counted);
	tcase_add_test(tc, level_filter);
	tcase_add_test(tc, restart_after_stop);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
