/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What happens to a SYN in flight: dropped on this host, with the
 * kernel's reason (skb:kfree_skb), or retransmitted (tcp:tcp_retransmit_skb). */
#ifndef __TCPSTATE_DROPS_H
#define __TCPSTATE_DROPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "ring.h"
#include "sock.h"

/* A record about a watched socket in SYN_SENT that the correlation keeps
 * with the attempt (a SYN dropped here or retransmitted, an ICMP error),
 * reserved with its kind, socket, ports and addresses; NULL for any other
 * socket. The caller adds what it knows and submits it. */
static __always_inline struct tcpstate_event *attempt_event(const struct sock *sk, __u8 kind)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u16 family, dport;

	if (!is_tcp(sk) || sk->__sk_common.skc_state != TCP_SYN_SENT)
		return NULL;
	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return NULL;
	e = reserve();
	if (!e)
		return NULL;
	e->kind = kind;
	e->skaddr = (__u64)sk;
	e->dport = dport;
	sk_addrs(e, sk, family, &key);
	return e;
}

/* The next hop a packet of `sk` was for: the IPv4 route's gateway (5.2+,
 * 1550c171935d "ipv4: Prepare rtable for IPv6 gateway"), IPv6's
 * rt6i_gateway, else the destination itself (on-link). */
static __always_inline void next_hop(struct tcpstate_event *e, const struct sk_buff *skb)
{
	struct dst_entry *dst = (struct dst_entry *)(skb->_skb_refdst & ~1UL);
	__u8 gw[16] = {};

	if (!dst)
		return;
	if (e->family == AF_INET) {
		struct rtable *rt = (struct rtable *)dst; /* dst is its first member */

		if (BPF_CORE_READ(rt, rt_gw_family) == AF_INET)
			BPF_CORE_READ_INTO((__be32 *)e->saddr, rt, rt_gw4);
	} else if (!(e->daddr[10] == 0xff && e->daddr[11] == 0xff &&
		     !e->daddr[0] && !e->daddr[8])) {
		struct rt6_info *rt6 = (struct rt6_info *)dst;

		BPF_CORE_READ_INTO(&gw, rt6, rt6i_gateway.in6_u.u6_addr8);
		if (gw[0] || gw[1] || gw[2] || gw[15])
			__builtin_memcpy(e->saddr, gw, 16);
	}
}

/* 5.17+ (c504e5c2f964 "net: skb: introduce kfree_skb_reason()"): a packet
 * of a socket in SYN_SENT dropped on this host, with the kernel's reason:
 * this host's netfilter (TCPSTATE_EV_DROP: the attempt was denied), or any
 * other (TCPSTATE_EV_SKB_DROP: no ARP answer, no route, a full qdisc...).
 * Loaded only where the kernel's enum skb_drop_reason has NETFILTER_DROP
 * (the loader checks). Drops of packets no socket owns (most of them)
 * return at the first test. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct tcpstate_event *e;
	struct net_device *dev;
	struct sock *sk = skb->sk;
	bool netfilter;

	if (!sk || reason == SKB_NOT_DROPPED_YET ||
	    (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	     reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED)))
		return 0;
	netfilter = reason == bpf_core_enum_value(enum skb_drop_reason,
						  SKB_DROP_REASON_NETFILTER_DROP);
	e = attempt_event(sk, netfilter ? TCPSTATE_EV_DROP : TCPSTATE_EV_SKB_DROP);
	if (!e)
		return 0;
	e->drop_reason = reason;
	if (!netfilter) {
		__builtin_memcpy(e->saddr, e->daddr, 16);
		next_hop(e, skb);
		dev = skb->dev;
		if (dev)
			bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), dev->name);
	}
	submit(e);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk)
{
	struct tcpstate_event *e = attempt_event(sk, TCPSTATE_EV_RETRANS);

	if (e)
		submit(e);
	return 0;
}

#endif /* __TCPSTATE_DROPS_H */
