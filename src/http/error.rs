//! Every error the API answers, and the one place each becomes an HTTP response.

use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::body::full;
use super::Resp;
use crate::apply::cluster::ClusterError;
use crate::apply::ApplyError;
use crate::bulk::file::RowError;
use crate::bulk::ImportError;
use crate::domain::ValidationError;
use crate::record::{ApplyRecord, FailureCode};
use crate::store::{StoreError, TenantChangeError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("this token lacks the '{0}' scope this route needs")]
    Forbidden(crate::auth::Scope),
    /// Creating or deleting a tenant, asked by a token bound to one: the host's job.
    #[error("this token is bound to a tenant; creating and deleting tenants needs an unbound admin token")]
    TenantBound,
    #[error("a token with this name already exists (revoke it first)")]
    TokenNameTaken,
    #[error("not found")]
    NotFound,
    #[error("method not allowed; allowed: {0}")]
    /// The route's methods, as its `Allow` header lists them.
    MethodNotAllowed(String),
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The Content-Type the route takes, e.g. `application/json`.
    #[error("Content-Type must be {0}")]
    UnsupportedMediaType(&'static str),
    /// The route's limit, e.g. `64 KiB`.
    #[error("request body is larger than {0}")]
    PayloadTooLarge(&'static str),
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("this extension is already taken")]
    ExtensionTaken,
    #[error("no free extension is left in the configured range")]
    PoolExhausted,
    #[error("a tenant with this slug already exists")]
    TenantExists,
    #[error("the tenant still has users: delete them first")]
    TenantNotEmpty,
    #[error("the tenant has reached its max_users")]
    TenantFull,
    /// An import needs more new numbers than the range has free.
    #[error("the file needs {needed} new extensions but only {free} are free in the range; nothing was imported")]
    NotEnoughExtensions { needed: u64, free: u64 },
    /// An import refused: every bad row of the file, nothing created.
    #[error("{} error(s) in the file; nothing was imported", .0.len())]
    ImportInvalid(Vec<RowError>),
    #[error("this Idempotency-Key was already used with a different body")]
    IdempotencyKeyReused,
    #[error("another apply is running; try again when it has finished")]
    ApplyInProgress,
    /// `GET /events` already serves its maximum of streams.
    #[error("{0} event streams are open already; try again later")]
    TooManyStreams(usize),
    #[error("the database is unavailable: {0}")]
    DatabaseUnavailable(String),
    /// An apply ran and failed: the answer is its record, whose `error.code` says why.
    #[error("apply failed")]
    ApplyFailed(Box<ApplyRecord>),
    /// The cause goes to the log, not to the client.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::TenantBound => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Validation(_) | Self::IdempotencyKeyReused | Self::ImportInvalid(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::EmailTaken
            | Self::ExtensionTaken
            | Self::PoolExhausted
            | Self::NotEnoughExtensions { .. }
            | Self::TokenNameTaken
            | Self::TenantExists
            | Self::TenantNotEmpty
            | Self::TenantFull
            | Self::ApplyInProgress => StatusCode::CONFLICT,
            Self::TooManyStreams(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Other nodes were asked: one of them may have failed behind this one.
            Self::ApplyFailed(rec) if rec.nodes.iter().any(|n| n.node != rec.node) => {
                StatusCode::BAD_GATEWAY
            }
            Self::ApplyFailed(rec) => match rec.failure() {
                Some(
                    FailureCode::ReloadFailed
                    | FailureCode::HealthCheckFailed
                    | FailureCode::NodeUnreachable
                    | FailureCode::NodeTimeout
                    | FailureCode::ApplyInProgress,
                ) => StatusCode::BAD_GATEWAY,
                Some(FailureCode::DatabaseUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
                Some(
                    FailureCode::WriteFailed | FailureCode::Interrupted | FailureCode::Internal,
                )
                | None => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) | Self::TenantBound => "forbidden",
            Self::TokenNameTaken => "token_name_taken",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Validation(_) => "validation_failed",
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::EmailTaken => "email_taken",
            Self::ExtensionTaken => "extension_taken",
            Self::PoolExhausted | Self::NotEnoughExtensions { .. } => "extension_pool_exhausted",
            Self::ImportInvalid(_) => "import_invalid",
            Self::TenantExists => "tenant_exists",
            Self::TenantNotEmpty => "tenant_not_empty",
            Self::TenantFull => "tenant_full",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::ApplyInProgress => "apply_in_progress",
            Self::TooManyStreams(_) => "too_many_streams",
            Self::DatabaseUnavailable(_) => "database_unavailable",
            Self::ApplyFailed(_) => "apply_failed",
            Self::Internal(_) => "internal",
        }
    }

    /// The one place an error becomes a response: `{"error": {code, message, field?}}`
    /// with the headers its status calls for, or a failed apply's own record. A refused
    /// import adds `errors`: every bad row with its row, field, code and message.
    pub fn into_response(self) -> Resp {
        let status = self.status();
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        let mut headers = Vec::new();
        match &self {
            Self::ApplyFailed(rec) => return json_response(status, rec),
            Self::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            Self::Validation(v) => {
                error["field"] = v.field.clone().into();
                error["message"] = v.message.clone().into();
            }
            Self::ImportInvalid(rows) => error["errors"] = json!(rows),
            Self::MethodNotAllowed(allow) => {
                // Method names are tokens: always a valid header value.
                if let Ok(v) = HeaderValue::from_str(allow) {
                    headers.push((ALLOW, v))
                }
            }
            Self::Unauthorized => {
                headers.push((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            _ => {}
        }
        let mut resp = json_response(status, &json!({ "error": error }));
        resp.headers_mut().extend(headers);
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Self::EmailTaken,
            StoreError::ExtensionTaken => Self::ExtensionTaken,
            StoreError::PoolExhausted => Self::PoolExhausted,
            StoreError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            StoreError::TokenNameTaken => Self::TokenNameTaken,
            StoreError::TenantExists => Self::TenantExists,
            StoreError::TenantNotEmpty => Self::TenantNotEmpty,
            StoreError::TenantFull => Self::TenantFull,
            StoreError::ExtensionOutsideRange => ValidationError::new(
                "extension",
                "must be within the tenant's range (it changed meanwhile)",
            )
            .into(),
            StoreError::NoSuchTenant => {
                ValidationError::new("tenant", "the tenant was deleted meanwhile").into()
            }
            StoreError::Unavailable(r) => Self::DatabaseUnavailable(r),
            // Only start-up makes a first connection; kept precise all the same.
            StoreError::Connect(c) => Self::DatabaseUnavailable(c.to_string()),
            StoreError::Db(ref db) if e.is_unavailable() => {
                Self::DatabaseUnavailable(crate::store::describe(db))
            }
            e @ (StoreError::Db(_) | StoreError::Corrupt(_)) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<TenantChangeError> for ApiError {
    fn from(e: TenantChangeError) -> Self {
        match e {
            TenantChangeError::DefaultRange => ValidationError::new(
                "extension_min",
                "the default tenant's range is PORTAL_EXTENSION_MIN/MAX",
            )
            .into(),
            e @ TenantChangeError::UsersOutside { field, .. } => {
                ValidationError::new(field, e.to_string()).into()
            }
            e @ TenantChangeError::BelowUsers { .. } => {
                ValidationError::new("max_users", e.to_string()).into()
            }
            TenantChangeError::Invalid(v) => v.into(),
            TenantChangeError::Store(e) => e.into(),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Apply(e) => e.into(),
            ClusterError::UnknownNode(name) => ValidationError::new(
                "nodes",
                format!("no node is named '{name}' (GET /nodes lists them)"),
            )
            .into(),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::InProgress => Self::ApplyInProgress,
            ApplyError::Store(e) => e.into(),
            ApplyError::Failed(rec) => Self::ApplyFailed(rec),
            e @ ApplyError::Panicked(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Invalid(rows) => Self::ImportInvalid(rows),
            ImportError::NotEnoughExtensions { needed, free } => {
                Self::NotEnoughExtensions { needed, free }
            }
            ImportError::InvalidJson(m) => Self::InvalidJson(m),
            ImportError::TenantFull { .. } => Self::TenantFull,
            ImportError::Store(e) => e.into(),
        }
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
