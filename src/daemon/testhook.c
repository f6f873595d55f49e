/* SPDX-License-Identifier: MIT */
/*
 * testhook.c - the test build's hooks (see testhook.h). Built into
 * tests/tools/spargiod-hooks only: a shard made to stall on purpose is exactly what
 * the daemon must never do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon/daemon.h"
#include "daemon/testhook.h"
#include "engine/log.h"

static struct sp_msg stall_msg;
static unsigned stall_ms;

static void on_stall(struct sp_msg *m)
{
	(void)m;
	struct timespec ts = { stall_ms / 1000, (long)(stall_ms % 1000) * 1000000 };
	sp_log(SP_LOG_WARN, "test hook: this shard stalls for %u ms", stall_ms);
	sd_notify(0, "X_SPARGIOD_TEST_STALL=begin");
	while (nanosleep(&ts, &ts) < 0)
		;
	sd_notify(0, "X_SPARGIOD_TEST_STALL=end");
	sp_log(SP_LOG_WARN, "test hook: the shard runs again");
}

void sp_testhook_tick(struct sp_daemon *d)
{
	static uint64_t first_ns;
	static bool done;
	unsigned shard, after, len;
	const char *spec = getenv("SPARGIOD_TEST_STALL");
	if (done || !spec || sscanf(spec, "%u:%u:%u", &shard, &after, &len) != 3 ||
	    shard >= d->nshards)
		return;
	uint64_t now = sp_now_ns();
	if (!first_ns)
		first_ns = now;
	if (now - first_ns < (uint64_t)after * 1000000u)
		return;
	done = true;
	stall_ms = len;
	sp_msg_post(sp_engine_shard(d->eng, shard), &stall_msg, on_stall);
}
