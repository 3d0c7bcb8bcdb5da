//! The API benchmark's results as a Markdown section of `docs/benchmarks.md`.

use std::fmt::Write as _;

use super::first_commands::FirstCommands;
use super::soak::Soak;
use super::{Args, Results};
use crate::machine::Machine;
use crate::report::{latency_rows, markers, round_rows, section_head, table, Better, Row};

/// Everything the section shows.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) args: &'a Args,
    pub(crate) machine: Machine,
    pub(crate) filesystem: String,
    pub(crate) etcd_version: String,
    pub(crate) k3rs: Option<&'a Results>,
    pub(crate) etcd: Option<&'a Results>,
    pub(crate) first: Option<FirstCommands>,
    pub(crate) k3rs_soak: Option<&'a Soak>,
    pub(crate) etcd_soak: Option<&'a Soak>,
}

impl Report<'_> {
    fn rows(&self) -> Vec<Row<Results>> {
        let mut rows = round_rows(
            "creates",
            "create",
            &self.args.concurrency,
            |r: &Results| &r.creates,
        );
        let objects = self.args.objects;
        rows.extend(latency_rows(
            &format!("get, {objects} objects"),
            |r: &Results| &r.gets,
        ));
        rows.extend(latency_rows(
            &format!("list of {objects}"),
            |r: &Results| &r.lists,
        ));
        let watchers = self.args.watchers;
        rows.extend(latency_rows(
            &format!("watch fan-out to {watchers}, each delivery"),
            |r: &Results| &r.delivery,
        ));
        rows.extend(latency_rows(
            &format!("watch fan-out to {watchers}, last watcher"),
            |r: &Results| &r.last_watcher,
        ));
        rows.push(Row::new(
            format!("server RSS with {objects} objects (MiB)"),
            Better::Lower,
            |r: &Results| Some(r.rss_objects_mib),
        ));
        rows.push(Row::new(
            format!("server RSS, {objects} objects and {watchers} watches (MiB)"),
            Better::Lower,
            |r: &Results| Some(r.rss_watchers_mib),
        ));
        rows.push(Row::new(
            format!("server RSS with {watchers} watches / without (×)"),
            Better::Lower,
            |r: &Results| Some(r.rss_watchers_mib / r.rss_objects_mib),
        ));
        rows
    }

    fn soak_rows(&self) -> Vec<Row<Soak>> {
        let mut rows = vec![Row::new(
            "requests/s achieved",
            Better::Higher,
            |s: &Soak| Some(s.rate()),
        )];
        let Some(samples) = self.k3rs_soak.or(self.etcd_soak).map(|s| s.samples.len()) else {
            return rows;
        };
        for index in 0..samples {
            let at = move |s: &Soak| s.samples.get(index).copied();
            let Some(sample) = self.k3rs_soak.or(self.etcd_soak).and_then(&at) else {
                continue;
            };
            let secs = sample.at.as_secs();
            let at_time = format!("{}:{:02}", secs / 60, secs % 60);
            let phase = if sample.loaded { "load" } else { "idle" };
            rows.push(Row::new(
                format!("RSS at {at_time}, {phase} (MiB)"),
                Better::Lower,
                move |s: &Soak| at(s).map(|x| x.rss_mib),
            ));
            rows.push(Row::new(
                format!("database at {at_time}, {phase} (MiB)"),
                Better::Lower,
                move |s: &Soak| at(s).map(|x| x.database_mib),
            ));
        }
        rows.push(Row::new(
            "RSS peak under load (MiB)",
            Better::Lower,
            Soak::peak_rss,
        ));
        rows.push(Row::new(
            "RSS growth over the last half of the load (%)",
            Better::Lower,
            Soak::late_growth_percent,
        ));
        rows.push(Row::new(
            "RSS after the idle time (MiB)",
            Better::Lower,
            Soak::rss_after_idle,
        ));
        rows.push(Row::new(
            "database after the first compaction (MiB)",
            Better::Lower,
            Soak::database_after_first_compaction,
        ));
        rows.push(Row::new(
            "database, largest since / after the first compaction (×)",
            Better::Lower,
            |s: &Soak| {
                Some(s.database_max_after_compaction()? / s.database_after_first_compaction()?)
            },
        ));
        rows
    }

    /// The section: heading, setting, table, notes, between the markers.
    pub(crate) fn render(&self) -> String {
        let args = self.args;
        let (_, end) = markers("api");
        let mut out = section_head(
            "api",
            &format!("API server: k3rs vs etcd {} alone", self.etcd_version),
            &self.machine,
            &self.filesystem,
        );
        let _ = writeln!(
            out,
            "- Settings: ConfigMaps of ~{} KiB; {} measured creates per concurrency level ({} \
             clients); {} objects for {} gets and {} whole lists; {} watches of the namespace, \
             {} updates of one object 20 ms apart",
            super::VALUE_BYTES / 1024,
            args.creates,
            args.concurrency
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            args.objects,
            args.gets,
            args.list_runs,
            args.watchers,
            args.watch_events,
        );
        let _ = writeln!(
            out,
            "- k3rs: the release `k3rs server` (API server and its embedded store), driven over \
             HTTPS with HTTP/2 and JSON as the admin (client certificate), {} watches per \
             connection. etcd: `{}` alone, over gRPC on loopback — only the storage of a stock \
             control plane, which would add kube-apiserver's work and memory on top; creates are \
             kube-apiserver's transaction (put if absent), gets and lists are linearizable reads \
             of the same JSON bytes\n",
            super::WATCHES_PER_CONNECTION,
            args.common.etcd.display()
        );
        if self.k3rs.is_some() || self.etcd.is_some() {
            out.push_str(&table(&self.rows(), "etcd", self.k3rs, self.etcd));
        }
        let _ = writeln!(
            out,
            "\nRatios are k3rs/etcd: for creates/s higher is better for k3rs, for latency and \
             memory lower is better. k3rs answers every request as the Kubernetes API \
             (authentication, RBAC, decoding, defaulting, validation, managed fields); etcd only \
             stores bytes."
        );
        if let Some(first) = self.first {
            let _ = writeln!(
                out,
                "\n### A user's first commands (k3rs alone)\n\nA fresh release server with its \
                 controllers and nothing applied, then `kubectl explain pod` (the OpenAPI v3 \
                 index and `api/v1`) and `kubectl apply` of a one-replica Deployment, then {} s \
                 idle.\n\n| metric | k3rs |\n|---|---:|\n| server RSS, fresh (MiB) | {:.1} |\n\
                 | server RSS after the first commands and {} s idle (MiB) | {:.1} |",
                args.first_commands_idle,
                first.fresh_mib,
                args.first_commands_idle,
                first.after_mib,
            );
        }
        if self.k3rs_soak.is_some() || self.etcd_soak.is_some() {
            let _ = writeln!(
                out,
                "\n### Churn soak\n\n{} s of load then {} s idle on a fresh server of each \
                 side, sampled every {} s: {} connections at {} requests/s in all, of 100 \
                 ConfigMaps of ~1 KiB one request in ten a merge patch (etcd: a put of the \
                 patched object, as kube-apiserver writes it), one in ten a list of the 100, the \
                 rest gets; k3rs as a service account with a bearer token. History is compacted \
                 every {} s on both sides (k3rs: `--etcd-compaction-interval`; etcd: by the \
                 benchmark as kube-apiserver's compactor, to the revision of the tick before). \
                 Database: k3rs's store directory; etcd's bbolt file (its preallocated WAL left \
                 out).\n",
                args.soak_load,
                args.soak_idle,
                args.soak_sample,
                super::soak::CONNECTIONS,
                args.soak_rate,
                args.soak_compaction,
            );
            out.push_str(&table(
                &self.soak_rows(),
                "etcd",
                self.k3rs_soak,
                self.etcd_soak,
            ));
        }
        let _ = write!(out, "{end}");
        out
    }
}
