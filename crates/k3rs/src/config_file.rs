//! The YAML config file (`/etc/k3rs/config.yaml`): the server's long flag names as keys.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::cli::{parse_duration, parse_mode, FlagValueError};

/// A config file error: the file, and a one-line message that names the offending key.
#[derive(Debug)]
pub(crate) struct ConfigError {
    pub(crate) path: PathBuf,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config file {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The keys the config file may hold. Unknown keys are rejected, so a k3s key that k3rs does not
/// implement yet fails loudly instead of being ignored.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ConfigFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) https_listen_port: Option<u16>,
    pub(crate) bind_address: Option<IpAddr>,
    pub(crate) node_ip: Option<StringList>,
    pub(crate) node_name: Option<String>,
    pub(crate) tls_san: Option<StringList>,
    pub(crate) service_cidr: Option<String>,
    pub(crate) cluster_cidr: Option<String>,
    pub(crate) kube_controller_manager_arg: Option<ControllerManagerArgs>,
    pub(crate) kubelet_arg: Option<KubeletArgs>,
    pub(crate) write_kubeconfig: Option<PathBuf>,
    pub(crate) write_kubeconfig_mode: Option<FileMode>,
    pub(crate) etcd_compaction_interval: Option<GoDuration>,
    pub(crate) store_compaction_retention: Option<u64>,
    pub(crate) disable_agent: Option<bool>,
    pub(crate) container_runtime_endpoint: Option<String>,
    pub(crate) cluster_dns: Option<StringList>,
    pub(crate) cluster_domain: Option<String>,
    pub(crate) resolv_conf: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads `path`. A missing file is an empty config when `required` is false (the default
    /// path), an error when the user named the file.
    pub(crate) fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default())
            }
            Err(err) => return Err(error(err.to_string())),
        };
        Self::parse(&text).map_err(error)
    }

    /// Parses config text; the error names the key when there is one.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        // An empty file (or one with only comments) is an empty config.
        let parsed: Option<Self> =
            serde_yaml_ng::from_str(text).map_err(|err| one_line(&err.to_string()))?;
        let config = parsed.unwrap_or_default();
        for (key, list) in [
            ("node-ip", &config.node_ip),
            ("cluster-dns", &config.cluster_dns),
        ] {
            for ip in list.iter().flat_map(|list| list.0.iter()) {
                ip.parse::<IpAddr>()
                    .map_err(|_| format!("{key}: {ip:?} is not an IP address"))?;
            }
        }
        Ok(config)
    }

    /// The node IPs, already checked by [`ConfigFile::parse`].
    pub(crate) fn node_ips(&self) -> Vec<IpAddr> {
        ips(self.node_ip.as_ref())
    }

    /// The cluster DNS servers, already checked by [`ConfigFile::parse`].
    pub(crate) fn cluster_dns(&self) -> Vec<IpAddr> {
        ips(self.cluster_dns.as_ref())
    }
}

fn ips(list: Option<&StringList>) -> Vec<IpAddr> {
    list.iter()
        .flat_map(|list| list.0.iter())
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// serde's messages speak of fields; a config file has keys. Folded onto one line.
fn one_line(message: &str) -> String {
    message
        .replace("unknown field", "unknown key")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `kubelet-arg`: a string or list of `KEY=VALUE`, each checked as the flag is.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KubeletArgs(pub(crate) Vec<crate::cli::KubeletArg>);

impl<'de> Deserialize<'de> for KubeletArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = StringList::deserialize(deserializer)?;
        list.0
            .iter()
            .map(|arg| {
                crate::cli::parse_kubelet_arg(arg)
                    .map_err(|err| de::Error::custom(format!("kubelet-arg: {err}")))
            })
            .collect::<Result<_, _>>()
            .map(KubeletArgs)
    }
}

/// `kube-controller-manager-arg`: a string or list of `KEY=VALUE`, each checked as the flag is.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ControllerManagerArgs(pub(crate) Vec<crate::cli::ControllerManagerArg>);

impl<'de> Deserialize<'de> for ControllerManagerArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = StringList::deserialize(deserializer)?;
        list.0
            .iter()
            .map(|arg| {
                crate::cli::parse_controller_manager_arg(arg)
                    .map_err(|err| de::Error::custom(format!("kube-controller-manager-arg: {err}")))
            })
            .collect::<Result<_, _>>()
            .map(ControllerManagerArgs)
    }
}

/// A string or a list of strings, each of which may hold comma-separated values (k3s accepts
/// `node-ip: 10.0.0.5`, `node-ip: 10.0.0.5,fd00::5` and `node-ip: [10.0.0.5, fd00::5]`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StringList(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<StringList, E> {
                Ok(StringList(split(value)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.extend(split(&value));
                }
                Ok(StringList(values))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

fn split(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

/// A file mode: a string of octal digits (`"0644"`), or a bare number whose digits are read as
/// octal (`644`), as k3s users write it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FileMode(pub(crate) u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parse = |text: &str| parse_mode(text).map(FileMode);
        parsed(deserializer, "an octal file mode such as \"0600\"", parse)
    }
}

/// A duration in Go's notation (`5m`, `90s`, `1h30m`), or the number 0 (which disables what it
/// times), as the flag of the same name takes it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GoDuration(pub(crate) std::time::Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parse = |text: &str| parse_duration(text).map(GoDuration);
        parsed(deserializer, "a duration such as \"5m\"", parse)
    }
}

/// Deserializes a value through its flag's parser (see [`ParsedVisitor`]).
fn parsed<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, FlagValueError>,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(ParsedVisitor { expecting, parse })
}

/// Reads a value the way its flag does: a string through the flag's parser, or a bare number
/// as the same text (YAML reads `644` and `0` as numbers).
struct ParsedVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, FlagValueError>,
}

impl<T> Visitor<'_> for ParsedVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let config = ConfigFile::parse(
            "data-dir: /srv/k3rs\nhttps-listen-port: 7443\nbind-address: 127.0.0.1\nnode-ip: 10.0.0.5,fd00::5\n\
             node-name: n1\ntls-san: [a.example.com, 10.9.9.9]\nservice-cidr: 10.96.0.0/12\n\
             write-kubeconfig: /tmp/k.yaml\nwrite-kubeconfig-mode: \"0644\"\n\
             etcd-compaction-interval: 1h30m\nstore-compaction-retention: 50\n",
        )
        .unwrap();
        assert_eq!(config.https_listen_port, Some(7443));
        assert_eq!(config.node_ips().len(), 2);
        assert_eq!(
            config.tls_san,
            Some(StringList(vec!["a.example.com".into(), "10.9.9.9".into()]))
        );
        assert_eq!(config.write_kubeconfig_mode, Some(FileMode(0o644)));
        assert_eq!(
            config.etcd_compaction_interval,
            Some(GoDuration(std::time::Duration::from_secs(5400)))
        );
        assert_eq!(config.store_compaction_retention, Some(50));
        assert_eq!(
            ConfigFile::parse("etcd-compaction-interval: 0")
                .unwrap()
                .etcd_compaction_interval,
            Some(GoDuration(std::time::Duration::ZERO))
        );
    }

    #[test]
    fn empty_files_and_bare_modes() {
        assert_eq!(ConfigFile::parse("").unwrap(), ConfigFile::default());
        assert_eq!(
            ConfigFile::parse("# nothing\n").unwrap(),
            ConfigFile::default()
        );
        assert_eq!(
            ConfigFile::parse("write-kubeconfig-mode: 644")
                .unwrap()
                .write_kubeconfig_mode,
            Some(FileMode(0o644))
        );
        assert_eq!(
            ConfigFile::parse("node-ip: 10.0.0.1")
                .unwrap()
                .node_ips()
                .len(),
            1
        );
    }

    #[test]
    fn errors_name_the_key_on_one_line() {
        for (text, key) in [
            ("cluster-dns: [[1]]", "cluster-dns"),
            ("https-listen-port: abc", "https-listen-port"),
            ("https-listen-port: 70000", "https-listen-port"),
            ("tls-san: 5", "tls-san"),
            ("node-ip: nope", "node-ip"),
            ("write-kubeconfig-mode: \"0999\"", "write-kubeconfig-mode"),
            ("etcd-compaction-interval: 300", "etcd-compaction-interval"),
            (
                "etcd-compaction-interval: 5 minutes",
                "etcd-compaction-interval",
            ),
            (
                "store-compaction-retention: -1",
                "store-compaction-retention",
            ),
            // Flags k3rs does not have yet are unknown keys, not silently ignored ones.
            ("disable-agent: maybe", "disable-agent"),
        ] {
            let err = ConfigFile::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
            assert!(!err.contains('\n'), "{text}: {err}");
        }
        assert!(ConfigFile::parse("- a\n- b").is_err());
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("config.yaml");
        assert_eq!(
            ConfigFile::load(&missing, false).unwrap(),
            ConfigFile::default()
        );
        let err = ConfigFile::load(&missing, true).unwrap_err();
        assert!(err.to_string().contains("config.yaml"), "{err}");
    }
}
