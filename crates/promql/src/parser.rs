//! Parsing: the `promql-parser` crate plus Strata's guards and helpers.

use promql_parser::parser::{self, Expr};

use crate::{Error, Result};

/// Maximum nesting (parentheses, operators, function calls) a query may have; deeper
/// queries are refused before evaluation, so that evaluation cannot overflow the stack.
pub const MAX_NESTING: usize = 1000;

/// Maximum query length in bytes.
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// Parses `query` into the `promql-parser` AST, refusing absurd inputs (overlong or
/// too deeply nested queries) with a [`Error::Parse`].
pub fn parse(query: &str) -> Result<Expr> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(Error::Parse(format!(
            "query is too long: {} bytes, at most {MAX_QUERY_BYTES} allowed",
            query.len()
        )));
    }
    let est = nesting_estimate(query);
    if est > MAX_NESTING {
        return Err(Error::Parse(format!(
            "query is too complex: nesting depth estimate {est} exceeds {MAX_NESTING}"
        )));
    }
    parser::parse(query).map_err(Error::Parse)
}

/// Parses `query` and returns it formatted the way Prometheus' `/api/v1/format_query`
/// does (one line when short, indented otherwise).
pub fn format_query(query: &str) -> Result<String> {
    Ok(parse(query)?.prettify())
}

/// An upper bound on the AST depth: open brackets plus operators, ignoring string
/// contents (counted by bytes; conservative).
fn nesting_estimate(q: &str) -> usize {
    let b = q.as_bytes();
    let mut depth: usize = 0;
    let mut max_depth: usize = 0;
    let mut ops: usize = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // Skip the string literal.
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => ops += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let w = &q[start..i];
                if w.eq_ignore_ascii_case("and")
                    || w.eq_ignore_ascii_case("or")
                    || w.eq_ignore_ascii_case("unless")
                    || w.eq_ignore_ascii_case("atan2")
                {
                    ops += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    max_depth + ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_deep_nesting() {
        let q = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(matches!(parse(&q), Err(Error::Parse(_))));
        let q = vec!["1"; 3000].join("+");
        assert!(matches!(parse(&q), Err(Error::Parse(_))));
        assert!(parse("sum by (job) (rate(x[5m]))").is_ok());
    }

    #[test]
    fn formats() {
        assert_eq!(
            format_query("sum   by(job)(rate(x[5m]))").expect("ok"),
            "sum by (job) (rate(x[5m]))"
        );
    }
}
