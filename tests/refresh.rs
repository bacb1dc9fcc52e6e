//! Refresh tokens (`grant_type=refresh_token`, rotation, reuse detection) and the
//! revocation endpoint (RFC 7009), over a real socket.

mod common;

use std::time::{Duration, SystemTime};

use common::refresh::{
    assert_invalid_refresh_token, present_at_once, refresh_lifetimes_hold, short_lifetimes,
};
use common::{
    a_family_holds_at_most, ending_a_family_ends_its_access_tokens, tutorial_builder, Reply,
    Server, Stores,
};
use http::StatusCode;
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::token::memory::{MemoryRefreshTokenStore, MemoryTokenStore};
use tower_oauth2_password::token::{
    BearerToken, FamilyId, Grant, IssuedToken, Revocation, TokenStore, TokenTypeHint,
};

/// The tutorial with refresh tokens, and a retry grace of `grace`.
/// No login policy: these tests present many used and unknown refresh tokens
/// from one address, which the throttle would answer with 429 (tests/throttle.rs
/// tests that).
async fn start(stores: Stores, grace: Duration) -> Server {
    let layer = tutorial_builder(stores)
        .refresh_tokens(MemoryRefreshTokenStore::with_retry_grace(grace))
        .no_login_policy()
        .build();
    Server::start_with(layer).await
}

async fn a_refresh_rotates_and_its_access_token_works(stores: Stores) {
    let server = start(stores, Duration::ZERO).await;
    let (access, first) = server.login_with_refresh().await;
    let (new_access, second) = server.refresh(&first).await.tokens();
    assert_ne!(new_access, access);
    assert_ne!(second, first);
    let me = server.me(&new_access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "johndoe");
    // The login's access token lives on until it expires or is revoked.
    assert_eq!(server.me(&access).await.status, StatusCode::OK);
    let (_, third) = server.refresh(&second).await.tokens();
    assert_ne!(third, second);
}

async fn a_reused_refresh_token_ends_the_login(stores: Stores) {
    let server = start(stores, Duration::ZERO).await;
    let (_, first) = server.login_with_refresh().await;
    let (_, second) = server.refresh(&first).await.tokens();
    // The thief (or the client) presents the used token: the family is revoked,
    // so the newest token dies too.
    assert_invalid_refresh_token(&server.refresh(&first).await);
    assert_invalid_refresh_token(&server.refresh(&second).await);
    // Another login is untouched.
    let (_, other) = server.login_with_refresh().await;
    server.refresh(&other).await.tokens();
}

async fn a_retry_within_the_grace_is_not_reuse(stores: Stores) {
    let server = start(stores, Duration::from_secs(60)).await;
    let (_, first) = server.login_with_refresh().await;
    let (_, lost) = server.refresh(&first).await.tokens();
    // The answer was lost; the client sends the identical request again.
    let (_, retried) = server.refresh(&first).await.tokens();
    assert_ne!(lost, retried);
    server.refresh(&retried).await.tokens();
}

async fn tokens_are_refused_in_each_others_place(stores: Stores) {
    let server = start(stores, Duration::ZERO).await;
    let (access, refresh_token) = server.login_with_refresh().await;
    server.me(&refresh_token).await.assert_invalid_token();
    assert_invalid_refresh_token(&server.refresh(&access).await);
    for garbage in ["", "x", "%FF%FE", &"A".repeat(48)] {
        let reply = server.refresh(garbage).await;
        if garbage.is_empty() {
            reply.assert_error(
                400,
                "Missing form field: refresh_token",
                Some("invalid_request"),
            );
        } else {
            assert_refused(&reply);
        }
    }
}

async fn revoking_an_access_token_logs_it_out(stores: Stores) {
    let server = start(stores, Duration::ZERO).await;
    let (access, refresh_token) = server.login_with_refresh().await;
    let reply = server
        .revoke(&format!("token={access}&token_type_hint=access_token"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    server.me(&access).await.assert_invalid_token();
    // A logout ends the login (RFC 7009 §2.1 "MAY"): its refresh token too.
    assert_invalid_refresh_token(&server.refresh(&refresh_token).await);
}

async fn revoking_a_refresh_token_ends_its_family(stores: Stores) {
    let server = start(stores, Duration::ZERO).await;
    let (_, first) = server.login_with_refresh().await;
    let (_, second) = server.refresh(&first).await.tokens();
    // No hint: the endpoint looks in both stores.
    assert_eq!(
        server.revoke(&format!("token={second}")).await.status,
        StatusCode::OK
    );
    assert_invalid_refresh_token(&server.refresh(&second).await);
}

async fn unknown_tokens_are_revoked_with_200(stores: Stores) {
    let server = start(stores, Duration::ZERO).await;
    for form in [
        "token=unknown",
        "token=unknown&token_type_hint=refresh_token",
        "token=x&token_type_hint=something_else",
        "token=%20%21~",
    ] {
        let reply = server.revoke(form).await;
        assert_eq!(reply.status, StatusCode::OK, "{form}: {:?}", reply.body);
    }
    // A form must be UTF-8, a token field included.
    server.revoke("token=%FF%FE").await.assert_error(
        400,
        "Form field is not valid UTF-8",
        Some("invalid_request"),
    );
}

for_each_kind_of_store!(
    a_refresh_rotates_and_its_access_token_works,
    a_reused_refresh_token_ends_the_login,
    a_retry_within_the_grace_is_not_reuse,
    tokens_are_refused_in_each_others_place,
    revoking_an_access_token_logs_it_out,
    revoking_a_refresh_token_ends_its_family,
    unknown_tokens_are_revoked_with_200,
);

/// Malformed text is a bad form (not UTF-8) or an unknown refresh token.
#[track_caller]
fn assert_refused(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "body: {:?}",
        reply.body
    );
    let error = &reply.json()["error"];
    assert!(
        error == "invalid_grant" || error == "invalid_request",
        "body: {:?}",
        reply.body
    );
}

#[tokio::test]
async fn a_password_change_ends_refreshing() {
    let layer = tutorial_builder(Stores::Ready)
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .build();
    let users = layer.user_store().clone();
    let server = Server::start_with(layer.clone()).await;
    let (_, refresh_token) = server.login_with_refresh().await;
    let hash: HashedPassword = layer.password_hasher().hash("new secret").unwrap();
    users.set_password("johndoe", hash);
    assert_invalid_refresh_token(&server.refresh(&refresh_token).await);
}

/// The tutorial with scopes `me`, `items` and `admin` (johndoe may have the
/// first two) and refresh tokens with a retry grace of `grace`.
async fn start_with_scopes(grace: Duration) -> Server {
    let layer = tutorial_builder(Stores::Ready)
        .scope("me", "Read your profile")
        .scope("items", "Read items")
        .scope("admin", "Everything")
        .refresh_tokens(MemoryRefreshTokenStore::with_retry_grace(grace))
        .build();
    layer
        .user_store()
        .set_scopes("johndoe", ["me", "items"].into_iter().collect());
    Server::start_with(layer).await
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scopes_but_not_widen_them() {
    let server = start_with_scopes(Duration::from_secs(10)).await;
    let reply = server
        .post_form("username=johndoe&password=secret&scope=me+items")
        .await;
    let (_, first) = reply.tokens();
    // Without `scope`: the login's scopes.
    let reply = server.refresh(&first).await;
    assert_eq!(reply.json()["scope"], "me items");
    let (_, second) = reply.tokens();
    // Narrower: granted as asked (no `scope` in the answer: it is what was asked).
    let reply = server
        .post_form(&format!(
            "grant_type=refresh_token&refresh_token={second}&scope=me"
        ))
        .await;
    assert!(
        reply.json().get("scope").is_none(),
        "body: {:?}",
        reply.body
    );
    let (_, third) = reply.tokens();
    // Wider than the login: refused.
    let reply = server
        .post_form(&format!(
            "grant_type=refresh_token&refresh_token={third}&scope=me+admin"
        ))
        .await;
    reply.assert_error(400, "Scope not granted at login", Some("invalid_scope"));
}

#[tokio::test]
async fn without_refresh_tokens_the_grant_is_unsupported() {
    let server = Server::start_with(tutorial_builder(Stores::Ready).build()).await;
    let reply = server.post_form("username=johndoe&password=secret").await;
    assert!(reply.json().get("refresh_token").is_none());
    server.refresh("anything").await.assert_error(
        400,
        "Unsupported grant_type: only \"password\" is supported",
        Some("unsupported_grant_type"),
    );
    let server = start(Stores::Ready, Duration::ZERO).await;
    server
        .post_form("grant_type=client_credentials")
        .await
        .assert_error(
            400,
            "Unsupported grant_type: only \"password\" and \"refresh_token\" are supported",
            Some("unsupported_grant_type"),
        );
}

#[tokio::test]
async fn the_revocation_endpoint_checks_its_request() {
    let server = start(Stores::Ready, Duration::ZERO).await;
    let reply = server.get("/revoke", &[]).await;
    reply.assert_error(405, "Method Not Allowed", None);
    assert_eq!(reply.header("allow"), Some("POST"));
    server
        .revoke("token_type_hint=access_token")
        .await
        .assert_error(400, "Missing form field: token", Some("invalid_request"));
    let reply = server
        .post("/revoke", "application/json", b"{\"token\":\"x\"}".to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let too_long = format!("token={}", "a".repeat(5000));
    server.revoke(&too_long).await.assert_error(
        400,
        "Form field too long: token (at most 4096 bytes)",
        Some("invalid_request"),
    );
}

#[tokio::test]
async fn the_revocation_url_can_move_or_go() {
    let layer = tutorial_builder(Stores::Ready)
        .revocation_url("logout")
        .build();
    assert_eq!(layer.revocation_url(), Some("/logout"));
    let server = Server::start_with(layer).await;
    let access = server.login("johndoe", "secret").await;
    let reply = server
        .post(
            "/logout",
            "application/x-www-form-urlencoded",
            format!("token={access}").into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    server.me(&access).await.assert_invalid_token();

    let layer = tutorial_builder(Stores::Ready)
        .without_revocation_url()
        .build();
    assert_eq!(layer.revocation_url(), None);
    let server = Server::start_with(layer).await;
    // Guarded like any path of the app.
    server
        .revoke("token=x")
        .await
        .assert_error(401, "Not authenticated", None);
}

/// A refresh asking for more than the login got is refused before the token is
/// rotated: the same token still refreshes afterwards, after the retry grace too
/// (it used to be rotated, the new token lost, and its next use taken as reuse).
#[tokio::test]
async fn a_refresh_asking_for_a_wider_scope_leaves_the_token_as_it_was() {
    let grace = Duration::from_millis(200);
    let server = start_with_scopes(grace).await;
    let reply = server
        .post_form("username=johndoe&password=secret&scope=me+items")
        .await;
    let (_, token) = reply.tokens();
    for wide in ["admin", "me+admin", "me+items+admin"] {
        let reply = server
            .post_form(&format!(
                "grant_type=refresh_token&refresh_token={token}&scope={wide}"
            ))
            .await;
        reply.assert_error(400, "Scope not granted at login", Some("invalid_scope"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    tokio::time::sleep(grace * 2).await;
    let reply = server.refresh(&token).await;
    assert_eq!(reply.json()["scope"], "me items");
    let (access, next) = reply.tokens();
    assert_eq!(server.me(&access).await.status, StatusCode::OK);
    server.refresh(&next).await.tokens();
}

/// `refresh_token_idle_lifetime(2 s)` and `refresh_token_absolute_lifetime(2.8 s)`:
/// refreshes slide the idle lifetime (at 1.1 s and 2.2 s), the absolute one ends
/// the login at 3.3 s, an unused login ends at 2.2 s.
#[tokio::test]
async fn refresh_tokens_end_after_their_idle_and_absolute_lifetimes() {
    let layer = short_lifetimes(tutorial_builder(Stores::Ready))
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .build();
    refresh_lifetimes_hold(&Server::start_with(layer).await).await;
}

/// 64 requests presenting one token at once, within the retry grace: one rotation
/// and one retry; the third use is reuse, which ends the family, so the two new
/// tokens are refused too.
#[tokio::test]
async fn one_token_presented_64_times_at_once_rotates_once_and_retries_once() {
    let server = start(Stores::Ready, Duration::from_secs(60)).await;
    let (_, token) = server.login_with_refresh().await;
    let rotated = present_at_once(&[&server], &token, 64).await;
    assert_eq!(rotated.len(), 2, "a rotation and its one retry");
    for token in &rotated {
        assert_invalid_refresh_token(&server.refresh(token).await);
    }
}

/// With at most 3 live families per user, a fourth login ends the first one.
#[tokio::test]
async fn a_fourth_login_ends_the_first_when_the_cap_is_three() {
    let layer = tutorial_builder(Stores::Ready)
        .refresh_tokens(MemoryRefreshTokenStore::new().with_max_families_per_user(3))
        .build();
    let server = Server::start_with(layer).await;
    let mut logins = Vec::new();
    for _ in 0..4 {
        logins.push(server.login_with_refresh().await.1);
    }
    assert_invalid_refresh_token(&server.refresh(&logins[0]).await);
    for token in &logins[1..] {
        server.refresh(token).await.tokens();
    }
}

#[tokio::test]
async fn ending_a_family_ends_its_access_tokens_in_the_memory_store() {
    for stores in [Stores::Ready, Stores::Awaited] {
        let server = start(stores, Duration::ZERO).await;
        ending_a_family_ends_its_access_tokens(&server, &server).await;
    }
}

#[tokio::test]
async fn the_memory_store_keeps_a_familys_newest_access_tokens() {
    let layer = tutorial_builder(Stores::Ready)
        .token_store(MemoryTokenStore::new().with_max_tokens_per_family(3))
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .build();
    let server = Server::start_with(layer).await;
    a_family_holds_at_most(&server, 3, 12).await;
    // The default: 10.
    let server = start(Stores::Ready, Duration::ZERO).await;
    a_family_holds_at_most(&server, 10, 24).await;
}

/// A thief racing the client on a two-thread runtime: this fails without the
/// store refusing tokens issued for a family that ended meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_token_outlives_a_reuse_it_raced() {
    for _ in 0..32 {
        let server = std::sync::Arc::new(start(Stores::Awaited, Duration::ZERO).await);
        common::no_access_token_outlives_a_reuse_it_raced(&server, &server).await;
    }
}

/// The memory token store, whose first family revocation fails as a store that
/// is briefly unreachable would.
struct FirstFamilyRevocationFails {
    inner: MemoryTokenStore,
    failed: std::sync::atomic::AtomicBool,
}

impl TokenStore for FirstFamilyRevocationFails {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        self.inner.issue(grant).await
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.inner.resolve(token)
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        self.inner.revoke(token, hint).await
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new("unreachable, once"));
        }
        self.inner.revoke_family(family, until).await
    }
}

/// Revoking a refresh token while the access store fails answers 503, and the
/// client's retry still ends the login's access tokens: the access tokens are
/// ended before the refresh token, which a retry would no longer find.
#[tokio::test]
async fn a_revocation_that_failed_half_way_is_finished_by_its_retry() {
    let layer = tutorial_builder(Stores::Ready)
        .token_store(FirstFamilyRevocationFails {
            inner: MemoryTokenStore::new(),
            failed: Default::default(),
        })
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .build();
    let server = Server::start_with(layer).await;
    let (access, refresh) = server.login_with_refresh().await;
    let form = format!("token={refresh}&token_type_hint=refresh_token");
    server.revoke(&form).await.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
    assert_eq!(server.me(&access).await.status, StatusCode::OK);
    let retried = server.revoke(&form).await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    server.me(&access).await.assert_invalid_token();
    assert_invalid_refresh_token(&server.refresh(&refresh).await);
}
