/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Who sent the ICMP error that ends an attempt, and its type and code.
 * The socket keeps only the errno; the sender is in the outer header of
 * the ICMP packet that tcp_v4_err/tcp_v6_err handle. Both hand it, with
 * the socket, to ip_icmp_error/ipv6_icmp_error for a socket in SYN_SENT
 * (or SYN_RECV), whether or not the socket asked for IP_RECVERR: fentry
 * there runs only for ICMP errors that reach a connecting socket, so no
 * other packet and no other socket pays. No tracepoint sees this: where
 * the kernel attaches no trampoline, the sender is not seen (the start
 * line says so). */
#ifndef __TCPSTATE_ICMP_H
#define __TCPSTATE_ICMP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "sock.h"
#include "drops.h" /* attempt_event */

/* Offsets in the wire formats (RFC 791, RFC 8200, RFC 792, RFC 4443),
 * not kernel structs: no CO-RE needed. */
#define IPV4_SADDR_OFF 12
#define IPV6_SADDR_OFF 8

/* The ICMP packet `skb` (network header: the outer IP header; transport
 * header: the ICMP header) reached watched socket `sk` in SYN_SENT with
 * errno `err`. */
static __always_inline void icmp_note(const struct sock *sk, const struct sk_buff *skb,
				      int err, bool v6)
{
	struct tcpstate_event *e = attempt_event(sk, TCPSTATE_EV_ICMP);
	unsigned char *head;
	__u8 tc[2];

	if (!e)
		return;
	head = skb->head;
	e->sk_err = err > 0 ? err : 0;
	/* The sender in saddr, in the ICMP packet's own family. */
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	if (v6) {
		e->family = AF_INET6;
		bpf_probe_read_kernel(e->saddr, 16, head + skb->network_header + IPV6_SADDR_OFF);
	} else {
		e->family = AF_INET;
		bpf_probe_read_kernel(e->saddr, 4, head + skb->network_header + IPV4_SADDR_OFF);
	}
	/* Type and code are the first two bytes of ICMP and ICMPv6 alike. */
	if (!bpf_probe_read_kernel(tc, sizeof(tc), head + skb->transport_header)) {
		e->icmp_type = tc[0];
		e->icmp_code = tc[1];
	}
	submit(e);
}

/* IPv4 ICMP, to IPv4 and v4-mapped IPv6 sockets (net/ipv4/ip_sockglue.c;
 * called from tcp_v4_err since before 5.10). */
SEC("fentry/ip_icmp_error")
int BPF_PROG(enter_ip_icmp_error, struct sock *sk, struct sk_buff *skb, int err)
{
	icmp_note(sk, skb, err, false);
	return 0;
}

/* ICMPv6 (net/ipv6/datagram.c; called from tcp_v6_err). */
SEC("fentry/ipv6_icmp_error")
int BPF_PROG(enter_ipv6_icmp_error, struct sock *sk, struct sk_buff *skb, int err)
{
	icmp_note(sk, skb, err, true);
	return 0;
}

#endif /* __TCPSTATE_ICMP_H */
