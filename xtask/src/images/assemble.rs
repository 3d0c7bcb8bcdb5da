//! Turns a recipe and its unpacked packages into an image's root filesystem.
//!
//! The steps, in order: `include` paths from the packages; applet symlinks; the recipe's own
//! directories, files and symlinks; then, for every ELF file in the result, its interpreter and
//! `DT_NEEDED` libraries (recursively), found in the packages the way the image's dynamic loader
//! will find them at run time — without `/etc/ld.so.cache`, so only `DT_RUNPATH` and the
//! loader's built-in directories count.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::elf;
use super::recipe::{Applets, Recipe};
use super::tree::{Node, Tree};
use crate::util::describe;

/// Builds the root filesystem of `recipe` from `packages` (the unpacked `.deb`s).
///
/// `library_dirs` are the dynamic loader's built-in search directories; `work_dir` is scratch
/// space for running the applet binary.
pub(crate) fn assemble(
    recipe: &Recipe,
    packages: &Tree,
    library_dirs: &[String],
    work_dir: &Path,
) -> Result<Tree> {
    let mut image = Tree::new();
    for path in &recipe.include {
        packages
            .copy_into(path, &mut image)
            .with_context(|| format!("include {path}"))?;
    }
    if let Some(applets) = &recipe.applets {
        add_applets(&mut image, applets, work_dir)
            .with_context(|| format!("applets of {}", applets.binary))?;
    }
    for dir in &recipe.dirs {
        image.insert(&dir.path, Node::Dir { mode: dir.mode })?;
    }
    for file in &recipe.files {
        let source = recipe.dir.join(&file.source);
        let data = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        image.insert(&file.path, Node::file(file.mode, data))?;
    }
    for link in &recipe.symlinks {
        image.insert(
            &link.path,
            Node::Symlink {
                target: link.target.clone(),
            },
        )?;
    }
    add_libraries(&mut image, packages, library_dirs)?;
    Ok(image)
}

/// The dynamic loader's built-in search path on a Debian architecture (what
/// `ld.so --help` lists as "system search path").
pub(crate) fn library_dirs(debian_arch: &str) -> Result<Vec<String>> {
    let triplet = match debian_arch {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "armhf" => "arm-linux-gnueabihf",
        "armel" => "arm-linux-gnueabi",
        "i386" => "i386-linux-gnu",
        "ppc64el" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "mips64el" => "mips64el-linux-gnuabi64",
        other => bail!("no multiarch triplet known for Debian architecture {other:?}"),
    };
    Ok(vec![
        format!("/lib/{triplet}"),
        format!("/usr/lib/{triplet}"),
        "/lib".to_owned(),
        "/usr/lib".to_owned(),
    ])
}

/// Runs `<binary> --list` (the binary as it is in the image) and adds a symlink in `dir` for
/// every applet that does not exist there yet.
fn add_applets(image: &mut Tree, applets: &Applets, work_dir: &Path) -> Result<()> {
    let resolved = image.resolve_file(&applets.binary)?.with_context(|| {
        format!(
            "{} is not a file in the image; `include` it",
            applets.binary
        )
    })?;
    let Some(Node::File { data, .. }) = image.get(&resolved.path) else {
        bail!("{} vanished", resolved.path);
    };
    fs::create_dir_all(work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    // Multi-call binaries pick the applet from argv[0], so the copy keeps the binary's name.
    let file_name = applets.binary.rsplit('/').next().unwrap_or("busybox");
    let exe = work_dir.join(file_name);
    fs::write(&exe, data).with_context(|| format!("writing {}", exe.display()))?;
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", exe.display()))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--list").stdin(Stdio::null());
    let output = cmd
        .output()
        .with_context(|| format!("running {}", describe(&cmd)))?;
    // The copy is only needed for this one run.
    let _ = fs::remove_file(&exe);
    if !output.status.success() {
        bail!("{} --list failed: {}", applets.binary, output.status);
    }
    let list = String::from_utf8(output.stdout).context("applet list is not UTF-8")?;
    let names = applet_names(&list)?;
    if names.is_empty() {
        bail!("{} --list printed no applets", applets.binary);
    }
    let target = match applets.binary.rsplit_once('/') {
        Some((parent, name)) if parent == applets.dir => name.to_owned(),
        _ => applets.binary.clone(),
    };
    for name in names {
        let path = format!("{}/{name}", applets.dir);
        if image.get(&path).is_none() {
            image.insert(
                &path,
                Node::Symlink {
                    target: target.clone(),
                },
            )?;
        }
    }
    Ok(())
}

/// The applet names of a `--list` output, one per line; anything path-like is refused.
fn applet_names(list: &str) -> Result<Vec<&str>> {
    let mut names = Vec::new();
    for name in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if name.contains('/') || name == "." || name == ".." {
            bail!("odd applet name {name:?}");
        }
        names.push(name);
    }
    Ok(names)
}

/// Adds the interpreter and shared libraries of every ELF file in `image`, recursively.
fn add_libraries(image: &mut Tree, packages: &Tree, library_dirs: &[String]) -> Result<()> {
    let mut pending: Vec<String> = image
        .iter()
        .filter(|(_, node)| matches!(node, Node::File { .. }))
        .map(|(path, _)| path.to_owned())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let Some(Node::File { data, .. }) = image.get(&path) else {
            continue;
        };
        let Some(linkage) = elf::linkage(data).with_context(|| format!("{path}: reading ELF"))?
        else {
            continue;
        };
        if let Some(interpreter) = &linkage.interpreter {
            let copied = packages
                .copy_into(interpreter, image)
                .with_context(|| format!("{path}: its interpreter {interpreter}"))?;
            pending.extend(copied);
        }
        for needed in &linkage.needed {
            let found = find_library(packages, &path, needed, &linkage.run_paths, library_dirs)?;
            let copied = packages
                .copy_into(&found, image)
                .with_context(|| format!("{path}: its library {found}"))?;
            pending.extend(copied);
        }
    }
    Ok(())
}

/// Where the loader would find `needed` for the ELF file at `path`: its run paths (with
/// `$ORIGIN` expanded), then the built-in directories. Returns the path as the loader opens
/// it, so that symlinks such as `libz.so.1 -> libz.so.1.2.13` are kept.
fn find_library(
    packages: &Tree,
    path: &str,
    needed: &str,
    run_paths: &[String],
    library_dirs: &[String],
) -> Result<String> {
    if needed.starts_with('/') {
        return Ok(needed.to_owned());
    }
    if needed.contains('/') {
        bail!("{path}: needs {needed:?}, a relative path the loader resolves against its cwd");
    }
    let origin = path.rsplit_once('/').map_or("/", |(dir, _)| dir);
    let expanded: Vec<String> = run_paths
        .iter()
        .map(|dir| dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
        .filter(|dir| dir.starts_with('/'))
        .collect();
    for dir in expanded.iter().chain(library_dirs) {
        let candidate = format!("{}/{needed}", dir.trim_end_matches('/'));
        if packages.resolve_file(&candidate)?.is_some() {
            return Ok(candidate);
        }
    }
    bail!(
        "{path}: needs {needed}, which no listed package ships in {}; \
         add the package that does to the recipe's `packages`",
        expanded
            .iter()
            .chain(library_dirs)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_lists_are_checked() {
        assert_eq!(applet_names("sh\nls\n\n").unwrap(), vec!["sh", "ls"]);
        assert!(applet_names("sh\n../etc/passwd\n").is_err());
    }

    #[test]
    fn libraries_are_found_through_run_paths_then_system_dirs() {
        let mut packages = Tree::new();
        packages
            .insert(
                "/usr/lib/x86_64-linux-gnu/libz.so.1.2",
                Node::file(0o644, &b"z"[..]),
            )
            .unwrap();
        packages
            .insert(
                "/usr/lib/x86_64-linux-gnu/libz.so.1",
                Node::Symlink {
                    target: "libz.so.1.2".into(),
                },
            )
            .unwrap();
        packages
            .insert("/opt/app/lib/libapp.so", Node::file(0o644, &b"a"[..]))
            .unwrap();
        let dirs = library_dirs("amd64").unwrap();
        assert_eq!(
            find_library(&packages, "/opt/app/bin/app", "libz.so.1", &[], &dirs).unwrap(),
            "/usr/lib/x86_64-linux-gnu/libz.so.1"
        );
        assert_eq!(
            find_library(
                &packages,
                "/opt/app/bin/app",
                "libapp.so",
                &["$ORIGIN/../lib".into()],
                &dirs
            )
            .unwrap(),
            "/opt/app/bin/../lib/libapp.so"
        );
        let err = find_library(&packages, "/bin/x", "libssl.so.3", &[], &dirs).unwrap_err();
        assert!(err.to_string().contains("libssl.so.3"), "{err}");
    }
}
