/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A DNS record into the ring (struct tcpstate_dns): room for it within
 * the DNS share, its server, and the record filled and sent. Shared by
 * dns.h and the core hook (state.h), which records a TCP connection to
 * port 53: a truncated answer's retry, even when its query never leaves. */
#ifndef __TCPSTATE_DNS_RECORD_H
#define __TCPSTATE_DNS_RECORD_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "sock.h"
#include "syscall.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define DNS_PORT 53

/* Room for a DNS record, unless the unread bytes are past the DNS share
 * (dns_ring_limit), so a flood of answers cannot crowd out the failures.
 * NULL otherwise; either miss is counted. */
static __always_inline struct tcpstate_dns *dns_reserve(void)
{
	if (!active())
		return NULL;
	if (dns_ring_limit && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > dns_ring_limit) {
		count(TCPSTATE_CNT_DNS_SKIPPED);
		return NULL;
	}
	return ring_reserve(sizeof(struct tcpstate_dns));
}

/* Sends the answer's first n bytes, at most TCPSTATE_DNS_MAX, from `src`
 * (user memory at a syscall's exit, else the kernel's) with who received
 * it: the current task. Discards the record if they cannot be read. */
/* The server of a DNS record: its family, port (network order) and address. */
struct dns_peer {
	__u16 family;
	__be16 port;
	__u8 addr[16];
};

/* A connected socket's peer, for a record whose syscall named no address. */
static __always_inline void peer_of_sock(struct dns_peer *p, const struct sock *sk)
{
	p->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	p->port = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (p->family == AF_INET)
		bpf_core_read(p->addr, 4, &sk->__sk_common.skc_daddr);
	else if (p->family == AF_INET6)
		bpf_core_read(p->addr, 16, &sk->__sk_common.skc_v6_daddr);
	else
		p->family = 0;
}

/* The address a syscall named (a user sockaddr): sin_port and sin6_port
 * sit at the same offset; sin_addr at 4, sin6_addr at 8. */
static __always_inline void peer_of_user(struct dns_peer *p, const void *addr)
{
	if (bpf_probe_read_user(&p->family, sizeof(p->family), addr) ||
	    bpf_probe_read_user(&p->port, sizeof(p->port), addr + 2)) {
		p->family = 0;
		return;
	}
	if (p->family == AF_INET) {
		if (bpf_probe_read_user(p->addr, 4, addr + 4))
			p->family = 0;
	} else if (p->family == AF_INET6) {
		if (bpf_probe_read_user(p->addr, 16, addr + 8))
			p->family = 0;
	} else {
		p->family = 0;
	}
}

static __always_inline void dns_send(struct tcpstate_dns *r, const void *src, __u64 n,
				     __u16 wire_len, bool user, const struct sock *sk, __u8 query,
				     const struct dns_peer *peer, __u8 tcp)
{
	struct task_struct *task;
	__u64 id;

	/* Clamped where it is used, in the register used: the compiler may
	 * otherwise pass an unclamped copy, which the verifier refuses. */
	barrier_var(n);
	if (n > TCPSTATE_DNS_MAX)
		n = TCPSTATE_DNS_MAX;
	barrier_var(n);
	if (n && read_mem(r->data, n, src, user)) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return;
	}
	r->len = n;
	r->wire_len = wire_len;
	r->sk = (__u64)sk;
	r->query = query;
	r->tcp = tcp;
	r->family = peer->family;
	r->port = bpf_ntohs(peer->port);
	__builtin_memcpy(r->peer, peer->addr, sizeof(r->peer));
	r->ts_ns = bpf_ktime_get_ns();
	r->cgroup_id = bpf_get_current_cgroup_id();
	id = bpf_get_current_pid_tgid();
	r->pid = id >> 32;
	r->uid = (__u32)bpf_get_current_uid_gid();
	task = (struct task_struct *)bpf_get_current_task();
	r->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	/* An application that resolved a name connects next: wake the
	 * consumer if it waits, so the name is known before the attempt. */
	bpf_ringbuf_submit(r, consumer_waiting ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* A TCP connection to port 53 entering SYN_SENT, in the connecting task:
 * a record with no message (query 2), so user space knows a truncated
 * answer is being retried over TCP. Only while DNS over TCP is read
 * (dns_tcp); every other connect pays one comparison. */
static __always_inline void dns_tcp_connect(const struct sock *sk)
{
	struct tcpstate_dns *r;
	struct dns_peer peer = {};

	peer_of_sock(&peer, sk);
	r = dns_reserve();
	if (!r)
		return;
	dns_send(r, NULL, 0, 0, false, sk, 2, &peer, 1);
}

#endif /* __TCPSTATE_DNS_RECORD_H */
