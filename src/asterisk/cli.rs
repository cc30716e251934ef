//! `asterisk -rx "<command>"`, the fallback when AMI cannot be reached.
//!
//! The CLI exits 0 whenever it reached the daemon, even for "No such command" (F-CLI-1):
//! the exit status only says whether Asterisk was reachable, stdout says what happened.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot run {cli}: {reason}")]
    Spawn { cli: String, reason: String },
    #[error("Asterisk is not reachable over the CLI: {0}")]
    Unreachable(String),
    #[error("`{0}` did not finish within {1:?}")]
    Timeout(String, Duration),
}

/// Runs one command; returns its stdout when the daemon was reached.
pub async fn run(cli: &Path, command: &str, limit: Duration) -> Result<String, CliError> {
    let child = Command::new(cli)
        .arg("-rx")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::Spawn {
            cli: cli.display().to_string(),
            reason: e.to_string(),
        })?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| CliError::Timeout(command.to_owned(), limit))?
        .map_err(|e| CliError::Spawn {
            cli: cli.display().to_string(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr.lines().next().unwrap_or("").trim();
        return Err(CliError::Unreachable(if reason.is_empty() {
            format!("exit status {}", out.status)
        } else {
            reason.to_owned()
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}
