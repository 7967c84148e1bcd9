//! Terminal-safe output through the real `idsync` binary: a user of each simulator whose
//! names hold an escape sequence (`ESC[2J ESC[31m`, clear screen and turn red) and a
//! right-to-left override (U+202E) is imported, then listed. Human output (tables, task
//! show, the import summary, text-mode logs) shows those characters escaped (`\u{1b}`);
//! `--output json` carries the exact strings.
//!
//! Duck Creek speaks XML 1.0, which cannot carry ESC or any C0 control at all (not even as
//! `&#x1b;`), so its hostile names hold the bidi override and an isolate only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    digicert, duckcreek_target, duckcreek_with, idsync_env, jama_target, jama_with, text, SIM_KEY,
};
use idsync_sim::{
    DcUserSpec, DuckCreekSeed, FaultEffect, FaultRule, JamaSeed, JamaUserSpec, SimControl, UserSpec,
};
use serde_json::Value;

/// Clears the screen and turns the text red, on a terminal that obeys.
const ESCAPES: &str = "\u{1b}[2J\u{1b}[31mEVIL";
/// `ESCAPES` as idsync shows it.
const ESCAPES_SHOWN: &str = "\\u{1b}[2J\\u{1b}[31mEVIL";
/// Reads as `Evilexe.png` on a terminal that obeys the override.
const OVERRIDE: &str = "Evil\u{202e}gnp.exe";
/// `OVERRIDE` as idsync shows it.
const OVERRIDE_SHOWN: &str = "Evil\\u{202e}gnp.exe";

/// Writes `DIR/idsync.toml`: a store in `dir`, logs in text format at `level`, then `rest`.
fn text_log_config(dir: &Path, level: &str, rest: &str) -> PathBuf {
    let path = dir.join("idsync.toml");
    let config = format!(
        "[store]\nurl = \"sqlite://{store}\"\n\n[log]\nlevel = \"{level}\"\nformat = \"text\"\n\n{rest}\n",
        store = dir.join("idsync.db").display(),
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// Fails if stdout or stderr of `output` holds a raw ESC, C1 CSI or bidi override.
fn assert_terminal_safe(what: &str, output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let shown = String::from_utf8_lossy(bytes);
        assert!(
            !bytes.contains(&0x1b),
            "{what}: raw ESC on {stream}:\n{shown}"
        );
        for raw in ['\u{202e}', '\u{2066}', '\u{9b}'] {
            assert!(
                !shown.contains(raw),
                "{what}: raw {raw:?} on {stream}:\n{shown}"
            );
        }
    }
}

/// Runs `idsync ARGS…`, expects exit 0 and terminal-safe output, returns stdout.
async fn human(config: &Path, args: &[&str]) -> String {
    let output = idsync_env(config, args, vec![("DIGICERT_API_KEY", SIM_KEY.into())]).await;
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
    assert_terminal_safe(&format!("{args:?}"), &output);
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `idsync --output json ARGS…`, expects exit 0, returns the parsed JSON.
async fn json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let output = idsync_env(config, &all, vec![("DIGICERT_API_KEY", SIM_KEY.into())]).await;
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The record of `list` whose `field` is `value`.
fn find<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|row| row[field] == value)
        .unwrap_or_else(|| panic!("no record with {field} = {value:?} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digicert_names_and_statuses_are_escaped_in_tables_summaries_and_text_logs() {
    let sim = digicert(3).await;
    let control = sim.control();
    let id = control
        .add_user(UserSpec {
            username: "evil.user".into(),
            first_name: ESCAPES.into(),
            last_name: OVERRIDE.into(),
            email: "evil.user@example.com".into(),
            job_title: None,
            telephone: None,
            container_id: None,
            access_roles: vec![5],
            status: Default::default(),
        })
        .unwrap();
    // Its status arrives as a value idsync does not know: the import tolerates it and its
    // WARN quotes the raw value (target data in a log line).
    control.set_user_status(id, "inactive").unwrap();
    control
        .fail_when(FaultRule::breaking(FaultEffect::Rewrite {
            find: r#""status":"inactive""#.into(),
            replace: r#""status":"\u001b[2J\u202eodd""#.into(),
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = text_log_config(
        dir.path(),
        "info",
        &format!(
            "[targets.digicert]\nkind = \"digicert\"\nbase_url = \"{}\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\n",
            sim.base_url()
        ),
    );

    let import = idsync_env(
        &config,
        &["import", "digicert"],
        vec![("DIGICERT_API_KEY", SIM_KEY.into())],
    )
    .await;
    assert_eq!(import.status.code(), Some(0), "{}", text(&import));
    assert_terminal_safe("import", &import);
    let log = String::from_utf8_lossy(&import.stderr);
    assert!(log.contains("WARN"), "the odd status is logged:\n{log}");
    assert!(log.contains("\\u{1b}[2J\\u{202e}odd"), "{log}");

    let table = human(&config, &["accounts", "list", "--target", "digicert"]).await;
    assert!(table.contains(ESCAPES_SHOWN), "{table}");
    assert!(table.contains(OVERRIDE_SHOWN), "{table}");
    human(&config, &["access", "list", "--target", "digicert"]).await;

    let accounts = json(&config, &["accounts", "list", "--target", "digicert"]).await;
    let evil = find(&accounts, "name", "evil.user");
    let display = evil["display_name"].as_str().unwrap();
    assert!(
        display.contains(ESCAPES) && display.contains(OVERRIDE),
        "{display:?}"
    );
    assert_eq!(evil["attributes"]["raw_status"], "\u{1b}[2J\u{202e}odd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jama_names_are_escaped_in_accounts_access_and_task_show_and_exact_in_json() {
    let sim = jama_with(JamaSeed::with_users(3), |_| {}).await;
    let control = sim.control();
    let login = format!("evil{ESCAPES}{OVERRIDE}");
    let evil = control
        .add_user(JamaUserSpec {
            username: login.clone(),
            first_name: ESCAPES.into(),
            last_name: OVERRIDE.into(),
            email: "evil@example.com".into(),
            phone: None,
            title: None,
            location: None,
            license_type: Default::default(),
            active: true,
        })
        .unwrap();
    let group_name = format!("Admins {ESCAPES} {OVERRIDE}");
    let group = control.add_group(group_name.clone(), "hostile", None);
    control.add_member(group, evil).unwrap();
    let clean = control
        .users()
        .into_iter()
        .find(|user| user.id != evil)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = text_log_config(dir.path(), "info", &jama_target(&sim, ""));
    // A dry run lists what it would create, with the target's names.
    let diff = human(&config, &["import", "jama", "--accounts", "--dry-run"]).await;
    assert!(diff.contains(ESCAPES_SHOWN), "{diff}");
    let summary = human(&config, &["import", "jama"]).await;
    assert!(summary.contains("run "), "{summary}");

    let accounts = human(&config, &["accounts", "list", "--target", "jama"]).await;
    let shown_login = format!("evil{ESCAPES_SHOWN}{OVERRIDE_SHOWN}");
    assert!(accounts.contains(&shown_login), "{accounts}");
    assert!(
        accounts.contains(&format!("{ESCAPES_SHOWN} {OVERRIDE_SHOWN}")),
        "{accounts}"
    );
    let access = human(&config, &["access", "list", "--target", "jama"]).await;
    let shown_group = format!("Admins {ESCAPES_SHOWN} {OVERRIDE_SHOWN}");
    let row = access
        .lines()
        .find(|line| line.contains(&shown_group))
        .unwrap_or_else(|| panic!("no grant of the hostile group:\n{access}"));
    assert!(row.contains(&shown_login), "{row}");

    // A task on a clean account for the hostile group, named by its id: the group's name
    // comes from the target, and task show prints it.
    let entitlement = format!("usergroup:{group}");
    let submitted = json(
        &config,
        &[
            "task",
            "submit",
            "--target",
            "jama",
            "--operation",
            "add_access",
            "--account",
            &clean.username,
            "--entitlement",
            &entitlement,
        ],
    )
    .await;
    let task_id = submitted["id"].as_i64().unwrap().to_string();
    let show = human(&config, &["task", "show", &task_id]).await;
    assert!(show.contains(&shown_group), "{show}");
    assert_eq!(show.lines().count(), 2, "one header, one row:\n{show}");

    let task = json(&config, &["task", "show", &task_id]).await;
    assert_eq!(task["entitlement"]["name"], group_name.as_str());
    let accounts = json(&config, &["accounts", "list", "--target", "jama"]).await;
    let account = find(&accounts, "id", &evil.to_string());
    assert_eq!(account["name"], login.as_str());
    let grants = json(&config, &["access", "list", "--target", "jama"]).await;
    let grant = find(&grants, "entitlement_id", &group.to_string());
    assert_eq!(grant["entitlement_name"], group_name.as_str());
    assert_eq!(grant["account"], login.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckcreek_bidi_names_are_escaped_in_accounts_and_access_and_exact_in_json() {
    let sim = duckcreek_with(DuckCreekSeed::with_users(3), |_| {}).await;
    let control = sim.control();
    let role = format!("Approver {OVERRIDE}\u{2066}x\u{2069}");
    control
        .add_role(role.clone(), "hostile", Vec::new())
        .unwrap();
    let full_name = format!("Mallory {OVERRIDE}");
    let mut spec = DcUserSpec::new("mallory", "mallory@example.com", full_name.clone());
    spec.roles = vec![role.clone()];
    control.add_user(spec).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = text_log_config(dir.path(), "info", &duckcreek_target(&sim, ""));
    human(&config, &["import", "duckcreek"]).await;

    let accounts = human(&config, &["accounts", "list", "--target", "duckcreek"]).await;
    assert!(
        accounts.contains(&format!("Mallory {OVERRIDE_SHOWN}")),
        "{accounts}"
    );
    let access = human(&config, &["access", "list", "--target", "duckcreek"]).await;
    let shown_role = format!("Approver {OVERRIDE_SHOWN}\\u{{2066}}x\\u{{2069}}");
    assert!(access.contains(&shown_role), "{access}");

    let accounts = json(&config, &["accounts", "list", "--target", "duckcreek"]).await;
    assert_eq!(
        find(&accounts, "name", "mallory")["display_name"],
        full_name.as_str()
    );
    let grants = json(&config, &["access", "list", "--target", "duckcreek"]).await;
    find(&grants, "entitlement_name", &role);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_lines_that_quote_a_hostile_name_are_escaped() {
    let sim = jama_with(JamaSeed::with_users(2), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = text_log_config(dir.path(), "warn", &jama_target(&sim, ""));
    let hostile = format!("x{ESCAPES}{OVERRIDE}");

    let unknown = idsync_env(&config, &["test-connection", &hostile], Vec::new()).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert_terminal_safe("test-connection", &unknown);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains(&format!(
            "error: unknown target `x{ESCAPES_SHOWN}{OVERRIDE_SHOWN}`"
        )),
        "{stderr}"
    );

    // Refused (no such account, or a name no target may hold): either way with exit 2
    // and an error line that cannot act on the terminal.
    let submit = idsync_env(
        &config,
        &[
            "task",
            "submit",
            "--target",
            "jama",
            "--operation",
            "disable_account",
            "--account",
            &hostile,
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(submit.status.code(), Some(2), "{}", text(&submit));
    assert_terminal_safe("task submit", &submit);
    assert!(String::from_utf8_lossy(&submit.stderr).contains("error: "));
}
