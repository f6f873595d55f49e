/* SPDX-License-Identifier: MIT */
/* runq.c - the stealable run queue (see runq.h for the protocol). */
#include "engine/runq.h"

void sp_runq_init(struct sp_runq *q)
{
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	for (unsigned i = 0; i < SP_RUNQ_CAP; i++) {
		atomic_init(&q->slot[i], NULL);
		atomic_init(&q->cost[i], 0);
	}
}

bool sp_runq_push(struct sp_runq *q, struct sp_task *t)
{
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);

	if (tail - head >= SP_RUNQ_CAP)
		return false;
	/* Slots between head and tail are never rewritten while head stays put, so a thief
	 * that copied them and then wins its CAS on head got valid tasks. */
	atomic_store_explicit(&q->slot[tail & SP_RUNQ_MASK], t, memory_order_relaxed);
	atomic_store_explicit(&q->cost[tail & SP_RUNQ_MASK],
			      atomic_load_explicit(&t->cost_ns, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	return true;
}

struct sp_task *sp_runq_pop(struct sp_runq *q)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);

	for (;;) {
		uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (head == tail)
			return NULL;
		struct sp_task *t = atomic_load_explicit(&q->slot[head & SP_RUNQ_MASK],
							 memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(&q->head, &head, head + 1,
							  memory_order_acq_rel,
							  memory_order_acquire))
			return t;
	}
}

unsigned sp_runq_steal(struct sp_runq *q, struct sp_task **out, unsigned max, unsigned min_len)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
		uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
		uint64_t len = tail - head;

		if (len > SP_RUNQ_CAP) /* torn snapshot: head moved between the loads */
			continue;
		if (len < min_len || len == 0)
			return 0;
		unsigned n = (unsigned)((len + 1) / 2);
		if (n > max)
			n = max;
		for (unsigned i = 0; i < n; i++)
			out[i] = atomic_load_explicit(&q->slot[(head + i) & SP_RUNQ_MASK],
						      memory_order_relaxed);
		if (atomic_compare_exchange_strong_explicit(&q->head, &head, head + n,
							    memory_order_acq_rel,
							    memory_order_relaxed))
			return n;
	}
	return 0;
}

unsigned sp_runq_len(const struct sp_runq *q)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	return tail > head ? (unsigned)(tail - head) : 0;
}

bool sp_runq_head_cost(struct sp_runq *q, uint32_t *cost)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);

	if (tail <= head || tail - head > SP_RUNQ_CAP)
		return false;
	*cost = atomic_load_explicit(&q->cost[head & SP_RUNQ_MASK], memory_order_relaxed);
	return true;
}
