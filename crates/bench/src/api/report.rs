//! The API benchmark's results as a Markdown section of `docs/benchmarks.md`.

use std::fmt::Write as _;

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
    pub(crate) k3rs: &'a Results,
    pub(crate) etcd: &'a Results,
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
        out.push_str(&table(
            &self.rows(),
            "etcd",
            Some(self.k3rs),
            Some(self.etcd),
        ));
        let _ = writeln!(
            out,
            "\nRatios are k3rs/etcd: for creates/s higher is better for k3rs, for latency and \
             memory lower is better. k3rs answers every request as the Kubernetes API \
             (authentication, RBAC, decoding, defaulting, validation, managed fields); etcd only \
             stores bytes."
        );
        let _ = write!(out, "{end}");
        out
    }
}
