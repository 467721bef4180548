/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connections this host opened that break after they were established:
 * an RST, or the kernel giving up (retransmissions, TCP_USER_TIMEOUT,
 * keepalive), seen as the move into CLOSE with sk_err set. A normal close
 * has no sk_err and returns before anything is read past it. */
#ifndef __TCPSTATE_BROKEN_H
#define __TCPSTATE_BROKEN_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "sock.h"

/* The errnos tcp_reset() sets (identical redefinitions in connect.h). */
#define EPIPE 32
#define ECONNRESET 104
#define ECONNREFUSED 111

/* The states a connection can break in once established. tcp_reset()
 * sets ECONNRESET (EPIPE in CLOSE_WAIT) and tcp_write_err() ETIMEDOUT
 * (or the soft ICMP error it kept) before tcp_done() closes. */
static __always_inline bool after_established(int oldstate)
{
	return oldstate == TCP_ESTABLISHED || oldstate == TCP_FIN_WAIT1 ||
	       oldstate == TCP_FIN_WAIT2 || oldstate == TCP_CLOSE_WAIT ||
	       oldstate == TCP_LAST_ACK || oldstate == TCP_CLOSING;
}

/* The TTL of the RST that tcp_reset() took for `sk` just before this move
 * into CLOSE, else 0; only for the errnos tcp_reset() sets (ECONNREFUSED in
 * SYN_SENT, EPIPE in CLOSE_WAIT, ECONNRESET), so an ICMP-made or timed-out
 * close never takes another socket's leftover. The slot is cleared when
 * taken: a preempted or migrated tcp_reset() leaves 0 here, never a wrong
 * value for the next socket at this address. */
static __always_inline __u8 rst_ttl_take(const struct sock *sk, __u32 err)
{
	struct tcpstate_rst_slot *s;
	__u32 zero = 0;
	__u8 ttl;

	if (!rst_ttl_on || (err != ECONNREFUSED && err != ECONNRESET && err != EPIPE))
		return 0;
	s = bpf_map_lookup_elem(&rst_seen, &zero);
	if (!s || s->sk != (__u64)sk)
		return 0;
	ttl = s->ttl;
	s->sk = 0;
	return ttl;
}

/* A connection that broke: sends it when this host opened it and its
 * destination is watched. User space pairs it with its attempt (the
 * owner: the current task here is a softirq or a timer). */
static __always_inline void broken(const struct sock *sk, int oldstate, int newstate, __u32 err)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u64 acked, received;
	__u16 family, dport;

	if (!after_established(oldstate) || !is_tcp(sk))
		return;
	/* Accepted connections are clones of their listener: sk_clone_lock()
	 * copies struct sock whole but for a few fields, sk_max_ack_backlog
	 * not among them, so they carry the listen() backlog. A socket that
	 * connect()ed never listened: 0 (sk_alloc zeroes). One load, no
	 * per-connection state. */
	if (sk->sk_max_ack_backlog)
		return;
	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return;
	e = reserve();
	if (!e)
		return;
	e->kind = TCPSTATE_EV_BROKEN;
	e->skaddr = (__u64)sk;
	e->sk_err = err;
	e->dport = dport;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->rst_ttl = rst_ttl_take(sk, err);
	sk_addrs(e, sk, family, &key);
	if (!e->sport)
		e->sport = sk_sport(sk);
	/* Past struct sock, where a BTF-typed load may not reach (see
	 * sk_sport): probe reads, on this rare path only. Into `comm`, which
	 * this kind has no use for (see TCPSTATE_EV_BROKEN). */
	acked = BPF_CORE_READ((struct tcp_sock *)sk, bytes_acked);
	received = BPF_CORE_READ((struct tcp_sock *)sk, bytes_received);
	__builtin_memcpy(&e->comm[0], &acked, 8);
	__builtin_memcpy(&e->comm[8], &received, 8);
	submit(e);
}

#endif /* __TCPSTATE_BROKEN_H */
