//! Who is calling: the bearer token of a request, checked against `PORTAL_API_TOKEN` (the
//! bootstrap token, every scope) and the named tokens in the database.
//!
//! Both checks compare SHA-256 digests in constant time, so neither the bootstrap token's
//! length nor how much of a guess was right shows in the timing. A named token is found by
//! the unique index on its hash (no cache: a revocation anywhere holds from the next
//! request on every node), then compared again in constant time. Anything that is not a
//! well-formed header with a well-formed token is refused before the database is asked.

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::Request;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::App;
use crate::auth::{Actor, Scope, Scopes, TokenHash, MAX_HEADER};
use crate::domain::TenantSlug;

/// What a handler knows about the request beyond its input: who made it, and the one
/// tenant it is bound to (`None`: every tenant).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub tenant: Option<TenantSlug>,
}

/// An authenticated caller and what it may do.
#[derive(Debug)]
pub struct Caller {
    actor: Actor,
    scopes: Scopes,
    tenant: Option<TenantSlug>,
}

impl Caller {
    /// The request context when the caller holds `scope`; else 403 naming it.
    pub fn require(self, scope: Scope) -> Result<Ctx, ApiError> {
        if self.scopes.contains(scope) {
            Ok(Ctx {
                actor: self.actor,
                tenant: self.tenant,
            })
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

/// The token of `Authorization: Bearer <token>`: at most 1 KiB of visible ASCII, not empty.
fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?;
    if v.len() > MAX_HEADER {
        return None;
    }
    let (scheme, rest) = v.to_str().ok()?.split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 401 unless the request carries the bootstrap token or a live, unexpired named token.
pub async fn authenticate(app: &App, req: &Request<Incoming>) -> Result<Caller, ApiError> {
    let given = bearer(req).ok_or(ApiError::Unauthorized)?;
    let hash = TokenHash::of(given);
    let bootstrap = TokenHash::of(app.token.expose());
    if bool::from(hash.0.ct_eq(&bootstrap.0)) {
        return Ok(Caller {
            actor: Actor::Bootstrap,
            scopes: Scopes::all(),
            tenant: None,
        });
    }
    if !TokenHash::well_formed(given) {
        return Err(ApiError::Unauthorized);
    }
    match app.store.find_token(&hash).await? {
        Some(found) if bool::from(found.hash.0.ct_eq(&hash.0)) => Ok(Caller {
            actor: Actor::Token(found.name),
            scopes: found.scopes,
            tenant: found.tenant,
        }),
        _ => Err(ApiError::Unauthorized),
    }
}

/// `GET /whoami`: the caller's token name (`null` for the bootstrap token), scopes and
/// tenant, so that the console offers only what the token may do. Any valid token may ask.
pub fn whoami(caller: &Caller) -> super::Resp {
    let name = match &caller.actor {
        Actor::Token(n) => Some(n.as_str()),
        Actor::Bootstrap | Actor::Cli => None,
    };
    super::error::json_response(
        hyper::StatusCode::OK,
        &serde_json::json!({
            "name": name,
            "scopes": caller.scopes.names(),
            "tenant": caller.tenant.as_ref().map(|t| t.as_str()),
        }),
    )
}
