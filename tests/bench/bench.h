/* SPDX-License-Identifier: MIT */
/*
 * bench.h - helpers of the engine microbenchmark: clocks, bounded waits across threads,
 * synthetic CPU work, medians, and the result table (markdown or JSON).
 *
 * A result row holds one number per variant and round; the table shows the medians and
 * the ratios vs the engine, oriented so that > 1 always means "the engine is faster".
 */
#ifndef SP_BENCH_H
#define SP_BENCH_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define BENCH_MAX_ROUNDS 64
#define BENCH_MAX_ROWS 64

enum bench_variant { V_ENGINE = 0, V_NOSTEAL = 1, V_EPOLL = 2, V_COUNT };

extern const char *const bench_variant_name[V_COUNT];

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

/* Print to stderr and exit(2): a benchmark that cannot run is not a result. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* One-shot signal from any thread to a waiting thread (futex; no lock). */
struct bench_done {
	_Atomic uint32_t v;
};
void bench_done_reset(struct bench_done *d);
void bench_done_signal(struct bench_done *d);
/* 0 when signalled, -1 after timeout_ms. */
int bench_done_wait(struct bench_done *d, unsigned timeout_ms);

/* Synthetic CPU work: iters rounds of an LCG + xorshift chain (about 1-2 ns each), the
 * result folded into a global sink so that the compiler keeps it. Thread-safe. */
void bench_cpu_work(uint64_t iters, uint64_t seed);
/* ns per bench_cpu_work iteration on this machine, measured once. */
double bench_cpu_ns_per_iter(void);

static inline uint64_t bench_rand(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64 */
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Pin the calling thread to cpu (modulo the online CPUs); false on failure. */
bool bench_pin_self(unsigned cpu);

double bench_median(const double *v, int n);

/* ---- result rows ----------------------------------------------------------------- */

struct bench_row {
	char case_name[24];   /* --case selector: pingpong, oneway, ... */
	char label[80];       /* what the row measures */
	char unit[16];
	bool higher_better;   /* throughput units: ratio = engine / baseline */
	bool na[V_COUNT];     /* this variant does not apply */
	int n[V_COUNT];
	double v[V_COUNT][BENCH_MAX_ROUNDS];
	/* engine-side steal counts (sum over shards) per round, when relevant */
	int nsteals[V_COUNT];
	double steals[V_COUNT][BENCH_MAX_ROUNDS];
	char note[480];
};

struct bench_row *bench_row_new(const char *case_name, const char *label, const char *unit,
				bool higher_better);
void bench_row_add(struct bench_row *r, enum bench_variant v, double value);
void bench_row_add_steals(struct bench_row *r, enum bench_variant v, uint64_t steals);
void bench_row_na(struct bench_row *r, enum bench_variant v);
void bench_row_note(struct bench_row *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Print every row: markdown table + notes, or JSON. */
void bench_print_markdown(const char *header);
void bench_print_json(const char *const *meta_kv, unsigned nmeta);

#endif
