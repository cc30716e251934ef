//! Configuration from the environment (and an optional `.env` file).
//!
//! The variables are deserialised (serde, with `serde_path_to_error` naming the variable
//! that failed) into [`Vars`], whose field types parse their own values; [`Config`] adds
//! the rules that span variables. A bad value stops the process with one line naming the
//! variable. Secrets are `secrecy` strings: they cannot be printed by `Debug`, and no
//! error line ever echoes them.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::{ExtensionRange, NodeName, TransportId, Transports, UserRules};

mod database_url;
pub mod variables;
pub use database_url::{DatabaseUrl, RootCert, SslMode, Tls, Verify};

/// A variable that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

fn bad(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    /// AMI, with `asterisk -rx` when AMI cannot be reached.
    Ami,
    /// Only `asterisk -rx`.
    Cli,
    /// Write the files only (development).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum HealthCheck {
    Agi,
    Off,
}

/// The bearer token of the API: at least 16 characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct ApiToken(SecretString);

impl ApiToken {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl TryFrom<String> for ApiToken {
    type Error = &'static str;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if raw.chars().count() < 16 {
            return Err("must be at least 16 characters");
        }
        Ok(Self(raw.into()))
    }
}

/// An address like `127.0.0.1:8080` (no host names: they would resolve at each use).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct Addr(SocketAddr);

impl TryFrom<String> for Addr {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
            .map(Self)
            .map_err(|_| format!("'{raw}' is not an address like 127.0.0.1:8080"))
    }
}

/// A whole number (extension bounds).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct Number(u32);

impl TryFrom<String> for Number {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
            .map(Self)
            .map_err(|_| format!("'{raw}' is not a whole number from 0 to {}", u32::MAX))
    }
}

/// A timeout in milliseconds, 100 ms to 10 minutes.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct Millis(Duration);

impl TryFrom<String> for Millis {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.parse::<u64>() {
            Ok(ms) if (100..=600_000).contains(&ms) => Ok(Self(Duration::from_millis(ms))),
            _ => Err(format!(
                "'{raw}' is not a number of milliseconds between 100 and 600000"
            )),
        }
    }
}

/// Seconds between qualify OPTIONS to each contact: 0 (off) to 86400.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct QualifySeconds(u32);

impl TryFrom<String> for QualifySeconds {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.parse::<u32>() {
            Ok(s) if s <= 86_400 => Ok(Self(s)),
            _ => Err(format!(
                "'{raw}' is not a number of seconds from 0 (off) to 86400"
            )),
        }
    }
}

/// How many connections the database pool holds: at least 2 (an apply holds one for its
/// locked transaction and writes its audit row on a second), at most 200 (PostgreSQL's default
/// `max_connections` is 100; a bigger pool only queues inside the server).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct PoolSize(u32);

impl TryFrom<String> for PoolSize {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.parse::<u32>() {
            Ok(n) if (2..=200).contains(&n) => Ok(Self(n)),
            _ => Err(format!(
                "'{raw}' is not a number of connections from 2 to 200"
            )),
        }
    }
}

/// `PORTAL_PJSIP_TRANSPORTS`: transport ids separated by commas.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct TransportList(Transports);

impl TryFrom<String> for TransportList {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let ids = raw
            .split(',')
            .map(|t| TransportId::parse(t.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Transports::new(ids).map(Self)
    }
}

/// The codecs Asterisk 22 knows by name (the formats `ast_codec_builtin_init` registers,
/// main/codec_builtin.c): what `allow=` accepts. Anything else Asterisk refuses with a
/// warning and the endpoint loses that codec, so a typo here would silently cost calls.
pub const ASTERISK_CODECS: &[&str] = &[
    "codec2", "g723", "ulaw", "alaw", "gsm", "g726", "g726aal2", "adpcm", "slin", "slin12",
    "slin16", "slin24", "slin32", "slin44", "slin48", "slin96", "slin192", "lpc10", "g729",
    "speex", "speex16", "speex32", "ilbc", "g722", "siren7", "siren14", "testlaw", "g719", "opus",
    "jpeg", "png", "h261", "h263", "h263p", "h264", "mpeg4", "vp8", "red", "t140", "silk8",
    "silk12", "silk16", "silk24",
];

/// `PORTAL_CODECS`: the codecs every endpoint allows, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Codecs(Vec<&'static str>);

impl Codecs {
    /// As written after `allow=`: `g722,ulaw,alaw`.
    pub fn joined(&self) -> String {
        self.0.join(",")
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }
}

impl Default for Codecs {
    fn default() -> Self {
        Self(vec!["g722", "ulaw", "alaw"])
    }
}

impl TryFrom<String> for Codecs {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let mut codecs: Vec<&'static str> = Vec::new();
        for name in raw.split(',').map(str::trim) {
            let known = ASTERISK_CODECS
                .iter()
                .find(|c| c.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!("'{name}' is not a codec Asterisk 22 knows (e.g. g722, ulaw, alaw, opus, g729)")
                })?;
            if codecs.contains(known) {
                return Err(format!("names '{known}' twice"));
            }
            codecs.push(known);
        }
        Ok(Self(codecs))
    }
}

impl From<Codecs> for String {
    fn from(c: Codecs) -> Self {
        c.joined()
    }
}

/// `PORTAL_NAT`: render the NAT options on every endpoint (`on`) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Nat {
    On,
    Off,
}

/// How a node renders every endpoint, beyond the user's own fields: what `GET /nodes`
/// needs to compute another node's pending changes, so it is kept in that node's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPolicy {
    /// The transports a user may be given; the first is the default.
    pub transports: Transports,
    /// Those of them whose pjsip.conf section says `protocol=tls`: their users' calls are
    /// encrypted (SRTP). Filled at start-up from pjsip.conf, empty until then.
    pub tls: BTreeSet<TransportId>,
    /// `rtp_symmetric`, `force_rport` and `rewrite_contact` on every endpoint.
    pub nat: bool,
    pub codecs: Codecs,
    /// Rendered as every aor's `qualify_frequency` (seconds, 0 = off).
    pub qualify_frequency: u32,
}

impl EndpointPolicy {
    /// Whether users of this transport get `media_encryption=sdes`.
    pub fn is_tls(&self, transport: &str) -> bool {
        self.tls.iter().any(|t| t.as_str() == transport)
    }
}

/// A value sent in an AMI header: a line break would start a new header.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct HeaderValue(String);

impl TryFrom<String> for HeaderValue {
    type Error = &'static str;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if raw.contains(['\r', '\n']) {
            return Err("must not contain a line break");
        }
        Ok(Self(raw))
    }
}

fn default_listen() -> Addr {
    Addr(SocketAddr::from(([127, 0, 0, 1], 8080)))
}
fn default_agi_listen() -> Addr {
    Addr(SocketAddr::from(([127, 0, 0, 1], 4573)))
}
fn default_ami_addr() -> Addr {
    Addr(SocketAddr::from(([127, 0, 0, 1], 5038)))
}
fn default_pjsip_dir() -> PathBuf {
    "/etc/asterisk/pjsip.d/synergycall".into()
}
fn default_dialplan_dir() -> PathBuf {
    "/etc/asterisk/extensions.d/synergycall".into()
}
fn default_config_dir() -> PathBuf {
    "/etc/asterisk".into()
}
fn default_cli() -> PathBuf {
    "asterisk".into()
}
fn default_reload() -> ReloadMode {
    ReloadMode::Ami
}
fn default_health_check() -> HealthCheck {
    HealthCheck::Agi
}
fn default_health_timeout() -> Millis {
    Millis(Duration::from_secs(10))
}
fn default_ami_timeout() -> Millis {
    Millis(Duration::from_secs(5))
}
fn default_min() -> Number {
    Number(1000)
}
fn default_max() -> Number {
    Number(1999)
}
fn default_qualify() -> QualifySeconds {
    QualifySeconds(60)
}
fn default_pool_size() -> PoolSize {
    PoolSize(16)
}
fn default_node_timeout() -> Millis {
    Millis(Duration::from_secs(30))
}
fn default_nat() -> Nat {
    Nat::On
}

/// The default node name: the host name, as the kernel has it (uname(2): no /proc needed,
/// so it works in a chroot too).
fn host_name() -> Result<NodeName, String> {
    let uname = rustix::system::uname();
    let raw = uname.nodename().to_string_lossy();
    NodeName::parse(raw.trim())
        .map_err(|r| format!("is not set and the host name cannot be used: {r}; set it"))
}

/// The variables whose values are secrets (the database URL may hold a password).
const SECRET_VARS: [&str; 3] = ["DATABASE_URL", "PORTAL_API_TOKEN", "PORTAL_AMI_SECRET"];

/// Every variable the portal reads, as written in the environment; [`variables::VARIABLES`]
/// documents each (a test holds the two to the same names, defaults and ranges).
#[derive(Deserialize)]
struct Vars {
    #[serde(rename = "DATABASE_URL")]
    database: Option<DatabaseUrl>,
    #[serde(rename = "PORTAL_DB_POOL_SIZE", default = "default_pool_size")]
    pool_size: PoolSize,
    #[serde(rename = "PORTAL_API_TOKEN")]
    api_token: Option<ApiToken>,
    #[serde(rename = "PORTAL_LISTEN", default = "default_listen")]
    listen: Addr,
    #[serde(rename = "PORTAL_AGI_LISTEN", default = "default_agi_listen")]
    agi_listen: Addr,
    #[serde(rename = "PORTAL_PJSIP_DIR", default = "default_pjsip_dir")]
    pjsip_dir: PathBuf,
    #[serde(rename = "PORTAL_DIALPLAN_DIR", default = "default_dialplan_dir")]
    dialplan_dir: PathBuf,
    #[serde(rename = "PORTAL_RELOAD", default = "default_reload")]
    reload: ReloadMode,
    #[serde(rename = "PORTAL_AMI_ADDR", default = "default_ami_addr")]
    ami_addr: Addr,
    #[serde(rename = "PORTAL_AMI_USERNAME")]
    ami_username: Option<HeaderValue>,
    #[serde(rename = "PORTAL_AMI_SECRET")]
    ami_secret: Option<HeaderValue>,
    #[serde(rename = "PORTAL_AMI_TIMEOUT_MS", default = "default_ami_timeout")]
    ami_timeout: Millis,
    #[serde(rename = "PORTAL_ASTERISK_CLI", default = "default_cli")]
    cli: PathBuf,
    #[serde(rename = "PORTAL_HEALTH_CHECK", default = "default_health_check")]
    health_check: HealthCheck,
    #[serde(
        rename = "PORTAL_HEALTH_TIMEOUT_MS",
        default = "default_health_timeout"
    )]
    health_timeout: Millis,
    #[serde(rename = "PORTAL_EXTENSION_MIN", default = "default_min")]
    extension_min: Number,
    #[serde(rename = "PORTAL_EXTENSION_MAX", default = "default_max")]
    extension_max: Number,
    #[serde(rename = "PORTAL_PJSIP_TRANSPORT")]
    transport: Option<TransportId>,
    #[serde(rename = "PORTAL_PJSIP_TRANSPORTS")]
    transports: Option<TransportList>,
    #[serde(rename = "PORTAL_NAT", default = "default_nat")]
    nat: Nat,
    #[serde(rename = "PORTAL_CODECS", default)]
    codecs: Codecs,
    #[serde(rename = "PORTAL_ASTERISK_CONFIG_DIR", default = "default_config_dir")]
    config_dir: PathBuf,
    #[serde(rename = "PORTAL_QUALIFY_FREQUENCY", default = "default_qualify")]
    qualify_frequency: QualifySeconds,
    #[serde(rename = "PORTAL_NODE")]
    node: Option<NodeName>,
    #[serde(rename = "PORTAL_NODE_TIMEOUT_MS", default = "default_node_timeout")]
    node_timeout: Millis,
    #[serde(rename = "PORTAL_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    #[serde(rename = "PORTAL_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

/// The certificate chain and private key HTTPS serves (PORTAL_TLS_CERT, PORTAL_TLS_KEY):
/// PEM files, read at start and again on SIGHUP (`crate::https`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How to log in to AMI; the one place an AMI client is built from.
#[derive(Debug, Clone)]
pub struct AmiSettings {
    pub addr: SocketAddr,
    pub username: String,
    pub secret: SecretString,
    /// Bound on the connection, the login and each exchange.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AsteriskConfig {
    pub pjsip_dir: PathBuf,
    pub dialplan_dir: PathBuf,
    pub reload: ReloadMode,
    pub ami: AmiSettings,
    pub cli: PathBuf,
    pub health_check: bool,
    pub health_timeout: Duration,
    /// Bound on each AMI exchange and each CLI run.
    pub io_timeout: Duration,
    /// How every endpoint is rendered (transports, NAT, codecs, qualify).
    pub policy: EndpointPolicy,
    /// Whether PORTAL_PJSIP_TRANSPORTS was set: then every listed transport must be found
    /// in pjsip.conf at start (see `app::resolve_transports`).
    pub transports_listed: bool,
    pub config_dir: PathBuf,
    /// The FastAGI address the generated dialplan calls (PORTAL_AGI_LISTEN).
    pub agi_addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseUrl,
    /// Connections in the database pool (PORTAL_DB_POOL_SIZE).
    pub pool_size: u32,
    /// `None` only for commands that do not serve HTTP.
    pub api_token: Option<ApiToken>,
    pub listen: SocketAddr,
    pub range: ExtensionRange,
    pub asterisk: AsteriskConfig,
    /// This host's node (PORTAL_NODE, default the host name).
    pub node: NodeName,
    /// How long a cluster apply waits for each other node's record.
    pub node_timeout: Duration,
    /// HTTPS on `listen` when set; plain HTTP otherwise.
    pub tls: Option<TlsFiles>,
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

    /// Reads the given variables: `DATABASE_URL` and every `PORTAL_` one. An empty value
    /// counts as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let ours: serde_json::Map<String, serde_json::Value> = vars
            .iter()
            .filter(|(k, v)| !v.is_empty() && (*k == "DATABASE_URL" || k.starts_with("PORTAL_")))
            .map(|(k, v)| (k.clone(), v.as_str().into()))
            .collect();
        // Any other `PORTAL_` variable is refused (once every value has been read): it is
        // most likely a typo. serde skips it; the names `Vars` knows are its fields.
        let known = variables::serde_fields::<Vars>();
        let unknown = ours
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .min()
            .cloned();
        let v: Vars =
            serde_path_to_error::deserialize(serde_json::Value::Object(ours)).map_err(|e| {
                let var = e.path().to_string();
                let mut reason = e.into_inner().to_string();
                // The reasons written here never quote a secret, but a serde message may
                // quote the value: never for a variable that holds a secret.
                let secret = SECRET_VARS.contains(&var.as_str());
                if secret
                    && vars
                        .get(&var)
                        .is_some_and(|raw| reason.contains(raw.as_str()))
                {
                    reason = "has a value that cannot be used".into();
                }
                bad(&var, reason)
            })?;
        if let Some(name) = unknown {
            return Err(bad(&name, "is not a variable pbx-portal reads (misspelt?)"));
        }

        let database = v
            .database
            .ok_or_else(|| bad("DATABASE_URL", "is required"))?;
        let range = ExtensionRange::new(v.extension_min.0, v.extension_max.0)
            .map_err(|r| bad("PORTAL_EXTENSION_MIN", r))?;
        let username = v.ami_username.map(|u| u.0).unwrap_or_default();
        let secret = v.ami_secret.map(|s| SecretString::from(s.0));
        if v.reload == ReloadMode::Ami {
            if username.is_empty() {
                return Err(bad(
                    "PORTAL_AMI_USERNAME",
                    "is required when PORTAL_RELOAD=ami",
                ));
            }
            if secret.is_none() {
                return Err(bad(
                    "PORTAL_AMI_SECRET",
                    "is required when PORTAL_RELOAD=ami",
                ));
            }
        }
        let transports_listed = v.transports.is_some();
        let transports = match (v.transports, v.transport) {
            (None, t) => Transports::new(vec![t.unwrap_or_else(TransportId::udp)])
            .map_err(|r| bad("PORTAL_PJSIP_TRANSPORT", r))?,
            (Some(list), Some(t)) if list.0.default_id() != &t => {
                return Err(bad(
                    "PORTAL_PJSIP_TRANSPORT",
                    format!(
                        "is '{t}' but PORTAL_PJSIP_TRANSPORTS lists '{}' first (the default): set only PORTAL_PJSIP_TRANSPORTS",
                        list.0.default_id()
                    ),
                ))
            }
            (Some(list), _) => list.0,
        };
        let tls = match (v.tls_cert, v.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad(
                    "PORTAL_TLS_KEY",
                    "is required when PORTAL_TLS_CERT is set (HTTPS needs both files)",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "PORTAL_TLS_CERT",
                    "is required when PORTAL_TLS_KEY is set (HTTPS needs both files)",
                ))
            }
        };
        let node = match v.node {
            Some(n) => n,
            None => host_name().map_err(|r| bad("PORTAL_NODE", r))?,
        };
        Ok(Self {
            database,
            node,
            node_timeout: v.node_timeout.0,
            tls,
            pool_size: v.pool_size.0,
            api_token: v.api_token,
            listen: v.listen.0,
            range,
            asterisk: AsteriskConfig {
                pjsip_dir: v.pjsip_dir,
                dialplan_dir: v.dialplan_dir,
                reload: v.reload,
                ami: AmiSettings {
                    addr: v.ami_addr.0,
                    username,
                    secret: secret.unwrap_or_else(|| SecretString::from("")),
                    timeout: v.ami_timeout.0,
                },
                cli: v.cli,
                health_check: v.health_check == HealthCheck::Agi && v.reload != ReloadMode::None,
                health_timeout: v.health_timeout.0,
                io_timeout: v.ami_timeout.0,
                policy: EndpointPolicy {
                    transports,
                    tls: BTreeSet::new(),
                    nat: v.nat == Nat::On,
                    codecs: v.codecs,
                    qualify_frequency: v.qualify_frequency.0,
                },
                transports_listed,
                config_dir: v.config_dir,
                agi_addr: v.agi_listen.0,
            },
        })
    }

    /// What a new or edited user is checked against.
    pub fn user_rules(&self) -> UserRules<'_> {
        UserRules {
            range: &self.range,
            transports: &self.asterisk.policy.transports,
        }
    }

    /// The token, for commands that serve HTTP.
    pub fn require_token(&self) -> Result<&ApiToken, ConfigError> {
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

    fn err_var(pairs: &[(&str, &str)]) -> String {
        Config::from_vars(&vars(pairs)).unwrap_err().var
    }

    #[test]
    fn defaults_are_loopback_and_spec_values() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.asterisk.agi_addr.to_string(), "127.0.0.1:4573");
        assert_eq!(c.asterisk.ami.addr.to_string(), "127.0.0.1:5038");
        assert_eq!((c.range.min(), c.range.max()), (1000, 1999));
        assert!(
            !c.asterisk.health_check,
            "forced off with PORTAL_RELOAD=none"
        );
        let policy = &c.asterisk.policy;
        assert_eq!(policy.transports.default_id().as_str(), "transport-udp");
        assert_eq!(policy.transports.iter().count(), 1);
        assert!(policy.nat);
        assert_eq!(policy.codecs.joined(), "g722,ulaw,alaw");
        assert_eq!(c.pool_size, 16);
        assert_eq!(c.database.tls().mode, SslMode::Prefer, "libpq's default");
        assert_eq!(c.tls, None, "plain HTTP unless both files are named");
    }

    #[test]
    fn https_needs_both_files() {
        let c = Config::from_vars(&vars(&[
            ("PORTAL_TLS_CERT", "/etc/pbx-portal/tls/fullchain.pem"),
            ("PORTAL_TLS_KEY", "/etc/pbx-portal/tls/privkey.pem"),
        ]))
        .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/etc/pbx-portal/tls/fullchain.pem".into(),
                key: "/etc/pbx-portal/tls/privkey.pem".into(),
            })
        );
        let e = Config::from_vars(&vars(&[("PORTAL_TLS_CERT", "/c.pem")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error: PORTAL_TLS_KEY: is required when PORTAL_TLS_CERT is set (HTTPS needs both files)"
        );
        assert_eq!(err_var(&[("PORTAL_TLS_KEY", "/k.pem")]), "PORTAL_TLS_CERT");
        // An empty value counts as unset.
        assert_eq!(
            err_var(&[("PORTAL_TLS_CERT", "/c.pem"), ("PORTAL_TLS_KEY", "")]),
            "PORTAL_TLS_KEY"
        );
    }

    #[test]
    fn the_node_is_named_and_its_timeout_bounded() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert!(!c.node.as_str().is_empty(), "the host name");
        assert_eq!(c.node_timeout, Duration::from_secs(30));
        let c = Config::from_vars(&vars(&[("PORTAL_NODE", "pbx-a.example_1")])).unwrap();
        assert_eq!(c.node.as_str(), "pbx-a.example_1");
        for bad in ["a b", "a/b", "é", &"x".repeat(64)] {
            assert_eq!(err_var(&[("PORTAL_NODE", bad)]), "PORTAL_NODE", "{bad}");
        }
        assert_eq!(
            err_var(&[("PORTAL_NODE_TIMEOUT_MS", "50")]),
            "PORTAL_NODE_TIMEOUT_MS"
        );
    }

    #[test]
    fn nat_codecs_and_transports_parse_or_name_their_variable() {
        let c = Config::from_vars(&vars(&[
            ("PORTAL_NAT", "off"),
            ("PORTAL_CODECS", "OPUS, g722,ulaw"),
            ("PORTAL_PJSIP_TRANSPORTS", "transport-tls, transport-udp"),
        ]))
        .unwrap();
        let p = &c.asterisk.policy;
        assert!(!p.nat);
        assert_eq!(
            p.codecs.joined(),
            "opus,g722,ulaw",
            "Asterisk's spelling, in order"
        );
        let ids: Vec<&str> = p.transports.iter().map(|t| t.as_str()).collect();
        assert_eq!(ids, ["transport-tls", "transport-udp"]);
        assert!(p.tls.is_empty(), "known only once pjsip.conf is read");
        let legacy = Config::from_vars(&vars(&[("PORTAL_PJSIP_TRANSPORT", "t-lan")])).unwrap();
        assert_eq!(
            legacy.asterisk.policy.transports.default_id().as_str(),
            "t-lan"
        );
        let agreeing = [
            ("PORTAL_PJSIP_TRANSPORT", "a"),
            ("PORTAL_PJSIP_TRANSPORTS", "a,b"),
        ];
        assert!(Config::from_vars(&vars(&agreeing)).is_ok());

        for (var, value) in [
            ("PORTAL_NAT", "yes"),
            ("PORTAL_CODECS", "g722,ulwa"),
            ("PORTAL_CODECS", "ulaw,ulaw"),
            ("PORTAL_CODECS", "ulaw,"),
            ("PORTAL_CODECS", "all"),
            ("PORTAL_PJSIP_TRANSPORTS", "a,a"),
            ("PORTAL_PJSIP_TRANSPORTS", "a,b;c"),
            ("PORTAL_PJSIP_TRANSPORT", "x\ny"),
        ] {
            assert_eq!(err_var(&[(var, value)]), var, "{var}={value}");
        }
        let e = Config::from_vars(&vars(&[("PORTAL_CODECS", "g722,ulwa")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("'ulwa' is not a codec Asterisk 22 knows"),
            "{e}"
        );
        let clash = [
            ("PORTAL_PJSIP_TRANSPORT", "c"),
            ("PORTAL_PJSIP_TRANSPORTS", "a,b"),
        ];
        assert_eq!(err_var(&clash), "PORTAL_PJSIP_TRANSPORT");
    }

    #[test]
    fn pool_size_is_2_to_200() {
        for (raw, want) in [("2", 2), ("200", 200), ("64", 64)] {
            let c = Config::from_vars(&vars(&[("PORTAL_DB_POOL_SIZE", raw)])).unwrap();
            assert_eq!(c.pool_size, want);
        }
        for raw in ["1", "0", "201", "-3", "16.5", "many"] {
            let e = Config::from_vars(&vars(&[("PORTAL_DB_POOL_SIZE", raw)])).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "configuration error: PORTAL_DB_POOL_SIZE: '{raw}' is not a number of connections from 2 to 200"
                )
            );
        }
    }

    #[test]
    fn database_url_tls_errors_are_one_line_naming_it() {
        let e = Config::from_vars(&vars(&[(
            "DATABASE_URL",
            "postgres://u:hunter2@h/db?sslmode=verify-full",
        )]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error: DATABASE_URL: sslmode=verify-full needs sslrootcert=<CA file> or sslrootcert=system"
        );
        let e = Config::from_vars(&vars(&[(
            "DATABASE_URL",
            "host=h password=hunter2 sslmode=maybe",
        )]))
        .unwrap_err();
        assert!(e.reason.contains("must be one of") && !e.to_string().contains("hunter2"));
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
        assert_eq!(
            err_var(&[("PORTAL_AMI_SECRET", "a\r\nAction: Logoff")]),
            "PORTAL_AMI_SECRET"
        );
        assert_eq!(
            err_var(&[("PORTAL_AMI_TIMEOUT_MS", "99")]),
            "PORTAL_AMI_TIMEOUT_MS"
        );
        assert_eq!(err_var(&[("PORTAL_RELAOD", "cli")]), "PORTAL_RELAOD");
        assert_eq!(
            err_var(&[("PORTAL_QUALIFY_FREQUENCY", "-1")]),
            "PORTAL_QUALIFY_FREQUENCY"
        );
    }

    #[test]
    fn error_lines_are_one_line_and_say_what_is_wrong() {
        let e = Config::from_vars(&vars(&[("PORTAL_LISTEN", "localhost")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error: PORTAL_LISTEN: 'localhost' is not an address like 127.0.0.1:8080"
        );
        let e = Config::from_vars(&vars(&[("PORTAL_RELOAD", "ssh")])).unwrap_err();
        assert_eq!(e.var, "PORTAL_RELOAD");
        assert!(
            e.reason.contains("`ssh`") && !e.to_string().contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn empty_values_count_as_unset_and_other_variables_are_ignored() {
        let c = Config::from_vars(&vars(&[
            ("PORTAL_LISTEN", ""),
            ("PATH", "/usr/bin"),
            ("PORTAL_HEALTH_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.asterisk.health_timeout, Duration::from_millis(250));
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
