//! Handlers for applying, the pending diff, the audit log and the nodes.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::caller::Ctx;
use super::error::{json_response, ApiError};
use super::request::{query, AppliesQuery, ApplyQuery};
use super::App;
use super::Resp;
use crate::apply::cluster::Choice;
use crate::domain::ValidationError;

pub async fn apply(app: &App, ctx: &Ctx, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let ApplyQuery {
        dry_run,
        nodes,
        strategy,
    } = query(req)?;
    let rec = if dry_run.is_some_and(|f| f.0) {
        if nodes.is_some() || strategy.is_some() {
            return Err(ValidationError::new(
                "dry_run",
                "a dry run reads this node's changes only (GET /nodes shows every node's \
                 pending state): it takes neither nodes nor strategy",
            )
            .into());
        }
        app.applier.dry_run(&ctx.actor).await?
    } else {
        let choice = Choice {
            nodes: nodes.map(|n| n.0),
            strategy: strategy.unwrap_or_default(),
        };
        app.cluster.apply(&ctx.actor, &choice).await?
    };
    Ok(json_response(StatusCode::OK, &rec))
}

pub async fn nodes(app: &App) -> Result<Resp, ApiError> {
    let here = (
        app.registrations.link_state(app.config.asterisk.reload),
        app.registrations.summary(),
    );
    let nodes = app.cluster.nodes(here).await?;
    Ok(json_response(StatusCode::OK, &json!({ "nodes": nodes })))
}

pub async fn pending(app: &App) -> Result<Resp, ApiError> {
    Ok(json_response(StatusCode::OK, &app.applier.pending().await?))
}

pub async fn list(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let AppliesQuery { limit, node } = query(req)?;
    let limit = limit.map_or(50, |l| l.0);
    let node = node.as_ref().unwrap_or(&app.config.node);
    let applies = app.store.list_applies(node.as_str(), limit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "applies": applies }),
    ))
}
