//! `/tenants` and `/tenants/{slug}` (scope `admin`): the companies sharing the PBX, each
//! with its own numbering plan and user limit. Also how the users' handlers find the
//! tenant a request names, so an unknown one is refused the same way everywhere: 422 field
//! `tenant` in a body or a query, 404 in a path.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

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

pub async fn create(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let new = NewTenant::parse(&json_body(req).await?)?;
    let tenant = app.store.create_tenant(&new).await?;
    tracing::info!(tenant = tenant.slug.as_str(), "tenant created");
    Ok(json_response(StatusCode::CREATED, &tenant))
}

pub async fn list(app: &App) -> Result<Resp, ApiError> {
    let tenants = app.store.list_tenants(&app.config.range).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "tenants": tenants }),
    ))
}

pub async fn get(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let slug = slug_in_path(req)?;
    let tenant = app
        .store
        .tenant(&slug, &app.config.range)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &tenant))
}

pub async fn update(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let slug = slug_in_path(&req)?;
    let patch = TenantPatch::parse(&json_body(req).await?)?;
    let tenant = app
        .store
        .update_tenant(&slug, &patch, &app.config.range)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &tenant))
}

pub async fn delete(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let slug = slug_in_path(req)?;
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
