/* SPDX-License-Identifier: MIT */
/* arena.c - a chunked bump allocator for the config loader (see arena.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/arena.h"

#define CHUNK_SIZE 16384

struct chunk {
	struct chunk *next;
	size_t used, size;
	max_align_t data[]; /* aligned for anything handed out */
};

struct sp_arena {
	struct chunk *head;
};

struct sp_arena *sp_arena_new(void)
{
	return calloc(1, sizeof(struct sp_arena));
}

void sp_arena_free(struct sp_arena *a)
{
	if (!a)
		return;
	for (struct chunk *c = a->head, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

void *sp_arena_alloc(struct sp_arena *a, size_t n, size_t size)
{
	const size_t align = sizeof(max_align_t);
	if (size && n > SIZE_MAX / size)
		return NULL;
	size_t want = n * size;
	if (want > SIZE_MAX - 2 * align)
		return NULL;
	want = (want + align - 1) & ~(align - 1);
	if (!want)
		want = align; /* distinct non-NULL pointers for empty arrays */

	struct chunk *c = a->head;
	if (!c || c->size - c->used < want) {
		/* big requests get a chunk of their own, kept behind the current one so the
		 * current chunk's free space is not wasted */
		size_t cap = want > CHUNK_SIZE / 4 ? want : CHUNK_SIZE;
		struct chunk *n_c = malloc(sizeof(*n_c) + cap);
		if (!n_c)
			return NULL;
		n_c->used = 0;
		n_c->size = cap;
		if (c && cap == want) {
			n_c->next = c->next;
			c->next = n_c;
		} else {
			n_c->next = c;
			a->head = n_c;
		}
		c = n_c;
	}
	void *p = (char *)c->data + c->used;
	c->used += want;
	memset(p, 0, want);
	return p;
}

char *sp_arena_strndup(struct sp_arena *a, const char *s, size_t len)
{
	char *d = sp_arena_alloc(a, 1, len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

char *sp_arena_strdup(struct sp_arena *a, const char *s)
{
	return sp_arena_strndup(a, s, strlen(s));
}
