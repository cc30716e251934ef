//! `/tenants` and `/tenants/{slug}` (scope `admin`): the companies sharing the PBX, each
//! with its own numbering plan and user limit. Also how the users' handlers find the
//! tenant a request names, so an unknown one is refused the same way everywhere: 422 field
//! `tenant` in a body or a query, 404 in a path.
//!
//! A caller bound to a tenant ([`Ctx::tenant`]) is held to it here too: a body or a query
//! naming another tenant is 422 field `tenant` (the caller named it, so nothing is leaked
//! by saying it is not theirs), another tenant's object in a path is 404 `not_found`, as
//! if it did not exist (never 403, which would tell that it does). Creating and deleting
//! tenants is the host's job: a bound caller gets 403 `forbidden` for those.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::json_body;
use super::{App, Resp};
use crate::domain::{NewTenant, TenantPatch, TenantSlug, ValidationError};
use crate::store::TenantRow;

/// The tenant a body or a query names: 422 field `tenant` when there is none.
pub async fn named(app: &App, slug: &TenantSlug) -> Result<TenantRow, ApiError> {
    app.store
        .tenant(slug, &app.config.range)
        .await?
        .ok_or_else(|| ValidationError::new("tenant", format!("no tenant '{slug}'")).into())
}

/// The tenant a request acts in, given the one its body or query names (`None`: none):
/// an unbound caller's choice as it is, a bound caller's own tenant when it names none or
/// names its own, 422 field `tenant` when it names another.
pub fn within(ctx: &Ctx, named: Option<TenantSlug>) -> Result<Option<TenantSlug>, ApiError> {
    match (&ctx.tenant, named) {
        (None, named) => Ok(named),
        (Some(own), None) => Ok(Some(own.clone())),
        (Some(own), Some(named)) if named == *own => Ok(Some(named)),
        (Some(own), Some(named)) => Err(ValidationError::new(
            "tenant",
            format!("this token is bound to tenant '{own}' and cannot act in '{named}'"),
        )
        .into()),
    }
}

/// 404 unless the caller may see an object of `tenant` (found by a path): a bound caller
/// sees only its own tenant's, and another's is answered as if it did not exist.
pub fn visible(ctx: &Ctx, tenant: &TenantSlug) -> Result<(), ApiError> {
    match &ctx.tenant {
        Some(own) if own != tenant => Err(ApiError::NotFound),
        _ => Ok(()),
    }
}

/// 403 for a caller bound to a tenant: creating and deleting tenants is the host's.
fn host_only(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.tenant.is_some() {
        Err(ApiError::TenantBound)
    } else {
        Ok(())
    }
}

/// The `{slug}` of `/tenants/{slug}`: a slug that breaks the rule names no tenant.
fn slug_in_path(req: &Request<Incoming>) -> Result<TenantSlug, ApiError> {
    let last = req
        .uri()
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    TenantSlug::parse(last).map_err(|_| ApiError::NotFound)
}

pub async fn create(app: &App, ctx: &Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    host_only(ctx)?;
    let new = NewTenant::parse(&json_body(req).await?)?;
    let tenant = app.store.create_tenant(&new).await?;
    tracing::info!(tenant = tenant.slug.as_str(), "tenant created");
    Ok(json_response(StatusCode::CREATED, &tenant))
}

pub async fn list(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    let mut tenants = app.store.list_tenants(&app.config.range).await?;
    if let Some(own) = &ctx.tenant {
        tenants.retain(|t| t.slug == *own);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "tenants": tenants }),
    ))
}

pub async fn get(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let slug = slug_in_path(req)?;
    visible(ctx, &slug)?;
    let tenant = app
        .store
        .tenant(&slug, &app.config.range)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &tenant))
}

pub async fn update(app: &App, ctx: &Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let slug = slug_in_path(&req)?;
    visible(ctx, &slug)?;
    let patch = TenantPatch::parse(&json_body(req).await?)?;
    let tenant = app
        .store
        .update_tenant(&slug, &patch, &app.config.range)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &tenant))
}

pub async fn delete(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let slug = slug_in_path(req)?;
    // Another tenant's is not found, its own is the host's to delete.
    visible(ctx, &slug)?;
    host_only(ctx)?;
    if slug.is_default() {
        return Err(ValidationError::new(
            "slug",
            "the default tenant cannot be deleted (requests that name no tenant use it)",
        )
        .into());
    }
    if !app.store.delete_tenant(&slug).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(tenant = slug.as_str(), "tenant deleted");
    let mut resp = Resp::default();
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
