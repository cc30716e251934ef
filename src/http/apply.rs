//! Handlers for applying, the pending diff, the audit log and the nodes.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::{query, AppliesQuery, ApplyQuery};
use super::App;
use super::Resp;
use crate::apply::cluster::{Choice, NodeState};
use crate::domain::{TenantSlug, ValidationError};
use crate::record::ApplyRecord;

/// A node as `GET /nodes` answers it.
#[derive(Debug, Clone, Serialize)]
struct NodeView {
    name: String,
    alive: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    last_seen: Option<OffsetDateTime>,
    version: String,
    pending: Option<bool>,
    /// The tenants (slugs) with changes not applied on the node yet: a tenant-bound
    /// caller's own at most.
    pending_tenants: Vec<String>,
    last_apply: Option<Value>,
    ami: Option<String>,
    registrations: Option<Value>,
}

impl NodeView {
    /// `here` is this node's AMI link state and registrations, from its own live view;
    /// the other nodes' come from their last heartbeat. A caller bound to a tenant sees
    /// that tenant's pending state, last apply and registrations alone: another node's
    /// heartbeat counts every tenant's phones, so it reads `null` for such a caller.
    fn new(
        node: NodeState,
        me: &str,
        here: &(String, Option<Value>),
        bound: Option<&TenantSlug>,
    ) -> Self {
        let NodeState {
            row,
            changes,
            last_apply,
        } = node;
        let (ami, registrations) = if row.name == me {
            (Some(here.0.clone()), here.1.clone())
        } else if bound.is_some() {
            (row.ami, None)
        } else {
            (row.ami, row.registrations)
        };
        let pending_tenants: Vec<String> = changes
            .by_tenant()
            .filter(|(slug, lists)| {
                bound.is_none_or(|b| b.as_str() == *slug) && lists.iter().any(|l| !l.is_empty())
            })
            .map(|(slug, _)| slug.to_owned())
            .collect();
        Self {
            name: row.name,
            alive: row.alive,
            last_seen: row.last_seen,
            version: row.version,
            pending: Some(!pending_tenants.is_empty()),
            pending_tenants,
            last_apply: last_apply.and_then(|rec| seen_by(&rec, bound)),
            ami,
            registrations,
        }
    }
}

/// An apply record as a caller sees it: whole for an unbound caller or for an apply of
/// the caller's own tenant, that tenant's part of an apply of every tenant, and nothing of
/// an apply of another tenant.
pub(super) fn seen_by(rec: &ApplyRecord, bound: Option<&TenantSlug>) -> Option<Value> {
    match (bound, &rec.tenant) {
        (None, _) => serde_json::to_value(rec).ok(),
        (Some(b), Some(t)) if b.as_str() == t => serde_json::to_value(rec).ok(),
        (Some(_), Some(_)) => None,
        (Some(b), None) => serde_json::to_value(rec.seen_by(b.as_str())).ok(),
    }
}

/// Whose changes an apply covers, before the database is asked whether a named tenant
/// exists.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    /// Every tenant's: an unbound caller that named none.
    Every,
    /// The caller's own tenant (it exists: the caller's token is bound to it).
    Bound(TenantSlug),
    /// The tenant `?tenant=` names, to be looked up.
    Named(TenantSlug),
}

/// A caller bound to a tenant applies that tenant's changes; naming another is refused
/// like an unknown tenant (422 field `tenant`: whether it exists is not told).
fn scope_of(
    bound: Option<&TenantSlug>,
    named: Option<TenantSlug>,
) -> Result<Scope, ValidationError> {
    match (bound, named) {
        (Some(bound), Some(named)) if *bound != named => Err(ValidationError::new(
            "tenant",
            format!("no tenant '{named}'"),
        )),
        (Some(bound), _) => Ok(Scope::Bound(bound.clone())),
        (None, Some(named)) => Ok(Scope::Named(named)),
        (None, None) => Ok(Scope::Every),
    }
}

/// The tenant an apply covers (`None`: every tenant); an unknown one: 422 field `tenant`.
async fn apply_tenant(
    app: &App,
    ctx: &Ctx,
    named: Option<TenantSlug>,
) -> Result<Option<TenantSlug>, ApiError> {
    match scope_of(ctx.tenant.as_ref(), named)? {
        Scope::Every => Ok(None),
        Scope::Bound(t) => Ok(Some(t)),
        Scope::Named(t) => {
            super::tenants::named(app, &t).await?;
            Ok(Some(t))
        }
    }
}

pub async fn apply(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let ApplyQuery {
        dry_run,
        nodes,
        strategy,
        tenant,
    } = query(req)?;
    let tenant = apply_tenant(app, ctx, tenant).await?;
    let rec = if dry_run.is_some_and(|f| f.0) {
        if nodes.is_some() || strategy.is_some() {
            return Err(ValidationError::new(
                "dry_run",
                "a dry run reads this node's changes only (GET /nodes shows every node's \
                 pending state): it takes neither nodes nor strategy",
            )
            .into());
        }
        app.applier.dry_run(&ctx.actor, tenant.as_ref()).await?
    } else {
        let choice = Choice {
            nodes: nodes.map(|n| n.0),
            strategy: strategy.unwrap_or_default(),
            tenant,
        };
        app.cluster.apply(&ctx.actor, &choice).await?
    };
    Ok(json_response(StatusCode::OK, &rec))
}

pub async fn nodes(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    let bound = ctx.tenant.as_ref();
    let summary = match bound {
        Some(t) => app.registrations.summary_of(t.as_str()),
        None => app.registrations.summary(),
    };
    let here = (
        app.registrations.link_state(app.config.asterisk.reload),
        serde_json::to_value(summary).ok(),
    );
    let me = app.cluster.applier().node().name.as_str();
    let nodes: Vec<NodeView> = app
        .cluster
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeView::new(n, me, &here, bound))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "nodes": nodes })))
}

/// What an apply would change; a caller bound to a tenant is told its tenant's changes
/// alone (another tenant's are not even counted).
pub async fn pending(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &app.applier.pending(ctx.tenant.as_ref()).await?,
    ))
}

/// The node's applies, newest first; a caller bound to a tenant is shown each as
/// [`seen_by`] tells it, and an apply of another tenant not at all (the database leaves
/// those out, so `limit` counts what the caller sees).
pub async fn list(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let AppliesQuery { limit, node } = query(req)?;
    let limit = limit.map_or(50, |l| l.0);
    let node = node.as_ref().unwrap_or(&app.config.node);
    let bound = ctx.tenant.as_ref();
    let applies: Vec<Value> = app
        .store
        .list_applies(node.as_str(), limit, bound.map(TenantSlug::as_str))
        .await?
        .iter()
        .filter_map(|rec| seen_by(rec, bound))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "applies": applies }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> TenantSlug {
        TenantSlug::parse(s).unwrap()
    }

    #[test]
    fn a_bound_caller_applies_its_own_tenant_and_cannot_name_another() {
        let acme = slug("acme");
        assert_eq!(scope_of(Some(&acme), None), Ok(Scope::Bound(slug("acme"))));
        assert_eq!(
            scope_of(Some(&acme), Some(slug("acme"))),
            Ok(Scope::Bound(slug("acme")))
        );
        let refused = scope_of(Some(&acme), Some(slug("beta"))).unwrap_err();
        assert_eq!(refused.field, "tenant");
        assert_eq!(
            scope_of(None, Some(slug("beta"))),
            Ok(Scope::Named(slug("beta")))
        );
        assert_eq!(scope_of(None, None), Ok(Scope::Every));
    }
}
