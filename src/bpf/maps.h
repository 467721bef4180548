/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Every map and global of the program, in one place and in the order the
 * skeleton lays them out: the Rust loader sets and reads them by name. */
#ifndef __TCPSTATE_MAPS_H
#define __TCPSTATE_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tcpstate.h"

/* Set by the loader before load (rodata), so the verifier prunes what is off. */
const volatile bool filter_addrs = false; /* the dests trie has entries */
const volatile bool filter_ports = false; /* the ports map has entries */
const volatile bool trace_all = false;    /* --verbose: every state change */
/* A connect()/getsockopt() hook is attached (trampolines or sys_exit): a
 * SYN_SENT -> CLOSE inside connect() is left to it (see handle_set_state). */
const volatile bool connect_errors = false;
/* fentry/tcp_reset is attached: refused and reset records carry the RST's
 * TTL from rst_seen (see rst.h). */
const volatile bool rst_ttl_on = false;
/* tcpstate's own tgid: its connections (Slack, Alertmanager) are never
 * reported, or a failing webhook would alert about itself. It is the tgid
 * in tcpstate's own pid namespace; in a container (nspawn, a pod without
 * hostPID) that is not the kernel's, and another process whose host tgid
 * equals it would go unreported: there, self_pidns_* name the namespace
 * and from_self() below asks it. */
const volatile __u32 self_tgid = 0;
/* st_dev and st_ino of tcpstate's /proc/self/ns/pid when it is not the
 * initial pid namespace; 0 in the host's, where tgids compare as they are. */
const volatile __u64 self_pidns_dev = 0;
const volatile __u64 self_pidns_ino = 0;
/* A busy consumer is woken as the unread bytes cross each multiple of
 * this (0: never; it drains on its own short timer anyway). See submit. */
const volatile __u64 wakeup_bytes = 0;
/* Unread ring bytes past which DNS answers are skipped (set by the loader). */
const volatile __u64 dns_ring_limit = 0;
/* This load's generation: it records only while `gate` holds it. */
const volatile __u64 generation = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader (--ring-buffer-size) */
} events SEC(".maps");

/* The generation that records. A restart under systemd keeps `events`,
 * `counters` and this across processes (its fd store): the new process
 * attaches its programs while the old ones still record, then writes its
 * generation here, and the old ones go quiet in the same instant. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gate SEC(".maps");

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

/* tcpstate's own sockets in SYN_SENT, so their end is not reported. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} own_socks SEC(".maps");
/* Entries in own_socks: almost always 0, and then every other socket's
 * end skips the hash lookup. */
__u32 own_socks_count = 0;

/* tcpstate's host tgid, learned by from_self() in a pid namespace. */
__u32 self_host_tgid = 0;

/* Whether the current task is tcpstate itself. In a pid namespace, the
 * first of tcpstate's own connects is asked of the namespace
 * (bpf_get_ns_current_pid_tgid, 5.7: b4490c5c4e02) and its host tgid kept;
 * until then every caller is asked, which a connect of another namespace
 * answers at once (not in that namespace). */
static __always_inline bool from_self(__u64 id)
{
	struct bpf_pidns_info ns;

	if (!self_tgid)
		return false;
	if (!self_pidns_ino)
		return (id >> 32) == self_tgid;
	if (self_host_tgid)
		return (id >> 32) == self_host_tgid;
	if (bpf_get_ns_current_pid_tgid(self_pidns_dev, self_pidns_ino, &ns, sizeof(ns)) ||
	    ns.tgid != self_tgid)
		return false;
	self_host_tgid = id >> 32;
	return true;
}

/* Set by user space (through the mmapped .bss) when its loop has found the
 * ring empty and waits without its drain timer: the next record wakes it,
 * and clears this. */
__u32 consumer_waiting = 0;

/* Set by user space (.bss) when DNS over TCP is read (the syscall
 * fallback, or the trampolines of dns_tcp.h): the core hook then records
 * each TCP connection to port 53 (dns_record.h). */
__u32 dns_tcp = 0;

/* The cgroup id each CPU named or found in named_cgroups last: a storm
 * from one service then skips the LRU lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_cgroup SEC(".maps");

/* cgroup ids whose names were sent (see struct tcpstate_cgroup_names). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} named_cgroups SEC(".maps");

/* The RST tcp_reset() was last called for on this CPU: the socket and the
 * TTL (hop limit) it arrived with. tcp_reset() closes the socket itself
 * (tcp_done), so the state hook's move into CLOSE follows on the same CPU
 * in the same call, and takes it there (broken.h: rst_ttl_take). One slot
 * per CPU: nothing to leak, no per-socket state. */
struct tcpstate_rst_slot {
	__u64 sk;
	__u8 ttl;
	__u8 _pad[7];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcpstate_rst_slot);
} rst_seen SEC(".maps");

/* The user buffer of each tcp_recvmsg() on a socket connected to port 53,
 * from its entry to its exit (dns_tcp.h), by the receiving task's
 * pid_tgid: a task is in one receive at a time, so stale entries cannot
 * pile up past the number of tasks, and a full map is counted. */
struct tcpstate_dns_recv {
	__u64 buf;  /* the first segment's user address */
	__u64 len;  /* its length */
	__u8 more;  /* the iterator has more segments (not read) */
	__u8 _pad[7];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* Empty but for receives in progress: allocated as used, so every
	 * load (and the loader's throwaway probes) makes no 1,024 entries. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct tcpstate_dns_recv);
} dns_tcp_recvs SEC(".maps");

/* Never written: they only put the records into the object's BTF, so the
 * skeleton's generated `types` carries them to Rust. */
struct tcpstate_event _event = {};
struct tcpstate_seed _seed = {};
struct tcpstate_cgroup_names _cgroup_names = {};
struct tcpstate_dns _dns = {};

#endif /* __TCPSTATE_MAPS_H */
