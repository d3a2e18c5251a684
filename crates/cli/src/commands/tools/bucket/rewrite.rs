//! `rewrite`: a new block with series deleted or relabelled (thanos
//! `registerBucketRewrite` over `pkg/compactv2`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde::Deserialize;
use strata_block::markers::{write_marker, DeletionMark};
use strata_block::meta::{source, Rewrite};
use strata_block::Meta;
use strata_compact::rewrite::{rewrite_block, DeletionRequest, RewriteOptions};
use strata_model::MatchType;
use strata_objstore::Bucket;
use strata_tsdb::block::Block;
use strata_tsdb::tombstones::Interval;
use tracing::{error, info};

use super::parse_ids;
use crate::commands::common::relabel_configs;

/// `rewrite` flags.
#[derive(Debug, Args)]
pub struct Config {
    /// ID (ULID) of the blocks for rewrite (repeated flag).
    #[arg(long = "id", required = true)]
    ids: Vec<String>,
    /// Working directory for temporary files (emptied first).
    #[arg(long = "tmp.dir", default_value_os_t = std::env::temp_dir().join("thanos-rewrite"))]
    tmp_dir: PathBuf,
    /// Prints the series changes instead of doing them. Defaults to true, for
    /// user to double check. Pass --no-dry-run (or --dry-run=false) to rewrite.
    #[arg(long = "dry-run", num_args = 0..=1, default_missing_value = "true", default_value = "true",
          overrides_with = "no_dry_run")]
    dry_run: bool,
    /// Turns `--dry-run` off.
    #[arg(long = "no-dry-run", overrides_with = "dry_run")]
    no_dry_run: bool,
    /// The blocks are only used with Prometheus: empty external labels are
    /// allowed (accepted; Strata still refuses to upload a block without
    /// external labels).
    #[arg(long = "prom-blocks", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    prom_blocks: bool,
    /// Mark the original blocks for deletion after rewriting them
    /// successfully (not in a dry run).
    #[arg(long = "delete-blocks", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    delete_blocks: bool,
    /// Hash function for the new files: "" or SHA256 (accepted; no hashes are
    /// computed).
    #[arg(long = "hash-func", default_value = "",
          value_parser = clap::builder::PossibleValuesParser::new(["", "SHA256"]))]
    hash_func: String,
    /// YAML file with a list of deletion requests: `- matchers:
    /// '{__name__="x"}'`, optionally with `intervals: [{mint: 0, maxt: 10}]`.
    #[arg(
        long = "rewrite.to-delete-config-file",
        conflicts_with = "to_delete_config"
    )]
    to_delete_config_file: Option<PathBuf>,
    /// Alternative to `--rewrite.to-delete-config-file`: the YAML itself.
    #[arg(long = "rewrite.to-delete-config")]
    to_delete_config: Option<String>,
    /// YAML file with relabel configs applied to every series.
    #[arg(
        long = "rewrite.to-relabel-config-file",
        conflicts_with = "to_relabel_config"
    )]
    to_relabel_config_file: Option<PathBuf>,
    /// Alternative to `--rewrite.to-relabel-config-file`: the YAML itself.
    #[arg(long = "rewrite.to-relabel-config")]
    to_relabel_config: Option<String>,
    /// Write every modification to `change.log` in the new block's directory
    /// under `--tmp.dir`.
    #[arg(long = "rewrite.add-change-log", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    add_change_log: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeletion {
    matchers: String,
    #[serde(default)]
    intervals: Vec<RawInterval>,
    #[serde(default)]
    request_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterval {
    mint: i64,
    maxt: i64,
}

/// The deletion requests and their record for `thanos.rewrites` (Go's JSON
/// of `metadata.DeletionRequest`).
fn parse_deletions(text: &str) -> anyhow::Result<(Vec<DeletionRequest>, serde_json::Value)> {
    let raw: Vec<RawDeletion> = serde_yaml::from_str::<Option<Vec<RawDeletion>>>(text)
        .context("parsing --rewrite.to-delete-config")?
        .unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len());
    let mut applied = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let matchers = strata_model::selector::parse_selector(&r.matchers).map_err(|e| {
            anyhow!(
                "--rewrite.to-delete-config entry {i}: parse metric selector {:?}: {e}",
                r.matchers
            )
        })?;
        if matchers.is_empty() {
            bail!("--rewrite.to-delete-config entry {i}: empty matchers {:?} would delete every series", r.matchers);
        }
        for iv in &r.intervals {
            if iv.mint > iv.maxt {
                bail!(
                    "--rewrite.to-delete-config entry {i}: interval mint {} > maxt {}",
                    iv.mint,
                    iv.maxt
                );
            }
        }
        let kind = |k: MatchType| match k {
            MatchType::Equal => 0,
            MatchType::NotEqual => 1,
            MatchType::Regex => 2,
            MatchType::NotRegex => 3,
        };
        let mut rec = serde_json::json!({
            "matchers": matchers.iter().map(|m| serde_json::json!({"Type": kind(m.kind), "Name": m.name, "Value": m.value})).collect::<Vec<_>>(),
        });
        if !r.intervals.is_empty() {
            rec["intervals"] = r
                .intervals
                .iter()
                .map(|iv| serde_json::json!({"Mint": iv.mint, "Maxt": iv.maxt}))
                .collect();
        }
        if !r.request_id.is_empty() {
            rec["request_id"] = r.request_id.clone().into();
        }
        applied.push(rec);
        out.push(DeletionRequest {
            matchers,
            intervals: r
                .intervals
                .iter()
                .map(|iv| Interval {
                    min_time: iv.mint,
                    max_time: iv.maxt,
                })
                .collect(),
        });
    }
    Ok((out, serde_json::Value::Array(applied)))
}

/// Rewrites each block: download, rewrite, upload the new block, and mark the
/// old one for deletion with `--delete-blocks`.
pub async fn run(bucket: Bucket, c: &Config) -> anyhow::Result<()> {
    let dry_run = c.dry_run && !c.no_dry_run;
    let ids = parse_ids(&c.ids, "--id")?;
    let relabel_text = match (&c.to_relabel_config_file, &c.to_relabel_config) {
        (Some(p), _) => Some(std::fs::read_to_string(p).with_context(|| {
            format!("reading --rewrite.to-relabel-config-file {}", p.display())
        })?),
        (None, Some(y)) => Some(y.clone()),
        _ => None,
    };
    let relabel = match &relabel_text {
        Some(t) => relabel_configs(None, Some(t), "rewrite.to-relabel-config")?,
        None => Vec::new(),
    };
    let delete_text =
        match (&c.to_delete_config_file, &c.to_delete_config) {
            (Some(p), _) => Some(std::fs::read_to_string(p).with_context(|| {
                format!("reading --rewrite.to-delete-config-file {}", p.display())
            })?),
            (None, Some(y)) => Some(y.clone()),
            _ => None,
        };
    let (deletions, deletions_applied) = match &delete_text {
        Some(t) => parse_deletions(t)?,
        None => (Vec::new(), serde_json::Value::Null),
    };
    if deletions.is_empty() && relabel.is_empty() {
        bail!("rewrite configuration should be provided: --rewrite.to-delete-config(-file) or --rewrite.to-relabel-config(-file)");
    }
    let relabels_applied = match &relabel_text {
        Some(t) if !relabel.is_empty() => {
            let v: serde_yaml::Value = serde_yaml::from_str(t)?;
            Some(serde_json::to_value(v)?)
        }
        _ => None,
    };
    for id in &ids {
        if !bucket.exists(&format!("{id}/meta.json")).await? {
            bail!("block {id} not found in bucket {}", bucket.name());
        }
    }
    if c.tmp_dir.exists() {
        std::fs::remove_dir_all(&c.tmp_dir)
            .with_context(|| format!("emptying --tmp.dir {}", c.tmp_dir.display()))?;
    }
    std::fs::create_dir_all(&c.tmp_dir)
        .with_context(|| format!("creating --tmp.dir {}", c.tmp_dir.display()))?;
    let opts = RewriteOptions {
        deletions,
        relabel,
        dry_run,
    };
    for &id in &ids {
        info!(source = %id, "downloading block");
        let src_dir = c.tmp_dir.join(id.to_string());
        let meta = strata_block::download_block(&bucket, id, &src_dir)
            .await
            .with_context(|| format!("download {id}"))?;
        if meta.thanos.labels.is_empty() {
            bail!("block {id} has no external labels; Strata uploads only blocks with external labels");
        }
        info!(source = %id, to_delete = ?delete_text, to_relabel = ?relabel_text, "starting rewrite for block");
        let (opts2, out_parent, sd) = (opts.clone(), c.tmp_dir.clone(), src_dir.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let block = Block::open(&sd)?;
            rewrite_block(&block, &out_parent, &opts2, |n| {
                info!(source = %id, series = n, "rewrite progress");
            })
        })
        .await
        .map_err(|e| anyhow!("rewrite task failed: {e}"))?
        .with_context(|| format!("writing series from {id}"))?;
        if dry_run {
            let mut err = std::io::stderr().lock();
            for ch in &outcome.changes {
                writeln!(err, "{ch}")?;
            }
            info!(block = %id, changes = outcome.changes.len(), series = outcome.series, "dry run finished. Changes should be printed to stderr");
            continue;
        }
        let Some(written) = outcome.meta else {
            error!(source = %id, "the rewrite leaves no series; nothing uploaded (mark the block for deletion instead)");
            continue;
        };
        let new_id = written.ulid;
        let new_dir = c.tmp_dir.join(new_id.to_string());
        if c.add_change_log {
            let lines: String = outcome.changes.iter().map(|ch| format!("{ch}\n")).collect();
            let p = new_dir.join("change.log");
            std::fs::write(&p, lines).with_context(|| format!("writing {}", p.display()))?;
            info!(file = %p.display(), "changelog will be available");
        }
        let mut new_meta: Meta = meta.clone();
        new_meta.block.ulid = new_id;
        new_meta.block.stats = written.stats.clone();
        new_meta.thanos.rewrites.push(Rewrite {
            sources: meta.block.compaction.sources.clone(),
            deletions_applied: (!deletions_applied.is_null()).then(|| deletions_applied.clone()),
            relabels_applied: relabels_applied.clone(),
        });
        new_meta.block.compaction.sources = vec![new_id];
        new_meta.thanos.source = source::BUCKET_REWRITE.into();
        new_meta.thanos.files = Vec::new();
        new_meta
            .write_to_dir(&new_dir)
            .with_context(|| format!("writing meta.json of {new_id}"))?;
        info!(source = %id, new = %new_id, "uploading new block");
        strata_block::upload_block(
            &bucket,
            &new_dir,
            &meta.thanos.labels,
            source::BUCKET_REWRITE,
        )
        .await
        .context("upload")?;
        info!(source = %id, new = %new_id, "uploaded");
        if c.delete_blocks {
            let mark = DeletionMark::new(id, "block rewritten");
            if let Err(e) = write_marker(&bucket, id, &mark).await {
                error!(id = %id, err = %e, "failed to mark block for deletion");
            }
        }
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    info!(IDs = %ids.join(","), "rewrite done");
    Ok(())
}
