//! The CRI `PodSandboxConfig` of a pod (upstream's `generatePodSandboxConfig`): metadata and
//! labels the kubelet finds the sandbox by, hostname, DNS, host ports, log directory, cgroup
//! parent and the pod-level security context. Pure: the node's settings come in
//! [`NodeSettings`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, PodSecurityContext, SeccompProfile};

use crate::cgroups::{CgroupDriver, QosClass};
use crate::runtime::labels;
use crate::volumes::pod_hostname_and_domain;

/// The node settings a pod's runtime configuration depends on.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub node_name: String,
    /// Cluster DNS servers (`--cluster-dns`, k3s's default `10.43.0.10`).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain` (`cluster.local`).
    pub cluster_domain: String,
    /// The host's resolver configuration, for `dnsPolicy: Default` and the search domains
    /// `ClusterFirst` appends.
    pub host_dns: HostDns,
    /// Where pod logs go (`/var/log/pods`).
    pub pod_logs_dir: PathBuf,
    pub cgroup_driver: CgroupDriver,
}

/// A resolv.conf's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostDns {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl HostDns {
    /// Parses resolv.conf text (`nameserver`, `search`/`domain`, `options` lines).
    pub fn parse(text: &str) -> HostDns {
        let mut dns = HostDns::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_owned)),
                // The last search or domain line wins, as in the resolver.
                Some("search" | "domain") => dns.searches = words.map(str::to_owned).collect(),
                Some("options") => dns.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        dns
    }
}

/// `/var/log/pods/<namespace>_<name>_<uid>`.
pub fn pod_log_dir(root: &Path, pod: &Pod) -> PathBuf {
    root.join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    ))
}

/// The labels of the pod's sandbox and containers that name the pod.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    map.insert(
        labels::POD_NAME.to_owned(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    map.insert(
        labels::POD_NAMESPACE.to_owned(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    map.insert(
        labels::POD_UID.to_owned(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    map
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's hostname (see [`pod_hostname_and_domain`]; a name that cannot be one has been
/// refused by validation, so the pod's name stands in).
pub fn hostname(pod: &Pod, cluster_domain: &str) -> String {
    pod_hostname_and_domain(pod, cluster_domain)
        .map(|(hostname, _)| hostname)
        .unwrap_or_else(|_| pod.metadata.name.clone().unwrap_or_default())
}

/// The DNS configuration of the pod's sandbox (upstream's `dns.go`), or `None` to use the
/// host's (host-network pods under `ClusterFirst` or `Default`).
pub fn dns_config(pod: &Pod, node: &NodeSettings) -> Option<cri::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network(pod),
        _ => false,
    };
    let mut config = match policy {
        "None" => cri::DnsConfig::default(),
        _ if cluster_first && !node.cluster_dns.is_empty() => {
            let domain = &node.cluster_domain;
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ];
            searches.extend(node.host_dns.searches.iter().cloned());
            cri::DnsConfig {
                servers: node.cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec!["ndots:5".to_owned()],
            }
        }
        // Default (and ClusterFirst without a cluster DNS): the host's resolver.
        _ => cri::DnsConfig {
            servers: node.host_dns.nameservers.clone(),
            searches: node.host_dns.searches.clone(),
            options: node.host_dns.options.clone(),
        },
    };
    if let Some(extra) = spec.dns_config.as_ref() {
        config
            .servers
            .extend(extra.nameservers.iter().flatten().cloned());
        config
            .searches
            .extend(extra.searches.iter().flatten().cloned());
        for option in extra.options.iter().flatten() {
            let text = match option.value.as_deref() {
                Some(value) => format!("{}:{value}", option.name.as_deref().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            // A pod's option replaces the one of the same name.
            let name = text.split(':').next().unwrap_or_default().to_owned();
            config
                .options
                .retain(|o| o.split(':').next().unwrap_or_default() != name);
            config.options.push(text);
        }
    }
    dedup(&mut config.servers);
    dedup(&mut config.searches);
    // The resolver reads at most 3 nameservers and 32 search domains.
    config.servers.truncate(3);
    config.searches.truncate(32);
    if host_network(pod) && !cluster_first && policy != "None" && spec.dns_config.is_none() {
        return None;
    }
    Some(config)
}

fn dedup(values: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    values.retain(|v| seen.insert(v.clone()));
}

/// Host ports of the pod's containers, for the CNI `portmap` plugin.
pub fn port_mappings(pod: &Pod) -> Vec<cri::PortMapping> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|port| {
            let host_port = port.host_port.filter(|p| *p > 0)?;
            let protocol = match port.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp,
                Some("SCTP") => cri::Protocol::Sctp,
                _ => cri::Protocol::Tcp,
            };
            Some(cri::PortMapping {
                protocol: protocol as i32,
                container_port: port.container_port,
                host_port,
                host_ip: port.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// A seccomp profile as the CRI takes it: unset means `Unconfined`, the kubelet's default
/// without the `SeccompDefault` setting (the CRI's zero value would mean `RuntimeDefault`).
pub fn seccomp(profile: Option<&SeccompProfile>) -> cri::SecurityProfile {
    use cri::security_profile::ProfileType;
    let (kind, localhost) = match profile.map(|p| p.type_.as_str()) {
        Some("RuntimeDefault") => (ProfileType::RuntimeDefault, String::new()),
        Some("Localhost") => (
            ProfileType::Localhost,
            profile
                .and_then(|p| p.localhost_profile.clone())
                .unwrap_or_default(),
        ),
        _ => (ProfileType::Unconfined, String::new()),
    };
    cri::SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: localhost,
    }
}

/// The namespaces of the pod's sandbox and containers.
pub fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.as_ref();
    let node_if = |flag: Option<bool>, otherwise: cri::NamespaceMode| {
        if flag.unwrap_or(false) {
            cri::NamespaceMode::Node as i32
        } else {
            otherwise as i32
        }
    };
    let pid_default = if spec
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false)
    {
        cri::NamespaceMode::Pod
    } else {
        cri::NamespaceMode::Container
    };
    cri::NamespaceOption {
        network: node_if(spec.and_then(|s| s.host_network), cri::NamespaceMode::Pod),
        pid: node_if(spec.and_then(|s| s.host_pid), pid_default),
        ipc: node_if(spec.and_then(|s| s.host_ipc), cri::NamespaceMode::Pod),
        ..cri::NamespaceOption::default()
    }
}

/// The pod's sandbox configuration for its `attempt`-th sandbox.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    node: &NodeSettings,
    qos: QosClass,
) -> cri::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let security: PodSecurityContext = spec.security_context.clone().unwrap_or_default();
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let mut supplemental: Vec<i64> = security.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs_group) = security.fs_group {
        supplemental.insert(0, fs_group);
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: hostname(pod, &node.cluster_domain),
        log_directory: pod_log_dir(&node.pod_logs_dir, pod)
            .to_string_lossy()
            .into_owned(),
        dns_config: dns_config(pod, node),
        port_mappings: port_mappings(pod),
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: node.cgroup_driver.pod_cgroup(qos, &uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: security.run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: security.run_as_group.map(|value| cri::Int64Value { value }),
                supplemental_groups: supplemental,
                privileged,
                seccomp: Some(seccomp(security.seccomp_profile.as_ref())),
                ..cri::LinuxSandboxSecurityContext::default()
            }),
            sysctls: security
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            ..cri::LinuxPodSandboxConfig::default()
        }),
        windows: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> NodeSettings {
        NodeSettings {
            node_name: "n1".into(),
            cluster_dns: vec!["10.43.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            host_dns: HostDns::parse("nameserver 192.0.2.53\nsearch example.com\noptions edns0\n"),
            pod_logs_dir: "/var/log/pods".into(),
            cgroup_driver: CgroupDriver::Cgroupfs,
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn cluster_first_uses_the_cluster_dns_and_search_path() {
        let p = pod(json!({"containers": []}));
        let dns = dns_config(&p, &node()).unwrap();
        assert_eq!(dns.servers, ["10.43.0.10"]);
        assert_eq!(
            dns.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.com"
            ]
        );
        assert_eq!(dns.options, ["ndots:5"]);
    }

    #[test]
    fn dns_policies() {
        let host = pod(json!({"hostNetwork": true, "containers": []}));
        assert_eq!(dns_config(&host, &node()), None);
        let host_cluster = pod(
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet", "containers": []}),
        );
        assert_eq!(
            dns_config(&host_cluster, &node()).unwrap().servers,
            ["10.43.0.10"]
        );
        let default = pod(json!({"dnsPolicy": "Default", "containers": []}));
        let dns = dns_config(&default, &node()).unwrap();
        assert_eq!(dns.servers, ["192.0.2.53"]);
        assert_eq!(dns.options, ["edns0"]);
        let none = pod(json!({
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]},
            "containers": [],
        }));
        let dns = dns_config(&none, &node()).unwrap();
        assert_eq!(dns.servers, ["1.1.1.1"]);
        assert_eq!(dns.searches, ["a.example"]);
        assert_eq!(dns.options, ["ndots:2", "rotate"]);
        let override_ndots = pod(
            json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}, "containers": []}),
        );
        assert_eq!(
            dns_config(&override_ndots, &node()).unwrap().options,
            ["ndots:1"]
        );
    }

    #[test]
    fn the_sandbox_carries_what_the_kubelet_finds_it_by() {
        let p = pod(json!({
            "hostPID": true,
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            "containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}],
        }));
        let config = sandbox_config(&p, 2, &node(), QosClass::BestEffort);
        let meta = config.metadata.unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("web", "shop", "u-1", 2)
        );
        assert_eq!(config.hostname, "web");
        assert_eq!(config.log_directory, "/var/log/pods/shop_web_u-1");
        assert_eq!(config.labels[labels::POD_UID], "u-1");
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.port_mappings.len(), 1);
        assert_eq!(config.port_mappings[0].host_port, 8080);
        let linux = config.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/podu-1");
        assert_eq!(linux.sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
        let security = linux.security_context.unwrap();
        assert_eq!(security.run_as_user.unwrap().value, 1000);
        assert_eq!(security.supplemental_groups, [2000]);
        let ns = security.namespace_options.unwrap();
        assert_eq!(ns.pid, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(
            security.seccomp.unwrap().profile_type,
            cri::security_profile::ProfileType::Unconfined as i32
        );
    }
}
