//! The bearer-token guard in front of protected routes.
//!
//! Each decision is a chain of small steps (bearer token → grant → user → scope
//! rules) shared by two drivers: [`decide_now`] runs them in `call` as far as the
//! stores answer at once (in-memory stores: all the way, and no future is boxed),
//! and the async [`guard`] finishes what is left when a store must be awaited.

use http::{Method, Request, Response};
use tower_service::Service;

use crate::clock;
use crate::config::{ScopeRule, Shared};
#[cfg(feature = "dpop")]
use crate::dpop::replay::Sighting;
use crate::guard::bearer;
use crate::guard::paths::client_path;
use crate::guard::paths::spellings;
use crate::http::body::ResponseBody;
use crate::http::rejection::{restate_scope_refusal, Protocol, Rejection};
use crate::metrics::{self, GuardOutcome, Started};
use crate::scope::Scopes;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::{BearerToken, Grant};
use crate::token::store::TokenStore;
use crate::user::current::CurrentUser;
use crate::user::store::{Principal, UserStore};
use crate::user::subject::Subject;

/// What the guard lets through: the user and the scopes to put in the extensions.
pub(crate) type Authenticated<U> = (CurrentUser<U>, Scopes);

/// How far [`decide_now`] got without waiting.
pub(crate) enum Progress<U> {
    /// Let through (the user and scopes are in the request's extensions), or
    /// refused.
    Decided(Result<(), Rejection>),
    /// A store must be awaited. Boxed: that path allocates anyway, and a small
    /// `Progress` is returned in registers on the path that decides at once.
    Pending(Box<Pending<U>>),
}

/// The lookup to await, and what is known already.
pub(crate) enum Pending<U> {
    /// The token store's answer (users in memory or not).
    Grant(Lookup<Option<Grant>>),
    /// The token resolved at once (memory tokens) and the user store's answer is
    /// on its way (users in a database).
    Principal(Grant, Lookup<Option<Principal<U>>>),
    /// `Authorization: DPoP`: a proof read but not yet verified, and the token
    /// store's answer; the key binding, the signature and the replay store are
    /// checked when it comes. Boxed: `Pending` is allocated at its largest
    /// variant's size, and a read proof is four times a Bearer request's.
    #[cfg(feature = "dpop")]
    Dpop(
        Box<crate::dpop::proof::ReadProof<http::HeaderValue>>,
        Lookup<Option<Grant>>,
    ),
    /// `Authorization: DPoP`: the token is bound to the proof's key, and the
    /// replay store's answer is on its way.
    #[cfg(feature = "dpop")]
    Replay(Grant, Lookup<Sighting>),
}

/// The async driver, after [`decide_now`] returned [`Progress::Pending`]. Guarded
/// requests: on success calls `inner` with the user and scopes in the extensions,
/// otherwise answers with the rejection. `public` requests: adds the user if the
/// token is good, and calls `inner` in every case — a bad token or a store failure
/// never turns a public page into an error.
pub(crate) async fn guard<S, ReqBody, ResBody, Us, Ts>(
    shared: std::sync::Arc<Shared<Us, Ts>>,
    mut inner: S,
    mut request: Request<ReqBody>,
    public: bool,
    pending: Box<Pending<Us::User>>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Us: UserStore,
    Ts: TokenStore,
{
    // Timed only here, where a store is awaited: the ready path would pay two
    // clock reads (~40 ns) to measure a few hundred nanoseconds of memory lookups.
    let started = Started::now();
    let store = match *pending {
        Pending::Grant(_) => "token",
        #[cfg(feature = "dpop")]
        Pending::Dpop(..) => "token",
        #[cfg(feature = "dpop")]
        Pending::Replay(..) => "dpop_replay",
        Pending::Principal(..) => "user",
    };
    let authenticated = authenticate(&shared, *pending).await;
    metrics::lookup_awaited(store, started);
    let outcome = authenticated.and_then(|authenticated| {
        check_rules(&shared, &request, &authenticated.1, public)?;
        Ok(authenticated)
    });
    if !public {
        count(&shared, &outcome);
    }
    match outcome {
        Ok(authenticated) => insert(&shared, &mut request, authenticated),
        Err(rejection) if !public => return Ok(reject(&shared, &request, rejection)),
        Err(_) => {}
    }
    let mut response = inner.call(request).await?;
    if let Some(status) = shared.config.custom_scope_status() {
        restate_scope_refusal(&mut response, status);
    }
    Ok(response.map(ResponseBody::inner))
}

/// Awaits what [`decide_now`] left pending, up to an active user and the granted
/// scopes.
async fn authenticate<Us, Ts>(
    shared: &Shared<Us, Ts>,
    pending: Pending<Us::User>,
) -> Result<Authenticated<Us::User>, Rejection>
where
    Us: UserStore,
{
    #[cfg(feature = "dpop")]
    let dpop = matches!(pending, Pending::Dpop(..) | Pending::Replay(..));
    let authenticated = authenticate_found(shared, pending).await;
    #[cfg(feature = "dpop")]
    if dpop {
        return authenticated.map_err(in_dpop_scheme);
    }
    authenticated
}

/// [`authenticate`]'s steps.
async fn authenticate_found<Us, Ts>(
    shared: &Shared<Us, Ts>,
    pending: Pending<Us::User>,
) -> Result<Authenticated<Us::User>, Rejection>
where
    Us: UserStore,
{
    let (grant, found) = match pending {
        Pending::Grant(resolved) => {
            let grant = accept_grant(resolved.await)?;
            #[cfg(feature = "dpop")]
            unbound(&grant)?;
            let found = shared.users.principal(&grant.subject);
            (grant, found)
        }
        #[cfg(feature = "dpop")]
        Pending::Dpop(mut proof, resolved) => {
            let grant = accept_grant(resolved.await)?;
            first_sighting(bound_to_proof(shared, &grant, &mut proof)?.await)?;
            let found = shared.users.principal(&grant.subject);
            (grant, found)
        }
        #[cfg(feature = "dpop")]
        Pending::Replay(grant, sighting) => {
            first_sighting(sighting.await)?;
            let found = shared.users.principal(&grant.subject);
            (grant, found)
        }
        Pending::Principal(grant, found) => (grant, found),
    };
    accept_user(grant.subject, grant.scopes, grant.stamp, found.await)
}

/// The guard's decision for `request` as far as it can be made without waiting;
/// a request let through gets the user and scopes in its extensions here.
/// `public` requests are only identified, never rejected.
///
/// The insert is part of the steps, not left to the caller: the user and scopes
/// handed back through `Progress` were moved as one aggregate twice more, and
/// each move, 16-byte loads of what 8-byte stores had just written, stalled on
/// store-to-load forwarding (perf on the guard bench, AMD EPYC).
#[inline]
pub(crate) fn decide_now<B, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: &mut Request<B>,
    public: bool,
) -> Progress<Us::User>
where
    Us: UserStore,
    Ts: TokenStore,
{
    let progress = decide_steps(shared, request, public);
    // Not even the test without the feature: the guard's path stays as it was.
    #[cfg(feature = "metrics")]
    if let (false, Progress::Decided(outcome)) = (public, &progress) {
        count(shared, outcome);
    }
    progress
}

/// Counts a guarded request's decision (nothing without the `metrics` feature).
#[inline(always)]
fn count<T, Us, Ts>(shared: &Shared<Us, Ts>, outcome: &Result<T, Rejection>) {
    let outcome = match outcome {
        Ok(_) => GuardOutcome::Passed,
        Err(Rejection::MissingCredentials) => GuardOutcome::Missing,
        Err(Rejection::InactiveUser) => GuardOutcome::Inactive,
        Err(Rejection::InsufficientScope(_)) => GuardOutcome::InsufficientScope,
        Err(Rejection::Unavailable) => GuardOutcome::StoreError,
        Err(Rejection::InvalidBearerRequest(_)) => GuardOutcome::BadRequest,
        Err(_) => GuardOutcome::Invalid,
    };
    metrics::guarded(&shared.metrics, outcome);
}

/// The steps of [`decide_now`].
#[inline(always)]
fn decide_steps<B, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: &mut Request<B>,
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
        // Not `Bearer`: perhaps `DPoP`.
        #[cfg(feature = "dpop")]
        Err(Rejection::MissingCredentials) if shared.config.dpop.is_some() => {
            return match dpop_steps(shared, request, public) {
                Progress::Decided(Err(rejection)) => {
                    Progress::Decided(Err(in_dpop_scheme(rejection)))
                }
                progress => progress,
            };
        }
        Err(rejection) => return Progress::Decided(Err(rejection)),
    };
    #[cfg(feature = "dpop")]
    if let Some(dpop) = &shared.config.dpop {
        if dpop.mode == crate::dpop::settings::DpopMode::Required
            || dpop_required_at(&shared.config.dpop_rules, request)
        {
            return Progress::Decided(Err(Rejection::InvalidDpopToken));
        }
    }
    // The grant is checked where it lies: passed through `accept_grant` it was
    // copied twice more.
    let grant = match shared.tokens.resolve(BearerToken::new(token)).into_ready() {
        Ok(Ok(Some(grant))) if grant.is_live(clock::now()) => grant,
        Ok(refused) => return Progress::Decided(Err(grant_refusal(refused))),
        Err(pending) => return pending_on(Pending::Grant(pending)),
    };
    #[cfg(feature = "dpop")]
    if let Err(rejection) = unbound(&grant) {
        return Progress::Decided(Err(rejection));
    }
    user_steps(shared, request, public, grant)
}

/// The steps after a live grant: its user, then the scope rules.
#[inline(always)]
fn user_steps<B, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: &mut Request<B>,
    public: bool,
    grant: Grant,
) -> Progress<Us::User>
where
    Us: UserStore,
{
    let found = match shared.users.principal(&grant.subject).into_ready() {
        Ok(found) => found,
        Err(pending) => return pending_on(Pending::Principal(grant, pending)),
    };
    // The rules read the scopes on a borrow, and the user and scopes then go
    // straight into the extensions: nothing is handed back.
    let outcome =
        accept_user(grant.subject, grant.scopes, grant.stamp, found).and_then(|authenticated| {
            check_rules(shared, request, &authenticated.1, public)?;
            insert(shared, request, authenticated);
            Ok(())
        });
    Progress::Decided(outcome)
}

/// A store must be awaited. Out of line and cold: stores in memory never get here,
/// and the boxing inlined sat between the steps of the path that lets a request
/// through.
#[cold]
#[inline(never)]
fn pending_on<U>(pending: Pending<U>) -> Progress<U> {
    Progress::Pending(Box::new(pending))
}

/// A request with `Authorization: DPoP <token>` (anything else has no
/// credentials): its proof, the token's binding, the replay store and the user,
/// as far as the stores answer at once; the rest is awaited in [`authenticate`].
#[cfg(feature = "dpop")]
#[inline(never)]
fn dpop_steps<B, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: &mut Request<B>,
    public: bool,
) -> Progress<Us::User>
where
    Us: UserStore,
    Ts: TokenStore,
{
    use crate::dpop::settings::RequestParts;

    let Some(dpop) = &shared.config.dpop else {
        return Progress::Decided(Err(Rejection::MissingCredentials));
    };
    let token = match bearer::dpop_token(request.headers()) {
        Ok(token) => token,
        Err(rejection) => return Progress::Decided(Err(rejection)),
    };
    // `ath` is the hash of the token's ASCII text (RFC 9449 §4.2): a token that
    // is not ASCII is no token.
    if !token.is_ascii() {
        return Progress::Decided(Err(Rejection::InvalidDpopToken));
    }
    let parts = RequestParts {
        method: request.method(),
        uri: request.uri(),
        path: client_path(request),
        headers: request.headers(),
        extensions: request.extensions(),
        proxies: &shared.config.trusted_proxies,
    };
    // The proof is read, the token resolved and its binding compared before the
    // signature is checked: a request with an unknown, expired or revoked token,
    // or a proof by another key, costs no signature check.
    let mut proof = match dpop.read(parts, Some(token)) {
        Ok(proof) => proof,
        Err(refusal) => return Progress::Decided(Err(proof_refused(refusal))),
    };
    let resolved = match shared.tokens.resolve(BearerToken::new(token)).into_ready() {
        Ok(resolved) => resolved,
        Err(pending) => return pending_on(Pending::Dpop(Box::new(proof.into_owned()), pending)),
    };
    let grant = match accept_grant(resolved) {
        Ok(grant) => grant,
        Err(rejection) => return Progress::Decided(Err(rejection)),
    };
    let sighting = match bound_to_proof(shared, &grant, &mut proof) {
        Ok(sighting) => sighting,
        Err(rejection) => return Progress::Decided(Err(rejection)),
    };
    match sighting.into_ready() {
        Ok(answer) => match first_sighting(answer) {
            Ok(()) => user_steps(shared, request, public, grant),
            Err(rejection) => Progress::Decided(Err(rejection)),
        },
        Err(pending) => pending_on(Pending::Replay(grant, pending)),
    }
}

/// Whether a rule of [`Builder::require_dpop`](crate::layer::Builder::require_dpop)
/// covers the request.
#[cfg(feature = "dpop")]
#[inline]
fn dpop_required_at<B>(rules: &[crate::config::PathRule<()>], request: &Request<B>) -> bool {
    if rules.is_empty() {
        return false;
    }
    let path = spellings(client_path(request));
    rules
        .iter()
        .any(|rule| rule.applies_to(request.method(), &path))
}

/// A grant presented as `Bearer`: refused if it is bound to a key (its holder
/// must prove it holds the key).
#[cfg(feature = "dpop")]
#[inline]
fn unbound(grant: &Grant) -> Result<(), Rejection> {
    match grant.key_binding {
        None => Ok(()),
        Some(_) => Err(Rejection::InvalidDpopToken),
    }
}

/// Whether a grant presented as `DPoP` is bound to the proof's key; if it is,
/// the proof's signature is checked and the proof given to the replay store,
/// whose answer [`first_sighting`] reads.
#[cfg(feature = "dpop")]
fn bound_to_proof<Us, Ts, P: AsRef<[u8]>>(
    shared: &Shared<Us, Ts>,
    grant: &Grant,
    proof: &mut crate::dpop::proof::ReadProof<P>,
) -> Result<Lookup<Sighting>, Rejection> {
    use crate::dpop::replay::ProofId;

    match &grant.key_binding {
        Some(key) if *key == proof.thumbprint() => {}
        Some(_) => {
            return Err(Rejection::DpopProofRefused(
                "The DPoP proof is not by the key the token is bound to",
            ))
        }
        // A bearer token sent as DPoP (RFC 9449 §7.1: the token must be bound).
        None => return Err(Rejection::InvalidDpopToken),
    }
    let Some(dpop) = &shared.config.dpop else {
        return Err(Rejection::InvalidDpopToken);
    };
    let proof = dpop.finish(proof).map_err(proof_refused)?;
    Ok(dpop
        .replay
        .remember(&ProofId::from(&proof), dpop.remember_until(&proof)))
}

/// A token refused in a request that presented it as `DPoP` (unknown, expired,
/// its user gone or changed) is challenged as DPoP (RFC 9449 §7.1), not Bearer.
#[cfg(feature = "dpop")]
fn in_dpop_scheme(rejection: Rejection) -> Rejection {
    match rejection {
        Rejection::InvalidToken => Rejection::InvalidDpopToken,
        other => other,
    }
}

/// The guard's answer to a refused proof.
#[cfg(feature = "dpop")]
fn proof_refused(refusal: crate::dpop::settings::ProofRefusal) -> Rejection {
    use crate::dpop::settings::ProofRefusal;

    match refusal {
        ProofRefusal::Invalid(detail) => Rejection::DpopProofRefused(detail),
        ProofRefusal::UseNonce(nonce) => Rejection::UseDpopNonce { nonce, guard: true },
    }
}

/// Refuses a proof the replay store saw before (or could not check).
#[cfg(feature = "dpop")]
fn first_sighting(answer: Result<Sighting, StoreError>) -> Result<(), Rejection> {
    let sighting = answer.map_err(|error| Rejection::store_failed("DPoP replay", error))?;
    if sighting.is_replay() {
        return Err(Rejection::DpopProofRefused("DPoP proof already used"));
    }
    Ok(())
}

/// RFC 6750 §2.3 query tokens are refused (see [`bearer::token_in_query`]).
fn reject_token_in_url<B>(request: &Request<B>) -> Result<(), Rejection> {
    if bearer::token_in_query(request.uri()) {
        return Err(Rejection::InvalidBearerRequest(
            "Send the access token in the Authorization header, not in the URL",
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
        refused => Err(grant_refusal(refused)),
    }
}

/// Why a token the store answered for is refused: unknown, expired, or the
/// store failed. Out of line and cold: the path that lets a request through never
/// calls it.
#[cold]
#[inline(never)]
fn grant_refusal(resolved: Result<Option<Grant>, StoreError>) -> Rejection {
    match resolved {
        Ok(_) => Rejection::InvalidToken,
        Err(error) => Rejection::store_failed("token", error),
    }
}

/// The active user the grant names, or why not. On success the username is
/// recorded in the current tracing span's `user` field, when the span declares one.
///
/// Takes the grant's parts, not the grant: moving the whole grant (about 120
/// bytes) in was one more copy per request.
#[inline(always)]
fn accept_user<U>(
    subject: Subject,
    scopes: Scopes,
    stamp: u64,
    found: Result<Option<Principal<U>>, StoreError>,
) -> Result<Authenticated<U>, Rejection> {
    let principal = match found {
        Ok(Some(principal)) => principal,
        // The user was removed after the token was issued.
        Ok(None) => return Err(Rejection::InvalidToken),
        Err(error) => return Err(Rejection::store_failed("user", error)),
    };
    // The password changed, a scope was taken away, or this is another user of
    // the same name: the token's login no longer stands.
    if principal.stamp != stamp {
        return Err(Rejection::InvalidToken);
    }
    // Without a subscriber there is no span to record into (and looking for one
    // is a measurable part of the guard's cost).
    if tracing::dispatcher::has_been_set() {
        record_user(&subject);
    }
    if !principal.active {
        return Err(Rejection::InactiveUser);
    }
    Ok((CurrentUser::from_shared(subject, principal.user), scopes))
}

#[inline(never)]
fn record_user(username: &str) {
    tracing::Span::current().record("user", username);
}

/// The builder's path rules: every rule that applies must be met (public paths
/// have none).
#[inline(always)]
fn check_rules<B, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: &Request<B>,
    granted: &Scopes,
    public: bool,
) -> Result<(), Rejection> {
    let rules = &shared.config.scope_rules;
    if public || rules.is_empty() {
        return Ok(());
    }
    match unmet_rule(rules, request.method(), client_path(request), granted) {
        Some(rule) => Err(Rejection::InsufficientScope(rule.requirement.clone())),
        None => Ok(()),
    }
}

/// The first rule that applies and is not met. Out of line: apps without rules
/// keep the inlined check above to one comparison.
#[inline(never)]
fn unmet_rule<'a>(
    rules: &'a [ScopeRule],
    method: &Method,
    path: &str,
    granted: &Scopes,
) -> Option<&'a ScopeRule> {
    // Once per request, not once per rule: it may have to normalise the path.
    let path = spellings(path);
    rules
        .iter()
        .find(|rule| rule.applies_to(method, &path) && !rule.requirement.is_met_by(granted))
}

/// Puts the user, and the scopes if the layer uses any, where handlers and
/// `RequireScopes` look. Always inlined: out of line (LLVM's choice) it was a
/// function of its own on every guarded request's path.
#[inline(always)]
pub(crate) fn insert<B, U, Us, Ts>(
    shared: &Shared<Us, Ts>,
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
pub(crate) fn reject<B, ResBody, Us, Ts>(
    shared: &Shared<Us, Ts>,
    request: &Request<B>,
    rejection: Rejection,
) -> Response<ResponseBody<ResBody>> {
    tracing::debug!(?rejection, "request rejected");
    let protocol = Protocol::of(request.version(), request.headers());
    rejection.into_response(&shared.config.messages, protocol)
}
