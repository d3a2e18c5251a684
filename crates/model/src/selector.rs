//! A small parser for series selectors (`metric{a="b", c=~"d"}`), enough for
//! tools' `--match` flags. Full PromQL lives in the promql crate.

use crate::error::{Error, Result};
use crate::{MatchType, Matcher, METRIC_NAME};

/// Parses a series selector into matchers. Accepts a metric name, a brace list, or
/// both; values in `"…"`, `'…'` or `` `…` `` with Go escapes in the first two.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>> {
    let err = |pos: usize, msg: &str| Error::Selector {
        selector: s.to_string(),
        pos,
        msg: msg.to_string(),
    };
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let ident = |i: &mut usize, colon: bool| -> Option<String> {
        let start = *i;
        while *i < b.len()
            && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_' || (colon && b[*i] == b':'))
        {
            *i += 1;
        }
        if *i == start || b[start].is_ascii_digit() {
            *i = start;
            return None;
        }
        Some(s[start..*i].to_string())
    };
    let mut out = Vec::new();
    skip_ws(&mut i);
    if let Some(name) = ident(&mut i, true) {
        out.push(Matcher::equal(METRIC_NAME, name));
    }
    skip_ws(&mut i);
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            skip_ws(&mut i);
            if i < b.len() && b[i] == b'}' {
                i += 1;
                break;
            }
            let name = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                quoted(s, &mut i).map_err(|m| err(i, m))?
            } else {
                ident(&mut i, false).ok_or_else(|| err(i, "expected label name"))?
            };
            skip_ws(&mut i);
            let kind = match b.get(i..i + 2) {
                Some(b"=~") => MatchType::Regex,
                Some(b"!~") => MatchType::NotRegex,
                Some(b"!=") => MatchType::NotEqual,
                _ if b.get(i) == Some(&b'=') => MatchType::Equal,
                _ => return Err(err(i, "expected one of =, !=, =~, !~")),
            };
            i += if kind == MatchType::Equal { 1 } else { 2 };
            skip_ws(&mut i);
            let value = quoted(s, &mut i).map_err(|m| err(i, m))?;
            out.push(Matcher::new(kind, name, value)?);
            skip_ws(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {}
                _ => return Err(err(i, "expected , or }")),
            }
        }
    }
    skip_ws(&mut i);
    if i != b.len() {
        return Err(err(i, "unexpected characters after selector"));
    }
    if out.is_empty() {
        return Err(err(0, "selector has no matchers"));
    }
    Ok(out)
}

fn quoted(s: &str, i: &mut usize) -> std::result::Result<String, &'static str> {
    let b = s.as_bytes();
    let q = *b.get(*i).ok_or("expected quoted string")?;
    if q != b'"' && q != b'\'' && q != b'`' {
        return Err("expected quoted string");
    }
    *i += 1;
    let mut out = String::new();
    let mut chars = s[*i..].char_indices();
    while let Some((off, c)) = chars.next() {
        if c as u32 == u32::from(q) {
            *i += off + 1;
            return Ok(out);
        }
        if c == '\\' && q != b'`' {
            let (_, e) = chars.next().ok_or("unterminated escape")?;
            out.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '\\' => '\\',
                '"' => '"',
                '\'' => '\'',
                'a' => '\x07',
                'b' => '\x08',
                'f' => '\x0c',
                'v' => '\x0b',
                _ => return Err("unknown escape sequence"),
            });
        } else {
            out.push(c);
        }
    }
    Err("unterminated quoted string")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selectors() {
        let m = parse_selector(r#"up{job="x", instance=~'a.*',z!=`q`}"#).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].to_string(), r#"__name__="up""#);
        assert!(m[2].matches("abc"));
        let m = parse_selector("{__name__=~'(?s:.*)'}").unwrap();
        assert!(m[0].matches("anything\n"));
        assert!(parse_selector("up{a=}")
            .unwrap_err()
            .to_string()
            .contains("position"));
        assert!(parse_selector("up x").is_err());
    }
}
