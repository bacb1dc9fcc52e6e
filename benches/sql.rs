//! Users in SQLite and PostgreSQL next to users in memory, end to end: requests/s
//! and latency percentiles of guarded requests and of logins, through the
//! tutorial's server (`examples/server.rs`) on a real socket.
//!
//! ```text
//! cargo bench --features sqlx --bench sql
//! ```
//!
//! Each row serves the tutorial app in process, with the users in memory, in a
//! fresh SQLite file, or in a fresh PostgreSQL database (both with 10,000 more
//! users, so that lookups run in a table of some size), each database once as it
//! is and once behind a `CachedUserStore` (rows `+cache`, 1 s staleness) (at `DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`; rows skipped if it cannot be
//! reached), tokens in memory. A load generator in the same process keeps
//! `BENCH_CONNECTIONS` (default 32) keep-alive HTTP/1.1 connections busy for
//! `BENCH_SECONDS` (default 5) with `GET /users/me` and a valid token, then with 4
//! connections for the same time with `POST /token` (Argon2id at its default
//! parameters bounds the logins, whatever the store).
//!
//! Then, on PostgreSQL, what a guarded request costs the database, without and
//! with the cache: statements (committed transactions) and index and sequential
//! scans of `users`, per request, and the plan of the guard's query on both
//! databases.

// `examples/common` is loaded twice, by the server example and its tutorial.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/server.rs"]
#[allow(dead_code)]
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use server::tutorial;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower_oauth2_password::token::TokenStore;
use tower_oauth2_password::user::sql::{self, sqlx, AnyPool};
use tower_oauth2_password::user::{CachedUserStore, UserStore};
use tower_oauth2_password::OAuth2PasswordLayer;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A server running in this process until dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve<Us, Ts>(layer: OAuth2PasswordLayer<Us, Ts>) -> Running
where
    Us: UserStore<User = tutorial::User>,
    Ts: TokenStore,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(tutorial::serve(listener, layer, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
    }
}

/// What a load run measured.
struct Load {
    per_second: f64,
    latencies: Vec<Duration>,
}

impl Load {
    fn percentile(&self, q: f64) -> Duration {
        let at = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[at]
    }
}

/// `connections` keep-alive connections, each sending `request()` and awaiting
/// the answer in a loop, for `seconds`; every answer must be 200.
async fn load(
    addr: SocketAddr,
    connections: u64,
    seconds: u64,
    request: Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync>,
) -> Load {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = Arc::clone(&request);
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = sender.send_request(request()).await.expect("response");
                let status = response.status();
                let body = response.into_body().collect().await.expect("body");
                assert_eq!(status, StatusCode::OK, "{:?}", body.to_bytes());
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Load {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

async fn token(addr: SocketAddr) -> String {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(login(addr)).await.expect("login");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    json["access_token"].as_str().expect("a token").to_owned()
}

fn login(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}/token"))
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from("username=johndoe&password=secret"))
        .expect("request")
}

/// A guarded `GET /users/me` to `addr` with `token`, made afresh for each send.
fn me_request(
    addr: SocketAddr,
    token: String,
) -> Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync> {
    Arc::new(move || {
        Request::get(format!("http://{addr}/users/me"))
            .header("host", addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .expect("request")
    })
}

/// Runs the guard and login loads against `running` and prints their rows.
async fn measure(store: &str, running: &Running) {
    let connections = env_number("BENCH_CONNECTIONS", 32);
    let seconds = env_number("BENCH_SECONDS", 5);
    let addr = running.addr;
    let token = token(addr).await;
    let me = me_request(addr, token);
    for (case, connections, request) in [
        (
            "guard",
            connections,
            me as Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync>,
        ),
        ("login", 4, Arc::new(move || login(addr))),
    ] {
        let load = load(addr, connections, seconds, request).await;
        println!(
            "{store:<14} {case:<6} {:>9.0} {:>9.2} {:>9.2} {:>9}",
            load.per_second,
            load.percentile(0.5).as_secs_f64() * 1e3,
            load.percentile(0.99).as_secs_f64() * 1e3,
            load.latencies.len(),
        );
    }
}

/// A fresh database on the PostgreSQL server, and how to drop it.
async fn postgres() -> Option<(String, String, String)> {
    let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let admin = sql::connect(&server).await.ok()?;
    let name = format!("oauth2_bench_{}", std::process::id());
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .ok()?;
    admin.close().await;
    let (base, _) = server.rsplit_once('/')?;
    Some((server.clone(), name.clone(), format!("{base}/{name}")))
}

/// Statements, index scans and sequential scans of `users` so far.
async fn postgres_counters(pool: &AnyPool) -> (i64, i64, i64) {
    // A busy backend flushes its statistics at most once a second, an idle one
    // after 10 s (PostgreSQL 15): wait for every connection of the pool to have.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let row: (i64, i64, i64) = sqlx::query_as(
        "SELECT d.xact_commit, COALESCE(t.idx_scan, 0), COALESCE(t.seq_scan, 0) \
         FROM pg_stat_database d, pg_stat_user_tables t \
         WHERE d.datname = current_database() AND t.relname = 'users'",
    )
    .fetch_one(pool)
    .await
    .expect("statistics");
    row
}

/// The plan of `explain`, its lines read from `column`.
async fn plan(pool: &AnyPool, explain: &str, column: &str) -> String {
    use sqlx::Row;
    match sqlx::query(explain).bind("johndoe").fetch_all(pool).await {
        Ok(rows) => rows
            .iter()
            .map(|row| row.try_get::<String, _>(column).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" / "),
        Err(error) => format!("(no plan: {error})"),
    }
}

/// Ten thousand more users, so that the guard's lookup is measured in a table
/// of a realistic size, where the planner uses the index.
async fn fill(pool: &AnyPool, numbers: &str) {
    sqlx::raw_sql(&format!(
        "{numbers} INSERT INTO users (username, password_hash, stamp) \
         SELECT 'user' || n, 'never logs in', n FROM numbers"
    ))
    .execute(pool)
    .await
    .expect("filler users");
    sqlx::raw_sql("ANALYZE")
        .execute(pool)
        .await
        .expect("ANALYZE");
}

const SQLITE_NUMBERS: &str = "WITH RECURSIVE numbers(n) AS \
     (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 10000)";
const POSTGRES_NUMBERS: &str = "WITH numbers(n) AS (SELECT generate_series(1, 10000))";

const GUARD_QUERY: &str =
    "SELECT username, full_name, email, disabled, stamp FROM users WHERE username = $1";

/// Statements, index scans and sequential scans of `users` per guarded request
/// to `running`, over at least 1000 requests: (requests, the three per request).
async fn database_cost(pool: &AnyPool, running: &Running) -> (usize, f64, f64, f64) {
    let addr = running.addr;
    let token = token(addr).await;
    let requests = 1000;
    let before = postgres_counters(pool).await;
    let me = me_request(addr, token);
    let mut sent = 0;
    while sent < requests {
        sent += load(addr, 1, 1, Arc::clone(&me) as _).await.latencies.len();
    }
    let after = postgres_counters(pool).await;
    // The counters' own query (one statement) is in the difference.
    let per = |a: i64, b: i64| (b - a) as f64 / sent as f64;
    (
        sent,
        per(before.0 + 1, after.0),
        per(before.1, after.1),
        per(before.2, after.2),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    println!(
        "{:<14} {:<6} {:>9} {:>9} {:>9} {:>9}",
        "users", "case", "req/s", "p50 ms", "p99 ms", "requests"
    );
    measure("memory", &serve(tutorial::layer_builder().build()).await).await;

    let dir = std::env::temp_dir().join(format!("oauth2_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let sqlite_url = format!("sqlite://{}", dir.join("users.db").display());
    let sqlite = server::open_database(&sqlite_url).await.expect("SQLite");
    fill(&sqlite, SQLITE_NUMBERS).await;
    let running = serve(OAuth2PasswordLayer::new(server::user_store(sqlite.clone()))).await;
    measure("sqlite", &running).await;
    drop(running);
    let cached = CachedUserStore::new(server::user_store(sqlite.clone()));
    let running = serve(OAuth2PasswordLayer::new(cached)).await;
    measure("sqlite+cache", &running).await;
    drop(running);
    let sqlite_plan = plan(
        &sqlite,
        &format!("EXPLAIN QUERY PLAN {GUARD_QUERY}"),
        "detail",
    )
    .await;

    let Some((server_url, name, url)) = postgres().await else {
        println!("postgres: skipped (no server at DATABASE_URL)");
        println!("\nSQLite plan of the guard's query: {sqlite_plan}");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let pool = server::open_database(&url).await.expect("PostgreSQL");
    fill(&pool, POSTGRES_NUMBERS).await;
    let running = serve(OAuth2PasswordLayer::new(server::user_store(pool.clone()))).await;
    measure("postgres", &running).await;
    let cached = CachedUserStore::new(server::user_store(pool.clone()));
    let running_cached = serve(OAuth2PasswordLayer::new(cached)).await;
    measure("postgres+cache", &running_cached).await;

    // What one guarded request costs the database, on a quiet server.
    for (rows, running) in [("postgres", running), ("postgres+cache", running_cached)] {
        let (sent, statements, index, sequential) = database_cost(&pool, &running).await;
        println!(
            "\n{rows}, per guarded request ({sent} requests): {statements:.3} statements, \
             {index:.3} index scans and {sequential:.3} sequential scans of users",
        );
    }
    let pg_plan = plan(&pool, &format!("EXPLAIN {GUARD_QUERY}"), "QUERY PLAN").await;
    println!("PostgreSQL plan of the guard's query: {pg_plan}");
    println!("SQLite plan of the guard's query: {sqlite_plan}");
    pool.close().await;
    if let Ok(admin) = sql::connect(&server_url).await {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
