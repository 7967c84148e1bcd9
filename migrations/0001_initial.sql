-- idsync store, initial schema.
--
-- Timestamps are TEXT in fixed-width RFC 3339 UTC with milliseconds
-- (`2026-11-25T10:00:00.000Z`, see src/clock.rs), so they compare and sort as text.
-- JSON values (attributes, details, counts) are TEXT holding canonical JSON (sorted keys),
-- so that an unchanged value compares equal as text.

-- Accounts of every target. Key (target, id): the target's native id.
CREATE TABLE accounts (
    target          TEXT NOT NULL,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    display_name    TEXT,
    email           TEXT,
    status          TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'suspended')),
    status_reason   TEXT,
    owner           TEXT,
    attributes      TEXT NOT NULL DEFAULT '{}',
    first_seen      TEXT NOT NULL,
    -- Written only when the account is suspended; otherwise derived from
    -- target_state.last_account_import_at.
    last_seen       TEXT,
    updated_at      TEXT NOT NULL,
    -- When a provisioning task last changed the row: imports that started before leave it alone.
    task_changed_at TEXT,
    PRIMARY KEY (target, id)
) WITHOUT ROWID;

-- Login names are unique among a target's non-suspended accounts only, so not enforced here.
CREATE INDEX accounts_by_name ON accounts (target, name);
CREATE INDEX accounts_by_owner ON accounts (owner) WHERE owner IS NOT NULL;

-- Entitlements (roles, groups, containers…). Key (target, type, id).
CREATE TABLE entitlements (
    target          TEXT NOT NULL,
    type            TEXT NOT NULL,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    attributes      TEXT NOT NULL DEFAULT '{}',
    first_seen      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    task_changed_at TEXT,
    PRIMARY KEY (target, type, id)
) WITHOUT ROWID;

-- Grants: who holds what. Key (target, account_id, type, entitlement_id).
CREATE TABLE grants (
    target          TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    type            TEXT NOT NULL,
    entitlement_id  TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    first_seen      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    task_changed_at TEXT,
    PRIMARY KEY (target, account_id, type, entitlement_id)
) WITHOUT ROWID;

CREATE INDEX grants_by_entitlement ON grants (target, type, entitlement_id);

-- Job runs.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT NOT NULL,
    target      TEXT,
    kind        TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT CHECK (outcome IN ('succeeded', 'failed', 'held')),
    counts      TEXT NOT NULL DEFAULT '{}',
    error       TEXT
);

CREATE INDEX runs_by_target_kind ON runs (target, kind, outcome, id);
CREATE INDEX runs_by_job ON runs (job, id);
CREATE INDEX runs_open ON runs (id) WHERE finished_at IS NULL;

-- Audit events: every change to the store and every decision, with who caused it.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    target     TEXT NOT NULL,
    object     TEXT,
    object_key TEXT,
    action     TEXT NOT NULL,
    run_id     INTEGER,
    details    TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_by_target ON audit_events (target, id);
CREATE INDEX audit_by_object ON audit_events (target, object, object_key);
CREATE INDEX audit_by_at ON audit_events (at);

-- Lease locks (job and target locks shared by the daemon and the CLI).
CREATE TABLE locks (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

-- Per-target state.
CREATE TABLE target_state (
    target                 TEXT PRIMARY KEY NOT NULL,
    -- When the last successful full account import started: the `last_seen` of every
    -- account that is not suspended.
    last_account_import_at TEXT
) WITHOUT ROWID;

-- Import snapshots being staged (one per run and object kind), so stale ones can be cleared.
CREATE TABLE snapshots (
    run_id   INTEGER NOT NULL,
    target   TEXT NOT NULL,
    object   TEXT NOT NULL CHECK (object IN ('account', 'entitlement', 'grant')),
    begun_at TEXT NOT NULL,
    PRIMARY KEY (run_id, target, object)
) WITHOUT ROWID;

-- Staged rows of import snapshots. `change` is filled in by the apply step.
CREATE TABLE staged_accounts (
    run_id       INTEGER NOT NULL,
    target       TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    display_name TEXT,
    email        TEXT,
    status       TEXT NOT NULL,
    attributes   TEXT NOT NULL,
    change       TEXT,
    PRIMARY KEY (run_id, target, id)
) WITHOUT ROWID;

CREATE TABLE staged_entitlements (
    run_id     INTEGER NOT NULL,
    target     TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    attributes TEXT NOT NULL,
    change     TEXT,
    PRIMARY KEY (run_id, target, type, id)
) WITHOUT ROWID;

CREATE TABLE staged_grants (
    run_id           INTEGER NOT NULL,
    target           TEXT NOT NULL,
    account_id       TEXT NOT NULL,
    type             TEXT NOT NULL,
    entitlement_id   TEXT NOT NULL,
    entitlement_name TEXT,
    change           TEXT,
    PRIMARY KEY (run_id, target, account_id, type, entitlement_id)
) WITHOUT ROWID;

-- Provisioning tasks (the WSRETRY queue).
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    target           TEXT NOT NULL,
    operation        TEXT NOT NULL,
    -- The login name given at submit; `account_id` is what the task follows.
    account          TEXT NOT NULL,
    account_id       TEXT,
    entitlement_type TEXT,
    entitlement_id   TEXT,
    attributes       TEXT NOT NULL DEFAULT '{}',
    owner            TEXT,
    status           TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    next_attempt_at  TEXT,
    last_error       TEXT,
    actor            TEXT NOT NULL,
    request_id       TEXT,
    idempotency_key  TEXT UNIQUE,
    depends_on       INTEGER REFERENCES tasks (id),
    lease_until      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE INDEX tasks_due ON tasks (status, next_attempt_at);
CREATE INDEX tasks_by_account ON tasks (target, account_id, id);
CREATE INDEX tasks_by_target_status ON tasks (target, status, id);
CREATE INDEX tasks_by_depends_on ON tasks (depends_on) WHERE depends_on IS NOT NULL;

-- One row per attempt of a task.
CREATE TABLE task_attempts (
    task_id     INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;
