/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Bench-only synthetic load (cargo feature "synthetic"): never in the
 * package, never attached. */
#ifndef __TCPSTATE_SYNTH_H
#define __TCPSTATE_SYNTH_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ring.h"
#include "sock.h"

/* Synthetic load for bench/sustain, never attached: run through
 * BPF_PROG_TEST_RUN, it pushes SYN_SENT/CLOSE pairs through the same
 * reserve and submit path as the tracepoint, so the ring buffer and the
 * consumer can be driven harder than real connections can. Compiled only
 * into the bench build (cargo feature "synthetic"; it needs Linux 5.17:
 * BPF_PROG_TYPE_SYSCALL and bpf_loop). */
static __always_inline void synth_one(__u64 skaddr, int oldstate, int newstate, __u32 err)
{
	struct tcpstate_event *e;

	e = reserve();
	if (!e)
		return;
	e->skaddr = skaddr;
	e->pid = 1;
	e->sk_err = err;
	e->family = AF_INET;
	e->dport = 9;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->saddr[0] = e->daddr[0] = 127;
	e->saddr[3] = e->daddr[3] = 1;
	__builtin_memcpy(e->comm, "synthetic", 10);
	submit(e);
}

static long synth_pair(__u64 i, void *data)
{
	__u64 skaddr = *(__u64 *)data + i * 64;

	synth_one(skaddr, TCP_CLOSE, TCP_SYN_SENT, 0);
	synth_one(skaddr, TCP_SYN_SENT, TCP_CLOSE, 111);
	return 0;
}

SEC("syscall")
int synth(struct tcpstate_synth *ctx)
{
	__u64 base = ctx->base;
	__u32 pairs = ctx->pairs;

	/* bpf_loop (5.17) verifies the body once; an open-coded loop of this
	 * many ring-buffer reservations exceeds the verifier's budget. */
	if (pairs > TCPSTATE_SYNTH_MAX_PAIRS)
		pairs = TCPSTATE_SYNTH_MAX_PAIRS;
	bpf_loop(pairs, synth_pair, &base, 0);
	return 0;
}

#endif /* __TCPSTATE_SYNTH_H */
