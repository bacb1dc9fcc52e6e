//! The bearer-token guard in front of protected routes.
//!
//! Each decision is a chain of small steps (bearer token → grant → user → scope
//! rules) shared by two drivers: [`decide_now`] runs them in `call` when both stores
//! can answer without waiting (in-memory stores: no future is boxed), and the async
//! [`guard`] runs them for every other store.

use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use tower_service::Service;

use crate::bearer;
use crate::body::ResponseBody;
use crate::clock;
use crate::error::{Protocol, Rejection, StoreError};
use crate::layer::Shared;
use crate::scope::Scopes;
use crate::token::{Grant, TokenStore};
use crate::user::{CurrentUser, StoredUser, UserStore};

/// What the guard lets through: the user and the scopes to put in the extensions.
pub(crate) type Authenticated<U> = (CurrentUser<U>, Scopes);

/// How far [`decide_now`] got without waiting.
pub(crate) enum Progress<U> {
    /// Let through with this user and scopes, or refused.
    Decided(Result<Authenticated<U>, Rejection>),
    /// A store must be awaited; the live grant if the token store answered already
    /// (memory tokens, users in a database), so it is not asked twice.
    Pending(Option<Grant>),
}

/// The async driver. Guarded requests: on success calls `inner` with the user and
/// scopes in the extensions, otherwise answers with the rejection. `public`
/// requests: adds the user if the token is good, and calls `inner` in every case —
/// a bad token or a store failure never turns a public page into an error.
/// It runs after [`decide_now`] returned [`Progress::Pending`]; `known` is the grant
/// that already resolved, if it did.
pub(crate) async fn guard<S, ReqBody, ResBody, Us, Ts, H>(
    shared: Arc<Shared<Us, Ts, H>>,
    mut inner: S,
    mut request: Request<ReqBody>,
    public: bool,
    known: Option<Grant>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Us: UserStore,
    Ts: TokenStore,
{
    // `decide_now` ran first and refused what needs no store (a token in the URL).
    let outcome = authenticate(&shared, request.headers(), known)
        .await
        .and_then(|authenticated| {
            check_rules(&shared, &request, &authenticated.1, public)?;
            Ok(authenticated)
        });
    match outcome {
        Ok(authenticated) => insert(&shared, &mut request, authenticated),
        Err(rejection) if !public => return Ok(reject(&shared, &request, rejection)),
        Err(_) => {}
    }
    let response = inner.call(request).await?;
    Ok(response.map(ResponseBody::inner))
}

/// The guard's decision for `request` as far as it can be made without waiting.
/// `public` requests are only identified, never rejected.
#[inline]
pub(crate) fn decide_now<B, Us, Ts, H>(
    shared: &Shared<Us, Ts, H>,
    request: &Request<B>,
    public: bool,
) -> Progress<Us::User>
where
    Us: UserStore,
    Ts: TokenStore,
{
    if !public {
        if let Err(rejection) = reject_token_in_url(request) {
            return Progress::Decided(Err(rejection));
        }
    }
    let token = match bearer::token(request.headers()) {
        Ok(token) => token,
        Err(rejection) => return Progress::Decided(Err(rejection)),
    };
    let Some(resolved) = shared.tokens.resolve_now(token) else {
        return Progress::Pending(None);
    };
    let grant = match accept_grant(resolved) {
        Ok(grant) => grant,
        Err(rejection) => return Progress::Decided(Err(rejection)),
    };
    let Some(found) = shared.users.find_now(&grant.subject) else {
        return Progress::Pending(Some(grant));
    };
    Progress::Decided(accept_user(grant, found).and_then(|authenticated| {
        check_rules(shared, request, &authenticated.1, public)?;
        Ok(authenticated)
    }))
}

/// Resolves the bearer token in `headers` (unless `known` is its grant already) to
/// an active user and the granted scopes.
pub(crate) async fn authenticate<Us, Ts, H>(
    shared: &Shared<Us, Ts, H>,
    headers: &HeaderMap,
    known: Option<Grant>,
) -> Result<Authenticated<Us::User>, Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let grant = match known {
        Some(grant) => grant,
        None => {
            // Malformed tokens need no round trip to the store.
            let token = bearer::token(headers).and_then(bearer::b64token)?;
            accept_grant(shared.tokens.resolve(token).await)?
        }
    };
    let found = shared.users.find(&grant.subject).await;
    accept_user(grant, found)
}

/// RFC 6750 §2.3 query tokens are refused (see [`bearer::token_in_query`]).
fn reject_token_in_url<B>(request: &Request<B>) -> Result<(), Rejection> {
    if bearer::token_in_query(request.uri()) {
        return Err(Rejection::InvalidRequest(
            "Send the access token in the Authorization header, not in the URL".into(),
        ));
    }
    Ok(())
}

/// A live grant, or why the token is refused. Expiry is checked here too, so a
/// store that forgets it still fails closed (against the coarse clock: a token may
/// be refused up to [`clock::TICK`] early).
#[inline]
fn accept_grant(resolved: Result<Option<Grant>, StoreError>) -> Result<Grant, Rejection> {
    match resolved {
        Ok(Some(grant)) if grant.is_live(clock::now()) => Ok(grant),
        Ok(_) => Err(Rejection::InvalidToken),
        Err(error) => Err(Rejection::store_failed("token", error)),
    }
}

/// The active user the grant names, or why not. On success the username is
/// recorded in the current tracing span's `user` field, when the span declares one.
#[inline]
fn accept_user<U>(
    grant: Grant,
    found: Result<Option<StoredUser<U>>, StoreError>,
) -> Result<Authenticated<U>, Rejection> {
    let stored = match found {
        Ok(Some(stored)) => stored,
        // The user was deleted after the token was issued.
        Ok(None) => return Err(Rejection::InvalidToken),
        Err(error) => return Err(Rejection::store_failed("user", error)),
    };
    // Without a subscriber there is no span to record into (and looking for one
    // is a measurable part of the guard's cost).
    if tracing::dispatcher::has_been_set() {
        record_user(&grant.subject);
    }
    if !stored.active {
        return Err(Rejection::InactiveUser);
    }
    Ok((CurrentUser::new(grant.subject, stored.user), grant.scopes))
}

#[inline(never)]
fn record_user(username: &str) {
    tracing::Span::current().record("user", username);
}

/// The builder's path rules: every rule that applies must be met (public paths
/// have none).
#[inline]
fn check_rules<B, Us, Ts, H>(
    shared: &Shared<Us, Ts, H>,
    request: &Request<B>,
    granted: &Scopes,
    public: bool,
) -> Result<(), Rejection> {
    if public || shared.config.scope_rules.is_empty() {
        return Ok(());
    }
    let (method, path) = (request.method(), request.uri().path());
    let unmet = shared
        .config
        .scope_rules
        .iter()
        .find(|rule| rule.applies_to(method, path) && !rule.requirement.is_met_by(granted));
    match unmet {
        Some(rule) => Err(Rejection::InsufficientScope(rule.requirement.clone())),
        None => Ok(()),
    }
}

/// Puts the user, and the scopes if the layer uses any, where handlers and
/// `RequireScopes` look.
#[inline]
pub(crate) fn insert<B, U, Us, Ts, H>(
    shared: &Shared<Us, Ts, H>,
    request: &mut Request<B>,
    (user, scopes): Authenticated<U>,
) where
    U: Send + Sync + 'static,
{
    let extensions = request.extensions_mut();
    extensions.insert(user);
    if shared.config.uses_scopes() {
        extensions.insert(scopes);
    }
}

/// The response for a rejected request, in the request's protocol.
pub(crate) fn reject<B, ResBody, Us, Ts, H>(
    shared: &Shared<Us, Ts, H>,
    request: &Request<B>,
    rejection: Rejection,
) -> Response<ResponseBody<ResBody>> {
    tracing::debug!(?rejection, "request rejected");
    let protocol = Protocol::of(request.version(), request.headers());
    rejection.into_response(&shared.config.messages, protocol)
}
