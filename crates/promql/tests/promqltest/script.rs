//! Parsing of Prometheus' PromQL test-script language (`promql/promqltest`).

use strata_model::{Labels, Sample, STALE_NAN_BITS};

/// One value of a series description: a float, a gap, or a native histogram.
#[derive(Clone, Copy, Debug)]
pub enum Point {
    Value(f64),
    Gap,
    Histogram,
}

/// A parsed `metric{labels} values...` line.
#[derive(Clone, Debug)]
pub struct SeriesDesc {
    pub labels: Labels,
    pub points: Vec<Point>,
}

impl SeriesDesc {
    pub fn has_histogram(&self) -> bool {
        self.points.iter().any(|p| matches!(p, Point::Histogram))
    }

    /// Float samples at `start + i * step` (gaps and histograms skipped).
    pub fn samples(&self, start: i64, step: i64) -> Vec<Sample> {
        self.points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Point::Value(v) => Some(Sample::new(start + i as i64 * step, *v)),
                _ => None,
            })
            .collect()
    }
}

/// Parses a Prometheus duration (`1h30m`, `10s53ms`, `0`); a leading `-` negates.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if s == "0" {
        return Some(0);
    }
    if let Ok(v) = s.parse::<i64>() {
        // Bare numbers are seconds.
        return Some(if neg { -v * 1000 } else { v * 1000 });
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[us..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(if neg { -total } else { total })
}

/// Parses a float as Go's `strconv.ParseFloat` (plus `Inf`/`NaN` spellings).
pub fn parse_number(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "nan" => return Some(f64::NAN),
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if l.ends_with("inf") || l.ends_with("nan") || l.contains("infinity") {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Unquotes a Go string literal (`"…"`, `'…'` or `` `…` ``) at the start of `s`;
/// returns the value and the rest.
pub fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next()?;
    if !matches!(q, '"' | '\'' | '`') {
        return None;
    }
    let body = &s[1..];
    if q == '`' {
        let end = body.find('`')?;
        return Some((body[..end].to_string(), &body[end + 1..]));
    }
    let mut out: Vec<u8> = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == q as u8 {
            return Some((String::from_utf8_lossy(&out).into_owned(), &body[i + 1..]));
        }
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let e = *bytes.get(i)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'"' => out.push(b'"'),
            b'\'' => out.push(b'\''),
            b'x' => {
                let h = body.get(i..i + 2)?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let h = body.get(i..i + n)?;
                let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            b'0'..=b'7' => {
                let h = body.get(i - 1..i + 2)?;
                out.push(u8::from_str_radix(h, 8).ok()?);
                i += 2;
            }
            _ => return None,
        }
    }
    None
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses `metric{a="b", …}` (also `{__name__="m"}` and quoted UTF-8 names);
/// returns the labels and the rest of the line.
pub fn parse_metric(s: &str) -> Option<(Labels, &str)> {
    let s = s.trim_start();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let name_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
    if name_end > 0 {
        pairs.push(("__name__".into(), s[..name_end].to_string()));
    }
    let mut rest = &s[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = if let Some((n, r)) = unquote_prefix(rest) {
                (n, r)
            } else {
                let e = rest.find(|c: char| !is_name_char(c))?;
                (rest[..e].to_string(), &rest[e..])
            };
            let r = r.trim_start();
            if let Some(r2) = r.strip_prefix('=') {
                let (v, r3) = unquote_prefix(r2.trim_start())?;
                pairs.push((name, v));
                rest = r3;
            } else {
                // A bare quoted metric name.
                pairs.push(("__name__".into(), name));
                rest = r;
            }
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            }
        }
    } else if name_end == 0 {
        return None;
    }
    Some((Labels::from_pairs(pairs), rest))
}

/// Expands a values specification (`1+2x3 _ stale _x2 NaN {{…}}`).
pub fn parse_points(s: &str) -> Option<Vec<Point>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{{") {
            let end = r.find("}}")?;
            rest = r[end + 2..].trim_start();
            // `{{…}}xN` repeats.
            let tok_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let tok = &rest[..tok_end];
            if let Some(n) = tok.strip_prefix('x').and_then(|n| n.parse::<usize>().ok()) {
                out.extend(std::iter::repeat_n(Point::Histogram, n + 1));
                rest = rest[tok_end..].trim_start();
            } else if let Some(n) = tok
                .strip_prefix('+')
                .and_then(|t| t.find('x').map(|p| &t[p + 1..]))
                .and_then(|n| n.parse::<usize>().ok())
            {
                out.extend(std::iter::repeat_n(Point::Histogram, n + 1));
                rest = rest[tok_end..].trim_start();
            } else {
                out.push(Point::Histogram);
            }
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        out.extend(expand_token(tok)?);
    }
    Some(out)
}

fn expand_token(tok: &str) -> Option<Vec<Point>> {
    if tok == "_" {
        return Some(vec![Point::Gap]);
    }
    if tok == "stale" {
        return Some(vec![Point::Value(f64::from_bits(STALE_NAN_BITS))]);
    }
    if let Some(n) = tok.strip_prefix("_x") {
        return Some(vec![Point::Gap; n.parse().ok()?]);
    }
    if let Some(v) = parse_number(tok) {
        return Some(vec![Point::Value(v)]);
    }
    // a+bxn, a-bxn, axn
    let xpos = tok.rfind('x')?;
    let n: usize = tok[xpos + 1..].parse().ok()?;
    let head = &tok[..xpos];
    if head == "stale" {
        return Some(vec![Point::Value(f64::from_bits(STALE_NAN_BITS)); n + 1]);
    }
    if head == "_" {
        return Some(vec![Point::Gap; n]);
    }
    let hb = head.as_bytes();
    let mut split = None;
    for i in (1..hb.len()).rev() {
        if (hb[i] == b'+' || hb[i] == b'-') && hb[i - 1] != b'e' && hb[i - 1] != b'E' {
            split = Some(i);
            break;
        }
    }
    let (a, b) = match split {
        Some(i) => {
            let a = parse_number(&head[..i])?;
            let mut b = parse_number(&head[i + 1..])?;
            if hb[i] == b'-' {
                b = -b;
            }
            (a, b)
        }
        None => (parse_number(head)?, 0.0),
    };
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..=n {
        out.push(Point::Value(a + b * i as f64));
    }
    Some(out)
}

/// Parses a full series description line.
pub fn parse_series(line: &str) -> Option<SeriesDesc> {
    let (labels, rest) = parse_metric(line)?;
    Some(SeriesDesc {
        labels,
        points: parse_points(rest)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands() {
        let s = parse_series(r#"foo{a="b\"c"} 1+2x2 _ stale -1-1x1 3x1"#).expect("parse");
        assert_eq!(s.labels.get("a"), Some("b\"c"));
        assert_eq!(s.points.len(), 3 + 1 + 1 + 2 + 2);
        assert_eq!(parse_duration_ms("10s53ms"), Some(10_053));
    }
}
