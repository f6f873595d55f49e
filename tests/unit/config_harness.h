/* SPDX-License-Identifier: MIT */
/*
 * config_harness.h - helpers of the config loader's Check suites: load YAML text that
 * must be valid (failing with its errors shown), or that must fail with exactly the
 * listed "t.yaml:LINE:COL: message" lines, in order.
 */
#ifndef SP_TEST_CONFIG_HARNESS_H
#define SP_TEST_CONFIG_HARNESS_H

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"

static inline struct sp_config *load_ok(const char *yaml)
{
	struct sp_config *cfg = NULL;
	struct sp_conf_errors errs;
	int ret = sp_config_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errs);
	for (unsigned i = 0; i < errs.count; i++)
		fprintf(stderr, "unexpected: %s\n", errs.msgs[i]);
	ck_assert_msg(ret == 0, "load failed (%d): %s", ret, errs.count ? errs.msgs[0] : "?");
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(errs.count, 0);
	sp_conf_errors_free(&errs);
	return cfg;
}

/* Load yaml, which must fail; returns its errors (the caller frees them). */
static inline struct sp_conf_errors load_bad(const char *yaml, size_t len)
{
	struct sp_config *cfg = (struct sp_config *)1;
	struct sp_conf_errors errs;
	int ret = sp_config_load_buffer("t.yaml", yaml, len, &cfg, &errs);
	ck_assert_int_eq(ret, -22);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_ge(errs.count, 1);
	return errs;
}

/* With SP_TEST_SHOW set, print each error and the text at its position (to write new
 * expectations by looking, not by counting columns). */
static inline void show_errors(const char *yaml, const struct sp_conf_errors *errs)
{
	if (!getenv("SP_TEST_SHOW"))
		return;
	for (unsigned i = 0; i < errs->count; i++) {
		unsigned line = 0, col = 0, l = 1, c = 1;
		const char *p = yaml;
		sscanf(errs->msgs[i], "t.yaml:%u:%u:", &line, &col);
		for (; *p && (l < line || (l == line && c < col)); p++) {
			if (*p == '\n') {
				l++;
				c = 1;
			} else if ((*p & 0xc0) != 0x80) {
				c++;
			}
		}
		fprintf(stderr, "%s\n    at: %.20s\n", errs->msgs[i], p);
	}
}

/* The errors of yaml must be exactly the NULL-terminated list of lines that follows. */
static inline void expect_errors(const char *yaml, ...)
{
	struct sp_conf_errors errs = load_bad(yaml, strlen(yaml));
	show_errors(yaml, &errs);
	va_list ap;
	unsigned i = 0;
	va_start(ap, yaml);
	for (const char *want; (want = va_arg(ap, const char *)); i++) {
		ck_assert_msg(i < errs.count, "missing error %u: %s", i, want);
		ck_assert_str_eq(errs.msgs[i], want);
	}
	va_end(ap);
	for (unsigned j = i; j < errs.count; j++)
		fprintf(stderr, "extra: %s\n", errs.msgs[j]);
	ck_assert_uint_eq(errs.count, i);
	ck_assert_uint_eq(errs.dropped, 0);
	sp_conf_errors_free(&errs);
}

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int run_config_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
