//! Thanos' penalty deduplication (`pkg/dedup/iter.go`, `dedupSeriesIterator` with
//! `counterErrAdjustSeriesIterator`), kept as a baseline to compare against
//! [`super::merge_replicas`] (the property tests show where it double counts or fakes
//! counter resets). Replicas are folded pairwise, as Thanos chains its iterators.

use strata_model::Sample;

/// Penalty before any delta is known, ms (Thanos `initialPenalty`).
const INITIAL_PENALTY_MS: i64 = 5000;

/// One replica's cursor with Thanos' counter error adjustment.
struct Cursor<'a> {
    s: &'a [Sample],
    i: usize,
    adjust: f64,
    counter: bool,
}

impl Cursor<'_> {
    fn valid(&self) -> bool {
        self.i < self.s.len()
    }

    fn seek(&mut self, t: i64) -> bool {
        while self.s.get(self.i).is_some_and(|x| x.t < t) {
            self.i += 1;
        }
        self.valid()
    }

    fn at(&self) -> Option<Sample> {
        self.s
            .get(self.i)
            .map(|x| Sample::new(x.t, x.v + self.adjust))
    }

    fn adjust_at_value(&mut self, last: f64) {
        if !self.counter {
            return;
        }
        if let Some(x) = self.at() {
            if last > x.v {
                self.adjust += last - x.v;
            }
        }
    }
}

/// Deduplicates two replicas with Thanos' penalty algorithm. `counter` enables the
/// counter error adjustment Thanos applies under `rate`/`increase`/`irate`/`resets`.
pub fn penalty_merge_pair(a: &[Sample], b: &[Sample], counter: bool) -> Vec<Sample> {
    let mut a = Cursor {
        s: a,
        i: 0,
        adjust: 0.0,
        counter,
    };
    let mut b = Cursor {
        s: b,
        i: 0,
        adjust: 0.0,
        counter,
    };
    let mut aval = a.valid();
    let mut bval = b.valid();
    let mut last_t = i64::MIN;
    let (mut pen_a, mut pen_b) = (0i64, 0i64);
    let mut use_a = true;
    let mut out = Vec::new();
    loop {
        // Value before this step, from the iterator last used (Thanos reads it from
        // `lastIter.At()` even before anything was emitted).
        let last_val = if use_a && aval {
            a.at().map(|x| x.v)
        } else if !use_a && bval {
            b.at().map(|x| x.v)
        } else {
            None
        };
        let last_use_a = use_a;
        if aval {
            aval = a.seek(last_t.saturating_add(1).saturating_add(pen_a));
        }
        if bval {
            bval = b.seek(last_t.saturating_add(1).saturating_add(pen_b));
        }
        let picked = if !aval {
            use_a = false;
            if !bval {
                break;
            }
            pen_b = 0;
            false
        } else if !bval {
            use_a = true;
            pen_a = 0;
            true
        } else {
            let ta = a.s[a.i].t;
            let tb = b.s[b.i].t;
            use_a = ta <= tb;
            if use_a {
                pen_b = if last_t != i64::MIN {
                    2 * (ta - last_t)
                } else {
                    INITIAL_PENALTY_MS
                };
                pen_a = 0;
            } else {
                pen_a = if last_t != i64::MIN {
                    2 * (tb - last_t)
                } else {
                    INITIAL_PENALTY_MS
                };
                pen_b = 0;
            }
            use_a
        };
        if use_a != last_use_a {
            if let Some(lv) = last_val {
                if aval {
                    a.adjust_at_value(lv);
                }
                if bval {
                    b.adjust_at_value(lv);
                }
            }
        }
        let x = if picked { a.at() } else { b.at() };
        let Some(x) = x else { break };
        last_t = x.t;
        out.push(x);
    }
    out
}

/// Deduplicates any number of replicas by folding [`penalty_merge_pair`].
pub fn penalty_merge(replicas: &[Vec<Sample>], counter: bool) -> Vec<Sample> {
    let mut it = replicas.iter();
    let Some(first) = it.next() else {
        return Vec::new();
    };
    let mut acc = first.clone();
    for r in it {
        acc = penalty_merge_pair(&acc, r, counter);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_stays_on_replica_a() {
        let a: Vec<Sample> = (0..5).map(|i| Sample::new(i * 10_000, i as f64)).collect();
        let b: Vec<Sample> = (0..5)
            .map(|i| Sample::new(i * 10_000 + 3000, i as f64))
            .collect();
        let out = penalty_merge_pair(&a, &b, false);
        assert_eq!(out, a);
    }
}
