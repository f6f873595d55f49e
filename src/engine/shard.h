/* SPDX-License-Identifier: MIT */
/*
 * shard.h - engine internals shared by the engine's own files; handlers never include it.
 *
 * Ownership: every field of struct sp_shard is touched only by its own thread, except
 * those marked "shared", which are atomics with the protocol described next to them.
 *
 * Cross-thread handoffs and their memory ordering (C11 model, not only x86):
 *  - Task state (sp_task.state): changed by acq_rel RMWs only once spawned. Whoever
 *    sets QUEUED owns the enqueue; the queue's own release/acquire
 *    publishes the task to the runner; the runner's QUEUED->RUNNING CAS and its
 *    end-of-run CAS order its run after the previous run, wherever that was.
 *  - Completion inbox (sp_task.inbox): release push / acquire drain (op->res and
 *    flags). Against the state it would be a store-buffering pair (push then read the
 *    state, CAS the state then drain); the pusher ends with a CAS of the state
 *    instead, which the runner's CAS is ordered with: see sp_task_deliver.
 *  - Run queue (runq.h): slots and costs relaxed, published by the tail's release
 *    store; thieves read head/tail with acquire and claim by an acq_rel CAS on head.
 *  - Inject queue (mpsc.h): acq_rel exchange of head plus a release store of the
 *    link; the consumer's acquire loads see the message's fields.
 *  - msg_ring CQEs (sp_msg_send, cancel requests, helper results): the kernel orders
 *    sender before receiver, but TSan cannot see it: each has a release store before
 *    the send and an acquire load where it is handled (m->next, op->handoff,
 *    job->result).
 *  - Waking a parked shard, and a thief: Dekker pairs (store, seq_cst fence, load on
 *    both sides: sp_fence_seq_cst); see the wake protocol in loop.c.
 *  - Cancels in flight: counted on the task's state by a relaxed RMW (ordered before
 *    the request by the release above); acknowledged by an acq_rel CAS that also
 *    queues the task (sp_task_cancel_done).
 *  - Timers (timer.c): `when` changed by acq_rel CAS on both sides; `wheel` is
 *    stored before `when` with release; the ctl message goes by the inject queue.
 *  - Helper jobs (helper.c): Treiber stack, release CAS / acquire exchange.
 *  - Counters and load figures (st[], pass_start, last_pass_ns, searching, cost):
 *    relaxed, single writer; readers take snapshots for display and heuristics.
 *  - Shutdown: stopping and quiet are seq_cst; done is a release/acquire flag.
 */
#ifndef SP_SHARD_H
#define SP_SHARD_H

#include <pthread.h>
#include <stddef.h>

#include "engine/bug.h"
#include "engine/compat.h"
#include "engine/engine.h"
#include "engine/mpsc.h"
#include "engine/runq.h"

/* user_data of a CQE: a pointer with a tag in its 3 low bits (records are 8-aligned)
 * and, for ops, the submission's generation in the 16 high bits (user-space pointers
 * fit in 48 bits: checked at submit). */
enum sp_tag {
	SP_TAG_OP = 0,          /* an op completed (also helper results) */
	SP_TAG_DOORBELL = 1,    /* wake-up only */
	SP_TAG_MSG = 2,         /* an sp_msg delivered by sp_msg_send */
	SP_TAG_CANCEL = 3,      /* another shard asks us to cancel this op submission */
	SP_TAG_SENDFAIL = 4,    /* our sp_msg_send failed (target CQ full): re-post it */
	SP_TAG_IGNORE = 5,      /* results nobody waits for (doorbell failures) */
	SP_TAG_CANCEL_ACK = 6,  /* our ASYNC_CANCEL for this task's op is done */
	SP_TAG_CANCEL_LOST = 7, /* our cancel request for this task never got there */
};
#define SP_TAG_MASK 7ull
#define SP_UD_GEN_SHIFT 48
#define SP_UD_PTR_MASK 0x0000fffffffffff8ull

static inline uint64_t sp_ud(const void *p, enum sp_tag tag)
{
	return (uint64_t)(uintptr_t)p | tag;
}

/* The user_data of op's current submission (tag SP_TAG_OP) or a request about it. */
static inline uint64_t sp_op_ud(const struct sp_op *op, enum sp_tag tag)
{
	return sp_ud(op, tag) | (uint64_t)op->gen << SP_UD_GEN_SHIFT;
}

static inline void *sp_ud_ptr(uint64_t ud)
{
	return (void *)(uintptr_t)(ud & SP_UD_PTR_MASK);
}

enum sp_op_kind { SP_KIND_IO = 0, SP_KIND_TIMER = 1, SP_KIND_JOB = 2 };

/* Task state bits (sp_task.state). QUEUED: in exactly one queue; RUNNING: a shard runs
 * it now; RESCHED: something arrived while it ran, queue it again afterwards; WANT_RUN:
 * call t->run on the next run; CANCEL_LOST: a cancel request could not be sent, ask
 * again on the next run. Bits 5-15 count completions being pushed on the inbox. The
 * high half counts cancels in flight (asked by the task,
 * not yet acknowledged by the ring that runs them): the task is not released while
 * any is, so a ring never looks at a freed op or task. */
enum {
	SP_TS_QUEUED = 1, SP_TS_RUNNING = 2, SP_TS_RESCHED = 4, SP_TS_WANT_RUN = 8,
	SP_TS_CANCEL_LOST = 16,
};
/* bits 5-15: completions being delivered (sp_task_deliver: the task lives meanwhile) */
#define SP_TS_DELIVER_ONE (1u << 5)
#define SP_TS_DELIVER_MASK 0x0000ffe0u
#define SP_TS_CANCEL_ONE (1u << 16)
#define SP_TS_CANCEL_MASK 0xffff0000u

/* Counter indexes: the same order as the fields of struct sp_shard_stats. */
enum sp_stat {
	ST_TASKS_RUN, ST_TASKS_SPAWNED, ST_STEAL_TRIES, ST_STEALS, ST_STOLEN,
	ST_MSGS_SENT, ST_MSGS_RECEIVED, ST_WAKES_SENT, ST_WAKES_COALESCED, ST_CQES,
	ST_SLEEPS, ST_SUBMITS, ST_TIMERS_FIRED, ST_JOBS, ST_ENOBUFS, ST_CQ_OVERFLOWS,
	ST_CQ_DROPPED, ST_MSGS_BOUNCED,
	ST_OPS_INFLIGHT, ST_TIMERS_ARMED, ST_RUNQ_DEPTH, ST_LOCALQ_DEPTH, ST_BUFS_FREE,
	ST_COUNT
};

#define SP_WHEEL_LEVELS 4
#define SP_WHEEL_SLOTS 64
#define SP_TICK_NS 1000000ull /* 1 ms */

struct sp_wheel {
	uint64_t now_tick;                /* last tick processed */
	uint64_t occupied[SP_WHEEL_LEVELS];
	struct sp_timer *slot[SP_WHEEL_LEVELS][SP_WHEEL_SLOTS];
	/* levels 1 and 2: no timer of the slot is due before this tick (a lower bound), so
	 * the shard sleeps past the slot's start instead of waking only to cascade it */
	uint64_t due[SP_WHEEL_LEVELS - 1][SP_WHEEL_SLOTS];
	unsigned count;
};

struct sp_shard {
	struct sp_engine *eng;
	unsigned idx;
	pthread_t thread;
	struct io_uring ring;
	int ring_fd;                 /* the real fd: target of other shards' msg_ring */
	unsigned features;
	unsigned cq_entries;         /* as the kernel made it */
	bool cq_backlog;             /* IORING_SQ_CQ_OVERFLOW was set at our last look */

	struct sp_runq runq;         /* shared: thieves take from its head */
	struct sp_mpsc inject;       /* shared: producers push */
	_Atomic int parked;          /* shared: 1 while waiting in io_uring_enter */
	/* The kernel raises IORING_SQ_TASKRUN when completions wait for us to enter
	 * (TASKRUN_FLAG with DEFER_TASKRUN or COOP_TASKRUN), or posts them straight to the
	 * CQ (no taskrun flags): either way an idle shard sees them in memory, without a
	 * syscall. false: poll with io_uring_get_events now and then. */
	bool events_in_memory;
	/* IORING_SQ_TASKRUN outlived an enter that brought no completion: it is a hint, and
	 * this kernel left it set with nothing to run; trust it again after a completion */
	bool taskrun_stale;

	/* shared, read by other shards (one line, written by us only): when our latest pass
	 * started and how long the last one that ran tasks took (ns), and whether we are
	 * spinning or stealing (then we need no wake-up to find stealable work) */
	_Atomic uint64_t pass_start __attribute__((aligned(64)));
	_Atomic uint64_t last_pass_ns; /* length of our last pass that ran tasks */
	_Atomic bool searching;

	struct sp_task *local_head, *local_tail; /* pinned tasks and runq overflow, FIFO */
	unsigned local_len;
	struct sp_wheel wheel;

	struct io_uring_buf_ring *br;
	size_t br_len;
	unsigned char *bufs;
	unsigned buf_count, buf_size;
	struct sp_buf_link { int32_t next; uint32_t len; } *buf_links; /* sp_bufq, by buffer id */

	unsigned pending_sqes;       /* SQEs prepared since the last submit */
	unsigned cancels_inflight;   /* our ASYNC_CANCELs for tasks' ops, CQE to come */
	uint16_t gen;                /* generation of shard-owned op submissions */
	uint64_t rng;
	bool busy_pass;              /* the last pass did something: spin before sleeping */
	bool stop_seen;              /* on_stop ran, cancels issued */
	bool cancel_again;           /* ops were submitted while stopping */
	_Atomic bool quiet;          /* shared: stopping and nothing local left */

	_Atomic uint64_t st[ST_COUNT]; /* shared: written by this shard only */
	int setup_err;
};

struct sp_helper;

struct sp_engine {
	struct sp_engine_config cfg;
	unsigned nshards;
	struct sp_shard **shards;
	unsigned features;
	bool ops[256];                /* opcode probe of shard 0's ring */
	_Atomic unsigned rr;          /* round_robin placement cursor */
	_Atomic int nparked;          /* shards in (or about to be in) their ring wait */
	_Atomic bool stopping;
	_Atomic bool done;            /* every shard may exit */
	_Atomic uint64_t ext_sent;    /* messages posted from off-shard threads */

	/* off-shard senders (test threads, signal threads) share one ring for msg_ring */
	pthread_mutex_t ext_lock;
	struct io_uring ext_ring;
	bool ext_ring_ok;

	/* start-up handshake */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned started;

	struct sp_helper *helpers;
};

/* The shard of the calling thread. */
extern __thread struct sp_shard *sp_tls_shard;

/*
 * The store-then-load handshakes between a waker and a parking shard (Dekker style)
 * need a full fence on each side. ThreadSanitizer does not model fences: under it, a
 * seq_cst read-modify-write of one shared word stands in (RMWs of one location are
 * totally ordered, so the later side synchronizes with the earlier one).
 */
#if defined(__SANITIZE_THREAD__)
extern _Atomic unsigned sp_fence_word;
static inline void sp_fence_seq_cst(void)
{
	atomic_fetch_add_explicit(&sp_fence_word, 0, memory_order_seq_cst);
}
#else
static inline void sp_fence_seq_cst(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}
#endif

static inline void st_add(struct sp_shard *sh, enum sp_stat i, int64_t v)
{
	/* Single writer: a relaxed load and store, no locked instruction. */
	uint64_t cur = atomic_load_explicit(&sh->st[i], memory_order_relaxed);
	atomic_store_explicit(&sh->st[i], cur + (uint64_t)v, memory_order_relaxed);
}

static inline void st_set(struct sp_shard *sh, enum sp_stat i, uint64_t v)
{
	atomic_store_explicit(&sh->st[i], v, memory_order_relaxed);
}

/* ring.c */
int sp_ring_setup(struct sp_shard *sh, unsigned entries, unsigned cq_entries, unsigned disable);
void sp_ring_log_features(struct sp_engine *eng);
int sp_bufring_setup(struct sp_shard *sh);
void sp_bufring_free(struct sp_shard *sh);
struct io_uring_sqe *sp_shard_sqe(struct sp_shard *sh);
/* The first of n SQEs for a link chain: the n slots are free, so no submit cuts it. */
struct io_uring_sqe *sp_shard_sqes(struct sp_shard *sh, unsigned n);

/* loop.c */
void *sp_shard_main(void *arg);
void sp_shard_notify(struct sp_shard *target);
void sp_shard_doorbell(struct sp_shard *target);
/* Send a msg_ring CQE (user_data, res) into target's ring from any thread. */
void sp_ring_msg(struct sp_shard *target, uint64_t user_data, int32_t res, uint64_t sender_ud);
bool sp_shard_has_work(struct sp_shard *sh);

/* op.c */
void sp_op_complete(struct sp_shard *sh, struct sp_op *op, int res, uint32_t flags);
/* Queue an ASYNC_CANCEL of the submission ud on our ring; with t, the task counted the
 * cancel in flight and its CQE acknowledges it (sp_task_cancel_done). */
void sp_op_cancel_ud(struct sp_shard *sh, uint64_t ud, struct sp_task *t);
void sp_live_add(struct sp_task *t, struct sp_op *op);
void sp_live_del(struct sp_op *op);
/* Run the completions queued for a stealable task, oldest first (task context). */
void sp_task_drain_inbox(struct sp_task *t);
/* Deliver an op completion the way its owner wants it (inline or via the inbox). */
void sp_op_deliver(struct sp_op *op, int res);

/* task.c */
void sp_task_schedule(struct sp_task *t);
/* A completion for stealable task t: onto its inbox, and a run follows (any shard). */
void sp_task_deliver(struct sp_task *t, struct sp_op *op);
/* Run t once. start_ns != 0: measure the run of a stealable task from then into
 * t->cost_ns and return when it ended (else 0). */
uint64_t sp_task_run_one(struct sp_shard *sh, struct sp_task *t, uint64_t start_ns);
void sp_local_push(struct sp_shard *sh, struct sp_task *t);
struct sp_task *sp_local_pop(struct sp_shard *sh);
void sp_task_op_done(struct sp_task *t);
/* A cancel the task counted in flight is over (lost: its request never got to its
 * ring); any thread. The task's next run sees it (and may be released then). */
void sp_task_cancel_done(struct sp_task *t, bool lost);

/* timer.c */
void sp_wheel_init(struct sp_wheel *w, uint64_t now);
void sp_wheel_advance(struct sp_shard *sh, uint64_t now);
/* ns until the next wheel event, UINT64_MAX when empty */
uint64_t sp_wheel_next_ns(struct sp_shard *sh, uint64_t now);
void sp_wheel_cancel_all(struct sp_shard *sh);
void sp_timer_deliver(struct sp_timer *t, int res);

/* helper.c */
int sp_helpers_start(struct sp_engine *eng);
void sp_helpers_stop(struct sp_engine *eng);
uint64_t sp_helpers_inflight(struct sp_engine *eng);

#endif
