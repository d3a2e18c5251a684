//! Reading the head through the storage contract.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use strata_model::{MatchType, Matcher};
use strata_storage::{
    ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, SelectRequest, SourceInfo,
    WithWarnings,
};

use super::{Head, Index};

/// Candidate refs for the matchers, from the postings of matchers that reject the
/// empty value; `None` means "all series" (every matcher accepts empty).
fn candidates(idx: &Index, ms: &[Matcher]) -> Option<BTreeSet<u64>> {
    let mut out: Option<BTreeSet<u64>> = None;
    for m in ms.iter().filter(|m| !m.matches_empty()) {
        let mut refs = BTreeSet::new();
        if let Some(vals) = idx.postings.get(&m.name) {
            match (m.kind, m.set_matches()) {
                (MatchType::Equal, _) | (MatchType::Regex, Some(_)) => {
                    for v in m.set_matches().unwrap_or_default() {
                        if let Some(r) = vals.get(&v) {
                            refs.extend(r.iter().copied());
                        }
                    }
                }
                _ => {
                    for (v, r) in vals {
                        if m.matches(v) {
                            refs.extend(r.iter().copied());
                        }
                    }
                }
            }
        }
        out = Some(match out {
            None => refs,
            Some(prev) => prev.intersection(&refs).copied().collect(),
        });
    }
    out
}

impl Head {
    /// Series matching `ms` with chunks overlapping `[mint, maxt]`, sorted by labels.
    pub fn select_series(
        &self,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
        skip_chunks: bool,
    ) -> Vec<ChunkSeries> {
        let idx = self.read_index();
        let refs: Vec<u64> = match candidates(&idx, ms) {
            Some(c) => c.into_iter().collect(),
            None => idx.series.keys().copied().collect(),
        };
        let mut out = Vec::new();
        for r in refs {
            let Some(s) = idx.series.get(&r) else {
                continue;
            };
            let s = match s.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !strata_model::matches_all(ms, |n| s.labels.get(n)) {
                continue;
            }
            let chunks: Vec<_> = s
                .cutter
                .all_chunks()
                .into_iter()
                .filter(|c| c.max_time >= mint && c.min_time <= maxt)
                .collect();
            if chunks.is_empty() {
                continue;
            }
            out.push(ChunkSeries::from_chunks(
                s.labels.clone(),
                if skip_chunks { Vec::new() } else { chunks },
            ));
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

#[async_trait]
impl Queryable for Head {
    async fn select(&self, req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        let series = self.select_series(req.min_time, req.max_time, &req.matchers, req.skip_chunks);
        Ok(stream::iter(series.into_iter().map(|s| Ok(Frame::Series(s)))).boxed())
    }

    async fn label_names(
        &self,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        if req.matchers.is_empty()
            && req.min_time <= self.min_time()
            && req.max_time >= self.max_time()
        {
            let idx = self.read_index();
            let names = idx.postings.keys().cloned().collect();
            return Ok(WithWarnings::new(strata_storage::merge_sorted_strings(
                vec![names],
                req.limit,
            )));
        }
        let names = self
            .select_series(req.min_time, req.max_time, &req.matchers, true)
            .into_iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        Ok(WithWarnings::new(strata_storage::merge_sorted_strings(
            vec![names],
            req.limit,
        )))
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let vals = self
            .select_series(req.min_time, req.max_time, &req.matchers, true)
            .into_iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        Ok(WithWarnings::new(strata_storage::merge_sorted_strings(
            vec![vals],
            req.limit,
        )))
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            label_sets: Vec::new(),
            min_time: self.min_time(),
            max_time: self.max_time(),
        }
    }
}
