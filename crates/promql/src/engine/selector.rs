//! Instant and range vector selectors over prefetched series.

use promql_parser::parser::{MatrixSelector, VectorSelector};
use strata_model::is_stale_nan;

use strata_model::{Labels, Sample};

use super::prepare::{selector_key, FetchedSeries};
use super::{absent, at_ms, duration_ms, offset_ms, Evaluator, Grid, RangeSeries, StepSeries};
use crate::Result;

/// Where a range input's samples come from.
pub(crate) enum RangeSrc<'a> {
    /// A range selector: fetched chunks, decoded one series at a time (stale
    /// markers dropped).
    Fetched(&'a [FetchedSeries]),
    /// A subquery's evaluated series.
    Owned(Vec<RangeSeries>),
}

/// A range-vector argument of a function, ready for windowing: its series and how
/// each step's window `(end - range, end]` is placed.
pub(crate) struct RangeInput<'a> {
    pub src: RangeSrc<'a>,
    pub range_ms: i64,
    pub offset_ms: i64,
    pub at_ms: Option<i64>,
}

impl RangeInput<'_> {
    /// Number of series.
    pub fn len(&self) -> usize {
        match &self.src {
            RangeSrc::Fetched(f) => f.len(),
            RangeSrc::Owned(o) => o.len(),
        }
    }

    /// Labels of series `i`.
    pub fn labels(&self, i: usize) -> &Labels {
        match &self.src {
            RangeSrc::Fetched(f) => &f[i].labels,
            RangeSrc::Owned(o) => &o[i].labels,
        }
    }

    /// Calls `f(i, samples)` for every series, decoding fetched ones into a reused
    /// buffer.
    pub fn for_each_series(&self, mut f: impl FnMut(usize, &[Sample])) -> Result<()> {
        match &self.src {
            RangeSrc::Owned(o) => {
                for (i, s) in o.iter().enumerate() {
                    f(i, &s.samples);
                }
            }
            RangeSrc::Fetched(fs) => {
                let mut buf = Vec::new();
                for (i, s) in fs.iter().enumerate() {
                    s.decode(&mut buf, true)?;
                    f(i, &buf);
                }
            }
        }
        Ok(())
    }

    /// The (inclusive) end of the window of step `i`.
    #[inline]
    pub fn window_end(&self, grid: &Grid, i: usize) -> i64 {
        self.at_ms.unwrap_or_else(|| grid.ts(i)) - self.offset_ms
    }
}

impl<'a> Evaluator<'a> {
    fn selector_series(&self, vs: &VectorSelector) -> &'a [FetchedSeries] {
        let data: &'a super::Fetched = self.data;
        data.by_selector
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The value (or, with `want_ts`, the sample timestamp in seconds) of each series
    /// at each step: the latest sample in `(t - lookback, t]`, none if it is stale.
    pub(crate) fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        grid: Grid,
        want_ts: bool,
    ) -> Result<Vec<StepSeries>> {
        let off = offset_ms(&vs.offset)?;
        let at = at_ms(&vs.at, self.settings.query_start, self.settings.query_end)?;
        let lb = self.settings.lookback_ms;
        let n_series = self.selector_series(vs).len();
        self.reserve(n_series.saturating_mul(grid.n))?;
        let mut out = Vec::with_capacity(n_series);
        let mut buf = Vec::new();
        for idx in 0..n_series {
            self.check_deadline()?;
            let s = &self.selector_series(vs)[idx];
            s.decode(&mut buf, false)?;
            let smp = &buf;
            let mut vals = vec![absent(); grid.n];
            let pick = |j: usize, t: i64| -> Option<f64> {
                let x = smp.get(j.checked_sub(1)?)?;
                if x.t > t - lb && !is_stale_nan(x.v) {
                    Some(if want_ts { x.t as f64 / 1000.0 } else { x.v })
                } else {
                    None
                }
            };
            let mut any = false;
            if let Some(t0) = at {
                let t = t0 - off;
                let j = smp.partition_point(|x| x.t <= t);
                if let Some(v) = pick(j, t) {
                    vals.iter_mut().for_each(|x| *x = v);
                    any = true;
                }
            } else {
                let mut j = 0;
                for (i, slot) in vals.iter_mut().enumerate() {
                    let t = grid.ts(i) - off;
                    while j < smp.len() && smp[j].t <= t {
                        j += 1;
                    }
                    if let Some(v) = pick(j, t) {
                        *slot = v;
                        any = true;
                    }
                }
            }
            if any {
                out.push(StepSeries {
                    labels: s.labels.clone(),
                    vals,
                });
            }
        }
        Ok(out)
    }

    /// A range selector evaluated at one time (an instant query's matrix result).
    pub(crate) fn eval_matrix_selector(
        &mut self,
        ms: &MatrixSelector,
        t: i64,
    ) -> Result<Vec<RangeSeries>> {
        let input = self.matrix_input(ms)?;
        let end = input.at_ms.unwrap_or(t) - input.offset_ms;
        let start = end - input.range_ms;
        let mut out = Vec::new();
        input.for_each_series(|i, smp| {
            let lo = smp.partition_point(|x| x.t <= start);
            let hi = smp.partition_point(|x| x.t <= end);
            let samples = smp.get(lo..hi).unwrap_or_default().to_vec();
            if !samples.is_empty() {
                out.push(RangeSeries {
                    labels: input.labels(i).clone(),
                    samples,
                });
            }
        })?;
        let n: usize = out.iter().map(|s| s.samples.len()).sum();
        self.reserve(n)?;
        Ok(out)
    }

    /// A range selector as function input: its series without stale markers.
    pub(crate) fn matrix_input(&mut self, ms: &MatrixSelector) -> Result<RangeInput<'a>> {
        let range_ms = duration_ms(&ms.range)?;
        let offset = offset_ms(&ms.vs.offset)?;
        let at = at_ms(
            &ms.vs.at,
            self.settings.query_start,
            self.settings.query_end,
        )?;
        let src = self.selector_series(&ms.vs);
        // Only one series is decoded at a time; count the largest.
        let largest = src.iter().map(|s| s.approx_samples).max().unwrap_or(0);
        self.reserve(largest)?;
        Ok(RangeInput {
            src: RangeSrc::Fetched(src),
            range_ms,
            offset_ms: offset,
            at_ms: at,
        })
    }
}

/// Calls `f(series_index, step, window)` for every step's window of every series;
/// windows are `(end - range, end]`, found with two pointers.
pub(crate) fn for_each_window(
    input: &RangeInput<'_>,
    grid: &Grid,
    mut f: impl FnMut(usize, usize, &[strata_model::Sample], i64),
) -> Result<()> {
    input.for_each_series(|si, smp| {
        let (mut lo, mut hi) = (0usize, 0usize);
        for i in 0..grid.n {
            let end = input.window_end(grid, i);
            let start = end - input.range_ms;
            if input.at_ms.is_some() && i > 0 {
                // Same window every step.
            } else {
                while hi < smp.len() && smp[hi].t <= end {
                    hi += 1;
                }
                while lo < hi && smp[lo].t <= start {
                    lo += 1;
                }
                if lo > hi {
                    lo = hi;
                }
            }
            f(si, i, smp.get(lo..hi).unwrap_or_default(), end);
        }
    })
}
