//! `pbx-portal apply`: one apply from the shell, as this host's node, to every chosen
//! node, as `POST /apply` does; built through the same composition path as `serve`
//! ([`app::prepare`], [`app::probe_and_applier`], [`app::cluster`]).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use pbx_portal::app::{self, StartError};
use pbx_portal::apply::cluster::{Choice, ClusterError};
use pbx_portal::apply::ApplyError;
use pbx_portal::auth::Actor;
use pbx_portal::config::Config;
use pbx_portal::record::{ApplyRecord, Strategy};
use pbx_portal::shutdown::Shutdown;

/// Prints the record of the apply (a failed one too) and exits 0 only when it applied or
/// nothing changed. The health probe needs the FastAGI address, so it is bound here for
/// the duration; when `serve` holds it, use POST /apply instead.
pub async fn run(mut config: Config, dry_run: bool, choice: Choice) -> anyhow::Result<ExitCode> {
    let failed = |e: &dyn std::fmt::Display| anyhow!("apply failed: {e}");
    let (store, node) = app::prepare(&mut config).await.map_err(|e| failed(&e))?;
    if let Some(t) = &choice.tenant {
        if store
            .tenant(t, &config.range)
            .await
            .map_err(|e| failed(&e))?
            .is_none()
        {
            return Err(failed(&format!("no tenant '{t}'")));
        }
    }
    let (server, applier) = if config.asterisk.health_check && !dry_run {
        let (server, applier) = app::probe_and_applier(&mut config, store, node)
            .await
            .map_err(|e: StartError| {
                anyhow!("apply failed: {e}; if `pbx-portal serve` is running, use POST /apply")
            })?;
        (Some(server), applier)
    } else {
        (None, app::applier_without_probe(&config, store, node))
    };
    let result = if dry_run {
        applier
            .dry_run(&Actor::Cli, choice.tenant.as_ref())
            .await
            .map_err(ClusterError::from)
    } else {
        // Dropping `_stop` at the end of this block ends the LISTEN connection.
        let (_stop, shutdown) = Shutdown::new();
        app::cluster(&applier, &config, Arc::default(), shutdown)
            .apply(&Actor::Cli, &choice)
            .await
    };
    if let Some(server) = server {
        server.shutdown().await;
    }
    match result {
        Ok(rec) => {
            print(&rec);
            Ok(ExitCode::SUCCESS)
        }
        Err(ClusterError::Apply(ApplyError::Failed(rec))) => {
            print(&rec);
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(failed(&e)),
    }
}

fn print(rec: &ApplyRecord) {
    println!("{}", serde_json::to_string_pretty(rec).unwrap_or_default());
}

/// `--strategy`: a [`Strategy`]'s name.
pub fn parse_strategy(raw: &str) -> Result<Strategy, String> {
    raw.parse()
        .map_err(|_| "must be parallel or rolling".to_owned())
}
