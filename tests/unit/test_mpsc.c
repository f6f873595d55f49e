/* SPDX-License-Identifier: MIT */
/* test_mpsc.c - the inject queue: every message popped exactly once, FIFO per producer,
 * under concurrent producers; empty and "inconsistent" states reported honestly. */
#include <pthread.h>

#include "engine/mpsc.h"
#include "harness.h"

#define PRODUCERS 4

struct item {
	struct sp_msg msg;
	unsigned producer;
	long seq;
};

static struct sp_mpsc q;
static struct item *items[PRODUCERS];
static long per_producer;

static void *producer(void *arg)
{
	unsigned p = (unsigned)(uintptr_t)arg;
	for (long i = 0; i < per_producer; i++)
		sp_mpsc_push(&q, &items[p][i].msg);
	return NULL;
}

START_TEST(test_mpsc_exactly_once_fifo)
{
	per_producer = scaled(1000000);
	sp_mpsc_init(&q);
	for (unsigned p = 0; p < PRODUCERS; p++) {
		items[p] = calloc((size_t)per_producer, sizeof(struct item));
		for (long i = 0; i < per_producer; i++) {
			items[p][i].producer = p;
			items[p][i].seq = i;
		}
	}
	pthread_t th[PRODUCERS];
	for (unsigned p = 0; p < PRODUCERS; p++)
		pthread_create(&th[p], NULL, producer, (void *)(uintptr_t)p);

	long next[PRODUCERS] = { 0 }, got = 0, total = per_producer * PRODUCERS;
	uint64_t deadline = sp_now_ns() + 60ull * 1000000000ull;
	while (got < total && sp_now_ns() < deadline) {
		struct sp_msg *m = sp_mpsc_pop(&q);
		if (!m)
			continue;
		struct item *it = sp_container_of(m, struct item, msg);
		ck_assert_int_eq(it->seq, next[it->producer]);
		next[it->producer]++;
		got++;
	}
	for (unsigned p = 0; p < PRODUCERS; p++)
		pthread_join(th[p], NULL);
	ck_assert_int_eq(got, total);
	ck_assert_ptr_null(sp_mpsc_pop(&q));
	ck_assert(!sp_mpsc_maybe_nonempty(&q));
	for (unsigned p = 0; p < PRODUCERS; p++)
		free(items[p]);
}
END_TEST

START_TEST(test_mpsc_empty_and_reuse)
{
	struct item a, b;
	sp_mpsc_init(&q);
	ck_assert(!sp_mpsc_maybe_nonempty(&q));
	ck_assert_ptr_null(sp_mpsc_pop(&q));
	sp_mpsc_push(&q, &a.msg);
	ck_assert(sp_mpsc_maybe_nonempty(&q));
	ck_assert_ptr_eq(sp_mpsc_pop(&q), &a.msg);
	ck_assert_ptr_null(sp_mpsc_pop(&q));
	/* a popped node may be pushed again at once (timers and tasks reuse theirs) */
	for (int i = 0; i < 1000; i++) {
		sp_mpsc_push(&q, &a.msg);
		sp_mpsc_push(&q, &b.msg);
		ck_assert_ptr_eq(sp_mpsc_pop(&q), &a.msg);
		ck_assert_ptr_eq(sp_mpsc_pop(&q), &b.msg);
		ck_assert_ptr_null(sp_mpsc_pop(&q));
	}
	ck_assert(!sp_mpsc_maybe_nonempty(&q));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mpsc");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mpsc_empty_and_reuse);
	tcase_add_test(tc, test_mpsc_exactly_once_fifo);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
