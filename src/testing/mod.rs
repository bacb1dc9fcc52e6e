//! Feature `testing`: conformance suites for every extension point, and a kit to
//! test a service that uses the layer. Put the feature in `[dev-dependencies]`
//! only.
//!
//! # Conformance suites
//!
//! The behaviour each extension point owes the layer, one rule at a time:
//! [`TokenStoreSuite`], [`RefreshTokenStoreSuite`], [`UserStoreSuite`] (through a
//! [`UserFixture`]), [`LoginPolicySuite`], `JtiDenylistSuite` (with `jwt`),
//! `ReplayStoreSuite` (DPoP proofs, with `dpop`) and [`PasswordHasherSuite`]. The crate's own stores run them, and so should every
//! Redis, SQL, JWT or third-party one. One line per store gives one test per rule,
//! named after it, so a broken store fails by the rules it breaks:
//!
//! ```
//! mod my_token_store {
//!     use tower_oauth2_password::token::memory::MemoryTokenStore;
//!     tower_oauth2_password::token_store_tests!(MemoryTokenStore::new());
//! }
//! mod my_user_store {
//!     use tower_oauth2_password::testing::MemoryUsers;
//!     tower_oauth2_password::user_store_tests!(MemoryUsers::<String>::new());
//! }
//! # fn main() {}
//! ```
//!
//! The macros ([`token_store_tests!`](crate::token_store_tests),
//! [`refresh_token_store_tests!`](crate::refresh_token_store_tests),
//! [`user_store_tests!`](crate::user_store_tests),
//! [`login_policy_tests!`](crate::login_policy_tests),
//! [`jti_denylist_tests!`](crate::jti_denylist_tests), `replay_store_tests!` (with `dpop`),
//! [`password_hasher_tests!`](crate::password_hasher_tests)) write
//! `#[tokio::test]` functions: the crate that invokes them needs `tokio` with the
//! `macros` and `rt` features in its `[dev-dependencies]`. Put each invocation in
//! its own module. Each rule is also a method of its suite, to run one alone;
//! `check` runs every rule and returns the [`BrokenRule`]s, and `run` panics
//! listing them all:
//!
//! ```
//! use tower_oauth2_password::testing::{MemoryUsers, TokenStoreSuite, UserStoreSuite};
//! use tower_oauth2_password::token::memory::MemoryTokenStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! TokenStoreSuite::new().run(&MemoryTokenStore::new()).await;
//! assert!(UserStoreSuite::new().check(&MemoryUsers::<String>::new()).await.is_empty());
//! # }
//! ```
//!
//! What no test from outside can see, and each store must still do: compare
//! token secrets in constant time (the token suite checks that a token with any one
//! character changed, or cut short, or extended, is refused, which catches prefix
//! and truncated comparisons, but not a comparison that returns early), and look
//! tokens up rather than scan.
//!
//! # Testing a service
//!
//! - [`CurrentUser::new`](crate::CurrentUser::new) builds the user a handler
//!   receives, to call the handler without the layer.
//! - [`InsecureFastHasher`] makes each test login cost microseconds (never in
//!   production).
//! - [`issue_token`] gives a test a token for a user without a login.
//! - [`Awaited`] makes any store answer every lookup as a pending future, to run a
//!   service's own tests down the path that real network stores take.
//!
//! `examples/testing.rs` shows each.

use std::future::Future;
use std::ops::Deref;
use std::time::{Duration, SystemTime};

use crate::password::HashedPassword;
use crate::scope::Scopes;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::{
    BearerToken, FamilyId, Grant, IssuedToken, JwkThumbprint, Revocation, TokenTypeHint,
};
use crate::token::store::TokenStore;
use crate::user::store::{Credentials, Principal, UserStore};
use crate::user::subject::Subject;

#[cfg(feature = "jwt")]
pub(crate) mod denylist;
pub(crate) mod fixtures;
pub(crate) mod hasher;
pub(crate) mod issue;
pub(crate) mod macros;
pub(crate) mod policy;
pub(crate) mod refresh;
#[cfg(feature = "dpop")]
pub(crate) mod replay;
pub(crate) mod report;

#[cfg(feature = "jwt")]
pub use denylist::JtiDenylistSuite;
pub use fixtures::{grant_for, MemoryUsers};
pub use hasher::{InsecureFastHasher, PasswordHasherSuite};
pub use issue::issue_token;
pub use policy::LoginPolicySuite;
pub use refresh::RefreshTokenStoreSuite;
#[cfg(feature = "dpop")]
pub use replay::ReplayStoreSuite;
pub use report::BrokenRule;
use report::Report;

/// The [`TokenStore`] conformance suite.
#[derive(Debug, Clone)]
pub struct TokenStoreSuite {
    leeway: Duration,
}

impl Default for TokenStoreSuite {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenStoreSuite {
    /// The suite with no expiry leeway.
    pub fn new() -> Self {
        Self {
            leeway: Duration::ZERO,
        }
    }

    /// Accepts tokens up to `leeway` past their expiry (clock skew allowance of
    /// stateless tokens). The expiry check waits that much longer.
    pub fn expiry_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Runs every rule against `store`; panics listing every rule broken.
    pub async fn run<Ts: TokenStore>(&self, store: &Ts) {
        report::fail_on("TokenStoreSuite", &self.check(store).await);
    }

    /// Runs every rule against `store` and returns the broken ones.
    pub async fn check<Ts: TokenStore>(&self, store: &Ts) -> Vec<BrokenRule> {
        let mut report = Report::default();
        crate::__token_store_rules!(__each_rule!(report, self, store));
        report.into_broken()
    }

    /// A token resolves to the grant it was issued for: subject, scopes, stamp and
    /// expiry (rounded down to the second at most).
    pub async fn issued_tokens_resolve_to_their_grant<Ts: TokenStore>(&self, store: &Ts) {
        issued_tokens_resolve_to_their_grant(store).await;
    }

    /// Tokens are distinct, RFC 6750 `b64token` text, and long enough to hold 128
    /// random bits.
    pub async fn tokens_are_distinct<Ts: TokenStore>(&self, store: &Ts) {
        tokens_are_distinct(store).await;
    }

    /// A token with any one character changed, cut short, extended or upper-cased,
    /// and foreign bytes, resolve to nothing.
    pub async fn foreign_and_altered_tokens_are_unknown<Ts: TokenStore>(&self, store: &Ts) {
        foreign_and_altered_tokens_are_unknown(store).await;
    }

    /// A revoked token resolves to nothing, revoking it again is no error, the
    /// user's other tokens go on, and unknown tokens revoke without error
    /// (RFC 7009).
    pub async fn revoked_tokens_are_unknown<Ts: TokenStore>(&self, store: &Ts) {
        revoked_tokens_are_unknown(store).await;
    }

    /// Revoking a refresh family ends its access tokens, and one issued for it
    /// later, and nothing else (RFC 9700 §4.14.2).
    pub async fn a_revoked_family_ends_its_tokens<Ts: TokenStore>(&self, store: &Ts) {
        a_revoked_family_ends_its_tokens(store).await;
    }

    /// A token issued for a grant bound to a client key (DPoP:
    /// `Grant::key_binding`) resolves bound to that key, in a refresh family or
    /// not; an unbound grant's token resolves unbound (RFC 9449 §6).
    pub async fn the_client_key_binding_round_trips<Ts: TokenStore>(&self, store: &Ts) {
        the_client_key_binding_round_trips(store).await;
    }

    /// An expired token resolves to nothing (past the suite's leeway); one that
    /// has not expired resolves. Waits about a second.
    pub async fn expired_tokens_are_unknown<Ts: TokenStore>(&self, store: &Ts) {
        let long_ago = SystemTime::now() - Duration::from_secs(3600) - self.leeway;
        let expired = issue(store, grant("expired", long_ago)).await;
        assert_eq!(
            resolve(store, &expired).await,
            None,
            "a token that expired an hour ago must not resolve"
        );

        let soon = SystemTime::now() + Duration::from_secs(1);
        let token = issue(store, grant("expiring", soon)).await;
        assert!(
            resolve(store, &token).await.is_some(),
            "a token must resolve until it expires"
        );
        let expires_at = soon.max(token.expires_at);
        let past = expires_at + self.leeway + Duration::from_millis(200);
        if let Ok(wait) = past.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        assert_eq!(
            resolve(store, &token).await,
            None,
            "a token must not resolve once it has expired"
        );
    }
}

/// The client key the suites bind tokens to: RFC 7638 §3.1's example thumbprint.
fn client_key() -> JwkThumbprint {
    JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        .expect("RFC 7638's example is a thumbprint")
}

fn grant(subject: &str, expires_at: SystemTime) -> Grant {
    Grant::new(subject, Scopes::empty(), expires_at)
}

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

async fn issue<Ts: TokenStore>(store: &Ts, grant: Grant) -> IssuedToken {
    match store.issue(grant).await {
        Ok(issued) => issued,
        Err(error) => panic!("issue failed: {error}"),
    }
}

async fn resolve<Ts: TokenStore>(store: &Ts, issued: &IssuedToken) -> Option<Grant> {
    resolve_bytes(store, issued.access_token.as_str().as_bytes()).await
}

async fn resolve_bytes<Ts: TokenStore>(store: &Ts, token: &[u8]) -> Option<Grant> {
    match store.resolve(BearerToken::new(token)).await {
        Ok(found) => found,
        Err(error) => panic!("resolve failed on a working store: {error}"),
    }
}

async fn issued_tokens_resolve_to_their_grant<Ts: TokenStore>(store: &Ts) {
    let wanted = in_an_hour();
    let long_subject = "ürsula.müller-lüdenscheidt@example.com";
    for (subject, scopes, stamp) in [
        ("johndoe", Scopes::empty(), 0),
        (
            long_subject,
            ["me", "items"].into_iter().collect(),
            u64::MAX,
        ),
    ] {
        let sent = Grant::new(subject, scopes, wanted).with_stamp(stamp);
        let issued = issue(store, sent.clone()).await;
        assert!(
            issued.expires_at <= wanted && issued.expires_at + Duration::from_secs(1) >= wanted,
            "issue may round the expiry down to the second, not move it: asked {wanted:?}, got {:?}",
            issued.expires_at
        );
        let Some(got) = resolve(store, &issued).await else {
            panic!("a token just issued must resolve");
        };
        assert_eq!(got.subject, sent.subject, "the subject must round-trip");
        assert_eq!(got.scopes, sent.scopes, "the scopes must round-trip");
        assert_eq!(got.stamp, sent.stamp, "the stamp must round-trip");
        let drift = match got.expires_at.duration_since(issued.expires_at) {
            Ok(later) => later,
            Err(earlier) => earlier.duration(),
        };
        assert!(
            drift <= Duration::from_secs(1),
            "the resolved expiry must be the issued one"
        );
    }
}

async fn tokens_are_distinct<Ts: TokenStore>(store: &Ts) {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..64 {
        let issued = issue(store, grant_for("johndoe")).await;
        let token = issued.access_token.as_str().to_owned();
        assert!(
            token.len() >= 22,
            "a token shorter than 22 characters cannot hold 128 random bits"
        );
        assert!(
            BearerToken::from(token.as_str()).to_str().is_some(),
            "tokens must be RFC 6750 b64token text, or clients cannot send them"
        );
        assert!(seen.insert(token), "two grants were issued the same token");
    }
}

async fn foreign_and_altered_tokens_are_unknown<Ts: TokenStore>(store: &Ts) {
    let issued = issue(store, grant_for("johndoe")).await;
    let token = issued.access_token.as_str().as_bytes();
    for candidate in altered(token) {
        assert_eq!(
            resolve_bytes(store, &candidate).await,
            None,
            "a token that differs from an issued one ({} bytes, the issued one {}) must not resolve",
            candidate.len(),
            token.len()
        );
    }
    assert!(
        resolve(store, &issued).await.is_some(),
        "the issued token still resolves"
    );
}

/// Tokens that are not `token`: each character changed, cut short, extended,
/// upper-cased, and a few foreign ones.
fn altered(token: &[u8]) -> Vec<Vec<u8>> {
    let mut altered = Vec::new();
    for at in 0..token.len() {
        let mut changed = token.to_vec();
        changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
        altered.push(changed);
    }
    altered.push(token[..token.len() - 1].to_vec());
    altered.push([token, b"A"].concat());
    altered.push(token.to_ascii_uppercase());
    for foreign in [
        &b""[..],
        b"A",
        b"\xff\xfe\x00",
        b"not a token",
        &[b'A'; 4096],
    ] {
        altered.push(foreign.to_vec());
    }
    altered.retain(|candidate| candidate != token);
    altered
}

async fn revoked_tokens_are_unknown<Ts: TokenStore>(store: &Ts) {
    let kept = issue(store, grant_for("johndoe")).await;
    let revoked = issue(store, grant_for("johndoe")).await;
    let token = BearerToken::from(revoked.access_token.as_str());
    match store.revoke(token, Some(TokenTypeHint::AccessToken)).await {
        Ok(Revocation::Revoked) => {
            assert_eq!(
                resolve(store, &revoked).await,
                None,
                "a token the store says it revoked must not resolve"
            );
            let again = store.revoke(token, None).await;
            assert!(
                matches!(again, Ok(Revocation::Revoked)),
                "revoking twice is not an error (RFC 7009)"
            );
        }
        Ok(Revocation::Unsupported) => {}
        Err(error) => panic!("revoke failed on a working store: {error}"),
    }
    assert!(
        resolve(store, &kept).await.is_some(),
        "revoking one token must leave the user's other tokens alone"
    );
    for unknown in [&b"unknown-token"[..], b"\xff"] {
        let outcome = store.revoke(BearerToken::new(unknown), None).await;
        assert!(
            outcome.is_ok(),
            "revoking an unknown or malformed token is not an error (RFC 7009)"
        );
    }
}

/// RFC 9700 §4.14.2 / RFC 7009 §2.1: ending a refresh family ends every access
/// token issued from it, and one still being issued for it, and nothing else.
async fn a_revoked_family_ends_its_tokens<Ts: TokenStore>(store: &Ts) {
    let family = FamilyId::random().expect("randomness");
    let other = FamilyId::random().expect("randomness");
    let in_family = |subject| grant_for(subject).with_family(family);
    let first = issue(store, in_family("johndoe")).await;
    let second = issue(store, in_family("johndoe")).await;
    let elsewhere = issue(store, grant_for("johndoe").with_family(other)).await;
    let alone = issue(store, grant_for("johndoe")).await;
    for (token, of) in [
        (&first, Some(family)),
        (&elsewhere, Some(other)),
        (&alone, None),
    ] {
        let resolved = resolve(store, token).await.map(|grant| grant.family);
        assert_eq!(
            resolved,
            Some(of),
            "a token must resolve to its grant's family: the revocation endpoint ends the family of an access token it is given"
        );
    }
    match store.revoke_family(&family, in_an_hour()).await {
        Ok(Revocation::Revoked) => {}
        Ok(Revocation::Unsupported) => {
            let token = BearerToken::from(first.access_token.as_str());
            let single = store.revoke(token, None).await;
            assert!(
                matches!(single, Ok(Revocation::Unsupported)),
                "a store that revokes tokens must revoke families too (RFC 9700 §4.14.2)"
            );
            return;
        }
        Err(error) => panic!("revoke_family failed on a working store: {error}"),
    }
    for token in [&first, &second] {
        assert_eq!(
            resolve(store, token).await,
            None,
            "a token of a revoked family must not resolve"
        );
    }
    let late = issue(store, in_family("johndoe")).await;
    assert_eq!(
        resolve(store, &late).await,
        None,
        "a token issued for a family after it was revoked (a refresh racing the reuse that ended it) must not resolve"
    );
    for token in [&elsewhere, &alone] {
        assert!(
            resolve(store, token).await.is_some(),
            "revoking a family must leave the user's other tokens alone"
        );
    }
    let again = store.revoke_family(&family, in_an_hour()).await;
    assert!(
        matches!(again, Ok(Revocation::Revoked)),
        "revoking a family twice is not an error"
    );
}

async fn the_client_key_binding_round_trips<Ts: TokenStore>(store: &Ts) {
    let key = client_key();
    let family = FamilyId::random().expect("randomness");
    for (sent, what) in [
        (grant_for("bound").with_key_binding(key), "a bound token"),
        (
            grant_for("bound").with_family(family).with_key_binding(key),
            "a bound token of a refresh family",
        ),
    ] {
        let issued = issue(store, sent).await;
        let Some(got) = resolve(store, &issued).await else {
            panic!("{what} just issued must resolve");
        };
        assert_eq!(
            got.key_binding,
            Some(key),
            "{what} must resolve bound to its client key"
        );
    }
    for sent in [
        grant_for("unbound"),
        grant_for("unbound").with_family(family),
    ] {
        let issued = issue(store, sent).await;
        let got = resolve(store, &issued).await.map(|grant| grant.key_binding);
        assert_eq!(
            got,
            Some(None),
            "an unbound token must resolve, bound to no key"
        );
    }
}

/// How the [`UserStoreSuite`] adds and changes users: the store's own admin
/// operations (`INSERT`/`UPDATE` for SQL, methods for the memory store).
///
/// Every username the suite uses is unique to its run, so fixtures may share a
/// database with other tests.
pub trait UserFixture: Send + Sync {
    /// The store under test.
    type Store: UserStore;

    /// The store under test.
    fn store(&self) -> &Self::Store;

    /// Adds an active user.
    fn add(
        &self,
        username: &str,
        password_hash: HashedPassword,
        scopes: Scopes,
    ) -> impl Future<Output = ()> + Send;

    /// Disables a user.
    fn disable(&self, username: &str) -> impl Future<Output = ()> + Send;

    /// Removes a user.
    fn remove(&self, username: &str) -> impl Future<Output = ()> + Send;

    /// Changes a user's password hash (a password change: sessions end).
    fn set_password(
        &self,
        username: &str,
        password_hash: HashedPassword,
    ) -> impl Future<Output = ()> + Send;

    /// Changes the scopes a user may be granted.
    fn set_scopes(&self, username: &str, scopes: Scopes) -> impl Future<Output = ()> + Send;
}

/// The [`UserStore`] conformance suite, run through a [`UserFixture`].
#[derive(Debug, Clone, Default)]
pub struct UserStoreSuite {
    _private: (),
}

/// Two valid PHC strings (their passwords do not matter: the suite hashes nothing).
const HASH_A: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3VpdGUtc2FsdC1h$8ir7Ztk/IojpdcE8yoCHKqrcCyzDpaxwCokZAUV+d6c";
const HASH_B: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3VpdGUtc2FsdC1i$8ir7Ztk/IojpdcE8yoCHKqrcCyzDpaxwCokZAUV+d6c";

impl UserStoreSuite {
    /// The suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every rule through `fixture`; panics listing every rule broken.
    pub async fn run<F: UserFixture>(&self, fixture: &F) {
        report::fail_on("UserStoreSuite", &self.check(fixture).await);
    }

    /// Runs every rule through `fixture` and returns the broken ones.
    pub async fn check<F: UserFixture>(&self, fixture: &F) -> Vec<BrokenRule> {
        let mut report = Report::default();
        crate::__user_store_rules!(__each_rule!(report, self, fixture));
        report.into_broken()
    }

    /// An unknown username has no credentials, an unknown subject no principal.
    pub async fn unknown_users_have_nothing<F: UserFixture>(&self, fixture: &F) {
        let store = fixture.store();
        let username = format!("suite-{}-nobody", run_id());
        assert!(
            credentials(store, &username).await.is_none(),
            "an unknown username has no credentials"
        );
        assert!(
            principal(store, &Subject::from(username.as_str()))
                .await
                .is_none(),
            "an unknown subject has no principal"
        );
    }

    /// A user just added has their hash and scopes, is active, and the guard
    /// (principal) and the login (credentials) see the same stamp.
    pub async fn added_users_round_trip<F: UserFixture>(&self, fixture: &F) {
        let (username, found) = added(fixture).await;
        assert_eq!(found.password_hash, phc(HASH_A), "the hash must round-trip");
        assert_eq!(found.scopes, suite_scopes(), "the scopes must round-trip");
        assert!(found.active, "a user just added is active");
        let first = principal(fixture.store(), &found.subject)
            .await
            .expect("the canonical subject finds the user");
        assert!(first.active, "a user just added is active");
        assert_eq!(
            first.stamp, found.stamp,
            "the guard and the login must see the same stamp"
        );
        fixture.remove(&username).await;
    }

    /// Renewing a hash (`update_password_hash`) is no password change: the stamp
    /// stays, and a renewal for a hash no longer stored changes nothing.
    pub async fn renewing_a_hash_keeps_the_stamp<F: UserFixture>(&self, fixture: &F) {
        let store = fixture.store();
        let (username, found) = added(fixture).await;
        let subject = found.subject.clone();
        let outcome = store
            .update_password_hash(&subject, &phc(HASH_A), phc(HASH_B))
            .await;
        assert!(outcome.is_ok(), "update_password_hash failed");
        let renewed = credentials(store, &username).await.expect("still there");
        assert!(
            renewed.password_hash == phc(HASH_B) || renewed.password_hash == phc(HASH_A),
            "a renewed hash is the new one (or, for stores that do not renew, the old)"
        );
        assert_eq!(
            renewed.stamp, found.stamp,
            "renewing a hash keeps the stamp"
        );
        let current = renewed.password_hash.clone();
        let stale = store
            .update_password_hash(&subject, &phc(HASH_STALE), phc(HASH_A))
            .await;
        assert!(stale.is_ok(), "update_password_hash failed");
        assert_eq!(
            credentials(store, &username).await.map(|c| c.password_hash),
            Some(current),
            "a renewal for a hash that is no longer stored changes nothing"
        );
        fixture.remove(&username).await;
    }

    /// A password change changes the stamp: the user's tokens end.
    pub async fn a_password_change_changes_the_stamp<F: UserFixture>(&self, fixture: &F) {
        let (username, found) = added(fixture).await;
        fixture.set_password(&username, phc(HASH_B)).await;
        let changed = stamp(fixture.store(), &found.subject).await;
        assert_ne!(
            changed, found.stamp,
            "a password change must change the stamp"
        );
        fixture.remove(&username).await;
    }

    /// Taking a scope away changes the stamp: tokens that hold it end.
    pub async fn taking_a_scope_away_changes_the_stamp<F: UserFixture>(&self, fixture: &F) {
        let (username, found) = added(fixture).await;
        fixture
            .set_scopes(&username, ["me"].into_iter().collect())
            .await;
        let narrowed = stamp(fixture.store(), &found.subject).await;
        assert_ne!(
            narrowed, found.stamp,
            "taking a scope away must change the stamp"
        );
        fixture.remove(&username).await;
    }

    /// A disabled user is inactive for the guard and at login.
    pub async fn disabled_users_are_inactive<F: UserFixture>(&self, fixture: &F) {
        let store = fixture.store();
        let (username, found) = added(fixture).await;
        fixture.disable(&username).await;
        let disabled = principal(store, &found.subject).await.expect("still there");
        assert!(
            !disabled.active,
            "a disabled user is inactive for the guard"
        );
        let disabled = credentials(store, &username).await.expect("still there");
        assert!(!disabled.active, "a disabled user is inactive at login");
        fixture.remove(&username).await;
    }

    /// A removed user's tokens find no user, and they cannot log in.
    pub async fn removed_users_are_gone<F: UserFixture>(&self, fixture: &F) {
        let store = fixture.store();
        let (username, found) = added(fixture).await;
        fixture.remove(&username).await;
        assert!(
            principal(store, &found.subject).await.is_none(),
            "a removed user's tokens must find no user"
        );
        assert!(
            credentials(store, &username).await.is_none(),
            "a removed user cannot log in"
        );
    }

    /// A user removed and added again takes none of their earlier stamps, or
    /// their old tokens would come back.
    pub async fn a_user_added_again_gets_a_new_stamp<F: UserFixture>(&self, fixture: &F) {
        let store = fixture.store();
        let (username, found) = added(fixture).await;
        let subject = found.subject;
        fixture.set_password(&username, phc(HASH_B)).await;
        let changed = stamp(store, &subject).await;
        fixture
            .set_scopes(&username, ["me"].into_iter().collect())
            .await;
        let narrowed = stamp(store, &subject).await;
        fixture.remove(&username).await;
        fixture.add(&username, phc(HASH_A), Scopes::empty()).await;
        let again = stamp(store, &subject).await;
        assert!(
            again != found.stamp && again != changed && again != narrowed,
            "a user removed and added again must not take an earlier stamp: old tokens would come back"
        );
        fixture.remove(&username).await;
    }
}

fn suite_scopes() -> Scopes {
    ["me", "items"].into_iter().collect()
}

/// Adds a user unique to this call, with [`HASH_A`] and the suite's scopes;
/// returns the username and the credentials the store then gives.
async fn added<F: UserFixture>(fixture: &F) -> (String, Credentials) {
    let username = format!("suite-{}-johndoe", run_id());
    fixture.add(&username, phc(HASH_A), suite_scopes()).await;
    let found = credentials(fixture.store(), &username)
        .await
        .expect("a user just added has credentials");
    (username, found)
}

/// Valid, and stored by no user.
const HASH_STALE: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3VpdGUtc2FsdC1j$8ir7Ztk/IojpdcE8yoCHKqrcCyzDpaxwCokZAUV+d6c";

fn phc(hash: &str) -> HashedPassword {
    HashedPassword::parse(hash).expect("the suite's hashes are valid PHC strings")
}

/// A number unique to this run of the suite.
fn run_id() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness for the run id");
    u64::from_ne_bytes(bytes)
}

async fn credentials<Us: UserStore>(store: &Us, username: &str) -> Option<Credentials> {
    match store.credentials(username).await {
        Ok(found) => found,
        Err(error) => panic!("credentials failed on a working store: {error}"),
    }
}

async fn principal<Us: UserStore>(store: &Us, subject: &Subject) -> Option<Principal<Us::User>> {
    match store.principal(subject).await {
        Ok(found) => found,
        Err(error) => panic!("principal failed on a working store: {error}"),
    }
}

async fn stamp<Us: UserStore>(store: &Us, subject: &Subject) -> u64 {
    principal(store, subject)
        .await
        .expect("the user is still there")
        .stamp
}

/// A store that answers every lookup as a pending future (after yielding once to
/// the runtime), as a network store does: to run tests down the awaited path.
/// [`Awaited::passthrough`] answers as the inner store does, so one test can run
/// both ways with one type.
///
/// It dereferences to the inner store, for its admin methods.
#[derive(Debug, Clone, Default)]
pub struct Awaited<S> {
    inner: S,
    awaited: bool,
}

impl<S> Awaited<S> {
    /// `inner`, answering every lookup as pending.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            awaited: true,
        }
    }

    /// `inner`, answering as it does (ready or pending).
    pub fn passthrough(inner: S) -> Self {
        Self {
            inner,
            awaited: false,
        }
    }

    fn defer<T: Send + 'static>(&self, lookup: Lookup<T>) -> Lookup<T> {
        if !self.awaited {
            return lookup;
        }
        Lookup::pending(async move {
            tokio::task::yield_now().await;
            lookup.await
        })
    }
}

impl<S> Deref for Awaited<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S: TokenStore> TokenStore for Awaited<S> {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send {
        self.inner.issue(grant)
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.defer(self.inner.resolve(token))
    }

    fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        self.inner.revoke(token, hint)
    }

    fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        self.inner.revoke_family(family, until)
    }
}

#[cfg(feature = "dpop")]
impl<S: crate::dpop::ReplayStore> crate::dpop::ReplayStore for Awaited<S> {
    fn remember(
        &self,
        proof: &crate::dpop::ProofId,
        until: SystemTime,
    ) -> Lookup<crate::dpop::Sighting> {
        self.defer(self.inner.remember(proof, until))
    }
}

impl<S: UserStore> UserStore for Awaited<S> {
    type User = S::User;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<S::User>>> {
        self.defer(self.inner.principal(subject))
    }

    fn credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send {
        self.inner.credentials(username)
    }

    fn canonical_username<'a>(&self, username: &'a str) -> std::borrow::Cow<'a, str> {
        self.inner.canonical_username(username)
    }

    fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.update_password_hash(subject, old, new)
    }
}
