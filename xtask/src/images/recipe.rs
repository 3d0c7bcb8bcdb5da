//! Image recipes: `rootfs/<name>/image.toml`, read and checked before anything is built.
//!
//! The format is described in `rootfs/README.md`; adding an image is adding a directory there.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::tree::normalize;

/// The file that makes a directory under `rootfs/` an OCI image recipe.
pub(crate) const RECIPE_FILE: &str = "image.toml";

/// One image, as its recipe describes it. Paths are normalised by [`Recipe::load`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recipe {
    /// The image name: the recipe's directory name.
    #[serde(skip)]
    pub(crate) name: String,
    /// The recipe's directory; `file` sources are relative to it.
    #[serde(skip)]
    pub(crate) dir: PathBuf,
    /// One line for the `org.opencontainers.image.description` label.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// Debian packages to unpack, as `name` or `name=version` (apt-get's syntax).
    pub(crate) packages: Vec<String>,
    /// The package whose upstream version becomes the image tag.
    pub(crate) version_from: String,
    /// Paths taken from the unpacked packages: files, or directories with all they hold.
    #[serde(default)]
    pub(crate) include: Vec<String>,
    /// A multi-call binary whose applets get symlinks.
    #[serde(default)]
    pub(crate) applets: Option<Applets>,
    #[serde(default, rename = "dir")]
    pub(crate) dirs: Vec<DirEntry>,
    #[serde(default, rename = "file")]
    pub(crate) files: Vec<FileEntry>,
    #[serde(default, rename = "symlink")]
    pub(crate) symlinks: Vec<SymlinkEntry>,
    #[serde(default)]
    pub(crate) config: Config,
}

/// `[applets]`: run `<binary> --list` at build time and link every applet into `dir`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Applets {
    pub(crate) binary: String,
    pub(crate) dir: String,
}

/// `[[dir]]`: a directory with a given mode (`0o1777` for `/tmp`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirEntry {
    pub(crate) path: String,
    #[serde(default = "default_dir_mode")]
    pub(crate) mode: u32,
}

/// `[[file]]`: a file from the recipe directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    /// Relative to the recipe directory.
    pub(crate) source: PathBuf,
    #[serde(default = "default_file_mode")]
    pub(crate) mode: u32,
}

/// `[[symlink]]`: a symlink; the target is stored as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SymlinkEntry {
    pub(crate) path: String,
    pub(crate) target: String,
}

/// `[config]`: the OCI image config's runtime defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) entrypoint: Vec<String>,
    #[serde(default)]
    pub(crate) cmd: Vec<String>,
    /// `KEY=value` strings.
    #[serde(default)]
    pub(crate) env: Vec<String>,
    #[serde(default)]
    pub(crate) working_dir: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// `port/proto` (`80/tcp`); a bare port means TCP. Normalised to `port/proto` on load.
    #[serde(default)]
    pub(crate) exposed_ports: Vec<String>,
    #[serde(default)]
    pub(crate) stop_signal: Option<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
}

fn default_dir_mode() -> u32 {
    0o755
}

fn default_file_mode() -> u32 {
    0o644
}

impl Recipe {
    /// Reads and checks `dir/image.toml`; the image is named after `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Recipe> {
        let path = dir.join(RECIPE_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: directory name is not UTF-8", dir.display()))?;
        Recipe::parse(name, dir, &text).with_context(|| format!("recipe {}", path.display()))
    }

    pub(crate) fn parse(name: &str, dir: &Path, text: &str) -> Result<Recipe> {
        let mut recipe: Recipe = toml::from_str(text)?;
        recipe.name = name.to_owned();
        recipe.dir = dir.to_owned();
        recipe.check_and_normalize()?;
        Ok(recipe)
    }

    fn check_and_normalize(&mut self) -> Result<()> {
        if !is_repository_component(&self.name) {
            bail!(
                "image name {:?} (the directory name) must be lowercase letters and digits, \
                 separated by single `.`, `_` or `-`",
                self.name
            );
        }
        if self.packages.is_empty() {
            bail!("`packages` is empty");
        }
        for spec in &self.packages {
            let name = package_name(spec);
            if !is_debian_package_name(name) {
                bail!("package {spec:?}: not a Debian package name (or `name=version`)");
            }
        }
        if !self
            .packages
            .iter()
            .any(|spec| package_name(spec) == self.version_from)
        {
            bail!(
                "version_from = {:?} is not one of `packages`",
                self.version_from
            );
        }
        for path in &mut self.include {
            *path = normalize(path)?;
        }
        if let Some(applets) = &mut self.applets {
            applets.binary = normalize(&applets.binary)?;
            applets.dir = normalize(&applets.dir)?;
        }
        for dir in &mut self.dirs {
            dir.path = normalize(&dir.path)?;
            check_mode(&dir.path, dir.mode)?;
        }
        for file in &mut self.files {
            file.path = normalize(&file.path)?;
            check_mode(&file.path, file.mode)?;
            let escapes = file
                .source
                .components()
                .any(|c| !matches!(c, Component::Normal(_)));
            if escapes || file.source.as_os_str().is_empty() {
                bail!(
                    "{}: source {:?} must be a plain relative path inside the recipe directory",
                    file.path,
                    file.source
                );
            }
        }
        for link in &mut self.symlinks {
            link.path = normalize(&link.path)?;
            if link.target.is_empty() {
                bail!("{}: empty symlink target", link.path);
            }
        }
        for var in &self.config.env {
            if var.split_once('=').is_none_or(|(key, _)| key.is_empty()) {
                bail!("env {var:?}: expected KEY=value");
            }
        }
        for port in &mut self.config.exposed_ports {
            *port = normalize_port(port)?;
        }
        Ok(())
    }
}

/// Every recipe under `rootfs`, sorted by name. Directories without `image.toml` are not
/// images (the VM image recipe lives there too) and are skipped.
pub(crate) fn discover(rootfs: &Path) -> Result<Vec<Recipe>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(rootfs).with_context(|| format!("reading {}", rootfs.display()))? {
        let entry = entry.with_context(|| format!("reading {}", rootfs.display()))?;
        if entry.path().join(RECIPE_FILE).is_file() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    dirs.iter().map(|dir| Recipe::load(dir)).collect()
}

/// The package name of a `name` or `name=version` spec.
pub(crate) fn package_name(spec: &str) -> &str {
    spec.split_once('=').map_or(spec, |(name, _)| name)
}

/// Debian policy 5.6.1: lowercase letters, digits, `+`, `-`, `.`; at least two characters,
/// starting with a letter or digit.
fn is_debian_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// One path component of an OCI repository name: `[a-z0-9]+([._-][a-z0-9]+)*` (simplified:
/// the distribution spec also allows `__`).
fn is_repository_component(name: &str) -> bool {
    !name.is_empty()
        && name.split(['.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

fn check_mode(path: &str, mode: u32) -> Result<()> {
    if mode > 0o7777 {
        bail!("{path}: mode {mode:o} has bits beyond 0o7777");
    }
    Ok(())
}

fn normalize_port(port: &str) -> Result<String> {
    let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let valid_number = number.parse::<u16>().is_ok_and(|n| n != 0);
    if !valid_number || !["tcp", "udp", "sctp"].contains(&proto) {
        bail!("exposed port {port:?}: expected PORT or PORT/tcp|udp|sctp");
    }
    Ok(format!("{number}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Recipe> {
        Recipe::parse("test", Path::new("/nonexistent"), text)
    }

    #[test]
    fn the_checked_in_recipes_load() {
        let rootfs = crate::util::workspace_root().join("rootfs");
        let recipes = discover(&rootfs).unwrap();
        let names: Vec<_> = recipes.iter().map(|r| r.name.as_str()).collect();
        assert!(names.contains(&"busybox"), "{names:?}");
        assert!(names.contains(&"nginx"), "{names:?}");
        for recipe in &recipes {
            for file in &recipe.files {
                let source = recipe.dir.join(&file.source);
                assert!(
                    source.is_file(),
                    "{}: missing {}",
                    recipe.name,
                    source.display()
                );
            }
        }
    }

    #[test]
    fn a_full_recipe_parses_and_normalises() {
        let recipe = parse(
            r#"
            packages = ["busybox-static", "libc6=2.36-9"]
            version_from = "busybox-static"
            include = ["/bin//busybox"]
            [applets]
            binary = "/bin/busybox"
            dir = "/bin/"
            [[dir]]
            path = "/tmp"
            mode = 0o1777
            [[file]]
            path = "/etc/passwd"
            source = "passwd"
            [[symlink]]
            path = "/usr/bin/env"
            target = "/bin/env"
            [config]
            cmd = ["sh"]
            env = ["PATH=/bin"]
            exposed_ports = ["80", "53/udp"]
            "#,
        )
        .unwrap();
        assert_eq!(recipe.include, vec!["/bin/busybox"]);
        assert_eq!(recipe.applets.as_ref().unwrap().dir, "/bin");
        assert_eq!(recipe.dirs[0].mode, 0o1777);
        assert_eq!(recipe.files[0].mode, 0o644);
        assert_eq!(recipe.config.exposed_ports, vec!["80/tcp", "53/udp"]);
    }

    #[test]
    fn mistakes_are_refused() {
        let base = "packages = [\"nginx\"]\nversion_from = \"nginx\"\n";
        assert!(parse(base).is_ok());
        for bad in [
            "include = [\"usr/sbin/nginx\"]",
            "include = [\"/usr/../etc\"]",
            "unknown_key = 1",
            "[[file]]\npath = \"/a\"\nsource = \"../passwd\"",
            "[[dir]]\npath = \"/a\"\nmode = 0o17777",
            "[config]\nenv = [\"=x\"]",
            "[config]\nexposed_ports = [\"80/http\"]",
        ] {
            assert!(parse(&format!("{base}{bad}")).is_err(), "{bad}");
        }
        assert!(parse("packages = [\"nginx\"]\nversion_from = \"libc6\"").is_err());
        assert!(parse("packages = [\"Nginx\"]\nversion_from = \"Nginx\"").is_err());
        assert!(Recipe::parse("Bad_Name", Path::new("/x"), base).is_err());
    }
}
