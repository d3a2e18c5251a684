//! Status codes and messages of both endpoints on good and bad input, in process
//! (no sockets): every body gets an answer, never a panic, and the codes tell a
//! sender what Prometheus' would (204, 400 never retried, 413, 415, 5xx retried).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use prometheus_client::registry::Registry;
use prost::Message;
use strata_model::{is_stale_nan, Labels, MatchType, Matcher, Sample, STALE_NAN_BITS};
use strata_remote::prompb::{
    self, Histogram, HistogramCount, Label, LabelMatcher, Query, ReadRequest, ReadResponse,
    TimeSeries, WriteRequest,
};
use strata_remote::{
    read_router, snappy_decode, snappy_encode, write_router, ReadOptions, WriteOptions,
};
use strata_storage::{AppendError, Appendable, Appender, CommitReport, Queryable, SelectRequest};
use strata_testkit::MemQueryable;
use strata_tsdb::head::{Head, HeadOptions};
use tower::ServiceExt;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: pairs
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(t, v)| prompb::Sample {
                value: *v,
                timestamp: *t,
            })
            .collect(),
        ..TimeSeries::default()
    }
}

fn body_of(ts: Vec<TimeSeries>) -> Vec<u8> {
    snappy_encode(
        &WriteRequest {
            timeseries: ts,
            metadata: vec![],
        }
        .encode_to_vec(),
    )
}

struct Answer {
    status: StatusCode,
    text: String,
}

fn post(rt: &tokio::runtime::Runtime, router: &Router, path: &str, body: Vec<u8>) -> Answer {
    post_with(rt, router, path, body, &[])
}

fn post_with(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::post(path);
    for (k, v) in [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
    ] {
        if !headers.iter().any(|(h, _)| *h == k) {
            req = req.header(k, v);
        }
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body)).unwrap();
    rt.block_on(async {
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    })
}

fn head_router(head: &Head, opts: WriteOptions) -> Router {
    write_router(Arc::new(head.clone()), opts, &mut Registry::default())
}

/// All samples of the head, by series.
fn head_data(rt: &tokio::runtime::Runtime, head: &Head) -> Vec<(Labels, Vec<Sample>)> {
    rt.block_on(async {
        use futures::StreamExt;
        let req = SelectRequest::new(
            i64::MIN,
            i64::MAX,
            vec![Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()],
        );
        let mut s = head.select(&req).await.unwrap();
        let mut out = Vec::new();
        while let Some(f) = s.next().await {
            if let strata_storage::Frame::Series(s) = f.unwrap() {
                out.push((s.labels.clone(), s.collect_samples().unwrap()));
            }
        }
        out
    })
}

#[test]
fn valid_writes_are_204_and_stored_with_nan_and_stale_markers() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    let stale = f64::from_bits(STALE_NAN_BITS);
    let body = body_of(vec![
        // Unsorted labels are sorted, as Prometheus does; empty values dropped.
        series(
            &[("job", "a"), ("__name__", "up"), ("empty", "")],
            &[(1000, 1.0), (2000, f64::NAN), (3000, stale)],
        ),
        series(
            &[("__name__", "other")],
            &[(1000, -0.0), (2000, f64::INFINITY)],
        ),
    ]);
    let a = post(&rt, &router, "/api/v1/write", body);
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    let data = head_data(&rt, &head);
    assert_eq!(data.len(), 2);
    assert_eq!(data[0].0, Labels::from_pairs([("__name__", "other")]));
    // Sent explicitly (generated proto3 code would drop -0 as the default +0).
    assert_eq!(data[0].1[0].v.to_bits(), (-0.0f64).to_bits());
    assert_eq!(data[0].1[1].v, f64::INFINITY);
    assert_eq!(
        data[1].0,
        Labels::from_pairs([("__name__", "up"), ("job", "a")])
    );
    let vals: Vec<f64> = data[1].1.iter().map(|s| s.v).collect();
    assert_eq!(vals[0], 1.0);
    assert!(vals[1].is_nan() && !is_stale_nan(vals[1]));
    assert!(is_stale_nan(vals[2]));

    // Metadata-only and empty requests are fine; so are missing headers (1.0).
    let meta = WriteRequest {
        timeseries: vec![],
        metadata: vec![prompb::MetricMetadata {
            r#type: 1,
            metric_family_name: "up".into(),
            help: "h".into(),
            unit: String::new(),
        }],
    };
    let a = post(
        &rt,
        &router,
        "/api/v1/write",
        snappy_encode(&meta.encode_to_vec()),
    );
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let req = Request::post("/api/v1/write")
        .body(Body::from(body_of(vec![])))
        .unwrap();
    let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[test]
fn undecodable_bodies_are_400() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    let valid = WriteRequest {
        timeseries: vec![series(&[("__name__", "up")], &[(1, 1.0)])],
        metadata: vec![],
    }
    .encode_to_vec();

    let not_snappy = post(&rt, &router, "/api/v1/write", b"\xff\xff\xff\xff".to_vec());
    assert_eq!(not_snappy.status, StatusCode::BAD_REQUEST);
    assert!(
        not_snappy.text.starts_with("snappy: "),
        "{}",
        not_snappy.text
    );

    let not_proto = post(
        &rt,
        &router,
        "/api/v1/write",
        snappy_encode(b"\x0a\xff\xff\xff\xff\x0f garbage"),
    );
    assert_eq!(not_proto.status, StatusCode::BAD_REQUEST);
    assert!(
        not_proto.text.starts_with("protobuf: "),
        "{}",
        not_proto.text
    );

    let trunc_proto = post(
        &rt,
        &router,
        "/api/v1/write",
        snappy_encode(&valid[..valid.len() - 3]),
    );
    assert_eq!(trunc_proto.status, StatusCode::BAD_REQUEST);

    let enc = snappy_encode(&valid);
    let trunc_snappy = post(&rt, &router, "/api/v1/write", enc[..enc.len() - 2].to_vec());
    assert_eq!(trunc_snappy.status, StatusCode::BAD_REQUEST);

    // A snappy header announcing 4 GiB: refused before allocating.
    let huge_decoded = post(
        &rt,
        &router,
        "/api/v1/write",
        vec![0x80, 0x80, 0x80, 0x80, 0x0f, 0x00],
    );
    assert_eq!(huge_decoded.status, StatusCode::BAD_REQUEST);
    assert!(
        huge_decoded.text.contains("exceeds the limit"),
        "{}",
        huge_decoded.text
    );

    // Invalid UTF-8 in a string field.
    let mut bad_utf8 = Vec::new();
    let lbl = [0x0a, 0x02, 0xc3, 0x28];
    let ts = [&[0x0a, lbl.len() as u8][..], &lbl].concat();
    bad_utf8.extend_from_slice(&[0x0a, ts.len() as u8]);
    bad_utf8.extend_from_slice(&ts);
    let a = post(&rt, &router, "/api/v1/write", snappy_encode(&bad_utf8));
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);

    // Compressed body over the limit: 413.
    let small = head_router(
        &head,
        WriteOptions {
            max_compressed_bytes: 16,
            ..WriteOptions::default()
        },
    );
    let a = post(&rt, &small, "/api/v1/write", vec![0; 17]);
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);

    // Decoded body over the limit: 400.
    let small = head_router(
        &head,
        WriteOptions {
            max_decoded_bytes: 4,
            ..WriteOptions::default()
        },
    );
    let a = post(&rt, &small, "/api/v1/write", enc.clone());
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);

    assert!(head_data(&rt, &head).is_empty());
}

#[test]
fn invalid_labels_are_400_and_valid_series_still_written() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    for (labels, want) in [
        (
            vec![("__name__", "m"), ("a", "1"), ("a", "2")],
            "duplicate label name \"a\"",
        ),
        (vec![("__name__", "m"), ("", "1")], "empty label name"),
        (vec![("job", "x")], "missing or empty metric name"),
    ] {
        let body = body_of(vec![
            series(&labels, &[(1000, 1.0)]),
            series(&[("__name__", "good")], &[(1000, 2.0)]),
        ]);
        let a = post(&rt, &router, "/api/v1/write", body);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{labels:?}: {}", a.text);
        assert!(a.text.contains(want), "{labels:?}: {}", a.text);
        assert!(
            a.text.starts_with("invalid labels for series"),
            "{}",
            a.text
        );
    }
    let data = head_data(&rt, &head);
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].0, Labels::from_pairs([("__name__", "good")]));
}

#[test]
fn native_histograms_are_rejected_clearly() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    let mut ts = series(&[("__name__", "h")], &[]);
    ts.histograms.push(Histogram {
        count: Some(HistogramCount::CountInt(3)),
        timestamp: 1000,
        ..Histogram::default()
    });
    let a = post(&rt, &router, "/api/v1/write", body_of(vec![ts]));
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.text
            .starts_with("native histograms are not supported yet"),
        "{}",
        a.text
    );
}

#[test]
fn out_of_order_and_duplicates_are_400_with_prometheus_messages() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    let first = body_of(vec![series(&[("__name__", "m")], &[(2000, 1.0)])]);
    assert_eq!(
        post(&rt, &router, "/api/v1/write", first.clone()).status,
        StatusCode::NO_CONTENT
    );
    // Resending the same request (a retry after a lost answer) is not an error.
    assert_eq!(
        post(&rt, &router, "/api/v1/write", first).status,
        StatusCode::NO_CONTENT
    );
    let ooo = post(
        &rt,
        &router,
        "/api/v1/write",
        body_of(vec![series(
            &[("__name__", "m")],
            &[(1000, 1.0), (3000, 3.0)],
        )]),
    );
    assert_eq!(ooo.status, StatusCode::BAD_REQUEST);
    assert!(ooo.text.starts_with("out of order sample"), "{}", ooo.text);
    assert!(ooo.text.contains("1 of 2 samples rejected"), "{}", ooo.text);
    let dup = post(
        &rt,
        &router,
        "/api/v1/write",
        body_of(vec![series(&[("__name__", "m")], &[(3000, 4.0)])]),
    );
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert!(
        dup.text.starts_with("duplicate sample for timestamp"),
        "{}",
        dup.text
    );
    // The valid sample of the out-of-order request was kept.
    let data = head_data(&rt, &head);
    let ts: Vec<(i64, f64)> = data[0].1.iter().map(|s| (s.t, s.v)).collect();
    assert_eq!(ts, [(2000, 1.0), (3000, 3.0)]);
}

#[test]
fn media_types_and_methods() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    let body = body_of(vec![series(&[("__name__", "m")], &[(1, 1.0)])]);
    let ok_types = [
        "application/x-protobuf;proto=prometheus.WriteRequest",
        "application/x-protobuf; proto=prometheus.WriteRequest",
    ];
    for ct in ok_types {
        let a = post_with(
            &rt,
            &router,
            "/api/v1/write",
            body.clone(),
            &[("content-type", ct)],
        );
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{ct}: {}", a.text);
    }
    let v2 = post_with(
        &rt,
        &router,
        "/api/v1/write",
        body.clone(),
        &[(
            "content-type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )],
    );
    assert_eq!(v2.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        v2.text
            .contains("io.prometheus.write.v2.Request protobuf message is not accepted"),
        "{}",
        v2.text
    );
    for (k, v) in [
        ("content-type", "application/json"),
        ("content-type", "application/x-protobuf;proto=foo.Bar"),
        ("content-encoding", "gzip"),
    ] {
        let a = post_with(&rt, &router, "/api/v1/write", body.clone(), &[(k, v)]);
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{k}: {v}");
    }
    let get = Request::get("/api/v1/write").body(Body::empty()).unwrap();
    let resp = rt.block_on(router.clone().oneshot(get)).unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// An appendable whose commits fail like a full disk.
struct Broken;
struct BrokenAppender;

impl Appendable for Broken {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(BrokenAppender)
    }
}

impl Appender for BrokenAppender {
    fn append(&mut self, _: &Labels, _: i64, _: f64) -> Result<(), AppendError> {
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError> {
        Err(AppendError::Storage(
            "write wal: no space left on device".into(),
        ))
    }
    fn rollback(self: Box<Self>) {}
}

#[test]
fn storage_errors_are_500_so_senders_retry() {
    let rt = rt();
    let router = write_router(
        Arc::new(Broken),
        WriteOptions::default(),
        &mut Registry::default(),
    );
    let a = post(
        &rt,
        &router,
        "/api/v1/write",
        body_of(vec![series(&[("__name__", "m")], &[(1, 1.0)])]),
    );
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a.text.contains("no space left"), "{}", a.text);
}

/// Deterministic garbage, mutated valid requests and every truncation: no panic,
/// never a 5xx (a retry loop on garbage would never end).
#[test]
fn garbage_never_panics_nor_5xx() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(dir.path(), HeadOptions::default()).unwrap();
    let router = head_router(&head, WriteOptions::default());
    let valid = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "m"), ("a", "b")], &[(1, 1.0), (2, 2.0)]),
            series(&[("__name__", "n")], &[(1, 1.0)]),
        ],
        metadata: vec![],
    }
    .encode_to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for len in 0..valid.len() {
        bodies.push(snappy_encode(&valid[..len]));
    }
    for _ in 0..300 {
        let mut m = valid.clone();
        let i = (next() as usize) % m.len();
        m[i] = next() as u8;
        bodies.push(snappy_encode(&m));
        let n = (next() % 64) as usize;
        bodies.push((0..n).map(|_| next() as u8).collect());
    }
    for b in bodies {
        let a = post(&rt, &router, "/api/v1/write", b);
        assert!(
            a.status == StatusCode::NO_CONTENT || a.status.is_client_error(),
            "{}: {}",
            a.status,
            a.text
        );
    }
}

fn read_body(queries: Vec<Query>, types: Vec<i32>) -> Vec<u8> {
    snappy_encode(
        &ReadRequest {
            queries,
            accepted_response_types: types,
        }
        .encode_to_vec(),
    )
}

fn query(start: i64, end: i64, ms: &[(i32, &str, &str)]) -> Query {
    Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers: ms
            .iter()
            .map(|(t, n, v)| LabelMatcher {
                r#type: *t,
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        hints: None,
    }
}

fn mem_router(opts: ReadOptions) -> Router {
    let mut mem = MemQueryable::new();
    for i in 0..3 {
        mem.add(
            Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
            (0..500).map(|t| Sample::new(t * 10, t as f64)).collect(),
        );
    }
    read_router(Arc::new(mem), opts, &mut Registry::default())
}

#[test]
fn read_samples_and_errors() {
    let rt = rt();
    let router = mem_router(ReadOptions {
        external_labels: Labels::from_pairs([("region", "eu"), ("i", "ext")]),
        ..ReadOptions::default()
    });
    // SAMPLES: trimmed to the range, external labels merged (the series' win),
    // equality matchers on external labels match series without them.
    let a = rt.block_on(async {
        let req = Request::post("/api/v1/read")
            .body(Body::from(read_body(
                vec![
                    query(100, 200, &[(0, "__name__", "m"), (0, "region", "eu")]),
                    query(0, 10, &[(0, "i", "1")]),
                ],
                vec![],
            )))
            .unwrap();
        router.clone().oneshot(req).await.unwrap()
    });
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(a.headers()["content-type"], "application/x-protobuf");
    assert_eq!(a.headers()["content-encoding"], "snappy");
    let bytes = rt
        .block_on(axum::body::to_bytes(a.into_body(), usize::MAX))
        .unwrap();
    let resp = ReadResponse::decode(snappy_decode(&bytes, 1 << 30).unwrap().as_slice()).unwrap();
    assert_eq!(resp.results.len(), 2);
    assert_eq!(resp.results[0].timeseries.len(), 3);
    let ts = &resp.results[0].timeseries[1];
    let labels: Vec<(&str, &str)> = ts
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(labels, [("__name__", "m"), ("i", "1"), ("region", "eu")]);
    let times: Vec<i64> = ts.samples.iter().map(|s| s.timestamp).collect();
    assert_eq!(times, (10..=20).map(|t| t * 10).collect::<Vec<_>>());
    assert_eq!(resp.results[1].timeseries.len(), 1);
    assert_eq!(resp.results[1].timeseries[0].samples.len(), 2);

    // Sample limit: 400 with Prometheus' message.
    let limited = mem_router(ReadOptions {
        sample_limit: 100,
        ..ReadOptions::default()
    });
    let a = post(
        &rt,
        &limited,
        "/api/v1/read",
        read_body(vec![query(0, 10_000, &[(2, "__name__", ".+")])], vec![0]),
    );
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.text, "exceeded sample limit (100)\n");

    for (body, want) in [
        (b"nope".to_vec(), "snappy"),
        (snappy_encode(b"\x0a\x05ab"), "protobuf"),
        (
            read_body(vec![query(0, 1, &[(0, "a", "b")])], vec![5]),
            "server does not support any of the requested response types",
        ),
        (
            read_body(vec![query(0, 1, &[(2, "a", "(")])], vec![0]),
            "invalid matcher",
        ),
        (
            read_body(vec![query(0, 1, &[(9, "a", "b")])], vec![1]),
            "unknown matcher type",
        ),
    ] {
        let a = post(&rt, &router, "/api/v1/read", body);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{want}: {}", a.text);
        assert!(a.text.contains(want), "{want}: {}", a.text);
    }

    // Streamed, with the storage's chunks of the whole range.
    let a = rt.block_on(async {
        let req = Request::post("/api/v1/read")
            .body(Body::from(read_body(
                vec![query(0, 10_000, &[(0, "i", "2")])],
                vec![1, 0],
            )))
            .unwrap();
        router.clone().oneshot(req).await.unwrap()
    });
    assert_eq!(
        a.headers()["content-type"],
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    );
    assert!(a.headers().get("content-encoding").is_none());
    let bytes = rt
        .block_on(axum::body::to_bytes(a.into_body(), usize::MAX))
        .unwrap();
    let frames = strata_remote::chunked::decode_frames(&bytes, 1 << 20).unwrap();
    assert_eq!(frames.len(), 1);
    let chunks = &frames[0].chunked_series[0].chunks;
    let n: usize = chunks
        .iter()
        .map(|c| strata_chunkenc::xor_num_samples(&c.data))
        .sum();
    assert_eq!(n, 500);
}
