//! The `metrics` feature over a real socket (written next).
