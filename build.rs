//! Compiles src/bpf/tcpstate.bpf.c against the committed vmlinux.h for the
//! target architecture and generates the libbpf-rs skeleton into OUT_DIR.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/tcpstate.bpf.c";

fn main() {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
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

    // clang_args replaces earlier arguments: every flag goes in this one call.
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            "-I".as_ref(),
            vmlinux.as_os_str(),
            "-I".as_ref(),
            manifest.join("src/bpf").as_os_str(),
            "-Wall".as_ref(),
            "-Wextra".as_ref(),
            "-Werror".as_ref(),
            // vmlinux.h is generated; its own quirks are not ours to fix.
            "-Wno-unused-parameter".as_ref(),
        ])
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building the BPF skeleton from {SRC}: {e:#}"));

    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-changed=vmlinux");
}
