//! Merges flags, the config file and computed defaults into the server's settings.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::cli::ServerArgs;
use crate::config_file::{ConfigError, ConfigFile};
use crate::host;

/// Everything `k3rs server` runs with, after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerSettings {
    pub(crate) data_dir: PathBuf,
    pub(crate) https_listen_port: u16,
    pub(crate) bind_address: IpAddr,
    pub(crate) node_ips: Vec<IpAddr>,
    pub(crate) node_name: String,
    pub(crate) tls_sans: Vec<String>,
    pub(crate) service_cidr: String,
    pub(crate) cluster_cidr: String,
    /// `--kube-controller-manager-arg` settings.
    pub(crate) controller_manager: Vec<crate::cli::ControllerManagerArg>,
    pub(crate) write_kubeconfig: PathBuf,
    pub(crate) write_kubeconfig_mode: u32,
    /// Zero disables automatic compaction.
    pub(crate) etcd_compaction_interval: Duration,
    pub(crate) store_compaction_retention: u64,
    /// The node side: `None` with `--disable-agent`.
    pub(crate) agent: Option<AgentSettings>,
}

/// What the node side (kubelet, containerd, pod network) runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentSettings {
    /// An existing CRI socket instead of k3rs's own containerd.
    pub(crate) container_runtime_endpoint: Option<String>,
    pub(crate) cluster_dns: Vec<IpAddr>,
    pub(crate) cluster_domain: String,
    pub(crate) resolv_conf: PathBuf,
    /// `--kubelet-arg` settings.
    pub(crate) kubelet: Vec<crate::cli::KubeletArg>,
}

/// Whether the user gave this argument (on the command line or through the environment), as
/// opposed to clap filling in its default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// A flag given by the user wins; else the file's value; else the flag's default.
fn pick<T>(matches: &ArgMatches, id: &str, flag: T, file: Option<T>) -> T {
    match file {
        Some(value) if !given(matches, id) => value,
        _ => flag,
    }
}

/// Loads the config file named by `--config` and merges it under the flags. `matches` are the
/// `server` subcommand's matches, which tell given flags from defaults.
pub(crate) fn resolve(
    args: ServerArgs,
    matches: &ArgMatches,
) -> Result<ServerSettings, ConfigError> {
    let required = given(matches, "config");
    let file = ConfigFile::load(&args.config, required)?;
    merge(args, matches, file)
}

pub(crate) fn merge(
    args: ServerArgs,
    matches: &ArgMatches,
    file: ConfigFile,
) -> Result<ServerSettings, ConfigError> {
    let file_node_ips = file.node_ips();
    let node_ips = pick(
        matches,
        "node_ip",
        args.node_ip,
        (!file_node_ips.is_empty()).then_some(file_node_ips),
    );
    let node_ips = if node_ips.is_empty() {
        vec![host::primary_ipv4()]
    } else {
        node_ips
    };
    let file_cluster_dns = file.cluster_dns();
    let disable_agent = pick(
        matches,
        "disable_agent",
        args.disable_agent,
        file.disable_agent,
    );
    let service_cidr = pick(
        matches,
        "service_cidr",
        args.service_cidr,
        file.service_cidr,
    );
    let cluster_dns = pick(
        matches,
        "cluster_dns",
        args.cluster_dns,
        (!file_cluster_dns.is_empty()).then_some(file_cluster_dns),
    );
    let cluster_dns = if cluster_dns.is_empty() {
        default_cluster_dns(&service_cidr)
    } else {
        cluster_dns
    };
    let agent = (!disable_agent).then(|| AgentSettings {
        container_runtime_endpoint: pick(
            matches,
            "container_runtime_endpoint",
            args.container_runtime_endpoint,
            file.container_runtime_endpoint.map(Some),
        ),
        cluster_dns,
        cluster_domain: pick(
            matches,
            "cluster_domain",
            args.cluster_domain,
            file.cluster_domain,
        ),
        resolv_conf: pick(
            matches,
            "resolv_conf",
            args.resolv_conf,
            file.resolv_conf.map(Some),
        )
        .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
        kubelet: pick(
            matches,
            "kubelet_arg",
            args.kubelet_arg,
            file.kubelet_arg.map(|list| list.0),
        ),
    });
    let node_name = match pick(
        matches,
        "node_name",
        args.node_name,
        file.node_name.map(Some),
    ) {
        Some(name) => name,
        None => host::hostname(),
    };
    Ok(ServerSettings {
        data_dir: pick(matches, "data_dir", args.data_dir, file.data_dir),
        https_listen_port: pick(
            matches,
            "https_listen_port",
            args.https_listen_port,
            file.https_listen_port,
        ),
        bind_address: pick(
            matches,
            "bind_address",
            args.bind_address,
            file.bind_address,
        ),
        node_ips,
        node_name,
        tls_sans: pick(
            matches,
            "tls_san",
            args.tls_san,
            file.tls_san.map(|list| list.0),
        ),
        service_cidr,
        cluster_cidr: pick(
            matches,
            "cluster_cidr",
            args.cluster_cidr,
            file.cluster_cidr,
        ),
        controller_manager: pick(
            matches,
            "kube_controller_manager_arg",
            args.kube_controller_manager_arg,
            file.kube_controller_manager_arg.map(|list| list.0),
        ),
        write_kubeconfig: pick(
            matches,
            "write_kubeconfig",
            args.write_kubeconfig,
            file.write_kubeconfig,
        ),
        write_kubeconfig_mode: pick(
            matches,
            "write_kubeconfig_mode",
            args.write_kubeconfig_mode,
            file.write_kubeconfig_mode.map(|mode| mode.0),
        ),
        etcd_compaction_interval: pick(
            matches,
            "etcd_compaction_interval",
            args.etcd_compaction_interval,
            file.etcd_compaction_interval.map(|interval| interval.0),
        ),
        store_compaction_retention: pick(
            matches,
            "store_compaction_retention",
            args.store_compaction_retention,
            file.store_compaction_retention,
        ),
        agent,
    })
}

/// k3s's default cluster DNS: the tenth address of the (first) service CIDR, 10.43.0.10.
fn default_cluster_dns(service_cidr: &str) -> Vec<IpAddr> {
    let first = service_cidr.split(',').next().unwrap_or_default().trim();
    match k3rs_api::cidr::parse_ipv4(first) {
        Ok(cidr) => {
            let base = u32::from(cidr.network());
            vec![IpAddr::V4(std::net::Ipv4Addr::from(base.wrapping_add(10)))]
        }
        Err(_) => vec![IpAddr::V4(std::net::Ipv4Addr::new(10, 43, 0, 10))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, FromArgMatches};

    fn merged(argv: &[&str], yaml: &str) -> ServerSettings {
        let mut full = vec!["k3rs", "server"];
        full.extend_from_slice(argv);
        let matches = Cli::command().try_get_matches_from(full).unwrap();
        let Command::Server(args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("not the server subcommand");
        };
        let (_, sub) = matches.subcommand().unwrap();
        merge(*args, sub, ConfigFile::parse(yaml).unwrap()).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let yaml = "https-listen-port: 7443\ntls-san: [from-file]\nnode-ip: 10.0.0.5\nnode-name: file-node\n\
                    write-kubeconfig-mode: \"0644\"\netcd-compaction-interval: 10m\n";
        let from_file = merged(&[], yaml);
        assert_eq!(from_file.https_listen_port, 7443);
        assert_eq!(from_file.tls_sans, ["from-file"]);
        assert_eq!(from_file.node_ips, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(from_file.node_name, "file-node");
        assert_eq!(from_file.write_kubeconfig_mode, 0o644);
        assert_eq!(from_file.data_dir, PathBuf::from("/var/lib/k3rs"));
        assert_eq!(from_file.etcd_compaction_interval, Duration::from_secs(600));

        let from_flags = merged(
            &[
                "--https-listen-port",
                "8443",
                "--tls-san",
                "a,b",
                "--tls-san",
                "c",
                "--node-ip",
                "10.0.0.6",
                "--node-name",
                "flag-node",
                "--etcd-compaction-interval",
                "0",
            ],
            yaml,
        );
        assert_eq!(from_flags.https_listen_port, 8443);
        assert_eq!(from_flags.tls_sans, ["a", "b", "c"]);
        assert_eq!(from_flags.node_ips, ["10.0.0.6".parse::<IpAddr>().unwrap()]);
        assert_eq!(from_flags.node_name, "flag-node");
        assert_eq!(from_flags.etcd_compaction_interval, Duration::ZERO);
        // A flag given with its default value still wins over the file.
        assert_eq!(
            merged(&["--https-listen-port", "6443"], yaml).https_listen_port,
            6443
        );
    }

    #[test]
    fn defaults_fill_the_rest() {
        let settings = merged(&[], "");
        assert_eq!(settings.https_listen_port, 6443);
        assert_eq!(settings.bind_address, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(settings.service_cidr, "10.43.0.0/16");
        assert_eq!(
            settings.write_kubeconfig,
            PathBuf::from("/etc/k3rs/k3rs.yaml")
        );
        assert_eq!(settings.write_kubeconfig_mode, 0o600);
        assert_eq!(settings.etcd_compaction_interval, Duration::from_secs(300));
        assert_eq!(settings.store_compaction_retention, 1000);
        assert_eq!(settings.node_ips.len(), 1, "the detected primary address");
        assert!(!settings.node_name.is_empty());
        let agent = settings.agent.unwrap();
        assert_eq!(agent.cluster_dns, ["10.43.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(agent.cluster_domain, "cluster.local");
        assert_eq!(agent.container_runtime_endpoint, None);
        assert_eq!(
            merged(&["--service-cidr", "10.96.0.0/12"], "")
                .agent
                .unwrap()
                .cluster_dns,
            ["10.96.0.10".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn the_agent_can_be_disabled_by_flag_or_file() {
        assert!(merged(&["--disable-agent"], "").agent.is_none());
        assert!(merged(&[], "disable-agent: true\n").agent.is_none());
        let dns = merged(&[], "cluster-dns: 10.0.0.53\n")
            .agent
            .unwrap()
            .cluster_dns;
        assert_eq!(dns, ["10.0.0.53".parse::<IpAddr>().unwrap()]);
    }
}
