//! API request bodies: `POST /api/v1/tasks` through the daemon's real router (token check,
//! JSON extraction into `SubmitRequest`, submit validation, the SQLite store), driven with
//! `tower::ServiceExt::oneshot`, no socket. Any answer but a 5xx is fine; a 5xx or a panic
//! is a finding.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request};
use idsync::app::App;
use idsync::scheduler::JobRunner;
use idsync::server::{router, ServerState};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tower::ServiceExt;

use crate::generate::{draw, hostile_text, json_value};
use crate::runner::Target;

/// The API target: a daemon's router over a store in a temporary directory.
pub struct ApiBodies {
    runtime: Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

/// The token the router is given.
const TOKEN: &str = "fuzz-api-token";

impl ApiBodies {
    /// Builds an app with one target of each kind (never contacted: provisioning is not
    /// instant) over a fresh store, and its router.
    pub fn new() -> ApiBodies {
        let dir = tempfile::tempdir().expect("a temporary directory for the store");
        let text = format!(
            "[store]\nurl = \"sqlite://{}/fuzz.db\"\n\
             [targets.digicert]\nkind = \"digicert\"\nbase_url = \"http://127.0.0.1:9\"\napi_key = \"k\"\n\
             [targets.jama]\nkind = \"jama\"\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             [targets.duckcreek]\nkind = \"duckcreek\"\nbase_url = \"http://127.0.0.1:9\"\nusername = \"u\"\npassword = \"p\"\n",
            dir.path().display()
        );
        let config = idsync::app::load_config_str(&text, "fuzz.toml", &[])
            .unwrap_or_else(|err| panic!("the API target's config is refused: {err}"))
            .config;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let router = runtime.block_on(async {
            let app = App::build(config).await.expect("build the app");
            let runner = JobRunner::with_provisioning(
                &app.config,
                app.imports.clone(),
                app.provisioning.clone(),
            );
            router(ServerState {
                config: app.config.clone(),
                store: app.store(),
                runner,
                api_token: Some(Arc::new(SecretString::from(TOKEN))),
            })
        });
        ApiBodies {
            runtime,
            router,
            _dir: dir,
        }
    }
}

impl Target for ApiBodies {
    fn name(&self) -> &'static str {
        "api"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/tasks")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(input.to_vec()))
            .map_err(|err| format!("cannot build the request: {err}"))?;
        let router = self.router.clone();
        let (status, body) = self.runtime.block_on(async move {
            let response = router
                .oneshot(request)
                .await
                .map_err(|err| format!("the router failed: {err}"))?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .map_err(|err| format!("cannot read the answer: {err}"))?;
            Ok::<_, String>((status, body))
        })?;
        if std::env::var_os("IDSYNC_FUZZ_DEBUG").is_some() {
            eprintln!("{status} {}", String::from_utf8_lossy(&body));
        }
        if status.is_server_error() {
            return Err(format!(
                "POST /api/v1/tasks answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(())
    }

    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8> {
        let text = hostile_text();
        let target = prop_oneof![
            prop::sample::select(vec!["digicert", "jama", "duckcreek"]).prop_map(String::from),
            text.clone(),
        ];
        let operation = prop_oneof![
            prop::sample::select(
                idsync::model::Operation::ALL
                    .iter()
                    .map(|op| op.as_str())
                    .collect::<Vec<_>>()
            )
            .prop_map(String::from),
            text.clone(),
        ];
        let keys: &'static [&'static str] = &[
            "email",
            "firstname",
            "lastname",
            "title",
            "phone",
            "password",
            "username",
        ];
        let entitlement = prop_oneof![
            Just(Value::Null),
            text.clone().prop_map(Value::from),
            (text.clone(), text.clone()).prop_map(|(kind, id)| json!({ "type": kind, "id": id })),
            (text.clone(), text.clone())
                .prop_map(|(kind, name)| json!({ "type": kind, "name": name })),
            json_value(keys, 2),
        ];
        let attributes = prop::collection::vec(
            (prop::sample::select(keys.to_vec()), json_value(keys, 2)),
            0..6,
        );
        let (target, operation, account, entitlement, attributes, extra) = draw(
            (
                target,
                operation,
                text.clone(),
                entitlement,
                attributes,
                (text.clone(), text),
            ),
            runner,
        );
        let attributes: serde_json::Map<String, Value> = attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut body = json!({
            "target": target,
            "operation": operation,
            "account": account,
            "attributes": attributes,
            "request_id": extra.0,
            "idempotency_key": extra.1,
        });
        if !entitlement.is_null() {
            body["entitlement"] = entitlement;
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}
