/* SPDX-License-Identifier: MIT */
/*
 * timer.c - per-shard hierarchical timer wheel and the timer API.
 *
 * Wheel: 4 levels x 64 slots, 1 ms ticks (level 0 spans 64 ms, level 1 4 s, level 2
 * 4.4 min, level 3 4.7 h; later deadlines wait in the last level and are re-filed).
 * Insert and remove are O(1) list operations; a bitmap per level finds the next event
 * for the ring wait. Timers of a higher level cascade down when their slot comes up.
 *
 * Ownership. A timer sits in the wheel of the shard that armed it (W); only W touches
 * its wheel links. A stealable task may run on another shard S when it moves or
 * cancels the timer: S then changes the atomic `when` by CAS and posts the timer's ctl
 * message to W, which re-files or cancels it. W completes a timer only by a CAS of
 * `when` to OFF, so S and W never both think they own the last word:
 *   S sees OFF      -> the completion is on its way; a re-arm is kept in `rearm` and
 *                      applied when the completion is delivered (no callback then).
 *   W's CAS fails   -> S moved it first; W re-reads `when` and re-files or cancels.
 * A completion never overtakes a queued ctl message (it waits for it: `deferred`), so
 * the task cannot be released while its timer's message is still queued.
 */
#include <errno.h>
#include <string.h>

#include "engine/shard.h"

#define WHEN_OFF 0ull
#define WHEN_CANCEL 1ull

static uint64_t to_tick(uint64_t ns)
{
	return (ns + SP_TICK_NS - 1) / SP_TICK_NS;
}

void sp_wheel_init(struct sp_wheel *w, uint64_t now)
{
	memset(w, 0, sizeof(*w));
	w->now_tick = now / SP_TICK_NS;
}

static void wheel_link(struct sp_shard *sh, struct sp_timer *t, uint64_t expires)
{
	struct sp_wheel *w = &sh->wheel;
	uint64_t tick = to_tick(expires);
	unsigned level, slot;

	if (tick <= w->now_tick)
		tick = w->now_tick + 1;
	uint64_t delta = tick - w->now_tick;
	for (level = 0; level < SP_WHEEL_LEVELS - 1; level++)
		if (delta < (1ull << (6 * (level + 1))))
			break;
	if (level == SP_WHEEL_LEVELS - 1 && delta >= (1ull << (6 * SP_WHEEL_LEVELS)))
		tick = w->now_tick + (1ull << (6 * SP_WHEEL_LEVELS)) - 1; /* re-filed later */
	slot = (unsigned)(tick >> (6 * level)) & (SP_WHEEL_SLOTS - 1);

	if (level && level < SP_WHEEL_LEVELS - 1 &&
	    (!(w->occupied[level] & (1ull << slot)) || tick < w->due[level][slot]))
		w->due[level][slot] = tick;
	t->expires = expires;
	t->slot = (uint16_t)(level * SP_WHEEL_SLOTS + slot);
	t->prev = NULL;
	t->next = w->slot[level][slot];
	if (t->next)
		t->next->prev = t;
	w->slot[level][slot] = t;
	w->occupied[level] |= 1ull << slot;
	w->count++;
	st_set(sh, ST_TIMERS_ARMED, w->count);
}

static void wheel_unlink(struct sp_shard *sh, struct sp_timer *t)
{
	struct sp_wheel *w = &sh->wheel;
	unsigned level = t->slot / SP_WHEEL_SLOTS, slot = t->slot % SP_WHEEL_SLOTS;

	if (t->prev)
		t->prev->next = t->next;
	else
		w->slot[level][slot] = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (!w->slot[level][slot])
		w->occupied[level] &= ~(1ull << slot);
	t->prev = t->next = NULL;
	t->slot = UINT16_MAX;
	w->count--;
	st_set(sh, ST_TIMERS_ARMED, w->count);
}

/* Deliver a completion to the timer's owner: inline for pinned and shard-owned timers,
 * through the inbox for stealable tasks. */
static void complete(struct sp_shard *sh, struct sp_timer *t, int res)
{
	if (atomic_load_explicit(&t->ctl_pending, memory_order_acquire)) {
		t->deferred = true; /* the queued ctl message delivers it */
		t->deferred_res = res;
		return;
	}
	if (res == 0)
		st_add(sh, ST_TIMERS_FIRED, 1);
	sp_op_deliver(&t->op, res);
}

/* t is out of W's wheel: settle what `when` asks for. */
static void settle(struct sp_shard *sh, struct sp_timer *t, uint64_t now)
{
	uint64_t w = atomic_load_explicit(&t->when, memory_order_acquire);

	for (;;) {
		if (w == WHEN_OFF)
			return;
		if (w != WHEN_CANCEL && w > now && !atomic_load(&sh->eng->stopping)) {
			wheel_link(sh, t, w); /* moved later: re-file */
			return;
		}
		int res = (w == WHEN_CANCEL || w > now) ? -ECANCELED : 0;
		if (atomic_compare_exchange_weak_explicit(&t->when, &w, WHEN_OFF,
							  memory_order_acq_rel,
							  memory_order_acquire)) {
			complete(sh, t, res);
			return;
		}
	}
}

static void cascade(struct sp_shard *sh, unsigned level, unsigned slot)
{
	struct sp_wheel *w = &sh->wheel;
	struct sp_timer *t = w->slot[level][slot];

	w->slot[level][slot] = NULL;
	w->occupied[level] &= ~(1ull << slot);
	while (t) {
		struct sp_timer *next = t->next;
		w->count--;
		wheel_link(sh, t, t->expires);
		t = next;
	}
}

void sp_wheel_advance(struct sp_shard *sh, uint64_t now)
{
	struct sp_wheel *w = &sh->wheel;
	uint64_t target = now / SP_TICK_NS;

	while (w->now_tick < target) {
		if (!w->count) {
			w->now_tick = target;
			break;
		}
		uint64_t tick = ++w->now_tick;
		/* cascade the higher levels whose slot boundary this tick crosses */
		for (unsigned level = 1; level < SP_WHEEL_LEVELS; level++) {
			if (tick & ((1ull << (6 * level)) - 1))
				break;
			cascade(sh, level, (unsigned)(tick >> (6 * level)) & (SP_WHEEL_SLOTS - 1));
		}
		unsigned slot = (unsigned)tick & (SP_WHEEL_SLOTS - 1);
		while (w->slot[0][slot]) {
			struct sp_timer *t = w->slot[0][slot];
			wheel_unlink(sh, t);
			if (to_tick(t->expires) > tick) { /* clamped far deadline: re-file */
				wheel_link(sh, t, t->expires);
				continue;
			}
			settle(sh, t, now);
		}
	}
}

uint64_t sp_wheel_next_ns(struct sp_shard *sh, uint64_t now)
{
	struct sp_wheel *w = &sh->wheel;
	uint64_t best = UINT64_MAX;

	if (!w->count)
		return UINT64_MAX;
	for (unsigned level = 0; level < SP_WHEEL_LEVELS; level++) {
		uint64_t occ = w->occupied[level];
		if (!occ)
			continue;
		uint64_t base = w->now_tick >> (6 * level);
		/* rotate so bit 0 is the slot after the current one */
		unsigned from = (unsigned)(base + 1) & (SP_WHEEL_SLOTS - 1);
		uint64_t rot = (occ >> from) | (from ? occ << (64 - from) : 0);
		uint64_t dist = (uint64_t)__builtin_ctzll(rot) + 1;
		uint64_t tick = (base + dist) << (6 * level);
		/* the cascade can wait for the slot's first timer: sp_wheel_advance walks
		 * every tick it slept through, at most a level-2 slot's 4096 (a few compares
		 * each). Not the last level: it holds far deadlines re-filed at its start. */
		if (level && level < SP_WHEEL_LEVELS - 1) {
			uint64_t due = w->due[level][(base + dist) & (SP_WHEEL_SLOTS - 1)];
			if (due > tick)
				tick = due;
		}
		if (tick < best)
			best = tick;
	}
	uint64_t at = best * SP_TICK_NS;
	return at > now ? at - now : 0;
}

/* Stopping: every armed timer completes with -ECANCELED. */
void sp_wheel_cancel_all(struct sp_shard *sh)
{
	struct sp_wheel *w = &sh->wheel;

	for (unsigned level = 0; level < SP_WHEEL_LEVELS && w->count; level++) {
		for (unsigned slot = 0; slot < SP_WHEEL_SLOTS; slot++) {
			while (w->slot[level][slot]) {
				struct sp_timer *t = w->slot[level][slot];
				wheel_unlink(sh, t);
				uint64_t v = atomic_load(&t->when);
				while (v != WHEN_OFF &&
				       !atomic_compare_exchange_weak(&t->when, &v, WHEN_OFF))
					;
				if (v != WHEN_OFF)
					complete(sh, t, -ECANCELED);
			}
		}
	}
}

/* ------------------------------------------------------------------------------------ */
/* Control messages from the task's current shard to the wheel's shard                   */

static void ctl_fn(struct sp_msg *m)
{
	struct sp_timer *t = sp_container_of(m, struct sp_timer, ctl);
	struct sp_shard *sh = sp_tls_shard;

	atomic_store_explicit(&t->ctl_pending, 0, memory_order_release);
	uint64_t w = atomic_load_explicit(&t->when, memory_order_acquire);
	if (w != WHEN_OFF && atomic_load_explicit(&t->wheel, memory_order_acquire) == sh &&
	    t->slot != UINT16_MAX) {
		wheel_unlink(sh, t);
		settle(sh, t, sp_now_ns());
	}
	if (t->deferred) {
		t->deferred = false;
		complete(sh, t, t->deferred_res);
	}
}

static void post_ctl(struct sp_timer *t, struct sp_shard *wheel)
{
	if (!atomic_exchange_explicit(&t->ctl_pending, 1, memory_order_acq_rel))
		sp_msg_post(wheel, &t->ctl, ctl_fn);
}

/* ------------------------------------------------------------------------------------ */
/* API (owner context)                                                                   */

void sp_timer_init(struct sp_timer *t, struct sp_task *task, sp_op_fn fn)
{
	memset(t, 0, sizeof(*t));
	sp_op_init(&t->op, task, fn);
	t->op.kind = SP_KIND_TIMER;
	t->slot = UINT16_MAX;
}

static void insert_here(struct sp_shard *sh, struct sp_timer *t, uint64_t deadline)
{
	atomic_store_explicit(&t->wheel, sh, memory_order_relaxed);
	/* release: `wheel` is visible to whoever sees `when` set */
	atomic_store_explicit(&t->when, deadline, memory_order_release);
	t->op.shard = sh;
	wheel_link(sh, t, deadline);
}

void sp_timer_arm(struct sp_timer *t, uint64_t deadline)
{
	struct sp_shard *sh = sp_tls_shard;

	if (deadline < 2)
		deadline = 2;
	t->deadline = deadline;
	if (t->op.state == SP_OP_IDLE) {
		t->op.state = SP_OP_INFLIGHT;
		t->rearm = 0;
		if (t->op.task)
			sp_live_add(t->op.task, &t->op);
		insert_here(sh, t, deadline);
		return;
	}
	uint64_t w = atomic_load_explicit(&t->when, memory_order_acquire);
	if (w == WHEN_OFF) { /* fired or cancelled, completion not yet delivered */
		t->rearm = deadline;
		return;
	}
	struct sp_shard *wheel = atomic_load_explicit(&t->wheel, memory_order_relaxed);
	if (wheel == sh) {
		wheel_unlink(sh, t);
		insert_here(sh, t, deadline);
		return;
	}
	if (!atomic_compare_exchange_strong_explicit(&t->when, &w, deadline, memory_order_acq_rel,
						     memory_order_acquire)) {
		t->rearm = deadline; /* it completed meanwhile */
		return;
	}
	post_ctl(t, wheel);
}

void sp_timer_after(struct sp_timer *t, uint64_t delay_ns)
{
	sp_timer_arm(t, sp_now_ns() + delay_ns);
}

void sp_timer_next_tick(struct sp_timer *t, uint64_t period_ns)
{
	if (!period_ns)
		period_ns = 1;
	sp_timer_arm(t, (sp_now_ns() / period_ns + 1) * period_ns);
}

void sp_timer_every(struct sp_timer *t, uint64_t period_ns)
{
	t->period = period_ns ? period_ns : 1;
	sp_timer_arm(t, sp_now_ns() + t->period);
}

int sp_timer_cancel(struct sp_timer *t)
{
	struct sp_shard *sh = sp_tls_shard;

	if (t->op.state == SP_OP_IDLE)
		return -ENOENT;
	t->period = 0;
	t->rearm = 0;
	uint64_t w = atomic_load_explicit(&t->when, memory_order_acquire);
	if (w == WHEN_OFF)
		return -EINPROGRESS;
	struct sp_shard *wheel = atomic_load_explicit(&t->wheel, memory_order_relaxed);
	if (wheel == sh) {
		wheel_unlink(sh, t);
		atomic_store_explicit(&t->when, WHEN_OFF, memory_order_release);
		t->op.state = SP_OP_IDLE;
		if (t->op.task) {
			sp_live_del(&t->op);
			sp_task_op_done(t->op.task);
		}
		return 0;
	}
	if (atomic_compare_exchange_strong_explicit(&t->when, &w, WHEN_CANCEL,
						    memory_order_acq_rel, memory_order_acquire))
		post_ctl(t, wheel);
	return -EINPROGRESS;
}

/* A timer completion reaches its owner (owner context). */
void sp_timer_deliver(struct sp_timer *t, int res)
{
	struct sp_task *task = t->op.task;

	if (t->rearm && !(task && task->closing)) {
		/* re-armed while this completion travelled: the old deadline is void */
		uint64_t d = t->rearm;
		t->rearm = 0;
		insert_here(sp_tls_shard, t, d);
		return;
	}
	t->rearm = 0;
	t->op.state = SP_OP_IDLE;
	if (task)
		sp_live_del(&t->op);
	if (t->op.fn)
		t->op.fn(&t->op, res, 0);
	if (res == 0 && t->period && t->op.state == SP_OP_IDLE && !(task && task->closing)) {
		uint64_t next = t->deadline + t->period, now = sp_now_ns();
		sp_timer_arm(t, next > now ? next : now);
	}
	if (task)
		sp_task_op_done(task);
}
