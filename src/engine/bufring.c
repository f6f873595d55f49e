/* SPDX-License-Identifier: MIT */
/*
 * bufring.c - each shard's provided buffer ring (group SP_BUF_GROUP): receives pick a
 * buffer when data arrives, so an idle connection holds no buffer. An empty ring makes
 * the receive fail with -ENOBUFS: counted here, handled by the caller (re-arm after
 * recycling), never fatal. A buffer the kernel lent can wait in a FIFO (sp_bufq) whose
 * links are kept here, one per buffer: queueing allocates nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/log.h"
#include "engine/shard.h"

int sp_bufring_setup(struct sp_shard *sh)
{
	const struct sp_engine_config *cfg = &sh->eng->cfg;
	unsigned n = cfg->buf_count;

	if (!n || (cfg->disable & SP_FEAT_BUF_RING))
		return 0;
	if (n & (n - 1) || n > 32768)
		return -EINVAL;
	sh->buf_count = n;
	sh->buf_size = cfg->buf_size ? cfg->buf_size : 16384;
	sh->br_len = n * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, sh->br_len, PROT_READ | PROT_WRITE,
			 MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	sh->buf_links = calloc(n, sizeof(*sh->buf_links));
	if (!sh->buf_links || posix_memalign((void **)&sh->bufs, 4096, (size_t)n * sh->buf_size)) {
		free(sh->buf_links);
		sh->buf_links = NULL;
		munmap(mem, sh->br_len);
		return -ENOMEM;
	}
	sh->br = mem;
	io_uring_buf_ring_init(sh->br);

	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = n;
	reg.bgid = SP_BUF_GROUP;
	int ret = io_uring_register_buf_ring(&sh->ring, &reg, 0);
	if (ret < 0) {
		/* Kernel < 5.19: no provided buffer rings. Receives then need their own
		 * buffers; say so once and go on. */
		sp_log(SP_LOG_WARN, "shard %u: buffer ring not available (%s)", sh->idx,
		       strerror(-ret));
		sp_bufring_free(sh);
		return 0;
	}
	for (unsigned bid = 0; bid < n; bid++)
		io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)bid * sh->buf_size, sh->buf_size,
				      (unsigned short)bid, io_uring_buf_ring_mask(n), (int)bid);
	io_uring_buf_ring_advance(sh->br, (int)n);
	sh->features |= SP_FEAT_BUF_RING;
	st_set(sh, ST_BUFS_FREE, n);
	return 0;
}

void sp_bufring_free(struct sp_shard *sh)
{
	if (sh->br)
		munmap(sh->br, sh->br_len);
	free(sh->bufs);
	free(sh->buf_links);
	sh->br = NULL;
	sh->bufs = NULL;
	sh->buf_links = NULL;
	sh->buf_count = 0;
}

void *sp_buf_addr(struct sp_shard *sh, unsigned bid)
{
	return sh->bufs + (size_t)bid * sh->buf_size;
}

unsigned sp_buf_size(const struct sp_shard *sh)
{
	return sh->buf_size;
}

void sp_buf_recycle(struct sp_shard *sh, unsigned bid)
{
	io_uring_buf_ring_add(sh->br, sp_buf_addr(sh, bid), sh->buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(sh->buf_count), 0);
	/* advance is a release store of the ring tail: the kernel sees the entry first */
	io_uring_buf_ring_advance(sh->br, 1);
	st_add(sh, ST_BUFS_FREE, 1);
}

void sp_bufq_push(struct sp_shard *sh, struct sp_bufq *q, unsigned bid, uint32_t len)
{
	sh->buf_links[bid].next = -1;
	sh->buf_links[bid].len = len;
	if (q->tail >= 0)
		sh->buf_links[q->tail].next = (int32_t)bid;
	else
		q->head = (int32_t)bid;
	q->tail = (int32_t)bid;
	q->count++;
}

int sp_bufq_pop(struct sp_shard *sh, struct sp_bufq *q, uint32_t *len)
{
	int32_t bid = q->head;
	if (bid < 0)
		return -1;
	*len = sh->buf_links[bid].len;
	q->head = sh->buf_links[bid].next;
	if (q->head < 0)
		q->tail = -1;
	q->count--;
	return bid;
}

void sp_bufq_recycle(struct sp_shard *sh, struct sp_bufq *q)
{
	uint32_t len;
	int bid;
	while ((bid = sp_bufq_pop(sh, q, &len)) >= 0)
		sp_buf_recycle(sh, (unsigned)bid);
}

void sp_sqe_select_buffer(struct io_uring_sqe *sqe)
{
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SP_BUF_GROUP;
}
