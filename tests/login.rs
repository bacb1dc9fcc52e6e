//! The token endpoint and the store API: canonical subjects, rehash on login, equal
//! work for every failure, the hashing limit, the login policy, and what a token
//! store chooses at issue (expiry, refresh token).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{tutorial, Server};
use tower_oauth2_password::endpoint::{LoginAttempt, LoginDecision, LoginPolicy};
use tower_oauth2_password::password::{HashedPassword, PasswordError, Verification};
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::token::memory::MemoryTokenStore;
use tower_oauth2_password::token::{
    BearerToken, FamilyId, Grant, IssuedToken, RefreshToken, Revocation, TokenStore, TokenTypeHint,
};
use tower_oauth2_password::user::{Credentials, Principal, Subject, UserStore};
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

/// What a [`Counting`] hasher saw.
#[derive(Default)]
struct Counts {
    verifies: AtomicUsize,
    dummies: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// Argon2id with cheap parameters, counting its calls and how many run at once.
#[derive(Clone)]
struct Counting {
    argon2: Argon2Hasher,
    counts: Arc<Counts>,
    /// Held inside each verification, so that verifications the limit does not
    /// hold back overlap for sure.
    pause: Duration,
}

impl Counting {
    fn new(pause: Duration) -> Self {
        Self {
            argon2: Argon2Hasher::with_params(1024, 1, 1).unwrap(),
            counts: Arc::default(),
            pause,
        }
    }

    fn verifies(&self) -> usize {
        self.counts.verifies.load(Ordering::SeqCst)
    }

    fn dummies(&self) -> usize {
        self.counts.dummies.load(Ordering::SeqCst)
    }
}

impl PasswordHasher for Counting {
    fn hash(&self, password: &str) -> Result<HashedPassword, PasswordError> {
        self.argon2.hash(password)
    }

    fn verify(&self, password: &str, hash: &HashedPassword) -> Result<Verification, PasswordError> {
        let counts = &self.counts;
        counts.verifies.fetch_add(1, Ordering::SeqCst);
        let running = counts.running.fetch_add(1, Ordering::SeqCst) + 1;
        counts.peak.fetch_max(running, Ordering::SeqCst);
        std::thread::sleep(self.pause);
        let verification = self.argon2.verify(password, hash);
        counts.running.fetch_sub(1, Ordering::SeqCst);
        verification
    }

    fn verify_dummy(&self, password: &str) {
        self.counts.dummies.fetch_add(1, Ordering::SeqCst);
        self.argon2.verify_dummy(password);
    }
}

fn model(username: &str) -> tutorial::User {
    tutorial::User {
        username: username.into(),
        email: format!("{username}@example.com"),
        full_name: username.into(),
        disabled: false,
    }
}

/// `johndoe` / `secret`, hashed by `hasher`.
fn users(hasher: &impl PasswordHasher) -> MemoryUserStore<tutorial::User> {
    let hash = hasher.hash("secret").unwrap();
    MemoryUserStore::new().with_user("johndoe", StoredUser::new(model("johndoe"), hash))
}

const INVALID_GRANT: &str =
    r#"{"detail":"Incorrect username or password","error":"invalid_grant"}"#;

#[tokio::test]
async fn every_failure_costs_one_verification() {
    let hasher = Counting::new(Duration::ZERO);
    let users = users(&hasher);
    // A record whose hash cannot be checked: no salt, no output.
    let broken = HashedPassword::parse("$argon2id$v=19$m=1024,t=1,p=1").unwrap();
    users.insert("broken", StoredUser::new(model("broken"), broken));
    let layer = OAuth2PasswordLayer::builder(users)
        .password_hasher(hasher.clone())
        .build();
    let server = Server::start_with(layer).await;

    for (form, verifies, dummies) in [
        ("username=johndoe&password=wrong", 1, 0),
        ("username=nobody&password=wrong", 1, 1),
        ("username=broken&password=wrong", 2, 2),
    ] {
        let reply = server.post_form(form).await;
        assert_eq!(reply.status, 400, "{form}");
        assert_eq!(reply.body, INVALID_GRANT, "{form}: one answer for all");
        assert_eq!(
            (hasher.verifies(), hasher.dummies()),
            (verifies, dummies),
            "{form}: a failure without a real verification does the dummy one"
        );
    }
}

#[tokio::test]
async fn logins_queue_for_the_hashing_limit() {
    let hasher = Counting::new(Duration::from_millis(20));
    let layer = OAuth2PasswordLayer::builder(users(&hasher))
        .password_hasher(hasher.clone())
        .max_concurrent_hashes(1)
        // The queue, not the throttle (which checks 5 of one user's attempts
        // from one address at once).
        .no_login_policy()
        .build();
    let server = Arc::new(Server::start_with(layer).await);
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { server.login("johndoe", "secret").await })
        })
        .collect();
    for login in logins {
        login.await.expect("every queued login succeeds");
    }
    assert_eq!(hasher.verifies(), 8);
    assert_eq!(
        hasher.counts.peak.load(Ordering::SeqCst),
        1,
        "one verification at a time"
    );
}

/// Usernames without regard to case; the subject is the stored, lower-case name.
struct CaseInsensitive(MemoryUserStore<tutorial::User>);

impl UserStore for CaseInsensitive {
    type User = tutorial::User;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<tutorial::User>>> {
        self.0.principal(subject)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.0.credentials(&username.to_lowercase()).await
    }
}

#[tokio::test]
async fn tokens_name_the_stored_subject_not_the_typed_one() {
    let hasher = Counting::new(Duration::ZERO);
    let layer = OAuth2PasswordLayer::builder(CaseInsensitive(users(&hasher)))
        .password_hasher(hasher)
        .build();
    let server = Server::start_with(layer.clone()).await;
    for typed in ["JohnDoe", "JOHNDOE", "johndoe"] {
        let token = server.login(typed, "secret").await;
        let grant = layer
            .token_store()
            .resolve(token.as_str().into())
            .await
            .unwrap()
            .expect("a live token");
        assert_eq!(grant.subject, "johndoe", "typed {typed}");
        assert_eq!(server.me(&token).await.json()["username"], "johndoe");
    }
}

#[tokio::test]
async fn an_outdated_hash_is_renewed_after_a_login() {
    let old = Argon2Hasher::with_params(512, 1, 1).unwrap();
    let users = users(&old);
    let current = Counting::new(Duration::ZERO);
    let layer = OAuth2PasswordLayer::builder(users.clone())
        .password_hasher(current.clone())
        .build();
    let server = Server::start_with(layer).await;
    let hash = || async {
        let found = users.credentials("johndoe").await.unwrap().unwrap();
        found.password_hash.as_str().to_owned()
    };
    let before = hash().await;
    assert!(before.contains("m=512,"));

    assert_eq!(
        server
            .post_form("username=johndoe&password=wrong")
            .await
            .status,
        400
    );
    let token = server.login("johndoe", "secret").await;
    // Renewed in the background: wait for it, do not time it.
    let mut renewed = hash().await;
    for _ in 0..200 {
        if renewed != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        renewed = hash().await;
    }
    assert!(
        renewed.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{renewed}"
    );
    assert_eq!(
        server.me(&token).await.status,
        200,
        "a renewed hash is no password change: the session goes on"
    );
    assert_eq!(
        current.verify("secret", &HashedPassword::parse(&renewed).unwrap()),
        Ok(Verification::Match)
    );
    let again = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&again).await.status, 200);
}

/// Refuses a username after two failures in a row; records everything it hears.
#[derive(Default)]
struct TwoStrikes {
    failures: Mutex<Vec<String>>,
    successes: Mutex<Vec<String>>,
}

impl TwoStrikes {
    fn failures_of(&self, username: &str) -> usize {
        let failures = self.failures.lock().unwrap();
        failures.iter().filter(|name| *name == username).count()
    }
}

impl LoginPolicy for TwoStrikes {
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
        let decision = if self.failures_of(attempt.username()) >= 2 {
            LoginDecision::refuse(Duration::from_millis(1500))
        } else {
            LoginDecision::Allow
        };
        Lookup::ready(Ok(decision))
    }

    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        self.failures
            .lock()
            .unwrap()
            .push(attempt.username().to_owned());
        Lookup::ready(Ok(()))
    }

    fn succeeded(&self, attempt: &LoginAttempt<'_>, subject: &Subject) -> Lookup<()> {
        let mut failures = self.failures.lock().unwrap();
        failures.retain(|name| name != attempt.username());
        self.successes.lock().unwrap().push(subject.to_string());
        Lookup::ready(Ok(()))
    }
}

#[tokio::test]
async fn a_login_policy_refuses_before_any_hash() {
    let hasher = Counting::new(Duration::ZERO);
    let policy = Arc::new(TwoStrikes::default());
    let layer = OAuth2PasswordLayer::builder(users(&hasher))
        .password_hasher(hasher.clone())
        .login_policy(Arc::clone(&policy))
        .build();
    let server = Server::start_with(layer).await;

    // Unknown users and wrong passwords count alike.
    for form in [
        "username=nobody&password=x",
        "username=nobody&password=x",
        "username=johndoe&password=x",
    ] {
        assert_eq!(server.post_form(form).await.body, INVALID_GRANT);
    }
    assert_eq!(policy.failures_of("nobody"), 2);
    let verified = hasher.verifies() + hasher.dummies();

    let reply = server.post_form("username=nobody&password=x").await;
    reply.assert_error(
        429,
        "Too many login attempts, try again later",
        Some("temporarily_unavailable"),
    );
    assert_eq!(reply.header("retry-after"), Some("2"), "rounded up");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        hasher.verifies() + hasher.dummies(),
        verified,
        "no hash for a refused attempt"
    );

    // Another username is not affected, and a success clears its count.
    server.login("johndoe", "secret").await;
    assert_eq!(policy.failures_of("johndoe"), 0);
    assert_eq!(*policy.successes.lock().unwrap(), ["johndoe"]);
}

/// Memory tokens, with a shorter expiry than asked and a refresh token: what a
/// store chooses at issue reaches the client.
struct Choosy(MemoryTokenStore);

impl TokenStore for Choosy {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        let mut grant = grant;
        grant.expires_at = SystemTime::now() + Duration::from_secs(60);
        let issued = self.0.issue(grant).await?;
        Ok(issued.with_refresh_token(RefreshToken::new("refresh-me".into())))
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.0.resolve(token)
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        self.0.revoke(token, hint).await
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        self.0.revoke_family(family, until).await
    }
}

#[tokio::test]
async fn the_store_chooses_the_expiry_and_may_add_a_refresh_token() {
    let hasher = Counting::new(Duration::ZERO);
    let layer = OAuth2PasswordLayer::builder(users(&hasher))
        .password_hasher(hasher)
        .token_store(Choosy(MemoryTokenStore::new()))
        .build();
    let server = Server::start_with(layer).await;
    let reply = server.post_form("username=johndoe&password=secret").await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["expires_in"], 60);
    assert_eq!(json["refresh_token"], "refresh-me");
    let token = json["access_token"].as_str().unwrap();
    assert_eq!(server.me(token).await.status, 200);
}

#[test]
#[should_panic(expected = "token_lifetime must be more than zero and at most one year")]
fn an_endless_token_lifetime_is_refused_when_configured() {
    let _ = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
        .token_lifetime(Duration::MAX);
}

#[test]
#[should_panic(expected = "token_lifetime must be more than zero")]
fn a_zero_token_lifetime_is_refused_when_configured() {
    let _ = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
        .token_lifetime(Duration::ZERO);
}

#[tokio::test]
async fn a_disabled_users_login_can_be_refused_like_a_wrong_password() {
    let hasher = Counting::new(Duration::ZERO);
    let users = users(&hasher);
    let hash = hasher.hash("secret2").unwrap();
    users.insert("alice", StoredUser::new(model("alice"), hash).disabled());
    let layer = OAuth2PasswordLayer::builder(users)
        .password_hasher(hasher.clone())
        .refuse_inactive_login(true)
        .build();
    let server = Server::start_with(layer).await;
    for form in [
        "username=alice&password=secret2",
        "username=alice&password=wrong",
    ] {
        let reply = server.post_form(form).await;
        assert_eq!(reply.status, 400, "{form}");
        assert_eq!(reply.body, INVALID_GRANT, "{form}: one answer for both");
    }
    assert_eq!(
        (hasher.verifies(), hasher.dummies()),
        (2, 0),
        "the password is checked either way"
    );
    server.login("johndoe", "secret").await;
}
