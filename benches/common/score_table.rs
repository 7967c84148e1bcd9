//! The score bench's table: one row per workload and the ratios that compare workloads run
//! side by side. Plain data and formatting only (no I/O), so that `tests/bench_score_table.rs`
//! can check it.

use serde::{Deserialize, Serialize};

/// One workload's figures. `None` means "not measured for this workload" and prints as `-`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// What ran, e.g. `digicert accounts 100k: import, empty store`.
    pub workload: String,
    /// Records read (or tasks processed) by the workload.
    pub records: u64,
    /// Wall time of the workload itself (not the process start or app build), in seconds.
    pub wall_secs: f64,
    /// Requests the simulator answered during the workload.
    pub requests: Option<u64>,
    /// Peak resident set size of the process that ran the workload, in KiB.
    pub peak_rss_kib: Option<u64>,
    /// SQLite file plus `-wal`, in bytes, after the workload.
    pub store_bytes: Option<u64>,
    /// Records the store holds after the workload (what `store_bytes` is divided by).
    pub records_held: Option<u64>,
    /// Rows the workload wrote (created + updated + deleted + … of its runs).
    pub rows_written: Option<u64>,
    /// Wall time ÷ the naive script's wall time on the same data.
    pub ratio_to_script: Option<f64>,
    /// Wall time ÷ the bare fetch's wall time on the same data.
    pub ratio_to_bare: Option<f64>,
    /// Why a figure is missing or what else to know (a skip, a failure).
    pub note: Option<String>,
}

impl ScoreRow {
    /// A row for `workload` with nothing measured yet.
    pub fn new(workload: impl Into<String>) -> Self {
        Self {
            workload: workload.into(),
            ..Self::default()
        }
    }

    /// Records per second of wall time (0 for no time).
    pub fn records_per_sec(&self) -> f64 {
        if self.wall_secs > 0.0 {
            self.records as f64 / self.wall_secs
        } else {
            0.0
        }
    }

    /// Requests per record read, if requests were counted and records read.
    pub fn requests_per_record(&self) -> Option<f64> {
        let requests = self.requests?;
        (self.records > 0).then(|| requests as f64 / self.records as f64)
    }

    /// Store bytes per record held, if both are known.
    pub fn store_bytes_per_record(&self) -> Option<f64> {
        let bytes = self.store_bytes?;
        let held = self.records_held.filter(|held| *held > 0)?;
        Some(bytes as f64 / held as f64)
    }

    /// Peak RSS in MiB, if measured.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.peak_rss_kib.map(|kib| kib as f64 / 1024.0)
    }
}

/// The column headers, in order.
pub const HEADERS: [&str; 11] = [
    "workload",
    "records",
    "wall s",
    "records/s",
    "x script",
    "x bare",
    "req/rec",
    "RSS MiB",
    "store B/rec",
    "rows written",
    "note",
];

/// `value` with `decimals` decimals, or `-`.
pub fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The row's cells, in [`HEADERS`] order.
pub fn cells(row: &ScoreRow) -> [String; 11] {
    [
        row.workload.clone(),
        row.records.to_string(),
        format!("{:.2}", row.wall_secs),
        format!("{:.0}", row.records_per_sec()),
        cell(row.ratio_to_script, 2),
        cell(row.ratio_to_bare, 1),
        cell(row.requests_per_record(), 4),
        cell(row.peak_rss_mib(), 1),
        cell(row.store_bytes_per_record(), 0),
        row.rows_written
            .map_or_else(|| "-".to_owned(), |rows| rows.to_string()),
        row.note.clone().unwrap_or_default(),
    ]
}

/// The table as Markdown (readable in a terminal, pasteable into the README): text columns
/// left-aligned, numbers right-aligned, each column as wide as its widest cell.
pub fn table(rows: &[ScoreRow]) -> String {
    let body: Vec<[String; 11]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for cells in &body {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // The workload and note columns are text; the rest are numbers.
    let text_column = |at: usize| at == 0 || at == HEADERS.len() - 1;
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(at, (cell, width))| {
                if text_column(at) {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let headers: Vec<String> = HEADERS.iter().map(|h| (*h).to_owned()).collect();
    // `|---|---:|`: each cell's width plus its two spaces; numbers right-aligned.
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(at, width)| {
            if text_column(at) {
                "-".repeat(width + 2)
            } else {
                format!("{}:", "-".repeat(width + 1))
            }
        })
        .collect();
    let mut out = String::new();
    out.push_str(&line(&headers));
    out.push('\n');
    out.push_str(&format!("|{}|", rule.join("|")));
    out.push('\n');
    for cells in &body {
        out.push_str(&line(cells));
        out.push('\n');
    }
    out
}

/// One issue target's verdict: its name, whether it was met, and the figure reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// The target, e.g. `full account import <= 0.30x script`.
    pub target: String,
    /// Met or not; `None` when it could not be measured in this run (e.g. no python3).
    pub pass: Option<bool>,
    /// The figure reached, e.g. `1.44x`.
    pub figure: String,
}

impl TargetCheck {
    /// A check of `figure` against a limit: passes if `figure <= limit` (`at_most`) or
    /// `figure >= limit` (otherwise); `None` figures cannot be judged.
    pub fn compare(
        target: &str,
        figure: Option<f64>,
        limit: f64,
        at_most: bool,
        unit: &str,
    ) -> Self {
        Self {
            target: target.to_owned(),
            pass: figure.map(|f| if at_most { f <= limit } else { f >= limit }),
            figure: figure.map_or_else(|| "not measured".to_owned(), |f| format!("{f:.2}{unit}")),
        }
    }

    /// `PASS`, `FAIL` or `SKIP` and the rest, one line.
    pub fn line(&self) -> String {
        let verdict = match self.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "SKIP",
        };
        format!("{verdict}: {} (reached {})", self.target, self.figure)
    }
}
