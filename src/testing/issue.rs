//! [`issue_token`]: a token for a test, without a login round trip.

use std::time::SystemTime;

use crate::layer::OAuth2PasswordLayer;
use crate::scope::Scopes;
use crate::store::StoreError;
use crate::token::grant::{Grant, IssuedToken};
use crate::token::store::TokenStore;
use crate::user::store::UserStore;
use crate::user::subject::Subject;

/// Issues an access token for the user `subject` with `scopes`, as a login would
/// (the layer's token store and lifetime, the user's current stamp), without a
/// request to the token endpoint and without hashing a password: a test of a
/// protected handler gets a token in microseconds.
///
/// The scopes are granted as asked, not narrowed to the user's own, so that a
/// test can present any token the layer could have issued. No refresh token is
/// issued. An unknown user is an error: the guard would refuse the token.
///
/// ```
/// use tower_oauth2_password::testing::{issue_token, InsecureFastHasher};
/// use tower_oauth2_password::scope::Scopes;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hash = InsecureFastHasher::new().hash("unused")?;
/// let users = MemoryUserStore::new().with_user("ada", StoredUser::new("Ada".to_owned(), hash));
/// let layer = OAuth2PasswordLayer::new(users);
/// let issued = issue_token(&layer, "ada", ["me"].into_iter().collect()).await?;
/// let header = format!("Bearer {}", issued.access_token.as_str());
/// # let _ = header;
/// # Ok(())
/// # }
/// ```
pub async fn issue_token<Us, Ts>(
    layer: &OAuth2PasswordLayer<Us, Ts>,
    subject: impl Into<Subject>,
    scopes: Scopes,
) -> Result<IssuedToken, StoreError>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let subject = subject.into();
    let Some(principal) = layer.user_store().principal(&subject).await? else {
        return Err(StoreError::new(format!(
            "no user {subject:?} to issue a token for"
        )));
    };
    let expires_at = SystemTime::now()
        .checked_add(layer.config().token_lifetime)
        .ok_or_else(|| StoreError::new("token lifetime out of range"))?;
    let grant = Grant::new(subject, scopes, expires_at).with_stamp(principal.stamp);
    layer.token_store().issue(grant).await
}
