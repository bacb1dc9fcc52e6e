//! The token endpoint: checks a password-grant form and issues a token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::{Method, Request, Response, Version};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::error::{Protocol, Rejection};
use crate::form::{Encoding, PasswordForm};
use crate::layer::{Config, Shared};
use crate::password::{HashedPassword, PasswordHasher};
use crate::scope::{is_scope_token, Scopes};
use crate::token::{Grant, TokenStore};
use crate::user::UserStore;
use crate::BoxError;

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    /// Present only when the granted scopes differ from the requested ones
    /// (RFC 6749 §5.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Answers a request for the token URL. Every answer, success or error, carries
/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) async fn token_endpoint<ReqBody, ResBody, E, Us, Ts, H>(
    shared: Arc<Shared<Us, Ts, H>>,
    request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, E>
where
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    Us: UserStore,
    Ts: TokenStore,
    H: PasswordHasher,
{
    let version = request.version();
    let mut response = match login(&shared, request).await {
        Ok(json) => {
            let mut response = Response::new(ResponseBody::full(json));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(rejection) => {
            tracing::debug!(?rejection, "token request rejected");
            // The rest of the body was not read: the connection cannot be reused.
            let close = matches!(
                rejection,
                Rejection::PayloadTooLarge(_) | Rejection::RequestTimeout
            ) && version <= Version::HTTP_11;
            let mut response = rejection.into_response(&shared.config.messages, Protocol::Http);
            if close {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

async fn login<ReqBody, Us, Ts, H>(
    shared: &Arc<Shared<Us, Ts, H>>,
    request: Request<ReqBody>,
) -> Result<Bytes, Rejection>
where
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    Us: UserStore,
    Ts: TokenStore,
    H: PasswordHasher,
{
    let config = &shared.config;
    if request.method() != Method::POST {
        return Err(Rejection::MethodNotAllowed);
    }
    let encoding = Encoding::of(request.headers())?;
    let declared_len = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|len| len.to_str().ok()?.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > config.body_limit as u64) {
        return Err(Rejection::PayloadTooLarge(config.body_limit));
    }
    let body = read_body(request.into_body(), config.body_limit, config.body_timeout).await?;
    let form = encoding.parse(body, config.require_grant_type).await?;
    check_scopes(config, &form.scopes)?;

    let stored = shared
        .users
        .find(&form.username)
        .await
        .map_err(|error| Rejection::store_failed("user", error))?;
    let hash = stored.as_ref().map(|stored| stored.password_hash.clone());
    let PasswordForm {
        username,
        password,
        scopes: requested,
    } = form;
    if !verify(Arc::clone(shared), password, hash).await? {
        return Err(Rejection::InvalidGrant);
    }
    let Some(stored) = stored else {
        return Err(Rejection::InvalidGrant);
    };

    // Grant what was asked for and is allowed, nothing more (RFC 6749 §3.3).
    let granted: Scopes = if config.uses_scopes() {
        requested
            .iter()
            .filter(|scope| stored.scopes.contains(scope.as_str()))
            .collect()
    } else {
        Scopes::empty()
    };
    let lifetime = config.token_lifetime;
    let grant = Grant {
        subject: username.into(),
        scopes: granted.clone(),
        expires_at: SystemTime::now() + lifetime,
    };
    let token = shared
        .tokens
        .issue(grant)
        .await
        .map_err(|error| Rejection::store_failed("token", error))?;
    let response = TokenResponse {
        access_token: token.as_str(),
        token_type: "bearer",
        expires_in: lifetime.as_secs(),
        scope: (granted.len() != requested.len()).then(|| granted.to_string()),
    };
    serde_json::to_vec(&response)
        .map(Bytes::from)
        .map_err(|_| Rejection::Internal)
}

/// Rejects malformed scopes, and undeclared ones when scopes were declared.
fn check_scopes(config: &Config, requested: &[String]) -> Result<(), Rejection> {
    for scope in requested {
        if !is_scope_token(scope) {
            // Not echoed: it may hold anything.
            return Err(Rejection::InvalidScope(
                "Malformed scope: (not shown)".into(),
            ));
        }
        if !config.knows_scope(scope) {
            // Echoed only when short (it is printable: scope-token syntax).
            let shown = if scope.len() <= 64 {
                scope
            } else {
                "(not shown)"
            };
            return Err(Rejection::InvalidScope(
                format!("Unknown scope: {shown}").into(),
            ));
        }
    }
    Ok(())
}

/// Reads the whole body, up to `limit` bytes and within `timeout`.
async fn read_body<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Rejection::PayloadTooLarge(limit))
        }
        Ok(Err(_)) => Err(Rejection::InvalidRequest(
            "Could not read the request body".into(),
        )),
        Err(_elapsed) => Err(Rejection::RequestTimeout),
    }
}

/// Checks the password on tokio's blocking pool. An unknown user is checked against
/// the hasher's dummy hash, so both failures cost the same time.
async fn verify<Us, Ts, H>(
    shared: Arc<Shared<Us, Ts, H>>,
    password: String,
    hash: Option<HashedPassword>,
) -> Result<bool, Rejection>
where
    Us: Send + Sync + 'static,
    Ts: Send + Sync + 'static,
    H: PasswordHasher,
{
    // At most `max_concurrent_hashes` verifications at once: each takes ~19 MiB and a
    // core, so a flood of logins queues here instead of exhausting memory. The permit
    // moves into the blocking task: a client that hangs up does not free it early.
    let permit = Arc::clone(&shared.hashing)
        .acquire_owned()
        .await
        .map_err(|_| Rejection::Internal)?;
    let check = move || {
        let _permit = permit;
        match hash {
            Some(hash) => shared
                .hasher
                .verify(&password, &hash)
                .unwrap_or_else(|error| {
                    // Answer as for a wrong password: a broken record must not reveal itself.
                    tracing::error!(%error, "stored password hash cannot be verified");
                    false
                }),
            None => {
                shared.hasher.verify_dummy(&password);
                false
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(check)
            .await
            .map_err(|_| Rejection::Internal),
        // Outside tokio there is no blocking pool: verify in place rather than panic.
        Err(_) => Ok(check()),
    }
}
