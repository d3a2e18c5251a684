//! Reading Thanos' downsampled data as samples (thanos
//! `pkg/compact/downsample`: `ApplyCounterResetsSeriesIterator` and
//! `AverageChunkIterator`).
//!
//! A counter sub-chunk holds the first raw sample, the reset-adjusted counter
//! at each window end, and the last raw value again under the last window's
//! timestamp. [`CounterResetsIterator`] walks the counter sub-chunks of a
//! series' chunks in order and yields a monotonic counter: the duplicated last
//! raw value of one chunk, compared with the first raw value of the next,
//! tells whether the counter reset between them.

use crate::error::{Error, Result};
use crate::{SampleIterator, XorIterator};

/// Yields a monotonically increasing counter over the counter sub-chunks (or
/// raw chunks) of one series, in time order: counter resets inside and
/// between chunks are added up, overlaps are skipped, NaNs dropped. Thanos'
/// `ApplyCounterResetsSeriesIterator`, sample for sample.
pub struct CounterResetsIterator<'a> {
    chunks: Vec<XorIterator<'a>>,
    i: usize,
    total: u64,
    last_t: i64,
    last_v: f64,
    total_v: f64,
}

impl<'a> CounterResetsIterator<'a> {
    /// An iterator over `chunks`, which must be ordered by time.
    pub fn new(chunks: Vec<XorIterator<'a>>) -> Self {
        Self {
            chunks,
            i: 0,
            total: 0,
            last_t: i64::MIN,
            last_v: 0.0,
            total_v: 0.0,
        }
    }

    /// The last raw value seen (the marker sample of the last chunk read).
    pub fn last_v(&self) -> f64 {
        self.last_v
    }

    fn advance(&mut self) -> Result<Option<(i64, f64)>> {
        loop {
            let Some(it) = self.chunks.get_mut(self.i) else {
                return Ok(None);
            };
            let Some((t, v)) = it.next()? else {
                // The next chunk continues after the last timestamp (Thanos seeks to
                // lastT+1, which skips the same samples as the checks below).
                self.i += 1;
                continue;
            };
            if v.is_nan() {
                continue;
            }
            if self.total == 0 {
                self.total = 1;
                self.last_t = t;
                self.last_v = v;
                self.total_v = v;
                return Ok(Some((t, v)));
            }
            if t > self.last_t {
                if v >= self.last_v {
                    self.total_v += v - self.last_v;
                } else {
                    self.total_v += v;
                }
                self.last_t = t;
                self.last_v = v;
                self.total += 1;
                return Ok(Some((t, self.total_v)));
            }
            if t == self.last_t {
                // The true last raw value of the chunk, for the next comparison.
                self.last_v = v;
            }
            // Older samples (overlaps) are skipped.
        }
    }
}

impl SampleIterator for CounterResetsIterator<'_> {
    fn next(&mut self) -> Result<Option<(i64, f64)>> {
        self.advance()
    }
}

/// Average samples (sum / count) from a sum and a count sub-chunk stamped alike
/// (Thanos' `AverageChunkIterator`).
pub struct AverageIterator<'a> {
    count: XorIterator<'a>,
    sum: XorIterator<'a>,
}

impl<'a> AverageIterator<'a> {
    /// Pairs a count and a sum sub-chunk.
    pub fn new(count: XorIterator<'a>, sum: XorIterator<'a>) -> Self {
        Self { count, sum }
    }
}

impl SampleIterator for AverageIterator<'_> {
    fn next(&mut self) -> Result<Option<(i64, f64)>> {
        match (self.count.next()?, self.sum.next()?) {
            (None, None) => Ok(None),
            (Some((ct, cv)), Some((st, sv))) => {
                if ct != st {
                    return Err(Error::Corrupt("sum and count timestamps not aligned"));
                }
                Ok(Some((ct, sv / cv)))
            }
            _ => Err(Error::Corrupt("sum and count iterator not aligned")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::XorChunk;

    fn xor(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut a = XorChunk::new().appender();
        for (t, v) in samples {
            a.append(*t, *v).unwrap();
        }
        a.finish().into_bytes()
    }

    fn drain(mut it: impl SampleIterator) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        while let Some(s) = it.next().unwrap() {
            out.push(s);
        }
        out
    }

    // Thanos TestApplyCounterResetsIterator, "series with stale marker".
    #[test]
    fn counter_resets_with_stale_marker() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let chunks = [
            xor(&[
                (100, 10.0),
                (200, 20.0),
                (300, 10.0),
                (400, 20.0),
                (400, 5.0),
            ]),
            xor(&[
                (500, 10.0),
                (600, 20.0),
                (700, 30.0),
                (800, 40.0),
                (800, 10.0),
            ]),
            xor(&[(900, 5.0), (1000, 10.0), (1100, 15.0)]),
            xor(&[(1200, 20.0), (1250, stale), (1300, 40.0)]),
            xor(&[(1400, 30.0), (1500, 30.0), (1600, 50.0)]),
        ];
        let it = CounterResetsIterator::new(chunks.iter().map(|c| XorIterator::new(c)).collect());
        let expected: Vec<(i64, f64)> = [
            (100, 10),
            (200, 20),
            (300, 30),
            (400, 40),
            (500, 45),
            (600, 55),
            (700, 65),
            (800, 75),
            (900, 80),
            (1000, 85),
            (1100, 90),
            (1200, 95),
            (1300, 115),
            (1400, 145),
            (1500, 145),
            (1600, 165),
        ]
        .iter()
        .map(|&(t, v)| (t, f64::from(v)))
        .collect();
        assert_eq!(drain(it), expected);
    }

    #[test]
    fn average_of_sum_and_count() {
        let c = xor(&[(1, 2.0), (2, 4.0)]);
        let s = xor(&[(1, 10.0), (2, 2.0)]);
        let got = drain(AverageIterator::new(
            XorIterator::new(&c),
            XorIterator::new(&s),
        ));
        assert_eq!(got, vec![(1, 5.0), (2, 0.5)]);
        let short = xor(&[(1, 10.0)]);
        let mut it = AverageIterator::new(XorIterator::new(&c), XorIterator::new(&short));
        assert!(it.next().is_ok());
        assert!(it.next().is_err());
    }
}
