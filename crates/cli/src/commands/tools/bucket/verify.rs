//! `verify`: index known issues (with a safe repair) and overlapped blocks
//! (thanos `pkg/verifier`). Issues are logged as warnings; the exit code is
//! non-zero only when the verification itself cannot run, as in Thanos.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use strata_block::markers::{write_marker, DeletionMark};
use strata_block::meta::{source, INDEX_FILENAME, META_FILENAME};
use strata_block::Meta;
use strata_compact::verify::{gather_index_health, repair_block};
use strata_objstore::Bucket;
use strata_tsdb::block::Block;
use tracing::{error, info, warn};
use ulid::Ulid;

use super::{connect, fetch_metas, filter_deletion_marked, parse_ids};
use crate::commands::common::{bucket_config, duration_arg};

const INDEX_KNOWN_ISSUES: &str = "index_known_issues";
const OVERLAPPED_BLOCKS: &str = "overlapped_blocks";

/// `verify` flags.
#[derive(Debug, Args)]
pub struct Config {
    /// Attempt to repair blocks for which issues were detected (needs
    /// `--objstore-backup.config`: the broken block is copied there first).
    #[arg(short = 'r', long = "repair", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    repair: bool,
    /// Issues to verify (and optionally repair): index_known_issues (verify
    /// and repair), overlapped_blocks (verify only). Repeated or comma-separated.
    #[arg(short = 'i', long = "issues", value_delimiter = ',',
          default_values = [INDEX_KNOWN_ISSUES, OVERLAPPED_BLOCKS])]
    issues: Vec<String>,
    /// Block IDs to verify (and optionally repair) only; repeated. All blocks
    /// when none is given.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// With a repair: 0s deletes the broken block at once; otherwise it is
    /// marked for deletion and the compactor deletes it after its own delay.
    #[arg(long = "delete-delay", value_parser = duration_arg, default_value = "0s")]
    delete_delay: Duration,
    /// YAML file of the object store that broken blocks are backed up to
    /// before a repair removes them.
    #[arg(
        long = "objstore-backup.config-file",
        conflicts_with = "objstore_backup_config"
    )]
    objstore_backup_config_file: Option<PathBuf>,
    /// Alternative to `--objstore-backup.config-file`: the YAML itself.
    #[arg(long = "objstore-backup.config")]
    objstore_backup_config: Option<String>,
}

/// Runs the chosen verifiers.
pub async fn run(bucket: Bucket, c: &Config) -> anyhow::Result<()> {
    for i in &c.issues {
        match i.as_str() {
            INDEX_KNOWN_ISSUES | OVERLAPPED_BLOCKS => {}
            "duplicated_compaction" => {
                bail!("issue duplicated_compaction is not supported by Strata; supported: {INDEX_KNOWN_ISSUES}, {OVERLAPPED_BLOCKS}")
            }
            other => bail!(
                "no such issue name {other:?}; supported: {INDEX_KNOWN_ISSUES} (verify and repair), {OVERLAPPED_BLOCKS} (verify only)"
            ),
        }
    }
    let ids = parse_ids(&c.ids, "--id")?;
    let backup = match bucket_config(
        c.objstore_backup_config_file.as_deref(),
        c.objstore_backup_config.as_deref(),
        "objstore-backup.config",
    )? {
        Some(cfg) => Some(connect(&cfg)?),
        None if c.repair => bail!("repair is specified, so backup client is required: set --objstore-backup.config(-file)"),
        None => None,
    };
    if c.repair && c.issues.iter().all(|i| i == OVERLAPPED_BLOCKS) {
        warn!("overlapped_blocks has no repair; only verifying");
    }
    let (mut metas, _) = fetch_metas(&bucket).await?;
    // Blocks marked for deletion are ignored.
    filter_deletion_marked(&bucket, &mut metas).await?;
    if !ids.is_empty() {
        for id in &ids {
            if !metas.iter().any(|m| m.block.ulid == *id) {
                bail!(
                    "block {id} not found in bucket {} (or marked for deletion)",
                    bucket.name()
                );
            }
        }
    }
    for issue in &c.issues {
        info!(issue = %issue, with_repair = c.repair, "started verifying issue");
        if issue == OVERLAPPED_BLOCKS {
            if ids.is_empty() {
                overlapped(&metas);
            } else {
                warn!("overlapped_blocks: id matching is not supported; skipped");
            }
        } else {
            let ctx = RepairCtx {
                bucket: &bucket,
                backup: backup.as_ref(),
                delete_delay: c.delete_delay,
            };
            for m in metas
                .iter()
                .filter(|m| ids.is_empty() || ids.contains(&m.block.ulid))
            {
                index_issue(&ctx, m, c.repair).await?;
            }
        }
        info!(issue = %issue, with_repair = c.repair, "verified issue");
    }
    Ok(())
}

/// Logs every pair of overlapping blocks within a compaction group.
fn overlapped(metas: &[Meta]) {
    let mut found = 0;
    for g in strata_compact::group::groups(metas) {
        for (a, b) in strata_compact::group::overlaps(&g.metas) {
            let range = |id: Ulid| {
                g.metas
                    .iter()
                    .find(|m| m.block.ulid == id)
                    .map(|m| {
                        format!(
                            "<ulid: {id}, mint: {}, maxt: {}>",
                            m.block.min_time, m.block.max_time
                        )
                    })
                    .unwrap_or_default()
            };
            found += 1;
            warn!(group = %g.name(), overlap = %format!("{}, {}", range(a), range(b)), "found overlapped blocks");
        }
    }
    if found == 0 {
        info!("no overlapped blocks");
    }
}

struct RepairCtx<'a> {
    bucket: &'a Bucket,
    backup: Option<&'a Bucket>,
    delete_delay: Duration,
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str, id: Ulid) -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("strata-{what}-{id}-{}", std::process::id()));
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn index_issue(ctx: &RepairCtx<'_>, m: &Meta, repair: bool) -> anyhow::Result<()> {
    let id = m.block.ulid;
    let tmp = Scratch::new("verify", id)?;
    let index_path = tmp.0.join(INDEX_FILENAME);
    ctx.bucket
        .download_file(&format!("{id}/{INDEX_FILENAME}"), &index_path)
        .await
        .with_context(|| format!("download index file {id}/{INDEX_FILENAME}"))?;
    let (mint, maxt) = (m.block.min_time, m.block.max_time);
    let p = index_path.clone();
    let stats = tokio::task::spawn_blocking(move || gather_index_health(&p, mint, maxt))
        .await
        .map_err(|e| anyhow!("index check task failed: {e}"))?;
    let stats = match stats {
        Ok(s) => s,
        Err(e) => {
            warn!(id = %id, err = %format!("gather index issues {id}: {e}"), "detected issue");
            if repair {
                error!(id = %id, "could not repair index: the index cannot be read");
            }
            return Ok(());
        }
    };
    let Some(err) = stats.any_err() else {
        info!(id = %id, series = stats.total_series, chunks = stats.total_chunks, "no issue");
        return Ok(());
    };
    warn!(id = %id, err = %err, "detected issue");
    if !repair {
        return Ok(());
    }
    if !stats.repairable() {
        error!(id = %id, "could not repair index: only duplicated chunks and chunks outside the block's time range can be repaired safely");
        return Ok(());
    }
    match repair_index(ctx, m, &tmp.0).await {
        Ok(new_id) => info!(id = %id, new_id = %new_id, "all good, continuing"),
        Err(e) => error!(id = %id, err = %format!("{e:#}"), "could not repair index"),
    }
    Ok(())
}

/// Writes a repaired copy, checks it, uploads it, backs the broken block up
/// and removes it from the bucket (or marks it, with `--delete-delay`).
async fn repair_index(ctx: &RepairCtx<'_>, m: &Meta, dir: &Path) -> anyhow::Result<Ulid> {
    let id = m.block.ulid;
    if m.thanos.downsample.resolution > 0 {
        bail!("cannot repair downsampled blocks");
    }
    let backup = ctx
        .backup
        .ok_or_else(|| anyhow!("repair needs a backup bucket"))?;
    info!(id = %id, "downloading block for repair");
    let bdir = dir.join(id.to_string());
    strata_block::download_block(ctx.bucket, id, &bdir)
        .await
        .with_context(|| format!("download block {id}"))?;
    info!(id = %id, "repairing block");
    let out = dir.join("repaired");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let (meta, b2, o2) = (m.clone(), bdir.clone(), out.clone());
    let new_meta = tokio::task::spawn_blocking(move || {
        let block = Block::open(&b2)?;
        repair_block(&block, &meta, &o2)
    })
    .await
    .map_err(|e| anyhow!("repair task failed: {e}"))?
    .with_context(|| format!("repair failed for block {id}"))?;
    let new_id = new_meta.block.ulid;
    let ndir = out.join(new_id.to_string());
    info!(id = %id, new_id = %new_id, "verifying repaired block");
    let stats = gather_index_health(
        &ndir.join(INDEX_FILENAME),
        m.block.min_time,
        m.block.max_time,
    )?;
    if let Some(e) = stats.any_err() {
        bail!("repaired block is invalid {new_id}: {e}");
    }
    let _ = std::fs::remove_file(ndir.join("tombstones"));
    info!(new_id = %new_id, "uploading repaired block");
    strata_block::upload_block(ctx.bucket, &ndir, &m.thanos.labels, source::BUCKET_REPAIR)
        .await
        .with_context(|| format!("upload of {new_id} failed"))?;
    info!(id = %id, "safe deleting broken block");
    if backup.exists(&format!("{id}/{META_FILENAME}")).await? {
        bail!("{id} dir seems to exists in backup bucket. Remove this block manually if you are sure it is safe to do");
    }
    for marker in [
        "deletion-mark.json",
        "no-compact-mark.json",
        "no-downsample-mark.json",
    ] {
        let _ = std::fs::remove_file(bdir.join(marker));
    }
    info!(id = %id, "Uploading block to backup bucket");
    strata_block::upload_block(backup, &bdir, &m.thanos.labels, &m.thanos.source)
        .await
        .context("upload to backup")?;
    if ctx.delete_delay.is_zero() {
        info!(id = %id, "Deleting block");
        strata_block::delete_block(ctx.bucket, id)
            .await
            .context("delete from source")?;
    } else {
        info!(id = %id, "Marking block as deleted");
        write_marker(
            ctx.bucket,
            id,
            &DeletionMark::new(id, "manual verify-repair"),
        )
        .await
        .context("marking delete from source")?;
    }
    Ok(new_id)
}
