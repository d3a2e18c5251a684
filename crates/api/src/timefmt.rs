//! RFC 3339 parsing and formatting with Go's `time.RFC3339Nano` rules, in
//! milliseconds or nanoseconds since the Unix epoch (proleptic Gregorian, UTC).

use strata_model::civil::{civil_from_days, days_from_civil};

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&want)).then(|| self.i += 1)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into nanoseconds since the
/// epoch (i128: four-digit years do not fit i64 nanoseconds). `None` when malformed
/// or out of range (month 13, February 30, hour 24…).
pub(crate) fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = i64::from(c.digits(4)?);
    c.byte(b'-')?;
    let month = c.digits(2)?;
    c.byte(b'-')?;
    let day = c.digits(2)?;
    c.byte(b'T')?;
    let hour = c.digits(2)?;
    c.byte(b':')?;
    let min = c.digits(2)?;
    c.byte(b':')?;
    let sec = c.digits(2)?;
    let mut nanos: i128 = 0;
    if matches!(c.peek(), Some(b'.') | Some(b',')) {
        c.i += 1;
        let start = c.i;
        let mut scale: i128 = 100_000_000;
        while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
            nanos += i128::from(d - b'0') * scale;
            scale /= 10;
            c.i += 1;
        }
        if c.i == start {
            return None;
        }
    }
    let offset_secs: i64 = match c.peek()? {
        b'Z' => {
            c.i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            c.i += 1;
            let oh = c.digits(2)?;
            c.byte(b':')?;
            let om = c.digits(2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    if c.i != s.len() {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// Formats ms since the epoch as Go's `time.Time` JSON encoding does for a UTC
/// time: RFC 3339 with the fraction's trailing zeros trimmed
/// (`2024-01-01T00:00:00.5Z`, `1970-01-01T00:00:00Z`).
pub(crate) fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if frac != 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i128 = 1_000_000_000;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2024-01-01T00:00:00Z"),
            Some(1_704_067_200 * NS)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-01-01T00:00:05.125Z"),
            Some(1_704_067_205 * NS + 125_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200 * NS)
        );
        assert_eq!(
            parse_rfc3339_ns("2023-12-31T19:30:00-04:30"),
            Some(1_704_067_200 * NS)
        );
        assert_eq!(
            parse_rfc3339_ns("2015-07-01T20:10:51.781123456Z"),
            Some(1_435_781_451 * NS + 781_123_456)
        );
        assert_eq!(
            parse_rfc3339_ns("1969-12-31T23:59:59.999Z"),
            Some(-1_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T00:00:00Z"),
            Some(1_709_164_800 * NS)
        );
        assert_eq!(
            parse_rfc3339_ns("0001-01-01T00:00:00Z"),
            Some(-62_135_596_800 * NS)
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01T00:00:00+0100",
            "24-01-01T00:00:00Z",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ns(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_ms(1_704_067_200_500),
            "2024-01-01T00:00:00.5Z"
        );
        assert_eq!(
            format_rfc3339_ms(1_704_067_200_123),
            "2024-01-01T00:00:00.123Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
