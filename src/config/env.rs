//! `IDSYNC__SECTION__KEY` environment overrides, merged into the parsed file before it is
//! deserialized.
//!
//! A variable's name below the prefix is split at `__` and lower-cased, so
//! `IDSYNC__TARGETS__DIGICERT__PAGE_SIZE` sets `targets.digicert.page_size` (names with `-`
//! cannot be addressed). A value starting with `{` or `[` is read as a TOML inline table or
//! array (`IDSYNC__TARGETS__DIGICERT__API_KEY='{ file = "/run/key" }'`); any other value is a
//! string, which deserialization turns into a number or a boolean where the key needs one.
//!
//! Why not the `config` crate (0.15, tried against it): its `Environment` source would lose
//! precision the loader promises. It retypes every value or none (`try_parsing` makes a
//! password `"007"` the number 7 and `"nan"` a float); it keeps `{ file = "…" }` a string; it
//! silently replaces a string or an array with a table when a variable sets a key below it
//! (no "is not a table"); it files a bad name (`IDSYNC__TARGETS____X`) as the top-level key
//! `targets..x`; it stops at a non-UTF-8 value with a message quoting it; overlapping
//! variables apply in hash order; and nothing in its merged tree says which variable set a
//! key. Its TOML errors quote the line and datetimes come out as strings. Working around all
//! of that would leave it only the merge below, so it is not used.

use toml::{Table, Value};

use super::de::is_secret_key;
use super::ConfigProblem;

/// The prefix of every override variable.
const PREFIX: &str = "IDSYNC__";

/// One key set from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Override {
    /// The key's path, e.g. `["targets", "digicert", "page_size"]`.
    pub path: Vec<String>,
    /// The variable that set it.
    pub var: String,
}

impl Override {
    /// The dotted key, e.g. `targets.digicert.page_size`.
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

/// Applies every `IDSYNC__*` variable in `env` (others are ignored) to `root`, in name order.
/// Returns the keys it set; reports variables that cannot be applied.
pub(super) fn apply(
    root: &mut Table,
    env: &[(String, String)],
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Override> {
    let mut vars: Vec<&(String, String)> =
        env.iter().filter(|(name, _)| has_prefix(name)).collect();
    vars.sort();
    let mut applied = Vec::new();
    for (var, text) in vars {
        match apply_one(root, var, text) {
            Ok(path) => applied.push(Override {
                path,
                var: var.clone(),
            }),
            Err(problem) => problems.push(problem),
        }
    }
    applied
}

/// Whether `name` is an override variable (the prefix is matched case-insensitively).
pub(super) fn has_prefix(name: &str) -> bool {
    name.get(..PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(PREFIX))
}

fn apply_one(root: &mut Table, var: &str, text: &str) -> Result<Vec<String>, ConfigProblem> {
    let rest = var.get(PREFIX.len()..).unwrap_or_default();
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigProblem::new(
            var,
            "is not a valid override: write IDSYNC__SECTION__KEY, with levels separated by a \
             double underscore, e.g. IDSYNC__TARGETS__DIGICERT__PAGE_SIZE",
        ));
    }
    let secret = path.iter().any(|key| is_secret_key(key));
    let value = parse_value(text).map_err(|message| {
        let problem = ConfigProblem::new(path.join("."), format!("{message} (set by {var})"));
        if secret {
            problem
        } else {
            problem.with_value(Value::String(text.to_string()).to_string())
        }
    })?;

    let (last, parents) = path
        .split_last()
        .ok_or_else(|| ConfigProblem::new(var, "is empty"))?;
    let mut table = root;
    for (depth, key) in parents.iter().enumerate() {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(inner) => inner,
            _ => {
                let parent = parents.get(..=depth).unwrap_or_default().join(".");
                return Err(ConfigProblem::new(
                    path.join("."),
                    format!("cannot be set by {var}: {parent} is not a table"),
                ));
            }
        };
    }
    table.insert(last.clone(), value);
    Ok(path)
}

/// An override's value: an inline table or array when it looks like one, else a string.
fn parse_value(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Ok(Value::String(text.to_string()));
    }
    // The parser's own message may quote the text, which may be a secret: keep it generic.
    toml::from_str::<Table>(&format!("value = {text}"))
        .ok()
        .and_then(|mut table| table.remove("value"))
        .ok_or_else(|| "is not a valid TOML inline table or array".to_string())
}

/// Where an override set a string that deserialization wanted as a number or a boolean,
/// converts it. `entry` is the value at `entry_path`; only keys at or below `under` (a full
/// path inside the entry) are looked at. Returns whether anything changed (then
/// deserialization is worth retrying).
pub(super) fn retype_strings(
    entry: &mut Value,
    entry_path: &[String],
    under: &[String],
    overrides: &[Override],
) -> bool {
    let mut changed = false;
    for path in overrides
        .iter()
        .map(|o| &o.path)
        .filter(|path| path.starts_with(under))
    {
        let Some(inner) = path.get(entry_path.len()..) else {
            continue;
        };
        let slot = inner
            .iter()
            .try_fold(&mut *entry, |value, key| value.get_mut(key.as_str()));
        if let Some(slot) = slot {
            if let Some(typed) = slot.as_str().and_then(scalar) {
                *slot = typed;
                changed = true;
            }
        }
    }
    changed
}

/// A string that spells an integer, a float or a boolean, as that value.
fn scalar(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::Integer(int));
    }
    if let Ok(float) = text.parse::<f64>() {
        return Some(Value::Float(float));
    }
    text.parse::<bool>().ok().map(Value::Boolean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nested_keys_are_created_and_replaced() {
        let mut root: Table = toml::from_str("[targets.digicert]\npage_size = 100").unwrap();
        let mut problems = Vec::new();
        let applied = apply(
            &mut root,
            &env(&[
                ("IDSYNC__TARGETS__DIGICERT__PAGE_SIZE", "500"),
                ("IDSYNC__SERVER__LISTEN", "0.0.0.0:9000"),
                ("IDSYNC_CONFIG", "/etc/idsync.toml"),
                ("PATH", "/bin"),
            ]),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(applied.len(), 2);
        assert_eq!(
            root["targets"]["digicert"]["page_size"].as_str(),
            Some("500")
        );
        assert_eq!(root["server"]["listen"].as_str(), Some("0.0.0.0:9000"));
    }

    #[test]
    fn inline_tables_are_parsed() {
        let mut root = Table::new();
        let mut problems = Vec::new();
        apply(
            &mut root,
            &env(&[("IDSYNC__SERVER__API_TOKEN", "{ env = \"TOKEN_VAR\" }")]),
            &mut problems,
        );
        assert_eq!(
            root["server"]["api_token"]["env"].as_str(),
            Some("TOKEN_VAR")
        );
    }

    #[test]
    fn bad_names_and_non_tables_are_reported() {
        let mut root: Table = toml::from_str("[log]\nlevel = \"info\"").unwrap();
        let mut problems = Vec::new();
        apply(
            &mut root,
            &env(&[("IDSYNC__LOG____X", "1"), ("IDSYNC__LOG__LEVEL__X", "1")]),
            &mut problems,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let message = |key: &str| &problems.iter().find(|p| p.key == key).unwrap().message;
        assert!(
            message("IDSYNC__LOG____X").contains("double underscore"),
            "{problems:?}"
        );
        assert!(
            message("log.level.x").contains("log.level is not a table"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_broken_inline_secret_is_not_echoed() {
        let mut root = Table::new();
        let mut problems = Vec::new();
        apply(
            &mut root,
            &env(&[("IDSYNC__TARGETS__X__API_KEY", "{ s3cr3t-inline")]),
            &mut problems,
        );
        let text = format!("{problems:?} {}", problems[0]);
        assert!(!text.contains("s3cr3t-inline"), "{text}");
        assert!(text.contains("IDSYNC__TARGETS__X__API_KEY"), "{text}");
    }

    #[test]
    fn the_prefix_is_matched_in_any_case() {
        let mut root = Table::new();
        let mut problems = Vec::new();
        let applied = apply(
            &mut root,
            &env(&[
                ("idsync__log__level", "debug"),
                ("IdSync__Server__Listen", "0.0.0.0:9000"),
                ("IDSYNC_LOG__FORMAT", "json"),
            ]),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(root["log"]["level"].as_str(), Some("debug"));
        assert_eq!(root["server"]["listen"].as_str(), Some("0.0.0.0:9000"));
        assert!(root["log"].get("format").is_none());
        assert_eq!(applied.len(), 2);
        assert!(applied.iter().any(|o| o.var == "IdSync__Server__Listen"));
    }

    #[test]
    fn scalars_are_typed_on_demand() {
        assert_eq!(scalar("500"), Some(Value::Integer(500)));
        assert_eq!(scalar("12.5"), Some(Value::Float(12.5)));
        assert_eq!(scalar("true"), Some(Value::Boolean(true)));
        assert_eq!(scalar("info"), None);
    }
}
