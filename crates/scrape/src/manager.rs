//! The scrape manager: one pool per job, reconfigured by diffing (mirrors
//! Prometheus `scrape.Manager.ApplyConfig` and the discovery manager).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use strata_config::Config;
use strata_model::matches_all;
use strata_model::Matcher;
use strata_storage::Appendable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{
    format_rfc3339_nano, label_map, ActiveTarget, DroppedTarget, TargetMetadata, TargetsSnapshot,
};
use crate::discovery::{static_groups, watch_files};
use crate::error::{Error, Result};
use crate::http::HttpScraper;
use crate::metrics::Metrics;
use crate::pool::ScrapePool;
use crate::target::Target;

struct PoolEntry {
    pool: Arc<ScrapePool>,
    sd_cancel: CancellationToken,
}

/// Runs the scrape pools of a configuration and reports on their targets.
///
/// Call [`ScrapeManager::apply_config`] (inside a tokio runtime: it starts the
/// loops at once) for the first and every later configuration, and
/// [`ScrapeManager::run`] to wait for shutdown. Pools whose scrape config is
/// unchanged keep running, with their targets and caches; within a pool,
/// targets that stay keep running too.
pub struct ScrapeManager {
    appendable: Arc<dyn Appendable>,
    metrics: Arc<Metrics>,
    root: CancellationToken,
    tracker: TaskTracker,
    pools: Mutex<BTreeMap<String, PoolEntry>>,
    hostname: String,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager")
            .field("pools", &self.scrape_pools())
            .finish_non_exhaustive()
    }
}

impl ScrapeManager {
    /// A manager appending to `appendable`, with its metrics in `registry`.
    pub fn new(appendable: Arc<dyn Appendable>, registry: &mut Registry) -> Self {
        let metrics = Arc::new(Metrics::default());
        metrics.register(registry);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            appendable,
            metrics,
            root: CancellationToken::new(),
            tracker: TaskTracker::new(),
            pools: Mutex::new(BTreeMap::new()),
            hostname,
        }
    }

    /// Applies `cfg`: pools of removed jobs stop (their series get staleness
    /// markers), changed jobs restart, new jobs start, unchanged ones keep
    /// running. On error (a pool's HTTP client cannot be built, e.g. an
    /// unreadable CA file) nothing changes and the old configuration keeps
    /// running.
    ///
    /// Must be called within a tokio runtime.
    pub fn apply_config(&self, cfg: &Config) -> Result<()> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut new_scrapers = BTreeMap::new();
        for sc in &cfg.scrape_configs {
            if pools.get(&sc.job_name).is_some_and(|p| *p.pool.cfg == *sc) {
                continue;
            }
            let scraper = HttpScraper::new(sc).map_err(|message| {
                self.metrics.reloads_failed.inc();
                Error::Client {
                    job: sc.job_name.clone(),
                    message,
                }
            })?;
            new_scrapers.insert(sc.job_name.clone(), scraper);
        }
        let seed = offset_seed(&self.hostname, cfg);
        pools.retain(|job, p| {
            if cfg.scrape_configs.iter().any(|sc| sc.job_name == *job) {
                return true;
            }
            p.sd_cancel.cancel();
            p.pool.stop(true);
            false
        });
        for sc in &cfg.scrape_configs {
            let Some(scraper) = new_scrapers.remove(&sc.job_name) else {
                continue;
            };
            if let Some(old) = pools.remove(&sc.job_name) {
                old.sd_cancel.cancel();
                old.pool.stop(false);
            }
            let pool = Arc::new(ScrapePool::new(
                sc.clone(),
                scraper,
                Arc::clone(&self.appendable),
                Arc::clone(&self.metrics),
                seed,
                self.root.child_token(),
                self.tracker.clone(),
            ));
            pool.update_groups("static", static_groups(sc));
            let sd_cancel = self.root.child_token();
            for (i, f) in sc.file_sd_configs.iter().enumerate() {
                self.tracker.spawn(watch_files(
                    Arc::clone(&pool),
                    format!("file/{i}"),
                    f.clone(),
                    sd_cancel.clone(),
                ));
            }
            pools.insert(sc.job_name.clone(), PoolEntry { pool, sd_cancel });
        }
        Ok(())
    }

    /// Waits until `cancel`, then stops every loop (without staleness markers, as
    /// Prometheus on shutdown) and waits for them to finish.
    pub async fn run(&self, cancel: CancellationToken) {
        cancel.cancelled().await;
        self.stop().await;
    }

    /// Stops every loop and waits for them.
    pub async fn stop(&self) {
        if let Ok(mut pools) = self.pools.lock() {
            for p in pools.values() {
                p.sd_cancel.cancel();
                p.pool.stop(false);
            }
            pools.clear();
        }
        self.root.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// The job names of the running pools, sorted (`/api/v1/scrape_pools`).
    pub fn scrape_pools(&self) -> Vec<String> {
        self.pools
            .lock()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn each_pool(&self) -> Vec<(String, Arc<ScrapePool>)> {
        self.pools
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), Arc::clone(&v.pool)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The data of `/api/v1/targets`: active targets by pool then labels.
    pub fn targets(&self) -> TargetsSnapshot {
        let mut snap = TargetsSnapshot::default();
        for (job, pool) in self.each_pool() {
            let (active, dropped) = pool.snapshot();
            for t in active {
                snap.active_targets.push(self.active_target(&job, &t));
            }
            snap.dropped_target_counts
                .insert(job.clone(), dropped.len());
            for d in dropped {
                snap.dropped_targets.push(DroppedTarget {
                    discovered_labels: label_map(&d),
                    scrape_pool: job.clone(),
                });
            }
        }
        snap
    }

    fn active_target(&self, job: &str, t: &Target) -> ActiveTarget {
        let st = t.state.lock().map(|s| s.clone()).unwrap_or_default();
        ActiveTarget {
            discovered_labels: label_map(&t.discovered),
            labels: label_map(&t.public_labels),
            scrape_pool: job.to_owned(),
            scrape_url: t.url.clone(),
            global_url: global_url(&t.url, &self.hostname),
            last_error: st.last_error,
            last_scrape: format_rfc3339_nano(st.last_scrape_ms),
            last_scrape_duration: st.last_duration_s,
            health: st.health.as_str().to_owned(),
            scrape_interval: t.interval_string(),
            scrape_timeout: t.timeout_string(),
        }
    }

    /// The data of `/api/v1/targets/metadata`: metadata of targets whose labels
    /// match all of `match_target` (all targets if empty), for `metric` (all if
    /// `None`), at most `limit` entries (0 = no limit). Sorted by target, then
    /// metric.
    pub fn target_metadata(
        &self,
        match_target: &[Matcher],
        metric: Option<&str>,
        limit: usize,
    ) -> Vec<TargetMetadata> {
        let mut out = Vec::new();
        for (_, pool) in self.each_pool() {
            let (active, _) = pool.snapshot();
            for t in active {
                let labels = &t.public_labels;
                if !matches_all(match_target, |n| labels.get(n)) {
                    continue;
                }
                let Ok(md) = t.metadata.lock() else { continue };
                let mut names: Vec<&String> = md
                    .keys()
                    .filter(|k| metric.is_none_or(|m| m == k.as_str()))
                    .collect();
                names.sort();
                for name in names {
                    let m = &md[name];
                    out.push(TargetMetadata {
                        target: label_map(&t.public_labels),
                        metric: name.clone(),
                        metric_type: m.metric_type.as_str().to_owned(),
                        help: m.help.clone(),
                        unit: m.unit.clone(),
                    });
                    if limit > 0 && out.len() >= limit {
                        return out;
                    }
                }
            }
        }
        out
    }
}

/// Seed for scrape offsets, so that servers with other external labels or hosts
/// scrape the same targets at other phases (Prometheus' `offsetSeed`).
fn offset_seed(hostname: &str, cfg: &Config) -> u64 {
    let labels = strata_model::Labels::from_pairs(
        cfg.global
            .external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut h = labels.stable_hash();
    for b in hostname.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// `url` with a loopback host replaced by `hostname`.
fn global_url(url: &str, hostname: &str) -> String {
    for lo in ["localhost", "127.0.0.1", "[::1]"] {
        for sep in [":", "/"] {
            for scheme in ["http://", "https://"] {
                let prefix = format!("{scheme}{lo}{sep}");
                if let Some(rest) = url.strip_prefix(&prefix) {
                    return format!("{scheme}{hostname}{sep}{rest}");
                }
            }
        }
    }
    url.to_owned()
}
