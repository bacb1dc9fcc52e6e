//! What the layer publishes for other programs with `GET`: its authorization
//! server metadata (RFC 8414) and its JSON Web Key Set (RFC 7517). Both are
//! written once, when the layer is built, and served as they are.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Response, StatusCode};
use serde::Serialize;

use crate::config::Config;
use crate::http::body::ResponseBody;

/// The metadata URL unless the builder says otherwise (RFC 8414 §3).
pub(crate) const DEFAULT_METADATA_URL: &str = "/.well-known/oauth-authorization-server";
/// The JWKS URL unless the builder says otherwise (the name most servers use).
pub(crate) const DEFAULT_JWKS_URL: &str = "/.well-known/jwks.json";

/// The metadata changes only with the configuration (a deployment): an hour.
const METADATA_CACHE_CONTROL: &str = "public, max-age=3600";
/// See [`JWKS_MAX_AGE`](crate::endpoint::jwks::JWKS_MAX_AGE).
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// RFC 8414 §2's fields that apply to a password-grant server.
#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    token_endpoint: String,
    /// Required by RFC 8414 even with no authorization endpoint: none.
    response_types_supported: [&'a str; 0],
    grant_types_supported: Vec<&'a str>,
    /// Public clients: the password grant is for first-party apps without secrets.
    token_endpoint_auth_methods_supported: [&'a str; 1],
    scopes_supported: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint_auth_methods_supported: Option<[&'a str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<String>,
    /// Resource servers authenticate with HTTP Basic.
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint_auth_methods_supported: Option<[&'a str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    /// RFC 9449 §5.1: the algorithms DPoP proofs may use, when DPoP is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_signing_alg_values_supported: Option<Vec<&'static str>>,
}

/// The metadata document of `config` (whose `jwks` says whether a key set is
/// served), or `None` without an issuer or a metadata URL.
pub(crate) fn document(config: &Config, refresh_tokens: bool) -> Option<Bytes> {
    let issuer = config.issuer.as_ref()?;
    config.metadata_url.as_ref()?;
    let mut grant_types = vec!["password"];
    if refresh_tokens {
        grant_types.push("refresh_token");
    }
    let metadata = Metadata {
        issuer: &issuer.url,
        token_endpoint: issuer.url_of(&config.token_url),
        response_types_supported: [],
        grant_types_supported: grant_types,
        token_endpoint_auth_methods_supported: ["none"],
        scopes_supported: config.scopes.iter().map(|(name, _)| &**name).collect(),
        revocation_endpoint: config.revocation_url.as_deref().map(|p| issuer.url_of(p)),
        revocation_endpoint_auth_methods_supported: config
            .revocation_url
            .as_ref()
            .map(|_| ["none"]),
        introspection_endpoint: config.served_introspection_url().map(|p| issuer.url_of(p)),
        introspection_endpoint_auth_methods_supported: config
            .served_introspection_url()
            .map(|_| ["client_secret_basic"]),
        jwks_uri: config
            .jwks
            .as_ref()
            .map(|_| issuer.url_of(&config.jwks_url)),
        dpop_signing_alg_values_supported: dpop_algs(config),
    };
    serde_json::to_vec(&metadata).ok().map(Bytes::from)
}

/// The DPoP proof algorithms accepted, when DPoP is on.
fn dpop_algs(config: &Config) -> Option<Vec<&'static str>> {
    #[cfg(feature = "dpop")]
    return config.dpop.as_ref().map(|dpop| {
        dpop.algorithms_accepted()
            .iter()
            .flat_map(|alg| alg.names().iter().copied())
            .collect()
    });
    #[cfg(not(feature = "dpop"))]
    {
        let _ = config;
        None
    }
}

/// The longest prefix the served `GET` URLs share, so that other requests cost
/// one comparison: `/.well-known/` by default. `None` when none is served.
pub(crate) fn shared_prefix(config: &Config) -> Option<Box<str>> {
    let metadata = config.metadata.as_ref().and(config.metadata_url.as_deref());
    let jwks = config.jwks.as_ref().map(|_| &*config.jwks_url);
    let prefix = match (metadata, jwks) {
        (None, None) => return None,
        (Some(one), None) | (None, Some(one)) => one,
        (Some(a), Some(b)) => {
            let len = a
                .char_indices()
                .zip(b.chars())
                .find(|((_, x), y)| x != y)
                .map_or(a.len().min(b.len()), |((i, _), _)| i);
            &a[..len]
        }
    };
    Some(prefix.into())
}

/// Which document a `GET` URL serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Published {
    Metadata,
    Jwks,
}

impl Published {
    /// The document served at `path`, if any (`path` starts with the shared prefix).
    #[inline(never)]
    pub(crate) fn at(config: &Config, path: &str) -> Option<Self> {
        if config.metadata.is_some() && config.metadata_url.as_deref() == Some(path) {
            Some(Self::Metadata)
        } else if config.jwks.is_some() && path == &*config.jwks_url {
            Some(Self::Jwks)
        } else {
            None
        }
    }

    /// The answer to `method`: the document for `GET` and `HEAD` (the server
    /// sends no body for `HEAD`), 405 with `Allow` for anything else.
    pub(crate) fn answer<B>(self, config: &Config, method: &Method) -> Response<ResponseBody<B>> {
        let (json, cache_control) = match self {
            Self::Metadata => (&config.metadata, METADATA_CACHE_CONTROL),
            Self::Jwks => (&config.jwks, JWKS_CACHE_CONTROL),
        };
        let mut response = if method == Method::GET || method == Method::HEAD {
            let mut response = Response::new(ResponseBody::full(json.clone().unwrap_or_default()));
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
            response
        } else {
            let mut response = Response::new(ResponseBody::full(Bytes::from_static(
                br#"{"detail":"Method Not Allowed"}"#,
            )));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            let headers = response.headers_mut();
            headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        };
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}
