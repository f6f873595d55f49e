/* SPDX-License-Identifier: MIT */
/*
 * mime.c - extension -> Content-Type, an open-addressing hash table sized once. Keys
 * are lower-case extensions of at most MAX_EXT bytes; values point into the built-in
 * table or into one block holding the strings read from the mime.types file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/mime.h"

#define MAX_EXT 15
#define MAX_TYPE 127
#define MAX_FILE_ENTRIES 16384 /* bounds memory whatever the file holds */

struct slot {
	char ext[MAX_EXT + 1];
	const char *type;
};

struct sp_mime {
	struct slot *slots;
	size_t mask;
	char *strings; /* the file's types, NUL-separated */
};

static const char *const builtin[][2] = {
	{ "html", "text/html; charset=utf-8" }, { "htm", "text/html; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },   { "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" }, { "json", "application/json" },
	{ "map", "application/json" },          { "txt", "text/plain; charset=utf-8" },
	{ "md", "text/markdown; charset=utf-8" }, { "csv", "text/csv; charset=utf-8" },
	{ "xml", "application/xml" },           { "svg", "image/svg+xml" },
	{ "png", "image/png" },                 { "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },               { "gif", "image/gif" },
	{ "webp", "image/webp" },               { "avif", "image/avif" },
	{ "ico", "image/x-icon" },              { "woff", "font/woff" },
	{ "woff2", "font/woff2" },              { "ttf", "font/ttf" },
	{ "otf", "font/otf" },                  { "wasm", "application/wasm" },
	{ "pdf", "application/pdf" },           { "zip", "application/zip" },
	{ "gz", "application/gzip" },           { "tar", "application/x-tar" },
	{ "mp4", "video/mp4" },                 { "webm", "video/webm" },
	{ "mp3", "audio/mpeg" },                { "ogg", "audio/ogg" },
	{ "wav", "audio/wav" },                 { "xhtml", "application/xhtml+xml" },
};
#define N_BUILTIN (sizeof(builtin) / sizeof(builtin[0]))

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Lower-case ext[0..n) into key; false if it cannot be a key. */
static bool make_key(const char *ext, size_t n, char key[MAX_EXT + 1])
{
	if (n == 0 || n > MAX_EXT)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = ext[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		key[i] = c;
	}
	key[n] = '\0';
	return true;
}

static struct slot *find(const struct sp_mime *m, const char *key, size_t n)
{
	for (size_t i = hash(key, n) & m->mask;; i = (i + 1) & m->mask) {
		struct slot *s = &m->slots[i];
		if (!s->type || !strcmp(s->ext, key))
			return s;
	}
}

/* Insert unless present (the first definition wins). */
static void add(struct sp_mime *m, const char *ext, size_t n, const char *type)
{
	char key[MAX_EXT + 1];
	if (!make_key(ext, n, key))
		return;
	struct slot *s = find(m, key, n);
	if (s->type)
		return;
	memcpy(s->ext, key, n + 1);
	s->type = type;
}

/* Read "type ext ext..." lines. First pass (m NULL): count extensions and the bytes of
 * the types into *string_bytes. Second pass: add them, copying types into m->strings,
 * at most *string_bytes (the file may have changed in between). Returns the count. */
static size_t read_file(FILE *f, struct sp_mime *m, size_t *string_bytes)
{
	char line[1024];
	size_t exts = 0, used = 0;
	while (fgets(line, sizeof(line), f) && exts < MAX_FILE_ENTRIES) {
		char *save = NULL, *type = strtok_r(line, " \t\r\n", &save);
		if (!type || type[0] == '#' || strlen(type) > MAX_TYPE || !strchr(type, '/'))
			continue;
		const char *stored = NULL;
		char *ext;
		while ((ext = strtok_r(NULL, " \t\r\n", &save)) && exts < MAX_FILE_ENTRIES) {
			if (ext[0] == '#')
				break;
			exts++;
			if (!m)
				continue;
			if (!stored) {
				if (used + strlen(type) + 1 > *string_bytes)
					return exts;
				stored = m->strings + used;
				memcpy(m->strings + used, type, strlen(type) + 1);
				used += strlen(type) + 1;
			}
			add(m, ext, strlen(ext), stored);
		}
		if (!m)
			*string_bytes += strlen(type) + 1;
	}
	return exts;
}

int sp_mime_create(const char *path, struct sp_mime **out, size_t *loaded)
{
	struct sp_mime *m = calloc(1, sizeof(*m));
	FILE *f = path ? fopen(path, "re") : NULL;
	size_t exts = 0, bytes = 0;
	*loaded = 0;
	if (!m)
		goto nomem;
	if (f)
		exts = read_file(f, NULL, &bytes);
	size_t cap = 64;
	while (cap < 2 * (exts + N_BUILTIN))
		cap <<= 1;
	m->slots = calloc(cap, sizeof(*m->slots));
	m->strings = malloc(bytes + 1);
	if (!m->slots || !m->strings)
		goto nomem;
	m->mask = cap - 1;
	for (size_t i = 0; i < N_BUILTIN; i++)
		add(m, builtin[i][0], strlen(builtin[i][0]), builtin[i][1]);
	if (f) {
		rewind(f);
		*loaded = read_file(f, m, &bytes);
		fclose(f);
	}
	*out = m;
	return 0;
nomem:
	if (f)
		fclose(f);
	sp_mime_free(m);
	return -ENOMEM;
}

void sp_mime_free(struct sp_mime *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->strings);
	free(m);
}

const char *sp_mime_lookup(const struct sp_mime *m, const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dot = strrchr(base, '.');
	char key[MAX_EXT + 1];
	if (dot && dot != base && make_key(dot + 1, strlen(dot + 1), key)) {
		const struct slot *s = find(m, key, strlen(key));
		if (s->type)
			return s->type;
	}
	return "application/octet-stream";
}
