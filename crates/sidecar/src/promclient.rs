//! What the sidecar asks the Prometheus beside it (thanos `pkg/promclient`):
//! readiness, external labels from the loaded configuration, the block
//! duration flags, and the lowest timestamp it holds.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_model::Labels;

use crate::error::{Error, Result};

/// A small HTTP client for one Prometheus.
#[derive(Debug, Clone)]
pub struct PromClient {
    base: String,
    client: reqwest::Client,
}

impl PromClient {
    /// A client for `base_url` (e.g. `http://localhost:9090`); every request
    /// times out after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Prometheus`] when the HTTP client cannot be built.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("Strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Prometheus {
                url: base.clone(),
                msg: e.to_string(),
            })?;
        Ok(Self { base, client })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET path`: status and body.
    async fn get(&self, path: &str) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let err = |msg: String| Error::Prometheus {
            url: url.clone(),
            msg,
        };
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| err(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| err(error_chain(&e)))?;
        Ok((status, body))
    }

    async fn get_ok(&self, path: &str) -> Result<String> {
        let (status, body) = self.get(path).await?;
        if status != 200 {
            return Err(Error::Prometheus {
                url: format!("{}{path}", self.base),
                msg: format!(
                    "HTTP status {status}: {}",
                    body.trim().chars().take(300).collect::<String>()
                ),
            });
        }
        Ok(body)
    }

    /// `GET /-/ready` answers 200.
    ///
    /// # Errors
    ///
    /// [`Error::Prometheus`] when unreachable or not ready.
    pub async fn ready(&self) -> Result<()> {
        self.get_ok("/-/ready").await.map(|_| ())
    }

    /// The external labels of the loaded configuration
    /// (`GET /api/v1/status/config`, YAML `global.external_labels`); may be empty.
    ///
    /// # Errors
    ///
    /// [`Error::Prometheus`] when unreachable or the answer is malformed.
    pub async fn external_labels(&self) -> Result<Labels> {
        let path = "/api/v1/status/config";
        let body = self.get_ok(path).await?;
        let err = |msg: String| Error::Prometheus {
            url: format!("{}{path}", self.base),
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| err(format!("answer is not JSON: {e}")))?;
        let yaml = v
            .pointer("/data/yaml")
            .and_then(|y| y.as_str())
            .ok_or_else(|| err("answer has no data.yaml".into()))?;
        parse_external_labels(yaml).map_err(err)
    }

    /// Every command-line flag (`GET /api/v1/status/flags`), or `None` when the
    /// endpoint does not exist (404), as with very old Prometheus versions.
    ///
    /// # Errors
    ///
    /// [`Error::Prometheus`] when unreachable or the answer is malformed.
    pub async fn flags(&self) -> Result<Option<BTreeMap<String, String>>> {
        let path = "/api/v1/status/flags";
        let (status, body) = self.get(path).await?;
        let err = |msg: String| Error::Prometheus {
            url: format!("{}{path}", self.base),
            msg,
        };
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(err(format!("HTTP status {status}")));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: BTreeMap<String, String>,
        }
        let a: Answer =
            serde_json::from_str(&body).map_err(|e| err(format!("malformed answer: {e}")))?;
        Ok(Some(a.data))
    }

    /// The lowest sample timestamp Prometheus holds, ms, read from its
    /// `/metrics` (`prometheus_tsdb_lowest_timestamp_seconds`, or the older
    /// millisecond gauge `prometheus_tsdb_lowest_timestamp`).
    ///
    /// # Errors
    ///
    /// [`Error::Prometheus`] when unreachable or neither metric is exposed.
    pub async fn lowest_timestamp_ms(&self) -> Result<i64> {
        let body = self.get_ok("/metrics").await?;
        parse_lowest_timestamp(&body).ok_or_else(|| Error::Prometheus {
            url: format!("{}/metrics", self.base),
            msg: "metric prometheus_tsdb_lowest_timestamp_seconds not found".into(),
        })
    }
}

/// The error and its causes, so that "connection refused" is visible.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `global.external_labels` of a Prometheus configuration YAML.
///
/// # Errors
///
/// A message when the YAML is invalid or the labels are not a string map.
pub fn parse_external_labels(yaml: &str) -> Result<Labels, String> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(yaml).map_err(|e| format!("config YAML: {e}"))?;
    let Some(ext) = doc.get("global").and_then(|g| g.get("external_labels")) else {
        return Ok(Labels::empty());
    };
    if ext.is_null() {
        return Ok(Labels::empty());
    }
    let map = ext
        .as_mapping()
        .ok_or_else(|| "global.external_labels is not a map".to_string())?;
    let mut pairs = Vec::with_capacity(map.len());
    for (k, v) in map {
        let name = scalar(k).ok_or_else(|| format!("external label name {k:?} is not a string"))?;
        let value =
            scalar(v).ok_or_else(|| format!("value of external label {name:?} is not a string"))?;
        pairs.push((name, value));
    }
    Ok(Labels::from_pairs(pairs))
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The lowest timestamp, ms, from a text exposition (see
/// [`PromClient::lowest_timestamp_ms`]).
pub fn parse_lowest_timestamp(text: &str) -> Option<i64> {
    let mut ms = None;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "prometheus_tsdb_lowest_timestamp_seconds" => return Some(to_ms(v * 1000.0)),
            "prometheus_tsdb_lowest_timestamp" => ms = Some(to_ms(v)),
            _ => {}
        }
    }
    ms
}

/// A float ms value as i64, saturating (`9.2e18` for an empty TSDB).
fn to_ms(v: f64) -> i64 {
    if v.is_nan() {
        return i64::MIN;
    }
    // `as` saturates at the i64 bounds.
    v.round() as i64
}

/// Thanos' check that Prometheus does not compact blocks: `min-block-duration`
/// must equal `max-block-duration`. Returns a warning to log when they are
/// equal but not the recommended 2h.
///
/// # Errors
///
/// [`Error::CompactionEnabled`] when they differ; [`Error::Prometheus`]-free.
pub fn check_block_durations(flags: &BTreeMap<String, String>) -> Result<Option<String>> {
    let min = flags
        .get("storage.tsdb.min-block-duration")
        .cloned()
        .unwrap_or_default();
    let max = flags
        .get("storage.tsdb.max-block-duration")
        .cloned()
        .unwrap_or_default();
    if min != max {
        return Err(Error::CompactionEnabled { min, max });
    }
    Ok((min != "2h").then(|| {
        format!("found that TSDB block time is {min}. Block time is recommended to be 2h for best performance")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_labels_from_config_yaml() {
        let y = "global:\n  scrape_interval: 15s\n  external_labels:\n    replica: \"1\"\n    cluster: eu\nscrape_configs: []\n";
        let l = parse_external_labels(y).unwrap();
        assert_eq!(l, Labels::from_pairs([("cluster", "eu"), ("replica", "1")]));
        assert!(parse_external_labels("global:\n  scrape_interval: 1m\n")
            .unwrap()
            .is_empty());
        assert!(parse_external_labels("global:\n  external_labels: [a]\n").is_err());
        assert!(parse_external_labels("global: [").is_err());
    }

    #[test]
    fn lowest_timestamp_from_metrics() {
        let t = "# HELP x\nprometheus_tsdb_lowest_timestamp 1.7e+12\nprometheus_tsdb_lowest_timestamp_seconds 1.704067205e+09\n";
        assert_eq!(parse_lowest_timestamp(t), Some(1_704_067_205_000));
        assert_eq!(
            parse_lowest_timestamp("prometheus_tsdb_lowest_timestamp 1234\n"),
            Some(1234)
        );
        assert_eq!(
            parse_lowest_timestamp(
                "prometheus_tsdb_lowest_timestamp_seconds 9.223372036854776e+15\n"
            ),
            Some(i64::MAX)
        );
        assert_eq!(parse_lowest_timestamp("up 1\n"), None);
    }

    #[test]
    fn block_duration_check() {
        let f = |min: &str, max: &str| {
            BTreeMap::from([
                (
                    "storage.tsdb.min-block-duration".to_string(),
                    min.to_string(),
                ),
                (
                    "storage.tsdb.max-block-duration".to_string(),
                    max.to_string(),
                ),
            ])
        };
        assert_eq!(check_block_durations(&f("2h", "2h")).unwrap(), None);
        assert!(check_block_durations(&f("5m", "5m")).unwrap().is_some());
        let e = check_block_durations(&f("2h", "1d12h")).unwrap_err();
        assert!(
            e.to_string().contains("Compaction needs to be disabled"),
            "{e}"
        );
    }
}
