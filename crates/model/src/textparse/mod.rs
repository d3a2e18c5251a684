//! Exposition-format parsers: the Prometheus text format 0.0.4 and the OpenMetrics
//! 1.0 text format (mirrors Prometheus `model/textparse`).
//!
//! [`Parser`] is a pull parser over a byte slice, built for scraping: it walks the
//! input line by line and returns [`Entry`] values that borrow from the input. Label
//! values that contain escapes are unescaped into a buffer the parser reuses, so
//! steady-state parsing does not allocate per sample. Call [`Series::to_labels`]
//! only for the series that need an owned [`Labels`].
//!
//! ```
//! use strata_model::textparse::{Entry, Format, Parser};
//!
//! let input = b"# TYPE up gauge\nup{job=\"web\"} 1 1704067200.5\n# EOF\n";
//! let mut p = Parser::new(input, Format::OpenMetrics);
//! let mut n = 0;
//! while let Some(entry) = p.next()? {
//!     if let Entry::Series(s) = entry {
//!         assert_eq!(s.metric_name, "up");
//!         assert_eq!(s.labels.get("job"), Some("web"));
//!         assert_eq!(s.timestamp_ms, Some(1704067200500));
//!         n += 1;
//!     }
//! }
//! assert_eq!(n, 1);
//! # Ok::<(), strata_model::Error>(())
//! ```
//!
//! Semantics follow Prometheus, with these deliberate choices:
//! - OpenMetrics timestamps (float seconds) are rounded to the nearest millisecond,
//!   half away from zero, using exact decimal arithmetic (Prometheus truncates).
//! - Unknown escapes such as `\x` are kept as written, as Prometheus does; a
//!   backslash that leaves a quoted string unterminated is an error.
//! - Duplicate label names, or a `__name__` label next to a metric name, are errors.
//! - Label pairs must be separated by commas (Prometheus' text lexer accidentally
//!   accepts `{a="1" b="2"}`; this parser does not).
//! - Ordering rules (family grouping, TYPE before samples, histogram bucket order)
//!   and `_total`/`_created` suffix semantics are not checked.

mod labelset;
mod lex;
mod openmetrics;
mod promtext;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::error::Result;
use crate::{Label, Labels, METRIC_NAME};
use labelset::LabelSpan;
use lex::Span;

/// The text format of an exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), including the
    /// quoted UTF-8 names of text format 1.0.0.
    PromText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format for an HTTP `Content-Type` value, judged by its media type only
    /// (parameters such as `version` and `charset` are ignored). `None` for other
    /// media types, including protobuf; the caller picks any fallback.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let media = content_type
            .split_once(';')
            .map_or(content_type, |(m, _)| m)
            .trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Some(Format::OpenMetrics)
        } else if media.eq_ignore_ascii_case("text/plain") {
            Some(Format::PromText)
        } else {
            None
        }
    }

    /// The `Content-Type` this format is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PromText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family type from a `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics only).
    Info,
    /// `stateset` (OpenMetrics only).
    Stateset,
    /// `unknown` in OpenMetrics, `untyped` in the text format.
    Unknown,
}

impl MetricType {
    /// The OpenMetrics spelling (`unknown` for [`MetricType::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an exposition. `'a` is the input's lifetime; `'p` borrows the parser
/// (unescaped strings live in its buffer until the next call to [`Parser::next`]).
#[derive(Clone, Copy, Debug)]
pub enum Entry<'a, 'p> {
    /// A sample line.
    Series(Series<'a, 'p>),
    /// `# TYPE <family> <type>`.
    Type {
        /// The metric family name.
        metric_family: &'p str,
        /// Its type.
        metric_type: MetricType,
    },
    /// `# HELP <family> <text>`, with the text unescaped.
    Help {
        /// The metric family name.
        metric_family: &'p str,
        /// The help text, unescaped (may be empty).
        help: &'p str,
    },
    /// `# UNIT <family> <unit>` (OpenMetrics only).
    Unit {
        /// The metric family name.
        metric_family: &'p str,
        /// The unit (may be empty); if not empty, the family name ends in `_<unit>`.
        unit: &'a str,
    },
    /// Any other `#` line of the text format, as written from the `#` on. Not
    /// checked to be UTF-8 (Prometheus does not check comments either).
    Comment(&'a [u8]),
}

/// A sample: series identity, value and optional timestamp.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a, 'p> {
    /// The series as written: metric name and label set, without value and
    /// timestamp. Identical lines give identical `raw`, so it suits a scrape cache.
    pub raw: &'a str,
    /// The metric name (unescaped if it was quoted).
    pub metric_name: &'p str,
    /// The labels in written order, without `__name__`; names are unique.
    pub labels: LabelPairs<'p>,
    /// The value; NaN is always Prometheus' normal NaN ([`crate::NORMAL_NAN_BITS`]).
    pub value: f64,
    /// Milliseconds since the Unix epoch, if the line has a timestamp.
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only), if present.
    pub exemplar: Option<Exemplar<'p>>,
}

impl Series<'_, '_> {
    /// The owned label set, including `__name__`. Labels with empty values are
    /// dropped, as [`Labels`] always does.
    pub fn to_labels(&self) -> Labels {
        let mut v = Vec::with_capacity(self.labels.len() + 1);
        v.push(Label::new(METRIC_NAME, self.metric_name));
        v.extend(self.labels.iter().map(|(n, val)| Label::new(n, val)));
        Labels::from_vec(v)
    }
}

/// An OpenMetrics exemplar: ` # {labels} value [timestamp]` after a sample.
#[derive(Clone, Copy, Debug)]
pub struct Exemplar<'p> {
    /// The exemplar's labels (may be empty); names are unique.
    pub labels: LabelPairs<'p>,
    /// The exemplar value.
    pub value: f64,
    /// Milliseconds since the Unix epoch, if given.
    pub timestamp_ms: Option<i64>,
}

/// A borrowed view of label pairs, in written order.
#[derive(Clone, Copy)]
pub struct LabelPairs<'p> {
    line: &'p str,
    scratch: &'p str,
    spans: &'p [LabelSpan],
}

impl<'p> LabelPairs<'p> {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The value of label `name`, if present (linear search).
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Iterates over `(name, value)` pairs in written order.
    pub fn iter(&self) -> LabelPairsIter<'p> {
        LabelPairsIter {
            line: self.line,
            scratch: self.scratch,
            inner: self.spans.iter(),
        }
    }
}

impl<'p> IntoIterator for LabelPairs<'p> {
    type Item = (&'p str, &'p str);
    type IntoIter = LabelPairsIter<'p>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for LabelPairs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Iterator over [`LabelPairs`].
#[derive(Clone, Debug)]
pub struct LabelPairsIter<'p> {
    line: &'p str,
    scratch: &'p str,
    inner: std::slice::Iter<'p, LabelSpan>,
}

impl<'p> Iterator for LabelPairsIter<'p> {
    type Item = (&'p str, &'p str);

    fn next(&mut self) -> Option<Self::Item> {
        let l = self.inner.next()?;
        Some((
            l.name.resolve(self.line, self.scratch),
            l.value.resolve(self.line, self.scratch),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for LabelPairsIter<'_> {}
impl std::iter::FusedIterator for LabelPairsIter<'_> {}

/// Reusable per-line buffers.
#[derive(Debug, Default)]
pub(crate) struct LineState {
    pub(crate) scratch: String,
    pub(crate) labels: Vec<LabelSpan>,
    pub(crate) exemplar: Vec<LabelSpan>,
    pub(crate) idx: Vec<usize>,
}

/// What a line parser found, as spans into the line and the scratch buffer.
#[derive(Debug)]
pub(crate) enum Parsed {
    Series {
        raw: Span,
        name: Span,
        value: f64,
        ts: Option<i64>,
        exemplar: Option<(f64, Option<i64>)>,
    },
    Type {
        family: Span,
        ty: MetricType,
    },
    Help {
        family: Span,
        text: Span,
    },
    Unit {
        family: Span,
        unit: Span,
    },
}

/// One classified line.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// Nothing to report (blank line in the text format).
    Blank,
    /// `# EOF` (OpenMetrics).
    Eof,
    /// A text-format comment.
    Comment(&'a [u8]),
    /// A parsed line and its text.
    Parsed(&'a str, Parsed),
}

/// A pull parser over an exposition held in memory.
///
/// Errors name the 1-based line. Samples are returned as they are read, so input
/// that fails later (for instance an OpenMetrics exposition without `# EOF`) has
/// already produced entries: a scraper should append them transactionally. After
/// an error, or at the end, [`Parser::next`] returns `Ok(None)`.
pub struct Parser<'a> {
    input: &'a [u8],
    format: Format,
    pos: usize,
    line_no: usize,
    done: bool,
    st: LineState,
}

impl fmt::Debug for Parser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser")
            .field("format", &self.format)
            .field("input_len", &self.input.len())
            .field("pos", &self.pos)
            .field("line", &self.line_no)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<'a> Parser<'a> {
    /// A parser of `input` in `format`.
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Self {
            input,
            format,
            pos: 0,
            line_no: 0,
            done: false,
            st: LineState::default(),
        }
    }

    /// The format being parsed.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The 1-based number of the line last read (0 before the first call).
    pub fn line(&self) -> usize {
        self.line_no
    }

    /// The next entry, `Ok(None)` at the end of the exposition.
    ///
    /// The entry borrows the parser: unescaped strings are only valid until the
    /// next call. For OpenMetrics the end is `# EOF`; missing `# EOF` or anything
    /// after it is an error.
    #[allow(clippy::should_implement_trait)] // a lending iterator cannot be an Iterator
    pub fn next(&mut self) -> Result<Option<Entry<'a, '_>>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let rest = self.input.get(self.pos..).unwrap_or_default();
            if rest.is_empty() {
                self.done = true;
                return match self.format {
                    Format::PromText => Ok(None),
                    Format::OpenMetrics => Err(lex::parse_error(
                        self.line_no + 1,
                        1,
                        "data does not end with # EOF",
                    )),
                };
            }
            let (bytes, has_newline) = match lex::find_byte(rest, b'\n') {
                Some(i) => (rest.get(..i).unwrap_or_default(), true),
                None => (rest, false),
            };
            self.pos += bytes.len() + usize::from(has_newline);
            self.line_no += 1;
            self.st.scratch.clear();
            self.st.labels.clear();
            self.st.exemplar.clear();
            let line = match self.format {
                Format::PromText => promtext::parse_line(bytes, self.line_no, &mut self.st),
                Format::OpenMetrics => {
                    openmetrics::parse_line(bytes, has_newline, self.line_no, &mut self.st)
                }
            };
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            match line {
                Line::Blank => continue,
                Line::Eof => {
                    self.done = true;
                    if self.pos < self.input.len() {
                        return Err(lex::parse_error(
                            self.line_no + 1,
                            1,
                            "unexpected data after # EOF",
                        ));
                    }
                    return Ok(None);
                }
                Line::Comment(c) => return Ok(Some(Entry::Comment(c))),
                Line::Parsed(text, parsed) => return Ok(Some(self.entry(text, parsed))),
            }
        }
    }

    fn entry(&self, line: &'a str, parsed: Parsed) -> Entry<'a, '_> {
        let scratch = self.st.scratch.as_str();
        let pairs = |spans| LabelPairs {
            line,
            scratch,
            spans,
        };
        match parsed {
            Parsed::Series {
                raw,
                name,
                value,
                ts,
                exemplar,
            } => Entry::Series(Series {
                raw: line.get(raw.start..raw.end).unwrap_or_default(),
                metric_name: name.resolve(line, scratch),
                labels: pairs(&self.st.labels),
                value,
                timestamp_ms: ts,
                exemplar: exemplar.map(|(value, timestamp_ms)| Exemplar {
                    labels: pairs(&self.st.exemplar),
                    value,
                    timestamp_ms,
                }),
            }),
            Parsed::Type { family, ty } => Entry::Type {
                metric_family: family.resolve(line, scratch),
                metric_type: ty,
            },
            Parsed::Help { family, text } => Entry::Help {
                metric_family: family.resolve(line, scratch),
                help: text.resolve(line, scratch),
            },
            Parsed::Unit { family, unit } => Entry::Unit {
                metric_family: family.resolve(line, scratch),
                unit: line.get(unit.start..unit.end).unwrap_or_default(),
            },
        }
    }
}
