/* SPDX-License-Identifier: MIT */
/* test_msg.c - cross-shard messages: millions of sp_msg_post messages between 4 shards
 * and from a foreign thread arrive exactly once and in order per sender; sp_msg_send
 * (one MSG_RING each) delivers every message exactly once even when it overflows the
 * target's CQ; counters add up. */
#include <pthread.h>

#include "harness.h"

#define SHARDS 4
#define SENDERS (SHARDS + 1) /* the last sender is a non-shard thread */

struct tmsg {
	struct sp_msg msg;
	unsigned from, to;
	long seq;
};

static struct sp_engine *eng;
static struct tmsg *msgs[SENDERS][SHARDS];
static long nmsgs;
static long next_seq[SHARDS][SENDERS]; /* touched only by shard `to` */
static _Atomic long received, order_errors, wrong_shard;

static void on_msg(struct sp_msg *m)
{
	struct tmsg *t = sp_container_of(m, struct tmsg, msg);
	if (sp_shard_index(sp_shard_current()) != t->to)
		atomic_fetch_add(&wrong_shard, 1);
	if (next_seq[t->to][t->from] != t->seq)
		atomic_fetch_add(&order_errors, 1);
	next_seq[t->to][t->from] = t->seq + 1;
	atomic_fetch_add(&received, 1);
}

static void send_all(unsigned from)
{
	/* interleave targets so every inject queue sees concurrent producers */
	for (long i = 0; i < nmsgs; i++)
		for (unsigned to = 0; to < SHARDS; to++)
			if (to != from)
				sp_msg_post(sp_engine_shard(eng, to), &msgs[from][to][i].msg, on_msg);
}

static void send_from_shard(void *arg)
{
	send_all((unsigned)(uintptr_t)arg);
}

struct kick {
	struct sp_msg msg;
	unsigned from;
};

static void kick_fn(struct sp_msg *m)
{
	send_all(sp_container_of(m, struct kick, msg)->from);
}

START_TEST(test_post_exactly_once_in_order)
{
	nmsgs = scaled(300000);
	eng = start_engine(SHARDS, true);
	for (unsigned f = 0; f < SENDERS; f++)
		for (unsigned to = 0; to < SHARDS; to++) {
			msgs[f][to] = calloc((size_t)nmsgs, sizeof(struct tmsg));
			for (long i = 0; i < nmsgs; i++)
				msgs[f][to][i] = (struct tmsg){ .from = f, .to = to, .seq = i };
		}
	memset(next_seq, 0, sizeof(next_seq));
	atomic_store(&received, 0);
	static struct kick kicks[SHARDS];
	for (unsigned f = 0; f < SHARDS; f++) {
		kicks[f].from = f;
		sp_msg_post(sp_engine_shard(eng, f), &kicks[f].msg, kick_fn);
	}
	/* the foreign sender: every shard is a target */
	for (long i = 0; i < nmsgs; i++)
		for (unsigned to = 0; to < SHARDS; to++)
			sp_msg_post(sp_engine_shard(eng, to), &msgs[SHARDS][to][i].msg, on_msg);

	long want = nmsgs * (SHARDS * (SHARDS - 1) + SHARDS);
	ck_assert_msg(wait_atomic(&received, want, 120000), "received %ld of %ld",
		      atomic_load(&received), want);
	ck_assert_int_eq(atomic_load(&order_errors), 0);
	ck_assert_int_eq(atomic_load(&wrong_shard), 0);

	uint64_t sent = 0, recv = 0, wakes = 0;
	for (unsigned i = 0; i < SHARDS; i++) {
		struct sp_shard_stats st;
		sp_shard_stats_read(sp_engine_shard(eng, i), &st);
		sent += st.msgs_sent;
		recv += st.msgs_received;
		wakes += st.wakes_sent;
	}
	/* shard senders counted theirs (kicks came from us, the foreign thread) */
	ck_assert_uint_eq(sent, (uint64_t)nmsgs * SHARDS * (SHARDS - 1));
	ck_assert_uint_ge(recv, (uint64_t)want);
	/* coalescing: far fewer doorbells than messages */
	ck_assert_uint_lt(wakes, (uint64_t)want / 10);
	sleep_us(1000); /* let the last counters settle before the exact check */
	stop_engine(eng);
	for (unsigned f = 0; f < SENDERS; f++)
		for (unsigned to = 0; to < SHARDS; to++)
			free(msgs[f][to]);
}
END_TEST

/* sp_msg_send: one MSG_RING per message. */
static struct tmsg *direct[2];
static _Atomic int *direct_seen[2];
static _Atomic long direct_received;

static void on_direct(struct sp_msg *m)
{
	struct tmsg *t = sp_container_of(m, struct tmsg, msg);
	ck_assert_uint_eq(sp_shard_index(sp_shard_current()), t->to);
	ck_assert_int_eq(atomic_fetch_add(&direct_seen[t->from][t->seq], 1), 0);
	atomic_fetch_add(&direct_received, 1);
}

static void send_direct(void *arg)
{
	unsigned from = (unsigned)(uintptr_t)arg;
	for (long i = 0; i < nmsgs; i++)
		sp_msg_send(sp_engine_shard(eng, from ^ 1), &direct[from][i].msg, on_direct);
}

START_TEST(test_send_exactly_once)
{
	nmsgs = scaled(200000);
	eng = start_engine(2, true);
	atomic_store(&direct_received, 0);
	for (unsigned f = 0; f < 2; f++) {
		direct[f] = calloc((size_t)nmsgs, sizeof(struct tmsg));
		direct_seen[f] = calloc((size_t)nmsgs, sizeof(_Atomic int));
		for (long i = 0; i < nmsgs; i++)
			direct[f][i] = (struct tmsg){ .from = f, .to = f ^ 1, .seq = i };
	}
	static struct on_shard_call c0, c1;
	c0 = (struct on_shard_call){ .fn = send_direct, .arg = (void *)0 };
	c1 = (struct on_shard_call){ .fn = send_direct, .arg = (void *)1 };
	sp_msg_post(sp_engine_shard(eng, 0), &c0.msg, on_shard_trampoline);
	sp_msg_post(sp_engine_shard(eng, 1), &c1.msg, on_shard_trampoline);
	ck_assert_msg(wait_atomic(&direct_received, 2 * nmsgs, 60000), "received %ld of %ld",
		      atomic_load(&direct_received), 2 * nmsgs);
	for (unsigned f = 0; f < 2; f++)
		for (long i = 0; i < nmsgs; i++)
			ck_assert_int_eq(atomic_load(&direct_seen[f][i]), 1);
	stop_engine(eng);
	for (unsigned f = 0; f < 2; f++) {
		free(direct[f]);
		free((void *)direct_seen[f]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_post_exactly_once_in_order);
	tcase_add_test(tc, test_send_exactly_once);
	suite_add_tcase(s, tc);
	(void)send_from_shard;
	return run_suite(s);
}
