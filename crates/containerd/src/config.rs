//! containerd's config file as k3rs writes it: version 2, which containerd 1.6, 1.7 and 2.x read
//! (2.x migrates it in memory).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::host::CgroupDriver;
use crate::paths::ContainerdPaths;

/// The stream server port k3s uses; `0` lets containerd pick a free one.
pub const K3S_STREAM_SERVER_PORT: u16 = 10010;

/// Snapshotter plugins that only log errors on a host without their backing store
/// (devmapper unconfigured, no btrfs/zfs filesystem, no aufs in the kernel).
const DISABLED_PLUGINS: [&str; 4] = [
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

/// Everything k3rs sets in containerd's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    /// Persistent data: content, snapshots, metadata.
    pub root: PathBuf,
    /// Runtime data: task bundles, shim state.
    pub state: PathBuf,
    /// The gRPC socket (native API and CRI).
    pub grpc_socket: PathBuf,
    /// The ttrpc socket.
    pub ttrpc_socket: PathBuf,
    /// The `opt` plugin's directory.
    pub opt: PathBuf,
    /// The pod sandbox image; it must be in the image store before the first pod (offline
    /// nodes cannot pull containerd's default).
    pub sandbox_image: String,
    /// Clamp the oom_score_adj CRI gives containers to containerd's own (needed without
    /// CAP_SYS_RESOURCE: see [`crate::host::HostFacts::restrict_oom_score_adj`]).
    pub restrict_oom_score_adj: bool,
    /// runc's cgroup driver (`options.SystemdCgroup`).
    pub cgroup_driver: CgroupDriver,
    /// runc's state directory (`options.Root`; runc's default is `/run/containerd/runc`, shared
    /// with any other containerd on the host).
    pub runc_root: PathBuf,
    /// The snapshotter CRI unpacks images with.
    pub snapshotter: String,
    /// Where the CNI plugin binaries are (it needs a `loopback`: CRI always adds one).
    pub cni_bin_dir: PathBuf,
    /// Where CRI reads the first `*.conflist` from (it reloads on change).
    pub cni_conf_dir: PathBuf,
    /// The address of CRI's exec/attach/port-forward server.
    pub stream_server_address: String,
    /// Its port; `0` lets containerd pick one (the port is in every URL CRI returns).
    pub stream_server_port: u16,
    /// TLS on the stream server (off: it listens on loopback, behind the kubelet's proxy).
    pub enable_tls_streaming: bool,
    /// The registry `config_path`: `<host>/hosts.toml` mirror files.
    pub registry_config_dir: PathBuf,
}

/// Why a config could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// TOML strings are UTF-8; this path is not.
    #[error("containerd config: {key} path {path:?} is not UTF-8")]
    NonUtf8Path {
        /// The config key.
        key: &'static str,
        /// The path.
        path: PathBuf,
    },
}

impl ContainerdConfig {
    /// The config for a node's paths with k3s's defaults: overlayfs, cgroupfs, stream server on
    /// 127.0.0.1:10010 without TLS, oom_score_adj not restricted. Callers set the host-derived
    /// fields ([`crate::host::HostFacts`]) and, in tests, the stream port.
    pub fn new(
        paths: &ContainerdPaths,
        sandbox_image: impl Into<String>,
        cni_bin_dir: impl Into<PathBuf>,
        cni_conf_dir: impl Into<PathBuf>,
    ) -> Self {
        ContainerdConfig {
            root: paths.root.clone(),
            state: paths.state.clone(),
            grpc_socket: paths.grpc_socket.clone(),
            ttrpc_socket: paths.ttrpc_socket.clone(),
            opt: paths.opt.clone(),
            sandbox_image: sandbox_image.into(),
            restrict_oom_score_adj: false,
            cgroup_driver: CgroupDriver::Cgroupfs,
            runc_root: paths.state.join("runc"),
            snapshotter: "overlayfs".to_owned(),
            cni_bin_dir: cni_bin_dir.into(),
            cni_conf_dir: cni_conf_dir.into(),
            stream_server_address: "127.0.0.1".to_owned(),
            stream_server_port: K3S_STREAM_SERVER_PORT,
            enable_tls_streaming: false,
            registry_config_dir: paths.registry_config_dir.clone(),
        }
    }

    /// The config file's text.
    pub fn render(&self) -> Result<String, ConfigError> {
        let path = |key: &'static str, value: &Path| -> Result<String, ConfigError> {
            value
                .to_str()
                .map(toml_string)
                .ok_or_else(|| ConfigError::NonUtf8Path {
                    key,
                    path: value.to_path_buf(),
                })
        };
        const CRI: &str = "plugins.\"io.containerd.grpc.v1.cri\"";
        let mut out = String::new();
        // Writing to a String cannot fail: the fmt::Results below are always Ok.
        let _ = writeln!(
            out,
            "# Written by k3rs at every start; edits are overwritten."
        );
        let _ = writeln!(out, "version = 2");
        let _ = writeln!(out, "root = {}", path("root", &self.root)?);
        let _ = writeln!(out, "state = {}", path("state", &self.state)?);
        let disabled: Vec<String> = DISABLED_PLUGINS.iter().map(|p| toml_string(p)).collect();
        let _ = writeln!(out, "disabled_plugins = [{}]", disabled.join(", "));
        let _ = writeln!(out);
        let _ = writeln!(out, "[grpc]");
        let _ = writeln!(
            out,
            "  address = {}",
            path("grpc.address", &self.grpc_socket)?
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "[ttrpc]");
        let _ = writeln!(
            out,
            "  address = {}",
            path("ttrpc.address", &self.ttrpc_socket)?
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "[plugins.\"io.containerd.internal.v1.opt\"]");
        let _ = writeln!(out, "  path = {}", path("opt.path", &self.opt)?);
        let _ = writeln!(out);
        let _ = writeln!(out, "[{CRI}]");
        let _ = writeln!(
            out,
            "  sandbox_image = {}",
            toml_string(&self.sandbox_image)
        );
        let _ = writeln!(
            out,
            "  restrict_oom_score_adj = {}",
            self.restrict_oom_score_adj
        );
        let _ = writeln!(
            out,
            "  stream_server_address = {}",
            toml_string(&self.stream_server_address)
        );
        // containerd reads the port as a string.
        let _ = writeln!(
            out,
            "  stream_server_port = {}",
            toml_string(&self.stream_server_port.to_string())
        );
        let _ = writeln!(
            out,
            "  enable_tls_streaming = {}",
            self.enable_tls_streaming
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "[{CRI}.containerd]");
        let _ = writeln!(out, "  snapshotter = {}", toml_string(&self.snapshotter));
        let _ = writeln!(out, "  default_runtime_name = \"runc\"");
        let _ = writeln!(out);
        let _ = writeln!(out, "[{CRI}.containerd.runtimes.runc]");
        let _ = writeln!(out, "  runtime_type = \"io.containerd.runc.v2\"");
        let _ = writeln!(out);
        let _ = writeln!(out, "[{CRI}.containerd.runtimes.runc.options]");
        let _ = writeln!(
            out,
            "  SystemdCgroup = {}",
            self.cgroup_driver == CgroupDriver::Systemd
        );
        let _ = writeln!(
            out,
            "  Root = {}",
            path("runc.options.Root", &self.runc_root)?
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "[{CRI}.cni]");
        let _ = writeln!(
            out,
            "  bin_dir = {}",
            path("cni.bin_dir", &self.cni_bin_dir)?
        );
        let _ = writeln!(
            out,
            "  conf_dir = {}",
            path("cni.conf_dir", &self.cni_conf_dir)?
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "[{CRI}.registry]");
        let _ = writeln!(
            out,
            "  config_path = {}",
            path("registry.config_path", &self.registry_config_dir)?
        );
        Ok(out)
    }
}

/// `value` as a TOML basic string: quoted, with `"`, `\` and control characters escaped.
pub fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ContainerdConfig {
        let paths = ContainerdPaths::for_data_dir(Path::new("/var/lib/k3rs"));
        ContainerdConfig::new(
            &paths,
            "k3rs.local/pause:3.10",
            "/usr/lib/cni",
            "/var/lib/k3rs/agent/etc/cni/net.d",
        )
    }

    #[test]
    fn renders_the_default_node_config() {
        let expected = r#"# Written by k3rs at every start; edits are overwritten.
version = 2
root = "/var/lib/k3rs/agent/containerd"
state = "/run/k3rs/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "/run/k3rs/containerd/containerd.sock"

[ttrpc]
  address = "/run/k3rs/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/k3rs/agent/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "k3rs.local/pause:3.10"
  restrict_oom_score_adj = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"
  enable_tls_streaming = false

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "/run/k3rs/containerd/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "/var/lib/k3rs/agent/etc/cni/net.d"

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/var/lib/k3rs/agent/etc/containerd/certs.d"
"#;
        assert_eq!(config().render().unwrap(), expected);
    }

    #[test]
    fn host_facts_and_test_port_reach_the_text() {
        let mut config = config();
        config.restrict_oom_score_adj = true;
        config.cgroup_driver = CgroupDriver::Systemd;
        config.stream_server_port = 0;
        let text = config.render().unwrap();
        assert!(text.contains("  restrict_oom_score_adj = true\n"));
        assert!(text.contains("  SystemdCgroup = true\n"));
        assert!(text.contains("  stream_server_port = \"0\"\n"));
    }

    #[test]
    fn rendered_text_is_toml_with_the_values_given() {
        let mut config = config();
        config.root = PathBuf::from("/tmp/odd \"dir\"\\with\ttab\nnewline/é\u{1}");
        config.sandbox_image = "registry.example:5000/pause@sha256:ab\"cd".to_owned();
        let text = config.render().unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["version"].as_integer(), Some(2));
        assert_eq!(parsed["root"].as_str(), config.root.to_str());
        let cri = parsed["plugins"]["io.containerd.grpc.v1.cri"]
            .as_table()
            .unwrap();
        assert_eq!(cri["sandbox_image"].as_str(), Some(&*config.sandbox_image));
        assert_eq!(cri["stream_server_port"].as_str(), Some("10010"));
        assert_eq!(
            cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(),
            Some(false)
        );
        assert_eq!(
            parsed["disabled_plugins"].as_array().map(Vec::len),
            Some(DISABLED_PLUGINS.len())
        );
    }

    #[test]
    fn toml_strings_escape_what_toml_requires() {
        assert_eq!(toml_string("/plain/path"), "\"/plain/path\"");
        assert_eq!(toml_string("a\"b"), "\"a\\\"b\"");
        assert_eq!(toml_string("a\\b"), "\"a\\\\b\"");
        assert_eq!(toml_string("a\nb\tc\r"), "\"a\\nb\\tc\\r\"");
        assert_eq!(toml_string("\u{1}\u{7f}"), "\"\\u0001\\u007F\"");
        assert_eq!(toml_string("dir with spaces/é"), "\"dir with spaces/é\"");
    }

    #[test]
    fn non_utf8_paths_are_refused_by_name() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let mut config = config();
        config.cni_conf_dir = PathBuf::from(OsStr::from_bytes(b"/tmp/\xff"));
        let error = config.render().unwrap_err();
        assert!(error.to_string().contains("cni.conf_dir"), "{error}");
    }
}
