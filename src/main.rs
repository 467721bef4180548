//! tcpstate: alerts on every outbound TCP connection that fails.
mod alert;
mod bpf;
mod cli;
mod correlate;
mod daemon;
mod event;
mod exit;
mod filter;
mod json;
mod notify;
mod output;
mod signals;

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Err(e) = signals::block() {
        eprintln!("tcpstate: blocking SIGTERM/SIGINT: {e}");
        return ExitCode::from(1);
    }
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(f) => {
            eprintln!("tcpstate: {f}");
            return ExitCode::from(f.kind.code());
        }
    };
    match daemon::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, line) = exit::report(&e);
            eprintln!("tcpstate: {line}");
            ExitCode::from(code)
        }
    }
}
