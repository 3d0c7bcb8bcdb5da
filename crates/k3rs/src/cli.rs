//! The command line: `k3rs server` and its flags, named as in k3s.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The default data directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/k3rs";
/// The default config file; a missing one is fine.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "/etc/k3rs/config.yaml";
/// The default admin kubeconfig path.
pub(crate) const DEFAULT_KUBECONFIG: &str = "/etc/k3rs/k3rs.yaml";

/// k3rs: a small, k3s-style Kubernetes distribution in one binary.
#[derive(Debug, Parser)]
#[command(name = "k3rs", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the control plane (API server, store) and, unless --disable-agent, this node's
    /// kubelet with its own containerd.
    Server(Box<ServerArgs>),
    /// Work with the images of this node's containerd.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Check what the node side needs from this machine (binaries, kernel, cgroups) and say
    /// what is missing; exits 1 when something required is.
    CheckConfig,
}

/// `k3rs images …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ImagesCommand {
    /// Import image archives (OCI layout or `docker save`; .tar, .tar.gz, .tar.zst) into the
    /// node's containerd, as the air-gap directory is imported at start.
    Import(ImportArgs),
}

/// Flags of `k3rs images import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The node's data directory (where its containerd's socket is found).
    #[arg(short = 'd', long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub(crate) data_dir: PathBuf,

    /// The containerd socket to import into, instead of the data directory's.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) container_runtime_endpoint: Option<String>,

    /// The archives.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

/// Flags of `k3rs server`. Only flags that do something exist: an unknown flag is an error.
/// Each can also be set in the config file under its long name; a flag given on the command
/// line wins over the file.
#[derive(Debug, Args)]
#[command(
    after_help = "Every long flag can also be set in the config file, e.g. `https-listen-port: 6443`, \
`tls-san: [a.example.com, 10.0.0.9]`; flags given on the command line win."
)]
pub(crate) struct ServerArgs {
    /// Config file (YAML, keys are the long flag names). A missing default file is fine.
    #[arg(short = 'c', long, value_name = "FILE", default_value = DEFAULT_CONFIG_FILE)]
    pub(crate) config: PathBuf,

    /// Directory holding all state: store, certificates, credentials.
    #[arg(short = 'd', long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub(crate) data_dir: PathBuf,

    /// Port of the HTTPS API.
    #[arg(long, value_name = "PORT", default_value_t = 6443)]
    pub(crate) https_listen_port: u16,

    /// Address the API listens on (0.0.0.0 or :: for all).
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub(crate) bind_address: IpAddr,

    /// The node's IP address(es); repeatable or comma-separated. Default: the host's primary
    /// IPv4 address. Added to the serving certificate.
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub(crate) node_ip: Vec<IpAddr>,

    /// The node's name. Default: the host name. Added to the serving certificate.
    #[arg(long, value_name = "NAME")]
    pub(crate) node_name: Option<String>,

    /// Extra host name or IP address for the serving certificate; repeatable or comma-separated.
    #[arg(long, value_name = "NAME_OR_IP", value_delimiter = ',')]
    pub(crate) tls_san: Vec<String>,

    /// IP range of Services (its first address, 10.43.0.1 by default, is the `kubernetes`
    /// Service and goes into the serving certificate).
    #[arg(long, value_name = "CIDR", default_value = k3rs_pki::DEFAULT_SERVICE_CIDR)]
    pub(crate) service_cidr: String,

    /// IP range of pod IPs; each node gets a /24 of it (`spec.podCIDR`).
    #[arg(long, value_name = "CIDR", default_value = DEFAULT_CLUSTER_CIDR)]
    pub(crate) cluster_cidr: String,

    /// A setting for the controllers, as `KEY=VALUE` with kube-controller-manager's flag name
    /// (repeatable): `node-monitor-period`, `node-monitor-grace-period` (Go durations).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_controller_manager_arg)]
    pub(crate) kube_controller_manager_arg: Vec<ControllerManagerArg>,

    /// A setting for the kubelet, as `KEY=VALUE` with the kubelet's flag name (repeatable):
    /// `container-log-max-size` (a quantity, default 10Mi), `container-log-max-files`
    /// (at least 2, default 5).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_kubelet_arg)]
    pub(crate) kubelet_arg: Vec<KubeletArg>,

    /// Where to write the admin kubeconfig.
    #[arg(short = 'o', long, value_name = "FILE", default_value = DEFAULT_KUBECONFIG)]
    pub(crate) write_kubeconfig: PathBuf,

    /// File mode of the admin kubeconfig, octal like chmod (e.g. 0644).
    #[arg(long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
    pub(crate) write_kubeconfig_mode: u32,

    /// How often the store's history is compacted (a Go duration such as 5m, 90s, 1h30m; 0
    /// disables). History from the last interval is always kept, as kube-apiserver does.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub(crate) etcd_compaction_interval: Duration,

    /// How many revisions behind the newest compaction always keeps (kine keeps 1000), so a
    /// watch that reconnects after a quiet spell resumes instead of relisting.
    #[arg(long, value_name = "REVISIONS", default_value_t = k3rs_store::DEFAULT_COMPACTION_RETENTION as u64)]
    pub(crate) store_compaction_retention: u64,

    /// Run the control plane only: no kubelet, no containerd, no pods on this node.
    #[arg(long)]
    pub(crate) disable_agent: bool,

    /// An existing CRI socket (`unix:///run/containerd/containerd.sock` or a path) to run pods
    /// with, instead of the containerd k3rs starts itself.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) container_runtime_endpoint: Option<String>,

    /// The cluster DNS server written into pods' resolv.conf (default: the tenth address of
    /// the service CIDR, 10.43.0.10).
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub(crate) cluster_dns: Vec<IpAddr>,

    /// The cluster's DNS domain.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub(crate) cluster_domain: String,

    /// The resolv.conf pods with `dnsPolicy: Default` get, and whose search domains
    /// `ClusterFirst` pods add (default: /etc/resolv.conf).
    #[arg(long, value_name = "FILE")]
    pub(crate) resolv_conf: Option<PathBuf>,
}

/// The default `--cluster-cidr`, as k3s's.
pub(crate) const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";

/// A `--kube-controller-manager-arg` k3rs understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ControllerManagerArg {
    /// How often the node lifecycle controller checks node heartbeats (upstream: 5s).
    NodeMonitorPeriod(Duration),
    /// How long a node may go without a heartbeat before it is `Unknown` (upstream: 50s).
    NodeMonitorGracePeriod(Duration),
}

/// A `--kubelet-arg` k3rs understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KubeletArg {
    /// The size at which a container's log is rotated, in bytes.
    ContainerLogMaxSize(u64),
    /// How many log files a container keeps, the current one included.
    ContainerLogMaxFiles(usize),
}

/// A flag value (or the same value in the config file) that does not parse. clap takes any
/// error type for a value parser; these name the value and, where there is one, keep the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlagValueError {
    #[error("{value:?} is not KEY=VALUE")]
    NotKeyValue { value: String },
    #[error("{key} must be more than 0")]
    NotPositive { key: String },
    #[error(
        "{key:?} is not a kube-controller-manager setting k3rs supports \
         (node-monitor-period, node-monitor-grace-period)"
    )]
    UnknownSetting { key: String },
    #[error(
        "{key:?} is not a kubelet setting k3rs supports \
         (container-log-max-size, container-log-max-files)"
    )]
    UnknownKubeletSetting { key: String },
    #[error("{value:?} is not a quantity of bytes (e.g. 10Mi, 512Ki, 1G)")]
    Quantity { value: String },
    #[error("{key} must be at least {min}")]
    TooSmall { key: String, min: u64 },
    #[error("{value:?} is not a duration (e.g. 5m, 90s, 1h30m, 0)")]
    Duration { value: String },
    #[error("{value:?} is not an octal file mode")]
    NotOctal {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("{value:?} is not a file mode between 0000 and 0777")]
    ModeOutOfRange { value: String },
}

/// Parses `KEY=VALUE` with kube-controller-manager's flag name (with or without `--`).
pub(crate) fn parse_controller_manager_arg(
    value: &str,
) -> Result<ControllerManagerArg, FlagValueError> {
    let (key, setting) = value
        .split_once('=')
        .ok_or_else(|| FlagValueError::NotKeyValue {
            value: value.to_owned(),
        })?;
    let key = key.trim().trim_start_matches("--");
    let duration = || -> Result<Duration, FlagValueError> {
        let duration = parse_duration(setting)?;
        if duration.is_zero() {
            return Err(FlagValueError::NotPositive {
                key: key.to_owned(),
            });
        }
        Ok(duration)
    };
    match key {
        "node-monitor-period" => Ok(ControllerManagerArg::NodeMonitorPeriod(duration()?)),
        "node-monitor-grace-period" => {
            Ok(ControllerManagerArg::NodeMonitorGracePeriod(duration()?))
        }
        other => Err(FlagValueError::UnknownSetting {
            key: other.to_owned(),
        }),
    }
}

/// Parses `KEY=VALUE` with the kubelet's flag name (with or without `--`).
pub(crate) fn parse_kubelet_arg(value: &str) -> Result<KubeletArg, FlagValueError> {
    let (key, setting) = value
        .split_once('=')
        .ok_or_else(|| FlagValueError::NotKeyValue {
            value: value.to_owned(),
        })?;
    let key = key.trim().trim_start_matches("--");
    let setting = setting.trim();
    match key {
        "container-log-max-size" => {
            let bytes = parse_bytes(setting)?;
            if bytes == 0 {
                return Err(FlagValueError::NotPositive {
                    key: key.to_owned(),
                });
            }
            Ok(KubeletArg::ContainerLogMaxSize(bytes))
        }
        "container-log-max-files" => {
            let files: usize = setting.parse().map_err(|_| FlagValueError::TooSmall {
                key: key.to_owned(),
                min: 2,
            })?;
            if files < 2 {
                return Err(FlagValueError::TooSmall {
                    key: key.to_owned(),
                    min: 2,
                });
            }
            Ok(KubeletArg::ContainerLogMaxFiles(files))
        }
        other => Err(FlagValueError::UnknownKubeletSetting {
            key: other.to_owned(),
        }),
    }
}

/// A whole number of bytes as a Kubernetes quantity: plain, or with a binary (`Ki`, `Mi`,
/// `Gi`, `Ti`) or decimal (`k`, `K`, `M`, `G`, `T`) suffix.
pub(crate) fn parse_bytes(value: &str) -> Result<u64, FlagValueError> {
    let invalid = || FlagValueError::Quantity {
        value: value.to_owned(),
    };
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(digits);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let scale: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(scale).ok_or_else(invalid)
}

/// Parses a duration as Go's `time.ParseDuration` does (the format of kube-apiserver's and
/// k3s's duration flags): `0`, or decimal numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`, such as `5m`, `1.5h`, `1h30m`, `250ms`. Negative durations are refused.
pub(crate) fn parse_duration(value: &str) -> Result<Duration, FlagValueError> {
    let invalid = || FlagValueError::Duration {
        value: value.to_owned(),
    };
    let text = value.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let number: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// Parses an octal file mode such as `0600`, `600` or `0o644`.
pub(crate) fn parse_mode(value: &str) -> Result<u32, FlagValueError> {
    let digits = value.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    let mode = u32::from_str_radix(digits, 8).map_err(|source| FlagValueError::NotOctal {
        value: value.to_owned(),
        source,
    })?;
    if digits.is_empty() || mode > 0o777 {
        return Err(FlagValueError::ModeOutOfRange {
            value: value.to_owned(),
        });
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn kubelet_args_are_checked() {
        assert_eq!(
            parse_kubelet_arg("container-log-max-size=10Mi"),
            Ok(KubeletArg::ContainerLogMaxSize(10 << 20))
        );
        assert_eq!(
            parse_kubelet_arg("--container-log-max-size=2k"),
            Ok(KubeletArg::ContainerLogMaxSize(2000))
        );
        assert_eq!(
            parse_kubelet_arg("container-log-max-files=2"),
            Ok(KubeletArg::ContainerLogMaxFiles(2))
        );
        assert!(parse_kubelet_arg("container-log-max-files=1").is_err());
        assert!(parse_kubelet_arg("container-log-max-size=0").is_err());
        assert!(parse_kubelet_arg("container-log-max-size=10MB").is_err());
        let unknown = parse_kubelet_arg("max-pods=5").unwrap_err();
        assert!(
            unknown.to_string().contains("container-log-max-size"),
            "{unknown}"
        );
    }

    #[test]
    fn controller_manager_args_are_checked() {
        assert_eq!(
            parse_controller_manager_arg("node-monitor-grace-period=20s"),
            Ok(ControllerManagerArg::NodeMonitorGracePeriod(
                Duration::from_secs(20)
            ))
        );
        assert_eq!(
            parse_controller_manager_arg("--node-monitor-period=500ms"),
            Ok(ControllerManagerArg::NodeMonitorPeriod(
                Duration::from_millis(500)
            ))
        );
        assert!(parse_controller_manager_arg("node-monitor-period=0").is_err());
        assert!(parse_controller_manager_arg("node-monitor-period").is_err());
        let unknown = parse_controller_manager_arg("terminated-pod-gc-threshold=5").unwrap_err();
        assert!(
            unknown.to_string().contains("terminated-pod-gc-threshold"),
            "{unknown}"
        );
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("").is_err());
        assert!(parse_mode("rw").is_err());
    }

    #[test]
    fn durations_are_go_durations() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("5m0s"), Ok(secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        for bad in ["", "5", "m", "5x", "-5m", "1..5s", "5m-1s", "."] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
