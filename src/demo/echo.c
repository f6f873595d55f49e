/* SPDX-License-Identifier: MIT */
/*
 * echo.c - spargio-echo, a TCP echo server on the engine: the smallest real user of the
 * engine API, and what the Quick start runs until the daemon exists.
 *
 *   spargio-echo [--listen ADDR:PORT] [--shards N] [--no-steal]
 *
 * Shard 0 accepts with a multishot accept; each connection becomes a round_robin task
 * that receives into the shard's provided buffers and sends each buffer back (one send
 * in flight per connection, short writes resumed). SIGUSR1 prints per-shard counters,
 * SIGINT/SIGTERM stop the engine cleanly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log.h"

struct conn {
	struct sp_task task;
	struct sp_op recv_op, send_op;
	int fd;
	unsigned bid;   /* buffer being sent back */
	unsigned len, off;
};

struct listener {
	struct sp_op accept_op;
	int fd;
	struct sp_engine *eng;
};

static struct listener lst;

static void conn_recv(struct conn *c);

static void conn_release(struct sp_task *t)
{
	struct conn *c = (struct conn *)t;
	close(c->fd);
	free(c);
}

static void on_send(struct sp_op *op, int res, uint32_t flags)
{
	struct conn *c = sp_container_of(op, struct conn, send_op);
	struct sp_shard *sh = sp_shard_current();

	if (res <= 0) {
		sp_buf_recycle(sh, c->bid);
		sp_task_close(&c->task);
		return;
	}
	c->off += (unsigned)res;
	if (c->off < c->len) { /* short write: send the rest before anything else */
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_send(sqe, c->fd, (char *)sp_buf_addr(sh, c->bid) + c->off,
				   c->len - c->off, MSG_NOSIGNAL);
		sp_op_submit(&c->send_op, sqe);
		return;
	}
	sp_buf_recycle(sh, c->bid);
	conn_recv(c);
}

static void on_recv(struct sp_op *op, int res, uint32_t flags)
{
	struct conn *c = sp_container_of(op, struct conn, recv_op);

	if (res == -ENOBUFS) { /* every buffer of this shard is busy: try again shortly */
		conn_recv(c);
		return;
	}
	if (res <= 0 || !(flags & IORING_CQE_F_BUFFER)) {
		sp_task_close(&c->task);
		return;
	}
	c->bid = flags >> IORING_CQE_BUFFER_SHIFT;
	c->len = (unsigned)res;
	c->off = 0;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, c->fd, sp_buf_addr(sp_shard_current(), c->bid), c->len,
			   MSG_NOSIGNAL);
	sp_op_submit(&c->send_op, sqe);
}

static void conn_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
	sp_sqe_select_buffer(sqe);
	sp_op_submit(&c->recv_op, sqe);
}

static void conn_start(struct sp_task *t)
{
	conn_recv((struct conn *)t);
}

static void arm_accept(void);

static void on_accept(struct sp_op *op, int res, uint32_t flags)
{
	if (res >= 0) {
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(res);
		} else {
			c->fd = res;
			sp_task_init(&c->task, SP_ROUND_ROBIN, conn_start, conn_release);
			sp_op_init(&c->recv_op, &c->task, on_recv);
			sp_op_init(&c->send_op, &c->task, on_send);
			sp_task_spawn(lst.eng, &c->task, 0);
		}
	} else if (res != -ECANCELED) {
		sp_log(SP_LOG_WARN, "accept: %s", strerror(-res));
	}
	if (!(flags & IORING_CQE_F_MORE) && !sp_engine_stopping(lst.eng))
		arm_accept();
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_multishot_accept(sqe, lst.fd, NULL, NULL, SOCK_CLOEXEC);
	sp_op_submit(&lst.accept_op, sqe);
}

static void start_accept(struct sp_msg *m)
{
	(void)m;
	arm_accept();
}

static int listen_on(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void print_stats(struct sp_engine *eng)
{
	fprintf(stderr, "shard tasks_run steals stolen msgs_sent msgs_recv wakes coalesced "
			"cqes sleeps ops_inflight bufs_free enobufs\n");
	for (unsigned i = 0; i < sp_engine_nshards(eng); i++) {
		struct sp_shard_stats s;
		sp_shard_stats_read(sp_engine_shard(eng, i), &s);
		fprintf(stderr,
			"%5u %9" PRIu64 " %6" PRIu64 " %6" PRIu64 " %9" PRIu64 " %9" PRIu64
			" %5" PRIu64 " %9" PRIu64 " %7" PRIu64 " %6" PRIu64 " %12" PRIu64
			" %9" PRIu64 " %7" PRIu64 "\n",
			i, s.tasks_run, s.steals, s.stolen, s.msgs_sent, s.msgs_received,
			s.wakes_sent, s.wakes_coalesced, s.cqes, s.sleeps, s.ops_inflight,
			s.bufs_free, s.enobufs);
	}
}

static void on_stop(struct sp_shard *sh, void *arg)
{
	(void)arg;
	if (sp_shard_index(sh) == 0 && sp_op_busy(&lst.accept_op))
		sp_op_cancel(&lst.accept_op);
}

int main(int argc, char **argv)
{
	const char *listen_spec = "127.0.0.1:7070";
	struct sp_engine_config cfg;
	sp_engine_config_defaults(&cfg);
	cfg.buf_count = 256;
	cfg.buf_size = 16384;
	cfg.on_stop = on_stop;

	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "shards", required_argument, NULL, 's' },
		{ "no-steal", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "l:s:nh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_spec = optarg; break;
		case 's': cfg.shards = (unsigned)atoi(optarg); break;
		case 'n': cfg.steal = false; break;
		default:
			fprintf(stderr, "usage: %s [--listen ADDR:PORT] [--shards N] [--no-steal]\n",
				argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	lst.fd = listen_on(listen_spec);
	if (lst.fd < 0) {
		fprintf(stderr, "spargio-echo: cannot listen on %s: %s\n", listen_spec,
			strerror(-lst.fd));
		return 1;
	}
	int ret = sp_engine_create(&cfg, &lst.eng);
	if (ret < 0) {
		fprintf(stderr, "spargio-echo: engine: %s\n", strerror(-ret));
		return ret == -EPERM || ret == -ENOSYS ? 3 : 1;
	}
	sp_op_init(&lst.accept_op, NULL, on_accept);
	static struct sp_msg start;
	sp_msg_post(sp_engine_shard(lst.eng, 0), &start, start_accept);
	sp_log(SP_LOG_INFO, "spargio-echo listening on %s (SIGUSR1: stats)", listen_spec);

	for (;;) {
		int sig = sigwaitinfo(&sigs, NULL);
		if (sig == SIGUSR1) {
			print_stats(lst.eng);
			continue;
		}
		if (sig == SIGINT || sig == SIGTERM)
			break;
	}
	sp_engine_stop(lst.eng);
	sp_engine_join(lst.eng);
	sp_engine_destroy(lst.eng);
	close(lst.fd);
	return 0;
}
