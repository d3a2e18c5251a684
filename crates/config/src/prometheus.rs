//! `prometheus.yml` (mirrors Prometheus `config/config.go`: `global` and
//! `scrape_configs` typed, the other sections raw).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::duration::PromDuration;
use crate::error::{Error, Result};
use crate::scrape::{build_scrape_configs, RawScrape, ScrapeConfig};

/// Top-level sections kept as raw YAML until the components that use them parse
/// them.
pub const RAW_SECTIONS: [&str; 10] = [
    "runtime",
    "alerting",
    "rule_files",
    "scrape_config_files",
    "scrape_configs",
    "storage",
    "tracing",
    "remote_write",
    "remote_read",
    "otlp",
];

/// Prometheus' default `scrape_interval` (1m).
const DEFAULT_SCRAPE_INTERVAL_MS: i64 = 60_000;
/// Prometheus' default `scrape_timeout` (10s).
const DEFAULT_SCRAPE_TIMEOUT_MS: i64 = 10_000;
/// Prometheus' default `evaluation_interval` (1m).
const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 60_000;

/// A loaded `prometheus.yml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// The `global` section, with Prometheus' defaults filled in.
    pub global: GlobalConfig,
    /// The other top-level sections present in the file, by name (one of
    /// [`RAW_SECTIONS`]), as raw YAML.
    pub sections: BTreeMap<String, serde_yaml::Value>,
    /// `scrape_configs`, typed, validated and with defaults filled in (the raw
    /// YAML is also kept in [`Config::sections`]).
    pub scrape_configs: Vec<ScrapeConfig>,
    /// The file's text exactly as loaded (served by `/api/v1/status/config`).
    pub original: String,
    /// Where it was loaded from, if from a file.
    pub path: Option<PathBuf>,
}

/// The `global` section.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalConfig {
    /// How often to scrape targets by default (default 1m).
    pub scrape_interval: PromDuration,
    /// How long until a scrape times out (default 10s, or the interval when shorter;
    /// never longer than the interval).
    pub scrape_timeout: PromDuration,
    /// How often to evaluate rules (default 1m).
    pub evaluation_interval: PromDuration,
    /// Labels added to every series and alert leaving this server, sorted by name.
    pub external_labels: BTreeMap<String, String>,
    /// The other `global` keys Prometheus knows, as raw YAML, by name.
    pub other: BTreeMap<String, serde_yaml::Value>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            scrape_interval: PromDuration::from_millis(DEFAULT_SCRAPE_INTERVAL_MS),
            scrape_timeout: PromDuration::from_millis(DEFAULT_SCRAPE_TIMEOUT_MS),
            evaluation_interval: PromDuration::from_millis(DEFAULT_EVALUATION_INTERVAL_MS),
            external_labels: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    global: Option<RawGlobal>,
    runtime: Option<serde_yaml::Value>,
    alerting: Option<serde_yaml::Value>,
    rule_files: Option<serde_yaml::Value>,
    scrape_config_files: Option<serde_yaml::Value>,
    scrape_configs: Option<Vec<RawScrape>>,
    storage: Option<serde_yaml::Value>,
    tracing: Option<serde_yaml::Value>,
    remote_write: Option<serde_yaml::Value>,
    remote_read: Option<serde_yaml::Value>,
    otlp: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    scrape_interval: Option<PromDuration>,
    scrape_timeout: Option<PromDuration>,
    evaluation_interval: Option<PromDuration>,
    external_labels: Option<BTreeMap<String, String>>,
    // Known to Prometheus 3.5, not interpreted yet.
    scrape_protocols: Option<serde_yaml::Value>,
    rule_query_offset: Option<PromDuration>,
    query_log_file: Option<serde_yaml::Value>,
    scrape_failure_log_file: Option<serde_yaml::Value>,
    body_size_limit: Option<serde_yaml::Value>,
    sample_limit: Option<serde_yaml::Value>,
    target_limit: Option<serde_yaml::Value>,
    label_limit: Option<serde_yaml::Value>,
    label_name_length_limit: Option<serde_yaml::Value>,
    label_value_length_limit: Option<serde_yaml::Value>,
    keep_dropped_targets: Option<serde_yaml::Value>,
    metric_name_validation_scheme: Option<serde_yaml::Value>,
    metric_name_escaping_scheme: Option<serde_yaml::Value>,
    convert_classic_histograms_to_nhcb: Option<serde_yaml::Value>,
    always_scrape_classic_histograms: Option<serde_yaml::Value>,
}

impl Config {
    /// Reads and parses `path`.
    pub fn load_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Self::parse_with_path(&text, Some(path))?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses YAML text. An empty document gives the defaults.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_with_path(text, None)
    }

    /// Parses `text` as if loaded from `path` (relative paths resolve against its
    /// directory), without touching the file system.
    #[cfg(test)]
    pub(crate) fn load_file_text_for_test(text: &str, path: &str) -> Self {
        let p = Path::new(path);
        let mut c = Self::parse_with_path(text, Some(p)).expect("valid test config");
        c.path = Some(p.to_path_buf());
        c
    }

    fn parse_with_path(text: &str, path: Option<&Path>) -> Result<Self> {
        let yaml_err = |e: serde_yaml::Error| Error::Yaml {
            path: path.map(Path::to_path_buf),
            message: e.to_string(),
        };
        let invalid = |message: String| Error::Invalid {
            path: path.map(Path::to_path_buf),
            message,
        };
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            // A document of only comments or `null` is empty, as in Prometheus.
            let v: Option<RawConfig> = serde_yaml::from_str(text).map_err(yaml_err)?;
            v.unwrap_or_default()
        };
        let global = build_global(raw.global.unwrap_or_default()).map_err(invalid)?;
        let base = path.and_then(Path::parent);
        let scrape_configs =
            build_scrape_configs(raw.scrape_configs.unwrap_or_default(), &global, base)
                .map_err(invalid)?;
        let mut sections = BTreeMap::new();
        let raw_sections = [
            ("runtime", raw.runtime),
            ("alerting", raw.alerting),
            ("rule_files", raw.rule_files),
            ("scrape_config_files", raw.scrape_config_files),
            ("scrape_configs", raw_scrape_section(text)),
            ("storage", raw.storage),
            ("tracing", raw.tracing),
            ("remote_write", raw.remote_write),
            ("remote_read", raw.remote_read),
            ("otlp", raw.otlp),
        ];
        for (name, v) in raw_sections {
            if let Some(v) = v {
                sections.insert(name.to_owned(), v);
            }
        }
        Ok(Self {
            global,
            sections,
            scrape_configs,
            original: text.to_owned(),
            path: None,
        })
    }
}

/// The `scrape_configs` section as raw YAML, if present and not null (the typed
/// parse already succeeded, so this parse does too).
fn raw_scrape_section(text: &str) -> Option<serde_yaml::Value> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    doc.get("scrape_configs").filter(|v| !v.is_null()).cloned()
}

fn build_global(g: RawGlobal) -> std::result::Result<GlobalConfig, String> {
    let defaults = GlobalConfig::default();
    let external_labels = g.external_labels.unwrap_or_default();
    for name in external_labels.keys() {
        if name.is_empty() {
            return Err(format!("{name:?} is not a valid label name"));
        }
    }
    let scrape_interval = g
        .scrape_interval
        .filter(|d| d.as_millis() != 0)
        .unwrap_or(defaults.scrape_interval);
    let scrape_timeout = match g.scrape_timeout.filter(|d| d.as_millis() != 0) {
        Some(t) if t > scrape_interval => {
            return Err("global scrape timeout greater than scrape interval".into())
        }
        Some(t) => t,
        None => defaults.scrape_timeout.min(scrape_interval),
    };
    let evaluation_interval = g
        .evaluation_interval
        .filter(|d| d.as_millis() != 0)
        .unwrap_or(defaults.evaluation_interval);
    let mut other = BTreeMap::new();
    let known: [(&str, Option<serde_yaml::Value>); 15] = [
        ("scrape_protocols", g.scrape_protocols),
        (
            "rule_query_offset",
            g.rule_query_offset
                .map(|d| serde_yaml::Value::String(d.to_string())),
        ),
        ("query_log_file", g.query_log_file),
        ("scrape_failure_log_file", g.scrape_failure_log_file),
        ("body_size_limit", g.body_size_limit),
        ("sample_limit", g.sample_limit),
        ("target_limit", g.target_limit),
        ("label_limit", g.label_limit),
        ("label_name_length_limit", g.label_name_length_limit),
        ("label_value_length_limit", g.label_value_length_limit),
        ("keep_dropped_targets", g.keep_dropped_targets),
        (
            "metric_name_validation_scheme",
            g.metric_name_validation_scheme,
        ),
        ("metric_name_escaping_scheme", g.metric_name_escaping_scheme),
        (
            "convert_classic_histograms_to_nhcb",
            g.convert_classic_histograms_to_nhcb,
        ),
        (
            "always_scrape_classic_histograms",
            g.always_scrape_classic_histograms,
        ),
    ];
    for (k, v) in known {
        if let Some(v) = v {
            other.insert(k.to_owned(), v);
        }
    }
    Ok(GlobalConfig {
        scrape_interval,
        scrape_timeout,
        evaluation_interval,
        external_labels,
        other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_defaults() {
        for text in ["", "\n", "# only a comment\n", "null\n"] {
            let c = Config::parse(text).unwrap();
            assert_eq!(c.global, GlobalConfig::default(), "{text:?}");
            assert!(c.sections.is_empty());
            assert_eq!(c.original, text);
        }
        let g = GlobalConfig::default();
        assert_eq!(g.scrape_interval.to_string(), "1m");
        assert_eq!(g.scrape_timeout.to_string(), "10s");
        assert_eq!(g.evaluation_interval.to_string(), "1m");
    }

    #[test]
    fn parses_global() {
        let text = "global:\n  scrape_interval: 15s\n  scrape_timeout: 5s\n  \
                    evaluation_interval: 30s\n  external_labels:\n    cluster: eu1\n    \
                    replica: \"A\"\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.global.scrape_interval.as_millis(), 15_000);
        assert_eq!(c.global.scrape_timeout.as_millis(), 5_000);
        assert_eq!(c.global.evaluation_interval.as_millis(), 30_000);
        let labels: Vec<_> = c.global.external_labels.iter().collect();
        assert_eq!(
            labels,
            [
                (&"cluster".to_owned(), &"eu1".to_owned()),
                (&"replica".to_owned(), &"A".to_owned())
            ]
        );
        assert_eq!(c.original, text);
    }

    #[test]
    fn timeout_defaults_to_interval_when_shorter() {
        let c = Config::parse("global:\n  scrape_interval: 5s\n").unwrap();
        assert_eq!(c.global.scrape_timeout.as_millis(), 5_000);
        let c = Config::parse("global:\n  scrape_interval: 1h\n").unwrap();
        assert_eq!(c.global.scrape_timeout.as_millis(), 10_000);
        let c = Config::parse("global:\n").unwrap();
        assert_eq!(c.global, GlobalConfig::default());
    }

    #[test]
    fn timeout_longer_than_interval_is_an_error() {
        let e = Config::parse("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("global scrape timeout greater than scrape interval"),
            "{e}"
        );
    }

    #[test]
    fn unknown_global_key_names_key_and_line() {
        let e = Config::parse("global:\n  scrape_interval: 15s\n  scrape_intervall: 1m\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scrape_intervall"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let e = Config::parse("global: {}\nscrape_config:\n  - job_name: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scrape_config"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_duration_is_an_error_with_line() {
        let e = Config::parse("global:\n  scrape_interval: 15 seconds\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("15 seconds") && e.contains("line 2"), "{e}");
        let e = Config::parse("global:\n  evaluation_interval: 1.5m\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"unknown unit "." in duration "1.5m""#), "{e}");
    }

    #[test]
    fn other_sections_are_kept_raw() {
        let text = "global:\n  scrape_interval: 1h\n  query_log_file: q.log\n\
                    scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      \
                    - targets: ['localhost:9090']\nrule_files: ['a.yml']\nremote_write: []\n\
                    storage:\n  tsdb:\n    out_of_order_time_window: 10m\n";
        let c = Config::parse(text).unwrap();
        let names: Vec<&str> = c.sections.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["remote_write", "rule_files", "scrape_configs", "storage"]
        );
        assert_eq!(c.sections["scrape_configs"][0]["job_name"], "prometheus");
        assert_eq!(c.global.other["query_log_file"], "q.log");
        for s in RAW_SECTIONS {
            let doc = format!("{s}: null\n");
            assert!(Config::parse(&doc).is_ok(), "{s}");
        }
    }

    #[test]
    fn empty_label_name_is_rejected() {
        let e = Config::parse("global:\n  external_labels:\n    \"\": x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a valid label name"), "{e}");
    }

    #[test]
    fn load_file_keeps_text_and_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prometheus.yml");
        std::fs::write(&p, "global:\n  scrape_interval: 30s\n").unwrap();
        let c = Config::load_file(&p).unwrap();
        assert_eq!(c.original, "global:\n  scrape_interval: 30s\n");
        assert_eq!(c.path.as_deref(), Some(p.as_path()));
        std::fs::write(&p, "bogus: 1\n").unwrap();
        let e = Config::load_file(&p).unwrap_err().to_string();
        assert!(e.contains("prometheus.yml") && e.contains("bogus"), "{e}");
        let e = Config::load_file(&dir.path().join("missing.yml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.yml"), "{e}");
    }
}
