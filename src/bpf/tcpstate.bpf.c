// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpstate: report TCP connection attempts and how they end.
 *
 * The core is sock:inet_sock_set_state (tp_btf): attempts entering and
 * leaving SYN_SENT. Around it, each where a failure cannot be seen there:
 * - connect()'s errors that come before any SYN leaves (no route, denied,
 *   no local port), and the error an application reads away with
 *   getsockopt(SO_ERROR) before it closes the socket. From BPF trampolines
 *   on the kernel functions that produce them (fexit/__sys_connect_file,
 *   fentry on the SOL_SOCKET getsockopt), so no other syscall pays; where
 *   the kernel attaches no trampoline, from raw_syscalls sys_exit
 *   (tp_btf), which every syscall on the host then passes through;
 * - skb:kfree_skb with its drop reason (5.17+): this host's netfilter
 *   dropping a SYN;
 * - the same tracepoint's moves into CLOSE with sk_err from an established
 *   state: connections this host opened that broke (reset, timed out);
 * - tcp:tcp_retransmit_skb: SYN retransmits, for the early warning;
 * - fentry on ip_icmp_error/ipv6_icmp_error: who sent the ICMP error that
 *   ends an attempt (trampolines only; no fallback);
 * - fentry on tcp_reset (5.13+): the TTL of the RST that refuses an
 *   attempt or resets a connection (trampolines only; no fallback);
 * - iter/task_file and iter/tcp: the attempts already in SYN_SENT when
 *   tcpstate starts, in every network namespace, with who holds them;
 * - DNS answers the applications receive, so a failure can name the
 *   destination the application resolved, and the queries they answer
 *   (UDP; TCP to port 53 too, from fentry on tcp_sendmsg and tcp_recvmsg
 *   or from the syscall fallback).
 * Everything the user-space correlation does not need returns early: the
 * kernel never copies an event for established traffic, a normal close,
 * inbound connections, successful connect() calls or unwatched
 * destinations.
 *
 * One translation unit, one header per concern; the shared helpers below
 * them. The programs are defined in this include order, which is the
 * order the skeleton lists them in. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tcpstate.h" /* the records, shared with Rust */
#include "maps.h"     /* every map and global: the loader's interface */

#include "state.h"   /* sock:inet_sock_set_state (and broken.h) */
#include "connect.h" /* connect() and SO_ERROR errors */
#include "drops.h"   /* netfilter drops, SYN retransmits */
#include "icmp.h"    /* ICMP errors' senders */
#include "rst.h"     /* the RST's TTL */
#include "seed.h"    /* attempts in flight at start */
#include "dns.h"     /* DNS answers */
#include "dns_tcp.h" /* DNS over TCP, where trampolines attach */
#ifdef TCPSTATE_SYNTHETIC
#include "synth.h"   /* bench/sustain's synthetic load */
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";
