/* SPDX-License-Identifier: MIT */
/*
 * relay.h - a full-duplex byte relay between two connected sockets, for handlers that
 * pass a client's bytes through (proxy; TLS termination and origination later).
 *
 * Each direction receives with a multishot receive into buffers of the shard's
 * provided-buffer ring (taken by the kernel only when data arrives, so an idle connection
 * holds no buffer), and sends each buffer all before the next, giving it back once sent.
 * The receive stays armed from one message to the next: no resubmission, no failed first
 * attempt and no poll armed per message (a proxied request and its response cost 11% less
 * CPU in the proxy than with a receive per message). What arrives while a send is in
 * flight waits in a FIFO (sp_bufq). The kernel ends the receive after a few buffers' worth
 * of bytes (its limit), and we stop it when a few buffers wait, so a slow reader stops the
 * receives from its peer instead of making us buffer (back-pressure through the kernel's
 * socket buffers); the next receive starts when the queue has drained. A direction that
 * has streamed once receives one buffer at a time from then on. Kernels before 6.17 have
 * no such limit: one receive per message there (as with SPARGIOD_PROXY_NO_MULTISHOT).
 * When the ring is empty (or missing) a direction uses a buffer of its shard's pool
 * instead, with a receive that does not wait: the buffer is given back once its bytes are
 * sent, or at once when none were there (a poll then waits for the next, holding nothing),
 * so an idle connection holds no buffer whatever came before.
 *
 * A direction that streams (a receive filled a whole buffer) moves on by splice(2)
 * instead, from the shard, without copying: socket -> pipe -> socket, both sockets
 * non-blocking, so a call never waits; a poll when one side is not ready, back to
 * receives into provided buffers when the sender pauses with the pipe empty. Pipes come
 * from a per-shard pool and go back to it, so an idle connection holds none. Where
 * splice is refused (a seccomp filter), a streaming direction keeps a pool buffer.
 *
 * A direction that starts streaming also caps what its `to` socket holds unsent
 * (TCP_NOTSENT_LOWAT): with megabytes queued, the kernel sends them from the receiver's
 * side as its ACKs arrive, so over loopback one core does the work of both ends; with a
 * short queue we add as it drains, and sender and receiver run side by side (1 MiB
 * responses through the proxy 1.3x faster with 50 connections, 1.5x with 500).
 *
 * End of stream in one direction becomes shutdown(SHUT_WR) on the other socket (half
 * close); both directions finished ends the relay. A reset or error on one side ends it
 * and the owner resets the other side. No byte moves for idle_ns (none received, none
 * sent: a slow reader draining a long response is not idle): the relay ends.
 *
 * Where TLS goes: a relay end is a socket today. A TLS end (a later issue) will sit on
 * the buffered path between the receive and the send of a direction: what a direction
 * received is handed on as (data, len) in dir_send(), which is the one place where
 * decrypting (bytes from a TLS end) or encrypting (bytes to a TLS end) will slot in, with
 * the record layer's own buffer replacing the provided buffer while it holds data. A
 * TLS end never splices: its bytes must pass through the record layer.
 *
 * The session must be pinned (sp_stage_ops.pinned): provided buffers go back to the ring
 * of the shard that lent them, which is the shard the session runs on.
 */
#ifndef SP_RELAY_H
#define SP_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"

struct sp_relay;

struct sp_relay_dir {
	struct sp_relay *r;
	int from, to;
	struct sp_op recv_op, send_op;
	uint8_t *data;    /* bytes being sent */
	uint8_t *own;     /* a pool buffer (the ring ran dry, or streaming), from a receive
			   * that found bytes until they are sent */
	uint64_t *bytes;  /* the session counter this direction adds to */
	uint32_t len, off;
	int32_t bid;      /* provided buffer being sent, -1: none */
	struct sp_bufq queue; /* provided buffers received while sending, to send next */
	bool multishot;   /* recv_op is a multishot receive */
	bool stopping;    /* we cancelled it: its -ECANCELED is no stop of the relay */
	bool streaming;   /* a receive filled its buffer since the direction last paused */
	bool streamed;    /* it did once: one receive at a time from then on, and `to` has
			   * TCP_NOTSENT_LOWAT */
	bool dry;         /* the ring ran dry: the next receive into a pool buffer */
	bool fin;         /* `from` sent its FIN; `to` is shut down once the queue is sent */
	bool eof;         /* `from` sent its FIN and `to` was shut down for writing */
	int pipe_rd, pipe_wr; /* the pipe while splicing (recv_op and send_op poll), else -1 */
	uint32_t pipe_bytes;  /* spliced in, not yet out */
};

/* How the relay ended: reason NULL for a clean close; reset_fd >= 0 is the socket whose
 * peer should see a reset (the other side reset or failed). */
typedef void (*sp_relay_end_fn)(struct sp_relay *r, const char *reason, int reset_fd);

struct sp_relay {
	struct sp_relay_dir up, down; /* client -> server, server -> client */
	struct sp_timer idle;
	uint64_t idle_ns, last_ns;
	unsigned notsent_lowat;       /* for a streaming direction's `to`; 0: none */
	struct sp_shard *shard;       /* whose ring lends the buffers */
	sp_relay_end_fn end;
	bool started, ended, use_ring;
	bool nonblock;                /* both sockets made non-blocking (for splice) */
};

/* Set the relay up between client and server (task context, once connected) and start
 * both directions. up_bytes/down_bytes: counters to add to (the session's bytes_in and
 * bytes_out). notsent_lowat: TCP_NOTSENT_LOWAT for the socket a direction streams into,
 * set when it starts streaming (0: the kernel's default). */
void sp_relay_start(struct sp_relay *r, struct sp_task *task, int client, int server,
		    uint64_t idle_ns, unsigned notsent_lowat, uint64_t *up_bytes,
		    uint64_t *down_bytes, sp_relay_end_fn end);

/* Receive one message at a time from now on, in every relay (why: for the log, once). */
void sp_relay_no_multishot(const char *why);

/* After the last completion (the session's release): give back held buffers. */
void sp_relay_release(struct sp_relay *r);

#endif
