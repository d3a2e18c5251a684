//! A deterministic OpenMetrics generator for compatibility tests.
//!
//! [`generate`] writes scrapes of a few made-up instances in the form that
//! `promtool tsdb create-blocks-from openmetrics` (Prometheus 2.42) accepts:
//! family by family, each family's lines contiguous, each series' samples in
//! time order, `# TYPE`/`# UNIT`/`# HELP` lines, and `# EOF` at the end. It
//! follows `shared/fixtures/backfill-6h/gen_openmetrics.py` and covers the same
//! awkward cases, with the size and time range as options:
//!
//! - counters with resets (an instance restart and random resets), a float
//!   counter in steps of 1/16, a classic histogram and a summary;
//! - gauges with `NaN`, `+Inf`, `-Inf`, `-0`, subnormal and huge values, some
//!   written in exponent notation;
//! - gaps (missed scrapes, an outage), series that appear late, end early or
//!   come and go, and bulk series split across the range;
//! - label values that are long (> 200 characters), unicode, or hold escaped
//!   `"`, `\` and newlines, a raw tab and non-printable characters (which Go's
//!   `strconv.Quote` escapes in `promtool tsdb dump`).
//!
//! **Timestamps are multiples of 0.125 s written as decimal seconds**
//! (`1704067205.125`), so every parser, whether it computes
//! `int64(seconds*1000)` like Go or parses digits, gets the same millisecond.
//! The same [`Options`] always give the same bytes (seeded [`StdRng`]).

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What [`generate`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Time of the first scrape (of the first instance, always on time), Unix
    /// seconds; `0` backfills at the epoch.
    pub start_secs: i64,
    /// Length of the range in seconds: scrape `i` is at
    /// `start + i*step (+ phase, jitter)` for every `i*step < duration`.
    pub duration_secs: i64,
    /// Scrape interval in ms: a multiple of 125, at least 1000.
    pub step_ms: i64,
    /// Number of series of the bulk counter `requests_total` (the knob for
    /// "many series"); the other families add about 120 more.
    pub series: usize,
    /// Seed of the random walk; same seed, same output.
    pub seed: u64,
}

impl Default for Options {
    /// Three hours (two 2h blocks) of 15 s scrapes from 2024-01-01T00:00:00Z,
    /// with 40 bulk series.
    fn default() -> Self {
        Self {
            start_secs: 1_704_067_200,
            duration_secs: 3 * 3600,
            step_ms: 15_000,
            series: 40,
            seed: 1,
        }
    }
}

/// Instances, each scraped on its own timeline.
const INSTANCES: [&str; 4] = ["host-a:9100", "host-b:9100", "host-c:9100", "host-d:9100"];
const LOCATIONS: [&str; 4] = ["Zürich", "東京", "São Paulo", "Москва"];
const BUCKETS: [&str; 6] = ["0.05", "0.1", "0.5", "1.0", "5.0", "+Inf"];

/// OpenMetrics text for `opts`, ending in `# EOF\n`.
///
/// Every non-comment line is one sample; [`sample_lines`] counts them and
/// [`samples`] reads them back.
///
/// # Panics
///
/// If `step_ms` is not a multiple of 125 or is below 1000, or if `start_secs`
/// or `duration_secs` is negative.
pub fn generate(opts: &Options) -> String {
    assert!(
        opts.step_ms >= 1000 && opts.step_ms % 125 == 0,
        "step_ms must be a multiple of 125, >= 1000"
    );
    assert!(
        opts.start_secs >= 0 && opts.duration_secs >= 0,
        "start and duration must not be negative"
    );
    let mut g = Gen::new(opts);
    g.up();
    g.requests();
    g.cpu_seconds();
    g.temperature();
    g.memory();
    g.special_values();
    g.build_info();
    g.maintenance_notice();
    g.batch_job();
    g.feature_flags();
    g.histogram();
    g.summary();
    g.out.push_str("# EOF\n");
    g.out
}

/// Number of sample lines (lines that are not `#` comments) in `text`.
///
/// For [`generate`]'s output this is the number of samples that a correct
/// backfill stores, and the number of lines `promtool tsdb dump` prints.
pub fn sample_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// One sample line of [`generate`]'s output, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name and labels exactly as written, e.g. `up{instance="host-a:9100",job="node"}`.
    /// OpenMetrics escapes label values as PromQL strings do, so this is also
    /// a PromQL selector for exactly this series.
    pub series: String,
    /// Metric name.
    pub name: String,
    /// Value (may be NaN or infinite).
    pub value: f64,
    /// Timestamp in ms since the epoch.
    pub timestamp_ms: i64,
}

/// The samples of [`generate`]'s output, in file order.
///
/// A reader for the generator's own lines (`<series> <value> <seconds>`), not
/// a general OpenMetrics parser.
///
/// # Panics
///
/// On a line that is not in that form.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut parts = line.rsplitn(3, ' ');
            let (ts, value, series) = match (parts.next(), parts.next(), parts.next()) {
                (Some(t), Some(v), Some(s)) => (t, v, s),
                _ => panic!("not a generated sample line: {line:?}"),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}")),
            };
            let name = series.split('{').next().unwrap_or(series).to_owned();
            Sample {
                series: series.to_owned(),
                name,
                value,
                timestamp_ms: parse_ts_ms(ts),
            }
        })
        .collect()
}

/// Decimal seconds with up to three fractional digits to exact milliseconds.
fn parse_ts_ms(ts: &str) -> i64 {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    assert!(
        frac.len() <= 3,
        "timestamp {ts:?} has sub-millisecond digits"
    );
    let secs: i64 = secs
        .parse()
        .unwrap_or_else(|e| panic!("bad timestamp {ts:?}: {e}"));
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")
            .parse()
            .unwrap_or_else(|e| panic!("bad timestamp {ts:?}: {e}"))
    };
    secs * 1000 + ms
}

/// Time in eighths of a second, the generator's clock unit.
type T8 = i64;

/// `t` as decimal seconds: `1704067205`, `1704067205.125`, `0.5`.
fn fmt_ts(t: T8) -> String {
    const FRAC: [&str; 8] = ["", ".125", ".25", ".375", ".5", ".625", ".75", ".875"];
    format!("{}{}", t / 8, FRAC[(t % 8) as usize])
}

/// `v` as OpenMetrics writes it; integers without a fraction.
fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust prints the shortest round-trip digits without exponent; `-0` stays.
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `v` in exponent notation (`1.5e-7`, `5e-324`), which parsers must accept too.
fn fmt_exp(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        fmt_value(v)
    }
}

/// Index of host-c, the instance that restarts halfway (its counters reset).
const RESTARTING: usize = 2;

struct Gen {
    out: String,
    rng: StdRng,
    /// Per instance: the time of each scrape, `None` when it was missed.
    timelines: Vec<Vec<Option<T8>>>,
    /// Number of scrape points per instance.
    points: usize,
    /// Number of bulk series.
    series: usize,
}

impl Gen {
    fn new(opts: &Options) -> Self {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let step8 = opts.step_ms * 8 / 1000;
        let points = ((opts.duration_secs * 8 + step8 - 1) / step8) as usize;
        let n = INSTANCES.len() as i64;
        let restart = points / 2;
        let timelines = (0..INSTANCES.len())
            .map(|j| {
                // Phase + jitter stays below one step, so each timeline is strictly increasing.
                let phase = j as i64 * step8 / (n + 1);
                (0..points)
                    .map(|i| {
                        let r: f64 = rng.gen();
                        // The first scrape is on time, so data at the epoch starts at 0.
                        let jitter = match r {
                            _ if step8 < 40 || i == 0 => 0,
                            r if r < 0.05 => 1,
                            r if r < 0.08 => 2,
                            _ => 0,
                        };
                        let random_miss = rng.gen_bool(0.01) && i > 0;
                        let outage = points >= 16
                            && ((j == RESTARTING && (restart - 2..restart + 1).contains(&i))
                                || (j == 3 && (points / 4..points / 4 + 4).contains(&i)));
                        (!random_miss && !outage)
                            .then_some(opts.start_secs * 8 + i as i64 * step8 + phase + jitter)
                    })
                    .collect()
            })
            .collect();
        Self {
            out: String::new(),
            rng,
            timelines,
            points,
            series: opts.series,
        }
    }

    /// Whether instance `j` runs its second process at point `i` (counters restart).
    fn restarted(&self, j: usize, i: usize) -> bool {
        j == RESTARTING && i >= self.points / 2
    }

    fn family(&mut self, name: &str, typ: &str, help: &str, unit: Option<&str>) {
        let _ = writeln!(self.out, "# TYPE {name} {typ}");
        if let Some(unit) = unit {
            let _ = writeln!(self.out, "# UNIT {name} {unit}");
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    fn line(&mut self, metric: &str, labels: &[(&str, &str)], value: &str, t: T8) {
        self.out.push_str(metric);
        if !labels.is_empty() {
            self.out.push('{');
            for (n, (k, v)) in labels.iter().enumerate() {
                if n > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value} {}", fmt_ts(t));
    }

    fn up(&mut self) {
        self.family(
            "up",
            "gauge",
            "1 if the instance was scraped successfully.",
            None,
        );
        for (j, inst) in INSTANCES.iter().enumerate() {
            for i in 0..self.points {
                if let Some(t) = self.timelines[j][i] {
                    self.line("up", &[("instance", inst), ("job", "node")], "1", t);
                }
            }
        }
    }

    /// The bulk family: `series` counters that reset, some present only in
    /// the first or second half or the middle third of the range.
    fn requests(&mut self) {
        self.family(
            "requests",
            "counter",
            "Requests handled, by status code.",
            None,
        );
        let p = self.points;
        for k in 0..self.series {
            let j = k % INSTANCES.len();
            let code = ["200", "404", "500"][k % 3];
            let id = format!("{k:05}");
            let scale = if k % 7 == 0 { 1_000_003.0 } else { 1.0 };
            let mut v = 0.0;
            for i in 0..p {
                let reset = (j == RESTARTING && i == p / 2) || self.rng.gen_bool(0.003);
                if reset {
                    v = 0.0;
                }
                v += f64::from(self.rng.gen_range(0..=20u32)) * scale;
                let present = match k % 16 {
                    5 => i >= p / 2,
                    11 => i < p / 2,
                    13 => (p / 3..2 * p / 3).contains(&i),
                    _ => true,
                };
                if let (true, Some(t)) = (present, self.timelines[j][i]) {
                    let labels = [
                        ("code", code),
                        ("instance", INSTANCES[j]),
                        ("job", "bulk"),
                        ("series", &id),
                    ];
                    self.line("requests_total", &labels, &fmt_value(v), t);
                }
            }
        }
    }

    /// A float counter in steps of 1/16 s.
    fn cpu_seconds(&mut self) {
        self.family(
            "cpu_seconds",
            "counter",
            "CPU time spent, by mode.",
            Some("seconds"),
        );
        for (j, inst) in INSTANCES.iter().enumerate() {
            for mode in ["system", "user"] {
                let mut v = 0.0;
                for i in 0..self.points {
                    if self.restarted(j, i) && !self.restarted(j, i.saturating_sub(1)) {
                        v = 0.0;
                    }
                    v += f64::from(self.rng.gen_range(1..=40u32)) / 16.0;
                    if let Some(t) = self.timelines[j][i] {
                        let labels = [("instance", *inst), ("job", "node"), ("mode", mode)];
                        self.line("cpu_seconds_total", &labels, &fmt_value(v), t);
                    }
                }
            }
        }
    }

    /// A gauge with unicode label values, in steps of 0.25.
    fn temperature(&mut self) {
        self.family(
            "temperature_celsius",
            "gauge",
            "Temperature of the server room.",
            Some("celsius"),
        );
        for (j, inst) in INSTANCES.iter().enumerate() {
            let mut v: f64 = 21.0;
            for i in 0..self.points {
                v = (v + [-0.25, 0.0, 0.0, 0.25][self.rng.gen_range(0..4)]).clamp(15.0, 30.0);
                if let Some(t) = self.timelines[j][i] {
                    let labels = [
                        ("instance", *inst),
                        ("job", "node"),
                        ("location", LOCATIONS[j]),
                        ("sensor", "🌡 north wall"),
                    ];
                    self.line("temperature_celsius", &labels, &fmt_value(v), t);
                }
            }
        }
    }

    /// Large integers, which Go's `%g` prints with an exponent (`2.097152e+08`).
    fn memory(&mut self) {
        self.family(
            "memory_bytes",
            "gauge",
            "Resident memory size.",
            Some("bytes"),
        );
        for (j, inst) in INSTANCES.iter().enumerate() {
            let mut m: i64 = 200 << 20;
            for i in 0..self.points {
                if self.restarted(j, i) && !self.restarted(j, i.saturating_sub(1)) {
                    m = 120 << 20;
                }
                m = (m + self.rng.gen_range(-64..=80i64) * 4096).max(64 << 20);
                if let Some(t) = self.timelines[j][i] {
                    self.line(
                        "memory_bytes",
                        &[("instance", inst), ("job", "node")],
                        &m.to_string(),
                        t,
                    );
                }
            }
        }
    }

    /// NaN, +Inf and -Inf stretches, and a series cycling through edge values.
    fn special_values(&mut self) {
        const EDGE: [f64; 14] = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            -2.5,
            1e-7,
            1.2345678901234568e20,
            0.1,
            1.0 / 3.0,
            -1e300,
        ];
        self.family(
            "special_value",
            "gauge",
            "Gauges with NaN, +Inf, -Inf and extreme values.",
            None,
        );
        let p = self.points;
        let labels = |kind| [("instance", INSTANCES[0]), ("job", "node"), ("kind", kind)];
        let mut level = 0.0;
        for i in 0..p {
            level += [-0.5, 0.0, 0.5][self.rng.gen_range(0..3)];
            let v = if (p / 4..p / 4 + 10).contains(&i) {
                f64::NAN
            } else {
                level
            };
            if let Some(t) = self.timelines[0][i] {
                self.line("special_value", &labels("nan"), &fmt_value(v), t);
            }
        }
        for i in 0..p {
            let v = if (i / 20) % 3 == 0 {
                f64::INFINITY
            } else {
                86400.0 * (1 + i % 20) as f64
            };
            if let Some(t) = self.timelines[0][i] {
                self.line("special_value", &labels("pos_inf"), &fmt_value(v), t);
            }
        }
        for i in 0..p {
            let dbm = -40.0 - f64::from(self.rng.gen_range(0..=24u32)) / 2.0;
            let v = if (p / 2..p / 2 + 8).contains(&i) {
                f64::NEG_INFINITY
            } else {
                dbm
            };
            if let Some(t) = self.timelines[0][i] {
                self.line("special_value", &labels("neg_inf"), &fmt_value(v), t);
            }
        }
        for i in 0..p {
            if let Some(t) = self.timelines[0][i] {
                let v = EDGE[i % EDGE.len()];
                // Every other round through the list is in exponent notation.
                let text = if (i / EDGE.len()) % 2 == 1 {
                    fmt_value(v)
                } else {
                    fmt_exp(v)
                };
                self.line("special_value", &labels("edge"), &text, t);
            }
        }
        for i in 0..p {
            let v = f64::from(self.rng.gen_range(1..1000u32)) * 1e-9;
            if let Some(t) = self.timelines[0][i] {
                self.line("special_value", &labels("tiny"), &fmt_exp(v), t);
            }
        }
    }

    /// Awkward label values: escaped quote and backslashes, a 300-character
    /// value, control and non-printable characters, and a version that
    /// changes at host-c's restart (so it becomes a new series).
    fn build_info(&mut self) {
        let user_agent = format!(
            "Mozilla/5.0 (X11; Linux x86_64) {}Chrome/120.0 Safari/537.36",
            "AppleWebKit/537.36 (KHTML, like Gecko) ".repeat(6)
        );
        debug_assert!(user_agent.len() > 200);
        self.family(
            "build_info",
            "gauge",
            "Build information, built in C:\\\\build; always 1.",
            None,
        );
        for (j, inst) in INSTANCES.iter().enumerate() {
            let versions = if j == RESTARTING {
                vec![
                    ("1.4.2", 0..self.points / 2),
                    ("1.4.3", self.points / 2..self.points),
                ]
            } else {
                vec![("1.4.2", 0..self.points)]
            };
            for (version, range) in versions {
                let mut labels = vec![
                    ("branch", "release/1.4"),
                    ("goversion", "go1.21.5"),
                    ("instance", *inst),
                    ("job", "node"),
                    ("tags", r#"netgo,"quoted",C:\build\path"#),
                    ("user_agent", &user_agent),
                    ("version", version),
                ];
                if j == 0 {
                    labels.insert(
                        1,
                        (
                            "ctrl",
                            "tab\there zero\u{200b}width bell\u{7} del\u{7f} end",
                        ),
                    );
                }
                for i in range {
                    if let Some(t) = self.timelines[j][i] {
                        self.line("build_info", &labels, "1", t);
                    }
                }
            }
        }
    }

    /// A label value with an escaped newline; the series exists for a while.
    fn maintenance_notice(&mut self) {
        self.family(
            "maintenance_notice",
            "gauge",
            "1 while a maintenance notice is shown.",
            None,
        );
        let labels = [
            ("instance", INSTANCES[0]),
            ("job", "node"),
            ("text", "Line one.\nLine two: ünïcödé ✓"),
        ];
        for i in self.points / 3..self.points / 2 {
            if let Some(t) = self.timelines[0][i] {
                self.line("maintenance_notice", &labels, "1", t);
            }
        }
    }

    /// Present for 16 scrapes, absent for 32, again and again.
    fn batch_job(&mut self) {
        self.family(
            "batch_job_running",
            "gauge",
            "1 while a batch job runs (the series exists only then).",
            None,
        );
        let labels = [
            ("instance", INSTANCES[1]),
            ("job", "node"),
            ("name", "reindex"),
        ];
        for i in 0..self.points {
            if let (true, Some(t)) = (i % 48 < 16, self.timelines[1][i]) {
                self.line("batch_job_running", &labels, "1", t);
            }
        }
    }

    /// One flag that appears at 60% of the range, one that ends at 40%.
    fn feature_flags(&mut self) {
        self.family(
            "feature_flag_enabled",
            "gauge",
            "1 if a feature flag is on.",
            None,
        );
        let p = self.points;
        for (j, inst) in INSTANCES.iter().enumerate() {
            for (flag, range) in [
                ("legacy_search", 0..p * 2 / 5),
                ("new_checkout", p * 3 / 5..p),
            ] {
                for i in range {
                    if let Some(t) = self.timelines[j][i] {
                        let v = if flag == "legacy_search" && i >= p * 3 / 10 {
                            "0"
                        } else {
                            "1"
                        };
                        self.line(
                            "feature_flag_enabled",
                            &[("flag", flag), ("instance", inst), ("job", "node")],
                            v,
                            t,
                        );
                    }
                }
            }
        }
    }

    /// A classic histogram; a point's bucket, count and sum lines share a
    /// timestamp, and host-c's counts reset at its restart.
    fn histogram(&mut self) {
        let name = "request_duration_seconds";
        self.family(name, "histogram", "Request latency.", Some("seconds"));
        for (j, inst) in INSTANCES.iter().enumerate() {
            for method in ["GET", "POST"] {
                let mut counts = [0u64; BUCKETS.len()];
                let mut sum = 0.0;
                for i in 0..self.points {
                    if self.restarted(j, i) && !self.restarted(j, i.saturating_sub(1)) {
                        counts = [0; BUCKETS.len()];
                        sum = 0.0;
                    }
                    for _ in 0..self.rng.gen_range(2..=20) {
                        // Observations in steps of 1/1024 s, so sums stay exact.
                        let d = f64::from(self.rng.gen_range(1..=6000u32)) / 1024.0;
                        sum += d;
                        for (b, le) in BUCKETS.iter().enumerate() {
                            if *le == "+Inf" || d <= le.parse::<f64>().unwrap_or(f64::INFINITY) {
                                counts[b] += 1;
                            }
                        }
                    }
                    let Some(t) = self.timelines[j][i] else {
                        continue;
                    };
                    for (b, le) in BUCKETS.iter().enumerate() {
                        let labels = [
                            ("instance", *inst),
                            ("job", "node"),
                            ("le", le),
                            ("method", method),
                        ];
                        self.line(
                            &format!("{name}_bucket"),
                            &labels,
                            &counts[b].to_string(),
                            t,
                        );
                    }
                    let labels = [("instance", *inst), ("job", "node"), ("method", method)];
                    let total = counts[BUCKETS.len() - 1].to_string();
                    self.line(&format!("{name}_count"), &labels, &total, t);
                    self.line(&format!("{name}_sum"), &labels, &fmt_value(sum), t);
                }
            }
        }
    }

    /// A summary whose quantiles are NaN while idle.
    fn summary(&mut self) {
        let name = "db_query_duration_seconds";
        self.family(name, "summary", "Database query latency.", Some("seconds"));
        for (j, inst) in INSTANCES.iter().enumerate() {
            let labels = [("db", "orders"), ("instance", *inst), ("job", "node")];
            let (mut count, mut sum) = (0u64, 0.0);
            for i in 0..self.points {
                if self.restarted(j, i) && !self.restarted(j, i.saturating_sub(1)) {
                    (count, sum) = (0, 0.0);
                }
                let idle = (i / 30) % 4 == 3;
                let n = if idle {
                    0
                } else {
                    self.rng.gen_range(5..=30u64)
                };
                count += n;
                sum += n as f64 * f64::from(self.rng.gen_range(1..=64u32)) / 1024.0;
                let quantiles: Vec<(&str, f64)> = [("0.5", 8u32), ("0.99", 60)]
                    .into_iter()
                    .map(|(q, base)| {
                        let v = f64::from(base + self.rng.gen_range(0..=8u32)) / 1024.0;
                        (q, if idle { f64::NAN } else { v })
                    })
                    .collect();
                let Some(t) = self.timelines[j][i] else {
                    continue;
                };
                for (q, v) in quantiles {
                    let mut l = labels.to_vec();
                    l.push(("quantile", q));
                    self.line(name, &l, &fmt_value(v), t);
                }
                self.line(&format!("{name}_count"), &labels, &count.to_string(), t);
                self.line(&format!("{name}_sum"), &labels, &fmt_value(sum), t);
            }
        }
    }
}

#[cfg(test)]
mod tests;
