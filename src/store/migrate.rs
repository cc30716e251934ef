//! Plain-SQL migrations, applied in order and recorded in `schema_migrations`.
//!
//! A transaction-level advisory lock makes concurrent start-ups safe: the second process
//! waits, then finds every migration recorded and does nothing. Each migration runs in
//! the same transaction as its record, so a failed one leaves no trace.

use super::{Store, StoreError};

/// (version, name, SQL), in order. Never edit a released migration: add a new one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "names_without_backslash",
        include_str!("../../migrations/0002_names_without_backslash.sql"),
    ),
    (
        3,
        "devices",
        include_str!("../../migrations/0003_devices.sql"),
    ),
    // 4 is another branch's; versions need not be contiguous.
    (
        5,
        "tokens_and_audit",
        include_str!("../../migrations/0005_tokens_and_audit.sql"),
    ),
    (6, "nodes", include_str!("../../migrations/0006_nodes.sql")),
    (
        7,
        "transports",
        include_str!("../../migrations/0007_transports.sql"),
    ),
    (
        8,
        "tenants",
        include_str!("../../migrations/0008_tenants.sql"),
    ),
    (
        9,
        "applied_tenants",
        include_str!("../../migrations/0009_applied_tenants.sql"),
    ),
    (
        10,
        "tenant_tokens",
        include_str!("../../migrations/0010_tenant_tokens.sql"),
    ),
    (
        11,
        "tenant_apply",
        include_str!("../../migrations/0011_tenant_apply.sql"),
    ),
    (
        12,
        "audit_actor",
        include_str!("../../migrations/0012_audit_actor.sql"),
    ),
];

const MIGRATION_LOCK: i64 = 0x5042_5850_0000_0000; // "PBXP"

/// Applies pending migrations; returns how many ran.
pub async fn migrate(store: &Store) -> Result<usize, StoreError> {
    let mut conn = store.conn().await?;
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // "relation already exists, skipping" is not news at every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "applied migration");
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}

/// Versions known to this binary that the database has not recorded.
pub async fn pending(store: &Store) -> Result<Vec<i32>, StoreError> {
    let conn = store.conn().await?;
    let exists: bool = conn
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let done: Vec<i32> = if exists {
        conn.query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.0)
        .filter(|v| !done.contains(v))
        .collect())
}
