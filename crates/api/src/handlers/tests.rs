//! Router tests over a small fake `Queryable`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use futures::stream;
use prometheus_client::registry::Registry;
use strata_model::{matches_all, Labels};
use strata_promql::{Engine, EngineOptions};
use strata_storage::{
    ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, SelectRequest, SourceInfo,
    WithWarnings,
};
use tower::ServiceExt;

use crate::{Api, BuildInfo, HttpMetrics, Lifecycle, ServerInfo};

/// Series without samples; enough for the metadata endpoints.
#[derive(Debug)]
struct Fake {
    series: Vec<Labels>,
}

impl Fake {
    fn matching<'a>(&'a self, ms: &'a [strata_model::Matcher]) -> impl Iterator<Item = &'a Labels> {
        self.series
            .iter()
            .filter(move |l| matches_all(ms, |n| l.get(n)))
    }
}

#[async_trait]
impl Queryable for Fake {
    async fn select(&self, req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        let mut out: Vec<Labels> = self.matching(&req.matchers).cloned().collect();
        out.sort();
        let frames: Vec<strata_storage::Result<Frame>> = out
            .into_iter()
            .map(|l| Ok(Frame::Series(ChunkSeries::from_chunks(l, Vec::new()))))
            .collect();
        Ok(Box::pin(stream::iter(frames)))
    }

    async fn label_names(
        &self,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let mut v: Vec<String> = self
            .matching(&req.matchers)
            .flat_map(|l| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        v.sort();
        v.dedup();
        Ok(WithWarnings::new(v))
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let mut v: Vec<String> = self
            .matching(&req.matchers)
            .filter_map(|l| l.get(name).map(str::to_owned))
            .collect();
        v.sort();
        v.dedup();
        Ok(WithWarnings::new(v))
    }

    fn info(&self) -> SourceInfo {
        SourceInfo::default()
    }
}

fn fake() -> Fake {
    Fake {
        series: vec![
            Labels::from_pairs([("__name__", "up"), ("job", "a"), ("instance", "x")]),
            Labels::from_pairs([("__name__", "up"), ("job", "b"), ("instance", "y")]),
            Labels::from_pairs([
                ("__name__", "http_requests_total"),
                ("job", "a"),
                ("code", "200"),
            ]),
            Labels::from_pairs([("__name__", "odd"), ("label.with.dots", "v<1>")]),
        ],
    }
}

#[derive(Default)]
struct Hooks {
    quits: std::sync::atomic::AtomicUsize,
}

impl Lifecycle for Hooks {
    fn reload(&self) -> Result<(), String> {
        Err("bad yaml".into())
    }
    fn quit(&self) {
        self.quits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn api() -> Arc<Api> {
    let mut flags = BTreeMap::new();
    flags.insert("query.timeout".to_owned(), "2m".to_owned());
    let info = ServerInfo {
        build: BuildInfo {
            version: "0.1.0".into(),
            ..BuildInfo::default()
        },
        flags,
        storage_retention: "15d".into(),
        ..ServerInfo::default()
    };
    let mut reg = Registry::default();
    let http = HttpMetrics::new(&mut reg);
    let api = Api::new(
        Arc::new(fake()),
        Arc::new(Engine::new(EngineOptions::default())),
        info,
    )
    .with_metrics(Arc::new(reg), http);
    api.set_config_yaml("global:\n  scrape_interval: 15s\n");
    Arc::new(api)
}

async fn call(api: &Arc<Api>, req: Request<Body>) -> (StatusCode, String, String) {
    let resp = api.clone().router().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(api: &Arc<Api>, uri: &str) -> (StatusCode, String) {
    let (s, _, b) = call(api, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, b)
}

async fn post_form(api: &Arc<Api>, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let (s, _, b) = call(api, req).await;
    (s, b)
}

#[tokio::test]
async fn labels_and_values() {
    let api = api();
    let (s, b) = get(&api, "/api/v1/labels").await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        r#"{"status":"success","data":["__name__","code","instance","job","label.with.dots"]}"#
    );
    let (_, b) = get(&api, "/api/v1/labels?match[]=up").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":["__name__","instance","job"]}"#
    );
    let (_, b) = get(&api, "/api/v1/labels?limit=2").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":["__name__","code"],"warnings":["results truncated due to limit"]}"#
    );
    let (_, b) = get(&api, "/api/v1/label/__name__/values").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":["http_requests_total","odd","up"]}"#
    );
    let (_, b) = get(
        &api,
        "/api/v1/label/job/values?match[]=up&match[]=http_requests_total",
    )
    .await;
    assert_eq!(b, r#"{"status":"success","data":["a","b"]}"#);
    let (_, b) = get(&api, "/api/v1/label/nope/values").await;
    assert_eq!(b, r#"{"status":"success","data":[]}"#);
    let (_, b) = get(&api, "/api/v1/label/U__label_2e_with_2e_dots/values").await;
    assert_eq!(b, r#"{"status":"success","data":["v\u003c1\u003e"]}"#);
    let (s, b) = post_form(&api, "/api/v1/labels", "match[]=http_requests_total").await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        r#"{"status":"success","data":["__name__","code","job"]}"#
    );
}

#[tokio::test]
async fn series() {
    let api = api();
    let (s, b) = get(&api, "/api/v1/series?match[]=up").await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        r#"{"status":"success","data":[{"__name__":"up","instance":"x","job":"a"},{"__name__":"up","instance":"y","job":"b"}]}"#
    );
    // Overlapping selectors are merged and deduplicated.
    let (_, b) = get(&api, "/api/v1/series?match[]=up&match[]={job=%22a%22}").await;
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 3, "{b}");
    let (_, b) = get(&api, "/api/v1/series?match[]=odd").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":[{"__name__":"odd","label.with.dots":"v<1>"}]}"#
    );
    let (_, b) = get(&api, "/api/v1/series?match[]=up&limit=1").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":[{"__name__":"up","instance":"x","job":"a"}],"warnings":["results truncated due to limit"]}"#
    );
    let (_, b) = get(&api, "/api/v1/series?match[]=nothing").await;
    assert_eq!(b, r#"{"status":"success","data":[]}"#);
    let (s, b) = post_form(&api, "/api/v1/series", "match%5B%5D=up&start=0&end=1").await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn parameter_errors() {
    let api = api();
    let cases = [
        (
            "/api/v1/series",
            r#"{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}"#,
        ),
        (
            "/api/v1/series?match[]=up&start=abc",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": invalid time value for 'start': cannot parse \"abc\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/labels?limit=-1",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=2&end=1&step=1",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=1&step=0",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=11001&step=1",
            r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}"#,
        ),
        (
            "/api/v1/query_range?query=up&end=1&step=1",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/query?query=up&time=yesterday",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"}"#,
        ),
        (
            "/api/v1/query?query=up&timeout=soon",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"}"#,
        ),
    ];
    for (uri, want) in cases {
        let (s, b) = get(&api, uri).await;
        assert_eq!(s, 400, "{uri}: {b}");
        assert_eq!(b, want, "{uri}");
    }
}

#[tokio::test]
async fn query_parse_errors_are_bad_data() {
    let api = api();
    for uri in [
        "/api/v1/query?query=up%7B",
        "/api/v1/query?query=",
        "/api/v1/query_range?query=sum(&start=0&end=10&step=1",
    ] {
        let (s, b) = get(&api, uri).await;
        assert_eq!(s, 400, "{uri}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["errorType"], "bad_data");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with("invalid parameter \"query\": "), "{msg}");
    }
    let (s, b) = post_form(&api, "/api/v1/query", "query=up%7B").await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn status_endpoints() {
    let api = api();
    let (_, b) = get(&api, "/api/v1/status/buildinfo").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":{"version":"0.1.0","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":""}}"#
    );
    let (_, b) = get(&api, "/api/v1/status/flags").await;
    assert_eq!(b, r#"{"status":"success","data":{"query.timeout":"2m"}}"#);
    let (_, b) = get(&api, "/api/v1/status/config").await;
    assert_eq!(
        b,
        r#"{"status":"success","data":{"yaml":"global:\n  scrape_interval: 15s\n"}}"#
    );
    let (_, b) = get(&api, "/api/v1/status/runtimeinfo").await;
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["data"]["storageRetention"], "15d");
    assert_eq!(v["data"]["reloadConfigSuccess"], true);
    assert!(v["data"]["startTime"].as_str().unwrap().ends_with('Z'));
    let (_, b) = get(&api, "/api/v1/metadata").await;
    assert_eq!(b, r#"{"status":"success","data":{}}"#);
    let (s, b) = get(&api, "/api/v1/format_query?query=sum(up)%20by%20(job)").await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = get(&api, "/api/v1/query_exemplars?query=up").await;
    assert_eq!(b, r#"{"status":"success","data":[]}"#);
}

#[tokio::test]
async fn probes_readiness_and_metrics() {
    let api = api();
    let (s, ct, b) = call(
        &api,
        Request::get("/-/healthy").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (s.as_u16(), b.as_str()),
        (200, "Prometheus Server is Healthy.\n")
    );
    assert!(ct.starts_with("text/plain"));
    let (s, b) = get(&api, "/-/ready").await;
    assert_eq!(
        (s.as_u16(), b.as_str()),
        (200, "Prometheus Server is Ready.\n")
    );
    api.set_ready(false);
    let (s, _) = get(&api, "/-/ready").await;
    assert_eq!(s, 503);
    let (s, b) = get(&api, "/api/v1/labels").await;
    assert_eq!((s.as_u16(), b.as_str()), (503, "Service Unavailable"));
    api.set_ready(true);
    let (_, ct, _) = call(
        &api,
        Request::get("/api/v1/labels").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(ct, "application/json");
    let (s, b) = get(&api, "/metrics").await;
    assert_eq!(s, 200);
    assert!(
        b.contains(r#"prometheus_http_requests_total{code="200",handler="/api/v1/labels"} 1"#),
        "{b}"
    );
    assert!(b.contains(r#"handler="/-/ready""#), "{b}");
}

#[tokio::test]
async fn lifecycle() {
    let api = api();
    let (s, b) = post_form(&api, "/-/quit", "").await;
    assert_eq!(
        (s.as_u16(), b.as_str()),
        (403, "Lifecycle API is not enabled.")
    );
    let hooks = Arc::new(Hooks::default());
    let api2 = Arc::new(
        Api::new(
            Arc::new(fake()),
            Arc::new(Engine::new(EngineOptions::default())),
            ServerInfo::default(),
        )
        .with_lifecycle(hooks.clone()),
    );
    let (s, _) = post_form(&api2, "/-/quit", "").await;
    assert_eq!(s, 200);
    assert_eq!(hooks.quits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (s, b) = post_form(&api2, "/-/reload", "").await;
    assert_eq!(s, 500);
    assert_eq!(b, "failed to reload config: bad yaml\n");
    let (s, _) = get(&api2, "/-/quit").await;
    assert_eq!(s, 405);
}

/// One series `x` with a single sample (t = 0, v = 1).
#[derive(Debug)]
struct OneSample;

#[async_trait]
impl Queryable for OneSample {
    async fn select(&self, _req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        let s = ChunkSeries {
            labels: Labels::from_pairs([("__name__", "x")]),
            data: strata_storage::SeriesData::Samples(Arc::from(vec![strata_model::Sample {
                t: 0,
                v: 1.0,
            }])),
        };
        Ok(Box::pin(stream::iter(vec![Ok(Frame::Series(s))])))
    }

    async fn label_names(
        &self,
        _req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::new(Vec::new()))
    }

    async fn label_values(
        &self,
        _name: &str,
        _req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::new(Vec::new()))
    }

    fn info(&self) -> SourceInfo {
        SourceInfo::default()
    }
}

/// A selector whose lookback delta is 1h when `max_source_resolution` is given.
struct WideLookback;

impl crate::SourceSelector for WideLookback {
    fn source(&self, _params: &crate::SourceParams) -> crate::Result<Arc<dyn Queryable>> {
        Ok(Arc::new(OneSample))
    }

    fn lookback_delta_ms(&self, params: &crate::SourceParams) -> Option<i64> {
        params.max_source_resolution.map(|_| 3_600_000)
    }
}

/// The selector's lookback delta applies per request, and the request's own
/// `lookback_delta` wins over it (Thanos `pkg/api/query/v1.go`).
#[tokio::test]
async fn selector_picks_the_lookback_delta() {
    let api = Arc::new(
        Api::new(
            Arc::new(OneSample),
            Arc::new(Engine::new(EngineOptions::default())),
            ServerInfo::default(),
        )
        .with_source_selector(Arc::new(WideLookback)),
    );
    let found = |body: &str| !body.contains(r#""result":[]"#);
    // 30 minutes after the sample: beyond the default 5m lookback.
    let (s, b) = get(&api, "/api/v1/query?query=x&time=1800").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(!found(&b), "{b}");
    let (_, b) = get(
        &api,
        "/api/v1/query?query=x&time=1800&max_source_resolution=1h",
    )
    .await;
    assert!(found(&b), "{b}");
    let (_, b) = get(
        &api,
        "/api/v1/query_range?query=x&start=1800&end=1800&step=60&max_source_resolution=1h",
    )
    .await;
    assert!(found(&b), "{b}");
    let (_, b) = get(
        &api,
        "/api/v1/query?query=x&time=1800&max_source_resolution=1h&lookback_delta=1m",
    )
    .await;
    assert!(!found(&b), "{b}");
}
