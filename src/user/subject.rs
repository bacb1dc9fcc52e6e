//! [`Subject`]: who a token was issued to.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Names of up to this many bytes are held inline: most usernames and ids.
const INLINE: usize = 23;

/// The canonical name of a user, as their [`UserStore`](crate::user::UserStore) knows them:
/// what tokens are issued to ([`Grant::subject`](crate::token::Grant::subject)) and what
/// [`CurrentUser::username`](crate::CurrentUser::username) returns.
///
/// It comes from the store, never from the login form: with a case-insensitive
/// store, `JohnDoe` and `johndoe` log in as one subject.
///
/// Cloning is cheap and touches no shared counter for names of up to 23 bytes
/// (the guard hands the subject from the token store to the user on every
/// request); longer ones share one allocation.
///
/// ```
/// use tower_oauth2_password::user::Subject;
///
/// let subject = Subject::from("johndoe");
/// assert_eq!(subject, "johndoe");
/// assert_eq!(subject.len(), 7);
/// ```
#[derive(Clone)]
pub struct Subject(Repr);

#[derive(Clone)]
enum Repr {
    Inline(Inline),
    Shared(Arc<str>),
}

/// A short name and its length in one aligned 24-byte value, copied whole as three
/// words. (A length byte and a byte array beside an enum tag were copied field by
/// field at odd offsets, and every later word-sized read of a grant holding them
/// stalled on store-to-load forwarding: a measured share of the guard's time.)
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Inline {
    /// Always valid UTF-8 up to `len`, zero after: only ever copied from a `str`.
    bytes: [u8; INLINE],
    /// Its unused values (24 to 255) are where `Repr` keeps its discriminant, so
    /// that an inline `Repr` is written whole, with no tag byte of its own.
    len: Len,
}

/// 0 to 23 (the capacity of [`Inline`]).
#[derive(Clone, Copy)]
#[repr(u8)]
#[rustfmt::skip]
enum Len {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17,
    L18, L19, L20, L21, L22, L23,
}

#[rustfmt::skip]
const LENS: [Len; INLINE + 1] = [
    Len::L0, Len::L1, Len::L2, Len::L3, Len::L4, Len::L5, Len::L6, Len::L7, Len::L8,
    Len::L9, Len::L10, Len::L11, Len::L12, Len::L13, Len::L14, Len::L15, Len::L16,
    Len::L17, Len::L18, Len::L19, Len::L20, Len::L21, Len::L22, Len::L23,
];

impl Inline {
    const EMPTY: Self = Self {
        bytes: [0; INLINE],
        len: Len::L0,
    };

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Subject {
    /// The name's bytes: no UTF-8 check, for hashing and comparing on the guard's
    /// path (inlined there: five instructions).
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(inline) => inline.as_bytes(),
            Repr::Shared(name) => name.as_bytes(),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Never fails: the bytes were copied from a `str`.
            Repr::Inline(inline) => std::str::from_utf8(inline.as_bytes()).unwrap_or_default(),
            Repr::Shared(name) => name,
        }
    }
}

/// The empty name.
impl Default for Subject {
    fn default() -> Self {
        Self(Repr::Inline(Inline::EMPTY))
    }
}

impl From<&str> for Subject {
    fn from(name: &str) -> Self {
        if let Some(&len) = LENS.get(name.len()) {
            let mut inline = Inline::EMPTY;
            inline.bytes[..name.len()].copy_from_slice(name.as_bytes());
            inline.len = len;
            Self(Repr::Inline(inline))
        } else {
            Self(Repr::Shared(name.into()))
        }
    }
}

impl From<String> for Subject {
    fn from(name: String) -> Self {
        Self::from(name.as_str())
    }
}

impl From<Arc<str>> for Subject {
    fn from(name: Arc<str>) -> Self {
        if name.len() <= INLINE {
            Self::from(&*name)
        } else {
            Self(Repr::Shared(name))
        }
    }
}

impl Deref for Subject {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Subject {
    // Inlined into the user store's map lookup: called once per guarded request.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Whole arrays (zero past `len`): a few word compares, no `memcmp` call.
            (Repr::Inline(a), Repr::Inline(b)) => a.len as u8 == b.len as u8 && a.bytes == b.bytes,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Subject {}

impl PartialEq<str> for Subject {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Subject {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// Hashes its bytes (not as a `str`, which would check UTF-8 on every lookup).
impl Hash for Subject {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_words_and_every_length_round_trips() {
        assert_eq!(std::mem::size_of::<Subject>(), 24);
        for len in 0..=64 {
            let name: String = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let subject = Subject::from(name.as_str());
            assert_eq!(subject.as_str(), name);
            assert_eq!(Subject::from(Arc::<str>::from(name.as_str())), subject);
            assert_eq!(subject.clone(), subject);
        }
    }
}
