/* SPDX-License-Identifier: MIT */
/*
 * conn_rate.c - new-connection rate and latency, for scripts/bench/exec.
 *
 *   conn_rate --connect HOST:PORT [--seconds S] [--concurrency C] [--size B]
 *
 * C threads, each in a loop: connect, send B bytes (16), read them back, close. Every
 * exchange is timed from connect to close. Prints one line:
 *   conns_per_s=N p50_us=N p99_us=N ok=N failed=N
 * A failed exchange (refused, reset, short or wrong echo) is counted, not retried.
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
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static long size = 16;
static double t_end;
static _Atomic long failed;

struct worker {
	pthread_t th;
	uint32_t *lat_us; /* one per successful exchange */
	size_t n, cap;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exchange(const char *out, char *in)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	int ok = -1;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&target, sizeof(target)) == 0 &&
	    send(fd, out, (size_t)size, MSG_NOSIGNAL) == size) {
		long got = 0;
		ssize_t n = 1;
		while (got < size && (n = recv(fd, in + got, (size_t)(size - got), 0)) > 0)
			got += n;
		ok = got == size && !memcmp(in, out, (size_t)size) ? 0 : -1;
	}
	close(fd);
	return ok;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	char out[4096], in[4096];
	memset(out, 'x', sizeof(out));
	while (now() < t_end) {
		double t0 = now();
		if (exchange(out, in) < 0) {
			failed++;
			continue;
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 65536;
			w->lat_us = realloc(w->lat_us, w->cap * sizeof(*w->lat_us));
			if (!w->lat_us)
				abort();
		}
		w->lat_us[w->n++] = (uint32_t)((now() - t0) * 1e6);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 't' },
		{ "concurrency", required_argument, NULL, 'j' },
		{ "size", required_argument, NULL, 's' },
		{ 0 },
	};
	double secs = 5;
	long conc = 8;
	const char *addr = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "c:t:j:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': addr = optarg; break;
		case 't': secs = atof(optarg); break;
		case 'j': conc = atol(optarg); break;
		case 's': size = atol(optarg); break;
		default: return 2;
		}
	}
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	char host[64];
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || conc < 1 || conc > 256 ||
	    size < 1 || size > 4096) {
		fprintf(stderr, "usage: conn_rate --connect HOST:PORT [--seconds S] "
				"[--concurrency C] [--size B]\n");
		return 2;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &target.sin_addr) != 1)
		return 2;

	struct worker *w = calloc((size_t)conc, sizeof(*w));
	double start = now();
	t_end = start + secs;
	for (long i = 0; i < conc; i++)
		pthread_create(&w[i].th, NULL, run, &w[i]);
	size_t total = 0;
	for (long i = 0; i < conc; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].n;
	}
	double elapsed = now() - start;
	uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
	size_t k = 0;
	for (long i = 0; i < conc; i++) {
		memcpy(all + k, w[i].lat_us, w[i].n * sizeof(*all));
		k += w[i].n;
		free(w[i].lat_us);
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	printf("conns_per_s=%.0f p50_us=%u p99_us=%u ok=%zu failed=%ld\n", (double)total / elapsed,
	       total ? all[total / 2] : 0, total ? all[total * 99 / 100] : 0, total,
	       (long)failed);
	free(all);
	free(w);
	return total && !failed ? 0 : 1;
}
