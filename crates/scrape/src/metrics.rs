//! The scrape manager's own metrics (Prometheus' `prometheus_target_*` names).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `scrape_job` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct JobLabel {
    pub(crate) scrape_job: String,
}

/// Counters and gauges shared by all pools.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) exceeded_sample_limit: Counter,
    pub(crate) exceeded_body_size_limit: Counter,
    pub(crate) exceeded_label_limits: Counter,
    pub(crate) sample_out_of_order: Counter,
    pub(crate) sample_out_of_bounds: Counter,
    pub(crate) sample_duplicate_timestamp: Counter,
    pub(crate) scrapes_failed: Family<JobLabel, Counter>,
    pub(crate) pool_targets: Family<JobLabel, Gauge>,
    pub(crate) reloads_failed: Counter,
}

impl Metrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "prometheus_target_scrapes_exceeded_sample_limit",
            "Total number of scrapes that hit the sample limit and were rejected.",
            self.exceeded_sample_limit.clone(),
        );
        r.register(
            "prometheus_target_scrapes_exceeded_body_size_limit",
            "Total number of scrapes that hit the body size limit.",
            self.exceeded_body_size_limit.clone(),
        );
        r.register(
            "prometheus_target_scrape_pool_exceeded_label_limits",
            "Total number of times scrapes hit the label limits.",
            self.exceeded_label_limits.clone(),
        );
        r.register(
            "prometheus_target_scrapes_sample_out_of_order",
            "Total number of samples rejected due to not being out of the expected order.",
            self.sample_out_of_order.clone(),
        );
        r.register(
            "prometheus_target_scrapes_sample_out_of_bounds",
            "Total number of samples rejected due to timestamp falling outside of the time bounds.",
            self.sample_out_of_bounds.clone(),
        );
        r.register(
            "prometheus_target_scrapes_sample_duplicate_timestamp",
            "Total number of samples rejected due to duplicate timestamps but different values.",
            self.sample_duplicate_timestamp.clone(),
        );
        r.register(
            "strata_scrape_failed",
            "Total number of failed scrapes, by job.",
            self.scrapes_failed.clone(),
        );
        r.register(
            "prometheus_target_scrape_pool_targets",
            "Current number of targets in this scrape pool.",
            self.pool_targets.clone(),
        );
        r.register(
            "strata_scrape_config_apply_failed",
            "Total number of scrape configurations that could not be applied.",
            self.reloads_failed.clone(),
        );
    }
}
