//! The one secret scan of every test that checks secrets stay secret: collect what a user
//! or an operator could read (logs, stdout and stderr, error messages, metrics, the SQLite
//! files' bytes), then assert that no secret appears in any of it.

use std::path::Path;
use std::process::Output;

/// Named texts that must hold no secret.
#[derive(Default)]
pub struct Exposed {
    texts: Vec<(String, String)>,
}

impl Exposed {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `text` under `name`.
    pub fn text(&mut self, name: impl Into<String>, text: impl Into<String>) -> &mut Self {
        self.texts.push((name.into(), text.into()));
        self
    }

    /// Adds a finished command's stdout and stderr.
    pub fn output(&mut self, name: &str, output: &Output) -> &mut Self {
        self.text(
            format!("{name} stdout"),
            String::from_utf8_lossy(&output.stdout),
        );
        self.text(
            format!("{name} stderr"),
            String::from_utf8_lossy(&output.stderr),
        )
    }

    /// Adds the bytes of the SQLite store at `db` (which must exist) and of its `-wal` and
    /// `-shm` files when present, read as text.
    pub fn store(&mut self, db: &Path) -> &mut Self {
        assert!(db.exists(), "no store at {}", db.display());
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", db.display());
            if let Ok(bytes) = std::fs::read(&path) {
                self.text(path, String::from_utf8_lossy(&bytes));
            }
        }
        self
    }

    /// Everything collected, concatenated (for checks of a pattern rather than a value).
    pub fn joined(&self) -> String {
        self.texts
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Asserts that no `secret` appears in any text, naming the secret (by its first
    /// characters), the text and the place.
    pub fn assert_free_of(&self, secrets: &[&str]) {
        assert!(!self.texts.is_empty(), "nothing collected to scan");
        for secret in secrets {
            assert!(!secret.is_empty(), "an empty secret matches everything");
            for (name, text) in &self.texts {
                if let Some(at) = text.find(secret) {
                    let context: String = text
                        .get(at..)
                        .unwrap_or_default()
                        .chars()
                        .skip(secret.chars().count())
                        .take(80)
                        .collect();
                    panic!(
                        "secret `{}…` found in {name} at byte {at}, followed by {context:?}",
                        secret.chars().take(6).collect::<String>(),
                    );
                }
            }
        }
    }
}
