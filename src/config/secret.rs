//! Secrets in the config file: a literal string, `{ env = "VAR" }` or `{ file = "PATH" }`.
//!
//! A resolved secret is a [`SecretString`]: its `Debug` output is redacted and it is never
//! serialised. Errors name the variable or path, never the value.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Where a secret comes from, as written in the config file.
///
/// `{ env = … }` and `{ file = … }` reject any other key, so a misspelt table is an error rather
/// than a silently ignored setting.
#[derive(Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSpec {
    /// `{ env = "VAR" }`: read from an environment variable.
    Env {
        /// The variable's name.
        env: String,
    },
    /// `{ file = "PATH" }`: read from a file (trailing newline trimmed), e.g. a systemd
    /// credential under `/run/credentials/`.
    File {
        /// The file's path.
        file: PathBuf,
    },
    /// A literal value in the config file (discouraged: prefer `env` or `file`).
    Literal(SecretString),
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSpec::Env { env } => write!(f, "SecretSpec::Env({env})"),
            SecretSpec::File { file } => write!(f, "SecretSpec::File({})", file.display()),
            SecretSpec::Literal(_) => f.write_str("SecretSpec::Literal([REDACTED])"),
        }
    }
}

/// A secret that could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set (export it, or use {{ file = \"PATH\" }})")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The value is empty.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretSpec {
    /// Reads the secret's value now.
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        use secrecy::ExposeSecret;
        let (value, origin) = match self {
            SecretSpec::Literal(value) => (
                value.expose_secret().to_string(),
                "the config file".to_string(),
            ),
            SecretSpec::Env { env } => match std::env::var(env) {
                Ok(value) => (value, format!("environment variable {env}")),
                Err(_) => return Err(SecretError::MissingEnv(env.clone())),
            },
            SecretSpec::File { file } => match std::fs::read_to_string(file) {
                Ok(value) => (
                    value.trim_end_matches(['\r', '\n']).to_string(),
                    format!("file {}", file.display()),
                ),
                Err(err) => {
                    return Err(SecretError::Unreadable {
                        path: file.display().to_string(),
                        message: err.to_string(),
                    })
                }
            },
        };
        if value.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(SecretString::from(value))
    }

    /// Whether the value is written in the config file itself.
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretSpec::Literal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[derive(Deserialize)]
    struct Holder {
        key: SecretSpec,
    }

    #[test]
    fn reads_all_three_forms() {
        let literal: Holder = toml::from_str(r#"key = "s3cr3t""#).unwrap();
        assert_eq!(literal.key.resolve().unwrap().expose_secret(), "s3cr3t");
        let env: Holder =
            toml::from_str(r#"key = { env = "IDSYNC_TEST_SECRET_UNSET_XYZ" }"#).unwrap();
        assert_eq!(
            env.key.resolve().unwrap_err(),
            SecretError::MissingEnv("IDSYNC_TEST_SECRET_UNSET_XYZ".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "from-file\n").unwrap();
        let file: Holder = toml::from_str(&format!("key = {{ file = {:?} }}", path)).unwrap();
        assert_eq!(file.key.resolve().unwrap().expose_secret(), "from-file");
    }

    #[test]
    fn debug_never_shows_a_literal() {
        let literal: Holder = toml::from_str(r#"key = "s3cr3t""#).unwrap();
        assert!(!format!("{:?}", literal.key).contains("s3cr3t"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let spec = SecretSpec::File {
            file: "/nonexistent/idsync/key".into(),
        };
        assert!(spec
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/idsync/key"));
    }
}
