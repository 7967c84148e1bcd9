//! Config loading: `idsync::app::load_config_str` (TOML parsing, every adapter's rules,
//! template compilation and checks, secret resolution) with arbitrary text. A refusal is
//! the expected outcome of most inputs; its message is built.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::generate::{draw, hostile_text};
use crate::runner::Target;

/// Keys of the config file, at every level, so generated tables reach the validation.
const KEYS: &[&str] = &[
    "kind",
    "base_url",
    "api_key",
    "client_id",
    "client_secret",
    "username",
    "password",
    "schedule",
    "type",
    "target",
    "url",
    "listen",
    "api_token",
    "level",
    "format",
    "page_size",
    "max_concurrency",
    "rate_limit",
    "requests",
    "per",
    "read_retry",
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "timeout",
    "connect_timeout",
    "templates",
    "create_account",
    "update_account",
    "disable_account",
    "entity_id",
    "request_wrapper",
    "element",
    "namespace",
    "soap_version",
    "deletion_threshold",
    "count",
    "percent",
    "env",
    "file",
    "tls",
    "ca_file",
    "instant_provisioning",
    "retry",
    "give_up_after",
    "disable_strategy",
    "default_role",
    "max_response_bytes",
    "busy_timeout",
    "shutdown_grace",
];

/// The config target.
pub struct ConfigLoading;

impl Target for ConfigLoading {
    fn name(&self) -> &'static str {
        "config"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(input);
        let env = [
            ("DIGICERT_API_KEY".to_string(), "fuzz".to_string()),
            ("JAMA_CLIENT_SECRET".to_string(), "fuzz".to_string()),
            ("DUCKCREEK_PASSWORD".to_string(), "fuzz".to_string()),
            ("IDSYNC_API_TOKEN".to_string(), "fuzz".to_string()),
        ];
        match idsync::app::load_config_str(&text, "fuzz.toml", &env) {
            Ok(loaded) => {
                let _ = format!("{:?}", loaded.warnings);
            }
            Err(err) => {
                let _ = err.to_string();
            }
        }
        Ok(())
    }

    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8> {
        let kinds = prop::sample::select(vec!["digicert", "jama", "duckcreek", "other"]);
        let value = prop_oneof![
            hostile_text().prop_map(|t| toml::Value::String(t).to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| toml::Value::Float(f).to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            prop::sample::select(vec![
                "\"1s\"",
                "\"0s\"",
                "\"99999999999h\"",
                "\"-1s\"",
                "[]",
                "{}",
                "{ env = \"X\" }",
                "{ file = \"/nonexistent\" }",
                "\"http://127.0.0.1:1\"",
                "\"0 */5 * * * *\"",
                "\"* * * * * * * *\"",
                "\"${ user.x }\"",
                "\"{% if %}\"",
                "\"<a>${ user.email }</a>\"",
                "18446744073709551615",
                "-1",
                "0",
                "[{ requests = 0, per = \"0s\" }]",
            ])
            .prop_map(String::from),
        ];
        let entry = (prop::sample::select(KEYS.to_vec()), value);
        let table = prop::collection::vec(entry, 0..10);
        let targets = prop::collection::vec((hostile_text(), kinds, table.clone()), 0..3);
        let jobs = prop::collection::vec((hostile_text(), table.clone()), 0..3);
        let (targets, jobs, server) = draw((targets, jobs, table), runner);
        let mut text = String::from("[server]\n");
        for (key, value) in server {
            text.push_str(&format!("{key} = {value}\n"));
        }
        for (name, kind, entries) in targets {
            let name = toml::Value::String(name).to_string();
            text.push_str(&format!("[targets.{name}]\nkind = \"{kind}\"\n"));
            for (key, value) in entries {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        for (name, entries) in jobs {
            let name = toml::Value::String(name).to_string();
            text.push_str(&format!("[jobs.{name}]\n"));
            for (key, value) in entries {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        text.into_bytes()
    }
}
