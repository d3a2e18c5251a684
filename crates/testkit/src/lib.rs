//! Test helpers shared by Strata's integration and end-to-end tests.
//!
//! This crate owns what tests need that is not Strata itself: where the shared
//! fixtures live ([`shared_dir`], [`fixtures_dir`]), how to find and run the
//! real peer binaries that Strata must stay compatible with ([`peer_binary`],
//! the [`promtool`] wrappers, [`PrometheusProcess`]), deterministic input data
//! ([`openmetrics::generate`]), and assertions that stay readable on outputs of
//! tens of megabytes ([`assert_same_text`]).
//!
//! Two rules shape it:
//!
//! - **A missing peer binary fails the test loudly.** Compatibility tests that
//!   silently skip on a machine without `promtool` prove nothing, so every
//!   helper that needs one panics with the install hint (`.ci/run` installs
//!   Debian's `prometheus` package).
//! - **It is dev-only and low in the layering** (see `shared/STYLE.md`): it
//!   depends only on L0/L1 crates, so any crate may use it in its tests without
//!   forming a cycle. Helpers panic instead of returning errors, with messages
//!   that say what failed and how to fix it.
//!
//! Key items: [`shared_dir`], [`fixtures_dir`], [`copy_dir`], [`read_gz`],
//! [`peer_binary`], [`free_port`], [`run_output`], [`PrometheusProcess`],
//! [`promtool::dump`], [`promtool::create_blocks`], [`promtool::analyze`],
//! [`promtool::list`], [`openmetrics::generate`], [`GarageProcess`] (a real S3
//! server), [`faultproxy::FaultProxy`].

pub mod acceptance;
mod diff;
pub mod emulators;
pub mod faultproxy;
mod fs;
pub mod garage;
pub mod mem;
pub mod openmetrics;
mod peer;
pub mod prometheus;
pub mod promtool;

pub use acceptance::queryable_acceptance;
pub use diff::assert_same_text;
pub use fs::{copy_dir, fixtures_dir, read_gz, read_gz_string, shared_dir, SHARED_DIR_ENV};
pub use garage::{GarageProcess, GARAGE_INSTALL_HINT};
pub use mem::MemQueryable;
pub use peer::{free_port, peer_binary, run_output, run_stdout, PEER_INSTALL_HINT};
pub use prometheus::PrometheusProcess;
pub use promtool::{
    analyze as promtool_analyze, create_blocks as promtool_create_blocks, dump as promtool_dump,
    list as promtool_list,
};
