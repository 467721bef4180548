// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpstate: report TCP connection attempts as they enter and leave SYN_SENT.
 *
 * Attached to the sock:inet_sock_set_state tracepoint as tp_btf, so the
 * arguments are typed kernel pointers and the fields are read with CO-RE.
 * Everything the user-space correlation does not need returns early here:
 * the kernel never copies an event for established traffic, inbound
 * connections or unwatched destinations. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpstate.h"

/* Macros, so vmlinux.h does not carry them. */
#define AF_INET 2
#define AF_INET6 10

/* Set by the loader before load (rodata), so the verifier prunes what is off. */
const volatile bool filter_addrs = false; /* the dests trie has entries */
const volatile bool filter_ports = false; /* the ports map has entries */
const volatile bool trace_all = false;    /* --verbose: every state change */
/* 0: let the kernel wake the consumer for every event. Otherwise submit
 * without a wake-up until this many bytes are unread; the consumer also
 * drains on a short timer, so nothing waits longer than that timer. */
const volatile __u64 wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader (--ring-buffer-size) */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(max_entries, 1024);
	__type(key, struct tcpstate_lpm_key);
	__type(value, __u8);
} dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16); /* host order */
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCPSTATE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Never written: it only puts struct tcpstate_event into the object's BTF,
 * so the skeleton's generated `types` carries it to Rust. */
struct tcpstate_event _event = {};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no other writer, no atomic needed */
}

/* Submits without waking the consumer until wakeup_bytes are unread; the
 * consumer drains on its own short timer anyway. A wake-up per event is
 * what makes per-event tracers expensive for the connecting process. */
static __always_inline void submit(struct tcpstate_event *e)
{
	__u64 flags = 0;

	if (wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct tcpstate_lpm_key key = {};
	struct tcpstate_event *e;
	__u16 family, dport;

	if (!trace_all && oldstate != TCP_SYN_SENT && newstate != TCP_SYN_SENT)
		return 0;
	/* The tracepoint also fires for DCCP and SCTP. sk_protocol is a plain
	 * u16 since v5.6 (bf9765145b85 "sock: Make sk_protocol a 16-bit
	 * value"), older than the ring buffer (v5.8) this program needs. */
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (filter_ports && !bpf_map_lookup_elem(&ports, &dport))
		return 0;

	if (family == AF_INET) {
		__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &daddr, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&key.addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return 0;
	}
	key.prefixlen = 128;
	if (filter_addrs && !bpf_map_lookup_elem(&dests, &key))
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(TCPSTATE_CNT_RB_DROPS);
		return 0;
	}
	e->skaddr = (__u64)sk;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->sk_err = BPF_CORE_READ(sk, sk_err);
	/* An ICMP error that arrives while the connecting task holds the socket
	 * lock (common on fast local paths) is kept only in sk_err_soft by
	 * tcp_v4_err/tcp_v6_err; the task reads it through SO_ERROR and closes
	 * the socket, still in SYN_SENT, with sk_err 0. Without this the
	 * failure would read as "canceled". */
	if (!e->sk_err && oldstate == TCP_SYN_SENT)
		e->sk_err = BPF_CORE_READ(sk, sk_err_soft);
	e->family = family;
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = dport;
	e->oldstate = oldstate;
	e->newstate = newstate;
	if (family == AF_INET) {
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		BPF_CORE_READ_INTO((__be32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(e->daddr, &key.addr[12], 4);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		__builtin_memcpy(e->daddr, key.addr, 16);
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	submit(e);
	return 0;
}

#ifdef TCPSTATE_SYNTHETIC
/* Synthetic load for bench/sustain, never attached: run through
 * BPF_PROG_TEST_RUN, it pushes SYN_SENT/CLOSE pairs through the same
 * reserve and submit path as the tracepoint, so the ring buffer and the
 * consumer can be driven harder than real connections can. Compiled only
 * into the bench build (cargo feature "synthetic"; it needs Linux 5.17:
 * BPF_PROG_TYPE_SYSCALL and bpf_loop). */
static __always_inline void synth_one(__u64 skaddr, int oldstate, int newstate, __u32 err)
{
	struct tcpstate_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(TCPSTATE_CNT_RB_DROPS);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->skaddr = skaddr;
	e->ts_ns = bpf_ktime_get_ns();
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
#endif /* TCPSTATE_SYNTHETIC */

char LICENSE[] SEC("license") = "Dual BSD/GPL";
