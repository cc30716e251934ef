//! Handlers for applying, the pending diff and the audit log.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::error::{json_response, ApiError};
use super::request::{bool_param, int_param, query};
use super::App;
use super::Resp;

pub async fn apply(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let q = query(req, &["dry_run"])?;
    let dry_run = bool_param(&q, "dry_run")?;
    let rec = if dry_run {
        app.applier.dry_run().await?
    } else {
        app.applier.apply().await?
    };
    Ok(json_response(StatusCode::OK, &rec))
}

pub async fn pending(app: &App) -> Result<Resp, ApiError> {
    Ok(json_response(StatusCode::OK, &app.applier.pending().await?))
}

pub async fn list(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let q = query(req, &["limit"])?;
    let limit = int_param(&q, "limit", 50, 1, 1000)?;
    let applies = app.store.list_applies(limit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "applies": applies }),
    ))
}
