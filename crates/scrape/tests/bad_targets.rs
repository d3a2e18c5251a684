//! Targets that misbehave: malformed or gigantic payloads, label bombs, duplicate
//! series, timestamps far in the future or past, slow responses, wrong
//! Content-Type, refused connections. Each gets a clear error in the targets
//! snapshot (and `up=0` where the scrape fails); nothing panics, and a good
//! target scraped alongside keeps working.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use strata_config::Config;
use strata_model::Matcher;
use strata_scrape::ScrapeManager;
use strata_tsdb::head::{Head, HeadOptions};

const TEXT: &str = "text/plain; version=0.0.4";

fn text(body: String) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(CONTENT_TYPE, TEXT)], body)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn router() -> Router {
    Router::new()
        .route(
            "/good",
            get(|| async { text("# TYPE ok gauge\nok 1\n".into()) }),
        )
        .route("/malformed", get(|| async { text("a{b=\"c\" 1\n".into()) }))
        .route("/gigantic", get(|| async { text("x 1\n".repeat(1 << 20)) }))
        .route(
            "/labelbomb",
            get(|| async {
                let labels: Vec<String> = (0..500).map(|i| format!("l{i}=\"v\"")).collect();
                text(format!("bomb{{{}}} 1\n", labels.join(",")))
            }),
        )
        .route("/dups", get(|| async { text("d 1\nd 2\nd{} 3\n".into()) }))
        .route(
            "/future",
            get(|| async { text(format!("f 1 {}\ng 1\n", now_ms() + 365 * 86_400_000)) }),
        )
        .route("/past", get(|| async { text("p 1 1000\nq 1\n".into()) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                text("s 1\n".into())
            }),
        )
        .route(
            "/nocontenttype",
            get(|| async { axum::response::Response::new(axum::body::Body::from("x 1\n")) }),
        )
        .route(
            "/notfound",
            get(|| async { (axum::http::StatusCode::NOT_FOUND, "no") }),
        )
}

fn job(name: &str, addr: &str, path: &str, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    metrics_path: {path}\n{extra}    static_configs:\n      \
         - targets: ['{addr}']\n"
    )
}

fn last_value(head: &Head, name: &str, job: &str) -> Option<f64> {
    let s = head.select_series(
        i64::MIN,
        i64::MAX,
        &[Matcher::equal("__name__", name), Matcher::equal("job", job)],
        false,
    );
    s.first()
        .and_then(|s| s.collect_samples().ok())
        .and_then(|v| v.last().map(|x| x.v))
}

#[test]
fn bad_targets_fail_clearly_and_good_ones_keep_working() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let head_dir = tempfile::tempdir().unwrap();
    let head = Arc::new(Head::open(head_dir.path(), HeadOptions::default()).unwrap());
    let (snapshot, head) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router()).await });
        let closed = format!("127.0.0.1:{}", strata_testkit::free_port());
        let mut yaml = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n",
        );
        yaml += &job("good", &addr, "/good", "");
        yaml += &job("malformed", &addr, "/malformed", "");
        yaml += &job("gigantic", &addr, "/gigantic", "    body_size_limit: 1MB\n");
        yaml += &job("labelbomb", &addr, "/labelbomb", "    label_limit: 64\n");
        yaml += &job("dups", &addr, "/dups", "");
        yaml += &job("future", &addr, "/future", "");
        yaml += &job("past", &addr, "/past", "");
        yaml += &job("slow", &addr, "/slow", "");
        yaml += &job("nocontenttype", &addr, "/nocontenttype", "");
        yaml += &job("notfound", &addr, "/notfound", "");
        yaml += &job("refused", &closed, "/metrics", "");
        yaml += &job("samplelimit", &addr, "/dups", "    sample_limit: 1\n");
        let mut reg = Registry::default();
        let m = ScrapeManager::new(head.clone(), &mut reg);
        m.apply_config(&Config::parse(&yaml).unwrap()).unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let snap = m.targets();
        m.stop().await;
        (snap, head)
    });
    let by_job: BTreeMap<&str, _> = snapshot
        .active_targets
        .iter()
        .map(|t| (t.scrape_pool.as_str(), t))
        .collect();
    let expect_down = [
        ("malformed", "parsing exposition: line 1"),
        ("gigantic", "body size limit exceeded"),
        (
            "labelbomb",
            "label_limit exceeded (metric: bomb, number of labels: 503, limit: 64)",
        ),
        ("slow", "context deadline exceeded"),
        ("nocontenttype", "received unsupported Content-Type"),
        ("notfound", "server returned HTTP status 404 Not Found"),
        ("refused", "Get \"http://"),
        ("samplelimit", "sample limit exceeded"),
    ];
    for (j, want) in expect_down {
        let t = by_job[j];
        assert_eq!(t.health, "down", "{j}: {t:?}");
        assert!(t.last_error.contains(want), "{j}: {:?}", t.last_error);
        assert_eq!(last_value(&head, "up", j), Some(0.0), "{j}");
        assert_eq!(
            last_value(&head, "scrape_samples_scraped", j),
            Some(0.0),
            "{j}"
        );
    }
    let expect_up_with_warning = [
        ("dups", "2 duplicate series"),
        ("future", "1 too far in the future"),
        ("good", ""),
    ];
    for (j, want) in expect_up_with_warning {
        let t = by_job[j];
        assert_eq!(t.health, "up", "{j}: {t:?}");
        assert!(t.last_error.contains(want), "{j}: {:?}", t.last_error);
        assert_eq!(last_value(&head, "up", j), Some(1.0), "{j}");
    }
    // The past sample goes in or is rejected by the head, but the scrape is up
    // and the rest of it is stored.
    assert_eq!(by_job["past"].health, "up");
    assert_eq!(last_value(&head, "q", "past"), Some(1.0));
    assert_eq!(last_value(&head, "g", "future"), Some(1.0));
    assert_eq!(last_value(&head, "f", "future"), None);
    assert_eq!(last_value(&head, "ok", "good"), Some(1.0));
    // Nothing of a failed scrape is stored.
    assert_eq!(last_value(&head, "x", "gigantic"), None);
    assert_eq!(last_value(&head, "bomb", "labelbomb"), None);
    assert_eq!(last_value(&head, "d", "samplelimit"), None);
}

#[test]
fn reload_keeps_unchanged_targets_and_stales_removed_ones() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let head_dir = tempfile::tempdir().unwrap();
    let head = Arc::new(Head::open(head_dir.path(), HeadOptions::default()).unwrap());
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router()).await });
        let head_ = head.clone();
        let mut reg = Registry::default();
        let m = ScrapeManager::new(head_, &mut reg);
        let base = "global:\n  scrape_interval: 1s\nscrape_configs:\n";
        let both = format!(
            "{base}{}{}",
            job("a", &addr, "/good", ""),
            job("b", &addr, "/dups", "")
        );
        m.apply_config(&Config::parse(&both).unwrap()).unwrap();
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let before = m.targets();
        // A bad reload (unreadable CA file) changes nothing.
        let bad = format!(
            "{base}{}",
            job(
                "a",
                &addr,
                "/good",
                "    tls_config:\n      ca_file: /nonexistent/ca.pem\n"
            )
        );
        let e = m.apply_config(&Config::parse(&bad).unwrap()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        assert_eq!(m.scrape_pools(), ["a", "b"]);
        // Drop job b: its series get staleness markers; a keeps running.
        let only_a = format!("{base}{}", job("a", &addr, "/good", ""));
        m.apply_config(&Config::parse(&only_a).unwrap()).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = m.targets();
        assert_eq!(after.active_targets.len(), 1);
        assert_ne!(
            after.active_targets[0].last_scrape,
            before.active_targets[0].last_scrape
        );
        let md = m.target_metadata(&[], Some("ok"), 0);
        assert_eq!(md.len(), 1);
        assert_eq!(md[0].metric_type, "gauge");
        m.stop().await;
    });
    let s = head.select_series(
        i64::MIN,
        i64::MAX,
        &[Matcher::equal("__name__", "d"), Matcher::equal("job", "b")],
        false,
    );
    let samples = s[0].collect_samples().unwrap();
    assert!(
        strata_model::is_stale_nan(samples.last().unwrap().v),
        "{samples:?}"
    );
    let up_b = head.select_series(
        i64::MIN,
        i64::MAX,
        &[Matcher::equal("__name__", "up"), Matcher::equal("job", "b")],
        false,
    );
    let v = up_b[0].collect_samples().unwrap();
    assert!(strata_model::is_stale_nan(v.last().unwrap().v));
}

#[test]
fn file_sd_targets_are_watched() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let head_dir = tempfile::tempdir().unwrap();
    let head = Arc::new(Head::open(head_dir.path(), HeadOptions::default()).unwrap());
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router()).await });
        let sd = dir.path().join("targets.json");
        let yaml = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: f\n    metrics_path: /good\n    \
             file_sd_configs:\n      - files: ['{}/*.json']\n    relabel_configs:\n      \
             - source_labels: [env]\n        regex: drop\n        action: drop\n",
            dir.path().display()
        );
        let mut reg = Registry::default();
        let m = ScrapeManager::new(head.clone(), &mut reg);
        m.apply_config(&Config::parse(&yaml).unwrap()).unwrap();
        assert!(m.targets().active_targets.is_empty());
        std::fs::write(
            &sd,
            format!(r#"[{{"targets": ["{addr}"], "labels": {{"env": "x"}}}}, {{"targets": ["h:1"], "labels": {{"env": "drop"}}}}]"#),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let snap = m.targets();
        assert_eq!(snap.active_targets.len(), 1, "{snap:?}");
        let t = &snap.active_targets[0];
        assert_eq!(t.labels["env"], "x");
        assert_eq!(t.labels["instance"], addr);
        assert!(t.discovered_labels["__meta_filepath"].ends_with("targets.json"));
        assert_eq!(snap.dropped_targets.len(), 1);
        assert_eq!(snap.dropped_target_counts["f"], 1);
        m.stop().await;
    });
    assert!(last_value(&head, "ok", "f").is_some());
}
