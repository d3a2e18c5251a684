//! `scrape_configs` (mirrors Prometheus `config.ScrapeConfig`, `discovery/file`,
//! `model/relabel.Config` and the `prometheus/common/config` HTTP client keys),
//! parsed strictly into typed structs with Prometheus' defaults.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use strata_model::relabel::{Action, Regex, RelabelConfig};

use crate::duration::PromDuration;
use crate::prometheus::GlobalConfig;

/// Default `file_sd_configs[].refresh_interval` (5m).
const DEFAULT_FILE_SD_REFRESH_MS: i64 = 5 * 60 * 1000;

/// One `scrape_configs` entry with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// The job name (required, unique); the default `job` label.
    pub job_name: String,
    /// Whether scraped labels win over target labels (default false).
    pub honor_labels: bool,
    /// Whether timestamps in the exposition are used (default true).
    pub honor_timestamps: bool,
    /// Whether explicit-timestamp series get staleness markers (default false).
    pub track_timestamps_staleness: bool,
    /// URL query parameters.
    pub params: BTreeMap<String, Vec<String>>,
    /// How often to scrape (default: global).
    pub scrape_interval: PromDuration,
    /// Per-scrape timeout (default: global, at most the interval).
    pub scrape_timeout: PromDuration,
    /// Exposition protocols in order of preference, Prometheus' names
    /// (default `OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0,
    /// PrometheusText0.0.4`).
    pub scrape_protocols: Vec<String>,
    /// Protocol to assume when the Content-Type is missing or unknown.
    pub fallback_scrape_protocol: Option<String>,
    /// Path of the metrics endpoint (default `/metrics`).
    pub metrics_path: String,
    /// `http` (default) or `https`.
    pub scheme: String,
    /// Whether to ask for gzip (default true).
    pub enable_compression: bool,
    /// Largest uncompressed body accepted, bytes; 0 = no limit.
    pub body_size_limit: u64,
    /// Most samples accepted per scrape after metric relabeling; 0 = no limit.
    pub sample_limit: u64,
    /// Most targets after relabeling; 0 = no limit.
    pub target_limit: u64,
    /// Most labels per sample; 0 = no limit.
    pub label_limit: u64,
    /// Longest label name; 0 = no limit.
    pub label_name_length_limit: u64,
    /// Longest label value; 0 = no limit.
    pub label_value_length_limit: u64,
    /// HTTP client settings.
    pub http: HttpClientConfig,
    /// Targets listed in the file.
    pub static_configs: Vec<StaticConfig>,
    /// Files of targets, re-read periodically.
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Target relabeling.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Sample relabeling.
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// The inline HTTP client keys of a scrape config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpClientConfig {
    /// `basic_auth`.
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`.
    pub authorization: Option<Authorization>,
    /// `tls_config`.
    pub tls_config: TlsConfig,
    /// `follow_redirects` (default true).
    pub follow_redirects: bool,
    /// `proxy_url`, if any.
    pub proxy_url: Option<String>,
}

/// `basic_auth`.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password, if given inline.
    pub password: Option<String>,
    /// A file holding the password (path resolved against the config file).
    pub password_file: Option<PathBuf>,
}

/// `authorization`.
#[derive(Clone, Debug, PartialEq)]
pub struct Authorization {
    /// The scheme (default `Bearer`).
    pub auth_type: String,
    /// The credentials, if given inline.
    pub credentials: Option<String>,
    /// A file holding the credentials.
    pub credentials_file: Option<PathBuf>,
}

/// `tls_config`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsConfig {
    /// CA certificate file (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate file (PEM).
    pub cert_file: Option<PathBuf>,
    /// Client key file (PEM).
    pub key_file: Option<PathBuf>,
    /// Server name to verify (SNI).
    pub server_name: Option<String>,
    /// Skip verifying the server certificate.
    pub insecure_skip_verify: bool,
}

/// A `static_configs` entry: a target group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to every target of the group.
    pub labels: BTreeMap<String, String>,
}

/// A `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSdConfig {
    /// File globs (`*.json`, `*.yml`, `*.yaml`), resolved against the config file.
    pub files: Vec<PathBuf>,
    /// How often to re-read the files (default 5m).
    pub refresh_interval: PromDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScrape {
    job_name: Option<String>,
    honor_labels: Option<bool>,
    honor_timestamps: Option<bool>,
    track_timestamps_staleness: Option<bool>,
    params: Option<BTreeMap<String, Vec<String>>>,
    scrape_interval: Option<PromDuration>,
    scrape_timeout: Option<PromDuration>,
    scrape_protocols: Option<Vec<String>>,
    fallback_scrape_protocol: Option<String>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    enable_compression: Option<bool>,
    body_size_limit: Option<serde_yaml::Value>,
    sample_limit: Option<u64>,
    target_limit: Option<u64>,
    label_limit: Option<u64>,
    label_name_length_limit: Option<u64>,
    label_value_length_limit: Option<u64>,
    basic_auth: Option<RawBasicAuth>,
    authorization: Option<RawAuthorization>,
    tls_config: Option<RawTls>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
    proxy_url: Option<String>,
    static_configs: Option<Vec<RawStatic>>,
    file_sd_configs: Option<Vec<RawFileSd>>,
    relabel_configs: Option<Vec<RawRelabel>>,
    metric_relabel_configs: Option<Vec<RawRelabel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(rename = "type")]
    auth_type: Option<String>,
    credentials: Option<String>,
    credentials_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    targets: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSd {
    files: Option<Vec<String>>,
    refresh_interval: Option<PromDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabel {
    source_labels: Option<Vec<String>>,
    separator: Option<String>,
    regex: Option<String>,
    modulus: Option<u64>,
    target_label: Option<String>,
    replacement: Option<String>,
    action: Option<String>,
}

/// Limits inherited from `global` (unset there means 0 = none).
#[derive(Clone, Copy, Default)]
struct GlobalLimits {
    body_size_limit: u64,
    sample_limit: u64,
    target_limit: u64,
    label_limit: u64,
    label_name_length_limit: u64,
    label_value_length_limit: u64,
}

fn global_limits(g: &GlobalConfig) -> Result<GlobalLimits, String> {
    let num = |k: &str| -> Result<u64, String> {
        match g.other.get(k) {
            None | Some(serde_yaml::Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("global {k}: {v:?} is not a non-negative integer")),
        }
    };
    Ok(GlobalLimits {
        body_size_limit: match g.other.get("body_size_limit") {
            None | Some(serde_yaml::Value::Null) => 0,
            Some(v) => parse_size(v).map_err(|e| format!("global body_size_limit: {e}"))?,
        },
        sample_limit: num("sample_limit")?,
        target_limit: num("target_limit")?,
        label_limit: num("label_limit")?,
        label_name_length_limit: num("label_name_length_limit")?,
        label_value_length_limit: num("label_value_length_limit")?,
    })
}

/// Parses a byte size like `units.ParseBase2Bytes`: `512`, `10KB`, `10KiB`, `1MB`
/// (all base 2), `0`.
pub fn parse_size(v: &serde_yaml::Value) -> Result<u64, String> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or_else(|| format!("{v:?} is not a byte size"))?;
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a byte size"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        "PB" | "PiB" => 1 << 50,
        _ => return Err(format!("{s:?} has an unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Resolves `p` against the config file's directory, as Prometheus does.
fn resolve(base: Option<&Path>, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    match base {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

/// Builds typed scrape configs from the raw list. `base` is the config file's
/// directory. Errors name the job.
pub(crate) fn build_scrape_configs(
    raw: Vec<RawScrape>,
    global: &GlobalConfig,
    base: Option<&Path>,
) -> Result<Vec<ScrapeConfig>, String> {
    let limits = global_limits(global)?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let sc = build_one(r, global, limits, base)?;
        if !seen.insert(sc.job_name.clone()) {
            return Err(format!(
                "found multiple scrape configs with job name {:?}",
                sc.job_name
            ));
        }
        out.push(sc);
    }
    Ok(out)
}

fn build_one(
    r: RawScrape,
    global: &GlobalConfig,
    limits: GlobalLimits,
    base: Option<&Path>,
) -> Result<ScrapeConfig, String> {
    let job_name = match r.job_name {
        Some(j) if !j.is_empty() => j,
        _ => return Err("job_name is empty".into()),
    };
    let job = job_name.as_str();
    let err = |m: String| format!("scrape config {job:?}: {m}");
    let scrape_interval = r
        .scrape_interval
        .filter(|d| d.as_millis() != 0)
        .unwrap_or(global.scrape_interval);
    let scrape_timeout = match r.scrape_timeout.filter(|d| d.as_millis() != 0) {
        Some(t) => t,
        None => global.scrape_timeout.min(scrape_interval),
    };
    if scrape_timeout > scrape_interval {
        return Err(format!(
            "scrape timeout greater than scrape interval for scrape config with job name {job:?}"
        ));
    }
    let scheme = r.scheme.unwrap_or_else(|| "http".into());
    if scheme != "http" && scheme != "https" {
        return Err(err(format!(
            "invalid scheme {scheme:?}: must be http or https"
        )));
    }
    let metrics_path = r.metrics_path.unwrap_or_else(|| "/metrics".into());
    let scrape_protocols = match r.scrape_protocols {
        Some(p) => p,
        None => match global.other.get("scrape_protocols") {
            Some(v) => serde_yaml::from_value(v.clone())
                .map_err(|e| format!("global scrape_protocols: {e}"))?,
            None => DEFAULT_SCRAPE_PROTOCOLS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        },
    };
    for p in scrape_protocols
        .iter()
        .chain(r.fallback_scrape_protocol.iter())
    {
        if !KNOWN_SCRAPE_PROTOCOLS.contains(&p.as_str()) {
            return Err(err(format!("unknown scrape protocol {p:?}")));
        }
    }
    let body_size_limit = match r.body_size_limit {
        Some(v) => parse_size(&v).map_err(|e| err(format!("body_size_limit: {e}")))?,
        None => limits.body_size_limit,
    };
    let pick = |v: Option<u64>, g: u64| v.unwrap_or(g);
    let _ = r.enable_http2;
    let http = HttpClientConfig {
        basic_auth: match r.basic_auth {
            None => None,
            Some(b) => {
                if b.password.is_some() && b.password_file.is_some() {
                    return Err(err(
                        "at most one of basic_auth password & password_file must be configured"
                            .into(),
                    ));
                }
                Some(BasicAuth {
                    username: b.username.unwrap_or_default(),
                    password: b.password,
                    password_file: b.password_file.map(|p| resolve(base, &p)),
                })
            }
        },
        authorization: match r.authorization {
            None => None,
            Some(a) => {
                if a.credentials.is_some() && a.credentials_file.is_some() {
                    return Err(err(
                        "at most one of authorization credentials & credentials_file must be configured"
                            .into(),
                    ));
                }
                let auth_type = a.auth_type.unwrap_or_else(|| "Bearer".into());
                if auth_type.eq_ignore_ascii_case("basic") {
                    return Err(err(
                        "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                            .into(),
                    ));
                }
                Some(Authorization {
                    auth_type,
                    credentials: a.credentials,
                    credentials_file: a.credentials_file.map(|p| resolve(base, &p)),
                })
            }
        },
        tls_config: match r.tls_config {
            None => TlsConfig::default(),
            Some(t) => {
                let _ = (t.min_version, t.max_version);
                if t.cert_file.is_some() != t.key_file.is_some() {
                    return Err(err(
                        "tls_config: cert_file and key_file must be configured together".into(),
                    ));
                }
                TlsConfig {
                    ca_file: t.ca_file.map(|p| resolve(base, &p)),
                    cert_file: t.cert_file.map(|p| resolve(base, &p)),
                    key_file: t.key_file.map(|p| resolve(base, &p)),
                    server_name: t.server_name,
                    insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
                }
            }
        },
        follow_redirects: r.follow_redirects.unwrap_or(true),
        proxy_url: r.proxy_url,
    };
    if http.basic_auth.is_some() && http.authorization.is_some() {
        return Err(err(
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                .into(),
        ));
    }
    let static_configs = r
        .static_configs
        .unwrap_or_default()
        .into_iter()
        .map(|s| StaticConfig {
            targets: s.targets.unwrap_or_default(),
            labels: s.labels.unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    for s in &static_configs {
        for t in &s.targets {
            if t.contains('/') {
                return Err(err(format!(
                    "{t:?} is not a valid hostname: targets are host:port, without scheme or path"
                )));
            }
        }
    }
    let mut file_sd_configs = Vec::new();
    for f in r.file_sd_configs.unwrap_or_default() {
        let files = f.files.unwrap_or_default();
        for p in &files {
            let ok = [".json", ".yml", ".yaml"]
                .iter()
                .any(|ext| p.ends_with(ext));
            if !ok {
                return Err(err(format!(
                    "path name {p:?} is not valid for file discovery"
                )));
            }
        }
        file_sd_configs.push(FileSdConfig {
            files: files.iter().map(|p| resolve(base, p)).collect(),
            refresh_interval: f
                .refresh_interval
                .unwrap_or(PromDuration::from_millis(DEFAULT_FILE_SD_REFRESH_MS)),
        });
    }
    let relabel_configs = build_relabels(r.relabel_configs).map_err(&err)?;
    let metric_relabel_configs = build_relabels(r.metric_relabel_configs).map_err(&err)?;
    Ok(ScrapeConfig {
        honor_labels: r.honor_labels.unwrap_or(false),
        honor_timestamps: r.honor_timestamps.unwrap_or(true),
        track_timestamps_staleness: r.track_timestamps_staleness.unwrap_or(false),
        params: r.params.unwrap_or_default(),
        scrape_interval,
        scrape_timeout,
        scrape_protocols,
        fallback_scrape_protocol: r.fallback_scrape_protocol,
        metrics_path,
        scheme,
        enable_compression: r.enable_compression.unwrap_or(true),
        body_size_limit,
        sample_limit: pick(r.sample_limit, limits.sample_limit),
        target_limit: pick(r.target_limit, limits.target_limit),
        label_limit: pick(r.label_limit, limits.label_limit),
        label_name_length_limit: pick(r.label_name_length_limit, limits.label_name_length_limit),
        label_value_length_limit: pick(r.label_value_length_limit, limits.label_value_length_limit),
        http,
        static_configs,
        file_sd_configs,
        relabel_configs,
        metric_relabel_configs,
        job_name,
    })
}

/// Prometheus 3.x default `scrape_protocols`.
pub const DEFAULT_SCRAPE_PROTOCOLS: [&str; 4] = [
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];

/// Every protocol name Prometheus knows.
pub const KNOWN_SCRAPE_PROTOCOLS: [&str; 5] = [
    "PrometheusProto",
    "PrometheusText0.0.4",
    "PrometheusText1.0.0",
    "OpenMetricsText0.0.1",
    "OpenMetricsText1.0.0",
];

/// Parses a YAML list of Prometheus relabel configs (the form of
/// `relabel_configs:` entries, e.g. Thanos' `--selector.relabel-config`),
/// strictly: an unknown key or a bad regex/action is an error naming it. An
/// empty document is an empty list.
pub fn parse_relabel_configs(text: &str) -> crate::Result<Vec<RelabelConfig>> {
    let raw: Option<Vec<RawRelabel>> =
        serde_yaml::from_str(text).map_err(|e| crate::Error::Yaml {
            path: None,
            message: e.to_string(),
        })?;
    build_relabels(raw).map_err(|message| crate::Error::Invalid {
        path: None,
        message: format!("relabel config: {message}"),
    })
}

fn build_relabels(raw: Option<Vec<RawRelabel>>) -> Result<Vec<RelabelConfig>, String> {
    let mut out = Vec::new();
    for r in raw.unwrap_or_default() {
        let action: Action = match r.action {
            Some(a) => a.parse()?,
            None => Action::Replace,
        };
        let defaults = RelabelConfig::default();
        let rc = RelabelConfig {
            source_labels: r.source_labels.unwrap_or_default(),
            separator: r.separator.unwrap_or(defaults.separator),
            regex: match r.regex {
                Some(s) => Regex::new(&s)?,
                None => defaults.regex,
            },
            modulus: r.modulus.unwrap_or(0),
            target_label: r.target_label.unwrap_or_default(),
            replacement: r.replacement.unwrap_or(defaults.replacement),
            action,
        };
        rc.validate()?;
        out.push(rc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
