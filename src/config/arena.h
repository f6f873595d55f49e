/* SPDX-License-Identifier: MIT */
/*
 * arena.h - the one allocator of the config loader: many small zeroed allocations freed
 * together. A config and its parse tree each live in one arena, so an error anywhere in
 * a half-built config is cleaned up by freeing the arena, and nothing leaks on reload.
 */
#ifndef SP_CONF_ARENA_H
#define SP_CONF_ARENA_H

#include <stddef.h>

struct sp_arena;

struct sp_arena *sp_arena_new(void);
void sp_arena_free(struct sp_arena *a); /* NULL ok */

/* Zeroed memory aligned for any type, or NULL when out of memory (or n * size
 * overflows). Lives until the arena is freed. */
void *sp_arena_alloc(struct sp_arena *a, size_t n, size_t size);
/* A NUL-terminated copy of s[0..len). */
char *sp_arena_strndup(struct sp_arena *a, const char *s, size_t len);
char *sp_arena_strdup(struct sp_arena *a, const char *s);

#endif
