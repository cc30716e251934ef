//! Spawns the real service on port 0 against a fresh PostgreSQL database, and talks to it
//! over HTTP. The database is dropped when the [`TestApp`] goes away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use pbx_portal::app::{self, Running};
use pbx_portal::config::Config;
use serde_json::Value;
use tokio_postgres::NoTls;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The server the tests create their databases on: `TEST_DATABASE_URL`, else loopback.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    let (base, _) = admin
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL must end in /<database>");
    format!("{base}/{db}")
}

/// A database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Migrates to `last` and no further, recording each migration as `pbx-portal migrate`
    /// does: a database as an earlier version of the portal left it.
    pub async fn migrate_to(&self, last: i32) {
        let c = self.client().await;
        c.batch_execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                                             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
        for (version, name, sql) in pbx_portal::store::MIGRATIONS {
            if *version > last {
                break;
            }
            c.batch_execute(sql).await.unwrap();
            c.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .unwrap();
        }
    }

    pub async fn create() -> Self {
        let name = format!("pbx_portal_test_{}", rand_suffix());
        let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        Self {
            url: url_for(&name),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls).await.ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct TestApp {
    pub http: Http,
    pub agi_addr: SocketAddr,
    pub pjsip_dir: PathBuf,
    pub dialplan_dir: PathBuf,
    pub etc_dir: PathBuf,
    running: Option<Running>,
    // Dropped last: the service must stop before its database goes.
    dirs: Option<tempfile::TempDir>,
    pub db: Option<TestDb>,
}

/// A response: status, headers and the JSON body (`Null` when empty).
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
}

/// The code of an error body (`{"error": {"code": …}}`), `<none>` when it has none: the
/// one way tests read it, from a response or from an outcome inside one.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

impl Resp {
    /// The status with the error's code (`<none>` when there is none).
    pub fn error(&self) -> (StatusCode, &str) {
        (self.status, error_code(&self.body))
    }

    /// The status with the error's code and field (`<none>` for what is missing): what a
    /// refusal of a field is asserted by.
    pub fn refusal(&self) -> (StatusCode, &str, &str) {
        (
            self.status,
            error_code(&self.body),
            self.body["error"]["field"].as_str().unwrap_or("<none>"),
        )
    }
}

/// An HTTP client for one portal.
pub struct Http {
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
        headers: &[(&str, &str)],
        auth: bool,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        if auth {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some((ct, bytes)) => {
                req = req.header("content-type", ct);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let resp = self
            .client
            .request(req.body(body).unwrap())
            .await
            .expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[], true).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[], true).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        self.send(
            Method::POST,
            path,
            Some(("application/json", bytes)),
            headers,
            true,
        )
        .await
    }

    /// `PATCH /users/{id}` with a JSON body.
    pub async fn patch_user(&self, id: impl std::fmt::Display, body: Value) -> Resp {
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        self.send(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(("application/json", bytes)),
            &[],
            true,
        )
        .await
    }

    /// Creates a user and returns the 201 body.
    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let r = self
            .post("/users", serde_json::json!({"name": name, "email": email}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

/// A request with `token` as its bearer (not the bootstrap token) and a JSON body if any.
pub async fn call(
    http: &Http,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let body = body.map(|b| {
        (
            "application/json",
            Bytes::from(serde_json::to_vec(&b).unwrap()),
        )
    });
    http.send(method, path, body, &headers, false).await
}

/// `POST /tenants`: tenant `slug` (named as its slug) with the numbers 100–199.
pub async fn create_tenant(http: &Http, slug: &str) {
    let r = http
        .post(
            "/tenants",
            serde_json::json!({"slug": slug, "name": slug, "extension_min": 100, "extension_max": 199}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// `POST /tokens`: a token named `name` with `scopes`, bound to `tenant` when given.
pub async fn create_token(
    http: &Http,
    name: &str,
    scopes: &[&str],
    tenant: Option<&str>,
) -> String {
    let mut body = serde_json::json!({"name": name, "scopes": scopes});
    if let Some(t) = tenant {
        body["tenant"] = serde_json::json!(t);
    }
    let r = http.post("/tokens", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["tenant"], serde_json::json!(tenant));
    r.body["token"].as_str().unwrap().to_owned()
}

impl std::ops::Deref for TestApp {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl TestApp {
    /// The name of the sentinel aor closing the generated endpoints file on disk.
    pub fn sentinel(&self) -> String {
        let text = std::fs::read_to_string(self.pjsip_dir.join("generated_endpoints.conf"))
            .expect("the endpoints file");
        let at = text.rfind("[portal_proof_").expect("a sentinel section");
        text[at + 1..]
            .split(']')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn client_for(addr: SocketAddr) -> Http {
        Http {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Files only, no reload (PORTAL_RELOAD=none).
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the service with these variables on top of the defaults.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        let db = TestDb::create().await;
        let dirs = tempfile::tempdir().unwrap();
        Self::start_on(db, dirs, vars).await
    }

    /// Starts the service on an existing database and folder.
    pub async fn start_on(db: TestDb, dirs: tempfile::TempDir, vars: &[(&str, &str)]) -> Self {
        let etc_dir = dirs.path().join("etc");
        let pjsip_dir = etc_dir.join("pjsip.d/synergycall");
        let dialplan_dir = etc_dir.join("extensions.d/synergycall");
        std::fs::create_dir_all(&pjsip_dir).unwrap();
        std::fs::create_dir_all(&dialplan_dir).unwrap();
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", db.url.as_str()),
            ("PORTAL_API_TOKEN", TOKEN),
            ("PORTAL_LISTEN", "127.0.0.1:0"),
            ("PORTAL_AGI_LISTEN", "127.0.0.1:0"),
            ("PORTAL_RELOAD", "none"),
            ("PORTAL_PJSIP_DIR", pjsip_dir.to_str().unwrap()),
            ("PORTAL_DIALPLAN_DIR", dialplan_dir.to_str().unwrap()),
            ("PORTAL_ASTERISK_CONFIG_DIR", etc_dir.to_str().unwrap()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in vars {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_vars(&env).expect("test configuration");
        let running = app::start(config).await.expect("service starts");
        Self {
            http: Self::client_for(running.http_addr),
            agi_addr: running.agi_addr,
            pjsip_dir,
            dialplan_dir,
            etc_dir,
            running: Some(running),
            dirs: Some(dirs),
            db: Some(db),
        }
    }

    /// Stops the service gracefully; returns the folder and the database for a restart.
    pub async fn stop(mut self) -> (TestDb, tempfile::TempDir) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        (self.db.take().unwrap(), self.dirs.take().unwrap())
    }

    /// Leaves an apply `running` as a crash would, then starts the service again on the
    /// same database and folder.
    pub async fn restart_after_a_crashed_apply(self) -> Self {
        self.db()
            .client()
            .await
            .execute(
                "INSERT INTO apply_audit_log (status) VALUES ('running')",
                &[],
            )
            .await
            .unwrap();
        let (db, dirs) = self.stop().await;
        Self::start_on(db, dirs, &[]).await
    }

    /// The running service's database pool.
    pub fn store(&self) -> &pbx_portal::store::Store {
        &self.running.as_ref().expect("running").app.store
    }

    pub fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }

    /// Every user as the database has it, by extension.
    pub async fn db_users(&self) -> Vec<DbUser> {
        let c = self.db().client().await;
        c.query("SELECT u.email, u.name, e.number, e.secret FROM users u JOIN extensions e ON e.user_id = u.id ORDER BY e.number", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| DbUser {
                email: r.get(0),
                name: r.get(1),
                extension: r.get(2),
                secret: r.get(3),
            })
            .collect()
    }
}

/// A user as the database has it, read around the API: what a refused request must
/// leave as it was, and the secret the API shows only once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUser {
    pub email: String,
    pub name: String,
    pub extension: i32,
    pub secret: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            // Not awaited: the runtime is going away with the test; the database drop
            // (FORCE) ends any connection that is left.
            drop(r);
        }
    }
}
