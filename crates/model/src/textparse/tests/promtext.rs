use super::*;

const P: Format = Format::PromText;

#[test]
fn full_exposition() {
    let input = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# 	TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
go_gc_duration_seconds{ quantile = "0.8" , a = "b" } 8.3835e-05
go_gc_duration_seconds { quantile="0.9", a="b"} 8.3835e-05
# Hrandom comment starting with prefix of HELP
#
wind_speed{A="2",c="3"} 12345
# comment with escaped \n newline
# comment with escaped \ escape character
# HELP nohelp1
# HELP nohelp2 
# HELP
# TYPE
go_gc_duration_seconds{ quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"}	1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33  	123123
  _metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
testmetric{le="10"} 1
# HELP metric foo\x00bar
null_byte_metric{a="abc\x00"} 1
# TYPE untyped_metric untyped
untyped_metric -Inf -5"#;
    let want = [
        r#"HELP go_gc_duration_seconds "A summary of the GC invocation durations.""#,
        "TYPE go_gc_duration_seconds summary",
        r#"go_gc_duration_seconds{quantile="0"} 4.9351e-05"#,
        r#"go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05"#,
        r#"go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05"#,
        r#"go_gc_duration_seconds{quantile="0.8",a="b"} 8.3835e-05"#,
        r#"go_gc_duration_seconds{quantile="0.9",a="b"} 8.3835e-05"#,
        "COMMENT # Hrandom comment starting with prefix of HELP",
        "COMMENT #",
        r#"wind_speed{A="2",c="3"} 12345"#,
        r"COMMENT # comment with escaped \n newline",
        r"COMMENT # comment with escaped \ escape character",
        r#"HELP nohelp1 """#,
        r#"HELP nohelp2 """#,
        "COMMENT # HELP",
        "COMMENT # TYPE",
        r#"go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05"#,
        r#"go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05"#,
        "go_gc_duration_seconds_count 99",
        r#"some:aggregate:rate5m{a_b="c"} 1"#,
        r#"HELP go_goroutines "Number of goroutines that currently exist.""#,
        "TYPE go_goroutines gauge",
        "go_goroutines 33 @123123",
        "_metric_starting_with_underscore 1",
        r#"testmetric{_label_starting_with_underscore="foo"} 1"#,
        r#"testmetric{label="\"bar\""} 1"#,
        r#"testmetric{le="10"} 1"#,
        r#"HELP metric "foo\\x00bar""#,
        r#"null_byte_metric{a="abc\\x00"} 1"#,
        "TYPE untyped_metric unknown",
        "untyped_metric -Inf @-5",
    ];
    assert_eq!(parse(input.as_bytes(), P).unwrap(), want);
}

#[test]
fn help_escapes_only_backslash_and_newline() {
    let input = "# HELP m a \\\\ b \\n c \\\" d \\x\n# HELP m2 trailing  \n";
    assert_eq!(
        parse(input.as_bytes(), P).unwrap(),
        [
            r#"HELP m "a \\ b \n c \\\" d \\x""#,
            r#"HELP m2 "trailing  ""#
        ]
    );
}

#[test]
fn label_value_escapes() {
    let input = r#"m{a="x\\y",b="q\"q",c="l\nl",d="keep\t",e="ünï\\"} 1"#;
    assert_eq!(
        parse(input.as_bytes(), P).unwrap(),
        [r#"m{a="x\\y",b="q\"q",c="l\nl",d="keep\\t",e="ünï\\"} 1"#]
    );
}

#[test]
fn values() {
    let input = "a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e3\nf -0.5\ng .5\nh 5.\ni 0\n";
    assert_eq!(
        parse(input.as_bytes(), P).unwrap(),
        ["a NaN", "b +Inf", "c -Inf", "d +Inf", "e 1000", "f -0.5", "g 0.5", "h 5", "i 0"]
    );
    let mut p = Parser::new(b"a NaN\n", P);
    let Some(Entry::Series(s)) = p.next().unwrap() else {
        panic!()
    };
    assert_eq!(s.value.to_bits(), crate::NORMAL_NAN_BITS);
}

#[test]
fn quoted_utf8_names() {
    let input = r#"# HELP "my.metric" It has dots.
# TYPE "my.metric" gauge
{"my.metric", "label.name"="v", plain="p"} 1 1000
{"my.metric"} 2
{"esc\"aped", "l\\n"="x"} 3
"#;
    assert_eq!(
        parse(input.as_bytes(), P).unwrap(),
        [
            r#"HELP my.metric "It has dots.""#,
            "TYPE my.metric gauge",
            r#"my.metric{label.name="v",plain="p"} 1 @1000"#,
            "my.metric 2",
            r#"esc"aped{l\n="x"} 3"#,
        ]
    );
}

#[test]
fn blank_and_empty_input() {
    assert_eq!(parse(b"", P).unwrap(), Vec::<String>::new());
    assert_eq!(parse(b"\n\n \t \n", P).unwrap(), Vec::<String>::new());
    assert_eq!(parse(b"m 1", P).unwrap(), ["m 1"]);
    assert_eq!(parse(b"\n\nm{} 1\n\n", P).unwrap(), ["m 1"]);
}

#[test]
fn comments_are_not_utf8_checked() {
    assert_eq!(
        parse(b"# \xff\xfe junk\n# UNIT m s\n# EOF\nm 1\n", P).unwrap(),
        [
            "COMMENT # \u{fffd}\u{fffd} junk",
            "COMMENT # UNIT m s",
            "COMMENT # EOF",
            "m 1"
        ]
    );
}

#[test]
fn malformed_lines() {
    let cases: &[(&str, usize, &str)] = &[
        ("m\n", 1, "expected value after metric, got end of line"),
        ("m{a=\"b\"}\n", 1, "expected value after metric"),
        (
            "ok 1\nm 1 2 3\n",
            2,
            "expected end of line after timestamp, got \"3\"",
        ),
        (
            "m 1 1.5\n",
            1,
            "expected an integer timestamp in milliseconds, got \"1.5\"",
        ),
        ("m 1 99999999999999999999\n", 1, "integer timestamp"),
        ("m abc\n", 1, "expected a float value, got \"abc\""),
        ("m 0x1p3\n", 1, "expected a float value, got \"0x1p3\""),
        ("m 1_000\n", 1, "expected a float value"),
        ("m 1,5\n", 1, "expected a float value"),
        ("m -nan\n", 1, "expected a float value"),
        ("m{a} 1\n", 1, "expected '=' after label name, got \"} 1\""),
        ("m{a=b} 1\n", 1, "expected label value, got \"b} 1\""),
        (
            "m{a=\"b\" c=\"d\"} 1\n",
            1,
            "expected ',' or '}' after label value",
        ),
        ("m{,} 1\n", 1, "expected label name, got \",} 1\""),
        ("m{a=\"b\",,} 1\n", 1, "expected label name"),
        ("m{1a=\"b\"} 1\n", 1, "expected label name, got \"1a"),
        ("m{a:b=\"c\"} 1\n", 1, "expected '=' after label name"),
        (
            "m{a=\"b\"\n",
            1,
            "expected ',' or '}' after label value, got end of line",
        ),
        ("m{a=\"b} 1\n", 1, "unterminated quoted string"),
        ("m{a=\"b\\\"} 1\n", 1, "unterminated quoted string"),
        ("m{a=\"b\\", 1, "backslash at end of line"),
        ("m{a=\"1\",a=\"2\"} 1\n", 1, "duplicate label name \"a\""),
        (
            "m{__name__=\"x\"} 1\n",
            1,
            "duplicate label name \"__name__\"",
        ),
        ("{__name__=\"x\"} 1\n", 1, "metric name not set"),
        ("{a=\"b\"} 1\n", 1, "metric name not set"),
        ("{} 1\n", 1, "metric name not set"),
        ("{\"m\",\"n\"} 1\n", 1, "metric name already set"),
        ("m{\"n\"} 1\n", 1, "metric name already set"),
        ("{\"\"} 1\n", 1, "empty metric name"),
        ("m{\"\"=\"v\"} 1\n", 1, "empty label name"),
        ("1m 1\n", 1, "expected metric name, got \"1m 1\""),
        ("m-x 1\n", 1, "expected a float value, got \"-x\""),
        ("# TYPE m gauges\n", 1, "invalid metric type \"gauges\""),
        ("# TYPE m unknown\n", 1, "invalid metric type \"unknown\""),
        (
            "# TYPE m\tstateset\n",
            1,
            "invalid metric type \"stateset\"",
        ),
        ("# TYPE m \n", 1, "invalid metric type \"\""),
        (
            "# HELP 1m x\n",
            1,
            "expected metric name after HELP, got \"1m x\"",
        ),
        (
            "# TYPE m{} gauge\n",
            1,
            "expected whitespace after metric name",
        ),
        ("m 1\r\n", 1, "expected a float value, got \"1\\r\""),
    ];
    for &(input, line, needle) in cases {
        assert_err(input, P, line, needle);
    }
}

#[test]
fn invalid_utf8_names_the_line() {
    assert_err_bytes(b"ok 1\nm{a=\"\xff\"} 1\n", P, 2, "invalid UTF-8 (column 6)");
    assert_err_bytes(b"ok 1\n\n# HELP m \xc3\x28\n", P, 3, "invalid UTF-8");
    assert_err_bytes(b"m\xe2\x82 1\n", P, 1, "invalid UTF-8");
}

#[test]
fn samples_stream_before_errors() {
    let mut p = Parser::new(b"a 1\nb 2\nc{ 3\n", P);
    assert!(matches!(p.next(), Ok(Some(Entry::Series(_)))));
    assert!(matches!(p.next(), Ok(Some(Entry::Series(_)))));
    assert!(p.next().is_err());
    assert_eq!(p.line(), 3);
}
