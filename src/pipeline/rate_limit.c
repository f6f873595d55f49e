/* SPDX-License-Identifier: MIT */
/*
 * rate_limit.c - the `rate_limit` filter: a token bucket per client address, shared by
 * every shard without a lock. A connection takes one token or is refused (closed at
 * once, counted as denied).
 *
 * The table is fixed at init (max_sources rounded up to a power of two, 16 bytes a
 * slot): memory stays bounded whatever the clients do. A slot is a 64-bit address hash
 * and a 64-bit bucket word (32 bits of millitokens, 32 bits of milliseconds since init,
 * or FRESH: full) changed only by compare-and-swap, so racing shards never hand out a
 * token twice. An address probes 8 slots; when all are taken by others
 * the least recently refilled one is recycled. Two addresses sharing a hash share a
 * bucket: with 64-bit hashes that is too rare to matter for a rate limit.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"

#define PROBES 8
#define MILLI 1000ull
/* A bucket nobody took from yet: full. Never a real state (tokens stay below 2^32 - 1). */
#define FRESH UINT64_MAX

struct slot {
	_Atomic uint64_t key;   /* address hash | 1; 0: free */
	_Atomic uint64_t state; /* tokens (millitokens) << 32 | last refill (ms) */
};

struct bucket_table {
	struct slot *slots;
	uint64_t mask;
	uint64_t start_ns;
	double rate_per_ms;    /* millitokens per millisecond */
	uint64_t cap;          /* burst in millitokens */
};

static uint64_t addr_hash(const struct sockaddr *sa)
{
	const uint8_t *p;
	size_t len;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		p = &in6->sin6_addr.s6_addr[12]; /* same bucket as plain IPv4 */
		len = 4;
	} else {
		p = in6->sin6_addr.s6_addr;
		len = 16;
	}
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 29; /* spread the low bits used for the index */
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h | 1;
}

static inline uint64_t pack(uint64_t tokens, uint64_t ms)
{
	return tokens << 32 | (ms & 0xffffffffu);
}

static struct slot *find_slot(struct bucket_table *bt, uint64_t key, uint64_t now_ms)
{
	struct slot *victim = NULL;
	uint64_t oldest_age = 0;

	for (unsigned i = 0; i < PROBES; i++) {
		struct slot *s = &bt->slots[(key + i) & bt->mask];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (k == key)
			return s;
		if (k == 0) { /* a free slot: its state is FRESH already */
			if (atomic_compare_exchange_strong(&s->key, &k, key) || k == key)
				return s;
			continue;
		}
		uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
		uint64_t last = st == FRESH ? now_ms : st & 0xffffffffu;
		uint64_t age = (now_ms - last) & 0xffffffffu;
		if (!victim || age > oldest_age) {
			victim = s;
			oldest_age = age;
		}
	}
	/* all taken: recycle the slot refilled longest ago */
	uint64_t old = atomic_load_explicit(&victim->key, memory_order_relaxed);
	if (atomic_compare_exchange_strong(&victim->key, &old, key))
		atomic_store_explicit(&victim->state, FRESH, memory_order_relaxed);
	return victim;
}

static enum sp_verdict rl_filter(struct sp_stage *st, const struct sockaddr *peer,
				 unsigned shard, uint64_t now_ns)
{
	struct bucket_table *bt = st->state;

	if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
		return SP_VERDICT_PASS; /* unix clients have no address to limit */
	uint64_t now_ms = (now_ns - bt->start_ns) / 1000000u;
	struct slot *s = find_slot(bt, addr_hash(peer), now_ms);
	uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
	for (;;) {
		uint64_t tokens = cur >> 32, last = cur & 0xffffffffu;
		if (cur == FRESH) {
			tokens = bt->cap;
			last = now_ms;
		}
		uint64_t elapsed = (now_ms - last) & 0xffffffffu;
		uint64_t refill = (uint64_t)((double)elapsed * bt->rate_per_ms);
		uint64_t stamp = last;
		if (refill) {
			/* Advance the clock by the time those whole millitokens took, so the
			 * fraction left over keeps counting: slow rates (1/m) add up exactly. */
			tokens += refill;
			stamp = last + (uint64_t)((double)refill / bt->rate_per_ms);
			if (tokens >= bt->cap) {
				tokens = bt->cap;
				stamp = now_ms;
			}
		}
		if (tokens < MILLI) {
			if (stamp == last && cur != FRESH)
				return SP_VERDICT_DENY;
			if (atomic_compare_exchange_weak(&s->state, &cur, pack(tokens, stamp)))
				return SP_VERDICT_DENY;
			continue;
		}
		if (atomic_compare_exchange_weak(&s->state, &cur, pack(tokens - MILLI, stamp)))
			return SP_VERDICT_PASS;
	}
}

static int rl_init(struct sp_stage *st, unsigned nshards, char *err, size_t errlen)
{
	const struct sp_conf_rate_limit *c = &st->conf->rate_limit;
	struct bucket_table *bt = calloc(1, sizeof(*bt));
	if (!bt)
		return -ENOMEM;
	uint64_t n = 16;
	unsigned max = c->max_sources ? c->max_sources : 65536;
	while (n < max)
		n <<= 1;
	bt->slots = calloc(n, sizeof(*bt->slots));
	if (!bt->slots) {
		free(bt);
		return -ENOMEM;
	}
	bt->mask = n - 1;
	for (uint64_t i = 0; i < n; i++)
		atomic_init(&bt->slots[i].state, FRESH);
	bt->start_ns = sp_now_ns();
	bt->rate_per_ms = c->per_source; /* per second = millitokens per millisecond */
	uint64_t burst = c->burst ? c->burst : (c->per_source >= 1 ? (uint64_t)c->per_source : 1);
	if (burst > 4000000)
		burst = 4000000; /* fits the 32-bit millitoken field */
	bt->cap = burst * MILLI;
	st->state = bt;
	return 0;
}

static void rl_destroy(struct sp_stage *st)
{
	struct bucket_table *bt = st->state;
	if (bt)
		free(bt->slots);
	free(bt);
}

const struct sp_stage_ops sp_rate_limit_ops = {
	.kind = SP_STAGE_RATE_LIMIT,
	.init = rl_init,
	.destroy = rl_destroy,
	.filter = rl_filter,
};
