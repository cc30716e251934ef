//! `pbx-portal export [--format csv|json]`: every user to stdout, streamed as it is read.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use pbx_portal::config::Config;
use pbx_portal::{app, bulk};

use super::ExportFormat;

pub async fn run(config: Config, format: ExportFormat) -> anyhow::Result<ExitCode> {
    let format = match format {
        ExportFormat::Csv => bulk::Format::Csv,
        ExportFormat::Json => bulk::Format::Json,
    };
    export(&config, format)
        .await
        .map_err(|e| anyhow!("export failed: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn export(config: &Config, format: bulk::Format) -> anyhow::Result<()> {
    let store = app::open_store(config).await?;
    let mut rows = store
        .export_users(1000, Duration::from_secs(30), None)
        .await?;
    let mut writer = bulk::sheet::ExportWriter::new(format);
    // A chunk is written while the next is read (a terminal or pipe that blocks the
    // write only slows the reads down).
    let mut out = std::io::stdout();
    while let Some(chunk) = rows.next().await {
        let bytes = writer.rows(&chunk?)?;
        out.write_all(&bytes)?;
    }
    let mut bytes = writer.finish()?;
    if format == bulk::Format::Json {
        bytes.push(b'\n');
    }
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(())
}
