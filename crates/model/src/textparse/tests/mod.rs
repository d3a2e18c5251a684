//! Tests of both exposition parsers. Helpers render entries as one string each so
//! expectations read like the input.

mod fixture;
mod openmetrics;
mod promtext;

use super::*;
use crate::gofmt::format_g;

/// Renders label pairs as `{a="1",b="2"}` (Rust-escaped values), or nothing if empty.
fn render_pairs(out: &mut String, pairs: LabelPairs<'_>) {
    if pairs.is_empty() {
        return;
    }
    out.push('{');
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{n}={v:?}"));
    }
    out.push('}');
}

/// One line per entry: `name{labels} value [@ts] [# {labels} value [@ts]]`,
/// `TYPE f t`, `HELP f "text"`, `UNIT f u`, `COMMENT text`.
fn render(e: &Entry<'_, '_>) -> String {
    match e {
        Entry::Series(s) => {
            let mut out = s.metric_name.to_string();
            render_pairs(&mut out, s.labels);
            out.push(' ');
            out.push_str(&format_g(s.value));
            if let Some(ts) = s.timestamp_ms {
                out.push_str(&format!(" @{ts}"));
            }
            if let Some(ex) = &s.exemplar {
                out.push_str(" # {");
                let mut inner = String::new();
                render_pairs(&mut inner, ex.labels);
                out.push_str(inner.trim_start_matches('{').trim_end_matches('}'));
                out.push_str("} ");
                out.push_str(&format_g(ex.value));
                if let Some(ts) = ex.timestamp_ms {
                    out.push_str(&format!(" @{ts}"));
                }
            }
            out
        }
        Entry::Type {
            metric_family,
            metric_type,
        } => format!("TYPE {metric_family} {metric_type}"),
        Entry::Help {
            metric_family,
            help,
        } => format!("HELP {metric_family} {help:?}"),
        Entry::Unit {
            metric_family,
            unit,
        } => format!("UNIT {metric_family} {unit}"),
        Entry::Comment(c) => format!("COMMENT {}", String::from_utf8_lossy(c)),
    }
}

/// All entries, or the first error's message.
fn parse(input: &[u8], format: Format) -> Result<Vec<String>, String> {
    let mut p = Parser::new(input, format);
    let mut out = Vec::new();
    loop {
        match p.next() {
            Ok(Some(e)) => out.push(render(&e)),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Asserts that parsing fails on `line` with a message containing `needle`.
#[track_caller]
fn assert_err(input: &str, format: Format, line: usize, needle: &str) {
    assert_err_bytes(input.as_bytes(), format, line, needle);
}

#[track_caller]
fn assert_err_bytes(input: &[u8], format: Format, line: usize, needle: &str) {
    match parse(input, format) {
        Ok(v) => panic!("expected an error for {input:?}, got {v:?}"),
        Err(msg) => {
            let prefix = format!("line {line}: ");
            assert!(
                msg.starts_with(&prefix),
                "{msg:?} should start with {prefix:?}"
            );
            assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
        }
    }
}

#[test]
fn content_types() {
    let cases = [
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Some(Format::OpenMetrics),
        ),
        (
            "application/openmetrics-text;version=0.0.1",
            Some(Format::OpenMetrics),
        ),
        ("Application/OpenMetrics-Text", Some(Format::OpenMetrics)),
        (
            "text/plain; version=0.0.4; charset=utf-8",
            Some(Format::PromText),
        ),
        (" text/plain ", Some(Format::PromText)),
        (
            "text/plain;version=1.0.0;escaping=allow-utf-8",
            Some(Format::PromText),
        ),
        (
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
            None,
        ),
        ("text/html", None),
        ("", None),
    ];
    for (ct, want) in cases {
        assert_eq!(Format::from_content_type(ct), want, "{ct}");
    }
    for f in [Format::PromText, Format::OpenMetrics] {
        assert_eq!(Format::from_content_type(f.content_type()), Some(f));
    }
}

#[test]
fn to_labels_adds_metric_name_and_sorts() {
    let input = b"http_requests_total{path=\"/a\\nb\",code=\"200\",empty=\"\"} 5\n";
    let mut p = Parser::new(input, Format::PromText);
    let Some(Entry::Series(s)) = p.next().unwrap() else {
        panic!("expected a series")
    };
    assert_eq!(
        s.raw,
        "http_requests_total{path=\"/a\\nb\",code=\"200\",empty=\"\"}"
    );
    assert_eq!(s.labels.len(), 3);
    assert_eq!(s.labels.get("path"), Some("/a\nb"));
    assert_eq!(s.labels.get("nope"), None);
    let names: Vec<_> = s.labels.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["path", "code", "empty"]);
    assert_eq!(
        s.to_labels().to_string(),
        r#"{__name__="http_requests_total", code="200", path="/a\nb"}"#
    );
    assert!(p.next().unwrap().is_none());
    assert_eq!(p.line(), 1);
}

#[test]
fn scratch_buffer_is_reused_across_lines() {
    // Escaped values land in the scratch buffer; each entry sees only its own.
    let input = "a{x=\"1\\\\\"} 1\nb{y=\"2\\\"\"} 2\nc{z=\"3\"} 3\n";
    assert_eq!(
        parse(input.as_bytes(), Format::PromText).unwrap(),
        [r#"a{x="1\\"} 1"#, r#"b{y="2\""} 2"#, r#"c{z="3"} 3"#]
    );
}

#[test]
fn errors_carry_line_and_column() {
    let mut p = Parser::new(b"ok 1\nok 2\nbad{a=1} 3\n", Format::PromText);
    assert!(p.next().unwrap().is_some());
    assert!(p.next().unwrap().is_some());
    match p.next() {
        Err(crate::Error::Parse { line, col, msg }) => {
            assert_eq!((line, col), (3, 7));
            assert_eq!(msg, r#"expected label value, got "1} 3""#);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The parser is exhausted after an error.
    assert!(p.next().unwrap().is_none());
}

#[test]
fn many_labels_duplicate_check() {
    let mut line = String::from("m{");
    for i in 0..40 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    let ok = format!("{line}}} 1\n");
    assert_eq!(parse(ok.as_bytes(), Format::PromText).unwrap().len(), 1);
    let bad = format!("{line}l7=\"again\"}} 1\n");
    assert_err(&bad, Format::PromText, 1, "duplicate label name \"l7\"");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const SEED: &str = "# HELP up Up.\n# TYPE up gauge\n# UNIT up_seconds seconds\n\
        up{job=\"a\\\"b\",\"x.y\"=\"\\n\"} 1.5e3 1704067200.125 # {id=\"x\"} 1 2\n\
        {\"q.name\",le=\"+Inf\"} NaN 5\n# comment\n\n# EOF\n";

    const INSERTS: &[u8] = b"\\\"{}=, #\n\t.eE+-";

    fn drain(input: &[u8]) {
        for f in [Format::PromText, Format::OpenMetrics] {
            let mut p = Parser::new(input, f);
            let mut guard = 0;
            loop {
                match p.next() {
                    Ok(Some(Entry::Series(s))) => {
                        let _ = s.to_labels();
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(crate::Error::Parse { line, col, .. }) => {
                        assert!(line >= 1 && col >= 1);
                        break;
                    }
                    Err(e) => panic!("unexpected error kind {e}"),
                }
                guard += 1;
                assert!(guard <= input.len() + 1);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            drain(&input);
        }

        #[test]
        fn mutated_seed(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut input = SEED.as_bytes().to_vec();
            for (at, b) in edits {
                let at = at % input.len();
                match b % 3 {
                    0 => input[at] = b,
                    1 => { input.remove(at); }
                    _ => input.insert(at, INSERTS[usize::from(b) % INSERTS.len()]),
                }
            }
            drain(&input);
        }
    }
}
