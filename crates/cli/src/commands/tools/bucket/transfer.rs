//! `replicate` (bucket to bucket) and `upload-blocks` (local Prometheus
//! blocks to a bucket).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use prometheus_client::registry::Registry;
use strata_block::meta::{source, CHUNKS_DIRNAME, INDEX_FILENAME, META_FILENAME};
use strata_block::{Shipper, ShipperOptions};
use strata_model::Matcher;
use strata_objstore::Bucket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use ulid::Ulid;

use super::{connect, fetch_metas, filter_deletion_marked, parse_flag_labels, parse_ids};
use crate::commands::common::{bucket_config, duration_arg, time_or_duration_arg, wait_for_signal};

/// `replicate` flags.
#[derive(Debug, Args)]
pub struct ReplicateConfig {
    /// YAML file of the object storage to replicate data to.
    #[arg(
        long = "objstore-to.config-file",
        conflicts_with = "objstore_to_config"
    )]
    objstore_to_config_file: Option<PathBuf>,
    /// Alternative to `--objstore-to.config-file`: the YAML itself.
    #[arg(long = "objstore-to.config")]
    objstore_to_config: Option<String>,
    /// Only blocks with these resolutions will be replicated (repeated or
    /// comma-separated).
    #[arg(long = "resolution", value_parser = duration_arg, value_delimiter = ',',
          default_values = ["0s", "5m", "1h"])]
    resolutions: Vec<Duration>,
    /// Only blocks with at least this compaction level will be replicated.
    #[arg(long = "compaction-min", default_value_t = 1)]
    compaction_min: i32,
    /// Only blocks up to a maximum of this compaction level will be replicated.
    #[arg(long = "compaction-max", default_value_t = 4)]
    compaction_max: i32,
    /// Only blocks with these compaction levels will be replicated (repeated);
    /// overrides `--compaction-min` and `--compaction-max`.
    #[arg(long = "compaction")]
    compactions: Vec<i32>,
    /// Blocks whose external labels match this matcher will be replicated,
    /// e.g. `{cluster="eu",env=~"prod.*"}`.
    #[arg(long = "matcher", default_value = "")]
    matcher: String,
    /// Run replication only one time, then exit (otherwise every minute until
    /// SIGTERM or SIGINT).
    #[arg(long = "single-run", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    single_run: bool,
    /// Replicate only blocks that end at or after this time (RFC3339 or relative).
    #[arg(long = "min-time", value_parser = time_or_duration_arg,
          default_value = "0000-01-01T00:00:00Z", allow_hyphen_values = true)]
    min_time: i64,
    /// Replicate only blocks that start at or before this time.
    #[arg(long = "max-time", value_parser = time_or_duration_arg,
          default_value = "9999-12-31T23:59:59Z", allow_hyphen_values = true)]
    max_time: i64,
    /// Blocks to replicate (repeated); the other filters are then ignored and
    /// the command runs once.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Do not replicate blocks that have a deletion mark.
    #[arg(long = "ignore-marked-for-deletion", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    ignore_marked_for_deletion: bool,
    /// Listen host:port for HTTP endpoints (accepted for compatibility; no
    /// HTTP server is started).
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
}

/// Alertmanager-style matchers: `{a="b",c=~"d"}` or `a="b",c=~"d"`.
fn parse_matchers(s: &str) -> anyhow::Result<Vec<Matcher>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let sel = if s.starts_with('{') {
        s.to_string()
    } else {
        format!("{{{s}}}")
    };
    strata_model::selector::parse_selector(&sel)
        .map_err(|e| anyhow!("parse block label matchers: invalid --matcher {s:?}: {e}"))
}

/// Copies the selected blocks that the target lacks (oldest first): chunks,
/// index, then meta.json last, as an upload.
pub async fn replicate(from: Bucket, c: &ReplicateConfig) -> anyhow::Result<()> {
    let matchers = parse_matchers(&c.matcher)?;
    let to_cfg = bucket_config(
        c.objstore_to_config_file.as_deref(),
        c.objstore_to_config.as_deref(),
        "objstore-to.config",
    )?
    .ok_or_else(|| anyhow!("no target object storage: --objstore-to.config-file or --objstore-to.config is required"))?;
    let to = connect(&to_cfg)?;
    let levels: Vec<i32> = if c.compactions.is_empty() {
        if c.compaction_min > c.compaction_max {
            bail!("compaction-min must be less than or equal to compaction-max");
        }
        (c.compaction_min..=c.compaction_max).collect()
    } else {
        c.compactions.clone()
    };
    let resolutions: Vec<i64> = c.resolutions.iter().map(|d| d.as_millis() as i64).collect();
    let ids = parse_ids(&c.ids, "--id")?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let result = loop {
        let pass = replicate_once(&from, &to, c, &matchers, &levels, &resolutions, &ids).await;
        if let Err(e) = pass {
            break Err(e);
        }
        if c.single_run || !ids.is_empty() {
            break Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
            () = shutdown.cancelled() => break Ok(()),
        }
    };
    signals.abort();
    result
}

async fn replicate_once(
    from: &Bucket,
    to: &Bucket,
    c: &ReplicateConfig,
    matchers: &[Matcher],
    levels: &[i32],
    resolutions: &[i64],
    ids: &[Ulid],
) -> anyhow::Result<()> {
    let (mut metas, partial) = fetch_metas(from).await?;
    for id in partial {
        info!(block_uuid = %id, "block meta not uploaded yet. Skipping.");
    }
    for id in ids {
        if !metas.iter().any(|m| m.block.ulid == *id) {
            bail!("block {id} not found in bucket {}", from.name());
        }
    }
    metas.retain(|m| m.block.max_time >= c.min_time && m.block.min_time <= c.max_time);
    if c.ignore_marked_for_deletion {
        filter_deletion_marked(from, &mut metas).await?;
    }
    metas.retain(|m| {
        if m.thanos.labels.is_empty() {
            info!(block = %m.block.ulid, reason = "labels should not be empty", "filtering block");
            return false;
        }
        if !ids.is_empty() {
            return ids.contains(&m.block.ulid);
        }
        let labels = &m.thanos.labels;
        if !strata_model::matches_all(matchers, |n| labels.get(n).map(String::as_str)) {
            debug!(block = %m.block.ulid, reason = "labels don't match", "filtering block");
            return false;
        }
        if !resolutions.contains(&m.thanos.downsample.resolution) {
            info!(block = %m.block.ulid, got_resolution = m.thanos.downsample.resolution, reason = "resolution doesn't match allowed resolutions", "filtering block");
            return false;
        }
        if !levels.contains(&m.block.compaction.level) {
            info!(block = %m.block.ulid, got_compaction_level = m.block.compaction.level, reason = "compaction level doesn't match allowed levels", "filtering block");
            return false;
        }
        true
    });
    metas.sort_by_key(|m| (m.block.min_time, m.block.ulid));
    let tmp = std::env::temp_dir().join(format!("strata-replicate-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut copied = 0;
    let res = async {
        for m in &metas {
            info!(block_uuid = %m.block.ulid, "adding block to be replicated");
            if ensure_replicated(from, to, m.block.ulid, &tmp)
                .await
                .with_context(|| format!("ensure block {} is replicated", m.block.ulid))?
            {
                copied += 1;
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    res?;
    info!(
        candidates = metas.len(),
        replicated = copied,
        "replication iteration done"
    );
    Ok(())
}

/// Copies block `id` unless the target has the same meta.json; returns
/// whether anything was copied.
async fn ensure_replicated(
    from: &Bucket,
    to: &Bucket,
    id: Ulid,
    tmp: &std::path::Path,
) -> anyhow::Result<bool> {
    let meta_key = format!("{id}/{META_FILENAME}");
    let origin = from
        .get(&meta_key)
        .await
        .context("get meta file from origin bucket")?;
    match to.get(&meta_key).await {
        Ok(target) if target == origin => {
            debug!(block_uuid = %id, "block already replicated");
            return Ok(false);
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(anyhow!(e).context("get meta file from target bucket")),
    }
    let mut keys = from
        .iter_recursive(&format!("{id}/{CHUNKS_DIRNAME}/"))
        .await
        .context("list chunks")?;
    keys.sort();
    keys.push(format!("{id}/{INDEX_FILENAME}"));
    let file = tmp.join("object");
    for key in keys {
        if to.exists(&key).await? {
            continue;
        }
        from.download_file(&key, &file)
            .await
            .with_context(|| format!("download {key}"))?;
        to.upload_file(&key, &file)
            .await
            .with_context(|| format!("upload {key} to target bucket"))?;
    }
    to.upload(&meta_key, origin)
        .await
        .context("upload meta file")?;
    info!(block_uuid = %id, "block replicated");
    Ok(true)
}

/// `upload-blocks` flags.
#[derive(Debug, Args)]
pub struct UploadConfig {
    /// Path to the directory containing blocks to upload.
    #[arg(long = "path", default_value = "./data")]
    path: PathBuf,
    /// External labels to add to the uploaded blocks (repeated), `name="value"`.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Also upload compacted blocks (level > 1).
    #[arg(long = "shipper.upload-compacted", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    upload_compacted: bool,
    /// Number of block files uploaded at once (accepted for compatibility;
    /// files go one after another).
    #[arg(long = "shipper.upload-concurrency", default_value_t = 5)]
    upload_concurrency: usize,
}

/// Uploads the blocks of `--path` not uploaded yet, with source
/// `bucket.upload`, recording them in `<path>/thanos.shipper.json`.
pub async fn upload(bucket: Bucket, c: &UploadConfig) -> anyhow::Result<()> {
    if c.labels.is_empty() {
        bail!("no external labels configured, uniquely identifying external labels must be configured; see https://thanos.io/tip/thanos/storage.md#external-labels for details.");
    }
    let labels = parse_flag_labels(&c.labels).context("unable to parse external labels")?;
    std::fs::read_dir(&c.path)
        .with_context(|| format!("unable to access path '{}'", c.path.display()))?;
    let shipper = Shipper::new(
        c.path.clone(),
        bucket,
        labels,
        ShipperOptions {
            upload_compacted: c.upload_compacted,
            source: source::BUCKET_UPLOAD.into(),
            ..Default::default()
        },
        &mut Registry::default(),
    );
    let n = shipper.sync().await.context("unable to sync blocks")?;
    info!(uploaded = n, "synced blocks");
    Ok(())
}
