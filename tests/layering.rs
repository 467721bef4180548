//! House rule: imports point one way, wiring above sources and sinks above
//! pure parts. This test reads src/ and fails naming any import that points
//! up a layer (the table in `LAYERS`) and any circle of modules. Test
//! modules are left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

const WIRING: u8 = 3;
const SOURCES_AND_SINKS: u8 = 2;
const PURE: u8 = 1;

/// Each module's layer: the longest prefix listed decides. Every top-level
/// module must be listed, so a new folder has to choose its layer.
const LAYERS: &[(&str, u8)] = &[
    // lib.rs: `main` starts the daemon.
    ("", WIRING),
    ("daemon", WIRING),
    ("cli", WIRING),
    // Touch the kernel, the filesystem, sockets or the process.
    ("tracer", SOURCES_AND_SINKS),
    ("tracer::filter", PURE),
    ("attribution", SOURCES_AND_SINKS),
    ("sinks", SOURCES_AND_SINKS),
    ("metrics::server", SOURCES_AND_SINKS),
    ("output::stdout", SOURCES_AND_SINKS),
    ("log", SOURCES_AND_SINKS),
    ("daemon::notify", SOURCES_AND_SINKS),
    ("daemon::signals", SOURCES_AND_SINKS),
    // No I/O; time is an argument.
    ("attribution::cgroup_path", PURE),
    ("attribution::runtime_names", PURE),
    ("sinks::syslog_msg", PURE),
    ("sinks::slack_msg", PURE),
    ("sinks::webhook", PURE),
    ("sinks::otlp_msg", PURE),
    ("daemon::losses", PURE),
    ("pipeline", PURE),
    ("alert", PURE),
    ("output", PURE),
    ("dns", PURE),
    ("metrics", PURE),
    ("event", PURE),
    ("exit", PURE),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(p, _)| module == *p || p.is_empty() || module.starts_with(&format!("{p}::")))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, l)| *l)
}

/// The module a file under src/ is: `a/b.rs` and `a/b/mod.rs` are `a::b`,
/// lib.rs the crate root (""); main.rs is the binary, not the library.
fn module_of(rel: &Path) -> Option<String> {
    let s = rel.to_str()?.strip_suffix(".rs")?;
    let s = s.strip_suffix("/mod").unwrap_or(s);
    match s {
        "lib" => Some(String::new()),
        "main" => None,
        _ => Some(s.replace('/', "::")),
    }
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code outside comment lines and `#[cfg(test)] mod … { … }` blocks
/// (which, by house style, start and end at column 0).
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|n| n.contains("mod ")) {
            for l in lines.by_ref() {
                if l == "}" {
                    break;
                }
            }
            continue;
        }
        if !l.trim_start().starts_with("//") {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Expands a use tree (`a::{self, b::c, d}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().trim().to_string()];
    };
    let Some(close) = tree.rfind('}') else {
        return vec![];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..close];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| match p.as_str() {
            "self" => prefix.to_string(),
            _ => format!("{prefix}::{p}"),
        })
        .collect()
}

/// Every path the code names: those of `use` trees, and `crate::…` or
/// `super::…` paths written inline.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().next_back();
        let stmt = &rest[i + 4..];
        rest = stmt;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = stmt.find(';') {
            out.extend(expand(&stmt[..end]));
        }
    }
    for start in ["crate::", "super::"] {
        for (i, _) in code.match_indices(start) {
            if code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let p: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(p.trim_end_matches(':').to_string());
        }
    }
    out
}

/// The deepest module a path, seen from module `from`, lies in; None for
/// other crates and std.
fn target(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if from.is_empty() {
        vec![]
    } else {
        from.split("::").collect()
    };
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        Some(&"self") => {
            segs.remove(0);
        }
        // A child module of `from` named without a prefix.
        Some(first) if modules.contains(&join(&base, &[first])) => {}
        _ => return None,
    }
    let mut best = join(&base, &[]);
    for n in 1..=segs.len() {
        let m = join(&base, &segs[..n]);
        if modules.contains(&m) {
            best = m;
        }
    }
    Some(best)
}

fn join(base: &[&str], segs: &[&str]) -> String {
    base.iter()
        .chain(segs)
        .copied()
        .collect::<Vec<_>>()
        .join("::")
}

/// Which module names which, for the library under `src`.
fn graph(src: &Path) -> Graph {
    let mut fs = Vec::new();
    files(src, &mut fs);
    let named: Vec<(String, String)> = fs
        .iter()
        .filter_map(|p| {
            // This file's test strings are not imports.
            let m = module_of(p.strip_prefix(src).unwrap()).filter(|m| m != "layering")?;
            Some((m, std::fs::read_to_string(p).unwrap()))
        })
        .collect();
    let modules: BTreeSet<String> = named.iter().map(|(m, _)| m.clone()).collect();
    let mut g = Graph::new();
    for (m, text) in &named {
        let edges = g.entry(m.clone()).or_default();
        for p in paths(&non_test_code(text)) {
            if let Some(t) = target(m, &p, &modules) {
                // A module always sees its ancestors' names as paths of
                // `mod` declarations; the root names everything.
                if t != *m && !t.is_empty() {
                    edges.insert(t);
                }
            }
        }
    }
    g
}

/// A circle in `g`, as the modules along it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit<'a>(
        g: &'a Graph,
        m: &'a str,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(true) => return None,
            Some(false) => {
                let at = stack.iter().position(|s| *s == m).unwrap();
                let mut c: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
                c.push(m.to_string());
                return Some(c);
            }
            None => {}
        }
        state.insert(m, false);
        stack.push(m);
        for t in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, t, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m, true);
        None
    }
    let mut state = BTreeMap::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut state, &mut Vec::new()))
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mods: BTreeSet<String> = ["alert", "alert::policy", "alert::resolve", "log"]
        .map(String::from)
        .into();
    let t = |from, p| target(from, p, &mods);
    assert_eq!(
        t("alert::resolve", "super::policy::Alert"),
        Some("alert::policy".into())
    );
    assert_eq!(
        expand("crate::alert::{self, policy::{Alert, Dest}}"),
        [
            "crate::alert",
            "crate::alert::policy::Alert",
            "crate::alert::policy::Dest"
        ]
    );
    assert_eq!(t("alert", "policy::Alert"), Some("alert::policy".into()));
    assert_eq!(t("log", "std::fmt::Display"), None);
    let code = "use super::x::Y;\n#[cfg(test)]\nmod tests {\n    use crate::log::Log;\n}\n";
    let found: BTreeSet<String> = paths(&non_test_code(code)).into_iter().collect();
    assert_eq!(found, BTreeSet::from(["super::x::Y".to_string()]));
}

#[test]
fn imports_point_one_way() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.len() > 20, "read only {} modules", g.len());
    assert!(g["daemon"].contains("alert::resolve"), "{:?}", g["daemon"]);
    assert_eq!(layer("tracer::features"), Some(SOURCES_AND_SINKS));
    assert_eq!(layer("tracer::filter"), Some(PURE));
    assert_eq!(layer("daemon::signals"), Some(SOURCES_AND_SINKS));
    let mut upward = Vec::new();
    for (from, tos) in &g {
        if from.is_empty() {
            continue;
        }
        let Some(lf) = LAYERS
            .iter()
            .any(|(p, _)| !p.is_empty() && from.split("::").next() == Some(*p))
            .then(|| layer(from))
            .flatten()
        else {
            panic!("src/ has a module `{from}` that LAYERS does not place")
        };
        for to in tos {
            let lt = layer(to).unwrap_or_else(|| panic!("`{to}` has no layer"));
            if lt > lf {
                upward.push(format!("{from} (layer {lf}) -> {to} (layer {lt})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports point up a layer:\n{}",
        upward.join("\n")
    );
    if let Some(c) = find_cycle(&g) {
        panic!("an import circle: {}", c.join(" -> "));
    }
}
