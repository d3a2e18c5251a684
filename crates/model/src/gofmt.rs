//! Go-compatible text formatting: `strconv.Quote` and `%g` for float64.
//!
//! Prometheus tools print label values with `strconv.Quote` and sample values with
//! `%g`; output that must be byte-identical to theirs (`tsdb dump`) uses these.

/// Quotes `s` like Go's `strconv.Quote`: printable characters are kept, `"` and `\`
/// are escaped, control characters use `\n`-style or `\xNN` escapes, and other
/// non-printable characters use `\uXXXX` / `\UXXXXXXXX`.
///
/// Go decides printability from Unicode tables; here a character is printable unless
/// it is a control, a space other than U+0020, a format character, a private-use
/// character or a noncharacter. Unassigned code points (printed escaped by Go) are the
/// only known difference.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Whether Go's `unicode.IsPrint` would (very nearly) say `c` is printable.
pub fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters (Cf) that commonly appear.
    if matches!(u, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0x110BD | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
    {
        return false;
    }
    // Private use (Co) and noncharacters.
    if matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD | 0xFDD0..=0xFDEF) {
        return false;
    }
    (u & 0xFFFE) != 0xFFFE
}

/// Formats `v` like Go's `fmt.Sprintf("%g", v)`: the shortest decimal that reads back
/// as `v`, in exponent form (`1.5e+09`, `5.6256e-05`) when the decimal exponent is
/// below -4 or at least 6, and `NaN`, `+Inf`, `-Inf` for the special values.
pub fn format_g(v: f64) -> String {
    let mut s = String::new();
    write_g(&mut s, v);
    s
}

/// Appends `v` formatted like Go's `%g` to `out` (see [`format_g`]).
pub fn write_g(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "d.ddde[-]x".
    let sci = format!("{v:e}");
    let (mant, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(&a.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_go() {
        for (v, s) in [
            (5.6256e-05, "5.6256e-05"),
            (420899.0, "420899"),
            (1.7039808e9, "1.7039808e+09"),
            (1e6, "1e+06"),
            (123456.5, "123456.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1.5e-300, "1.5e-300"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (100.0, "100"),
            (99999.9, "99999.9"),
        ] {
            assert_eq!(format_g(v), s, "{v}");
        }
    }

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(quote("Zürich 東京 🌡"), "\"Zürich 東京 🌡\"");
        assert_eq!(quote("\x01\x7f\u{a0}"), r#""\x01\x7f\u00a0""#);
    }
}
