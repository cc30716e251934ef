//! Load benchmark: `cargo bench --bench load` (`cargo bench --bench load -- auth` runs only
//! the named-token measure).
//!
//! Starts the release binary against a fresh database and prints, in one run:
//! create throughput at 1 and 32 clients (p50/p99) and GET /users latency with 1000 users,
//! each without and with Prometheus scraping `/metrics` every second; PostgreSQL's own rate
//! for the same allocation transaction (the `portal_create_user` call the service makes)
//! and for a bare two-row insert, apply of 1000 users with files only, rendering of 1000
//! users, what counting a request and encoding a scrape cost in process, and the service's
//! resident memory. Numbers are printed, never asserted: they depend on the machine.
//!
//! Every figure above is in clear text (`sslmode=disable`). Next to them, the same creates
//! and list run through a second service whose database connection is TLS, verified as
//! `sslmode=verify-full` over loopback, with their ratio to clear text. That needs TLS on the
//! server and its CA: run `scripts/pg-tls.sh` first (it switches TLS on for the PostgreSQL
//! on 127.0.0.1:5432 with a CA it makes, as `scripts/test.sh` does); the directory is
//! `PBX_PORTAL_TEST_PG_TLS`, by default the script's. Without them, the TLS lines say what
//! was not measured and why, and the rest runs.
//! Then bulk import and export: `POST /users/import` of 1000 rows over HTTP against
//! PostgreSQL inserting the same 1000 rows with one multi-row statement in one transaction
//! (over tokio-postgres, alternated round by round), an import of 10,000 rows into a range
//! of exactly 10,000 numbers (CSV and JSON), and an export of those 10,000 users (JSON and
//! CSV), each in a fresh service process so that its peak RSS (VmHWM) is its own.
//! `LOAD_BENCH=bulk cargo bench --bench load` runs only that part.
//!
//! Last, several Asterisk hosts (issue 10): a database of its own with 1000 users (one
//! import) and two services, nodes `a` and `b` (`PORTAL_NODE`), each with its own Asterisk
//! stand-in (the lab's costs) and its own include directories, `PORTAL_RELOAD=ami`, probe
//! `agi` — the full pipeline, as the "AMI stand-in, probe agi" row above for one service.
//! 12 rounds (after 2 to warm up) alternate, in a turning order, a single-node
//! `POST /apply?nodes=a`, a parallel `?nodes=a,b` and a rolling
//! `?nodes=a,b&strategy=rolling`, all sent to `a`, each after a secret rotation so that it
//! really applies (`applied` on every node, each probed healthy, 1000 checked): their
//! p50/p99 and the ratios parallel/single and rolling/single next to the issue's limits
//! (1.3x, 2.2x), with each node's own duration, its reload and probe (from its /metrics),
//! the CPU the services and stand-ins (and the whole machine) used, and when b was asked,
//! claimed, started and done against a (to see where the time goes).
//! Then the node machinery in process, on node a alone (both services stopped gracefully,
//! files only): `Applier::apply` (the single-node pipeline as before nodes) against
//! `Cluster::apply` with the default choice (what POST /apply runs: choose the nodes, take
//! the coordination lock, the same pipeline), alternated round by round, with the
//! difference of their medians next to the 5 ms limit.
//! Last, apply at the floor: for 1000, 3000 and 10,000 users, the apply of a one-user
//! change against a bare reload of the same files, each stand-in charging the reload
//! costs of a real Asterisk 22.7 (`LOAD_BENCH=floor cargo bench --bench load` alone).
//! `LOAD_BENCH=nodes cargo bench --bench load` runs only the nodes part;
//! `LOAD_BENCH=render cargo bench --bench load` only the render with and without the NAT
//! options and G.722 (in process); `LOAD_BENCH=core cargo bench --bench load` everything
//! but bulk and nodes (the main performance table). `LOAD_BENCH=tenants cargo bench --bench
//! load`: 50 tenants of 200 users (10,000), files only: a tenant-scoped apply of one
//! changed user against the single-tenant apply of 200 users in another database, and
//! `GET /users?tenant=` of one tenant against the same page of a single-tenant database,
//! alternated round by round.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use pbx_portal::asterisk::files::replace;
use pbx_portal::asterisk::probe::{Expectation, Object, ProbeServer};
use pbx_portal::asterisk::{ami, render};
use pbx_portal::config::{AmiSettings, Codecs, EndpointPolicy};
use pbx_portal::domain::{
    Devices, Extension, SipSecret, Subscriber, TenantSlug, TransportId, Transports,
};
use pbx_portal::metrics::{Live, Metrics};
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

#[allow(unused, clippy::all)]
#[path = "../tests/it/support/asterisk/mod.rs"]
mod asterisk;

const TOKEN: &str = "bench-token-0123456789abcdef";
type Http = Client<HttpConnector, Full<Bytes>>;

/// A render policy of one UDP transport, as a bench configures it.
fn bench_policy(nat: bool, codecs: &str) -> EndpointPolicy {
    EndpointPolicy {
        transports: Transports::new(vec![TransportId::udp()]).unwrap(),
        tls: Default::default(),
        nat,
        codecs: Codecs::try_from(codecs.to_owned()).unwrap(),
        qualify_frequency: 60,
    }
}

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

/// Drops the bench's database (whatever is still connected to it).
async fn drop_db(admin: &str, db: &str) {
    let _ = pg(admin)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One line of the table: the measure, its rate, p50 and p99.
fn row(name: &str, s: &Stats) {
    println!(
        "{name:<52} {:>10.0}/s {:>10} {:>10}",
        s.rate,
        ms(s.p50),
        ms(s.p99)
    )
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

/// Latencies of a batch and its wall time.
type Batch = (Vec<Duration>, Duration);

/// The latencies of a measure, the wall time it took and (when measured) the CPU time
/// the service used meanwhile; runs of the same measure add up.
#[derive(Default)]
struct Run {
    lat: Vec<Duration>,
    wall: Duration,
    cpu: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.lat.extend(other.lat);
        self.wall += other.wall;
        self.cpu += other.cpu;
    }

    /// The service's CPU time per request: unlike latency, hardly moved by whatever else
    /// runs on the machine.
    fn cpu_per_request(&self) -> Duration {
        self.cpu / u32::try_from(self.lat.len().max(1)).unwrap_or(u32::MAX)
    }

    fn stats(self) -> Stats {
        stats(self.lat, self.wall)
    }
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

/// Joins the clients and gathers their latencies.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>, start: Instant) -> Run {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    Run {
        lat,
        wall: start.elapsed(),
        cpu: Duration::ZERO,
    }
}

/// `n` sequential GET /users of a 1000-user page.
async fn lists(http: &Http, base: &str, n: usize) -> Run {
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = call(http, base, Method::GET, "/users", None).await;
        assert!(status == 200 && body.len() > 100_000);
        lat.push(t.elapsed());
    }
    Run {
        lat,
        wall: t0.elapsed(),
        cpu: Duration::ZERO,
    }
}

/// Prometheus: `GET /metrics` every second (the first at once) until stopped.
struct Scraper {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Run>,
}

impl Scraper {
    fn start(http: &Http, base: &str) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (http, base) = (http.clone(), base.to_owned());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut run = Run::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return run,
                }
                let t = Instant::now();
                let (status, body) = call(&http, &base, Method::GET, "/metrics", None).await;
                assert!(status == 200 && body.ends_with(b"# EOF\n"), "{status}");
                run.lat.push(t.elapsed());
                run.wall += Duration::from_secs(1);
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> Run {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// What counting requests costs in process: ns per request counted, from `threads`
/// threads at once on the same series (the worst case: every thread on the same atomics).
fn count_requests(m: &Metrics, threads: usize, per_thread: usize) -> f64 {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for i in 0..per_thread {
                    m.http_request(
                        std::hint::black_box("/users/{id}"),
                        "GET",
                        200,
                        Duration::from_micros(700 + (i % 200) as u64),
                    );
                }
            });
        }
    });
    t0.elapsed().as_nanos() as f64 / per_thread as f64
}

/// `creates` as latencies and wall time (the TLS comparison's rounds).
async fn create_batch(http: &Http, base: &str, clients: usize, total: usize, tag: &str) -> Batch {
    let run = creates(http, base, clients, total, tag).await;
    (run.lat, run.wall)
}

/// `total` creates spread over `clients` concurrent clients.
async fn creates(http: &Http, base: &str, clients: usize, total: usize, tag: &str) -> Run {
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

/// Clear text against TLS under the same background load: `rounds` rounds, each running
/// `batch` on both sides (0 = clear, 1 = TLS), the side that goes first alternating; the
/// latencies and wall times of each side add up over the rounds.
/// With `pids` (the clear and the TLS service), also the CPU time each service spent per
/// request: unlike latency, it hardly moves with the machine's other load.
async fn interleaved<F, Fut>(
    rounds: usize,
    pids: Option<[u32; 2]>,
    mut batch: F,
) -> (Stats, Stats, Option<[Duration; 2]>)
where
    F: FnMut(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Batch>,
{
    let mut sides: [Batch; 2] = Default::default();
    let mut cpu = [Duration::ZERO; 2];
    for r in 0..rounds {
        for side in [r % 2, 1 - r % 2] {
            let before = pids.map(|p| cpu_time(p[side]));
            let (lat, wall) = batch(side, r).await;
            if let (Some(p), Some(before)) = (pids, before) {
                cpu[side] += cpu_time(p[side]).saturating_sub(before);
            }
            sides[side].0.extend(lat);
            sides[side].1 += wall;
        }
    }
    let per_request = pids.map(|_| {
        [0, 1].map(|i| cpu[i] / u32::try_from(sides[i].0.len().max(1)).unwrap_or(u32::MAX))
    });
    let [clear, tls] = sides;
    (stats(clear.0, clear.1), stats(tls.0, tls.1), per_request)
}

/// CPU time a process has used so far, all its threads (`/proc/<pid>/task/*/schedstat`,
/// nanoseconds).
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// The same allocation transaction straight over tokio-postgres, one connection per client.
async fn raw_creates(url: &str, clients: usize, total: usize, tag: &str, bare: bool) -> Run {
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

/// `n` reads of the whole user list (1000 users).
async fn list_users(http: &Http, base: &str, n: usize) -> Batch {
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = call(http, base, Method::GET, "/users", None).await;
        assert!(status == 200 && body.len() > 100_000);
        lat.push(t.elapsed());
    }
    (lat, t0.elapsed())
}

/// `n` reads of the page GET /users reads, straight over tokio-postgres.
async fn raw_page(client: &tokio_postgres::Client, n: usize) -> Batch {
    let page = "SELECT u.id, u.name, u.email, e.number, u.created_at FROM users u
                  JOIN extensions e ON e.user_id = u.id ORDER BY e.number ASC, e.number ASC
                 LIMIT $1 OFFSET $2";
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let rows = client
            .query_typed(page, &[(&1001i64, Type::INT8), (&0i64, Type::INT8)])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);
        lat.push(t.elapsed());
    }
    (lat, t0.elapsed())
}

/// The bench database over TLS, verified as verify-full: the server's certificate from
/// scripts/pg-tls.sh names `localhost`, reached at TEST_DATABASE_URL's address. Err says
/// why it cannot be measured.
fn tls_url(db: &str) -> Result<String, String> {
    let dir = std::env::var_os("PBX_PORTAL_TEST_PG_TLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/var/lib/postgresql/pbx-portal-test-tls".into());
    let ca = dir.join("ca.crt");
    if !ca.is_file() {
        return Err(format!(
            "no {} (run scripts/pg-tls.sh first: it switches TLS on for this PostgreSQL)",
            ca.display()
        ));
    }
    let admin: tokio_postgres::Config = admin_url()
        .parse()
        .map_err(|_| "TEST_DATABASE_URL cannot be parsed".to_owned())?;
    let addr = match admin.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => return Err("TEST_DATABASE_URL names no TCP host".into()),
    };
    let mut url = format!(
        "host=localhost hostaddr={addr} port={} user={} dbname={db} sslmode=verify-full sslrootcert='{}'",
        admin.get_ports().first().copied().unwrap_or(5432),
        admin.get_user().unwrap_or("postgres"),
        ca.display()
    );
    if let Some(p) = admin.get_password() {
        let p = String::from_utf8_lossy(p);
        url.push_str(&format!(
            " password='{}'",
            p.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    Ok(url)
}

/// A tokio-postgres client over the portal's own TLS connector.
async fn pg_tls(url: &str) -> Result<tokio_postgres::Client, String> {
    let db = pbx_portal::config::DatabaseUrl::try_from(url.to_owned())?;
    let connector = pbx_portal::store::tls::connector(db.tls()).map_err(|e| e.to_string())?;
    let (c, conn) = db
        .pg()
        .connect(connector)
        .await
        .map_err(|e| pbx_portal::store::describe(&e))?;
    tokio::spawn(conn);
    Ok(c)
}

/// Runs `measure` and records the service's CPU time it took.
async fn on_service(pid: u32, measure: impl std::future::Future<Output = Run>) -> Run {
    let before = cpu_time(pid);
    let mut run = measure.await;
    run.cpu = cpu_time(pid).saturating_sub(before);
    run
}

fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// A `kB` line of /proc/<pid>/status (VmRSS: now; VmHWM: the peak so far).
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A child process that is killed however the benchmark ends (a failed assertion too).
struct Service(std::process::Child);

impl Service {
    /// As [`Service::start`], but a service that exits instead of listening is an error
    /// carrying the last line it logged.
    async fn try_start(
        db_url: &str,
        pjsip: &std::path::Path,
        dialplan: &std::path::Path,
        vars: &[(&str, String)],
    ) -> Result<(Self, String), String> {
        let (mut service, base) = Self::start(db_url, pjsip, dialplan, vars).await;
        match service.0.try_wait() {
            Ok(None) => Ok((service, base)),
            _ => {
                let port = base.rsplit(':').next().unwrap_or_default();
                let log =
                    std::fs::read_to_string(pjsip.with_file_name(format!("service-{port}.log")))
                        .unwrap_or_default();
                Err(format!(
                    "the service over TLS did not start: {}",
                    log.lines().last().unwrap_or("no log")
                ))
            }
        }
    }

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
        let mut service = Service(cmd.spawn().expect("start pbx-portal"));
        for _ in 0..200 {
            if !matches!(service.0.try_wait(), Ok(None)) {
                break;
            }
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

/// An Asterisk stand-in in `dir/<name>/etc` (the lab's costs), with the include
/// directories a service writes into, and the variables that point a service at it.
async fn stand_in_at(
    dir: &std::path::Path,
    name: &str,
) -> (
    asterisk::FakeAsterisk,
    std::path::PathBuf,
    std::path::PathBuf,
    Vec<(&'static str, String)>,
) {
    let etc = dir.join(name).join("etc");
    let (pjsip, dialplan) = (
        etc.join("pjsip.d/synergycall"),
        etc.join("extensions.d/synergycall"),
    );
    std::fs::create_dir_all(&pjsip).unwrap();
    std::fs::create_dir_all(&dialplan).unwrap();
    let ast = asterisk::FakeAsterisk::start(&etc, &pjsip, &dialplan, asterisk::Options::default())
        .await
        .unwrap();
    let vars = vec![
        ("PORTAL_RELOAD", "ami".to_owned()),
        ("PORTAL_AMI_ADDR", ast.ami_addr().to_string()),
        ("PORTAL_AMI_USERNAME", "portal".into()),
        ("PORTAL_AMI_SECRET", "portal-secret".into()),
    ];
    (ast, pjsip, dialplan, vars)
}

/// `n` applies, each after changing the secret of `number` so that it has work to do;
/// `check` looks at each answer.
/// 1000 users as the renderer gets them: extensions 1000–1999, one device, UDP.
fn bench_subscribers() -> Vec<Subscriber> {
    (0..1000)
        .map(|i| Subscriber {
            extension: Extension::from_stored(1000 + i),
            name: format!("User Number {i}"),
            secret: SipSecret::generate(),
            devices: Devices::ONE,
            transport: Some("transport-udp".into()),
            tenant: TenantSlug::default_tenant(),
        })
        .collect()
}

/// Rendering 1000 users before the NAT options (PORTAL_NAT=off, PORTAL_CODECS=ulaw,alaw:
/// what every endpoint was rendered with before) against today's defaults, in process, in
/// alternating rounds, with their ratio next to the 1.1x limit.
/// `LOAD_BENCH=render cargo bench --bench load` runs only this.
fn render_with_and_without_nat() {
    let subs = bench_subscribers();
    let before = bench_policy(false, "ulaw,alaw");
    let now = bench_policy(true, "g722,ulaw,alaw");
    let mut lats = [Vec::new(), Vec::new()];
    let t0 = Instant::now();
    for round in 0..600 {
        let policy = if round % 2 == 0 { &before } else { &now };
        let settings = render::Settings {
            policy,
            agi_addr: "127.0.0.1:4573".parse().unwrap(),
        };
        let t = Instant::now();
        std::hint::black_box(render::render(&subs, &settings).unwrap());
        lats[round % 2].push(t.elapsed());
    }
    let [lat_before, lat_now] = lats;
    let (render_before, render_now) = (
        stats(lat_before, t0.elapsed() / 2),
        stats(lat_now, t0.elapsed() / 2),
    );
    row(
        "render 1000 users, options before NAT (in process)",
        &render_before,
    );
    row(
        "render 1000 users, NAT options + g722 (in process)",
        &render_now,
    );
    println!(
        "render with the new options / before: {:.2}x (limit 1.1x)",
        render_now.p50.as_secs_f64() / render_before.p50.as_secs_f64()
    );
}

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
    if std::env::var("LOAD_BENCH").as_deref() == Ok("render") {
        render_with_and_without_nat();
        return;
    }
    let admin = admin_url();
    let db = format!("pbx_portal_bench_{}", std::process::id());
    pg(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    // Clear text, said explicitly: libpq's default (prefer) would use TLS when offered.
    let url = format!("{}/{db}?sslmode=disable", admin.rsplit_once('/').unwrap().0);
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
    // One part alone (LOAD_BENCH=bulk|floor|nodes, or the `auth` argument).
    let alone = match std::env::var("LOAD_BENCH").as_deref() {
        Ok("bulk") => {
            bulk(&http, &base, &url, &admin_db, &pjsip, &dialplan).await;
            true
        }
        Ok("floor") => {
            floor(&http, &admin, &format!("{db}_floor"), dir.path()).await;
            true
        }
        Ok("nodes") => {
            nodes(&http, &admin, &format!("{db}_nodes"), dir.path()).await;
            true
        }
        Ok("tenants") => {
            tenants(&http, &admin, &format!("{db}_tenants"), dir.path()).await;
            true
        }
        _ if std::env::args().any(|a| a == "auth") => {
            auth_overhead(&http, &base, &admin_db).await;
            true
        }
        _ => false,
    };
    if alone {
        drop(child);
        drop(admin_db);
        drop_db(&admin, &db).await;
        return;
    }

    creates(&http, &base, 8, 400, "warm").await;
    // The service's measures without and with Prometheus scraping /metrics every second,
    // in four passes ordered without, with, with, without (a drift of the machine over
    // the run weighs on both alike); each pass spans several scrapes.
    let mut c1: [Run; 2] = Default::default();
    let mut c32: [Run; 2] = Default::default();
    let mut list: [Run; 2] = Default::default();
    let mut scrapes = Run::default();
    let pid = child.0.id();
    for (pass, scraped) in [false, true, true, false].into_iter().enumerate() {
        let scraper = scraped.then(|| Scraper::start(&http, &base));
        let i = usize::from(scraped);
        for block in 0..2 {
            reset().await;
            let tag = format!("c1-{pass}-{block}");
            c1[i].add(on_service(pid, creates(&http, &base, 1, 1000, &tag)).await);
        }
        reset().await;
        let tag = format!("c32-{pass}");
        c32[i].add(on_service(pid, creates(&http, &base, 32, 4000, &tag)).await);
        reset().await;
        creates(&http, &base, 10, 1000, &format!("list-{pass}")).await;
        list[i].add(on_service(pid, lists(&http, &base, 1500)).await);
        if let Some(s) = scraper {
            scrapes.add(s.stop().await);
        }
    }
    // With the service's CPU time per request: the column least moved by a busy machine.
    let row_cpu = |name: &str, run: Run| {
        let cpu = run.cpu_per_request();
        let s = run.stats();
        println!(
            "{name:<52} {:>10.0}/s {:>10} {:>10}   CPU {:>4.0} µs/request",
            s.rate,
            ms(s.p50),
            ms(s.p99),
            cpu.as_secs_f64() * 1e6
        );
        s
    };
    let scraped = ", /metrics scraped every 1 s";
    let [c1, c1_scraped] = c1;
    let [c32, c32_scraped] = c32;
    let [list, list_scraped] = list;
    row_cpu("POST /users, 1 client", c1);
    row_cpu(&format!("POST /users, 1 client{scraped}"), c1_scraped);
    let c32 = row_cpu("POST /users, 32 clients", c32);
    row_cpu(&format!("POST /users, 32 clients{scraped}"), c32_scraped);
    row_cpu("GET /users (1000 users, ~140 KB)", list);
    row_cpu(&format!("GET /users{scraped}"), list_scraped);
    let scrape_count = scrapes.lat.len();
    row(
        &format!("  GET /metrics itself ({scrape_count} scrapes, 1/s)"),
        &scrapes.stats(),
    );

    reset().await;
    auth_overhead(&http, &base, &admin_db).await;
    reset().await;
    let raw1 = raw_creates(&url, 1, 1000, "r1", false).await.stats();
    row("PostgreSQL portal_create_user(), 1 client", &raw1);
    reset().await;
    let raw32 = raw_creates(&url, 32, 4000, "r32", false).await.stats();
    row("PostgreSQL portal_create_user(), 32 clients", &raw32);
    reset().await;
    let bare32 = raw_creates(&url, 32, 4000, "b32", true).await.stats();
    row("PostgreSQL bare 2-row insert (no allocation), 32", &bare32);
    reset().await;
    println!(
        "{:<52} {:>11.2}x",
        "  service / raw allocation rate at 32 clients",
        c32.rate / raw32.rate
    );
    creates(&http, &base, 10, 1000, "list").await;
    // The same page straight from PostgreSQL: what the service adds is the difference.
    let (lat, wall) = raw_page(&admin_db, 300).await;
    row(
        "PostgreSQL: the same page, tokio-postgres",
        &stats(lat, wall),
    );

    // Clear text against TLS (verify-full, loopback): two services started for this, alike
    // but for sslmode (so that their pools have the same history), run in alternating
    // rounds: this machine's load changes from one second to the next, and a ratio means
    // something only when both sides saw the same.
    let tls_service = match tls_url(&db) {
        Ok(tls_url) => Service::try_start(
            &tls_url,
            &pjsip,
            &dialplan,
            &[("PORTAL_RELOAD", "none".into())],
        )
        .await
        .map(|(service, base)| (service, base, tls_url)),
        Err(why) => Err(why),
    };
    match &tls_service {
        Ok((tls_child, tls_base, tls_url)) => {
            let vars = [("PORTAL_RELOAD", "none".to_owned())];
            let (clear_child, clear_base) = Service::start(&url, &pjsip, &dialplan, &vars).await;
            let bases = [clear_base.as_str(), tls_base.as_str()];
            let pids = [clear_child.0.id(), tls_child.0.id()];
            let cpu = |name: &str, c: Option<[Duration; 2]>| {
                if let Some([clear, tls]) = c {
                    println!(
                        "{:<52} {:>8.0} µs {:>7.0} µs {:>8.2}x",
                        format!("  {name}: service CPU/request clear, TLS"),
                        clear.as_secs_f64() * 1e6,
                        tls.as_secs_f64() * 1e6,
                        tls.as_secs_f64() / clear.as_secs_f64().max(1e-9)
                    );
                }
            };
            let ratio = |name: &str, x: f64| println!("{name:<52} {x:>11.2}x");
            let p50 = |tls: &Stats, clear: &Stats| tls.p50.as_secs_f64() / clear.p50.as_secs_f64();
            println!("clear text vs TLS (verify-full, loopback), in alternating rounds:");
            for b in bases {
                list_users(&http, b, 30).await; // warms the service and its first connection
            }
            let (l_clear, l_tls, l_cpu) =
                interleaved(12, Some(pids), |side, _| list_users(&http, bases[side], 25)).await;
            row("GET /users (1000 users), 12 x 25, clear", &l_clear);
            row("GET /users (1000 users), 12 x 25, TLS", &l_tls);
            ratio(
                "  TLS cost, GET /users (p50 TLS/clear)",
                p50(&l_tls, &l_clear),
            );
            cpu("GET /users", l_cpu);
            match pg_tls(tls_url).await {
                Ok(tls_db) => {
                    let clients = [&admin_db, &tls_db];
                    let (p_clear, p_tls, _) =
                        interleaved(12, None, |side, _| raw_page(clients[side], 25)).await;
                    row("PostgreSQL: the same page, 12 x 25, clear", &p_clear);
                    row("PostgreSQL: the same page, 12 x 25, TLS", &p_tls);
                    ratio(
                        "  TLS cost, raw page (p50 TLS/clear)",
                        p50(&p_tls, &p_clear),
                    );
                }
                Err(why) => println!("raw page over TLS NOT measured: {why}"),
            }
            // Each round starts from an empty table (allocation walks the numbers taken).
            for (clients, rounds, per_round) in [(1, 20, 50), (32, 10, 320)] {
                let (clear, tls, c_cpu) = interleaved(rounds, Some(pids), |side, r| {
                    let (http, admin_db) = (&http, &admin_db);
                    async move {
                        admin_db
                            .batch_execute("TRUNCATE users CASCADE")
                            .await
                            .unwrap();
                        let tag = format!("cmp{clients}-{side}-{r}");
                        create_batch(http, bases[side], clients, per_round, &tag).await
                    }
                })
                .await;
                let name = format!("POST /users, {clients} cl., {rounds} x {per_round}");
                row(&format!("{name}, clear"), &clear);
                row(&format!("{name}, TLS"), &tls);
                if clients == 1 {
                    ratio(
                        "  TLS cost, POST /users 1 client (p50 TLS/clear)",
                        p50(&tls, &clear),
                    );
                } else {
                    ratio(
                        "  TLS cost, POST /users 32 clients (rate clear/TLS)",
                        clear.rate / tls.rate,
                    );
                }
                cpu(&format!("POST /users {clients} cl."), c_cpu);
            }
            reset().await;
            creates(&http, &base, 10, 1000, "list2").await;
        }
        Err(why) => println!("TLS figures (creates, list, raw page) NOT measured: {why}"),
    }
    drop(tls_service);

    let files_only = applies(&http, &base, &admin_db, 40, 10000, |_| {}).await;
    row("POST /apply, 1000 users, PORTAL_RELOAD=none", &files_only);
    let files_only_p50 = files_only.p50;

    render_with_and_without_nat();

    // The metrics in process: counting one request (what every request pays), from one
    // thread and from two at once on the same series, and encoding a scrape of a
    // registry holding what a busy service shows.
    let m = Metrics::new(Live::default);
    for n in [1, 2] {
        count_requests(&m, n, 200_000); // warm
        let ns = count_requests(&m, n, 2_000_000);
        println!(
            "{:<52} {:>10.0} ns per request",
            format!("count a request in the metrics, {n} thread(s) at once"),
            ns
        );
    }
    let routes = [
        "/users",
        "/users/{id}",
        "/users/{id}/secret",
        "/extensions/available",
        "/apply",
        "/apply/pending",
        "/applies",
        "/status",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "(unknown)",
    ];
    for (i, route) in routes.iter().enumerate() {
        for (method, status) in [("GET", 200), ("POST", 201), ("GET", 404), ("DELETE", 204)] {
            m.http_request(route, method, status, Duration::from_micros(100 * i as u64));
        }
    }
    let size = m.encode().unwrap().len();
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..1000 {
        let t = Instant::now();
        std::hint::black_box(m.encode().unwrap());
        lat.push(t.elapsed());
    }
    row(
        &format!(
            "encode /metrics, 48 request series (in process, {} KB)",
            size / 1024
        ),
        &stats(lat, t0.elapsed()),
    );

    // Against the Asterisk stand-in (AMI reload, FastAGI probe of every extension, with
    // the per-command cost measured on a real Asterisk 22.7): the same 1000 users.
    let (ast, ast_pjsip, ast_dialplan, ami_vars) = stand_in_at(dir.path(), "core").await;
    for health in ["agi", "off"] {
        let mut vars = ami_vars.clone();
        vars.push(("PORTAL_HEALTH_CHECK", health.into()));
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
    let (subs, now) = (bench_subscribers(), bench_policy(true, "g722,ulaw,alaw"));
    let probe_server = ProbeServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (probes, agi_addr) = (probe_server.probes(), probe_server.addr());
    let files = render::render(
        &subs,
        &render::Settings {
            policy: &now,
            agi_addr,
        },
    )
    .unwrap();
    replace(
        &ast_pjsip,
        render::ENDPOINTS_FILE,
        Some(files.default_files().endpoints.as_bytes()),
    )
    .unwrap();
    replace(
        &ast_dialplan,
        render::ROUTING_FILE,
        Some(files.default_files().routing.as_bytes()),
    )
    .unwrap();
    let mut ami = ami_login(&ast, Duration::from_secs(5)).await;
    for cmd in ["module reload res_pjsip.so", "dialplan reload"] {
        assert!(ami.command(cmd).await.unwrap().is_success());
    }
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..15 {
        let (token, verdict) = probes.register(Expectation {
            present: (1000..2000)
                .map(|e| (Object::default_tenant(e), 1, None))
                .collect(),
            absent: Vec::new(),
            unvisited: 0,
            marker: files.marker().to_owned(),
            sentinels: vec![(
                render::ENDPOINTS_FILE.to_owned(),
                files.default_files().sentinel.clone(),
            )],
            dialplan_proofs: Vec::new(),
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

    // LOAD_BENCH=core: the figures above only (the main performance table).
    if std::env::var("LOAD_BENCH").as_deref() != Ok("core") {
        bulk(&http, &base, &url, &admin_db, &pjsip, &dialplan).await;
        nodes(&http, &admin, &format!("{db}_nodes"), dir.path()).await;
        floor(&http, &admin, &format!("{db}_floor"), dir.path()).await;
    }

    drop(child);
    drop(admin_db);
    drop_db(&admin, &db).await;
}

/// POSTs a file; status and answer.
async fn post_file(http: &Http, base: &str, path: &str, ct: &str, body: Bytes) -> (u16, Bytes) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", ct)
        .body(Full::new(body))
        .unwrap();
    let resp = http.request(req).await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

fn import_csv(rows: usize, tag: &str) -> Bytes {
    let mut s = String::from("name,email\n");
    for i in 0..rows {
        s.push_str(&format!("Bulk User {i},{tag}-{i}@bulk.example\n"));
    }
    Bytes::from(s)
}

fn import_json(rows: usize, tag: &str) -> Bytes {
    let users: Vec<serde_json::Value> = (0..rows)
        .map(|i| serde_json::json!({"name": format!("Bulk User {i}"), "email": format!("{tag}-{i}@bulk.example")}))
        .collect();
    Bytes::from(serde_json::json!({ "users": users }).to_string())
}

/// PostgreSQL alone: the same rows (numbers chosen beforehand, secrets generated)
/// inserted by one multi-row statement in one transaction, on a connection that has run
/// it before (as the service's pooled ones have).
async fn raw_multi_row_insert(
    client: &mut tokio_postgres::Client,
    rows: usize,
    tag: &str,
) -> Duration {
    let names: Vec<String> = (0..rows).map(|i| format!("Bulk User {i}")).collect();
    let emails: Vec<String> = (0..rows)
        .map(|i| format!("{tag}-{i}@bulk.example"))
        .collect();
    let numbers: Vec<i32> = (0..rows as i32).map(|i| 10000 + i).collect();
    let secrets: Vec<String> = (0..rows)
        .map(|_| SipSecret::generate().expose().to_owned())
        .collect();
    let devices: Vec<i16> = vec![1; rows];
    let transports: Vec<&str> = vec!["transport-udp"; rows];
    let tenants: Vec<Option<i64>> = vec![None; rows];
    let t = Instant::now();
    let tx = client.transaction().await.unwrap();
    let inserted = tx
        .query_typed(
            // The very statement of the service's import (audit rows included).
            pbx_portal::store::IMPORT_STATEMENT,
            &[
                (&names, Type::TEXT_ARRAY),
                (&emails, Type::TEXT_ARRAY),
                (&numbers, Type::INT4_ARRAY),
                (&secrets, Type::TEXT_ARRAY),
                (&devices, Type::INT2_ARRAY),
                (&"cli", Type::TEXT),
                (&transports, Type::TEXT_ARRAY),
                (&tenants, Type::INT8_ARRAY),
            ],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let took = t.elapsed();
    assert_eq!(inserted.len(), rows);
    took
}

/// The bulk part of the benchmark (see the module's doc).
async fn bulk(
    http: &Http,
    base: &str,
    url: &str,
    db: &tokio_postgres::Client,
    pjsip: &std::path::Path,
    dialplan: &std::path::Path,
) {
    let reset = || async { db.batch_execute("TRUNCATE users CASCADE").await.unwrap() };
    let mut raw_client = pg(url).await;
    println!();
    println!("bulk import and export");
    // 1000 rows: the service end to end against PostgreSQL's own multi-row insert,
    // alternated so that both see the same machine.
    const ROUNDS: usize = 21;
    let (mut service, mut raw) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + 2 {
        reset().await;
        let body = import_csv(1000, &format!("s{round}"));
        let t = Instant::now();
        let (status, answer) = post_file(http, base, "/users/import", "text/csv", body).await;
        let took = t.elapsed();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
        reset().await;
        let raw_took = raw_multi_row_insert(&mut raw_client, 1000, &format!("r{round}")).await;
        // The first two rounds warm both up.
        if round >= 2 {
            service.push(took);
            raw.push(raw_took);
        }
    }
    reset().await;
    service.sort_unstable();
    raw.sort_unstable();
    let (s50, r50) = (percentile(&service, 0.5), percentile(&raw, 0.5));
    println!(
        "{:<52} {:>10} (min {}, max {})",
        "POST /users/import, 1000 rows (CSV), p50",
        ms(s50),
        ms(service[0]),
        ms(service[service.len() - 1])
    );
    println!(
        "{:<52} {:>10} (min {}, max {})",
        "PostgreSQL: one multi-row insert, 1000 rows, p50",
        ms(r50),
        ms(raw[0]),
        ms(raw[raw.len() - 1])
    );
    println!(
        "{:<52} {:>11.2}x (budget 2x)",
        "  service / PostgreSQL, p50 of 21 rounds",
        s50.as_secs_f64() / r50.as_secs_f64()
    );

    let mut raw10k = Vec::new();
    for round in 0..3 {
        reset().await;
        raw10k.push(raw_multi_row_insert(&mut raw_client, 10_000, &format!("r10k{round}")).await);
    }
    raw10k.sort_unstable();

    // 10,000 rows into a range of exactly 10,000 numbers, 3 times (emptied in between) in
    // a fresh process per format.
    let range = [
        ("PORTAL_RELOAD", "none".to_owned()),
        ("PORTAL_EXTENSION_MIN", "20000".to_owned()),
        ("PORTAL_EXTENSION_MAX", "29999".to_owned()),
    ];
    for (ct, body) in [
        ("text/csv", import_csv(10_000, "big")),
        ("application/json", import_json(10_000, "big")),
    ] {
        reset().await;
        let (svc, base) = Service::start(url, pjsip, dialplan, &range).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = svc.0.id();
        let idle = proc_status_kib(pid, "VmHWM:");
        let size = body.len();
        let mut lat = Vec::new();
        for _ in 0..3 {
            reset().await;
            let t = Instant::now();
            let (status, answer) = post_file(http, &base, "/users/import", ct, body.clone()).await;
            lat.push(t.elapsed());
            assert_eq!(
                status,
                201,
                "{}",
                String::from_utf8_lossy(&answer[..answer.len().min(500)])
            );
            let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(v["created"], 10_000);
            assert_eq!(v["users"][9999]["extension"], 29999);
        }
        lat.sort_unstable();
        println!(
            "{:<52} {:>10} peak RSS {} KiB (idle {} KiB; file {} KiB)",
            format!("import 10,000 rows ({ct}), p50 of 3"),
            ms(percentile(&lat, 0.5)),
            proc_status_kib(pid, "VmHWM:"),
            idle,
            size / 1024
        );
    }

    println!(
        "{:<52} {:>10}",
        "PostgreSQL: one multi-row insert, 10,000 rows, p50/3",
        ms(percentile(&raw10k, 0.5))
    );

    // Export of those 10,000 users, each format in a fresh process.
    for format in ["json", "csv"] {
        let (svc, base) = Service::start(url, pjsip, dialplan, &range).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = svc.0.id();
        let idle = proc_status_kib(pid, "VmHWM:");
        let mut lat = Vec::new();
        let mut size = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let (status, body) = call(
                http,
                &base,
                Method::GET,
                &format!("/users/export?format={format}"),
                None,
            )
            .await;
            lat.push(t.elapsed());
            assert_eq!(status, 200);
            size = body.len();
        }
        lat.sort_unstable();
        println!(
            "{:<52} {:>10} peak RSS {} KiB (idle {} KiB; answer {} KiB)",
            format!("GET /users/export?format={format}, 10,000 users"),
            ms(percentile(&lat, 0.5)),
            proc_status_kib(pid, "VmHWM:"),
            idle,
            size / 1024
        );
    }
    reset().await;
}

/// One apply of the nodes part: its wall time and the node outcomes' own durations
/// (`duration_ms` of nodes a and b, when chosen), to show where a cluster apply's time goes.
struct NodeApply {
    wall: Duration,
    a_ms: Option<i64>,
    b_ms: Option<i64>,
    /// When b was involved, ms after the request was sent (the host's clock, which the
    /// database's `now()` shares): [b asked, b claimed, b started, b done, a started,
    /// a done].
    timeline: Option<[f64; 6]>,
    /// CPU the two services and this process (the stand-ins, the client) used meanwhile.
    cpu: Duration,
    /// CPU the whole machine used meanwhile (PostgreSQL and other work too).
    busy: Duration,
    /// Each node's reload and probe in this apply (ms, from its /metrics).
    phases: [[f64; 2]; 2],
}

/// CPU time the whole machine has spent busy so far (every core, every process:
/// /proc/stat's first line without idle and iowait), in clock ticks of 10 ms.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Duration::from_millis(busy * 10)
}

/// A service's `pbx_portal_{reload,probe}_duration_seconds_sum` so far (every label set),
/// in ms: differences around one apply are that apply's reload and probe on that node.
async fn phase_sums(http: &Http, base: &str) -> [f64; 2] {
    let (status, body) = call(http, base, Method::GET, "/metrics", None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    [
        "pbx_portal_reload_duration_seconds_sum",
        "pbx_portal_probe_duration_seconds_sum",
    ]
    .map(|name| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            * 1000.0
    })
}

fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `POST /apply{query}` on `bases[0]` (node a) after rotating one user's secret (so that every chosen
/// node has work to do): asserts `applied` on every node, each probed healthy (1000).
async fn node_apply(
    http: &Http,
    db: &tokio_postgres::Client,
    pids: [u32; 3],
    bases: [&str; 2],
    user: i64,
    query: &str,
    want: &[&str],
) -> NodeApply {
    let base = bases[0];
    let (status, body) = call(
        http,
        base,
        Method::POST,
        &format!("/users/{user}/secret"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let before = [
        phase_sums(http, bases[0]).await,
        phase_sums(http, bases[1]).await,
    ];
    let cpu = || pids.iter().map(|p| cpu_time(*p)).sum::<Duration>();
    let cpu0 = cpu();
    let busy0 = machine_busy();
    let sent = epoch_secs();
    let t = Instant::now();
    let (status, body) = call(http, base, Method::POST, &format!("/apply{query}"), None).await;
    let wall = t.elapsed();
    let cpu = cpu().saturating_sub(cpu0);
    let busy = machine_busy().saturating_sub(busy0);
    let mut phases = [[0.0; 2]; 2];
    for (i, base) in bases.iter().enumerate() {
        let after = phase_sums(http, base).await;
        phases[i] = [after[0] - before[i][0], after[1] - before[i][1]];
    }
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rec: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rec["status"], "applied", "{rec}");
    let nodes = rec["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, want, "{rec}");
    let mut took = [None, None];
    for n in nodes {
        assert_eq!(n["status"], "applied", "{rec}");
        let h = &n["health"];
        assert_eq!(
            (h["status"].as_str(), h["checked"].as_i64()),
            (Some("ok"), Some(1000)),
            "{rec}"
        );
        took[usize::from(n["node"] == "b")] = n["duration_ms"].as_i64();
    }
    let timeline = if want.len() == 2 {
        let ids: Vec<i64> = nodes
            .iter()
            .map(|n| n["apply_id"].as_i64().unwrap())
            .collect();
        let r = db
            .query_one(
                "SELECT extract(epoch FROM r.created_at)::float8,
                        extract(epoch FROM r.claimed_at)::float8,
                        extract(epoch FROM b.started_at)::float8,
                        extract(epoch FROM b.finished_at)::float8,
                        extract(epoch FROM a.started_at)::float8,
                        extract(epoch FROM a.finished_at)::float8
                   FROM apply_requests r, apply_audit_log a, apply_audit_log b
                  WHERE r.node = 'b' AND a.id = $1 AND b.id = $2
                  ORDER BY r.id DESC LIMIT 1",
                &[&ids[0], &ids[1]],
            )
            .await
            .unwrap();
        Some([0, 1, 2, 3, 4, 5].map(|i| (r.get::<_, f64>(i) - sent) * 1000.0))
    } else {
        None
    };
    NodeApply {
        wall,
        a_ms: took[0],
        b_ms: took[1],
        timeline,
        cpu,
        busy,
        phases,
    }
}

/// SIGTERM, then waits: a graceful stop marks the node not alive at once.
fn stop_gracefully(service: Service) {
    let pid = service.0.id();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut service = service;
    let _ = service.0.wait();
}

fn median_ms(v: &[i64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0) as f64
}

/// The nodes part (see the module's doc): its own database, two services (nodes a and b)
/// each with its own Asterisk stand-in, then the node machinery in process.
async fn nodes(http: &Http, admin: &str, db: &str, dir: &std::path::Path) {
    use pbx_portal::apply::cluster::{self, Choice, Cluster};
    use pbx_portal::apply::{Applier, Held};
    use pbx_portal::auth::Actor;
    use pbx_portal::config::Config;
    use pbx_portal::record::ApplyStatus;
    use pbx_portal::shutdown::Shutdown;

    println!();
    println!("several Asterisk hosts (nodes a and b, each its own service and stand-in)");
    pg(admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = format!("{}/{db}?sslmode=disable", admin.rsplit_once('/').unwrap().0);
    let mut stand_ins = Vec::new();
    let mut services = Vec::new();
    for node in ["a", "b"] {
        let (ast, pjsip, dialplan, mut vars) = stand_in_at(dir, &format!("node-{node}")).await;
        vars.extend([
            ("PORTAL_NODE", node.to_owned()),
            ("PORTAL_HEALTH_CHECK", "agi".into()),
        ]);
        services.push(Service::start(&url, &pjsip, &dialplan, &vars).await);
        stand_ins.push(ast);
        if node == "a" {
            // The users, seeded as fast as the service takes them: one import.
            let (status, answer) = post_file(
                http,
                &services[0].1,
                "/users/import",
                "text/csv",
                import_csv(1000, "nodes"),
            )
            .await;
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
        }
    }
    let base = services[0].1.clone();
    // Both alive (a heartbeat each) before `?nodes=a,b` is asked.
    for _ in 0..100 {
        let (status, body) = call(http, &base, Method::GET, "/nodes", None).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let alive = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .count();
        if alive == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db_client = pg(&url).await;
    let user: i64 = db_client
        .query_one("SELECT id FROM users ORDER BY id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);

    // Single, parallel and rolling in alternating rounds, the order turning each round:
    // whatever the machine does meanwhile weighs on all three alike.
    const KINDS: [(&str, &[&str]); 3] = [
        ("?nodes=a", &["a"]),
        ("?nodes=a,b", &["a", "b"]),
        ("?nodes=a,b&strategy=rolling", &["a", "b"]),
    ];
    const ROUNDS: usize = 12;
    let bases = [services[0].1.as_str(), services[1].1.as_str()];
    let pids = [
        services[0].0 .0.id(),
        services[1].0 .0.id(),
        std::process::id(),
    ];
    let mut runs: [Vec<NodeApply>; 3] = Default::default();
    let t0 = Instant::now();
    for round in 0..ROUNDS + 2 {
        for k in 0..3 {
            let kind = (k + round) % 3;
            let (query, want) = KINDS[kind];
            let got = node_apply(http, &db_client, pids, bases, user, query, want).await;
            // The first two rounds warm up (the first applies write all 1000 users).
            if round >= 2 {
                runs[kind].push(got);
            }
        }
    }
    let wall = t0.elapsed();
    let [single, parallel, rolling] =
        runs.map(|r| (stats(r.iter().map(|x| x.wall).collect(), wall), r));
    let line = |name: &str, s: &Stats| {
        println!(
            "{name:<52} {:>12} {:>10} {:>10}",
            format!("{ROUNDS} rounds"),
            ms(s.p50),
            ms(s.p99)
        )
    };
    line(
        "POST /apply?nodes=a, 1000 users, AMI stand-in, agi",
        &single.0,
    );
    line("POST /apply?nodes=a,b (parallel)", &parallel.0);
    line("POST /apply?nodes=a,b&strategy=rolling", &rolling.0);
    let p50 = |s: &Stats| s.p50.as_secs_f64();
    println!(
        "{:<52} {:>11.2}x (limit 1.3x)",
        "  parallel / single, p50",
        p50(&parallel.0) / p50(&single.0)
    );
    println!(
        "{:<52} {:>11.2}x (limit 2.2x)",
        "  rolling / single, p50",
        p50(&rolling.0) / p50(&single.0)
    );
    // Where the time goes: each node's own apply (its record's duration_ms) against the
    // answer's wall time.
    for (name, (_, r)) in [
        ("single", &single),
        ("parallel", &parallel),
        ("rolling", &rolling),
    ] {
        let a: Vec<i64> = r.iter().filter_map(|x| x.a_ms).collect();
        let b: Vec<i64> = r.iter().filter_map(|x| x.b_ms).collect();
        let walls: Vec<i64> = r.iter().map(|x| x.wall.as_millis() as i64).collect();
        let b_text = if b.is_empty() {
            String::new()
        } else {
            format!(", node b {:.0} ms", median_ms(&b))
        };
        let mut cpu: Vec<Duration> = r.iter().map(|x| x.cpu).collect();
        cpu.sort_unstable();
        let mut busy: Vec<Duration> = r.iter().map(|x| x.busy).collect();
        busy.sort_unstable();
        println!(
            "  {name:<10} p50s: wall {:.0} ms, node a {:.0} ms{b_text}; CPU: services + stand-ins {:.0} ms, whole machine {:.0} ms",
            median_ms(&walls),
            median_ms(&a),
            percentile(&cpu, 0.5).as_secs_f64() * 1000.0,
            percentile(&busy, 0.5).as_secs_f64() * 1000.0,
        );
        let phase = |node: usize, i: usize| {
            let mut v: Vec<f64> = r.iter().map(|x| x.phases[node][i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "  {:<10} reload / probe (p50, each node's /metrics): a {:.0} / {:.0} ms{}",
            "",
            phase(0, 0),
            phase(0, 1),
            if b.is_empty() {
                String::new()
            } else {
                format!(", b {:.0} / {:.0} ms", phase(1, 0), phase(1, 1))
            }
        );
        let lines: Vec<[f64; 6]> = r.iter().filter_map(|x| x.timeline).collect();
        if !lines.is_empty() {
            let p = |i: usize| {
                let mut v: Vec<f64> = lines.iter().map(|l| l[i]).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "  {:<10} ms after the request (p50): b asked {:.0}, b claimed {:.0}, b started {:.0}, b done {:.0}; a started {:.0}, a done {:.0}",
                "", p(0), p(1), p(2), p(3), p(4), p(5)
            );
        }
    }
    for (service, _) in services {
        stop_gracefully(service);
    }
    drop(stand_ins);

    // The node machinery on a single-node apply, in process: node a (both services
    // stopped gracefully, so it is the only node `Choice::default()` picks), files only
    // (PORTAL_RELOAD=none): the stand-in's reload and probe add ~300 ms of modelled waits
    // whose round-to-round spread is itself of the order of the 5 ms measured, while the
    // machinery (choose the nodes, take the coordination lock) does not depend on what
    // the pipeline behind it does.
    let files = dir.join("node-a-inprocess");
    let (pjsip, dialplan) = (files.join("pjsip"), files.join("dialplan"));
    std::fs::create_dir_all(&pjsip).unwrap();
    std::fs::create_dir_all(&dialplan).unwrap();
    let vars: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", url.clone()),
        ("PORTAL_NODE", "a".into()),
        ("PORTAL_RELOAD", "none".into()),
        ("PORTAL_PJSIP_DIR", pjsip.display().to_string()),
        ("PORTAL_DIALPLAN_DIR", dialplan.display().to_string()),
        ("PORTAL_EXTENSION_MIN", "10000".into()),
        ("PORTAL_EXTENSION_MAX", "999999".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_vars(&vars).unwrap();
    let store = pbx_portal::app::open_store(&config).await.unwrap();
    let node = pbx_portal::app::register_node(&config, &store)
        .await
        .unwrap();
    let applier = Applier::new(store, config.asterisk.clone(), Default::default(), node);
    let (_stop, shutdown) = Shutdown::new();
    let outcomes = cluster::listen(&applier, Default::default(), shutdown);
    let cluster = Cluster::new(applier.clone(), config.node_timeout, outcomes);
    const MACHINE_ROUNDS: usize = 40;
    let mut sides: [Vec<Duration>; 2] = Default::default();
    for round in 0..MACHINE_ROUNDS + 3 {
        for side in [round % 2, 1 - round % 2] {
            let secret = format!("nodesbench{round:04}x{side}xxxxxxxxxxxxxxx");
            db_client
                .execute(
                    "UPDATE extensions SET secret = $1 WHERE number = 10000",
                    &[&secret],
                )
                .await
                .unwrap();
            let t = Instant::now();
            let rec = if side == 0 {
                // Its own lock only: the pipeline as it was before nodes.
                applier
                    .apply(&Actor::Cli, Held::ByThisRequest, None)
                    .await
                    .unwrap()
            } else {
                cluster
                    .apply(&Actor::Cli, &Choice::default())
                    .await
                    .unwrap()
            };
            let took = t.elapsed();
            assert_eq!(rec.status, ApplyStatus::Applied);
            assert_eq!(rec.nodes.len(), 1);
            assert_eq!(rec.nodes[0].node, "a");
            // The first rounds warm up (the first apply writes all 1000 users).
            if round >= 3 {
                sides[side].push(took);
            }
        }
    }
    let [mut plain, mut machine] = sides;
    plain.sort_unstable();
    machine.sort_unstable();
    let (p, m) = (percentile(&plain, 0.5), percentile(&machine, 0.5));
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "Applier::apply, 1000 users, files only (in process)",
        format!("{MACHINE_ROUNDS} rounds"),
        ms(p),
        ms(percentile(&plain, 0.99))
    );
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "Cluster::apply, same node (in process)",
        format!("{MACHINE_ROUNDS} rounds"),
        ms(m),
        ms(percentile(&machine, 0.99))
    );
    println!(
        "{:<52} {:>8.2} ms (limit 5 ms)",
        "  node machinery: Cluster - Applier, p50",
        (m.as_secs_f64() - p.as_secs_f64()) * 1000.0
    );
    drop(cluster);
    drop(applier);
    drop(db_client);
    let _ = pg(admin)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}

/// Apply at the floor: for 1000, 3000 and 10,000 users, each in a database and a stand-in of
/// its own (charging the reload costs measured on a real Asterisk 22.7), the apply of a
/// one-user change (a rotated secret: POST /apply, reload over AMI, probe) against a bare
/// `module reload res_pjsip.so` + `dialplan reload` of the same files over an AMI session
/// kept open, in alternating blocks; their medians and ratio next to the 1.05x limit, and
/// the first (full) apply.
/// `LOAD_BENCH=floor cargo bench --bench load` runs only this.
async fn floor(http: &Http, admin: &str, db_prefix: &str, dir: &std::path::Path) {
    println!();
    println!(
        "apply of a one-user change vs a bare reload of the same files (stand-in charging 22.7's costs)"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>8} {:>7} {:>16} {:>9}",
        "users", "apply p50", "reload p50", "ratio", "limit", "first apply", "rounds"
    );
    for (n, rounds) in [(1000usize, 8usize), (3000, 5), (10000, 3)] {
        let db = format!("{db_prefix}_{n}");
        pg(admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let url = format!("{}/{db}?sslmode=disable", admin.rsplit_once('/').unwrap().0);
        let (ast, pjsip, dialplan, mut vars) = stand_in_at(dir, &format!("floor-{n}")).await;
        assert!(asterisk::Options::default().reload_costs);
        vars.extend([
            // A reload of 10,000 users takes seconds: wait for it.
            ("PORTAL_AMI_TIMEOUT_MS", "60000".into()),
            ("PORTAL_HEALTH_TIMEOUT_MS", "60000".into()),
        ]);
        let (service, base) = Service::start(&url, &pjsip, &dialplan, &vars).await;
        let db_client = pg(&url).await;
        db_client
            .execute(
                "SELECT portal_create_user('User ' || g, 'floor' || g || '@x.org', NULL, 10000, 999999, \
                 'floorsecret' || lpad(g::text, 12, '0')) FROM generate_series(1, $1::int) g",
                &[&(n as i32)],
            )
            .await
            .unwrap();
        let (first, rec) = timed_apply(http, &base).await;
        assert_eq!(rec["health"]["proof"]["visited"], n, "{rec}");
        let mut ami = ami_login(&ast, Duration::from_secs(60)).await;
        // A bare reload is someone else's reload to the portal: the apply after one
        // visits every extension (reloaded_outside). So applies and bare reloads run in
        // blocks, twice each in turn; the first apply of each block re-proves everything
        // and is not counted.
        let (mut applies, mut reloads) = (Vec::new(), Vec::new());
        let mut rotation = 0;
        for _ in 0..2 {
            for counted in [false].into_iter().chain(std::iter::repeat_n(true, rounds)) {
                rotation += 1;
                let secret = format!("floorrotated{rotation:012}x{n}");
                db_client
                    .execute(
                        "UPDATE extensions SET secret = $1 WHERE number = $2",
                        &[&secret, &(10000 + rotation)],
                    )
                    .await
                    .unwrap();
                let (took, rec) = timed_apply(http, &base).await;
                if !counted {
                    continue;
                }
                applies.push(took);
                let health = &rec["health"];
                assert_eq!(
                    (
                        &health["proof"]["scope"],
                        &health["proof"]["visited"],
                        &health["checked"]
                    ),
                    (
                        &serde_json::json!("changed"),
                        &serde_json::json!(1),
                        &serde_json::json!(n)
                    ),
                    "{rec}"
                );
            }
            for _ in 0..rounds {
                let t = Instant::now();
                for cmd in ["module reload res_pjsip.so", "dialplan reload"] {
                    assert!(ami.command(cmd).await.unwrap().is_success());
                }
                reloads.push(t.elapsed());
            }
        }
        let (apply, reload) = (
            stats(applies, Duration::ZERO).p50,
            stats(reloads, Duration::ZERO).p50,
        );
        println!(
            "{:<8} {:>12} {:>12} {:>7.3}x {:>6}x {:>16} {:>9}",
            n,
            ms(apply),
            ms(reload),
            apply.as_secs_f64() / reload.as_secs_f64(),
            "1.05",
            ms(first),
            2 * rounds
        );
        ami.logoff().await;
        drop(service);
        drop(db_client);
        drop(ast);
        drop_db(admin, &db).await;
    }
}

/// One `POST /apply` that must succeed: how long it took and its record.
async fn timed_apply(http: &Http, base: &str) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let (status, body) = call(http, base, Method::POST, "/apply", None).await;
    let took = t.elapsed();
    let rec: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{rec}");
    (took, rec)
}

/// An AMI session with a stand-in, as the service's user.
async fn ami_login(ast: &asterisk::FakeAsterisk, timeout: Duration) -> ami::Client {
    ami::Client::login(&AmiSettings {
        addr: ast.ami_addr(),
        username: "portal".into(),
        secret: "portal-secret".into(),
        timeout,
    })
    .await
    .unwrap()
}

/// A database `db` with a files-only service of its own (directories under `dir/name`).
async fn files_only_service(
    admin: &str,
    db: &str,
    dir: &std::path::Path,
    name: &str,
) -> (Service, String, tokio_postgres::Client) {
    pg(admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = format!("{}/{db}?sslmode=disable", admin.rsplit_once('/').unwrap().0);
    let (pjsip, dialplan) = (
        dir.join(name).join("pjsip"),
        dir.join(name).join("dialplan"),
    );
    std::fs::create_dir_all(&pjsip).unwrap();
    std::fs::create_dir_all(&dialplan).unwrap();
    let (service, base) =
        Service::start(&url, &pjsip, &dialplan, &[("PORTAL_RELOAD", "none".into())]).await;
    let client = pg(&url).await;
    (service, base, client)
}

/// `POST /apply{query}` after rotating the secret of one user of tenant `tenant`: one
/// timed apply per call, which must apply exactly that change.
async fn rotate_and_apply(
    http: &Http,
    base: &str,
    db: &tokio_postgres::Client,
    tenant: &str,
    query: &str,
    round: usize,
) -> Batch {
    let secret = format!("tenantrotated{round:011}");
    db.execute(
        "UPDATE extensions SET secret = $1
          WHERE tenant_id = (SELECT id FROM tenants WHERE slug = $2)
            AND number = (SELECT min(number) FROM extensions
                           WHERE tenant_id = (SELECT id FROM tenants WHERE slug = $2))",
        &[&secret, &tenant],
    )
    .await
    .unwrap();
    let t = Instant::now();
    let (status, body) = call(http, base, Method::POST, &format!("/apply{query}"), None).await;
    let took = t.elapsed();
    let rec: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, &rec["status"]),
        (200, &serde_json::json!("applied")),
        "{rec}"
    );
    (vec![took], took)
}

/// `n` reads of `path`, each answering `users` users.
async fn pages(http: &Http, base: &str, path: &str, users: usize, n: usize) -> Batch {
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = call(http, base, Method::GET, path, None).await;
        lat.push(t.elapsed());
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["users"].as_array().map(Vec::len), Some(users));
    }
    (lat, t0.elapsed())
}

/// `LOAD_BENCH=tenants cargo bench --bench load` runs only this: 50 tenants of 200 users
/// against one tenant of 200, files only (issue 18's performance paragraph).
async fn tenants(http: &Http, admin: &str, db_prefix: &str, dir: &std::path::Path) {
    const TENANTS: usize = 50;
    const USERS: i32 = 200;
    let (multi, multi_base, multi_db) =
        files_only_service(admin, &format!("{db_prefix}_multi"), dir, "tenants-multi").await;
    let (single, single_base, single_db) =
        files_only_service(admin, &format!("{db_prefix}_single"), dir, "tenants-single").await;
    let t = Instant::now();
    for i in 1..=TENANTS {
        let slug = format!("t{i:02}");
        multi_db
            .execute(
                "INSERT INTO tenants (slug, name, extension_min, extension_max)
                 VALUES ($1, $1, 100, 999)",
                &[&slug],
            )
            .await
            .unwrap();
        multi_db
            .execute(
                "SELECT portal_create_user('User ' || g, 'u' || g || '@x.org', NULL, 100, 999,
                        'tenantsecret' || lpad(g::text, 12, '0'), 1::smallint, NULL,
                        (SELECT id FROM tenants WHERE slug = $2))
                   FROM generate_series(1, $1::int) g",
                &[&USERS, &slug],
            )
            .await
            .unwrap();
    }
    single_db
        .execute(
            "SELECT portal_create_user('User ' || g, 'u' || g || '@x.org', NULL, 10000, 999999,
                    'tenantsecret' || lpad(g::text, 12, '0'))
               FROM generate_series(1, $1::int) g",
            &[&USERS],
        )
        .await
        .unwrap();
    println!();
    println!(
        "tenants: {TENANTS} x {USERS} users ({} in all) against one tenant of {USERS}, \
         files only (created in {})",
        TENANTS * USERS as usize,
        ms(t.elapsed())
    );
    // Everything applied once on both; every round then changes one user.
    for base in [&multi_base, &single_base] {
        let (status, body) = call(http, base, Method::POST, "/apply", None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let bases = [multi_base.as_str(), single_base.as_str()];
    let dbs = [&multi_db, &single_db];
    // Warm both (first connections, caches).
    for side in 0..2 {
        let (tenant, query) = [("t01", "?tenant=t01"), ("default", "")][side];
        for r in 0..3 {
            rotate_and_apply(http, bases[side], dbs[side], tenant, query, 1000 + r).await;
        }
    }
    let (scoped, whole, _) = interleaved(40, None, |side, r| {
        let (tenant, query) = [("t01", "?tenant=t01"), ("default", "")][side];
        rotate_and_apply(http, bases[side], dbs[side], tenant, query, 2 * r + side)
    })
    .await;
    let diff = scoped.p50.as_secs_f64() - whole.p50.as_secs_f64();
    println!(
        "{:<60} {:>10} {:>10}",
        "POST /apply?tenant=t01, one user changed, 10,000 users",
        ms(scoped.p50),
        ms(scoped.p99)
    );
    println!(
        "{:<60} {:>10} {:>10}",
        "POST /apply, one user changed, one tenant of 200",
        ms(whole.p50),
        ms(whole.p99)
    );
    println!(
        "{:<60} {:>+8.2} ms   limit +2.00 ms",
        "  difference of the p50s",
        diff * 1000.0
    );

    let paths = ["/users?tenant=t01&limit=200", "/users?limit=200"];
    for side in 0..2 {
        pages(http, bases[side], paths[side], USERS as usize, 20).await;
    }
    let (of_many, of_one, _) = interleaved(20, None, |side, _| {
        pages(http, bases[side], paths[side], USERS as usize, 25)
    })
    .await;
    println!(
        "{:<60} {:>10} {:>10}",
        "GET /users?tenant=t01&limit=200, among 10,000 users",
        ms(of_many.p50),
        ms(of_many.p99)
    );
    println!(
        "{:<60} {:>10} {:>10}",
        "GET /users?limit=200, one tenant of 200",
        ms(of_one.p50),
        ms(of_one.p99)
    );
    println!(
        "{:<60} {:>9.2}x   limit 1.20x",
        "  ratio of the p50s",
        of_many.p50.as_secs_f64() / of_one.p50.as_secs_f64()
    );
    drop((multi, single, multi_db, single_db));
    for side in ["multi", "single"] {
        drop_db(admin, &format!("{db_prefix}_{side}")).await;
    }
}
