//! The scale benchmark's results as a Markdown section of `docs/benchmarks.md`.

use std::fmt::Write as _;

use super::{Args, Results, Usage};
use crate::machine::Machine;
use crate::report::{latency_rows, markers, section_head, table, Better, Row};

/// Everything the section shows.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) args: &'a Args,
    pub(crate) machine: Machine,
    pub(crate) filesystem: String,
    pub(crate) k3rs: &'a Results,
    pub(crate) pre_placed: &'a Results,
}

fn usage_rows(window: &str, pick: fn(&Results) -> Usage, peak: bool) -> Vec<Row<Results>> {
    let mut rows = vec![Row::new(
        format!("server RSS, {window}, mean (MiB)"),
        Better::Lower,
        move |r: &Results| Some(pick(r).rss_mib),
    )];
    if peak {
        rows.push(Row::new(
            format!("server RSS, {window}, peak (MiB)"),
            Better::Lower,
            move |r: &Results| Some(pick(r).peak_rss_mib),
        ));
    }
    rows.push(Row::new(
        format!("server CPU, {window} (cores)"),
        Better::Lower,
        move |r: &Results| Some(pick(r).cpu_cores),
    ));
    rows
}

impl Report<'_> {
    fn rows(&self) -> Vec<Row<Results>> {
        let pods = self.args.pods;
        let mut rows = vec![
            Row::new(
                format!("time to {pods} pods Running (s)"),
                Better::Lower,
                |r: &Results| Some(r.all_running.as_secs_f64()),
            ),
            Row::new("pods Running per second", Better::Higher, |r: &Results| {
                Some(r.startup.len() as f64 / r.all_running.as_secs_f64().max(f64::EPSILON))
            }),
            Row::new(
                "pods bound per second, mean",
                Better::Higher,
                |r: &Results| Some(r.bound_per_second),
            ),
            Row::new(
                "pods bound in the busiest second",
                Better::Higher,
                |r: &Results| Some(r.peak_bound_per_second as f64),
            ),
        ];
        rows.extend(latency_rows("pod startup", |r: &Results| &r.startup));
        rows.extend(usage_rows(
            "idle (nodes, no pods)",
            |r: &Results| r.idle,
            false,
        ));
        rows.extend(usage_rows("during the ramp", |r: &Results| r.ramp, true));
        rows.extend(usage_rows(
            &format!("settled with {pods} pods"),
            |r: &Results| r.settled,
            false,
        ));
        rows.push(Row::new(
            "benchmark process CPU during the ramp (cores)",
            Better::Lower,
            |r: &Results| Some(r.bench_cpu_cores),
        ));
        rows
    }

    /// The section: heading, setting, table, notes, between the markers.
    pub(crate) fn render(&self) -> String {
        let args = self.args;
        let (_, end) = markers("scale");
        let mut out = section_head(
            "scale",
            &format!(
                "Scale: {} pods on {} hollow nodes, via Deployments vs pre-placed",
                args.pods, args.nodes
            ),
            &self.machine,
            &self.filesystem,
        );
        let _ = writeln!(
            out,
            "- Settings: {} hollow nodes (`k3rs-hollow`: the k3rs kubelet over a fake runtime, \
             kubemark-style, in the benchmark process, one connection each, Lease every 10 s); {} pods requesting \
             10m CPU and 16Mi each; {} s idle before, {} s settled after",
            args.nodes, args.pods, args.idle_seconds, args.settle_seconds
        );
        let _ = writeln!(
            out,
            "- k3rs: {} Deployments created at once; the controllers create the pods and the \
             scheduler binds them. pre-placed (the baseline): the benchmark creates the same \
             number of bare pods itself ({} clients) with `spec.nodeName` set round-robin, so \
             neither controllers nor scheduler do anything; each side on a fresh release \
             `k3rs server`\n",
            args.deployments,
            super::CREATE_CLIENTS
        );
        out.push_str(&table(
            &self.rows(),
            "pre-placed",
            Some(self.k3rs),
            Some(self.pre_placed),
        ));
        let _ = writeln!(
            out,
            "\nTimes are when the benchmark's watch of the pods sees a change: startup is seen \
             added → seen Running, and a pre-placed pod is bound when created. The ratio is what \
             the Deployment and ReplicaSet controllers and the scheduler add over the API \
             server, its store and the hollow nodes alone. Both the hollow nodes and the server \
             share the machine's cores."
        );
        let _ = write!(out, "{end}");
        out
    }
}
