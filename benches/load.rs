//! Load benchmark: `cargo bench --bench load` (`cargo bench --bench load -- auth` runs only
//! the named-token measure).
//!
//! Starts the release binary against a fresh database and prints, in one run:
//! create throughput at 1 and 32 clients (p50/p99), PostgreSQL's own rate for the same
//! allocation transaction (the `portal_create_user` call the service makes) and for a bare
//! two-row insert, GET /users latency with 1000 users, apply of 1000 users with files only,
//! rendering of 1000 users, and the service's resident memory. Numbers are printed, never
//! asserted: they depend on the machine.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use pbx_portal::asterisk::files::replace;
use pbx_portal::asterisk::probe::{Expectation, ProbeServer};
use pbx_portal::asterisk::{ami, render};
use pbx_portal::config::AmiSettings;
use pbx_portal::domain::{Devices, Extension, SipSecret, Subscriber};
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

#[allow(unused, clippy::all)]
#[path = "../tests/it/support/asterisk/mod.rs"]
mod asterisk;

const TOKEN: &str = "bench-token-0123456789abcdef";
type Http = Client<HttpConnector, Full<Bytes>>;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    c
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Stats {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort_unstable();
    Stats {
        rate: lat.len() as f64 / wall.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn call(
    http: &Http,
    base: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> (u16, Bytes) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {TOKEN}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = http.request(req).await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// GET `path` with `token` as the bearer; the status.
async fn get_as(http: &Http, base: &str, path: &str, token: &str) -> u16 {
    let req = Request::builder()
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = http.request(req).await.expect("request");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

/// What a named token costs: `GET /users/{id}` with the bootstrap token and with a named
/// one (1,000 named tokens stored), interleaved in one run so that both see the same
/// machine. The named token's lookup is one indexed query per request (no cache).
async fn auth_overhead(http: &Http, base: &str, db: &tokio_postgres::Client) {
    db.batch_execute(
        "INSERT INTO api_tokens (name, hash, scopes, created_by)
         SELECT 'bench-' || i, sha256(('bench-token-' || i)::bytea), '{read}', 'cli'
           FROM generate_series(1, 1000) i",
    )
    .await
    .unwrap();
    let (status, body) = call(
        http,
        base,
        Method::POST,
        "/tokens",
        Some(r#"{"name":"bench-reader","scopes":["read"]}"#.into()),
    )
    .await;
    assert_eq!(status, 201);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let named = v["token"].as_str().unwrap().to_owned();
    let (status, body) = call(
        http,
        base,
        Method::POST,
        "/users",
        Some(r#"{"name":"Auth Bench","email":"auth-bench@bench.example"}"#.into()),
    )
    .await;
    assert_eq!(status, 201);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let path = format!("/users/{}", v["id"]);
    let (mut boot, mut name) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    for i in 0..4000 {
        for (token, lat) in [(TOKEN, &mut boot), (named.as_str(), &mut name)] {
            let t = Instant::now();
            assert_eq!(get_as(http, base, &path, token).await, 200);
            if i >= 500 {
                lat.push(t.elapsed());
            }
        }
    }
    let wall = t0.elapsed();
    let (boot, name) = (stats(boot, wall), stats(name, wall));
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "GET /users/{id}, bootstrap token",
        "",
        ms(boot.p50),
        ms(boot.p99)
    );
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "GET /users/{id}, named token (1,000 stored)",
        "",
        ms(name.p50),
        ms(name.p99)
    );
    let added = name.p50.as_secs_f64() * 1000.0 - boot.p50.as_secs_f64() * 1000.0;
    println!(
        "{:<52} {:>12} {:>7.3} ms (budget 0.2 ms)",
        "  named token adds to the p50", "", added
    );
}

/// Joins the clients and summarises their latencies.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>, start: Instant) -> Stats {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    stats(lat, start.elapsed())
}

/// `total` creates spread over `clients` concurrent clients.
async fn creates(http: &Http, base: &str, clients: usize, total: usize, tag: &str) -> Stats {
    let start = Instant::now();
    let per = total / clients;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, tag) = (http.clone(), base.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let body =
                    format!(r#"{{"name":"Bench {c} {i}","email":"{tag}-{c}-{i}@bench.example"}}"#);
                let t = Instant::now();
                let (status, _) = call(&http, &base, Method::POST, "/users", Some(body)).await;
                assert_eq!(status, 201);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    gather(tasks, start).await
}

/// The same allocation transaction straight over tokio-postgres, one connection per client.
async fn raw_creates(url: &str, clients: usize, total: usize, tag: &str, bare: bool) -> Stats {
    let per = total / clients;
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(pg(url).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in conns.into_iter().enumerate() {
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let create = client.prepare("SELECT * FROM portal_create_user($1, $2, NULL, 10000, 999999, $3, 1::smallint)").await.unwrap();
            let bare_stmt = client
                .prepare("WITH u AS (INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id)
                          INSERT INTO extensions (number, user_id, secret) SELECT $4, id, $3 FROM u")
                .await
                .unwrap();
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let name = format!("Raw {c} {i}");
                let email = format!("{tag}-{c}-{i}@raw.example");
                let secret = SipSecret::generate();
                let t = Instant::now();
                if bare {
                    let n = (2_000_000 + c * 100_000 + i) as i32;
                    client.execute(&bare_stmt, &[&name, &email, &secret.expose(), &n]).await.unwrap();
                } else {
                    client.query(&create, &[&name, &email, &secret.expose()]).await.unwrap();
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    gather(tasks, start).await
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A child process that is killed however the benchmark ends (a failed assertion too).
struct Service(std::process::Child);

impl Service {
    /// `pbx-portal serve` on a free loopback port with 1000-user-friendly defaults plus
    /// `vars`; returns once it accepts connections, with its base URL.
    async fn start(
        db_url: &str,
        pjsip: &std::path::Path,
        dialplan: &std::path::Path,
        vars: &[(&str, String)],
    ) -> (Self, String) {
        let port = free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pbx-portal"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("PORTAL_API_TOKEN", TOKEN)
            .env("PORTAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTAL_AGI_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("PORTAL_PJSIP_DIR", pjsip)
            .env("PORTAL_DIALPLAN_DIR", dialplan)
            .env("PORTAL_EXTENSION_MIN", "10000")
            .env("PORTAL_EXTENSION_MAX", "999999")
            // As deployed: one info line per request, written to a file (the journal's
            // cost is of the same order: one write per line).
            .env("RUST_LOG", "info")
            .stderr(
                std::fs::File::create(pjsip.with_file_name(format!("service-{port}.log")))
                    .expect("service log file"),
            );
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let service = Service(cmd.spawn().expect("start pbx-portal"));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (service, format!("http://127.0.0.1:{port}"))
    }
}

/// `n` applies, each after changing the secret of `number` so that it has work to do;
/// `check` looks at each answer.
async fn applies(
    http: &Http,
    base: &str,
    db: &tokio_postgres::Client,
    n: usize,
    number: i32,
    check: impl Fn(&serde_json::Value),
) -> Stats {
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for i in 0..n {
        let secret = format!("benchsecret{number}x{i:06}xxxxxx");
        db.execute(
            "UPDATE extensions SET secret = $1 WHERE number = $2",
            &[&secret, &number],
        )
        .await
        .unwrap();
        let t = Instant::now();
        let (status, body) = call(http, base, Method::POST, "/apply", None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        lat.push(t.elapsed());
        check(&serde_json::from_slice(&body).unwrap());
    }
    stats(lat, t0.elapsed())
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let admin = admin_url();
    let db = format!("pbx_portal_bench_{}", std::process::id());
    pg(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    let (pjsip, dialplan) = (dir.path().join("pjsip"), dir.path().join("dialplan"));
    std::fs::create_dir_all(&pjsip).unwrap();
    std::fs::create_dir_all(&dialplan).unwrap();
    let (child, base) =
        Service::start(&url, &pjsip, &dialplan, &[("PORTAL_RELOAD", "none".into())]).await;
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();
    // `serve` listens only after migrating: it is ready; let it settle before RSS.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(child.0.id());

    let admin_db = pg(&url).await;
    let reset = || async {
        admin_db
            .batch_execute("TRUNCATE users CASCADE")
            .await
            .unwrap()
    };

    println!(
        "pbx-portal load benchmark ({} cores; client, service and PostgreSQL share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "measure", "rate", "p50", "p99"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "{name:<52} {:>10.0}/s {:>10} {:>10}",
            s.rate,
            ms(s.p50),
            ms(s.p99)
        )
    };

    if std::env::args().any(|a| a == "auth") {
        auth_overhead(&http, &base, &admin_db).await;
        drop(child);
        drop(admin_db);
        let _ = pg(&admin)
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await;
        return;
    }
    creates(&http, &base, 8, 400, "warm").await;
    reset().await;
    auth_overhead(&http, &base, &admin_db).await;
    reset().await;
    let c1 = creates(&http, &base, 1, 1000, "c1").await;
    row("POST /users, 1 client", &c1);
    reset().await;
    let c32 = creates(&http, &base, 32, 4000, "c32").await;
    row("POST /users, 32 clients", &c32);
    reset().await;
    let raw1 = raw_creates(&url, 1, 1000, "r1", false).await;
    row("PostgreSQL portal_create_user(), 1 client", &raw1);
    reset().await;
    let raw32 = raw_creates(&url, 32, 4000, "r32", false).await;
    row("PostgreSQL portal_create_user(), 32 clients", &raw32);
    reset().await;
    let bare32 = raw_creates(&url, 32, 4000, "b32", true).await;
    row("PostgreSQL bare 2-row insert (no allocation), 32", &bare32);
    reset().await;
    println!(
        "{:<52} {:>11.2}x",
        "  service / raw allocation rate at 32 clients",
        c32.rate / raw32.rate
    );

    creates(&http, &base, 10, 1000, "list").await;
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        let (status, body) = call(&http, &base, Method::GET, "/users", None).await;
        assert!(status == 200 && body.len() > 100_000);
        lat.push(t.elapsed());
    }
    row(
        "GET /users (1000 users, ~140 KB)",
        &stats(lat, t0.elapsed()),
    );
    // The same page straight from PostgreSQL: what the service adds is the difference.
    let page = "SELECT u.id, u.name, u.email, e.number, u.created_at FROM users u
                  JOIN extensions e ON e.user_id = u.id ORDER BY e.number ASC, e.number ASC
                 LIMIT $1 OFFSET $2";
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        let rows = admin_db
            .query_typed(page, &[(&1001i64, Type::INT8), (&0i64, Type::INT8)])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);
        lat.push(t.elapsed());
    }
    row(
        "PostgreSQL: the same page, tokio-postgres",
        &stats(lat, t0.elapsed()),
    );

    let files_only = applies(&http, &base, &admin_db, 40, 10000, |_| {}).await;
    row("POST /apply, 1000 users, PORTAL_RELOAD=none", &files_only);
    let files_only_p50 = files_only.p50;

    let subs: Vec<Subscriber> = (0..1000)
        .map(|i| Subscriber {
            extension: Extension::from_stored(1000 + i),
            name: format!("User Number {i}"),
            secret: SipSecret::generate(),
            devices: Devices::ONE,
        })
        .collect();
    let settings = render::Settings {
        transport: "transport-udp",
        qualify_frequency: 60,
        agi_addr: "127.0.0.1:4573".parse().unwrap(),
    };
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        std::hint::black_box(render::render(&subs, &settings).unwrap());
        lat.push(t.elapsed());
    }
    row("render 1000 users (in process)", &stats(lat, t0.elapsed()));

    // Against the Asterisk stand-in (AMI reload, FastAGI probe of every extension, with
    // the per-command cost measured on a real Asterisk 22.7): the same 1000 users.
    let etc = dir.path().join("etc");
    let (ast_pjsip, ast_dialplan) = (
        etc.join("pjsip.d/synergycall"),
        etc.join("extensions.d/synergycall"),
    );
    std::fs::create_dir_all(&ast_pjsip).unwrap();
    std::fs::create_dir_all(&ast_dialplan).unwrap();
    let ast = asterisk::FakeAsterisk::start(
        &etc,
        &ast_pjsip,
        &ast_dialplan,
        asterisk::Options::default(),
    )
    .await
    .unwrap();
    for health in ["agi", "off"] {
        let vars = [
            ("PORTAL_RELOAD", "ami".to_owned()),
            ("PORTAL_AMI_ADDR", ast.ami_addr().to_string()),
            ("PORTAL_AMI_USERNAME", "portal".into()),
            ("PORTAL_AMI_SECRET", "portal-secret".into()),
            ("PORTAL_HEALTH_CHECK", health.into()),
        ];
        let (_portal, base) = Service::start(&url, &ast_pjsip, &ast_dialplan, &vars).await;
        let s = applies(&http, &base, &admin_db, 15, 10001, |rec| {
            assert_eq!(rec["endpoints"], 1000);
            if health == "agi" {
                let h = &rec["health"];
                assert_eq!(
                    (h["status"].as_str(), h["checked"].as_i64()),
                    (Some("ok"), Some(1000))
                );
            }
        })
        .await;
        row(
            &format!("POST /apply, 1000 users, AMI stand-in, probe {health}"),
            &s,
        );
    }
    // The probe alone, in process: Originate → FastAGI session → verdict, 1000 extensions.
    let probe_server = ProbeServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (probes, agi_addr) = (probe_server.probes(), probe_server.addr());
    let files = render::render(
        &subs,
        &render::Settings {
            transport: "transport-udp",
            qualify_frequency: 60,
            agi_addr,
        },
    )
    .unwrap();
    replace(
        &ast_pjsip,
        render::ENDPOINTS_FILE,
        Some(files.endpoints.as_bytes()),
    )
    .unwrap();
    replace(
        &ast_dialplan,
        render::ROUTING_FILE,
        Some(files.routing.as_bytes()),
    )
    .unwrap();
    let mut ami = ami::Client::login(&AmiSettings {
        addr: ast.ami_addr(),
        username: "portal".into(),
        secret: "portal-secret".into(),
        timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    for cmd in ["module reload res_pjsip.so", "dialplan reload"] {
        assert!(ami.command(cmd).await.unwrap().is_success());
    }
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..15 {
        let (token, verdict) = probes.register(Expectation {
            present: (1000..2000).map(|e| (e, 1)).collect(),
            absent: Vec::new(),
            marker: files.marker.clone(),
        });
        let channel = format!("Local/probe-{token}@{}", render::PROBE_CONTEXT);
        let t = Instant::now();
        let fields = [
            ("Channel", channel.as_str()),
            ("Application", "Wait"),
            ("Data", "12"),
            ("Async", "true"),
        ];
        assert!(ami.action("Originate", &fields).await.unwrap().is_success());
        let health = verdict.await.unwrap();
        assert!(health.is_ok(), "{:?}", health.missing);
        assert_eq!(health.checked, 1000);
        lat.push(t.elapsed());
    }
    let probe = stats(lat, t0.elapsed());
    row(
        "health probe of 1000 extensions (originate to verdict)",
        &probe,
    );
    println!(
        "{:<52} {:>10} (budget 1.5 x 275 ms = 412 ms)",
        "  files-only apply + 22.7 reload (275 ms) + probe",
        ms(files_only_p50 + Duration::from_millis(275) + probe.p50)
    );

    let rss_loaded = rss_kib(child.0.id());
    println!(
        "{:<52} {:>9} KiB",
        "RSS of pbx-portal, idle after start", rss_idle
    );
    println!(
        "{:<52} {:>9} KiB",
        "RSS of pbx-portal, after the load above", rss_loaded
    );

    drop(child);
    drop(admin_db);
    let _ = pg(&admin)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}
