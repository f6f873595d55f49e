/* SPDX-License-Identifier: MIT */
/*
 * loop.c - a shard's thread: the loop pass, sleeping and waking, stealing, and the
 * shutdown handshake.
 *
 * One pass: reap CQEs -> drain the inject queue -> fire due timers -> run up to 64
 * tasks -> one io_uring_enter that submits the batch and flushes completions. With
 * nothing to do the shard tries to steal, then parks in io_uring_enter until a CQE (its
 * own I/O, a doorbell or message from another shard) or the next timer.
 *
 * Wake protocol (no lost wake-up, no needless one): the shard stores parked=1, fences,
 * and looks at its queues once more before sleeping; a producer pushes, fences, and
 * rings the doorbell only if it can swap parked from 1 to 0. One of the two always sees
 * the other, and a burst of pushes to a sleeping shard costs one doorbell.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "engine/log.h"
#include "engine/shard.h"

#define RUN_BATCH 64
#define REAP_BATCH 64

static void handle_cqe(struct sp_shard *sh, uint64_t ud, int res, uint32_t flags)
{
	void *p = (void *)(uintptr_t)(ud & ~SP_TAG_MASK);

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
		/* another shard asks: pairs with its release store (see sp_op_cancel) */
		struct sp_op *op = p;
		(void)atomic_load_explicit(&op->handoff, memory_order_acquire);
		if ((!op->task || op->task->placement != SP_STEALABLE) &&
		    op->state == SP_OP_INFLIGHT)
			op->state = SP_OP_CANCELLING; /* ours: it is in flight on our ring */
		sp_op_cancel_local(sh, op);
		break;
	}
	case SP_TAG_SENDFAIL: {
		/* Without CQE_SKIP a successful send completes here too: the message is
		 * the receiver's now, do not touch it. */
		if (res >= 0)
			break;
		/* target CQ full (-EOVERFLOW) or gone: fall back to the inject queue */
		struct sp_msg *m = p;
		st_add(sh, ST_CQ_OVERFLOWS, 1);
		st_add(sh, ST_MSGS_SENT, -1);
		sp_msg_post(m->target, m, m->fn);
		break;
	}
	case SP_TAG_IGNORE:
		if (res == -EOVERFLOW)
			st_add(sh, ST_CQ_OVERFLOWS, 1);
		break;
	default: /* doorbell */
		break;
	}
}

static unsigned reap(struct sp_shard *sh)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	struct {
		uint64_t ud;
		int res;
		uint32_t flags;
	} batch[REAP_BATCH];
	unsigned total = 0;

	for (;;) {
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
	}
	if (total)
		st_add(sh, ST_CQES, total);
	if (*sh->ring.sq.kflags & IORING_SQ_CQ_OVERFLOW)
		st_add(sh, ST_CQ_OVERFLOWS, 1);
	return total;
}

static unsigned drain_inject(struct sp_shard *sh)
{
	unsigned n = 0;
	struct sp_msg *m;

	while ((m = sp_mpsc_pop(&sh->inject))) {
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

static unsigned run_tasks(struct sp_shard *sh)
{
	unsigned n;

	for (n = 0; n < RUN_BATCH; n++) {
		/* alternate so neither queue starves the other */
		struct sp_task *t = (n & 1) ? runq_pop_own(sh) : sp_local_pop(sh);
		if (!t)
			t = (n & 1) ? sp_local_pop(sh) : runq_pop_own(sh);
		if (!t)
			break;
		sp_task_run_one(sh, t);
	}
	return n;
}

bool sp_shard_has_work(struct sp_shard *sh)
{
	return sh->local_head || sp_runq_len(&sh->runq) || sp_mpsc_maybe_nonempty(&sh->inject) ||
	       io_uring_cq_ready(&sh->ring);
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
	atomic_thread_fence(memory_order_seq_cst);
	if (target != self && atomic_load_explicit(&target->parked, memory_order_relaxed) &&
	    atomic_exchange_explicit(&target->parked, 0, memory_order_acq_rel)) {
		sp_shard_doorbell(target);
		return;
	}
	if (self)
		st_add(self, ST_WAKES_COALESCED, 1);
}

/* Our runq holds more than we will run next: wake one sleeping shard to steal, unless
 * one is already searching. */
static void wake_thief(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;

	if (atomic_load_explicit(&eng->nsearching, memory_order_relaxed) > 0)
		return;
	for (unsigned i = 1; i < eng->nshards; i++) {
		struct sp_shard *v = eng->shards[(sh->idx + i) % eng->nshards];
		if (atomic_load_explicit(&v->parked, memory_order_relaxed) &&
		    atomic_exchange_explicit(&v->parked, 0, memory_order_acq_rel)) {
			sp_shard_doorbell(v);
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

static bool try_steal(struct sp_shard *sh)
{
	struct sp_engine *eng = sh->eng;
	unsigned n = eng->nshards;
	struct sp_task *got[SP_STEAL_MAX];

	if (n < 2 || !eng->cfg.steal)
		return false;
	/* at most half of the shards search at once; the rest go to sleep */
	int max_searchers = (int)(n / 2 ? n / 2 : 1);
	if (atomic_fetch_add(&eng->nsearching, 1) >= max_searchers) {
		atomic_fetch_sub(&eng->nsearching, 1);
		return false;
	}
	bool found = false;
	for (unsigned round = 0; round < 3 && !found; round++) {
		bool busy_victim = false;
		unsigned start = (unsigned)(next_rand(sh) % n);
		for (unsigned i = 0; i < n && !found; i++) {
			struct sp_shard *v = eng->shards[(start + i) % n];
			if (v == sh || !sp_runq_len(&v->runq))
				continue;
			busy_victim = true;
			st_add(sh, ST_STEAL_TRIES, 1);
			unsigned k = sp_runq_steal(&v->runq, got, SP_STEAL_MAX, 1);
			for (unsigned j = 0; j < k; j++)
				if (!sp_runq_push(&sh->runq, got[j]))
					sp_local_push(sh, got[j]);
			if (k) {
				st_add(sh, ST_STEALS, k);
				found = true;
			}
		}
		if (!busy_victim)
			break; /* nothing to take anywhere: go to sleep */
		if (!found)
			cpu_relax(64u << (2 * round)); /* lost races: back off 64, 256 pauses */
	}
	atomic_fetch_sub(&eng->nsearching, 1);
	return found;
}

/* ------------------------------------------------------------------------------------ */
/* Sleeping                                                                              */

static void enter(struct sp_shard *sh)
{
	int ret = io_uring_submit_and_get_events(&sh->ring);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		sp_log(SP_LOG_ERR, "shard %u: io_uring_enter: %s", sh->idx, strerror(-ret));
	if (sh->pending_sqes)
		st_add(sh, ST_SUBMITS, 1);
	sh->pending_sqes = 0;
}

static void park(struct sp_shard *sh, uint64_t max_ns)
{
	atomic_store_explicit(&sh->parked, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (sp_shard_has_work(sh)) {
		atomic_store_explicit(&sh->parked, 0, memory_order_relaxed);
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
	int ret = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1,
						   wait == UINT64_MAX ? NULL : &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		sp_log(SP_LOG_ERR, "shard %u: wait: %s", sh->idx, strerror(-ret));
	atomic_store_explicit(&sh->parked, 0, memory_order_relaxed);
}

/* Poll for up to idle_spin_us before sleeping, after a pass that did work. Messages
 * posted meanwhile are seen in memory (we are not parked, so no doorbell is rung);
 * completions and msg_ring CQEs need an enter with GETEVENTS under DEFER_TASKRUN, so
 * one is made every few polls. Returns true when work turned up. */
static bool spin(struct sp_shard *sh)
{
	uint64_t limit = sh->eng->cfg.idle_spin_us * 1000ull;

	if (!limit)
		return false;
	enter(sh);
	uint64_t start = sp_now_ns(), now = start;
	for (unsigned i = 1; now - start < limit; i++) {
		if (sp_shard_has_work(sh))
			return true;
		cpu_relax(32);
		if (!(i & 3)) {
			io_uring_get_events(&sh->ring);
			now = sp_now_ns();
			if (sp_wheel_next_ns(sh, now) == 0)
				return true;
		}
	}
	return false;
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
	       !sh->wheel.count && !sh->pending_sqes && !sp_shard_has_work(sh);
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

		unsigned work = reap(sh);
		work += drain_inject(sh);
		sp_wheel_advance(sh, sp_now_ns());
		work += run_tasks(sh);
		sh->busy_pass = work != 0;
		if (stopping)
			stop_pass(sh);

		unsigned qlen = sp_runq_len(&sh->runq);
		st_set(sh, ST_RUNQ_DEPTH, qlen);
		st_set(sh, ST_LOCALQ_DEPTH, sh->local_len);
		if (qlen >= 2 && eng->cfg.steal)
			wake_thief(sh);

		if (sp_shard_has_work(sh)) {
			enter(sh);
			continue;
		}
		/* nothing queued: the SQEs of this pass go out with the wait, in one syscall */
		if (!stopping && try_steal(sh))
			continue;
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

	int ret = sp_ring_setup(sh, eng->cfg.ring_entries, eng->cfg.disable);
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
