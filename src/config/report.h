/* SPDX-License-Identifier: MIT */
/*
 * report.h - the one reporter of config errors. Every part of the loader reports through
 * sp_report() with a position; the report sorts them by place in the file and hands at
 * most SP_CONF_MAX_ERRORS of them, formatted "FILE:LINE:COL: message", to the caller.
 */
#ifndef SP_CONF_REPORT_H
#define SP_CONF_REPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct sp_report_entry {
	struct sp_conf_pos pos;
	char *msg; /* the whole formatted line, malloc'd */
};

struct sp_conf_report {
	const char *name; /* the file name that starts every line */
	struct sp_report_entry *v;
	size_t n, cap;
	unsigned dropped; /* past the internal bound, or lost to out of memory */
};

void sp_report_init(struct sp_conf_report *r, const char *name);

/* Report an error at pos; pos.line 0 means the whole file ("FILE: message"). */
void sp_report(struct sp_conf_report *r, struct sp_conf_pos pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void sp_vreport(struct sp_conf_report *r, struct sp_conf_pos pos, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

unsigned sp_report_count(const struct sp_conf_report *r);

/* Sort by position, append to errs (within its limit) and empty r. errs may be NULL. */
void sp_report_finish(struct sp_conf_report *r, struct sp_conf_errors *errs);

/* Copy at most len bytes of s into buf (size > 4) for a message: control characters
 * become '?', long text is cut with "...". Returns buf. */
char *sp_show(char *buf, size_t size, const char *s, size_t len);

/* The candidate nearest to word by edit distance when close enough to be a likely typo
 * ("shrads" -> "shards"), else NULL. cands is NULL-terminated. */
const char *sp_suggest(const char *word, const char *const *cands);

#endif
