//! Prometheus duration syntax (`prometheus/common/model.Duration`): `1y2w3d4h5m6s7ms`,
//! units from largest to smallest, each at most once; `0` alone needs no unit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

const MS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

/// Units in the only order they may appear, with their length in ms.
const UNITS: [(&str, i64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Largest duration Go's `time.Duration` (int64 nanoseconds) can hold, in ms.
const MAX_MS: i64 = i64::MAX / 1_000_000;

/// Parses a Prometheus duration into milliseconds.
///
/// Accepts what `model.ParseDuration` accepts: `0`, or one or more
/// `<digits><unit>` groups with units `y w d h m s ms` in that order, each at most
/// once. Durations are never negative and at most ~292 years (Go's limit).
pub fn parse_duration_ms(s: &str) -> Result<i64> {
    match s {
        "0" => return Ok(0),
        "" => return Err(Error::Duration("empty duration string".into())),
        _ => {}
    }
    let invalid = || Error::Duration(format!("not a valid duration string: {s:?}"));
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let digits = s.get(start..i).ok_or_else(invalid)?;
        let ustart = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        let unit = s.get(ustart..i).ok_or_else(invalid)?;
        if unit.is_empty() {
            return Err(invalid());
        }
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(Error::Duration(format!(
                "unknown unit {unit:?} in duration {s:?}"
            )));
        };
        if pos < next_unit {
            return Err(invalid());
        }
        next_unit = pos + 1;
        let out_of_range = || Error::Duration("duration out of range".into());
        let n: i64 = digits.parse().map_err(|_| out_of_range())?;
        total = n
            .checked_mul(UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= MAX_MS)
            .ok_or_else(out_of_range)?;
    }
    Ok(total)
}

/// Formats milliseconds as `model.Duration.String()` does: `0s` for zero, years
/// and weeks only when they divide the duration exactly (`90d`, not `12w6d`),
/// then days, hours, minutes, seconds and ms (`1d12h`, `1m30s500ms`). Negative
/// durations get a leading `-`.
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let mut rest = ms.unsigned_abs();
    for (i, (unit, mult)) in UNITS.iter().enumerate() {
        let mult = mult.unsigned_abs();
        if i < 2 && (rest / mult) * mult != rest {
            continue;
        }
        let v = rest / mult;
        if v > 0 {
            out.push_str(&v.to_string());
            out.push_str(unit);
            rest -= v * mult;
        }
    }
    out
}

/// A duration written in Prometheus syntax; it prints the same way back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration {
    ms: i64,
}

impl PromDuration {
    /// A duration of `ms` milliseconds (not negative).
    pub const fn from_millis(ms: i64) -> Self {
        Self { ms }
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> i64 {
        self.ms
    }

    /// As a `std::time::Duration`.
    pub fn to_std(self) -> Duration {
        Duration::from_millis(self.ms.max(0).unsigned_abs())
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration_ms(self.ms))
    }
}

impl FromStr for PromDuration {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_duration_ms(s).map(Self::from_millis)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        let cases = [
            ("0", 0),
            ("0s", 0),
            ("1ms", 1),
            ("15s", 15_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1h30m", 5_400_000),
            ("15d", 15 * MS_PER_DAY),
            ("1w", 7 * MS_PER_DAY),
            ("1y", 365 * MS_PER_DAY),
            (
                "1y2w3d4h5m6s7ms",
                365 * MS_PER_DAY + 17 * MS_PER_DAY + 14_706_007,
            ),
            ("90m", 5_400_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration_ms(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for s in [
            "", "1", "m", "1.5h", "-1s", "1m1h", "1s1s", "1x", "1h ", " 1h", "1H",
        ] {
            assert!(parse_duration_ms(s).is_err(), "{s:?} should fail");
        }
        let e = parse_duration_ms("1x").unwrap_err().to_string();
        assert_eq!(e, r#"unknown unit "x" in duration "1x""#);
        let e = parse_duration_ms("1m1h").unwrap_err().to_string();
        assert_eq!(e, r#"not a valid duration string: "1m1h""#);
        assert_eq!(
            parse_duration_ms("").unwrap_err().to_string(),
            "empty duration string"
        );
        assert_eq!(
            parse_duration_ms("300y").unwrap_err().to_string(),
            "duration out of range"
        );
        assert!(parse_duration_ms("99999999999999999999999s").is_err());
    }

    #[test]
    fn formats_like_model_duration() {
        let cases = [
            (0, "0s"),
            (1, "1ms"),
            (1500, "1s500ms"),
            (300_000, "5m"),
            (7_200_000, "2h"),
            (36 * 3_600_000, "1d12h"),
            (15 * MS_PER_DAY, "15d"),
            (14 * MS_PER_DAY, "2w"),
            (31 * MS_PER_DAY, "31d"),
            (90 * MS_PER_DAY, "90d"),
            (365 * MS_PER_DAY, "1y"),
            (100 * 365 * MS_PER_DAY, "100y"),
            (366 * MS_PER_DAY, "366d"),
            (-60_000, "-1m"),
        ];
        for (ms, want) in cases {
            assert_eq!(format_duration_ms(ms), want, "{ms}");
        }
    }

    #[test]
    fn round_trips() {
        for s in ["1d12h", "5m", "2h", "1y", "1m30s500ms", "0s"] {
            let d: PromDuration = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
    }
}
