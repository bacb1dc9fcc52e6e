//! Password hashing: the [`PasswordHasher`] trait and its Argon2id implementation
//! (which also verifies legacy bcrypt hashes, with the `bcrypt` feature).

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{self, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// A password hash in PHC string format (`$argon2id$v=19$m=…`), as stored in a user
/// database; with the `bcrypt` feature, also a bcrypt hash (`$2b$12$…`) migrated
/// from an older system.
///
/// Its `Debug` output is redacted, and it is never part of a response.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedPassword(Arc<str>);

impl HashedPassword {
    /// Checks that `phc` is a well-formed PHC string and wraps it.
    ///
    /// ```
    /// use tower_oauth2_password::password::HashedPassword;
    ///
    /// assert!(HashedPassword::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$dGVzdHRlc3R0ZXN0dGVzdA").is_ok());
    /// assert!(HashedPassword::parse("secret").is_err());
    /// ```
    pub fn parse(phc: &str) -> Result<Self, PasswordError> {
        #[cfg(feature = "bcrypt")]
        if legacy::is_bcrypt(phc) {
            return Ok(Self(phc.into()));
        }
        PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
        Ok(Self(phc.into()))
    }

    /// The PHC string, to store it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HashedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedPassword(<redacted>)")
    }
}

/// What can go wrong while hashing or verifying a password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// A stored hash is not a PHC string this hasher can verify.
    MalformedHash,
    /// Hashing failed (bad parameters, no randomness for a salt).
    Hashing(String),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedHash => f.write_str("stored password hash is not a valid PHC string"),
            Self::Hashing(reason) => write!(f, "password hashing failed: {reason}"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// Wrong password.
    Mismatch,
    /// Right password.
    Match,
    /// Right password, but the stored hash uses older parameters or another
    /// algorithm: the layer stores a fresh hash
    /// ([`UserStore::update_password_hash`](crate::user::UserStore::update_password_hash)).
    MatchNeedsRehash,
}

impl Verification {
    /// Whether the password is right.
    pub fn is_match(self) -> bool {
        !matches!(self, Self::Mismatch)
    }
}

/// Hashes and verifies passwords.
///
/// The layer calls [`verify`](Self::verify) and [`verify_dummy`](Self::verify_dummy)
/// on tokio's blocking thread pool, never on the async workers: they are meant to be
/// slow. It holds the hasher as a trait object (it is only used at login), so
/// choosing another one does not change the layer's type.
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a new password into a PHC string, with a fresh random salt.
    fn hash(&self, password: &str) -> Result<HashedPassword, PasswordError>;

    /// Whether `password` matches `hash`. A mismatch is
    /// [`Verification::Mismatch`], not an error; a hash this hasher cannot check
    /// is an error (the layer then does the work of
    /// [`verify_dummy`](Self::verify_dummy), answers as for a wrong password, and
    /// logs it).
    fn verify(&self, password: &str, hash: &HashedPassword) -> Result<Verification, PasswordError>;

    /// Does the work of [`verify`](Self::verify) against a hash that matches no
    /// password, so that "unknown user" takes as long as "wrong password" and the
    /// two cannot be told apart.
    fn verify_dummy(&self, password: &str);
}

/// Argon2id with the OWASP-recommended parameters by default (19 MiB, 2 passes,
/// 1 lane), storing PHC strings.
///
/// ```
/// use tower_oauth2_password::{Argon2Hasher, PasswordHasher};
///
/// let hasher = Argon2Hasher::new();
/// let hash = hasher.hash("correct horse battery staple")?;
/// assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
/// assert!(hasher.verify("correct horse battery staple", &hash)?.is_match());
/// assert!(!hasher.verify("Tr0ub4dor&3", &hash)?.is_match());
/// # Ok::<(), tower_oauth2_password::password::PasswordError>(())
/// ```
#[derive(Clone)]
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    dummy: HashedPassword,
}

/// The hash of an empty password under the default parameters, with a fixed salt:
/// it only has to cost what a real verification costs. Precomputed so that building
/// a hasher is free; a unit test checks it against the defaults.
const DEFAULT_DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$dW5rbm93bi11c2VyLWR1bW15$8ir7Ztk/IojpdcE8yoCHKqrcCyzDpaxwCokZAUV+d6c";
const DUMMY_SALT: &str = "dW5rbm93bi11c2VyLWR1bW15";

impl Argon2Hasher {
    /// Argon2id, version 0x13, m = 19456 KiB, t = 2, p = 1 (OWASP's first choice).
    pub fn new() -> Self {
        Self {
            argon2: Argon2::default(),
            dummy: HashedPassword(DEFAULT_DUMMY_HASH.into()),
        }
    }

    /// Argon2id with other costs: memory in KiB, passes, lanes. Hashes stored with
    /// other parameters still verify (the PHC string carries its own); new hashes and
    /// the unknown-user check use these.
    pub fn with_params(memory_kib: u32, passes: u32, lanes: u32) -> Result<Self, PasswordError> {
        let params = Params::new(memory_kib, passes, lanes, None)
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = hash_with_salt(&argon2, "", DUMMY_SALT)?;
        Ok(Self { argon2, dummy })
    }
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("params", self.argon2.params())
            .finish_non_exhaustive()
    }
}

fn hash_with_salt(
    argon2: &Argon2<'_>,
    password: &str,
    salt: &str,
) -> Result<HashedPassword, PasswordError> {
    use argon2::PasswordHasher as _;
    let salt = SaltString::from_b64(salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let hash = argon2
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(HashedPassword(hash.to_string().into()))
}

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &str) -> Result<HashedPassword, PasswordError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
        hash_with_salt(&self.argon2, password, salt.as_str())
    }

    /// Hashes stored with other parameters verify with their own, and answer
    /// [`Verification::MatchNeedsRehash`]. One cheaper than this hasher's is also
    /// followed by a dummy verification, so that a weak legacy hash does not tell
    /// an attacker in microseconds that its user exists.
    ///
    /// With the `bcrypt` feature, bcrypt hashes (`$2a$`, `$2b$`, `$2y$`) verify
    /// too. As the systems that wrote them did, bcrypt reads only the first 72
    /// bytes of a password. A match of a password of at most 72 bytes answers
    /// [`Verification::MatchNeedsRehash`], so the login renews the hash as
    /// Argon2id. A longer one answers [`Verification::Match`] and keeps the bcrypt
    /// hash (with an `info` log line saying so): renewing it would hash every typed
    /// byte, and a typo past byte 72 would become the password.
    fn verify(&self, password: &str, hash: &HashedPassword) -> Result<Verification, PasswordError> {
        #[cfg(feature = "bcrypt")]
        if legacy::is_bcrypt(hash.as_str()) {
            let (verification, cheaper) = legacy::verify(password, hash.as_str())?;
            if cheaper {
                self.verify_dummy(password);
            }
            return Ok(verification);
        }
        let (verification, cheaper) = self.verify_with_own_params(password, hash)?;
        if cheaper {
            self.verify_dummy(password);
        }
        Ok(verification)
    }

    fn verify_dummy(&self, password: &str) {
        let _ = self.verify_with_own_params(password, &self.dummy);
    }
}

impl Argon2Hasher {
    /// Verifies against `hash` with the parameters it names; also says whether they
    /// cost less than this hasher's.
    fn verify_with_own_params(
        &self,
        password: &str,
        hash: &HashedPassword,
    ) -> Result<(Verification, bool), PasswordError> {
        let parsed = PasswordHash::new(hash.as_str()).map_err(|_| PasswordError::MalformedHash)?;
        // `verify_password` calls a hash without salt or output a mismatch, at once.
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(PasswordError::MalformedHash);
        }
        let stored = Params::try_from(&parsed).map_err(|_| PasswordError::MalformedHash)?;
        let ours = self.argon2.params();
        let current = parsed.algorithm == Algorithm::Argon2id.ident()
            && parsed.version == Some(Version::V0x13.into())
            && (stored.m_cost(), stored.t_cost(), stored.p_cost())
                == (ours.m_cost(), ours.t_cost(), ours.p_cost());
        let cheaper = u64::from(stored.m_cost()) * u64::from(stored.t_cost())
            < u64::from(ours.m_cost()) * u64::from(ours.t_cost());
        match self.argon2.verify_password(password.as_bytes(), &parsed) {
            Ok(()) if current => Ok((Verification::Match, false)),
            Ok(()) => Ok((Verification::MatchNeedsRehash, cheaper)),
            Err(password_hash::Error::Password) => Ok((Verification::Mismatch, cheaper)),
            Err(_) => Err(PasswordError::MalformedHash),
        }
    }
}

/// bcrypt, for hashes migrated from older systems: recognised, verified, and
/// always renewed.
#[cfg(feature = "bcrypt")]
mod legacy {
    use super::{PasswordError, Verification};

    /// Costs up to this one take less time than Argon2id with the default
    /// parameters (measured on one AMD EPYC core: bcrypt cost 10 120 ms, each cost
    /// step doubling it, the default Argon2id 58 ms), so their verification is
    /// followed by a dummy Argon2id one. Costlier hashes (the usual 10 to 12)
    /// answer later than others until their user's next login renews them.
    const CHEAPER_UP_TO: u32 = 8;

    /// The bytes of a password bcrypt reads; the rest it ignores.
    const MAX_BYTES: usize = 72;

    /// `$2a$`, `$2b$` or `$2y$`, a two-digit cost from 4 to 31, then 53 characters
    /// of bcrypt's base64 (22 of salt, 31 of hash): 60 ASCII bytes in all.
    /// (`$2x$`, the output of a buggy implementation, is not accepted.)
    pub(super) fn is_bcrypt(hash: &str) -> bool {
        let bytes = hash.as_bytes();
        bytes.len() == 60
            && matches!(&bytes[..4], b"$2a$" | b"$2b$" | b"$2y$")
            && bytes[6] == b'$'
            && cost(hash).is_some_and(|cost| (4..=31).contains(&cost))
            && bytes[7..]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    }

    fn cost(hash: &str) -> Option<u32> {
        let digits = hash.get(4..6)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    }

    /// The verification, and whether it was cheaper than the default Argon2id.
    /// `hash` has passed [`is_bcrypt`].
    pub(super) fn verify(
        password: &str,
        hash: &str,
    ) -> Result<(Verification, bool), PasswordError> {
        let cheaper = cost(hash).is_some_and(|cost| cost <= CHEAPER_UP_TO);
        // Truncates at 72 bytes, as the C implementations do; compares in constant time.
        match bcrypt::verify(password, hash) {
            Ok(true) if password.len() <= MAX_BYTES => {
                Ok((Verification::MatchNeedsRehash, cheaper))
            }
            // bcrypt verified only the first 72 bytes: the rest may be a typo, which
            // an Argon2id renewal would make part of the password.
            Ok(true) => {
                tracing::info!(
                    "bcrypt hash kept: the password is longer than the 72 bytes bcrypt checks"
                );
                Ok((Verification::Match, cheaper))
            }
            Ok(false) => Ok((Verification::Mismatch, cheaper)),
            Err(_) => Err(PasswordError::MalformedHash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precomputed_dummy_matches_the_defaults() {
        let computed = hash_with_salt(&Argon2::default(), "", DUMMY_SALT).unwrap();
        assert_eq!(computed.as_str(), DEFAULT_DUMMY_HASH);
    }

    #[test]
    fn debug_output_never_shows_the_hash() {
        let hash = HashedPassword::parse(DEFAULT_DUMMY_HASH).unwrap();
        assert_eq!(format!("{hash:?}"), "HashedPassword(<redacted>)");
    }

    #[test]
    #[cfg(not(feature = "bcrypt"))]
    fn malformed_stored_hash_is_an_error_not_a_match() {
        let hasher = Argon2Hasher::with_params(64, 1, 1).unwrap();
        let bcrypt =
            HashedPassword("$2b$12$abcdefghijklmnopqrstuuMY2cWvYqV3T1vHjHhWcG7L5oZkYB3Zy".into());
        assert!(hasher.verify("x", &bcrypt).is_err());
    }

    #[test]
    fn broken_hashes_are_errors() {
        let hasher = Argon2Hasher::with_params(64, 1, 1).unwrap();
        let no_salt = HashedPassword("$argon2id$v=19$m=64,t=1,p=1".into());
        let no_hash = HashedPassword("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ".into());
        for broken in [no_salt, no_hash] {
            assert!(hasher.verify("x", &broken).is_err(), "{}", broken.as_str());
        }
    }

    #[test]
    fn other_params_verify_and_ask_for_a_rehash() {
        let old = Argon2Hasher::with_params(32, 1, 1).unwrap();
        let current = Argon2Hasher::with_params(64, 1, 1).unwrap();
        let hash = old.hash("pw").unwrap();
        assert_eq!(
            current.verify("pw", &hash),
            Ok(Verification::MatchNeedsRehash)
        );
        assert_eq!(current.verify("pW", &hash), Ok(Verification::Mismatch));
        // Cheaper than the current parameters: padded with a dummy verification.
        assert_eq!(
            current.verify_with_own_params("pw", &hash),
            Ok((Verification::MatchNeedsRehash, true))
        );
        let stronger = Argon2Hasher::with_params(128, 1, 1)
            .unwrap()
            .hash("pw")
            .unwrap();
        assert_eq!(
            current.verify_with_own_params("pw", &stronger),
            Ok((Verification::MatchNeedsRehash, false))
        );
        let argon2i = hash_with_salt(
            &Argon2::new(
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(64, 1, 1, None).unwrap(),
            ),
            "pw",
            DUMMY_SALT,
        )
        .unwrap();
        assert_eq!(
            current.verify("pw", &argon2i),
            Ok(Verification::MatchNeedsRehash)
        );
    }

    #[test]
    fn custom_params_hash_and_verify() {
        let hasher = Argon2Hasher::with_params(64, 1, 1).unwrap();
        let hash = hasher.hash("pw").unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(hasher.verify("pw", &hash), Ok(Verification::Match));
        assert_eq!(hasher.verify("pW", &hash), Ok(Verification::Mismatch));
        assert_ne!(hasher.hash("pw").unwrap(), hash, "salts are random");
        assert!(Argon2Hasher::with_params(0, 0, 0).is_err());
    }

    #[cfg(feature = "bcrypt")]
    #[test]
    fn bcrypt_hashes_verify_and_ask_for_a_rehash() {
        // Written by OpenBSD-style `$2b$` and PHP-style `$2y$` implementations.
        let hasher = Argon2Hasher::with_params(64, 1, 1).unwrap();
        let b = bcrypt::hash_with_salt("secret", 4, *b"0123456789abcdef").unwrap();
        for hash in [
            b.format_for_version(bcrypt::Version::TwoB),
            b.format_for_version(bcrypt::Version::TwoY),
            b.format_for_version(bcrypt::Version::TwoA),
        ] {
            let hash = HashedPassword::parse(&hash).expect("a bcrypt hash parses");
            assert_eq!(
                hasher.verify("secret", &hash),
                Ok(Verification::MatchNeedsRehash)
            );
            assert_eq!(hasher.verify("Secret", &hash), Ok(Verification::Mismatch));
        }
    }

    #[cfg(feature = "bcrypt")]
    #[test]
    fn bcrypt_reads_72_bytes_as_legacy_systems_did() {
        let hasher = Argon2Hasher::with_params(64, 1, 1).unwrap();
        let long = "x".repeat(72);
        let hash = HashedPassword::parse(&bcrypt::hash(&long, 4).unwrap()).unwrap();
        assert!(hasher
            .verify(&format!("{long}and more"), &hash)
            .unwrap()
            .is_match());
        assert!(!hasher.verify(&long[..71], &hash).unwrap().is_match());
        // Only a password bcrypt read whole is worth renewing as Argon2id.
        assert_eq!(
            hasher.verify(&long, &hash),
            Ok(Verification::MatchNeedsRehash)
        );
        assert_eq!(
            hasher.verify(&format!("{long}+"), &hash),
            Ok(Verification::Match)
        );
    }

    #[cfg(feature = "bcrypt")]
    #[test]
    fn cheap_bcrypt_hashes_are_padded_to_the_argon2_time() {
        let cheap = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(
            legacy::verify("pw", &cheap),
            Ok((Verification::MatchNeedsRehash, true))
        );
        assert_eq!(
            legacy::verify("pW", &cheap),
            Ok((Verification::Mismatch, true))
        );
        // The usual costs take longer than Argon2id already: no padding.
        let usual = cheap.replacen("$04$", "$12$", 1);
        assert_eq!(
            legacy::verify("pw", &usual),
            Ok((Verification::Mismatch, false))
        );
    }

    #[cfg(feature = "bcrypt")]
    #[test]
    fn malformed_bcrypt_strings_are_refused() {
        let good = bcrypt::hash("pw", 4).unwrap();
        assert!(HashedPassword::parse(&good).is_ok());
        for bad in [
            good.replacen("$2b$", "$2x$", 1),
            good.replacen("$04$", "$99$", 1),
            good.replacen("$04$", "$+4$", 1),
            good[..59].to_owned(),
            format!("{}é", &good[..58]),
            format!("{}!", &good[..59]),
        ] {
            assert!(HashedPassword::parse(&bad).is_err(), "{bad}");
        }
    }
}
