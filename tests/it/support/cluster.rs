//! Several Asterisk hosts on one database: one [`TestDb`], and per node a `serve`
//! process (the real binary) with its own `PORTAL_NODE`, its own Asterisk stand-in, its
//! own etc/include directories and its own HTTP and FastAGI addresses, which stay the
//! same across restarts (the rendered dialplan names the FastAGI address). A node can
//! reach PostgreSQL through a [`Proxy`] of its own, to cut its link.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;
use pbx_portal::asterisk::render::is_intact;
use serde_json::Value;

use super::app::{Http, TestApp, TestDb};
use super::asterisk::{FakeAsterisk, Options};
use super::process::{free_addr, Portal};
use super::proxy::Proxy;

/// How the nodes of a cluster are set up.
#[derive(Clone, Copy)]
pub struct Setup {
    /// `PORTAL_NODE_TIMEOUT_MS`.
    pub timeout_ms: u64,
    /// The FastAGI probe after each reload (else `PORTAL_HEALTH_CHECK=off`).
    pub probe: bool,
    /// Each node reaches PostgreSQL through its own [`Proxy`].
    pub proxied: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            timeout_ms: 5000,
            probe: false,
            proxied: false,
        }
    }
}

pub struct Node {
    pub name: String,
    pub ast: FakeAsterisk,
    pub proxy: Option<Proxy>,
    /// The HTTP address (the same across restarts).
    pub listen: SocketAddr,
    /// The FastAGI address (the same across restarts).
    pub agi: SocketAddr,
    /// A client of the running process (a fresh one after each start).
    pub http: Http,
    dir: tempfile::TempDir,
    db_url: String,
    vars: Vec<(String, String)>,
    portal: Option<Portal>,
    /// What the running process printed (stdout and stderr, drained so it never blocks).
    log: Arc<Mutex<String>>,
}

/// Reads a child's pipe to the end into `log` on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>, log: &Arc<Mutex<String>>) {
    let Some(mut pipe) = pipe else { return };
    let log = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                return;
            }
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

pub const PJSIP_FILE: &str = "pjsip.d/synergycall/generated_endpoints.conf";
pub const DIALPLAN_FILE: &str = "extensions.d/synergycall/generated_routing.conf";

impl Node {
    pub fn etc(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts `serve` (again) and waits until it listens.
    pub async fn start(&mut self) {
        assert!(self.portal.is_none(), "node {} already runs", self.name);
        let mut portal =
            Portal::spawn(&self.db_url, self.dir.path(), &super::pairs(&self.vars)).await;
        assert_eq!(portal.addr, self.listen);
        self.log.lock().unwrap().clear();
        drain(portal.child.stdout.take(), &self.log);
        drain(portal.child.stderr.take(), &self.log);
        self.http = TestApp::client_for(self.listen);
        self.portal = Some(portal);
    }

    /// Sets a variable for its next start.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
    }

    /// Whether its `serve` runs.
    pub fn running(&self) -> bool {
        self.portal.is_some()
    }

    /// The number of actions its stand-in has received so far.
    pub fn actions(&self) -> usize {
        self.ast.actions().len()
    }

    /// Waits until its stand-in received more than `before` actions: this node's apply
    /// has written its files and contacted Asterisk (the reload link logs in per apply;
    /// the event link is quiet between its snapshots).
    pub async fn contacted(&self, before: usize) {
        let what = format!("node {} contacts its Asterisk", self.name);
        super::wait_until(&what, Duration::from_secs(10), || self.actions() > before).await
    }

    /// The process id of the running `serve`.
    pub fn pid(&self) -> u32 {
        self.portal.as_ref().expect("running").child.id()
    }

    /// What the process printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (without blocking the runtime the stand-ins run on) until the process exited.
    async fn reap(&mut self) -> std::process::ExitStatus {
        let mut portal = self.portal.take().expect("running");
        let what = format!("node {} exits", self.name);
        super::eventually(&what, Duration::from_secs(15), || {
            std::future::ready(portal.child.try_wait().unwrap())
        })
        .await
    }

    /// kill -9.
    pub async fn kill9(&mut self) {
        self.portal.as_ref().expect("running").signal("KILL");
        let status = self.reap().await;
        assert_eq!(
            status.code(),
            None,
            "node {} killed by the signal",
            self.name
        );
    }

    /// SIGTERM: a graceful stop, exit code 0.
    pub async fn term(&mut self) {
        self.portal.as_ref().expect("running").signal("TERM");
        let status = self.reap().await;
        assert_eq!(
            status.code(),
            Some(0),
            "node {} stops gracefully: {}",
            self.name,
            self.log()
        );
    }

    /// Both generated files, as bytes (empty when absent).
    pub fn files(&self) -> (Vec<u8>, Vec<u8>) {
        (
            std::fs::read(self.etc().join(PJSIP_FILE)).unwrap_or_default(),
            std::fs::read(self.etc().join(DIALPLAN_FILE)).unwrap_or_default(),
        )
    }

    /// Whether both generated files hold extension `ext`.
    pub fn files_hold(&self, ext: u32) -> bool {
        let (pjsip, dialplan) = self.files();
        let (pjsip, dialplan) = (
            String::from_utf8(pjsip).unwrap(),
            String::from_utf8(dialplan).unwrap(),
        );
        pjsip.contains(&format!("[{ext}]")) && dialplan.contains(&format!("exten => {ext},"))
    }

    /// Both files are whole (written by an apply, not cut short) and no temporary file
    /// is left beside them.
    pub fn assert_files_whole(&self) {
        for f in [PJSIP_FILE, DIALPLAN_FILE] {
            let text = std::fs::read_to_string(self.etc().join(f)).unwrap();
            assert!(is_intact(&text), "node {}: {f} is a whole file", self.name);
        }
        for d in ["pjsip.d/synergycall", "extensions.d/synergycall"] {
            let left: Vec<_> = std::fs::read_dir(self.etc().join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                left.len(),
                1,
                "node {}: only the file in {d}: {left:?}",
                self.name
            );
        }
    }

    /// The actions the stand-in received that ask Asterisk to reload something.
    pub fn reload_actions(&self) -> usize {
        self.ast
            .actions()
            .iter()
            .filter(|a| a.contains("reload"))
            .count()
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Where PostgreSQL itself listens.
    pub pg: SocketAddr,
    // Dropped last: the processes (in `nodes`) stop before the database goes.
    #[allow(dead_code)]
    db: TestDb,
}

/// `url` with its host and port replaced by `addr`.
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    match userinfo {
        Some(u) => format!("{scheme}://{u}@{addr}/{path}"),
        None => format!("{scheme}://{addr}/{path}"),
    }
}

/// The address of the server in a PostgreSQL URL.
async fn server_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&hostport).await.unwrap().collect();
    addrs
        .into_iter()
        .find(|a| a.is_ipv4())
        .expect("an IPv4 address for PostgreSQL")
}

impl Cluster {
    /// One database, and a started node for each name.
    pub async fn start(names: &[&str], setup: Setup) -> Cluster {
        let db = TestDb::create().await;
        let pg = server_of(&db.url).await;
        let mut nodes = Vec::new();
        for name in names {
            let dir = tempfile::tempdir().unwrap();
            let ast = super::standin(dir.path(), Options::default()).await;
            let proxy = if setup.proxied {
                Some(Proxy::start(pg).await)
            } else {
                None
            };
            let db_url = match &proxy {
                Some(p) => url_via(&db.url, p.addr),
                None => db.url.clone(),
            };
            let (listen, agi) = (free_addr(), free_addr());
            let mut vars = super::ami_vars(&ast);
            let s = |k: &str, v: String| (k.to_owned(), v);
            vars.extend([
                s("PORTAL_NODE", name.to_string()),
                s("PORTAL_NODE_TIMEOUT_MS", setup.timeout_ms.to_string()),
                s("PORTAL_LISTEN", listen.to_string()),
                s("PORTAL_AGI_LISTEN", agi.to_string()),
                s("PORTAL_HEALTH_TIMEOUT_MS", "3000".into()),
                s("RUST_LOG", "info,pbx_portal=debug".into()),
            ]);
            if !setup.probe {
                vars.push(s("PORTAL_HEALTH_CHECK", "off".into()));
            }
            nodes.push(Node {
                name: name.to_string(),
                ast,
                proxy,
                listen,
                agi,
                http: TestApp::client_for(listen),
                dir,
                db_url,
                vars,
                portal: None,
                log: Arc::new(Mutex::new(String::new())),
            });
        }
        // All at once, as hosts booting together (the migrations take a lock).
        let starts: Vec<_> = nodes
            .into_iter()
            .map(|mut n| {
                tokio::spawn(async move {
                    n.start().await;
                    n
                })
            })
            .collect();
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(s.await.expect("a node starts"));
        }
        let cluster = Cluster { nodes, pg, db };
        cluster.until_all_alive().await;
        cluster
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Waits until the first node's `GET /nodes` lists every node alive, and each node's
    /// AMI event link is up (its stand-in has had the link's login and snapshot).
    pub async fn until_all_alive(&self) {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let http = &self.nodes[0].http;
        super::wait_until_async("every node is alive", Duration::from_secs(15), || {
            let names = names.clone();
            async move {
                let r = http.get("/nodes").await;
                if r.status != StatusCode::OK {
                    return false;
                }
                let Some(list) = r.body["nodes"].as_array() else {
                    return false;
                };
                names.iter().all(|n| {
                    list.iter()
                        .any(|e| e["name"] == n.as_str() && e["alive"] == true)
                })
            }
        })
        .await;
        for n in &self.nodes {
            let what = format!("node {}'s event link took its snapshot", n.name);
            super::wait_until(&what, Duration::from_secs(10), || {
                n.ast
                    .actions()
                    .iter()
                    .any(|a| a.contains("PJSIPShowContacts"))
            })
            .await;
        }
    }

    /// Every node's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("===== node {} =====\n{}", n.name, n.log()))
            .collect()
    }
}

/// `GET /nodes` on `http`: the list, in its order.
pub async fn nodes(http: &Http) -> Vec<Value> {
    let r = http.get("/nodes").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["nodes"].as_array().expect("nodes").clone()
}

/// The entry of node `name` in a `GET /nodes` list.
pub fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {list:?}"))
}

/// `GET /applies?node=<node>&limit=100` on `http`, newest first.
pub async fn applies(http: &Http, node: &str) -> Vec<Value> {
    let r = http.get(&format!("/applies?node={node}&limit=100")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["applies"].as_array().expect("applies").clone()
}

/// The outcome of node `name` in an apply record's `nodes`.
pub fn outcome<'a>(rec: &'a Value, name: &str) -> &'a Value {
    rec["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {rec}"))
        .iter()
        .find(|o| o["node"] == name)
        .unwrap_or_else(|| panic!("no outcome of {name} in {rec}"))
}

/// The node names of a record's `nodes`, in order, with their statuses.
pub fn statuses(rec: &Value) -> Vec<(String, String)> {
    rec["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {rec}"))
        .iter()
        .map(|o| {
            (
                o["node"].as_str().unwrap_or_default().to_owned(),
                o["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A socket of a process: its local and remote address, and whether it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub listening: bool,
}

/// The TCP sockets process `pid` holds: the inodes of its file descriptors, looked up in
/// /proc/<pid>/net/tcp and tcp6 (which list every socket of its network namespace).
pub fn tcp_sockets(pid: u32) -> Vec<Socket> {
    let mut inodes = std::collections::HashSet::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let path = PathBuf::from(format!("/proc/{pid}/net/{table}"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.contains(f[9]) {
                continue;
            }
            out.push(Socket {
                local: proc_addr(f[1]),
                remote: proc_addr(f[2]),
                // st 0A = TCP_LISTEN
                listening: f[3] == "0A",
            });
        }
    }
    out
}

/// An address of /proc/net/tcp{,6}: hex words of the address in host (little-endian)
/// order, a colon, the hex port.
fn proc_addr(s: &str) -> SocketAddr {
    let (ip, port) = s.split_once(':').unwrap();
    let port = u16::from_str_radix(port, 16).unwrap();
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).unwrap())
        .collect();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let ip: std::net::IpAddr = if bytes.len() == 4 {
        std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()
    } else {
        let b: [u8; 16] = bytes.try_into().unwrap();
        let v6 = std::net::Ipv6Addr::from(b);
        v6.to_ipv4_mapped().map_or(v6.into(), Into::into)
    };
    SocketAddr::new(ip, port)
}

#[test]
fn proc_net_tcp_addresses_parse() {
    assert_eq!(
        proc_addr("0100007F:1538"),
        "127.0.0.1:5432".parse().unwrap()
    );
    assert_eq!(
        proc_addr("0000000000000000FFFF00000100007F:0050"),
        "127.0.0.1:80".parse().unwrap()
    );
    assert_eq!(
        proc_addr("00000000000000000000000001000000:0016"),
        "[::1]:22".parse().unwrap()
    );
}

#[test]
fn urls_go_through_another_address() {
    let to: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    assert_eq!(
        url_via("postgres://u:p@127.0.0.1:5432/db?sslmode=disable", to),
        "postgres://u:p@127.0.0.1:6000/db?sslmode=disable"
    );
    assert_eq!(
        url_via("postgres://h/db", to),
        "postgres://127.0.0.1:6000/db"
    );
}
