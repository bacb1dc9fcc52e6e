//! Which paths the guard lets through without a token.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

type Predicate = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Public paths: exact paths, segment-aware prefixes, and an optional predicate.
#[derive(Clone, Default)]
pub(crate) struct PublicRoutes {
    exact: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
    predicate: Option<Predicate>,
}

impl PublicRoutes {
    pub(crate) fn add_path(&mut self, path: &str) {
        self.exact.push(path.into());
    }

    pub(crate) fn add_prefix(&mut self, prefix: &str) {
        let prefix = prefix.trim_end_matches('/');
        self.prefixes.push(prefix.into());
    }

    pub(crate) fn set_predicate(&mut self, predicate: Predicate) {
        self.predicate = Some(predicate);
    }

    pub(crate) fn has_predicate(&self) -> bool {
        self.predicate.is_some()
    }

    /// Whether `path` is public by the path rules (the predicate aside).
    #[inline]
    pub(crate) fn matches_path(&self, path: &str) -> bool {
        if self.exact.iter().any(|exact| **exact == *path) {
            return true;
        }
        // A prefix never matches a path with dot segments: a proxy or router that
        // normalises `/static/../users/me` would otherwise serve a protected route
        // as public. Such paths stay guarded (fail closed).
        !self.prefixes.is_empty()
            && !has_dot_segment(path)
            && self.prefixes.iter().any(|prefix| under(path, prefix))
    }

    pub(crate) fn matches_predicate(&self, parts: &Parts) -> bool {
        self.predicate
            .as_ref()
            .is_some_and(|predicate| predicate(parts))
    }
}

/// `/docs` covers `/docs` and `/docs/…`, not `/docsecret`.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

pub(crate) fn has_dot_segment(path: &str) -> bool {
    path.contains('\\') || path.split('/').any(is_dot_segment)
}

/// `.` or `..`, each dot possibly percent-encoded (`%2e`, `%2E`); no allocation, as
/// this runs on guarded requests whenever prefix rules exist.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    matches!(dots, 1 | 2)
}

impl fmt::Debug for PublicRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicRoutes")
            .field("exact", &self.exact)
            .field("prefixes", &self.prefixes)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> PublicRoutes {
        let mut routes = PublicRoutes::default();
        routes.add_path("/health");
        routes.add_prefix("/docs/");
        routes
    }

    #[test]
    fn exact_paths() {
        let routes = routes();
        assert!(routes.matches_path("/health"));
        assert!(!routes.matches_path("/health/"));
        assert!(!routes.matches_path("/healthz"));
        assert!(!routes.matches_path("/HEALTH"));
    }

    #[test]
    fn prefixes_are_segment_aware() {
        let routes = routes();
        assert!(routes.matches_path("/docs"));
        assert!(routes.matches_path("/docs/"));
        assert!(routes.matches_path("/docs/openapi.json"));
        assert!(!routes.matches_path("/docsecret"));
        assert!(!routes.matches_path("/users/me"));
    }

    #[test]
    fn dot_segments_never_match_a_prefix() {
        let routes = routes();
        for path in [
            "/docs/../users/me",
            "/docs/%2e%2e/users/me",
            "/docs/%2E./users/me",
            "/docs/./x",
            "/docs/..",
            "/docs/..\\users",
        ] {
            assert!(!routes.matches_path(path), "{path}");
        }
    }
}
