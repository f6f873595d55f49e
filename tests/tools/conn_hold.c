/* SPDX-License-Identifier: MIT */
/*
 * conn_hold.c - many connections held open, for the memory benchmark (scripts/bench/memory)
 * and the tests of memory per connection; one thread, epoll, bounded in time.
 *
 *   conn_hold client --connect HOST:PORT --conns N [--sources IP[,IP...]] [--size B]
 *                    [--burst B] [--http PATH] [--max-seconds S]
 *   conn_hold echo --listen HOST:PORT[,HOST:PORT...] [--max-seconds S]
 *
 * client: opens N connections (bound to the source addresses in turn, so that more than a
 * port range's worth can reach one address), makes one exchange on each and prints
 * "open OK FAILED". An exchange: B bytes (--size, 64) sent and as many read back (an echo
 * behind), or with --http a GET of PATH and its response read (head, then a
 * Content-Length body). Then one command per line on stdin: "burst [B]" makes one more
 * exchange on every connection at once, of B bytes (default --burst, else --size), and
 * prints "burst OK FAILED MS"; "quit" or the end of stdin closes them all. After S seconds in all
 * (--max-seconds, 600) it prints "timeout" and exits 1. After a round with failures, stderr
 * says how they failed (connect, send, closed or reset before the answer, closed while held).
 * echo: sends back whatever comes on every connection to any of the addresses, until
 * killed or S seconds pass.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOURCES 64
#define CONNECTING_MAX 512 /* connects in progress at once */

static double t_end;
static char rbuf[1 << 16];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void check_time(void)
{
	if (now() > t_end) {
		printf("timeout\n");
		fflush(stdout);
		exit(1);
	}
}

/* ---------------------------------------------------------------------------------- */
/* client                                                                              */

enum { C_IDLE, C_CONNECTING, C_SENDING, C_HEAD, C_BODY, C_DEAD };

struct conn {
	int fd;
	uint8_t state;
	uint8_t crlf;     /* http head: how much of "\r\n\r\n" matched */
	uint8_t cl_match; /* http head: how much of "\ncontent-length:" matched */
	bool cl_digits;
	uint32_t off;     /* bytes sent of the request */
	uint64_t left;    /* bytes still to read (echo, body) */
	uint64_t cl;
};

static struct conn *conns;
static long nconns;
static const char *http_path;
static char *req;
static size_t req_len, size = 64, burst_size;
static char *pattern;
static size_t pattern_len;

/* The bytes an echo exchange sends: n of them, the same for every connection. */
static void pattern_grow(size_t n)
{
	if (n <= pattern_len)
		return;
	pattern = realloc(pattern, n);
	if (!pattern) {
		perror("conn_hold");
		exit(1);
	}
	for (size_t i = pattern_len; i < n; i++)
		pattern[i] = (char)('a' + i % 26);
	pattern_len = n;
}
static int ep;
static long busy; /* exchanges in flight */
static long failed;

/* why connections failed, said on stderr after a round that had failures */
enum why { W_CONNECT, W_SEND, W_CLOSED, W_RESET, W_HELD, W_OTHER, W_N };
static const char *const why_name[W_N] = { "connect", "send", "closed before the answer",
					   "reset", "closed while held", "other" };
static long whys[W_N];

static void why_say(const char *round)
{
	for (int i = 0; i < W_N; i++)
		if (whys[i])
			fprintf(stderr, "conn_hold: %s: %ld failed: %s\n", round, whys[i], why_name[i]);
	memset(whys, 0, sizeof(whys));
}

static void conn_fail(struct conn *c)
{
	if (c->state == C_DEAD)
		return;
	if (c->state != C_IDLE)
		busy--;
	failed++;
	close(c->fd);
	c->state = C_DEAD;
}

static void exchange_start(struct conn *c, size_t n)
{
	if (!http_path) {
		req_len = n;
		c->left = n;
	}
	c->off = 0;
	c->crlf = c->cl_match = 0;
	c->cl_digits = false;
	c->cl = 0;
	c->state = C_SENDING;
	busy++;
}

static void exchange_done(struct conn *c)
{
	c->state = C_IDLE;
	busy--;
}

/* Reads the head of an HTTP response byte by byte: its end and its Content-Length. Returns
 * the offset after the head in b, or -1 when the head goes on. */
static long http_head(struct conn *c, const char *b, size_t n)
{
	static const char cl_name[] = "\ncontent-length:";
	for (size_t i = 0; i < n; i++) {
		char ch = b[i];
		if (c->cl_digits) {
			if (ch >= '0' && ch <= '9')
				c->cl = c->cl * 10 + (uint64_t)(ch - '0');
			else if (ch != ' ')
				c->cl_digits = false;
		}
		if (c->cl_match == sizeof(cl_name) - 1) {
			c->cl_match = 0;
			c->cl_digits = true;
			c->cl = 0;
			if (ch >= '0' && ch <= '9')
				c->cl = (uint64_t)(ch - '0');
		} else if ((ch | 0x20) == cl_name[c->cl_match] || ch == cl_name[c->cl_match]) {
			c->cl_match++;
		} else {
			c->cl_match = ch == '\n';
		}
		static const char end[] = "\r\n\r\n";
		if (ch == end[c->crlf])
			c->crlf++;
		else
			c->crlf = ch == '\r';
		if (c->crlf == 4)
			return (long)i + 1;
	}
	return -1;
}

static void conn_progress(struct conn *c)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			whys[W_CONNECT]++;
			conn_fail(c);
			return;
		}
		c->state = C_SENDING;
	}
	while (c->state == C_SENDING) {
		const char *src = http_path ? req : pattern;
		ssize_t k = send(c->fd, src + c->off, req_len - c->off, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno != EAGAIN) {
				whys[W_SEND]++;
				conn_fail(c);
			}
			return;
		}
		c->off += (uint32_t)k;
		if (c->off == req_len)
			c->state = http_path ? C_HEAD : C_BODY;
	}
	while (c->state == C_HEAD || c->state == C_BODY) {
		size_t want = sizeof(rbuf);
		if (c->state == C_BODY && c->left < want)
			want = (size_t)c->left;
		if (c->state == C_BODY && !want) {
			exchange_done(c);
			return;
		}
		ssize_t k = recv(c->fd, rbuf, want, 0);
		if (k <= 0) {
			if (k < 0 && errno == EAGAIN)
				return;
			whys[k == 0 ? W_CLOSED : errno == ECONNRESET ? W_RESET : W_OTHER]++;
			conn_fail(c);
			return;
		}
		if (c->state == C_HEAD) {
			long at = http_head(c, rbuf, (size_t)k);
			if (at < 0)
				continue;
			c->state = C_BODY;
			c->left = c->cl - ((uint64_t)k - (uint64_t)at); /* one response at a time */
		} else {
			c->left -= (uint64_t)k;
		}
		if (c->state == C_BODY && !c->left)
			exchange_done(c);
	}
}

static void client_loop(void)
{
	struct epoll_event ev[256];
	while (busy > 0) {
		check_time();
		int n = epoll_wait(ep, ev, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = &conns[ev[i].data.u32];
			if (c->state != C_IDLE && c->state != C_DEAD)
				conn_progress(c);
			else if (c->state == C_IDLE && (ev[i].events & (EPOLLHUP | EPOLLRDHUP))) {
				whys[W_HELD]++;
				conn_fail(c);
			}
		}
	}
}

static int client(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "conns", required_argument, NULL, 'n' },
		{ "sources", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 's' },
		{ "burst", required_argument, NULL, 'b' },
		{ "http", required_argument, NULL, 'H' },
		{ "max-seconds", required_argument, NULL, 't' },
		{ 0 },
	};
	struct sockaddr_in target, src[MAX_SOURCES];
	int nsrc = 0, c;
	const char *addr = NULL;
	double secs = 600;
	while ((c = getopt_long(argc, argv, "c:n:S:s:b:H:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': addr = optarg; break;
		case 'n': nconns = atol(optarg); break;
		case 'S':
			for (char *tok = strtok(optarg, ","); tok && nsrc < MAX_SOURCES;
			     tok = strtok(NULL, ",")) {
				memset(&src[nsrc], 0, sizeof(src[nsrc]));
				src[nsrc].sin_family = AF_INET;
				if (inet_pton(AF_INET, tok, &src[nsrc].sin_addr) != 1)
					return 2;
				nsrc++;
			}
			break;
		case 's': size = (size_t)atol(optarg); break;
		case 'b': burst_size = (size_t)atol(optarg); break;
		case 'H': http_path = optarg; break;
		case 't': secs = atof(optarg); break;
		default: return 2;
		}
	}
	if (!addr || parse_addr(addr, &target) < 0 || nconns < 1 || size < 1) {
		fprintf(stderr, "usage: conn_hold client --connect HOST:PORT --conns N "
				"[--sources IP,..] [--size B] [--burst B] [--http PATH] "
				"[--max-seconds S]\n");
		return 2;
	}
	t_end = now() + secs;
	if (!burst_size)
		burst_size = size;
	pattern_grow(size);
	if (http_path) {
		if (asprintf(&req, "GET %s HTTP/1.1\r\nHost: b\r\n\r\n", http_path) < 0)
			return 1;
		req_len = strlen(req);
	}
	conns = calloc((size_t)nconns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);

	/* open them all, at most CONNECTING_MAX connects at a time */
	long next = 0;
	while (next < nconns || busy > 0) {
		while (next < nconns && busy < CONNECTING_MAX) {
			struct conn *cn = &conns[next];
			cn->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (cn->fd < 0) {
				fprintf(stderr, "conn_hold: socket: %s\n", strerror(errno));
				cn->state = C_DEAD;
				failed += nconns - next;
				for (long i = next + 1; i < nconns; i++)
					conns[i].state = C_DEAD;
				next = nconns;
				break;
			}
			int one = 1;
			setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (nsrc) {
				setsockopt(cn->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
					   sizeof(one));
				bind(cn->fd, (struct sockaddr *)&src[next % nsrc], sizeof(src[0]));
			}
			struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
						 .data.u32 = (uint32_t)next };
			epoll_ctl(ep, EPOLL_CTL_ADD, cn->fd, &e);
			exchange_start(cn, size);
			if (connect(cn->fd, (struct sockaddr *)&target, sizeof(target)) < 0 &&
			    errno != EINPROGRESS) {
				whys[W_CONNECT]++;
				conn_fail(cn);
			} else {
				cn->state = C_CONNECTING;
			}
			next++;
		}
		check_time();
		struct epoll_event ev[256];
		int n = epoll_wait(ep, ev, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *cn = &conns[ev[i].data.u32];
			if (cn->state != C_IDLE && cn->state != C_DEAD)
				conn_progress(cn);
		}
	}
	why_say("open");
	printf("open %ld %ld\n", nconns - failed, failed);
	fflush(stdout);

	char line[64];
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "burst", 5) != 0)
			break;
		size_t n = line[5] == ' ' ? (size_t)atol(line + 6) : burst_size;
		if (!n)
			n = burst_size;
		pattern_grow(n);
		double t0 = now();
		long before = failed;
		for (long i = 0; i < nconns; i++) {
			if (conns[i].state != C_IDLE)
				continue;
			exchange_start(&conns[i], n);
			conn_progress(&conns[i]);
		}
		client_loop();
		why_say("burst");
		printf("burst %ld %ld %.0f\n", nconns - failed, failed - before, (now() - t0) * 1e3);
		fflush(stdout);
	}
	return 0;
}

/* ---------------------------------------------------------------------------------- */
/* echo server                                                                         */

struct pend {
	char *buf;
	uint32_t len, off;
};

static int echo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "max-seconds", required_argument, NULL, 't' },
		{ 0 },
	};
	char *listen_arg = NULL;
	double secs = 600;
	int c;
	while ((c = getopt_long(argc, argv, "l:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_arg = optarg; break;
		case 't': secs = atof(optarg); break;
		default: return 2;
		}
	}
	if (!listen_arg) {
		fprintf(stderr, "usage: conn_hold echo --listen HOST:PORT[,..] [--max-seconds S]\n");
		return 2;
	}
	t_end = now() + secs;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	size_t nfd = rl.rlim_cur > (1u << 22) ? (1u << 22) : rl.rlim_cur;
	struct pend *pend = calloc(nfd, sizeof(*pend));
	ep = epoll_create1(EPOLL_CLOEXEC);
	int lfds[MAX_SOURCES], nl = 0;
	for (char *tok = strtok(listen_arg, ","); tok && nl < MAX_SOURCES; tok = strtok(NULL, ",")) {
		struct sockaddr_in a;
		int one = 1;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (parse_addr(tok, &a) < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(fd, 4096) < 0) {
			fprintf(stderr, "conn_hold: listen %s: %s\n", tok, strerror(errno));
			return 1;
		}
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = (uint64_t)1 << 32 | (uint32_t)fd };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
		lfds[nl++] = fd;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		check_time();
		struct epoll_event ev[256];
		int n = epoll_wait(ep, ev, 256, 500);
		for (int i = 0; i < n; i++) {
			int fd = (int)(uint32_t)ev[i].data.u64;
			if (ev[i].data.u64 >> 32) {
				int cfd;
				while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if ((size_t)cfd >= nfd) {
						close(cfd);
						continue;
					}
					int one = 1;
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLET,
								 .data.u64 = (uint32_t)cfd };
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e);
				}
				continue;
			}
			struct pend *p = &pend[fd];
			for (;;) {
				if (p->buf) { /* what the peer did not take yet, first */
					ssize_t k = send(fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);
					if (k < 0 && errno == EAGAIN)
						break;
					if (k <= 0)
						goto dead;
					p->off += (uint32_t)k;
					if (p->off < p->len)
						break;
					free(p->buf);
					p->buf = NULL;
				}
				ssize_t k = recv(fd, rbuf, sizeof(rbuf), 0);
				if (k < 0 && errno == EAGAIN)
					break;
				if (k <= 0)
					goto dead;
				ssize_t s = send(fd, rbuf, (size_t)k, MSG_NOSIGNAL);
				if (s < 0 && errno == EAGAIN)
					s = 0;
				if (s < 0)
					goto dead;
				if (s < k) {
					p->len = (uint32_t)(k - s);
					p->off = 0;
					p->buf = malloc(p->len);
					memcpy(p->buf, rbuf + s, p->len);
				}
			}
			continue;
dead:
			free(p->buf);
			p->buf = NULL;
			close(fd);
		}
	}
	(void)lfds;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "client") == 0)
		return client(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "echo") == 0)
		return echo(argc - 1, argv + 1);
	fprintf(stderr, "usage: conn_hold client|echo ...\n");
	return 2;
}
