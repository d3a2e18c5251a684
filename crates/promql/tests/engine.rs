//! Engine behaviour beyond the test scripts: limits, errors, range evaluation.

use std::sync::Arc;
use std::time::Duration;

use strata_promql::testing::TinyQueryable;
use strata_promql::{Engine, EngineOptions, Error, QueryOptions, Value};
use strata_storage::Queryable;

fn data() -> Arc<dyn Queryable> {
    Arc::new(TinyQueryable::sample_data())
}

#[tokio::test]
async fn range_matches_instant_at_each_step() {
    let e = Engine::new(EngineOptions::default());
    let q = "sum by (job) (rate(http_requests_total[5m]))";
    let r = e
        .range_query(
            data(),
            q,
            600_000,
            1_200_000,
            60_000,
            &QueryOptions::default(),
        )
        .await
        .expect("range");
    let Value::Matrix(m) = r.value else {
        panic!("matrix expected")
    };
    assert_eq!(m.len(), 2);
    for s in &m {
        assert_eq!(s.samples.len(), 11);
        for p in &s.samples {
            let i = e
                .instant_query(data(), q, p.t, &QueryOptions::default())
                .await
                .expect("instant");
            let Value::Vector(v) = i.value else {
                panic!("vector expected")
            };
            let got = v.iter().find(|x| x.metric == s.metric).expect("series");
            assert!((got.v - p.v).abs() < 1e-9);
        }
    }
}

#[tokio::test]
async fn too_many_samples() {
    let e = Engine::new(EngineOptions {
        max_samples: 100,
        ..EngineOptions::default()
    });
    let err = e
        .range_query(
            data(),
            "http_requests_total",
            0,
            3_600_000,
            15_000,
            &QueryOptions::default(),
        )
        .await
        .expect_err("limit");
    assert!(matches!(err, Error::TooManySamples(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
}

#[tokio::test]
async fn errors_are_typed() {
    let e = Engine::new(EngineOptions::default());
    let o = QueryOptions::default();
    let err = e
        .instant_query(data(), "sum(", 0, &o)
        .await
        .expect_err("parse");
    assert_eq!(err.error_type(), "bad_data");
    let deep = format!("{}up{}", "(".repeat(3000), ")".repeat(3000));
    assert!(e.instant_query(data(), &deep, 0, &o).await.is_err());
    let err = e
        .range_query(data(), "up[5m]", 0, 60_000, 15_000, &o)
        .await
        .expect_err("matrix in range query");
    assert_eq!(err.error_type(), "execution");
    let err = e
        .instant_query(data(), "http_requests_total + on(job) up", 600_000, &o)
        .await
        .expect_err("many-to-many");
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
    assert!(e
        .range_query(data(), "up", 0, i64::MAX / 2, 1, &o)
        .await
        .is_err());
}

#[tokio::test]
async fn timeout_is_reported() {
    let e = Engine::new(EngineOptions::default());
    let o = QueryOptions {
        timeout: Some(Duration::from_nanos(1)),
        ..QueryOptions::default()
    };
    let err = e
        .range_query(
            data(),
            "count_values(\"v\", http_requests_total)",
            0,
            3_600_000,
            1_000,
            &o,
        )
        .await
        .expect_err("timeout");
    assert_eq!(err.error_type(), "timeout");
}

#[tokio::test]
async fn topk_instant_is_ordered() {
    let e = Engine::new(EngineOptions::default());
    let r = e
        .instant_query(
            data(),
            "topk(3, http_requests_total)",
            1_800_000,
            &QueryOptions::default(),
        )
        .await
        .expect("topk");
    let Value::Vector(v) = r.value else {
        panic!("vector expected")
    };
    assert_eq!(v.len(), 3);
    assert!(v.windows(2).all(|w| w[0].v >= w[1].v));
}
