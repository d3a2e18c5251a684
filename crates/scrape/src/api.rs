//! Data for `/api/v1/targets` and `/api/v1/targets/metadata`, serialised with
//! Prometheus' field names (`wire-formats.md` §3.4).

use std::collections::BTreeMap;

use serde::Serialize;
use strata_model::Labels;

/// `data` of `/api/v1/targets`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetsSnapshot {
    /// Targets being scraped, by pool name then labels.
    pub active_targets: Vec<ActiveTarget>,
    /// Targets dropped by relabeling.
    pub dropped_targets: Vec<DroppedTarget>,
    /// Number of dropped targets per pool.
    pub dropped_target_counts: BTreeMap<String, usize>,
}

/// One active target.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTarget {
    /// Labels before relabeling (with `__*`).
    pub discovered_labels: BTreeMap<String, String>,
    /// Labels attached to the target's series.
    pub labels: BTreeMap<String, String>,
    /// The job.
    pub scrape_pool: String,
    /// The URL scraped.
    pub scrape_url: String,
    /// The URL with a loopback host replaced by this machine's host name.
    pub global_url: String,
    /// Why the last scrape failed or dropped samples; empty if it did not.
    pub last_error: String,
    /// Start of the last scrape, RFC 3339 with nanoseconds
    /// (`0001-01-01T00:00:00Z` before the first).
    pub last_scrape: String,
    /// Duration of the last scrape, seconds.
    pub last_scrape_duration: f64,
    /// `up`, `down` or `unknown`.
    pub health: String,
    /// The scrape interval (`15s`).
    pub scrape_interval: String,
    /// The scrape timeout (`10s`).
    pub scrape_timeout: String,
}

/// One dropped target.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DroppedTarget {
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
    /// The job.
    pub scrape_pool: String,
}

/// One element of `/api/v1/targets/metadata`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetMetadata {
    /// The target's labels.
    pub target: BTreeMap<String, String>,
    /// The metric family.
    pub metric: String,
    /// `counter`, `gauge`, ... (`unknown` for untyped).
    #[serde(rename = "type")]
    pub metric_type: String,
    /// The help text.
    pub help: String,
    /// The unit.
    pub unit: String,
}

pub(crate) fn label_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// Formats Unix ms as RFC 3339 with nanoseconds like Go's `time.RFC3339Nano`
/// in UTC (trailing zeros of the fraction removed); 0 gives Go's zero time.
pub fn format_rfc3339_nano(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let secs = ms.div_euclid(1000);
    let frac_ms = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac_ms != 0 {
        let f = format!("{frac_ms:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let (y, m, d) = strata_model::civil::civil_from_days(z);
    (y, i64::from(m), i64::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339_nano(0), "0001-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nano(1_704_067_200_500),
            "2024-01-01T00:00:00.5Z"
        );
        assert_eq!(
            format_rfc3339_nano(951_782_400_123),
            "2000-02-29T00:00:00.123Z"
        );
    }

    #[test]
    fn snapshot_field_names() {
        let s = TargetsSnapshot::default();
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("activeTargets").is_some());
        assert!(v.get("droppedTargetCounts").is_some());
    }
}
