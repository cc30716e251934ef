//! `pbx-portal check`: the doctor. One line per check; any failure makes it exit non-zero.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::asterisk::ami;
use crate::config::{Config, ReloadMode};
use crate::store::{self, Store};

/// One line of the report.
pub struct Line {
    pub ok: bool,
    pub name: &'static str,
    pub detail: String,
}

fn line(name: &'static str, r: Result<String, String>) -> Line {
    match r {
        Ok(detail) => Line {
            ok: true,
            name,
            detail,
        },
        Err(detail) => Line {
            ok: false,
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

/// Runs every check.
pub async fn run(cfg: &Config) -> Vec<Line> {
    let a = &cfg.asterisk;
    let db = match Store::connect(cfg.database.0.clone()).await {
        Ok(store) => tokio::time::timeout(Duration::from_secs(10), database(&store))
            .await
            .unwrap_or_else(|_| Err("timed out".into())),
        Err(e) => Err(e.to_string()),
    };
    vec![
        line("database", db),
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
}
