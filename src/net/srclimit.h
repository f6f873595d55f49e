/* SPDX-License-Identifier: MIT */
/*
 * srclimit.h - open connections per (listener, client address), for per_source caps.
 *
 * One table shared by the shards, lock-free: a bucket is one 64-bit word, a 48-bit tag
 * of the keyed hash of (listener, address) and a 16-bit count, changed by CAS only. An
 * address has two candidate buckets; when both hold other addresses (a crowded table)
 * its connection is not counted: the cap fails open rather than refuse a client for
 * another's connections. The hash key is random per process, so a client cannot aim
 * at another's buckets.
 */
#ifndef SP_SRCLIMIT_H
#define SP_SRCLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

/* Make the table (main thread, before any take; again is a no-op). 0 or -ENOMEM. */
int sp_srclimit_init(void);
/*
 * One more connection from sa on listener `serial`, whose cap is cap (1..65535).
 * 0: taken, *slot is what sp_srclimit_put gives back (0: not counted: no address, no
 * table or crowded); -EUSERS: the address holds cap connections already. Any thread.
 */
int sp_srclimit_take(unsigned serial, const struct sockaddr *sa, unsigned cap, uint32_t *slot);
void sp_srclimit_put(uint32_t slot); /* any thread; 0 does nothing */

#endif
