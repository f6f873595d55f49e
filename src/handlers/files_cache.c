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

static _Atomic unsigned maps; /* mappings held, all shards */

struct files_entry {
	_Atomic uint32_t refs;  /* 0: free slot */
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
	for (uint32_t i = 0; i < max_entries; i++)
		c->slots[i].fd = -1;
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
}

/* Empty a slot nobody but the table holds. */
static void clear(struct files_cache *c, struct files_entry *e)
{
	unindex(c, e);
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	if (e->map) {
		munmap(e->map, e->map_len);
		atomic_fetch_sub_explicit(&maps, 1, memory_order_relaxed);
	}
	e->map = NULL;
	const char *content = atomic_load_explicit(&e->content, memory_order_relaxed);
	if (content) {
		c->content_bytes -= e->content_len;
		free((void *)content);
		atomic_store_explicit(&e->content, NULL, memory_order_relaxed);
	}
	atomic_store_explicit(&e->refs, 0, memory_order_relaxed);
}

void files_cache_destroy(struct files_cache *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->n; i++)
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
	unindex(c, e);
	if (only_table_holds(e))
		clear(c, e);
	/* else the clock reclaims it once the sessions holding it let go */
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

/* A slot to fill: free, or taken back from an entry only the table holds (clock). */
static struct files_entry *victim(struct files_cache *c)
{
	for (uint32_t step = 0; step < 2 * c->n; step++) {
		struct files_entry *e = &c->slots[c->hand];
		c->hand = c->hand + 1 == c->n ? 0 : c->hand + 1;
		uint32_t refs = atomic_load_explicit(&e->refs, memory_order_acquire);
		if (refs == 0)
			return e;
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
	struct files_entry *old = files_cache_find(c, path, now_ns, 0, &stale);
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
	return e;
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
}

void files_entry_get(struct files_entry *e)
{
	atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void files_entry_put(struct files_entry *e)
{
	/* release: this session's reads of the entry come before the owner's reuse */
	atomic_fetch_sub_explicit(&e->refs, 1, memory_order_release);
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
