//! The conformance suites (`testing` feature) on the crate's own stores, answering at
//! once and awaited; and on broken stores, which the suites must catch.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tower_oauth2_password::testing::{
    Awaited, RefreshTokenStoreSuite, TokenStoreSuite, UserFixture, UserStoreSuite,
};
use tower_oauth2_password::{
    BearerToken, FamilyId, Grant, HashedPassword, IssuedToken, Lookup, MemoryRefreshTokenStore,
    MemoryTokenStore, MemoryUserStore, RefreshLifetimes, RefreshToken, RefreshTokenStore,
    Revocation, Rotation, Scopes, StoreError, StoredUser, TokenStore, TokenTypeHint, UserStore,
};
use tower_oauth2_password::{
    BoxRefreshTokenStore, BoxTokenStore, BoxUserStore, Credentials, Principal, Subject,
};

#[tokio::test]
async fn memory_token_store() {
    TokenStoreSuite::new().run(&MemoryTokenStore::new()).await;
}

#[tokio::test]
async fn memory_token_store_awaited() {
    let store = Awaited::new(MemoryTokenStore::new());
    TokenStoreSuite::new().run(&store).await;
}

#[tokio::test]
async fn memory_refresh_token_store() {
    let grace = Duration::from_secs(1);
    let store = MemoryRefreshTokenStore::with_retry_grace(grace);
    RefreshTokenStoreSuite::new(grace).run(&store).await;
}

#[tokio::test]
async fn memory_refresh_token_store_without_grace_and_a_small_cap() {
    // With no grace, a second use is always reuse: the suite skips the retry check.
    let store =
        MemoryRefreshTokenStore::with_retry_grace(Duration::ZERO).with_max_families_per_user(2);
    RefreshTokenStoreSuite::new(Duration::ZERO)
        .max_families_per_user(2)
        .run(&store)
        .await;
}

/// A refresh store that writes down every token it issues, as a careless store
/// might log them to its database.
struct KeepsTokens {
    inner: MemoryRefreshTokenStore,
    written: Mutex<Vec<u8>>,
}

impl RefreshTokenStore for KeepsTokens {
    async fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> Result<RefreshToken, StoreError> {
        let token = self.inner.issue_refresh_token(grant, lifetimes).await?;
        self.written
            .lock()
            .unwrap()
            .extend_from_slice(token.as_str().as_bytes());
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
        self.inner.rotate_refresh_token(token, lifetimes).await
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
#[should_panic(expected = "the persisted data holds an issued refresh token")]
async fn the_suite_catches_a_refresh_store_that_persists_its_tokens() {
    let store = KeepsTokens {
        inner: MemoryRefreshTokenStore::new(),
        written: Mutex::default(),
    };
    RefreshTokenStoreSuite::new(Duration::from_secs(1))
        .run_with_persisted(&store, || async { store.written.lock().unwrap().clone() })
        .await;
}

/// The memory user store, changed through its own methods, answering as `S` does.
struct Memory<S>(S);

impl<S> UserFixture for Memory<S>
where
    S: UserStore + std::ops::Deref<Target = MemoryUserStore<S::User>>,
    S::User: From<String>,
{
    type Store = S;

    fn store(&self) -> &S {
        &self.0
    }

    async fn add(&self, username: &str, password_hash: HashedPassword, scopes: Scopes) {
        let user = StoredUser::new(S::User::from(username.to_owned()), password_hash);
        self.0.insert(username, user.with_scopes(scopes.iter()));
    }

    async fn disable(&self, username: &str) {
        assert!(self.0.disable(username));
    }

    async fn remove(&self, username: &str) {
        assert!(self.0.remove(username));
    }

    async fn set_password(&self, username: &str, password_hash: HashedPassword) {
        assert!(self.0.set_password(username, password_hash));
    }

    async fn set_scopes(&self, username: &str, scopes: Scopes) {
        assert!(self.0.set_scopes(username, scopes));
    }
}

#[tokio::test]
async fn memory_user_store() {
    let store = Awaited::passthrough(MemoryUserStore::<String>::new());
    UserStoreSuite::new().run(&Memory(store)).await;
}

#[tokio::test]
async fn memory_user_store_awaited() {
    let store = Awaited::new(MemoryUserStore::<String>::new());
    UserStoreSuite::new().run(&Memory(store)).await;
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
        if let Flaw::ForgetsExpiry = self.flaw {
            grant.expires_at = SystemTime::now() + Duration::from_secs(3600);
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

/// A memory user store boxed, changed through the handle it was boxed from.
struct BoxedMemory {
    boxed: BoxUserStore<String>,
    memory: MemoryUserStore<String>,
}

impl BoxedMemory {
    /// An empty memory store, and `boxed` of it.
    fn new(boxed: impl FnOnce(MemoryUserStore<String>) -> BoxUserStore<String>) -> Self {
        let memory = MemoryUserStore::new();
        Self {
            boxed: boxed(memory.clone()),
            memory,
        }
    }
}

impl std::ops::Deref for BoxedMemory {
    type Target = MemoryUserStore<String>;

    fn deref(&self) -> &Self::Target {
        &self.memory
    }
}

impl UserStore for BoxedMemory {
    type User = String;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<String>>> {
        self.boxed.principal(subject)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.boxed.credentials(username).await
    }

    fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        self.boxed.canonical_username(username)
    }

    async fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> Result<(), StoreError> {
        self.boxed.update_password_hash(subject, old, new).await
    }
}

#[tokio::test]
async fn boxed_memory_user_store() {
    let store = BoxedMemory::new(BoxUserStore::new);
    UserStoreSuite::new().run(&Memory(store)).await;
}

#[tokio::test]
async fn boxed_memory_user_store_awaited() {
    let store = BoxedMemory::new(|memory| BoxUserStore::new(Awaited::new(memory)));
    UserStoreSuite::new().run(&Memory(store)).await;
}

#[tokio::test]
async fn shared_memory_user_store() {
    let store = Arc::new(MemoryUserStore::<String>::new());
    UserStoreSuite::new().run(&Memory(store)).await;
}
