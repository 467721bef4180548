//! A process's `/etc/resolv.conf`, as glibc reads it: the search list and
//! `ndots` (so a lookup's queries can be named by the name asked, issue
//! 32) and `timeout`/`attempts` (so an unanswered query is expired when
//! the resolver gave up on it). Pure: the daemon reads the file (bounded)
//! from the process's own mount namespace.

/// glibc's defaults and bounds (resolv/res_init.c, resolv.h).
pub const DEFAULT_TIMEOUT_S: u32 = 5;
pub const DEFAULT_ATTEMPTS: u32 = 2;
const MAX_TIMEOUT_S: u32 = 30;
const MAX_ATTEMPTS: u32 = 5;
const MAX_NDOTS: u32 = 15;
/// glibc keeps 6 search domains (MAXDNSRCH); more are ignored here too.
pub const MAX_SEARCH: usize = 6;
/// And at most 3 servers (MAXNS).
const MAX_NS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// Lowercased, no trailing dot, in order.
    pub search: Vec<Vec<u8>>,
    pub ndots: u32,
    pub timeout_s: u32,
    pub attempts: u32,
    /// Servers listed (at most 3, as glibc): the longest a lookup waits
    /// is about timeout × attempts × servers.
    pub servers: u32,
}

impl Default for Conf {
    fn default() -> Self {
        Conf {
            search: Vec::new(),
            ndots: 1,
            timeout_s: DEFAULT_TIMEOUT_S,
            attempts: DEFAULT_ATTEMPTS,
            servers: 1,
        }
    }
}

impl Conf {
    /// As glibc reads it: the last `search` or `domain` line wins;
    /// `options` accumulate; unknown lines are ignored.
    pub fn parse(text: &[u8]) -> Conf {
        let mut c = Conf {
            servers: 0,
            ..Conf::default()
        };
        for line in text.split(|&b| b == b'\n') {
            let mut words = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty());
            let Some(key) = words.next() else { continue };
            if key.starts_with(b"#") || key.starts_with(b";") {
                continue;
            }
            match key {
                b"search" | b"domain" => {
                    c.search = words
                        .take_while(|w| !w.starts_with(b"#") && !w.starts_with(b";"))
                        .map(|w| {
                            let w = w.strip_suffix(b".").unwrap_or(w);
                            w.to_ascii_lowercase()
                        })
                        .filter(|w| !w.is_empty())
                        .take(MAX_SEARCH)
                        .collect();
                }
                b"nameserver" => c.servers = (c.servers + 1).min(MAX_NS),
                b"options" => {
                    for w in words {
                        let num = |p: &[u8]| {
                            w.strip_prefix(p)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| v.parse::<u32>().ok())
                        };
                        if let Some(n) = num(b"ndots:") {
                            c.ndots = n.min(MAX_NDOTS);
                        } else if let Some(n) = num(b"timeout:") {
                            c.timeout_s = n.clamp(1, MAX_TIMEOUT_S);
                        } else if let Some(n) = num(b"attempts:") {
                            c.attempts = n.clamp(1, MAX_ATTEMPTS);
                        }
                    }
                }
                _ => {}
            }
        }
        // No nameserver line: glibc asks the local one.
        c.servers = c.servers.max(1);
        c
    }

    /// How long a query may go unanswered before its resolver gave up on
    /// it: timeout × attempts (the rule; glibc moves on to the
    /// next server after `timeout`, so no later answer counts).
    pub fn query_timeout_ns(&self) -> u64 {
        u64::from(self.timeout_s) * u64::from(self.attempts) * 1_000_000_000
    }

    /// The name a query for `qname` stands for: `qname` without the search
    /// domain glibc appended, else `qname` (asked as it is). The first
    /// domain of the list that is a proper suffix wins: glibc walks it in
    /// order, so a lookup's first expansion uses the first.
    pub fn asked<'a>(&self, qname: &'a [u8]) -> &'a [u8] {
        for s in &self.search {
            if qname.len() > s.len() + 1
                && qname.ends_with(s)
                && qname[qname.len() - s.len() - 1] == b'.'
            {
                return &qname[..qname.len() - s.len() - 1];
            }
        }
        qname
    }

    /// Whether a query for `qname` is one of the candidates glibc tries for
    /// `asked`: itself or itself with a search domain.
    pub fn is_candidate(&self, asked: &[u8], qname: &[u8]) -> bool {
        qname == asked
            || self.search.iter().any(|s| {
                qname.len() == asked.len() + 1 + s.len()
                    && qname.starts_with(asked)
                    && qname[asked.len()] == b'.'
                    && qname.ends_with(s)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_resolv_conf() {
        let c = Conf::parse(
            b"# generated\nnameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:3 rotate\n",
        );
        assert_eq!(c.search.len(), 3);
        assert_eq!((c.ndots, c.timeout_s, c.attempts, c.servers), (5, 1, 3, 1));
        assert_eq!(c.query_timeout_ns(), 3_000_000_000);
        assert_eq!(c.asked(b"api.ns.svc.cluster.local"), b"api");
        assert_eq!(
            c.asked(b"api.example.com.ns.svc.cluster.local"),
            b"api.example.com"
        );
        assert_eq!(c.asked(b"api.example.com"), b"api.example.com");
        for q in [
            &b"api"[..],
            b"api.ns.svc.cluster.local",
            b"api.svc.cluster.local",
            b"api.cluster.local",
        ] {
            assert!(c.is_candidate(b"api", q));
        }
        assert!(!c.is_candidate(b"api", b"xapi.cluster.local"));
        assert!(!c.is_candidate(b"api", b"api.example.com"));
    }

    #[test]
    fn defaults_bounds_and_junk() {
        assert_eq!(Conf::parse(b""), Conf::default());
        let c = Conf::parse(
            b"options timeout:0 attempts:99 ndots:99\nsearch A.Test. b\nsearch c\xff\n\0\0",
        );
        assert_eq!(
            (c.timeout_s, c.attempts, c.ndots),
            (1, MAX_ATTEMPTS, MAX_NDOTS)
        );
        assert_eq!(
            c.search,
            vec![b"c\xff".to_vec()],
            "the last search line wins"
        );
        let many = Conf::parse(
            b"search a b c d e f g h\nnameserver 1\nnameserver 2\nnameserver 3\nnameserver 4\n",
        );
        assert_eq!((many.search.len(), many.servers), (MAX_SEARCH, 3));
    }
}
