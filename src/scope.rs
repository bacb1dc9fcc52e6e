//! The scopes granted to a token.

use std::fmt;
use std::sync::Arc;

/// The scopes a token was granted, as a cheap-to-clone set.
///
/// The guard inserts it into the request extensions beside
/// [`CurrentUser`](crate::CurrentUser), so handlers can check what the caller may do:
///
/// ```
/// use tower_oauth2_password::Scopes;
///
/// let scopes: Scopes = ["me", "items"].into_iter().collect();
/// assert!(scopes.contains("items"));
/// assert_eq!(scopes.to_string(), "me items");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Scopes(Arc<[Box<str>]>);

impl Scopes {
    /// No scope at all.
    pub fn empty() -> Self {
        Self(Arc::new([]))
    }

    /// Whether `scope` was granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|granted| &**granted == scope)
    }

    /// The granted scopes, in the order they were requested.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|scope| &**scope)
    }

    /// How many scopes were granted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no scope was granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Scopes {
    fn default() -> Self {
        Self::empty()
    }
}

/// Collects scopes, dropping repeats (the first occurrence keeps its place).
impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut scopes: Vec<Box<str>> = Vec::new();
        for scope in iter {
            let scope = scope.as_ref();
            if !scopes.iter().any(|s| &**s == scope) {
                scopes.push(scope.into());
            }
        }
        Self(scopes.into())
    }
}

/// Space-separated, as in the `scope` parameter of RFC 6749 §3.3.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}
