//! The StoreAPI client against the server over loopback.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{chunks_of, collect, pair, pair_with, series, Scripted};
use strata_chunkenc::{AggrChunk, Encoding, RawChunk};
use strata_model::{Labels, MatchType, Matcher, Sample};
use strata_storage::{
    ChunkMeta, ChunkSeries, Frame, LabelRequest, Queryable, SelectRequest, SourceInfo, WithWarnings,
};
use strata_storeapi::{ClientOptions, ComponentType, ServerOptions};
use strata_testkit::MemQueryable;

fn all_series() -> Vec<Matcher> {
    vec![Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()]
}

async fn acceptance_with(copts: ClientOptions) {
    let (tx, rx) = std::sync::mpsc::channel();
    strata_testkit::queryable_acceptance(|series| async move {
        let mem: Arc<dyn Queryable> = Arc::new(MemQueryable::from_series(series));
        let (server, client) =
            pair_with(mem, ServerOptions::new(ComponentType::Store), copts).await;
        // Keep the server running until the suite is done.
        tx.send(server).unwrap();
        Arc::new(client) as Arc<dyn Queryable>
    })
    .await;
    assert_eq!(rx.try_iter().count(), 1);
}

#[tokio::test]
async fn acceptance_over_loopback_batched() {
    acceptance_with(ClientOptions::default()).await;
}

#[tokio::test]
async fn acceptance_over_loopback_one_series_per_frame() {
    acceptance_with(ClientOptions {
        response_batch_size: 0,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn xor_bytes_arrive_byte_identical() {
    let all = strata_testkit::acceptance::acceptance_series();
    let mem: Arc<dyn Queryable> = Arc::new(MemQueryable::from_series(all));
    let (_s, client) = pair(mem.clone(), ServerOptions::default()).await;
    let req = SelectRequest::new(i64::MIN, i64::MAX, all_series());
    let (local, e1) = collect(mem.select(&req).await.unwrap()).await;
    let (remote, e2) = collect(client.select(&req).await.unwrap()).await;
    assert!(e1.is_none() && e2.is_none());
    assert_eq!(local.len(), remote.len());
    let mut chunks = 0;
    for (a, b) in local.iter().zip(&remote) {
        let (Frame::Series(a), Frame::Series(b)) = (a, b) else {
            panic!("unexpected warning");
        };
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.chunks(), b.chunks(), "{}", a.labels);
        for (x, y) in a.chunks().iter().zip(b.chunks()) {
            assert_eq!(&x.chunk.data[..], &y.chunk.data[..]);
            chunks += 1;
        }
    }
    assert!(chunks > 20, "{chunks}");
}

#[tokio::test]
async fn aggregate_and_histogram_chunks_pass_through() {
    let xor = chunks_of(&[Sample::new(10, 3.0), Sample::new(20, 4.0)], 2);
    let x = &xor[0].chunk.data;
    let aggr = AggrChunk::encode([
        Some((Encoding::Xor, &x[..])),
        Some((Encoding::Xor, &x[..])),
        None,
        Some((Encoding::Xor, &x[..])),
        Some((Encoding::Xor, &x[..])),
    ]);
    let chunks = vec![
        ChunkMeta {
            min_time: 10,
            max_time: 20,
            chunk: RawChunk::new(Encoding::Aggr, aggr),
        },
        ChunkMeta {
            min_time: 30,
            max_time: 40,
            chunk: RawChunk::new(Encoding::FloatHistogram, vec![0u8, 1, 2, 3]),
        },
    ];
    let src = Scripted {
        frames: vec![Ok(series(&[("__name__", "a")], chunks.clone()))],
        ..Default::default()
    };
    let (_s, client) = pair(Arc::new(src), ServerOptions::default()).await;
    let (got, err) = collect(
        client
            .select(&SelectRequest::new(0, 100, vec![]))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    let [Frame::Series(s)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(s.chunks(), &chunks[..]);
}

#[tokio::test]
async fn samples_sources_are_sent_as_xor_chunks_of_120() {
    let samples: Vec<Sample> = (0..300)
        .map(|i| Sample::new(i * 10, i as f64 / 3.0))
        .collect();
    let src = Scripted {
        frames: vec![Ok(Frame::Series(ChunkSeries {
            labels: Labels::from_pairs([("__name__", "dedup")]),
            data: strata_storage::SeriesData::Samples(samples.clone().into()),
        }))],
        ..Default::default()
    };
    let (_s, client) = pair(Arc::new(src), ServerOptions::default()).await;
    let (got, _) = collect(
        client
            .select(&SelectRequest::new(0, 10_000, vec![]))
            .await
            .unwrap(),
    )
    .await;
    let [Frame::Series(s)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(s.chunks().len(), 3);
    assert!(s
        .chunks()
        .iter()
        .all(|c| c.chunk.num_samples().unwrap() <= 120));
    assert_eq!(s.collect_samples().unwrap(), samples);
}

#[tokio::test]
async fn warnings_split_series_and_mid_stream_errors() {
    let c1 = chunks_of(&[Sample::new(1, 1.0)], 1);
    let c2 = chunks_of(&[Sample::new(2, 2.0)], 1);
    let src = Scripted {
        frames: vec![
            Ok(Frame::Warning("store b down".into())),
            // One series split over two frames is joined back into one.
            Ok(series(&[("__name__", "a")], c2.clone())),
            Ok(series(&[("__name__", "a")], c1.clone())),
            Ok(series(&[("__name__", "b")], c1.clone())),
            Err("disk on fire".into()),
            Ok(series(&[("__name__", "c")], c1.clone())),
        ],
        ..Default::default()
    };
    let (_s, client) = pair(Arc::new(src), ServerOptions::default()).await;
    let (got, err) = collect(
        client
            .select(&SelectRequest::new(0, 10, vec![]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(&got[0], Frame::Warning(w) if w == "store b down"));
    let Frame::Series(a) = &got[1] else { panic!() };
    assert_eq!(a.labels, Labels::from_pairs([("__name__", "a")]));
    // Sorted by time on the client, whatever order the frames came in.
    assert_eq!(a.chunks(), &[c1[0].clone(), c2[0].clone()][..]);
    let err = err.expect("error after series b");
    assert!(
        matches!(err, strata_storage::Error::Unavailable(_)),
        "{err}"
    );
    assert!(err.to_string().contains("disk on fire"), "{err}");
}

#[tokio::test]
async fn request_fields_reach_the_source() {
    let src = Arc::new(Scripted::default());
    let (_s, client) = pair(src.clone(), ServerOptions::default()).await;
    let mut req = SelectRequest::new(
        5,
        99,
        vec![
            Matcher::equal("a", "1"),
            Matcher::not_equal("b", "2"),
            Matcher::new(MatchType::Regex, "c", "x|y").unwrap(),
            Matcher::new(MatchType::NotRegex, "d", "z.*").unwrap(),
        ],
    );
    req.skip_chunks = true;
    req.max_resolution_ms = 300_000;
    req.partial_response = true;
    req.hints.step_ms = 15_000;
    req.hints.func = Some("rate".into());
    req.hints.range_ms = 60_000;
    req.hints.by = true;
    req.hints.grouping = vec!["job".into()];
    collect(client.select(&req).await.unwrap()).await;
    let got = src.last_select.lock().unwrap().clone().unwrap();
    assert_eq!((got.min_time, got.max_time), (5, 99));
    assert_eq!(got.matchers, req.matchers);
    assert!(got.skip_chunks && got.partial_response);
    assert_eq!(got.max_resolution_ms, 300_000);
    assert_eq!(got.hints.step_ms, 15_000);
    assert_eq!(got.hints.func.as_deref(), Some("rate"));
    assert_eq!((got.hints.range_ms, got.hints.by), (60_000, true));
    assert_eq!(got.hints.grouping, vec!["job".to_string()]);
    assert_eq!((got.hints.start_ms, got.hints.end_ms), (5, 99));
}

#[tokio::test]
async fn skip_chunks_is_enforced_by_the_server() {
    let src = Scripted {
        frames: vec![Ok(series(
            &[("__name__", "a")],
            chunks_of(&[Sample::new(1, 1.0)], 1),
        ))],
        ..Default::default()
    };
    let (_s, client) = pair(Arc::new(src), ServerOptions::default()).await;
    let mut req = SelectRequest::new(0, 10, vec![]);
    req.skip_chunks = true;
    let (got, _) = collect(client.select(&req).await.unwrap()).await;
    let [Frame::Series(s)] = &got[..] else {
        panic!()
    };
    assert!(s.chunks().is_empty());
}

#[tokio::test]
async fn absurd_time_ranges_are_empty_or_bounded() {
    let src = Arc::new(MemQueryable::from_series(
        strata_testkit::acceptance::acceptance_series(),
    ));
    let (_s, client) = pair(src, ServerOptions::default()).await;
    for (mint, maxt, want_empty) in [
        (i64::MAX, i64::MIN, true),
        (100, 99, true),
        (i64::MAX, i64::MAX, true),
        (i64::MIN, i64::MIN, true),
        (i64::MIN, i64::MAX, false),
    ] {
        let (got, err) = collect(
            client
                .select(&SelectRequest::new(mint, maxt, all_series()))
                .await
                .unwrap(),
        )
        .await;
        assert!(err.is_none(), "{mint}..{maxt}: {err:?}");
        assert_eq!(got.is_empty(), want_empty, "{mint}..{maxt}");
        let req = LabelRequest {
            min_time: mint,
            max_time: maxt,
            ..Default::default()
        };
        let names = client.label_names(&req).await.unwrap().value;
        assert_eq!(names.is_empty(), want_empty, "{mint}..{maxt}");
    }
}

#[tokio::test]
async fn bad_regex_is_invalid_argument() {
    let src = Arc::new(MemQueryable::new());
    let (s, _client) = pair(src, ServerOptions::default()).await;
    // A hand-made bad matcher (the model refuses to build one).
    let mut raw =
        strata_proto::thanos::store_client::StoreClient::connect(format!("http://{}", s.addr))
            .await
            .unwrap();
    let bad = strata_proto::thanos::LabelMatcher {
        r#type: strata_proto::thanos::label_matcher::Type::Re as i32,
        name: "job".into(),
        value: "a(b".into(),
    };
    let e = raw
        .series(strata_proto::thanos::SeriesRequest {
            max_time: 10,
            matchers: vec![bad.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.message().contains("job=~\"a(b\""), "{}", e.message());
    for e in [
        raw.label_names(strata_proto::thanos::LabelNamesRequest {
            matchers: vec![bad.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err(),
        raw.label_values(strata_proto::thanos::LabelValuesRequest {
            label: "x".into(),
            matchers: vec![bad.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    }
}

#[tokio::test]
async fn limits_are_resource_exhausted() {
    let s: Vec<Sample> = (0..100).map(|i| Sample::new(i, 1.0)).collect();
    let frames: Vec<_> = (0..5)
        .map(|i| Ok(series(&[("__name__", &format!("m{i}"))], chunks_of(&s, 50))))
        .collect();
    let src: Arc<dyn Queryable> = Arc::new(Scripted {
        frames,
        ..Default::default()
    });
    let opts = ServerOptions {
        max_series_per_request: 3,
        ..Default::default()
    };
    let (_s1, c1) = pair(src.clone(), opts).await;
    let (got, err) = collect(
        c1.select(&SelectRequest::new(0, 100, vec![]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.len(), 3);
    let err = err.unwrap();
    assert!(matches!(err, strata_storage::Error::Limit(_)), "{err}");
    assert!(err.to_string().contains("series limit"), "{err}");

    let opts = ServerOptions {
        max_samples_per_request: 250,
        ..Default::default()
    };
    let (_s2, c2) = pair(src.clone(), opts).await;
    let (got, err) = collect(
        c2.select(&SelectRequest::new(0, 100, vec![]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.len(), 2);
    assert!(err.unwrap().to_string().contains("samples limit"));

    // No limit: all five.
    let (_s3, c3) = pair(src, ServerOptions::default()).await;
    let (got, err) = collect(
        c3.select(&SelectRequest::new(0, 100, vec![]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((got.len(), err.is_none()), (5, true));
}

#[tokio::test]
async fn label_calls_carry_matchers_range_limit_and_warnings() {
    let src = Arc::new(Scripted {
        names: WithWarnings {
            value: vec!["a".into(), "b".into()],
            warnings: vec!["partial".into()],
        },
        ..Default::default()
    });
    let (_s, client) = pair(src.clone(), ServerOptions::default()).await;
    let req = LabelRequest {
        min_time: -5,
        max_time: 7,
        matchers: vec![Matcher::new(MatchType::Regex, "job", "x.+").unwrap()],
        limit: 3,
    };
    let got = client.label_names(&req).await.unwrap();
    assert_eq!(got.value, vec!["a", "b"]);
    assert_eq!(got.warnings, vec!["partial"]);
    let seen = src.last_label.lock().unwrap().clone().unwrap();
    assert_eq!((seen.min_time, seen.max_time, seen.limit), (-5, 7, 3));
    assert_eq!(seen.matchers, req.matchers);
    let got = client.label_values("job", &req).await.unwrap();
    assert_eq!(got.warnings, vec!["partial"]);

    // Real data through MemQueryable.
    let mem = Arc::new(MemQueryable::from_series(
        strata_testkit::acceptance::acceptance_series(),
    ));
    let (_s2, c2) = pair(mem, ServerOptions::default()).await;
    let req = LabelRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![Matcher::equal("__name__", "temp")],
        limit: 2,
    };
    assert_eq!(
        c2.label_values("room", &req).await.unwrap().value,
        vec!["r0", "r1"]
    );
}

#[tokio::test]
async fn info_is_announced_and_refreshable() {
    let src = Arc::new(Scripted::default());
    *src.info.lock().unwrap() = SourceInfo {
        label_sets: vec![Labels::from_pairs([("cluster", "eu"), ("replica", "0")])],
        min_time: 1000,
        max_time: 2000,
    };
    let (_s, client) = pair(src.clone(), ServerOptions::new(ComponentType::Sidecar)).await;
    let info = client.endpoint_info();
    assert_eq!(info.component_type, "sidecar");
    assert!(info.serves_store_api);
    assert_eq!(client.info(), src.info());
    src.info.lock().unwrap().max_time = 3000;
    assert_eq!(client.info().max_time, 2000, "info is the last known");
    client.refresh_info().await.unwrap();
    assert_eq!(client.info().max_time, 3000);
}

#[tokio::test]
async fn connect_errors_name_the_address() {
    let e = strata_storeapi::Client::connect("no-port")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-port"), "{e}");
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let e = strata_storeapi::Client::connect(&addr).await.unwrap_err();
    assert!(e.to_string().contains(&addr), "{e}");
    let lazy = strata_storeapi::Client::lazy(&addr, Default::default()).unwrap();
    let e = lazy
        .select(&SelectRequest::new(0, 1, vec![]))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, strata_storage::Error::Unavailable(_)), "{e}");
}

#[tokio::test]
async fn legacy_store_info_and_shutdown() {
    let src = Arc::new(Scripted::default());
    *src.info.lock().unwrap() = SourceInfo {
        label_sets: vec![Labels::from_pairs([("replica", "1")])],
        min_time: 5,
        max_time: 6,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(strata_storeapi::serve(
        listener,
        src,
        ServerOptions::new(ComponentType::Receive),
        async {
            let _ = stopped.await;
        },
    ));
    let mut raw =
        strata_proto::thanos::store_client::StoreClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    let info = raw
        .info(strata_proto::thanos::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.store_type,
        strata_proto::thanos::StoreType::Receive as i32
    );
    assert_eq!((info.min_time, info.max_time), (5, 6));
    assert_eq!(info.label_sets.len(), 1);
    assert_eq!(info.labels, info.label_sets[0].labels);
    drop(raw);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(strata_storeapi::Client::connect(&addr.to_string())
        .await
        .is_err());
}
