//! The [`LoginPolicy`] conformance suite.

use std::net::{IpAddr, Ipv6Addr};

use http::{Extensions, HeaderMap};

use super::report::{self, BrokenRule, Report};
use super::run_id;
use crate::endpoint::policy::{LoginAttempt, LoginDecision, LoginPolicy};
use crate::store::Lookup;
use crate::user::subject::Subject;

/// The [`LoginPolicy`] conformance suite: the contract its documentation states.
/// A check reserves before the password hash (concurrent attempts cannot all
/// pass), failures count, a success or an abandoned attempt gives its reservation
/// back, every spelling of a username counts as one, and other users from other
/// addresses go on.
///
/// Tell it how many failures one username may have from one address before the
/// policy refuses (5 for the default [`LoginThrottle`](crate::endpoint::LoginThrottle)).
/// Every rule uses its own usernames and addresses (random IPv6 documentation
/// addresses), so the rules can share one policy.
///
/// ```
/// use tower_oauth2_password::testing::LoginPolicySuite;
/// use tower_oauth2_password::endpoint::LoginThrottle;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// LoginPolicySuite::new(5).run(&LoginThrottle::new()).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LoginPolicySuite {
    max_failures: u32,
}

/// One client trying one username, as the layer would present it.
struct Client {
    typed: String,
    canonical: String,
    ip: IpAddr,
    headers: HeaderMap,
    extensions: Extensions,
}

impl Client {
    fn new() -> Self {
        let canonical = format!("suite-{}-johndoe", run_id());
        // 2001:db8::/32, the documentation range: never a real client.
        let ip = Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(run_id()));
        Self {
            typed: canonical.clone(),
            canonical,
            ip: IpAddr::V6(ip),
            headers: HeaderMap::new(),
            extensions: Extensions::new(),
        }
    }

    fn attempt(&self) -> LoginAttempt<'_> {
        self.spelled(&self.typed)
    }

    fn spelled<'a>(&'a self, typed: &'a str) -> LoginAttempt<'a> {
        LoginAttempt::new(typed, &self.headers, &self.extensions)
            .with_canonical_username(&self.canonical)
            .with_client_ip(Some(self.ip))
    }
}

impl LoginPolicySuite {
    /// The suite for a policy that refuses a username's logins from one address
    /// after `max_failures` failures.
    pub fn new(max_failures: u32) -> Self {
        Self {
            max_failures: max_failures.max(1),
        }
    }

    /// Runs every rule against `policy`; panics listing every rule broken.
    pub async fn run<P: LoginPolicy>(&self, policy: &P) {
        report::fail_on("LoginPolicySuite", &self.check(policy).await);
    }

    /// Runs every rule against `policy` and returns the broken ones.
    pub async fn check<P: LoginPolicy>(&self, policy: &P) -> Vec<BrokenRule> {
        let mut report = Report::default();
        crate::__login_policy_rules!(__each_rule!(report, self, policy));
        report.into_broken()
    }

    /// After `max_failures` failed attempts, the next check refuses.
    pub async fn failures_count<P: LoginPolicy>(&self, policy: &P) {
        let client = Client::new();
        fail(policy, &client, self.max_failures).await;
        refused(
            policy,
            &client.attempt(),
            "a check after the allowed failures must refuse",
        )
        .await;
    }

    /// A check counts the attempt before any verdict: of `max_failures + 1`
    /// attempts checked at once, the last is refused (or they all reach the
    /// password hash).
    pub async fn a_check_reserves_before_the_hash<P: LoginPolicy>(&self, policy: &P) {
        let client = Client::new();
        for _ in 0..self.max_failures {
            allowed(policy, &client.attempt(), WITHIN).await;
        }
        refused(
            policy,
            &client.attempt(),
            "a check while the allowed attempts are all reserved must refuse",
        )
        .await;
        for _ in 0..self.max_failures {
            settle(policy.abandoned(&client.attempt())).await;
        }
    }

    /// A login that succeeded gives its reservation back: any number of them in
    /// a row are allowed.
    pub async fn a_success_gives_the_reservation_back<P: LoginPolicy>(&self, policy: &P) {
        let client = Client::new();
        let subject = Subject::from(client.canonical.as_str());
        let attempts = (0..=2 * self.max_failures).map(|_| client.attempt());
        let what = "a check after successful logins (a success gives its reservation back)";
        each_allowed(policy, attempts, what, |attempt| {
            policy.succeeded(attempt, &subject)
        })
        .await;
    }

    /// An attempt that got no verdict (queue full, store failed, client gone)
    /// gives its reservation back.
    pub async fn an_abandoned_attempt_gives_the_reservation_back<P: LoginPolicy>(
        &self,
        policy: &P,
    ) {
        let client = Client::new();
        let attempts = (0..=2 * self.max_failures).map(|_| client.attempt());
        let what =
            "a check after abandoned attempts (an abandoned attempt gives its reservation back)";
        each_allowed(policy, attempts, what, |attempt| policy.abandoned(attempt)).await;
    }

    /// Failures count under the canonical username: spelling it otherwise does
    /// not get more tries.
    pub async fn every_spelling_of_a_username_counts_as_one<P: LoginPolicy>(&self, policy: &P) {
        let client = Client::new();
        let upper = client.canonical.to_uppercase();
        let spaced = format!(" {} ", client.canonical);
        let spellings = [client.canonical.as_str(), &upper, &spaced];
        let attempts = (0..self.max_failures as usize)
            .map(|at| client.spelled(spellings[at % spellings.len()]));
        each_allowed(policy, attempts, WITHIN, |attempt| policy.failed(attempt)).await;
        refused(
            policy,
            &client.spelled("JohnDoe-another-spelling"),
            "a username spelt otherwise, with the same canonical form, must count as the same user",
        )
        .await;
    }

    /// One user refused from one address leaves other users from other addresses
    /// alone.
    pub async fn other_users_from_other_addresses_go_on<P: LoginPolicy>(&self, policy: &P) {
        let refused_client = Client::new();
        fail(policy, &refused_client, self.max_failures).await;
        let other = Client::new();
        let attempt = other.attempt();
        allowed(
            policy,
            &attempt,
            "another user from another address must not be refused for someone else's failures",
        )
        .await;
        settle(policy.abandoned(&attempt)).await;
    }
}

const WITHIN: &str = "a check within the limit";

/// `count` attempts by `client`, each allowed and failed.
async fn fail<P: LoginPolicy>(policy: &P, client: &Client, count: u32) {
    let attempts = (0..count).map(|_| client.attempt());
    each_allowed(policy, attempts, WITHIN, |attempt| policy.failed(attempt)).await;
}

/// Checks each of `attempts`, which must be allowed (`what` says why), and
/// settles it with `settle_with`.
async fn each_allowed<'a, P: LoginPolicy>(
    policy: &P,
    attempts: impl Iterator<Item = LoginAttempt<'a>>,
    what: &str,
    settle_with: impl Fn(&LoginAttempt<'a>) -> Lookup<()>,
) {
    for attempt in attempts {
        allowed(policy, &attempt, what).await;
        settle(settle_with(&attempt)).await;
    }
}

async fn decide<P: LoginPolicy>(policy: &P, attempt: &LoginAttempt<'_>) -> LoginDecision {
    policy
        .check(attempt)
        .await
        .unwrap_or_else(|error| panic!("check failed on a working policy: {error}"))
}

async fn allowed<P: LoginPolicy>(policy: &P, attempt: &LoginAttempt<'_>, what: &str) {
    let decision = decide(policy, attempt).await;
    assert_eq!(decision, LoginDecision::Allow, "{what} must allow");
}

async fn refused<P: LoginPolicy>(policy: &P, attempt: &LoginAttempt<'_>, what: &str) {
    match decide(policy, attempt).await {
        LoginDecision::Refuse { .. } => {}
        other => panic!("{what}, got {other:?}"),
    }
}

async fn settle(notification: Lookup<()>) {
    notification
        .await
        .unwrap_or_else(|error| panic!("a notification failed on a working policy: {error}"));
}
