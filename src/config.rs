//! Configuration from the environment (and an optional `.env` file).
//!
//! Every value is parsed once at start-up into typed fields; a bad value stops the process
//! with one line naming the variable. Secrets are never echoed back in those lines.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::ExtensionRange;

/// A variable that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn bad(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMode {
    /// AMI, with `asterisk -rx` when AMI cannot be reached.
    Ami,
    /// Only `asterisk -rx`.
    Cli,
    /// Write the files only (development).
    None,
}

/// The database URL is kept apart so that `Debug` of the config never prints its password.
#[derive(Clone)]
pub struct DatabaseUrl(pub tokio_postgres::Config);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(***)")
    }
}

/// A secret string that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct AsteriskConfig {
    pub pjsip_dir: PathBuf,
    pub dialplan_dir: PathBuf,
    pub reload: ReloadMode,
    pub ami_addr: SocketAddr,
    pub ami_username: String,
    pub ami_secret: Secret,
    pub cli: PathBuf,
    pub health_check: bool,
    pub health_timeout: Duration,
    /// Bound on each AMI exchange and each CLI run.
    pub io_timeout: Duration,
    pub transport: String,
    pub config_dir: PathBuf,
    /// The FastAGI address the generated dialplan calls (PORTAL_AGI_LISTEN).
    pub agi_addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseUrl,
    /// `None` only for commands that do not serve HTTP.
    pub api_token: Option<Secret>,
    pub listen: SocketAddr,
    pub range: ExtensionRange,
    pub asterisk: AsteriskConfig,
}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory
    /// when there is one (real environment variables win).
    pub fn from_env() -> Result<Self, ConfigError> {
        // Only the working directory: `dotenv()` would also search parent directories.
        match dotenvy::from_path(".env") {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(bad(".env", e.to_string())),
        }
        Self::from_vars(&std::env::vars().collect())
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let addr = |var: &'static str, default: &str| -> Result<SocketAddr, ConfigError> {
            let raw = get(var).unwrap_or(default);
            raw.parse().map_err(|_| {
                bad(
                    var,
                    format!("'{raw}' is not an address like 127.0.0.1:8080"),
                )
            })
        };
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(var).map_or(Ok(default), |raw| {
                raw.parse()
                    .map_err(|_| bad(var, format!("'{raw}' is not a non-negative integer")))
            })
        };
        let path = |var: &str, default: &str| PathBuf::from(get(var).unwrap_or(default));

        let db_raw = get("DATABASE_URL").ok_or_else(|| bad("DATABASE_URL", "is required"))?;
        // The parser's message can quote the URL, password included: say only what is wrong.
        let database = db_raw.parse::<tokio_postgres::Config>().map_err(|_| {
            bad(
                "DATABASE_URL",
                "is not a postgres:// URL or a key=value connection string",
            )
        })?;

        let api_token = match get("PORTAL_API_TOKEN") {
            Some(t) if t.chars().count() < 16 => {
                return Err(bad("PORTAL_API_TOKEN", "must be at least 16 characters"))
            }
            Some(t) => Some(Secret(t.to_owned())),
            None => None,
        };

        let min = number("PORTAL_EXTENSION_MIN", 1000)?;
        let max = number("PORTAL_EXTENSION_MAX", 1999)?;
        let to_u32 = |var, n: u64| u32::try_from(n).map_err(|_| bad(var, "is too large"));
        let range = ExtensionRange::new(
            to_u32("PORTAL_EXTENSION_MIN", min)?,
            to_u32("PORTAL_EXTENSION_MAX", max)?,
        )
        .map_err(|r| bad("PORTAL_EXTENSION_MIN", r))?;

        let reload = match get("PORTAL_RELOAD").unwrap_or("ami") {
            "ami" => ReloadMode::Ami,
            "cli" => ReloadMode::Cli,
            "none" => ReloadMode::None,
            other => {
                return Err(bad(
                    "PORTAL_RELOAD",
                    format!("'{other}' is not ami, cli or none"),
                ))
            }
        };
        let health_check = match get("PORTAL_HEALTH_CHECK").unwrap_or("agi") {
            "agi" => reload != ReloadMode::None,
            "off" => false,
            other => {
                return Err(bad(
                    "PORTAL_HEALTH_CHECK",
                    format!("'{other}' is not agi or off"),
                ))
            }
        };
        let health_ms = number("PORTAL_HEALTH_TIMEOUT_MS", 10_000)?;
        if !(100..=600_000).contains(&health_ms) {
            return Err(bad(
                "PORTAL_HEALTH_TIMEOUT_MS",
                "must be between 100 and 600000",
            ));
        }

        let io_ms = number("PORTAL_AMI_TIMEOUT_MS", 5_000)?;
        if !(100..=600_000).contains(&io_ms) {
            return Err(bad(
                "PORTAL_AMI_TIMEOUT_MS",
                "must be between 100 and 600000",
            ));
        }

        let ami_username = get("PORTAL_AMI_USERNAME").unwrap_or_default().to_owned();
        let ami_secret = Secret(get("PORTAL_AMI_SECRET").unwrap_or_default().to_owned());
        if reload == ReloadMode::Ami {
            if ami_username.is_empty() {
                return Err(bad(
                    "PORTAL_AMI_USERNAME",
                    "is required when PORTAL_RELOAD=ami",
                ));
            }
            if ami_secret.0.is_empty() {
                return Err(bad(
                    "PORTAL_AMI_SECRET",
                    "is required when PORTAL_RELOAD=ami",
                ));
            }
        }
        if ami_username.contains(['\r', '\n']) {
            return Err(bad("PORTAL_AMI_USERNAME", "must not contain a line break"));
        }
        if ami_secret.0.contains(['\r', '\n']) {
            return Err(bad("PORTAL_AMI_SECRET", "must not contain a line break"));
        }

        let transport = get("PORTAL_PJSIP_TRANSPORT")
            .unwrap_or("transport-udp")
            .to_owned();
        if transport.is_empty()
            || !transport
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(
                "PORTAL_PJSIP_TRANSPORT",
                "must be a transport id of letters, digits, '-', '_' or '.'",
            ));
        }

        Ok(Self {
            database: DatabaseUrl(database),
            api_token,
            listen: addr("PORTAL_LISTEN", "127.0.0.1:8080")?,
            range,
            asterisk: AsteriskConfig {
                pjsip_dir: path("PORTAL_PJSIP_DIR", "/etc/asterisk/pjsip.d/synergycall"),
                dialplan_dir: path(
                    "PORTAL_DIALPLAN_DIR",
                    "/etc/asterisk/extensions.d/synergycall",
                ),
                reload,
                ami_addr: addr("PORTAL_AMI_ADDR", "127.0.0.1:5038")?,
                ami_username,
                ami_secret,
                cli: path("PORTAL_ASTERISK_CLI", "asterisk"),
                health_check,
                health_timeout: Duration::from_millis(health_ms),
                io_timeout: Duration::from_millis(io_ms),
                transport,
                config_dir: path("PORTAL_ASTERISK_CONFIG_DIR", "/etc/asterisk"),
                agi_addr: addr("PORTAL_AGI_LISTEN", "127.0.0.1:4573")?,
            },
        })
    }

    /// The token, for commands that serve HTTP.
    pub fn require_token(&self) -> Result<&Secret, ConfigError> {
        self.api_token
            .as_ref()
            .ok_or_else(|| bad("PORTAL_API_TOKEN", "is required by `serve`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("PORTAL_RELOAD", "none"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn err_var(pairs: &[(&str, &str)]) -> &'static str {
        Config::from_vars(&vars(pairs)).unwrap_err().var
    }

    #[test]
    fn defaults_are_loopback_and_spec_values() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.asterisk.agi_addr.to_string(), "127.0.0.1:4573");
        assert_eq!(c.asterisk.ami_addr.to_string(), "127.0.0.1:5038");
        assert_eq!((c.range.min(), c.range.max()), (1000, 1999));
        assert!(
            !c.asterisk.health_check,
            "forced off with PORTAL_RELOAD=none"
        );
        assert_eq!(c.asterisk.transport, "transport-udp");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        assert_eq!(err_var(&[("DATABASE_URL", "")]), "DATABASE_URL");
        assert_eq!(
            err_var(&[("DATABASE_URL", "postgres://x:y@h:notaport/db")]),
            "DATABASE_URL"
        );
        assert_eq!(err_var(&[("PORTAL_LISTEN", "localhost")]), "PORTAL_LISTEN");
        assert_eq!(
            err_var(&[("PORTAL_AGI_LISTEN", "1.2.3.4")]),
            "PORTAL_AGI_LISTEN"
        );
        assert_eq!(
            err_var(&[("PORTAL_API_TOKEN", "short")]),
            "PORTAL_API_TOKEN"
        );
        assert_eq!(
            err_var(&[
                ("PORTAL_EXTENSION_MIN", "3000"),
                ("PORTAL_EXTENSION_MAX", "2000")
            ]),
            "PORTAL_EXTENSION_MIN"
        );
        assert_eq!(
            err_var(&[("PORTAL_EXTENSION_MAX", "x")]),
            "PORTAL_EXTENSION_MAX"
        );
        assert_eq!(err_var(&[("PORTAL_RELOAD", "ssh")]), "PORTAL_RELOAD");
        assert_eq!(err_var(&[("PORTAL_RELOAD", "ami")]), "PORTAL_AMI_USERNAME");
        assert_eq!(
            err_var(&[("PORTAL_HEALTH_TIMEOUT_MS", "5")]),
            "PORTAL_HEALTH_TIMEOUT_MS"
        );
        assert_eq!(
            err_var(&[("PORTAL_PJSIP_TRANSPORT", "udp]\n[x")]),
            "PORTAL_PJSIP_TRANSPORT"
        );
    }

    #[test]
    fn errors_never_echo_secrets() {
        let e = Config::from_vars(&vars(&[("DATABASE_URL", "postgres://u:hunter2@h:bad/db")]))
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let e = Config::from_vars(&vars(&[("PORTAL_API_TOKEN", "hunter2")])).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let c = Config::from_vars(&vars(&[
            ("PORTAL_API_TOKEN", "a-long-enough-token-hunter2"),
            ("PORTAL_AMI_SECRET", "hunter2"),
        ]))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
