//! The per-request lookback delta (Thanos `LookbackDeltaFactory`,
//! `cmd/thanos/query.go`).
//!
//! PromQL looks back at most the lookback delta (default 5m) for the latest
//! sample of a plain selector. Downsampled data has one sample per 5m or 1h
//! window, so with the default a 1h series would show up only in the first 5
//! minutes after each aggregate and be a gap for the other 55. With
//! `--query.dynamic-lookback-delta` (the default) the lookback grows with the
//! request's `max_source_resolution` to the resolution it may read.

/// Thanos' resolution levels: raw, 5m and 1h, in ms.
const RESOLUTIONS: [i64; 3] = [0, 5 * 60 * 1000, 60 * 60 * 1000];

/// Picks the lookback delta of a request from its `max_source_resolution`.
///
/// Rule (exactly Thanos'): with `d` the configured lookback delta (0 when the
/// flag is unset: the engine's default applies), a request whose max source
/// resolution exceeds `max(5m, d)` gets `max(d, 1h)`, one exceeding `d` (but
/// not `max(5m, d)`) gets `max(d, 5m)`, any other `d`. Without the dynamic mode
/// it is always `d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookbackDelta {
    /// The configured lookback delta, ms (0: the engine's default).
    configured_ms: i64,
    /// Resolution levels considered (only raw when not dynamic).
    resolutions: Vec<i64>,
    /// The lookback delta of each level, ms.
    deltas: Vec<i64>,
}

impl LookbackDelta {
    /// The factory for `--query.lookback-delta` (`configured_ms`, 0 when unset)
    /// and `--query.dynamic-lookback-delta` (`dynamic`).
    pub fn new(configured_ms: i64, dynamic: bool) -> Self {
        let resolutions: Vec<i64> = if dynamic {
            RESOLUTIONS.to_vec()
        } else {
            RESOLUTIONS[..1].to_vec()
        };
        let configured_ms = configured_ms.max(0);
        // As upstream: each level's delta is the configured one, raised to the
        // level's resolution when below it (and carried to the next level).
        let mut cur = configured_ms;
        let deltas = resolutions
            .iter()
            .map(|&r| {
                if configured_ms < r {
                    cur = r;
                }
                cur
            })
            .collect();
        Self {
            configured_ms,
            resolutions,
            deltas,
        }
    }

    /// The lookback delta, ms, for a request reading at most
    /// `max_source_resolution_ms`; 0 means "the engine's default".
    pub fn for_resolution(&self, max_source_resolution_ms: i64) -> i64 {
        for i in (1..self.resolutions.len()).rev() {
            let left = self.resolutions[i - 1].max(self.configured_ms);
            if left < max_source_resolution_ms {
                return self.deltas[i];
            }
        }
        self.deltas.first().copied().unwrap_or(self.configured_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;

    /// Configured lookback, dynamic, and (max source resolution, want) pairs.
    type Case = (i64, bool, &'static [(i64, i64)]);

    /// Upstream's `TestLookbackDeltaFactory` (`cmd/thanos/query_test.go`).
    #[test]
    fn matches_thanos_cases() {
        let cases: [Case; 5] = [
            (0, false, &[(0, 0), (5 * MINUTE, 0), (HOUR, 0)]),
            (
                3 * MINUTE,
                true,
                &[
                    (2 * MINUTE, 3 * MINUTE),
                    (3 * MINUTE, 3 * MINUTE),
                    (4 * MINUTE, 5 * MINUTE),
                    (5 * MINUTE, 5 * MINUTE),
                    (6 * MINUTE, HOUR),
                    (HOUR, HOUR),
                    (2 * HOUR, HOUR),
                ],
            ),
            (
                5 * MINUTE,
                true,
                &[
                    (0, 5 * MINUTE),
                    (5 * MINUTE, 5 * MINUTE),
                    (6 * MINUTE, HOUR),
                    (59 * MINUTE, HOUR),
                    (HOUR, HOUR),
                    (2 * HOUR, HOUR),
                ],
            ),
            (
                30 * MINUTE,
                true,
                &[
                    (0, 30 * MINUTE),
                    (5 * MINUTE, 30 * MINUTE),
                    (30 * MINUTE, 30 * MINUTE),
                    (31 * MINUTE, HOUR),
                    (59 * MINUTE, HOUR),
                    (HOUR, HOUR),
                    (2 * HOUR, HOUR),
                ],
            ),
            (
                HOUR,
                true,
                &[
                    (0, HOUR),
                    (5 * MINUTE, HOUR),
                    (HOUR, HOUR),
                    (2 * HOUR, HOUR),
                ],
            ),
        ];
        for (configured, dynamic, tcs) in cases {
            let f = LookbackDelta::new(configured, dynamic);
            for &(res, want) in tcs {
                assert_eq!(
                    f.for_resolution(res),
                    want,
                    "lookback {configured} dynamic {dynamic} resolution {res}"
                );
            }
        }
    }

    /// The flag unset (0): raw requests keep the engine's default, downsampled
    /// ones get 5m or 1h.
    #[test]
    fn unset_lookback_follows_resolution() {
        let f = LookbackDelta::new(0, true);
        assert_eq!(f.for_resolution(0), 0);
        assert_eq!(f.for_resolution(1), 5 * MINUTE);
        assert_eq!(f.for_resolution(5 * MINUTE), 5 * MINUTE);
        assert_eq!(f.for_resolution(5 * MINUTE + 1), HOUR);
        let f = LookbackDelta::new(0, false);
        assert_eq!(f.for_resolution(HOUR), 0);
        let f = LookbackDelta::new(2 * HOUR, false);
        assert_eq!(f.for_resolution(HOUR), 2 * HOUR);
    }
}
