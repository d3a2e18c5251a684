//! One acceptance suite for every [`Queryable`] (STYLE.md §4, like Thanos'
//! `pkg/store/acceptance_test.go`): each implementation is built from the same
//! series and must answer the same questions the same way.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use strata_model::{Labels, MatchType, Matcher, Sample};
use strata_storage::{Frame, LabelRequest, Queryable, SelectRequest};

/// Series every implementation is loaded with: several metrics, missing labels,
/// NaN/±Inf values, gaps, and series of one sample.
pub fn acceptance_series() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for (i, inst) in ["a:1", "a:2", "b:1", "c:1"].iter().enumerate() {
        for (j, name) in ["up", "http_requests_total", "temp"].iter().enumerate() {
            let mut l = vec![
                ("__name__", name.to_string()),
                ("instance", inst.to_string()),
                ("job", "x".to_string()),
            ];
            if j == 2 {
                l.push(("room", format!("r{i}")));
            }
            if i == 3 {
                l.retain(|(n, _)| *n != "job");
            }
            let labels = Labels::from_pairs(l);
            let samples: Vec<Sample> = (0..300i64)
                .filter(|k| !(100..150).contains(k) || j != 1)
                .map(|k| {
                    let t = k * 15_000 + i as i64;
                    let v = match (j, k % 50) {
                        (2, 7) => f64::NAN,
                        (2, 8) => f64::INFINITY,
                        (2, 9) => f64::NEG_INFINITY,
                        (1, _) => (k * (i as i64 + 1)) as f64,
                        _ => 1.0,
                    };
                    Sample::new(t, v)
                })
                .collect();
            out.push((labels, samples));
        }
    }
    out.push((
        Labels::from_pairs([("__name__", "single"), ("job", "y")]),
        vec![Sample::new(1_000, 42.0)],
    ));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn select(
    q: &dyn Queryable,
    mint: i64,
    maxt: i64,
    ms: Vec<Matcher>,
) -> Vec<(Labels, Vec<Sample>)> {
    let mut s = q
        .select(&SelectRequest::new(mint, maxt, ms))
        .await
        .expect("select failed");
    let mut out = Vec::new();
    while let Some(f) = s.next().await {
        match f.expect("stream error") {
            Frame::Series(s) => {
                let v: Vec<Sample> = s
                    .collect_samples()
                    .expect("decoding samples")
                    .into_iter()
                    .filter(|x| x.t >= mint && x.t <= maxt)
                    .collect();
                // A source may return a series whose chunks overlap the range while
                // none of its samples fall inside (Prometheus and Thanos do): skip it.
                if !v.is_empty() {
                    out.push((s.labels.clone(), v));
                }
            }
            Frame::Warning(w) => panic!("unexpected warning {w}"),
        }
    }
    out
}

fn expect(
    all: &[(Labels, Vec<Sample>)],
    mint: i64,
    maxt: i64,
    ms: &[Matcher],
) -> Vec<(Labels, Vec<Sample>)> {
    all.iter()
        .filter(|(l, _)| strata_model::matches_all(ms, |n| l.get(n)))
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter()
                    .copied()
                    .filter(|x| x.t >= mint && x.t <= maxt)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

fn same(a: &[(Labels, Vec<Sample>)], b: &[(Labels, Vec<Sample>)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: series count");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.0, y.0, "{what}: labels");
        assert_eq!(x.1.len(), y.1.len(), "{what}: samples of {}", x.0);
        for (p, q) in x.1.iter().zip(&y.1) {
            assert_eq!(
                (p.t, p.v.to_bits()),
                (q.t, q.v.to_bits()),
                "{what}: sample of {}",
                x.0
            );
        }
    }
}

/// Runs the suite against the [`Queryable`] that `make` builds from the given
/// series (sorted by labels).
pub async fn queryable_acceptance<F, Fut>(make: F)
where
    F: FnOnce(Vec<(Labels, Vec<Sample>)>) -> Fut,
    Fut: Future<Output = Arc<dyn Queryable>>,
{
    let all = acceptance_series();
    let q = make(all.clone()).await;
    let m = |k, n: &str, v: &str| Matcher::new(k, n, v).expect("matcher");
    let cases: Vec<(&str, i64, i64, Vec<Matcher>)> = vec![
        (
            "all",
            i64::MIN,
            i64::MAX,
            vec![m(MatchType::Regex, "__name__", ".+")],
        ),
        (
            "by name",
            i64::MIN,
            i64::MAX,
            vec![m(MatchType::Equal, "__name__", "up")],
        ),
        (
            "regex alternation",
            0,
            i64::MAX,
            vec![m(MatchType::Regex, "instance", "a:1|c:1")],
        ),
        (
            "regex prefix",
            0,
            i64::MAX,
            vec![
                m(MatchType::Regex, "instance", "a.*"),
                m(MatchType::NotEqual, "__name__", "temp"),
            ],
        ),
        (
            "missing label",
            0,
            i64::MAX,
            vec![
                m(MatchType::Equal, "job", ""),
                m(MatchType::Regex, "__name__", ".+"),
            ],
        ),
        (
            "not equal keeps missing",
            0,
            i64::MAX,
            vec![
                m(MatchType::NotEqual, "job", "x"),
                m(MatchType::Regex, "__name__", ".+"),
            ],
        ),
        (
            "negative regex",
            0,
            i64::MAX,
            vec![
                m(MatchType::NotRegex, "room", "r[01]"),
                m(MatchType::Equal, "__name__", "temp"),
            ],
        ),
        (
            "time range",
            1_000_000,
            2_000_000,
            vec![m(MatchType::Regex, "__name__", "up|temp")],
        ),
        (
            "range in gap",
            1_510_000,
            2_240_000,
            vec![m(MatchType::Equal, "__name__", "http_requests_total")],
        ),
        (
            "no match",
            0,
            i64::MAX,
            vec![m(MatchType::Equal, "__name__", "nope")],
        ),
        (
            "empty range",
            10_000_000,
            20_000_000,
            vec![m(MatchType::Regex, "__name__", ".+")],
        ),
    ];
    for (what, mint, maxt, ms) in cases {
        let got = select(q.as_ref(), mint, maxt, ms.clone()).await;
        same(&got, &expect(&all, mint, maxt, &ms), what);
    }

    let req = LabelRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![],
        limit: 0,
    };
    let names = q.label_names(&req).await.expect("label names").value;
    assert_eq!(names, vec!["__name__", "instance", "job", "room"]);
    let vals = q
        .label_values("instance", &req)
        .await
        .expect("label values")
        .value;
    assert_eq!(vals, vec!["a:1", "a:2", "b:1", "c:1"]);
    let req = LabelRequest {
        matchers: vec![m(MatchType::Equal, "__name__", "temp")],
        ..req
    };
    let vals = q
        .label_values("room", &req)
        .await
        .expect("label values")
        .value;
    assert_eq!(vals, vec!["r0", "r1", "r2", "r3"]);
    let names = q.label_names(&req).await.expect("label names").value;
    assert_eq!(names, vec!["__name__", "instance", "job", "room"]);

    // skip_chunks: labels only.
    let mut r = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Equal, "__name__", "up")],
    );
    r.skip_chunks = true;
    let mut s = q.select(&r).await.expect("select");
    let mut n = 0;
    while let Some(f) = s.next().await {
        if let Frame::Series(s) = f.expect("stream") {
            assert!(s.chunks().is_empty(), "skip_chunks returned chunks");
            n += 1;
        }
    }
    assert_eq!(n, 4);
}
