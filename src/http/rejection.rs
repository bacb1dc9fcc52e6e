//! Every way a request can be turned away, and how each one renders: as a JSON
//! document over HTTP, or as a trailers-only response for gRPC clients.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;

use crate::http::body::ResponseBody;
use crate::scope::{InsufficientScope, ScopeRequirement};
use crate::store::StoreError;

/// Why the layer answered a request itself instead of passing it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No `Authorization: Bearer` credentials (absent, another scheme, empty token).
    MissingCredentials,
    /// A bearer token that is unknown, expired, revoked, malformed or forged.
    InvalidToken,
    /// The token is fine but the user it names is disabled.
    InactiveUser,
    /// The token lacks a scope the route needs (RFC 6750 `insufficient_scope`).
    InsufficientScope(ScopeRequirement),
    /// The token endpoint was asked for an unknown or malformed scope.
    InvalidScope(Cow<'static, str>),
    /// The token or revocation endpoint's request is malformed (RFC 6749 §5.2
    /// `invalid_request`).
    InvalidRequest(Cow<'static, str>),
    /// A protected route's request is malformed (RFC 6750 §3.1 `invalid_request`:
    /// several `Authorization` headers, a token in the URL); answered with a
    /// `WWW-Authenticate` challenge, as RFC 6750 §3 asks of every guard error.
    InvalidBearerRequest(&'static str),
    /// Unknown user or wrong password: one answer for both, on purpose.
    InvalidGrant,
    /// `grant_type` other than `password` (and `refresh_token`, when `refresh`
    /// tokens are served).
    UnsupportedGrantType { refresh: bool },
    /// A refresh token that is unknown, expired, revoked, reused or no longer
    /// matches its user (RFC 6749 §5.2 `invalid_grant`).
    InvalidRefreshToken,
    /// The revocation endpoint cannot revoke this token (RFC 7009 §2.2.1).
    UnsupportedTokenType,
    /// The token endpoint got something other than a form.
    UnsupportedMediaType,
    /// The token endpoint body is over the limit (in bytes).
    PayloadTooLarge(usize),
    /// The token endpoint body did not arrive within the time limit.
    RequestTimeout,
    /// A method other than `POST` on the token endpoint.
    MethodNotAllowed,
    /// The login policy refused the attempt; retry after this long.
    TooManyAttempts(Duration),
    /// A user or token store failed; never treated as "not found".
    Unavailable,
    /// Too many logins wait for a password check, or this one waited too long
    /// (the reason, for the logs).
    Busy(&'static str),
    /// A bug or a panic in a password hasher: nothing the client did.
    Internal,
    /// The token endpoint's DPoP proof is missing, malformed, replayed or not
    /// by the key the refresh token is bound to (RFC 9449 §5: 400
    /// `invalid_dpop_proof`).
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    InvalidDpopProof(&'static str),
    /// A protected route's DPoP proof is refused (RFC 9449 §7.1: 401
    /// `invalid_dpop_proof`, with a `DPoP` challenge).
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    DpopProofRefused(&'static str),
    /// A token that must come with a proof came without one (a bound token sent
    /// as `Bearer`, `Bearer` where DPoP is required), or an unbound token came
    /// as `DPoP`: 401 `invalid_token` with a `DPoP` challenge.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    InvalidDpopToken,
    /// The proof lacks a live server nonce (RFC 9449 §8): `use_dpop_nonce`, with
    /// this one in `DPoP-Nonce`; 401 with a challenge at the guard, 400 at the
    /// token endpoint.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    UseDpopNonce { nonce: HeaderValue, guard: bool },
}

/// How rejections are worded: the parts of the contract users may change.
#[derive(Debug, Clone)]
pub(crate) struct Messages {
    pub(crate) invalid_token_detail: Cow<'static, str>,
    /// The 401 `invalid_token` body, serialised once: bad tokens are the common
    /// rejection under attack.
    pub(crate) invalid_token_body: Bytes,
    pub(crate) inactive_user_status: StatusCode,
    pub(crate) insufficient_scope_status: StatusCode,
    /// With DPoP on: its challenges, written once.
    #[cfg(feature = "dpop")]
    pub(crate) dpop: Option<DpopChallenges>,
}

/// The `WWW-Authenticate: DPoP` challenges (RFC 9449 §7.1), with the accepted
/// algorithms: written when the layer is built, not per rejection.
#[cfg(feature = "dpop")]
#[derive(Debug, Clone)]
pub(crate) struct DpopChallenges {
    /// Whether DPoP is required (then a request without credentials is
    /// challenged with `DPoP` alone).
    required: bool,
    plain: HeaderValue,
    invalid_token: HeaderValue,
    invalid_proof: HeaderValue,
    use_nonce: HeaderValue,
}

#[cfg(feature = "dpop")]
impl DpopChallenges {
    /// The challenges naming `algs` (space-separated JOSE names).
    pub(crate) fn new(algs: &'static str, required: bool) -> Self {
        let value = |error: &str| {
            let text = if error.is_empty() {
                format!("DPoP algs=\"{algs}\"")
            } else {
                format!("DPoP error=\"{error}\", algs=\"{algs}\"")
            };
            // JOSE algorithm names are header-safe.
            HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
        };
        Self {
            required,
            plain: value(""),
            invalid_token: value("invalid_token"),
            invalid_proof: value("invalid_dpop_proof"),
            use_nonce: value("use_dpop_nonce"),
        }
    }
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            invalid_token_detail: Cow::Borrowed("Invalid authentication credentials"),
            invalid_token_body: Bytes::from_static(
                br#"{"detail":"Invalid authentication credentials","error":"invalid_token"}"#,
            ),
            inactive_user_status: StatusCode::BAD_REQUEST,
            insufficient_scope_status: StatusCode::FORBIDDEN,
            #[cfg(feature = "dpop")]
            dpop: None,
        }
    }
}

impl Messages {
    pub(crate) fn set_invalid_token_detail(&mut self, detail: Cow<'static, str>) {
        self.invalid_token_detail = detail;
        self.invalid_token_body = Rejection::InvalidToken.serialize(self);
    }
}

/// Which wire the rejection goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http,
    /// gRPC: answer with a gRPC status, since tonic maps a bare HTTP 4xx without
    /// `grpc-status` to `Internal`/`Unknown`.
    Grpc,
    /// gRPC-Web (`text`: the base64 `-text` variant): the same trailers-only
    /// answer, under its own content type.
    GrpcWeb {
        text: bool,
    },
}

impl Protocol {
    /// gRPC clients get gRPC statuses; everyone else JSON.
    ///
    /// gRPC means HTTP/2 and `content-type: application/grpc` (alone, or followed
    /// by `+…` or `;…`): an HTTP/1.1 client sending that content type is not a gRPC
    /// client, and a 200 would tell it, and every cache or log on the way, that it
    /// got through.
    ///
    /// gRPC-Web (`application/grpc-web[-text][+…|;…]`) is recognised at any HTTP
    /// version, as it exists to run over HTTP/1.1. That covers this layer outside
    /// tonic-web's `GrpcWebLayer`. Inside it, requests arrive rewritten to
    /// `content-type: application/grpc` with their HTTP version unchanged (tonic-web
    /// 0.14 `coerce_request`), so an HTTP/1.1 gRPC-Web call is indistinguishable from
    /// a plain HTTP/1.1 client and gets JSON; gRPC-Web clients read its status
    /// (401, 403, 503) as UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE.
    pub(crate) fn of(version: http::Version, headers: &http::HeaderMap) -> Self {
        let Some(content_type) = headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes) else {
            return Self::Http;
        };
        if let Some(rest) = content_type.strip_prefix(b"application/grpc-web") {
            let (text, rest) = match rest.strip_prefix(b"-text") {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            return if ends_media_type(rest) {
                Self::GrpcWeb { text }
            } else {
                Self::Http
            };
        }
        match content_type.strip_prefix(b"application/grpc") {
            Some(rest) if version == http::Version::HTTP_2 && ends_media_type(rest) => Self::Grpc,
            _ => Self::Http,
        }
    }
}

/// Whether `rest`, what follows a media type's name, ends it: nothing, a `+suffix`
/// or parameters.
fn ends_media_type(rest: &[u8]) -> bool {
    matches!(rest.first(), None | Some(b'+' | b';'))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// gRPC status codes we answer with.
mod grpc_code {
    pub(super) const INVALID_ARGUMENT: u8 = 3;
    pub(super) const PERMISSION_DENIED: u8 = 7;
    pub(super) const RESOURCE_EXHAUSTED: u8 = 8;
    pub(super) const INTERNAL: u8 = 13;
    pub(super) const UNAVAILABLE: u8 = 14;
    pub(super) const UNAUTHENTICATED: u8 = 16;
}

/// `grpc-message` is percent-encoded: everything outside printable ASCII, and `%`.
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

impl Rejection {
    /// A store failed (`store` says which): logged, and answered 503. Out of line
    /// and cold, so the guard's success path stays small enough to inline.
    #[cold]
    #[inline(never)]
    pub(crate) fn store_failed(store: &'static str, error: StoreError) -> Self {
        tracing::error!(%error, "{store} store failed");
        Self::Unavailable
    }

    fn status(&self, messages: &Messages) -> StatusCode {
        match self {
            Self::MissingCredentials
            | Self::InvalidToken
            | Self::DpopProofRefused(_)
            | Self::InvalidDpopToken
            | Self::UseDpopNonce { guard: true, .. } => StatusCode::UNAUTHORIZED,
            Self::InvalidDpopProof(_) | Self::UseDpopNonce { guard: false, .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::InactiveUser => messages.inactive_user_status,
            Self::InsufficientScope(_) => messages.insufficient_scope_status,
            Self::InvalidRequest(_)
            | Self::InvalidBearerRequest(_)
            | Self::InvalidGrant
            | Self::InvalidScope(_)
            | Self::InvalidRefreshToken
            | Self::UnsupportedTokenType
            | Self::UnsupportedGrantType { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6749 / 6750 error code, where one applies.
    fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::MissingCredentials | Self::InactiveUser | Self::MethodNotAllowed => None,
            Self::InvalidToken | Self::InvalidDpopToken => Some("invalid_token"),
            Self::InvalidDpopProof(_) | Self::DpopProofRefused(_) => Some("invalid_dpop_proof"),
            Self::UseDpopNonce { .. } => Some("use_dpop_nonce"),
            Self::InsufficientScope(_) => Some("insufficient_scope"),
            Self::InvalidScope(_) => Some("invalid_scope"),
            Self::InvalidRequest(_)
            | Self::InvalidBearerRequest(_)
            | Self::UnsupportedMediaType
            | Self::PayloadTooLarge(_)
            | Self::RequestTimeout => Some("invalid_request"),
            Self::InvalidGrant | Self::InvalidRefreshToken => Some("invalid_grant"),
            Self::UnsupportedGrantType { .. } => Some("unsupported_grant_type"),
            Self::UnsupportedTokenType => Some("unsupported_token_type"),
            // RFC 6749 has no code for it: the client should retry later.
            Self::TooManyAttempts(_) | Self::Unavailable | Self::Busy(_) => {
                Some("temporarily_unavailable")
            }
            Self::Internal => Some("server_error"),
        }
    }

    fn detail<'a>(&'a self, messages: &'a Messages) -> Cow<'a, str> {
        Cow::Borrowed(match self {
            Self::MissingCredentials => "Not authenticated",
            Self::InvalidToken | Self::InvalidDpopToken => &messages.invalid_token_detail,
            Self::InvalidDpopProof(detail) | Self::DpopProofRefused(detail) => detail,
            Self::UseDpopNonce { .. } => "Use the server's DPoP nonce",
            Self::InactiveUser => "Inactive user",
            Self::InsufficientScope(_) => "Not enough permissions",
            Self::InvalidRequest(detail) | Self::InvalidScope(detail) => detail,
            Self::InvalidBearerRequest(detail) => detail,
            Self::InvalidGrant => "Incorrect username or password",
            Self::UnsupportedGrantType { refresh: false } => {
                "Unsupported grant_type: only \"password\" is supported"
            }
            Self::UnsupportedGrantType { refresh: true } => {
                "Unsupported grant_type: only \"password\" and \"refresh_token\" are supported"
            }
            Self::InvalidRefreshToken => "Invalid refresh token",
            Self::UnsupportedTokenType => "This token cannot be revoked",
            Self::UnsupportedMediaType => {
                "Expected a form: Content-Type must be application/x-www-form-urlencoded or multipart/form-data"
            }
            Self::PayloadTooLarge(limit) => {
                return Cow::Owned(format!("Request body too large: the limit is {limit} bytes"))
            }
            Self::RequestTimeout => "Request body did not arrive in time",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::TooManyAttempts(_) => "Too many login attempts, try again later",
            Self::Unavailable => "Service temporarily unavailable, try again later",
            Self::Busy(_) => "Too many logins at once, try again shortly",
            Self::Internal => "Internal server error",
        })
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3) for guard rejections.
    fn challenge(&self, messages: &Messages) -> Option<HeaderValue> {
        #[cfg(feature = "dpop")]
        if let Some(dpop) = &messages.dpop {
            return match self {
                Self::MissingCredentials if dpop.required => Some(dpop.plain.clone()),
                Self::InvalidDpopToken => Some(dpop.invalid_token.clone()),
                Self::DpopProofRefused(_) => Some(dpop.invalid_proof.clone()),
                Self::UseDpopNonce { guard: true, .. } => Some(dpop.use_nonce.clone()),
                _ => self.bearer_challenge(),
            };
        }
        #[cfg(not(feature = "dpop"))]
        let _ = messages;
        self.bearer_challenge()
    }

    /// The `Bearer` challenge, for the rejections that have one.
    fn bearer_challenge(&self) -> Option<HeaderValue> {
        match self {
            Self::MissingCredentials => Some(HeaderValue::from_static("Bearer")),
            Self::InvalidToken => Some(HeaderValue::from_static("Bearer error=\"invalid_token\"")),
            Self::InvalidBearerRequest(_) => {
                Some(HeaderValue::from_static("Bearer error=\"invalid_request\""))
            }
            Self::InsufficientScope(requirement) => Some(requirement.challenge().clone()),
            _ => None,
        }
    }

    fn grpc_code(&self) -> u8 {
        match self {
            Self::MissingCredentials
            | Self::InvalidToken
            | Self::InvalidDpopToken
            | Self::DpopProofRefused(_)
            | Self::UseDpopNonce { guard: true, .. } => grpc_code::UNAUTHENTICATED,
            Self::InactiveUser | Self::InsufficientScope(_) => grpc_code::PERMISSION_DENIED,
            Self::TooManyAttempts(_) => grpc_code::RESOURCE_EXHAUSTED,
            Self::Unavailable | Self::Busy(_) => grpc_code::UNAVAILABLE,
            Self::Internal => grpc_code::INTERNAL,
            _ => grpc_code::INVALID_ARGUMENT,
        }
    }

    /// Renders the rejection for the wire the request came in on.
    pub(crate) fn into_response<B>(
        self,
        messages: &Messages,
        protocol: Protocol,
    ) -> Response<ResponseBody<B>> {
        let mut response = match protocol {
            Protocol::Http => self.into_http(messages),
            Protocol::Grpc => self.into_grpc(messages, "application/grpc"),
            Protocol::GrpcWeb { text: false } => self.into_grpc(messages, "application/grpc-web"),
            Protocol::GrpcWeb { text: true } => {
                self.into_grpc(messages, "application/grpc-web-text")
            }
        };
        // A rejection is about this request and these credentials: no cache may
        // keep it (RFC 6749 §5.1 asks the same of the token endpoint's answers).
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// The JSON body.
    fn serialize(&self, messages: &Messages) -> Bytes {
        let body = ErrorBody {
            detail: &self.detail(messages),
            error: self.error_code(),
        };
        // Serialising a struct of two strings cannot fail.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The JSON body; the frequent fixed ones are not serialised per request (a unit
    /// test checks they equal what `serialize` makes).
    fn body(&self, messages: &Messages) -> Bytes {
        match self {
            Self::MissingCredentials => Bytes::from_static(br#"{"detail":"Not authenticated"}"#),
            Self::InvalidToken | Self::InvalidDpopToken => messages.invalid_token_body.clone(),
            Self::InactiveUser => Bytes::from_static(br#"{"detail":"Inactive user"}"#),
            Self::InvalidGrant => Bytes::from_static(
                br#"{"detail":"Incorrect username or password","error":"invalid_grant"}"#,
            ),
            Self::InsufficientScope(_) => Bytes::from_static(
                br#"{"detail":"Not enough permissions","error":"insufficient_scope"}"#,
            ),
            _ => self.serialize(messages),
        }
    }

    fn into_http<B>(self, messages: &Messages) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::full(self.body(messages)));
        *response.status_mut() = self.status(messages);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(challenge) = self.challenge(messages) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        // DPoP allowed, not required: a client without credentials may use either.
        #[cfg(feature = "dpop")]
        if let (Self::MissingCredentials, Some(dpop)) = (&self, &messages.dpop) {
            if !dpop.required {
                headers.append(WWW_AUTHENTICATE, dpop.plain.clone());
            }
        }
        match self {
            Self::UseDpopNonce { nonce, .. } => {
                headers.insert("dpop-nonce", nonce);
            }
            Self::MethodNotAllowed => {
                headers.insert(ALLOW, HeaderValue::from_static("POST"));
            }
            Self::Unavailable | Self::Busy(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyAttempts(retry_after) => {
                // Whole seconds, rounded up, at least 1.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }

    fn into_grpc<B>(
        self,
        messages: &Messages,
        content_type: &'static str,
    ) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            "grpc-status",
            HeaderValue::from(u16::from(self.grpc_code())),
        );
        let message = utf8_percent_encode(&self.detail(messages), GRPC_MESSAGE).to_string();
        if let Ok(value) = HeaderValue::try_from(message) {
            headers.insert("grpc-message", value);
        }
        response
    }
}

impl InsufficientScope {
    /// The response: 403 JSON `{"detail": "Not enough permissions", "error":
    /// "insufficient_scope"}` with the `WWW-Authenticate` challenge naming the scopes.
    ///
    /// Behind [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer), the layer gives it
    /// the status set with
    /// [`Builder::insufficient_scope_status`](crate::layer::Builder::insufficient_scope_status).
    pub fn into_http<B>(self) -> http::Response<crate::http::body::ResponseBody<B>> {
        let mut response = Rejection::InsufficientScope(self.requirement)
            .into_response(&Messages::default(), Protocol::Http);
        response.extensions_mut().insert(ScopeRefused);
        response
    }
}

/// Marks a response made by [`InsufficientScope::into_http`], so that the layer it
/// passes back through can give it the layer's status.
#[derive(Debug, Clone, Copy)]
struct ScopeRefused;

/// Gives a scope refusal made inside the layer the layer's configured status.
#[inline]
pub(crate) fn restate_scope_refusal<B>(response: &mut Response<B>, status: StatusCode) {
    if response.extensions().get::<ScopeRefused>().is_some() {
        *response.status_mut() = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: Response<ResponseBody<http_body_util::Empty<Bytes>>>) -> Bytes {
        use http_body_util::BodyExt;
        let collected = futures_util::FutureExt::now_or_never(response.into_body().collect());
        collected
            .expect("full body is ready")
            .expect("infallible")
            .to_bytes()
    }

    #[test]
    fn invalid_grant_is_the_contract_body() {
        let response = Rejection::InvalidGrant.into_response(&Messages::default(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_of(response),
            r#"{"detail":"Incorrect username or password","error":"invalid_grant"}"#
        );
    }

    #[test]
    fn prebuilt_bodies_are_what_serialisation_makes() {
        let mut custom = Messages::default();
        custom.set_invalid_token_detail(Cow::Borrowed("Not authenticated"));
        for messages in [Messages::default(), custom] {
            for rejection in [
                Rejection::MissingCredentials,
                Rejection::InvalidToken,
                Rejection::InactiveUser,
                Rejection::InvalidGrant,
                Rejection::InsufficientScope(ScopeRequirement::all(["me"])),
            ] {
                assert_eq!(
                    rejection.body(&messages),
                    rejection.serialize(&messages),
                    "{rejection:?}"
                );
            }
        }
    }

    #[test]
    fn insufficient_scope_names_the_scopes() {
        let requirement = ScopeRequirement::all(["me", "items"]);
        let response = Rejection::InsufficientScope(requirement)
            .into_response::<http_body_util::Empty<Bytes>>(&Messages::default(), Protocol::Http);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", scope="me items""#
        );
        assert_eq!(
            body_of(response),
            r#"{"detail":"Not enough permissions","error":"insufficient_scope"}"#
        );
    }

    #[test]
    fn grpc_form_only_for_grpc_over_http2_or_grpc_web() {
        use http::Version;
        let grpc_web = Protocol::GrpcWeb { text: false };
        let grpc_web_text = Protocol::GrpcWeb { text: true };
        for (version, content_type, expected) in [
            (Version::HTTP_2, Some("application/grpc"), Protocol::Grpc),
            (
                Version::HTTP_2,
                Some("application/grpc+proto"),
                Protocol::Grpc,
            ),
            (
                Version::HTTP_2,
                Some("application/grpc;charset=x"),
                Protocol::Grpc,
            ),
            (Version::HTTP_11, Some("application/grpc"), Protocol::Http),
            (
                Version::HTTP_10,
                Some("application/grpc+proto"),
                Protocol::Http,
            ),
            (Version::HTTP_2, Some("application/grpcfoo"), Protocol::Http),
            (
                Version::HTTP_2,
                Some("application/grpc-webfoo"),
                Protocol::Http,
            ),
            (Version::HTTP_2, Some("Application/GRPC"), Protocol::Http),
            (Version::HTTP_2, Some("application/json"), Protocol::Http),
            (Version::HTTP_2, None, Protocol::Http),
            (Version::HTTP_11, Some("application/grpc-web"), grpc_web),
            (
                Version::HTTP_11,
                Some("application/grpc-web+proto"),
                grpc_web,
            ),
            (Version::HTTP_2, Some("application/grpc-web;x=y"), grpc_web),
            (
                Version::HTTP_11,
                Some("application/grpc-web-text"),
                grpc_web_text,
            ),
            (
                Version::HTTP_11,
                Some("application/grpc-web-text+proto"),
                grpc_web_text,
            ),
            (
                Version::HTTP_11,
                Some("application/grpc-web-textual"),
                Protocol::Http,
            ),
        ] {
            let mut headers = http::HeaderMap::new();
            if let Some(content_type) = content_type {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            assert_eq!(
                Protocol::of(version, &headers),
                expected,
                "{version:?} {content_type:?}"
            );
        }
    }

    #[test]
    fn every_rejection_is_no_store_on_every_wire() {
        let rejections = [
            Rejection::MissingCredentials,
            Rejection::InvalidToken,
            Rejection::InactiveUser,
            Rejection::InsufficientScope(ScopeRequirement::all(["me"])),
            Rejection::InvalidScope("x".into()),
            Rejection::InvalidRequest("x".into()),
            Rejection::InvalidGrant,
            Rejection::UnsupportedGrantType { refresh: false },
            Rejection::InvalidRefreshToken,
            Rejection::UnsupportedTokenType,
            Rejection::UnsupportedMediaType,
            Rejection::PayloadTooLarge(1),
            Rejection::RequestTimeout,
            Rejection::MethodNotAllowed,
            Rejection::Unavailable,
            Rejection::Busy("queue full"),
            Rejection::Internal,
        ];
        let protocols = [
            Protocol::Http,
            Protocol::Grpc,
            Protocol::GrpcWeb { text: false },
            Protocol::GrpcWeb { text: true },
        ];
        for rejection in rejections {
            for protocol in protocols {
                let response = rejection
                    .clone()
                    .into_response::<http_body_util::Empty<Bytes>>(&Messages::default(), protocol);
                assert_eq!(
                    response.headers()[CACHE_CONTROL],
                    "no-store",
                    "{rejection:?} {protocol:?}"
                );
            }
        }
    }

    #[test]
    fn throttled_and_busy_logins_are_resource_exhausted_and_unavailable_in_grpc() {
        for (rejection, code) in [
            (Rejection::TooManyAttempts(Duration::from_secs(9)), "8"),
            (Rejection::Busy("queue full"), "14"),
        ] {
            let response = rejection.into_response::<http_body_util::Empty<Bytes>>(
                &Messages::default(),
                Protocol::Grpc,
            );
            assert_eq!(response.headers()["grpc-status"], code);
        }
    }

    #[test]
    fn grpc_web_rejection_has_its_content_type() {
        let response = Rejection::InsufficientScope(ScopeRequirement::all(["me"]))
            .into_response::<http_body_util::Empty<Bytes>>(
            &Messages::default(),
            Protocol::GrpcWeb { text: true },
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/grpc-web-text"
        );
        assert_eq!(response.headers()["grpc-status"], "7");
        assert!(body_of(response).is_empty());
    }

    #[test]
    fn grpc_rejection_is_trailers_only_with_encoded_message() {
        let mut messages = Messages::default();
        messages.set_invalid_token_detail(Cow::Borrowed("100% bad\ntoken é"));
        let response = Rejection::InvalidToken.into_response(&messages, Protocol::Grpc);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(
            response.headers()["grpc-message"],
            "100%25 bad%0Atoken %C3%A9"
        );
        assert!(body_of(response).is_empty());
    }
}
