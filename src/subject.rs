//! [`Subject`]: who a token was issued to.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Names of up to this many bytes are held inline: most usernames and ids.
const INLINE: usize = 22;

/// The canonical name of a user, as their [`UserStore`](crate::UserStore) knows them:
/// what tokens are issued to ([`Grant::subject`](crate::Grant::subject)) and what
/// [`CurrentUser::username`](crate::CurrentUser::username) returns.
///
/// It comes from the store, never from the login form: with a case-insensitive
/// store, `JohnDoe` and `johndoe` log in as one subject.
///
/// Cloning is cheap and touches no shared counter for names of up to 22 bytes
/// (the guard hands the subject from the token store to the user on every
/// request); longer ones share one allocation.
///
/// ```
/// use tower_oauth2_password::Subject;
///
/// let subject = Subject::from("johndoe");
/// assert_eq!(subject, "johndoe");
/// assert_eq!(subject.len(), 7);
/// ```
#[derive(Clone)]
pub struct Subject(Repr);

#[derive(Clone)]
enum Repr {
    /// Always valid UTF-8: only ever copied from a `str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl Subject {
    /// The name's bytes: no UTF-8 check, for hashing and comparing on the guard's
    /// path.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(name) => name.as_bytes(),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Never fails: the bytes were copied from a `str`.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(name) => name,
        }
    }
}

/// The empty name.
impl Default for Subject {
    fn default() -> Self {
        Self(Repr::Inline {
            len: 0,
            bytes: [0; INLINE],
        })
    }
}

impl From<&str> for Subject {
    fn from(name: &str) -> Self {
        if name.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            // `name.len() <= 22` fits a `u8`.
            Self(Repr::Inline {
                len: name.len() as u8,
                bytes,
            })
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

impl From<&Subject> for Subject {
    fn from(subject: &Subject) -> Self {
        subject.clone()
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
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Whole arrays (zero past `len`): a few word compares, no `memcmp` call.
            (Repr::Inline { len, bytes }, Repr::Inline { len: l, bytes: b }) => {
                len == l && bytes == b
            }
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
