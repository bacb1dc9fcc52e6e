//! Feature `metrics` over a real socket: a Prometheus recorder (installed before
//! any layer is built, as the guide asks) counts a known sequence of logins,
//! refresh grants, revocations and guarded requests exactly, per outcome, times
//! the endpoints and the awaited guard lookups, and shows the gauges; no label
//! holds a username, a token or an address.
//!
//! One test: the recorder is global to this binary. Then the tutorial as an
//! operator runs it, `METRICS_ADDR` set, scraped over HTTP (the tutorial binary
//! must have been built with the examples' `metrics` feature, as `cargo test
//! --all-features` does).

mod common;

use std::time::Duration;

use common::{tutorial, tutorial_builder, Server, Stores};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::scope::ScopeRequirement;
use tower_oauth2_password::testing::InsecureFastHasher;
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;

/// The value of the sample `name{labels…}` in Prometheus text, 0 if absent.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            metric == name
                && labels
                    .iter()
                    .all(|(key, value)| rest.contains(&format!(r#"{key}="{value}""#)))
        })
        .map(|line| line.rsplit_once(' ').unwrap().1.parse().expect("a number"))
        .collect();
    assert!(
        samples.len() <= 1,
        "{name} {labels:?} is ambiguous:\n{text}"
    );
    samples.first().copied().unwrap_or(0.0)
}

struct Scrape(String);

impl Scrape {
    fn of(handle: &PrometheusHandle) -> Self {
        Self(handle.render())
    }

    #[track_caller]
    fn expect(&self, name: &str, labels: &[(&str, &str)], wanted: f64) {
        let got = value(&self.0, name, labels);
        assert_eq!(got, wanted, "{name} {labels:?}:\n{}", self.0);
    }
}

fn status_of(reply: common::Reply) -> u16 {
    reply.status.as_u16()
}

#[tokio::test]
async fn each_count_matches_a_known_sequence_of_requests() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this binary");

    // Logins, refresh grants and revocations.
    let endpoint = Server::start_with(
        tutorial::layer_builder()
            .password_hasher(InsecureFastHasher::new())
            // A grace far longer than the test: the second use of a token is
            // the client's retry, the third reuse.
            .refresh_tokens(MemoryRefreshTokenStore::with_retry_grace(
                Duration::from_secs(600),
            ))
            .refuse_inactive_login(true)
            .login_policy(LoginThrottle::new().per_username_and_address(2, Duration::from_secs(60)))
            .build(),
    )
    .await;
    let post = |body: &'static str| endpoint.post_form(body);
    assert_eq!(
        status_of(post("username=johndoe&password=wrong").await),
        400
    );
    let (_, first_refresh) = endpoint.login_with_refresh().await;
    assert_eq!(
        status_of(post("username=alice&password=secret2").await),
        400
    );
    for _ in 0..2 {
        assert_eq!(status_of(post("username=mallory&password=x").await), 400);
    }
    assert_eq!(status_of(post("username=mallory&password=x").await), 429);
    assert_eq!(endpoint.refresh(&first_refresh).await.status, 200);
    assert_eq!(endpoint.refresh(&first_refresh).await.status, 200);
    assert_eq!(endpoint.refresh(&first_refresh).await.status, 400);
    assert_eq!(endpoint.refresh("garbage").await.status, 400);
    let (_, second_refresh) = endpoint.login_with_refresh().await;
    let revoke = format!("token={second_refresh}");
    assert_eq!(endpoint.revoke(&revoke).await.status, 200);
    assert_eq!(endpoint.revoke("token=never-issued").await.status, 200);
    endpoint.stop().await;

    // Guarded requests, ready stores: alice may log in here, and is refused at
    // the route; a scope rule no token meets.
    let guard = Server::start_with(
        tutorial::layer_builder()
            .password_hasher(InsecureFastHasher::new())
            .scope("me", "Read your profile")
            .scope("admin", "Everything")
            .require_scopes("/admin", ScopeRequirement::all(["admin"]))
            .build(),
    )
    .await;
    let john = guard.login("johndoe", "secret").await;
    let alice = guard.login("alice", "secret2").await;
    assert_eq!(guard.me(&john).await.status, 200);
    assert_eq!(guard.me(&john).await.status, 200);
    assert_eq!(guard.me(&alice).await.status, 400);
    assert_eq!(guard.get("/users/me", &[]).await.status, 401);
    assert_eq!(guard.me("not-a-token").await.status, 401);
    assert_eq!(guard.get_as("/admin", &john).await.status, 403);
    let in_url = guard.get("/users/me?access_token=x", &[]).await;
    assert_eq!(in_url.status, 400);
    guard.stop().await;

    // A guard whose token store is awaited: its lookup is timed.
    let awaited = Server::start_with(
        tutorial_builder(Stores::AwaitedTokens)
            .password_hasher(InsecureFastHasher::new())
            .build(),
    )
    .await;
    let token = awaited.login("johndoe", "secret").await;
    assert_eq!(awaited.me(&token).await.status, 200);
    awaited.stop().await;

    let scrape = Scrape::of(&handle);
    let logins = "oauth2_password_logins";
    scrape.expect(logins, &[("outcome", "issued")], 5.0);
    scrape.expect(logins, &[("outcome", "invalid_grant")], 3.0);
    scrape.expect(logins, &[("outcome", "inactive")], 1.0);
    scrape.expect(
        logins,
        &[("outcome", "throttled_username_and_address")],
        1.0,
    );
    scrape.expect(logins, &[("outcome", "queue_full")], 0.0);
    let refresh = "oauth2_password_refresh_grants";
    scrape.expect(refresh, &[("outcome", "rotated")], 1.0);
    scrape.expect(refresh, &[("outcome", "retried_within_grace")], 1.0);
    scrape.expect(refresh, &[("outcome", "reuse_detected")], 1.0);
    scrape.expect(refresh, &[("outcome", "invalid")], 1.0);
    scrape.expect("oauth2_password_revocations", &[("ended", "login")], 1.0);
    scrape.expect("oauth2_password_revocations", &[("ended", "token")], 1.0);
    let guarded = "oauth2_password_guard_requests";
    scrape.expect(guarded, &[("outcome", "passed")], 3.0);
    scrape.expect(guarded, &[("outcome", "inactive")], 1.0);
    scrape.expect(guarded, &[("outcome", "missing")], 1.0);
    scrape.expect(guarded, &[("outcome", "invalid")], 1.0);
    scrape.expect(guarded, &[("outcome", "insufficient_scope")], 1.0);
    scrape.expect(guarded, &[("outcome", "bad_request")], 1.0);
    scrape.expect(guarded, &[("outcome", "store_error")], 0.0);
    // Histograms (summaries without buckets): one sample per answer.
    let duration = "oauth2_password_endpoint_request_duration_count";
    let token_200 = [("endpoint", "token"), ("http_response_status_code", "200")];
    scrape.expect(duration, &token_200, 7.0);
    let revocation_200 = [
        ("endpoint", "revocation"),
        ("http_response_status_code", "200"),
    ];
    scrape.expect(duration, &revocation_200, 2.0);
    scrape.expect(
        "oauth2_password_guard_lookup_duration_count",
        &[("store", "token")],
        1.0,
    );
    scrape.expect("oauth2_password_logins_waiting", &[], 0.0);
    assert!(
        value(
            &scrape.0,
            "oauth2_password_hashing_permit_wait_duration_count",
            &[]
        ) >= 9.0,
        "{}",
        scrape.0
    );
    assert!(
        value(
            &scrape.0,
            "oauth2_password_tokens_live",
            &[("store", "memory_access")]
        ) >= 1.0,
        "{}",
        scrape.0
    );
    for secret in [
        "johndoe",
        "mallory",
        "alice",
        "127.0.0.1",
        &first_refresh,
        &john,
    ] {
        assert!(!scrape.0.contains(secret), "{secret} in\n{}", scrape.0);
    }
}

/// The tutorial binary `cargo test` built beside this test.
fn tutorial_binary() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join("tutorial")
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A child process, killed and reaped on drop (a failed assertion included).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_tutorial_serves_its_counts_at_metrics_addr() {
    let (addr, metrics_addr) = (free_addr(), free_addr());
    let child = std::process::Command::new(tutorial_binary())
        .env_remove("TOKEN_STORE")
        .env_remove("REFRESH_TOKENS")
        .env_remove("AUDIT_LOG")
        .env("ADDR", addr.to_string())
        .env("METRICS_ADDR", metrics_addr.to_string())
        .env("LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tutorial example is built by cargo test");
    let mut child = Killed(child);
    let mut listening = false;
    for _ in 0..400 {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the tutorial stopped ({status}): {stderr} (built without the examples' metrics feature? run `cargo test --all-features`)");
        }
        let up = |at| std::net::TcpStream::connect(at).is_ok();
        if up(addr) && up(metrics_addr) {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        listening,
        "the tutorial did not listen on {addr} and {metrics_addr}"
    );

    let app = Server::client_for(addr);
    let wrong = app.post_form("username=johndoe&password=wrong").await;
    assert_eq!(wrong.status, 400);
    let token = app.login("johndoe", "secret").await;
    assert_eq!(app.me(&token).await.status, 200);
    assert_eq!(app.get("/users/me", &[]).await.status, 401);

    let scrape = Server::client_for(metrics_addr).get("/metrics", &[]).await;
    assert_eq!(scrape.status, 200);
    let text = String::from_utf8(scrape.body.to_vec()).unwrap();
    let scrape = Scrape(text);
    scrape.expect("oauth2_password_logins", &[("outcome", "issued")], 1.0);
    scrape.expect(
        "oauth2_password_logins",
        &[("outcome", "invalid_grant")],
        1.0,
    );
    scrape.expect(
        "oauth2_password_guard_requests",
        &[("outcome", "passed")],
        1.0,
    );
    scrape.expect(
        "oauth2_password_guard_requests",
        &[("outcome", "missing")],
        1.0,
    );
    assert!(
        scrape.0.contains("# TYPE oauth2_password_logins counter"),
        "{}",
        scrape.0
    );
    assert!(
        !scrape.0.contains("johndoe") && !scrape.0.contains(&token),
        "{}",
        scrape.0
    );
}
