/* SPDX-License-Identifier: MIT */
/*
 * pool.c - upstream pools: building them for a generation, server state and its changes
 * (logged once, by whoever made them), and the four balancing algorithms. The health
 * checks that drive the state live in health.c.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "pipeline/pipeline.h"
#include "upstream/upstream.h"

#define RLX memory_order_relaxed

/* A one-writer-per-shard field would do for most counters, but servers are shared: use
 * relaxed read-modify-writes (one per connection, not per I/O). */
static inline void add64(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, RLX);
}

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finalizer: good avalanche for combining hashes */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

uint64_t sp_addr_hash(const struct sockaddr *sa)
{
	uint64_t h = 1469598103934665603ull;
	if (sa->sa_family == AF_INET)
		return fnv1a(&((const struct sockaddr_in *)sa)->sin_addr, 4, h);
	if (sa->sa_family == AF_INET6)
		return fnv1a(&((const struct sockaddr_in6 *)sa)->sin6_addr, 16, h);
	return h;
}

/* ------------------------------------------------------------------------------------ */
/* Building                                                                              */

static void upstream_free(struct sp_upstream *u, unsigned nshards)
{
	for (unsigned i = 0; u->rows && i < nshards; i++)
		free(u->rows[i].cur);
	free(u->rows);
	free(u->servers);
	free(u->hkeys);
}

static int upstream_init(struct sp_upstreams *set, struct sp_upstream *u,
			 const struct sp_conf_upstream *conf)
{
	u->conf = conf;
	u->set = set;
	u->n_servers = conf->n_servers;
	u->servers = aligned_alloc(64, sizeof(*u->servers) * u->n_servers);
	u->rows = aligned_alloc(64, sizeof(*u->rows) * set->nshards);
	u->hkeys = calloc(u->n_servers, sizeof(*u->hkeys));
	if (!u->servers || !u->rows || !u->hkeys)
		return -ENOMEM;
	memset(u->servers, 0, sizeof(*u->servers) * u->n_servers);
	memset(u->rows, 0, sizeof(*u->rows) * set->nshards);
	for (size_t i = 0; i < u->n_servers; i++) {
		struct sp_server *s = &u->servers[i];
		s->conf = &conf->servers[i];
		s->up = u;
		s->idx = (unsigned)i;
		/* the address, not the position: reordering the list keeps each client's server */
		u->hkeys[i] = mix64(fnv1a(s->conf->address.text, strlen(s->conf->address.text),
					  1469598103934665603ull));
	}
	for (unsigned k = 0; k < set->nshards; k++) {
		u->rows[k].cur = calloc(u->n_servers, sizeof(int64_t));
		if (!u->rows[k].cur)
			return -ENOMEM;
		u->rows[k].rng = mix64(0x9e3779b97f4a7c15ull * (k + 1) ^ (uintptr_t)u);
		u->rows[k].next = k;
	}
	return 0;
}

struct sp_upstreams *sp_upstreams_create(struct sp_config *cfg, unsigned nshards, char *err,
					 size_t errlen)
{
	struct sp_upstreams *set = calloc(1, sizeof(*set));
	if (!set)
		goto oom;
	atomic_init(&set->refs, 1);
	set->cfg = sp_config_ref(cfg);
	set->nshards = nshards ? nshards : 1;
	set->v = calloc(cfg->n_upstreams ? cfg->n_upstreams : 1, sizeof(*set->v));
	if (!set->v)
		goto oom;
	set->n = cfg->n_upstreams;
	for (size_t i = 0; i < set->n; i++)
		if (upstream_init(set, &set->v[i], &cfg->upstreams[i]) < 0)
			goto oom;
	if (sp_health_alloc(set) < 0)
		goto oom;
	return set;
oom:
	snprintf(err, errlen, "out of memory for the upstream pools");
	sp_upstreams_unref(set);
	return NULL;
}

struct sp_upstreams *sp_upstreams_ref(struct sp_upstreams *set)
{
	atomic_fetch_add_explicit(&set->refs, 1, RLX);
	return set;
}

void sp_upstreams_unref(struct sp_upstreams *set)
{
	if (!set || atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
		return;
	sp_health_free(set);
	for (size_t i = 0; set->v && i < set->n; i++)
		upstream_free(&set->v[i], set->nshards);
	free(set->v);
	sp_config_unref(set->cfg);
	free(set);
}

struct sp_upstream *sp_upstream_find(struct sp_upstreams *set, const char *name)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (!strcmp(set->v[i].conf->name, name))
			return &set->v[i];
	return NULL;
}

struct sp_server *sp_upstream_server(struct sp_upstream *u, const char *address)
{
	for (size_t i = 0; i < u->n_servers; i++) {
		const struct sp_conf_addr *a = &u->servers[i].conf->address;
		char printed[96];
		if (!strcmp(a->text, address))
			return &u->servers[i];
		if (a->kind == SP_ADDR_INET &&
		    !strcmp(sp_sockaddr_str((const struct sockaddr *)&a->sa, a->salen, printed,
					    sizeof(printed)), address))
			return &u->servers[i];
	}
	return NULL;
}

void sp_upstreams_inherit(struct sp_upstreams *set, const struct sp_upstreams *old)
{
	for (size_t i = 0; old && i < set->n; i++) {
		struct sp_upstream *u = &set->v[i];
		struct sp_upstream *ou = sp_upstream_find((struct sp_upstreams *)old, u->conf->name);
		for (size_t k = 0; ou && k < u->n_servers; k++) {
			struct sp_server *s = &u->servers[k];
			struct sp_server *os = sp_upstream_server(ou, s->conf->address.text);
			if (!os)
				continue;
			atomic_store(&s->disabled, atomic_load(&os->disabled));
			atomic_store(&s->down, atomic_load(&os->down));
			atomic_store(&s->fails, atomic_load(&os->fails));
			atomic_store(&s->retry_at_ns, atomic_load(&os->retry_at_ns));
			/* the counters go on from where they were (the old generation's own
			 * sessions still add to its copy until they end) */
			atomic_store(&s->total, atomic_load(&os->total));
			atomic_store(&s->connect_failures, atomic_load(&os->connect_failures));
			atomic_store(&s->checks_ok, atomic_load(&os->checks_ok));
			atomic_store(&s->checks_failed, atomic_load(&os->checks_failed));
		}
	}
}

/* ------------------------------------------------------------------------------------ */
/* State                                                                                 */

const char *sp_server_state(const struct sp_server *s)
{
	if (atomic_load_explicit(&s->disabled, RLX))
		return "disabled";
	return atomic_load_explicit(&s->down, RLX) ? "down" : "up";
}

static unsigned fall_of(const struct sp_server *s)
{
	const struct sp_conf_health_check *h = s->up->conf->health_check;
	return h ? h->fall : SP_PASSIVE_FALL;
}

/* Whoever flips the flag logs the change: exactly one line per transition. */
static void set_down(struct sp_server *s, bool down, const char *why)
{
	if (atomic_exchange(&s->down, down) == down)
		return;
	sp_log(down ? SP_LOG_WARN : SP_LOG_INFO, "upstream %s: server %s is %s (%s)",
	       s->up->conf->name, s->conf->address.text, down ? "down" : "up", why);
}

int sp_upstream_set_enabled(struct sp_upstreams *set, const char *upstream,
			    const char *address, bool enabled)
{
	struct sp_upstream *u = sp_upstream_find(set, upstream);
	if (!u)
		return -ENOENT;
	struct sp_server *s = sp_upstream_server(u, address);
	if (!s)
		return -ESRCH;
	if (atomic_exchange(&s->disabled, !enabled) != !enabled)
		sp_log(SP_LOG_INFO, "upstream %s: server %s %s by the operator", u->conf->name,
		       s->conf->address.text, enabled ? "enabled" : "disabled");
	return 0;
}

void sp_server_connected(struct sp_server *s)
{
	add64(&s->total, 1);
	if (atomic_load_explicit(&s->fails, RLX))
		atomic_store_explicit(&s->fails, 0, RLX);
	/* without checks, a successful connection is the proof of life */
	if (!s->hc && atomic_load_explicit(&s->down, RLX))
		set_down(s, false, "a connection succeeded");
}

void sp_server_failed(struct sp_server *s, const char *why, uint64_t now_ns)
{
	add64(&s->connect_failures, 1);
	uint32_t n = atomic_fetch_add_explicit(&s->fails, 1, RLX) + 1;
	if (n >= fall_of(s)) {
		atomic_store_explicit(&s->retry_at_ns, now_ns + SP_PASSIVE_RETRY_NS, RLX);
		char msg[128];
		snprintf(msg, sizeof(msg), "%u connect failures in a row, last: %s", n, why);
		set_down(s, true, msg);
	}
	sp_server_release(s);
}

void sp_server_release(struct sp_server *s)
{
	atomic_fetch_sub_explicit(&s->active, 1, RLX);
}

/* rise successes in a row bring a down server up, fall failures take an up one down;
 * a run counts only from when the server was last seen in the other state, so a server
 * taken down by connect failures needs rise fresh successes. */
void sp_server_check_result(struct sp_server *s, bool ok, const char *why)
{
	const struct sp_conf_health_check *h = s->up->conf->health_check;
	bool down = atomic_load_explicit(&s->down, RLX);
	add64(ok ? &s->checks_ok : &s->checks_failed, 1);
	if (ok) {
		s->fail_run = 0;
		s->ok_run = down ? s->ok_run + 1 : 0;
		if (down && s->ok_run >= (h ? h->rise : 1)) {
			atomic_store_explicit(&s->fails, 0, RLX);
			char msg[96];
			snprintf(msg, sizeof(msg), "%u health checks passed", s->ok_run);
			set_down(s, false, msg);
			s->ok_run = 0;
		}
	} else {
		s->ok_run = 0;
		s->fail_run = down ? 0 : s->fail_run + 1;
		if (!down && s->fail_run >= (h ? h->fall : 1)) {
			char msg[160];
			snprintf(msg, sizeof(msg), "%u health checks failed, last: %s", s->fail_run, why);
			set_down(s, true, msg);
			s->fail_run = 0;
		}
	}
}

/* ------------------------------------------------------------------------------------ */
/* Picking                                                                               */

static bool tried_has(const uint16_t *tried, unsigned n, unsigned idx)
{
	for (unsigned i = 0; i < n; i++)
		if (tried[i] == idx)
			return true;
	return false;
}

/* Usable now: enabled, and up, or down by failures without checks with its retry due
 * (then this caller takes the one trial connection by moving the retry time on). */
static bool usable(struct sp_server *s, uint64_t now, bool *trial)
{
	*trial = false;
	if (atomic_load_explicit(&s->disabled, RLX))
		return false;
	if (!atomic_load_explicit(&s->down, RLX))
		return true;
	if (s->hc)
		return false;
	uint64_t at = atomic_load_explicit(&s->retry_at_ns, RLX);
	*trial = at <= now;
	return *trial;
}

static uint64_t xorshift(uint64_t *st)
{
	uint64_t x = *st;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *st = x;
}

/* Candidate list: usable servers of the wanted kind (primary or backup) not tried yet. */
static unsigned candidates(struct sp_upstream *u, bool backup, const uint16_t *tried,
			   unsigned ntried, uint64_t now, uint16_t *out, bool *trial)
{
	unsigned n = 0;
	for (size_t i = 0; i < u->n_servers; i++) {
		struct sp_server *s = &u->servers[i];
		bool t;
		if (s->conf->backup != backup || tried_has(tried, ntried, (unsigned)i) ||
		    !usable(s, now, &t))
			continue;
		if (t) { /* a due trial wins over everything: it is how a server comes back */
			*trial = true;
			out[0] = (uint16_t)i;
			return 1;
		}
		out[n++] = (uint16_t)i;
	}
	return n;
}

/* nginx-style smooth weighted round robin over the candidates, this shard's weights. */
static unsigned pick_rr(struct sp_upstream *u, struct sp_pick_row *row, const uint16_t *c,
			unsigned n)
{
	int64_t total = 0;
	unsigned best = c[0];
	for (unsigned i = 0; i < n; i++) {
		unsigned k = c[i];
		int64_t w = u->servers[k].conf->weight;
		row->cur[k] += w;
		total += w;
		if (row->cur[k] > row->cur[best])
			best = k;
	}
	row->cur[best] -= total;
	return best;
}

/* a has fewer connections per weight than b */
static bool lighter(struct sp_upstream *u, unsigned a, unsigned b)
{
	uint64_t la = atomic_load_explicit(&u->servers[a].active, RLX);
	uint64_t lb = atomic_load_explicit(&u->servers[b].active, RLX);
	return la * u->servers[b].conf->weight < lb * u->servers[a].conf->weight;
}

static unsigned pick_least(struct sp_upstream *u, struct sp_pick_row *row, const uint16_t *c,
			   unsigned n)
{
	unsigned start = row->next++ % n; /* ties go round, not always to the first */
	unsigned best = c[start];
	for (unsigned i = 1; i < n; i++) {
		unsigned k = c[(start + i) % n];
		if (lighter(u, k, best))
			best = k;
	}
	return best;
}

/* Weighted rendezvous hashing: each server scores the key, the highest wins. A server
 * leaving moves only the keys it had; a weight w server wins w times as often. */
static unsigned pick_hash(struct sp_upstream *u, uint64_t key, const uint16_t *c, unsigned n)
{
	unsigned best = c[0];
	double best_score = -1;
	for (unsigned i = 0; i < n; i++) {
		unsigned k = c[i];
		uint64_t h = mix64(key ^ u->hkeys[k]);
		double unit = ((double)(h >> 11) + 0.5) / 9007199254740992.0; /* (0,1) */
		double score = (double)u->servers[k].conf->weight / -log(unit);
		if (score > best_score) {
			best_score = score;
			best = k;
		}
	}
	return best;
}

static unsigned weighted_random(struct sp_upstream *u, struct sp_pick_row *row,
				const uint16_t *c, unsigned n, int skip)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		if ((int)c[i] != skip)
			total += u->servers[c[i]].conf->weight;
	uint64_t r = xorshift(&row->rng) % total;
	for (unsigned i = 0; i < n; i++) {
		if ((int)c[i] == skip)
			continue;
		uint64_t w = u->servers[c[i]].conf->weight;
		if (r < w)
			return c[i];
		r -= w;
	}
	return c[n - 1];
}

/* Power of two choices: two different servers drawn by weight, the lighter one wins. */
static unsigned pick_two(struct sp_upstream *u, struct sp_pick_row *row, const uint16_t *c,
			 unsigned n)
{
	if (n == 1)
		return c[0];
	unsigned a = weighted_random(u, row, c, n, -1);
	unsigned b = weighted_random(u, row, c, n, (int)a);
	return lighter(u, b, a) ? b : a;
}

struct sp_server *sp_upstream_pick(struct sp_upstream *u, unsigned shard, uint64_t key,
				   const uint16_t *tried, unsigned ntried, uint64_t now_ns)
{
	uint16_t stackc[64];
	uint16_t *c = u->n_servers <= 64 ? stackc : malloc(u->n_servers * sizeof(*c));
	if (!c)
		return NULL;
	bool trial = false;
	unsigned n = candidates(u, false, tried, ntried, now_ns, c, &trial);
	if (!n)
		n = candidates(u, true, tried, ntried, now_ns, c, &trial);
	struct sp_server *s = NULL;
	if (n) {
		struct sp_pick_row *row = &u->rows[shard % u->set->nshards];
		unsigned k;
		if (trial)
			k = c[0];
		else if (u->conf->balance == SP_BALANCE_LEAST_CONN)
			k = pick_least(u, row, c, n);
		else if (u->conf->balance == SP_BALANCE_SOURCE_HASH)
			k = pick_hash(u, key, c, n);
		else if (u->conf->balance == SP_BALANCE_RANDOM_TWO)
			k = pick_two(u, row, c, n);
		else
			k = pick_rr(u, row, c, n);
		s = &u->servers[k];
		if (trial) /* one trial per retry period, whichever shard takes it */
			atomic_store_explicit(&s->retry_at_ns, now_ns + SP_PASSIVE_RETRY_NS, RLX);
		atomic_fetch_add_explicit(&s->active, 1, RLX);
	}
	if (c != stackc)
		free(c);
	return s;
}
