//! [`InsecureFastHasher`] for test suites, and the [`PasswordHasher`] suite.

use std::fmt;

use super::report::{self, BrokenRule, Report};
use crate::password::{Argon2Hasher, HashedPassword, PasswordError, PasswordHasher, Verification};

/// **Never in production.** Argon2id at its smallest cost (8 KiB, 1 pass, 1
/// lane): a test suite's logins take microseconds instead of the tens of
/// milliseconds [`Argon2Hasher::new`] costs on purpose. Anyone who gets a hash
/// made with it can try passwords about a thousand times faster.
///
/// Only the `testing` feature has it: put that feature in `[dev-dependencies]`,
/// never in `[dependencies]`. Building one logs a warning.
///
/// ```
/// use tower_oauth2_password::testing::InsecureFastHasher;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser};
///
/// let hasher = InsecureFastHasher::new();
/// let hash = hasher.hash("secret")?;
/// let users = MemoryUserStore::new().with_user("ada", StoredUser::new("Ada".to_owned(), hash));
/// let layer = OAuth2PasswordLayer::builder(users).password_hasher(hasher).build();
/// # let _ = layer;
/// # Ok::<(), tower_oauth2_password::password::PasswordError>(())
/// ```
#[derive(Clone)]
pub struct InsecureFastHasher(Argon2Hasher);

/// Argon2's smallest memory cost (8 KiB per lane), one pass, one lane.
const MEMORY_KIB: u32 = 8;

impl InsecureFastHasher {
    /// The hasher. Logs a warning: it is for tests only.
    pub fn new() -> Self {
        tracing::warn!("InsecureFastHasher in use: for tests only, never in production");
        match Argon2Hasher::with_params(MEMORY_KIB, 1, 1) {
            Ok(hasher) => Self(hasher),
            // Fixed parameters within Argon2's bounds: cannot fail.
            Err(error) => unreachable!("minimal Argon2id parameters: {error}"),
        }
    }
}

impl Default for InsecureFastHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InsecureFastHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InsecureFastHasher(argon2id, m=8, t=1, p=1)")
    }
}

impl PasswordHasher for InsecureFastHasher {
    fn hash(&self, password: &str) -> Result<HashedPassword, PasswordError> {
        self.0.hash(password)
    }

    fn verify(&self, password: &str, hash: &HashedPassword) -> Result<Verification, PasswordError> {
        self.0.verify(password, hash)
    }

    fn verify_dummy(&self, password: &str) {
        self.0.verify_dummy(password);
    }
}

/// The [`PasswordHasher`] conformance suite: hash and verify round trip, a wrong
/// password is a mismatch (not an error), salts differ, a hash it cannot check is
/// an error (not a panic), and `verify_dummy` returns.
///
/// ```
/// use tower_oauth2_password::testing::{InsecureFastHasher, PasswordHasherSuite};
///
/// PasswordHasherSuite::new().run(&InsecureFastHasher::new());
/// ```
#[derive(Debug, Clone, Default)]
pub struct PasswordHasherSuite {
    _private: (),
}

/// A valid PHC string of an algorithm Argon2 hashers do not check.
const FOREIGN_HASH: &str =
    "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
/// A valid PHC string whose Argon2 parameters are out of bounds.
const IMPOSSIBLE_HASH: &str =
    "$argon2id$v=19$m=1,t=0,p=0$c3VpdGUtc2FsdC1h$8ir7Ztk/IojpdcE8yoCHKqrcCyzDpaxwCokZAUV+d6c";

impl PasswordHasherSuite {
    /// The suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every rule against `hasher`; panics listing every rule broken.
    pub fn run<H: PasswordHasher>(&self, hasher: &H) {
        report::fail_on("PasswordHasherSuite", &self.check(hasher));
    }

    /// Runs every rule against `hasher` and returns the broken ones.
    pub fn check<H: PasswordHasher>(&self, hasher: &H) -> Vec<BrokenRule> {
        let mut report = Report::default();
        crate::__password_hasher_rules!(__each_rule_sync!(report, self, hasher));
        report.into_broken()
    }

    /// What `hash` makes, `verify` matches, for ASCII, Unicode and empty
    /// passwords.
    pub fn a_hash_verifies_its_password<H: PasswordHasher>(&self, hasher: &H) {
        for password in ["correct horse battery staple", "pässwörd 🔑", ""] {
            let hash = hash(hasher, password);
            let verified = hasher
                .verify(password, &hash)
                .unwrap_or_else(|error| panic!("verify failed on its own hash: {error}"));
            assert!(
                verified.is_match(),
                "a hash must verify the password it was made from"
            );
            assert!(
                HashedPassword::parse(hash.as_str()).is_ok(),
                "a hash must be a PHC string the stores can keep and read back"
            );
        }
    }

    /// Another password, or the same one changed by one character or case, is
    /// [`Verification::Mismatch`], not an error.
    pub fn another_password_is_a_mismatch<H: PasswordHasher>(&self, hasher: &H) {
        let hash = hash(hasher, "secret");
        for other in ["Secret", "secret ", "secre", "", "guess"] {
            let verified = hasher
                .verify(other, &hash)
                .unwrap_or_else(|error| panic!("a wrong password is no error: {error}"));
            assert_eq!(
                verified,
                Verification::Mismatch,
                "a wrong password must be a mismatch"
            );
        }
    }

    /// Two hashes of one password differ (a fresh random salt each).
    pub fn hashes_are_salted<H: PasswordHasher>(&self, hasher: &H) {
        assert_ne!(
            hash(hasher, "secret"),
            hash(hasher, "secret"),
            "two hashes of one password must differ (a fresh salt each)"
        );
    }

    /// A hash the hasher cannot check (another algorithm, impossible parameters)
    /// is an error, not a panic and not a match.
    pub fn a_hash_it_cannot_check_is_an_error<H: PasswordHasher>(&self, hasher: &H) {
        for phc in [FOREIGN_HASH, IMPOSSIBLE_HASH] {
            let Ok(stored) = HashedPassword::parse(phc) else {
                continue;
            };
            let verified = hasher.verify("secret", &stored);
            assert!(
                verified.is_err(),
                "a hash the hasher cannot check must be an error, got {verified:?}"
            );
        }
    }

    /// `verify_dummy` returns, for any password (the layer calls it for unknown
    /// users).
    pub fn verify_dummy_returns<H: PasswordHasher>(&self, hasher: &H) {
        for password in ["secret", "", "pässwörd 🔑"] {
            hasher.verify_dummy(password);
        }
    }
}

fn hash<H: PasswordHasher>(hasher: &H, password: &str) -> HashedPassword {
    hasher
        .hash(password)
        .unwrap_or_else(|error| panic!("hash failed: {error}"))
}
