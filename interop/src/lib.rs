//! Nothing here: the package is its tests (`tests/`), which check
//! tower-oauth2-password against the crates other services use to read its
//! tokens and documents.
