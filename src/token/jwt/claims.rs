//! The claims of the access tokens a [`JwtTokenStore`](super::JwtTokenStore)
//! issues, and the checks a token's claims must pass.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::scope::Scopes;
use crate::token::grant::{present, FamilyId, Grant, JwkThumbprint};
use crate::user::subject::Subject;

/// The clock difference allowed between the replica that issued a token and the
/// one checking it, unless [`JwtTokenStoreBuilder::leeway`](super::JwtTokenStoreBuilder::leeway) says otherwise: 5
/// seconds.
///
/// Servers kept by NTP agree within milliseconds; 5 seconds still covers a clock
/// that is being corrected, and a token that is refused early or late by a few
/// seconds is harmless. It is short because it lengthens every token's life,
/// a stolen one's included.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The longest leeway accepted: 5 minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

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
    /// The refresh-token family (see [`Grant::family`]), absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) fam: Option<&'a str>,
    /// The client key a DPoP-bound token is bound to (RFC 9449 §6.1,
    /// `{"jkt":…}`), absent for a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cnf: Option<Confirmation<&'a str>>,
}

/// A `cnf` claim (RFC 7800) as this store writes and reads it: the key's
/// thumbprint only (RFC 9449 §6.1). Reading is strict: another member, a second
/// `jkt`, or a `jkt` that is no string makes the claims unreadable, so the
/// token is invalid, never taken for an unbound one.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirmation<S> {
    pub(super) jkt: S,
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
    #[serde(borrow, default)]
    fam: Option<Cow<'a, str>>,
    /// Present (an object with a `jkt` string), or absent: `null` is no
    /// confirmation, and makes the token invalid rather than unbound.
    #[serde(borrow, default, deserialize_with = "present")]
    cnf: Option<Confirmation<Cow<'a, str>>>,
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

    /// The denylist entry that ends the token: its family's id for a token of a
    /// refresh family (one entry ends them all, so the list grows with logins,
    /// not tokens), else its `jti`.
    pub(super) fn entry(&self) -> &str {
        self.fam.as_deref().unwrap_or(&self.jti)
    }

    /// Until when to deny [`entry`](Self::entry) to end this token: its `exp`;
    /// for a family, also every sibling issued before `now`, which expires at
    /// most one lifetime (`exp - iat`) after now. Leeway included.
    pub(super) fn denied_until(&self, now: u64, leeway: u64) -> Option<SystemTime> {
        let exp = match self.fam {
            Some(_) => self
                .exp
                .max(now.saturating_add(self.exp.saturating_sub(self.iat))),
            None => self.exp,
        };
        UNIX_EPOCH.checked_add(Duration::from_secs(exp.checked_add(leeway)?))
    }

    /// The grant the token stands for, valid until `until`; `None` if its `fam`
    /// is no family id or its `cnf.jkt` no thumbprint (43 canonical base64url
    /// characters).
    pub(super) fn into_grant(self, until: SystemTime) -> Option<Grant> {
        let scopes: Scopes = match &self.scope {
            Some(scope) => scope.split(' ').filter(|s| !s.is_empty()).collect(),
            None => Scopes::empty(),
        };
        let mut grant = Grant::new(Subject::from(&*self.sub), scopes, until).with_stamp(self.stamp);
        if let Some(fam) = &self.fam {
            grant.family = Some(FamilyId::from_text(fam.as_bytes())?);
        }
        if let Some(cnf) = &self.cnf {
            grant.key_binding = Some(JwkThumbprint::from_encoded(&cnf.jkt)?);
        }
        Some(grant)
    }
}

/// Seconds since the epoch (0 before it).
pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
