//! Reproducible tar and gzip: the same tree always gives the same bytes.
//!
//! Entries are written in the tree's sorted order with GNU headers: owner root (uid/gid 0, no
//! user or group names), one fixed mtime, no atime/ctime, the tree's permission bits, and no
//! PAX records; names longer than a header holds use GNU long-name entries, which carry no
//! times either. Gzip streams have no file name, mtime 0 and a fixed level.

use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};

use super::tree::{Node, Tree};

/// The gzip level of every layer. Changing it changes every layer digest.
const GZIP_LEVEL: u32 = 9;

/// Writes `tree` as an uncompressed tar whose every entry has modification time `mtime`.
pub(crate) fn tar(tree: &Tree, mtime: u64) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, node) in tree.iter() {
        // Layer and archive paths are relative: `usr/sbin/nginx`.
        let name = path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        match node {
            Node::Dir { mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder
                    .append_data(&mut header, name, std::io::empty())
                    .with_context(|| format!("tar: {path}"))?;
            }
            Node::File { mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, name, &data[..])
                    .with_context(|| format!("tar: {path}"))?;
            }
            Node::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, name, target)
                    .with_context(|| format!("tar: {path}"))?;
            }
        }
    }
    builder.into_inner().context("finishing tar")
}

/// Compresses `data` with no name and no timestamp in the gzip header.
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(GZIP_LEVEL));
    encoder.write_all(data).context("gzip")?;
    encoder.finish().context("gzip")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample() -> Tree {
        let mut tree = Tree::new();
        tree.insert("/tmp", Node::Dir { mode: 0o1777 }).unwrap();
        tree.insert("/bin/busybox", Node::file(0o755, &b"\x7fELF..."[..]))
            .unwrap();
        tree.insert(
            "/bin/sh",
            Node::Symlink {
                target: "busybox".into(),
            },
        )
        .unwrap();
        let long = format!("/usr/share/{}/file", "x".repeat(150));
        tree.insert(&long, Node::file(0o644, &b"long"[..])).unwrap();
        tree
    }

    #[test]
    fn tar_entries_are_sorted_rooted_and_timeless() {
        let bytes = tar(&sample(), 1234).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut paths = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.mtime().unwrap(), 1234);
            let gnu = header.as_gnu().unwrap();
            assert!(gnu.atime().is_err() || gnu.atime().unwrap() == 0);
            assert!(gnu.ctime().is_err() || gnu.ctime().unwrap() == 0);
            assert!(entry.pax_extensions().unwrap().is_none());
            paths.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(paths[0], "bin");
        assert!(paths.contains(&"bin/sh".to_owned()));
        assert!(paths.iter().any(|p| p.len() > 150), "long names survive");
        assert!(paths.iter().all(|p| !p.starts_with('/')));
    }

    #[test]
    fn tar_and_gzip_are_reproducible() {
        let first = gzip(&tar(&sample(), 0).unwrap()).unwrap();
        let second = gzip(&tar(&sample(), 0).unwrap()).unwrap();
        assert_eq!(first, second);
        // Gzip header: magic, method, flags (no FNAME/FCOMMENT), mtime 0.
        assert_eq!(&first[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(first[3], 0);
        assert_eq!(&first[4..8], &[0, 0, 0, 0]);
        let mut round = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut round)
            .unwrap();
        assert_eq!(round, tar(&sample(), 0).unwrap());
    }
}
