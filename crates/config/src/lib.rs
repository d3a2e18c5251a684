//! Configuration files (mirrors Prometheus `config/` and the duration syntax of
//! `prometheus/common/model`).
//!
//! For now this owns the `global` section of `prometheus.yml`, parsed strictly
//! (an unknown key is an error naming it and its line), and accepts the other
//! top-level sections Prometheus knows as raw YAML, for the components that will
//! parse them. The text as loaded is kept, because `/api/v1/status/config` and the
//! Thanos sidecar read it back.
//!
//! Key items: [`Config`], [`GlobalConfig`], [`PromDuration`],
//! [`parse_duration_ms`], [`format_duration_ms`].

mod duration;
mod error;
mod prometheus;

pub use duration::{format_duration_ms, parse_duration_ms, PromDuration};
pub use error::{Error, Result};
pub use prometheus::{Config, GlobalConfig, RAW_SECTIONS};
