//! Health, status and the OpenAPI document.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::error::{json_response, ApiError};
use super::Resp;
use crate::app::App;

pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn healthz(app: &App) -> Resp {
    match app.store.ping().await {
        Ok(()) => json_response(StatusCode::OK, &json!({"status": "ok", "database": "ok"})),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "database": e.to_string()}),
        ),
    }
}

pub fn openapi() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub async fn status(app: &App) -> Result<Resp, ApiError> {
    let (database, ami) = tokio::join!(app.store.ping(), app.ami_status());
    let database = database.map_or_else(|e| e.to_string(), |()| "ok".to_owned());
    let last_apply = app
        .store
        .list_applies(1)
        .await
        .ok()
        .and_then(|mut v| v.pop());
    let pending = app.applier.pending().await.map(|p| p.pending).ok();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "database": database,
            "ami": ami,
            "agi": app.agi_status(),
            "last_apply": last_apply,
            "pending": pending.unwrap_or(false),
        }),
    ))
}
