//! Reloading Asterisk: over AMI, or over the CLI when AMI cannot be reached.
//!
//! `pjsip reload` does not exist in 22.7 (F-AMI-7): PJSIP is reloaded with
//! `module reload res_pjsip.so`, the dialplan with `dialplan reload`. Both answer success
//! even when the files were broken (F-AMI-8), so success here only means "Asterisk read
//! the files"; the health probe proves what it loaded.

use std::path::PathBuf;
use std::time::Duration;

use super::ami::{self, AmiError};
use super::cli::{self, CliError};
use crate::config::{AsteriskConfig, ReloadMode};

pub const COMMANDS: [(&str, &str); 2] = [
    (
        "module reload res_pjsip.so",
        "Module 'res_pjsip.so' reloaded successfully.",
    ),
    ("dialplan reload", "Dialplan reloaded."),
];

/// When Asterisk started and when a module was last reloaded, as AMI `CoreStatus` says
/// (main/manager.c `action_corestatus`, to the second). Asterisk loads PJSIP objects afresh
/// only at those moments (`ast_module_reload` sets the reload time, main/loader.c), so an
/// unchanged generation since a proof means nobody else loaded them since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// `CoreStartupDate` and `CoreStartupTime`.
    pub started: String,
    /// `CoreReloadDate` and `CoreReloadTime`.
    pub reloaded: String,
}

impl Generation {
    /// Reads a `CoreStatus` reply; `None` when it is not one.
    pub fn of(reply: &ami::Message) -> Option<Self> {
        if !reply.is_success() {
            return None;
        }
        let at = |date, time| Some(format!("{} {}", reply.get(date)?, reply.get(time)?));
        Some(Self {
            started: at("CoreStartupDate", "CoreStartupTime")?,
            reloaded: at("CoreReloadDate", "CoreReloadTime")?,
        })
    }
}

/// Which way a command reached Asterisk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Ami,
    Cli,
}

/// A reload that did not succeed: what was tried and what Asterisk said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReloadFailure {
    pub via: Via,
    pub output: String,
    pub message: String,
}

/// `asterisk -rx`, and why it is used.
pub struct Cli {
    program: PathBuf,
    timeout: Duration,
    /// Why AMI was not used, when it was meant to be.
    why: Option<String>,
}

/// How the portal reaches Asterisk for one apply.
pub enum Link {
    Ami(ami::Client, Cli),
    Cli(Cli),
}

impl Link {
    /// Opens the link the configuration asks for: AMI, falling back to the CLI when AMI
    /// cannot be reached; `None` for PORTAL_RELOAD=none.
    pub async fn open(cfg: &AsteriskConfig) -> Option<Self> {
        let cli = |why| Cli {
            program: cfg.cli.clone(),
            timeout: cfg.io_timeout,
            why,
        };
        match cfg.reload {
            ReloadMode::None => None,
            ReloadMode::Cli => Some(Self::Cli(cli(None))),
            ReloadMode::Ami => match ami::Client::login(&cfg.ami).await {
                Ok(c) => Some(Self::Ami(c, cli(None))),
                Err(e) => {
                    tracing::warn!(error = %e, "AMI not usable, falling back to the CLI");
                    Some(Self::Cli(cli(Some(e.to_string()))))
                }
            },
        }
    }

    pub fn via(&self) -> Via {
        match self {
            Self::Ami(..) => Via::Ami,
            Self::Cli(_) => Via::Cli,
        }
    }

    /// Runs one CLI command over the link; `Ok(output)` only when Asterisk says it
    /// succeeded with the expected text.
    async fn command(&mut self, command: &str, expect: &str) -> Result<String, ReloadFailure> {
        let via = self.via();
        let fail = |output: String, message: String| ReloadFailure {
            via,
            output,
            message,
        };
        let output = match self {
            Self::Ami(client, cli) => match client.command(command).await {
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
                    *self = Self::Cli(Cli {
                        program: cli.program.clone(),
                        timeout: cli.timeout,
                        why: Some(e.to_string()),
                    });
                    return Box::pin(self.command(command, expect)).await;
                }
                Err(e) => return Err(fail(String::new(), e.to_string())),
            },
            Self::Cli(cli) => cli::run(&cli.program, command, cli.timeout)
                .await
                .map_err(|e| {
                    let msg = match &e {
                        CliError::Unreachable(_) => format!("{e}; AMI was not reachable either"),
                        _ => e.to_string(),
                    };
                    fail(String::new(), msg)
                })?,
        };
        if output.trim() != expect {
            return Err(fail(
                output.clone(),
                format!("`{command}` answered {output:?}, expected {expect:?}"),
            ));
        }
        Ok(output)
    }

    /// Reloads PJSIP and the dialplan; the output of both, one per line.
    pub async fn reload(&mut self) -> Result<String, ReloadFailure> {
        let mut outputs = Vec::new();
        for (command, expect) in COMMANDS {
            match self.command(command, expect).await {
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
            Self::Cli(Cli { why: Some(why), .. }) => format!("[{why}; used the CLI]\n{output}"),
            _ => output,
        }
    }

    /// Starts the health-probe call: a Local channel into the probe context whose
    /// extension carries the token. `Async`, because a Local channel that never answers
    /// makes a synchronous Originate report failure although the AGI ran (F-AMI-12); and
    /// the probe context does not answer, because Answer() on a ringing channel waits up to
    /// 500 ms for media that a Local channel never sends.
    pub async fn originate_probe(&mut self, channel: &str, wait_secs: u64) -> Result<(), String> {
        let wait = wait_secs.to_string();
        match self {
            Self::Ami(client, _) => {
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
                self.command(&cmd, "")
                    .await
                    .map(|_| ())
                    .map_err(|f| f.message)
            }
        }
    }

    /// Asterisk's generation, over AMI; `None` over the CLI (it answers only relative
    /// seconds) or when the action fails.
    pub async fn generation(&mut self) -> Option<Generation> {
        match self {
            Self::Ami(client, _) => match client.action("CoreStatus", &[]).await {
                Ok(reply) => Generation::of(&reply),
                Err(e) => {
                    tracing::warn!(error = %e, "CoreStatus failed");
                    None
                }
            },
            Self::Cli(_) => None,
        }
    }

    pub async fn close(self) {
        if let Self::Ami(client, _) = self {
            client.logoff().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_status_reply_gives_the_generation() {
        // As main/manager.c `action_corestatus` writes it.
        let reply = ami::Message::parse(
            "Response: Success\r\nActionID: portal-2\r\nCoreStartupDate: 2026-12-07\r\n\
             CoreStartupTime: 17:14:36\r\nCoreReloadDate: 2026-12-07\r\nCoreReloadTime: 17:20:01\r\n\
             CoreCurrentCalls: 0\r\nCoreProcessedCalls: 12",
        );
        assert_eq!(
            Generation::of(&reply),
            Some(Generation {
                started: "2026-12-07 17:14:36".into(),
                reloaded: "2026-12-07 17:20:01".into(),
            })
        );
        let refused = ami::Message::parse("Response: Error\r\nMessage: Permission denied");
        assert_eq!(Generation::of(&refused), None);
        let partial = ami::Message::parse("Response: Success\r\nCoreStartupDate: 2026-12-07");
        assert_eq!(Generation::of(&partial), None);
    }
}
