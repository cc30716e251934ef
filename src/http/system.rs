//! Health, status and the OpenAPI document: the routes an operator or a monitor reads
//! before anything else.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::error::{json_response, ApiError};
use super::Resp;
use crate::app::App;
use crate::domain::ExtensionRange;

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

/// The OpenAPI document, with this instance's extension range as the bounds of
/// `NewUser.extension`: the range is configuration, and a client (or a schema-driven test
/// tool) must see the rule the server applies.
pub fn openapi(range: ExtensionRange) -> Resp {
    match serde_json::from_str::<Value>(OPENAPI) {
        Ok(mut doc) => {
            if let Some(ext) = doc.pointer_mut("/components/schemas/NewUser/properties/extension") {
                ext["minimum"] = range.min().into();
                ext["maximum"] = range.max().into();
            }
            json_response(StatusCode::OK, &doc)
        }
        // Unreachable: a unit test parses the embedded document.
        Err(_) => {
            let mut resp = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
    }
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
