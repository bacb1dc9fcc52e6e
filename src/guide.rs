//! The guide: how to use the crate, one page per task.
//!
//! Each page is a Markdown file under `docs/guide/`; every Rust snippet in it is a
//! doc test (`cargo test --doc --all-features guide`), so the guide compiles with the
//! crate it describes. Feature-gated snippets compile with their feature and are
//! empty without it.
//!
//! 1. [Getting started](getting_started): the quick start, the demo server, hyper.
//! 2. [Serving axum](axum) and [serving tonic](tonic).
//! 3. [Scopes](scopes).
//! 4. [Refresh tokens and logout](refresh_and_logout).
//! 5. [JWT access tokens and key rotation](jwt).
//! 6. [Redis and several replicas](redis).
//! 7. [Users in SQL](sql_users).
//! 8. [Facing the internet](facing_the_internet): throttle, proxies, limits, defaults.
//! 9. [DPoP](dpop): sender-constrained tokens, replayed proofs.
//! 10. [Interactive docs](interactive_docs): OpenAPI and Swagger UI.
//! 11. [For operators and sibling services](operators): server metadata, JWKS, token
//!     introspection (RFC 7662) for resource servers.
//! 12. [Metrics and audit events](metrics_and_audit): what an operator counts and records.
//! 13. [Testing your service](testing).
//! 14. [Writing your own store](own_store).
//! 15. [The wire contract](wire_contract): every request and its answer.
//! 16. [Performance](performance): method and figures.
//! 17. [How cost grows](scaling): with live tokens, users and replicas; what Redis
//!     and PostgreSQL must give a fleet.
//! 18. [What changed](changes): renamed and changed public behaviour, with what it was.

// Empty modules that exist for their docs: always compiled (they cost nothing), so
// `cargo test --doc` runs their snippets as it does every other item's.
#[doc = include_str!("../docs/guide/getting_started.md")]
pub mod getting_started {}
#[doc = include_str!("../docs/guide/axum.md")]
pub mod axum {}
#[doc = include_str!("../docs/guide/tonic.md")]
pub mod tonic {}
#[doc = include_str!("../docs/guide/scopes.md")]
pub mod scopes {}
#[doc = include_str!("../docs/guide/refresh_and_logout.md")]
pub mod refresh_and_logout {}
#[doc = include_str!("../docs/guide/jwt.md")]
pub mod jwt {}
#[doc = include_str!("../docs/guide/redis.md")]
pub mod redis {}
#[doc = include_str!("../docs/guide/sql_users.md")]
pub mod sql_users {}
#[doc = include_str!("../docs/guide/facing_the_internet.md")]
pub mod facing_the_internet {}
#[doc = include_str!("../docs/guide/dpop.md")]
pub mod dpop {}
#[doc = include_str!("../docs/guide/interactive_docs.md")]
pub mod interactive_docs {}
#[doc = include_str!("../docs/guide/operators.md")]
pub mod operators {}
#[doc = include_str!("../docs/guide/testing.md")]
pub mod testing {}
#[doc = include_str!("../docs/guide/own_store.md")]
pub mod own_store {}
#[doc = include_str!("../docs/guide/wire_contract.md")]
pub mod wire_contract {}
#[doc = include_str!("../docs/guide/performance.md")]
pub mod performance {}
#[doc = include_str!("../docs/guide/scaling.md")]
pub mod scaling {}
#[doc = include_str!("../docs/guide/changes.md")]
pub mod changes {}
#[doc = include_str!("../docs/guide/metrics_and_audit.md")]
pub mod metrics_and_audit {}
