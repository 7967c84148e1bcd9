//! Printing records as aligned tables or JSON, to a stdout that may close early.
//!
//! Human output is terminal-safe: every table cell and every line printed with [`outln!`]
//! or [`errln!`] goes through [`crate::visible`], so a control or bidi character from stored
//! data (a target user's display name, a target's error message) shows as `\u{1b}` instead
//! of acting on the terminal. JSON output is printed exact, with JSON's own escaping.

use std::io::{ErrorKind, Write};

use serde::Serialize;

use super::args::OutputFormat;
use crate::visible::escape;

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

/// `println!` for human-readable command output: one line, with every control and bidi
/// character (a newline too) escaped by [`crate::visible`]; see [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!(
            "{}\n",
            $crate::visible::Visible(format_args!($($arg)*))
        ))
    };
}

/// `eprintln!` for error and warning lines, which may quote target messages and names:
/// one line, escaped like [`outln!`].
macro_rules! errln {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::visible::Visible(format_args!($($arg)*)))
    };
}

pub(crate) use errln;
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
        // Exact: JSON escapes what it must, and a reader parses the rest as data.
        Ok(text) => write_stdout(format_args!("{text}\n")),
        Err(err) => errln!("error: cannot print JSON: {err}"),
    }
}

/// Renders an aligned text table, every cell escaped by [`crate::visible`] (so a row stays
/// one line and no cell acts on the terminal).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| escape(h).into_owned()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
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
    render(headers.iter().map(String::as_str).collect(), &mut out);
    for row in &rows {
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

    #[test]
    fn table_cells_are_escaped_and_aligned_on_the_escaped_text() {
        let text = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "\u{1b}[2JEVIL\u{202e}".into()],
                vec!["2".into(), "two\nlines\tx".into()],
                vec!["3".into(), "Zoë 山田 🙂".into()],
            ],
        );
        assert_eq!(
            text,
            "ID  NAME\n\
             1   \\u{1b}[2JEVIL\\u{202e}\n\
             2   two\\u{a}lines\\u{9}x\n\
             3   Zoë 山田 🙂\n"
        );
        assert_eq!(text.lines().count(), 4);
    }
}
