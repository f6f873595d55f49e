/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the public API of the spargiod engine: shards, ops, tasks, messages,
 * timers, provided buffers, the helper pool and per-shard counters.
 *
 * Handlers include this file only; engine internals live in shard.h.
 *
 * The model in one paragraph. An engine is N shards; a shard is one thread with one
 * io_uring. Every I/O is an *op*: a small record embedded in its owner, passed to the
 * kernel as the SQE's user_data, completed by a callback. Ops belong to a *task* (a
 * session): a task's callbacks never run on two shards at once. A task is placed at
 * spawn (pinned, round_robin, sticky, stealable). Pinned tasks live on one shard and
 * their callbacks run straight from the completion queue. Stealable tasks are queued
 * where their completion arrived; an idle shard (or one whose passes are shorter) may
 * steal them while queued, and the next op they submit goes on the ring of the shard
 * that runs them (sp_sqe() always returns the *current* shard's SQE). Shards talk through IORING_OP_MSG_RING:
 * doorbells, remote cancels and helper results are CQEs injected into the target ring.
 *
 * Threads: unless a function says "any thread", call it on a shard thread, from a
 * callback or task run function. Errors are 0 or a negative errno.
 */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The record that embeds member at ptr (ops and messages are embedded in their owners). */
#define sp_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct sp_engine;
struct sp_shard;
struct sp_task;
struct sp_op;

/* ------------------------------------------------------------------------------------ */
/* Engine lifecycle                                                                      */

/* Ring features, probed per engine at start; tests may switch some off to exercise the
 * fallbacks (sp_engine_config.disable). */
enum sp_feature {
	SP_FEAT_SINGLE_ISSUER = 1u << 0,
	SP_FEAT_DEFER_TASKRUN = 1u << 1,
	SP_FEAT_COOP_TASKRUN = 1u << 2,
	SP_FEAT_REG_RING_FD = 1u << 3,
	SP_FEAT_BUF_RING = 1u << 4,
	SP_FEAT_CQE_SKIP = 1u << 5, /* IOSQE_CQE_SKIP_SUCCESS on msg_ring sends */
};

struct sp_engine_config {
	unsigned shards;          /* 0: one per online CPU */
	unsigned ring_entries;    /* SQ entries per shard, 0: 1024 */
	/* CQ entries per shard, 0: 4x ring_entries. At least ring_entries; cut to the
	 * kernel's maximum (65536) with a log line. A full CQ loses nothing (the kernel
	 * backlogs CQEs) but costs an enter per pass until it drains: size it for the ops
	 * the shard keeps in flight. */
	unsigned cq_entries;
	bool steal;               /* idle (and less loaded) shards steal queued stealable tasks */
	bool pin_cpus;            /* pin shard i to CPU i mod ncpu */
	unsigned buf_count;       /* provided buffers per shard (power of 2), 0: none */
	unsigned buf_size;        /* bytes per provided buffer, 0: 16 KiB */
	unsigned helpers;         /* helper threads, 0: 2 */
	/* After a pass that did work, poll this long before sleeping (default 50 us): a
	 * reply that comes back within it costs no sleep and no wake-up. 0: sleep at once. */
	unsigned idle_spin_us;
	unsigned disable;         /* SP_FEAT_* bits never to use (tests, workarounds) */
	/* Runs on each shard thread once stop begins (close listeners, wind sessions down). */
	void (*on_stop)(struct sp_shard *sh, void *arg);
	void *arg;
};

/* Fill cfg with the defaults (shards 0, steal on, ...). */
void sp_engine_config_defaults(struct sp_engine_config *cfg);

/*
 * Create the engine and start its shard threads. Each shard sets up its ring on its own
 * thread (SINGLE_ISSUER needs that); create returns only when all rings exist, or the
 * first error: -EPERM/-ENOSYS mean io_uring is forbidden here (seccomp, containers).
 * One log line says which features are in use.
 */
int sp_engine_create(const struct sp_engine_config *cfg, struct sp_engine **out);

/* Ask every shard to stop (any thread, async-signal-unsafe). Shards run on_stop, cancel
 * every op in flight, deliver the completions (-ECANCELED), run what is queued, and exit
 * once the whole engine is quiescent: no op, timer, job, message or task left. */
void sp_engine_stop(struct sp_engine *eng);

/* Wait for the shards to exit after sp_engine_stop (not from a shard thread). */
void sp_engine_join(struct sp_engine *eng);

/* Free everything; the engine must have been joined. Closes every ring fd. */
void sp_engine_destroy(struct sp_engine *eng);

unsigned sp_engine_nshards(const struct sp_engine *eng);
struct sp_shard *sp_engine_shard(struct sp_engine *eng, unsigned i);
unsigned sp_engine_features(const struct sp_engine *eng); /* SP_FEAT_* in use */
bool sp_engine_stopping(const struct sp_engine *eng);
/* Whether the kernel supports io_uring opcode op (probed at start; any thread). Handlers
 * pick their path with it: e.g. IORING_OP_WAITID (SP_IORING_OP_WAITID) or poll a pidfd. */
bool sp_engine_op_supported(const struct sp_engine *eng, unsigned op);

/* The shard running the calling thread, NULL off the shards (any thread). */
struct sp_shard *sp_shard_current(void);
unsigned sp_shard_index(const struct sp_shard *sh);
struct sp_engine *sp_shard_engine(struct sp_shard *sh);

/* CLOCK_MONOTONIC in nanoseconds (any thread). */
uint64_t sp_now_ns(void);
/* On a shard: sp_now_ns() as read at the start of the shard's current loop pass, free
 * where a clock read costs ~25 ns (a files request made ten). It lags the clock by at
 * most one pass: good for deadlines and logged durations, not for timing a piece of
 * code. Off the shards: sp_now_ns(). */
uint64_t sp_pass_ns(void);

/* A cross-shard message, embedded in its owner (see "Cross-shard messages" below). */
struct sp_msg {
	struct sp_msg *_Atomic next;  /* engine-private: inject queue link */
	void (*fn)(struct sp_msg *m); /* runs on the target shard */
	struct sp_shard *target;      /* engine-private */
};

/* ------------------------------------------------------------------------------------ */
/* Ops                                                                                   */

/*
 * Completion callback: res and cqe_flags are the CQE's. For a pinned task's op (or a
 * shard-owned op, task NULL) it runs on the shard that reaped the CQE, right away; for a
 * stealable task's op it runs in that task's next run, wherever that is.
 */
typedef void (*sp_op_fn)(struct sp_op *op, int res, uint32_t cqe_flags);

struct sp_op {
	sp_op_fn fn;           /* NULL: completion only accounted (e.g. a link timeout) */
	struct sp_task *task;  /* owner; NULL: owned by the shard it is submitted on */
	/* engine-private */
	struct sp_shard *shard;           /* ring it is in flight on */
	struct sp_op *_Atomic inbox_next; /* link in the owner's completion inbox */
	struct sp_op *live_prev, *live_next; /* owner's list of ops in flight */
	int32_t res;
	uint32_t cqe_flags;
	uint8_t state;         /* SP_OP_* below */
	uint8_t kind;          /* io, timer or job */
	/* release/acquire pair around a remote cancel: the kernel's msg_ring handoff
	 * orders it, but invisibly to TSan */
	_Atomic uint8_t handoff;
	uint16_t gen;          /* generation of the current submission (in its user_data) */
};

enum { SP_OP_IDLE = 0, SP_OP_INFLIGHT = 1, SP_OP_CANCELLING = 2 };

/* Bind an op to its owner and callback; an op is reused for many submissions. The
 * memory of a task's op must stay valid until the task is released (a cancel request
 * still on its way to another ring names it). */
void sp_op_init(struct sp_op *op, struct sp_task *task, sp_op_fn fn);

/*
 * Get an SQE on the current shard's ring (submission-time steering: a stolen task's I/O
 * goes to the thief's ring). Never NULL: a full SQ is flushed first. Prepare it with
 * io_uring_prep_*, then hand it to sp_op_submit; SQEs go to the kernel in one batch at
 * the end of the loop pass.
 */
struct io_uring_sqe *sp_sqe(void);

/*
 * The first SQE of a chain of n (IOSQE_IO_LINK, e.g. an op and its linked timeout): the
 * SQ is flushed first if fewer than n slots are free, so that no flush falls inside the
 * chain (a chain cut by a submit runs unlinked; a LINK_TIMEOUT left alone fails with
 * -EINVAL). Take the other n-1 with sp_sqe() right after, nothing in between.
 */
struct io_uring_sqe *sp_sqes(unsigned n);

/* Mark op in flight for sqe (sets user_data). The op must be idle. Multishot ops are
 * allowed for pinned tasks and shard-owned ops only: they stay in flight until a CQE
 * without IORING_CQE_F_MORE. */
void sp_op_submit(struct sp_op *op, struct io_uring_sqe *sqe);
/* Submit a one-shot poll of fd for events (POLLIN, POLLOUT...) with op: res is the
 * events that came, or -errno. */
void sp_op_poll(struct sp_op *op, int fd, unsigned events);

/* Submit the SQE just prepared for op with a linked timeout (IORING_OP_LINK_TIMEOUT):
 * op completes with -ECANCELED if the timeout fires first. tmo is the timeout's own op
 * (its fn may be NULL); ts must stay valid until the next loop pass. Take sqe with
 * sp_sqes(2): the pair must not be cut. */
void sp_op_submit_timeout(struct sp_op *op, struct io_uring_sqe *sqe, struct sp_op *tmo,
			  struct __kernel_timespec *ts);

/* Cancel op's current submission if it is in flight. Call it in the op's owner context
 * (its task's callbacks and run; a shard-owned op on its shard). An op of a stolen task
 * may be in flight on another ring: that ring gets a msg_ring asking it to cancel that
 * very submission (by generation), so a request that arrives late never cancels a
 * later one; the task is not released until the request was acknowledged. The
 * callback still runs once: -ECANCELED, or the result if the op completed first.
 * Returns 0, or -ENOENT when the op is idle. */
int sp_op_cancel(struct sp_op *op);

static inline bool sp_op_busy(const struct sp_op *op)
{
	return op->state != SP_OP_IDLE;
}

/* ------------------------------------------------------------------------------------ */
/* Tasks (sessions)                                                                      */

enum sp_placement {
	SP_PINNED,      /* on the shard that spawned it, forever */
	SP_ROUND_ROBIN, /* handed to shards in turn at spawn, then pinned */
	SP_STICKY,      /* shard = hash(key) mod N at spawn, then pinned */
	SP_STEALABLE,   /* queued where its completions arrive; idle shards may steal it */
};

struct sp_task {
	/* Called when the task is woken with sp_task_wake (and once after spawn), after the
	 * completions queued for it ran. May be NULL. */
	void (*run)(struct sp_task *t);
	/* Called once, on a shard, after sp_task_close when no op or timer of the task is in
	 * flight any more and every cancel it asked was acknowledged: release the task's
	 * memory here (its ops' with it). May be NULL. */
	void (*release)(struct sp_task *t);
	/* engine-private */
	_Atomic uint32_t state;
	uint8_t placement;
	bool closing;
	uint16_t gen;              /* submissions of its ops so far (their generations) */
	struct sp_engine *engine;
	struct sp_shard *home;     /* pinned placements; last runner for stealable */
	struct sp_op *_Atomic inbox;
	struct sp_task *_Atomic qnext; /* run queue / inject link */
	struct sp_op live;         /* sentinel of the ops in flight */
	uint32_t inflight;         /* ops + timers in flight */
	struct sp_msg wmsg;        /* carries the task to another shard's queue */
	_Atomic uint32_t cost_ns;  /* how long its last run took (stealable, steal on) */
};

void sp_task_init(struct sp_task *t, enum sp_placement placement,
		  void (*run)(struct sp_task *), void (*release)(struct sp_task *));

/* Start the task per its placement; key is the sticky hash input (e.g. the client
 * address hash), ignored otherwise. Any thread; off the shards, pinned/stealable tasks
 * start on shard 0. */
void sp_task_spawn(struct sp_engine *eng, struct sp_task *t, uint64_t key);

/* Schedule t->run (any thread). Coalesced: waking a queued task does nothing more. The
 * caller must know t is alive (it has an op in flight, or the caller holds a ref). */
void sp_task_wake(struct sp_task *t);

/* Cancel every op and timer of the task in flight; their callbacks still run. */
void sp_task_cancel_all(struct sp_task *t);

/* End the task (from its own callbacks or run): cancel everything in flight; release runs
 * after the last completion. No op may be submitted afterwards. */
void sp_task_close(struct sp_task *t);

/* The shard running the task now (task context). */
struct sp_shard *sp_task_shard(const struct sp_task *t);

/* ------------------------------------------------------------------------------------ */
/* Cross-shard messages                                                                  */


/*
 * Queue m for shard target (any thread). Batched: the target drains its inject queue in
 * one go, FIFO per sender; a doorbell (msg_ring, sender CQE skipped) goes out only when
 * the target sleeps, so a burst costs at most one wake. m must stay valid until fn runs.
 */
void sp_msg_post(struct sp_shard *target, struct sp_msg *m, void (*fn)(struct sp_msg *));

/*
 * Send m with one IORING_OP_MSG_RING of its own (shard threads only): the CQE lands in
 * the target's ring and wakes it even mid-wait. Use for latency-critical single
 * messages; sp_msg_post is cheaper for streams.
 */
void sp_msg_send(struct sp_shard *target, struct sp_msg *m, void (*fn)(struct sp_msg *));

/* ------------------------------------------------------------------------------------ */
/* Timers: hierarchical wheel per shard, 1 ms resolution below 64 ms, O(1) arm/cancel.   */

struct sp_timer {
	struct sp_op op;        /* expiry completes op: res 0 fired, -ECANCELED cancelled */
	/* engine-private. A timer sits in the wheel of the shard that armed it (`wheel`);
	 * a stolen task may move or cancel it from another shard: see timer.c. */
	_Atomic uint64_t when;           /* deadline << 1, | 1: ctl message queued; 0: off */
	struct sp_shard *_Atomic wheel;  /* shard whose wheel holds it */
	struct sp_msg ctl;               /* move/cancel request to `wheel` */
	struct sp_timer *prev, *next;    /* wheel slot list (wheel shard) */
	uint64_t expires;                /* deadline the wheel filed it under (wheel shard) */
	uint16_t slot;                   /* level * 64 + slot, UINT16_MAX: unlinked (wheel shard) */
	uint64_t deadline;               /* last deadline asked (owner) */
	uint64_t period;                 /* ns; 0: one-shot (owner) */
	uint64_t rearm;                  /* re-arm asked while a completion is on its way */
};

void sp_timer_init(struct sp_timer *t, struct sp_task *task, sp_op_fn fn);

/*
 * Arm (or move) t to fire at deadline_ns. On the shard holding it, moving is O(1) and no
 * callback runs for the old deadline. A timer armed on another shard (a stolen task) is
 * moved there by message. Arming while the engine stops completes it with -ECANCELED.
 */
void sp_timer_arm(struct sp_timer *t, uint64_t deadline_ns);
void sp_timer_after(struct sp_timer *t, uint64_t delay_ns);
/* Fire every period_ns until cancelled; the callback runs once per period, with the
 * next period already armed (the callback may cancel it and free the timer). */
void sp_timer_every(struct sp_timer *t, uint64_t period_ns);
/* Arm t for the next multiple of period_ns on the monotonic clock: timers that poll at
 * the same period fire at the same instants, one wake-up of the shard for all of them. */
void sp_timer_next_tick(struct sp_timer *t, uint64_t period_ns);

/* Disarm t (owner context, like every timer call). Returns 0 when it was removed here
 * and no callback will run; -EINPROGRESS when its wheel is another shard's or a move
 * asked from there is still on its way (its callback will run, -ECANCELED or 0 if it
 * had fired); -ENOENT when it was not armed. */
int sp_timer_cancel(struct sp_timer *t);

static inline bool sp_timer_armed(const struct sp_timer *t)
{
	return t->op.state != SP_OP_IDLE;
}

/* ------------------------------------------------------------------------------------ */
/* Provided buffers: one ring per shard, buffer group SP_BUF_GROUP                       */

#define SP_BUF_GROUP 0

/* Address of buffer bid of shard sh (from a CQE: bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT). */
void *sp_buf_addr(struct sp_shard *sh, unsigned bid);
unsigned sp_buf_size(const struct sp_shard *sh);
/* Give buffer bid back to shard sh's ring (on shard sh only). */
void sp_buf_recycle(struct sp_shard *sh, unsigned bid);
/* Set an SQE (recv, recvmsg, read) to pick a buffer from the current shard's ring. */
void sp_sqe_select_buffer(struct io_uring_sqe *sqe);

/* A FIFO of buffers lent by shard sh's ring and not yet given back, oldest first (a
 * multishot receive delivering faster than they can be passed on). Start it with
 * SP_BUFQ_INIT; on shard sh only. */
struct sp_bufq {
	int32_t head, tail; /* buffer ids, -1: empty */
	uint32_t count;
};
#define SP_BUFQ_INIT ((struct sp_bufq){-1, -1, 0})
void sp_bufq_push(struct sp_shard *sh, struct sp_bufq *q, unsigned bid, uint32_t len);
/* The oldest buffer's id and its length in *len, taken off q; -1 when q is empty. */
int sp_bufq_pop(struct sp_shard *sh, struct sp_bufq *q, uint32_t *len);
/* Give every buffer of q back to the ring. */
void sp_bufq_recycle(struct sp_shard *sh, struct sp_bufq *q);

/* ------------------------------------------------------------------------------------ */
/* Helper pool: blocking work with no io_uring op (getaddrinfo, getpwnam, ...)           */

struct sp_job {
	struct sp_op op;                 /* completion on the submitting shard, res = work() */
	int (*work)(struct sp_job *job); /* runs on a helper thread; returns res */
	/* engine-private */
	struct sp_job *_Atomic next;
	struct sp_shard *origin;
	_Atomic int32_t result;          /* release/acquire pair around the kernel handoff */
};

/* Queue job (job->op initialised with sp_op_init, job->work set). The result comes back
 * as a CQE injected with msg_ring into the submitting shard's ring. */
void sp_job_submit(struct sp_job *job);

/* ------------------------------------------------------------------------------------ */
/* Counters: written only by their shard, read from any thread without locks.            */

struct sp_shard_stats {
	uint64_t tasks_run;
	uint64_t tasks_spawned;
	uint64_t steal_tries;       /* victims probed */
	uint64_t steals;            /* tasks this shard stole */
	uint64_t stolen;            /* tasks other shards stole from this one */
	uint64_t msgs_sent;
	uint64_t msgs_received;
	uint64_t wakes_sent;        /* doorbells sent to sleeping shards */
	uint64_t wakes_coalesced;   /* wake-ups not needed: target awake or searching */
	uint64_t cqes;
	uint64_t sleeps;            /* waits in io_uring_enter */
	uint64_t submits;           /* io_uring_enter calls that submitted */
	uint64_t timers_fired;
	uint64_t jobs;              /* helper jobs submitted */
	uint64_t enobufs;           /* receives that found the buffer ring empty */
	uint64_t cq_overflows;      /* times the CQ filled up and the kernel backlogged CQEs */
	uint64_t cq_dropped;        /* CQEs the kernel dropped (its own counter, cq.koverflow) */
	uint64_t msgs_bounced;      /* msg_ring sends a full target CQ refused (re-posted) */
	/* gauges */
	uint64_t ops_inflight;
	uint64_t timers_armed;
	uint64_t runq_depth;        /* stealable queue */
	uint64_t localq_depth;      /* pinned queue */
	uint64_t bufs_free;
};

/* Snapshot of shard sh's counters (any thread). */
void sp_shard_stats_read(struct sp_shard *sh, struct sp_shard_stats *out);

#endif
