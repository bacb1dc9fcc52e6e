//! Scopes: what a token was granted ([`Scopes`]) and what a route needs
//! ([`ScopeRequirement`]).

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use http::HeaderValue;

/// The scopes a token was granted, as a cheap-to-clone set.
///
/// When the layer declares scopes ([`Builder::scope`](crate::layer::Builder::scope)), the
/// guard inserts it into the request extensions beside
/// [`CurrentUser`](crate::CurrentUser), so handlers can check what the caller may do:
///
/// ```
/// use tower_oauth2_password::scope::Scopes;
///
/// let scopes: Scopes = ["me", "items"].into_iter().collect();
/// assert!(scopes.contains("items"));
/// assert_eq!(scopes.to_string(), "me items");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Scopes(
    /// `None` when empty, never `Some` of an empty slice: most tokens have no scope,
    /// and this way they cost no allocation and no reference count.
    Option<Arc<[Box<str>]>>,
);

impl Scopes {
    /// No scope at all.
    pub const fn empty() -> Self {
        Self(None)
    }

    fn as_slice(&self) -> &[Box<str>] {
        self.0.as_deref().unwrap_or_default()
    }

    /// Whether `scope` was granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.as_slice().iter().any(|granted| &**granted == scope)
    }

    /// The granted scopes, in the order they were requested.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.as_slice().iter().map(|scope| &**scope)
    }

    /// How many scopes were granted.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether no scope was granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `Ok` if every one of `scopes` was granted; the error renders as RFC 6750's
    /// 403 `insufficient_scope` (with the `axum` feature, it is an `IntoResponse`).
    ///
    /// ```
    /// use tower_oauth2_password::scope::Scopes;
    ///
    /// let granted: Scopes = ["me"].into_iter().collect();
    /// assert!(granted.require_all(["me"]).is_ok());
    /// assert!(granted.require_all(["me", "items"]).is_err());
    /// ```
    pub fn require_all<I, S>(&self, scopes: I) -> Result<(), InsufficientScope>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<str>,
    {
        self.require_scopes(false, scopes)
    }

    /// `Ok` if at least one of `scopes` was granted.
    pub fn require_any<I, S>(&self, scopes: I) -> Result<(), InsufficientScope>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<str>,
    {
        self.require_scopes(true, scopes)
    }

    fn require_scopes<I, S>(&self, any: bool, scopes: I) -> Result<(), InsufficientScope>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<str>,
    {
        // Checked before any `ScopeRequirement` is built: handlers call this per
        // request, and the requirement (with its header) is only needed to refuse.
        if self.meets(any, scopes.clone()) {
            return Ok(());
        }
        Err(InsufficientScope {
            requirement: ScopeRequirement::new(any, scopes.into_iter().collect()),
        })
    }

    /// Whether any (or all) of `scopes` were granted: the one definition of a met
    /// requirement.
    fn meets<I, S>(&self, any: bool, scopes: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut scopes = scopes.into_iter();
        if any {
            scopes.any(|s| self.contains(s.as_ref()))
        } else {
            scopes.all(|s| self.contains(s.as_ref()))
        }
    }

    /// `Ok` if `requirement` is met.
    pub fn require(&self, requirement: &ScopeRequirement) -> Result<(), InsufficientScope> {
        if requirement.is_met_by(self) {
            Ok(())
        } else {
            Err(InsufficientScope {
                requirement: requirement.clone(),
            })
        }
    }
}

/// Whether a scope is RFC 6749 §3.3 `scope-token` syntax: printable ASCII but
/// space, `"` and `\`.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl Default for Scopes {
    fn default() -> Self {
        Self::empty()
    }
}

/// `items` without repeats, the first occurrence of each keeping its place.
///
/// Linear: clients choose these lists (`scope` in the token request), so a
/// pairwise scan would let one request cost n²/2 comparisons.
pub(crate) fn dedup_in_order<T: Eq + Hash>(mut items: Vec<T>) -> Vec<T> {
    // Short lists, the usual case, are not worth a hash set's allocation.
    const SMALL: usize = 8;
    if items.len() <= SMALL {
        let mut kept = 0;
        for i in 0..items.len() {
            if !items[..kept].contains(&items[i]) {
                items.swap(kept, i);
                kept += 1;
            }
        }
        items.truncate(kept);
        return items;
    }
    let mut seen: HashSet<&T, foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(items.len(), Default::default());
    let first: Vec<bool> = items.iter().map(|item| seen.insert(item)).collect();
    drop(seen);
    items
        .into_iter()
        .zip(first)
        .filter_map(|(item, first)| first.then_some(item))
        .collect()
}

/// Collects scopes, dropping repeats (the first occurrence keeps its place).
impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let scopes: Vec<Box<str>> = iter.into_iter().map(|s| s.as_ref().into()).collect();
        let scopes = dedup_in_order(scopes);
        Self((!scopes.is_empty()).then(|| scopes.into()))
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

/// What a route needs: all of some scopes, or any one of them.
///
/// ```
/// use tower_oauth2_password::scope::{ScopeRequirement, Scopes};
///
/// let granted: Scopes = ["items"].into_iter().collect();
/// assert!(ScopeRequirement::any(["me", "items"]).is_met_by(&granted));
/// assert!(!ScopeRequirement::all(["me", "items"]).is_met_by(&granted));
/// assert!(ScopeRequirement::all(Vec::<String>::new()).is_met_by(&granted));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ScopeRequirement(
    /// Shared: one pointer keeps the guard's rejection type small, and every route
    /// a layer wraps shares the precomputed challenge.
    Arc<Requirement>,
);

#[derive(PartialEq, Eq)]
struct Requirement {
    any: bool,
    scopes: Scopes,
    /// `Bearer error="insufficient_scope", scope="…"`, built once.
    challenge: HeaderValue,
}

impl ScopeRequirement {
    /// Every one of `scopes` (none: always met).
    pub fn all<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(false, scopes.into_iter().collect())
    }

    /// At least one of `scopes` (none: never met).
    pub fn any<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(true, scopes.into_iter().collect())
    }

    fn new(any: bool, scopes: Scopes) -> Self {
        // RFC 6750 §3: the scopes needed, space-separated. A scope that is not
        // valid `scope-token` syntax can never be granted; leave it out of the header
        // rather than produce a broken one.
        let listed: Scopes = scopes.iter().filter(|s| is_scope_token(s)).collect();
        let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{listed}\"");
        let challenge = HeaderValue::try_from(challenge).unwrap_or(HeaderValue::from_static(
            "Bearer error=\"insufficient_scope\"",
        ));
        Self(Arc::new(Requirement {
            any,
            scopes,
            challenge,
        }))
    }

    /// Whether `granted` satisfies the requirement.
    pub fn is_met_by(&self, granted: &Scopes) -> bool {
        granted.meets(self.0.any, self.0.scopes.iter())
    }

    /// The scopes it names.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    pub(crate) fn challenge(&self) -> &HeaderValue {
        &self.0.challenge
    }
}

impl fmt::Debug for ScopeRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.0.any { "any" } else { "all" };
        f.debug_tuple("ScopeRequirement")
            .field(&mode)
            .field(&self.0.scopes)
            .finish()
    }
}

/// A token lacks a scope the route needs: 403 `insufficient_scope` (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientScope {
    pub(crate) requirement: ScopeRequirement,
}

impl InsufficientScope {
    /// What was required.
    pub fn requirement(&self) -> &ScopeRequirement {
        &self.requirement
    }
}

impl fmt::Display for InsufficientScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.requirement.0.any {
            "any of"
        } else {
            "all of"
        };
        write!(
            f,
            "not enough permissions: needs {mode} `{}`",
            self.requirement.0.scopes
        )
    }
}

impl std::error::Error for InsufficientScope {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::hash::Hasher;

    thread_local! {
        static EQ_CALLS: Cell<usize> = const { Cell::new(0) };
    }

    /// A key that counts how often it is compared.
    #[derive(Debug)]
    struct Counted(u32);

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            EQ_CALLS.with(|calls| calls.set(calls.get() + 1));
            self.0 == other.0
        }
    }

    impl Eq for Counted {}

    impl Hash for Counted {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }

    #[test]
    fn dedup_keeps_first_occurrences_in_order() {
        let deduped = dedup_in_order(vec!["b", "a", "b", "c", "a", "d"]);
        assert_eq!(deduped, ["b", "a", "c", "d"]);
        let many: Vec<String> = (0..500).chain(0..500).map(|i| i.to_string()).collect();
        let expected: Vec<String> = (0..500).map(|i| i.to_string()).collect();
        assert_eq!(dedup_in_order(many), expected);
        let scopes: Scopes = ["me", "items", "me", "admin", "items"]
            .into_iter()
            .collect();
        assert_eq!(scopes.to_string(), "me items admin");
    }

    #[test]
    fn dedup_is_linear_not_quadratic() {
        // Distinct keys: a pairwise scan compares ~n²/2 times, a hash set about never.
        let n = 2_000;
        EQ_CALLS.with(|calls| calls.set(0));
        let deduped = dedup_in_order((0..n).map(Counted).collect());
        assert_eq!(deduped.len(), n as usize);
        let calls = EQ_CALLS.with(Cell::get);
        assert!(calls <= 2 * n as usize, "{calls} comparisons for {n} keys");
    }
}
