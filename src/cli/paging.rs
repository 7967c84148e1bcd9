//! Listing commands that stop at a limit: the rows are fetched from the store page by page
//! and printed as they come, and a listing cut short by `--limit` says so on stderr
//! (`1,000 of 2,002 tasks shown; use --limit N or --all`), so no script takes a part for
//! the whole.

use serde::Serialize;

use super::args::OutputFormat;
use super::output::{table, write_stdout};
use crate::store::{RunFilter, Store, StoreResult, TaskFilter};

/// Rows fetched from the store per query when a listing streams (`--all`).
pub const PAGE_ROWS: u32 = 1000;

/// How many rows a listing prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLimit {
    /// At most this many; a notice on stderr when more exist.
    AtMost(u32),
    /// Every row, streamed page by page.
    All,
}

impl RowLimit {
    /// `--all` wins over `--limit N`.
    pub fn new(limit: u32, all: bool) -> Self {
        if all {
            Self::All
        } else {
            Self::AtMost(limit)
        }
    }
}

/// A listing the store can page through with a numeric cursor.
pub trait Pages {
    /// One row.
    type Row: Serialize;
    /// What the rows are called in the notice (`tasks`).
    const NOUN: &'static str;
    /// At most `limit` rows after `cursor` (the cursor of the last row of the previous
    /// page; `None` for the first page).
    async fn fetch(&self, cursor: Option<i64>, limit: u32) -> StoreResult<Vec<Self::Row>>;
    /// How many rows the whole listing holds.
    async fn count(&self) -> StoreResult<u64>;
    /// The cursor a row leaves for the next page.
    fn cursor(row: &Self::Row) -> i64;
}

/// Tasks, oldest first.
pub struct TaskPages<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Which tasks (its cursor and limit are set per page).
    pub filter: TaskFilter,
}

impl Pages for TaskPages<'_> {
    type Row = crate::model::Task;
    const NOUN: &'static str = "tasks";

    async fn fetch(&self, cursor: Option<i64>, limit: u32) -> StoreResult<Vec<Self::Row>> {
        let filter = TaskFilter {
            after_id: cursor,
            limit,
            ..self.filter.clone()
        };
        self.store.list_tasks(&filter).await
    }

    async fn count(&self) -> StoreResult<u64> {
        self.store.count_tasks(&self.filter).await
    }

    fn cursor(row: &Self::Row) -> i64 {
        row.id
    }
}

/// Job runs, newest first.
pub struct RunPages<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Which runs (its cursor and limit are set per page).
    pub filter: RunFilter,
}

impl Pages for RunPages<'_> {
    type Row = crate::model::RunRecord;
    const NOUN: &'static str = "runs";

    async fn fetch(&self, cursor: Option<i64>, limit: u32) -> StoreResult<Vec<Self::Row>> {
        let filter = RunFilter {
            before_id: cursor,
            limit,
            ..self.filter.clone()
        };
        self.store.list_runs(&filter).await
    }

    async fn count(&self) -> StoreResult<u64> {
        self.store.count_runs(&self.filter).await
    }

    fn cursor(row: &Self::Row) -> i64 {
        row.id
    }
}

/// Prints the rows of `pages` up to `limit` as a table or one JSON array, page by page, and
/// a notice on stderr when `--limit` left rows out.
pub async fn print_pages<P: Pages>(
    pages: &P,
    limit: RowLimit,
    format: OutputFormat,
    headers: &[&str],
    row: impl Fn(&P::Row) -> Vec<String>,
) -> StoreResult<()> {
    let mut printer = PagePrinter::new(format, headers, row);
    match limit {
        RowLimit::AtMost(limit) => {
            // One row more than asked says whether there are more, without counting.
            let mut rows = pages.fetch(None, limit.saturating_add(1)).await?;
            let shown = usize::try_from(limit).unwrap_or(usize::MAX);
            let more = rows.len() > shown;
            rows.truncate(shown);
            printer.page(&rows);
            printer.finish();
            if more {
                let total = pages.count().await?;
                eprintln!("{}", notice(rows.len(), total, P::NOUN));
            }
        }
        RowLimit::All => {
            let mut cursor = None;
            loop {
                let rows = pages.fetch(cursor, PAGE_ROWS).await?;
                printer.page(&rows);
                match rows.last() {
                    Some(last) if rows.len() >= PAGE_ROWS as usize => {
                        cursor = Some(P::cursor(last));
                    }
                    _ => break,
                }
            }
            printer.finish();
        }
    }
    Ok(())
}

/// The stderr line of a listing cut short: `1,000 of 2,002 tasks shown; use --limit N or
/// --all`. `total` is counted after the rows were read, so it is never shown below them.
pub fn notice(shown: usize, total: u64, noun: &str) -> String {
    let shown = u64::try_from(shown).unwrap_or(u64::MAX);
    format!(
        "{} of {} {noun} shown; use --limit N or --all",
        grouped(shown),
        grouped(total.max(shown.saturating_add(1)))
    )
}

/// `2002` as `2,002`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Writes a listing as it arrives: a table whose header comes once (each page is aligned
/// on its own), or one JSON array written element by element, laid out as `--output json`
/// lays out any array.
struct PagePrinter<'h, T, F> {
    format: OutputFormat,
    headers: &'h [&'h str],
    row: F,
    rows_written: usize,
    _row: std::marker::PhantomData<fn(&T)>,
}

impl<'h, T: Serialize, F: Fn(&T) -> Vec<String>> PagePrinter<'h, T, F> {
    fn new(format: OutputFormat, headers: &'h [&'h str], row: F) -> Self {
        Self {
            format,
            headers,
            row,
            rows_written: 0,
            _row: std::marker::PhantomData,
        }
    }

    /// Writes one page.
    fn page(&mut self, records: &[T]) {
        match self.format {
            OutputFormat::Json => {
                let mut out = String::new();
                for record in records {
                    out.push_str(if self.rows_written == 0 { "[\n" } else { ",\n" });
                    out.push_str(&json_element(record));
                    self.rows_written += 1;
                }
                write_stdout(format_args!("{out}"));
            }
            OutputFormat::Table => {
                if records.is_empty() && self.rows_written > 0 {
                    return;
                }
                let rows: Vec<Vec<String>> = records.iter().map(&self.row).collect();
                let text = table(self.headers, &rows);
                let text = if self.rows_written == 0 {
                    text.as_str()
                } else {
                    // The header line is already out.
                    text.split_once('\n').map_or("", |(_, rest)| rest)
                };
                write_stdout(format_args!("{text}"));
                self.rows_written += records.len().max(1);
            }
        }
    }

    /// Closes the listing (the JSON array's `]`; a table of no rows still gets its header).
    fn finish(mut self) {
        match self.format {
            OutputFormat::Json if self.rows_written == 0 => write_stdout(format_args!("[]\n")),
            OutputFormat::Json => write_stdout(format_args!("\n]\n")),
            OutputFormat::Table if self.rows_written == 0 => self.page(&[]),
            OutputFormat::Table => {}
        }
    }
}

/// One array element as pretty JSON indented by two spaces, as inside a pretty array.
fn json_element<T: Serialize>(record: &T) -> String {
    match serde_json::to_string_pretty(record) {
        Ok(text) => text
            .lines()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => {
            // A record that cannot be JSON is a bug; keep the array valid and say so.
            eprintln!("error: cannot print JSON: {err}");
            "  null".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_groups_thousands_and_names_the_way_out() {
        assert_eq!(
            notice(1000, 2002, "tasks"),
            "1,000 of 2,002 tasks shown; use --limit N or --all"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
        // Rows deleted between reading and counting: the total still says more existed.
        assert_eq!(
            notice(50, 10, "runs"),
            "50 of 51 runs shown; use --limit N or --all"
        );
    }

    #[test]
    fn streamed_json_elements_are_laid_out_as_in_a_pretty_array() {
        let rows = vec![serde_json::json!({"a": 1}), serde_json::json!({"b": [2]})];
        let whole = serde_json::to_string_pretty(&rows).unwrap();
        let streamed = format!(
            "[\n{},\n{}\n]",
            json_element(&rows[0]),
            json_element(&rows[1])
        );
        assert_eq!(streamed, whole);
    }
}
