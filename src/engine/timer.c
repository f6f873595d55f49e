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
 * its wheel links and only W completes it. The owner (the task's context) owns the
 * rest. A stealable task may run on another shard S when it moves or cancels the
 * timer: S cannot touch W's wheel, so it states what it wants in the atomic `when`
 * and posts the timer's ctl message to W. The two facts "S wants something" and "a
 * ctl message is queued" are one word, changed by one CAS: `when` holds the deadline
 * shifted left by one and its bit 0 (CTL) says a ctl message is queued at W.
 *   S: CAS when -> new | CTL; the CAS that set CTL (it was clear) posts the message.
 *   W: completes a timer only by a CAS of `when` from a value without CTL to OFF;
 *      with CTL set it leaves the timer alone (out of its wheel if it was due) and
 *      the ctl message settles it: ctl_fn clears CTL, then does what `when` says.
 * So W never delivers a completion while a ctl message is queued: the owner cannot
 * get the completion, be released and free the timer under a queued message, and S
 * never posts after W delivered (it finds `when` OFF and keeps the re-arm in
 * `rearm`, applied when the completion is delivered, without a callback).
 * The owner on W itself works on its wheel directly, unless CTL is set (then as S).
 * A delivered completion is the last touch of a timer by the engine: sp_timer_deliver
 * re-arms a periodic timer before its callback, which may free it.
 */
#include <errno.h>
#include <string.h>

#include "engine/shard.h"

#define WHEN_OFF 0ull
#define WHEN_CTL 1ull
#define WHEN_CANCEL 2ull /* deadline 1: cancel asked (deadlines are >= 2) */

static uint64_t when_enc(uint64_t deadline)
{
	return deadline << 1;
}

static uint64_t when_dec(uint64_t w)
{
	return w >> 1;
}

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
 * through the inbox for stealable tasks. Our last touch of t. */
static void complete(struct sp_shard *sh, struct sp_timer *t, int res)
{
	if (res == 0)
		st_add(sh, ST_TIMERS_FIRED, 1);
	sp_op_deliver(&t->op, res);
}

/* t is out of W's wheel: settle what `when` asks for. */
static void settle(struct sp_shard *sh, struct sp_timer *t, uint64_t now)
{
	/* acquire: what S wrote before its CAS (a re-arm's deadline) */
	uint64_t w = atomic_load_explicit(&t->when, memory_order_acquire);

	for (;;) {
		SP_BUG_ON(w == WHEN_OFF);
		if (w & WHEN_CTL)
			return; /* a ctl message is queued: it settles t */
		uint64_t d = when_dec(w);
		if (w != WHEN_CANCEL && d > now && !atomic_load(&sh->eng->stopping)) {
			wheel_link(sh, t, d); /* moved later: re-file */
			return;
		}
		int res = (w == WHEN_CANCEL || d > now) ? -ECANCELED : 0;
		/* fails when S changed `when` meanwhile: look again */
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
				uint64_t v = atomic_load_explicit(&t->when, memory_order_acquire);
				for (;;) {
					SP_BUG_ON(v == WHEN_OFF);
					if (v & WHEN_CTL)
						break; /* its ctl message cancels it */
					if (atomic_compare_exchange_weak_explicit(
						    &t->when, &v, WHEN_OFF, memory_order_acq_rel,
						    memory_order_acquire)) {
						complete(sh, t, -ECANCELED);
						break;
					}
				}
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

	SP_BUG_ON(atomic_load_explicit(&t->wheel, memory_order_relaxed) != sh);
	/* From here the owner may post m again: do not touch m. acq_rel: we see what S
	 * asked; S's next CAS sees CTL clear. */
	uint64_t w = atomic_fetch_and_explicit(&t->when, ~WHEN_CTL, memory_order_acq_rel);
	SP_BUG_ON(!(w & WHEN_CTL));
	if (t->slot != UINT16_MAX)
		wheel_unlink(sh, t);
	settle(sh, t, sp_now_ns());
}

/* Ask t's wheel shard by message; `when` already holds the request (owner context). */
static void post_ctl(struct sp_timer *t, struct sp_shard *wheel)
{
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
	atomic_store_explicit(&t->when, when_enc(deadline), memory_order_release);
	t->op.shard = sh;
	wheel_link(sh, t, deadline);
}

/* Ask t's wheel for `want` (a deadline or WHEN_CANCEL) from the owner context. Returns
 * 1 when done here on our own wheel, 0 when asked by message or by `rearm`, -1 when the
 * completion is already on its way (`when` OFF): the caller decides. */
static int request(struct sp_shard *sh, struct sp_timer *t, uint64_t want)
{
	struct sp_shard *wheel = atomic_load_explicit(&t->wheel, memory_order_relaxed);
	uint64_t w = atomic_load_explicit(&t->when, memory_order_acquire);

	for (;;) {
		if (w == WHEN_OFF)
			return -1;
		if (wheel == sh && !(w & WHEN_CTL)) {
			/* our wheel, no message queued: linked, and only we change it */
			SP_BUG_ON(t->slot == UINT16_MAX);
			wheel_unlink(sh, t);
			if (want == WHEN_CANCEL) {
				atomic_store_explicit(&t->when, WHEN_OFF, memory_order_release);
			} else {
				atomic_store_explicit(&t->when, want, memory_order_release);
				wheel_link(sh, t, when_dec(want));
			}
			return 1;
		}
		/* release: pairs with W's acquire in ctl_fn/settle */
		if (atomic_compare_exchange_weak_explicit(&t->when, &w, want | WHEN_CTL,
							  memory_order_acq_rel,
							  memory_order_acquire)) {
			if (!(w & WHEN_CTL))
				post_ctl(t, wheel);
			return 0;
		}
	}
}

void sp_timer_arm(struct sp_timer *t, uint64_t deadline)
{
	struct sp_shard *sh = sp_tls_shard;

	SP_BUG_ON(!sh);
	if (deadline < 2)
		deadline = 2;
	t->deadline = deadline;
	if (t->op.state == SP_OP_IDLE) {
		SP_BUG_ON(atomic_load_explicit(&t->when, memory_order_relaxed) != WHEN_OFF);
		t->op.state = SP_OP_INFLIGHT;
		t->rearm = 0;
		if (t->op.task)
			sp_live_add(t->op.task, &t->op);
		insert_here(sh, t, deadline);
		return;
	}
	if (request(sh, t, when_enc(deadline)) < 0)
		t->rearm = deadline; /* fired or cancelled, completion not yet delivered */
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

	SP_BUG_ON(!sh);
	if (t->op.state == SP_OP_IDLE)
		return -ENOENT;
	t->period = 0;
	t->rearm = 0;
	if (request(sh, t, WHEN_CANCEL) <= 0)
		return -EINPROGRESS; /* a callback comes */
	t->op.state = SP_OP_IDLE;
	if (t->op.task) {
		sp_live_del(&t->op);
		sp_task_op_done(t->op.task);
	}
	return 0;
}

/* A timer completion reaches its owner (owner context). */
void sp_timer_deliver(struct sp_timer *t, int res)
{
	struct sp_task *task = t->op.task;
	sp_op_fn fn = t->op.fn;

	SP_BUG_ON(t->op.state == SP_OP_IDLE);
	SP_BUG_ON(atomic_load_explicit(&t->when, memory_order_relaxed) != WHEN_OFF);
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
	/* The next period is armed before the callback: after it, t may be freed. */
	if (res == 0 && t->period && !(task && task->closing)) {
		uint64_t next = t->deadline + t->period, now = sp_now_ns();
		sp_timer_arm(t, next > now ? next : now);
	}
	if (fn)
		fn(&t->op, res, 0);
	if (task)
		sp_task_op_done(task);
}
