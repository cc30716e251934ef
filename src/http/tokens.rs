//! `POST /tokens`, `GET /tokens`, `DELETE /tokens/{name}` (scope `admin`). The token's text
//! is in the 201 answer and nowhere else: not in a list, a log line or the audit.
//!
//! A token may be bound to one tenant (`"tenant"`). A caller bound to a tenant creates only
//! tokens of its own tenant (naming another: 422 field `tenant`), and lists and revokes only
//! those (another tenant's token: 404, as if there were none).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::json_body;
use super::tenants;
use super::{App, Resp};
use crate::auth::{expiry_days, Scopes, TokenName, TokenRuleError};
use crate::domain::{tenant_named, TenantSlug, ValidationError};

impl From<TokenRuleError> for ApiError {
    fn from(e: TokenRuleError) -> Self {
        ValidationError::new(e.field(), e.to_string()).into()
    }
}

/// A `POST /tokens` body, checked.
struct NewTokenRequest {
    name: TokenName,
    scopes: Scopes,
    expires_in_days: Option<i32>,
    tenant: Option<TenantSlug>,
}

fn parse(body: &Value) -> Result<NewTokenRequest, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ValidationError::new("body", "must be a JSON object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["name", "scopes", "expires_in_days", "tenant"].contains(&k.as_str()))
    {
        return Err(ValidationError::new(k.as_str(), "unknown field").into());
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ValidationError::new("name", "required, a string"))?;
    let name = TokenName::parse(name)?;
    let scopes = obj
        .get("scopes")
        .and_then(Value::as_array)
        .ok_or_else(|| ValidationError::new("scopes", "required, an array of scope names"))?
        .iter()
        .map(|s| {
            s.as_str()
                .ok_or_else(|| ValidationError::new("scopes", "must hold strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scopes = Scopes::parse(scopes)?;
    let expires_in_days = match obj.get("expires_in_days") {
        None | Some(Value::Null) => None,
        Some(v) => Some(expiry_days(v.as_i64().ok_or(TokenRuleError::BadExpiry)?)?),
    };
    Ok(NewTokenRequest {
        name,
        scopes,
        expires_in_days,
        tenant: tenant_named(obj)?,
    })
}

pub async fn create(app: &App, ctx: &Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let new = parse(&json_body(req).await?)?;
    let tenant = match tenants::within(ctx, new.tenant)? {
        Some(slug) => Some(tenants::named(app, &slug).await?.id),
        None => None,
    };
    let (token, info) = app
        .store
        .create_token(
            &new.name,
            new.scopes,
            new.expires_in_days,
            tenant,
            &ctx.actor,
        )
        .await?;
    tracing::info!(token = new.name.as_str(), actor = %ctx.actor, "token created");
    let mut body = serde_json::to_value(&info).unwrap_or_default();
    body["token"] = json!(token.expose());
    Ok(json_response(StatusCode::CREATED, &body))
}

pub async fn list(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    let tokens = app.store.list_tokens(ctx.tenant.as_ref()).await?;
    Ok(json_response(StatusCode::OK, &json!({ "tokens": tokens })))
}

/// The `{name}` of `/tokens/{name}`: a name that breaks the rule names no token.
fn name_in_path(req: &Request<Incoming>) -> Option<TokenName> {
    let last = req.uri().path().trim_end_matches('/').rsplit('/').next()?;
    TokenName::parse(last).ok()
}

pub async fn revoke(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let name = name_in_path(req).ok_or(ApiError::NotFound)?;
    if !app
        .store
        .revoke_token(&name, ctx.tenant.as_ref(), &ctx.actor)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    tracing::info!(token = name.as_str(), actor = %ctx.actor, "token revoked");
    let mut resp = Resp::default();
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
