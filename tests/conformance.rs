//! The conformance suites (`testing` feature) on the crate's own stores, answering at
//! once and awaited; and on broken stores, which the suites must catch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tower_oauth2_password::endpoint::{
    LoginAttempt, LoginDecision, LoginPolicy, LoginThrottle,
    DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS,
};
use tower_oauth2_password::password::{HashedPassword, PasswordError, Verification};
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::store::{Lookup, StoreError};
#[cfg(feature = "jwt")]
use tower_oauth2_password::testing::JtiDenylistSuite;
use tower_oauth2_password::testing::{
    Awaited, InsecureFastHasher, LoginPolicySuite, MemoryUsers, PasswordHasherSuite,
    RefreshTokenStoreSuite, TokenStoreSuite, UserFixture, UserStoreSuite,
};
#[cfg(feature = "jwt")]
use tower_oauth2_password::token::jwt::{JtiDenylist, MemoryJtiDenylist};
use tower_oauth2_password::token::memory::{MemoryRefreshTokenStore, MemoryTokenStore};
use tower_oauth2_password::token::{
    BearerToken, FamilyId, Grant, IssuedToken, RefreshLifetimes, RefreshToken, RefreshTokenStore,
    Revocation, Rotation, TokenStore, TokenTypeHint,
};
use tower_oauth2_password::token::{BoxRefreshTokenStore, BoxTokenStore};
use tower_oauth2_password::user::{BoxUserStore, UserStore};
use tower_oauth2_password::{Argon2Hasher, PasswordHasher};
use tower_oauth2_password::{MemoryUserStore, StoredUser};

mod memory_token_store {
    use super::*;
    tower_oauth2_password::token_store_tests!(MemoryTokenStore::new());
}

mod memory_token_store_awaited {
    use super::*;
    tower_oauth2_password::token_store_tests!(Awaited::new(MemoryTokenStore::new()));
}

mod memory_refresh_token_store {
    use super::*;
    const GRACE: Duration = Duration::from_secs(1);
    tower_oauth2_password::refresh_token_store_tests!(
        MemoryRefreshTokenStore::with_retry_grace(GRACE),
        RefreshTokenStoreSuite::new(GRACE)
    );
}

mod memory_refresh_token_store_without_grace_and_a_small_cap {
    // With no grace, a second use is always reuse: the retry rule passes at once.
    use super::*;
    tower_oauth2_password::refresh_token_store_tests!(
        MemoryRefreshTokenStore::with_retry_grace(Duration::ZERO).with_max_families_per_user(2),
        RefreshTokenStoreSuite::new(Duration::ZERO).max_families_per_user(2)
    );
}

mod memory_user_store {
    use super::*;
    tower_oauth2_password::user_store_tests!(MemoryUsers::<String>::new());
}

mod memory_user_store_awaited {
    use super::*;
    tower_oauth2_password::user_store_tests!(MemoryUsers::<String>::awaited());
}

mod login_throttle {
    use super::*;
    tower_oauth2_password::login_policy_tests!(
        LoginThrottle::new(),
        DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS
    );
}

#[cfg(feature = "jwt")]
mod memory_jti_denylist {
    use super::*;
    tower_oauth2_password::jti_denylist_tests!(MemoryJtiDenylist::new());
}

mod argon2_hasher {
    use super::*;
    tower_oauth2_password::password_hasher_tests!(Argon2Hasher::with_params(1024, 1, 1).unwrap());
}

mod insecure_fast_hasher {
    use super::*;
    tower_oauth2_password::password_hasher_tests!(InsecureFastHasher::new());
}

/// The suites' `run` still runs every rule in one call, as before the macros.
#[tokio::test]
async fn run_still_runs_every_suite_in_one_call() {
    TokenStoreSuite::new().run(&MemoryTokenStore::new()).await;
    UserStoreSuite::new()
        .run(&MemoryUsers::<String>::new())
        .await;
    LoginPolicySuite::new(DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS)
        .run(&LoginThrottle::new())
        .await;
    #[cfg(feature = "jwt")]
    JtiDenylistSuite::new().run(&MemoryJtiDenylist::new()).await;
    PasswordHasherSuite::new().run(&InsecureFastHasher::new());
}

#[tokio::test]
#[should_panic(expected = "the persisted data holds an issued refresh token")]
async fn the_suite_catches_a_refresh_store_that_persists_its_tokens() {
    let store = BrokenRefresh::new(RefreshFlaw::WritesTokensDown);
    RefreshTokenStoreSuite::new(Duration::from_secs(1))
        .run_with_persisted(&store, || async { store.written.lock().unwrap().clone() })
        .await;
}

/// What a broken token store gets wrong.
#[derive(Clone, Copy)]
enum Flaw {
    /// Returns expired grants.
    ForgetsExpiry,
    /// Says it revoked, and did not.
    FakesRevocation,
    /// Compares only a prefix of the token.
    ComparesAPrefix,
    /// Says it revoked a family, and did not.
    FakesFamilyRevocation,
    /// Revokes tokens one by one, but not families.
    CannotRevokeFamilies,
    /// Issues a bound grant's token as a bearer token (drops `key_binding`).
    DropsKeyBinding,
}

/// The memory store with one flaw.
struct Broken {
    inner: MemoryTokenStore,
    flaw: Flaw,
    /// For `ComparesAPrefix`: each token by its first half.
    by_prefix: Mutex<HashMap<Vec<u8>, String>>,
}

const PREFIX: usize = 22;

impl TokenStore for Broken {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        let mut grant = grant;
        let asked = grant.expires_at;
        match self.flaw {
            Flaw::ForgetsExpiry => grant.expires_at = SystemTime::now() + Duration::from_secs(3600),
            Flaw::DropsKeyBinding => grant.key_binding = None,
            _ => {}
        }
        let issued = self.inner.issue(grant).await?;
        let token = issued.access_token.as_str();
        self.by_prefix
            .lock()
            .unwrap()
            .insert(token.as_bytes()[..PREFIX].to_vec(), token.to_owned());
        Ok(IssuedToken::new(issued.access_token, asked))
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        let bytes = token.as_bytes();
        match self.flaw {
            Flaw::ComparesAPrefix if bytes.len() >= PREFIX => {
                let known = self
                    .by_prefix
                    .lock()
                    .unwrap()
                    .get(&bytes[..PREFIX])
                    .cloned();
                match known {
                    Some(token) => self.inner.resolve(token.as_str().into()),
                    None => Lookup::ready(Ok(None)),
                }
            }
            _ => self.inner.resolve(token),
        }
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        match self.flaw {
            Flaw::FakesRevocation => Ok(Revocation::Revoked),
            _ => self.inner.revoke(token, hint).await,
        }
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        match self.flaw {
            Flaw::FakesFamilyRevocation => Ok(Revocation::Revoked),
            Flaw::CannotRevokeFamilies => Ok(Revocation::Unsupported),
            _ => self.inner.revoke_family(family, until).await,
        }
    }
}

async fn run_on_broken(flaw: Flaw) {
    let store = Broken {
        inner: MemoryTokenStore::new(),
        flaw,
        by_prefix: Mutex::default(),
    };
    TokenStoreSuite::new().run(&store).await;
}

#[tokio::test]
#[should_panic(expected = "a token that expired an hour ago must not resolve")]
async fn the_suite_catches_a_store_that_forgets_expiry() {
    run_on_broken(Flaw::ForgetsExpiry).await;
}

#[tokio::test]
#[should_panic(expected = "a token the store says it revoked must not resolve")]
async fn the_suite_catches_a_store_that_fakes_revocation() {
    run_on_broken(Flaw::FakesRevocation).await;
}

#[tokio::test]
#[should_panic(expected = "a token of a revoked family must not resolve")]
async fn the_suite_catches_a_store_that_fakes_family_revocation() {
    run_on_broken(Flaw::FakesFamilyRevocation).await;
}

#[tokio::test]
#[should_panic(expected = "a store that revokes tokens must revoke families too")]
async fn the_suite_catches_a_store_that_cannot_revoke_families() {
    run_on_broken(Flaw::CannotRevokeFamilies).await;
}

#[tokio::test]
#[should_panic(expected = "a token that differs from an issued one")]
async fn the_suite_catches_a_store_that_compares_a_prefix() {
    run_on_broken(Flaw::ComparesAPrefix).await;
}

/// What a broken refresh-token store gets wrong.
#[derive(Clone, Copy)]
enum RefreshFlaw {
    /// Answers the previous token retried within the grace as `Rotated`, so the
    /// layer cannot count retries apart.
    AnswersRetriesAsRotations,
    /// Starts a bound login's family unbound (drops `key_binding`).
    DropsKeyBinding,
    /// Writes down every token it issues, as a careless store might log them to
    /// its database.
    WritesTokensDown,
}

/// The memory refresh store with one flaw.
struct BrokenRefresh {
    inner: MemoryRefreshTokenStore,
    flaw: RefreshFlaw,
    /// What it wrote down (`WritesTokensDown`).
    written: Mutex<Vec<u8>>,
}

impl BrokenRefresh {
    fn new(flaw: RefreshFlaw) -> Self {
        Self {
            inner: MemoryRefreshTokenStore::new(),
            flaw,
            written: Mutex::default(),
        }
    }
}

impl RefreshTokenStore for BrokenRefresh {
    async fn issue_refresh_token(
        &self,
        mut grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> Result<RefreshToken, StoreError> {
        if let RefreshFlaw::DropsKeyBinding = self.flaw {
            grant.key_binding = None;
        }
        let token = self.inner.issue_refresh_token(grant, lifetimes).await?;
        if let RefreshFlaw::WritesTokensDown = self.flaw {
            self.written
                .lock()
                .unwrap()
                .extend_from_slice(token.as_str().as_bytes());
        }
        Ok(token)
    }

    async fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<Grant>, StoreError> {
        self.inner.peek_refresh_token(token).await
    }

    async fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> Result<Rotation, StoreError> {
        Ok(
            match self.inner.rotate_refresh_token(token, lifetimes).await? {
                Rotation::Retried {
                    grant,
                    refresh_token,
                } if matches!(self.flaw, RefreshFlaw::AnswersRetriesAsRotations) => {
                    Rotation::Rotated {
                        grant,
                        refresh_token,
                    }
                }
                other => other,
            },
        )
    }

    async fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<FamilyId>, StoreError> {
        self.inner.revoke_refresh_token(token).await
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<(), StoreError> {
        self.inner.revoke_family(family).await
    }
}

#[tokio::test]
async fn the_refresh_suite_names_each_rule_a_broken_store_breaks() {
    let grace = Duration::from_secs(1);
    for (flaw, rules) in [
        (
            RefreshFlaw::AnswersRetriesAsRotations,
            &[
                "one_retry_per_generation_within_the_grace",
                "the_client_key_binding_survives_rotation",
            ][..],
        ),
        (
            RefreshFlaw::DropsKeyBinding,
            &["the_client_key_binding_survives_rotation"][..],
        ),
    ] {
        let store = BrokenRefresh {
            inner: MemoryRefreshTokenStore::with_retry_grace(grace),
            ..BrokenRefresh::new(flaw)
        };
        let broken = RefreshTokenStoreSuite::new(grace).check(&store).await;
        assert_eq!(names(&broken), rules);
    }
}

/// The names of the rules `broken` lists.
fn names(broken: &[tower_oauth2_password::testing::BrokenRule]) -> Vec<&'static str> {
    broken.iter().map(|broken| broken.rule).collect()
}

fn broken_token_store(flaw: Flaw) -> Broken {
    Broken {
        inner: MemoryTokenStore::new(),
        flaw,
        by_prefix: Mutex::default(),
    }
}

#[tokio::test]
async fn the_token_suite_names_each_rule_a_broken_store_breaks() {
    for (flaw, rules) in [
        (Flaw::ForgetsExpiry, ["expired_tokens_are_unknown"]),
        (Flaw::FakesRevocation, ["revoked_tokens_are_unknown"]),
        (
            Flaw::ComparesAPrefix,
            ["foreign_and_altered_tokens_are_unknown"],
        ),
        (
            Flaw::FakesFamilyRevocation,
            ["a_revoked_family_ends_its_tokens"],
        ),
        (
            Flaw::CannotRevokeFamilies,
            ["a_revoked_family_ends_its_tokens"],
        ),
        (
            Flaw::DropsKeyBinding,
            ["the_client_key_binding_round_trips"],
        ),
    ] {
        let broken = TokenStoreSuite::new()
            .check(&broken_token_store(flaw))
            .await;
        assert_eq!(names(&broken), rules);
    }
}

/// One rule, run on its own on a broken store, fails with its message (what a
/// test from `token_store_tests!` shows, under the rule's name).
#[tokio::test]
#[should_panic(expected = "a token the store says it revoked must not resolve")]
async fn one_rule_fails_on_its_own() {
    let store = broken_token_store(Flaw::FakesRevocation);
    TokenStoreSuite::new()
        .revoked_tokens_are_unknown(&store)
        .await;
}

/// `run` names every broken rule, not only the first.
#[tokio::test]
#[should_panic(expected = "1 rule(s) broken:\n- a_revoked_family_ends_its_tokens: ")]
async fn run_names_the_broken_rules() {
    let store = broken_token_store(Flaw::FakesFamilyRevocation);
    TokenStoreSuite::new().run(&store).await;
}

/// A login policy that counts failures when told of them, not when it allows an
/// attempt: concurrent attempts all pass its check.
#[derive(Default)]
struct CountsTooLate(Mutex<HashMap<String, u32>>);

impl LoginPolicy for CountsTooLate {
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
        let failures = self.0.lock().unwrap();
        let count = failures.get(attempt.canonical_username()).copied();
        Lookup::ready(Ok(
            if count.unwrap_or(0) < DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS {
                LoginDecision::Allow
            } else {
                LoginDecision::refuse(Duration::from_secs(60))
            },
        ))
    }

    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        let mut failures = self.0.lock().unwrap();
        *failures
            .entry(attempt.canonical_username().to_owned())
            .or_default() += 1;
        Lookup::ready(Ok(()))
    }
}

#[tokio::test]
async fn the_policy_suite_catches_a_policy_that_does_not_reserve() {
    let broken = LoginPolicySuite::new(DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS)
        .check(&CountsTooLate::default())
        .await;
    assert_eq!(names(&broken), ["a_check_reserves_before_the_hash"]);
}

/// A denylist that keeps the last expiry it was given, not the later one.
#[cfg(feature = "jwt")]
#[derive(Default)]
struct KeepsTheLastExpiry(Mutex<HashMap<String, SystemTime>>);

#[cfg(feature = "jwt")]
impl JtiDenylist for KeepsTheLastExpiry {
    async fn deny(&self, jti: &str, until: SystemTime) -> Result<(), StoreError> {
        self.0.lock().unwrap().insert(jti.to_owned(), until);
        Ok(())
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        let until = self.0.lock().unwrap().get(jti).copied();
        Lookup::ready(Ok(until.is_some_and(|until| until > SystemTime::now())))
    }
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn the_denylist_suite_catches_a_denylist_that_shortens_an_entry() {
    let broken = JtiDenylistSuite::new()
        .check(&KeepsTheLastExpiry::default())
        .await;
    assert_eq!(names(&broken), ["a_later_expiry_wins"]);
}

/// A hasher that panics on a hash it cannot check, instead of an error.
struct PanicsOnForeignHashes(InsecureFastHasher);

impl PasswordHasher for PanicsOnForeignHashes {
    fn hash(&self, password: &str) -> Result<HashedPassword, PasswordError> {
        self.0.hash(password)
    }

    fn verify(&self, password: &str, hash: &HashedPassword) -> Result<Verification, PasswordError> {
        Ok(self.0.verify(password, hash).expect("a hash I can check"))
    }

    fn verify_dummy(&self, password: &str) {
        self.0.verify_dummy(password);
    }
}

#[test]
fn the_hasher_suite_catches_a_hasher_that_panics_on_a_foreign_hash() {
    let broken =
        PasswordHasherSuite::new().check(&PanicsOnForeignHashes(InsecureFastHasher::new()));
    assert_eq!(names(&broken), ["a_hash_it_cannot_check_is_an_error"]);
}

// The boxed and shared forms (`BoxTokenStore`, `Arc<T>`, …) must keep every rule
// of the store they hold: the same suites, through them.

#[tokio::test]
async fn boxed_memory_token_store() {
    let store = BoxTokenStore::new(MemoryTokenStore::new());
    TokenStoreSuite::new().run(&store).await;
}

#[tokio::test]
async fn boxed_memory_token_store_awaited() {
    let store = BoxTokenStore::new(Awaited::new(MemoryTokenStore::new()));
    TokenStoreSuite::new().run(&store).await;
}

#[tokio::test]
async fn shared_memory_token_store() {
    let store = Arc::new(MemoryTokenStore::new());
    TokenStoreSuite::new().run(&store).await;
}

#[tokio::test]
#[should_panic(expected = "a token the store says it revoked must not resolve")]
async fn the_suite_catches_a_broken_store_behind_a_box() {
    let store = BoxTokenStore::new(Broken {
        inner: MemoryTokenStore::new(),
        flaw: Flaw::FakesRevocation,
        by_prefix: Mutex::default(),
    });
    TokenStoreSuite::new().run(&store).await;
}

#[tokio::test]
async fn boxed_memory_refresh_token_store() {
    let grace = Duration::from_secs(1);
    let store = BoxRefreshTokenStore::new(MemoryRefreshTokenStore::with_retry_grace(grace));
    RefreshTokenStoreSuite::new(grace).run(&store).await;
}

#[tokio::test]
async fn shared_memory_refresh_token_store() {
    let grace = Duration::from_secs(1);
    let store = Arc::new(MemoryRefreshTokenStore::with_retry_grace(grace));
    RefreshTokenStoreSuite::new(grace).run(&store).await;
}

/// A user store under test (`store`: a boxed or shared memory store), changed
/// through the memory store it holds.
struct Through<S> {
    store: S,
    memory: MemoryUserStore<String>,
}

impl<S: UserStore<User = String>> UserFixture for Through<S> {
    type Store = S;

    fn store(&self) -> &S {
        &self.store
    }

    async fn add(&self, username: &str, password_hash: HashedPassword, scopes: Scopes) {
        let user = StoredUser::new(username.to_owned(), password_hash);
        self.memory
            .insert(username, user.with_scopes(scopes.iter()));
    }

    async fn disable(&self, username: &str) {
        assert!(self.memory.disable(username));
    }

    async fn remove(&self, username: &str) {
        assert!(self.memory.remove(username));
    }

    async fn set_password(&self, username: &str, password_hash: HashedPassword) {
        assert!(self.memory.set_password(username, password_hash));
    }

    async fn set_scopes(&self, username: &str, scopes: Scopes) {
        assert!(self.memory.set_scopes(username, scopes));
    }
}

/// The memory user store behind `wrap`.
fn through<S>(wrap: impl FnOnce(MemoryUserStore<String>) -> S) -> Through<S> {
    let memory = MemoryUserStore::new();
    Through {
        store: wrap(memory.clone()),
        memory,
    }
}

#[tokio::test]
async fn boxed_memory_user_store() {
    UserStoreSuite::new().run(&through(BoxUserStore::new)).await;
}

#[tokio::test]
async fn boxed_memory_user_store_awaited() {
    UserStoreSuite::new()
        .run(&through(|memory| BoxUserStore::new(Awaited::new(memory))))
        .await;
}

#[tokio::test]
async fn shared_memory_user_store() {
    UserStoreSuite::new().run(&through(Arc::new)).await;
}
