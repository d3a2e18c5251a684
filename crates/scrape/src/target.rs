//! Targets: the labels of a discovered target after relabeling, its URL, and its
//! scrape state (mirrors Prometheus `scrape/target.go`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use strata_config::{format_duration_ms, parse_duration_ms, ScrapeConfig};
use strata_model::relabel::relabel;
use strata_model::textparse::MetricType;
use strata_model::{Label, Labels};

/// `__address__`.
pub const ADDRESS_LABEL: &str = "__address__";
/// `__scheme__`.
pub const SCHEME_LABEL: &str = "__scheme__";
/// `__metrics_path__`.
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
/// `__scrape_interval__`.
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
/// `__scrape_timeout__`.
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
/// Prefix of URL parameter labels.
pub const PARAM_LABEL_PREFIX: &str = "__param_";
/// Prefix of discovery metadata labels.
pub const META_LABEL_PREFIX: &str = "__meta_";

/// A target's health, as `/api/v1/targets` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl Health {
    /// `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape of a target did.
#[derive(Clone, Debug, Default)]
pub(crate) struct TargetState {
    pub(crate) health: Health,
    pub(crate) last_error: String,
    /// Unix ms of the last scrape's start, 0 before the first.
    pub(crate) last_scrape_ms: i64,
    pub(crate) last_duration_s: f64,
}

/// TYPE, HELP and UNIT of one metric family, as last scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricMetadata {
    /// The type (`unknown` when only HELP or UNIT was given).
    pub metric_type: MetricType,
    /// The help text.
    pub help: String,
    /// The unit.
    pub unit: String,
}

/// A target being scraped.
#[derive(Debug)]
pub(crate) struct Target {
    /// All labels after relabeling, `__meta_*` removed, `__*` kept (they build the URL).
    pub(crate) labels: Labels,
    /// The labels attached to scraped series: `labels` without `__*`.
    pub(crate) public_labels: Labels,
    /// The labels before relabeling.
    pub(crate) discovered: Labels,
    pub(crate) url: String,
    pub(crate) interval_ms: i64,
    pub(crate) timeout_ms: i64,
    pub(crate) state: Mutex<TargetState>,
    pub(crate) metadata: Mutex<HashMap<String, MetricMetadata>>,
}

/// The outcome of [`populate`].
#[derive(Debug)]
pub(crate) enum Populated {
    Active(Target),
    Dropped(Labels),
}

/// Builds a target from discovered labels like Prometheus' `PopulateLabels`:
/// defaults for `job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`,
/// `__scrape_timeout__` and `__param_*`, then `relabel_configs`, then `instance`
/// defaults to `__address__` and `__meta_*` labels go.
pub(crate) fn populate(discovered_in: &Labels, cfg: &ScrapeConfig) -> Result<Populated, String> {
    let mut b = discovered_in.builder();
    let defaults: [(&str, String); 5] = [
        ("job", cfg.job_name.clone()),
        (SCRAPE_INTERVAL_LABEL, cfg.scrape_interval.to_string()),
        (SCRAPE_TIMEOUT_LABEL, cfg.scrape_timeout.to_string()),
        (METRICS_PATH_LABEL, cfg.metrics_path.clone()),
        (SCHEME_LABEL, cfg.scheme.clone()),
    ];
    for (k, v) in defaults {
        if b.get(k).is_none_or(str::is_empty) {
            b.set(k, v);
        }
    }
    for (k, vs) in &cfg.params {
        let name = format!("{PARAM_LABEL_PREFIX}{k}");
        if let Some(first) = vs.first() {
            if b.get(&name).is_none_or(str::is_empty) {
                b.set(name, first.clone());
            }
        }
    }
    let discovered = b.build();
    let Some(relabeled) = relabel(&discovered, &cfg.relabel_configs) else {
        return Ok(Populated::Dropped(discovered));
    };
    let address = relabeled.get(ADDRESS_LABEL).unwrap_or_default();
    if address.is_empty() {
        return Err("no address".into());
    }
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let mut b = relabeled.builder();
    b.retain(|l| !l.name.starts_with(META_LABEL_PREFIX));
    if b.get("instance").is_none_or(str::is_empty) {
        b.set("instance", address.to_owned());
    }
    let labels = b.build();
    let interval_s = labels.get(SCRAPE_INTERVAL_LABEL).unwrap_or_default();
    let interval_ms =
        parse_duration_ms(interval_s).map_err(|e| format!("error parsing scrape interval: {e}"))?;
    if interval_ms == 0 {
        return Err("scrape interval cannot be 0".into());
    }
    let timeout_s = labels.get(SCRAPE_TIMEOUT_LABEL).unwrap_or_default();
    let timeout_ms =
        parse_duration_ms(timeout_s).map_err(|e| format!("error parsing scrape timeout: {e}"))?;
    if timeout_ms == 0 {
        return Err("scrape timeout cannot be 0".into());
    }
    if timeout_ms > interval_ms {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({timeout_s:?} > {interval_s:?})"
        ));
    }
    let public_labels = Labels::from_vec(
        labels
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .cloned()
            .collect::<Vec<Label>>(),
    );
    let url = target_url(&labels, &cfg.params);
    Ok(Populated::Active(Target {
        labels,
        public_labels,
        discovered,
        url,
        interval_ms,
        timeout_ms,
        state: Mutex::new(TargetState::default()),
        metadata: Mutex::new(HashMap::new()),
    }))
}

/// `scheme://address/path?params`, with `__param_<name>` replacing the first value
/// of `params[name]` (Prometheus `Target.URL`). Query keys are sorted.
pub(crate) fn target_url(labels: &Labels, params: &BTreeMap<String, Vec<String>>) -> String {
    let mut params = params.clone();
    for l in labels.iter() {
        if let Some(k) = l.name.strip_prefix(PARAM_LABEL_PREFIX) {
            match params.get_mut(k) {
                Some(vs) if !vs.is_empty() => vs[0] = l.value.clone(),
                _ => {
                    params.insert(k.to_owned(), vec![l.value.clone()]);
                }
            }
        }
    }
    let mut url = format!(
        "{}://{}{}",
        labels.get(SCHEME_LABEL).unwrap_or("http"),
        labels.get(ADDRESS_LABEL).unwrap_or_default(),
        labels.get(METRICS_PATH_LABEL).unwrap_or_default()
    );
    let mut first = true;
    for (k, vs) in &params {
        for v in vs {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&query_escape(k));
            url.push('=');
            url.push_str(&query_escape(v));
        }
    }
    url
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Target {
    /// A stable hash of the target's identity (labels and URL).
    pub(crate) fn hash(&self) -> u64 {
        let mut h = self.labels.stable_hash();
        for b in self.url.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        h
    }

    /// How long to wait before the first scrape so that targets spread over the
    /// interval, pinned to absolute time like Prometheus' `Target.offset`:
    /// the scrape phase is `(hash ^ seed) % interval`.
    pub(crate) fn offset_ms(&self, now_ms: i64, seed: u64) -> i64 {
        let interval = self.interval_ms.max(1);
        let base = interval - now_ms.rem_euclid(interval);
        let offset = ((self.hash() ^ seed) % interval.unsigned_abs()) as i64;
        let mut next = base + offset;
        if next > interval {
            next -= interval;
        }
        next
    }

    /// `scrapeInterval` as a duration string.
    pub(crate) fn interval_string(&self) -> String {
        format_duration_ms(self.interval_ms)
    }

    /// `scrapeTimeout` as a duration string.
    pub(crate) fn timeout_string(&self) -> String {
        format_duration_ms(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_config::Config;
    use strata_model::labels;

    fn cfg(extra: &str) -> ScrapeConfig {
        let text =
            format!("scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n{extra}");
        Config::parse(&text).unwrap().scrape_configs.remove(0)
    }

    #[test]
    fn populate_defaults() {
        let c = cfg("    params:\n      module: [a, b]\n");
        let Populated::Active(t) = populate(&labels! {"__address__" => "h:9100"}, &c).unwrap()
        else {
            panic!("dropped")
        };
        assert_eq!(
            t.public_labels,
            labels! {"instance" => "h:9100", "job" => "node"}
        );
        assert_eq!(t.discovered.get("__param_module"), Some("a"));
        assert_eq!(t.url, "http://h:9100/metrics?module=a&module=b");
        assert_eq!(t.interval_ms, 15_000);
        assert_eq!(t.timeout_ms, 10_000);
        assert_eq!(t.interval_string(), "15s");
    }

    #[test]
    fn populate_relabel_and_drop() {
        let c = cfg(
            "    relabel_configs:\n      - source_labels: [__meta_x]\n        target_label: x\n      \
             - source_labels: [__address__]\n        regex: 'drop.*'\n        action: drop\n      \
             - target_label: __param_target\n        replacement: y z\n",
        );
        let Populated::Active(t) =
            populate(&labels! {"__address__" => "h:1", "__meta_x" => "v"}, &c).unwrap()
        else {
            panic!("dropped")
        };
        assert_eq!(t.public_labels.get("x"), Some("v"));
        assert!(!t.labels.has("__meta_x"));
        assert_eq!(t.url, "http://h:1/metrics?target=y+z");
        assert!(matches!(
            populate(&labels! {"__address__" => "drop:1"}, &c).unwrap(),
            Populated::Dropped(_)
        ));
        assert!(populate(&labels! {"a" => "b"}, &c).is_err());
    }

    #[test]
    fn offset_is_within_interval_and_stable() {
        let c = cfg("");
        let Populated::Active(t) = populate(&labels! {"__address__" => "h:1"}, &c).unwrap() else {
            panic!("dropped")
        };
        for now in [0, 1, 14_999, 1_700_000_000_123] {
            let o = t.offset_ms(now, 7);
            assert!((0..=15_000).contains(&o), "{o}");
            // Pinned to absolute time: the scrape phase does not depend on `now`.
            assert_eq!((now + o) % 15_000, (1 + t.offset_ms(1, 7)) % 15_000);
        }
    }
}
