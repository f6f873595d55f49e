/* SPDX-License-Identifier: MIT */
/*
 * mpsc.h - intrusive multi-producer single-consumer queue of sp_msg (Vyukov's design).
 *
 * Producers (any thread) push with one atomic exchange: wait-free, FIFO per producer.
 * The one consumer is the shard owning the queue. A producer preempted between its
 * exchange and its link leaves the queue briefly "inconsistent": pop then returns NULL
 * although the queue is not empty; sp_mpsc_maybe_nonempty stays true, so the consumer
 * does not go to sleep on it, and the producer's doorbell follows its link anyway.
 */
#ifndef SP_MPSC_H
#define SP_MPSC_H

#include "engine/engine.h"

struct sp_mpsc {
	struct sp_msg *_Atomic head; /* last pushed; producers */
	struct sp_msg *tail;         /* next to pop; consumer only */
	struct sp_msg stub;
};

static inline void sp_mpsc_init(struct sp_mpsc *q)
{
	atomic_init(&q->stub.next, NULL);
	atomic_init(&q->head, &q->stub);
	q->tail = &q->stub;
}

static inline void sp_mpsc_push(struct sp_mpsc *q, struct sp_msg *m)
{
	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	/* acq_rel: publishes m's fields to the consumer, orders against other producers */
	struct sp_msg *prev = atomic_exchange_explicit(&q->head, m, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

static inline struct sp_msg *sp_mpsc_pop(struct sp_mpsc *q)
{
	struct sp_msg *tail = q->tail;
	struct sp_msg *next = atomic_load_explicit(&tail->next, memory_order_acquire);

	if (tail == &q->stub) {
		if (!next)
			return NULL;
		q->tail = next;
		tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (next) {
		q->tail = next;
		return tail;
	}
	if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
		return NULL; /* a producer is between exchange and link */
	sp_mpsc_push(q, &q->stub);
	next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (next) {
		q->tail = next;
		return tail;
	}
	return NULL;
}

/* Consumer only: false means certainly empty. */
static inline bool sp_mpsc_maybe_nonempty(struct sp_mpsc *q)
{
	return !(q->tail == &q->stub &&
		 atomic_load_explicit(&q->head, memory_order_acquire) == &q->stub);
}

#endif
