/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logging call. Lines go to stderr as "spargiod[LEVEL]: message"; the
 * daemon may install a sink (journald with structured fields) with sp_log_set_sink.
 *
 * Once sp_log_async_start has run, sp_log never blocks its caller: lines go into a
 * fixed ring (no allocation) and a writer thread hands them to the sink or stderr. A
 * shard is never held up by a slow journald or a full pipe; when the ring is full a
 * line is dropped and counted, and the writer reports how many.
 */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdarg.h>

enum sp_log_level { SP_LOG_ERR = 3, SP_LOG_WARN = 4, SP_LOG_INFO = 6, SP_LOG_DEBUG = 7 };

/* fields: NULL, or extra journal fields "KEY=value\nKEY=value" (no trailing newline). */
typedef void (*sp_log_sink_fn)(int level, const char *msg, const char *fields);

void sp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with structured fields for the journal (ignored on stderr). */
void sp_log_fields(int level, const char *fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sp_log_set_level(int max_level);
void sp_log_set_sink(sp_log_sink_fn sink);

/* Start the writer thread (once); stop flushes every queued line and joins it. */
int sp_log_async_start(void);
void sp_log_async_stop(void);

#endif
