//! `pbx-portal migrate`: runs the pending migrations and exits.

use std::process::ExitCode;

use anyhow::anyhow;
use pbx_portal::config::Config;
use pbx_portal::store::{self, Store};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let migrated = async {
        let store = Store::connect(&config.database, config.pool_size).await?;
        store::migrate(&store).await
    };
    let n = migrated.await.map_err(|e| anyhow!("migrate failed: {e}"))?;
    println!("{n} migration(s) applied");
    Ok(ExitCode::SUCCESS)
}
