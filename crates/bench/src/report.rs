//! Results as Markdown: the side-by-side table every benchmark prints, and its own section of
//! `docs/benchmarks.md` (between markers named after the benchmark; other sections stay).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::machine::Machine;
use crate::stats::{Round, Samples};

const FILE_HEADER: &str = "# Benchmarks\n\nEach section is written by `cargo xtask bench <name>`, which runs k3rs and its \
baseline in the same run on the same machine. Compare the ratios, not the absolute numbers: \
they describe one machine on one day. No number here is a test assertion.\n";

/// Options of the benchmarks whose baseline is etcd: its binary, and where output goes.
#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// The etcd 3.4 binary (Debian `etcd-server`), the baseline.
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub(crate) etcd: std::path::PathBuf,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// Options every benchmark has: where data goes during the run, and the report.
#[derive(Debug, clap::Args)]
pub(crate) struct Output {
    /// Where both sides keep their data during the run. Must be a real disk: on tmpfs an fsync
    /// costs nothing and durable-write numbers mean nothing.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub(crate) work_dir: std::path::PathBuf,
    /// The Markdown file whose section of this benchmark is replaced with this run's results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks.md"))]
    pub(crate) report: std::path::PathBuf,
    /// Print the results without writing the report file.
    #[arg(long)]
    pub(crate) no_report: bool,
}

impl Output {
    /// A fresh directory for this run under `--work-dir` (created if missing), removed when
    /// dropped.
    pub(crate) fn scratch(&self, name: &str) -> Result<tempfile::TempDir> {
        let work_dir = &self.work_dir;
        std::fs::create_dir_all(work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;
        tempfile::Builder::new()
            .prefix(&format!("k3rs-bench-{name}-"))
            .tempdir_in(work_dir)
            .with_context(|| format!("creating a directory in {}", work_dir.display()))
    }

    /// Replaces benchmark `name`'s section of the report with `markdown`, unless `--no-report`.
    pub(crate) fn write(&self, name: &str, markdown: &str) -> Result<()> {
        if self.no_report {
            return Ok(());
        }
        write_section(&self.report, name, markdown)?;
        eprintln!("wrote {}", self.report.display());
        Ok(())
    }
}

/// Which direction of a metric is good for k3rs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// Reads one number from one side's results.
pub(crate) type Metric<R> = Box<dyn Fn(&R) -> Option<f64>>;

/// One table row: a label, which direction is good, and how to read the number.
pub(crate) struct Row<R> {
    pub(crate) label: String,
    pub(crate) better: Better,
    pub(crate) value: Metric<R>,
}

impl<R> Row<R> {
    pub(crate) fn new(
        label: impl Into<String>,
        better: Better,
        value: impl Fn(&R) -> Option<f64> + 'static,
    ) -> Row<R> {
        Row {
            label: label.into(),
            better,
            value: Box::new(value),
        }
    }
}

/// Milliseconds, for latency cells.
pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The p50 and p99 rows (in ms, lower is better) of the samples `pick` finds.
pub(crate) fn latency_rows<R: 'static>(label: &str, pick: fn(&R) -> &Samples) -> [Row<R>; 2] {
    [
        Row::new(format!("{label} p50 (ms)"), Better::Lower, move |r| {
            Some(ms(pick(r).p50()))
        }),
        Row::new(format!("{label} p99 (ms)"), Better::Lower, move |r| {
            Some(ms(pick(r).p99()))
        }),
    ]
}

/// Per concurrency level: operations per second (`{what}/s`) and the p50/p99 of one operation
/// (`{one} p50`), read from the rounds `pick` finds (one per level, in order).
pub(crate) fn round_rows<R: 'static>(
    what: &str,
    one: &str,
    levels: &[usize],
    pick: fn(&R) -> &[Round],
) -> Vec<Row<R>> {
    let mut rows = Vec::new();
    for (index, &clients) in levels.iter().enumerate() {
        let round = move |results: &R| {
            pick(results)
                .get(index)
                .filter(|round| round.clients == clients)
                .map(|round| (round.per_second(), round.latency.p50(), round.latency.p99()))
        };
        let noun = if clients == 1 { "client" } else { "clients" };
        rows.push(Row::new(
            format!("{what}/s, {clients} {noun}"),
            Better::Higher,
            move |r| round(r).map(|(rate, _, _)| rate),
        ));
        rows.push(Row::new(
            format!("{one} p50, {clients} {noun} (ms)"),
            Better::Lower,
            move |r| round(r).map(|(_, p50, _)| ms(p50)),
        ));
        rows.push(Row::new(
            format!("{one} p99, {clients} {noun} (ms)"),
            Better::Lower,
            move |r| round(r).map(|(_, _, p99)| ms(p99)),
        ));
    }
    rows
}

/// The table: one row per metric, k3rs and the baseline side by side with their ratio.
pub(crate) fn table<R>(
    rows: &[Row<R>],
    baseline: &str,
    k3rs: Option<&R>,
    base: Option<&R>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| metric | k3rs | {baseline} | k3rs/{baseline} | better for k3rs |\n|---|---:|---:|---:|---|"
    );
    for row in rows {
        let mine = k3rs.and_then(|results| (row.value)(results));
        let theirs = base.and_then(|results| (row.value)(results));
        let ratio = match (mine, theirs) {
            (Some(k), Some(e)) if e > 0.0 => format!("{:.2}", k / e),
            _ => "–".to_owned(),
        };
        let direction = match row.better {
            Better::Higher => "ratio > 1",
            Better::Lower => "ratio < 1",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {direction} |",
            row.label,
            number(mine),
            number(theirs)
        );
    }
    out
}

fn number(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The markers around the section of benchmark `name`.
pub(crate) fn markers(name: &str) -> (String, String) {
    (
        format!(
            "<!-- k3rs-bench {name}: begin (generated by `cargo xtask bench {name}`; edits are \
             overwritten) -->"
        ),
        format!("<!-- k3rs-bench {name}: end -->"),
    )
}

/// The start of benchmark `name`'s section: its begin marker, the heading `title`, and when,
/// where and on what it ran. The caller adds its settings and table, then [`markers`]' end.
pub(crate) fn section_head(name: &str, title: &str, machine: &Machine, filesystem: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let (begin, _) = markers(name);
    let mut out = String::new();
    let _ = writeln!(out, "{begin}");
    let _ = writeln!(out, "## {title}\n");
    let _ = writeln!(
        out,
        "- Run: {} {:02}:{:02} UTC, `cargo xtask bench {name}`",
        now.date(),
        now.hour(),
        now.minute()
    );
    let _ = writeln!(out, "- Machine: {machine}");
    let _ = writeln!(out, "- Data on: {filesystem}");
    out
}

/// Replaces the section of benchmark `name` in `path` with `section` (which starts and ends with
/// its markers), appending it if absent and creating the file if missing.
pub(crate) fn write_section(path: &Path, name: &str, section: &str) -> Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => FILE_HEADER.to_owned(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let updated = replace_section(&existing, name, section);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

fn replace_section(existing: &str, name: &str, section: &str) -> String {
    let (begin_marker, end_marker) = markers(name);
    if let (Some(begin), Some(end)) = (existing.find(&begin_marker), existing.find(&end_marker)) {
        if begin < end {
            let before = existing.get(..begin).unwrap_or_default();
            let after = existing.get(end + end_marker.len()..).unwrap_or_default();
            return format!("{before}{section}{after}");
        }
    }
    let mut out = existing.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(section);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_own_section() {
        let (begin, end) = markers("store");
        let (other_begin, other_end) = markers("api");
        let doc =
            format!("# Benchmarks\n\n{begin}\nold\n{end}\n\n{other_begin}\nkept\n{other_end}\n");
        let new = format!("{begin}\nnew\n{end}");
        assert_eq!(
            replace_section(&doc, "store", &new),
            format!("# Benchmarks\n\n{new}\n\n{other_begin}\nkept\n{other_end}\n")
        );
    }

    #[test]
    fn appends_when_absent() {
        let (begin, end) = markers("api");
        let new = format!("{begin}\nnew\n{end}");
        assert_eq!(
            replace_section("# Benchmarks\n", "api", &new),
            format!("# Benchmarks\n\n{new}\n")
        );
    }
}
