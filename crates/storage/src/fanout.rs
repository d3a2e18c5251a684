//! A [`Queryable`] over several sources (Prometheus `storage/fanout.go`, Thanos
//! `ProxyStore` in spirit): selects from every source whose time range overlaps the
//! request and merges the sorted streams; label queries are unions.

use std::sync::Arc;

use async_trait::async_trait;

use crate::merge::merge_streams;
use crate::{
    merge_sorted_strings, ChunkSeriesStream, LabelRequest, Queryable, Result, SelectRequest,
    SourceInfo, WithWarnings,
};

/// Merges several sources into one.
#[derive(Debug, Clone)]
pub struct Fanout {
    sources: Vec<Arc<dyn Queryable>>,
}

impl Fanout {
    /// A fan-out over `sources`.
    pub fn new(sources: Vec<Arc<dyn Queryable>>) -> Self {
        Self { sources }
    }

    fn overlapping(&self, mint: i64, maxt: i64) -> impl Iterator<Item = &Arc<dyn Queryable>> {
        self.sources.iter().filter(move |s| {
            let i = s.info();
            // Sources that report no data range (empty) are skipped.
            i.min_time <= maxt && i.max_time >= mint
        })
    }
}

#[async_trait]
impl Queryable for Fanout {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let mut streams = Vec::new();
        for s in self.overlapping(req.min_time, req.max_time) {
            streams.push(s.select(req).await?);
        }
        Ok(merge_streams(streams))
    }

    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        let mut lists = Vec::new();
        let mut warnings = Vec::new();
        for s in self.overlapping(req.min_time, req.max_time) {
            let r = s.label_names(req).await?;
            lists.push(r.value);
            warnings.extend(r.warnings);
        }
        Ok(WithWarnings {
            value: merge_sorted_strings(lists, req.limit),
            warnings,
        })
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        let mut lists = Vec::new();
        let mut warnings = Vec::new();
        for s in self.overlapping(req.min_time, req.max_time) {
            let r = s.label_values(name, req).await?;
            lists.push(r.value);
            warnings.extend(r.warnings);
        }
        Ok(WithWarnings {
            value: merge_sorted_strings(lists, req.limit),
            warnings,
        })
    }

    fn info(&self) -> SourceInfo {
        let mut out = SourceInfo::default();
        for s in &self.sources {
            let i = s.info();
            out.min_time = out.min_time.min(i.min_time);
            out.max_time = out.max_time.max(i.max_time);
            for l in i.label_sets {
                if !out.label_sets.contains(&l) {
                    out.label_sets.push(l);
                }
            }
        }
        out
    }
}
