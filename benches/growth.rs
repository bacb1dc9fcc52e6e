//! How cost grows: the guard against many live tokens, users in PostgreSQL, and what
//! Redis holds and is asked per operation. One run prints one row; `scripts/growth.sh`
//! runs every row of `docs/guide/scaling.md`.
//!
//! ```text
//! GROWTH=memory   GROWTH_TOKENS=1000000 cargo bench --bench growth
//! GROWTH=postgres GROWTH_USERS=100000   cargo bench --features sqlx --bench growth
//! GROWTH=redis                          cargo bench --features redis --bench growth
//! ```
//!
//! - `memory` (the default): `GROWTH_TOKENS` live tokens (default 1,000,000) in a
//!   `MemoryTokenStore`, four to a user (`GROWTH_TOKENS_PER_USER`), the users in a
//!   `MemoryUserStore`. Prints the heap bytes per live token (a counting allocator:
//!   bytes requested, the token store's growth only, the users and the bench's own
//!   sample of tokens taken out) and the RSS growth per token, then times guarded
//!   `GET /users/me` (`tower::ServiceExt::oneshot`, as `benches/guard.rs`) with a
//!   `hot` token (the same one every time: its table slot stays in cache) against
//!   `spread` tokens (a shuffled sample of up to 100,000 of the live tokens: each
//!   request touches a table slot and a user of its own, so cache misses grow with
//!   the table), in 21 interleaved rounds. With `GROWTH_ITERS=n` it instead runs
//!   `n` `spread` requests (`GROWTH_HOT=1`: `hot`) in the function `measured` and
//!   exits: `valgrind --tool=callgrind --toggle-collect='*measured*'` then counts the
//!   instructions of those requests only, not of the prefill.
//! - `postgres` (feature `sqlx`): a fresh database on the server at `DATABASE_URL`
//!   (default `postgres://postgres@127.0.0.1:5432/test`; its own database, so that
//!   `pg_stat_database` counts only this run, dropped at the end) with the crate's
//!   `users` table and `GROWTH_USERS` users (default 100,000). The layer uses
//!   `SqlUserStore`, memory access and refresh tokens. Prints what the database did
//!   per guarded request, per login and per refresh (committed transactions, rows
//!   fetched, index and sequential scans of `users`; counters read 11 s after each
//!   phase, once every backend has flushed them), the plan of the guard's query
//!   (`EXPLAIN (ANALYZE, BUFFERS)`), and guarded requests and logins per second
//!   with 32 and 4 concurrent callers for `GROWTH_SECONDS` (default 3) each.
//! - `redis` (feature `redis`): the layer with `RedisTokenStore` for access and
//!   refresh tokens and the login throttle in Redis, at `REDIS_URL` (default
//!   `redis://127.0.0.1:6379`), under a prefix unique to the run and as long as the
//!   default `tower-oauth2-password:` (so key sizes are the default's). A `MONITOR`
//!   connection counts the commands carrying the prefix during each operation:
//!   guarded request, login with and without refresh token, refresh, revoking an
//!   access token and a refresh token. Then `MEMORY USAGE` of every key, by kind,
//!   and `used_memory` growth for `GROWTH_REDIS_TOKENS` (default 100,000) access
//!   tokens issued to as many users. Every key of the prefix is deleted at the end.
//!
//! Times are whatever the machine gives; instruction counts, bytes and operation
//! counts do not depend on its load.

#[allow(dead_code)] // `Mode` is the other benches'
mod support;
use support::quartiles;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::{ready, Ready};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::token::memory::MemoryTokenStore;
use tower_oauth2_password::token::{Grant, TokenStore};
use tower_oauth2_password::user::UserStore;
use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer, StoredUser};

/// Argon2id hash of "secret" (default parameters).
const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$QlGICJv0VkLd2pqAa9i9+Q$8jVAeYmJi0SJhtpkUv7OIxBaTEMmu/PL5yjLUR5dcQ8";

// Heap bytes counted by a global allocator; RSS from `/proc/self/status`.
#[path = "../examples/common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{heap, rss};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The memory stores' futures are ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory stores never wait"),
    }
}

type Body = Full<Bytes>;

/// The handler behind the guard: a fixed 200 response.
fn handler() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = Ready<Result<Response<Body>, Infallible>>,
> + Clone
       + Send
       + 'static {
    service_fn(|_request: Request<Body>| {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"{}")))))
    })
}

fn guarded(authorization: &HeaderValue) -> Request<Body> {
    let mut request = Request::get("/users/me")
        .body(Body::default())
        .expect("request");
    request
        .headers_mut()
        .insert(AUTHORIZATION, authorization.clone());
    request
}

/// A small deterministic shuffle (xorshift), so that runs compare.
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

fn main() {
    // Only under `cargo bench` (which passes `--bench`): not for `--list` or the
    // smoke run of `cargo test --benches`, which would fill a million tokens.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|arg| arg == "--bench") || args.iter().any(|arg| arg == "--list") {
        return;
    }
    match std::env::var("GROWTH").as_deref().unwrap_or("memory") {
        "memory" => memory(),
        #[cfg(feature = "sqlx")]
        "postgres" => postgres::run(),
        #[cfg(feature = "redis")]
        "redis" => redis::run(),
        other => panic!("GROWTH={other}: memory, postgres (feature sqlx) or redis (feature redis)"),
    }
}

/// `n` guarded requests, each with the next of `tokens` (round robin); counted by
/// callgrind (`--toggle-collect='*measured*'`) and timed.
#[inline(never)]
fn measured<S, B>(app: &S, tokens: &[HeaderValue], n: usize) -> Duration
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
{
    let started = Instant::now();
    for i in 0..n {
        let request = guarded(&tokens[i % tokens.len()]);
        let response = now(app.clone().oneshot(request)).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        black_box(response);
    }
    started.elapsed()
}

fn memory() {
    let count = env_number("GROWTH_TOKENS", 1_000_000).max(1);
    let per_user = env_number("GROWTH_TOKENS_PER_USER", 4).max(1);
    let user_count = count.div_ceil(per_user);
    let sample_size = count.min(100_000);
    let stride = count / sample_size;

    let (heap0, rss0) = (heap(), rss());
    let hash = HashedPassword::parse(PHC).expect("valid PHC string");
    let users = MemoryUserStore::<String>::new();
    let mut who = Vec::with_capacity(user_count);
    for i in 0..user_count {
        let name = format!("user{i}");
        users.insert(&name, StoredUser::new(name.clone(), hash.clone()));
        let credentials = now(users.credentials(&name))
            .expect("user store answers")
            .expect("user exists");
        who.push((credentials.subject, credentials.stamp));
    }
    let (heap_users, rss_users) = (heap(), rss());

    let tokens = MemoryTokenStore::new();
    let expires_at = SystemTime::now() + Duration::from_secs(24 * 3600);
    let mut sample: Vec<String> = Vec::with_capacity(sample_size);
    let (heap1, rss1) = (heap(), rss());
    let started = Instant::now();
    for i in 0..count {
        let (subject, stamp) = &who[i % user_count];
        let grant = Grant::new(subject.clone(), Scopes::empty(), expires_at).with_stamp(*stamp);
        let issued = now(tokens.issue(grant)).expect("token issued");
        if i % stride == 0 && sample.len() < sample_size {
            sample.push(issued.access_token.as_str().to_owned());
        }
    }
    let issue_ns = started.elapsed().as_nanos() as f64 / count as f64;
    let sample_heap: usize = sample.iter().map(String::capacity).sum();
    let heap_tokens = heap() - heap1 - sample_heap;
    let rss_tokens = rss().saturating_sub(rss1);
    assert_eq!(tokens.len(), count, "every token is live");
    drop(who);

    let mut headers: Vec<HeaderValue> = sample
        .iter()
        .map(|token| HeaderValue::try_from(format!("Bearer {token}")).expect("header"))
        .collect();
    drop(sample);
    shuffle(&mut headers);
    let hot = vec![headers[0].clone()];

    let layer = OAuth2PasswordLayer::builder(users)
        .token_store(tokens)
        .build();
    let app = ServiceBuilder::new().layer(layer).service(handler());

    println!("cpu\t{}", cpu());
    println!("tokens\t{count}");
    println!("users\t{user_count}");
    println!(
        "users_heap_bytes\t{}\t({:.0} B per user)",
        heap_users - heap0,
        (heap_users - heap0) as f64 / user_count as f64
    );
    println!("users_rss_bytes\t{}", rss_users.saturating_sub(rss0));
    println!(
        "token_heap_bytes_per_token\t{:.1}",
        heap_tokens as f64 / count as f64
    );
    println!(
        "token_rss_bytes_per_token\t{:.1}",
        rss_tokens as f64 / count as f64
    );
    println!("issue_ns\t{issue_ns:.0}");
    println!("rss_total_bytes\t{}", rss());

    if let Some(iters) = std::env::var("GROWTH_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let tokens = if std::env::var_os("GROWTH_HOT").is_some() {
            &hot
        } else {
            &headers
        };
        measured(&app, tokens, iters);
        return;
    }

    // Interleaved: each round times `hot` and `spread` for ~20 ms each, in turn.
    let per_slice = |tokens: &[HeaderValue]| {
        let took = measured(&app, tokens, 2_000);
        ((2_000.0 * 0.02 / took.as_secs_f64()).ceil() as usize).max(100)
    };
    measured(&app, &headers, headers.len()); // warm-up: every sampled token once
    let (n_hot, n_spread) = (per_slice(&hot), per_slice(&headers));
    let (mut hot_ns, mut spread_ns) = (Vec::new(), Vec::new());
    for round in 0..21 {
        let time = |tokens: &[HeaderValue], n: usize, into: &mut Vec<f64>| {
            into.push(measured(&app, tokens, n).as_nanos() as f64 / n as f64);
        };
        if round % 2 == 0 {
            time(&hot, n_hot, &mut hot_ns);
            time(&headers, n_spread, &mut spread_ns);
        } else {
            time(&headers, n_spread, &mut spread_ns);
            time(&hot, n_hot, &mut hot_ns);
        }
    }
    for (name, samples) in [("hot", &hot_ns), ("spread", &spread_ns)] {
        let (p25, median, p75) = quartiles(samples);
        println!("{name}_ns_per_request\t{median:.1}\t(p25 {p25:.1}, p75 {p75:.1})");
    }
    println!("load\t{}", uptime());
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_default()
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Sends `request` through `app` on the current tokio runtime; the status and body.
#[cfg(any(feature = "sqlx", feature = "redis"))]
async fn call<S, B>(app: &S, request: Request<Body>) -> (StatusCode, serde_json::Value)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

/// A form POST from a client at 127.0.0.1, as a server hands it to the layer (the
/// peer address in the extensions: the login throttle counts by it too).
#[cfg(any(feature = "sqlx", feature = "redis"))]
fn form(path: &str, body: String) -> Request<Body> {
    let mut request = Request::post(path)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::from(body))
        .expect("request");
    request
        .extensions_mut()
        .insert(tower_oauth2_password::endpoint::PeerAddr(
            std::net::SocketAddr::from(([127, 0, 0, 1], 40_000)),
        ));
    request
}

#[cfg(any(feature = "sqlx", feature = "redis"))]
fn login(username: &str) -> Request<Body> {
    form(
        "/token",
        format!("grant_type=password&username={username}&password=secret"),
    )
}

#[cfg(any(feature = "sqlx", feature = "redis"))]
fn refresh(token: &str) -> Request<Body> {
    form(
        "/token",
        format!("grant_type=refresh_token&refresh_token={token}"),
    )
}

#[cfg(any(feature = "sqlx", feature = "redis"))]
fn bearer(token: &str) -> HeaderValue {
    HeaderValue::try_from(format!("Bearer {token}")).expect("header")
}

#[cfg(any(feature = "sqlx", feature = "redis"))]
fn field(json: &serde_json::Value, name: &str) -> String {
    json[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        .to_owned()
}

#[cfg(feature = "sqlx")]
mod postgres {
    use std::sync::Arc;

    use super::*;
    use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
    use tower_oauth2_password::user::sql::{
        self, sqlx, AnyPool, NewUser, SqlUser, SqlUserStore, UsersTable,
    };

    const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
    const GUARD_QUERY: &str =
        "SELECT username, full_name, email, disabled, stamp FROM users WHERE username = $1";

    /// Transactions committed, rows fetched, index and sequential scans of `users`.
    async fn counters(pool: &AnyPool) -> [i64; 4] {
        // A busy backend flushes its statistics at most once a second, an idle
        // one after 10 s (PostgreSQL 15+): wait until every connection has.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let row: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT d.xact_commit, d.tup_fetched, COALESCE(t.idx_scan, 0), COALESCE(t.seq_scan, 0) \
             FROM pg_stat_database d, pg_stat_user_tables t \
             WHERE d.datname = current_database() AND t.relname = 'users'",
        )
        .fetch_one(pool)
        .await
        .expect("statistics");
        [row.0, row.1, row.2, row.3]
    }

    fn print_per(what: &str, n: usize, before: [i64; 4], after: [i64; 4]) {
        // The counters' own query is one transaction and fetches one row.
        let per = |i: usize, own: i64| (after[i] - before[i] - own) as f64 / n as f64;
        println!(
            "db_per_{what}\t{:.3} transactions\t{:.3} rows fetched\t{:.3} index scans\t{:.3} seq scans\t({n} of them)",
            per(0, 1),
            per(1, 1),
            per(2, 0),
            per(3, 0),
        );
    }

    /// `callers` tasks sending `request()` through `app` for `seconds`; per second
    /// and (p50, p99) latency.
    async fn load<S, B>(
        app: &S,
        callers: usize,
        seconds: u64,
        request: Arc<dyn Fn() -> Request<Body> + Send + Sync>,
    ) -> (f64, Duration, Duration)
    where
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        B: Send + 'static,
    {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (app, request) = (app.clone(), Arc::clone(&request));
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = app.clone().oneshot(request()).await.expect("infallible");
                    assert_eq!(response.status(), StatusCode::OK);
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("load task"));
        }
        let per_second = latencies.len() as f64 / started.elapsed().as_secs_f64();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        (per_second, at(0.5), at(0.99))
    }

    pub fn run() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(main());
    }

    async fn main() {
        let users = env_number("GROWTH_USERS", 100_000).max(1);
        let seconds = env_number("GROWTH_SECONDS", 3) as u64;
        let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let admin = sql::connect(&server)
            .await
            .expect("PostgreSQL at DATABASE_URL");
        let name = format!("oauth2_growth_{}", std::process::id());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("CREATE DATABASE");
        let (base, _) = server.rsplit_once('/').expect("a database in DATABASE_URL");
        let pool = sql::connect(&format!("{base}/{name}"))
            .await
            .expect("connect");
        measure(&pool, users, seconds).await;
        pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await
            .expect("DROP DATABASE");
    }

    async fn measure(pool: &AnyPool, users: usize, seconds: u64) {
        let table = UsersTable::new(pool.clone());
        table.migrate().await.expect("users table");
        let hash = HashedPassword::parse(PHC).expect("valid PHC string");
        table
            .add(&NewUser::new("johndoe", hash))
            .await
            .expect("johndoe");
        // The others never log in: the same hash text would do, a short one is smaller.
        sqlx::raw_sql(&format!(
            "INSERT INTO users (username, password_hash, stamp) \
             SELECT 'user' || n, 'never logs in', n FROM generate_series(1, {}) AS n; ANALYZE users",
            users - 1
        ))
        .execute(pool)
        .await
        .expect("filler users");
        let size: (i64, i64) =
            sqlx::query_as("SELECT pg_total_relation_size('users'), pg_indexes_size('users')")
                .fetch_one(pool)
                .await
                .expect("size");
        println!("cpu\t{}", cpu());
        println!("users\t{users}");
        println!("table_bytes\t{}\tindexes {}", size.0, size.1);

        let layer =
            OAuth2PasswordLayer::builder(SqlUserStore::<SqlUser>::builder(pool.clone()).build())
                .token_store(MemoryTokenStore::new())
                .refresh_tokens(MemoryRefreshTokenStore::new())
                .build();
        let app = ServiceBuilder::new().layer(layer).service(handler());

        // Counted phases, one at a time.
        let (status, json) = call(&app, login("johndoe")).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let me = bearer(&field(&json, "access_token"));
        let mut refresh_token = field(&json, "refresh_token");
        let guards = 1000;
        let before = counters(pool).await;
        for _ in 0..guards {
            let (status, _) = call(&app, guarded(&me)).await;
            assert_eq!(status, StatusCode::OK);
        }
        let after_guards = counters(pool).await;
        let logins = 10;
        for _ in 0..logins {
            let (status, json) = call(&app, login("johndoe")).await;
            assert_eq!(status, StatusCode::OK, "{json}");
        }
        let after_logins = counters(pool).await;
        let refreshes = 10;
        for _ in 0..refreshes {
            let (status, json) = call(&app, refresh(&refresh_token)).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            refresh_token = field(&json, "refresh_token");
        }
        let after_refreshes = counters(pool).await;
        print_per("guarded_request", guards, before, after_guards);
        print_per("login", logins, after_guards, after_logins);
        print_per("refresh", refreshes, after_logins, after_refreshes);

        use sqlx::Row;
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN (ANALYZE, BUFFERS) {GUARD_QUERY}"))
            .bind("johndoe")
            .fetch_all(pool)
            .await
            .expect("EXPLAIN")
            .iter()
            .map(|row| row.try_get::<String, _>("QUERY PLAN").unwrap_or_default())
            .collect();
        println!("guard_query_plan\t{}", plan.join(" / "));

        // Under load: guarded requests from 32 callers, logins from 4; a fresh
        // token (the refreshes above may have ended the first one's family).
        let (status, json) = call(&app, login("johndoe")).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let me = bearer(&field(&json, "access_token"));
        let guard = {
            let me = me.clone();
            Arc::new(move || guarded(&me)) as Arc<dyn Fn() -> Request<Body> + Send + Sync>
        };
        let (per_second, p50, p99) = load(&app, 32, seconds, guard).await;
        println!(
            "guarded_per_second\t{per_second:.0}\tp50 {:.2} ms\tp99 {:.2} ms\t(32 callers, {seconds} s)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        let (per_second, p50, p99) = load(&app, 4, seconds, Arc::new(|| login("johndoe"))).await;
        println!(
            "logins_per_second\t{per_second:.1}\tp50 {:.2} ms\tp99 {:.2} ms\t(4 callers, {seconds} s)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        println!("load\t{}", uptime());
    }
}

#[cfg(feature = "redis")]
mod redis_monitor {
    //! Commands a Redis server executes, seen through `MONITOR` on a raw connection.
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::sync::mpsc::{channel, Receiver};

    pub struct Monitor {
        lines: Receiver<String>,
        address: String,
        prefix: String,
        marks: usize,
    }

    impl Monitor {
        /// Watches the server at `address` (`host:port`) for commands naming `prefix`.
        pub fn start(address: &str, prefix: &str) -> Self {
            let mut stream = TcpStream::connect(address).expect("MONITOR connection");
            stream.write_all(b"MONITOR\r\n").expect("MONITOR");
            let (send, lines) = channel();
            let prefix_owned = prefix.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if line.contains(&prefix_owned) && send.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut monitor = Self {
                lines,
                address: address.to_owned(),
                prefix: prefix.to_owned(),
                marks: 0,
            };
            monitor.take(); // MONITOR is on once its first mark is seen
            monitor
        }

        /// The commands seen since the last call (their names, upper case; those
        /// run by a script prefixed `lua:`), up to a mark sent now on another
        /// connection.
        pub fn take(&mut self) -> Vec<String> {
            self.marks += 1;
            let mark = format!("{}mark-{}", self.prefix, self.marks);
            let mut stream = TcpStream::connect(&self.address).expect("connection");
            let command = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{mark}\r\n", mark.len());
            stream.write_all(command.as_bytes()).expect("ECHO");
            let mut seen = Vec::new();
            loop {
                let line = self
                    .lines
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .expect("MONITOR sees the mark");
                if line.contains(&mark) {
                    return seen;
                }
                // `+1733… [0 127.0.0.1:5555] "GET" "key"`: the name is the first quoted
                // word; commands a script runs show as `[0 lua]`, marked with `lua:`.
                let name = line.split('"').nth(1).unwrap_or("?").to_uppercase();
                if name != "ECHO" {
                    seen.push(if line.contains(" lua]") {
                        format!("lua:{name}")
                    } else {
                        name
                    });
                }
            }
        }
    }
}

#[cfg(feature = "redis")]
mod redis {
    use std::collections::BTreeMap;

    use super::redis_monitor::Monitor;
    use super::*;
    use ::redis::Commands;
    use tower_oauth2_password::endpoint::LoginThrottle;
    use tower_oauth2_password::token::redis::RedisTokenStore;

    pub fn run() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(main());
    }

    /// Commands sent per operation (round trips, pipelined or not), commands
    /// scripts ran per operation, and each command's count per operation.
    fn summary(commands: &[String], n: usize) -> String {
        let mut by_name = BTreeMap::<&str, usize>::new();
        for name in commands {
            *by_name.entry(name).or_default() += 1;
        }
        let names: Vec<String> = by_name
            .iter()
            .map(|(name, count)| format!("{name} {:.2}", *count as f64 / n as f64))
            .collect();
        let in_scripts = commands
            .iter()
            .filter(|name| name.starts_with("lua:"))
            .count();
        format!(
            "{:.2} sent\t{:.2} run by scripts\t{}",
            (commands.len() - in_scripts) as f64 / n as f64,
            in_scripts as f64 / n as f64,
            names.join(", ")
        )
    }

    async fn main() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let address = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        // As long as the default `tower-oauth2-password:` (22 bytes), unique to the run.
        let prefix = format!("tower-oauth2-g{:07}:", std::process::id() % 10_000_000);
        assert_eq!(prefix.len(), "tower-oauth2-password:".len());
        let store = RedisTokenStore::new(&url)
            .expect("a Redis URL")
            .with_prefix(&prefix);
        store.ping().await.expect("Redis at REDIS_URL");
        let refreshing = store
            .clone()
            .with_refresh_secret("1", b"growth-bench-refresh-secret-32-bytes!")
            .expect("refresh secret");
        let users = || {
            let hash = HashedPassword::parse(PHC).expect("valid PHC string");
            MemoryUserStore::new().with_user("johndoe", StoredUser::new("johndoe".to_owned(), hash))
        };
        let plain = OAuth2PasswordLayer::builder(users())
            .token_store(store.clone())
            .login_policy(LoginThrottle::new().in_redis(store.clone()))
            .build();
        let with_refresh = OAuth2PasswordLayer::builder(users())
            .token_store(store.clone())
            .refresh_tokens(refreshing)
            .login_policy(LoginThrottle::new().in_redis(store.clone()))
            .build();
        let plain = ServiceBuilder::new().layer(plain).service(handler());
        let with_refresh = ServiceBuilder::new().layer(with_refresh).service(handler());
        let mut monitor = Monitor::start(&address, &prefix);
        let n = 10;
        println!("cpu\t{}", cpu());
        println!("prefix\t{prefix}\t({} bytes, as the default)", prefix.len());

        let mut access = Vec::new();
        for _ in 0..n {
            let (status, json) = call(&plain, login("johndoe")).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            access.push(field(&json, "access_token"));
        }
        println!("commands_per_login\t{}", summary(&monitor.take(), n));
        let mut refresh_tokens = Vec::new();
        for _ in 0..n {
            let (status, json) = call(&with_refresh, login("johndoe")).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            refresh_tokens.push(field(&json, "refresh_token"));
        }
        println!(
            "commands_per_login_with_refresh\t{}",
            summary(&monitor.take(), n)
        );
        let me = bearer(&access[0]);
        for _ in 0..n * 10 {
            let (status, _) = call(&plain, guarded(&me)).await;
            assert_eq!(status, StatusCode::OK);
        }
        println!(
            "commands_per_guarded_request\t{}",
            summary(&monitor.take(), n * 10)
        );
        for token in &mut refresh_tokens {
            let (status, json) = call(&with_refresh, refresh(token)).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            *token = field(&json, "refresh_token");
        }
        println!("commands_per_refresh\t{}", summary(&monitor.take(), n));

        // What the keys hold, by kind, while the tokens and families are live.
        let client = ::redis::Client::open(url.as_str()).expect("Redis URL");
        let mut connection = client.get_connection().expect("Redis connection");
        let keys: Vec<String> = connection
            .scan_match(format!("{prefix}*"))
            .expect("SCAN")
            .collect::<Result<_, _>>()
            .expect("SCAN keys");
        let mut kinds = BTreeMap::<String, (usize, i64, String)>::new();
        for key in &keys {
            let bytes: i64 = ::redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query(&mut connection)
                .unwrap_or(0);
            let kind: String = ::redis::cmd("TYPE")
                .arg(key)
                .query(&mut connection)
                .unwrap_or_default();
            // The key's kind: its name with the token or family part taken out.
            let rest = &key[prefix.len()..];
            let shape: String = rest
                .split(':')
                .map(|part| if part.len() > 16 { "…" } else { part })
                .collect::<Vec<_>>()
                .join(":");
            let entry = kinds.entry(format!("{shape} ({kind})")).or_default();
            entry.0 += 1;
            entry.1 += bytes;
            entry.2 = kind;
        }
        println!(
            "keys\t{} after {n} logins, {n} logins with refresh, {n} refreshes",
            keys.len()
        );
        for (shape, (count, bytes, _)) in &kinds {
            println!(
                "memory_usage\t{shape}\t{count} keys\t{:.0} B per key",
                *bytes as f64 / *count as f64
            );
        }

        monitor.take(); // not the MEMORY USAGE, TYPE and SCAN above
        for token in &access[1..] {
            let (status, _) = call(&plain, form("/revoke", format!("token={token}"))).await;
            assert_eq!(status, StatusCode::OK);
        }
        println!(
            "commands_per_revoke_access\t{}",
            summary(&monitor.take(), n - 1)
        );
        for token in &refresh_tokens {
            let (status, _) = call(&with_refresh, form("/revoke", format!("token={token}"))).await;
            assert_eq!(status, StatusCode::OK);
        }
        println!(
            "commands_per_revoke_refresh\t{}",
            summary(&monitor.take(), n)
        );
        drop(monitor);

        // used_memory growth for many live access tokens, one per user.
        let many = env_number("GROWTH_REDIS_TOKENS", 100_000);
        let used = |connection: &mut ::redis::Connection| -> i64 {
            let info: String = ::redis::cmd("INFO")
                .arg("memory")
                .query(connection)
                .expect("INFO");
            info.lines()
                .find_map(|line| line.strip_prefix("used_memory:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0)
        };
        let before = used(&mut connection);
        let expires_at = SystemTime::now() + Duration::from_secs(3600);
        let issued = Instant::now();
        for i in 0..many {
            let grant = Grant::new(format!("user{i}"), Scopes::empty(), expires_at);
            store.issue(grant).await.expect("issued");
        }
        let issue_us = issued.elapsed().as_secs_f64() * 1e6 / many as f64;
        let after = used(&mut connection);
        println!(
            "used_memory_per_access_token\t{:.0}\t({many} tokens, one per user; other clients of this server move it too)",
            (after - before) as f64 / many as f64
        );
        println!("issue_us_sequential\t{issue_us:.1}");

        // Clean up every key of the run.
        let keys: Vec<String> = connection
            .scan_match(format!("{prefix}*"))
            .expect("SCAN")
            .collect::<Result<_, _>>()
            .expect("SCAN keys");
        for chunk in keys.chunks(1000) {
            let _: () = ::redis::cmd("UNLINK")
                .arg(chunk)
                .query(&mut connection)
                .expect("UNLINK");
        }
        println!("deleted_keys\t{}", keys.len());
        println!("load\t{}", uptime());
    }
}
