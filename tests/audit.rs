//! Audit events over a real socket: a scripted session (failed, succeeded,
//! rehashed, inactive, throttled, refresh reuse, revocations) gives its events
//! in order to the layer's sink, with the client's address, which limit
//! refused, the reused login's family; hashed usernames reach every sink as
//! hashes; and the default sink keeps the `login refused` lines.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{tutorial, Server};
use tower_oauth2_password::audit::{AuditEvent, AuditUser, LoginFailure, ThrottleLimit};
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::testing::InsecureFastHasher;
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
use tower_oauth2_password::token::FamilyId;

/// An event as the test keeps it: owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Succeeded(User, Option<IpAddr>),
    Failed(User, LoginFailure),
    Inactive(User),
    Throttled(Option<User>, ThrottleLimit),
    RefreshRefused(Option<IpAddr>),
    Reused(User, FamilyId),
    Revoked(Option<FamilyId>),
    Rehashed(User),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum User {
    Name(String),
    Hashed(u64),
}

fn user(user: &AuditUser<'_>) -> User {
    match *user {
        AuditUser::Name(name) => User::Name(name.to_owned()),
        AuditUser::Hashed(hash) => User::Hashed(hash),
        _ => panic!("a new kind of username"),
    }
}

/// The binary's one log capture (a global subscriber), for the tests that read logs.
fn captured() -> &'static common::Captured {
    static CAPTURED: std::sync::OnceLock<common::Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(common::Captured::install)
}

fn name(name: &str) -> User {
    User::Name(name.to_owned())
}

/// A sink that keeps every event.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<Seen>>>);

impl Collected {
    fn sink(&self) -> impl Fn(&AuditEvent<'_>) + Send + Sync + 'static {
        let events = Arc::clone(&self.0);
        move |event: &AuditEvent<'_>| {
            let seen = match event {
                AuditEvent::LoginSucceeded { user: u, client } => Seen::Succeeded(user(u), *client),
                AuditEvent::LoginFailed {
                    user: u, reason, ..
                } => Seen::Failed(user(u), *reason),
                AuditEvent::InactiveUserRefused { user: u, .. } => Seen::Inactive(user(u)),
                AuditEvent::Throttled { user: u, limit, .. } => {
                    Seen::Throttled(u.as_ref().map(user), *limit)
                }
                AuditEvent::RefreshRefused { client } => Seen::RefreshRefused(*client),
                AuditEvent::RefreshReuseDetected {
                    user: u, family, ..
                } => Seen::Reused(user(u), *family),
                AuditEvent::TokenRevoked { family, .. } => Seen::Revoked(*family),
                AuditEvent::PasswordRehashed { user: u } => Seen::Rehashed(user(u)),
                _ => panic!("an event this test does not know: {event:?}"),
            };
            events.lock().unwrap().push(seen);
        }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Waits for the background rehash's event (a few ms; the loop is a bound,
    /// not a timing assertion).
    async fn until(&self, wanted: &Seen) {
        for _ in 0..500 {
            if self.0.lock().unwrap().contains(wanted) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {wanted:?} in {:?}", self.0.lock().unwrap());
    }
}

fn family_of(refresh_token: &str) -> FamilyId {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(refresh_token)
        .expect("base64url refresh token");
    FamilyId::from_bytes(bytes[..16].try_into().expect("16 bytes of family"))
}

#[tokio::test]
async fn a_scripted_session_gives_its_events_in_order() {
    let events = Collected::default();
    let layer = tutorial::layer_builder()
        // The tutorial's hashes are stronger: every first login renews them.
        .password_hasher(InsecureFastHasher::new())
        // Every second use is reuse: no retry grace.
        .refresh_tokens(MemoryRefreshTokenStore::with_retry_grace(Duration::ZERO))
        .refuse_inactive_login(true)
        .login_policy(LoginThrottle::new().per_username_and_address(2, Duration::from_secs(60)))
        .audit_sink(events.sink())
        .build();
    let server = Server::start_with(layer).await;
    let local: IpAddr = "127.0.0.1".parse().unwrap();

    let wrong = server.post_form("username=johndoe&password=wrong").await;
    assert_eq!(wrong.status, 400);
    let (_, first_refresh) = server.login_with_refresh().await;
    events.until(&Seen::Rehashed(name("johndoe"))).await;
    assert_eq!(
        events.take(),
        [
            Seen::Failed(name("johndoe"), LoginFailure::InvalidCredentials),
            Seen::Succeeded(name("johndoe"), Some(local)),
            Seen::Rehashed(name("johndoe")),
        ]
    );

    // The right password of a disabled user: answered as a wrong one.
    let alice = server.post_form("username=alice&password=secret2").await;
    assert_eq!(alice.status, 400);
    for password in ["a", "b", "c"] {
        server
            .post_form(&format!("username=mallory&password={password}"))
            .await;
    }
    let third = server.post_form("username=mallory&password=d").await;
    assert_eq!(third.status, 429);

    // A refresh, then the replaced token again: the login ends.
    let rotated = server.refresh(&first_refresh).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let reused = server.refresh(&first_refresh).await;
    assert_eq!(reused.status, 400);
    let family = family_of(&first_refresh);

    // Logging out: a live login's refresh token, then a token nobody issued.
    let (_, second_refresh) = server.login_with_refresh().await;
    assert_eq!(
        server
            .revoke(&format!("token={second_refresh}"))
            .await
            .status,
        200
    );
    assert_eq!(server.revoke("token=never-issued").await.status, 200);

    assert_eq!(
        events.take(),
        [
            Seen::Inactive(name("alice")),
            Seen::Failed(name("mallory"), LoginFailure::InvalidCredentials),
            Seen::Failed(name("mallory"), LoginFailure::InvalidCredentials),
            Seen::Throttled(Some(name("mallory")), ThrottleLimit::UsernameAndAddress),
            Seen::Throttled(Some(name("mallory")), ThrottleLimit::UsernameAndAddress),
            Seen::Reused(name("johndoe"), family),
            Seen::RefreshRefused(Some(local)),
            Seen::Succeeded(name("johndoe"), Some(local)),
            Seen::Revoked(Some(family_of(&second_refresh))),
            Seen::Revoked(None),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn hashed_usernames_reach_every_sink_as_the_same_hash() {
    let events = Collected::default();
    let layer = tutorial::layer_builder()
        .password_hasher(InsecureFastHasher::new())
        .hash_usernames_in_logs(true)
        .audit_sink(events.sink())
        .build();
    let server = Server::start_with(layer).await;
    for _ in 0..2 {
        let reply = server.post_form("username=eve-typed-this&password=x").await;
        assert_eq!(reply.status, 400);
    }
    server.login("johndoe", "secret").await;
    let seen = events.take();
    server.stop().await;

    let hashes: Vec<u64> = seen
        .iter()
        .filter_map(|event| match event {
            Seen::Failed(User::Hashed(hash), LoginFailure::InvalidCredentials) => Some(*hash),
            _ => None,
        })
        .collect();
    assert_eq!(hashes.len(), 2, "{seen:?}");
    assert_eq!(hashes[0], hashes[1]);
    let Seen::Succeeded(User::Hashed(johndoe), _) = &seen[2] else {
        panic!("a hashed success: {seen:?}");
    };
    assert_ne!(*johndoe, hashes[0]);
    let shown = format!("{seen:?}");
    assert!(
        !shown.contains("eve-typed-this") && !shown.contains("johndoe"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_default_sink_logs_structured_lines() {
    let captured = captured();
    let layer = tutorial::layer_builder()
        .password_hasher(InsecureFastHasher::new())
        .login_policy(LoginThrottle::new().per_username(1, Duration::from_secs(60)))
        .build();
    let server = Server::start_with(layer).await;
    server.post_form("username=trudy-log&password=x").await;
    assert_eq!(
        server
            .post_form("username=trudy-log&password=y")
            .await
            .status,
        429
    );
    assert_eq!(server.revoke("token=never-issued").await.status, 200);
    server.stop().await;

    let logs = captured.text();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("trudy-log"))
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(
        lines[0].contains(" INFO ") && lines[0].contains("login refused"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(r#"reason="unknown user or wrong password""#),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(r#"limit="username""#), "{}", lines[1]);
    assert!(lines[1].contains("retry_after="), "{}", lines[1]);
    assert!(logs.contains("token revoked"), "{logs}");
    assert!(!logs.contains("never-issued"), "{logs}");
}

/// The Redis throttle's script names the key that refused (by its index): each
/// kind is told apart as in memory.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_throttle_in_redis_names_the_limit_too() {
    let prefix = common::redis::Prefix::new("audit-limit");
    let captured = captured();
    let events = Collected::default();
    let throttle = LoginThrottle::new()
        .per_username(1, Duration::from_secs(60))
        .per_address(2, Duration::from_secs(60))
        .in_redis(prefix.connection());
    let layer = tutorial::layer_builder()
        .password_hasher(InsecureFastHasher::new())
        .login_policy(throttle)
        .audit_sink(events.sink())
        .build();
    let server = Server::start_with(layer).await;
    let from = server.connecting_from("127.0.0.9");
    for username in ["zed", "zed", "yan", "xia"] {
        from.post_form(&format!("username={username}&password=x"))
            .await;
    }
    server.stop().await;
    assert_eq!(
        events.take(),
        [
            Seen::Failed(name("zed"), LoginFailure::InvalidCredentials),
            Seen::Throttled(Some(name("zed")), ThrottleLimit::Username),
            Seen::Failed(name("yan"), LoginFailure::InvalidCredentials),
            Seen::Throttled(Some(name("xia")), ThrottleLimit::Address),
        ]
    );
    // Decided in Redis, not by the memory fallback.
    assert!(
        !captured.text().contains("Redis unavailable"),
        "{}",
        captured.text()
    );
    assert!(!prefix.keys().is_empty());
}
