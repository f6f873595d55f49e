/* SPDX-License-Identifier: MIT */
/*
 * control.c - the control socket: accepting, peer credentials, line framing and
 * buffered answers. Clients are non-blocking: a client that sends junk gets an error
 * answer, one that sends an over-long line is answered and closed, one that never reads
 * is closed once its unread answers pass OUT_MAX. None of it can stall the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control.h"
#include "daemon/daemon.h"
#include "engine/log.h"

#define LINE_MAX_BYTES 4096
#define OUT_MAX (4u << 20)
#define MAX_CLIENTS 64

struct client {
	int fd;
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
};

struct sp_control *sp_control_open(struct sp_daemon *d, const char *path, mode_t mode,
				   char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control.socket: path too long: %s", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);

	/* the directory (e.g. /run/spargiod outside systemd's RuntimeDirectory) */
	char *dir = strdup(path);
	if (dir && mkdir(dirname(dir), 0755) < 0 && errno != EEXIST)
		sp_log(SP_LOG_WARN, "control socket: cannot create %s: %s", dir, strerror(errno));
	free(dir);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control.socket %s exists and is not a socket", path);
			return NULL;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			snprintf(err, errlen, "control.socket %s: another spargiod is running there", path);
			return NULL;
		}
		if (probe >= 0)
			close(probe);
		unlink(path); /* stale, from a run that did not stop cleanly */
	}
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
	out[n++] = (struct pollfd){ .fd = c->fd, .events = c->n_clients < MAX_CLIENTS ? POLLIN : 0 };
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

static void accept_clients(struct sp_control *c)
{
	while (c->n_clients < MAX_CLIENTS) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		uid_t uid = (uid_t)-1;
		if (!peer_allowed(fd, &uid)) {
			static const char no[] = "{\"ok\":false,\"error\":\"permission denied\"}\n";
			sp_log(SP_LOG_WARN, "control: refused a client with uid %d", (int)uid);
			if (write(fd, no, sizeof(no) - 1) < 0) { /* best effort */ }
			close(fd);
			continue;
		}
		c->clients[c->n_clients++] = (struct client){ .fd = fd };
	}
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
		if (n > 0)
			cl->out_off += (size_t)n;
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
