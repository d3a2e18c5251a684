//! Re-sorting and grouping a select stream by labels without the replica labels.
//!
//! The inner stream is sorted by the full label sets. Removing replica labels can
//! change that order: `{__name__="up", instance="a", replica="1"}` sorts before
//! `{__name__="up", replica="1"}` but its key `{__name__="up", instance="a"}` sorts
//! after `{__name__="up"}`. Groups are therefore collected in a sorted buffer and
//! released once no later series can have a key at or below theirs.
//!
//! The bound: for any series G at or after the next inner series F, the first label
//! of G's key is at least F's first label (when that is not a replica label), or
//! has a name above F's first label name (when it is). This is the tightest bound
//! without knowing the data, because a later series made of F's first label plus
//! replica labels only has the key `{F[0]}`. So the buffer holds the series sharing
//! one first label (for selects that carry `__name__`, one metric name) as still
//! encoded chunks; groups are decoded and merged one at a time as they are read.
//! Series made of replica labels only (empty key) are released as they come.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use strata_model::{Label, Labels};

use crate::{ChunkSeries, ChunkSeriesStream, Frame, Result, SeriesData};

/// Removes the named labels; returns the same set (a cheap clone) when none is there.
pub(crate) fn strip(labels: &Labels, replica: &[String]) -> Labels {
    if !labels.iter().any(|l| replica.contains(&l.name)) {
        return labels.clone();
    }
    let kept: Vec<Label> = labels
        .iter()
        .filter(|l| !replica.contains(&l.name))
        .cloned()
        .collect();
    Labels::from_sorted(kept)
}

/// Whether a buffered key can be released before the inner series `next`.
fn releasable(key: &Labels, next: &Labels, replica: &[String]) -> bool {
    let (Some(k0), Some(f0)) = (key.as_slice().first(), next.as_slice().first()) else {
        // An empty key sorts first; an empty next series bounds nothing.
        return key.is_empty();
    };
    if replica.contains(&f0.name) {
        k0.name < f0.name
    } else {
        (&k0.name, &k0.value) < (&f0.name, &f0.value)
    }
}

/// An item ready to leave the stream.
enum Ready {
    Warning(String),
    Group(Labels, Vec<SeriesData>),
}

struct State<F> {
    inner: futures::stream::Fuse<ChunkSeriesStream>,
    replica: Arc<[String]>,
    pending: BTreeMap<Labels, Vec<SeriesData>>,
    ready: VecDeque<Ready>,
    merge: F,
    done: bool,
}

impl<F> State<F> {
    fn release_before(&mut self, next: &Labels) {
        while let Some(e) = self.pending.first_entry() {
            if !releasable(e.key(), next, &self.replica) {
                break;
            }
            let (k, v) = e.remove_entry();
            self.ready.push_back(Ready::Group(k, v));
        }
    }

    fn release_all(&mut self) {
        while let Some((k, v)) = self.pending.pop_first() {
            self.ready.push_back(Ready::Group(k, v));
        }
    }
}

/// Groups `inner` by labels without `replica` and merges each group with `merge`
/// (called with the key and the members' data in inner stream order). Output is
/// sorted by the new labels; warnings pass through as they are met; an error ends
/// the stream.
pub(crate) fn regroup<F>(
    inner: ChunkSeriesStream,
    replica: Arc<[String]>,
    merge: F,
) -> ChunkSeriesStream
where
    F: FnMut(Labels, Vec<SeriesData>) -> Result<ChunkSeries> + Send + 'static,
{
    let st = State {
        inner: inner.fuse(),
        replica,
        pending: BTreeMap::new(),
        ready: VecDeque::new(),
        merge,
        done: false,
    };
    stream::unfold(st, |mut st| async move {
        loop {
            if let Some(r) = st.ready.pop_front() {
                let item = match r {
                    Ready::Warning(w) => Ok(Frame::Warning(w)),
                    Ready::Group(k, v) => (st.merge)(k, v).map(Frame::Series),
                };
                if item.is_err() {
                    st.done = true;
                    st.ready.clear();
                }
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            match st.inner.next().await {
                Some(Ok(Frame::Warning(w))) => st.ready.push_back(Ready::Warning(w)),
                Some(Ok(Frame::Series(s))) => {
                    st.release_before(&s.labels);
                    let key = strip(&s.labels, &st.replica);
                    st.pending.entry(key).or_default().push(s.data);
                }
                Some(Err(e)) => {
                    st.done = true;
                    st.pending.clear();
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    st.release_all();
                }
            }
        }
    })
    .boxed()
}
