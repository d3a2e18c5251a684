//! Target discovery: `static_configs` and `file_sd_configs` (mirrors Prometheus
//! `discovery/targetgroup` and `discovery/file`).
//!
//! File SD reads JSON (`*.json`) or YAML (`*.yml`, `*.yaml`) lists of
//! `{targets: [...], labels: {...}}`, adds `__meta_filepath`, and is re-read when
//! a matching file appears, disappears or changes (checked every
//! [`FILE_SD_POLL`]) and every `refresh_interval`. A file that fails to parse
//! keeps its previous targets.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use strata_config::{FileSdConfig, ScrapeConfig};
use strata_model::{Label, Labels};
use tokio_util::sync::CancellationToken;

use crate::pool::ScrapePool;
use crate::target::ADDRESS_LABEL;

/// How often file SD checks its files for changes.
pub const FILE_SD_POLL: Duration = Duration::from_secs(1);

/// A group of targets sharing labels, from one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    /// Each target's own labels (at least `__address__`).
    pub targets: Vec<Labels>,
    /// Labels of every target in the group (a target's own labels win).
    pub labels: Labels,
    /// Where the group came from (`static/0`, `file:/etc/sd.json:1`).
    pub source: String,
}

/// The groups of a scrape config's `static_configs`.
pub(crate) fn static_groups(cfg: &ScrapeConfig) -> Vec<TargetGroup> {
    cfg.static_configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            targets: sc
                .targets
                .iter()
                .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t.as_str())]))
                .collect(),
            labels: Labels::from_pairs(sc.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            source: format!("static/{i}"),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses one file SD file.
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let is_json = path.extension().is_some_and(|e| e == "json");
    let groups: Vec<FileGroup> = if is_json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(text).map_err(|e| e.to_string())?
    };
    let file = path.display().to_string();
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.into_iter().enumerate() {
        let mut labels: Vec<Label> = g
            .labels
            .into_iter()
            .map(|(k, v)| Label::new(k, v))
            .collect();
        for l in &labels {
            if l.name.is_empty() {
                return Err(format!("invalid label name {:?}", l.name));
            }
        }
        labels.push(Label::new("__meta_filepath", file.clone()));
        out.push(TargetGroup {
            targets: g
                .targets
                .iter()
                .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t.as_str())]))
                .collect(),
            labels: Labels::from_vec(labels),
            source: format!("file:{file}:{i}"),
        });
    }
    Ok(out)
}

/// The files matching `patterns` and their modification times, sorted.
fn list_files(patterns: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut out = Vec::new();
    for p in patterns {
        let Some(pat) = p.to_str() else { continue };
        let Ok(paths) = glob::glob(pat) else {
            tracing::warn!(pattern = pat, "invalid file SD glob");
            continue;
        };
        for path in paths.flatten() {
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            out.push((path, mtime));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Watches one `file_sd_configs` entry and feeds its groups to `pool` under the
/// provider name `provider`, until `cancel`.
pub(crate) async fn watch_files(
    pool: Arc<ScrapePool>,
    provider: String,
    cfg: FileSdConfig,
    cancel: CancellationToken,
) {
    let refresh = Duration::from_millis(cfg.refresh_interval.as_millis().max(1000).unsigned_abs());
    let mut last_listing: Option<Vec<(PathBuf, Option<SystemTime>)>> = None;
    let mut last_refresh = Instant::now();
    let mut per_file: HashMap<PathBuf, Vec<TargetGroup>> = HashMap::new();
    loop {
        let patterns = cfg.files.clone();
        let listing = tokio::task::spawn_blocking(move || list_files(&patterns))
            .await
            .unwrap_or_default();
        let changed = last_listing.as_ref() != Some(&listing);
        if changed || last_refresh.elapsed() >= refresh {
            last_refresh = Instant::now();
            let mut next: HashMap<PathBuf, Vec<TargetGroup>> = HashMap::new();
            for (path, _) in &listing {
                let groups = match tokio::fs::read_to_string(path).await {
                    Ok(text) => parse_file(path, &text),
                    Err(e) => Err(e.to_string()),
                };
                match groups {
                    Ok(g) => {
                        next.insert(path.clone(), g);
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "file SD: reading targets failed, keeping the previous ones");
                        if let Some(old) = per_file.get(path) {
                            next.insert(path.clone(), old.clone());
                        }
                    }
                }
            }
            if next != per_file || last_listing.is_none() {
                per_file = next;
                let mut all: Vec<TargetGroup> = per_file.values().flatten().cloned().collect();
                all.sort_by(|a, b| a.source.cmp(&b.source));
                pool.update_groups(&provider, all);
            }
            last_listing = Some(listing);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(FILE_SD_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_yaml() {
        let g = parse_file(
            Path::new("/sd/a.json"),
            r#"[{"targets": ["h:1", "h:2"], "labels": {"env": "x"}}]"#,
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(g[0].labels.get("env"), Some("x"));
        assert_eq!(g[0].labels.get("__meta_filepath"), Some("/sd/a.json"));
        let g = parse_file(Path::new("b.yml"), "- targets: ['h:3']\n").unwrap();
        assert_eq!(g[0].targets[0].get("__address__"), Some("h:3"));
        assert!(parse_file(Path::new("b.yml"), "- targetz: []\n").is_err());
        assert!(parse_file(Path::new("b.json"), "{").is_err());
        assert!(parse_file(Path::new("b.yaml"), "").unwrap().is_empty());
    }
}
