//! An in-memory file tree: the unpacked packages, an image's root filesystem, an OCI layout.
//!
//! Paths are absolute, normalised (`/usr/sbin/nginx`: no `.`, `..`, doubled or trailing
//! slashes) and kept in a `BTreeMap`, so iterating a tree visits every directory before what it
//! holds and always in the same order. Nothing here touches the host's file system: symlinks are
//! resolved inside the tree, so an absolute link target means the tree's own root.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

/// How many symlinks one path lookup may follow (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// The default mode of directories that exist only because something below them does.
pub(crate) const PARENT_DIR_MODE: u32 = 0o755;

/// One entry of a tree. Owners are not recorded: everything in an image belongs to root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Arc<[u8]> },
    Symlink { target: String },
}

impl Node {
    pub(crate) fn file(mode: u32, data: impl Into<Arc<[u8]>>) -> Node {
        Node::File {
            mode,
            data: data.into(),
        }
    }
}

/// A file tree keyed by absolute path. The root directory itself is implicit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// Where a lookup ended, and the symlinks it went through on the way.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The path with every symlink resolved; it may not exist.
    pub(crate) path: String,
    /// Every symlink followed, in the order they were met.
    pub(crate) links: Vec<String>,
}

impl Tree {
    pub(crate) fn new() -> Tree {
        Tree::default()
    }

    /// Every entry, directories before their contents.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(path, node)| (path.as_str(), node))
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Adds `node` at `path`, creating missing parents with [`PARENT_DIR_MODE`].
    ///
    /// Adding what is already there is a no-op, and a directory may be added over a directory
    /// (the new mode wins). Anything else that replaces an existing entry is an error: two
    /// sources disagree about one path, and silently picking one would hide a recipe mistake.
    pub(crate) fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let path = normalize(path)?;
        self.ensure_parents(&path, None)?;
        self.put(path, node)
    }

    /// Adds `node` at `path`, creating missing parents with the modes they have in `like`
    /// (when `like` has them as directories) so that copies keep their packages' permissions.
    fn insert_like(&mut self, path: &str, node: Node, like: &Tree) -> Result<()> {
        self.ensure_parents(path, Some(like))?;
        self.put(path.to_owned(), node)
    }

    fn put(&mut self, path: String, node: Node) -> Result<()> {
        match (self.nodes.get(&path), &node) {
            (None, _) | (Some(Node::Dir { .. }), Node::Dir { .. }) => {
                self.nodes.insert(path, node);
                Ok(())
            }
            (Some(existing), _) if *existing == node => Ok(()),
            (Some(existing), _) => bail!(
                "{path}: already holds {}, refusing to replace it with {}",
                kind(existing),
                kind(&node)
            ),
        }
    }

    fn ensure_parents(&mut self, path: &str, like: Option<&Tree>) -> Result<()> {
        for parent in ancestors(path) {
            match self.nodes.get(parent) {
                Some(Node::Dir { .. }) => {}
                Some(other) => bail!(
                    "{path}: parent {parent} is {} in the image, not a directory",
                    kind(other)
                ),
                None => {
                    let mode = match like.and_then(|tree| tree.get(parent)) {
                        Some(Node::Dir { mode }) => *mode,
                        _ => PARENT_DIR_MODE,
                    };
                    self.nodes.insert(parent.to_owned(), Node::Dir { mode });
                }
            }
        }
        Ok(())
    }

    /// Follows `path` through the tree's symlinks, component by component.
    pub(crate) fn resolve(&self, path: &str) -> Result<Resolved> {
        let mut pending: Vec<String> = components(path).rev().map(str::to_owned).collect();
        let mut current: Vec<String> = Vec::new();
        let mut links = Vec::new();
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => current.push(component),
            }
            let here = join(&current);
            if let Some(Node::Symlink { target }) = self.nodes.get(&here) {
                if links.len() == MAX_SYMLINK_HOPS {
                    bail!("{path}: more than {MAX_SYMLINK_HOPS} symlinks (a loop?)");
                }
                links.push(here);
                current.pop();
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(components(target).rev().map(str::to_owned));
            }
        }
        Ok(Resolved {
            path: join(&current),
            links,
        })
    }

    /// The regular file `path` leads to after symlinks, if there is one.
    pub(crate) fn resolve_file(&self, path: &str) -> Result<Option<Resolved>> {
        let resolved = self.resolve(path)?;
        Ok(match self.nodes.get(&resolved.path) {
            Some(Node::File { .. }) => Some(resolved),
            _ => None,
        })
    }

    /// Copies `path` from `self` into `dest` the way a loader or shell would reach it: every
    /// symlink on the way is copied as a symlink, then the entry it ends at — a file, or a
    /// directory with everything below it (symlinks inside are copied, not followed).
    ///
    /// Returns the regular files that were copied, so the caller can look for their libraries.
    pub(crate) fn copy_into(&self, path: &str, dest: &mut Tree) -> Result<Vec<String>> {
        let resolved = self.resolve(path)?;
        for link in &resolved.links {
            let node = self.nodes.get(link).context("symlink vanished")?;
            dest.insert_like(link, node.clone(), self)?;
        }
        let mut files = Vec::new();
        match self.nodes.get(&resolved.path) {
            // resolve() follows every symlink, so ending on one cannot happen.
            None | Some(Node::Symlink { .. }) => {
                bail!(
                    "{path}: not found in the unpacked packages (looked for {})",
                    resolved.path
                )
            }
            Some(node @ Node::File { .. }) => {
                dest.insert_like(&resolved.path, node.clone(), self)?;
                files.push(resolved.path);
            }
            Some(node @ Node::Dir { .. }) => {
                dest.insert_like(&resolved.path, node.clone(), self)?;
                let prefix = format!("{}/", resolved.path);
                for (below, node) in self.nodes.range(prefix.clone()..) {
                    if !below.starts_with(&prefix) {
                        break;
                    }
                    dest.insert_like(below, node.clone(), self)?;
                    if matches!(node, Node::File { .. }) {
                        files.push(below.clone());
                    }
                }
            }
        }
        Ok(files)
    }
}

/// A short name for what a node is, for error messages.
fn kind(node: &Node) -> String {
    match node {
        Node::Dir { mode } => format!("a directory (mode {mode:o})"),
        Node::File { mode, data } => format!("a file ({} bytes, mode {mode:o})", data.len()),
        Node::Symlink { target } => format!("a symlink to {target}"),
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/')
}

fn join(components: &[String]) -> String {
    if components.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", components.join("/"))
    }
}

/// The proper ancestors of an absolute normalised path, outermost first, without `/` itself.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(|(at, _)| &path[..at])
        .filter(|parent| !parent.is_empty())
}

/// Normalises an absolute path from a recipe or a package: `.` and empty components are
/// dropped; `..` is refused, since a recipe has no business climbing out of a directory.
pub(crate) fn normalize(path: &str) -> Result<String> {
    if !path.starts_with('/') {
        bail!("{path:?}: paths must be absolute");
    }
    let mut out = Vec::new();
    for component in components(path) {
        match component {
            "" | "." => {}
            ".." => bail!("{path:?}: paths must not contain `..`"),
            _ => out.push(component.to_owned()),
        }
    }
    if out.is_empty() {
        bail!("{path:?}: the root directory cannot be an entry");
    }
    Ok(join(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut tree = Tree::new();
        tree.insert(
            "/lib/x86_64-linux-gnu/libc.so.6",
            Node::file(0o755, &b"libc"[..]),
        )
        .unwrap();
        tree.insert(
            "/lib64/ld.so",
            Node::Symlink {
                target: "/lib/x86_64-linux-gnu/libc.so.6".into(),
            },
        )
        .unwrap();
        tree.insert("/usr/lib/libz.so.1.2", Node::file(0o644, &b"z"[..]))
            .unwrap();
        tree.insert(
            "/usr/lib/libz.so.1",
            Node::Symlink {
                target: "libz.so.1.2".into(),
            },
        )
        .unwrap();
        tree.insert(
            "/lib2",
            Node::Symlink {
                target: "usr/lib".into(),
            },
        )
        .unwrap();
        tree.insert(
            "/loop",
            Node::Symlink {
                target: "loop".into(),
            },
        )
        .unwrap();
        tree
    }

    #[test]
    fn normalize_accepts_absolute_paths_and_refuses_escapes() {
        assert_eq!(normalize("/usr//sbin/./nginx/").unwrap(), "/usr/sbin/nginx");
        assert!(normalize("usr/sbin").is_err());
        assert!(normalize("/usr/../etc").is_err());
        assert!(normalize("/").is_err());
    }

    #[test]
    fn insert_creates_parents_and_refuses_conflicts() {
        let mut tree = sample();
        assert_eq!(
            tree.get("/lib/x86_64-linux-gnu"),
            Some(&Node::Dir {
                mode: PARENT_DIR_MODE
            })
        );
        // Same content again is fine; different content is not.
        tree.insert("/usr/lib/libz.so.1.2", Node::file(0o644, &b"z"[..]))
            .unwrap();
        assert!(tree
            .insert("/usr/lib/libz.so.1.2", Node::file(0o644, &b"y"[..]))
            .is_err());
        // A directory over a directory updates its mode.
        tree.insert("/usr/lib", Node::Dir { mode: 0o700 }).unwrap();
        assert_eq!(tree.get("/usr/lib"), Some(&Node::Dir { mode: 0o700 }));
        // A file cannot hold children.
        assert!(tree
            .insert("/usr/lib/libz.so.1.2/x", Node::Dir { mode: 0o755 })
            .is_err());
    }

    #[test]
    fn resolve_follows_relative_absolute_and_directory_symlinks() {
        let tree = sample();
        let r = tree.resolve("/lib64/ld.so").unwrap();
        assert_eq!(r.path, "/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(r.links, vec!["/lib64/ld.so"]);
        let r = tree.resolve("/lib2/libz.so.1").unwrap();
        assert_eq!(r.path, "/usr/lib/libz.so.1.2");
        assert_eq!(r.links, vec!["/lib2", "/usr/lib/libz.so.1"]);
        assert!(tree.resolve("/loop").is_err());
        assert_eq!(tree.resolve("/missing/x").unwrap().path, "/missing/x");
    }

    #[test]
    fn copy_into_keeps_symlinks_and_parent_modes() {
        let mut source = sample();
        source.insert("/usr", Node::Dir { mode: 0o711 }).unwrap();
        let mut dest = Tree::new();
        let files = source.copy_into("/lib2/libz.so.1", &mut dest).unwrap();
        assert_eq!(files, vec!["/usr/lib/libz.so.1.2"]);
        assert_eq!(dest.get("/usr"), Some(&Node::Dir { mode: 0o711 }));
        assert!(matches!(dest.get("/lib2"), Some(Node::Symlink { .. })));
        assert!(matches!(
            dest.get("/usr/lib/libz.so.1"),
            Some(Node::Symlink { .. })
        ));

        let mut dest = Tree::new();
        let files = source.copy_into("/usr/lib", &mut dest).unwrap();
        assert_eq!(files, vec!["/usr/lib/libz.so.1.2"]);
        assert_eq!(dest.len(), 4);
        assert!(source.copy_into("/nope", &mut dest).is_err());
    }
}
