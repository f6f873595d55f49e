/* SPDX-License-Identifier: MIT */
/* test_bufring.c - provided buffers: receives pick a shard buffer with the data in it;
 * an empty ring gives -ENOBUFS (counted, not fatal) until buffers are recycled; lent
 * buffers wait in an sp_bufq first in, first out. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define NBUF 8

static struct sp_engine *eng;
static int sv[2];
static struct sp_op recv_op;
static unsigned held[64];
static _Atomic long nheld, nenobufs, nrecv, bad_data;
static bool recycle_now;

static void arm_recv(void);

static void on_recv(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_shard *sh = sp_shard_current();
	if (res == -ENOBUFS) {
		atomic_fetch_add(&nenobufs, 1);
		return; /* re-armed by the test once it recycles */
	}
	if (res == -ECANCELED)
		return; /* engine stop */
	ck_assert_int_gt(res, 0);
	ck_assert(flags & IORING_CQE_F_BUFFER);
	unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
	ck_assert_uint_lt(bid, NBUF);
	char expect[32];
	long n = atomic_load(&nrecv);
	int len = snprintf(expect, sizeof(expect), "message %ld;", n);
	if (res != len || memcmp(sp_buf_addr(sh, bid), expect, (size_t)len))
		atomic_fetch_add(&bad_data, 1);
	atomic_fetch_add(&nrecv, 1);
	if (recycle_now)
		sp_buf_recycle(sh, bid);
	else
		held[atomic_fetch_add(&nheld, 1)] = bid;
	arm_recv();
}

static void arm_recv(void)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, sv[0], NULL, 0, 0);
	sp_sqe_select_buffer(sqe);
	sp_op_submit(&recv_op, sqe);
}

static void start(void *arg)
{
	(void)arg;
	ck_assert_uint_eq(sp_buf_size(sp_shard_current()), 4096);
	arm_recv();
}

static void recycle_all(void *arg)
{
	(void)arg;
	for (long i = 0; i < atomic_load(&nheld); i++)
		sp_buf_recycle(sp_shard_current(), held[i]);
	atomic_store(&nheld, 0);
	recycle_now = true;
	arm_recv();
}

static void send_one(long n)
{
	char msg[32];
	int len = snprintf(msg, sizeof(msg), "message %ld;", n);
	ck_assert_int_eq(send(sv[1], msg, (size_t)len, 0), len);
}

/* One shard with a ring of NBUF buffers of 4 KiB, receiving on sv[0] from the start;
 * every received buffer is held (held[]) until the test gives it back. */
static void start_receiving(void)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = 1;
	cfg.buf_count = NBUF;
	cfg.buf_size = 4096;
	atomic_store(&nrecv, 0);
	atomic_store(&nheld, 0);
	recycle_now = false;
	ck_assert_int_eq(sp_engine_create(&cfg, &eng), 0);
	ck_assert(sp_engine_features(eng) & SP_FEAT_BUF_RING);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	sp_op_init(&recv_op, NULL, on_recv);
	run_on_shard(eng, 0, start, NULL);
}

/* Every buffer is back in the ring: stop. */
static void stop_receiving(void)
{
	struct sp_shard_stats st;
	sp_shard_stats_read(sp_engine_shard(eng, 0), &st);
	ck_assert_uint_eq(st.bufs_free, NBUF);
	stop_engine(eng);
	close(sv[0]);
	close(sv[1]);
}

START_TEST(test_enobufs_then_recycle)
{
	start_receiving();

	/* fill every buffer without giving any back */
	for (long i = 0; i < NBUF; i++) {
		send_one(i);
		ck_assert(wait_atomic(&nrecv, i + 1, 5000));
	}
	send_one(NBUF);
	ck_assert(wait_atomic(&nenobufs, 1, 5000));
	struct sp_shard_stats st;
	sp_shard_stats_read(sp_engine_shard(eng, 0), &st);
	ck_assert_uint_ge(st.enobufs, 1);
	ck_assert_uint_eq(st.bufs_free, 0);

	/* give them back: the waiting message and more arrive intact */
	run_on_shard(eng, 0, recycle_all, NULL);
	for (long i = NBUF + 1; i < 100; i++)
		send_one(i);
	ck_assert(wait_atomic(&nrecv, 100, 5000));
	ck_assert_int_eq(atomic_load(&bad_data), 0);
	stop_receiving();
}
END_TEST

/* three lent buffers queued: they come out in order with their lengths, and the ones
 * left go back to the ring together */
static void queue_three(void *arg)
{
	struct sp_shard *sh = sp_shard_current();
	struct sp_bufq q = SP_BUFQ_INIT;
	uint32_t len = 0;
	(void)arg;
	ck_assert_int_eq(sp_bufq_pop(sh, &q, &len), -1);
	for (unsigned i = 0; i < 3; i++)
		sp_bufq_push(sh, &q, held[i], 100 + i);
	ck_assert_uint_eq(q.count, 3);
	ck_assert_int_eq(sp_bufq_pop(sh, &q, &len), (int)held[0]);
	ck_assert_uint_eq(len, 100);
	ck_assert_int_eq(sp_bufq_pop(sh, &q, &len), (int)held[1]);
	ck_assert_uint_eq(len, 101);
	sp_bufq_push(sh, &q, held[0], 7); /* behind the one still queued */
	sp_bufq_recycle(sh, &q);
	ck_assert_uint_eq(q.count, 0);
	ck_assert_int_eq(sp_bufq_pop(sh, &q, &len), -1);
	sp_buf_recycle(sh, held[1]);
}

START_TEST(test_bufq_fifo)
{
	start_receiving();
	for (long i = 0; i < 3; i++) {
		send_one(i);
		ck_assert(wait_atomic(&nrecv, i + 1, 5000));
	}
	struct sp_shard_stats st;
	sp_shard_stats_read(sp_engine_shard(eng, 0), &st);
	ck_assert_uint_eq(st.bufs_free, NBUF - 3);
	run_on_shard(eng, 0, queue_three, NULL);
	stop_receiving();
}
END_TEST

START_TEST(test_no_buf_ring_when_disabled)
{
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.shards = 1;
	cfg.buf_count = NBUF;
	cfg.disable = SP_FEAT_BUF_RING;
	ck_assert_int_eq(sp_engine_create(&cfg, &eng), 0);
	ck_assert(!(sp_engine_features(eng) & SP_FEAT_BUF_RING));
	stop_engine(eng);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bufring");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_enobufs_then_recycle);
	tcase_add_test(tc, test_bufq_fifo);
	tcase_add_test(tc, test_no_buf_ring_when_disabled);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
