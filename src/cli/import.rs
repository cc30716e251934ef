//! `pbx-portal import FILE [--dry-run]`: stdout gets the created (or planned) users as
//! CSV, stderr one line per error. Exit 0 when every user was created (or would be), 1
//! otherwise.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use pbx_portal::auth::Actor;
use pbx_portal::config::Config;
use pbx_portal::{app, bulk};

pub async fn run(config: Config, path: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let failed = |e: &dyn std::fmt::Display| anyhow!("import failed: {e}");
    let bytes = read(path).map_err(|e| failed(&e))?;
    let format = bulk::Format::sniff(path, &bytes);
    let store = app::open_store(&config).await.map_err(|e| failed(&e))?;
    let mode = if dry_run {
        bulk::Mode::DryRun
    } else {
        bulk::Mode::Create {
            idempotency_key: None,
            actor: &Actor::Cli,
        }
    };
    let sheet = match bulk::import(&store, format, &bytes, config.user_rules(), mode, None).await {
        Ok(bulk::Outcome::Created(imported)) => bulk::sheet::created_csv(&imported.users),
        Ok(bulk::Outcome::Planned(users)) => bulk::sheet::planned_csv(&users),
        Err(bulk::ImportError::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!(
                "import failed: {} error(s); nothing was imported",
                errors.len()
            );
        }
        Err(e) => return Err(failed(&e)),
    };
    let written = sheet.map_err(anyhow::Error::from).and_then(|bytes| {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).and_then(|()| out.flush())?;
        Ok(())
    });
    if let Err(e) = written {
        // The users exist: say so, since their secrets did not reach the admin.
        bail!("import done, but its output could not be written: {e}; rotate the secrets (POST /users/{{id}}/secret)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the file to import (or standard input for `-`), refusing one larger than an
/// import may be before reading it all.
fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    let limit = bulk::file::MAX_BYTES as u64;
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin().take(limit + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| anyhow!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > limit {
        bail!("{path} is larger than 8 MiB: split it");
    }
    Ok(bytes)
}
