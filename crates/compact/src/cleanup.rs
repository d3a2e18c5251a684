//! Retention and deletion (thanos `pkg/compact/retention.go`,
//! `blocks_cleaner.go`, `clean.go`), plus Strata's record of its own uploads
//! in flight.
//!
//! - [`apply_retention`] marks blocks past the retention of their resolution.
//! - [`delete_marked_blocks`] deletes blocks whose deletion mark is older than
//!   `--delete-delay`.
//! - [`clean_partial_uploads`] deletes prefixes without `meta.json` whose
//!   newest object is older than max(consistency delay, 48h).
//! - [`InFlight`]: before the compactor uploads a block it records the ULID in
//!   `<data-dir>/uploading/`; after a crash, the next start deletes what it had
//!   uploaded of those blocks, so a kill -9 leaves no orphan behind (Thanos
//!   waits 48h for such prefixes).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use strata_block::markers::{write_marker, DeletionMark, DELETION_MARK_FILENAME};
use strata_block::meta::META_FILENAME;
use strata_block::{delete_block, Meta};
use strata_objstore::Bucket;
use tracing::{info, warn};
use ulid::Ulid;

use crate::downsample::{RES_1H, RES_5M};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::sync::{unix_secs, SyncState};

/// Thanos' `PartialUploadThresholdAge`: 48h.
pub const PARTIAL_UPLOAD_THRESHOLD: Duration = Duration::from_secs(48 * 3600);

/// How long to keep blocks of each resolution (zero: forever).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `--retention.resolution-raw`.
    pub raw: Duration,
    /// `--retention.resolution-5m`.
    pub five_m: Duration,
    /// `--retention.resolution-1h`.
    pub one_h: Duration,
}

impl Retention {
    /// The retention of a resolution.
    pub fn of(&self, resolution: i64) -> Duration {
        match resolution {
            RES_5M => self.five_m,
            RES_1H => self.one_h,
            _ => self.raw,
        }
    }

    /// Thanos' start-up check: with downsampling on, a non-zero raw retention
    /// under 40h or 5m retention under 10 days would delete data before it is
    /// downsampled.
    pub fn validate(&self, downsampling: bool) -> Result<()> {
        if !downsampling {
            return Ok(());
        }
        let ms = |d: Duration| d.as_millis() as i64;
        if !self.raw.is_zero() && ms(self.raw) < crate::downsample::RES_5M_DOWNSAMPLE_RANGE {
            return Err(Error::Config(format!(
                "raw resolution retention ({}) must be higher than the minimum block size after which 5m resolution downsampling will occur (40h), or 0d to keep raw data forever; or disable downsampling",
                humanize(self.raw)
            )));
        }
        if !self.five_m.is_zero() && ms(self.five_m) < crate::downsample::RES_1H_DOWNSAMPLE_RANGE {
            return Err(Error::Config(format!(
                "5m resolution retention ({}) must be higher than the minimum block size after which 1h resolution downsampling will occur (10 days), or 0d to keep it forever; or disable downsampling",
                humanize(self.five_m)
            )));
        }
        Ok(())
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else {
        format!("{s}s")
    }
}

/// Marks `id` for deletion unless it is already marked; counts the mark.
pub async fn mark_for_deletion(
    bucket: &Bucket,
    id: Ulid,
    details: &str,
    metrics: &Metrics,
    now: SystemTime,
) -> Result<bool> {
    let mut mark = DeletionMark::new(id, details);
    mark.deletion_time = unix_secs(now);
    let written = write_marker(bucket, id, &mark).await?;
    if written {
        metrics.marked(DELETION_MARK_FILENAME, "");
        info!(block = %id, details, "marked block for deletion");
    } else {
        warn!(block = %id, "requested to mark for deletion, but the block is already marked");
    }
    Ok(written)
}

/// Marks every block past its resolution's retention (`now > maxTime +
/// retention`); returns the blocks marked.
pub async fn apply_retention(
    bucket: &Bucket,
    metas: impl IntoIterator<Item = &Meta>,
    retention: &Retention,
    metrics: &Metrics,
    now: SystemTime,
) -> Result<Vec<Ulid>> {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut out = Vec::new();
    for m in metas {
        let keep = retention.of(m.thanos.downsample.resolution);
        if keep.is_zero() {
            continue;
        }
        // Thanos truncates maxTime to whole seconds.
        let max_s = m.block.max_time.div_euclid(1000) * 1000;
        if now_ms > max_s.saturating_add(keep.as_millis() as i64) {
            info!(block = %m.block.ulid, max_time = m.block.max_time, "applying retention: marking block for deletion");
            let details = format!("block exceeding retention of {}", humanize(keep));
            mark_for_deletion(bucket, m.block.ulid, &details, metrics, now).await?;
            out.push(m.block.ulid);
        }
    }
    Ok(out)
}

/// Deletes the blocks whose deletion mark is at least `delete_delay` old;
/// returns the blocks deleted.
pub async fn delete_marked_blocks(
    bucket: &Bucket,
    state: &SyncState,
    delete_delay: Duration,
    metrics: &Metrics,
    now: SystemTime,
) -> Vec<Ulid> {
    let now_s = unix_secs(now);
    let mut ids: Vec<&Ulid> = state.deletion_marks.keys().collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let Some(mark) = state.deletion_marks.get(id) else {
            continue;
        };
        if now_s.saturating_sub(mark.deletion_time) < delete_delay.as_secs() as i64 {
            continue;
        }
        match delete_block(bucket, *id).await {
            Ok(()) => {
                metrics.blocks_cleaned.inc();
                info!(block = %id, "deleted block marked for deletion");
                out.push(*id);
            }
            Err(e) => {
                metrics.block_cleanup_failures.inc();
                warn!(block = %id, error = %e, "failed to delete block marked for deletion; will retry");
            }
        }
    }
    out
}

/// Deletes partial uploads (no `meta.json`) whose newest object is older than
/// `threshold`; returns the prefixes deleted. A prefix that still holds a
/// `deletion-mark.json` is a deletion cut short (`meta.json` goes first), and
/// is finished at once rather than after the threshold (Thanos waits).
pub async fn clean_partial_uploads(
    bucket: &Bucket,
    partial: &[Ulid],
    threshold: Duration,
    metrics: &Metrics,
    now: SystemTime,
) -> Vec<Ulid> {
    let mut out = Vec::new();
    for &id in partial {
        let deleting = bucket
            .exists(&format!("{id}/{DELETION_MARK_FILENAME}"))
            .await
            .unwrap_or(false);
        if deleting {
            info!(block = %id, "finishing the deletion of a block whose meta.json is already gone");
            match delete_block(bucket, id).await {
                Ok(()) => {
                    metrics.blocks_cleaned.inc();
                    out.push(id);
                }
                Err(e) => {
                    metrics.block_cleanup_failures.inc();
                    warn!(block = %id, error = %e, "failed to finish deleting a block; will retry");
                }
            }
            continue;
        }
        let newest = match newest_object(bucket, id).await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                warn!(block = %id, error = %e, "cannot read partial upload's objects; falling back to the ULID's time");
                SystemTime::UNIX_EPOCH + Duration::from_millis(id.timestamp_ms())
            }
        };
        if now.duration_since(newest).unwrap_or_default() <= threshold {
            continue;
        }
        metrics.partial_deletion_attempts.inc();
        info!(block = %id, "found partially uploaded block; deleting");
        match delete_block(bucket, id).await {
            Ok(()) => {
                metrics.blocks_cleaned.inc();
                out.push(id);
            }
            Err(e) => {
                metrics.block_cleanup_failures.inc();
                warn!(block = %id, error = %e, "failed to delete aborted partial upload; will retry");
            }
        }
    }
    out
}

async fn newest_object(bucket: &Bucket, id: Ulid) -> Result<Option<SystemTime>> {
    let mut newest: Option<SystemTime> = None;
    for key in bucket.iter_recursive(&format!("{id}/")).await? {
        let a = bucket.attributes(&key).await?;
        if newest.is_none_or(|n| a.last_modified > n) {
            newest = Some(a.last_modified);
        }
    }
    Ok(newest)
}

/// The compactor's record of its uploads in flight (`<data-dir>/uploading/`).
#[derive(Clone, Debug)]
pub struct InFlight {
    dir: PathBuf,
}

impl InFlight {
    /// The record under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("uploading"),
        }
    }

    /// Records that `id` is about to be uploaded.
    pub fn begin(&self, id: Ulid) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let p = self.dir.join(id.to_string());
        std::fs::write(&p, b"").map_err(|e| Error::io(&p, e))?;
        if let Ok(f) = std::fs::File::open(&self.dir) {
            let _ = f.sync_all();
        }
        Ok(())
    }

    /// Records that `id` is in the bucket completely.
    pub fn end(&self, id: Ulid) -> Result<()> {
        let p = self.dir.join(id.to_string());
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// After a crash: every recorded upload that has no `meta.json` in the
    /// bucket is deleted there; complete ones are kept. Returns the deleted.
    pub async fn recover(&self, bucket: &Bucket, metrics: &Metrics) -> Result<Vec<Ulid>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&self.dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let Ok(id) = name.parse::<Ulid>() else {
                continue;
            };
            let complete = bucket.exists(&format!("{id}/{META_FILENAME}")).await?;
            if !complete {
                info!(block = %id, "removing the partial upload a previous run left behind");
                delete_block(bucket, id).await?;
                metrics.blocks_cleaned.inc();
                out.push(id);
            }
            self.end(id)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_validation_matches_thanos() {
        let day = Duration::from_secs(86_400);
        let ok = Retention {
            raw: 30 * day,
            five_m: 90 * day,
            one_h: 180 * day,
        };
        assert!(ok.validate(true).is_ok());
        assert!(Retention::default().validate(true).is_ok());
        let short_raw = Retention {
            raw: Duration::from_secs(39 * 3600),
            ..Default::default()
        };
        let e = short_raw.validate(true).unwrap_err().to_string();
        assert!(e.contains("raw resolution retention (39h)"), "{e}");
        assert!(short_raw.validate(false).is_ok());
        let short_5m = Retention {
            five_m: 9 * day,
            ..Default::default()
        };
        assert!(short_5m
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("5m resolution retention (9d)"));
    }
}
