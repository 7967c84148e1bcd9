//! The layer rule of `ARCHITECTURE.md`: a top-level module of `src/` uses only the modules
//! listed above it there. Reads the sources (outside their test code) and fails naming every
//! import that breaks the rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first, and what each may use (as in `ARCHITECTURE.md`).
const LAYERS: &[(&str, &[&str])] = &[
    ("visible", &[]),
    ("clock", &[]),
    ("model", &["clock"]),
    ("config", &["clock", "model"]),
    ("telemetry", &["config", "visible"]),
    ("connector", &["clock", "model", "config", "telemetry"]),
    ("store", &["clock", "model"]),
];

/// The layers above `store` may use every module below them in this order.
const UPPER: &[&str] = &["sync", "scheduler", "server", "app", "cli"];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map(|entries| entries.flatten().collect::<Vec<_>>());
    for entry in entries.unwrap_or_default() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
}

/// The top-level module a source file belongs to (`src/connector/kit/core.rs` → `connector`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    Some(name.trim_end_matches(".rs").to_string())
}

/// The code of a file without its test code (test files, `#[cfg(test)] mod tests`).
fn product_code(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    if matches!(name, "tests.rs" | "testing.rs" | "task_tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(cut) => text.get(..cut).unwrap_or("").to_string(),
        None => text,
    }
}

/// The top-level modules `code` names as `crate::NAME`.
fn uses(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter_map(|(at, _)| {
            let rest = code.get(at + "crate::".len()..)?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// What `module` may use.
fn allowed(module: &str) -> Option<BTreeSet<String>> {
    if let Some((_, below)) = LAYERS.iter().find(|(name, _)| *name == module) {
        return Some(below.iter().map(|name| name.to_string()).collect());
    }
    let position = UPPER.iter().position(|name| *name == module)?;
    let lower = LAYERS.iter().map(|(name, _)| *name);
    let upper = UPPER.iter().take(position).copied();
    Some(lower.chain(upper).map(str::to_string).collect())
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in sources(&src) {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let allowed = allowed(&module);
        assert!(
            allowed.is_some(),
            "{module} (from {}) is not in ARCHITECTURE.md's layers",
            file.display()
        );
        let allowed = allowed.unwrap_or_default();
        checked += 1;
        for used in uses(&product_code(&file)) {
            if used != module && !allowed.contains(&used) {
                broken.push(format!("{} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} files were read");
    assert!(
        broken.is_empty(),
        "imports that break the layers of ARCHITECTURE.md:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rule_catches_a_wrong_import() {
    let code = "use crate::connector::registry;\nuse crate::model::Account;\n";
    let used = uses(code);
    assert_eq!(
        used,
        BTreeSet::from(["connector".to_string(), "model".to_string()])
    );
    let config = allowed("config").unwrap_or_default();
    assert!(!config.contains("connector"));
    assert!(config.contains("model"));
    let sync = allowed("sync").unwrap_or_default();
    assert!(sync.contains("connector") && sync.contains("store") && !sync.contains("app"));
}
