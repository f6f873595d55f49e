/* SPDX-License-Identifier: MIT */
/*
 * srclimit.c - the per-source connection table (see srclimit.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "net/srclimit.h"

#define BUCKETS_LOG2 17 /* 1 MiB: 131072 addresses before two-choice crowding matters */
#define BUCKETS (1u << BUCKETS_LOG2)
#define COUNT_MASK 0xffffull
#define TRIES 8 /* CAS races before giving up (and not counting) */

/* Set once on the main thread; shards that see a cap may not see the table yet without
 * the acquire/release pair (the cap is published apart from it). */
static _Atomic uint64_t *_Atomic table;
static uint64_t seed[2]; /* written before the release store of table */

int sp_srclimit_init(void)
{
	if (atomic_load_explicit(&table, memory_order_acquire))
		return 0;
	if (getrandom(seed, sizeof(seed), 0) != sizeof(seed)) {
		seed[0] = (uint64_t)(uintptr_t)&seed ^ 0x9e3779b97f4a7c15ull;
		seed[1] = (uint64_t)(uintptr_t)&table * 0xbf58476d1ce4e5b9ull;
	}
	_Atomic uint64_t *t = calloc(BUCKETS, sizeof(*t));
	if (!t)
		return -ENOMEM;
	atomic_store_explicit(&table, t, memory_order_release);
	return 0;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

/* A keyed hash of (serial, address): not cryptographic, but the key is secret. */
static uint64_t key_of(unsigned serial, const uint8_t *p, size_t len)
{
	uint64_t h = mix(seed[0] ^ serial);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = 0;
		memcpy(&w, p + i, len - i < 8 ? len - i : 8);
		h = mix(h ^ w ^ seed[1]);
	}
	return h;
}

int sp_srclimit_take(unsigned serial, const struct sockaddr *sa, unsigned cap, uint32_t *slot)
{
	const uint8_t *p;
	size_t len;
	*slot = 0;
	if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else if (sa->sa_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		len = 16;
	} else {
		return 0; /* unix: no address to count */
	}
	_Atomic uint64_t *tab = atomic_load_explicit(&table, memory_order_acquire);
	if (!tab)
		return 0;
	uint64_t h = key_of(serial, p, len);
	uint64_t tag = h & ~COUNT_MASK;
	if (!tag)
		tag = 1ull << 16;
	uint32_t idx[2] = { (uint32_t)(h & (BUCKETS - 1)),
			    (uint32_t)((h >> BUCKETS_LOG2) & (BUCKETS - 1)) };
	for (int t = 0; t < TRIES; t++) {
		uint64_t w[2] = { atomic_load(&tab[idx[0]]), atomic_load(&tab[idx[1]]) };
		int i, found = -1, free_at = -1;
		/* this address's bucket first (the count must not split over two), then a free one */
		for (i = 0; i < 2; i++) {
			if ((w[i] & COUNT_MASK) && (w[i] & ~COUNT_MASK) == tag)
				found = i;
			else if (!(w[i] & COUNT_MASK) && free_at < 0)
				free_at = i;
		}
		if (found >= 0) {
			if ((w[found] & COUNT_MASK) >= cap)
				return -EUSERS;
			if (atomic_compare_exchange_weak(&tab[idx[found]], &w[found], w[found] + 1)) {
				*slot = idx[found] + 1;
				return 0;
			}
		} else if (free_at >= 0) {
			if (atomic_compare_exchange_weak(&tab[idx[free_at]], &w[free_at], tag | 1)) {
				*slot = idx[free_at] + 1;
				return 0;
			}
		} else {
			return 0; /* both buckets hold other addresses: not counted */
		}
	}
	return 0;
}

void sp_srclimit_put(uint32_t slot)
{
	if (slot) /* a slot came from a take that saw the table; count >= 1: no borrow */
		atomic_fetch_sub(&atomic_load_explicit(&table, memory_order_relaxed)[slot - 1], 1);
}
