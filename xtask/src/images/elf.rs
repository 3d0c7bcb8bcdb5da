//! What an ELF file needs from the dynamic loader: its interpreter, `DT_NEEDED` and run paths.

use anyhow::{anyhow, bail, Context, Result};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// Offset of `e_ident[EI_CLASS]`, which says 32- or 64-bit.
const ELF_CLASS_OFFSET: usize = 4;

/// The loader-facing facts of one ELF file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Linkage {
    /// `PT_INTERP`: the dynamic loader's path (absent for static binaries and libraries).
    pub(crate) interpreter: Option<String>,
    /// `DT_NEEDED` entries, in file order.
    pub(crate) needed: Vec<String>,
    /// `DT_RUNPATH` and `DT_RPATH` directories, unexpanded (`$ORIGIN` is left to the caller).
    pub(crate) run_paths: Vec<String>,
}

/// Reads the linkage of `data`, or `None` if it is not an ELF file at all.
pub(crate) fn linkage(data: &[u8]) -> Result<Option<Linkage>> {
    if !data.starts_with(&elf::ELFMAG) {
        return Ok(None);
    }
    let class = data.get(ELF_CLASS_OFFSET).copied().map(elf::FileClass);
    let linkage = match class {
        Some(elf::ELFCLASS64) => linkage_of::<elf::FileHeader64<Endianness>>(data),
        Some(elf::ELFCLASS32) => linkage_of::<elf::FileHeader32<Endianness>>(data),
        other => bail!("unknown ELF class {other:?}"),
    }?;
    Ok(Some(linkage))
}

fn linkage_of<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Linkage> {
    let header = H::parse(data).map_err(|e| anyhow!("bad ELF header: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| anyhow!("bad ELF endianness: {e}"))?;
    let mut out = Linkage::default();
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| anyhow!("bad ELF program headers: {e}"))?;
    for segment in segments {
        if let Some(interpreter) = segment
            .interpreter(endian, data)
            .map_err(|e| anyhow!("bad ELF interpreter: {e}"))?
        {
            out.interpreter = Some(text(interpreter).context("ELF interpreter path")?);
        }
    }
    let sections = header
        .sections(endian, data)
        .map_err(|e| anyhow!("bad ELF section headers: {e}"))?;
    let dynamic = sections
        .dynamic_table(endian, data)
        .map_err(|e| anyhow!("bad ELF dynamic section: {e}"))?;
    for entry in &dynamic {
        let is_needed = entry.tag == elf::DT_NEEDED;
        let is_run_path = entry.tag == elf::DT_RUNPATH || entry.tag == elf::DT_RPATH;
        if !is_needed && !is_run_path {
            continue;
        }
        let value = dynamic
            .string(entry)
            .map_err(|e| anyhow!("bad ELF dynamic string: {e}"))?;
        let value = text(value).context("ELF dynamic string")?;
        if is_needed {
            out.needed.push(value);
        } else {
            out.run_paths.extend(
                value
                    .split(':')
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).context("not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_data_has_no_linkage() {
        assert_eq!(linkage(b"#!/bin/sh\necho hi\n").unwrap(), None);
        assert_eq!(linkage(b"").unwrap(), None);
    }

    #[test]
    fn truncated_elf_is_an_error() {
        assert!(linkage(b"\x7fELF\x02\x01\x01").is_err());
    }

    #[test]
    fn this_test_binary_needs_libc() {
        // Test binaries on linux-gnu are dynamically linked against glibc.
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let linkage = linkage(&exe).unwrap().expect("an ELF file");
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(linkage.needed.iter().any(|n| n.starts_with("libc.so")));
            assert!(linkage.interpreter.is_some());
        }
    }
}
