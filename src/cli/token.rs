//! `pbx-portal token create|list|revoke`: named, scoped API tokens. Errors name what was
//! wrong, never a token.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use pbx_portal::app;
use pbx_portal::auth::{parse_expires_in, Actor, Scopes, TokenName};
use pbx_portal::config::Config;
use pbx_portal::domain::TenantSlug;
use pbx_portal::store::{Store, StoreError};

use super::TokenCommand;

pub async fn run(config: Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    run_command(config, command)
        .await
        .map_err(|e| anyhow!("token: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_command(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = app::open_store(&config)
        .await
        .map_err(|e| anyhow!("database: {e}"))?;
    match command {
        TokenCommand::Create {
            name,
            scopes,
            expires_in,
            tenant,
        } => {
            let tenant = match tenant {
                Some(raw) => Some(bound_to(&store, &config, &raw).await?),
                None => None,
            };
            create(&store, &name, &scopes, expires_in.as_deref(), tenant).await
        }
        TokenCommand::List => list(&store).await,
        TokenCommand::Revoke { name } => revoke(&store, &name).await,
    }
}

/// The id of the tenant `--tenant` names; an error naming it when there is none.
async fn bound_to(store: &Store, config: &Config, raw: &str) -> anyhow::Result<i64> {
    let slug = TenantSlug::parse(raw).map_err(|e| anyhow!("--tenant: {e}"))?;
    store
        .tenant(&slug, &config.range)
        .await?
        .map(|t| t.id)
        .ok_or_else(|| anyhow!("--tenant: no tenant '{slug}'"))
}

async fn create(
    store: &Store,
    name: &str,
    scopes: &[String],
    expires_in: Option<&str>,
    tenant: Option<i64>,
) -> anyhow::Result<()> {
    let name = TokenName::parse(name).map_err(|e| anyhow!("name: {e}"))?;
    let scopes =
        Scopes::parse(scopes.iter().map(String::as_str)).map_err(|e| anyhow!("--scopes: {e}"))?;
    let days = expires_in
        .map(parse_expires_in)
        .transpose()
        .map_err(|e| anyhow!("--expires-in: {e}"))?;
    let (token, info) = store
        .create_token(&name, scopes, days, tenant, &Actor::Cli)
        .await
        .map_err(|e| match e {
            StoreError::TokenNameTaken => {
                anyhow!("a token named {} already exists", name.as_str())
            }
            e => e.into(),
        })?;
    match &info.tenant {
        Some(t) => eprintln!(
            "token {} ({}, tenant {t}) created; it is shown once:",
            info.name,
            info.scopes.join(",")
        ),
        None => eprintln!(
            "token {} ({}) created; it is shown once:",
            info.name,
            info.scopes.join(",")
        ),
    }
    println!("{}", token.expose());
    Ok(())
}

async fn list(store: &Store) -> anyhow::Result<()> {
    let fmt = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:<24} {:<32} {:<16} {:<26} {:<26} LAST USED",
        "NAME", "SCOPES", "TENANT", "CREATED", "EXPIRES"
    );
    for t in store.list_tokens(None).await? {
        println!(
            "{:<24} {:<32} {:<16} {:<26} {:<26} {}",
            t.name,
            t.scopes.join(","),
            t.tenant.as_ref().map_or("-", TenantSlug::as_str),
            fmt(Some(t.created_at)),
            fmt(t.expires_at),
            fmt(t.last_used_at)
        );
    }
    Ok(())
}

async fn revoke(store: &Store, name: &str) -> anyhow::Result<()> {
    let parsed = TokenName::parse(name).map_err(|e| anyhow!("name: {e}"))?;
    if !store.revoke_token(&parsed, None, &Actor::Cli).await? {
        bail!("no live token named {name}");
    }
    println!("token {name} revoked");
    Ok(())
}
