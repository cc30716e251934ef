//! Handlers for applying, the pending diff and the audit log.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::error::{json_response, ApiError};
use super::request::{query, AppliesQuery, ApplyQuery};
use super::Resp;
use crate::app::App;
use crate::apply::ApplyError;

/// A failed apply answers with its own record, so `error.code` reads like any other error.
fn failed_status(code: &str) -> StatusCode {
    match code {
        "reload_failed" | "health_check_failed" => StatusCode::BAD_GATEWAY,
        "database_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn apply(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let ApplyQuery { dry_run } = query(req)?;
    let dry_run = dry_run.is_some_and(|f| f.0);
    match app.run_apply(dry_run).await {
        Ok(row) => Ok(json_response(StatusCode::OK, &row)),
        Err(ApplyError::InProgress) => Err(ApiError::ApplyInProgress),
        Err(ApplyError::Store(e)) => Err(e.into()),
        Err(ApplyError::Failed(row)) => {
            let code = row.error.as_ref().map_or("", |e| e.code.as_str());
            Ok(json_response(failed_status(code), &row))
        }
    }
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
