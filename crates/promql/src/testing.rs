//! A tiny in-memory [`Queryable`] for fuzzing and examples (not a stable API).

use async_trait::async_trait;
use futures::stream;
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::{Labels, Sample};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, SelectRequest,
    SourceInfo, WithWarnings,
};

/// Series held in memory, sorted by labels.
#[derive(Clone, Debug, Default)]
pub struct TinyQueryable {
    series: Vec<(Labels, Vec<Sample>)>,
}

impl TinyQueryable {
    /// A store of `series` (sorted here; samples must be in time order).
    pub fn new(mut series: Vec<(Labels, Vec<Sample>)>) -> Self {
        series.sort_by(|a, b| a.0.cmp(&b.0));
        Self { series }
    }

    /// A small fixed dataset: `http_requests_total`, `up` and `latency_bucket` series
    /// over one hour at 15s.
    pub fn sample_data() -> Self {
        let mut series = Vec::new();
        for (i, job) in ["api", "web"].iter().enumerate() {
            for inst in 0..3 {
                let inst_s = inst.to_string();
                let l = Labels::from_pairs([
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", inst_s.as_str()),
                ]);
                let s = (0..240)
                    .map(|k| Sample::new(k * 15_000, (k * (inst + 1) + i as i64) as f64))
                    .collect();
                series.push((l, s));
                let l =
                    Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", &inst_s)]);
                let s = (0..240)
                    .map(|k| Sample::new(k * 15_000, ((k + inst) % 7 != 0) as i64 as f64))
                    .collect();
                series.push((l, s));
            }
            for le in ["0.1", "0.5", "1", "+Inf"] {
                let l =
                    Labels::from_pairs([("__name__", "latency_bucket"), ("job", job), ("le", le)]);
                let f = le.parse::<f64>().unwrap_or(2.0).min(2.0);
                let s = (0..240)
                    .map(|k| Sample::new(k * 15_000, (k as f64 * f * 10.0).floor()))
                    .collect();
                series.push((l, s));
            }
        }
        Self::new(series)
    }
}

#[async_trait]
impl Queryable for TinyQueryable {
    async fn select(&self, req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        let mut frames = Vec::new();
        for (l, s) in &self.series {
            if !req
                .matchers
                .iter()
                .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            {
                continue;
            }
            let inside: Vec<&Sample> = s
                .iter()
                .filter(|x| x.t >= req.min_time && x.t <= req.max_time)
                .collect();
            let mut chunks = Vec::new();
            for part in inside.chunks(120) {
                let (Some(first), Some(last)) = (part.first(), part.last()) else {
                    continue;
                };
                let mut app = XorChunk::new().appender();
                for x in part {
                    app.append(x.t, x.v)?;
                }
                chunks.push(ChunkMeta {
                    min_time: first.t,
                    max_time: last.t,
                    chunk: RawChunk::from_xor(app.finish()),
                });
            }
            if !chunks.is_empty() {
                frames.push(Ok(Frame::Series(ChunkSeries::from_chunks(
                    l.clone(),
                    chunks,
                ))));
            }
        }
        Ok(Box::pin(stream::iter(frames)))
    }

    async fn label_names(
        &self,
        _req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let mut v: Vec<String> = self
            .series
            .iter()
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()))
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(WithWarnings::new(v))
    }

    async fn label_values(
        &self,
        name: &str,
        _req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let mut v: Vec<String> = self
            .series
            .iter()
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(WithWarnings::new(v))
    }

    fn info(&self) -> SourceInfo {
        SourceInfo::default()
    }
}
