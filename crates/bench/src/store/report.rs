//! The store benchmark's results as a Markdown section, and its place in `docs/benchmarks.md`.

use std::fmt::Write as _;

use super::{Args, Results};
use crate::machine::Machine;
use crate::report::{latency_rows, markers, round_rows, section_head, table, Row};

/// Everything the section shows.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) args: &'a Args,
    pub(crate) machine: Machine,
    pub(crate) filesystem: String,
    pub(crate) etcd_version: String,
    pub(crate) k3rs: Option<&'a Results>,
    pub(crate) etcd: Option<&'a Results>,
}

impl Report<'_> {
    fn rows(&self) -> Vec<Row<Results>> {
        let mut rows = round_rows(
            "durable creates",
            "create latency",
            &self.args.concurrency,
            |r: &Results| &r.writes,
        );
        let objects = self.args.list_objects;
        let page = self.args.page_size;
        rows.extend(latency_rows(
            &format!("list {objects} whole"),
            |r: &Results| &r.list_all,
        ));
        rows.extend(latency_rows(
            &format!("list {objects} paged by {page}, whole pass"),
            |r: &Results| &r.list_paged,
        ));
        rows.extend(latency_rows(
            &format!("list one page of {page}"),
            |r: &Results| &r.list_page,
        ));
        rows.extend(latency_rows(
            "watch delivery, create issued → event",
            |r: &Results| &r.watch,
        ));
        rows
    }

    /// The section: heading, setting, table, notes, between the markers.
    pub(crate) fn render(&self) -> String {
        let args = self.args;
        let (_, end) = markers("store");
        let mut out = section_head(
            "store",
            &format!("Store: k3rs (sled) vs etcd {}", self.etcd_version),
            &self.machine,
            &self.filesystem,
        );
        let _ = writeln!(
            out,
            "- Settings: {} measured creates per concurrency level ({} clients), after {} warm-up \
             creates; values {}–{} KiB from seed {} (same keys and bytes on both sides); lists of \
             {} objects, pages of {}, {} runs each; {} watch events",
            args.writes,
            args.concurrency
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            args.warmup,
            super::MIN_VALUE / 1024,
            super::MAX_VALUE / 1024,
            args.seed,
            args.list_objects,
            args.page_size,
            args.list_runs,
            args.watch_events,
        );
        let _ = writeln!(
            out,
            "- k3rs: `SledStore` with default settings, embedded in the benchmark process (as in \
             the API server). etcd: `{}` as a child process with default durability (fsync per \
             commit) on loopback, one gRPC connection shared by all clients; creates are the \
             API server's transaction (put if create revision = 0); lists are linearizable, pages \
             after the first read at the first page's revision\n",
            args.common.etcd.display()
        );
        out.push_str(&table(&self.rows(), "etcd", self.k3rs, self.etcd));
        let _ = writeln!(
            out,
            "\nRatios are k3rs/etcd: for throughput (creates/s) higher is better for k3rs, for \
             latency (ms) lower is better for k3rs."
        );
        let _ = write!(out, "{end}");
        out
    }
}
