//! The collector's scraping (mirrors Prometheus `scrape/`, `discovery/file` and
//! `discovery/targetgroup`).
//!
//! [`ScrapeManager`] owns one scrape pool per `scrape_configs` job. A pool turns
//! discovered target groups (static, or file SD re-read on change) into targets
//! with Prometheus' label rules (`job`, `instance`, `__scheme__`,
//! `__metrics_path__`, `__param_*`, `relabel_configs`; `__meta_*` and `__*`
//! dropped), and runs one tokio task per target. Each scrape fetches with
//! Prometheus 3.x's `Accept` header and gzip, parses with the zero-allocation
//! parser of `strata_model::textparse`, maps each series line through a
//! [`ScrapeCache`] (honor_labels, `exported_*`, `le`/`quantile` normalisation,
//! `metric_relabel_configs`, label limits), appends through one `Appender` and
//! commits it with the synthetic series (`up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`,
//! `scrape_series_added`). A failed scrape stores only `up=0`, the synthetics and
//! staleness markers for the previous scrape's series; vanished series and
//! removed targets get staleness markers too.
//!
//! Deliberate differences from Prometheus:
//! - samples with an explicit timestamp more than [`MAX_FUTURE_MS`] ahead of the
//!   scrape are dropped (Prometheus stores them), and counted in `lastError`;
//! - a repeated series within one scrape keeps its first sample;
//! - `scrape_series_added` counts series not in the previous scrape;
//! - no protobuf scraping, no `tls_config.server_name` override.
//!
//! Key items: [`ScrapeManager`], [`TargetsSnapshot`], [`ActiveTarget`],
//! [`TargetMetadata`], [`ScrapeCache`], [`ScrapeOptions`].

mod api;
mod cache;
mod discovery;
mod error;
mod http;
mod manager;
mod metrics;
mod pool;
mod scrape_loop;
mod target;

pub use api::{format_rfc3339_nano, ActiveTarget, DroppedTarget, TargetMetadata, TargetsSnapshot};
pub use cache::{AppendStats, ScrapeCache, ScrapeOptions, MAX_FUTURE_MS};
pub use discovery::{TargetGroup, FILE_SD_POLL};
pub use error::{Error, Result, ScrapeError};
pub use http::USER_AGENT_VALUE;
pub use manager::ScrapeManager;
pub use target::{Health, MetricMetadata};
