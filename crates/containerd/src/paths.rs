//! Where a node's containerd keeps its root, state, sockets, config and log (k3s's layout).

use std::path::{Path, PathBuf};

/// k3rs's default `--data-dir`. Only this data dir puts containerd's state and sockets under
/// `/run/k3rs`; any other keeps them under the data dir, so two nodes on one host (tests,
/// side-by-side installs) never share a socket.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/k3rs";

/// The longest path a unix socket address holds: `sockaddr_un.sun_path` is 108 bytes on Linux,
/// one of them the terminating NUL.
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// The files and directories of one node's containerd, all derived from the data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdPaths {
    /// containerd's `root`: content store, snapshots, metadata (persistent).
    pub root: PathBuf,
    /// containerd's `state`: sockets, task bundles (runtime data, gone after a reboot).
    pub state: PathBuf,
    /// The gRPC socket: the native API and CRI (`--container-runtime-endpoint` of a kubelet).
    pub grpc_socket: PathBuf,
    /// The ttrpc socket (the shims' events).
    pub ttrpc_socket: PathBuf,
    /// The `opt` plugin's directory (binaries containerd plugins install).
    pub opt: PathBuf,
    /// The config file k3rs writes at every start.
    pub config_file: PathBuf,
    /// containerd's stdout and stderr, appended.
    pub log_file: PathBuf,
    /// The registry `config_path`: one `<host>/hosts.toml` per mirrored registry.
    pub registry_config_dir: PathBuf,
}

impl ContainerdPaths {
    /// The layout for the node whose data dir is `data_dir`: root, opt and log in
    /// `<data-dir>/agent/containerd`, config and `certs.d` in `<data-dir>/agent/etc/containerd`
    /// (as k3s under `/var/lib/rancher/k3s`); state and sockets in `/run/k3rs/containerd` for
    /// the default data dir, `<data-dir>/run/containerd` for any other.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let root = data_dir.join("agent").join("containerd");
        let etc = data_dir.join("agent").join("etc").join("containerd");
        let state = state_dir_for(data_dir);
        ContainerdPaths {
            grpc_socket: state.join("containerd.sock"),
            ttrpc_socket: state.join("containerd.sock.ttrpc"),
            opt: root.clone(),
            log_file: root.join("containerd.log"),
            config_file: etc.join("config.toml"),
            registry_config_dir: etc.join("certs.d"),
            root,
            state,
        }
    }
}

/// containerd's state dir for a data dir (see [`ContainerdPaths::for_data_dir`]).
pub fn state_dir_for(data_dir: &Path) -> PathBuf {
    if data_dir == Path::new(DEFAULT_DATA_DIR) {
        PathBuf::from("/run/k3rs/containerd")
    } else {
        data_dir.join("run").join("containerd")
    }
}

/// The gRPC (and CRI) socket for a data dir: `/run/k3rs/containerd/containerd.sock` for the
/// default data dir, `<data-dir>/run/containerd/containerd.sock` otherwise.
pub fn socket_path_for(data_dir: &Path) -> PathBuf {
    state_dir_for(data_dir).join("containerd.sock")
}

/// Whether `path` fits a unix socket address ([`MAX_SOCKET_PATH_BYTES`]).
pub fn fits_unix_socket(path: &Path) -> bool {
    path.as_os_str().len() <= MAX_SOCKET_PATH_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_data_dir_puts_sockets_under_run_k3rs() {
        let paths = ContainerdPaths::for_data_dir(Path::new("/var/lib/k3rs"));
        assert_eq!(
            paths,
            ContainerdPaths {
                root: "/var/lib/k3rs/agent/containerd".into(),
                state: "/run/k3rs/containerd".into(),
                grpc_socket: "/run/k3rs/containerd/containerd.sock".into(),
                ttrpc_socket: "/run/k3rs/containerd/containerd.sock.ttrpc".into(),
                opt: "/var/lib/k3rs/agent/containerd".into(),
                config_file: "/var/lib/k3rs/agent/etc/containerd/config.toml".into(),
                log_file: "/var/lib/k3rs/agent/containerd/containerd.log".into(),
                registry_config_dir: "/var/lib/k3rs/agent/etc/containerd/certs.d".into(),
            }
        );
        assert_eq!(
            socket_path_for(Path::new("/var/lib/k3rs")),
            Path::new("/run/k3rs/containerd/containerd.sock")
        );
    }

    #[test]
    fn other_data_dirs_keep_everything_under_the_data_dir() {
        let data_dir = Path::new("/tmp/node-a");
        let paths = ContainerdPaths::for_data_dir(data_dir);
        assert_eq!(paths.state, Path::new("/tmp/node-a/run/containerd"));
        assert_eq!(
            paths.grpc_socket,
            Path::new("/tmp/node-a/run/containerd/containerd.sock")
        );
        assert_eq!(paths.root, Path::new("/tmp/node-a/agent/containerd"));
        assert_eq!(
            paths.config_file,
            Path::new("/tmp/node-a/agent/etc/containerd/config.toml")
        );
        assert_eq!(socket_path_for(data_dir), paths.grpc_socket);
        // Paths compare by component: a trailing slash is still the default dir, a sibling is not.
        assert_eq!(
            socket_path_for(Path::new("/var/lib/k3rs/")),
            Path::new("/run/k3rs/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path_for(Path::new("/var/lib/k3rs-b")),
            Path::new("/var/lib/k3rs-b/run/containerd/containerd.sock")
        );
    }

    #[test]
    fn socket_length_limit_counts_bytes() {
        let fits = format!("/{}", "a".repeat(MAX_SOCKET_PATH_BYTES - 1));
        let too_long = format!("/{}", "a".repeat(MAX_SOCKET_PATH_BYTES));
        assert!(fits_unix_socket(Path::new(&fits)));
        assert!(!fits_unix_socket(Path::new(&too_long)));
        // Multi-byte characters count by their UTF-8 bytes.
        let wide = format!("/{}", "é".repeat(MAX_SOCKET_PATH_BYTES / 2 + 1));
        assert!(wide.chars().count() < MAX_SOCKET_PATH_BYTES);
        assert!(!fits_unix_socket(Path::new(&wide)));
    }
}
