//! Reading requests: JSON bodies within their limits, and each route's
//! query string as one typed struct, so that a handler sees only checked values and every
//! refusal is a 422 naming the parameter (never a value passed on for PostgreSQL to refuse).

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::ApiError;
use crate::auth::Actor;
use crate::domain::{NodeName, TenantSlug, ValidationError};
use crate::record::Strategy;
use crate::store::Order;

pub const MAX_BODY: usize = 64 * 1024;

/// Reads a JSON body: `application/json`, at most 64 KiB, well-formed.
pub async fn json_body(req: Request<Incoming>) -> Result<Value, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let bytes = body_within(req, MAX_BODY, "64 KiB").await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// The media type of the request body (`Content-Type` without parameters, lower-cased)
/// and its parameters as they were sent.
pub fn content_type(req: &Request<Incoming>) -> Option<(String, String)> {
    let v = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let (media, params) = v.split_once(';').unwrap_or((v, ""));
    Some((media.trim().to_ascii_lowercase(), params.trim().to_owned()))
}

/// Reads a whole body of at most `limit` bytes (`shown` says the limit in words): a
/// declared length above it is refused before a byte is read, and reading stops at it.
pub async fn body_within(
    req: Request<Incoming>,
    limit: usize,
    shown: &'static str,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(shown));
    }
    Ok(Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::PayloadTooLarge(shown)
            } else {
                ApiError::InvalidJson("the body could not be read".into())
            }
        })?
        .to_bytes())
}

/// Reads the query string into `T`, a struct whose fields are the route's parameters and
/// that carries `#[serde(deny_unknown_fields)]`. Every refusal is a 422 naming the
/// parameter: an unknown one by its own name, one given twice, or one whose value its type
/// refused (the message is the type's).
pub fn query<T: DeserializeOwned>(req: &Request<Incoming>) -> Result<T, ApiError> {
    let raw = req.uri().query().unwrap_or("");
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| query_error(&e).into())
}

/// Names the parameter behind a query-string error. serde_path_to_error records the key
/// that an unknown-parameter or a bad-value error came from; a repeated parameter fails in
/// the struct itself, above any key, and serde's message names it as "duplicate field `x`".
fn query_error(e: &serde_path_to_error::Error<serde_urlencoded::de::Error>) -> ValidationError {
    let message = e.inner().to_string();
    let key = e.path().iter().next_back().and_then(|s| match s {
        serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
        _ => None,
    });
    match key {
        Some(key) if message.starts_with("unknown field") => {
            ValidationError::new(key, "unknown query parameter")
        }
        Some(key) => ValidationError::new(key, message),
        None => match message
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            Some(field) => ValidationError::new(field, "given more than once"),
            None => ValidationError::new("query", message),
        },
    }
}

/// An integer query parameter within `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.parse::<i64>() {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(Self(n)),
            _ => Err(D::Error::custom(format!(
                "must be an integer from {MIN} to {MAX}"
            ))),
        }
    }
}

/// An actor a query names: `bootstrap`, `cli` or a token's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorName(pub Actor);

impl<'de> Deserialize<'de> for ActorName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Actor::parse(&String::deserialize(d)?)
            .map(Self)
            .map_err(|_| D::Error::custom("must be a token's name, bootstrap or cli"))
    }
}

/// A boolean query parameter: `true`, `false`, `1` or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "true" | "1" => Ok(Self(true)),
            "false" | "0" => Ok(Self(false)),
            _ => Err(D::Error::custom("must be true, false, 1 or 0")),
        }
    }
}

/// `GET /users`: a page of users, filtered and sorted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    pub limit: Option<Bounded<1, 1000>>,
    /// Capped so that offset + page size never overflows.
    pub offset: Option<Bounded<0, { i32::MAX as i64 }>>,
    pub q: Option<String>,
    pub order: Option<SortKey>,
    pub direction: Option<Descending>,
    /// Only users whose phones are (`true`) or are not (`false`) registered.
    pub registered: Option<Flag>,
    /// Only the users of this tenant (a slug; one that names no tenant is refused).
    pub tenant: Option<TenantSlug>,
}

/// `order`: one of the store's sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey(pub Order);

impl<'de> Deserialize<'de> for SortKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Order::parse(&String::deserialize(d)?)
            .map(Self)
            .ok_or_else(|| D::Error::custom("must be one of extension, name, email, created_at"))
    }
}

/// `direction`: `asc` or `desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descending(pub bool);

impl<'de> Deserialize<'de> for Descending {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "asc" => Ok(Self(false)),
            "desc" => Ok(Self(true)),
            _ => Err(D::Error::custom("must be asc or desc")),
        }
    }
}

/// `POST /apply`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    pub dry_run: Option<Flag>,
    pub nodes: Option<NodeList>,
    pub strategy: Option<Strategy>,
    /// Only this tenant's changes (a slug; one that names no tenant is refused).
    pub tenant: Option<TenantSlug>,
}

/// `nodes`: comma-separated node names, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeList(pub Vec<NodeName>);

impl<'de> Deserialize<'de> for NodeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let mut names: Vec<NodeName> = Vec::new();
        for part in raw.split(',') {
            let name = NodeName::parse(part).map_err(D::Error::custom)?;
            if names.contains(&name) {
                return Err(D::Error::custom(format!("names node '{name}' twice")));
            }
            names.push(name);
        }
        Ok(Self(names))
    }
}

/// `GET /applies`: the newest audit records of a node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesQuery {
    pub limit: Option<Bounded<1, 1000>>,
    pub node: Option<NodeName>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(raw: &str) -> Result<Vec<String>, String> {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        ApplyQuery::deserialize(de)
            .map(|q| {
                q.nodes
                    .map_or_else(Vec::new, |n| n.0.iter().map(|n| n.to_string()).collect())
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn nodes_are_a_comma_list_of_distinct_names_in_order() {
        assert_eq!(nodes("nodes=pbx2,pbx1").unwrap(), ["pbx2", "pbx1"]);
        assert_eq!(nodes("nodes=a.b_c-1").unwrap(), ["a.b_c-1"]);
        for bad in [
            "nodes=",
            "nodes=a,",
            "nodes=a,a",
            "nodes=a%20b",
            "nodes=%C3%A9",
        ] {
            assert!(nodes(bad).is_err(), "{bad}");
        }
        assert!(nodes("nodes=a,a").unwrap_err().contains("twice"));
    }
}
