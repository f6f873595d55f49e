/* SPDX-License-Identifier: MIT */
/*
 * test_histogram.c - the log-linear histograms of src/stats: every value lands in a
 * bucket that holds it, buckets tile the range without gaps, widths stay within 10%,
 * quantiles of known distributions within 5%, exact counts below every exported bound,
 * merging shards, empty histograms, the overflow bucket; and the figures' summing of
 * route counters (active never negative).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "stats/figures.h"
#include "stats/histogram.h"

static struct sp_histogram *hists(unsigned n)
{
	struct sp_histogram *h = aligned_alloc(64, sizeof(*h) * n);
	ck_assert_ptr_nonnull(h);
	memset(h, 0, sizeof(*h) * n);
	return h;
}

static struct sp_hist_snapshot *snap_of(const struct sp_histogram *h, unsigned n)
{
	struct sp_hist_snapshot *s = calloc(1, sizeof(*s));
	ck_assert_ptr_nonnull(s);
	sp_hist_merge(s, h, n);
	return s;
}

START_TEST(buckets_tile_the_range)
{
	ck_assert_uint_eq(sp_hist_lower(0), 0);
	for (unsigned i = 1; i < SP_HIST_BUCKETS; i++) {
		ck_assert_uint_eq(sp_hist_lower(i), sp_hist_upper(i - 1) + 1);
		ck_assert_uint_eq(sp_hist_index(sp_hist_lower(i)), i);
		ck_assert_uint_eq(sp_hist_index(sp_hist_upper(i)), i);
		if (i >= 100 && i < SP_HIST_BUCKETS - 1) /* width at most 10% of the values */
			ck_assert_uint_le((sp_hist_upper(i) - sp_hist_lower(i) + 1) * 10,
					  sp_hist_lower(i));
	}
	ck_assert_uint_eq(sp_hist_upper(SP_HIST_BUCKETS - 1), UINT64_MAX);
	ck_assert_uint_eq(sp_hist_lower(SP_HIST_BUCKETS - 1), SP_HIST_MAX_US);
}
END_TEST

START_TEST(index_holds_the_value)
{
	static const uint64_t v[] = { 0, 1, 99, 100, 101, 109, 110, 999, 1000, 1099, 1100,
				      123456, 9999999, 10000000, SP_HIST_MAX_US - 1,
				      SP_HIST_MAX_US, UINT64_MAX };
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		unsigned i = sp_hist_index(v[k]);
		ck_assert_uint_lt(i, SP_HIST_BUCKETS);
		ck_assert_uint_le(sp_hist_lower(i), v[k]);
		ck_assert_uint_ge(sp_hist_upper(i), v[k]);
	}
	/* pseudo-random values across the range */
	uint64_t x = 88172645463325252ull;
	for (int k = 0; k < 100000; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t val = x >> (x % 64);
		unsigned i = sp_hist_index(val);
		ck_assert(sp_hist_lower(i) <= val && val <= sp_hist_upper(i));
	}
}
END_TEST

START_TEST(quantiles_of_a_uniform_range)
{
	struct sp_histogram *h = hists(1);
	for (uint64_t v = 1; v <= 100000; v++)
		sp_hist_record(h, v);
	struct sp_hist_snapshot *s = snap_of(h, 1);
	ck_assert_uint_eq(s->count, 100000);
	ck_assert_uint_eq(s->sum_us, 100000ull * 100001 / 2);
	static const struct { double q; double want; } cases[] = {
		{ 0.5, 50000 }, { 0.9, 90000 }, { 0.99, 99000 }, { 0.999, 99900 }, { 1.0, 100000 },
		{ 0.00001, 1 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		double got = (double)sp_hist_quantile(s, cases[k].q);
		ck_assert_msg(got >= cases[k].want * 0.95 && got <= cases[k].want * 1.05,
			      "q %g: got %g want %g", cases[k].q, got, cases[k].want);
	}
	free(s);
	free(h);
}
END_TEST

START_TEST(small_values_are_exact)
{
	struct sp_histogram *h = hists(1);
	for (int k = 0; k < 9; k++)
		sp_hist_record(h, 7);
	sp_hist_record(h, 42);
	struct sp_hist_snapshot *s = snap_of(h, 1);
	ck_assert_uint_eq(sp_hist_quantile(s, 0.5), 7);
	ck_assert_uint_eq(sp_hist_quantile(s, 0.9), 7);
	ck_assert_uint_eq(sp_hist_quantile(s, 0.91), 42);
	ck_assert_uint_eq(sp_hist_quantile(s, 1.0), 42);
	free(s);
	free(h);
}
END_TEST

START_TEST(empty_and_overflow)
{
	struct sp_histogram *h = hists(1);
	struct sp_hist_snapshot *s = snap_of(h, 1);
	ck_assert_uint_eq(s->count, 0);
	ck_assert_uint_eq(sp_hist_quantile(s, 0.5), 0);
	ck_assert_uint_eq(sp_hist_count_below(s, 1000), 0);
	free(s);
	sp_hist_record(h, UINT64_MAX / 4);
	sp_hist_record(h, SP_HIST_MAX_US);
	s = snap_of(h, 1);
	ck_assert_uint_eq(s->bucket[SP_HIST_BUCKETS - 1], 2);
	ck_assert_uint_eq(sp_hist_quantile(s, 0.5), SP_HIST_MAX_US);
	ck_assert_uint_eq(sp_hist_count_below(s, SP_HIST_MAX_US), 0);
	free(s);
	free(h);
}
END_TEST

START_TEST(merge_adds_shards)
{
	struct sp_histogram *h = hists(3);
	for (unsigned k = 0; k < 3; k++)
		for (uint64_t v = 0; v < 1000; v++)
			sp_hist_record(&h[k], v * (k + 1));
	struct sp_hist_snapshot *s = snap_of(h, 3);
	ck_assert_uint_eq(s->count, 3000);
	ck_assert_uint_eq(s->sum_us, 999ull * 1000 / 2 * (1 + 2 + 3));
	/* values below 1000: all of shard 0, half of shard 1 (0..998 even), a third of 2 */
	ck_assert_uint_eq(sp_hist_count_below(s, 1000), 1000 + 500 + 334);
	free(s);
	free(h);
}
END_TEST

START_TEST(exported_bounds_are_exact_edges)
{
	struct sp_histogram *h = hists(1);
	for (unsigned i = 0; i < SP_FIG_BOUNDS; i++) {
		ck_assert_msg(sp_hist_is_edge(sp_fig_bounds_us[i]), "bound %llu",
			      (unsigned long long)sp_fig_bounds_us[i]);
		if (i)
			ck_assert_uint_gt(sp_fig_bounds_us[i], sp_fig_bounds_us[i - 1]);
		/* one value just under, one at the bound */
		sp_hist_record(h, sp_fig_bounds_us[i] - 1);
		sp_hist_record(h, sp_fig_bounds_us[i]);
	}
	ck_assert(!sp_hist_is_edge(251));
	ck_assert(sp_hist_is_edge(99));
	struct sp_latency_figures f;
	sp_figures_latency(h, 1, &f);
	ck_assert_uint_eq(f.count, 2 * SP_FIG_BOUNDS);
	for (unsigned i = 0; i < SP_FIG_BOUNDS; i++) /* exactly the values under bound i */
		ck_assert_uint_eq(f.below[i], 2 * i + 1);
	ck_assert_uint_le(f.p50_us, f.p90_us);
	ck_assert_uint_le(f.p90_us, f.p99_us);
	ck_assert_uint_le(f.p99_us, f.p999_us);
	free(h);
}
END_TEST

START_TEST(route_figures_sum_shards)
{
	struct sp_route_counters *c = aligned_alloc(64, sizeof(*c) * 2);
	memset(c, 0, sizeof(*c) * 2);
	struct sp_route r = { .counters = c };
	atomic_store(&c[0].opened, 5);
	atomic_store(&c[1].closed, 7); /* closes seen before their opens on another shard */
	atomic_store(&c[0].errors, 1);
	atomic_store(&c[1].bytes_in, 10);
	atomic_store(&c[0].bytes_out, 20);
	struct sp_route_figures f;
	sp_figures_route(&r, 2, &f);
	ck_assert_uint_eq(f.sessions, 5);
	ck_assert_uint_eq(f.active, 0);
	ck_assert_uint_eq(f.errors, 1);
	ck_assert_uint_eq(f.bytes_in, 10);
	ck_assert_uint_eq(f.bytes_out, 20);
	atomic_store(&c[1].opened, 4);
	sp_figures_route(&r, 2, &f);
	ck_assert_uint_eq(f.active, 2);
	free(c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("histogram");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, buckets_tile_the_range);
	tcase_add_test(tc, index_holds_the_value);
	tcase_add_test(tc, quantiles_of_a_uniform_range);
	tcase_add_test(tc, small_values_are_exact);
	tcase_add_test(tc, empty_and_overflow);
	tcase_add_test(tc, merge_adds_shards);
	tcase_add_test(tc, exported_bounds_are_exact_edges);
	tcase_add_test(tc, route_figures_sum_shards);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
