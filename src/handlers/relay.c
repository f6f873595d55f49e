/* SPDX-License-Identifier: MIT */
/*
 * relay.c - the buffered full-duplex relay of relay.h: per direction, receive into a
 * provided buffer, send all of it, recycle, receive again; half close, resets and the
 * idle timeout.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "handlers/relay.h"

#define POOL_BUF_SIZE 16384
#define POOL_KEEP 32 /* free buffers a shard keeps (512 KiB); more are unmapped */

/*
 * Each shard thread's stack of spare buffers, for receives that do not take one from the
 * ring: the ring ran dry, or a direction is streaming (its last receive filled a whole
 * buffer, so the next one will too: no point in giving the ring buffer back and taking
 * another). A direction holds one only from a receive that finds bytes to the end of
 * their send: such a receive does not wait (MSG_DONTWAIT), and when nothing is there the
 * buffer goes back and a poll waits instead, so an idle connection holds none whatever
 * happened before (a burst on 100k connections that drained the ring would otherwise
 * leave 32 KiB on each). Last in, first out: the buffers in use stay the few hot ones, so
 * resident memory follows the peak of concurrent transfers, not their number. The buffers
 * are mapped one by one, not taken from malloc: those of a burst go back to the kernel
 * when it is over (from the heap they would leave holes between the sessions that keep
 * the pages resident: 8 MB after a burst on 9000 connections). Sessions are
 * pinned: a buffer is taken and given back on the same thread. The stack is freed when
 * the shard's last relay ends (no leak at shutdown).
 */
struct pool_buf {
	struct pool_buf *next;
};
static __thread struct pool_buf *pool_top;
static __thread unsigned pool_free, relays_live;

static uint8_t *pool_get(void)
{
	struct pool_buf *b = pool_top;
	if (!b) {
		void *p = mmap(NULL, POOL_BUF_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	pool_top = b->next;
	pool_free--;
	return (uint8_t *)b;
}

static void pool_put(uint8_t *p)
{
	if (!p)
		return;
	if (pool_free >= POOL_KEEP) {
		munmap(p, POOL_BUF_SIZE);
		return;
	}
	struct pool_buf *b = (struct pool_buf *)p;
	b->next = pool_top;
	pool_top = b;
	pool_free++;
}

/*
 * Each shard thread's spare pipes for splicing, last in, first out like the buffers: a
 * pipe is taken when a direction starts to stream and given back, empty, when it
 * pauses. The kernel caps a user's pipe memory (pipe-user-pages-soft), so pipes are not
 * kept per connection, and one of SPLICE_PIPE_SIZE is asked for (else the default
 * 64 KiB is fine too).
 */
#define SPLICE_PIPE_SIZE (256 * 1024)
#define PIPE_KEEP 64
static __thread int pipe_rds[PIPE_KEEP], pipe_wrs[PIPE_KEEP];
static __thread unsigned pipes_free;
static __thread bool splice_off; /* splice refused on this shard (seccomp, old kernel) */

static bool pipe_get(struct sp_relay_dir *d)
{
	if (pipes_free) {
		pipes_free--;
		d->pipe_rd = pipe_rds[pipes_free];
		d->pipe_wr = pipe_wrs[pipes_free];
		return true;
	}
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return false;
	(void)fcntl(fds[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
	d->pipe_rd = fds[0];
	d->pipe_wr = fds[1];
	return true;
}

/* An empty pipe goes back to the pool; one still holding bytes (the relay ended midway)
 * is closed, and its bytes with it, as is every pipe once splice is refused: none will
 * be taken again on this shard. */
static void pipe_put(struct sp_relay_dir *d)
{
	if (d->pipe_rd < 0)
		return;
	if (!d->pipe_bytes && pipes_free < PIPE_KEEP && !splice_off) {
		pipe_rds[pipes_free] = d->pipe_rd;
		pipe_wrs[pipes_free] = d->pipe_wr;
		pipes_free++;
	} else {
		close(d->pipe_rd);
		close(d->pipe_wr);
	}
	d->pipe_rd = d->pipe_wr = -1;
	d->pipe_bytes = 0;
}

static void pool_trim(void)
{
	while (pool_top) {
		struct pool_buf *b = pool_top;
		pool_top = b->next;
		munmap(b, POOL_BUF_SIZE);
	}
	pool_free = 0;
	while (pipes_free) {
		pipes_free--;
		close(pipe_rds[pipes_free]);
		close(pipe_wrs[pipes_free]);
	}
}

static void dir_recv(struct sp_relay_dir *d);
static void dir_send(struct sp_relay_dir *d);
static bool splice_start(struct sp_relay_dir *d);

/* A multishot receive ends by itself after this many buffers' worth of bytes (the
 * kernel's limit, sqe->optlen): a direction that starts to stream takes at most that
 * before it pauses and decides on splice. It is also stopped early when this many
 * buffers wait behind a send (small messages, a slow reader). */
#define RECV_BUFS 4

/* No multishot receives: the kernel refused the limited one (before Linux 6.17), or
 * SPARGIOD_PROXY_NO_MULTISHOT. One receive per message then. */
static _Atomic bool multishot_off;

void sp_relay_no_multishot(const char *why)
{
	if (!atomic_exchange(&multishot_off, true))
		sp_log(SP_LOG_INFO, "relay: %s: one receive per message", why);
}

static void finish(struct sp_relay *r, const char *reason, int reset_fd)
{
	if (r->ended)
		return;
	r->ended = true;
	r->end(r, reason, reset_fd);
}

static bool both_eof(const struct sp_relay *r)
{
	return r->up.eof && r->down.eof;
}

static void give_back(struct sp_relay_dir *d)
{
	if (d->bid >= 0) {
		sp_buf_recycle(d->r->shard, (unsigned)d->bid);
		d->bid = -1;
	}
}

static void drop_own(struct sp_relay_dir *d)
{
	pool_put(d->own);
	d->own = NULL;
}

/* The direction paused: nothing in flight, nothing queued. Decide where the next receive
 * goes. A full buffer since the last pause means more is waiting: go on by splice, or
 * through a pool buffer where splice is not to be had. Else hold nothing while waiting
 * (the ring lends a buffer on arrival). */
static void next_recv(struct sp_relay_dir *d)
{
	bool streaming = d->streaming;
	d->streaming = false;
	if (streaming && !d->streamed && d->r->notsent_lowat) /* failing changes only the speed */
		setsockopt(d->to, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &d->r->notsent_lowat,
			   sizeof(d->r->notsent_lowat));
	d->streamed |= streaming;
	if (streaming && splice_start(d))
		return;
	if (streaming || d->dry || !d->r->use_ring) {
		d->dry = false;
		if (!d->own && !(d->own = pool_get())) {
			finish(d->r, "out of memory", -1);
			return;
		}
	} else {
		drop_own(d);
	}
	dir_recv(d);
}

/* A send or a receive ended: the next queued buffer goes out; with nothing left in
 * flight or queued, pass a FIN on or receive again. */
static void settle(struct sp_relay_dir *d)
{
	struct sp_relay *r = d->r;
	if (sp_op_busy(&d->send_op))
		return;
	int bid = sp_bufq_pop(r->shard, &d->queue, &d->len);
	if (bid >= 0) {
		d->bid = bid;
		d->data = sp_buf_addr(r->shard, (unsigned)bid);
		d->off = 0;
		dir_send(d);
		return;
	}
	if (sp_op_busy(&d->recv_op)) /* the multishot receive goes on */
		return;
	if (d->fin) {
		/* half close: the peer's FIN goes on to the other side, the other direction
		 * goes on until it ends too */
		d->fin = false;
		shutdown(d->to, SHUT_WR);
		d->eof = true;
		if (both_eof(r))
			finish(r, NULL, -1);
		return;
	}
	next_recv(d);
}

/* The one place received bytes pass on their way out (see relay.h on TLS). */
static void dir_send(struct sp_relay_dir *d)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, d->to, d->data + d->off, d->len - d->off, MSG_NOSIGNAL);
	sp_op_submit(&d->send_op, sqe);
}

static void dir_recv(struct sp_relay_dir *d)
{
	struct io_uring_sqe *sqe = sp_sqe();
	d->multishot = false;
	d->stopping = false;
	if (d->own) {
		/* never waits: a buffer is held only while it carries bytes (pool_get) */
		io_uring_prep_recv(sqe, d->from, d->own, POOL_BUF_SIZE, MSG_DONTWAIT);
	} else if (d->streamed || atomic_load_explicit(&multishot_off, memory_order_relaxed)) {
		io_uring_prep_recv(sqe, d->from, NULL, sp_buf_size(d->r->shard), 0);
		sp_sqe_select_buffer(sqe);
	} else {
		io_uring_prep_recv(sqe, d->from, NULL, 0, 0); /* length: the buffer's */
		sqe->ioprio |= IORING_RECV_MULTISHOT;
		sqe->file_index = RECV_BUFS * sp_buf_size(d->r->shard); /* optlen in newer headers */
		sp_sqe_select_buffer(sqe);
		d->multishot = true;
	}
	sp_op_submit(&d->recv_op, sqe);
}

/* Which side a direction's error belongs to, for the log. */
static const char *side_reason(const struct sp_relay_dir *d, bool from_side)
{
	bool client = (d == &d->r->up) == from_side;
	return client ? "client reset" : "server reset";
}

/* Bytes came: send them, or queue them behind the send in flight (a multishot receive
 * only: other receives start with nothing in flight). */
static void received(struct sp_relay_dir *d, int bid, uint32_t len)
{
	struct sp_relay *r = d->r;
	*d->bytes += len;
	r->last_ns = sp_pass_ns();
	if (len == (bid >= 0 ? sp_buf_size(r->shard) : POOL_BUF_SIZE))
		d->streaming = true;
	if (sp_op_busy(&d->send_op) || d->queue.count) {
		assert(bid >= 0); /* a pool buffer's receive starts with the send idle */
		sp_bufq_push(r->shard, &d->queue, (unsigned)bid, len);
		return;
	}
	d->bid = bid;
	d->data = bid >= 0 ? sp_buf_addr(r->shard, (unsigned)bid) : d->own;
	d->len = len;
	d->off = 0;
	dir_send(d);
}

static void on_recv(struct sp_op *op, int res, uint32_t flags);

/* The poll of a direction whose pool buffer receive found nothing: bytes (or an error, or
 * the FIN) are there, receive them (into a ring buffer again where there is a ring). */
static void on_wake(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_relay_dir *d = sp_container_of(op, struct sp_relay_dir, recv_op);
	(void)flags;
	d->recv_op.fn = on_recv;
	if (d->r->ended)
		return;
	if (res == -ECANCELED) {
		finish(d->r, "stopped", -1);
		return;
	}
	next_recv(d); /* an error on the socket shows in the receive */
}

static void on_recv(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_relay_dir *d = sp_container_of(op, struct sp_relay_dir, recv_op);
	struct sp_relay *r = d->r;
	int bid = flags & IORING_CQE_F_BUFFER ? (int)(flags >> IORING_CQE_BUFFER_SHIFT) : -1;

	if (bid >= 0 && (r->ended || res <= 0)) {
		sp_buf_recycle(r->shard, (unsigned)bid);
		bid = -1;
	}
	if (r->ended)
		return;
	if (res > 0) {
		received(d, bid, (uint32_t)res);
		if (!(flags & IORING_CQE_F_MORE)) {
			settle(d);
		} else if (d->queue.count >= RECV_BUFS && !d->stopping) {
			d->stopping = true; /* back-pressure; settle() goes on after the last */
			sp_op_cancel(&d->recv_op);
		}
		return;
	}
	if (res == 0) {
		d->fin = true;
	} else if (res == -ENOBUFS) { /* the ring is empty: a buffer of the pool next */
		d->dry = true;
	} else if (res == -EAGAIN && d->own) { /* nothing there: wait holding no buffer */
		drop_own(d);
		d->recv_op.fn = on_wake;
		sp_op_poll(&d->recv_op, d->from, POLLIN);
		return;
	} else if (res == -ECANCELED && d->stopping &&
		   !sp_engine_stopping(sp_shard_engine(r->shard))) {
		/* we stopped it: settle() decides what comes next */
	} else if (res == -EINVAL && d->multishot) {
		sp_relay_no_multishot("this kernel has no limited multishot receive (Linux 6.17+)");
	} else if (res == -ECANCELED) {
		finish(r, "stopped", -1);
		return;
	} else {
		/* the sender reset (or failed): the other side learns it by a reset too */
		finish(r, side_reason(d, true), d->to);
		return;
	}
	settle(d);
}

static void on_send(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_relay_dir *d = sp_container_of(op, struct sp_relay_dir, send_op);
	struct sp_relay *r = d->r;

	if (r->ended)
		return;
	if (res > 0) {
		r->last_ns = sp_pass_ns(); /* bytes moving to a slow reader are activity too */
		d->off += (uint32_t)res;
		if (d->off < d->len) { /* short write: the rest before anything else */
			dir_send(d);
			return;
		}
		give_back(d);
		settle(d);
	} else if (res == -ECANCELED) {
		finish(r, "stopped", -1);
	} else {
		finish(r, side_reason(d, false), d->from);
	}
}

/* ------------------------------------------------------------------------------------ */
/* splice, while a direction streams                                                      */

/* Bytes a direction moves per callback before the shard's other sessions go: one pipe's
 * worth (it was 1 MiB, four pipes: small requests queued behind that much of every
 * stream of the shard; scripts/bench/fairness measures it). */
#define SPLICE_TURN SPLICE_PIPE_SIZE
#define SPLICE_FLAGS (SPLICE_F_MOVE | SPLICE_F_NONBLOCK)

static void splice_turn(struct sp_relay_dir *d);

/* splice(2) refused outright (a seccomp filter: EPERM, ENOSYS; a socket type without
 * splice support: EINVAL): this shard relays with buffers from now on. */
static bool splice_refused(int e)
{
	static _Atomic bool said; /* once per process */
	if (e != EPERM && e != ENOSYS && e != EINVAL && e != EOPNOTSUPP)
		return false;
	splice_off = true;
	if (!atomic_exchange(&said, true))
		sp_log(SP_LOG_WARN, "proxy: splice(2) %s: streams are relayed through buffers",
		       e == EPERM ? "is not permitted (a seccomp filter; under systemd add it to "
				    "SystemCallFilter=)"
				  : e == ENOSYS ? "is not in this kernel" : strerror(e));
	return true;
}

/* A poll of either socket completed: the turn goes on (or ends the relay on a stop). */
static void splice_ready(struct sp_relay_dir *d, int res)
{
	if (d->r->ended)
		return;
	if (res == -ECANCELED) {
		finish(d->r, "stopped", -1);
		return;
	}
	splice_turn(d); /* an error on a socket shows in the next splice */
}

static void on_readable(struct sp_op *op, int res, uint32_t flags)
{
	(void)flags;
	splice_ready(sp_container_of(op, struct sp_relay_dir, recv_op), res);
}

static void on_writable(struct sp_op *op, int res, uint32_t flags)
{
	(void)flags;
	splice_ready(sp_container_of(op, struct sp_relay_dir, send_op), res);
}

/* The sender paused with the pipe empty: the pipe goes back to the pool, and the next
 * bytes are received into a provided buffer, taken only when they come. */
static void splice_stop(struct sp_relay_dir *d)
{
	pipe_put(d);
	d->recv_op.fn = on_recv;
	d->send_op.fn = on_send;
}

/* Move what is there, up to SPLICE_TURN: into the pipe while it is empty, out of it
 * until it is. A splice into an empty pipe that finds nothing means the sender paused;
 * one out of the pipe that finds no room means the receiver is slow: poll for room. */
static void splice_turn(struct sp_relay_dir *d)
{
	struct sp_relay *r = d->r;
	size_t moved = 0;

	while (moved < SPLICE_TURN) {
		if (!d->pipe_bytes) {
			ssize_t n = splice(d->from, NULL, d->pipe_wr, NULL, SPLICE_TURN, SPLICE_FLAGS);
			if (n > 0) {
				d->pipe_bytes = (uint32_t)n;
				*d->bytes += (uint64_t)n;
				r->last_ns = sp_pass_ns();
			} else if (n == 0) { /* FIN: on to the other side, as on_recv does */
				splice_stop(d);
				shutdown(d->to, SHUT_WR);
				d->eof = true;
				if (both_eof(r))
					finish(r, NULL, -1);
				return;
			} else if (errno == EAGAIN || splice_refused(errno)) {
				splice_stop(d);
				if (!r->use_ring && !(d->own = pool_get())) /* no ring: a pool buffer */
					finish(r, "out of memory", -1);
				else
					dir_recv(d);
				return;
			} else if (errno != EINTR) {
				finish(r, side_reason(d, true), d->to);
				return;
			}
			continue;
		}
		ssize_t m = splice(d->pipe_rd, NULL, d->to, NULL, d->pipe_bytes, SPLICE_FLAGS);
		if (m > 0) {
			r->last_ns = sp_pass_ns();
			d->pipe_bytes -= (uint32_t)m;
			moved += (size_t)m;
		} else if (m < 0 && errno == EAGAIN) {
			sp_op_poll(&d->send_op, d->to, POLLOUT);
			return;
		} else if (m == 0 || errno != EINTR) {
			finish(r, side_reason(d, false), d->from);
			return;
		}
	}
	/* a turn's worth: the shard's other sessions go first (these polls complete at once) */
	if (d->pipe_bytes)
		sp_op_poll(&d->send_op, d->to, POLLOUT);
	else
		sp_op_poll(&d->recv_op, d->from, POLLIN);
}

/* The direction streams: go on by splice. False (nothing changed) when the sockets
 * cannot be made non-blocking or no pipe is to be had: buffers then. */
static bool splice_start(struct sp_relay_dir *d)
{
	struct sp_relay *r = d->r;
	if (splice_off)
		return false;
	if (!r->nonblock) {
		int fu = fcntl(r->up.from, F_GETFL), fd = fcntl(r->down.from, F_GETFL);
		if (fu < 0 || fd < 0 || fcntl(r->up.from, F_SETFL, fu | O_NONBLOCK) < 0 ||
		    fcntl(r->down.from, F_SETFL, fd | O_NONBLOCK) < 0)
			return false;
		r->nonblock = true;
	}
	if (!pipe_get(d))
		return false;
	if (d->own) {
		pool_put(d->own);
		d->own = NULL;
	}
	d->recv_op.fn = on_readable;
	d->send_op.fn = on_writable;
	splice_turn(d);
	return true;
}

static void on_idle(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_relay *r = sp_container_of(op, struct sp_relay, idle.op);
	if (res < 0 || r->ended)
		return;
	uint64_t due = r->last_ns + r->idle_ns;
	if (sp_now_ns() >= due)
		finish(r, "idle timeout", -1);
	else
		sp_timer_arm(&r->idle, due);
}

static void dir_init(struct sp_relay *r, struct sp_relay_dir *d, struct sp_task *task, int from,
		     int to, uint64_t *bytes)
{
	d->r = r;
	d->from = from;
	d->to = to;
	d->bytes = bytes;
	d->bid = -1;
	d->queue = SP_BUFQ_INIT;
	d->pipe_rd = d->pipe_wr = -1;
	sp_op_init(&d->recv_op, task, on_recv);
	sp_op_init(&d->send_op, task, on_send);
	if (!r->use_ring)
		d->own = pool_get();
}

void sp_relay_start(struct sp_relay *r, struct sp_task *task, int client, int server,
		    uint64_t idle_ns, unsigned notsent_lowat, uint64_t *up_bytes,
		    uint64_t *down_bytes, sp_relay_end_fn end)
{
	r->shard = sp_task_shard(task);
	r->use_ring = sp_engine_features(sp_shard_engine(r->shard)) & SP_FEAT_BUF_RING;
	r->end = end;
	r->idle_ns = idle_ns;
	r->notsent_lowat = notsent_lowat;
	r->last_ns = sp_pass_ns();
	r->started = true;
	relays_live++;
	dir_init(r, &r->up, task, client, server, up_bytes);
	dir_init(r, &r->down, task, server, client, down_bytes);
	if (!r->use_ring && (!r->up.own || !r->down.own)) {
		finish(r, "out of memory", -1);
		return;
	}
	sp_timer_init(&r->idle, task, on_idle);
	if (idle_ns)
		sp_timer_arm(&r->idle, r->last_ns + idle_ns);
	dir_recv(&r->up);
	dir_recv(&r->down);
}

void sp_relay_release(struct sp_relay *r)
{
	if (!r->started)
		return;
	give_back(&r->up);
	give_back(&r->down);
	sp_bufq_recycle(r->shard, &r->up.queue);
	sp_bufq_recycle(r->shard, &r->down.queue);
	pipe_put(&r->up);
	pipe_put(&r->down);
	pool_put(r->up.own);
	pool_put(r->down.own);
	if (--relays_live == 0)
		pool_trim();
}
