//! Deserializing the merged file section by section and entry by entry, so that one broken
//! `[targets.NAME]` does not hide the problems of the others.
//!
//! serde stops at the first error of a value. Within an entry, each error is reported and
//! the offending key removed, and the entry is deserialized again, so that several unknown or
//! mistyped keys of one target are reported together too. What is left of the entry is still
//! validated; problems the validation finds at a removed key are dropped by the caller
//! ([`Parsed::removed`]), since the key's value was not the user's.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::env::{retype_strings, Override};
use super::validate::Declared;
use super::{Config, ConfigProblem, LogConfig, RateLimit, ServerConfig, StoreConfig};

/// Keys that hold a secret, wherever they appear. A problem under one of them never shows the
/// value or serde's message (which may quote it). Every field returned by
/// [`TargetConfig::secrets`](super::TargetConfig::secrets) must be here (a test checks).
const SECRET_KEYS: &[&str] = &["api_key", "api_token", "client_secret", "password", "token"];

/// What a secret field accepts.
const SECRET_SHAPE: &str =
    "must be a string, { env = \"VAR\" } or { file = \"PATH\" } (and nothing else)";

/// How many errors one entry may report before the rest are left for the next run.
const MAX_ERRORS_PER_ENTRY: usize = 64;

/// Longest value shown in a problem.
const MAX_VALUE_CHARS: usize = 120;

/// Whether a key holds a secret.
pub(super) fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// The config as far as it deserialized, with every declared name and the keys removed for
/// being wrong (their defaults stand in). An entry that cannot be read at all (e.g. a required
/// key is missing) is left out; a section keeps its defaults.
pub(super) struct Parsed {
    /// The config.
    pub config: Config,
    /// Every target and job name the file declares, including entries left out.
    pub declared: Declared,
    /// Dotted keys removed for being wrong (their problems are reported).
    pub removed: Vec<String>,
}

/// Deserializes `root` (the file with overrides applied), reporting every problem.
pub(super) fn deserialize(
    root: Table,
    overrides: &[Override],
    problems: &mut Vec<ConfigProblem>,
) -> Parsed {
    let mut ctx = Ctx {
        overrides,
        problems,
        removed: Vec::new(),
    };
    let mut config = Config {
        store: StoreConfig::default(),
        server: ServerConfig::default(),
        log: LogConfig::default(),
        targets: BTreeMap::new(),
        jobs: BTreeMap::new(),
    };
    let mut declared = Declared::default();
    for (section, value) in root {
        match section.as_str() {
            "store" => config.store = ctx.entry(&[section], value).unwrap_or(config.store),
            "server" => config.server = ctx.entry(&[section], value).unwrap_or(config.server),
            "log" => config.log = ctx.entry(&[section], value).unwrap_or(config.log),
            "targets" => config.targets = ctx.entries(&section, value, &mut declared.targets),
            "jobs" => config.jobs = ctx.entries(&section, value, &mut declared.jobs),
            _ => ctx.problems.push(ConfigProblem::new(
                section,
                "unknown section; expected one of store, server, log, targets, jobs",
            )),
        }
    }
    Parsed {
        config,
        declared,
        removed: ctx.removed,
    }
}

/// One step of a path inside a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key: `targets.digicert.rate_limit[0].per`.
fn render_key(segs: &[Seg]) -> String {
    let mut key = String::new();
    for seg in segs {
        match seg {
            Seg::Key(name) if key.is_empty() => key.push_str(name),
            Seg::Key(name) => {
                key.push('.');
                key.push_str(name);
            }
            Seg::Index(index) => key.push_str(&format!("[{index}]")),
        }
    }
    key
}

fn from_path(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Unknown => None,
        })
        .collect()
}

fn value_at<'v>(value: &'v Value, segs: &[Seg]) -> Option<&'v Value> {
    segs.iter().try_fold(value, |value, seg| match seg {
        Seg::Key(key) => value.get(key.as_str()),
        Seg::Index(index) => value.get(*index),
    })
}

/// Removes the key at `segs` (for a path into an array, the whole array) and returns the
/// keys of what it removed, or `None` when there is nothing to remove (the entry itself is
/// wrong).
fn remove_at(value: &mut Value, segs: &[Seg]) -> Option<Vec<String>> {
    let keys = keys_of(segs);
    let (last, parents) = keys.split_last()?;
    let parent = parents
        .iter()
        .try_fold(value, |value, key| value.get_mut(key.as_str()))?;
    parent.as_table_mut()?.remove(last.as_str())?;
    Some(keys)
}

/// A value as the file would spell it, shortened.
fn render_value(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text,
    }
}

struct Ctx<'a> {
    overrides: &'a [Override],
    problems: &'a mut Vec<ConfigProblem>,
    removed: Vec<String>,
}

impl Ctx<'_> {
    /// Deserializes each `[section.NAME]` on its own, recording every name.
    fn entries<T: DeserializeOwned>(
        &mut self,
        section: &str,
        value: Value,
        names: &mut BTreeSet<String>,
    ) -> BTreeMap<String, T> {
        let Value::Table(table) = value else {
            self.problems.push(
                ConfigProblem::new(
                    section,
                    format!("must be a table of [{section}.NAME] sections"),
                )
                .with_value(render_value(&value)),
            );
            return BTreeMap::new();
        };
        let mut parsed = BTreeMap::new();
        for (name, value) in table {
            names.insert(name.clone());
            if let Some(entry) = self.entry(&[section.to_string(), name.clone()], value) {
                parsed.insert(name, entry);
            }
        }
        parsed
    }

    /// Deserializes the value at `path`, reporting each error and removing its key until the
    /// rest deserializes; `None` when nothing usable is left (e.g. a required key is missing).
    fn entry<T: DeserializeOwned>(&mut self, path: &[String], mut value: Value) -> Option<T> {
        let base: Vec<Seg> = path.iter().cloned().map(Seg::Key).collect();
        for _ in 0..MAX_ERRORS_PER_ENTRY {
            let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(parsed) => return Some(parsed),
                Err(err) => err,
            };
            let rel = from_path(err.path());
            let message = err.inner().message();
            let full = [base.as_slice(), rel.as_slice()].concat();

            // An override's string where a number or a boolean belongs: type it and retry.
            let type_error = message.starts_with("invalid type: string")
                || message.contains("did not match any variant");
            if type_error && retype_strings(&mut value, path, &keys_of(&full), self.overrides) {
                continue;
            }
            if let Some(field) = missing_field(message) {
                let missing = format!("{}.{field}", render_key(&full));
                // A required key removed above for being wrong is not missing as well.
                if !self.removed.contains(&missing) {
                    self.problems
                        .push(ConfigProblem::new(missing, "is required but missing"));
                }
                return None;
            }
            if let Some(problem) = self.describe(&full, value_at(&value, &rel), message) {
                self.problems.push(problem);
            }
            let gone = remove_at(&mut value, &rel)?;
            self.removed
                .push([path, gone.as_slice()].concat().join("."));
        }
        None
    }

    /// The problem behind one deserialization error at `full` (holding `value`, when there is
    /// one), or `None` when it has been reported in more detail already.
    fn describe(
        &mut self,
        full: &[Seg],
        value: Option<&Value>,
        message: &str,
    ) -> Option<ConfigProblem> {
        let key = render_key(full);
        if let Some(rest) = message.strip_prefix("unknown field ") {
            // Never the value: a misspelt secret key still holds a secret.
            return Some(ConfigProblem::new(
                key,
                match rest.split_once(", ") {
                    Some((_, expected)) => format!("unknown key ({expected})"),
                    None => "unknown key".to_string(),
                },
            ));
        }
        if full
            .iter()
            .any(|seg| matches!(seg, Seg::Key(name) if is_secret_key(name)))
        {
            return Some(ConfigProblem::new(key, SECRET_SHAPE));
        }
        let message = if message.contains("untagged enum RateLimits") {
            // The untagged enum hides which window is wrong: look inside for the detail.
            let before = self.problems.len();
            match value {
                Some(table @ Value::Table(_)) => {
                    self.entry::<RateLimit>(&keys_of(full), table.clone());
                }
                Some(list @ Value::Array(_)) => {
                    self.entry::<Vec<RateLimit>>(&keys_of(full), list.clone());
                }
                _ => {}
            }
            if self.problems.len() > before {
                return None;
            }
            "must be { requests = N, per = \"5s\" }, a list of them, or [] for no pacing"
                .to_string()
        } else if full.last() == Some(&Seg::Key("base_url".to_string())) {
            format!("is not an absolute URL ({message}); write e.g. \"https://host/path\"")
        } else {
            message.to_string()
        };
        let problem = ConfigProblem::new(key, message);
        Some(match value {
            Some(value) => problem.with_value(render_value(value)),
            None => problem,
        })
    }
}

/// The plain keys of a path (a path through an array index has none past it).
fn keys_of(segs: &[Seg]) -> Vec<String> {
    segs.iter()
        .map_while(|seg| match seg {
            Seg::Key(key) => Some(key.clone()),
            Seg::Index(_) => None,
        })
        .collect()
}

/// The field named by serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}
