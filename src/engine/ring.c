/* SPDX-License-Identifier: MIT */
/*
 * ring.c - one shard's io_uring: setup with feature fallbacks, the opcode probe, and SQE
 * allocation (single SQEs and whole link chains).
 *
 * Setup tries the best flag set first and falls back on EINVAL (older kernels):
 *   SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG  (6.1+: completions only run when we enter
 *                                 the ring; the flag says when there are some waiting)
 *   SINGLE_ISSUER|DEFER_TASKRUN
 *   SINGLE_ISSUER|COOP_TASKRUN|TASKRUN_FLAG
 *   COOP_TASKRUN|TASKRUN_FLAG
 *   none
 * always with CQSIZE and SUBMIT_ALL. The CQ is cq_entries (default 4x the SQ: msg_ring
 * CQEs from other shards come on top of our own), with CLAMP: the kernel cuts it to its
 * maximum (IORING_MAX_CQ_ENTRIES, 65536 since 5.4) instead of refusing the ring, so any
 * SQ size the configuration accepts starts. A CQ that fills up is not a loss (NODROP,
 * 5.5+): the kernel keeps the extra CQEs in a backlog that we bring in with an enter.
 * EPERM/ENOSYS mean io_uring is forbidden (seccomp): no fallback.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "engine/shard.h"

static const struct {
	unsigned flags, feats;
	bool in_memory; /* an idle shard sees waiting completions without a syscall */
} setups[] = {
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	  SP_FEAT_SINGLE_ISSUER | SP_FEAT_DEFER_TASKRUN, true },
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	  SP_FEAT_SINGLE_ISSUER | SP_FEAT_DEFER_TASKRUN, false },
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	  SP_FEAT_SINGLE_ISSUER | SP_FEAT_COOP_TASKRUN, true },
	{ IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, SP_FEAT_COOP_TASKRUN, true },
	{ 0, 0, true }, /* task work interrupts us and posts completions to the CQ */
};

int sp_ring_setup(struct sp_shard *sh, unsigned entries, unsigned cq_entries, unsigned disable)
{
	int ret = -EINVAL;

	if (cq_entries < entries) /* the kernel takes no CQ smaller than the SQ */
		cq_entries = entries;

	for (size_t i = 0; i < sizeof(setups) / sizeof(setups[0]); i++) {
		if (setups[i].feats & disable)
			continue;
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = setups[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP |
			  IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = cq_entries;
		ret = io_uring_queue_init_params(entries, &sh->ring, &p);
		if (ret == 0) {
			sh->features = setups[i].feats;
			sh->events_in_memory = setups[i].in_memory;
			sh->cq_entries = p.cq_entries;
			break;
		}
		if (ret == -EPERM || ret == -ENOSYS || ret == -ENOMEM)
			return ret;
	}
	if (ret < 0)
		return ret;
	sh->ring_fd = sh->ring.ring_fd;

	struct io_uring_probe *probe = io_uring_get_probe_ring(&sh->ring);
	bool msg_ring = probe && io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
	if (probe && sh->idx == 0)
		for (unsigned op = 0; op < 256; op++)
			sh->eng->ops[op] = io_uring_opcode_supported(probe, (int)op);
	if (probe)
		io_uring_free_probe(probe);
	if (!msg_ring) {
		io_uring_queue_exit(&sh->ring);
		sp_log(SP_LOG_ERR, "io_uring here lacks IORING_OP_MSG_RING (kernel 5.18+ needed)");
		return -EOPNOTSUPP;
	}
	/* msg_ring sends skip their own CQE on success: kernel 5.17+, present with msg_ring */
	if (!(disable & SP_FEAT_CQE_SKIP))
		sh->features |= SP_FEAT_CQE_SKIP;
	if (!(disable & SP_FEAT_REG_RING_FD) && io_uring_register_ring_fd(&sh->ring) == 1)
		sh->features |= SP_FEAT_REG_RING_FD;
	return 0;
}

void sp_ring_log_features(struct sp_engine *eng)
{
	unsigned f = eng->features;
	struct sp_shard *sh = eng->shards[0];

	if (sh->cq_entries < eng->cfg.cq_entries)
		sp_log(SP_LOG_INFO, "engine: completion queue clamped to the kernel's maximum, "
		       "%u entries (%u asked)", sh->cq_entries, eng->cfg.cq_entries);
	sp_log(SP_LOG_INFO,
	       "engine: %u shards, io_uring %u entries (CQ %u), single_issuer=%s "
	       "defer_taskrun=%s coop_taskrun=%s registered_ring_fd=%s buf_ring=%s (%u x %u B) "
	       "steal=%s",
	       eng->nshards, sh->ring.sq.ring_entries, sh->cq_entries,
	       f & SP_FEAT_SINGLE_ISSUER ? "yes" : "no",
	       f & SP_FEAT_DEFER_TASKRUN ? "yes" : "no", f & SP_FEAT_COOP_TASKRUN ? "yes" : "no",
	       f & SP_FEAT_REG_RING_FD ? "yes" : "no", f & SP_FEAT_BUF_RING ? "yes" : "no",
	       sh->buf_count, sh->buf_size, eng->cfg.steal ? "on" : "off");
}

struct io_uring_sqe *sp_shard_sqe(struct sp_shard *sh)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);

	while (!sqe) {
		/* SQ full: hand the batch to the kernel now and take a fresh slot. */
		int ret = io_uring_submit(&sh->ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			sp_log(SP_LOG_ERR, "shard %u: submit: %s", sh->idx, strerror(-ret));
		st_add(sh, ST_SUBMITS, 1);
		sh->pending_sqes = 0;
		sqe = io_uring_get_sqe(&sh->ring);
	}
	sh->pending_sqes++;
	return sqe;
}

struct io_uring_sqe *sp_shard_sqes(struct sp_shard *sh, unsigned n)
{
	/* A chain cut by a submit runs in pieces: the head unlinked, a LINK_TIMEOUT alone
	 * fails with -EINVAL. So the whole chain goes in one submit: flush first when it
	 * does not fit in the slots left. */
	assert(n <= sh->ring.sq.ring_entries);
	while (io_uring_sq_space_left(&sh->ring) < n) {
		int ret = io_uring_submit(&sh->ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			sp_log(SP_LOG_ERR, "shard %u: submit: %s", sh->idx, strerror(-ret));
		st_add(sh, ST_SUBMITS, 1);
		sh->pending_sqes = 0;
	}
	return sp_shard_sqe(sh);
}
