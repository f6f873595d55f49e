/* SPDX-License-Identifier: MIT */
/*
 * fuzz_selftest.c - a libFuzzer target that fails on purpose, in the way that
 * -DSP_FUZZ_FAIL=N names (0: never fails). run-fuzz-selftest builds one per way and runs
 * each through lib-fuzz.sh, as the real runners do: every one must be a FAIL with its
 * crashing input kept, never a pass or a skip.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			abort();                                                               \
	} while (0)

enum { OK, ABORT, LEAK, OVERFLOW, UNDEFINED, TIMEOUT, OOM };

static void *volatile keep; /* stops the compiler from removing what the failures need */
static volatile int one = 1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data;
	(void)size;
	switch (SP_FUZZ_FAIL) {
	case ABORT: /* what the real targets' CHECK() does */
		CHECK(one == 0);
		break;
	case LEAK:
		keep = malloc(64);
		keep = NULL;
		break;
	case OVERFLOW: {
		char *p = malloc(8);
		keep = p;
		p[8 * one] = 1;
		free(p);
		break;
	}
	case UNDEFINED: {
		int big = INT_MAX - 1 + one;
		keep = (void *)(intptr_t)(big + one);
		break;
	}
	case TIMEOUT:
		while (one)
			;
		break;
	case OOM: { /* 32 MiB at a time, touched and kept: -rss_limit_mb's check trips */
		static void *chunk[64];
		for (size_t i = 0; i < 64; i++) {
			chunk[i] = malloc((size_t)32 << 20);
			if (chunk[i])
				memset(chunk[i], one, (size_t)32 << 20);
		}
		break;
	}
	}
	return 0;
}
