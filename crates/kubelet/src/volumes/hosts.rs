//! The pod's `/etc/hosts` (upstream's `ensureHostsFile`, `managedHostsFileContent` and
//! `GeneratePodHostNameAndDomain` in `pkg/kubelet`): localhost lines, the pod's own name on each
//! pod IP, and `hostAliases`; a hostNetwork pod gets the node's file with the aliases appended.

use k8s_openapi::api::core::v1::{HostAlias, Pod};

const MANAGED_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";
/// Linux's limit on a hostname (64 bytes with the terminating NUL).
const HOSTNAME_MAX_LEN: usize = 63;
/// Upstream's `IsDNS1123Label` message.
const DNS_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// A pod hostname or subdomain the kubelet refuses (upstream's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("pod Hostname \"{0}\" is not a valid DNS label: {DNS_LABEL_MESSAGE}")]
    Hostname(String),
    #[error("pod Subdomain \"{0}\" is not a valid DNS label: {DNS_LABEL_MESSAGE}")]
    Subdomain(String),
    #[error("hostname for pod \"{pod}\" was invalid: \"{hostname}\"")]
    Empty { pod: String, hostname: String },
}

fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// The pod's hostname and domain: `spec.hostname` or the pod name, cut to 63 characters without
/// a trailing `-` or `.`; the domain `<subdomain>.<namespace>.svc.<cluster domain>` when
/// `spec.subdomain` is set, else empty.
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, String), HostnameError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut hostname = name.clone();
    if let Some(requested) = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        if !is_dns_label(requested) {
            return Err(HostnameError::Hostname(requested.to_owned()));
        }
        hostname = requested.to_owned();
    }
    if hostname.len() > HOSTNAME_MAX_LEN {
        let cut: String = hostname.chars().take(HOSTNAME_MAX_LEN).collect();
        let trimmed = cut.trim_end_matches(['-', '.']).to_owned();
        tracing::warn!(pod = %name, hostname = %trimmed, "hostname for pod was too long, truncated it");
        if trimmed.is_empty() {
            return Err(HostnameError::Empty {
                pod: name,
                hostname,
            });
        }
        hostname = trimmed;
    }
    let mut domain = String::new();
    if let Some(subdomain) = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        if !is_dns_label(subdomain) {
            return Err(HostnameError::Subdomain(subdomain.to_owned()));
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        domain = format!("{subdomain}.{namespace}.svc.{cluster_domain}");
    }
    Ok((hostname, domain))
}

/// The `hostAliases` section: a blank line, a comment, then one line per alias with its IP and
/// tab-separated names. Empty without aliases.
pub(crate) fn host_alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

/// The hosts file of a pod with its own network namespace.
pub(crate) fn managed_hosts_content(
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    aliases: &[HostAlias],
) -> String {
    let mut out = String::from(MANAGED_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        if domain.is_empty() {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
        }
    }
    out.push_str(&host_alias_entries(aliases));
    out
}

/// The hosts file of a hostNetwork pod: the node's, marked, with the aliases appended.
pub(crate) fn host_network_hosts_content(node_hosts: &[u8], aliases: &[HostAlias]) -> Vec<u8> {
    let mut out = MANAGED_HEADER_HOST_NETWORK.as_bytes().to_vec();
    out.extend_from_slice(node_hosts);
    out.extend_from_slice(host_alias_entries(aliases).as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias {
            ip: ip.into(),
            hostnames: Some(names.iter().map(|n| (*n).to_owned()).collect()),
        }
    }

    #[test]
    fn managed_file_as_upstream_writes_it() {
        let content = managed_hosts_content(
            &["10.42.0.5".into(), "fd00::5".into()],
            "web-0",
            "web.prod.svc.cluster.local",
            &[
                alias("10.1.2.3", &["foo.local", "bar.local"]),
                alias("10.1.2.4", &["baz"]),
            ],
        );
        assert_eq!(
            content,
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             10.42.0.5\tweb-0.web.prod.svc.cluster.local\tweb-0\n\
             fd00::5\tweb-0.web.prod.svc.cluster.local\tweb-0\n\
             \n\
             # Entries added by HostAliases.\n\
             10.1.2.3\tfoo.local\tbar.local\n\
             10.1.2.4\tbaz\n"
        );
        let plain = managed_hosts_content(&["10.42.0.6".into()], "pod", "", &[]);
        assert!(
            plain.ends_with("fe00::2\tip6-allrouters\n10.42.0.6\tpod\n"),
            "{plain}"
        );
    }

    #[test]
    fn host_network_file_wraps_the_nodes() {
        let content =
            host_network_hosts_content(b"127.0.0.1 localhost\n", &[alias("1.2.3.4", &["x"])]);
        assert_eq!(
            String::from_utf8(content).unwrap(),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n# Entries added by HostAliases.\n1.2.3.4\tx\n"
        );
    }

    fn pod(name: &str, hostname: Option<&str>, subdomain: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("prod".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                hostname: hostname.map(str::to_owned),
                subdomain: subdomain.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn hostname_and_domain() {
        assert_eq!(
            pod_hostname_and_domain(&pod("web-1", None, None), "cluster.local").unwrap(),
            ("web-1".into(), String::new())
        );
        assert_eq!(
            pod_hostname_and_domain(&pod("web-1", Some("db"), Some("svc")), "cluster.local")
                .unwrap(),
            ("db".into(), "svc.prod.svc.cluster.local".into())
        );
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(
            pod_hostname_and_domain(&pod(&long, None, None), "c")
                .unwrap()
                .0,
            "a".repeat(62)
        );
        assert_eq!(
            pod_hostname_and_domain(&pod("p", Some("Bad_Name"), None), "c")
                .unwrap_err()
                .to_string(),
            format!("pod Hostname \"Bad_Name\" is not a valid DNS label: {DNS_LABEL_MESSAGE}")
        );
        assert_eq!(
            pod_hostname_and_domain(&pod("p", None, Some("-x")), "c").unwrap_err(),
            HostnameError::Subdomain("-x".into())
        );
    }
}
