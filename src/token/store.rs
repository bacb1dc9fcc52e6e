//! The [`TokenStore`] trait: issues, resolves and revokes access tokens.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::BearerToken;
use crate::token::grant::FamilyId;
use crate::token::grant::Grant;
use crate::token::grant::IssuedToken;
use crate::token::grant::Revocation;
use crate::token::grant::TokenTypeHint;

/// Issues, resolves and revokes access tokens.
///
/// Every call is fallible so that Redis or a database fit: an `Err` makes the layer
/// answer 503, and a broken store never lets a request through. An unknown,
/// expired, revoked or malformed token is `Ok(None)`, not an error.
///
/// What every implementation owes (the [`testing`](crate::testing) suite checks
/// what can be checked from outside):
///
/// - **Look tokens up, never scan**, and compare their secret part in constant time
///   (`subtle`), so that neither a lookup nor a comparison tells an attacker how
///   much of a guessed token is right.
/// - **Expiry and revocation**: [`resolve`](Self::resolve) answers `None` for a
///   token past its [`Grant::expires_at`] or revoked. (The guard checks expiry again,
///   so a store that forgets fails closed, but other callers rely on it.)
/// - **Any bytes**: the token comes from the client. Use
///   [`BearerToken::to_str`], which checks RFC 6750 `b64token` syntax, rather than
///   assuming UTF-8, and answer `None` for what cannot be one of yours before any
///   round trip to a server.
///
/// A store picked at run time goes in a [`BoxTokenStore`](crate::token::BoxTokenStore) (one type whichever it
/// is); a store the application also keeps a handle to goes in an `Arc`.
pub trait TokenStore: Send + Sync + 'static {
    /// Issues a token for `grant`, valid until `grant.expires_at` (or earlier, if
    /// the store says so in [`IssuedToken::expires_at`]).
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send;

    /// The grant behind `token`, if it is one this store issued, unexpired and not
    /// revoked. The guard calls it on every request: answer
    /// [`Lookup::ready`] when the answer is at hand (no future is allocated then),
    /// [`Lookup::pending`] when it must be awaited.
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>>;

    /// Revokes `token` (RFC 7009): afterwards it resolves to `None`. Unknown,
    /// expired and malformed tokens are not an error ([`Revocation::Revoked`]: there
    /// is nothing left to revoke). `hint` says what kind of token the client thinks
    /// it is; a store may use it to look in the right place first.
    ///
    /// A store that cannot revoke (stateless tokens without a deny-list) answers
    /// [`Revocation::Unsupported`]: it must never pretend a logout happened.
    fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send;

    /// Ends every access token issued for `family` ([`Grant::family`]): the layer
    /// calls it when the family's refresh token is revoked, when an old generation
    /// of it is presented again (reuse: RFC 9700 §4.14.2), and when one of the
    /// family's access tokens is revoked (RFC 7009 §2.1 lets a logout end the whole
    /// login).
    ///
    /// Tokens issued for `family` after this call, until `until`, must not
    /// resolve either: a refresh that rotated just before the reuse may still be
    /// issuing its access token. `until` is the latest expiry an access token
    /// issued now could have, with a margin; a store may forget the family after
    /// it.
    ///
    /// A store that cannot (stateless tokens without a deny-list) answers
    /// [`Revocation::Unsupported`], and the layer then revokes what it can token
    /// by token; the [`testing`](crate::testing) suite refuses a store that
    /// revokes single tokens but not families.
    fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send;
}

/// A shared store: the application keeps a handle (to issue tokens itself, say)
/// and gives the layer a clone.
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send {
        (**self).issue(grant)
    }

    #[inline]
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        (**self).resolve(token)
    }

    fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        (**self).revoke(token, hint)
    }

    fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        (**self).revoke_family(family, until)
    }
}
