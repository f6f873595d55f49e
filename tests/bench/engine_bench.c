/* SPDX-License-Identifier: MIT */
/*
 * engine_bench.c - spargio's coordination table, re-created in C, plus I/O cases.
 *
 *   engine_bench [--rounds N] [--case NAME] [--quick] [--json] [--no-pin] [--spin-us N]
 *                [--stats] [--timeout-ms N] [--list]
 *
 * Every case runs three ways in each round, in the order engine, nosteal, epoll:
 *   engine   this engine, 2 shards, stealing on;
 *   nosteal  the same engine with cfg.steal = false (share-nothing);
 *   epoll    baseline (a): epoll + eventfd thread-per-core, 2 threads (epoll_rt.c).
 * Loop threads are pinned to CPUs 0 and 1 in every variant (--no-pin: in none). Times are
 * taken on the loop threads around the measured part only (after a warm-up), except
 * cold start, which times create..destroy from the calling thread. The table shows
 * medians over the rounds, and how many times faster the engine is than each baseline.
 *
 * Idle polling: both runtimes can poll for --spin-us (default 50, the engine's default
 * idle_spin_us) after a busy pass before they sleep, with the same loop. Every case
 * gives both the same budget, except the ping-pong rows, which say what each side does:
 * against the eventfd baseline as libuv/libevent run it (no polling: every message to a
 * sleeping thread is an eventfd write and an epoll_wait return), against epoll polling
 * for the same budget, and with nobody polling (the wake-up path).
 *
 * Cases: pingpong, oneway, coldstart, fanout, timers, fileread, tcpecho, imbalanced.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "engine/engine.h"
#include "engine/log.h"
#include "epoll_rt.h"

static struct {
	int rounds;
	bool quick, json, pin, stats, list;
	unsigned spin_us;
	unsigned timeout_ms;
	const char *only;
} opt = { .rounds = 5, .pin = true, .spin_us = 50, .timeout_ms = 60000 };

static unsigned engine_features;

/* Counts are divided by 10 with --quick. */
static uint64_t S(uint64_t full)
{
	uint64_t v = opt.quick ? full / 10 : full;
	return v ? v : 1;
}

/* ---- runtimes ---------------------------------------------------------------------- */

/* One variant's runtime for one measurement: an engine or an epoll_rt. */
struct rt {
	enum bench_variant v;
	struct sp_engine *eng;
	struct ert *ert;
};

static void rt_start(struct rt *r, enum bench_variant v, unsigned spin_us)
{
	memset(r, 0, sizeof(*r));
	r->v = v;
	if (v == V_EPOLL) {
		struct ert_config c = { .nthreads = 2, .pin_cpus = opt.pin, .spin_us = spin_us };
		int ret = ert_create(&c, &r->ert);
		if (ret)
			bench_die("ert_create: %s", strerror(-ret));
		return;
	}
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = 2;
	cfg.steal = v == V_ENGINE;
	cfg.pin_cpus = opt.pin;
	cfg.idle_spin_us = spin_us;
	int ret = sp_engine_create(&cfg, &r->eng);
	if (ret)
		bench_die("sp_engine_create: %s", strerror(-ret));
	engine_features = sp_engine_features(r->eng);
}

static void dump_stats(const char *what, struct rt *r)
{
	for (unsigned i = 0; i < 2; i++) {
		if (r->eng) {
			struct sp_shard_stats s;
			sp_shard_stats_read(sp_engine_shard(r->eng, i), &s);
			fprintf(stderr,
				"  [%s %s shard %u] run=%lu spawned=%lu steal_tries=%lu steals=%lu "
				"stolen=%lu sent=%lu recv=%lu wakes=%lu coalesced=%lu cqes=%lu "
				"sleeps=%lu submits=%lu overflows=%lu inflight=%lu timers=%lu "
				"runq=%lu localq=%lu\n",
				what, bench_variant_name[r->v], i, s.tasks_run, s.tasks_spawned,
				s.steal_tries, s.steals, s.stolen, s.msgs_sent, s.msgs_received,
				s.wakes_sent, s.wakes_coalesced, s.cqes, s.sleeps, s.submits,
				s.cq_overflows, s.ops_inflight, s.timers_armed, s.runq_depth,
				s.localq_depth);
		} else {
			struct ert_stats s;
			ert_stats_read(ert_thread_at(r->ert, i), &s);
			fprintf(stderr, "  [%s epoll thread %u] msgs=%lu wakes=%lu sleeps=%lu polls=%lu\n",
				what, i, s.msgs, s.wakes_sent, s.sleeps, s.polls);
		}
	}
}

static uint64_t rt_steals(struct rt *r)
{
	uint64_t n = 0;
	for (unsigned i = 0; r->eng && i < 2; i++) {
		struct sp_shard_stats s;
		sp_shard_stats_read(sp_engine_shard(r->eng, i), &s);
		n += s.steals;
	}
	return n;
}

static void rt_end(struct rt *r, const char *what)
{
	if (opt.stats)
		dump_stats(what, r);
	if (r->eng) {
		sp_engine_stop(r->eng);
		sp_engine_join(r->eng);
		sp_engine_destroy(r->eng);
	} else {
		ert_stop(r->ert);
		ert_join(r->ert);
		ert_destroy(r->ert);
	}
}

/* Both message kinds in one record, so a case can post to either runtime. */
struct xmsg {
	struct sp_msg m;
	struct ert_msg e;
};

/* Run fn on loop thread i (from the bench thread). */
static void rt_post(struct rt *r, unsigned i, struct xmsg *x, void (*efn)(struct ert_msg *),
		    void (*sfn)(struct sp_msg *))
{
	if (r->eng)
		sp_msg_post(sp_engine_shard(r->eng, i), &x->m, sfn);
	else
		ert_post(ert_thread_at(r->ert, i), &x->e, efn);
}

static void rt_wait(struct rt *r, struct bench_done *d, const char *what)
{
	if (bench_done_wait(d, opt.timeout_ms) == 0)
		return;
	fprintf(stderr, "engine_bench: %s (%s) did not finish within %u ms; counters:\n", what,
		bench_variant_name[r->v], opt.timeout_ms);
	dump_stats(what, r);
	bench_die("giving up (the runtime may be hung, so no clean stop)");
}

static bool on_engine(void)
{
	return sp_shard_current() != NULL;
}

/* ==================================================================================== */
/* 1. ping-pong RTT                                                                      */

static struct {
	struct rt *r;
	struct xmsg start, ping, pong;
	bool post; /* engine: sp_msg_post instead of sp_msg_send */
	uint64_t count, warm, total, t0, t1;
	struct bench_done done;
} pp;

static void pp_pong_s(struct sp_msg *m);
static void pp_pong_e(struct ert_msg *m);

static void pp_ping_s(struct sp_msg *m)
{
	struct sp_shard *s0 = sp_engine_shard(pp.r->eng, 0);
	if (pp.post)
		sp_msg_post(s0, &pp.pong.m, pp_pong_s);
	else
		sp_msg_send(s0, &pp.pong.m, pp_pong_s);
}

static void pp_ping_e(struct ert_msg *m)
{
	ert_post(ert_thread_at(pp.r->ert, 0), &pp.pong.e, pp_pong_e);
}

static void pp_send_ping(void)
{
	if (on_engine()) {
		struct sp_shard *s1 = sp_engine_shard(pp.r->eng, 1);
		if (pp.post)
			sp_msg_post(s1, &pp.ping.m, pp_ping_s);
		else
			sp_msg_send(s1, &pp.ping.m, pp_ping_s);
	} else {
		ert_post(ert_thread_at(pp.r->ert, 1), &pp.ping.e, pp_ping_e);
	}
}

static void pp_pong(void)
{
	pp.count++;
	if (pp.count == pp.warm)
		pp.t0 = bench_now_ns();
	if (pp.count == pp.warm + pp.total) {
		pp.t1 = bench_now_ns();
		bench_done_signal(&pp.done);
		return;
	}
	pp_send_ping();
}

static void pp_pong_s(struct sp_msg *m)
{
	pp_pong();
}

static void pp_pong_e(struct ert_msg *m)
{
	pp_pong();
}

static void pp_start_s(struct sp_msg *m)
{
	pp_send_ping();
}

static void pp_start_e(struct ert_msg *m)
{
	pp_send_ping();
}

/* ns per round trip */
static double run_pingpong(enum bench_variant v, bool post, unsigned spin_us)
{
	struct rt r;
	rt_start(&r, v, spin_us);
	pp.r = &r;
	pp.post = post;
	pp.count = 0;
	pp.warm = S(2000);
	pp.total = S(spin_us ? 200000 : 20000); /* sleeping costs ~50 us per trip here */
	bench_done_reset(&pp.done);
	rt_post(&r, 0, &pp.start, pp_start_e, pp_start_s);
	rt_wait(&r, &pp.done, "pingpong");
	rt_end(&r, "pingpong");
	return (double)(pp.t1 - pp.t0) / (double)pp.total;
}

/* ==================================================================================== */
/* 2. one-way send, then drain                                                           */

#define OW_BATCH 4096

static struct {
	struct rt *r;
	struct xmsg start, ack;
	struct xmsg *msgs; /* OW_BATCH, reused for every batch */
	unsigned got;
	uint64_t batches, warm, total, t0, t1;
	struct bench_done done;
} ow;

static void ow_ack_s(struct sp_msg *m);
static void ow_ack_e(struct ert_msg *m);

static void ow_recv(void)
{
	if (++ow.got < OW_BATCH)
		return;
	ow.got = 0; /* the whole batch arrived: tell the sender */
	if (on_engine())
		sp_msg_send(sp_engine_shard(ow.r->eng, 0), &ow.ack.m, ow_ack_s);
	else
		ert_post(ert_thread_at(ow.r->ert, 0), &ow.ack.e, ow_ack_e);
}

static void ow_recv_s(struct sp_msg *m)
{
	ow_recv();
}

static void ow_recv_e(struct ert_msg *m)
{
	ow_recv();
}

static void ow_batch(void)
{
	if (on_engine()) {
		struct sp_shard *s1 = sp_engine_shard(ow.r->eng, 1);
		for (unsigned i = 0; i < OW_BATCH; i++)
			sp_msg_post(s1, &ow.msgs[i].m, ow_recv_s);
	} else {
		struct ert_thread *t1 = ert_thread_at(ow.r->ert, 1);
		for (unsigned i = 0; i < OW_BATCH; i++)
			ert_post(t1, &ow.msgs[i].e, ow_recv_e);
	}
}

static void ow_ack(void)
{
	ow.batches++;
	if (ow.batches == ow.warm)
		ow.t0 = bench_now_ns();
	if (ow.batches == ow.warm + ow.total) {
		ow.t1 = bench_now_ns();
		bench_done_signal(&ow.done);
		return;
	}
	ow_batch();
}

static void ow_ack_s(struct sp_msg *m)
{
	ow_ack();
}

static void ow_ack_e(struct ert_msg *m)
{
	ow_ack();
}

static void ow_start_s(struct sp_msg *m)
{
	ow_batch();
}

static void ow_start_e(struct ert_msg *m)
{
	ow_batch();
}

/* ns per message */
static double run_oneway(enum bench_variant v)
{
	struct rt r;
	rt_start(&r, v, opt.spin_us);
	ow.r = &r;
	ow.msgs = calloc(OW_BATCH, sizeof(*ow.msgs));
	if (!ow.msgs)
		bench_die("out of memory");
	ow.got = 0;
	ow.batches = 0;
	ow.warm = 4;
	ow.total = S(200);
	bench_done_reset(&ow.done);
	rt_post(&r, 0, &ow.start, ow_start_e, ow_start_s);
	rt_wait(&r, &ow.done, "oneway");
	rt_end(&r, "oneway");
	free(ow.msgs);
	return (double)(ow.t1 - ow.t0) / (double)(ow.total * OW_BATCH);
}

/* ==================================================================================== */
/* 3. cold start: create, one round trip between the two loop threads, stop, destroy     */

static struct {
	struct rt *r;
	struct xmsg start, ping, pong;
	struct bench_done done;
} cs;

static void cs_pong_s(struct sp_msg *m)
{
	bench_done_signal(&cs.done);
}

static void cs_ping_s(struct sp_msg *m)
{
	sp_msg_send(sp_engine_shard(cs.r->eng, 0), &cs.pong.m, cs_pong_s);
}

static void cs_start_s(struct sp_msg *m)
{
	sp_msg_send(sp_engine_shard(cs.r->eng, 1), &cs.ping.m, cs_ping_s);
}

static void cs_pong_e(struct ert_msg *m)
{
	bench_done_signal(&cs.done);
}

static void cs_ping_e(struct ert_msg *m)
{
	ert_post(ert_thread_at(cs.r->ert, 0), &cs.pong.e, cs_pong_e);
}

static void cs_start_e(struct ert_msg *m)
{
	ert_post(ert_thread_at(cs.r->ert, 1), &cs.ping.e, cs_ping_e);
}

/* us per iteration */
static double run_coldstart(enum bench_variant v)
{
	uint64_t iters = S(300), t0 = bench_now_ns();
	for (uint64_t i = 0; i < iters; i++) {
		struct rt r;
		rt_start(&r, v, opt.spin_us);
		cs.r = &r;
		bench_done_reset(&cs.done);
		rt_post(&r, 0, &cs.start, cs_start_e, cs_start_s);
		rt_wait(&r, &cs.done, "coldstart");
		bool st = opt.stats;
		opt.stats = false; /* one line per iteration would drown the output */
		rt_end(&r, "coldstart");
		opt.stats = st;
	}
	return (double)(bench_now_ns() - t0) / (double)iters / 1000.0;
}

/* ==================================================================================== */
/* 4. fan-out / fan-in                                                                   */

#define FO_K 16

struct fo_task {
	struct sp_task task;
	struct ert_msg e;
	unsigned idx;
};

static struct {
	struct rt *r;
	struct fo_task t[FO_K];
	struct xmsg start, next;
	bool skewed;
	_Atomic unsigned remaining;
	uint64_t req, warm, total, t0, t1;
	struct bench_done done;
} fo;

static uint64_t fo_iters(unsigned idx)
{
	if (!fo.skewed)
		return 2000;
	return idx == fo.req % FO_K ? 20000 : 500;
}

static void fo_next_s(struct sp_msg *m);
static void fo_next_e(struct ert_msg *m);

static void fo_run_s(struct sp_task *t)
{
	struct fo_task *ft = sp_container_of(t, struct fo_task, task);
	bench_cpu_work(fo_iters(ft->idx), ft->idx);
	sp_task_close(t); /* release follows: that is where the batch is counted */
}

static void fo_release_s(struct sp_task *t)
{
	if (atomic_fetch_sub(&fo.remaining, 1) == 1)
		sp_msg_post(sp_engine_shard(fo.r->eng, 0), &fo.next.m, fo_next_s);
}

static void fo_item_e(struct ert_msg *m)
{
	struct fo_task *ft = sp_container_of(m, struct fo_task, e);
	bench_cpu_work(fo_iters(ft->idx), ft->idx);
	if (atomic_fetch_sub(&fo.remaining, 1) == 1)
		ert_post(ert_thread_at(fo.r->ert, 0), &fo.next.e, fo_next_e);
}

/* On loop thread 0: one request = K tasks. The engine spawns them stealable on shard 0;
 * the epoll baseline, which cannot move work, deals them round-robin to its threads. */
static void fo_batch(void)
{
	atomic_store(&fo.remaining, FO_K);
	for (unsigned i = 0; i < FO_K; i++) {
		struct fo_task *ft = &fo.t[i];
		ft->idx = i;
		if (on_engine()) {
			sp_task_init(&ft->task, SP_STEALABLE, fo_run_s, fo_release_s);
			sp_task_spawn(fo.r->eng, &ft->task, 0);
		} else {
			ert_post(ert_thread_at(fo.r->ert, i % 2), &ft->e, fo_item_e);
		}
	}
}

static void fo_next(void)
{
	fo.req++;
	if (fo.req == fo.warm)
		fo.t0 = bench_now_ns();
	if (fo.req == fo.warm + fo.total) {
		fo.t1 = bench_now_ns();
		bench_done_signal(&fo.done);
		return;
	}
	fo_batch();
}

static void fo_next_s(struct sp_msg *m)
{
	fo_next();
}

static void fo_next_e(struct ert_msg *m)
{
	fo_next();
}

static void fo_start_s(struct sp_msg *m)
{
	fo_batch();
}

static void fo_start_e(struct ert_msg *m)
{
	fo_batch();
}

/* us per request (K tasks) */
static double run_fanout(enum bench_variant v, bool skewed, uint64_t *steals)
{
	struct rt r;
	rt_start(&r, v, opt.spin_us);
	fo.r = &r;
	fo.skewed = skewed;
	fo.req = 0;
	fo.warm = 8;
	fo.total = S(2000);
	bench_done_reset(&fo.done);
	rt_post(&r, 0, &fo.start, fo_start_e, fo_start_s);
	rt_wait(&r, &fo.done, "fanout");
	*steals = rt_steals(&r);
	rt_end(&r, "fanout");
	return (double)(fo.t1 - fo.t0) / (double)fo.total / 1000.0;
}

/* ==================================================================================== */
/* 5. timer storm: arm N timers, cancel + re-arm each R times, cancel all (one thread)   */
/*
 * With a million timers the timers themselves (152 B each in the engine, 24 B in the
 * epoll heap) are far larger than the caches, and visiting them in random order costs
 * cache and TLB misses whatever the structure. So each run also measures a floor: the
 * same visits, in the same order, to the same timer array, each only reading the
 * timer's state and writing one of its fields, as arm and cancel must at least do. The
 * "net" rows are storm minus floor per operation: what the timer structure itself adds.
 */

/* Visiting order k * stride mod N, stride coprime with N and near N / golden ratio: a
 * permutation that scatters consecutive visits over the whole array, without a table.
 * (A fixed large prime would not do: 1000003 = 3 mod 10^k, a near-sequential walk.) */
static uint64_t tm_stride(uint64_t n)
{
	uint64_t s = (uint64_t)((double)n * 0.6180339887) | 1;
	for (;; s += 2) {
		uint64_t a = n, b = s;
		while (b) { /* gcd */
			uint64_t t = a % b;
			a = b;
			b = t;
		}
		if (a == 1)
			return s % n;
	}
}

static struct {
	unsigned n, rearms;
	uint64_t stride;
	struct sp_timer *st;
	struct ert_timer *et;
	struct xmsg start;
	uint64_t ops, t0, t1, f0, f1, errors;
	struct bench_done done;
} tm;

static void tm_cb_s(struct sp_op *op, int res, uint32_t flags)
{
	tm.errors++; /* deadlines are 10..70 s away: nothing may fire */
}

static void tm_cb_e(struct ert_timer *t)
{
	tm.errors++;
}

static uint64_t tm_deadline(uint64_t base, uint64_t *rng)
{
	return base + 10000000000ull + bench_rand(rng) % 60000000000ull;
}

/* The floor: the storm's visits, each op a read of a flag and a write of a field. */
#define TM_TOUCH(t, flag, field, v)                                                        \
	do {                                                                               \
		(t)->field = (v) + (uint64_t)(t)->flag;                                    \
		__asm__ volatile("" : : "r"(t) : "memory");                                \
	} while (0)
#define TM_FLOOR(arr, flag, field)                                                         \
	do {                                                                               \
		uint64_t rng_ = 12345, n_ = tm.n;                                          \
		tm.f0 = bench_now_ns();                                                    \
		for (unsigned i = 0; i < n_; i++)                                          \
			TM_TOUCH(&(arr)[i], flag, field, bench_rand(&rng_));               \
		for (unsigned r = 0; r < tm.rearms; r++)                                   \
			for (uint64_t k = 0; k < n_; k++) {                                \
				__typeof__(&(arr)[0]) t_ = &(arr)[(k * tm.stride) % n_];    \
				TM_TOUCH(t_, flag, field, 0);                              \
				TM_TOUCH(t_, flag, field, bench_rand(&rng_));              \
			}                                                                  \
		for (unsigned i = 0; i < n_; i++)                                          \
			TM_TOUCH(&(arr)[i], flag, field, 0);                               \
		tm.f1 = bench_now_ns();                                                    \
	} while (0)

static void tm_run_s(struct sp_msg *m)
{
	uint64_t rng = 12345, n = tm.n, base = sp_now_ns();
	for (unsigned i = 0; i < n; i++)
		sp_timer_init(&tm.st[i], NULL, tm_cb_s);
	tm.t0 = bench_now_ns();
	for (unsigned i = 0; i < n; i++)
		sp_timer_arm(&tm.st[i], tm_deadline(base, &rng));
	for (unsigned r = 0; r < tm.rearms; r++)
		for (uint64_t k = 0; k < n; k++) {
			struct sp_timer *t = &tm.st[(k * tm.stride) % n];
			if (sp_timer_cancel(t) != 0)
				tm.errors++;
			sp_timer_arm(t, tm_deadline(base, &rng));
		}
	for (unsigned i = 0; i < n; i++)
		if (sp_timer_cancel(&tm.st[i]) != 0)
			tm.errors++;
	tm.t1 = bench_now_ns();
	TM_FLOOR(tm.st, op.state, deadline);
	bench_done_signal(&tm.done);
}

static void tm_run_e(struct ert_msg *m)
{
	uint64_t rng = 12345, n = tm.n, base = bench_now_ns();
	for (unsigned i = 0; i < n; i++)
		ert_timer_init(&tm.et[i], tm_cb_e);
	if (ert_timer_reserve(tm.n) < 0)
		tm.errors++;
	tm.t0 = bench_now_ns();
	for (unsigned i = 0; i < n; i++)
		ert_timer_arm(&tm.et[i], tm_deadline(base, &rng));
	for (unsigned r = 0; r < tm.rearms; r++)
		for (uint64_t k = 0; k < n; k++) {
			struct ert_timer *t = &tm.et[(k * tm.stride) % n];
			if (ert_timer_cancel(t) != 0)
				tm.errors++;
			ert_timer_arm(t, tm_deadline(base, &rng));
		}
	for (unsigned i = 0; i < n; i++)
		if (ert_timer_cancel(&tm.et[i]) != 0)
			tm.errors++;
	tm.t1 = bench_now_ns();
	TM_FLOOR(tm.et, idx, deadline);
	bench_done_signal(&tm.done);
}

/* ns per operation (arm or cancel); *floor: the floor's ns per operation */
static double run_timers(enum bench_variant v, unsigned n, double *floor)
{
	struct rt r;
	rt_start(&r, v, opt.spin_us);
	tm.n = n;
	tm.stride = tm_stride(n);
	tm.rearms = opt.quick ? 1 : 4;
	tm.errors = 0;
	tm.ops = (uint64_t)n * (2 + 2 * tm.rearms);
	if (v == V_EPOLL)
		tm.et = calloc(n, sizeof(*tm.et));
	else
		tm.st = aligned_alloc(64, ((sizeof(*tm.st) * n + 63) / 64) * 64);
	if (!tm.et && !tm.st)
		bench_die("out of memory for %u timers", n);
	bench_done_reset(&tm.done);
	rt_post(&r, 0, &tm.start, tm_run_e, tm_run_s);
	rt_wait(&r, &tm.done, "timers");
	rt_end(&r, "timers");
	free(tm.et);
	free(tm.st);
	tm.et = NULL;
	tm.st = NULL;
	if (tm.errors)
		bench_die("timers: %lu unexpected results (N=%u, %s)", tm.errors, n,
			  bench_variant_name[v]);
	*floor = (double)(tm.f1 - tm.f0) / (double)tm.ops;
	return (double)(tm.t1 - tm.t0) / (double)tm.ops;
}

/* ==================================================================================== */
/* 6. 4 KiB random reads from a 64 MiB page-cache-hot file                               */

#define FR_FILE_SIZE (64u << 20)
#define FR_BLOCK 4096u
#define FR_MAXDEPTH 32

struct fr_op {
	struct sp_op op;
	struct ert_work w;
	char *buf;
	off_t off;
};

static struct {
	int fd;
	char path[256];
	struct rt *r;
	struct fr_op ops[FR_MAXDEPTH];
	char *bufs;
	unsigned depth;
	uint64_t rng, submitted, completed, warm, total, t0, t1, errors;
	struct xmsg start;
	struct bench_done done;
} fr = { .fd = -1 };

static void fr_make_file(void)
{
	if (fr.fd >= 0)
		return;
	const char *dir = getenv("TMPDIR");
	snprintf(fr.path, sizeof(fr.path), "%s/engine_bench.XXXXXX", dir && *dir ? dir : "/tmp");
	fr.fd = mkstemp(fr.path);
	if (fr.fd < 0)
		bench_die("mkstemp %s: %s", fr.path, strerror(errno));
	unlink(fr.path); /* gone when we exit, whatever happens */
	char *chunk = malloc(1 << 20);
	if (!chunk)
		bench_die("out of memory");
	uint64_t rng = 99;
	for (unsigned i = 0; i < (1u << 20) / 8; i++)
		((uint64_t *)chunk)[i] = bench_rand(&rng);
	for (unsigned i = 0; i < FR_FILE_SIZE >> 20; i++)
		if (write(fr.fd, chunk, 1 << 20) != 1 << 20)
			bench_die("writing the temp file: %s", strerror(errno));
	fdatasync(fr.fd); /* clean pages: no writeback during the runs */
	for (unsigned i = 0; i < FR_FILE_SIZE >> 20; i++) /* and hot in the page cache */
		if (pread(fr.fd, chunk, 1 << 20, (off_t)i << 20) != 1 << 20)
			bench_die("reading the temp file: %s", strerror(errno));
	free(chunk);
}

static off_t fr_next_off(void)
{
	return (off_t)(bench_rand(&fr.rng) % (FR_FILE_SIZE / FR_BLOCK)) * FR_BLOCK;
}

static void fr_submit(struct fr_op *o);

static void fr_complete(struct fr_op *o, int res)
{
	if (res != (int)FR_BLOCK)
		fr.errors++;
	fr.completed++;
	if (fr.completed == fr.warm)
		fr.t0 = bench_now_ns();
	if (fr.completed == fr.warm + fr.total) {
		fr.t1 = bench_now_ns();
		bench_done_signal(&fr.done);
		return;
	}
	if (fr.submitted < fr.warm + fr.total)
		fr_submit(o);
}

static void fr_cb_s(struct sp_op *op, int res, uint32_t flags)
{
	fr_complete(sp_container_of(op, struct fr_op, op), res);
}

static int fr_pread_e(struct ert_work *w)
{
	struct fr_op *o = sp_container_of(w, struct fr_op, w);
	ssize_t n = pread(fr.fd, o->buf, FR_BLOCK, o->off);
	return n < 0 ? -errno : (int)n;
}

static void fr_done_e(struct ert_work *w, int res)
{
	fr_complete(sp_container_of(w, struct fr_op, w), res);
}

static void fr_submit(struct fr_op *o)
{
	fr.submitted++;
	o->off = fr_next_off();
	if (on_engine()) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_read(sqe, fr.fd, o->buf, FR_BLOCK, (uint64_t)o->off);
		sp_op_submit(&o->op, sqe);
	} else {
		ert_work_submit(&o->w, fr_pread_e, fr_done_e);
	}
}

static void fr_start(void)
{
	for (unsigned i = 0; i < fr.depth; i++) {
		sp_op_init(&fr.ops[i].op, NULL, fr_cb_s);
		fr.ops[i].buf = fr.bufs + (size_t)i * FR_BLOCK;
		fr_submit(&fr.ops[i]);
	}
}

static void fr_start_s(struct sp_msg *m)
{
	fr_start();
}

static void fr_start_e(struct ert_msg *m)
{
	fr_start();
}

/* thousands of reads per second */
static double run_fileread(enum bench_variant v, unsigned depth)
{
	fr_make_file();
	struct rt r;
	rt_start(&r, v, opt.spin_us);
	fr.r = &r;
	fr.depth = depth;
	fr.rng = 4242;
	fr.submitted = fr.completed = fr.errors = 0;
	fr.warm = 1000;
	fr.total = S(depth == 1 ? 100000 : 400000);
	if (!fr.bufs && !(fr.bufs = aligned_alloc(4096, FR_MAXDEPTH * FR_BLOCK)))
		bench_die("out of memory");
	bench_done_reset(&fr.done);
	rt_post(&r, 0, &fr.start, fr_start_e, fr_start_s);
	rt_wait(&r, &fr.done, "fileread");
	rt_end(&r, "fileread");
	if (fr.errors)
		bench_die("fileread: %lu short or failed reads (%s)", fr.errors,
			  bench_variant_name[v]);
	return (double)fr.total / ((double)(fr.t1 - fr.t0) / 1e9) / 1000.0;
}

/* ==================================================================================== */
/* 7. 256 B TCP echo over 127.0.0.1: client on loop thread 0, server on loop thread 1    */

#define TE_MSG 256u
#define TE_BUF 4096u

static struct {
	struct rt *r;
	int cfd, sfd;
	char cbuf[TE_MSG], crbuf[TE_BUF], sbuf[TE_BUF];
	struct sp_op c_send, c_recv, s_recv, s_send;
	struct ert_io cio, sio;
	struct xmsg c_start, s_start;
	unsigned c_sent, c_got, s_pending, s_len;
	bool c_send_done;
	uint64_t count, warm, total, t0, t1, errors;
	struct bench_done done;
} te;

static void te_pair(bool nonblock)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		bench_die("tcp listen: %s", strerror(errno));
	te.cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (te.cfd < 0 || connect(te.cfd, (struct sockaddr *)&a, sizeof(a)))
		bench_die("tcp connect: %s", strerror(errno));
	te.sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (te.sfd < 0)
		bench_die("tcp accept: %s", strerror(errno));
	close(l);
	int one = 1;
	setsockopt(te.cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(te.sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (nonblock) {
		fcntl(te.cfd, F_SETFL, fcntl(te.cfd, F_GETFL) | O_NONBLOCK);
		fcntl(te.sfd, F_SETFL, fcntl(te.sfd, F_GETFL) | O_NONBLOCK);
	}
}

/* A round trip finished: count it, start the next one or stop. false: stop. */
static bool te_rtt_done(void)
{
	te.count++;
	if (te.count == te.warm)
		te.t0 = bench_now_ns();
	if (te.count == te.warm + te.total) {
		te.t1 = bench_now_ns();
		bench_done_signal(&te.done);
		return false;
	}
	return true;
}

/* engine client: send and receive submitted together (the receive waits in the ring) */
static void te_c_rtt_s(void)
{
	te.c_sent = te.c_got = 0;
	te.c_send_done = false;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, te.cfd, te.cbuf, TE_MSG, MSG_NOSIGNAL);
	sp_op_submit(&te.c_send, sqe);
	sqe = sp_sqe();
	io_uring_prep_recv(sqe, te.cfd, te.crbuf, TE_MSG, 0);
	sp_op_submit(&te.c_recv, sqe);
}

static void te_c_check_s(void)
{
	if (te.c_send_done && te.c_got == TE_MSG && te_rtt_done())
		te_c_rtt_s();
}

static void te_c_send_cb(struct sp_op *op, int res, uint32_t flags)
{
	if (res <= 0) {
		te.errors++;
		return;
	}
	te.c_sent += (unsigned)res;
	if (te.c_sent < TE_MSG) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_send(sqe, te.cfd, te.cbuf + te.c_sent, TE_MSG - te.c_sent,
				   MSG_NOSIGNAL);
		sp_op_submit(&te.c_send, sqe);
		return;
	}
	te.c_send_done = true;
	te_c_check_s();
}

static void te_c_recv_cb(struct sp_op *op, int res, uint32_t flags)
{
	if (res <= 0) {
		te.errors++;
		return;
	}
	te.c_got += (unsigned)res;
	if (te.c_got < TE_MSG) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_recv(sqe, te.cfd, te.crbuf, TE_MSG - te.c_got, 0);
		sp_op_submit(&te.c_recv, sqe);
		return;
	}
	te_c_check_s();
}

/* engine server: echo byte counts (the payload is constant) */
static void te_s_flush(void)
{
	if (sp_op_busy(&te.s_send) || !te.s_pending)
		return;
	te.s_len = te.s_pending < TE_BUF ? te.s_pending : TE_BUF;
	te.s_pending -= te.s_len;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, te.sfd, te.sbuf, te.s_len, MSG_NOSIGNAL);
	sp_op_submit(&te.s_send, sqe);
}

static void te_s_recv_arm(void)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, te.sfd, te.sbuf, TE_BUF, 0);
	sp_op_submit(&te.s_recv, sqe);
}

static void te_s_recv_cb(struct sp_op *op, int res, uint32_t flags)
{
	if (res <= 0) {
		if (res != -ECANCELED && res != 0)
			te.errors++;
		return; /* cancelled at stop, or the client closed */
	}
	te.s_pending += (unsigned)res;
	te_s_flush();
	te_s_recv_arm();
}

static void te_s_send_cb(struct sp_op *op, int res, uint32_t flags)
{
	if (res < 0) {
		te.errors++;
		return;
	}
	te.s_pending += te.s_len - (unsigned)res; /* short write: the rest goes again */
	te_s_flush();
}

static void te_s_start_s(struct sp_msg *m)
{
	sp_op_init(&te.s_recv, NULL, te_s_recv_cb);
	sp_op_init(&te.s_send, NULL, te_s_send_cb);
	te_s_recv_arm();
}

static void te_c_start_s(struct sp_msg *m)
{
	sp_op_init(&te.c_send, NULL, te_c_send_cb);
	sp_op_init(&te.c_recv, NULL, te_c_recv_cb);
	te_c_rtt_s();
}

/* epoll client: write, then read when readable (libuv-style: one read unless full) */
static void te_ec_send(void)
{
	unsigned off = 0;
	for (int tries = 0; off < TE_MSG && tries < 1000000; tries++) {
		ssize_t n = send(te.cfd, te.cbuf + off, TE_MSG - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (unsigned)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
	}
	if (off < TE_MSG)
		te.errors++;
	te.c_got = 0;
}

static void te_ec_io(struct ert_io *io, uint32_t events)
{
	ssize_t n = recv(te.cfd, te.crbuf, TE_BUF, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			te.errors++;
			ert_io_del(io);
		}
		return;
	}
	te.c_got += (unsigned)n;
	if (te.c_got < TE_MSG)
		return;
	if (te.c_got > TE_MSG)
		te.errors++;
	if (te_rtt_done())
		te_ec_send();
}

static void te_es_io(struct ert_io *io, uint32_t events)
{
	ssize_t n = recv(te.sfd, te.sbuf, TE_BUF, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			ert_io_del(io);
		return;
	}
	for (ssize_t off = 0, tries = 0; off < n && tries < 1000000; tries++) {
		ssize_t w = send(te.sfd, te.sbuf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w > 0)
			off += w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			te.errors++;
			break;
		}
	}
}

static void te_c_start_e(struct ert_msg *m)
{
	if (ert_io_add(&te.cio, te.cfd, EPOLLIN, te_ec_io))
		te.errors++;
	te_ec_send();
}

static void te_s_start_e(struct ert_msg *m)
{
	if (ert_io_add(&te.sio, te.sfd, EPOLLIN, te_es_io))
		te.errors++;
}

static void te_stop_e(struct ert_msg *m)
{
	ert_io_del(ert_thread_index(ert_current()) ? &te.sio : &te.cio);
}

/* ns per round trip */
static double run_tcpecho(enum bench_variant v)
{
	struct rt r;
	struct xmsg stop[2];
	rt_start(&r, v, opt.spin_us);
	te.r = &r;
	te_pair(v == V_EPOLL);
	memset(te.cbuf, 'x', sizeof(te.cbuf));
	te.count = te.errors = 0;
	te.s_pending = 0;
	te.warm = 1000;
	te.total = S(100000);
	bench_done_reset(&te.done);
	rt_post(&r, 1, &te.s_start, te_s_start_e, te_s_start_s);
	rt_post(&r, 0, &te.c_start, te_c_start_e, te_c_start_s);
	rt_wait(&r, &te.done, "tcpecho");
	if (r.ert) { /* unregister before the sockets close */
		bench_done_reset(&te.done);
		ert_post(ert_thread_at(r.ert, 0), &stop[0].e, te_stop_e);
		ert_post(ert_thread_at(r.ert, 1), &stop[1].e, te_stop_e);
	}
	rt_end(&r, "tcpecho");
	close(te.cfd);
	close(te.sfd);
	if (te.errors)
		bench_die("tcpecho: %lu errors (%s)", te.errors, bench_variant_name[v]);
	return (double)(te.t1 - te.t0) / (double)te.total;
}

/* ==================================================================================== */
/* 8. imbalanced streams: 1 hot + 7 light, each step = NOP op, then CPU work             */

#define IM_STREAMS 8
#define IM_LIGHT 2000ull /* iterations of bench_cpu_work per light step */
#define IM_HOT (7 * IM_LIGHT)

struct im_stream {
	struct sp_task task;
	struct sp_op op;
	struct ert_msg e;
	unsigned idx, steps;
};

static struct {
	struct rt *r;
	struct im_stream s[IM_STREAMS];
	struct xmsg start;
	unsigned m;
	_Atomic unsigned remaining;
	struct {
		_Atomic uint64_t v;
	} __attribute__((aligned(64))) work_on[2]; /* CPU work done per loop thread */
	uint64_t t0, t1;
	struct bench_done done;
} im;

static uint64_t im_work(const struct im_stream *s)
{
	return s->idx == 0 ? IM_HOT : IM_LIGHT;
}

static void im_finish_one(void)
{
	if (atomic_fetch_sub(&im.remaining, 1) == 1) {
		im.t1 = bench_now_ns();
		bench_done_signal(&im.done);
	}
}

static void im_nop_s(struct im_stream *s)
{
	struct io_uring_sqe *sqe = sp_sqe(); /* the ring of whichever shard runs us now */
	io_uring_prep_nop(sqe);
	sp_op_submit(&s->op, sqe);
}

static void im_cb_s(struct sp_op *op, int res, uint32_t flags)
{
	struct im_stream *s = sp_container_of(op, struct im_stream, op);
	bench_cpu_work(im_work(s), s->idx);
	atomic_fetch_add_explicit(&im.work_on[sp_shard_index(sp_shard_current()) & 1].v, im_work(s),
				  memory_order_relaxed);
	if (++s->steps < im.m)
		im_nop_s(s);
	else
		sp_task_close(&s->task);
}

static void im_run_s(struct sp_task *t)
{
	im_nop_s(sp_container_of(t, struct im_stream, task));
}

static void im_release_s(struct sp_task *t)
{
	im_finish_one();
}

static void im_step_e(struct ert_msg *m)
{
	struct im_stream *s = sp_container_of(m, struct im_stream, e);
	bench_cpu_work(im_work(s), s->idx);
	atomic_fetch_add_explicit(&im.work_on[ert_thread_index(ert_current()) & 1].v, im_work(s),
				  memory_order_relaxed);
	if (++s->steps < im.m)
		ert_defer(&s->e, im_step_e); /* the epoll world's "NOP": run next pass */
	else
		im_finish_one();
}

static void im_start(void)
{
	im.t0 = bench_now_ns();
	for (unsigned i = 0; i < IM_STREAMS; i++) {
		struct im_stream *s = &im.s[i];
		s->idx = i;
		s->steps = 0;
		if (on_engine()) {
			sp_task_init(&s->task, SP_STEALABLE, im_run_s, im_release_s);
			sp_op_init(&s->op, &s->task, im_cb_s);
			sp_task_spawn(im.r->eng, &s->task, 0);
		} else {
			ert_defer(&s->e, im_step_e); /* all on thread 0: nothing can move them */
		}
	}
}

static void im_start_s(struct sp_msg *m)
{
	im_start();
}

static void im_start_e(struct ert_msg *m)
{
	im_start();
}

/* ms until all streams finished */
static double run_imbalanced(enum bench_variant v, uint64_t *steals, double *share1)
{
	struct rt r;
	rt_start(&r, v, opt.spin_us);
	im.r = &r;
	im.m = (unsigned)S(2000);
	atomic_store(&im.remaining, IM_STREAMS);
	atomic_store(&im.work_on[0].v, 0);
	atomic_store(&im.work_on[1].v, 0);
	bench_done_reset(&im.done);
	rt_post(&r, 0, &im.start, im_start_e, im_start_s);
	rt_wait(&r, &im.done, "imbalanced");
	*steals = rt_steals(&r);
	rt_end(&r, "imbalanced");
	uint64_t w0 = atomic_load(&im.work_on[0].v), w1 = atomic_load(&im.work_on[1].v);
	*share1 = w0 + w1 ? (double)w1 / (double)(w0 + w1) : 0;
	return (double)(im.t1 - im.t0) / 1e6;
}

/* ==================================================================================== */
/* driver                                                                                */

static bool want(const char *name)
{
	return !opt.only || !strcmp(opt.only, name);
}

static void progress(const char *label, int round)
{
	if (!opt.json || opt.stats)
		fprintf(stderr, "  %-48s round %d/%d\r", label, round + 1, opt.rounds);
}

static void bench_pingpong(void)
{
	/* engine_spin / epoll_spin: idle spin of each side in us; -1: --spin-us */
	static const struct {
		const char *label;
		bool post;
		int engine_spin, epoll_spin;
		const char *note;
	} rows[] = {
		{ "ping-pong RTT, sp_msg_post vs eventfd", true, -1, 0,
		  "engine: inject queue, idle shards poll up to idle_spin_us before parking, a "
		  "doorbell (msg_ring) only to a parked shard. epoll: the libuv/libevent loop, "
		  "MPSC queue + eventfd write to a sleeping thread + epoll_wait, no polling." },
		{ "ping-pong RTT, sp_msg_send (msg_ring) vs eventfd", false, -1, 0,
		  "engine: one IORING_OP_MSG_RING per message, the same idle spin. epoll: as "
		  "above." },
		{ "ping-pong RTT, sp_msg_post, epoll polls too", true, -1, -1,
		  "both poll for the same spin budget with the same loop (a look every 4 "
		  "pauses): the eventfd is never written, this is memory polling against "
		  "memory polling." },
		{ "ping-pong RTT, sp_msg_send, idle_spin 0", false, 0, 0,
		  "all variants sleep as soon as idle (engine idle_spin_us=0, epoll spin 0): "
		  "the wake-up path, msg_ring vs eventfd." },
	};
	for (unsigned k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		struct bench_row *row = bench_row_new("pingpong", rows[k].label, "ns", false);
		unsigned es = rows[k].engine_spin < 0 ? opt.spin_us : (unsigned)rows[k].engine_spin;
		unsigned ps = rows[k].epoll_spin < 0 ? opt.spin_us : (unsigned)rows[k].epoll_spin;
		for (int rd = 0; rd < opt.rounds; rd++) {
			progress(rows[k].label, rd);
			for (int v = 0; v < V_COUNT; v++)
				bench_row_add(row, v,
					      run_pingpong(v, rows[k].post, v == V_EPOLL ? ps : es));
		}
		bench_row_note(row, "%s", rows[k].note);
	}
}

static void bench_simple(const char *name, const char *label, const char *unit, bool higher,
			 double (*fn)(enum bench_variant))
{
	struct bench_row *row = bench_row_new(name, label, unit, higher);
	for (int rd = 0; rd < opt.rounds; rd++) {
		progress(label, rd);
		for (int v = 0; v < V_COUNT; v++)
			bench_row_add(row, v, fn(v));
	}
}

static void bench_fanout(void)
{
	for (int skewed = 0; skewed < 2; skewed++) {
		const char *label = skewed ? "fan-out/fan-in 16 tasks, skewed"
					   : "fan-out/fan-in 16 tasks, balanced";
		struct bench_row *row = bench_row_new("fanout", label, "us/batch", false);
		for (int rd = 0; rd < opt.rounds; rd++) {
			progress(label, rd);
			for (int v = 0; v < V_COUNT; v++) {
				uint64_t steals = 0;
				bench_row_add(row, v, run_fanout(v, skewed, &steals));
				if (v != V_EPOLL)
					bench_row_add_steals(row, v, steals);
			}
		}
		bench_row_note(row, "epoll deals the tasks round-robin to its 2 threads.");
	}
}

static void bench_timers(void)
{
	static const unsigned ns[] = { 1000, 10000, 100000, 1000000 };
	struct bench_row *gross[4], *net[4], *visits[4];
	double fl[4][V_COUNT][BENCH_MAX_ROUNDS];
	for (unsigned k = 0; k < 4; k++) {
		char label[80];
		snprintf(label, sizeof(label), "timer storm, N = %u", ns[k]);
		gross[k] = bench_row_new("timers", label, "ns/op", false);
		for (int rd = 0; rd < opt.rounds; rd++) {
			progress(label, rd);
			for (int v = 0; v < V_COUNT; v++)
				bench_row_add(gross[k], v, run_timers(v, ns[k], &fl[k][v][rd]));
		}
	}
	for (unsigned k = 0; k < 4; k++) {
		char label[80];
		snprintf(label, sizeof(label), "timer storm, N = %u, net of memory floor", ns[k]);
		net[k] = bench_row_new("timers", label, "ns/op", false);
		for (int v = 0; v < V_COUNT; v++)
			for (int rd = 0; rd < gross[k]->n[v]; rd++)
				bench_row_add(net[k], v, gross[k]->v[v][rd] - fl[k][v][rd]);
		bench_row_note(net[k],
			       "floor (same visits to the same timers, one read + one write each), "
			       "ns/op: engine %.2f, nosteal %.2f, epoll %.2f.",
			       bench_median(fl[k][V_ENGINE], opt.rounds),
			       bench_median(fl[k][V_NOSTEAL], opt.rounds),
			       bench_median(fl[k][V_EPOLL], opt.rounds));
	}
	/* The floor grows 12x from 1k to 1M timers whatever the structure (the caches, then
	 * the TLB, run out): an operation's cost counted in floor visits shows what the
	 * structure itself does as N grows; flat for an O(1) structure, log N for a heap. */
	for (unsigned k = 0; k < 4; k++) {
		char label[80];
		snprintf(label, sizeof(label), "timer storm, N = %u, in memory visits (storm / floor)",
			 ns[k]);
		visits[k] = bench_row_new("timers", label, "x floor", false);
		for (int v = 0; v < V_COUNT; v++)
			for (int rd = 0; rd < gross[k]->n[v]; rd++)
				bench_row_add(visits[k], v, gross[k]->v[v][rd] / fl[k][v][rd]);
	}
}

static void bench_fileread(void)
{
	static const unsigned depths[] = { 1, 32 };
	for (unsigned k = 0; k < 2; k++) {
		char label[80];
		snprintf(label, sizeof(label), "4 KiB random read, depth %u", depths[k]);
		struct bench_row *row = bench_row_new("fileread", label, "kops/s", true);
		for (int rd = 0; rd < opt.rounds; rd++) {
			progress(label, rd);
			for (int v = 0; v < V_COUNT; v++)
				bench_row_add(row, v, run_fileread(v, depths[k]));
		}
		bench_row_note(row, "64 MiB file, page-cache hot; engine: IORING_OP_READ on "
				    "shard 0; epoll: pread on a 4-thread pool.");
	}
}

static void bench_imbalanced(void)
{
	const char *label = "imbalanced: 8 stealable streams, 1 hot + 7 light";
	struct bench_row *row = bench_row_new("imbalanced", label, "ms", false);
	double share[V_COUNT][BENCH_MAX_ROUNDS];
	for (int rd = 0; rd < opt.rounds; rd++) {
		progress(label, rd);
		for (int v = 0; v < V_COUNT; v++) {
			uint64_t steals = 0;
			bench_row_add(row, v, run_imbalanced(v, &steals, &share[v][rd]));
			if (v != V_EPOLL)
				bench_row_add_steals(row, v, steals);
		}
	}
	bench_row_note(row,
		       "CPU work done on thread 1 (median): engine %.0f%%, nosteal %.0f%%, "
		       "epoll %.0f%% (ideal 50%%). epoll runs every stream on thread 0.",
		       100 * bench_median(share[V_ENGINE], opt.rounds),
		       100 * bench_median(share[V_NOSTEAL], opt.rounds),
		       100 * bench_median(share[V_EPOLL], opt.rounds));
}

static double oneway_fn(enum bench_variant v)
{
	return run_oneway(v);
}

static double coldstart_fn(enum bench_variant v)
{
	return run_coldstart(v);
}

static double tcpecho_fn(enum bench_variant v)
{
	return run_tcpecho(v);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: engine_bench [--rounds N] [--case NAME] [--quick] [--json] [--no-pin]\n"
		"                    [--spin-us N] [--stats] [--timeout-ms N] [--list]\n"
		"cases: pingpong oneway coldstart fanout timers fileread tcpecho imbalanced\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "case", required_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-pin", no_argument, NULL, 'P' },
		{ "spin-us", required_argument, NULL, 's' },
		{ "stats", no_argument, NULL, 'S' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cases[] = { "pingpong", "oneway",   "coldstart", "fanout",
					     "timers",   "fileread", "tcpecho",   "imbalanced" };
	int c;
	while ((c = getopt_long(argc, argv, "r:c:qjPs:St:lh", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			opt.rounds = atoi(optarg);
			if (opt.rounds < 1 || opt.rounds > BENCH_MAX_ROUNDS)
				bench_die("--rounds must be 1..%d", BENCH_MAX_ROUNDS);
			break;
		case 'c':
			opt.only = optarg;
			break;
		case 'q':
			opt.quick = true;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'P':
			opt.pin = false;
			break;
		case 's':
			opt.spin_us = (unsigned)atoi(optarg);
			break;
		case 'S':
			opt.stats = true;
			break;
		case 't':
			opt.timeout_ms = (unsigned)atoi(optarg);
			break;
		case 'l':
			opt.list = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (opt.list) {
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			puts(cases[i]);
		return 0;
	}
	if (opt.only) {
		bool ok = false;
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			ok |= !strcmp(opt.only, cases[i]);
		if (!ok) {
			usage(stderr);
			bench_die("unknown case '%s'", opt.only);
		}
	}
	sp_log_set_level(SP_LOG_WARN); /* no start-up line per engine (cold start makes 300) */
	double ns_iter = bench_cpu_ns_per_iter();
	uint64_t t_start = bench_now_ns();

	if (want("pingpong"))
		bench_pingpong();
	if (want("oneway"))
		bench_simple("oneway", "one-way send + drain, sp_msg_post, 4096/batch", "ns/msg",
			     false, oneway_fn);
	if (want("coldstart"))
		bench_simple("coldstart", "cold start + one ping-pong + stop", "us", false,
			     coldstart_fn);
	if (want("fanout"))
		bench_fanout();
	if (want("timers"))
		bench_timers();
	if (want("fileread"))
		bench_fileread();
	if (want("tcpecho"))
		bench_simple("tcpecho", "256 B TCP echo RTT, 127.0.0.1", "ns", false, tcpecho_fn);
	if (want("imbalanced"))
		bench_imbalanced();
	if (!opt.json || opt.stats)
		fprintf(stderr, "%-70s\r", "");
	if (fr.fd >= 0)
		close(fr.fd);
	free(fr.bufs);

	struct utsname u;
	uname(&u);
	char hdr[512], feat[128], nsbuf[32], rounds[16], secs[32];
	snprintf(feat, sizeof(feat), "%s%s%s%s%s",
		 engine_features & SP_FEAT_SINGLE_ISSUER ? "single_issuer " : "",
		 engine_features & SP_FEAT_DEFER_TASKRUN ? "defer_taskrun " : "",
		 engine_features & SP_FEAT_COOP_TASKRUN ? "coop_taskrun " : "",
		 engine_features & SP_FEAT_REG_RING_FD ? "reg_ring_fd " : "",
		 engine_features & SP_FEAT_CQE_SKIP ? "cqe_skip" : "");
	snprintf(nsbuf, sizeof(nsbuf), "%.3f", ns_iter);
	snprintf(rounds, sizeof(rounds), "%d", opt.rounds);
	snprintf(secs, sizeof(secs), "%.1f", (double)(bench_now_ns() - t_start) / 1e9);
	if (opt.json) {
		const char *meta[] = { "kernel",	u.release,
				       "cpus",		(char[8]){ 0 },
				       "rounds",	rounds,
				       "quick",		opt.quick ? "yes" : "no",
				       "pinned",	opt.pin ? "yes" : "no",
				       "spin_us",	(char[16]){ 0 },
				       "engine_features", feat,
				       "cpu_ns_per_iter", nsbuf,
				       "seconds",	secs };
		snprintf((char *)meta[3], 8, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
		snprintf((char *)meta[11], 16, "%u", opt.spin_us);
		bench_print_json(meta, sizeof(meta) / sizeof(meta[0]) / 2);
		return 0;
	}
	snprintf(hdr, sizeof(hdr),
		 "engine_bench: kernel %s, %ld CPUs, 2 loop threads %s, %d rounds%s, idle spin "
		 "%u us, engine features: %s, cpu work %s ns/iter, %s s\n"
		 "Medians. Ratios: how many times faster the engine is (> 1: engine wins).",
		 u.release, sysconf(_SC_NPROCESSORS_ONLN),
		 opt.pin ? "pinned to CPUs 0,1" : "unpinned", opt.rounds,
		 opt.quick ? " (--quick)" : "", opt.spin_us, feat, nsbuf, secs);
	bench_print_markdown(hdr);
	return 0;
}
