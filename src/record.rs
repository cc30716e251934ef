//! The apply record: what one apply did, as the API answers it and the audit log keeps it.
//!
//! A leaf module (no I/O, no imports from the rest of the crate) so that every layer can
//! speak of an apply without importing the layer that produced it: `store` persists these
//! types, `http` serialises them, `apply` fills them from what `asterisk` returned. The
//! record holds no secret by construction: only numbers, statuses, hashes and Asterisk's
//! reload output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A hash of everything rendered for one extension (its name, secret, transport): what
/// `GET /apply/pending` compares, and what the applied state keeps instead of the secret.
pub type Fingerprint = [u8; 32];

/// The tenant every user from before tenants belongs to (`crate::domain::TenantSlug::DEFAULT`,
/// spelled here because this module is a leaf): its changes are the record's top-level
/// lists, as they were before tenants.
pub const DEFAULT_TENANT: &str = "default";

/// The fingerprint of every extension of one tenant, by number.
pub type TenantFingerprints = BTreeMap<u32, Fingerprint>;

/// The fingerprint of every extension of one rendering, by tenant slug and number: two
/// tenants' extension 100 are two objects. A tenant without extensions has no entry.
pub type Fingerprints = BTreeMap<String, TenantFingerprints>;

/// One tenant's extensions added, removed or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantChanges {
    pub added: Vec<u32>,
    pub removed: Vec<u32>,
    pub changed: Vec<u32>,
}

impl TenantChanges {
    /// `current` against `applied`, for one tenant.
    fn between(current: &TenantFingerprints, applied: &TenantFingerprints) -> Self {
        let mut c = Self::default();
        for (ext, print) in current {
            match applied.get(ext) {
                None => c.added.push(*ext),
                Some(old) if old != print => c.changed.push(*ext),
                Some(_) => {}
            }
        }
        c.removed = applied
            .keys()
            .filter(|e| !current.contains_key(e))
            .copied()
            .collect();
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What an apply changes. The top-level lists are the default tenant's, so a
/// single-company deployment reads the record as before tenants; every other tenant's
/// changes are under `tenants`, by slug (absent when none changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub added: Vec<u32>,
    pub removed: Vec<u32>,
    pub changed: Vec<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, TenantChanges>,
}

impl Changes {
    /// Extensions added, removed, or whose rendered sections differ (a rotated secret, a
    /// renamed user, another transport): `current` against `applied`, tenant by tenant.
    pub fn between(current: &Fingerprints, applied: &Fingerprints) -> Self {
        let empty = TenantFingerprints::new();
        let mut c = Self::default();
        let slugs: std::collections::BTreeSet<&String> =
            current.keys().chain(applied.keys()).collect();
        for slug in slugs {
            let t = TenantChanges::between(
                current.get(slug).unwrap_or(&empty),
                applied.get(slug).unwrap_or(&empty),
            );
            if slug == DEFAULT_TENANT {
                (c.added, c.removed, c.changed) = (t.added, t.removed, t.changed);
            } else if !t.is_empty() {
                c.tenants.insert(slug.clone(), t);
            }
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.tenants.values().all(TenantChanges::is_empty)
    }

    /// Every tenant's changes, the default tenant's first (with its slug).
    pub fn by_tenant(&self) -> impl Iterator<Item = (&str, [&[u32]; 3])> {
        std::iter::once((
            DEFAULT_TENANT,
            [&self.added[..], &self.removed[..], &self.changed[..]],
        ))
        .chain(self.tenants.iter().map(|(slug, t)| {
            (
                slug.as_str(),
                [&t.added[..], &t.removed[..], &t.changed[..]],
            )
        }))
    }

    /// One tenant's changes alone, in the record's shape (the default tenant's at the top
    /// level, another's under `tenants`).
    pub fn of_tenant(&self, slug: &str) -> Self {
        if slug == DEFAULT_TENANT {
            return Self {
                added: self.added.clone(),
                removed: self.removed.clone(),
                changed: self.changed.clone(),
                tenants: BTreeMap::new(),
            };
        }
        Self {
            tenants: self
                .tenants
                .get(slug)
                .filter(|t| !t.is_empty())
                .map(|t| BTreeMap::from([(slug.to_owned(), t.clone())]))
                .unwrap_or_default(),
            ..Self::default()
        }
    }

    /// The extensions added or changed, by tenant and number.
    pub fn touched(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_tenant().flat_map(|(slug, [added, _, changed])| {
            added.iter().chain(changed).map(move |n| (slug, *n))
        })
    }

    /// The extensions removed, by tenant and number.
    pub fn removed_all(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_tenant()
            .flat_map(|(slug, [_, removed, _])| removed.iter().map(move |n| (slug, *n)))
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ReloadMethod {
    Ami,
    Cli,
    None,
}

impl ReloadMethod {
    /// As serialised.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reload {
    pub method: ReloadMethod,
    pub output: String,
}

impl Reload {
    /// Nothing was reloaded (yet).
    pub fn none(output: impl Into<String>) -> Self {
        Self {
            method: ReloadMethod::None,
            output: output.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    /// Extensions proven: those the probe asked about one by one and those the whole-file
    /// proof covers.
    pub checked: u32,
    pub missing: Vec<String>,
    /// How they were proven; absent when no probe ran (and in records from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
}

impl Health {
    pub fn skipped() -> Self {
        Self {
            status: HealthStatus::Skipped,
            checked: 0,
            missing: Vec::new(),
            proof: None,
        }
    }
}

/// How a probe proved what Asterisk holds (ARCHITECTURE.md, "What the probe proves").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub scope: ProofScope,
    /// Why every extension was visited (scope `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub because: Option<FullProofReason>,
    /// Extensions asked about one by one (endpoint, aor, and for a removed one its
    /// dialplan entry; for an added or changed one its options too).
    pub visited: u32,
    /// Generated files proven read whole, every tenant's: each endpoints file by its
    /// sentinel object, the default routing file by the marker its probe context passes,
    /// another tenant's routing file by its last context (2 for a single company).
    pub whole_files: u32,
    /// Extensions proven in all (`checked`).
    pub total: u32,
}

/// Which extensions the probe visits one by one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ProofScope {
    /// Only those the apply added, changed or removed: the rest is what the previous
    /// proof saw, in a file Asterisk read whole.
    Changed,
    /// Every one.
    All,
}

/// Why a probe visited every extension instead of only the changed ones.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FullProofReason {
    /// This process has not proven this node's Asterisk since it started, or its last
    /// apply was not proven (failed, rolled back, probe off).
    NoEarlierProof,
    /// Another process applied to this node since (its applied state is not the one
    /// proven).
    AppliedElsewhere,
    /// Asterisk started since the last proof: it loaded every object afresh.
    AsteriskRestarted,
    /// A module was reloaded since the last proof by someone else than the portal.
    ReloadedOutside,
    /// Asterisk's core status could not be read (reloads over the CLI, or `CoreStatus`
    /// refused): nothing says the objects are as last proven.
    NoCoreStatus,
}

/// Why an apply failed. Serialised as the snake_case `error.code` of the record; the one
/// mapping to an HTTP status is in `http::error`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FailureCode {
    /// The database could not be read or written during the apply.
    DatabaseUnavailable,
    /// The files could not be rendered, read or written.
    WriteFailed,
    /// Asterisk did not confirm the reload.
    ReloadFailed,
    /// Asterisk does not hold what was applied.
    HealthCheckFailed,
    /// The process stopped during the apply (recorded at the next start or apply).
    Interrupted,
    /// The apply itself failed unexpectedly (a bug): its cause is in the log.
    Internal,
    /// A chosen node is not alive: nothing was asked of it.
    NodeUnreachable,
    /// A chosen node did not record its outcome in time.
    NodeTimeout,
    /// A chosen node was already applying.
    ApplyInProgress,
}

impl FailureCode {
    /// Every code, in the order declared (`/metrics` shows each from the start).
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// As serialised (the record's `error.code`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The `error` of a failed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: FailureCode,
    pub message: String,
}

/// Serialised, stored and shown as its snake-case name: serde's and strum's derives both
/// read it from the variant, and a test holds them equal.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = UnknownStatus,
    parse_err_fn = UnknownStatus::of
)]
pub enum ApplyStatus {
    Running,
    Applied,
    Unchanged,
    DryRun,
    Failed,
    Interrupted,
    /// Only a node's outcome: a rolling apply stopped before this node.
    Skipped,
}

impl ApplyStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether a node in this state holds what the database held when it applied.
    pub fn succeeded(self) -> bool {
        matches!(self, Self::Applied | Self::Unchanged)
    }
}

/// A status word that no version of the portal writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown apply status {0:?}")]
pub struct UnknownStatus(pub String);

impl UnknownStatus {
    fn of(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// One apply: the API's apply result and the audit row are this same record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyRecord {
    pub id: i64,
    pub status: ApplyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub duration_ms: Option<i64>,
    pub endpoints: i32,
    pub changes: Changes,
    pub reload: Reload,
    pub health: Health,
    pub rolled_back: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// Hash of both files as written; not part of the API.
    #[serde(skip)]
    pub content_hash: Option<String>,
    /// Who asked for it: a token name, `bootstrap` or `cli` (`unknown` before the audit).
    pub actor: String,
    /// The node whose audit log holds this record.
    pub node: String,
    /// The node that asked this one to apply, when another did.
    pub requested_by: Option<String>,
    /// The outcome on every node the apply chose, in order.
    pub nodes: Vec<NodeOutcome>,
    /// The tenant whose changes alone it applied; absent when it applied every tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// What a caller bound to a tenant is told of an apply that covered every tenant (its
/// `GET /events` stream, its `/status`): the record's outcome and that tenant's changes
/// alone — the record's nodes, proof and errors may name other tenants' lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantApply<'a> {
    pub id: i64,
    pub status: ApplyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub duration_ms: Option<i64>,
    pub node: &'a str,
    pub tenant: &'a str,
    pub changes: Changes,
}

impl ApplyRecord {
    /// The record as a caller bound to `slug` is told it (see [`TenantApply`]).
    pub fn seen_by<'a>(&'a self, slug: &'a str) -> TenantApply<'a> {
        TenantApply {
            id: self.id,
            status: self.status,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration_ms: self.duration_ms,
            node: &self.node,
            tenant: slug,
            changes: self.changes.of_tenant(slug),
        }
    }
}

/// How a cluster apply runs its nodes. Its names (`?strategy=`, `--strategy`) are serde's
/// and strum's, held equal by a test.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, strum::EnumString, strum::EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Strategy {
    /// Every node at once.
    #[default]
    Parallel,
    /// One node at a time, stopping at the first failure.
    Rolling,
}

/// What one node did in an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOutcome {
    pub node: String,
    pub status: ApplyStatus,
    /// The node's own audit record, when it started one.
    pub apply_id: Option<i64>,
    pub reload: Reload,
    pub health: Health,
    pub rolled_back: bool,
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl NodeOutcome {
    /// The node's part of its own record.
    pub fn of(rec: &ApplyRecord) -> Self {
        Self {
            node: rec.node.clone(),
            status: rec.status,
            apply_id: Some(rec.id),
            reload: rec.reload.clone(),
            health: rec.health.clone(),
            rolled_back: rec.rolled_back,
            duration_ms: rec.duration_ms,
            error: rec.error.clone(),
        }
    }

    /// A node that did not apply: `skipped`, or failed with `code` before it started.
    pub fn without_apply(node: &str, status: ApplyStatus, error: Option<ErrorBody>) -> Self {
        Self {
            node: node.to_owned(),
            status,
            apply_id: None,
            reload: Reload::none(""),
            health: Health::skipped(),
            rolled_back: false,
            duration_ms: None,
            error,
        }
    }

    pub fn failed(node: &str, code: FailureCode, message: impl Into<String>) -> Self {
        Self::without_apply(
            node,
            ApplyStatus::Failed,
            Some(ErrorBody {
                code,
                message: message.into(),
            }),
        )
    }
}

/// The status and error of a cluster apply from its nodes' outcomes (in order):
/// `applied` when every node applied or was unchanged (`unchanged` when all were),
/// otherwise `failed` with the first failing node's error, naming the node.
pub fn overall(outcomes: &[NodeOutcome]) -> (ApplyStatus, Option<ErrorBody>) {
    if let Some(bad) = outcomes.iter().find(|o| !o.status.succeeded()) {
        let (code, message) = match &bad.error {
            Some(e) => (e.code, e.message.as_str()),
            None => (FailureCode::Internal, "did not finish"),
        };
        return (
            ApplyStatus::Failed,
            Some(ErrorBody {
                code,
                message: format!("node {}: {message}", bad.node),
            }),
        );
    }
    if outcomes.iter().all(|o| o.status == ApplyStatus::Unchanged) {
        (ApplyStatus::Unchanged, None)
    } else {
        (ApplyStatus::Applied, None)
    }
}

impl ApplyRecord {
    /// A record that has just started.
    pub fn running(id: i64, started_at: OffsetDateTime) -> Self {
        Self {
            id,
            status: ApplyStatus::Running,
            started_at,
            finished_at: None,
            duration_ms: None,
            endpoints: 0,
            changes: Changes::default(),
            reload: Reload::none(""),
            health: Health::skipped(),
            rolled_back: false,
            error: None,
            content_hash: None,
            actor: String::new(),
            node: String::new(),
            requested_by: None,
            nodes: Vec::new(),
            tenant: None,
        }
    }

    /// Marks the record failed.
    pub fn fail(&mut self, code: FailureCode, message: impl Into<String>) {
        self.status = ApplyStatus::Failed;
        self.error = Some(ErrorBody {
            code,
            message: message.into(),
        });
    }

    /// The failure code, when the apply failed.
    pub fn failure(&self) -> Option<FailureCode> {
        self.error.as_ref().map(|e| e.code)
    }

    /// Stamps the end: `finished_at` in microseconds, as PostgreSQL stores it, so that the
    /// answer equals the audit row read back.
    pub fn finish(&mut self, now: OffsetDateTime, elapsed: std::time::Duration) {
        let now = now
            .replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now);
        self.finished_at = Some(now);
        self.duration_ms = Some(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    }
}

/// What the last successful apply wrote.
#[derive(Debug, Clone, Default)]
pub struct AppliedState {
    pub fingerprints: Fingerprints,
    pub content_hash: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fingerprints of `(tenant, number, byte)`: every byte of a number's print the same.
    pub(crate) fn prints(entries: &[(&str, u32, u8)]) -> Fingerprints {
        let mut out = Fingerprints::new();
        for (slug, n, b) in entries {
            out.entry((*slug).to_owned())
                .or_default()
                .insert(*n, [*b; 32]);
        }
        out
    }

    #[test]
    fn changes_classify_added_removed_and_changed() {
        let applied = prints(&[
            ("default", 1000, 1),
            ("default", 1001, 2),
            ("default", 1002, 3),
        ]);
        let current = prints(&[
            ("default", 1000, 1),
            ("default", 1001, 9),
            ("default", 1003, 4),
        ]);
        let c = Changes::between(&current, &applied);
        assert_eq!(
            (&c.added, &c.removed, &c.changed),
            (&vec![1003], &vec![1002], &vec![1001])
        );
        assert!(c.tenants.is_empty());
        assert!(Changes::between(&applied, &applied).is_empty());
    }

    #[test]
    fn two_tenants_extension_100_are_two_objects_and_the_record_stays_compatible() {
        let applied = prints(&[("default", 100, 1), ("acme", 100, 1), ("gone", 7, 1)]);
        let current = prints(&[
            ("default", 100, 1),
            ("acme", 100, 2),
            ("acme", 101, 3),
            ("beta", 100, 1),
        ]);
        let c = Changes::between(&current, &applied);
        assert!(c.added.is_empty() && c.removed.is_empty() && c.changed.is_empty());
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({
                "added": [], "removed": [], "changed": [],
                "tenants": {
                    "acme": {"added": [101], "removed": [], "changed": [100]},
                    "beta": {"added": [100], "removed": [], "changed": []},
                    "gone": {"added": [], "removed": [7], "changed": []}
                }
            })
        );
        assert_eq!(
            c.touched().collect::<Vec<_>>(),
            [("acme", 101), ("acme", 100), ("beta", 100)]
        );
        assert_eq!(c.removed_all().collect::<Vec<_>>(), [("gone", 7)]);
        assert!(!c.is_empty());
        // A single-company record reads and writes as before: no `tenants`.
        let old = serde_json::json!({"added": [1], "removed": [], "changed": [2]});
        let back: Changes = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), old);
        assert_eq!(
            back.touched().collect::<Vec<_>>(),
            [("default", 1), ("default", 2)]
        );
    }

    #[test]
    fn every_status_reads_back_and_an_unknown_one_is_an_error() {
        for s in <ApplyStatus as strum::IntoEnumIterator>::iter() {
            assert_eq!(s.as_str().parse::<ApplyStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
        assert_eq!(
            "Applied".parse::<ApplyStatus>(),
            Err(UnknownStatus("Applied".into()))
        );
    }

    #[test]
    fn failure_codes_serialise_as_snake_case() {
        let body = ErrorBody {
            code: FailureCode::HealthCheckFailed,
            message: "m".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":"health_check_failed","message":"m"}"#
        );
        let back: ErrorBody =
            serde_json::from_str(r#"{"code":"interrupted","message":"x"}"#).unwrap();
        assert_eq!(back.code, FailureCode::Interrupted);
        assert!(serde_json::from_str::<ErrorBody>(r#"{"code":"nope","message":"x"}"#).is_err());
    }

    #[test]
    fn codes_and_methods_read_as_serialised() {
        for c in FailureCode::all() {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for m in <ReloadMethod as strum::IntoEnumIterator>::iter() {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }

    #[test]
    fn the_document_names_every_proof_scope_reason_and_failure_code() {
        fn names<T: strum::IntoEnumIterator + Serialize>() -> Vec<serde_json::Value> {
            T::iter()
                .map(|v| serde_json::to_value(v).unwrap())
                .collect()
        }
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("http/openapi.json")).unwrap();
        let schemas = &doc["components"]["schemas"];
        let proof = &schemas["ApplyProof"]["properties"];
        assert_eq!(
            proof["scope"]["enum"].as_array().unwrap(),
            &names::<ProofScope>()
        );
        assert_eq!(
            proof["because"]["enum"].as_array().unwrap(),
            &names::<FullProofReason>()
        );
        assert_eq!(
            schemas["FailureCode"]["enum"].as_array().unwrap(),
            &names::<FailureCode>()
        );
        for s in <ProofScope as strum::IntoEnumIterator>::iter() {
            assert_eq!(serde_json::to_value(s).unwrap(), <&str>::from(s));
        }
        for r in <FullProofReason as strum::IntoEnumIterator>::iter() {
            assert_eq!(serde_json::to_value(r).unwrap(), <&str>::from(r));
        }
    }

    #[test]
    fn strategies_parse_as_serde_reads_them() {
        for s in <Strategy as strum::IntoEnumIterator>::iter() {
            let name = format!("{s:?}").to_lowercase();
            assert_eq!(name.parse::<Strategy>(), Ok(s));
            assert_eq!(serde_json::from_value::<Strategy>(name.into()).unwrap(), s);
        }
        assert!("Rolling".parse::<Strategy>().is_err());
    }

    #[test]
    fn a_cluster_apply_succeeds_only_when_every_node_did() {
        let done = |node: &str, status| NodeOutcome::without_apply(node, status, None);
        let applied = done("a", ApplyStatus::Applied);
        let unchanged = done("b", ApplyStatus::Unchanged);
        assert_eq!(
            overall(&[applied.clone(), unchanged.clone()]),
            (ApplyStatus::Applied, None)
        );
        assert_eq!(
            overall(&[unchanged.clone(), unchanged.clone()]),
            (ApplyStatus::Unchanged, None)
        );
        let late = NodeOutcome::failed("c", FailureCode::NodeTimeout, "no record in 30000 ms");
        let down = NodeOutcome::failed("d", FailureCode::NodeUnreachable, "not alive");
        let (status, error) = overall(&[applied, late, down, done("e", ApplyStatus::Skipped)]);
        let error = error.unwrap();
        assert_eq!(
            (status, error.code),
            (ApplyStatus::Failed, FailureCode::NodeTimeout)
        );
        assert_eq!(error.message, "node c: no record in 30000 ms");
        let (_, error) = overall(&[done("x", ApplyStatus::Interrupted)]);
        assert_eq!(error.unwrap().code, FailureCode::Internal);
    }

    #[test]
    fn finish_keeps_microseconds() {
        let mut r = ApplyRecord::running(1, OffsetDateTime::UNIX_EPOCH);
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(1_234_567_891);
        r.finish(now, std::time::Duration::from_millis(42));
        assert_eq!(r.finished_at.unwrap().nanosecond(), 234_567_000);
        assert_eq!(r.duration_ms, Some(42));
    }
}
