//! Reading an adapter's settings from a target's config, collecting every problem (keyed
//! relative to the target) instead of stopping at the first.

use std::ops::RangeInclusive;

use secrecy::SecretString;

use super::adapter::Adapter;
use crate::config::{ConfigProblem, SecretSpec, TargetConfig};
use crate::connector::template::{TemplateError, TemplateSet};

/// An adapter's own settings of one target: the kind-specific keys it reads, read and
/// checked (secrets resolved).
pub trait Settings: Sized {
    /// The kind-specific keys of `[targets.NAME]` the adapter reads (see
    /// [`TargetConfig::kind_specific_keys`]); the registry refuses the others on its targets.
    const KEYS: &'static [&'static str];

    /// The `page_size` values the adapter accepts.
    const PAGE_SIZES: RangeInclusive<u32>;

    /// Records per page when `page_size` is unset.
    const DEFAULT_PAGE_SIZE: u32;

    /// Reads and checks the adapter's own keys of `target`: every problem at once, keyed
    /// relative to the target.
    fn read(target: &TargetConfig) -> Result<Self, Vec<ConfigProblem>>;
}

/// The settings every adapter has: the page size and the compiled templates.
#[derive(Debug)]
pub struct Common {
    /// Records per page.
    pub page_size: u32,
    /// The target's templates over the adapter's built-in ones, compiled and checked.
    pub templates: TemplateSet,
}

/// Reads the settings of target `name` for adapter `A`, its own and the common ones: every
/// problem of both at once.
pub fn read<A: Adapter>(
    name: &str,
    target: &TargetConfig,
) -> Result<(A::Settings, Common), Vec<ConfigProblem>> {
    let mut problems = Problems::default();
    let own = problems.take_all(A::Settings::read(target));
    let page_size = problems.take(page_size(
        target,
        A::Settings::PAGE_SIZES,
        A::Settings::DEFAULT_PAGE_SIZE,
    ));
    let templates = problems.take_all(templates::<A>(name, target));
    let read = match (own, page_size, templates) {
        (Some(own), Some(page_size), Some(templates)) => Some((
            own,
            Common {
                page_size,
                templates,
            },
        )),
        _ => None,
    };
    problems.finish(read)
}

/// The problems found while reading one target's settings.
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<ConfigProblem>,
}

impl Problems {
    /// Records a problem at `key` (relative to the target); `value` is shown quoted (never
    /// pass a secret).
    pub fn add(&mut self, key: &str, value: Option<&str>, message: impl Into<String>) {
        let problem = ConfigProblem::new(key, message);
        self.found.push(match value {
            Some(value) => problem.with_quoted(value),
            None => problem,
        });
    }

    /// Records a problem built elsewhere (e.g. [`required`]).
    pub fn push(&mut self, problem: ConfigProblem) {
        self.found.push(problem);
    }

    /// The value of a step that may fail, or `None` with its problem recorded.
    pub fn take<T>(&mut self, step: Result<T, ConfigProblem>) -> Option<T> {
        step.map_err(|problem| self.found.push(problem)).ok()
    }

    /// The value of a step that may fail with several problems, or `None` with them recorded.
    pub fn take_all<T>(&mut self, step: Result<T, Vec<ConfigProblem>>) -> Option<T> {
        step.map_err(|problems| self.found.extend(problems)).ok()
    }

    /// `settings` when no problem was found (and every step gave its value), else every
    /// problem.
    pub fn finish<T>(self, settings: Option<T>) -> Result<T, Vec<ConfigProblem>> {
        match settings {
            Some(settings) if self.found.is_empty() => Ok(settings),
            _ => Err(self.found),
        }
    }
}

/// The secret at `key`, resolved. Unset: "is required for kind = …; `how`" (`how` says what
/// to write). Unresolvable: the resolver's message, which names the variable or the file,
/// never the value.
pub fn required_secret(
    target: &TargetConfig,
    key: &str,
    spec: Option<&SecretSpec>,
    how: &str,
) -> Result<SecretString, ConfigProblem> {
    let spec = spec.ok_or_else(|| required(target, key, how))?;
    spec.resolve()
        .map_err(|err| ConfigProblem::new(key, err.to_string()))
}

/// The problem of a required key that is unset: "is required for kind = …; `how`".
pub fn required(target: &TargetConfig, key: &str, how: &str) -> ConfigProblem {
    ConfigProblem::new(
        key,
        format!("is required for kind = \"{}\"; {how}", target.kind.as_str()),
    )
}

/// The target's `page_size`, which must lie in `range`; unset: `default`.
fn page_size(
    target: &TargetConfig,
    range: RangeInclusive<u32>,
    default: u32,
) -> Result<u32, ConfigProblem> {
    match target.page_size {
        None => Ok(default),
        Some(size) if range.contains(&size) => Ok(size),
        Some(size) => Err(ConfigProblem::new(
            "page_size",
            format!(
                "must be between {} and {} for kind = \"{}\" (or unset for the adapter's \
                 default)",
                range.start(),
                range.end(),
                target.kind.as_str()
            ),
        )
        .with_value(size.to_string())),
    }
}

/// The templates of target `name` (`A`'s catalogue with the target's `templates` over it),
/// compiled and rendered against the sample context; once all render, the adapter's own
/// [`check_templates`](Adapter::check_templates). Every problem, keyed `templates.KEY`.
fn templates<A: Adapter>(
    name: &str,
    target: &TargetConfig,
) -> Result<TemplateSet, Vec<ConfigProblem>> {
    let set = TemplateSet::from_catalog(name, &A::TEMPLATES, &target.templates)
        .map_err(|errors| relative(name, errors))?;
    let mut errors = set.check();
    if errors.is_empty() {
        errors = A::check_templates(&set);
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(relative(name, errors))
    }
}

/// Template errors as problems keyed relative to target `name`.
fn relative(name: &str, errors: Vec<TemplateError>) -> Vec<ConfigProblem> {
    let prefix = format!("targets.{name}.");
    errors
        .into_iter()
        .map(|err| {
            let key = err
                .key
                .strip_prefix(&prefix)
                .unwrap_or(&err.key)
                .to_string();
            ConfigProblem::new(key, err.message)
        })
        .collect()
}
