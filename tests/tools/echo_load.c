/* SPDX-License-Identifier: MIT */
/*
 * echo_load.c - a bounded echo load generator for the integration tests.
 *
 *   echo_load --connect HOST:PORT|unix:PATH [--conns N] [--concurrency C]
 *             [--size BYTES] [--requests R] [--max-seconds S] [--until-file F]
 *
 * C threads each open a connection, send SIZE bytes, read them back, check them (R times
 * on the same connection, default 1) and close; N connections in all, or until F exists,
 * and never longer than S seconds. Prints "ok=.. failed=.. refused=.. reset=..
 * timeout=.. mismatch=.. other=.. requests=.." and exits 0 only when every connection
 * succeeded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_storage target;
static socklen_t target_len;
static long total = 1000, size = 64, max_seconds = 60, per_conn = 1;
static const char *until_file;
static _Atomic long started, ok, refused, reset, timeouts, mismatch, other, requests;
static double t_end;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_target(const char *s)
{
	memset(&target, 0, sizeof(target));
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&target;
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", s + 5);
		target_len = sizeof(*sun);
		return 0;
	}
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = 0;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&target;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(colon + 1));
		target_len = sizeof(*in6);
		return inet_pton(AF_INET6, h, &in6->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *in = (struct sockaddr_in *)&target;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)atoi(colon + 1));
	target_len = sizeof(*in);
	return inet_pton(AF_INET, h, &in->sin_addr) == 1 ? 0 : -1;
}

static void count_errno(int e)
{
	if (e == ECONNREFUSED || e == ENOENT)
		refused++;
	else if (e == ECONNRESET || e == EPIPE)
		reset++;
	else if (e == EAGAIN || e == ETIMEDOUT)
		timeouts++;
	else
		other++;
}

static void one(char *out, char *in)
{
	int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	if (fd < 0) {
		count_errno(errno);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&target, target_len) < 0) {
		count_errno(errno);
		close(fd);
		return;
	}
	for (long r = 0; r < per_conn; r++) {
		if (send(fd, out, (size_t)size, MSG_NOSIGNAL) != size) {
			count_errno(errno);
			close(fd);
			return;
		}
		long got = 0;
		while (got < size) {
			ssize_t n = recv(fd, in + got, (size_t)(size - got), 0);
			if (n <= 0) {
				if (n == 0)
					reset++; /* closed before echoing everything */
				else
					count_errno(errno);
				close(fd);
				return;
			}
			got += n;
		}
		if (memcmp(in, out, (size_t)size) != 0) {
			mismatch++;
			close(fd);
			return;
		}
		requests++;
	}
	close(fd);
	ok++;
}

static void *worker(void *arg)
{
	char *out = malloc((size_t)size), *in = malloc((size_t)size);
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (now() < t_end && atomic_fetch_add(&started, 1) < total) {
		if (until_file && access(until_file, F_OK) == 0)
			break;
		for (long i = 0; i < size; i++)
			out[i] = (char)('a' + rand_r(&seed) % 26);
		one(out, in);
	}
	free(out);
	free(in);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "conns", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'j' },
		{ "size", required_argument, NULL, 's' },
		{ "requests", required_argument, NULL, 'r' },
		{ "max-seconds", required_argument, NULL, 't' },
		{ "until-file", required_argument, NULL, 'u' },
		{ 0 },
	};
	long conc = 4;
	int c;
	const char *addr = NULL;
	while ((c = getopt_long(argc, argv, "c:n:j:s:r:t:u:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': addr = optarg; break;
		case 'n': total = atol(optarg); break;
		case 'j': conc = atol(optarg); break;
		case 's': size = atol(optarg); break;
		case 'r': per_conn = atol(optarg); break;
		case 't': max_seconds = atol(optarg); break;
		case 'u': until_file = optarg; break;
		default: return 2;
		}
	}
	if (!addr || parse_target(addr) < 0 || conc < 1 || size < 1 || per_conn < 1) {
		fprintf(stderr, "usage: echo_load --connect HOST:PORT|unix:PATH [--conns N] "
				"[--concurrency C] [--size B] [--requests R] [--max-seconds S] "
				"[--until-file F]\n");
		return 2;
	}
	t_end = now() + (double)max_seconds;
	pthread_t th[256];
	if (conc > 256)
		conc = 256;
	for (long i = 0; i < conc; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (long i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	long failed = refused + reset + timeouts + mismatch + other;
	printf("ok=%ld failed=%ld refused=%ld reset=%ld timeout=%ld mismatch=%ld other=%ld "
	       "requests=%ld\n",
	       (long)ok, failed, (long)refused, (long)reset, (long)timeouts, (long)mismatch,
	       (long)other, (long)requests);
	return failed == 0 && ok > 0 ? 0 : 1;
}
