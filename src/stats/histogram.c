/* SPDX-License-Identifier: MIT */
/* histogram.c - bucket bounds, merging and quantiles of the log-linear histograms. */
#include "stats/histogram.h"

/* Bucket i >= 100 (not the overflow one): its mantissa m (10..99) and scale 10^d. */
static void split(unsigned i, uint64_t *m, uint64_t *scale)
{
	unsigned d = (i - 100) / 90 + 1;
	*m = (i - 100) % 90 + 10;
	*scale = 1;
	while (d--)
		*scale *= 10;
}

uint64_t sp_hist_lower(unsigned i)
{
	uint64_t m, scale;
	if (i < 100)
		return i;
	if (i >= SP_HIST_BUCKETS - 1)
		return SP_HIST_MAX_US;
	split(i, &m, &scale);
	return m * scale;
}

uint64_t sp_hist_upper(unsigned i)
{
	uint64_t m, scale;
	if (i < 100)
		return i;
	if (i >= SP_HIST_BUCKETS - 1)
		return UINT64_MAX;
	split(i, &m, &scale);
	return (m + 1) * scale - 1;
}

void sp_hist_merge(struct sp_hist_snapshot *s, const struct sp_histogram *h, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
			uint64_t c = atomic_load_explicit(&h[k].bucket[i], memory_order_relaxed);
			s->bucket[i] += c;
			s->count += c;
		}
		s->sum_us += atomic_load_explicit(&h[k].sum_us, memory_order_relaxed);
	}
}

uint64_t sp_hist_quantile(const struct sp_hist_snapshot *s, double q)
{
	if (s->count == 0)
		return 0;
	double want = q * (double)s->count;
	uint64_t rank = want < 1 ? 1 : want >= (double)s->count ? s->count : (uint64_t)want;
	if ((double)rank < want && rank < s->count)
		rank++; /* ceil without libm */
	uint64_t seen = 0;
	for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
		seen += s->bucket[i];
		if (seen >= rank) {
			if (i == SP_HIST_BUCKETS - 1)
				return SP_HIST_MAX_US; /* beyond the range: say its start */
			uint64_t lo = sp_hist_lower(i);
			return lo + (sp_hist_upper(i) - lo) / 2;
		}
	}
	return SP_HIST_MAX_US; /* not reached: count is the sum of the buckets */
}

uint64_t sp_hist_count_below(const struct sp_hist_snapshot *s, uint64_t bound_us)
{
	/* every bucket before bound's own lies wholly below it */
	unsigned end = sp_hist_index(bound_us);
	uint64_t n = 0;
	for (unsigned i = 0; i < end; i++)
		n += s->bucket[i];
	return n;
}

int sp_hist_is_edge(uint64_t bound_us)
{
	return bound_us <= SP_HIST_MAX_US && sp_hist_lower(sp_hist_index(bound_us)) == bound_us;
}
