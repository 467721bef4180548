/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What happens to a SYN in flight: dropped by this host's netfilter
 * (skb:kfree_skb), or retransmitted (tcp:tcp_retransmit_skb). */
#ifndef __TCPSTATE_DROPS_H
#define __TCPSTATE_DROPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "ring.h"
#include "sock.h"

/* Events about a socket in SYN_SENT that the correlation keeps with the
 * attempt: an error reported, a SYN dropped here, a SYN retransmitted. */
static __always_inline void attempt_note(const struct sock *sk, __u8 kind, __u32 err)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u16 family, dport;

	if (!is_tcp(sk) || sk->__sk_common.skc_state != TCP_SYN_SENT)
		return;
	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return;
	e = reserve();
	if (!e)
		return;
	e->kind = kind;
	e->skaddr = (__u64)sk;
	e->sk_err = err;
	e->dport = dport;
	sk_addrs(e, sk, family, &key);
	submit(e);
}

/* 5.17+ (c504e5c2f964 "net: skb: introduce kfree_skb_reason()"): a SYN
 * dropped by this host's own netfilter. Loaded only where the kernel's
 * enum skb_drop_reason has NETFILTER_DROP (the loader checks). */
SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct sock *sk;

	if (reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return 0;
	sk = skb->sk;
	if (sk)
		attempt_note(sk, TCPSTATE_EV_DROP, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk)
{
	attempt_note(sk, TCPSTATE_EV_RETRANS, 0);
	return 0;
}

#endif /* __TCPSTATE_DROPS_H */
