/* SPDX-License-Identifier: MIT */
/*
 * epoll_rt.h - baseline (a) of the engine benchmark: the thread-per-core event loop a C
 * programmer writes with epoll (libuv/libevent style), done carefully.
 *
 *  - one thread per core, each with an epoll instance and an eventfd for wake-ups;
 *  - a lock-free intrusive MPSC queue per thread for messages from other threads; the
 *    eventfd is written only when the target sleeps (the sender swaps its `parked` flag
 *    1 -> 0), so a burst to a sleeping thread costs one write and a busy thread none;
 *    the eventfd is edge-triggered, so the woken thread needs no read();
 *  - a deferred-callback FIFO per thread (setImmediate / uv_idle: runs next pass);
 *  - timers in a binary heap (O(log n) arm/cancel), epoll_wait's timeout is the earliest;
 *  - a thread pool (4 threads, like libuv's default) for blocking work such as pread;
 *    results come back as messages to the submitting thread;
 *  - optionally, after a pass that did work, poll in memory for spin_us before sleeping
 *    (the same policy, default and loop as the engine's idle_spin_us), epoll_wait(0)
 *    only when descriptors are registered. spin_us = 0 is the libuv/libevent loop.
 *
 * Call everything on a loop thread unless it says "any thread". No stealing: work stays
 * on the thread it was posted to.
 */
#ifndef SP_BENCH_EPOLL_RT_H
#define SP_BENCH_EPOLL_RT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct ert;
struct ert_thread;

struct ert_config {
	unsigned nthreads;     /* loop threads */
	bool pin_cpus;         /* pin thread i to CPU i mod ncpu */
	unsigned spin_us;      /* poll this long after a busy pass before sleeping */
	unsigned pool_threads; /* blocking-work pool, started on first use; 0: 4 */
};

struct ert_msg {
	struct ert_msg *_Atomic next;
	void (*fn)(struct ert_msg *m);
};

int ert_create(const struct ert_config *cfg, struct ert **out);
/* Ask every loop thread to exit (any thread); work still queued is dropped. */
void ert_stop(struct ert *rt);
void ert_join(struct ert *rt);
void ert_destroy(struct ert *rt);

struct ert_thread *ert_thread_at(struct ert *rt, unsigned i);
struct ert_thread *ert_current(void); /* NULL off the loop threads */
unsigned ert_thread_index(const struct ert_thread *th);

/* Queue m for target (any thread); fn runs there. m must stay valid until then. */
void ert_post(struct ert_thread *target, struct ert_msg *m, void (*fn)(struct ert_msg *));
/* Run fn(m) on this thread's next loop pass (no syscall). */
void ert_defer(struct ert_msg *m, void (*fn)(struct ert_msg *));

/* Descriptor readiness (level-triggered). */
struct ert_io {
	int fd;
	void (*cb)(struct ert_io *io, uint32_t events);
};
int ert_io_add(struct ert_io *io, int fd, uint32_t events,
	       void (*cb)(struct ert_io *io, uint32_t events));
int ert_io_del(struct ert_io *io);

/* Timers: binary heap per thread. */
struct ert_timer {
	uint64_t deadline;
	uint32_t idx; /* heap slot, UINT32_MAX: not armed */
	void (*cb)(struct ert_timer *t);
};
void ert_timer_init(struct ert_timer *t, void (*cb)(struct ert_timer *t));
/* Make room for n timers on this thread (optional; the heap grows by doubling). */
int ert_timer_reserve(unsigned n);
void ert_timer_arm(struct ert_timer *t, uint64_t deadline_ns); /* arm or move */
int ert_timer_cancel(struct ert_timer *t);                    /* 0, or -1: not armed */

/* Blocking work on the pool; done(w, res) runs on the submitting thread. */
struct ert_work {
	struct ert_msg msg;
	struct ert_work *next;
	struct ert_thread *origin;
	int (*work)(struct ert_work *w);
	void (*done)(struct ert_work *w, int res);
	int res;
};
void ert_work_submit(struct ert_work *w, int (*work)(struct ert_work *),
		     void (*done)(struct ert_work *, int));

struct ert_stats {
	uint64_t msgs;       /* messages run */
	uint64_t wakes_sent; /* eventfd writes by this thread */
	uint64_t sleeps;     /* blocking epoll_waits */
	uint64_t polls;      /* non-blocking epoll_waits */
};
void ert_stats_read(struct ert_thread *th, struct ert_stats *out);

#endif
