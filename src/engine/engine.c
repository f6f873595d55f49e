/* SPDX-License-Identifier: MIT */
/*
 * engine.c - engine lifecycle (create, stop, join, destroy) and cross-shard messages.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/shard.h"

__thread struct sp_shard *sp_tls_shard;
#if defined(__SANITIZE_THREAD__)
_Atomic unsigned sp_fence_word;
#endif

void sp_bug(const char *file, int line, const char *func, const char *cond)
{
	/* straight to stderr, unbuffered: the async logger would not get to write it */
	struct sp_shard *sh = sp_tls_shard;
	fprintf(stderr, "spargiod: BUG at %s:%d (%s), shard %d: %s\n", file, line, func,
		sh ? (int)sh->idx : -1, cond);
	abort();
}

#define START_GO UINT32_MAX
#define START_ABORT (UINT32_MAX - 1)

void sp_engine_config_defaults(struct sp_engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->steal = true;
	cfg->ring_entries = 1024;
	cfg->buf_size = 16384;
	cfg->helpers = 2;
	cfg->idle_spin_us = 0;
}

uint64_t sp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sp_pass_ns(void)
{
	struct sp_shard *sh = sp_tls_shard;
	uint64_t t = sh ? atomic_load_explicit(&sh->pass_start, memory_order_relaxed) : 0;
	return t ? t : sp_now_ns(); /* 0: before the shard's first pass */
}

/* Pin shard n to the nth CPU the process may run on (taskset, a cpuset cgroup), in turn:
 * a CPU outside that set would be refused, or leave shards doubled up on one core. */
static void pin_thread(pthread_t th, unsigned n)
{
	cpu_set_t allowed, set;
	int cpu = -1;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) > 0) {
		unsigned k = n % (unsigned)CPU_COUNT(&allowed);
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &allowed) && k-- == 0) {
				cpu = c;
				break;
			}
	}
	if (cpu < 0) {
		sp_log(SP_LOG_WARN, "cannot read the CPUs allowed: shard %u not pinned", n);
		return;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(th, sizeof(set), &set))
		sp_log(SP_LOG_WARN, "cannot pin shard %u to CPU %d", n, cpu);
}

static void release_start(struct sp_engine *eng, unsigned verdict)
{
	pthread_mutex_lock(&eng->start_lock);
	eng->started = verdict;
	pthread_cond_broadcast(&eng->start_cond);
	pthread_mutex_unlock(&eng->start_lock);
}

static void free_engine(struct sp_engine *eng)
{
	for (unsigned i = 0; i < eng->nshards; i++)
		free(eng->shards[i]);
	free(eng->shards);
	if (eng->ext_ring_ok)
		io_uring_queue_exit(&eng->ext_ring);
	pthread_mutex_destroy(&eng->ext_lock);
	pthread_mutex_destroy(&eng->start_lock);
	pthread_cond_destroy(&eng->start_cond);
	free(eng);
}

int sp_engine_create(const struct sp_engine_config *cfg, struct sp_engine **out)
{
	struct sp_engine *eng = calloc(1, sizeof(*eng));
	if (!eng)
		return -ENOMEM;
	eng->cfg = *cfg;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	eng->nshards = cfg->shards ? cfg->shards : (unsigned)ncpu;
	if (!eng->cfg.ring_entries)
		eng->cfg.ring_entries = 1024;
	if (!eng->cfg.cq_entries)
		eng->cfg.cq_entries = eng->cfg.ring_entries * 4;
	if (!eng->cfg.helpers)
		eng->cfg.helpers = 2;
	pthread_mutex_init(&eng->ext_lock, NULL);
	pthread_mutex_init(&eng->start_lock, NULL);
	pthread_cond_init(&eng->start_cond, NULL);

	int ret = io_uring_queue_init(64, &eng->ext_ring, 0);
	if (ret < 0) {
		if (ret == -EPERM || ret == -ENOSYS)
			sp_log(SP_LOG_ERR, "io_uring is not permitted here (%s): a seccomp "
			       "profile (container runtime?) blocks it", strerror(-ret));
		free_engine(eng);
		return ret;
	}
	eng->ext_ring_ok = true;

	eng->shards = calloc(eng->nshards, sizeof(*eng->shards));
	if (!eng->shards) {
		free_engine(eng);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < eng->nshards; i++) {
		/* one allocation per shard, aligned so shards share no cache line */
		if (posix_memalign((void **)&eng->shards[i], 128, sizeof(struct sp_shard))) {
			free_engine(eng);
			return -ENOMEM;
		}
		memset(eng->shards[i], 0, sizeof(struct sp_shard));
		eng->shards[i]->eng = eng;
		eng->shards[i]->idx = i;
	}

	/* shard threads start with every signal blocked: the daemon takes them by signalfd */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	unsigned created = 0;
	for (; created < eng->nshards; created++) {
		struct sp_shard *sh = eng->shards[created];
		if (pthread_create(&sh->thread, NULL, sp_shard_main, sh)) {
			ret = -EAGAIN;
			break;
		}
		char name[16]; /* what top -H and perf show */
		snprintf(name, sizeof(name), "sp-shard-%hu", (unsigned short)created);
		pthread_setname_np(sh->thread, name);
		if (cfg->pin_cpus)
			pin_thread(sh->thread, created);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	pthread_mutex_lock(&eng->start_lock);
	while (eng->started < created)
		pthread_cond_wait(&eng->start_cond, &eng->start_lock);
	pthread_mutex_unlock(&eng->start_lock);
	for (unsigned i = 0; i < created && ret == 0; i++)
		ret = eng->shards[i]->setup_err;
	if (ret == 0)
		ret = sp_helpers_start(eng);
	if (ret < 0) {
		if (ret == -EPERM || ret == -ENOSYS)
			sp_log(SP_LOG_ERR, "io_uring is not permitted here (%s): a seccomp "
			       "profile (container runtime?) blocks it", strerror(-ret));
		else
			sp_log(SP_LOG_ERR, "engine start failed: %s", strerror(-ret));
		release_start(eng, START_ABORT);
		for (unsigned i = 0; i < created; i++)
			pthread_join(eng->shards[i]->thread, NULL);
		free_engine(eng);
		return ret;
	}
	eng->features = eng->shards[0]->features;
	for (unsigned i = 1; i < eng->nshards; i++)
		eng->features &= eng->shards[i]->features;
	sp_ring_log_features(eng);
	release_start(eng, START_GO);
	*out = eng;
	return 0;
}


void sp_engine_stop(struct sp_engine *eng)
{
	if (atomic_exchange(&eng->stopping, true))
		return;
	for (unsigned i = 0; i < eng->nshards; i++) {
		struct sp_shard *sh = eng->shards[i];
		if (sh != sp_tls_shard)
			sp_shard_doorbell(sh);
	}
}

void sp_engine_join(struct sp_engine *eng)
{
	for (unsigned i = 0; i < eng->nshards; i++)
		pthread_join(eng->shards[i]->thread, NULL);
	sp_helpers_stop(eng);
}

void sp_engine_destroy(struct sp_engine *eng)
{
	if (eng)
		free_engine(eng);
}

unsigned sp_engine_nshards(const struct sp_engine *eng)
{
	return eng->nshards;
}

struct sp_shard *sp_engine_shard(struct sp_engine *eng, unsigned i)
{
	return i < eng->nshards ? eng->shards[i] : NULL;
}

unsigned sp_engine_features(const struct sp_engine *eng)
{
	return eng->features;
}

bool sp_engine_stopping(const struct sp_engine *eng)
{
	return atomic_load(&eng->stopping);
}

bool sp_engine_op_supported(const struct sp_engine *eng, unsigned op)
{
	return op < 256 && eng->ops[op];
}

struct sp_shard *sp_shard_current(void)
{
	return sp_tls_shard;
}

unsigned sp_shard_index(const struct sp_shard *sh)
{
	return sh->idx;
}

struct sp_engine *sp_shard_engine(struct sp_shard *sh)
{
	return sh->eng;
}

/* ------------------------------------------------------------------------------------ */
/* Messages                                                                              */

static void count_sent(struct sp_shard *target)
{
	struct sp_shard *self = sp_tls_shard;

	/* counted before the message can arrive: the shutdown census needs sent >= received */
	if (self && self->eng == target->eng)
		st_add(self, ST_MSGS_SENT, 1);
	else
		atomic_fetch_add(&target->eng->ext_sent, 1);
}

void sp_msg_post(struct sp_shard *target, struct sp_msg *m, void (*fn)(struct sp_msg *))
{
	m->fn = fn;
	m->target = target;
	count_sent(target);
	sp_mpsc_push(&target->inject, m);
	sp_shard_notify(target);
}

void sp_msg_send(struct sp_shard *target, struct sp_msg *m, void (*fn)(struct sp_msg *))
{
	m->fn = fn;
	m->target = target;
	count_sent(target);
	/* release: pairs with the acquire in the receiver's CQE handler */
	atomic_store_explicit(&m->next, NULL, memory_order_release);
	sp_ring_msg(target, sp_ud(m, SP_TAG_MSG), 0, sp_ud(m, SP_TAG_SENDFAIL));
}
