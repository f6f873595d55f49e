/* SPDX-License-Identifier: MIT */
/* test_ring.c - the ring itself: a link chain is never cut by a full SQ (every slot
 * position, the last one included), the CQ size is clamped so that any SQ size starts,
 * a CQ overflow loses nothing and is counted (with the kernel's own drop counter), and
 * the pass budget: completions that keep coming and messages that keep coming do not
 * hold the shard (a timer and a message from outside still get their turn). */
#include <errno.h>
#include <unistd.h>

#include "engine/shard.h"
#include "harness.h"

static struct sp_engine *eng;

static struct sp_engine *start_small(unsigned entries, unsigned cq_entries)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = 1;
	cfg.ring_entries = entries;
	cfg.cq_entries = cq_entries;
	return start_engine_cfg(&cfg);
}

/* ------------------------------------------------------------------------------------ */
/* Link chains                                                                           */

#define SQ 8

static struct sp_op nops[SQ];
static _Atomic long nop_done;

static void on_nop(struct sp_op *op, int res, uint32_t flags)
{
	(void)op;
	(void)flags;
	ck_assert_int_eq(res, 0);
	atomic_fetch_add(&nop_done, 1);
}

struct chain {
	struct sp_op rd, tmo;
	struct __kernel_timespec ts;
	char buf[8];
	_Atomic int rd_res, tmo_res;
	_Atomic long done;
};

static struct chain ch;
static int pipefd[2];

static void on_chain(struct sp_op *op, int res, uint32_t flags)
{
	(void)flags;
	struct chain *c = &ch;
	if (op == &c->rd)
		atomic_store(&c->rd_res, res);
	else
		atomic_store(&c->tmo_res, res);
	atomic_fetch_add(&c->done, 1);
}

/* On the shard: fill the SQ with `fill` NOPs, then a read of an empty pipe under a
 * 20 ms linked timeout. With fill = SQ - 1 the read's SQE takes the last free slot. */
static void fill_then_chain(void *arg)
{
	unsigned fill = (unsigned)(uintptr_t)arg;
	struct sp_shard *sh = sp_shard_current();
	ck_assert_uint_eq(io_uring_sq_space_left(&sh->ring), SQ); /* the pass submitted */
	for (unsigned i = 0; i < fill; i++) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_nop(sqe);
		sp_op_submit(&nops[i], sqe);
	}
	ck_assert_uint_eq(io_uring_sq_space_left(&sh->ring), SQ - fill);
	ch.ts.tv_sec = 0;
	ch.ts.tv_nsec = 20 * 1000000;
	struct io_uring_sqe *sqe = sp_sqes(2);
	io_uring_prep_read(sqe, pipefd[0], ch.buf, sizeof(ch.buf), 0);
	sp_op_submit_timeout(&ch.rd, sqe, &ch.tmo, &ch.ts);
}

START_TEST(test_chain_never_split)
{
	eng = start_small(SQ, 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	for (unsigned i = 0; i < SQ; i++)
		sp_op_init(&nops[i], NULL, on_nop);
	sp_op_init(&ch.rd, NULL, on_chain);
	sp_op_init(&ch.tmo, NULL, on_chain);
	long nops_want = 0;
	for (unsigned fill = 0; fill < SQ; fill++) {
		atomic_store(&ch.done, 0);
		atomic_store(&ch.rd_res, 1);
		atomic_store(&ch.tmo_res, 1);
		uint64_t t0 = sp_now_ns();
		run_on_shard(eng, 0, fill_then_chain, (void *)(uintptr_t)fill);
		nops_want += fill;
		/* a cut chain: the timeout fails at once with -EINVAL, the read never ends */
		ck_assert_msg(wait_atomic(&ch.done, 2, 5000), "fill %u: the read never ended", fill);
		ck_assert_msg(atomic_load(&ch.tmo_res) == -ETIME, "fill %u: timeout %d", fill,
			      atomic_load(&ch.tmo_res));
		ck_assert_int_eq(atomic_load(&ch.rd_res), -ECANCELED);
		ck_assert_uint_ge(sp_now_ns() - t0, 15 * 1000000ull);
		ck_assert(wait_atomic(&nop_done, nops_want, 5000));
	}
	stop_engine(eng);
	close(pipefd[0]);
	close(pipefd[1]);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* CQ size and overflow                                                                  */

static _Atomic unsigned cq_seen;

static void read_cq(void *arg)
{
	(void)arg;
	atomic_store(&cq_seen, sp_shard_current()->cq_entries);
}

START_TEST(test_ring_sizes_start)
{
	/* the largest SQ the configuration takes asks for a CQ of 4x: past the kernel's
	 * maximum, clamped instead of refused */
	eng = start_small(32768, 0);
	run_on_shard(eng, 0, read_cq, NULL);
	ck_assert_uint_eq(atomic_load(&cq_seen), 65536);
	stop_engine(eng);
	/* the smallest, and a CQ asked smaller than the SQ (raised to it) */
	eng = start_small(8, 4);
	run_on_shard(eng, 0, read_cq, NULL);
	ck_assert_uint_eq(atomic_load(&cq_seen), 8);
	stop_engine(eng);
	eng = start_small(8, 0);
	run_on_shard(eng, 0, read_cq, NULL);
	ck_assert_uint_eq(atomic_load(&cq_seen), 32);
	stop_engine(eng);
}
END_TEST

#define FLOOD 400
static struct sp_op flood[FLOOD];
static _Atomic long flood_done;

static void on_flood(struct sp_op *op, int res, uint32_t flags)
{
	(void)op;
	(void)flags;
	ck_assert_int_eq(res, 0);
	atomic_fetch_add(&flood_done, 1);
}

/* FLOOD NOPs from one callback: every full SQ is submitted on the spot, and nothing is
 * reaped meanwhile, so 8 CQ slots overflow many times over. */
static void flood_nops(void *arg)
{
	(void)arg;
	for (int i = 0; i < FLOOD; i++) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_nop(sqe);
		sp_op_submit(&flood[i], sqe);
	}
}

static _Atomic unsigned kernel_dropped;

static void read_koverflow(void *arg)
{
	(void)arg;
	atomic_store(&kernel_dropped, *sp_shard_current()->ring.cq.koverflow);
}

START_TEST(test_cq_overflow_counted)
{
	eng = start_small(8, 8);
	for (int i = 0; i < FLOOD; i++)
		sp_op_init(&flood[i], NULL, on_flood);
	struct sp_shard_stats st;
	sp_shard_stats_read(sp_engine_shard(eng, 0), &st);
	ck_assert_uint_eq(st.cq_overflows, 0);
	run_on_shard(eng, 0, flood_nops, NULL);
	/* the kernel backlogs the CQEs that found the CQ full: every one arrives */
	ck_assert(wait_atomic(&flood_done, FLOOD, 5000));
	sp_shard_stats_read(sp_engine_shard(eng, 0), &st);
	ck_assert_uint_ge(st.cq_overflows, 1);
	/* one overflow, counted once, not once per pass that saw the backlog */
	ck_assert_uint_le(st.cq_overflows, 2);
	/* the kernel's own counter: CQEs it dropped (none: it had room in the backlog) */
	run_on_shard(eng, 0, read_koverflow, NULL);
	ck_assert_uint_eq(st.cq_dropped, atomic_load(&kernel_dropped));
	ck_assert_uint_eq(st.cq_dropped, 0);
	/* a second flood is a second overflow */
	atomic_store(&flood_done, 0);
	run_on_shard(eng, 0, flood_nops, NULL);
	ck_assert(wait_atomic(&flood_done, FLOOD, 5000));
	struct sp_shard_stats st2;
	sp_shard_stats_read(sp_engine_shard(eng, 0), &st2);
	ck_assert_uint_gt(st2.cq_overflows, st.cq_overflows);
	stop_engine(eng);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Pass budget                                                                           */

#define SPINNERS 256
static struct sp_op spin_ops[SPINNERS];
static _Atomic bool spinning;
static _Atomic long spins;

/* Each completion submits the NOP again: with the SQ full every few of them, the CQ
 * refills while it is being reaped and never stays empty. */
static void on_spin(struct sp_op *op, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	atomic_fetch_add_explicit(&spins, 1, memory_order_relaxed);
	if (!atomic_load(&spinning) || sp_engine_stopping(eng))
		return;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_nop(sqe);
	sp_op_submit(op, sqe);
}

static struct sp_msg echo_msg;
static _Atomic long echoes;

/* A message that posts itself again to its own shard, for as long as we spin. */
static void on_echo(struct sp_msg *m)
{
	atomic_fetch_add_explicit(&echoes, 1, memory_order_relaxed);
	if (atomic_load(&spinning) && !sp_engine_stopping(eng))
		sp_msg_post(sp_shard_current(), m, on_echo);
}

static struct sp_timer tick;
static _Atomic uint64_t fired_ns;

static void on_tick(struct sp_op *op, int res, uint32_t flags)
{
	(void)op;
	(void)flags;
	if (res == 0)
		atomic_store(&fired_ns, sp_now_ns());
}

static void start_flood(void *arg)
{
	(void)arg;
	for (int i = 0; i < SPINNERS; i++) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_nop(sqe);
		sp_op_submit(&spin_ops[i], sqe);
	}
	sp_msg_post(sp_shard_current(), &echo_msg, on_echo);
}

static void arm_tick(void *arg)
{
	(void)arg;
	sp_timer_after(&tick, 5 * 1000000ull);
}

START_TEST(test_budget_lets_timers_and_messages_in)
{
	eng = start_small(32, 0);
	for (int i = 0; i < SPINNERS; i++)
		sp_op_init(&spin_ops[i], NULL, on_spin);
	sp_timer_init(&tick, NULL, on_tick);
	atomic_store(&spinning, true);
	run_on_shard(eng, 0, start_flood, NULL);
	ck_assert(wait_atomic(&spins, scaled(100000), 10000));
	ck_assert(wait_atomic(&echoes, scaled(10000), 10000));
	/* the flood goes on; a message from outside and a 5 ms timer still get their turn */
	for (int round = 0; round < 5; round++) {
		atomic_store(&fired_ns, 0);
		uint64_t t0 = sp_now_ns();
		run_on_shard(eng, 0, arm_tick, NULL); /* fails after 10 s if never run */
		uint64_t ran = sp_now_ns() - t0;
		ck_assert_msg(ran < 1000000000ull, "message from outside waited %llu ms",
			      (unsigned long long)(ran / 1000000));
		uint64_t end = t0 + 2000000000ull;
		while (!atomic_load(&fired_ns) && sp_now_ns() < end)
			sleep_us(200);
		ck_assert_msg(atomic_load(&fired_ns), "a 5 ms timer did not fire within 2 s");
		/* still flooding (bounded wait: the machine may be busy) */
		ck_assert(wait_atomic(&spins, atomic_load(&spins) + 1000, 2000));
	}
	atomic_store(&spinning, false);
	stop_engine(eng);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_chain_never_split);
	tcase_add_test(tc, test_ring_sizes_start);
	tcase_add_test(tc, test_cq_overflow_counted);
	tcase_add_test(tc, test_budget_lets_timers_and_messages_in);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
