use std::future::Future;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::future::join;

use super::report::{self, BrokenRule, Report};
use super::{altered, client_key, grant_for, in_an_hour};
use crate::scope::Scopes;
use crate::token::grant::{BearerToken, FamilyId, Grant, RefreshToken};
use crate::token::refresh::{FamilyKey, FamilyToken, KEY_BYTES};
use crate::token::refresh::{
    RefreshLifetimes, RefreshTokenStore, Rotation, DEFAULT_MAX_FAMILIES_PER_USER,
};

/// The [`RefreshTokenStore`] conformance suite: rotation, reuse detection (RFC 9700
/// §4.14), one retry per generation within the retry grace, idle and absolute
/// lifetimes, revocation, foreign tokens, the per-user cap on families, and (for a
/// store that keeps families outside the process) that nothing it keeps mints a
/// token.
///
/// Give the store under test a short retry grace (the suite waits it out once) and
/// tell the suite what it is; the lifetime rules wait about five seconds.
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::testing::RefreshTokenStoreSuite;
/// use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let grace = Duration::from_millis(200);
/// RefreshTokenStoreSuite::new(grace)
///     .max_families_per_user(5)
///     .run(&MemoryRefreshTokenStore::with_retry_grace(grace).with_max_families_per_user(5))
///     .await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RefreshTokenStoreSuite {
    retry_grace: Duration,
    max_families_per_user: usize,
}

/// Lifetimes long enough not to matter to the rules that are not about them.
fn long() -> RefreshLifetimes {
    RefreshLifetimes::new(Duration::from_secs(3600), Duration::from_secs(7200))
}
/// The lifetime rules' idle lifetime, and the time between their steps.
const IDLE: Duration = Duration::from_millis(2_000);
const STEP: Duration = Duration::from_millis(1_100);

impl RefreshTokenStoreSuite {
    /// The suite for a store whose retry grace is `retry_grace`, and whose cap on
    /// a user's live families is the default, 100.
    pub fn new(retry_grace: Duration) -> Self {
        Self {
            retry_grace,
            max_families_per_user: DEFAULT_MAX_FAMILIES_PER_USER,
        }
    }

    /// The store's cap on one user's live families (the suite logs in one more
    /// than that).
    pub fn max_families_per_user(mut self, max: usize) -> Self {
        self.max_families_per_user = max.max(1);
        self
    }

    /// Runs every rule against `store`, which keeps nothing outside the process
    /// (as [`MemoryRefreshTokenStore`](crate::token::memory::MemoryRefreshTokenStore)); panics
    /// listing every rule broken. A store that keeps families in a database,
    /// Redis or a file runs [`run_with_persisted`](Self::run_with_persisted).
    pub async fn run<Rs: RefreshTokenStore>(&self, store: &Rs) {
        report::fail_on("RefreshTokenStoreSuite", &self.check(store).await);
    }

    /// Runs every rule against `store` and returns the broken ones.
    pub async fn check<Rs: RefreshTokenStore>(&self, store: &Rs) -> Vec<BrokenRule> {
        // The waiting rules (their own subjects) run beside the others: seconds
        // saved, and a store shared by concurrent logins is what the layer has.
        let (mut quick, mut waiting) = (Report::default(), Report::default());
        join(
            async {
                crate::__refresh_token_store_quick_rules!(__each_rule!(quick, self, store));
            },
            async {
                crate::__refresh_token_store_waiting_rules!(__each_rule!(waiting, self, store));
            },
        )
        .await;
        quick.extend_from(waiting.into_broken());
        quick.into_broken()
    }

    /// A fresh token's family can be looked at; rotating it hands back the
    /// login's grant (subject, scopes, stamp), expiring with the new token, and a
    /// new token that rotates in turn.
    pub async fn rotation_hands_back_the_grant_and_a_new_token<Rs: RefreshTokenStore>(
        &self,
        store: &Rs,
    ) {
        rotation_hands_back_the_grant_and_a_new_token(store).await;
    }

    /// A token differing from an issued one has no family to look at, is invalid,
    /// and revokes without error.
    pub async fn foreign_and_altered_tokens_are_invalid<Rs: RefreshTokenStore>(&self, store: &Rs) {
        foreign_and_altered_tokens_are_invalid(store).await;
    }

    /// Revoking with any generation's token ends the family.
    pub async fn revoked_families_are_invalid<Rs: RefreshTokenStore>(&self, store: &Rs) {
        revoked_families_are_invalid(store).await;
    }

    /// The family id given at login is the one rotations, revocations and
    /// `revoke_family` name (RFC 9700 §4.14.2, RFC 7009 §2.1).
    pub async fn families_are_the_ones_the_layer_names<Rs: RefreshTokenStore>(&self, store: &Rs) {
        families_are_the_ones_the_layer_names(store).await;
    }

    /// A family used within its idle lifetime lives on; unused for it, it ends.
    /// Waits about 4.5 seconds.
    pub async fn an_unused_family_ends_after_its_idle_lifetime<Rs: RefreshTokenStore>(
        &self,
        store: &Rs,
    ) {
        an_unused_family_ends_after_its_idle_lifetime(store).await;
    }

    /// A family past its absolute lifetime ends, however recently it was used.
    /// Waits about 3.3 seconds.
    pub async fn a_used_family_ends_at_its_absolute_lifetime<Rs: RefreshTokenStore>(
        &self,
        store: &Rs,
    ) {
        a_used_family_ends_at_its_absolute_lifetime(store).await;
    }

    /// Nothing `persisted` returns (what the store keeps outside the process)
    /// holds an issued token, its MAC or the key that MACs it; see
    /// [`run_with_persisted`](Self::run_with_persisted).
    pub async fn nothing_persisted_mints_a_token<Rs, P, Fut>(&self, store: &Rs, mut persisted: P)
    where
        Rs: RefreshTokenStore,
        P: FnMut() -> Fut,
        Fut: Future<Output = Vec<u8>>,
    {
        let first = start(store, "persisted").await;
        let second = rotated(store, &first, "a fresh token").await;
        let third = rotated(store, &second, "the new token").await;
        let data = persisted().await;
        for token in [&first, &second, &third] {
            nothing_in_mints(&data, token);
        }
    }

    /// Every check of [`run`](Self::run), and first: nothing the store keeps
    /// outside the process mints a token. `persisted` returns everything it
    /// keeps there, as an attacker with a copy would read it (for Redis: every
    /// key's name, its `DUMP` and its values; for SQL: every row of its tables).
    /// The suite issues and rotates tokens, then fails if what `persisted` returns
    /// holds one of them (as text or decoded), its MAC, or, for tokens in this
    /// crate's format, the key that MACs them (raw, base64url or hex).
    pub async fn run_with_persisted<Rs, P, Fut>(&self, store: &Rs, persisted: P)
    where
        Rs: RefreshTokenStore,
        P: FnMut() -> Fut,
        Fut: Future<Output = Vec<u8>>,
    {
        let mut report = Report::default();
        report
            .rule(
                "nothing_persisted_mints_a_token",
                self.nothing_persisted_mints_a_token(store, persisted),
            )
            .await;
        report.extend_from(self.check(store).await);
        report::fail_on("RefreshTokenStoreSuite", &report.into_broken());
    }

    /// A retry within the grace gets a new token, answered
    /// [`Rotation::Retried`] (the layer counts it apart from a rotation), once per
    /// generation: a third use is reuse, and ends the family. Skipped with no
    /// grace.
    pub async fn one_retry_per_generation_within_the_grace<Rs: RefreshTokenStore>(
        &self,
        store: &Rs,
    ) {
        if self.retry_grace.is_zero() {
            return;
        }
        let first = start(store, "retrying").await;
        let lost = rotated(store, &first, "a fresh token").await;
        let again = retried(
            store,
            &first,
            "the same token again within the retry grace (a client's retry)",
        )
        .await;
        assert_ne!(lost, again, "a retry gets a new token");
        rotated(store, &again, "the retry's token").await;

        let first = start(store, "retrying").await;
        rotated(store, &first, "a fresh token").await;
        let again = retried(store, &first, "a retry within the grace").await;
        // The generation's one retry is used up: a third use, however soon, is reuse.
        match rotate(store, &first).await {
            Rotation::Reused { subject, .. } => assert_eq!(subject, "retrying"),
            other => panic!(
                "a token presented a third time within the grace is reuse (one retry per \
                 generation), got {other:?}"
            ),
        }
        assert_eq!(
            rotate(store, &again).await,
            Rotation::Invalid,
            "reuse after a retry revokes the whole family"
        );
    }

    /// A family bound to a client key (DPoP: `Grant::key_binding`) keeps the
    /// binding through every peek, rotation and retry; an unbound family stays
    /// unbound (RFC 9449 §5: a refresh token issued to a DPoP client is bound).
    pub async fn the_client_key_binding_survives_rotation<Rs: RefreshTokenStore>(
        &self,
        store: &Rs,
    ) {
        let key = client_key();
        let bound = grant_for("bound")
            .with_family(FamilyId::random().expect("randomness"))
            .with_key_binding(key);
        let first = issue(store, bound, long()).await;
        assert_eq!(
            peek(store, &first)
                .await
                .and_then(|grant| grant.key_binding),
            Some(key),
            "a peek at a bound family gives its client key"
        );
        let (grant, second) = match rotate(store, &first).await {
            Rotation::Rotated {
                grant,
                refresh_token,
            } => (grant, refresh_token),
            other => panic!("a fresh bound token rotates, got {other:?}"),
        };
        assert_eq!(
            grant.key_binding,
            Some(key),
            "a rotation keeps the family's client key"
        );
        if !self.retry_grace.is_zero() {
            match rotate(store, &first).await {
                Rotation::Retried { grant, .. } => assert_eq!(
                    grant.key_binding,
                    Some(key),
                    "a retry keeps the family's client key"
                ),
                other => panic!("a retry within the grace is Retried, got {other:?}"),
            }
        } else {
            let third = rotated(store, &second, "the new bound token").await;
            assert_eq!(
                peek(store, &third)
                    .await
                    .and_then(|grant| grant.key_binding),
                Some(key),
                "the family keeps its client key after two rotations"
            );
        }

        let first = start(store, "unbound").await;
        assert_eq!(
            peek(store, &first).await.map(|grant| grant.key_binding),
            Some(None),
            "an unbound family is bound to no key"
        );
        match rotate(store, &first).await {
            Rotation::Rotated { grant, .. } => assert_eq!(
                grant.key_binding, None,
                "an unbound family stays unbound when it rotates"
            ),
            other => panic!("a fresh token rotates, got {other:?}"),
        }
    }

    /// A token used again after the grace is reuse: it names the family, and
    /// the family's newest token is invalid too (RFC 9700 §4.14).
    pub async fn reuse_revokes_the_family<Rs: RefreshTokenStore>(&self, store: &Rs) {
        let family = FamilyId::random().expect("randomness");
        let first = issue(store, grant_for("stolen").with_family(family), long()).await;
        let second = rotated(store, &first, "a fresh token").await;
        tokio::time::sleep(self.retry_grace + Duration::from_millis(100)).await;
        match rotate(store, &first).await {
            Rotation::Reused {
                subject,
                family: reused,
            } => {
                assert_eq!(subject, "stolen");
                assert_eq!(reused, family, "reuse names the family it ended");
            }
            other => panic!("a token used again after the grace is reuse, got {other:?}"),
        }
        assert_eq!(
            rotate(store, &second).await,
            Rotation::Invalid,
            "reuse revokes the whole family, the newest token too"
        );
    }

    /// A login beyond the cap ends the user's oldest live family (a revoked one
    /// does not count), and no other user's.
    pub async fn a_users_live_families_are_capped<Rs: RefreshTokenStore>(&self, store: &Rs) {
        let neighbour = start(store, "neighbour").await;
        let mut families = Vec::new();
        for _ in 0..self.max_families_per_user {
            families.push(start(store, "prolific").await);
        }
        // An ended family does not count: end one, log in again, none is evicted.
        if let Some(ended) = families.pop() {
            revoke(store, &ended).await;
        }
        families.push(start(store, "prolific").await);
        assert!(
            peek(store, &families[0]).await.is_some(),
            "a user at the cap ({}) with a revoked family keeps their oldest one",
            self.max_families_per_user
        );
        let newest = start(store, "prolific").await;
        assert_eq!(
            rotate(store, &families[0]).await,
            Rotation::Invalid,
            "a login beyond the cap of {} live families ends the user's oldest family",
            self.max_families_per_user
        );
        if let Some(second) = families.get(1) {
            rotated(
                store,
                second,
                "the user's second-oldest family, within the cap",
            )
            .await;
        }
        rotated(store, &newest, "the login beyond the cap").await;
        rotated(store, &neighbour, "another user's family").await;
    }
}

async fn rotation_hands_back_the_grant_and_a_new_token<Rs: RefreshTokenStore>(store: &Rs) {
    let scopes: Scopes = ["me", "items"].into_iter().collect();
    let login = Grant::new("johndoe", scopes.clone(), in_an_hour()).with_stamp(42);
    let first = issue(store, login, long()).await;
    let peeked = peek(store, &first)
        .await
        .unwrap_or_else(|| panic!("a fresh token's family can be looked at"));
    assert_eq!(
        (peeked.subject.as_str(), &peeked.scopes, peeked.stamp),
        ("johndoe", &scopes, 42),
        "a look at the family gives its grant"
    );
    let (grant, second) = match store
        .rotate_refresh_token(BearerToken::from(first.as_str()), long())
        .await
    {
        Ok(Rotation::Rotated {
            grant,
            refresh_token,
        }) => (grant, refresh_token),
        other => panic!("a fresh token rotates (a look does not use it up), got {other:?}"),
    };
    assert_eq!(grant.subject, "johndoe", "rotation keeps the subject");
    assert_eq!(grant.scopes, scopes, "rotation keeps the scopes");
    assert_eq!(grant.stamp, 42, "rotation keeps the stamp");
    assert!(
        within_a_second(grant.expires_at, SystemTime::now() + long().idle()),
        "the grant expires when the new token does: its idle lifetime from now"
    );
    assert_ne!(first, second, "rotation hands out a new token");
    rotated(store, &second, "the new token").await;
}

async fn foreign_and_altered_tokens_are_invalid<Rs: RefreshTokenStore>(store: &Rs) {
    let token = start(store, "johndoe").await;
    for candidate in altered(token.as_str().as_bytes()) {
        let what = format!(
            "a token that differs from an issued one ({} bytes)",
            candidate.len()
        );
        let candidate = BearerToken::new(&candidate);
        let peeked = store
            .peek_refresh_token(candidate)
            .await
            .unwrap_or_else(|error| panic!("peek failed: {error}"));
        assert_eq!(peeked, None, "{what} has no family to look at");
        let rotation = store
            .rotate_refresh_token(candidate, long())
            .await
            .unwrap_or_else(|error| panic!("rotate failed: {error}"));
        assert_eq!(rotation, Rotation::Invalid, "{what} is invalid");
        store
            .revoke_refresh_token(candidate)
            .await
            .unwrap_or_else(|error| panic!("revoking an unknown token must succeed: {error}"));
    }
    rotated(store, &token, "the issued token, after altered ones").await;
}

async fn revoked_families_are_invalid<Rs: RefreshTokenStore>(store: &Rs) {
    let first = start(store, "johndoe").await;
    let second = rotated(store, &first, "a fresh token").await;
    // Revoking with an older generation ends the family too.
    revoke(store, &first).await;
    assert_eq!(
        rotate(store, &second).await,
        Rotation::Invalid,
        "a revoked family's tokens are invalid"
    );
    assert_eq!(
        peek(store, &second).await,
        None,
        "a revoked family cannot be looked at"
    );
}

/// Idle lifetime 2 s: used at 1.1 s and 2.2 s (past the idle lifetime from the
/// login: it slides), then left unused for 2.3 s.
async fn an_unused_family_ends_after_its_idle_lifetime<Rs: RefreshTokenStore>(store: &Rs) {
    let lifetimes = RefreshLifetimes::new(IDLE, long().absolute());
    let token = used_twice(
        store,
        "idle",
        lifetimes,
        "a family used within its idle lifetime lives on, past the idle lifetime from its \
         login (the idle lifetime slides)",
    )
    .await;
    tokio::time::sleep(IDLE + Duration::from_millis(300)).await;
    assert_eq!(
        rotate_with(store, &token, lifetimes).await,
        Rotation::Invalid,
        "a family unused for its idle lifetime has ended"
    );
    assert_eq!(
        peek(store, &token).await,
        None,
        "an ended family has no grant"
    );
}

/// Idle lifetime 2 s, absolute 2.8 s: used at 1.1 s and 2.2 s, then at 3.3 s
/// (1.1 s after its last use, but past its absolute lifetime).
async fn a_used_family_ends_at_its_absolute_lifetime<Rs: RefreshTokenStore>(store: &Rs) {
    let lifetimes = RefreshLifetimes::new(IDLE, Duration::from_millis(2_800));
    let token = used_twice(
        store,
        "absolute",
        lifetimes,
        "a family within both its lifetimes rotates",
    )
    .await;
    tokio::time::sleep(STEP).await;
    assert_eq!(
        rotate_with(store, &token, lifetimes).await,
        Rotation::Invalid,
        "a family past its absolute lifetime has ended, however recently it was used"
    );
}

/// Starts a family for `subject` with `lifetimes` and rotates it twice, a step
/// apart; returns its current token. `what` says why each rotation must succeed.
async fn used_twice<Rs: RefreshTokenStore>(
    store: &Rs,
    subject: &str,
    lifetimes: RefreshLifetimes,
    what: &str,
) -> RefreshToken {
    let mut token = issue(store, grant_for(subject), lifetimes).await;
    for _ in 0..2 {
        tokio::time::sleep(STEP).await;
        token = match rotate_with(store, &token, lifetimes).await {
            Rotation::Rotated { refresh_token, .. } => refresh_token,
            other => panic!("{what}, got {other:?}"),
        };
    }
    token
}

/// Fails if `data` holds `token`, its MAC, or the key that MACs it.
fn nothing_in_mints(data: &[u8], token: &RefreshToken) {
    let text = token.as_str().as_bytes();
    assert!(
        !contains(data, text),
        "the persisted data holds an issued refresh token"
    );
    if let Ok(raw) = URL_SAFE_NO_PAD.decode(text) {
        assert!(
            !contains(data, &raw),
            "the persisted data holds an issued refresh token's bytes"
        );
    }
    let Some(parsed) = FamilyToken::parse(BearerToken::from(token.as_str())) else {
        return;
    };
    assert!(
        !contains(data, parsed.tag()),
        "the persisted data holds an issued refresh token's MAC"
    );
    assert!(
        !candidate_keys(data).any(|key| parsed.is_signed_by(&key)),
        "the persisted data holds the key that MACs issued refresh tokens"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every 32-byte run of `data`, and every run that decodes to 32 bytes from
/// base64url (43 characters) or hex (64).
fn candidate_keys(data: &[u8]) -> impl Iterator<Item = FamilyKey> + '_ {
    let raw = data
        .windows(KEY_BYTES)
        .filter_map(|window| window.try_into().ok());
    let base64 = data.windows(43).filter_map(|window| {
        let mut key = [0u8; KEY_BYTES];
        (URL_SAFE_NO_PAD.decode_slice(window, &mut key).ok() == Some(KEY_BYTES)).then_some(key)
    });
    let hex = data.windows(2 * KEY_BYTES).filter_map(|window| {
        let mut key = [0u8; KEY_BYTES];
        for (byte, pair) in key.iter_mut().zip(window.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(key)
    });
    raw.chain(base64).chain(hex)
}

async fn issue<Rs: RefreshTokenStore>(
    store: &Rs,
    grant: Grant,
    lifetimes: RefreshLifetimes,
) -> RefreshToken {
    store
        .issue_refresh_token(grant, lifetimes)
        .await
        .unwrap_or_else(|error| panic!("issue failed: {error}"))
}

async fn start<Rs: RefreshTokenStore>(store: &Rs, subject: &str) -> RefreshToken {
    issue(store, grant_for(subject), long()).await
}

async fn peek<Rs: RefreshTokenStore>(store: &Rs, token: &RefreshToken) -> Option<Grant> {
    store
        .peek_refresh_token(BearerToken::from(token.as_str()))
        .await
        .unwrap_or_else(|error| panic!("peek failed: {error}"))
}

async fn revoke<Rs: RefreshTokenStore>(store: &Rs, token: &RefreshToken) {
    store
        .revoke_refresh_token(BearerToken::from(token.as_str()))
        .await
        .unwrap_or_else(|error| panic!("revoke failed: {error}"));
}

async fn rotate<Rs: RefreshTokenStore>(store: &Rs, token: &RefreshToken) -> Rotation {
    rotate_with(store, token, long()).await
}

async fn rotate_with<Rs: RefreshTokenStore>(
    store: &Rs,
    token: &RefreshToken,
    lifetimes: RefreshLifetimes,
) -> Rotation {
    store
        .rotate_refresh_token(BearerToken::from(token.as_str()), lifetimes)
        .await
        .unwrap_or_else(|error| panic!("rotate failed: {error}"))
}

/// Rotates `token`, which must rotate (`what` says why).
async fn rotated<Rs: RefreshTokenStore>(
    store: &Rs,
    token: &RefreshToken,
    what: &str,
) -> RefreshToken {
    match rotate(store, token).await {
        Rotation::Rotated { refresh_token, .. } => refresh_token,
        other => panic!("{what} must rotate, got {other:?}"),
    }
}

/// Rotates `token`, which must be the previous generation retried within the
/// grace (`what` says why).
async fn retried<Rs: RefreshTokenStore>(
    store: &Rs,
    token: &RefreshToken,
    what: &str,
) -> RefreshToken {
    match rotate(store, token).await {
        Rotation::Retried { refresh_token, .. } => refresh_token,
        other => panic!("{what} must be answered Rotation::Retried, got {other:?}"),
    }
}

fn within_a_second(a: SystemTime, b: SystemTime) -> bool {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .is_ok_and(|difference| difference <= Duration::from_secs(1))
}

/// The family's id is the one the layer put in the login's grant, and every
/// answer that ends or continues a family names it: the layer ends the family's
/// access tokens by it (RFC 9700 §4.14.2, RFC 7009 §2.1).
async fn families_are_the_ones_the_layer_names<Rs: RefreshTokenStore>(store: &Rs) {
    let family = FamilyId::random().expect("randomness");
    let login = || grant_for("johndoe").with_family(family);
    let first = issue(store, login(), long()).await;
    assert_eq!(
        peek(store, &first).await.and_then(|grant| grant.family),
        Some(family),
        "a peek names the family given at login (the layer ends its access tokens before the refresh token)"
    );
    match rotate(store, &first).await {
        Rotation::Rotated { grant, .. } => assert_eq!(
            grant.family,
            Some(family),
            "a rotation's grant names the family given at login"
        ),
        other => panic!("a fresh token rotates, got {other:?}"),
    }
    let ended = store
        .revoke_refresh_token(BearerToken::from(first.as_str()))
        .await
        .unwrap_or_else(|error| panic!("revoke failed: {error}"));
    assert_eq!(
        ended,
        Some(family),
        "revoking a token names the family it ended"
    );
    let again = store
        .revoke_refresh_token(BearerToken::from(first.as_str()))
        .await
        .unwrap_or_else(|error| panic!("revoke failed: {error}"));
    assert_eq!(again, None, "an ended family is not ended again");

    let family = FamilyId::random().expect("randomness");
    let token = issue(store, grant_for("johndoe").with_family(family), long()).await;
    store
        .revoke_family(&family)
        .await
        .unwrap_or_else(|error| panic!("revoke_family failed: {error}"));
    assert_eq!(
        rotate(store, &token).await,
        Rotation::Invalid,
        "a family revoked by its id is over (a logout with one of its access tokens)"
    );
}
