//! Memory and CPU of a node's processes over a window: `k3rs server` (API server, controllers,
//! agent and kubelet in one process), its containerd, and the shims (summed; they share pages,
//! so the sum is an upper bound).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k3rs_tests::node::{processes, Process, TestNode};

use crate::server::{cpu_seconds, rss_mib};

/// How often RSS is read during a window.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The node's processes, found once per window.
#[derive(Debug)]
pub(super) struct NodeProcesses {
    server: u32,
    containerd: u32,
    shims: Vec<u32>,
}

/// One group's mean RSS and CPU over a window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Group {
    pub(crate) rss_mib: f64,
    /// In cores (1.0 = one core busy all the time).
    pub(crate) cpu_cores: f64,
}

/// The node's usage over one window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    pub(crate) server: Group,
    pub(crate) containerd: Group,
    pub(crate) shims: Group,
    pub(crate) shim_count: usize,
}

impl NodeProcesses {
    /// The server (`pid`), the containerd it runs on `node`'s data dir, and that containerd's
    /// shims.
    pub(super) fn find(pid: u32, node: &TestNode) -> Result<NodeProcesses> {
        let all = processes();
        let (containerd, shims) = classify(
            &all,
            &node.data_dir.display().to_string(),
            &node.containerd_socket().display().to_string(),
        );
        Ok(NodeProcesses {
            server: pid,
            containerd: containerd.context("the node's containerd is not running")?,
            shims,
        })
    }
}

/// The containerd whose command line names `data_dir`, and the shims started for `socket`.
fn classify(all: &[Process], data_dir: &str, socket: &str) -> (Option<u32>, Vec<u32>) {
    let containerd = all
        .iter()
        .find(|p| {
            p.cmdline
                .split_whitespace()
                .next()
                .is_some_and(|argv0| argv0 == "containerd" || argv0.ends_with("/containerd"))
                && p.cmdline.contains(data_dir)
        })
        .and_then(|p| u32::try_from(p.pid).ok());
    let shims = all
        .iter()
        .filter(|p| p.cmdline.contains("containerd-shim") && p.cmdline.contains(socket))
        .filter_map(|p| u32::try_from(p.pid).ok())
        .collect();
    (containerd, shims)
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p).ok()).sum()
}

fn rss_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| rss_mib(p).ok()).sum()
}

/// Samples the processes over `window`.
pub(super) async fn measure(processes: &NodeProcesses, window: Duration) -> Result<Usage> {
    let server = [processes.server];
    let containerd = [processes.containerd];
    let start = Instant::now();
    let cpu_start = [
        cpu_of(&server),
        cpu_of(&containerd),
        cpu_of(&processes.shims),
    ];
    let mut rss = [0.0; 3];
    let mut samples = 0u32;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while start.elapsed() < window {
        tick.tick().await;
        rss[0] += rss_mib(processes.server)?;
        rss[1] += rss_mib(processes.containerd)?;
        rss[2] += rss_of(&processes.shims);
        samples += 1;
    }
    let seconds = start.elapsed().as_secs_f64().max(f64::EPSILON);
    let cpu_end = [
        cpu_of(&server),
        cpu_of(&containerd),
        cpu_of(&processes.shims),
    ];
    let group = |index: usize| Group {
        rss_mib: rss[index] / f64::from(samples.max(1)),
        cpu_cores: (cpu_end[index] - cpu_start[index]) / seconds,
    };
    Ok(Usage {
        server: group(0),
        containerd: group(1),
        shims: group(2),
        shim_count: processes.shims.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: i32, cmdline: &str) -> Process {
        Process {
            pid,
            ppid: 1,
            cmdline: cmdline.to_owned(),
        }
    }

    #[test]
    fn finds_the_node_s_containerd_and_shims_only() {
        let socket = "/d/run/containerd/containerd.sock";
        let all = [
            process(10, "/usr/bin/containerd --config /d/agent/etc/containerd/config.toml --root /d/agent/containerd"),
            process(11, "/usr/bin/containerd --config /other/config.toml"),
            process(12, &format!("/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id a -address {socket}")),
            process(13, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id b -address /other.sock"),
            process(14, "sleep 3600"),
        ];
        assert_eq!(classify(&all, "/d", socket), (Some(10), vec![12]));
    }
}
