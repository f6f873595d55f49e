/* SPDX-License-Identifier: MIT */
/*
 * files_cache.c - the open-file cache of one shard: path -> open fd, metadata, and the
 * content of files up to FILES_CONTENT_MAX, so a hit costs no open, no stat and for small
 * files no read. Bounded twice: max_entries slots, allocated once, and a content budget.
 *
 * Only the owning shard touches the index, the clock bits and the slots' contents.
 * Sessions, which may move to other shards, hold references: `refs` counts the table's
 * own reference (1 while a slot is occupied) plus one per session. A session drops its
 * reference with a release decrement; the owner reuses a slot only after an acquire
 * load sees refs == 1, so a session's last read of the content happens before the free.
 * `checked` and `stale` are the two fields other shards may write (relaxed atomics).
 *
 * An entry superseded while sessions hold it (the file changed, or another miss of the
 * same path inserted a newer one) leaves the index at once and gives up the table's
 * reference: refs then carries SUPERSEDED, and whoever takes refs to SUPERSEDED + 0, the
 * last session or the owner, closes its fd, unmaps and frees it, then stores 0 (release):
 * a replaced or deleted file is let go when its last response ends, not when the clock
 * comes round. Misses of one path that race each other keep the first entry when it is
 * the same file (the later ones close their fd). So the fds a cache holds are at most its
 * slots, max_entries, whatever the load; `files_cache_figures` counts them.
 *
 * Where cachestat(2) cannot be called, an entry of FILES_SENDFILE_MIN bytes or more
 * also holds a read-only mapping of the file, never touched: mincore(2) on it tells
 * which pages are in the page cache (for files the daemon's user owns or may write;
 * for others it reports none, and the body goes by splice). Mappings cost address
 * space and count against vm.max_map_count (65530), which malloc and thread stacks
 * share: at most MAPS_MAX of them in the process, of files up to MAP_FILE_MAX.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handlers/files.h"

#define NIL UINT32_MAX
#define PATH_INLINE 240 /* longer paths are not cached */
#define MAPS_MAX 8192
#define MAP_FILE_MAX (1ull << 30)
#define SUPERSEDED (1u << 31) /* in refs: out of the table; the last holder frees it */

static _Atomic unsigned maps; /* mappings held, all shards */

struct files_entry {
	_Atomic uint32_t refs;  /* 0: free slot; SUPERSEDED + sessions holding it */
	struct files_cache *cache;
	_Atomic bool stale;
	bool indexed;
	bool used;              /* clock bit */
	uint32_t next;          /* hash chain */
	uint32_t hash;
	_Atomic uint64_t checked; /* last validation, ns */
	int fd;
	const char *_Atomic content;
	size_t content_len;
	void *map;              /* the file mapped, for mincore, or NULL */
	size_t map_len;
	struct files_meta meta;
	uint16_t path_len;
	char path[PATH_INLINE];
};

struct files_cache {
	struct files_entry *slots;
	uint32_t n, hand;
	uint32_t *buckets;
	uint32_t mask;
	size_t content_bytes, content_budget;
	/* read by the stats from any thread: written by the owner, fds and superseded also
	 * by the last session that lets a superseded entry go */
	_Atomic uint32_t indexed, fds, superseded;
	struct sp_shard *_Atomic owner; /* the shard that inserts (NULL: none seen yet) */
};

static uint32_t hash_path(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

struct files_cache *files_cache_create(unsigned max_entries)
{
	struct files_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->n = max_entries;
	uint32_t nb = 16;
	while (nb < 2 * max_entries)
		nb <<= 1;
	c->mask = nb - 1;
	c->slots = calloc(max_entries ? max_entries : 1, sizeof(*c->slots));
	c->buckets = malloc(nb * sizeof(*c->buckets));
	if (!c->slots || !c->buckets) {
		free(c->slots);
		free(c->buckets);
		free(c);
		return NULL;
	}
	for (uint32_t i = 0; i < nb; i++)
		c->buckets[i] = NIL;
	for (uint32_t i = 0; i < max_entries; i++) {
		c->slots[i].fd = -1;
		c->slots[i].cache = c;
	}
	/* at most a quarter of the slots can hold content of the largest size */
	c->content_budget = (size_t)(max_entries / 4 + 1) * FILES_CONTENT_MAX;
	return c;
}

static void unindex(struct files_cache *c, struct files_entry *e)
{
	if (!e->indexed)
		return;
	uint32_t idx = (uint32_t)(e - c->slots);
	uint32_t *link = &c->buckets[e->hash & c->mask];
	while (*link != idx)
		link = &c->slots[*link].next;
	*link = e->next;
	e->indexed = false;
	atomic_fetch_sub_explicit(&c->indexed, 1, memory_order_relaxed);
}

/* The fd, the mapping and the content of an entry nobody else holds (owner, or the last
 * session of a superseded entry: all of it is safe from any thread). */
static void let_go(struct files_entry *e)
{
	if (e->fd >= 0) {
		close(e->fd);
		atomic_fetch_sub_explicit(&e->cache->fds, 1, memory_order_relaxed);
	}
	e->fd = -1;
	if (e->map) {
		munmap(e->map, e->map_len);
		atomic_fetch_sub_explicit(&maps, 1, memory_order_relaxed);
	}
	e->map = NULL;
	free((void *)atomic_load_explicit(&e->content, memory_order_relaxed));
	atomic_store_explicit(&e->content, NULL, memory_order_relaxed);
	e->content_len = 0;
}

/* Empty a slot nobody but the table holds. */
static void clear(struct files_cache *c, struct files_entry *e)
{
	unindex(c, e);
	if (atomic_load_explicit(&e->content, memory_order_relaxed))
		c->content_bytes -= e->content_len;
	let_go(e);
	atomic_store_explicit(&e->refs, 0, memory_order_relaxed);
}

/* The last holder of a superseded entry: free it, then the slot (release: the owner's
 * reuse, after its acquire load of 0, comes after all of this). */
static void superseded_done(struct files_entry *e)
{
	struct files_cache *c = e->cache;
	let_go(e);
	atomic_fetch_sub_explicit(&c->superseded, 1, memory_order_relaxed);
	atomic_store_explicit(&e->refs, 0, memory_order_release);
}

void files_cache_destroy(struct files_cache *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->n; i++) /* superseded ones went with their sessions */
		if (atomic_load_explicit(&c->slots[i].refs, memory_order_acquire))
			clear(c, &c->slots[i]);
	free(c->slots);
	free(c->buckets);
	free(c);
}

static bool only_table_holds(struct files_entry *e)
{
	return atomic_load_explicit(&e->refs, memory_order_acquire) == 1;
}

void files_cache_drop(struct files_cache *c, struct files_entry *e)
{
	if (!e->indexed)
		return; /* superseded already */
	if (only_table_holds(e)) {
		clear(c, e);
		return;
	}
	/* sessions hold it: out of the index, its content out of the budget, and the
	 * table's reference turned into the SUPERSEDED mark */
	unindex(c, e);
	if (atomic_load_explicit(&e->content, memory_order_relaxed))
		c->content_bytes -= e->content_len;
	atomic_fetch_add_explicit(&c->superseded, 1, memory_order_relaxed);
	uint32_t was = atomic_fetch_add_explicit(&e->refs, SUPERSEDED - 1, memory_order_acq_rel);
	if (was == 1) /* the last session let go in the meantime */
		superseded_done(e);
}

struct files_entry *files_cache_find(struct files_cache *c, const char *path, uint64_t now_ns,
				     uint64_t valid_ns, bool *stale)
{
	size_t n = strlen(path);
	*stale = false;
	if (!c->n || n >= PATH_INLINE)
		return NULL;
	uint32_t h = hash_path(path, n);
	for (uint32_t i = c->buckets[h & c->mask]; i != NIL; i = c->slots[i].next) {
		struct files_entry *e = &c->slots[i];
		if (e->hash != h || e->path_len != n || memcmp(e->path, path, n))
			continue;
		if (atomic_load_explicit(&e->stale, memory_order_relaxed)) {
			files_cache_drop(c, e);
			return NULL;
		}
		e->used = true;
		*stale = now_ns - atomic_load_explicit(&e->checked, memory_order_relaxed) >= valid_ns;
		return e;
	}
	return NULL;
}

/* The same file as far as the cache can tell (what a revalidation compares). */
static bool same_meta(const struct files_meta *a, const struct files_meta *b)
{
	return a->ino == b->ino && a->dev == b->dev && a->size == b->size &&
	       a->mtime == b->mtime && a->mtime_nsec == b->mtime_nsec && a->ctime == b->ctime &&
	       a->ctime_nsec == b->ctime_nsec;
}

/* A slot to fill: free, or taken back from an entry only the table holds (clock). */
static struct files_entry *victim(struct files_cache *c)
{
	for (uint32_t step = 0; step < 2 * c->n; step++) {
		struct files_entry *e = &c->slots[c->hand];
		c->hand = c->hand + 1 == c->n ? 0 : c->hand + 1;
		uint32_t refs = atomic_load_explicit(&e->refs, memory_order_acquire);
		if (refs == 0)
			return e;
		if (refs & SUPERSEDED)
			continue; /* its last session frees it */
		if (e->indexed && e->used) {
			e->used = false; /* a second chance */
			continue;
		}
		if (refs == 1) {
			clear(c, e);
			return e;
		}
	}
	return NULL; /* every entry is being sent right now */
}

static void map_file(struct files_entry *e, int fd, size_t size)
{
	if (atomic_fetch_add_explicit(&maps, 1, memory_order_relaxed) >= MAPS_MAX) {
		atomic_fetch_sub_explicit(&maps, 1, memory_order_relaxed);
		return;
	}
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		atomic_fetch_sub_explicit(&maps, 1, memory_order_relaxed);
		return;
	}
	e->map = m;
	e->map_len = size;
}

struct files_entry *files_cache_insert(struct files_cache *c, const char *path, int fd,
				       const struct files_meta *meta, uint64_t now_ns)
{
	size_t n = strlen(path);
	bool stale;
	if (!c->n || n >= PATH_INLINE)
		return NULL;
	atomic_store_explicit(&c->owner, sp_shard_current(), memory_order_relaxed);
	struct files_entry *old = files_cache_find(c, path, now_ns, 0, &stale);
	if (old && same_meta(files_entry_meta(old), meta)) {
		/* misses of one path that raced each other: the first entry serves them all */
		close(fd);
		files_entry_validated(old, now_ns);
		return old;
	}
	if (old)
		files_cache_drop(c, old);
	struct files_entry *e = victim(c);
	if (!e)
		return NULL;
	e->fd = fd;
	e->meta = *meta;
	e->path_len = (uint16_t)n;
	memcpy(e->path, path, n + 1);
	e->hash = hash_path(path, n);
	e->used = false;
	e->content_len = 0;
	e->map = NULL;
	bool sized = meta->size >= FILES_SENDFILE_MIN && meta->size <= MAP_FILE_MAX;
	if (sized && files_cachestat_probe())
		map_file(e, fd, (size_t)meta->size);
	atomic_store_explicit(&e->content, NULL, memory_order_relaxed);
	atomic_store_explicit(&e->stale, false, memory_order_relaxed);
	atomic_store_explicit(&e->checked, now_ns, memory_order_relaxed);
	atomic_store_explicit(&e->refs, 1, memory_order_relaxed);
	uint32_t idx = (uint32_t)(e - c->slots);
	e->next = c->buckets[e->hash & c->mask];
	c->buckets[e->hash & c->mask] = idx;
	e->indexed = true;
	atomic_fetch_add_explicit(&c->indexed, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->fds, 1, memory_order_relaxed);
	return e;
}

void files_cache_figures(const struct files_cache *c, struct sp_file_cache_figures *f)
{
	f->capacity += c->n;
	f->entries += atomic_load_explicit(&c->indexed, memory_order_relaxed);
	f->fds += atomic_load_explicit(&c->fds, memory_order_relaxed);
	f->superseded += atomic_load_explicit(&c->superseded, memory_order_relaxed);
}

void files_cache_set_content(struct files_cache *c, struct files_entry *e, const char *data,
			     size_t len)
{
	if (!e->indexed || atomic_load_explicit(&e->content, memory_order_relaxed) ||
	    len > FILES_CONTENT_MAX || c->content_bytes + len > c->content_budget)
		return;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, data, len);
	e->content_len = len;
	c->content_bytes += len;
	/* release: a session that sees the pointer sees the bytes */
	atomic_store_explicit(&e->content, copy, memory_order_release);
}

void files_entry_validated(struct files_entry *e, uint64_t now_ns)
{
	atomic_store_explicit(&e->checked, now_ns, memory_order_relaxed);
}

void files_entry_mark_stale(struct files_entry *e)
{
	atomic_store_explicit(&e->stale, true, memory_order_relaxed);
	/* on the entry's own shard (most often), out of the index at once: the caller's put
	 * is then the last one and closes the file, which may be deleted */
	struct sp_shard *here = sp_shard_current();
	if (here && here == atomic_load_explicit(&e->cache->owner, memory_order_relaxed))
		files_cache_drop(e->cache, e);
}

void files_entry_get(struct files_entry *e)
{
	atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void files_entry_put(struct files_entry *e)
{
	/* release: this session's reads of the entry come before the owner's reuse; acquire:
	 * the last holder of a superseded entry frees what the owner filled in */
	if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == SUPERSEDED + 1)
		superseded_done(e);
}

int files_entry_fd(const struct files_entry *e)
{
	return e->fd;
}

const struct files_meta *files_entry_meta(const struct files_entry *e)
{
	return &e->meta;
}

const char *files_entry_content(const struct files_entry *e)
{
	return atomic_load_explicit(&((struct files_entry *)e)->content, memory_order_acquire);
}

const void *files_entry_map(const struct files_entry *e, size_t *len)
{
	*len = e->map_len;
	return e->map;
}

const char *files_entry_path(const struct files_entry *e)
{
	return e->path;
}

bool sp_figures_file_cache(const struct sp_route *r, unsigned nshards,
			   struct sp_file_cache_figures *f)
{
	memset(f, 0, sizeof(*f));
	const struct sp_stage *h = r->n_stages ? &r->stages[r->n_stages - 1] : NULL;
	if (!h || h->ops->kind != SP_STAGE_FILES || !h->state)
		return false;
	const struct files_stage *fs = h->state;
	for (unsigned i = 0; fs->caches && i < nshards && i < fs->nshards; i++)
		if (fs->caches[i])
			files_cache_figures(fs->caches[i], f);
	return true;
}
