/* SPDX-License-Identifier: MIT */
/*
 * control.c - the control socket: accepting, peer credentials, line framing and
 * buffered answers. Clients are non-blocking: a client that sends junk gets an error
 * answer, one that sends an over-long line is answered and closed, one that never reads
 * is closed once its unread answers pass OUT_MAX. None of it can stall the main thread.
 *
 * Nobody can hold the socket: a client that completes no command (and reads no answer)
 * for IDLE_MS is closed, a uid holds at most PER_UID clients (its oldest idle one makes
 * room for its next), and a full table makes room by closing the oldest idle client.
 * Refused clients are logged once per uid and window, then counted and summed up.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control.h"
#include "daemon/daemon.h"
#include "engine/engine.h"
#include "engine/log.h"

#define LINE_MAX_BYTES 4096
#define OUT_MAX (4u << 20)
#define MAX_CLIENTS 64
#define PER_UID 8
#define IDLE_MS 10000
#define ACCEPT_BURST 64 /* accepts per wakeup: a flood of connects cannot hold the thread */
#define REFUSED_WINDOW_MS 10000
#define REFUSED_UIDS 8

struct client {
	int fd;
	uid_t uid;
	uint64_t active_ns; /* accepted, served a command or sent answer bytes */
	char in[LINE_MAX_BYTES + 1];
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	bool closing;    /* close once the answers are written */
	size_t discard;  /* over-long line: bytes still to swallow before closing, so the
			  * client reads our answer instead of a reset */
};

struct sp_control {
	struct sp_daemon *d;
	int fd;
	char *path;
	dev_t dev;
	ino_t ino;
	struct client clients[MAX_CLIENTS];
	size_t n_clients;
	struct refused { /* per uid: the first refusal logged, the others counted */
		uid_t uid;
		uint64_t since_ns; /* 0: slot free */
		unsigned more;
	} refused[REFUSED_UIDS];
};

struct sp_control *sp_control_open(struct sp_daemon *d, const char *path, mode_t mode,
				   uid_t also, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control.socket: path too long: %s", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if (sp_control_place(path, mode, also, err, errlen) < 0)
		return NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0777 & ~mode); /* never briefly wider than asked */
	int ret = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || chmod(path, mode) < 0 || listen(fd, 64) < 0 || stat(path, &st) < 0) {
		snprintf(err, errlen, "control.socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	struct sp_control *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->d = d;
	c->fd = fd;
	c->path = strdup(path);
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	return c;
}

/* Log the first refusal of a uid in a window; count the others and sum them up when the
 * window ends (sp_control_tick) or its slot is needed for another uid. */
static void refused_flush(struct refused *r)
{
	if (r->more)
		sp_log(SP_LOG_WARN, "control: %u more refused from uid %d in the last %u s",
		       r->more, (int)r->uid, REFUSED_WINDOW_MS / 1000);
	r->since_ns = 0;
	r->more = 0;
}

static void client_close(struct sp_control *c, size_t i)
{
	close(c->clients[i].fd);
	free(c->clients[i].out);
	c->clients[i] = c->clients[--c->n_clients];
}

void sp_control_close(struct sp_control *c)
{
	if (!c)
		return;
	while (c->n_clients)
		client_close(c, 0);
	for (size_t i = 0; i < REFUSED_UIDS; i++)
		refused_flush(&c->refused[i]);
	close(c->fd);
	struct stat st; /* remove only our own socket file */
	if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	free(c->path);
	free(c);
}

size_t sp_control_pollfds(struct sp_control *c, struct pollfd *out, size_t max)
{
	size_t n = 0;
	if (!c || max == 0)
		return 0;
	out[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN }; /* a full table makes room */
	for (size_t i = 0; i < c->n_clients && n < max; i++) {
		struct client *cl = &c->clients[i];
		short ev = cl->closing && !cl->discard ? 0 : POLLIN;
		if (cl->out_len > cl->out_off)
			ev |= POLLOUT;
		out[n++] = (struct pollfd){ .fd = cl->fd, .events = ev };
	}
	return n;
}

/* Root, our own uid, or a member of our group (SO_PEERGROUPS: all its groups). */
static bool peer_allowed(int fd, uid_t *uid_out)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	*uid_out = cr.uid;
	if (cr.uid == 0 || cr.uid == geteuid() || cr.gid == getegid())
		return true;
	gid_t groups[256];
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t i = 0; i < len / sizeof(gid_t); i++)
			if (groups[i] == getegid())
				return true;
	return false;
}

static void queue(struct client *cl, const char *text)
{
	size_t n = strlen(text);
	if (cl->out_len - cl->out_off + n + 1 > OUT_MAX) {
		cl->closing = true; /* it does not read its answers */
		cl->out_len = cl->out_off;
		return;
	}
	if (cl->out_len + n + 1 > cl->out_cap) {
		if (cl->out_off) { /* drop what was sent before growing */
			memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
			cl->out_len -= cl->out_off;
			cl->out_off = 0;
		}
		size_t cap = cl->out_cap ? cl->out_cap : 4096;
		while (cap < cl->out_len + n + 1)
			cap *= 2;
		char *p = realloc(cl->out, cap);
		if (!p) {
			cl->closing = true;
			return;
		}
		cl->out = p;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, text, n);
	cl->out[cl->out_len + n] = '\n';
	cl->out_len += n + 1;
}

static void refused_note(struct sp_control *c, uid_t uid, uint64_t now)
{
	struct refused *slot = &c->refused[0];
	for (size_t i = 0; i < REFUSED_UIDS; i++) {
		struct refused *r = &c->refused[i];
		if (r->since_ns && r->uid == uid) {
			r->more++;
			return;
		}
		if (!r->since_ns || (slot->since_ns && r->since_ns < slot->since_ns))
			slot = r; /* a free slot, else the oldest window */
	}
	refused_flush(slot);
	*slot = (struct refused){ .uid = uid, .since_ns = now };
	sp_log(SP_LOG_WARN, "control: refused a client with uid %d (not root, nor the daemon's "
	       "user or group); further refusals of uid %d are summed up every %u s", (int)uid,
	       (int)uid, REFUSED_WINDOW_MS / 1000);
}

/* The client to close to make room: the least recently active one of uid (any uid when
 * uid is -1) that is not writing an answer; -1 when there is none. */
static ssize_t oldest_idle(const struct sp_control *c, uid_t uid)
{
	ssize_t best = -1;
	for (size_t i = 0; i < c->n_clients; i++) {
		const struct client *cl = &c->clients[i];
		if ((uid != (uid_t)-1 && cl->uid != uid) || cl->out_len > cl->out_off)
			continue;
		if (best < 0 || cl->active_ns < c->clients[best].active_ns)
			best = (ssize_t)i;
	}
	return best;
}

static void refuse(int fd, const char *answer)
{
	if (write(fd, answer, strlen(answer)) < 0) { /* best effort */ }
	close(fd);
}

static void accept_clients(struct sp_control *c)
{
	for (int k = 0; k < ACCEPT_BURST; k++) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		uint64_t now = sp_now_ns();
		uid_t uid = (uid_t)-1;
		if (!peer_allowed(fd, &uid)) {
			refused_note(c, uid, now);
			refuse(fd, "{\"ok\":false,\"error\":\"permission denied\"}\n");
			continue;
		}
		size_t mine = 0;
		for (size_t i = 0; i < c->n_clients; i++)
			mine += c->clients[i].uid == uid;
		ssize_t evict = mine >= PER_UID ? oldest_idle(c, uid)
			      : c->n_clients == MAX_CLIENTS ? oldest_idle(c, (uid_t)-1) : -2;
		if (evict == -1) {
			refuse(fd, "{\"ok\":false,\"error\":\"too many control clients busy; try "
				   "again\"}\n");
			continue;
		}
		if (evict >= 0) {
			sp_log(SP_LOG_DEBUG, "control: closed an idle client of uid %d to serve a new one",
			       (int)c->clients[evict].uid);
			client_close(c, (size_t)evict);
		}
		c->clients[c->n_clients++] = (struct client){ .fd = fd, .uid = uid, .active_ns = now };
	}
}

int sp_control_tick(struct sp_control *c)
{
	if (!c)
		return -1;
	uint64_t now = sp_now_ns(), next = UINT64_MAX, idle = IDLE_MS * 1000000ull;
	for (size_t i = 0; i < c->n_clients;) {
		uint64_t until = c->clients[i].active_ns + idle;
		if (now >= until) {
			client_close(c, i); /* the last one moved here: look at i again */
			continue;
		}
		if (until < next)
			next = until;
		i++;
	}
	for (size_t i = 0; i < REFUSED_UIDS; i++) {
		struct refused *r = &c->refused[i];
		if (!r->since_ns)
			continue;
		uint64_t until = r->since_ns + REFUSED_WINDOW_MS * 1000000ull;
		if (now >= until)
			refused_flush(r);
		else if (until < next)
			next = until;
	}
	return next == UINT64_MAX ? -1 : (int)((next - now) / 1000000u) + 1;
}

static void serve_lines(struct sp_control *c, struct client *cl)
{
	char *nl;
	while (!cl->closing && (nl = memchr(cl->in, '\n', cl->in_len))) {
		size_t len = (size_t)(nl - cl->in);
		if (len && cl->in[len - 1] == '\r')
			len--;
		char *answer = sp_control_answer(c->d, cl->in, len);
		queue(cl, answer ? answer : "{\"ok\":false,\"error\":\"out of memory\"}");
		free(answer);
		cl->active_ns = sp_now_ns(); /* after the answer: a reload may take a while */
		size_t used = (size_t)(nl - cl->in) + 1;
		memmove(cl->in, cl->in + used, cl->in_len - used);
		cl->in_len -= used;
	}
	if (cl->in_len >= LINE_MAX_BYTES) {
		queue(cl, "{\"ok\":false,\"error\":\"command line longer than 4096 bytes\"}");
		cl->closing = true;
		cl->discard = 1u << 20;
		cl->in_len = 0;
	}
}

/* Returns false when the client is done. */
static bool client_io(struct sp_control *c, struct client *cl, short revents)
{
	if ((revents & POLLIN) && cl->discard) {
		char sink[4096];
		ssize_t n = read(cl->fd, sink, sizeof(sink));
		if (n <= 0 || (size_t)n >= cl->discard)
			cl->discard = 0; /* EOF, error or enough: close when written */
		else
			cl->discard -= (size_t)n;
	} else if (revents & POLLIN) {
		ssize_t n = read(cl->fd, cl->in + cl->in_len, LINE_MAX_BYTES - cl->in_len);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			if (n == 0 && cl->in_len && cl->in_len < LINE_MAX_BYTES) {
				cl->in[cl->in_len++] = '\n'; /* a last command without newline */
				serve_lines(c, cl);
			}
			cl->closing = true;
		} else if (n > 0) {
			cl->in_len += (size_t)n;
			serve_lines(c, cl);
		}
	} else if (revents & (POLLHUP | POLLERR)) {
		cl->closing = true;
	}
	if (cl->out_len > cl->out_off) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		if (n > 0) {
			cl->out_off += (size_t)n;
			cl->active_ns = sp_now_ns(); /* a slow reader of a long answer is not idle */
		}
	}
	if (cl->closing && cl->out_off == cl->out_len && cl->discard) {
		shutdown(cl->fd, SHUT_WR); /* the answer is out: the client sees EOF */
		return true;
	}
	return !(cl->closing && cl->out_off == cl->out_len);
}

void sp_control_dispatch(struct sp_control *c, const struct pollfd *fds, size_t n)
{
	if (!c || n == 0)
		return;
	/* clients first, by fd: the array may shrink while we go */
	for (size_t k = 1; k < n; k++) {
		if (!fds[k].revents)
			continue;
		for (size_t i = 0; i < c->n_clients; i++) {
			if (c->clients[i].fd != fds[k].fd)
				continue;
			if (!client_io(c, &c->clients[i], fds[k].revents))
				client_close(c, i);
			break;
		}
	}
	if (fds[0].revents & POLLIN)
		accept_clients(c);
}
