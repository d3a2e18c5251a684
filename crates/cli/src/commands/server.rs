//! `strata server`: a Prometheus-compatible server over a directory of TSDB blocks
//! (mirrors `cmd/prometheus`). It serves the HTTP API (`strata-api`) on the blocks
//! of `--storage.tsdb.path`, picks up new blocks every 30 s, enforces time
//! retention as Prometheus does, and exposes its own metrics on `/metrics`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_api::{Api, HttpMetrics, Lifecycle, ServerInfo};
use strata_config::{format_duration_ms, parse_duration_ms, Config as PromConfig};

mod flags;
mod maintenance;
mod storage;
mod targets;
use maintenance::{build_info, maintain, maintenance_loop, BuildLabels, TsdbMetrics};
use storage::{HeadMetrics, Storage, TsdbOps};
use strata_model::Labels;
use strata_promql::{Engine, EngineOptions};
use strata_tsdb::Db;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Prometheus' default time retention when neither time nor size is set.
const DEFAULT_RETENTION_MS: i64 = 15 * 24 * 3_600_000;
/// Retention is capped at 100y, as in Prometheus.
const MAX_RETENTION_MS: i64 = 100 * 365 * 24 * 3_600_000;
/// The default upper bound of `--storage.tsdb.max-block-duration`.
const MAX_BLOCK_DURATION_CAP_MS: i64 = 31 * 24 * 3_600_000;
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

fn duration_arg(s: &str) -> Result<i64, String> {
    parse_duration_ms(s).map_err(|e| e.to_string())
}

/// Parses a base-2 byte size as Prometheus does (`512MB` = 512 MiB; `KiB` spellings
/// and plain `B` accepted; a unit is required).
fn size_arg(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?} (examples: 512MB, 10GB, 1TB)");
    let i = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(i);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit {
        "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        "PB" | "PiB" => 50,
        "EB" | "EiB" => 60,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// `strata server` flags (Prometheus' names and defaults).
#[derive(Debug, Args)]
pub struct Config {
    /// Prometheus configuration file path.
    #[arg(long = "config.file", default_value = "prometheus.yml")]
    config_file: PathBuf,
    /// Base path for metrics storage.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    tsdb_path: PathBuf,
    /// Address to listen on for UI, API, and telemetry.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    listen_address: String,
    /// How long to retain samples in storage (default 15d). Blocks whose data is
    /// older than this, relative to the newest block, are deleted.
    #[arg(long = "storage.tsdb.retention.time", value_parser = duration_arg)]
    retention_time: Option<i64>,
    /// Maximum number of bytes that can be stored for blocks, base-2 units
    /// (e.g. `512MB` = 512 MiB); the oldest blocks go first.
    #[arg(long = "storage.tsdb.retention.size", value_parser = size_arg)]
    retention_size: Option<u64>,
    /// Minimum duration of a data block before being persisted.
    #[arg(long = "storage.tsdb.min-block-duration", value_parser = duration_arg,
          default_value = "2h", hide = true)]
    min_block_duration: i64,
    /// Maximum duration compacted blocks may span (default: 10% of the retention,
    /// at most 31d).
    #[arg(long = "storage.tsdb.max-block-duration", value_parser = duration_arg, hide = true)]
    max_block_duration: Option<i64>,
    /// The maximum lookback duration for retrieving metrics during expression
    /// evaluations.
    #[arg(long = "query.lookback-delta", value_parser = duration_arg, default_value = "5m")]
    lookback_delta: i64,
    /// Maximum number of samples a single query can load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    max_samples: usize,
    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", value_parser = duration_arg, default_value = "2m")]
    query_timeout: i64,
    /// Maximum number of queries executed concurrently.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    max_concurrency: usize,
    /// Enable shutdown and reload via HTTP request (`/-/quit`, `/-/reload`).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Enable the remote write receiver at `/api/v1/write`.
    #[arg(long = "web.enable-remote-write-receiver")]
    enable_remote_write_receiver: bool,
    /// Maximum overall number of samples to return via the remote read interface
    /// in a single query (0: no limit).
    #[arg(
        long = "storage.remote.read-sample-limit",
        default_value_t = 50_000_000
    )]
    remote_read_sample_limit: usize,
    /// Maximum number of concurrent remote read calls (0: no limit).
    #[arg(long = "storage.remote.read-concurrent-limit", default_value_t = 10)]
    remote_read_concurrent_limit: usize,
    /// Maximum number of bytes in a single frame of streamed remote read responses.
    #[arg(
        long = "storage.remote.read-max-bytes-in-frame",
        default_value_t = 1_048_576
    )]
    remote_read_max_bytes_in_frame: usize,
}

impl Config {
    /// Effective time retention, ms (15d when unset or zero; capped at 100y).
    fn retention_ms(&self) -> i64 {
        match self.retention_time {
            Some(r) if r > 0 => r.min(MAX_RETENTION_MS),
            // Only size retention: no time limit, as in Prometheus.
            _ if self.retention_size.is_some_and(|s| s > 0) => 0,
            _ => DEFAULT_RETENTION_MS,
        }
    }

    /// Effective max block duration, as Prometheus computes its default.
    fn max_block_duration_ms(&self) -> i64 {
        match self.max_block_duration {
            Some(d) if d > 0 => d,
            _ if self.retention_ms() <= 0 => MAX_BLOCK_DURATION_CAP_MS,
            _ => MAX_BLOCK_DURATION_CAP_MS.min(self.retention_ms() / 10),
        }
    }
}

/// The global `--log.level`, read back from the command line (it belongs to the
/// top-level parser).
fn log_level_arg() -> String {
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if let Some(v) = a.strip_prefix("--log.level=") {
            return v.to_owned();
        }
        if a == "--log.level" {
            return args.next().unwrap_or_else(|| "info".into());
        }
    }
    "info".into()
}

/// `/-/reload` and `/-/quit`.
struct Hooks {
    config_file: PathBuf,
    api: Mutex<Option<std::sync::Weak<Api>>>,
    storage: Storage,
    scrape: Arc<strata_scrape::ScrapeManager>,
    shutdown: CancellationToken,
    reload_metrics: ReloadMetrics,
}

/// `prometheus_config_last_reload_*`, which Prometheus' `PrometheusBadConfig`
/// alert reads.
#[derive(Clone, Debug, Default)]
struct ReloadMetrics {
    successful: Gauge,
    success_timestamp: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ReloadMetrics {
    fn new(reg: &mut Registry) -> Self {
        let m = Self::default();
        reg.register(
            "prometheus_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            m.successful.clone(),
        );
        reg.register(
            "prometheus_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            m.success_timestamp.clone(),
        );
        m.record(true);
        m
    }

    fn record(&self, ok: bool) {
        self.successful.set(i64::from(ok));
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.success_timestamp.set(now);
        }
    }
}

impl Lifecycle for Hooks {
    fn reload(&self) -> Result<(), String> {
        let api = self
            .api
            .lock()
            .ok()
            .and_then(|a| a.as_ref().and_then(std::sync::Weak::upgrade));
        match PromConfig::load_file(&self.config_file) {
            Ok(c) => {
                if let Err(e) = self.scrape.apply_config(&c) {
                    self.reload_metrics.record(false);
                    if let Some(api) = &api {
                        api.set_config_reload_failed();
                    }
                    error!(error = %e, "error reloading config: scrape pools");
                    return Err(e.to_string());
                }
                if let Some(api) = &api {
                    api.set_config_yaml(c.original);
                }
                self.reload_metrics.record(true);
                info!(file = %self.config_file.display(), "completed loading of configuration file");
                self.storage.reload().map_err(|e| e.to_string())
            }
            Err(e) => {
                self.reload_metrics.record(false);
                if let Some(api) = &api {
                    api.set_config_reload_failed();
                }
                error!(error = %e, "error reloading config");
                Err(e.to_string())
            }
        }
    }

    fn quit(&self) {
        info!("received termination request via web service, exiting gracefully");
        self.shutdown.cancel();
    }
}

/// Runs the server until SIGTERM, SIGINT or `/-/quit`.
pub async fn run(c: Config) -> anyhow::Result<()> {
    let start_time = SystemTime::now();
    let retention_ms = c.retention_ms();
    let flags = c.flags_map(&log_level_arg());
    let config = PromConfig::load_file(&c.config_file)
        .with_context(|| format!("loading configuration file {}", c.config_file.display()))?;
    info!(file = %c.config_file.display(), "loaded configuration file");

    std::fs::create_dir_all(&c.tsdb_path)
        .with_context(|| format!("creating {}", c.tsdb_path.display()))?;
    let external = Labels::from_pairs(config.global.external_labels.clone());
    let path = c.tsdb_path.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(&path))
        .await
        .context("opening the TSDB")?
        .with_context(|| format!("opening the TSDB at {}", c.tsdb_path.display()))?;
    let db = Arc::new(db.with_external_labels(external));
    if retention_ms != DEFAULT_RETENTION_MS || c.retention_time.is_some() {
        info!(retention = %format_duration_ms(retention_ms), "time retention");
    }

    let head_opts = strata_tsdb::head::HeadOptions {
        chunk_range_ms: c.min_block_duration,
        ..Default::default()
    };
    let dir = c.tsdb_path.clone();
    let db2 = db.clone();
    let max_block = c.max_block_duration_ms();
    let retention_bytes = c.retention_size.unwrap_or(0);
    let storage = tokio::task::spawn_blocking(move || {
        Storage::open(dir, db2, head_opts, max_block).map(|mut st| {
            st.retention_bytes = retention_bytes;
            st
        })
    })
    .await
    .context("opening the head")?
    .context("replaying the WAL")?;

    let mut registry = Registry::default();
    let http = HttpMetrics::new(&mut registry);
    let tsdb_metrics = TsdbMetrics::new(&mut registry);
    let reload_metrics = ReloadMetrics::new(&mut registry);
    let mut storage = storage;
    storage.ops = TsdbOps::new(&mut registry);
    let head_metrics = HeadMetrics::new(&mut registry, storage.head.clone());
    let scrape = Arc::new(strata_scrape::ScrapeManager::new(
        Arc::new(storage.head.clone()),
        &mut registry,
    ));
    scrape
        .apply_config(&config)
        .context("starting scrape pools")?;
    tsdb_metrics
        .retention_limit_seconds
        .set(retention_ms / 1000);
    let build = build_info();
    let build_family = Family::<BuildLabels, Gauge>::default();
    build_family
        .get_or_create(&BuildLabels {
            branch: build.branch.clone(),
            goversion: build.go_version.clone(),
            revision: build.revision.clone(),
            version: build.version.clone(),
        })
        .set(1);
    registry.register(
        "prometheus_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, and goversion from which prometheus was built.",
        build_family,
    );
    {
        let st = storage.clone();
        let m = tsdb_metrics.clone();
        let hm = head_metrics.clone();
        // No compaction before the server is ready (like Prometheus, which
        // compacts in the background): startup time is the WAL replay.
        tokio::task::spawn_blocking(move || maintain(&st, retention_ms, &m, &hm, false))
            .await
            .context("applying retention")?;
    }
    info!(blocks = db.blocks().len(), dir = %c.tsdb_path.display(), "TSDB started");

    let engine = Arc::new(Engine::new(EngineOptions {
        lookback_delta_ms: c.lookback_delta,
        max_samples: c.max_samples,
        timeout: Duration::from_millis(c.query_timeout.max(0).unsigned_abs()),
        max_concurrency: c.max_concurrency,
        default_subquery_step_ms: config.global.evaluation_interval.as_millis(),
    }));
    let shutdown = CancellationToken::new();
    let info = ServerInfo {
        build,
        flags,
        start_time,
        storage_retention: format_duration_ms(retention_ms),
    };
    let mut remote_routes = strata_remote::read_router(
        storage.queryable.clone(),
        strata_remote::ReadOptions {
            sample_limit: c.remote_read_sample_limit,
            concurrent_limit: c.remote_read_concurrent_limit,
            max_bytes_in_frame: c.remote_read_max_bytes_in_frame,
            external_labels: Labels::from_pairs(config.global.external_labels.clone()),
            ..Default::default()
        },
        &mut registry,
    );
    if c.enable_remote_write_receiver {
        remote_routes = remote_routes.merge(strata_remote::write_router(
            Arc::new(storage.head.clone()),
            strata_remote::WriteOptions::default(),
            &mut registry,
        ));
    }
    let mut api =
        Api::new(storage.queryable.clone(), engine, info).with_metrics(Arc::new(registry), http);
    let hooks = Arc::new(Hooks {
        config_file: c.config_file.clone(),
        api: Mutex::new(None),
        storage: storage.clone(),
        scrape: scrape.clone(),
        shutdown: shutdown.clone(),
        reload_metrics: reload_metrics.clone(),
    });
    if c.enable_lifecycle {
        api = api.with_lifecycle(hooks.clone());
    }
    api = api.with_targets(Arc::new(targets::ScrapeTargets(scrape.clone())));
    api.set_config_yaml(config.original);
    let api = Arc::new(api);
    if let Ok(mut slot) = hooks.api.lock() {
        *slot = Some(Arc::downgrade(&api));
    }

    let listener = tokio::net::TcpListener::bind(&c.listen_address)
        .await
        .with_context(|| format!("listening on {}", c.listen_address))?;
    info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening");

    // Head gauges and the appended-samples counter follow the head every second
    // (the maintenance loop runs only once a minute).
    {
        let hm = head_metrics.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => hm.update(),
                }
            }
        });
    }
    let maintenance = tokio::spawn(maintenance_loop(
        storage.clone(),
        retention_ms,
        tsdb_metrics,
        head_metrics,
        shutdown.clone(),
    ));
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let hup = tokio::spawn(reload_on_sighup(hooks.clone(), shutdown.clone()));
    let scraping = {
        let s = scrape.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { s.run(stop).await })
    };

    let graceful = shutdown.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, api.router().merge(remote_routes))
            .with_graceful_shutdown(async move { graceful.cancelled().await })
            .await
    });
    info!("server is ready to receive web requests");
    let served = tokio::select! {
        r = &mut server => Some(r),
        () = shutdown.cancelled() => None,
    };
    let served = match served {
        Some(r) => r,
        None => match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(r) => r,
            Err(_) => {
                warn!("in-flight requests did not finish in time; stopping anyway");
                server.abort();
                Ok(Ok(()))
            }
        },
    };
    shutdown.cancel();
    signals.abort();
    hup.abort();
    let _ = scraping.await;
    let _ = maintenance.await;
    let st = storage.clone();
    let _ = tokio::task::spawn_blocking(move || st.close()).await;
    served.context("web server task")?.context("serving HTTP")?;
    info!("see you next time!");
    Ok(())
}

/// Reloads the configuration on SIGHUP, like Prometheus.
async fn reload_on_sighup(hooks: Arc<Hooks>, stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => h,
        Err(e) => {
            error!(error = %e, "installing the SIGHUP handler");
            return;
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            r = hup.recv() => {
                if r.is_none() {
                    return;
                }
                let h = hooks.clone();
                let _ = tokio::task::spawn_blocking(move || h.reload()).await;
            }
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, "installing signal handlers");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => warn!("received SIGTERM, exiting gracefully..."),
        _ = int.recv() => warn!("received SIGINT, exiting gracefully..."),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_are_base2() {
        assert_eq!(super::size_arg("512MB"), Ok(512 << 20));
        assert_eq!(super::size_arg("1KiB"), Ok(1024));
        assert_eq!(super::size_arg("10B"), Ok(10));
        assert!(super::size_arg("10").is_err());
        assert!(super::size_arg("10XB").is_err());
        assert!(super::size_arg("99999999999EB").is_err());
    }

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        c: Config,
    }

    fn parse(args: &[&str]) -> Config {
        let mut v = vec!["strata"];
        v.extend_from_slice(args);
        Wrap::parse_from(v).c
    }

    #[test]
    fn defaults_match_prometheus() {
        let c = parse(&[]);
        let f = c.flags_map("info");
        assert_eq!(f["config.file"], "prometheus.yml");
        assert_eq!(f["storage.tsdb.path"], "data/");
        assert_eq!(f["web.listen-address"], "0.0.0.0:9090");
        assert_eq!(f["storage.tsdb.retention.time"], "15d");
        assert_eq!(f["storage.tsdb.min-block-duration"], "2h");
        assert_eq!(f["storage.tsdb.max-block-duration"], "1d12h");
        assert_eq!(f["query.lookback-delta"], "5m");
        assert_eq!(f["query.max-samples"], "50000000");
        assert_eq!(f["query.timeout"], "2m");
        assert_eq!(f["query.max-concurrency"], "20");
        assert_eq!(f["web.enable-lifecycle"], "false");
        assert_eq!(f["log.level"], "info");
    }

    #[test]
    fn max_block_duration_follows_retention() {
        let c = parse(&["--storage.tsdb.retention.time=1y"]);
        assert_eq!(
            c.flags_map("info")["storage.tsdb.max-block-duration"],
            "31d"
        );
        let c = parse(&["--storage.tsdb.retention.time=10d"]);
        assert_eq!(c.flags_map("info")["storage.tsdb.max-block-duration"], "1d");
        let c = parse(&["--storage.tsdb.max-block-duration=6h"]);
        assert_eq!(c.flags_map("info")["storage.tsdb.max-block-duration"], "6h");
        let c = parse(&["--storage.tsdb.retention.time=200y"]);
        assert_eq!(c.flags_map("info")["storage.tsdb.retention.time"], "100y");
        let c = parse(&["--storage.tsdb.retention.time=0s"]);
        assert_eq!(c.retention_ms(), DEFAULT_RETENTION_MS);
    }

    #[test]
    fn deletion_path_is_a_sibling() {
        assert_eq!(
            super::maintenance::deletion_path(std::path::Path::new("/d/01ABC")),
            PathBuf::from("/d/01ABC.tmp-for-deletion")
        );
    }
}
