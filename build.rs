//! Compiles src/bpf/tcpstate.bpf.c (and the headers it includes from
//! src/bpf) against the committed vmlinux.h for the target architecture and
//! generates the libbpf-rs skeleton into OUT_DIR.
use std::env;
use std::fs;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/tcpstate.bpf.c";
/// Where SRC and every header it includes (but vmlinux.h and libbpf's) live.
const BPF_DIR: &str = "src/bpf";

fn main() {
    // The target's architecture, not the host's: a cross build (packaging/
    // build-deb --target aarch64-unknown-linux-gnu) compiles against the arm64
    // header and register layout (bpf_tracing.h's PT_REGS_* need it).
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let target_arch_define = match arch.as_str() {
        "x86_64" => "-D__TARGET_ARCH_x86",
        "aarch64" => "-D__TARGET_ARCH_arm64",
        other => panic!(
            "target architecture {other} is not supported: vmlinux/ has headers for x86_64 \
             and aarch64 (add vmlinux/{other}/vmlinux.h as vmlinux/README.md says, and its \
             __TARGET_ARCH_ define in build.rs)"
        ),
    };
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let vmlinux = manifest.join("vmlinux").join(&arch);
    if !vmlinux.join("vmlinux.h").exists() {
        panic!(
            "no vmlinux/{arch}/vmlinux.h: generate one as vmlinux/README.md says, \
             on a {arch} kernel with BTF"
        );
    }
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("tcpstate.skel.rs");

    let mut args: Vec<std::ffi::OsString> = vec![
        target_arch_define.into(),
        "-I".into(),
        vmlinux.into(),
        "-I".into(),
        manifest.join(BPF_DIR).into(),
        "-Wall".into(),
        "-Wextra".into(),
        "-Werror".into(),
        // vmlinux.h is generated; its own quirks are not ours to fix.
        "-Wno-unused-parameter".into(),
    ];
    // The bench-only synthetic-load program (bench/sustain); the package
    // is built without it.
    if env::var_os("CARGO_FEATURE_SYNTHETIC").is_some() {
        args.push("-DTCPSTATE_SYNTHETIC".into());
    }
    // clang_args replaces earlier arguments: every flag goes in this one call.
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(args)
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building the BPF skeleton from {SRC}: {e:#}"));
    // The build's identity: a kernel side kept over a restart is reused
    // only by a process built from the same object (same maps and records).
    let skel = fs::read(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()));
    let id = skel.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    println!("cargo:rustc-env=TCPSTATE_BPF_ID={id:016x}");

    // Every C source and header in BPF_DIR, not the folder: a change to a
    // .rs file kept beside them must not recompile the BPF. A header added
    // later is included from one of these, which then changes too. Relative
    // paths, as SRC: a build script runs in the package root.
    let mut sources: Vec<PathBuf> = fs::read_dir(BPF_DIR)
        .unwrap_or_else(|e| panic!("reading {BPF_DIR}: {e}"))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("reading {BPF_DIR}: {e}"))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "c" || x == "h"))
        .collect();
    sources.sort();
    for p in &sources {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=vmlinux");
}
