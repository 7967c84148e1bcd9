-- Provisioning tasks: what the queue needs beyond the initial schema.
-- (Never edit 0001: existing stores have it applied and its checksum is checked.)

-- The outcome of the last attempt is unknown (a lease ran out, a timeout after sending): the
-- next attempt reads the target first.
ALTER TABLE tasks ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
-- When the first attempt started (for `retry.give_up_after`); reset by a manual retry.
ALTER TABLE tasks ADD COLUMN first_attempt_at TEXT;
-- The entitlement's display name as resolved at submit.
ALTER TABLE tasks ADD COLUMN entitlement_name TEXT;

-- Unfinished tasks by (target, account key): the account key is the native id when known,
-- else the login name (prefixed so an id never equals a name). The claim's "oldest
-- unfinished task of its account" rule probes this index once per candidate.
CREATE INDEX tasks_unfinished_by_account
    ON tasks (target, COALESCE('id:' || account_id, 'name:' || account), id)
    WHERE status IN ('pending', 'running');
