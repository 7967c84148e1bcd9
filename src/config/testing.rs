//! What the tests of the loading pass share: config's own (generic rules only) and the
//! registry's (every adapter's rules).

use super::{load_from_str, ConfigProblem, TargetRules};

/// A usable config with a literal secret (loaded from text, never with a file mode).
pub const VALID: &str = r#"
[targets.digicert]
kind = "digicert"
base_url = "https://www.digicert.com/services/v2"
api_key = "literal-key-for-tests"

[jobs.digicert-accounts]
type = "account_import"
target = "digicert"
schedule = "0 */30 * * * *"
"#;

/// The problems of loading `text` with the overrides `env` and `rules`; none when it loads.
pub fn problems(text: &str, env: &[(&str, &str)], rules: &dyn TargetRules) -> Vec<ConfigProblem> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    match load_from_str(text, "test.toml", &env, rules) {
        Ok(_) => Vec::new(),
        Err(err) => {
            assert_eq!(err.source_name, "test.toml");
            err.problems
        }
    }
}

/// The problem at `key` (panics, listing them all, when there is none).
pub fn find<'a>(problems: &'a [ConfigProblem], key: &str) -> &'a ConfigProblem {
    match problems.iter().find(|problem| problem.key == key) {
        Some(problem) => problem,
        None => panic!("no problem at {key} in {problems:#?}"),
    }
}
