/* SPDX-License-Identifier: MIT */
/*
 * loop.c - a shard's thread: the loop pass, sleeping and waking, stealing, and the
 * shutdown handshake.
 *
 * One pass: reap CQEs -> drain the inject queue -> fire due timers -> run up to 64
 * tasks -> submit the SQEs of the pass. Reaping and the inject queue have a budget per
 * pass (REAP_BUDGET CQEs or REAP_BUDGET_NS, INJECT_BUDGET messages): a flood of
 * completions (streams that complete at once) cannot hold the shard; timers, messages,
 * queued tasks and the submit of what the callbacks prepared come in between, and the
 * rest waits for the next pass, in order. io_uring_enter is called only when there is
 * something to submit or the kernel holds completions for us (IORING_SQ_TASKRUN or CQ
 * overflow, read in shared memory): a pass fed by messages and queued tasks alone
 * makes no syscall. With nothing to do the shard tries to steal, polls for a while
 * (idle_spin_us, probing victims as it goes), then parks in io_uring_enter until a CQE
 * (its own I/O, a doorbell or message from another shard) or the next timer.
 *
 * Wake protocol (no lost wake-up, no needless one): the shard stores parked=1, fences,
 * and looks at its queues once more before sleeping; a producer pushes, fences, and
 * rings the doorbell only if it can swap parked from 1 to 0. One of the two always sees
 * the other, and a burst of pushes to a sleeping shard costs one doorbell. A spinning
 * shard is not parked: messages to it cost no syscall at all.
 *
 * Stealing. A shard that runs a task while more stealable tasks wait in its run queue
 * has work to give away. If no shard is searching (spinning or stealing) and one is
 * parked, it wakes that one with a doorbell sent at once. Searching shards look at the
 * victims' run queues and take about half of the fullest; a shard about to park looks
 * once more after announcing itself (the same Dekker pairing as above, with the
 * victim's check at its next task), so queued stealable work never waits for a shard
 * that went to sleep. Before stealing, a shard flushes its own SQEs: work that
 * completes at once (a NOP, a cached read) is its own next work, not a reason to take
 * someone else's. Shards that are never idle balance too: see steal_from_busy().
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "engine/log.h"
#include "engine/shard.h"

#define RUN_BATCH 64
#define REAP_BATCH 16          /* CQEs copied out at once; the clock is read per batch */
#define REAP_BUDGET 512        /* CQEs handled per pass at most ... */
#define REAP_BUDGET_NS 200000  /* ... or until the pass is this old (200 us) */
#define INJECT_BUDGET 256      /* inject-queue messages run per pass */

static void handle_cqe(struct sp_shard *sh, uint64_t ud, int res, uint32_t flags)
{
	void *p = sp_ud_ptr(ud);

	switch (ud & SP_TAG_MASK) {
	case SP_TAG_OP: {
		struct sp_op *op = p;
		if (res == -ENOBUFS)
			st_add(sh, ST_ENOBUFS, 1);
		if (flags & IORING_CQE_F_BUFFER)
			st_add(sh, ST_BUFS_FREE, -1);
		if (!(flags & IORING_CQE_F_MORE))
			st_add(sh, ST_OPS_INFLIGHT, -1);
		sp_op_complete(sh, op, res, flags);
		break;
	}
	case SP_TAG_MSG: {
		struct sp_msg *m = p;
		/* pairs with the sender's release store: the kernel handoff is invisible to
		 * TSan, this makes the ordering explicit */
		(void)atomic_load_explicit(&m->next, memory_order_acquire);
		m->fn(m);
		st_add(sh, ST_MSGS_RECEIVED, 1);
		break;
	}
	case SP_TAG_CANCEL: {
		/* Another shard asks us to cancel one submission (address + generation) of
		 * a task's op in flight on our ring. The task counted the request and stays
		 * alive until we acknowledge it: our ASYNC_CANCEL's CQE does. acquire: pairs
		 * with the sender's release (see sp_op_cancel). */
		struct sp_op *op = p;
		(void)atomic_load_explicit(&op->handoff, memory_order_acquire);
		struct sp_task *t = __atomic_load_n(&op->task, __ATOMIC_RELAXED);
		SP_BUG_ON(!t);
		st_add(sh, ST_MSGS_RECEIVED, 1);
		sp_op_cancel_ud(sh, ud & ~SP_TAG_MASK, t); /* SP_TAG_OP is 0 */
		break;
	}
	case SP_TAG_CANCEL_ACK:
		SP_BUG_ON(!sh->cancels_inflight);
		sh->cancels_inflight--;
		sp_task_cancel_done(p, false);
		break;
	case SP_TAG_CANCEL_LOST:
		/* without CQE_SKIP a request that got there completes here too */
		if (res >= 0)
			break;
		st_add(sh, ST_MSGS_BOUNCED, 1);
		st_add(sh, ST_MSGS_SENT, -1);
		sp_task_cancel_done(p, true); /* the task asks again */
		break;
	case SP_TAG_SENDFAIL: {
		/* Without CQE_SKIP a successful send completes here too: the message is
		 * the receiver's now, do not touch it. */
		if (res >= 0)
			break;
		/* target CQ full (-EOVERFLOW) or gone: fall back to the inject queue */
		struct sp_msg *m = p;
		st_add(sh, ST_MSGS_BOUNCED, 1);
		st_add(sh, ST_MSGS_SENT, -1);
		sp_msg_post(m->target, m, m->fn);
		break;
	}
	case SP_TAG_IGNORE:
		if (res == -EOVERFLOW)
			st_add(sh, ST_MSGS_BOUNCED, 1);
		break;
	default: /* doorbell */
		break;
	}
}

/* Overflow accounting, read in shared memory. The kernel raises IORING_SQ_CQ_OVERFLOW
 * while it holds CQEs that found the CQ full (NODROP: they come in with our next enter)
 * and counts in cq.koverflow the CQEs it had to drop. An overflow is counted once, when
 * the flag is first seen set; called around every enter so that one brought in by the
 * enter that follows it is not missed. */
static void note_cq_overflow(struct sp_shard *sh)
{
	bool backlog = IO_URING_READ_ONCE(*sh->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW;
	if (backlog && !sh->cq_backlog)
		st_add(sh, ST_CQ_OVERFLOWS, 1);
	sh->cq_backlog = backlog;
	uint64_t dropped = IO_URING_READ_ONCE(*sh->ring.cq.koverflow);
	if (dropped != atomic_load_explicit(&sh->st[ST_CQ_DROPPED], memory_order_relaxed))
		st_set(sh, ST_CQ_DROPPED, dropped);
}

/* Handle the CQEs that are in, within the pass budget (start: when the pass began). */
static unsigned reap(struct sp_shard *sh, uint64_t start)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	struct {
		uint64_t ud;
		int res;
		uint32_t flags;
	} batch[REAP_BATCH];
	unsigned total = 0;

	while (total < REAP_BUDGET) {
		unsigned n = io_uring_peek_batch_cqe(&sh->ring, cqes, REAP_BATCH);
		if (!n)
			break;
		/* copy and release the CQ slots first: callbacks may submit, and inline
		 * completions need room */
		for (unsigned i = 0; i < n; i++) {
			batch[i].ud = cqes[i]->user_data;
			batch[i].res = cqes[i]->res;
			batch[i].flags = cqes[i]->flags;
		}
		io_uring_cq_advance(&sh->ring, n);
		for (unsigned i = 0; i < n; i++)
			handle_cqe(sh, batch[i].ud, batch[i].res, batch[i].flags);
		total += n;
		if (n == REAP_BATCH && sp_now_ns() - start >= REAP_BUDGET_NS)
			break;
	}
	if (total) {
		st_add(sh, ST_CQES, total);
		sh->taskrun_stale = false;
	}
	note_cq_overflow(sh);
	return total;
}

static unsigned drain_inject(struct sp_shard *sh)
{
	unsigned n = 0;
	struct sp_msg *m;

	while (n < INJECT_BUDGET && (m = sp_mpsc_pop(&sh->inject))) {
		m->fn(m);
		n++;
	}
	if (n)
		st_add(sh, ST_MSGS_RECEIVED, n);
	return n;
}

/* Owner pops are counted so that "stolen" can be derived from the queue head. */
static struct sp_task *runq_pop_own(struct sp_shard *sh)
{
	struct sp_task *t = sp_runq_pop(&sh->runq);
	if (t)
		st_add(sh, ST_STOLEN, 1);
	return t;
}

static bool can_steal(const struct sp_shard *sh);
static void maybe_wake_thief(struct sp_shard *sh);

static unsigned run_tasks(struct sp_shard *sh)
{
	bool give = can_steal(sh);
	uint64_t clock = 0; /* with stealing on: when the next task starts */
	unsigned n;

	for (n = 0; n < RUN_BATCH; n++) {
		/* alternate so neither queue starves the other */
		struct sp_task *t = (n & 1) ? runq_pop_own(sh) : sp_local_pop(sh);
		if (!t)
			t = (n & 1) ? sp_local_pop(sh) : runq_pop_own(sh);
		if (!t)
			break;
		if (give) {
			/* more stealable work waits behind this task: someone idle could
			 * take it */
			if (sp_runq_len(&sh->runq))
				maybe_wake_thief(sh);
			if (!clock)
				clock = sp_now_ns();
		}
		clock = sp_task_run_one(sh, t, clock); /* 0 unless it measured */
	}
	return n;
}

/* The kernel holds completions (DEFER/COOP_TASKRUN task work) or an overflowed CQ that
 * only an io_uring_enter brings in. */
static bool ring_needs_enter(struct sp_shard *sh)
{
	unsigned flags = IO_URING_READ_ONCE(*sh->ring.sq.kflags);
	if (flags & IORING_SQ_CQ_OVERFLOW)
		return true;
	return (flags & IORING_SQ_TASKRUN) && !sh->taskrun_stale;
}

bool sp_shard_has_work(struct sp_shard *sh)
{
	return sh->local_head || sp_runq_len(&sh->runq) || sp_mpsc_maybe_nonempty(&sh->inject) ||
	       io_uring_cq_ready(&sh->ring) || ring_needs_enter(sh);
}

/* ------------------------------------------------------------------------------------ */
/* Waking other shards                                                                   */

void sp_ring_msg(struct sp_shard *target, uint64_t user_data, int32_t res, uint64_t sender_ud)
{
	struct sp_shard *self = sp_tls_shard;

	if (self && self->eng == target->eng) {
		struct io_uring_sqe *sqe = sp_shard_sqe(self);
		io_uring_prep_msg_ring(sqe, target->ring_fd, (unsigned)res, user_data, 0);
		sqe->user_data = sender_ud;
		if (self->features & SP_FEAT_CQE_SKIP)
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		return;
	}
	/* Off the shards (helpers, signal threads, tests): one shared ring, sent now. */
	struct sp_engine *eng = target->eng;
	pthread_mutex_lock(&eng->ext_lock);
	for (int tries = 0;; tries++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&eng->ext_ring);
		io_uring_prep_msg_ring(sqe, target->ring_fd, (unsigned)res, user_data, 0);
		sqe->user_data = 0;
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait(&eng->ext_ring, 1);
		if (ret >= 0)
			ret = io_uring_wait_cqe(&eng->ext_ring, &cqe);
		if (ret == 0) {
			ret = cqe->res;
			io_uring_cqe_seen(&eng->ext_ring, cqe);
		}
		if (ret != -EOVERFLOW && ret != -EAGAIN && ret != -EINTR)
			break;
		if (tries > 100000) {
			sp_log(SP_LOG_ERR, "msg_ring to shard %u keeps failing: %s", target->idx,
			       strerror(-ret));
			break;
		}
		/* target CQ full: it is awake and busy; give it a moment */
		sched_yield();
	}
	pthread_mutex_unlock(&eng->ext_lock);
}

void sp_shard_doorbell(struct sp_shard *target)
{
	struct sp_shard *self = sp_tls_shard;

	if (self)
		st_add(self, ST_WAKES_SENT, 1);
	sp_ring_msg(target, sp_ud(NULL, SP_TAG_DOORBELL), 0, sp_ud(NULL, SP_TAG_IGNORE));
}

void sp_shard_notify(struct sp_shard *target)
{
	struct sp_shard *self = sp_tls_shard;

	/* pairs with the fence in park(): either we see parked=1 or it sees our push */
	sp_fence_seq_cst();
	if (target != self && atomic_load_explicit(&target->parked, memory_order_relaxed) &&
	    atomic_exchange_explicit(&target->parked, 0, memory_order_acq_rel)) {
		sp_shard_doorbell(target);
		return;
	}
	if (self)
		st_add(self, ST_WAKES_COALESCED, 1);
}

/* Submit what is prepared (and bring in completions the kernel holds), without waiting.
 * No syscall when there is nothing to submit and nothing waiting. */
static void enter(struct sp_shard *sh)
{
	if (!sh->pending_sqes && sh->events_in_memory && !ring_needs_enter(sh))
		return;
	note_cq_overflow(sh);
	int ret = io_uring_submit_and_get_events(&sh->ring);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		sp_log(SP_LOG_ERR, "shard %u: io_uring_enter: %s", sh->idx, strerror(-ret));
	note_cq_overflow(sh);
	/* Seen on 6.18 during shutdown: the flag stays set after an enter that ran nothing.
	 * Taking it for work would spin this shard; a wait runs any task work anyway. */
	sh->taskrun_stale = !io_uring_cq_ready(&sh->ring) &&
			    (IO_URING_READ_ONCE(*sh->ring.sq.kflags) & IORING_SQ_TASKRUN);
	if (sh->pending_sqes)
		st_add(sh, ST_SUBMITS, 1);
	sh->pending_sqes = 0;
}

/* Stealable tasks wait in our run queue behind the one we run: if no shard is searching
 * and one is parked, wake it to steal. Called before each task run while the queue is
 * not empty, so a shard that parks after a check is seen at the next one. */
static void maybe_wake_thief(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;

	/* pairs with the fence in park(): the push to our run queue happened before */
	sp_fence_seq_cst();
	if (!atomic_load_explicit(&eng->nparked, memory_order_relaxed))
		return;
	for (unsigned i = 1; i < eng->nshards; i++)
		if (atomic_load_explicit(&eng->shards[(sh->idx + i) % eng->nshards]->searching,
					 memory_order_relaxed))
			return; /* it will find our queue */
	for (unsigned i = 1; i < eng->nshards; i++) {
		struct sp_shard *v = eng->shards[(sh->idx + i) % eng->nshards];
		if (atomic_load_explicit(&v->parked, memory_order_relaxed) &&
		    atomic_exchange_explicit(&v->parked, 0, memory_order_acq_rel)) {
			sp_shard_doorbell(v);
			enter(sh); /* now: our pass may run for a while */
			return;
		}
	}
}

/* ------------------------------------------------------------------------------------ */
/* Stealing                                                                              */

static uint64_t next_rand(struct sp_shard *sh)
{
	/* xorshift64 */
	uint64_t x = sh->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return sh->rng = x;
}

static void cpu_relax(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		__builtin_ia32_pause();
}

static bool can_steal(const struct sp_shard *sh)
{
	return sh->eng->cfg.steal && sh->eng->nshards > 1;
}

/* Some other shard has stealable tasks queued (a snapshot: reads their queue ends). */
static bool victims_have_work(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;

	for (unsigned i = 1; i < eng->nshards; i++)
		if (sp_runq_len(&eng->shards[(sh->idx + i) % eng->nshards]->runq))
			return true;
	return false;
}

/* Take about half of v's run queue into ours. true when we got something. */
static bool steal_from(struct sp_shard *sh, struct sp_shard *v)
{
	struct sp_task *got[SP_STEAL_MAX];

	st_add(sh, ST_STEAL_TRIES, 1);
	unsigned k = sp_runq_steal(&v->runq, got, SP_STEAL_MAX, 1);
	for (unsigned j = 0; j < k; j++)
		if (!sp_runq_push(&sh->runq, got[j]))
			sp_local_push(sh, got[j]);
	if (k)
		st_add(sh, ST_STEALS, k);
	return k != 0;
}

/* One look at every victim, from a random one on; steal from the fullest run queue. */
static bool steal_pass(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;
	unsigned n = eng->nshards;
	struct sp_shard *best = NULL;
	unsigned best_len = 0, start = (unsigned)(next_rand(sh) % n);

	for (unsigned i = 0; i < n; i++) {
		struct sp_shard *v = eng->shards[(start + i) % n];
		unsigned len = v == sh ? 0 : sp_runq_len(&v->runq);
		if (len > best_len) {
			best = v;
			best_len = len;
		}
	}
	return best && steal_from(sh, best);
}

/*
 * Balancing between busy shards. Shards whose tasks never wait (their I/O completes at
 * once: a saturated stream, a hot cache) are never idle, so stealing on idleness alone
 * would leave them as they were placed. At the end of a pass that emptied our queues we
 * compare passes: a victim whose passes (the last one, or the current one so far) are
 * longer than ours by more than the cost of the task at the head of its queue gives us
 * that task: both passes end up closer. The cost is what the task's last run took; a
 * task that costs more than the gap stays (moving it would only swap the imbalance), so
 * one long task ends up alone on a shard and the short ones gather on the other.
 */
static bool steal_from_busy(struct sp_shard *sh, uint64_t now, uint64_t my_pass)
{
	struct sp_engine *eng = sh->eng;
	struct sp_shard *best = NULL;
	uint64_t best_gain = 0;

	for (unsigned i = 1; i < eng->nshards; i++) {
		struct sp_shard *v = eng->shards[(sh->idx + i) % eng->nshards];
		uint32_t cost;
		if (!sp_runq_head_cost(&v->runq, &cost))
			continue;
		uint64_t start = atomic_load_explicit(&v->pass_start, memory_order_relaxed);
		uint64_t pass = atomic_load_explicit(&v->last_pass_ns, memory_order_relaxed);
		if (now > start && now - start > pass)
			pass = now - start;
		if (pass <= my_pass + cost)
			continue;
		/* the longer pass after the move is max(pass - cost, my_pass + cost) */
		uint64_t gain = pass - (pass - cost > my_pass + cost ? pass - cost : my_pass + cost);
		if (gain > best_gain) {
			best = v;
			best_gain = gain;
		}
	}
	if (!best)
		return false;
	struct sp_task *t;
	st_add(sh, ST_STEAL_TRIES, 1);
	if (!sp_runq_steal(&best->runq, &t, 1, 1))
		return false;
	if (!sp_runq_push(&sh->runq, t))
		sp_local_push(sh, t);
	st_add(sh, ST_STEALS, 1);
	return true;
}

/* We ran out of work: steal, a few tries with a short back-off between lost races. */
static bool try_steal(struct sp_shard *sh)
{
	bool found = false;

	atomic_store_explicit(&sh->searching, true, memory_order_relaxed);
	for (unsigned round = 0; round < 3; round++) {
		if (!victims_have_work(sh))
			break; /* nothing to take anywhere */
		if ((found = steal_pass(sh)))
			break;
		cpu_relax(16u << (2 * round)); /* lost races: back off 16, 64, 256 pauses */
	}
	atomic_store_explicit(&sh->searching, false, memory_order_relaxed);
	return found;
}

/* ------------------------------------------------------------------------------------ */
/* Sleeping                                                                              */

static void park(struct sp_shard *sh, uint64_t max_ns)
{
	struct sp_engine *eng = sh->eng;

	atomic_store_explicit(&sh->parked, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&eng->nparked, 1, memory_order_relaxed);
	sp_fence_seq_cst();
	/* last look: our own queues, then the victims' (they only wake a parked shard);
	 * and stop: its doorbell may have been reaped since our loop read `stopping` */
	bool stopping = atomic_load(&eng->stopping);
	if (sp_shard_has_work(sh) || (stopping && max_ns == UINT64_MAX) ||
	    (can_steal(sh) && !stopping && victims_have_work(sh))) {
		atomic_store_explicit(&sh->parked, 0, memory_order_relaxed);
		atomic_fetch_sub_explicit(&eng->nparked, 1, memory_order_relaxed);
		enter(sh);
		return;
	}
	uint64_t wait = sp_wheel_next_ns(sh, sp_now_ns());
	if (wait > max_ns)
		wait = max_ns;
	struct __kernel_timespec ts = { .tv_sec = (long long)(wait / 1000000000ull),
					.tv_nsec = (long long)(wait % 1000000000ull) };
	struct io_uring_cqe *cqe;
	st_add(sh, ST_SLEEPS, 1);
	if (sh->pending_sqes)
		st_add(sh, ST_SUBMITS, 1);
	sh->pending_sqes = 0;
	note_cq_overflow(sh);
	int ret = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1,
						   wait == UINT64_MAX ? NULL : &ts, NULL);
	note_cq_overflow(sh);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		sp_log(SP_LOG_ERR, "shard %u: wait: %s", sh->idx, strerror(-ret));
	atomic_store_explicit(&sh->parked, 0, memory_order_relaxed);
	atomic_fetch_sub_explicit(&eng->nparked, 1, memory_order_relaxed);
}

#define SPIN_PAUSES 4  /* pauses between two looks at our queues */
#define SPIN_EVERY 32  /* looks between clock reads, victim probes */

/* Poll for up to idle_spin_us before sleeping, after a pass that did work. Everything is
 * seen in memory: messages posted meanwhile (we are not parked, so no doorbell is rung),
 * CQEs, and the taskrun flag for completions the kernel holds; io_uring_get_events only
 * where the ring has no such flag. Counted as searching, so busy shards do not wake
 * anyone while we spin; with stealing on we probe the victims every SPIN_EVERY looks.
 * Returns true when work turned up. */
static bool spin(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;
	uint64_t limit = eng->cfg.idle_spin_us * 1000ull;
	bool thief = can_steal(sh), found = false;

	if (!limit)
		return false;
	enter(sh);
	if (thief)
		atomic_store_explicit(&sh->searching, true, memory_order_relaxed);
	uint64_t start = sp_now_ns();
	for (unsigned i = 1;; i++) {
		if (sp_shard_has_work(sh)) {
			found = true;
			break;
		}
		cpu_relax(SPIN_PAUSES);
		if (i % SPIN_EVERY)
			continue;
		if (thief && victims_have_work(sh) && steal_pass(sh)) {
			found = true;
			break;
		}
		if (!sh->events_in_memory)
			io_uring_get_events(&sh->ring);
		uint64_t now = sp_now_ns();
		if (sp_wheel_next_ns(sh, now) == 0) {
			found = true;
			break;
		}
		if (now - start >= limit)
			break;
	}
	if (thief)
		atomic_store_explicit(&sh->searching, false, memory_order_relaxed);
	return found;
}

/* ------------------------------------------------------------------------------------ */
/* Shutdown                                                                              */

static void cancel_everything(struct sp_shard *sh)
{
	struct io_uring_sqe *sqe = sp_shard_sqe(sh);
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	sqe->user_data = sp_ud(NULL, SP_TAG_IGNORE);
}

static bool locally_quiet(struct sp_shard *sh)
{
	return !atomic_load_explicit(&sh->st[ST_OPS_INFLIGHT], memory_order_relaxed) &&
	       !sh->cancels_inflight && !sh->wheel.count && !sh->pending_sqes &&
	       !sp_shard_has_work(sh);
}

struct census {
	bool all_quiet;
	uint64_t sent, received, activity;
};

static void take_census(struct sp_engine *eng, struct census *c)
{
	c->all_quiet = true;
	c->sent = atomic_load(&eng->ext_sent);
	c->received = 0;
	c->activity = 0;
	for (unsigned i = 0; i < eng->nshards; i++) {
		struct sp_shard *s = eng->shards[i];
		c->all_quiet &= atomic_load(&s->quiet);
		c->sent += atomic_load(&s->st[ST_MSGS_SENT]);
		c->received += atomic_load(&s->st[ST_MSGS_RECEIVED]);
		c->activity += atomic_load(&s->st[ST_CQES]) + atomic_load(&s->st[ST_TASKS_RUN]);
	}
}

/* The engine is done when every shard is quiet, no message is in flight and no helper
 * job is out, twice in a row with nothing happening in between. */
static bool engine_done(struct sp_engine *eng)
{
	struct census a, b;

	take_census(eng, &a);
	if (!a.all_quiet || a.sent != a.received || sp_helpers_inflight(eng))
		return false;
	take_census(eng, &b);
	return b.all_quiet && b.sent == a.sent && b.received == a.received &&
	       b.activity == a.activity;
}

static void stop_pass(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;

	if (!sh->stop_seen) {
		sh->stop_seen = true;
		if (eng->cfg.on_stop)
			eng->cfg.on_stop(sh, eng->cfg.arg);
		cancel_everything(sh);
	} else if (sh->cancel_again) {
		cancel_everything(sh);
	}
	sh->cancel_again = false;
	sp_wheel_cancel_all(sh);
}

/* ------------------------------------------------------------------------------------ */

static void shard_loop(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;

	while (!atomic_load_explicit(&eng->done, memory_order_acquire)) {
		bool stopping = atomic_load_explicit(&eng->stopping, memory_order_acquire);
		if (stopping && sp_shard_has_work(sh))
			atomic_store(&sh->quiet, false); /* before the work, for the census */

		uint64_t start = sp_now_ns();
		atomic_store_explicit(&sh->pass_start, start, memory_order_relaxed);
		unsigned work = reap(sh, start);
		work += drain_inject(sh);
		sp_wheel_advance(sh, start);
		unsigned ran = run_tasks(sh);
		work += ran;
		sh->busy_pass = work != 0;
		if (stopping)
			stop_pass(sh);
		if (ran && can_steal(sh)) {
			uint64_t end = sp_now_ns();
			atomic_store_explicit(&sh->last_pass_ns, end - start, memory_order_relaxed);
			if (!stopping && !sh->local_head && !sp_runq_len(&sh->runq))
				steal_from_busy(sh, end, end - start);
		}

		st_set(sh, ST_RUNQ_DEPTH, sp_runq_len(&sh->runq));
		st_set(sh, ST_LOCALQ_DEPTH, sh->local_len);

		if (sp_shard_has_work(sh)) {
			enter(sh);
			continue;
		}
		if (!stopping && can_steal(sh) && victims_have_work(sh)) {
			/* our SQEs first: what completes at once (a NOP, a cached read) is our
			 * own next work, not a reason to take someone else's */
			enter(sh);
			if (sp_shard_has_work(sh) || try_steal(sh))
				continue;
		}
		/* nothing to do: with no spin, the SQEs of this pass go out with the wait */
		if (!stopping && sh->busy_pass && spin(sh)) {
			sh->busy_pass = true;
			continue;
		}
		if (stopping) {
			bool quiet = locally_quiet(sh);
			atomic_store(&sh->quiet, quiet);
			if (quiet && engine_done(eng)) {
				atomic_store_explicit(&eng->done, true, memory_order_release);
				for (unsigned i = 0; i < eng->nshards; i++)
					if (eng->shards[i] != sh)
						sp_shard_doorbell(eng->shards[i]);
				enter(sh);
				break;
			}
			park(sh, 1000000); /* re-check the census every ms while stopping */
			continue;
		}
		park(sh, UINT64_MAX);
	}
}

void *sp_shard_main(void *arg)
{
	struct sp_shard *sh = arg;
	struct sp_engine *eng = sh->eng;

	sp_tls_shard = sh;
	sh->rng = 0x9e3779b97f4a7c15ull * (sh->idx + 1);
	sp_mpsc_init(&sh->inject);
	sp_runq_init(&sh->runq);
	sp_wheel_init(&sh->wheel, sp_now_ns());

	int ret = sp_ring_setup(sh, eng->cfg.ring_entries, eng->cfg.cq_entries, eng->cfg.disable);
	if (ret == 0) {
		ret = sp_bufring_setup(sh);
		if (ret < 0)
			io_uring_queue_exit(&sh->ring);
	}
	pthread_mutex_lock(&eng->start_lock);
	sh->setup_err = ret;
	eng->started++;
	pthread_cond_broadcast(&eng->start_cond);
	/* wait for the verdict on the whole engine: every ring must exist before any
	 * shard sends to another */
	while (eng->started != UINT32_MAX && eng->started != UINT32_MAX - 1)
		pthread_cond_wait(&eng->start_cond, &eng->start_lock);
	bool go = eng->started == UINT32_MAX;
	pthread_mutex_unlock(&eng->start_lock);

	if (ret == 0 && go)
		shard_loop(sh);
	if (ret == 0) {
		/* drain what is left (late doorbells) and close the ring on its own thread:
		 * a registered ring fd belongs to this thread */
		io_uring_get_events(&sh->ring);
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&sh->ring, head, cqe) n++;
		io_uring_cq_advance(&sh->ring, n);
		if (sh->br)
			io_uring_unregister_buf_ring(&sh->ring, SP_BUF_GROUP);
		io_uring_queue_exit(&sh->ring);
		sp_bufring_free(sh);
	}
	sp_tls_shard = NULL;
	return NULL;
}
