-- Import staging moves out of the store file.
-- (Never edit 0001/0002: existing stores have them applied and their checksums are checked.)
--
-- Snapshots are now staged in TEMP tables of the store's one write connection (see
-- src/store/sqlite/snapshot.rs): they never reach the WAL or the store file, need no write
-- lock while a target is read, and vanish with the process. The tables below held staged
-- rows only between a run's first page and its apply, so dropping them loses nothing a
-- finished run needs. (`main.`: the scratch TEMP tables of the same names must stay.)
DROP TABLE IF EXISTS main.staged_accounts;
DROP TABLE IF EXISTS main.staged_entitlements;
DROP TABLE IF EXISTS main.staged_grants;
DROP TABLE IF EXISTS main.snapshots;

-- A full import scans the target's accounts by status to find the ones the target no longer
-- returned (and counts the active ones for the deletion threshold); this index covers those
-- scans (the key columns ride along), so they read a few bytes per account, not the row.
CREATE INDEX IF NOT EXISTS accounts_by_status ON accounts (target, status, task_changed_at);
