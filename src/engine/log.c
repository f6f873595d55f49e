/* SPDX-License-Identifier: MIT */
/*
 * log.c - formatting, the level filter and the asynchronous writer of sp_log.
 *
 * The ring is a bounded multi-producer queue of fixed slots, each with a sequence
 * number: a producer claims a slot by CAS on the tail when the slot's sequence says it
 * is free, fills it, then publishes it by storing the next sequence. The one consumer
 * (the writer thread) takes slots in order and frees them. Producers never wait: a full
 * ring drops the line. While lines come, the writer naps briefly when the ring is empty,
 * so busy producers need no wake-up syscall; after IDLE_NAPS empty naps in a row it
 * sleeps on a futex until a producer wakes it, so an idle daemon never wakes for its log.
 */
#include "engine/log.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 2048 /* power of two */
#define MSG_MAX 768
#define FIELDS_MAX 384
#define NAP_NS 2000000 /* 2 ms */
#define IDLE_NAPS 50   /* 100 ms without a line: sleep until the next one */

struct slot {
	_Atomic uint64_t seq;
	int level;
	char msg[MSG_MAX];
	char fields[FIELDS_MAX];
};

static _Atomic int max_level = SP_LOG_INFO;
static _Atomic(sp_log_sink_fn) sink;

static struct slot ring[SLOTS];
static _Atomic uint64_t tail;   /* next slot to claim (producers) */
static uint64_t head;           /* next slot to write (writer) */
static _Atomic uint64_t dropped;
static _Atomic bool async_on, stop_asked;
static _Atomic uint32_t writer_asleep; /* futex word: 1 while the writer waits for a line */
static pthread_t writer;

void sp_log_set_level(int level)
{
	atomic_store(&max_level, level);
}

void sp_log_set_sink(sp_log_sink_fn fn)
{
	atomic_store(&sink, fn);
}

static const char *level_name(int level)
{
	switch (level) {
	case SP_LOG_ERR: return "error";
	case SP_LOG_WARN: return "warning";
	case SP_LOG_INFO: return "info";
	default: return "debug";
	}
}

/* Hand one line to the sink or stderr (the writer thread, or the caller when sync). */
static void emit(int level, const char *msg, const char *fields)
{
	sp_log_sink_fn fn = atomic_load(&sink);
	if (fn) {
		fn(level, msg, fields && fields[0] ? fields : NULL);
		return;
	}
	char line[MSG_MAX + 32];
	int n = snprintf(line, sizeof(line), "spargiod[%s]: %s\n", level_name(level), msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* One write so lines from several threads do not interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

static bool enqueue(int level, const char *fields, const char *fmt, va_list ap)
{
	uint64_t pos = atomic_load_explicit(&tail, memory_order_relaxed);
	struct slot *s;
	for (;;) {
		s = &ring[pos & (SLOTS - 1)];
		uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		int64_t diff = (int64_t)(seq - pos);
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&tail, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			return false; /* full */
		} else {
			pos = atomic_load_explicit(&tail, memory_order_relaxed);
		}
	}
	s->level = level;
	vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	snprintf(s->fields, sizeof(s->fields), "%s", fields ? fields : "");
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
	return true;
}

static void futex(_Atomic uint32_t *word, int op, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* After publishing a line or asking to stop: wake the writer if it went to sleep. The
 * fence pairs with the writer's: either it sees our line or we see it asleep. */
static void wake_writer(void)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&writer_asleep, memory_order_relaxed) &&
	    atomic_exchange(&writer_asleep, 0))
		futex(&writer_asleep, FUTEX_WAKE, 1);
}

static void vlog(int level, const char *fields, const char *fmt, va_list ap)
{
	if (level > atomic_load_explicit(&max_level, memory_order_relaxed))
		return;
	if (atomic_load_explicit(&async_on, memory_order_acquire)) {
		if (!enqueue(level, fields, fmt, ap))
			atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
		wake_writer();
		return;
	}
	char msg[MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(level, msg, fields);
}

void sp_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap);
	va_end(ap);
}

void sp_log_fields(int level, const char *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fields, fmt, ap);
	va_end(ap);
}

/* Write every published line; returns how many. */
static unsigned drain(void)
{
	unsigned n = 0;
	for (;;) {
		struct slot *s = &ring[head & (SLOTS - 1)];
		if (atomic_load_explicit(&s->seq, memory_order_acquire) != head + 1)
			break;
		emit(s->level, s->msg, s->fields);
		atomic_store_explicit(&s->seq, head + SLOTS, memory_order_release);
		head++;
		n++;
	}
	uint64_t lost = atomic_exchange_explicit(&dropped, 0, memory_order_relaxed);
	if (lost) {
		char msg[96];
		snprintf(msg, sizeof(msg), "log: %llu lines dropped (the writer fell behind)",
			 (unsigned long long)lost);
		emit(SP_LOG_WARN, msg, NULL);
	}
	return n;
}

static bool line_waiting(void)
{
	return atomic_load_explicit(&ring[head & (SLOTS - 1)].seq, memory_order_acquire) ==
	       head + 1;
}

static void *writer_main(void *arg)
{
	unsigned empty = 0;
	(void)arg;
	for (;;) {
		bool stopping = atomic_load(&stop_asked);
		if (drain() > 0) {
			empty = 0;
			continue;
		}
		if (stopping)
			break;
		if (++empty < IDLE_NAPS) {
			struct timespec ts = { 0, NAP_NS };
			nanosleep(&ts, NULL);
			continue;
		}
		atomic_store(&writer_asleep, 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (!line_waiting() && !atomic_load(&stop_asked))
			futex(&writer_asleep, FUTEX_WAIT, 1); /* returns at once if woken since */
		atomic_store(&writer_asleep, 0);
		empty = 0;
	}
	return NULL;
}

int sp_log_async_start(void)
{
	if (atomic_load(&async_on))
		return 0;
	for (uint64_t i = 0; i < SLOTS; i++)
		atomic_store_explicit(&ring[i].seq, i, memory_order_relaxed);
	atomic_store(&tail, 0);
	head = 0;
	atomic_store(&stop_asked, false);
	int ret = pthread_create(&writer, NULL, writer_main, NULL);
	if (ret)
		return -ret;
	pthread_setname_np(writer, "sp-log");
	atomic_store_explicit(&async_on, true, memory_order_release);
	return 0;
}

/* Call once every other thread that logs has stopped (the shards have joined). */
void sp_log_async_stop(void)
{
	if (!atomic_load(&async_on))
		return;
	/* lines logged from now on are written synchronously, after the queued ones */
	atomic_store(&stop_asked, true);
	wake_writer();
	pthread_join(writer, NULL);
	atomic_store(&async_on, false);
	drain(); /* a producer that saw async_on just before it went off */
}
