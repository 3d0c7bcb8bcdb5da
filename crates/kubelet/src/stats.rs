//! The kubelet's resource statistics: the `/stats/summary` document (upstream's
//! `stats/v1alpha1` Summary: node, pods, containers) and the `/metrics/resource` Prometheus
//! text that metrics-server scrapes, built from CRI's container stats and sandbox/container
//! lists, and the node's own CPU and memory from `/proc/stat` and `/proc/meminfo` (as
//! cAdvisor's root container reports them). A pod's CPU and memory are the sums over its
//! running containers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::runtime::{label, labels, Runtime, RuntimeError};

/// `USER_HZ`: the unit of `/proc/stat` (100 on every Linux architecture k3rs builds for).
const NANOS_PER_TICK: u64 = 10_000_000;

/// `stats/v1alpha1` Summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: String,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

/// A CRI timestamp (nanoseconds) as RFC 3339.
fn time_of(nanos: i64) -> String {
    Timestamp::from_nanosecond(i128::from(nanos))
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

fn value(v: Option<&cri::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}

fn cpu_of(usage: Option<&cri::CpuUsage>) -> Option<CpuStats> {
    let usage = usage?;
    Some(CpuStats {
        time: time_of(usage.timestamp),
        usage_nano_cores: value(usage.usage_nano_cores.as_ref()),
        usage_core_nano_seconds: value(usage.usage_core_nano_seconds.as_ref()),
    })
}

fn memory_of(usage: Option<&cri::MemoryUsage>) -> Option<MemoryStats> {
    let usage = usage?;
    Some(MemoryStats {
        time: time_of(usage.timestamp),
        available_bytes: value(usage.available_bytes.as_ref()),
        usage_bytes: value(usage.usage_bytes.as_ref()),
        working_set_bytes: value(usage.working_set_bytes.as_ref()),
        rss_bytes: value(usage.rss_bytes.as_ref()),
        page_faults: value(usage.page_faults.as_ref()),
        major_page_faults: value(usage.major_page_faults.as_ref()),
    })
}

fn rootfs_of(usage: Option<&cri::FilesystemUsage>) -> Option<FsStats> {
    let usage = usage?;
    Some(FsStats {
        time: time_of(usage.timestamp),
        used_bytes: value(usage.used_bytes.as_ref()),
        inodes_used: value(usage.inodes_used.as_ref()),
        ..FsStats::default()
    })
}

/// Adds `b` into `a` field by field (a field is present when any side has it).
fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

fn sum_cpu(containers: &[ContainerStats]) -> Option<CpuStats> {
    containers
        .iter()
        .filter_map(|c| c.cpu.as_ref())
        .fold(None, |total: Option<CpuStats>, cpu| {
            let total = total.unwrap_or_default();
            Some(CpuStats {
                time: total.time.max(cpu.time.clone()),
                usage_nano_cores: add(total.usage_nano_cores, cpu.usage_nano_cores),
                usage_core_nano_seconds: add(
                    total.usage_core_nano_seconds,
                    cpu.usage_core_nano_seconds,
                ),
            })
        })
}

fn sum_memory(containers: &[ContainerStats]) -> Option<MemoryStats> {
    containers.iter().filter_map(|c| c.memory.as_ref()).fold(
        None,
        |total: Option<MemoryStats>, memory| {
            let total = total.unwrap_or_default();
            Some(MemoryStats {
                time: total.time.max(memory.time.clone()),
                available_bytes: None,
                usage_bytes: add(total.usage_bytes, memory.usage_bytes),
                working_set_bytes: add(total.working_set_bytes, memory.working_set_bytes),
                rss_bytes: add(total.rss_bytes, memory.rss_bytes),
                page_faults: add(total.page_faults, memory.page_faults),
                major_page_faults: add(total.major_page_faults, memory.major_page_faults),
            })
        },
    )
}

/// The pods of the Summary: every ready sandbox of the kubelet's pods, with the stats of its
/// running containers.
pub fn pod_stats(
    sandboxes: &[cri::PodSandbox],
    containers: &[cri::Container],
    stats: &[cri::ContainerStats],
) -> Vec<PodStats> {
    let by_id: BTreeMap<&str, &cri::ContainerStats> = stats
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
        .collect();
    let mut pods: Vec<PodStats> = sandboxes
        .iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .filter_map(|sandbox| {
            let uid = label(&sandbox.labels, labels::POD_UID)?;
            let mut own: Vec<ContainerStats> = containers
                .iter()
                .filter(|c| {
                    c.pod_sandbox_id == sandbox.id
                        && c.state == cri::ContainerState::ContainerRunning as i32
                })
                .filter_map(|c| {
                    let name = label(&c.labels, labels::CONTAINER_NAME)?;
                    let stats = by_id.get(c.id.as_str());
                    Some(ContainerStats {
                        name: name.to_owned(),
                        start_time: time_of(c.created_at),
                        cpu: stats.and_then(|s| cpu_of(s.cpu.as_ref())),
                        memory: stats.and_then(|s| memory_of(s.memory.as_ref())),
                        rootfs: stats.and_then(|s| rootfs_of(s.writable_layer.as_ref())),
                    })
                })
                .collect();
            own.sort_by(|a, b| a.name.cmp(&b.name));
            Some(PodStats {
                pod_ref: PodReference {
                    name: label(&sandbox.labels, labels::POD_NAME)?.to_owned(),
                    namespace: label(&sandbox.labels, labels::POD_NAMESPACE)?.to_owned(),
                    uid: uid.to_owned(),
                },
                start_time: time_of(sandbox.created_at),
                cpu: sum_cpu(&own),
                memory: sum_memory(&own),
                containers: own,
            })
        })
        .collect();
    pods.sort_by(|a, b| {
        (&a.pod_ref.namespace, &a.pod_ref.name).cmp(&(&b.pod_ref.namespace, &b.pod_ref.name))
    });
    pods
}

/// The CPU time the node has used, in nanoseconds: the `cpu` line of `/proc/stat` less idle
/// and iowait.
pub fn node_cpu_nanos(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| *v)
        .sum();
    Some(busy.saturating_mul(NANOS_PER_TICK))
}

/// The node's memory from `/proc/meminfo`, as cAdvisor reports the root container: usage is
/// what is not free, the working set is usage less inactive file pages, available is the
/// total less the working set.
pub fn node_memory(meminfo: &str, time: &str) -> Option<MemoryStats> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
    };
    let total = field("MemTotal")?;
    let usage = total.saturating_sub(field("MemFree")?);
    let working_set = usage.saturating_sub(field("Inactive(file)").unwrap_or(0));
    Some(MemoryStats {
        time: time.to_owned(),
        available_bytes: Some(total.saturating_sub(working_set)),
        usage_bytes: Some(usage),
        working_set_bytes: Some(working_set),
        rss_bytes: field("AnonPages"),
        page_faults: None,
        major_page_faults: None,
    })
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Milliseconds since the epoch of an RFC 3339 time (a sample's timestamp).
fn millis(time: &str) -> Option<i64> {
    time.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}

/// `/metrics/resource`: the node's, pods' and containers' CPU seconds and working set, and
/// the containers' start times, in Prometheus' text format with upstream's metric names.
pub fn resource_metrics(summary: &Summary) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, samples: Vec<(String, f64, Option<i64>)>| {
            out.push_str(&format!(
                "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}\n"
            ));
            for (labels, value, at) in samples {
                let at = at.map(|ms| format!(" {ms}")).unwrap_or_default();
                out.push_str(&format!("{name}{labels} {value}{at}\n"));
            }
        };
    let container_labels = |pod: &PodStats, c: &ContainerStats| {
        format!(
            "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
            escape(&c.name),
            escape(&pod.pod_ref.namespace),
            escape(&pod.pod_ref.name)
        )
    };
    let pod_labels = |pod: &PodStats| {
        format!(
            "{{namespace=\"{}\",pod=\"{}\"}}",
            escape(&pod.pod_ref.namespace),
            escape(&pod.pod_ref.name)
        )
    };
    let cpu_seconds = |cpu: &CpuStats| {
        cpu.usage_core_nano_seconds
            .map(|ns| (ns as f64 / 1e9, millis(&cpu.time)))
    };
    let working_set = |memory: &MemoryStats| {
        memory
            .working_set_bytes
            .map(|b| (b as f64, millis(&memory.time)))
    };
    let containers = || {
        summary
            .pods
            .iter()
            .flat_map(|pod| pod.containers.iter().map(move |c| (pod, c)))
    };
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        containers()
            .filter_map(|(pod, c)| {
                let (v, at) = cpu_seconds(c.cpu.as_ref()?)?;
                Some((container_labels(pod, c), v, at))
            })
            .collect(),
    );
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        containers()
            .filter_map(|(pod, c)| {
                let (v, at) = working_set(c.memory.as_ref()?)?;
                Some((container_labels(pod, c), v, at))
            })
            .collect(),
    );
    family(
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
        containers()
            .filter_map(|(pod, c)| {
                let start = c.start_time.parse::<Timestamp>().ok()?;
                Some((
                    container_labels(pod, c),
                    start.as_nanosecond() as f64 / 1e9,
                    None,
                ))
            })
            .collect(),
    );
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
        summary
            .node
            .cpu
            .as_ref()
            .and_then(cpu_seconds)
            .map(|(v, at)| (String::new(), v, at))
            .into_iter()
            .collect(),
    );
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        summary
            .node
            .memory
            .as_ref()
            .and_then(working_set)
            .map(|(v, at)| (String::new(), v, at))
            .into_iter()
            .collect(),
    );
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        summary
            .pods
            .iter()
            .filter_map(|pod| {
                let (v, at) = cpu_seconds(pod.cpu.as_ref()?)?;
                Some((pod_labels(pod), v, at))
            })
            .collect(),
    );
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        summary
            .pods
            .iter()
            .filter_map(|pod| {
                let (v, at) = working_set(pod.memory.as_ref()?)?;
                Some((pod_labels(pod), v, at))
            })
            .collect(),
    );
    family(
        "scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
        vec![(String::new(), 0.0, None)],
    );
    out
}

/// Builds Summaries for the kubelet's server: the runtime's lists and stats, the node's
/// `/proc` files and the kubelet's filesystem.
#[derive(Debug)]
pub struct StatsProvider {
    runtime: Arc<dyn Runtime>,
    node_name: String,
    root_dir: PathBuf,
    start_time: String,
    /// The last node CPU sample, for `usageNanoCores`.
    last_cpu: Mutex<Option<(Instant, u64)>>,
}

impl StatsProvider {
    pub fn new(runtime: Arc<dyn Runtime>, node_name: String, root_dir: PathBuf) -> Self {
        StatsProvider {
            runtime,
            node_name,
            root_dir,
            start_time: crate::clock::now().to_string(),
            last_cpu: Mutex::new(None),
        }
    }

    /// The Summary now.
    pub async fn summary(&self) -> Result<Summary, RuntimeError> {
        let sandboxes = self.runtime.list_pod_sandboxes().await?;
        let containers = self.runtime.list_containers().await?;
        let stats = self.runtime.list_container_stats().await?;
        let now = Timestamp::now();
        let time = now.to_string();
        let cpu = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| node_cpu_nanos(&text))
            .map(|total| {
                let at = Instant::now();
                let mut last = self
                    .last_cpu
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let nano_cores = last.and_then(|(then, before)| {
                    let wall = at.duration_since(then).as_nanos();
                    (wall > 0).then(|| {
                        let used = u128::from(total.saturating_sub(before));
                        u64::try_from(used * 1_000_000_000 / wall).unwrap_or(u64::MAX)
                    })
                });
                *last = Some((at, total));
                CpuStats {
                    time: time.clone(),
                    usage_nano_cores: nano_cores,
                    usage_core_nano_seconds: Some(total),
                }
            });
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| node_memory(&text, &time));
        let fs = nix::sys::statvfs::statvfs(&self.root_dir).ok().map(|fs| {
            let block = fs.fragment_size().max(1);
            let capacity = fs.blocks().saturating_mul(block);
            let available = fs.blocks_available().saturating_mul(block);
            let free = fs.blocks_free().saturating_mul(block);
            FsStats {
                time: time.clone(),
                available_bytes: Some(available),
                capacity_bytes: Some(capacity),
                used_bytes: Some(capacity.saturating_sub(free)),
                inodes_free: Some(fs.files_free()),
                inodes: Some(fs.files()),
                inodes_used: Some(fs.files().saturating_sub(fs.files_free())),
            }
        });
        Ok(Summary {
            node: NodeStats {
                node_name: self.node_name.clone(),
                start_time: self.start_time.clone(),
                cpu,
                memory,
                fs,
            },
            pods: pod_stats(&sandboxes, &containers, &stats),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn u(value: u64) -> Option<cri::UInt64Value> {
        Some(cri::UInt64Value { value })
    }

    #[test]
    fn pods_sum_their_running_containers() {
        let sandbox = cri::PodSandbox {
            id: "s1".into(),
            state: cri::PodSandboxState::SandboxReady as i32,
            created_at: 1_700_000_000_000_000_000,
            labels: map(&[
                (labels::POD_NAME, "web"),
                (labels::POD_NAMESPACE, "shop"),
                (labels::POD_UID, "u1"),
            ]),
            ..cri::PodSandbox::default()
        };
        let gone = cri::PodSandbox {
            id: "s0".into(),
            state: cri::PodSandboxState::SandboxNotready as i32,
            labels: sandbox.labels.clone(),
            ..cri::PodSandbox::default()
        };
        let container = |id: &str, name: &str, state: cri::ContainerState| cri::Container {
            id: id.into(),
            pod_sandbox_id: "s1".into(),
            state: state as i32,
            created_at: 1_700_000_001_000_000_000,
            labels: map(&[(labels::CONTAINER_NAME, name)]),
            ..cri::Container::default()
        };
        let containers = [
            container("c1", "app", cri::ContainerState::ContainerRunning),
            container("c2", "side", cri::ContainerState::ContainerRunning),
            container("c0", "app", cri::ContainerState::ContainerExited),
        ];
        let stat = |id: &str, cpu: u64, memory: u64| cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: id.into(),
                ..cri::ContainerAttributes::default()
            }),
            cpu: Some(cri::CpuUsage {
                timestamp: 1_700_000_002_000_000_000,
                usage_core_nano_seconds: u(cpu),
                usage_nano_cores: u(cpu / 10),
            }),
            memory: Some(cri::MemoryUsage {
                timestamp: 1_700_000_002_000_000_000,
                working_set_bytes: u(memory),
                ..cri::MemoryUsage::default()
            }),
            ..cri::ContainerStats::default()
        };
        let stats = [
            stat("c1", 2_000_000_000, 10 << 20),
            stat("c2", 500_000_000, 5 << 20),
            stat("c0", 9, 9),
        ];
        let pods = pod_stats(&[gone, sandbox], &containers, &stats);
        assert_eq!(pods.len(), 1);
        let pod = &pods[0];
        assert_eq!(pod.pod_ref.name, "web");
        assert_eq!(pod.start_time, "2023-11-14T22:13:20Z");
        assert_eq!(
            pod.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["app", "side"]
        );
        let cpu = pod.cpu.as_ref().unwrap();
        assert_eq!(cpu.usage_core_nano_seconds, Some(2_500_000_000));
        assert_eq!(cpu.usage_nano_cores, Some(250_000_000));
        assert_eq!(
            pod.memory.as_ref().unwrap().working_set_bytes,
            Some(15 << 20)
        );

        let summary = Summary {
            node: NodeStats {
                node_name: "n".into(),
                start_time: "2023-11-14T22:00:00Z".into(),
                cpu: Some(CpuStats {
                    time: "2023-11-14T22:13:22Z".into(),
                    usage_nano_cores: None,
                    usage_core_nano_seconds: Some(7_000_000_000),
                }),
                memory: None,
                fs: None,
            },
            pods,
        };
        let text = resource_metrics(&summary);
        assert!(
            text.contains("# TYPE container_cpu_usage_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("container_cpu_usage_seconds_total{container=\"app\",namespace=\"shop\",pod=\"web\"} 2 1700000002000\n"),
            "{text}"
        );
        assert!(
            text.contains("pod_memory_working_set_bytes{namespace=\"shop\",pod=\"web\"} 15728640 1700000002000\n"),
            "{text}"
        );
        assert!(
            text.contains("node_cpu_usage_seconds_total 7 1700000002000\n"),
            "{text}"
        );
        assert!(text.contains("container_start_time_seconds{container=\"side\",namespace=\"shop\",pod=\"web\"} 1700000001\n"), "{text}");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["pods"][0]["podRef"]["namespace"], "shop");
        assert_eq!(
            json["pods"][0]["containers"][0]["cpu"]["usageCoreNanoSeconds"],
            2_000_000_000u64
        );
        assert_eq!(json["node"]["nodeName"], "n");
    }

    #[test]
    fn node_cpu_and_memory_from_proc() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(node_cpu_nanos(stat), Some(161 * NANOS_PER_TICK));
        let meminfo = "MemTotal:        1000 kB\nMemFree:          200 kB\nMemAvailable:     600 kB\nInactive(file):   300 kB\nAnonPages:        250 kB\n";
        let memory = node_memory(meminfo, "t").unwrap();
        assert_eq!(memory.usage_bytes, Some(800 * 1024));
        assert_eq!(memory.working_set_bytes, Some(500 * 1024));
        assert_eq!(memory.available_bytes, Some(500 * 1024));
        assert_eq!(memory.rss_bytes, Some(250 * 1024));
    }
}
