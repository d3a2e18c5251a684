//! Turning one scrape's body into appended samples (mirrors Prometheus
//! `scrapeLoop.append` and `scrapeCache`).
//!
//! The cache maps each series line as written (`Series::raw`) to its final label
//! set (after `le`/`quantile` normalisation, target labels and metric relabeling),
//! so a steady-state scrape parses without allocating per sample: a hit is a hash
//! lookup by `&str` and an `Arc` clone. It also remembers which series the last
//! scrape produced, to write staleness markers for those that vanish.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use strata_model::gofmt::format_g;
use strata_model::relabel::{relabel, RelabelConfig};
use strata_model::textparse::{Entry, Format, MetricType, Parser, Series};
use strata_model::{Label, Labels, LabelsBuilder, METRIC_NAME, STALE_NAN_BITS};
use strata_storage::{AppendError, Appender};

use crate::error::ScrapeError;
use crate::target::MetricMetadata;

/// Samples whose explicit timestamp is further than this ahead of the scrape time
/// are dropped (Prometheus would store them and block the series; we do not).
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

/// How scraped series are turned into stored series.
#[derive(Clone, Debug, Default)]
pub struct ScrapeOptions {
    /// The target's labels (without `__*`), added to every series.
    pub target_labels: Labels,
    /// Scraped labels win over target labels (else they are renamed `exported_*`).
    pub honor_labels: bool,
    /// Use timestamps from the exposition.
    pub honor_timestamps: bool,
    /// Also write staleness markers for series with explicit timestamps.
    pub track_timestamps_staleness: bool,
    /// `metric_relabel_configs`.
    pub metric_relabel: Arc<[RelabelConfig]>,
    /// Most samples per scrape after relabeling; 0 = none.
    pub sample_limit: u64,
    /// Most labels per series; 0 = none.
    pub label_limit: u64,
    /// Longest label name; 0 = none.
    pub label_name_length_limit: u64,
    /// Longest label value; 0 = none.
    pub label_value_length_limit: u64,
}

/// What one scrape appended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Sample lines in the exposition (`scrape_samples_scraped`).
    pub scraped: u64,
    /// Samples left after metric relabeling
    /// (`scrape_samples_post_metric_relabeling`).
    pub post_relabel: u64,
    /// Series not in the previous scrape (`scrape_series_added`).
    pub series_added: u64,
    /// Repeated series within the scrape (the first one is kept).
    pub duplicates: u64,
    /// Samples with timestamps more than [`MAX_FUTURE_MS`] ahead, dropped.
    pub too_far_in_future: u64,
    /// Samples the storage rejected as out of order.
    pub out_of_order: u64,
    /// Samples the storage rejected as too old.
    pub out_of_bounds: u64,
    /// Samples the storage rejected as duplicates with another value.
    pub duplicate_timestamps: u64,
    /// Staleness markers written for vanished series.
    pub stale_markers: u64,
}

impl AppendStats {
    /// A warning for `lastError` when samples were dropped, `None` if none were.
    pub fn warning(&self) -> Option<String> {
        let parts: Vec<String> = [
            (self.duplicates, "duplicate series"),
            (self.too_far_in_future, "too far in the future"),
            (self.out_of_order, "out of order"),
            (self.out_of_bounds, "out of bounds (too old)"),
            (self.duplicate_timestamps, "duplicate sample for timestamp"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        (!parts.is_empty()).then(|| format!("samples dropped: {}", parts.join(", ")))
    }
}

#[derive(Debug)]
struct CacheEntry {
    /// `None` when metric relabeling dropped the series; else the labels and
    /// their [`Labels::stable_hash`].
    labels: Option<(Labels, u64)>,
    last_iter: u64,
}

/// A hasher for keys that already are good 64-bit hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Series of one scrape by label hash: the labels, and whether they take part
/// in staleness.
type SeriesSet = HashMap<u64, (Labels, bool), BuildHasherDefault<IdentityHasher>>;

/// Per-target state carried from one scrape to the next.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    series: HashMap<Box<str>, CacheEntry>,
    /// Series of the current and the previous scrape.
    cur: SeriesSet,
    prev: SeriesSet,
    metadata: HashMap<String, MetricMetadata>,
    iter: u64,
    family: String,
    family_type: Option<MetricType>,
}

impl ScrapeCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Metadata (TYPE/HELP/UNIT) seen so far, by metric family.
    pub fn metadata(&self) -> &HashMap<String, MetricMetadata> {
        &self.metadata
    }

    /// Number of distinct series lines cached.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Parses `body` in `format` and appends its samples at `ts` (Unix ms) to
    /// `app`, then staleness markers for series of the previous scrape that are
    /// gone. On error nothing is committed by the caller, who should roll back
    /// and call [`ScrapeCache::append_failed`]; the previous scrape's series stay
    /// remembered until then.
    pub fn append(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        ts: i64,
        opts: &ScrapeOptions,
    ) -> Result<AppendStats, ScrapeError> {
        self.iter += 1;
        self.cur.clear();
        self.family.clear();
        self.family_type = None;
        let mut stats = AppendStats::default();
        let mut parser = Parser::new(body, format);
        let mut limit_exceeded = false;
        loop {
            let entry = parser
                .next()
                .map_err(|e| ScrapeError::Parse(e.to_string()))?;
            let Some(entry) = entry else { break };
            match entry {
                Entry::Series(s) => {
                    stats.scraped += 1;
                    let Some((labels, hash)) = self.lookup(&s, opts)? else {
                        continue;
                    };
                    stats.post_relabel += 1;
                    if opts.sample_limit > 0 && stats.post_relabel > opts.sample_limit {
                        limit_exceeded = true;
                    }
                    if limit_exceeded {
                        continue;
                    }
                    let explicit_ts = s.timestamp_ms.filter(|_| opts.honor_timestamps);
                    let t = explicit_ts.unwrap_or(ts);
                    if t > ts.saturating_add(MAX_FUTURE_MS) {
                        stats.too_far_in_future += 1;
                        continue;
                    }
                    let track = explicit_ts.is_none() || opts.track_timestamps_staleness;
                    if self.cur.contains_key(&hash) {
                        stats.duplicates += 1;
                        continue;
                    }
                    if !self.prev.contains_key(&hash) {
                        stats.series_added += 1;
                    }
                    append_one(app, &labels, t, s.value, &mut stats)?;
                    self.cur.insert(hash, (labels, track));
                }
                Entry::Type {
                    metric_family,
                    metric_type,
                } => {
                    self.family.clear();
                    self.family.push_str(metric_family);
                    self.family_type = Some(metric_type);
                    self.meta_entry(metric_family).metric_type = metric_type;
                }
                Entry::Help {
                    metric_family,
                    help,
                } => {
                    let m = self.meta_entry(metric_family);
                    if m.help != help {
                        m.help = help.to_owned();
                    }
                }
                Entry::Unit {
                    metric_family,
                    unit,
                } => {
                    let m = self.meta_entry(metric_family);
                    if m.unit != unit {
                        m.unit = unit.to_owned();
                    }
                }
                Entry::Comment(_) => {}
            }
        }
        if limit_exceeded {
            return Err(ScrapeError::SampleLimit {
                samples: stats.post_relabel,
                limit: opts.sample_limit,
            });
        }
        // Series of the last scrape that are gone get a staleness marker.
        let stale = f64::from_bits(STALE_NAN_BITS);
        for (h, (l, track)) in &self.prev {
            if *track && !self.cur.contains_key(h) {
                append_one(app, l, ts, stale, &mut stats)?;
                stats.stale_markers += 1;
            }
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.cur.clear();
        // Forget lines not seen lately once the cache has grown well past the
        // scrape's size (label churn), as Prometheus' cache does.
        if self.series.len() > 2 * (stats.scraped as usize).max(64) {
            let iter = self.iter;
            self.series.retain(|_, e| e.last_iter == iter);
        }
        Ok(stats)
    }

    /// After a failed scrape: staleness markers at `ts` for every series of the
    /// previous scrape, which is then forgotten. Returns how many were written.
    pub fn append_failed(&mut self, app: &mut dyn Appender, ts: i64) -> Result<u64, ScrapeError> {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut stats = AppendStats::default();
        let mut n = 0;
        for (_, (l, track)) in self.prev.drain() {
            if track {
                append_one(app, &l, ts, stale, &mut stats)?;
                n += 1;
            }
        }
        self.cur.clear();
        Ok(n)
    }

    fn meta_entry(&mut self, family: &str) -> &mut MetricMetadata {
        if !self.metadata.contains_key(family) {
            self.metadata.insert(
                family.to_owned(),
                MetricMetadata {
                    metric_type: MetricType::Unknown,
                    help: String::new(),
                    unit: String::new(),
                },
            );
        }
        self.metadata.get_mut(family).expect("inserted just above")
    }

    /// The final labels of a series line, from the cache or built and cached.
    fn lookup(
        &mut self,
        s: &Series<'_, '_>,
        opts: &ScrapeOptions,
    ) -> Result<Option<(Labels, u64)>, ScrapeError> {
        if let Some(e) = self.series.get_mut(s.raw) {
            e.last_iter = self.iter;
            return Ok(e.labels.clone());
        }
        let labels = build_labels(s, self.family_type, opts)?.map(|l| {
            let h = l.stable_hash();
            (l, h)
        });
        self.series.insert(
            s.raw.into(),
            CacheEntry {
                labels: labels.clone(),
                last_iter: self.iter,
            },
        );
        Ok(labels)
    }
}

fn append_one(
    app: &mut dyn Appender,
    labels: &Labels,
    t: i64,
    v: f64,
    stats: &mut AppendStats,
) -> Result<(), ScrapeError> {
    match app.append(labels, t, v) {
        Ok(()) => Ok(()),
        Err(AppendError::OutOfOrder) => {
            stats.out_of_order += 1;
            Ok(())
        }
        Err(AppendError::OutOfBounds) => {
            stats.out_of_bounds += 1;
            Ok(())
        }
        Err(AppendError::DuplicateTimestamp) => {
            stats.duplicate_timestamps += 1;
            Ok(())
        }
        Err(AppendError::InvalidLabels(m)) => {
            Err(ScrapeError::Parse(format!("invalid labels {labels}: {m}")))
        }
        Err(AppendError::Storage(m)) => Err(ScrapeError::Storage(m)),
    }
}

/// Prometheus 3.x `normalizeFloatsInLabelValues`: `le` of histograms and
/// `quantile` of summaries in OpenMetrics' canonical float form (`1` → `1.0`).
fn normalize_float_label(ty: Option<MetricType>, name: &str, value: &str) -> Option<String> {
    let applies = (ty == Some(MetricType::Summary) && name == "quantile")
        || (ty == Some(MetricType::Histogram) && name == "le");
    if !applies {
        return None;
    }
    let f: f64 = parse_go_float(value)?;
    let s = format_openmetrics_float(f);
    (s != value).then_some(s)
}

fn parse_go_float(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// OpenMetrics canonical float: Go `%g` with `.0` added when it has neither a
/// dot nor an exponent.
pub(crate) fn format_openmetrics_float(f: f64) -> String {
    if f == 1.0 {
        return "1.0".into();
    }
    if f == 0.0 {
        return "0.0".into();
    }
    if f == -1.0 {
        return "-1.0".into();
    }
    let mut s = format_g(f);
    if f.is_finite() && !s.contains(['.', 'e', 'E']) {
        s.push_str(".0");
    }
    s
}

/// Labels of a scraped series: normalised, merged with the target labels,
/// relabeled and checked against the label limits. `None` = dropped.
fn build_labels(
    s: &Series<'_, '_>,
    ty: Option<MetricType>,
    opts: &ScrapeOptions,
) -> Result<Option<Labels>, ScrapeError> {
    let mut v: Vec<Label> = Vec::with_capacity(s.labels.len() + opts.target_labels.len() + 1);
    v.push(Label::new(METRIC_NAME, s.metric_name));
    for (n, val) in s.labels.iter() {
        let val = match normalize_float_label(ty, n, val) {
            Some(norm) => norm,
            None => val.to_owned(),
        };
        v.push(Label::new(n, val));
    }
    let scraped = Labels::from_vec(v);
    let mut b: LabelsBuilder = scraped.builder();
    if opts.honor_labels {
        for l in opts.target_labels.iter() {
            if !scraped.has(&l.name) {
                b.set(l.name.clone(), l.value.clone());
            }
        }
    } else {
        let mut conflicts: Vec<&Label> = Vec::new();
        for l in opts.target_labels.iter() {
            if let Some(existing) = scraped.as_slice().iter().find(|x| x.name == l.name) {
                conflicts.push(existing);
            }
            b.set(l.name.clone(), l.value.clone());
        }
        conflicts.sort_by_key(|l| l.name.len());
        for l in conflicts {
            let mut name = l.name.clone();
            loop {
                name = format!("exported_{name}");
                if b.get(&name).is_none_or(str::is_empty) {
                    b.set(name, l.value.clone());
                    break;
                }
            }
        }
    }
    let merged = b.build();
    let Some(out) = relabel(&merged, &opts.metric_relabel) else {
        return Ok(None);
    };
    if !out.has(METRIC_NAME) {
        return Err(ScrapeError::NoMetricName(merged.to_string()));
    }
    check_limits(&out, opts)?;
    Ok(Some(out))
}

fn check_limits(l: &Labels, opts: &ScrapeOptions) -> Result<(), ScrapeError> {
    let met = truncate(l.metric_name().unwrap_or_default(), 50);
    if opts.label_limit > 0 && l.len() as u64 > opts.label_limit {
        return Err(ScrapeError::LabelLimit(format!(
            "label_limit exceeded (metric: {met}, number of labels: {}, limit: {})",
            l.len(),
            opts.label_limit
        )));
    }
    for x in l.iter() {
        let n = x.name.chars().count() as u64;
        if opts.label_name_length_limit > 0 && n > opts.label_name_length_limit {
            return Err(ScrapeError::LabelLimit(format!(
                "label_name_length_limit exceeded (metric: {met}, label name: {}, length: {n}, limit: {})",
                truncate(&x.name, 50),
                opts.label_name_length_limit
            )));
        }
        let n = x.value.chars().count() as u64;
        if opts.label_value_length_limit > 0 && n > opts.label_value_length_limit {
            return Err(ScrapeError::LabelLimit(format!(
                "label_value_length_limit exceeded (metric: {met}, label name: {}, value: {:?}, length: {n}, limit: {})",
                truncate(&x.name, 50),
                truncate(&x.value, 50),
                opts.label_value_length_limit
            )));
        }
    }
    Ok(())
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The five synthetic series' names, in the order they are written.
pub(crate) const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The label sets of the synthetic series for a target.
pub(crate) fn report_labels(target_labels: &Labels) -> [Labels; 5] {
    REPORT_NAMES.map(|name| {
        let mut b = target_labels.builder();
        b.set(METRIC_NAME, name);
        b.build()
    })
}

#[cfg(test)]
mod tests;
