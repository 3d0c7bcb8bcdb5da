//! `cargo xtask images`: reproducible OCI image archives from Debian packages and `rootfs/` recipes.
//!
//! For each `rootfs/<name>/image.toml`: download the listed `.deb`s into
//! `target/images/cache/` (`apt-get download`, nothing is installed), unpack them in memory,
//! assemble the root filesystem the recipe describes (plus every shared library its ELF files
//! need), and write `target/images/<name>.oci.tar`, an OCI image layout in a tar
//! (skopeo's `oci-archive:` transport, `ctr images import`). The same `.deb`s, recipe and
//! `SOURCE_DATE_EPOCH` always give the same bytes and digests. `rootfs/README.md` documents
//! the recipe format and the naming scheme.

mod assemble;
mod deb;
mod elf;
mod oci;
mod recipe;
mod tarball;
mod tree;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::util::workspace_root;
use recipe::Recipe;

/// Every image is named `docker.io/k3rs/<recipe dir>:<upstream version>`, so that a pod spec's
/// short `k3rs/busybox:1.35.0` normalises to it, as kubelet and containerd expand short names.
const REPOSITORY_PREFIX: &str = "docker.io/k3rs";

/// Label (and manifest annotation) listing the exact packages an image was built from, as
/// space-separated `name=version` (apt-get's syntax, so it can be pasted back into a recipe).
const LABEL_PACKAGES: &str = "io.k3rs.image.debian-packages";
/// Label naming the recipe an image was built from, relative to the workspace.
const LABEL_RECIPE: &str = "io.k3rs.image.recipe";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Images to build (directory names under `rootfs/`); all when none are given.
    names: Vec<String>,
}

impl Args {
    /// These images (what `cargo xtask ci` builds for the black-box tests).
    pub(crate) fn named(names: &[&str]) -> Args {
        Args {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }
}

/// One built image.
#[derive(Debug)]
pub(crate) struct BuiltImage {
    pub(crate) archive: PathBuf,
    /// `docker.io/k3rs/<name>:<tag>`, as annotated in the archive's index.
    pub(crate) reference: String,
    pub(crate) manifest_digest: String,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let recipes = recipe::discover(&root.join("rootfs"))?;
    let selected: Vec<&Recipe> = if args.names.is_empty() {
        recipes.iter().collect()
    } else {
        let mut selected = Vec::new();
        for name in &args.names {
            let Some(found) = recipes.iter().find(|r| &r.name == name) else {
                let known: Vec<_> = recipes.iter().map(|r| r.name.as_str()).collect();
                bail!(
                    "no image recipe rootfs/{name}/image.toml (known: {})",
                    known.join(", ")
                );
            };
            selected.push(found);
        }
        selected
    };
    let epoch = source_date_epoch()?;
    let out_dir = root.join("target").join("images");
    for recipe in selected {
        let built =
            build(recipe, &out_dir, epoch).with_context(|| format!("image {}", recipe.name))?;
        let shown = built.archive.strip_prefix(&root).unwrap_or(&built.archive);
        println!(
            "{}  {}  {}",
            shown.display(),
            built.reference,
            built.manifest_digest
        );
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (the reproducible-builds convention) or 0: every file's mtime and the
/// image's `created` time.
fn source_date_epoch() -> Result<u64> {
    match env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={value:?} is not a Unix time in seconds")),
        Err(env::VarError::NotPresent) => Ok(0),
        Err(err) => bail!("SOURCE_DATE_EPOCH: {err}"),
    }
}

/// Builds one image into `out_dir/<name>.oci.tar`.
pub(crate) fn build(recipe: &Recipe, out_dir: &Path, epoch: u64) -> Result<BuiltImage> {
    let cache = out_dir.join("cache");
    let packages = deb::fetch(&recipe.packages, &cache)?;
    let arch = architecture(&packages)?;
    let platform = oci::Platform::from_debian_arch(&arch)?;
    let unpacked = deb::unpack_all(&packages)?;
    let work_dir = out_dir.join("work").join(&recipe.name);
    let rootfs = assemble::assemble(
        recipe,
        &unpacked,
        &assemble::library_dirs(&arch)?,
        &work_dir,
    )?;
    // Scratch space only; a failed removal leaves a harmless directory behind.
    let _ = fs::remove_dir_all(&work_dir);
    let _ = fs::remove_dir(out_dir.join("work"));

    let main = packages
        .iter()
        .find(|p| p.name == recipe.version_from)
        .with_context(|| {
            format!(
                "version_from package {} was not fetched",
                recipe.version_from
            )
        })?;
    let tag = tag_of(deb::upstream_version(&main.version));
    let reference = format!("{REPOSITORY_PREFIX}/{}:{tag}", recipe.name);
    let recipe_path = format!("rootfs/{}/{}", recipe.name, recipe::RECIPE_FILE);
    let mut sorted: Vec<&deb::Package> = packages.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let package_list: Vec<String> = sorted
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();

    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_owned(),
            recipe.name.clone(),
        ),
        ("org.opencontainers.image.version".to_owned(), tag.clone()),
        (LABEL_PACKAGES.to_owned(), package_list.join(" ")),
        (LABEL_RECIPE.to_owned(), recipe_path.clone()),
    ]);
    if let Some(description) = &recipe.description {
        labels.insert(
            "org.opencontainers.image.description".to_owned(),
            description.clone(),
        );
    }
    // The recipe's own labels win over the generated ones.
    labels.extend(recipe.config.labels.clone());
    let annotations = labels.clone();
    let config = &recipe.config;
    let meta = oci::ImageMeta {
        reference: reference.clone(),
        platform,
        epoch,
        config: oci::RuntimeConfig {
            cmd: config.cmd.clone(),
            entrypoint: config.entrypoint.clone(),
            env: config.env.clone(),
            exposed_ports: config.exposed_ports.clone(),
            labels,
            stop_signal: config.stop_signal.clone(),
            user: config.user.clone(),
            working_dir: config.working_dir.clone(),
        },
        annotations,
        created_by: format!("cargo xtask images {} ({recipe_path})", recipe.name),
    };
    let built = oci::build(&rootfs, &meta)?;

    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let archive = out_dir.join(format!("{}.oci.tar", recipe.name));
    let partial = out_dir.join(format!("{}.oci.tar.partial", recipe.name));
    fs::write(&partial, &built.bytes).with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, &archive).with_context(|| format!("renaming to {}", archive.display()))?;
    eprintln!(
        "images: {}: {} entries, layer {} (diff_id {}), config {}",
        recipe.name,
        rootfs.len(),
        built.layer_digest,
        built.diff_id,
        built.config_digest
    );
    Ok(BuiltImage {
        archive,
        reference,
        manifest_digest: built.manifest_digest,
    })
}

/// The one Debian architecture of the arch-specific packages (`all` ones run anywhere).
fn architecture(packages: &[deb::Package]) -> Result<String> {
    let mut arches: Vec<&str> = packages
        .iter()
        .map(|p| p.architecture.as_str())
        .filter(|a| *a != "all")
        .collect();
    arches.sort();
    arches.dedup();
    match arches.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => bail!("every package is `Architecture: all`; the image platform is unknown"),
        many => bail!("packages of several architectures: {}", many.join(", ")),
    }
}

/// An OCI tag from an upstream version: characters a tag may not hold become `_`
/// (`1.0+dfsg` → `1.0_dfsg`), and it is cut to the 128 characters a tag may have.
fn tag_of(version: &str) -> String {
    let mut tag: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if tag.starts_with(['.', '-']) || tag.is_empty() {
        tag.insert(0, '_');
        tag.truncate(128);
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_valid_oci_tags() {
        assert_eq!(tag_of("1.35.0"), "1.35.0");
        assert_eq!(tag_of("1.0+dfsg~rc1"), "1.0_dfsg_rc1");
        assert_eq!(tag_of(".hidden"), "_.hidden");
        assert_eq!(tag_of(""), "_");
        assert_eq!(tag_of(&"9".repeat(200)).len(), 128);
    }

    #[test]
    fn one_architecture_per_image() {
        let package = |arch: &str| deb::Package {
            name: "p".into(),
            version: "1".into(),
            architecture: arch.into(),
            deb: PathBuf::new(),
        };
        assert_eq!(
            architecture(&[package("all"), package("amd64"), package("amd64")]).unwrap(),
            "amd64"
        );
        assert!(architecture(&[package("all")]).is_err());
        assert!(architecture(&[package("amd64"), package("arm64")]).is_err());
    }
}
