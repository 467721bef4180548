//! The value parsers of flags clap cannot check alone, and the wording of
//! their errors.

use std::time::Duration;

/// A duration; zero (`0`) turns the early warning off.
pub(super) fn parse_slow_after(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); use values like 3s, 500ms, or 0 for off")
    })?;
    if d > Duration::from_secs(3600) {
        return Err(format!("'{s}' must be at most 1h (or 0 for off)"));
    }
    Ok(d)
}

/// `--recovery-window`: up to 30 s (a page must not wait longer), 0 off.
pub(super) fn parse_recovery_window(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); use values like 1s, 500ms, or 0 for off")
    })?;
    if d > Duration::from_secs(30) {
        return Err(format!(
            "'{s}' must be at most 30s (a failure waits this long before it pages), or 0 for off"
        ));
    }
    Ok(d)
}

pub(super) fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use values like 3s, 30s, 5m"))?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&d) {
        return Err(format!("'{s}' must be from 1s to 24h"));
    }
    Ok(d)
}

pub(super) fn parse_ring_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, mult) = match t.as_bytes().last() {
        Some(b'K' | b'k') => (&t[..t.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&t[..t.len() - 1], 1 << 20),
        _ => (t, 1),
    };
    let bad = || format!("'{t}' is not a power-of-two size from 4K to 1024M (like 1M, 4M, 65536)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let n = n.checked_mul(mult).ok_or_else(bad)?;
    if !n.is_power_of_two() || !(4096..=1 << 30).contains(&n) {
        return Err(bad());
    }
    Ok(n as u32)
}

/// An I/O error without Rust's "(os error N)" suffix.
pub(super) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_size("1M"), Ok(1 << 20));
        assert_eq!(parse_ring_size("64k"), Ok(1 << 16));
        assert_eq!(parse_ring_size("8192"), Ok(8192));
        for bad in ["3M", "1K", "0", "x", "2048M", "99999999999999999999M"] {
            assert!(parse_ring_size(bad).is_err(), "{bad}");
        }
    }
}
