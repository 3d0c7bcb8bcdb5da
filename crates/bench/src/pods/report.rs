//! The pods benchmark's results as a Markdown section of `docs/benchmarks.md`: node Ready
//! times, pod start-up against the CRI floor, the node's processes' memory and CPU, and the
//! issue's goals with whether this run met them.

use std::fmt::Write as _;
use std::time::Duration;

use super::usage::Usage;
use super::{Args, Results, Timing};
use crate::machine::Machine;
use crate::report::{markers, ms, section_head, table, Better, Row};

/// Pod start-up at most this many times the CRI floor's (p50 and p99).
pub(crate) const GOAL_RATIO: f64 = 1.2;
/// Node Ready at most this long after `k3rs server` starts.
pub(crate) const GOAL_READY: Duration = Duration::from_secs(1);
/// `k3rs server` (with its agent) idle with no pods at most this RSS.
pub(crate) const GOAL_RSS_MIB: f64 = 64.0;

/// Everything the section shows.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) args: &'a Args,
    pub(crate) machine: Machine,
    pub(crate) filesystem: String,
    pub(crate) results: &'a Results,
}

/// One side's rounds, in `--counts` order: start-up p50, p99 and max, and all running (ms).
struct Side(Vec<[f64; 4]>);

impl Side {
    fn of<'a>(timings: impl Iterator<Item = &'a Timing>) -> Side {
        Side(
            timings
                .map(|t| {
                    [
                        ms(t.latency.p50()),
                        ms(t.latency.p99()),
                        ms(t.latency.percentile(100.0)),
                        ms(t.total),
                    ]
                })
                .collect(),
        )
    }
}

fn rows(counts: &[usize]) -> Vec<Row<Side>> {
    let mut rows = Vec::new();
    for (index, &pods) in counts.iter().enumerate() {
        let noun = if pods == 1 { "pod" } else { "pods" };
        for (column, what) in [
            "start-up p50",
            "start-up p99",
            "start-up max",
            "all running",
        ]
        .into_iter()
        .enumerate()
        {
            rows.push(Row::new(
                format!("{pods} {noun}: {what} (ms)"),
                Better::Lower,
                move |s: &Side| s.0.get(index).and_then(|v| v.get(column)).copied(),
            ));
        }
    }
    rows
}

/// k3rs's p50 and p99 over the floor's.
fn ratios(k3rs: &Timing, floor: &Timing) -> (f64, f64) {
    let ratio = |k: Duration, f: Duration| k.as_secs_f64() / f.as_secs_f64().max(f64::EPSILON);
    (
        ratio(k3rs.latency.p50(), floor.latency.p50()),
        ratio(k3rs.latency.p99(), floor.latency.p99()),
    )
}

fn met(yes: bool) -> &'static str {
    if yes {
        "met"
    } else {
        "not met"
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn usage_rows(out: &mut String, window: &str, usage: &Usage) {
    let _ = writeln!(
        out,
        "| {window} | {:.1} | {:.3} | {:.1} | {:.3} | {:.1} ({}) | {:.3} |",
        usage.server.rss_mib,
        usage.server.cpu_cores,
        usage.containerd.rss_mib,
        usage.containerd.cpu_cores,
        usage.shims.rss_mib,
        usage.shim_count,
        usage.shims.cpu_cores,
    );
}

impl Report<'_> {
    /// The section: heading, settings, tables, goals, between the markers.
    pub(crate) fn render(&self) -> String {
        let results = self.results;
        let (_, end) = markers("pods");
        let mut out = section_head(
            "pods",
            "Pods: kubelet pod start-up against the CRI floor, node Ready, node memory",
            &self.machine,
            &self.filesystem,
        );
        let counts: Vec<usize> = results.rounds.iter().map(|r| r.pods).collect();
        let _ = writeln!(
            out,
            "- Settings: one real node (`k3rs server` with its agent, kubelet, containerd {} \
             and CNI, in a network namespace of its own); pods of busybox `sleep 3600` \
             (image in the air-gap dir, `IfNotPresent`, grace 1 s) at once, {} of them per \
             round; k3rs and the floor interleaved per round on the same containerd\n",
            containerd_version(),
            counts
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );

        let _ = writeln!(out, "### Node Ready\n");
        let _ = writeln!(out, "| start | Ready after |\n|---|---:|");
        for (index, took) in results.cold.iter().enumerate() {
            let _ = writeln!(
                out,
                "| cold {} (fresh data dir) | {} |",
                index + 1,
                seconds(*took)
            );
        }
        let _ = writeln!(
            out,
            "| warm restart (data dir kept) | {} |\n",
            seconds(results.warm)
        );
        let _ = writeln!(
            out,
            "From spawning `k3rs server` to the Node's Ready condition True (with a heartbeat \
             of this start), read through the API every 50 ms.\n"
        );

        let _ = writeln!(out, "### Pod start-up\n");
        let k3rs = Side::of(results.rounds.iter().map(|r| &r.k3rs));
        let floor = Side::of(results.rounds.iter().map(|r| &r.floor));
        out.push_str(&table(
            &rows(&counts),
            "CRI floor",
            Some(&k3rs),
            Some(&floor),
        ));
        let _ = writeln!(
            out,
            "\nk3rs: create sent to the API → the pod seen (by a watch) Running with its \
             container running: API server, scheduler, kubelet (pod cgroup, volumes such as the \
             service-account token, status) and the runtime. CRI floor: the same sandboxes \
             and containers, configured by the kubelet's own functions (without volumes), \
             created directly on the node's containerd: RunPodSandbox sent → StartContainer \
             returned.\n"
        );

        let _ = writeln!(out, "### Node processes\n");
        let _ = writeln!(
            out,
            "| window ({} s) | k3rs server RSS (MiB) | k3rs server CPU (cores) | containerd RSS \
             (MiB) | containerd CPU (cores) | shims RSS, sum (MiB) (count) | shims CPU (cores) \
             |\n|---|---:|---:|---:|---:|---:|---:|",
            self.args.idle_seconds
        );
        usage_rows(&mut out, "idle, no pods", &results.idle);
        if let Some((pods, usage)) = &results.loaded {
            usage_rows(&mut out, &format!("idle, {pods} pods running"), usage);
        }
        let _ = writeln!(
            out,
            "\nMean RSS over the window; CPU is utime+stime over the window. `k3rs server` is \
             one process with the API server, controllers, scheduler, agent and kubelet; the \
             shims' RSS is a sum of processes that share pages.\n"
        );

        let _ = writeln!(out, "### Goals\n");
        for round in &results.rounds {
            let (p50, p99) = ratios(&round.k3rs, &round.floor);
            let noun = if round.pods == 1 { "pod" } else { "pods" };
            let _ = writeln!(
                out,
                "- {} {noun}: k3rs/floor p50 {p50:.2}×, p99 {p99:.2}× (goal ≤ {GOAL_RATIO}×): {}",
                round.pods,
                met(p50 <= GOAL_RATIO && p99 <= GOAL_RATIO)
            );
        }
        let slowest = results.cold.iter().max().copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "- node Ready from a cold start: slowest {} (goal ≤ {}): {}",
            seconds(slowest),
            seconds(GOAL_READY),
            met(slowest <= GOAL_READY)
        );
        let rss = results.idle.server.rss_mib;
        let _ = writeln!(
            out,
            "- k3rs server+agent RSS idle, no pods: {rss:.1} MiB (goal ≤ {GOAL_RSS_MIB} MiB): {}",
            met(rss <= GOAL_RSS_MIB)
        );
        let _ = write!(out, "{end}");
        out
    }
}

/// The node's containerd version (`containerd --version`), for the settings line.
fn containerd_version() -> String {
    std::process::Command::new("containerd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_else(|| "(version unknown)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::usage::Group;
    use crate::pods::Round;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn timing(ms: &[u64], total: u64) -> Timing {
        let mut timing = Timing {
            total: Duration::from_millis(total),
            ..Timing::default()
        };
        for &m in ms {
            timing.latency.push(Duration::from_millis(m));
        }
        timing
    }

    #[test]
    fn the_section_compares_with_the_floor_and_says_which_goals_were_met() {
        let args = Cli::parse_from(["pods", "--counts", "1,2"]).args;
        let idle = Usage {
            server: Group {
                rss_mib: 60.0,
                cpu_cores: 0.01,
            },
            ..Usage::default()
        };
        let results = Results {
            cold: vec![Duration::from_millis(900), Duration::from_millis(1500)],
            warm: Duration::from_millis(500),
            rounds: vec![
                Round {
                    pods: 1,
                    k3rs: timing(&[110], 110),
                    floor: timing(&[100], 100),
                },
                Round {
                    pods: 2,
                    k3rs: timing(&[300, 400], 400),
                    floor: timing(&[100, 200], 200),
                },
            ],
            idle,
            loaded: Some((2, idle)),
        };
        let markdown = Report {
            args: &args,
            machine: Machine::detect(),
            filesystem: "ext4".to_owned(),
            results: &results,
        }
        .render();
        let (begin, end) = markers("pods");
        assert!(markdown.starts_with(&begin) && markdown.ends_with(&end));
        assert!(markdown.contains("| 1 pod: start-up p50 (ms) | 110 | 100 | 1.10 | ratio < 1 |"));
        assert!(markdown.contains("| 2 pods: start-up p99 (ms) | 400 | 200 | 2.00 | ratio < 1 |"));
        assert!(markdown.contains("- 1 pod: k3rs/floor p50 1.10×, p99 1.10× (goal ≤ 1.2×): met"));
        assert!(
            markdown.contains("- 2 pods: k3rs/floor p50 3.00×, p99 2.00× (goal ≤ 1.2×): not met")
        );
        assert!(markdown.contains("slowest 1.50 s (goal ≤ 1.00 s): not met"));
        assert!(markdown.contains("60.0 MiB (goal ≤ 64 MiB): met"));
        assert!(markdown.contains("| idle, 2 pods running |"));
    }
}
