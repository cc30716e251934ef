//! Reloading Asterisk: over AMI, or over the CLI when AMI cannot be reached.
//!
//! `pjsip reload` does not exist in 22.7 (F-AMI-7): PJSIP is reloaded with
//! `module reload res_pjsip.so`, the dialplan with `dialplan reload`. Both answer success
//! even when the files were broken (F-AMI-8), so success here only means "Asterisk read
//! the files"; the health probe proves what it loaded.

use super::ami::{self, AmiError};
use super::cli::{self, CliError};
use crate::config::{AsteriskConfig, ReloadMode};
use crate::store::applies::ReloadMethod;

pub const COMMANDS: [(&str, &str); 2] = [
    (
        "module reload res_pjsip.so",
        "Module 'res_pjsip.so' reloaded successfully.",
    ),
    ("dialplan reload", "Dialplan reloaded."),
];

/// A reload that did not succeed: what was tried and what Asterisk said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReloadFailure {
    pub method: ReloadMethod,
    pub output: String,
    pub message: String,
}

/// How the portal reaches Asterisk for one apply.
pub enum Link {
    Ami(ami::Client),
    /// With the reason AMI was not used, if it was meant to be.
    Cli(Option<String>),
}

impl Link {
    /// Opens the link the configuration asks for: AMI, falling back to the CLI when AMI
    /// cannot be reached; `None` for PORTAL_RELOAD=none.
    pub async fn open(cfg: &AsteriskConfig) -> Option<Self> {
        let limit = cfg.io_timeout;
        match cfg.reload {
            ReloadMode::None => None,
            ReloadMode::Cli => Some(Self::Cli(None)),
            ReloadMode::Ami => {
                match ami::Client::connect(
                    cfg.ami_addr,
                    &cfg.ami_username,
                    &cfg.ami_secret.0,
                    limit,
                )
                .await
                {
                    Ok(c) => Some(Self::Ami(c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "AMI not usable, falling back to the CLI");
                        Some(Self::Cli(Some(e.to_string())))
                    }
                }
            }
        }
    }

    pub fn method(&self) -> ReloadMethod {
        match self {
            Self::Ami(_) => ReloadMethod::Ami,
            Self::Cli(_) => ReloadMethod::Cli,
        }
    }

    /// Runs one CLI command over the link; `Ok(output)` only when Asterisk says it
    /// succeeded with the expected text.
    async fn command(
        &mut self,
        cfg: &AsteriskConfig,
        command: &str,
        expect: Option<&str>,
    ) -> Result<String, ReloadFailure> {
        let method = self.method();
        let fail = |output: String, message: String| ReloadFailure {
            method,
            output,
            message,
        };
        let output = match self {
            Self::Ami(client) => match client.command(command).await {
                Ok(reply) if reply.is_success() => reply.output(),
                Ok(reply) => {
                    let out = reply.output();
                    let why = if out.is_empty() {
                        reply.get("Message").unwrap_or("").to_owned()
                    } else {
                        out.clone()
                    };
                    return Err(fail(out, format!("Asterisk refused `{command}`: {why}")));
                }
                // AMI went away mid-apply: the CLI may still reach the daemon.
                Err(e @ AmiError::Unreachable(_)) => {
                    tracing::warn!(error = %e, "AMI lost, falling back to the CLI");
                    *self = Self::Cli(Some(e.to_string()));
                    return Box::pin(self.command(cfg, command, expect)).await;
                }
                Err(e) => return Err(fail(String::new(), e.to_string())),
            },
            Self::Cli(_) => cli::run(&cfg.cli, command, cfg.io_timeout)
                .await
                .map_err(|e| {
                    let msg = match &e {
                        CliError::Unreachable(_) => format!("{e}; AMI was not reachable either"),
                        _ => e.to_string(),
                    };
                    fail(String::new(), msg)
                })?,
        };
        if let Some(expect) = expect {
            if output.trim() != expect {
                return Err(fail(
                    output.clone(),
                    format!("`{command}` answered {output:?}, expected {expect:?}"),
                ));
            }
        }
        Ok(output)
    }

    /// Reloads PJSIP and the dialplan; the output of both, one per line.
    pub async fn reload(&mut self, cfg: &AsteriskConfig) -> Result<String, ReloadFailure> {
        let mut outputs = Vec::new();
        for (command, expect) in COMMANDS {
            match self.command(cfg, command, Some(expect)).await {
                Ok(out) => outputs.push(out),
                Err(mut f) => {
                    outputs.push(f.output);
                    f.output = self.annotate(outputs.join("\n"));
                    return Err(f);
                }
            }
        }
        Ok(self.annotate(outputs.join("\n")))
    }

    /// Prefixes the output with why the CLI was used, so the audit log says it.
    fn annotate(&self, output: String) -> String {
        match self {
            Self::Cli(Some(why)) => format!("[{why}; used the CLI]\n{output}"),
            _ => output,
        }
    }

    /// Starts the health-probe call: a Local channel into the probe context whose
    /// extension carries the token. `Async`, because a Local channel that never answers
    /// makes a synchronous Originate report failure although the AGI ran (F-AMI-12); and
    /// the probe context does not answer, because Answer() on a ringing channel waits up to
    /// 500 ms for media that a Local channel never sends.
    pub async fn originate_probe(
        &mut self,
        cfg: &AsteriskConfig,
        channel: &str,
        wait_secs: u64,
    ) -> Result<(), String> {
        let wait = wait_secs.to_string();
        match self {
            Self::Ami(client) => {
                let fields = [
                    ("Channel", channel),
                    ("Application", "Wait"),
                    ("Data", wait.as_str()),
                    ("Async", "true"),
                ];
                match client.action("Originate", &fields).await {
                    Ok(r) if r.is_success() => Ok(()),
                    Ok(r) => Err(format!(
                        "Originate refused: {}",
                        r.get("Message").unwrap_or("no message")
                    )),
                    Err(e) => Err(format!("Originate failed: {e}")),
                }
            }
            Self::Cli(_) => {
                let cmd = format!("channel originate {channel} application Wait {wait}");
                self.command(cfg, &cmd, Some(""))
                    .await
                    .map(|_| ())
                    .map_err(|f| f.message)
            }
        }
    }

    pub async fn close(self) {
        if let Self::Ami(client) = self {
            client.logoff().await;
        }
    }
}
