//! Debian packages: fetched with `apt-get download` into a cache, read with `dpkg-deb`.
//!
//! Nothing is installed and nothing is read from the host's installed files: a package's
//! contents come from `dpkg-deb --fsys-tarfile`, the exact tar stream inside the `.deb`, so
//! modes, symlinks and hard links are the package's own and do not depend on the host's umask
//! or on running as root.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::recipe::package_name;
use super::tree::{normalize, Node, Tree};
use crate::util::{describe, run_cmd};

/// One downloaded package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    pub(crate) name: String,
    /// The full Debian version, epoch included (`1:1.35.0-4+deb12u1+b1`).
    pub(crate) version: String,
    /// Debian architecture (`amd64`, `arm64`, `all`).
    pub(crate) architecture: String,
    pub(crate) deb: PathBuf,
}

/// A line of `apt-get download --print-uris`: what apt would fetch and how to check it.
#[derive(Debug, PartialEq, Eq)]
struct Planned {
    file_name: String,
    sha256: String,
}

/// Makes sure every package in `specs` (`name` or `name=version`) is in `cache`, downloading
/// only those whose file is missing or does not match apt's SHA-256, and reads their control
/// fields. Which version `name` means is apt's choice (the candidate in the host's package
/// lists); pin with `name=version` to decide yourself.
pub(crate) fn fetch(specs: &[String], cache: &Path) -> Result<Vec<Package>> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let planned = plan(specs, cache)?;
    let mut missing = Vec::new();
    for (spec, want) in specs.iter().zip(&planned) {
        let path = cache.join(&want.file_name);
        if !(path.is_file() && sha256_file(&path)? == want.sha256) {
            missing.push(spec.as_str());
        }
    }
    if !missing.is_empty() {
        // apt-get drops to the `_apt` user for downloads and warns when that user cannot
        // write here; the download still works (as root, unsandboxed).
        run_cmd(
            Command::new("apt-get")
                .args(["download", "-q"])
                .args(&missing)
                .current_dir(cache)
                .stdin(Stdio::null()),
        )
        .context("downloading Debian packages (is the mirror reachable?)")?;
    }
    let mut packages = Vec::new();
    for want in &planned {
        let path = cache.join(&want.file_name);
        let got = sha256_file(&path)?;
        if got != want.sha256 {
            bail!(
                "{}: SHA-256 is {got}, apt's package lists say {}",
                path.display(),
                want.sha256
            );
        }
        packages.push(control(&path)?);
    }
    Ok(packages)
}

/// Asks apt which file each spec means, in the order of `specs`.
fn plan(specs: &[String], cache: &Path) -> Result<Vec<Planned>> {
    // apt-get prints nothing for a package whose file is already in its working directory,
    // so it runs in an empty one.
    let empty = cache.join(".print-uris");
    fs::create_dir_all(&empty).with_context(|| format!("creating {}", empty.display()))?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["download", "--print-uris", "-q"])
        .args(specs)
        .current_dir(&empty)
        .stdin(Stdio::null());
    let output = cmd
        .output()
        .with_context(|| format!("starting {}", describe(&cmd)))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}\n(if packages are unknown, run `apt-get update`)",
            describe(&cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8(output.stdout).context("apt-get output is not UTF-8")?;
    let mut by_name = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.starts_with('\'')) {
        let planned = parse_print_uris_line(line)?;
        let name = planned
            .file_name
            .split('_')
            .next()
            .unwrap_or_default()
            .to_owned();
        by_name.insert(name, planned);
    }
    specs
        .iter()
        .map(|spec| {
            by_name.remove(package_name(spec)).with_context(|| {
                format!(
                    "apt-get download --print-uris printed nothing for {spec:?} \
                     (a virtual package? list the real one)"
                )
            })
        })
        .collect()
}

/// Parses `'URI' FILE SIZE SHA256:HEX`.
fn parse_print_uris_line(line: &str) -> Result<Planned> {
    let mut fields = line.split_whitespace();
    let (_uri, file_name, _size, hash) =
        (fields.next(), fields.next(), fields.next(), fields.next());
    let (Some(file_name), Some(hash)) = (file_name, hash) else {
        bail!("unexpected apt-get --print-uris line: {line}");
    };
    let Some(sha256) = hash.strip_prefix("SHA256:") else {
        bail!("apt-get gave no SHA-256 for {file_name} ({hash}); refusing an unchecked download");
    };
    if file_name.contains('/') || !file_name.ends_with(".deb") {
        bail!("unexpected package file name {file_name:?}");
    }
    Ok(Planned {
        file_name: file_name.to_owned(),
        sha256: sha256.to_ascii_lowercase(),
    })
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `Package`, `Version` and `Architecture` from a `.deb`'s control file.
fn control(deb: &Path) -> Result<Package> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("--field")
        .arg(deb)
        .args(["Package", "Version", "Architecture"]);
    let text = output_text(&mut cmd)?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("{}: no {name} field", deb.display()))
    };
    Ok(Package {
        name: field("Package")?,
        version: field("Version")?,
        architecture: field("Architecture")?,
        deb: deb.to_owned(),
    })
}

fn output_text(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("{}: output not UTF-8", describe(cmd)))
}

/// Unpacks every package into one tree, in order. Two packages may ship the same directory,
/// or the same file with the same contents; anything else is an error.
pub(crate) fn unpack_all(packages: &[Package]) -> Result<Tree> {
    let mut tree = Tree::new();
    for package in packages {
        let mut cmd = Command::new("dpkg-deb");
        cmd.arg("--fsys-tarfile").arg(&package.deb);
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting {}", describe(&cmd)))?;
        if !output.status.success() {
            bail!(
                "{} failed ({}): {}",
                describe(&cmd),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        add_tar(&mut tree, &output.stdout)
            .with_context(|| format!("unpacking {}", package.deb.display()))?;
    }
    Ok(tree)
}

/// Adds the entries of a package's data tar (paths like `./usr/sbin/nginx`) to `tree`.
fn add_tar(tree: &mut Tree, tar_bytes: &[u8]) -> Result<()> {
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().context("reading tar")? {
        let mut entry = entry.context("reading tar entry")?;
        let raw_path = entry.path_bytes().into_owned();
        let raw_path = String::from_utf8(raw_path).context("tar path is not UTF-8")?;
        let rooted = format!("/{}", raw_path.trim_start_matches("./"));
        if rooted.trim_end_matches('/').is_empty() {
            continue; // the package's `./` root
        }
        let path = normalize(&rooted)?;
        let header = entry.header();
        let mode = header.mode().context("tar mode")? & 0o7777;
        let kind = header.entry_type();
        let node = match kind {
            tar::EntryType::Directory => Node::Dir { mode },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .with_context(|| format!("reading {path}"))?;
                Node::file(mode, data)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .with_context(|| format!("{path}: symlink without target"))?;
                let target = String::from_utf8(target.into_owned())
                    .with_context(|| format!("{path}: symlink target is not UTF-8"))?;
                Node::Symlink { target }
            }
            tar::EntryType::Link => {
                // A hard link names an earlier entry of the same archive; the image gets a
                // second copy of the file, which is simpler and changes nothing for a reader.
                let target = entry
                    .link_name_bytes()
                    .with_context(|| format!("{path}: hard link without target"))?;
                let target = String::from_utf8(target.into_owned())
                    .with_context(|| format!("{path}: hard link target is not UTF-8"))?;
                let target = normalize(&format!("/{}", target.trim_start_matches("./")))?;
                match tree.get(&target) {
                    Some(node @ Node::File { .. }) => node.clone(),
                    _ => bail!("{path}: hard link to {target}, which is not an earlier file"),
                }
            }
            other => bail!("{path}: unsupported tar entry type {other:?}"),
        };
        tree.insert(&path, node)?;
    }
    Ok(())
}

/// The upstream part of a Debian version: no epoch, no Debian revision
/// (`1:1.35.0-4+deb12u1+b1` → `1.35.0`).
pub(crate) fn upstream_version(version: &str) -> &str {
    let without_epoch = version.split_once(':').map_or(version, |(_, rest)| rest);
    without_epoch
        .rsplit_once('-')
        .map_or(without_epoch, |(upstream, _)| upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_uris_lines_parse() {
        let line = "'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4%2bdeb12u1%2bb1_amd64.deb' \
                    busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb 928188 \
                    SHA256:3D3FDBE91D4660C873E14B092C213FE81C1DA6362DAA236EB25D0171EB108744";
        let planned = parse_print_uris_line(line).unwrap();
        assert_eq!(
            planned.file_name,
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
        );
        assert_eq!(
            planned.sha256,
            "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744"
        );
        assert!(parse_print_uris_line("'u' f.deb 1 MD5Sum:abc").is_err());
        assert!(parse_print_uris_line("'u' ../f.deb 1 SHA256:abc").is_err());
        assert!(parse_print_uris_line("'u'").is_err());
    }

    #[test]
    fn upstream_versions_drop_epoch_and_revision() {
        assert_eq!(upstream_version("1:1.35.0-4+deb12u1+b1"), "1.35.0");
        assert_eq!(upstream_version("1.22.1-9+deb12u11"), "1.22.1");
        assert_eq!(upstream_version("3.0.22-1~deb12u2"), "3.0.22");
        assert_eq!(upstream_version("1.2-3-4"), "1.2-3");
        assert_eq!(upstream_version("20230101"), "20230101");
    }

    #[test]
    fn package_tars_become_trees() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, mode: u32, link: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            if link.is_empty() {
                builder.append_data(&mut header, path, data).unwrap();
            } else {
                builder.append_link(&mut header, path, link).unwrap();
            }
        };
        add("./", tar::EntryType::Directory, 0o755, "", b"");
        add("./bin/", tar::EntryType::Directory, 0o700, "", b"");
        add("./bin/busybox", tar::EntryType::Regular, 0o4755, "", b"bb");
        add("./bin/sh", tar::EntryType::Symlink, 0o777, "busybox", b"");
        add(
            "./bin/ash",
            tar::EntryType::Link,
            0o755,
            "./bin/busybox",
            b"",
        );
        let bytes = builder.into_inner().unwrap();
        let mut tree = Tree::new();
        add_tar(&mut tree, &bytes).unwrap();
        assert_eq!(tree.get("/bin"), Some(&Node::Dir { mode: 0o700 }));
        assert_eq!(
            tree.get("/bin/busybox"),
            Some(&Node::file(0o4755, &b"bb"[..]))
        );
        assert_eq!(tree.get("/bin/ash"), tree.get("/bin/busybox"));
        assert_eq!(
            tree.get("/bin/sh"),
            Some(&Node::Symlink {
                target: "busybox".into()
            })
        );
    }
}
