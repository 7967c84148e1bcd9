//! Runs, lease locks, audit events and the listing queries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::rows::{self, ts};
use super::{query_err, SqliteStore};
use crate::clock;
use crate::model::{Account, AuditEvent, Entitlement, Grant, JobKind, RunOutcome, RunRecord};
use crate::store::{
    AccountFilter, EntitlementFilter, GrantFilter, LockOutcome, NewRun, RunFilter, RunFinish,
    StoreResult,
};

/// How many runs or audit events a listing returns when the caller gives no limit.
const DEFAULT_LIST_LIMIT: u32 = 100;

/// The `LIMIT` of a listing where 0 means "no limit".
fn limit_or_all(limit: u32) -> i64 {
    if limit == 0 {
        -1
    } else {
        i64::from(limit)
    }
}

/// The `LIMIT` of a listing where 0 means "the default".
fn limit_or_default(limit: u32) -> i64 {
    i64::from(if limit == 0 {
        DEFAULT_LIST_LIMIT
    } else {
        limit
    })
}

/// The `job` and `target` conditions of a run listing (not its cursor or limit).
fn push_run_filter(query: &mut QueryBuilder<'_, Sqlite>, filter: &RunFilter) {
    if let Some(job) = &filter.job {
        query.push(" AND job = ").push_bind(job.clone());
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target.clone());
    }
}

/// The holder a run's lock carries (`run 42`, as the import jobs write it), in SQL.
const RUN_LOCK_HOLDER: &str = "'run ' || runs.id";

impl SqliteStore {
    pub(super) async fn start_run_impl(&self, run: &NewRun) -> StoreResult<i64> {
        let context = "recording the start of a run";
        let mut tx = self.write_tx(context).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (job, target, kind, trigger, actor, started_at, counts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{}') RETURNING id",
        )
        .bind(&run.job)
        .bind(&run.target)
        .bind(run.kind.as_str())
        .bind(run.trigger.as_str())
        .bind(&run.actor)
        .bind(ts(run.started_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(id)
    }

    pub(super) async fn finish_run_impl(&self, run_id: i64, finish: &RunFinish) -> StoreResult<()> {
        let context = "recording the end of a run";
        let mut tx = self.write_tx(context).await?;
        sqlx::query(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, counts = ?4, error = ?5 WHERE id = ?1",
        )
        .bind(run_id)
        .bind(ts(finish.finished_at))
        .bind(finish.outcome.as_str())
        .bind(rows::canonical_json(&finish.counts))
        .bind(&finish.error)
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn fail_open_runs_impl(
        &self,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let context = "failing runs left open";
        let mut tx = self.write_tx(context).await?;
        // A run whose lock is still leased is alive in another process (the daemon while a
        // CLI starts): leave it alone.
        let sql = format!(
            "UPDATE runs SET finished_at = ?1, outcome = ?2, error = ?3 \
             WHERE finished_at IS NULL \
               AND NOT EXISTS (SELECT 1 FROM locks l \
                               WHERE l.holder = {holder} AND l.expires_at > ?1)",
            holder = RUN_LOCK_HOLDER
        );
        let done = sqlx::query(&sql)
            .bind(ts(at))
            .bind(RunOutcome::Failed.as_str())
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(done.rows_affected())
    }

    pub(super) async fn get_run_impl(&self, run_id: i64) -> StoreResult<Option<RunRecord>> {
        let sql = format!("SELECT {} FROM runs WHERE id = ?1", rows::RUN_COLUMNS);
        let row = sqlx::query(&sql)
            .bind(run_id)
            .fetch_optional(&self.read)
            .await
            .map_err(query_err("reading a run"))?;
        row.as_ref().map(rows::run).transpose()
    }

    pub(super) async fn list_runs_impl(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM runs WHERE 1 = 1",
            rows::RUN_COLUMNS
        ));
        push_run_filter(&mut query, filter);
        if let Some(before) = filter.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit_or_default(filter.limit));
        let found = query
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(query_err("listing runs"))?;
        found.iter().map(rows::run).collect()
    }

    pub(super) async fn count_runs_impl(&self, filter: &RunFilter) -> StoreResult<u64> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM runs WHERE 1 = 1");
        push_run_filter(&mut query, filter);
        let count: i64 = query
            .build_query_scalar()
            .fetch_one(&self.read)
            .await
            .map_err(query_err("counting runs"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub(super) async fn last_success_impl(
        &self,
        target: &str,
        kind: JobKind,
    ) -> StoreResult<Option<RunRecord>> {
        let sql = format!(
            "SELECT {} FROM runs WHERE target = ?1 AND kind = ?2 AND outcome = ?3 \
             ORDER BY id DESC LIMIT 1",
            rows::RUN_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(target)
            .bind(kind.as_str())
            .bind(RunOutcome::Succeeded.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(query_err("reading the last successful run"))?;
        row.as_ref().map(rows::run).transpose()
    }

    pub(super) async fn last_finished_impl(
        &self,
        target: &str,
        kind: JobKind,
    ) -> StoreResult<Option<RunRecord>> {
        let sql = format!(
            "SELECT {} FROM runs WHERE target = ?1 AND kind = ?2 AND outcome IS NOT NULL \
             ORDER BY id DESC LIMIT 1",
            rows::RUN_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(target)
            .bind(kind.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(query_err("reading the last finished run"))?;
        row.as_ref().map(rows::run).transpose()
    }

    pub(super) async fn try_lock_impl(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<LockOutcome> {
        let context = "taking a lock";
        let now = clock::now();
        let expires = clock::after(now, ttl);
        let now = ts(now);
        let mut tx = self.write_tx(context).await?;
        let current: Option<(String, String)> =
            sqlx::query_as("SELECT holder, expires_at FROM locks WHERE name = ?1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err(context))?;
        if let Some((current_holder, expires_at)) = current {
            if current_holder != holder && expires_at > now {
                tx.rollback().await.map_err(query_err(context))?;
                return Ok(LockOutcome::HeldBy(current_holder));
            }
        }
        sqlx::query(
            "INSERT INTO locks (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
        )
        .bind(name)
        .bind(holder)
        .bind(ts(expires))
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(LockOutcome::Acquired)
    }

    pub(super) async fn unlock_impl(&self, name: &str, holder: &str) -> StoreResult<()> {
        let context = "releasing a lock";
        let mut tx = self.write_tx(context).await?;
        sqlx::query("DELETE FROM locks WHERE name = ?1 AND holder = ?2")
            .bind(name)
            .bind(holder)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn record_audit_impl(&self, event: &AuditEvent) -> StoreResult<()> {
        let context = "recording an audit event";
        let mut tx = self.write_tx(context).await?;
        sqlx::query(
            "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(ts(event.at))
        .bind(&event.actor)
        .bind(&event.target)
        .bind(event.object.map(|object| object.as_str()))
        .bind(&event.object_key)
        .bind(&event.action)
        .bind(event.run_id)
        .bind(rows::canonical_json(&event.details))
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn list_audit_impl(
        &self,
        target: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM audit_events",
            rows::AUDIT_COLUMNS
        ));
        if let Some(target) = target {
            query.push(" WHERE target = ").push_bind(target);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit_or_default(limit));
        let found = query
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(query_err("listing audit events"))?;
        found.iter().map(rows::audit_event).collect()
    }

    pub(super) async fn list_accounts_impl(
        &self,
        filter: &AccountFilter,
    ) -> StoreResult<Vec<Account>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM accounts a LEFT JOIN target_state t ON t.target = a.target WHERE 1 = 1",
            rows::ACCOUNT_COLUMNS
        ));
        if let Some(target) = &filter.target {
            query.push(" AND a.target = ").push_bind(target);
        }
        if let Some(status) = filter.status {
            query.push(" AND a.status = ").push_bind(status.as_str());
        }
        if let Some(owner) = &filter.owner {
            query.push(" AND a.owner = ").push_bind(owner);
        }
        if let Some((target, id)) = &filter.after {
            query
                .push(" AND (a.target, a.id) > (")
                .push_bind(target)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        query
            .push(" ORDER BY a.target, a.id LIMIT ")
            .push_bind(limit_or_all(filter.limit));
        let found = query
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(query_err("listing accounts"))?;
        found.iter().map(rows::account).collect()
    }

    pub(super) async fn list_entitlements_impl(
        &self,
        filter: &EntitlementFilter,
    ) -> StoreResult<Vec<Entitlement>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM entitlements e WHERE e.target = ",
            rows::ENTITLEMENT_COLUMNS
        ));
        query.push_bind(&filter.target);
        if let Some(entitlement_type) = &filter.entitlement_type {
            query
                .push(" AND e.type = ")
                .push_bind(entitlement_type)
                .push(" COLLATE NOCASE");
        }
        if let Some((entitlement_type, id)) = &filter.after {
            query
                .push(" AND (e.type, e.id) > (")
                .push_bind(entitlement_type)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        query
            .push(" ORDER BY e.type, e.id LIMIT ")
            .push_bind(limit_or_all(filter.limit));
        let found = query
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(query_err("listing entitlements"))?;
        found.iter().map(rows::entitlement).collect()
    }

    pub(super) async fn list_grants_impl(&self, filter: &GrantFilter) -> StoreResult<Vec<Grant>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM grants g \
             LEFT JOIN accounts a ON a.target = g.target AND a.id = g.account_id \
             LEFT JOIN entitlements e \
                 ON e.target = g.target AND e.type = g.type AND e.id = g.entitlement_id \
             WHERE g.target = ",
            rows::GRANT_COLUMNS
        ));
        query.push_bind(&filter.target);
        if let Some(account) = &filter.account {
            query.push(" AND a.name = ").push_bind(account);
        }
        if let Some((account_id, entitlement_type, entitlement_id)) = &filter.after {
            query
                .push(" AND (g.account_id, g.type, g.entitlement_id) > (")
                .push_bind(account_id)
                .push(", ")
                .push_bind(entitlement_type)
                .push(", ")
                .push_bind(entitlement_id)
                .push(")");
        }
        query
            .push(" ORDER BY g.account_id, g.type, g.entitlement_id LIMIT ")
            .push_bind(limit_or_all(filter.limit));
        let found = query
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(query_err("listing grants"))?;
        found.iter().map(rows::grant).collect()
    }
}
