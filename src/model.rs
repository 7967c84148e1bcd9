//! Records, statuses and run reports shared by the connectors, the store, the jobs and the
//! API. Field names and status values here are part of the public contract (the README's
//! command line, API and JSON record sections).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Free-form attributes of a record, kept as a JSON object with sorted keys.
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// Declares a string-valued enum with `as_str`, `Display`, `FromStr` and serde in lower
/// snake case, so that status values are spelled once.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The contract spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue {
                        kind: stringify!($name),
                        value: other.to_string(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A string that is not one of the values an enum accepts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {})", expected.join(", "))]
pub struct UnknownValue {
    /// The enum being parsed.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

string_enum!(
    /// The state of an account in the store.
    AccountStatus {
        /// Enabled in the target.
        Active => "active",
        /// Disabled in the target (DigiCert `status=inactive`).
        Inactive => "inactive",
        /// The target no longer returns it (or a task removed it).
        Suspended => "suspended",
    }
);

string_enum!(
    /// The state of an entitlement in the store.
    EntitlementStatus {
        /// The target returns it.
        Active => "active",
        /// The target no longer returns it.
        Inactive => "inactive",
    }
);

string_enum!(
    /// The state of a grant (who holds what) in the store.
    GrantStatus {
        /// The account holds the entitlement.
        Active => "active",
        /// The account no longer holds it.
        Removed => "removed",
    }
);

string_enum!(
    /// The kinds of object an import reads.
    ObjectKind {
        /// An account (user) of a target.
        Account => "account",
        /// An entitlement (role, group, container…).
        Entitlement => "entitlement",
        /// An account holding an entitlement.
        Grant => "grant",
    }
);

string_enum!(
    /// What an import did to one record (the `change` label of `idsync_import_objects_total`).
    Change {
        /// A record seen for the first time.
        Created => "created",
        /// A known record whose fields changed.
        Updated => "updated",
        /// A known record with nothing new.
        Unchanged => "unchanged",
        /// An account the target no longer returns.
        Suspended => "suspended",
        /// An entitlement the target no longer returns.
        Inactivated => "inactivated",
        /// A grant the target no longer returns.
        Removed => "removed",
        /// A record that came back after being suspended, inactivated or removed.
        Reactivated => "reactivated",
        /// An account whose login name changed on the same id.
        Renamed => "renamed",
    }
);

string_enum!(
    /// The kinds of job the scheduler runs.
    JobKind {
        /// Reads accounts.
        AccountImport => "account_import",
        /// Reads entitlements and grants.
        AccessImport => "access_import",
        /// Runs due provisioning tasks.
        Provisioning => "provisioning",
    }
);

string_enum!(
    /// What started a run.
    Trigger {
        /// A cron tick.
        Schedule => "schedule",
        /// The command line.
        Cli => "cli",
        /// `POST /api/v1/jobs/{name}/run`.
        Api => "api",
        /// A run missed while the daemon was down, caught up at start.
        Startup => "startup",
    }
);

string_enum!(
    /// How a run ended.
    RunOutcome {
        /// Everything read and written.
        Succeeded => "succeeded",
        /// An error stopped it; nothing was marked missing.
        Failed => "failed",
        /// The deletion threshold stopped it; nothing was written but the run record.
        Held => "held",
    }
);

string_enum!(
    /// Full imports infer deletions; incremental imports write only the delta.
    ImportMode {
        /// Read everything, write the delta, mark what is missing.
        Full => "full",
        /// Read everything, write the delta, infer no deletions.
        Incremental => "incremental",
    }
);

string_enum!(
    /// Provisioning operations (the contract's `operation` values).
    Operation {
        /// Create an account.
        CreateAccount => "create_account",
        /// Change an account's attributes.
        UpdateAccount => "update_account",
        /// Enable a disabled account.
        EnableAccount => "enable_account",
        /// Disable an account.
        DisableAccount => "disable_account",
        /// Delete an account.
        RemoveAccount => "remove_account",
        /// Grant an entitlement.
        AddAccess => "add_access",
        /// Revoke an entitlement.
        RemoveAccess => "remove_access",
    }
);

impl Operation {
    /// Whether the operation grants or revokes an entitlement (`add_access`, `remove_access`)
    /// rather than acting on the account itself.
    pub fn is_access(self) -> bool {
        matches!(self, Operation::AddAccess | Operation::RemoveAccess)
    }
}

/// An account as a connector read it from the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The target's native id.
    pub id: String,
    /// The login name.
    pub name: String,
    /// A human-readable name, when the target has one.
    pub display_name: Option<String>,
    /// The e-mail address, when the target has one.
    pub email: Option<String>,
    /// `Active` or `Inactive` (a connector never reports `Suspended`).
    pub status: AccountStatus,
    /// Everything else the target says about the account.
    pub attributes: Attributes,
}

/// An entitlement as a connector read it from the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitlementRecord {
    /// The entitlement type (`role`, `container`, …).
    pub entitlement_type: String,
    /// The target's native id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Everything else the target says about it.
    pub attributes: Attributes,
}

/// A grant as a connector read it: this account holds this entitlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// The account's native id.
    pub account_id: String,
    /// The entitlement type.
    pub entitlement_type: String,
    /// The entitlement's native id.
    pub entitlement_id: String,
    /// The entitlement's name as seen on the grant (used when the catalogue lacks it).
    pub entitlement_name: Option<String>,
}

/// An account in the store (contract JSON record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The target's config name.
    pub target: String,
    /// The target's native id.
    pub id: String,
    /// The login name.
    pub name: String,
    /// A human-readable name.
    pub display_name: Option<String>,
    /// The e-mail address.
    pub email: Option<String>,
    /// `active`, `inactive` or `suspended`.
    pub status: AccountStatus,
    /// Why the status was last set: `import` or `task:<id>`.
    pub status_reason: Option<String>,
    /// The owning identity's key upstream (null = orphan).
    pub owner: Option<String>,
    /// Everything else the target says about the account.
    pub attributes: Attributes,
    /// When idsync first saw the account.
    pub first_seen: DateTime<Utc>,
    /// When the target last returned it (derived from the last successful full import).
    pub last_seen: Option<DateTime<Utc>>,
}

/// An entitlement in the store (contract JSON record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entitlement {
    /// The target's config name.
    pub target: String,
    /// The entitlement type.
    #[serde(rename = "type")]
    pub entitlement_type: String,
    /// The target's native id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// `active` or `inactive`.
    pub status: EntitlementStatus,
    /// Everything else the target says about it.
    pub attributes: Attributes,
}

/// A grant in the store (contract JSON record `access`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The target's config name.
    pub target: String,
    /// The account's login name (null when the account is not in the store).
    pub account: Option<String>,
    /// The account's native id.
    pub account_id: String,
    /// The entitlement type.
    pub entitlement_type: String,
    /// The entitlement's native id.
    pub entitlement_id: String,
    /// The entitlement's name (null when the catalogue lacks it).
    pub entitlement_name: Option<String>,
    /// `active` or `removed`.
    pub status: GrantStatus,
}

/// Per-change counts for one object kind in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// Records seen for the first time.
    pub created: u64,
    /// Records whose fields changed.
    pub updated: u64,
    /// Records with nothing new.
    pub unchanged: u64,
    /// Accounts the target no longer returns.
    pub suspended: u64,
    /// Entitlements the target no longer returns.
    pub inactivated: u64,
    /// Grants the target no longer returns (including those of suspended accounts).
    pub removed: u64,
    /// Records that came back.
    pub reactivated: u64,
    /// Accounts whose login changed.
    pub renamed: u64,
}

impl ChangeCounts {
    /// The count for one change.
    pub fn get(&self, change: Change) -> u64 {
        match change {
            Change::Created => self.created,
            Change::Updated => self.updated,
            Change::Unchanged => self.unchanged,
            Change::Suspended => self.suspended,
            Change::Inactivated => self.inactivated,
            Change::Removed => self.removed,
            Change::Reactivated => self.reactivated,
            Change::Renamed => self.renamed,
        }
    }

    /// Records that the run would write (everything but `unchanged`).
    pub fn written(&self) -> u64 {
        self.created
            + self.updated
            + self.suspended
            + self.inactivated
            + self.removed
            + self.reactivated
            + self.renamed
    }
}

/// The counts of one import run, per object kind (the run record's `counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Records read from the target, all kinds together.
    pub read: u64,
    /// Account changes.
    pub account: ChangeCounts,
    /// Entitlement changes.
    pub entitlement: ChangeCounts,
    /// Grant changes.
    pub grant: ChangeCounts,
}

impl RunCounts {
    /// The counts of one object kind.
    pub fn of(&self, object: ObjectKind) -> &ChangeCounts {
        match object {
            ObjectKind::Account => &self.account,
            ObjectKind::Entitlement => &self.entitlement,
            ObjectKind::Grant => &self.grant,
        }
    }

    /// The counts of one object kind, for writing.
    pub fn of_mut(&mut self, object: ObjectKind) -> &mut ChangeCounts {
        match object {
            ObjectKind::Account => &mut self.account,
            ObjectKind::Entitlement => &mut self.entitlement,
            ObjectKind::Grant => &mut self.grant,
        }
    }
}

/// A job run record (contract JSON record `run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id.
    pub id: i64,
    /// The config job name, or `manual`.
    pub job: String,
    /// The target, when the job has one.
    pub target: Option<String>,
    /// What the run did.
    pub kind: JobKind,
    /// What started it.
    pub trigger: Trigger,
    /// Who started it (`scheduler`, `cli:<user>`, `token:<name>`).
    pub actor: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (null while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended (null while running).
    pub outcome: Option<RunOutcome>,
    /// Counts (for imports, a [`RunCounts`] plus, when held, the pending diff).
    pub counts: serde_json::Value,
    /// Why it failed or was held.
    pub error: Option<String>,
}

/// An audit event: one change to the store, or one decision, with who caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The event id.
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who caused it (`scheduler`, `cli:<user>`, `token:<name>`).
    pub actor: String,
    /// The target.
    pub target: String,
    /// The object kind, or null for run-level events.
    pub object: Option<ObjectKind>,
    /// The record key (`id`, `type:id`, `account_id|type:id`), or null for run-level events.
    pub object_key: Option<String>,
    /// What happened (a [`Change`] value, or a run-level word like `deletions_allowed`).
    pub action: String,
    /// The run that caused it.
    pub run_id: Option<i64>,
    /// Details (old and new values).
    pub details: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text() {
        for status in AccountStatus::ALL {
            assert_eq!(status.as_str().parse::<AccountStatus>().unwrap(), *status);
        }
        for op in Operation::ALL {
            assert_eq!(op.to_string().parse::<Operation>().unwrap(), *op);
        }
        assert_eq!(
            serde_json::to_string(&JobKind::AccessImport).unwrap(),
            "\"access_import\""
        );
    }

    #[test]
    fn unknown_value_names_the_choices() {
        let err = "paused".parse::<AccountStatus>().unwrap_err().to_string();
        assert!(
            err.contains("paused") && err.contains("active, inactive, suspended"),
            "{err}"
        );
    }

    #[test]
    fn written_excludes_unchanged() {
        let counts = ChangeCounts {
            created: 2,
            unchanged: 10,
            suspended: 1,
            ..Default::default()
        };
        assert_eq!(counts.written(), 3);
    }
}

string_enum!(
    /// The state of a provisioning task.
    TaskStatus {
        /// Waiting for its next attempt (attempts > 0 means retrying).
        Pending => "pending",
        /// An attempt is in flight (leased by a worker).
        Running => "running",
        /// Done at the target, and the store updated.
        Succeeded => "succeeded",
        /// Given up: a permanent error, or attempts exhausted.
        Failed => "failed",
        /// Cancelled while pending.
        Cancelled => "cancelled",
    }
);

impl TaskStatus {
    /// Whether the task will never run again (unless retried by hand).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

string_enum!(
    /// How one attempt of a task ended (the `outcome` label of
    /// `idsync_task_attempts_total`).
    AttemptOutcome {
        /// The change was made.
        Succeeded => "succeeded",
        /// The change was already in place.
        AlreadyDone => "already_done",
        /// Timeout, connection error or 5xx: retried.
        Transient => "transient",
        /// 429: retried, honouring `Retry-After`.
        RateLimited => "rate_limited",
        /// 401: the target's circuit opens; the attempt does not count.
        Auth => "auth",
        /// Validation error, 403, or anything retrying will not fix.
        Permanent => "permanent",
        /// The change may or may not have been made: the process died during the attempt,
        /// or a create failed in transit (timeout, reset, 5xx). The next attempt checks the
        /// target first.
        Unknown => "unknown",
    }
);

/// The entitlement a task grants or revokes, resolved at submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEntitlement {
    /// The entitlement type (`role`, `container`, `usergroup`, …).
    #[serde(rename = "type")]
    pub entitlement_type: String,
    /// The target's native id.
    pub id: String,
    /// The display name (bound as `entitlementValue.entitlement_value`).
    pub name: String,
}

/// A provisioning task (contract JSON record `task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task id.
    pub id: i64,
    /// The target's config name.
    pub target: String,
    /// The operation.
    pub operation: Operation,
    /// The account's login name as given at submit.
    pub account: String,
    /// The account's native id (null until a create succeeds).
    pub account_id: Option<String>,
    /// The entitlement, for access operations.
    pub entitlement: Option<TaskEntitlement>,
    /// Identity attributes (the `user.*` template bindings).
    pub attributes: Attributes,
    /// The owning identity's key upstream.
    pub owner: Option<String>,
    /// The state.
    pub status: TaskStatus,
    /// Attempts made so far (attempts refused by an open circuit do not count).
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When the next attempt is due (pending tasks).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error, in the target's own words where it gave some.
    pub last_error: Option<String>,
    /// Who submitted it.
    pub actor: String,
    /// The caller's request id (defaults to the task id; bound as `requestid`).
    pub request_id: Option<String>,
    /// A create task this one waits for.
    pub depends_on: Option<i64>,
    /// Whether the outcome of the last attempt is unknown (the next attempt reads the
    /// target first).
    #[serde(default)]
    pub uncertain: bool,
    /// When the first attempt started (for `retry.give_up_after`).
    #[serde(default)]
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}
