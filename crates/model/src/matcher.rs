//! Label matchers `=`, `!=`, `=~`, `!~` with Prometheus semantics.
//!
//! Regexes are RE2 syntax through the `regex` crate, fully anchored and with `.`
//! matching newlines (Prometheus 3.x). Common shapes skip the regex engine: literals,
//! literal alternations (`a|b|c`), prefixes (`foo.*`), suffixes, `.*` and `.+`.

use std::collections::HashSet;
use std::fmt;

use regex_syntax::hir::{Class, Hir, HirKind, Literal};

use crate::error::{Error, Result};

/// The kind of comparison a [`Matcher`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// `=`: equal.
    Equal,
    /// `!=`: not equal.
    NotEqual,
    /// `=~`: matches the anchored regex.
    Regex,
    /// `!~`: does not match the anchored regex.
    NotRegex,
}

impl MatchType {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

/// Matches one label's value. A missing label has the value `""`.
#[derive(Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The value or regex, as written.
    pub value: String,
    /// The comparison.
    pub kind: MatchType,
    re: Option<FastRegex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value && self.kind == other.kind
    }
}
impl Eq for Matcher {}

impl std::hash::Hash for Matcher {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.value.hash(state);
        self.kind.hash(state);
    }
}

impl Matcher {
    /// A matcher; regex kinds compile `value` (anchored), which may fail.
    pub fn new(kind: MatchType, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(FastRegex::new(&value)?),
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            value,
            kind,
            re,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            kind: MatchType::Equal,
            re: None,
        }
    }

    /// `name!="value"`.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            kind: MatchType::NotEqual,
            re: None,
        }
    }

    /// Whether `v` (the label's value, `""` if absent) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            MatchType::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchType::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether the matcher accepts the empty string, i.e. series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=` and for `=~` over a literal alternation, the exact values that match
    /// (sorted, deduplicated), so an index can look them up instead of scanning.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        match self.kind {
            MatchType::Equal => Some(vec![self.value.clone()]),
            MatchType::Regex => self.re.as_ref().and_then(|r| r.literal_set()),
            _ => None,
        }
    }

    /// For `=~`, a literal prefix that every matching value starts with ("" if none).
    pub fn prefix(&self) -> &str {
        match (&self.kind, &self.re) {
            (MatchType::Regex, Some(r)) => &r.prefix,
            _ => "",
        }
    }

    /// The complementary matcher (`=` ↔ `!=`, `=~` ↔ `!~`).
    pub fn inverse(&self) -> Matcher {
        let kind = match self.kind {
            MatchType::Equal => MatchType::NotEqual,
            MatchType::NotEqual => MatchType::Equal,
            MatchType::Regex => MatchType::NotRegex,
            MatchType::NotRegex => MatchType::Regex,
        };
        Matcher {
            kind,
            ..self.clone()
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.kind.as_str(),
            crate::gofmt::quote(&self.value)
        )
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Finds the matchers' common metric name, if one is fixed by an `=` matcher.
pub fn metric_name_of(ms: &[Matcher]) -> Option<&str> {
    ms.iter()
        .find(|m| m.name == crate::METRIC_NAME && m.kind == MatchType::Equal)
        .map(|m| m.value.as_str())
}

/// Whether a label set (given as a lookup) satisfies all matchers.
pub fn matches_all<'a>(ms: &[Matcher], get: impl Fn(&str) -> Option<&'a str>) -> bool {
    ms.iter().all(|m| m.matches(get(&m.name).unwrap_or("")))
}

/// An anchored regex with fast paths for common shapes.
#[derive(Clone)]
struct FastRegex {
    strategy: Strategy,
    prefix: String,
}

#[derive(Clone)]
enum Strategy {
    /// Matches any string (`.*`).
    Any,
    /// Matches any non-empty string (`.+`).
    NonEmpty,
    /// One of a small set of literals.
    Small(Vec<String>),
    /// One of a large set of literals.
    Set(HashSet<String>),
    /// Literal prefix followed by `.*`.
    Prefix(String),
    /// `.*` followed by a literal suffix.
    Suffix(String),
    /// `.*literal.*`.
    Contains(String),
    /// The compiled anchored regex.
    Re(regex::Regex),
}

const SMALL_SET: usize = 16;

impl FastRegex {
    fn new(src: &str) -> Result<Self> {
        let anchored = format!("^(?s:{src})$");
        let re = regex::Regex::new(&anchored).map_err(|e| Error::Regex {
            regex: src.to_string(),
            msg: e.to_string(),
        })?;
        let hir = regex_syntax::ParserBuilder::new()
            .dot_matches_new_line(true)
            .build()
            .parse(src)
            .ok();
        let (strategy, prefix) = match hir {
            Some(h) => analyze(&h).unwrap_or_else(|| (Strategy::Re(re), literal_prefix(src))),
            None => (Strategy::Re(re), String::new()),
        };
        Ok(Self { strategy, prefix })
    }

    fn is_match(&self, v: &str) -> bool {
        match &self.strategy {
            Strategy::Any => true,
            Strategy::NonEmpty => !v.is_empty(),
            Strategy::Small(s) => s.iter().any(|x| x == v),
            Strategy::Set(s) => s.contains(v),
            Strategy::Prefix(p) => v.starts_with(p.as_str()),
            Strategy::Suffix(p) => v.ends_with(p.as_str()),
            Strategy::Contains(p) => v.contains(p.as_str()),
            Strategy::Re(r) => r.is_match(v),
        }
    }

    fn literal_set(&self) -> Option<Vec<String>> {
        let mut v: Vec<String> = match &self.strategy {
            Strategy::Small(s) => s.clone(),
            Strategy::Set(s) => s.iter().cloned().collect(),
            _ => return None,
        };
        v.sort();
        v.dedup();
        Some(v)
    }
}

fn lit_str(l: &Literal) -> Option<String> {
    std::str::from_utf8(&l.0).ok().map(str::to_string)
}

/// Whether `h` is `.` (any char, newline included) repeated with `min` 0 or 1 and no max.
fn any_star(h: &Hir) -> Option<u32> {
    if let HirKind::Repetition(r) = h.kind() {
        if r.max.is_none() && r.min <= 1 && is_any_char(&r.sub) {
            return Some(r.min);
        }
    }
    None
}

fn is_any_char(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            let r = c.ranges();
            r.len() == 1 && r[0].start() == '\0' && r[0].end() == char::MAX
        }
        HirKind::Class(Class::Bytes(c)) => {
            let r = c.ranges();
            r.len() == 1 && r[0].start() == 0 && r[0].end() == 255
        }
        _ => false,
    }
}

fn strip_capture(h: &Hir) -> &Hir {
    match h.kind() {
        HirKind::Capture(c) => strip_capture(&c.sub),
        _ => h,
    }
}

fn literal_alternatives(h: &Hir) -> Option<Vec<String>> {
    match strip_capture(h).kind() {
        HirKind::Literal(l) => Some(vec![lit_str(l)?]),
        HirKind::Empty => Some(vec![String::new()]),
        HirKind::Alternation(alts) => {
            let mut out = Vec::new();
            for a in alts {
                out.extend(literal_alternatives(a)?);
            }
            Some(out)
        }
        // The parser turns `ab|ac` into `a[bc]`: expand small classes after a literal.
        HirKind::Class(Class::Unicode(c)) => {
            let n: u32 = c
                .ranges()
                .iter()
                .map(|r| r.end() as u32 - r.start() as u32 + 1)
                .sum();
            if n > 64 {
                return None;
            }
            Some(
                c.ranges()
                    .iter()
                    .flat_map(|r| (r.start()..=r.end()).map(|ch| ch.to_string()))
                    .collect(),
            )
        }
        HirKind::Concat(parts) => {
            let mut acc = vec![String::new()];
            for p in parts {
                let alts = literal_alternatives(p)?;
                if acc.len() * alts.len() > 4096 {
                    return None;
                }
                acc = acc
                    .iter()
                    .flat_map(|a| alts.iter().map(move |b| format!("{a}{b}")))
                    .collect();
            }
            Some(acc)
        }
        _ => None,
    }
}

fn analyze(h: &Hir) -> Option<(Strategy, String)> {
    let h = strip_capture(h);
    if let Some(min) = any_star(h) {
        return Some((
            if min == 0 {
                Strategy::Any
            } else {
                Strategy::NonEmpty
            },
            String::new(),
        ));
    }
    if let Some(set) = literal_alternatives(h) {
        let prefix = common_prefix(&set);
        let strategy = if set.len() <= SMALL_SET {
            Strategy::Small(set)
        } else {
            Strategy::Set(set.into_iter().collect())
        };
        return Some((strategy, prefix));
    }
    if let HirKind::Concat(parts) = h.kind() {
        let parts: Vec<&Hir> = parts.iter().map(strip_capture).collect();
        let lit_of = |p: &Hir| match p.kind() {
            HirKind::Literal(l) => lit_str(l),
            _ => None,
        };
        match parts.as_slice() {
            [a, b] if any_star(b) == Some(0) => {
                let p = lit_of(a)?;
                return Some((Strategy::Prefix(p.clone()), p));
            }
            [a, b] if any_star(a) == Some(0) => {
                return Some((Strategy::Suffix(lit_of(b)?), String::new()));
            }
            [a, b, c] if any_star(a) == Some(0) && any_star(c) == Some(0) => {
                return Some((Strategy::Contains(lit_of(b)?), String::new()));
            }
            _ => {}
        }
    }
    None
}

fn common_prefix(set: &[String]) -> String {
    let Some(first) = set.first() else {
        return String::new();
    };
    let mut n = first.len();
    for s in &set[1..] {
        n = n.min(
            first
                .bytes()
                .zip(s.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(n) {
        n -= 1;
    }
    first[..n].to_string()
}

/// The literal characters a regex source starts with, when it starts plainly.
fn literal_prefix(src: &str) -> String {
    let mut out = String::new();
    for c in src.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' || c == ':' || c == '/' || c == ' ' {
            out.push(c);
        } else {
            break;
        }
    }
    // A following quantifier applies to the last char, which is then not fixed.
    if let Some(next) = src[out.len()..].chars().next() {
        if matches!(next, '*' | '?' | '{' | '|') {
            out.pop();
        }
    }
    if src.contains('|') {
        return String::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> Matcher {
        Matcher::new(MatchType::Regex, "x", s).unwrap()
    }

    #[test]
    fn anchored_and_dotall() {
        assert!(re("a.*").matches("abc"));
        assert!(!re("b").matches("abc"));
        assert!(re("a.c").matches("a\nc"));
        assert!(re(".*").matches(""));
        assert!(!re(".+").matches(""));
        assert!(re("foo|bar").matches("bar"));
        assert!(!re("foo|bar").matches("foobar"));
        assert!(re("(?i)FOO").matches("foo"));
        assert!(re("a[0-9]+").matches("a12"));
        assert!(!re("a[0-9]+").matches("a12b"));
    }

    #[test]
    fn fast_paths() {
        assert_eq!(
            re("foo|bar|baz").set_matches(),
            Some(vec!["bar".into(), "baz".into(), "foo".into()])
        );
        assert_eq!(
            re("api-(a|b)").set_matches(),
            Some(vec!["api-a".into(), "api-b".into()])
        );
        assert_eq!(re("foo.*").prefix(), "foo");
        assert!(re("foo.*").matches("foo"));
        assert!(re(".*bar").matches("xbar"));
        assert!(re(".*mid.*").matches("amidb"));
        assert!(!re(".*mid.*").matches("amdb"));
        assert_eq!(re("a[0-9]+").prefix(), "a");
        assert!(re("a[0-9]+").matches("a9"));
        assert_eq!(re("ab?").prefix(), "a");
    }

    #[test]
    fn empty_semantics() {
        assert!(Matcher::equal("x", "").matches_empty());
        assert!(!Matcher::not_equal("x", "").matches_empty());
        assert!(Matcher::new(MatchType::NotRegex, "x", "a.*")
            .unwrap()
            .matches_empty());
        assert!(re("a|").matches_empty());
    }

    #[test]
    fn bad_regex_is_error() {
        let e = Matcher::new(MatchType::Regex, "x", "a(").unwrap_err();
        assert!(e.to_string().contains("a("), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_with_regex(src in "(foo|ba[rz]|\\.\\*|x|\\.\\+|q\\?){1,4}", v in "[fobarzxq]{0,8}") {
            if let Ok(m) = Matcher::new(MatchType::Regex, "x", src.clone()) {
                let r = regex::Regex::new(&format!("^(?s:{src})$")).unwrap();
                proptest::prop_assert_eq!(m.matches(&v), r.is_match(&v));
            }
        }
    }
}
