//! `DATABASE_URL`: the connection string, with `sslmode` and `sslrootcert` read as libpq
//! reads them.
//!
//! tokio-postgres parses a connection string itself, but it knows `sslmode` only as
//! `disable`/`prefer`/`require` and does not know `sslrootcert` (it refuses the string).
//! So the two parameters are read here, in both forms (`postgres://…?sslmode=…` and
//! `key=value`), cut out of the string, and the rest goes to `tokio_postgres::Config`
//! unchanged: hosts, ports, `hostaddr`, `target_session_attrs` (failover) and every other
//! parameter keep tokio-postgres's (libpq-compatible) meaning. What the connector must do
//! is kept as a [`Tls`]; the store builds the TLS connector from it (config knows no TLS
//! library).
//!
//! Deviations from libpq, each because a service should not depend on a file it never
//! named: `~/.postgresql/root.crt` is never read (`verify-ca`/`verify-full` need
//! `sslrootcert`, a file or `system`), `PGSSLMODE`/`PGSSLROOTCERT` are not read, and
//! `sslmode=allow` is refused (tokio-postgres cannot try clear text first).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tokio_postgres::config::Host;

/// libpq's `sslmode`, without `allow`; each variant's name, in kebab case, is the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, clear text when it answers that it has none (the
    /// default, as in libpq).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, the server's certificate chain verified against `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(value: &str) -> Result<Self, &'static str> {
        value.parse().map_err(|_| match value {
            "allow" => "sslmode=allow is not supported: use prefer or disable",
            _ => "sslmode must be one of disable, prefer, require, verify-ca, verify-full",
        })
    }
}

/// Where the certificate authorities that may sign the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`, as libpq 16).
    System,
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: the connection is encrypted, the server not authenticated.
    Nothing,
    /// The chain up to a CA of `sslrootcert`, not the host name.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// What the TLS connector must do, from `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// `None` only where nothing is verified.
    pub root_cert: Option<RootCert>,
    pub verify: Verify,
}

impl Tls {
    /// `sslmode` and `sslrootcert` as libpq combines them: `require` (or `prefer`) with an
    /// `sslrootcert` verifies the chain as `verify-ca` does (libpq verifies whenever it
    /// has a root certificate); `sslrootcert=system` means `verify-full` and allows no
    /// weaker mode (libpq 16).
    fn new(mode: Option<SslMode>, root_cert: Option<RootCert>) -> Result<Self, &'static str> {
        let mode = match (mode, &root_cert) {
            (None, Some(RootCert::System)) => SslMode::VerifyFull,
            (Some(m), Some(RootCert::System)) if m != SslMode::VerifyFull => {
                return Err("sslrootcert=system needs sslmode=verify-full (as in libpq)")
            }
            (m, _) => m.unwrap_or(SslMode::Prefer),
        };
        let verify = match (mode, &root_cert) {
            (SslMode::Disable, _) => Verify::Nothing,
            (SslMode::VerifyFull, Some(_)) => Verify::ChainAndName,
            (SslMode::VerifyCa, Some(_)) => Verify::Chain,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(if mode == SslMode::VerifyFull {
                    "sslmode=verify-full needs sslrootcert=<CA file> or sslrootcert=system"
                } else {
                    "sslmode=verify-ca needs sslrootcert=<CA file> or sslrootcert=system"
                });
            }
            (SslMode::Prefer | SslMode::Require, Some(_)) => Verify::Chain,
            (SslMode::Prefer | SslMode::Require, None) => Verify::Nothing,
        };
        let root_cert = if verify == Verify::Nothing {
            None
        } else {
            root_cert
        };
        Ok(Self {
            mode,
            root_cert,
            verify,
        })
    }

    /// What is checked, for `check`: the mode, and what `sslrootcert` adds to it.
    pub fn label(&self) -> String {
        match (self.mode, self.verify) {
            (SslMode::VerifyCa | SslMode::VerifyFull | SslMode::Disable, _) => {
                self.mode.as_str().to_owned()
            }
            (m, Verify::Nothing) => format!("{}, server not verified", m.as_str()),
            (m, _) => format!("{} with sslrootcert: verified as verify-ca", m.as_str()),
        }
    }
}

/// The database connection settings. `Debug` never prints them: they hold the password.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct DatabaseUrl {
    pg: tokio_postgres::Config,
    tls: Tls,
}

impl DatabaseUrl {
    /// Everything but TLS, for tokio-postgres; its `ssl_mode` is set from [`Self::tls`].
    pub fn pg(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Whether every host is a Unix socket or a loopback address (`hostaddr` when given,
    /// else `host`; the name `localhost` counts): clear text is then no exposure.
    pub fn is_local(&self) -> bool {
        let hosts = self.pg.get_hosts();
        let addrs = self.pg.get_hostaddrs();
        (0..hosts.len().max(addrs.len())).all(|i| match (addrs.get(i), hosts.get(i)) {
            (Some(ip), _) => ip.is_loopback(),
            (None, Some(Host::Unix(_))) => true,
            (None, Some(Host::Tcp(name))) => {
                name.eq_ignore_ascii_case("localhost")
                    || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            (None, None) => false,
        })
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl([REDACTED])")
    }
}

/// The `ssl*` parameters tokio-postgres understands itself.
const PASSED_THROUGH: [&str; 1] = ["sslnegotiation"];

/// `sslmode` and `sslrootcert` as found (the last of each wins, as in libpq), and the
/// string without them.
#[derive(Debug, Default, PartialEq)]
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl Split {
    /// Keeps a parameter for tokio-postgres, or takes it if it is one of ours. Other
    /// `ssl*` parameters (client certificates, CRLs, protocol bounds) are refused rather
    /// than ignored: a setting that silently does nothing is worse than an error.
    fn take(
        &mut self,
        key: &str,
        value: impl FnOnce() -> Result<String, ()>,
    ) -> Result<bool, String> {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            k if k.starts_with("ssl") && !PASSED_THROUGH.contains(&k) => {
                return Err(format!(
                    "{k} is not supported (pbx-portal reads sslmode and sslrootcert)"
                ))
            }
            _ => return Ok(false),
        };
        *slot = Some(value().map_err(|()| format!("{key} is not valid UTF-8 once decoded"))?);
        Ok(true)
    }
}

/// The URL form: parameters are the `&`-separated pairs after the first `?` that follows
/// the credentials (tokio-postgres takes everything before the first `@` as credentials).
fn split_url(raw: &str, prefix_len: usize) -> Result<Split, String> {
    let (prefix, rest) = raw.split_at(prefix_len);
    let creds_end = rest.find('@').map_or(0, |i| i + 1);
    let (creds, tail) = rest.split_at(creds_end);
    let Some(q) = tail.find('?') else {
        return Ok(Split {
            rest: raw.to_owned(),
            ..Split::default()
        });
    };
    let (head, query) = (&tail[..q], &tail[q + 1..]);
    let mut split = Split::default();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        let decode = || {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| ())
        };
        if !split.take(&key, decode)? {
            kept.push(pair);
        }
    }
    split.rest = format!("{prefix}{creds}{head}");
    if !kept.is_empty() {
        split.rest.push('?');
        split.rest.push_str(&kept.join("&"));
    }
    Ok(split)
}

/// The `key=value` form, tokenised as tokio-postgres (and libpq) does: whitespace around
/// `=`, values in single quotes or bare, `\` escaping the next character. Our parameters
/// are cut out by their byte range, so the rest is passed on exactly as written.
fn split_key_value(raw: &str) -> Result<Split, String> {
    const MALFORMED: &str = "is not a postgres:// URL or a key=value connection string";
    let mut split = Split::default();
    let mut cut = Vec::new();
    let mut it = raw.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else { break };
        let mut key_end = start;
        while let Some((i, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key_end = i + c.len_utf8();
        }
        let key = &raw[start..key_end];
        skip_ws(&mut it);
        if it.next().map(|(_, c)| c) != Some('=') || key.is_empty() {
            return Err(MALFORMED.into());
        }
        skip_ws(&mut it);
        let mut value = String::new();
        let mut end = raw.len();
        let quoted = it.next_if(|(_, c)| *c == '\'').is_some();
        loop {
            match it.peek().copied() {
                None if quoted => return Err(MALFORMED.into()),
                None => break,
                Some((i, c)) if (quoted && c == '\'') || (!quoted && c.is_whitespace()) => {
                    it.next();
                    end = if quoted { i + 1 } else { i };
                    break;
                }
                Some((_, '\\')) => {
                    it.next();
                    if let Some((_, c)) = it.next() {
                        value.push(c);
                    }
                }
                Some((_, c)) => {
                    it.next();
                    value.push(c);
                }
            }
        }
        if split.take(key, || Ok(value))? {
            cut.push(start..end);
        }
    }
    let mut rest = String::with_capacity(raw.len());
    let mut at = 0;
    for r in cut {
        rest.push_str(&raw[at..r.start]);
        rest.push(' ');
        at = r.end;
    }
    rest.push_str(&raw[at..]);
    split.rest = rest;
    Ok(split)
}

/// libpq's connection parameters (PostgreSQL 18): the only unknown names an error may quote.
const LIBPQ_PARAMETERS: [&str; 44] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslcertmode",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "min_protocol_version",
    "max_protocol_version",
];

/// Why tokio-postgres refused the rest of the string, in words that quote no value: a bad
/// value is named by its parameter (tokio-postgres names only parameters it knows); an
/// unknown parameter only when it is libpq's, since a "parameter" can be half of an
/// unquoted password with a space in it. Anything else its parser says ("unexpected
/// character … got `x`") might quote a password: not repeated.
fn parse_reason(e: &tokio_postgres::Error) -> String {
    let cause = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default();
    let key = |prefix: &str| {
        cause
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix('`')?.strip_suffix('`'))
            .map(str::to_owned)
    };
    if let Some(k) = key("invalid value for option ") {
        return format!("has an invalid value for {k}");
    }
    match key("unknown option ") {
        Some(k) if LIBPQ_PARAMETERS.contains(&k.as_str()) => {
            format!("{k} is not supported by pbx-portal")
        }
        Some(_) => {
            "has a parameter libpq does not know (misspelt? a value with spaces must be quoted)"
                .into()
        }
        None => "is not a postgres:// URL or a key=value connection string".into(),
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let split = match ["postgres://", "postgresql://"]
            .iter()
            .find(|p| raw.starts_with(*p))
        {
            Some(p) => split_url(&raw, p.len())?,
            None => split_key_value(&raw)?,
        };
        let mode = split.sslmode.as_deref().map(SslMode::parse).transpose()?;
        let root_cert = match split.sslrootcert.as_deref() {
            None | Some("") => None,
            Some("system") => Some(RootCert::System),
            Some(path) => Some(RootCert::File(path.into())),
        };
        let tls = Tls::new(mode, root_cert)?;
        // The parser's message can quote the URL, password included: say only what is wrong.
        let mut pg: tokio_postgres::Config = split.rest.parse().map_err(|e| parse_reason(&e))?;

        let hosts = pg.get_hosts();
        let sockets = hosts.iter().filter(|h| matches!(h, Host::Unix(_))).count();
        let pg_mode = if tls.mode == SslMode::Disable {
            tokio_postgres::config::SslMode::Disable
        } else if sockets > 0 && sockets == hosts.len() && pg.get_hostaddrs().is_empty() {
            // libpq never uses TLS over a Unix socket, whatever sslmode says; the server
            // would refuse it anyway.
            tokio_postgres::config::SslMode::Disable
        } else if sockets > 0 && tls.mode != SslMode::Prefer {
            return Err(format!(
                "a Unix-socket host cannot be combined with sslmode={}: TLS is never used over a socket",
                tls.mode.as_str()
            ));
        } else if tls.mode == SslMode::Prefer {
            tokio_postgres::config::SslMode::Prefer
        } else {
            tokio_postgres::config::SslMode::Require
        };
        pg.ssl_mode(pg_mode);
        // With only `hostaddr`, tokio-postgres has no name for the TLS handshake and
        // refuses it; libpq checks the address itself against the certificate.
        if pg.get_hosts().is_empty() && pg_mode != tokio_postgres::config::SslMode::Disable {
            for ip in pg.get_hostaddrs().to_vec() {
                pg.host(ip.to_string());
            }
        }
        Ok(Self { pg, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::SslMode as PgMode;

    fn parse(raw: &str) -> Result<DatabaseUrl, String> {
        DatabaseUrl::try_from(raw.to_owned())
    }

    /// What a string means for TLS: our mode, what is verified, the roots, tokio-postgres's mode.
    type Meaning = (SslMode, Verify, Option<RootCert>, PgMode);

    fn tls(raw: &str) -> Meaning {
        let u = parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (
            u.tls.mode,
            u.tls.verify,
            u.tls.root_cert,
            u.pg.get_ssl_mode(),
        )
    }

    #[test]
    fn sslmode_in_both_forms_with_libpq_meanings() {
        let ca = || Some(RootCert::File("/etc/ca.pem".into()));
        let cases: &[(&str, Meaning)] = &[
            (
                "postgres://u@h/db",
                (SslMode::Prefer, Verify::Nothing, None, PgMode::Prefer),
            ),
            (
                "host=h dbname=db",
                (SslMode::Prefer, Verify::Nothing, None, PgMode::Prefer),
            ),
            (
                "postgres://u@h/db?sslmode=disable",
                (SslMode::Disable, Verify::Nothing, None, PgMode::Disable),
            ),
            (
                "host=h sslmode=require",
                (SslMode::Require, Verify::Nothing, None, PgMode::Require),
            ),
            (
                "postgres://h/db?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
                (SslMode::VerifyCa, Verify::Chain, ca(), PgMode::Require),
            ),
            (
                "host=h sslmode = verify-full sslrootcert='/etc/ca.pem'",
                (
                    SslMode::VerifyFull,
                    Verify::ChainAndName,
                    ca(),
                    PgMode::Require,
                ),
            ),
            // libpq: require with a root certificate verifies as verify-ca.
            (
                "host=h sslmode=require sslrootcert=/etc/ca.pem",
                (SslMode::Require, Verify::Chain, ca(), PgMode::Require),
            ),
            (
                "postgres://h/db?sslrootcert=/etc/ca.pem",
                (SslMode::Prefer, Verify::Chain, ca(), PgMode::Prefer),
            ),
            // libpq 16: system means verify-full.
            (
                "postgresql://h/db?sslrootcert=system",
                (
                    SslMode::VerifyFull,
                    Verify::ChainAndName,
                    Some(RootCert::System),
                    PgMode::Require,
                ),
            ),
            // The last of each wins; a percent-encoded path is decoded.
            (
                "postgres://h/db?sslmode=disable&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
                (
                    SslMode::VerifyFull,
                    Verify::ChainAndName,
                    ca(),
                    PgMode::Require,
                ),
            ),
            // TLS is never used over a Unix socket (libpq ignores sslmode there).
            (
                "host=/var/run/postgresql sslmode=prefer",
                (SslMode::Prefer, Verify::Nothing, None, PgMode::Disable),
            ),
            (
                "host=/var/run/postgresql sslmode=verify-full sslrootcert=/etc/ca.pem",
                (
                    SslMode::VerifyFull,
                    Verify::ChainAndName,
                    ca(),
                    PgMode::Disable,
                ),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(&tls(raw), want, "{raw}");
        }
    }

    #[test]
    fn our_parameters_are_cut_out_and_the_rest_kept() {
        let u = parse(
            "postgres://u:p%40ss@db1:5433,db2:5434/portal?sslmode=verify-full&target_session_attrs=read-write&sslrootcert=/ca.pem&connect_timeout=3",
        )
        .unwrap();
        let pg = u.pg();
        assert_eq!(pg.get_user(), Some("u"));
        assert_eq!(pg.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(pg.get_dbname(), Some("portal"));
        assert_eq!(pg.get_ports(), &[5433, 5434]);
        assert_eq!(
            pg.get_hosts(),
            &[Host::Tcp("db1".into()), Host::Tcp("db2".into())]
        );
        assert_eq!(
            pg.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(
            pg.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );

        let u = parse(
            r"host=db1,db2 password='it''s \'quoted\' sslmode=x' sslmode=verify-ca sslrootcert='/my ca.pem' target_session_attrs=read-write",
        );
        // `''` is not an escape in libpq's syntax: this string is malformed.
        assert!(u.is_err());
        let u = parse(
            r"host=db1,db2 password='a \'quoted\' sslmode=x' sslmode=verify-ca sslrootcert='/my ca.pem' target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(u.pg().get_password(), Some(&b"a 'quoted' sslmode=x"[..]));
        assert_eq!(u.tls.root_cert, Some(RootCert::File("/my ca.pem".into())));
        assert_eq!(u.tls.mode, SslMode::VerifyCa);
    }

    #[test]
    fn split_keeps_everything_else_byte_for_byte() {
        let s = split_key_value("host=h  sslmode=require\tport=1 sslrootcert='/a b'").unwrap();
        assert_eq!(s.rest, "host=h   \tport=1  ");
        assert_eq!(
            (s.sslmode.as_deref(), s.sslrootcert.as_deref()),
            (Some("require"), Some("/a b"))
        );
        let s = split_url("postgres://u:pw?x@h/db?a=1&sslmode=require&b=2", 11).unwrap();
        assert_eq!(s.rest, "postgres://u:pw?x@h/db?a=1&b=2");
        assert_eq!(s.sslmode.as_deref(), Some("require"));
        let s = split_url("postgres://h/db?sslmode=require", 11).unwrap();
        assert_eq!(s.rest, "postgres://h/db");
        let s = split_url("postgres://h/db", 11).unwrap();
        assert_eq!((s.rest.as_str(), s.sslmode), ("postgres://h/db", None));
    }

    #[test]
    fn bad_combinations_say_what_is_wrong() {
        let err = |raw: &str| parse(raw).err().unwrap_or_else(|| panic!("{raw} parsed"));
        assert!(err("host=h sslmode=verify-full").contains("needs sslrootcert"));
        assert!(err("postgres://h/db?sslmode=verify-ca").contains("needs sslrootcert"));
        assert!(err("host=h sslmode=allow").contains("allow is not supported"));
        assert!(err("host=h sslmode=VERIFY-FULL").contains("must be one of"));
        assert!(err("host=h sslmode=require sslrootcert=system").contains("verify-full"));
        assert!(err("host=h sslcert=/c.pem").contains("sslcert is not supported"));
        assert!(err("postgres://h/db?sslkey=/k.pem").contains("sslkey is not supported"));
        assert!(err("host=/run/pg,db2 sslmode=require").contains("Unix-socket"));
        assert!(err("host=h gssencmode=disable").contains("gssencmode is not supported"));
        assert!(err("host=h bogus=1").contains("a parameter libpq does not know"));
        assert!(err("host=h port=x").contains("has an invalid value for port"));
        assert!(err("host=h sslrootcert='/unterminated").contains("key=value"));
    }

    #[test]
    fn reasons_never_quote_a_value() {
        for raw in [
            "host=h password=hunter2 x",
            "host=h password='hunter2",
            "postgres://u:hunter2@h:port/db",
            "host=h password=hunter2 sslmode=hunter2",
            "postgres://u:hunter2@h/db?sslmode=hunter2",
            // An unquoted password with a space: its second half parses as a parameter.
            "host=h password=hun ter2=x",
        ] {
            let e = parse(raw).err().unwrap_or_else(|| panic!("{raw} parsed"));
            assert!(!e.contains("hunter2") && !e.contains("ter2"), "{raw}: {e}");
        }
    }

    #[test]
    fn a_hostaddr_without_host_names_the_tls_handshake() {
        let u = parse("hostaddr=127.0.0.1 sslmode=require").unwrap();
        assert_eq!(u.pg().get_hosts(), &[Host::Tcp("127.0.0.1".into())]);
        let u = parse("hostaddr=127.0.0.1 sslmode=disable").unwrap();
        assert!(u.pg().get_hosts().is_empty());
    }

    #[test]
    fn local_means_every_host_is_a_socket_or_loopback() {
        let local = |raw: &str| parse(raw).unwrap().is_local();
        assert!(local("host=/var/run/postgresql"));
        assert!(local("postgres://127.0.0.1/db"));
        assert!(local("postgres://localhost,[::1]/db"));
        assert!(local("host=db.example hostaddr=127.0.0.1"));
        assert!(!local("postgres://127.0.0.1,db2/db"));
        assert!(!local("host=localhost hostaddr=192.0.2.1"));
        assert!(!local("postgres://192.0.2.1/db"));
    }

    #[test]
    fn labels_say_what_is_verified() {
        let label = |raw: &str| parse(raw).unwrap().tls.label();
        assert_eq!(
            label("host=h sslmode=verify-full sslrootcert=/c"),
            "verify-full"
        );
        assert_eq!(
            label("host=h sslmode=verify-ca sslrootcert=/c"),
            "verify-ca"
        );
        assert_eq!(label("host=h"), "prefer, server not verified");
        assert_eq!(
            label("host=h sslmode=require"),
            "require, server not verified"
        );
        assert_eq!(
            label("host=h sslmode=require sslrootcert=/c"),
            "require with sslrootcert: verified as verify-ca"
        );
        assert_eq!(label("host=h sslmode=disable sslrootcert=/c"), "disable");
    }
}
