use super::*;

const OM: Format = Format::OpenMetrics;

#[test]
fn full_exposition() {
    let input = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gh-bucket",xx="yy"} 4 123.123
# TYPE ii info
ii{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
bar_total 1 -1.5
baz 1 1e3
{"my.metric","label.name"="v"} 7
# HELP "my.metric" Quoted.
# EOF"#;
    let want = [
        r#"HELP go_gc_duration_seconds "A summary of the GC invocation durations.""#,
        "TYPE go_gc_duration_seconds summary",
        "UNIT go_gc_duration_seconds seconds",
        r#"go_gc_duration_seconds{quantile="0"} 4.9351e-05"#,
        r#"go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05"#,
        r#"HELP nohelp1 """#,
        r#"HELP help2 "escape \\ \n \\ \" \\x chars""#,
        "UNIT nounit ",
        "go_gc_duration_seconds_count 99",
        r#"some:aggregate:rate5m{a_b="c"} 1"#,
        "TYPE go_goroutines gauge",
        "go_goroutines 33 @123123",
        "TYPE hhh histogram",
        r#"hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4"#,
        "hhh_count 1 # {} 4",
        "TYPE ggh gaugehistogram",
        r#"ggh_bucket{le="+Inf"} 1 # {id="gh-bucket",xx="yy"} 4 @123123"#,
        "TYPE ii info",
        r#"ii{foo="bar"} 1"#,
        "TYPE ss stateset",
        r#"ss{ss="foo"} 1"#,
        "TYPE un unknown",
        "_metric_starting_with_underscore 1",
        r#"testmetric{_label_starting_with_underscore="foo"} 1"#,
        r#"testmetric{label="\"bar\""} 1"#,
        r#"foo_total 17 @1520879607789 # {id="counter-test"} 5"#,
        "bar_total 1 @-1500",
        "baz 1 @1000000",
        r#"my.metric{label.name="v"} 7"#,
        r#"HELP my.metric "Quoted.""#,
    ];
    assert_eq!(parse(input.as_bytes(), OM).unwrap(), want);
}

#[test]
fn timestamps_round_to_nearest_millisecond() {
    let input = "a 1 1704067305.25\nb 1 1704067305.125\nc 1 0.0005\nd 1 -0.0005\n\
                 e 1 0.0004999\nf 1 1.0005\ng 1 1704067200\nh 1 0.0015 # {} 1 0.0025\n# EOF\n";
    assert_eq!(
        parse(input.as_bytes(), OM).unwrap(),
        [
            "a 1 @1704067305250",
            "b 1 @1704067305125",
            "c 1 @1",
            "d 1 @-1",
            "e 1 @0",
            "f 1 @1001",
            "g 1 @1704067200000",
            "h 1 @2 # {} 1 @3",
        ]
    );
}

#[test]
fn exemplar_is_exposed() {
    let input = b"foo_total 5 # {trace_id=\"a\\\"b\",span=\"c\"} 0.5 1.5\n# EOF\n";
    let mut p = Parser::new(input, OM);
    let Some(Entry::Series(s)) = p.next().unwrap() else {
        panic!()
    };
    assert_eq!(s.timestamp_ms, None);
    assert_eq!(s.raw, "foo_total");
    let ex = s.exemplar.unwrap();
    assert_eq!(ex.labels.get("trace_id"), Some("a\"b"));
    assert_eq!(ex.labels.get("span"), Some("c"));
    assert_eq!((ex.value, ex.timestamp_ms), (0.5, Some(1500)));
    assert!(s.labels.is_empty());
    assert!(p.next().unwrap().is_none());
}

#[test]
fn eof_handling() {
    assert_eq!(parse(b"# EOF", OM).unwrap(), Vec::<String>::new());
    assert_eq!(parse(b"# EOF\n", OM).unwrap(), Vec::<String>::new());
    assert_eq!(parse(b"m 1\n# EOF", OM).unwrap(), ["m 1"]);
    assert_err("", OM, 1, "data does not end with # EOF");
    assert_err("m 1\n", OM, 2, "data does not end with # EOF");
    assert_err("m 1\nm 2", OM, 2, "data does not end with # EOF");
    assert_err("# TYPE m gauge", OM, 1, "data does not end with # EOF");
    assert_err("# EOF\n\n", OM, 2, "unexpected data after # EOF");
    assert_err("# EOF\nm 1\n# EOF\n", OM, 2, "unexpected data after # EOF");
    assert_err("# EOF \n", OM, 1, "expected \"# HELP\"");
    assert_err("#EOF\n", OM, 1, "expected \"# HELP\"");
    // Samples before the missing EOF have been returned already.
    let mut p = Parser::new(b"m 1\n", OM);
    assert!(matches!(p.next(), Ok(Some(Entry::Series(_)))));
    assert!(p.next().is_err());
    assert!(p.next().unwrap().is_none());
}

#[test]
fn malformed_lines() {
    let cases: &[(&str, usize, &str)] = &[
        ("m 1\n\n# EOF\n", 2, "unexpected blank line"),
        ("# a comment\n# EOF\n", 1, "(OpenMetrics has no comments)"),
        (
            "# HELP m\n# EOF\n",
            1,
            "expected a space and text after metric name in HELP",
        ),
        (
            "# TYPE m untyped\n# EOF\n",
            1,
            "invalid metric type \"untyped\"",
        ),
        (
            "# TYPE m gauge \n# EOF\n",
            1,
            "invalid metric type \"gauge \"",
        ),
        (
            "# TYPE 1m gauge\n# EOF\n",
            1,
            "expected metric name after TYPE",
        ),
        (
            "# UNIT m_seconds bytes\n# EOF\n",
            1,
            "unit \"bytes\" is not a suffix of metric \"m_seconds\"",
        ),
        ("# UNIT seconds seconds\n# EOF\n", 1, "is not a suffix"),
        ("# UNIT m_ _\n# EOF\n", 1, "is not a suffix"),
        ("# UNIT mseconds seconds\n# EOF\n", 1, "is not a suffix"),
        ("m  1\n# EOF\n", 1, "expected a float value, got \"\""),
        (
            "m\t1\n# EOF\n",
            1,
            "expected a space and value after metric, got \"\\t1\"",
        ),
        (" m 1\n# EOF\n", 1, "expected metric name"),
        (
            "m 1 \n# EOF\n",
            1,
            "expected a timestamp in seconds, got \"\"",
        ),
        ("m 1 2 \n# EOF\n", 1, "expected timestamp or exemplar"),
        (
            "m{a=\"b\", c=\"d\"} 1\n# EOF\n",
            1,
            "expected label name, got \" c=",
        ),
        (
            "m{a = \"b\"} 1\n# EOF\n",
            1,
            "expected '=' after label name",
        ),
        (
            "m {a=\"b\"} 1\n# EOF\n",
            1,
            "expected a float value, got \"{a=\\\"b\\\"}\"",
        ),
        (
            "m 1 NaN\n# EOF\n",
            1,
            "expected a timestamp in seconds, got \"NaN\"",
        ),
        ("m 1 +Inf\n# EOF\n", 1, "expected a timestamp in seconds"),
        ("m 1 1e999\n# EOF\n", 1, "expected a timestamp in seconds"),
        (
            "m 1 1 2\n# EOF\n",
            1,
            "expected timestamp or exemplar (\"# {\"), got \"2\"",
        ),
        (
            "m 1 # id=\"x\" 1\n# EOF\n",
            1,
            "expected timestamp or exemplar",
        ),
        (
            "m 1 # {id=\"x\"}\n# EOF\n",
            1,
            "expected a space and exemplar value, got end of line",
        ),
        (
            "m 1 # {id=\"x\"} 1 NaN\n# EOF\n",
            1,
            "expected a timestamp in seconds",
        ),
        (
            "m 1 # {id=\"x\"} 1 2 3\n# EOF\n",
            1,
            "expected end of line, got \" 3\"",
        ),
        (
            "m 1 # {a=\"1\",a=\"2\"} 1\n# EOF\n",
            1,
            "duplicate label name \"a\"",
        ),
        (
            "m 1 # {\"x\"} 1\n# EOF\n",
            1,
            "expected label name, got a bare quoted string",
        ),
        ("m abc\n# EOF\n", 1, "expected a float value, got \"abc\""),
        ("m 0x1p3\n# EOF\n", 1, "expected a float value"),
        ("m 1\r\n# EOF\n", 1, "expected a float value, got \"1\\r\""),
        ("m{a=\"b\\\"} 1\n# EOF\n", 1, "unterminated quoted string"),
        ("m{a=\"b\\", 1, "backslash at end of line"),
        (
            "m{a=\"1\",a=\"2\"} 1\n# EOF\n",
            1,
            "duplicate label name \"a\"",
        ),
        (
            "m{__name__=\"m\"} 1\n# EOF\n",
            1,
            "duplicate label name \"__name__\"",
        ),
        ("{a=\"b\"} 1\n# EOF\n", 1, "metric name not set"),
    ];
    for &(input, line, needle) in cases {
        assert_err(input, OM, line, needle);
    }
}

#[test]
fn invalid_utf8_names_the_line() {
    assert_err_bytes(
        b"m 1\n# HELP m \xff\n# EOF\n",
        OM,
        2,
        "invalid UTF-8 (column 10)",
    );
    assert_err_bytes(b"m{a=\"\xc0\"} 1\n# EOF\n", OM, 1, "invalid UTF-8");
    assert_err_bytes(b"m 1\n# EOF\n\xff", OM, 3, "unexpected data after # EOF");
}

#[test]
fn unit_suffix_accepted() {
    let input = "# UNIT m_seconds seconds\n# UNIT _s s\n# UNIT \"a.b_bytes\" bytes\n# EOF\n";
    assert_eq!(
        parse(input.as_bytes(), OM).unwrap(),
        [
            "UNIT m_seconds seconds",
            "UNIT _s s",
            "UNIT a.b_bytes bytes"
        ]
    );
}
