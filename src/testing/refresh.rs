use std::time::{Duration, SystemTime};

use super::{altered, grant, in_an_hour};
use crate::scope::Scopes;
use crate::token::{BearerToken, FamilyId, Grant, RefreshToken, RefreshTokenStore, Rotation};

/// The [`RefreshTokenStore`] conformance suite: rotation, reuse detection (RFC 9700
/// §4.14), the retry grace, revocation, expiry and foreign tokens.
///
/// Give the store under test a short retry grace (the suite waits it out once) and
/// tell the suite what it is:
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::testing::RefreshTokenStoreSuite;
/// use tower_oauth2_password::MemoryRefreshTokenStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let grace = Duration::from_millis(200);
/// RefreshTokenStoreSuite::new(grace)
///     .run(&MemoryRefreshTokenStore::with_retry_grace(grace))
///     .await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RefreshTokenStoreSuite {
    retry_grace: Duration,
}

impl RefreshTokenStoreSuite {
    /// The suite for a store whose retry grace is `retry_grace`.
    pub fn new(retry_grace: Duration) -> Self {
        Self { retry_grace }
    }

    /// Runs every check against `store`; panics naming the first rule broken.
    pub async fn run<Rs: RefreshTokenStore>(&self, store: &Rs) {
        rotation_hands_back_the_grant_and_a_new_token(store).await;
        self.a_retry_within_the_grace_rotates_again(store).await;
        self.reuse_revokes_the_family(store).await;
        foreign_and_altered_tokens_are_invalid(store).await;
        revoked_and_expired_families_are_invalid(store).await;
        families_are_the_ones_the_layer_names(store).await;
    }

    async fn a_retry_within_the_grace_rotates_again<Rs: RefreshTokenStore>(&self, store: &Rs) {
        if self.retry_grace.is_zero() {
            return;
        }
        let first = start(store, "retrying").await;
        let lost = rotated(store, &first, "a fresh token").await;
        let retried = rotated(
            store,
            &first,
            "the same token again within the retry grace (a client's retry)",
        )
        .await;
        assert_ne!(lost, retried, "a retry gets a new token");
        rotated(store, &retried, "the retry's token").await;
    }

    async fn reuse_revokes_the_family<Rs: RefreshTokenStore>(&self, store: &Rs) {
        let family = FamilyId::random().expect("randomness");
        let first = issue(store, grant("stolen", in_an_hour()).with_family(family)).await;
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
}

async fn rotation_hands_back_the_grant_and_a_new_token<Rs: RefreshTokenStore>(store: &Rs) {
    let scopes: Scopes = ["me", "items"].into_iter().collect();
    let login = Grant::new("johndoe", scopes.clone(), in_an_hour()).with_stamp(42);
    let first = issue(store, login).await;
    let expires_at = in_an_hour() + Duration::from_secs(60);
    let (grant, second) = match store
        .rotate_refresh_token(BearerToken::from(first.as_str()), expires_at)
        .await
    {
        Ok(Rotation::Rotated {
            grant,
            refresh_token,
        }) => (grant, refresh_token),
        other => panic!("a fresh token rotates, got {other:?}"),
    };
    assert_eq!(grant.subject, "johndoe", "rotation keeps the subject");
    assert_eq!(grant.scopes, scopes, "rotation keeps the scopes");
    assert_eq!(grant.stamp, 42, "rotation keeps the stamp");
    assert!(
        within_a_second(grant.expires_at, expires_at),
        "the grant expires when the new token does"
    );
    assert_ne!(first, second, "rotation hands out a new token");
    rotated(store, &second, "the new token").await;
}

async fn foreign_and_altered_tokens_are_invalid<Rs: RefreshTokenStore>(store: &Rs) {
    let token = start(store, "johndoe").await;
    for candidate in altered(token.as_str().as_bytes()) {
        let rotation = store
            .rotate_refresh_token(BearerToken::new(&candidate), in_an_hour())
            .await
            .unwrap_or_else(|error| panic!("rotate failed: {error}"));
        assert_eq!(
            rotation,
            Rotation::Invalid,
            "a token that differs from an issued one ({} bytes) is invalid",
            candidate.len()
        );
        store
            .revoke_refresh_token(BearerToken::new(&candidate))
            .await
            .unwrap_or_else(|error| panic!("revoking an unknown token must succeed: {error}"));
    }
    rotated(store, &token, "the issued token, after altered ones").await;
}

async fn revoked_and_expired_families_are_invalid<Rs: RefreshTokenStore>(store: &Rs) {
    let first = start(store, "johndoe").await;
    let second = rotated(store, &first, "a fresh token").await;
    // Revoking with an older generation ends the family too.
    if let Err(error) = store
        .revoke_refresh_token(BearerToken::from(first.as_str()))
        .await
    {
        panic!("revoke failed: {error}");
    }
    assert_eq!(
        rotate(store, &second).await,
        Rotation::Invalid,
        "a revoked family's tokens are invalid"
    );
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = issue(store, grant("johndoe", long_ago)).await;
    assert_eq!(
        rotate(store, &expired).await,
        Rotation::Invalid,
        "an expired refresh token is invalid"
    );
}

async fn issue<Rs: RefreshTokenStore>(store: &Rs, grant: Grant) -> RefreshToken {
    store
        .issue_refresh_token(grant)
        .await
        .unwrap_or_else(|error| panic!("issue failed: {error}"))
}

async fn start<Rs: RefreshTokenStore>(store: &Rs, subject: &str) -> RefreshToken {
    issue(store, grant(subject, in_an_hour())).await
}

async fn rotate<Rs: RefreshTokenStore>(store: &Rs, token: &RefreshToken) -> Rotation {
    store
        .rotate_refresh_token(BearerToken::from(token.as_str()), in_an_hour())
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
    let login = || grant("johndoe", in_an_hour()).with_family(family);
    let first = issue(store, login()).await;
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
    let token = issue(store, grant("johndoe", in_an_hour()).with_family(family)).await;
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
