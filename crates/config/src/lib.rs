//! Configuration files (mirrors Prometheus `config/` and the duration syntax of
//! `prometheus/common/model`).
//!
//! This owns the `global` and `scrape_configs` sections of `prometheus.yml`,
//! parsed strictly (an unknown key is an error naming it and its line) into typed
//! structs with Prometheus' defaults, and accepts the other top-level sections
//! Prometheus knows as raw YAML, for the components that will parse them. The text as loaded is kept, because `/api/v1/status/config` and the
//! Thanos sidecar read it back.
//!
//! Key items: [`Config`], [`GlobalConfig`], [`ScrapeConfig`], [`PromDuration`],
//! [`parse_duration_ms`], [`format_duration_ms`].

mod duration;
mod error;
mod prometheus;
mod scrape;

pub use duration::{format_duration_ms, parse_duration_ms, PromDuration};
pub use error::{Error, Result};
pub use prometheus::{Config, GlobalConfig, RAW_SECTIONS};
pub use scrape::{
    parse_relabel_configs, parse_size, Authorization, BasicAuth, FileSdConfig, HttpClientConfig,
    ScrapeConfig, StaticConfig, TlsConfig, DEFAULT_SCRAPE_PROTOCOLS, KNOWN_SCRAPE_PROTOCOLS,
};
