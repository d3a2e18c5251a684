//! A scrape pool: the targets of one job and their loops (mirrors Prometheus
//! `scrapePool.Sync`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_config::ScrapeConfig;
use strata_model::Labels;
use strata_storage::Appendable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::ScrapeOptions;
use crate::discovery::TargetGroup;
use crate::error::ScrapeError;
use crate::http::HttpScraper;
use crate::metrics::{JobLabel, Metrics};
use crate::scrape_loop::{self, LoopCtx};
use crate::target::{populate, Populated, Target};

struct Running {
    target: Arc<Target>,
    stop: CancellationToken,
    end_of_run: Arc<AtomicBool>,
}

#[derive(Default)]
struct PoolState {
    /// Groups by provider (`static`, `file/0`, ...).
    groups: BTreeMap<String, Vec<TargetGroup>>,
    active: HashMap<u64, Running>,
    dropped: Vec<Labels>,
}

/// The targets of one scrape config.
pub(crate) struct ScrapePool {
    pub(crate) cfg: Arc<ScrapeConfig>,
    scraper: Arc<HttpScraper>,
    appendable: Arc<dyn Appendable>,
    metrics: Arc<Metrics>,
    offset_seed: u64,
    cancel: CancellationToken,
    tracker: TaskTracker,
    forced_err: Arc<Mutex<Option<ScrapeError>>>,
    state: Mutex<PoolState>,
}

impl std::fmt::Debug for ScrapePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapePool")
            .field("job", &self.cfg.job_name)
            .finish_non_exhaustive()
    }
}

impl ScrapePool {
    pub(crate) fn new(
        cfg: ScrapeConfig,
        scraper: HttpScraper,
        appendable: Arc<dyn Appendable>,
        metrics: Arc<Metrics>,
        offset_seed: u64,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            cfg: Arc::new(cfg),
            scraper: Arc::new(scraper),
            appendable,
            metrics,
            offset_seed,
            cancel,
            tracker,
            forced_err: Arc::new(Mutex::new(None)),
            state: Mutex::new(PoolState::default()),
        }
    }

    /// Replaces the groups of `provider` and syncs the targets.
    pub(crate) fn update_groups(&self, provider: &str, groups: Vec<TargetGroup>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if self.cancel.is_cancelled() {
            return;
        }
        st.groups.insert(provider.to_owned(), groups);
        self.sync(&mut st);
    }

    /// Starts loops for new targets and stops those that are gone (with
    /// staleness markers); unchanged targets keep running.
    fn sync(&self, st: &mut PoolState) {
        let mut wanted: HashMap<u64, Target> = HashMap::new();
        let mut dropped = Vec::new();
        for g in st.groups.values().flatten() {
            for t in &g.targets {
                let mut b = g.labels.builder();
                for l in t.iter() {
                    b.set(l.name.clone(), l.value.clone());
                }
                match populate(&b.build(), &self.cfg) {
                    Ok(Populated::Active(target)) => {
                        wanted.entry(target.hash()).or_insert(target);
                    }
                    Ok(Populated::Dropped(d)) => dropped.push(d),
                    Err(e) => {
                        tracing::warn!(job = %self.cfg.job_name, source = %g.source, error = %e, "creating target failed");
                    }
                }
            }
        }
        st.dropped = dropped;
        let limit = self.cfg.target_limit;
        if let Ok(mut f) = self.forced_err.lock() {
            *f = (limit > 0 && wanted.len() as u64 > limit).then_some(ScrapeError::TargetLimit {
                targets: wanted.len(),
                limit,
            });
        }
        st.active.retain(|h, r| {
            if wanted.contains_key(h) {
                return true;
            }
            r.end_of_run.store(true, Ordering::SeqCst);
            r.stop.cancel();
            false
        });
        for (h, target) in wanted {
            if st.active.contains_key(&h) {
                continue;
            }
            let target = Arc::new(target);
            let stop = self.cancel.child_token();
            let end_of_run = Arc::new(AtomicBool::new(false));
            let ctx = LoopCtx {
                opts: ScrapeOptions {
                    target_labels: target.public_labels.clone(),
                    honor_labels: self.cfg.honor_labels,
                    honor_timestamps: self.cfg.honor_timestamps,
                    track_timestamps_staleness: self.cfg.track_timestamps_staleness,
                    metric_relabel: self.cfg.metric_relabel_configs.clone().into(),
                    sample_limit: self.cfg.sample_limit,
                    label_limit: self.cfg.label_limit,
                    label_name_length_limit: self.cfg.label_name_length_limit,
                    label_value_length_limit: self.cfg.label_value_length_limit,
                },
                target: Arc::clone(&target),
                scraper: Arc::clone(&self.scraper),
                appendable: Arc::clone(&self.appendable),
                metrics: Arc::clone(&self.metrics),
                job: self.cfg.job_name.clone(),
                forced_err: Arc::clone(&self.forced_err),
                offset_seed: self.offset_seed,
            };
            self.tracker
                .spawn(scrape_loop::run(ctx, stop.clone(), Arc::clone(&end_of_run)));
            st.active.insert(
                h,
                Running {
                    target,
                    stop,
                    end_of_run,
                },
            );
        }
        self.metrics
            .pool_targets
            .get_or_create(&JobLabel {
                scrape_job: self.cfg.job_name.clone(),
            })
            .set(st.active.len() as i64);
    }

    /// Stops every loop; with `staleness`, their series get staleness markers.
    pub(crate) fn stop(&self, staleness: bool) {
        if let Ok(mut st) = self.state.lock() {
            for r in st.active.values() {
                r.end_of_run.store(staleness, Ordering::SeqCst);
                r.stop.cancel();
            }
            st.active.clear();
        }
        self.cancel.cancel();
        self.metrics.pool_targets.remove(&JobLabel {
            scrape_job: self.cfg.job_name.clone(),
        });
    }

    /// Active targets, sorted by labels, and dropped targets' discovered labels.
    pub(crate) fn snapshot(&self) -> (Vec<Arc<Target>>, Vec<Labels>) {
        let Ok(st) = self.state.lock() else {
            return (Vec::new(), Vec::new());
        };
        let mut active: Vec<Arc<Target>> =
            st.active.values().map(|r| Arc::clone(&r.target)).collect();
        active.sort_by(|a, b| a.labels.cmp(&b.labels));
        (active, st.dropped.clone())
    }
}
