//! The introspection endpoint (RFC 7662): resource servers that do not share the
//! token store ask whether an access token is live, and what it grants.
//!
//! Only access tokens are ever `active`. A refresh token is answered
//! `{"active":false}` whatever `token_type_hint` says, and the refresh store is
//! never asked (so never rotated, nor its use recorded): resource servers see
//! only access tokens, and one that holds a refresh token holds a leaked one.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::clock;
use crate::config::{Config, Shared};
use crate::http::body::ResponseBody;
use crate::http::rejection::Rejection;
use crate::token::grant::{BearerToken, Grant};
use crate::token::store::TokenStore;
use crate::user::store::UserStore;

/// The answer for anything but a live access token (RFC 7662 §2.2).
const INACTIVE: &[u8] = br#"{"active":false}"#;

/// The answer to a caller that is not one of the clients (RFC 6749 §5.2).
const INVALID_CLIENT: &[u8] =
    br#"{"detail":"Invalid client credentials","error":"invalid_client"}"#;

/// The challenge of that answer.
const CHALLENGE: &str = r#"Basic realm="token introspection", charset="UTF-8""#;

/// What a live access token is (RFC 7662 §2.2).
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    username: &'a str,
    sub: &'a str,
    exp: u64,
    iat: u64,
    token_type: &'static str,
    /// RFC 9449 §6.2: the key a DPoP-bound token is bound to, `{"jkt": …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// A confirmation claim (RFC 7800) naming a key by its thumbprint.
#[derive(Serialize)]
struct Confirmation {
    jkt: String,
}

/// 401 `invalid_client` unless `headers` carry the Basic credentials of one of
/// the clients: checked before the body is read, so strangers cost a hash, never
/// a body.
pub(crate) fn refuse_stranger<B>(
    config: &Config,
    headers: &HeaderMap,
) -> Option<Response<ResponseBody<B>>> {
    let known = config
        .introspection_clients
        .as_ref()
        .is_some_and(|clients| clients.authenticate(headers));
    (!known).then(unauthorized)
}

/// The answer for `token` (RFC 7662 §2.2), to a client. The caller adds
/// `Cache-Control: no-store`.
pub(crate) async fn answer<B, Us, Ts>(
    shared: &Shared<Us, Ts>,
    token: &str,
) -> Result<Response<ResponseBody<B>>, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let json = match live(shared, BearerToken::from(token)).await? {
        Some(grant) => active(&shared.config, &grant)?,
        None => Bytes::from_static(INACTIVE),
    };
    let mut response = Response::new(ResponseBody::full(json));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The grant of `token` if the guard would let it through now: issued by the
/// access store, unexpired, unrevoked, its user there with the same stamp and
/// active. Store failures are a 503, never `active:false`: a resource server must
/// not take an outage for a logout, nor the reverse.
async fn live<Us, Ts>(
    shared: &Shared<Us, Ts>,
    token: BearerToken<'_>,
) -> Result<Option<Grant>, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let grant = match shared.tokens.resolve(token).await {
        Ok(Some(grant)) if grant.is_live(clock::now()) => grant,
        Ok(_) => return Ok(None),
        Err(error) => return Err(Rejection::store_failed("token", error)),
    };
    let principal = shared
        .users
        .principal(&grant.subject)
        .await
        .map_err(|error| Rejection::store_failed("user", error))?;
    Ok(principal
        .filter(|principal| principal.stamp == grant.stamp && principal.active)
        .map(|_| grant))
}

/// The JSON of a live token. `iat` is not stored: it is the expiry less the
/// layer's token lifetime (a store that shortened the token makes it earlier).
fn active(config: &Config, grant: &Grant) -> Result<Bytes, Rejection> {
    let seconds = |at: SystemTime| at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let issued = grant
        .expires_at
        .checked_sub(config.token_lifetime)
        .unwrap_or(UNIX_EPOCH);
    let answer = Active {
        active: true,
        scope: (!grant.scopes.is_empty()).then(|| grant.scopes.to_string()),
        username: &grant.subject,
        sub: &grant.subject,
        exp: seconds(grant.expires_at),
        iat: seconds(issued),
        token_type: if grant.key_binding.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        cnf: grant.key_binding.as_ref().map(|key| Confirmation {
            jkt: key.to_string(),
        }),
    };
    serde_json::to_vec(&answer)
        .map(Bytes::from)
        .map_err(|_| Rejection::Internal)
}

/// 401 `invalid_client` with a Basic challenge: the same bytes for no
/// credentials, an unknown client and a wrong secret.
fn unauthorized<B>() -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(INVALID_CLIENT)));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    response
}
