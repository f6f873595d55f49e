/* SPDX-License-Identifier: MIT */
/*
 * histogram.h - log-linear latency histograms (HDR style, two significant decimal
 * digits) for session durations and request latencies, in microseconds.
 *
 * Buckets: every value below 100 has its own bucket; above, each decade [10^d, 10^d+1)
 * is cut into 90 linear buckets of width 10^(d-1) (100-109, 110-119, ..., 990-999,
 * 1000-1099, ...). A bucket's width is at most 10% of its values, so a percentile
 * reported as the middle of its bucket is within 5%, and every "round" bound an
 * operator asks about (250 us, 2.5 ms, 1 s, 30 s) is a bucket edge: counts below it are
 * exact. Values from SP_HIST_MAX_US up share the last bucket.
 *
 * Threads: one struct sp_histogram per shard, written only by its shard (relaxed load
 * and store, no read-modify-write), read by anyone: sp_hist_merge sums the shards into
 * a plain snapshot. What lives here is the arithmetic; who owns histograms (routes,
 * handlers) says so in its own header.
 */
#ifndef SP_HISTOGRAM_H
#define SP_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#define SP_HIST_DECADES 9                       /* 10^2 .. 10^11 us (~28 hours) */
#define SP_HIST_MAX_US 100000000000ull          /* 10^11 */
#define SP_HIST_BUCKETS (100 + SP_HIST_DECADES * 90 + 1) /* + the overflow bucket */

/* One shard's histogram: written by that shard only. */
struct sp_histogram {
	_Atomic uint64_t bucket[SP_HIST_BUCKETS];
	_Atomic uint64_t sum_us; /* sum of the recorded values (for means and _sum) */
} __attribute__((aligned(64)));

/* Merged counts of one or more histograms (plain memory, owned by the reader). */
struct sp_hist_snapshot {
	uint64_t bucket[SP_HIST_BUCKETS];
	uint64_t count;  /* sum of bucket[]: a reader may see a bucket before the sum moved */
	uint64_t sum_us;
};

/* The bucket of value v (us): a few compares and one division. */
static inline unsigned sp_hist_index(uint64_t v)
{
	if (v < 100)
		return (unsigned)v;
	if (v >= SP_HIST_MAX_US)
		return SP_HIST_BUCKETS - 1;
	uint64_t scale = 10; /* v / scale is in 10..99 */
	unsigned d = 1;
	while (v >= scale * 100) {
		scale *= 10;
		d++;
	}
	return 100 + (d - 1) * 90 + (unsigned)(v / scale) - 10;
}
/* Smallest and largest value of bucket i (the overflow bucket ends at UINT64_MAX). */
uint64_t sp_hist_lower(unsigned i);
uint64_t sp_hist_upper(unsigned i);

/* Record v (us) in the calling shard's own histogram h. */
static inline void sp_hist_record(struct sp_histogram *h, uint64_t v)
{
	_Atomic uint64_t *b = &h->bucket[sp_hist_index(v)];
	/* single writer: a load and a store, no locked instruction on the data path */
	atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&h->sum_us,
			      atomic_load_explicit(&h->sum_us, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* Add the n histograms at h (an array, one per shard) into s (zero it first). */
void sp_hist_merge(struct sp_hist_snapshot *s, const struct sp_histogram *h, unsigned n);

/* The value at quantile q (0 < q <= 1): the middle of the bucket holding the
 * ceil(q * count)-th smallest value. 0 when s is empty. */
uint64_t sp_hist_quantile(const struct sp_hist_snapshot *s, double q);

/* How many values are below bound_us. Exact when bound_us is a bucket's lower edge
 * (every value below 100, and m * 10^d for 10 <= m <= 99): sp_hist_is_edge says. */
uint64_t sp_hist_count_below(const struct sp_hist_snapshot *s, uint64_t bound_us);
int sp_hist_is_edge(uint64_t bound_us);

#endif
