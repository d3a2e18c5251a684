//! The querier (`strata query`; Thanos `pkg/query`, `pkg/store/proxy.go`,
//! `pkg/discovery`, `pkg/api/query`).
//!
//! - [`discovery`]: endpoint address specs (`host:port`, `dns+`, `dnssrv+`,
//!   `dnssrvnoa+`) resolved through an injectable [`Resolver`], the
//!   `--endpoint.sd-config` YAML and Prometheus file SD.
//! - [`EndpointSet`]: one StoreAPI [`strata_storeapi::Client`] per address, Info
//!   refreshed periodically, health and last error kept for pruning and for
//!   `/api/v1/stores`.
//! - [`Proxy`]: a [`Queryable`] that prunes endpoints by time range, external
//!   labels and `storeMatch[]`, fans out concurrently with a deadline, merges the
//!   sorted streams, and turns a failing endpoint into a warning (partial
//!   response) or an error; it never waits on an endpoint longer than the timeout.
//! - [`Querier`]: the HTTP API's [`SourceSelector`]: per request, a proxy with the
//!   request's partial-response, resolution and store-match options, wrapped in
//!   [`strata_storage::Dedup`] along the replica labels unless `dedup=false`,
//!   and the request's lookback delta ([`LookbackDelta`], which grows with
//!   `max_source_resolution` so that downsampled data has no lookback gaps).
//!
//! Why dedup sits above the proxy: replicas live on different endpoints, so only
//! after merging all streams are the replicas of one series neighbours.

pub mod discovery;
mod endpoints;
mod error;
mod lookback;
mod proxy;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_api::{MaxSourceResolution, SourceParams, SourceSelector};
use strata_storage::{Dedup, Queryable};
use tracing::warn;

pub use discovery::{EndpointSpec, Resolver, SdConfig, SystemResolver};
pub use endpoints::{EndpointSet, EndpointSetOptions, EndpointStatus};
pub use error::{Error, Result};
pub use lookback::LookbackDelta;
pub use proxy::{label_sets_match, max_resolution_from_hints, store_matches, Proxy, ProxyOptions};

/// Querier-wide defaults of the per-request options (the `--query.*` flags).
#[derive(Clone, Debug)]
pub struct QuerierOptions {
    /// `--query.replica-label`.
    pub replica_labels: Vec<String>,
    /// `--query.partial-response` (default true).
    pub partial_response: bool,
    /// `--query.auto-downsampling`: `max_source_resolution` defaults to step/5.
    pub auto_downsampling: bool,
    /// Deadline of each endpoint call and of each wait for its next frame.
    pub endpoint_timeout: Option<Duration>,
    /// `--query.lookback-delta`, ms (0 when unset: the engine's default).
    pub lookback_delta_ms: i64,
    /// `--query.dynamic-lookback-delta` (default true): the lookback delta
    /// grows with the request's `max_source_resolution`.
    pub dynamic_lookback_delta: bool,
}

impl Default for QuerierOptions {
    fn default() -> Self {
        Self {
            replica_labels: Vec::new(),
            partial_response: true,
            auto_downsampling: false,
            endpoint_timeout: Some(Duration::from_secs(120)),
            lookback_delta_ms: 0,
            dynamic_lookback_delta: true,
        }
    }
}

/// Builds the source of each API request over an [`EndpointSet`].
#[derive(Debug)]
pub struct Querier {
    set: EndpointSet,
    opts: QuerierOptions,
    lookback: LookbackDelta,
    warned: Mutex<HashSet<String>>,
}

impl Querier {
    /// A querier over `set`.
    pub fn new(set: EndpointSet, opts: QuerierOptions) -> Self {
        let lookback = LookbackDelta::new(opts.lookback_delta_ms, opts.dynamic_lookback_delta);
        Self {
            set,
            opts,
            lookback,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// The endpoint set.
    pub fn endpoints(&self) -> &EndpointSet {
        &self.set
    }

    /// The deduplicated source with the flag defaults (what the querier's own
    /// StoreAPI serves is [`Querier::raw_proxy`] instead).
    pub fn default_source(&self) -> Arc<dyn Queryable> {
        self.build(&SourceParams::default())
    }

    /// A proxy that follows each request's own partial-response flag, without
    /// dedup: what the querier serves over the StoreAPI, so that a querier above
    /// it sees the replicas and deduplicates itself.
    pub fn raw_proxy(&self) -> Proxy {
        Proxy::new(
            self.set.clone(),
            ProxyOptions {
                timeout: self.opts.endpoint_timeout,
                ..ProxyOptions::default()
            },
        )
    }

    /// Warnings for replica labels that no healthy endpoint announces (dedup by
    /// them does nothing; usually a typo). Logged once per label.
    fn replica_label_warnings(&self, labels: &[String]) -> Vec<String> {
        let statuses = self.set.statuses();
        let known: Vec<_> = statuses.iter().filter_map(|e| e.info.as_ref()).collect();
        if known.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for l in labels {
            let present = known
                .iter()
                .any(|i| i.source.label_sets.iter().any(|s| s.has(l)));
            if present {
                continue;
            }
            let msg = format!(
                "replica label {l:?} is not an external label of any store; deduplication by it has no effect"
            );
            let first = self
                .warned
                .lock()
                .map(|mut w| w.insert(l.clone()))
                .unwrap_or(false);
            if first {
                warn!(label = %l, "{msg}");
            }
            out.push(msg);
        }
        out
    }

    /// The request's maximum source resolution, ms (Thanos
    /// `parseDownsamplingParamMillis`): `auto` is step/5, and so is a missing
    /// parameter under `--query.auto-downsampling`; else raw (0). Instant
    /// queries have no step, so `auto` reads raw data for them.
    pub fn max_resolution_ms(&self, p: &SourceParams) -> i64 {
        let auto = (p.step_ms / 5).max(0);
        match p.max_source_resolution {
            Some(MaxSourceResolution::Auto) => auto,
            Some(MaxSourceResolution::Ms(ms)) => ms,
            None if self.opts.auto_downsampling => auto,
            None => 0,
        }
    }

    fn build(&self, p: &SourceParams) -> Arc<dyn Queryable> {
        let dedup = p.dedup.unwrap_or(true);
        let replica_labels = p
            .replica_labels
            .clone()
            .unwrap_or_else(|| self.opts.replica_labels.clone());
        let max_resolution_ms = self.max_resolution_ms(p);
        let warnings = if dedup {
            self.replica_label_warnings(&replica_labels)
        } else {
            Vec::new()
        };
        let proxy = Proxy::new(
            self.set.clone(),
            ProxyOptions {
                partial_response: Some(p.partial_response.unwrap_or(self.opts.partial_response)),
                max_resolution_ms: Some(max_resolution_ms),
                store_matchers: p.store_matchers.clone(),
                timeout: self.opts.endpoint_timeout,
                warnings,
            },
        );
        if dedup && !replica_labels.is_empty() {
            Arc::new(Dedup::new(Arc::new(proxy), replica_labels))
        } else {
            Arc::new(proxy)
        }
    }
}

impl SourceSelector for Querier {
    fn source(&self, params: &SourceParams) -> strata_api::Result<Arc<dyn Queryable>> {
        Ok(self.build(params))
    }

    fn lookback_delta_ms(&self, params: &SourceParams) -> Option<i64> {
        let ms = self.lookback.for_resolution(self.max_resolution_ms(params));
        (ms > 0).then_some(ms)
    }

    fn stores_json(&self) -> Option<String> {
        Some(self.set.stores_json())
    }
}
