//! The compactor's view of the bucket (Thanos' meta fetcher with the
//! compactor's filters, `pkg/block/fetcher.go`): every block's `meta.json`
//! and markers, filtered in Thanos' order:
//!
//! 1. time partition (`--min-time`/`--max-time`);
//! 2. relabelling of the external labels plus `__block_id`, without the
//!    replica labels (`--selector.relabel-config`);
//! 3. consistency delay: blocks uploaded (or, without `upload_time`, created
//!    by ULID) less than `--consistency-delay` ago are ignored unless the
//!    compactor or a repair wrote them;
//! 4. deletion marks older than half of `--delete-delay`;
//! 5. replica labels removed from the external labels;
//! 6. duplicates: blocks whose sources another block of the group covers;
//! 7. no-compact and no-downsample marks are gathered (not filtered).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use strata_block::markers::{read_marker, DeletionMark, NoCompactMark, NoDownsampleMark};
use strata_block::meta::source;
use strata_block::{download_meta, list_blocks, Meta};
use strata_model::relabel::{relabel, RelabelConfig};
use strata_model::{Label, Labels};
use strata_objstore::Bucket;
use tracing::{debug, warn};
use ulid::Ulid;

use crate::error::Result;
use crate::group::group_key;

/// The label that carries a block's ULID into `--selector.relabel-config`.
pub const BLOCK_ID_LABEL: &str = "__block_id";

/// How blocks are selected.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// `--consistency-delay`.
    pub consistency_delay: Duration,
    /// `--delete-delay`: marked blocks leave the view after half of it.
    pub delete_delay: Duration,
    /// `--deduplication.replica-label`.
    pub replica_labels: Vec<String>,
    /// `--selector.relabel-config`.
    pub relabel: Vec<RelabelConfig>,
    /// `--min-time`, ms (inclusive; `i64::MIN` for none).
    pub min_time: i64,
    /// `--max-time`, ms (inclusive; `i64::MAX` for none).
    pub max_time: i64,
    /// `--block-meta-fetch-concurrency`.
    pub fetch_concurrency: usize,
}

/// What one sync found.
#[derive(Clone, Debug, Default)]
pub struct SyncState {
    /// Blocks that passed every filter, replica labels removed.
    pub metas: BTreeMap<Ulid, Meta>,
    /// Prefixes without `meta.json`: uploads in progress or aborted.
    pub partial: Vec<Ulid>,
    /// Blocks whose `meta.json` exists but cannot be used, with the reason.
    /// They are left alone (never deleted).
    pub corrupt: BTreeMap<Ulid, String>,
    /// Every deletion mark found, filtered or not.
    pub deletion_marks: HashMap<Ulid, DeletionMark>,
    /// No-compact marks of the blocks in view.
    pub no_compact: HashMap<Ulid, NoCompactMark>,
    /// No-downsample marks of the blocks in view.
    pub no_downsample: HashMap<Ulid, NoDownsampleMark>,
    /// Blocks dropped because another block holds all their sources.
    pub duplicates: Vec<Ulid>,
    /// Counts of blocks dropped per filter, by Thanos' `state` label value.
    pub filtered: BTreeMap<&'static str, u64>,
}

/// Seconds since the Unix epoch of `t` (0 before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses Go's RFC 3339 `upload_time`; `None` for the zero time or garbage.
pub fn parse_upload_time(s: &str) -> Option<SystemTime> {
    // YYYY-MM-DDTHH:MM:SS[.frac]Z (Thanos always writes UTC).
    let b = s.as_bytes();
    if b.len() < 20 || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y <= 1 {
        return None;
    }
    let mut nanos = 0u32;
    if let Some(frac) = s.get(20..s.len() - 1) {
        if !frac.is_empty() {
            let digits: String = frac.chars().take(9).collect();
            let scale = 10u32.pow(9 - digits.len() as u32);
            nanos = digits.parse::<u32>().ok()? * scale;
        }
    }
    let days = strata_model::civil::days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    if secs < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
}

fn labels_of(m: &Meta) -> Labels {
    Labels::from_vec(
        m.thanos
            .labels
            .iter()
            .map(|(k, v)| Label::new(k.clone(), v.clone()))
            .collect(),
    )
}

/// Reads every block's meta.json and markers and applies the filters.
pub async fn sync_metas(bucket: &Bucket, opts: &SyncOptions, now: SystemTime) -> Result<SyncState> {
    let list = list_blocks(bucket).await?;
    let mut st = SyncState {
        partial: list.partial.clone(),
        ..Default::default()
    };
    let fetched: Vec<_> = futures::stream::iter(list.complete.iter().copied())
        .map(|id| async move {
            let meta = download_meta(bucket, id).await;
            let del = read_marker::<DeletionMark>(bucket, id).await;
            let nc = read_marker::<NoCompactMark>(bucket, id).await;
            let nd = read_marker::<NoDownsampleMark>(bucket, id).await;
            (id, meta, del, nc, nd)
        })
        .buffer_unordered(opts.fetch_concurrency.max(1))
        .collect()
        .await;

    let now_ms = unix_ms(now);
    let now_s = unix_secs(now);
    let mut metas: BTreeMap<Ulid, Meta> = BTreeMap::new();
    for (id, meta, del, nc, nd) in fetched {
        let meta = match meta {
            Ok(m) if m.block.ulid == id => m,
            Ok(m) => {
                let msg = format!("meta.json names block {}, not its directory", m.block.ulid);
                warn!(block = %id, "{msg}; block ignored");
                st.corrupt.insert(id, msg);
                continue;
            }
            Err(e) if matches!(&e, strata_block::Error::Bucket { source, .. } if !source.is_not_found()) =>
            {
                // A bucket failure is not a property of the block: fail the sync.
                return Err(e.into());
            }
            Err(e) => {
                warn!(block = %id, error = %e, "cannot read meta.json; block ignored");
                st.corrupt.insert(id, e.to_string());
                continue;
            }
        };
        if meta.block.max_time < meta.block.min_time {
            let msg = format!(
                "meta.json time range [{}, {}) is inverted",
                meta.block.min_time, meta.block.max_time
            );
            warn!(block = %id, "{msg}; block ignored");
            st.corrupt.insert(id, msg);
            continue;
        }
        match del {
            Ok(Some(m)) => {
                st.deletion_marks.insert(id, m);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(block = %id, error = %e, "unreadable deletion-mark.json; treating the block as unmarked")
            }
        }
        match nc {
            Ok(Some(m)) => {
                st.no_compact.insert(id, m);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(block = %id, error = %e, "unreadable no-compact-mark.json; ignoring it")
            }
        }
        match nd {
            Ok(Some(m)) => {
                st.no_downsample.insert(id, m);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(block = %id, error = %e, "unreadable no-downsample-mark.json; ignoring it")
            }
        }
        metas.insert(id, meta);
    }

    let count =
        |st: &mut SyncState, state: &'static str| *st.filtered.entry(state).or_default() += 1;

    // 1. Time partition.
    metas.retain(|_, m| {
        let keep = m.block.max_time >= opts.min_time && m.block.min_time <= opts.max_time;
        if !keep {
            count(&mut st, "time-excluded");
        }
        keep
    });
    // 2. Relabelling (replica labels left out, the block id added).
    if !opts.relabel.is_empty() {
        metas.retain(|id, m| {
            let mut l: Vec<Label> = m
                .thanos
                .labels
                .iter()
                .filter(|(k, _)| !opts.replica_labels.iter().any(|r| r == *k))
                .map(|(k, v)| Label::new(k.clone(), v.clone()))
                .collect();
            l.push(Label::new(BLOCK_ID_LABEL, id.to_string()));
            let keep = relabel(&Labels::from_vec(l), &opts.relabel).is_some_and(|l| !l.is_empty());
            if !keep {
                count(&mut st, "label-excluded");
            }
            keep
        });
    }
    // 3. Consistency delay.
    let delay_ms = opts.consistency_delay.as_millis() as i64;
    metas.retain(|id, m| {
        let too_fresh = match parse_upload_time(&m.thanos.upload_time) {
            Some(t) => {
                now.duration_since(t)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0)
                    < delay_ms
            }
            None => now_ms - (id.timestamp_ms() as i64) < delay_ms,
        };
        let exempt = [
            source::BUCKET_REPAIR,
            source::COMPACTOR,
            source::COMPACTOR_REPAIR,
        ]
        .contains(&m.thanos.source.as_str());
        if too_fresh && !exempt {
            debug!(block = %id, "block is too fresh for now");
            count(&mut st, "too-fresh");
            return false;
        }
        true
    });
    // Deletion marks matter only for the blocks this compactor owns.
    st.deletion_marks.retain(|id, _| metas.contains_key(id));
    // 4. Deletion marks older than delete-delay/2.
    let half = (opts.delete_delay.as_secs() / 2) as i64;
    metas.retain(|id, _| match st.deletion_marks.get(id) {
        Some(m) if now_s - m.deletion_time > half => {
            count(&mut st, "marked-for-deletion");
            false
        }
        _ => true,
    });
    // 5. Replica labels removed.
    if !opts.replica_labels.is_empty() {
        for m in metas.values_mut() {
            for r in &opts.replica_labels {
                m.thanos.labels.remove(r);
            }
            if m.thanos.labels.is_empty() {
                warn!(block = %m.block.ulid, "block has no labels left, creating one");
                m.thanos
                    .labels
                    .insert(opts.replica_labels[0].clone(), "deduped".into());
            }
        }
    }
    // 6. Duplicates within each group.
    let mut by_group: HashMap<String, Vec<&Meta>> = HashMap::new();
    for m in metas.values() {
        by_group
            .entry(group_key(m.thanos.downsample.resolution, &labels_of(m)))
            .or_default()
            .push(m);
    }
    let mut dups = Vec::new();
    for group in by_group.values_mut() {
        dups.extend(duplicates_in_group(group));
    }
    for id in &dups {
        metas.remove(id);
        count(&mut st, "duplicate");
    }
    dups.sort();
    st.duplicates = dups;
    // 7. Marks of blocks out of view are of no interest.
    st.no_compact.retain(|id, _| metas.contains_key(id));
    st.no_downsample.retain(|id, _| metas.contains_key(id));
    st.metas = metas;
    Ok(st)
}

/// Thanos' `DefaultDeduplicateFilter.filterGroup`: blocks with the most
/// sources first (ties by ULID), and a block whose sources are all held by a
/// block already kept is a duplicate.
pub fn duplicates_in_group(group: &mut [&Meta]) -> Vec<Ulid> {
    group.sort_by(|a, b| {
        let (la, lb) = (
            a.block.compaction.sources.len(),
            b.block.compaction.sources.len(),
        );
        lb.cmp(&la).then(a.block.ulid.cmp(&b.block.ulid))
    });
    let mut covering: Vec<&Meta> = Vec::new();
    let mut dups = Vec::new();
    for child in group.iter() {
        let covered = covering.iter().any(|p| {
            child
                .block
                .compaction
                .sources
                .iter()
                .all(|s| p.block.compaction.sources.contains(s))
        });
        if covered {
            dups.push(child.block.ulid);
        } else {
            covering.push(child);
        }
    }
    dups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_time_parses_like_go() {
        assert_eq!(parse_upload_time("0001-01-01T00:00:00Z"), None);
        let t = parse_upload_time("2024-01-02T03:04:05.5Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1_704_164_645, 500_000_000)
        );
        assert_eq!(
            parse_upload_time("1970-01-01T00:00:10Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(10)
        );
        assert_eq!(parse_upload_time("garbage"), None);
    }
}
