/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ring buffer's reserve and submit, and the counters of what missed
 * it: every record goes through here, so the wake-up policy is one. */
#ifndef __TCPSTATE_RING_H
#define __TCPSTATE_RING_H

#include "maps.h"

/* One more in counter `idx` (enum tcpstate_counter); user space sums the
 * CPUs' slots. */
static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no other writer, no atomic needed */
}

/* Submits without waking the consumer while it drains on its own short
 * timer: a wake-up per event is what makes per-event tracers expensive for
 * the connecting process. An idle consumer (no timer) is woken by the
 * first record. A busy one is woken only by a record that takes the
 * unread bytes across a multiple of wakeup_bytes, so a burst is drained
 * before the ring fills. Waking it for every record past the mark, as
 * this did first, raised an interrupt per record until the consumer ran:
 * the irq_work behind a wake-up is pending only until it runs. */
static __always_inline void submit(struct tcpstate_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (consumer_waiting) {
		/* Racy between CPUs: at worst two wake-ups. */
		consumer_waiting = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	} else if (wakeup_bytes) {
		__u64 unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

		/* Another CPU may have reserved after this record: a band of
		 * two records, so a crossing is rarely missed (the timer covers
		 * one that is). */
		if (unread >= wakeup_bytes && unread % wakeup_bytes < 2 * (sizeof(*e) + 8))
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/* Whether this load's generation is the one that records (see gate). */
static __always_inline bool active(void)
{
	__u32 k = 0;
	__u64 *g = bpf_map_lookup_elem(&gate, &k);

	return g && *g == generation;
}

/* Room for a record of `size` bytes, or NULL, counted: user space reports
 * how many records the ring had no room for. NULL without a count for a
 * generation that no longer records: every record passes here, so one
 * check silences a replaced load. */
static __always_inline void *ring_reserve(__u64 size)
{
	void *r;

	if (!active())
		return NULL;
	r = bpf_ringbuf_reserve(&events, size, 0);

	if (!r)
		count(TCPSTATE_CNT_RB_DROPS);
	return r;
}

/* An event record, zeroed and stamped. */
static __always_inline struct tcpstate_event *reserve(void)
{
	struct tcpstate_event *e = ring_reserve(sizeof(*e));

	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

#endif /* __TCPSTATE_RING_H */
