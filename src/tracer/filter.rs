//! Destination filters: what `--dest` and `--port` accept, and the keys the
//! BPF maps are filled with.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The LPM trie key: IPv4 is stored v4-mapped (`::ffff:a.b.c.d`, with
    /// 96 added to the length), which is how the BPF side looks up both
    /// AF_INET sockets and v4-mapped AF_INET6 ones.
    pub fn lpm_key(&self) -> (u32, [u8; 16]) {
        match self.addr {
            IpAddr::V4(a) => (u32::from(self.len) + 96, a.to_ipv6_mapped().octets()),
            IpAddr::V6(a) => (u32::from(self.len), a.octets()),
        }
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!("'{s}' is not an IP address or CIDR prefix (like 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32)")
        };
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(l) if l <= max => l,
                _ => return Err(format!("'{s}': prefix length must be 0 to {max}")),
            },
        };
        // Store the network address, so 192.0.2.7/24 shows as 192.0.2.0/24.
        let addr = match addr {
            IpAddr::V4(a) => {
                let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & m).into())
            }
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// What `--dest` takes: an address or prefix, or a DNS name to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Prefix(Prefix),
    /// Lowercased, without a trailing dot.
    Name(String),
}

impl FromStr for Dest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        // Anything that looks like an address or prefix is one, or an error.
        let looks_numeric = s.contains('/')
            || s.contains(':')
            || s.trim_end_matches('.')
                .rsplit('.')
                .next()
                .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if looks_numeric {
            return s.parse().map(Dest::Prefix);
        }
        let name = s.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "'{s}' is not an IP address, CIDR prefix or DNS name (like 192.0.2.7, \
                 10.0.0.0/8, 2001:db8::/32 or api.example.com)"
            ));
        }
        Ok(Dest::Name(name))
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Prefix(p) => p.fmt(f),
            Dest::Name(n) => f.write_str(n),
        }
    }
}

/// The prefixes among `dests`.
pub fn prefixes(dests: &[Dest]) -> Vec<Prefix> {
    dests
        .iter()
        .filter_map(|d| match d {
            Dest::Prefix(p) => Some(*p),
            Dest::Name(_) => None,
        })
        .collect()
}

/// The names among `dests`.
pub fn names(dests: &[Dest]) -> Vec<String> {
    dests
        .iter()
        .filter_map(|d| match d {
            Dest::Name(n) => Some(n.clone()),
            Dest::Prefix(_) => None,
        })
        .collect()
}

impl Prefix {
    /// The /32 or /128 of one address.
    pub fn host(addr: IpAddr) -> Prefix {
        let addr = addr.to_canonical();
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }
}

/// A destination port, 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{}' is not a port number (1 to 65535)", s.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_prefixes() {
        assert_eq!(p("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(p(" 192.0.2.7/24 ").to_string(), "192.0.2.0/24");
        assert_eq!(p("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(p("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "host",
            "192.0.2.300",
            "192.0.2.0/33",
            "::/129",
            "1.2.3.4/x",
            "1.2.3.4/",
        ] {
            let err = bad.parse::<Prefix>().unwrap_err();
            assert!(err.contains(bad.trim()), "{err}");
        }
    }

    #[test]
    fn ipv4_prefixes_match_v4_mapped_destinations() {
        let (len, key) = p("192.0.2.0/24").lpm_key();
        assert_eq!(len, 120);
        assert_eq!(Ipv6Addr::from(key).to_string(), "::ffff:192.0.2.0");
        let (len, key) = p("2001:db8::/32").lpm_key();
        assert_eq!(
            (len, Ipv6Addr::from(key).to_string()),
            (32, "2001:db8::".to_string())
        );
    }

    #[test]
    fn dests_are_prefixes_or_names() {
        assert_eq!(
            "192.0.2.7".parse::<Dest>(),
            Ok(Dest::Prefix(p("192.0.2.7")))
        );
        assert_eq!("::1".parse::<Dest>(), Ok(Dest::Prefix(p("::1"))));
        assert_eq!(
            " Api.Example.COM. ".parse::<Dest>(),
            Ok(Dest::Name("api.example.com".into()))
        );
        assert_eq!(
            "moving.test".parse::<Dest>().unwrap().to_string(),
            "moving.test"
        );
        // A mistyped address stays an error, not a name.
        for bad in [
            "192.0.2.300",
            "1.2.3.4/x",
            "",
            "a..b",
            "-a.test",
            "a b.test",
            "é.test",
            "x/y",
        ] {
            assert!(bad.parse::<Dest>().is_err(), "{bad}");
        }
        assert!(format!("{}.test", "a".repeat(64)).parse::<Dest>().is_err());
        let d: Vec<Dest> = ["192.0.2.0/24", "a.test"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(prefixes(&d), vec![p("192.0.2.0/24")]);
        assert_eq!(names(&d), vec!["a.test".to_string()]);
        assert_eq!(
            Prefix::host("::ffff:192.0.2.1".parse().unwrap()),
            p("192.0.2.1")
        );
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("443"), Ok(443));
        assert_eq!(parse_port(" 22 "), Ok(22));
        for bad in ["0", "65536", "-1", "http", ""] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
