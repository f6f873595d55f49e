/* SPDX-License-Identifier: MIT */
/* stats.c - lock-free snapshot of a shard's counters (each written only by its shard). */
#include <assert.h>

#include "engine/shard.h"

static_assert(sizeof(struct sp_shard_stats) == ST_COUNT * sizeof(uint64_t),
	      "enum sp_stat and struct sp_shard_stats must list the same counters");

void sp_shard_stats_read(struct sp_shard *sh, struct sp_shard_stats *out)
{
	uint64_t *dst = (uint64_t *)out;

	for (unsigned i = 0; i < ST_COUNT; i++)
		dst[i] = atomic_load_explicit(&sh->st[i], memory_order_relaxed);
	/* "stolen" is derived: tasks that left our run queue without us popping them */
	uint64_t head = atomic_load_explicit(&sh->runq.head, memory_order_relaxed);
	uint64_t pops = dst[ST_STOLEN];
	out->stolen = head > pops ? head - pops : 0;
}
