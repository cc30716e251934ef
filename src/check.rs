//! `pbx-portal check`: the doctor. One line per check; any failure makes it exit non-zero.
//! A `warn` line is something an admin should know about that does not stop the portal
//! from working (clear text to a database on another host): it leaves the exit code 0.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::asterisk::ami;
use crate::config::{Config, ReloadMode, Tls, Verify};
use crate::store::{self, SessionTls, Store};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Works, but an admin should look: does not change the exit code.
    Warn,
    Fail,
}

impl Mark {
    /// As printed at the start of the line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
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
    vec![
        line("database", db),
        tls,
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
}
