//! Go-style formatting the promtool-compatible output needs: `time.Duration`
//! strings, tabwriter-aligned tables and base-2 byte sizes.

/// Formats milliseconds like Go's `time.Duration.String()` ("1h59m52.876s", "0s",
/// "500ms").
pub fn duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if ms < 1000 {
        s.push_str(&format!("{ms}ms"));
        return s;
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let sec = (ms / 1000) % 60;
    let frac = ms % 1000;
    if h > 0 {
        s.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        s.push_str(&format!("{m}m"));
    }
    s.push_str(&sec.to_string());
    if frac > 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('s');
    s
}

/// Formats bytes like `alecthomas/units.Base2Bytes.String()` ("218KiB224B").
pub fn base2_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 7] = [
        (1 << 60, "EiB"),
        (1 << 50, "PiB"),
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
        (1, "B"),
    ];
    if n == 0 {
        return "0B".into();
    }
    let mut s = String::new();
    let mut rest = n;
    for (u, name) in UNITS {
        if rest >= u {
            s.push_str(&format!("{}{}", rest / u, name));
            rest %= u;
        }
    }
    s
}

/// Aligns tab-separated rows like Go's `tabwriter.NewWriter(w, minwidth, 0,
/// padding, ' ', 0)`: every cell but the last of a row is padded to its column's
/// width.
pub fn tabwrite(rows: &[Vec<String>], minwidth: usize, padding: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max((c.chars().count() + padding).max(minwidth));
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                for _ in c.chars().count()..widths[i] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
    out
}

/// A UTC time from Unix milliseconds, like Go's `time.Unix(ms/1000, 0).UTC().String()`.
pub fn utc_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = strata_model::civil::civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(duration_ms(7_192_876), "1h59m52.876s");
        assert_eq!(duration_ms(7_200_000), "2h0m0s");
        assert_eq!(duration_ms(61_500), "1m1.5s");
        assert_eq!(duration_ms(5), "5ms");
        assert_eq!(base2_bytes(223_456), "218KiB224B");
        assert_eq!(base2_bytes(1024), "1KiB");
        assert_eq!(
            utc_time_ms(1_704_067_200_000),
            "2024-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(utc_time_ms(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
