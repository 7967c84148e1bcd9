//! Printing records as aligned tables or JSON, to a stdout that may close early.

use std::io::{ErrorKind, Write};

use serde::Serialize;

use super::args::OutputFormat;

/// The exit status of a command whose reader closed stdout early (`idsync … | head`): what
/// a process killed by SIGPIPE reports, as other Unix tools do.
pub const EXIT_BROKEN_PIPE: i32 = 128 + 13;

/// Writes to stdout. When the reader has gone (a broken pipe), the command ends quietly
/// with [`EXIT_BROKEN_PIPE`] instead of panicking; another write error ends it with a
/// message and status 1.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if err.kind() == ErrorKind::BrokenPipe {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        eprintln!("error: cannot write to standard output: {err}");
        std::process::exit(1);
    }
}

/// `println!` for command output: see [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use outln;

/// Prints `rows` as JSON (one array) or as a table with `headers`, one row per record.
pub fn print_list<T: Serialize>(
    format: OutputFormat,
    records: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    match format {
        OutputFormat::Json => print_json(records),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = records.iter().map(row).collect();
            write_stdout(format_args!("{}", table(headers, &rows)));
        }
    }
}

/// Prints any value as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        Err(err) => eprintln!("error: cannot print JSON: {err}"),
    }
}

/// Renders an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let render = |cells: Vec<&str>, out: &mut String| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    render(headers.to_vec(), &mut out);
    for row in rows {
        render(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// An optional value as a table cell.
pub fn cell<T: ToString>(value: Option<T>) -> String {
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "alice".into()],
                vec!["100".into(), "b".into()],
            ],
        );
        assert_eq!(text, "ID   NAME\n1    alice\n100  b\n");
    }
}
