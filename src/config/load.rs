//! Loading the config file: parse the TOML, apply `IDSYNC__*` environment overrides,
//! deserialize entry by entry and validate, reporting every problem at once.

use std::ffi::OsString;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::env::{self, Override};
use super::{de, validate, Config, ConfigProblem, ConfigWarning, TargetRules};

/// A config that loaded and validated, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config.
    pub config: Config,
    /// Problems that do not stop idsync (e.g. a world-readable file holding a literal secret).
    pub warnings: Vec<ConfigWarning>,
}

/// Why a config could not be used: every problem found, at once.
///
/// `Display` gives a one-line summary; print each of [`problems`](Self::problems) (they
/// implement `Display` as `key = value: message`) to show the details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in config {source_name}", problems.len())]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub source_name: String,
    /// Every problem, sorted by key.
    pub problems: Vec<ConfigProblem>,
}

/// Loads, overrides from `IDSYNC__*` environment variables, and validates the config file,
/// applying the kind-specific `rules` of its targets (the adapters':
/// `connector::registry::AdapterRules`).
///
/// Secrets given as `{ env = "VAR" }` or `{ file = "PATH" }` are resolved to check that they
/// can be, and dropped again (`server.api_token` here; a target's by its kind's rules, which
/// know which secrets the kind reads). Warns when the file is readable by group or others and holds
/// a literal secret.
pub fn load(path: &Path, rules: &dyn TargetRules) -> Result<LoadedConfig, ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        source_name: source_name.clone(),
        problems: vec![ConfigProblem::new(
            "(file)",
            format!("cannot read {source_name}: {err}"),
        )],
    })?;
    let mut problems = Vec::new();
    let vars = override_vars(std::env::vars_os(), &mut problems);
    let mode = file_mode(path);
    load_inner(
        &text,
        &source_name,
        &vars,
        mode,
        problems,
        rules,
        crate::clock::now(),
    )
}

/// The `IDSYNC__*` variables among `vars`; each whose value is not UTF-8 is reported (by name:
/// the value may be a secret).
fn override_vars(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let name = name.to_string_lossy().into_owned();
        if !env::has_prefix(&name) {
            continue;
        }
        match value.into_string() {
            Ok(value) => found.push((name, value)),
            Err(_) => problems.push(ConfigProblem::new(name, "the value is not valid UTF-8")),
        }
    }
    found
}

/// Loads and validates a config from text, with explicit environment overrides (tests): the
/// process environment is not read for overrides (`{ env = "VAR" }` secrets still resolve from
/// it).
pub fn load_from_str(
    text: &str,
    source_name: &str,
    env: &[(String, String)],
    rules: &dyn TargetRules,
) -> Result<LoadedConfig, ConfigError> {
    load_inner(
        text,
        source_name,
        env,
        None,
        Vec::new(),
        rules,
        crate::clock::now(),
    )
}

/// The permission bits of the file, where the platform has them.
#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| meta.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<u32> {
    None
}

fn load_inner(
    text: &str,
    source_name: &str,
    env: &[(String, String)],
    file_mode: Option<u32>,
    mut problems: Vec<ConfigProblem>,
    rules: &dyn TargetRules,
    now: DateTime<Utc>,
) -> Result<LoadedConfig, ConfigError> {
    let fail = |mut problems: Vec<ConfigProblem>| {
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        ConfigError {
            source_name: source_name.to_string(),
            problems,
        }
    };
    let mut root: toml::Table = match toml::from_str(text) {
        Ok(root) => root,
        Err(err) => {
            problems.push(syntax_problem(text, &err));
            return Err(fail(problems));
        }
    };
    let overrides = env::apply(&mut root, env, &mut problems);
    let parsed = de::deserialize(root, &overrides, &mut problems);
    let mut found = Vec::new();
    validate::validate_with(&parsed.config, &parsed.declared, rules, now, &mut found);
    // A removed key holds a default, not the user's value: its problem is already reported.
    found.retain(|problem| {
        !parsed
            .removed
            .iter()
            .any(|key| is_at_or_under(&problem.key, key))
    });
    problems.append(&mut found);
    if !problems.is_empty() {
        for problem in &mut problems {
            note_override(problem, &overrides);
        }
        return Err(fail(problems));
    }
    let warnings = literal_secret_warnings(&parsed.config, &overrides, source_name, file_mode);
    Ok(LoadedConfig {
        config: parsed.config,
        warnings,
    })
}

/// A TOML syntax error, located by line and column. The parser's own rendering quotes the
/// offending line, which may hold a literal secret, so it is not used.
fn syntax_problem(text: &str, err: &toml::de::Error) -> ConfigProblem {
    let location = err.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        format!(" at line {line}, column {column}")
    });
    ConfigProblem::new(
        "(file)",
        format!(
            "TOML syntax error{}: {}",
            location.unwrap_or_default(),
            err.message().trim_end()
        ),
    )
}

/// Whether `key` is `base` or a key inside it (`base.x`, `base[0]`).
fn is_at_or_under(key: &str, base: &str) -> bool {
    key.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Says which environment variable set (part of) the key a problem is about.
fn note_override(problem: &mut ConfigProblem, overrides: &[Override]) {
    let related = overrides.iter().filter(|o| {
        let key = o.key();
        is_at_or_under(&key, &problem.key) || is_at_or_under(&problem.key, &key)
    });
    let vars: Vec<&str> = related.map(|o| o.var.as_str()).collect();
    if !vars.is_empty() {
        problem
            .message
            .push_str(&format!(" (set by {})", vars.join(", ")));
    }
}

/// Warns about each literal secret written in a file that group or others can read.
fn literal_secret_warnings(
    config: &Config,
    overrides: &[Override],
    source_name: &str,
    file_mode: Option<u32>,
) -> Vec<ConfigWarning> {
    let Some(mode) = file_mode.filter(|mode| mode & 0o044 != 0) else {
        return Vec::new();
    };
    config
        .secrets()
        .into_iter()
        .filter(|(key, spec)| spec.is_literal() && !overrides.iter().any(|o| &o.key() == key))
        .map(|(key, _)| ConfigWarning {
            message: format!(
                "holds a literal secret in {source_name}, which other users can read (mode \
                 {mode:o}); run `chmod 600 {source_name}`, or write {key} = {{ env = \"VAR\" }} \
                 or {{ file = \"PATH\" }}"
            ),
            key,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{find, problems, VALID};
    use crate::config::TargetConfig;
    use std::io::Write;

    /// The generic pass alone: the kind-specific rules belong to the adapters and are tested
    /// with them (`connector::registry`).
    struct GenericOnly;

    impl TargetRules for GenericOnly {
        fn check(&self, _name: &str, _target: &TargetConfig) -> Vec<ConfigProblem> {
            Vec::new()
        }
    }

    fn problems_of(text: &str) -> Vec<ConfigProblem> {
        problems_with_env(text, &[])
    }

    /// The problems of `text` under the generic rules (it must not load).
    fn problems_with_env(text: &str, env: &[(&str, &str)]) -> Vec<ConfigProblem> {
        let found = problems(text, env, &GenericOnly);
        assert!(!found.is_empty(), "expected problems, but it loaded");
        found
    }

    #[test]
    fn valid_config_loads() {
        let loaded = load_from_str(VALID, "test.toml", &[], &GenericOnly).unwrap();
        assert!(loaded.warnings.is_empty());
        assert!(!format!("{loaded:?}").contains("literal-key-for-tests"));
        assert_eq!(loaded.config.targets["digicert"].page_size, None);
        assert_eq!(
            loaded.config.jobs["digicert-accounts"].schedule,
            "0 */30 * * * *"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let text = VALID.replace("kind = \"digicert\"", "kind = \"digicert\"\npag_size = 5");
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let problem = find(&problems, "targets.digicert.pag_size");
        assert!(problem.message.starts_with("unknown key"), "{problem}");
        assert!(problem.message.contains("page_size"), "{problem}");
    }

    #[test]
    fn unknown_section_is_named() {
        let problems = problems_of(&format!("{VALID}\n[stroe]\nurl = \"x\"\n"));
        assert!(find(&problems, "stroe").message.contains("unknown section"));
    }

    #[test]
    fn every_broken_entry_is_reported_at_once() {
        let text = r#"
[targets.one]
kind = "digicert"
base_url = "https://one.example.com"
api_key = "k1"
page_size = "many"

[targets.two]
kind = "nosuchkind"
base_url = "https://two.example.com"

[targets.three]
kind = "digicert"
base_url = "https://three.example.com"
api_key = "k3"
timeout = "30"
max_concurrency = 0
bogus = 1

[jobs.j]
type = "account_import"
target = "one"
schedule = "*/5 * * * *"
"#;
        let problems = problems_of(text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "jobs.j.schedule",
                "targets.one.page_size",
                "targets.three.bogus",
                "targets.three.max_concurrency",
                "targets.three.timeout",
                "targets.two.kind",
            ],
            "{problems:#?}"
        );
        assert_eq!(
            find(&problems, "targets.one.page_size").value.as_deref(),
            Some("\"many\"")
        );
        assert!(find(&problems, "targets.two.kind")
            .message
            .contains("digicert"));
        assert!(find(&problems, "targets.three.timeout")
            .message
            .contains("\"30s\""));
        // What is left of a broken entry is still validated (max_concurrency), and a broken
        // target still counts as configured: the job is not told it is missing.
        assert!(!keys.contains(&"jobs.j.target"));
    }

    #[test]
    fn problems_print_key_value_and_message() {
        let text = VALID.replace("0 */30 * * * *", "*/30 * * * *");
        let err = load_from_str(&text, "test.toml", &[], &GenericOnly).unwrap_err();
        assert_eq!(err.to_string(), "1 problem(s) in config test.toml");
        assert_eq!(
            err.problems[0].to_string(),
            "jobs.digicert-accounts.schedule = \"*/30 * * * *\": has 5 field(s); write six \
             fields, seconds first, e.g. \"0 */30 * * * *\""
        );
    }

    #[test]
    fn never_firing_schedule_is_refused() {
        let problems = problems_of(&VALID.replace("0 */30 * * * *", "0 0 0 30 2 *"));
        let problem = find(&problems, "jobs.digicert-accounts.schedule");
        assert!(problem.message.contains("never fires"), "{problem}");
    }

    #[test]
    fn syntax_errors_do_not_quote_the_line() {
        let problems = problems_of("[server]\napi_token = \"s3cr3t-unterminated\n");
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn env_overrides_nested_keys() {
        let env: Vec<(String, String)> = [
            ("IDSYNC__TARGETS__DIGICERT__PAGE_SIZE", "500"),
            ("IDSYNC__TARGETS__DIGICERT__RATE_LIMIT__REQUESTS", "7"),
            ("IDSYNC__TARGETS__DIGICERT__RATE_LIMIT__PER", "2s"),
            (
                "IDSYNC__TARGETS__DIGICERT__DELETION_THRESHOLD__PERCENT",
                "12.5",
            ),
            ("IDSYNC__SERVER__LISTEN", "0.0.0.0:9000"),
            ("IDSYNC__LOG__LEVEL", "debug"),
            ("IDSYNC__SERVER__API_TOKEN", "12345"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = load_from_str(VALID, "test.toml", &env, &GenericOnly)
            .unwrap()
            .config;
        let target = &config.targets["digicert"];
        assert_eq!(target.page_size, Some(500));
        assert_eq!(
            target.rate_limit.as_ref().unwrap().windows(),
            [crate::config::RateLimit {
                requests: 7,
                per: crate::config::ConfigDuration::from_secs(2)
            }]
        );
        assert_eq!(target.deletion_threshold.percent, 12.5);
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.log.level, "debug");
        // A numeric-looking secret stays a string.
        assert!(config.server.api_token.as_ref().unwrap().is_literal());
    }

    /// Numeric- and boolean-looking override values stay exactly the string a string key needs;
    /// only a key that needs a number gets one.
    #[test]
    fn env_override_strings_are_typed_only_where_the_key_needs_it() {
        use secrecy::ExposeSecret;
        let text = r#"
[targets.jama]
kind = "jama"
base_url = "https://example.jamacloud.com"
client_id = "c"
client_secret = "s"

[targets.dc]
kind = "duckcreek"
base_url = "https://dc.example.com/Server/Server.asmx"
username = "u"
password = "p"
"#;
        let env: Vec<(String, String)> = [
            ("IDSYNC__TARGETS__JAMA__CLIENT_ID", "007"),
            ("IDSYNC__TARGETS__JAMA__CLIENT_SECRET", "12345"),
            ("IDSYNC__TARGETS__JAMA__PAGE_SIZE", "050"),
            ("IDSYNC__TARGETS__DC__USERNAME", "true"),
            ("IDSYNC__TARGETS__DC__PASSWORD", "nan"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = load_from_str(text, "test.toml", &env, &GenericOnly)
            .unwrap()
            .config;
        let jama = &config.targets["jama"];
        assert_eq!(jama.client_id.as_deref(), Some("007"));
        let secret = jama.client_secret.as_ref().unwrap().resolve().unwrap();
        assert_eq!(secret.expose_secret(), "12345");
        assert_eq!(jama.page_size, Some(50));
        let dc = &config.targets["dc"];
        assert_eq!(dc.username.as_deref(), Some("true"));
        let password = dc.password.as_ref().unwrap().resolve().unwrap();
        assert_eq!(password.expose_secret(), "nan");
    }

    /// A variable never silently replaces a value that is not a table, whatever the order the
    /// environment lists the variables in; an inline table replaces the whole key.
    #[test]
    fn env_overrides_below_a_non_table_are_refused() {
        let text = VALID.replace(
            "api_key = \"literal-key-for-tests\"",
            "api_key = \"k\"\nrate_limit = [{ requests = 1, per = \"1s\" }]",
        );
        let problems = problems_with_env(
            &text,
            &[
                ("IDSYNC__SERVER__API_TOKEN__FILE", "/x"),
                ("IDSYNC__TARGETS__DIGICERT__RATE_LIMIT__REQUESTS", "7"),
                ("IDSYNC__SERVER__API_TOKEN", "t"),
            ],
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
        let problem = find(&problems, "targets.digicert.rate_limit.requests");
        assert!(
            problem.message.contains(
                "cannot be set by IDSYNC__TARGETS__DIGICERT__RATE_LIMIT__REQUESTS: \
                 targets.digicert.rate_limit is not a table"
            ),
            "{problem}"
        );
        let problem = find(&problems, "server.api_token.file");
        assert!(
            problem.message.contains("server.api_token is not a table"),
            "{problem}"
        );
    }

    #[test]
    fn non_utf8_override_values_are_reported_by_name_only() {
        use std::os::unix::ffi::OsStringExt;
        let vars = [
            ("idsync__log__level", b"debug".to_vec()),
            ("IDSYNC__TARGETS__X__PASSWORD", b"s3cr3t\xff".to_vec()),
            ("IDSYNC_CONFIG", b"\xff".to_vec()),
            ("PATH", b"/bin".to_vec()),
        ]
        .map(|(name, value)| (OsString::from(name), OsString::from_vec(value)));
        let mut problems = Vec::new();
        let found = override_vars(vars, &mut problems);
        assert_eq!(
            found,
            [("idsync__log__level".to_string(), "debug".to_string())]
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "IDSYNC__TARGETS__X__PASSWORD");
        assert_eq!(problems[0].value, None);
        assert!(!format!("{problems:?}").contains("s3cr3t"), "{problems:?}");
    }

    fn write_config(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idsync.toml");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(VALID.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn readable_file_with_literal_secret_warns() {
        let (_dir, path) = write_config(0o644);
        let loaded = load(&path, &GenericOnly).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let warning = &loaded.warnings[0];
        assert_eq!(warning.key, "targets.digicert.api_key");
        assert!(warning.message.contains("chmod 600"), "{warning}");
        assert!(!warning.to_string().contains("literal-key-for-tests"));

        let (_dir, path) = write_config(0o600);
        assert!(load(&path, &GenericOnly).unwrap().warnings.is_empty());
    }

    #[test]
    fn unreadable_file_is_one_problem() {
        let err = load(Path::new("/nonexistent/idsync/idsync.toml"), &GenericOnly).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0]
            .message
            .contains("/nonexistent/idsync/idsync.toml"));
    }

    #[test]
    fn job_must_name_a_configured_target() {
        let problems = problems_of(&VALID.replace("target = \"digicert\"", "target = \"jama\""));
        let problem = find(&problems, "jobs.digicert-accounts.target");
        assert_eq!(problem.value.as_deref(), Some("\"jama\""));
        assert!(
            problem.message.contains("configured targets: digicert"),
            "{problem}"
        );

        let problems = problems_of(&VALID.replace("target = \"digicert\"\n", ""));
        assert!(find(&problems, "jobs.digicert-accounts.target")
            .message
            .contains("required"));
    }

    #[test]
    fn provisioning_job_is_accepted_with_or_without_target() {
        let text = format!(
            "{VALID}\n[jobs.wsretry]\ntype = \"provisioning\"\nschedule = \"0 * * * * *\"\n"
        );
        load_from_str(&text, "test.toml", &[], &GenericOnly).unwrap();
        let text = format!(
            "{VALID}\n[jobs.wsretry]\ntype = \"provisioning\"\ntarget = \"nope\"\nschedule = \"0 * * * * *\"\n"
        );
        let problems = problems_of(&text);
        assert!(find(&problems, "jobs.wsretry.target")
            .message
            .contains("names no configured target"));
    }

    #[test]
    fn incremental_mode_only_on_imports() {
        let text = VALID.replace(
            "target = \"digicert\"\n",
            "target = \"digicert\"\nmode = \"incremental\"\n",
        );
        load_from_str(&text, "test.toml", &[], &GenericOnly).unwrap();
        let text = format!(
            "{VALID}\n[jobs.p]\ntype = \"provisioning\"\nschedule = \"0 * * * * *\"\nmode = \"incremental\"\n"
        );
        let problems = problems_of(&text);
        assert!(find(&problems, "jobs.p.mode")
            .message
            .contains("account_import"));
    }

    #[test]
    fn malformed_rate_limit_names_the_window() {
        let text = VALID.replace(
            "api_key = \"literal-key-for-tests\"",
            "api_key = \"k\"\nrate_limit = [{ requests = 1, per = \"1s\" }, { requests = 2, pre = \"1s\" }]",
        );
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        find(&problems, "targets.digicert.rate_limit[1].pre");
    }

    #[test]
    fn secret_keys_cover_every_secret_field() {
        let config = load_from_str(
            &VALID.replace(
                "[targets.digicert]",
                "[server]\napi_token = \"t\"\n\n[targets.jama]\nkind = \"jama\"\n\
                 base_url = \"https://example.jamacloud.com\"\nclient_id = \"c\"\n\
                 client_secret = \"s\"\n\n[targets.digicert]",
            ),
            "test.toml",
            &[],
            &GenericOnly,
        )
        .unwrap()
        .config;
        let secrets = config.secrets();
        assert_eq!(secrets.len(), 3);
        assert!(
            secrets
                .iter()
                .any(|(key, _)| key == "targets.jama.client_secret"),
            "{secrets:?}"
        );
        for (key, _) in secrets {
            let field = key.rsplit('.').next().unwrap();
            assert!(
                de::is_secret_key(field),
                "{key} is missing from SECRET_KEYS"
            );
        }
    }
}
