/* SPDX-License-Identifier: MIT */
/* bench_util.c - clocks, waits, CPU work, medians and the result table (see bench.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

const char *const bench_variant_name[V_COUNT] = { "engine", "nosteal", "epoll" };

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("engine_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stdout);
	exit(2);
}

/* ---- cross-thread signal ----------------------------------------------------------- */

void bench_done_reset(struct bench_done *d)
{
	atomic_store(&d->v, 0);
}

void bench_done_signal(struct bench_done *d)
{
	atomic_store_explicit(&d->v, 1, memory_order_release);
	syscall(SYS_futex, &d->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int bench_done_wait(struct bench_done *d, unsigned timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (!atomic_load_explicit(&d->v, memory_order_acquire)) {
		uint64_t now = bench_now_ns();
		if (now >= deadline)
			return -1;
		uint64_t left = deadline - now;
		if (left > 100000000ull)
			left = 100000000ull; /* re-check at least every 100 ms */
		struct timespec ts = { (time_t)(left / 1000000000ull), (long)(left % 1000000000ull) };
		syscall(SYS_futex, &d->v, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
	}
	return 0;
}

/* ---- CPU work ---------------------------------------------------------------------- */

void bench_cpu_work(uint64_t iters, uint64_t seed)
{
	uint64_t x = seed | 1, acc = 0;

	for (uint64_t i = 0; i < iters; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		acc ^= x >> 29;
		acc += acc << 3;
	}
	__asm__ volatile("" : : "r"(acc) : "memory");
}

double bench_cpu_ns_per_iter(void)
{
	static double cached;
	if (cached > 0)
		return cached;
	double best = 1e9;
	for (int r = 0; r < 5; r++) {
		uint64_t t0 = bench_now_ns();
		bench_cpu_work(2000000, 7);
		double ns = (double)(bench_now_ns() - t0) / 2000000.0;
		if (ns < best)
			best = ns;
	}
	return cached = best;
}

bool bench_pin_self(unsigned cpu)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % (unsigned)(ncpu > 0 ? ncpu : 1), &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_median(const double *v, int n)
{
	double tmp[BENCH_MAX_ROUNDS];
	if (n <= 0)
		return 0;
	if (n > BENCH_MAX_ROUNDS)
		n = BENCH_MAX_ROUNDS;
	memcpy(tmp, v, sizeof(double) * (size_t)n);
	qsort(tmp, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* ---- rows and table ------------------------------------------------------------------ */

static struct bench_row rows[BENCH_MAX_ROWS];
static int nrows;

struct bench_row *bench_row_new(const char *case_name, const char *label, const char *unit,
				bool higher_better)
{
	if (nrows == BENCH_MAX_ROWS)
		bench_die("too many result rows");
	struct bench_row *r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->case_name, sizeof(r->case_name), "%s", case_name);
	snprintf(r->label, sizeof(r->label), "%s", label);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	r->higher_better = higher_better;
	return r;
}

void bench_row_add(struct bench_row *r, enum bench_variant v, double value)
{
	if (r->n[v] < BENCH_MAX_ROUNDS)
		r->v[v][r->n[v]++] = value;
}

void bench_row_add_steals(struct bench_row *r, enum bench_variant v, uint64_t steals)
{
	if (r->nsteals[v] < BENCH_MAX_ROUNDS)
		r->steals[v][r->nsteals[v]++] = (double)steals;
}

void bench_row_na(struct bench_row *r, enum bench_variant v)
{
	r->na[v] = true;
}

void bench_row_note(struct bench_row *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
	va_end(ap);
}

static bool have(const struct bench_row *r, enum bench_variant v)
{
	return !r->na[v] && r->n[v] > 0;
}

static double med(const struct bench_row *r, enum bench_variant v)
{
	return bench_median(r->v[v], r->n[v]);
}

/* How many times faster the engine is than variant v (> 1: the engine wins). */
static double ratio(const struct bench_row *r, enum bench_variant v)
{
	double e = med(r, V_ENGINE), b = med(r, v);
	if (e <= 0 || b <= 0)
		return 0;
	return r->higher_better ? e / b : b / e;
}

static void fmt_value(char *buf, size_t len, double v)
{
	double a = v < 0 ? -v : v;
	if (a >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (a >= 100)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3f", v);
}

void bench_print_markdown(const char *header)
{
	char b[V_COUNT][32], rat[2][32];

	if (header)
		printf("%s\n\n", header);
	printf("| case | engine | nosteal | epoll | unit | epoll÷engine | nosteal÷engine |\n");
	printf("| --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
	for (int i = 0; i < nrows; i++) {
		const struct bench_row *r = &rows[i];
		for (int v = 0; v < V_COUNT; v++) {
			if (have(r, v))
				fmt_value(b[v], sizeof(b[v]), med(r, v));
			else
				snprintf(b[v], sizeof(b[v]), "n/a");
		}
		const enum bench_variant base[2] = { V_EPOLL, V_NOSTEAL };
		for (int k = 0; k < 2; k++) {
			if (have(r, V_ENGINE) && have(r, base[k]))
				snprintf(rat[k], sizeof(rat[k]), "%.2fx", ratio(r, base[k]));
			else
				snprintf(rat[k], sizeof(rat[k]), "n/a");
		}
		printf("| %s | %s | %s | %s | %s | %s | %s |\n", r->label, b[0], b[1], b[2], r->unit,
		       rat[0], rat[1]);
	}
	bool any = false;
	for (int i = 0; i < nrows; i++) {
		const struct bench_row *r = &rows[i];
		bool st = r->nsteals[V_ENGINE] || r->nsteals[V_NOSTEAL];
		if (!r->note[0] && !st)
			continue;
		if (!any)
			printf("\nNotes:\n");
		any = true;
		printf("- %s:", r->label);
		if (st)
			printf(" tasks stolen per run (median) engine %.0f, nosteal %.0f.",
			       bench_median(r->steals[V_ENGINE], r->nsteals[V_ENGINE]),
			       bench_median(r->steals[V_NOSTEAL], r->nsteals[V_NOSTEAL]));
		if (r->note[0])
			printf(" %s", r->note);
		printf("\n");
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

void bench_print_json(const char *const *meta_kv, unsigned nmeta)
{
	printf("{\n  \"meta\": {");
	for (unsigned i = 0; i + 1 < nmeta * 2; i += 2) {
		printf("%s", i ? ", " : "");
		json_str(meta_kv[i]);
		printf(": ");
		json_str(meta_kv[i + 1]);
	}
	printf("},\n  \"rows\": [");
	for (int i = 0; i < nrows; i++) {
		const struct bench_row *r = &rows[i];
		printf("%s\n    {\"case\": ", i ? "," : "");
		json_str(r->case_name);
		printf(", \"label\": ");
		json_str(r->label);
		printf(", \"unit\": ");
		json_str(r->unit);
		printf(", \"higher_is_better\": %s", r->higher_better ? "true" : "false");
		for (int v = 0; v < V_COUNT; v++) {
			printf(", \"%s\": ", bench_variant_name[v]);
			if (have(r, v))
				printf("%.6g", med(r, v));
			else
				printf("null");
		}
		const enum bench_variant base[2] = { V_EPOLL, V_NOSTEAL };
		const char *rn[2] = { "epoll_over_engine", "nosteal_over_engine" };
		for (int k = 0; k < 2; k++) {
			printf(", \"%s\": ", rn[k]);
			if (have(r, V_ENGINE) && have(r, base[k]))
				printf("%.4g", ratio(r, base[k]));
			else
				printf("null");
		}
		printf(", \"samples\": {");
		for (int v = 0; v < V_COUNT; v++) {
			printf("%s\"%s\": [", v ? ", " : "", bench_variant_name[v]);
			for (int k = 0; have(r, v) && k < r->n[v]; k++)
				printf("%s%.6g", k ? ", " : "", r->v[v][k]);
			printf("]");
		}
		printf("}");
		if (r->nsteals[V_ENGINE] || r->nsteals[V_NOSTEAL])
			printf(", \"steals_median\": {\"engine\": %.0f, \"nosteal\": %.0f}",
			       bench_median(r->steals[V_ENGINE], r->nsteals[V_ENGINE]),
			       bench_median(r->steals[V_NOSTEAL], r->nsteals[V_NOSTEAL]));
		if (r->note[0]) {
			printf(", \"note\": ");
			json_str(r->note);
		}
		printf("}");
	}
	printf("\n  ]\n}\n");
}
