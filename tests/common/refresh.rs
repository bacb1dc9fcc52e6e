//! Refresh-token scenarios over real sockets that hold for every refresh store:
//! `tests/refresh.rs` runs them on the memory store, `tests/redis.rs` on Redis.

use std::time::Duration;

use http::StatusCode;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::token::TokenStore;
use tower_oauth2_password::user::UserStore;

use super::{Reply, Server};

/// The idle lifetime the lifetime scenario's servers are built with, and its
/// steps: two refreshes 1.1 s apart, the second past the idle lifetime from the
/// login.
pub const IDLE: Duration = Duration::from_millis(2_000);
/// The absolute lifetime: the third refresh, 1.1 s after the second, is past it.
pub const ABSOLUTE: Duration = Duration::from_millis(2_800);
const STEP: Duration = Duration::from_millis(1_100);

/// `builder` with the lifetimes [`refresh_lifetimes_hold`] expects.
pub fn short_lifetimes<Us: UserStore, Ts: TokenStore>(builder: Builder<Us, Ts>) -> Builder<Us, Ts> {
    builder
        .refresh_token_idle_lifetime(IDLE)
        .refresh_token_absolute_lifetime(ABSOLUTE)
}

#[track_caller]
pub fn assert_invalid_refresh_token(reply: &Reply) {
    reply.assert_error(400, "Invalid refresh token", Some("invalid_grant"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

/// On a server with [`short_lifetimes`]: refreshes slide the idle lifetime, the
/// absolute one ends the login however recently it refreshed, and a login left
/// unused ends after the idle lifetime.
pub async fn refresh_lifetimes_hold(server: &Server) {
    let (_, mut used) = server.login_with_refresh().await;
    let (_, unused) = server.login_with_refresh().await;
    for _ in 0..2 {
        tokio::time::sleep(STEP).await;
        used = server.refresh(&used).await.tokens().1;
    }
    // 2.2 s after the login: the unused one is past its idle lifetime.
    assert_invalid_refresh_token(&server.refresh(&unused).await);
    tokio::time::sleep(STEP).await;
    // 1.1 s after its last refresh, 3.3 s after the login: past the absolute one.
    assert_invalid_refresh_token(&server.refresh(&used).await);
}

/// Presents `token` `n` times at once, spread over `servers`; returns the
/// refresh tokens of the answers that rotated it. Every other answer must be the
/// invalid-grant refusal.
pub async fn present_at_once(servers: &[&Server], token: &str, n: usize) -> Vec<String> {
    let replies =
        futures_util::future::join_all((0..n).map(|i| servers[i % servers.len()].refresh(token)))
            .await;
    let mut rotated = Vec::new();
    for reply in &replies {
        if reply.status == StatusCode::OK {
            rotated.push(reply.tokens().1);
        } else {
            assert_invalid_refresh_token(reply);
        }
    }
    rotated
}
