//! Bulk import and export: onboarding a whole company in one call, all or nothing.
//!
//! Shared by `POST /users/import`, `GET /users/export` and the `import` / `export`
//! commands, so that the command line and the API accept the same files and give the
//! same answers. The file is parsed in [`file`] (pure), checked and allocated in one
//! transaction by [`crate::store`], and answered as CSV or JSON by [`sheet`].
//!
//! A file with any error creates nothing, and its answer lists every error: the file's
//! own (shape, values, duplicates within the file) and, for the rows that parsed, their
//! clashes with existing users — so that one round of corrections is enough.

pub mod file;
pub mod sheet;

use sha2::{Digest, Sha256};

pub use file::Format;
use file::{Parsed, RowCode, RowError, TenantRanges};

use std::collections::HashMap;

use crate::domain::{Email, Extension, TenantSlug, UserRules};
use crate::store::{
    Conflict, ConflictKind, ImportFailure, Imported, PlannedUser, Store, StoreError,
};

/// Why an import created nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Every error of the file, sorted by row.
    #[error("{} error(s) in the file; nothing was imported", .0.len())]
    Invalid(Vec<RowError>),
    #[error(
        "the file needs {needed} new extensions but only {free} are free in the range; nothing was imported"
    )]
    NotEnoughExtensions { needed: u64, free: u64 },
    /// A tenant's rows would pass its `max_users`.
    #[error("tenant {tenant}: the file has {rows} new users but there is room for {room}; nothing was imported")]
    TenantFull {
        tenant: TenantSlug,
        rows: u64,
        room: u64,
    },
    /// A JSON body that is not JSON.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A real import or a dry run.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Check and allocate, then roll back: the numbers an import would get now.
    DryRun,
    /// Create every user, with an optional `Idempotency-Key`, audited as `actor`'s.
    Create {
        idempotency_key: Option<&'a str>,
        actor: &'a crate::auth::Actor,
    },
}

#[derive(Debug)]
pub enum Outcome {
    Created(Imported),
    Planned(Vec<PlannedUser>),
}

/// What an `Idempotency-Key` is compared by: the route, the format and the file's
/// fingerprint (see [`Parsed::fingerprint`]).
///
/// A caller bound to a tenant imports the rows naming none into its tenant, so its tenant
/// is part of the request: the same file and key from another tenant's caller is another
/// request (never a replay of this one's users and secrets).
fn request_hash(format: Format, fingerprint: &[u8; 32], bound: Option<&TenantSlug>) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(match format {
        Format::Csv => b"POST /users/import text/csv\n".as_slice(),
        Format::Json => b"POST /users/import application/json\n".as_slice(),
    });
    if let Some(t) = bound {
        h.update(format!("tenant {t}\n").as_bytes());
    }
    h.update(fingerprint);
    h.finalize().to_vec()
}

/// Imports (or plans) a whole file: all or nothing. `rules.range` is the default
/// tenant's; a row naming another tenant is checked against that tenant's range. `bound`:
/// the tenant of a caller bound to one, whose rows naming none are its, and naming another
/// are refused (field `tenant`).
pub async fn import(
    store: &Store,
    format: Format,
    bytes: &[u8],
    rules: UserRules<'_>,
    mode: Mode<'_>,
    bound: Option<&TenantSlug>,
) -> Result<Outcome, ImportError> {
    let range = rules.range;
    let known = store.list_tenants(range).await?;
    let mut ranges = TenantRanges {
        bound: bound.cloned(),
        ..TenantRanges::default()
    };
    let mut ids = HashMap::new();
    for t in known
        .iter()
        .filter(|t| bound.is_none_or(|own| t.slug == *own))
    {
        ranges.ranges.insert(t.slug.clone(), t.range()?);
        ids.insert(t.slug.clone(), t.id);
    }
    let parsed = file::parse_for(format, bytes, rules, &ranges)
        .map_err(|e| ImportError::InvalidJson(e.to_string()))?;
    let fingerprint = parsed.fingerprint;
    let (rows, users) = match parsed.into_users() {
        Ok(valid) => valid,
        Err(parsed) => {
            return Err(ImportError::Invalid(
                with_clashes(store, parsed, &ids).await?,
            ))
        }
    };
    // Every row's tenant is one of `known`: a row naming another was refused above.
    let tenants: Vec<i64> = users
        .iter()
        .map(|u| ids.get(&u.tenant).copied().ok_or(StoreError::NoSuchTenant))
        .collect::<Result<_, _>>()?;
    let result = match mode {
        Mode::DryRun => store
            .plan_import(&users, &tenants, range)
            .await
            .map(Outcome::Planned),
        Mode::Create {
            idempotency_key,
            actor,
        } => {
            let hash = idempotency_key.map(|_| request_hash(format, &fingerprint, bound));
            store
                .import_users(
                    &users,
                    &tenants,
                    range,
                    idempotency_key.zip(hash.as_deref()),
                    actor,
                )
                .await
                .map(Outcome::Created)
        }
    };
    result.map_err(|f| match f {
        ImportFailure::Conflicts(c) => ImportError::Invalid(clash_errors(&c, &rows)),
        ImportFailure::Exhausted { needed, free } => {
            ImportError::NotEnoughExtensions { needed, free }
        }
        ImportFailure::TenantFull { tenant, rows, room } => {
            ImportError::TenantFull { tenant, rows, room }
        }
        ImportFailure::Store(e) => ImportError::Store(e),
    })
}

/// A file's errors, with the clashes of its parsed values with existing users of the
/// same tenant added (`ids`: each tenant's id by slug).
async fn with_clashes(
    store: &Store,
    parsed: Parsed,
    ids: &HashMap<TenantSlug, i64>,
) -> Result<Vec<RowError>, StoreError> {
    let Parsed {
        rows, mut errors, ..
    } = parsed;
    if !rows.is_empty() {
        let emails: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.user.email.as_ref().map(Email::as_str))
            .collect();
        let numbers: Vec<Option<i32>> = rows
            .iter()
            .map(|r| r.user.extension.flatten().map(Extension::as_db))
            .collect();
        let tenants: Vec<Option<i64>> = rows
            .iter()
            .map(|r| r.user.tenant.as_ref().and_then(|t| ids.get(t).copied()))
            .collect();
        let clashes = store.import_conflicts(&emails, &numbers, &tenants).await?;
        let row_numbers: Vec<u64> = rows.iter().map(|r| r.row).collect();
        errors.extend(clash_errors(&clashes, &row_numbers));
        errors.sort_by_key(|e| e.row);
    }
    Ok(errors)
}

fn clash_errors(clashes: &[Conflict], rows: &[u64]) -> Vec<RowError> {
    clashes
        .iter()
        .filter_map(|c| {
            let row = *rows.get(c.index)?;
            Some(match c.kind {
                ConflictKind::Email => RowError {
                    row: Some(row),
                    field: Some("email".into()),
                    code: RowCode::EmailTaken,
                    message: "a user with this email already exists".into(),
                },
                ConflictKind::Extension => RowError {
                    row: Some(row),
                    field: Some("extension".into()),
                    code: RowCode::ExtensionTaken,
                    message: "this extension is already taken".into(),
                },
            })
        })
        .collect()
}
