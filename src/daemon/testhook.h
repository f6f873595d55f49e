/* SPDX-License-Identifier: MIT */
/*
 * testhook.h - hooks for the tests that only a test build of the daemon has
 * (tests/tools/spargiod-hooks, compiled with SP_TEST_HOOKS; never installed). In
 * spargiod itself they are empty and cost nothing.
 */
#ifndef SP_DAEMON_TESTHOOK_H
#define SP_DAEMON_TESTHOOK_H

struct sp_daemon;

#ifdef SP_TEST_HOOKS
/* On each tick of the main thread: SPARGIOD_TEST_STALL=SHARD:AFTER_MS:FOR_MS wedges
 * that shard for FOR_MS once AFTER_MS have passed since the first tick (the watchdog's
 * test), saying so to the service manager (X_SPARGIOD_TEST_STALL=begin/end). */
void sp_testhook_tick(struct sp_daemon *d);
#else
static inline void sp_testhook_tick(struct sp_daemon *d)
{
	(void)d;
}
#endif

#endif
