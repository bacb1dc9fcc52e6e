//! The claims of the access tokens a [`JwtTokenStore`](super::JwtTokenStore)
//! issues, and the checks a token's claims must pass.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::scope::Scopes;
use crate::subject::Subject;
use crate::token::Grant;

/// What an issued token says, in the order it says it.
#[derive(Serialize)]
pub(super) struct IssuedClaims<'a> {
    pub(super) iss: &'a str,
    pub(super) sub: &'a str,
    pub(super) aud: &'a str,
    pub(super) exp: u64,
    pub(super) iat: u64,
    pub(super) nbf: u64,
    pub(super) jti: &'a str,
    /// Space-separated (RFC 8693 §4.2), absent when no scope is granted.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(super) scope: &'a str,
    /// The user's security stamp (see [`Grant::stamp`]).
    pub(super) stamp: u64,
}

/// What a presented token must say. Strict types: a string or fractional `exp`
/// fails to parse, a missing claim too, and so does the token (CVE-2026-25537 was a
/// string `exp` taken for an absent one). Claims not named here are ignored.
#[derive(Deserialize)]
pub(super) struct Claims<'a> {
    #[serde(borrow)]
    iss: Cow<'a, str>,
    #[serde(borrow)]
    sub: Cow<'a, str>,
    /// A string only: we issue one audience, and an array (RFC 7519 allows one)
    /// would be another deployment's token.
    #[serde(borrow)]
    aud: Cow<'a, str>,
    exp: u64,
    iat: u64,
    nbf: u64,
    #[serde(borrow)]
    pub(super) jti: Cow<'a, str>,
    #[serde(default)]
    scope: Option<String>,
    stamp: u64,
}

impl<'a> Claims<'a> {
    /// The claims in `payload` (JSON), if they have the types above.
    pub(super) fn parse(payload: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }

    /// Whether the token was issued by `issuer` for `audience`.
    pub(super) fn are_for(&self, issuer: &str, audience: &str) -> bool {
        self.iss == issuer && self.aud == audience
    }

    /// Whether the token is valid at `now` (seconds since the epoch), allowing
    /// `leeway` seconds of clock difference with the replica that issued it: not
    /// expired (RFC 7519 §4.1.4: refused *on or after* `exp`), and neither usable
    /// (`nbf`) nor issued (`iat`) in the future.
    pub(super) fn are_valid_at(&self, now: u64, leeway: u64) -> bool {
        let late = now.saturating_add(leeway);
        now < self.exp.saturating_add(leeway) && self.nbf <= late && self.iat <= late
    }

    /// When this replica stops accepting the token: `exp` plus the leeway. `None`
    /// past what a `SystemTime` holds (no token of ours says so).
    pub(super) fn accepted_until(&self, leeway: u64) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_secs(self.exp.checked_add(leeway)?))
    }

    /// The grant the token stands for, valid until `until`.
    pub(super) fn into_grant(self, until: SystemTime) -> Grant {
        let scopes: Scopes = match &self.scope {
            Some(scope) => scope.split(' ').filter(|s| !s.is_empty()).collect(),
            None => Scopes::empty(),
        };
        Grant::new(Subject::from(&*self.sub), scopes, until).with_stamp(self.stamp)
    }
}

/// Seconds since the epoch (0 before it).
pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
