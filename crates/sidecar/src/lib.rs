//! The sidecar beside a Prometheus (mirrors thanos `cmd/thanos/sidecar.go`,
//! `pkg/promclient` and the sidecar's use of `pkg/shipper`).
//!
//! It owns what makes a running Prometheus (or `strata server`) part of a
//! Thanos-style system:
//!
//! - [`PromClient`]: readiness, external labels (from the YAML of
//!   `/api/v1/status/config`), flags (`/api/v1/status/flags`) and the lowest
//!   timestamp (`/metrics`);
//! - [`Sidecar::start`]: refuses a Prometheus without external labels (they
//!   are what tells its blocks apart in the bucket) and, when shipping, one
//!   that compacts blocks (min ≠ max block duration) unless compacted blocks
//!   are uploaded too;
//! - [`Sidecar::run`]: the shipper loop (every 30s, [`strata_block::Shipper`]:
//!   each new block once, `meta.json` last, progress in `thanos.shipper.json`)
//!   and the 30s refresh of labels and lowest timestamp that drives readiness;
//! - [`Sidecar::queryable`]: the StoreAPI's data, a
//!   [`strata_remote::ReadClient`] streaming remote read from Prometheus;
//! - [`http::router`]: `/metrics`, `/-/healthy`, `/-/ready`.
//!
//! Serving the StoreAPI over gRPC is the caller's (the cli's) job, so this
//! crate does not depend on the gRPC stack.

mod error;
pub mod http;
mod promclient;
mod sidecar;

pub use error::{Error, Result};
pub use promclient::{
    check_block_durations, parse_external_labels, parse_lowest_timestamp, PromClient,
};
pub use sidecar::{Readiness, Sidecar, SidecarOptions};
