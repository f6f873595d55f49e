/* SPDX-License-Identifier: MIT */
/*
 * notify.c - systemd's notify protocol. Each state is its own message (systemd 252
 * mishandles some combinations); RELOADING carries MONOTONIC_USEC as systemd 253+
 * expects. Without NOTIFY_SOCKET every call is a no-op.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "daemon/daemon.h"

bool sp_notify_enabled(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	return e && *e;
}

void sp_notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void sp_notify_reloading(void)
{
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)(sp_now_ns() / 1000));
}

void sp_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void sp_notify_status(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *c = line; *c; c++)
		if (*c == '\n')
			*c = ' '; /* STATUS= is one line */
	sd_notifyf(0, "STATUS=%s", line);
}

void sp_notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}

uint64_t sp_notify_watchdog_usec(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
