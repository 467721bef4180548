//! tcpstate: alerts on every outbound TCP connection that fails.
//! Everything is in the library; see src/lib.rs.

fn main() -> std::process::ExitCode {
    tcpstate::main()
}
