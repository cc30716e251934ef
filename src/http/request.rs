//! Reading requests: the bearer token, JSON bodies within their limits, query strings.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::domain::ValidationError;

pub const MAX_BODY: usize = 64 * 1024;

/// Checks `Authorization: Bearer <token>` in constant time. Both sides are hashed first,
/// so not even the token's length shows in the timing.
pub fn authorize(req: &Request<Incoming>, token: &str) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or(ApiError::Unauthorized)?;
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Reads a JSON body: `application/json`, at most 64 KiB, well-formed.
pub async fn json_body(req: Request<Incoming>) -> Result<Value, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let bytes: Bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("the body could not be read".into())
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// Query parameters, percent-decoded. A repeated parameter is refused.
pub fn query(
    req: &Request<Incoming>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ValidationError::new(k, "unknown query parameter").into());
        }
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(ValidationError::new(k, "given more than once").into());
        }
    }
    Ok(out)
}

/// An integer parameter within `min..=max`, or its default.
pub fn int_param(
    q: &HashMap<String, String>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(
                ValidationError::new(name, format!("must be an integer from {min} to {max}"))
                    .into(),
            ),
        },
    }
}

/// A boolean parameter (`true`/`false`/`1`/`0`), or false.
pub fn bool_param(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ValidationError::new(name, "must be true or false").into()),
    }
}
