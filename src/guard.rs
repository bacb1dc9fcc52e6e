//! The bearer-token guard in front of protected routes.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Request, Response};
use tower_service::Service;

use crate::bearer;
use crate::body::ResponseBody;
use crate::error::{Protocol, Rejection};
use crate::layer::Shared;
use crate::scope::Scopes;
use crate::token::TokenStore;
use crate::user::{CurrentUser, UserStore};

/// Authenticates `request`; on success calls `inner` with the user and scopes in the
/// extensions, otherwise answers with the rejection.
pub(crate) async fn guard<S, ReqBody, ResBody, Us, Ts, H>(
    shared: Arc<Shared<Us, Ts, H>>,
    mut inner: S,
    mut request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Us: UserStore,
    Ts: TokenStore,
{
    let outcome = if bearer::token_in_query(request.uri()) {
        Err(Rejection::InvalidRequest(
            "Send the access token in the Authorization header, not in the URL".into(),
        ))
    } else {
        authenticate(&shared, request.headers())
            .await
            .and_then(|(user, scopes)| {
                let (method, path) = (request.method(), request.uri().path());
                match shared.config.scope_rules.iter().find(|rule| {
                    rule.applies_to(method, path) && !rule.requirement.is_met_by(&scopes)
                }) {
                    Some(rule) => Err(Rejection::InsufficientScope(rule.requirement.clone())),
                    None => Ok((user, scopes)),
                }
            })
    };
    match outcome {
        Ok((user, scopes)) => {
            let extensions = request.extensions_mut();
            extensions.insert(user);
            extensions.insert(scopes);
            let response = inner.call(request).await?;
            Ok(response.map(ResponseBody::inner))
        }
        Err(rejection) => {
            tracing::debug!(?rejection, "request rejected");
            let protocol = Protocol::of(request.headers());
            Ok(rejection.into_response(&shared.config.messages, protocol))
        }
    }
}

/// On a public path: adds the user and scopes if the request carries a valid token of
/// an active user, and calls `inner` in every case. A bad token or a store failure
/// leaves the request anonymous; it never turns a public page into an error.
pub(crate) async fn identify<S, ReqBody, ResBody, Us, Ts, H>(
    shared: Arc<Shared<Us, Ts, H>>,
    mut inner: S,
    mut request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Us: UserStore,
    Ts: TokenStore,
{
    if let Ok((user, scopes)) = authenticate(&shared, request.headers()).await {
        let extensions = request.extensions_mut();
        extensions.insert(user);
        extensions.insert(scopes);
    }
    let response = inner.call(request).await?;
    Ok(response.map(ResponseBody::inner))
}

/// Resolves the bearer token in `headers` to an active user and the granted scopes.
///
/// On success the username is recorded in the current tracing span's `user` field,
/// when the span declares one.
pub(crate) async fn authenticate<Us, Ts, H>(
    shared: &Shared<Us, Ts, H>,
    headers: &HeaderMap,
) -> Result<(CurrentUser<Us::User>, Scopes), Rejection>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let token = bearer::token(headers)?;
    let grant = match shared.tokens.resolve(token).await {
        Ok(Some(grant)) if grant.is_live(SystemTime::now()) => grant,
        Ok(_) => return Err(Rejection::InvalidToken),
        Err(error) => {
            tracing::error!(%error, "token store failed");
            return Err(Rejection::Unavailable);
        }
    };
    let stored = match shared.users.find(&grant.subject).await {
        Ok(Some(stored)) => stored,
        // The user was deleted after the token was issued.
        Ok(None) => return Err(Rejection::InvalidToken),
        Err(error) => {
            tracing::error!(%error, "user store failed");
            return Err(Rejection::Unavailable);
        }
    };
    tracing::Span::current().record("user", &*grant.subject);
    if !stored.active {
        return Err(Rejection::InactiveUser);
    }
    Ok((CurrentUser::new(grant.subject, stored.user), grant.scopes))
}
