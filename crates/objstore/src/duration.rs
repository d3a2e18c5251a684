//! Durations as written in Thanos' YAML (Prometheus `model.Duration`):
//! `1m30s`, `2h`, `500ms`, `1d`; units `y w d h m s ms`, each at most once, in
//! that order.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses a Prometheus duration such as `1m30s`; `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    let mut total_ms: u64 = 0;
    let mut rest = s;
    let mut next_unit = 0usize;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest
            .get(..digits)
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        rest = rest.get(digits..).ok_or_else(bad)?;
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest.get(..letters).ok_or_else(bad)?;
        rest = rest.get(letters..).ok_or_else(bad)?;
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if idx < next_unit {
            return Err(bad());
        }
        next_unit = idx + 1;
        let ms = n.checked_mul(UNITS[idx].1).ok_or_else(bad)?;
        total_ms = total_ms.checked_add(ms).ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Deserializes an optional duration string.
pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "1", "s", "1x", "30s1m", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
