/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The core: attempts entering and leaving SYN_SENT, from
 * sock:inet_sock_set_state, and every state change with --verbose. */
#ifndef __TCPSTATE_STATE_H
#define __TCPSTATE_STATE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "ring.h"
#include "sock.h"
#include "caller.h"
#include "broken.h"
#include "dns_record.h"

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u64 id, cgroup_id = 0, skaddr = (__u64)sk;
	__u16 family, dport;
	__u32 err;

	/* Into CLOSE with an error, from an established state: a broken
	 * connection. sk_err is read for moves into CLOSE only. */
	if (newstate == TCP_CLOSE && oldstate != TCP_SYN_SENT) {
		err = sk->sk_err;
		if (err && after_established(oldstate)) {
			broken(sk, oldstate, newstate, err);
			return 0;
		}
	}
	if (!trace_all && oldstate != TCP_SYN_SENT && newstate != TCP_SYN_SENT)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	id = bpf_get_current_pid_tgid();
	if (newstate == TCP_SYN_SENT && from_self(id)) {
		__u8 one = 1;

		if (!bpf_map_update_elem(&own_socks, &skaddr, &one, BPF_NOEXIST))
			__sync_fetch_and_add(&own_socks_count, 1);
		return 0;
	}
	if (oldstate == TCP_SYN_SENT && own_socks_count &&
	    !bpf_map_delete_elem(&own_socks, &skaddr)) {
		__sync_fetch_and_add(&own_socks_count, -1); /* no fetch: BPF ISA v1 */
		return 0;
	}

	family = sk->__sk_common.skc_family;
	dport = bpf_ntohs(sk->__sk_common.skc_dport);
	/* A truncated DNS answer retried over TCP: seen even when the
	 * destination is not watched, and when the SYN never gets through. */
	if (dns_tcp && newstate == TCP_SYN_SENT && dport == DNS_PORT)
		dns_tcp_connect(sk);
	if (!sk_dest(sk, family, &key) || !watched(&key, dport))
		return 0;

	err = sk->sk_err;
	/* No SYN ever left: tcp_v4_connect() enters SYN_SENT before it picks a
	 * local port and sends the SYN, and closes again with sk_err 0 when that
	 * fails (EADDRNOTAVAIL): that is a connect() error, not an application
	 * giving up (an application can only close after connect() returned,
	 * when the SYN is out). It is left to the connect() hook, which has the
	 * errno. segs_out counts segments handed to IP, dropped there or not. */
	if (connect_errors && oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE && !err &&
	    !BPF_CORE_READ((struct tcp_sock *)sk, segs_out))
		return 0;

	if (newstate == TCP_SYN_SENT) {
		cgroup_id = bpf_get_current_cgroup_id();
		name_cgroup(cgroup_id);
	}
	e = reserve();
	if (!e)
		return 0;
	e->kind = TCPSTATE_EV_STATE;
	e->skaddr = skaddr;
	/* An ICMP error that arrives while the connecting task holds the socket
	 * lock (common on fast local paths) is kept only in sk_err_soft by
	 * tcp_v4_err/tcp_v6_err; see also so_error_read. */
	if (!err && oldstate == TCP_SYN_SENT)
		err = sk->sk_err_soft;
	e->sk_err = err;
	if (oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE)
		e->rst_ttl = rst_ttl_take(sk, err);
	e->dport = dport;
	e->oldstate = oldstate;
	e->newstate = newstate;
	sk_addrs(e, sk, family, &key);
	if (!e->sport && oldstate == TCP_SYN_SENT)
		e->sport = sk_sport(sk);
	if (newstate == TCP_SYN_SENT)
		caller(e, cgroup_id);
	else
		e->pid = id >> 32;
	submit(e);
	return 0;
}

#endif /* __TCPSTATE_STATE_H */
