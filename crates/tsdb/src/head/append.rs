//! Appending to the head.

use std::sync::atomic::Ordering;

use strata_model::{Label, Labels};
use strata_storage::{AppendError, Appendable, Appender, CommitReport};

use super::Head;
use crate::wal::{encode_samples, encode_series, RefSample, RefSeries};

/// Stages samples for the head until commit.
pub struct HeadAppender {
    head: Head,
    staged: Vec<(Labels, i64, f64)>,
}

impl Head {
    /// A new appender.
    pub fn appender(&self) -> HeadAppender {
        HeadAppender {
            head: self.clone(),
            staged: Vec::new(),
        }
    }
}

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(Head::appender(self))
    }
}

fn check_labels(l: &Labels) -> Result<(), AppendError> {
    if l.is_empty() {
        return Err(AppendError::InvalidLabels("empty label set".into()));
    }
    if !l.is_sorted() {
        return Err(AppendError::InvalidLabels(format!(
            "labels not sorted or duplicated: {l}"
        )));
    }
    Ok(())
}

impl HeadAppender {
    /// Stages a sample.
    pub fn add(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        check_labels(labels)?;
        if t < self.head.inner.min_valid_time.load(Ordering::Relaxed) {
            return Err(AppendError::OutOfBounds);
        }
        self.staged.push((labels.clone(), t, v));
        Ok(())
    }

    /// Validates, logs to the WAL and applies the staged samples.
    pub fn commit_samples(self) -> Result<CommitReport, AppendError> {
        let head = self.head;
        let mut report = CommitReport::default();
        if self.staged.is_empty() {
            return Ok(report);
        }
        // Resolve series without the WAL lock, so that concurrent commits look up
        // their series in parallel; only WAL writing and applying are serialised.
        let mut attempts = 0;
        let (mut wal, idx, refs) = loop {
            attempts += 1;
            let mut refs = Vec::with_capacity(self.staged.len());
            let mut missing = Vec::new();
            {
                let idx = head.read_index();
                for (i, (l, _, _)) in self.staged.iter().enumerate() {
                    match idx.lookup(l) {
                        Some(r) => refs.push(r),
                        None => {
                            refs.push(0);
                            missing.push(i);
                        }
                    }
                }
            }
            // One commit at a time from here: the WAL lock orders commits as the WAL
            // does. New series are created and logged under it, so a commit that
            // finds them in the index writes its samples after their record.
            let mut wal = head.lock_wal();
            if !missing.is_empty() {
                let mut new_series = Vec::new();
                let mut idx = head.write_index();
                for i in missing {
                    let l = &self.staged[i].0;
                    let r = match idx.lookup(l) {
                        Some(r) => r,
                        None => {
                            let r = head.inner.next_ref.fetch_add(1, Ordering::Relaxed);
                            // A private copy: the caller's strings come from a
                            // decoded request and sit among its garbage; copying
                            // them here keeps long-lived data together and lets the
                            // request's memory be reused.
                            let own = Labels::from_sorted(
                                l.iter()
                                    .map(|x| Label::new(x.name.as_str(), x.value.as_str()))
                                    .collect(),
                            );
                            idx.insert(r, own, head.inner.opts.chunk_range_ms);
                            new_series.push(RefSeries {
                                series_ref: r,
                                labels: l.clone(),
                            });
                            r
                        }
                    };
                    refs[i] = r;
                }
                drop(idx);
                report.new_series += new_series.len() as u64;
                if let (Some(w), false) = (wal.as_mut(), new_series.is_empty()) {
                    w.log(&encode_series(&new_series))
                        .map_err(|e| AppendError::Storage(e.to_string()))?;
                }
            }
            let idx = head.read_index();
            // A truncation between lookup and lock may have dropped a series that had
            // no data left: look up again (it is re-created). Bounded: truncations
            // are rare and each retry sees the new index.
            if attempts < 8 && refs.iter().any(|r| !idx.series.contains_key(r)) {
                continue;
            }
            break (wal, idx, refs);
        };
        let min_valid = head.inner.min_valid_time.load(Ordering::Relaxed);

        // Validate against each series' last sample (and earlier staged ones).
        let mut accepted: Vec<RefSample> = Vec::with_capacity(self.staged.len());
        let mut last_in_batch: std::collections::HashMap<u64, (i64, f64), super::U64Build> =
            std::collections::HashMap::with_capacity_and_hasher(
                self.staged.len(),
                Default::default(),
            );
        for ((_, t, v), r) in self.staged.iter().zip(&refs) {
            let (t, v, r) = (*t, *v, *r);
            if t < min_valid {
                report.out_of_bounds += 1;
                continue;
            }
            let last = match last_in_batch.get(&r) {
                Some(l) => Some(*l),
                None => idx
                    .series
                    .get(&r)
                    .and_then(|s| s.lock().ok().and_then(|s| s.last)),
            };
            if let Some((lt, lv)) = last {
                if t < lt {
                    report.out_of_order += 1;
                    continue;
                }
                if t == lt {
                    if lv.to_bits() != v.to_bits() {
                        report.duplicates += 1;
                    }
                    continue;
                }
            }
            last_in_batch.insert(r, (t, v));
            accepted.push(RefSample {
                series_ref: r,
                t,
                v,
            });
        }

        // Durability first: series, then samples, written to the file.
        if let Some(w) = wal.as_mut() {
            let io = |e: crate::Error| AppendError::Storage(e.to_string());
            if !accepted.is_empty() {
                w.log(&encode_samples(&accepted)).map_err(io)?;
            }
            w.flush().map_err(io)?;
        }

        for s in &accepted {
            if let Some(ser) = idx.series.get(&s.series_ref) {
                let mut ser = match ser.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                if ser.cutter.append(s.t, s.v).is_ok() {
                    ser.last = Some((s.t, s.v));
                    report.appended += 1;
                    head.inner.samples_appended.fetch_add(1, Ordering::Relaxed);
                }
            }
            head.inner.min_time.fetch_min(s.t, Ordering::Relaxed);
            head.inner.max_time.fetch_max(s.t, Ordering::Relaxed);
        }
        Ok(report)
    }
}

impl Appender for HeadAppender {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        self.add(labels, t, v)
    }

    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError> {
        (*self).commit_samples()
    }

    fn rollback(self: Box<Self>) {}
}
