//! `pbx-portal check`: the doctor. One line per check; any failure makes it exit non-zero.
//! After the database lines comes HTTPS: the certificate and key would load (and are not
//! about to expire), or, without them, whether PORTAL_LISTEN leaves loopback in clear.
//! A `warn` line is something an admin should know about that does not stop the portal
//! from working (clear text to a database on another host): it leaves the exit code 0.
//! A `skip` line is a check that could not be made here (Asterisk is only asked over
//! AMI): it leaves the exit code 0 but does not claim that all is well.
//!
//! The transports lines exist because Asterisk loads transports only when it starts
//! (F-TLS-5): the portal cannot create or fix one, so it checks that every transport it
//! renders into endpoints is defined in pjsip.conf and loaded, that the certificate and
//! key of a TLS transport are readable, and that `res_srtp` is loaded, without which every
//! call of a TLS transport's users fails with 488 (F-TLS-1).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::asterisk::ami;
use crate::asterisk::pjsip_conf::{self, PjsipConfError, TransportSection};
use crate::config::{Config, EndpointPolicy, ReloadMode, Tls, Verify};
use crate::https;
use crate::store::{self, SessionTls, Store};

/// The verdict of one check; its name, lower-case (`FAIL` in capitals), starts the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Mark {
    Ok,
    /// Works, but an admin should look: does not change the exit code.
    Warn,
    /// Not checked here (Asterisk not reachable by AMI): does not change the exit code.
    Skip,
    #[strum(serialize = "FAIL")]
    Fail,
}

impl Mark {
    /// As printed at the start of the line.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One line of the report.
pub struct Line {
    pub mark: Mark,
    pub name: &'static str,
    pub detail: String,
}

impl Line {
    /// Whether this line lets `check` exit 0.
    pub fn passes(&self) -> bool {
        self.mark != Mark::Fail
    }
}

fn line(name: &'static str, r: Result<String, String>) -> Line {
    match r {
        Ok(detail) => Line {
            mark: Mark::Ok,
            name,
            detail,
        },
        Err(detail) => Line {
            mark: Mark::Fail,
            name,
            detail,
        },
    }
}

fn writable(dir: &Path) -> Result<String, String> {
    if !dir.is_dir() {
        return Err(format!("{} does not exist", dir.display()));
    }
    tempfile::Builder::new()
        .prefix(".pbx-portal-check.")
        .tempfile_in(dir)
        .map(|_| format!("{} is writable", dir.display()))
        .map_err(|e| format!("{} is not writable: {e}", dir.display()))
}

/// Checks that `file` pulls in `dir/*.conf` with `#tryinclude` and never with `#include`
/// (an `#include` of an empty directory invalidates the whole file, F-CFG-2).
pub fn include_lines(config_dir: &Path, file: &str, dir: &Path) -> Result<String, String> {
    let path = config_dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let names_dir = |arg: &str| {
        let arg = arg.trim().trim_matches('"');
        let target = Path::new(arg);
        let target = if target.is_absolute() {
            target.to_owned()
        } else {
            config_dir.join(target)
        };
        target.parent() == Some(dir) && target.file_name().is_some_and(|f| f == "*.conf")
    };
    let mut found = false;
    for raw in text.lines() {
        let l = raw.trim();
        if let Some(arg) = l.strip_prefix("#tryinclude") {
            found |= names_dir(arg);
        } else if let Some(arg) = l.strip_prefix("#include") {
            if names_dir(arg) {
                return Err(format!(
                    "{} uses #include for {}: use #tryinclude",
                    path.display(),
                    dir.display()
                ));
            }
        }
    }
    if found {
        Ok(format!(
            "{} has #tryinclude {}/*.conf",
            path.display(),
            dir.display()
        ))
    } else {
        Err(format!(
            "{} lacks `#tryinclude {}/*.conf`",
            path.display(),
            dir.display()
        ))
    }
}

async fn database(store: &Store) -> Result<String, String> {
    store.ping().await.map_err(|e| e.to_string())?;
    let pending = store::pending_migrations(store)
        .await
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        Ok("reachable and migrated".into())
    } else {
        Err(format!(
            "migrations {pending:?} not applied: run `pbx-portal migrate`"
        ))
    }
}

/// Whether the session is encrypted, from the server's own view (`pg_stat_ssl`), and what
/// `sslmode` verified. Clear text, or TLS without verifying the server, is a warning when
/// a host is neither loopback nor a Unix socket: the password and every SIP secret then
/// cross a network readable (or, unverified, interceptable) by others.
fn tls_line(session: &SessionTls, tls: &Tls, local: bool) -> Line {
    let (mark, detail) = match (session.encrypted, tls.verify, local) {
        (true, verify, _) => {
            let version = session.version.as_deref().unwrap_or("TLS");
            let detail = format!("encrypted ({version}, {})", tls.label());
            if verify == Verify::Nothing && !local {
                (
                    Mark::Warn,
                    format!("{detail}: anyone on the path can pose as the server; use sslmode=verify-full"),
                )
            } else {
                (Mark::Ok, detail)
            }
        }
        (false, _, true) => (
            Mark::Ok,
            format!(
                "not encrypted (sslmode={}; loopback or Unix socket only)",
                tls.mode.as_str()
            ),
        ),
        (false, _, false) => (
            Mark::Warn,
            format!(
                "not encrypted (sslmode={}) to a host that is not loopback: use sslmode=verify-full",
                tls.mode.as_str()
            ),
        ),
    };
    Line {
        mark,
        name: "database tls",
        detail,
    }
}

/// How long before its end a served certificate is worth a warning.
const EXPIRY_WARNING: time::Duration = time::Duration::days(14);

/// HTTPS on PORTAL_LISTEN: whether the files would load (FAIL when not: `serve` would not
/// start) and how long the certificate has left; without TLS, a warning when the address
/// is not loopback, as `serve` logs at start.
fn https_line(cfg: &Config, now: time::OffsetDateTime) -> Line {
    let (mark, detail) = match &cfg.tls {
        Some(files) => match https::load(files) {
            Err(e) => (Mark::Fail, e.to_string()),
            Ok(loaded) => {
                let s = loaded.summary();
                let detail = format!("on {}: {} ({s})", cfg.listen, files.cert.display());
                match s.not_after {
                    Some(end) if end <= now => (Mark::Fail, format!("{detail}: expired")),
                    Some(end) if end - now < EXPIRY_WARNING => (
                        Mark::Warn,
                        format!("{detail}: expires in {} days", (end - now).whole_days()),
                    ),
                    _ => (Mark::Ok, detail),
                }
            }
        },
        None if https::clear_text_exposed(cfg.listen, false) => (
            Mark::Warn,
            format!("off on {}: {}", cfg.listen, https::CLEAR_TEXT_WARNING),
        ),
        None => (
            Mark::Ok,
            format!("off (PORTAL_LISTEN {} is loopback only)", cfg.listen),
        ),
    };
    Line {
        mark,
        name: "https",
        detail,
    }
}

async fn ami_login(cfg: &Config) -> Result<String, String> {
    let a = &cfg.asterisk;
    if a.reload != ReloadMode::Ami {
        return Ok("not used (PORTAL_RELOAD is not ami)".into());
    }
    let mut client = ami::Client::login(&a.ami)
        .await
        .map_err(|e| e.to_string())?;
    // ListCommands shows only the actions this user may run (manager.c).
    let reply = client
        .action("ListCommands", &[])
        .await
        .map_err(|e| e.to_string())?;
    client.logoff().await;
    let missing: Vec<&str> = ["Command", "Originate", "PJSIPShowContacts"]
        .into_iter()
        .filter(|a| reply.get(a).is_none())
        .collect();
    if !reply.is_success() {
        return Err(format!(
            "login ok, but ListCommands failed: {}",
            reply.get("Message").unwrap_or("")
        ));
    }
    if missing.is_empty() {
        Ok(format!(
            "login as {} ok; Command, Originate and PJSIPShowContacts allowed",
            a.ami.username
        ))
    } else {
        Err(format!(
            "login ok, but not allowed: {} (manager.conf: write = command,originate,system)",
            missing.join(", ")
        ))
    }
}

/// Whether the AMI user receives the `system` events the registration view follows.
async fn ami_events(cfg: &Config) -> Result<String, String> {
    if cfg.asterisk.reload != ReloadMode::Ami {
        return Ok("not used (PORTAL_RELOAD is not ami: registrations read unknown)".into());
    }
    crate::asterisk::event_link::receives_system_events(&cfg.asterisk.ami)
        .await
        .map(|()| "system events arrive (FullyBooted at login)".to_owned())
        .map_err(|e| e.to_string())
}

async fn agi_port(cfg: &Config) -> Result<String, String> {
    let addr = cfg.asterisk.agi_addr;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => Ok(format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // Ours if a pbx-portal answers /healthz on PORTAL_LISTEN.
            let ours = async {
                let mut s = tokio::net::TcpStream::connect(cfg.listen).await.ok()?;
                s.write_all(
                    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                )
                .await
                .ok()?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.ok()?;
                Some(String::from_utf8_lossy(&buf).contains("\"database\""))
            };
            match tokio::time::timeout(Duration::from_secs(2), ours).await {
                Ok(Some(true)) => Ok(format!("{addr} is served by the running pbx-portal")),
                _ => Err(format!("{addr} is in use by another program")),
            }
        }
        Err(e) => Err(format!("cannot bind {addr}: {e}")),
    }
}

/// `f`, or "timed out" after 10 s.
async fn within<T>(f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

/// The sections of pjsip.conf, or why they are not known.
type Sections = Result<BTreeMap<String, TransportSection>, PjsipConfError>;

/// Every listed transport is a transport section of pjsip.conf: its protocol.
fn transports_conf(policy: &EndpointPolicy, sections: &Sections) -> Result<String, String> {
    let sections = sections.as_ref().map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for id in policy.transports.iter() {
        let s = sections
            .get(id.as_str())
            .ok_or_else(|| pjsip_conf::missing(id.as_str()))?;
        found.push(format!("{id} ({})", s.protocol));
    }
    Ok(format!("{} in pjsip.conf", found.join(", ")))
}

/// The listed transports whose section says `protocol=tls`, with their sections.
fn listed_tls<'a>(
    policy: &'a EndpointPolicy,
    sections: &'a BTreeMap<String, TransportSection>,
) -> Vec<(&'a str, &'a TransportSection)> {
    policy
        .transports
        .iter()
        .filter_map(|id| sections.get(id.as_str()).map(|s| (id.as_str(), s)))
        .filter(|(_, s)| s.is_tls())
        .collect()
}

/// Whether this process can read `path` (one byte is read, never shown).
fn readable(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    match f.read(&mut byte) {
        Ok(0) => Err("it is empty".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The certificate and key of every listed TLS transport are readable by this process.
fn tls_files(policy: &EndpointPolicy, sections: &Sections) -> Line {
    let Ok(sections) = sections else {
        return Line {
            mark: Mark::Skip,
            name: "tls files",
            detail: "skipped: pjsip.conf could not be read".into(),
        };
    };
    let tls = listed_tls(policy, sections);
    if tls.is_empty() {
        return line("tls files", Ok("no listed transport is TLS".into()));
    }
    let mut ok = Vec::new();
    for (id, s) in tls {
        for (option, file) in [
            ("cert_file", &s.cert_file),
            ("priv_key_file", &s.priv_key_file),
        ] {
            let Some(file) = file else {
                return line(
                    "tls files",
                    Err(format!("[{id}] of pjsip.conf sets no {option}")),
                );
            };
            if let Err(e) = readable(file) {
                return line(
                    "tls files",
                    Err(format!(
                        "{id}: {option} {} cannot be read by pbx-portal: {e}",
                        file.display()
                    )),
                );
            }
            ok.push(file.display().to_string());
        }
    }
    line("tls files", Ok(format!("{} readable", ok.join(", "))))
}

/// The `(id, type)` rows of `pjsip show transports` (F-TLS-8):
/// `Transport:  <id>  <type>  <cos>  <tos>  <bind>`, the header row left out.
pub fn parse_show_transports(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            if words.next()? != "Transport:" {
                return None;
            }
            let id = words.next()?;
            let kind = words.next()?;
            (!id.starts_with('<')).then(|| (id.to_owned(), kind.to_owned()))
        })
        .collect()
}

/// A module as `module show like <name>` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleState {
    Running,
    /// Listed, with this status (`Not Running`, `Declined`).
    NotRunning(String),
    /// `0 modules loaded`.
    NotLoaded,
}

/// Reads `module show like <module>` (F-TLS-8): the module's row, or `0 modules loaded`.
pub fn parse_module_show(output: &str, module: &str) -> Result<ModuleState, String> {
    let mut count = None;
    for l in output.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        if words.first() == Some(&module) {
            // MODLIST_FORMAT: module, description, use count, status, support level.
            let padded = format!(" {l} ");
            return Ok(if padded.contains(" Not Running ") {
                ModuleState::NotRunning("Not Running".into())
            } else if padded.contains(" Running ") {
                ModuleState::Running
            } else if padded.contains(" Declined ") {
                ModuleState::NotRunning("Declined".into())
            } else {
                ModuleState::NotRunning(
                    words
                        .get(words.len().saturating_sub(2))
                        .map_or_else(String::new, |s| s.to_string()),
                )
            });
        }
        if let [n, "modules", "loaded"] = words[..] {
            count = n.parse::<u32>().ok();
        }
    }
    match count {
        Some(0) => Ok(ModuleState::NotLoaded),
        _ => Err(format!(
            "unexpected answer to `module show like {module}`: {output:?}"
        )),
    }
}

/// The listed transports against what Asterisk has loaded.
fn transports_live(
    policy: &EndpointPolicy,
    sections: &Sections,
    output: &str,
) -> Result<String, String> {
    let loaded = parse_show_transports(output);
    let restart = "transports load only when Asterisk starts: restart Asterisk";
    let mut shown = Vec::new();
    for id in policy.transports.iter() {
        let Some((_, kind)) = loaded.iter().find(|(l, _)| l == id.as_str()) else {
            let all: Vec<&str> = loaded.iter().map(|(l, _)| l.as_str()).collect();
            return Err(format!(
                "Asterisk has no transport '{id}' loaded (loaded: {}); {restart}",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            ));
        };
        if let Some(conf) = sections.as_ref().ok().and_then(|s| s.get(id.as_str())) {
            let comparable = ["udp", "tcp", "tls"].contains(&conf.protocol.as_str());
            if comparable && !conf.protocol.eq_ignore_ascii_case(kind) {
                return Err(format!(
                    "Asterisk runs '{id}' as {kind}, pjsip.conf says {}; {restart}",
                    conf.protocol
                ));
            }
        }
        shown.push(format!("{id} ({kind})"));
    }
    Ok(format!("Asterisk has {} loaded", shown.join(", ")))
}

/// The `res_srtp` line from `module show like res_srtp`.
fn srtp(output: &str) -> Result<String, String> {
    let fix = "every encrypted call would fail with 488 Not Acceptable Here; install Asterisk with libsrtp2 / load res_srtp.so";
    match parse_module_show(output, "res_srtp.so")? {
        ModuleState::Running => Ok("res_srtp.so is running (SRTP for the TLS transports)".into()),
        ModuleState::NotLoaded => Err(format!("res_srtp.so is not loaded: {fix}")),
        ModuleState::NotRunning(status) => Err(format!("res_srtp.so is {status}: {fix}")),
    }
}

/// An `Action: Command`'s output, or why there is none.
async fn command_output(client: &mut ami::Client, command: &str) -> Result<String, String> {
    let reply = client.command(command).await.map_err(|e| e.to_string())?;
    let output = reply.output();
    if reply.is_success() {
        Ok(output)
    } else if output.is_empty() {
        Err(format!(
            "Asterisk refused `{command}`: {}",
            reply.get("Message").unwrap_or("no message")
        ))
    } else {
        Err(format!("Asterisk refused `{command}`: {output}"))
    }
}

/// The lines that ask Asterisk: which transports it has loaded, and `res_srtp` when a
/// listed transport is TLS. Skipped unless AMI is configured.
async fn asterisk_lines(cfg: &Config, sections: &Sections) -> [Line; 2] {
    let a = &cfg.asterisk;
    let any_tls = match sections {
        Ok(s) => Some(!listed_tls(&a.policy, s).is_empty()),
        Err(_) => None,
    };
    let skip = |name, why: &str| Line {
        mark: Mark::Skip,
        name,
        detail: format!("skipped: {why}"),
    };
    let srtp_alone = match any_tls {
        Some(false) => Some(line(
            "res_srtp",
            Ok("not needed: no listed transport is TLS".into()),
        )),
        None => Some(skip("res_srtp", "pjsip.conf could not be read")),
        Some(true) => None,
    };
    if a.reload != ReloadMode::Ami {
        let why = "PORTAL_RELOAD is not ami, so Asterisk is not asked";
        return [
            skip("transports live", why),
            srtp_alone.unwrap_or_else(|| skip("res_srtp", why)),
        ];
    }
    let asked = within(async {
        let mut client = ami::Client::login(&a.ami)
            .await
            .map_err(|e| e.to_string())?;
        let transports = command_output(&mut client, "pjsip show transports").await;
        let srtp = match srtp_alone {
            None => Some(command_output(&mut client, "module show like res_srtp").await),
            Some(_) => None,
        };
        client.logoff().await;
        Ok((transports, srtp))
    })
    .await;
    match asked {
        Ok((transports, srtp_out)) => [
            line(
                "transports live",
                transports.and_then(|out| transports_live(&a.policy, sections, &out)),
            ),
            match srtp_out {
                Some(out) => line("res_srtp", out.and_then(|o| srtp(&o))),
                None => srtp_alone.unwrap_or_else(|| skip("res_srtp", "not asked")),
            },
        ],
        Err(e) => [
            line("transports live", Err(e.clone())),
            srtp_alone.unwrap_or_else(|| line("res_srtp", Err(e))),
        ],
    }
}

/// Runs every check.
pub async fn run(cfg: &Config) -> Vec<Line> {
    let a = &cfg.asterisk;
    // One query at a time: the smallest pool, whatever PORTAL_DB_POOL_SIZE says.
    let (db, tls) = match Store::connect(&cfg.database, 2).await {
        Ok(store) => {
            let db = within(database(&store)).await;
            let session =
                within(async { store.session_tls().await.map_err(|e| e.to_string()) }).await;
            let tls = match session {
                Ok(s) => tls_line(&s, cfg.database.tls(), cfg.database.is_local()),
                Err(e) => line("database tls", Err(format!("cannot be read: {e}"))),
            };
            (db, tls)
        }
        Err(e) => (
            Err(e.to_string()),
            line("database tls", Err("not known: no connection".into())),
        ),
    };
    let sections = pjsip_conf::read_transports(&a.config_dir, &a.pjsip_dir);
    let [live, srtp] = asterisk_lines(cfg, &sections).await;
    vec![
        line("database", db),
        tls,
        https_line(cfg, time::OffsetDateTime::now_utc()),
        line("pjsip dir", writable(&a.pjsip_dir)),
        line("dialplan dir", writable(&a.dialplan_dir)),
        line(
            "pjsip.conf",
            include_lines(&a.config_dir, "pjsip.conf", &a.pjsip_dir),
        ),
        line(
            "extensions.conf",
            include_lines(&a.config_dir, "extensions.conf", &a.dialplan_dir),
        ),
        line("ami", ami_login(cfg).await),
        line("ami events", ami_events(cfg).await),
        line("fastagi", agi_port(cfg).await),
        line("transports", transports_conf(&a.policy, &sections)),
        live,
        tls_files(&a.policy, &sections),
        srtp,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_lines_want_tryinclude_of_the_directory() {
        let etc = tempfile::tempdir().unwrap();
        let dir = etc.path().join("pjsip.d/synergycall");
        let write = |t: &str| std::fs::write(etc.path().join("pjsip.conf"), t).unwrap();
        write("[global]\n#tryinclude pjsip.d/synergycall/*.conf\n");
        assert!(include_lines(etc.path(), "pjsip.conf", &dir).is_ok());
        write(&format!("#tryinclude {}/*.conf\n", dir.display()));
        assert!(include_lines(etc.path(), "pjsip.conf", &dir).is_ok());
        write("#include pjsip.d/synergycall/*.conf\n");
        assert!(include_lines(etc.path(), "pjsip.conf", &dir)
            .unwrap_err()
            .contains("#include"));
        write("#tryinclude other/*.conf\n");
        assert!(include_lines(etc.path(), "pjsip.conf", &dir)
            .unwrap_err()
            .contains("lacks"));
        assert!(include_lines(etc.path(), "missing.conf", &dir).is_err());
    }

    fn tls(raw: &str) -> (Tls, bool) {
        let url: crate::config::DatabaseUrl =
            serde_json::from_value(serde_json::Value::String(raw.into())).unwrap();
        (url.tls().clone(), url.is_local())
    }

    #[test]
    fn clear_text_or_an_unverified_server_off_this_host_is_a_warning() {
        let clear = SessionTls {
            encrypted: false,
            version: None,
        };
        let tls13 = SessionTls {
            encrypted: true,
            version: Some("TLSv1.3".into()),
        };
        let cases = [
            (
                &clear,
                "host=192.0.2.7",
                Mark::Warn,
                "not encrypted (sslmode=prefer) to a host",
            ),
            (
                &clear,
                "host=db.example sslmode=disable",
                Mark::Warn,
                "not encrypted (sslmode=disable)",
            ),
            (
                &clear,
                "host=127.0.0.1 sslmode=disable",
                Mark::Ok,
                "not encrypted (sslmode=disable; loopback",
            ),
            (
                &clear,
                "host=/var/run/postgresql",
                Mark::Ok,
                "not encrypted (sslmode=prefer; loopback or Unix socket only)",
            ),
            (
                &tls13,
                "host=db.example sslmode=verify-full sslrootcert=/ca.pem",
                Mark::Ok,
                "encrypted (TLSv1.3, verify-full)",
            ),
            (
                &tls13,
                "host=db.example sslmode=verify-ca sslrootcert=/ca.pem",
                Mark::Ok,
                "encrypted (TLSv1.3, verify-ca)",
            ),
            (
                &tls13,
                "host=db.example sslmode=require",
                Mark::Warn,
                "anyone on the path",
            ),
            (
                &tls13,
                "host=localhost sslmode=require",
                Mark::Ok,
                "encrypted (TLSv1.3, require, server not verified)",
            ),
        ];
        for (session, raw, mark, detail) in cases {
            let (t, local) = tls(raw);
            let l = tls_line(session, &t, local);
            assert_eq!(
                (l.mark, l.name),
                (mark, "database tls"),
                "{raw}: {}",
                l.detail
            );
            assert!(
                l.detail.starts_with(detail) || l.detail.contains(detail),
                "{raw}: {}",
                l.detail
            );
            assert!(l.passes(), "a TLS line never fails check");
        }
    }

    /// The `Output` of each `Action: Command` answer of a recording, by ActionID.
    fn recorded(raw: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(raw).unwrap();
        let (_banner, rest) = text.split_once("\r\n").unwrap();
        rest.split("\r\n\r\n")
            .map(ami::Message::parse)
            .filter(|m| m.get("ActionID").is_some())
            .map(|m| (m.get("ActionID").unwrap().to_owned(), m.output()))
            .collect()
    }

    const LOADED: &[u8] = include_bytes!(
        "../tests/fixtures/asterisk/tls/ami_command_transports_srtp_loaded.recv.bin"
    );
    const NOT_LOADED: &[u8] =
        include_bytes!("../tests/fixtures/asterisk/tls/ami_command_srtp_not_loaded.recv.bin");

    #[test]
    fn reads_the_recorded_transports_and_res_srtp_answers() {
        let answers = recorded(LOADED);
        assert_eq!(answers.len(), 2);
        assert_eq!(
            parse_show_transports(&answers[0].1),
            [
                ("transport-tcp".to_owned(), "tcp".to_owned()),
                ("transport-tls".to_owned(), "tls".to_owned()),
                ("transport-udp".to_owned(), "udp".to_owned()),
            ]
        );
        assert_eq!(
            parse_module_show(&answers[1].1, "res_srtp.so"),
            Ok(ModuleState::Running)
        );
        assert!(srtp(&answers[1].1).is_ok());
        let answers = recorded(NOT_LOADED);
        assert_eq!(answers.len(), 1);
        assert_eq!(
            parse_module_show(&answers[0].1, "res_srtp.so"),
            Ok(ModuleState::NotLoaded)
        );
        assert!(parse_show_transports(&answers[0].1).is_empty());
        let e = srtp(&answers[0].1).unwrap_err();
        assert!(
            e.contains("488 Not Acceptable Here") && e.contains("libsrtp2"),
            "{e}"
        );
        assert!(parse_module_show("No such command 'module show like'", "res_srtp.so").is_err());
        assert_eq!(
            parse_module_show(
                "Module Description Use Count Status Support Level\nres_srtp.so  Secure RTP (SRTP)  0  Not Running  core\n1 modules loaded",
                "res_srtp.so"
            ),
            Ok(ModuleState::NotRunning("Not Running".into()))
        );
    }

    fn policy(ids: &[&str]) -> EndpointPolicy {
        use crate::domain::{TransportId, Transports};
        EndpointPolicy {
            transports: Transports::new(
                ids.iter().map(|i| TransportId::parse(i).unwrap()).collect(),
            )
            .unwrap(),
            tls: Default::default(),
            nat: true,
            codecs: Default::default(),
            qualify_frequency: 0,
        }
    }

    fn section(protocol: &str, cert: Option<&Path>, key: Option<&Path>) -> TransportSection {
        TransportSection {
            protocol: protocol.into(),
            cert_file: cert.map(Path::to_owned),
            priv_key_file: key.map(Path::to_owned),
            ca_list_file: None,
        }
    }

    #[test]
    fn listed_transports_against_pjsip_conf_and_asterisk() {
        let sections: Sections = Ok([
            ("transport-udp".to_owned(), section("udp", None, None)),
            ("transport-tls".to_owned(), section("tls", None, None)),
        ]
        .into());
        let p = policy(&["transport-udp", "transport-tls"]);
        assert_eq!(
            transports_conf(&p, &sections).unwrap(),
            "transport-udp (udp), transport-tls (tls) in pjsip.conf"
        );
        let missing = policy(&["transport-udp", "transport-wss"]);
        assert_eq!(
            transports_conf(&missing, &sections).unwrap_err(),
            "PORTAL_PJSIP_TRANSPORTS lists 'transport-wss' but pjsip.conf has no [transport-wss] transport"
        );
        let out = &recorded(LOADED)[0].1;
        assert_eq!(
            transports_live(&p, &sections, out).unwrap(),
            "Asterisk has transport-udp (udp), transport-tls (tls) loaded"
        );
        let e = transports_live(&missing, &sections, out).unwrap_err();
        assert!(
            e.contains("'transport-wss'") && e.contains("restart Asterisk"),
            "{e}"
        );
        // pjsip.conf changed to tls after Asterisk started with udp.
        let changed: Sections =
            Ok([("transport-tcp".to_owned(), section("tls", None, None))].into());
        let e = transports_live(&policy(&["transport-tcp"]), &changed, out).unwrap_err();
        assert!(
            e.contains("as tcp") && e.contains("restart Asterisk"),
            "{e}"
        );
    }

    #[test]
    fn tls_files_must_be_readable_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nSECRETBYTES\n").unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n").unwrap();
        let p = policy(&["transport-udp", "transport-tls"]);
        let with = |c: &Path, k: Option<&Path>| -> Sections {
            Ok([
                ("transport-udp".to_owned(), section("udp", None, None)),
                ("transport-tls".to_owned(), section("tls", Some(c), k)),
            ]
            .into())
        };
        let l = tls_files(&p, &with(&cert, Some(&key)));
        assert_eq!(l.mark, Mark::Ok, "{}", l.detail);
        assert!(l.detail.contains("k.pem") && !l.detail.contains("SECRET"));
        let gone = dir.path().join("gone.key");
        let l = tls_files(&p, &with(&cert, Some(&gone)));
        assert_eq!(l.mark, Mark::Fail);
        assert!(
            l.detail.contains("priv_key_file") && l.detail.contains("gone.key"),
            "{}",
            l.detail
        );
        let l = tls_files(&p, &with(&cert, None));
        assert!(
            l.mark == Mark::Fail && l.detail.contains("sets no priv_key_file"),
            "{}",
            l.detail
        );
        let l = tls_files(&p, &with(dir.path(), Some(&key)));
        assert_eq!(
            l.mark,
            Mark::Fail,
            "a directory is not a certificate: {}",
            l.detail
        );
        let l = tls_files(&policy(&["transport-udp"]), &with(&gone, None));
        assert_eq!(
            (l.mark, l.detail.as_str()),
            (Mark::Ok, "no listed transport is TLS")
        );
        let unread: Sections = Err(PjsipConfError::NotFound { path: "x".into() });
        assert_eq!(tls_files(&p, &unread).mark, Mark::Skip);
        assert!(Line {
            mark: Mark::Skip,
            name: "x",
            detail: String::new()
        }
        .passes());
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut vars: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("PORTAL_RELOAD", "none"),
            ("PORTAL_NODE", "pbx1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(&vars).unwrap()
    }

    #[test]
    fn https_off_loopback_is_a_warning_and_its_files_must_load() {
        let now = time::OffsetDateTime::now_utc();
        let l = https_line(&config(&[]), now);
        assert_eq!(l.mark, Mark::Ok, "{}", l.detail);
        assert_eq!(l.name, "https");
        let l = https_line(&config(&[("PORTAL_LISTEN", "0.0.0.0:8080")]), now);
        assert_eq!(l.mark, Mark::Warn, "{}", l.detail);
        assert!(
            l.detail
                .contains("bearer tokens cross the network in clear")
                && l.passes(),
            "{}",
            l.detail
        );

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-ca.sh");
        assert!(std::process::Command::new(script)
            .arg(d)
            .output()
            .unwrap()
            .status
            .success());
        let (cert, key) = (d.join("server.crt"), d.join("server.key"));
        let tls = config(&[
            ("PORTAL_LISTEN", "0.0.0.0:8443"),
            ("PORTAL_TLS_CERT", cert.to_str().unwrap()),
            ("PORTAL_TLS_KEY", key.to_str().unwrap()),
        ]);
        let l = https_line(&tls, now);
        assert_eq!(l.mark, Mark::Ok, "{}", l.detail);
        assert!(l.detail.contains("server.crt (sha256 "), "{}", l.detail);
        let end = crate::https::load(tls.tls.as_ref().unwrap())
            .unwrap()
            .summary()
            .not_after
            .unwrap();
        let l = https_line(&tls, end - time::Duration::days(3));
        assert!(
            l.mark == Mark::Warn && l.detail.ends_with("expires in 3 days"),
            "{}",
            l.detail
        );
        let l = https_line(&tls, end + time::Duration::days(1));
        assert!(
            l.mark == Mark::Fail && l.detail.ends_with("expired"),
            "{}",
            l.detail
        );

        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n").unwrap();
        let l = https_line(&tls, now);
        assert_eq!(l.mark, Mark::Fail);
        assert!(
            l.detail.contains("server.key") && !l.detail.contains("SECRET"),
            "{}",
            l.detail
        );
    }
}
