//! One target's scrape loop (mirrors Prometheus `scrapeLoop.run`,
//! `scrapeAndReport`, `report` and `endOfRunStaleness`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_model::{Labels, STALE_NAN_BITS};
use strata_storage::{Appendable, Appender};
use tokio_util::sync::CancellationToken;

use crate::cache::{report_labels, AppendStats, ScrapeCache, ScrapeOptions};
use crate::error::ScrapeError;
use crate::http::{Fetched, HttpScraper};
use crate::metrics::{JobLabel, Metrics};
use crate::target::{Health, Target};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Everything a loop needs.
pub(crate) struct LoopCtx {
    pub(crate) target: Arc<Target>,
    pub(crate) scraper: Arc<HttpScraper>,
    pub(crate) appendable: Arc<dyn Appendable>,
    pub(crate) opts: ScrapeOptions,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) job: String,
    /// Set while the pool is over its `target_limit`.
    pub(crate) forced_err: Arc<Mutex<Option<ScrapeError>>>,
    pub(crate) offset_seed: u64,
}

/// Scrapes until `stop` is cancelled. If `end_of_run` is set by then (the target
/// went away), every series of the last scrape gets a staleness marker.
pub(crate) async fn run(ctx: LoopCtx, stop: CancellationToken, end_of_run: Arc<AtomicBool>) {
    let ctx = Arc::new(ctx);
    let report = Arc::new(report_labels(&ctx.target.public_labels));
    let mut cache = Some(ScrapeCache::new());
    let interval = Duration::from_millis(ctx.target.interval_ms.unsigned_abs());
    let offset = ctx.target.offset_ms(now_ms(), ctx.offset_seed);
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep(Duration::from_millis(offset.unsigned_abs())) => {}
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_ts: Option<i64> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let ts = match last_ts {
            // Never go backwards, whatever the wall clock does.
            Some(last) => now_ms().max(last + 1),
            None => now_ms(),
        };
        let started = Instant::now();
        let forced = ctx.forced_err.lock().map(|g| g.clone()).unwrap_or(None);
        let fetched = match forced {
            Some(e) => Err(e),
            None => tokio::select! {
                _ = stop.cancelled() => break,
                r = ctx.scraper.fetch(&ctx.target.url, ctx.target.timeout_ms) => r,
            },
        };
        let duration_s = started.elapsed().as_secs_f64();
        let c = cache.take().unwrap_or_default();
        let ctx2 = Arc::clone(&ctx);
        let report2 = Arc::clone(&report);
        let joined = tokio::task::spawn_blocking(move || {
            let mut c = c;
            let r = scrape_and_report(&ctx2, &mut c, fetched, ts, duration_s, &report2);
            (c, r)
        })
        .await;
        let (c, result) = match joined {
            Ok(x) => x,
            Err(e) => (
                ScrapeCache::new(),
                Err(ScrapeError::Storage(format!("scrape task failed: {e}"))),
            ),
        };
        last_ts = Some(ts);
        record(&ctx, &c, result, ts, duration_s);
        cache = Some(c);
    }
    if end_of_run.load(Ordering::SeqCst) {
        if let (Some(last), Some(mut c)) = (last_ts, cache) {
            let ts = now_ms().max(last + 1);
            let _ = tokio::task::spawn_blocking(move || {
                end_of_run_staleness(ctx.appendable.as_ref(), &mut c, &report, ts)
            })
            .await;
        }
    }
}

/// Appends the scrape (or, on failure, staleness markers) and the five synthetic
/// series in one transaction.
fn scrape_and_report(
    ctx: &LoopCtx,
    cache: &mut ScrapeCache,
    fetched: Result<Fetched, ScrapeError>,
    ts: i64,
    duration_s: f64,
    report: &[Labels; 5],
) -> Result<AppendStats, ScrapeError> {
    let mut app = ctx.appendable.appender();
    let res = match fetched {
        Ok(f) => cache.append(app.as_mut(), &f.body, f.format, ts, &ctx.opts),
        Err(e) => Err(e),
    };
    let (stats, err) = match res {
        Ok(stats) => (stats, None),
        Err(e) => {
            app.rollback();
            app = ctx.appendable.appender();
            if let Err(e2) = cache.append_failed(app.as_mut(), ts) {
                tracing::warn!(job = %ctx.job, error = %e2, "appending staleness markers");
            }
            (AppendStats::default(), Some(e))
        }
    };
    let up = if err.is_none() { 1.0 } else { 0.0 };
    let values = [
        up,
        duration_s,
        stats.scraped as f64,
        stats.post_relabel as f64,
        stats.series_added as f64,
    ];
    for (l, v) in report.iter().zip(values) {
        if let Err(e) = app.append(l, ts, v) {
            tracing::debug!(job = %ctx.job, series = %l, error = %e, "appending report sample");
        }
    }
    match app.commit() {
        Ok(_) => {}
        Err(e) => return Err(ScrapeError::Storage(e.to_string())),
    }
    match err {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// Updates the target's state, metadata and the metrics after a scrape.
fn record(
    ctx: &LoopCtx,
    cache: &ScrapeCache,
    result: Result<AppendStats, ScrapeError>,
    ts: i64,
    duration_s: f64,
) {
    let m = &ctx.metrics;
    let (health, last_error) = match &result {
        Ok(stats) => {
            m.sample_out_of_order.inc_by(stats.out_of_order);
            m.sample_out_of_bounds.inc_by(stats.out_of_bounds);
            m.sample_duplicate_timestamp
                .inc_by(stats.duplicate_timestamps);
            if let Ok(mut md) = ctx.target.metadata.lock() {
                if md.len() != cache.metadata().len() || *md != *cache.metadata() {
                    *md = cache.metadata().clone();
                }
            }
            (Health::Up, stats.warning().unwrap_or_default())
        }
        Err(e) => {
            match e {
                ScrapeError::SampleLimit { .. } => m.exceeded_sample_limit.inc(),
                ScrapeError::BodySizeLimit(_) => m.exceeded_body_size_limit.inc(),
                ScrapeError::LabelLimit(_) => m.exceeded_label_limits.inc(),
                _ => 0,
            };
            m.scrapes_failed
                .get_or_create(&JobLabel {
                    scrape_job: ctx.job.clone(),
                })
                .inc();
            tracing::debug!(job = %ctx.job, target = %ctx.target.url, error = %e, "scrape failed");
            (Health::Down, e.to_string())
        }
    };
    if let Ok(mut st) = ctx.target.state.lock() {
        st.health = health;
        st.last_error = last_error;
        st.last_scrape_ms = ts;
        st.last_duration_s = duration_s;
    }
}

/// Staleness markers for every series of the last scrape and the synthetic ones.
fn end_of_run_staleness(
    appendable: &dyn Appendable,
    cache: &mut ScrapeCache,
    report: &[Labels; 5],
    ts: i64,
) {
    let mut app: Box<dyn Appender> = appendable.appender();
    if cache.append_failed(app.as_mut(), ts).is_err() {
        app.rollback();
        return;
    }
    let stale = f64::from_bits(STALE_NAN_BITS);
    for l in report {
        let _ = app.append(l, ts, stale);
    }
    if let Err(e) = app.commit() {
        tracing::warn!(error = %e, "committing end-of-run staleness markers");
    }
}
