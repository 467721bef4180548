//! The `connect_failed` (and `connection_broken`) JSON line, written
//! straight into a byte buffer.
//!
//! This is the per-failure hot path under `--format json`: serde_json took
//! about 0.5 µs a line, more than the rest of the event path together. The
//! output is byte-for-byte what serde_json makes of the same record (the
//! tests compare the two); integers go through itoa, as in serde_json.

use std::io::Write;
use std::net::IpAddr;

use crate::event::{
    Attribution, Caller, Comm, Decided, Dname, Dropped, Failure, Family, Icmp, Record, Slow,
    TimeoutBy,
};
use crate::output::clock::Stamp;

pub(super) fn int(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub(super) fn addr(buf: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            // `"255.255.255.255"` at most: built on the stack, one copy.
            let mut s = [0u8; 17];
            s[0] = b'"';
            let mut n = 1;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    s[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    s[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                s[n] = b'0' + o % 10;
                n += 1;
            }
            s[n] = b'"';
            buf.extend_from_slice(&s[..=n]);
        }
        IpAddr::V6(v6) => {
            // Rare next to IPv4 storms; core's formatting does the
            // compression rules.
            let _ = write!(buf, "\"{v6}\"");
        }
    }
}

/// Comm as shown everywhere (`Comm`'s escaping), then JSON-escaped, in one
/// pass: `"` becomes `\"`, Comm's `\\` becomes `\\\\`, its `\xNN` becomes `\\xNN`.
fn comm(buf: &mut Vec<u8>, c: &Comm) {
    escaped(buf, c.as_bytes());
}

/// Any untrusted bytes (a process name, a cgroup path), escaped as `Comm`
/// is, as a JSON string.
pub(super) fn escaped(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    // Almost every name needs no escape: copy the plain part at once.
    let plain = bytes
        .iter()
        .position(|&b| !matches!(b, 0x21..=0x7e) || b == b'"' || b == b'\\')
        .unwrap_or(bytes.len());
    buf.extend_from_slice(&bytes[..plain]);
    for &b in &bytes[plain..] {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\\\\\"),
            0x21..=0x7e => buf.push(b),
            _ => buf.extend_from_slice(&[
                b'\\',
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
    }
    buf.push(b'"');
}

fn opt_str(buf: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => escaped(buf, v.as_bytes()),
        None => buf.extend_from_slice(b"null"),
    }
}

/// `"pid":…,"tid":…,"comm":…,"process":…,"uid":…`, null when unknown, then
/// the attribution of its cgroup.
pub(super) fn who(line: &mut Vec<u8>, c: &Option<Caller>, attr: Option<&Attribution>) {
    match c {
        Some(c) => {
            line.extend_from_slice(b"\"pid\":");
            int(line, c.pid);
            line.extend_from_slice(b",\"tid\":");
            int(line, c.tid);
            line.extend_from_slice(b",\"comm\":");
            comm(line, &c.comm);
            line.extend_from_slice(b",\"process\":");
            comm(line, &c.process);
            line.extend_from_slice(b",\"uid\":");
            int(line, c.uid);
        }
        None => line.extend_from_slice(
            b"\"pid\":null,\"tid\":null,\"comm\":null,\"process\":null,\"uid\":null",
        ),
    }
    line.extend_from_slice(b",\"unit\":");
    opt_str(line, attr.and_then(|a| a.unit.as_deref()));
    line.extend_from_slice(b",\"user_unit\":");
    opt_str(line, attr.and_then(|a| a.user_unit.as_deref()));
    // Outside containers (most callers) the five keys that follow are
    // null: one copy instead of ten, on every failure.
    if attr.is_none_or(|a| {
        a.container.is_none()
            && a.container_name.is_none()
            && a.pod.is_none()
            && a.pod_name.is_none()
            && a.pod_namespace.is_none()
    }) {
        line.extend_from_slice(
            b",\"container\":null,\"container_name\":null,\"pod\":null,\"pod_name\":null,\"pod_namespace\":null",
        );
    } else {
        line.extend_from_slice(b",\"container\":");
        opt_str(line, attr.and_then(|a| a.container.as_deref()));
        line.extend_from_slice(b",\"container_name\":");
        opt_str(line, attr.and_then(|a| a.container_name.as_deref()));
        line.extend_from_slice(b",\"pod\":");
        opt_str(line, attr.and_then(|a| a.pod.as_deref()));
        line.extend_from_slice(b",\"pod_name\":");
        opt_str(line, attr.and_then(|a| a.pod_name.as_deref()));
        line.extend_from_slice(b",\"pod_namespace\":");
        opt_str(line, attr.and_then(|a| a.pod_namespace.as_deref()));
    }
    line.extend_from_slice(b",\"cgroup\":");
    opt_str(line, attr.map(|a| a.path.as_str()));
}

/// Appends one `connect_failed` object and a newline to `line` (the
/// daemon's output batch, so nothing is allocated once it is warm). A
/// connection that broke after it was established is a
/// `connection_broken` object: the same keys, `duration_ms` from
/// ESTABLISHED, and `state`, `bytes_acked`, `bytes_received`.
pub fn failure(line: &mut Vec<u8>, ts: &Stamp, e: &Failure, attr: Option<&Attribution>) {
    // A line is about 400 bytes: one capacity check instead of one a key.
    line.reserve(512);
    line.extend_from_slice(match e.stage.broken() {
        Some(_) => b"{\"event\":\"connection_broken\",\"ts\":\"",
        None => b"{\"event\":\"connect_failed\",\"ts\":\"",
    });
    line.extend_from_slice(&ts.bytes());
    line.extend_from_slice(b"\",\"reason\":\"");
    line.extend_from_slice(e.reason.name().as_bytes());
    line.extend_from_slice(b"\",\"errno\":");
    int(line, e.errno);
    timeout_by(line, e.timeout_by);
    icmp(line, e.icmp.as_ref());
    dropped(line, e.dropped.as_ref());
    line.extend_from_slice(b",\"rst_ttl\":");
    match e.rst_ttl {
        Some(t) => int(line, t),
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"stage\":\"");
    line.extend_from_slice(e.stage.name().as_bytes());
    line.extend_from_slice(b"\",\"seen\":\"");
    line.extend_from_slice(e.seen.name().as_bytes());
    line.extend_from_slice(b"\",");
    who(line, &e.caller, attr);
    ends(line, e);
    if let Some(b) = e.stage.broken() {
        line.extend_from_slice(b",\"state\":\"");
        line.extend_from_slice(b.state.name().as_bytes());
        line.extend_from_slice(b"\",\"bytes_acked\":");
        int(line, b.bytes_acked);
        line.extend_from_slice(b",\"bytes_received\":");
        int(line, b.bytes_received);
    }
    end(line, b",\"duration_ms\":", e.duration(), e.retransmits);
}

/// Appends one `verdict` object and a newline: the failure it decides (its
/// `ts`, caller and endpoints, as its `connect_failed` line gave them),
/// `outcome` (`recovered` or `failed`), and for a recovery the `rule` and
/// the `fallback` the application connected to.
pub fn verdict(line: &mut Vec<u8>, ts: &Stamp, d: &Decided, attr: Option<&Attribution>) {
    let (e, fallback) = match d {
        Decided::Failed(f) => (f, None),
        Decided::Recovered(f, fb) => (f, Some(fb)),
    };
    line.reserve(512);
    line.extend_from_slice(b"{\"event\":\"verdict\",\"ts\":\"");
    line.extend_from_slice(&ts.bytes());
    match fallback {
        Some(fb) => {
            line.extend_from_slice(b"\",\"outcome\":\"recovered\",\"rule\":\"");
            line.extend_from_slice(fb.rule.name().as_bytes());
            line.extend_from_slice(b"\",\"fallback\":{\"daddr\":");
            addr(line, fb.daddr);
            line.extend_from_slice(b",\"dport\":");
            int(line, fb.dport);
            line.extend_from_slice(b"},\"reason\":\"");
        }
        None => line.extend_from_slice(
            b"\",\"outcome\":\"failed\",\"rule\":null,\"fallback\":null,\"reason\":\"",
        ),
    }
    line.extend_from_slice(e.reason.name().as_bytes());
    line.push(b'"');
    timeout_by(line, e.timeout_by);
    icmp(line, e.icmp.as_ref());
    dropped(line, e.dropped.as_ref());
    line.push(b',');
    who(line, &e.caller, attr);
    ends(line, e);
    line.extend_from_slice(b"}\n");
}

/// Appends one `connect_slow` object and a newline.
pub fn slow(line: &mut Vec<u8>, ts: &Stamp, e: &Slow, attr: Option<&Attribution>) {
    line.extend_from_slice(b"{\"event\":\"connect_slow\",\"ts\":\"");
    line.extend_from_slice(&ts.bytes());
    line.extend_from_slice(b"\",\"seen\":\"");
    line.extend_from_slice(e.seen.name().as_bytes());
    line.extend_from_slice(b"\",");
    who(line, &e.caller, attr);
    source(line, e.family, e.saddr);
    dest(line, e.daddr, e.dport, e.dname.as_ref());
    end(line, b",\"elapsed_ms\":", Some(e.elapsed_ns), e.retransmits);
}

/// A failure's `,"family":…,"saddr":…,"sport":…,"daddr":…,"dport":…,"dname":…`.
fn ends(line: &mut Vec<u8>, e: &Failure) {
    source(line, e.family, e.saddr);
    line.extend_from_slice(b",\"sport\":");
    match e.sport {
        Some(p) => int(line, p),
        None => line.extend_from_slice(b"null"),
    }
    dest(line, e.daddr, e.dport, e.dname.as_ref());
}

/// `,"timeout_by":"kernel"|"application"|null`
fn timeout_by(line: &mut Vec<u8>, by: Option<TimeoutBy>) {
    line.extend_from_slice(match by {
        Some(TimeoutBy::Kernel) => b",\"timeout_by\":\"kernel\"",
        Some(TimeoutBy::Application) => b",\"timeout_by\":\"application\"",
        None => b",\"timeout_by\":null",
    });
}

/// `,"icmp_from":"10.1.0.1","icmp_type":3,"icmp_code":13`, or nulls
/// where no ICMP error made the errno (or its sender was not seen).
fn icmp(line: &mut Vec<u8>, i: Option<&Icmp>) {
    match i {
        Some(i) => {
            line.extend_from_slice(b",\"icmp_from\":");
            addr(line, i.from);
            line.extend_from_slice(b",\"icmp_type\":");
            int(line, i.kind);
            line.extend_from_slice(b",\"icmp_code\":");
            int(line, i.code);
        }
        None => {
            line.extend_from_slice(b",\"icmp_from\":null,\"icmp_type\":null,\"icmp_code\":null")
        }
    }
}

/// `,"drop_reason":"neigh_failed","drop_next_hop":"10.0.0.1","drop_dev":"eth0"`,
/// or nulls where this host dropped none of the attempt's packets.
fn dropped(line: &mut Vec<u8>, d: Option<&Dropped>) {
    let Some(d) = d else {
        line.extend_from_slice(b",\"drop_reason\":null,\"drop_next_hop\":null,\"drop_dev\":null");
        return;
    };
    line.extend_from_slice(b",\"drop_reason\":");
    match d.name {
        // From the kernel's BTF: [a-z0-9_], nothing to escape.
        Some(n) => {
            line.push(b'"');
            line.extend_from_slice(n.as_bytes());
            line.push(b'"');
        }
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"drop_next_hop\":");
    match d.next_hop {
        Some(a) => addr(line, a),
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"drop_dev\":");
    if d.dev.as_bytes().is_empty() {
        line.extend_from_slice(b"null");
    } else {
        comm(line, &d.dev);
    }
}

/// `,"family":…,"saddr":…`
fn source(line: &mut Vec<u8>, family: Family, saddr: IpAddr) {
    line.extend_from_slice(b",\"family\":\"");
    line.extend_from_slice(family.name().as_bytes());
    line.extend_from_slice(b"\",\"saddr\":");
    addr(line, saddr);
}

/// `,"daddr":…,"dport":…,"dname":…`: the name the caller resolved, escaped
/// (it is whatever a DNS server said), or null.
fn dest(line: &mut Vec<u8>, daddr: IpAddr, dport: u16, dname: Option<&Dname>) {
    line.extend_from_slice(b",\"daddr\":");
    addr(line, daddr);
    line.extend_from_slice(b",\"dport\":");
    int(line, dport);
    match dname {
        Some(n) => {
            line.extend_from_slice(b",\"dname\":");
            escaped(line, n.as_bytes());
        }
        None => line.extend_from_slice(b",\"dname\":null"),
    }
}

/// The time key (`key` is `,"…_ms":`; null when unknown), the
/// retransmits and the line's end.
fn end(line: &mut Vec<u8>, key: &[u8], ns: Option<u64>, retransmits: u32) {
    line.extend_from_slice(key);
    match ns {
        Some(ns) => millis(line, ns),
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"retransmits\":");
    int(line, retransmits);
    line.extend_from_slice(b"}\n");
}

/// Milliseconds rounded to the microsecond, as JSON's shortest decimal
/// (what serde_json prints for the f64 `duration_ms`): `0.0`, `0.011`,
/// `3012.346`, `127000.0`.
fn millis(buf: &mut Vec<u8>, ns: u64) {
    let micros = (ns + 500) / 1000;
    int(buf, micros / 1000);
    let mut frac = micros % 1000;
    buf.push(b'.');
    if frac == 0 {
        buf.push(b'0');
        return;
    }
    let mut digits = 3;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let mut b = itoa::Buffer::new();
    let s = b.format(frac).as_bytes();
    buf.extend(std::iter::repeat_n(b'0', digits - s.len()));
    buf.extend_from_slice(s);
}

/// Serializes through `Display`: serde_json escapes it straight into the
/// writer, with no intermediate String.
fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[derive(serde::Serialize)]
struct JsonStateChange<'a> {
    event: &'static str,
    #[serde(serialize_with = "display")]
    ts: Stamp,
    pid: u32,
    #[serde(serialize_with = "display")]
    comm: &'a Comm,
    family: &'static str,
    #[serde(serialize_with = "display")]
    oldstate: crate::event::TcpState,
    #[serde(serialize_with = "display")]
    newstate: crate::event::TcpState,
    saddr: IpAddr,
    sport: Option<u16>,
    daddr: IpAddr,
    dport: u16,
}

/// `--verbose`: a `state_change` object and a newline (rare: serde is fine).
pub fn state_change(line: &mut Vec<u8>, ts: Stamp, e: &Record) {
    let j = JsonStateChange {
        event: "state_change",
        ts,
        pid: e.caller.pid,
        comm: &e.caller.comm,
        family: e.family.name(),
        oldstate: e.oldstate,
        newstate: e.newstate,
        saddr: e.saddr,
        sport: e.sport,
        daddr: e.daddr,
        dport: e.dport,
    };
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *line, &j);
    line.push(b'\n');
}

#[cfg(test)]
fn duration_ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Family, Reason, Seen, Stage};
    use crate::output::clock::{Clock, Stamps};

    /// The reference: what serde_json makes of the same fields.
    #[derive(serde::Serialize)]
    struct Reference {
        event: &'static str,
        ts: String,
        reason: &'static str,
        errno: u32,
        timeout_by: Option<&'static str>,
        icmp_from: Option<IpAddr>,
        icmp_type: Option<u8>,
        icmp_code: Option<u8>,
        drop_reason: Option<&'static str>,
        drop_next_hop: Option<IpAddr>,
        drop_dev: Option<String>,
        rst_ttl: Option<u8>,
        stage: &'static str,
        seen: &'static str,
        pid: Option<u32>,
        tid: Option<u32>,
        comm: Option<String>,
        process: Option<String>,
        uid: Option<u32>,
        unit: Option<String>,
        user_unit: Option<String>,
        container: Option<String>,
        container_name: Option<String>,
        pod: Option<String>,
        pod_name: Option<String>,
        pod_namespace: Option<String>,
        cgroup: Option<String>,
        family: &'static str,
        saddr: IpAddr,
        sport: Option<u16>,
        daddr: IpAddr,
        dport: u16,
        dname: Option<String>,
        duration_ms: Option<f64>,
        retransmits: u32,
    }

    fn check(e: Failure, attr: Option<&Attribution>) {
        let stamps = Stamps::new(Clock::new(1_795_521_599 * 1_000_000_000));
        let ts = stamps.at(e.ts_ns);
        let mut out = Vec::new();
        failure(&mut out, &ts, &e, attr);
        let c = e.caller;
        let esc = |s: &str| crate::output::text::Escaped(s).to_string();
        let mut want = serde_json::to_vec(&Reference {
            event: "connect_failed",
            ts: ts.to_string(),
            reason: e.reason.name(),
            errno: e.errno,
            timeout_by: e.timeout_by.map(|b| b.name()),
            icmp_from: e.icmp.map(|i| i.from),
            icmp_type: e.icmp.map(|i| i.kind),
            icmp_code: e.icmp.map(|i| i.code),
            drop_reason: e.dropped.and_then(|d| d.name),
            drop_next_hop: e.dropped.and_then(|d| d.next_hop),
            drop_dev: e
                .dropped
                .filter(|d| !d.dev.as_bytes().is_empty())
                .map(|d| d.dev.to_string()),
            rst_ttl: e.rst_ttl,
            stage: e.stage.name(),
            seen: e.seen.name(),
            pid: c.map(|c| c.pid),
            tid: c.map(|c| c.tid),
            comm: c.map(|c| c.comm.to_string()),
            process: c.map(|c| c.process.to_string()),
            uid: c.map(|c| c.uid),
            unit: attr.and_then(|a| a.unit.as_deref()).map(esc),
            user_unit: attr.and_then(|a| a.user_unit.as_deref()).map(esc),
            container: attr.and_then(|a| a.container.as_deref()).map(esc),
            container_name: attr.and_then(|a| a.container_name.as_deref()).map(esc),
            pod: attr.and_then(|a| a.pod.as_deref()).map(esc),
            pod_name: attr.and_then(|a| a.pod_name.as_deref()).map(esc),
            pod_namespace: attr.and_then(|a| a.pod_namespace.as_deref()).map(esc),
            cgroup: attr.map(|a| esc(&a.path)),
            family: e.family.name(),
            saddr: e.saddr,
            sport: e.sport,
            daddr: e.daddr,
            dport: e.dport,
            dname: e.dname.map(|n| n.to_string()),
            duration_ms: e.duration().map(duration_ms),
            retransmits: e.retransmits,
        })
        .unwrap();
        want.push(b'\n');
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    fn base() -> Failure {
        Failure {
            caller: Some(Caller {
                tid: 4243,
                ..Caller::sample(4242, b"curl")
            }),
            errno: 111,
            ts_ns: 1_234_567_891,
            duration_ns: 3_012_345_678,
            retransmits: 2,
            ..Failure::sample("198.51.100.255", 443, Reason::Refused)
        }
    }

    #[test]
    fn millis_print_as_serde_json_prints_the_f64() {
        let mut ns: u64 = 0;
        while ns < 400_000_000_000 {
            let mut got = Vec::new();
            millis(&mut got, ns);
            let want = serde_json::to_string(&duration_ms(ns)).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want, "{ns} ns");
            ns = ns * 3 / 2 + 499;
        }
        for ns in [
            0,
            499,
            500,
            1_000,
            10_000,
            11_000,
            100_000,
            1_000_000,
            1_500_000,
            3_012_345_678,
        ] {
            let mut got = Vec::new();
            millis(&mut got, ns);
            assert_eq!(
                String::from_utf8(got).unwrap(),
                serde_json::to_string(&duration_ms(ns)).unwrap()
            );
        }
    }

    #[test]
    fn ipv4_as_core_formats_it() {
        for o in 0..=255u8 {
            for a in [[o, 0, 0, 0], [1, o, 10, 100], [255, 99, o, 9], [0, 0, 0, o]] {
                let ip = IpAddr::from(a);
                let mut got = Vec::new();
                addr(&mut got, ip);
                assert_eq!(String::from_utf8(got).unwrap(), format!("\"{ip}\""));
            }
        }
    }

    #[test]
    fn same_bytes_as_serde_json() {
        check(base(), None);
        let mut e = base();
        let mut c = e.caller.unwrap();
        c.comm = Comm::new(b"a\"b\\c\n\xff <x>");
        c.pid = u32::MAX;
        e.caller = Some(c);
        e.sport = Some(40000);
        e.dname = Dname::new(b"api.\"x\\\n\xc3\xa9.example.com");
        e.reason = Reason::Error;
        e.errno = 13;
        e.duration_ns = 0;
        e.stage = Stage::Connect;
        let attr = Attribution {
            id: 9,
            path: "/system.slice/a b\"\\.service".into(),
            unit: Some("a b\"\\.service".into()),
            user_unit: Some("u\n<!here>.service".into()),
            owner: Some(1000),
            container: None,
            pod: Some("0f2a".into()),
            container_name: None,
            pod_name: None,
            pod_namespace: None,
        };
        check(e, Some(&attr));
        // Names chosen inside a cluster or by whoever runs a container.
        let attr = Attribution {
            container: Some("0123".into()),
            container_name: Some("web \"1\"\n\\x".into()),
            pod_name: Some("api-7f9c<!here>".into()),
            pod_namespace: Some("payments".into()),
            ..attr
        };
        check(base(), Some(&attr));
        // A host service (no container fields), and each field alone.
        let host = Attribution {
            container: None,
            container_name: None,
            pod: None,
            pod_name: None,
            pod_namespace: None,
            ..attr.clone()
        };
        check(base(), Some(&host));
        for i in 0..5 {
            let mut a = host.clone();
            let v = Some(format!("x{i}"));
            match i {
                0 => a.container = v,
                1 => a.container_name = v,
                2 => a.pod = v,
                3 => a.pod_name = v,
                _ => a.pod_namespace = v,
            }
            check(base(), Some(&a));
        }
        let mut e = base();
        e.family = Family::Ipv6;
        e.saddr = "2001:db8::1".parse().unwrap();
        e.daddr = "::1".parse().unwrap();
        e.duration_ns = 1;
        e.caller = None;
        e.seen = Seen::Unmatched;
        e.dname = Dname::new(b"v6.example.com");
        check(e, None);
        let mut e = base();
        e.saddr = "0.0.0.0".parse().unwrap();
        e.duration_ns = 127_000_000_000;
        check(e, None);
        let mut e = base();
        e.icmp = Some(Icmp {
            from: "2001:db8::fe".parse().unwrap(),
            v6: true,
            kind: 1,
            code: 1,
            errno: 13,
        });
        e.dropped = Some(Dropped {
            reason: 52,
            name: Some("neigh_failed"),
            next_hop: Some("10.68.0.77".parse().unwrap()),
            dev: Comm::new(b"et\"h0"),
        });
        check(e, None);
        // A refused attempt with its RST's TTL, every width of the number.
        for t in [1, 63, 64, 255] {
            let mut e = base();
            e.rst_ttl = Some(t);
            check(e, None);
        }
    }

    #[test]
    fn rst_ttl_is_a_number_or_null() {
        let stamps = Stamps::new(Clock::new(1_795_521_599 * 1_000_000_000));
        let mut e = base();
        let mut out = Vec::new();
        failure(&mut out, &stamps.at(e.ts_ns), &e, None);
        assert!(String::from_utf8_lossy(&out).contains(",\"rst_ttl\":null,"));
        e.rst_ttl = Some(63);
        out.clear();
        failure(&mut out, &stamps.at(e.ts_ns), &e, None);
        assert!(String::from_utf8_lossy(&out).contains(",\"rst_ttl\":63,"));
    }
}
