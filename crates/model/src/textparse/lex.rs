//! Byte-level scanning shared by both formats: line splitting, names, quoted
//! strings, numbers and timestamps. Nothing here allocates except unescaping,
//! which appends to the parser's reusable scratch buffer.

use crate::error::{Error, Result};
use crate::NORMAL_NAN_BITS;

/// Position of the first `needle` in `hay`, scanning eight bytes at a time.
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let x = word ^ pattern;
        // The lowest set high bit marks the first zero byte of `x` exactly; false
        // positives can only appear in more significant bytes.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

/// A string in the current entry: a byte range of the line, or of the parser's
/// scratch buffer when the text had to be unescaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) scratch: bool,
}

impl Span {
    /// A range of the line.
    pub(crate) fn line(start: usize, end: usize) -> Self {
        Self {
            start,
            end,
            scratch: false,
        }
    }

    /// The text the span refers to. Spans always fall on character boundaries, so
    /// the empty fallback is never taken.
    pub(crate) fn resolve<'p>(self, line: &'p str, scratch: &'p str) -> &'p str {
        let src = if self.scratch { scratch } else { line };
        src.get(self.start..self.end).unwrap_or_default()
    }
}

/// Which backslash escapes a string understands. Unknown escapes are kept as
/// written (backslash included), as Prometheus does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// `\\`, `\"` and `\n`: label values, quoted names, OpenMetrics HELP.
    Quoted,
    /// `\\` and `\n` only: HELP text in the Prometheus text format.
    PromHelp,
}

/// Appends `raw` with its escapes resolved to `out`.
pub(crate) fn unescape_into(raw: &str, esc: Escapes, out: &mut String) {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if esc == Escapes::Quoted => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
}

/// The span of `line[start..end]`, unescaped into `scratch` if it holds a backslash.
pub(crate) fn text_span(
    line: &str,
    start: usize,
    end: usize,
    esc: Escapes,
    scratch: &mut String,
) -> Span {
    let raw = line.get(start..end).unwrap_or_default();
    if find_byte(raw.as_bytes(), b'\\').is_none() {
        return Span::line(start, end);
    }
    let s0 = scratch.len();
    unescape_into(raw, esc, scratch);
    Span {
        start: s0,
        end: scratch.len(),
        scratch: true,
    }
}

/// A [`Error::Parse`].
pub(crate) fn parse_error(line: usize, col: usize, msg: impl Into<String>) -> Error {
    Error::Parse {
        line,
        col,
        msg: msg.into(),
    }
}

/// The line as UTF-8, or an error pointing at the first invalid byte.
pub(crate) fn validate_utf8(bytes: &[u8], line_no: usize) -> Result<&str> {
    std::str::from_utf8(bytes)
        .map_err(|e| parse_error(line_no, e.valid_up_to() + 1, "invalid UTF-8"))
}

/// Whether `b` separates tokens in the Prometheus text format.
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A position in one line, with helpers that produce located errors.
pub(crate) struct Cursor<'a> {
    pub(crate) line: &'a str,
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) line_no: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `line`.
    pub(crate) fn new(line: &'a str, line_no: usize) -> Self {
        Self {
            line,
            b: line.as_bytes(),
            pos: 0,
            line_no,
        }
    }

    /// The current byte.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Whether the whole line has been consumed.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// Consumes `c` if it is the current byte.
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `s` if the line continues with it.
    pub(crate) fn eat_str(&mut self, s: &str) -> bool {
        let ok = self
            .b
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(s.as_bytes()));
        if ok {
            self.pos += s.len();
        }
        ok
    }

    /// Skips spaces and tabs; returns how many.
    pub(crate) fn skip_ws(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// The rest of the line from the cursor.
    pub(crate) fn rest(&self) -> &'a str {
        self.line.get(self.pos..).unwrap_or_default()
    }

    /// An error at byte offset `at` of the line.
    pub(crate) fn err_at(&self, at: usize, msg: impl Into<String>) -> Error {
        parse_error(self.line_no, at + 1, msg)
    }

    /// An error at the cursor.
    pub(crate) fn err(&self, msg: impl Into<String>) -> Error {
        self.err_at(self.pos, msg)
    }

    /// `expected <what>, got "<text at cursor>"`.
    pub(crate) fn expected(&self, what: &str) -> Error {
        self.err(format!("expected {what}, got {}", self.got()))
    }

    /// A short, quoted excerpt of the line at the cursor, or `end of line`.
    pub(crate) fn got(&self) -> String {
        let mut p = self.pos.min(self.line.len());
        while !self.line.is_char_boundary(p) {
            p -= 1;
        }
        let rest = self.line.get(p..).unwrap_or_default();
        if rest.is_empty() {
            return "end of line".to_string();
        }
        let excerpt: String = rest.chars().take(24).collect();
        format!("{excerpt:?}")
    }

    fn scan_while(&mut self, first: fn(u8) -> bool, more: fn(u8) -> bool) -> Option<Span> {
        let start = self.pos;
        if !self.peek().is_some_and(first) {
            return None;
        }
        self.pos += 1;
        while self.peek().is_some_and(more) {
            self.pos += 1;
        }
        Some(Span::line(start, self.pos))
    }

    /// A metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub(crate) fn metric_name(&mut self) -> Option<Span> {
        self.scan_while(
            |c| c.is_ascii_alphabetic() || c == b'_' || c == b':',
            |c| c.is_ascii_alphanumeric() || c == b'_' || c == b':',
        )
    }

    /// A label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
    pub(crate) fn label_name(&mut self) -> Option<Span> {
        self.scan_while(
            |c| c.is_ascii_alphabetic() || c == b'_',
            |c| c.is_ascii_alphanumeric() || c == b'_',
        )
    }

    /// A double-quoted string starting at the cursor, unescaped into `scratch` if
    /// it holds escapes. The span excludes the quotes.
    pub(crate) fn quoted(&mut self, esc: Escapes, scratch: &mut String) -> Result<Span> {
        let open = self.pos;
        if !self.eat(b'"') {
            return Err(self.expected("'\"'"));
        }
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err(self.err_at(open, "unterminated quoted string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    if self.pos + 1 >= self.b.len() {
                        return Err(
                            self.err("unterminated quoted string: backslash at end of line")
                        );
                    }
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
            }
        }
        let end = self.pos;
        self.pos += 1;
        if !escaped {
            return Ok(Span::line(start, end));
        }
        let s0 = scratch.len();
        unescape_into(self.line.get(start..end).unwrap_or_default(), esc, scratch);
        Ok(Span {
            start: s0,
            end: scratch.len(),
            scratch: true,
        })
    }

    /// A metric family name in a HELP/TYPE/UNIT line: bare or quoted.
    pub(crate) fn family_name(&mut self, keyword: &str, scratch: &mut String) -> Result<Span> {
        if self.peek() == Some(b'"') {
            let at = self.pos;
            let span = self.quoted(Escapes::Quoted, scratch)?;
            if span.start == span.end {
                return Err(self.err_at(at, "empty metric name"));
            }
            return Ok(span);
        }
        self.metric_name()
            .ok_or_else(|| self.expected(&format!("metric name after {keyword}")))
    }

    /// Consumes bytes up to the next space (or tab too, if `tab`) or the end of line.
    pub(crate) fn token(&mut self, tab: bool) -> Span {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b' ' || (tab && c == b'\t') {
                break;
            }
            self.pos += 1;
        }
        Span::line(start, self.pos)
    }

    /// The text of a line span.
    pub(crate) fn text(&self, span: Span) -> &'a str {
        self.line.get(span.start..span.end).unwrap_or_default()
    }
}

/// Parses a sample value: a decimal float, `NaN`, `+Inf`, `-Inf`, `Inf` (and the
/// case-insensitive `inf`/`infinity`/`nan` spellings Go accepts). Hex floats and
/// underscores are rejected, as in Prometheus. Every NaN becomes Prometheus' normal
/// NaN bit pattern.
pub(crate) fn parse_value(s: &str) -> Option<f64> {
    let v = match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => {
            let v: f64 = s.parse().ok()?;
            // Go does not accept a signed NaN.
            if v.is_nan() && (s.starts_with('+') || s.starts_with('-')) {
                return None;
            }
            v
        }
    };
    Some(if v.is_nan() {
        f64::from_bits(NORMAL_NAN_BITS)
    } else {
        v
    })
}

/// Parses an integer millisecond timestamp (Prometheus text format).
pub(crate) fn parse_ms(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Converts a decimal number of seconds (OpenMetrics timestamp) to milliseconds,
/// rounding half away from zero, exactly: the digits are shifted in decimal, never
/// through binary floating point. Accepts `[+-]digits[.digits][(e|E)[+-]digits]`
/// with at least one digit before or after the point. `None` for anything else
/// (`NaN`, `Inf`, garbage) and for results outside `i64`.
pub(crate) fn seconds_to_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = b.get(int_start..i)?;
    let mut frac_digits: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac_digits = b.get(frac_start..i)?;
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let mut exp: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let exp_start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            // Saturate: anything this large over- or underflows anyway.
            exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000);
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        if exp_neg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return None;
    }

    // value = D * 10^(exp - frac_len); milliseconds = D * 10^shift.
    let n = (int_digits.len() + frac_digits.len()) as i64;
    let shift = exp - frac_digits.len() as i64 + 3;
    let digits = int_digits.iter().chain(frac_digits.iter());
    // Keep the first `n + shift` digits; the next one decides the rounding.
    let keep = if shift >= 0 { n } else { n + shift };
    let mut acc: u64 = 0;
    let mut round_up = false;
    for (k, &d) in digits.enumerate() {
        let k = k as i64;
        if k < keep {
            acc = acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        } else {
            round_up = k == keep && d >= b'5';
            break;
        }
    }
    if shift > 0 && acc != 0 {
        for _ in 0..shift.min(20) {
            acc = acc.checked_mul(10)?;
        }
        if shift > 20 {
            return None;
        }
    }
    if round_up {
        acc = acc.checked_add(1)?;
    }
    if neg {
        0i64.checked_sub_unsigned(acc)
    } else {
        i64::try_from(acc).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_position() {
        let hay = b"abcdefghijklmnopq\nrst\n";
        for start in 0..hay.len() {
            let want = hay[start..].iter().position(|&b| b == b'\n');
            assert_eq!(find_byte(&hay[start..], b'\n'), want, "start {start}");
        }
        assert_eq!(find_byte(b"", b'\n'), None);
        assert_eq!(find_byte(&[0x8a; 20], b'\n'), None);
        assert_eq!(
            find_byte(&[0x0b, 0x0a, 0x0a, 0x0a, 1, 1, 1, 1, 1], b'\n'),
            Some(1)
        );
    }

    #[test]
    fn seconds_round_half_away_from_zero() {
        let cases = [
            ("1704067305.25", Some(1704067305250)),
            ("1704067305.125", Some(1704067305125)),
            ("1704067200", Some(1704067200000)),
            ("0.0005", Some(1)),
            ("-0.0005", Some(-1)),
            ("0.00049999", Some(0)),
            ("1.0005", Some(1001)),
            ("1.0004999", Some(1000)),
            ("123.123", Some(123123)),
            ("1e3", Some(1_000_000)),
            ("1.5e-3", Some(2)),
            ("-1.5E-3", Some(-2)),
            ("1.7040672e9", Some(1_704_067_200_000)),
            ("+5", Some(5000)),
            (".5", Some(500)),
            ("5.", Some(5000)),
            ("0", Some(0)),
            ("-0", Some(0)),
            ("0e999999999999999", Some(0)),
            ("1e-99999", Some(0)),
            ("5e-4", Some(1)),
            ("4e-4", Some(0)),
            ("9223372036854775.807", Some(i64::MAX)),
            ("-9223372036854775.808", Some(i64::MIN)),
            ("9223372036854775.808", None),
            ("1e30", None),
            ("NaN", None),
            ("+Inf", None),
            ("", None),
            (".", None),
            ("-", None),
            ("1e", None),
            ("1e+", None),
            ("1.2.3", None),
            ("0x10", None),
            ("1_000", None),
        ];
        for (s, want) in cases {
            assert_eq!(seconds_to_ms(s), want, "{s}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("1.5e3"), Some(1500.0));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("+inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_value("NaN").map(f64::to_bits), Some(NORMAL_NAN_BITS));
        assert_eq!(parse_value("nan").map(f64::to_bits), Some(NORMAL_NAN_BITS));
        for bad in ["", "-nan", "0x1p3", "1_0", "1e", "one", "1,5", "--1"] {
            assert_eq!(parse_value(bad), None, "{bad}");
        }
    }

    #[test]
    fn unescape_keeps_unknown_escapes() {
        let mut out = String::new();
        unescape_into(r#"a\\b\"c\nd\xe"#, Escapes::Quoted, &mut out);
        assert_eq!(out, "a\\b\"c\nd\\xe");
        out.clear();
        unescape_into(r#"a\\b\"c\n"#, Escapes::PromHelp, &mut out);
        assert_eq!(out, "a\\b\\\"c\n");
    }
}
