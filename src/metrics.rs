//! Counters, histograms and gauges through the `metrics` facade (feature
//! `metrics`): one function per event, so that each call site is one line and
//! compiles to nothing without the feature.
//!
//! Names follow the OpenTelemetry conventions (dotted, durations in seconds); a
//! Prometheus exporter shows them with underscores. No label ever holds a
//! username, a token or an address: every label value is one of a few constants.
//! The guide's "Metrics and audit events" page lists them all.
//!
//! The guard's counters are registered once per layer ([`Handles`], at
//! [`build`](crate::layer::Builder::build)): its ready path then costs one
//! atomic add and no lookup in the recorder's registry. So the recorder must be
//! installed before the layer is built. The rest (logins, refresh grants,
//! revocations) take the facade's macros: they run next to a password hash or
//! a store round trip.

#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

#[cfg(feature = "metrics")]
use std::time::Instant;

/// Counter: token-endpoint logins (password grants), label `outcome`.
pub(crate) const LOGINS: &str = "oauth2_password.logins";
/// Counter: refresh-token grants, label `outcome`.
pub(crate) const REFRESH_GRANTS: &str = "oauth2_password.refresh_grants";
/// Counter: answered revocation requests, label `ended`.
pub(crate) const REVOCATIONS: &str = "oauth2_password.revocations";
/// Counter: requests to guarded routes, label `outcome`.
pub(crate) const GUARD_REQUESTS: &str = "oauth2_password.guard.requests";
/// Histogram (s): token and revocation endpoint requests, labels `endpoint`,
/// `http.response.status_code`.
pub(crate) const ENDPOINT_DURATION: &str = "oauth2_password.endpoint.request.duration";
/// Histogram (s): a password check's wait for a hashing permit (0 when one was free).
pub(crate) const PERMIT_WAIT: &str = "oauth2_password.hashing.permit_wait.duration";
/// Histogram (s): the guard's wait for a store that did not answer at once,
/// label `store` (`token`, `user`: whichever was awaited first).
pub(crate) const LOOKUP_DURATION: &str = "oauth2_password.guard.lookup.duration";
/// Gauge: logins waiting for a hashing permit.
pub(crate) const LOGINS_WAITING: &str = "oauth2_password.logins.waiting";
/// Gauge: password hashes being computed.
pub(crate) const HASHES_RUNNING: &str = "oauth2_password.hashing.running";
/// Gauge: live tokens in a memory store, label `store` (`memory_access`,
/// `memory_refresh`).
pub(crate) const LIVE_TOKENS: &str = "oauth2_password.tokens.live";

/// How a password grant ended (the `outcome` label of [`LOGINS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginOutcome {
    Issued,
    InvalidGrant,
    Inactive,
    ThrottledPair,
    ThrottledUsername,
    ThrottledAddress,
    /// Refused by a login policy other than the throttle.
    ThrottledPolicy,
    QueueFull,
    WaitedTooLong,
    StoreError,
    /// Malformed or unknown scope, or an internal error.
    Rejected,
}

impl LoginOutcome {
    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::InvalidGrant => "invalid_grant",
            Self::Inactive => "inactive",
            Self::ThrottledPair => "throttled_username_and_address",
            Self::ThrottledUsername => "throttled_username",
            Self::ThrottledAddress => "throttled_address",
            Self::ThrottledPolicy => "throttled_policy",
            Self::QueueFull => "queue_full",
            Self::WaitedTooLong => "waited_too_long",
            Self::StoreError => "store_error",
            Self::Rejected => "rejected",
        }
    }
}

/// How a refresh-token grant ended (the `outcome` label of [`REFRESH_GRANTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshOutcome {
    /// A new refresh token.
    Rotated,
    /// A new refresh token for the previous one, presented again within the
    /// store's retry grace (the client's answer was lost).
    RetriedWithinGrace,
    ReuseDetected,
    /// Unknown, expired or revoked, or its user changed.
    Invalid,
    Throttled,
    StoreError,
    /// A malformed or wider scope.
    Rejected,
}

impl RefreshOutcome {
    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::RetriedWithinGrace => "retried_within_grace",
            Self::ReuseDetected => "reuse_detected",
            Self::Invalid => "invalid",
            Self::Throttled => "throttled",
            Self::StoreError => "store_error",
            Self::Rejected => "rejected",
        }
    }
}

/// How the guard decided a request (the `outcome` label of [`GUARD_REQUESTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardOutcome {
    Passed = 0,
    Missing,
    Invalid,
    Inactive,
    InsufficientScope,
    StoreError,
    /// A malformed request: several `Authorization` headers, a token in the URL.
    BadRequest,
}

#[cfg(feature = "metrics")]
const GUARD_LABELS: [&str; 7] = [
    "passed",
    "missing",
    "invalid",
    "inactive",
    "insufficient_scope",
    "store_error",
    "bad_request",
];

/// The guard's counters, registered with the recorder installed when the layer
/// was built. Empty without the feature.
#[derive(Clone)]
pub(crate) struct Handles {
    #[cfg(feature = "metrics")]
    guard: [metrics::Counter; 7],
}

impl Handles {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "metrics")]
        {
            describe();
            Self {
                guard: GUARD_LABELS
                    .map(|outcome| metrics::counter!(GUARD_REQUESTS, "outcome" => outcome)),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self {}
    }
}

/// The descriptions and units the exporters show.
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(LOGINS, Unit::Count, "Password grants by outcome");
    describe_counter!(
        REFRESH_GRANTS,
        Unit::Count,
        "Refresh-token grants by outcome"
    );
    describe_counter!(REVOCATIONS, Unit::Count, "Answered revocation requests");
    describe_counter!(
        GUARD_REQUESTS,
        Unit::Count,
        "Requests to guarded routes by outcome"
    );
    describe_histogram!(
        ENDPOINT_DURATION,
        Unit::Seconds,
        "Token and revocation endpoint request duration"
    );
    describe_histogram!(
        PERMIT_WAIT,
        Unit::Seconds,
        "Wait for a password-hashing permit"
    );
    describe_histogram!(
        LOOKUP_DURATION,
        Unit::Seconds,
        "Guard's wait for a store that did not answer at once"
    );
    describe_gauge!(
        LOGINS_WAITING,
        Unit::Count,
        "Logins waiting for a hashing permit"
    );
    describe_gauge!(
        HASHES_RUNNING,
        Unit::Count,
        "Password hashes being computed"
    );
    describe_gauge!(LIVE_TOKENS, Unit::Count, "Tokens in a memory store");
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handles").finish_non_exhaustive()
    }
}

/// When something started: an `Instant` with the feature, nothing without.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    #[cfg(feature = "metrics")]
    at: Instant,
}

impl Started {
    #[inline(always)]
    pub(crate) fn now() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            at: Instant::now(),
        }
    }

    #[cfg(feature = "metrics")]
    fn seconds(self) -> f64 {
        self.at.elapsed().as_secs_f64()
    }
}

/// A guarded request was decided.
#[inline(always)]
pub(crate) fn guarded(handles: &Handles, outcome: GuardOutcome) {
    #[cfg(feature = "metrics")]
    handles.guard[outcome as usize].increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (handles, outcome);
}

/// The guard awaited `store` (`"token"`, `"user"` or `"dpop_replay"`) since `started`.
#[inline(always)]
pub(crate) fn lookup_awaited(store: &'static str, started: Started) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(LOOKUP_DURATION, "store" => store).record(started.seconds());
    #[cfg(not(feature = "metrics"))]
    let _ = (store, started);
}

/// A password grant ended.
#[inline(always)]
pub(crate) fn login(outcome: LoginOutcome) {
    #[cfg(feature = "metrics")]
    metrics::counter!(LOGINS, "outcome" => outcome.label()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A refresh-token grant ended.
#[inline(always)]
pub(crate) fn refresh(outcome: RefreshOutcome) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REFRESH_GRANTS, "outcome" => outcome.label()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A revocation request was answered 200; `family` if it ended a login.
#[inline(always)]
pub(crate) fn revoked(family: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REVOCATIONS, "ended" => if family { "login" } else { "token" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = family;
}

/// The token (`"token"`) or revocation (`"revocation"`) endpoint answered
/// `status` for a request that came in at `started`.
#[inline(always)]
pub(crate) fn endpoint_answered(endpoint: &'static str, status: u16, started: Started) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        ENDPOINT_DURATION,
        "endpoint" => endpoint,
        "http.response.status_code" => status.to_string()
    )
    .record(started.seconds());
    #[cfg(not(feature = "metrics"))]
    let _ = (endpoint, status, started);
}

/// A password check got its hashing permit (or gave up) after waiting since
/// `started`.
#[inline(always)]
pub(crate) fn permit_waited(started: Started) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(PERMIT_WAIT).record(started.seconds());
    #[cfg(not(feature = "metrics"))]
    let _ = started;
}

/// One more (`true`) or one fewer login waiting for a hashing permit.
#[inline(always)]
pub(crate) fn login_waiting(more: bool) {
    step(LOGINS_WAITING, more);
}

/// One more (`true`) or one fewer password hash running.
#[inline(always)]
pub(crate) fn hash_running(more: bool) {
    step(HASHES_RUNNING, more);
}

/// Moves the gauge `name` one up (`true`) or down.
#[inline(always)]
fn step(name: &'static str, up: bool) {
    #[cfg(feature = "metrics")]
    {
        let gauge = metrics::gauge!(name);
        if up {
            gauge.increment(1.0);
        } else {
            gauge.decrement(1.0);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (name, up);
}

/// A memory store (`"memory_access"`, `"memory_refresh"`) holds `count` tokens.
#[inline(always)]
pub(crate) fn live_tokens(store: &'static str, count: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(LIVE_TOKENS, "store" => store).set(count as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (store, count);
}

/// Whether the memory stores should count their tokens: only with the feature.
#[inline(always)]
pub(crate) const fn counts_tokens() -> bool {
    cfg!(feature = "metrics")
}
