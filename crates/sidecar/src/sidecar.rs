//! Startup checks and the background loops of the sidecar (thanos
//! `cmd/thanos/sidecar.go`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_block::{Shipper, ShipperOptions};
use strata_model::Labels;
use strata_objstore::{Bucket, BucketConfig};
use strata_remote::{ReadClient, ReadClientOptions};
use strata_storage::Queryable;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::error::{Error, Result};
use crate::promclient::{check_block_durations, PromClient};

/// Settings of a [`Sidecar`]; defaults are Thanos' flag defaults.
#[derive(Clone, Debug)]
pub struct SidecarOptions {
    /// `--prometheus.url`.
    pub prometheus_url: String,
    /// `--tsdb.path`: the Prometheus data directory.
    pub tsdb_path: PathBuf,
    /// `--prometheus.ready_timeout`: how long startup waits for Prometheus.
    pub ready_timeout: Duration,
    /// `--prometheus.get_config_interval`: how often labels and the lowest
    /// timestamp are refreshed.
    pub get_config_interval: Duration,
    /// `--prometheus.get_config_timeout`: timeout of each request to Prometheus.
    pub get_config_timeout: Duration,
    /// The bucket to ship blocks to (`--objstore.config(-file)`); `None` ships
    /// nothing.
    pub bucket: Option<BucketConfig>,
    /// `--shipper.upload-compacted`.
    pub upload_compacted: bool,
    /// `--shipper.meta-file-name`.
    pub meta_file_name: String,
    /// `--shipper.ignore-unequal-block-size`: only warn when Prometheus compacts.
    pub ignore_unequal_block_size: bool,
    /// `--min-time`, ms: data before it is not served.
    pub min_time_ms: i64,
    /// Pause between shipper passes (Thanos: 30s).
    pub sync_interval: Duration,
    /// Pause between startup attempts while Prometheus is not up (Thanos: 2s).
    pub retry_interval: Duration,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            prometheus_url: "http://localhost:9090".into(),
            tsdb_path: PathBuf::from("./data"),
            ready_timeout: Duration::from_secs(600),
            get_config_interval: Duration::from_secs(30),
            get_config_timeout: Duration::from_secs(30),
            bucket: None,
            upload_compacted: false,
            meta_file_name: strata_block::DEFAULT_META_FILE_NAME.into(),
            ignore_unequal_block_size: false,
            min_time_ms: i64::MIN,
            sync_interval: Duration::from_secs(30),
            retry_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Metrics {
    prometheus_up: Gauge,
    last_heartbeat: Gauge<f64, AtomicU64>,
}

impl Metrics {
    fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "thanos_sidecar_prometheus_up",
            "Boolean indicator whether the sidecar can reach its Prometheus peer.",
            m.prometheus_up.clone(),
        );
        registry.register(
            "thanos_sidecar_last_heartbeat_success_time_seconds",
            "Timestamp of the last successful heartbeat in seconds.",
            m.last_heartbeat.clone(),
        );
        m
    }

    fn heartbeat(&self, up: bool) {
        self.prometheus_up.set(i64::from(up));
        if up {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_heartbeat.set(now);
        }
    }
}

/// Shared readiness flag for `/-/ready`; starts not ready.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Whether the sidecar is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets it.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// A started sidecar: Prometheus checked, external labels known.
#[derive(Debug)]
pub struct Sidecar {
    opts: SidecarOptions,
    prom: PromClient,
    reader: Arc<ReadClient>,
    shipper: Option<Arc<Mutex<Shipper>>>,
    labels: Labels,
    ready: Readiness,
    metrics: Metrics,
}

/// Runs `f` every `interval` until it succeeds, `timeout` passes or `cancel`
/// fires, logging each failure with `what`.
async fn retry<T, F, Fut>(
    what: &'static str,
    interval: Duration,
    timeout: Duration,
    cancel: &CancellationToken,
    mut f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        warn!(error = %last, "{what}. Is Prometheus running? Retrying");
        if tokio::time::Instant::now() + interval > deadline {
            return Err(Error::Timeout {
                what,
                timeout_secs: timeout.as_secs(),
                last: last.to_string(),
            });
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(Error::Canceled),
            () = tokio::time::sleep(interval) => {}
        }
    }
}

impl Sidecar {
    /// Starts: waits for Prometheus' external labels (retrying every
    /// `retry_interval` for up to `ready_timeout`) and refuses empty ones;
    /// with a bucket, checks that Prometheus does not compact blocks (unless
    /// `upload_compacted`) and sets up the shipper. Registers the sidecar,
    /// shipper and bucket metrics in `registry`. `ready` (which may already
    /// back a `/-/ready` endpoint) turns true once the labels are loaded.
    ///
    /// # Errors
    ///
    /// [`Error::NoExternalLabels`], [`Error::CompactionEnabled`],
    /// [`Error::Timeout`] when Prometheus never answered, [`Error::Canceled`],
    /// or a bucket configuration error.
    pub async fn start(
        opts: SidecarOptions,
        registry: &mut Registry,
        ready: Readiness,
        cancel: &CancellationToken,
    ) -> Result<Self> {
        let metrics = Metrics::new(registry);
        let prom = PromClient::new(&opts.prometheus_url, opts.get_config_timeout)?;
        let labels = retry(
            "failed to fetch initial external labels",
            opts.retry_interval,
            opts.ready_timeout,
            cancel,
            || prom.external_labels(),
        )
        .await?;
        metrics.heartbeat(true);
        if labels.is_empty() {
            return Err(Error::NoExternalLabels);
        }
        info!(external_labels = ?labels, url = %prom.base_url(), "successfully loaded prometheus external labels");

        // StoreAPI series carry the external labels, as Thanos' sidecar sends them.
        let read_opts = ReadClientOptions {
            strip_external_labels: false,
            timeout: opts.ready_timeout.max(Duration::from_secs(120)),
            ..ReadClientOptions::default()
        };
        let reader = Arc::new(ReadClient::new(&opts.prometheus_url, read_opts)?);
        reader.set_external_labels(labels.clone());
        match prom.lowest_timestamp_ms().await {
            Ok(t) => reader.set_min_time(served_min_time(t, opts.min_time_ms)),
            Err(e) => {
                warn!(error = %e, "reading the lowest timestamp of Prometheus failed");
                reader.set_min_time(opts.min_time_ms);
            }
        }

        let shipper = match &opts.bucket {
            None => {
                info!("no supported bucket was configured, uploads will be disabled");
                None
            }
            Some(cfg) => {
                if opts.upload_compacted {
                    info!("uploading of compacted blocks is enabled; the block duration check is skipped");
                } else {
                    Self::check_flags(&prom, &opts, cancel).await?;
                }
                let bucket = Bucket::from_config(cfg, registry)?;
                info!(bucket = %bucket.name(), "starting upload of blocks");
                let ship_opts = ShipperOptions {
                    upload_compacted: opts.upload_compacted,
                    meta_file_name: opts.meta_file_name.clone(),
                    ..ShipperOptions::default()
                };
                Some(Arc::new(Mutex::new(Shipper::new(
                    opts.tsdb_path.clone(),
                    bucket,
                    label_map(&labels),
                    ship_opts,
                    registry,
                ))))
            }
        };
        ready.set(true);
        Ok(Self {
            opts,
            prom,
            reader,
            shipper,
            labels,
            ready,
            metrics,
        })
    }

    async fn check_flags(
        prom: &PromClient,
        opts: &SidecarOptions,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let flags = retry(
            "failed to check Prometheus flags",
            opts.retry_interval,
            opts.ready_timeout,
            cancel,
            || prom.flags(),
        )
        .await?;
        let Some(flags) = flags else {
            warn!("Prometheus has no /api/v1/status/flags; the block duration check is skipped");
            return Ok(());
        };
        match check_block_durations(&flags) {
            Ok(Some(w)) => warn!("{w}"),
            Ok(None) => {}
            Err(e) if opts.ignore_unequal_block_size => {
                warn!(error = %e, "flag to ignore Prometheus min/max block duration flags differing is being used. If the upload of a 2h block fails and a Prometheus compaction happens that block may be missing from your Thanos bucket storage.");
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The data source for the StoreAPI: remote read from Prometheus, with
    /// the external labels and the lowest timestamp in its `info()`.
    pub fn queryable(&self) -> Arc<ReadClient> {
        self.reader.clone()
    }

    /// The external labels read at startup.
    pub fn external_labels(&self) -> &Labels {
        &self.labels
    }

    /// The readiness flag (for `/-/ready`).
    pub fn readiness(&self) -> Readiness {
        self.ready.clone()
    }

    /// One shipper pass now; returns how many blocks were uploaded (0 without
    /// a bucket).
    ///
    /// # Errors
    ///
    /// The shipper's error (the pass stops at the first failed upload).
    pub async fn sync_blocks(&self) -> Result<usize> {
        match &self.shipper {
            Some(s) => Ok(s.lock().await.sync().await?),
            None => Ok(0),
        }
    }

    /// Runs the metadata refresh and the shipper loops until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let me = Arc::new(self);
        let meta = tokio::spawn({
            let me = me.clone();
            let cancel = cancel.clone();
            async move { me.metadata_loop(cancel).await }
        });
        if me.shipper.is_some() {
            me.shipper_loop(cancel.clone()).await;
        } else {
            cancel.cancelled().await;
        }
        let _ = meta.await;
    }

    async fn shipper_loop(&self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                r = self.sync_blocks() => match r {
                    Ok(0) => debug!("shipper pass: nothing new"),
                    Ok(n) => info!(uploaded = n, "shipper pass done"),
                    Err(e) => error!(error = %e, "shipper pass failed; retrying on the next pass"),
                },
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.opts.sync_interval) => {}
            }
        }
    }

    /// Every `get_config_interval`: re-read external labels and the lowest
    /// timestamp; a failure makes the sidecar not ready until the next success.
    async fn metadata_loop(&self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.opts.get_config_interval) => {}
            }
            match self.refresh().await {
                Ok(()) => {
                    self.metrics.heartbeat(true);
                    self.ready.set(true);
                }
                Err(e) => {
                    self.metrics.heartbeat(false);
                    self.ready.set(false);
                    warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }

    async fn refresh(&self) -> Result<()> {
        let labels = self.prom.external_labels().await?;
        if labels.is_empty() {
            return Err(Error::NoExternalLabels);
        }
        let current = self.reader.info().label_sets.first().cloned();
        if current.as_ref() != Some(&labels) {
            info!(external_labels = ?labels, "external labels changed");
            self.reader.set_external_labels(labels.clone());
            if let Some(s) = self.shipper.clone() {
                // Not awaited here: a pass may hold the shipper for long.
                let map = label_map(&labels);
                tokio::spawn(async move { s.lock().await.set_labels(map) });
            }
        }
        let lowest = self.prom.lowest_timestamp_ms().await?;
        self.reader
            .set_min_time(served_min_time(lowest, self.opts.min_time_ms));
        Ok(())
    }
}

/// The earliest time served: Prometheus' lowest timestamp, but not before
/// `--min-time`. An empty TSDB reports the largest int64 (as seconds, so about
/// `i64::MAX` ms); its data is then still to come, so only `--min-time` bounds
/// it until the next refresh.
fn served_min_time(lowest_ms: i64, min_time_ms: i64) -> i64 {
    const EMPTY_TSDB_MS: i64 = i64::MAX / 1000 * 999;
    if lowest_ms >= EMPTY_TSDB_MS {
        return min_time_ms;
    }
    lowest_ms.max(min_time_ms)
}

fn label_map(l: &Labels) -> std::collections::BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_time_served() {
        assert_eq!(served_min_time(5_000, i64::MIN), 5_000);
        assert_eq!(served_min_time(5_000, 9_000), 9_000);
        // Empty TSDB: 9223372036854775807 s in /metrics, saturated to i64::MAX ms.
        assert_eq!(served_min_time(i64::MAX, i64::MIN), i64::MIN);
        assert_eq!(served_min_time(9_223_372_036_854_775_000, 7), 7);
    }
}
