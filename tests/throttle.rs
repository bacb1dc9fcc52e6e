//! Brute-force limits and the bounded login queue, over a real socket: 429 with
//! `Retry-After` before any hash, per (username, address), per username and per
//! client address (addresses: the client binds 127.0.0.x), behind trusted proxies
//! only as they say; reserved before the hash, so concurrent attempts cannot pass
//! a limit; bad refresh tokens counted per address; 503 at once when too many
//! logins wait; and one log line per refused login or refresh grant.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{tutorial, Captured, Reply, Server};
use http::Request;
use http_body_util::Full;
use tower_oauth2_password::endpoint::{LoginThrottle, TrustedProxies};
use tower_oauth2_password::password::{HashedPassword, PasswordError, Verification};
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
use tower_oauth2_password::user::{Credentials, Principal, Subject, UserStore};
use tower_oauth2_password::{Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher};

const INVALID_GRANT: &str =
    r#"{"detail":"Incorrect username or password","error":"invalid_grant"}"#;

async fn attempt(server: &Server, username: &str, password: &str) -> Reply {
    server
        .post_form(&format!("username={username}&password={password}"))
        .await
}

/// `POST /token` with an `X-Forwarded-For` header.
async fn attempt_via(server: &Server, forwarded_for: &str, username: &str) -> Reply {
    let request = Request::post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", forwarded_for)
        .body(Full::<Bytes>::from(format!(
            "username={username}&password=wrong"
        )))
        .unwrap();
    server.send(request).await
}

/// Asserts the 429: body, `Retry-After` within the window, no caching.
#[track_caller]
fn assert_throttled(reply: &Reply, window: Duration) {
    reply.assert_error(
        429,
        "Too many login attempts, try again later",
        Some("temporarily_unavailable"),
    );
    let retry_after: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=window.as_secs()).contains(&retry_after),
        "Retry-After {retry_after} within the {window:?} window"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

const WINDOW: Duration = Duration::from_secs(15 * 60);
const USERNAME_WINDOW: Duration = Duration::from_secs(60 * 60);

#[tokio::test]
async fn five_wrong_passwords_lock_the_user_out_from_that_address_only() {
    let server = Server::start().await;
    let attacker = server.connecting_from("127.0.0.2");
    for _ in 0..5 {
        let reply = attempt(&attacker, "johndoe", "wrong").await;
        assert_eq!(
            (reply.status.as_u16(), &reply.body[..]),
            (400, INVALID_GRANT.as_bytes())
        );
    }
    // From that address, even the right password waits out the window.
    assert_throttled(&attempt(&attacker, "johndoe", "secret").await, WINDOW);
    // From a clean address, the user logs in: a stranger cannot lock them out.
    server
        .connecting_from("127.0.0.3")
        .login("johndoe", "secret")
        .await;
    // Another user, from the attacker's address (5 failures of its 20), is not
    // held back.
    assert_eq!(attempt(&attacker, "alice", "secret2").await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn strangers_with_twenty_addresses_reach_the_per_username_cap_of_100() {
    let hasher = Gated::closed();
    hasher.open();
    let server = Server::start_with(
        tutorial::layer_builder()
            .password_hasher(hasher.clone())
            .build(),
    )
    .await;
    for i in 0..20 {
        let attacker = server.connecting_from(&format!("127.0.1.{}", 10 + i));
        for _ in 0..5 {
            assert_eq!(attempt(&attacker, "johndoe", "wrong").await.status, 400);
        }
        // Each address got its 5, no more (the last one meets the cap too).
        assert_throttled(
            &attempt(&attacker, "johndoe", "wrong").await,
            USERNAME_WINDOW,
        );
        if i == 10 {
            // 55 failures from 11 addresses: the user still logs in from theirs.
            server
                .connecting_from("127.0.2.1")
                .login("johndoe", "secret")
                .await;
        }
    }
    assert_eq!(
        hasher.started.load(Ordering::SeqCst),
        101,
        "100 failures, 1 login"
    );
    // 100 failures: the cap holds for every address, for up to an hour.
    let reply = attempt(&server.connecting_from("127.0.2.1"), "johndoe", "secret").await;
    assert_throttled(&reply, USERNAME_WINDOW);
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after > WINDOW.as_secs(),
        "the username's hour: {retry_after}"
    );
    assert_eq!(
        hasher.started.load(Ordering::SeqCst),
        101,
        "no hash for a 429"
    );
    // Other users are not touched.
    assert_eq!(
        attempt(&server.connecting_from("127.0.2.1"), "alice", "secret2")
            .await
            .status,
        200
    );
    server.stop().await;
}

/// Case-insensitive and blind to surrounding spaces, as some directories are:
/// the login throttle must count every spelling it matches as one user.
struct Forgiving(MemoryUserStore<tutorial::User>);

impl UserStore for Forgiving {
    type User = tutorial::User;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<tutorial::User>>> {
        self.0.principal(subject)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.0.credentials(&self.canonical_username(username)).await
    }

    fn canonical_username<'a>(&self, username: &'a str) -> std::borrow::Cow<'a, str> {
        username.trim().to_lowercase().into()
    }
}

#[tokio::test]
async fn every_spelling_the_store_matches_shares_one_count() {
    let layer = OAuth2PasswordLayer::builder(Forgiving(tutorial::users())).build();
    let server = Server::start_with(layer).await;
    for typed in ["johndoe+", "+JohnDoe", "JOHNDOE++", "+johndoe+", "johnDoe"] {
        assert_eq!(
            attempt(&server, typed, "wrong").await.status,
            400,
            "{typed}"
        );
    }
    for typed in ["johndoe", "++JohnDoe", "JoHnDoE+"] {
        assert_throttled(&attempt(&server, typed, "secret").await, WINDOW);
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_users_are_throttled_exactly_like_known_ones() {
    let server = Server::start().await;
    for username in ["johndoe", "nobody"] {
        for _ in 0..5 {
            assert_eq!(
                attempt(&server, username, "wrong").await.body,
                INVALID_GRANT
            );
        }
    }
    let known = attempt(&server, "johndoe", "wrong").await;
    let unknown = attempt(&server, "nobody", "wrong").await;
    assert_throttled(&known, Duration::from_secs(15 * 60));
    assert_eq!(
        (known.status, known.body),
        (unknown.status, unknown.body),
        "a 429 says nothing about whether the user exists"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_successful_login_clears_the_usernames_count() {
    let server = Server::start().await;
    for _ in 0..3 {
        for _ in 0..4 {
            assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
        }
        server.login("johndoe", "secret").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn twenty_failures_from_one_address_over_many_usernames_then_429() {
    let server = Server::start().await;
    for i in 0..20 {
        let reply = attempt(&server, &format!("user{i}"), "wrong").await;
        assert_eq!(reply.status, 400, "failure {i}");
    }
    // A username never tried, even the right password: the address is held back.
    assert_throttled(
        &attempt(&server, "johndoe", "secret").await,
        Duration::from_secs(15 * 60),
    );
    // Another address is not.
    server
        .connecting_from("127.0.0.5")
        .login("johndoe", "secret")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_username_opens_again_when_its_window_ends() {
    let throttle = LoginThrottle::new().per_username(1, Duration::from_secs(1));
    let server = Server::start_with(tutorial::layer_builder().login_policy(throttle).build()).await;
    assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
    assert_throttled(
        &attempt(&server, "johndoe", "secret").await,
        Duration::from_secs(1),
    );
    // Attempts while refused are not counted: they cannot extend the window.
    for _ in 0..3 {
        assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 429);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.login("johndoe", "secret").await;
    server.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let throttle = LoginThrottle::new().per_address(2, Duration::from_secs(60));
    // Not trusted: the header is the client's word, and changing it changes nothing.
    let server = Server::start_with(
        tutorial::layer_builder()
            .login_policy(throttle.clone())
            .build(),
    )
    .await;
    assert_eq!(attempt_via(&server, "203.0.113.1", "a").await.status, 400);
    assert_eq!(attempt_via(&server, "203.0.113.2", "b").await.status, 400);
    assert_eq!(attempt_via(&server, "203.0.113.3", "c").await.status, 429);
    server.stop().await;

    // The test client connects from 127.0.0.1: trusted, the header names the client.
    let proxies = TrustedProxies::x_forwarded_for(["127.0.0.0/8"]).unwrap();
    let server = Server::start_with(
        tutorial::layer_builder()
            .login_policy(LoginThrottle::new().per_address(2, Duration::from_secs(60)))
            .trusted_proxies(proxies)
            .build(),
    )
    .await;
    assert_eq!(attempt_via(&server, "203.0.113.1", "a").await.status, 400);
    assert_eq!(attempt_via(&server, "203.0.113.1", "b").await.status, 400);
    assert_eq!(attempt_via(&server, "203.0.113.1", "c").await.status, 429);
    // Another client behind the same proxy is not held back; a forged entry
    // before the proxy's own does not help the first one.
    assert_eq!(attempt_via(&server, "203.0.113.2", "d").await.status, 400);
    assert_eq!(
        attempt_via(&server, "203.0.113.9, 203.0.113.1", "e")
            .await
            .status,
        429
    );
    server.stop().await;
}

/// Argon2id with cheap parameters whose verifications wait until the gate opens,
/// counting them.
#[derive(Clone)]
struct Gated {
    argon2: Argon2Hasher,
    gate: Arc<(Mutex<bool>, Condvar)>,
    started: Arc<AtomicUsize>,
}

impl Gated {
    fn closed() -> Self {
        Self {
            argon2: Argon2Hasher::with_params(1024, 1, 1).unwrap(),
            gate: Arc::default(),
            started: Arc::default(),
        }
    }

    fn wait(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let (open, changed) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
    }

    fn set(&self, open: bool) {
        *self.gate.0.lock().unwrap() = open;
        self.gate.1.notify_all();
    }

    fn open(&self) {
        self.set(true);
    }

    /// Opens the gate when dropped, so that a failing test does not leave
    /// verifications blocked (and the runtime waiting for them forever).
    fn open_on_drop(&self) -> impl Drop + '_ {
        struct Opener<'a>(&'a Gated);
        impl Drop for Opener<'_> {
            fn drop(&mut self) {
                self.0.open();
            }
        }
        Opener(self)
    }

    async fn until_started(&self, verifications: usize) {
        while self.started.load(Ordering::SeqCst) < verifications {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl PasswordHasher for Gated {
    fn hash(&self, password: &str) -> Result<HashedPassword, PasswordError> {
        self.argon2.hash(password)
    }

    fn verify(&self, password: &str, hash: &HashedPassword) -> Result<Verification, PasswordError> {
        self.wait();
        self.argon2.verify(password, hash)
    }

    fn verify_dummy(&self, password: &str) {
        self.wait();
        self.argon2.verify_dummy(password);
    }
}

#[track_caller]
fn assert_busy(reply: &Reply) {
    reply.assert_error(
        503,
        "Too many logins at once, try again shortly",
        Some("temporarily_unavailable"),
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn a_full_login_queue_answers_503_at_once_and_protected_routes_go_on() {
    let hasher = Gated::closed();
    let layer = tutorial::layer_builder()
        .password_hasher(hasher.clone())
        .max_concurrent_hashes(1)
        .max_waiting_logins(2, Duration::from_secs(600))
        .build();
    let server = Arc::new(Server::start_with(layer).await);
    let _opener = hasher.open_on_drop();
    // A token from before the storm, for the protected route.
    hasher.open();
    let token = server.login("johndoe", "secret").await;
    hasher.set(false);

    // One login hashing (held at the gate), two waiting, four more: those four
    // find the queue full and are answered at once.
    // Each as another user: the login throttle must not answer first.
    let spawn_login = |i: usize| {
        let server = Arc::clone(&server);
        tokio::spawn(async move { attempt(&server, &format!("user{i}"), "wrong").await })
    };
    let hashing = spawn_login(0);
    hasher.until_started(2).await;
    let logins: Vec<_> = (1..7).map(spawn_login).collect();
    while logins.iter().filter(|login| login.is_finished()).count() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Protected routes do not wait behind logins.
    assert_eq!(server.me(&token).await.status, 200);

    hasher.open();
    assert_eq!(hashing.await.unwrap().status, 400);
    let mut statuses = Vec::new();
    for login in logins {
        let reply = login.await.unwrap();
        if reply.status == 503 {
            assert_busy(&reply);
        }
        statuses.push(reply.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 400, 503, 503, 503, 503]);
    assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
}

#[tokio::test]
async fn a_throttled_login_computes_no_hash() {
    let hasher = Gated::closed();
    hasher.open();
    let layer = tutorial::layer_builder()
        .password_hasher(hasher.clone())
        .login_policy(LoginThrottle::new().per_username(2, Duration::from_secs(60)))
        .build();
    let server = Server::start_with(layer).await;
    for _ in 0..2 {
        assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
    }
    assert_eq!(hasher.started.load(Ordering::SeqCst), 2);
    for _ in 0..3 {
        assert_eq!(attempt(&server, "johndoe", "secret").await.status, 429);
    }
    assert_eq!(
        hasher.started.load(Ordering::SeqCst),
        2,
        "no hash for a 429"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_login_that_waits_past_the_deadline_gets_503_and_its_try_back() {
    let hasher = Gated::closed();
    let layer = tutorial::layer_builder()
        .password_hasher(hasher.clone())
        .login_policy(LoginThrottle::new().per_username_and_address(1, Duration::from_secs(60)))
        .max_concurrent_hashes(1)
        .max_waiting_logins(8, Duration::from_millis(200))
        .build();
    let server = Arc::new(Server::start_with(layer).await);
    let _opener = hasher.open_on_drop();
    let hashing = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { attempt(&server, "user0", "wrong").await.status })
    };
    hasher.until_started(1).await;
    // The gate stays closed until the deadline has passed, whatever the machine's
    // speed. The attempt's one try was reserved, then got no verdict.
    assert_busy(&attempt(&server, "johndoe", "secret").await);
    hasher.open();
    assert_eq!(hashing.await.unwrap(), 400);
    // The try was given back: the limit of 1 is still whole.
    server.login("johndoe", "secret").await;
}

#[tokio::test]
async fn every_refused_login_is_one_info_line_with_address_username_and_why() {
    let captured = Captured::install();
    let throttle = LoginThrottle::new().per_username(1, Duration::from_secs(60));
    let server = Server::start_with(tutorial::layer_builder().login_policy(throttle).build()).await;
    assert_eq!(
        attempt(&server, "carol-log", "pw-Secret-1").await.status,
        400
    );
    assert_eq!(
        attempt(&server, "carol-log", "pw-Secret-2").await.status,
        429
    );
    server.stop().await;

    // Hashed usernames: the same hash for the same name, and never the name.
    let server = Server::start_with(
        tutorial::layer_builder()
            .login_policy(LoginThrottle::new().per_username(1, Duration::from_secs(60)))
            .hash_usernames_in_logs(true)
            .build(),
    )
    .await;
    assert_eq!(attempt(&server, "mallory", "pw-Secret-3").await.status, 400);
    assert_eq!(attempt(&server, "mallory", "pw-Secret-4").await.status, 429);
    server.stop().await;

    // A bad refresh token: logged as a refused login is, with its client.
    let server = with_refresh_tokens().await;
    let prober = server.connecting_from("127.0.0.77");
    assert_eq!(prober.refresh("not-a-refresh-token").await.status, 400);
    server.stop().await;

    // Other tests in this binary log too: keep this test's lines.
    let logs = captured.text();
    let refresh: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("refresh grant refused") && line.contains("127.0.0.77"))
        .collect();
    assert_eq!(refresh.len(), 1, "{logs}");
    assert!(refresh[0].contains(" INFO "), "{}", refresh[0]);
    assert!(
        refresh[0].contains("reason=\"unknown, expired or reused refresh token\""),
        "{}",
        refresh[0]
    );
    assert!(!logs.contains("not-a-refresh-token"), "{logs}");
    let refused: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("login refused"))
        .filter(|line| line.contains("carol-log") || line.contains("username_hash="))
        .collect();
    assert_eq!(refused.len(), 4, "{logs}");
    for line in &refused {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("client=127.0.0.1"), "{line}");
    }
    assert!(
        refused[0].contains(r#"username="carol-log""#),
        "{}",
        refused[0]
    );
    assert!(
        refused[0].contains("reason=\"unknown user or wrong password\""),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains(r#"username="carol-log""#),
        "{}",
        refused[1]
    );
    assert!(
        refused[1].contains("too many failed attempts"),
        "{}",
        refused[1]
    );
    let hash_of = |line: &str| {
        let start = line.find("username_hash=").expect("a hash") + "username_hash=".len();
        line[start..start + 16].to_owned()
    };
    assert_eq!(hash_of(refused[2]), hash_of(refused[3]));
    for secret in [
        "pw-Secret-1",
        "pw-Secret-2",
        "pw-Secret-3",
        "pw-Secret-4",
        "mallory",
    ] {
        assert!(!logs.contains(secret), "logs leak {secret:?}:\n{logs}");
    }
}

#[tokio::test]
async fn axum_apps_served_with_connect_info_are_throttled_per_address() {
    use axum::routing::get;
    let layer = tutorial::layer_builder()
        .login_policy(LoginThrottle::new().per_address(1, Duration::from_secs(60)))
        .build();
    let app = axum::Router::new()
        .route("/users/me", get(|| async { "me" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    let server = Server::client_for(addr);
    assert_eq!(attempt(&server, "a", "wrong").await.status, 400);
    // Another username, the same address: `ConnectInfo` named it.
    assert_eq!(attempt(&server, "b", "wrong").await.status, 429);
}

/// Counts the statuses of `replies`.
fn tally(replies: &[Reply]) -> std::collections::BTreeMap<u16, usize> {
    let mut tally = std::collections::BTreeMap::new();
    for reply in replies {
        *tally.entry(reply.status.as_u16()).or_default() += 1;
    }
    tally
}

#[tokio::test]
async fn sixty_four_concurrent_wrong_passwords_for_one_user_get_five_verdicts() {
    let hasher = Gated::closed();
    let server = Arc::new(
        Server::start_with(
            tutorial::layer_builder()
                .password_hasher(hasher.clone())
                .build(),
        )
        .await,
    );
    let _opener = hasher.open_on_drop();
    // All 64 are sent while the first password check is held at the gate: none
    // has a verdict yet when the others are decided.
    let logins: Vec<_> = (0..64)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { attempt(&server, "johndoe", "wrong").await })
        })
        .collect();
    hasher.until_started(1).await;
    // The refused ones are answered at once (bounded wait: without reservations
    // none would be until the gate opens).
    for _ in 0..1000 {
        if logins.iter().filter(|login| login.is_finished()).count() >= 59 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hasher.open();
    let mut replies = Vec::new();
    for login in logins {
        replies.push(login.await.unwrap());
    }
    assert_eq!(tally(&replies), [(400, 5), (429, 59)].into());
    for reply in &replies {
        match reply.status.as_u16() {
            400 => assert_eq!(reply.body, INVALID_GRANT),
            _ => reply.assert_error(
                429,
                "Too many login attempts, try again later",
                Some("temporarily_unavailable"),
            ),
        }
    }
    assert_eq!(
        hasher.started.load(Ordering::SeqCst),
        5,
        "one hash per verdict"
    );
    assert_throttled(&attempt(&server, "johndoe", "secret").await, WINDOW);
}

#[tokio::test]
async fn a_burst_of_fifty_honest_logins_succeed_or_are_told_to_retry_in_a_second() {
    let server = Arc::new(Server::start().await);
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { attempt(&server, "johndoe", "secret").await })
        })
        .collect();
    let mut retry = 0;
    for login in logins {
        let reply = login.await.unwrap();
        match reply.status.as_u16() {
            200 => {}
            // At most 5 attempts of one user from one address are checked at
            // once; the others hear that they end within a second.
            _ => {
                assert_throttled(&reply, WINDOW);
                assert_eq!(reply.header("retry-after"), Some("1"));
                retry += 1;
            }
        }
    }
    assert!(retry <= 45, "{retry}: at least 5 were checked at once");
    // Successes gave their reservations back: retrying gets everyone in.
    for _ in 0..retry {
        server.login("johndoe", "secret").await;
    }
}

/// The tutorial with refresh tokens, and an address limit of 3.
async fn with_refresh_tokens() -> Server {
    let layer = tutorial::layer_builder()
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .login_policy(LoginThrottle::new().per_address(3, Duration::from_secs(60)))
        .build();
    Server::start_with(layer).await
}

#[tokio::test]
async fn bad_refresh_tokens_count_against_the_address_and_a_throttled_one_gets_429() {
    let server = with_refresh_tokens().await;
    let (_, refresh) = server.login_with_refresh().await;
    let prober = server.connecting_from("127.0.0.2");
    for _ in 0..3 {
        prober.refresh("not-a-refresh-token").await.assert_error(
            400,
            "Invalid refresh token",
            Some("invalid_grant"),
        );
    }
    // Throttled on both grants, even with a good refresh token or password.
    assert_throttled(&prober.refresh(&refresh).await, Duration::from_secs(60));
    assert_throttled(
        &attempt(&prober, "johndoe", "secret").await,
        Duration::from_secs(60),
    );
    // Another address refreshes: the token was not rotated by the refused try.
    server.refresh(&refresh).await.tokens();
    server.stop().await;
}

#[tokio::test]
async fn a_reused_refresh_token_counts_against_the_address() {
    let server = with_refresh_tokens().await;
    let client = server.connecting_from("127.0.0.3");
    for _ in 0..3 {
        let (_, first) = client.login_with_refresh().await;
        let (_, second) = client.refresh(&first).await.tokens();
        client.refresh(&second).await.tokens();
        // Two generations back: reuse, not a retry.
        client.refresh(&first).await.assert_error(
            400,
            "Invalid refresh token",
            Some("invalid_grant"),
        );
    }
    let (_, fresh) = server.login_with_refresh().await;
    assert_throttled(&client.refresh(&fresh).await, Duration::from_secs(60));
    server.stop().await;
}
