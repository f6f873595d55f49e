/* SPDX-License-Identifier: MIT */
/*
 * files_body.c - bodies larger than FILES_CONTENT_MAX, moved with the file read and the
 * socket write overlapping, so the socket never waits for the disk side nor the other
 * way round. One op of each kind in flight at a time: file_op reads (or splices in),
 * send_op sends (or splices out), and sends go out in file order.
 *
 *   read+send  two halves of a FILES_CHUNK buffer: one is read into while the other is
 *              sent. The head goes out with the first half.
 *   splice     file -> pipe -> socket: splices in while the pipe has room, out while it
 *              holds bytes; the kernel moves page references, no copy on our side.
 *              (IORING_OP_SPLICE always runs on io_uring's worker threads: a big pipe
 *              keeps those hand-offs few.)
 *   sendfile   sendfile(2) on the shard, into the non-blocking socket until it is full,
 *              then a poll for room. io_uring has no sendfile op, and sendfile would
 *              block the shard on a disk read: so it is used only for ranges that
 *              cachestat(2) finds wholly in the page cache (or, without cachestat,
 *              mincore(2) on the cache entry's mapping), checked before each chunk;
 *              a range that is not goes on by read+send.
 *
 * A read or splice that finds the file shorter than promised ends the connection: the
 * Content-Length is already out.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "handlers/files.h"

#define HALF (FILES_CHUNK / 2)
#define MS 1000000ull

enum { FREE, READING, READY, SENDING };

static int body_fd(struct files_session *f)
{
	return f->entry ? files_entry_fd(f->entry) : f->fd;
}

static void send_progress(struct files_session *f)
{
	files_set_deadline(f, PH_SEND, f->fs->conf->send_timeout_ms * MS);
}

static const char *why(int res)
{
	return res == -ECANCELED ? "stopped" : res < 0 ? "io error" : "file changed";
}

/* ------------------------------------------------------------------------------------ */
/* read+send                                                                             */

static void rw_kick(struct files_session *f);

static void on_rw_read(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, file_op);
	(void)flags;
	if (f->closing)
		return;
	struct files_half *h = &f->half[f->read_idx];
	if (res <= 0) {
		files_fail(f, why(res));
		return;
	}
	h->len += (size_t)res;
	h->state = READY;
	f->body_off += (unsigned)res;
	f->body_left -= (unsigned)res;
	f->read_idx ^= 1;
	rw_kick(f);
}

static void on_rw_sent(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, send_op);
	(void)flags;
	if (f->closing)
		return;
	struct files_half *h = &f->half[f->send_idx];
	if (res <= 0) {
		files_fail(f, res == -ECANCELED ? "stopped" : "send error");
		return;
	}
	f->bytes_sent += (unsigned)res;
	f->s.bytes_out += (unsigned)res;
	h->off += (size_t)res;
	send_progress(f);
	if (h->off < h->len) { /* a short send: the rest first */
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_send(sqe, f->s.fd, h->buf + h->off, h->len - h->off, MSG_NOSIGNAL);
		sp_op_submit(&f->send_op, sqe);
		return;
	}
	h->state = FREE;
	h->len = h->off = 0;
	f->send_idx ^= 1;
	rw_kick(f);
}

/* Start what can start: the next read into a free half, the next send of a ready one. */
static void rw_kick(struct files_session *f)
{
	struct files_half *r = &f->half[f->read_idx], *s = &f->half[f->send_idx];
	if (!sp_op_busy(&f->file_op) && f->body_left && r->state == FREE) {
		size_t n = HALF - r->len; /* the first half may hold the head already */
		if (n > f->body_left)
			n = (size_t)f->body_left;
		r->state = READING;
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_read(sqe, body_fd(f), r->buf + r->len, (unsigned)n, f->body_off);
		sp_op_submit(&f->file_op, sqe);
	}
	if (!sp_op_busy(&f->send_op) && s->state == READY) {
		s->state = SENDING;
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_send(sqe, f->s.fd, s->buf, s->len, MSG_NOSIGNAL);
		sp_op_submit(&f->send_op, sqe);
	}
	if (!sp_op_busy(&f->file_op) && !sp_op_busy(&f->send_op) && !f->body_left)
		files_finish(f);
}

/* with_head: the head goes out with the first half (else it is out already) */
static void rw_start(struct files_session *f, bool with_head)
{
	if (!f->chunk && !(f->chunk = malloc(FILES_CHUNK))) {
		files_fail(f, "out of memory");
		return;
	}
	size_t head = with_head ? f->head_len_out : 0;
	f->half[0] = (struct files_half){ .buf = f->chunk, .len = head };
	f->half[1] = (struct files_half){ .buf = f->chunk + HALF };
	memcpy(f->chunk, f->w->head, head);
	f->read_idx = f->send_idx = 0;
	f->file_op.fn = on_rw_read;
	f->send_op.fn = on_rw_sent;
	send_progress(f);
	rw_kick(f);
}

/* ------------------------------------------------------------------------------------ */
/* splice                                                                                */

static void splice_kick(struct files_session *f);
static void on_splice_out(struct sp_op *op, int res, uint32_t flags);

static void on_splice_in(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, file_op);
	(void)flags;
	if (f->closing)
		return;
	if (res <= 0) {
		files_fail(f, why(res));
		return;
	}
	f->body_off += (unsigned)res;
	f->body_left -= (unsigned)res;
	f->pipe_bytes += (size_t)res;
	splice_kick(f);
}

static void sendfile_turn(struct files_session *f, bool checked);

/* The socket has room again: the body goes on the way it went (a pipe: splice). */
static void on_writable(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, send_op);
	(void)flags;
	if (f->closing)
		return;
	if (res < 0) {
		files_fail(f, res == -ECANCELED ? "stopped" : "send error");
		return;
	}
	if (f->pipe[1] >= 0) {
		f->send_op.fn = on_splice_out;
		splice_kick(f);
	} else {
		sendfile_turn(f, false);
	}
}

void files_poll(struct files_session *f, struct sp_op *op, sp_op_fn fn, unsigned events)
{
	op->fn = fn;
	sp_op_poll(op, f->s.fd, events);
}

/* The non-blocking socket is full: poll for room rather than hold a worker or the shard
 * (completes at once when there is some: other sessions of this shard get their turn). */
static void wait_writable(struct files_session *f)
{
	files_poll(f, &f->send_op, on_writable, POLLOUT);
}

static void on_splice_out(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, send_op);
	(void)flags;
	if (f->closing)
		return;
	if (res == -EAGAIN) {
		wait_writable(f);
		return;
	}
	if (res <= 0) {
		files_fail(f, res == -ECANCELED ? "stopped" : "send error");
		return;
	}
	f->bytes_sent += (unsigned)res;
	f->s.bytes_out += (unsigned)res;
	f->pipe_bytes -= (size_t)res;
	send_progress(f);
	splice_kick(f);
}

/* Ahead of a spliced or sendfile'd body the head goes out alone, from head_off, with
 * MSG_MORE: it waits to share a segment with the body's first bytes. */
static void send_head_rest(struct files_session *f)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, f->s.fd, f->w->head + f->head_off, f->head_len_out - f->head_off,
			   MSG_NOSIGNAL | MSG_MORE);
	sp_op_submit(&f->send_op, sqe);
}

/* A send of the head completed: true when all of it is out (the body goes next), false
 * when the session failed or the rest of the head is on its way. */
static bool head_sent(struct files_session *f, int res)
{
	if (f->closing)
		return false;
	if (res <= 0) {
		files_fail(f, res == -ECANCELED ? "stopped" : "send error");
		return false;
	}
	f->bytes_sent += (unsigned)res;
	f->s.bytes_out += (unsigned)res;
	f->head_off += (size_t)res;
	if (f->head_off < f->head_len_out) {
		send_head_rest(f);
		return false;
	}
	return true;
}

static void on_head_sent(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, send_op);
	(void)flags;
	if (!head_sent(f, res))
		return;
	f->send_op.fn = on_splice_out;
	splice_kick(f);
}

static void splice_kick(struct files_session *f)
{
	size_t room = f->pipe_size - f->pipe_bytes;
	if (!sp_op_busy(&f->file_op) && f->body_left && room >= f->pipe_size / 4) {
		size_t n = room < f->body_left ? room : (size_t)f->body_left;
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_splice(sqe, body_fd(f), (int64_t)f->body_off, f->pipe[1], -1,
				     (unsigned)n, 0);
		sp_op_submit(&f->file_op, sqe);
	}
	/* the head first: the send op is the head's until it is out */
	if (!sp_op_busy(&f->send_op) && f->head_off == f->head_len_out && f->pipe_bytes) {
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_splice(sqe, f->pipe[0], -1, f->s.fd, -1, (unsigned)f->pipe_bytes, 0);
		sp_op_submit(&f->send_op, sqe);
	}
	if (!sp_op_busy(&f->file_op) && !sp_op_busy(&f->send_op) && !f->body_left &&
	    !f->pipe_bytes && f->head_off == f->head_len_out)
		files_finish(f);
}

/* A pipe for this body only (closed with it): pipes count against a per-user budget
 * (pipe-user-pages-soft), so idle keep-alive connections must not hold one. False when
 * the kernel gives less than FILES_PIPE_MIN: read+send does better than a small pipe.
 * The socket becomes non-blocking for good (io_uring's own sends and receives do not
 * mind): a splice into a full socket then fails with EAGAIN, and we poll, instead of
 * holding one of io_uring's worker threads for as long as the client reads slowly;
 * sendfile on the shard needs it as well. */
static bool sock_nonblock(struct files_session *f)
{
	if (!f->sock_nonblock) {
		int fl = fcntl(f->s.fd, F_GETFL);
		if (fl < 0 || fcntl(f->s.fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return false;
		f->sock_nonblock = true;
	}
	return true;
}

/*
 * Before the first body larger than FILES_CONTENT_MAX: hold the bytes the socket keeps
 * unsent to notsent_lowat, so that we add to it as it drains instead of queueing
 * megabytes at once. With a deep queue, the kernel sends what the client's window admits
 * from the client's own receive path (the ACKs it sends clock the rest out), so over
 * loopback one core does both the sending and the receiving; and a client that falls
 * behind sees spurious tail-loss probes. Measured here, 1 MiB files with 50 and 500
 * connections and a 1 GiB download go 1.3x to 2x faster with 32 KiB. Bytes in flight
 * are not limited, only those not sent yet: a long fat link stays full. Once per
 * connection; failing to set it changes nothing else.
 */
static void sock_lowat(struct files_session *f)
{
	unsigned lowat = f->fs->conf->notsent_lowat;
	/* not for 64 KiB: it would go out in two turns where loopback takes it at once */
	if (f->sock_lowat || !lowat || f->body_left <= FILES_CONTENT_MAX)
		return;
	f->sock_lowat = true;
	setsockopt(f->s.fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

static bool make_pipe(struct files_session *f)
{
	if (!sock_nonblock(f))
		return false;
	if (pipe2(f->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		f->pipe[0] = f->pipe[1] = -1;
		return false;
	}
	int size = fcntl(f->pipe[1], F_SETPIPE_SZ, FILES_PIPE_SIZE);
	if (size < 0)
		size = fcntl(f->pipe[1], F_GETPIPE_SZ);
	if (size < FILES_PIPE_MIN) {
		files_close_pipe(f);
		return false;
	}
	f->pipe_size = (size_t)size;
	return true;
}

static void splice_start(struct files_session *f)
{
	f->pipe_bytes = 0;
	f->head_off = 0;
	f->file_op.fn = on_splice_in;
	f->send_op.fn = on_head_sent;
	send_progress(f);
	send_head_rest(f);
	splice_kick(f); /* the first splice in goes along with the head */
}

/* ------------------------------------------------------------------------------------ */
/* sendfile, for ranges in the page cache                                                */

#define SENDFILE_CHUNK (4u << 20) /* checked at once, and sent per turn of the loop */

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* Linux 6.5; the same number on every architecture */
#endif
struct sp_cachestat_range {
	uint64_t off, len;
};
struct sp_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* 0 while cachestat works (or is not asked yet), else why it does not: ENOSYS (before
 * Linux 6.5), EPERM or EACCES (a seccomp filter older than it, as systemd 252's
 * @system-service). Without it the page cache is asked with mincore on the mapping the
 * cache entry holds (files_cache.c); a body with no such mapping never goes by
 * sendfile: the shard cannot tell whether the call would wait for the disk. */
static _Atomic int cachestat_err;
static _Atomic bool cachestat_probed;

static bool cachestat_missing(int e)
{
	return e == ENOSYS || e == EPERM || e == EACCES;
}

int files_cachestat_probe(void)
{
	if (!atomic_load_explicit(&cachestat_probed, memory_order_acquire)) {
		struct sp_cachestat_range r = { 0, 1 };
		struct sp_cachestat cs;
		/* a bad fd: EBADF when the call exists; a filter refuses before looking */
		if (syscall(__NR_cachestat, -1, &r, &cs, 0) < 0 && cachestat_missing(errno))
			atomic_store(&cachestat_err, errno);
		atomic_store_explicit(&cachestat_probed, true, memory_order_release);
	}
	return atomic_load(&cachestat_err);
}

/* Without cachestat: mincore on the cache entry's mapping of the file. */
static bool mapped_pages_cached(const struct files_entry *e, uint64_t off, uint64_t len)
{
	size_t map_len;
	const char *map = e ? files_entry_map(e, &map_len) : NULL;
	if (!map || off + len > map_len)
		return false;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start = off / page * page;
	unsigned char vec[SENDFILE_CHUNK / 4096 + 1];
	size_t pages = (size_t)((off + len - start + page - 1) / page);
	if (pages > sizeof(vec) || mincore((void *)(map + start), off + len - start, vec) < 0)
		return false;
	for (size_t i = 0; i < pages; i++)
		if (!(vec[i] & 1))
			return false;
	return true;
}

/* Is [off, off + len) of the body wholly in the page cache? False when unsure. */
static bool cached(struct files_session *f, uint64_t off, uint64_t len)
{
	if (!len)
		return false;
	if (atomic_load_explicit(&cachestat_err, memory_order_relaxed))
		return mapped_pages_cached(f->entry, off, len);
	struct sp_cachestat_range r = { off, len };
	struct sp_cachestat cs;
	if (syscall(__NR_cachestat, body_fd(f), &r, &cs, 0) < 0) {
		if (cachestat_missing(errno))
			atomic_store(&cachestat_err, errno);
		return false;
	}
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pages = (off + len - 1) / page - off / page + 1;
	return cs.nr_cache >= pages;
}

/* The rest of the body is not (all) in the page cache: read it through io_uring. */
static void sendfile_fall_back(struct files_session *f)
{
	f->head_off = f->head_len_out;
	rw_start(f, false);
}

/* One turn: up to SENDFILE_CHUNK while the socket takes it, then wait for room.
 * checked: the caller just found this chunk in the page cache. */
static void sendfile_turn(struct files_session *f, bool checked)
{
	if (!f->body_left) {
		files_finish(f);
		return;
	}
	uint64_t n = f->body_left < SENDFILE_CHUNK ? f->body_left : SENDFILE_CHUNK;
	if (!checked && !cached(f, f->body_off, n)) {
		sendfile_fall_back(f);
		return;
	}
	uint64_t sent = 0;
	while (sent < n) {
		off_t off = (off_t)f->body_off;
		ssize_t k = sendfile(f->s.fd, body_fd(f), &off, (size_t)(n - sent));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			break;
		if (k <= 0) {
			files_fail(f, k == 0 ? "file changed" : "send error");
			return;
		}
		sent += (uint64_t)k;
		f->body_off += (uint64_t)k;
		f->body_left -= (uint64_t)k;
		f->bytes_sent += (unsigned)k;
		f->s.bytes_out += (unsigned)k;
	}
	if (sent)
		send_progress(f);
	if (!f->body_left) {
		files_finish(f);
		return;
	}
	wait_writable(f);
}

static void on_sendfile_head_sent(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, send_op);
	(void)flags;
	if (head_sent(f, res))
		sendfile_turn(f, false);
}

/*
 * A body of FILES_SENDFILE_MIN bytes or more whose first SENDFILE_CHUNK is in the page
 * cache: the head with send(MSG_MORE) and the body with sendfile, both straight from the
 * shard, which costs less than copying a small body into the socket from our cached
 * contents or splicing a large one through a pipe and io_uring's workers.
 * Returns false (nothing done) when its first chunk is not in the page cache.
 */
bool files_sendfile(struct files_session *f)
{
	uint64_t first = f->body_left < SENDFILE_CHUNK ? f->body_left : SENDFILE_CHUNK;
	if (!cached(f, f->body_off, first) || !sock_nonblock(f))
		return false;
	sock_lowat(f);
	ssize_t k = send(f->s.fd, f->w->head, f->head_len_out, MSG_NOSIGNAL | MSG_MORE | MSG_DONTWAIT);
	if (k < 0 && errno != EAGAIN && errno != EINTR) {
		files_fail(f, "send error");
		return true;
	}
	f->head_off = k > 0 ? (size_t)k : 0;
	f->bytes_sent += f->head_off;
	f->s.bytes_out += f->head_off;
	send_progress(f);
	f->send_op.fn = on_sendfile_head_sent;
	if (f->head_off < f->head_len_out) { /* the socket is full already: through the ring */
		send_head_rest(f);
		return true;
	}
	sendfile_turn(f, true);
	return true;
}

/*
 * A body larger than FILES_CONTENT_MAX that files_sendfile did not take: not in the page
 * cache, or `splice` is not auto. Splice moves it without a copy and blocks only
 * io_uring's workers on the disk; `auto` splices bodies up to FILES_SPLICE_MAX (a pipe
 * per session costs memory: longer ones are read and sent, in FILES_CHUNK pieces).
 */
void files_body_start(struct files_session *f)
{
	enum sp_files_splice mode = f->fs->conf->splice;
	bool splice = mode == SP_SPLICE_ON ||
		      (mode == SP_SPLICE_AUTO && f->body_left <= FILES_SPLICE_MAX);
	sock_lowat(f);
	if (splice && make_pipe(f))
		splice_start(f);
	else
		rw_start(f, true);
}
