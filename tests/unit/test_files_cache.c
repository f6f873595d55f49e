/* SPDX-License-Identifier: MIT */
/*
 * test_files_cache.c - the files handler's per-shard open-file cache: hits, misses and
 * staleness by age; replacing an entry; the bound on entries (the clock evicts, fds are
 * closed); an entry a session still holds is never reused, even when every slot is held;
 * stale marks from other shards; content kept within the budget; a superseded entry
 * closed by its last user; racing misses of one path sharing one entry; references
 * dropped from other threads while the owner keeps inserting and superseding.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handlers/files.h"

static struct files_meta meta(uint64_t size)
{
	struct files_meta m = { .size = size, .mime = "text/plain" };
	snprintf(m.etag, sizeof(m.etag), "\"%llx\"", (unsigned long long)size);
	return m;
}

static int new_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

START_TEST(hit_miss_stale)
{
	struct files_cache *c = files_cache_create(8);
	bool stale;
	ck_assert_ptr_null(files_cache_find(c, "a.txt", 0, 1000, &stale));
	struct files_meta m = meta(5);
	int fd = new_fd();
	struct files_entry *e = files_cache_insert(c, "a.txt", fd, &m, 100);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_eq(files_cache_find(c, "a.txt", 500, 1000, &stale), e);
	ck_assert(!stale);
	ck_assert_ptr_eq(files_cache_find(c, "a.txt", 1100, 1000, &stale), e);
	ck_assert(stale); /* older than valid: to be checked again */
	files_entry_validated(e, 1100);
	files_cache_find(c, "a.txt", 1200, 1000, &stale);
	ck_assert(!stale);
	ck_assert_int_eq(files_entry_fd(e), fd);
	ck_assert_uint_eq(files_entry_meta(e)->size, 5);
	ck_assert_str_eq(files_entry_path(e), "a.txt");
	ck_assert_ptr_null(files_cache_find(c, "a.tx", 0, 1000, &stale));

	/* a second insert of the path replaces the first; the old fd is closed */
	int fd2 = new_fd();
	struct files_meta m2 = meta(7);
	struct files_entry *e2 = files_cache_insert(c, "a.txt", fd2, &m2, 2000);
	ck_assert_ptr_eq(files_cache_find(c, "a.txt", 2000, 1000, &stale), e2);
	ck_assert_uint_eq(files_entry_meta(e2)->size, 7);
	ck_assert(!fd_open(fd) || fd == fd2);
	files_cache_destroy(c);
	ck_assert(!fd_open(fd2));
}
END_TEST

START_TEST(bounded_and_held)
{
	enum { N = 16 };
	struct files_cache *c = files_cache_create(N);
	struct files_entry *held[N];
	char path[32];
	bool stale;
	struct files_meta m = meta(1);
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "f%d", i);
		held[i] = files_cache_insert(c, path, new_fd(), &m, 0);
		ck_assert_ptr_nonnull(held[i]);
		files_entry_get(held[i]); /* a session is sending it */
	}
	/* every slot is held: nothing can be evicted, the insert is refused */
	int fd = new_fd();
	ck_assert_ptr_null(files_cache_insert(c, "extra", fd, &m, 0));
	close(fd);
	/* one let go: its slot is taken, the others stay */
	int old_fd = files_entry_fd(held[3]);
	files_entry_put(held[3]);
	struct files_entry *e = files_cache_insert(c, "extra", new_fd(), &m, 0);
	ck_assert_ptr_eq(e, held[3]);
	ck_assert(!fd_open(old_fd) || old_fd == files_entry_fd(e));
	ck_assert_ptr_null(files_cache_find(c, "f3", 0, 1000, &stale));
	for (int i = 0; i < N; i++) {
		if (i == 3)
			continue;
		snprintf(path, sizeof(path), "f%d", i);
		ck_assert_ptr_eq(files_cache_find(c, path, 0, 1000, &stale), held[i]);
		files_entry_put(held[i]);
	}
	/* many more files than slots: the cache stays at N and keeps working */
	for (int i = 0; i < 10 * N; i++) {
		snprintf(path, sizeof(path), "g%d", i);
		ck_assert_ptr_nonnull(files_cache_insert(c, path, new_fd(), &m, 0));
		ck_assert_ptr_nonnull(files_cache_find(c, path, 0, 1000, &stale));
	}
	int live = 0;
	for (int i = 0; i < 10 * N; i++) {
		snprintf(path, sizeof(path), "g%d", i);
		live += files_cache_find(c, path, 0, 1000, &stale) != NULL;
	}
	ck_assert_int_le(live, N);
	ck_assert_int_ge(live, N / 2);
	files_cache_destroy(c);

	/* a cache of 0 entries holds nothing */
	c = files_cache_create(0);
	fd = new_fd();
	ck_assert_ptr_null(files_cache_insert(c, "a", fd, &m, 0));
	ck_assert_ptr_null(files_cache_find(c, "a", 0, 1000, &stale));
	close(fd);
	files_cache_destroy(c);
}
END_TEST

START_TEST(stale_marks_and_long_paths)
{
	struct files_cache *c = files_cache_create(4);
	struct files_meta m = meta(3);
	bool stale;
	struct files_entry *e = files_cache_insert(c, "x", new_fd(), &m, 0);
	files_entry_get(e);
	files_entry_mark_stale(e); /* seen changed from another shard */
	ck_assert_ptr_null(files_cache_find(c, "x", 0, 1000, &stale));
	/* still held: its fd stays open for the session that holds it */
	int held_fd = files_entry_fd(e);
	ck_assert(fd_open(held_fd));
	/* and closes when that session lets go, not when the clock comes round */
	files_entry_put(e);
	ck_assert(!fd_open(held_fd));
	char longp[600];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	int fd = new_fd();
	ck_assert_ptr_null(files_cache_insert(c, longp, fd, &m, 0)); /* not cached */
	close(fd);
	files_cache_destroy(c);
}
END_TEST

START_TEST(content_budget)
{
	struct files_cache *c = files_cache_create(4); /* budget: 2 x 64 KiB */
	static char data[FILES_CONTENT_MAX];
	memset(data, 'z', sizeof(data));
	struct files_meta m = meta(sizeof(data));
	struct files_entry *e[4];
	char path[8];
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "c%d", i);
		e[i] = files_cache_insert(c, path, new_fd(), &m, 0);
		files_cache_set_content(c, e[i], data, sizeof(data));
	}
	ck_assert_ptr_nonnull(files_entry_content(e[0]));
	ck_assert(!memcmp(files_entry_content(e[0]), data, sizeof(data)));
	ck_assert_ptr_nonnull(files_entry_content(e[1]));
	ck_assert_ptr_null(files_entry_content(e[2])); /* over the budget */
	ck_assert_ptr_null(files_entry_content(e[3]));
	/* a replaced entry gives its bytes back */
	struct files_meta changed = m;
	changed.mtime = 1;
	files_cache_insert(c, "c0", new_fd(), &changed, 0);
	bool stale;
	struct files_entry *n0 = files_cache_find(c, "c0", 0, 1000, &stale);
	files_cache_set_content(c, n0, data, sizeof(data));
	ck_assert_ptr_nonnull(files_entry_content(n0));
	files_cache_destroy(c);
}
END_TEST

static struct sp_file_cache_figures figures(struct files_cache *c)
{
	struct sp_file_cache_figures f = { 0 };
	files_cache_figures(c, &f);
	return f;
}

/* The file changes (or is replaced, or deleted) while responses are sent from its entry:
 * the entry leaves the index at once, and its fd is closed when the last of them ends. */
START_TEST(superseded_closed_by_last_user)
{
	struct files_cache *c = files_cache_create(8);
	struct files_meta m = meta(10), changed = meta(10);
	changed.ino = 2; /* replaced: another inode */
	bool stale;
	int fd = new_fd();
	struct files_entry *e = files_cache_insert(c, "big", fd, &m, 0);
	for (int i = 0; i < 3; i++)
		files_entry_get(e); /* three responses being sent */
	struct files_entry *n = files_cache_insert(c, "big", new_fd(), &changed, 0);
	ck_assert_ptr_ne(n, e);
	ck_assert_ptr_eq(files_cache_find(c, "big", 0, 1000, &stale), n);
	ck_assert(fd_open(fd)); /* still sent from */
	struct sp_file_cache_figures f = figures(c);
	ck_assert_uint_eq(f.capacity, 8);
	ck_assert_uint_eq(f.entries, 1);
	ck_assert_uint_eq(f.fds, 2);
	ck_assert_uint_eq(f.superseded, 1);
	files_entry_put(e);
	files_entry_put(e);
	ck_assert(fd_open(fd));
	files_entry_put(e); /* the last one */
	ck_assert(!fd_open(fd) || fd == files_entry_fd(n));
	f = figures(c);
	ck_assert_uint_eq(f.fds, 1);
	ck_assert_uint_eq(f.superseded, 0);
	/* its slot serves again */
	char path[16];
	for (int i = 0; i < 7; i++) {
		snprintf(path, sizeof(path), "o%d", i);
		ck_assert_ptr_nonnull(files_cache_insert(c, path, new_fd(), &m, 0));
	}
	ck_assert_uint_eq(figures(c).fds, 8);
	/* superseded while nobody held it: closed at once */
	fd = files_entry_fd(n);
	files_cache_insert(c, "big", new_fd(), &m, 0);
	ck_assert(!fd_open(fd) || fd == files_entry_fd(files_cache_find(c, "big", 0, 1000, &stale)));
	ck_assert_uint_eq(figures(c).fds, 8);
	files_cache_destroy(c);
}
END_TEST

/* Concurrent misses of one path (each opened the file, then inserts it): the first entry
 * serves them all, the later fds are closed, nothing is duplicated. */
START_TEST(racing_misses_share_one_entry)
{
	struct files_cache *c = files_cache_create(8);
	struct files_meta m = meta(100);
	struct files_entry *first = files_cache_insert(c, "f", new_fd(), &m, 0);
	files_entry_get(first);
	for (int i = 0; i < 20; i++) {
		int fd = new_fd();
		struct files_entry *e = files_cache_insert(c, "f", fd, &m, 0);
		ck_assert_ptr_eq(e, first);
		ck_assert(!fd_open(fd) || fd == files_entry_fd(first));
		files_entry_get(e);
	}
	struct sp_file_cache_figures f = figures(c);
	ck_assert_uint_eq(f.entries, 1);
	ck_assert_uint_eq(f.fds, 1);
	ck_assert_uint_eq(f.superseded, 0);
	for (int i = 0; i < 21; i++)
		files_entry_put(first);
	files_cache_destroy(c);
}
END_TEST

/* Other threads drop references while the owner keeps inserting: a held entry is
 * never reused (its path and fd stay what the holder saw). */
struct holder {
	struct files_entry *_Atomic slot;
	_Atomic bool stop;
	_Atomic long checks;
};

static void *hold_and_check(void *arg)
{
	struct holder *h = arg;
	while (!atomic_load(&h->stop)) {
		struct files_entry *e = atomic_exchange(&h->slot, NULL);
		if (!e)
			continue;
		char want[32];
		unsigned long long size = files_entry_meta(e)->size;
		snprintf(want, sizeof(want), "p%llu", size % 4 ? size : 0);
		ck_assert_str_eq(files_entry_path(e), want); /* not reused under us */
		files_entry_put(e);
		atomic_fetch_add(&h->checks, 1);
	}
	return NULL;
}

START_TEST(references_across_threads)
{
	struct files_cache *c = files_cache_create(8);
	struct holder h = { 0 };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, hold_and_check, &h), 0);
	/* paths come back: an entry is often superseded while the other thread holds it,
	 * and that thread's put then frees it */
	for (int i = 0; i < 20000; i++) {
		int fd = new_fd();
		char path[32];
		struct files_meta m = meta((uint64_t)i);
		snprintf(path, sizeof(path), "p%d", i % 4 ? i : 0); /* its size, or p0 */
		struct files_entry *e = files_cache_insert(c, path, fd, &m, 0);
		if (!e) {
			close(fd);
			continue;
		}
		files_entry_get(e);
		struct files_entry *prev = atomic_exchange(&h.slot, e);
		if (prev)
			files_entry_put(prev); /* the thread did not take it in time */
	}
	atomic_store(&h.stop, true);
	pthread_join(t, NULL);
	struct files_entry *left = atomic_exchange(&h.slot, NULL);
	if (left)
		files_entry_put(left);
	ck_assert_int_gt(atomic_load(&h.checks), 0);
	/* no superseded entry left behind, no fd but those of the index */
	struct sp_file_cache_figures f = figures(c);
	ck_assert_uint_eq(f.superseded, 0);
	ck_assert_uint_eq(f.fds, f.entries);
	ck_assert_uint_le(f.fds, 8);
	files_cache_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("files_cache");
	TCase *tc = tcase_create("cache");
	tcase_add_test(tc, hit_miss_stale);
	tcase_add_test(tc, bounded_and_held);
	tcase_add_test(tc, stale_marks_and_long_paths);
	tcase_add_test(tc, content_budget);
	tcase_add_test(tc, superseded_closed_by_last_user);
	tcase_add_test(tc, racing_misses_share_one_entry);
	tcase_add_test(tc, references_across_threads);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
