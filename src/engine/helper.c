/* SPDX-License-Identifier: MIT */
/*
 * helper.c - a small pool of threads for blocking work that has no io_uring op
 * (getaddrinfo, getpwnam, ...). Shards push jobs on a lock-free stack and count them on
 * an eventfd semaphore (one non-blocking write, never a lock on a shard). Helpers take
 * jobs under their own mutex, run them, and post the result into the submitting shard's
 * ring with IORING_OP_MSG_RING: it arrives as the completion of job->op.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/shard.h"

struct sp_helper {
	struct sp_engine *eng;
	pthread_t *threads;
	unsigned nthreads;
	int efd;
	struct sp_job *_Atomic stack;     /* pushed by shards */
	pthread_mutex_t lock;             /* helpers only */
	struct sp_job *fifo;              /* taken from the stack, oldest first */
	_Atomic uint64_t inflight;
	_Atomic bool stop;
};

static struct sp_job *take(struct sp_helper *hp)
{
	pthread_mutex_lock(&hp->lock);
	if (!hp->fifo) {
		struct sp_job *list = atomic_exchange_explicit(&hp->stack, NULL,
							       memory_order_acquire);
		while (list) { /* reverse the stack: FIFO */
			struct sp_job *next = atomic_load_explicit(&list->next,
								   memory_order_relaxed);
			atomic_store_explicit(&list->next, hp->fifo, memory_order_relaxed);
			hp->fifo = list;
			list = next;
		}
	}
	struct sp_job *job = hp->fifo;
	if (job)
		hp->fifo = atomic_load_explicit(&job->next, memory_order_relaxed);
	pthread_mutex_unlock(&hp->lock);
	return job;
}

static void *helper_main(void *arg)
{
	struct sp_helper *hp = arg;
	uint64_t v;

	for (;;) {
		if (read(hp->efd, &v, sizeof(v)) < 0 && errno != EINTR)
			break;
		struct sp_job *job = take(hp);
		if (!job) {
			if (atomic_load(&hp->stop))
				break;
			continue;
		}
		int res = job->work(job);
		/* What the message needs is read before the result is published: once the
		 * origin shard has the completion it may submit the job again. */
		struct sp_shard *origin = job->origin;
		uint64_t ud = sp_ud(&job->op, SP_TAG_OP);
		/* release: the job's writes (and reads) come before the shard reads result */
		atomic_store_explicit(&job->result, res, memory_order_release);
		sp_ring_msg(origin, ud, res, 0);
		atomic_fetch_sub(&hp->inflight, 1);
	}
	return NULL;
}

int sp_helpers_start(struct sp_engine *eng)
{
	struct sp_helper *hp = calloc(1, sizeof(*hp));
	if (!hp)
		return -ENOMEM;
	hp->eng = eng;
	hp->efd = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
	hp->threads = calloc(eng->cfg.helpers, sizeof(pthread_t));
	if (hp->efd < 0 || !hp->threads) {
		if (hp->efd >= 0)
			close(hp->efd);
		free(hp->threads);
		free(hp);
		return -ENOMEM;
	}
	pthread_mutex_init(&hp->lock, NULL);
	eng->helpers = hp;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; hp->nthreads < eng->cfg.helpers; hp->nthreads++) {
		if (pthread_create(&hp->threads[hp->nthreads], NULL, helper_main, hp))
			break;
		char name[16];
		snprintf(name, sizeof(name), "sp-helper-%hu", (unsigned short)hp->nthreads);
		pthread_setname_np(hp->threads[hp->nthreads], name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!hp->nthreads) {
		sp_helpers_stop(eng);
		return -EAGAIN;
	}
	return 0;
}

void sp_helpers_stop(struct sp_engine *eng)
{
	struct sp_helper *hp = eng->helpers;
	if (!hp)
		return;
	atomic_store(&hp->stop, true);
	uint64_t n = hp->nthreads ? hp->nthreads : 1;
	if (write(hp->efd, &n, sizeof(n)) < 0)
		sp_log(SP_LOG_WARN, "helpers: wake for stop: %m");
	for (unsigned i = 0; i < hp->nthreads; i++)
		pthread_join(hp->threads[i], NULL);
	close(hp->efd);
	pthread_mutex_destroy(&hp->lock);
	free(hp->threads);
	free(hp);
	eng->helpers = NULL;
}

uint64_t sp_helpers_inflight(struct sp_engine *eng)
{
	return eng->helpers ? atomic_load(&eng->helpers->inflight) : 0;
}

void sp_job_submit(struct sp_job *job)
{
	struct sp_shard *sh = sp_tls_shard;
	struct sp_helper *hp = sh->eng->helpers;

	job->op.kind = SP_KIND_JOB;
	job->op.state = SP_OP_INFLIGHT;
	job->op.shard = sh;
	job->origin = sh;
	if (job->op.task)
		sp_live_add(job->op.task, &job->op);
	/* its completion comes through our ring: count it like an op in flight */
	st_add(sh, ST_OPS_INFLIGHT, 1);
	st_add(sh, ST_JOBS, 1);
	atomic_fetch_add(&hp->inflight, 1);

	struct sp_job *head = atomic_load_explicit(&hp->stack, memory_order_relaxed);
	do
		atomic_store_explicit(&job->next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&hp->stack, &head, job, memory_order_release,
						      memory_order_relaxed));
	uint64_t one = 1;
	if (write(hp->efd, &one, sizeof(one)) < 0)
		sp_log(SP_LOG_ERR, "helpers: eventfd write: %m");
}
