/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The hop distance of the RST that refuses an attempt or resets a
 * connection this host opened: the IPv4 TTL or IPv6 hop limit it arrived
 * with. tcp_reset() runs only for an RST accepted by a socket (or data
 * that aborts one), so fentry there costs nothing to other packets; it
 * has the skb from Linux 5.13 (049fe386d353 "tcp: parse mptcp options
 * contained in reset packets"; 5.10 has tcp_reset(sk) alone), and the
 * loader attaches it only where BTF says so. The value waits in rst_seen
 * for the state hook's move into CLOSE, which tcp_reset() makes itself
 * (tcp_done), and goes out in that record. No tracepoint has the skb:
 * where trampolines do not attach, it is not seen (the start line says
 * so). */
#ifndef __TCPSTATE_RST_H
#define __TCPSTATE_RST_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "sock.h"
#include "broken.h" /* after_established */

/* Offsets in the wire formats (RFC 791, RFC 8200, RFC 9293), not kernel
 * structs: no CO-RE needed. */
#define IPV4_TTL_OFF 8
#define IPV6_HOPLIMIT_OFF 7
#define TCP_FLAGS_OFF 13
#define TCP_FLAG_RST 0x04

SEC("fentry/tcp_reset")
int BPF_PROG(enter_tcp_reset, struct sock *sk, struct sk_buff *skb)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_rst_slot *s;
	unsigned char *head;
	__u8 ver, flags, ttl;
	__u16 family, dport;
	__u64 skaddr = (__u64)sk;
	__u32 zero = 0;
	int state;

	/* The sockets whose close the state hook reports: attempts in
	 * SYN_SENT (refused), and connections this host opened (no listen
	 * backlog: see broken()) once established (reset). */
	state = sk->__sk_common.skc_state;
	if (state != TCP_SYN_SENT && (!after_established(state) || sk->sk_max_ack_backlog))
		return 0;
	if (!skb || !is_tcp(sk))
		return 0;
	if (own_socks_count && bpf_map_lookup_elem(&own_socks, &skaddr))
		return 0;
	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return 0;
	head = skb->head;
	/* An RST only: tcp_reset() also aborts a socket that shut down its
	 * receiving side when data arrives (TCP_ABORT_ON_DATA). */
	if (bpf_probe_read_kernel(&flags, 1, head + skb->transport_header + TCP_FLAGS_OFF) ||
	    !(flags & TCP_FLAG_RST))
		return 0;
	/* The packet's own IP version: a v4-mapped IPv6 socket gets IPv4. */
	if (bpf_probe_read_kernel(&ver, 1, head + skb->network_header))
		return 0;
	ver >>= 4;
	if (ver == 4) {
		if (bpf_probe_read_kernel(&ttl, 1, head + skb->network_header + IPV4_TTL_OFF))
			return 0;
	} else if (ver == 6) {
		if (bpf_probe_read_kernel(&ttl, 1, head + skb->network_header + IPV6_HOPLIMIT_OFF))
			return 0;
	} else {
		return 0;
	}
	s = bpf_map_lookup_elem(&rst_seen, &zero);
	if (!s)
		return 0;
	s->sk = skaddr;
	s->ttl = ttl;
	return 0;
}

#endif /* __TCPSTATE_RST_H */
