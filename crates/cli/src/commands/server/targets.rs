//! The scrape manager as the API's source of targets and metadata.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_api::{Error, TargetsSource};
use strata_scrape::ScrapeManager;

/// Adapts [`ScrapeManager`] to [`TargetsSource`].
pub struct ScrapeTargets(pub Arc<ScrapeManager>);

impl TargetsSource for ScrapeTargets {
    fn targets_json(&self, state: &str, scrape_pool: &str) -> String {
        let mut snap = self.0.targets();
        if !scrape_pool.is_empty() {
            snap.active_targets.retain(|t| t.scrape_pool == scrape_pool);
            snap.dropped_targets
                .retain(|t| t.scrape_pool == scrape_pool);
            snap.dropped_target_counts.retain(|k, _| k == scrape_pool);
        }
        match state.to_ascii_lowercase().as_str() {
            "active" => snap.dropped_targets.clear(),
            "dropped" => snap.active_targets.clear(),
            _ => {}
        }
        serde_json::to_string(&snap).unwrap_or_else(|_| "{}".into())
    }

    fn targets_metadata_json(
        &self,
        match_target: &str,
        metric: &str,
        limit: usize,
    ) -> strata_api::Result<String> {
        let ms = if match_target.is_empty() {
            Vec::new()
        } else {
            strata_model::selector::parse_selector(match_target)
                .map_err(|e| Error::bad_data(e.to_string()))?
        };
        let md = self
            .0
            .target_metadata(&ms, (!metric.is_empty()).then_some(metric), limit);
        serde_json::to_string(&md).map_err(|e| Error::bad_data(e.to_string()))
    }

    fn metadata_json(&self, metric: &str, limit: usize) -> String {
        let md = self
            .0
            .target_metadata(&[], (!metric.is_empty()).then_some(metric), 0);
        let mut by_metric: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for m in md {
            let v = serde_json::json!({"type": m.metric_type, "help": m.help, "unit": m.unit});
            let e = by_metric.entry(m.metric).or_default();
            if !e.contains(&v) {
                e.push(v);
            }
        }
        if limit > 0 {
            by_metric = by_metric.into_iter().take(limit).collect();
        }
        serde_json::to_string(&by_metric).unwrap_or_else(|_| "{}".into())
    }
}
