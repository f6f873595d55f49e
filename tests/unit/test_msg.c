/* SPDX-License-Identifier: MIT */
/*
 * test_msg.c - cross-shard messages.
 *  - sp_msg_post: every shard of 4 and a foreign thread post millions (scaled) of
 *    sequenced messages to every shard; each arrives once, on its target, in order per
 *    sender; msgs_sent/msgs_received add up; doorbells are coalesced.
 *  - sp_msg_send (one MSG_RING each): every shard to every other, enough to overflow the
 *    target CQs; each arrives exactly once; also with SP_FEAT_CQE_SKIP switched off.
 *  - a ping-pong between two shards that sleep between messages (idle_spin_us 0): a
 *    lost wake-up would stall it.
 * Messages are preallocated; nothing is allocated per message.
 */
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
static _Atomic long received, order_errors, wrong_shard, seq_sum;

static void on_msg(struct sp_msg *m)
{
	struct tmsg *t = sp_container_of(m, struct tmsg, msg);
	if (!sp_shard_current() || sp_shard_index(sp_shard_current()) != t->to)
		atomic_fetch_add(&wrong_shard, 1);
	if (next_seq[t->to][t->from] != t->seq)
		atomic_fetch_add(&order_errors, 1);
	next_seq[t->to][t->from] = t->seq + 1;
	atomic_fetch_add(&seq_sum, t->seq);
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

struct counters {
	uint64_t want_received;
};

static bool counters_settled(void *arg)
{
	struct counters *c = arg;
	struct sp_shard_stats sum;
	stats_sum(eng, &sum);
	return sum.msgs_received >= c->want_received;
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
	atomic_store(&seq_sum, 0);
	static struct on_shard_call kicks[SHARDS];
	for (unsigned f = 0; f < SHARDS; f++)
		post_on_shard(eng, f, &kicks[f], send_from_shard, (void *)(uintptr_t)f);
	/* the foreign sender: every shard is a target */
	for (long i = 0; i < nmsgs; i++)
		for (unsigned to = 0; to < SHARDS; to++)
			sp_msg_post(sp_engine_shard(eng, to), &msgs[SHARDS][to][i].msg, on_msg);

	long per_pair = nmsgs, pairs = SHARDS * (SHARDS - 1) + SHARDS;
	long want = per_pair * pairs;
	ck_assert_msg(wait_atomic(&received, want, 120000), "received %ld of %ld",
		      atomic_load(&received), want);
	ck_assert_int_eq(atomic_load(&order_errors), 0);
	ck_assert_int_eq(atomic_load(&wrong_shard), 0);
	/* exactly once: the count and the sum of sequence numbers both match */
	ck_assert_int_eq(atomic_load(&received), want);
	ck_assert_int_eq(atomic_load(&seq_sum), pairs * (per_pair * (per_pair - 1) / 2));

	/* the receiver counts a batch after running it: wait for the counters to catch up
	 * (the kicks are messages too) */
	struct counters c = { (uint64_t)want + SHARDS };
	ck_assert(wait_until(counters_settled, &c, 5000));
	struct sp_shard_stats sum;
	stats_sum(eng, &sum);
	uint64_t shard_sent = (uint64_t)nmsgs * SHARDS * (SHARDS - 1);
	/* shard senders count theirs; the foreign thread's (and the kicks) are not a
	 * shard's */
	ck_assert_uint_eq(sum.msgs_sent, shard_sent);
	ck_assert_uint_eq(sum.msgs_received, (uint64_t)want + SHARDS);
	/* every shard post either rang a doorbell or found the target awake */
	ck_assert_uint_ge(sum.wakes_sent + sum.wakes_coalesced, shard_sent);
	/* coalescing: far fewer doorbells than messages */
	ck_assert_uint_lt(sum.wakes_sent, (uint64_t)want / 10);
	stop_engine(eng);
	for (unsigned f = 0; f < SENDERS; f++)
		for (unsigned to = 0; to < SHARDS; to++)
			free(msgs[f][to]);
}
END_TEST

/* sp_msg_send: one MSG_RING per message, every shard to every other shard. */
static struct tmsg *direct[SHARDS];
static _Atomic int *direct_seen[SHARDS];
static _Atomic long direct_received, direct_dup;
static unsigned nshards;

static void on_direct(struct sp_msg *m)
{
	struct tmsg *t = sp_container_of(m, struct tmsg, msg);
	if (!sp_shard_current() || sp_shard_index(sp_shard_current()) != t->to)
		atomic_fetch_add(&wrong_shard, 1);
	if (atomic_fetch_add(&direct_seen[t->from][t->seq], 1))
		atomic_fetch_add(&direct_dup, 1);
	atomic_fetch_add(&direct_received, 1);
}

static void send_direct(void *arg)
{
	unsigned from = (unsigned)(uintptr_t)arg;
	for (long i = 0; i < nmsgs; i++) {
		struct tmsg *t = &direct[from][i];
		sp_msg_send(sp_engine_shard(eng, t->to), &t->msg, on_direct);
	}
}

static void nothing(void *arg)
{
	(void)arg;
}

static void send_exactly_once(unsigned shards, unsigned disable)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = shards;
	cfg.disable = disable;
	nshards = shards;
	eng = start_engine_cfg(&cfg);
	ck_assert_uint_eq(sp_engine_features(eng) & disable, 0);
	atomic_store(&direct_received, 0);
	atomic_store(&direct_dup, 0);
	atomic_store(&wrong_shard, 0);
	for (unsigned f = 0; f < shards; f++) {
		direct[f] = calloc((size_t)nmsgs, sizeof(struct tmsg));
		direct_seen[f] = calloc((size_t)nmsgs, sizeof(_Atomic int));
		for (long i = 0; i < nmsgs; i++) /* round robin over the other shards */
			direct[f][i] = (struct tmsg){ .from = f,
						      .to = (f + 1 + (unsigned)(i % (shards - 1))) %
							    shards,
						      .seq = i };
	}
	static struct on_shard_call calls[SHARDS];
	for (unsigned f = 0; f < shards; f++)
		post_on_shard(eng, f, &calls[f], send_direct, (void *)(uintptr_t)f);
	long want = (long)shards * nmsgs;
	ck_assert_msg(wait_atomic(&direct_received, want, 60000), "received %ld of %ld",
		      atomic_load(&direct_received), want);
	ck_assert_int_eq(atomic_load(&wrong_shard), 0);
	/* two passes through every shard: completions the senders still had to reap have
	 * been handled, and whatever they re-sent has been delivered */
	for (int round = 0; round < 2; round++)
		for (unsigned i = 0; i < shards; i++)
			run_on_shard(eng, i, nothing, NULL);
	ck_assert_msg(atomic_load(&direct_dup) == 0, "%ld messages delivered twice",
		      atomic_load(&direct_dup));
	/* a late duplicate would show once the engine stopped */
	stop_engine(eng);
	ck_assert_int_eq(atomic_load(&direct_dup), 0);
	ck_assert_int_eq(atomic_load(&direct_received), want);
	for (unsigned f = 0; f < shards; f++) {
		for (long i = 0; i < nmsgs; i++)
			ck_assert_int_eq(atomic_load(&direct_seen[f][i]), 1);
		free(direct[f]);
		free((void *)direct_seen[f]);
	}
}

START_TEST(test_send_exactly_once)
{
	nmsgs = scaled(200000);
	send_exactly_once(SHARDS, 0);
}
END_TEST

/* Without IOSQE_CQE_SKIP_SUCCESS every send also completes on the sender's ring; that
 * completion says "sent", not "failed". */
START_TEST(test_send_without_cqe_skip)
{
	nmsgs = scaled(20000);
	send_exactly_once(2, SP_FEAT_CQE_SKIP);
}
END_TEST

/* Ping-pong between two shards that go to sleep between messages. */
struct ball {
	struct sp_msg msg;
	long hits;
	long rounds;
	_Atomic long done;
};

static void hit(struct sp_msg *m)
{
	struct ball *b = sp_container_of(m, struct ball, msg);
	unsigned me = sp_shard_index(sp_shard_current());
	if (b->hits++ == 2 * b->rounds) {
		atomic_store(&b->done, 1);
		return;
	}
	/* alternate the two paths: the batched inject queue and the direct msg_ring */
	if (b->hits & 2)
		sp_msg_post(sp_engine_shard(eng, me ^ 1), &b->msg, hit);
	else
		sp_msg_send(sp_engine_shard(eng, me ^ 1), &b->msg, hit);
}

START_TEST(test_ping_pong_sleeping)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = 2;
	cfg.idle_spin_us = 0; /* sleep at once: every message must wake its target */
	eng = start_engine_cfg(&cfg);
	static struct ball b;
	memset(&b, 0, sizeof(b));
	b.rounds = scaled(20000);
	sp_msg_post(sp_engine_shard(eng, 0), &b.msg, hit);
	ck_assert_msg(wait_atomic(&b.done, 1, 60000), "stalled after %ld hits", b.hits);
	struct sp_shard_stats sum;
	stats_sum(eng, &sum);
	ck_assert_uint_gt(sum.sleeps, 0);
	ck_assert_uint_gt(sum.wakes_sent, 0);
	stop_engine(eng);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_post_exactly_once_in_order);
	tcase_add_test(tc, test_send_exactly_once);
	tcase_add_test(tc, test_send_without_cqe_skip);
	tcase_add_test(tc, test_ping_pong_sleeping);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
