//! The querier's fan-out over in-process StoreAPI servers on loopback: replica
//! dedup across endpoints, pruning by time and external labels (the pruned
//! endpoint is never called), partial response for dead and hanging endpoints
//! within the deadline, and `/api/v1/stores` data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use strata_api::{SourceParams, SourceSelector};
use strata_model::{Labels, MatchType, Matcher, Sample};
use strata_query::{
    EndpointSet, EndpointSetOptions, EndpointSpec, Querier, QuerierOptions, SystemResolver,
};
use strata_storage::{
    ChunkSeriesStream, Frame, LabelRequest, Queryable, Result, SelectRequest, SourceInfo,
    WithWarnings,
};
use strata_storeapi::{ComponentType, ServerOptions};
use strata_testkit::MemQueryable;
use tokio_util::sync::CancellationToken;

/// A source with external labels that counts its selects and may hang.
#[derive(Debug)]
struct Src {
    mem: MemQueryable,
    ext: Labels,
    selects: Arc<AtomicUsize>,
    hang: bool,
    max_res: Arc<AtomicI64>,
}

#[async_trait]
impl Queryable for Src {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        self.selects.fetch_add(1, Ordering::SeqCst);
        self.max_res.store(req.max_resolution_ms, Ordering::SeqCst);
        if self.hang {
            futures::future::pending::<()>().await;
        }
        self.mem.select(req).await
    }
    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        self.mem.label_names(req).await
    }
    async fn label_values(&self, n: &str, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        self.mem.label_values(n, req).await
    }
    fn info(&self) -> SourceInfo {
        let mut i = self.mem.info();
        i.label_sets = vec![self.ext.clone()];
        i
    }
}

/// Serves a replica of `up{job="x"}` (samples every second in `[0, 20s]`,
/// skipping `gap`) with external labels `cluster`, `replica`; returns its
/// address and select counter.
async fn endpoint(
    cluster: &str,
    replica: &str,
    gap: std::ops::Range<i64>,
    hang: bool,
    stop: &CancellationToken,
) -> (String, Arc<AtomicUsize>, Arc<AtomicI64>) {
    let ext = Labels::from_pairs([("cluster", cluster), ("replica", replica)]);
    let labels = Labels::from_pairs([
        ("__name__", "up"),
        ("cluster", cluster),
        ("job", "x"),
        ("replica", replica),
    ]);
    let samples = (0..=20)
        .map(|i| i * 1000)
        .filter(|t| !gap.contains(t))
        .map(|t| Sample { t, v: 1.0 })
        .collect();
    let selects = Arc::new(AtomicUsize::new(0));
    let max_res = Arc::new(AtomicI64::new(-1));
    let src = Src {
        mem: MemQueryable::from_series(vec![(labels, samples)]),
        ext,
        selects: selects.clone(),
        hang,
        max_res: max_res.clone(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let stop = stop.clone();
    tokio::spawn(strata_storeapi::serve(
        l,
        Arc::new(src),
        ServerOptions::new(ComponentType::Sidecar),
        async move { stop.cancelled().await },
    ));
    (addr, selects, max_res)
}

async fn querier(addrs: &[&str], opts: QuerierOptions) -> Querier {
    let set = EndpointSet::new(
        EndpointSetOptions {
            specs: addrs
                .iter()
                .map(|a| EndpointSpec::parse(a).unwrap())
                .collect(),
            info_timeout: Duration::from_secs(2),
            ..EndpointSetOptions::default()
        },
        Arc::new(SystemResolver::default()),
    );
    set.refresh().await;
    Querier::new(set, opts)
}

/// Series (labels, sample count) and warnings of a select of `up`.
async fn select_up(
    q: &dyn Queryable,
    extra: Vec<Matcher>,
    mint: i64,
) -> Result<(Vec<(Labels, usize)>, Vec<String>)> {
    let mut ms = vec![Matcher::equal("__name__", "up")];
    ms.extend(extra);
    let mut s = q.select(&SelectRequest::new(mint, 30_000, ms)).await?;
    let (mut series, mut warnings) = (Vec::new(), Vec::new());
    while let Some(f) = s.next().await {
        match f? {
            Frame::Series(cs) => {
                let n = cs.collect_samples()?.len();
                series.push((cs.labels, n));
            }
            Frame::Warning(w) => warnings.push(w),
        }
    }
    Ok((series, warnings))
}

fn opts() -> QuerierOptions {
    QuerierOptions {
        replica_labels: vec!["replica".into()],
        endpoint_timeout: Some(Duration::from_millis(700)),
        ..QuerierOptions::default()
    }
}

#[tokio::test]
async fn dedups_across_endpoints_and_prunes_without_calling() {
    let stop = CancellationToken::new();
    let (a, _, _) = endpoint("c1", "A", 5000..12_000, false, &stop).await;
    let (b, _, b_res) = endpoint("c1", "B", 0..0, false, &stop).await;
    let (other, other_calls, _) = endpoint("c2", "A", 0..0, false, &stop).await;
    let q = querier(&[&a, &b, &other], opts()).await;

    let src = q.source(&SourceParams::default()).unwrap();
    let (series, w) = select_up(src.as_ref(), vec![], 0).await.unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(series.len(), 2, "{series:?}");
    let c1 = series
        .iter()
        .find(|(l, _)| l.get("cluster") == Some("c1"))
        .unwrap();
    assert_eq!(c1.0.get("replica"), None);
    assert_eq!(c1.1, 21, "A's gap is filled from B");

    let raw = q
        .source(&SourceParams {
            dedup: Some(false),
            ..SourceParams::default()
        })
        .unwrap();
    let (series, _) = select_up(raw.as_ref(), vec![], 0).await.unwrap();
    assert_eq!(series.len(), 3, "{series:?}");

    // External labels prune: c2 is never asked for cluster="c1".
    let before = other_calls.load(Ordering::SeqCst);
    let m = Matcher::new(MatchType::Equal, "cluster", "c1").unwrap();
    let (series, _) = select_up(src.as_ref(), vec![m], 0).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(other_calls.load(Ordering::SeqCst), before);
    // So does time: nothing after 20s.
    let (series, _) = select_up(src.as_ref(), vec![], 25_000).await.unwrap();
    assert!(series.is_empty());
    assert_eq!(other_calls.load(Ordering::SeqCst), before);
    // storeMatch[] keeps only the matching address.
    let only_b = SourceParams {
        store_matchers: vec![vec![Matcher::equal("__address__", b.as_str())]],
        dedup: Some(false),
        ..SourceParams::default()
    };
    let (series, _) = select_up(q.source(&only_b).unwrap().as_ref(), vec![], 0)
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].0.get("replica"), Some("B"));

    // A replica label nobody has: a warning, in selects and label calls.
    let typo = SourceParams {
        replica_labels: Some(vec!["replicaa".into()]),
        ..SourceParams::default()
    };
    let s = q.source(&typo).unwrap();
    let (series, w) = select_up(s.as_ref(), vec![], 0).await.unwrap();
    assert_eq!(series.len(), 3);
    assert!(w.iter().any(|w| w.contains("\"replicaa\"")), "{w:?}");
    let names = s.label_names(&LabelRequest::default()).await.unwrap();
    assert!(names.warnings.iter().any(|w| w.contains("replicaa")));
    // Label names without the replica label when deduplicating.
    let names = src
        .label_names(&LabelRequest {
            min_time: 0,
            max_time: 30_000,
            ..LabelRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(names.value, ["__name__", "cluster", "job"]);

    // max_source_resolution reaches the stores: as given, or step/5 for auto.
    let p = SourceParams {
        max_source_resolution: Some(strata_api::MaxSourceResolution::Auto),
        step_ms: 300_000,
        store_matchers: vec![vec![Matcher::equal("__address__", b.as_str())]],
        ..SourceParams::default()
    };
    select_up(q.source(&p).unwrap().as_ref(), vec![], 0)
        .await
        .unwrap();
    assert_eq!(b_res.load(Ordering::SeqCst), 60_000);
    let p = SourceParams {
        max_source_resolution: Some(strata_api::MaxSourceResolution::Ms(3_600_000)),
        ..p
    };
    select_up(q.source(&p).unwrap().as_ref(), vec![], 0)
        .await
        .unwrap();
    assert_eq!(b_res.load(Ordering::SeqCst), 3_600_000);

    let json: serde_json::Value = serde_json::from_str(&q.stores_json().unwrap()).unwrap();
    assert_eq!(json["sidecar"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(json["sidecar"][0]["minTime"], 0);
    assert_eq!(json["sidecar"][0]["maxTime"], 20_000);
    stop.cancel();
}

#[tokio::test]
async fn dead_and_hanging_endpoints_become_warnings_within_the_deadline() {
    let stop = CancellationToken::new();
    let (good, _, _) = endpoint("c1", "A", 0..0, false, &stop).await;
    let (hang, hang_calls, _) = endpoint("c1", "B", 0..0, true, &stop).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let q = querier(&[&good, &hang, &dead], opts()).await;
    let statuses = q.endpoints().statuses();
    assert_eq!(statuses.iter().filter(|s| s.healthy()).count(), 2);
    let d = statuses.iter().find(|s| s.addr == dead).unwrap();
    assert!(d.last_error.as_deref().unwrap().contains(&dead), "{d:?}");

    let src = q.source(&SourceParams::default()).unwrap();
    let start = Instant::now();
    let (series, w) = select_up(src.as_ref(), vec![], 0).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].1, 21);
    assert!(hang_calls.load(Ordering::SeqCst) > 0);
    assert!(w.iter().any(|w| w.contains(&hang)), "{w:?}");
    assert!(w.iter().any(|w| w.contains(&dead)), "{w:?}");

    let strict = q
        .source(&SourceParams {
            partial_response: Some(false),
            ..SourceParams::default()
        })
        .unwrap();
    let start = Instant::now();
    let e = select_up(strict.as_ref(), vec![], 0).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        e.to_string().contains(&dead) || e.to_string().contains(&hang),
        "{e}"
    );
    // Only dead endpoints filtered out by storeMatch: no error.
    let only_good = SourceParams {
        partial_response: Some(false),
        store_matchers: vec![vec![Matcher::equal("__address__", good.as_str())]],
        ..SourceParams::default()
    };
    let (series, w) = select_up(q.source(&only_good).unwrap().as_ref(), vec![], 0)
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    assert!(w.is_empty(), "{w:?}");
    stop.cancel();
}

#[tokio::test]
async fn file_sd_and_dns_endpoints_follow_their_sources() {
    let stop = CancellationToken::new();
    let (a, _, _) = endpoint("c1", "A", 0..0, false, &stop).await;
    let (b, _, _) = endpoint("c1", "B", 0..0, false, &stop).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stores.json");
    std::fs::write(&file, format!(r#"[{{"targets":["{a}"]}}]"#)).unwrap();
    let port_b = b.rsplit_once(':').unwrap().1;
    let set = EndpointSet::new(
        EndpointSetOptions {
            specs: vec![EndpointSpec::parse(&format!("dns+localhost:{port_b}")).unwrap()],
            sd_files: vec![dir.path().join("*.json").display().to_string()],
            sd_interval: Duration::ZERO,
            ..EndpointSetOptions::default()
        },
        Arc::new(SystemResolver::default()),
    );
    set.refresh().await;
    let healthy: Vec<String> = set
        .statuses()
        .into_iter()
        .filter(|s| s.healthy())
        .map(|s| s.addr)
        .collect();
    assert!(healthy.contains(&a), "{healthy:?}");
    assert!(
        healthy.contains(&format!("127.0.0.1:{port_b}")),
        "{healthy:?}"
    );
    // The file changes: A leaves.
    std::fs::write(&file, "[]").unwrap();
    set.refresh().await;
    assert!(set.statuses().iter().all(|s| s.addr != a));
    // DNS-discovered addresses that never answer (::1 here, if localhost has it)
    // are not reported to users.
    let q = Querier::new(set, opts());
    let src = q.source(&SourceParams::default()).unwrap();
    let (series, w) = select_up(src.as_ref(), vec![], 0).await.unwrap();
    assert_eq!(series.len(), 1);
    assert!(w.is_empty(), "{w:?}");
    stop.cancel();
}
