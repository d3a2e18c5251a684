use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::{labels, Labels, Sample};

use super::*;
use crate::{ChunkMeta, Frame};

/// Frames served as is (sorted by the test), with fixed label answers.
#[derive(Debug)]
struct Fixed {
    frames: Vec<Frame>,
    names: Vec<String>,
    info: SourceInfo,
}

#[async_trait]
impl Queryable for Fixed {
    async fn select(&self, _req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let f: Vec<Result<Frame>> = self.frames.iter().cloned().map(Ok).collect();
        Ok(stream::iter(f).boxed())
    }
    async fn label_names(&self, _req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings {
            value: self.names.clone(),
            warnings: vec!["inner warning".into()],
        })
    }
    async fn label_values(
        &self,
        name: &str,
        _req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::new(vec![format!("{name}-value")]))
    }
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}

fn chunk(samples: &[(i64, f64)]) -> ChunkMeta {
    let mut a = XorChunk::new().appender();
    for (t, v) in samples {
        a.append(*t, *v).unwrap();
    }
    ChunkMeta {
        min_time: samples[0].0,
        max_time: samples[samples.len() - 1].0,
        chunk: RawChunk::from_xor(a.finish()),
    }
}

fn series(l: Labels, samples: &[(i64, f64)]) -> Frame {
    Frame::Series(ChunkSeries::from_chunks(l, vec![chunk(samples)]))
}

/// Sorts frames by labels as a real source would.
fn sorted(mut frames: Vec<Frame>) -> Vec<Frame> {
    frames.sort_by(|a, b| match (a, b) {
        (Frame::Series(a), Frame::Series(b)) => a.labels.compare(&b.labels),
        _ => std::cmp::Ordering::Equal,
    });
    frames
}

fn dedup(frames: Vec<Frame>, replica: &[&str]) -> Dedup {
    let inner = Fixed {
        frames,
        names: vec!["__name__".into(), "job".into(), "replica".into()],
        info: SourceInfo {
            label_sets: vec![
                labels! {"cluster" => "c", "replica" => "a"},
                labels! {"cluster" => "c", "replica" => "b"},
            ],
            min_time: 0,
            max_time: 100,
        },
    };
    Dedup::new(
        Arc::new(inner),
        replica.iter().map(|s| s.to_string()).collect(),
    )
}

async fn run(d: &Dedup) -> (Vec<ChunkSeries>, Vec<String>) {
    let mut s = d
        .select(&SelectRequest::new(0, 1000, vec![]))
        .await
        .unwrap();
    let (mut series, mut warnings) = (Vec::new(), Vec::new());
    while let Some(f) = s.next().await {
        match f.unwrap() {
            Frame::Series(x) => series.push(x),
            Frame::Warning(w) => warnings.push(w),
        }
    }
    (series, warnings)
}

fn ts(s: &ChunkSeries) -> Vec<i64> {
    s.collect_samples().unwrap().iter().map(|x| x.t).collect()
}

#[tokio::test]
async fn group_of_one_passes_chunks_untouched() {
    let only = series(
        labels! {"__name__" => "up", "replica" => "a"},
        &[(1, 1.0), (2, 2.0)],
    );
    let Frame::Series(orig) = only.clone() else {
        unreachable!()
    };
    let (out, _) = run(&dedup(vec![only], &["replica"])).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].labels, labels! {"__name__" => "up"});
    assert_eq!(out[0].data, orig.data);
}

#[tokio::test]
async fn replicas_merge_and_order_is_restored() {
    // The replica label sorts before `zone`, so the full order interleaves keys.
    let frames = sorted(vec![
        series(
            labels! {"__name__" => "x", "replica" => "a", "zone" => "1"},
            &[(0, 1.0), (10, 2.0)],
        ),
        series(
            labels! {"__name__" => "x", "replica" => "a", "zone" => "2"},
            &[(0, 1.0)],
        ),
        series(
            labels! {"__name__" => "x", "replica" => "b", "zone" => "1"},
            &[(5, 1.0), (15, 2.0), (25, 3.0)],
        ),
        series(
            labels! {"__name__" => "x", "instance" => "i", "replica" => "a"},
            &[(1, 1.0)],
        ),
        series(labels! {"__name__" => "x", "replica" => "b"}, &[(1, 1.0)]),
        series(labels! {"__name__" => "y", "replica" => "b"}, &[(1, 1.0)]),
    ]);
    let (out, _) = run(&dedup(frames, &["replica"])).await;
    let got: Vec<Labels> = out.iter().map(|s| s.labels.clone()).collect();
    assert_eq!(
        got,
        vec![
            labels! {"__name__" => "x"},
            labels! {"__name__" => "x", "instance" => "i"},
            labels! {"__name__" => "x", "zone" => "1"},
            labels! {"__name__" => "x", "zone" => "2"},
            labels! {"__name__" => "y"},
        ]
    );
    assert_eq!(ts(&out[2]), vec![0, 10, 15, 25]);
    assert!(matches!(out[2].data, SeriesData::Samples(_)));
}

#[tokio::test]
async fn several_replica_labels() {
    let frames = sorted(vec![
        series(
            labels! {"__name__" => "m", "prometheus_replica" => "p0", "rule_replica" => "r0"},
            &[(0, 1.0), (10, 2.0)],
        ),
        series(
            labels! {"__name__" => "m", "prometheus_replica" => "p1", "rule_replica" => "r0"},
            &[(3, 1.0), (13, 2.0), (23, 3.0)],
        ),
        series(
            labels! {"__name__" => "m", "prometheus_replica" => "p1", "rule_replica" => "r1"},
            &[(6, 1.0)],
        ),
    ]);
    let (out, _) = run(&dedup(frames, &["prometheus_replica", "rule_replica"])).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].labels, labels! {"__name__" => "m"});
    let t = ts(&out[0]);
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    assert_eq!(t.first(), Some(&0));
    assert_eq!(t.last(), Some(&23));
}

#[tokio::test]
async fn series_without_replica_label_joins_its_group() {
    let frames = sorted(vec![
        series(
            labels! {"__name__" => "m", "job" => "j"},
            &[(0, 1.0), (10, 2.0)],
        ),
        series(
            labels! {"__name__" => "m", "job" => "j", "replica" => "b"},
            &[(5, 1.0), (15, 2.0), (25, 3.0)],
        ),
        series(labels! {"__name__" => "m", "job" => "k"}, &[(0, 1.0)]),
    ]);
    let (out, _) = run(&dedup(frames, &["replica"])).await;
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].labels, labels! {"__name__" => "m", "job" => "j"});
    assert_eq!(ts(&out[0]), vec![0, 10, 15, 25]);
    assert_eq!(out[1].labels, labels! {"__name__" => "m", "job" => "k"});
    assert!(matches!(out[1].data, SeriesData::Chunks(_)));
}

#[tokio::test]
async fn warnings_pass_through() {
    let frames = vec![
        Frame::Warning("store a failed".into()),
        series(labels! {"__name__" => "m", "replica" => "a"}, &[(0, 1.0)]),
        Frame::Warning("store b failed".into()),
        series(labels! {"__name__" => "m", "replica" => "b"}, &[(5, 1.0)]),
    ];
    let (out, warnings) = run(&dedup(frames, &["replica"])).await;
    assert_eq!(warnings, vec!["store a failed", "store b failed"]);
    assert_eq!(out.len(), 1);
}

#[tokio::test]
async fn skip_chunks_returns_labels_only() {
    let frames = sorted(vec![
        series(labels! {"__name__" => "m", "replica" => "a"}, &[(0, 1.0)]),
        series(labels! {"__name__" => "m", "replica" => "b"}, &[(5, 1.0)]),
    ]);
    let d = dedup(frames, &["replica"]);
    let mut req = SelectRequest::new(0, 100, vec![]);
    req.skip_chunks = true;
    let out: Vec<_> = d.select(&req).await.unwrap().collect().await;
    assert_eq!(out.len(), 1);
    let Ok(Frame::Series(s)) = &out[0] else {
        panic!("expected a series, got {:?}", out[0])
    };
    assert_eq!(s.chunks().len(), 0);
}

#[tokio::test]
async fn label_queries_hide_replica_labels() {
    let d = dedup(Vec::new(), &["replica"]);
    let req = LabelRequest::default();
    let names = d.label_names(&req).await.unwrap();
    assert_eq!(names.value, vec!["__name__", "job"]);
    assert_eq!(names.warnings, vec!["inner warning"]);
    assert!(d
        .label_values("replica", &req)
        .await
        .unwrap()
        .value
        .is_empty());
    assert_eq!(
        d.label_values("job", &req).await.unwrap().value,
        vec!["job-value"]
    );
    let info = d.info();
    assert_eq!(info.label_sets, vec![labels! {"cluster" => "c"}]);
    assert_eq!((info.min_time, info.max_time), (0, 100));
}

#[tokio::test]
async fn penalty_algorithm_is_selectable() {
    let frames = sorted(vec![
        series(
            labels! {"__name__" => "m", "replica" => "a"},
            &[(0, 1.0), (10_000, 2.0)],
        ),
        series(
            labels! {"__name__" => "m", "replica" => "b"},
            &[(3000, 1.0), (13_000, 2.0), (23_000, 3.0)],
        ),
    ]);
    let d = dedup(frames, &["replica"]).with_algorithm(Algorithm::Penalty);
    let (out, _) = run(&d).await;
    // Thanos' penalty (2x the last delta) also skips b's last sample.
    assert_eq!(ts(&out[0]), vec![0, 10_000]);
}

#[test]
fn merge_group_decodes_samples_data() {
    let a = SeriesData::Samples(vec![Sample::new(0, 1.0), Sample::new(10, 2.0)].into());
    let b = SeriesData::Chunks(vec![chunk(&[(5, 1.0), (15, 2.0), (25, 3.0)])]);
    let s = merge_group(
        labels! {"a" => "1"},
        vec![a, b],
        false,
        Algorithm::Strata,
        false,
        AggrView::Avg,
    )
    .unwrap();
    assert_eq!(ts(&s), vec![0, 10, 15, 25]);
}

#[test]
fn groups_are_released_before_the_stream_ends() {
    use futures::FutureExt;
    // Metric `a` (two replicas), then the first series of `b`, then nothing yet.
    let frames: Vec<Result<Frame>> = vec![
        Ok(series(
            labels! {"__name__" => "a", "replica" => "1"},
            &[(0, 1.0)],
        )),
        Ok(series(
            labels! {"__name__" => "a", "replica" => "2"},
            &[(5, 1.0)],
        )),
        Ok(series(
            labels! {"__name__" => "b", "replica" => "1"},
            &[(0, 1.0)],
        )),
    ];
    let inner: ChunkSeriesStream = stream::iter(frames).chain(stream::pending()).boxed();
    let mut out = regroup::regroup(inner, vec!["replica".to_string()].into(), |l, d| {
        merge_group(l, d, false, Algorithm::Strata, false, AggrView::Avg)
    });
    let first = out.next().now_or_never().flatten();
    let Some(Ok(Frame::Series(s))) = first else {
        panic!("metric a should be released once b starts, got {first:?}");
    };
    assert_eq!(s.labels, labels! {"__name__" => "a"});
    // `b` may still get replicas: it is held back.
    assert!(out.next().now_or_never().is_none());
}

#[tokio::test]
async fn inner_error_ends_the_stream() {
    let frames: Vec<Result<Frame>> = vec![
        Ok(series(
            labels! {"__name__" => "a", "replica" => "1"},
            &[(0, 1.0)],
        )),
        Err(crate::Error::Unavailable("store down".into())),
        Ok(series(
            labels! {"__name__" => "b", "replica" => "1"},
            &[(0, 1.0)],
        )),
    ];
    let inner: ChunkSeriesStream = stream::iter(frames).boxed();
    let out: Vec<_> = regroup::regroup(inner, vec!["replica".to_string()].into(), |l, d| {
        merge_group(l, d, false, Algorithm::Strata, false, AggrView::Avg)
    })
    .collect()
    .await;
    assert_eq!(out.len(), 1);
    assert!(matches!(&out[0], Err(crate::Error::Unavailable(m)) if m == "store down"));
}
