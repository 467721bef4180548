//! libbpf's messages, kept so a failure can say what the kernel said.

use std::sync::Mutex;

use libbpf_rs::PrintLevel;

pub(super) static LIBBPF_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub(super) fn capture_libbpf(level: PrintLevel, msg: String) {
    if level == PrintLevel::Debug {
        return;
    }
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        if log.len() >= 200 {
            log.remove(0);
        }
        log.push(msg.trim_end().to_string());
    }
}

/// The last thing libbpf said that looks like a reason, for error lines.
pub(super) fn libbpf_reason() -> String {
    let log = LIBBPF_LOG.lock().map(|l| l.clone()).unwrap_or_default();
    log.iter()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.contains("-- BEGIN") && !l.contains("-- END"))
        .map(|l| format!(" (libbpf: {})", l.trim()))
        .unwrap_or_default()
}

/// The errno libbpf gave for the last program that failed to load, like
/// `-EPERM`.
pub(super) fn load_errno() -> String {
    let log = LIBBPF_LOG.lock().map(|l| l.clone()).unwrap_or_default();
    log.iter()
        .rev()
        .find_map(|l| {
            let (_, rest) = l.split_once("BPF program load failed: ")?;
            Some(rest.split_whitespace().next().unwrap_or(rest).to_string())
        })
        .unwrap_or_else(|| "no reason given".into())
}

/// libbpf's whole log, for --verbose after a failure.
pub fn libbpf_log() -> Vec<String> {
    LIBBPF_LOG.lock().map(|l| l.clone()).unwrap_or_default()
}
