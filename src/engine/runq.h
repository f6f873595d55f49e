/* SPDX-License-Identifier: MIT */
/*
 * runq.h - a shard's queue of ready stealable tasks: a bounded ring, single producer
 * (the owning shard pushes at the tail), many consumers (the owner and thieves take
 * from the head with a CAS). Owner pops are FIFO, so a task cannot starve behind newer
 * ones; a thief copies about half of the queue and claims it with one CAS on head.
 * head and tail are 64-bit and only grow, so there is no ABA.
 */
#ifndef SP_RUNQ_H
#define SP_RUNQ_H

#include "engine/engine.h"

#define SP_RUNQ_CAP 256u
#define SP_RUNQ_MASK (SP_RUNQ_CAP - 1)
#define SP_STEAL_MAX 64u /* tasks taken per steal at most */

struct sp_runq {
	_Atomic uint64_t head;
	char pad0[56]; /* keep thieves' CAS off the owner's tail line */
	_Atomic uint64_t tail;
	char pad1[56];
	struct sp_task *_Atomic slot[SP_RUNQ_CAP];
	/* the task's last run time (sp_task.cost_ns) when pushed: a thief can weigh the
	 * head of the queue without touching a task it does not own */
	_Atomic uint32_t cost[SP_RUNQ_CAP];
};

void sp_runq_init(struct sp_runq *q);
/* Owner only. false: full (the caller keeps the task elsewhere). */
bool sp_runq_push(struct sp_runq *q, struct sp_task *t);
/* Owner only. NULL: empty. */
struct sp_task *sp_runq_pop(struct sp_runq *q);
/* Any thread: take about half of q when it holds at least min_len tasks, at most max,
 * into out. Returns how many were taken (0 when below min_len or lost every race). */
unsigned sp_runq_steal(struct sp_runq *q, struct sp_task **out, unsigned max, unsigned min_len);
/* Any thread; a snapshot. */
unsigned sp_runq_len(const struct sp_runq *q);
/* Any thread: the cost recorded with the oldest queued task; false when empty. A
 * snapshot, for heuristics only. */
bool sp_runq_head_cost(struct sp_runq *q, uint32_t *cost);

#endif
