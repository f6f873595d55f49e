/* SPDX-License-Identifier: MIT */
/*
 * compat.h - io_uring constants newer than the liburing we build against (Debian 12
 * ships 2.3). Opcodes are probed at start; these only give the numbers names.
 */
#ifndef SP_COMPAT_H
#define SP_COMPAT_H

#include <liburing.h>

/* Opcodes after IORING_OP_SENDMSG_ZC (48), kernel 6.7+. */
#define SP_IORING_OP_READ_MULTISHOT 49
#define SP_IORING_OP_WAITID 50
#define SP_IORING_OP_FUTEX_WAIT 51
#define SP_IORING_OP_FUTEX_WAKE 52
#define SP_IORING_OP_FUTEX_WAITV 53

#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif

#endif
