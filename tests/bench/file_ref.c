/* SPDX-License-Identifier: MIT */
/*
 * file_ref.c - the machine's ceiling for serving one file over loopback, for
 * scripts/bench/files: a tiny blocking HTTP/1.1 server, one connection at a time, that
 * answers every request head with the whole file sent by one of three methods:
 *   sendfile   sendfile(2) from the file to the socket
 *   splice     splice(2) file -> pipe -> socket (1 MiB pipe)
 *   rw         pread(2) into a 256 KiB buffer, then send(2)
 * each either with the socket's defaults or, METHOD-lowat, with TCP_NOTSENT_LOWAT at
 * 32 KiB (spargiod's default: a short unsent queue lets the sender and the receiver run
 * on two cores over loopback, where a deep one has the receiver's ACKs clock the sending
 * out on its own core).
 * Nothing else: no parsing beyond the empty line, no headers but Content-Length. It is
 * what the kernel can do with one sending thread, the number spargiod's download rate is
 * held to.
 *
 *   file_ref PORT FILE METHOD
 */
#ifndef _GNU_SOURCE /* the build defines it; a bare `cc file_ref.c` does not */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static int send_all(int s, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(s, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int by_sendfile(int s, int fd, off_t size)
{
	off_t off = 0;
	while (off < size) {
		ssize_t w = sendfile(s, fd, &off, (size_t)(size - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
	}
	return 0;
}

static int by_splice(int s, int fd, off_t size, int p[2])
{
	loff_t off = 0;
	while (off < size) {
		ssize_t in = splice(fd, &off, p[1], NULL, (size_t)(size - off), SPLICE_F_MOVE);
		if (in <= 0)
			return -1;
		while (in > 0) {
			ssize_t out = splice(p[0], NULL, s, NULL, (size_t)in, SPLICE_F_MOVE);
			if (out <= 0)
				return -1;
			in -= out;
		}
	}
	return 0;
}

static int by_rw(int s, int fd, off_t size, char *buf)
{
	off_t off = 0;
	while (off < size) {
		ssize_t r = pread(fd, buf, CHUNK, off);
		if (r <= 0)
			return -1;
		if (send_all(s, buf, (size_t)r))
			return -1;
		off += r;
	}
	return 0;
}

/* Read until the end of a request head; 0 at EOF. */
static int read_head(int s, char *buf, size_t cap, size_t *have)
{
	for (;;) {
		char *end = memmem(buf, *have, "\r\n\r\n", 4);
		if (end) {
			size_t used = (size_t)(end + 4 - buf);
			memmove(buf, buf + used, *have - used);
			*have -= used;
			return 1;
		}
		if (*have == cap)
			return -1;
		ssize_t r = recv(s, buf + *have, cap - *have, 0);
		if (r <= 0)
			return 0;
		*have += (size_t)r;
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: file_ref PORT FILE sendfile|splice|rw[-lowat]\n");
		return 2;
	}
	char method[16];
	snprintf(method, sizeof(method), "%s", argv[3]);
	char *suffix = strstr(method, "-lowat");
	int lowat = suffix ? 32 * 1024 : 0;
	if (suffix)
		*suffix = '\0';
	signal(SIGPIPE, SIG_IGN); /* a client that leaves mid-file: sendfile and splice get EPIPE */
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(argv[2]);
		return 1;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 64) < 0) {
		perror("bind");
		return 1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < 0) {
		perror("pipe");
		return 1;
	}
	char *buf = malloc(CHUNK), head[128], req[8192];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n",
			  (long long)st.st_size);
	for (;;) {
		int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			continue;
		if (lowat)
			setsockopt(s, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
		size_t have = 0;
		while (read_head(s, req, sizeof(req), &have) == 1) {
			int ret = send_all(s, head, (size_t)hl);
			if (!ret && !strcmp(method, "sendfile"))
				ret = by_sendfile(s, fd, st.st_size);
			else if (!ret && !strcmp(method, "splice"))
				ret = by_splice(s, fd, st.st_size, p);
			else if (!ret)
				ret = by_rw(s, fd, st.st_size, buf);
			if (ret)
				break;
		}
		close(s);
	}
}
