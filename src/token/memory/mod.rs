//! Tokens in this process's memory: [`MemoryTokenStore`] for access tokens (the
//! layer's default), [`MemoryRefreshTokenStore`] for refresh-token families.
//! Fast and dependency-free; a restart logs everyone out, and replicas do not see
//! each other's tokens (use `token::redis` or `token::jwt` then).

pub(crate) mod access;
pub(crate) mod refresh;

pub use self::access::MemoryTokenStore;
pub use self::refresh::MemoryRefreshTokenStore;
