//! What powchain's tests share, so that no test file keeps its own copy. A dev-dependency
//! only: no crate's library or binary depends on it.
//!
//! - [`spec`] and [`spec_with_dev_accounts`]: a test chain, the dev chain's rules under a
//!   test's own name at a fixed difficulty, so each test file's genesis is its own and stays
//!   the same.
//! - [`wait_until`] (a thread) and [`eventually`] (a task): poll a probe until it succeeds,
//!   failing the test with a description of what never happened once the deadline passes.
//!   The probe answers with an [`Outcome`]: a `bool`, an `Option` (its value is returned), or
//!   a `Result` whose error says what the last try saw.
//! - [`TempDir`]: a fresh directory under the system's temp dir, removed when dropped.
//!
//! Frames are not here: tests write them with `powchain_protocol::frame::encode`, as the
//! driver does.

#![forbid(unsafe_code)]
// Test code: a helper that cannot do its job must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod dir;
mod wait;

pub use chain::{seal, spec, spec_with_dev_accounts, transfers};
pub use dir::TempDir;
pub use wait::{Outcome, eventually, wait_until};
