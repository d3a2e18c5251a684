//! The Prometheus HTTP API (mirrors Prometheus `web/api/v1` and the probes and
//! lifecycle endpoints of `web/web.go`) on axum.
//!
//! [`Api`] serves any [`Queryable`] through the PromQL [`Engine`], plus what a
//! server knows about itself ([`ServerInfo`]: build info, flags, start time). The
//! answers are byte-for-byte what Prometheus writes: the envelope, error types and
//! their status codes, timestamps as JSON numbers with a 3-digit ms fraction only
//! when non-zero, sample values as Go-formatted strings (see `json.rs`). Results are
//! written by hand into one buffer rather than built as JSON trees, because vectors
//! and matrices can be large.
//!
//! Key items: [`Api`], [`Api::router`], [`ServerInfo`], [`BuildInfo`],
//! [`Lifecycle`], [`HttpMetrics`], [`Error`]/[`ErrorType`], the parameter
//! parsers in [`params`], and [`SourceSelector`] for the querier's per-request
//! sources (Thanos' `dedup`, `partial_response`, … parameters).

mod error;
mod handlers;
mod json;
mod metrics;
pub mod params;
mod response;
mod source;
mod timefmt;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use prometheus_client::registry::Registry;
use strata_promql::Engine;
use strata_storage::Queryable;

pub use error::{Error, ErrorType, Result};
pub use metrics::HttpMetrics;
pub use response::{cap_annotations, MAX_ANNOTATIONS};
pub use source::{MaxSourceResolution, SourceParams, SourceSelector};

/// Build information (`/api/v1/status/buildinfo`, `prometheus_build_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// Release version.
    pub version: String,
    /// VCS revision.
    pub revision: String,
    /// VCS branch.
    pub branch: String,
    /// Who built it.
    pub build_user: String,
    /// When it was built.
    pub build_date: String,
    /// The toolchain (Prometheus reports the Go version here).
    pub go_version: String,
}

/// What the server reports about itself.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// Build information.
    pub build: BuildInfo,
    /// Every command-line flag, name (without `--`) to value, as
    /// `/api/v1/status/flags` returns them.
    pub flags: BTreeMap<String, String>,
    /// Process start.
    pub start_time: SystemTime,
    /// The `storageRetention` of `/api/v1/status/runtimeinfo` (e.g. `15d`).
    pub storage_retention: String,
}

impl Default for ServerInfo {
    fn default() -> Self {
        Self {
            build: BuildInfo::default(),
            flags: BTreeMap::new(),
            start_time: SystemTime::now(),
            storage_retention: String::new(),
        }
    }
}

/// Hooks behind `/-/reload` and `/-/quit` (`--web.enable-lifecycle`).
pub trait Lifecycle: Send + Sync + 'static {
    /// Reloads the configuration (may block); the error is shown to the caller.
    fn reload(&self) -> std::result::Result<(), String>;
    /// Starts a clean shutdown.
    fn quit(&self);
}

/// The state behind the HTTP API.
pub struct Api {
    queryable: Arc<dyn Queryable>,
    engine: Arc<Engine>,
    info: ServerInfo,
    config: RwLock<ConfigState>,
    ready: AtomicBool,
    registry: Option<Arc<Registry>>,
    http_metrics: Option<HttpMetrics>,
    lifecycle: Option<Arc<dyn Lifecycle>>,
    targets: Option<Arc<dyn TargetsSource>>,
    selector: Option<Arc<dyn SourceSelector>>,
}

/// What the scrape subsystem shows through `/api/v1/targets`,
/// `/api/v1/targets/metadata` and `/api/v1/metadata`. Each method returns the JSON
/// text of the response's `data` member.
pub trait TargetsSource: Send + Sync {
    /// `/api/v1/targets` for `state` (`active`, `dropped` or `any`/empty) and an
    /// optional `scrapePool`.
    fn targets_json(&self, state: &str, scrape_pool: &str) -> String;
    /// `/api/v1/targets/metadata`: `match_target` is a label selector (may be empty),
    /// `metric` a metric name (may be empty), `limit` 0 for no limit.
    fn targets_metadata_json(
        &self,
        match_target: &str,
        metric: &str,
        limit: usize,
    ) -> Result<String>;
    /// `/api/v1/metadata`: metadata per metric name.
    fn metadata_json(&self, metric: &str, limit: usize) -> String;
}

struct ConfigState {
    yaml: String,
    last_success: bool,
    last_time_ms: i64,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("queryable", &self.queryable)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// An API over `queryable`, evaluating PromQL with `engine`. It starts ready,
    /// with an empty configuration text, no `/metrics` and lifecycle disabled.
    pub fn new(queryable: Arc<dyn Queryable>, engine: Arc<Engine>, info: ServerInfo) -> Self {
        Self {
            queryable,
            engine,
            info,
            config: RwLock::new(ConfigState {
                yaml: String::new(),
                last_success: true,
                last_time_ms: now_ms(),
            }),
            ready: AtomicBool::new(true),
            registry: None,
            http_metrics: None,
            lifecycle: None,
            targets: None,
            selector: None,
        }
    }

    /// Serves targets and metadata from the scrape subsystem.
    pub fn with_targets(mut self, t: Arc<dyn TargetsSource>) -> Self {
        self.targets = Some(t);
        self
    }

    /// Chooses the source of each data request from its Thanos parameters (the
    /// querier), instead of the fixed one, and serves `/api/v1/stores`.
    pub fn with_source_selector(mut self, s: Arc<dyn SourceSelector>) -> Self {
        self.selector = Some(s);
        self
    }

    /// The source for a request with `form` (`step_ms`: the range step, or 0).
    pub(crate) fn source_for(
        &self,
        form: &params::Form,
        step_ms: i64,
    ) -> Result<Arc<dyn Queryable>> {
        Ok(self.query_source_for(form, step_ms)?.0)
    }

    /// The source for a query with `form`, and the lookback delta (ms) the
    /// selector picks for it (`None`: the engine's default).
    pub(crate) fn query_source_for(
        &self,
        form: &params::Form,
        step_ms: i64,
    ) -> Result<(Arc<dyn Queryable>, Option<i64>)> {
        match &self.selector {
            None => Ok((self.queryable.clone(), None)),
            Some(s) => {
                let p = SourceParams::from_form(form, step_ms)?;
                Ok((s.source(&p)?, s.lookback_delta_ms(&p)))
            }
        }
    }

    pub(crate) fn selector(&self) -> Option<&Arc<dyn SourceSelector>> {
        self.selector.as_ref()
    }

    pub(crate) fn targets_source(&self) -> Option<&Arc<dyn TargetsSource>> {
        self.targets.as_ref()
    }

    /// Serves `registry` on `/metrics` and records requests in `http` (which must
    /// have been registered in it).
    pub fn with_metrics(mut self, registry: Arc<Registry>, http: HttpMetrics) -> Self {
        self.registry = Some(registry);
        self.http_metrics = Some(http);
        self
    }

    /// Enables `/-/reload` and `/-/quit`.
    pub fn with_lifecycle(mut self, l: Arc<dyn Lifecycle>) -> Self {
        self.lifecycle = Some(l);
        self
    }

    /// Sets the configuration text that `/api/v1/status/config` returns and
    /// records a successful (re)load.
    pub fn set_config_yaml(&self, yaml: impl Into<String>) {
        let mut c = match self.config.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        c.yaml = yaml.into();
        c.last_success = true;
        c.last_time_ms = now_ms();
    }

    /// Records a failed reload (`reloadConfigSuccess: false` in runtimeinfo).
    pub fn set_config_reload_failed(&self) {
        let mut c = match self.config.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        c.last_success = false;
    }

    /// Marks the server ready or not; when not, `/-/ready` and the API answer 503.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the server is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The server information.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The router: `/api/v1/*`, `/-/healthy`, `/-/ready`, `/-/reload`, `/-/quit`,
    /// and `/metrics` when configured.
    pub fn router(self: Arc<Self>) -> Router {
        handlers::router(self)
    }

    fn config_state(&self) -> (String, bool, i64) {
        let c = match self.config.read() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        (c.yaml.clone(), c.last_success, c.last_time_ms)
    }
}

/// Now, ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    system_time_ms(SystemTime::now())
}

pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}
