/* SPDX-License-Identifier: MIT */
/* log.c - formatting and level filter for sp_log; one write per line. */
#include "engine/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int max_level = SP_LOG_INFO;
static _Atomic(sp_log_sink_fn) sink;

void sp_log_set_level(int level)
{
	atomic_store(&max_level, level);
}

void sp_log_set_sink(sp_log_sink_fn fn)
{
	atomic_store(&sink, fn);
}

static const char *level_name(int level)
{
	switch (level) {
	case SP_LOG_ERR: return "error";
	case SP_LOG_WARN: return "warning";
	case SP_LOG_INFO: return "info";
	default: return "debug";
	}
}

void sp_log(int level, const char *fmt, ...)
{
	if (level > atomic_load_explicit(&max_level, memory_order_relaxed))
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	sp_log_sink_fn fn = atomic_load(&sink);
	if (fn) {
		fn(level, msg);
		return;
	}
	char line[1100];
	int n = snprintf(line, sizeof(line), "spargiod[%s]: %s\n", level_name(level), msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* One write so lines from several shards do not interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
