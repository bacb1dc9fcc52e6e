//! The token endpoint (password and refresh-token grants) and the revocation
//! endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::request::Parts;
use http::{Method, Request, Response, Version};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, TryAcquireError};

use crate::audit::{AuditEvent, AuditUser, LoginFailure, ThrottleLimit};
use crate::config::{Config, Shared};
use crate::endpoint::form::{Encoding, GrantTypes, Password, PasswordForm, TokenRequest};
use crate::endpoint::introspect;
use crate::endpoint::metadata::Published;
use crate::endpoint::policy::{LoginAttempt, LoginDecision, LoginPolicy, RefreshAttempt};
use crate::http::body::BoxError;
use crate::http::body::ResponseBody;
use crate::http::rejection::{Protocol, Rejection};
use crate::metrics::{self, LoginOutcome, RefreshOutcome, Started};
use crate::password::{HashedPassword, PasswordHasher, Verification};
use crate::scope::{is_scope_token, Scopes};
use crate::store::Lookup;
use crate::token::grant::{
    BearerToken, FamilyId, Grant, JwkThumbprint, RefreshToken, Revocation, TokenTypeHint,
};
use crate::token::refresh::Rotation;
use crate::token::store::TokenStore;
use crate::user::store::{Credentials, UserStore};
use crate::user::subject::Subject;

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// Present only when the granted scopes differ from the requested ones
    /// (RFC 6749 §5.1) and are not none: RFC 6749 §3.3's grammar has no empty
    /// scope, and clients read `""` as one scope named by the empty string.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// The URLs the layer answers itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Endpoint {
    /// The token URL: password and refresh-token grants, a JSON token response.
    Token,
    /// The revocation URL (RFC 7009): 200 with an empty body once the token no
    /// longer works, whether or not it ever did.
    Revocation,
    /// The introspection URL (RFC 7662), when clients are configured.
    Introspection,
    /// A document served to `GET`: the metadata (RFC 8414) or the key set (RFC 7517).
    Published(Published),
}

impl Endpoint {
    /// Its name in metrics.
    fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Revocation => "revocation",
            Self::Introspection => "introspection",
            Self::Published(Published::Metadata) => "metadata",
            Self::Published(Published::Jwks) => "jwks",
        }
    }

    /// The endpoint served at `path` (as the client sent it), if any. Out of line:
    /// the guard asks only for paths of an endpoint's length, and its comparisons
    /// inlined spread the guard's path over more cache lines.
    #[inline(never)]
    pub(crate) fn at(config: &Config, path: &str) -> Option<Self> {
        if path == &*config.token_url {
            Some(Self::Token)
        } else if config.revocation_url.as_deref() == Some(path) {
            Some(Self::Revocation)
        } else if config.served_introspection_url() == Some(path) {
            Some(Self::Introspection)
        } else if config
            .published_prefix
            .as_deref()
            .is_some_and(|prefix| path.starts_with(prefix))
        {
            // One comparison for every other request; the rest out of line.
            Published::at(config, path).map(Self::Published)
        } else {
            None
        }
    }
}

/// The lengths of the paths the layer answers itself (the token URL, and the
/// revocation, introspection, metadata and JWKS URLs when served), as a set of
/// bits: bit `n` for a length of `n` bytes, bit 63 for 63 and longer. Every other
/// request pays one test against it instead of [`Endpoint::at`]'s comparisons, and
/// is sent on unless its path has the length of one of those URLs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EndpointLengths(u64);

impl EndpointLengths {
    /// The lengths of the URLs `config` serves.
    pub(crate) fn of(config: &Config) -> Self {
        let served = [
            Some(&*config.token_url),
            config.revocation_url.as_deref(),
            config.served_introspection_url(),
            config.metadata.as_ref().and(config.metadata_url.as_deref()),
            config.jwks.as_ref().map(|_| &*config.jwks_url),
        ];
        Self(
            served
                .into_iter()
                .flatten()
                .map(Self::bit)
                .fold(0, |a, b| a | b),
        )
    }

    /// Whether `path` may be one of the URLs (if not, [`Endpoint::at`] is `None`).
    #[inline(always)]
    pub(crate) fn may_be(self, path: &str) -> bool {
        self.0 & Self::bit(path) != 0
    }

    #[inline(always)]
    fn bit(path: &str) -> u64 {
        1 << path.len().min(63)
    }
}

/// Answers a request for one of the layer's own URLs. Every answer, success or
/// error, carries `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) async fn endpoint<ReqBody, ResBody, E, Us, Ts>(
    shared: Arc<Shared<Us, Ts>>,
    request: Request<ReqBody>,
    endpoint: Endpoint,
) -> Result<Response<ResponseBody<ResBody>>, E>
where
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    Us: UserStore,
    Ts: TokenStore,
{
    let started = Started::now();
    let version = request.version();
    let answer = match endpoint {
        // Public documents: cacheable, and answered without reading the body.
        Endpoint::Published(which) => {
            return Ok(which.answer(&shared.config, request.method()));
        }
        Endpoint::Token => token_request(&shared, request).await.map(|json| {
            let mut response = Response::new(ResponseBody::full(json));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            // A fresh nonce for the client's next proof (RFC 9449 §8.2).
            #[cfg(feature = "dpop")]
            if let Some(nonce) = shared
                .config
                .dpop
                .as_ref()
                .and_then(|dpop| dpop.fresh_nonce())
            {
                headers.insert(crate::dpop::settings::DPOP_NONCE, nonce);
            }
            response
        }),
        Endpoint::Revocation => revoke(&shared, request)
            .await
            .map(|()| Response::new(ResponseBody::empty())),
        // A client's, read as a revocation request is: `token`, `token_type_hint`.
        Endpoint::Introspection => {
            async {
                if let Some(refused) =
                    introspect::refuse_stranger(&shared.config, request.headers())
                {
                    return Ok(refused);
                }
                let (_, encoding, body) = read_form(&shared.config, request).await?;
                let form = encoding.parse_revocation(body).await?;
                introspect::answer(&shared, &form.token).await
            }
            .await
        }
    };
    let response = no_store(&shared.config, version, answer);
    metrics::endpoint_answered(endpoint.name(), response.status().as_u16(), started);
    Ok(response)
}

/// Renders a rejection, and marks any answer of the endpoints uncacheable.
fn no_store<B>(
    config: &Config,
    version: Version,
    answer: Result<Response<ResponseBody<B>>, Rejection>,
) -> Response<ResponseBody<B>> {
    let mut response = answer.unwrap_or_else(|rejection| {
        tracing::debug!(?rejection, "token endpoint request rejected");
        // The rest of the body was not read: the connection cannot be reused.
        let close = matches!(
            rejection,
            Rejection::PayloadTooLarge(_) | Rejection::RequestTimeout
        ) && version <= Version::HTTP_11;
        let mut response = rejection.into_response(&config.messages, Protocol::Http);
        if close {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    });
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Checks method, media type and size, and reads the whole form body.
async fn read_form<ReqBody>(
    config: &Config,
    request: Request<ReqBody>,
) -> Result<(Parts, Encoding, Bytes), Rejection>
where
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
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
    let (parts, body) = request.into_parts();
    let body = read_body(body, config.body_limit, config.body_timeout).await?;
    Ok((parts, encoding, body))
}

async fn token_request<ReqBody, Us, Ts>(
    shared: &Arc<Shared<Us, Ts>>,
    request: Request<ReqBody>,
) -> Result<Bytes, Rejection>
where
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    Us: UserStore,
    Ts: TokenStore,
{
    let config = &shared.config;
    let (parts, encoding, body) = read_form(config, request).await?;
    let grants = GrantTypes {
        required: config.require_grant_type,
        refresh: shared.refresh.is_some(),
    };
    let client_ip = config
        .trusted_proxies
        .client_ip(&parts.headers, &parts.extensions);
    let client = RefreshAttempt::new(&parts.headers, &parts.extensions).with_client_ip(client_ip);
    let form = encoding.parse(body, grants).await?;
    // The proof's key, checked (and its `jti` remembered) before any password
    // check or refresh-token rotation.
    #[cfg(feature = "dpop")]
    let key = match &config.dpop {
        Some(dpop) => token_proof(dpop, config, &parts).await?,
        None => None,
    };
    #[cfg(not(feature = "dpop"))]
    let key = None;
    match form {
        TokenRequest::Password(form) => login(shared, &client, form, key).await,
        TokenRequest::Refresh {
            refresh_token,
            scopes,
        } => {
            let mut notes = Notes::default();
            let answer = refresh(shared, &client, &refresh_token, &scopes, key, &mut notes).await;
            report_refresh(shared, client_ip, &answer, &notes);
            answer
        }
    }
}

/// The key of the token request's DPoP proof, if it has one: verified for
/// `POST` to the token URL, and remembered by the replay store. Without a proof,
/// `None`, unless DPoP is required.
#[cfg(feature = "dpop")]
async fn token_proof(
    dpop: &crate::dpop::settings::DpopSettings,
    config: &Config,
    parts: &Parts,
) -> Result<Option<JwkThumbprint>, Rejection> {
    use crate::dpop::replay::ProofId;
    use crate::dpop::settings::{DpopMode, ProofRefusal, RequestParts, DPOP};

    if !parts.headers.contains_key(&DPOP) {
        return match dpop.mode {
            DpopMode::Allowed => Ok(None),
            DpopMode::Required => Err(Rejection::InvalidDpopProof(
                "A DPoP proof is required: send one in the DPoP header",
            )),
        };
    }
    let request = RequestParts {
        method: &parts.method,
        uri: &parts.uri,
        path: &config.token_url,
        headers: &parts.headers,
        extensions: &parts.extensions,
        proxies: &config.trusted_proxies,
    };
    let proof = dpop
        .verify(request, None)
        .map_err(|refusal| match refusal {
            ProofRefusal::Invalid(detail) => Rejection::InvalidDpopProof(detail),
            ProofRefusal::UseNonce(nonce) => Rejection::UseDpopNonce {
                nonce,
                guard: false,
            },
        })?;
    let sighting = dpop
        .replay
        .remember(&ProofId::from(&proof), dpop.remember_until(&proof))
        .await
        .map_err(|error| Rejection::store_failed("DPoP replay", error))?;
    if sighting.is_replay() {
        return Err(Rejection::InvalidDpopProof("DPoP proof already used"));
    }
    Ok(Some(*proof.thumbprint()))
}

async fn login<Us, Ts>(
    shared: &Arc<Shared<Us, Ts>>,
    client: &RefreshAttempt<'_>,
    form: PasswordForm,
    key: Option<JwkThumbprint>,
) -> Result<Bytes, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let PasswordForm {
        username,
        password,
        scopes: requested,
    } = form;
    let config = &shared.config;
    check_scopes(config, &requested)?;
    // The throttle counts every spelling of a user as the store matches it.
    let canonical = shared.users.canonical_username(&username);
    let attempt = LoginAttempt::new(&username, client.headers(), client.extensions())
        .with_client_ip(client.client_ip())
        .with_canonical_username(&canonical);
    let mut notes = Notes::default();
    let answer = authenticate(shared, &attempt, password, &requested, key, &mut notes).await;
    report_login(shared, &attempt, &answer, &notes);
    answer
}

/// What the answer of a grant does not say, for its audit event and metric.
#[derive(Default)]
struct Notes {
    /// The right password of a disabled user was refused.
    inactive: bool,
    /// The login policy refused the attempt: this limit of it.
    throttled: Option<ThrottleLimit>,
    /// A reused refresh token was caught (and its event sent).
    reused: bool,
    /// The refresh token was the previous one, retried within the grace.
    retried: bool,
}

/// Sends a password grant's audit event and counts it.
fn report_login<Us, Ts>(
    shared: &Shared<Us, Ts>,
    attempt: &LoginAttempt<'_>,
    answer: &Result<Bytes, Rejection>,
    notes: &Notes,
) {
    let user = AuditUser::new(attempt.username(), shared.config.hash_usernames_in_logs);
    let client = attempt.client_ip();
    let failed = |reason| AuditEvent::LoginFailed {
        user,
        client,
        reason,
    };
    let (outcome, event) = match answer {
        Ok(_) => (
            LoginOutcome::Issued,
            Some(AuditEvent::LoginSucceeded { user, client }),
        ),
        Err(Rejection::InvalidGrant) if notes.inactive => (
            LoginOutcome::Inactive,
            Some(AuditEvent::InactiveUserRefused { user, client }),
        ),
        Err(Rejection::InvalidGrant) => (
            LoginOutcome::InvalidGrant,
            Some(failed(LoginFailure::InvalidCredentials)),
        ),
        Err(Rejection::TooManyAttempts(retry_after)) => {
            let limit = notes.throttled.unwrap_or(ThrottleLimit::Policy);
            let outcome = match limit {
                ThrottleLimit::UsernameAndAddress => LoginOutcome::ThrottledPair,
                ThrottleLimit::Username => LoginOutcome::ThrottledUsername,
                ThrottleLimit::Address => LoginOutcome::ThrottledAddress,
                _ => LoginOutcome::ThrottledPolicy,
            };
            let event = AuditEvent::Throttled {
                user: Some(user),
                client,
                limit,
                retry_after: *retry_after,
            };
            (outcome, Some(event))
        }
        Err(Rejection::Busy(QUEUE_FULL)) => (
            LoginOutcome::QueueFull,
            Some(failed(LoginFailure::QueueFull)),
        ),
        Err(Rejection::Busy(_)) => (
            LoginOutcome::WaitedTooLong,
            Some(failed(LoginFailure::WaitedTooLong)),
        ),
        Err(Rejection::Unavailable) => (
            LoginOutcome::StoreError,
            Some(failed(LoginFailure::StoreUnavailable)),
        ),
        Err(_) => (LoginOutcome::Rejected, None),
    };
    metrics::login(outcome);
    if let Some(event) = event {
        shared.audit.record(&event);
    }
}

/// Sends a refresh grant's audit event (a reuse sent its own) and counts it.
fn report_refresh<Us, Ts>(
    shared: &Shared<Us, Ts>,
    client: Option<std::net::IpAddr>,
    answer: &Result<Bytes, Rejection>,
    notes: &Notes,
) {
    let (outcome, event) = match answer {
        Ok(_) if notes.retried => (RefreshOutcome::RetriedWithinGrace, None),
        Ok(_) => (RefreshOutcome::Rotated, None),
        Err(Rejection::InvalidRefreshToken) => (
            if notes.reused {
                RefreshOutcome::ReuseDetected
            } else {
                RefreshOutcome::Invalid
            },
            Some(AuditEvent::RefreshRefused { client }),
        ),
        Err(Rejection::TooManyAttempts(retry_after)) => {
            let event = AuditEvent::Throttled {
                user: None,
                client,
                limit: notes.throttled.unwrap_or(ThrottleLimit::Policy),
                retry_after: *retry_after,
            };
            (RefreshOutcome::Throttled, Some(event))
        }
        Err(Rejection::Unavailable) => (RefreshOutcome::StoreError, None),
        Err(_) => (RefreshOutcome::Rejected, None),
    };
    metrics::refresh(outcome);
    if let Some(event) = event {
        shared.audit.record(&event);
    }
}

/// A login attempt the policy let through, and so counted (see [`LoginPolicy`]):
/// the verdict settles it, and without one (an error before it, or the client
/// gone and this dropped) it is given back.
struct Reservation<'a> {
    policy: &'a dyn LoginPolicy,
    attempt: &'a LoginAttempt<'a>,
    settled: bool,
}

impl<'a> Reservation<'a> {
    /// Asks the policy; a refusal is the 429.
    async fn take(
        policy: &'a dyn LoginPolicy,
        attempt: &'a LoginAttempt<'a>,
        notes: &mut Notes,
    ) -> Result<Self, Rejection> {
        allowed(policy.check(attempt).await, notes)?;
        Ok(Self {
            policy,
            attempt,
            settled: false,
        })
    }

    async fn failed(mut self) {
        self.settled = true;
        tell(self.policy.failed(self.attempt), "failed login").await;
    }

    async fn succeeded(mut self, subject: &Subject) {
        self.settled = true;
        tell(
            self.policy.succeeded(self.attempt, subject),
            "successful login",
        )
        .await;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        match self.policy.abandoned(self.attempt).into_ready() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "login policy failed to give back an attempt")
            }
            // Awaited elsewhere: this future may be dropped outside any task.
            Err(pending) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(tell(pending, "login without a verdict"))),
                Err(_) => tracing::error!("login policy could not give back an attempt"),
            },
        }
    }
}

/// A policy's decision as the endpoint answers it: on, 429 (noting which limit
/// refused, for the audit event), or 503.
fn allowed(
    decision: Result<LoginDecision, crate::store::StoreError>,
    notes: &mut Notes,
) -> Result<(), Rejection> {
    match decision {
        Ok(LoginDecision::Allow) => Ok(()),
        Ok(LoginDecision::Refuse { retry_after, limit }) => {
            notes.throttled = Some(limit);
            Err(Rejection::TooManyAttempts(retry_after))
        }
        Err(error) => Err(Rejection::store_failed("login policy", error)),
    }
}

/// The login proper, from the policy's check to the token response.
async fn authenticate<Us, Ts>(
    shared: &Arc<Shared<Us, Ts>>,
    attempt: &LoginAttempt<'_>,
    password: Password,
    requested: &[String],
    key: Option<JwkThumbprint>,
    notes: &mut Notes,
) -> Result<Bytes, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    // Before any store or hash: a refused attempt costs nothing, and an allowed
    // one is counted before its verdict, so concurrent ones cannot pass a limit.
    let reservation = match &shared.policy {
        Some(policy) => Some(Reservation::take(&**policy, attempt, notes).await?),
        None => None,
    };
    let found = shared
        .users
        .credentials(attempt.username())
        .await
        .map_err(|error| Rejection::store_failed("user", error))?;
    let hash = found.as_ref().map(|found| found.password_hash.clone());
    let (verification, password) = verify(Arc::clone(shared), password, hash).await?;
    let refuse_inactive = shared.config.refuse_inactive_login;
    let credentials = match found {
        // The password was checked either way: same answer, same work.
        Some(credentials)
            if verification.is_match() && (credentials.active || !refuse_inactive) =>
        {
            credentials
        }
        found => {
            notes.inactive = verification.is_match() && found.is_some_and(|found| !found.active);
            if let Some(reservation) = reservation {
                reservation.failed().await;
            }
            return Err(Rejection::InvalidGrant);
        }
    };
    if let Some(reservation) = reservation {
        reservation.succeeded(&credentials.subject).await;
    }
    if verification == Verification::MatchNeedsRehash {
        rehash_later(Arc::clone(shared), &credentials, password);
    }
    // Grant what was asked for and is allowed, nothing more (RFC 6749 §3.3).
    let granted: Scopes = if shared.config.uses_scopes() {
        requested
            .iter()
            .filter(|scope| credentials.scopes.contains(scope))
            .collect()
    } else {
        Scopes::empty()
    };
    let mut grant =
        Grant::new(credentials.subject, granted, SystemTime::now()).with_stamp(credentials.stamp);
    // A DPoP login: its access token and its family (so its refresh tokens) are
    // bound to the proof's key.
    grant.key_binding = key;
    issue(shared, grant, requested, NextRefreshToken::StartFamily).await
}

/// `grant_type=refresh_token`: rotates the refresh token and issues an access
/// token for its login, if the user is still the one who logged in.
async fn refresh<Us, Ts>(
    shared: &Shared<Us, Ts>,
    client: &RefreshAttempt<'_>,
    presented: &str,
    requested: &[String],
    key: Option<JwkThumbprint>,
    notes: &mut Notes,
) -> Result<Bytes, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    if let Some(policy) = &shared.policy {
        allowed(policy.check_refresh(client).await, notes)?;
    }
    let config = &shared.config;
    let Some(store) = shared.refresh.as_deref() else {
        // The form parser only reads refresh grants when they are served.
        return Err(Rejection::UnsupportedGrantType { refresh: false });
    };
    check_scopes(config, requested)?;
    let presented = BearerToken::from(presented);
    // The scope is checked before the token is rotated: a refused refresh must
    // leave the token as it was, or the client's next use of it would be reuse.
    // (A family's scopes never change, so a look first is as good as a lock.)
    // So is the key: a family bound to a key is refreshed only with a proof by
    // that key, so that a thief without the key cannot burn the owner's family.
    if (config.uses_scopes() && !requested.is_empty()) || checks_keys(config) {
        let Some(family) = store
            .dyn_peek_refresh_token(presented)
            .await
            .map_err(|error| Rejection::store_failed("refresh token", error))?
        else {
            refresh_failed(shared, client).await;
            return Err(Rejection::InvalidRefreshToken);
        };
        if config.uses_scopes() && !requested.is_empty() {
            narrowed(requested, &family.scopes)?;
        }
        if let Err(refused) = proof_fits(family.key_binding.as_ref(), key.as_ref()) {
            refresh_failed(shared, client).await;
            return Err(refused);
        }
    }
    let rotation = store
        .dyn_rotate_refresh_token(presented, config.refresh_lifetimes)
        .await
        .map_err(|error| Rejection::store_failed("refresh token", error))?;
    let (grant, next) = match rotation {
        Rotation::Rotated {
            grant,
            refresh_token,
        } => (grant, refresh_token),
        Rotation::Retried {
            grant,
            refresh_token,
        } => {
            notes.retried = true;
            (grant, refresh_token)
        }
        Rotation::Reused { subject, family } => {
            notes.reused = true;
            shared.audit.record(&AuditEvent::RefreshReuseDetected {
                user: AuditUser::new(&subject, config.hash_usernames_in_logs),
                family,
                client: client.client_ip(),
            });
            refresh_failed(shared, client).await;
            // RFC 9700 §4.14.2: the access tokens the thief may hold end too.
            end_family_access_tokens(shared, &family).await?;
            return Err(Rejection::InvalidRefreshToken);
        }
        Rotation::Invalid => {
            refresh_failed(shared, client).await;
            return Err(Rejection::InvalidRefreshToken);
        }
    };
    // The user must still be the one who logged in: a password change, a scope
    // taken away or a re-created account (a new stamp) ends the login.
    let principal = shared
        .users
        .principal(&grant.subject)
        .await
        .map_err(|error| Rejection::store_failed("user", error))?;
    let still_valid = principal.is_some_and(|principal| {
        principal.stamp == grant.stamp && (principal.active || !config.refuse_inactive_login)
    });
    if !still_valid {
        if let Err(error) = store
            .dyn_revoke_refresh_token(BearerToken::from(next.as_str()))
            .await
        {
            tracing::error!(%error, "refresh token of a changed user not revoked");
        }
        return Err(Rejection::InvalidRefreshToken);
    }
    let scopes = if config.uses_scopes() {
        narrowed(requested, &grant.scopes)?
    } else {
        Scopes::empty()
    };
    // A family bound to a key was checked above; an unbound one refreshed with a
    // proof gets an access token bound to the proof's key, and stays unbound.
    // (A store whose record lost the binding fails closed below.)
    proof_fits(grant.key_binding.as_ref(), key.as_ref())?;
    let key_binding = grant.key_binding.or(key);
    let grant = Grant {
        scopes,
        key_binding,
        ..grant
    };
    issue(shared, grant, requested, NextRefreshToken::Rotated(next)).await
}

/// The scopes a refresh of a login granted `granted` gets when it asks for
/// `requested`: a narrower set may be asked for, never more (RFC 6749 §6), and
/// none asked for is the login's.
fn narrowed(requested: &[String], granted: &Scopes) -> Result<Scopes, Rejection> {
    if requested.is_empty() {
        Ok(granted.clone())
    } else if requested.iter().all(|scope| granted.contains(scope)) {
        Ok(requested.iter().collect())
    } else {
        Err(Rejection::InvalidScope("Scope not granted at login".into()))
    }
}

/// Whether refresh grants look at the family's key binding before rotating:
/// whenever DPoP is on.
fn checks_keys(config: &Config) -> bool {
    #[cfg(feature = "dpop")]
    return config.dpop.is_some();
    #[cfg(not(feature = "dpop"))]
    {
        let _ = config;
        false
    }
}

/// Whether a refresh with a proof by `key` (if any) may use a family bound to
/// `bound` (if it is): a bound family needs a proof by its key.
fn proof_fits(bound: Option<&JwkThumbprint>, key: Option<&JwkThumbprint>) -> Result<(), Rejection> {
    match (bound, key) {
        (None, _) => Ok(()),
        (Some(bound), Some(key)) if bound == key => Ok(()),
        (Some(_), Some(_)) => Err(Rejection::InvalidDpopProof(
            "The DPoP proof is not by the key the refresh token is bound to",
        )),
        (Some(_), None) => Err(Rejection::InvalidDpopProof(
            "This refresh token is DPoP-bound: send a DPoP proof by its key",
        )),
    }
}

/// Tells the login policy of a bad refresh token: it counts against the client.
async fn refresh_failed<Us, Ts>(shared: &Shared<Us, Ts>, client: &RefreshAttempt<'_>) {
    if let Some(policy) = &shared.policy {
        tell(policy.refresh_failed(client), "failed refresh grant").await;
    }
}

/// The refresh token a token response carries, when refresh tokens are on.
enum NextRefreshToken {
    /// A login: start a family.
    StartFamily,
    /// A refresh: the rotated token.
    Rotated(RefreshToken),
}

/// Issues the access token for `grant` (its `expires_at` is set here) and writes
/// the token response.
async fn issue<Us, Ts: TokenStore>(
    shared: &Shared<Us, Ts>,
    mut grant: Grant,
    requested: &[String],
    next: NextRefreshToken,
) -> Result<Bytes, Rejection> {
    let config = &shared.config;
    let now = SystemTime::now();
    // The builder bounds lifetimes to a year: these cannot overflow.
    grant.expires_at = now
        .checked_add(config.token_lifetime)
        .ok_or(Rejection::Internal)?;
    let family = match (&shared.refresh, &next) {
        (Some(_), NextRefreshToken::StartFamily) => {
            // The family starts here, so that its first access token carries it.
            let id = FamilyId::random()
                .map_err(|error| Rejection::store_failed("refresh token", error))?;
            grant.family = Some(id);
            Some(grant.clone())
        }
        _ => None,
    };
    let granted = grant.scopes.clone();
    let key_bound = grant.key_binding.is_some();
    let issued = shared
        .tokens
        .issue(grant)
        .await
        .map_err(|error| Rejection::store_failed("token", error))?;
    let refresh_token = match (family, next, &shared.refresh) {
        (Some(family), _, Some(store)) => Some(
            store
                .dyn_issue_refresh_token(family, config.refresh_lifetimes)
                .await
                .map_err(|error| Rejection::store_failed("refresh token", error))?,
        ),
        (_, NextRefreshToken::Rotated(next), _) => Some(next),
        // A store may issue its own (`IssuedToken::refresh_token`).
        _ => issued.refresh_token,
    };
    let response = TokenResponse {
        access_token: issued.access_token.as_str(),
        token_type: if key_bound { "DPoP" } else { "bearer" },
        // To the nearest second: a store may keep expiries to the millisecond.
        expires_in: issued
            .expires_at
            .duration_since(now)
            .map_or(0, |left| (left + Duration::from_millis(500)).as_secs()),
        refresh_token: refresh_token.as_ref().map(|token| token.as_str()),
        scope: (granted.len() != requested.len() && !granted.is_empty())
            .then(|| granted.to_string()),
    };
    serde_json::to_vec(&response)
        .map(Bytes::from)
        .map_err(|_| Rejection::Internal)
}

/// How long past the access-token lifetime a family's end is remembered: an
/// access token being issued for the family while it ends is refused too.
const FAMILY_END_MARGIN: Duration = Duration::from_secs(60);

/// Ends every access token of `family` (and any still being issued for it).
async fn end_family_access_tokens<Us, Ts: TokenStore>(
    shared: &Shared<Us, Ts>,
    family: &FamilyId,
) -> Result<Revocation, Rejection> {
    let until = SystemTime::now()
        .checked_add(shared.config.token_lifetime + FAMILY_END_MARGIN)
        .ok_or(Rejection::Internal)?;
    let revocation = shared
        .tokens
        .revoke_family(family, until)
        .await
        .map_err(|error| Rejection::store_failed("token", error))?;
    if revocation == Revocation::Unsupported {
        tracing::warn!(
            ?family,
            "the token store cannot revoke a family: its access tokens live until they expire"
        );
    }
    Ok(revocation)
}

/// Revokes the token of a revocation request. Both stores are asked: the hint is
/// only a hint (RFC 7009 §2.1), and a token lives in at most one of them.
///
/// A refresh token ends its family, and the family's access tokens with it
/// (RFC 7009 §2.1: "SHOULD"); an access token of a family ends the family too
/// (RFC 7009 §2.1: "MAY"): a logout ends the login, and the JWT denylist holds one
/// entry per login, not one per token.
async fn revoke<ReqBody, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: Request<ReqBody>,
) -> Result<(), Rejection>
where
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    Us: UserStore,
    Ts: TokenStore,
{
    let (parts, encoding, body) = read_form(&shared.config, request).await?;
    let client = shared
        .config
        .trusted_proxies
        .client_ip(&parts.headers, &parts.extensions);
    let form = encoding.parse_revocation(body).await?;
    let family = revoke_token(shared, &form).await?;
    metrics::revoked(family.is_some());
    shared
        .audit
        .record(&AuditEvent::TokenRevoked { family, client });
    Ok(())
}

/// Revokes the form's token; the login it ended, if it named one.
async fn revoke_token<Us, Ts>(
    shared: &Shared<Us, Ts>,
    form: &crate::endpoint::form::RevocationForm,
) -> Result<Option<FamilyId>, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let token = BearerToken::from(form.token.as_str());
    if let Some(store) = &shared.refresh {
        // The access tokens before the refresh token: if the access store fails, the
        // client's retry of the 503 still finds the refresh token, and its family.
        let live = store
            .dyn_peek_refresh_token(token)
            .await
            .map_err(|error| Rejection::store_failed("refresh token", error))?
            .and_then(|grant| grant.family);
        if let Some(family) = &live {
            end_family_access_tokens(shared, family).await?;
        }
        let ended = store
            .dyn_revoke_refresh_token(token)
            .await
            .map_err(|error| Rejection::store_failed("refresh token", error))?;
        if let Some(family) = ended {
            // A store whose peek does not name the family.
            if live != Some(family) {
                end_family_access_tokens(shared, &family).await?;
            }
            return Ok(Some(family));
        }
    }
    let family = shared
        .tokens
        .resolve(token)
        .await
        .map_err(|error| Rejection::store_failed("token", error))?
        .and_then(|grant| grant.family);
    if let Some(family) = family {
        // The refresh family first: if the access store then fails, a retry
        // still finds the token, and its family.
        if let Some(store) = &shared.refresh {
            store
                .dyn_revoke_refresh_family(&family)
                .await
                .map_err(|error| Rejection::store_failed("refresh token", error))?;
        }
        if end_family_access_tokens(shared, &family).await? == Revocation::Revoked {
            return Ok(Some(family));
        }
    }
    let revocation = shared
        .tokens
        .revoke(token, form.hint)
        .await
        .map_err(|error| Rejection::store_failed("token", error))?;
    match revocation {
        Revocation::Revoked => Ok(family),
        // A refresh token, as the client says: its family is ended above.
        Revocation::Unsupported
            if shared.refresh.is_some() && form.hint == Some(TokenTypeHint::RefreshToken) =>
        {
            Ok(family)
        }
        Revocation::Unsupported => Err(Rejection::UnsupportedTokenType),
    }
}

/// Awaits a login policy's notification; its failure changes no answer, so it is
/// only logged.
async fn tell(notification: Lookup<()>, what: &str) {
    if let Err(error) = notification.await {
        tracing::error!(%error, "login policy failed to record a {what}");
    }
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

/// Runs `work` with the hasher on tokio's blocking pool, under one of the
/// `max_concurrent_hashes` permits: each hash takes ~19 MiB and a core, so a flood
/// of logins queues here instead of exhausting memory, in a queue bounded in
/// length and in wait (beyond either: [`Rejection::Busy`]). The permit moves into
/// the blocking task: a client that hangs up does not free it early.
async fn on_hashing_pool<Us, Ts, R>(
    shared: Arc<Shared<Us, Ts>>,
    work: impl FnOnce(&dyn PasswordHasher) -> R + Send + 'static,
) -> Result<R, Rejection>
where
    Us: Send + Sync + 'static,
    Ts: Send + Sync + 'static,
    R: Send + 'static,
{
    let started = Started::now();
    let permit = match Arc::clone(&shared.hashing).try_acquire_owned() {
        Ok(permit) => Ok(permit),
        Err(TryAcquireError::NoPermits) => wait_for_hashing(&shared).await,
        Err(TryAcquireError::Closed) => Err(Rejection::Internal),
    };
    // One entry per password check that asked: a free permit waited ~0.
    metrics::permit_waited(started);
    let permit = permit?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        /// The gauge of running hashes, down again however the work ends.
        struct Running;
        impl Drop for Running {
            fn drop(&mut self) {
                metrics::hash_running(false);
            }
        }
        metrics::hash_running(true);
        let _running = Running;
        work(&*shared.hasher)
    })
    .await
    .map_err(|_| Rejection::Internal)
}

/// Why a login found the queue full (told apart from a wait too long by it).
const QUEUE_FULL: &str = "login queue full";

/// Waits for a hashing permit in the bounded queue.
async fn wait_for_hashing<Us, Ts>(
    shared: &Shared<Us, Ts>,
) -> Result<OwnedSemaphorePermit, Rejection> {
    let config = &shared.config;
    // A place in the queue, given back however the wait ends (the client may hang
    // up, dropping this future).
    struct Place<'a>(&'a AtomicUsize);
    impl Drop for Place<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
            metrics::login_waiting(false);
        }
    }
    let place = Place(&shared.waiting);
    metrics::login_waiting(true);
    if shared.waiting.fetch_add(1, Ordering::Relaxed) >= config.max_waiting_logins {
        return Err(Rejection::Busy(QUEUE_FULL));
    }
    let permit = tokio::time::timeout(
        config.login_wait,
        Arc::clone(&shared.hashing).acquire_owned(),
    )
    .await;
    drop(place);
    match permit {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_closed)) => Err(Rejection::Internal),
        Err(_elapsed) => Err(Rejection::Busy("waited too long for a password check")),
    }
}

/// Checks the password, and hands it back (for a rehash). An unknown user, and a
/// stored hash the hasher cannot check, are checked against the hasher's dummy
/// hash: every failure costs the time of a real verification.
async fn verify<Us, Ts>(
    shared: Arc<Shared<Us, Ts>>,
    password: Password,
    hash: Option<HashedPassword>,
) -> Result<(Verification, Password), Rejection>
where
    Us: Send + Sync + 'static,
    Ts: Send + Sync + 'static,
{
    on_hashing_pool(shared, move |hasher| {
        match hash.map(|hash| hasher.verify(&password, &hash)) {
            Some(Ok(verification)) => return (verification, password),
            // Answered as a wrong password, in the same time: a broken record
            // must not reveal itself.
            Some(Err(error)) => tracing::error!(%error, "stored password hash cannot be verified"),
            None => {}
        }
        hasher.verify_dummy(&password);
        (Verification::Mismatch, password)
    })
    .await
}

/// Stores a fresh hash of `password` for a user whose stored hash is outdated, in
/// the background: the token response does not wait for it.
fn rehash_later<Us, Ts>(shared: Arc<Shared<Us, Ts>>, credentials: &Credentials, password: Password)
where
    Us: UserStore,
    Ts: Send + Sync + 'static,
{
    let subject = credentials.subject.clone();
    let old = credentials.password_hash.clone();
    tokio::spawn(async move {
        let new = on_hashing_pool(Arc::clone(&shared), move |hasher| hasher.hash(&password)).await;
        let stored = match new {
            Ok(Ok(new)) => shared
                .users
                .update_password_hash(&subject, &old, new)
                .await
                .map_err(|error| error.to_string()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the hashing task did not finish".to_owned()),
        };
        match stored {
            Ok(()) => shared.audit.record(&AuditEvent::PasswordRehashed {
                user: AuditUser::new(&subject, shared.config.hash_usernames_in_logs),
            }),
            Err(error) => tracing::error!(user = %subject, %error, "password hash not renewed"),
        }
    });
}
