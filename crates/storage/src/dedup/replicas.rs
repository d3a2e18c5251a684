//! Merging the samples of several replicas of one series into one series.
//!
//! Starts from Thanos' penalty algorithm (`pkg/dedup/iter.go`, see [`super::penalty`]):
//! stay on one replica and switch only when it has a gap. It differs where users
//! reported wrong results (thanos-io/thanos#1326, #2401, #2890):
//!
//! - **Gaps** are judged against each replica's own scrape interval (the median
//!   distance between its samples), not against the last delta. The current replica
//!   keeps the output while its next sample is at most 1.5 intervals away; otherwise
//!   the replica with the earliest sample at least a quarter interval after the last
//!   output sample (so switching does not raise the sample rate, nor end the output
//!   with two samples a few ms apart that make `irate` read zero) takes over. A replica
//!   that was down therefore leaves no gap as long as another has data.
//! - **Stale markers** of the current replica do not end the output when another
//!   replica has a live sample within 1.5 intervals: the output switches instead.
//!   When no replica has data, the marker is emitted. Other NaNs pass through.
//! - **Strictly increasing timestamps:** a replica's sample at or before the last
//!   output sample is never emitted, so a switch cannot double count.
//! - **Counters across a switch.** Replicas read a counter at different moments, so
//!   right after a switch the new replica may read less than the last output value.
//!   That decrease is replica skew, not a reset, unless the replica itself shows the
//!   reset: its value fell below its own previous sample, and that drop is not the
//!   reset already emitted from the old replica (the time windows of the two drops
//!   do not overlap). Without a previous sample, the old replica's next sample
//!   decides (a real reset happens in every replica). For skew, the output holds the
//!   last value until the new replica catches up (at most two intervals), so `rate()`
//!   sees neither a fake reset nor double counting and the sum of increases
//!   telescopes to the true one. This only applies while the series looks like a
//!   counter: over the last 16 output steps and the new replica's last four samples,
//!   every decrease was reset-like (to less than half the previous value). Gauges
//!   pass through untouched unless they rose steadily over that window; then a
//!   switch may hold the previous value for at most two intervals.
//!
//! Complexity: O(n · r) time for n samples over r replicas (every cursor only moves
//! forward) plus O(n) to estimate the intervals; memory is the decoded samples of
//! the group and the output.

use std::collections::VecDeque;

use strata_model::{is_stale_nan, Sample};

/// How many recent output steps decide whether the series looks like a counter.
const HISTORY: usize = 16;
/// How many of the new replica's samples before a switch are checked for decreases.
const REPLICA_HISTORY: usize = 4;

/// Interval used when no replica has two samples: nothing counts as a gap.
const UNKNOWN_INTERVAL_MS: i64 = i64::MAX / 8;

/// Whether going from `prev` to `next` is a change a counter cannot show: counters
/// only fall when they reset, to less than half their value, and are never negative.
/// Negative values are never counters.
fn gauge_like_drop(prev: f64, next: f64) -> bool {
    next < 0.0 || (next < prev && next > prev / 2.0)
}

/// Median distance between consecutive samples, `None` with fewer than two samples.
pub(crate) fn median_interval(s: &[Sample]) -> Option<i64> {
    let mut d: Vec<i64> = s
        .windows(2)
        .map(|w| w[1].t.saturating_sub(w[0].t))
        .filter(|d| *d > 0)
        .collect();
    if d.is_empty() {
        return None;
    }
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable(mid);
    Some(*m)
}

/// Merges the samples of several replicas of one series (each in time order) into
/// one series with strictly increasing timestamps. See the module docs.
pub fn merge_replicas(replicas: &[Vec<Sample>]) -> Vec<Sample> {
    let known: Vec<Option<i64>> = replicas.iter().map(|r| median_interval(r)).collect();
    let fallback = known.iter().flatten().copied().max();
    let intervals: Vec<i64> = known
        .iter()
        .map(|k| k.or(fallback).unwrap_or(UNKNOWN_INTERVAL_MS).max(1))
        .collect();
    let total: usize = replicas.iter().map(Vec::len).sum();
    let mut m = Merger {
        reps: replicas,
        intervals,
        pos: vec![0; replicas.len()],
        out: Vec::with_capacity(total / replicas.len().max(1) + 16),
        cur: None,
        last_t: i64::MIN,
        last_v: None,
        history: VecDeque::with_capacity(HISTORY),
        clamp: None,
        last_reset: None,
    };
    m.run();
    m.out
}

/// An active hold of the output value after a switch to a lagging replica.
#[derive(Clone, Copy, Debug)]
struct Clamp {
    floor: f64,
    until_t: i64,
}

struct Merger<'a> {
    reps: &'a [Vec<Sample>],
    intervals: Vec<i64>,
    /// Per replica: index of the first sample after `last_t`.
    pos: Vec<usize>,
    out: Vec<Sample>,
    cur: Option<usize>,
    last_t: i64,
    /// Last finite output value.
    last_v: Option<f64>,
    /// Whether each recent finite output step was a decrease.
    history: VecDeque<bool>,
    clamp: Option<Clamp>,
    /// Time window `(lo, hi]` of the last reset emitted.
    last_reset: Option<(i64, i64)>,
}

impl Merger<'_> {
    fn gap_limit(&self, r: usize) -> i64 {
        let i = self.intervals[r];
        i.saturating_add(i / 2)
    }

    fn next_of(&self, r: usize) -> Option<Sample> {
        self.reps[r].get(self.pos[r]).copied()
    }

    fn run(&mut self) {
        loop {
            let last_t = self.last_t;
            for (r, p) in self.pos.iter_mut().enumerate() {
                let s = &self.reps[r];
                while s.get(*p).is_some_and(|x| x.t <= last_t) {
                    *p += 1;
                }
            }
            let Some((r, idx, switched)) = self.choose() else {
                return;
            };
            self.emit(r, idx, switched);
        }
    }

    /// Which replica and sample index come next, and whether that is a switch.
    fn choose(&self) -> Option<(usize, usize, bool)> {
        if let Some(c) = self.cur {
            if let Some(x) = self.next_of(c) {
                let limit = self.last_t.saturating_add(self.gap_limit(c));
                if is_stale_nan(x.v) {
                    // Another replica still live within the gap limit beats the marker.
                    let horizon = x.t.saturating_add(self.gap_limit(c));
                    return match self.candidate(Some(c), horizon) {
                        Some((o, k)) => Some((o, k, true)),
                        None => Some((c, self.pos[c], false)),
                    };
                }
                if x.t <= limit {
                    return Some((c, self.pos[c], false));
                }
                // A gap in the current replica: another one may fill it, or report
                // that the series went stale meanwhile.
                let other = self
                    .candidate(Some(c), x.t.saturating_sub(1))
                    .or_else(|| self.stale_before(c, x.t));
                return match other {
                    Some((o, k)) => Some((o, k, true)),
                    None => Some((c, self.pos[c], false)),
                };
            }
        }
        // No current replica (start) or it ended: earliest live sample, else any.
        let switched = self.cur.is_some();
        if let Some((o, k)) = self.candidate(self.cur, i64::MAX) {
            return Some((o, k, switched));
        }
        (0..self.reps.len())
            .filter_map(|r| self.next_of(r).map(|x| (x.t, r)))
            .min()
            .map(|(_, r)| (r, self.pos[r], switched))
    }

    /// The replica (other than `exclude`) with the earliest live sample at or before
    /// `horizon` and at least a quarter interval after the last output sample.
    fn candidate(&self, exclude: Option<usize>, horizon: i64) -> Option<(usize, usize)> {
        let mut best: Option<(i64, usize, usize)> = None;
        for r in 0..self.reps.len() {
            if Some(r) == exclude {
                continue;
            }
            let s = &self.reps[r];
            let live = |k: &usize| s.get(*k).is_some_and(|x| !is_stale_nan(x.v));
            let Some(first) = (self.pos[r]..s.len()).find(live) else {
                continue;
            };
            let mut k = first;
            if self.last_t != i64::MIN {
                let iv = self.cur.map_or(self.intervals[r], |c| self.intervals[c]);
                let min_t = self.last_t.saturating_add(iv / 4);
                let Some(spaced) = (first..s.len()).filter(live).find(|k| s[*k].t >= min_t) else {
                    // Only samples too close to the last output one: they add nothing
                    // but a near-zero `irate`.
                    continue;
                };
                k = spaced;
            }
            let t = s[k].t;
            if t > horizon {
                continue;
            }
            if best.is_none_or(|(bt, _, _)| t < bt) {
                best = Some((t, r, k));
            }
        }
        best.map(|(_, r, k)| (r, k))
    }

    /// The earliest stale marker that is the next sample of a replica other than
    /// `exclude`, before `horizon`.
    fn stale_before(&self, exclude: usize, horizon: i64) -> Option<(usize, usize)> {
        (0..self.reps.len())
            .filter(|r| *r != exclude)
            .filter_map(|r| self.next_of(r).map(|x| (x, r)))
            .filter(|(x, _)| is_stale_nan(x.v) && x.t < horizon)
            .min_by_key(|(x, _)| x.t)
            .map(|(_, r)| (r, self.pos[r]))
    }

    fn looks_like_counter(&self, r: usize, k: usize) -> bool {
        if self.history.len() < 2 || self.history.iter().any(|d| *d) {
            return false;
        }
        let s = &self.reps[r];
        let from = k.saturating_sub(REPLICA_HISTORY);
        let window = s.get(from..k).unwrap_or(&[]);
        !window.windows(2).any(|w| gauge_like_drop(w[0].v, w[1].v))
    }

    /// The replica's own previous finite sample before index `k`.
    fn prev_finite(&self, r: usize, k: usize) -> Option<Sample> {
        self.reps[r]
            .get(..k)
            .and_then(|s| {
                s.iter()
                    .rev()
                    .take(REPLICA_HISTORY)
                    .find(|x| x.v.is_finite())
            })
            .copied()
    }

    /// Whether switching to replica `r` at sample `x` (below the last output value)
    /// crosses a real counter reset rather than replica skew.
    fn is_real_reset(&self, r: usize, k: usize, x: Sample, old: Option<usize>) -> bool {
        match self.prev_finite(r, k) {
            Some(p) if x.v < p.v => {
                // The replica shows a reset in (p.t, x.t]; it is new unless the
                // output already emitted a reset in an overlapping window.
                !self.last_reset.is_some_and(|(lo, hi)| p.t < hi && lo < x.t)
            }
            Some(_) => false,
            None => {
                // No history in the new replica: a real reset shows in the old one.
                let lv = self.last_v.unwrap_or(f64::NEG_INFINITY);
                old.and_then(|o| {
                    let s = &self.reps[o];
                    s.get(self.pos[o]..)
                        .and_then(|rest| rest.iter().find(|y| y.v.is_finite()))
                        .map(|y| y.v < lv)
                })
                .unwrap_or(false)
            }
        }
    }

    fn emit(&mut self, r: usize, k: usize, switched: bool) {
        let Some(x) = self.reps[r].get(k).copied() else {
            return;
        };
        let old = self.cur;
        self.cur = Some(r);
        self.pos[r] = k;
        let mut v = x.v;
        if x.v.is_finite() {
            if let Some(lv) = self.last_v {
                if x.v < lv {
                    if switched {
                        self.clamp = None;
                        if self.looks_like_counter(r, k) && !self.is_real_reset(r, k, x, old) {
                            let iv = self.intervals[r];
                            self.clamp = Some(Clamp {
                                floor: lv,
                                until_t: x.t.saturating_add(iv.saturating_mul(2)),
                            });
                        }
                    } else if let Some(c) = self.clamp {
                        // Still catching up after a switch, unless the replica
                        // itself drops (its own reset).
                        let own_drop = self.prev_finite(r, k).is_some_and(|p| x.v < p.v);
                        if own_drop || x.t > c.until_t {
                            self.clamp = None;
                        }
                    }
                    match self.clamp {
                        Some(c) if x.v < c.floor => v = c.floor,
                        _ => self.last_reset = Some((self.last_t, x.t)),
                    }
                } else {
                    self.clamp = None;
                }
                if self.history.len() == HISTORY {
                    self.history.pop_front();
                }
                self.history.push_back(gauge_like_drop(lv, v));
            }
            self.last_v = Some(v);
        } else if is_stale_nan(x.v) {
            self.clamp = None;
        }
        self.out.push(Sample { t: x.t, v });
        self.last_t = x.t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_model::STALE_NAN_BITS;

    fn s(v: &[(i64, f64)]) -> Vec<Sample> {
        v.iter().map(|(t, v)| Sample::new(*t, *v)).collect()
    }

    fn pairs(v: &[Sample]) -> Vec<(i64, f64)> {
        v.iter().map(|x| (x.t, x.v)).collect()
    }

    #[test]
    fn stays_on_one_replica_and_fills_gaps() {
        let a = s(&[(0, 1.0), (10, 2.0), (20, 3.0), (60, 7.0), (70, 8.0)]);
        let b = s(&[
            (5, 1.0),
            (15, 2.0),
            (25, 3.0),
            (35, 4.0),
            (45, 5.0),
            (55, 6.0),
        ]);
        let out = merge_replicas(&[a, b]);
        assert_eq!(
            pairs(&out),
            vec![
                (0, 1.0),
                (10, 2.0),
                (20, 3.0),
                (25, 3.0),
                (35, 4.0),
                (45, 5.0),
                (55, 6.0),
                (60, 7.0),
                (70, 8.0)
            ]
        );
    }

    #[test]
    fn switch_does_not_fake_a_reset() {
        // b reads the counter a little earlier than a.
        let a = s(&[(0, 100.0), (10, 110.0), (20, 120.0)]);
        let b = s(&[
            (2, 99.0),
            (12, 108.0),
            (22, 118.0),
            (32, 128.0),
            (42, 138.0),
        ]);
        let out = merge_replicas(&[a, b]);
        let v: Vec<f64> = out.iter().map(|x| x.v).collect();
        assert!(v.windows(2).all(|w| w[1] >= w[0]), "{v:?}");
        assert_eq!(out.last().map(|x| x.v), Some(138.0));
    }

    #[test]
    fn real_reset_at_switch_is_kept() {
        let a = s(&[(0, 100.0), (10, 110.0), (20, 120.0)]);
        let b = s(&[(2, 99.0), (12, 108.0), (22, 118.0), (32, 3.0), (42, 13.0)]);
        let a2 = s(&[(0, 100.0), (10, 110.0), (20, 120.0), (30, 2.0)]);
        let out = merge_replicas(&[a, b]);
        let resets = out.windows(2).filter(|w| w[1].v < w[0].v).count();
        assert_eq!(resets, 1, "{:?}", pairs(&out));
        let out = merge_replicas(&[a2, s(&[(2, 99.0), (12, 108.0), (22, 118.0)])]);
        assert_eq!(out.last().map(|x| x.v), Some(2.0));
    }

    #[test]
    fn stale_marker_does_not_cut_output() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let a = s(&[(0, 1.0), (10, 2.0), (20, stale)]);
        let b = s(&[(5, 1.0), (15, 2.0), (25, 3.0), (35, 4.0)]);
        let out = merge_replicas(&[a, b.clone()]);
        assert!(out.iter().all(|x| !is_stale_nan(x.v)), "{:?}", pairs(&out));
        assert_eq!(out.last().map(|x| x.t), Some(35));
        // When every replica goes stale, the marker is kept.
        let mut b2 = b;
        b2.push(Sample::new(45, stale));
        let out = merge_replicas(&[s(&[(0, 1.0), (10, 2.0)]), b2]);
        assert!(out.last().is_some_and(|x| is_stale_nan(x.v)));
    }

    #[test]
    fn stale_marker_of_other_replica_fills_a_gap_that_is_no_data() {
        // a is down from 20 to 60; b fills in, then its target goes away at 25: the
        // series was absent until a is back.
        let stale = f64::from_bits(STALE_NAN_BITS);
        let a = s(&[(0, 1.0), (10, 2.0), (60, 7.0), (70, 8.0)]);
        let b = s(&[(5, 1.0), (15, 2.0), (25, stale)]);
        let out = merge_replicas(&[a, b]);
        let ts: Vec<i64> = out.iter().map(|x| x.t).collect();
        assert_eq!(ts, vec![0, 10, 15, 25, 60, 70]);
        assert!(is_stale_nan(out[3].v));
    }

    #[test]
    fn normal_nan_passes_through() {
        let a = s(&[(0, 1.0), (10, f64::NAN), (20, 3.0)]);
        let b = s(&[(5, 1.0), (15, 2.0), (25, 3.0)]);
        let out = merge_replicas(&[a, b]);
        assert!(out.iter().any(|x| x.v.is_nan() && !is_stale_nan(x.v)));
    }

    #[test]
    fn issue_1326_one_reset_when_replicas_reset_apart() {
        // thanos-io/thanos#1326: replica b repeats a stale pre-reset value for a while.
        let t = [0, 14, 28, 42, 56, 70].map(|x| x * 1000);
        let a = [46906.0, 42.0, 66.0, 66.0, 66.0, 66.0];
        let b = [47000.0, 47000.0, 47000.0, 115.0, 115.0, 201.0];
        let a: Vec<Sample> = t.iter().zip(a).map(|(t, v)| Sample::new(*t, v)).collect();
        let b: Vec<Sample> = t.iter().zip(b).map(|(t, v)| Sample::new(*t, v)).collect();
        let out = merge_replicas(&[a.clone(), b.clone()]);
        let resets = out.windows(2).filter(|w| w[1].v < w[0].v).count();
        assert_eq!(resets, 1, "{:?}", pairs(&out));
        let out = merge_replicas(&[b, a]);
        let resets = out.windows(2).filter(|w| w[1].v < w[0].v).count();
        assert_eq!(resets, 1, "{:?}", pairs(&out));
    }

    #[test]
    fn issue_2890_last_sample_from_lagging_replica_is_no_reset() {
        // thanos-io/thanos#2890: the most recent sample comes from the other replica,
        // which read the counter earlier; `rate` must not see a reset there.
        let a = s(&[
            (0, 100.0),
            (10_000, 200.0),
            (20_000, 300.0),
            (30_000, 400.0),
        ]);
        let b = s(&[
            (5_000, 140.0),
            (15_000, 240.0),
            (25_000, 340.0),
            (35_000, 390.0),
        ]);
        let out = merge_replicas(&[a, b]);
        assert_eq!(out.last().map(|x| x.t), Some(35_000));
        assert!(
            out.windows(2).all(|w| w[1].v >= w[0].v),
            "{:?}",
            pairs(&out)
        );
    }

    #[test]
    fn issue_1788_alternating_replicas_keep_one_rate() {
        // thanos-io/thanos#1788: replicas 7 s apart; the output follows one replica
        // and its increase equals that replica's.
        let a: Vec<Sample> = (0..20)
            .map(|i| Sample::new(i * 15_000, 668_153.0 + 20.0 * i as f64))
            .collect();
        let b: Vec<Sample> = (0..20)
            .map(|i| Sample::new(i * 15_000 + 7_000, 668_156.0 + 20.0 * i as f64))
            .collect();
        let out = merge_replicas(&[a.clone(), b.clone()]);
        // a throughout, then b's newer last sample.
        assert_eq!(out.get(..a.len()), Some(&a[..]));
        assert_eq!(out.get(a.len()..), b.last().map(std::slice::from_ref));
    }

    #[test]
    fn three_replicas_fill_each_others_gaps() {
        let mk = |off: i64, down: std::ops::Range<i64>| -> Vec<Sample> {
            (0..30)
                .filter(|i| !down.contains(i))
                .map(|i| Sample::new(i * 10_000 + off, i as f64))
                .collect()
        };
        let out = merge_replicas(&[mk(0, 5..12), mk(3_000, 10..20), mk(6_000, 18..25)]);
        assert!(out.windows(2).all(|w| w[1].t - w[0].t <= 15_000));
        assert!(out.windows(2).all(|w| w[1].v >= w[0].v));
    }

    #[test]
    fn gauges_are_not_clamped() {
        let a = s(&[(0, 5.0), (10, 1.0), (20, 9.0)]);
        let b = s(&[(2, 4.0), (12, 3.0), (22, 8.0), (32, 2.0), (42, 6.0)]);
        let out = merge_replicas(&[a, b]);
        assert_eq!(out.iter().find(|x| x.t == 32).map(|x| x.v), Some(2.0));
    }
}
