/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logging call. Lines go to stderr as "spargiod[LEVEL]: message"; the
 * daemon may install a sink (journald with structured fields) with sp_log_set_sink.
 */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdarg.h>

enum sp_log_level { SP_LOG_ERR = 3, SP_LOG_WARN = 4, SP_LOG_INFO = 6, SP_LOG_DEBUG = 7 };

typedef void (*sp_log_sink_fn)(int level, const char *msg);

void sp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sp_log_set_level(int max_level);
void sp_log_set_sink(sp_log_sink_fn sink);

#endif
