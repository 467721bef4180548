//! `--btf PATH`: checked to be BTF at parse time.

use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

use super::values::io_reason;

/// `--btf PATH` must be BTF: raw BTF (magic 0xEB9F at offset 0, either
/// byte order) or an ELF file with a `.BTF` section (a vmlinux). Checked
/// here, at parse time, so a wrong file is a usage error (exit 2), not a
/// kernel error from libbpf.
pub(super) fn check_btf(p: &Path) -> Result<(), String> {
    let what = format!("--btf {}", p.display());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{what}: no such file"),
            _ => format!("{what}: cannot open: {}", io_reason(&e)),
        })?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{what}: {}", io_reason(&e)))?;
    if meta.is_dir() {
        return Err(format!("{what}: is a directory"));
    }
    if !meta.is_file() {
        return Err(format!("{what}: not a regular file"));
    }
    let at = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off).ok().map(|()| b)
    };
    match at(0, 4).as_deref() {
        Some([0x9f, 0xeb, ..] | [0xeb, 0x9f, ..]) => Ok(()),
        Some([0x7f, b'E', b'L', b'F']) if elf_has_section(&at, b".BTF") => Ok(()),
        Some([0x7f, b'E', b'L', b'F']) => Err(format!(
            "{what}: not a BTF file (an ELF file without a .BTF section)"
        )),
        _ => Err(format!("{what}: not a BTF file")),
    }
}

/// Whether an ELF file (read through `at(offset, len)`) has a section
/// named `want`. ELF32/ELF64, either byte order; any inconsistency is "no".
fn elf_has_section(at: &dyn Fn(u64, usize) -> Option<Vec<u8>>, want: &[u8]) -> bool {
    let Some(h) = at(0, 64) else { return false };
    let is64 = match h[4] {
        1 => false,
        2 => true,
        _ => return false,
    };
    let le = match h[5] {
        1 => true,
        2 => false,
        _ => return false,
    };
    let u = |b: &[u8]| -> u64 {
        let mut v = 0u64;
        for (i, &x) in b.iter().enumerate() {
            let shift = if le { i } else { b.len() - 1 - i };
            v |= u64::from(x) << (8 * shift);
        }
        v
    };
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (
            u(&h[0x28..0x30]),
            u(&h[0x3a..0x3c]),
            u(&h[0x3c..0x3e]),
            u(&h[0x3e..0x40]),
        )
    } else {
        (
            u(&h[0x20..0x24]),
            u(&h[0x2e..0x30]),
            u(&h[0x30..0x32]),
            u(&h[0x32..0x34]),
        )
    };
    let min_ent = if is64 { 0x40 } else { 0x28 };
    if shentsize < min_ent || shnum == 0 || shnum > 65_535 || shstrndx >= shnum {
        return false;
    }
    // A section header's name offset, file offset and size.
    let section = |i: u64| -> Option<(u64, u64, u64)> {
        let sh = at(
            shoff.checked_add(i.checked_mul(shentsize)?)?,
            shentsize as usize,
        )?;
        Some(if is64 {
            (u(&sh[0..4]), u(&sh[0x18..0x20]), u(&sh[0x20..0x28]))
        } else {
            (u(&sh[0..4]), u(&sh[0x10..0x14]), u(&sh[0x14..0x18]))
        })
    };
    let Some((_, str_off, str_size)) = section(shstrndx) else {
        return false;
    };
    if str_size > 1 << 20 {
        return false;
    }
    let Some(strtab) = at(str_off, str_size as usize) else {
        return false;
    };
    (0..shnum).any(|i| {
        section(i).is_some_and(|(name, _, _)| {
            let Some(rest) = strtab.get(name as usize..) else {
                return false;
            };
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            &rest[..end] == want
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{err, Tmp};
    use crate::exit::Kind;

    /// A minimal ELF64 (either byte order) with the named sections.
    fn elf(sections: &[&str], le: bool) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut names = Vec::new();
        for s in sections.iter().chain([&".shstrtab"]) {
            names.push(strtab.len() as u64);
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
        }
        let put = |b: &mut Vec<u8>, at: usize, v: u64, n: usize| {
            for i in 0..n {
                let byte = (v >> (8 * i)) as u8;
                let pos = if le { at + i } else { at + n - 1 - i };
                b[pos] = byte;
            }
        };
        let shoff = (64 + strtab.len()).next_multiple_of(8);
        let shnum = sections.len() + 2;
        let mut b = vec![0u8; shoff + 64 * shnum];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = if le { 1 } else { 2 };
        b[64..64 + strtab.len()].copy_from_slice(&strtab);
        put(&mut b, 0x28, shoff as u64, 8);
        put(&mut b, 0x3a, 64, 2);
        put(&mut b, 0x3c, shnum as u64, 2);
        put(&mut b, 0x3e, (shnum - 1) as u64, 2);
        for (i, name) in names.iter().enumerate() {
            let sh = shoff + 64 * (i + 1);
            put(&mut b, sh, *name, 4);
            if i == names.len() - 1 {
                put(&mut b, sh + 0x18, 64, 8);
                put(&mut b, sh + 0x20, strtab.len() as u64, 8);
            }
        }
        b
    }
    #[test]
    fn btf_files_are_checked() {
        let t = Tmp::new("btf");
        let raw_le = t.file("raw", &[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]);
        let raw_be = t.file("rawbe", &[0xeb, 0x9f, 1, 0]);
        let elf_le = t.file("elf", &elf(&[".text", ".BTF", ".BTF.ext"], true));
        let elf_be = t.file("elfbe", &elf(&[".BTF"], false));
        for ok in [&raw_le, &raw_be, &elf_le, &elf_be] {
            assert_eq!(check_btf(ok), Ok(()), "{}", ok.display());
        }
        let no_btf = t.file("nobtf", &elf(&[".text", ".BTF.ext", ".BTFx"], true));
        assert!(check_btf(&no_btf).unwrap_err().contains("not a BTF file"));
        let short = t.file("short", b"\x9f");
        let text = t.file("text", b"root:x:0:0:root:/root:/bin/bash\n");
        let truncated = t.file("trunc", &elf(&[".BTF"], true)[..70]);
        for bad in [&short, &text, &truncated] {
            let e = check_btf(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("--btf {}: not a BTF file", bad.display())),
                "{e}"
            );
        }
        assert_eq!(
            check_btf(&t.0).unwrap_err(),
            format!("--btf {}: is a directory", t.0.display())
        );
        assert!(check_btf(&t.0.join("none"))
            .unwrap_err()
            .ends_with(": no such file"));
        assert!(check_btf(Path::new("/dev/null"))
            .unwrap_err()
            .ends_with(": not a regular file"));
        let e = err(&["--btf", "/etc/passwd"]);
        assert_eq!(
            (e.kind, e.msg.as_str()),
            (Kind::Usage, "--btf /etc/passwd: not a BTF file")
        );
        if Path::new("/sys/kernel/btf/vmlinux").exists() {
            assert_eq!(check_btf(Path::new("/sys/kernel/btf/vmlinux")), Ok(()));
        }
    }
}
