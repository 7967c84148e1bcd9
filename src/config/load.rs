//! Loading the config file and environment overrides. (Being written.)

use std::path::Path;

use super::{Config, ConfigProblem, ConfigWarning};

/// A config that loaded and validated, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config.
    pub config: Config,
    /// Problems that do not stop idsync (e.g. a world-readable file holding a literal secret).
    pub warnings: Vec<ConfigWarning>,
}

/// Why a config could not be used: every problem found, at once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in config {source_name}", problems.len())]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub source_name: String,
    /// Every problem.
    pub problems: Vec<ConfigProblem>,
}

/// Loads, overrides from `IDSYNC__*` environment variables, and validates the config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        source_name: path.display().to_string(),
        problems: vec![ConfigProblem { key: "(file)".into(), value: None, message: err.to_string() }],
    })?;
    load_from_str(&text, &path.display().to_string(), &[])
}

/// Loads and validates a config from text, with explicit environment overrides (tests).
pub fn load_from_str(text: &str, source_name: &str, _env: &[(String, String)]) -> Result<LoadedConfig, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|err| ConfigError {
        source_name: source_name.to_string(),
        problems: vec![ConfigProblem { key: "(file)".into(), value: None, message: err.to_string() }],
    })?;
    Ok(LoadedConfig { config, warnings: Vec::new() })
}
