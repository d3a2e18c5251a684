//! An in-memory [`Queryable`] for tests (PromQL scripts, acceptance suites).
//!
//! Series are kept sorted by labels; `select` encodes the samples inside the requested
//! range as XOR chunks of at most 120 samples, so consumers exercise the same decode
//! path as with the TSDB.

use async_trait::async_trait;
use futures::stream;
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::{Labels, Matcher, Sample};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, Result,
    SelectRequest, SourceInfo, WithWarnings,
};

/// Samples per encoded chunk.
const CHUNK_SAMPLES: usize = 120;

/// Series held in memory, sorted by labels, each with samples in time order.
#[derive(Clone, Debug, Default)]
pub struct MemQueryable {
    series: Vec<(Labels, Vec<Sample>)>,
}

impl MemQueryable {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `series`; samples are sorted by time and duplicates of one
    /// timestamp keep the last value. Series with equal labels are merged.
    pub fn from_series(series: Vec<(Labels, Vec<Sample>)>) -> Self {
        let mut q = Self::new();
        for (l, s) in series {
            q.add(l, s);
        }
        q
    }

    /// Adds samples to the series `labels` (creating it if needed).
    pub fn add(&mut self, labels: Labels, samples: Vec<Sample>) {
        let idx = match self.series.binary_search_by(|(l, _)| l.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(i, (labels, Vec::new()));
                i
            }
        };
        let Some((_, existing)) = self.series.get_mut(idx) else {
            return;
        };
        existing.extend(samples);
        // Stable sort then keep the last sample of each timestamp.
        existing.sort_by_key(|s| s.t);
        let mut out: Vec<Sample> = Vec::with_capacity(existing.len());
        for s in existing.drain(..) {
            match out.last_mut() {
                Some(last) if last.t == s.t => *last = s,
                _ => out.push(s),
            }
        }
        *existing = out;
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// The series held, sorted by labels.
    pub fn series(&self) -> &[(Labels, Vec<Sample>)] {
        &self.series
    }

    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
        min_time: i64,
        max_time: i64,
    ) -> impl Iterator<Item = &'a (Labels, Vec<Sample>)> + 'a {
        self.series.iter().filter(move |(l, s)| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
                && s.iter().any(|x| x.t >= min_time && x.t <= max_time)
        })
    }
}

fn encode(samples: &[Sample]) -> Result<Vec<ChunkMeta>> {
    let mut out = Vec::new();
    for part in samples.chunks(CHUNK_SAMPLES) {
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        let mut app = XorChunk::new().appender();
        for s in part {
            app.append(s.t, s.v)?;
        }
        out.push(ChunkMeta {
            min_time: first.t,
            max_time: last.t,
            chunk: RawChunk::from_xor(app.finish()),
        });
    }
    Ok(out)
}

#[async_trait]
impl Queryable for MemQueryable {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let mut frames = Vec::new();
        for (l, s) in self.matching(&req.matchers, req.min_time, req.max_time) {
            let chunks = if req.skip_chunks {
                Vec::new()
            } else {
                let lo = s.partition_point(|x| x.t < req.min_time);
                let hi = s.partition_point(|x| x.t <= req.max_time);
                encode(s.get(lo..hi).unwrap_or_default())?
            };
            frames.push(Ok(Frame::Series(ChunkSeries::from_chunks(
                l.clone(),
                chunks,
            ))));
        }
        Ok(Box::pin(stream::iter(frames)))
    }

    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        let mut names: Vec<String> = self
            .matching(&req.matchers, req.min_time, req.max_time)
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()))
            .collect();
        names.sort_unstable();
        names.dedup();
        if req.limit > 0 {
            names.truncate(req.limit);
        }
        Ok(WithWarnings::new(names))
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        let mut values: Vec<String> = self
            .matching(&req.matchers, req.min_time, req.max_time)
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        values.sort_unstable();
        values.dedup();
        if req.limit > 0 {
            values.truncate(req.limit);
        }
        Ok(WithWarnings::new(values))
    }

    fn info(&self) -> SourceInfo {
        let mut info = SourceInfo::default();
        for (_, s) in &self.series {
            if let (Some(f), Some(l)) = (s.first(), s.last()) {
                info.min_time = info.min_time.min(f.t);
                info.max_time = info.max_time.max(l.t);
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn select_filters_and_encodes() {
        let mut q = MemQueryable::new();
        let s: Vec<Sample> = (0..300).map(|i| Sample::new(i * 10, i as f64)).collect();
        q.add(Labels::from_pairs([("__name__", "b")]), s.clone());
        q.add(Labels::from_pairs([("__name__", "a")]), s);
        let req = SelectRequest::new(100, 2000, vec![Matcher::equal("__name__", "b")]);
        let mut st = q.select(&req).await.expect("select");
        let Some(Ok(Frame::Series(cs))) = st.next().await else {
            panic!("no series");
        };
        let got = cs.collect_samples().expect("decode");
        assert_eq!(got.len(), 191);
        assert_eq!(cs.chunks().len(), 2);
        assert!(st.next().await.is_none());
    }
}
