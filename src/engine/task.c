/* SPDX-License-Identifier: MIT */
/*
 * task.c - tasks: placement at spawn, scheduling, one run, and release.
 *
 * A task is in at most one queue (QUEUED) and run by at most one shard (RUNNING); both
 * bits change only by CAS. A wake or completion that arrives while the task runs sets
 * RESCHED and the runner queues it again when it finishes, so nothing is lost and
 * nothing runs twice at once. Stealable tasks are queued on the shard that schedules
 * them (where their completion arrived) and may be stolen from there; the others go to
 * their home shard's local FIFO, through its inject queue when scheduled from elsewhere.
 */
#include "engine/shard.h"

void sp_task_init(struct sp_task *t, enum sp_placement placement,
		  void (*run)(struct sp_task *), void (*release)(struct sp_task *))
{
	t->run = run;
	t->release = release;
	atomic_init(&t->state, 0);
	t->placement = (uint8_t)placement;
	t->closing = false;
	t->gen = 0;
	t->engine = NULL;
	t->home = NULL;
	atomic_init(&t->inbox, NULL);
	atomic_init(&t->qnext, NULL);
	t->live.live_next = t->live.live_prev = &t->live;
	t->live.task = t;
	t->inflight = 0;
	atomic_init(&t->cost_ns, 0);
}

void sp_local_push(struct sp_shard *sh, struct sp_task *t)
{
	atomic_store_explicit(&t->qnext, NULL, memory_order_relaxed);
	if (sh->local_tail)
		atomic_store_explicit(&sh->local_tail->qnext, t, memory_order_relaxed);
	else
		sh->local_head = t;
	sh->local_tail = t;
	sh->local_len++;
}

struct sp_task *sp_local_pop(struct sp_shard *sh)
{
	struct sp_task *t = sh->local_head;
	if (!t)
		return NULL;
	sh->local_head = atomic_load_explicit(&t->qnext, memory_order_relaxed);
	if (!sh->local_head)
		sh->local_tail = NULL;
	sh->local_len--;
	return t;
}

static void enqueue_here(struct sp_shard *sh, struct sp_task *t)
{
	if (t->placement == SP_STEALABLE && sp_runq_push(&sh->runq, t))
		return;
	sp_local_push(sh, t);
}

static void inject_fn(struct sp_msg *m)
{
	struct sp_task *t = sp_container_of(m, struct sp_task, wmsg);
	enqueue_here(sp_tls_shard, t);
}

/* Put a task whose QUEUED bit we just set into a queue. */
static void enqueue(struct sp_task *t)
{
	struct sp_shard *sh = sp_tls_shard;

	if (t->placement == SP_STEALABLE && sh && sh->eng == t->engine) {
		enqueue_here(sh, t);
		return;
	}
	if (sh == t->home) {
		enqueue_here(sh, t);
		return;
	}
	sp_msg_post(t->home, &t->wmsg, inject_fn);
}

void sp_task_schedule(struct sp_task *t)
{
	uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);

	for (;;) {
		uint32_t want;
		if (s & SP_TS_QUEUED)
			return; /* coalesced: it will see everything when it runs */
		if (s & SP_TS_RUNNING)
			want = s | SP_TS_RESCHED;
		else
			want = s | SP_TS_QUEUED;
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, want, memory_order_acq_rel,
							  memory_order_acquire)) {
			if (!(s & SP_TS_RUNNING))
				enqueue(t);
			return;
		}
	}
}

/*
 * A completion reaches a stealable task (any shard): push op on its inbox, then make
 * sure a run follows. Two hazards, both closed by the state word:
 *  - Lost completion. Pushing, then only *reading* the state (QUEUED: leave it) while
 *    the runner CASes QUEUED->RUNNING then takes the inbox is store buffering, which
 *    C11 allows to lose the push. Here the pusher's last step is a CAS of the state:
 *    the runner's CAS before its drain is ordered with it (one modification order,
 *    acq_rel): either it comes later and synchronizes with us, so its drain sees the
 *    push, or it came first and our CAS sees RUNNING and sets RESCHED.
 *  - Touching a freed task. Once op is on the inbox a runner may finish it and, the
 *    task closing, release it. The delivery is counted in the state before the push
 *    and dropped by that last CAS: a runner is not done while the count is not zero,
 *    and our CAS then queues the task, so the release waits for our last touch.
 */
void sp_task_deliver(struct sp_task *t, struct sp_op *op)
{
	uint32_t s = atomic_fetch_add_explicit(&t->state, SP_TS_DELIVER_ONE, memory_order_relaxed);
	SP_BUG_ON((s & SP_TS_DELIVER_MASK) == SP_TS_DELIVER_MASK);

	/* release: op->res/cqe_flags (and the count above) for the runner's drain */
	struct sp_op *head = atomic_load_explicit(&t->inbox, memory_order_relaxed);
	do
		atomic_store_explicit(&op->inbox_next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&t->inbox, &head, op, memory_order_release,
						      memory_order_relaxed));

	uint32_t want;
	s = atomic_load_explicit(&t->state, memory_order_relaxed);
	do {
		want = s - SP_TS_DELIVER_ONE;
		if (!(s & SP_TS_QUEUED))
			want |= (s & SP_TS_RUNNING) ? SP_TS_RESCHED : SP_TS_QUEUED;
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, want, memory_order_acq_rel,
							memory_order_relaxed));
	if (!(s & (SP_TS_QUEUED | SP_TS_RUNNING)))
		enqueue(t); /* we set QUEUED: t lives until that run */
}

void sp_task_cancel_done(struct sp_task *t, bool lost)
{
	uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	uint32_t want;

	/* One CAS drops the count and makes sure a run follows (a closing task is released
	 * there): if we set QUEUED we queue it, and it cannot be released before it ran;
	 * otherwise we do not touch t after the CAS. */
	do {
		SP_BUG_ON(!(s & SP_TS_CANCEL_MASK));
		want = s - SP_TS_CANCEL_ONE;
		if (lost)
			want |= SP_TS_CANCEL_LOST;
		if (!(s & SP_TS_QUEUED))
			want |= (s & SP_TS_RUNNING) ? SP_TS_RESCHED : SP_TS_QUEUED;
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, want, memory_order_acq_rel,
							memory_order_relaxed));
	if (!(s & (SP_TS_QUEUED | SP_TS_RUNNING)))
		enqueue(t);
}

void sp_task_spawn(struct sp_engine *eng, struct sp_task *t, uint64_t key)
{
	struct sp_shard *sh = sp_tls_shard;
	if (sh && sh->eng != eng)
		sh = NULL;

	t->engine = eng;
	switch (t->placement) {
	case SP_ROUND_ROBIN:
		t->home = eng->shards[atomic_fetch_add_explicit(&eng->rr, 1, memory_order_relaxed) %
				      eng->nshards];
		break;
	case SP_STICKY:
		key ^= key >> 33; /* spread consecutive keys (ports, addresses) */
		key *= 0xff51afd7ed558ccdull;
		key ^= key >> 33;
		t->home = eng->shards[key % eng->nshards];
		break;
	default:
		t->home = sh ? sh : eng->shards[0];
		break;
	}
	if (sh)
		st_add(sh, ST_TASKS_SPAWNED, 1);
	atomic_store_explicit(&t->state, SP_TS_QUEUED | SP_TS_WANT_RUN, memory_order_release);
	enqueue(t);
}

void sp_task_wake(struct sp_task *t)
{
	atomic_fetch_or_explicit(&t->state, SP_TS_WANT_RUN, memory_order_acq_rel);
	sp_task_schedule(t);
}

struct sp_shard *sp_task_shard(const struct sp_task *t)
{
	(void)t;
	return sp_tls_shard;
}

void sp_task_cancel_all(struct sp_task *t)
{
	struct sp_op *op = t->live.live_next;

	while (op != &t->live) {
		struct sp_op *next = op->live_next; /* a local timer cancel unlinks op */
		if (op->state == SP_OP_INFLIGHT)
			sp_op_cancel(op);
		op = next;
	}
}

void sp_task_close(struct sp_task *t)
{
	/* acquire: pairs with the end of the task's last run, which may have been on
	 * another shard (an idle stealable task closed from elsewhere) */
	(void)atomic_load_explicit(&t->state, memory_order_acquire);
	if (t->closing)
		return;
	t->closing = true;
	sp_task_cancel_all(t);
	/* release happens at the end of a run; make sure one comes if nothing is in
	 * flight (otherwise the last completion brings it) */
	if (!t->inflight)
		sp_task_schedule(t);
}

void sp_task_op_done(struct sp_task *t)
{
	/* inline completions (pinned tasks) do not pass through a run: schedule one so the
	 * release happens there, after the callback returned */
	if (t->closing && !t->inflight && t->placement != SP_STEALABLE)
		sp_task_schedule(t);
}

/* Cancel requests of ours that never got to their ring: ask again (task context). */
static void resend_cancels(struct sp_task *t)
{
	for (struct sp_op *op = t->live.live_next; op != &t->live; op = op->live_next)
		if (op->state == SP_OP_CANCELLING)
			sp_op_cancel(op);
}

uint64_t sp_task_run_one(struct sp_shard *sh, struct sp_task *t, uint64_t start_ns)
{
	uint64_t end_ns = 0;

	/* acquire: we took t from a queue, after whoever set QUEUED; the CAS orders our
	 * drain after the deliveries it sees (see sp_task_deliver) */
	uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);
	do
		SP_BUG_ON(!(s & SP_TS_QUEUED) || (s & SP_TS_RUNNING));
	while (!atomic_compare_exchange_weak_explicit(&t->state, &s,
						      (s & ~(uint32_t)SP_TS_QUEUED) | SP_TS_RUNNING,
						      memory_order_acq_rel, memory_order_acquire));
	st_add(sh, ST_TASKS_RUN, 1);
	if (t->placement == SP_STEALABLE) {
		t->home = sh;
		sp_task_drain_inbox(t);
	}
	if (atomic_load_explicit(&t->state, memory_order_relaxed) & SP_TS_CANCEL_LOST) {
		atomic_fetch_and_explicit(&t->state, ~(uint32_t)SP_TS_CANCEL_LOST,
					  memory_order_relaxed);
		resend_cancels(t);
	}
	if (atomic_load_explicit(&t->state, memory_order_relaxed) & SP_TS_WANT_RUN) {
		atomic_fetch_and_explicit(&t->state, ~(uint32_t)SP_TS_WANT_RUN,
					  memory_order_acq_rel);
		if (t->run && !t->closing)
			t->run(t);
	}

	if (start_ns && t->placement == SP_STEALABLE) {
		/* before the task can be queued (and run, released) elsewhere */
		end_ns = sp_now_ns();
		uint64_t d = end_ns > start_ns ? end_ns - start_ns : 0;
		atomic_store_explicit(&t->cost_ns, d > UINT32_MAX ? UINT32_MAX : (uint32_t)d,
				      memory_order_relaxed);
	}
	/* Done: closing, no op or timer in flight, no cancel request unacknowledged and no
	 * completion being delivered (both end in a CAS that runs the task again). Decided
	 * on the state this CAS sees. */
	bool done;
	s = atomic_load_explicit(&t->state, memory_order_acquire);
	for (;;) {
		done = t->closing && !t->inflight &&
		       !(s & (SP_TS_CANCEL_MASK | SP_TS_DELIVER_MASK));
		uint32_t want = s & ~(uint32_t)(SP_TS_RUNNING | SP_TS_RESCHED);
		bool again = (s & SP_TS_RESCHED) || (s & SP_TS_WANT_RUN && !done);
		if (again)
			want |= SP_TS_QUEUED;
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, want, memory_order_acq_rel,
							  memory_order_acquire)) {
			if (again) {
				enqueue(t);
				return end_ns;
			}
			break;
		}
	}
	if (done) {
		SP_BUG_ON(t->live.live_next != &t->live);
		SP_BUG_ON(atomic_load_explicit(&t->inbox, memory_order_relaxed));
		if (t->release)
			t->release(t);
	}
	return end_ns;
}
