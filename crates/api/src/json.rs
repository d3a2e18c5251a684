//! A small hand-rolled JSON writer that prints exactly what Prometheus prints
//! (`util/jsonutil`, `web/api/v1/json_codec.go`, jsoniter's string escaping, Go's
//! `strconv.AppendFloat` and `encoding/json` float formatting).
//!
//! Results can hold millions of points, so they are written straight into one
//! `String` rather than built as `serde_json::Value` trees.

use std::fmt::Write as _;

use strata_model::Labels;
use strata_promql::Value;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string the way jsoniter does: `"` and `\` escaped, `\n`,
/// `\r`, `\t` as short escapes, other bytes below 0x20 as `\u00XX`. With `html`
/// (jsoniter's HTML-escaping string encoder, used for plain Go strings), `<`, `>`,
/// `&` become `\u003c`, `\u003e`, `\u0026` and U+2028/U+2029 are escaped too;
/// label names and values go through the unescaped writer, as in Prometheus.
pub(crate) fn write_str(out: &mut String, s: &str, html: bool) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' if html => Some("\\u003c"),
            '>' if html => Some("\\u003e"),
            '&' if html => Some("\\u0026"),
            '\u{2028}' if html => Some("\\u2028"),
            '\u{2029}' if html => Some("\\u2029"),
            c if (c as u32) < 0x20 => Some(""),
            _ => None,
        };
        let Some(esc) = esc else { continue };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let b = c as u32 as u8;
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a timestamp in ms as Prometheus' `jsonutil.MarshalTimestamp` does: a JSON
/// number of seconds, with a `.` and exactly three digits only when the ms part is
/// not zero (`1.500`, `1`, `-0.001`).
pub(crate) fn write_timestamp(out: &mut String, t_ms: i64) {
    if t_ms < 0 {
        out.push('-');
    }
    let t = t_ms.unsigned_abs();
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// Go's `strconv.FormatFloat(f, 'e', -1, 64)`: shortest round-trip digits with an
/// exponent of at least two digits and a sign (`1e-07`, `1.5e+21`).
pub(crate) fn go_format_e(out: &mut String, f: f64) {
    if let Some(s) = special(f) {
        out.push_str(s);
        return;
    }
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    out.push_str(mant);
    out.push('e');
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    out.push(sign);
    if digits.len() < 2 {
        out.push('0');
    }
    out.push_str(digits);
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, never an
/// exponent (`1e21` is 22 digits); `NaN`, `+Inf`, `-Inf`, `-0`.
pub(crate) fn go_format_f(out: &mut String, f: f64) {
    match special(f) {
        Some(s) => out.push_str(s),
        // Rust's Display for f64 is shortest round-trip without exponent and
        // prints negative zero as `-0`, as Go does.
        None => {
            let _ = write!(out, "{f}");
        }
    }
}

fn special(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f == f64::INFINITY {
        Some("+Inf")
    } else if f == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Appends a sample value as Prometheus' `jsonutil.MarshalFloat` does: a JSON string,
/// `'e'` format when |f| < 1e-6 or |f| >= 1e21 (zero excepted), `'f'` otherwise.
pub(crate) fn write_sample_value(out: &mut String, f: f64) {
    out.push('"');
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        go_format_e(out, f);
    } else {
        go_format_f(out, f);
    }
    out.push('"');
}

/// Appends a float as Go's `encoding/json` writes a `float64` (used for the
/// timestamps of scalars and strings, `float64(T)/1000`): shortest round-trip, `'e'`
/// only when |f| < 1e-6 or |f| >= 1e21, with `e-07` cleaned up to `e-7`.
pub(crate) fn write_go_json_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        // encoding/json refuses these; timestamps never are.
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut s = String::new();
        go_format_e(&mut s, f);
        if let Some(pos) = s.find("e-0") {
            s.remove(pos + 2);
        }
        out.push_str(&s);
    } else {
        go_format_f(out, f);
    }
}

/// Appends a label set as a JSON object in label order (`{}` when empty).
pub(crate) fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, lbl) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &lbl.name, false);
        out.push(':');
        write_str(out, &lbl.value, false);
    }
    out.push('}');
}

/// Appends an array of strings (label names, values, warnings), HTML-escaped as
/// Go's encoder does for plain strings.
pub(crate) fn write_str_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, s, true);
    }
    out.push(']');
}

/// Appends `{"resultType":…,"result":…}` for a query result.
pub(crate) fn write_query_data(out: &mut String, v: &Value) {
    out.push_str("{\"resultType\":");
    write_str(out, v.type_name(), true);
    out.push_str(",\"result\":");
    write_value(out, v);
    out.push('}');
}

/// Appends a PromQL value in the shapes of Prometheus' JSON codec.
pub(crate) fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Scalar { t, v } => {
            out.push('[');
            write_go_json_float(out, *t as f64 / 1000.0);
            out.push_str(",\"");
            go_format_f(out, *v);
            out.push_str("\"]");
        }
        Value::String { t, s } => {
            out.push('[');
            write_go_json_float(out, *t as f64 / 1000.0);
            out.push(',');
            write_str(out, s, true);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.metric);
                out.push_str(",\"value\":[");
                write_timestamp(out, s.t);
                out.push(',');
                write_sample_value(out, s.v);
                out.push_str("]}");
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.metric);
                if !s.samples.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, p) in s.samples.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        write_timestamp(out, p.t);
                        out.push(',');
                        write_sample_value(out, p.v);
                        out.push(']');
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_model::Sample;
    use strata_promql::{Series, VectorSample};

    use super::*;

    fn sv(f: f64) -> String {
        let mut s = String::new();
        write_sample_value(&mut s, f);
        s
    }

    fn ts(t: i64) -> String {
        let mut s = String::new();
        write_timestamp(&mut s, t);
        s
    }

    fn scalar(f: f64) -> String {
        let mut s = String::new();
        go_format_f(&mut s, f);
        s
    }

    fn gojson(f: f64) -> String {
        let mut s = String::new();
        write_go_json_float(&mut s, f);
        s
    }

    #[test]
    fn timestamps_keep_three_digit_fraction_only_when_non_zero() {
        assert_eq!(ts(0), "0");
        assert_eq!(ts(1000), "1");
        assert_eq!(ts(1500), "1.500");
        assert_eq!(ts(1001), "1.001");
        assert_eq!(ts(1010), "1.010");
        assert_eq!(ts(1), "0.001");
        assert_eq!(ts(999), "0.999");
        assert_eq!(ts(1_704_067_200_000), "1704067200");
        assert_eq!(ts(1_704_067_205_125), "1704067205.125");
        assert_eq!(ts(-1), "-0.001");
        assert_eq!(ts(-1500), "-1.500");
        assert_eq!(ts(-2000), "-2");
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
        assert_eq!(ts(i64::MAX), "9223372036854775.807");
    }

    #[test]
    fn sample_values_use_f_format_in_the_middle_range() {
        assert_eq!(sv(0.0), "\"0\"");
        assert_eq!(sv(1.0), "\"1\"");
        assert_eq!(sv(-1.5), "\"-1.5\"");
        assert_eq!(sv(0.1), "\"0.1\"");
        assert_eq!(sv(1.0 / 3.0), "\"0.3333333333333333\"");
        assert_eq!(sv(123456789.0), "\"123456789\"");
        assert_eq!(sv(0.000001), "\"0.000001\"");
        assert_eq!(sv(1e20), "\"100000000000000000000\"");
        assert_eq!(sv(999999999999999900000.0), "\"999999999999999900000\"");
        assert_eq!(sv(1.7e-6), "\"0.0000017\"");
    }

    #[test]
    fn sample_values_use_go_e_format_outside() {
        assert_eq!(sv(1e-7), "\"1e-07\"");
        assert_eq!(sv(-1e-7), "\"-1e-07\"");
        assert_eq!(sv(9.99e-7), "\"9.99e-07\"");
        assert_eq!(sv(1e21), "\"1e+21\"");
        assert_eq!(sv(1.5e21), "\"1.5e+21\"");
        assert_eq!(sv(-2.5e100), "\"-2.5e+100\"");
        assert_eq!(sv(1.7976931348623157e308), "\"1.7976931348623157e+308\"");
        assert_eq!(sv(5e-324), "\"5e-324\"");
        assert_eq!(sv(2.2250738585072014e-308), "\"2.2250738585072014e-308\"");
        assert_eq!(sv(1.2345e-10), "\"1.2345e-10\"");
    }

    #[test]
    fn special_sample_values() {
        assert_eq!(sv(f64::NAN), "\"NaN\"");
        assert_eq!(sv(f64::from_bits(0x7ff0_0000_0000_0002)), "\"NaN\"");
        assert_eq!(sv(f64::INFINITY), "\"+Inf\"");
        assert_eq!(sv(f64::NEG_INFINITY), "\"-Inf\"");
        assert_eq!(sv(-0.0), "\"-0\"");
    }

    #[test]
    fn scalars_never_use_exponents() {
        assert_eq!(scalar(1e21), "1000000000000000000000");
        assert_eq!(scalar(1e-7), "0.0000001");
        assert_eq!(scalar(-0.0), "-0");
        assert_eq!(scalar(f64::NAN), "NaN");
        assert_eq!(scalar(f64::INFINITY), "+Inf");
        assert_eq!(scalar(f64::NEG_INFINITY), "-Inf");
        assert_eq!(scalar(2.5), "2.5");
        let mut s = String::new();
        write_value(&mut s, &Value::Scalar { t: 1500, v: 1e21 });
        assert_eq!(s, "[1.5,\"1000000000000000000000\"]");
    }

    #[test]
    fn go_json_floats_for_scalar_timestamps() {
        assert_eq!(gojson(1.5), "1.5");
        assert_eq!(gojson(0.0), "0");
        assert_eq!(gojson(1704067200.0), "1704067200");
        assert_eq!(gojson(1704067205.125), "1704067205.125");
        assert_eq!(gojson(0.001), "0.001");
        assert_eq!(gojson(-0.001), "-0.001");
        assert_eq!(gojson(1e-7), "1e-7");
        assert_eq!(gojson(1e21), "1e+21");
        assert_eq!(gojson(1.25e-10), "1.25e-10");
    }

    #[test]
    fn strings_escape_like_jsoniter() {
        let esc = |s: &str, html: bool| {
            let mut o = String::new();
            write_str(&mut o, s, html);
            o
        };
        assert_eq!(esc("plain", true), "\"plain\"");
        assert_eq!(esc("a\"b\\c", false), r#""a\"b\\c""#);
        assert_eq!(esc("l1\nl2\r\t", false), r#""l1\nl2\r\t""#);
        assert_eq!(
            esc("\u{1}\u{8}\u{c}\u{1f}", false),
            r#""\u0001\u0008\u000c\u001f""#
        );
        assert_eq!(esc("<a&b>", true), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(esc("<a&b>", false), "\"<a&b>\"");
        assert_eq!(esc("x\u{2028}y", true), r#""x\u2028y""#);
        assert_eq!(esc("x\u{2028}y", false), "\"x\u{2028}y\"");
        assert_eq!(esc("Zürich 東京 \u{7f}", false), "\"Zürich 東京 \u{7f}\"");
        assert_eq!(esc("", true), "\"\"");
    }

    #[test]
    fn vector_matrix_string_shapes() {
        let m = Labels::from_pairs([("__name__", "up"), ("job", "a<b")]);
        let mut s = String::new();
        write_query_data(
            &mut s,
            &Value::Vector(vec![VectorSample {
                metric: m.clone(),
                t: 1500,
                v: 1.0,
            }]),
        );
        assert_eq!(
            s,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a<b"},"value":[1.500,"1"]}]}"#
        );
        let mut s = String::new();
        write_query_data(&mut s, &Value::Vector(vec![]));
        assert_eq!(s, r#"{"resultType":"vector","result":[]}"#);
        let mut s = String::new();
        write_query_data(
            &mut s,
            &Value::Matrix(vec![
                Series {
                    metric: Labels::empty(),
                    samples: vec![
                        Sample { t: 0, v: 0.5 },
                        Sample {
                            t: 60_000,
                            v: f64::NAN,
                        },
                    ],
                },
                Series {
                    metric: m,
                    samples: vec![],
                },
            ]),
        );
        assert_eq!(
            s,
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"0.5"],[60,"NaN"]]},{"metric":{"__name__":"up","job":"a<b"}}]}"#
        );
        let mut s = String::new();
        write_query_data(&mut s, &Value::Matrix(vec![]));
        assert_eq!(s, r#"{"resultType":"matrix","result":[]}"#);
        let mut s = String::new();
        write_value(
            &mut s,
            &Value::String {
                t: 2000,
                s: "a<b\n".into(),
            },
        );
        assert_eq!(s, r#"[2,"a\u003cb\n"]"#);
    }

    #[test]
    fn output_is_valid_json() {
        let v = Value::Vector(vec![VectorSample {
            metric: Labels::from_pairs([("a", "\u{0}\"\\\u{2028}<")]),
            t: -1,
            v: -0.0,
        }]);
        let mut s = String::new();
        write_query_data(&mut s, &v);
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed["result"][0]["metric"]["a"], "\u{0}\"\\\u{2028}<");
        assert_eq!(parsed["result"][0]["value"][0], -0.001);
        assert_eq!(parsed["result"][0]["value"][1], "-0");
    }
}
