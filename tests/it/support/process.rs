//! The real `pbx-portal` binary as a child process, for what needs a process: signals,
//! kill -9, two portals on one database, what it prints.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::app::{TestDb, TOKEN};

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub struct Portal {
    pub child: Child,
    pub addr: SocketAddr,
}

/// The environment of a test portal with files under `etc`.
pub fn env(db_url: &str, etc: &Path, addr: SocketAddr, agi: SocketAddr) -> Vec<(String, String)> {
    let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    vec![
        s("DATABASE_URL", db_url),
        s("PORTAL_API_TOKEN", TOKEN),
        s("PORTAL_LISTEN", &addr.to_string()),
        s("PORTAL_AGI_LISTEN", &agi.to_string()),
        s("PORTAL_RELOAD", "none"),
        s(
            "PORTAL_PJSIP_DIR",
            etc.join("pjsip.d/synergycall").to_str().unwrap(),
        ),
        s(
            "PORTAL_DIALPLAN_DIR",
            etc.join("extensions.d/synergycall").to_str().unwrap(),
        ),
        s("PORTAL_ASTERISK_CONFIG_DIR", etc.to_str().unwrap()),
        s("RUST_LOG", "debug"),
    ]
}

/// A command for the binary with a clean environment (no `.env` from the repo is read:
/// the working directory is `etc`).
pub fn command(etc: &Path, vars: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pbx-portal"));
    cmd.env_clear()
        .current_dir(etc)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    cmd
}

/// The PJSIP and dialplan include directories under `etc`.
pub fn include_dirs(etc: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        etc.join("pjsip.d/synergycall"),
        etc.join("extensions.d/synergycall"),
    )
}

/// Creates both include directories under `etc`.
pub fn make_etc(etc: &Path) {
    let (pjsip, dialplan) = include_dirs(etc);
    std::fs::create_dir_all(pjsip).unwrap();
    std::fs::create_dir_all(dialplan).unwrap();
}

/// A fresh database and folder (include directories made) and a portal's variables for them.
pub struct Scratch {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
}

impl Scratch {
    pub async fn new() -> Self {
        let db = TestDb::create().await;
        let dir = tempfile::tempdir().unwrap();
        make_etc(dir.path());
        let vars = env(&db.url, dir.path(), free_addr(), free_addr());
        Self { db, dir, vars }
    }

    pub fn etc(&self) -> &Path {
        self.dir.path()
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
    }

    /// The binary with `args`, run to the end without blocking the runtime (a stand-in
    /// on this runtime may have to answer it).
    pub async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = command(self.etc(), &self.vars);
        cmd.args(args);
        tokio::process::Command::from(cmd).output().await.unwrap()
    }
}

impl Portal {
    /// Starts `serve` and waits until it listens: on `PORTAL_LISTEN` when `extra` sets
    /// it (a restart on the same address), else on a free port.
    pub async fn spawn(db_url: &str, etc: &Path, extra: &[(&str, &str)]) -> Portal {
        make_etc(etc);
        let addr = extra
            .iter()
            .find(|(k, _)| *k == "PORTAL_LISTEN")
            .map_or_else(free_addr, |(_, v)| v.parse().expect("PORTAL_LISTEN"));
        let mut vars = env(db_url, etc, addr, free_addr());
        for (k, v) in extra {
            vars.retain(|(key, _)| key != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let child = command(etc, &vars)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pbx-portal");
        let portal = Portal { child, addr };
        super::eventually(
            &format!("pbx-portal listens on {addr}"),
            Duration::from_secs(10),
            || async move { tokio::net::TcpStream::connect(addr).await.ok() },
        )
        .await;
        portal
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for exit; returns the exit code (None if killed by a signal) and stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.code(), err)
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
