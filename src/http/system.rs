//! Health, status, metrics and the OpenAPI document.
//!
//! `/healthz` and `/status` are what a load balancer and an admin poll when something is
//! wrong, so they answer within [`BUDGET`] whatever the database or Asterisk does; a value
//! that could not be learnt in time is `null`, never a guess.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::{App, Resp};
use crate::asterisk::ami;
use crate::config::{AmiSettings, ReloadMode};
use crate::domain::UserRules;

pub const OPENAPI: &str = include_str!("openapi.json");

/// How long a health or status answer may wait for any one component.
const BUDGET: Duration = Duration::from_millis(800);

/// `fut` within the budget; the error (or the timeout) as a short reason.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(BUDGET, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{what} did not answer within {} ms",
            BUDGET.as_millis()
        )),
    }
}

/// `"ok"`, or why the database cannot be used (the pool's last connection error when
/// the database does not answer at all).
async fn database(app: &App) -> Result<(), String> {
    within("the database", app.store.ping())
        .await
        .map_err(|timeout| app.store.last_error().unwrap_or(timeout))
}

pub async fn healthz(app: &App) -> Resp {
    match database(app).await {
        Ok(()) => json_response(StatusCode::OK, &json!({"status": "ok", "database": "ok"})),
        Err(reason) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "database": reason}),
        ),
    }
}

/// The OpenAPI document, with this instance's rules for a user: the extension range as the
/// bounds of `extension` and the offered transports as the `enum` of `transport`, in the
/// request schemas. Both are configuration, and a client (or a schema-driven test tool) must
/// see the rule the server applies. Answers keep the document's pattern: a stored transport
/// a node no longer offers is still shown as it is. Built once, at start-up.
pub fn openapi_document(rules: UserRules<'_>) -> Bytes {
    let Ok(mut doc) = serde_json::from_str::<Value>(OPENAPI) else {
        // Unreachable: a unit test parses the embedded document.
        return Bytes::from_static(OPENAPI.as_bytes());
    };
    let transports: Vec<Value> = rules
        .transports
        .iter()
        .map(|t| Value::from(t.as_str()))
        .collect();
    for schema in ["NewUser", "UserPatch", "ImportUser"] {
        let props = format!("/components/schemas/{schema}/properties");
        if let Some(ext) = doc.pointer_mut(&format!("{props}/extension")) {
            ext["minimum"] = rules.range.min().into();
            ext["maximum"] = rules.range.max().into();
        }
        if let Some(transport) = doc.pointer_mut(&format!("{props}/transport")) {
            transport["enum"] = Value::Array(transports.clone());
        }
    }
    serde_json::to_vec(&doc).map_or_else(|_| Bytes::from_static(OPENAPI.as_bytes()), Bytes::from)
}

pub fn openapi(document: &Bytes) -> Resp {
    let mut resp = Response::new(super::body::full(document.clone()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The Prometheus exposition (OpenMetrics text). Built from atomics and the registration
/// view in memory: it never waits for the database or Asterisk.
pub fn metrics(app: &App) -> Result<Resp, ApiError> {
    let body = app
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut resp = Response::new(super::body::full(body));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(resp)
}

/// Whether the configured AMI account can log in now.
async fn ami(app: &App) -> String {
    let a = &app.config.asterisk;
    match a.reload {
        ReloadMode::None => "disabled (PORTAL_RELOAD=none)".into(),
        ReloadMode::Cli => "disabled (PORTAL_RELOAD=cli)".into(),
        ReloadMode::Ami => {
            let settings = AmiSettings {
                timeout: BUDGET,
                ..a.ami.clone()
            };
            match within("AMI", ami::Client::login(&settings)).await {
                Ok(c) => {
                    // Logging off waits for a reply: not on the answer's time.
                    tokio::spawn(c.logoff());
                    "ok".into()
                }
                Err(reason) => reason,
            }
        }
    }
}

/// The service's state. A caller bound to a tenant is told its tenant's pending changes,
/// registrations and last apply alone (as [`super::apply::seen_by`] shows a record).
pub async fn status(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    let bound = ctx.tenant.as_ref();
    // Before this request takes connections of its own: what the rest of the portal uses.
    let pool = app.store.pool_state();
    let (database, ami, last_apply, pending) = tokio::join!(
        database(app),
        ami(app),
        within(
            "the database",
            // The node's last apply, shown as the caller may see it (null when it was
            // another tenant's); GET /applies lists the caller's own.
            app.store.list_applies(app.config.node.as_str(), 1, None)
        ),
        within("the database", app.applier.pending(bound)),
    );
    let agi = if app.probe_server.is_running() {
        "ok"
    } else {
        "not listening"
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "node": app.config.node,
            "database": database.map_or_else(|e| e, |()| "ok".to_owned()),
            "ami": ami,
            "agi": agi,
            "last_apply": last_apply
                .ok()
                .and_then(|mut v| v.pop())
                .and_then(|rec| super::apply::seen_by(&rec, bound)),
            "pending": pending.ok().map(|p| p.pending),
            "registrations": match bound {
                Some(t) => app.registrations.summary_of(t.as_str()),
                None => app.registrations.summary(),
            },
            "event_streams": app.streams.open(),
            "pool": pool,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::OPENAPI;

    #[test]
    fn the_embedded_document_is_json_with_the_range_to_fill_in() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let ext = &doc["components"]["schemas"]["NewUser"]["properties"]["extension"];
        assert!(ext["minimum"].is_u64() && ext["maximum"].is_u64(), "{ext}");
    }
}
