/* SPDX-License-Identifier: MIT */
/*
 * bug.h - invariants of the engine's state machines (ops, tasks, timers), checked in
 * every build, release included. A broken one means memory may be reused under a
 * shard's feet: going on would turn it into silent corruption, so the process logs
 * the place and the condition and aborts (a core dump, systemd restarts the daemon).
 * Only for conditions that cost a compare on paths already touched; never for input.
 */
#ifndef SP_BUG_H
#define SP_BUG_H

void sp_bug(const char *file, int line, const char *func, const char *cond)
	__attribute__((noreturn, cold));

#define SP_BUG_ON(cond)                                                           \
	do {                                                                      \
		if (__builtin_expect(!!(cond), 0))                                \
			sp_bug(__FILE__, __LINE__, __func__, #cond);              \
	} while (0)

#endif
