//! Remote read against a real Prometheus 2.42: blocks backfilled by Strata are
//! served by the read endpoint (in process, over `strata_tsdb::Db`) to a
//! Prometheus with an empty TSDB and `remote_read`; its query answers must equal
//! the input and those of a Prometheus that opens the same blocks directly.
//! Prometheus 2.42's client sends an empty `accepted_response_types`, so it gets
//! SAMPLES (streamed reads came to its client later); STREAMED_XOR_CHUNKS, as
//! Thanos' sidecar asks for it, and SAMPLES are also checked by hand against the
//! storage, with small frames and external labels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use prometheus_client::registry::Registry;
use prost::Message;
use serde_json::Value;
use strata_model::{Labels, Matcher};
use strata_remote::chunked::decode_frames;
use strata_remote::prompb::{LabelMatcher, Query, ReadRequest, ReadResponse};
use strata_remote::{read_router, snappy_decode, snappy_encode, ReadOptions};
use strata_storage::{ChunkSeries, Frame, Queryable, SelectRequest};
use strata_testkit::openmetrics::{generate, Options};
use strata_testkit::{copy_dir, PrometheusProcess};
use strata_tsdb::backfill::{create_blocks_from_openmetrics, BackfillOptions};
use strata_tsdb::Db;

/// Samples (time, value bits) by label pairs.
type SeriesSamples = BTreeMap<Vec<(String, String)>, Vec<(i64, u64)>>;

fn serve(rt: &tokio::runtime::Runtime, db: Arc<Db>, opts: ReadOptions) -> SocketAddr {
    let router = read_router(db, opts, &mut Registry::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The answer's data with result elements sorted by metric, for comparison.
fn sorted_data(answer: &Value, what: &str) -> Value {
    assert_eq!(answer["status"], "success", "{what}: {answer}");
    let mut data = answer["data"].clone();
    if let Some(arr) = data["result"].as_array_mut() {
        arr.sort_by_key(|el| el["metric"].to_string());
    }
    data
}

fn post_read(addr: SocketAddr, req: &ReadRequest) -> (String, Option<String>, Vec<u8>) {
    let resp = ureq::post(&format!("http://{addr}/api/v1/read"))
        .set("Content-Type", "application/x-protobuf")
        .set("Content-Encoding", "snappy")
        .set("X-Prometheus-Remote-Read-Version", "0.1.0")
        .send_bytes(&snappy_encode(&req.encode_to_vec()))
        .unwrap();
    let ct = resp.header("content-type").unwrap_or_default().to_owned();
    let ce = resp.header("content-encoding").map(str::to_owned);
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (ct, ce, body)
}

fn select_all(rt: &tokio::runtime::Runtime, db: &Db, name: &str) -> Vec<ChunkSeries> {
    rt.block_on(async {
        let req = SelectRequest::new(i64::MIN, i64::MAX, vec![Matcher::equal("__name__", name)]);
        let mut s = db.select(&req).await.unwrap();
        let mut out = Vec::new();
        while let Some(f) = s.next().await {
            if let Frame::Series(s) = f.unwrap() {
                out.push(s);
            }
        }
        out
    })
}

#[test]
fn prometheus_reads_strata_blocks_remotely() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        duration_secs: 5 * 3600,
        series: 40,
        ..Options::default()
    };
    let text = generate(&opts);
    let blocks = dir.path().join("blocks");
    create_blocks_from_openmetrics(
        text.as_bytes(),
        &blocks,
        &BackfillOptions::default(),
        |_, _, _| {},
    )
    .unwrap();
    let direct_dir = dir.path().join("direct");
    copy_dir(&blocks, &direct_dir);
    let db = Arc::new(Db::open(&blocks).unwrap());
    let addr = serve(&rt, Arc::clone(&db), ReadOptions::default());

    let config = format!(
        "global:\n  scrape_interval: 1h\nremote_read:\n  - url: http://{addr}/api/v1/read\n    read_recent: true\n"
    );
    let remote = PrometheusProcess::start_with_config(&dir.path().join("remote"), &config, &[]);
    let direct = PrometheusProcess::start(&direct_dir, &[]);

    // The harness' own checks against the input...
    strata_testkit::prometheus::assert_serves(&remote, &text);

    // ...and identical answers to a Prometheus reading the blocks itself.
    let start = opts.start_secs as f64;
    let end = start + opts.duration_secs as f64;
    let instant = [
        r#"count by (__name__) ({__name__=~".+"})"#,
        r#"{__name__=~".+"}"#,
        r#"sum by (__name__) (rate({__name__=~".+_total"}[5m]))"#,
        r#"max_over_time(requests_total[10m])"#,
        r#"count_over_time(requests_total[1h])"#,
    ];
    for q in instant {
        for t in [start + 600.5, start + 7300.0, end - 1.0] {
            let want = sorted_data(&direct.query(q, t), q);
            let got = sorted_data(&remote.query(q, t), q);
            assert!(
                !want["result"].as_array().unwrap().is_empty(),
                "{q} at {t}: empty"
            );
            assert_eq!(got, want, "{q} at {t}");
        }
    }
    let q = r#"sum by (__name__) (rate({__name__=~".+_total"}[5m]))"#;
    let want = sorted_data(&direct.query_range(q, start, end, 60.0), q);
    let got = sorted_data(&remote.query_range(q, start, end, 60.0), q);
    assert_eq!(got, want, "range {q}");
    drop(remote);
    drop(direct);

    // By hand: SAMPLES (trimmed to the range) and small streamed frames, with
    // external labels merged in.
    let ext = Labels::from_pairs([("replica", "r1")]);
    let small = serve(
        &rt,
        Arc::clone(&db),
        ReadOptions {
            max_bytes_in_frame: 300,
            external_labels: ext,
            ..ReadOptions::default()
        },
    );
    let stored = select_all(&rt, &db, "requests_total");
    assert_eq!(stored.len(), 40);
    let (mint, maxt) = (
        opts.start_secs * 1000 + 1_000_000,
        opts.start_secs * 1000 + 9_000_000,
    );
    let query = Query {
        start_timestamp_ms: mint,
        end_timestamp_ms: maxt,
        matchers: vec![LabelMatcher {
            r#type: 0,
            name: "__name__".into(),
            value: "requests_total".into(),
        }],
        hints: None,
    };
    let mut req = ReadRequest {
        queries: vec![query.clone()],
        accepted_response_types: vec![0],
    };
    let (ct, ce, body) = post_read(small, &req);
    assert_eq!(ct, "application/x-protobuf");
    assert_eq!(ce.as_deref(), Some("snappy"));
    let resp = ReadResponse::decode(snappy_decode(&body, 1 << 30).unwrap().as_slice()).unwrap();
    let label_key = |l: &Labels| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = l
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        v.push(("replica".into(), "r1".into()));
        v.sort();
        v
    };
    let mut want: SeriesSamples = BTreeMap::new();
    for s in &stored {
        let samples: Vec<(i64, u64)> = s
            .collect_samples()
            .unwrap()
            .into_iter()
            .filter(|x| (mint..=maxt).contains(&x.t))
            .map(|x| (x.t, x.v.to_bits()))
            .collect();
        if !samples.is_empty() {
            want.insert(label_key(&s.labels), samples);
        }
    }
    let got: SeriesSamples = resp.results[0]
        .timeseries
        .iter()
        .map(|ts| {
            (
                ts.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                ts.samples
                    .iter()
                    .map(|x| (x.timestamp, x.value.to_bits()))
                    .collect(),
            )
        })
        .collect();
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(got, want);

    req.accepted_response_types = vec![1, 0];
    let (ct, ce, body) = post_read(small, &req);
    assert_eq!(
        ct,
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    );
    assert_eq!(ce, None);
    let frames = decode_frames(&body, 1 << 20).unwrap();
    let mut by_series: BTreeMap<Vec<(String, String)>, Vec<_>> = BTreeMap::new();
    for f in &frames {
        assert_eq!(f.chunked_series.len(), 1);
        assert_eq!(f.query_index, 0);
        // About max_bytes_in_frame: at most one chunk over.
        assert!(f.encoded_len() < 300 + 1100, "{}", f.encoded_len());
        let cs = &f.chunked_series[0];
        let l = cs
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        by_series.entry(l).or_default().extend(cs.chunks.clone());
    }
    let stored_chunks: BTreeMap<_, _> = stored
        .iter()
        .map(|s| {
            let chunks: Vec<_> = s
                .chunks()
                .iter()
                .filter(|c| c.max_time >= mint && c.min_time <= maxt)
                .map(|c| (c.min_time, c.max_time, c.chunk.data.clone()))
                .collect();
            (label_key(&s.labels), chunks)
        })
        .filter(|(_, c)| !c.is_empty())
        .collect();
    assert_eq!(
        by_series.keys().collect::<Vec<_>>(),
        stored_chunks.keys().collect::<Vec<_>>()
    );
    // Series were split over several frames.
    assert!(
        frames.len() > 2 * by_series.len(),
        "{} frames",
        frames.len()
    );
    for (chunks, want) in by_series.values().zip(stored_chunks.values()) {
        // Whole chunks as stored, those overlapping the range.
        let got: Vec<_> = chunks
            .iter()
            .map(|c| (c.min_time_ms, c.max_time_ms, c.data.clone()))
            .collect();
        assert_eq!(&got, want);
        assert!(chunks.iter().all(|c| c.r#type == 1));
    }
}
