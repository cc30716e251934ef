//! Handlers for applying, the pending diff and the audit log.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::{query, AppliesQuery, ApplyQuery};
use super::App;
use super::Resp;

pub async fn apply(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let ApplyQuery { dry_run } = query(req)?;
    let rec = if dry_run.is_some_and(|f| f.0) {
        app.applier.dry_run(&ctx.actor).await?
    } else {
        app.applier.apply(&ctx.actor).await?
    };
    Ok(json_response(StatusCode::OK, &rec))
}

pub async fn pending(app: &App) -> Result<Resp, ApiError> {
    Ok(json_response(StatusCode::OK, &app.applier.pending().await?))
}

pub async fn list(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let AppliesQuery { limit } = query(req)?;
    let limit = limit.map_or(50, |l| l.0);
    let applies = app.store.list_applies(limit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "applies": applies }),
    ))
}
