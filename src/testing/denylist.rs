//! The [`JtiDenylist`] conformance suite.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::report::{self, BrokenRule, Report};
use super::{in_an_hour, run_id};
use crate::token::jwt::denylist::JtiDenylist;

/// The [`JtiDenylist`] conformance suite: a denied entry is denied and nothing
/// else is, denying again keeps the later expiry (never the earlier), and
/// denying twice is no error. Entries are 22-character base64url texts, as the
/// JWT store's `jti`s and family ids are. One rule waits about a second.
///
/// ```
/// use tower_oauth2_password::testing::JtiDenylistSuite;
/// use tower_oauth2_password::token::jwt::MemoryJtiDenylist;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// JtiDenylistSuite::new().run(&MemoryJtiDenylist::new()).await;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct JtiDenylistSuite {
    _private: (),
}

/// How long the expiry rules wait for the shorter entry to end.
const SHORT: Duration = Duration::from_millis(600);

impl JtiDenylistSuite {
    /// The suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every rule against `denylist`; panics listing every rule broken.
    pub async fn run<D: JtiDenylist>(&self, denylist: &D) {
        report::fail_on("JtiDenylistSuite", &self.check(denylist).await);
    }

    /// Runs every rule against `denylist` and returns the broken ones.
    pub async fn check<D: JtiDenylist>(&self, denylist: &D) -> Vec<BrokenRule> {
        let mut report = Report::default();
        crate::__jti_denylist_rules!(__each_rule!(report, self, denylist));
        report.into_broken()
    }

    /// A denied entry is denied; an unknown one, and one that differs from it by
    /// a character, its case or its length, is not.
    pub async fn denied_entries_are_denied_and_no_others<D: JtiDenylist>(&self, denylist: &D) {
        let jti = entry();
        assert!(
            !is_denied(denylist, &jti).await,
            "an entry never denied must not be denied"
        );
        deny(denylist, &jti, in_an_hour()).await;
        assert!(
            is_denied(denylist, &jti).await,
            "a denied entry must be denied"
        );
        let mut changed = jti.clone().into_bytes();
        changed[0] = if changed[0] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).expect("base64url is ASCII");
        for other in [
            changed,
            jti[..jti.len() - 1].to_owned(),
            format!("{jti}A"),
            jti.to_ascii_uppercase(),
            entry(),
            String::new(),
        ] {
            if other != jti {
                assert!(
                    !is_denied(denylist, &other).await,
                    "an entry that differs from a denied one must not be denied"
                );
            }
        }
    }

    /// Denying an entry twice, with the same expiry, is no error and it stays
    /// denied.
    pub async fn denying_twice_is_no_error<D: JtiDenylist>(&self, denylist: &D) {
        let jti = entry();
        let until = in_an_hour();
        deny(denylist, &jti, until).await;
        deny(denylist, &jti, until).await;
        assert!(
            is_denied(denylist, &jti).await,
            "an entry denied twice must be denied"
        );
    }

    /// An entry denied again keeps the later of its two expiries, in either
    /// order: a second revocation never brings a token back early.
    pub async fn a_later_expiry_wins<D: JtiDenylist>(&self, denylist: &D) {
        let longer_first = entry();
        let shorter_first = entry();
        let soon = SystemTime::now() + SHORT;
        deny(denylist, &longer_first, in_an_hour()).await;
        deny(denylist, &longer_first, soon).await;
        deny(denylist, &shorter_first, soon).await;
        deny(denylist, &shorter_first, in_an_hour()).await;
        tokio::time::sleep(SHORT + Duration::from_millis(400)).await;
        assert!(
            is_denied(denylist, &longer_first).await,
            "an entry denied again with an earlier expiry must keep the later one"
        );
        assert!(
            is_denied(denylist, &shorter_first).await,
            "an entry denied again with a later expiry must take it"
        );
    }
}

/// A random 22-character base64url entry, like a `jti` or a family id.
fn entry() -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&run_id().to_ne_bytes());
    bytes[8..].copy_from_slice(&run_id().to_ne_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn deny<D: JtiDenylist>(denylist: &D, jti: &str, until: SystemTime) {
    denylist
        .deny(jti, until)
        .await
        .unwrap_or_else(|error| panic!("deny failed on a working denylist: {error}"));
}

async fn is_denied<D: JtiDenylist>(denylist: &D, jti: &str) -> bool {
    denylist
        .is_denied(jti)
        .await
        .unwrap_or_else(|error| panic!("is_denied failed on a working denylist: {error}"))
}
