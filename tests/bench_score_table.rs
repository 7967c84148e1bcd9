//! The score bench's table and target verdicts (`benches/common/score_table.rs`): the bench
//! itself runs for minutes, so its formatting and arithmetic are checked here.

#[path = "../benches/common/score_table.rs"]
mod score_table;

use score_table::{cell, table, ScoreRow, TargetCheck, HEADERS};

fn import_row() -> ScoreRow {
    ScoreRow {
        workload: "digicert accounts 100k: import, empty store".into(),
        records: 100_000,
        wall_secs: 4.0,
        requests: Some(101),
        peak_rss_kib: Some(31 * 1024),
        store_bytes: Some(50_000_000),
        records_held: Some(100_000),
        rows_written: Some(100_000),
        ratio_to_script: Some(1.25),
        ratio_to_bare: Some(40.0),
        note: None,
    }
}

#[test]
fn derived_figures_divide_what_was_measured() {
    let row = import_row();
    assert_eq!(row.records_per_sec(), 25_000.0);
    assert_eq!(row.requests_per_record(), Some(0.00101));
    assert_eq!(row.store_bytes_per_record(), Some(500.0));
    assert_eq!(row.peak_rss_mib(), Some(31.0));
}

#[test]
fn missing_or_zero_inputs_give_no_figure_instead_of_a_division_by_zero() {
    let row = ScoreRow::new("nothing measured");
    assert_eq!(row.records_per_sec(), 0.0);
    assert_eq!(row.requests_per_record(), None);
    assert_eq!(row.store_bytes_per_record(), None);
    let held_none = ScoreRow {
        store_bytes: Some(10),
        records_held: Some(0),
        ..ScoreRow::new("empty store")
    };
    assert_eq!(held_none.store_bytes_per_record(), None);
    assert_eq!(cell(None, 2), "-");
    assert_eq!(cell(Some(0.125), 2), "0.12");
}

#[test]
fn the_table_has_a_header_a_rule_and_one_aligned_line_per_row() {
    let mut skipped = ScoreRow::new("naive script");
    skipped.note = Some("skipped: python3 not found".into());
    let text = table(&[import_row(), skipped]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for header in HEADERS {
        assert!(lines[0].contains(header), "no {header} in {}", lines[0]);
    }
    // Every line has the same width and the same number of cells.
    let width = lines[0].chars().count();
    assert!(
        lines.iter().all(|line| line.chars().count() == width),
        "{text}"
    );
    assert!(lines
        .iter()
        .all(|line| line.matches(" | ").count() == HEADERS.len() - 1 || line.starts_with("|-")));
    // The rule right-aligns the number columns (Markdown `---:`).
    assert!(lines[1].contains(":"), "{}", lines[1]);
    // Figures as measured, and `-` where nothing was.
    assert!(lines[2].contains("25000"), "{}", lines[2]);
    assert!(lines[2].contains("1.25"), "{}", lines[2]);
    assert!(lines[2].contains(" 500 "), "{}", lines[2]);
    assert!(
        lines[3].contains("skipped: python3 not found"),
        "{}",
        lines[3]
    );
    assert!(lines[3].contains(" - "), "{}", lines[3]);
}

#[test]
fn a_check_passes_on_its_side_of_the_limit_and_fails_on_the_other() {
    let at_most = |figure| TargetCheck::compare("no-op <= 0.15x", Some(figure), 0.15, true, "x");
    assert_eq!(at_most(0.15).pass, Some(true));
    assert_eq!(at_most(0.16).pass, Some(false));
    let at_least = |figure| TargetCheck::compare("tasks/s", Some(figure), 1000.0, false, "");
    assert_eq!(at_least(1000.0).pass, Some(true));
    assert_eq!(at_least(419.0).pass, Some(false));
    assert!(at_least(419.0)
        .line()
        .starts_with("FAIL: tasks/s (reached 419.00"));
    assert!(at_most(0.1).line().starts_with("PASS: "));
}

#[test]
fn a_check_without_a_figure_is_skipped_not_passed() {
    let check = TargetCheck::compare("x script", None, 0.3, true, "x");
    assert_eq!(check.pass, None);
    assert_eq!(check.line(), "SKIP: x script (reached not measured)");
}
