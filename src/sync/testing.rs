//! Test helpers of the provisioning engine: a scripted connector, a store seeded with
//! accounts and entitlements, and a config.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream;
use tempfile::TempDir;

use crate::config::Config;
use crate::connector::{
    Capabilities, Capability, Connector, ConnectorError, PageStream, ProvisionOutcome,
    ProvisionRequest,
};
use crate::model::{
    AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord, ImportMode, JobKind,
    ObjectKind, Operation, Trigger,
};
use crate::store::{ApplyOptions, NewRun, SnapshotId, SqliteStore, Store};

/// A connector that answers `provision` from a script (then `Done`), and counts calls.
pub struct FakeConnector {
    pub name: String,
    pub capabilities: Capabilities,
    pub script: Mutex<VecDeque<Result<ProvisionOutcome, ConnectorError>>>,
    pub calls: AtomicUsize,
    pub requests: Mutex<Vec<ProvisionRequest>>,
    pub probe: Mutex<Result<(), ConnectorError>>,
    pub lookup: Mutex<Option<AccountRecord>>,
    /// When set, every look-up fails with it.
    pub lookup_error: Mutex<Option<ConnectorError>>,
    pub delay: Duration,
}

impl FakeConnector {
    pub fn new(name: &str) -> Self {
        let all = |operation| Capability {
            operation,
            entitlement_type: None,
        };
        let access = |operation| Capability {
            operation,
            entitlement_type: Some("usergroup".to_string()),
        };
        Self {
            name: name.to_string(),
            capabilities: Capabilities {
                entitlement_types: vec!["usergroup".into()],
                operations: BTreeSet::from([
                    all(Operation::CreateAccount),
                    all(Operation::UpdateAccount),
                    all(Operation::EnableAccount),
                    all(Operation::DisableAccount),
                    access(Operation::AddAccess),
                    access(Operation::RemoveAccess),
                ]),
            },
            script: Mutex::new(VecDeque::new()),
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            probe: Mutex::new(Ok(())),
            lookup: Mutex::new(None),
            lookup_error: Mutex::new(None),
            delay: Duration::ZERO,
        }
    }

    pub fn then(&self, answer: Result<ProvisionOutcome, ConnectorError>) -> &Self {
        self.script.lock().unwrap().push_back(answer);
        self
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn transient(&self) -> ConnectorError {
        ConnectorError::Transient {
            target: self.name.clone(),
            message: "HTTP 503".into(),
        }
    }
}

#[async_trait]
impl Connector for FakeConnector {
    fn target(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn test_connection(&self) -> Result<(), ConnectorError> {
        self.probe.lock().unwrap().clone()
    }

    fn accounts(&self) -> PageStream<'_, AccountRecord> {
        Box::pin(stream::empty())
    }

    fn entitlements(&self) -> PageStream<'_, EntitlementRecord> {
        Box::pin(stream::empty())
    }

    fn grants(&self) -> PageStream<'_, GrantRecord> {
        Box::pin(stream::empty())
    }

    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(request.clone());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            Ok(ProvisionOutcome::Done {
                account_id: (request.operation == Operation::CreateAccount)
                    .then(|| format!("new-{}", request.account_name)),
            })
        })
    }

    async fn lookup_account(&self, _name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        if let Some(err) = self.lookup_error.lock().unwrap().clone() {
            return Err(err);
        }
        Ok(self.lookup.lock().unwrap().clone())
    }
}

/// A config with targets `a` and `b` (jama kind), `max_attempts` attempts each.
pub fn config(max_attempts: u32) -> Arc<Config> {
    let text = format!(
        r#"
        [targets.a]
        kind = "jama"
        base_url = "https://a.example.com"
        client_id = "c"
        client_secret = "s"
        retry = {{ max_attempts = {max_attempts} }}

        [targets.b]
        kind = "jama"
        base_url = "https://b.example.com"
        client_id = "c"
        client_secret = "s"
        max_concurrency = 2
        "#
    );
    Arc::new(toml::from_str(&text).unwrap())
}

/// A fresh store.
pub async fn store() -> (TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("idsync.db").display());
    let store = SqliteStore::open(&url, Duration::from_secs(5))
        .await
        .unwrap();
    (dir, Arc::new(store))
}

/// Imports `accounts` (id, name) and usergroups (id, name) into `target`.
pub async fn seed(
    store: &dyn Store,
    target: &str,
    accounts: &[(&str, &str)],
    groups: &[(&str, &str)],
) {
    let now = crate::clock::now();
    for (object, kind) in [
        (ObjectKind::Account, JobKind::AccountImport),
        (ObjectKind::Entitlement, JobKind::AccessImport),
    ] {
        let run_id = store
            .start_run(&NewRun {
                job: "manual".into(),
                target: Some(target.into()),
                kind,
                trigger: Trigger::Cli,
                actor: "test".into(),
                started_at: now,
            })
            .await
            .unwrap();
        let snapshot = SnapshotId {
            run_id,
            target: target.into(),
            object,
        };
        store.begin_snapshot(&snapshot).await.unwrap();
        match object {
            ObjectKind::Account => {
                let page: Vec<AccountRecord> = accounts
                    .iter()
                    .map(|(id, name)| AccountRecord {
                        id: id.to_string(),
                        name: name.to_string(),
                        display_name: None,
                        email: Some(format!("{name}@example.com")),
                        status: AccountStatus::Active,
                        attributes: Attributes::new(),
                    })
                    .collect();
                store.stage_accounts(&snapshot, &page).await.unwrap();
            }
            _ => {
                let page: Vec<EntitlementRecord> = groups
                    .iter()
                    .map(|(id, name)| EntitlementRecord {
                        entitlement_type: "usergroup".into(),
                        id: id.to_string(),
                        name: name.to_string(),
                        attributes: Attributes::new(),
                    })
                    .collect();
                store.stage_entitlements(&snapshot, &page).await.unwrap();
            }
        }
        store
            .apply_snapshot(
                &snapshot,
                &ApplyOptions {
                    mode: ImportMode::Full,
                    run_started_at: now,
                    actor: "test".into(),
                },
            )
            .await
            .unwrap();
        store
            .finish_run(
                run_id,
                &crate::store::RunFinish {
                    outcome: crate::model::RunOutcome::Succeeded,
                    finished_at: now,
                    counts: serde_json::json!({}),
                    error: None,
                },
            )
            .await
            .unwrap();
    }
}

/// The connectors map of the fakes.
pub fn connectors(fakes: &[Arc<FakeConnector>]) -> Arc<BTreeMap<String, Arc<dyn Connector>>> {
    Arc::new(
        fakes
            .iter()
            .map(|fake| (fake.name.clone(), fake.clone() as Arc<dyn Connector>))
            .collect(),
    )
}
