/* SPDX-License-Identifier: MIT */
/*
 * test_srclimit.c - the per-source connection table of src/net: a cap per (listener,
 * address), refusals past it, counts given back, addresses and listeners independent,
 * unix clients not counted; several threads racing on one address never hold more than
 * the cap at once.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/un.h>

#include "net/srclimit.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &in->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	in6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &in6->sin6_addr);
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

START_TEST(cap_refuse_and_give_back)
{
	ck_assert_int_eq(sp_srclimit_init(), 0);
	struct sockaddr_storage a = v4("127.0.0.2"), b = v4("127.0.0.3"), c = v6("::1");
	uint32_t s[4], x;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(sp_srclimit_take(1, SA(a), 3, &s[i]), 0);
		ck_assert_uint_ne(s[i], 0);
	}
	ck_assert_int_eq(sp_srclimit_take(1, SA(a), 3, &x), -EUSERS);
	/* another address, another listener: their own counts */
	ck_assert_int_eq(sp_srclimit_take(1, SA(b), 3, &s[3]), 0);
	ck_assert_int_eq(sp_srclimit_take(2, SA(a), 3, &x), 0);
	sp_srclimit_put(x);
	ck_assert_int_eq(sp_srclimit_take(1, SA(c), 1, &x), 0);
	ck_assert_int_eq(sp_srclimit_take(1, SA(c), 1, &s[3]), -EUSERS);
	sp_srclimit_put(x);
	/* one given back: one more taken, then refused again */
	sp_srclimit_put(s[0]);
	ck_assert_int_eq(sp_srclimit_take(1, SA(a), 3, &s[0]), 0);
	ck_assert_int_eq(sp_srclimit_take(1, SA(a), 3, &x), -EUSERS);
	for (int i = 0; i < 3; i++)
		sp_srclimit_put(s[i]);
	/* unix clients have no address: never counted, never refused */
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	ck_assert_int_eq(sp_srclimit_take(1, (const struct sockaddr *)&un, 1, &x), 0);
	ck_assert_uint_eq(x, 0);
	sp_srclimit_put(0);
}
END_TEST

struct race {
	_Atomic int held, max_held, refused;
};

static void *churn(void *arg)
{
	struct race *r = arg;
	struct sockaddr_storage a = v4("10.1.2.3");
	for (int i = 0; i < 20000; i++) {
		uint32_t slot;
		if (sp_srclimit_take(7, SA(a), 4, &slot) < 0) {
			atomic_fetch_add(&r->refused, 1);
			continue;
		}
		ck_assert_uint_ne(slot, 0);
		int h = atomic_fetch_add(&r->held, 1) + 1, m = atomic_load(&r->max_held);
		while (h > m && !atomic_compare_exchange_weak(&r->max_held, &m, h))
			;
		atomic_fetch_sub(&r->held, 1);
		sp_srclimit_put(slot);
	}
	return NULL;
}

START_TEST(threads_never_exceed_the_cap)
{
	ck_assert_int_eq(sp_srclimit_init(), 0);
	struct race r = { 0 };
	pthread_t th[6];
	for (int i = 0; i < 6; i++)
		pthread_create(&th[i], NULL, churn, &r);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_le(atomic_load(&r.max_held), 4);
	ck_assert_int_gt(atomic_load(&r.refused), 0); /* 6 threads on a cap of 4 */
	uint32_t s[4], x;
	struct sockaddr_storage a = v4("10.1.2.3");
	for (int i = 0; i < 4; i++) /* every count came back */
		ck_assert_int_eq(sp_srclimit_take(7, SA(a), 4, &s[i]), 0);
	ck_assert_int_eq(sp_srclimit_take(7, SA(a), 4, &x), -EUSERS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("srclimit");
	TCase *tc = tcase_create("srclimit");
	tcase_add_test(tc, cap_refuse_and_give_back);
	tcase_add_test(tc, threads_never_exceed_the_cap);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
