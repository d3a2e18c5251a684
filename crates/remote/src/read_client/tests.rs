use std::sync::{Arc, Mutex};

use axum::extract::RawQuery;
use axum::routing::get;
use axum::Router;
use futures::TryStreamExt;
use prometheus_client::registry::Registry;
use strata_model::{MatchType, Sample};
use strata_testkit::MemQueryable;

use super::*;
use crate::read::{read_router, ReadOptions};

fn ext() -> Labels {
    Labels::from_pairs([("region", "eu"), ("replica", "a")])
}

fn data() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for i in 0..5 {
        let l = Labels::from_pairs([
            ("__name__", "m".to_string()),
            ("i", i.to_string()),
            ("job", "j".to_string()),
        ]);
        let s = (0..1000)
            .map(|t| Sample::new(t * 1000, (t * i) as f64))
            .collect();
        out.push((l, s));
    }
    out
}

/// Serves `router` on a loopback port; the task ends with the runtime.
async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await });
    format!("http://{addr}")
}

async fn remote(max_bytes_in_frame: usize) -> String {
    let q: Arc<dyn Queryable> = Arc::new(MemQueryable::from_series(data()));
    let opts = ReadOptions {
        max_bytes_in_frame,
        external_labels: ext(),
        ..Default::default()
    };
    serve(read_router(q, opts, &mut Registry::default())).await
}

async fn select_all(c: &ReadClient, req: &SelectRequest) -> Vec<ChunkSeries> {
    c.select(req)
        .await
        .unwrap()
        .try_filter_map(|f| async move {
            Ok(match f {
                Frame::Series(s) => Some(s),
                Frame::Warning(_) => None,
            })
        })
        .try_collect()
        .await
        .unwrap()
}

fn json(body: &'static str) -> impl axum::response::IntoResponse {
    ([("content-type", "application/json")], body)
}

fn name_re() -> Matcher {
    Matcher::new(MatchType::Regex, "__name__", "m|x").unwrap()
}

#[tokio::test]
async fn split_series_are_joined_and_chunks_pass_through() {
    // A tiny frame size makes the server put every chunk in its own frame.
    let url = remote(1).await;
    let c = ReadClient::new(&url, ReadClientOptions::default()).unwrap();
    c.set_external_labels(ext());
    let got = select_all(&c, &SelectRequest::new(0, 999_000, vec![name_re()])).await;
    let want = data();
    assert_eq!(got.len(), want.len());
    for (g, (l, s)) in got.iter().zip(&want) {
        // External labels are stripped by default.
        assert_eq!(&g.labels, l);
        assert!(g.chunks().len() > 1, "several chunks expected");
        assert_eq!(&g.collect_samples().unwrap(), s);
    }
}

#[tokio::test]
async fn external_labels_kept_when_asked_and_matchers_resolved() {
    let url = remote(1 << 20).await;
    let opts = ReadClientOptions {
        strip_external_labels: false,
        ..Default::default()
    };
    let c = ReadClient::new(&url, opts).unwrap();
    c.set_external_labels(ext());
    let ms = vec![
        name_re(),
        Matcher::new(MatchType::Regex, "region", "e.*").unwrap(),
    ];
    let got = select_all(&c, &SelectRequest::new(0, 10_000, ms)).await;
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].labels.get("region"), Some("eu"));
    assert_eq!(got[0].labels.get("replica"), Some("a"));
    // Only chunks overlapping the range, whole.
    assert_eq!(got[0].chunks().len(), 1);

    let miss = vec![name_re(), Matcher::equal("region", "us")];
    assert!(select_all(&c, &SelectRequest::new(0, 10_000, miss))
        .await
        .is_empty());
    let names = c
        .label_names(&LabelRequest {
            matchers: vec![Matcher::equal("region", "us")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(names.value.is_empty());
}

#[tokio::test]
async fn bad_requests_and_absurd_ranges() {
    let url = remote(1 << 20).await;
    let c = ReadClient::new(&url, ReadClientOptions::default()).unwrap();
    c.set_external_labels(ext());
    // Only external-label matchers: refused as Thanos does.
    let r = c
        .select(&SelectRequest::new(
            0,
            1,
            vec![Matcher::equal("region", "eu")],
        ))
        .await;
    assert!(
        matches!(r, Err(StorageError::BadRequest(_))),
        "{:?}",
        r.err()
    );
    // min > max: nothing, without asking.
    assert!(select_all(&c, &SelectRequest::new(10, 5, vec![name_re()]))
        .await
        .is_empty());
    // The whole i64 range works.
    let all = select_all(&c, &SelectRequest::new(i64::MIN, i64::MAX, vec![name_re()])).await;
    assert_eq!(all.len(), 5);
    // Raising the min time cuts the answer.
    c.set_min_time(2_000_000);
    assert!(
        select_all(&c, &SelectRequest::new(0, 999_000, vec![name_re()]))
            .await
            .is_empty()
    );
    assert_eq!(c.info().min_time, 2_000_000);
    assert_eq!(c.info().label_sets, vec![ext()]);
}

#[tokio::test]
async fn unreachable_and_garbage_servers_are_errors() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = ReadClient::new(&format!("http://{addr}"), ReadClientOptions::default()).unwrap();
    let r = c.select(&SelectRequest::new(0, 1, vec![name_re()])).await;
    assert!(
        matches!(r, Err(StorageError::Unavailable(_))),
        "{:?}",
        r.err()
    );

    // A server answering the streamed content type with corrupt frames.
    let router = Router::new().route(
        "/api/v1/read",
        axum::routing::post(|| async {
            (
                [("content-type", crate::chunked::STREAMED_CONTENT_TYPE)],
                vec![5u8, 0, 0, 0, 0, 1, 2, 3, 4, 5],
            )
        }),
    );
    let c = ReadClient::new(&serve(router).await, ReadClientOptions::default()).unwrap();
    let mut s = c
        .select(&SelectRequest::new(0, 1, vec![name_re()]))
        .await
        .unwrap();
    let e = s.try_next().await.unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[tokio::test]
async fn label_requests_carry_match_start_end() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let s3 = seen.clone();
    let router = Router::new()
        .route(
            "/api/v1/labels",
            get(move |RawQuery(q): RawQuery| async move {
                s2.lock().unwrap().push(q.unwrap_or_default());
                json(r#"{"status":"success","data":["job","__name__"]}"#)
            }),
        )
        .route(
            "/api/v1/label/{name}/values",
            get(
                move |axum::extract::Path(name): axum::extract::Path<String>,
                      RawQuery(q): RawQuery| async move {
                    s3.lock()
                        .unwrap()
                        .push(format!("{name}:{}", q.unwrap_or_default()));
                    json(r#"{"status":"success","data":["b","a"],"warnings":["w"]}"#)
                },
            ),
        );
    let c = ReadClient::new(&serve(router).await, ReadClientOptions::default()).unwrap();
    let req = LabelRequest {
        min_time: 1500,
        max_time: 2000,
        matchers: vec![Matcher::equal("job", "x\"y")],
        limit: 0,
    };
    let n = c.label_names(&req).await.unwrap();
    assert_eq!(n.value, ["__name__", "job"]);
    let v = c.label_values("job", &req).await.unwrap();
    assert_eq!(v.value, ["a", "b"]);
    assert_eq!(v.warnings, ["w"]);
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got[0],
        "match%5B%5D=%7Bjob%3D%22x%5C%22y%22%7D&start=1.500&end=2.000"
    );
    assert!(got[1].starts_with("job:"), "{}", got[1]);
    assert!(got[1].ends_with("&end=2.000"), "{}", got[1]);
    // Unbounded requests send no start/end.
    let all = LabelRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        ..Default::default()
    };
    c.label_names(&all).await.unwrap();
    assert_eq!(seen.lock().unwrap()[2], "");
}

#[tokio::test]
async fn external_labels_breaking_the_order_give_a_warning() {
    // TSDB order {a} < {a, b}; with external label c merged in, {a, b, c} < {a, c}.
    let series = vec![
        (
            Labels::from_pairs([("__name__", "m"), ("a", "1")]),
            vec![Sample::new(1, 1.0)],
        ),
        (
            Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "2")]),
            vec![Sample::new(1, 1.0)],
        ),
    ];
    let q: Arc<dyn Queryable> = Arc::new(MemQueryable::from_series(series));
    let ext = Labels::from_pairs([("c", "x")]);
    let opts = ReadOptions {
        external_labels: ext.clone(),
        ..Default::default()
    };
    let url = serve(read_router(q, opts, &mut Registry::default())).await;
    let c = ReadClient::new(
        &url,
        ReadClientOptions {
            strip_external_labels: false,
            ..Default::default()
        },
    )
    .unwrap();
    c.set_external_labels(ext);
    let frames: Vec<Frame> = c
        .select(&SelectRequest::new(0, 10, vec![name_re()]))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(frames.len(), 3);
    assert!(matches!(&frames[2], Frame::Warning(w) if w.contains("label order")));
    // Stripped, the order is the storage's and there is no warning.
    let c = ReadClient::new(&url, ReadClientOptions::default()).unwrap();
    c.set_external_labels(Labels::from_pairs([("c", "x")]));
    let frames: Vec<Frame> = c
        .select(&SelectRequest::new(0, 10, vec![name_re()]))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| matches!(f, Frame::Series(_))));
}

#[test]
fn seconds_formatting() {
    assert_eq!(format_seconds(1500), "1.500");
    assert_eq!(format_seconds(-1), "-1.999");
    assert_eq!(format_seconds(0), "0.000");
}
