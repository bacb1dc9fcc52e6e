//! No password, token or hash in the logs at TRACE, nor in the `Debug` output of
//! any public type the crate hands out during a login, a refresh, a guarded
//! request and revocations (the stores and the login policy here record what
//! they are given).

mod common;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::{tutorial, Captured, Server};
use http::{Request, Response};
use http_body_util::Full;
use tower::ServiceExt;
use tower_oauth2_password::endpoint::{
    LoginAttempt, LoginDecision, LoginPolicy, LoginThrottle, PeerAddr, TrustedProxies,
};
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::token::memory::{MemoryRefreshTokenStore, MemoryTokenStore};
use tower_oauth2_password::token::{
    BearerToken, FamilyId, Grant, IssuedToken, Revocation, TokenStore, TokenTypeHint,
};
use tower_oauth2_password::user::{Credentials, Principal, Subject, UserStore};
use tower_oauth2_password::{
    Argon2Hasher, CurrentUser, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

/// Every `Debug` rendering made during the test.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn debug(&self, value: &dyn std::fmt::Debug) {
        self.0.lock().unwrap().push(format!("{value:?}"));
        self.0.lock().unwrap().push(format!("{value:#?}"));
    }

    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

struct RecordingPolicy(LoginThrottle, Seen);

impl LoginPolicy for RecordingPolicy {
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
        self.1.debug(attempt);
        let decision = self.0.check(attempt);
        self.1.debug(&decision);
        decision
    }

    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        self.1.debug(attempt);
        self.0.failed(attempt)
    }

    fn succeeded(&self, attempt: &LoginAttempt<'_>, subject: &Subject) -> Lookup<()> {
        self.1.debug(subject);
        self.0.succeeded(attempt, subject)
    }
}

struct RecordingTokens(MemoryTokenStore, Seen);

impl TokenStore for RecordingTokens {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        self.1.debug(&grant);
        let issued = self.0.issue(grant).await;
        self.1.debug(&issued);
        if let Ok(issued) = &issued {
            self.1.debug(&issued.access_token);
        }
        issued
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.1.debug(&token);
        let found = self.0.resolve(token);
        self.1.debug(&found);
        found
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        self.1.debug(&token);
        let revoked = self.0.revoke(token, hint).await;
        self.1.debug(&revoked);
        revoked
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        self.1.debug(family);
        self.0.revoke_family(family, until).await
    }
}

struct RecordingUsers(MemoryUserStore<tutorial::User>, Seen);

impl UserStore for RecordingUsers {
    type User = tutorial::User;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<tutorial::User>>> {
        let found = self.0.principal(subject).into_ready();
        if let Ok(Ok(found)) = &found {
            self.1.debug(found);
        }
        match found {
            Ok(answer) => Lookup::ready(answer),
            Err(pending) => pending,
        }
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        let found = self.0.credentials(username).await;
        self.1.debug(&found);
        found
    }
}

const PASSWORD: &str = "pw-Kq3-unique-secret";

#[tokio::test]
async fn no_secret_in_trace_logs_or_in_the_debug_of_any_public_type() {
    let captured = Captured::install();
    let seen = Seen::default();

    let hasher = Argon2Hasher::new();
    let hash = hasher.hash(PASSWORD).unwrap();
    let user = tutorial::User {
        username: "dave".into(),
        email: "dave@example.com".into(),
        full_name: "Dave".into(),
        disabled: false,
    };
    let stored = StoredUser::new(user, hash.clone()).with_scopes(["me"]);
    seen.debug(&stored);
    let users = MemoryUserStore::new().with_user("dave", stored);
    seen.debug(&users);
    let builder = OAuth2PasswordLayer::builder(RecordingUsers(users, seen.clone()))
        .token_store(RecordingTokens(MemoryTokenStore::new(), seen.clone()))
        .login_policy(RecordingPolicy(LoginThrottle::new(), seen.clone()))
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .trusted_proxies(TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap())
        .scope("me", "Read yourself.");
    seen.debug(&builder);
    let layer = builder.build();
    seen.debug(&layer);
    seen.debug(&hasher);
    seen.debug(&hash);

    // Over a real socket: a wrong password, a login, a guarded request.
    let server = Server::start_with(layer.clone()).await;
    let wrong = server
        .post_form("username=dave&password=pw-Wrong-unique")
        .await;
    assert_eq!(wrong.status, 400);
    let login = server
        .post_form(&format!("username=dave&password={PASSWORD}&scope=me"))
        .await;
    assert_eq!(login.status, 200);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let first_refresh = login.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&token).await.status, 200);
    // A refresh: the refresh token rotates, and a new access token comes.
    let refreshed = server
        .post_form(&format!(
            "grant_type=refresh_token&refresh_token={first_refresh}"
        ))
        .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);
    let second_access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_refresh = refreshed.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Revocation at the endpoint (RFC 7009): the refresh token's family ends.
    let revoke = |token: String| {
        let server = &server;
        async move {
            server
                .post(
                    "/revoke",
                    "application/x-www-form-urlencoded",
                    format!("token={token}").into_bytes(),
                )
                .await
                .status
        }
    };
    assert_eq!(revoke(second_refresh.clone()).await, 200);
    assert_eq!(revoke(second_access.clone()).await, 200);
    assert_eq!(server.me(&second_access).await.status, 401);
    // The family's first access token ended with it: a new login goes on.
    let first_token = token;
    assert_eq!(server.me(&first_token).await.status, 401);
    let login = server
        .post_form(&format!("username=dave&password={PASSWORD}&scope=me"))
        .await;
    let token = login.json()["access_token"].as_str().unwrap().to_owned();

    // In process, to see what a handler sees.
    let handler_seen = seen.clone();
    let app = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(move |request: Request<Full<bytes::Bytes>>| {
            let seen = handler_seen.clone();
            async move {
                let user = request.extensions().get::<CurrentUser<tutorial::User>>();
                seen.debug(&user);
                seen.debug(&request.extensions().get::<Scopes>());
                Ok::<_, std::convert::Infallible>(Response::new(Full::<bytes::Bytes>::default()))
            }
        });
    seen.debug(&app);
    let mut request = Request::get("/users/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr("10.1.2.3:4000".parse().unwrap()));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    seen.debug(&response);

    // Revocation, as an app does it on logout.
    let revoked = layer
        .token_store()
        .revoke(token.as_str().into(), None)
        .await;
    assert_eq!(revoked.unwrap(), Revocation::Revoked);
    assert_eq!(server.me(&token).await.status, 401);
    server.stop().await;

    let debug = seen.all();
    let logs = captured.text();
    // The recording worked: the user and the login were seen.
    assert!(debug.contains("LoginAttempt"), "{debug}");
    assert!(debug.contains("dave@example.com"), "{debug}");
    assert!(logs.contains("login refused"), "{logs}");
    for secret in [
        PASSWORD,
        "pw-Wrong-unique",
        &token,
        &token[..22],
        &token[22..],
        &first_token,
        &first_refresh,
        &second_refresh,
        &second_access,
        hash.as_str(),
        "$argon2",
    ] {
        assert!(!debug.contains(secret), "Debug shows {secret:?}:\n{debug}");
        assert!(!logs.contains(secret), "logs show {secret:?}:\n{logs}");
    }
}
