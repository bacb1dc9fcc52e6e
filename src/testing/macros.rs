//! One `#[tokio::test]` per rule: `token_store_tests!(MemoryTokenStore::new());`.
//!
//! Each macro expands, where it is invoked, to one test function per rule of its
//! suite, named after the rule, each building its own store (or fixture, policy,
//! hasher) from the expression given. Put each invocation in its own module when
//! a file tests several stores. The crate that invokes them needs `tokio` with
//! the `macros` and `rt` features as a dev-dependency.

/// Writes one rule's test: builds the subject under test, runs the rule.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:expr, $subject:expr; $($rule:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $rule() {
                let subject = $subject;
                $suite.$rule(&subject).await;
            }
        )+
    };
}

/// One `#[tokio::test]` per rule of the
/// [`TokenStoreSuite`](crate::testing::TokenStoreSuite), each on a store built by
/// the expression given; a second argument configures the suite.
///
/// ```
/// mod memory_token_store {
///     use std::time::Duration;
///     use tower_oauth2_password::testing::TokenStoreSuite;
///     use tower_oauth2_password::token::memory::MemoryTokenStore;
///
///     tower_oauth2_password::token_store_tests!(MemoryTokenStore::new());
///     // Or: token_store_tests!(store, TokenStoreSuite::new().expiry_leeway(Duration::from_secs(1)));
/// #   const _: Option<TokenStoreSuite> = None;
/// #   const _: Duration = Duration::ZERO;
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! token_store_tests {
    ($store:expr $(,)?) => {
        $crate::token_store_tests!($store, $crate::testing::TokenStoreSuite::new());
    };
    ($store:expr, $suite:expr $(,)?) => {
        $crate::__token_store_rules!(__conformance_tests!($suite, $store));
    };
}

/// One `#[tokio::test]` per rule of the
/// [`RefreshTokenStoreSuite`](crate::testing::RefreshTokenStoreSuite): the store,
/// then the suite (it needs the store's retry grace).
///
/// ```
/// mod memory_refresh_token_store {
///     use std::time::Duration;
///     use tower_oauth2_password::testing::RefreshTokenStoreSuite;
///     use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
///
///     const GRACE: Duration = Duration::from_millis(200);
///     tower_oauth2_password::refresh_token_store_tests!(
///         MemoryRefreshTokenStore::with_retry_grace(GRACE),
///         RefreshTokenStoreSuite::new(GRACE)
///     );
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! refresh_token_store_tests {
    ($store:expr, $suite:expr $(,)?) => {
        $crate::__refresh_token_store_rules!(__conformance_tests!($suite, $store));
    };
}

/// One `#[tokio::test]` per rule of the
/// [`UserStoreSuite`](crate::testing::UserStoreSuite), each through a
/// [`UserFixture`](crate::testing::UserFixture) built by the expression given.
///
/// ```
/// mod memory_user_store {
///     use tower_oauth2_password::testing::MemoryUsers;
///
///     tower_oauth2_password::user_store_tests!(MemoryUsers::<String>::new());
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! user_store_tests {
    ($fixture:expr $(,)?) => {
        $crate::__user_store_rules!(__conformance_tests!(
            $crate::testing::UserStoreSuite::new(),
            $fixture
        ));
    };
}

/// One `#[tokio::test]` per rule of the
/// [`LoginPolicySuite`](crate::testing::LoginPolicySuite): the policy, then the
/// failures it allows one username from one address.
///
/// ```
/// mod login_throttle {
///     use tower_oauth2_password::endpoint::LoginThrottle;
///
///     tower_oauth2_password::login_policy_tests!(LoginThrottle::new(), 5);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! login_policy_tests {
    ($policy:expr, $max_failures:expr $(,)?) => {
        $crate::__login_policy_rules!(__conformance_tests!(
            $crate::testing::LoginPolicySuite::new($max_failures),
            $policy
        ));
    };
}

/// One `#[tokio::test]` per rule of the
/// `JtiDenylistSuite` (features `testing`
/// and `jwt`).
///
/// ```
/// # #[cfg(feature = "jwt")]
/// mod memory_denylist {
///     use tower_oauth2_password::token::jwt::MemoryJtiDenylist;
///
///     tower_oauth2_password::jti_denylist_tests!(MemoryJtiDenylist::new());
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! jti_denylist_tests {
    ($denylist:expr $(,)?) => {
        $crate::__jti_denylist_rules!(__conformance_tests!(
            $crate::testing::JtiDenylistSuite::new(),
            $denylist
        ));
    };
}

/// One `#[test]` per rule of the
/// [`PasswordHasherSuite`](crate::testing::PasswordHasherSuite) (hashing is
/// synchronous: no runtime needed).
///
/// ```
/// mod fast_hasher {
///     use tower_oauth2_password::testing::InsecureFastHasher;
///
///     tower_oauth2_password::password_hasher_tests!(InsecureFastHasher::new());
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! password_hasher_tests {
    ($hasher:expr $(,)?) => {
        $crate::__password_hasher_rules!(__password_hasher_tests!($hasher));
    };
}

/// Writes one synchronous rule's test.
#[doc(hidden)]
#[macro_export]
macro_rules! __password_hasher_tests {
    ($hasher:expr; $($rule:ident),+ $(,)?) => {
        $(
            #[test]
            fn $rule() {
                let hasher = $hasher;
                $crate::testing::PasswordHasherSuite::new().$rule(&hasher);
            }
        )+
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __token_store_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            issued_tokens_resolve_to_their_grant,
            tokens_are_distinct,
            foreign_and_altered_tokens_are_unknown,
            revoked_tokens_are_unknown,
            a_revoked_family_ends_its_tokens,
            the_client_key_binding_round_trips,
            expired_tokens_are_unknown,
        );
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __refresh_token_store_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::__refresh_token_store_quick_rules!($m!($($args)*));
        $crate::__refresh_token_store_waiting_rules!($m!($($args)*));
    };
}

/// The refresh rules that wait seconds (lifetimes): `check` runs them beside
/// the others.
#[doc(hidden)]
#[macro_export]
macro_rules! __refresh_token_store_waiting_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            an_unused_family_ends_after_its_idle_lifetime,
            a_used_family_ends_at_its_absolute_lifetime,
        );
    };
}

/// The refresh rules that do not wait.
#[doc(hidden)]
#[macro_export]
macro_rules! __refresh_token_store_quick_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            rotation_hands_back_the_grant_and_a_new_token,
            one_retry_per_generation_within_the_grace,
            reuse_revokes_the_family,
            foreign_and_altered_tokens_are_invalid,
            revoked_families_are_invalid,
            families_are_the_ones_the_layer_names,
            the_client_key_binding_survives_rotation,
            a_users_live_families_are_capped,
        );
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __user_store_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            unknown_users_have_nothing,
            added_users_round_trip,
            renewing_a_hash_keeps_the_stamp,
            a_password_change_changes_the_stamp,
            taking_a_scope_away_changes_the_stamp,
            disabled_users_are_inactive,
            removed_users_are_gone,
            a_user_added_again_gets_a_new_stamp,
        );
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __login_policy_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            failures_count,
            a_check_reserves_before_the_hash,
            a_success_gives_the_reservation_back,
            an_abandoned_attempt_gives_the_reservation_back,
            every_spelling_of_a_username_counts_as_one,
            other_users_from_other_addresses_go_on,
        );
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __jti_denylist_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            denied_entries_are_denied_and_no_others,
            denying_twice_is_no_error,
            a_later_expiry_wins,
        );
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __password_hasher_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            a_hash_verifies_its_password,
            another_password_is_a_mismatch,
            hashes_are_salted,
            a_hash_it_cannot_check_is_an_error,
            verify_dummy_returns,
        );
    };
}

/// Runs each named async rule method of a suite into a report, under its name.
#[doc(hidden)]
#[macro_export]
macro_rules! __each_rule {
    ($report:ident, $suite:ident, $subject:ident; $($rule:ident),+ $(,)?) => {
        $( $report.rule(stringify!($rule), $suite.$rule($subject)).await; )+
    };
}

/// Runs each named synchronous rule method of a suite into a report.
#[doc(hidden)]
#[macro_export]
macro_rules! __each_rule_sync {
    ($report:ident, $suite:ident, $subject:ident; $($rule:ident),+ $(,)?) => {
        $( $report.rule_sync(stringify!($rule), || $suite.$rule($subject)); )+
    };
}
