/* SPDX-License-Identifier: MIT */
/*
 * mime.h - Content-Type by file extension: a built-in table of the common web types,
 * completed by a mime.types file (/etc/mime.types) when one is present. Built once on
 * the main thread when a generation is prepared, then only read, by every shard.
 */
#ifndef SP_HTTP_MIME_H
#define SP_HTTP_MIME_H

#include <stddef.h>

struct sp_mime;

/* Build the table: the built-in types, plus those of path (NULL or missing: none). The
 * built-in entries win over the file's. Returns 0 or -ENOMEM; *loaded gets how many
 * extensions came from the file. */
int sp_mime_create(const char *path, struct sp_mime **out, size_t *loaded);
void sp_mime_free(struct sp_mime *m);

/* The type for the file name or path name (its last extension, case-insensitive);
 * "application/octet-stream" when unknown. */
const char *sp_mime_lookup(const struct sp_mime *m, const char *name);

#endif
