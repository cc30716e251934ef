//! `GET /audit` (scope `read`): who changed what, newest first.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::{query, ActorName, Bounded};
use super::{App, Resp};

/// `GET /audit?limit=&user=&actor=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<Bounded<1, 1000>>,
    /// Only the rows about this user id (bounded by the largest integer every JSON client
    /// reads exactly, as the document states).
    user: Option<Bounded<1, 9_007_199_254_740_991>>,
    /// Only the rows this actor wrote (exact: a token's name, `bootstrap` or `cli`).
    actor: Option<ActorName>,
}

/// A caller bound to a tenant sees only the rows about its tenant (a row's tenant is the
/// touched user's or token's, else the acting token's).
pub async fn list(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let q: AuditQuery = query(req)?;
    let entries = app
        .store
        .list_audit(
            q.limit.map_or(100, |l| l.0),
            q.user.map(|u| u.0),
            q.actor.as_ref().map(|a| a.0.as_str()),
            ctx.tenant.as_ref(),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "entries": entries }),
    ))
}
