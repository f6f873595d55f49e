/* SPDX-License-Identifier: MIT */
/* epoll_rt.c - the epoll + eventfd thread-per-core baseline (see epoll_rt.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "epoll_rt.h"

#define MAX_EVENTS 64

/* Vyukov's intrusive MPSC queue: push is one exchange; the single consumer pops. */
struct mpsc {
	struct ert_msg *_Atomic head;
	struct ert_msg *tail;
	struct ert_msg stub;
};

struct ert_thread {
	struct ert *rt;
	unsigned idx;
	pthread_t thread;
	int epfd, efd;
	int nfds; /* user descriptors registered */

	_Atomic int parked __attribute__((aligned(64))); /* shared */
	struct mpsc inbox __attribute__((aligned(64)));  /* shared: producers push */

	struct ert_msg *defer_head __attribute__((aligned(64)));
	struct ert_msg *defer_tail;

	struct ert_timer **heap;
	unsigned heap_len, heap_cap;

	unsigned io_events; /* user events dispatched since the last pass: they are work */
	_Atomic uint64_t st_msgs, st_wakes, st_sleeps, st_polls;
};

struct ert {
	struct ert_config cfg;
	struct ert_thread **th;
	_Atomic bool stopping;

	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned started, failed;

	/* blocking-work pool, started on first use */
	pthread_once_t pool_once;
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct ert_work *pool_head, *pool_tail;
	unsigned pool_idle, pool_n;
	bool pool_stop;
	pthread_t *pool;
};

static __thread struct ert_thread *tls_th;
static struct ert *pool_init_rt; /* pthread_once has no argument */
static pthread_mutex_t pool_init_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		__builtin_ia32_pause();
}

static void inc(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* ---- MPSC --------------------------------------------------------------------------- */

static void mpsc_init(struct mpsc *q)
{
	atomic_init(&q->stub.next, NULL);
	atomic_init(&q->head, &q->stub);
	q->tail = &q->stub;
}

static void mpsc_push(struct mpsc *q, struct ert_msg *m)
{
	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	struct ert_msg *prev = atomic_exchange_explicit(&q->head, m, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

static struct ert_msg *mpsc_pop(struct mpsc *q)
{
	struct ert_msg *tail = q->tail;
	struct ert_msg *next = atomic_load_explicit(&tail->next, memory_order_acquire);

	if (tail == &q->stub) {
		if (!next)
			return NULL;
		q->tail = tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (next) {
		q->tail = next;
		return tail;
	}
	if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
		return NULL; /* a producer is between its exchange and its link */
	mpsc_push(q, &q->stub);
	next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (next) {
		q->tail = next;
		return tail;
	}
	return NULL;
}

static bool mpsc_maybe_nonempty(struct mpsc *q)
{
	return !(q->tail == &q->stub && atomic_load_explicit(&q->head, memory_order_acquire) ==
						&q->stub);
}

/* ---- messages ---------------------------------------------------------------------- */

static void wake(struct ert_thread *th)
{
	uint64_t one = 1;
	if (write(th->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		abort();
	if (tls_th)
		inc(&tls_th->st_wakes);
}

void ert_post(struct ert_thread *target, struct ert_msg *m, void (*fn)(struct ert_msg *))
{
	m->fn = fn;
	mpsc_push(&target->inbox, m);
	/* pairs with the fence in park(): either we see parked=1 or it sees our push */
	atomic_thread_fence(memory_order_seq_cst);
	if (target != tls_th && atomic_load_explicit(&target->parked, memory_order_relaxed) &&
	    atomic_exchange_explicit(&target->parked, 0, memory_order_acq_rel))
		wake(target);
}

void ert_defer(struct ert_msg *m, void (*fn)(struct ert_msg *))
{
	struct ert_thread *th = tls_th;
	m->fn = fn;
	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	if (th->defer_tail)
		atomic_store_explicit(&th->defer_tail->next, m, memory_order_relaxed);
	else
		th->defer_head = m;
	th->defer_tail = m;
}

static unsigned drain_inbox(struct ert_thread *th)
{
	unsigned n = 0;
	struct ert_msg *m;
	while ((m = mpsc_pop(&th->inbox))) {
		m->fn(m);
		n++;
	}
	for (unsigned i = 0; i < n; i++)
		inc(&th->st_msgs);
	return n;
}

static unsigned run_deferred(struct ert_thread *th)
{
	struct ert_msg *m = th->defer_head;
	unsigned n = 0;
	th->defer_head = th->defer_tail = NULL; /* what these callbacks defer runs next pass */
	while (m) {
		struct ert_msg *next = atomic_load_explicit(&m->next, memory_order_relaxed);
		m->fn(m);
		m = next;
		n++;
	}
	return n;
}

/* ---- timers: binary min-heap ------------------------------------------------------- */

static void heap_set(struct ert_thread *th, unsigned i, struct ert_timer *t)
{
	th->heap[i] = t;
	t->idx = i;
}

static void sift_up(struct ert_thread *th, unsigned i)
{
	struct ert_timer *t = th->heap[i];
	while (i > 0) {
		unsigned p = (i - 1) / 2;
		if (th->heap[p]->deadline <= t->deadline)
			break;
		heap_set(th, i, th->heap[p]);
		i = p;
	}
	heap_set(th, i, t);
}

static void sift_down(struct ert_thread *th, unsigned i)
{
	struct ert_timer *t = th->heap[i];
	unsigned n = th->heap_len;
	for (;;) {
		unsigned c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && th->heap[c + 1]->deadline < th->heap[c]->deadline)
			c++;
		if (t->deadline <= th->heap[c]->deadline)
			break;
		heap_set(th, i, th->heap[c]);
		i = c;
	}
	heap_set(th, i, t);
}

void ert_timer_init(struct ert_timer *t, void (*cb)(struct ert_timer *t))
{
	t->deadline = 0;
	t->idx = UINT32_MAX;
	t->cb = cb;
}

int ert_timer_reserve(unsigned n)
{
	struct ert_thread *th = tls_th;
	if (n <= th->heap_cap)
		return 0;
	struct ert_timer **h = realloc(th->heap, sizeof(*h) * n);
	if (!h)
		return -1;
	th->heap = h;
	th->heap_cap = n;
	return 0;
}

void ert_timer_arm(struct ert_timer *t, uint64_t deadline)
{
	struct ert_thread *th = tls_th;
	if (t->idx != UINT32_MAX) { /* move */
		uint64_t old = t->deadline;
		t->deadline = deadline;
		if (deadline < old)
			sift_up(th, t->idx);
		else
			sift_down(th, t->idx);
		return;
	}
	if (th->heap_len == th->heap_cap &&
	    ert_timer_reserve(th->heap_cap ? th->heap_cap * 2 : 64) < 0)
		abort();
	t->deadline = deadline;
	heap_set(th, th->heap_len++, t);
	sift_up(th, t->idx);
}

int ert_timer_cancel(struct ert_timer *t)
{
	struct ert_thread *th = tls_th;
	unsigned i = t->idx;
	if (i == UINT32_MAX)
		return -1;
	t->idx = UINT32_MAX;
	struct ert_timer *last = th->heap[--th->heap_len];
	if (last != t) {
		heap_set(th, i, last);
		if (last->deadline < t->deadline)
			sift_up(th, i);
		else
			sift_down(th, i);
	}
	return 0;
}

static unsigned run_timers(struct ert_thread *th, uint64_t now)
{
	unsigned n = 0;
	while (th->heap_len && th->heap[0]->deadline <= now) {
		struct ert_timer *t = th->heap[0];
		ert_timer_cancel(t);
		t->cb(t);
		n++;
	}
	return n;
}

/* ---- descriptors ------------------------------------------------------------------- */

int ert_io_add(struct ert_io *io, int fd, uint32_t events,
	       void (*cb)(struct ert_io *io, uint32_t events))
{
	struct ert_thread *th = tls_th;
	struct epoll_event ev = { .events = events, .data.ptr = io };
	io->fd = fd;
	io->cb = cb;
	if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	th->nfds++;
	return 0;
}

int ert_io_del(struct ert_io *io)
{
	struct ert_thread *th = tls_th;
	if (epoll_ctl(th->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
		return -errno;
	th->nfds--;
	return 0;
}

/* epoll_wait and dispatch; returns the number of user events. */
static int poll_io(struct ert_thread *th, int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int n = epoll_wait(th->epfd, evs, MAX_EVENTS, timeout_ms);
	int user = 0;
	for (int i = 0; i < n; i++) {
		struct ert_io *io = evs[i].data.ptr;
		if (!io)
			continue; /* the eventfd (edge-triggered: nothing to read) */
		io->cb(io, evs[i].events);
		user++;
	}
	th->io_events += (unsigned)user;
	return user;
}

/* ---- the loop ---------------------------------------------------------------------- */

static bool has_work(struct ert_thread *th)
{
	return th->defer_head || mpsc_maybe_nonempty(&th->inbox);
}

/* The engine's idle spin, step for step (src/engine/loop.c: a look at the queues every
 * SPIN_PAUSES pauses, the clock and the kernel every SPIN_EVERY looks), so that the
 * two poll the same way when both are given the same spin budget. */
#define SPIN_PAUSES 4
#define SPIN_EVERY 32

static bool spin(struct ert_thread *th)
{
	uint64_t limit = th->rt->cfg.spin_us * 1000ull;
	if (!limit)
		return false;
	uint64_t start = now_ns();
	for (unsigned i = 1;; i++) {
		if (has_work(th))
			return true;
		cpu_relax(SPIN_PAUSES);
		if (i % SPIN_EVERY)
			continue;
		if (th->nfds) {
			inc(&th->st_polls);
			if (poll_io(th, 0) > 0)
				return true;
		}
		uint64_t now = now_ns();
		if (th->heap_len && th->heap[0]->deadline <= now)
			return true;
		if (now - start >= limit)
			return false;
	}
}

static void park(struct ert_thread *th)
{
	atomic_store_explicit(&th->parked, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (has_work(th) || atomic_load_explicit(&th->rt->stopping, memory_order_relaxed)) {
		atomic_store_explicit(&th->parked, 0, memory_order_relaxed);
		return;
	}
	int timeout = -1;
	if (th->heap_len) {
		uint64_t now = now_ns(), d = th->heap[0]->deadline;
		uint64_t ms = d > now ? (d - now + 999999) / 1000000 : 0; /* round up */
		timeout = ms > 1000000 ? 1000000 : (int)ms;
	}
	inc(&th->st_sleeps);
	poll_io(th, timeout);
	atomic_store_explicit(&th->parked, 0, memory_order_relaxed);
}

static void loop(struct ert_thread *th)
{
	struct ert *rt = th->rt;
	while (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
		unsigned work = th->io_events;
		th->io_events = 0;
		work += drain_inbox(th);
		work += run_deferred(th);
		if (th->heap_len)
			work += run_timers(th, now_ns());
		if (has_work(th)) {
			if (th->nfds) { /* stay responsive to descriptors while busy */
				inc(&th->st_polls);
				poll_io(th, 0);
			}
			continue;
		}
		if (work && spin(th))
			continue;
		park(th);
	}
}

static void *thread_main(void *arg)
{
	struct ert_thread *th = arg;
	struct ert *rt = th->rt;
	int err = 0;

	tls_th = th;
	th->epfd = epoll_create1(EPOLL_CLOEXEC);
	th->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (th->epfd < 0 || th->efd < 0) {
		err = 1;
	} else {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = NULL };
		if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, th->efd, &ev) < 0)
			err = 1;
	}
	pthread_mutex_lock(&rt->start_lock);
	rt->started++;
	rt->failed += (unsigned)err;
	pthread_cond_broadcast(&rt->start_cond);
	pthread_mutex_unlock(&rt->start_lock);
	if (!err)
		loop(th);
	tls_th = NULL;
	return NULL;
}

int ert_create(const struct ert_config *cfg, struct ert **out)
{
	struct ert *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->cfg = *cfg;
	if (!rt->cfg.nthreads)
		rt->cfg.nthreads = 1;
	if (!rt->cfg.pool_threads)
		rt->cfg.pool_threads = 4;
	pthread_mutex_init(&rt->start_lock, NULL);
	pthread_cond_init(&rt->start_cond, NULL);
	pthread_mutex_init(&rt->pool_lock, NULL);
	pthread_cond_init(&rt->pool_cond, NULL);
	rt->pool_once = (pthread_once_t)PTHREAD_ONCE_INIT;
	rt->th = calloc(rt->cfg.nthreads, sizeof(*rt->th));
	if (!rt->th) {
		free(rt);
		return -ENOMEM;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	unsigned created = 0;
	int ret = 0;
	for (; created < rt->cfg.nthreads; created++) {
		struct ert_thread *th;
		if (posix_memalign((void **)&th, 128, sizeof(*th))) {
			ret = -ENOMEM;
			break;
		}
		memset(th, 0, sizeof(*th));
		th->rt = rt;
		th->idx = created;
		th->epfd = th->efd = -1;
		mpsc_init(&th->inbox);
		rt->th[created] = th;
		if (pthread_create(&th->thread, NULL, thread_main, th)) {
			free(th);
			rt->th[created] = NULL;
			ret = -EAGAIN;
			break;
		}
		if (cfg->pin_cpus) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(created % (unsigned)ncpu, &set);
			pthread_setaffinity_np(th->thread, sizeof(set), &set);
		}
	}
	pthread_mutex_lock(&rt->start_lock);
	while (rt->started < created)
		pthread_cond_wait(&rt->start_cond, &rt->start_lock);
	if (rt->failed)
		ret = -EMFILE;
	pthread_mutex_unlock(&rt->start_lock);
	if (ret) {
		rt->cfg.nthreads = created;
		ert_stop(rt);
		ert_join(rt);
		ert_destroy(rt);
		return ret;
	}
	*out = rt;
	return 0;
}

void ert_stop(struct ert *rt)
{
	atomic_store_explicit(&rt->stopping, true, memory_order_release);
	for (unsigned i = 0; i < rt->cfg.nthreads; i++)
		if (rt->th[i] && rt->th[i]->efd >= 0) {
			uint64_t one = 1;
			if (write(rt->th[i]->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				abort();
		}
}

void ert_join(struct ert *rt)
{
	for (unsigned i = 0; i < rt->cfg.nthreads; i++)
		if (rt->th[i])
			pthread_join(rt->th[i]->thread, NULL);
	if (rt->pool_n) {
		pthread_mutex_lock(&rt->pool_lock);
		rt->pool_stop = true;
		pthread_cond_broadcast(&rt->pool_cond);
		pthread_mutex_unlock(&rt->pool_lock);
		for (unsigned i = 0; i < rt->pool_n; i++)
			pthread_join(rt->pool[i], NULL);
		rt->pool_n = 0;
	}
}

void ert_destroy(struct ert *rt)
{
	for (unsigned i = 0; i < rt->cfg.nthreads; i++) {
		struct ert_thread *th = rt->th[i];
		if (!th)
			continue;
		if (th->epfd >= 0)
			close(th->epfd);
		if (th->efd >= 0)
			close(th->efd);
		free(th->heap);
		free(th);
	}
	free(rt->th);
	free(rt->pool);
	pthread_mutex_destroy(&rt->start_lock);
	pthread_cond_destroy(&rt->start_cond);
	pthread_mutex_destroy(&rt->pool_lock);
	pthread_cond_destroy(&rt->pool_cond);
	free(rt);
}

struct ert_thread *ert_thread_at(struct ert *rt, unsigned i)
{
	return i < rt->cfg.nthreads ? rt->th[i] : NULL;
}

struct ert_thread *ert_current(void)
{
	return tls_th;
}

unsigned ert_thread_index(const struct ert_thread *th)
{
	return th->idx;
}

void ert_stats_read(struct ert_thread *th, struct ert_stats *out)
{
	out->msgs = atomic_load_explicit(&th->st_msgs, memory_order_relaxed);
	out->wakes_sent = atomic_load_explicit(&th->st_wakes, memory_order_relaxed);
	out->sleeps = atomic_load_explicit(&th->st_sleeps, memory_order_relaxed);
	out->polls = atomic_load_explicit(&th->st_polls, memory_order_relaxed);
}

/* ---- blocking-work pool (libuv's design: mutex + condvar queue, signal if idle) ---- */

static void work_done_fn(struct ert_msg *m)
{
	struct ert_work *w = (struct ert_work *)m;
	w->done(w, w->res);
}

static void *pool_main(void *arg)
{
	struct ert *rt = arg;
	/* threads inherit the creator's affinity: the pool must not crowd the loop's CPU */
	cpu_set_t all;
	CPU_ZERO(&all);
	for (long c = 0, n = sysconf(_SC_NPROCESSORS_ONLN); c < n && c < CPU_SETSIZE; c++)
		CPU_SET((int)c, &all);
	sched_setaffinity(0, sizeof(all), &all);
	pthread_mutex_lock(&rt->pool_lock);
	for (;;) {
		while (!rt->pool_head && !rt->pool_stop) {
			rt->pool_idle++;
			pthread_cond_wait(&rt->pool_cond, &rt->pool_lock);
			rt->pool_idle--;
		}
		if (!rt->pool_head)
			break;
		struct ert_work *w = rt->pool_head;
		rt->pool_head = w->next;
		if (!rt->pool_head)
			rt->pool_tail = NULL;
		pthread_mutex_unlock(&rt->pool_lock);
		w->res = w->work(w);
		ert_post(w->origin, &w->msg, work_done_fn);
		pthread_mutex_lock(&rt->pool_lock);
	}
	pthread_mutex_unlock(&rt->pool_lock);
	return NULL;
}

static void pool_start(void)
{
	struct ert *rt = pool_init_rt;
	rt->pool = calloc(rt->cfg.pool_threads, sizeof(pthread_t));
	if (!rt->pool)
		abort();
	for (; rt->pool_n < rt->cfg.pool_threads; rt->pool_n++)
		if (pthread_create(&rt->pool[rt->pool_n], NULL, pool_main, rt))
			break;
	if (!rt->pool_n)
		abort();
}

void ert_work_submit(struct ert_work *w, int (*work)(struct ert_work *),
		     void (*done)(struct ert_work *, int))
{
	struct ert *rt = tls_th->rt;
	if (!rt->pool_n) {
		pthread_mutex_lock(&pool_init_lock);
		pool_init_rt = rt;
		pthread_once(&rt->pool_once, pool_start);
		pthread_mutex_unlock(&pool_init_lock);
	}
	w->work = work;
	w->done = done;
	w->origin = tls_th;
	w->next = NULL;
	pthread_mutex_lock(&rt->pool_lock);
	if (rt->pool_tail)
		rt->pool_tail->next = w;
	else
		rt->pool_head = w;
	rt->pool_tail = w;
	if (rt->pool_idle)
		pthread_cond_signal(&rt->pool_cond);
	pthread_mutex_unlock(&rt->pool_lock);
}
