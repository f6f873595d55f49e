/* SPDX-License-Identifier: MIT */
/*
 * exec_queue.c - max_instances per route, and the bounded queue of connections waiting
 * for a slot (or their refusal when `queue` is 0 or full).
 *
 * The fast path is one CAS on `running`. The waiting list belongs to one shard, the
 * owner: sessions reach it by message, and only the owner links, unlinks, times out and
 * grants, so the list needs no lock and stays FIFO. A waiting session has nothing in
 * flight and cannot end by itself: the owner always hands it a verdict (granted, timed
 * out, stopped) and wakes it. A freed slot reaches the owner as one coalesced message.
 *
 * Lost wake-ups: a session that gives up the fast path raises `waiting` before its
 * message goes; an exiting child lowers `running` before it reads `waiting`. Both are
 * seq_cst, so either the exit sees the waiter (and posts a grant) or the owner, handling
 * the waiter's arrival, sees the freed slot.
 */
#include "engine/log.h"
#include "handlers/exec.h"

static void on_queue_timer(struct sp_op *op, int res, uint32_t flags);

void exec_queue_init(struct exec_queue *q, const struct sp_conf_exec *c, unsigned nshards)
{
	q->max = c->max_instances;
	q->cap = c->queue;
	q->timeout_ns = c->queue_timeout_ms * 1000000ull;
	q->owner = 0;
	atomic_init(&q->running, 0);
	atomic_init(&q->waiting, 0);
	atomic_init(&q->refused, 0);
	atomic_init(&q->last_note_ns, 0);
	atomic_init(&q->grant_pending, false);
	sp_timer_init(&q->timer, NULL, on_queue_timer);
}

static struct sp_shard *owner_shard(struct exec_queue *q)
{
	return sp_engine_shard(sp_shard_engine(sp_shard_current()), q->owner);
}

static bool take_slot(struct exec_queue *q)
{
	unsigned n = atomic_load(&q->running);
	while (n < q->max)
		if (atomic_compare_exchange_weak(&q->running, &n, n + 1))
			return true;
	return false;
}

/* "limit reached" at most once a second per route, whatever the load. */
static void note(struct exec_queue *q, const struct exec_session *e, const char *what)
{
	uint64_t now = sp_now_ns();
	uint64_t last = atomic_load_explicit(&q->last_note_ns, memory_order_relaxed);
	if (now - last < 1000000000ull ||
	    !atomic_compare_exchange_strong(&q->last_note_ns, &last, now))
		return;
	sp_log(SP_LOG_WARN, "route %s: max_instances (%u) reached: %s (%u waiting of %u, "
	       "%llu refused so far)", e->s.route->conf->name, q->max, what,
	       atomic_load(&q->waiting), q->cap, (unsigned long long)atomic_load(&q->refused));
}

/* Owner: hand e its verdict. e has nothing in flight and waits for exactly this. */
static void deliver(struct exec_queue *q, struct exec_session *e, enum exec_verdict v)
{
	atomic_fetch_sub(&q->waiting, 1);
	atomic_store_explicit(&e->verdict, v, memory_order_release);
	sp_task_wake(&e->s.task);
}

static struct exec_session *pop(struct exec_queue *q)
{
	struct exec_session *e = q->head;
	if (e && !(q->head = e->qnext))
		q->tail = NULL;
	return e;
}

/* Owner: the list went empty; the timer (on this shard) goes without a callback. */
static void disarm(struct exec_queue *q)
{
	if (sp_timer_armed(&q->timer) && sp_timer_cancel(&q->timer) == 0) {
		struct sp_gen *held = q->timer_gen;
		q->timer_gen = NULL;
		sp_gen_unref(held); /* may be the last: callers touch q no more */
	}
}

/* Owner: grant slots to the oldest waiters while there are slots. Stopping, a slot that
 * a killed child frees is nobody's: the waiters are told so, all of them, at once. */
static void serve(struct exec_queue *q)
{
	bool had = q->head != NULL, stop = exec_engine_stopping();
	while (q->head && (stop || take_slot(q)))
		deliver(q, pop(q), stop ? EXEC_STOPPED : EXEC_GRANTED);
	if (had && !q->head)
		disarm(q);
}

static void on_enqueue(struct sp_msg *m)
{
	struct exec_session *e = sp_container_of(m, struct exec_session, qmsg);
	struct exec_queue *q = &e->r->q;

	if (exec_engine_stopping()) {
		deliver(q, e, EXEC_STOPPED);
		return;
	}
	e->q_deadline_ns = e->q_since_ns + q->timeout_ns;
	e->qnext = NULL;
	if (q->tail)
		q->tail->qnext = e;
	else
		q->head = e;
	q->tail = e;
	if (!sp_timer_armed(&q->timer)) {
		q->timer_gen = sp_gen_ref(e->s.gen); /* the route lives while its timer is armed */
		sp_timer_arm(&q->timer, q->head->q_deadline_ns);
	}
	serve(q);
}

/* Owner: the head's queue_timeout, or the engine stopping (-ECANCELED). */
static void on_queue_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct exec_queue *q = sp_container_of(op, struct exec_queue, timer.op);
	struct sp_gen *held = q->timer_gen;
	bool stop = res == -ECANCELED && exec_engine_stopping();
	uint64_t now = sp_now_ns();

	q->timer_gen = NULL;
	while (q->head && (stop || q->head->q_deadline_ns <= now))
		deliver(q, pop(q), stop ? EXEC_STOPPED : EXEC_TIMED_OUT);
	if (q->head) {
		q->timer_gen = held;
		sp_timer_arm(&q->timer, q->head->q_deadline_ns);
		return;
	}
	sp_gen_unref(held); /* last: it may free the route and q with it */
}

static void on_grant(struct sp_msg *m)
{
	struct exec_queue *q = sp_container_of(m, struct exec_queue, grant_msg);
	struct sp_gen *held = q->grant_gen;
	/* read held before clearing: the next poster writes grant_gen after it sees false */
	atomic_store(&q->grant_pending, false);
	serve(q);
	sp_gen_unref(held);
}

enum exec_admit exec_queue_admit(struct exec_session *e)
{
	struct exec_queue *q = &e->r->q;

	if (atomic_load(&q->waiting) == 0 && take_slot(q)) {
		e->counted = true;
		return EXEC_RUN;
	}
	if (q->cap && atomic_fetch_add(&q->waiting, 1) < q->cap) {
		note(q, e, "connections wait");
		e->queued = true;
		e->q_since_ns = sp_now_ns();
		atomic_store(&e->verdict, EXEC_WAITING);
		sp_msg_post(owner_shard(q), &e->qmsg, on_enqueue);
		return EXEC_QUEUED;
	}
	if (q->cap)
		atomic_fetch_sub(&q->waiting, 1);
	atomic_fetch_add(&q->refused, 1);
	note(q, e, q->cap ? "queue full, connection refused" : "connection refused");
	return EXEC_REFUSED;
}

void exec_queue_release(struct exec_session *e)
{
	struct exec_queue *q = &e->r->q;
	bool idle = false;

	if (!e->counted)
		return;
	e->counted = false;
	atomic_fetch_sub(&q->running, 1);
	if (atomic_load(&q->waiting) == 0 ||
	    !atomic_compare_exchange_strong(&q->grant_pending, &idle, true))
		return; /* nobody waits, or a grant is on its way and will see our slot */
	q->grant_gen = sp_gen_ref(e->s.gen); /* the route lives until the grant ran */
	sp_msg_post(owner_shard(q), &q->grant_msg, on_grant);
}
