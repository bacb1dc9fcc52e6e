//! Ready-made [`UserStore`](crate::UserStore)s.

mod memory;

pub use memory::MemoryUserStore;
