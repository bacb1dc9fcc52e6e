//! [`BaseUrl`]: a URL the service is known by (the RFC 8414 issuer, the public
//! URL DPoP proofs name), and the absolute URLs of the layer's paths under it.

use crate::guard::paths::under;

/// A URL the builder accepted: the URL itself, and its origin
/// (`scheme://authority`), which the layer's paths are appended to.
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl {
    pub(crate) url: Box<str>,
    origin: Box<str>,
    /// The URL's path without a trailing `/` (`""` for none).
    path: Box<str>,
}

impl BaseUrl {
    /// Checks `url` as RFC 8414 §2 asks of an issuer: `https` (or `http`, for a
    /// laptop or a service behind a TLS-terminating proxy on a private network), a
    /// host, no query, no fragment, no user information. `Err` says what is wrong,
    /// naming the setting `what`.
    pub(crate) fn parse_as(what: &str, url: &str) -> Result<Self, String> {
        if url.contains(['?', '#']) {
            return Err(format!(
                "{what} {url:?} has a query or fragment (RFC 8414 §2)"
            ));
        }
        let uri: http::Uri = url.parse().map_err(|error| {
            format!("{what} {url:?} is not an https:// (or http://) URL: {error}")
        })?;
        let scheme = match uri.scheme_str() {
            Some(scheme @ ("https" | "http")) => scheme,
            _ => {
                return Err(format!(
                    "{what} {url:?} is not an https:// (or http://) URL"
                ))
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("{what} {url:?} has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(format!("{what} {url:?} has user information"));
        }
        Ok(Self {
            url: url.into(),
            origin: format!("{scheme}://{authority}").into(),
            path: uri.path().trim_end_matches('/').into(),
        })
    }

    /// The absolute URL of the layer's `path` (as the layer sees it): the origin
    /// and `path` when `path` is under the URL's path (the client's path, a
    /// `nest` prefix included), else the URL and `path` (a proxy in front
    /// strips the URL's path before the layer sees it). Either way it is under
    /// the URL, as RFC 8414 §3.3 lets clients check.
    pub(crate) fn url_of(&self, path: &str) -> String {
        let (origin, base) = self.prefix_of(path);
        format!("{origin}{base}{path}")
    }

    /// What [`BaseUrl::url_of`] puts before `path`: the origin, and the URL's
    /// path or `""`; for callers that join them without a `String`.
    pub(crate) fn prefix_of(&self, path: &str) -> (&str, &str) {
        if under(path, &self.path) {
            (&self.origin, "")
        } else {
            (&self.origin, &self.path)
        }
    }
}
