//! `strata tools bucket`: inspection and maintenance of a bucket of Thanos
//! blocks (mirrors `thanos tools bucket`, flag names, defaults and output
//! formats included). Every subcommand takes `--objstore.config(-file)`,
//! before or after the subcommand's name. Results go to stdout; progress
//! goes to stderr as log lines.
//!
//! Where Strata differs from Thanos, the subcommand's `--help` says so.

mod list;
mod maintain;
mod rewrite;
mod transfer;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use futures::StreamExt;
use prometheus_client::registry::Registry;
use strata_block::markers::{read_marker, DeletionMark};
use strata_block::Meta;
use strata_model::relabel::RelabelConfig;
use strata_model::{Label, Labels, MatchType};
use strata_objstore::Bucket;
use tracing::warn;
use ulid::Ulid;

use crate::commands::common::{bucket_config, relabel_configs};

/// `strata tools bucket` flags.
#[derive(Debug, Args)]
pub struct Config {
    /// Path to the YAML file that contains the object store configuration.
    #[arg(
        long = "objstore.config-file",
        global = true,
        conflicts_with = "objstore_config"
    )]
    objstore_config_file: Option<PathBuf>,
    /// Alternative to `--objstore.config-file`: the YAML itself.
    #[arg(long = "objstore.config", global = true)]
    objstore_config: Option<String>,
    #[command(subcommand)]
    cmd: BucketCommand,
}

#[derive(Debug, Subcommand)]
enum BucketCommand {
    /// Verify all blocks in the bucket against specified issues (index known
    /// issues, overlapped blocks); optionally repair what can be repaired
    /// safely. Issues are logged; the exit code is 0 as in Thanos.
    Verify(verify::Config),
    /// List all blocks in the bucket.
    Ls(list::LsConfig),
    /// Inspect all blocks in the bucket in detailed, table-like way.
    Inspect(list::InspectConfig),
    /// Replicate data from one object storage to another (Thanos blocks only).
    Replicate(transfer::ReplicateConfig),
    /// Downsamples the blocks of a bucket: one pass, or continuously with
    /// `--wait` (Thanos always runs continuously).
    Downsample(maintain::DownsampleConfig),
    /// Cleans up all blocks marked for deletion, and aborted partial uploads.
    Cleanup(maintain::CleanupConfig),
    /// Mark block for deletion or no-compact/no-downsample in a safe way, or
    /// remove such a mark.
    Mark(maintain::MarkConfig),
    /// Rewrite chosen blocks in the bucket, while deleting or modifying
    /// series. The new block records the old sources and the requests in
    /// `thanos.rewrites`; the source block is marked for deletion only with
    /// `--delete-blocks`.
    Rewrite(rewrite::Config),
    /// Applies retention policies on the given bucket. Make sure no compactor
    /// is running on the same bucket at the same time.
    Retention(maintain::RetentionConfig),
    /// Upload the Prometheus blocks of a directory to the object storage.
    UploadBlocks(transfer::UploadConfig),
}

/// Runs a bucket subcommand.
pub async fn run(c: Config) -> anyhow::Result<()> {
    let b = || open_bucket(&c, "objstore.config");
    match c.cmd {
        BucketCommand::Verify(ref v) => verify::run(b()?, v).await,
        BucketCommand::Ls(ref l) => list::ls(b()?, l).await,
        BucketCommand::Inspect(ref i) => list::inspect(b()?, i).await,
        BucketCommand::Replicate(ref r) => transfer::replicate(b()?, r).await,
        BucketCommand::Downsample(ref d) => maintain::downsample(b()?, d).await,
        BucketCommand::Cleanup(ref cl) => maintain::cleanup(b()?, cl).await,
        BucketCommand::Mark(ref m) => maintain::mark(b()?, m).await,
        BucketCommand::Rewrite(ref r) => rewrite::run(b()?, r).await,
        BucketCommand::Retention(ref r) => maintain::retention(b()?, r).await,
        BucketCommand::UploadBlocks(ref u) => transfer::upload(b()?, u).await,
    }
}

fn open_bucket(c: &Config, flag: &str) -> anyhow::Result<Bucket> {
    let cfg = bucket_config(
        c.objstore_config_file.as_deref(),
        c.objstore_config.as_deref(),
        flag,
    )?
    .ok_or_else(|| {
        anyhow!(
            "no object storage configured: --objstore.config-file or --objstore.config is required"
        )
    })?;
    connect(&cfg)
}

/// A bucket client for `cfg` (its metrics are not exported: tools have no
/// HTTP server).
fn connect(cfg: &strata_objstore::BucketConfig) -> anyhow::Result<Bucket> {
    let mut registry = Registry::default();
    Bucket::from_config(cfg, &mut registry)
        .with_context(|| format!("opening bucket {}", cfg.name()))
}

/// `--selector.relabel-config(-file)`, shared by several subcommands.
#[derive(Debug, Args, Clone)]
struct SelectorRelabel {
    /// YAML file with relabel configs over each block's external labels (and
    /// `__block_id`) that select the blocks to work on.
    #[arg(
        long = "selector.relabel-config-file",
        conflicts_with = "selector_relabel_config"
    )]
    selector_relabel_config_file: Option<PathBuf>,
    /// Alternative to `--selector.relabel-config-file`: the YAML itself.
    #[arg(long = "selector.relabel-config")]
    selector_relabel_config: Option<String>,
}

impl SelectorRelabel {
    fn configs(&self) -> anyhow::Result<Vec<RelabelConfig>> {
        relabel_configs(
            self.selector_relabel_config_file.as_deref(),
            self.selector_relabel_config.as_deref(),
            "selector.relabel-config",
        )
    }
}

/// Parses `--id` values.
fn parse_ids(ids: &[String], flag: &str) -> anyhow::Result<Vec<Ulid>> {
    ids.iter()
        .map(|s| {
            s.trim()
                .parse::<Ulid>()
                .map_err(|e| anyhow!("invalid ULID {s:?} in {flag}: {e}"))
        })
        .collect()
}

/// Thanos' `parseFlagLabels` for one `name="value"` (the value Go-quoted).
fn parse_flag_label(s: &str) -> anyhow::Result<(String, String)> {
    let Some((name, value)) = s.split_once('=') else {
        bail!("unrecognized label {s:?}: want name=\"value\"");
    };
    let ms =
        strata_model::selector::parse_selector(&format!("{{{name}={value}}}")).map_err(|e| {
            anyhow!("invalid label {s:?}: want name=\"value\" with a quoted value: {e}")
        })?;
    match ms.as_slice() {
        [m] if m.kind == MatchType::Equal => Ok((m.name.clone(), m.value.clone())),
        _ => bail!("invalid label {s:?}: want name=\"value\""),
    }
}

/// Labels from repeated `name="value"` flags.
fn parse_flag_labels(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in items {
        let (k, v) = parse_flag_label(s)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// A block's external labels plus `__block_id`, for selector relabelling.
fn selector_labels(m: &Meta) -> Labels {
    let mut v: Vec<Label> = m
        .thanos
        .labels
        .iter()
        .map(|(k, v)| Label::new(k.clone(), v.clone()))
        .collect();
    v.push(Label::new(
        strata_compact::sync::BLOCK_ID_LABEL,
        m.block.ulid.to_string(),
    ));
    Labels::from_vec(v)
}

/// Every block's meta (Thanos' meta fetcher without filters): complete blocks
/// sorted by ULID, and the partial uploads. A `meta.json` that cannot be read
/// is logged and skipped.
async fn fetch_metas(bucket: &Bucket) -> anyhow::Result<(Vec<Meta>, Vec<Ulid>)> {
    let list = strata_block::list_blocks(bucket)
        .await
        .with_context(|| format!("listing blocks of bucket {}", bucket.name()))?;
    let results: Vec<_> = futures::stream::iter(list.complete)
        .map(|id| async move { (id, strata_block::download_meta(bucket, id).await) })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut metas = Vec::with_capacity(results.len());
    for (id, r) in results {
        match r {
            Ok(m) => metas.push(m),
            Err(e) => warn!(block = %id, error = %e, "skipping block with unreadable meta.json"),
        }
    }
    metas.sort_by_key(|m| m.block.ulid);
    Ok((metas, list.partial))
}

/// Keeps the blocks the selector relabelling keeps.
fn filter_relabel(metas: &mut Vec<Meta>, rules: &[RelabelConfig]) {
    if rules.is_empty() {
        return;
    }
    metas.retain(|m| strata_model::relabel::relabel(&selector_labels(m), rules).is_some());
}

/// Drops blocks that have a deletion mark.
async fn filter_deletion_marked(bucket: &Bucket, metas: &mut Vec<Meta>) -> anyhow::Result<()> {
    let mut keep = Vec::with_capacity(metas.len());
    for m in metas.drain(..) {
        let mark = read_marker::<DeletionMark>(bucket, m.block.ulid)
            .await
            .with_context(|| format!("reading deletion mark of block {}", m.block.ulid))?;
        if mark.is_none() {
            keep.push(m);
        }
    }
    *metas = keep;
    Ok(())
}

/// Unix seconds as RFC 3339 in UTC (`2006-01-02T15:04:05Z`).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = strata_model::civil::civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_labels_need_quoted_values() {
        assert_eq!(
            parse_flag_label(r#"replica="A""#).unwrap(),
            ("replica".into(), "A".into())
        );
        assert!(parse_flag_label("replica=A").is_err());
        assert!(parse_flag_label("replica").is_err());
        assert!(parse_flag_label(r#"a=~"x""#).is_err());
        assert_eq!(rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
    }
}
