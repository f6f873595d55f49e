/* SPDX-License-Identifier: MIT */
/*
 * test_filters.c - the acl and rate_limit filters of src/pipeline on hand-built stage
 * configs: verdicts for IPv4, IPv6, v4-mapped and unix clients; the token bucket's burst,
 * refill and per-address independence; the table staying bounded under many addresses;
 * several threads taking tokens from one bucket never take more than it holds.
 */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "pipeline/pipeline.h"

extern const struct sp_stage_ops sp_acl_ops, sp_rate_limit_ops;

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

static struct sp_conf_cidr cidr(const char *s)
{
	struct sp_conf_cidr c;
	ck_assert_int_eq(sp_parse_cidr(s, &c), 0);
	return c;
}

static enum sp_verdict judge(struct sp_stage *st, struct sockaddr_storage ss, uint64_t now)
{
	return st->ops->filter(st, (struct sockaddr *)&ss, 0, now);
}

START_TEST(acl_allow_and_deny)
{
	struct sp_conf_cidr allow[] = { cidr("127.0.0.0/8"), cidr("::1/128") };
	struct sp_conf_cidr deny[] = { cidr("127.0.0.2/32") };
	struct sp_conf_stage conf = { .kind = SP_STAGE_ACL,
				      .acl = { .allow = allow, .n_allow = 2, .deny = deny, .n_deny = 1 } };
	struct sp_stage st = { .ops = &sp_acl_ops, .conf = &conf };

	ck_assert_int_eq(judge(&st, v4("127.0.0.1"), 0), SP_VERDICT_PASS);
	ck_assert_int_eq(judge(&st, v4("127.0.0.2"), 0), SP_VERDICT_DENY); /* deny wins */
	ck_assert_int_eq(judge(&st, v4("10.0.0.1"), 0), SP_VERDICT_DENY);  /* not allowed */
	ck_assert_int_eq(judge(&st, v6("::1"), 0), SP_VERDICT_PASS);
	ck_assert_int_eq(judge(&st, v6("::2"), 0), SP_VERDICT_DENY);
	ck_assert_int_eq(judge(&st, v6("::ffff:127.0.0.9"), 0), SP_VERDICT_PASS); /* mapped */
	ck_assert_int_eq(judge(&st, v6("::ffff:127.0.0.2"), 0), SP_VERDICT_DENY);
	struct sockaddr_storage un = { .ss_family = AF_UNIX };
	ck_assert_int_eq(judge(&st, un, 0), SP_VERDICT_PASS); /* file permissions govern */
}
END_TEST

START_TEST(acl_deny_only)
{
	struct sp_conf_cidr deny[] = { cidr("192.168.0.0/16") };
	struct sp_conf_stage conf = { .kind = SP_STAGE_ACL, .acl = { .deny = deny, .n_deny = 1 } };
	struct sp_stage st = { .ops = &sp_acl_ops, .conf = &conf };
	ck_assert_int_eq(judge(&st, v4("192.168.4.4"), 0), SP_VERDICT_DENY);
	ck_assert_int_eq(judge(&st, v4("10.1.1.1"), 0), SP_VERDICT_PASS);
	ck_assert_int_eq(judge(&st, v6("2001:db8::1"), 0), SP_VERDICT_PASS);
}
END_TEST

static void rl_make(struct sp_stage *st, struct sp_conf_stage *conf, double rate, unsigned burst,
		    unsigned max_sources)
{
	*conf = (struct sp_conf_stage){ .kind = SP_STAGE_RATE_LIMIT,
		.rate_limit = { .per_source = rate, .burst = burst, .max_sources = max_sources } };
	*st = (struct sp_stage){ .ops = &sp_rate_limit_ops, .conf = conf };
	char err[64];
	ck_assert_int_eq(st->ops->init(st, 2, err, sizeof(err)), 0);
}

#define MS 1000000ull

START_TEST(rate_limit_burst_and_refill)
{
	struct sp_stage st;
	struct sp_conf_stage conf;
	rl_make(&st, &conf, 10, 5, 0); /* 10/s, burst 5 */
	uint64_t t0 = sp_now_ns();

	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(judge(&st, v4("10.0.0.1"), t0), SP_VERDICT_PASS);
	ck_assert_int_eq(judge(&st, v4("10.0.0.1"), t0), SP_VERDICT_DENY);
	/* another address has its own bucket */
	ck_assert_int_eq(judge(&st, v4("10.0.0.2"), t0), SP_VERDICT_PASS);
	/* 10/s: one token per 100 ms, not before */
	ck_assert_int_eq(judge(&st, v4("10.0.0.1"), t0 + 50 * MS), SP_VERDICT_DENY);
	ck_assert_int_eq(judge(&st, v4("10.0.0.1"), t0 + 101 * MS), SP_VERDICT_PASS);
	ck_assert_int_eq(judge(&st, v4("10.0.0.1"), t0 + 102 * MS), SP_VERDICT_DENY);
	/* a long pause refills to the burst, no more */
	int passed = 0;
	for (int i = 0; i < 20; i++)
		passed += judge(&st, v4("10.0.0.1"), t0 + 60000 * MS) == SP_VERDICT_PASS;
	ck_assert_int_eq(passed, 5);
	/* the same address as v4-mapped IPv6 shares the bucket */
	ck_assert_int_eq(judge(&st, v6("::ffff:10.0.0.1"), t0 + 60000 * MS), SP_VERDICT_DENY);
	st.ops->destroy(&st);
}
END_TEST

START_TEST(rate_limit_slow_rate_accumulates)
{
	struct sp_stage st;
	struct sp_conf_stage conf;
	rl_make(&st, &conf, 1.0 / 60, 1, 0); /* one a minute: fractions must add up */
	uint64_t t0 = sp_now_ns();
	ck_assert_int_eq(judge(&st, v4("10.9.9.9"), t0), SP_VERDICT_PASS);
	int passed = 0;
	for (uint64_t t = 1; t < 59000; t += 7) /* every 7 ms for 59 s: still empty */
		passed += judge(&st, v4("10.9.9.9"), t0 + t * MS) == SP_VERDICT_PASS;
	ck_assert_int_eq(passed, 0);
	ck_assert_int_eq(judge(&st, v4("10.9.9.9"), t0 + 60100 * MS), SP_VERDICT_PASS);
	st.ops->destroy(&st);
}
END_TEST

START_TEST(rate_limit_bounded_table)
{
	struct sp_stage st;
	struct sp_conf_stage conf;
	rl_make(&st, &conf, 1, 1, 64); /* 64 sources tracked */
	uint64_t t0 = sp_now_ns();
	char ip[32];
	/* 100000 addresses: the table does not grow, each new one starts with its burst */
	for (int i = 0; i < 100000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		ck_assert_int_eq(judge(&st, v4(ip), t0 + (uint64_t)i), SP_VERDICT_PASS);
	}
	/* a recent address still has its (empty) bucket */
	ck_assert_int_eq(judge(&st, v4(ip), t0 + 100000), SP_VERDICT_DENY);
	st.ops->destroy(&st);
}
END_TEST

struct race {
	struct sp_stage *st;
	uint64_t now;
	_Atomic int passed;
};

static void *take_tokens(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 10000; i++)
		if (judge(r->st, v4("10.1.2.3"), r->now) == SP_VERDICT_PASS)
			atomic_fetch_add(&r->passed, 1);
	return NULL;
}

START_TEST(rate_limit_threads_share_one_bucket)
{
	struct sp_stage st;
	struct sp_conf_stage conf;
	rl_make(&st, &conf, 1, 1000, 0);
	struct race r = { .st = &st, .now = sp_now_ns() };
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, take_tokens, &r);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&r.passed), 1000); /* exactly the burst, at one instant */
	st.ops->destroy(&st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("filters");
	TCase *tc = tcase_create("acl");
	tcase_add_test(tc, acl_allow_and_deny);
	tcase_add_test(tc, acl_deny_only);
	suite_add_tcase(s, tc);
	tc = tcase_create("rate_limit");
	tcase_add_test(tc, rate_limit_burst_and_refill);
	tcase_add_test(tc, rate_limit_slow_rate_accumulates);
	tcase_add_test(tc, rate_limit_bounded_table);
	tcase_add_test(tc, rate_limit_threads_share_one_bucket);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
